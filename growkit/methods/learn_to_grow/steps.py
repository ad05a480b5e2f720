"""Learn to Grow's training steps on the shared passes (:class:`growkit.engine.passes.Passes`).

Every weight step (the search's and the chosen structure's) runs through ``Passes.train_epoch`` and every
architecture step through ``Passes.step``, so the continual loop shares the Trainer's precision (bf16 autocast
on CUDA), its slicing of global batches under a process group and its step order; what is particular to
Learn to Grow is plugged in:

* the task: :class:`TaskForward` binds a task id to the network, so the passes see ``model(x)`` as everywhere;
* the learning rate: a :class:`growkit.engine.schedule.Phase` of the config's schedule (cosine by default)
  over each search and each training, counted in steps (:class:`Schedule`, :meth:`Phase.lr_at_step`);
* the records: :class:`LastBatch` keeps the loss of the last global batch, and :func:`check_finite` stops
  on a NaN or infinite epoch loss.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from ...engine.passes import Passes, autocast_on
from ...engine.schedule import Phase
from ...errors import NonFiniteLoss
from . import ddp as l2g_ddp


class TaskForward(nn.Module):
    """``net`` seen through one task: ``forward(x) = net(x, task)``. It holds no parameters of its own, so a
    DDP wrapper of it trains exactly ``net``'s."""

    def __init__(self, net: nn.Module, task: int):
        super().__init__()
        self.net, self.task = net, task

    def forward(self, x):
        return self.net(x, self.task)


def task_passes(data, cfg, objective=None) -> Passes:
    """The passes over one task's data with the config's batch size and precision (and ``objective``: default
    cross-entropy)."""
    return Passes(data, data.device, autocast_on(cfg.precision, data.device), cfg.batch_size, objective)


class Schedule:
    """The learning rate of every weight step of one search or one training: ``lr_step`` for
    :meth:`Passes.train_epoch`. The config's schedule as a :class:`Phase` of ``epochs`` epochs of
    ``ceil(images / batch_size)`` steps, read at the number of steps taken so far. (An epoch whose last batch
    would hold one image skips it: the count then runs one step per epoch behind, and the cosine ends just
    above 0, as it always has in this loop.)"""

    def __init__(self, cfg, epochs: int):
        self.phase = Phase("learn-to-grow", cfg.lr, cfg.schedule, epochs, milestones=tuple(cfg.milestones),
                           gamma=cfg.gamma)
        self.taken = 0

    def __call__(self, step: int, steps: int) -> float:
        lr = self.phase.lr_at_step(self.taken, steps)
        self.taken += 1
        return lr


class LastBatch:
    """The mean loss of the last global batch of weight steps (``before_step`` and ``on_batch`` hooks)."""

    def __init__(self):
        self.n, self.loss = 0, None

    def batch(self, step: int, x, y) -> None:
        self.n = l2g_ddp.slice_size(y)

    def on_batch(self, step: int, loss) -> None:
        self.loss = loss

    def mean(self) -> float:
        return float("nan") if self.loss is None else l2g_ddp.batch_mean(self.loss, self.n)


def check_finite(loss_sum: torch.Tensor, count: int, data, what: str, epoch: int) -> None:
    """Stop with a one-line error when an epoch's loss is NaN or infinite (one host sync per epoch)."""
    loss = float(loss_sum) / max(count, 1)
    if not math.isfinite(loss):
        raise NonFiniteLoss(f"the {what} loss became {loss} on {data.info.name} at epoch {epoch + 1}")
