"""Learn to Grow under ``torchrun``: the continual loop's steps on growkit's data-parallel scheme.

Every rank runs the same continual loop with the same seeds, so every rank draws the same global
batches (training and validation) and the same candidate set. What makes N processes compute what one
process computes is :mod:`growkit.dist.data_parallel`, reused here rather than repeated:

* a weight step (the search's and the chosen structure's training) and an architecture step (alpha on
  the validation split, first-order DARTS) each run through the shared passes
  (:class:`growkit.engine.passes.Passes`, see :mod:`growkit.methods.learn_to_grow.steps`) on ``ddp.wrap``
  of the module being trained: every rank takes its contiguous slice of the global batch
  (:func:`ddp.shard`), its mean loss weighted by ``slice * N / batch`` (the parameter-cost term of the
  alpha objective is the same on every rank and is added unweighted, as a ``penalty``), so the gradient
  DDP averages is the one-process gradient; BatchNorm statistics, the per-task BNs and the search's
  per-candidate BNs included, are those of the whole global batch (``ddp.share_batchnorm``); an empty
  slice still joins every collective (``ddp.empty_loss``);
* DDP trains the parameters that require gradients when it wraps: :func:`training` freezes the others
  of the wrapped module for the duration (one process never updates them either: its optimizer holds
  only the trainable ones), since a parameter that takes no part in a step would stall DDP's reducer;
* :func:`from_main` overwrites a module's parameters and buffers with rank 0's: new layers, adapters
  and blocks are thus initialised on rank 0, and the alpha that the architecture is read from is rank 0's;
* losses kept in the records and accuracies are reduced over ranks (:func:`batch_mean`).

In one process every helper is the plain path, unchanged. Cost under N ranks: one all-reduce of the
gradients and two per BatchNorm per step (DDP's and the shared statistics'), a broadcast of the search
network per task, and one small reduce per record.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn as nn

from ...dist import data_parallel as ddp, group as distributed


@contextlib.contextmanager
def training(model: nn.Module, trainable: nn.Module | None = None):
    """What to call for training steps: ``model`` in one process; under a group ``model`` in DDP with
    only ``trainable``'s parameters (default: those that require gradients) trained by it."""
    if not distributed.collective():
        yield model
        return
    keep = {id(p) for p in (trainable if trainable is not None else model).parameters()}
    frozen = [p for p in model.parameters() if p.requires_grad and id(p) not in keep]
    for p in frozen:
        p.requires_grad_(False)
    try:
        yield ddp.wrap(model)
    finally:
        for p in frozen:
            p.requires_grad_(True)


def slice_size(y: torch.Tensor) -> int:
    """How many images of the global batch with labels ``y`` this rank trains on (all of them in one process)."""
    return len(ddp.shard(y, y)[1]) if distributed.collective() else len(y)


def batch_mean(mean: torch.Tensor, n: int) -> float:
    """The global batch's mean loss from every rank's slice mean and count (one process: ``mean``)."""
    if distributed.group() is None:
        return float(mean)
    total, count = ddp.reduce_sums(mean.double() * n, n)
    return float(total / count) if float(count) > 0 else float("nan")


def from_main(module: nn.Module) -> None:
    """Every rank takes rank 0's parameters and buffers of ``module`` (nothing in one process)."""
    if distributed.group() is not None:
        distributed.broadcast_tensors(list(module.parameters()) + list(module.buffers()))

