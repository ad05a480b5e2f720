"""``growkit plot RUN_DIR... --out FILE``: any runs side by side, read from their records.

Three panels over the epochs: validation accuracy, parameters, and multiply-adds per image (MACs, one
forward pass: the papers' "FLOPs"), one colour per run, every growth event marked on its run's curves
(a dot, and a thin line of the run's colour). A run that grows shows its steps in the parameter and MACs
panels; a fixed net is a flat line there. Reads ``metrics.jsonl`` only, so it draws a run that is still
training or was interrupted as far as it got.
"""
from __future__ import annotations

from pathlib import Path

from ..engine.records import MetricsLog
from ..errors import GrowkitError
from .plots import _plt, epoch_axis, readable

PANELS = (("val_acc", "val accuracy (%)"), ("params", "parameters"),
          ("macs", "multiply-adds per image\n(MACs)"))


def read_rows(run_dir: str | Path) -> list[dict]:
    """The metrics rows of one run directory; a one-line GrowkitError when there are none to draw."""
    d = Path(run_dir)
    if not d.is_dir():
        raise GrowkitError(f"{run_dir}: no such run directory")
    log = d / "metrics.jsonl"
    if not log.is_file():
        hint = " (a learn-to-grow run keeps tasks/, not per-epoch records)" if (d / "tasks").is_dir() else ""
        raise GrowkitError(f"{run_dir} holds no metrics.jsonl: not a growkit run directory{hint}")
    rows = MetricsLog(log).read()
    if not rows:
        raise GrowkitError(f"{log} holds no finished epoch yet")
    for r in rows:
        for key, _ in PANELS:
            v = r.get(key)
            number = isinstance(v, (int, float)) and not isinstance(v, bool)
            if not number and not (key == "val_acc" and v is None and key in r):  # (no validation split)
                raise GrowkitError(f"{log}: epoch {r['epoch']} has no number for {key!r}")
    return rows


def label(run_dir: str | Path, rows: list[dict]) -> str:
    name = Path(run_dir).resolve().name
    grown = sum(len(r.get("events") or ()) for r in rows)
    return f"{name}: {rows[-1].get('arch', '?')}" + (f", {grown} growth{'s' if grown != 1 else ''}" if grown else "")


def plot_runs(run_dirs, title: str = ""):
    """The figure (matplotlib) of ``run_dirs``' accuracy, parameters and multiply-adds, growth events marked."""
    if not run_dirs:
        raise GrowkitError("name at least one run directory")
    runs = [(d, read_rows(d)) for d in run_dirs]
    plt = _plt()
    fig, axes = plt.subplots(len(PANELS), 1, figsize=(7.5, 7.5), sharex=True)
    for i, (d, rows) in enumerate(runs):
        colour = f"C{i % 10}"
        ep = [r["epoch"] for r in rows]
        grows = [r for r in rows if r.get("events")]
        for ax, (key, _) in zip(axes, PANELS):
            # sizes change at the end of a growth epoch and hold until the next: steps, not ramps
            ax.plot(ep, [float("nan") if r[key] is None else r[key] for r in rows], "-", color=colour, lw=1.2,
                    drawstyle="default" if key == "val_acc" else "steps-pre",
                    label=label(d, rows) if key == "val_acc" else None)
            ax.plot([r["epoch"] for r in grows], [float("nan") if r[key] is None else r[key] for r in grows], "o",
                    color=colour, ms=4)
            for r in grows:
                ax.axvline(r["epoch"], color=colour, lw=0.5, alpha=0.4, zorder=0)
    for ax, (key, name) in zip(axes, PANELS):
        ax.set_ylabel(name)
        if key != "val_acc":  # linear (a block adds a fixed amount), labelled 80k, 1.5M
            from matplotlib.ticker import FuncFormatter
            ax.yaxis.set_major_formatter(FuncFormatter(readable))
    axes[-1].set_xlabel("epoch")
    epoch_axis(axes[-1])
    axes[0].legend(fontsize=7, loc="lower right")
    head = "growth events: dots (and thin lines) on each run's curves"
    axes[0].set_title(f"{title}\n{head}" if title else head, fontsize=9)
    fig.tight_layout()
    return fig


def save(run_dirs, out: str | Path, title: str = "") -> Path:
    """Draw ``run_dirs`` into the image ``out`` (its suffix picks the format: .png, .pdf, .svg)."""
    out = Path(out)
    if out.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise GrowkitError(f"--out {out}: the file name must end in .png, .pdf or .svg")
    if out.is_dir():
        raise GrowkitError(f"--out {out} is a folder; name a file")
    if not out.parent.is_dir():
        raise GrowkitError(f"--out {out}: the folder {out.parent} does not exist")
    fig = plot_runs(run_dirs, title)
    try:
        fig.savefig(out, dpi=120)
    finally:
        _plt().close(fig)
    return out
