"""The ``growkit`` command.

    growkit train     --model Basic3ResNet --depths 2-2-2 --dataset digits --epochs 20 --out runs/r1
    growkit autogrow  --model Basic3ResNet --dataset digits --policy periodic --K 3 --init gau --out runs/g1
    growkit learn-to-grow --dataset digits --tasks 5 --deeper --out runs/l1
    growkit resume    runs/g1
    growkit figures   --profile cpu
    growkit models | datasets

Bad input (unknown names, impossible values, a non-empty --out, missing data
files) prints one line and exits with code 2; a NaN/inf loss stops the run
with exit code 1 and the last good checkpoint intact; Ctrl-C exits 130.
"""
from __future__ import annotations

import argparse
import sys

from .errors import GrowkitError, NonFiniteLoss


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse would print the whole usage)
        raise GrowkitError(f"{self.prog}: {message}")


def _int_list(text: str):
    """'3' -> 3, '16-32-64' -> [16, 32, 64]."""
    try:
        parts = [int(t) for t in text.split("-")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or N-N-..., got {text!r}") from None
    return parts[0] if len(parts) == 1 else parts


def _depths(text: str):
    v = _int_list(text)
    return [v] if isinstance(v, int) else v


def _floats(text: str):
    try:
        return [float(t) for t in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _common(p: argparse.ArgumentParser, epochs_default):
    p.add_argument("--model", default="Basic3ResNet", help="registered model name (see `growkit models`)")
    p.add_argument("--widths", type=_int_list, help="filters per layer: N (uniform) or N-N-...")
    p.add_argument("--dataset", default="digits", help="dataset name (see `growkit datasets`)")
    p.add_argument("--data-root", help="folder holding the dataset files (default: $GROWKIT_DATA or ./data)")
    p.add_argument("--download", action="store_true", help="download the dataset if missing (needs internet)")
    p.add_argument("--fraction", type=float, default=1.0, help="share of the training split to use")
    p.add_argument("--val-fraction", type=float, help="share of the official training set held out for validation")
    p.add_argument("--epochs", type=int, default=epochs_default, help="training epochs")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, help="base learning rate (default 0.1, or 0.01 for plain nets)")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--nesterov", action="store_true")
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--milestones", type=_floats, default=[0.5, 0.75], help="staircase decay points, as fractions")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    p.add_argument("--no-test", action="store_true", help="do not evaluate the test split each epoch")
    p.add_argument("--snapshot-every", type=int, default=0, help="parameter snapshots for trajectory plots")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--overwrite", action="store_true", help="replace the growkit run already in --out")


def _train_config(a, **extra):
    from .config import TrainConfig
    return TrainConfig(model=a.model, widths=a.widths, dataset=a.dataset, data_root=a.data_root,
                       download=a.download, fraction=a.fraction, val_fraction=a.val_fraction, epochs=a.epochs,
                       batch_size=a.batch_size, lr=a.lr, momentum=a.momentum, nesterov=a.nesterov,
                       weight_decay=a.weight_decay, milestones=a.milestones, seed=a.seed, device=a.device,
                       precision=a.precision, eval_test=not a.no_test, snapshot_every=a.snapshot_every,
                       progress=not a.no_progress, **extra)


def _report(result: dict, out: str) -> None:
    test = result.get("test_acc")
    test = f", test {test:.2f}%" if test is not None else ""
    print(f"{result.get('found', result['arch'])}: val {result['val_acc']:.2f}%{test}, "
          f"{result['params']:,} params, {result['wall_s']:.1f} s -> {out}/result.json")


def cmd_train(a) -> int:
    from . import runs
    cfg = _train_config(a, depths=a.depths, schedule=a.schedule)
    _report(runs.train(cfg, a.out, overwrite=a.overwrite), a.out)
    return 0


def cmd_autogrow(a) -> int:
    from . import runs
    from .config import AutoGrowConfig
    ag = AutoGrowConfig(policy=a.policy, K=a.K, J=a.J, tau=a.tau, init=a.init, init_std=a.init_std,
                        grow_schedule=a.grow_schedule, finetune_epochs=a.finetune, max_depth=a.max_depth,
                        max_grow_epochs=a.max_grow_epochs, scale_J_by_fraction=a.scale_J,
                        scratch=a.scratch, scratch_epochs=a.scratch_epochs)
    cfg = _train_config(a, depths=a.seed_depths)
    r = runs.autogrow(cfg, ag, a.out, overwrite=a.overwrite)
    _report(r, a.out)
    if "delta" in r:
        print(f"from scratch: test {r['scratch_test_acc']:.2f}%, delta {r['delta']:+.2f} points")
    return 0


def cmd_resume(a) -> int:
    from . import l2g_runs, runs
    from .records import read_json
    from pathlib import Path
    cfg_file = Path(a.dir) / "config.json"
    if cfg_file.exists() and read_json(cfg_file).get("command") == l2g_runs.COMMAND:
        l2g_runs.print_result(l2g_runs.resume(a.dir), a.dir)
        return 0
    _report(runs.resume(a.dir), a.dir)
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
    from .figures import run_figures
    return run_figures(profile=a.profile, only=a.only, jobs=a.jobs, out_dir=a.figures_dir, timeout=a.timeout,
                       runs_dir=a.runs_dir)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="growkit", description="Grow neural networks while they train.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train a fixed architecture")
    _common(t, 20)
    t.add_argument("--depths", type=_depths, help="blocks per stage of a depth net, e.g. 2-2-2")
    t.add_argument("--schedule", default="staircase", help="constant, staircase or cosine")
    t.set_defaults(func=cmd_train)

    g = sub.add_parser("autogrow", help="grow the depth of a net with AutoGrow")
    _common(g, 20)
    g.add_argument("--policy", default="periodic", help="periodic (p-AutoGrow) or convergent (c-AutoGrow)")
    g.add_argument("--K", type=int, default=3, help="growth interval in epochs")
    g.add_argument("--J", type=int, help="stopping window of periodic growth, J >> K (default 10 K)")
    g.add_argument("--tau", type=float, default=0.05, help="minimum accuracy gain, in percent")
    g.add_argument("--init", default="gau", help="zero, adam, uni, gau or identity")
    g.add_argument("--init-std", type=float, default=1.0)
    g.add_argument("--grow-schedule", default="constant", help="constant, or staircase restarting every K epochs")
    g.add_argument("--seed-depths", type=_depths, help="seed net depths (default 1-1-1)")
    g.add_argument("--finetune", type=int, default=20, help="fine-tuning epochs N")
    g.add_argument("--max-depth", type=int, help="cap of blocks per sub-network")
    g.add_argument("--max-grow-epochs", type=int, default=2000)
    g.add_argument("--scale-J", action="store_true", help="divide J by --fraction as well as K")
    g.add_argument("--scratch", action="store_true", help="also train the found net from scratch (Delta)")
    g.add_argument("--scratch-epochs", type=int, help="epochs of the scratch baseline (default: --finetune)")
    g.set_defaults(func=cmd_autogrow)

    from . import l2g_runs
    lg = sub.add_parser("learn-to-grow", help="continual learning: per layer and task, reuse, adapt or new")
    l2g_runs.add_arguments(lg)
    lg.set_defaults(func=l2g_runs.cmd)

    r = sub.add_parser("resume", help="continue an interrupted run")
    r.add_argument("dir")
    r.set_defaults(func=cmd_resume)

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
        out = getattr(args, "out", None) or getattr(args, "dir", None) or getattr(args, "run_out", None)
        return args.func(args)
    except GrowkitError as e:
        print(f"growkit: error: {e}", file=sys.stderr)
        return 2
    except NonFiniteLoss as e:
        print(f"growkit: stopped: {e}; the last good checkpoint is in {out} (the lr may be too high)",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"growkit: interrupted; continue with `growkit resume {out}`" if out else "growkit: interrupted",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
