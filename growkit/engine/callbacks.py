"""Callbacks: what happens around the training loop without being the loop.

The trainer calls, in this order per epoch: ``on_epoch_start``, ``on_batch`` (after
every optimizer step; only callbacks that override it are called, so the common case
adds no per-step cost), ``on_growth_start`` (when the grower decided to grow, before the surgery),
``on_growth`` (after a growth was applied, initialised and the
optimizer state carried), ``on_epoch`` (with the epoch's metrics row), then the
checkpoint is written and ``on_checkpoint`` follows. ``on_fit_start`` / ``on_fit_end``
bracket :meth:`Trainer.fit` (``on_fit_end`` also on an error).

Run-directory bookkeeping is a callback like any other: :class:`Recorder` appends
``metrics.jsonl`` (before the checkpoint, so a kill between the two leaves a row the
resume drops and trains again, never a missing one), truncates it to the checkpoint
on resume, and writes trajectory snapshots and growth records. :class:`ProgressBar` draws the tqdm bar.

Objects that are not :class:`Callback` subclasses still work: a hook they lack is skipped.
"""
from __future__ import annotations

import sys
from pathlib import Path

from .records import MetricsLog
from .snapshots import prune_snapshots, record_growth, save_snapshot

HOOKS = ("on_fit_start", "on_epoch_start", "on_batch", "on_growth_start", "on_growth", "on_epoch", "on_checkpoint", "on_fit_end")


class Callback:
    """Base class: override the hooks you need; each gets the trainer first."""

    def on_fit_start(self, trainer) -> None:
        """Before the first epoch :meth:`Trainer.fit` runs (after a restore, if any)."""

    def on_epoch_start(self, trainer) -> None:
        """Before an epoch's training; ``trainer.loop.epoch`` epochs are done."""

    def on_batch(self, trainer, step: int, loss) -> None:
        """After optimizer step ``step`` of the epoch; ``loss``: the batch's detached loss, on the device
        (reading it with ``.item()`` syncs the device every step: accumulate instead where speed matters)."""

    def on_growth_start(self, trainer, decision) -> None:
        """The grower returned plans (``decision``); nothing is applied yet (the model is as trained)."""

    def on_growth(self, trainer, event: dict) -> None:
        """After a growth: ``event`` is the growth record (before/after arch, edits, grower info);
        ``trainer.growth_edits`` holds the step's applied edits (with their index maps)."""

    def on_epoch(self, trainer, row: dict) -> None:
        """After an epoch: ``row`` is its metrics row (what metrics.jsonl gets)."""

    def on_checkpoint(self, trainer, path: Path) -> None:
        """After the checkpoint of an epoch was written to ``path``."""

    def on_fit_end(self, trainer) -> None:
        """When :meth:`Trainer.fit` returns or raises."""


class CallbackList:
    """Dispatch to callbacks in order, skipping hooks an object does not define."""

    def __init__(self, callbacks):
        self.callbacks = list(callbacks)

    def __call__(self, hook: str, trainer, *args) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, hook, None)
            if fn is not None:
                fn(trainer, *args)

    def batch_hook(self, trainer):
        """A per-step function for the epoch loop, or None when no callback overrides ``on_batch``."""
        fns = [cb.on_batch for cb in self.callbacks if hasattr(cb, "on_batch")
               and getattr(type(cb), "on_batch", None) is not Callback.on_batch]
        if not fns:
            return None

        def on_batch(step, loss):
            for fn in fns:
                fn(trainer, step, loss)
        return on_batch


class Recorder(Callback):
    """metrics.jsonl (a row per epoch), and with ``snapshot_every`` the ``trajectory/`` snapshots (every N
    epochs and the final epoch) and growth records (index maps of every growth step)."""

    def __init__(self, out: str | Path, snapshot_every: int = 0):
        self.out, self.snapshot_every = Path(out), snapshot_every
        self.log = MetricsLog(self.out / "metrics.jsonl")

    def move_to(self, out: str | Path) -> None:
        """The run directory was moved (a staged run put in place after its first checkpoint)."""
        self.out = Path(out)
        self.log = MetricsLog(self.out / "metrics.jsonl")

    def on_fit_start(self, trainer) -> None:
        epoch = trainer.loop.epoch
        self.out.mkdir(parents=True, exist_ok=True)
        if self.log.path.exists():  # a resume: drop rows the checkpoint has not seen
            self.log.truncate(epoch)
        if self.snapshot_every:
            prune_snapshots(self.out, epoch)
            if epoch == 0:
                save_snapshot(self.out, 0, trainer.model)

    def on_growth(self, trainer, event: dict) -> None:
        if self.snapshot_every:  # where old entries went, so older snapshots embed in the grown net
            record_growth(self.out, trainer.loop.epoch, trainer.growth_edits)

    def on_epoch(self, trainer, row: dict) -> None:
        self.log.append(row)

    def on_checkpoint(self, trainer, path: Path) -> None:
        # every N epochs, and always the final epoch: the trajectory then ends at the final checkpoint,
        # the origin of its PCA plane and the centre of the loss contours
        finished = trainer.loop.phase >= len(trainer.phases)
        if self.snapshot_every and (trainer.loop.epoch % self.snapshot_every == 0 or finished):
            save_snapshot(self.out, trainer.loop.epoch, trainer.model)


class ProgressBar(Callback):
    """A tqdm bar on stderr: one tick per epoch, the phase, architecture and validation accuracy."""

    def __init__(self):
        self.bar = None

    def on_fit_start(self, trainer) -> None:
        if trainer.loop.phase < len(trainer.phases):
            from tqdm.auto import tqdm
            self.bar = tqdm(initial=trainer.loop.epoch, unit="epoch", file=sys.stderr, dynamic_ncols=True)

    def on_epoch(self, trainer, row: dict) -> None:
        if self.bar is not None:
            self.bar.update(1)
            val = row["val_acc"]
            self.bar.set_postfix_str(f"{row['phase']} {row['arch']} val "
                                     f"{'-' if val is None else format(val, '.2f')}%", refresh=False)

    def on_fit_end(self, trainer) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
