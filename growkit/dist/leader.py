"""Runs under a process group: rank 0 owns the run directory, the other ranks follow it.

Only rank 0 reads or writes the run directory (staging, marker, lock, config.json, records,
checkpoints, result.json); the others never touch the disk beyond reading the dataset, so several
nodes need no shared file system. Rank 0 tells them what to do through broadcasts:

* ``("run", run config, checkpoint state or None)`` before every training it starts or resumes (the
  run itself, and nested runs such as the found net trained from scratch): the followers build the
  same trainer from the config, restore the same state, and train beside rank 0;
* ``("own", command, payload)`` before a method with its own loop (learn-to-grow) trains: the followers
  hand ``payload`` (the method's options and rank 0's starting state) to the method's ``own_loop.follow``;
* ``("done", result)`` when the outermost run or resume returns;
* ``("error", message)`` when rank 0 refused the run before training (bad input, a run directory that
  may not be used): every rank then raises the same :class:`GrowkitError`, so ``torchrun`` exits 2.

An error while training (a rank killed, a NaN) is not announced: ``torchrun`` ends the other processes
when one fails, and the last checkpoint, written atomically by rank 0, stays intact for a resume with
any number of processes (a checkpoint holds nothing that depends on the world size).
"""
from __future__ import annotations

import contextlib

from ..errors import GrowkitError
from . import group as distributed

_depth = 0  # nesting of run/resume calls on rank 0 (a scratch run inside a run)
_training = False  # the followers are inside a training (collectives), not waiting for a message


def follower() -> bool:
    """True on a rank other than 0 of a process group."""
    return distributed.setup() is not None and not distributed.is_main()


@contextlib.contextmanager
def leading():
    """Bracket rank 0's run/resume: the outermost one tells the followers the end or the refusal."""
    global _depth
    if distributed.group() is None:
        yield
        return
    _depth += 1
    try:
        yield
    except BaseException as e:
        if not _training and not getattr(e, "growkit_announced", False):  # the followers wait for a message
            e.growkit_announced = True
            why = str(e) if isinstance(e, GrowkitError) else f"rank 0 stopped: {e.__class__.__name__}: {e}"
            distributed.broadcast_object(("error", why.splitlines()[0] if why else "rank 0 stopped"))
        raise
    finally:
        _depth -= 1


def done(result: dict) -> None:
    """Rank 0: the outermost run returns ``result``; the followers return it too."""
    if distributed.group() is not None and _depth == 1:
        distributed.broadcast_object(("done", result))


def fit(trainer, state: dict | None = None) -> dict:
    """Rank 0: train ``trainer`` (restored from ``state`` if a resume) with the followers beside it."""
    global _training
    if distributed.group() is None:
        return trainer.fit()
    distributed.broadcast_object(("run", trainer.run_config, state))
    _training = True
    try:
        return trainer.fit()
    finally:
        _training = False


def own(command: str, payload, fn):
    """Rank 0: ``fn()``, the own loop of method ``command``, with the followers beside it (given ``payload``)."""
    global _training
    if distributed.group() is None:
        return fn()
    distributed.broadcast_object(("own", command, payload))
    _training = True
    try:
        return fn()
    finally:
        _training = False


def follow(build, follow_own) -> dict:
    """A follower's whole run: train what rank 0 announces until it says done (or refused). ``build(rc)``:
    the trainer a run config describes; ``follow_own(command, payload)``: a method's own loop beside rank 0's
    (the run lifecycle passes both, so this layer knows no method)."""
    while True:
        msg = distributed.broadcast_object()
        if msg[0] == "error":
            raise GrowkitError(msg[1])
        if msg[0] == "done":
            return msg[1]
        if msg[0] == "own":
            follow_own(msg[1], msg[2])
            continue
        _, rc, state = msg
        trainer = build(rc)
        if state is not None:
            trainer.restore(state)
        trainer.fit()
