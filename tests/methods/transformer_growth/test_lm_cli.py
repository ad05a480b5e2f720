"""`growkit lm`: bad input exits 2 with one line and writes nothing."""
import numpy as np
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
    ("both budgets", ["--tokens", "100"], "steps or tokens, not both"),
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
