"""Width-growable families: every layer's filter count lives in the spec.

* ``VGG16`` / ``VGG19``: the CIFAR-style VGG of the AdeNeL and Gauss-Newton
  papers (3x3 conv-BN-ReLU, 2x2 max-pools, global average pool, linear
  classifier, optional hidden linear layers; ``hidden=[512]`` is the papers' 14.99M-parameter
  VGG-16 on CIFAR-10). A max-pool is skipped once the
  map is 1x1, so the same net runs on 8x8 digits.
* ``MobileNetV1``: 3x3 conv then 13 depthwise-separable blocks (CIFAR strides;
  the first conv has stride 2 on ImageNet-size inputs). The widths are those of
  the first conv and the 13 pointwise convs; a depthwise conv carries its input
  channels one by one, so it belongs to the channel group of its input.
* ``LeNet5``: conv5x5(6)-pool-conv5x5(16)-pool-fc120-fc84-fc, with ReLU and
  max-pooling (the modern reading of LeNet-5). The second conv is padded when
  the map is too small for a valid 5x5 conv (digits).

``ResNet20`` / ``ResNet32`` live in :mod:`growkit.models.depth`.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import ChannelGroup, GrowableNet, init_weights

VGG_CFG = {  # filters per conv, "M" = 2x2 max-pool
    "VGG16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "VGG19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"],
}


def _uniform(widths, default: list[int]) -> list[int]:
    if widths is None:
        return list(default)
    if isinstance(widths, int):
        return [widths] * len(default)
    return list(widths)


class ConvBN(nn.Module):
    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class VGG(GrowableNet):
    def __init__(self, family: str, widths=None, hidden=(), in_channels=3, num_classes=10, image_size=32):
        super().__init__(in_channels, num_classes, image_size)
        self.family = family
        cfg = VGG_CFG[family]
        widths = _uniform(widths, [c for c in cfg if c != "M"])
        self.layers = nn.ModuleList()
        self.pool_after: list[int] = []
        cin, size = in_channels, image_size
        for item in cfg:
            if item == "M":
                if size >= 2:
                    self.pool_after.append(len(self.layers) - 1)
                    size //= 2
                continue
            self.layers.append(ConvBN(cin, widths[len(self.layers)]))
            cin = widths[len(self.layers) - 1]
        dims = [cin, *hidden, num_classes]
        self.classifier = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        init_weights(self)

    def structure(self) -> dict:
        return {"widths": [l.conv.out_channels for l in self.layers],
                "hidden": [fc.out_features for fc in self.classifier[:-1]]}

    @property
    def arch(self) -> str:
        return f"{self.family}[{'-'.join(str(l.conv.out_channels) for l in self.layers)}]"

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i in self.pool_after:
                x = F.max_pool2d(x, 2)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        for fc in self.classifier[:-1]:
            x = F.relu(fc(x))
        return self.classifier[-1](x)

    def channel_groups(self) -> dict[str, ChannelGroup]:
        g = {}
        n = len(self.layers)
        for i in range(n):
            nxt = f"layers.{i + 1}.conv" if i + 1 < n else "classifier.0"
            g[f"layers.{i}"] = ChannelGroup(f"layers.{i}", (f"layers.{i}.conv",), (f"layers.{i}.bn",), ((nxt, 1),))
        for j in range(len(self.classifier) - 1):
            g[f"classifier.{j}"] = ChannelGroup(f"classifier.{j}", (f"classifier.{j}",), (),
                                                ((f"classifier.{j + 1}", 1),))
        return g


MOBILENET_CFG = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
                 (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)]


class DepthwiseSeparable(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.dw = ConvBN(cin, cin, 3, stride, groups=cin)
        self.pw = ConvBN(cin, cout, 1)

    def forward(self, x):
        return self.pw(self.dw(x))


class MobileNetV1(GrowableNet):
    family = "MobileNetV1"

    def __init__(self, widths=None, in_channels=3, num_classes=10, image_size=32):
        super().__init__(in_channels, num_classes, image_size)
        widths = _uniform(widths, [32] + [c for c, _ in MOBILENET_CFG])
        self.stem = ConvBN(in_channels, widths[0], 3, 2 if image_size >= 64 else 1)
        self.blocks = nn.ModuleList(DepthwiseSeparable(widths[i], widths[i + 1], s)
                                    for i, (_, s) in enumerate(MOBILENET_CFG))
        self.head = nn.Linear(widths[-1], num_classes)
        init_weights(self)

    def structure(self) -> dict:
        return {"widths": [self.stem.conv.out_channels] + [b.pw.conv.out_channels for b in self.blocks]}

    @property
    def arch(self) -> str:
        return f"MobileNetV1[{'-'.join(map(str, self.structure()['widths']))}]"

    def forward(self, x):
        x = self.stem(x)
        for b in self.blocks:
            x = b(x)
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    def channel_groups(self) -> dict[str, ChannelGroup]:
        g = {}
        names = ["stem"] + [f"blocks.{i}.pw" for i in range(len(self.blocks))]
        for i, name in enumerate(names):
            if i < len(self.blocks):  # the next depthwise conv (and its BN) carries these channels
                cw = (f"{name}.bn", f"blocks.{i}.dw.conv", f"blocks.{i}.dw.bn")
                cons = ((f"blocks.{i}.pw.conv", 1),)
            else:
                cw, cons = (f"{name}.bn",), (("head", 1),)
            g[name] = ChannelGroup(name, (f"{name}.conv",), cw, cons)
        return g


class LeNet5(GrowableNet):
    family = "LeNet5"

    def __init__(self, widths=None, in_channels=1, num_classes=10, image_size=28):
        super().__init__(in_channels, num_classes, image_size)
        c1, c2, f1, f2 = _uniform(widths, [6, 16, 120, 84])
        self.conv1 = nn.Conv2d(in_channels, c1, 5, padding=2)
        s = image_size // 2
        pad2 = 0 if s >= 10 else 2  # a valid 5x5 conv needs a map of at least 10 to leave 5x5 after pooling
        self.conv2 = nn.Conv2d(c1, c2, 5, padding=pad2)
        s = (s - 4 if pad2 == 0 else s) // 2
        self.flat = s * s  # input features per conv2 channel after the flatten
        self.fc1 = nn.Linear(c2 * self.flat, f1)
        self.fc2 = nn.Linear(f1, f2)
        self.fc3 = nn.Linear(f2, num_classes)
        init_weights(self)

    def structure(self) -> dict:
        return {"widths": [self.conv1.out_channels, self.conv2.out_channels, self.fc1.out_features,
                           self.fc2.out_features]}

    @property
    def arch(self) -> str:
        return f"LeNet5[{'-'.join(map(str, self.structure()['widths']))}]"

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc3(F.relu(self.fc2(x)))

    def channel_groups(self) -> dict[str, ChannelGroup]:
        return {
            "conv1": ChannelGroup("conv1", ("conv1",), (), (("conv2", 1),)),
            "conv2": ChannelGroup("conv2", ("conv2",), (), (("fc1", self.flat),)),
            "fc1": ChannelGroup("fc1", ("fc1",), (), (("fc2", 1),)),
            "fc2": ChannelGroup("fc2", ("fc2",), (), (("fc3", 1),)),
        }
