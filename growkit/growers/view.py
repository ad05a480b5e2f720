"""What a grower may see: a read-only view of the run, built by the trainer after each epoch.

The view exists so that two mistakes are impossible rather than merely discouraged:

* the test set driving growth (the official AutoGrow code did that): the metrics
  row hides every ``test_*`` field and reading one raises, and :meth:`GrowerView.batches`
  refuses the test split;
* a grower reaching into the trainer (stepping or rebuilding the optimizer, moving
  to another phase): the view holds no trainer, only the services below.

Services, all on the training device:

* :meth:`batches` - mini-batches of a split (``n=None``: one epoch);
* :meth:`probe` - forward (and backward) passes with temporary forward hooks, for
  activation or gradient statistics; it never steps the optimizer and restores
  ``.grad``, train/eval mode and (in train mode) the BatchNorm running statistics;
* :meth:`train_epoch` - one epoch training only some parameters with an optimizer of
  the caller's own (AdamInit); it counts in the run's training multiply-adds and epoch time.
"""
from __future__ import annotations

import contextlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Callable, Iterator

import torch

from ..engine.passes import derive_seed
from ..errors import GrowkitError

TEST_PREFIX = "test_"


def _forbid(key) -> None:
    if isinstance(key, str) and key.startswith(TEST_PREFIX):
        raise GrowkitError(f"a grower may not read {key!r}: test metrics are for reporting only")


class ReadOnlyRow(Mapping):
    """An epoch's metrics without its test fields; reading (or asking for) one raises GrowkitError."""

    def __init__(self, row: Mapping):
        self._row = dict(row)

    def __getitem__(self, key):
        _forbid(key)
        return self._row[key]

    def __contains__(self, key) -> bool:
        _forbid(key)
        return key in self._row

    def __iter__(self) -> Iterator[str]:
        return (k for k in self._row if not k.startswith(TEST_PREFIX))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"ReadOnlyRow({dict(self)!r})"


def _read_only_state(state: dict) -> Mapping:
    """Optimizer state by parameter name as read-only mappings of detached copies (the live
    tensors stay the trainer's): costs one copy of the state, made only when a grower asks."""
    return MappingProxyType({n: MappingProxyType({k: (v.detach().clone() if torch.is_tensor(v) else v)
                                                  for k, v in s.items()}) for n, s in state.items()})


