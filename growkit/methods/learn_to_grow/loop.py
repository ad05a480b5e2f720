"""Learn to Grow (Li, Zhou, Wu, Socher, Xiong, ICML 2019): continual learning by choosing, per
layer and per task, to reuse, adapt or add new parameters; and the baselines it is compared with.

For every task of a :class:`growkit.methods.learn_to_grow.continual.TaskStream`:

1. search (:mod:`growkit.methods.learn_to_grow.search`): the relaxed super network of every
   layer's candidates, alpha on the task's validation split, weights on its training
   split, first-order DARTS; the first task has only ``new`` and skips the search;
2. keep the argmax per layer and train that structure (the searched weights as the
   start, ``train_epochs`` epochs, SGD with a cosine schedule by default); tasks without a search (the first
   one, and every task of the baselines) train for ``search_epochs + train_epochs`` epochs, so every
   method gets the same number of weight-update epochs per task;
3. freeze everything learned (:meth:`SuperNet.freeze`), evaluate every task seen so
   far on its test split (one row of the accuracy matrix), save a per-task checkpoint.

Methods (``method``):

* ``l2g``: the search above (``deeper`` adds the deeper choice);
* ``separate``: ``new`` at every layer for every task (a separate network per task);
* ``frozen``: the first task's conv and linear weights shared and frozen for every
  later task, which gets its own BNs and head (``reuse`` forced everywhere: what
  Learn to Grow would be if it never chose anything else);
* ``finetune``: one network, every weight and BN shared and trained on each task in
  turn, a head per task (heads of earlier tasks are kept as they were): forgets;
* ``ewc``: fine-tuning plus elastic weight consolidation (Kirkpatrick et al., 2017): after
  task ``k`` the diagonal of the (empirical) Fisher information ``F_k`` of the shared weights
  and BNs is computed on up to ``ewc_samples`` of its training images, one gradient per image
  (:func:`fisher_diagonal`), and later tasks train on cross-entropy plus
  ``ewc_lambda / 2 * sum_k sum_i F_k,i (theta_i - theta*_k,i)^2`` (:func:`ewc_penalty`);
* ``joint``: multi-task training, the upper bound: one shared network, a head per task, and
  after task ``i`` arrives it trains on the union of tasks 0..i (every image with its own
  task's head), continuing from the previous stage, for the same epochs as every method.

``tune_reuse`` (with ``l2g``) is the paper's "tuned reuse": the copies a task reuses are trained with
it, so earlier tasks that share them change (backward transfer can be positive or negative).

The per-task outer loop is its own (the :class:`growkit.engine.trainer.Trainer` trains one spec'd model over
one dataset; here a task's search alternates two optimizers over two splits on a relaxed network that
exists only during the search, and every forward takes a task id), but every step inside it runs on the
shared engine (:mod:`growkit.methods.learn_to_grow.steps`): weight and alpha steps through
:class:`growkit.engine.passes.Passes` (precision, slicing under a process group), the learning rate from a
:class:`growkit.engine.schedule.Phase`, the optimizers from :func:`growkit.engine.optim.build`, checkpoint
format 2, and :class:`L2GConfig` is a :class:`growkit.engine.config.TrainConfig` with the loop's options added.

Deviations from the paper, all visible in :class:`L2GConfig`: reused layers are
not fine-tuned unless ``tune_reuse`` (the paper studies both); every task has its
own BatchNorm on every layer, reuse included (counted in its parameters and in the
cost of every choice); the linear adapter is low-rank (``adapter_rank``); the
structure regulariser's form, the warm-up, the architecture learning rate and the
``new_init`` default are ours; the conv backbone is a small plain conv stack from
the registry with one hidden linear layer, not the paper's ResNet-18.
"""
from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

from ...engine import flags
from ...engine.config import SCHEDULES, TrainConfig
from ...engine.flags import opt
from ...errors import GrowkitError
from . import continual, steps
from . import ddp as l2g_ddp
from .search import SearchNet, search
from .baselines import (JointData, JointForward, SharedNet, ewc_objective, ewc_penalty,  # noqa: F401 (re-exported)
                        fisher_diagonal, joint_objective)
from .supernet import BACKBONES, OPS, SuperNet, defs_from_registry, numel

METHODS = ("l2g", "separate", "frozen", "finetune", "ewc", "joint")
SHARED = ("finetune", "ewc", "joint")  # the methods on one shared network (SharedNet)


def _unused(name: str):
    """A :class:`TrainConfig` field the continual loop does not use: no flag, and it must keep its default."""
    f = next(f for f in dataclasses.fields(TrainConfig) if f.name == name)
    return opt(f.default, default_factory=f.default_factory, cli=False)


