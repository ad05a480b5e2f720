"""Optimizers as registered kinds whose state is keyed by parameter *name*, so it survives growth,
checkpoints and resume.

A kind (:class:`OptimizerKind`, registered with :func:`register`) names itself and knows

* its options (``TrainConfig.optimizer_kw``; unknown keys are a one-line error) and the
  hyper-parameters they give every parameter group;
* how to build a torch optimizer from parameter groups (:meth:`OptimizerKind.make`);
* the value new entries of each state key start at (:attr:`OptimizerKind.fills`, default 0);
* the state of a parameter with no history (:meth:`OptimizerKind.new_state`);
* what to do with state tensors *not* shaped like their parameter when the parameter is reshaped
  (:meth:`OptimizerKind.remap_other`; e.g. per-filter state follows the index map of dim 0).

Parameters are grouped by role (``weight``: conv / linear weights, ``bn``: normalisation affine
parameters, ``bias``: other biases); every group carries ``names``, ``role`` and ``lr_scale`` (the
trainer sets a group's lr to ``schedule(t) * lr_scale``). ``TrainConfig.decay_bn_bias = False`` turns
weight decay off for the ``bn`` and ``bias`` groups. With every group at the same hyper-parameters the
updates equal those of a single group exactly: SGD and Adam update elementwise.

When surgery replaces or adds parameters, :func:`carry` builds the same kind over the edited model
with every group's hyper-parameters and moves the old state across: untouched parameters keep it,
reshaped parameters get every state tensor shaped like them re-indexed through the edits' composed
index maps (old entries keep their values, new entries get the kind's fill value), and new
parameters start from :meth:`OptimizerKind.new_state`. :func:`export` / :func:`restore` give and
rebuild ``{kind, groups, state}`` for checkpoints.
"""
from __future__ import annotations

import types

import torch
import torch.nn as nn

from ..errors import GrowkitError
from .surgery import Edit, compose_remaps, remap_tensor

ROLES = ("weight", "bn", "bias")
_GROUP_META = ("params", "names", "role", "lr_scale")


class OptimizerKind:
    """One registered optimizer. Subclasses set ``name`` and ``options`` (option -> default; a default
    of None means "take the TrainConfig field of that name") and implement :meth:`make`."""
    name = ""
    options: dict = {}
    fills: dict[str, float] = {}  # state key -> value of new entries (missing keys: 0)

    def hyper(self, cfg, kw: dict) -> dict:
        """The hyper-parameters every group starts with, from the config and ``optimizer_kw``."""
        return {k: (kw[k] if k in kw else (getattr(cfg, k) if d is None else d)) for k, d in self.options.items()}

    def make(self, groups: list[dict]) -> torch.optim.Optimizer:
        raise NotImplementedError

    def check(self, cfg, kw: dict) -> None:
        """One-line errors for option values (``kw``, as given) of the wrong type or out of range."""

    def fill(self, key: str) -> float:
        return self.fills.get(key, 0.0)

    def new_state(self, param: torch.Tensor, group: dict) -> dict:
        """State of a parameter with no history (empty: the torch optimizer initialises it lazily)."""
        return {}

    def after_carry(self, opt: torch.optim.Optimizer, edits: list[Edit]) -> None:
        """Called once the state is carried (e.g. LBI's option to restart Z and Gamma after a growth)."""

    def remap_other(self, key: str, value: torch.Tensor, name: str, index: tuple[torch.Tensor, ...],
                    param: torch.Tensor) -> torch.Tensor:
        """A state tensor not shaped like its (reshaped) parameter. Scalars (e.g. Adam's step) are kept;
        anything else must be handled by the kind, never guessed."""
        if value.dim() == 0:
            return value
        raise GrowkitError(f"optimizer {self.name!r} cannot carry state {key!r} of shape {tuple(value.shape)} "
                           f"for reshaped parameter {name}")


_KINDS: dict[str, OptimizerKind] = {}


def register(kind):
    """Register an :class:`OptimizerKind` (class or instance); usable as a class decorator."""
    inst = kind() if isinstance(kind, type) else kind
    if not inst.name:
        raise GrowkitError("an optimizer kind needs a name")
    _KINDS[inst.name] = inst
    return kind


def kinds() -> list[str]:
    return sorted(_KINDS)


def get(name: str) -> OptimizerKind:
    if name not in _KINDS:
        raise GrowkitError(f"unknown optimizer {name!r}; valid: {', '.join(kinds())}")
    return _KINDS[name]