class GrowerView:
    """Read-only access to the run for :meth:`Grower.decide` and :meth:`Grower.initialize`.

    ``epoch``: epochs completed in the growing phase; ``global_epoch``: in the run;
    ``row``: that epoch's metrics (:class:`ReadOnlyRow`); ``model``: the live model (read it,
    never edit it: return plans); ``data_info``: the dataset's :class:`DatasetInfo`.
    """

    def __init__(self, *, epoch: int, global_epoch: int, row: Mapping, model, data_info=None,
                 optimizer_state: Callable[[], dict] | None = None, services=None):
        self._epoch, self._global_epoch = epoch, global_epoch
        self._row = row if isinstance(row, ReadOnlyRow) else ReadOnlyRow(row)
        self._model, self._data_info = model, data_info
        self._state_fn, self._state = optimizer_state, None
        self._services = services

    epoch = property(lambda self: self._epoch)
    global_epoch = property(lambda self: self._global_epoch)
    row = property(lambda self: self._row)
    model = property(lambda self: self._model)
    data_info = property(lambda self: self._data_info)

    @property
    def optimizer_state(self) -> Mapping:
        """``{parameter name: {state key: tensor copy}}``, read-only."""
        if self._state is None:
            self._state = _read_only_state(self._state_fn() if self._state_fn is not None else {})
        return self._state

    def _need(self, what: str):
        if self._services is None:
            raise GrowkitError(f"this view has no data: {what} needs a view built by the trainer")
        return self._services

    def batches(self, n: int | None = None, split: str = "train", augment: bool = True,
                seed: int | None = None, batch_size: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Up to ``n`` mini-batches (None: one pass) of ``split`` (train or val) on the training device, at the
        training batch size unless ``batch_size``. Train with ``augment``: shuffled and augmented, seeded by
        ``seed`` (default: from the run seed and this epoch); otherwise the split in stored order."""
        if split not in ("train", "val"):
            raise GrowkitError(f"a grower may read the train or val split, not {split!r}")
        return self._need("batches()").batches(n, split, augment, seed, batch_size, self._global_epoch)

    def eval_batches(self, split: str = "train") -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The whole split, unaugmented, in stored order and the data's evaluation batching
        (what BatchNorm statistics are measured on)."""
        if split not in ("train", "val"):
            raise GrowkitError(f"a grower may read the train or val split, not {split!r}")
        return self._need("eval_batches()").passes.batches(None, split, False, 0)

    def probe(self, n_batches: int, hooks: dict | None = None, mode: str = "eval", backward: bool = True,
              *, augment: bool = False, seed: int | None = None, grads: bool = False) -> dict:
        """Forward (and, with ``backward``, backward) passes of the objective on ``n_batches`` training
        batches, with ``hooks`` = ``{module name: fn(module, inputs, output)}`` registered as forward hooks
        for the duration. ``mode``: "eval" (BatchNorm uses running statistics) or "train" (batch statistics;
        running statistics are restored afterwards). Never steps the optimizer; every parameter's ``.grad``
        is restored. Returns ``{"loss": mean loss, "samples": n}`` and, with ``grads``, ``"grads"``: the
        parameter gradients of the mean loss by name."""
        if mode not in ("eval", "train"):
            raise GrowkitError(f"probe mode must be eval or train, got {mode!r}")
        if n_batches <= 0:
            raise GrowkitError(f"probe needs n_batches > 0, got {n_batches}")
        s = self._need("probe()")
        return probe(self._model, self.batches(n_batches, "train", augment, seed), s.passes.objective,
                     s.passes.autocast, hooks=hooks, mode=mode, backward=backward, grads=grads)

    def train_epoch(self, params, optimizer) -> tuple[float, float]:
        """One epoch training only ``params`` with ``optimizer`` (the caller's own, e.g. AdamInit's Adam);
        returns (train loss, train accuracy %). Counted in the run's training multiply-adds and time."""
        return self._need("train_epoch()").train_only(params, optimizer)


def probe(model, batches, objective, autocast=contextlib.nullcontext, *, hooks: dict | None = None,
          mode: str = "eval", backward: bool = True, grads: bool = False) -> dict:
    """See :meth:`GrowerView.probe`. Side-effect free on the model: parameters untouched, ``.grad``,
    train/eval mode and buffers (BatchNorm statistics, in train mode) put back as they were."""
    modules = dict(model.named_modules())
    unknown = sorted(set(hooks or {}) - set(modules))
    if unknown:
        raise GrowkitError(f"probe hooks name no module of the model: {', '.join(unknown)}")
    named = list(model.named_parameters())
    saved_grads = [p.grad for _, p in named]
    saved_buffers = ({n: b.detach().clone() for n, b in model.named_buffers()} if mode == "train" else {})
    was_training = model.training
    handles = [modules[name].register_forward_hook(fn) for name, fn in (hooks or {}).items()]
    total = None
    count = n_batches = 0
    out = {}
    try:
        for _, p in named:
            p.grad = None
        model.train(mode == "train")
        for x, y in batches:
            with (contextlib.nullcontext() if backward else torch.no_grad()), autocast():
                loss = objective(model, x, y)
            if backward:
                loss.backward()
            d = loss.detach().float() * len(y)
            total = d if total is None else total + d
            count += len(y)
            n_batches += 1
        out = {"loss": (total / max(count, 1)).item() if total is not None else float("nan"), "samples": count}
        if grads:
            out["grads"] = {n: p.grad.detach() / max(n_batches, 1) for n, p in named if p.grad is not None}
    finally:
        for h in handles:
            h.remove()
        for (_, p), g in zip(named, saved_grads):
            p.grad = g
        if saved_buffers:
            with torch.no_grad():
                for n, b in model.named_buffers():
                    b.copy_(saved_buffers[n])
        model.train(was_training)
    return out


class ViewServices:
    """The data services behind a trainer-built view: the run's passes, its seed, and a counter for
    images trained on outside the main loop (their multiply-adds count; their seeds differ per call)."""

    def __init__(self, passes, run_seed: int, train_only: Callable):
        self.passes, self.run_seed, self._train_only = passes, run_seed, train_only

    def batches(self, n, split, augment, seed, batch_size, global_epoch):
        if seed is None:
            seed = derive_seed(self.run_seed, global_epoch, "view")
        return self.passes.batches(n, split, augment, seed, batch_size or self.passes.batch_size)

    def train_only(self, params, optimizer):
        return self._train_only(params, optimizer)

