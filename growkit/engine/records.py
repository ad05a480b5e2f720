"""Run records: metrics.jsonl (one row per epoch), result.json, and the environment stamp.

Every file is written so that a crash leaves either the old or the new version,
never half of one: JSON files by write-then-rename, metrics rows by appending
whole lines with fsync (a resume truncates rows the checkpoint has not seen).
"""
from __future__ import annotations

import contextlib
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

from ..errors import GrowkitError


def fsync_dir(path: str | Path) -> None:
    """Make a rename or unlink inside ``path`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


TMP_SUFFIX = ".growkit-tmp"  # growkit's temporary files, and only those, end so: `growkit recover` deletes them


def tmp_path(path: str | Path) -> Path:
    """Where growkit writes ``path``'s next version before renaming it into place."""
    path = Path(path)
    return path.with_name(path.name + TMP_SUFFIX)


@contextlib.contextmanager
def replacing(path: str | Path, durable: bool = True):
    """``with replacing(path) as f: write to f``: the bytes go to ``path``'s temporary file, which is flushed
    (fsync'd when ``durable``) and renamed over ``path`` when the block ends. A failure inside (a full disk:
    ENOSPC mid-write) deletes the temporary file, so the old ``path`` stays as it was and no half-written
    file keeps the space; a kill leaves it to `growkit recover`."""
    path = Path(path)
    tmp = tmp_path(path)
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    if durable:
        fsync_dir(path.parent)


def atomic_write(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves the old file or the new one, never a mix."""
    with replacing(path) as f:
        f.write(data.encode() if isinstance(data, str) else data)


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
    atomic_write(path, json.dumps(_clean(obj), indent=2) + "\n")


def read_json(path: str | Path, what: str = "a JSON object"):
    """Parse a JSON file; a missing, unreadable or malformed file is a one-line GrowkitError naming it."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise GrowkitError(f"{path} is missing") from None
    except (OSError, UnicodeDecodeError) as e:
        raise GrowkitError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise GrowkitError(f"{path} is not valid JSON ({one_line(e)})") from None
    if what == "a JSON object" and not isinstance(obj, dict):
        raise GrowkitError(f"{path} holds a JSON {type(obj).__name__}, expected an object")
    return obj


def one_line(e: BaseException) -> str:
    """An exception as one short line: its first line, without advice to weaken safety
    (torch suggests ``weights_only=False``, which would let a file run code)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    keep = [ln for ln in lines if "weights_only" not in ln and "WeightsUnpickler" not in ln]
    text = (keep or lines or [e.__class__.__name__])[0]
    text = text.split("weights_only")[0].rstrip(" ,;:(")
    return text[:300] or e.__class__.__name__


class MetricsLog:
    """``metrics.jsonl``: one JSON object per line, each with an integer ``epoch``, epochs increasing.

    A damaged line is an error naming the line -- never silently dropped -- except a last line with
    no newline, which is what a kill during :meth:`append` leaves (its epoch never reached the
    checkpoint); :meth:`read` skips it and :meth:`repair` cuts it.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def append(self, row: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(_clean(row)) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def _parse(self) -> tuple[list[dict], int]:
        """(rows, bytes of a torn last line). Raises GrowkitError on any other damage."""
        if not self.path.exists():
            return [], 0
        try:
            data = self.path.read_bytes().decode()
        except (OSError, UnicodeDecodeError) as e:
            raise GrowkitError(f"cannot read {self.path}: {getattr(e, 'strerror', None) or e}") from None
        lines = data.split("\n")
        torn = lines.pop()  # "" when the file ends with a newline
        rows, last = [], 0
        for i, line in enumerate(lines, 1):
            where = f"{self.path} line {i}"
            try:
                row = json.loads(line)
            except ValueError:
                raise GrowkitError(f"{where} is not a JSON record ({line[:40]!r}); fix or delete that line"
                                   ) from None
            if not isinstance(row, dict) or "epoch" not in row:
                raise GrowkitError(f"{where} has no 'epoch' field; fix or delete that line")
            ep = row["epoch"]
            if not isinstance(ep, int) or isinstance(ep, bool) or ep <= last:
                raise GrowkitError(f"{where}: epoch {ep!r} does not follow epoch {last}; two processes may "
                                   "have written this run, or the line was edited")
            rows.append(row)
            last = ep
        if torn:
            try:
                json.loads(torn)
            except ValueError:
                return rows, len(torn.encode())
            raise GrowkitError(f"{self.path} line {len(lines) + 1} has no newline at its end; fix the file")
        return rows, 0

    def read(self) -> list[dict]:
        return self._parse()[0]

    def repair(self) -> str | None:
        """Cut a last line torn by a kill; returns what was cut, or None."""
        rows, torn = self._parse()
        if not torn:
            return None
        self._rewrite(rows)
        return f"a metrics line torn by a kill ({torn} bytes after epoch {rows[-1]['epoch'] if rows else 0})"

    def truncate(self, last_epoch: int) -> None:
        """Keep rows up to ``last_epoch`` (what the checkpoint holds); rewrite atomically."""
        rows, torn = self._parse()
        keep = [r for r in rows if r["epoch"] <= last_epoch]
        if len(keep) != len(rows) or torn:
            self._rewrite(keep)

    def _rewrite(self, rows: list[dict]) -> None:
        atomic_write(self.path, "".join(json.dumps(r) + "\n" for r in rows))


def read_metrics(run_dir: str | Path) -> list[dict]:
    return MetricsLog(Path(run_dir) / "metrics.jsonl").read()


def git_commit() -> str:
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5).stdout.strip()
        # changed tracked files, the generated figures/ aside: a regeneration overwrites the committed figures as
        # it goes, and that must not mark the code that makes them as changed
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no", "--",
                                ":(top)", ":(top,exclude)figures"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (sha + ("-dirty" if dirty else "")) if sha else "unknown"


def presentation(rel: str) -> bool:
    """Whether the package file at ``rel`` (e.g. ``viz/plots.py``) only draws, tabulates or captions finished
    runs, known by where it lives: ``papers/``, ``viz/`` and every method's ``plots.py``. Nothing a run
    executes imports them (tests/test_layout.py checks it)."""
    parts = rel.split("/")
    return parts[0] in ("papers", "viz") or (len(parts) == 3 and parts[0] == "methods" and parts[2] == "plots.py")


@functools.lru_cache(maxsize=1)
def code_hash() -> str:
    """A hash of growkit's own source files: what a run's results depend on. It changes with every commit
    (or uncommitted edit) that changes the code, and not with one that changes only the docs, the notebooks or
    the presentation code (:func:`presentation`: plots, tables, captions, profiles, surfaces), which reads
    finished runs and never trains; so a plot fix re-draws from the cached runs instead of retraining them."""
    return tree_hash(Path(__file__).resolve().parents[1])


def tree_hash(root: Path) -> str:
    """:func:`code_hash` of the package rooted at ``root``."""
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        if presentation(f.relative_to(root).as_posix()):
            continue
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def environment(device: torch.device) -> dict:
    from ..version import __version__
    return {"growkit": __version__, "git_commit": git_commit(), "code": code_hash(), "torch": torch.__version__,
            "python": sys.version.split()[0], "device": device_name(device)}
