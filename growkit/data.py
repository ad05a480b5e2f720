"""Datasets by name.

Every dataset comes as three disjoint splits: ``train`` (optionally subsampled
by ``fraction``), ``val`` (carved from the official training set; growth
decisions look only at it) and ``test`` (the official test set; reported, never
used to decide anything).

Small datasets (digits, MNIST, Fashion-MNIST, SVHN, CIFAR) are held whole as
uint8 tensors on the training device and augmented there in batches: a random
crop with zero padding is one gather, a horizontal flip one ``where``. This is
what makes an epoch on a GPU cost milliseconds instead of the seconds a
per-image PIL pipeline costs. ImageNet goes through a ``DataLoader``.

Files are never downloaded unless asked (``download=True``), and a missing file
is never replaced by anything synthetic: the error names the files and where to
get them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .errors import GrowkitError

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


# ----------------------------------------------------------------------------- splits

def split_indices(labels: np.ndarray, val_fraction: float, fraction: float, seed: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded, disjoint (train, val) index arrays of the official training set.

    ``val_fraction`` of every class goes to validation; ``fraction`` of what is
    left (again per class) is kept for training (the paper's Table 8).
    """
    from sklearn.model_selection import train_test_split

    if not 0.0 <= val_fraction < 1.0:
        raise GrowkitError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if not 0.0 < fraction <= 1.0:
        raise GrowkitError(f"fraction must be in (0, 1], got {fraction}")
    idx = np.arange(len(labels))
    try:
        if val_fraction > 0:
            train, val = train_test_split(idx, test_size=val_fraction, stratify=labels, random_state=seed)
        else:
            train, val = idx, idx[:0]
        if fraction < 1.0:
            train, _ = train_test_split(train, train_size=fraction, stratify=labels[train], random_state=seed)
    except ValueError as e:  # too few images for a stratified split (e.g. fewer than one per class)
        raise GrowkitError(f"cannot split {len(labels)} images stratified (val_fraction={val_fraction}, "
                           f"fraction={fraction}): {e}") from None
    return np.sort(train), np.sort(val)


# ----------------------------------------------------------------------------- resident data

def _batch_crop_flip(xp: torch.Tensor, idx: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor,
                     flip: torch.Tensor | None, size: tuple[int, int]) -> torch.Tensor:
    """Gather images ``idx`` from padded ``xp`` and crop each at its own offset: one indexing op."""
    h, w = size
    dev = xp.device
    rows = dy[:, None] + torch.arange(h, device=dev)  # [B, H]
    cols = dx[:, None] + torch.arange(w, device=dev)  # [B, W]
    if flip is not None:  # a flipped crop reads its columns right to left
        cols = torch.where(flip[:, None], cols.flip(1), cols)
    chans = torch.arange(xp.shape[1], device=dev)[None, :, None, None]
    return xp[idx[:, None, None, None], chans, rows[:, None, :, None], cols[:, None, None, :]]


class ResidentData:
    """Three splits as uint8 tensors on one device, with batched on-device augmentation."""

    def __init__(self, info: DatasetInfo, train: tuple, val: tuple, test: tuple,
                 device: str | torch.device = "cpu", augment: bool = True, channels_last: bool = False):
        self.info = info
        self.device = torch.device(device)
        self.augment = augment
        self.channels_last = channels_last
        xt, yt = (torch.as_tensor(a) for a in train)
        if xt.ndim != 4 or xt.dtype != torch.uint8:
            raise ValueError("images must be uint8 [N, C, H, W]")
        # Normalisation from the training split only (float64 so the statistics are exact).
        xf = xt.to(torch.float64) / 255.0
        mean = xf.mean(dim=(0, 2, 3))
        std = xf.std(dim=(0, 2, 3)).clamp_min(1e-3)
        self.mean, self.std = mean.tolist(), std.tolist()
        self._scale = (1.0 / (255.0 * std)).float().view(1, -1, 1, 1).to(self.device)
        self._shift = (mean / std).float().view(1, -1, 1, 1).to(self.device)
        p = info.crop_pad if augment else 0
        self._pad = p
        self.image_size = (xt.shape[2], xt.shape[3])
        self.train_x = torch.nn.functional.pad(xt, (p, p, p, p)).to(self.device) if p else xt.to(self.device)
        self.train_y = yt.long().to(self.device)
        self.splits = {
            "val": (torch.as_tensor(val[0]).to(self.device), torch.as_tensor(val[1]).long().to(self.device)),
            "test": (torch.as_tensor(test[0]).to(self.device), torch.as_tensor(test[1]).long().to(self.device)),
        }

    def size(self, split: str) -> int:
        return len(self.train_y) if split == "train" else len(self.splits[split][1])

    def _finish(self, xb: torch.Tensor) -> torch.Tensor:
        x = xb.float().mul_(self._scale).sub_(self._shift)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def train_batches(self, batch_size: int, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One shuffled, augmented epoch. All randomness comes from ``seed`` (a CPU generator),
        so an epoch is reproducible on any device and after a resume."""
        g = torch.Generator().manual_seed(seed)
        n = len(self.train_y)
        perm = torch.randperm(n, generator=g)
        p = self._pad
        if p:
            dy = torch.randint(0, 2 * p + 1, (n,), generator=g)
            dx = torch.randint(0, 2 * p + 1, (n,), generator=g)
        flip = (torch.rand(n, generator=g) < 0.5) if (self.augment and self.info.flip) else None
        perm, dev = perm.to(self.device), self.device
        if p:
            dy, dx = dy.to(dev), dx.to(dev)
        if flip is not None:
            flip = flip.to(dev)
        for start in range(0, n, batch_size):
            sl = slice(start, start + batch_size)
            idx = perm[sl]
            if len(idx) < 2:  # BatchNorm cannot normalise a batch of one
                break
            if p:
                xb = _batch_crop_flip(self.train_x, idx, dy[sl], dx[sl],
                                      None if flip is None else flip[sl], self.image_size)
            else:
                xb = self.train_x[idx]
                if flip is not None:
                    xb = torch.where(flip[sl][:, None, None, None], xb.flip(3), xb)
            yield self._finish(xb), self.train_y[idx]

    def eval_batches(self, split: str, batch_size: int = 1024) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if split == "train":
            x, y = self.train_x, self.train_y
            if self._pad:
                p = self._pad
                x = x[:, :, p:-p, p:-p]
        else:
            x, y = self.splits[split]
        for start in range(0, len(y), batch_size):
            yield self._finish(x[start:start + batch_size]), y[start:start + batch_size]

    def subset(self, split: str, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` normalised, unaugmented images of a split (a fixed, seeded choice), e.g. for loss surfaces."""
        xs, ys = zip(*self.eval_batches(split, batch_size=1 << 30))
        x, y = xs[0], ys[0]
        if n < len(y):
            keep = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))[:n].to(y.device)
            x, y = x[keep], y[keep]
        return x, y


