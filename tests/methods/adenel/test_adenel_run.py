"""AdeNeL end to end on digits: the CLI, budgets, result fields, kill and resume with Z and Gamma."""
import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from growkit.engine import checkpoint
from growkit import models as M

pytestmark = pytest.mark.slow  # every test here starts a subprocess

# a LeNet-5 seed of 4 grows within J = 2 epochs on digits at lambda 0.02 (the ISS path moves per step)
FAST = ["adenel", "--model", "LeNet5", "--seed-width", "4", "--dataset", "digits", "--J", "2", "--tau", "0.5",
        "--grow-by", "2", "--lam", "0.02", "--nu", "2", "--finetune", "2", "--max-grow-epochs", "6",
        "--batch-size", "64", "--no-progress", "--seed", "3"]


def _seed_params():
    return M.create("LeNet5", widths=[4, 4, 120, 84], in_channels=1, num_classes=10, image_size=8).num_params()


@pytest.mark.parametrize("flag", ["--budget-params", "--budget-macs"])
def test_a_budget_below_the_seed_exits_2_and_writes_nothing(cli, tmp_path, flag):
    out = tmp_path / "run"
    r = cli(*FAST, flag, "1000", "--out", out)
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "below the seed" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()


@pytest.mark.parametrize("args,msg", [(["--tau", "1.5"], "tau must be"), (["--J", "0"], "J must be > 0"),
                                      (["--model", "Basic3ResNet"], "adenel grows"),
                                      (["--support", "maybe"], "support")])
def test_bad_options_exit_2(cli, tmp_path, args, msg):
    r = cli(*FAST, *args, "--out", tmp_path / "run")
    assert r.returncode == 2 and msg in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_cli_run_grows_within_budget_and_writes_the_documented_fields(cli, tmp_path):
    budget = _seed_params() + 3000
    out = tmp_path / "run"
    r = cli(*FAST, "--budget-params", str(budget), "--on-budget", "subset", "--out", out)
    assert r.returncode == 0, r.stderr
    res = json.loads((out / "result.json").read_text())
    for key in ("widths", "params", "macs", "train_macs", "train_cost", "test_acc", "val_acc", "growth_events",
                "stopped_by"):
        assert key in res, key
    assert res["params"] <= budget and res["stopped_by"] in ("budget", "capacity", "max_grow_epochs")
    assert res["growth_events"] and any(e["grow"] for e in res["growth_events"])
    assert res["widths"]["conv1"] >= 4 and res["widths"]["fc1"] == 120  # fully connected layers stay
    cost = res["train_cost"]["vs_full"]
    assert cost["reference"].startswith("full-size LeNet5") and cost["relative"] == pytest.approx(
        res["train_macs"] / cost["reference_macs"])
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["train"]["optimizer"] == "lbi" and cfg["adenel"]["lam"] == 0.02
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(row["params"] <= budget for row in rows)  # never exceeded, at any epoch


def _run(args):
    return subprocess.Popen([sys.executable, "-m", "growkit.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _rows(out):
    return [{k: v for k, v in json.loads(l).items() if k not in ("wall_s", "epoch_s")}
            for l in (out / "metrics.jsonl").read_text().splitlines()]


def test_sigkill_then_resume_is_identical_z_and_gamma_included(tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    p = _run([*FAST, "--out", full])
    assert p.wait() == 0, p.stderr.read()
    p = _run([*FAST, "--out", cut])
    t0 = time.time()
    while True:  # kill after the first growth (row 2 is the first check)
        m = cut / "metrics.jsonl"
        if m.exists() and len(m.read_text().splitlines()) >= 3:
            p.send_signal(signal.SIGKILL)
            p.wait()
            break
        assert p.poll() is None, p.stderr.read()
        assert time.time() - t0 < 300
        time.sleep(0.01)
    assert not (cut / "result.json").exists()
    r = subprocess.run([sys.executable, "-m", "growkit.cli", "resume", cut], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert _rows(cut) == _rows(full)
    a, b = checkpoint.load(full / "checkpoint.pt"), checkpoint.load(cut / "checkpoint.pt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    sa, sb = a["optimizer"], b["optimizer"]
    sa, sb = sa.get("state", sa), sb.get("state", sb)
    assert sa.keys() == sb.keys()
    checked = 0
    for name in sa:
        assert sa[name].keys() == sb[name].keys(), name
        for k in sa[name]:
            if torch.is_tensor(sa[name][k]):
                assert torch.equal(sa[name][k], sb[name][k]), (name, k)
                checked += k in ("z", "gamma")
    assert checked >= 4  # conv1, conv2, fc1, fc2 carry Z and Gamma
    ra, rb = (json.loads((d / "result.json").read_text()) for d in (full, cut))
    assert ra["growth_events"] == rb["growth_events"] and ra["test_acc"] == rb["test_acc"]
    assert any(e["grow"] for e in ra["growth_events"])  # the kill fell after a real growth
