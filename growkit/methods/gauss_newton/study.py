"""The Gauss-Newton paper's studies as functions the ``gauss_newton_*`` notebooks call.

* :func:`learn_morphisms`: section 4.1's protocol on a trained net: learn theta for every channel of
  the chosen layers with Adam (lr 1e-2) for some epochs, the model frozen, keeping the moving
  average (weight B / (2N)) of each morphism's estimated loss change.
* :func:`true_delta`: the brute-force truth: expand the net by one morphism and measure the change
  of the mean cross-entropy on a held-out split (eval mode). The paper measures on the test set; we
  use the validation split (the test split stays for reporting accuracies).
* :func:`estimate_vs_truth` (Figure 3) and :func:`morphism_quality` (Figure 4).
* :func:`gauss_newton`: a named ``gauss-newton`` search run (through the run cache).

The figures are drawn by :mod:`growkit.methods.gauss_newton.plots`.

Figure 4's baselines, defined concretely:

* *expanded*: build the expanded net for one channel and optimise its theta with Adam (lr 1e-2) on
  the true training loss of that net, same mini-batches and number of steps as the Gauss-Newton
  learning; one whole forward + backward per channel and step.
* *steepest descent + line search*: the first-order direction vanishes at theta = 0, so the
  direction is taken at the same small random start theta_0 that the other two methods start from:
  ``d = -grad_theta L_expanded(theta_0)`` (summed over ``probe_batches`` training batches),
  normalised; the step ``t`` is the best of a geometric grid of scales relative to ``|w_in|``
  (and 0), judged by the true expanded training loss on the same batches; theta = theta_0 + t d.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch.func import functional_call

from ...engine.surgery import PruneChannel, SplitChannel
from ...engine.trainer import resolve_device
from ...papers import study
from ...runs import cache
from ...runs.records import load_data, load_model
from . import estimate as gn
from .method import GaussNewtonConfig


def _mean_loss(model, batches) -> float:
    total, n = 0.0, 0
    with torch.no_grad():
        for x, y in batches:
            total += F.cross_entropy(model(x), y, reduction="sum").item()
            n += len(y)
    return total / max(n, 1)


def learn_morphisms(model, data, groups, epochs: int, *, batch_size: int = 64, lr: float = 1e-2,
                    theta_init: float = 1e-2, seed: int = 0, loss_ref: str = "batch") -> dict:
    """Learned thetas and moving averages of the estimates (``{"thetas", "split", "prune", "theta0"}``)."""
    model.eval()
    thetas = gn.init_thetas(model, groups, scale=theta_init, generator=torch.Generator().manual_seed(seed))
    theta0 = {g: t.detach().clone() for g, t in thetas.items()}
    adam, ema = gn.ThetaAdam(lr), {"split": {}, "prune": {}}
    n = data.size("train")
    for e in range(epochs):
        gn.learn_epoch(model, data.train_batches(batch_size, seed * 1000 + e), thetas, adam, ema,
                       lambda b: gn.ema_momentum(b, n), loss_ref)
    return {"thetas": thetas, "theta0": theta0, "split": ema["split"], "prune": ema["prune"]}


def true_delta(model, group: str, channel: int, theta: torch.Tensor | None, batches, base: float | None = None
               ) -> float:
    """Brute force: mean loss of the net expanded by one split (``theta``) or prune (None) minus the net's."""
    model.eval()
    batches = list(batches)
    base = _mean_loss(model, batches) if base is None else base
    big = copy.deepcopy(model).eval()
    producer = gn.sites(model)[group].producer
    plan = PruneChannel(group, channel) if theta is None else SplitChannel(group, channel, {producer: theta.detach()})
    plan.apply(big)
    return _mean_loss(big, batches) - base


def _ranks(v: torch.Tensor) -> torch.Tensor:
    order = v.argsort()
    r = torch.empty_like(v)
    r[order] = torch.arange(len(v), dtype=v.dtype)
    for val in v.unique():  # ties share their mean rank
        m = v == val
        if m.sum() > 1:
            r[m] = r[m].mean()
    return r


