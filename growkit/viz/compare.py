"""``growkit plot RUN_DIR... --out FILE``: any runs side by side, read from their records.

Three panels over the epochs: validation accuracy, parameters, and multiply-adds per image (MACs, one
forward pass: the papers' "FLOPs"); for language-model runs (``growkit lm``) over the training multiply-adds
spent: validation loss, parameters and training multiply-adds per token. One colour per run, every growth
event marked on its run's curves
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
# a language-model run (`growkit lm`): its rows every eval_every steps, drawn over the compute spent
LM_PANELS = (("val_loss", "val loss (nats/token)"), ("params", "parameters"),
             ("macs_per_token", "training multiply-adds\nper token"))
LM_X = ("train_macs", "training multiply-adds (MACs; FLOPs = 2 x MACs)")


def is_lm(rows: list[dict]) -> bool:
    """Rows of a language-model run (`growkit lm`): validation loss per step, no accuracy."""
    return bool(rows) and "val_acc" not in rows[0] and "step" in rows[0] and "val_loss" in rows[0]


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
    keys = [*LM_PANELS, LM_X] if is_lm(rows) else PANELS
    for r in rows:
        for key, _ in keys:
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
    lm = [is_lm(rows) for _, rows in runs]
    if any(lm) and not all(lm):
        raise GrowkitError("language-model runs (drawn over training multiply-adds) and image runs (over epochs) "
                           "cannot share a figure; plot them apart")
    panels, (xkey, xname) = (LM_PANELS, LM_X) if all(lm) else (PANELS, ("epoch", "epoch"))
    first = panels[0][0]
    plt = _plt()
    fig, axes = plt.subplots(len(panels), 1, figsize=(7.5, 7.5), sharex=True)
    for i, (d, rows) in enumerate(runs):
        colour = f"C{i % 10}"
        ep = [r[xkey] for r in rows]
        grows = [r for r in rows if r.get("events")]
        for ax, (key, _) in zip(axes, panels):
            # sizes change at the end of a growth epoch and hold until the next: steps, not ramps
            ax.plot(ep, [float("nan") if r[key] is None else r[key] for r in rows], "-", color=colour, lw=1.2,
                    drawstyle="default" if key == first else "steps-pre",
                    label=label(d, rows) if key == first else None)
            ax.plot([r[xkey] for r in grows], [float("nan") if r[key] is None else r[key] for r in grows], "o",
                    color=colour, ms=4)
            for r in grows:
                ax.axvline(r[xkey], color=colour, lw=0.5, alpha=0.4, zorder=0)
    from matplotlib.ticker import FuncFormatter
    for ax, (key, name) in zip(axes, panels):
        ax.set_ylabel(name)
        if key != first:  # linear (a block adds a fixed amount), labelled 80k, 1.5M
            ax.yaxis.set_major_formatter(FuncFormatter(readable))
    axes[-1].set_xlabel(xname)
    if xkey == "epoch":
        epoch_axis(axes[-1])
    else:
        axes[-1].xaxis.set_major_formatter(FuncFormatter(readable))
    axes[0].legend(fontsize=7, loc="upper right" if xkey != "epoch" else "lower right")
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
