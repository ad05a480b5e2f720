"""Cost of learning Gauss-Newton morphisms, measured against two baselines in the same run.

Rows (same VGG-19 seed, same mini-batch, same device, fp32, model in the mode each needs):

* ``train_step``: one ordinary training step (train-mode forward, backward, SGD Nesterov step);
* ``gn_step``: one morphism-learning step for *every* channel of every conv layer at once:
  :func:`growkit.methods.gauss_newton.estimate.estimate` (one forward with the stacked ``[a, a+c, a-c]`` batch
  through the channelwise ops, gradients at the consumers' inputs), ``d estimate / d theta``
  and the Adam update of all thetas;
* ``bruteforce_step``: the same learning step done by expanding the net once per channel
  (each expanded net built beforehand, not timed) and running forward + backward through it
  to get that channel's theta gradient: one full pass per channel.

Ratios: ``gn_over_train_ratio`` (goal <= 3) and ``bruteforce_over_gn`` (goal >= 50).
Where the cost comes from: the GN step adds one conv per layer (``conv(x, theta)``) and runs the
cheap channelwise ops on three batches; brute force pays a whole network per channel.

    python bench/gauss_newton_cost.py                 # CPU, 32x32 inputs, batch 64
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
    args = ap.parse_args(argv)
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
    expanded = []  # (net, producer weight) per channel, built before timing
    for gname, site in sites.items():
        for k in range(thetas[gname].shape[0]):
            net = copy.deepcopy(model).eval()
            SplitChannel(gname, k, {site.producer: thetas[gname][k].detach()}).apply(net)
            for p in net.parameters():
                p.requires_grad_(False)
            w = net.get_submodule(site.producer).weight
            w.requires_grad_(True)
            expanded.append((net, w))

    def bruteforce_step():
        for net, w in expanded:
            loss = F.cross_entropy(net(x), y)
            torch.autograd.grad(loss, w)  # the theta gradient is the difference of the two rows' gradients

    t = interleaved({"train": train_step, "gn": gn_step, "bruteforce": bruteforce_step}, device, args.repeats)
    t_train, t_gn, t_bf = t["train"], t["gn"], t["bruteforce"]
    out = {"model": args.model, "width": args.width, "image_size": args.image_size, "batch": args.batch,
           "device": str(device), "layers": len(sites), "morphisms": len(expanded),
           "train_step_s": t_train, "gn_step_s": t_gn, "bruteforce_step_s": t_bf,
           "gn_over_train_ratio": t_gn / t_train, "bruteforce_over_gn": t_bf / t_gn,
           "goals": {"gn_over_train_ratio": "<= 3", "bruteforce_over_gn": ">= 50"},
           "environment": environment(device)}
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
