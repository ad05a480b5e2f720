"""The l1-pruning comparator of AdeNeL's Table 1 and Figure 3 (Li et al., "Pruning filters for
efficient convnets"): in each channel group keep the channels whose filters have the largest L1 norm
(summed over the group's producers), remove the rest with :class:`growkit.engine.surgery.PruneChannel`; the
pruned net is then fine-tuned. One shot, per-layer targets given (here: AdeNeL's found widths or a
uniform ratio), no iterative pruning. As a method (``l1-prune``): the full-size net is trained with
the run's SGD (staircase at thirds), pruned at the end of that phase, then fine-tuned; its training
multiply-adds include the full-size phase, as the paper's train-cost of pruning methods does.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from ...engine.config import Record
from ...engine.surgery import PruneChannel, group_width
from ...errors import GrowkitError
from ...growers.base import Decision, Grower


def l1_scores(model, group: str) -> torch.Tensor:
    """L1 norm of each output channel's filters, summed over the group's producers."""
    g = model.channel_groups()[group]
    total = None
    for name in g.producers:
        w = model.get_submodule(name).weight.detach()
        s = w.abs().reshape(w.shape[0], -1).sum(1)
        total = s if total is None else total + s
    return total


def l1_prune(model, targets: dict[str, int]) -> list:
    """Prune every group in ``targets`` to that many channels, lowest L1 first. Returns the edits."""
    edits = []
    for group, keep in targets.items():
        width = group_width(model, group)
        if not 0 < keep <= width:
            raise GrowkitError(f"cannot prune {group} from {width} to {keep} channels")
        scores = l1_scores(model, group)
        order = torch.argsort(scores, descending=True, stable=True)
        drop = sorted(order[keep:].tolist(), reverse=True)  # from the end: indices below stay valid
        for ch in drop:
            edits.append(PruneChannel(group, ch).apply(model))
    return edits


# ----------------------------------------------------------------------------- the l1-prune method

@dataclass
class L1PruneConfig(Record):
    """Train the full-size net, prune every conv channel group by L1 norm in one shot, fine-tune."""
    full_epochs: int = field(default=30, metadata={"help": "epochs of the full-size net before pruning"})
    ratio: float = field(default=0.5, metadata={"help": "share of channels kept in every conv group "
                                                        "(unless targets are given)"})
    targets: dict = field(default_factory=dict, metadata={"cli": False})  # group -> channels kept
    finetune_epochs: int = field(default=20, metadata={"help": "fine-tuning epochs after pruning",
                                                       "flag": "--finetune"})
    finetune_lr: float = field(default=0.01, metadata={"help": "fine-tuning rate, x0.1 at 1/3 and 2/3"})

    def validate(self) -> "L1PruneConfig":
        self.check_fields()
        if self.full_epochs <= 0 or self.finetune_epochs < 0 or self.finetune_lr <= 0:
            raise GrowkitError("l1-prune needs full_epochs > 0, finetune_epochs >= 0, finetune_lr > 0")
        if not 0 < self.ratio <= 1:
            raise GrowkitError(f"ratio must be in (0, 1], got {self.ratio}")
        if not all(isinstance(v, int) and v > 0 for v in self.targets.values()):
            raise GrowkitError(f"targets must map channel groups to positive widths, got {self.targets!r}")
        return self


def conv_groups(model) -> list[str]:
    """Channel groups written only by convs (what AdeNeL grows and this comparator prunes)."""
    import torch.nn as nn
    return [n for n, g in model.channel_groups().items()
            if all(isinstance(model.get_submodule(p), nn.Conv2d) for p in g.producers)]


class L1PruneGrower(Grower):
    """After the full-size phase: prune to ``targets`` (or ``ratio`` of every conv group), lowest L1 first."""
    name = "l1-prune"

    def __init__(self, cfg: L1PruneConfig):
        super().__init__()
        self.cfg = cfg.validate()

    def targets(self, model) -> dict[str, int]:
        if self.cfg.targets:
            unknown = sorted(set(self.cfg.targets) - set(model.channel_groups()))
            if unknown:
                raise GrowkitError(f"l1-prune targets name no channel group of {model.arch}: {unknown}")
            return dict(self.cfg.targets)
        return {g: max(1, round(group_width(model, g) * self.cfg.ratio)) for g in conv_groups(model)}

    def decide(self, view) -> Decision:
        if view.epoch < self.cfg.full_epochs:
            return Decision()
        model, plans, kept = view.model, [], {}
        for group, keep in self.targets(model).items():
            width = group_width(model, group)
            if not 0 < keep <= width:
                raise GrowkitError(f"cannot prune {group} from {width} to {keep} channels")
            order = torch.argsort(l1_scores(model, group), descending=True, stable=True)
            plans += [PruneChannel(group, ch) for ch in sorted(order[keep:].tolist(), reverse=True)]
            kept[group] = keep
        return Decision(plans=plans, done=True, info={"pruned_to": kept})

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def build(train, cfg: L1PruneConfig):
    from ...engine.schedule import Phase
    cfg = cfg.validate()
    thirds = (1 / 3, 2 / 3)
    train = dataclasses.replace(train, epochs=cfg.full_epochs + max(cfg.finetune_epochs, 1))
    phases = [Phase("full", train.lr, "staircase", cfg.full_epochs, milestones=thirds, gamma=0.1, grows=True),
              Phase("finetune", cfg.finetune_lr, "staircase", cfg.finetune_epochs, milestones=thirds, gamma=0.1)]
    return L1PruneGrower(cfg), phases, train
