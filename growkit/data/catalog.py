"""The dataset catalog: names, shapes, augmentation rules, expected files, and the train/val split."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import GrowkitError

DEFAULT_ROOT = os.environ.get("GROWKIT_DATA", "data")


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
    """Raise a one-line GrowkitError naming every missing file."""
    missing = [f for f in info.files if not (Path(root) / f).exists()]
    if missing:
        how = "rerun with --download (needs internet), or get " if info.name in DOWNLOADABLE else "get "
        raise GrowkitError(
            f"{info.name}: missing {len(missing)} file(s) under {root}: {', '.join(missing)}; "
            f"{how}{info.source}".replace("<root>", str(root)))
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


