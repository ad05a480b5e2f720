"""The Gauss-Newton estimate of the loss change of every channel split and prune of a net, all at once.

Lawton, Galstyan and Ver Steeg ("Learning Morphisms with Gauss-Newton Approximation for Growing
Networks") approximate the change of the loss when a morphism changes a layer's output ``z`` by
``dz``, per sample ``s``::

    dL_s = dz_s . g_s + (dz_s . g_s)^2 / (4 L_s)

where ``g_s`` is the gradient of the sample's own loss ``L_s`` with respect to ``z_s`` (the loss
Hessian is replaced by ``g g^T / (2 L)``), and average over the batch (their eq. 1). Which ``L``:
the appendix derives the approximation for ``L = |Az - b|^2 / 2`` with ``g = A^T r``, so the
``L`` that makes Theorems 1-2 exact is the loss whose gradient is ``g``: the per-sample loss
``L_s`` (``loss_ref="sample"``, the default). Eq. (1) literally reads "the current training
loss"; ``loss_ref="batch"`` uses the mini-batch mean instead and is kept for comparison.

Sites. A site is a channel group with one ``Conv2d`` producer (``groups=1``) and one consumer
(a conv, or a linear layer after a flatten that owns ``per`` features per channel); between
them only channelwise, per-sample modules and functions (eval-mode BatchNorm, ReLU,
max/avg-pooling, a depthwise conv and its BN in MobileNet). ``z`` is the consumer's output.
A channel split changes channel ``k`` of the consumer's input ``y`` by
``dy_k = (sigma(a_k + c_k) + sigma(a_k - c_k)) / 2 - sigma(a_k)`` (``a = producer(x)``,
``c_k = conv(x, theta_k)``, the outgoing weights are halved); a prune changes it by
``dy_k = -y_k``. The consumer is linear and its bias does not move, so
``dz . g = (W dy) . g = dy . (W^T g) = dy . dL/dy``: the scalar the estimate needs is the
gradient at the consumer's *input* dotted with ``dy``, and neither ``dz`` nor the expanded net
is ever built. The tests check this identity against expanded nets, where ``dz`` is read off
the expanded consumer's output.

All channels at once. A forward hook on the producer returns ``[a, a + c, a - c]`` stacked along
the batch; everything up to the consumer is channelwise and per-sample, so it maps each third
independently, and a pre-hook on the consumer keeps only the first third (the untouched net)
and stores the other two: ``sigma(a + c)`` and ``sigma(a - c)`` for every channel of the layer,
each with its own theta. Cost per layer: one extra conv of the producer's size (``c``), the
channelwise ops on three batches, and their backward for ``d estimate / d theta``.

BatchNorm and pruning. The paper prunes with ``theta = w_in`` (zero incoming weights). Behind
BatchNorm that leaves ``ReLU(BN(0)) = ReLU(beta - gamma mu / sqrt(var + eps))``, not 0, so it is
not a removal. We estimate the change of the actual removal (``dy = -y``), which is what the
applied :class:`~growkit.surgery.PruneChannels` does; nothing is learned for a prune.

Everything runs in eval mode (BatchNorm on running statistics): ``g``, ``dz`` and the truth they
are tested against. Per-sample gradients come from the batch-mean loss: ``dL/dy_s = g_s / S``,
rescaled by ``S``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import GrowkitError

LOSS_REFS = ("sample", "batch")


def per_sample_ce(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(out, target, reduction="none")


@dataclass(frozen=True)
class Site:
    group: str
    producer: str
    consumer: str
    per: int  # consumer input features per channel (1 for a conv, H*W after a flatten)


def sites(model) -> dict[str, Site]:
    """The channel groups whose splits and prunes the estimate covers (see the module docstring)."""
    out = {}
    for name, g in model.channel_groups().items():
        if len(g.producers) != 1 or len(g.consumers) != 1:
            continue
        prod = model.get_submodule(g.producers[0])
        cons_name, per = g.consumers[0]
        cons = model.get_submodule(cons_name)
        if not isinstance(prod, nn.Conv2d) or prod.groups != 1:
            continue
        if isinstance(cons, nn.Conv2d) and cons.groups != 1:
            continue
        if not isinstance(cons, (nn.Conv2d, nn.Linear)):
            continue
        out[name] = Site(name, g.producers[0], cons_name, per)
    return out


def channel_cost(model, group: str) -> int:
    """Parameters one channel of ``group`` owns: its producer filter (and bias), its entries in
    the channelwise modules (BN affine, depthwise kernel) and its consumer columns. A split adds
    this many, a prune removes them."""
    g = model.channel_groups()[group]
    total = 0
    for name in g.producers + g.channelwise:
        m = model.get_submodule(name)
        for p in m.parameters(recurse=False):
            total += p.numel() // p.shape[0]
    for name, per in g.consumers:
        w = model.get_submodule(name).weight
        total += w.numel() // w.shape[1] * per
    return total


def init_thetas(model, groups=None, scale: float = 1e-2, generator: torch.Generator | None = None
                ) -> dict[str, torch.Tensor]:
    """Small random split directions, one per channel: ``scale * rms(w_in) * N(0, 1)``.

    Not zero: at ``theta = 0`` both halves equal the parent, ``dy`` is identically zero in a
    neighbourhood for ReLU nets and the gradient of the estimate vanishes by symmetry
    (``theta -> -theta`` swaps the halves), so gradient descent could never leave it."""
    all_sites = sites(model)
    groups = list(all_sites) if groups is None else list(groups)
    out = {}
    for gname in groups:
        w = model.get_submodule(all_sites[gname].producer).weight.detach()
        rms = w.pow(2).mean(dim=tuple(range(1, w.dim())), keepdim=True).sqrt()
        noise = torch.randn(w.shape, generator=generator, dtype=w.dtype, device="cpu").to(w.device)
        out[gname] = (scale * rms * noise).requires_grad_(True)
    return out


@dataclass
class Estimate:
    split: dict[str, torch.Tensor]  # group -> (C,) estimated dL of splitting each channel (graph to theta)
    prune: dict[str, torch.Tensor]  # group -> (C,) estimated dL of removing each channel
    loss: float  # the batch-mean loss of the untouched net
    samples: int
    hits: int = 0  # its top-1 hits, when the targets are class indices


def gn_delta(d: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """``mean_s [d_s + d_s^2 / (4 L_s)]`` for ``d`` of shape (S, C) and ``ref`` (S,) or scalar."""
    ref = ref.reshape(-1, 1) if ref.dim() else ref
    return (d + d.pow(2) / (4.0 * ref)).mean(0)


class _Hooks:
    """The stack-and-trim hooks of the module docstring; removed by :meth:`close`."""

    def __init__(self, model, chosen: dict[str, Site], thetas: dict[str, torch.Tensor]):
        self.store: dict[str, dict] = {g: {} for g in chosen}
        self.handles = []
        for gname, site in chosen.items():
            prod, cons = model.get_submodule(site.producer), model.get_submodule(site.consumer)
            self.handles.append(prod.register_forward_hook(self._expand(gname, thetas[gname])))
            self.handles.append(cons.register_forward_pre_hook(self._trim(gname)))

    def _expand(self, gname: str, theta: torch.Tensor):
        def hook(m, inp, out):
            x = inp[0].detach()
            c = F.conv2d(x, theta.to(x.dtype), None, m.stride, m.padding, m.dilation, 1)
            a = out.detach()
            self.store[gname]["S"] = out.shape[0]
            return torch.cat([out, a + c, a - c], 0)
        return hook

    def _trim(self, gname: str):
        def hook(m, inp):
            y = inp[0]
            s = self.store[gname]["S"]
            if y.shape[0] != 3 * s:
                raise GrowkitError(f"the path from {gname}'s producer to its consumer is not per-sample")
            st = self.store[gname]
            kept = y[:s]  # the very tensor the consumer reads: the loss gradient is taken at it
            st["y"], st["plus"], st["minus"] = kept, y[s:2 * s], y[2 * s:]
            return (kept,) + tuple(inp[1:])
        return hook

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def estimate(model, x: torch.Tensor, target: torch.Tensor, thetas: dict[str, torch.Tensor], *,
             loss_fn=per_sample_ce, loss_ref: str = "sample") -> Estimate:
    """Estimated loss change of splitting (with ``thetas[group][k]``) and of pruning every channel
    of every group in ``thetas``, on the batch ``(x, target)``. ``split`` keeps the graph to
    ``thetas``: ``sum(e.split[g].sum())`` differentiates to each theta's own gradient (a
    morphism's estimate depends on its own theta only). The model is left as it was: eval mode
    for the pass, its train/eval mode restored; no parameter ``.grad`` is touched (gradients are
    taken with ``torch.autograd.grad``). ``loss_fn(out, target)`` gives per-sample losses."""
    if loss_ref not in LOSS_REFS:
        raise GrowkitError(f"loss_ref must be one of {LOSS_REFS}, got {loss_ref!r}")
    all_sites = sites(model)
    unknown = sorted(set(thetas) - set(all_sites))
    if unknown:
        raise GrowkitError(f"no split/prune site for {', '.join(unknown)}; sites: {', '.join(all_sites)}")
    chosen = {g: all_sites[g] for g in thetas}
    was_training = model.training
    model.eval()
    hooks = _Hooks(model, chosen, thetas)
    try:
        with torch.enable_grad():
            out = model(x)
            losses = loss_fn(out, target)
            if losses.dim() != 1 or losses.shape[0] != x.shape[0]:
                raise GrowkitError("loss_fn must return one loss per sample")
            loss = losses.mean()
            ys = [hooks.store[g]["y"] for g in chosen]
            # the stacked batch shares its channelwise nodes with the loss: keep them for d/d theta
            keep = any(th.requires_grad for th in thetas.values())
            grads = torch.autograd.grad(loss, ys, allow_unused=True, retain_graph=keep)
    finally:
        hooks.close()
        model.train(was_training)
    s = x.shape[0]
    ref = losses.detach() if loss_ref == "sample" else loss.detach()
    split, prune = {}, {}
    for (gname, site), grad in zip(chosen.items(), grads):
        st = hooks.store[gname]
        c = thetas[gname].shape[0]
        y = st["y"].detach()
        g = torch.zeros_like(y) if grad is None else grad.detach() * s  # per-sample gradients
        dy = (st["plus"] + st["minus"]) / 2 - y
        d_split = (dy * g).reshape(s, c, -1).sum(-1)
        d_prune = -(y * g).reshape(s, c, -1).sum(-1)
        split[gname] = gn_delta(d_split, ref)
        prune[gname] = gn_delta(d_prune, ref)
    hits = 0
    if out.dim() == 2 and target.dim() == 1 and not target.is_floating_point():
        hits = int((out.detach().argmax(1) == target).sum())
    return Estimate(split, prune, loss.item(), s, hits)


def theta_grads(est: Estimate, thetas: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """d (sum of all split estimates) / d theta, per group: each row is its morphism's own gradient."""
    names = list(thetas)
    total = sum(est.split[g].sum() for g in names)
    gs = torch.autograd.grad(total, [thetas[g] for g in names], allow_unused=True)
    return {g: (torch.zeros_like(thetas[g]) if d is None else d) for g, d in zip(names, gs)}


