"""Compute-matched comparisons: did growing a model save training compute against the final-size model trained
from scratch?

Every arm (a grown model, the final-size model from scratch) is a set of seeded runs, each a validation-loss
curve over the training FLOPs it had spent when the loss was measured (:class:`Curve`). Two answers, each with
its interval from :mod:`growkit.papers.stats` (paired by seed where the arms share seeds):

* **loss at equal FLOPs**: every arm's validation loss at the same FLOPs (the budget all arms were given), and
  the difference grown − scratch; growth saved compute when the interval lies below zero;
* **FLOPs to a target loss**: the FLOPs each run needed to first reach a target (linear interpolation between
  the two evaluations around the crossing), and the ratio grown / scratch per seed; summarised on the log scale
  (a geometric mean and its t-interval, mapped back), since a ratio's natural centre is 1, not 0. A run that never
  reaches the target within its curve is "not reached" and counted, never given a made-up number.

The seed-to-seed floor (the scratch arm's standard deviation of final loss) is stated beside every answer: a
difference smaller than it needs many seeds to be seen. Learning rates are chosen per arm from a sweep on
validation loss (:func:`pick_lr`); a best rate at the edge of the sweep is flagged, since the arm's real optimum
may lie beyond it.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from ..errors import GrowkitError
from . import stats


@dataclass(frozen=True)
class Curve:
    """One run's validation loss at increasing training FLOPs (multiply-adds counted by the run)."""
    flops: tuple[float, ...]
    loss: tuple[float, ...]

    def __post_init__(self):
        if len(self.flops) != len(self.loss) or not self.flops:
            raise GrowkitError(f"a curve needs as many losses as FLOPs points, at least one (got {len(self.flops)} "
                               f"FLOPs, {len(self.loss)} losses)")
        for f, v in zip(self.flops, self.loss):
            if not (math.isfinite(f) and math.isfinite(v)):
                raise GrowkitError(f"a curve holds a non-finite point (FLOPs {f}, loss {v})")
        if any(b <= a for a, b in zip(self.flops, self.flops[1:])):
            raise GrowkitError("a curve's FLOPs must increase from point to point")

    @classmethod
    def of(cls, points) -> "Curve":
        """From (FLOPs, loss) pairs."""
        pts = list(points)
        return cls(tuple(float(f) for f, _ in pts), tuple(float(v) for _, v in pts))


def loss_at(curve: Curve, flops: float) -> float:
    """The validation loss at ``flops``, linearly interpolated between the evaluations around it; a FLOPs value
    outside the curve is an error (no extrapolation)."""
    f, v = curve.flops, curve.loss
    if not f[0] <= flops <= f[-1]:
        raise GrowkitError(f"FLOPs {flops:.4g} lie outside the curve ({f[0]:.4g} to {f[-1]:.4g}): no extrapolation")
    if flops in f:
        return v[f.index(flops)]  # an evaluation point: its own value, no rounding
    for i in range(len(f) - 1):
        if f[i] < flops < f[i + 1]:
            t = (flops - f[i]) / (f[i + 1] - f[i])
            return v[i] + t * (v[i + 1] - v[i])
    raise AssertionError("unreachable: flops lies within the curve")


def flops_to(curve: Curve, target: float) -> float | None:
    """The FLOPs at which the loss first reaches ``target`` (at or below), linearly interpolated between the last
    evaluation above it and the first at or below; None when the curve never reaches it."""
    f, v = curve.flops, curve.loss
    if v[0] <= target:
        return f[0]
    for i in range(1, len(f)):
        if v[i] <= target:
            t = (v[i - 1] - target) / (v[i - 1] - v[i])
            return f[i - 1] + t * (f[i] - f[i - 1])
    return None


