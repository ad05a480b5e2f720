"""The Gauss-Newton paper's figures, drawn from what :mod:`growkit.methods.gauss_newton.study` computed:
the score table of a search (Figure 2), estimated against true loss changes (Figure 3), the true decrease
per channel of three ways to split (Figure 4), and accuracy against parameters of the found nets
(Tables 1-2 as a picture)."""
from __future__ import annotations

import numpy as np


def plot_scores(scores: dict, ax=None, title: str = ""):
    """Figure 2: every channel of every layer as a cell, red where splitting it scores best (darker:
    higher score), blue where pruning does, white where neither is positive; the chosen ones (``scores
    ["chosen"]``: per layer the split and the pruned channels applied) outlined in black."""
    import matplotlib.pyplot as plt  # imported on use: the package itself never needs a display
    from matplotlib.patches import Rectangle
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 4))
    layers = list(scores["split"])
    width = max(len(scores["split"][g]) for g in layers)
    img = np.full((width, len(layers)), np.nan)
    outlined = []
    for j, g in enumerate(layers):
        s, p = (np.asarray(scores[k][g], dtype=float) for k in ("split", "prune"))
        best = np.where(s >= p, s, -p)  # positive: split wins, negative: prune wins
        best[np.maximum(s, p) <= 0] = 0.0
        order = np.argsort(-best, kind="stable")
        img[:len(best), j] = best[order]
        row = {int(k): i for i, k in enumerate(order)}
        splits, prunes = (scores.get("chosen") or {}).get(g, [[], []])
        outlined += [(j, row[int(k)]) for k in list(splits) + list(prunes)]
    lim = np.nanmax(np.abs(img)) or 1.0
    im = ax.imshow(img, cmap="coolwarm", vmin=-lim, vmax=lim, aspect="auto", origin="upper")
    for j, i in outlined:
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", lw=1.2))
    ax.set_xticks(range(len(layers)), [g.replace("layers.", "").replace("blocks.", "b") for g in layers],
                  rotation=90, fontsize=7)
    ax.set_xlabel("layer")
    ax.set_ylabel("channel (sorted by score)")
    ax.set_title(title or "split (red) / prune (blue) scores of the last morphism phase")
    plt.colorbar(im, ax=ax, label="score (split > 0, prune < 0)")
    return ax


def plot_estimates(rows: list[dict], stats: list[dict]):
    """Figure 3: estimated against true loss change, one panel per layer (columns) and kind (rows: splits,
    prunes), the identity dashed, the least-squares line solid, its numbers in the title."""
    import matplotlib.pyplot as plt
    layers = list(dict.fromkeys(st["layer"] for st in stats))
    kinds = list(dict.fromkeys(st.get("kind", "split") for st in stats))
    fig, axes = plt.subplots(len(kinds), len(layers), figsize=(3.6 * len(layers), 3.3 * len(kinds)),
                             constrained_layout=True, squeeze=False)
    for st in stats:
        kind = st.get("kind", "split")
        ax = axes[kinds.index(kind)][layers.index(st["layer"])]
        pts = [(r["true"], r["estimated"]) for r in rows if r["layer"] == st["layer"] and r.get("kind", "split") == kind]
        t, e = (np.asarray(v, dtype=float) for v in zip(*pts))
        lo, hi = min(t.min(), e.min()), max(t.max(), e.max())
        ax.plot([lo, hi], [lo, hi], "--", color="0.6", lw=1)
        if np.isfinite(st.get("slope", np.nan)):
            ax.plot([lo, hi], [st["slope"] * lo + st["intercept"], st["slope"] * hi + st["intercept"]], "-",
                    color="C3", lw=1)
        ax.scatter(t, e, s=18, facecolors="none", edgecolors="C0" if kind == "split" else "C1")
        ax.set_title(f"{st['layer']} {kind}s: fit {st.get('slope', np.nan):.2f}x{st.get('intercept', np.nan):+.3f}, "
                     f"origin {st.get('slope_origin', np.nan):.2f}, r {st['pearson']:.2f}, "
                     f"2x {100 * st.get('within_2x', np.nan):.0f}%", fontsize=7)
        ax.set_xlabel("true dL (brute force)")
        ax.set_ylabel("estimated dL (Gauss-Newton, EMA)")
    return fig


