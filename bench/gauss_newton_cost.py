"""Cost of learning Gauss-Newton morphisms, measured against brute force in the same run.

Rows (same seed net, same mini-batch, same device, fp32, the model in the mode each needs):

* ``train_step``: one ordinary training step (train-mode forward, backward, SGD Nesterov step);
* ``gn_step``: one morphism-learning step for *every* channel of every eligible conv layer at once:
  :func:`growkit.methods.gauss_newton.estimate.estimate` (pass 1: the ordinary eval-mode forward and one
  gradient at every consumer's input; pass 2: the net on an empty batch, each producer's output replaced
  by ``[a + c, a - c]`` with ``c = conv(x, theta)``, so only the channelwise ops run on real data),
  ``d estimate / d theta`` and the Adam update of all thetas;
* ``bruteforce_full_step``: the same learning step done by expanding the net once per channel (each
  expanded net built beforehand, not timed) and running forward + backward through the whole expanded
  net to get that channel's theta gradient;
* ``bruteforce_step``: the same, with the shared prefix cached: one forward of the unexpanded net (a copy
  taken when the expanded nets were built, so ``train_step`` does not move it) keeps
  every producer's input (the layers below a split are unchanged), and each expanded net then runs on an
  empty batch whose producer receives the cached input (a forward pre-hook), so only the layers from the
  producer up run on real data and backpropagate. This is the fair brute force; the ratio uses it.

Ratios: ``gn_over_train_ratio`` (goal <= 3), ``bruteforce_over_gn`` (goal >= 50) and
``prefix_cache_speedup`` (full over cached brute force). Where the cost comes from: the GN step adds one
conv per layer (``conv(x, theta)``) and runs the cheap channelwise ops on two stacked batches; brute force
pays the part of a whole network above the split per channel. ``threads`` (``--threads``, default: torch's)
is recorded: CPU timings depend on it.

    python bench/gauss_newton_cost.py                 # CPU, 32x32 inputs, batch 64
    python bench/gauss_newton_cost.py --threads 1
    python bench/gauss_newton_cost.py --device cuda
"""
from __future__ import annotations

import argparse
import copy
import json
import time

import torch
import torch.nn.functional as F

from growkit.methods.gauss_newton import estimate as gn
from growkit.models import create
from growkit.engine.records import environment
from growkit.engine.surgery import SplitChannel


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def interleaved(fns: dict, device, repeats: int) -> dict:
    """Median seconds of each function, the functions taking turns within every repeat (after one
    warm-up each), so that load from other processes on a shared machine hits every row alike."""
    for fn in fns.values():
        fn()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[k].append(time.perf_counter() - t0)
    return {k: sorted(v)[len(v) // 2] for k, v in times.items()}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--model", default="VGG19")
    ap.add_argument("--width", type=int, default=16, help="seed width (the paper's VGG-19 seed: 16)")
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    args = ap.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    torch.manual_seed(args.seed)
    model = create(args.model, widths=args.width, in_channels=3, num_classes=10, image_size=args.image_size).to(device)
    x = torch.randn(args.batch, 3, args.image_size, args.image_size, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)

    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, nesterov=True, weight_decay=1e-4)

    def train_step():
        model.train()  # back to eval at the end: the other rows need it
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
        model.eval()

    model.eval()  # the GN step and brute force run in eval mode (BatchNorm on running statistics)
    thetas = gn.init_thetas(model, scale=0.1, generator=torch.Generator().manual_seed(args.seed))
    adam = gn.ThetaAdam(1e-2)

    def gn_step():
        est = gn.estimate(model, x, y, thetas)
        adam.step(thetas, gn.theta_grads(est, thetas))

    sites = gn.sites(model)
    prefix: dict[str, torch.Tensor] = {}  # producer -> its input on x (the layers below are not expanded)
    cached = {"on": False}
    expanded = []  # (net, producer weight) per channel, built before timing
    for gname, site in sites.items():
        for k in range(thetas[gname].shape[0]):
            net = copy.deepcopy(model).eval()
            SplitChannel(gname, k, {site.producer: thetas[gname][k].detach()}).apply(net)
            for p in net.parameters():
                p.requires_grad_(False)
            prod = net.get_submodule(site.producer)
            prod.register_forward_pre_hook(  # with the cache on, the producer gets the cached input
                lambda m, inp, name=site.producer: (prefix[name],) if cached["on"] else None)
            prod.weight.requires_grad_(True)
            expanded.append((net, prod.weight))
    base = copy.deepcopy(model).eval()  # the unexpanded net as the expanded ones were built from (train_step moves model)
    for site in sites.values():
        base.get_submodule(site.producer).register_forward_pre_hook(
            lambda m, inp, name=site.producer: prefix.__setitem__(name, inp[0].detach()))

    def bruteforce_full_step():
        cached["on"] = False
        for net, w in expanded:
            loss = F.cross_entropy(net(x), y)
            torch.autograd.grad(loss, w)  # the theta gradient is the difference of the two rows' gradients

    def bruteforce_step():
        with torch.no_grad():
            base(x)  # one forward keeps every producer's input (timed: part of the step)
        cached["on"] = True
        try:
            for net, w in expanded:  # an empty batch below the producer: only the layers above it run on x
                loss = F.cross_entropy(net(x[:0]), y)
                torch.autograd.grad(loss, w)
        finally:
            cached["on"] = False

    # the two brute forces agree (same theta gradients), checked once before timing
    cached["on"] = False
    for net, w in expanded[:: max(1, len(expanded) // 4)]:
        full = torch.autograd.grad(F.cross_entropy(net(x), y), w)[0]
        with torch.no_grad():
            base(x)
        cached["on"] = True
        part = torch.autograd.grad(F.cross_entropy(net(x[:0]), y), w)[0]
        cached["on"] = False
        assert torch.allclose(full, part, rtol=1e-4, atol=1e-6), "the cached prefix changes the gradient"

    fns = {"train": train_step, "gn": gn_step, "bruteforce_full": bruteforce_full_step,
           "bruteforce": bruteforce_step}
    t = interleaved(fns, device, args.repeats)
    t_train, t_gn, t_bf, t_full = t["train"], t["gn"], t["bruteforce"], t["bruteforce_full"]
    out = {"model": args.model, "width": args.width, "image_size": args.image_size, "batch": args.batch,
           "device": str(device), "threads": torch.get_num_threads(), "layers": len(sites),
           "morphisms": len(expanded), "train_step_s": t_train, "gn_step_s": t_gn,
           "bruteforce_full_step_s": t_full, "bruteforce_step_s": t_bf,
           "gn_over_train_ratio": t_gn / t_train, "bruteforce_over_gn": t_bf / t_gn,
           "prefix_cache_speedup": t_full / t_bf,
           "goals": {"gn_over_train_ratio": "<= 3", "bruteforce_over_gn": ">= 50"},
           "environment": environment(device)}
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
