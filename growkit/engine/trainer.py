"""The one training loop every method uses.

A run is a list of :class:`~growkit.engine.schedule.Phase` objects (``train``; or
``grow`` then ``finetune``), each with its learning-rate schedule. After every
epoch the loop evaluates on the validation split (and the test split, for
reporting only), and in a growing phase asks the grower what to do, through a
read-only :class:`~growkit.growers.view.GrowerView`. Growth is applied in
memory: surgery edits the model, the optimizer state is carried by parameter
name (no disk round-trip, no state lost) and the grower's initializer sets the
new weights. Then the callbacks see the metrics row (the run directory's
:class:`~growkit.engine.callbacks.Recorder` appends it to metrics.jsonl) and an atomic
checkpoint is written, so a kill at any point loses at most the current epoch.

The passes over the data (objective, precision, no host sync inside an epoch)
live in :mod:`growkit.engine.passes`.
"""
from __future__ import annotations

import dataclasses
import gc
import itertools
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from .. import data as data_mod
from ..dist import group as distributed
from ..errors import GrowkitError, NonFiniteLoss
from ..growers.view import GrowerView, ViewServices
from ..models import create, from_spec, model_stats
from . import checkpoint as ckpt
from . import optim
from .callbacks import CallbackList, ProgressBar, Recorder
from .config import TrainConfig
from .passes import Objective, Passes, derive_seed
from .records import environment, write_json
from .schedule import Phase

@dataclass
class LoopState:
    epoch: int = 0  # epochs completed
    phase: int = 0  # index of the current phase (== len(phases) when the run is finished)
    phase_start: int = 0  # epoch at which the current phase began
    train_macs: float = 0.0  # cumulative multiply-adds (forward + backward) over the images seen
    wall_s: float = 0.0  # sum of the epochs' own wall times (time lost to a crash is not counted)
    phase_wall_s: dict = field(default_factory=dict)
    events: list = field(default_factory=list)
    best_val_acc: float | None = None
    last_row: dict | None = None
    stopped_by: str | None = None  # why the growing phase ended (the grower's reason, "request", "max_grow_epochs")

    @classmethod
    def from_checkpoint(cls, loop) -> "LoopState":
        """The loop state a checkpoint holds; one written before compute was counted in multiply-adds holds
        ``train_flops`` (2 FLOPs each), read back as ``train_macs``."""
        loop = dict(loop)
        if "train_flops" in loop:
            loop["train_macs"] = loop.pop("train_flops") / 2
        return cls(**loop)


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


def _to_device(obj, device: torch.device):
    """Checkpointed state (nested dicts / lists holding tensors) with every tensor on ``device``."""
    if torch.is_tensor(obj):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: _to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_device(v, device) for v in obj]
    return obj


