"""Runs on disk: start any registered method (:func:`run`) and resume any run (:func:`resume`),
plus the ``train`` shorthand.

A run directory holds ``config.json`` (written before training starts),
``metrics.jsonl`` (a row per epoch), ``checkpoint.pt`` (after every epoch),
optional ``trajectory/`` snapshots, ``scratch/`` (the found net trained from
scratch, itself a run directory) and, last of all, ``result.json``.
Everything is validated (names, values, data files) before the directory is
touched, so bad input never leaves a half-written run behind.

Every run is rebuilt from its ``config.json`` by :func:`_build` through the
method registry (:mod:`growkit.runs.registry`), so starting and resuming share one code path.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

from ..dist import leader
from ..engine import checkpoint
from ..engine.callbacks import Recorder
from ..engine.config import TrainConfig
from ..engine.records import MetricsLog, environment, one_line, write_json
from ..engine.trainer import Trainer
from ..errors import GrowkitError
from . import registry, rundir
from .records import check_checkpoint_matches, read_result, read_run_config


def check_out(out: str | Path, overwrite: bool) -> None:
    """Refuse an output folder that may not receive a new run (see :func:`growkit.runs.rundir.prepare`).
    Writes nothing."""
    rundir.prepare(out, "check", overwrite)


def _build(rc: dict, out: Path | None, callbacks=(), data=None, objective=None) -> Trainer:
    """The trainer (with grower and phases) that a run config describes."""
    method = registry.get(rc.get("command"))
    cfg = TrainConfig.from_dict(rc["train"]).validate().resolved()
    grower, phases, cfg = method.build(cfg, method.options(rc))
    if grower is not None and rc.get("stopped"):  # a stop recorded before its epoch's checkpoint: ask again
        grower.request_stop(rc["stopped"].get("by", "request"))
    return Trainer(cfg, out, phases=phases, grower=grower, run_config=rc, callbacks=callbacks, data=data,
                   objective=objective)


class _Commit:
    """Moves a staged run into place right after its first checkpoint, and points the trainer and its
    recorder at the final folder."""

    def __init__(self, stage: rundir.Stage):
        self.stage = stage

    def on_checkpoint(self, trainer, path) -> None:
        if not self.stage.committed:
            _move_trainer(trainer, self.stage.commit())


def _move_trainer(trainer: Trainer, out: Path) -> None:
    trainer.out = out
    for cb in trainer.hooks.callbacks:
        if isinstance(cb, Recorder):
            cb.move_to(out)


def _start(rc: dict, out, overwrite: bool, callbacks, data, grower_hook=None, objective=None):
    stage = rundir.prepare(out, rc["command"], overwrite)  # path, marker and lock checks; writes nothing
    trainer = _build(rc, stage.path, callbacks, data, objective)  # validates everything, data included
    rc["train"] = trainer.cfg.to_dict()  # resolved defaults (e.g. the learning rate) are recorded
    rc["environment"] = environment(trainer.device)
    stage.create()  # the first write: a hidden staging folder beside --out, with marker and lock
    try:
        write_json(stage.path / "config.json", rc)
    except BaseException:
        stage.abort()
        raise
    trainer.hooks.callbacks.insert(1, _Commit(stage))
    if grower_hook is not None and trainer.grower is not None:
        grower_hook(trainer.grower)
    return trainer, stage


def _finish(trainer: Trainer, stage: rundir.Stage | None, out: Path, state: dict | None = None) -> dict:
    """Train, summarize, write result.json. A staged run that fails before its first checkpoint is
    removed (an old run it was to replace stays as it was); the exception says what happened.
    ``state``: the checkpoint the trainer was restored from (the other ranks of a group restore it too)."""
    try:
        res = leader.fit(trainer, state)
        if stage is not None:
            _move_trainer(trainer, stage.commit())
            out = stage.final
        rc = trainer.run_config
        method = registry.get(rc["command"])
        if method.summarize is not None:
            res = {**res, **method.summarize(res, trainer, method.options(rc), out)}
        write_json(out / "result.json", res)
        return res
    except BaseException as e:
        if stage is not None:
            e.growkit_kept = stage.committed  # for the CLI's message: did a checkpoint reach --out?
            stage.abort()
        raise
    finally:
        if stage is not None:
            stage.release()


@contextlib.contextmanager
def staged(stage: rundir.Stage):
    """A new run of a method with its own loop (no trainer), made as :func:`run` makes the trainer's: call it
    with the ``stage`` that :func:`growkit.runs.rundir.prepare` planned, once everything is validated. It
    creates the hidden staging folder (marker, lock) and yields; the loop writes into ``stage.path`` and calls
    ``stage.commit()`` right after its first checkpoint, which moves the run to ``--out`` (swapping out an old
    run atomically). An error before the commit removes the staging folder, so an old run stays exactly as it
    was; the exception carries ``growkit_kept`` for the CLI's message."""
    stage.create()
    try:
        yield stage
    except BaseException as e:
        e.growkit_kept = stage.committed
        stage.abort()
        raise
    finally:
        stage.release()


def _follow(callbacks, data, objective) -> dict:
    """A rank > 0 under torchrun: train beside rank 0 whatever it announces, with this process's trainers."""
    return leader.follow(lambda rc: _build(rc, None, callbacks, data, objective),
                         lambda command, payload: registry.get(command).own_loop.follow(payload))


