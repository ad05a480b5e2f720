"""Task-incremental streams and the continual-learning metrics.

Two kinds of *task stream* (``kind``):

* ``split``: one dataset's classes in ``n_tasks`` disjoint tasks of equal size
  (digits into 5 tasks of 2 classes; CIFAR-100 into 10 of 10: split CIFAR-100).
  Labels are remapped to 0..k-1 inside every task;
* ``permuted``: every task holds all the dataset's images and all its classes
  (labels unchanged), its pixels shuffled by a fixed permutation of its own
  (permuted MNIST; on digits, permuted digits). Task ``t``'s permutation is the
  ``t``-th drawn from ``numpy.random.default_rng(seed)`` over the ``H * W`` pixel
  positions (the same one for every channel); no random crops or flips (a crop of
  permuted pixels means nothing).

The task id is given at evaluation, and every task has its own head. Each task keeps
the dataset's three splits (restricted to its classes in a split stream): ``train``
(weights), ``val`` (Learn-to-Grow's architecture weights; carved from the official
training set, never the test set) and ``test`` (reported only).

Each task is a :class:`growkit.data.ResidentData` of its own, so the normalisation
statistics come from that task's training images only: nothing is learned from a
task before it arrives.

Metrics read an *accuracy matrix* ``R`` with ``R[i][j]`` the test accuracy on task
``j`` after training task ``i`` (``None`` for ``j > i``: a task without a head yet):

* average accuracy: ``mean_j R[T-1][j]``;
* backward transfer (Lopez-Paz & Ranzato, 2017): ``mean_{j<T-1} (R[T-1][j] - R[j][j])``,
  negative when learning later tasks hurt earlier ones;
* forgetting (Chaudhry et al., 2018): ``mean_{j<T-1} (max_{j<=i<T-1} R[i][j] - R[T-1][j])``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from ...data import ResidentData
from ...errors import GrowkitError


@dataclass(frozen=True)
class TaskStream:
    """The tasks of one dataset, in order. ``classes[t]`` are task ``t``'s original labels."""
    dataset: str
    classes: tuple[tuple[int, ...], ...]
    tasks: tuple[ResidentData, ...]

    def __len__(self) -> int:
        return len(self.tasks)

    @property
    def num_classes(self) -> list[int]:
        return [len(c) for c in self.classes]


def class_split(num_classes: int, n_tasks: int, order: str = "natural", seed: int = 0) -> list[list[int]]:
    """Disjoint equal groups of class labels: ``natural`` (0,1 | 2,3 | ...) or a seeded ``random`` order."""
    if not isinstance(n_tasks, int) or n_tasks < 2:
        raise GrowkitError(f"a task stream needs at least 2 tasks, got {n_tasks!r}")
    if num_classes % n_tasks:
        raise GrowkitError(f"{num_classes} classes do not split into {n_tasks} equal tasks")
    if order == "natural":
        perm = list(range(num_classes))
    elif order == "random":
        perm = np.random.default_rng(seed).permutation(num_classes).tolist()
    else:
        raise GrowkitError(f"class order must be 'natural' or 'random', got {order!r}")
    k = num_classes // n_tasks
    return [sorted(perm[t * k:(t + 1) * k]) for t in range(n_tasks)]