@dataclass
class L2GConfig(TrainConfig):
    """Everything a Learn-to-Grow run needs (its flags are generated from these fields): the training settings
    of :class:`TrainConfig` (optimizer, lr, schedule, batch size, data, seeds, device, precision), with Learn to
    Grow's defaults, and the continual loop's own options."""
    model: str = opt("Plain3Net", choices=BACKBONES,
                     help="backbone whose layers are searched: Plain3Net or Plain4Net (convs, then --hidden), or "
                          "MLP (--hidden only; the paper's for permuted MNIST)")
    depths: list[int] = opt(default_factory=lambda: [1, 1, 1], parse=flags.depths, help="blocks per stage, e.g. 1-1-1")
    widths: list[int] | None = opt(None, parse=flags.depths, help="filters per stage (default: the registry's)")
    batch_size: int = opt(64, help="batch size of training and of the alpha steps")
    lr: float = opt(0.05, help="learning rate of the weights (its schedule runs within each search and training)")
    schedule: str = opt("cosine", choices=SCHEDULES, help="constant, staircase or cosine (to 0), per search and "
                                                         "per training")
    # TrainConfig fields without a meaning here (a task's epochs are search_epochs and train_epochs)
    epochs: int = _unused("epochs")
    fraction: float = _unused("fraction")
    channels_last: bool | None = _unused("channels_last")
    eval_test: bool = _unused("eval_test")
    snapshot_every: int = _unused("snapshot_every")
    progress: bool = _unused("progress")
    curvature_every: int = _unused("curvature_every")
    curvature_images: int = _unused("curvature_images")
    curvature_probes: int = _unused("curvature_probes")
    # the continual loop's own options
    stream: str = opt("split", choices=continual.STREAMS,
                      help="split (the classes in disjoint tasks) or permuted (all classes, a pixel permutation "
                           "per task)")
    tasks: int = opt(5, help="number of tasks (a split: the classes must split evenly)")
    order: str = opt("natural", choices=("natural", "random"), help="class order before splitting (random: seeded)")
    method: str = opt("l2g", choices=METHODS, help="l2g, or a baseline: separate, frozen, finetune, ewc, joint")
    deeper: bool = opt(False, help="offer the deeper choice (a ZeroInit residual block after a conv layer)")
    hidden: list[int] = opt(default_factory=lambda: [64], parse=flags.depths,
                            help="hidden linear layers after the convs, searched too (e.g. 64 or 64-32)")
    search_epochs: int = opt(20, help="epochs of the structure search per task")
    warmup: int = opt(10, help="search epochs that train only the weights (alpha stays uniform)")
    train_epochs: int = opt(20, help="epochs of training the chosen structure per task")
    arch_lr: float = opt(0.05, help="Adam learning rate of alpha (ours; DARTS uses 3e-4)")
    arch_weight_decay: float = opt(1e-3, help="weight decay of alpha (DARTS)")
    cost: float = opt(0.1, help="weight of the parameter-cost term of the alpha objective")
    new_init: str = opt("reinit", choices=("reinit", "copy"),
                        help="new copies: reinit (He) or copy (of the newest copy, with its BN)")
    adapter_rank: int = opt(4, help="rank of the linear layers' adapter (0: a full linear map)")
    tune_reuse: bool = opt(False, help="l2g: train the reused copies with the task too (the paper's tuned "
                                       "reuse; earlier tasks change)")
    ewc_lambda: float = opt(100.0, help="ewc: weight of the Fisher penalty")
    ewc_samples: int = opt(256, help="ewc: training images per task for the Fisher diagonal")

    @classmethod
    def from_dict(cls, d: dict) -> "L2GConfig":
        """The config a run recorded. One written before learn-to-grow trained through the shared passes has no
        ``precision``: it trained in fp32 everywhere, and a resume of it goes on in fp32."""
        if isinstance(d, dict) and "precision" not in d:
            d = {**d, "precision": "fp32"}
        return super().from_dict(d)

    def validate(self) -> "L2GConfig":
        """One-line errors for every bad value, before anything is written."""
        if self.model == "MLP":  # not a registry model: TrainConfig's checks on the conv default's size instead
            TrainConfig.validate(dataclasses.replace(self, model="Plain3Net"))
        else:
            super().validate()  # TrainConfig's checks: types, ranges, optimizer, device, backbone size
        for f in dataclasses.fields(TrainConfig):
            if f.name in _UNUSED and getattr(self, f.name) != getattr(_TRAIN_DEFAULTS, f.name):
                raise GrowkitError(f"learn-to-grow does not use {f.name}" + (
                    "; a task trains search_epochs + train_epochs epochs" if f.name == "epochs" else ""))
        from . import checks
        checks.options(self, METHODS)  # learn-to-grow's own options
        checks.config(self)  # seeds, the architecture's rate and decay, epochs, the worst case's memory
        return self


