"""A small decoder-only transformer (GPT) that can grow in depth and width.

``create("GPT-4L-4H-128")`` is ``create("GPT", layers=4, heads=4, dim=128)``: 4 pre-LayerNorm blocks,
4 attention heads, a 128-wide residual stream. Options: ``vocab_size`` (256: bytes), ``context``
(the largest sequence length, 128; learned positional embeddings have one row per position),
``mlp_ratio`` (4: MLP hidden width ``mlp_ratio * dim``) or ``mlp_hidden`` (one width for every block or one
per block; a width-grown model's spec carries it), ``tied`` (True: the output projection is the
token embedding matrix; False: a separate ``lm_head``), ``dropout`` (0).

A block is ``x + attn(ln_1(x))`` then ``x + mlp(ln_2(x))``; attention is causal
``scaled_dot_product_attention`` over ``heads`` heads of ``dim // heads`` features; the MLP is
``proj(gelu(fc(x)))``. Every linear layer has a bias except the output projection.

Units: multiply-adds (MACs), the papers' "FLOPs". :func:`macs_per_token` counts the forward pass of one
token at a given context length with ``torch.utils.flop_counter`` on the meta device (the real matmuls,
attention's ``QK^T`` and ``AV`` included, no arithmetic done); :func:`formula_macs_per_token` is the
same number by hand. Training MACs are 3x the forward (each matmul's backward is one matmul for the
input gradient and one for the weight gradient), training FLOPs twice that: :func:`train_flops`.
"""
from __future__ import annotations

import copy
import math
import re

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import GrowkitError
from .base import ChannelGroup, GrowableNet

INIT_STD = 0.02  # GPT-2's normal init for linears and embeddings


