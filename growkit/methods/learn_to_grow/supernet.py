"""The Learn-to-Grow super network: shared layer copies, and one path per task.

Every searched layer ``l`` owns a list of *copies* ``S_l`` (a conv or linear
weight, no bias). Task ``t`` runs its own *path*: per layer one choice

* ``("reuse", j)``: copy ``j`` as it is (frozen);
* ``("adapt", j)``: copy ``j`` (frozen) plus a task-owned parallel adapter, a
  1x1 conv with the layer's stride for conv layers (a ninth of a 3x3 copy), a
  low-rank map ``U V x`` for linear layers (``V``: rank x inputs, He-initialised;
  ``U``: outputs x rank, zero; ``rank * (inputs + outputs)`` weights against the
  copy's ``inputs * outputs``; rank 0 in a layer's definition: a full linear map,
  what runs recorded before the rank existed), zero where it ends (so at the start
  adapt computes reuse exactly);
* ``("new", j)``: the path uses copy ``j`` that this task created;
* ``("deeper", j)``: reuse copy ``j`` and stack a task-owned block after the
  layer: growkit's residual sub-module (:class:`growkit.models.depth.BasicBlock`,
  the block AutoGrow appends) with ZeroInit (its last BN at gamma = beta = 0), so
  at the start it is the identity on the layer's non-negative output. Conv layers only.

A linear first layer (an MLP backbone) flattens the input first.
A layer computes ``relu(bn_t(pre))`` with ``pre = copy(x) [+ adapter(x)]`` and a
BatchNorm of the task's own, then the optional block and max-pool. Conv layers
end in a global average pool, linear layers follow, then the task's head.
Because every BN, adapter, block and head belongs to one task and every copy is
frozen once its task is learned, learning a task never changes an earlier
task's function: reuse leaves earlier tasks exactly unchanged.

Parameter cost of a task: its BNs, adapters, blocks and head, and the copies it
created. A ``new`` copy of a 3x3 conv with 16 inputs and 32 outputs adds
16 * 32 * 9 = 4,608 weights; its adapter 16 * 32 = 512; the task's BN on that
layer 2 * 32 = 64 whatever the choice (reuse included).
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...errors import GrowkitError
from ...growers.initializers import zero_
from ...models.base import init_weights
from ...models.depth import BasicBlock

OPS = ("reuse", "adapt", "new", "deeper")


@dataclass(frozen=True)
class LayerDef:
    kind: str  # "conv" or "linear"
    cin: int
    cout: int
    k: int = 3
    stride: int = 1
    pool: int = 0  # max-pool kernel (= stride) after the layer, 0: none
    adapter_rank: int = 4  # linear layers: rank of the adapter; 0: a full linear map


def layer_def(d: dict) -> LayerDef:
    """A recorded layer definition; one recorded before ``adapter_rank`` existed had full linear adapters."""
    return LayerDef(**{"adapter_rank": 0, **d})


def make_layer(d: LayerDef) -> nn.Module:
    """A fresh, He-initialised copy (no bias: a BN follows)."""
    m = (nn.Conv2d(d.cin, d.cout, d.k, d.stride, d.k // 2, bias=False) if d.kind == "conv"
         else nn.Linear(d.cin, d.cout, bias=False))
    init_weights(m)
    return m


def make_bn(d: LayerDef) -> nn.Module:
    return nn.BatchNorm2d(d.cout) if d.kind == "conv" else nn.BatchNorm1d(d.cout)


def make_adapter(d: LayerDef) -> nn.Module:
    """A conv layer's 1x1 conv (zero), or a linear layer's ``U V`` (``V`` He-initialised, ``U`` zero) of rank
    ``d.adapter_rank`` (0: one full, zero map): the adapter adds nothing until it is trained."""
    if d.kind == "conv":
        m = nn.Conv2d(d.cin, d.cout, 1, d.stride, 0, bias=False)
    elif d.adapter_rank:
        down, up = nn.Linear(d.cin, d.adapter_rank, bias=False), nn.Linear(d.adapter_rank, d.cout, bias=False)
        init_weights(down)
        nn.init.zeros_(up.weight)
        return nn.Sequential(down, up)
    else:
        m = nn.Linear(d.cin, d.cout, bias=False)
    nn.init.zeros_(m.weight)
    return m


def make_block(d: LayerDef) -> nn.Module:
    if d.kind != "conv":
        raise GrowkitError("the deeper choice stacks conv blocks; linear layers do not offer it")
    blk = BasicBlock(d.cout, [d.cout, d.cout], 1)
    init_weights(blk)
    zero_(blk.last_bn)
    return blk


def numel(m: nn.Module | None) -> int:
    return 0 if m is None else sum(p.numel() for p in m.parameters())


def layer_forward(d: LayerDef, x, weight_module, bn, adapter=None, block=None):
    pre = weight_module(x)
    if adapter is not None:
        pre = pre + adapter(x)
    h = F.relu(bn(pre))
    if block is not None:
        h = block(h)
    if d.pool:
        h = F.max_pool2d(h, d.pool)
    return h


def to_input(defs: list[LayerDef], x):
    """The network's input as its first layer takes it: images flattened for a linear (MLP) first layer."""
    return torch.flatten(x, 1) if defs[0].kind == "linear" and x.ndim > 2 else x


