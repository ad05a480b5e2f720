"""Optimizers whose state is keyed by parameter *name*, so it survives growth and checkpoints.

When surgery replaces or adds parameters, :func:`carry` builds a fresh
optimizer over the model's current parameters and moves the old state across:
untouched parameters keep their state tensors, reshaped parameters get their
state re-indexed with the edit's index maps (old entries keep their momentum,
new entries are zero), and new parameters start with zero momentum.
"""
from __future__ import annotations

import torch

from .surgery import Edit, remap_tensor


def sgd(model: torch.nn.Module, lr: float, momentum: float = 0.9, nesterov: bool = False,
        weight_decay: float = 5e-4) -> torch.optim.SGD:
    # One group, weight decay on every parameter: what the AutoGrow and AdeNeL baselines do.
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0,
                           weight_decay=weight_decay)


def state_by_name(model: torch.nn.Module, opt: torch.optim.Optimizer) -> dict[str, dict]:
    return {n: dict(opt.state[p]) for n, p in model.named_parameters() if p in opt.state and opt.state[p]}


def load_state_by_name(model: torch.nn.Module, opt: torch.optim.Optimizer, state: dict[str, dict]) -> None:
    params = dict(model.named_parameters())
    for name, s in state.items():
        p = params[name]
        opt.state[p] = {k: (v.to(p.device) if torch.is_tensor(v) and v.dim() > 0 else v) for k, v in s.items()}


def carried_state(old: dict[str, dict], old_shapes: dict[str, torch.Size], edits: list[Edit],
                  model: torch.nn.Module, momentum: bool = True) -> dict[str, dict]:
    """The optimizer state of the edited ``model``, built from the state before the edits."""
    remaps, new = {}, set()
    for e in edits:
        remaps.update(e.remap)
        new.update(e.new)
    out = {}
    for name, p in model.named_parameters():
        if name in new or name not in old:
            if momentum:  # SGD: an explicit zero buffer equals PyTorch's first-step init (dampening 0)
                out[name] = {"momentum_buffer": torch.zeros_like(p, memory_format=torch.preserve_format)}
            continue
        s = old[name]
        if name in remaps:
            s = {k: (remap_tensor(v, remaps[name]) if torch.is_tensor(v) and v.shape == old_shapes[name] else v)
                 for k, v in s.items()}
        out[name] = s
    return out


def carry(model: torch.nn.Module, opt: torch.optim.Optimizer, edits: list[Edit],
          old_state: dict[str, dict], old_shapes: dict[str, torch.Size]) -> torch.optim.Optimizer:
    """A new optimizer of the same kind and hyper-parameters over the edited model, state carried."""
    hyper = {k: v for k, v in opt.param_groups[0].items() if k != "params"}
    new_opt = type(opt)(model.parameters(), **hyper)
    momentum = isinstance(opt, torch.optim.SGD) and hyper.get("momentum", 0) > 0
    load_state_by_name(model, new_opt, carried_state(old_state, old_shapes, edits, model, momentum))
    return new_opt
