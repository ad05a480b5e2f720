"""The Gauss-Newton estimate of the loss change of every channel split and prune of a net, all at once.

Lawton, Galstyan and Ver Steeg ("Learning Morphisms with Gauss-Newton Approximation for Growing
Networks") approximate the change of the loss when a morphism changes a layer's output ``z`` by
``dz``, per sample ``s``::

    dL_s = dz_s . g_s + (dz_s . g_s)^2 / (4 L_s)

where ``g_s`` is the gradient of the sample's own loss ``L_s`` with respect to ``z_s`` (the loss
Hessian is replaced by ``g g^T / (2 L)``), and average over the batch (their eq. 1). Which ``L``:
eq. (1) reads "the current training loss", the mini-batch mean (``loss_ref="batch"``, the default).
The appendix derives the approximation for ``L = |Az - b|^2 / 2`` with ``g = A^T r``, so the ``L``
that makes Theorems 1-2 exact is the loss whose gradient is ``g``: the per-sample loss ``L_s``
(``loss_ref="sample"``, an option). On cross-entropy the per-sample choice was not more accurate.

The reference loss is guarded (:func:`reference_loss`): float32 rounds the cross-entropy of a
confidently right sample to exactly 0, and ``d^2 / (4 * 0)`` is inf or NaN although the exact term
tends to 0 (``d`` shrinks with ``L_s``). The rule: a sample whose ``L_s`` is not above the machine
epsilon of its dtype uses the batch mean instead, and any reference (the batch mean too) is floored
at that epsilon. A non-finite estimate that still comes out stops with :class:`NonFiniteEstimate`
naming the layer (never averaged into the moving averages, never "no decision").

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

All channels at once, in two passes. Pass 1 is the ordinary eval-mode forward of the batch; hooks
keep each producer's input ``x`` and output ``a`` and each consumer's input ``y``, and one
``autograd.grad`` of the batch-mean loss gives ``dL/dy`` at every consumer. Pass 2 runs the net
on an *empty* batch: a forward hook replaces each producer's output by ``[a + c, a - c]`` stacked
along the batch (``c = conv(x, theta)`` for every channel of the layer, each with its own theta);
everything up to the consumer is channelwise and per-sample, so the consumer's pre-hook receives
``sigma(a + c)`` and ``sigma(a - c)`` for every channel, keeps them, and hands the consumer an empty
batch again. No conv of the net runs twice: pass 2 costs one extra conv per layer (``c``) and the
channelwise ops on two batches, and ``d estimate / d theta`` backpropagates through those alone.
(A one-pass variant stacking ``[a, a + c, a - c]`` ran the channelwise ops and their backward on
three batches twice and measured about 30 % slower on a CPU.)

BatchNorm and pruning. The paper prunes with ``theta = w_in`` (zero incoming weights). Behind
BatchNorm that leaves ``ReLU(BN(0)) = ReLU(beta - gamma mu / sqrt(var + eps))``, not 0, so it is
not a removal. We estimate the change of the actual removal (``dy = -y``), which is what the
applied :class:`~growkit.engine.surgery.PruneChannels` does; nothing is learned for a prune.

Everything runs in eval mode (BatchNorm on running statistics): ``g``, ``dz`` and the truth they
are tested against. Per-sample gradients come from the batch-mean loss: ``dL/dy_s = g_s / S``,
rescaled by ``S``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...errors import GrowkitError, NonFiniteLoss

LOSS_REFS = ("batch", "sample")  # the first is the default


class NonFiniteEstimate(NonFiniteLoss):
    """A split or prune estimate (or its theta gradient) is NaN or infinite: the morphism phase stops
    (the CLI exits 1, the last good checkpoint untouched)."""


def reference_loss(losses: torch.Tensor, loss_ref: str) -> torch.Tensor:
    """The ``L`` of the Gauss-Newton term, guarded: ``(S,)`` per-sample losses for ``"sample"`` (where a
    sample's loss is not above the dtype's machine epsilon, the batch mean), the batch mean for
    ``"batch"``; either floored at that epsilon, so the term is finite whenever ``d`` is."""
    losses = losses.detach()
    eps = torch.finfo(losses.dtype).eps
    mean = losses.mean().clamp_min(eps)
    if loss_ref == "batch":
        return mean
    return torch.where(losses > eps, losses, mean).clamp_min(eps)


def check_finite(values: dict[str, torch.Tensor], what: str) -> None:
    """Stop with :class:`NonFiniteEstimate` naming the first layer of ``values`` holding NaN or inf."""
    for g, v in values.items():
        bad = ~torch.isfinite(v.detach())
        if bool(bad.any()):
            raise NonFiniteEstimate(f"the {what} of layer {g} is not finite ({int(bad.sum())} of {bad.numel()} "
                                    f"values, e.g. {float(v.detach()[bad].flatten()[0])})")


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


class _Capture:
    """Pass 1 hooks: each producer's input and output, each consumer's input (the tensor the loss
    gradient is taken at)."""

    def __init__(self, model, chosen: dict[str, Site]):
        self.store: dict[str, dict] = {g: {} for g in chosen}
        self.handles = []
        for gname, site in chosen.items():
            st = self.store[gname]
            self.handles.append(model.get_submodule(site.producer).register_forward_hook(
                lambda m, inp, out, st=st: st.update(x=inp[0].detach(), a=out.detach())))
            self.handles.append(model.get_submodule(site.consumer).register_forward_pre_hook(
                lambda m, inp, st=st: st.update(y=inp[0])))

    def close(self) -> None:
        for h in self.handles:
            h.remove()


class _Perturb(_Capture):
    """Pass 2 hooks, on an empty batch: each producer's (empty) output is replaced by the stack
    ``[a + c, a - c]`` built from pass 1's tensors; each consumer keeps the stack that reached it
    (``sigma(a + c)``, ``sigma(a - c)``) and reads an empty batch again, so no conv of the net
    runs on real data in this pass and the next producer starts from its own stack."""

    def __init__(self, model, chosen: dict[str, Site], thetas: dict[str, torch.Tensor], store: dict):
        self.store, self.handles = store, []
        for gname, site in chosen.items():
            self.handles.append(model.get_submodule(site.producer).register_forward_hook(
                self._expand(store[gname], thetas[gname])))
            self.handles.append(model.get_submodule(site.consumer).register_forward_pre_hook(
                self._trim(gname, store[gname])))

    @staticmethod
    def _expand(st: dict, theta: torch.Tensor):
        def hook(m, inp, out):
            x, a = st["x"], st["a"]
            c = F.conv2d(x, theta.to(x.dtype), None, m.stride, m.padding, m.dilation, 1)
            return torch.cat([a + c, a - c], 0)
        return hook

    @staticmethod
    def _trim(gname: str, st: dict):
        def hook(m, inp):
            z = inp[0]
            s = st["a"].shape[0]
            if z.shape[0] != 2 * s:
                raise GrowkitError(f"the path from {gname}'s producer to its consumer is not per-sample")
            st["plus"], st["minus"] = z[:s], z[s:]
            return (z[:0],) + tuple(inp[1:])
        return hook


def estimate(model, x: torch.Tensor, target: torch.Tensor, thetas: dict[str, torch.Tensor], *,
             loss_fn=per_sample_ce, loss_ref: str = "batch") -> Estimate:
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
    cap = _Capture(model, chosen)
    try:
        with torch.enable_grad():
            out = model(x)
            losses = loss_fn(out, target)
            if losses.dim() != 1 or losses.shape[0] != x.shape[0]:
                raise GrowkitError("loss_fn must return one loss per sample")
            loss = losses.mean()
            grads = torch.autograd.grad(loss, [cap.store[g]["y"] for g in chosen], allow_unused=True)
        cap.close()
        pert = _Perturb(model, chosen, thetas, cap.store)
        with torch.enable_grad():
            model(x[:0])
    finally:
        cap.close()
        if "pert" in locals():
            pert.close()
        model.train(was_training)
    s = x.shape[0]
    ref = reference_loss(losses, loss_ref)
    split, prune = {}, {}
    for (gname, site), grad in zip(chosen.items(), grads):
        st = cap.store[gname]
        c = thetas[gname].shape[0]
        y = st["y"].detach()
        g = torch.zeros_like(y) if grad is None else grad.detach() * s  # per-sample gradients
        # dy . g per sample and channel; the prune's dy = -y, the split's (plus + minus) / 2 - y
        y_g = (y * g).reshape(s, c, -1).sum(-1)
        d_prune = -y_g
        d_split = ((st["plus"] + st["minus"]) * g).reshape(s, c, -1).sum(-1) / 2 - y_g
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
                loss_ref: str = "batch") -> tuple[float, int, int]:
    """One pass of morphism learning with the model frozen: per mini-batch, the estimate of every
    morphism, an Adam step on every theta, and the moving averages ``ema["split"][g]`` /
    ``ema["prune"][g]`` updated with weight ``momentum(batch size)``. Returns (summed loss, hits,
    samples) of the untouched net. A non-finite estimate or theta gradient stops with
    :class:`NonFiniteEstimate` (naming the layer and the mini-batch) before it reaches theta or an average."""
    loss_sum, hits, count = 0.0, 0, 0
    for i, (x, y) in enumerate(batches):
        est = estimate(model, x, y, thetas, loss_ref=loss_ref)
        grads = theta_grads(est, thetas)
        try:
            check_finite(est.split, "split estimate")
            check_finite(est.prune, "prune estimate")
            check_finite(grads, "theta gradient")
        except NonFiniteEstimate as e:
            raise NonFiniteEstimate(f"{e} at mini-batch {i + 1}") from None
        m = momentum(len(y))
        for g in thetas:
            ema["split"][g] = ema_update(ema["split"].get(g), est.split[g], m)
            ema["prune"][g] = ema_update(ema["prune"].get(g), est.prune[g], m)
        adam.step(thetas, grads)
        loss_sum += est.loss * len(y)
        hits += est.hits
        count += len(y)
    return loss_sum, hits, count
