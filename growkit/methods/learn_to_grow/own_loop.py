"""Learn-to-Grow run directories: start, resume, report, and named cached runs for notebooks.

``learn-to-grow`` is registered (:mod:`growkit.methods.learn_to_grow.method`) as a method with its own loop
(this module is its ``own_loop``): ``growkit learn-to-grow`` / ``runs.run("learn-to-grow",
None, L2GConfig(...), out)`` start it, ``growkit resume`` / ``runs.resume`` continue it.

A run directory holds ``config.json`` (``{"command": "learn-to-grow", "learn-to-grow":
{options}, "environment": ...}``, the options being :class:`L2GConfig`'s fields: the train settings it
shares with :class:`growkit.engine.config.TrainConfig` and its own; written before the first task),
``tasks/task_<t>.pt``
(after every task: a format-2 checkpoint with the super network's structure and weights,
the accuracy-matrix rows and per-task records so far) and, last, ``result.json``
(``accuracy_matrix``, ``avg_acc``, ``bwt``, ``forgetting``, ``params_per_task``,
``choices``, ``alpha``, ...). A killed run resumes from its last finished task; the task
that was running starts again from its own seed, so the resumed run equals an
uninterrupted one. A new run is made as the trainer's are (:func:`growkit.runs.lifecycle.staged`): in a
hidden folder beside ``--out``, moved there right after the first task's checkpoint, so a run that fails
before that leaves nothing behind, and an ``--overwrite`` that fails leaves the old run as it was.

Under ``torchrun`` rank 0 alone reads and writes the run directory: it validates, prepares the folder
(or loads the last task checkpoint) and sends the other ranks the options and its starting network and
records (:func:`growkit.dist.leader.own`); they learn the stream beside it (:func:`follow`), and a resume
may use any number of processes (a task checkpoint holds nothing that depends on the world size).
"""
from __future__ import annotations

import time
from pathlib import Path

from ...dist import leader as dist_runs
from ...engine.records import environment, read_json, write_json
from ...errors import GrowkitError
from . import continual
from .loop import L2GConfig, build_net, initial, learn_stream, net_from, save_task

COMMAND = "learn-to-grow"


def make_stream(cfg: L2GConfig):
    from ...dist import group as distributed
    from ...engine.trainer import resolve_device
    dev = resolve_device(cfg.device)
    if distributed.setup() is not None:  # under torchrun: this rank's GPU (or the CPU)
        dev = distributed.group().device(dev)
    return continual.task_stream(cfg.dataset, cfg.tasks, order=cfg.order, seed=cfg.seed, root=cfg.data_root,
                                 device=dev, augment=cfg.augment, download=cfg.download,
                                 val_fraction=cfg.val_fraction, split_seed=cfg.split_seed, kind=cfg.stream), dev


def start(cfg: L2GConfig, out, *, overwrite: bool = False) -> dict:
    """Validate everything (options, device, data files, backbone, --out) before writing; then run, staged as
    the trainer's runs are (:func:`growkit.runs.lifecycle.staged`): the run is made in a hidden folder beside
    ``out`` and moved there after the first task's checkpoint, so a failure before that (bad data, a NaN,
    Ctrl-C) leaves an old run that ``--overwrite`` was to replace exactly as it was."""
    from ...runs import lifecycle, rundir
    stage = rundir.prepare(out, COMMAND, overwrite)  # only a growkit run may be replaced; writes nothing
    cfg = cfg.validate()
    stream, dev = make_stream(cfg)
    build_net(cfg, stream)  # the backbone's settings are checked here, before anything is written
    rc = {"command": COMMAND, COMMAND: cfg.to_dict(), "environment": environment(dev)}
    with lifecycle.staged(stage):
        write_json(stage.path / "config.json", rc)
        return _run(cfg, stream, stage.path, stage)


def resume(out) -> dict:
    """Continue a run in place from its last task checkpoint (the caller, :func:`growkit.runs.lifecycle.resume`,
    checked its marker and holds its lock); a finished run returns its result."""
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


def _run(cfg: L2GConfig, stream, p: Path, stage=None) -> dict:
    """Learn the stream from the last task checkpoint in ``p`` (none: from the start). ``stage``: a new run
    being made in ``p``, committed to its final folder right after the first task's checkpoint."""
    t0 = time.perf_counter()
    net, state = initial(cfg, stream, p)

    def save(t, net, state):
        save_task(stage.path if stage is not None else p, t, net, state, cfg)
        if stage is not None:
            stage.commit()  # (once: a no-op after the first task)

    # under torchrun the other ranks start from rank 0's network and records (they read no run directory)
    payload = {"config": cfg.to_dict(), "spec": net.spec, "weights": net.state_dict(), "state": state}
    res = dist_runs.own(COMMAND, payload, lambda: learn_stream(cfg, stream, net, state, save))
    if stage is not None:
        p = stage.commit()
    res["wall_s"] = time.perf_counter() - t0  # of this call (a resumed run counts only what it redid)
    res["test_acc"] = res.get("avg_acc")  # the one-number summary other growkit results carry
    res["environment"] = read_json(p / "config.json")["environment"]
    write_json(p / "result.json", res)
    return res


def follow(payload: dict) -> None:
    """A rank other than 0 under torchrun: learn the stream beside rank 0 from its starting state;
    it writes nothing (rank 0 writes the records and checkpoints) and returns when the stream is learned."""
    cfg = L2GConfig.from_dict(payload["config"]).validate()
    stream, _ = make_stream(cfg)
    net = net_from(payload["spec"], payload["weights"], cfg, stream)
    learn_stream(cfg, stream, net, payload["state"])


def report(res: dict, out) -> None:
    extra = (", deeper" if res["deeper"] else "") + (", tuned reuse" if res.get("tune_reuse") else "")
    print(f"learn-to-grow ({res['method']}{extra}): {res['tasks_done']} tasks, "
          f"average accuracy {res['avg_acc']:.2f}%, BWT {res['bwt']:+.2f}, forgetting {res['forgetting']:.2f}, "
          f"{res['total_params']:,} params -> {out}/result.json")


def cached(runs_dir, name: str, **settings) -> dict:
    """A named run for notebooks, through growkit's one run cache (:func:`growkit.runs.cache.named`): reused
    when it finished with the same settings and the same growkit code, resumed when it was interrupted with
    both, replaced otherwise (a code change under ``methods/learn_to_grow/`` reruns it; one in ``plots.py``
    does not)."""
    from ...runs import cache
    return cache.named(runs_dir, name, COMMAND, None, L2GConfig(**settings))