def to_features(defs: list[LayerDef], layer: int, h):
    """Global average pool between the last conv layer and the first linear layer."""
    if defs[layer].kind == "conv" and (layer + 1 == len(defs) or defs[layer + 1].kind == "linear"):
        return torch.flatten(F.adaptive_avg_pool2d(h, 1), 1)
    return h


def check_defs(defs: list[LayerDef]) -> None:
    seen_linear = False
    for i, d in enumerate(defs):
        if d.kind not in ("conv", "linear"):
            raise GrowkitError(f"layer {i}: kind must be conv or linear, got {d.kind!r}")
        if not isinstance(d.adapter_rank, int) or d.adapter_rank < 0:
            raise GrowkitError(f"layer {i}: adapter_rank must be a non-negative integer, got {d.adapter_rank!r}")
        if d.kind == "conv" and seen_linear:
            raise GrowkitError("conv layers must come before linear layers")
        seen_linear |= d.kind == "linear"
        if i and d.cin != defs[i - 1].cout:
            raise GrowkitError(f"layer {i} takes {d.cin} inputs but layer {i - 1} gives {defs[i - 1].cout}")


class TaskPath(nn.Module):
    """What one task owns besides the copies it created: BNs, adapters, blocks, head."""

    def __init__(self, defs: list[LayerDef], choices: list[tuple[str, int]], num_classes: int):
        super().__init__()
        if len(choices) != len(defs):
            raise GrowkitError(f"a path needs one choice per layer ({len(defs)}), got {len(choices)}")
        self.choices = [(str(op), int(j)) for op, j in choices]
        for op, _ in self.choices:
            if op not in OPS:
                raise GrowkitError(f"unknown choice {op!r}; valid: {', '.join(OPS)}")
        self.bns = nn.ModuleList(make_bn(d) for d in defs)
        self.adapters = nn.ModuleDict({str(l): make_adapter(defs[l])
                                       for l, (op, _) in enumerate(self.choices) if op == "adapt"})
        self.blocks = nn.ModuleDict({str(l): make_block(defs[l])
                                     for l, (op, _) in enumerate(self.choices) if op == "deeper"})
        self.head = nn.Linear(defs[-1].cout, num_classes)
        self.num_classes = num_classes

    def owned_params(self) -> int:
        return numel(self)


