"""Runs on disk: ``train``, ``autogrow``, ``morph`` and ``resume``, as the CLI and the notebooks call them.

A run directory holds ``config.json`` (written before training starts),
``metrics.jsonl`` (a row per epoch), ``checkpoint.pt`` (after every epoch),
optional ``trajectory/`` snapshots, ``scratch/`` (the found net trained from
scratch, itself a run directory) and, last of all, ``result.json``.
Everything is validated (names, values, data files) before the directory is
touched, so bad input never leaves a half-written run behind.

Every command is rebuilt from its ``config.json`` by :func:`_build`, so
starting and resuming share one code path.
"""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from . import checkpoint
from .config import AutoGrowConfig, TrainConfig
from .errors import GrowkitError
from .growers import autogrow as ag_mod
from .growers.morph import Morph
from .records import MetricsLog, environment, read_json, write_json
from .train import Phase, Trainer


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


def _build(rc: dict, out: Path | None, callbacks=(), data=None) -> Trainer:
    """The trainer (with grower and phases) that a run config describes."""
    cfg = TrainConfig.from_dict(rc["train"]).validate().resolved()
    command = rc.get("command")
    if command == "train":
        return Trainer(cfg, out, run_config=rc, callbacks=callbacks, data=data)
    if command == "autogrow":
        grower, phases, cfg = ag_mod.make(cfg, AutoGrowConfig.from_dict(rc["autogrow"]))
        return Trainer(cfg, out, phases=phases, grower=grower, run_config=rc, callbacks=callbacks, data=data)
    if command == "morph":
        m = rc["morph"]
        grower = Morph(m["target_depths"], m["shallow_epochs"], m["init"], m.get("init_std", 1.0))
        ms, g = tuple(cfg.milestones), cfg.gamma
        phases = [Phase("shallow", cfg.lr, "staircase", m["shallow_epochs"], milestones=ms, gamma=g, grows=True),
                  Phase("deeper", cfg.lr, "staircase", m["deeper_epochs"], milestones=ms, gamma=g)]
        return Trainer(cfg, out, phases=phases, grower=grower, run_config=rc, callbacks=callbacks, data=data)
    raise GrowkitError(f"unknown run command {command!r}")


def _start(rc: dict, out, overwrite: bool, callbacks, data, grower_hook=None) -> tuple[Trainer, Path]:
    check_out(out, overwrite)
    trainer = _build(rc, Path(out), callbacks, data)  # validates everything before the directory is touched
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
    if rc["command"] == "autogrow":
        ag = AutoGrowConfig.from_dict(rc["autogrow"])
        res = {**res, **ag_mod.summarize(res, trainer.grower)}
        if ag.scratch:
            res.update(_scratch(trainer, ag, res, out / "scratch"))
    write_json(out / "result.json", res)
    return res


def _scratch(trainer: Trainer, ag: AutoGrowConfig, res: dict, sdir: Path) -> dict:
    """The found net trained from scratch with the fine-tuning budget (the Delta columns)."""
    if (sdir / "result.json").exists():
        s = read_json(sdir / "result.json")
    elif (sdir / "config.json").exists():
        s = resume(sdir, callbacks=trainer.callbacks)
    else:
        cfg = ag_mod.scratch_config(trainer.cfg, ag, res["spec"])
        s = train(cfg, sdir, data=trainer.data, callbacks=trainer.callbacks)
    return {"scratch_test_acc": s["test_acc"], "scratch_val_acc": s["val_acc"], "scratch_epochs": s["epochs"],
            "scratch_wall_s": s["wall_s"],
            "delta": None if s["test_acc"] is None else res["test_acc"] - s["test_acc"]}


def train(cfg: TrainConfig, out: str | Path, *, overwrite: bool = False, callbacks=(), data=None) -> dict:
    rc = {"command": "train", "train": cfg.to_dict()}
    trainer, p = _start(rc, out, overwrite, callbacks, data)
    return _finish(trainer, p)


def autogrow(train_cfg: TrainConfig, ag_cfg: AutoGrowConfig, out: str | Path, *, overwrite: bool = False,
             callbacks=(), data=None, grower_hook=None) -> dict:
    """Grow (Algorithm 1), fine-tune, and optionally train the found net from scratch (``ag_cfg.scratch``).
    ``grower_hook(grower)`` receives the grower before training starts (e.g. for a stop button)."""
    rc = {"command": "autogrow", "train": train_cfg.to_dict(), "autogrow": ag_cfg.validate().to_dict()}
    trainer, p = _start(rc, out, overwrite, callbacks, data, grower_hook)
    return _finish(trainer, p)


def morph(train_cfg: TrainConfig, target_depths: list[int], out: str | Path, *, shallow_epochs: int,
          deeper_epochs: int, init: str = "zero", overwrite: bool = False, callbacks=(), data=None) -> dict:
    """Network Morphism (AutoGrow Table 2): train ``train_cfg``'s net for ``shallow_epochs``, stack blocks up
    to ``target_depths`` with ``init`` (zero or adam keep the function), train ``deeper_epochs`` more."""
    shallow = train_cfg.depths or []
    if len(target_depths) != len(shallow) or any(t < d for t, d in zip(target_depths, shallow)):
        raise GrowkitError(f"target depths {target_depths} must extend the shallower depths {shallow}")
    if min(shallow_epochs, deeper_epochs) <= 0:
        raise GrowkitError("shallow_epochs and deeper_epochs must be > 0")
    train_cfg = dataclasses.replace(train_cfg, epochs=shallow_epochs + deeper_epochs)
    rc = {"command": "morph", "train": train_cfg.to_dict(),
          "morph": {"target_depths": list(target_depths), "shallow_epochs": shallow_epochs,
                    "deeper_epochs": deeper_epochs, "init": init}}
    trainer, p = _start(rc, out, overwrite, callbacks, data)
    return _finish(trainer, p)


def resume(out: str | Path, *, callbacks=(), data=None) -> dict:
    """Continue a run from its last checkpoint; a finished run just returns its result."""
    p = Path(out)
    if not (p / "config.json").exists():
        raise GrowkitError(f"{out} holds no growkit run (no config.json)")
    if (p / "result.json").exists():
        return read_json(p / "result.json")
    trainer = _build(read_json(p / "config.json"), p, callbacks, data)
    if (p / "checkpoint.pt").exists():
        trainer.restore(checkpoint.load(p / "checkpoint.pt"))
    else:  # killed before the first checkpoint: start again from the same seed
        MetricsLog(p / "metrics.jsonl").truncate(0)
    return _finish(trainer, p)
