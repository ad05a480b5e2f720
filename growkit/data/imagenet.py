"""ImageNet (ILSVRC2012) from an ImageFolder tree, through a DataLoader.

Layout: ``<root>/imagenet/train/<wnid>/*.JPEG`` and ``<root>/imagenet/val/<wnid>/*.JPEG``
(the official validation images sorted into class folders, the usual
preparation). The official validation set is our *test* split; our
validation split is carved, stratified, from the training images.

Too large to live on the GPU, so decoding and augmentation (random-resized
crop, flip) run in DataLoader workers with the standard torchvision transforms.
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import GrowkitError
from .catalog import DatasetInfo, check_files, split_indices
from .readers import check_image_headers

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class _Images(Dataset):
    """A list of (path, label) with one transform; shares the folder scan between splits.

    An image that cannot be decoded comes back as a blank image with label ``-1 - i``: an exception
    raised in a DataLoader worker would reach the user as a multi-line traceback, a marked sample lets
    the main process name the file in one line (see :func:`_check_batch`).
    """

    def __init__(self, samples, transform, image_size: int):
        self.samples, self.transform, self.image_size = samples, transform, image_size

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        path, label = self.samples[i]
        try:
            return self.transform(_decode(path)), label
        except Exception:  # reported by the main process, with the reason, in _check_batch
            return torch.zeros(3, self.image_size, self.image_size), -1 - i


def _decode(path: str):
    from PIL import Image
    with open(path, "rb") as f:
        img = Image.open(f)
        return img.convert("RGB")


def _check_batch(ds: _Images, y: torch.Tensor) -> None:
    if bool((y < 0).any()):
        i = -1 - int(y[y < 0][0])
        path = ds.samples[i][0]
        try:
            _decode(path)
            why = "it failed in a loader worker"
        except Exception as e:
            why = " ".join(str(e).split())[:160] or e.__class__.__name__
        raise GrowkitError(f"imagenet: cannot decode {path} ({why}); remove or replace it")


class ImageNetData:
    def __init__(self, info: DatasetInfo, root: str, *, fraction: float, val_fraction: float | None,
                 split_seed: int, device, image_size: int = 224, workers: int | None = None,
                 channels_last: bool = False):
        from torchvision import datasets, transforms as T

        check_files(info, root)
        base = Path(root) / "imagenet"
        try:
            train_scan = datasets.ImageFolder(str(base / "train"))
            test_scan = datasets.ImageFolder(str(base / "val"))
        except (OSError, RuntimeError) as e:  # missing, or a file where a folder should be
            raise GrowkitError(f"imagenet: cannot read the ImageFolder tree under {base}: {e}") from None
        if train_scan.classes != test_scan.classes:
            raise GrowkitError(f"imagenet: {base}/train and {base}/val have different class folders")
        check_image_headers([p for p, _ in train_scan.samples] + [p for p, _ in test_scan.samples])
        labels = np.asarray(train_scan.targets)
        n_cls = len(train_scan.classes)
        # Default validation: 10 images per class (10,000 for ILSVRC2012), at most 10% of train.
        vf = val_fraction if val_fraction is not None else min(0.1, 10 * n_cls / len(labels))
        tr, va = split_indices(labels, vf, fraction, split_seed)
        self.info = replace(info, num_classes=n_cls, image_size=image_size)
        self.image_size = (image_size, image_size)
        self.mean, self.std = list(MEAN), list(STD)
        norm = [T.ToTensor(), T.Normalize(MEAN, STD)]
        resize = int(round(image_size * 256 / 224))
        train_tf = T.Compose([T.RandomResizedCrop(image_size), T.RandomHorizontalFlip(), *norm])
        eval_tf = T.Compose([T.Resize(resize), T.CenterCrop(image_size), *norm])
        samples = train_scan.samples
        self.sets = {
            "train": _Images([samples[i] for i in tr], train_tf, image_size),
            "val": _Images([samples[i] for i in va], eval_tf, image_size),
            "test": _Images(test_scan.samples, eval_tf, image_size),
        }
        self.device = torch.device(device)
        self.channels_last = channels_last
        self.workers = workers if workers is not None else min(8, os.cpu_count() or 1)

    def size(self, split: str) -> int:
        return len(self.sets[split])

    def _loader(self, split, batch_size, shuffle, seed=0):
        return DataLoader(self.sets[split], batch_size=batch_size, shuffle=shuffle,
                          generator=torch.Generator().manual_seed(seed), num_workers=self.workers,
                          pin_memory=self.device.type == "cuda")

    def _to_device(self, x, y):
        x = x.to(self.device, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y.to(self.device, non_blocking=True)

    def train_batches(self, batch_size: int, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in self._loader("train", batch_size, True, seed):
            _check_batch(self.sets["train"], y)
            if len(y) < 2:
                break
            yield self._to_device(x, y)

    def eval_batches(self, split: str, batch_size: int = 256) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in self._loader(split, batch_size, False):
            _check_batch(self.sets[split], y)
            yield self._to_device(x, y)

    def subset(self, split: str, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        ds = self.sets[split]
        keep = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:n].tolist()
        xs, ys = zip(*(ds[i] for i in keep))
        _check_batch(ds, torch.as_tensor(ys))
        return self._to_device(torch.stack(xs), torch.as_tensor(ys))
