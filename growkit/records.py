"""Run records: metrics.jsonl (one row per epoch), result.json, and the environment stamp.

Every file is written so that a crash leaves either the old or the new version,
never half of one: JSON files by write-then-rename, metrics rows by appending
whole lines with fsync (a resume truncates rows the checkpoint has not seen).
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch


def _clean(obj):
    """JSON has no NaN/inf: write them as null rather than emit invalid JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def write_json(path: str | Path, obj) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(_clean(obj), f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: str | Path):
    with open(path) as f:
        return json.load(f)


class MetricsLog:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def append(self, row: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(_clean(row)) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        rows = []
        for line in self.path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a kill: ignore it
                break
        return rows

    def truncate(self, last_epoch: int) -> None:
        """Keep rows up to ``last_epoch`` (what the checkpoint holds); rewrite atomically."""
        rows = [r for r in self.read() if r["epoch"] <= last_epoch]
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
        os.replace(tmp, self.path)


def read_metrics(run_dir: str | Path) -> list[dict]:
    return MetricsLog(Path(run_dir) / "metrics.jsonl").read()


def git_commit() -> str:
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (sha + ("-dirty" if dirty else "")) if sha else "unknown"


@functools.lru_cache(maxsize=1)
def code_hash() -> str:
    """A hash of growkit's own source files: what a run's results depend on. It changes with every commit
    (or uncommitted edit) that changes the code, and not with one that changes only the docs or notebooks."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def environment(device: torch.device) -> dict:
    from . import __version__
    return {"growkit": __version__, "git_commit": git_commit(), "code": code_hash(), "torch": torch.__version__,
            "python": sys.version.split()[0], "device": device_name(device)}
