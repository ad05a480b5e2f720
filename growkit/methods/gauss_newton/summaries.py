"""Figures 3-4 in numbers: how well estimates follow the truth (:func:`fit_summary`, :func:`prune_bias`), how
often and by how much Gauss-Newton's splits beat the baselines (:func:`quality_summary`, :func:`weighted_wins`),
and the verdict lines over seeds (:func:`verdicts`, through :mod:`growkit.papers.stats`). Pure functions of the
records :mod:`growkit.methods.gauss_newton.study` computes; re-exported there for the notebooks."""
from __future__ import annotations

import math

import numpy as np

from ...papers import stats
from ...runs import measured


def pearson(a, b) -> float:
    """Pearson's r (scipy.stats); NaN where either side is constant."""
    from scipy import stats as sst
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(sst.pearsonr(a, b)[0])


def spearman(a, b) -> float:
    """Spearman's rho (scipy.stats, ties share their mean rank); NaN where either side is constant."""
    from scipy import stats as sst
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(sst.spearmanr(a, b)[0])


def fit_summary(estimated, true) -> dict:
    """How well estimates follow the truth, beyond a correlation: the least-squares line ``estimated =
    slope * true + intercept``, the slope of the least-squares line through the origin (``sum(t e) /
    sum(t^2)``: 1 on the identity line, 0.5 when the estimates are half the truth), the share of points
    within a factor of 2 (``0.5 <= estimated / true <= 2``; a point whose truth is exactly 0 counts only
    when its estimate is 0 too), Pearson and Spearman, and the means of both (their difference is the bias)."""
    from scipy import stats as sst
    t, e = np.asarray(true, dtype=float), np.asarray(estimated, dtype=float)
    if t.shape != e.shape or t.ndim != 1 or not len(t):
        raise ValueError("estimated and true must be 1-d and of the same length")
    if not (np.isfinite(t).all() and np.isfinite(e).all()):
        raise ValueError("estimated and true must be finite")
    if len(t) >= 2 and np.ptp(t) > 0:
        fit = sst.linregress(t, e)
        slope, intercept = float(fit.slope), float(fit.intercept)
    else:
        slope = intercept = float("nan")
    tt = float(t @ t)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(t != 0, e / np.where(t != 0, t, 1.0), np.where(e == 0, 1.0, np.inf))
    within = float(np.mean((ratio >= 0.5) & (ratio <= 2.0)))
    return {"points": len(t), "slope": slope, "intercept": intercept,
            "slope_origin": float(t @ e) / tt if tt > 0 else float("nan"), "within_2x": within,
            "pearson": pearson(e, t), "spearman": spearman(e, t),
            "mean_estimated": float(e.mean()), "mean_true": float(t.mean()), "bias": float(e.mean() - t.mean())}


def prune_bias(summary: list[dict]) -> list[dict]:
    """The prune rows of :func:`estimate_vs_truth`'s summary as a table: mean estimated and true loss change
    of removing a channel per layer, and their difference (negative: pruning looks cheaper than it is)."""
    return [{"layer": r["layer"], "channels": r["channels"], "mean estimated": r["mean_estimated"],
             "mean true": r["mean_true"], "bias": r["bias"], "slope_origin": r["slope_origin"]}
            for r in summary if r["kind"] == "prune"]


BASELINES = ("splitting", "steepest_descent", "expanded")


def weighted_wins(rows: list[dict], other: str, key: str = "gauss_newton") -> float:
    """The share of wins of ``key`` over ``other`` weighted by the size of the decrease at stake: channel c
    weighs ``w_c = max(0, -dL_key, -dL_other)`` (the larger true decrease of the two) and counts as a win
    when ``key``'s loss change is lower; ``sum(w_c wins_c) / sum(w_c)``. A channel where neither lowers the
    loss weighs nothing; NaN when no channel does."""
    w = [max(0.0, -r[key], -r[other]) for r in rows]
    total = sum(w)
    return sum(wc for wc, r in zip(w, rows) if r[key] < r[other]) / total if total > 0 else float("nan")


