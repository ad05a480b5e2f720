"""Loss surfaces around a minimum (Li et al. 2018, "Visualizing the loss landscape of neural nets").

The loss is evaluated at ``theta = theta* + a d1 + b d2`` on a grid of (a, b),
on a fixed subset of the training data, for directions that are

* ``random_direction``: Gaussian, then **filter-normalised**: each filter
  (output slice along dim 0) of the direction is rescaled to the norm of the
  matching filter of the weights, so the plot's scale does not depend on the
  weights' scale;
* PCA directions of a trajectory (:mod:`growkit.viz.trajectory`).

1-D parameters (biases, BatchNorm gamma/beta) are ignored by default
(direction zero), as in Li et al.; with ``ignore_1d=False`` their direction
is a copy of the weights (Li et al.'s choice), i.e. they are scaled by (1 + a).

**BatchNorm statistics** are never perturbed (they are buffers, not weights):

* ``bn="eval"`` (default, as Li et al.): every grid point uses the centre
  model's running mean/var. Each BatchNorm is then an affine map, folded into
  the preceding conv (found by tracing the model with ``torch.fx``) as a
  function of the perturbed weights, so folding is exact at every point.
* ``bn="batch"``: every grid point normalises with the statistics of the
  evaluation batch itself (train-mode BN without updating anything); values
  then depend on ``batch_size``.

**Batched evaluation**: :class:`SurfaceEvaluator` evaluates ``points_per_batch``
grid points at once with ``torch.func.functional_call`` under ``vmap`` (one
grouped convolution per layer for the whole chunk). On a GPU that fills the
device with small nets; on a 2-core CPU one point at a time is fastest
(grouped convolutions and larger intermediates cost more than they save), so
the default there is 1: one forward per data batch over resident tensors, no
host sync until the whole grid is done. :func:`time_points_per_batch` measures
the best chunk for a given device, net and data instead of assuming one.
"""
from __future__ import annotations

import copy

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, vmap

from ..errors import GrowkitError

Params = dict[str, torch.Tensor]


def params_of(model: nn.Module) -> Params:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def filter_normalize(direction: Params, weights: Params, ignore_1d: bool = True) -> Params:
    out = {}
    for n, d in direction.items():
        w = weights[n]
        if d.dim() <= 1:
            out[n] = torch.zeros_like(w) if ignore_1d else w.clone()
        else:
            dn = d.reshape(d.shape[0], -1).norm(dim=1).view(-1, *[1] * (d.dim() - 1))
            wn = w.reshape(w.shape[0], -1).norm(dim=1).view(-1, *[1] * (w.dim() - 1))
            out[n] = d * (wn / (dn + 1e-10))
    return out


def random_direction(weights: Params, seed: int = 0, ignore_1d: bool = True) -> Params:
    g = torch.Generator().manual_seed(seed)
    d = {n: torch.randn(w.shape, generator=g, dtype=torch.float64).to(w) for n, w in weights.items()}
    return filter_normalize(d, weights, ignore_1d)


# ----------------------------------------------------------------------------- BN handling

class _BatchStatNorm(nn.Module):
    """BatchNorm that always normalises with the current batch's statistics (biased variance,
    as BN does) and never updates anything; keeps the parameter names of the BN it replaces."""

    def __init__(self, bn: nn.BatchNorm2d):
        super().__init__()
        self.weight, self.bias, self.eps = bn.weight, bn.bias, bn.eps

    def forward(self, x):
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        var = x.var(dim=(0, 2, 3), keepdim=True, unbiased=False)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight[:, None, None] + self.bias[:, None, None]


def _replace_bn(model: nn.Module) -> nn.Module:
    for mod in list(model.modules()):
        for name, child in list(mod.named_children()):
            if isinstance(child, nn.BatchNorm2d):
                setattr(mod, name, _BatchStatNorm(child))
    return model


