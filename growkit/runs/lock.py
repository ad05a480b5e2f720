"""The run lock: an exclusive ``flock`` on ``DIR/.growkit-lock``, and who holds it, in words.

The holder records its pid, host and command in the file as soon as it holds the lock; a refused
command puts the file back as it was (:meth:`RunLock.undo`). The kernel drops the lock when its process
dies, so a crash never leaves a stale lock; a record naming a process that is gone is not believed.
"""
from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import glob
import json
import os
import socket
from pathlib import Path

from ..errors import GrowkitError

LOCK = ".growkit-lock"


class RunLock:
    """An exclusive ``flock`` on ``DIR/.growkit-lock``.

    ``acquire(command)`` records the holder (pid, host, command) right after it holds the lock, so a
    refusal never names a process from an older record; :meth:`undo` (a command refused after locking)
    puts the lock file back as it was -- its old bytes, or no file when ``acquire`` created it -- so a
    refused command leaves the directory byte-identical."""

    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir)
        self.fd: int | None = None
        self.created = False
        self.before = b""

    def acquire(self, command: str | None = None) -> "RunLock":
        path = self.dir / LOCK
        for _ in range(5):  # the lock file was replaced between our open and our flock: lock the new one
            created = False
            try:
                try:
                    fd = os.open(path, os.O_RDWR)
                except FileNotFoundError:
                    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
                    created = True
            except FileExistsError:
                continue
            except OSError as e:
                raise GrowkitError(f"cannot open the lock file {path}: {e.strerror}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if created:
                    _unlink_quiet(path)
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise GrowkitError(f"cannot lock {path}: {e.strerror}") from None
                raise GrowkitError(f"{self.dir} is in use by {holder(self.dir)}; wait for it to finish or stop "
                                   "it") from None
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(path))
            except OSError:
                same = False
            if not same:  # unlinked or replaced meanwhile: the lock we hold guards nothing
                os.close(fd)
                continue
            self.fd, self.created = fd, created
            self.before = b"" if created else os.pread(fd, 1 << 16, 0)
            if command is not None:
                self.record(command)
            return self
        raise GrowkitError(f"cannot lock {path}: it keeps being replaced by another process")

    def record(self, command: str) -> None:
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        info = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": now, "command": command})
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, (info + "\n").encode(), 0)
        os.fsync(self.fd)

    def undo(self) -> None:
        """Release the lock and leave its file as it was before :meth:`acquire` (a refused command)."""
        if self.fd is None:
            return
        if self.created:
            _unlink_quiet(self.dir / LOCK)  # unlinked while held: a waiting process re-opens the path
        else:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, self.before, 0)
        self.release()

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None

    def check_free(self) -> None:
        """Raise if a process holds the lock; creates nothing (no lock file: nobody holds it)."""
        if (self.dir / LOCK).exists():
            self.acquire().undo()

    def __enter__(self):
        return self.acquire()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.undo()  # refused or failed: the lock file as it was
        else:
            self.release()


def _unlink_quiet(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def _holder_record(lock_file: Path) -> dict | None:
    try:
        h = json.loads(lock_file.read_text())
        return h if all(k in h for k in ("pid", "host", "since", "command")) else None
    except (OSError, ValueError, TypeError):
        return None


def _alive(h: dict) -> bool:
    """Whether a recorded holder may still run (a pid on another host cannot be checked: assume so)."""
    if h["host"] != socket.gethostname():
        return True
    try:
        pid = int(h["pid"])
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, ValueError, TypeError, OverflowError):
        return True
    try:  # a pid reused by a process that started after the record was written is not the holder
        since = _dt.datetime.fromisoformat(str(h["since"])).timestamp()
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK") <= since + 2
    except (OSError, ValueError, IndexError, StopIteration):
        return True


def holder(run_dir: str | Path) -> str:
    """Who holds a run directory's lock, in words (from what the holder recorded). A record naming a process
    that is gone is not believed: a run starting into ``run_dir`` records itself in its staging folder
    (it does not rewrite the lock file of a run it may replace), so that record is looked for too."""
    d = Path(run_dir)
    cands = [(d / LOCK, None)] + [(s / LOCK, f"--out {d}") for s in d.parent.glob(f".{glob.escape(d.name)}.growkit-staging-*")
                                         if s.is_dir() and not s.is_symlink()]
    for lock_file, wants in cands:
        h = _holder_record(lock_file)
        if h is None or not _alive(h) or (wants is not None and not str(h["command"]).endswith(wants)):
            continue
        return f"pid {h['pid']} on {h['host']} (`growkit {h['command']}`, since {h['since']})"
    return "another process"
