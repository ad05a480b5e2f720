"""Growth surgery for :class:`growkit.models.gpt.GPT`: plan, then act, as in :mod:`growkit.engine.surgery`.

Every plan is a small dataclass with ``describe(model)`` (a line saying what will change) and
``apply(model)`` (changes the model in place and returns an :class:`~growkit.engine.surgery.Edit`
naming the new parameters, the index maps of the reshaped ones and the renamed ones, so
:func:`growkit.engine.optim.carry` puts Adam/AdamW/SGD state on the right entries). ``Edit.preserving``
says whether the logits are unchanged.

Depth
  :class:`InsertBlocks`  k new blocks whose residual branches end in zero (``attn.proj`` and
                         ``mlp.proj`` weights and biases): each is the identity, so the logits are
                         unchanged. Preserving.
  :class:`StackAll`      G_stack: the whole stack copied on top of itself (block ``i + L`` is a copy of
                         block ``i``). Not preserving.
  :class:`StackMiddle`   MIDAS-style: the ``k`` middle blocks copied and the copies inserted right after
                         them. Not preserving.

Width (HyperCloning-style duplication; preserving, to float rounding)
  :class:`WidenGPT`      model dimension ``d -> n d``, every MLP hidden width ``m -> n m``, and either
                         ``n H`` heads of the same size (``heads="more"``) or ``H`` heads ``n`` times as
                         wide (``heads="wider"``).
  :class:`WidenMLP`      the MLP hidden width of some blocks only, Net2Net-style: new units copy old ones
                         and every copy's outgoing weights are divided by its number of copies.

Why duplication preserves the function: after :class:`WidenGPT` every residual-stream vector ``x`` is
stored as ``n`` copies ``[x, x, ..., x]`` (embedding columns copied, not scaled). LayerNorm over the
copies has the same mean and variance, so it returns the copies of ``LN(x)`` (its affine parameters are
copied too). A linear layer that reads a duplicated vector has its input columns copied and divided by
``n``, so it sums to the old output; a layer that writes the stream has its output rows copied, so it
writes copies. Attention with copied heads (``more``) computes each head twice; with heads ``n`` times
as wide (``wider``) every query-key dot product is ``n`` times larger while SDPA's scale
``1/sqrt(head_dim)`` shrinks only by ``sqrt(n)``, so the query weights and biases are divided by
``sqrt(n)``. Logits: an untied head reads the duplicated final LayerNorm output, so its columns are
copied and divided by ``n``. A tied head is the embedding matrix, which must stay an unscaled copy (it
also writes the stream); there the final LayerNorm's weight and bias are divided by ``n`` instead, so
``[E, E] . [y/n, y/n] = E y``. (No embedding scaling is needed: LayerNorm's statistics of a duplicated
vector are already those of the original.)

``noise > 0`` breaks the symmetry between copies without changing the function: every weight matrix
that reads a duplicated vector gets Gaussian noise (standard deviation ``noise`` times the old weight's
standard deviation) made to sum to zero over the copies of each input, so ``W' [x, x]`` still equals
``W x``; the copies then receive different gradients. Preserving in exact arithmetic; in floating point
to rounding (about 1e-16 relative in float64), as is any division by ``n`` that is not a power of two.
``noise_kind="iid"`` adds the same noise without the zero sum: the logits change (``preserving=False``).

Optimizer state: an entry that is the first copy of an old entry keeps that entry's state (its momentum
is not rescaled); the other copies are new entries (state at the kind's fill, 0 for Adam's moments),
as :class:`~growkit.engine.surgery.SplitChannel` does. Copied blocks (G_stack, MIDAS) and inserted
blocks are new parameters; shifted blocks keep their state under their new names (``Edit.moved``).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from ..errors import GrowkitError
from ..models.gpt import GPT, Block
from .surgery import Edit


def _check_gpt(model) -> GPT:
    if not isinstance(model, GPT):
        raise GrowkitError(f"GPT surgery needs a GPT, got {type(model).__name__}")
    return model


def _positive(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise GrowkitError(f"{name} must be an integer >= 1, got {value!r}")
    return value


# ----------------------------------------------------------------------------- depth

def _restack(model: GPT, plan: list) -> tuple[list[str], dict[str, str]]:
    """Replace ``model.blocks`` by ``plan``: each slot is an old block index (kept, maybe shifted) or a new
    :class:`Block`. Returns the new parameter names and the renames (name after -> name before)."""
    old = list(model.blocks)
    new_names: list[str] = []
    moved: dict[str, str] = {}
    for i, slot in enumerate(plan):
        blk = old[slot] if isinstance(slot, int) else slot
        for n, _ in blk.named_parameters():
            if isinstance(slot, int):
                if slot != i:
                    moved[f"blocks.{i}.{n}"] = f"blocks.{slot}.{n}"
            else:
                new_names.append(f"blocks.{i}.{n}")
    model.blocks = nn.ModuleList(old[s] if isinstance(s, int) else s for s in plan)
    return new_names, moved


def identity_block(model: GPT, hidden: int) -> Block:
    """A new block (GPT init) whose residual branches end in zero weights and biases: the identity."""
    blk = model.new_block(hidden)
    with torch.no_grad():
        for lin in (blk.attn.proj, blk.mlp.proj):
            lin.weight.zero_()
            lin.bias.zero_()
    return blk


@dataclass
class InsertBlocks:
    """Insert ``k`` identity blocks (zero residual branches; the other new weights GPT-initialised) so the
    first new block has index ``position`` (0: before every block; None: after the last). Their MLP
    width is that of the block before them (block 0's at position 0). Preserving: each new block adds
    exactly zero to the residual stream. Blocks from ``position`` on shift by ``k`` and keep their state."""
    k: int = 1
    position: int | None = None

    def _where(self, model: GPT) -> int:
        _positive("k", self.k)
        p = model.layers if self.position is None else self.position
        if isinstance(p, bool) or not isinstance(p, int) or not 0 <= p <= model.layers:
            raise GrowkitError(f"position must be in 0..{model.layers} for {model.arch}, got {self.position!r}")
        return p

    def describe(self, model) -> str:
        model = _check_gpt(model)
        p = self._where(model)
        return (f"insert {self.k} identity block(s) at position {p}: {model.arch} -> "
                f"GPT-{model.layers + self.k}L-{model.heads}H-{model.dim} (preserving)")

    def apply(self, model) -> Edit:
        model = _check_gpt(model)
        p = self._where(model)
        before = model.arch
        hidden = model.mlp_hidden[max(p - 1, 0)]
        plan = list(range(p)) + [identity_block(model, hidden) for _ in range(self.k)] + \
            list(range(p, model.layers))
        new, moved = _restack(model, plan)
        return Edit("insert_blocks", f"blocks[{p}:{p + self.k}]", before, model.arch, new=new, moved=moved,
                    preserving=True)


@dataclass
class StackAll:
    """G_stack: stack copies of the whole stack on top of it, ``L -> times * L`` (block ``i + j L`` is a
    copy of block ``i``). Not preserving: the copies add their branches again, so the logits change.
    The copies are new parameters (their optimizer state starts fresh)."""
    times: int = 2

    def describe(self, model) -> str:
        model = _check_gpt(model)
        _positive("times", self.times)
        return (f"stack the whole stack x{self.times} (G_stack): {model.arch} -> "
                f"GPT-{model.layers * self.times}L-{model.heads}H-{model.dim} (not preserving)")

    def apply(self, model) -> Edit:
        model = _check_gpt(model)
        if _positive("times", self.times) < 2:
            raise GrowkitError(f"G_stack needs times >= 2, got {self.times}")
        before, n = model.arch, model.layers
        plan = list(range(n)) + [copy.deepcopy(model.blocks[i]) for _ in range(self.times - 1) for i in range(n)]
        new, moved = _restack(model, plan)
        return Edit("stack_all", f"blocks[{n}:{n * self.times}]", before, model.arch, new=new, moved=moved,
                    preserving=False)


@dataclass
class StackMiddle:
    """MIDAS-style middle stacking: copy the ``k`` middle blocks (``s .. s+k-1`` with
    ``s = (L - k) // 2``) and insert the copies right after them, ``L -> L + k``. Not preserving. The
    copies are new parameters; the blocks after them shift by ``k`` and keep their state."""
    k: int = 1

    def _span(self, model: GPT) -> int:
        _positive("k", self.k)
        if self.k > model.layers:
            raise GrowkitError(f"cannot copy {self.k} middle blocks of {model.arch} ({model.layers} blocks)")
        return (model.layers - self.k) // 2

    def describe(self, model) -> str:
        model = _check_gpt(model)
        s = self._span(model)
        return (f"copy middle blocks {s}..{s + self.k - 1} after themselves (MIDAS-style): {model.arch} -> "
                f"GPT-{model.layers + self.k}L-{model.heads}H-{model.dim} (not preserving)")

    def apply(self, model) -> Edit:
        model = _check_gpt(model)
        s = self._span(model)
        before, n, e = model.arch, model.layers, s + self.k
        plan = list(range(e)) + [copy.deepcopy(model.blocks[i]) for i in range(s, e)] + list(range(e, n))
        new, moved = _restack(model, plan)
        return Edit("stack_middle", f"blocks[{e}:{e + self.k}]", before, model.arch, new=new, moved=moved,
                    preserving=False)


# ----------------------------------------------------------------------------- width

def _first(index: torch.Tensor) -> torch.Tensor:
    """The optimizer-state map of a duplication: a position keeps its old entry's state if it is the
    first position holding that entry, else it is new (-1)."""
    out = torch.full_like(index, -1)
    seen = set()
    for j, i in enumerate(index.tolist()):
        if i not in seen:
            seen.add(i)
            out[j] = i
    return out


def _noise(shape: tuple[int, int], cols: torch.Tensor, std: float, gen: torch.Generator,
           zero_sum: bool = True) -> torch.Tensor:
    """Gaussian noise; ``zero_sum``: its entries sum to zero over the columns that copy the same old column."""
    eps = torch.randn(shape, generator=gen, dtype=torch.float64) * std
    if not zero_sum:
        return eps
    n_old = int(cols.max()) + 1
    sums = torch.zeros(shape[0], n_old, dtype=torch.float64).index_add_(1, cols, eps)
    counts = torch.zeros(n_old, dtype=torch.float64).index_add_(0, cols, torch.ones(len(cols), dtype=torch.float64))
    return eps - sums[:, cols] / counts[cols]


class _Duplicator:
    """Rebuilds parameters as ``old[index] * scale`` and records their index maps in ``edit``."""

    def __init__(self, model: GPT, edit: Edit, noise: float, seed: int, zero_sum: bool = True):
        self.model, self.edit, self.noise, self.zero_sum = model, edit, noise, zero_sum
        self.gen = torch.Generator().manual_seed(seed)

    def set(self, name: str, index: tuple[torch.Tensor, ...], scale: torch.Tensor | float = 1.0,
            noisy: bool = False) -> None:
        """Parameter ``name`` becomes ``old[index] * scale``; ``noisy``: add noise, zero-sum over the copies
        of each input column (dim 1) unless iid, which leaves ``W' x'`` equal to ``W x`` for duplicated ``x``."""
        module_name, _, attr = name.rpartition(".")
        module = self.model.get_submodule(module_name)
        old = getattr(module, attr).detach()
        if torch.is_tensor(scale):
            scale = scale.to(old)
        new = old[torch.meshgrid(*(i.to(old.device) for i in index), indexing="ij")] * scale
        if noisy and self.noise > 0:
            std = float(old.double().std()) if old.numel() > 1 else 0.0
            new = new + _noise(tuple(new.shape), index[1], self.noise * std, self.gen, self.zero_sum).to(new)
        setattr(module, attr, nn.Parameter(new.contiguous(), requires_grad=getattr(module, attr).requires_grad))
        self.edit.remap[name] = tuple(_first(i) for i in index)

    def linear(self, prefix: str, rows: torch.Tensor, cols: torch.Tensor, row_scale: torch.Tensor | float = 1.0,
               col_div: torch.Tensor | float = 1.0) -> None:
        """``W'[r, c] = W[rows[r], cols[c]] * row_scale[r] / col_div[c]``, bias ``b[rows] * row_scale``."""
        lin = self.model.get_submodule(prefix)
        rs = row_scale[:, None] if torch.is_tensor(row_scale) else row_scale
        self.set(f"{prefix}.weight", (rows, cols), rs / col_div, noisy=True)
        if lin.bias is not None:
            self.set(f"{prefix}.bias", (rows,), row_scale)
        lin.out_features, lin.in_features = len(rows), len(cols)

    def norm(self, prefix: str, index: torch.Tensor, scale: float = 1.0) -> None:
        ln = self.model.get_submodule(prefix)
        self.set(f"{prefix}.weight", (index,), scale)
        self.set(f"{prefix}.bias", (index,), scale)
        ln.normalized_shape = (len(index),)


def _check_noise(noise, kind: str) -> float:
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0 <= noise < float("inf"):
        raise GrowkitError(f"noise must be a finite number >= 0, got {noise!r}")
    if kind not in ("zero_sum", "iid"):
        raise GrowkitError(f"noise_kind must be 'zero_sum' or 'iid', got {kind!r}")
    return float(noise)


def _preserving(noise: float, kind: str) -> bool:
    return noise == 0 or kind == "zero_sum"


def _says(noise: float, kind: str) -> str:
    return "preserving" if _preserving(noise, kind) else "not preserving: iid noise"


@dataclass
class WidenGPT:
    """HyperCloning-style widening by an integer ``factor`` n: model dimension ``d -> n d``, every MLP
    hidden width ``m -> n m``; ``heads="more"``: ``n H`` heads of ``d / H`` features (head ``h + j H`` a
    copy of head ``h``); ``heads="wider"``: ``H`` heads of ``n d / H`` features (each head's features
    copied in place, query scaled by ``1/sqrt(n)``). Every stream vector becomes ``n`` copies of itself
    (copy ``j`` at positions ``j d .. j d + d - 1``). Preserving (see the module docstring for why, and
    for ``noise``; ``noise_kind="iid"`` is not); tied and untied heads alike."""
    factor: int = 2
    heads: str = "more"
    noise: float = 0.0
    seed: int = 0
    noise_kind: str = "zero_sum"

    def _check(self, model) -> GPT:
        model = _check_gpt(model)
        if _positive("factor", self.factor) < 2:
            raise GrowkitError(f"widening needs factor >= 2, got {self.factor}")
        if self.heads not in ("more", "wider"):
            raise GrowkitError(f"heads must be 'more' or 'wider', got {self.heads!r}")
        _check_noise(self.noise, self.noise_kind)
        return model

    def describe(self, model) -> str:
        model = self._check(model)
        n, h = self.factor, model.heads
        heads = h * n if self.heads == "more" else h
        return (f"widen x{n} (HyperCloning): {model.arch} -> GPT-{model.layers}L-{heads}H-{model.dim * n}, "
                f"heads {self.heads}, noise {self.noise:g} ({_says(self.noise, self.noise_kind)})")

    def apply(self, model) -> Edit:
        model = self._check(model)
        n, d, H = self.factor, model.dim, model.heads
        hd = d // H
        before = model.arch
        edit = Edit("widen_gpt", f"x{n}", before, "", preserving=_preserving(self.noise, self.noise_kind))
        dup = _Duplicator(model, edit, self.noise, self.seed, self.noise_kind == "zero_sum")
        stream = torch.arange(n * d) % d
        if self.heads == "more":  # copy j of head h is head h + j H: the attention width is a block copy too
            attn = stream
            q_scale = 1.0
        else:  # head h's n*hd features are n copies of its hd features
            j = torch.arange(n * d)
            attn = (j // (n * hd)) * hd + (j % (n * hd)) % hd
            q_scale = 1.0 / math.sqrt(n)
        qkv_rows = torch.cat([attn, attn + d, attn + 2 * d])
        row_scale = torch.cat([torch.full((n * d,), q_scale), torch.ones(2 * n * d)]).to(model.wte.weight.dtype)
        V, T = model.vocab_size, model.context
        dup.set("wte.weight", (torch.arange(V), stream))
        dup.set("wpe.weight", (torch.arange(T), stream))
        model.wte.embedding_dim = model.wpe.embedding_dim = n * d
        for i, blk in enumerate(model.blocks):
            p = f"blocks.{i}"
            m = blk.mlp.fc.out_features
            hidden = torch.arange(n * m) % m
            dup.norm(f"{p}.ln_1", stream)
            dup.linear(f"{p}.attn.qkv", qkv_rows, stream, row_scale if self.heads == "wider" else 1.0, n)
            dup.linear(f"{p}.attn.proj", stream, attn, 1.0, n)
            dup.norm(f"{p}.ln_2", stream)
            dup.linear(f"{p}.mlp.fc", hidden, stream, 1.0, n)
            dup.linear(f"{p}.mlp.proj", stream, hidden, 1.0, n)
            if self.heads == "more":
                blk.attn.heads = H * n
        if self.heads == "more":
            model.heads = H * n
        if model.tied:  # the embedding is an unscaled copy, so the final LayerNorm's output carries the 1/n
            dup.norm("ln_f", stream, 1.0 / n)
        else:
            dup.norm("ln_f", stream)
            dup.linear("lm_head", torch.arange(V), stream, 1.0, n)
        edit.after = model.arch
        return edit


@dataclass
class WidenMLP:
    """Net2Net-style widening of the MLP hidden layer of ``blocks`` (None: every block) to ``hidden``
    units: new unit ``m + j`` copies unit ``j mod m`` (incoming weights and bias copied), and every
    copy's outgoing weights are the old ones divided by the unit's number of copies. Preserving (to float
    rounding when a count is not a power of two); ``noise`` and ``noise_kind`` as in :class:`WidenGPT`
    (on the outgoing weights, zero-sum over the copies of a unit unless iid)."""
    hidden: int
    blocks: list[int] | None = None
    noise: float = 0.0
    seed: int = 0
    noise_kind: str = "zero_sum"

    def _targets(self, model) -> tuple[GPT, list[int]]:
        model = _check_gpt(model)
        _positive("hidden", self.hidden)
        _check_noise(self.noise, self.noise_kind)
        targets = list(range(model.layers)) if self.blocks is None else [int(b) for b in self.blocks]
        if not targets or len(set(targets)) != len(targets):
            raise GrowkitError(f"blocks must name distinct blocks, got {self.blocks!r}")
        for b in targets:
            if not 0 <= b < model.layers:
                raise GrowkitError(f"block {b} does not exist in {model.arch} ({model.layers} blocks)")
            m = model.blocks[b].mlp.fc.out_features
            if self.hidden <= m:
                raise GrowkitError(f"block {b}'s MLP has {m} units; widening needs hidden > {m}, got {self.hidden}")
        return model, targets

    def describe(self, model) -> str:
        model, targets = self._targets(model)
        was = [model.mlp_hidden[b] for b in targets]
        return (f"widen the MLP of blocks {targets}: {was} -> {self.hidden} units (Net2Net copies, "
                f"{_says(self.noise, self.noise_kind)})")

    def apply(self, model) -> Edit:
        model, targets = self._targets(model)
        edit = Edit("widen_mlp", f"blocks{targets}.mlp", model.arch, "",
                    preserving=_preserving(self.noise, self.noise_kind))
        dup = _Duplicator(model, edit, self.noise, self.seed, self.noise_kind == "zero_sum")
        for b in targets:
            p = f"blocks.{b}.mlp"
            m, d = model.blocks[b].mlp.fc.out_features, model.dim
            units = torch.arange(self.hidden) % m
            copies = torch.bincount(units, minlength=m).to(model.wte.weight.dtype)[units]
            dup.linear(f"{p}.fc", units, torch.arange(d), 1.0, 1.0)
            dup.linear(f"{p}.proj", torch.arange(d), units, 1.0, copies)
        edit.after = model.arch
        return edit
