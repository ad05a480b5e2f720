"""`growkit lm`: bad input exits 2 with one line and writes nothing."""
import os

import numpy as np
import torch

import pytest

from growkit.cli import main


def _tokens(folder, train, val=(1, 2, 3, 4, 5)):
    folder.mkdir(exist_ok=True)
    if isinstance(train, bytes):
        (folder / "train.bin").write_bytes(train)
    else:
        np.asarray(train, dtype="<u2").tofile(folder / "train.bin")
    np.asarray(val, dtype="<u2").tofile(folder / "val.bin")
    return folder


@pytest.mark.parametrize("case, extra, match", [
    ("odd", [], "odd count"),
    ("short", ["--context", "8"], "fewer than context \\+ 1 = 9"),
    ("range", ["--vocab-size", "20"], "token id 40"),
    ("missing", [], "missing 1 file\\(s\\)"),
    ("both budgets", ["--tokens", "100"], "one budget \\(steps, tokens or budget_macs\\), not steps and tokens"),
    ("steps and compute", ["--budget-macs", "1e6"], "not steps and budget_macs"),
    ("bad grower", ["--grower", '{"kind": "nope"}'], "kind one of schedule, autogrow"),
    ("bad plan", ["--grower", '{"kind": "schedule", "at": [[0.5, [{"op": "stack"}]]]}'], "unknown plan op 'stack'"),
    ("unknown", [], "unknown token dataset"),
    ("bad decay", ["--decay", "step"], "invalid choice"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, case, extra, match):
    d = tmp_path / "tok"
    if case == "odd":
        _tokens(d, b"\x01\x00\x02")
    elif case == "short":
        _tokens(d, [1, 2, 3, 4], val=list(range(20)))
    elif case == "range":
        _tokens(d, [1, 2, 40, 3, 4, 5])
    elif case == "missing":
        d.mkdir()
        np.asarray([1, 2, 3], dtype="<u2").tofile(d / "train.bin")
    dataset = "nope" if case == "unknown" else f"tokens:{d}"
    args = ["lm", "--dataset", dataset, "--device", "cpu", "--steps", "3", "--context", "2",
            "--out", str(tmp_path / "run")]
    if "--vocab-size" not in extra:
        args += ["--vocab-size", "50"]
    rc = main(args + extra)
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("growkit") and err.count("\n") == 1, err
    assert __import__("re").search(match, err), err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_corrupt_token_file_from_a_fresh_process_has_no_traceback(tmp_path, cli):
    d = _tokens(tmp_path / "tok", b"\x01\x00\x02\x00\x03")
    r = cli("lm", "--dataset", f"tokens:{d}", "--vocab-size", "10", "--device", "cpu", "--out", tmp_path / "run")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert "odd count" in r.stderr


def test_a_small_run_from_the_command_line(tmp_path, capsys):
    import json
    f = tmp_path / "t.txt"
    f.write_text("to be or not to be, that is the question\n" * 20)
    out = tmp_path / "run"
    rc = main(["lm", "--model", "GPT-1L-2H-8", "--dataset", f"text:{f}", "--context", "8", "--batch-size", "4",
               "--steps", "6", "--eval-every", "3", "--lr", "0.01", "--warmup", "1", "--decay", "linear",
               "--device", "cpu", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    assert "val loss" in capsys.readouterr().out
    res = json.loads((out / "result.json").read_text())
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert (res["steps"], res["tokens"], [r["step"] for r in rows]) == (6, 6 * 4 * 8, [3, 6])
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["command"] == "lm" and cfg["lm"]["decay"] == "linear" and cfg["lm"]["lr"] == 0.01
    assert main(["resume", str(out)]) == 0  # a finished run: its result again


def _rows(out):
    import json
    return [{k: v for k, v in json.loads(x).items() if k not in ("interval_s", "wall_s", "tokens_per_s")}
            for x in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize("point", [2, 5, 8, 11, 14])
def test_killed_at_a_write_point_then_recovered_and_resumed_equals_an_uninterrupted_run(tmp_path, point):
    """SIGKILL-like exits (tests/killpoint.py) before a file appears or its bytes reach the disk; then
    `growkit recover` and `growkit resume` (or the command again when nothing was kept)."""
    import subprocess
    import sys
    from pathlib import Path

    from growkit.engine import checkpoint
    f = tmp_path / "t.txt"
    f.write_text("to be or not to be, that is the question\n" * 20)
    args = ["lm", "--model", "GPT-1L-2H-8", "--dataset", f"text:{f}", "--context", "8", "--batch-size", "4",
            "--steps", "9", "--eval-every", "3", "--device", "cpu"]
    # every run in a process of its own with one thread: with more, a CPU kernel's summation order (the
    # embedding's backward) may differ between processes, and bit-identical weights could not be asked for
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    full = subprocess.run([sys.executable, "-m", "growkit", *args, "--out", str(tmp_path / "full")],
                          capture_output=True, text=True, timeout=300, env=env)
    assert full.returncode == 0, full.stderr
    kp = str(Path(__file__).resolve().parents[2] / "killpoint.py")
    out = tmp_path / "killed"
    first = subprocess.run([sys.executable, kp, str(point), *args, "--out", str(out)], capture_output=True, text=True,
                           timeout=300, env=env)
    assert first.returncode == 137, first.stderr  # (the run has 17 write points)
    done = subprocess.run([sys.executable, kp, "finish", str(out), *args, "--out", str(out)], capture_output=True,
                          text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    assert _rows(out) == _rows(tmp_path / "full")
    a, b = (checkpoint.load(d / "checkpoint.pt") for d in (tmp_path / "full", out))
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


@pytest.mark.parametrize("args, match", [
    (["--model", "GPT-2L-2H-64"], "is a language model: train it with `growkit lm --model GPT-2L-2H-64`"),
    (["--dataset", "shakespeare"], "token dataset for language models: train on it with `growkit lm"),
])
def test_growkit_train_points_language_models_to_lm(tmp_path, capsys, args, match):
    assert main(["train", *args, "--device", "cpu", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1
