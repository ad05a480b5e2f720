"""``lm`` run directories: start, resume, report (the method's ``own_loop``, see :mod:`growkit.runs.registry`).

A run directory holds ``config.json`` (``{"command": "lm", "lm": {options}, "environment": ...}``, written
before training), ``metrics.jsonl`` (a row per evaluation), ``checkpoint.pt`` (after every evaluation) and,
last, ``result.json``. It is made as every growkit run is (:func:`growkit.runs.lifecycle.staged`): in a hidden
folder beside ``--out``, moved there right after the first checkpoint, so bad input or a failure before it
leaves nothing behind. ``growkit resume DIR`` continues from the last checkpoint.
"""
from __future__ import annotations

from pathlib import Path

from ...engine import checkpoint as ckpt
from ...engine.records import MetricsLog, read_json, write_json
from ...errors import GrowkitError
from .config import LMConfig
from .loop import COMMAND, LMRun


def start(cfg: LMConfig, out, *, overwrite: bool = False) -> dict:
    """Validate everything (options, device, data files, model) before writing; then train, staged."""
    from ...runs import lifecycle, rundir
    stage = rundir.prepare(out, COMMAND, overwrite)  # only a growkit run may be replaced; writes nothing
    run = LMRun(cfg.validate(), stage.path)  # data and model built (and checked) before anything is written
    with lifecycle.staged(stage):
        write_json(stage.path / "config.json", run.run_config)
        res = run.fit(on_checkpoint=lambda r: setattr(r, "out", stage.commit()))
        p = stage.commit()
        write_json(p / "result.json", res)
        return res


def resume(out) -> dict:
    """Continue a run in place from its last checkpoint (the caller, :func:`growkit.runs.lifecycle.resume`,
    checked its marker and holds its lock); a finished run returns its result."""
    p = Path(out)
    rc = read_json(p / "config.json")
    if rc.get("command") != COMMAND or COMMAND not in rc:
        raise GrowkitError(f"{out} is not an {COMMAND} run")
    if (p / "result.json").exists():
        return read_json(p / "result.json")
    cfg = LMConfig.from_dict(rc[COMMAND]).validate()
    run = LMRun(cfg, p, run_config=rc)
    load_last(run, p)
    res = run.fit()
    write_json(p / "result.json", res)
    return res


def load_last(run: LMRun, p: Path) -> bool:
    """Restore ``run`` from run directory ``p``'s checkpoint, checked against its config and records; False
    when there is none yet (the run starts from step 0). A run with a grower resumes the same way: build the
    :class:`LMRun` with its grower, then call this (the grower's state comes back from the checkpoint)."""
    p = Path(p)
    if not (p / "checkpoint.pt").exists():
        return False
    state = ckpt.load(p / "checkpoint.pt")
    if state["config"].get(COMMAND) != run.run_config.get(COMMAND):
        raise GrowkitError(f"{p / 'checkpoint.pt'} belongs to another run than {p / 'config.json'}")
    rows = MetricsLog(p / "metrics.jsonl").read()
    last = rows[-1]["epoch"] if rows else 0
    if state["loop"]["evals"] > last:  # a row is written before its checkpoint
        raise GrowkitError(f"{p / 'checkpoint.pt'} is of row {state['loop']['evals']} but metrics.jsonl ends "
                           f"at row {last}; one of them is not this run's")
    try:
        run.restore(state)
    except (RuntimeError, KeyError, ValueError, TypeError) as e:
        raise GrowkitError(f"{p / 'checkpoint.pt'} does not fit its model: {str(e).splitlines()[0][:200]}"
                           ) from None
    return True


def follow(payload: dict) -> None:
    raise GrowkitError(f"{COMMAND} runs in one process; start it without torchrun")


def report(res: dict, out) -> None:
    print(f"{res['arch']}: val loss {res['val_loss']:.4f} nats/token after {res['steps']:,} steps "
          f"({res['tokens']:,} tokens, {res['train_macs']:.3g} training multiply-adds), {res['params']:,} params, "
          f"{res['wall_s']:.1f} s -> {out}/result.json")


def cached(runs_dir, name: str, cfg: LMConfig) -> dict:
    """A named run for notebooks and harnesses, through growkit's one run cache
    (:func:`growkit.runs.cache.named`): its result when it finished with the same config and the same growkit
    code, resumed when it was interrupted with both, replaced otherwise."""
    from ...runs import cache
    return cache.named(runs_dir, name, COMMAND, None, cfg)