class CausalSelfAttention(nn.Module):
    """``heads`` heads over a ``dim``-wide input; ``qkv`` stacks the query, key and value projections
    (rows ``[0, dim)``, ``[dim, 2 dim)``, ``[2 dim, 3 dim)``; head ``h`` owns rows ``h*hd .. h*hd+hd-1``
    of each)."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    @property
    def dim(self) -> int:
        return self.proj.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        width = self.qkv.out_features // 3  # the attention width (equals dim)
        q, k, v = self.qkv(x).split(width, dim=2)
        q, k, v = (z.view(b, t, self.heads, width // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(b, t, width))


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc = nn.Linear(dim, hidden)
        self.proj = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x)))


class Block(nn.Module):
    """Pre-LayerNorm residual block. Its two residual branches end in ``attn.proj`` and ``mlp.proj``:
    with those zero (weights and biases) the block is the identity."""

    def __init__(self, dim: int, heads: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads, dropout)
        self.ln_2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, hidden)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln_1(x)))
        return x + self.drop(self.mlp(self.ln_2(x)))


def _check_int(key: str, value, lo: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise GrowkitError(f"GPT {key} must be an integer >= {lo}, got {value!r}")
    return value


class GPT(GrowableNet):
    """Decoder-only transformer; ``forward(idx)``: token ids ``[B, T]`` (``T <= context``) -> logits
    ``[B, T, vocab_size]``. Read the architecture off the live modules (``layers``, ``heads``, ``dim``,
    ``mlp_hidden``), so the spec stays true after any surgery."""
    family = "GPT"

    def __init__(self, layers: int | None = None, heads: int | None = None, dim: int | None = None,
                 vocab_size: int = 256, context: int = 128, mlp_hidden: int | list[int] | None = None,
                 mlp_ratio: int | None = None, tied: bool = True, dropout: float = 0.0):
        nn.Module.__init__(self)  # not GrowableNet's image fields: a GPT has no channels or image size
        if layers is None or heads is None or dim is None:
            raise GrowkitError("GPT needs layers, heads and dim, e.g. GPT-4L-4H-128")
        layers, heads, dim = _check_int("layers", layers), _check_int("heads", heads), _check_int("dim", dim)
        vocab_size, context = _check_int("vocab_size", vocab_size), _check_int("context", context)
        if dim % heads:
            raise GrowkitError(f"GPT dim {dim} is not a multiple of heads {heads}")
        if mlp_hidden is not None and mlp_ratio is not None:
            raise GrowkitError("give GPT mlp_ratio or mlp_hidden, not both")
        if mlp_hidden is None:
            mlp_hidden = _check_int("mlp_ratio", 4 if mlp_ratio is None else mlp_ratio) * dim
        hidden = list(mlp_hidden) if isinstance(mlp_hidden, (list, tuple)) else [mlp_hidden] * layers
        if len(hidden) != layers:
            raise GrowkitError(f"GPT mlp_hidden needs {layers} entries (one per layer), got {len(hidden)}")
        for h in hidden:
            _check_int("mlp_hidden", h)
        if not isinstance(tied, bool):
            raise GrowkitError(f"GPT tied must be true or false, got {tied!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise GrowkitError(f"GPT dropout must be a number in [0, 1), got {dropout!r}")
        self.heads, self.dropout = heads, float(dropout)
        self.wte = nn.Embedding(vocab_size, dim)
        self.wpe = nn.Embedding(context, dim)
        self.drop = nn.Dropout(self.dropout)
        self.blocks = nn.ModuleList(Block(dim, heads, h, self.dropout) for h in hidden)
        self.ln_f = nn.LayerNorm(dim)
        self.lm_head = None if tied else nn.Linear(dim, vocab_size, bias=False)
        init_gpt(self)

    # -- architecture, read from the modules
    @property
    def layers(self) -> int:
        return len(self.blocks)

    @property
    def dim(self) -> int:
        return self.wte.embedding_dim

    @property
    def vocab_size(self) -> int:
        return self.wte.num_embeddings

    @property
    def context(self) -> int:
        return self.wpe.num_embeddings

    @property
    def tied(self) -> bool:
        return self.lm_head is None

    @property
    def mlp_hidden(self) -> list[int]:
        return [b.mlp.fc.out_features for b in self.blocks]

    def structure(self) -> dict:
        hidden = self.mlp_hidden
        return {"layers": self.layers, "heads": self.heads, "dim": self.dim,
                "mlp_hidden": hidden[0] if len(set(hidden)) == 1 else hidden}

    @property
    def spec(self) -> dict:
        return {"name": self.family, **self.structure(), "vocab_size": self.vocab_size, "context": self.context,
                "tied": self.tied, "dropout": self.dropout}

    @property
    def arch(self) -> str:
        """``GPT-4L-4H-128``, with ``-mlp<width>`` (or ``-mlp<w0/w1/...>``) when the MLP is not 4 x dim."""
        name = f"GPT-{self.layers}L-{self.heads}H-{self.dim}"
        hidden = self.mlp_hidden
        if any(h != 4 * self.dim for h in hidden):
            name += f"-mlp{hidden[0]}" if len(set(hidden)) == 1 else "-mlp" + "/".join(map(str, hidden))
        return name

    def channel_groups(self) -> dict[str, ChannelGroup]:
        """Each block's MLP hidden units (written by ``mlp.fc``, read by ``mlp.proj``), so the shared
        channel edits (widen, split, prune) apply to them. The residual stream is not a channel group:
        LayerNorm mixes its channels (see :mod:`growkit.engine.gpt_surgery` for its widening)."""
        return {f"blocks.{i}.mlp": ChannelGroup(f"blocks.{i}.mlp", (f"blocks.{i}.mlp.fc",), (),
                                                ((f"blocks.{i}.mlp.proj", 1),)) for i in range(self.layers)}

    def example_input(self, batch: int, device="cpu") -> torch.Tensor:
        """One full-context batch of token ids (zeros): what :func:`growkit.models.count_macs` feeds."""
        return torch.zeros(batch, self.context, dtype=torch.long, device=device)

    def new_block(self, hidden: int | None = None) -> Block:
        """A block shaped for this model (MLP width ``hidden``, default 4 x dim), GPT-initialised, on the
        model's device and dtype."""
        ref = self.wte.weight
        blk = Block(self.dim, self.heads, 4 * self.dim if hidden is None else hidden, self.dropout)
        init_gpt(blk, self.layers)
        return blk.to(device=ref.device, dtype=ref.dtype)

    # -- compute
    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        if idx.dim() != 2:
            raise GrowkitError(f"GPT takes token ids shaped [batch, time], got shape {tuple(idx.shape)}")
        t = idx.shape[1]
        if t > self.context:
            raise GrowkitError(f"sequence of {t} tokens is longer than the GPT's context {self.context}")
        pos = torch.arange(t, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        for blk in self.blocks:
            x = blk(x)
        x = self.ln_f(x)
        return F.linear(x, self.wte.weight) if self.lm_head is None else self.lm_head(x)


def init_gpt(module: nn.Module, layers: int | None = None) -> None:
    """GPT-2's init: linears and embeddings normal(0, 0.02), biases zero, LayerNorm (1, 0); the two
    residual-branch outputs (``attn.proj``, ``mlp.proj``) normal(0, 0.02 / sqrt(2 * layers)) so the
    residual stream's variance does not grow with depth."""
    if layers is None:
        layers = len(getattr(module, "blocks", [])) or 1
    for name, m in module.named_modules():
        if isinstance(m, nn.Linear):
            std = INIT_STD / math.sqrt(2 * layers) if name.endswith(("attn.proj", "mlp.proj")) else INIT_STD
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, INIT_STD)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


_NAME = re.compile(r"(\d{1,9})L-(\d{1,9})H-(\d{1,9})", re.ASCII | re.IGNORECASE)


def parse_name(suffix: str) -> dict:
    """``'4L-4H-128'`` -> ``{'layers': 4, 'heads': 4, 'dim': 128}``."""
    m = _NAME.fullmatch(str(suffix))
    if not m:
        shown = suffix if len(str(suffix)) <= 60 else str(suffix)[:60] + "..."
        raise GrowkitError(f"a GPT name looks like GPT-4L-4H-128 (layers, heads, dim), got 'GPT-{shown}'")
    return {"layers": int(m[1]), "heads": int(m[2]), "dim": int(m[3])}


