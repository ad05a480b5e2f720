"""AdeNeL's figures from run records (paper 002, Figures 3 and 4), matplotlib, headless-safe."""
from __future__ import annotations

import numpy as np


def _plt():
    import matplotlib.pyplot as plt
    return plt


def first_layer_filters(records: list[dict], max_filters: int | None = None):
    """Figure 4: one row per capacity check (growth round), the first conv layer's filters (first input
    channel, each scaled to its own range), filters in Gamma's support framed in red. ``records``: the
    grower's ``first_layer`` list (``epoch``, ``weight`` [out][in][k][k], ``support`` [out])."""
    plt = _plt()
    if not records:
        raise ValueError("no first-layer records (the run made no capacity check)")
    n_cols = max(len(r["support"]) for r in records)
    if max_filters:
        n_cols = min(n_cols, max_filters)
    n_rows = len(records)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(0.55 * n_cols + 0.9, 0.6 * n_rows + 0.5), squeeze=False)
    for i, rec in enumerate(records):
        w = np.asarray(rec["weight"], dtype=float)
        for j in range(n_cols):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= len(w):
                ax.axis("off")
                continue
            f = w[j, 0]
            span = np.abs(f).max() or 1.0
            ax.imshow(f / span, cmap="gray", vmin=-1, vmax=1)
            on = rec["support"][j]
            for s in ax.spines.values():
                s.set_edgecolor("tab:red" if on else "0.7")
                s.set_linewidth(2.0 if on else 0.5)
        axes[i, 0].set_ylabel(f"ep {rec['epoch']}", fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle("first conv layer per capacity check; red frame: filter in Gamma's support", fontsize=8)
    return fig


def accuracy_vs_budget(series: dict[str, list[tuple[float, float, float]]],
                       reference: tuple[float, float] | None = None, xlabel: str = "parameters", ax=None):
    """Figure 3: test accuracy against the size the method ended at, one line per method.
    ``series``: name -> [(size, mean accuracy, spread)]; ``reference``: (size, accuracy) of the full net."""
    plt = _plt()
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for name, pts in series.items():
        pts = sorted(pts)
        x = [p[0] for p in pts]
        ax.errorbar(x, [p[1] for p in pts], yerr=[p[2] for p in pts], marker="o", ms=4, capsize=2, label=name)
    if reference is not None:
        ax.axhline(reference[1], color="0.4", ls="--", lw=0.8, label=f"full-size net ({reference[0]:,.0f})")
    xs = [p[0] for pts in series.values() for p in pts] + ([reference[0]] if reference else [])
    if xs and max(xs) / max(min(xs), 1) >= 10:  # a log axis labelled at decades only
        from ...viz.plots import log_axis
        log_axis(ax)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=7)
    return fig
