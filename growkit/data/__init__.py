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

import pickle
from pathlib import Path

import numpy as np
import torch

from ..errors import GrowkitError
from .catalog import (DATASETS, DOWNLOADABLE, DatasetInfo, check_files, dataset_info, find_checkout,
                      list_datasets, resolve_root, split_indices)
from .readers import check_split, load_mnist, source
from .resident import ResidentData

__all__ = ["DATASETS", "DatasetInfo", "ResidentData", "check_files", "dataset_info", "find_checkout",
           "list_datasets", "load", "resolve_root", "split_indices"]


def _load_digits(seed: int) -> tuple:
    from .split import load_digits_arrays, stratified_split

    images, target = load_digits_arrays()  # scikit-learn's load_digits(), without importing scikit-learn
    # Pixel values are counts 0..16; scale to the 0..255 range every other dataset uses.
    x = np.rint(images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    y = target.astype(np.int64)
    tr, te = stratified_split(y, test_size=0.2, seed=seed)
    return (x[tr], y[tr]), (x[te], y[te])


def _tv_call(info: DatasetInfo, root: str, download: bool, fn):
    """Call torchvision; its failures (corrupt files, md5 mismatch, a failed download) become one line."""
    try:
        return fn()
    except (RuntimeError, OSError, ValueError, EOFError, KeyError, IndexError, TypeError,
            pickle.UnpicklingError) as e:
        why = " ".join(str(e).split())[:200] or e.__class__.__name__
        if download:
            raise GrowkitError(f"{info.name}: download into {root} failed ({why}); check the network, or get "
                               f"the files by hand: {source(info, root)}") from None
        raise GrowkitError(f"{info.name}: torchvision could not read the files under {root} ({why}); "
                           f"they may be corrupt: re-download from {source(info, root)}") from None


def _load_torchvision(info: DatasetInfo, root: str, download: bool) -> tuple:
    import torchvision.datasets as tvd

    if not download:
        check_files(info, root)

    def as_nchw(a, channels_last_layout: bool):
        a = np.asarray(a, dtype=np.uint8)
        if a.ndim == 3:
            return a[:, None]
        return a.transpose(0, 3, 1, 2) if channels_last_layout else a

    if info.name in ("mnist", "fashionmnist"):
        if download:  # torchvision fetches and unpacks the IDX files; growkit reads them itself
            cls = tvd.MNIST if info.name == "mnist" else tvd.FashionMNIST
            for train in (True, False):
                _tv_call(info, root, True, lambda: cls(root, train=train, download=True))
        return load_mnist(info, root)
    out = []
    for train in (True, False):
        split = "train" if train else "test"
        if info.name in ("cifar10", "cifar100"):
            cls = tvd.CIFAR10 if info.name == "cifar10" else tvd.CIFAR100
            ds = _tv_call(info, root, download, lambda: cls(root, train=train, download=download))
            x, y = as_nchw(ds.data, True), np.asarray(ds.targets)
        else:
            ds = _tv_call(info, root, download, lambda: tvd.SVHN(str(Path(root) / "svhn"), split=split,
                                                                 download=download))
            x, y = as_nchw(ds.data, False), np.asarray(ds.labels)
        out.append(check_split(info, x, y, f"{info.name} {split} split under {root}"))
    return tuple(out)


def load(name: str = "digits", root: str | Path | None = None, *, fraction: float = 1.0,
         val_fraction: float | None = None, split_seed: int = 0, device: str | torch.device = "cpu",
         download: bool = False, augment: bool = True, channels_last: bool = False,
         image_size: int | None = None, workers: int | None = None):
    """Load a dataset by name into train/val/test splits ready for :class:`growkit.engine.trainer.Trainer`."""
    info = dataset_info(name)
    root = str(resolve_root(root))  # --data-root, $GROWKIT_DATA, the checkout's data/: absolute
    vf = info.val_fraction if val_fraction is None else val_fraction
    if info.name == "imagenet":
        from .imagenet import ImageNetData  # imported on use: it needs PIL and a DataLoader
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