# ----------------------------------------------------------------------------- multiply-adds

def formula_macs_per_token(layers: int, dim: int, vocab_size: int, context: int,
                           mlp_hidden: int | list[int] | None = None) -> int:
    """Forward multiply-adds of one token in a sequence of ``context`` tokens, by hand:

    per block  ``3 d^2`` (q, k, v) + ``d^2`` (attention output) + ``2 d m`` (MLP in and out; ``m = 4d``
    gives ``8 d^2``, so ``12 d^2`` with attention's projections) + ``2 T d`` (``QK^T``: one score per
    earlier-or-later position per feature, ``T d``; ``AV``: ``T d`` again), then ``d V`` for the logits.

    Attention is counted over all ``T x T`` score pairs, as the dense kernels compute them (and as
    nanoGPT's MFU formula counts); causal masking would let a kernel skip about half. Embedding
    lookups, LayerNorm, GELU, softmax and biases are not multiply-adds of a matmul and are not counted.
    """
    hidden = mlp_hidden if isinstance(mlp_hidden, (list, tuple)) else [mlp_hidden or 4 * dim] * layers
    return sum(4 * dim * dim + 2 * dim * m + 2 * context * dim for m in hidden) + dim * vocab_size


def model_formula_macs_per_token(model: GPT, context: int | None = None) -> int:
    """:func:`formula_macs_per_token` for a live model (its own context unless given)."""
    return formula_macs_per_token(model.layers, model.dim, model.vocab_size, context or model.context,
                                  model.mlp_hidden)


def macs_per_token(model: GPT, context: int | None = None, training: bool = False) -> int:
    """Multiply-adds of one token, counted: a batch of ``context`` tokens (the model's context unless
    given) runs through a copy of the model on the ``meta`` device under ``FlopCounterMode`` (2 FLOPs per
    multiply-add, halved here). ``training=True`` adds the backward pass as autograd runs it (3x the
    forward). Per sequence: multiply by ``context``."""
    from torch.utils.flop_counter import FlopCounterMode

    t = context or model.context
    if t > model.context:
        raise GrowkitError(f"context {t} is longer than the GPT's context {model.context}")
    batch = 2
    shadow = copy.deepcopy(model).to("meta")
    shadow.train(training)
    idx = torch.zeros(batch, t, dtype=torch.long, device="meta")
    with FlopCounterMode(display=False) as counter:
        out = shadow(idx)
        if training:
            out.sum().backward()
    total = counter.get_total_flops()
    if total % (2 * batch * t):
        raise GrowkitError(f"counted {total} FLOPs, not a whole number of MACs per token")
    return total // (2 * batch * t)


def train_flops(forward_macs: int | float, tokens: int | float = 1) -> float:
    """Training FLOPs of ``tokens`` tokens from forward multiply-adds per token: forward + backward is 3x
    the forward's MACs, and one MAC is 2 FLOPs, so ``6 * forward_macs * tokens``."""
    return 6 * forward_macs * tokens


def macs_report(model: GPT, context: int | None = None) -> dict:
    """Compute per token of a ``context``-token window (the model's context unless given), counted with the
    formula beside it: ``forward_macs_per_token`` (counted), ``forward_macs_per_token_formula``,
    ``train_macs_per_token`` (forward + backward, counted), ``train_flops_per_token`` (2 per MAC) and
    ``params``. Raises GrowkitError if the counted forward and the formula disagree."""
    t = context or model.context
    counted, formula = macs_per_token(model, t), model_formula_macs_per_token(model, t)
    if counted != formula:
        raise GrowkitError(f"{model.arch}: counted {counted} MACs per token, the formula says {formula}")
    train = macs_per_token(model, t, training=True)
    return {"arch": model.arch, "context": t, "params": model.num_params(), "forward_macs_per_token": counted,
            "forward_macs_per_token_formula": formula, "train_macs_per_token": train,
            "train_flops_per_token": 2 * train}


def formula_params(layers: int, dim: int, vocab_size: int, context: int, mlp_hidden: int | list[int] | None = None,
                   tied: bool = True) -> int:
    """Parameters by hand: embeddings ``V d + T d``; per block two LayerNorms ``4 d``, ``qkv`` ``3 d^2 + 3 d``,
    attention output ``d^2 + d``, MLP ``2 d m + m + d``; final LayerNorm ``2 d``; an untied head ``V d``
    (no bias)."""
    hidden = mlp_hidden if isinstance(mlp_hidden, (list, tuple)) else [mlp_hidden or 4 * dim] * layers
    blocks = sum(4 * dim + 3 * dim * dim + 3 * dim + dim * dim + dim + 2 * dim * m + m + dim for m in hidden)
    return vocab_size * dim + context * dim + blocks + 2 * dim + (0 if tied else vocab_size * dim)
