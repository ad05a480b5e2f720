"""Run configuration: dataclasses that are the single source of truth.

The resolved config is written to ``config.json`` before training starts and
saved inside every checkpoint, so ``growkit resume DIR`` needs nothing else.
``validate()`` turns every bad value into a one-line :class:`GrowkitError`
before anything is written to disk.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from ..errors import GrowkitError
from . import flags as F
from .flags import opt

SCHEDULES = ("constant", "staircase", "cosine")


def _from_dict(cls, d: dict):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise GrowkitError(f"unknown {cls.__name__} keys: {', '.join(unknown)}")
    return cls(**d)


class Record:
    """JSON round trip of a config dataclass (what config.json and checkpoints store), and the generic
    field checks every config's ``validate()`` starts with."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        return _from_dict(cls, d)

    def check_fields(self) -> None:
        """Types from the annotations; every number finite and within int64 (see :func:`_check_fields`)."""
        _check_fields(self)


def _check(ok: bool, msg: str) -> None:
    if not ok:
        raise GrowkitError(msg)


# ----------------------------------------------------------------------------- generic field checks
# Every field is checked against its annotation, so fields added later are covered too: JSON/CLI values
# of the wrong type, NaN/inf (json.dump would store them as null), integers beyond int64 (torch cannot
# hold them). Ranges that need judgment stay in each validate().

INT64_MAX = 2 ** 63 - 1
MAX_EPOCHS = 100_000  # ~500x the papers' longest schedule; beyond is a typo, not an experiment
MAX_BLOCKS = 1_000  # blocks in a depth net (ResNet-1202 has 600); building more takes minutes
BYTES_PER_PARAM = 16  # fp32 weights + gradient + two optimizer slots (Adam; SGD momentum uses one)


def _type_ok(value, hint) -> bool:
    import types
    import typing
    origin = typing.get_origin(hint)
    if hint is typing.Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin in (list, tuple):
        args = typing.get_args(hint)
        return isinstance(value, (list, tuple)) and (not args or all(_type_ok(v, args[0]) for v in value))
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    return isinstance(value, hint) if isinstance(hint, type) else True


