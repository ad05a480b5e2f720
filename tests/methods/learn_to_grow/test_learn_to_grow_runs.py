"""Learn-to-grow run directories on the shared lifecycle and cache: a new run is staged (an --overwrite that
fails leaves the old run byte-identical), a NaN stops it in one line, runs written before its config built on
TrainConfig still resume, and the notebook's cached runs rerun when learn-to-grow's code changes."""
import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch.nn.functional as F

from growkit.errors import GrowkitError, NonFiniteLoss
from growkit.methods.learn_to_grow import loop, own_loop
from growkit.methods.learn_to_grow.loop import L2GConfig
from growkit.runs import lifecycle as runs

TINY = dict(tasks=2, search_epochs=1, warmup=0, train_epochs=1, widths=[4, 4, 4], hidden=[8], device="cpu")


def files(root: Path) -> dict:
    """Every file under ``root`` (hidden ones included) by relative path, with a hash of its bytes."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def old_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("old") / "run"
    runs.run("learn-to-grow", None, L2GConfig(seed=1, **TINY), out)
    return out


def copy_of(old_run, tmp_path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(old_run, out)
    return out


@pytest.mark.slow
def test_a_fresh_run_is_staged_and_committed_after_task_0(tmp_path, monkeypatch):
    """While task 0 trains the run lives in a hidden staging folder beside --out (which holds only the run
    lock, taken before anything is written); once task 0's checkpoint is written the run is in --out (the
    later tasks and result.json are written there)."""
    out = tmp_path / "run"
    seen = []
    learn_task = loop.learn_task

    def spy(net, t, data, cfg):
        seen.append((t, sorted(q.name for q in out.iterdir()) if out.exists() else None, sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".run."))))
        return learn_task(net, t, data, cfg)

    monkeypatch.setattr(loop, "learn_task", spy)
    res = runs.run("learn-to-grow", None, L2GConfig(**TINY), out)
    assert [s[0] for s in seen] == [0, 1]
    assert seen[0][1] in (None, [".growkit-lock"]) and len(seen[0][2]) == 1 and ".growkit-staging-" in seen[0][2][0]
    assert "config.json" in seen[1][1] and "tasks" in seen[1][1] and seen[1][2] == []  # committed after task 0's checkpoint
    assert sorted(files(out)) == [".growkit-lock", ".growkit-run.json", "config.json", "result.json",
                                  "tasks/task_0.pt", "tasks/task_1.pt"]
    assert len(res["accuracy_matrix"]) == 2 and [p.name for p in tmp_path.iterdir()] == ["run"]


@pytest.mark.slow
def test_an_overwrite_that_fails_in_task_0_leaves_the_old_run_byte_identical(old_run, tmp_path, monkeypatch):
    out = copy_of(old_run, tmp_path)
    before = files(out)

    def broken(*a, **k):
        raise RuntimeError("injected failure in task 0")

    monkeypatch.setattr(loop, "learn_task", broken)
    with pytest.raises(RuntimeError, match="injected") as e:
        runs.run("learn-to-grow", None, L2GConfig(seed=2, **TINY), out, overwrite=True)
    assert e.value.growkit_kept is False
    assert files(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no staging folder left beside it


def test_a_fresh_run_that_fails_leaves_nothing(tmp_path, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("injected failure in task 0")

    monkeypatch.setattr(loop, "learn_task", broken)
    with pytest.raises(RuntimeError, match="injected"):
        runs.run("learn-to-grow", None, L2GConfig(**TINY), tmp_path / "a" / "run")
    assert list(tmp_path.iterdir()) == []  # not even the parent folder it made


@pytest.mark.slow
def test_a_nan_loss_stops_in_one_line_and_an_overwrite_keeps_the_old_run(old_run, tmp_path, monkeypatch, capsys):
    """A NaN in task 0's training (the passes' objective made to return NaN) stops the CLI with exit code 1 and
    one line; the old run it was to replace is untouched."""
    from growkit import cli
    from growkit.engine import passes
    out = copy_of(old_run, tmp_path)
    before = files(out)
    monkeypatch.setattr(passes, "cross_entropy", lambda m, x, y: F.cross_entropy(m(x), y) * float("nan"))
    args = ["learn-to-grow", "--tasks", "2", "--search-epochs", "1", "--warmup", "0", "--train-epochs", "1",
            "--widths", "4-4-4", "--hidden", "8", "--device", "cpu", "--out", str(out), "--overwrite"]
    assert cli.main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the training loss became nan on digits:task0 at epoch 1" in err[0], err
    assert "nothing was kept" in err[0]
    assert files(out) == before
    with pytest.raises(NonFiniteLoss):
        loop.run_stream(L2GConfig(seed=1, **TINY), own_loop.make_stream(L2GConfig(**TINY))[0])


@pytest.mark.slow
def test_a_run_written_before_the_config_built_on_train_config_resumes(old_run, tmp_path):
    """config.json of an older growkit: the learn-to-grow section without TrainConfig's other fields. It reads
    with those at their defaults, except precision, which was fp32 throughout; the run resumes and learns task 1
    as the uninterrupted run did."""
    out = copy_of(old_run, tmp_path)
    rc = json.loads((out / "config.json").read_text())
    old_keys = ["dataset", "tasks", "order", "method", "deeper", "model", "depths", "widths", "hidden",
                "search_epochs", "warmup", "train_epochs", "batch_size", "optimizer", "optimizer_kw", "lr",
                "momentum", "nesterov", "weight_decay", "decay_bn_bias", "arch_lr", "arch_weight_decay", "cost",
                "new_init", "seed", "split_seed", "augment", "device", "data_root", "download"]
    rc["learn-to-grow"] = {k: rc["learn-to-grow"][k] for k in old_keys}
    (out / "config.json").write_text(json.dumps(rc))
    cfg = L2GConfig.from_dict(rc["learn-to-grow"])
    assert cfg.precision == "fp32" and cfg.schedule == "cosine" and cfg.epochs == 20
    assert cfg == L2GConfig(seed=1, precision="fp32", **TINY)
    ref = json.loads((old_run / "result.json").read_text())
    import torch  # its task checkpoint holds the options as that growkit wrote them, the same keys
    raw = torch.load(out / "tasks" / "task_0.pt", weights_only=True)
    raw["config_json"] = json.dumps({k: json.loads(raw["config_json"])[k] for k in old_keys})
    torch.save(raw, out / "tasks" / "task_0.pt")
    (out / "tasks" / "task_1.pt").unlink()
    (out / "result.json").unlink()
    res = runs.resume(out)
    for key in ("accuracy_matrix", "choices", "alpha", "params_per_task"):
        assert res[key] == ref[key], key


@pytest.mark.parametrize("field,value", [("epochs", 5), ("fraction", 0.5), ("eval_test", False),
                                         ("snapshot_every", 1), ("model_kw", {"stem_width": 8})])
def test_train_fields_without_a_meaning_here_are_refused(field, value):
    with pytest.raises(GrowkitError, match=f"does not use {field}"):
        L2GConfig(**{field: value}).validate()


@pytest.mark.slow
def test_cached_runs_rerun_when_the_code_changes(tmp_path, monkeypatch):
    from growkit.engine import records
    first = own_loop.cached(tmp_path, "r", seed=1, **TINY)
    again = own_loop.cached(tmp_path, "r", seed=1, **TINY)
    assert again["wall_s"] == first["wall_s"]  # the same code and settings: reused
    other = own_loop.cached(tmp_path, "r", seed=2, **TINY)  # other settings: replaced
    assert json.loads((tmp_path / "r" / "config.json").read_text())["learn-to-grow"]["seed"] == 2
    assert other["wall_s"] != first["wall_s"]
    monkeypatch.setattr(records, "code_hash", lambda: "another")
    changed = own_loop.cached(tmp_path, "r", seed=2, **TINY)  # a code change: run again
    assert json.loads((tmp_path / "r" / "config.json").read_text())["environment"]["code"] == "another"
    assert changed["wall_s"] != other["wall_s"]
    assert own_loop.cached(tmp_path, "r", seed=2, **TINY)["wall_s"] == changed["wall_s"]


def test_the_code_hash_covers_learn_to_grow_but_not_its_plots(tmp_path):
    import growkit
    from growkit.engine import records
    pkg = tmp_path / "growkit"
    shutil.copytree(Path(growkit.__file__).parent, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    base = records.tree_hash(pkg)
    plots = pkg / "methods" / "learn_to_grow" / "plots.py"
    plots.write_text(plots.read_text() + "\n# a plot fix\n")
    assert records.tree_hash(pkg) == base
    for f in sorted((pkg / "methods" / "learn_to_grow").glob("*.py")):
        if f.name == "plots.py":
            continue
        edited = records.tree_hash(pkg)
        f.write_text(f.read_text() + "\n# a change that may alter results\n")
        assert records.tree_hash(pkg) != edited, f.name
