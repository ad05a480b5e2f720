"""`growkit learn-to-grow`: the files it writes, bad input, and a SIGKILL followed by `growkit resume`."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from growkit.cli import build_parser
from growkit.methods.learn_to_grow.loop import L2GConfig
from growkit.engine import flags


def config_from_args(a):
    return a.method.config(**flags.values(a, "method", a.own_fields))

SMALL = ["--search-epochs", "2", "--warmup", "1", "--train-epochs", "2"]


def test_only_dataset_device_and_out_give_the_documented_defaults(tmp_path):
    a = build_parser().parse_args(["learn-to-grow", "--dataset", "digits", "--device", "cpu",
                                   "--out", str(tmp_path / "r")])
    assert config_from_args(a) == L2GConfig(device="cpu")
    assert a.train_fields == []  # its own loop: no Trainer flags
    a = build_parser().parse_args(["learn-to-grow", "--out", "x", "--deeper", "--tasks", "2", "--depths", "2-1-1",
                                   "--hidden", "32-16", "--no-augment"])
    cfg = config_from_args(a)
    assert (cfg.deeper, cfg.tasks, cfg.depths, cfg.hidden, cfg.augment) == (True, 2, [2, 1, 1], [32, 16], False)
    a = build_parser().parse_args(["learn-to-grow", "--out", "x", "--stream", "permuted", "--model", "MLP",
                                   "--hidden", "100-100", "--val-fraction", "0.3", "--adapter-rank", "2",
                                   "--tune-reuse", "--ewc-lambda", "5", "--ewc-samples", "64"])
    cfg = config_from_args(a)
    assert (cfg.stream, cfg.model, cfg.hidden, cfg.val_fraction, cfg.adapter_rank, cfg.tune_reuse, cfg.ewc_lambda,
            cfg.ewc_samples) == ("permuted", "MLP", [100, 100], 0.3, 2, True, 5.0, 64)
    cfg.validate()


@pytest.mark.slow
def test_writes_result_with_every_documented_key(cli, tmp_path):
    out = tmp_path / "run"
    r = cli("learn-to-grow", "--dataset", "digits", "--tasks", "2", "--deeper", "--device", "cpu", *SMALL,
            "--out", out)
    assert r.returncode == 0, r.stderr
    res = json.loads((out / "result.json").read_text())
    for key in ("accuracy_matrix", "avg_acc", "bwt", "forgetting", "params_per_task", "choices", "alpha"):
        assert key in res, key
    R = res["accuracy_matrix"]
    assert len(R) == 2 and R[0][1] is None and res["avg_acc"] == pytest.approx((R[1][0] + R[1][1]) / 2)
    assert len(res["choices"][1]) == 5 and len(res["alpha"][1]) == 5
    assert sorted(p.name for p in (out / "tasks").iterdir()) == ["task_0.pt", "task_1.pt"]
    rc = json.loads((out / "config.json").read_text())
    assert rc["command"] == "learn-to-grow" and rc["learn-to-grow"]["deeper"] is True


@pytest.mark.slow
def test_runs_run_and_resume_dispatch_to_the_own_loop(tmp_path):
    from growkit.runs import lifecycle as runs
    cfg = L2GConfig(tasks=2, search_epochs=1, warmup=0, train_epochs=1, device="cpu")
    res = runs.run("learn-to-grow", None, cfg, tmp_path / "r")
    assert len(res["accuracy_matrix"]) == 2
    assert runs.resume(tmp_path / "r")["accuracy_matrix"] == res["accuracy_matrix"]


@pytest.mark.parametrize("args", [["--tasks", "3"], ["--method", "si"], ["--dataset", "nope"],
                                  ["--depths", "0-1-1"], ["--warmup", "30"], ["--optimizer-kw", '{"foo": 1}'],
                                  ["--stream", "rotated"], ["--val-fraction", "0"], ["--val-fraction", "1"],
                                  ["--adapter-rank", "-1"], ["--method", "ewc", "--tune-reuse"],
                                  ["--method", "ewc", "--ewc-lambda", "-1"], ["--model", "ResNet18"]])
@pytest.mark.slow
def test_bad_input_exits_2_and_writes_nothing(cli, tmp_path, args):
    out = tmp_path / "run"
    r = cli("learn-to-grow", "--dataset", "digits", *args, "--out", out)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.slow
def test_sigkill_then_resume_equals_an_uninterrupted_run(cli, tmp_path):
    args = ["learn-to-grow", "--dataset", "digits", "--tasks", "5", "--device", "cpu", *SMALL]
    ref = cli(*args, "--out", tmp_path / "ref")
    assert ref.returncode == 0, ref.stderr
    cut = tmp_path / "cut"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "growkit.cli", *args, "--out", str(cut)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (cut / "tasks" / "task_1.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (cut / "result.json").exists(), "killed too late to test anything"
    r = cli("resume", cut)
    assert r.returncode == 0, r.stderr
    a = json.loads((tmp_path / "ref" / "result.json").read_text())
    b = json.loads((cut / "result.json").read_text())
    for key in ("accuracy_matrix", "avg_acc", "bwt", "forgetting", "params_per_task", "choices", "alpha"):
        assert a[key] == b[key], key
