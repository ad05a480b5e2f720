"""Run configuration: dataclasses that are the single source of truth.

The resolved config is written to ``config.json`` before training starts and
saved inside every checkpoint, so ``growkit resume DIR`` needs nothing else.
``validate()`` turns every bad value into a one-line :class:`GrowkitError`
before anything is written to disk.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .errors import GrowkitError

SCHEDULES = ("constant", "staircase", "cosine")
INITIALIZERS = ("zero", "adam", "uni", "uni01", "gau", "identity")  # growkit.growers.initializers


def _from_dict(cls, d: dict):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise GrowkitError(f"unknown {cls.__name__} keys: {', '.join(unknown)}")
    return cls(**d)


def _check(ok: bool, msg: str) -> None:
    if not ok:
        raise GrowkitError(msg)


@dataclass
class TrainConfig:
    # model: a registered name; depth nets take depths, width nets take widths
    model: str = "Basic3ResNet"
    depths: list[int] | None = None
    widths: list[int] | int | None = None
    model_kw: dict = field(default_factory=dict)  # further spec keys, e.g. {"stem_width": 8}
    # data
    dataset: str = "digits"
    data_root: str | None = None  # default: $GROWKIT_DATA or ./data
    download: bool = False
    fraction: float = 1.0  # share of the training split used (the paper's Table 8)
    val_fraction: float | None = None  # None: the dataset's default
    split_seed: int = 0  # fixes the train/val(/test for digits) split independently of `seed`
    augment: bool = True
    # optimisation (defaults: the AutoGrow baselines' SGD)
    optimizer: str = "sgd"  # a registered kind (growkit.optim.kinds()): sgd | adam | ...
    optimizer_kw: dict = field(default_factory=dict)  # kind-specific options, e.g. {"betas": [0.9, 0.99]}
    decay_bn_bias: bool = True  # False: no weight decay on BatchNorm parameters and biases
    epochs: int = 20
    batch_size: int = 128
    lr: float | None = None  # None: the papers' default, 0.1 (0.01 for plain nets); see resolved()
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float | None = None  # None: the authors' value for the dataset, set when the config is made:
    # 1e-4 on ImageNet (their imagenet/ code), 5e-4 elsewhere (their cifar10/ code)
    schedule: str = "staircase"  # constant | staircase | cosine
    milestones: list[float] = field(default_factory=lambda: [0.5, 0.75])  # staircase decays, as epoch fractions
    gamma: float = 0.1
    # run
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU | fp32 | bf16
    channels_last: bool | None = None  # None: on CUDA only
    eval_test: bool = True  # report test accuracy every epoch (never used for decisions)
    snapshot_every: int = 0  # save a parameter snapshot every N epochs for trajectory plots (0: off)
    progress: bool = True

    def validate(self) -> "TrainConfig":
        _check(self.epochs > 0, f"epochs must be > 0, got {self.epochs}")
        _check(self.batch_size > 1, f"batch_size must be > 1, got {self.batch_size}")
        _check(self.lr is None or self.lr >= 0, f"lr must be >= 0, got {self.lr}")
        _check(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        _check(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        _check(self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        _check(all(0 < m < 1 for m in self.milestones), f"milestones must be in (0, 1), got {self.milestones}")
        _check(0 < self.gamma <= 1, f"gamma must be in (0, 1], got {self.gamma}")
        _check(0 < self.fraction <= 1, f"fraction must be in (0, 1], got {self.fraction}")
        _check(self.val_fraction is None or 0 <= self.val_fraction < 1,
               f"val_fraction must be in [0, 1), got {self.val_fraction}")
        _check(self.precision in ("auto", "fp32", "bf16"), "precision must be auto, fp32 or bf16")
        _check(self.snapshot_every >= 0, f"snapshot_every must be >= 0, got {self.snapshot_every}")
        _check(isinstance(self.optimizer_kw, dict), f"optimizer_kw must be a dict, got {self.optimizer_kw!r}")
        from . import optim
        optim.validate(self)
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

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return _from_dict(cls, d)


@dataclass
class AutoGrowConfig:
    """AutoGrow (Algorithm 1). Seed depths are ``TrainConfig.depths``; K, J in epochs; tau in %."""
    policy: str = "periodic"  # periodic (p-AutoGrow) | convergent (c-AutoGrow)
    K: int = 3  # growth interval / convergence window
    # periodic stopping window, at least 2 K. None: the paper's rule, J = T, the epochs at the largest rate of
    # the baseline schedule: int(first milestone * finetune_epochs), e.g. 100 of 200 (CIFAR), 30 of 90 (ImageNet),
    # 10 of the 20 fine-tuning epochs of the digits default
    J: int | None = None
    tau: float = 0.05  # minimum gain of the running max of validation accuracy, in percent
    init: str = "gau"  # zero | adam | uni | uni01 | gau | identity (growkit's, for plain nets)
    init_std: float = 1.0  # standard deviation of uni / gau; the upper bound of uni01 (the authors' U(0, 1))
    # The learning rate is TrainConfig.lr (0.1 residual / 0.01 plain by default), for growing and fine-tuning.
    grow_schedule: str = "constant"  # constant (p-AutoGrow) | staircase (restart every K epochs, c-AutoGrow)
    finetune_epochs: int = 20  # N: staircase fine-tuning of the found net
    max_depth: int | None = None  # optional cap of blocks per sub-network
    max_grow_epochs: int = 2000  # safety bound on the growing phase
    scale_J_by_fraction: bool = True  # the data fraction divides K (the paper's rule) and, by default, J as well
    adam_lr: float = 1e-3
    adam_max_epochs: int = 10
    adam_tolerance: float = 0.0  # AdamInit stops when train acc >= shallower net's - tolerance (points)
    scratch: bool = False  # also train the found net from scratch for the Delta column
    scratch_epochs: int | None = None  # None: finetune_epochs

    def validate(self) -> "AutoGrowConfig":
        _check(self.policy in ("periodic", "convergent"), f"policy must be periodic or convergent, got {self.policy!r}")
        _check(self.K > 0, f"K must be > 0, got {self.K}")
        _check(self.J is None or self.J > 0, f"J must be > 0, got {self.J}")
        _check(self.tau >= 0, f"tau must be >= 0, got {self.tau}")
        _check(self.init in INITIALIZERS, f"init must be one of {', '.join(INITIALIZERS)}, got {self.init!r}")
        _check(self.init_std > 0, f"init_std must be > 0, got {self.init_std}")
        _check(self.grow_schedule in ("constant", "staircase"),
               f"grow_schedule must be constant or staircase, got {self.grow_schedule!r}")
        _check(self.finetune_epochs >= 0, f"finetune_epochs must be >= 0, got {self.finetune_epochs}")
        _check(self.max_depth is None or self.max_depth > 0, f"max_depth must be > 0, got {self.max_depth}")
        _check(self.max_grow_epochs > 0, f"max_grow_epochs must be > 0, got {self.max_grow_epochs}")
        _check(self.adam_lr > 0 and self.adam_max_epochs > 0, "adam_lr and adam_max_epochs must be > 0")
        _check(self.scratch_epochs is None or self.scratch_epochs > 0,
               f"scratch_epochs must be > 0, got {self.scratch_epochs}")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "AutoGrowConfig":
        return _from_dict(cls, d)