def fold_conv_bn(model: nn.Module):
    """Trace ``model`` (eval mode) and drop every BatchNorm that directly follows a conv.

    A conv or BN module called more than once (weight sharing) is refused with a
    :class:`GrowkitError`: folding would change its other calls too.

    Returns (graph module, fold) where ``fold(params)`` maps the *original* parameters to the
    traced module's: the conv of each pair gets ``W * s`` and bias ``beta - mean * s (+ b * s)``
    with ``s = gamma / sqrt(var + eps)`` from the BN's running statistics.
    """
    gm = fx.symbolic_trace(copy.deepcopy(model).eval())
    mods = dict(gm.named_modules())
    calls: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    pairs = []
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(mods[node.target], nn.BatchNorm2d):
            continue
        src = node.args[0]
        if (isinstance(src, fx.Node) and src.op == "call_module" and isinstance(mods[src.target], nn.Conv2d)
                and len(src.users) == 1):
            shared = [t for t in (src.target, node.target) if calls[t] > 1]
            if shared:  # the folded weights would also apply where the module is called without this BN
                raise GrowkitError(f"cannot fold BatchNorm {node.target!r} into conv {src.target!r}: "
                                   f"{shared[0]!r} is called {calls[shared[0]]} times; use bn='batch'")
            node.replace_all_uses_with(src)
            gm.graph.erase_node(node)
            pairs.append((src.target, node.target))
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    consts = {}
    for conv_name, bn_name in pairs:
        bn = dict(model.named_modules())[bn_name]
        conv = gm.get_submodule(conv_name)
        consts[conv_name] = (bn_name, bn.running_mean.detach().clone(), bn.running_var.detach().clone(), bn.eps,
                             conv.bias is not None)
        if conv.bias is None:
            conv.bias = nn.Parameter(torch.zeros(conv.out_channels, device=conv.weight.device,
                                                 dtype=conv.weight.dtype))
    gm.recompile()

    def fold(p: Params) -> Params:
        out = dict(p)
        for conv_name, (bn_name, mean, var, eps, has_bias) in consts.items():
            gamma, beta = out.pop(f"{bn_name}.weight"), out.pop(f"{bn_name}.bias")
            s = gamma * torch.rsqrt(var + eps)
            w = out[f"{conv_name}.weight"]
            out[f"{conv_name}.weight"] = w * s.reshape(-1, 1, 1, 1)
            b = beta - mean * s
            out[f"{conv_name}.bias"] = b + out[f"{conv_name}.bias"] * s if has_bias else b
        return out

    return gm, fold


# ----------------------------------------------------------------------------- evaluation

