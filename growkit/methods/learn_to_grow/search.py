"""Learn-to-Grow's structure search for one new task (Li et al., ICML 2019, section 3.2).

For task ``t`` every layer ``l`` offers the candidates ``reuse j`` and ``adapt j``
for every existing copy ``j`` of ``S_l``, one ``new`` copy (2|S_l| + 1 choices, as
in the paper) and, with ``deeper``, ``deeper j`` (reuse copy ``j`` and stack a
ZeroInit residual block; the extension this kit adds, not in the paper). The
layer's output is the softmax-weighted sum of its candidates' outputs
(DARTS's continuous relaxation), ``x_{l+1} = sum_c softmax(alpha_l)_c g_c(x_l)``.
Each candidate has its own BatchNorm, initialised from the BN of the task that
owns copy ``j`` (so ``reuse j`` starts as that task's layer), a fresh one for
``new``.

The architecture weights ``alpha`` are optimised on the task's *validation*
split and the weights on its *training* split, alternating batch by batch, with
the first-order approximation (the weights are not unrolled). The validation
objective adds a parameter-cost term ``cost * sum_l sum_c softmax(alpha_l)_c
r_c`` with ``r_c`` the parameters candidate ``c`` makes the task own at the layer
(its BatchNorm, which every candidate has, plus the adapter, block or new copy),
divided by the weights of a new copy (:func:`choice_cost`: reuse the BN's share,
adapt the adapter's plus the BN's, deeper the block's plus the BN's, new 1 plus the
BN's; the BN's share is the same for every candidate of a layer, so it moves no
alpha gradient, it makes the charged cost of reuse honest):
the paper regularises the structure so that reuse is preferred when it is as
good; the exact form of this term is ours. The first ``warmup`` epochs train
only the weights (alpha stays uniform) so that ``new`` is not judged on its
random initialisation: a choice of ours too.

After the search every layer keeps the candidate with the largest weight; the
chosen candidate's trained modules (BN, adapter, block, new copy) become the
task's path, and are then trained further as that fixed structure.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...errors import GrowkitError
from .supernet import (OPS, LayerDef, SuperNet, TaskPath, clone, layer_forward, make_adapter, make_block,
                           make_bn, make_layer, numel, to_features, to_input)


def candidates(net: SuperNet, layer: int, allowed=OPS, deeper: bool = False) -> list[tuple[str, int]]:
    """The choices of ``layer`` for the next task, in a fixed order (reuse first: argmax ties keep it)."""
    d, n = net.defs[layer], len(net.copies[layer])
    out = [("reuse", j) for j in range(n)] + [("adapt", j) for j in range(n)]
    if deeper and d.kind == "conv":
        out += [("deeper", j) for j in range(n)]
    out.append(("new", n))
    out = [c for c in out if c[0] in allowed]
    if not out:
        raise GrowkitError(f"layer {layer} has no allowed choice among {list(allowed)} ({n} copies)")
    return out


def choice_cost(d: LayerDef, op: str, adapter: nn.Module | None = None, block: nn.Module | None = None) -> float:
    """The parameters a choice makes the task own at one layer, in units of a new copy's weights ``W``: the
    task's BatchNorm on the layer (``2C``: every choice has one, reuse included), plus the adapter, the block or
    the new copy. Reuse costs ``2C / W`` (not 0), new ``1 + 2C / W``; the differences between choices are the
    differences of their parameter counts over ``W``."""
    with torch.random.fork_rng(devices=[]):  # modules built only to be counted draw nothing from the run's stream
        bn, unit = numel(make_bn(d)), numel(make_layer(d))
        if op == "adapt":
            extra = numel(adapter if adapter is not None else make_adapter(d))
        elif op == "deeper":
            extra = numel(block if block is not None else make_block(d))
        else:
            extra = unit if op == "new" else 0
    return (bn + extra) / unit


class SearchLayer(nn.Module):
    def __init__(self, net: SuperNet, layer: int, cands: list[tuple[str, int]], new_init: str):
        super().__init__()
        d: LayerDef = net.defs[layer]
        self.d, self.cands = d, cands
        copies = net.copies[layer]

        def owner_bn(j):
            return net.paths[net.owner[layer][j]].bns[layer]

        self.bns = nn.ModuleList()
        for op, j in cands:
            if op != "new":
                self.bns.append(clone(owner_bn(j)))
            elif new_init == "copy" and len(copies):
                self.bns.append(clone(owner_bn(len(copies) - 1)))
            else:
                self.bns.append(make_bn(d))
        self.adapters = nn.ModuleDict({str(j): make_adapter(d) for op, j in cands if op == "adapt"})
        self.blocks = nn.ModuleDict({str(j): make_block(d) for op, j in cands if op == "deeper"})
        self.new = None
        if any(op == "new" for op, _ in cands):
            if new_init == "copy" and len(copies):
                self.new = clone(copies[-1])  # the newest copy, as a warm start
            elif new_init in ("reinit", "copy"):
                self.new = make_layer(d)
            else:
                raise GrowkitError(f"new_init must be 'reinit' or 'copy', got {new_init!r}")
        self.register_buffer("cost", torch.tensor([
            choice_cost(d, op, self.adapters[str(j)] if op == "adapt" else None,
                        self.blocks[str(j)] if op == "deeper" else None) for op, j in cands]))

    def op_output(self, c: int, x, copies):
        op, j = self.cands[c]
        return layer_forward(self.d, x, self.new if op == "new" else copies[j], self.bns[c],
                             self.adapters[str(j)] if op == "adapt" else None,
                             self.blocks[str(j)] if op == "deeper" else None)

    def forward(self, x, copies, w):
        if len(self.cands) == 1:
            return self.op_output(0, x, copies)
        out = 0
        for c in range(len(self.cands)):
            out = out + w[c] * self.op_output(c, x, copies)
        return out


class SearchNet(nn.Module):
    """The relaxed super network for the next task: every candidate of every layer, mixed by alpha."""

    def __init__(self, net: SuperNet, num_classes: int, allowed=OPS, deeper: bool = False,
                 new_init: str = "reinit"):
        super().__init__()
        object.__setattr__(self, "net", net)  # not a sub-module: the frozen copies are never our parameters
        self.layers = nn.ModuleList(SearchLayer(net, l, candidates(net, l, allowed, deeper), new_init)
                                    for l in range(len(net.defs)))
        # a layer with one candidate has nothing to learn: its alpha takes no gradient (Adam skips it, as it
        # would a parameter whose gradient is None), which also keeps DDP from waiting for one
        self.alpha = nn.ParameterList(nn.Parameter(torch.zeros(len(s.cands)), requires_grad=len(s.cands) > 1)
                                      for s in self.layers)
        self.head = nn.Linear(net.defs[-1].cout, num_classes)

    @property
    def searchable(self) -> bool:
        return any(len(s.cands) > 1 for s in self.layers)

    def forward(self, x):
        h = to_input(self.net.defs, x)
        for l, s in enumerate(self.layers):
            h = s(h, self.net.copies[l], F.softmax(self.alpha[l], 0))
            h = to_features(self.net.defs, l, h)
        return self.head(h)

    def arch_cost(self):
        return sum((F.softmax(a, 0) * s.cost).sum() for a, s in zip(self.alpha, self.layers))

    def arch_params(self) -> list[nn.Parameter]:
        return list(self.alpha)

    def weights_table(self) -> list[dict[str, float]]:
        """Per layer: candidate name -> softmax weight (what the record calls alpha)."""
        return [{f"{op}:{j}": float(w) for (op, j), w in zip(s.cands, F.softmax(a.detach(), 0).tolist())}
                for s, a in zip(self.layers, self.alpha)]

    def choices(self) -> list[tuple[str, int]]:
        return [s.cands[int(torch.argmax(a.detach()))] for s, a in zip(self.layers, self.alpha)]

    def materialize(self) -> tuple[TaskPath, dict[int, nn.Module]]:
        """The chosen structure as a task path (with the searched weights) and its new copies."""
        choices = self.choices()
        path = TaskPath(self.net.defs, choices, self.head.out_features)
        new = {}
        for l, (s, (op, j)) in enumerate(zip(self.layers, choices)):
            c = s.cands.index((op, j))
            path.bns[l].load_state_dict(s.bns[c].state_dict())
            if op == "adapt":
                path.adapters[str(l)].load_state_dict(s.adapters[str(j)].state_dict())
            elif op == "deeper":
                path.blocks[str(l)].load_state_dict(s.blocks[str(j)].state_dict())
            elif op == "new":
                new[l] = clone(s.new)
        path.head.load_state_dict(self.head.state_dict())
        path.to(self.head.weight.device)
        for p in path.parameters():
            p.requires_grad_(True)
        return path, new


def search(snet: SearchNet, data, cfg, *, seed: int) -> dict:
    """Alternate first-order alpha steps (validation batch) and weight steps (training batch), both through
    the shared passes (:mod:`growkit.methods.learn_to_grow.steps`): each epoch is one
    ``Passes.train_epoch`` of weight steps whose ``before_step`` hook takes the alpha step first.

    ``cfg`` gives the weights' optimizer (``cfg.optimizer`` from growkit.engine.optim's registry), ``lr`` and
    ``schedule``, ``epochs`` / ``warmup`` (``search_epochs``, ``warmup``), ``batch_size``, ``precision``,
    ``arch_lr``, ``arch_weight_decay`` and ``cost``. Returns the record: alpha (softmax weights per layer)
    after every epoch, and the last losses.
    """
    from ...engine import optim
    from . import ddp as l2g_ddp, steps
    epochs, warmup, batch_size, cost = cfg.search_epochs, cfg.warmup, cfg.batch_size, cfg.cost
    w_opt = optim.build(nn.ModuleDict({"layers": snet.layers, "head": snet.head}), cfg, cfg.lr)
    # DARTS's architecture optimizer: Adam, beta1 = 0.5, a small weight decay.
    a_opt = torch.optim.Adam(snet.arch_params(), lr=cfg.arch_lr, betas=(0.5, 0.999),
                             weight_decay=cfg.arch_weight_decay)
    xv, yv = data.subset("val", 1 << 30)
    if len(yv) < 2:
        raise GrowkitError(f"{data.info.name}: the search needs a validation split (at least 2 images)")
    g = torch.Generator().manual_seed(seed)
    passes, lr = steps.task_passes(data, cfg), steps.Schedule(cfg, epochs)
    history, last_w = [], steps.LastBatch()
    last_v = None  # (this rank's slice mean, its count, the cost term) of the last alpha step
    reg = []

    def penalty():  # the structure's cost: the same on every rank, so not weighted by the slice
        reg[:] = [cost * snet.arch_cost()]
        return reg[0]

    snet.train()
    with l2g_ddp.training(snet) as model:  # under torchrun: DDP, each rank a slice of every global batch
        for epoch in range(epochs):
            def before_step(step, x, y, alpha=epoch >= warmup):
                nonlocal last_v
                last_w.batch(step, x, y)
                if alpha:
                    idx = torch.randperm(len(yv), generator=g)[:batch_size].to(yv.device)
                    loss_v, n_v = passes.step(model, a_opt, xv[idx], yv[idx], penalty=penalty)
                    last_v = (loss_v, n_v, reg[0].detach())

            loss, _, n = passes.train_epoch(model, w_opt, None, seed * 1000 + epoch, lr_step=lr,
                                            before_step=before_step, on_batch=last_w.on_batch)
            steps.check_finite(loss, n, data, "search", epoch)
            history.append(snet.weights_table())
    # the records' losses are the global batches' (alpha's: cross-entropy plus that step's cost term)
    val_loss = float("nan") if last_v is None else l2g_ddp.batch_mean(*last_v[:2]) + float(last_v[2])
    return {"alpha_history": history, "search_val_loss": val_loss, "search_train_loss": last_w.mean()}
