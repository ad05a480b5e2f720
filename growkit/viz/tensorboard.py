"""A TensorBoard callback (optional extra: ``pip install growkit[tensorboard]``).

    from growkit.viz.tensorboard import TensorBoard
    lifecycle.run("autogrow", train_cfg, ag_cfg, "runs/g1", callbacks=[TensorBoard("runs/tb/g1")])
    growkit autogrow ... --out runs/g1 --tensorboard runs/tb/g1      # the same from the command line
    tensorboard --logdir runs/tb

Per epoch (the step is the epoch number): ``loss/train``, ``loss/val``, ``accuracy/train``, ``accuracy/val``,
``accuracy/test`` (when evaluated), ``lr``, ``size/params``, ``size/macs`` (multiply-adds per image) and
``compute/train_macs`` (multiply-adds, cumulative); at each growth ``growth/count`` and a text entry
``growth/event`` (before -> after, initializer). A run nested in the first (AutoGrow's from-scratch net) writes
to a subfolder named after its run directory. Nothing here changes the run: the same run with or without it
trains the same net.
"""
from __future__ import annotations

from pathlib import Path

from ..engine.callbacks import Callback, growth_line, run_name
from ..errors import GrowkitError

SCALARS = (("loss/train", "train_loss"), ("loss/val", "val_loss"), ("accuracy/train", "train_acc"),
           ("accuracy/val", "val_acc"), ("accuracy/test", "test_acc"), ("lr", "lr"), ("size/params", "params"),
           ("size/macs", "macs"), ("compute/train_macs", "train_macs"))


def require() -> None:
    """A one-line GrowkitError unless the tensorboard package is installed."""
    try:
        import torch.utils.tensorboard  # noqa: F401  (torch's writer needs the tensorboard package)
    except ImportError:
        raise GrowkitError("the TensorBoard callback needs tensorboard: pip install 'growkit[tensorboard]' "
                           "(or pip install tensorboard)") from None


def _writer(logdir):
    require()
    from torch.utils.tensorboard import SummaryWriter
    return SummaryWriter(log_dir=str(logdir))


class TensorBoard(Callback):
    """Write a run's per-epoch metrics and growth events as TensorBoard scalars and text under ``logdir``."""

    def __init__(self, logdir: str | Path):
        self.logdir = Path(logdir)
        self.writer = None
        self.growths = 0
        self.first = None  # the run directory of the first fit; a nested run (a baseline) gets a subfolder

    def on_fit_start(self, trainer) -> None:
        out = trainer.out.resolve() if trainer.out is not None else None
        if self.first is None:
            self.first = out
        where = self.logdir if out == self.first or out is None else self.logdir / run_name(out)
        self.writer = _writer(where)  # (fails here, before the first epoch, when tensorboard is missing)
        self.growths = len(trainer.loop.events)

    def on_epoch(self, trainer, row: dict) -> None:
        step = row["epoch"]
        for tag, key in SCALARS:
            value = row.get(key)
            if value is not None:
                self.writer.add_scalar(tag, float(value), step)
        for ev in row.get("events") or ():
            self.growths += 1
            val = row.get("val_acc")
            text = growth_line(ev, "-" if val is None else f"{val:.2f}%").replace(
                ", {after} after one more epoch", "")
            self.writer.add_text("growth/event", text, step)
            self.writer.add_scalar("growth/count", self.growths, step)
        self.writer.flush()

    def on_fit_end(self, trainer) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
