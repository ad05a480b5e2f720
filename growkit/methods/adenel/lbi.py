"""The Linearized Bregman Iteration (LBI) that solves AdeNeL's DI-ISS (paper 002, eqs. 2 and 5-8).

Every parameter on the LBI path carries, next to its weights W, two tensors of the same shape:
the sub-gradient Z and the augmented variable Gamma, both starting at 0 (Z0 = Gamma0 = 0). With
the coupled loss  L(W) + ||W - Gamma||^2 / (2 nu)  one step with learning rate alpha is

    W     <- W - alpha * (d + (W - Gamma) / nu)           (5)   d: grad L (+ momentum, weight decay)
    Z     <- Z + (alpha / nu) * (W_old - Gamma)            (6)   W_old: W before (5), as the Euler step
    Gamma <- kappa * Prox(Z)                               (7)

Prox is the proximal map of the sparsity penalty with threshold ``lam``:

* conv weights (4-D): group soft-thresholding, one group per output filter,
  ``Gamma_g = kappa * max(0, 1 - lam / ||Z_g||) * Z_g`` (the group Lasso);
* linear weights (2-D): element-wise soft-thresholding, ``sign(z) * max(0, |z| - lam)`` (the Lasso).

The paper's equation (8), ``Prox(Z) = min(0, lam - 1/||Z||_{1,2}) Z``, is misprinted: as written it
is never positive and does not shrink small groups to zero; the map above is the proximal map of the
(group) Lasso that the text describes and that the DessiLBI code it builds on uses. With ``kappa = 1``
the three updates are the paper's (5)-(7). (The Split-LBI literature also scales the W step by
kappa; here, as in the paper's equations, it is not: kappa only scales Gamma.)

Which parameters take the LBI path: a parameter group's ``lbi`` flag (default True) says whether
its 4-D and 2-D tensors do; 1-D tensors (BatchNorm affine parameters, biases) never do and take a
plain SGD step. :func:`param_groups` builds the usual split: every conv weight, every linear weight
except the classifier (the DessiLBI example also leaves its last linear layer out: its sparsity is
never read and coupling it only damps the logits), everything else plain SGD.

Momentum and weight decay act on grad L only, as in DessiLBI: d is PyTorch SGD's direction
(``grad + weight_decay * W``, then the momentum buffer, optionally Nesterov), and the coupling
term (W - Gamma)/nu is added afterwards, never accumulated in the buffer. So with ``1/nu = 0``
(``nu=math.inf``) the W path is ``torch.optim.SGD`` operation for operation, bit for bit.

Cost: per LBI parameter two extra tensors of its size (Z, Gamma) and one shrinkage per step:
about the memory of SGD with momentum plus 2x the LBI weights, and a few element-wise passes.
"""
from __future__ import annotations

import torch

PROX_KINDS = ("filter", "element")


def group_soft_threshold(z: torch.Tensor, lam: float) -> torch.Tensor:
    """``max(0, 1 - lam / ||z_g||) * z_g`` for every group g = one slice along dim 0 (a conv filter).
    A group with ``||z_g|| <= lam`` maps to exactly 0 (also when ``||z_g|| = 0``)."""
    flat = z.reshape(z.shape[0], -1)
    norm = torch.linalg.vector_norm(flat, dim=1)
    scale = (1.0 - lam / norm.clamp_min(torch.finfo(norm.dtype).tiny)).clamp_min(0.0)
    return (flat * scale[:, None]).reshape(z.shape)


def soft_threshold(z: torch.Tensor, lam: float) -> torch.Tensor:
    """Element-wise ``sign(z) * max(0, |z| - lam)`` (the Lasso's proximal map)."""
    return z.sign() * (z.abs() - lam).clamp_min(0.0)


def prox(z: torch.Tensor, lam: float, kind: str) -> torch.Tensor:
    return group_soft_threshold(z, lam) if kind == "filter" else soft_threshold(z, lam)


def prox_kind(p: torch.Tensor) -> str | None:
    """The sparsity structure of a parameter on the LBI path: per filter (4-D), per entry (2-D), none."""
    return {4: "filter", 2: "element"}.get(p.dim())


