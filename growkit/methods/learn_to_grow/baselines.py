"""The baselines on one shared network (:class:`SharedNet`: weights and BNs shared, a head per task): fine-tuning,
EWC (:func:`fisher_diagonal`, :func:`ewc_penalty`, :func:`ewc_objective`) and joint multi-task training
(:class:`JointData`, :class:`JointForward`, :func:`joint_objective`). The per-task loop that uses them is
:func:`growkit.methods.learn_to_grow.loop.learn_shared`."""
from __future__ import annotations

import torch
import torch.nn as nn

from .supernet import layer_forward, make_bn, make_layer, to_features, to_input


class SharedNet(nn.Module):
    """One network for every task (weights and BNs shared), a head per task: fine-tuning, EWC and joint
    training. With ``ewc_tasks`` it holds EWC's per-task Fisher diagonals and anchors as buffers
    (``ewc_fisher[k]``, ``ewc_anchor[k]``, flat over :meth:`shared_parameters`; zero for tasks not learned),
    so they travel with the task checkpoints; buffers are not counted as parameters."""

    def __init__(self, defs, in_channels: int, image_size: int, num_classes: list[int], ewc_tasks: int = 0):
        super().__init__()
        self.defs = defs
        self.layers = nn.ModuleList(make_layer(d) for d in defs)
        self.bns = nn.ModuleList(make_bn(d) for d in defs)
        self.heads = nn.ModuleList(nn.Linear(defs[-1].cout, k) for k in num_classes)
        if ewc_tasks:
            n = sum(p.numel() for p in self.shared_parameters())
            self.register_buffer("ewc_fisher", torch.zeros(ewc_tasks, n))
            self.register_buffer("ewc_anchor", torch.zeros(ewc_tasks, n))

    @property
    def spec(self) -> dict:  # what a checkpoint records of the structure (rebuilt from the config)
        return {"name": "SharedNet", "layers": len(self.defs), "heads": [h.out_features for h in self.heads]}

    def shared_parameters(self) -> list[nn.Parameter]:
        """The weights and BN parameters every task shares (not the heads), in a fixed order."""
        return list(self.layers.parameters()) + list(self.bns.parameters())

    def features(self, x):
        h = to_input(self.defs, x)
        for l, d in enumerate(self.defs):
            h = to_features(self.defs, l, layer_forward(d, h, self.layers[l], self.bns[l]))
        return h

    def forward(self, x, task: int):
        return self.heads[task](self.features(x))


def fisher_diagonal(net: SharedNet, task: int, data, n: int, seed: int = 0) -> torch.Tensor:
    """The empirical Fisher diagonal of ``net``'s shared parameters for one task: the mean over up to ``n`` of
    its (unaugmented) training images of the squared gradient of ``log p(y | x)`` at the true label, one image
    at a time (BNs in eval mode, their running statistics). Flat, in :meth:`SharedNet.shared_parameters` order."""
    params = net.shared_parameters()
    was = [p.requires_grad for p in params]
    x, y = data.subset("train", n, seed)
    net.eval()
    fisher = torch.zeros(sum(p.numel() for p in params), device=x.device, dtype=params[0].dtype)
    try:
        for p in params:
            p.requires_grad_(True)
        for i in range(len(y)):
            loss = nn.functional.cross_entropy(net(x[i:i + 1], task).float(), y[i:i + 1])
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            fisher += torch.cat([(torch.zeros_like(p) if g is None else g).flatten() for p, g in
                                 zip(params, grads)]) ** 2
    finally:
        for p, w in zip(params, was):
            p.requires_grad_(w)
    return fisher / max(len(y), 1)


def ewc_penalty(theta: torch.Tensor, anchors: torch.Tensor, fishers: torch.Tensor, lam: float) -> torch.Tensor:
    """``lam / 2 * sum_k sum_i F[k, i] * (theta[i] - anchors[k, i])^2`` (a task not learned yet has F = 0)."""
    return 0.5 * lam * (fishers * (theta[None, :] - anchors) ** 2).sum()


def ewc_objective(net: SharedNet, lam: float):
    """Cross-entropy plus the EWC penalty of ``net``'s shared parameters: an objective for the shared passes."""
    def objective(model, x, y):
        theta = torch.cat([p.flatten() for p in net.shared_parameters()])
        ce = nn.functional.cross_entropy(model(x), y)
        return ce + ewc_penalty(theta, net.ewc_anchor, net.ewc_fisher, lam).to(ce.dtype)
    return objective


class JointData:
    """The training splits of several tasks as one: every epoch each task's own augmented, normalised epoch,
    pooled and shuffled; a label ``y`` of task ``k`` comes as ``offsets[k] + y``. What the passes need of a
    dataset (``train_batches``, ``size``, ``device``, ``info``). Each epoch holds the pooled images as floats on
    the device (for permuted MNIST's 10 tasks about 1.7 GB)."""

    def __init__(self, tasks):
        import dataclasses as dc
        self.tasks = list(tasks)
        self.device = self.tasks[0].device
        self.offsets = [0]
        for t in self.tasks[:-1]:
            self.offsets.append(self.offsets[-1] + t.info.num_classes)
        self.info = dc.replace(self.tasks[0].info, name=f"joint of {len(self.tasks)} tasks",
                               num_classes=self.offsets[-1] + self.tasks[-1].info.num_classes)

    def size(self, split: str) -> int:
        return sum(t.size(split) for t in self.tasks)

    def train_batches(self, batch_size: int, seed: int):
        xs, ys = [], []
        for k, t in enumerate(self.tasks):
            for x, y in t.train_batches(t.size("train"), seed * 1009 + k):
                xs.append(x)
                ys.append(y + self.offsets[k])
        x, y = torch.cat(xs), torch.cat(ys)
        perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed)).to(y.device)
        for start in range(0, len(y), batch_size):
            idx = perm[start:start + batch_size]
            if len(idx) < 2:  # BatchNorm cannot normalise a batch of one
                break
            yield x[idx], y[idx]


class JointForward(nn.Module):
    """The heads of tasks 0..``upto`` side by side: ``forward(x)`` = their logits concatenated."""

    def __init__(self, net: SharedNet, upto: int):
        super().__init__()
        self.net, self.upto = net, upto

    def forward(self, x):
        h = self.net.features(x)
        return torch.cat([self.net.heads[k](h) for k in range(self.upto + 1)], 1)


def joint_objective(offsets: list[int], sizes: list[int]):
    """Cross-entropy of every image within its own task's head: the other heads' logits are masked out."""
    def objective(model, x, y):
        out = model(x)
        lo = torch.as_tensor(offsets, device=y.device)
        task = torch.bucketize(y, lo, right=True) - 1
        start = lo[task]
        end = start + torch.as_tensor(sizes, device=y.device)[task]
        cols = torch.arange(out.shape[1], device=y.device)[None, :]
        mine = (cols >= start[:, None]) & (cols < end[:, None])
        return nn.functional.cross_entropy(out.float().masked_fill(~mine, float("-inf")), y)
    return objective
