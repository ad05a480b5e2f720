"""Learn-to-Grow run directories: start, resume, and named cached runs for notebooks.

A run directory holds ``config.json`` (written before the first task, with the
environment stamp), ``tasks/task_<t>.pt`` (after every task: the super network's
structure and weights, the accuracy-matrix rows and per-task records so far) and,
last, ``result.json`` (``accuracy_matrix``, ``avg_acc``, ``bwt``, ``forgetting``,
``params_per_task``, ``choices``, ``alpha``, ...). A killed run resumes from its
last finished task; the task that was running starts again from its own seed, so
the resumed run equals an uninterrupted one.
"""
from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

from . import continual
from .errors import GrowkitError
from .growers.learn_to_grow import L2GConfig, run_stream
from .records import environment, read_json, write_json

COMMAND = "learn-to-grow"


def config_from_dict(d: dict) -> L2GConfig:
    known = {f.name for f in dataclasses.fields(L2GConfig)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise GrowkitError(f"unknown learn-to-grow settings: {', '.join(unknown)}")
    d = dict(d)
    for k in ("depths", "widths", "hidden"):  # JSON lists back to tuples
        if isinstance(d.get(k), list):
            d[k] = tuple(d[k])
    return L2GConfig(**d)


def make_stream(cfg: L2GConfig, device: str = "auto", data_root=None, download: bool = False):
    from .train import resolve_device
    dev = resolve_device(device)
    return continual.task_stream(cfg.dataset, cfg.tasks, order=cfg.order, seed=cfg.seed, root=data_root,
                                 device=dev, augment=cfg.augment, download=download,
                                 split_seed=cfg.split_seed), dev


def start(cfg: L2GConfig, out, *, device: str = "auto", data_root=None, download: bool = False,
          overwrite: bool = False) -> dict:
    """Validate everything (config, device, data files, --out) before writing; then run every task."""
    from .runs import check_out
    from .growers.learn_to_grow import build_net
    cfg.check()
    stream, dev = make_stream(cfg, device, data_root, download)
    build_net(cfg, stream)  # the backbone's settings are checked here, before anything is written
    check_out(out, overwrite)
    p = Path(out)
    if p.is_dir() and any(p.iterdir()):
        shutil.rmtree(p)
    p.mkdir(parents=True, exist_ok=True)
    rc = {"command": COMMAND, "learn_to_grow": dataclasses.asdict(cfg),
          "data": {"device": device, "data_root": None if data_root is None else str(data_root)},
          "environment": environment(dev)}
    write_json(p / "config.json", rc)
    return _run(cfg, stream, p)


def resume(out) -> dict:
    p = Path(out)
    if not (p / "config.json").exists():
        raise GrowkitError(f"{out} holds no learn-to-grow run (no config.json)")
    rc = read_json(p / "config.json")
    if rc.get("command") != COMMAND:
        raise GrowkitError(f"{out} is not a learn-to-grow run")
    cfg = config_from_dict(rc["learn_to_grow"])
    stream, _ = make_stream(cfg, rc["data"]["device"], rc["data"]["data_root"])
    return _run(cfg, stream, p)


def _run(cfg: L2GConfig, stream, p: Path) -> dict:
    t0 = time.perf_counter()
    res = run_stream(cfg, stream, p)
    res["wall_s"] = time.perf_counter() - t0  # of this call (a resumed run counts only what it redid)
    res["test_acc"] = res.get("avg_acc")  # the one-number summary other growkit results carry
    res["environment"] = read_json(p / "config.json")["environment"]
    write_json(p / "result.json", res)
    return res


def cached(runs_dir, name: str, *, device: str = "auto", data_root=None, **settings) -> dict:
    """A named run for notebooks: reused when finished with the same settings, resumed when
    interrupted with them, replaced when they changed."""
    cfg = L2GConfig(**settings)
    cfg.check()
    out = Path(runs_dir) / name
    if (out / "config.json").exists():
        rc = read_json(out / "config.json")
        if rc.get("command") == COMMAND and rc["learn_to_grow"] == as_json(cfg):
            if (out / "result.json").exists():
                return read_json(out / "result.json")
            return resume(out)
    return start(cfg, out, device=device, data_root=data_root, overwrite=True)


def as_json(cfg: L2GConfig) -> dict:
    """The config as JSON would return it (tuples as lists), for comparison with a stored config."""
    import json
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


# ----------------------------------------------------------------------------- command line

def _ints(text: str) -> tuple:
    import argparse
    if text in ("", "none"):
        return ()
    try:
        return tuple(int(t) for t in str(text).split("-"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or N-N-..., got {text!r}") from None


def _json_dict(text: str) -> dict:
    import argparse
    import json
    try:
        v = json.loads(text)
    except ValueError:
        v = None
    if not isinstance(v, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return v


def add_arguments(p) -> None:
    """One flag per :class:`L2GConfig` field (help from the field's metadata), plus where to run."""
    for f in dataclasses.fields(L2GConfig):
        flag = "--" + f.name.replace("_", "-")
        help_ = f.metadata.get("help", "")
        if f.type in (bool, "bool"):
            if f.default:
                p.add_argument("--no-" + f.name.replace("_", "-"), dest=f.name, action="store_false", help=help_)
            else:
                p.add_argument(flag, dest=f.name, action="store_true", help=help_)
            continue
        kind = {"int": int, "float": float, "str": str, "dict": _json_dict}.get(str(f.type), _ints)
        if f.default is dataclasses.MISSING:
            p.add_argument(flag, dest=f.name, type=kind, default=f.default_factory(), help=help_)
            continue
        shown = "-".join(map(str, f.default)) if isinstance(f.default, tuple) else f.default
        help_ = help_ if f.default is None else f"{help_} (default: {shown})"
        p.add_argument(flag, dest=f.name, type=kind, default=f.default, help=help_)
    p.add_argument("--device", dest="run_device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--data-root", dest="run_data_root", help="folder holding the dataset files")
    p.add_argument("--download", dest="run_download", action="store_true", help="download the dataset if missing")
    p.add_argument("--out", dest="run_out", required=True, help="run directory")
    p.add_argument("--overwrite", dest="run_overwrite", action="store_true", help="replace the run already in --out")


def config_from_args(a) -> L2GConfig:
    return L2GConfig(**{f.name: getattr(a, f.name) for f in dataclasses.fields(L2GConfig)})


def cmd(a) -> int:
    cfg = config_from_args(a)
    res = start(cfg, a.run_out, device=a.run_device, data_root=a.run_data_root, download=a.run_download,
                overwrite=a.run_overwrite)
    print_result(res, a.run_out)
    return 0


def print_result(res: dict, out) -> None:
    print(f"learn-to-grow ({res['method']}{', deeper' if res['deeper'] else ''}): {res['tasks_done']} tasks, "
          f"average accuracy {res['avg_acc']:.2f}%, BWT {res['bwt']:+.2f}, forgetting {res['forgetting']:.2f}, "
          f"{res['total_params']:,} params -> {out}/result.json")