# ----------------------------------------------------------------------------- loaders

def _load_digits(seed: int) -> tuple:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    # Pixel values are counts 0..16; scale to the 0..255 range every other dataset uses.
    x = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    y = d.target.astype(np.int64)
    tr, te = train_test_split(np.arange(len(y)), test_size=0.2, stratify=y, random_state=seed)
    return (x[tr], y[tr]), (x[te], y[te])


def _tv_call(info: DatasetInfo, fn):
    try:
        return fn()
    except RuntimeError as e:  # torchvision: "Dataset not found or corrupted."
        raise GrowkitError(f"{info.name}: torchvision could not read the files ({e}); "
                           f"they may be corrupt: re-download from {info.source}") from None


def _load_torchvision(info: DatasetInfo, root: str, download: bool) -> tuple:
    import torchvision.datasets as tvd

    if not download:
        check_files(info, root)

    def as_nchw(a, channels_last_layout: bool):
        a = np.asarray(a, dtype=np.uint8)
        if a.ndim == 3:
            return a[:, None]
        return a.transpose(0, 3, 1, 2) if channels_last_layout else a

    out = []
    for train in (True, False):
        if info.name in ("cifar10", "cifar100"):
            cls = tvd.CIFAR10 if info.name == "cifar10" else tvd.CIFAR100
            ds = _tv_call(info, lambda: cls(root, train=train, download=download))
            x, y = as_nchw(ds.data, True), np.asarray(ds.targets)
        elif info.name == "svhn":
            ds = _tv_call(info, lambda: tvd.SVHN(str(Path(root) / "svhn"), split="train" if train else "test",
                                                 download=download))
            x, y = as_nchw(ds.data, False), np.asarray(ds.labels)
        else:
            cls = tvd.MNIST if info.name == "mnist" else tvd.FashionMNIST
            ds = _tv_call(info, lambda: cls(root, train=train, download=download))
            x, y = as_nchw(ds.data.numpy(), False), ds.targets.numpy()
        out.append((np.ascontiguousarray(x), y.astype(np.int64)))
    return tuple(out)


def load(name: str = "digits", root: str | Path | None = None, *, fraction: float = 1.0,
         val_fraction: float | None = None, split_seed: int = 0, device: str | torch.device = "cpu",
         download: bool = False, augment: bool = True, channels_last: bool = False,
         image_size: int | None = None, workers: int | None = None):
    """Load a dataset by name into train/val/test splits ready for :func:`growkit.train.fit`."""
    info = dataset_info(name)
    root = str(root if root is not None else DEFAULT_ROOT)
    vf = info.val_fraction if val_fraction is None else val_fraction
    if info.name == "imagenet":
        from .imagenet import ImageNetData
        return ImageNetData(info, root, fraction=fraction, val_fraction=vf if val_fraction is not None else None,
                            split_seed=split_seed, device=device, image_size=image_size or 224, workers=workers,
                            channels_last=channels_last)
    if download and info.name not in DOWNLOADABLE:
        raise GrowkitError(f"{info.name} cannot be downloaded")
    if info.name == "digits":
        (xtr, ytr), test = _load_digits(split_seed)
    else:
        (xtr, ytr), test = _load_torchvision(info, root, download)
    tr, va = split_indices(ytr, vf, fraction, split_seed)
    return ResidentData(info, (xtr[tr], ytr[tr]), (xtr[va], ytr[va]), test, device=device,
                        augment=augment, channels_last=channels_last)
