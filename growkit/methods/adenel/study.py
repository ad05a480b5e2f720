"""Named AdeNeL runs and the rows of its tables, for the ``adenel_*`` notebooks (thin notebooks, logic here).

Every run goes through the run cache (:mod:`growkit.runs.cache`) (reused when finished with the same config, resumed
when interrupted, replaced when the config changed), so every number in a table comes from a run
directory a reader can open. Accuracies over seeds are reported as mean ± sample standard deviation.
"""
from __future__ import annotations

import statistics

import torch

from ...models import from_spec
from ...papers import study
from ...runs import cache
from .grower import AdeNeLConfig
from .method import FINETUNE_MILESTONES
from .policy import widths
from .prune import L1PruneConfig


def baseline(runs_dir, name: str, *, train: dict, epochs: int) -> dict:
    """The full-size net with the paper's baseline SGD (rate 0.1, x0.1 at each third, wd 5e-4)."""
    return study.train(runs_dir, name, **{"lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4,
                                          "schedule": "staircase", "milestones": list(FINETUNE_MILESTONES),
                                          **train, "epochs": epochs})


def adenel(runs_dir, name: str, *, train: dict, adenel: dict, callbacks=()) -> dict:
    return cache.named(runs_dir, name, "adenel", cache.train_cfg(train), AdeNeLConfig(**adenel),
                       callbacks=callbacks)


def l1_prune(runs_dir, name: str, *, train: dict, prune: dict) -> dict:
    return cache.named(runs_dir, name, "l1-prune", cache.train_cfg({"lr": 0.1, **train}), L1PruneConfig(**prune))


def grown_widths(res: dict) -> dict[str, int]:
    """The widths of the groups AdeNeL could grow (what the pruning comparator is matched to)."""
    return {g: res["widths"][g] for g in res["candidates"]}


def prune_targets(ours: dict, full: dict) -> dict[str, int]:
    """AdeNeL's found widths for the pruning comparator, capped at the full net's (pruning cannot widen:
    a grown layer wider than the full-size one keeps the full width)."""
    with torch.device("meta"):
        full_w = widths(from_spec(full["spec"]))
    return {g: min(w, full_w[g]) for g, w in grown_widths(ours).items()}


def mean_sd(xs) -> tuple[float, float]:
    xs = [float(x) for x in xs if x is not None]
    if not xs:
        return float("nan"), float("nan")
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def pm(xs, digits: int = 2) -> str:
    m, s = mean_sd(xs)
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def row(method: str, results: list[dict], ref: list[dict] | None = None, ref_name: str = "full", **extra) -> dict:
    """One table row over seeds: accuracy, size, and train cost relative to ``ref`` runs' measured FLOPs."""
    params = statistics.fmean(r["params"] for r in results)
    flops = statistics.fmean(r["flops"] for r in results)
    tf = statistics.fmean(r["train_flops"] for r in results)
    out = {"method": method, **extra, "acc %": pm([r["test_acc"] for r in results]),
           "seeds": len(results), "params": round(params), "FLOPs": round(flops), "train FLOPs": f"{tf:.3g}"}
    if ref:
        rp = statistics.fmean(r["params"] for r in ref)
        rf = statistics.fmean(r["flops"] for r in ref)
        rt = statistics.fmean(r["train_flops"] for r in ref)
        out.update({"params %": 100 * params / rp, "FLOPs %": 100 * flops / rf,
                    f"train-cost % ({ref_name})": 100 * tf / rt})
    return out


def arch(res: dict) -> str:
    return "-".join(str(w) for w in grown_widths(res).values()) if "candidates" in res else res.get("arch", "")


def verdict(ours: list[dict], full: list[dict]) -> str:
    """A computed line: does the grown net match the full net's accuracy (within one spread) with fewer
    parameters and less training compute, on this data?"""
    (ma, sa), (mf, sf) = mean_sd([r["test_acc"] for r in ours]), mean_sd([r["test_acc"] for r in full])
    p = statistics.fmean(r["params"] for r in ours) / statistics.fmean(r["params"] for r in full)
    c = statistics.fmean(r["train_flops"] for r in ours) / statistics.fmean(r["train_flops"] for r in full)
    acc_ok = ma >= mf - max(sa, sf)
    head = (f"AdeNeL {ma:.2f} % vs full {mf:.2f} % with {100 * p:.0f} % of the parameters and {100 * c:.0f} % "
            f"of the training FLOPs: the paper's claim (full accuracy at a fraction of size and cost)")
    if min(len(ours), len(full)) < 2:  # one run: no spread, no verdict
        return f"{head} is only illustrated here (1 run), not judged."
    return f"{head} {'holds' if acc_ok and p < 1 and c < 1 else 'does not hold'} here."