_UNUSED = ("epochs", "fraction", "channels_last", "eval_test", "snapshot_every", "model_kw", "curvature_every",
           "curvature_images", "curvature_probes")
_TRAIN_DEFAULTS = TrainConfig()


# ----------------------------------------------------------------------------- one task

def fit(model: nn.Module, task: int, trainable: nn.Module, data, cfg: L2GConfig, seed: int, epochs: int,
        objective=None, forward: nn.Module | None = None) -> float:
    """Train the parameters of ``trainable`` (a container of the modules this task may change) of
    ``model(x, task)`` (or of ``forward(x)`` if given) on one task's training split (or ``data``'s) with
    ``cfg.optimizer`` from growkit's registry, through the shared passes
    (:mod:`growkit.methods.learn_to_grow.steps`) with ``objective`` (default: cross-entropy); returns the last
    (global) batch's loss. Under torchrun every rank trains its slice of each global batch through DDP (see
    :mod:`growkit.methods.learn_to_grow.ddp`)."""
    from ...engine import optim
    if epochs == 0 or not any(True for _ in trainable.parameters()):
        return float("nan")
    opt = optim.build(trainable, cfg, cfg.lr)
    passes, lr, last = steps.task_passes(data, cfg, objective), steps.Schedule(cfg, epochs), steps.LastBatch()
    with l2g_ddp.training(forward if forward is not None else steps.TaskForward(model, task), trainable) as wrapped:
        for epoch in range(epochs):
            loss, _, n = passes.train_epoch(wrapped, opt, None, seed * 1000 + 500 + epoch,
                                            lr_step=lr, before_step=last.batch,
                                            on_batch=last.on_batch)
            steps.check_finite(loss, n, data, "training", epoch)
    model.eval()
    return last.mean()


def task_epochs(cfg: L2GConfig) -> int:
    """Epochs of weight updates every task gets: a task with a search spends ``search_epochs`` of them
    on the relaxed super network and ``train_epochs`` on the chosen structure; a task without one (the
    first task, every baseline's task) trains its structure for all of them. A fair budget."""
    return cfg.search_epochs + cfg.train_epochs


def allowed_ops(cfg: L2GConfig, t: int) -> tuple[str, ...]:
    if t == 0 or cfg.method == "separate":
        return ("new",)
    if cfg.method == "frozen":
        return ("reuse",)
    return OPS


def learn_task(net: SuperNet, t: int, data, cfg: L2GConfig) -> dict:
    """Search (when there is a choice), keep the argmax, train it, freeze. Returns the task's record."""
    seed = cfg.seed * 7919 + t
    torch.manual_seed(seed)
    new_init = "reinit" if cfg.method == "separate" else cfg.new_init
    snet = SearchNet(net, data.info.num_classes, allowed_ops(cfg, t), cfg.deeper and cfg.method == "l2g",
                     new_init).to(data.device)
    l2g_ddp.from_main(snet)  # under torchrun: new layers, adapters and BNs as rank 0 initialised them
    rec: dict = {}
    searched = snet.searchable and cfg.search_epochs > 0
    if searched:
        rec.update(search(snet, data, cfg, seed=seed))
        l2g_ddp.from_main(snet)  # the architecture is read from rank 0's alpha (and weights), on every rank
    rec["alpha"] = snet.weights_table()
    path, new = snet.materialize()
    t = net.add_task(path, new)
    trainable = net.trainable_modules(t, cfg.tune_reuse)
    for p in trainable.parameters():  # tuned reuse: the reused copies, frozen since their task, train again
        p.requires_grad_(True)
    rec["train_loss"] = fit(net, t, trainable, data, cfg, seed,
                            cfg.train_epochs if searched else task_epochs(cfg))
    net.freeze()
    rec["choices"] = [f"{op}:{j}" for op, j in net.paths[t].choices]
    rec["params"] = net.task_params(t)
    return rec


# ----------------------------------------------------------------------------- the stream

