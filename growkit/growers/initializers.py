"""Initializers of a new AutoGrow sub-module (paper, section 2.2).

Every layer of the new block keeps its default He initialisation except, in a
**residual** sub-module, the *last* BatchNorm, which the initializer sets:

* ``zero``  (ZeroInit): gamma = beta = 0. In a residual block the branch then
  adds exactly zero: the deeper net computes the shallower net's function.
* ``uni``   (UniInit as the paper writes it): gamma, beta ~ a zero-mean uniform
  with standard deviation ``std`` (1.0 in the paper), U(-sqrt(3) std, sqrt(3) std).
* ``uni01`` (UniInit as the authors' code draws it): gamma, beta ~ U(0, ``std``),
  i.e. U(0, 1) with the default: mean 0.5, standard deviation 0.29. This is the
  variant behind the paper's UniInit rows (README, "AutoGrow as implemented").
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

import torch
import torch.nn as nn

from ..config import INITIALIZERS  # noqa: F401  (the names, kept beside the config that validates them)
from ..errors import GrowkitError

PAPER_NAMES = {"zero": "ZeroInit", "adam": "AdamInit", "uni": "UniInit", "uni01": "UniInit U(0,1)",
               "gau": "GauInit", "identity": "IdentityInit (growkit)"}


def check_family(kind: str, plain: bool) -> None:
    """Refuse an initializer that cannot mean anything sensible for the net being grown."""
    if plain and kind == "zero":
        raise GrowkitError("init zero is refused on a plain net: a zero BN cuts the signal (the paper sets the "
                           "last BN of residual blocks only; plain blocks keep their default with gau/uni/adam)")


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


def adam_(bn: nn.BatchNorm2d, ctx, target_acc: float, lr: float = 1e-3, max_epochs: int = 10,
          tolerance: float = 0.0) -> dict:
    """Train only ``bn`` with Adam until the training accuracy reaches ``target_acc - tolerance``."""
    params = [bn.weight, bn.bias]
    opt = torch.optim.Adam(params, lr=lr)
    acc, epochs = None, 0
    for epochs in range(1, max_epochs + 1):
        _, acc = ctx.train_epoch(params, opt)
        if acc >= target_acc - tolerance:
            break
    return {"adam_epochs": epochs, "adam_train_acc": acc, "adam_target_acc": target_acc,
            "adam_reached": acc is not None and acc >= target_acc - tolerance}


def initialize_block(kind: str, model, block, ctx=None, *, std: float = 1.0, adam: dict | None = None) -> dict:
    """Apply initializer ``kind`` to a freshly appended ``block``; returns facts for the record.
    A plain block keeps its default initialisation unless ``kind`` is growkit's ``identity``."""
    if not getattr(block, "residual", True) and kind != "identity":
        return {"plain_default_init": True}
    bn = block.last_bn
    if kind == "zero":
        zero_(bn)
    elif kind == "uni":
        uniform_(bn, std)
    elif kind == "uni01":
        uniform01_(bn, std)
    elif kind == "gau":
        gaussian_(bn, std)
    elif kind == "identity":
        identity_(model, block, ctx.trainer.data)
    elif kind == "adam":
        return adam_(bn, ctx, ctx.row["train_acc"], **(adam or {}))
    else:
        raise ValueError(f"unknown initializer {kind!r}")
    return {}
