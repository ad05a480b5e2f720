"""The Gauss-Newton paper's studies as functions the ``gauss_newton_*`` notebooks call.

* :func:`learn_morphisms`: section 4.1's protocol on a trained net: learn theta for every channel of
  the chosen layers with Adam (lr 1e-2) for some epochs, the model frozen, keeping the moving
  average (weight B / (2N)) of each morphism's estimated loss change.
* :func:`true_delta`: the brute-force truth: expand the net by one morphism and measure the change
  of the mean cross-entropy on a held-out split (eval mode). The paper measures on the test set; we
  use the validation split (the test split stays for reporting accuracies).
* :func:`estimate_vs_truth` (Figure 3, splits and prunes) with :func:`fit_summary` per layer and kind
  (least-squares slope and intercept of estimated on true, the slope of the fit through the origin, the
  share within a factor of 2, Pearson and Spearman) and :func:`prune_bias`; :func:`morphism_quality`
  (Figure 4) with :func:`quality_summary` (wins weighted by the size of the decrease).
* :func:`verdicts`: the agrees / disagrees lines of Figures 3-4 over seeds, through :mod:`growkit.papers.stats`.
* :func:`gauss_newton`: a named ``gauss-newton`` search run (through the run cache).

The figures are drawn by :mod:`growkit.methods.gauss_newton.plots`.

Figure 4's baselines, defined concretely:

* *expanded*: build the expanded net for one channel and optimise its theta with Adam (lr 1e-2) on
  the true training loss of that net, same mini-batches and number of steps as the Gauss-Newton
  learning; one whole forward + backward per channel and step.
* *splitting direction + line search* (the paper's "steepest descent direction as in [45, 42, 44]",
  splitting steepest descent): a split ``w +- theta`` with halved outgoing weights changes the loss by
  ``theta^T S theta / 2 + O(|theta|^3)`` (the first-order term cancels), ``S`` the splitting matrix; the
  steepest split is along the eigenvector of ``S`` for its smallest eigenvalue. For ReLU nets ``S``
  holds a Dirac term at the kink that autograd cannot see (its Hessian at theta = 0 is 0), so ``S`` is
  measured from the true expanded loss: its gradient at ``probes`` random ``theta_i`` of norm
  ``probe_scale * |w_in|`` (summed over ``probe_batches`` training batches) is fitted as ``S theta_i``
  by least squares, ``S`` symmetrised. theta = ``t v_min``, ``t`` the best of the line search below.
* *steepest descent from theta_0 + line search* (kept for comparison with earlier records): the
  gradient direction at the same small random start theta_0 the other methods start from,
  ``d = -grad_theta L_expanded(theta_0)`` normalised, theta = theta_0 + t d.

The line search of both: ``t`` the best of a geometric grid of scales relative to ``|w_in|`` (and 0),
judged by the true expanded training loss on the probe batches.
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.func import functional_call

from ...engine.records import read_json
from ...engine.surgery import PruneChannel, SplitChannel
from ...engine.trainer import resolve_device
from ...papers import study
from ...runs import cache
from ...runs.records import load_data, load_model
from . import estimate as gn
from .method import GaussNewtonConfig
from .summaries import (BASELINES, bottleneck_ratio, fit_summary, pearson, prune_bias,  # noqa: F401
                        quality_summary, spearman, stronger, table_claims, table_verdicts, verdict_claims,
                        verdicts, weighted_wins)


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


def estimate_vs_truth(model, data, groups, learned: dict, split: str = "val") -> tuple[list[dict], list[dict]]:
    """Figure 3: per split and per prune of every channel of ``groups``, the moving-average estimate against
    the brute-force truth on ``split`` (rows with ``layer, kind, channel, estimated, true``); and per layer and
    kind the :func:`fit_summary` (rows with ``layer, kind, channels`` and its numbers)."""
    batches = list(data.eval_batches(split))
    base = _mean_loss(model, batches)
    rows, summary = [], []
    for g in groups:
        for kind in ("split", "prune"):
            est = learned[kind][g].detach().cpu()
            truth = [true_delta(model, g, k, learned["thetas"][g][k] if kind == "split" else None, batches, base)
                     for k in range(len(est))]
            rows += [{"layer": g, "kind": kind, "channel": k, "estimated": float(est[k]), "true": truth[k]}
                     for k in range(len(est))]
            summary.append({"layer": g, "kind": kind, "channels": len(est), **fit_summary(est.tolist(), truth)})
    return rows, summary


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
    return _line_search(loss, batches, theta0.detach(), d / d.norm() * w_in.norm(), grid)


def _line_search(loss, batches, start: torch.Tensor, d: torch.Tensor, grid: int) -> torch.Tensor:
    """start + t d, t the best of 0 and 2^-(grid-1) ... 1 by the summed loss on ``batches``."""
    best_t, best = 0.0, float("inf")
    with torch.no_grad():
        for t in [0.0] + [2.0 ** -k for k in range(grid - 1, -1, -1)]:
            v = sum(loss(start + t * d, x, y).item() for x, y in batches)
            if v < best:
                best_t, best = t, v
    return (start + best_t * d).detach()


def splitting_matrix(model, data, group: str, channel: int, *, batch_size: int = 64, probe_batches: int = 8,
                     probes: int | None = None, probe_scale: float = 0.1, seed: int = 0) -> torch.Tensor:
    """The splitting matrix ``S`` of one channel, measured from the true expanded loss (module docstring):
    ``grad L(theta_i) ~ S theta_i`` at ``probes`` (default ``2 d``) random ``theta_i`` of norm
    ``probe_scale * |w_in|``, fitted by least squares and symmetrised. (d, d), d = the filter's size."""
    _, loss = _expanded_loss_fn(model, group, channel)
    batches = [b for _, b in zip(range(probe_batches), data.train_batches(batch_size, seed * 1000))]
    w_in = model.get_submodule(gn.sites(model)[group].producer).weight[channel].detach()
    d = w_in.numel()
    gen = torch.Generator().manual_seed(seed * 7919 + channel)
    thetas, grads = [], []
    for _ in range(probes or 2 * d):
        th = torch.randn(d, generator=gen, dtype=w_in.dtype).to(w_in.device)
        th = (th / th.norm() * probe_scale * w_in.norm()).reshape(w_in.shape).requires_grad_(True)
        total = sum(loss(th, x, y) for x, y in batches)
        grads.append(torch.autograd.grad(total, th)[0].reshape(-1).detach())
        thetas.append(th.detach().reshape(-1))
    a, g = torch.stack(thetas).double(), torch.stack(grads).double()  # g_i = S a_i  ->  A S^T = G
    st = torch.linalg.lstsq(a, g).solution
    return ((st + st.T) / 2).to(w_in.dtype)


