"""Named runs for notebooks: ``runs_dir/name`` is reused when it finished with the same config,
resumed when it was interrupted with the same config, and replaced when the config changed.

So re-executing a notebook after a crash or with one changed parameter only
redoes the runs that need it, and every number a notebook shows comes from a
run directory a reader can open.
"""
from __future__ import annotations

from pathlib import Path

from . import methods, runs
from .config import AutoGrowConfig, NetworkMorphismConfig, TrainConfig
from .errors import GrowkitError
from .records import read_json, read_metrics

_IGNORED = {"progress"}  # config keys that do not change results


def _essential(rc: dict) -> dict:
    """A run config without what cannot change its results (the environment stamp, progress bars)."""
    return {k: ({kk: vv for kk, vv in v.items() if kk not in _IGNORED} if isinstance(v, dict) else v)
            for k, v in rc.items() if k != "environment"}


def _same(stored: dict, wanted: dict) -> bool:
    """Equal up to the environment, progress bars, command aliases and option defaults added since."""
    try:
        stored = methods.normalize(stored)
    except (GrowkitError, KeyError, TypeError, AttributeError):  # a foreign or older config: not the same run
        return False
    return _essential(stored) == _essential(methods.normalize(wanted))


def _cached(out: Path, wanted: dict):
    """The result of an identical finished run, or resume an identical unfinished one; else None."""
    if not (out / "config.json").exists() or not _same(read_json(out / "config.json"), wanted):
        return None
    if (out / "result.json").exists():
        return read_json(out / "result.json")
    return runs.resume(out)


def _train_cfg(train: dict) -> TrainConfig:
    return TrainConfig(**{"progress": False, **train}).validate().resolved()


def _named(runs_dir, name: str, method: str, cfg: TrainConfig, options=None, **kw) -> dict:
    """Reuse, resume or (re)start run ``name`` of ``method``."""
    out = Path(runs_dir) / name
    hit = _cached(out, methods.get(method).run_config(cfg, options))
    return hit if hit is not None else runs.run(method, cfg, options, out, overwrite=True, **kw)


def train(runs_dir, name: str, **train) -> dict:
    return _named(runs_dir, name, "train", _train_cfg(train))


def autogrow(runs_dir, name: str, *, train: dict, autogrow: dict, callbacks=(), grower_hook=None) -> dict:
    return _named(runs_dir, name, "autogrow", _train_cfg(train), AutoGrowConfig(**autogrow),
                  callbacks=callbacks, grower_hook=grower_hook)


def network_morphism(runs_dir, name: str, *, train: dict, target_depths, shallow_epochs: int, deeper_epochs: int,
                     init: str = "zero", init_std: float = 1.0) -> dict:
    nm = NetworkMorphismConfig(list(target_depths), shallow_epochs, deeper_epochs, init, init_std)
    return _named(runs_dir, name, "network-morphism", _train_cfg(train), nm)


morph = network_morphism  # the former name


def metrics(runs_dir, name: str) -> list[dict]:
    return read_metrics(Path(runs_dir) / name)


def growth_epochs(result: dict) -> list[int]:
    return [e["epoch"] for e in result.get("growth_events", [])]


def scaled_widths(model: str, scale: float) -> list[int] | None:
    """Stage widths of a depth family times ``scale`` (narrow nets for CPU profiles); None for 1.0."""
    if scale == 1.0:
        return None
    from .models.depth import FAMILIES
    return [max(4, int(round(w * scale))) for w in FAMILIES[model.split("-")[0]][3]]


def result(runs_dir, name: str) -> dict:
    return read_json(Path(runs_dir) / name / "result.json")


def load_model(run_dir):
    """The final model of a run (structure from its spec, weights from its checkpoint), in eval mode."""
    from . import checkpoint
    from .models import from_spec
    state = checkpoint.load(Path(run_dir) / "checkpoint.pt")
    model = from_spec(state["spec"])
    model.load_state_dict(state["model"])
    return model.eval()


def load_data(run_dir, device: str = "cpu"):
    """The dataset of a run, split exactly as the run split it."""
    from .train import load_data as _load
    cfg = TrainConfig.from_dict(read_json(Path(run_dir) / "config.json")["train"])
    import torch
    return _load(cfg, torch.device(device))


def trajectory_surface(run_dir, grid: int = 21, images: int = 512, span: float = 1.25, ignore_1d: bool = True,
                       device: str = "cpu"):
    """PCA plane of a run's trajectory and the loss on that plane around the final net (Figures 2, 3)."""
    import numpy as np
    from .viz import landscape, trajectory
    traj = trajectory.pca_trajectory(trajectory.load_snapshots(run_dir), ignore_1d=ignore_1d)
    model = load_model(run_dir).to(device)
    x, y = load_data(run_dir, device).subset("train", images)
    center = {n: p.detach().clone() for n, p in model.named_parameters()}
    d1, d2 = ({n: t.to(device=device, dtype=center[n].dtype) for n, t in d.items()} for d in traj.directions)
    r0, r1 = (np.abs(traj.coords[:, k]).max() * span for k in (0, 1))
    floor = 0.2 * max(r0, r1, 1e-12)  # a (nearly) flat second component still gets a readable plane
    r0, r1 = max(r0, floor), max(r1, floor)
    surf = landscape.surface(model, d1, d2, np.linspace(-r0, r0, grid), np.linspace(-r1, r1, grid), x, y,
                             center=center)
    return traj, surf


def random_surface(run_dir, grid: int = 21, images: int = 512, radius: float = 1.0, seed: int = 1,
                   device: str = "cpu") -> dict:
    """Loss around a run's final net along two filter-normalised random directions (Figure 6)."""
    import numpy as np
    from .viz import landscape
    model = load_model(run_dir).to(device)
    x, y = load_data(run_dir, device).subset("train", images)
    w = landscape.params_of(model)
    d1, d2 = landscape.random_direction(w, seed), landscape.random_direction(w, seed + 1)
    xs = np.linspace(-radius, radius, grid)
    return landscape.surface(model, d1, d2, xs, xs, x, y, center=w)


def summary_row(res: dict, **extra) -> dict:
    """The columns the AutoGrow tables share."""
    row = {**extra, "found net": "-".join(map(str, res.get("depths") or res["spec"].get("depths", []))),
           "accu %": res["test_acc"]}
    if res.get("delta") is not None:
        row["Δ"] = res["delta"]
    row.update({"params": res["params"], "val %": res["val_acc"]})
    return row
