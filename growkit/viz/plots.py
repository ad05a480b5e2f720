"""The paper-style plots the notebooks draw from run records (matplotlib, headless-safe)."""
from __future__ import annotations

import statistics

import numpy as np


def _plt():
    import matplotlib.pyplot as plt  # imported on use: the package itself never needs a display
    return plt


def readable(v: float, _pos=None) -> str:
    """A tick label a reader takes in at a glance: 20k, 1.5M, 0.01 (not 2x10^4)."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{v / scale:.3g}{suffix}"
    return f"{v:.3g}"


def _sub_decade_subs(lo: float, hi: float):
    """Mantissas for the labelled minor ticks of a log axis spanning less than a decade: the sparsest set that
    puts at least three labelled ticks (decades included) inside [lo, hi], or every integer mantissa if that puts
    at least two; None if even that gives fewer (a range under about 1.3x), where plain linear ticks serve
    better."""
    import math
    for subs, least in (((2.0, 5.0), 3), ((2.0, 3.0, 5.0), 3), (tuple(float(m) for m in range(2, 10)), 2)):
        marks = [m * 10.0 ** k for k in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
                 for m in (1.0, *subs)]
        if sum(lo <= v <= hi for v in marks) >= least:
            return subs
    return None


def _round_values(lo: float, hi: float, most: int = 8) -> list[float]:
    """Round numbers in [lo, hi] for the ticks of a log scale: 1, 2 and 5 times a power of ten; the decades
    alone where those are more than ``most``; every integer mantissa where they are fewer than two; three
    two-digit values where even those are."""
    import math
    decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    grid = {m: [float(f"{v * 10.0 ** k:.3g}") for k in decades for v in m if lo <= v * 10.0 ** k <= hi]
            for m in ((1.0,), (1.0, 2.0, 5.0), tuple(float(v) for v in range(1, 10)))}
    for vals in (grid[(1.0, 2.0, 5.0)], grid[tuple(float(v) for v in range(1, 10))]):
        if len(vals) >= 2:
            if len(vals) > most:
                vals = grid[(1.0,)] if len(grid[(1.0,)]) >= 2 else vals
            return vals[:: -(-len(vals) // most)]  # every n-th, so at most ``most``
    return sorted({float(f"{v:.3g}") for v in np.geomspace(lo, hi, 3)})


def log_axis(ax, which: str = "x") -> None:
    """A log axis with readable labels (10k, 100k, 1M). Where the range holds fewer than two decades (say
    2M to 60M: only 10M) the decades alone would leave one label or none, so minor ticks are labelled too: at 2 and 5, or denser where that still leaves fewer than
    two labels, or plain linear ticks on a range too short for any mantissa grid. The choice is made from the
    limits at the call: call it after plotting everything the axis shows."""
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter
    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis.set_major_formatter(FuncFormatter(readable))
    lo, hi = sorted(ax.get_xlim() if which == "x" else ax.get_ylim())
    import math
    decades = sum(lo <= 10.0 ** k <= hi for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
                  ) if lo > 0 else 2
    if lo > 0 and decades < 2:  # one labelled decade or none: label the mantissas between them too
        subs = _sub_decade_subs(lo, hi)
        axis.set_minor_locator(LogLocator(base=10, subs=subs) if subs else MaxNLocator(nbins=4))
        axis.set_minor_formatter(FuncFormatter(readable))
    else:
        axis.set_minor_formatter(NullFormatter())


def epoch_axis(ax, which: str = "x") -> None:
    """Epochs are counted: whole-number ticks only (matplotlib would put 2.5 between 2 and 3 on a short run)."""
    from matplotlib.ticker import MaxNLocator
    (ax.xaxis if which == "x" else ax.yaxis).set_major_locator(MaxNLocator(integer=True))


def growth_curves(rows: list[dict], title: str = "", ax_loss=None, ax_acc=None):
    """Loss (log) and accuracy per epoch, growth events as ticks, fine-tuning shaded (Figures 4 and 8)."""
    plt = _plt()
    fig = None
    if ax_loss is None:
        fig, (ax_loss, ax_acc) = plt.subplots(2, 1, figsize=(7, 5.6), sharex=True)
    ep = [r["epoch"] for r in rows]
    ax_loss.plot(ep, [r["train_loss"] for r in rows], "--", color="tab:red", label="train loss")
    ax_loss.plot(ep, [r["val_loss"] for r in rows], "-", color="tab:red", label="val loss")
    log_axis(ax_loss, "y")
    ax_acc.plot(ep, [r["train_acc"] for r in rows], "--", color="tab:green", label="train acc")
    ax_acc.plot(ep, [r["val_acc"] for r in rows], "-", color="tab:green", label="val acc")
    ax_acc.plot(ep, np.maximum.accumulate([r["val_acc"] for r in rows]), ":", color="tab:purple",
                label="val running max")
    grows = [r["epoch"] for r in rows if r.get("events")]
    fine = [r["epoch"] for r in rows if r["phase"] in ("finetune", "deeper")]
    for ax in (ax_loss, ax_acc):
        for g in grows:
            ax.axvline(g, color="0.6", lw=0.6, zorder=0)
        if fine:
            ax.axvspan(min(fine) - 1, max(fine), color="tab:blue", alpha=0.07, zorder=0)
    ax_acc.set_xlabel("epoch")
    epoch_axis(ax_acc)  # (shared with the loss panel)
    ax_loss.set_ylabel("cross-entropy")
    ax_acc.set_ylabel("accuracy (%)")
    lo = min(min(r["val_acc"], r["train_acc"]) for r in rows)  # every epoch shown, the first ones included
    ax_acc.set_ylim(max(0.0, lo - 2), 100.5)
    ax_loss.legend(fontsize=7, loc="upper right")
    ax_acc.legend(fontsize=7, loc="lower right")
    label = f"{len(grows)} growths (grey lines)" + (", fine-tuning shaded" if fine else "")
    ax_loss.set_title(f"{title}  ({label})" if title else label, fontsize=9)
    return fig


def trajectory_on_surface(ax, surf: dict, traj, growth_epochs=(), title: str = "", levels: int = 25):
    """Loss contours on the PCA plane, the trajectory, growth events (Figures 2 and 3)."""
    X, Y = np.meshgrid(surf["x"], surf["y"])
    loss = np.log10(np.maximum(surf["loss"], 1e-8))
    cs = ax.contour(X, Y, loss, levels=levels, cmap="viridis", linewidths=0.7)
    ax.clabel(cs, cs.levels[::4], fmt=lambda v: readable(float(f"{10 ** v:.2g}")), fontsize=6)  # 130, 32k
    c = traj.coords
    ax.plot(c[:, 0], c[:, 1], "-", color="k", lw=0.8)
    ax.scatter(c[:, 0], c[:, 1], c=traj.epochs, cmap="plasma", s=14, zorder=3)
    ax.plot(*c[0], "s", color="k", ms=6, label=f"start (epoch {traj.epochs[0]})")
    ax.plot(*c[-1], "*", color="red", ms=11, label="final")
    snap_epochs = np.array(traj.epochs)
    marked = sorted({int(snap_epochs[snap_epochs >= g].min()) for g in growth_epochs if (snap_epochs >= g).any()})
    idx = [traj.epochs.index(e) for e in marked]
    if idx:
        ax.plot(c[idx, 0], c[idx, 1], "^", mfc="none", mec="red", ms=8, label="first point after a growth")
    ev = traj.explained_variance_ratio
    ax.set_xlabel(f"PC1 ({100 * ev[0]:.1f}% of variance)")
    ax.set_ylabel(f"PC2 ({100 * ev[1]:.1f}%)")
    ax.set_title(title, fontsize=9)
    ax.text(0.01, 0.01, "parameters that did not exist yet are zero-padded\n"
            f"off the plane: {100 * traj.off_plane_share:.1f}% of the squared distance to the final net",
            transform=ax.transAxes, fontsize=6, va="bottom")
    ax.legend(fontsize=6, loc="upper right")
    return ax


def surface_panels(surfaces: dict, levels: int = 20):
    """Side-by-side loss contours on a shared scale (Figure 6)."""
    plt = _plt()
    n = len(surfaces)
    fig, axes = plt.subplots(1, n, figsize=(4.4 * n, 4.2), squeeze=False, layout="constrained")
    lo = min(np.log10(s["loss"].min()) for s in surfaces.values())
    hi = max(np.log10(np.percentile(s["loss"], 95)) for s in surfaces.values())
    lv = np.linspace(lo, hi, levels)
    for ax, (title, s) in zip(axes[0], surfaces.items()):
        X, Y = np.meshgrid(s["x"], s["y"])
        cs = ax.contourf(X, Y, np.log10(np.clip(s["loss"], 10 ** lo, 10 ** hi)), levels=lv, cmap="viridis")
        ax.contour(X, Y, np.log10(s["loss"]), levels=lv, colors="k", linewidths=0.3)
        ax.plot(0, 0, "*", color="red", ms=10)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("filter-normalised direction 1")
    axes[0][0].set_ylabel("filter-normalised direction 2")
    cbar = fig.colorbar(cs, ax=axes[0].tolist(), label="train loss (log scale)", shrink=0.9)
    cbar.set_ticks(np.log10(_round_values(10 ** lo, 10 ** hi)))  # the levels are log10(loss): label the loss
    cbar.set_ticklabels([readable(v) for v in _round_values(10 ** lo, 10 ** hi)])
    return fig


def accuracy_vs_params(series: dict, autogrow_points: dict, title: str = ""):
    """Accuracy against parameter count, one panel per net (Figure 5): the manual depth search as a line and
    AutoGrow's nets as markers (one per run; a legend entry per marker kind, i.e. per K)."""
    plt = _plt()
    n = len(series)
    cols = 2 if n == 4 else n
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.0 * rows), squeeze=False, layout="constrained")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (ax, (label, pts)) in enumerate(zip(axes.flat, series.items())):
        pts = sorted(pts, key=lambda p: p["params"])
        sd = [statistics.stdev(p["_acc"]) if len(p.get("_acc") or ()) > 1 else 0.0 for p in pts]
        xs, ys = [p["params"] for p in pts], [p["test_acc"] for p in pts]
        ax.plot(xs, ys, "-", color="0.3", lw=1, marker=".",
                label="trained from scratch" + (" (mean ± sd over seeds)" if any(sd) else ""))
        if any(sd):
            ax.errorbar(xs, ys, yerr=sd, fmt="none", ecolor="0.3", capsize=2, lw=0.8)
        for p in pts:
            ax.annotate(p["label"], (p["params"], p["test_acc"]), fontsize=6, textcoords="offset points",
                        xytext=(2, 2))
        shown = set()
        for marker, p in autogrow_points.get(label, []):
            kind = p["label"].split(":")[0]  # "K=3: 4-7-3" -> one legend entry per K
            ax.plot(p["params"], p["test_acc"], marker, color=colors[i % 10], ms=9, alpha=0.8,
                    mfc="none" if marker == "o" else colors[i % 10],
                    label=None if kind in shown else f"AutoGrow {kind}")
            shown.add(kind)
        log_axis(ax)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("parameters")
        ax.set_ylabel("test accuracy (%)")
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, frameon=False)  # off the points
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig
