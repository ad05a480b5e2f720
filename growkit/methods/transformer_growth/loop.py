"""Training a decoder-only transformer on a token stream: :class:`LMRun`.

Why a loop of its own and not :class:`growkit.engine.trainer.Trainer`: the Trainer is built around epochs
over a labelled image set (its models take ``in_channels`` / ``num_classes`` / ``image_size``, its passes
count top-1 / top-5 hits of ``[N, classes]`` logits, its multiply-adds are counted per image, its budget and
schedule are epochs). A language model trains for a budget of steps or tokens on random windows of one long
sequence, is evaluated every few hundred steps on fixed validation windows, and counts its compute per token.
Bending the Trainer to both would put an ``if language model`` into its data, passes, counting, records and
phases. So this loop is small and reuses the engine's parts instead of copying them: the optimizer registry
(:mod:`growkit.engine.optim`: build, state by parameter name, carry across growth, export / restore), atomic
checkpoints (:mod:`growkit.engine.checkpoint`, with the RNG states), metrics records
(:class:`growkit.engine.records.MetricsLog`) and the step schedule (:func:`growkit.engine.schedule.warmup_decay`).

Exact resume: the windows of step ``s`` are drawn from (seed, s) alone
(:meth:`growkit.data.text.TokenData.train_starts`), the learning rate is a function of the step (or, for a
budget in multiply-adds, of the compute spent before it, a counter the checkpoint holds), and a
checkpoint (written after every evaluation) holds the weights, the optimizer state by name, the RNG states and
the loop's counters; a run killed at any point and resumed from its last checkpoint repeats the steps after it
and ends with the very weights and records of an uninterrupted run (tests/methods/transformer_growth).

Compute: training multiply-adds are counted (``torch.utils.flop_counter`` on a ``meta`` copy of the model,
forward and backward of one window, 2 FLOPs per multiply-add halved), per token, and summed over the tokens
trained on: ``train_macs`` in every row. Evaluation is not counted. A budget in multiply-adds
(``LMConfig.budget_macs``) ends the run at the first step whose count reaches it, and the schedule decays with
the share of it spent (:func:`growkit.engine.schedule.budget_decay`), so a model that grows (cheap steps first,
more of them) and the final-size model get the same training compute and both end fully decayed at it.

Speed (the fast path, see bench/gpt_throughput.py): no host sync inside an evaluation interval (losses are
summed on the device and read once per row), windows cut with one gather on the device for corpora held
there, bf16 autocast on CUDA, the fused AdamW kernel on CUDA, optional ``torch.compile``.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ...data.text import TokenData, load_text
from ...engine import checkpoint as ckpt
from ...engine import optim
from ...engine.passes import autocast_on
from ...engine.records import MetricsLog, environment
from ...engine.schedule import budget_decay, warmup_decay
from ...engine.trainer import resolve_device
from ...errors import GrowkitError, NonFiniteLoss
from ...models import create, from_spec
from .config import MAX_STEPS, LMConfig

COMMAND = "lm"
STARTS_CHUNK = 256  # steps whose window positions are drawn and copied to the device together


@dataclass
class LMState:
    """The loop's counters; saved in every checkpoint."""
    step: int = 0  # optimizer steps done
    tokens: int = 0  # training tokens seen (steps x batch_size x context)
    train_macs: float = 0.0  # multiply-adds of training (forward + backward) so far
    evals: int = 0  # rows written (one per evaluation)
    lr: float | None = None  # the learning rate of the last step
    warmup_macs: float | None = None  # train_macs when the warmup ended (a compute budget's decay starts there)
    wall_s: float = 0.0  # training and evaluation time of the finished intervals (time lost to a kill is not)
    best_val_loss: float | None = None
    last_row: dict | None = None
    events: list = field(default_factory=list)  # growth events


def build_model(cfg: LMConfig, vocab_size: int):
    """The registered model ``cfg.model`` for ``vocab_size`` tokens and windows of ``cfg.context``."""
    spec = {"vocab_size": vocab_size, "context": cfg.context, **cfg.model_kw}
    return create(cfg.model, **spec)