def ema_momentum(batch_size: int, n_train: int) -> float:
    """The paper's EMA weight of a new mini-batch, B / (2N): about an average over the last two epochs."""
    return min(1.0, batch_size / (2.0 * max(n_train, 1)))


def ema_update(ema: torch.Tensor | None, value: torch.Tensor, momentum: float) -> torch.Tensor:
    """``(1 - m) ema + m value``; the first value initialises the average (no bias towards 0)."""
    value = value.detach()
    return value.clone() if ema is None else (1.0 - momentum) * ema + momentum * value


class ThetaAdam:
    """Adam on the split directions (the paper: lr 1e-2), with its state as plain tensors so that it
    goes into checkpoints with the grower state. Same update as ``torch.optim.Adam``
    (bias-corrected moments, no weight decay)."""

    def __init__(self, lr: float = 1e-2, betas=(0.9, 0.999), eps: float = 1e-8):
        self.lr, self.betas, self.eps = lr, tuple(betas), eps
        self.m: dict[str, torch.Tensor] = {}
        self.v: dict[str, torch.Tensor] = {}
        self.t = 0

    @torch.no_grad()
    def step(self, thetas: dict[str, torch.Tensor], grads: dict[str, torch.Tensor]) -> None:
        self.t += 1
        b1, b2 = self.betas
        for g, th in thetas.items():
            d = grads[g]
            m = self.m.get(g, torch.zeros_like(th)).mul_(b1).add_(d, alpha=1 - b1)
            v = self.v.get(g, torch.zeros_like(th)).mul_(b2).addcmul_(d, d, value=1 - b2)
            self.m[g], self.v[g] = m, v
            denom = (v / (1 - b2 ** self.t)).sqrt_().add_(self.eps)
            th.addcdiv_(m, denom, value=-self.lr / (1 - b1 ** self.t))

    def state(self) -> dict:
        return {"t": self.t, "m": dict(self.m), "v": dict(self.v)}

    def load(self, state: dict) -> None:
        self.t, self.m, self.v = int(state["t"]), dict(state["m"]), dict(state["v"])



def learn_epoch(model, batches, thetas: dict[str, torch.Tensor], adam: ThetaAdam, ema: dict, momentum,
                loss_ref: str = "sample") -> tuple[float, int, int]:
    """One pass of morphism learning with the model frozen: per mini-batch, the estimate of every
    morphism, an Adam step on every theta, and the moving averages ``ema["split"][g]`` /
    ``ema["prune"][g]`` updated with weight ``momentum(batch size)``. Returns (summed loss, hits,
    samples) of the untouched net."""
    loss_sum, hits, count = 0.0, 0, 0
    for x, y in batches:
        est = estimate(model, x, y, thetas, loss_ref=loss_ref)
        grads = theta_grads(est, thetas)
        m = momentum(len(y))
        for g in thetas:
            ema["split"][g] = ema_update(ema["split"].get(g), est.split[g], m)
            ema["prune"][g] = ema_update(ema["prune"].get(g), est.prune[g], m)
        adam.step(thetas, grads)
        loss_sum += est.loss * len(y)
        hits += est.hits
        count += len(y)
    return loss_sum, hits, count
