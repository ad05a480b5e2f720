"""Optimization trajectories across growing networks (AutoGrow section 3.1, after Li et al. 2018).

During a run (``TrainConfig.snapshot_every = N``) the trainer saves the
parameters, by name, every N epochs to ``<run>/trajectory/e00012.pt``
(epoch 0 = the initial net; :mod:`growkit.engine.snapshots` writes them). A snapshot taken before a growth has fewer (or
narrower) parameters than the final net. To put all snapshots in one space we
embed each into the *final* network's parameter space and **zero-pad what did
not exist yet** (the paper's rule): a missing parameter is all zeros. Where
an old entry lands is told by the growth records: at every growth the trainer
calls :func:`~growkit.engine.snapshots.record_growth`, which stores the step's composed index maps
(``trajectory/growth_e00012.pt``); a snapshot is carried through every later
growth's maps, so prunes and splits (which move or drop channels) place each
surviving entry at its final position and new entries at 0. Without records
(runs that only appended channels) a narrower parameter goes in the leading
corner. A snapshot parameter with no place in the final net is an error, never
dropped silently.

:func:`pca_trajectory` then takes the differences ``w_i - w_final``, fits a
2-component PCA (scikit-learn's full SVD, deterministic; data centred as
usual), and projects each difference on the two unit directions. The final net
is the origin; :func:`growkit.papers.study.trajectory_surface` takes it from the
run's final checkpoint, which is also the centre of the loss contours. Because a
2-D projection can mislead (the paper's own caveat), every point also gets its
*residual*: the norm of the part of ``w_i - w_final`` off the plotted plane.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..engine.snapshots import SNAPSHOTS
from ..engine.surgery import Edit, compose_remaps, remap_tensor
from ..errors import GrowkitError

Params = dict[str, torch.Tensor]


@dataclass
class Growth:
    """One growth step's composed index maps (see :func:`growkit.engine.snapshots.record_growth`)."""
    epoch: int
    edit: Edit


@dataclass
class Snapshot:
    epoch: int
    arch: str
    spec: dict
    params: Params
    growths: list[Growth] = field(default_factory=list)  # the run's growths after this snapshot, in order


def load_growths(run_dir: str | Path) -> list[Growth]:
    out = []
    for f in sorted((Path(run_dir) / SNAPSHOTS).glob("growth_e*.pt")):
        raw = torch.load(f, map_location="cpu", weights_only=True)
        remap = {n: tuple(idx) for n, idx in raw["remap"].items()}
        out.append(Growth(raw["epoch"], Edit("growth", f"epoch {raw['epoch']}", "", "", list(raw["new"]), remap,
                                             moved=dict(raw.get("moved", {})))))
    return out


def load_snapshots(run_dir: str | Path) -> list[Snapshot]:
    growths = load_growths(run_dir)
    out = []
    for f in sorted((Path(run_dir) / SNAPSHOTS).glob("e*.pt")):
        raw = torch.load(f, map_location="cpu", weights_only=True)
        later = [g for g in growths if g.epoch > raw["epoch"]]
        out.append(Snapshot(raw["epoch"], raw["arch"], json.loads(raw["spec_json"]), raw["params"], later))
    if not out:
        raise GrowkitError(f"no trajectory snapshots in {run_dir} (train with snapshot_every > 0)")
    return out


def maps_to(snapshot: Snapshot, final_epoch: int | None = None) -> Edit | None:
    """The composed index maps from ``snapshot`` to the net at ``final_epoch`` (None: the last growth);
    None when the run left no growth records."""
    gs = [g for g in snapshot.growths if final_epoch is None or g.epoch <= final_epoch]
    return compose_remaps([g.edit for g in gs]) if gs else None


