"""Training under DistributedDataParallel: what makes N processes compute what one process computes.

* **Global batches.** Every rank draws the same global batch (same seed, permutation and augmentation
  as one process; the data is device-resident, so this costs N times the augmentation, not N times
  the data) and keeps its contiguous slice (:func:`shard`: sizes differ by at most one; a slice may be
  empty when the last batch is smaller than the world). The rank's mean loss is weighted by
  ``n_rank * N / n_global``, so the gradient DDP averages is the gradient of the global batch mean,
  the uneven last batch included. An empty slice still runs forward and backward (a zero loss), so it
  takes part in every BatchNorm and gradient collective.
* **Shared BatchNorm.** :func:`share_batchnorm` gives every BatchNorm module a forward that, in
  training under a group, normalises with the statistics of the whole global batch: a differentiable
  all-reduce of the per-channel sum and count, then of the centred sum of squares (two passes, as one
  process computes it, so float64 agrees to rounding), and the running statistics are updated with
  the global mean and the unbiased variance of the global count. Its backward all-reduces the
  gradients of those sums: the same mathematics as ``torch.nn.SyncBatchNorm``, and it runs on gloo
  (CPU) as well as NCCL. The module's class, parameters and state_dict stay BatchNorm's, so surgery,
  checkpoints and the model registry never see a difference; outside training under a group (a
  single process, evaluation, rank 0 working alone) it is BatchNorm's own forward.
* **Wrapping.** :func:`wrap` puts the raw model in DDP for the training passes; growth edits the raw
  model, after which the trainer wraps again. Every parameter takes part in every training step
  (a subset is trained only by rank 0 alone, e.g. AdamInit), so ``find_unused_parameters`` stays off.
"""
from __future__ import annotations

import types

import torch
import torch.distributed as dist
from torch.nn.modules.batchnorm import _BatchNorm

from . import group as distributed


def shard(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    """This rank's contiguous slice of a global batch, and the weight of its mean loss."""
    g = distributed.group()
    n = len(y)
    base, extra = divmod(n, g.world)
    start = g.rank * base + min(g.rank, extra)
    size = base + (1 if g.rank < extra else 0)
    return x[start:start + size], y[start:start + size], size * g.world / n


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks, differentiable: each rank's output is the sum of every rank's input, so the
    gradient of a rank's input is the sum over ranks of the gradients of the output."""

    @staticmethod
    def forward(ctx, t):
        out = t.detach().clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        out = grad.detach().clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out)
        return out


def _all_reduce(t: torch.Tensor) -> torch.Tensor:
    return _AllReduceSum.apply(t)


def _shared_bn_forward(self: _BatchNorm, x: torch.Tensor) -> torch.Tensor:
    if not (self.training and distributed.collective()):
        return type(self).forward(self, x)
    self._check_input_dim(x)
    dims = [0] + list(range(2, x.dim()))
    shape = [1, -1] + [1] * (x.dim() - 2)
    xf = x if x.dtype in (torch.float32, torch.float64) else x.float()  # bf16 autocast: statistics in fp32
    local = xf.numel() // max(xf.shape[1], 1) if xf.shape[0] else 0
    sums = _all_reduce(torch.cat([xf.sum(dims), xf.new_tensor([float(local)])]))
    count = sums[-1].detach()
    mean = sums[:-1] / count
    xc = xf - mean.view(shape)
    var = _all_reduce((xc * xc).sum(dims)) / count
    out = xc * torch.rsqrt(var + self.eps).view(shape)
    if self.affine:
        out = out * self.weight.view(shape) + self.bias.view(shape)
    if self.track_running_stats and self.running_mean is not None:
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            f = (1.0 / float(self.num_batches_tracked)) if self.momentum is None else self.momentum
            self.running_mean.mul_(1 - f).add_(mean.detach().to(self.running_mean.dtype), alpha=f)
            unbiased = var.detach() * (count / (count - 1))
            self.running_var.mul_(1 - f).add_(unbiased.to(self.running_var.dtype), alpha=f)
    return out.to(x.dtype)


def share_batchnorm(model: torch.nn.Module) -> torch.nn.Module:
    """Give every BatchNorm of ``model`` the shared-statistics forward (idempotent; new modules that
    growth adds get it at the next :func:`wrap`)."""
    for m in model.modules():
        if isinstance(m, _BatchNorm) and "forward" not in m.__dict__:
            m.forward = types.MethodType(_shared_bn_forward, m)
    return model


def wrap(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` in DDP (its BatchNorms shared); the raw model stays what growth and checkpoints see."""
    from torch.nn.parallel import DistributedDataParallel as DDP
    share_batchnorm(model)
    dev = next(model.parameters()).device
    ids = [dev.index] if dev.type == "cuda" else None
    # buffers are synced once, at wrapping, not before every forward: the shared BatchNorm computes
    # identical running statistics on every rank
    return DDP(model, device_ids=ids, forward_sync_buffers=False, find_unused_parameters=False)


def empty_loss(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A zero loss through the whole model for a rank whose slice is empty: its forward still joins
    the BatchNorm collectives and its backward DDP's gradient all-reduce (contributing zeros)."""
    return model(x).float().sum() * 0.0


def reduce_sums(*values) -> list:
    """Sum scalar tensors or numbers over ranks in one collective (float64); returns them in order."""
    dev = next((v.device for v in values if torch.is_tensor(v)), torch.device("cpu"))
    t = torch.stack([torch.as_tensor(v, dtype=torch.float64, device=dev).reshape(()) for v in values])
    return list(distributed.all_reduce_sum(t).unbind())