def pearson(a, b) -> float:
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    a, b = a - a.mean(), b - b.mean()
    den = (a.norm() * b.norm()).item()
    return float("nan") if den == 0 else (a @ b).item() / den


def spearman(a, b) -> float:
    return pearson(_ranks(torch.as_tensor(a, dtype=torch.float64)), _ranks(torch.as_tensor(b, dtype=torch.float64)))


def estimate_vs_truth(model, data, groups, learned: dict, split: str = "val") -> tuple[list[dict], list[dict]]:
    """Figure 3: per split morphism of ``groups``, the moving-average estimate against the brute-force
    truth on ``split``; and per layer the Pearson / Spearman correlations."""
    batches = list(data.eval_batches(split))
    base = _mean_loss(model, batches)
    rows, stats = [], []
    for g in groups:
        est = learned["split"][g].detach().cpu()
        truth = [true_delta(model, g, k, learned["thetas"][g][k], batches, base) for k in range(len(est))]
        rows += [{"layer": g, "channel": k, "estimated": float(est[k]), "true": truth[k]} for k in range(len(est))]
        stats.append({"layer": g, "channels": len(est), "pearson": pearson(est, truth),
                      "spearman": spearman(est, truth)})
    return rows, stats


def _expanded_loss_fn(model, group: str, channel: int):
    """(expanded net, f(theta, x, y) -> mean loss) with theta entering the two halves' incoming rows."""
    producer = gn.sites(model)[group].producer
    big = copy.deepcopy(model).eval()
    SplitChannel(group, channel).apply(big)
    for p in big.parameters():
        p.requires_grad_(False)
    base = big.get_submodule(producer).weight.detach()
    c = base.shape[0] - 1  # the copy went to the end

    def loss(theta, x, y):
        w = base.clone()
        w[channel] = w[channel] + theta
        w[c] = w[c] - theta
        return F.cross_entropy(functional_call(big, {f"{producer}.weight": w}, (x,)), y)
    return big, loss


def optimise_expanded(model, data, group: str, channel: int, theta0: torch.Tensor, epochs: int, *,
                      batch_size: int = 64, lr: float = 1e-2, seed: int = 0) -> torch.Tensor:
    """Figure 4's *expanded* baseline: Adam on the true loss of the expanded net."""
    _, loss = _expanded_loss_fn(model, group, channel)
    theta = theta0.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([theta], lr=lr)
    for e in range(epochs):
        for x, y in data.train_batches(batch_size, seed * 1000 + e):
            opt.zero_grad()
            loss(theta, x, y).backward()
            opt.step()
    return theta.detach()


def steepest_descent(model, data, group: str, channel: int, theta0: torch.Tensor, *, batch_size: int = 64,
                     probe_batches: int = 8, grid: int = 12, seed: int = 0) -> torch.Tensor:
    """Figure 4's *steepest descent + line search* baseline (see the module docstring)."""
    _, loss = _expanded_loss_fn(model, group, channel)
    batches = [b for _, b in zip(range(probe_batches), data.train_batches(batch_size, seed * 1000))]
    theta = theta0.detach().clone().requires_grad_(True)
    total = sum(loss(theta, x, y) for x, y in batches)
    d = -torch.autograd.grad(total, theta)[0]
    if d.norm() == 0:
        return theta0.detach()
    w_in = model.get_submodule(gn.sites(model)[group].producer).weight[channel].detach()
    d = d / d.norm() * w_in.norm()
    best_t, best = 0.0, float("inf")
    with torch.no_grad():
        for t in [0.0] + [2.0 ** -k for k in range(grid - 1, -1, -1)]:
            v = sum(loss(theta0 + t * d, x, y).item() for x, y in batches)
            if v < best:
                best_t, best = t, v
    return (theta0 + best_t * d).detach()


