"""One loss surface evaluated five ways, to say where growkit's speed comes from.

Rows, all on the same trained net, directions and images, in one process:

* ``reference_dataloader``: as tomgoldstein/loss-landscape does it (plot_surface.crunch +
  evaluation.eval_loss): for every grid point write theta* + a d1 + b d2 into the model, then
  model.eval() and a DataLoader (2 workers, batch 128, started afresh for every point) over a
  torchvision-style dataset with per-image ToTensor/Normalize, loss.item() and correct.item()
  after every batch;
* ``reference_persistent_workers``: the same with ``persistent_workers=True`` (no worker start-up
  per point);
* ``reference_resident``: the same point-by-point loop (weights written into the model, BN not
  folded, ``.item()`` per batch) over the images held as one normalised tensor on the device:
  no DataLoader at all;
* ``growkit_pointwise``: growkit.viz.landscape.surface one point at a time (BN folded into the
  convs once per point, no host sync until the grid is done);
* ``growkit_vmap``: growkit's evaluation in vmap chunks, the chunk size *measured* first
  (:func:`growkit.viz.landscape.time_points_per_batch`; the sweep is printed).

So ``reference_dataloader / reference_resident`` is the part of the ratio that comes from the data
path, and ``reference_resident / growkit_*`` the part that comes from the evaluation itself
(folded BN, no per-batch sync, batching). Sizes beyond the dataset's training split repeat its
images (``tiled_from`` says how many distinct ones there are).

    python bench/landscape_speed.py --images 512 --grid 5         # a quick check
    python bench/landscape_speed.py --images 5000,10000            # the reference sizes (CPU: slow)
    python bench/landscape_speed.py --device cuda --images 5000,10000
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from growkit.engine.config import TrainConfig
from growkit.engine.records import environment
from growkit.engine.trainer import Trainer
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


def reference_surface(model, center, d1, d2, xs, ys, batches, device):
    """loss-landscape's loop; ``batches()`` yields (inputs, targets) for one pass over the images."""
    losses = np.zeros((len(ys), len(xs)))
    model.eval()
    for j, b in enumerate(ys):
        for i, a in enumerate(xs):
            for n, p in model.named_parameters():  # net_plotter.set_weights
                p.data = center[n] + float(a) * d1[n] + float(b) * d2[n]
            total, correct, seen = 0.0, 0, 0
            with torch.no_grad():
                for inputs, targets in batches():  # evaluation.eval_loss
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


def images(data, n: int):
    """``n`` normalised training images (the split repeated when it is smaller) and how many are distinct."""
    x, y = data.subset("train", n)
    distinct = len(y)
    if n > distinct:
        reps = -(-n // distinct)
        x, y = x.repeat(reps, 1, 1, 1)[:n], y.repeat(reps)[:n]
    return x.contiguous(), y, distinct


def one_size(model, data, n, xs, ys, dev, candidates, probe_points):
    center = L.params_of(model)
    d1, d2 = L.random_direction(center, 1), L.random_direction(center, 2)
    x, y, distinct = images(data, n)
    mean, std = data.mean, data.std
    scale = torch.tensor(std).view(1, -1, 1, 1) * 255
    shift = torch.tensor(mean).view(1, -1, 1, 1) * 255
    pics = (x.cpu().float() * scale + shift).round().clamp(0, 255).to(torch.uint8).numpy()
    ds = PILImages(pics, y.cpu().numpy(), mean, std)
    fresh = torch.utils.data.DataLoader(ds, batch_size=128, shuffle=False, num_workers=2)
    persistent = torch.utils.data.DataLoader(ds, batch_size=128, shuffle=False, num_workers=2,
                                             persistent_workers=True)
    resident = lambda: ((x[s:s + 128], y[s:s + 128]) for s in range(0, len(y), 128))  # noqa: E731
    rows, ref = {}, None
    for name, batches in (("reference_dataloader", lambda: iter(fresh)),
                          ("reference_persistent_workers", lambda: iter(persistent)),
                          ("reference_resident", resident)):
        losses, sec = timed(lambda: reference_surface(model, center, d1, d2, xs, ys, batches, dev), dev)
        ref = losses if ref is None else ref
        rows[name] = {"seconds": round(sec, 3), "losses": losses}
    for n_, p_ in model.named_parameters():
        p_.data = center[n_].clone()

    ev = L.SurfaceEvaluator(model, center)
    sweep = L.time_points_per_batch(ev, d1, d2, x, y, candidates=candidates, probe_points=probe_points)
    best = min(sweep, key=sweep.get)
    for name, G in (("growkit_pointwise", 1), ("growkit_vmap", best)):
        res, sec = timed(lambda: L.surface(model, d1, d2, xs, ys, x, y, center=center, points_per_batch=G), dev)
        rows[name] = {"seconds": round(sec, 3), "points_per_batch": G, "losses": res["loss"]}
    base = rows["reference_dataloader"]["seconds"]
    out = []
    for name, r in rows.items():
        diff = np.abs(r.pop("losses") - ref)
        out.append({"row": name, **r, "speedup_vs_reference": round(base / max(r["seconds"], 1e-9), 2),
                    "max_rel_diff": float((diff / np.abs(ref)).max())})
    t = {r["row"]: r["seconds"] for r in out}
    split = {"data_path": round(t["reference_dataloader"] / t["reference_resident"], 2),
             "evaluation_pointwise": round(t["reference_resident"] / t["growkit_pointwise"], 2),
             "evaluation_vmap": round(t["reference_resident"] / t["growkit_vmap"], 2)}
    return {"images": n, "tiled_from": distinct, "rows": out, "ratio_split": split,
            "vmap_sweep_s_per_point": {str(k): round(v, 6) for k, v in sweep.items()}}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--model", default="Basic3ResNet-2-2-2")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--images", default="5000,10000", help="comma-separated numbers of images")
    p.add_argument("--grid", type=int, default=21)
    p.add_argument("--train-epochs", type=int, default=5)
    p.add_argument("--chunks", default="1,2,4,8,16,32,64", help="vmap chunk sizes to measure")
    p.add_argument("--probe-points", type=int, default=32, help="grid points per chunk-size measurement")
    a = p.parse_args()
    dev = torch.device("cuda" if a.device == "auto" and torch.cuda.is_available() else
                       ("cpu" if a.device == "auto" else a.device))
    t = Trainer(TrainConfig(model=a.model, dataset=a.dataset, epochs=a.train_epochs, device=str(dev),
                            progress=False, eval_test=False, precision="fp32", channels_last=False))
    t.fit()
    model = t.model.float().eval()
    xs = ys = np.linspace(-1, 1, a.grid)
    chunks = tuple(int(c) for c in a.chunks.split(","))
    sizes = [one_size(model, t.data, int(n), xs, ys, dev, chunks, a.probe_points) for n in a.images.split(",")]
    print(json.dumps({"benchmark": "landscape_speed", **environment(dev), "model": a.model, "dataset": a.dataset,
                      "grid": f"{a.grid}x{a.grid}", "sizes": sizes}, indent=2))


if __name__ == "__main__":
    main()