def _raw(data: ResidentData, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The uint8 images and labels of a split (training crops' zero padding removed)."""
    if split == "train":
        x, p = data.train_x, data._pad
        return (x[:, :, p:-p, p:-p] if p else x).cpu(), data.train_y.cpu()
    x, y = data.splits[split]
    return x.cpu(), y.cpu()


def split_tasks(data: ResidentData, classes: list[list[int]], augment: bool | None = None) -> TaskStream:
    """Restrict every split of ``data`` to each task's classes and remap labels to 0..k-1."""
    seen: set[int] = set()
    for group in classes:
        bad = [c for c in group if not 0 <= c < data.info.num_classes or c in seen]
        if bad or not group:
            raise GrowkitError(f"task classes must be disjoint labels of {data.info.name}, got {classes}")
        seen.update(group)
    augment = data.augment if augment is None else augment
    raw = {s: _raw(data, s) for s in ("train", "val", "test")}
    tasks = []
    for t, group in enumerate(classes):
        lut = torch.full((data.info.num_classes,), -1, dtype=torch.long)
        lut[torch.tensor(group)] = torch.arange(len(group))
        parts = []
        for s in ("train", "val", "test"):
            x, y = raw[s]
            keep = lut[y] >= 0
            if s != "val" and not bool(keep.any()):
                raise GrowkitError(f"task {t} (classes {group}) has no {s} images")
            parts.append((x[keep].numpy(), lut[y[keep]].numpy()))
        info = dataclasses.replace(data.info, name=f"{data.info.name}:task{t}", num_classes=len(group))
        tasks.append(ResidentData(info, *parts, device=data.device, augment=augment,
                                  channels_last=data.channels_last))
    return TaskStream(data.info.name, tuple(tuple(g) for g in classes), tuple(tasks))


def permutations(n_tasks: int, pixels: int, seed: int) -> list[np.ndarray]:
    """Task ``t``'s pixel permutation: the ``t``-th drawn from ``default_rng(seed)`` over ``pixels`` positions."""
    if not isinstance(n_tasks, int) or isinstance(n_tasks, bool) or n_tasks < 2:
        raise GrowkitError(f"a task stream needs at least 2 tasks, got {n_tasks!r}")
    rng = np.random.default_rng(seed)
    return [rng.permutation(pixels) for _ in range(n_tasks)]


def permute_image(x: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """Images [N, C, H, W] whose pixel ``k`` (row-major) is the input's pixel ``perm[k]``, in every channel."""
    n, c, h, w = x.shape
    return np.ascontiguousarray(x.reshape(n, c, h * w)[:, :, perm].reshape(n, c, h, w))


def permuted_tasks(data: ResidentData, n_tasks: int, seed: int = 0) -> TaskStream:
    """``n_tasks`` copies of ``data`` (all classes, the same labels), each with its own fixed pixel permutation."""
    h, w = data.image_size
    perms = permutations(n_tasks, h * w, seed)
    raw = {s: _raw(data, s) for s in ("train", "val", "test")}
    tasks = []
    for t, perm in enumerate(perms):
        parts = [(permute_image(x.numpy(), perm), y.numpy()) for x, y in (raw[s] for s in ("train", "val", "test"))]
        info = dataclasses.replace(data.info, name=f"{data.info.name}:perm{t}", crop_pad=0, flip=False)
        tasks.append(ResidentData(info, *parts, device=data.device, augment=False, channels_last=data.channels_last))
    everything = tuple(range(data.info.num_classes))
    return TaskStream(f"permuted {data.info.name}", tuple(everything for _ in perms), tuple(tasks))


STREAMS = ("split", "permuted")


def task_stream(dataset: str = "digits", n_tasks: int = 5, *, order: str = "natural", seed: int = 0,
                root=None, device="cpu", augment: bool = True, download: bool = False,
                val_fraction: float | None = None, split_seed: int = 0, kind: str = "split") -> TaskStream:
    """Load ``dataset`` through :func:`growkit.data.load` and make ``n_tasks`` tasks of it: a class ``split``
    (``order``: natural or random) or ``permuted`` pixels (every class in every task, permutations from
    ``seed``). ``val_fraction``: share of the official training set held out for the search (default: the
    dataset's). A missing file is an error naming it and where to get it, never a synthetic stand-in."""
    from ... import data as gdata

    if kind not in STREAMS:
        raise GrowkitError(f"stream must be one of {', '.join(STREAMS)}, got {kind!r}")
    info = gdata.dataset_info(dataset)
    if kind == "split":
        classes = class_split(info.num_classes, n_tasks, order, seed)  # checked before any file is read
    else:
        permutations(n_tasks, 1, seed)  # the task count, checked before any file is read
    full = gdata.load(dataset, root, val_fraction=val_fraction, split_seed=split_seed, device=device,
                      download=download, augment=augment and kind == "split")
    if not isinstance(full, ResidentData):
        raise GrowkitError(f"{dataset}: task streams need a device-resident dataset")
    return split_tasks(full, classes) if kind == "split" else permuted_tasks(full, n_tasks, seed)


# ----------------------------------------------------------------------------- metrics

@torch.no_grad()
def accuracy(forward, data: ResidentData, split: str = "test", batch_size: int = 1024) -> float:
    """Top-1 accuracy in percent of ``forward(x) -> logits`` on one split (caller sets eval mode).
    Under torchrun the batches are dealt out over the ranks and the counts summed (every rank gets it)."""
    from ...dist import data_parallel as ddp, group as distributed
    g = distributed.group() if distributed.collective() else None
    correct = total = 0
    for i, (x, y) in enumerate(data.eval_batches(split, batch_size)):
        if g is not None and i % g.world != g.rank:
            continue
        correct += int((forward(x).argmax(1) == y).sum())
        total += len(y)
    if g is not None:
        c, n = ddp.reduce_sums(correct, total)
        correct, total = int(round(float(c))), int(round(float(n)))
    if total == 0:
        raise GrowkitError(f"{data.info.name}: the {split} split is empty")
    return 100.0 * correct / total


def _check_matrix(R) -> list[list]:
    R = [list(row) for row in R]
    T = len(R)
    if T == 0 or any(len(row) != T for row in R):
        raise GrowkitError("an accuracy matrix must be square (one row per training stage, one column per task)")
    for i in range(T):
        for j in range(i + 1):
            if R[i][j] is None:
                raise GrowkitError(f"accuracy matrix entry [{i}][{j}] is missing")
    return R


def avg_acc(R) -> float:
    R = _check_matrix(R)
    return float(np.mean(R[-1]))


def bwt(R) -> float:
    """Backward transfer; 0.0 for a single task (nothing learned after any task)."""
    R = _check_matrix(R)
    T = len(R)
    if T < 2:
        return 0.0
    return float(np.mean([R[T - 1][j] - R[j][j] for j in range(T - 1)]))


def forgetting(R) -> float:
    """Average forgetting: best accuracy a task ever had (before the last stage) minus its final accuracy."""
    R = _check_matrix(R)
    T = len(R)
    if T < 2:
        return 0.0
    return float(np.mean([max(R[i][j] for i in range(j, T - 1)) - R[T - 1][j] for j in range(T - 1)]))


def summary(R) -> dict:
    return {"accuracy_matrix": _check_matrix(R), "avg_acc": avg_acc(R), "bwt": bwt(R), "forgetting": forgetting(R)}
