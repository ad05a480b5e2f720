"""A run directory's files read back, checked: ``config.json`` (a registered method, its sections valid),
``result.json`` (the fields every method reports), a checkpoint against the run it sits in, and the
run's final model and data split. Every error is one line naming the file.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..engine import checkpoint, trainer
from ..engine.config import TrainConfig
from ..engine.records import one_line, read_json
from ..errors import GrowkitError
from ..models import from_spec
from . import registry

_RESULT_TYPES = {"arch": (str,), "val_acc": (int, float, type(None)), "test_acc": (int, float, type(None)),
                 "params": (int,), "epochs": (int,), "wall_s": (int, float)}


def read_run_config(run_dir: str | Path) -> dict:
    """``config.json`` of a run, checked: valid JSON, a registered method, its train and method sections
    of the right keys, types and ranges. Errors name the file."""
    path = Path(run_dir) / "config.json"
    rc = read_json(path)
    try:
        rc = registry.current(rc)  # a run written under a command's former name
        method = registry.get(rc.get("command"))
        if method.own_loop is not None:  # no train section: the method's options are the whole config
            method.options(rc)
            return rc
        if not isinstance(rc.get("train"), dict):
            raise GrowkitError(f"'train' must be an object, got {type(rc.get('train')).__name__}")
        TrainConfig.from_dict(rc["train"]).validate()
        method.options(rc)  # the method's own section, validated
    except (GrowkitError, TypeError, AttributeError) as e:
        raise GrowkitError(f"{path}: {one_line(e)}") from None
    return rc


def read_result(path: str | Path) -> dict:
    """``result.json``, checked for the fields every command reports, with their types."""
    res = read_json(path)
    for key, types in _RESULT_TYPES.items():
        if key in res and (not isinstance(res[key], types) or isinstance(res[key], bool)):
            raise GrowkitError(f"{path}: '{key}' has the wrong type ({type(res[key]).__name__}); the file is "
                               "damaged (delete it and `growkit resume` the run to rewrite it)")
    missing = [k for k in ("arch", "val_acc", "params", "wall_s") if k not in res]
    if missing:
        raise GrowkitError(f"{path} lacks {', '.join(missing)}; the file is damaged (delete it and "
                           "`growkit resume` the run to rewrite it)")
    return res


def check_checkpoint_payload(raw, path: str | Path, keys=("format", "config_json", "spec_json", "model")) -> None:
    """A file ``torch.load`` read safely may still not be a growkit checkpoint: say so in one line."""
    if not isinstance(raw, dict) or not all(k in raw for k in keys):
        what = type(raw).__name__ if not isinstance(raw, dict) else f"dict with keys {sorted(map(str, raw))[:5]}"
        raise GrowkitError(f"{path} is not a growkit checkpoint (it holds a {what})")


def _first_difference(a, b, prefix: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            d = _first_difference(a.get(k), b.get(k), f"{prefix}{k}.")
            if d:
                return d
        return None
    return None if a == b else f"{prefix.rstrip('.')}: {a!r} vs {b!r}"


def check_checkpoint_matches(state: dict, run_config: dict, path: str | Path,
                             ignore=("environment", "stopped")) -> None:
    """Refuse a checkpoint that belongs to another run: its config must equal the run's config.json
    (up to ``ignore``d keys; a stop is written to config.json just before that epoch's checkpoint) and its
    model spec must fit the run's model and dataset."""
    def canonical(rc):  # the same run written under a command alias, or before an option existed
        try:
            return registry.normalize(rc)
        except (GrowkitError, KeyError, TypeError, AttributeError):
            return rc
    mine = {k: v for k, v in canonical(run_config).items() if k not in ignore}
    theirs = {k: v for k, v in canonical(state.get("config") or {}).items() if k not in ignore}
    diff = _first_difference(theirs, mine)
    if diff:
        raise GrowkitError(f"{path} belongs to another run (checkpoint vs config.json differ in {diff}); "
                           "move it away to restart this run")
    spec, train = state.get("spec") or {}, run_config.get("train") or {}
    model = str(train.get("model", "")).split("-")[0]
    if str(spec.get("name", "")).split("-")[0] != model:
        raise GrowkitError(f"{path} holds a {spec.get('name')!r} model but the run trains {model!r}")
    weights = state.get("model")
    if not isinstance(weights, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in weights.items()):
        raise GrowkitError(f"{path} holds no table of weights (its 'model' is a {type(weights).__name__} of other "
                           "things); it cannot be resumed")
    bad = [k for k, v in weights.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:  # training stops at a non-finite loss, so no checkpoint of its own holds these
        raise GrowkitError(f"{path} holds non-finite weights ({len(bad)} of {len(weights)} tensors, first "
                           f"{bad[0]}); it cannot be resumed")
    _check_loop(state.get("loop"), path)
    opt, want = state.get("optimizer") or {}, train.get("optimizer", "sgd")
    if opt.get("kind") != want or not isinstance(opt.get("state"), dict) or not isinstance(opt.get("groups"), (
            list, type(None))) or not all(isinstance(g, dict) for g in opt.get("groups") or []):
        raise GrowkitError(f"{path} holds {opt.get('kind')!r} optimizer state of another shape than the run's "
                           f"{want!r} writes; it cannot be resumed")


def _check_loop(loop, path) -> None:
    """The trainer's loop state as a checkpoint holds it: its fields, of their types, counts not negative."""
    import dataclasses
    from ..engine.config import _check_fields
    try:
        st = trainer.LoopState.from_checkpoint(loop)
        _check_fields(st)
        if st.epoch < 0 or st.phase < 0 or st.phase_start < 0:
            raise GrowkitError(f"negative counts: epoch {st.epoch}, phase {st.phase}")
    except (GrowkitError, TypeError, ValueError) as e:
        fields = ", ".join(f.name for f in dataclasses.fields(trainer.LoopState))
        raise GrowkitError(f"{path} holds a damaged loop state ({one_line(e)}; expected {fields})") from None


def load_model(run_dir, with_epoch: bool = False):
    """The final model of a run (structure from its spec, weights from its checkpoint), in eval mode;
    with ``with_epoch``: (model, the epoch the checkpoint was written after)."""
    state = checkpoint.load(Path(run_dir) / "checkpoint.pt")
    model = from_spec(state["spec"])
    model.load_state_dict(state["model"])
    return (model.eval(), state["loop"]["epoch"]) if with_epoch else model.eval()


def load_data(run_dir, device: str = "cpu"):
    """The dataset of a run, split exactly as the run split it."""
    cfg = TrainConfig.from_dict(read_json(Path(run_dir) / "config.json")["train"])
    return trainer.load_data(cfg, torch.device(device))
