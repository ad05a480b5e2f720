"""The method-independent helpers the notebooks call: a named ``train`` run (through the run cache,
:mod:`growkit.runs.cache`), a run's records, and the trajectory planes and loss surfaces of finished runs.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..engine.records import read_json, read_metrics
from ..errors import GrowkitError
from ..models.depth import FAMILIES
from ..runs import cache, measured
from ..runs.records import load_data, load_model
from ..viz import landscape, trajectory


def train(runs_dir, name: str, **train) -> dict:
    """Reuse, resume or (re)start the ``train`` run ``name`` with these TrainConfig settings."""
    return cache.named(runs_dir, name, "train", cache.train_cfg(train))


def converged(runs_dir, name: str, *, start: int, cap: int, **settings) -> dict:
    """A baseline trained until its validation accuracy plateaus, by doubling its budget.

    The rule: complete runs of ``start``, 2 x ``start``, 4 x ``start`` ... epochs (each with the config's
    whole learning-rate schedule, so every one ends fully decayed; runs ``{name}-e{epochs}``) until doubling
    gains at most one validation image, or the next budget would pass ``cap``. Returned: the last (longest)
    run's result with ``converged_epochs`` (its epochs), ``plateaued`` (False: stopped by the cap; None: the
    cap allowed no doubling, a fixed budget) and
    ``budgets`` ([epochs, val_acc] of every run). ``settings``: TrainConfig fields. The budgets are ``train``
    runs through the run cache, so a notebook re-executed reuses them."""
    if not 0 < start <= cap:
        raise GrowkitError(f"converged baseline: need 0 < start <= cap, got start={start}, cap={cap}")
    epochs, res = start, train(runs_dir, f"{name}-e{start}", **{**settings, "epochs": start})
    one_image = 100.0 / load_data(Path(runs_dir) / f"{name}-e{start}").size("val")
    budgets, plateaued = [[epochs, res["val_acc"]]], (False if 2 * start <= cap else None)  # None: no doubling
    while 2 * epochs <= cap:
        nxt = train(runs_dir, f"{name}-e{2 * epochs}", **{**settings, "epochs": 2 * epochs})
        budgets.append([2 * epochs, nxt["val_acc"]])
        gain, epochs, res = nxt["val_acc"] - res["val_acc"], 2 * epochs, nxt
        if gain <= one_image + 1e-9:
            plateaued = True
            break
    return {**res, "converged_epochs": epochs, "plateaued": plateaued, "budgets": budgets}


def metrics(runs_dir, name: str) -> list[dict]:
    return read_metrics(Path(runs_dir) / name)


def growth_epochs(result: dict) -> list[int]:
    return [e["epoch"] for e in result.get("growth_events", [])]


def scaled_widths(model: str, scale: float) -> list[int] | None:
    """Stage widths of a depth family times ``scale`` (narrow nets for CPU profiles); None for 1.0."""
    if scale == 1.0:
        return None
    return [max(4, int(round(w * scale))) for w in FAMILIES[model.split("-")[0]][3]]


def result(runs_dir, name: str) -> dict:
    """A finished run's result, its record values as measured numbers that name the run."""
    return measured.tag(read_json(Path(runs_dir) / name / "result.json"), runs_dir, name)


def final_trajectory(run_dir, ignore_1d: bool = True):
    """(PCA trajectory, final model): the run's snapshots ending at its final checkpoint, which is the origin
    of the plane. A run whose last epoch is not a multiple of ``snapshot_every`` gets that last point from the
    checkpoint, so the plotted end point, the origin and a surface centred on the model are the same weights."""
    snaps = trajectory.load_snapshots(run_dir)
    model, epoch = load_model(run_dir, with_epoch=True)
    final = {n: p.detach().clone() for n, p in model.named_parameters()}
    snaps = [s for s in snaps if s.epoch < epoch]
    snaps.append(trajectory.Snapshot(epoch, model.arch, model.spec, final))
    return trajectory.pca_trajectory(snaps, ignore_1d=ignore_1d, center=final), model