class Trainer:
    def __init__(self, cfg: TrainConfig, out: str | Path | None = None, *, phases: list[Phase] | None = None,
                 grower=None, data=None, run_config: dict | None = None, callbacks=(),
                 objective: Objective | None = None):
        """``callbacks``: :class:`~growkit.engine.callbacks.Callback` objects (after the run directory's recorder and
        the progress bar); ``objective(model, x, y) -> loss``: what is minimised (default cross-entropy)."""
        self.cfg = cfg = cfg.validate().resolved()
        self.device = resolve_device(cfg.device)
        # under torchrun: the process group (this rank's device); None in one process (nothing changes)
        self.group = distributed.setup()
        if self.group is not None:
            self.device = self.group.device(self.device)
        self._ddp = None  # the DDP wrapper of self.model for training passes (rebuilt after growth)
        cuda = self.device.type == "cuda"
        self.amp = (cfg.precision == "bf16") or (cfg.precision == "auto" and cuda)
        self.channels_last = cuda if cfg.channels_last is None else cfg.channels_last
        self.phases = phases or [Phase("train", cfg.lr, cfg.schedule, cfg.epochs,
                                       milestones=tuple(cfg.milestones), gamma=cfg.gamma)]
        self.grower = grower
        self.out = Path(out) if out is not None else None
        self.run_config = run_config or {"command": "train", "train": cfg.to_dict(),
                                         "environment": environment(self.device)}
        self.callbacks = list(callbacks)  # the caller's (a nested scratch run gets these, not the recorder)
        own = ([Recorder(self.out, cfg.snapshot_every)] if self.out is not None else []) + \
            ([ProgressBar()] if cfg.progress and distributed.is_main() else [])
        if cfg.curvature_every:  # first: its numbers go into the row before the recorder appends it
            from .curvature import CurvatureProbe
            own.insert(0, CurvatureProbe(cfg.curvature_every, cfg.curvature_images, cfg.curvature_probes))
        self.hooks = CallbackList(own + self.callbacks)
        self.data = data if data is not None else load_data(cfg, self.device, self.channels_last)
        if grower is not None and self.data.size("val") == 0:
            raise GrowkitError("growing needs a validation split: val_fraction must be > 0")
        self.passes = Passes(self.data, self.device, self.amp, cfg.batch_size, objective)
        self.loop = LoopState()
        self.extras: dict = {}  # method data saved in every checkpoint (JSON values and tensors) and restored
        self.growth_edits: list = []  # the edits of the latest growth step
        if cuda:
            torch.backends.cudnn.benchmark = True
        torch.manual_seed(cfg.seed)
        self.model = self._place(build_model(cfg, self.data.info))
        self.opt = self._optimizer(self.phases[0].lr)
        self.stats = model_stats(self.model)

    @property
    def objective(self) -> Objective:
        return self.passes.objective

    # ------------------------------------------------------------------ setup
    def _place(self, model):
        model = model.to(self.device)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def _optimizer(self, lr):
        return optim.build(self.model, self.cfg, lr)

    def restore(self, state: dict) -> None:
        """Continue from a loaded checkpoint (see :func:`growkit.engine.checkpoint.load`); the recorder truncates
        the run directory's records to it when :meth:`fit` starts."""
        self.model = self._place(from_spec(state["spec"]))
        self.model.load_state_dict(state["model"])
        lr = self.phases[min(state["loop"]["phase"], len(self.phases) - 1)].lr
        self.opt = optim.restore(self.model, self.cfg, state["optimizer"], lr)
        if self.grower is not None and state["grower"] is not None:
            self.grower.load_state_dict(_to_device(state["grower"], self.device))
        self.extras = _to_device(state.get("extras") or {}, self.device)
        self.loop = LoopState.from_checkpoint(state["loop"])
        self._ddp = None
        self.stats = model_stats(self.model)
        ckpt.restore_rng(state["rng"])

    # ------------------------------------------------------------------ passes
    def train_epoch(self, opt, lr_fn: Callable[[float], float] | None, seed: int, trainable=None,
                    on_batch=None) -> tuple[float, float]:
        """One pass over the training split (``trainable``: only these parameters); counts its multiply-adds."""
        model = self.model
        if distributed.collective():  # every rank trains its slice; DDP averages the gradients
            if trainable is not None:
                raise GrowkitError("training a subset of the parameters runs on rank 0 alone (distributed.solo)")
            if self._ddp is None:
                from ..dist.data_parallel import wrap
                self._ddp = wrap(self.model)
            model = self._ddp
        loss_sum, hits, count = self.passes.train_epoch(model, opt, lr_fn, seed, trainable, on_batch)
        self.loop.train_macs += self.stats["train_macs_per_image"] * count
        loss = (loss_sum / max(count, 1)).item()
        if not math.isfinite(loss):
            raise NonFiniteLoss(f"the training loss became {loss} at epoch {self.loop.epoch + 1}")
        return loss, 100.0 * hits.item() / max(count, 1)

    def evaluate(self, split: str) -> tuple[float | None, float | None, float | None]:
        """Mean loss, top-1 and top-5 accuracy (%) on a split (top-5 None with 5 classes or fewer)."""
        return self.passes.evaluate(self.model, split)

    # ------------------------------------------------------------------ growth
    def view(self, row: dict, epoch: int | None = None) -> GrowerView:
        """The read-only view a grower gets: no test fields, no trainer; data through services."""
        count = itertools.count(1)

        def train_only(params, optimizer):  # AdamInit's epochs: own seeds, multiply-adds counted
            seed = derive_seed(self.cfg.seed, self.loop.epoch, "init", next(count))
            return self.train_epoch(optimizer, None, seed, trainable=params)

        return GrowerView(epoch=self.loop.epoch - self.loop.phase_start if epoch is None else epoch,
                          global_epoch=self.loop.epoch, row=row, model=self.model, data_info=self.data.info,
                          optimizer_state=lambda: optim.state_by_name(self.model, self.opt),
                          services=ViewServices(self.passes, self.cfg.seed, train_only))

    def _on_main(self, fn, model: bool = False):
        """``fn()``'s result; under a process group computed by rank 0 alone (its raw model, whole global
        batches: what one process computes) and broadcast with the grower's state, the method extras, the
        RNG state, the multiply-add count and (``model``) the parameters and buffers. The other ranks wait."""
        if self.group is None:
            return fn()
        out = None
        if distributed.is_main():
            with distributed.solo():
                out = fn()
        if model:
            distributed.broadcast_tensors(list(self.model.parameters()) + list(self.model.buffers()))
        shared = distributed.broadcast_object({
            "out": out, "extras": self.extras, "rng": torch.get_rng_state(), "macs": self.loop.train_macs,
            "grower": self.grower.state_dict() if self.grower is not None else None}, device=self.device)
        if not distributed.is_main():
            if self.grower is not None:
                self.grower.load_state_dict(shared["grower"])
            self.extras, self.loop.train_macs = shared["extras"], shared["macs"]
            torch.set_rng_state(shared["rng"].cpu())
        return shared["out"]

    def check_ranks(self, when: str) -> None:
        """Under a process group: raise GrowkitError unless every rank holds the same model, optimizer
        state and grower state (compared by hash); nothing in one process."""
        if self.group is not None:
            grower = None if self.grower is None else self.grower.state_dict()
            distributed.check_identical(self.model, self.opt, grower, when)

    def _grower_epoch(self, phase, e0: int):
        """A grower may spend an epoch of its growing phase on parameters of its own, the net frozen
        (Gauss-Newton's morphism phases), through ``replaces_epoch(view) -> (train loss, train acc %)
        or None``; the epoch is then evaluated, recorded, timed and checkpointed like any other."""
        fn = getattr(self.grower, "replaces_epoch", None) if phase.grows and self.grower is not None else None
        if fn is None:
            return None
        out = self._on_main(lambda: fn(self.view(self.loop.last_row or {}, e0)), model=True)
        self.check_ranks(f"after the grower's epoch {self.loop.epoch + 1}")
        return out

    def _grow(self, decision, row: dict) -> dict:
        self.hooks("on_growth_start", self, decision)
        old_state = optim.state_by_name(self.model, self.opt)
        old_shapes = {n: p.shape for n, p in self.model.named_parameters()}
        before = self.model.arch
        edits = [plan.apply(self.model) for plan in decision.plans]
        self.growth_edits = edits  # for callbacks (the recorder stores their index maps for trajectories)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.stats = model_stats(self.model)
        self.opt = optim.carry(self.model, self.opt, edits, old_state, old_shapes)
        info = self._on_main(lambda: self.grower.initialize(self.model, edits, self.view(row)), model=True) or {}
        if self._ddp is not None:  # new parameters: wrap again; the old wrapper's reducer goes now (it sits
            self._ddp = None       # in reference cycles, and its hooks stay on the surviving parameters)
            gc.collect()
        self.check_ranks(f"after the growth at epoch {self.loop.epoch}")
        event = {"epoch": self.loop.epoch, "before": before, "after": self.model.arch,
                 "edits": [e.summary() for e in edits], **decision.info, **info}
        self.loop.events.append(event)
        self.hooks("on_growth", self, event)
        return event

    # ------------------------------------------------------------------ the loop
    def _checkpoint(self) -> None:
        if self.out is None:
            return
        path = self.out / "checkpoint.pt"
        ckpt.save(path, config=self.run_config, model=self.model,
                  optimizer=optim.export(self.model, self.opt), loop=dataclasses.asdict(self.loop),
                  grower=self.grower.state_dict() if self.grower is not None else None, extras=self.extras)
        self.hooks("on_checkpoint", self, path)

    def _skip_empty_phases(self) -> None:
        while self.loop.phase < len(self.phases) and self.phases[self.loop.phase].epochs == 0:
            self.loop.phase += 1

    def fit(self) -> dict:
        self._skip_empty_phases()
        self.hooks("on_fit_start", self)
        self.check_ranks("at the start")
        try:
            while self.loop.phase < len(self.phases):
                row = self._epoch()
                self.hooks("on_epoch", self, row)  # the recorder appends the row before the checkpoint
                self._checkpoint()  # (rank 0 only: the others have no run directory)
                distributed.barrier()
        finally:
            self._ddp = None  # its reducer (gradient hooks, buckets) goes now, not at interpreter exit
            self.hooks("on_fit_end", self)
        return self.result()

    def _epoch(self) -> dict:
        phase = self.phases[self.loop.phase]
        self.hooks("on_epoch_start", self)
        e0 = self.loop.epoch - self.loop.phase_start
        t0 = time.perf_counter()
        lr = phase.lr_at(e0)
        instead = self._grower_epoch(phase, e0)
        if instead is None:
            tr_loss, tr_acc = self.train_epoch(self.opt, lambda s: phase.lr_at(e0 + s),
                                               derive_seed(self.cfg.seed, self.loop.epoch),
                                               on_batch=self.hooks.batch_hook(self))
        else:
            tr_loss, tr_acc = instead
        val_loss, val_acc, _ = self.evaluate("val")
        test_loss, test_acc, test_top5 = self.evaluate("test") if self.cfg.eval_test else (None, None, None)
        self.loop.epoch += 1
        row = {"epoch": self.loop.epoch, "phase": phase.name, "lr": lr, "train_loss": tr_loss, "train_acc": tr_acc,
               "val_loss": val_loss, "val_acc": val_acc, "test_loss": test_loss, "test_acc": test_acc,
               "test_top5": test_top5,
               "arch": self.model.arch, "params": self.stats["params"], "macs": self.stats["macs"]}
        if val_acc is not None:
            self.loop.best_val_acc = max(self.loop.best_val_acc or 0.0, val_acc)
        done, events = False, []
        in_phase = self.loop.epoch - self.loop.phase_start
        if phase.grows and self.grower is not None:
            decision = self._on_main(lambda: self.grower.decide(self.view(row, in_phase)))
            if decision.plans:
                events.append(self._grow(decision, row))
            limit = phase.epochs if phase.epochs is not None else phase.max_epochs
            done = decision.done or (limit is not None and in_phase >= limit)
            if done:
                self.loop.stopped_by = self._stopped_by(decision, limit, in_phase)
                if self.grower.stop_requested and "stopped" not in self.run_config:
                    self._record_stop()
        elif phase.epochs is not None:
            done = in_phase >= phase.epochs
        dt = time.perf_counter() - t0
        self.loop.wall_s += dt
        self.loop.phase_wall_s[phase.name] = self.loop.phase_wall_s.get(phase.name, 0.0) + dt
        row.update(train_macs=self.loop.train_macs, epoch_s=dt, wall_s=self.loop.wall_s, events=events)
        self.loop.last_row = row
        if done:
            self.loop.phase += 1
            self.loop.phase_start = self.loop.epoch
            self._skip_empty_phases()
        return row

    def _record_stop(self) -> None:
        """Growing ended because someone asked (a stop button, ``request_stop``): the run is no longer the one its
        config describes, so the stop joins the config (config.json now, the checkpoints from this epoch on).
        The run cache compares configs: a later request without a stop never gets this run back."""
        self.run_config["stopped"] = {"by": getattr(self.grower, "stop_by", None) or "request",
                                      "epoch": self.loop.epoch}
        if self.out is not None and (self.out / "config.json").exists():
            write_json(self.out / "config.json", self.run_config)

    def _stopped_by(self, decision, limit, in_phase: int) -> str:
        """Why growing ended: a stop the user requested (who asked, e.g. "stop button"), the grower's own
        reason (``Decision.info["stopped_by"]``), the phase's epoch limit ("max_grow_epochs"), or (a grower that says done without a reason)
        "grower"."""
        if getattr(self.grower, "stop_requested", False):
            return getattr(self.grower, "stop_by", None) or "request"
        why = decision.info.get("stopped_by")
        if why is not None:
            return str(why)
        if not decision.done and limit is not None and in_phase >= limit:
            return "max_grow_epochs"
        return "grower"

    def result(self) -> dict:
        last = self.loop.last_row or {}
        return {"arch": self.model.arch, "spec": self.model.spec, "epochs": self.loop.epoch,
                "train_loss": last.get("train_loss"), "train_acc": last.get("train_acc"),
                "val_acc": last.get("val_acc"), "best_val_acc": self.loop.best_val_acc,
                "test_acc": last.get("test_acc"), "test_top5": last.get("test_top5"),
                "params": self.stats["params"], "macs": self.stats["macs"],
                "train_macs": self.loop.train_macs, "wall_s": self.loop.wall_s,
                "phase_wall_s": dict(self.loop.phase_wall_s), "growth_events": list(self.loop.events),
                "stopped": self.run_config.get("stopped"),  # None, or {"by", "epoch"}: growing was stopped
                "config": self.run_config, "environment": environment(self.device),
                **({"stopped_by": self.loop.stopped_by} if self.grower is not None else {})}
