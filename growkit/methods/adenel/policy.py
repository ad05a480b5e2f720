"""AdeNeL's growth policy as pure functions (paper 002, section 3.2): where to grow, by how much,
when to stop, and what the training cost was.

* **Capacity** of a conv layer: ``s = (filters whose Gamma is non-zero) / (filters)`` (section 3.2.1).
  A channel group written by several convs (a ResNet's residual stream) pools its producers:
  ``s = (non-zero (producer, filter) rows) / (producers x filters)``, which is the paper's s for a
  single producer.
* **Which layers**: conv channel groups only; fully connected layers stay fixed (the paper grows
  "each convolutional layer"). ``ties="untied"`` considers only groups with one producer: in VGG
  and LeNet-5 that is every conv, in a ResNet the first conv of every block (its inner width). This
  is our reading of the paper, which does not say how residual widths grow. ``ties="tied"`` also
  grows the residual streams, every conv writing one stream together (growkit's extension).
* **A round** (every J epochs): every candidate with ``s > tau`` (eq. 9) gains filters: ``grow_by``
  (``grow_rule="fixed"``, the paper's "fixed number of new filters", section 3.2.2) or, with
  ``grow_rule="ratio"``, as many as take a width w to ``max(w + grow_by, int(grow_ratio * w))`` (the
  DessiLBI grow-network example: +8 or x1.1 for its VGG from 16 filters, +4 or x1.1 for its ResNets).
  No candidate above tau: growing stops (``stopped_by = "capacity"``).
* **Budgets** are checked on the *planned* architecture before anything grows (a copy on the meta
  device: no memory, no arithmetic). If the whole round does not fit: ``on_budget="stop"`` (the
  paper: growing "stops when it meets parameters/FLOPs budgets", its FLOPs being multiply-adds) grows nothing and stops;
  ``on_budget="subset"`` grows the largest-capacity candidates that still fit, greedily in order of
  s (ties: layer order), and stops only when none fits. Either way a budget is never exceeded.
* **Train cost**: cumulative training multiply-adds (MACs, forward + backward) of the whole run, absolute, and relative to a named
  reference: the full-size net (the paper's Table 1) or the found net trained from scratch (Table 4)
  for the same number of epochs over the same images.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn as nn

from ...engine.surgery import Widen, group_width
from ...models import count_macs
from .lbi import filter_support

TIES = ("untied", "tied")
GROW_RULES = ("fixed", "ratio")


def grow_amount(width: int, rule: str, grow_by: int, grow_ratio: float = 1.1) -> int:
    """Filters a layer of ``width`` gains in a round: ``grow_by`` (fixed) or ``max(w + grow_by,
    int(grow_ratio * w)) - w`` (ratio)."""
    if rule == "fixed":
        return grow_by
    return max(width + grow_by, int(grow_ratio * width)) - width
ON_BUDGET = ("stop", "subset")


def candidate_groups(model, ties: str = "untied") -> list[str]:
    """The channel groups AdeNeL may widen, in the model's order: groups written only by convs
    (fully connected layers stay fixed); with ``ties="untied"`` only groups with one producer."""
    out = []
    for name, g in model.channel_groups().items():
        if not all(isinstance(model.get_submodule(p), nn.Conv2d) for p in g.producers):
            continue
        if ties == "untied" and len(g.producers) != 1:
            continue
        out.append(name)
    return out


def group_capacity(gammas: list[torch.Tensor]) -> float:
    """Share of non-zero filters over the producers' Gamma tensors (one row per output filter)."""
    rows = sum(int(g.shape[0]) for g in gammas)
    live = sum(int(filter_support(g).sum()) for g in gammas)
    return live / rows if rows else 0.0


def capacities(model, gamma: dict[str, torch.Tensor], groups: list[str]) -> dict[str, float]:
    """``s`` per group from ``gamma`` (parameter name -> Gamma). A producer with no Gamma (not on
    the LBI path) is left out; a group with none at all has capacity 0 (it never grows)."""
    cg = model.channel_groups()
    out = {}
    for name in groups:
        gs = [gamma[f"{p}.weight"] for p in cg[name].producers if f"{p}.weight" in gamma]
        out[name] = group_capacity(gs)
    return out