QUALITY = (("expanded", "optimise the expanded net"), ("gauss_newton", "Gauss-Newton"),
           ("splitting", "splitting direction + line search"),
           ("steepest_descent", "steepest descent from theta_0 + line search"))


def plot_quality(rows: list[dict]):
    """Figure 4: true decrease of the loss per channel, one bar per method present, sorted by the expanded
    baseline."""
    import matplotlib.pyplot as plt
    rows = sorted(rows, key=lambda r: r["expanded"])
    methods = [(k, label) for k, label in QUALITY if rows and k in rows[0]]
    x = np.arange(len(rows))
    w = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * len(rows)), 3.2), constrained_layout=True)
    for i, (key, label) in enumerate(methods):
        ax.bar(x + (i - (len(methods) - 1) / 2) * w, [-r[key] for r in rows], w, label=label)
    ax.set_xticks(x, [str(r["channel"]) for r in rows], fontsize=7)
    ax.set_xlabel("channel (sorted by the expanded baseline)")
    ax.set_ylabel("true decrease of the loss")
    ax.legend(fontsize=7)
    return fig


LAMBDA_MARKERS = ("o", "^", "D", "v", "P", "X")  # one shape per lambda_p in the Tables 1-2 plot


def plot_accuracy_vs_params(rows: list[dict], baselines: list[dict] | None = None):
    """Tables 1-2 as a picture: accuracy after retraining against parameters, one marker per (net, lambda_p)
    at the mean over seeds with the sd in both directions: the colour names the net, the marker's shape its
    lambda_p (in the legend; nearby points of a search sit on top of each other, so no label is written beside
    them); the full-width baselines (rows of ``study.baseline_rows``) as open squares."""
    import matplotlib.pyplot as plt
    from ...viz.plots import log_axis
    fig, ax = plt.subplots(figsize=(6, 3.8), constrained_layout=True)
    keys = sorted({(r["dataset"], r["net"]) for r in rows})
    lambdas = sorted({r["lambda_p"] for r in rows if r["scratch test %"] is not None}, key=float)
    shape = {lam: LAMBDA_MARKERS[k % len(LAMBDA_MARKERS)] for k, lam in enumerate(lambdas)}
    for i, (ds, net) in enumerate(keys):
        rs = [r for r in rows if (r["dataset"], r["net"]) == (ds, net) and r["scratch test %"] is not None]
        ax.plot([], [], "-", lw=5, color=f"C{i}", label=f"{net} ({ds})")  # the net's colour, in the legend
        for lam in sorted({r["lambda_p"] for r in rs}, key=float):
            g = [r for r in rs if r["lambda_p"] == lam]
            p, a = np.array([r["params"] for r in g], float), np.array([r["scratch test %"] for r in g], float)
            sd = (lambda v: v.std(ddof=1) if len(v) > 1 else 0.0)
            ax.errorbar(p.mean(), a.mean(), xerr=sd(p), yerr=sd(a), fmt=shape[lam], color=f"C{i}", capsize=2,
                        alpha=0.85)
        for b in baselines or []:
            if (b["dataset"], b["net"]) == (ds, net):
                ax.errorbar(b["params"], b["test %"], yerr=b["test % sd"], fmt="s", mfc="none", color=f"C{i}",
                            capsize=2, label=f"{net} full width, {b['baseline'].split(', ')[-1]} ({b['epochs']} ep.)")
    for lam in lambdas:
        ax.plot([], [], shape[lam], color="0.4", label=f"λ_p = {lam}")
    log_axis(ax)
    ax.set_xlabel("parameters of the found net")
    ax.set_ylabel("test accuracy retrained from scratch (%)")
    ax.legend(fontsize=6, loc="best")
    return fig