def build_net(cfg: L2GConfig, stream: continual.TaskStream) -> nn.Module:
    x0 = stream.tasks[0]
    cin, size = x0.info.channels, x0.image_size[0]
    defs = defs_from_registry(cfg.model, cfg.depths, list(cfg.widths) if cfg.widths else None, tuple(cfg.hidden),
                              cin, size, cfg.adapter_rank)
    if cfg.method in SHARED:
        return SharedNet(defs, cin, size, stream.num_classes,
                         ewc_tasks=len(stream) if cfg.method == "ewc" else 0).to(x0.device)
    return SuperNet(defs, cin, size).to(x0.device)


def evaluate_row(net: nn.Module, stream: continual.TaskStream, upto: int) -> list:
    net.eval()
    row = [continual.accuracy(lambda x, j=j: net(x, j), stream.tasks[j]) for j in range(upto + 1)]
    return row + [None] * (len(stream) - upto - 1)


def save_task(out: Path, t: int, net: nn.Module, state: dict, cfg: L2GConfig) -> None:
    """``tasks/task_<t>.pt``: a growkit checkpoint (format 2, atomic) with the network's structure in
    ``spec``, its weights, and the accuracy-matrix rows and per-task records so far in ``extras``.
    No optimizer state is kept: every task (and every search) starts a fresh optimizer."""
    from ...engine import checkpoint
    d = out / "tasks"
    d.mkdir(parents=True, exist_ok=True)
    checkpoint.save(d / f"task_{t}.pt", config=asdict(cfg), model=net,
                    optimizer={"kind": cfg.optimizer, "groups": [], "state": {}},
                    loop={"tasks_done": t + 1}, extras={"learn_to_grow": state})


def load_task(path: Path, cfg: L2GConfig, stream: continual.TaskStream,
              t: int | None = None) -> tuple[nn.Module, dict]:
    """The network and records of a task checkpoint. With ``t`` (a resume), it must be task ``t``'s checkpoint
    of this very run: the run's options, finite weights, the configured layers (:mod:`.checks`)."""
    from ...engine import checkpoint
    from . import checks
    if t is None:
        ck = checkpoint.load(path)
        if "learn_to_grow" not in ck["extras"]:
            raise GrowkitError(f"{path} is not a learn-to-grow task checkpoint")
    else:
        ck = checks.task_checkpoint(path, t, cfg, build_net(cfg, stream).spec)
    try:
        return net_from(ck["spec"], ck["model"], cfg, stream), ck["extras"]["learn_to_grow"]
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError, AttributeError) as e:
        raise checks.fit_error(path, e) from None


def net_from(spec: dict, weights: dict, cfg: L2GConfig, stream: continual.TaskStream) -> nn.Module:
    """The network a checkpoint's (or rank 0's) ``spec`` and weights describe, on the stream's device."""
    net = SuperNet.from_structure(spec) if spec.get("name") == "SuperNet" else build_net(cfg, stream)
    net.load_state_dict(weights)
    return net.to(stream.tasks[0].device).eval()


def initial(cfg: L2GConfig, stream: continual.TaskStream, out: Path | None) -> tuple[nn.Module, dict]:
    """The network and state the stream starts from: the last task checkpoint in ``out``, else a new net.
    ``out/tasks`` may hold only this run's checkpoints (:func:`growkit.methods.learn_to_grow.checks.task_files`)."""
    from . import checks
    found = checks.task_files(out, len(stream)) if out else []
    if not found:
        return build_net(cfg, stream), {"rows": [], "records": []}
    t, path = found[-1]
    return load_task(path, cfg, stream, t)


def run_stream(cfg: L2GConfig, stream: continual.TaskStream, out: str | Path | None = None,
               stop_after: int | None = None) -> dict:
    """Learn every task of ``stream`` in turn (resuming from ``out/tasks`` if it holds checkpoints).

    ``stop_after``: return after that many tasks have been learned in this call (a clean stand-in
    for a kill between tasks, used by tests). Returns the summary (see :func:`summarize`).
    """
    cfg.validate()
    out = Path(out) if out is not None else None
    net, state = initial(cfg, stream, out)
    save = None if out is None else (lambda t, net, state: save_task(out, t, net, state, cfg))
    return learn_stream(cfg, stream, net, state, save, stop_after)