@dataclass
class RoundPlan:
    grow: dict[str, int] = field(default_factory=dict)  # group -> filters to add, in layer order
    stopped_by: str | None = None  # None: growing goes on; "capacity" | "budget"
    wanted: list[str] = field(default_factory=list)  # groups with s > tau
    blocked: list[str] = field(default_factory=list)  # wanted but left out by the budget


def plan_round(caps: dict[str, float], tau: float, grow_by: int | dict[str, int],
               fits: Callable[[dict[str, int]], bool], on_budget: str = "stop") -> RoundPlan:
    """One growth round from the capacities ``caps`` (in layer order). ``grow_by``: filters per growing
    layer, one number or one per group. ``fits(plan)`` says whether the architecture after ``plan`` is
    within every budget."""
    amount = grow_by if isinstance(grow_by, dict) else {g: grow_by for g in caps}
    order = list(caps)
    wanted = [g for g in order if caps[g] > tau]
    if not wanted:
        return RoundPlan(stopped_by="capacity")
    full = {g: amount[g] for g in wanted}
    if fits(full):
        return RoundPlan(grow=full, wanted=wanted)
    if on_budget == "stop":
        return RoundPlan(stopped_by="budget", wanted=wanted, blocked=wanted)
    chosen: dict[str, int] = {}
    for g in sorted(wanted, key=lambda g: (-caps[g], order.index(g))):
        trial = {**chosen, g: amount[g]}
        if fits(trial):
            chosen = trial
    if not chosen:
        return RoundPlan(stopped_by="budget", wanted=wanted, blocked=wanted)
    grow = {g: chosen[g] for g in order if g in chosen}
    return RoundPlan(grow=grow, wanted=wanted, blocked=[g for g in wanted if g not in chosen])


def widen_plans(grow: dict[str, int]) -> list[Widen]:
    """The surgery of a round: He-initialised new filters, and He-initialised outgoing weights (the
    paper adds randomly initialised filters, not function-preserving ones)."""
    return [Widen(g, n, outgoing="he") for g, n in grow.items()]


def planned_stats(model, grow: dict[str, int]) -> dict:
    """Parameters and multiply-adds (MACs; one image, forward) of ``model`` after ``grow``, on a meta-device copy."""
    shadow = copy.deepcopy(model).to("meta")
    for plan in widen_plans(grow):
        plan.apply(shadow)
    return {"params": sum(p.numel() for p in shadow.parameters()), "macs": count_macs(shadow)}


def within(stats: dict, budget_params: int | None, budget_macs: int | None) -> bool:
    return ((budget_params is None or stats["params"] <= budget_params)
            and (budget_macs is None or stats["macs"] <= budget_macs))


def budget_check(model, budget_params: int | None, budget_macs: int | None) -> Callable[[dict], bool]:
    """``fits(plan)`` for :func:`plan_round`, measured on the planned architecture."""
    if budget_params is None and budget_macs is None:
        return lambda plan: True
    return lambda plan: within(planned_stats(model, plan), budget_params, budget_macs)


def widths(model, groups: list[str] | None = None) -> dict[str, int]:
    """Channels per group (default: every channel group of the model)."""
    groups = list(model.channel_groups()) if groups is None else groups
    return {g: group_width(model, g) for g in groups}


def train_cost(train_macs: float, ref_macs_per_image: float, images_per_epoch: int, ref_epochs: int,
               reference: str) -> dict:
    """The run's cumulative training MACs relative to training the ``reference`` net for
    ``ref_epochs`` epochs over ``images_per_epoch`` images (forward + backward per image)."""
    ref = float(ref_macs_per_image) * images_per_epoch * ref_epochs
    return {"relative": train_macs / ref if ref else None, "reference": reference,
            "reference_macs": ref, "reference_epochs": ref_epochs, "train_macs": float(train_macs)}
