"""Run directories that never lose a user's files: marker, staging, lock, path checks, recovery.

* **Marker.** Every run directory growkit makes holds ``.growkit-run.json`` (run id, creation time,
  growkit version, command). Only a directory carrying a valid marker counts as a growkit run:
  ``--overwrite`` replaces nothing else (a ``config.json`` alone proves nothing: source trees have one).
* **Staging.** A new run is built in a hidden sibling ``.NAME.growkit-staging-ID`` (same file system)
  and moved to ``NAME`` only after everything was validated and its first checkpoint was written: a run
  that fails early -- or an ``--overwrite`` that fails -- leaves ``NAME`` exactly as it was. The move is
  one ``rename`` (fresh runs; an empty ``NAME`` is replaced) or one ``renameat2(RENAME_EXCHANGE)``
  (``--overwrite``: old and new swap atomically; the old one is then deleted, its marker last).
* **Lock** (:mod:`growkit.runs.lock`). ``fcntl.flock`` on ``.growkit-lock`` inside the run directory, held
  while a process writes the run, taken before a new run writes anything into ``--out``; the holder's pid,
  host and command are recorded so a second process can say who holds it. The kernel drops the lock when
  its process dies, so a crash never leaves a stale lock.
* **Recovery.** ``growkit recover DIR`` (:mod:`growkit.runs.recover`) makes a half-made run usable again:
  it removes temporary files and leftovers of interrupted replacements, cuts a metrics line torn by a
  kill, rebuilds ``config.json`` from the checkpoint, or removes a growkit directory that holds nothing.

Every JSON file is written by :func:`atomic_write` (temp file, fsync, rename, fsync of the directory):
a crash leaves the old or the new version, never half of one. Cost: two fsyncs per write.
"""
from __future__ import annotations

import ctypes
import datetime as _dt
import errno
import json
import os
import re
import shutil
import uuid
from pathlib import Path

from ..engine.records import atomic_write, fsync_dir, tmp_path
from ..errors import GrowkitError
from .lock import LOCK, RunLock, holder  # noqa: F401  (the lock lives in runs/lock.py; older imports use rundir)

MARKER = ".growkit-run.json"
_ID = re.compile(r"^[0-9a-f]{32}$")
_KERNEL_FS = ("/proc", "/sys", "/dev")


# ----------------------------------------------------------------------------- marker

