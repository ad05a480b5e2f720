"""The depth-growable families of AutoGrow (section 2.1 of the paper).

A network is a stem, a cascade of *sub-networks* (``stages``) and a classifier.
A sub-network is a stack of *sub-modules* (``blocks``) sharing one output size;
its first block reduces the spatial size (stride 2, except in the first stage).
AutoGrow appends blocks at the end of a stage (:class:`growkit.engine.surgery.AppendBlock`).

=====================  ======  ==========================================  ================
family                 stages  sub-module                                  stage widths
=====================  ======  ==========================================  ================
``Basic3ResNet``       3       basic residual block (3x3, 3x3, shortcut)   16, 32, 64
``Plain3Net``          3       conv3x3-BN-ReLU (Basic3ResNet w/o shortcut)  16, 32, 64
``Basic4ResNet``       4       basic residual block                        64, 128, 256, 512
``Plain4Net``          4       conv3x3-BN-ReLU                             64, 128, 256, 512
``Bottleneck4ResNet``  4       bottleneck block (1x1, 3x3, 1x1; x4)        256, ..., 2048
=====================  ======  ==========================================  ================

Shortcuts that change shape are 1x1 conv + BN projections. Inputs of 64 pixels
or more get the ImageNet stem (7x7/2 conv, 3x3/2 max-pool); smaller inputs
(CIFAR 32, MNIST 28, digits 8) a 3x3/1 conv. A global average pool makes every
family work at any input size, so digits (1x8x8) runs the same code as CIFAR.

``ResNet20`` / ``ResNet32`` are ``Basic3ResNet-3-3-3`` / ``-5-5-5`` and ``ResNet18`` (ImageNet) is
``Basic4ResNet-2-2-2-2``, registered for width growing, with the widths of every block in the spec.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import ChannelGroup, GrowableNet, init_weights

FAMILIES = {  # name: (block kind, number of stages, default stem width, default stage widths)
    "Basic3ResNet": ("basic", 3, 16, (16, 32, 64)),
    "Plain3Net": ("plain", 3, 16, (16, 32, 64)),
    "Basic4ResNet": ("basic", 4, 64, (64, 128, 256, 512)),
    "Plain4Net": ("plain", 4, 64, (64, 128, 256, 512)),
    "Bottleneck4ResNet": ("bottleneck", 4, 64, (256, 512, 1024, 2048)),
}


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    return nn.Conv2d(cin, cout, k, stride, padding=k // 2, bias=False), nn.BatchNorm2d(cout)


class Block(nn.Module):
    """A sub-module. ``convs`` lists its main-path (conv, bn) names in order; the last BN
    is the one AutoGrow's initializers set (zero for ZeroInit, noise for GauInit)."""

    convs: tuple[str, ...] = ()
    residual: bool = True  # AutoGrow's initializers set the last BN of residual sub-modules only

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return getattr(self, "bn" + self.convs[-1][-1])

    @property
    def has_projection(self) -> bool:
        return isinstance(getattr(self, "shortcut", None), nn.Sequential)

    @property
    def widths(self) -> list[int]:
        return [getattr(self, c).out_channels for c in self.convs]


class PlainBlock(Block):
    convs = ("conv1",)
    residual = False

    def __init__(self, cin: int, widths: list[int], stride: int = 1):
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(cin, widths[0], 3, stride)

    def forward(self, x):
        return F.relu(self.bn1(self.conv1(x)))


class _Residual(Block):
    def _shortcut(self, cin: int, cout: int, stride: int) -> None:
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(*_conv_bn(cin, cout, 1, stride))
        else:
            self.shortcut = nn.Identity()


class BasicBlock(_Residual):
    convs = ("conv1", "conv2")

    def __init__(self, cin: int, widths: list[int], stride: int = 1):
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(cin, widths[0], 3, stride)
        self.conv2, self.bn2 = _conv_bn(widths[0], widths[1], 3)
        self._shortcut(cin, widths[1], stride)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class BottleneckBlock(_Residual):
    convs = ("conv1", "conv2", "conv3")

    def __init__(self, cin: int, widths: list[int], stride: int = 1):
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(cin, widths[0], 1)
        self.conv2, self.bn2 = _conv_bn(widths[0], widths[1], 3, stride)
        self.conv3, self.bn3 = _conv_bn(widths[1], widths[2], 1)
        self._shortcut(cin, widths[2], stride)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        return F.relu(self.bn3(self.conv3(out)) + self.shortcut(x))


BLOCKS = {"basic": BasicBlock, "plain": PlainBlock, "bottleneck": BottleneckBlock}


