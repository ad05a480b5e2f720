"""Learn-to-Grow's own checks, in one line each, before anything is trained or written.

* :func:`config`: the continual loop's limits beyond :class:`growkit.engine.config.TrainConfig`'s (which
  :meth:`L2GConfig.validate` runs first): a seed whose derived per-task and per-epoch seeds fit torch's
  64 bits, the architecture optimizer's rate and decay in the weights' ranges, at least one epoch per
  task, and a network whose worst case (a new copy of every layer for every task) fits the device.
* :func:`task_files` and :func:`task_checkpoint`: on resume, the ``tasks/`` folder holds only this run's
  ``task_<t>.pt`` (``t`` below the stream's task count), and the checkpoint resumed from was written by this
  run (the same options), holds finite weights and a network of the configured layers.
"""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import torch

from ...engine.records import TMP_SUFFIX, one_line
from ...errors import GrowkitError

# Learn to Grow derives its seeds by products (seed * 7919 per task, * 1000 per epoch, and more inside a
# pass), up to about 8e9 times the run's seed; torch's seeds are 64-bit, so the run's seed stays below 2**30.
MAX_SEED = 2 ** 30 - 1
MAX_ARCH_LR = 10.0  # as TrainConfig's lr: beyond, Adam's steps on alpha saturate the softmax at once
_TASK_FILE = re.compile(r"task_(0|[1-9][0-9]{0,8})\.pt")


def config(cfg) -> None:
    """The limits of a :class:`L2GConfig` that :class:`TrainConfig`'s checks do not know of."""
    if not 0 <= cfg.seed <= MAX_SEED:
        raise GrowkitError(f"seed must be in 0..2**30-1 for learn-to-grow (it derives per-task and per-epoch "
                           f"seeds from it by multiplication), got {cfg.seed}")
    if not 0 < cfg.arch_lr <= MAX_ARCH_LR:
        raise GrowkitError(f"arch_lr must be > 0 and at most {MAX_ARCH_LR:g}, got {cfg.arch_lr}")
    if not 0 <= cfg.arch_weight_decay < 1:
        raise GrowkitError(f"arch_weight_decay must be in [0, 1), got {cfg.arch_weight_decay}")
    if cfg.search_epochs + cfg.train_epochs == 0:
        raise GrowkitError("search_epochs + train_epochs must be > 0: with neither, no task would be trained")
    _check_fits(cfg)


def _check_fits(cfg) -> None:
    """Parameters of the worst case (every task adds a new copy of every layer, with its BatchNorm, and a
    head), counted from the layer shapes alone, against the device's memory as TrainConfig counts it."""
    from ...data.catalog import dataset_info
    from ...engine.config import BYTES_PER_PARAM, _memory_bytes, _skip_meta_normal
    from .supernet import defs_from_registry
    info = dataset_info(cfg.dataset)
    with torch.device("meta"), _skip_meta_normal():  # the backbone's shapes only: no memory, no init
        defs = defs_from_registry(cfg.model, cfg.depths, list(cfg.widths) if cfg.widths else None,
                                  tuple(cfg.hidden), info.channels, info.image_size)
    per_task = sum(d.cin * d.cout * d.k * d.k + 3 * d.cout for d in defs) + (defs[-1].cout + 1) * info.num_classes
    n = per_task * cfg.tasks
    mem, where = _memory_bytes(cfg.device)
    if n * BYTES_PER_PARAM > mem:
        raise GrowkitError(f"learn-to-grow's network for {cfg.tasks} tasks may reach {n:,} parameters (a new copy "
                           f"of every layer per task): about {n * BYTES_PER_PARAM / 1e9:,.1f} GB to train, more "
                           f"than the {mem / 1e9:,.1f} GB of {where}; use smaller widths or hidden sizes")


def task_files(out: Path, n_tasks: int) -> list[tuple[int, Path]]:
    """The task checkpoints in ``out/tasks``, by task: only ``task_<t>.pt`` with ``t < n_tasks`` (files named
    otherwise that do not start with ``task_`` are left alone, and a kill's temporary file is skipped)."""
    d = Path(out) / "tasks"
    if not d.exists() and not d.is_symlink():
        return []
    if d.is_symlink() or not d.is_dir():
        raise GrowkitError(f"{d} is not a folder; a learn-to-grow run keeps its task checkpoints there")
    found = []
    for p in d.iterdir():
        if not p.name.startswith("task_") or p.name.endswith(TMP_SUFFIX):
            continue
        m = _TASK_FILE.fullmatch(p.name)
        if m is None:
            raise GrowkitError(f"{p} is not a task checkpoint growkit writes (task_<t>.pt); move it out of {d}")
        t = int(m[1])
        if t >= n_tasks:
            raise GrowkitError(f"{p} is stray: this run has {n_tasks} tasks (task_0.pt .. task_{n_tasks - 1}.pt); "
                               "move it away")
        if p.is_symlink() or not p.is_file():
            raise GrowkitError(f"{p} is not a regular file")
        found.append((t, p))
    return sorted(found)


