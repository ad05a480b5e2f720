"""The one training loop every method uses.

A run is a list of :class:`Phase` objects (``train``; or ``grow`` then
``finetune``), each with its learning-rate schedule. After every epoch the
loop evaluates on the validation split (and the test split, for reporting
only), and in a growing phase asks the grower what to do. Growth is applied in
memory: surgery edits the model, the grower's initializer sets the new
weights, and the optimizer state is carried by parameter name (no disk
round-trip, no state lost). Then a metrics row is appended and an atomic
checkpoint written, so a kill at any point loses at most the current epoch.

Fast path on CUDA: the data already lives on the GPU (see :mod:`growkit.data`),
bf16 autocast (parameters, BatchNorm and its statistics stay fp32),
channels_last, and no host sync inside an epoch (losses and hits are summed on
the device and read once per epoch). On CPU: fp32, seeded and deterministic.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from . import checkpoint as ckpt
from . import data as data_mod
from . import optim
from .config import TrainConfig
from .errors import GrowkitError, NonFiniteLoss
from .models import create, from_spec, model_stats
from .records import MetricsLog, environment


@dataclass
class Phase:
    name: str
    lr: float
    schedule: str = "constant"  # constant | staircase | cosine
    epochs: int | None = None  # a growing phase ends after `epochs` or when the grower is done
    # (with epochs None: when the grower is done, at most max_epochs)
    period: int | None = None  # restart the schedule every `period` epochs (c-AutoGrow's staircase)
    max_epochs: int | None = None
    milestones: tuple[float, ...] = (0.5, 0.75)
    gamma: float = 0.1
    grows: bool = False  # the grower is consulted after each epoch of this phase

    def lr_at(self, t: float) -> float:
        """Learning rate ``t`` epochs (fractional) into the phase."""
        total = self.period or self.epochs or 1
        if self.period:
            t = t % self.period
        if self.schedule == "constant":
            return self.lr
        if self.schedule == "staircase":  # decays at whole epochs int(m * total), as the AutoGrow code does
            e = int(t)
            return self.lr * self.gamma ** sum(e >= max(1, int(m * total)) for m in self.milestones)
        return 0.5 * self.lr * (1.0 + math.cos(math.pi * min(t / total, 1.0)))


@dataclass
class LoopState:
    epoch: int = 0  # epochs completed
    phase: int = 0  # index of the current phase (== len(phases) when the run is finished)
    phase_start: int = 0  # epoch at which the current phase began
    train_flops: float = 0.0  # cumulative, counted by torch's FLOP counter per image seen
    wall_s: float = 0.0  # sum of the epochs' own wall times (time lost to a crash is not counted)
    phase_wall_s: dict = field(default_factory=dict)
    events: list = field(default_factory=list)
    best_val_acc: float | None = None
    last_row: dict | None = None


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise GrowkitError(f"unknown device {name!r}; use cpu, cuda or auto") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise GrowkitError(f"device {name!r} requested but no CUDA device is available")
    return dev


def derive_seed(*parts) -> int:
    return zlib.crc32(":".join(map(str, parts)).encode())


def load_data(cfg: TrainConfig, device: torch.device, channels_last: bool = False):
    return data_mod.load(cfg.dataset, cfg.data_root, fraction=cfg.fraction, val_fraction=cfg.val_fraction,
                         split_seed=cfg.split_seed, device=device, download=cfg.download, augment=cfg.augment,
                         channels_last=channels_last)


def build_model(cfg: TrainConfig, info):
    spec = dict(cfg.model_kw)
    if cfg.depths is not None:
        spec["depths"] = list(cfg.depths)
    if cfg.widths is not None:
        spec["widths"] = cfg.widths
    return create(cfg.model, **spec, in_channels=info.channels, num_classes=info.num_classes,
                  image_size=info.image_size)


class GrowthContext:
    """What a grower's initializer may use: training only chosen parameters with its own
    optimizer (AdamInit), and the record of the epoch that triggered the growth."""

    def __init__(self, trainer: "Trainer", row: dict):
        self.trainer, self.row = trainer, row
        self.extra_epochs = 0

    def train_epoch(self, params, optimizer) -> tuple[float, float]:
        self.extra_epochs += 1
        t = self.trainer
        seed = derive_seed(t.cfg.seed, t.loop.epoch, "init", self.extra_epochs)
        return t.train_epoch(optimizer, None, seed, trainable=params)


class Trainer:
    def __init__(self, cfg: TrainConfig, out: str | Path | None = None, *, phases: list[Phase] | None = None,
                 grower=None, data=None, run_config: dict | None = None, callbacks=()):
        self.cfg = cfg = cfg.validate().resolved()
        self.device = resolve_device(cfg.device)
        cuda = self.device.type == "cuda"
        self.amp = (cfg.precision == "bf16") or (cfg.precision == "auto" and cuda)
        self.channels_last = cuda if cfg.channels_last is None else cfg.channels_last
        self.phases = phases or [Phase("train", cfg.lr, cfg.schedule, cfg.epochs,
                                       milestones=tuple(cfg.milestones), gamma=cfg.gamma)]
        self.grower = grower
        self.out = Path(out) if out is not None else None
        self.run_config = run_config or {"command": "train", "train": cfg.to_dict(),
                                         "environment": environment(self.device)}
        self.callbacks = list(callbacks)
        self.data = data if data is not None else load_data(cfg, self.device, self.channels_last)
        if grower is not None and self.data.size("val") == 0:
            raise GrowkitError("growing needs a validation split: val_fraction must be > 0")
        self.loop = LoopState()
        if cuda:
            torch.backends.cudnn.benchmark = True
        torch.manual_seed(cfg.seed)
        self.model = self._place(build_model(cfg, self.data.info))
        self.opt = self._optimizer(self.phases[0].lr)
        self.stats = model_stats(self.model)

    # ------------------------------------------------------------------ setup
    def _place(self, model):
        model = model.to(self.device)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def _optimizer(self, lr):
        return optim.build(self.model, self.cfg, lr)

    def restore(self, state: dict) -> None:
        """Continue from a loaded checkpoint (see :func:`growkit.checkpoint.load`)."""
        self.model = self._place(from_spec(state["spec"]))
        self.model.load_state_dict(state["model"])
        lr = self.phases[min(state["loop"]["phase"], len(self.phases) - 1)].lr
        self.opt = optim.restore(self.model, self.cfg, state["optimizer"], lr)
        if self.grower is not None and state["grower"] is not None:
            self.grower.load_state_dict(state["grower"])
        self.loop = LoopState(**state["loop"])
        self.stats = model_stats(self.model)
        ckpt.restore_rng(state["rng"])
        if self.out is not None:
            MetricsLog(self.out / "metrics.jsonl").truncate(self.loop.epoch)
            if self.cfg.snapshot_every:
                from .viz.trajectory import prune_snapshots
                prune_snapshots(self.out, self.loop.epoch)

    # ------------------------------------------------------------------ one epoch
    def _autocast(self):
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def train_epoch(self, opt, lr_fn: Callable[[float], float] | None, seed: int,
                    trainable=None) -> tuple[float, float]:
        """One pass over the training split. ``trainable``: train only these parameters."""
        model, bs = self.model, self.cfg.batch_size
        model.train()
        n_steps = max(1, math.ceil(self.data.size("train") / bs))
        loss_sum = torch.zeros((), device=self.device)
        hits = torch.zeros((), device=self.device, dtype=torch.long)
        count = 0
        frozen = []
        if trainable is not None:
            keep = {id(p) for p in trainable}
            frozen = [p for p in model.parameters() if id(p) not in keep and p.requires_grad]
            for p in frozen:
                p.requires_grad_(False)
        try:
            for step, (x, y) in enumerate(self.data.train_batches(bs, seed)):
                if lr_fn is not None:
                    lr = lr_fn(step / n_steps)
                    for g in opt.param_groups:
                        g["lr"] = lr * g.get("lr_scale", 1.0)
                with self._autocast():
                    out = model(x)
                    loss = F.cross_entropy(out, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss_sum += loss.detach().float() * len(y)
                hits += (out.argmax(1) == y).sum()
                count += len(y)
        finally:
            for p in frozen:
                p.requires_grad_(True)
        self.loop.train_flops += self.stats["train_flops_per_image"] * count
        loss = (loss_sum / max(count, 1)).item()
        if not math.isfinite(loss):
            raise NonFiniteLoss(f"the training loss became {loss} at epoch {self.loop.epoch + 1}")
        return loss, 100.0 * hits.item() / max(count, 1)

    @torch.no_grad()
    def evaluate(self, split: str) -> tuple[float | None, float | None, float | None]:
        """Mean loss, top-1 and top-5 accuracy (%) on a split (top-5 None with 5 classes or fewer)."""
        if self.data.size(split) == 0:
            return None, None, None
        self.model.eval()
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        hits = torch.zeros((), device=self.device, dtype=torch.long)
        hits5 = torch.zeros((), device=self.device, dtype=torch.long)
        top5 = self.data.info.num_classes > 5
        for x, y in self.data.eval_batches(split):
            with self._autocast():
                out = self.model(x)
            loss_sum += F.cross_entropy(out.float(), y, reduction="sum").double()
            hits += (out.argmax(1) == y).sum()
            if top5:
                hits5 += (out.topk(5, dim=1).indices == y[:, None]).any(1).sum()
        n = self.data.size(split)
        return loss_sum.item() / n, 100.0 * hits.item() / n, (100.0 * hits5.item() / n if top5 else None)

    # ------------------------------------------------------------------ growth
    def _grow(self, decision, row: dict) -> dict:
        old_state = optim.state_by_name(self.model, self.opt)
        old_shapes = {n: p.shape for n, p in self.model.named_parameters()}
        before = self.model.arch
        edits = [plan.apply(self.model) for plan in decision.plans]
        if self.out is not None and self.cfg.snapshot_every:  # where old entries went, for trajectory plots
            from .viz.trajectory import record_growth
            record_growth(self.out, self.loop.epoch, edits)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.stats = model_stats(self.model)
        ctx = GrowthContext(self, row)
        info = self.grower.initialize(self.model, edits, ctx) or {}
        self.opt = optim.carry(self.model, self.opt, edits, old_state, old_shapes)
        event = {"epoch": self.loop.epoch, "before": before, "after": self.model.arch,
                 "edits": [e.summary() for e in edits], **decision.info, **info}
        self.loop.events.append(event)
        for cb in self.callbacks:
            getattr(cb, "on_growth", lambda *a: None)(self, event)
        return event

    # ------------------------------------------------------------------ the loop
    def _checkpoint(self) -> None:
        if self.out is None:
            return
        ckpt.save(self.out / "checkpoint.pt", config=self.run_config, model=self.model,
                  optimizer=optim.export(self.model, self.opt), loop=dataclasses.asdict(self.loop),
                  grower=self.grower.state_dict() if self.grower is not None else None)

    def _skip_empty_phases(self) -> None:
        while self.loop.phase < len(self.phases) and self.phases[self.loop.phase].epochs == 0:
            self.loop.phase += 1

    def fit(self) -> dict:
        log = MetricsLog(self.out / "metrics.jsonl") if self.out is not None else None
        snap = self.out is not None and self.cfg.snapshot_every > 0
        if snap:
            from .viz.trajectory import save_snapshot
            if self.loop.epoch == 0:
                save_snapshot(self.out, 0, self.model)
        self._skip_empty_phases()
        bar = None
        if self.cfg.progress and self.loop.phase < len(self.phases):
            from tqdm.auto import tqdm
            bar = tqdm(initial=self.loop.epoch, unit="epoch", file=sys.stderr, dynamic_ncols=True)
        try:
            while self.loop.phase < len(self.phases):
                row = self._epoch()
                if log is not None:
                    log.append(row)
                self._checkpoint()
                if snap and self.loop.epoch % self.cfg.snapshot_every == 0:
                    save_snapshot(self.out, self.loop.epoch, self.model)
                for cb in self.callbacks:
                    getattr(cb, "on_epoch", lambda *a: None)(self, row)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(f"{row['phase']} {row['arch']} val {row['val_acc']:.2f}%", refresh=False)
        finally:
            if bar is not None:
                bar.close()
        return self.result()

    def _epoch(self) -> dict:
        phase = self.phases[self.loop.phase]
        e0 = self.loop.epoch - self.loop.phase_start
        t0 = time.perf_counter()
        lr = phase.lr_at(e0)
        tr_loss, tr_acc = self.train_epoch(self.opt, lambda s: phase.lr_at(e0 + s),
                                           derive_seed(self.cfg.seed, self.loop.epoch))
        val_loss, val_acc, _ = self.evaluate("val")
        test_loss, test_acc, test_top5 = self.evaluate("test") if self.cfg.eval_test else (None, None, None)
        self.loop.epoch += 1
        row = {"epoch": self.loop.epoch, "phase": phase.name, "lr": lr, "train_loss": tr_loss, "train_acc": tr_acc,
               "val_loss": val_loss, "val_acc": val_acc, "test_loss": test_loss, "test_acc": test_acc,
               "test_top5": test_top5,
               "arch": self.model.arch, "params": self.stats["params"], "flops": self.stats["flops"]}
        if val_acc is not None:
            self.loop.best_val_acc = max(self.loop.best_val_acc or 0.0, val_acc)
        done, events = False, []
        in_phase = self.loop.epoch - self.loop.phase_start
        if phase.grows and self.grower is not None:
            decision = self.grower.decide(in_phase, row, self.model)
            if decision.plans:
                events.append(self._grow(decision, row))
            limit = phase.epochs if phase.epochs is not None else phase.max_epochs
            done = decision.done or (limit is not None and in_phase >= limit)
        elif phase.epochs is not None:
            done = in_phase >= phase.epochs
        dt = time.perf_counter() - t0
        self.loop.wall_s += dt
        self.loop.phase_wall_s[phase.name] = self.loop.phase_wall_s.get(phase.name, 0.0) + dt
        row.update(train_flops=self.loop.train_flops, epoch_s=dt, wall_s=self.loop.wall_s, events=events)
        self.loop.last_row = row
        if done:
            self.loop.phase += 1
            self.loop.phase_start = self.loop.epoch
            self._skip_empty_phases()
        return row

    def result(self) -> dict:
        last = self.loop.last_row or {}
        return {"arch": self.model.arch, "spec": self.model.spec, "epochs": self.loop.epoch,
                "train_loss": last.get("train_loss"), "train_acc": last.get("train_acc"),
                "val_acc": last.get("val_acc"), "best_val_acc": self.loop.best_val_acc,
                "test_acc": last.get("test_acc"), "test_top5": last.get("test_top5"),
                "params": self.stats["params"], "flops": self.stats["flops"],
                "train_flops": self.loop.train_flops, "wall_s": self.loop.wall_s,
                "phase_wall_s": dict(self.loop.phase_wall_s), "growth_events": list(self.loop.events),
                "config": self.run_config, "environment": environment(self.device)}

