"""Plots of continual-learning records: accuracy matrices, parameters per task, chosen operations."""
from __future__ import annotations

import numpy as np

OP_COLORS = {"reuse": "#9ecae1", "adapt": "#fdd0a2", "new": "#e6550d", "deeper": "#756bb1"}


def accuracy_matrix(ax, R, title: str = "", vmin: float = 0.0, vmax: float = 100.0):
    """``R[i][j]``: accuracy on task j (columns) after training task i (rows); blank above the diagonal."""
    A = np.array([[np.nan if v is None else v for v in row] for row in R], dtype=float)
    im = ax.imshow(np.ma.masked_invalid(A), cmap="RdYlGn", vmin=vmin, vmax=vmax)
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            if np.isfinite(A[i, j]):
                ax.text(j, i, f"{A[i, j]:.0f}", ha="center", va="center", fontsize=7)
    n = A.shape[0]
    ax.set_xticks(range(n), [f"T{j}" for j in range(n)], fontsize=7)
    ax.set_yticks(range(n), [f"after T{i}" for i in range(n)], fontsize=7)
    ax.set_xlabel("evaluated task", fontsize=8)
    ax.set_title(title, fontsize=9)
    return im


def params_per_task(ax, series: dict[str, list[int]], title: str = "parameters added per task"):
    """One marker per method and task, side by side within a task (log scale: heads next to whole nets). Markers,
    not bars: a bar on a log axis starts at an arbitrary bottom, so its length would mean nothing."""
    names = list(series)
    n_tasks = max(len(v) for v in series.values())
    width = 0.8 / max(len(names), 1)
    markers = "osD^v<>ph*"
    for k, name in enumerate(names):
        vals = np.asarray(series[name], dtype=float)
        x = np.arange(len(vals)) + (k - (len(names) - 1) / 2) * width
        shown = vals > 0  # nothing added (0) has no place on a log axis: drawn at the bottom as an open marker
        ax.plot(x[shown], vals[shown], markers[k % len(markers)], ls="none", label=name, color=f"C{k}")
        if (~shown).any():
            ax.plot(x[~shown], np.ones((~shown).sum()), markers[k % len(markers)], ls="none", mfc="none",
                    color=f"C{k}")
    ax.set_yscale("log")
    ax.set_xticks(range(n_tasks), [f"T{t}" for t in range(n_tasks)])
    for t in range(n_tasks - 1):
        ax.axvline(t + 0.5, color="0.85", lw=0.8)
    ax.set_ylabel("parameters added (open marker: none)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncol=2)


def choices_grid(ax, choices: list[list[str]], layer_names: list[str] | None = None, title: str = ""):
    """Rows: tasks; columns: layers; each cell the chosen operation and copy (e.g. ``adapt:0``)."""
    from matplotlib.colors import ListedColormap
    ops = list(OP_COLORS)
    codes = np.array([[ops.index(c.split(":")[0]) for c in row] for row in choices])
    ax.imshow(codes, cmap=ListedColormap([OP_COLORS[o] for o in ops]), vmin=-0.5, vmax=len(ops) - 0.5,
              aspect="auto")
    for i, row in enumerate(choices):
        for j, c in enumerate(row):
            ax.text(j, i, c, ha="center", va="center", fontsize=7)
    n_layers = codes.shape[1]
    ax.set_xticks(range(n_layers), layer_names or [f"L{j}" for j in range(n_layers)], fontsize=7)
    ax.set_yticks(range(len(choices)), [f"T{t}" for t in range(len(choices))], fontsize=7)
    ax.set_title(title, fontsize=9)
