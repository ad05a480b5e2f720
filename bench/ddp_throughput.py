"""Training throughput in one plain process vs under torchrun (DDP, shared BatchNorm, sliced global batches).

    python bench/ddp_throughput.py [--device cuda] [--nproc 1] [--epochs 5]

Both measurements use the same model, data, global batch and device, in the same run: a warm-up epoch,
then ``--epochs`` timed epochs of growkit's training pass; images/s counts the global batch (all ranks).
With ``--nproc 1`` the ratio is the cost of the distributed machinery on one device; with more processes
(one GPU each) it is the scaling. Prints JSON. No test asserts a timing.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def measure(a) -> dict:
    import torch

    from growkit.engine.config import TrainConfig
    from growkit.engine.trainer import Trainer
    cfg = TrainConfig(model=a.model, depths=[int(d) for d in a.depths.split("-")], dataset=a.dataset,
                      batch_size=a.batch_size, device=a.device, progress=False, eval_test=False)
    t = Trainer(cfg)
    sync = torch.cuda.synchronize if t.device.type == "cuda" else (lambda: None)
    t.train_epoch(t.opt, None, 0)  # warm-up (cuDNN autotuning, DDP buckets)
    sync()
    t0 = time.perf_counter()
    for e in range(a.epochs):
        t.train_epoch(t.opt, None, e + 1)
    sync()
    dt = time.perf_counter() - t0
    return {"images_per_s": t.data.size("train") * a.epochs / dt, "seconds": dt, "device": str(t.device)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--nproc", type=int, default=1)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--model", default="Basic3ResNet")
    p.add_argument("--depths", default="3-3-3")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker is not None:  # inside torchrun
        from growkit.dist import group as distributed
        res = measure(a)
        if distributed.is_main():
            Path(a.worker).write_text(json.dumps(res))
        return
    plain = measure(a)
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "ddp.json"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={a.nproc}",
               __file__, *sys.argv[1:], "--worker", str(out)]
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONWARNINGS="ignore::FutureWarning")
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if r.returncode != 0:
            sys.exit(f"torchrun failed:\n{r.stderr[-2000:]}")
        ddp = json.loads(out.read_text())
    print(json.dumps({"model": f"{a.model}-{a.depths}", "dataset": a.dataset, "batch_size": a.batch_size,
                      "epochs": a.epochs, "device": plain["device"], "nproc": a.nproc,
                      "plain_images_per_s": round(plain["images_per_s"], 1),
                      "torchrun_images_per_s": round(ddp["images_per_s"], 1),
                      "ratio_torchrun_to_plain": round(ddp["images_per_s"] / plain["images_per_s"], 3)}, indent=1))


if __name__ == "__main__":
    main()
