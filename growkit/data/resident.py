"""Small datasets held whole on the training device as uint8, augmented there in batches."""
from __future__ import annotations

from typing import Iterator

import torch

from .catalog import DatasetInfo


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


