"""Runs on disk: start any registered method (:func:`run`) and resume any run (:func:`resume`),
plus the ``train`` / ``autogrow`` / ``network_morphism`` shorthands the CLI and the notebooks call.

A run directory holds ``config.json`` (written before training starts),
``metrics.jsonl`` (a row per epoch), ``checkpoint.pt`` (after every epoch),
optional ``trajectory/`` snapshots, ``scratch/`` (the found net trained from
scratch, itself a run directory) and, last of all, ``result.json``.
Everything is validated (names, values, data files) before the directory is
touched, so bad input never leaves a half-written run behind.

Every run is rebuilt from its ``config.json`` by :func:`_build` through the
method registry (:mod:`growkit.methods`), so starting and resuming share one code path.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from . import checkpoint, methods
from .config import AutoGrowConfig, NetworkMorphismConfig, TrainConfig
from .errors import GrowkitError
from .records import environment, read_json, write_json
from .train import Trainer


def check_out(out: str | Path, overwrite: bool) -> None:
    """Refuse a non-empty directory unless ``overwrite`` and it holds a growkit run. Writes nothing."""
    p = Path(out)
    if p.exists() and not p.is_dir():
        raise GrowkitError(f"--out {out} exists and is not a directory")
    if p.is_dir() and any(p.iterdir()):
        if not overwrite:
            raise GrowkitError(f"--out {out} is not empty; pass --overwrite to replace the run in it, "
                               f"or `growkit resume {out}` to continue it")
        if not (p / "config.json").exists():
            raise GrowkitError(f"--out {out} is not empty and holds no growkit run (no config.json); "
                               "refusing to delete it")


def _build(rc: dict, out: Path | None, callbacks=(), data=None, objective=None) -> Trainer:
    """The trainer (with grower and phases) that a run config describes."""
    method = methods.get(rc.get("command"))
    cfg = TrainConfig.from_dict(rc["train"]).validate().resolved()
    grower, phases, cfg = method.build(cfg, method.options(rc))
    return Trainer(cfg, out, phases=phases, grower=grower, run_config=rc, callbacks=callbacks, data=data,
                   objective=objective)


def _start(rc: dict, out, overwrite: bool, callbacks, data, grower_hook=None, objective=None):
    check_out(out, overwrite)
    trainer = _build(rc, Path(out), callbacks, data, objective)  # validates everything before the directory is touched
    rc["train"] = trainer.cfg.to_dict()  # resolved defaults (e.g. the learning rate) are recorded
    rc["environment"] = environment(trainer.device)
    p = Path(out)
    if p.is_dir() and any(p.iterdir()):  # check_out allowed it: a growkit run to replace
        shutil.rmtree(p)
    p.mkdir(parents=True, exist_ok=True)
    write_json(p / "config.json", rc)
    if grower_hook is not None and trainer.grower is not None:
        grower_hook(trainer.grower)
    return trainer, p


def _finish(trainer: Trainer, out: Path) -> dict:
    res = trainer.fit()
    rc = trainer.run_config
    method = methods.get(rc["command"])
    if method.summarize is not None:
        res = {**res, **method.summarize(res, trainer, method.options(rc), out)}
    write_json(out / "result.json", res)
    return res


def run(method: str, train_cfg: TrainConfig, method_cfg=None, out: str | Path | None = None, *,
        overwrite: bool = False, callbacks=(), data=None, grower_hook=None, objective=None) -> dict:
    """Start registered ``method`` (see :func:`growkit.methods.names`) with its options ``method_cfg``
    into run directory ``out``. ``grower_hook(grower)`` receives the grower before training starts
    (e.g. for a stop button); ``objective(model, x, y) -> loss`` replaces cross-entropy (not recorded
    in config.json: a resume must pass it again)."""
    if out is None:
        raise GrowkitError("run needs an output directory")
    m = methods.get(method)
    rc = {"command": m.name, "train": train_cfg.to_dict()}
    if m.config is not None:
        if method_cfg is None:
            raise GrowkitError(f"{m.name} needs its options ({m.config.__name__})")
        rc[m.name] = method_cfg.validate().to_dict()
    trainer, p = _start(rc, out, overwrite, callbacks, data, grower_hook, objective)
    return _finish(trainer, p)


def train(cfg: TrainConfig, out: str | Path, *, overwrite: bool = False, callbacks=(), data=None) -> dict:
    return run("train", cfg, None, out, overwrite=overwrite, callbacks=callbacks, data=data)


def autogrow(train_cfg: TrainConfig, ag_cfg: AutoGrowConfig, out: str | Path, *, overwrite: bool = False,
             callbacks=(), data=None, grower_hook=None) -> dict:
    """Grow (Algorithm 1), fine-tune, and optionally train the found net from scratch (``ag_cfg.scratch``).
    ``grower_hook(grower)`` receives the grower before training starts (e.g. for a stop button)."""
    return run("autogrow", train_cfg, ag_cfg, out, overwrite=overwrite, callbacks=callbacks, data=data,
               grower_hook=grower_hook)


def network_morphism(train_cfg: TrainConfig, target_depths: list[int], out: str | Path, *, shallow_epochs: int,
                     deeper_epochs: int, init: str = "zero", init_std: float = 1.0, overwrite: bool = False,
                     callbacks=(), data=None) -> dict:
    """Network Morphism (AutoGrow Table 2): train ``train_cfg``'s net for ``shallow_epochs``, stack blocks up
    to ``target_depths`` with ``init`` (zero or adam keep the function), train ``deeper_epochs`` more."""
    nm = NetworkMorphismConfig(list(target_depths), shallow_epochs, deeper_epochs, init, init_std)
    return run("network-morphism", train_cfg, nm, out, overwrite=overwrite, callbacks=callbacks, data=data)


morph = network_morphism  # the former name


def resume(out: str | Path, *, callbacks=(), data=None, objective=None) -> dict:
    """Continue a run of any method from its last checkpoint; a finished run just returns its result."""
    p = Path(out)
    if not (p / "config.json").exists():
        raise GrowkitError(f"{out} holds no growkit run (no config.json)")
    if (p / "result.json").exists():
        return read_json(p / "result.json")
    trainer = _build(read_json(p / "config.json"), p, callbacks, data, objective)
    if (p / "checkpoint.pt").exists():  # (the recorder truncates metrics.jsonl to it when fit starts)
        trainer.restore(checkpoint.load(p / "checkpoint.pt"))
    return _finish(trainer, p)