def trajectory_surface(run_dir, grid: int = 21, images: int = 512, span: float = 1.25, ignore_1d: bool = True,
                       device: str = "cpu"):
    """PCA plane of a run's trajectory and the loss on that plane around the final net (Figures 2, 3)."""
    traj, model = final_trajectory(run_dir, ignore_1d=ignore_1d)
    model = model.to(device)
    x, y = load_data(run_dir, device).subset("train", images)
    center = {n: p.detach().clone() for n, p in model.named_parameters()}  # = traj.center, the plane's origin
    d1, d2 = ({n: t.to(device=device, dtype=center[n].dtype) for n, t in d.items()} for d in traj.directions)
    r0, r1 = (np.abs(traj.coords[:, k]).max() * span for k in (0, 1))
    floor = 0.2 * max(r0, r1, 1e-12)  # a (nearly) flat second component still gets a readable plane
    r0, r1 = max(r0, floor), max(r1, floor)
    surf = landscape.surface(model, d1, d2, np.linspace(-r0, r0, grid), np.linspace(-r1, r1, grid), x, y,
                             center=center)
    return traj, surf


def trajectory_surface_after(run_dir, after_epoch: int, grid: int = 15, images: int = 256, span: float = 1.25,
                             ignore_1d: bool = True, device: str = "cpu"):
    """The PCA plane and loss contours of a run's path from ``after_epoch`` on (Figure 2a's post-morphism path).

    On the plane of the whole run (:func:`trajectory_surface`) the epochs before the morphism
    dominate the variance and the deeper net's path shrinks to a dot next to the final point; on its own plane
    (snapshots of one architecture, so no zero-padding) it is readable. The snapshot at ``after_epoch`` itself is
    the first point; the final checkpoint is the origin, as on the whole run's plane."""
    model, epoch = load_model(run_dir, with_epoch=True)
    final = {n: p.detach().clone() for n, p in model.named_parameters()}
    snaps = [s for s in trajectory.load_snapshots(run_dir) if after_epoch <= s.epoch < epoch]
    if not snaps:  # the final checkpoint alone is no path
        raise GrowkitError(f"{Path(run_dir).name}: no snapshot from epoch {after_epoch} on before the final one "
                           "(run it with snapshot_every = 1)")
    snaps.append(trajectory.Snapshot(epoch, model.arch, model.spec, final))
    traj = trajectory.pca_trajectory(snaps, ignore_1d=ignore_1d, center=final)
    model = model.to(device)
    x, y = load_data(run_dir, device).subset("train", images)
    d1, d2 = ({n: t.to(device=device, dtype=final[n].dtype) for n, t in d.items()} for d in traj.directions)
    r0, r1 = (np.abs(traj.coords[:, k]).max() * span for k in (0, 1))
    floor = 0.2 * max(r0, r1, 1e-12)
    r0, r1 = max(r0, floor), max(r1, floor)
    surf = landscape.surface(model, d1, d2, np.linspace(-r0, r0, grid), np.linspace(-r1, r1, grid), x, y,
                             center={n: t.to(device) for n, t in final.items()})
    return traj, surf


def random_surface(run_dir, grid: int = 21, images: int = 512, radius: float = 1.0, seed: int = 1,
                   device: str = "cpu") -> dict:
    """Loss around a run's final net along two filter-normalised random directions (Figure 6)."""
    model = load_model(run_dir).to(device)
    x, y = load_data(run_dir, device).subset("train", images)
    w = landscape.params_of(model)
    d1, d2 = landscape.random_direction(w, seed), landscape.random_direction(w, seed + 1)
    xs = np.linspace(-radius, radius, grid)
    return landscape.surface(model, d1, d2, xs, xs, x, y, center=w)


def public(rows: list[dict]) -> list[dict]:
    """Rows without the per-seed lists kept for verdicts (keys starting with '_')."""
    return [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]


def test_size(run_dir) -> int:
    """Images in a run's test split (one image = 100 / n points)."""
    return load_data(run_dir).size("test")


def val_size(run_dir) -> int:
    """Images in a run's validation split: the tolerance of a claim about validation accuracy."""
    return load_data(run_dir).size("val")
