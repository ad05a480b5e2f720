"""Learn to Grow's comparison helpers for notebooks and scripts: the summary table and the verdicts.

``results`` maps ``(arm, seed)`` to a run's result (:func:`growkit.methods.learn_to_grow.loop.run_stream` or
a run directory's ``result.json``). Every column says what it holds: the mean ± sample standard deviation
(n − 1) over the seeds, or one seed's values, naming the seed. Verdicts go through
:mod:`growkit.papers.stats`: paired by seed (every arm runs the same seeds), a 95 % t-interval, and a direction
only when the interval excludes zero ("not resolved at n = k" otherwise).
"""
from __future__ import annotations

import statistics

from ...papers import stats

NAMES = {"l2g": "Learn to Grow", "l2g_deeper": "Learn to Grow + deeper", "l2g_tuned": "Learn to Grow, tuned reuse",
         "ewc": "EWC", "joint": "joint (multi-task)", "finetune": "fine-tuning", "separate": "separate nets",
         "frozen": "frozen trunk"}

# the options of each arm on top of the common settings
SETTINGS = {"l2g": {}, "l2g_deeper": {"deeper": True}, "l2g_tuned": {"tune_reuse": True},
            "ewc": {"method": "ewc"}, "joint": {"method": "joint"}, "finetune": {"method": "finetune"},
            "separate": {"method": "separate"}, "frozen": {"method": "frozen"}}

# (first, second, quantity, expected direction): what Li et al. report (Learn to Grow above fine-tuning, EWC and
# a shared trunk, with fewer parameters than separate nets) or what an upper bound implies (joint, separate)
CLAIMS = [("l2g", "finetune", "avg_acc", "higher"), ("l2g", "ewc", "avg_acc", "higher"),
          ("l2g", "frozen", "avg_acc", "higher"), ("joint", "l2g", "avg_acc", "higher"),
          ("separate", "l2g", "avg_acc", "higher"), ("ewc", "finetune", "bwt", "higher"),
          ("l2g", "separate", "total_params", "lower")]

QUANTITY = {"avg_acc": "average accuracy", "bwt": "BWT", "total_params": "parameters"}

# What the paper (Li et al. 2019; the project's summary 004 gives no numbers) says about each claim of CLAIMS;
# None: the kit's own expectation (an upper bound, or another method's purpose), not the paper's claim.
PAPER = {("l2g", "finetune", "avg_acc"): "Learn to Grow overcomes the forgetting of plain fine-tuning (no number in "
                                         "the project's summary)",
         ("l2g", "ewc", "avg_acc"): "Learn to Grow above EWC on permuted MNIST and split CIFAR-100 (no number in the "
                                    "project's summary)",
         ("l2g", "separate", "total_params"): "far fewer parameters than a net per task (no number in the project's "
                                              "summary)"}


def paper_claims(verdicts_: list[stats.Verdict], claims=CLAIMS) -> list[dict]:
    """The verdicts that judge a claim of the paper, as :func:`growkit.papers.report.judge` records them."""
    by_claim = {f"{QUANTITY[q]}: {NAMES.get(a, a)} {d} than {NAMES.get(b, b)}": (a, b, q) for a, b, q, d in claims}
    return [{"claim": v.claim, "paper": PAPER[by_claim[v.claim]], "verdict": v} for v in verdicts_
            if by_claim.get(v.claim) in PAPER]


def mean_sd(values, digits: int = 2) -> str:
    """``mean ± sample sd``; one value alone (no spread to show)."""
    v = [float(x) for x in values]
    if len(v) == 1:
        return f"{v[0]:,.{digits}f}"
    return f"{statistics.fmean(v):,.{digits}f} ± {statistics.stdev(v):,.{digits}f}"


def _over(n: int) -> str:
    return "1 seed" if n == 1 else f"mean ± sd, {n} seeds"


def table(results: dict, arms: list[str], seeds: list[int]) -> list[dict]:
    """One row per arm; columns named with what they hold."""
    n, s0 = len(seeds), seeds[0]
    rows = []
    for m in arms:
        rs = [results[m, s] for s in seeds]
        rows.append({
            "method": NAMES.get(m, m), "seeds": n,
            f"avg acc % ({_over(n)})": mean_sd(r["avg_acc"] for r in rs),
            f"BWT ({_over(n)})": mean_sd(r["bwt"] for r in rs),
            f"forgetting ({_over(n)})": mean_sd(r["forgetting"] for r in rs),
            f"parameters in all ({_over(n)})": mean_sd((r["total_params"] for r in rs), 0),
            f"parameters added per task (seed {s0})": " / ".join(map(str, results[m, s0]["params_per_task"]))})
    return rows


def verdicts(results: dict, arms: list[str], seeds: list[int], claims=CLAIMS) -> list[stats.Verdict]:
    """The claims among ``arms``, each judged from the paired t-interval of its quantity over ``seeds``."""
    out = []
    for a, b, q, direction in claims:
        if a not in arms or b not in arms:
            continue
        va = {s: results[a, s][q] for s in seeds}  # measured numbers: each names its run (the verdicts' trace)
        vb = {s: results[b, s][q] for s in seeds}
        claim = f"{QUANTITY[q]}: {NAMES.get(a, a)} {direction} than {NAMES.get(b, b)}"
        judge = stats.higher if direction == "higher" else stats.lower
        out.append(judge(va, vb, claim, digits=0 if q == "total_params" else 2))
    return out


def line(v: stats.Verdict) -> str:
    """A verdict as one line that claims no more than the interval: resolved as expected, resolved the other
    way, or not resolved at n = k."""
    head = {stats.AGREES: "Resolved, as expected", stats.DISAGREES: "Resolved, the other way",
            stats.NOT_RESOLVED: f"Not resolved at n = {v.interval.n}",
            stats.ILLUSTRATIVE: "Illustrative (1 run)"}[v.word]
    return f"{head}: {v.claim} ({v.kit})."
