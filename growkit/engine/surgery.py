"""Pure structural edits, shared by every grower.

Plan, then act: an edit is a small dataclass (:class:`AppendBlock`,
:class:`Widen`, :class:`SplitChannel(s)`, :class:`PruneChannel(s)`) that can be
printed (``plan.describe(model)``) before ``plan.apply(model)`` changes the
model in place. ``apply`` returns an :class:`Edit` saying which parameters are
new and how every reshaped parameter's entries moved, so the trainer can carry
optimizer state (old entries keep their momentum, new entries start at zero).
A growth step may apply many edits that touch the same parameter; their index
maps chain (:func:`compose_remaps`), they never overwrite each other.

Surgery decides *how* the structure changes and gives new weights neutral
defaults; *what* the new weights should be is the grower's initializer.

Width edits act on a :class:`~growkit.models.base.ChannelGroup`: the producers'
output rows, the channelwise modules' entries (BatchNorm affine parameters and
running statistics, depthwise kernels) and the consumers' input columns move
together, so shapes stay consistent even for a residual stream shared by many
layers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from ..errors import GrowkitError
from ..models.base import ChannelGroup


@dataclass
class Edit:
    """The record of one applied edit. ``new``, ``remap`` and ``moved`` use the parameter names after the
    edit; ``moved`` maps a renamed parameter (a block shifted by an insertion) to its name before."""
    kind: str
    where: str
    before: str
    after: str
    new: list[str] = field(default_factory=list)  # parameters that did not exist before
    # reshaped parameters: for every dim, the old index of each new position (-1: a new entry)
    remap: dict[str, tuple[torch.Tensor, ...]] = field(default_factory=dict)
    moved: dict[str, str] = field(default_factory=dict)  # name after the edit -> name before it
    preserving: bool | None = None  # True: the network computes the same function; None: not stated

    def summary(self) -> dict:
        out = {"kind": self.kind, "where": self.where, "before": self.before, "after": self.after,
               "new_params": len(self.new), "reshaped_params": len(self.remap)}
        if self.moved:
            out["moved_params"] = len(self.moved)
        if self.preserving is not None:
            out["preserving"] = self.preserving
        return out


def remap_tensor(old: torch.Tensor, index: tuple[torch.Tensor, ...], fill: float = 0.0) -> torch.Tensor:
    """Place ``old``'s entries at their new positions (``index[d][j]`` = old position of new
    position ``j`` along dim ``d``, -1 for new); new positions get ``fill``."""
    out = old.new_full(tuple(len(i) for i in index), fill)
    nd = old.dim()
    dst, src = [], []
    for d, idx in enumerate(index):
        keep = torch.nonzero(idx >= 0).squeeze(1).to(old.device)
        shape = [1] * nd
        shape[d] = -1
        dst.append(keep.view(shape))
        src.append(idx.to(old.device)[keep].view(shape))
    out[tuple(dst)] = old[tuple(src)]
    return out


def chain_index(first: tuple[torch.Tensor, ...], then: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """The index map of ``first`` followed by ``then``: for every final position, its position before
    ``first`` (-1 where either edit made the entry new)."""
    if len(first) != len(then):
        raise GrowkitError(f"cannot chain index maps of {len(first)} and {len(then)} dims")
    out = []
    for a, b in zip(first, then):
        a, b = a.cpu(), b.cpu()
        out.append(torch.where(b >= 0, a[b.clamp(min=0)], torch.tensor(-1)))
    return tuple(out)


def compose_remaps(edits) -> Edit:
    """One :class:`Edit` whose ``remap``/``new``/``moved`` take the parameters before the first edit to
    after the last: maps chain (a parameter reshaped twice gets ``first[second]``), renames chain (a
    block shifted twice is traced to its first name), and a parameter created by an earlier edit stays
    new whatever later edits do to it (or its name). Works on composed edits too (growth steps)."""
    remaps: dict[str, tuple[torch.Tensor, ...]] = {}
    origin: dict[str, str] = {}  # current name -> name before the first edit, for renamed parameters
    new: list[str] = []
    for e in edits:
        if e.moved:
            back = {old: cur for cur, old in e.moved.items()}

            def rename(name: str) -> str | None:  # None: the name was taken over and the old entry is gone
                return back[name] if name in back else (None if name in e.moved else name)
            remaps = {rename(k): v for k, v in remaps.items() if rename(k) is not None}
            new = [rename(k) for k in new if rename(k) is not None]
            origin = {**{rename(k): v for k, v in origin.items() if rename(k) is not None},
                      **{cur: origin.get(old, old) for cur, old in e.moved.items() if cur not in new}}
        for name in e.new:
            remaps.pop(name, None)
            origin.pop(name, None)
            if name not in new:
                new.append(name)
        for name, idx in e.remap.items():
            if name in new:
                continue
            remaps[name] = chain_index(remaps[name], idx) if name in remaps else tuple(i.cpu() for i in idx)
    before = edits[0].before if edits else ""
    after = edits[-1].after if edits else ""
    preserving = None
    if edits and all(e.preserving is not None for e in edits):
        preserving = all(e.preserving for e in edits)
    return Edit("composed", ",".join(e.where for e in edits), before, after, new=new, remap=remaps,
                moved={k: v for k, v in origin.items() if k != v}, preserving=preserving)


# ----------------------------------------------------------------------------- depth

@dataclass
class AppendBlock:
    """Stack a new sub-module on top of sub-network ``stage`` (AutoGrow)."""
    stage: int

    def describe(self, model) -> str:
        d = model.depths
        d2 = d[:self.stage] + [d[self.stage] + 1] + d[self.stage + 1:]
        return (f"append a {model.kind} block to stage {self.stage}: "
                f"{model.arch} -> {model.family}-{'-'.join(map(str, d2))}")

    def apply(self, model) -> Edit:
        if not 0 <= self.stage < len(model.stages):
            raise GrowkitError(f"stage {self.stage} does not exist in {model.arch}")
        before = model.arch
        blk = model.new_block(self.stage)
        stage = model.stages[self.stage]
        stage.append(blk)
        where = f"stages.{self.stage}.{len(stage) - 1}"
        return Edit("append_block", where, before, model.arch,
                    new=[f"{where}.{n}" for n, _ in blk.named_parameters()])


# ----------------------------------------------------------------------------- width

def _group(model, name: str) -> ChannelGroup:
    groups = model.channel_groups()
    if name not in groups:
        raise GrowkitError(f"{model.arch} has no channel group {name!r}; groups: {', '.join(groups)}")
    return groups[name]


def group_width(model, group: str | ChannelGroup) -> int:
    g = _group(model, group) if isinstance(group, str) else group
    m = model.get_submodule(g.producers[0])
    return m.out_channels if isinstance(m, nn.Conv2d) else m.out_features


class _Reindexer:
    """Move every tensor of a channel group to a new channel order ``index`` (old channel per
    new position, -1 for new) and record the per-parameter index maps in ``edit``."""

    def __init__(self, model, group: ChannelGroup, index: torch.Tensor, edit: Edit):
        self.model, self.group, self.index, self.edit = model, group, index, edit
        self.width = len(index)

    def _move(self, module: nn.Module, module_name: str, attr: str, dim: int, per: int = 1, fill=0.0):
        old = getattr(module, attr)
        if old is None:
            return
        idx = [torch.arange(n) for n in old.shape]
        ch = self.index
        if per > 1:  # a flatten consumer: channel c owns input features c*per .. c*per+per-1
            ch = (ch[:, None] * per + torch.arange(per)).where(ch[:, None] >= 0, torch.tensor(-1)).reshape(-1)
        idx[dim] = ch
        new = remap_tensor(old.detach(), tuple(idx), fill)
        if isinstance(old, nn.Parameter):
            setattr(module, attr, nn.Parameter(new, requires_grad=old.requires_grad))
            self.edit.remap[f"{module_name}.{attr}"] = tuple(idx)
        else:
            module._buffers[attr] = new

    def run(self) -> None:
        g, w = self.group, self.width
        for name in g.producers:
            m = self.model.get_submodule(name)
            self._move(m, name, "weight", 0)
            self._move(m, name, "bias", 0)
            if isinstance(m, nn.Conv2d):
                m.out_channels = w
            else:
                m.out_features = w
        for name in g.channelwise:
            m = self.model.get_submodule(name)
            if isinstance(m, nn.Conv2d):  # depthwise: one kernel per channel
                self._move(m, name, "weight", 0)
                self._move(m, name, "bias", 0)
                m.in_channels = m.out_channels = m.groups = w
            else:  # BatchNorm: new channels start at the identity-like defaults
                self._move(m, name, "weight", 0, fill=1.0)
                self._move(m, name, "bias", 0)
                self._move(m, name, "running_mean", 0)
                self._move(m, name, "running_var", 0, fill=1.0)
                m.num_features = w
        for name, per in g.consumers:
            m = self.model.get_submodule(name)
            self._move(m, name, "weight", 1, per)
            if isinstance(m, nn.Conv2d):
                m.in_channels = w
            else:
                m.in_features = w * per


def _he_(t: torch.Tensor, fan: int) -> None:
    t.normal_(0.0, math.sqrt(2.0 / max(fan, 1)))


def _fan_out(m: nn.Module) -> int:
    if isinstance(m, nn.Conv2d):
        return m.out_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
    return m.out_features


@dataclass
class Widen:
    """Append ``n`` channels to a group. New producer filters are He-initialised; new
    consumer inputs are zero (``outgoing="zero"``: the function is unchanged) or He-initialised
    (``outgoing="he"``, as AdeNeL adds random filters)."""
    group: str
    n: int
    outgoing: str = "zero"

    def describe(self, model) -> str:
        w = group_width(model, self.group)
        return f"widen {self.group}: {w} -> {w + self.n} channels (outgoing weights: {self.outgoing})"

    def apply(self, model) -> Edit:
        if self.n <= 0:
            raise GrowkitError(f"widen needs n > 0, got {self.n}")
        if self.outgoing not in ("zero", "he"):
            raise GrowkitError(f"outgoing must be 'zero' or 'he', got {self.outgoing!r}")
        g = _group(model, self.group)
        c = group_width(model, g)
        before = model.arch
        edit = Edit("widen", self.group, before, "")
        index = torch.cat([torch.arange(c), torch.full((self.n,), -1)])
        _Reindexer(model, g, index, edit).run()
        with torch.no_grad():
            for name in g.producers:
                m = model.get_submodule(name)
                _he_(m.weight[c:], _fan_out(m))
            for name in g.channelwise:
                m = model.get_submodule(name)
                if isinstance(m, nn.Conv2d):
                    _he_(m.weight[c:], _fan_out(m))
            if self.outgoing == "he":
                for name, per in g.consumers:
                    m = model.get_submodule(name)
                    _he_(m.weight[:, c * per:], _fan_out(m))
        edit.after = model.arch
        return edit


def _checked_channels(model, group: str, channels, what: str) -> tuple[ChannelGroup, int, list[int]]:
    g = _group(model, group)
    c = group_width(model, g)
    chans = [int(k) for k in channels]
    if not chans:
        raise GrowkitError(f"{what} needs at least one channel of {group}")
    if len(set(chans)) != len(chans):
        dup = sorted({k for k in chans if chans.count(k) > 1})
        raise GrowkitError(f"{what}: channels {dup} of {group} given more than once")
    bad = [k for k in chans if not 0 <= k < c]
    if bad:
        raise GrowkitError(f"channel {bad[0]} out of range for {group} ({c} channels)")
    return g, c, chans


def _split(model, group: str, channels, thetas, kind: str, where: str) -> Edit:
    g, c, ks = _checked_channels(model, group, channels, "split")
    n = len(ks)
    thetas = thetas or {}
    unknown = set(thetas) - set(g.producers)
    if unknown:
        raise GrowkitError(f"theta given for {sorted(unknown)}, not producers of {group}")
    for name, th in thetas.items():
        want = (n, *model.get_submodule(name).weight.shape[1:])
        if tuple(th.shape) != want:
            raise GrowkitError(f"theta for {name} must have shape {want}, got {tuple(th.shape)}")
    edit = Edit(kind, where, model.arch, "")
    # The copies are new entries (-1): their optimizer state starts at the fill value, like any new channel.
    _Reindexer(model, g, torch.cat([torch.arange(c), torch.full((n,), -1)]), edit).run()
    src, dst = torch.tensor(ks), torch.arange(c, c + n)
    with torch.no_grad():
        for name in g.producers:
            m = model.get_submodule(name)
            th = thetas.get(name)
            th = torch.zeros_like(m.weight[src]) if th is None else th.to(m.weight)
            w_in = m.weight[src].clone()
            m.weight[src] = w_in + th
            m.weight[dst] = w_in - th
            if m.bias is not None:
                m.bias[dst] = m.bias[src]
        for name in g.channelwise:
            m = model.get_submodule(name)
            for t in (m.weight, m.bias, getattr(m, "running_mean", None), getattr(m, "running_var", None)):
                if t is not None:
                    t[dst] = t[src]
        for name, per in g.consumers:
            w = model.get_submodule(name).weight
            cols = (src[:, None] * per + torch.arange(per)).reshape(-1)
            new_cols = (dst[:, None] * per + torch.arange(per)).reshape(-1)
            half = w[:, cols] / 2
            w[:, cols] = half
            w[:, new_cols] = half
    edit.after = model.arch
    return edit


def _prune(model, group: str, channels, kind: str, where: str) -> Edit:
    g, c, ks = _checked_channels(model, group, channels, "prune")
    if len(ks) >= c:
        raise GrowkitError(f"cannot prune every channel of {group} ({c} channels)")
    edit = Edit(kind, where, model.arch, "")
    gone = set(ks)
    _Reindexer(model, g, torch.tensor([i for i in range(c) if i not in gone]), edit).run()
    edit.after = model.arch
    return edit


@dataclass
class SplitChannel:
    """Split channel ``channel`` of a group into two (the Gauss-Newton paper's channel-splitting
    morphism): incoming weights ``w_in + theta`` and ``w_in - theta``, outgoing weights
    ``w_out / 2`` each. With ``theta = 0`` the function is unchanged. ``theta`` maps each
    producer to a tensor shaped like one of its filters; missing producers get zero. The
    channelwise modules (BN, depthwise kernel) are copied: both halves share sigma and beta.
    The copy is appended as the group's last channel."""
    group: str
    channel: int
    theta: dict[str, torch.Tensor] | None = None

    def describe(self, model) -> str:
        w = group_width(model, self.group)
        return f"split channel {self.channel} of {self.group}: {w} -> {w + 1} channels"

    def apply(self, model) -> Edit:
        thetas = {k: v[None] for k, v in (self.theta or {}).items()}
        return _split(model, self.group, [self.channel], thetas, "split_channel", f"{self.group}[{self.channel}]")


