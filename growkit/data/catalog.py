"""The dataset catalog: names, shapes, augmentation rules, expected files, and the train/val split."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import GrowkitError, MissingData



def find_checkout(start: str | Path | None = None) -> Path | None:
    """The growkit checkout holding ``start`` (default: the working directory): the nearest folder, ``start``
    or above it, with both ``growkit/__init__.py`` and ``notebooks/``; None outside one. A notebook's kernel
    runs in ``notebooks/``, a shell anywhere in the clone: both find the same checkout."""
    here = Path(start if start is not None else os.getcwd()).resolve()
    for d in (here, *here.parents):
        if (d / "growkit" / "__init__.py").is_file() and (d / "notebooks").is_dir():
            return d
    return None


def resolve_root(root: str | Path | None = None) -> Path:
    """The data root, one rule for the command line, Python and the notebooks: ``root`` (``--data-root``, a
    config's or notebook's ``data_root``), else ``$GROWKIT_DATA``, else ``data/`` of the growkit checkout
    holding the working directory (``./data`` where there is none); always an absolute path, so a kernel
    running in ``notebooks/`` finds the files the command line finds."""
    if root is None or str(root) == "":
        root = os.environ.get("GROWKIT_DATA") or None
    if root is None:
        checkout = find_checkout()
        root = (checkout if checkout is not None else Path.cwd()) / "data"
    return Path(root).expanduser().resolve()


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    channels: int
    image_size: int
    crop_pad: int  # zero padding of the random crop, in pixels (0: no crop)
    flip: bool  # random horizontal flip (off for digits, SVHN, MNIST: flips change the class)
    val_fraction: float  # default share of the official training set held out for validation
    files: tuple[str, ...] = ()  # files under the data root that must exist
    source: str = ""  # where to get the files


_MNIST_RAW = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

DATASETS: dict[str, DatasetInfo] = {
    # 1797 real 8x8 scans shipped inside scikit-learn: no files, no network.
    "digits": DatasetInfo("digits", 10, 1, 8, 1, False, 0.2),
    "mnist": DatasetInfo("mnist", 10, 1, 28, 2, False, 0.1,
                         tuple(f"MNIST/raw/{f}" for f in _MNIST_RAW),
                         "http://yann.lecun.com/exdb/mnist/ (gunzip into <root>/MNIST/raw/)"),
    # The AutoGrow authors flip Fashion-MNIST (clothes are left-right symmetric).
    "fashionmnist": DatasetInfo("fashionmnist", 10, 1, 28, 2, True, 0.1,
                                tuple(f"FashionMNIST/raw/{f}" for f in _MNIST_RAW),
                                "https://github.com/zalandoresearch/fashion-mnist (gunzip into <root>/FashionMNIST/raw/)"),
    "svhn": DatasetInfo("svhn", 10, 3, 32, 4, False, 0.1,
                        ("svhn/train_32x32.mat", "svhn/test_32x32.mat"),
                        "http://ufldl.stanford.edu/housenumbers/ (train_32x32.mat, test_32x32.mat into <root>/svhn/)"),
    "cifar10": DatasetInfo("cifar10", 10, 3, 32, 4, True, 0.1,
                           tuple(f"cifar-10-batches-py/{f}" for f in
                                 ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                                  "data_batch_5", "test_batch", "batches.meta")),
                           "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz (extract into <root>/)"),
    "cifar100": DatasetInfo("cifar100", 100, 3, 32, 4, True, 0.1,
                            tuple(f"cifar-100-python/{f}" for f in ("train", "test", "meta")),
                            "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz (extract into <root>/)"),
    "imagenet": DatasetInfo("imagenet", 1000, 3, 224, 0, True, 0.0,
                            ("imagenet/train", "imagenet/val"),
                            "ILSVRC2012 from https://image-net.org (cannot be downloaded automatically); "
                            "ImageFolder layout <root>/imagenet/{train,val}/<wnid>/*.JPEG"),
}

DOWNLOADABLE = {"mnist", "fashionmnist", "svhn", "cifar10", "cifar100"}


def list_datasets() -> list[str]:
    return list(DATASETS)


def dataset_info(name: str) -> DatasetInfo:
    key = name.lower().replace("-", "").replace("_", "")
    if key not in DATASETS:
        raise GrowkitError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
    return DATASETS[key]


def check_files(info: DatasetInfo, root: str | Path) -> None:
    """Raise a one-line :class:`MissingData` naming every missing file. Its message suits Python and the
    notebooks (the call that downloads, or where to get the files); the command line shows ``e.cli``, which
    advises ``--download`` instead."""
    missing = [f for f in info.files if not (Path(root) / f).exists()]
    if missing:
        what = f"{info.name}: missing {len(missing)} file(s) under {root}: {', '.join(missing)}; "
        get = f"get {info.source}".replace("<root>", str(root))
        if info.name in DOWNLOADABLE:
            py = (f"download them once with growkit.data.load({info.name!r}, {str(root)!r}, download=True) "
                  f"(needs internet), or {get}")
            cli = f"rerun with --download (needs internet), or {get}"
        else:
            py = cli = get
        raise MissingData(what + py, cli=what + cli)
    for f in info.files:  # a FIFO or a device (/dev/zero) would hang or fill the memory when read
        p = Path(root) / f
        if not (p.is_file() or p.is_dir()):
            raise GrowkitError(f"{info.name}: {p} is not a regular file or folder; put the dataset's file there")


def split_indices(labels: np.ndarray, val_fraction: float, fraction: float, seed: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded, disjoint (train, val) index arrays of the official training set.

    ``val_fraction`` of every class goes to validation; ``fraction`` of what is
    left (again per class) is kept for training (the paper's Table 8).
    """
    from .split import stratified_split

    if not 0.0 <= val_fraction < 1.0:
        raise GrowkitError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if not 0.0 < fraction <= 1.0:
        raise GrowkitError(f"fraction must be in (0, 1], got {fraction}")
    idx = np.arange(len(labels))
    try:
        if val_fraction > 0:
            train, val = (idx[i] for i in stratified_split(labels, test_size=val_fraction, seed=seed))
        else:
            train, val = idx, idx[:0]
        if fraction < 1.0:
            keep, _ = stratified_split(labels[train], train_size=fraction, seed=seed)
            train = train[keep]
    except ValueError as e:  # too few images for a stratified split (e.g. fewer than one per class)
        raise GrowkitError(f"cannot split {len(labels)} images stratified (val_fraction={val_fraction}, "
                           f"fraction={fraction}): {e}") from None
    return np.sort(train), np.sort(val)


