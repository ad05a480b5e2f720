"""Named runs for notebooks: ``runs_dir/name`` is reused when it finished with the same config and the
same growkit code, resumed when it was interrupted with both the same, and replaced otherwise.

So re-executing a notebook after a crash or with one changed parameter only
redoes the runs that need it, a fix to growkit's code reruns everything it may
have changed (the cache key holds a hash of the package's source files, see
:func:`growkit.records.code_hash`), and every number a notebook shows comes
from a run directory a reader can open.
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
    """Equal up to the environment, progress bars, command aliases and option defaults added since, and run by
    the same growkit code (a hash of its source files: a code fix reruns)."""
    from .records import code_hash
    if stored.get("environment", {}).get("code") != code_hash():
        return False
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


def gauss_newton(runs_dir, name: str, *, train: dict, gauss_newton: dict, callbacks=()) -> dict:
    from .gn_method import GaussNewtonConfig
    return _named(runs_dir, name, "gauss-newton", _train_cfg(train), GaussNewtonConfig(**gauss_newton),
                  callbacks=callbacks)


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


def load_model(run_dir, with_epoch: bool = False):
    """The final model of a run (structure from its spec, weights from its checkpoint), in eval mode;
    with ``with_epoch``: (model, the epoch the checkpoint was written after)."""
    from . import checkpoint
    from .models import from_spec
    state = checkpoint.load(Path(run_dir) / "checkpoint.pt")
    model = from_spec(state["spec"])
    model.load_state_dict(state["model"])
    return (model.eval(), state["loop"]["epoch"]) if with_epoch else model.eval()


def final_trajectory(run_dir, ignore_1d: bool = True):
    """(PCA trajectory, final model): the run's snapshots ending at its final checkpoint, which is the origin
    of the plane. A run whose last epoch is not a multiple of ``snapshot_every`` gets that last point from the
    checkpoint, so the plotted end point, the origin and a surface centred on the model are the same weights."""
    from .viz import trajectory
    snaps = trajectory.load_snapshots(run_dir)
    model, epoch = load_model(run_dir, with_epoch=True)
    final = {n: p.detach().clone() for n, p in model.named_parameters()}
    snaps = [s for s in snaps if s.epoch < epoch]
    snaps.append(trajectory.Snapshot(epoch, model.arch, model.spec, final))
    return trajectory.pca_trajectory(snaps, ignore_1d=ignore_1d, center=final), model


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
    from .viz import landscape
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


# ----------------------------------------------------------------------------- seeds and fair baselines

_run_autogrow, _run_train = autogrow, train  # the parameters below are named after them

def depth_of(res: dict) -> int:
    """Total sub-modules of a run's (found) net."""
    return sum(res.get("depths") or res["spec"].get("depths", []))


def autogrow_seeds(runs_dir, name: str, seeds, *, train: dict, autogrow: dict, **kw) -> list[dict]:
    """The same AutoGrow run once per seed (``name-s<seed>``); the data split stays fixed (``split_seed``)."""
    return [_run_autogrow(runs_dir, f"{name}-s{s}", train={**train, "seed": s}, autogrow=autogrow, **kw)
            for s in seeds]


def baselines(runs_dir, name: str | None, res: dict, *, train: dict, converged_epochs: int) -> dict:
    """The found net of ``res`` trained from scratch, twice, with the run's seed (``train``: the data and any
    other settings of the run):

    * ``matched``: as many epochs as the AutoGrow run took in all (growing + fine-tuning), staircase;
    * ``converged``: ``converged_epochs`` epochs, staircase, a budget long enough for the curve to flatten
      (``plateau`` says how much the validation accuracy still moved over its last quarter).

    Both keep their training curves (``metrics.jsonl`` in their run directories). The directories are named
    after what they train (net, epochs, seed and a digest of the settings), so runs that found the same net
    share one baseline; ``name`` is unused (kept for callers that name their runs)."""
    import hashlib
    import json
    spec = res["spec"]
    base = {**train, "seed": res["config"]["train"]["seed"], "model": spec["name"], "depths": list(spec["depths"]),
            "schedule": "staircase", "snapshot_every": 0}
    if spec.get("widths"):
        base["widths"] = list(spec["widths"])
    digest = hashlib.sha256(json.dumps(base, sort_keys=True, default=str).encode()).hexdigest()[:8]
    arch = f"{spec['name']}-{'-'.join(map(str, spec['depths']))}"
    out = {}
    for kind, epochs in (("matched", res["epochs"]), ("converged", converged_epochs)):
        run = f"scratch-{arch}-e{epochs}-s{base['seed']}-{digest}"
        r = _run_train(runs_dir, run, **{**base, "epochs": epochs})
        rows = metrics(runs_dir, run)
        tail = [row["val_acc"] for row in rows[-max(1, len(rows) // 4):]]
        out[kind] = {**r, "plateau": max(tail) - min(tail), "run": run}
    return out


def seeded_row(results: list[dict], bases: list[dict] | None = None, **extra) -> dict:
    """One table row over seeds: found nets, mean ± sd of accuracy and depth, and Delta against both
    baselines (per seed: AutoGrow − the same seed's baseline), with the per-seed values kept for verdicts."""
    from .report import pm
    accs = [r["test_acc"] for r in results]
    depths = [depth_of(r) for r in results]
    row = {**extra, "found nets": ", ".join("-".join(map(str, r.get("depths") or r["spec"]["depths"]))
                                            for r in results),
           "accu %": pm(accs), "depth (blocks)": pm(depths, 1)}
    if bases:
        for kind in ("matched", "converged"):
            d = [r["test_acc"] - b[kind]["test_acc"] for r, b in zip(results, bases)]
            row[f"Δ vs {kind}"] = pm(d)
            row[f"scratch {kind} %"] = pm([b[kind]["test_acc"] for b in bases])
    row["params"] = pm([r["params"] for r in results], 0)
    row["_acc"], row["_depth"] = accs, depths
    return row


def public(rows: list[dict]) -> list[dict]:
    """Rows without the per-seed lists kept for verdicts (keys starting with '_')."""
    return [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]


def test_size(run_dir) -> int:
    """Images in a run's test split (one image = 100 / n points)."""
    d = load_data(run_dir)
    return d.size("test")


def recovery_after_growth(rows: list[dict], growth_epochs, within: int, floor: float) -> tuple[int, int]:
    """(growths after which the validation accuracy got back to its value just before the growth, minus
    ``floor``, within ``within`` epochs; all growths). The paper: "the loss and accuracy rapidly recover"."""
    acc = {r["epoch"]: r["val_acc"] for r in rows}
    ok = 0
    for g in growth_epochs:
        after = [acc[e] for e in range(g + 1, g + within + 1) if e in acc]
        ok += bool(after) and max(after) >= acc[g] - floor
    return ok, len(list(growth_epochs))
