"""The ``growkit`` command.

    growkit train     --model Basic3ResNet --depths 2-2-2 --dataset digits --epochs 20 --out runs/r1
    growkit autogrow  --model Basic3ResNet --dataset digits --policy periodic --K 3 --init gau --out runs/g1
    growkit network-morphism --depths 1-1-1 --target-depths 2-2-2 --shallow-epochs 10 --out runs/m1
    growkit resume    runs/g1
    growkit recover   runs/g1            # after a crash: repairs a half-made run, or removes an empty one
    growkit figures   --profile cpu
    growkit models | datasets

One subcommand per registered method (:mod:`growkit.runs.registry`, filled by :mod:`growkit.methods`);
its flags are generated from the config dataclasses' fields (:mod:`growkit.engine.flags`).

Bad input (unknown names, impossible values, a non-empty --out, missing data
files, a damaged run directory, a run another process holds) prints one line and exits with code 2;
a NaN/inf loss stops the run with exit code 1 and the last good checkpoint intact; Ctrl-C exits 130.
"""
from __future__ import annotations

import argparse
import sys

from . import methods  # noqa: F401  (every method registers itself)
from .errors import GrowkitError, NonFiniteLoss
from .runs import registry


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse would print the whole usage)
        raise GrowkitError(f"{self.prog}: {message}")


def _add_method(sub, method) -> None:
    """One subcommand per registered method: the train flags (as the method shows them), then its own."""
    from .engine import flags
    from .engine.config import TrainConfig
    p = sub.add_parser(method.name, help=method.help)
    train_fields = [] if method.own_loop is not None else flags.add_flags(p, TrainConfig, "train",
                                                                          method.train_flags)
    own = flags.add_flags(p, method.config, "method") if method.config is not None else []
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--overwrite", action="store_true", help="replace the growkit run already in --out")
    p.set_defaults(func=cmd_method, method=method, train_fields=train_fields, own_fields=own)


def cmd_method(a) -> int:
    from .dist import group as distributed
    from .engine import flags
    from .engine.config import TrainConfig
    from .runs import lifecycle
    m = a.method
    options = m.config(**flags.values(a, "method", a.own_fields)) if m.config is not None else None
    if m.own_loop is not None:
        r = lifecycle.run(m.name, None, options, a.out, overwrite=a.overwrite)
        if distributed.is_main():  # under torchrun: rank 0 reports
            m.own_loop.report(r, a.out)
        return 0
    cfg = TrainConfig(**flags.values(a, "train", a.train_fields))
    r = lifecycle.run(m.name, cfg, options, a.out, overwrite=a.overwrite)
    if not distributed.is_main():  # under torchrun: rank 0 reports
        return 0
    _report(r, a.out)
    if "delta" in r:
        delta = "n/a (no test split)" if r["delta"] is None else f"{r['delta']:+.2f} points"
        print(f"from scratch: test {_pct(r['scratch_test_acc'])}, delta {delta}")
    return 0


def _pct(v) -> str:
    return "-" if v is None else f"{v:.2f}%"


def _report(result: dict, out: str) -> None:
    test = result.get("test_acc")
    test = f", test {test:.2f}%" if test is not None else ""
    print(f"{result.get('found', result['arch'])}: val {_pct(result.get('val_acc'))}{test}, "
          f"{result['params']:,} params, {result['wall_s']:.1f} s -> {out}/result.json")
    if result.get("note"):  # something the run's numbers alone would not say
        print(f"note: {result['note']}")


def cmd_resume(a) -> int:
    from pathlib import Path

    from .dist import group as distributed
    from .engine.records import read_json
    from .runs import lifecycle
    r = lifecycle.resume(a.dir)
    if not distributed.is_main():  # under torchrun: rank 0 reports (only it reads the run directory)
        return 0
    m = registry.get(registry.current(read_json(Path(a.dir) / "config.json")).get("command"))
    if m.own_loop is not None:
        m.own_loop.report(r, a.dir)
    else:
        _report(r, a.dir)
    return 0


def cmd_recover(a) -> int:
    from .runs.recover import recover
    print(recover(a.dir))
    return 0


