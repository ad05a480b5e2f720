"""The l1-pruning comparator of AdeNeL's Table 1 and Figure 3 (Li et al., "Pruning filters for
efficient convnets"): in each channel group keep the channels whose filters have the largest L1 norm
(summed over the group's producers), remove the rest with :class:`growkit.surgery.PruneChannel`; the
pruned net is then fine-tuned. One shot, per-layer targets given (here: AdeNeL's found widths or a
uniform ratio), no iterative pruning.
"""
from __future__ import annotations

import torch

from .errors import GrowkitError
from .surgery import PruneChannel, group_width


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
