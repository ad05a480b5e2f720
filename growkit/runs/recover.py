"""``growkit recover DIR``: make a run directory interrupted by a crash or kill usable again.

Everything growkit writes is atomic (see :mod:`growkit.runs.rundir`), so a kill leaves at most: temporary
``*.growkit-tmp`` files (only growkit names a file so; a user's ``*.tmp`` stays), a folder holding only the lock
of a new run killed while it started, a metrics line cut in half (a kill during its append), a staging folder beside the
run (a new run killed before its first checkpoint) or, with no ``renameat2``, an old run moved aside by an
interrupted ``--overwrite``. A damaged or deleted ``config.json`` can be rebuilt from the checkpoint, which
holds a copy. Recovery never touches a folder that is not growkit's and never deletes a record other than
a torn last metrics line. A refused recovery changes nothing: every check comes before the first change.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..engine.records import TMP_SUFFIX, MetricsLog, atomic_write
from ..errors import GrowkitError
from .rundir import (LOCK, MARKER, RunLock, _siblings, check_output_path, clean_leftovers, new_marker, read_marker,
                     remove_run)


def _only_growkit_leftovers(p: Path) -> bool:
    return all(c.name in (MARKER, LOCK) or c.name.endswith(TMP_SUFFIX) for c in p.iterdir())


def recover(path: str | Path) -> str:
    """Make a run directory interrupted by a crash or kill usable again (``growkit recover DIR``).

    Returns a one-line summary. Never touches a directory that is not growkit's, and never deletes
    records: a torn last metrics line (a kill during its write) is the only data cut.
    """
    from .records import read_run_config

    p = Path(path)
    check_output_path(p, "recover")
    actions = []
    if not p.exists():
        old = [d for d in _siblings(p, "staging") if d.name.startswith(f".{p.name}.growkit-staging-old")]
        if old and read_marker(old[0]) is not None:  # killed between the two renames of a replacement
            os.rename(old[0], p)
            actions.append("put back the run an interrupted --overwrite had moved aside")
        else:
            gone = clean_leftovers(p)
            if not gone:
                raise GrowkitError(f"{p} does not exist and no interrupted run of that name was found")
            return f"{p}: removed {len(gone)} unfinished run(s) beside it; nothing else to recover"
    if p.is_symlink() or not p.is_dir():
        raise GrowkitError(f"{p} is not a run directory")
    marker = read_marker(p)
    if marker is None:
        if {c.name for c in p.iterdir()} == {LOCK}:  # a new run killed while it started: only its lock
            with RunLock(p):  # nobody is starting there now
                (p / LOCK).unlink()
            p.rmdir()  # empty now: as before the run started
            gone = clean_leftovers(p)
            return (f"{p}: a run killed while it started: removed it"
                    + (f" and {len(gone)} unfinished run(s) beside it" if gone else "") + "; start it again")
        if not (p / "config.json").exists():
            raise GrowkitError(f"{p} is not a growkit run (no {MARKER}); left untouched")
        try:
            read_run_config(p)  # adopted only when its config.json really is a growkit run config
        except GrowkitError as e:
            raise GrowkitError(f"{p} is not a growkit run (no {MARKER}, and {e}); left untouched") from None
        with RunLock(p):
            MetricsLog(p / "metrics.jsonl").read()  # damage inside: refused before anything is written
            m = new_marker(json.loads((p / "config.json").read_text()).get("command", "train"))
            atomic_write(p / MARKER, json.dumps(m, indent=2) + "\n")
        actions.append(f"marked as a growkit run (made before {MARKER} existed)")
    with RunLock(p) as lock:
        # every check first: a refusal leaves the folder as it was
        ckpt = p / "checkpoint.pt"
        try:
            read_run_config(p)
            rebuilt = None
        except GrowkitError:
            if ckpt.exists():
                from ..engine import checkpoint
                rebuilt = checkpoint.load(ckpt)["config"]
            elif _only_growkit_leftovers(p):
                lock.release()
                remove_run(p)
                return f"{p}: removed (a growkit run killed before it held anything); start it again"
            else:
                raise GrowkitError(f"{p}/config.json is missing or damaged and there is no checkpoint to "
                                   "rebuild it from; move your files out and delete the folder") from None
        MetricsLog(p / "metrics.jsonl").read()  # damage other than a torn last line: refused, nothing cut
        for tmp in sorted(p.glob("*" + TMP_SUFFIX)):
            tmp.unlink()
            actions.append(f"removed {tmp.name}")
        if rebuilt is not None:
            atomic_write(p / "config.json", json.dumps(rebuilt, indent=2) + "\n")
            actions.append("rebuilt config.json from checkpoint.pt")
        cut = MetricsLog(p / "metrics.jsonl").repair()
        if cut:
            actions.append(f"cut {cut}")
        gone = clean_leftovers(p)
        if gone:
            actions.append(f"removed {len(gone)} unfinished replacement(s) beside it")
        if (p / "scratch").is_dir() and read_marker(p / "scratch") is not None:
            sub = recover(p / "scratch")
            if "nothing to recover" not in sub:
                actions.append(f"scratch/: {sub.split(': ', 1)[-1]}")
    if not actions:
        return f"{p}: nothing to recover"
    return f"{p}: {'; '.join(actions)}; continue with `growkit resume {p}`"