def default_block_widths(kind: str, width: int) -> list[int]:
    return {"basic": [width, width], "plain": [width], "bottleneck": [width // 4, width // 4, width]}[kind]


class DepthNet(GrowableNet):
    def __init__(self, family: str, depths, widths=None, stem_width: int | None = None, block_widths=None,
                 in_channels: int = 3, num_classes: int = 10, image_size: int = 32):
        super().__init__(in_channels, num_classes, image_size)
        kind, n_stages, default_stem, default_widths = FAMILIES[family]
        self.family, self.kind = family, kind
        widths = list(widths or default_widths)
        stem_width = stem_width or (widths[0] if kind != "bottleneck" else default_stem)
        stem = [nn.Conv2d(in_channels, stem_width, 3, 1, 1, bias=False), nn.BatchNorm2d(stem_width), nn.ReLU()]
        if image_size >= 64:  # the ImageNet stem: 7x7/2 conv and 3x3/2 max-pool
            stem = [nn.Conv2d(in_channels, stem_width, 7, 2, 3, bias=False), nn.BatchNorm2d(stem_width),
                    nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
        self.stem = nn.Sequential(*stem)
        self.stages = nn.ModuleList()
        cin = stem_width
        for s, depth in enumerate(depths):
            stage = nn.Sequential()
            for b in range(depth):
                bw = block_widths[s][b] if block_widths else default_block_widths(kind, widths[s])
                stage.append(BLOCKS[kind](cin, bw, 2 if (b == 0 and s > 0) else 1))
                cin = bw[-1]
            self.stages.append(stage)
        self.head = nn.Linear(cin, num_classes)
        init_weights(self)

    # -- structure
    @property
    def depths(self) -> list[int]:
        return [len(s) for s in self.stages]

    def stage_width(self, s: int) -> int:
        return self.stages[s][-1].widths[-1]

    def structure(self) -> dict:
        widths = [self.stage_width(s) for s in range(len(self.stages))]
        out = {"depths": self.depths, "widths": widths, "stem_width": self.stem[0].out_channels}
        blocks = [[blk.widths for blk in stage] for stage in self.stages]
        if blocks != [[default_block_widths(self.kind, w)] * d for w, d in zip(widths, self.depths)]:
            out["block_widths"] = blocks
        return out

    @property
    def arch(self) -> str:
        return f"{self.family}-{'-'.join(map(str, self.depths))}"

    def new_block(self, stage: int) -> Block:
        """A fresh sub-module for the end of ``stage`` (same width in and out, stride 1), He-initialised."""
        w = self.stage_width(stage)
        blk = BLOCKS[self.kind](w, default_block_widths(self.kind, w), 1)
        init_weights(blk)
        ref = self.head.weight
        return blk.to(device=ref.device, dtype=ref.dtype)

    def forward(self, x):
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    # -- channel axes (for width surgery)
    def channel_groups(self) -> dict[str, ChannelGroup]:
        groups: dict[str, ChannelGroup] = {}
        # The residual stream: a channel space shared by every block joined by identity shortcuts.
        stream = {"name": "stem", "producers": ["stem.0"], "channelwise": ["stem.1"], "consumers": []}

        def close(st):
            groups[st["name"]] = ChannelGroup(st["name"], tuple(st["producers"]), tuple(st["channelwise"]),
                                              tuple((c, 1) for c in st["consumers"]))

        for s, stage in enumerate(self.stages):
            for b, blk in enumerate(stage):
                p = f"stages.{s}.{b}"
                stream["consumers"].append(f"{p}.conv1")
                convs = blk.convs
                for i in range(len(convs) - 1):  # inner axes: conv_i -> bn_i -> conv_{i+1}
                    name = f"{p}.{convs[i]}"
                    groups[name] = ChannelGroup(name, (name,), (f"{p}.bn{convs[i][-1]}",),
                                                ((f"{p}.{convs[i + 1]}", 1),))
                last = (f"{p}.{convs[-1]}", f"{p}.bn{convs[-1][-1]}")
                if self.kind == "plain" or blk.has_projection:
                    if blk.has_projection:
                        stream["consumers"].append(f"{p}.shortcut.0")
                    close(stream)
                    stream = {"name": p, "producers": [last[0]], "channelwise": [last[1]], "consumers": []}
                    if blk.has_projection:
                        stream["producers"].append(f"{p}.shortcut.0")
                        stream["channelwise"].append(f"{p}.shortcut.1")
                else:  # identity shortcut: the block writes into the stream it reads
                    stream["producers"].append(last[0])
                    stream["channelwise"].append(last[1])
        stream["consumers"].append("head")
        close(stream)
        return groups