def count_lm_macs(model: torch.nn.Module, context: int, training: bool = True) -> int:
    """Multiply-adds per token of one window of ``context`` tokens: forward (``training=False``) or forward
    plus backward (``training=True``), counted by ``torch.utils.flop_counter`` on a ``meta`` copy (nothing is
    computed, the model is untouched). Matrix products only (attention's two included); LayerNorm, softmax,
    GELU and the embedding lookup are not multiply-adds and are not counted."""
    from torch.utils.flop_counter import FlopCounterMode

    from ...models.gpt import GPT, macs_per_token
    if isinstance(model, GPT):  # the model's own count (the same counter, its checks)
        return macs_per_token(model, context, training=training)
    shadow = copy.deepcopy(model).to("meta")
    shadow.train(training)
    idx = torch.zeros(1, context, dtype=torch.long, device="meta")
    with FlopCounterMode(display=False) as counter:
        out = shadow(idx)
        if training:
            out.float().sum().backward()
    return counter.get_total_flops() // (2 * context)


def formula_train_macs_per_token(model, context: int) -> int | None:
    """The hand formula beside the count, for a GPT: 3 x its forward multiply-adds per token
    (:func:`growkit.models.gpt.formula_macs_per_token`); None for other models."""
    from ...models.gpt import GPT, model_formula_macs_per_token
    return 3 * model_formula_macs_per_token(model, context) if isinstance(model, GPT) else None


