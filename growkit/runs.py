"""Runs on disk: ``train``, ``autogrow`` and ``resume``, as the CLI and the notebooks call them.

A run directory holds ``config.json`` (written before training starts),
``metrics.jsonl`` (a row per epoch), ``checkpoint.pt`` (after every epoch),
optional ``trajectory/`` snapshots, ``scratch/`` (AutoGrow's from-scratch
baseline, itself a run directory) and, last of all, ``result.json``.
Everything is validated (names, values, data files) before the directory is
touched, so bad input never leaves a half-written run behind.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from . import checkpoint
from .config import AutoGrowConfig, TrainConfig
from .errors import GrowkitError
from .growers import autogrow as ag_mod
from .records import MetricsLog, environment, read_json, write_json
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


def _make_out(out: str | Path) -> Path:
    p = Path(out)
    if p.is_dir() and any(p.iterdir()):  # check_out allowed it: a growkit run to replace
        shutil.rmtree(p)
    p.mkdir(parents=True, exist_ok=True)
    return p


def train(cfg: TrainConfig, out: str | Path, *, overwrite: bool = False, callbacks=(), data=None) -> dict:
    check_out(out, overwrite)
    trainer = Trainer(cfg, out, callbacks=callbacks, data=data)
    out = _make_out(out)
    write_json(out / "config.json", trainer.run_config)
    result = trainer.fit()
    write_json(out / "result.json", result)
    return result


def autogrow(train_cfg: TrainConfig, ag_cfg: AutoGrowConfig, out: str | Path, *, overwrite: bool = False,
             callbacks=(), data=None, grower_hook=None) -> dict:
    """Grow (Algorithm 1), fine-tune, and optionally train the found net from scratch (``ag_cfg.scratch``).
    ``grower_hook(grower)`` receives the grower before training starts (e.g. for a stop button)."""
    check_out(out, overwrite)
    grower, phases, train_cfg = ag_mod.make(train_cfg, ag_cfg)
    run_config = {"command": "autogrow", "train": train_cfg.to_dict(), "autogrow": ag_cfg.to_dict()}
    trainer = Trainer(train_cfg, out, phases=phases, grower=grower, run_config=run_config,
                      callbacks=callbacks, data=data)
    run_config["environment"] = environment(trainer.device)
    out = _make_out(out)
    write_json(out / "config.json", run_config)
    if grower_hook is not None:
        grower_hook(grower)
    return _finish_autogrow(trainer, grower, ag_cfg, out)


def _finish_autogrow(trainer: Trainer, grower, ag_cfg: AutoGrowConfig, out: Path) -> dict:
    res = trainer.fit()
    result = {**res, **ag_mod.summarize(res, grower)}
    if ag_cfg.scratch:
        sdir = out / "scratch"
        if (sdir / "result.json").exists():
            s = read_json(sdir / "result.json")
        elif (sdir / "config.json").exists():
            s = resume(sdir)
        else:
            s = train(ag_mod.scratch_config(trainer.cfg, ag_cfg, res["spec"]), sdir, data=trainer.data,
                      callbacks=trainer.callbacks)
        result.update(scratch_test_acc=s["test_acc"], scratch_val_acc=s["val_acc"], scratch_epochs=s["epochs"],
                      scratch_wall_s=s["wall_s"], delta=result["test_acc"] - s["test_acc"])
    write_json(out / "result.json", result)
    return result


def resume(out: str | Path, *, callbacks=()) -> dict:
    """Continue a run from its last checkpoint; a finished run just returns its result."""
    p = Path(out)
    if not (p / "config.json").exists():
        raise GrowkitError(f"{out} holds no growkit run (no config.json)")
    if (p / "result.json").exists():
        return read_json(p / "result.json")
    rc = read_json(p / "config.json")
    cfg = TrainConfig.from_dict(rc["train"])
    if rc.get("command") == "autogrow":
        ag_cfg = AutoGrowConfig.from_dict(rc["autogrow"])
        grower, phases, cfg = ag_mod.make(cfg, ag_cfg)
        trainer = Trainer(cfg, p, phases=phases, grower=grower, run_config=rc, callbacks=callbacks)
    elif rc.get("command") == "train":
        trainer = Trainer(cfg, p, run_config=rc, callbacks=callbacks)
    else:
        raise GrowkitError(f"{out}/config.json names an unknown command {rc.get('command')!r}")
    if (p / "checkpoint.pt").exists():
        trainer.restore(checkpoint.load(p / "checkpoint.pt"))
    else:  # killed before the first checkpoint: start again from the same seed
        MetricsLog(p / "metrics.jsonl").truncate(0)
    if rc["command"] == "autogrow":
        return _finish_autogrow(trainer, grower, ag_cfg, p)
    result = trainer.fit()
    write_json(p / "result.json", result)
    return result
