"""GPT training throughput: growkit's language-model loop vs a loop written the way nanoGPT's train.py trains.

Reference loop (nanoGPT's train.py, written anew here): the tokens in a uint16 ``train.bin`` read through a
``numpy.memmap`` made afresh for every batch, windows stacked on the host (``torch.stack`` of
``torch.from_numpy`` slices), pinned and copied non-blocking on CUDA, the next batch fetched while the GPU
runs the forward; ``torch.optim.AdamW`` (fused on CUDA) with weight decay on 2-D parameters only; the
learning rate set every step; bf16 autocast on CUDA; gradient clipping at 1.0; ``loss.item()`` every 10 steps
(its log interval).

growkit loop: :meth:`growkit.methods.transformer_growth.LMRun.train_steps` on the same tokens held on the
device (windows cut with one gather), the registry's AdamW (fused on CUDA; the same hyper-parameters and
groups), the same schedule, clipping and precision, one host sync per timed round.

Same model (same initial weights), batch, context, device and precision; the two loops alternate rounds of
``--steps`` steps after one warm-up round each, so a shared machine's drifts hit both alike. Prints JSON: the
median tokens/s of each loop over the rounds (and the range), their ratio, and on CUDA the MFU from the
counted training multiply-adds (2 FLOPs each) against the card's dense bf16 peak.

    python bench/gpt_throughput.py --device cpu                     # the CPU check: growkit not slower
    python bench/gpt_throughput.py --device cuda --model GPT-6L-6H-384 --context 256 --batch-size 64 --compile
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from growkit.data.text import load_text
from growkit.engine.records import environment
from growkit.methods.transformer_growth import LMConfig, LMRun
from growkit.models import from_spec

# dense bf16 peak FLOP/s (no sparsity) by a substring of the device name
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 125e12, "4090": 165e12}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


class Reference:
    """nanoGPT's training loop around a given model."""

    def __init__(self, model, bin_path: Path, cfg: LMConfig, device: torch.device):
        self.model, self.path, self.cfg, self.device = model, bin_path, cfg, device
        decay = [p for p in model.parameters() if p.dim() >= 2]
        no_decay = [p for p in model.parameters() if p.dim() < 2]
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                      {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr,
                                     betas=tuple(cfg.betas), fused=device.type == "cuda" or None)
        self.ctx = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                    else contextlib.nullcontext())
        self.iter = 0
        self.gen = torch.Generator().manual_seed(1)
        self.batch = self.get_batch()

    def get_batch(self):
        data = np.memmap(self.path, dtype=np.uint16, mode="r")  # afresh each batch, as nanoGPT does
        T, B = self.cfg.context, self.cfg.batch_size
        ix = torch.randint(len(data) - T, (B,), generator=self.gen)
        x = torch.stack([torch.from_numpy(data[i:i + T].astype(np.int64)) for i in ix.tolist()])
        y = torch.stack([torch.from_numpy(data[i + 1:i + 1 + T].astype(np.int64)) for i in ix.tolist()])
        if self.device.type == "cuda":
            return (x.pin_memory().to(self.device, non_blocking=True),
                    y.pin_memory().to(self.device, non_blocking=True))
        return x, y

    def get_lr(self, it, total):
        c = self.cfg
        if it < c.warmup:
            return c.lr * (it + 1) / c.warmup
        ratio = min((it - c.warmup) / max(total - c.warmup, 1), 1.0)
        return c.final_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (c.lr - c.final_lr)

    def steps(self, n, total):
        self.model.train()
        x, y = self.batch
        for _ in range(n):
            lr = self.get_lr(self.iter, total)
            for g in self.opt.param_groups:
                g["lr"] = lr
            with self.ctx:
                logits = self.model(x)
                loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
            x, y = self.get_batch()  # prefetch while the device works
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
            if self.iter % 10 == 0:
                _ = loss.item()
            self.iter += 1
        self.batch = (x, y)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--model", default="GPT-2L-2H-64")
    p.add_argument("--context", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=20, help="steps per timed round")
    p.add_argument("--rounds", type=int, default=5, help="timed rounds per loop (after one warm-up round)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model in both loops")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    a = p.parse_args()
    device = torch.device("cuda" if a.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if a.device == "auto" else a.device))
    if a.threads:
        torch.set_num_threads(a.threads)
    total = a.steps * (a.rounds + 1)
    cfg = LMConfig(model=a.model, context=a.context, batch_size=a.batch_size, steps=total, lr=1e-3, warmup=2,
                   device=str(device), compile=a.compile, eval_windows=1)
    data = load_text(cfg.dataset, context=cfg.context, device=device)
    run = LMRun(cfg, data=data)
    ref_model = from_spec(run.model.spec).to(device)
    ref_model.load_state_dict(run.model.state_dict())  # the same initial weights
    if a.compile:
        ref_model = torch.compile(ref_model)
    with tempfile.TemporaryDirectory() as tmp:
        bin_path = Path(tmp) / "train.bin"
        np.asarray(data.arrays["train"], dtype=np.uint16).tofile(bin_path)
        ref = Reference(ref_model, bin_path, cfg, device)
        loops = {"reference": lambda: ref.steps(a.steps, total), "growkit": lambda: run.train_steps(a.steps)}
        rates = {k: [] for k in loops}
        for r in range(a.rounds + 1):  # round 0 warms up both loops (kernels, compilation, allocator)
            for key, fn in loops.items():
                sync(device)
                t0 = time.perf_counter()
                fn()
                sync(device)
                if r:
                    rates[key].append(a.steps * a.batch_size * a.context / (time.perf_counter() - t0))
    med = {k: float(np.median(v)) for k, v in rates.items()}
    flops_per_token = 2 * run.macs_per_token  # counted training multiply-adds, 2 FLOPs each
    out = {"benchmark": "gpt_throughput", **environment(device),
           "model": a.model, "params": run.params, "context": a.context, "batch": a.batch_size,
           "steps_per_round": a.steps, "rounds": a.rounds, "compile": a.compile,
           "precision": "bf16 autocast" if device.type == "cuda" else "fp32",
           "train_macs_per_token": run.macs_per_token,
           "reference_tok_s": round(med["reference"], 1), "growkit_tok_s": round(med["growkit"], 1),
           "ratio": round(med["growkit"] / med["reference"], 3),
           "spread_tok_s": {k: [round(min(v), 1), round(max(v), 1)] for k, v in rates.items()}}
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
        out["peak_bf16_flops"] = peak
        for k in ("reference", "growkit"):
            out[f"{k}_mfu"] = None if peak is None else round(med[k] * flops_per_token / peak, 4)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