def cmd_models(a) -> int:
    from .models import list_models
    print("\n".join(list_models()))
    return 0


def cmd_datasets(a) -> int:
    from .data import DATASETS
    for name, info in DATASETS.items():
        print(f"{name:13s} {info.num_classes:5d} classes  {info.channels}x{info.image_size}x{info.image_size}")
    return 0


def cmd_figures(a) -> int:
    from .papers.figures import run_figures
    return run_figures(profile=a.profile, only=a.only, jobs=a.jobs, out_dir=a.figures_dir, timeout=a.timeout,
                       runs_dir=a.runs_dir)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="growkit", description="Grow neural networks while they train.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    for name in registry.names():  # every method growkit.methods registered
        _add_method(sub, registry.get(name))

    r = sub.add_parser("resume", help="continue an interrupted run")
    r.add_argument("dir")
    r.set_defaults(func=cmd_resume)

    rc = sub.add_parser("recover", help="repair a run directory interrupted by a crash or kill, or remove it "
                                        "if it holds nothing yet")
    rc.add_argument("dir")
    rc.set_defaults(func=cmd_recover)

    f = sub.add_parser("figures", help="regenerate the papers' figures and tables by running the notebooks")
    f.add_argument("--profile", default="cpu", help="smoke, cpu or paper")
    f.add_argument("--only", help="run only notebooks whose name contains this (comma-separated)")
    f.add_argument("--jobs", type=int, default=1, help="notebooks run in parallel")
    f.add_argument("--figures-dir", default=None, help="where figures and tables go (default: ./figures)")
    f.add_argument("--timeout", type=int, default=None, help="seconds per notebook cell (default: none)")
    f.add_argument("--runs-dir", default=None, help="where runs and executed notebooks go (default: ./runs)")
    f.set_defaults(func=cmd_figures)

    sub.add_parser("models", help="list registered models").set_defaults(func=cmd_models)
    sub.add_parser("datasets", help="list datasets").set_defaults(func=cmd_datasets)
    return p


def main(argv=None) -> int:
    out = None
    try:
        args = build_parser().parse_args(argv)
        out = getattr(args, "out", None) or getattr(args, "dir", None)
        return args.func(args)
    except GrowkitError as e:
        print(f"growkit: error: {e}", file=sys.stderr)
        return 2
    except NonFiniteLoss as e:
        print(f"growkit: stopped: {e}; {_left(e, out, resume=False)} (the lr may be too high)", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        print(f"growkit: interrupted; {_left(e, out)}" if out else "growkit: interrupted", file=sys.stderr)
        return 130
    except OSError as e:  # the machine, not the input: a full disk, stdout to a full device or a closed pipe
        import errno
        if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EPIPE, errno.EROFS):
            raise
        _stdout_to_devnull()  # else the interpreter's last flush of stdout fails again, with a traceback
        where = f" ({e.filename})" if e.filename else (" (writing the output)" if e.errno != errno.ENOSPC
                                                       or not out else "")
        tail = f"; {_left(e, out)}" if out and e.errno != errno.EPIPE else ""
        print(f"growkit: error: {e.strerror}{where}{tail}", file=sys.stderr)
        return 1


def _stdout_to_devnull() -> None:
    import os
    try:
        sys.stdout.flush()
    except OSError:
        pass
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, sys.stdout.fileno())
        os.close(fd)
    except (OSError, ValueError):
        pass


def _left(e: BaseException, out, resume: bool = True) -> str:
    """What a stopped run left behind, truthfully: a new run stopped before its first checkpoint left
    nothing (an old run it was to replace is untouched)."""
    kept = getattr(e, "growkit_kept", None)
    if kept is None:  # stopped before training began: only what is on disk can say
        from pathlib import Path
        kept = (Path(out) / "checkpoint.pt").exists()
    if not kept:
        return f"no epoch finished, so nothing was kept (what was in {out} is untouched)"
    return f"the last good checkpoint is in {out}" + (f"; continue with `growkit resume {out}`" if resume else "")


if __name__ == "__main__":
    sys.exit(main())
