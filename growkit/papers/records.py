"""``figures/records/<notebook>.csv``: one row per run a notebook made, so every committed number can be traced.

A row holds what a reader needs to find and check a run: its directory (relative to the notebook's runs
folder), the command, a hash of its configuration (the one the run cache compares), the growkit commit and
code hash that ran it, seed, epochs, final validation and test accuracy, parameters, multiply-adds per image
(MACs) as the run recorded them, for language-model runs the final validation loss (nats per token) and
the training multiply-adds counted, the architecture it ended with (and its depth in blocks, where it has
stages), and its wall seconds; for growing runs also the epochs and seconds of growing and of fine-tuning,
for runs that retrain their found net from scratch that net's test accuracy, for lifelong-learning runs their
average accuracy, backward transfer, forgetting and parameters of all tasks, for runs with curvature records
the sharpness around their growth events.

Every value a verdict uses names its run and column here (:mod:`growkit.runs.measured`), and the verdict
test (``tests/papers/test_verdict_records.py``) reads each one again from these files and recomputes every
verdict of ``paper_vs_kit.md`` from what they hold.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
from pathlib import Path

from ..runs.identity import essential
from ..viz import curvature

RECORDS = "records"
# Curvature at growth events (runs with curvature_every > 0): the mean over a run's events of the Hessian's top
# eigenvalue just before and just after the growth, and of its jump (growkit.viz.curvature.per_run); empty otherwise.
CURVATURE = {col: key for key, col in curvature.RECORDED.items()}
# Lifelong-learning runs (learn-to-grow): average accuracy over the tasks, backward transfer, forgetting, and the
# parameters of all tasks together
LIFELONG = ("avg_acc", "bwt", "forgetting", "total_params")
COLUMNS = ["run", "command", "config_hash", "git_commit", "code", "seed", "epochs", "val_acc", "test_acc",
           "params", "macs", "arch", "depth", "wall_s", "grow_epochs", "grow_wall_s", "finetune_wall_s", "val_loss",
           "train_macs", "scratch_test_acc", *LIFELONG, *CURVATURE]
# The columns a verdict's values may come from (tests/papers/test_verdict_records.py traces them).
VALUES = ("test_acc", "val_acc", "params", "macs", "depth", "epochs", "grow_epochs", "grow_wall_s",
          "finetune_wall_s", "val_loss", "train_macs", "scratch_test_acc", *LIFELONG, *CURVATURE)


def _halved(flops):
    """A count from a run recorded before counts were multiply-adds (2 FLOPs each)."""
    return None if flops is None else flops / 2


def config_hash(rc: dict) -> str:
    """A short hash of a run config without its environment stamp (what the run cache compares)."""
    return hashlib.sha256(json.dumps(essential(rc), sort_keys=True, default=str).encode()).hexdigest()[:12]


def _seed(rc: dict):
    for section in rc.values():
        if isinstance(section, dict) and "seed" in section:
            return section["seed"]
    return None


def _depth(res: dict):
    spec = res.get("spec")
    depths = res.get("depths") or (spec.get("depths") if isinstance(spec, dict) else None)
    return sum(int(d) for d in depths) if depths else None


def _curvature(res: dict) -> dict:
    if not curvature.events(res):
        return {}
    per = curvature.per_run(res)
    return {col: per[key] for col, key in CURVATURE.items()}


def run_rows(runs_dir) -> list[dict]:
    """One row per finished run (a directory with ``config.json`` and ``result.json``) under ``runs_dir``."""
    root = Path(runs_dir)
    rows = []
    for res_path in sorted(root.rglob("result.json")):
        d = res_path.parent
        if not (d / "config.json").is_file():
            continue
        res, rc = json.loads(res_path.read_text()), json.loads((d / "config.json").read_text())
        env = rc.get("environment", {})
        rows.append({"run": d.relative_to(root).as_posix(), "command": rc.get("command"),
                     "config_hash": config_hash(rc), "git_commit": env.get("git_commit"), "code": env.get("code"),
                     "seed": _seed(rc), "epochs": res.get("epochs"), "val_acc": res.get("val_acc"),
                     "test_acc": res.get("test_acc"), "params": res.get("params"),
                     "macs": res["macs"] if "macs" in res else _halved(res.get("flops")),
                     "arch": res.get("arch"), "depth": _depth(res),
                     "wall_s": res.get("wall_s"), "grow_epochs": res.get("grow_epochs"),
                     "grow_wall_s": res.get("grow_wall_s"), "finetune_wall_s": res.get("finetune_wall_s"),
                     "val_loss": res.get("val_loss"), "train_macs": res.get("train_macs"),
                     "scratch_test_acc": res.get("scratch_test_acc"), **{k: res.get(k) for k in LIFELONG},
                     **_curvature(res)})
    return rows


def _cell(v):
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"a run record holds {v}")
        return repr(v)  # full precision: the verdict test recomputes from these
    return "" if v is None else v


def write_records(runs_dir, figures_dir, notebook: str) -> Path | None:
    """Write ``figures_dir/records/<notebook>.csv`` from the runs under ``runs_dir`` (None when it has none).
    Written to a temporary name and renamed, so a crash never leaves half a file."""
    rows = run_rows(runs_dir) if Path(runs_dir).is_dir() else []
    if not rows:
        return None
    out = Path(figures_dir) / RECORDS
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{notebook}.csv"
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: _cell(v) for k, v in r.items()})
    tmp.replace(path)
    return path


def read_records(figures_dir) -> dict[str, list[dict]]:
    """notebook -> its rows, as written (strings)."""
    d = Path(figures_dir) / RECORDS
    return {p.stem: list(csv.DictReader(open(p))) for p in sorted(d.glob("*.csv"))} if d.is_dir() else {}