@dataclass
class SplitChannels:
    """Split many channels of one group at once (no index shifting between them): the copy of
    ``channels[i]`` becomes channel ``width + i``. ``thetas`` maps a producer to a tensor of shape
    ``(len(channels), *filter_shape)``; row ``i`` is channel ``channels[i]``'s theta."""
    group: str
    channels: list[int]
    thetas: dict[str, torch.Tensor] | None = None

    def describe(self, model) -> str:
        w = group_width(model, self.group)
        return f"split channels {list(self.channels)} of {self.group}: {w} -> {w + len(self.channels)} channels"

    def apply(self, model) -> Edit:
        return _split(model, self.group, self.channels, self.thetas, "split_channels",
                      f"{self.group}{list(self.channels)}")


@dataclass
class PruneChannel:
    """Remove channel ``channel`` of a group from every producer, channelwise module and consumer."""
    group: str
    channel: int

    def describe(self, model) -> str:
        w = group_width(model, self.group)
        return f"prune channel {self.channel} of {self.group}: {w} -> {w - 1} channels"

    def apply(self, model) -> Edit:
        if group_width(model, self.group) == 1 and self.channel == 0:
            raise GrowkitError(f"cannot prune the last channel of {self.group}")
        return _prune(model, self.group, [self.channel], "prune_channel", f"{self.group}[{self.channel}]")


@dataclass
class PruneChannels:
    """Remove many channels of one group at once; the others keep their order."""
    group: str
    channels: list[int]

    def describe(self, model) -> str:
        w = group_width(model, self.group)
        return f"prune channels {list(self.channels)} of {self.group}: {w} -> {w - len(self.channels)} channels"

    def apply(self, model) -> Edit:
        return _prune(model, self.group, self.channels, "prune_channels", f"{self.group}{list(self.channels)}")