def read_marker(path: str | Path) -> dict | None:
    """The marker of a growkit run directory, or None when there is no valid one."""
    try:
        m = json.loads((Path(path) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(m, dict) or m.get("growkit_run") != 1 or not _ID.match(str(m.get("run_id", ""))):
        return None
    return m


def new_marker(command: str) -> dict:
    from ..version import __version__
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return {"growkit_run": 1, "run_id": uuid.uuid4().hex, "created": now, "growkit": __version__,
            "command": command}


def is_run(path: str | Path) -> bool:
    p = Path(path)
    return p.is_dir() and not p.is_symlink() and read_marker(p) is not None


# ----------------------------------------------------------------------------- path checks

def check_output_path(path: str | Path, flag: str = "--out") -> Path:
    """Refuse output paths that cannot hold a run: under a file, on a kernel file system (/proc, /sys,
    /dev), an existing non-directory, or under a folder this user cannot write. Touches nothing."""
    text = str(path)
    if not text.strip() or "\0" in text:
        raise GrowkitError(f"{flag} must be a folder path, got {text!r}")
    p = Path(os.path.abspath(text))
    too_long = [c for c in p.parts if len(os.fsencode(c)) > 255]
    if too_long or len(os.fsencode(str(p))) >= 4096:
        what = f"a name of {len(os.fsencode(too_long[0]))} bytes (at most 255)" if too_long else \
            f"{len(os.fsencode(str(p)))} bytes (at most 4095)"
        raise GrowkitError(f"{flag} path is too long: {what}")
    real = Path(os.path.realpath(p))
    for root in _KERNEL_FS:
        if real == Path(root) or Path(root) in real.parents:
            raise GrowkitError(f"{flag} {text} is under {root}, a kernel file system; choose a normal folder")
    if p.exists() and not p.is_dir():
        raise GrowkitError(f"{flag} {text} exists and is not a directory")
    if p.is_symlink() and not p.exists():
        raise GrowkitError(f"{flag} {text} is a symbolic link to a missing target")
    anc = p if p.exists() else p.parent
    while not anc.exists() and not anc.is_symlink():
        anc = anc.parent
    if not anc.is_dir():
        raise GrowkitError(f"{flag} {text} is under {anc}, which is a file, not a folder")
    writable = anc if anc != p else p.parent
    if not os.access(writable, os.W_OK | os.X_OK):
        raise GrowkitError(f"{flag} {text}: cannot write in {writable} (permission denied)")
    if anc == p and not os.access(p, os.W_OK | os.X_OK):
        raise GrowkitError(f"{flag} {text}: cannot write in it (permission denied)")
    return Path(text)


# ----------------------------------------------------------------------------- staging

def _exchange(a: Path, b: Path) -> bool:
    """Swap two directories atomically (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(a))


def remove_run(path: Path) -> None:
    """Delete a growkit run directory, its marker last: an interrupted delete still carries the marker,
    so a later clean-up can tell it is growkit's."""
    for child in path.iterdir():
        if child.name == MARKER:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    (path / MARKER).unlink(missing_ok=True)
    path.rmdir()
    fsync_dir(path.parent)


def _siblings(final: Path, kind: str) -> list[Path]:
    parent = final.parent if final.parent.exists() else None
    if parent is None:
        return []
    prefix = f".{final.name}.growkit-{kind}-"
    return [c for c in parent.iterdir() if c.name.startswith(prefix) and c.is_dir() and not c.is_symlink()]


def clean_leftovers(final: str | Path) -> list[str]:
    """Remove unfinished replacements of ``final`` (staging directories of killed runs) that carry a
    valid marker and whose lock nobody holds. Returns what was removed."""
    removed = []
    for d in _siblings(Path(final), "staging"):
        if d.name.startswith(f".{Path(final).name}.growkit-staging-old"):
            continue  # an old run moved aside by an interrupted replacement: recover() puts it back
        if read_marker(d) is None:
            if all(c.name == tmp_path(MARKER).name for c in d.iterdir()):  # killed while writing its marker
                shutil.rmtree(d)
                removed.append(d.name)
            continue
        try:
            with RunLock(d):
                remove_run(d)
        except GrowkitError:  # a live run is still building there
            continue
        removed.append(d.name)
    return removed


class Stage:
    """A run directory being made: ``path`` is where to write now; :meth:`commit` moves it to ``final``.

    :meth:`create` locks ``final`` before anything else is written (making it, empty, when it does not
    exist), so two runs started on the same ``--out`` cannot both get there: the second is refused with
    the first one's pid. The lock is held until the run is in place; :meth:`commit` checks again, under
    it, that ``final`` holds nothing but a run it may replace (``--overwrite``).
    Call :meth:`commit` after the first checkpoint is on disk, :meth:`abort` on any error before that
    (it deletes only the staging directory and what :meth:`create` made, never a run in ``final``),
    :meth:`release` when the run ends.
    """

    def __init__(self, final: Path, command: str, overwrite: bool):
        self.final, self.command, self.overwrite = final, command, overwrite
        self.marker = new_marker(command)
        self.path = final.parent / f".{final.name}.growkit-staging-{self.marker['run_id']}"
        self.committed = False
        self.lock: RunLock | None = None
        self.old_lock: RunLock | None = None
        self._made_parents: Path | None = None
        self._made_final = False

    @property
    def run_id(self) -> str:
        return self.marker["run_id"]

    def check_final(self) -> None:
        """``final`` may still receive this run: empty (a lock file aside) or, with ``--overwrite``, a growkit
        run. Called under the lock on ``final``: something may have been written there since :func:`prepare`."""
        f = self.final
        if f.is_symlink() or not f.is_dir():
            raise GrowkitError(f"--out {f} changed while the run was starting (it is no longer a folder)")
        if not any(c.name != LOCK for c in f.iterdir()):
            return
        if read_marker(f) is None:
            raise GrowkitError(f"--out {f} is not empty and is not a growkit run; choose another folder")
        if not self.overwrite:
            raise GrowkitError(f"--out {f} holds a growkit run (made while this one was starting); pass "
                               "--overwrite to replace it")

    def create(self) -> Path:
        """The first write (after validation): lock ``final``, then make the staging directory with its
        marker and lock. Undoes what it made when it fails."""
        anc = self.final.parent
        while not anc.exists():
            self._made_parents, anc = anc, anc.parent
        try:
            self.final.parent.mkdir(parents=True, exist_ok=True)
            try:
                self.final.mkdir()
                self._made_final = True
            except FileExistsError:
                pass
            # the holder is recorded in a lock file this run made; an old run's lock file stays byte-identical
            # (a kill cannot undo a record), and the staging lock below names this run to others meanwhile
            self.old_lock = RunLock(self.final).acquire()
            if self.old_lock.created:
                self.old_lock.record(f"{self.command} --out {self.final}")
            self.check_final()
            clean_leftovers(self.final)
            self.path.mkdir()
            atomic_write(self.path / MARKER, json.dumps(self.marker, indent=2) + "\n")
            self.lock = RunLock(self.path).acquire(f"{self.command} --out {self.final}")
        except BaseException:
            self.abort()
            raise
        return self.path

    def commit(self) -> Path:
        """Move the staged run into place, under the lock on ``final``: an atomic exchange with what is there
        (an empty folder, or the old run with ``--overwrite``), which is then deleted."""
        if self.committed:
            return self.final
        self.check_final()
        try:
            if not _exchange(self.path, self.final):
                if any(c.name != LOCK for c in self.final.iterdir()):
                    trash = self.final.parent / f".{self.final.name}.growkit-staging-old{self.run_id}"
                    os.rename(self.final, trash)  # a kill between these renames: growkit.runs.recover puts it back
                    os.rename(self.path, self.final)
                    self.path = trash
                else:  # only our lock file: no run to keep
                    (self.final / LOCK).unlink(missing_ok=True)
                    self.final.rmdir()
                    os.rename(self.path, self.final)
                    self.path = self.final
        except OSError as e:
            raise GrowkitError(f"cannot move the new run into {self.final}: {e.strerror}; it is in "
                               f"{self.path}") from None
        old, self.path = self.path, self.final
        if old != self.final:
            remove_run(old)
        fsync_dir(self.final.parent)
        self.committed = True
        if self.old_lock is not None:
            self.old_lock.release()
            self.old_lock = None
        return self.final

    def abort(self) -> None:
        """Undo an uncommitted run: delete the staging directory, and the lock file, ``final`` and parent
        folders that :meth:`create` made; a run that was in ``final`` stays byte-identical."""
        if not self.committed:
            if self.path.is_dir() and not self.path.is_symlink():
                if read_marker(self.path) is not None:
                    remove_run(self.path)
                elif all(c.name == tmp_path(MARKER).name for c in self.path.iterdir()):
                    shutil.rmtree(self.path)
            if self.old_lock is not None:
                self.old_lock.undo()
                self.old_lock = None
                if self._made_final:
                    try:
                        self.final.rmdir()
                    except OSError:
                        pass
            p = self._made_parents
            if p is not None:
                for d in [self.final.parent, *self.final.parent.parents]:
                    try:
                        d.rmdir()  # only empty folders go; stops at the first one that holds something
                    except OSError:
                        break
                    if d == p:
                        break
        self.release()

    def release(self) -> None:
        for lk in (self.lock, self.old_lock):
            if lk is not None:
                lk.release()
        self.lock = self.old_lock = None


def prepare(out: str | Path, command: str, overwrite: bool = False) -> Stage:
    """Check that ``out`` may receive a new run and plan it. Writes nothing (call ``Stage.create()``)."""
    check_output_path(out)
    p = Path(out)
    if p.is_symlink() and overwrite:
        raise GrowkitError(f"--out {out} is a symbolic link; --overwrite replaces only a real run directory "
                           f"(pass the link's target, {os.path.realpath(p)}, if you mean it)")
    if p.is_dir():
        real = os.path.realpath(p)
        if real == os.path.realpath(os.getcwd()):
            raise GrowkitError(f"--out {out} is the current directory; a run is moved into place by renaming "
                               "its folder, so name a folder inside it (e.g. --out run)")
        if os.path.ismount(real):
            raise GrowkitError(f"--out {out} is a mount point; a run is moved into place by renaming its folder, "
                               "so name a folder inside it")
        if (p / LOCK).exists():
            RunLock(p).check_free()  # refuse now, not after validation, when a process holds it
    if p.is_dir() and any(c.name != LOCK for c in p.iterdir()):
        marker = read_marker(p)
        if not overwrite:
            if marker is not None:
                if (p / LOCK).exists():  # a run that moved into place since the check above: say it is in use
                    RunLock(p).check_free()
                raise GrowkitError(f"--out {out} holds a growkit run; pass --overwrite to replace it, "
                                   f"`growkit resume {out}` to continue it, or `growkit recover {out}` "
                                   "if it was interrupted early")
            raise GrowkitError(f"--out {out} is not empty and is not a growkit run; choose another folder")
        if marker is None:
            why = " (a config.json alone does not make one)" if (p / "config.json").exists() else ""
            raise GrowkitError(f"--out {out} is not a growkit run{why}; --overwrite replaces only folders "
                               f"growkit made (they carry {MARKER}); refusing to delete it")
    if p.is_symlink():  # a link to an empty folder: the run goes into the folder; the link stays
        p = Path(os.path.realpath(p))
    return Stage(p, command, overwrite)
