"""Optimization trajectories across growing networks (AutoGrow section 3.1, after Li et al. 2018).

During a run (``TrainConfig.snapshot_every = N``) the trainer saves the
parameters, by name, every N epochs to ``<run>/trajectory/e00012.pt``
(epoch 0 = the initial net). A snapshot taken before a growth has fewer (or
narrower) parameters than the final net. To put all snapshots in one space we
embed each into the *final* network's parameter space and **zero-pad what did
not exist yet** (the paper's rule): a missing parameter is all zeros; a
narrower one is placed in the leading corner (new channels are appended at
the end by :class:`growkit.surgery.Widen`).

:func:`pca_trajectory` then takes the differences ``w_i - w_final``, fits a
2-component PCA (scikit-learn's full SVD, deterministic; data centred as
usual), and projects each difference on the two unit directions. The final net
is the origin; :func:`growkit.experiments.trajectory_surface` takes it from the
run's final checkpoint, which is also the centre of the loss contours. Because a
2-D projection can mislead (the paper's own caveat), every point also gets its
*residual*: the norm of the part of ``w_i - w_final`` off the plotted plane.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

Params = dict[str, torch.Tensor]
SNAPSHOTS = "trajectory"


def save_snapshot(run_dir: str | Path, epoch: int, model: torch.nn.Module, dtype=torch.float32) -> Path:
    d = Path(run_dir) / SNAPSHOTS
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"e{epoch:05d}.pt"
    payload = {"epoch": epoch, "arch": model.arch, "spec_json": json.dumps(model.spec),
               "params": {n: p.detach().to("cpu", dtype).clone() for n, p in model.named_parameters()}}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def prune_snapshots(run_dir: str | Path, last_epoch: int) -> None:
    """Delete snapshots newer than the checkpoint a run resumes from."""
    for f in (Path(run_dir) / SNAPSHOTS).glob("e*.pt"):
        if int(f.stem[1:]) > last_epoch:
            f.unlink()


@dataclass
class Snapshot:
    epoch: int
    arch: str
    spec: dict
    params: Params


def load_snapshots(run_dir: str | Path) -> list[Snapshot]:
    out = []
    for f in sorted((Path(run_dir) / SNAPSHOTS).glob("e*.pt")):
        raw = torch.load(f, map_location="cpu", weights_only=True)
        out.append(Snapshot(raw["epoch"], raw["arch"], json.loads(raw["spec_json"]), raw["params"]))
    if not out:
        from ..errors import GrowkitError
        raise GrowkitError(f"no trajectory snapshots in {run_dir} (train with snapshot_every > 0)")
    return out


def embed(params: Params, like: Params) -> Params:
    """``params`` in the space of ``like``: equal shapes copied, smaller ones zero-padded, missing ones zero."""
    out = {}
    for name, ref in like.items():
        z = torch.zeros_like(ref)
        p = params.get(name)
        if p is not None:
            if p.dim() != ref.dim() or any(a > b for a, b in zip(p.shape, ref.shape)):
                raise ValueError(f"{name}: {tuple(p.shape)} does not fit into {tuple(ref.shape)}")
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
    diffs = torch.stack([flatten(embed(s.params, final), names).double() - w_final for s in snapshots])
    X = diffs.numpy()
    pca = PCA(n_components=2, svd_solver="full").fit(X)  # LAPACK: the same plane on every run and machine
    comps = pca.components_ / np.linalg.norm(pca.components_, axis=1, keepdims=True)
    coords = X @ comps.T
    resid = np.linalg.norm(X - coords @ comps, axis=1)
    dirs = tuple(unflatten(torch.from_numpy(c), final, names) for c in comps)
    return Trajectory([s.epoch for s in snapshots], [s.arch for s in snapshots], coords,
                      pca.explained_variance_ratio_.copy(), resid, np.linalg.norm(X, axis=1), dirs,
                      {n: t.clone() for n, t in final.items()}, ignore_1d)