def _number(kw: dict, key: str, lo: float, hi: float | None = None, lo_open: bool = False,
            hi_open: bool = True) -> None:
    """``kw[key]`` (when given) is a finite number in the range; the message names it as the flags do."""
    import math
    if key not in kw:
        return
    v = kw[key]
    rng = f"{'(' if lo_open else '['}{lo:g}, {'inf' if hi is None else f'{hi:g}'}{')' if hi_open else ']'}"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise GrowkitError(f"optimizer option {key} must be a number in {rng}, got {v!r}")
    if not math.isfinite(v):
        raise GrowkitError(f"optimizer option {key} must be finite, got {v!r}")
    if v < lo or (lo_open and v == lo) or (hi is not None and (v > hi or (hi_open and v == hi))):
        raise GrowkitError(f"optimizer option {key} must be in {rng}, got {v!r}")


def _flag(kw: dict, key: str) -> None:
    if key in kw and not isinstance(kw[key], bool):
        raise GrowkitError(f"optimizer option {key} must be true or false, got {kw[key]!r}")


def validate(cfg) -> None:
    """One-line errors for an unknown optimizer, unknown options, option values out of the ranges the
    plain flags have, or a bad ``lr_scale``."""
    kind = get(cfg.optimizer)
    kw = dict(cfg.optimizer_kw or {})
    scale = kw.pop("lr_scale", {})
    unknown = sorted(set(kw) - set(kind.options))
    if unknown:
        raise GrowkitError(f"optimizer {kind.name!r} does not take {', '.join(unknown)}; "
                           f"it takes {', '.join(sorted(kind.options) + ['lr_scale'])}")
    if not isinstance(scale, dict) or set(scale) - set(ROLES) or \
            not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < float("inf")
                    for v in scale.values()):
        raise GrowkitError(f"lr_scale must map roles ({', '.join(ROLES)}) to finite numbers >= 0, got {scale!r}")
    kind.check(cfg, kw)


@register
class SGD(OptimizerKind):
    """SGD with momentum; the AutoGrow and AdeNeL baselines' optimizer."""
    name = "sgd"
    options = {"momentum": None, "nesterov": None, "weight_decay": None, "dampening": 0.0}

    def hyper(self, cfg, kw):
        h = super().hyper(cfg, kw)
        h["nesterov"] = bool(h["nesterov"]) and h["momentum"] > 0
        return h

    def make(self, groups):
        return torch.optim.SGD(groups, lr=groups[0]["lr"])

    def check(self, cfg, kw):
        _number(kw, "momentum", 0, 1)
        _number(kw, "weight_decay", 0, 1)
        _number(kw, "dampening", 0, 1)
        _flag(kw, "nesterov")
        h = {k: (kw[k] if k in kw else (getattr(cfg, k) if d is None else d)) for k, d in self.options.items()}
        if kw.get("nesterov") is True and h["momentum"] == 0:
            raise GrowkitError("optimizer option nesterov needs momentum > 0, got momentum 0")
        if h["nesterov"] and h["momentum"] > 0 and h["dampening"] != 0:
            raise GrowkitError(f"optimizer option nesterov needs dampening 0, got dampening {h['dampening']!r}")

    def new_state(self, param, group):
        # An explicit zero buffer equals PyTorch's first-step init when dampening is 0.
        if group.get("momentum", 0) > 0 and group.get("dampening", 0) == 0:
            return {"momentum_buffer": torch.zeros_like(param, memory_format=torch.preserve_format)}
        return {}


