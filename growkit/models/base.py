"""What every growable network offers the rest of the kit.

* ``spec``: a JSON-ready dict, read off the live modules (never stored), from
  which :func:`growkit.models.from_spec` rebuilds the same structure. After
  any surgery the spec is automatically up to date.
* ``arch``: a short human name, e.g. ``Basic3ResNet-2-3-2``.
* ``channel_groups()``: every channel axis of the net, described as the
  modules that write it (producers), carry it one channel at a time
  (channelwise: BatchNorm, depthwise conv) and read it (consumers). Width
  surgery edits one group at a time, so it cannot leave shapes inconsistent.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn


@dataclass(frozen=True)
class ChannelGroup:
    name: str
    producers: tuple[str, ...]  # conv / linear modules whose output dim 0 is this axis
    channelwise: tuple[str, ...]  # BatchNorm / depthwise conv modules carrying the axis
    consumers: tuple[tuple[str, int], ...]  # (module, input features per channel): 1 for convs, H*W after a flatten

    @property
    def modules(self) -> tuple[str, ...]:
        return self.producers + self.channelwise + tuple(c for c, _ in self.consumers)


class GrowableNet(nn.Module):
    family: str = ""

    def __init__(self, in_channels: int, num_classes: int, image_size: int):
        super().__init__()
        self.in_channels, self.num_classes, self.image_size = in_channels, num_classes, image_size

    # -- what subclasses provide
    def structure(self) -> dict:
        """The family-specific part of the spec, read from the modules."""
        raise NotImplementedError

    def channel_groups(self) -> dict[str, ChannelGroup]:
        return {}

    @property
    def arch(self) -> str:
        raise NotImplementedError

    # -- shared
    @property
    def spec(self) -> dict:
        return {"name": self.family, **self.structure(), "in_channels": self.in_channels,
                "num_classes": self.num_classes, "image_size": self.image_size}

    def example_input(self, batch: int, device="cpu") -> torch.Tensor:
        """A batch of zero inputs of the shape the net takes (what MAC counting feeds it)."""
        return torch.zeros(batch, self.in_channels, self.image_size, self.image_size, device=device)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def extra_repr(self) -> str:
        return self.arch


def init_weights(module: nn.Module) -> None:
    """He (fan-out) normal for convs, PyTorch's default for linears, BN at (1, 0).

    He et al. is what the ResNet and AdeNeL papers initialise with; it is also
    what new filters and new blocks get when a net grows.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