class SurfaceEvaluator:
    """Loss and accuracy of ``model`` at ``center + a d1 + b d2`` for many (a, b) at once."""

    def __init__(self, model: nn.Module, center: Params | None = None, bn: str = "eval"):
        if bn not in ("eval", "batch"):
            raise ValueError(f"bn must be 'eval' or 'batch', got {bn!r}")
        self.bn = bn
        self.center = center if center is not None else params_of(model)
        if bn == "eval":
            self.net, self.fold = fold_conv_bn(model)
        else:
            self.net, self.fold = _replace_bn(copy.deepcopy(model)).train(), (lambda p: p)
        self.buffers = {n: b for n, b in self.net.named_buffers()}

    def _logits(self, folded: Params, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.net, (folded, self.buffers), (x,))

    @torch.no_grad()
    def evaluate(self, coords, d1: Params, d2: Params | None, x: torch.Tensor, y: torch.Tensor,
                 batch_size: int = 128, points_per_batch: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean cross-entropy and accuracy (%) at each row (a, b) of ``coords`` [G, 2] (or [G, 1])."""
        dev = x.device
        coords = torch.as_tensor(coords, dtype=torch.float64).reshape(len(coords), -1).cpu()
        G = points_per_batch or (1 if dev.type == "cpu" else 32)
        names = list(self.center)
        centers = [self.center[n] for n in names]
        dirs = [[d[n] for n in names] for d in ([d1] + ([d2] if d2 is not None else []))]
        losses = torch.zeros(len(coords), dtype=torch.float64, device=dev)
        hits = torch.zeros(len(coords), dtype=torch.float64, device=dev)
        for start in range(0, len(coords), G):
            c = coords[start:start + G]
            if len(c) == 1:  # one point: fused elementwise updates, BN folded once for all batches
                vals = centers
                for k, d in enumerate(dirs):
                    vals = torch._foreach_add(vals, d, alpha=float(c[0, k]))
                folded = self.fold(dict(zip(names, vals)))
                logits = lambda xb: self._logits(folded, xb).unsqueeze(0)  # noqa: E731
            else:  # a chunk of points: one vmapped forward (grouped convolutions) per data batch
                cd = c.to(dev)
                pts = {}
                for i, n in enumerate(names):
                    w = centers[i]
                    shape = (-1,) + (1,) * w.dim()
                    v = w.unsqueeze(0) + cd[:, 0].to(w.dtype).view(shape) * dirs[0][i]
                    for k in range(1, len(dirs)):
                        v = v + cd[:, k].to(w.dtype).view(shape) * dirs[k][i]
                    pts[n] = v
                folded = vmap(self.fold)(pts)
                logits = lambda xb: vmap(self._logits, in_dims=(0, None))(folded, xb)  # noqa: E731
            for s in range(0, len(y), batch_size):
                xb, yb = x[s:s + batch_size], y[s:s + batch_size]
                out = logits(xb)
                ce = F.cross_entropy(out.flatten(0, 1), yb.repeat(len(c)), reduction="none")
                losses[start:start + len(c)] += ce.view(len(c), -1).sum(1).double()
                hits[start:start + len(c)] += (out.argmax(-1) == yb).sum(1).double()
        return (losses / len(y)).cpu(), (100.0 * hits / len(y)).cpu()


def time_points_per_batch(ev: SurfaceEvaluator, d1: Params, d2: Params | None, x: torch.Tensor, y: torch.Tensor,
                          candidates=(1, 2, 4, 8, 16, 32, 64), probe_points: int = 64, batch_size: int = 128,
                          repeats: int = 2) -> dict[int, float]:
    """Seconds per grid point for each vmap chunk size in ``candidates`` (best of ``repeats``, after a warm-up),
    on ``max(G, probe_points)`` points. The best size depends on the device, the net and the batch, so it is
    measured rather than fixed. A size that runs out of device memory ends the sweep (larger ones would too).
    Costs about ``len(candidates) * (repeats + 1) * probe_points`` point evaluations."""
    import time
    dims = 2 if d2 is not None else 1
    out = {}
    for G in candidates:
        n = max(G, probe_points)
        coords = torch.linspace(-1, 1, n, dtype=torch.float64)[:, None].repeat(1, dims)
        best = float("inf")
        try:
            for r in range(repeats + 1):
                if x.device.type == "cuda":
                    torch.cuda.synchronize(x.device)
                t0 = time.perf_counter()
                ev.evaluate(coords, d1, d2, x, y, batch_size, G)  # returns CPU tensors: synchronised
                if r:  # the first pass is a warm-up (allocator, cuDNN autotuning)
                    best = min(best, time.perf_counter() - t0)
        except torch.OutOfMemoryError:
            break
        out[G] = best / n
    return out


def surface(model: nn.Module, d1: Params, d2: Params | None, xs, ys, x: torch.Tensor, y: torch.Tensor, *,
            center: Params | None = None, bn: str = "eval", batch_size: int = 128,
            points_per_batch: int | None = None) -> dict:
    """A 2-D surface (``ys`` given) or 1-D line (``d2``/``ys`` None) of loss and accuracy."""
    ev = SurfaceEvaluator(model, center, bn)
    xs = torch.as_tensor(xs, dtype=torch.float64)
    if d2 is None or ys is None:
        loss, acc = ev.evaluate(xs[:, None], d1, None, x, y, batch_size, points_per_batch)
        return {"x": xs.numpy(), "loss": loss.numpy(), "acc": acc.numpy(), "bn": bn, "n_images": len(y)}
    ys = torch.as_tensor(ys, dtype=torch.float64)
    A, B = torch.meshgrid(xs, ys, indexing="xy")  # [ny, nx]
    coords = torch.stack([A.reshape(-1), B.reshape(-1)], 1)
    loss, acc = ev.evaluate(coords, d1, d2, x, y, batch_size, points_per_batch)
    shape = (len(ys), len(xs))
    return {"x": xs.numpy(), "y": ys.numpy(), "loss": loss.view(shape).numpy(), "acc": acc.view(shape).numpy(),
            "bn": bn, "n_images": len(y)}


def basin_share(surf: dict, rise: float = 1.0) -> float:
    """Share of a surface's grid whose loss is within ``rise`` (nats) of the loss at its centre: a width of the
    minimum comparable between two surfaces drawn on the same grid (Figure 6's "wider minimum")."""
    import numpy as np
    loss = np.asarray(surf["loss"])
    iy, ix = int(np.argmin(np.abs(surf["y"]))), int(np.argmin(np.abs(surf["x"])))
    return float((loss <= loss[iy, ix] + rise).mean())
