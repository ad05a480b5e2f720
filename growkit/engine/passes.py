"""Passes over the data: one training epoch, one evaluation, with a pluggable objective.

An objective is ``objective(model, x, y) -> loss`` (a scalar tensor); the default is
cross-entropy of ``model(x)``. It is what the optimizer minimises and what a grower's
probe differentiates. Evaluation always reports cross-entropy and top-1/top-5
accuracy, whatever the objective, so records of different objectives compare.

Training accuracy needs the logits, which an objective does not return: a forward
hook on the model's root module keeps the output of its last call (one reference,
no copy and no host sync).

Fast path on CUDA: bf16 autocast (parameters, BatchNorm and its statistics stay
fp32) and no host sync inside an epoch (losses and hits are summed on the device
and read once per epoch). On CPU: fp32, seeded and deterministic.
"""
from __future__ import annotations

import contextlib
import math
import zlib
from typing import Callable

import torch
import torch.nn.functional as F

from ..dist import group as distributed

Objective = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def derive_seed(*parts) -> int:
    """A seed from any parts (the run's seed, an epoch, a purpose): the same parts give the same seed."""
    return zlib.crc32(":".join(map(str, parts)).encode())


def cross_entropy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The default objective."""
    return F.cross_entropy(model(x), y)


def autocast_on(precision: str, device: torch.device) -> bool:
    """Whether a run of ``precision`` (auto, fp32, bf16) trains under bf16 autocast on ``device``: bf16, or
    auto on CUDA."""
    return precision == "bf16" or (precision == "auto" and device.type == "cuda")


class Passes:
    """Training and evaluation passes of one run: its data, device, precision, batch size and objective."""

    def __init__(self, data, device: torch.device, amp: bool, batch_size: int, objective: Objective | None = None):
        self.data, self.device, self.amp, self.batch_size = data, device, amp, batch_size
        self.objective = objective or cross_entropy

    def autocast(self):
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def train_epoch(self, model, opt, lr_fn: Callable[[float], float] | None, seed: int, trainable=None,
                    on_batch: Callable | None = None, *, lr_step: Callable[[int, int], float] | None = None,
                    before_step: Callable | None = None) -> tuple[torch.Tensor, torch.Tensor, int]:
        """One pass over the training split, a :meth:`step` per batch; returns (summed loss, hits, images)
        on the device.
        ``lr_fn(fraction of the epoch)``: each group's lr is that times its ``lr_scale``; or ``lr_step(step,
        steps)``: the lr of the epoch's ``step``-th of its ``steps`` batches, for a schedule counted in steps
        (:meth:`growkit.engine.schedule.Phase.lr_at_step`);
        ``trainable``: train only these parameters (the others are frozen for the pass);
        ``before_step(step, x, y)``: called with each global batch before its step, e.g. for a step of
        another optimizer on other data (Learn to Grow's architecture step on a validation batch);
        ``on_batch(step, loss)``: called after it with this rank's mean loss.
        Under a process group (``model`` then DDP-wrapped) each rank trains on its slice of every global
        batch and the sums come back reduced over ranks (see :mod:`growkit.dist.data_parallel`)."""
        shared = distributed.collective()
        model.train()
        n_steps = max(1, math.ceil(self.data.size("train") / self.batch_size))
        loss_sum = torch.zeros((), device=self.device)
        hits = torch.zeros((), device=self.device, dtype=torch.long)
        count = 0
        frozen = []
        if trainable is not None:
            keep = {id(p) for p in trainable}
            frozen = [p for p in model.parameters() if id(p) not in keep and p.requires_grad]
            for p in frozen:
                p.requires_grad_(False)
        logits = []

        def keep_logits(_module, _inputs, out):
            logits[:] = [out]

        handle = model.register_forward_hook(keep_logits)
        try:
            for step, (x, y) in enumerate(self.data.train_batches(self.batch_size, seed)):
                if lr_step is not None or lr_fn is not None:
                    lr = lr_step(step, n_steps) if lr_step is not None else lr_fn(step / n_steps)
                    for g in opt.param_groups:
                        g["lr"] = lr * g.get("lr_scale", 1.0)
                if before_step is not None:
                    before_step(step, x, y)
                loss, n, y = self._step(model, opt, x, y, self.objective, None)
                loss_sum += loss.float() * n
                hits += (logits[0].argmax(1) == y).sum()
                logits.clear()
                count += n
                if on_batch is not None:
                    on_batch(step, loss)
        finally:
            handle.remove()
            for p in frozen:
                p.requires_grad_(True)
        if shared:
            from ..dist import data_parallel as ddp
            total, hit_sum, n = ddp.reduce_sums(loss_sum, hits, count)
            return total.to(loss_sum.dtype), hit_sum.round().long(), int(n.item())
        return loss_sum, hits, count

    def step(self, model, opt, x: torch.Tensor, y: torch.Tensor, objective: Objective | None = None,
             penalty: Callable[[], torch.Tensor] | None = None) -> tuple[torch.Tensor, int]:
        """One step of ``opt`` on the global batch ``(x, y)``: ``objective`` (default: the passes' own) on this
        rank's slice under a process group (weighted so that DDP's average is the global batch's gradient; an
        empty slice still joins every collective), plus ``penalty()`` if given: a term that does not depend on
        the batch and is the same on every rank (a regulariser of parameters), added unweighted.
        Returns this rank's mean objective on its slice (detached, on the device) and the slice's size."""
        loss, n, _ = self._step(model, opt, x, y, objective or self.objective, penalty)
        return loss, n

    def _step(self, model, opt, x, y, objective: Objective, penalty):
        weight = None
        if distributed.collective():
            from ..dist import data_parallel as ddp
            x, y, weight = ddp.shard(x, y)
        with self.autocast():
            if weight is not None and len(y) == 0:
                loss = ddp.empty_loss(model, x)
            else:
                loss = objective(model, x, y)
            extra = penalty() if penalty is not None else None
        opt.zero_grad(set_to_none=True)
        total = loss if weight is None else loss * weight
        (total if extra is None else total + extra).backward()
        opt.step()
        return loss.detach(), len(y), y

    @torch.no_grad()
    def evaluate(self, model, split: str) -> tuple[float | None, float | None, float | None]:
        """Mean cross-entropy, top-1 and top-5 accuracy (%) on a split (top-5 None with 5 classes or fewer)."""
        if self.data.size(split) == 0:
            return None, None, None
        model.eval()
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        hits = torch.zeros((), device=self.device, dtype=torch.long)
        hits5 = torch.zeros((), device=self.device, dtype=torch.long)
        top5 = self.data.info.num_classes > 5
        g = distributed.group() if distributed.collective() else None
        for i, (x, y) in enumerate(self.data.eval_batches(split)):
            if g is not None and i % g.world != g.rank:  # under a group: batches dealt out, sums reduced
                continue
            with self.autocast():
                out = model(x)
            loss_sum += F.cross_entropy(out.float(), y, reduction="sum").double()
            hits += (out.argmax(1) == y).sum()
            if top5:
                hits5 += (out.topk(5, dim=1).indices == y[:, None]).any(1).sum()
        if g is not None:
            from ..dist import data_parallel as ddp
            loss_sum, hits, hits5 = ddp.reduce_sums(loss_sum, hits, hits5)
        n = self.data.size(split)
        return loss_sum.item() / n, 100.0 * hits.item() / n, (100.0 * hits5.item() / n if top5 else None)

    def batches(self, n: int | None, split: str, augment: bool, seed: int, batch_size: int | None = None):
        """Up to ``n`` batches of a split: train with ``augment`` shuffled and augmented from ``seed``,
        otherwise in stored order, unaugmented. ``batch_size`` None: the training batch size when
        augmented, the data's evaluation batching otherwise."""
        if split == "train" and augment:
            it = self.data.train_batches(batch_size or self.batch_size, seed)
        elif batch_size is None:
            it = self.data.eval_batches(split)
        else:
            it = self.data.eval_batches(split, batch_size)
        for i, b in enumerate(it):
            if n is not None and i >= n:
                break
            yield b