def splitting_direction(model, data, group: str, channel: int, *, batch_size: int = 64, probe_batches: int = 8,
                        grid: int = 12, seed: int = 0, **kw) -> torch.Tensor:
    """Figure 4's *splitting direction + line search* baseline: theta = t v_min, v_min the unit eigenvector of
    the smallest eigenvalue of :func:`splitting_matrix` scaled to ``|w_in|``, t by the line search."""
    _, loss = _expanded_loss_fn(model, group, channel)
    batches = [b for _, b in zip(range(probe_batches), data.train_batches(batch_size, seed * 1000))]
    s = splitting_matrix(model, data, group, channel, batch_size=batch_size, probe_batches=probe_batches,
                         seed=seed, **kw)
    _, vecs = torch.linalg.eigh(s.double())
    w_in = model.get_submodule(gn.sites(model)[group].producer).weight[channel].detach()
    v = vecs[:, 0].to(w_in.dtype).reshape(w_in.shape) * w_in.norm()
    return _line_search(loss, batches, torch.zeros_like(w_in), v, grid)


def morphism_quality(model, data, group: str, learned: dict, epochs: int, *, batch_size: int = 64,
                     seed: int = 0, split: str = "val", channels=None) -> list[dict]:
    """Figure 4: the true loss change of each channel's split with theta learned by Gauss-Newton, by
    optimising the expanded net, along the splitting direction + line search, and by steepest descent from
    theta_0 + line search."""
    batches = list(data.eval_batches(split))
    base = _mean_loss(model, batches)
    n = learned["thetas"][group].shape[0]
    rows = []
    for k in (range(n) if channels is None else channels):
        th0 = learned["theta0"][group][k]
        gn_t = learned["thetas"][group][k].detach()
        ex_t = optimise_expanded(model, data, group, k, th0, epochs, batch_size=batch_size, seed=seed)
        sp_t = splitting_direction(model, data, group, k, batch_size=batch_size, seed=seed)
        sd_t = steepest_descent(model, data, group, k, th0, batch_size=batch_size, seed=seed)
        rows.append({"channel": k, **{name: true_delta(model, group, k, t, batches, base)
                                      for name, t in (("gauss_newton", gn_t), ("expanded", ex_t),
                                                      ("splitting", sp_t), ("steepest_descent", sd_t))}})
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