def quality_summary(rows: list[dict]) -> dict:
    """Figure 4 in numbers: per baseline the share of channels where Gauss-Newton's split lowers the true
    loss more (``gn_beats_X``) and the same share weighted by the decrease at stake (``gn_beats_X_weighted``,
    :func:`weighted_wins`); the total decrease of each method, and the median ratio of Gauss-Newton's decrease
    to the expanded net's where that one decreases the loss."""
    n = len(rows)
    out: dict = {"channels": n}
    for b in BASELINES:
        if rows and b not in rows[0]:
            continue
        out[f"gn_beats_{b}"] = sum(r["gauss_newton"] < r[b] for r in rows) / max(n, 1)
        out[f"gn_beats_{b}_weighted"] = weighted_wins(rows, b)
    for m in ("gauss_newton",) + BASELINES:
        if rows and m in rows[0]:
            out[f"decrease_{m}"] = -sum(r[m] for r in rows)
    ratios = sorted(r["gauss_newton"] / r["expanded"] for r in rows if r["expanded"] < 0)
    out["median_gn_over_expanded_decrease"] = ratios[len(ratios) // 2] if ratios else float("nan")
    return out


# The paper's own statement of each claim judged below (the paper_vs_kit "paper" column).
PAPER = {
    "identity": "Figure 3: estimated and true loss changes lie on the identity line (VGG-19, CIFAR-10)",
    "unbiased": "Figure 3 / appendix: the estimate of a removal is accurate (no number given)",
    "beats": "Figure 4: Gauss-Newton's split most often decreases the loss more than steepest descent + line "
             "search (first layer of VGG-19, CIFAR-10; a count read from the bars, no number given)",
    "on_par": "Figure 4: on par with optimising the expanded net, most often within a constant factor",
    "accurate": "Tables 1-2: grown nets as accurate as the full-width nets: VGG-19 seed 5.6-6.5 % error vs 6.3 % "
                "(CIFAR-10), 27.2-28.0 % vs 27.6 % (CIFAR-100); MobileNetV1 seed 5.8-6.2 % vs 6.6 %, "
                "25.9-27.2 % vs 28.7 %",
    "fewer": "Tables 1-2: VGG-19 0.6-2.2M vs 20.0M parameters; MobileNetV1 0.4-1.4M vs 3.2-3.3M",
    "monotone": "Tables 1-2: VGG-19 1.2M at lambda_p 3e-7, 0.6M at 1e-6 (CIFAR-10); MobileNetV1 0.8M, 0.5M, "
                "0.4M at 3e-8, 3e-7, 1e-6",
    "bottleneck": "Figure 2: a bottleneck-shaped net grown from a uniform VGG-19 seed (CIFAR-100, one net)",
}


def _claim(kind: str, v: stats.Verdict) -> dict:
    """A claim as :func:`growkit.papers.report.judge` records it: the verdict and the paper's statement."""
    return {"claim": v.claim, "paper": PAPER[kind], "verdict": v}


def verdicts(fig3: dict, fig4: dict, **kw) -> list[str]:
    """The agrees / disagrees lines of Figures 3-4 (:func:`verdict_claims`)."""
    return [c["verdict"].text for c in verdict_claims(fig3, fig4, **kw)]


def verdict_claims(fig3: dict, fig4: dict, *, identity_margin: float = 0.25, bias_margin: float = 0.25
                   ) -> list[dict]:
    """The claims of Figures 3-4, from per-seed numbers, through :mod:`growkit.papers.stats`, each with its
    verdict and the paper's statement (for :func:`growkit.papers.report.judge`).

    ``fig3``: seed -> :func:`estimate_vs_truth`'s summary rows; ``fig4``: seed -> :func:`quality_summary`.
    Claims judged (paired by seed):

    * per layer and kind, "the estimates lie on the identity line": the slope of the fit through the
      origin equals 1 within ``identity_margin`` (TOST);
    * per layer, "the prune estimate is unbiased": mean estimated and mean true loss change of a removal
      are the same within ``bias_margin`` x the mean true change (TOST);
    * "Gauss-Newton beats the splitting direction + line search" (and steepest descent from theta_0): its
      decrease-weighted win share is higher than 0.5; "on par with optimising the expanded net": that share
      is 0.5 within 0.15 (TOST).
    One seed gives "illustrative (1 run)" lines."""
    lines = []
    seeds = sorted(fig3)
    if seeds:
        keys = [(r["layer"], r["kind"]) for r in fig3[seeds[0]]]
        for layer, kind in keys:
            per = {s: next(r for r in fig3[s] if (r["layer"], r["kind"]) == (layer, kind)) for s in seeds}
            slopes = {s: per[s]["slope_origin"] for s in seeds}
            if all(math.isfinite(v) for v in slopes.values()):
                lines.append(_claim("identity", stats.same(
                    slopes, {s: measured.constant(1.0) for s in seeds}, f"Figure 3, {layer} {kind}s: the estimates lie on the identity "
                    "line (slope through the origin 1)", margin=identity_margin)))
            if kind == "prune":
                est = {s: per[s]["mean_estimated"] for s in seeds}
                true = {s: per[s]["mean_true"] for s in seeds}
                ref = abs(sum(true.values()) / len(seeds))
                if ref > 0:
                    lines.append(_claim("unbiased", stats.same(
                        est, true, f"{layer}: the prune estimate is unbiased (mean estimated = mean true loss change "
                        "of a removal)", relative=bias_margin, reference=ref, digits=3)))
    seeds4 = sorted(fig4)
    for b, what in (("splitting", "the splitting direction + line search"),
                    ("steepest_descent", "steepest descent from theta_0 + line search")):
        vals = {s: fig4[s].get(f"gn_beats_{b}_weighted") for s in seeds4}
        if vals and all(v is not None and math.isfinite(v) for v in vals.values()):
            lines.append(_claim("beats", stats.higher(vals, {s: measured.constant(0.5) for s in seeds4}, f"Figure 4: Gauss-Newton "
                                                      f"beats {what} (decrease-weighted win share above 0.5)")))
    vals = {s: fig4[s].get("gn_beats_expanded_weighted") for s in seeds4}
    if vals and all(v is not None and math.isfinite(v) for v in vals.values()):
        lines.append(_claim("on_par", stats.same(vals, {s: measured.constant(0.5) for s in seeds4}, "Figure 4: Gauss-Newton is on par "
                                                 "with optimising the expanded net (decrease-weighted win share 0.5)",
                                                 margin=0.15)))
    return lines


def bottleneck_ratio(widths) -> float:
    """How much narrower a net is in the middle: the mean width of the middle third of its layers over the
    mean width of the outer two thirds (below 1: a bottleneck, Figure 2's "bottleneck-shaped")."""
    w = [float(x) for x in widths]
    if len(w) < 3:
        raise ValueError(f"a bottleneck needs at least 3 layers, got {len(w)}")
    a, b = len(w) // 3, len(w) - len(w) // 3
    outer = w[:a] + w[b:]
    return float(np.mean(w[a:b]) / np.mean(outer))


def stronger(baselines: dict) -> tuple[str, str]:
    """(stronger, other) of the two baselines by mean test accuracy over seeds: every verdict is judged
    against the stronger, the other shown beside it."""
    mean = {k: float(np.mean(list(baselines[k]["test"].values()))) for k in ("matched", "converged")}
    return ("converged", "matched") if mean["converged"] > mean["matched"] else ("matched", "converged")


def table_verdicts(rows: list[dict], baselines: dict, **kw) -> list[str]:
    """The verdict lines of Tables 1-2 and Figure 2 (:func:`table_claims`)."""
    return [c["verdict"].text for c in table_claims(rows, baselines, **kw)]


def table_claims(rows: list[dict], baselines: dict, *, acc_margin: float = 1.0, figure2: tuple | None = None
                 ) -> list[dict]:
    """The claims of Tables 1-2 and Figure 2 over seeds, through :mod:`growkit.papers.stats`, each with its
    verdict and the paper's statement (for :func:`growkit.papers.report.judge`).

    ``rows``: :func:`~growkit.methods.gauss_newton.study.search_row` per seed (with ``dataset``, ``net``,
    ``lambda_p``, ``seed`` and the found widths); ``baselines``: (dataset, net) -> {"matched" / "converged":
    {"test": {seed: test %}, "epochs": ...}, "params": full-width parameters}. Claims (paired by seed):

    * per lambda_p, "the grown net retrained from scratch is as accurate as the full-width net": not more
      than ``acc_margin`` points of test accuracy below the stronger baseline (non-inferiority);
    * per lambda_p, "with fewer parameters than the full-width net";
    * per net, "a larger lambda_p grows a smaller net" (every step of lambda_p);
    * Figure 2 (the group ``figure2`` = (dataset, net, lambda_p), if given): "the grown net is
      bottleneck-shaped" (:func:`bottleneck_ratio` below 1)."""
    lines = []
    groups: dict[tuple, dict] = {}
    for r in rows:
        if r.get("scratch test %") is None:
            continue
        g = groups.setdefault((r["dataset"], r["net"], r["lambda_p"]), {"acc": {}, "params": {}, "widths": {}})
        g["acc"][r["seed"]], g["params"][r["seed"]] = r["scratch test %"], r["params"]
        g["widths"][r["seed"]] = [int(x) for x in str(r["found widths"]).split("-")]
    for (ds, net, lam), g in groups.items():
        base = baselines.get((ds, net))
        if base is None:
            continue
        best, other = stronger(base)
        seeds = sorted(g["acc"])
        b = {s: base[best]["test"][s] for s in seeds}
        o_mean = float(np.mean([base[other]["test"][s] for s in seeds]))
        lines.append(_claim("accurate", stats.not_lower(
            g["acc"], b, f"{ds} {net} lambda_p={lam}: the grown net retrained from scratch is as accurate as the "
            f"full-width net ({best}, {base[best]['epochs']}; {other}, {base[other]['epochs']}: {o_mean:.2f} %)", margin=acc_margin)))
        full = {s: base["params"] for s in seeds}
        lines.append(_claim("fewer", stats.lower(g["params"], full, f"{ds} {net} lambda_p={lam}: with fewer "
                                                 f"parameters than the full-width net ({base['params']:,})",
                                                 digits=0)))
    by_net: dict[tuple, list] = {}
    for (ds, net, lam) in groups:
        by_net.setdefault((ds, net), []).append(lam)
    for (ds, net), lams in by_net.items():
        lams = sorted(lams, key=float)
        if len(lams) < 2:
            continue
        parts = [stats.lower(groups[(ds, net, hi)]["params"], groups[(ds, net, lo)]["params"],
                             f"lambda_p {hi} vs {lo}", digits=0) for lo, hi in zip(lams, lams[1:])]
        lines.append(_claim("monotone", stats.all_of(f"{ds} {net}: a larger lambda_p grows a smaller net "
                                                     "(parameters)", parts)))
    if figure2 is not None and tuple(figure2) in groups:
        g = groups[tuple(figure2)]
        ratio = {s: bottleneck_ratio(w) for s, w in g["widths"].items()}
        lines.append(_claim("bottleneck", stats.lower(
            ratio, {s: measured.constant(1.0) for s in ratio}, f"Figure 2, {' '.join(map(str, figure2))}: the grown net is "
            "bottleneck-shaped (mean width of the middle third of its layers over the outer thirds' below 1)")))
    return lines
