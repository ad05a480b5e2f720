"""The l1-pruning comparator of AdeNeL's Table 1 and Figure 3 (Li et al., "Pruning filters for
efficient convnets"): in each channel group keep the channels whose filters have the largest L1 norm
(summed over the group's producers), remove the rest with :class:`growkit.engine.surgery.PruneChannel`; the
pruned net is then fine-tuned. One shot, per-layer targets given (here: AdeNeL's found widths or a
uniform ratio), no iterative pruning.

As a method (``l1-prune``) it runs on the *same schedule as the full-width baseline* (``growkit train``
with the same flags): one run of ``epochs`` epochs with the train config's learning-rate schedule; after
``prune_at`` x ``epochs`` epochs the net is pruned and the remaining epochs fine-tune it, continuing that
schedule (with the paper's staircase at thirds and the default ``prune_at = 1/3``, the pruned net
fine-tunes at 0.01, then 0.001). Pruning after 2/3 instead (Li et al. retrain at 0.001) leaves a net
pruned to AdeNeL's widths too little to recover: VGG-16 on digits pruned to 0.6 % of its parameters ended
at 9.7 % (chance) when pruned after 10 of 15 epochs, at 80.3 % after 5. So the comparator is never the
shorter schedule's victim, and ``--ratio 1.0`` (nothing pruned) is the baseline run, number for number (tested). Its training
multiply-adds include the full-size epochs, as the paper's train-cost of pruning methods does.
"""
from __future__ import annotations

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
    """Train the full-size net, prune every conv channel group by L1 norm in one shot, fine-tune: all within
    the baseline's ``epochs`` and schedule (the train config's)."""
    prune_at: float = field(default=1 / 3, metadata={"help": "prune after this share of the epochs (default 1/3: "
                                                             "the pruned net fine-tunes through the other two "
                                                             "thirds of a staircase at thirds)"})
    ratio: float = field(default=0.5, metadata={"help": "share of channels kept in every conv group "
                                                        "(unless targets are given); 1.0 prunes nothing"})
    targets: dict = field(default_factory=dict, metadata={"cli": False})  # group -> channels kept

    def validate(self) -> "L1PruneConfig":
        self.check_fields()
        if not 0 < self.prune_at < 1:
            raise GrowkitError(f"prune_at must be in (0, 1), got {self.prune_at}")
        if not 0 < self.ratio <= 1:
            raise GrowkitError(f"ratio must be in (0, 1], got {self.ratio}")
        if not all(isinstance(v, int) and v > 0 for v in self.targets.values()):
            raise GrowkitError(f"targets must map channel groups to positive widths, got {self.targets!r}")
        return self

    def prune_epoch(self, epochs: int) -> int:
        """The epoch after which the net is pruned: at least 1, leaving at least one fine-tuning epoch."""
        if epochs < 2:
            raise GrowkitError(f"l1-prune needs at least 2 epochs (train, prune, fine-tune), got {epochs}")
        return min(max(1, round(self.prune_at * epochs)), epochs - 1)


def conv_groups(model) -> list[str]:
    """Channel groups written only by convs (what AdeNeL grows and this comparator prunes)."""
    import torch.nn as nn
    return [n for n, g in model.channel_groups().items()
            if all(isinstance(model.get_submodule(p), nn.Conv2d) for p in g.producers)]


class L1PruneGrower(Grower):
    """After ``at`` epochs: prune to ``targets`` (or ``ratio`` of every conv group), lowest L1 first; then
    nothing more until the run's last epoch (``epochs``, when it reports ``stopped_by: "epochs"``)."""
    name = "l1-prune"

    def __init__(self, cfg: L1PruneConfig, at: int, epochs: int | None = None):
        super().__init__()
        self.cfg = cfg.validate()
        self.at, self.epochs = at, epochs
        self.state = {"pruned_to": None, "pruned_channels": 0, "widths_before": None}

    def targets(self, model) -> dict[str, int]:
        if self.cfg.targets:
            unknown = sorted(set(self.cfg.targets) - set(model.channel_groups()))
            if unknown:
                raise GrowkitError(f"l1-prune targets name no channel group of {model.arch}: {unknown}")
            return dict(self.cfg.targets)
        return {g: max(1, round(group_width(model, g) * self.cfg.ratio)) for g in conv_groups(model)}

    def decide(self, view) -> Decision:
        if self.epochs is not None and view.epoch >= self.epochs:
            return Decision(done=True, info={"stopped_by": "epochs"})  # the baseline's schedule ran out
        if view.epoch != self.at:
            return Decision()
        model, plans, kept, before = view.model, [], {}, {}
        for group, keep in self.targets(model).items():
            width = group_width(model, group)
            if not 0 < keep <= width:
                raise GrowkitError(f"cannot prune {group} from {width} to {keep} channels")
            order = torch.argsort(l1_scores(model, group), descending=True, stable=True)
            plans += [PruneChannel(group, ch) for ch in sorted(order[keep:].tolist(), reverse=True)]
            kept[group], before[group] = keep, width
        self.state = {"pruned_to": kept, "pruned_channels": len(plans), "widths_before": before}
        return Decision(plans=plans, info={"pruned_to": kept, "pruned_channels": len(plans)})

    def state_dict(self) -> dict:
        return {"state": dict(self.state)}

    def load_state_dict(self, state: dict) -> None:
        self.state = dict(state.get("state") or self.state)


def build(train, cfg: L1PruneConfig):
    """The baseline's one phase (the train config's schedule over its epochs), with the pruner consulted."""
    from ...engine.schedule import Phase
    cfg = cfg.validate()
    at = cfg.prune_epoch(train.epochs)
    phases = [Phase("train", train.lr, train.schedule, train.epochs, milestones=tuple(train.milestones),
                    gamma=train.gamma, grows=True)]
    return L1PruneGrower(cfg, at, train.epochs), phases, train
