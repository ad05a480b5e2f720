"""Identical runs shared by the notebooks of one profile.

``growkit figures`` keeps each notebook's runs in ``runs/<profile>/<notebook>/``, and several notebooks
train the very same run under names of their own: p-AutoGrow's Basic3ResNet seeds (K = 3, J = 10,
GauInit) serve the quickstart and five AutoGrow notebooks. A finished run is indexed in
``runs/<profile>/.growkit-pool/<key>.json`` under a hash of its config (as :func:`identity.essential` sees
it) and of the growkit code; a notebook that misses its own cache looks there and gets a *copy* of the
run, in its own folder, with a marker of its own that says where it was copied from. Each notebook's
folder stays complete on its own: records, plots and ``growkit recover`` never follow a link.

Only a folder holding ``.growkit-pool`` shares: a ``runs_dir`` you pass elsewhere is left as it was. The
pool is an index, never the data: a run found through it is checked again (a growkit run directory with
a result, the same config by :func:`identity.same`) before it is copied, and a stale or foreign entry is a
plain miss.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from ..engine import records
from ..errors import GrowkitError
from . import registry, rundir
from .identity import essential, same

POOL = ".growkit-pool"


def enable(root: str | Path) -> Path:
    """Make ``root`` (a profile's runs folder) share identical runs between the notebook folders in it."""
    pool = Path(root) / POOL
    pool.mkdir(parents=True, exist_ok=True)
    return pool


def _pool(out: Path) -> Path | None:
    pool = out.parent.parent / POOL
    return pool if pool.is_dir() and not pool.is_symlink() else None


def key(wanted: dict) -> str:
    """The index key of a run config: its essential settings and the growkit code that runs it."""
    text = json.dumps(essential(registry.normalize(wanted)), sort_keys=True, default=str)
    return hashlib.sha256(f"{records.code_hash()}\n{text}".encode()).hexdigest()[:32]


def remember(out: str | Path, wanted: dict) -> None:
    """Index the finished run ``out`` (its folder's ``result.json`` written) when its folder is in a pool."""
    out = Path(out)
    pool = _pool(out)
    if pool is None or not (out / "result.json").exists():
        return
    records.write_json(pool / f"{key(wanted)}.json", {"run": f"{out.parent.name}/{out.name}"})


def fetch(out: str | Path, wanted: dict) -> dict | None:
    """Copy a finished identical run of another notebook of the pool into ``out`` (which must not exist)
    and return its result; None when there is none (or ``out`` exists, or another process made it first)."""
    out = Path(out)
    pool = _pool(out)
    if pool is None or out.exists():
        return None
    try:
        src = out.parent.parent / records.read_json(pool / f"{key(wanted)}.json")["run"]
    except (OSError, ValueError, KeyError, TypeError, GrowkitError):
        return None
    if (src.resolve() == out.resolve() or not rundir.is_run(src) or not (src / "result.json").exists()
            or not same(records.read_json(src / "config.json"), wanted)):
        return None
    command = registry.normalize(wanted)["command"]
    try:
        stage = rundir.prepare(out, command)
        path = stage.create()  # locks ``out``: a second process copying or training it is refused
    except GrowkitError:
        return None
    try:
        for item in src.iterdir():
            if item.name in (rundir.LOCK, rundir.MARKER):
                continue
            if item.is_dir():
                shutil.copytree(item, path / item.name)
            else:
                shutil.copy2(item, path / item.name)
        records.write_json(path / rundir.MARKER, {**stage.marker, "copied_from": f"{src.parent.name}/{src.name}"})
        stage.commit()
    except OSError:
        stage.abort()
        return None
    except BaseException:
        stage.abort()
        raise
    finally:
        stage.release()
    return records.read_json(out / "result.json")
