"""Model registry: ``create(name, **spec)``, ``from_spec(spec)``, ``list_models(task)``.

A depth net's name carries its architecture: ``create("Basic3ResNet-2-3-2")``
is ``create("Basic3ResNet", depths=[2, 3, 2])``. Width nets take ``widths``
(one int for a uniform seed, or one entry per layer). Every image model also takes
``in_channels``, ``num_classes`` and ``image_size`` (the dataset decides them).

Language models (task ``"text"``): ``create("GPT-4L-4H-128")`` is
``create("GPT", layers=4, heads=4, dim=128)`` (see :mod:`growkit.models.gpt`); they take
``vocab_size`` and ``context`` instead of the image fields.
"""
from __future__ import annotations

import copy
import inspect
from typing import Callable

from ..errors import GrowkitError
from .base import ChannelGroup, GrowableNet
from .depth import FAMILIES, DepthNet
from .gpt import GPT, parse_name as _parse_gpt_name
from .width import VGG, VGG_CFG, LeNet5, MobileNetV1

__all__ = ["ChannelGroup", "GrowableNet", "DepthNet", "GPT", "create", "from_spec", "list_models", "canonical_name",
           "count_macs", "model_stats"]

_REGISTRY: dict[str, Callable[..., GrowableNet]] = {}
_TASK: dict[str, str] = {}  # name -> "image" or "text"
_NAME_PARSER: dict[str, Callable[[str], dict]] = {}  # name -> parser of the "-..." suffix of its names


def register(name: str, builder: Callable[..., GrowableNet], task: str = "image",
             parse_name: Callable[[str], dict] | None = None) -> None:
    """``parse_name`` turns the part of a name after ``NAME-`` into spec keys (depth families' ``-D-D-D``
    suffix is built in)."""
    _REGISTRY[name], _TASK[name] = builder, task
    if parse_name is not None:
        _NAME_PARSER[name] = parse_name


for _family in FAMILIES:
    register(_family, lambda depths=(1,) * FAMILIES[_family][1], widths=None, stem_width=None, block_widths=None,
             in_channels=3, num_classes=10, image_size=32, _f=_family:
             DepthNet(_f, list(depths), widths, stem_width, block_widths, in_channels, num_classes, image_size))


def _named_resnet(family: str, depths: list[int], num_classes: int = 10, image_size: int = 32):
    """A fixed-depth ResNet registered for width growing: every block's widths live in the spec. The
    defaults of ``num_classes`` / ``image_size`` are the net's home dataset (CIFAR-10 or ImageNet)."""
    n_stages = FAMILIES[family][1]

    def build(widths=None, stem_width=None, block_widths=None, in_channels=3, num_classes=num_classes,
              image_size=image_size):
        if isinstance(widths, int):  # a uniform seed: every conv of the net gets `widths` filters
            widths, stem_width = [widths] * n_stages, stem_width or widths
        return DepthNet(family, list(depths), widths, stem_width, block_widths, in_channels, num_classes, image_size)
    return build


register("ResNet20", _named_resnet("Basic3ResNet", [3, 3, 3]))
register("ResNet32", _named_resnet("Basic3ResNet", [5, 5, 5]))
# He et al.'s ResNet-18 (AdeNeL's Table 2): the ImageNet stem (7x7/2 conv, 3x3/2 max-pool) on inputs of 64 pixels or
# more, basic blocks [2, 2, 2, 2] of 64, 128, 256, 512 filters, projection shortcuts; 11,689,512 parameters.
register("ResNet18", _named_resnet("Basic4ResNet", [2, 2, 2, 2], num_classes=1000, image_size=224))
for _vgg in VGG_CFG:
    register(_vgg, lambda widths=None, hidden=(), in_channels=3, num_classes=10, image_size=32, _v=_vgg:
             VGG(_v, widths, list(hidden), in_channels, num_classes, image_size))
register("MobileNetV1", MobileNetV1)
register("LeNet5", LeNet5)
register("GPT", GPT, task="text", parse_name=_parse_gpt_name)


def list_models(task: str | None = None) -> list[str]:
    """Registered names; ``task`` ("image" or "text") keeps those of one kind of input."""
    return [n for n in _REGISTRY if task is None or _TASK[n] == task]


def _positive_ints(key: str, value, length: int | None = None) -> None:
    flat = value if isinstance(value, (list, tuple)) else [value]
    while flat and isinstance(flat[0], (list, tuple)):
        flat = [v for sub in flat for v in sub]
    if not flat or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in flat):
        raise GrowkitError(f"{key} must be positive integers, got {value!r}")
    if length is not None and isinstance(value, (list, tuple)) and len(value) != length:
        raise GrowkitError(f"{key} needs {length} entries, got {len(value)} ({value!r})")


def _n_widths(base: str) -> int:
    """How many entries a per-layer ``widths`` list of this model has."""
    if base in FAMILIES:
        return FAMILIES[base][1]
    if base in VGG_CFG:
        return sum(c != "M" for c in VGG_CFG[base])
    return {"ResNet20": 3, "ResNet32": 3, "ResNet18": 4, "MobileNetV1": 14, "LeNet5": 4}[base]


