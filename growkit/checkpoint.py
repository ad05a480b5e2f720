"""Atomic checkpoints that cannot run code.

A checkpoint holds everything a run needs to continue exactly where it
stopped: the resolved config and the model spec (as JSON strings), the
weights, the optimizer state by parameter name, the grower's state (JSON), the
loop state (epoch, phase, records so far) and the RNG states.

It is written to a temporary file in the same directory, flushed to disk and
renamed over the old one, so a crash or kill at any moment leaves the previous
checkpoint intact. It is read with ``torch.load(weights_only=True)``: only
tensors and plain containers, never pickled code.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from .errors import GrowkitError

FORMAT = 1


def save(path: str | Path, *, config: dict, model: torch.nn.Module, optimizer_state: dict[str, dict],
         loop: dict, grower: dict | None = None) -> None:
    path = Path(path)
    payload = {
        "format": FORMAT,
        "config_json": json.dumps(config),
        "spec_json": json.dumps(model.spec),
        "loop_json": json.dumps(loop),
        "grower_json": json.dumps(grower),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": {n: {k: (v.detach().cpu() if torch.is_tensor(v) else v) for k, v in s.items()}
                      for n, s in optimizer_state.items()},
        "rng": {"torch": torch.get_rng_state(),
                "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else []},
    }
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(payload, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    except OSError:
        pass


def load(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise GrowkitError(f"no checkpoint at {path}")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file
        raise GrowkitError(f"cannot read checkpoint {path}: {e.__class__.__name__}: {e}") from None
    if raw.get("format") != FORMAT:
        raise GrowkitError(f"{path} is not a growkit checkpoint of format {FORMAT}")
    return {"config": json.loads(raw["config_json"]), "spec": json.loads(raw["spec_json"]),
            "loop": json.loads(raw["loop_json"]), "grower": json.loads(raw["grower_json"]),
            "model": raw["model"], "optimizer": raw["optimizer"], "rng": raw["rng"]}


def restore_rng(rng: dict) -> None:
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
