"""The options of a language-model run (``growkit lm``): one dataclass, the single source of truth.

The resolved config is written to ``config.json`` before training and saved in every checkpoint, so
``growkit resume DIR`` needs nothing else. :meth:`LMConfig.validate` turns every bad value into a
one-line :class:`~growkit.errors.GrowkitError` before anything is written.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ...engine import flags as F
from ...engine.config import INT64_MAX, Record, _check, _check_device, _check_fields
from ...engine.flags import opt
from ...engine.schedule import DECAYS

DEFAULT_STEPS = 1000
MAX_STEPS = 10 ** 9


@dataclass
class LMConfig(Record):
    # model: a registered decoder-only transformer; its vocabulary and context come from the data and `context`
    model: str = opt("GPT-2L-2H-64", help="registered model name, e.g. GPT-4L-4H-128 (see `growkit models`)")
    model_kw: dict = opt(default_factory=dict, cli=False)  # further spec keys of the model
    # data
    dataset: str = opt("shakespeare", help="shakespeare (embedded), text:FILE, tokens:DIR (train.bin/val.bin), "
                                           "openwebtext or tinystories (under the data root)")
    data_root: str | None = opt(None, help="folder holding token datasets (default: $GROWKIT_DATA, else data/ of "
                                           "the growkit checkout you are in, else ./data)")
    vocab_size: int | None = opt(None, help="vocabulary of token files with no meta.json / meta.pkl")
    val_fraction: float | None = opt(None, help="share of a text held out (its end) for validation (default 0.1)")
    context: int = opt(64, help="tokens per window (the model's context length)")
    # budget: steps, tokens (rounded up to whole steps of batch_size * context tokens), or training compute
    steps: int | None = opt(None, help=f"optimizer steps (default {DEFAULT_STEPS} unless --tokens or "
                                       "--budget-macs is given)")
    tokens: int | None = opt(None, help="training tokens instead of --steps (rounded up to whole steps)")
    budget_macs: float | None = opt(None, help="training multiply-adds (forward + backward, counted) instead of "
                                               "--steps: the run stops at the first step that reaches them, and "
                                               "the schedule's decay follows the share of them spent")
    batch_size: int = opt(32, help="windows per step")
    # optimisation: AdamW, warmup then a decay to final_lr at the end of the budget
    optimizer: str = opt("adamw", help="optimizer kind (see growkit.engine.optim.kinds())")
    optimizer_kw: dict = opt(default_factory=dict, parse=F.json_object,
                             help='the kind\'s options as JSON, e.g. \'{"eps": 1e-6}\'')
    lr: float = opt(1e-3, help="peak learning rate")
    warmup: int = opt(0, help="linear warmup steps")
    decay: str = opt("cosine", choices=list(DECAYS), help="decay after the warmup, to final_lr at the budget's end")
    final_lr: float = opt(0.0, help="learning rate at the end of the budget (0: fully decayed)")
    weight_decay: float = opt(0.1, help="AdamW's decoupled weight decay (weights and embeddings only)")
    betas: list[float] = opt(default_factory=lambda: [0.9, 0.99], parse=F.floats, help="Adam's betas")
    momentum: float = opt(0.9, cli=False)  # (read by optimizer kinds that take it, e.g. sgd)
    nesterov: bool = opt(False, cli=False)
    decay_bn_bias: bool = opt(False, cli=False)  # no weight decay on LayerNorm parameters and biases
    grad_clip: float = opt(1.0, help="clip the gradient norm to this (0: off)")
    # evaluation: a fixed set of evenly spaced validation windows
    eval_every: int | None = opt(None, help="steps between evaluations and checkpoints (default: a tenth of "
                                            "the budget)")
    eval_windows: int = opt(64, help="validation windows of `context` tokens, evenly spaced over the split")
    # growth: a grower built from this spec (growkit.methods.transformer_growth.growers.build), e.g.
    # {"kind": "schedule", "at": [[0.25, [{"op": "stack_all", "times": 2}]]]}; {} grows nothing
    grower: dict = opt(default_factory=dict, parse=F.json_object,
                       help='grower spec as JSON, e.g. \'{"kind": "schedule", "at": [[0.25, [{"op": "stack_all"}]]]}\' '
                            'or \'{"kind": "autogrow", "policy": "periodic", "K": 2, "J": 6, "tau": 0.01}\'')
    # run
    seed: int = opt(0, help="seed of the initial weights and of the training windows")
    device: str = opt("auto", help="auto, cpu or cuda")
    precision: str = opt("auto", choices=["auto", "fp32", "bf16"], help="auto: bf16 autocast on CUDA, fp32 on CPU")
    compile: bool = opt(False, help="torch.compile the model (CUDA; minutes of compiling on the first steps)")

    def total_steps(self) -> int | None:
        """Steps of a budget in steps or tokens; None for a budget in multiply-adds (the run counts them)."""
        if self.budget_macs is not None:
            return None
        if self.tokens is not None:
            return math.ceil(self.tokens / (self.batch_size * self.context))
        return DEFAULT_STEPS if self.steps is None else self.steps

    def interval(self, steps: int | None = None) -> int:
        """Steps between evaluations (default a tenth of the budget's steps; ``steps``: the steps a compute
        budget is expected to take, which the run works out from its first model)."""
        if self.eval_every is not None:
            return self.eval_every
        return max(1, math.ceil((steps or self.total_steps() or 1) / 10))

    def validate(self) -> "LMConfig":
        _check_fields(self)
        given = [n for n in ("steps", "tokens", "budget_macs") if getattr(self, n) is not None]
        _check(len(given) <= 1, f"give one budget (steps, tokens or budget_macs), not {' and '.join(given)}")
        _check(self.budget_macs is None or 0 < self.budget_macs < float("inf"),
               f"budget_macs must be a finite number > 0, got {self.budget_macs}")
        _check(self.steps is None or 0 < self.steps <= MAX_STEPS, f"steps must be in 1..{MAX_STEPS}, got {self.steps}")
        _check(1 <= self.context <= 1 << 20, f"context must be in 1..{1 << 20}, got {self.context}")
        _check(1 <= self.batch_size <= 1 << 20, f"batch_size must be in 1..{1 << 20}, got {self.batch_size}")
        _check(self.tokens is None or 0 < self.tokens <= INT64_MAX, f"tokens must be > 0, got {self.tokens}")
        _check(self.total_steps() is None or self.total_steps() <= MAX_STEPS,
               f"{self.tokens} tokens are {self.total_steps()} steps; at most {MAX_STEPS}")
        _check(0 <= self.lr <= 10, f"lr must be >= 0 and at most 10, got {self.lr}")
        _check(0 <= self.final_lr <= self.lr, f"final_lr must be in [0, lr], got {self.final_lr}")
        # (a compute budget's steps are known once the model is: the run checks its warmup against them)
        _check(0 <= self.warmup < (self.total_steps() or MAX_STEPS),
               f"warmup must be in 0..{(self.total_steps() or MAX_STEPS) - 1} (fewer steps than the budget), "
               f"got {self.warmup}")
        _check(self.decay in DECAYS, f"decay must be one of {', '.join(DECAYS)}, got {self.decay!r}")
        _check(0 <= self.weight_decay < 1, f"weight_decay must be in [0, 1), got {self.weight_decay}")
        _check(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
               f"betas must be two numbers in [0, 1), got {self.betas}")
        _check(0 <= self.grad_clip < float("inf"), f"grad_clip must be >= 0, got {self.grad_clip}")
        _check(self.eval_every is None or 1 <= self.eval_every <= MAX_STEPS,
               f"eval_every must be in 1..{MAX_STEPS}, got {self.eval_every}")
        _check(1 <= self.eval_windows <= 1 << 20, f"eval_windows must be in 1..{1 << 20}, got {self.eval_windows}")
        _check(self.val_fraction is None or 0 < self.val_fraction < 1,
               f"val_fraction must be in (0, 1), got {self.val_fraction}")
        _check(self.vocab_size is None or 2 <= self.vocab_size <= 65536,
               f"vocab_size must be in 2..65536, got {self.vocab_size}")
        _check(0 <= self.seed <= INT64_MAX, f"seed must be in 0..2**63-1, got {self.seed}")
        _check(self.precision in ("auto", "fp32", "bf16"), "precision must be auto, fp32 or bf16")
        from ...models import canonical_name, list_models
        base = canonical_name(self.model).partition("-")[0]
        _check(base in list_models("text"), f"{self.model} is not a language model; valid: "
                                            f"{', '.join(list_models('text'))} (e.g. GPT-4L-4H-128)")
        from ...engine import optim
        optim.validate(self.optimizer_config())
        if self.grower:
            from .growers import build
            build(self.grower)  # a bad spec is a one-line error before anything runs
        _check_device(self.device)
        return self

    def optimizer_config(self):
        """What :func:`growkit.engine.optim.build` reads: this config, with ``betas`` among the options of a kind
        that takes them (unless ``optimizer_kw`` names its own)."""
        from ...engine import optim
        kw = dict(self.optimizer_kw)
        if "betas" in optim.get(self.optimizer).options and "betas" not in kw:
            kw["betas"] = list(self.betas)
        return dataclasses.replace(self, optimizer_kw=kw)
