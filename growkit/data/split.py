"""Stratified, seeded splits and the digits scans, without importing scikit-learn.

Importing scikit-learn costs about a second, on every command that loads data. growkit needs two things of it:
the 8x8 digits scans it ships (a CSV file inside its package, read here with numpy) and the stratified
shuffle split of ``train_test_split(..., stratify=y, random_state=seed)``, which every growkit run's
train / validation / test split has been drawn with. :func:`stratified_split` draws the very same split:
the same sizes (test rounded up, train rounded down), the same per-class counts (the approximate mode of the
multivariate hypergeometric, ties broken by the seeded generator) and the same calls to one
``numpy.random.RandomState(seed)`` in the same order, so the indices are identical (tests/data compare it
with scikit-learn over many sizes, class balances, fractions and seeds).
"""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np


def _approximate_mode(class_counts: np.ndarray, n_draws: int, rng: np.random.RandomState) -> np.ndarray:
    """Per-class counts of ``n_draws`` drawn from ``class_counts``: the floor of each class's share, then one
    more for the largest remainders (equal remainders: chosen at random) until the total is ``n_draws``."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need = int(n_draws - floored.sum())
    if need > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (inds,) = np.where(remainder == value)
            add = min(len(inds), need)
            floored[rng.choice(inds, size=add, replace=False)] += 1
            need -= add
            if need == 0:
                break
    return floored.astype(int)


def stratified_split(labels, *, test_size: float | None = None, train_size: float | None = None,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) positions into ``labels``: every class in proportion, shuffled with ``seed``.
    ``test_size`` / ``train_size``: fractions in (0, 1); one of them (the other is the rest).
    Raises ValueError when a class has fewer than two members or a side would get fewer images than there
    are classes."""
    labels = np.asarray(labels)
    n = len(labels)
    for name, size in (("test_size", test_size), ("train_size", train_size)):
        if size is not None and not 0 < size < 1:
            raise ValueError(f"{name}={size} should be a fraction in the (0, 1) range")
    if (test_size is None) == (train_size is None):
        raise ValueError("give exactly one of test_size and train_size")
    if test_size is not None:
        n_test = math.ceil(test_size * n)
        n_train = n - n_test
    else:
        n_train = math.floor(train_size * n)
        n_test = n - n_train
    if n_train == 0:
        raise ValueError(f"with {n} samples the train split would be empty")
    classes, y_idx, counts = np.unique(labels, return_inverse=True, return_counts=True)
    if counts.min() < 2:
        raise ValueError(f"the least populated classes have only 1 member: {classes[counts < 2].tolist()}")
    if n_train < len(classes) or n_test < len(classes):
        raise ValueError(f"train size {n_train} and test size {n_test} must each be at least the number of "
                         f"classes, {len(classes)}")
    by_class = np.split(np.argsort(y_idx, kind="stable"), np.cumsum(counts)[:-1])
    rng = np.random.RandomState(seed)
    n_i = _approximate_mode(counts, n_train, rng)
    t_i = _approximate_mode(counts - n_i, n_test, rng)
    train, test = [], []
    for i in range(len(classes)):
        perm = by_class[i].take(rng.permutation(counts[i]), mode="clip")
        train.extend(perm[:n_i[i]])
        test.extend(perm[n_i[i]:n_i[i] + t_i[i]])
    return rng.permutation(train), rng.permutation(test)


def digits_file() -> Path:
    """The CSV of the handwritten digits that scikit-learn ships (found without importing it)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        from ..errors import GrowkitError
        raise GrowkitError("the digits dataset ships with scikit-learn: pip install scikit-learn")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "digits.csv.gz"


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """(images (1797, 8, 8) float64 counts 0..16, labels (1797,) int): scikit-learn's ``load_digits()``."""
    data = np.loadtxt(digits_file(), delimiter=",")
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int)
