"""Training throughput: growkit's loop vs a loop written the way the official AutoGrow code trains.

Reference loop (the authors' cifar10/main_gradual.py style): a torchvision-style
dataset of PIL images, per-image transforms (RandomCrop with padding, flip,
ToTensor, Normalize) in a DataLoader with 2 workers, fp32, default memory
format, and two host syncs per step (loss.item(), correct.item()).

growkit loop: growkit.engine.trainer.Trainer.train_epoch over growkit.data.ResidentData
(uint8 on the device, batched crop/flip), bf16 autocast and channels_last on
CUDA, one host sync per epoch. A second growkit row runs the same loop in fp32
without channels_last, so on a GPU the ratio of that row is the data path and
host syncs alone, and the gap between the two growkit rows is precision and
memory format (on a CPU both rows are fp32).

Same model, batch size, images and device, measured in the same process, the
three loops' epochs alternated; prints JSON with the median images/second of
each loop over the timed epochs (and their range) and the ratios.

    python bench/train_throughput.py                      # CPU: digits and CIFAR-shaped
    python bench/train_throughput.py --device cuda --n-images 50000
    python bench/train_throughput.py --epochs 2 --n-images 256   # a quick check that it runs
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from growkit import models
from growkit.engine.config import TrainConfig
from growkit.data import ResidentData
from growkit.engine.records import environment
from growkit.engine.trainer import Trainer


class PILImages(torch.utils.data.Dataset):
    """What torchvision's CIFAR10 does per item: a PIL image from the uint8 array, then transforms."""

    def __init__(self, x_nhwc: np.ndarray, y: np.ndarray, transform):
        self.x, self.y, self.transform = x_nhwc, y, transform

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        img = Image.fromarray(self.x[i].squeeze(-1) if self.x.shape[-1] == 1 else self.x[i])
        return self.transform(img), int(self.y[i])


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def reference_epoch(model, loader, opt, device):
    model.train()
    seen = 0
    for inputs, targets in loader:
        inputs, targets = inputs.to(device), targets.to(device)
        opt.zero_grad()
        out = model(inputs)
        loss = F.cross_entropy(out, targets)
        loss.backward()
        opt.step()
        _ = loss.item()
        _ = out.max(1)[1].eq(targets).sum().item()
        seen += len(targets)
    sync(device)
    return seen


def bench_one(name, x, y, info, model_name, batch, epochs, device):
    """Median images/s of the reference loop, growkit's default loop and growkit in fp32, epochs alternated
    (reference, growkit, growkit fp32, reference, ...) so drifts of a shared machine hit every loop alike."""
    from torchvision import transforms as T

    mean = (x.astype(np.float64) / 255).mean(axis=(0, 2, 3))
    std = (x.astype(np.float64) / 255).std(axis=(0, 2, 3))
    tf = [T.RandomCrop(info.image_size, padding=info.crop_pad)]
    if info.flip:
        tf.append(T.RandomHorizontalFlip())
    tf += [T.ToTensor(), T.Normalize(mean.tolist(), std.tolist())]
    loader = torch.utils.data.DataLoader(PILImages(x.transpose(0, 2, 3, 1), y, T.Compose(tf)), batch_size=batch,
                                         shuffle=True, num_workers=2, persistent_workers=True)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    # reference
    torch.manual_seed(0)
    model = models.create(model_name, in_channels=info.channels, num_classes=info.num_classes,
                          image_size=info.image_size).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)

    def growkit_trainer(precision, channels_last):
        cfg = TrainConfig(model=model_name, dataset=info.name, batch_size=batch, device=str(device), progress=False,
                          lr=0.1, eval_test=False, precision=precision, channels_last=channels_last)
        data = ResidentData(info, (x, y), (x[:0], y[:0]), (x[:0], y[:0]), device=device,
                            channels_last=bool(channels_last))
        return Trainer(cfg, data=data)

    cuda = device.type == "cuda"
    loops = {"reference": lambda e: reference_epoch(model, loader, opt, device)}
    for key, prec, cl in (("growkit", "auto", cuda), ("growkit_fp32", "fp32", False)):
        tr = growkit_trainer(prec, cl)
        loops[key] = (lambda e, tr=tr: (tr.train_epoch(tr.opt, None, seed=e), tr.data.size("train"))[1])
    rates = {k: [] for k in loops}
    for e in range(epochs + 1):  # epoch 0 is a warm-up for every loop (workers, cuDNN autotuning)
        for key, run in loops.items():
            sync(device)
            t0 = time.perf_counter()
            seen = run(e)
            sync(device)
            if e:
                rates[key].append(seen / (time.perf_counter() - t0))
    med = {k: float(np.median(v)) for k, v in rates.items()}
    return {"data": name, "model": model_name, "batch": batch, "images": int(len(y)), "timed_epochs": epochs,
            "reference_img_s": round(med["reference"], 1), "growkit_img_s": round(med["growkit"], 1),
            "growkit_fp32_img_s": round(med["growkit_fp32"], 1),
            "ratio": round(med["growkit"] / med["reference"], 2),
            "ratio_fp32": round(med["growkit_fp32"] / med["reference"], 2),
            "spread_img_s": {k: [round(min(v), 1), round(max(v), 1)] for k, v in rates.items()}}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--model", default="Basic3ResNet-3-3-3")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--n-images", type=int, default=2048, help="CIFAR-shaped random images")
    p.add_argument("--epochs", type=int, default=10, help="timed epochs per loop (after one warm-up epoch)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    a = p.parse_args()
    device = torch.device("cuda" if a.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if a.device == "auto" else a.device))
    if a.threads:
        torch.set_num_threads(a.threads)
    results = []
    from growkit.data import _load_digits, dataset_info
    (xd, yd), _ = _load_digits(0)
    results.append(bench_one("digits", xd, yd, dataset_info("digits"), a.model, a.batch_size, a.epochs, device))
    rng = np.random.default_rng(0)
    xc = rng.integers(0, 256, (a.n_images, 3, 32, 32), dtype=np.uint8)
    yc = (np.arange(a.n_images) % 10).astype(np.int64)
    results.append(bench_one("cifar-shaped", xc, yc, dataset_info("cifar10"), a.model, a.batch_size, a.epochs,
                             device))
    print(json.dumps({"benchmark": "train_throughput", **environment(device), "results": results}, indent=2))


if __name__ == "__main__":
    main()
