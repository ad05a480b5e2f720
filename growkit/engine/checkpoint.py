"""Atomic checkpoints that cannot run code.

A checkpoint holds everything a run needs to continue exactly where it
stopped: the resolved config and the model spec (as JSON strings), the
weights, the optimizer (kind, parameter groups with their hyper-parameters and
parameter names, state by parameter name), the grower's state and method
``extras`` (JSON, with every tensor in them moved to a tensor table and put back
on load), the loop state (epoch, phase, records so far) and the RNG states.
Format-1 checkpoints (SGD state, JSON-only grower) still load.

It is written to a temporary file in the same directory, flushed to disk and
renamed over the old one, so a crash or kill at any moment leaves the previous
checkpoint intact. It is read with ``torch.load(weights_only=True)``: only
tensors and plain containers, never pickled code.
"""
from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path

import torch

from ..errors import GrowkitError
from .records import one_line, replacing

FORMAT = 2
_TENSOR = "__tensor__"


def split_tensors(obj, prefix: str = "") -> tuple[object, dict[str, torch.Tensor]]:
    """``obj`` with every tensor (anywhere in nested dicts / lists / tuples) replaced by a reference
    ``{"__tensor__": key}``, and the table ``key -> tensor``. The first part is JSON-ready."""
    table: dict[str, torch.Tensor] = {}

    def walk(o, path):
        if torch.is_tensor(o):
            table[path] = o.detach().cpu()
            return {_TENSOR: path}
        if isinstance(o, dict):
            if _TENSOR in o:
                raise GrowkitError(f"state key {_TENSOR!r} is reserved (at {path or 'the top'})")
            return {k: walk(v, f"{path}/{k}") for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [walk(v, f"{path}/{i}") for i, v in enumerate(o)]
        return o

    return walk(obj, prefix), table


def merge_tensors(obj, table: dict[str, torch.Tensor]):
    """The inverse of :func:`split_tensors` (tuples come back as lists, as JSON gives them)."""
    if isinstance(obj, dict):
        if set(obj) == {_TENSOR}:
            return table[obj[_TENSOR]]
        return {k: merge_tensors(v, table) for k, v in obj.items()}
    if isinstance(obj, list):
        return [merge_tensors(v, table) for v in obj]
    return obj


def _json_and_tensors(obj) -> tuple[str, dict]:
    j, t = split_tensors(obj)
    return json.dumps(j), t


def save(path: str | Path, *, config: dict, model: torch.nn.Module, optimizer: dict, loop: dict,
         grower: dict | None = None, extras: dict | None = None) -> None:
    """``optimizer``: :func:`growkit.engine.optim.export`'s ``{kind, groups, state}``; ``grower`` and
    ``extras`` (method data) may hold tensors anywhere."""
    path = Path(path)
    grower_json, grower_tensors = _json_and_tensors(grower)
    extras_json, extras_tensors = _json_and_tensors(extras or {})
    payload = {
        "format": FORMAT,
        "config_json": json.dumps(config),
        "spec_json": json.dumps(model.spec),
        "loop_json": json.dumps(loop),
        "grower_json": grower_json,
        "grower_tensors": grower_tensors,
        "extras_json": extras_json,
        "extras_tensors": extras_tensors,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer_json": json.dumps({"kind": optimizer["kind"], "groups": optimizer["groups"]}),
        "optimizer_state": {n: {k: (v.detach().cpu() if torch.is_tensor(v) else v) for k, v in s.items()}
                            for n, s in optimizer["state"].items()},
        "rng": {"torch": torch.get_rng_state(),
                "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else []},
    }
    with replacing(path) as f:  # a failure mid-write (a full disk) leaves the last checkpoint and no half file
        torch.save(payload, f)


def load(path: str | Path) -> dict:
    """The checkpoint as ``{format, config, spec, loop, grower, extras, model, optimizer, rng}``;
    ``optimizer`` is ``{kind, groups, state}``. Format 1 (SGD state by name, grower as JSON) reads as
    kind ``sgd`` with ``groups`` None (rebuilt from the run's config) and no extras."""
    path = Path(path)
    if not path.exists():
        raise GrowkitError(f"no checkpoint at {path}")
    try:
        with warnings.catch_warnings():  # torch's advice on a plain pickle's protocol: growkit's one line says it
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # weights_only refused it; never retried without (that could run code)
        raise GrowkitError(f"cannot read checkpoint {path}: not a file of tensors and plain containers "
                           "(damaged, or it holds pickled objects, which growkit never loads)") from None
    except Exception as e:  # a truncated or foreign file
        raise GrowkitError(f"cannot read checkpoint {path}: {e.__class__.__name__}: {one_line(e)}") from None
    fmt = raw.get("format") if isinstance(raw, dict) else None
    if fmt not in (1, 2):
        raise GrowkitError(f"{path} is not a growkit checkpoint (format 1 or 2)")
    try:
        return _decode(raw, fmt)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise GrowkitError(f"{path} is not a complete growkit checkpoint of format {fmt} "
                           f"({e.__class__.__name__}: {one_line(e)})") from None


def _decode(raw: dict, fmt: int) -> dict:
    out = {"format": fmt, "config": json.loads(raw["config_json"]), "spec": json.loads(raw["spec_json"]),
           "loop": json.loads(raw["loop_json"]), "model": raw["model"], "rng": raw["rng"]}
    if fmt == 1:
        out.update(grower=json.loads(raw["grower_json"]), extras={},
                   optimizer={"kind": "sgd", "groups": None, "state": raw["optimizer"]})
        return out
    extra = sorted(set(raw) - _FORMAT2_KEYS)
    if extra:  # growkit writes exactly these keys: anything else was added by hand or by other code
        raise ValueError(f"keys growkit does not write: {', '.join(map(str, extra))[:120]}")
    opt = json.loads(raw["optimizer_json"])
    out.update(grower=merge_tensors(json.loads(raw["grower_json"]), raw["grower_tensors"]),
               extras=merge_tensors(json.loads(raw["extras_json"]), raw["extras_tensors"]),
               optimizer={"kind": opt["kind"], "groups": opt["groups"], "state": raw["optimizer_state"]})
    return out


_FORMAT2_KEYS = {"format", "config_json", "spec_json", "loop_json", "grower_json", "grower_tensors", "extras_json",
                 "extras_tensors", "model", "optimizer_json", "optimizer_state", "rng"}


def restore_rng(rng: dict) -> None:
    t = rng["torch"] if isinstance(rng, dict) else None
    if not (torch.is_tensor(t) and t.dtype == torch.uint8 and t.dim() == 1):
        raise ValueError(f"the saved RNG state is not a byte tensor (got {type(t).__name__}"
                         f"{'' if not torch.is_tensor(t) else ' of ' + str(t.dtype)})")
    torch.set_rng_state(t)
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
