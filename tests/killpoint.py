"""Kill a growkit command at its N-th write point, as SIGKILL would, to test recovery from every one.

    python killpoint.py N growkit-args...    exit 137 when killed at point N, else the command's exit code
    python killpoint.py finish OUT growkit-args...
        after a kill: `growkit recover OUT`, then `growkit resume OUT` if OUT exists, else the command again

Write points: before every ``os.replace`` / ``os.rename`` / directory exchange (a file or folder appears)
and before every ``fsync`` of a regular file (its bytes are in the file). At an fsync of a ``.jsonl``
file the last line is first cut in half: what a kill during the append leaves.
"""
import os
import sys

_count = 0
_target = None
_rc_path = None   # set by forked_cli: where the exit code is written before the process exits


def _record_rc(rc: int) -> None:
    """The forkserver relays a child's exit status over a socket and, rarely, loses it (the parent then
    reads 255); the child therefore also writes its exit code to a file the harness prefers."""
    if _rc_path is not None:
        with open(_rc_path, "w") as f:
            f.write(str(rc))


def _point(kind: str, what) -> None:
    global _count
    _count += 1
    if _count == _target:
        sys.stderr.write(f"killpoint {_target}: before {kind} {what}\n")
        sys.stderr.flush()
        _record_rc(137)
        os._exit(137)


def _install() -> None:
    real_replace, real_rename, real_fsync = os.replace, os.rename, os.fsync

    def replace(a, b, *args, **kw):
        _point("replace", b)
        return real_replace(a, b, *args, **kw)

    def rename(a, b, *args, **kw):
        _point("rename", b)
        return real_rename(a, b, *args, **kw)

    def fsync(fd):
        try:
            path = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            path = ""
        if os.path.isfile(path):
            if path.endswith(".jsonl") and _count + 1 == _target:
                with open(path, "rb") as f:
                    data = f.read()
                start = data.rstrip(b"\n").rfind(b"\n") + 1
                os.truncate(path, start + (len(data) - start) // 2)
            _point("fsync", path)
        return real_fsync(fd)

    os.replace, os.rename, os.fsync = replace, rename, fsync
    from growkit.runs import rundir
    real_exchange = rundir._exchange

    def exchange(a, b):
        _point("exchange", b)
        return real_exchange(a, b)

    rundir._exchange = exchange


def main(argv) -> int:
    global _target
    from growkit.cli import main as cli
    if argv[0] == "finish":
        out, args = argv[1], argv[2:]
        rc = cli(["recover", out])
        if rc != 0:
            return 100 + rc
        from growkit.runs import rundir
        return cli(["resume", out]) if rundir.is_run(out) else cli(args)
    _target = int(argv[0])
    _install()
    return cli(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


def _exit_code(code) -> int:
    """What ``sys.exit(code)`` makes the process exit with."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    sys.stderr.write(f"{code}\n")
    return 1


def forked_cli(args, cwd, out_path, err_path, harness=False, rc_path=None):
    """``growkit ARGS`` (or, with ``harness``, this module's command line) in a process forked from a
    server that has torch and growkit imported: the same ``growkit.cli.main`` a fresh interpreter runs,
    with fd 1 and 2 going to files, without paying ~2 s of imports per call. An uncaught exception
    prints its traceback to the captured stderr, as Python would. The exit code also goes to ``rc_path``."""
    global _rc_path
    _rc_path = rc_path
    for fd, path in ((1, out_path), (2, err_path)):
        f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(f, fd)
        os.close(f)
    os.chdir(cwd)
    args = [str(a) for a in args]
    from growkit.cli import main as cli
    try:
        rc = _exit_code(main(args) if harness else cli(args))
    except SystemExit as e:
        rc = _exit_code(e.code)
    except BaseException:
        import traceback
        traceback.print_exc()
        rc = 1
    sys.stdout.flush()
    sys.stderr.flush()
    _record_rc(rc)
    sys.exit(rc)