def task_checkpoint(path: Path, t: int, cfg, fresh_spec: dict) -> dict:
    """Task ``t``'s checkpoint, loaded and checked against the run: written by learn-to-grow, with the run's
    options (a checkpoint of another run would continue another network), finite weights, and a network of
    the run's layers (``fresh_spec``: the spec of the network the run's options build) that has learned
    exactly ``t + 1`` tasks."""
    from ...engine import checkpoint
    ck = checkpoint.load(path)
    extras = ck["extras"].get("learn_to_grow") if isinstance(ck["extras"], dict) else None
    if not isinstance(extras, dict) or not isinstance(ck["config"], dict):
        raise GrowkitError(f"{path} is not a learn-to-grow task checkpoint")
    theirs = _options(type(cfg), ck["config"], path)
    mine = dataclasses.replace(cfg).validate().to_dict()  # as the run recorded it: its defaults resolved
    diff = next((k for k in sorted(set(theirs) | set(mine)) if theirs.get(k) != mine.get(k)), None)
    if diff is not None:
        raise GrowkitError(f"{path} belongs to another run (checkpoint vs config.json differ in {diff}: "
                           f"{theirs.get(diff)!r} vs {mine.get(diff)!r}); move it away to redo that task")
    weights = ck["model"] if isinstance(ck["model"], dict) else {}
    bad = [k for k, v in weights.items() if torch.is_tensor(v) and v.is_floating_point()
           and not bool(torch.isfinite(v).all())]
    if bad:
        raise GrowkitError(f"{path} holds non-finite weights ({len(bad)} of {len(weights)} tensors, first "
                           f"{bad[0]}); it cannot be resumed")
    rows = extras.get("rows")
    if not isinstance(rows, list) or len(rows) != t + 1 or not isinstance(extras.get("records"), list) \
            or len(extras["records"]) != t + 1:
        raise GrowkitError(f"{path} does not match its records (task {t} needs {t + 1} accuracy rows)")
    spec = ck["spec"] if isinstance(ck["spec"], dict) else {}
    shape = {k: v for k, v in spec.items() if k not in ("owner", "tasks")}
    want = {k: v for k, v in fresh_spec.items() if k not in ("owner", "tasks")}
    if json.loads(json.dumps(want)) != shape:
        raise GrowkitError(f"{path} holds a network of other layers than the run's options give; it cannot be "
                           "resumed")
    if spec.get("name") == "SuperNet":
        tasks, owner = spec.get("tasks"), spec.get("owner")
        if not isinstance(tasks, list) or len(tasks) != t + 1 or not isinstance(owner, list) or any(
                not isinstance(o, list) or len(o) > t + 1 for o in owner):
            raise GrowkitError(f"{path} does not match its records (its network has not learned {t + 1} tasks)")
    return ck


def _options(config_class, recorded: dict, path: Path) -> dict:
    try:
        return config_class.from_dict(recorded).to_dict()  # defaults of options added since, filled in
    except (GrowkitError, TypeError, ValueError) as e:
        raise GrowkitError(f"{path} belongs to another run or is damaged (its options: {one_line(e)})") from None


def fit_error(path: Path, e: Exception) -> GrowkitError:
    return GrowkitError(f"{path} does not fit the run's network: {one_line(e)}")


MAX_PERMUTED_TASKS = 100  # a permuted stream holds a permuted copy of the data per task


def options(cfg, methods) -> None:
    """learn-to-grow's own options (``methods``: the valid ``method`` values), one line for each bad one."""
    from ...engine.config import MAX_EPOCHS
    from . import continual
    from .supernet import BACKBONES
    if cfg.method not in methods:
        raise GrowkitError(f"unknown method {cfg.method!r}; valid: {', '.join(methods)}")
    if cfg.new_init not in ("reinit", "copy"):
        raise GrowkitError(f"new_init must be reinit or copy, got {cfg.new_init!r}")
    for k in ("search_epochs", "train_epochs"):
        v = getattr(cfg, k)
        if not 0 <= v <= MAX_EPOCHS:
            raise GrowkitError(f"{k} must be in 0..{MAX_EPOCHS}, got {v!r}")
    if cfg.val_fraction is not None and not 0 < cfg.val_fraction < 1:
        raise GrowkitError(f"val_fraction must be in (0, 1) (the search needs a validation split), got "
                           f"{cfg.val_fraction}")
    if cfg.stream not in continual.STREAMS:
        raise GrowkitError(f"unknown stream {cfg.stream!r}; valid: {', '.join(continual.STREAMS)}")
    if cfg.stream == "permuted" and not 2 <= cfg.tasks <= MAX_PERMUTED_TASKS:
        raise GrowkitError(f"a permuted stream needs 2..{MAX_PERMUTED_TASKS} tasks (each holds its own permuted "
                           f"copy of the data; the paper's permuted MNIST has 10-20), got {cfg.tasks}")
    if cfg.model not in BACKBONES:
        raise GrowkitError(f"unknown backbone {cfg.model!r}; valid: {', '.join(BACKBONES)}")
    if isinstance(cfg.adapter_rank, bool) or not isinstance(cfg.adapter_rank, int) or cfg.adapter_rank < 0:
        raise GrowkitError(f"adapter_rank must be a non-negative integer, got {cfg.adapter_rank!r}")
    if cfg.tune_reuse and cfg.method != "l2g":
        raise GrowkitError(f"tune_reuse applies to l2g only, not {cfg.method}")
    if not (isinstance(cfg.ewc_lambda, (int, float)) and 0 <= cfg.ewc_lambda < float("inf")):
        raise GrowkitError(f"ewc_lambda must be a finite number >= 0, got {cfg.ewc_lambda!r}")
    if isinstance(cfg.ewc_samples, bool) or not isinstance(cfg.ewc_samples, int) or cfg.ewc_samples < 1:
        raise GrowkitError(f"ewc_samples must be a positive integer, got {cfg.ewc_samples!r}")
    if not 0 <= cfg.warmup <= cfg.search_epochs:
        raise GrowkitError(f"warmup must be in [0, search_epochs], got {cfg.warmup}")
    for k in ("lr", "arch_lr"):
        if not getattr(cfg, k) > 0:
            raise GrowkitError(f"{k} must be positive, got {getattr(cfg, k)}")
    for k in ("arch_weight_decay", "cost"):
        if not getattr(cfg, k) >= 0:
            raise GrowkitError(f"{k} must be non-negative, got {getattr(cfg, k)}")
