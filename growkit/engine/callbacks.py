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
    """A tqdm bar on stderr per phase, labelled with the run directory's name: its total and ETA (a growing
    phase without a fixed length counts up to its epoch limit), the architecture and validation accuracy of
    the epoch just counted. One line per growth event (what grew, the initializer, the validation accuracy
    before it and after one more epoch) and one when growing stops (and why). ``write``: where those lines
    go (default: above the bar, on stderr)."""

    def __init__(self, write=None):
        self.bar = None
        self.phase = None  # index of the phase the bar counts
        self.pending: list[str] = []  # growth lines waiting for the next epoch's accuracy ("{after}")
        self._write = write

    def write(self, line: str) -> None:
        if self._write is not None:
            self._write(line)
        else:
            from tqdm.auto import tqdm
            tqdm.write(line, file=sys.stderr)

    def _open(self, trainer) -> None:
        from tqdm.auto import tqdm
        if self.bar is not None:
            self.bar.close()
        i, loop = trainer.loop.phase, trainer.loop
        phase = trainer.phases[i]
        total = phase.epochs if phase.epochs is not None else phase.max_epochs
        n = len(trainer.phases)
        desc = phase.name if n == 1 else f"{phase.name} ({i + 1}/{n})"
        if trainer.out is not None:  # which run: a notebook's baselines and nested runs each get a bar
            desc = f"{run_name(trainer.out)}: {desc}"
        self.bar = tqdm(initial=loop.epoch - loop.phase_start, total=total, desc=desc, unit="epoch",
                        file=sys.stderr, dynamic_ncols=True)
        self.phase = i

    def on_fit_start(self, trainer) -> None:
        self.phase, self.pending = None, []

    def on_epoch_start(self, trainer) -> None:
        if trainer.loop.phase != self.phase:
            self._open(trainer)

    def on_epoch(self, trainer, row: dict) -> None:
        val = row["val_acc"]
        acc = "-" if val is None else f"{val:.2f}%"
        self._flush(acc)
        if self.bar is not None:  # the text first, then the count: the bar never shows the last epoch's text
            self.bar.set_postfix_str(f"{row['arch']} val {acc}", refresh=False)
            self.bar.update(1)
        for ev in row.get("events") or ():
            self.pending.append(growth_line(ev, acc))
        phase = trainer.phases[self.phase] if self.phase is not None else None
        if phase is not None and phase.grows and trainer.loop.phase != self.phase:
            stop = (f"epoch {row['epoch']}: growing stopped ({trainer.loop.stopped_by or 'done'}) "
                    f"at {row['arch']}, {row['params']:,} params, val {acc}")
            if self.pending:
                self.pending.append(stop)
            else:
                self.write(stop)

    def _flush(self, after: str) -> None:
        for line in self.pending:
            self.write(line.replace("{after}", after))
        self.pending = []

    def on_fit_end(self, trainer) -> None:
        self._flush("- (no epoch followed)")
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def run_name(out: Path) -> str:
    """The run directory's name (a run being made is written in a hidden staging folder beside it)."""
    name = Path(out).name
    if name.startswith(".") and ".growkit-staging-" in name:
        name = name[1:].split(".growkit-staging-")[0]
    return name


def growth_line(event: dict, before: str) -> str:
    """One line for a growth event; ``{after}`` stands for the validation accuracy an epoch later."""
    edits = event.get("edits") or []
    kinds: dict[str, int] = {}
    for e in edits:
        kinds[e["kind"]] = kinds.get(e["kind"], 0) + 1
    what = ", ".join(f"{n} {k}" for k, n in kinds.items()) or "no edit"
    init = event.get("init")
    init = f", init {init}" if init is not None else ""
    return (f"epoch {event['epoch']}: grew {event['before']} -> {event['after']} ({what}{init}); "
            f"val {before} before, {{after}} after one more epoch")
