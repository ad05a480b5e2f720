"""Cost of one curvature probe relative to a training epoch, and against a plain reference, in the same run.

Rows (same model, same data, same device, fp32, the model in eval mode for the curvature):

* ``epoch``: one ordinary training epoch of the trainer over the training split (after a warm-up epoch);
* ``kit_top``: the Hessian's top eigenvalue, :func:`growkit.engine.curvature.top_eigen` (``curvlinops``
  Hessian operator, Lanczos via ``scipy.sparse.linalg.eigsh`` to relative tolerance ``--tol``);
* ``kit_trace``: the Hessian trace, :func:`growkit.engine.curvature.hutchinson` with ``--probes`` Rademacher
  probes (the operator multiplies them as a block, ``torch.func`` vmapped);
* ``ref_top``: a hand-written power iteration over ``torch.autograd.grad`` Hessian-vector products (double
  backward, one probe vector at a time, as PyHessian does it), stopped when the eigenvalue estimate changes by
  less than ``--tol`` relative between iterations (a looser stop than Lanczos' residual test);
* ``ref_trace``: Hutchinson with the same number of probes through the same autograd HVPs.

Each curvature row runs on the probe subset (``--images`` training images, unaugmented). Ratios:
``probe_over_epoch`` ((kit_top + kit_trace) / epoch), ``ref_over_kit`` for the top eigenvalue and for the
trace; the eigenvalues and traces of both are printed so their agreement is visible. Where the cost comes
from: an HVP is about two to three forward-backward passes over the probe; Lanczos needs fewer products
than power iteration for the same tolerance (its convergence depends on the gap, power iteration's on the
ratio of the top two eigenvalues); the kit's trace multiplies a block of probes per pass. ``s_per_product`` separates the two: the number of
products each method needed, and what one product costs (``curvlinops``' forward-over-reverse ``torch.func``
product vs plain double backward).

    python bench/curvature_cost.py                     # CPU, digits, Basic3ResNet-1-1-1
    python bench/curvature_cost.py --device cuda --dataset cifar10 --model Basic3ResNet-3-3-3
"""
from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from growkit.engine import curvature as C
from growkit.engine.config import TrainConfig
from growkit.engine.passes import derive_seed
from growkit.engine.records import environment
from growkit.engine.trainer import Trainer


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device):
    _sync(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - t0, out


class AutogradHVP:
    """Hessian-vector products of the mean cross-entropy over the probe by double backward (the reference)."""

    def __init__(self, model, batches):
        self.model, self.batches = model, batches
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.n = sum(len(y) for _, y in batches)
        self.products = 0

    def __call__(self, vs: list[torch.Tensor]) -> list[torch.Tensor]:
        self.products += 1
        out = [torch.zeros_like(p) for p in self.params]
        for x, y in self.batches:
            loss = F.cross_entropy(self.model(x), y, reduction="sum") / self.n
            g = torch.autograd.grad(loss, self.params, create_graph=True)
            hv = torch.autograd.grad(g, self.params, grad_outputs=vs)
            for o, h in zip(out, hv):
                o += h.detach()
        return out


def power_iteration(hvp: AutogradHVP, tol: float, max_iter: int, seed: int) -> float:
    g = torch.Generator().manual_seed(seed)
    v = [torch.randn(p.shape, generator=g).to(p) for p in hvp.params]
    lam = None
    for _ in range(max_iter):
        norm = torch.sqrt(sum((t * t).sum() for t in v))
        v = [t / norm for t in v]
        hv = hvp(v)
        new = sum((a * b).sum() for a, b in zip(v, hv)).item()
        if lam is not None and abs(new - lam) <= tol * abs(new):
            return new
        lam, v = new, hv
    return lam


def ref_trace(hvp: AutogradHVP, probes: int, seed: int) -> float:
    g = torch.Generator().manual_seed(seed)
    total = 0.0
    for _ in range(probes):
        z = [(torch.randint(0, 2, p.shape, generator=g) * 2 - 1).to(p) for p in hvp.params]
        total += sum((a * b).sum() for a, b in zip(z, hvp(z))).item()
    return total / probes


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="Basic3ResNet-1-1-1")
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--images", type=int, default=256, help="probe subset size")
    ap.add_argument("--probes", type=int, default=16, help="Hutchinson probes")
    ap.add_argument("--tol", type=float, default=1e-3, help="relative tolerance of the top eigenvalue")
    ap.add_argument("--max-iter", type=int, default=500, help="power iteration's cap on HVPs")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = TrainConfig(model=args.model, dataset=args.dataset, device=args.device, batch_size=args.batch_size,
                      epochs=2, progress=False, eval_test=False, precision="fp32", seed=0)
    t = Trainer(cfg)
    device = t.device
    seed = derive_seed(0, "epoch")
    t.train_epoch(t.opt, None, seed)  # warm-up, and a model that has trained a little
    epoch_s, _ = timed(lambda: t.train_epoch(t.opt, None, seed + 1), device)
    x, y = t.data.subset("train", args.images, seed=0)
    batches = [(x[s:s + 256], y[s:s + 256]) for s in range(0, len(y), 256)]
    model = t.model
    with C.eval_mode(model):
        op = C.operator(model, batches, "hessian")
        counter = {"n": 0}
        matvec = op._matmat

        def counted(X):
            counter["n"] += X[0].shape[-1]
            return matvec(X)
        op._matmat = counted
        kit_top_s, (vals, _) = timed(lambda: C.top_eigen(op, 1, args.tol, seed=1), device)
        kit_top_products = counter["n"]
        kit_trace_s, tr = timed(lambda: C.hutchinson(op, args.probes, seed=2), device)
        hvp = AutogradHVP(model, batches)
        ref_top_s, ref_top = timed(lambda: power_iteration(hvp, args.tol, args.max_iter, seed=1), device)
        ref_top_products = hvp.products
        ref_trace_s, ref_tr = timed(lambda: ref_trace(hvp, args.probes, seed=2), device)
    out = {
        "model": args.model, "dataset": args.dataset, "params": sum(p.numel() for p in model.parameters()),
        "train_images": t.data.size("train"), "probe_images": len(y), "probes": args.probes, "tol": args.tol,
        "mode": "eval (BatchNorm running statistics), fp32", "threads": torch.get_num_threads(),
        "rows_s": {"epoch": epoch_s, "kit_top": kit_top_s, "kit_trace": kit_trace_s, "ref_top": ref_top_s,
                   "ref_trace": ref_trace_s},
        "products": {"kit_top": kit_top_products, "ref_top": ref_top_products, "trace": args.probes},
        "top_eigenvalue": {"kit": float(vals[0]), "ref": ref_top},
        "trace": {"kit": tr["trace"], "kit_se": tr["se"], "ref": ref_tr},
        "s_per_product": {"kit_top": kit_top_s / max(kit_top_products, 1), "ref_top": ref_top_s / max(ref_top_products, 1),
                          "kit_trace": kit_trace_s / args.probes, "ref_trace": ref_trace_s / args.probes},
        "probe_over_epoch": (kit_top_s + kit_trace_s) / epoch_s,
        "ref_over_kit_top": ref_top_s / kit_top_s, "ref_over_kit_trace": ref_trace_s / kit_trace_s,
        "environment": environment(device),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
