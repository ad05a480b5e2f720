"""AutoGrow's options (Algorithm 1) and those of the Network Morphism study (Table 2): the method
sections of their run configs (``config.json``), and the flags of their subcommands."""
from __future__ import annotations

from dataclasses import dataclass

from ...engine import flags as F
from ...engine.config import MAX_BLOCKS, MAX_EPOCHS, Record, _check, _check_fields
from ...engine.flags import opt
from ...growers.initializers import names


@dataclass
class AutoGrowConfig(Record):
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
        _check_fields(self)
        _check(self.policy in ("periodic", "convergent"), f"policy must be periodic or convergent, got {self.policy!r}")
        _check(0 < self.K <= MAX_EPOCHS, f"K must be > 0 and at most {MAX_EPOCHS}, got {self.K}")
        _check(self.J is None or 0 < self.J <= MAX_EPOCHS, f"J must be > 0 and at most {MAX_EPOCHS}, got {self.J}")
        _check(0 <= self.tau <= 100, f"tau must be >= 0 and at most 100 (percentage points), got {self.tau}")
        _check(self.init in names(), f"init must be one of {', '.join(names())}, got {self.init!r}")
        _check(0 < self.init_std <= 100, f"init_std must be in (0, 100], got {self.init_std}")
        _check(self.grow_schedule in ("constant", "staircase"),
               f"grow_schedule must be constant or staircase, got {self.grow_schedule!r}")
        for name in ("finetune_epochs", "max_grow_epochs", "adam_max_epochs", "scratch_epochs"):
            v = getattr(self, name)
            low = 0 if name == "finetune_epochs" else 1
            _check(v is None or low <= v <= MAX_EPOCHS, f"{name} must be in {low}..{MAX_EPOCHS}, got {v}")
        _check(self.max_depth is None or 0 < self.max_depth <= MAX_BLOCKS,
               f"max_depth must be in 1..{MAX_BLOCKS}, got {self.max_depth}")
        _check(0 < self.adam_lr <= 10, f"adam_lr must be in (0, 10], got {self.adam_lr}")
        _check(0 <= self.adam_tolerance <= 100, f"adam_tolerance must be in [0, 100], got {self.adam_tolerance}")
        return self


@dataclass
class NetworkMorphismConfig(Record):
    """Network Morphism (AutoGrow Table 2): train the shallower net (``TrainConfig.depths``) for
    ``shallow_epochs``, stack blocks up to ``target_depths``, train ``deeper_epochs`` more."""
    target_depths: list[int] | None = opt(None, parse=F.depths, required=True,
                                          help="depths of the deeper net, e.g. 2-3-1")
    shallow_epochs: int = opt(10, help="epochs of the shallower net")
    deeper_epochs: int = opt(10, help="epochs of the deeper net after the morphism")
    init: str = opt("zero", help="initializer of the new blocks: zero or adam keep the function")
    init_std: float = opt(1.0, help="standard deviation of uni / gau")

    def validate(self) -> "NetworkMorphismConfig":
        _check_fields(self)
        _check(self.target_depths is not None and len(self.target_depths) > 0, "target_depths is required")
        _check(sum(self.target_depths) <= MAX_BLOCKS, f"target_depths has more than {MAX_BLOCKS} blocks")
        _check(min(self.shallow_epochs, self.deeper_epochs) > 0, "shallow_epochs and deeper_epochs must be > 0")
        _check(max(self.shallow_epochs, self.deeper_epochs) <= MAX_EPOCHS,
               f"shallow_epochs and deeper_epochs must be at most {MAX_EPOCHS}")
        _check(self.init in names(), f"init must be one of {', '.join(names())}, got {self.init!r}")
        _check(0 < self.init_std <= 100, f"init_std must be in (0, 100], got {self.init_std}")
        return self