def parse_depths(text: str) -> list[int]:
    """'2-2-2' -> [2, 2, 2]: plain decimal digits only (no sign, spaces, underscores or other scripts' digits,
    which int() would take), at most 18 of them (beyond that a depth is no longer a 64-bit integer)."""
    tokens = str(text).split("-")
    if not all(t.isascii() and t.isdigit() and len(t) <= 18 for t in tokens):
        shown = text if len(str(text)) <= 60 else str(text)[:60] + "..."
        raise GrowkitError(f"depths must look like 1-1-1 (plain positive integers below 64-bit), got {shown!r}")
    depths = [int(t) for t in tokens]
    _positive_ints("depths", depths)
    return depths


def canonical_name(name: str) -> str:
    """The registered spelling of a model name, matched case-insensitively (``vgg16`` -> ``VGG16``);
    unknown names are returned unchanged."""
    base, sep, suffix = str(name).partition("-")
    return {k.lower(): k for k in _REGISTRY}.get(base.lower(), base) + sep + suffix


def create(name: str, **spec) -> GrowableNet:
    """Build a registered model (names are case-insensitive). Unknown names, unknown keys and bad
    values raise GrowkitError."""
    base, _, suffix = canonical_name(name).partition("-")
    if suffix and base in _NAME_PARSER:
        for key, value in _NAME_PARSER[base](suffix).items():
            if key in spec and spec[key] != value:
                raise GrowkitError(f"{name!r} disagrees with {key}={spec[key]!r}")
            spec[key] = value
    elif suffix:
        if base not in FAMILIES:
            raise GrowkitError(f"only depth families take a -D-D-D suffix, got {name!r}")
        depths = parse_depths(suffix)
        if "depths" in spec and list(spec["depths"]) != depths:
            raise GrowkitError(f"{name!r} disagrees with depths={spec['depths']!r}")
        spec["depths"] = depths
    if base not in _REGISTRY:
        raise GrowkitError(f"unknown model {name!r}; valid: {', '.join(list_models())}")
    builder = _REGISTRY[base]
    allowed = [p for p in inspect.signature(builder).parameters if not p.startswith("_")]
    unknown = sorted(set(spec) - set(allowed))
    if unknown:
        raise GrowkitError(f"{base} does not take {', '.join(unknown)}; it takes {', '.join(allowed)}")
    spec = {k: v for k, v in spec.items() if v is not None}
    n_stages = FAMILIES[base][1] if base in FAMILIES else None
    if "depths" in spec:
        _positive_ints("depths", spec["depths"], n_stages)
    if "widths" in spec:
        if isinstance(spec["widths"], int) and base in FAMILIES:
            raise GrowkitError(f"{base} takes one width per stage ({n_stages}), got {spec['widths']!r}")
        _positive_ints("widths", spec["widths"], _n_widths(base))
    for key in ("in_channels", "num_classes", "image_size", "stem_width"):
        if key in spec:
            _positive_ints(key, spec[key])
    return builder(**spec)


def from_spec(spec: dict) -> GrowableNet:
    """Rebuild a model from ``model.spec`` (weights not included)."""
    spec = dict(spec)
    try:
        name = spec.pop("name")
    except KeyError:
        raise GrowkitError("a model spec needs a 'name'") from None
    return create(name, **spec)


# ----------------------------------------------------------------------------- counting

def count_macs(model: GrowableNet, training: bool = False) -> int:
    """Multiply-adds (MACs) for one sample: the unit the papers call "FLOPs" (VGG-16 on CIFAR-10: 313M,
    ResNet-20: 41M, ImageNet ResNet-18: 1.8G). A sample is one image, or for a language model one
    sequence of ``model.context`` tokens (per token: :func:`growkit.models.gpt.macs_per_token`).
    Counted with ``torch.utils.flop_counter``, which counts 2 per multiply-add of a conv or matmul
    (attention's ``QK^T`` and ``AV`` included); halved here. BN, ReLU and pooling are not counted.

    ``training=False``: one forward pass. ``training=True``: forward + backward as autograd
    runs them (no input gradient for the first layer). Counted on a copy on the ``meta``
    device: no arithmetic is done and the model's BN statistics are untouched.
    """
    from torch.utils.flop_counter import FlopCounterMode

    batch = 2
    shadow = copy.deepcopy(model).to("meta")
    shadow.train(training)
    x = model.example_input(batch, device="meta")
    with FlopCounterMode(display=False) as counter:
        out = shadow(x)
        if training:
            out.sum().backward()
    return counter.get_total_flops() // (2 * batch)


def model_stats(model: GrowableNet) -> dict:
    """``macs`` and ``train_macs_per_image`` are per sample (an image, or a GPT's ``context``-token
    sequence); a GPT adds ``context`` and the same counts per token (``macs_per_token``,
    ``train_macs_per_token``)."""
    stats = {"arch": model.arch, "params": model.num_params(), "macs": count_macs(model),
             "train_macs_per_image": count_macs(model, training=True)}
    if isinstance(model, GPT):
        t = model.context
        stats.update(context=t, macs_per_token=stats["macs"] // t,
                     train_macs_per_token=stats["train_macs_per_image"] // t)
    return stats