class SuperNet(nn.Module):
    """Shared copies per layer plus one :class:`TaskPath` per learned task."""

    def __init__(self, defs: list[LayerDef], in_channels: int, image_size: int):
        super().__init__()
        defs = [LayerDef(**d) if isinstance(d, dict) else d for d in defs]
        check_defs(defs)
        self.defs = defs
        self.in_channels, self.image_size = in_channels, image_size
        self.copies = nn.ModuleList(nn.ModuleList() for _ in defs)
        self.owner: list[list[int]] = [[] for _ in defs]  # the task that created each copy
        self.paths = nn.ModuleList()

    # -- structure (JSON) and rebuilding
    def structure(self) -> dict:
        return {"defs": [asdict(d) for d in self.defs], "in_channels": self.in_channels,
                "image_size": self.image_size, "owner": self.owner,
                "tasks": [{"choices": [list(c) for c in p.choices], "num_classes": p.num_classes}
                          for p in self.paths]}

    @property
    def spec(self) -> dict:
        """The structure as a checkpoint's ``spec``: :meth:`from_structure` rebuilds it."""
        return {"name": "SuperNet", **self.structure()}

    @classmethod
    def from_structure(cls, s: dict) -> "SuperNet":
        """An untrained net of the same structure; load the weights with ``load_state_dict``."""
        net = cls([layer_def(d) for d in s["defs"]], s["in_channels"], s["image_size"])
        for l, owners in enumerate(s["owner"]):
            for t in owners:
                net.copies[l].append(make_layer(net.defs[l]))
                net.owner[l].append(int(t))
        for task in s["tasks"]:
            net.paths.append(TaskPath(net.defs, [tuple(c) for c in task["choices"]], task["num_classes"]))
        net.freeze()
        return net

    # -- growing
    def add_task(self, path: TaskPath, new_copies: dict[int, nn.Module]) -> int:
        """Append task ``len(self.paths)``: its path and the copies it creates (``new`` choices)."""
        t = len(self.paths)
        for l, (op, j) in enumerate(path.choices):
            if op == "new":
                if l not in new_copies or j != len(self.copies[l]):
                    raise GrowkitError(f"layer {l}: a new choice must name the next copy ({len(self.copies[l])})")
                self.copies[l].append(new_copies[l])
                self.owner[l].append(t)
            elif not 0 <= j < len(self.copies[l]):
                raise GrowkitError(f"layer {l}: no copy {j} to {op}")
        self.paths.append(path)
        return t

    def freeze(self) -> None:
        """Every learned parameter stays as it is from now on."""
        for p in self.parameters():
            p.requires_grad_(False)

    def trainable_modules(self, t: int, tune_reuse: bool = False) -> nn.ModuleDict:
        """What learning task ``t`` may change, as one container: its path and the copies it created; with
        ``tune_reuse`` also the copies it reuses (the paper's "tuned reuse": earlier tasks then change too)."""
        mods = {"path": self.paths[t]}
        for l, (op, j) in enumerate(self.paths[t].choices):
            if op == "new" or (tune_reuse and op == "reuse"):
                mods[f"copy{l}"] = self.copies[l][j]
        return nn.ModuleDict(mods)

    def task_params(self, t: int) -> int:
        """Parameters added by task ``t`` (its path and its new copies)."""
        return self.paths[t].owned_params() + sum(numel(self.copies[l][j]) for l, (op, j)
                                                  in enumerate(self.paths[t].choices) if op == "new")

    # -- running
    def forward(self, x, task: int):
        path = self.paths[task]
        h = to_input(self.defs, x)
        for l, (d, (op, j)) in enumerate(zip(self.defs, path.choices)):
            h = layer_forward(d, h, self.copies[l][j], path.bns[l], path.adapters[str(l)] if op == "adapt" else None,
                              path.blocks[str(l)] if op == "deeper" else None)
            h = to_features(self.defs, l, h)
        return path.head(h)

    def num_params(self) -> int:
        return numel(self)


BACKBONES = ("Plain3Net", "Plain4Net", "MLP")


def defs_from_registry(model: str = "Plain3Net", depths=(1, 1, 1), widths=None, hidden=(64,),
                       in_channels: int = 1, image_size: int = 8, adapter_rank: int = 4) -> list[LayerDef]:
    """The searched layers of a backbone.

    ``Plain3Net``/``Plain4Net``: the stem conv and every block's conv of the registry's plain depth net, then
    ``hidden`` linear layers (ours: the registry's plain nets have none) before the per-task heads.
    ``MLP``: the image flattened, then the ``hidden`` linear layers only (the paper's backbone for permuted
    MNIST; ``depths`` and ``widths`` are not used). ``adapter_rank``: the linear layers' adapter rank."""
    from ...models import create

    if model not in BACKBONES:
        raise GrowkitError(f"learn-to-grow builds on a plain conv stack or an MLP ({', '.join(BACKBONES)}), "
                           f"got {model!r}")
    for h in hidden:
        if not isinstance(h, int) or isinstance(h, bool) or h <= 0:
            raise GrowkitError(f"hidden sizes must be positive integers, got {hidden!r}")
    if model == "MLP":
        if not hidden:
            raise GrowkitError("an MLP backbone needs at least one hidden layer (--hidden, e.g. 100-100)")
        defs, cin = [], in_channels * image_size * image_size
    else:
        if image_size >= 64:
            raise GrowkitError("learn-to-grow's conv backbones support inputs under 64 px (the small-image stem)")
        net = create(model, depths=list(depths), widths=widths, in_channels=in_channels, num_classes=2,
                     image_size=image_size)
        convs = [net.stem[0]] + [blk.conv1 for stage in net.stages for blk in stage]
        defs = [LayerDef("conv", c.in_channels, c.out_channels, c.kernel_size[0], c.stride[0],
                         adapter_rank=adapter_rank) for c in convs]
        cin = defs[-1].cout
    for h in hidden:
        defs.append(LayerDef("linear", cin, h, 1, 1, adapter_rank=adapter_rank))
        cin = h
    return defs


def clone(m: nn.Module) -> nn.Module:
    c = copy.deepcopy(m)
    for p in c.parameters():
        p.requires_grad_(True)
    return c