def morphism_quality(model, data, group: str, learned: dict, epochs: int, *, batch_size: int = 64,
                     seed: int = 0, split: str = "val", channels=None) -> list[dict]:
    """Figure 4: the true loss change of each channel's split with theta learned by Gauss-Newton, by
    optimising the expanded net, and by steepest descent + line search."""
    batches = list(data.eval_batches(split))
    base = _mean_loss(model, batches)
    n = learned["thetas"][group].shape[0]
    rows = []
    for k in (range(n) if channels is None else channels):
        th0 = learned["theta0"][group][k]
        gn_t = learned["thetas"][group][k].detach()
        ex_t = optimise_expanded(model, data, group, k, th0, epochs, batch_size=batch_size, seed=seed)
        sd_t = steepest_descent(model, data, group, k, th0, batch_size=batch_size, seed=seed)
        rows.append({"channel": k, **{name: true_delta(model, group, k, t, batches, base)
                                      for name, t in (("gauss_newton", gn_t), ("expanded", ex_t),
                                                      ("steepest_descent", sd_t))}})
    return rows


# ----------------------------------------------------------------------------- notebook helpers

def trained_net(runs_dir, name: str, device: str = "auto", **train):
    """A net trained by a named run (reused when it exists): (model in eval mode, its data, result)."""
    dev = resolve_device(device)
    res = study.train(runs_dir, name, device=device, **train)
    run_dir = f"{runs_dir}/{name}"
    return load_model(run_dir).to(dev), load_data(run_dir, str(dev)), res


def gauss_newton(runs_dir, name: str, *, train: dict, gauss_newton: dict, callbacks=()) -> dict:
    """Reuse, resume or (re)start the ``gauss-newton`` search run ``name``."""
    return cache.named(runs_dir, name, "gauss-newton", cache.train_cfg(train), GaussNewtonConfig(**gauss_newton),
                       callbacks=callbacks)


def site_names(model, layers) -> list[str]:
    """Layer numbers as the paper counts them (1-based; -1: the last) -> the sites' group names."""
    names = list(gn.sites(model))
    return [names[i - 1] if i > 0 else names[i] for i in layers]


def quality_summary(rows: list[dict]) -> dict:
    """Figure 4 in numbers: the share of channels where Gauss-Newton's split lowers the true loss more
    than steepest descent's (and than the expanded net's), and the median ratio of its decrease to
    the expanded net's where that one decreases the loss."""
    n = len(rows)
    wins_sd = sum(r["gauss_newton"] < r["steepest_descent"] for r in rows)
    wins_ex = sum(r["gauss_newton"] < r["expanded"] for r in rows)
    ratios = sorted(r["gauss_newton"] / r["expanded"] for r in rows if r["expanded"] < 0)
    return {"channels": n, "gn_beats_steepest_descent": wins_sd / max(n, 1),
            "gn_beats_expanded": wins_ex / max(n, 1),
            "median_gn_over_expanded_decrease": ratios[len(ratios) // 2] if ratios else float("nan")}


def search_row(res: dict, **extra) -> dict:
    """One search of Tables 1-2: the found widths, parameters, accuracy retrained from scratch, search time."""
    rounds = res.get("rounds") or []
    return {**extra, "found widths": "-".join(map(str, res.get("found_widths") or [])),
            "params": res["params"], "scratch test %": res.get("scratch_test_acc"),
            "search test %": res["test_acc"], "splits": sum(r["splits"] for r in rounds),
            "prunes": sum(r["prunes"] for r in rounds), "search s": res["search_wall_s"]}


def search_summary(rows: list[dict], keys=("dataset", "net", "lambda_p")) -> list[dict]:
    """Mean and spread (sample std) over seeds of each (dataset, net, lambda_p)."""
    import statistics as st
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    out = []
    for key, rs in groups.items():
        row = dict(zip(keys, key))
        row["seeds"] = len(rs)
        for col in ("params", "scratch test %", "search s"):
            vals = [r[col] for r in rs if r[col] is not None]
            row[col] = st.mean(vals) if vals else None
            row[f"{col} sd"] = st.stdev(vals) if len(vals) > 1 else 0.0
        out.append(row)
    return out
