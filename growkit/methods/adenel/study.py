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
from ...errors import GrowkitError
from ...runs import cache, measured
from .grower import AdeNeLConfig
from .method import FINETUNE_MILESTONES
from .policy import widths
from .prune import L1PruneConfig


BASELINE_SGD = {"lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "schedule": "staircase",
                "milestones": list(FINETUNE_MILESTONES)}  # the paper's baselines (section 4, "good practices")


def baseline(runs_dir, name: str, *, train: dict, epochs: int) -> dict:
    """The full-size net with the paper's baseline SGD (rate 0.1, x0.1 at each third, wd 5e-4)."""
    return study.train(runs_dir, name, **{**BASELINE_SGD, **train, "epochs": epochs})


def adenel(runs_dir, name: str, *, train: dict, adenel: dict, callbacks=()) -> dict:
    return cache.named(runs_dir, name, "adenel", cache.train_cfg(train), AdeNeLConfig(**adenel),
                       callbacks=callbacks)


def l1_prune(runs_dir, name: str, *, train: dict, epochs: int, prune: dict) -> dict:
    """The l1-pruning comparator on the full-width baseline's schedule (:func:`baseline` with the same ``train``
    and ``epochs``): trained, pruned after ``prune_at`` of the epochs, fine-tuned in the rest. Stops with a
    GrowkitError when it pruned nothing (targets at the full widths): that row would be the baseline again."""
    cfg = L1PruneConfig(**prune)
    res = cache.named(runs_dir, name, "l1-prune", cache.train_cfg({**BASELINE_SGD, **train, "epochs": epochs}), cfg)
    if not res["pruned_channels"] and (cfg.targets or cfg.ratio < 1):
        raise GrowkitError(f"{name}: the l1-pruning comparator pruned nothing (targets {res['pruned_to']} are the "
                           f"full widths): it would be the full-width baseline again")
    return res


def prunes(targets: dict[str, int], full: dict) -> bool:
    """Whether pruning the full net of ``full`` (a result) to ``targets`` removes any channel."""
    with torch.device("meta"):
        full_w = widths(from_spec(full["spec"]))
    return any(w < full_w[g] for g, w in targets.items())


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
    """One table row over seeds: accuracy, size (parameters, multiply-adds per image) and train cost (cumulative
    training multiply-adds) relative to ``ref`` runs' measured counts."""
    params = statistics.fmean(r["params"] for r in results)
    macs = statistics.fmean(r["macs"] for r in results)
    tm = statistics.fmean(r["train_macs"] for r in results)
    out = {"method": method, **extra, "acc %": pm([r["test_acc"] for r in results]),
           "seeds": len(results), "params": round(params), "MACs": round(macs), "train MACs": f"{tm:.3g}"}
    if ref:
        rp = statistics.fmean(r["params"] for r in ref)
        rm = statistics.fmean(r["macs"] for r in ref)
        rt = statistics.fmean(r["train_macs"] for r in ref)
        out.update({"params %": 100 * params / rp, "MACs %": 100 * macs / rm,
                    f"train-cost % ({ref_name})": 100 * tm / rt})
    return out


def arch(res: dict) -> str:
    return "-".join(str(w) for w in grown_widths(res).values()) if "candidates" in res else res.get("arch", "")


def seed_of(res: dict) -> int:
    """The training seed a result was run with (from its saved run config)."""
    return int(res["config"]["train"]["seed"])


ACC_MARGIN = 1.0  # accuracy points: "about the same accuracy" within +-1 point (TOST)
FRACTION = 0.5  # "a fraction of the size": parameters and multiply-adds below half the full net's


def verdict(ours: list[dict], full: list[dict], *, margin: float = ACC_MARGIN, fraction: float = FRACTION):
    """The paper's claim "full accuracy at a fraction of the size", as a :class:`growkit.papers.stats.Verdict`:
    accuracy about the same as the full-width net's (TOST within ``margin`` points, paired by seed) and
    parameters and multiply-adds each below ``fraction`` of the full net's (per-seed ratios against the
    fraction, one-sided through the t-interval). It agrees only when all three parts do."""
    from ...papers import stats
    seeds = [seed_of(r) for r in ours]
    full_by_seed = {seed_of(r): r for r in full}
    acc = stats.same({s: r["test_acc"] for s, r in zip(seeds, ours)},
                     {seed_of(r): r["test_acc"] for r in full},
                     f"AdeNeL's accuracy is the full net's within ±{margin:g} points", margin=margin)
    parts = [acc]
    for key, word in (("params", "parameters"), ("macs", "multiply-adds")):
        ratio = {s: r[key] / full_by_seed[s][key] for s, r in zip(seeds, ours)}
        parts.append(stats.lower(ratio, {s: measured.constant(fraction) for s in seeds},
                                 f"its {word} are below {fraction:g} of the full net's", digits=3))
    return stats.all_of(f"AdeNeL matches the full net's accuracy with under {fraction:g} of its parameters "
                        f"and multiply-adds", parts)