def pick_lr(sweep: dict[float, list[float]]) -> tuple[float, list[dict]]:
    """The rate with the lowest mean final validation loss over its sweep runs, and the sweep as table rows (rate,
    mean loss, runs, chosen, edge). A diverged run (non-finite loss) counts as never chosen; a sweep whose every
    rate diverged is an error. ``edge`` marks a best rate at the smallest or largest rate tried."""
    if len(sweep) < 1:
        raise GrowkitError("a learning-rate sweep needs at least one rate")
    means = {}
    for lr, losses in sweep.items():
        fin = [float(x) for x in losses if math.isfinite(float(x))]
        means[lr] = statistics.fmean(fin) if fin and len(fin) == len(losses) else math.inf
    best = min(means, key=lambda lr: (means[lr], lr))
    if not math.isfinite(means[best]):
        raise GrowkitError("every rate of the sweep diverged (non-finite validation loss): try smaller rates")
    rates = sorted(sweep)
    edge = len(rates) > 1 and best in (rates[0], rates[-1])
    rows = [{"lr": lr, "mean val loss": means[lr] if math.isfinite(means[lr]) else "diverged",
             "runs": len(sweep[lr]), "chosen": lr == best, "edge": edge and lr == best} for lr in rates]
    return best, rows


def floor(scratch_final: list[float]) -> float:
    """The seed-to-seed floor: the standard deviation of the scratch arm's final losses (0 with one run)."""
    return statistics.stdev(scratch_final) if len(scratch_final) > 1 else 0.0


def compare(grown: dict[int, Curve], scratch: dict[int, Curve], *, budget: float, target: float | None = None,
            name: str = "grown", level: float = 0.95) -> dict:
    """Grown vs scratch at equal FLOPs and to a target loss. ``grown`` / ``scratch``: seed -> curve, each run
    given ``budget`` FLOPs (every curve must reach it). ``target``: the loss to reach (default: the scratch arm's
    mean loss at the budget, so scratch needs about the whole budget by construction). Returns the numbers and
    two verdicts (``equal_flops``, ``to_target``) judged by :mod:`growkit.papers.stats`."""
    if not grown or not scratch:
        raise GrowkitError("compare needs at least one run in each arm")
    seeds_g, seeds_s = sorted(grown), sorted(scratch)
    lg = [loss_at(grown[s], budget) for s in seeds_g]
    ls = [loss_at(scratch[s], budget) for s in seeds_s]
    target = statistics.fmean(ls) if target is None else float(target)
    out = {"budget": budget, "target": target, "seeds": seeds_g, "loss_grown": lg, "loss_scratch": ls,
           "floor": floor(ls)}
    out["equal_flops"] = stats.lower(lg, ls, f"{name} reaches a lower validation loss than scratch at equal FLOPs",
                                     seeds=seeds_g, seeds_b=seeds_s, level=level, digits=4)
    tg = {s: flops_to(grown[s], target) for s in seeds_g}
    ts = {s: flops_to(scratch[s], target) for s in seeds_s}
    out["flops_to_target_grown"], out["flops_to_target_scratch"] = tg, ts
    both = [s for s in seeds_g if s in ts and tg[s] is not None and ts[s] is not None]
    out["ratios"] = {s: tg[s] / ts[s] for s in both}
    out["not_reached"] = {"grown": [s for s in seeds_g if tg[s] is None],
                          "scratch": [s for s in seeds_s if ts[s] is None]}
    claim = f"{name} needs fewer FLOPs than scratch to reach loss {target:.4f}"
    if len(both) >= 2:
        log_g = [math.log(tg[s]) for s in both]
        log_s = [math.log(ts[s]) for s in both]
        iv = stats.difference(log_g, log_s, seeds=both, seeds_b=both, level=level)
        out["ratio"] = {"geometric_mean": math.exp(iv.mean), "low": math.exp(iv.low), "high": math.exp(iv.high),
                        "n": len(both)}
        out["to_target"] = stats.lower(log_g, log_s, claim + " (log FLOPs, paired)", seeds=both, seeds_b=both,
                                       level=level, digits=3)
    else:
        out["ratio"] = ({"geometric_mean": out["ratios"][both[0]], "low": None, "high": None, "n": 1}
                        if both else None)
        out["to_target"] = None  # one run or none: no interval, no verdict
    return out
