"""Learn-to-Grow run directories: start, resume, report, and named cached runs for notebooks.

``learn-to-grow`` is registered in :mod:`growkit.methods` as a method with its own loop
(this module is its ``own_loop``): ``growkit learn-to-grow`` / ``runs.run("learn-to-grow",
None, L2GConfig(...), out)`` start it, ``growkit resume`` / ``runs.resume`` continue it.

A run directory holds ``config.json`` (``{"command": "learn-to-grow", "learn-to-grow":
{options}, "environment": ...}``, written before the first task), ``tasks/task_<t>.pt``
(after every task: a format-2 checkpoint with the super network's structure and weights,
the accuracy-matrix rows and per-task records so far) and, last, ``result.json``
(``accuracy_matrix``, ``avg_acc``, ``bwt``, ``forgetting``, ``params_per_task``,
``choices``, ``alpha``, ...). A killed run resumes from its last finished task; the task
that was running starts again from its own seed, so the resumed run equals an
uninterrupted one.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from . import continual
from .errors import GrowkitError
from .growers.learn_to_grow import L2GConfig, build_net, run_stream
from .records import environment, read_json, write_json

COMMAND = "learn-to-grow"


def make_stream(cfg: L2GConfig):
    from .train import resolve_device
    dev = resolve_device(cfg.device)
    return continual.task_stream(cfg.dataset, cfg.tasks, order=cfg.order, seed=cfg.seed, root=cfg.data_root,
                                 device=dev, augment=cfg.augment, download=cfg.download,
                                 split_seed=cfg.split_seed), dev


def start(cfg: L2GConfig, out, *, overwrite: bool = False) -> dict:
    """Validate everything (options, device, data files, backbone, --out) before writing; then run."""
    from .runs import check_out
    cfg = cfg.validate()
    stream, dev = make_stream(cfg)
    build_net(cfg, stream)  # the backbone's settings are checked here, before anything is written
    check_out(out, overwrite)
    p = Path(out)
    if p.is_dir() and any(p.iterdir()):
        shutil.rmtree(p)
    p.mkdir(parents=True, exist_ok=True)
    write_json(p / "config.json", {"command": COMMAND, COMMAND: cfg.to_dict(), "environment": environment(dev)})
    return _run(cfg, stream, p)


def resume(out) -> dict:
    p = Path(out)
    if not (p / "config.json").exists():
        raise GrowkitError(f"{out} holds no growkit run (no config.json)")
    rc = read_json(p / "config.json")
    if rc.get("command") != COMMAND:
        raise GrowkitError(f"{out} is not a learn-to-grow run")
    if (p / "result.json").exists():
        return read_json(p / "result.json")
    cfg = L2GConfig.from_dict(rc[COMMAND]).validate()
    stream, _ = make_stream(cfg)
    return _run(cfg, stream, p)


def _run(cfg: L2GConfig, stream, p: Path) -> dict:
    t0 = time.perf_counter()
    res = run_stream(cfg, stream, p)
    res["wall_s"] = time.perf_counter() - t0  # of this call (a resumed run counts only what it redid)
    res["test_acc"] = res.get("avg_acc")  # the one-number summary other growkit results carry
    res["environment"] = read_json(p / "config.json")["environment"]
    write_json(p / "result.json", res)
    return res


def report(res: dict, out) -> None:
    print(f"learn-to-grow ({res['method']}{', deeper' if res['deeper'] else ''}): {res['tasks_done']} tasks, "
          f"average accuracy {res['avg_acc']:.2f}%, BWT {res['bwt']:+.2f}, forgetting {res['forgetting']:.2f}, "
          f"{res['total_params']:,} params -> {out}/result.json")


def cached(runs_dir, name: str, **settings) -> dict:
    """A named run for notebooks: reused when finished with the same settings, resumed when
    interrupted with them, replaced when they changed."""
    cfg = L2GConfig(**settings).validate()
    out = Path(runs_dir) / name
    if (out / "config.json").exists():
        rc = read_json(out / "config.json")
        if rc.get("command") == COMMAND and rc.get(COMMAND) == json.loads(json.dumps(cfg.to_dict())):
            return resume(out)
    return start(cfg, out, overwrite=True)