def run(method: str, train_cfg: TrainConfig, method_cfg=None, out: str | Path | None = None, *,
        overwrite: bool = False, callbacks=(), data=None, grower_hook=None, objective=None) -> dict:
    """Start registered ``method`` (see :func:`growkit.runs.registry.names`) with its options ``method_cfg``
    into run directory ``out``. ``grower_hook(grower)`` receives the grower before training starts
    (e.g. for a stop button); ``objective(model, x, y) -> loss`` replaces cross-entropy (not recorded
    in config.json: a resume must pass it again)."""
    if out is None:
        raise GrowkitError("run needs an output directory")
    m = registry.get(method)
    if leader.follower():  # under torchrun, ranks > 0 train what rank 0 announces and touch no files
        return _follow(callbacks, data, objective)
    with leader.leading():
        res = _run(m, train_cfg, method_cfg, out, overwrite, callbacks, data, grower_hook, objective)
        leader.done(res)
        return res


def _run(m, train_cfg, method_cfg, out, overwrite, callbacks, data, grower_hook, objective) -> dict:
    if m.own_loop is not None:  # e.g. learn-to-grow: no trainer, its own continual loop
        if method_cfg is None:
            raise GrowkitError(f"{m.name} needs its options ({m.config.__name__})")
        return m.own_loop.start(method_cfg, out, overwrite=overwrite)
    rc = {"command": m.name, "train": train_cfg.to_dict()}
    if m.config is not None:
        if method_cfg is None:
            raise GrowkitError(f"{m.name} needs its options ({m.config.__name__})")
        rc[m.name] = method_cfg.validate().to_dict()
    try:
        trainer, stage = _start(rc, out, overwrite, callbacks, data, grower_hook, objective)
    except BaseException as e:  # e.g. Ctrl-C while the data loads: this run kept nothing
        if not hasattr(e, "growkit_kept"):
            try:
                e.growkit_kept = False
            except AttributeError:
                pass
        raise
    return _finish(trainer, stage, stage.final)


def nested(sdir: str | Path, start, callbacks=()) -> dict:
    """A run inside another run's directory (a baseline, the found net from scratch): its result when it
    finished, resumed when it was interrupted, else ``start()`` makes it. Resuming the outer run thus never
    repeats finished work."""
    sdir = Path(sdir)
    if (sdir / "result.json").exists():
        return read_result(sdir / "result.json")
    if (sdir / "config.json").exists():
        return resume(sdir, callbacks=callbacks)
    return start()


def train(cfg: TrainConfig, out: str | Path, *, overwrite: bool = False, callbacks=(), data=None) -> dict:
    return run("train", cfg, None, out, overwrite=overwrite, callbacks=callbacks, data=data)


def resume(out: str | Path, *, callbacks=(), data=None, objective=None, grower_hook=None) -> dict:
    """Continue a run of any method from its last checkpoint; a finished run just returns its result.
    The run directory is checked first (marker, config.json, records, the checkpoint against the run's
    config) and locked while training, so a second process on it is refused. ``grower_hook(grower)``: as for
    :func:`run` (a live view's stop button works on a resumed run too)."""
    if leader.follower():  # under torchrun, ranks > 0 train what rank 0 announces and touch no files
        return _follow(callbacks, data, objective)
    with leader.leading():
        res = _resume(out, callbacks, data, objective, grower_hook)
        leader.done(res)
        return res


def _resume(out, callbacks, data, objective, grower_hook=None) -> dict:
    p = Path(out)
    rundir.check_output_path(p, "resume")
    if not p.exists():
        raise GrowkitError(f"{out} does not exist")
    if not p.is_dir():
        raise GrowkitError(f"{out} is not a run directory")
    if rundir.read_marker(p) is None:
        hint = (f"; if an older growkit made it, `growkit recover {out}` marks it"
                if (p / "config.json").exists() else "")
        raise GrowkitError(f"{out} is not a growkit run (no {rundir.MARKER}){hint}")
    lock = rundir.RunLock(p).acquire(f"resume {out}")  # the holder is recorded as soon as it is held
    try:
        started, res = _resume_locked(p, out, callbacks, data, objective, grower_hook)
    except BaseException:
        lock.undo()  # a refusal (or a failure before training) leaves the lock file as it was
        raise
    if not started:
        lock.undo()  # a finished run was only read
    else:
        lock.release()
    return res


def _resume_locked(p: Path, out, callbacks, data, objective, grower_hook=None) -> tuple[bool, dict]:
    """Under the run's lock: (whether this process trained or wrote anything, the result)."""
    if not (p / "config.json").exists():
        raise GrowkitError(f"{out} is a growkit run interrupted before its config.json was written; "
                           f"`growkit recover {out}` repairs or removes it")
    rc = read_run_config(p)
    method = registry.get(rc["command"])
    if method.own_loop is not None:  # e.g. learn-to-grow: its own continual loop and records
        if (p / "result.json").exists():
            return False, method.own_loop.resume(p)
        return True, method.own_loop.resume(p)
    if (p / "result.json").exists():
        return False, read_result(p / "result.json")
    MetricsLog(p / "metrics.jsonl").read()  # damaged records: an error naming the line, before training
    trainer = _build(rc, p, callbacks, data, objective)
    state = None
    if (p / "checkpoint.pt").exists():  # (the recorder truncates metrics.jsonl to it when fit starts)
        state = checkpoint.load(p / "checkpoint.pt")
        check_checkpoint_matches(state, rc, p / "checkpoint.pt")
        try:
            trainer.restore(state)
        except (RuntimeError, KeyError, ValueError) as e:
            raise GrowkitError(f"{p / 'checkpoint.pt'} does not fit its model: {one_line(e)}") from None
    if grower_hook is not None and trainer.grower is not None:
        grower_hook(trainer.grower)
    return True, _finish(trainer, None, p, state)