def _numbers(value):
    if isinstance(value, (list, tuple)):
        for v in value:
            yield from _numbers(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _numbers(v)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield value


def _check_fields(obj) -> None:
    """Types from the annotations; every number finite and within int64."""
    import math
    import typing
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        want = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        _check(_type_ok(v, hints.get(f.name, typing.Any)),
               f"{f.name} must be {'a dict' if want == 'dict' else 'of type ' + want}, got {v!r}")
        for x in _numbers(v):
            _check(not isinstance(x, float) or math.isfinite(x), f"{f.name} must be finite, got {v!r}")
            _check(not isinstance(x, int) or -INT64_MAX - 1 <= x <= INT64_MAX,
                   f"{f.name} is beyond the 64-bit integer range: {v!r}")


def _check_device(name: str) -> None:
    """The devices growkit trains on: cpu, cuda and cuda:N that exist. Others fail in one line."""
    import torch
    if name in ("auto", "cpu"):
        return
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise GrowkitError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type != "cuda":
        raise GrowkitError(f"device {name!r} is not supported for training; use auto, cpu, cuda or cuda:N")
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    _check(n > 0, f"device {name!r} requested but no CUDA device is available")
    _check(dev.index is None or dev.index < n,
           f"device {name!r} requested but only {n} CUDA device(s) exist (cuda:0..cuda:{n - 1})")


def _memory_bytes(device: str) -> tuple[int, str]:
    """Total memory of the device a run would train on (total, not free: the check stays reproducible)."""
    import torch
    if device != "cpu" and torch.cuda.is_available():
        idx = torch.device("cuda" if device == "auto" else device).index or 0
        return torch.cuda.get_device_properties(idx).total_memory, f"cuda:{idx}"
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "cpu"


def model_size(cfg: "TrainConfig") -> int:
    """Parameters of the model ``cfg`` describes, counted on the meta device (no memory, milliseconds)."""
    import torch
    from ..data.catalog import dataset_info
    from ..models import create, parse_depths
    info = dataset_info(cfg.dataset)
    depths = cfg.depths if cfg.depths is not None else cfg.model_kw.get("depths")
    suffix = cfg.model.partition("-")[2]
    named = parse_depths(suffix) if suffix else []  # every token counted: none can slip past the limit
    blocks = sum(depths or []) + sum(named)
    _check(blocks <= MAX_BLOCKS, f"{cfg.model} with depths {depths} has {blocks} blocks; at most {MAX_BLOCKS}")
    spec = dict(cfg.model_kw)
    if cfg.depths is not None:
        spec["depths"] = list(cfg.depths)
    if cfg.widths is not None:
        spec["widths"] = cfg.widths
    try:
        with torch.device("meta"), _skip_meta_normal():
            net = create(cfg.model, **spec, in_channels=info.channels, num_classes=info.num_classes,
                         image_size=info.image_size)
    except RuntimeError as e:  # e.g. "Storage size calculation overflowed": no machine holds such a tensor
        raise GrowkitError(f"{cfg.model} with widths {cfg.widths} cannot be built: {str(e).splitlines()[0][:120]}"
                           ) from None
    return sum(p.numel() for p in net.parameters())


def _skip_meta_normal():
    """A torch function mode that skips ``normal_`` on meta tensors: it computes nothing there, yet costs
    ~3 s the first time (torch imports its Python decompositions). Only meta tensors, only this thread,
    only inside the ``with`` block."""
    import torch
    from torch.overrides import TorchFunctionMode

    class SkipMetaNormal(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if func is torch.Tensor.normal_ and args and getattr(args[0], "is_meta", False):
                return args[0]
            return func(*args, **(kwargs or {}))

    return SkipMetaNormal()


def _check_model_fits(cfg: "TrainConfig") -> None:
    n = model_size(cfg)
    mem, where = _memory_bytes(cfg.device)
    _check(n * BYTES_PER_PARAM <= mem,
           f"{cfg.model} as configured has {n:,} parameters: about {n * BYTES_PER_PARAM / 1e9:,.1f} GB to train "
           f"({BYTES_PER_PARAM} bytes each), more than the {mem / 1e9:,.1f} GB of {where}; use smaller widths "
           "or depths")


@dataclass
class TrainConfig(Record):
    # model: a registered name; depth nets take depths, width nets take widths
    model: str = opt("Basic3ResNet", help="registered model name (see `growkit models`)")
    depths: list[int] | None = opt(None, parse=F.depths, help="blocks per stage of a depth net, e.g. 2-2-2")
    widths: list[int] | int | None = opt(None, parse=F.int_list, help="filters per layer: N (uniform) or N-N-...")
    model_kw: dict = opt(default_factory=dict, cli=False)  # further spec keys, e.g. {"stem_width": 8}
    # data
    dataset: str = opt("digits", help="dataset name (see `growkit datasets`)")
    data_root: str | None = opt(None, help="folder holding the dataset files (default: $GROWKIT_DATA, else data/ "
                                           "of the growkit checkout you are in, else ./data)")
    download: bool = opt(False, help="download the dataset if missing (needs internet)")
    fraction: float = opt(1.0, help="share of the training split to use")  # the paper's Table 8
    val_fraction: float | None = opt(None, help="share of the official training set held out for validation "
                                                "(default: the dataset's)")
    split_seed: int = opt(0, help="seed of the train/val split, independent of --seed")
    augment: bool = opt(True, flag="--no-augment", help="no random crops and flips")
    # optimisation (defaults: the AutoGrow baselines' SGD)
    optimizer: str = opt("sgd", help="optimizer kind: sgd or adam (see growkit.engine.optim.kinds())")
    optimizer_kw: dict = opt(default_factory=dict, parse=F.json_object,  # e.g. {"betas": [0.9, 0.99]}
                             help='the kind\'s options as JSON, e.g. \'{"betas": [0.9, 0.99]}\'')
    decay_bn_bias: bool = opt(True, flag="--no-decay-bn-bias", help="no weight decay on BatchNorm parameters "
                                                                     "and biases")
    epochs: int = opt(20, help="training epochs")
    batch_size: int = opt(128, help="images per step")
    lr: float | None = opt(None, help="base learning rate (default 0.1, or 0.01 for plain nets)")  # resolved()
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float | None = opt(None, help="weight decay (default: the authors' 1e-4 on imagenet, 5e-4 "
                                                "elsewhere)")  # resolved in __post_init__
    schedule: str = opt("staircase", help="constant, staircase or cosine")
    milestones: list[float] = opt(default_factory=lambda: [0.5, 0.75], parse=F.floats,
                                  help="staircase decay points, as fractions")
    gamma: float = opt(0.1, help="staircase decay factor")
    # run
    seed: int = 0
    device: str = opt("auto", help="auto, cpu or cuda")  # or cuda:N
    precision: str = opt("auto", choices=["auto", "fp32", "bf16"])  # auto: bf16 autocast on CUDA, fp32 on CPU
    channels_last: bool | None = opt(None, cli=False)  # None: on CUDA only
    eval_test: bool = opt(True, flag="--no-test", help="do not evaluate the test split each epoch")
    # (test accuracy is reported every epoch, never used for decisions)
    snapshot_every: int = opt(0, help="parameter snapshots for trajectory plots")  # every N epochs; 0: off
    progress: bool = opt(True, flag="--no-progress", help="no progress bar")
    # curvature (growkit's extension; off by default, and off costs nothing): Hessian and GGN top eigenvalue and
    # trace every N epochs and just before and after every growth event, on a fixed probe subset, in eval mode
    curvature_every: int = opt(0, help="curvature every N epochs and at every growth event (0: off)")
    curvature_images: int = opt(256, help="training images in the fixed curvature probe subset")
    curvature_probes: int = opt(16, help="Hutchinson probes per trace estimate")

    def validate(self) -> "TrainConfig":
        _check_fields(self)
        from ..data.text import is_text_dataset
        _check(not is_text_dataset(self.dataset), f"{self.dataset} is a token dataset for language models: train "
                                                  f"on it with `growkit lm --dataset {self.dataset}`")
        from ..models import canonical_name, list_models
        _check(canonical_name(self.model).partition("-")[0] not in list_models("text"),
               f"{self.model} is a language model: train it with `growkit lm --model {self.model}`")
        _check(0 < self.epochs <= MAX_EPOCHS, f"epochs must be > 0 and at most {MAX_EPOCHS}, got {self.epochs}")
        _check(1 < self.batch_size <= 2 ** 20, f"batch_size must be in 2..{2 ** 20}, got {self.batch_size}")
        _check(self.lr is None or 0 <= self.lr <= 10, f"lr must be >= 0 and at most 10, got {self.lr}")
        _check(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        _check(0 <= self.weight_decay < 1, f"weight_decay must be in [0, 1), got {self.weight_decay}")
        _check(0 <= self.seed <= INT64_MAX, f"seed must be in 0..2**63-1, got {self.seed}")
        _check(0 <= self.split_seed < 2 ** 32, f"split_seed must be in 0..2**32-1, got {self.split_seed}")
        _check(self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        _check(all(0 < m < 1 for m in self.milestones), f"milestones must be in (0, 1), got {self.milestones}")
        _check(0 < self.gamma <= 1, f"gamma must be in (0, 1], got {self.gamma}")
        _check(0 < self.fraction <= 1, f"fraction must be in (0, 1], got {self.fraction}")
        _check(self.val_fraction is None or 0 <= self.val_fraction < 1,
               f"val_fraction must be in [0, 1), got {self.val_fraction}")
        _check(self.precision in ("auto", "fp32", "bf16"), "precision must be auto, fp32 or bf16")
        _check(0 <= self.snapshot_every <= MAX_EPOCHS, f"snapshot_every must be >= 0, got {self.snapshot_every}")
        _check(0 <= self.curvature_every <= MAX_EPOCHS, f"curvature_every must be >= 0, got {self.curvature_every}")
        _check(1 <= self.curvature_images <= 1_000_000,
               f"curvature_images must be in 1..1000000, got {self.curvature_images}")
        _check(2 <= self.curvature_probes <= 100_000, f"curvature_probes must be in 2..100000, got {self.curvature_probes}")
        _check(isinstance(self.optimizer_kw, dict), f"optimizer_kw must be a dict, got {self.optimizer_kw!r}")
        from . import optim
        optim.validate(self)
        _check_device(self.device)
        _check_model_fits(self)
        return self

    def __post_init__(self):
        # Resolved at once (not in resolved()) so that every consumer, e.g. optim.build(model, TrainConfig(), lr),
        # sees a number. A config copied with another dataset keeps the value it already has.
        if self.weight_decay is None:
            self.weight_decay = 1e-4 if str(self.dataset).lower() == "imagenet" else 5e-4

    def resolved(self) -> "TrainConfig":
        """Fill the defaults that depend on other fields (what config.json records): the paper's rate (0.1 for
        ResNets, 0.01 for plain nets); the weight decay was set when the config was made."""
        if self.lr is not None:
            return self
        plain = self.model.split("-")[0].lower() in ("plain3net", "plain4net")
        return dataclasses.replace(self, lr=0.01 if plain else 0.1)
