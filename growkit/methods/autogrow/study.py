"""Named AutoGrow and Network Morphism runs and the rows of their tables, for the ``autogrow_*`` notebooks.

Every run goes through the run cache (:mod:`growkit.runs.cache`): reused when finished with the same
config and code, resumed when interrupted, replaced when either changed.
"""
from __future__ import annotations

import hashlib
import json

from ...papers import study
from ...papers.report import pm
from ...runs import cache
from .config import AutoGrowConfig, NetworkMorphismConfig


def autogrow(runs_dir, name: str, *, train: dict, autogrow: dict, callbacks=(), grower_hook=None) -> dict:
    return cache.named(runs_dir, name, "autogrow", cache.train_cfg(train), AutoGrowConfig(**autogrow),
                  callbacks=callbacks, grower_hook=grower_hook)


def network_morphism(runs_dir, name: str, *, train: dict, target_depths, shallow_epochs: int, deeper_epochs: int,
                     init: str = "zero", init_std: float = 1.0) -> dict:
    nm = NetworkMorphismConfig(list(target_depths), shallow_epochs, deeper_epochs, init, init_std)
    return cache.named(runs_dir, name, "network-morphism", cache.train_cfg(train), nm)



def summary_row(res: dict, **extra) -> dict:
    """The columns the AutoGrow tables share."""
    row = {**extra, "found net": "-".join(map(str, res.get("depths") or res["spec"].get("depths", []))),
           "accu %": res["test_acc"]}
    if res.get("delta") is not None:
        row["Δ"] = res["delta"]
    row.update({"params": res["params"], "val %": res["val_acc"]})
    return row


# ----------------------------------------------------------------------------- seeds and fair baselines

_run_autogrow = autogrow  # (the parameter below is named after it)


def depth_of(res: dict) -> int:
    """Total sub-modules of a run's (found) net."""
    return sum(res.get("depths") or res["spec"].get("depths", []))


def autogrow_seeds(runs_dir, name: str, seeds, *, train: dict, autogrow: dict, **kw) -> list[dict]:
    """The same AutoGrow run once per seed (``name-s<seed>``); the data split stays fixed (``split_seed``)."""
    return [_run_autogrow(runs_dir, f"{name}-s{s}", train={**train, "seed": s}, autogrow=autogrow, **kw)
            for s in seeds]


def baselines(runs_dir, name: str | None, res: dict, *, train: dict, converged_epochs: int) -> dict:
    """The found net of ``res`` trained from scratch, twice, with the run's seed (``train``: the data and any
    other settings of the run):

    * ``matched``: as many epochs as the AutoGrow run took in all (growing + fine-tuning), staircase;
    * ``converged``: ``converged_epochs`` epochs, staircase, a budget long enough for the curve to flatten
      (``plateau`` says how much the validation accuracy still moved over its last quarter).

    Both keep their training curves (``metrics.jsonl`` in their run directories). The directories are named
    after what they train (net, epochs, seed and a digest of the settings), so runs that found the same net
    share one baseline; ``name`` is unused (kept for callers that name their runs)."""
    spec = res["spec"]
    base = {**train, "seed": res["config"]["train"]["seed"], "model": spec["name"], "depths": list(spec["depths"]),
            "schedule": "staircase", "snapshot_every": 0}
    if spec.get("widths"):
        base["widths"] = list(spec["widths"])
    digest = hashlib.sha256(json.dumps(base, sort_keys=True, default=str).encode()).hexdigest()[:8]
    arch = f"{spec['name']}-{'-'.join(map(str, spec['depths']))}"
    out = {}
    for kind, epochs in (("matched", res["epochs"]), ("converged", converged_epochs)):
        run = f"scratch-{arch}-e{epochs}-s{base['seed']}-{digest}"
        r = study.train(runs_dir, run, **{**base, "epochs": epochs})
        rows = study.metrics(runs_dir, run)
        tail = [row["val_acc"] for row in rows[-max(1, len(rows) // 4):]]
        out[kind] = {**r, "plateau": max(tail) - min(tail), "run": run}
    return out


def seeded_row(results: list[dict], bases: list[dict] | None = None, **extra) -> dict:
    """One table row over seeds: found nets, mean ± sd of accuracy and depth, and Delta against both
    baselines (per seed: AutoGrow − the same seed's baseline), with the per-seed values kept for verdicts."""
    accs = [r["test_acc"] for r in results]
    depths = [depth_of(r) for r in results]
    row = {**extra, "found nets": ", ".join("-".join(map(str, r.get("depths") or r["spec"]["depths"]))
                                            for r in results),
           "accu %": pm(accs), "depth (blocks)": pm(depths, 1)}
    if bases:
        for kind in ("matched", "converged"):
            d = [r["test_acc"] - b[kind]["test_acc"] for r, b in zip(results, bases)]
            row[f"Δ vs {kind}"] = pm(d)
            row[f"scratch {kind} %"] = pm([b[kind]["test_acc"] for b in bases])
    row["params"] = pm([r["params"] for r in results], 0)
    row["_acc"], row["_depth"] = accs, depths
    return row


def recovery_after_growth(rows: list[dict], growth_epochs, within: int, floor: float) -> tuple[int, int]:
    """(growths after which the validation accuracy got back to its value just before the growth, minus
    ``floor``, within ``within`` epochs; all growths). The paper: "the loss and accuracy rapidly recover"."""
    acc = {r["epoch"]: r["val_acc"] for r in rows}
    ok = 0
    for g in growth_epochs:
        after = [acc[e] for e in range(g + 1, g + within + 1) if e in acc]
        ok += bool(after) and max(after) >= acc[g] - floor
    return ok, len(list(growth_epochs))
