"""Initializers of a new AutoGrow sub-module (paper, section 2.2).

Every layer of the new block keeps its default He initialisation except, in a
**residual** sub-module, the *last* BatchNorm, which the initializer sets:

* ``zero``  (ZeroInit): gamma = beta = 0. In a residual block the branch then
  adds exactly zero: the deeper net computes the shallower net's function.
* ``uni``   (UniInit as the paper writes it): gamma, beta ~ a zero-mean uniform
  with standard deviation ``std`` (1.0 in the paper), U(-sqrt(3) std, sqrt(3) std).
* ``uni01`` (UniInit as the authors' code draws it): gamma, beta ~ U(0, ``std``),
  i.e. U(0, 1) with the default: mean 0.5, standard deviation 0.29. This is the
  variant behind the paper's UniInit rows (docs/autogrow.md).
* ``gau``   (GauInit): gamma, beta ~ Normal(0, std^2).
* ``adam``  (AdamInit): everything but the last BN is frozen and the last BN
  (starting from its default 1, 0, as in the authors' code) is trained with
  Adam for at most ``max_epochs`` epochs, until the training accuracy is as
  good as the shallower net's (minus ``tolerance`` points).

**Plain sub-modules** (conv-BN-ReLU) get the default initialisation (BN gamma 1,
beta 0) whatever the initializer: the paper's special treatment is only for "the
last Batch Normalization layer in a *residual* sub-module", and the authors'
code re-initialises nothing for plain nets (and so runs no AdamInit for them).
ZeroInit on a plain net would cut the signal, so it is refused up front
(:func:`check_family`) rather than silently replaced.

* ``identity`` is **growkit's extension, not the paper's**: for plain nets, in
  the spirit of Net2Net's DeeperNet, the 3x3 conv is a Dirac (identity) kernel
  and the BN undoes its normalisation with statistics measured on the training
  split (running mean/var = measured mean/var, gamma = sqrt(var + eps),
  beta = mean). The function is preserved exactly in eval mode, and up to the
  batch-versus-dataset statistics in train mode. On residual blocks it is ZeroInit.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn as nn

from ..errors import GrowkitError

def check_family(kind: str, plain: bool) -> None:
    """Refuse an initializer that cannot mean anything sensible for the net being grown."""
    if plain and kind == "zero":
        raise GrowkitError("init zero is refused on a plain net: a zero BN cuts the signal (the paper sets the "
                           "last BN of residual blocks only; plain blocks keep their default with gau/uni/adam)")


# name -> fn(model, block, view, std, adam) -> facts for the growth record; see register().
_REGISTRY: dict[str, Callable] = {}


def register(name: str):
    """Register an initializer of a new block under ``name`` (what ``--init`` accepts)."""
    def deco(fn):
        if name in _REGISTRY:
            raise ValueError(f"initializer {name!r} is already registered")
        _REGISTRY[name] = fn
        return fn
    return deco


def names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def zero_(bn: nn.BatchNorm2d) -> None:
    with torch.no_grad():
        bn.weight.zero_()
        bn.bias.zero_()


def uniform_(bn: nn.BatchNorm2d, std: float) -> None:
    a = math.sqrt(3.0) * std  # U(-a, a) has standard deviation a / sqrt(3)
    with torch.no_grad():
        bn.weight.uniform_(-a, a)
        bn.bias.uniform_(-a, a)


def uniform01_(bn: nn.BatchNorm2d, high: float) -> None:
    """The authors' UniInit: U(0, high) (their ``--init-meta``, 1.0 by default)."""
    with torch.no_grad():
        bn.weight.uniform_(0.0, high)
        bn.bias.uniform_(0.0, high)


def gaussian_(bn: nn.BatchNorm2d, std: float) -> None:
    with torch.no_grad():
        bn.weight.normal_(0.0, std)
        bn.bias.normal_(0.0, std)


@torch.no_grad()
def identity_(model, block, data) -> None:
    """Make a new plain block (conv-BN-ReLU, as many channels in as out) an identity map."""
    if getattr(block, "has_projection", False) or len(block.convs) != 1:
        zero_(block.last_bn)  # residual: a zero branch is the identity
        return
    conv, bn = block.conv1, block.bn1
    nn.init.dirac_(conv.weight)
    # Statistics of the block's input (= the Dirac conv's output) over the training split, in eval mode.
    s1 = torch.zeros(conv.out_channels, dtype=torch.float64, device=conv.weight.device)
    s2 = torch.zeros_like(s1)
    count = 0

    def hook(_m, _inp, out):
        nonlocal count
        o = out.detach().double()
        s1.add_(o.sum(dim=(0, 2, 3)))
        s2.add_((o * o).sum(dim=(0, 2, 3)))
        count += o.numel() // o.shape[1]

    was_training = model.training
    model.eval()
    handle = conv.register_forward_hook(hook)
    try:
        for x, _ in data.eval_batches("train"):
            model(x)
    finally:
        handle.remove()
        model.train(was_training)
    mean = s1 / count
    var = (s2 / count - mean * mean).clamp_min(0.0)
    bn.running_mean.copy_(mean)
    bn.running_var.copy_(var)
    bn.weight.copy_(torch.sqrt(var + bn.eps))
    bn.bias.copy_(mean)