def _wide(logits: torch.Tensor) -> torch.Tensor:
    """Logits [B, T, V] as [B T, V] in at least float32 (bf16 logits under autocast are widened)."""
    return logits.reshape(-1, logits.shape[-1]).to(torch.promote_types(logits.dtype, torch.float32))


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy of ``logits [B, T, V]`` against ``targets [B, T]``."""
    return F.cross_entropy(_wide(logits), targets.reshape(-1))


def _arch(model) -> str:
    return str(getattr(model, "arch", type(model).__name__))


class LMRun:
    """One language-model run: data, model, optimizer, counters; :meth:`fit` trains to the budget.

    ``out``: the run directory (``metrics.jsonl``, ``checkpoint.pt``; None: nothing is written);
    ``data``: a :class:`~growkit.data.text.TokenData` (default: ``cfg.dataset``);
    ``model``: a model to train instead of building ``cfg.model`` (it needs ``spec`` for checkpoints);
    ``grower``: called after every evaluation as ``grower.after_eval(run, row)``; it may call
    :meth:`grow`; its ``state_dict()`` / ``load_state_dict()`` (if any) go into the checkpoints;
    ``callbacks``: functions ``fn(run, row)`` called with every row before it is written."""

    def __init__(self, cfg: LMConfig, out: str | Path | None = None, *, data: TokenData | None = None,
                 model=None, grower=None, callbacks=(), run_config: dict | None = None):
        self.cfg = cfg = cfg.validate()
        self.device = resolve_device(cfg.device)
        self.amp = autocast_on(cfg.precision, self.device)
        self.data = data if data is not None else load_text(
            cfg.dataset, context=cfg.context, root=cfg.data_root, val_fraction=cfg.val_fraction,
            vocab_size=cfg.vocab_size, device=self.device)
        if self.data.context != cfg.context:
            raise GrowkitError(f"the data cuts windows of {self.data.context} tokens, the config says {cfg.context}")
        self.out = Path(out) if out is not None else None
        if grower is None and cfg.grower:
            from .growers import build
            grower = build(cfg.grower)
        self.grower, self.callbacks = grower, list(callbacks)
        self.run_config = run_config or {"command": COMMAND, COMMAND: cfg.to_dict(),
                                         "environment": environment(self.device)}
        self.total = cfg.total_steps()  # None for a budget in multiply-adds
        self.budget = cfg.budget_macs
        torch.manual_seed(cfg.seed)
        self._set_model(model if model is not None else build_model(cfg, self.data.info.vocab_size))
        # the steps the budget takes with the first model (a model that grows takes more: its early steps are
        # cheaper); evaluations default to a tenth of them, so they are the same before and after a resume
        self.planned = self.total if self.budget is None else math.ceil(
            self.budget / (self.macs_per_token * cfg.batch_size * cfg.context))
        self.interval = cfg.interval(self.planned)
        if self.budget is not None and not cfg.warmup < self.planned:
            raise GrowkitError(f"warmup must be fewer steps than the {self.planned} the budget of "
                               f"{self.budget:.4g} multiply-adds gives {_arch(self.model)}, got {cfg.warmup}")
        self.opt = optim.build(self.model, cfg.optimizer_config(), cfg.lr)
        self.state = LMState()
        self.val_starts = self.data.val_starts(cfg.eval_windows)

    # ------------------------------------------------------------------ setup
    def _set_model(self, model) -> None:
        self.model = model.to(self.device)
        self.fwd = torch.compile(self.model) if self.cfg.compile else self.model
        self.macs_per_token = count_lm_macs(self.model, self.cfg.context, training=True)
        self.macs_per_token_formula = formula_train_macs_per_token(self.model, self.cfg.context)
        self.params = sum(p.numel() for p in self.model.parameters())

    def restore(self, state: dict) -> None:
        """Continue from a loaded checkpoint (:func:`growkit.engine.checkpoint.load`)."""
        model = from_spec(state["spec"])
        model.load_state_dict(state["model"])
        self._set_model(model)
        self.opt = optim.restore(self.model, self.cfg.optimizer_config(), state["optimizer"], self.cfg.lr)
        if self.grower is not None and state.get("grower") is not None and hasattr(self.grower, "load_state_dict"):
            self.grower.load_state_dict(state["grower"])
        self.state = LMState(**state["loop"])
        ckpt.restore_rng(state["rng"])

    def lr_at(self, step: int) -> float:
        """The learning rate of step ``step`` of a budget in steps or tokens."""
        c = self.cfg
        return warmup_decay(step, self.total, c.lr, c.warmup, c.decay, c.final_lr)

    def lr_now(self) -> float:
        """The learning rate of the next step: of its step number (a budget in steps or tokens), or of the share
        of the compute budget the steps before it spent (:func:`growkit.engine.schedule.budget_decay`)."""
        c, st = self.cfg, self.state
        if self.budget is None:
            return self.lr_at(st.step)
        if st.step == c.warmup and st.warmup_macs is None:
            st.warmup_macs = st.train_macs
        return budget_decay(st.step, st.train_macs, self.budget, c.lr, c.warmup, c.decay, c.final_lr,
                            st.warmup_macs or 0.0)

    def done(self) -> bool:
        """Whether the budget is spent: its steps taken, or its multiply-adds reached."""
        if self.budget is not None:
            return self.state.train_macs >= self.budget or self.state.step >= MAX_STEPS
        return self.state.step >= self.total

    def progress(self) -> float:
        """The share of the budget spent: of its multiply-adds, or of its steps."""
        if self.budget is not None:
            return self.state.train_macs / self.budget
        return self.state.step / self.total

    # ------------------------------------------------------------------ passes
    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if self.amp else contextlib.nullcontext()

    def train_steps(self, n: int) -> float:
        """``n`` optimizer steps from the current one (fewer when the budget is spent first); returns their mean
        training loss (one host sync)."""
        c, model, opt = self.cfg, self.fwd, self.opt
        model.train()
        params = [p for g in opt.param_groups for p in g["params"]]
        loss_sum = torch.zeros((), device=self.device)
        done = 0
        starts = None
        for i in range(n):
            if self.done():  # a compute budget may be spent before the interval ends
                break
            s = self.state.step
            if i % STARTS_CHUNK == 0:  # the windows' positions of the next steps, copied to the device at once
                starts = self.data.starts_for_steps(c.batch_size, c.seed, s, min(STARTS_CHUNK, n - i))
            x, y = self.data.windows("train", starts[i % STARTS_CHUNK])
            lr = self.state.lr = self.lr_now()
            for g in opt.param_groups:
                g["lr"] = lr * g.get("lr_scale", 1.0)
            with self.autocast():
                loss = lm_loss(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if c.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, c.grad_clip)
            opt.step()
            loss_sum += loss.detach()
            self.state.step += 1
            self.state.tokens += c.batch_size * c.context
            self.state.train_macs += float(self.macs_per_token) * c.batch_size * c.context
            done += 1
        mean = loss_sum.item() / max(done, 1)
        if not math.isfinite(mean):
            raise NonFiniteLoss(f"the training loss became {mean} by step {self.state.step}")
        return mean

    @torch.no_grad()
    def evaluate(self, batch_size: int | None = None) -> float:
        """Mean next-token cross-entropy (nats) over every position of the fixed validation windows."""
        model = self.fwd
        model.eval()
        bs = batch_size or self.cfg.batch_size
        total = torch.zeros((), device=self.device, dtype=torch.float64)
        for i in range(0, len(self.val_starts), bs):
            x, y = self.data.windows("val", self.val_starts[i:i + bs])
            with self.autocast():
                logits = model(x)
            total += F.cross_entropy(_wide(logits), y.reshape(-1), reduction="sum").double()
        return total.item() / (len(self.val_starts) * self.cfg.context)

    # ------------------------------------------------------------------ growth
    def grow(self, plans, info: dict | None = None) -> dict:
        """Apply surgery ``plans`` (objects with ``apply(model) -> Edit``) to the model, carry the optimizer
        state across by parameter name (old entries keep theirs, new ones start at zero), recount the
        multiply-adds; returns the growth event, also recorded in the next row and the result."""
        old_state = optim.state_by_name(self.model, self.opt)
        old_shapes = {n: p.shape for n, p in self.model.named_parameters()}
        before = _arch(self.model)
        edits = [plan.apply(self.model) for plan in plans]
        self.opt = optim.carry(self.model, self.opt, edits, old_state, old_shapes)
        self._set_model(self.model)
        event = {"step": self.state.step, "tokens": self.state.tokens, "train_macs": self.state.train_macs,
                 "before": before, "after": _arch(self.model),
                 "edits": [e.summary() for e in edits], **(info or {})}
        self.state.events.append(event)
        return event

    # ------------------------------------------------------------------ the loop
    def _checkpoint(self) -> None:
        if self.out is None:
            return
        grower = self.grower.state_dict() if hasattr(self.grower, "state_dict") else None
        ckpt.save(self.out / "checkpoint.pt", config=self.run_config, model=self.model,
                  optimizer=optim.export(self.model, self.opt), loop=dataclasses.asdict(self.state), grower=grower)

    def fit(self, on_checkpoint=None) -> dict:
        """Train to the budget: an evaluation, a row and a checkpoint every ``eval_every`` steps and at the end.
        ``on_checkpoint(run)``: called after each checkpoint is written."""
        if self.out is not None:
            # rows the checkpoint has not seen (a kill between a row's append and its checkpoint) go
            MetricsLog(self.out / "metrics.jsonl").truncate(self.state.evals)
        while not self.done():
            t0 = time.perf_counter()
            n = self.interval - self.state.step % self.interval
            if self.total is not None:
                n = min(n, self.total - self.state.step)
            step0, tok0 = self.state.step, self.state.tokens
            train_loss = self.train_steps(n)
            val_loss = self.evaluate()
            if not math.isfinite(val_loss):
                raise NonFiniteLoss(f"the validation loss became {val_loss} at step {self.state.step}")
            self.state.evals += 1
            b = self.state.best_val_loss
            self.state.best_val_loss = val_loss if b is None else min(b, val_loss)
            n_events = len(self.state.events)
            row = {"epoch": self.state.evals, "step": self.state.step, "tokens": self.state.tokens,
                   "lr": self.state.lr, "train_loss": train_loss, "val_loss": val_loss,
                   "train_macs": self.state.train_macs, "macs_per_token": self.macs_per_token,
                   "macs_per_token_formula": self.macs_per_token_formula,
                   "params": self.params, "arch": _arch(self.model)}
            if self.grower is not None:
                self.grower.after_eval(self, row)
            dt = time.perf_counter() - t0
            self.state.wall_s += dt
            row.update(events=self.state.events[n_events:], interval_s=dt, wall_s=self.state.wall_s,
                       tokens_per_s=(self.state.tokens - tok0) / dt if dt > 0 else None,
                       steps_in_row=self.state.step - step0)
            for cb in self.callbacks:
                cb(self, row)
            self.state.last_row = row
            if self.out is not None:  # (self.out moves when a staged run is committed)
                MetricsLog(self.out / "metrics.jsonl").append(row)  # before its checkpoint (see the truncate)
            self._checkpoint()
            if on_checkpoint is not None:
                on_checkpoint(self)
        return self.result()

    def result(self) -> dict:
        last = self.state.last_row or {}
        return {"arch": _arch(self.model), "spec": getattr(self.model, "spec", None), "steps": self.state.step,
                "budget_macs": self.budget,
                "tokens": self.state.tokens, "train_loss": last.get("train_loss"), "val_loss": last.get("val_loss"),
                "best_val_loss": self.state.best_val_loss, "params": self.params,
                "macs_per_token": self.macs_per_token, "macs_per_token_formula": self.macs_per_token_formula,
                "train_macs": self.state.train_macs,
                "vocab_size": self.data.info.vocab_size, "dataset": self.data.info.name,
                "wall_s": self.state.wall_s, "growth_events": list(self.state.events),
                "config": self.run_config, "environment": environment(self.device)}
