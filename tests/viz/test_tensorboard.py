"""The TensorBoard callback, read back from its event files: every epoch's metrics and every growth, at the
epoch they happened, equal to the run's own metrics.jsonl."""
import json

import pytest

pytest.importorskip("tensorboard")

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from growkit.cli import main  # noqa: E402


def events(logdir):
    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def scalars(acc, tag):
    return {e.step: e.value for e in acc.Scalars(tag)}


def test_the_event_file_holds_every_epoch_and_growth(tmp_path):
    out, tb = tmp_path / "g", tmp_path / "tb"
    # tau = 100 %: grows at epochs 2, 4 and 6 whatever the numerics (thread counts change whether 0.05 % is met)
    assert main(["autogrow", "--policy", "convergent", "--K", "2", "--tau", "100", "--max-grow-epochs", "8",
                 "--finetune", "2",
                 "--device", "cpu", "--no-progress", "--scratch", "--scratch-epochs", "2", "--out", str(out),
                 "--tensorboard", str(tb)]) == 0
    rows = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    acc = events(tb)
    for tag, key in (("accuracy/val", "val_acc"), ("loss/train", "train_loss"), ("accuracy/test", "test_acc"),
                     ("size/params", "params"), ("size/macs", "macs"), ("compute/train_macs", "train_macs")):
        got = scalars(acc, tag)
        assert sorted(got) == [r["epoch"] for r in rows], tag
        for r in rows:
            assert got[r["epoch"]] == pytest.approx(r[key], rel=1e-6), (tag, r["epoch"])  # (stored as float32)
    grew = [r["epoch"] for r in rows if r["events"]]
    assert grew and sorted(scalars(acc, "growth/count")) == grew
    assert list(scalars(acc, "growth/count").values()) == list(range(1, len(grew) + 1))
    texts = acc.Tensors("growth/event/text_summary")  # (the tag torch gives a text entry)
    assert [t.step for t in texts] == grew
    first = texts[0].tensor_proto.string_val[0].decode()
    ev = rows[grew[0] - 1]["events"][0]
    assert f"grew {ev['before']} -> {ev['after']}" in first and "init gau" in first
    # the found net trained from scratch (a nested run) writes its own curves beside, not over, the run's
    scratch = [json.loads(s) for s in (out / "scratch" / "metrics.jsonl").read_text().splitlines()]
    got = scalars(events(tb / "scratch"), "accuracy/val")
    assert sorted(got) == [r["epoch"] for r in scratch] and got[1] == pytest.approx(scratch[0]["val_acc"], rel=1e-6)


def test_without_tensorboard_the_flag_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    import builtins
    real = builtins.__import__

    def no_tensorboard(name, *a, **k):
        if name.startswith("torch.utils.tensorboard") or name.startswith("tensorboard"):
            raise ImportError(name)
        return real(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    monkeypatch.delitem(__import__("sys").modules, "torch.utils.tensorboard", raising=False)
    assert main(["train", "--epochs", "1", "--device", "cpu", "--out", str(tmp_path / "r"),
                 "--tensorboard", str(tmp_path / "tb")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'growkit[tensorboard]'" in err[0]
    assert not (tmp_path / "r").exists() and not (tmp_path / "tb").exists()