def learn_shared(net: SharedNet, t: int, stream: continual.TaskStream, cfg: L2GConfig) -> dict:
    """Task ``t`` on the shared network: fine-tuning and EWC train everything shared plus the task's head on
    the task (EWC with its penalty, then it records the task's Fisher diagonal and anchor); joint trains
    everything shared and the heads of tasks 0..t on their pooled data."""
    seed = cfg.seed * 7919 + t
    torch.manual_seed(seed)
    data = stream.tasks[t]
    if cfg.method == "joint":
        pool = JointData(stream.tasks[:t + 1])
        trainable = nn.ModuleDict({"layers": net.layers, "bns": net.bns,
                                   "heads": nn.ModuleList(net.heads[:t + 1])})
        loss = fit(net, t, trainable, pool, cfg, seed, task_epochs(cfg),
                   objective=joint_objective(pool.offsets, [d.info.num_classes for d in pool.tasks]),
                   forward=JointForward(net, t))
    else:
        trainable = nn.ModuleDict({"layers": net.layers, "bns": net.bns, "head": net.heads[t]})
        objective = ewc_objective(net, cfg.ewc_lambda) if cfg.method == "ewc" else None
        loss = fit(net, t, trainable, data, cfg, seed, task_epochs(cfg), objective=objective)
        if cfg.method == "ewc":
            fisher = fisher_diagonal(net, t, data, cfg.ewc_samples, seed)
            with torch.no_grad():
                net.ewc_fisher[t] = fisher
                net.ewc_anchor[t] = torch.cat([p.detach().flatten() for p in net.shared_parameters()])
    net.eval()
    return {"train_loss": loss, "choices": None, "alpha": None,
            "params": numel(net) - sum(numel(h) for h in net.heads[1:]) if t == 0 else numel(net.heads[t])}


def learn_stream(cfg: L2GConfig, stream: continual.TaskStream, net: nn.Module, state: dict,
                 save: Callable[[int, nn.Module, dict], None] | None = None, stop_after: int | None = None) -> dict:
    """Learn the tasks after those in ``state`` on ``net``; ``save(t, net, state)`` after each task (e.g.
    :func:`save_task`). Under torchrun every rank runs this with the same network and state (rank 0's), rank 0
    alone with ``save``: it writes each task's checkpoint, the others wait for it (a barrier), and every rank's
    network and records are compared by hash."""
    from ...dist import group as distributed
    done, first, t0 = 0, len(state["rows"]), time.perf_counter()
    for t in range(len(state["rows"]), len(stream)):
        if stop_after is not None and done >= stop_after:
            break
        t_task = time.perf_counter()
        data = stream.tasks[t]
        if isinstance(net, SuperNet):
            rec = learn_task(net, t, data, cfg)
        else:
            rec = learn_shared(net, t, stream, cfg)
        state["rows"].append(evaluate_row(net, stream, t))
        state["records"].append(rec)
        done += 1
        if distributed.is_main():
            now = time.perf_counter()
            print(task_line(t, len(stream), rec, state["rows"][-1], now - t_task,
                            (now - t0) / (t + 1 - first) * (len(stream) - t - 1)), file=sys.stderr, flush=True)
        if save is not None:
            save(t, net, state)
        if distributed.group() is not None:
            distributed.barrier()  # the checkpoint is on disk before any rank goes on
            distributed.check_identical(net, None, state, when=f"after task {t}")
    return summarize(cfg, stream, net, state)


def task_line(t: int, n: int, rec: dict, row: list, took_s: float, eta_s: float) -> str:
    """One progress line per learned task: what it chose, its parameters, the accuracies so far, an ETA."""
    seen = [a for a in row if a is not None]
    choices = ", ".join(rec["choices"]) if rec.get("choices") else "shared net"
    return (f"task {t + 1}/{n}: {choices}; {rec['params']:,} new params; test acc on it {row[t]:.2f}%, "
            f"average over tasks so far {sum(seen) / len(seen):.2f}%; {took_s:.1f} s, ETA {eta_s:.0f} s")


def summarize(cfg: L2GConfig, stream: continual.TaskStream, net: nn.Module, state: dict) -> dict:
    res = {"method": cfg.method, "deeper": cfg.deeper, "tune_reuse": cfg.tune_reuse, "dataset": stream.dataset,
           "stream": cfg.stream, "model": cfg.model, "classes": stream.classes,
           "tasks_done": len(state["rows"]), "config": asdict(cfg),
           "params_per_task": [r["params"] for r in state["records"]],
           "choices": [r["choices"] for r in state["records"]],
           "alpha": [r["alpha"] for r in state["records"]],
           "total_params": numel(net),
           # the network grows task by task: it stops when the stream is learned (or a caller's stop_after)
           "stopped_by": "all_tasks" if len(state["rows"]) == len(stream) else "stop_after"}
    if len(state["rows"]) == len(stream):
        res.update(continual.summary(state["rows"]))
    else:
        res["accuracy_matrix"] = state["rows"]
    return res