def full_width(runs_dir, name: str, search_dir, *, cap_factor: int = 8) -> dict:
    """Tables 1-2's full-width baseline for one search (its net at the standard widths, same seed): trained
    with exactly the settings of the search's from-scratch retraining (``search_dir/scratch/config.json``,
    widths removed), ``matched`` with its epochs and ``converged`` by the doubling rule of
    :func:`growkit.papers.study.converged` (capped at ``cap_factor`` x those epochs). Returns {"matched":
    result, "converged": result (with ``converged_epochs``, ``plateaued``, ``budgets``)}; the matched run is
    the converged rule's first budget, trained once."""
    settings = dict(read_json(Path(search_dir) / "scratch" / "config.json")["train"])
    settings.pop("widths")
    settings.pop("progress", None)
    epochs = settings.pop("epochs")
    conv = study.converged(runs_dir, name, start=epochs, cap=cap_factor * epochs, **settings)
    return {"matched": study.train(runs_dir, f"{name}-e{epochs}", **settings, epochs=epochs), "converged": conv}


def baselines_by_net(found: dict) -> dict:
    """{(dataset, net): {seed: :func:`full_width`'s result}} -> the ``baselines`` of :func:`table_verdicts`
    (test accuracy per seed of each baseline, their epochs, the full-width parameters)."""
    out = {}
    for key, per_seed in found.items():
        seeds = sorted(per_seed)
        conv_epochs = sorted({per_seed[s]["converged"]["converged_epochs"] for s in seeds})
        capped = [s for s in seeds if per_seed[s]["converged"]["plateaued"] is False]
        out[key] = {"params": per_seed[seeds[0]]["matched"]["params"],
                    "matched": {"test": {s: per_seed[s]["matched"]["test_acc"] for s in seeds},
                                "epochs": per_seed[seeds[0]]["matched"]["epochs"]},
                    "converged": {"test": {s: per_seed[s]["converged"]["test_acc"] for s in seeds},
                                  "epochs": "-".join(map(str, conv_epochs)) + (", the cap reached" if capped else "")}}
    return out


def baseline_rows(found: dict) -> list[dict]:
    """One table row per (dataset, net, baseline): mean and sd over seeds of the full-width test accuracy."""
    import statistics as st
    rows = []
    for (ds, net), per_seed in found.items():
        for kind in ("matched", "converged"):
            accs = [per_seed[s][kind]["test_acc"] for s in sorted(per_seed)]
            eps = sorted({per_seed[s][kind]["epochs"] for s in per_seed})
            rows.append({"dataset": ds, "net": net, "baseline": f"full width, {kind}", "seeds": len(accs),
                         "epochs": "-".join(map(str, eps)), "params": per_seed[min(per_seed)][kind]["params"],
                         "test %": st.mean(accs), "test % sd": st.stdev(accs) if len(accs) > 1 else 0.0})
    return rows


def site_names(model, layers) -> list[str]:
    """Layer numbers as the paper counts them (1-based; -1: the last) -> the sites' group names."""
    names = list(gn.sites(model))
    return [names[i - 1] if i > 0 else names[i] for i in layers]


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
