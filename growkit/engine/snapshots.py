"""Trajectory snapshots, written while a run trains: the parameters by name every ``snapshot_every``
epochs (``<run>/trajectory/e00012.pt``, epoch 0 = the initial net) and, at every growth, the step's
composed index maps (``trajectory/growth_e00012.pt``), so that older snapshots can be placed in the
grown net. :mod:`growkit.viz.trajectory` reads them back and draws the path.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from .records import replacing
from .surgery import compose_remaps

SNAPSHOTS = "trajectory"


def save_snapshot(run_dir: str | Path, epoch: int, model: torch.nn.Module, dtype=torch.float32) -> Path:
    d = Path(run_dir) / SNAPSHOTS
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"e{epoch:05d}.pt"
    payload = {"epoch": epoch, "arch": model.arch, "spec_json": json.dumps(model.spec),
               "params": {n: p.detach().to("cpu", dtype).clone() for n, p in model.named_parameters()}}
    with replacing(path, durable=False) as f:
        torch.save(payload, f)
    return path


def record_growth(run_dir: str | Path, epoch: int, edits) -> Path:
    """Store the composed index maps of the growth at ``epoch`` (after that epoch's training, before
    its snapshot), so :func:`growkit.viz.trajectory.embed` can place older snapshots in the grown net."""
    comp = compose_remaps(edits)
    d = Path(run_dir) / SNAPSHOTS
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"growth_e{epoch:05d}.pt"
    payload = {"epoch": epoch, "new": list(comp.new),
               "remap": {n: [i.to(torch.long) for i in idx] for n, idx in comp.remap.items()},
               "moved": dict(comp.moved)}
    with replacing(path, durable=False) as f:
        torch.save(payload, f)
    return path


def prune_snapshots(run_dir: str | Path, last_epoch: int) -> None:
    """Delete snapshots and growth records newer than the checkpoint a run resumes from."""
    d = Path(run_dir) / SNAPSHOTS
    for f in [*d.glob("e*.pt"), *d.glob("growth_e*.pt")]:
        if int(f.stem.rpartition("e")[2]) > last_epoch:
            f.unlink()
