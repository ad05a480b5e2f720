"""The run cache: ``runs_dir/name`` is reused when it finished with the same config and the same growkit
code, resumed when it was interrupted with both the same, and replaced otherwise.

So re-executing a notebook after a crash or with one changed parameter only redoes the runs that need it,
a fix to growkit's code reruns everything it may have changed (the key holds a hash of the package's
source files, :func:`growkit.engine.records.code_hash`), and every number a notebook shows comes from a
run directory a reader can open.

:func:`cached` is the cache itself (a run config in, a result or None out); :func:`named` starts any
registered method through it, methods with their own loop (learn-to-grow) included. Under ``growkit
figures`` the notebooks of a profile also share finished identical runs (:mod:`growkit.runs.pool`).
"""
from __future__ import annotations

from pathlib import Path

from ..engine.config import TrainConfig
from ..engine import records
from ..errors import GrowkitError
from . import lifecycle, measured, pool, registry
from .identity import essential, same  # noqa: F401  (re-exported: callers ask the cache)


def cached(out: str | Path, wanted: dict, *, callbacks=(), grower_hook=None):
    """The result of an identical finished run in ``out``, or resume an identical unfinished one (with
    ``callbacks`` and ``grower_hook``, as a new run would get them); else None. ``wanted``: the run config
    (``config.json`` without its environment stamp) the caller would start. A run whose growing was stopped
    on request carries the stop in its config.json, so it is never identical to a request without one."""
    out = Path(out)
    if not (out / "config.json").exists() or not same(records.read_json(out / "config.json"), wanted):
        return None
    if (out / "result.json").exists():
        return records.read_json(out / "result.json")
    return lifecycle.resume(out, callbacks=callbacks, grower_hook=grower_hook)


def train_cfg(train: dict) -> TrainConfig:
    """A notebook's train settings as a resolved config (no progress bar)."""
    return TrainConfig(**{"progress": False, **train}).validate().resolved()


def named(runs_dir, name: str, method: str, cfg: TrainConfig | None, options=None, **kw) -> dict:
    """Reuse, resume or (re)start run ``name`` of ``method``. A method with its own loop (learn-to-grow) takes
    no train config (``cfg`` None): its options are its whole run config. The result's record values are
    :mod:`growkit.runs.measured` numbers that name this run."""
    out = Path(runs_dir) / name
    m = registry.get(method)
    if m.own_loop is None:
        wanted = m.run_config(cfg, options)
    elif options is None:
        raise GrowkitError(f"{m.name} needs its options ({m.config.__name__})")
    else:
        wanted = {"command": m.name, m.name: options.validate().to_dict()}
    hit = cached(out, wanted, callbacks=kw.get("callbacks", ()), grower_hook=kw.get("grower_hook"))
    if hit is None:
        hit = pool.fetch(out, wanted)  # another notebook of the profile finished the very same run
    if hit is None:
        hit = lifecycle.run(method, cfg, options, out, overwrite=True, **kw)
    pool.remember(out, wanted)
    return measured.tag(hit, runs_dir, name)  # its numbers remember this run (the verdicts' trace)
