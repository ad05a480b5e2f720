"""Run configuration: dataclasses that are the single source of truth.

The resolved config is written to ``config.json`` before training starts and
saved inside every checkpoint, so ``growkit resume DIR`` needs nothing else.
``validate()`` turns every bad value into a one-line :class:`GrowkitError`
before anything is written to disk.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .errors import GrowkitError
from . import flags as F
from .flags import opt

SCHEDULES = ("constant", "staircase", "cosine")


def _from_dict(cls, d: dict):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise GrowkitError(f"unknown {cls.__name__} keys: {', '.join(unknown)}")
    return cls(**d)


class _Record:
    """JSON round trip of a config dataclass: what config.json and checkpoints store."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        return _from_dict(cls, d)


def _check(ok: bool, msg: str) -> None:
    if not ok:
        raise GrowkitError(msg)


@dataclass
class TrainConfig(_Record):
    # model: a registered name; depth nets take depths, width nets take widths
    model: str = opt("Basic3ResNet", help="registered model name (see `growkit models`)")
    depths: list[int] | None = opt(None, parse=F.depths, help="blocks per stage of a depth net, e.g. 2-2-2")
    widths: list[int] | int | None = opt(None, parse=F.int_list, help="filters per layer: N (uniform) or N-N-...")
    model_kw: dict = opt(default_factory=dict, cli=False)  # further spec keys, e.g. {"stem_width": 8}
    # data
    dataset: str = opt("digits", help="dataset name (see `growkit datasets`)")
    data_root: str | None = opt(None, help="folder holding the dataset files (default: $GROWKIT_DATA or ./data)")
    download: bool = opt(False, help="download the dataset if missing (needs internet)")
    fraction: float = opt(1.0, help="share of the training split to use")  # the paper's Table 8
    val_fraction: float | None = opt(None, help="share of the official training set held out for validation "
                                                "(default: the dataset's)")
    split_seed: int = opt(0, help="seed of the train/val split, independent of --seed")
    augment: bool = opt(True, flag="--no-augment", help="no random crops and flips")
    # optimisation (defaults: the AutoGrow baselines' SGD)
    optimizer: str = opt("sgd", help="optimizer kind: sgd or adam (see growkit.optim.kinds())")
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


@dataclass
class AutoGrowConfig(_Record):
    """AutoGrow (Algorithm 1). Seed depths are ``TrainConfig.depths``; K, J in epochs; tau in %."""
    policy: str = opt("periodic", help="periodic (p-AutoGrow) or convergent (c-AutoGrow)")
    K: int = opt(3, help="growth interval in epochs")  # also the convergence window
    # periodic stopping window, at least 2 K. None: the paper's rule, J = T, the epochs at the largest rate of
    # the baseline schedule: int(first milestone * finetune_epochs), e.g. 100 of 200 (CIFAR), 30 of 90 (ImageNet),
    # 10 of the 20 fine-tuning epochs of the digits default
    J: int | None = opt(None, help="stopping window of periodic growth, at least 2 K (default: the epochs at the "
                                   "largest rate of the fine-tuning schedule, the paper's T)")
    tau: float = opt(0.05, help="minimum accuracy gain, in percent")  # of the running max of val accuracy
    init: str = opt("gau", help="zero, adam, uni (paper text), uni01 (authors' U(0,1)), gau, or identity "
                                "(growkit's, for plain nets)")
    init_std: float = opt(1.0, help="standard deviation of uni / gau; the upper bound of uni01")
    # The learning rate is TrainConfig.lr (0.1 residual / 0.01 plain by default), for growing and fine-tuning.
    grow_schedule: str = opt("constant", help="constant, or staircase restarting every K epochs")
    finetune_epochs: int = opt(20, flag="--finetune", help="fine-tuning epochs N")  # staircase, of the found net
    max_depth: int | None = opt(None, help="cap of blocks per sub-network")
    max_grow_epochs: int = opt(2000, help="safety bound on the growing phase")
    scale_J_by_fraction: bool = opt(True, flag="--no-scale-J", help="keep J as given when --fraction divides K")
    adam_lr: float = opt(1e-3, help="AdamInit's learning rate")
    adam_max_epochs: int = opt(10, help="AdamInit's epoch budget")
    adam_tolerance: float = opt(0.0, help="AdamInit stops at the shallower net's train accuracy minus this")
    scratch: bool = opt(False, help="also train the found net from scratch (Delta)")
    scratch_epochs: int | None = opt(None, help="epochs of the scratch baseline (default: --finetune)")

    def validate(self) -> "AutoGrowConfig":
        _check(self.policy in ("periodic", "convergent"), f"policy must be periodic or convergent, got {self.policy!r}")
        _check(self.K > 0, f"K must be > 0, got {self.K}")
        _check(self.J is None or self.J > 0, f"J must be > 0, got {self.J}")
        _check(self.tau >= 0, f"tau must be >= 0, got {self.tau}")
        from .growers.initializers import names
        _check(self.init in names(), f"init must be one of {', '.join(names())}, got {self.init!r}")
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


@dataclass
class NetworkMorphismConfig(_Record):
    """Network Morphism (AutoGrow Table 2): train the shallower net (``TrainConfig.depths``) for
    ``shallow_epochs``, stack blocks up to ``target_depths``, train ``deeper_epochs`` more."""
    target_depths: list[int] | None = opt(None, parse=F.depths, required=True,
                                          help="depths of the deeper net, e.g. 2-3-1")
    shallow_epochs: int = opt(10, help="epochs of the shallower net")
    deeper_epochs: int = opt(10, help="epochs of the deeper net after the morphism")
    init: str = opt("zero", help="initializer of the new blocks: zero or adam keep the function")
    init_std: float = opt(1.0, help="standard deviation of uni / gau")

    def validate(self) -> "NetworkMorphismConfig":
        _check(self.target_depths is not None and len(self.target_depths) > 0, "target_depths is required")
        _check(min(self.shallow_epochs, self.deeper_epochs) > 0, "shallow_epochs and deeper_epochs must be > 0")
        from .growers.initializers import names
        _check(self.init in names(), f"init must be one of {', '.join(names())}, got {self.init!r}")
        _check(self.init_std > 0, f"init_std must be > 0, got {self.init_std}")
        return self
