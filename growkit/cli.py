"""The ``growkit`` command.

    growkit train     --model Basic3ResNet --depths 2-2-2 --dataset digits --epochs 20 --out runs/r1
    growkit autogrow  --model Basic3ResNet --dataset digits --policy periodic --K 3 --init gau --out runs/g1
    growkit network-morphism --depths 1-1-1 --target-depths 2-2-2 --shallow-epochs 10 --out runs/m1
    growkit lm        --model GPT-2L-2H-64 --dataset shakespeare --context 64 --steps 2000 --out runs/lm1
    growkit resume    runs/g1
    growkit recover   runs/g1            # after a crash: repairs a half-made run, or removes an empty one
    growkit rerun     runs/g1 --out runs/g1b   # the saved config.json again, into a new directory
    growkit plot      runs/g1 runs/r1 --out curves.png   # accuracy, parameters, MACs and growth events
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
    if method.own_loop is None:
        p.add_argument("--tensorboard", metavar="LOGDIR", default=None,
                       help="also write TensorBoard scalars there (pip install 'growkit[tensorboard]')")
    p.set_defaults(func=cmd_method, method=method, train_fields=train_fields, own_fields=own)


def cmd_method(a) -> int:
    from .dist import group as distributed
    from .engine import flags
    from .engine.config import TrainConfig
    m = a.method
    options = m.config(**flags.values(a, "method", a.own_fields)) if m.config is not None else None
    if m.own_loop is not None:
        from .runs import lifecycle
        r = lifecycle.run(m.name, None, options, a.out, overwrite=a.overwrite)
        if distributed.is_main():  # under torchrun: rank 0 reports
            m.own_loop.report(r, a.out)
        return 0
    return _launch(m, TrainConfig(**flags.values(a, "train", a.train_fields)), options, a.out, a.overwrite,
                   a.tensorboard)


def _launch(m, cfg, options, out, overwrite: bool, tensorboard=None) -> int:
    """Run method ``m`` (train config ``cfg``, its ``options``) into ``out`` and report, on rank 0."""
    from .dist import group as distributed
    from .runs import lifecycle
    callbacks = []
    if tensorboard is not None and distributed.is_main():
        from .viz.tensorboard import TensorBoard, require
        require()  # tensorboard missing: a one-line error before anything is written
        callbacks.append(TensorBoard(tensorboard))
    r = lifecycle.run(m.name, cfg, options, out, overwrite=overwrite, callbacks=callbacks)
    if not distributed.is_main():  # under torchrun: rank 0 reports
        return 0
    _report(r, out)
    if "delta" in r:
        delta = "n/a (no test split)" if r["delta"] is None else f"{r['delta']:+.2f} points"
        print(f"from scratch: test {_pct(r['scratch_test_acc'])}, delta {delta}")
    return 0


def cmd_rerun(a) -> int:
    """The run a saved config.json describes, again, into a new directory (same method, options, seeds)."""
    import dataclasses
    from pathlib import Path

    from .engine.config import TrainConfig
    from .runs.records import read_run_config
    from .runs.rundir import check_output_path
    src, out = Path(a.dir), Path(a.out)
    if not (src / "config.json").is_file():
        raise GrowkitError(f"{a.dir} holds no config.json: not a growkit run directory")
    check_output_path(a.out)
    if out.resolve() == src.resolve():
        raise GrowkitError("--out is the run directory being re-run; name a new one")
    if (out.exists() or out.is_symlink()) and not a.overwrite:
        raise GrowkitError(f"--out {a.out} exists; pass --overwrite to replace the growkit run in it")
    rc = read_run_config(src)
    m = registry.get(rc["command"])
    options = m.options(rc)
    print(f"re-running {m.name} from {src / 'config.json'} -> {a.out}", file=sys.stderr)
    if m.own_loop is not None:
        if a.device is not None:
            options = dataclasses.replace(options, device=a.device)
        from .runs import lifecycle
        r = lifecycle.run(m.name, None, options, a.out, overwrite=a.overwrite)
        m.own_loop.report(r, a.out)
        return 0
    cfg = TrainConfig.from_dict(rc["train"])
    if a.device is not None:
        cfg = dataclasses.replace(cfg, device=a.device)
    if a.no_progress:
        cfg = dataclasses.replace(cfg, progress=False)
    return _launch(m, cfg, options, a.out, a.overwrite)


def cmd_plot(a) -> int:
    from .viz.compare import save
    print(f"wrote {save(a.dirs, a.out, a.title or '')}")
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
    from .data.text import TEXT_DATASETS, TOKEN_DATASETS
    for name, info in DATASETS.items():
        print(f"{name:13s} {info.num_classes:5d} classes  {info.channels}x{info.image_size}x{info.image_size}")
    for name, (_, what) in TEXT_DATASETS.items():
        print(f"{name:13s} tokens (growkit lm): {what}, embedded")
    for name, (sub, vocab, _) in TOKEN_DATASETS.items():
        print(f"{name:13s} tokens (growkit lm): <data root>/{sub}/{{train,val}}.bin, vocabulary {vocab}")
    print(f"{'text:FILE':13s} tokens (growkit lm): characters of a UTF-8 text file, its last tenth for validation")
    print(f"{'tokens:DIR':13s} tokens (growkit lm): DIR/train.bin, DIR/val.bin (uint16), vocabulary from "
          "DIR/meta.json, meta.pkl or --vocab-size")
    return 0


def cmd_figures(a) -> int:
    from .papers.figures import run_figures
    return run_figures(profile=a.profile, only=a.only, jobs=a.jobs, out_dir=a.figures_dir, timeout=a.timeout,
                       runs_dir=a.runs_dir, repo=a.repo)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="growkit", description="Grow neural networks while they train.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    registry.load_plugins()  # methods outside growkit ($GROWKIT_METHODS)
    for name in registry.names():  # every method growkit.methods registered
        _add_method(sub, registry.get(name))

    r = sub.add_parser("resume", help="continue an interrupted run")
    r.add_argument("dir")
    r.set_defaults(func=cmd_resume)

    rc = sub.add_parser("recover", help="repair a run directory interrupted by a crash or kill, or remove it "
                                        "if it holds nothing yet")
    rc.add_argument("dir")
    rc.set_defaults(func=cmd_recover)

    rr = sub.add_parser("rerun", help="run a saved run's config.json again into a new directory")
    rr.add_argument("dir", help="the run directory whose config.json is re-run")
    rr.add_argument("--out", required=True, help="the new run directory")
    rr.add_argument("--overwrite", action="store_true", help="replace the growkit run already in --out")
    rr.add_argument("--device", default=None, help="run on this device instead of the saved one (cpu, cuda, auto)")
    rr.add_argument("--no-progress", action="store_true", help="no progress bar")
    rr.set_defaults(func=cmd_rerun)

    pl = sub.add_parser("plot", help="draw accuracy, parameters and multiply-adds (MACs) of runs, with their growth events")
    pl.add_argument("dirs", nargs="+", metavar="RUN_DIR", help="run directories (with metrics.jsonl)")
    pl.add_argument("--out", default="growkit_plot.png", help="image file (.png, .pdf or .svg)")
    pl.add_argument("--title", default=None, help="a title above the panels")
    pl.set_defaults(func=cmd_plot)

    f = sub.add_parser("figures", help="regenerate the papers' figures and tables by running the notebooks")
    f.add_argument("--profile", default="cpu", help="smoke, cpu or paper")
    f.add_argument("--only", help="run only notebooks whose name contains this (comma-separated)")
    f.add_argument("--jobs", type=int, default=None,
                   help="notebooks run in parallel, one thread each (default: one per core, at most 4)")
    f.add_argument("--figures-dir", default=None, help="where figures and tables go (default: figures/ for the "
                                                       "cpu profile, the committed set; else runs/PROFILE/figures/)")
    f.add_argument("--repo", default=None, help="the growkit checkout to work on (default: the one holding the "
                                                "working directory)")
    f.add_argument("--timeout", type=int, default=None, help="seconds per notebook cell (default: none)")
    f.add_argument("--runs-dir", default=None,
                   help="where runs and executed notebooks go (default: runs/ of the checkout)")
    f.set_defaults(func=cmd_figures)

    sub.add_parser("models", help="list registered models").set_defaults(func=cmd_models)
    sub.add_parser("datasets", help="list datasets").set_defaults(func=cmd_datasets)
    return show_defaults(p)


def _shown(action) -> str | None:
    """An option's default as the command line spells it (2-2-2, 0.5,0.75), or None for none to show."""
    from .engine import flags
    d = action.default
    if d is None or d is argparse.SUPPRESS or isinstance(d, bool) or action.required or not action.option_strings:
        return None
    if isinstance(d, (list, tuple)):
        sep = "," if action.type is flags.floats else "-"
        return sep.join(str(v) for v in d)
    if isinstance(d, dict):
        import json
        return json.dumps(d)
    return str(d)


def show_defaults(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Every option of ``parser`` and its subcommands with a default states it in ``--help`` (help text that
    already speaks of its default, e.g. one computed from the dataset, is left as it is)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in set(action.choices.values()):
                show_defaults(sub)
            continue
        shown = _shown(action)
        if shown is None or "default" in (action.help or ""):
            continue
        text = f"(default: {shown})".replace("%", "%%")
        action.help = f"{action.help} {text}" if action.help else text
    return parser


def main(argv=None) -> int:
    out = None
    try:
        args = build_parser().parse_args(argv)
        out = getattr(args, "out", None) or getattr(args, "dir", None)
        return args.func(args)
    except GrowkitError as e:  # (missing data: the command line's advice, --download)
        print(f"growkit: error: {getattr(e, 'cli', None) or e}", file=sys.stderr)
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
