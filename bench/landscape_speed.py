"""The same 21x21 loss surface, point by point (as tomgoldstein/loss-landscape does) vs batched (growkit).

Reference (loss-landscape's plot_surface.crunch + evaluation.eval_loss): for every
grid point, write theta* + a d1 + b d2 into the model's parameters, then run
eval_loss: model.eval(), a DataLoader (2 workers, batch 128) over a
torchvision-style dataset with per-image ToTensor/Normalize, and loss.item()
and correct.item() after every batch.

growkit: growkit.viz.landscape.surface over the same images held as one
resident tensor, BatchNorm folded into the convs, points evaluated
``points_per_batch`` at a time under vmap (the device's default, and a
vmap chunk of 21 for comparison).

Both on the same trained net, directions and images, in one process; prints
JSON with seconds, ratios and the largest absolute difference of the losses.

    python bench/landscape_speed.py            # CPU, digits
    python bench/landscape_speed.py --device cuda
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from growkit.config import TrainConfig
from growkit.records import environment
from growkit.train import Trainer
from growkit.viz import landscape as L


class PILImages(torch.utils.data.Dataset):
    def __init__(self, x_uint8: np.ndarray, y: np.ndarray, mean, std):
        from torchvision import transforms as T
        self.x, self.y = x_uint8, y
        self.tf = T.Compose([T.ToTensor(), T.Normalize(mean, std)])

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        img = self.x[i]
        img = Image.fromarray(img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0))
        return self.tf(img), int(self.y[i])


def reference_surface(model, center, d1, d2, xs, ys, loader, device):
    losses = np.zeros((len(ys), len(xs)))
    model.eval()
    for j, b in enumerate(ys):
        for i, a in enumerate(xs):
            for n, p in model.named_parameters():  # net_plotter.set_weights
                p.data = center[n] + float(a) * d1[n] + float(b) * d2[n]
            total, correct, seen = 0.0, 0, 0
            with torch.no_grad():
                for inputs, targets in loader:  # evaluation.eval_loss
                    inputs, targets = inputs.to(device), targets.to(device)
                    out = model(inputs)
                    total += F.cross_entropy(out, targets).item() * len(targets)
                    correct += out.max(1)[1].eq(targets).sum().item()
                    seen += len(targets)
            losses[j, i] = total / seen
    return losses


def timed(fn, device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--model", default="Basic3ResNet-2-2-2")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--images", type=int, default=512)
    p.add_argument("--grid", type=int, default=21)
    p.add_argument("--train-epochs", type=int, default=5)
    a = p.parse_args()
    dev = torch.device("cuda" if a.device == "auto" and torch.cuda.is_available() else
                       ("cpu" if a.device == "auto" else a.device))
    t = Trainer(TrainConfig(model=a.model, dataset=a.dataset, epochs=a.train_epochs, device=str(dev),
                            progress=False, eval_test=False, precision="fp32", channels_last=False))
    t.fit()
    model = t.model.float().eval()
    x, y = t.data.subset("train", a.images)
    center = L.params_of(model)
    d1, d2 = L.random_direction(center, 1), L.random_direction(center, 2)
    xs = ys = np.linspace(-1, 1, a.grid)

    # the same images, as the uint8 pictures a torchvision dataset would decode
    mean, std = t.data.mean, t.data.std
    scale = torch.tensor(std).view(1, -1, 1, 1) * 255
    shift = torch.tensor(mean).view(1, -1, 1, 1) * 255
    pics = (x.cpu().float() * scale + shift).round().clamp(0, 255).to(torch.uint8).numpy()
    loader = torch.utils.data.DataLoader(PILImages(pics, y.cpu().numpy(), mean, std), batch_size=128,
                                         shuffle=False, num_workers=2)
    ref, t_ref = timed(lambda: reference_surface(model, center, d1, d2, xs, ys, loader, dev), dev)
    for n, p_ in model.named_parameters():
        p_.data = center[n].clone()

    rows = []
    default_G = 1 if dev.type == "cpu" else 32
    for G in sorted({default_G, 21}):
        res, t_ours = timed(lambda: L.surface(model, d1, d2, xs, ys, x, y, center=center, points_per_batch=G), dev)
        rows.append({"points_per_batch": G, "default": G == default_G, "seconds": round(t_ours, 3),
                     "speedup": round(t_ref / t_ours, 2),
                     "max_abs_diff": float(np.abs(res["loss"] - ref).max()),
                     "max_rel_diff": float((np.abs(res["loss"] - ref) / np.abs(ref)).max())})
    print(json.dumps({"benchmark": "landscape_speed", **environment(dev), "model": a.model, "dataset": a.dataset,
                      "images": a.images, "grid": f"{a.grid}x{a.grid}", "reference_seconds": round(t_ref, 3),
                      "batched": rows}, indent=2))


if __name__ == "__main__":
    main()