@register
class Adam(OptimizerKind):
    """Adam (L2 weight decay as torch.optim.Adam applies it). A reshaped parameter keeps its step
    count; its new entries start with zero moments, so their first updates are bias-corrected with the
    parameter's step, i.e. smaller than a fresh parameter's (new parameters start at step 0)."""
    name = "adam"
    options = {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": None, "amsgrad": False}

    def hyper(self, cfg, kw):
        h = super().hyper(cfg, kw)
        h["betas"] = tuple(h["betas"])
        return h

    def make(self, groups):
        return torch.optim.Adam(groups, lr=groups[0]["lr"])

    def check(self, cfg, kw):
        if "betas" in kw:
            b = kw["betas"]
            if not isinstance(b, (list, tuple)) or len(b) != 2:
                raise GrowkitError(f"optimizer option betas must be two numbers in [0, 1), got {b!r}")
            for i, v in enumerate(b):
                _number({f"betas[{i}]": v}, f"betas[{i}]", 0, 1)
        _number(kw, "eps", 0, lo_open=True)
        _number(kw, "weight_decay", 0, 1)
        _flag(kw, "amsgrad")


@register
class AdamW(Adam):
    """AdamW: Adam with decoupled weight decay (``torch.optim.AdamW``), the optimizer transformers are
    trained with. Its options and state are Adam's (so state carries across growth the same way); weight
    decay defaults to the config's ``weight_decay``. Where every parameter is on CUDA the fused kernel is
    used (``fused``: "auto" = there; false: never), as nanoGPT does."""
    name = "adamw"
    options = {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": None, "amsgrad": False, "fused": "auto"}

    def make(self, groups):
        params = [p for g in groups for p in g["params"]]
        on_cuda = bool(params) and all(p.is_cuda for p in params)
        fused = groups[0].get("fused")
        fused = on_cuda if fused in (None, "auto") else (bool(fused) and on_cuda)  # (a CUDA run's groups, on a CPU)
        groups = [{k: v for k, v in g.items() if k != "fused"} for g in groups]
        return torch.optim.AdamW(groups, lr=groups[0]["lr"], fused=fused or None)

    def check(self, cfg, kw):
        super().check(cfg, kw)
        if "fused" in kw and kw["fused"] != "auto":
            _flag(kw, "fused")


def role_of(model: nn.Module, name: str) -> str:
    module_name, _, attr = name.rpartition(".")
    m = model.get_submodule(module_name) if module_name else model
    if isinstance(m, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)):
        return "bn"
    p = getattr(m, attr)
    return "bias" if attr == "bias" or p.dim() <= 1 else "weight"


def _attach(opt: torch.optim.Optimizer, kind: str) -> torch.optim.Optimizer:
    opt.growkit_kind = kind
    return opt


def kind_of(opt: torch.optim.Optimizer) -> str:
    kind = getattr(opt, "growkit_kind", None)
    if kind is None:  # a plain torch optimizer
        kind = {torch.optim.SGD: "sgd", torch.optim.Adam: "adam", torch.optim.AdamW: "adamw"}.get(type(opt))
    if kind is None:
        raise GrowkitError(f"{type(opt).__name__} is not a registered optimizer kind")
    return kind


def build(model: nn.Module, cfg, lr: float) -> torch.optim.Optimizer:
    """``cfg.optimizer`` over ``model``, parameters grouped by role."""
    validate(cfg)
    kind = get(cfg.optimizer)
    kw = dict(cfg.optimizer_kw or {})
    scale = kw.pop("lr_scale", {})
    base = kind.hyper(cfg, kw)
    by_role: dict[str, list[tuple[str, torch.Tensor]]] = {}
    for n, p in model.named_parameters():
        by_role.setdefault(role_of(model, n), []).append((n, p))
    groups = []
    for role in ROLES:
        if role not in by_role:
            continue
        h = dict(base)
        if role != "weight" and not cfg.decay_bn_bias and "weight_decay" in h:
            h["weight_decay"] = 0.0
        s = float(scale.get(role, 1.0))
        groups.append({"params": [p for _, p in by_role[role]], "names": [n for n, _ in by_role[role]],
                       "role": role, "lr_scale": s, **h, "lr": lr * s})
    return _attach(kind.make(groups), kind.name)


def sgd(model: nn.Module, lr: float, momentum: float = 0.9, nesterov: bool = False,
        weight_decay: float = 5e-4) -> torch.optim.Optimizer:
    """SGD over every parameter (weight decay on all of them), without a config: the fields :func:`build`
    reads, as a TrainConfig with these values gives them."""
    cfg = types.SimpleNamespace(optimizer="sgd", optimizer_kw={}, decay_bn_bias=True, momentum=momentum,
                                nesterov=nesterov, weight_decay=weight_decay)
    return build(model, cfg, lr)


# ----------------------------------------------------------------------------- state by name

def state_by_name(model: nn.Module, opt: torch.optim.Optimizer) -> dict[str, dict]:
    return {n: dict(opt.state[p]) for n, p in model.named_parameters() if p in opt.state and opt.state[p]}


def load_state_by_name(model: nn.Module, opt: torch.optim.Optimizer, state: dict[str, dict]) -> None:
    params = dict(model.named_parameters())
    fused = bool(opt.defaults.get("fused"))  # a fused kernel wants its step counts on the parameter's device too
    for name, s in state.items():
        if name not in params:
            raise GrowkitError(f"optimizer state for {name}, which the model does not have")
        p = params[name]
        opt.state[p] = {k: (v.to(p.device) if torch.is_tensor(v) and (v.dim() > 0 or fused) else v)
                        for k, v in s.items()}


def _group_of(opt: torch.optim.Optimizer) -> dict[str, dict]:
    """Parameter name -> its group (for optimizers built here; plain ones have no names)."""
    return {n: g for g in opt.param_groups for n in g.get("names", ())}


def carried_state(old: dict[str, dict], old_shapes: dict[str, torch.Size], edits: list[Edit],
                  model: nn.Module, kind: OptimizerKind, group_of: dict[str, dict]) -> dict[str, dict]:
    """The optimizer state of the edited ``model``, built from the state before the edits."""
    comp = compose_remaps(edits)
    new = set(comp.new)
    out = {}
    for name, p in model.named_parameters():
        src = comp.moved.get(name, name)  # the parameter's name before the edits (blocks shift on insertion)
        if name in new or src not in old:
            s = kind.new_state(p, group_of.get(name, {}))
            if s:
                out[name] = s
            continue
        s = old[src]
        idx = comp.remap.get(name)
        if idx is None:
            if old_shapes[src] != p.shape:
                raise GrowkitError(f"{name} changed shape {tuple(old_shapes[src])} -> {tuple(p.shape)} "
                                   "without an index map")
            out[name] = s
            continue
        moved = {}
        for k, v in s.items():
            if torch.is_tensor(v) and v.shape == old_shapes[src]:
                moved[k] = remap_tensor(v, idx, kind.fill(k))
            elif torch.is_tensor(v):
                moved[k] = kind.remap_other(k, v, name, idx, p)
            else:
                moved[k] = v
        out[name] = moved
    return out


def _regroup(model: nn.Module, templates: list[dict], lr: float | None = None) -> list[dict]:
    """Groups with the templates' hyper-parameters over the current parameters: a parameter joins the
    group that named it, else the first group of its role, else the first group."""
    by_name = {n: i for i, g in enumerate(templates) for n in g.get("names", ())}
    by_role = {}
    for i, g in enumerate(templates):
        by_role.setdefault(g.get("role"), i)
    members: list[list[tuple[str, torch.Tensor]]] = [[] for _ in templates]
    for n, p in model.named_parameters():
        i = by_name.get(n, by_role.get(role_of(model, n), 0))
        members[i].append((n, p))
    groups = []
    for g, mem in zip(templates, members):
        if not mem:
            continue
        h = {k: (tuple(v) if isinstance(v, list) else v) for k, v in g.items() if k not in _GROUP_META}
        scale = float(g.get("lr_scale", 1.0))
        if lr is not None:
            h["lr"] = lr * scale
        groups.append({"params": [p for _, p in mem], "names": [n for n, _ in mem],
                       "role": g.get("role", role_of(model, mem[0][0])), "lr_scale": scale, **h})
    return groups


def carry(model: nn.Module, opt: torch.optim.Optimizer, edits: list[Edit],
          old_state: dict[str, dict], old_shapes: dict[str, torch.Size]) -> torch.optim.Optimizer:
    """The same kind with every group's hyper-parameters over the edited model, state carried."""
    kind = get(kind_of(opt))
    new_opt = _attach(kind.make(_regroup(model, opt.param_groups)), kind.name)
    load_state_by_name(model, new_opt, carried_state(old_state, old_shapes, edits, model, kind,
                                                     _group_of(new_opt)))
    kind.after_carry(new_opt, edits)
    return new_opt


def export(model: nn.Module, opt: torch.optim.Optimizer) -> dict:
    """``{kind, groups, state}``: the groups' hyper-parameters and parameter names, state by name."""
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items() if k != "params"}
              for g in opt.param_groups]
    return {"kind": kind_of(opt), "groups": groups, "state": state_by_name(model, opt)}


def restore(model: nn.Module, cfg, exported: dict, lr: float) -> torch.optim.Optimizer:
    """Rebuild the optimizer a run used from :func:`export`'s output. ``groups`` None (a format-1
    checkpoint): the groups come from ``cfg``."""
    kind = get(exported["kind"])
    if exported.get("groups"):
        names = {n for g in exported["groups"] for n in g.get("names", ())}
        missing = names - {n for n, _ in model.named_parameters()}
        if missing:
            raise GrowkitError(f"the saved optimizer names parameters the model lacks: {sorted(missing)[:3]}")
        opt = _attach(kind.make(_regroup(model, exported["groups"], lr)), kind.name)
    else:
        import dataclasses
        opt = build(model, dataclasses.replace(cfg, optimizer=kind.name), lr)
    # copies: the exported state may still belong to a live optimizer
    load_state_by_name(model, opt, {n: {k: (v.clone() if torch.is_tensor(v) else v) for k, v in s.items()}
                                    for n, s in exported["state"].items()})
    return opt