def embed(params: Params, like: Params, maps: Edit | None = None) -> Params:
    """``params`` in the space of ``like``. With ``maps`` (composed index maps from ``params``' net to
    ``like``'s): a reshaped parameter's old entries go where the maps say, new entries and new
    parameters are 0; a renamed parameter (a block shifted by an insertion) is read under its old name.
    Without: equal shapes copied, smaller ones in the leading corner, missing ones 0.
    A parameter of ``params`` with no place in ``like`` raises :class:`GrowkitError`."""
    moved = maps.moved if maps is not None else {}
    lost = sorted(set(params) - {moved.get(n, n) for n in like})
    if lost:
        raise GrowkitError(f"snapshot parameters with no place in the final net: {', '.join(lost[:5])}")
    new = set(maps.new) if maps is not None else set()
    remap = maps.remap if maps is not None else {}
    out = {}
    for name, ref in like.items():
        p = params.get(moved.get(name, name))
        if p is None or name in new:
            out[name] = torch.zeros_like(ref)
        elif name in remap:
            idx = remap[name]
            if tuple(len(i) for i in idx) != tuple(ref.shape) or p.dim() != len(idx):
                raise GrowkitError(f"{name}: index maps {tuple(len(i) for i in idx)} do not take "
                                   f"{tuple(p.shape)} to {tuple(ref.shape)}")
            out[name] = remap_tensor(p.to(ref), idx)
        elif maps is not None and p.shape != ref.shape:
            raise GrowkitError(f"{name}: {tuple(p.shape)} became {tuple(ref.shape)} without an index map")
        else:
            if p.dim() != ref.dim() or any(a > b for a, b in zip(p.shape, ref.shape)):
                raise GrowkitError(f"{name}: {tuple(p.shape)} does not fit into {tuple(ref.shape)}")
            z = torch.zeros_like(ref)
            z[tuple(slice(0, n) for n in p.shape)] = p.to(ref)
            out[name] = z
    return out


def flatten(params: Params, names: list[str]) -> torch.Tensor:
    return torch.cat([params[n].reshape(-1) for n in names])


def unflatten(vec: torch.Tensor, like: Params, names: list[str]) -> Params:
    out, i = {}, 0
    for n in names:
        k = like[n].numel()
        out[n] = vec[i:i + k].view_as(like[n]).to(like[n].dtype)
        i += k
    for n in like:
        out.setdefault(n, torch.zeros_like(like[n]))
    return out


@dataclass
class Trajectory:
    epochs: list[int]
    archs: list[str]
    coords: np.ndarray  # [n, 2] projections of w_i - w_final on the two directions
    explained_variance_ratio: np.ndarray  # [2]
    residual: np.ndarray  # [n] norm of the part of w_i - w_final off the plane
    distance: np.ndarray  # [n] norm of w_i - w_final
    directions: tuple[Params, Params]  # unit vectors in the final parameter space
    center: Params  # the final parameters (the origin of the plane)
    ignore_1d: bool

    @property
    def relative_residual(self) -> np.ndarray:
        """Per point: the share of |w_i - w_final| off the plane (near the final net this is mostly noise)."""
        return self.residual / np.maximum(self.distance, 1e-12)

    @property
    def off_plane_share(self) -> float:
        """The share of the whole trajectory's squared distance to the final net that the plane cannot show:
        sum_i |residual_i|^2 / sum_i |w_i - w_final|^2 (0: the 2-D picture is the whole story)."""
        return float((self.residual ** 2).sum() / max((self.distance ** 2).sum(), 1e-24))


def pca_trajectory(snapshots: list[Snapshot], ignore_1d: bool = True, center: Params | None = None
                   ) -> Trajectory:
    """PCA plane of a trajectory, in the space of the last snapshot (or of ``center``)."""
    from sklearn.decomposition import PCA

    final = center if center is not None else snapshots[-1].params
    names = [n for n in final if not (ignore_1d and final[n].dim() <= 1)]
    w_final = flatten(final, names).double()
    last = snapshots[-1].epoch if center is None else None
    diffs = torch.stack([flatten(embed(s.params, final, maps_to(s, last)), names).double() - w_final
                         for s in snapshots])
    X = diffs.numpy()
    pca = PCA(n_components=2, svd_solver="full").fit(X)  # LAPACK: the same plane on every run and machine
    comps = pca.components_ / np.linalg.norm(pca.components_, axis=1, keepdims=True)
    coords = X @ comps.T
    resid = np.linalg.norm(X - coords @ comps, axis=1)
    dirs = tuple(unflatten(torch.from_numpy(c), final, names) for c in comps)
    return Trajectory([s.epoch for s in snapshots], [s.arch for s in snapshots], coords,
                      pca.explained_variance_ratio_.copy(), resid, np.linalg.norm(X, axis=1), dirs,
                      {n: t.clone() for n, t in final.items()}, ignore_1d)