def adam_joint_(bns: dict, view, target_acc: float, lr: float = 1e-3, max_epochs: int = 10,
                tolerance: float = 0.0) -> dict:
    """AdamInit over several new blocks at once (the paper: everything frozen but the new last BNs, which one
    Adam trains together): ``bns`` maps each block's name to its last BN. Epochs run until the training
    accuracy reaches ``target_acc - tolerance`` or ``max_epochs``; each epoch costs one epoch of training.
    Returns the shared outcome and, under ``adam_blocks``, every block's own (its gamma and beta after)."""
    params = [p for bn in bns.values() for p in (bn.weight, bn.bias)]
    opt = torch.optim.Adam(params, lr=lr)
    acc, epochs = None, 0
    for epochs in range(1, max_epochs + 1):
        _, acc = view.train_epoch(params, opt)
        if acc >= target_acc - tolerance:
            break
    blocks = {name: {"gamma_mean": bn.weight.mean().item(), "gamma_min": bn.weight.min().item(),
                     "beta_mean": bn.bias.mean().item(), "gamma_moved": (bn.weight - 1).abs().mean().item()}
              for name, bn in bns.items()}
    return {"adam_epochs": epochs, "adam_train_acc": acc, "adam_target_acc": target_acc,
            "adam_reached": acc is not None and acc >= target_acc - tolerance, "adam_blocks": blocks,
            "adam_joint": len(bns)}


def adam_(bn: nn.BatchNorm2d, view, target_acc: float, lr: float = 1e-3, max_epochs: int = 10,
          tolerance: float = 0.0) -> dict:
    """Train only ``bn`` with Adam until the training accuracy reaches ``target_acc - tolerance``."""
    out = adam_joint_({"block": bn}, view, target_acc, lr, max_epochs, tolerance)
    return {k: v for k, v in out.items() if k not in ("adam_blocks", "adam_joint")}


@register("zero")
def _zero(model, block, view, std, adam) -> dict:
    zero_(block.last_bn)
    return {}


@register("adam")
def _adam(model, block, view, std, adam) -> dict:
    return adam_(block.last_bn, view, view.row["train_acc"], **(adam or {}))


@register("uni")
def _uni(model, block, view, std, adam) -> dict:
    uniform_(block.last_bn, std)
    return {}


@register("uni01")
def _uni01(model, block, view, std, adam) -> dict:
    uniform01_(block.last_bn, std)
    return {}


@register("gau")
def _gau(model, block, view, std, adam) -> dict:
    gaussian_(block.last_bn, std)
    return {}


@register("identity")
def _identity(model, block, view, std, adam) -> dict:
    identity_(model, block, view)  # the view's eval_batches("train"): the whole split, unaugmented
    return {}


INITIALIZERS = names()


def _keeps_default(kind: str, block) -> bool:
    """A plain block keeps its default initialisation unless ``kind`` is growkit's ``identity``."""
    return not getattr(block, "residual", True) and kind != "identity"


def initialize_block(kind: str, model, block, view=None, *, std: float = 1.0, adam: dict | None = None) -> dict:
    """Apply initializer ``kind`` to a freshly appended ``block``; returns facts for the record.
    ``view``: the grower's view (AdamInit trains through it, identity measures statistics through it).
    A plain block keeps its default initialisation unless ``kind`` is growkit's ``identity``."""
    fn = _REGISTRY.get(kind)
    if fn is None:
        raise ValueError(f"unknown initializer {kind!r}; registered: {', '.join(_REGISTRY)}")
    if _keeps_default(kind, block):
        return {"plain_default_init": True}
    return fn(model, block, view, std, adam)


def initialize_blocks(kind: str, model, wheres: list[str], view=None, *, std: float = 1.0,
                      adam: dict | None = None) -> dict:
    """Initialise several new blocks of one growth step; the record keeps every block's outcome under
    ``blocks``. AdamInit trains all their last BNs in **one** joint Adam run (the paper's procedure for a
    morphism that adds several blocks), not one run per block."""
    blocks = {w: model.get_submodule(w) for w in wheres}
    out = {"init": kind, "blocks": {}}
    if kind == "adam":
        trained = {w: b.last_bn for w, b in blocks.items() if not _keeps_default(kind, b)}
        for w in blocks:
            out["blocks"][w] = {"plain_default_init": True} if w not in trained else {}
        if trained:
            joint = adam_joint_(trained, view, view.row["train_acc"], **(adam or {}))
            for w, facts in joint.pop("adam_blocks").items():
                out["blocks"][w] = facts
            out.update(joint)
        return out
    for w, b in blocks.items():
        out["blocks"][w] = initialize_block(kind, model, b, view, std=std, adam=adam)
    return out