def filter_support(gamma: torch.Tensor) -> torch.Tensor:
    """Boolean per output filter (row along dim 0): is any entry of Gamma non-zero."""
    return gamma.reshape(gamma.shape[0], -1).ne(0).any(dim=1)


class LBI(torch.optim.Optimizer):
    """DI-ISS solved by LBI, see the module docstring. Hyper-parameters per group:

    ``lr`` (alpha), ``kappa`` (Gamma = kappa * Prox(Z)), ``nu`` (coupling; ``math.inf`` gives 1/nu = 0),
    ``lam`` (the proximal threshold; DessiLBI uses 1), ``momentum``, ``dampening``, ``nesterov``,
    ``weight_decay`` (on grad L only), ``lbi`` (whether the group's 2-D/4-D tensors take the LBI path).

    State per LBI parameter: ``z``, ``gamma`` (shaped like the parameter: growth remaps them with
    new entries 0, which keeps Gamma = kappa * Prox(Z): zero padding leaves a group's norm unchanged)
    and ``momentum_buffer``.
    """

    def __init__(self, params, lr: float = 0.05, kappa: float = 1.0, nu: float = 100.0, lam: float = 1.0,
                 momentum: float = 0.0, dampening: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0, lbi: bool = True):
        if lr < 0 or kappa <= 0 or not nu > 0 or lam < 0 or not 0 <= momentum < 1 or weight_decay < 0:
            raise ValueError(f"invalid LBI hyper-parameters: lr={lr} kappa={kappa} nu={nu} lam={lam} "
                             f"momentum={momentum} weight_decay={weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum needs momentum > 0 and dampening 0")
        defaults = dict(lr=lr, kappa=kappa, nu=nu, lam=lam, momentum=momentum, dampening=dampening,
                        nesterov=nesterov, weight_decay=weight_decay, lbi=lbi)
        super().__init__(params, defaults)

    def is_lbi(self, p: torch.Tensor, group: dict) -> bool:
        return bool(group["lbi"]) and prox_kind(p) is not None

    def lbi_state(self, p: torch.Tensor) -> dict:
        """``z`` and ``gamma`` of an LBI parameter, created at zero on first use."""
        st = self.state[p]
        if "z" not in st:
            st["z"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            st["gamma"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return st

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, mom, damp, wd = group["lr"], group["momentum"], group["dampening"], group["weight_decay"]
            inv_nu = 1.0 / group["nu"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                # d: exactly torch.optim.SGD's direction (same operations, same order)
                d = p.grad
                if wd != 0:
                    d = d.add(p, alpha=wd)
                if mom != 0:
                    st = self.state[p]
                    buf = st.get("momentum_buffer")
                    if buf is None:
                        buf = st["momentum_buffer"] = torch.clone(d).detach()
                    else:
                        buf.mul_(mom).add_(d, alpha=1 - damp)
                    d = d.add(buf, alpha=mom) if group["nesterov"] else buf
                if not self.is_lbi(p, group):
                    p.add_(d, alpha=-lr)
                    continue
                st = self.lbi_state(p)
                gap = p - st["gamma"]  # W_t - Gamma_t, before W moves
                p.add_(d.add(gap, alpha=inv_nu), alpha=-lr)  # (5)
                st["z"].add_(gap, alpha=lr * inv_nu)  # (6)
                st["gamma"] = prox(st["z"], group["lam"], prox_kind(p)).mul_(group["kappa"])  # (7)
        return loss

    # ------------------------------------------------------------------ reading the support
    @torch.no_grad()
    def reset_support(self) -> None:
        """Zero Z and Gamma of every LBI parameter (restart the inverse scale space path)."""
        for group in self.param_groups:
            for p in group["params"]:
                st = self.state.get(p)
                if st and "z" in st:
                    st["z"].zero_()
                    st["gamma"].zero_()


def param_groups(model: torch.nn.Module, exclude: tuple[str, ...] = ()) -> list[dict]:
    """Two groups: the LBI path (conv and linear weights, minus ``exclude``) and plain SGD (the rest).
    Each group carries ``names`` so its state can be keyed by parameter name."""
    lbi, plain = ([], []), ([], [])
    for name, p in model.named_parameters():
        on = prox_kind(p) is not None and not any(name == e or name.startswith(e + ".") for e in exclude)
        tgt = lbi if on else plain
        tgt[0].append(name)
        tgt[1].append(p)
    out = []
    if lbi[1]:
        out.append({"params": lbi[1], "names": lbi[0], "lbi": True})
    if plain[1]:
        out.append({"params": plain[1], "names": plain[0], "lbi": False})
    return out


def classifier_name(model: torch.nn.Module) -> str | None:
    """The last linear layer of a net (its classifier): excluded from the LBI path by default."""
    last = None
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Linear):
            last = name
    return last


# ----------------------------------------------------------------------------- the registered kind

def _split_excluded(groups: list[dict]) -> list[dict]:
    """Groups for :class:`LBI`: a ``weight`` group whose ``exclude`` option names some of its
    parameters (by name or module prefix) is split in two, the excluded part with ``lbi=False``.
    ``bn`` and ``bias`` groups (1-D tensors) are plain SGD anyway."""
    out = []
    for g in groups:
        g = dict(g)
        excl = tuple(g.get("exclude") or ())
        g["lbi"] = g.get("role", "weight") == "weight" and g.get("lbi", True)
        if not g["lbi"] or not excl:
            out.append(g)
            continue
        hit = [any(n == e or n.startswith(e + ".") for e in excl) for n in g["names"]]
        keep = {**g, "params": [p for p, h in zip(g["params"], hit) if not h],
                "names": [n for n, h in zip(g["names"], hit) if not h]}
        off = {**g, "params": [p for p, h in zip(g["params"], hit) if h],
               "names": [n for n, h in zip(g["names"], hit) if h], "lbi": False, "exclude": []}
        out.extend(x for x in (keep, off) if x["params"])
    return out


def register_kind() -> None:
    """Register ``lbi`` in :mod:`growkit.engine.optim` (done when this module is imported). Z and Gamma are
    shaped like their parameter, so the registry's carry remaps them with new entries 0 (``fills``), which
    keeps Gamma = kappa Prox(Z) consistent; LBI has no per-filter state of another shape."""
    from ...engine import optim

    class LBIKind(optim.OptimizerKind):
        """The LBI of :mod:`growkit.methods.adenel.lbi`. Options: ``kappa``, ``nu``, ``lam``, ``momentum``,
        ``nesterov``, ``weight_decay`` (default: the TrainConfig fields), ``dampening``, ``exclude`` (parameter
        or module names kept off the LBI path, e.g. the classifier) and ``reset_support`` (after every
        growth, restart Z and Gamma at 0 instead of carrying them; momentum is carried either way)."""
        name = "lbi"
        options = {"kappa": 1.0, "nu": 100.0, "lam": 1.0, "momentum": None, "nesterov": None,
                   "weight_decay": None, "dampening": 0.0, "exclude": (), "reset_support": False}
        fills = {"z": 0.0, "gamma": 0.0, "momentum_buffer": 0.0}

        def hyper(self, cfg, kw):
            h = super().hyper(cfg, kw)
            h["nesterov"] = bool(h["nesterov"]) and h["momentum"] > 0
            h["exclude"] = list(h["exclude"] or ())
            return h

        def make(self, groups):
            return LBI(_split_excluded(groups), lr=groups[0]["lr"])

        def after_carry(self, opt, edits) -> None:
            if any(g.get("reset_support") for g in opt.param_groups):
                opt.reset_support()

        def new_state(self, param, group):
            # Zero buffers equal the lazy first-step init (dampening 0): a new parameter on the LBI
            # path starts its inverse scale space at Z = Gamma = 0.
            st = {}
            if group.get("momentum", 0) > 0 and group.get("dampening", 0) == 0:
                st["momentum_buffer"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            if group.get("lbi") and prox_kind(param) is not None:
                st["z"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                st["gamma"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            return st

    if "lbi" not in optim.kinds():
        optim.register(LBIKind)


register_kind()
