"""Bad input: exit code 2, one line, no traceback, nothing half-written."""
import json

import pytest

BAD = [
    (["train", "--dataset", "cifar11"], "unknown dataset 'cifar11'"),
    (["train", "--model", "ResNet9000"], "unknown model 'ResNet9000'"),
    (["train", "--depths", "1-0-1"], "depths must be positive"),
    (["train", "--depths", "1-1"], "depths needs 3 entries"),
    (["train", "--model", "VGG16", "--widths", "4-4"], "widths needs 13 entries"),
    (["train", "--lr", "-0.1"], "lr must be >= 0"),
    (["train", "--epochs", "0"], "epochs must be > 0"),
    (["train", "--fraction", "1.5"], "fraction must be in"),
    (["train", "--schedule", "sawtooth"], "schedule must be one of"),
    (["train", "--device", "cuda:7"], "no CUDA device"),
    (["train", "--dataset", "cifar10", "--data-root", "{tmp}/nodata"], "cifar10: missing 7 file"),
    (["train", "--epochs", "two"], "invalid int value"),
    (["autogrow", "--K", "0"], "K must be > 0"),
    (["autogrow", "--K", "-3"], "K must be > 0"),
    (["autogrow", "--J", "0"], "J must be > 0"),
    (["autogrow", "--tau", "-1"], "tau must be >= 0"),
    (["autogrow", "--init", "magic"], "init must be"),
    (["autogrow", "--policy", "sometimes"], "policy must be"),
    (["autogrow", "--model", "VGG16"], "AutoGrow grows depth nets"),
    (["autogrow", "--lr", "-1"], "lr must be >= 0"),
]


@pytest.mark.parametrize("args,msg", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_exits_2_with_one_line(capsys, tmp_path, args, msg):
    from growkit.cli import main
    out = tmp_path / "run"
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert main([*args, "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert msg in lines[0]
    assert not out.exists()  # nothing written


@pytest.mark.parametrize("args", [["train", "--model", "ResNet9000"], ["autogrow", "--K", "0"]])
@pytest.mark.slow
def test_the_installed_command_exits_2(cli, tmp_path, args):
    r = cli(*args, "--out", tmp_path / "run")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


@pytest.mark.slow
def test_non_empty_out_without_overwrite_is_refused_and_left_alone(cli, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    r = cli("train", "--epochs", "1", "--out", out, "--no-progress")
    assert r.returncode == 2 and "not empty" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = cli("train", "--epochs", "1", "--out", out, "--overwrite", "--no-progress")
    assert r.returncode == 2 and "not a growkit run" in r.stderr
    assert (out / "notes.txt").read_text() == "mine" and len(list(out.iterdir())) == 1


@pytest.mark.slow
def test_resume_of_a_folder_without_a_run(cli, tmp_path):
    r = cli("resume", tmp_path)
    assert r.returncode == 2 and "not a growkit run" in r.stderr


@pytest.mark.slow
def test_train_writes_the_documented_files(cli, tmp_path):
    out = tmp_path / "run"
    r = cli("train", "--model", "Basic3ResNet", "--depths", "1-1-1", "--epochs", "2", "--out", out, "--no-progress")
    assert r.returncode == 0, r.stderr
    assert {p.name for p in out.iterdir()} == {"config.json", "metrics.jsonl", "result.json", "checkpoint.pt",
                                               ".growkit-run.json", ".growkit-lock"}  # marker and lock file
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["train"]["lr"] == 0.1 and cfg["environment"]["torch"]
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    keys = {"train_loss", "train_acc", "val_loss", "val_acc", "test_acc", "lr", "arch", "params", "macs",
            "train_macs", "wall_s"}
    assert keys <= set(rows[0])
    assert rows[1]["train_macs"] == 2 * rows[0]["train_macs"]
    res = json.loads((out / "result.json").read_text())
    assert res["arch"] == "Basic3ResNet-1-1-1" and res["environment"]["git_commit"]
    # overwriting a growkit run is allowed when asked
    r = cli("train", "--epochs", "1", "--out", out, "--overwrite", "--no-progress")
    assert r.returncode == 0 and len((out / "metrics.jsonl").read_text().splitlines()) == 1
