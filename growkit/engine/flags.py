"""Command-line flags generated from config dataclasses: the dataclass field is the one source of truth.

A field declares its flag with :func:`opt` (a ``dataclasses.field`` with metadata):
``help``, ``flag`` (spelling; default ``--field-name``), ``parse`` (a text -> value
function for lists such as ``2-2-2``), ``choices``, ``required`` and ``cli=False`` for
fields the command line does not offer (dicts, tri-states). Booleans become switches:
``--name`` when the default is False; a True default needs a ``flag`` such as
``--no-test`` that turns it off. The default of a flag is the field's default, so
``growkit train`` and ``TrainConfig()`` agree by construction.
"""
from __future__ import annotations

import argparse
import dataclasses
from typing import Any

_SIMPLE = {"int": int, "float": float, "str": str}


def opt(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING, help: str | None = None,
        flag: str | None = None, parse=None, choices=None, required: bool = False, cli: bool = True):
    """A dataclass field with its command-line description."""
    meta = {"help": help, "flag": flag, "parse": parse, "choices": choices, "required": required, "cli": cli}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=meta)


def int_list(text: str):
    """'3' -> 3, '16-32-64' -> [16, 32, 64]."""
    try:
        parts = [int(t) for t in text.split("-")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or N-N-..., got {text!r}") from None
    return parts[0] if len(parts) == 1 else parts


def depths(text: str) -> list[int]:
    """'2-2-2' -> [2, 2, 2]; '3' -> [3]."""
    v = int_list(text)
    return [v] if isinstance(v, int) else v


def floats(text: str) -> list[float]:
    """'0.5,0.75' -> [0.5, 0.75]."""
    try:
        return [float(t) for t in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def json_object(text: str) -> dict:
    """'{"betas": [0.9, 0.99]}' -> {"betas": [0.9, 0.99]}."""
    import json
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError):  # (nested deeper than the parser's stack allows)
        value = None
    if not isinstance(value, dict):
        shown = text if len(text) <= 80 else text[:80] + "..."
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {shown!r}")
    return value


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _scalar_type(f: dataclasses.Field):
    """int / float / str from an annotation such as ``int | None`` (postponed annotations are strings)."""
    ann = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    parts = [p.strip() for p in ann.split("|") if p.strip() != "None"]
    if len(parts) == 1 and parts[0] in _SIMPLE:
        return _SIMPLE[parts[0]]
    if len(parts) == 1 and parts[0] == "bool":
        return bool
    return None


def add_flags(parser: argparse.ArgumentParser, cls, prefix: str, overrides: dict | None = None) -> list[str]:
    """Add one flag per offered field of dataclass ``cls``; values land in ``args.<prefix>.<field>``.
    ``overrides``: field -> None (not offered here) or metadata to replace (e.g. another flag name).
    Returns the names of the fields added."""
    added = []
    overrides = overrides or {}
    for f in dataclasses.fields(cls):
        meta = dict(f.metadata)
        if f.name in overrides:
            if overrides[f.name] is None:
                continue
            meta.update(overrides[f.name])
        if not meta.get("cli", True):
            continue
        dest, default = f"{prefix}.{f.name}", _default(f)
        kind = _scalar_type(f)
        flag = meta.get("flag") or "--" + f.name.replace("_", "-")
        kw = {"dest": dest, "help": meta.get("help")}
        if kind is bool:
            if default and not meta.get("flag"):
                raise TypeError(f"{cls.__name__}.{f.name}: a switch that defaults to True needs a --no-... flag")
            kw.update(action="store_false" if default else "store_true", default=default)
        else:
            parse = meta.get("parse") or kind
            if parse is None:
                raise TypeError(f"{cls.__name__}.{f.name}: {f.type} needs a parse function or cli=False")
            kw.update(type=parse, default=default, metavar=f.name.upper())
            if meta.get("choices"):
                kw.update(choices=meta["choices"], metavar=None)
            if meta.get("required"):
                kw.update(required=True, default=None)
        parser.add_argument(flag, **kw)
        added.append(f.name)
    return added


def values(args: argparse.Namespace, prefix: str, names: list[str]) -> dict:
    """The parsed values of the fields :func:`add_flags` added, by field name."""
    return {n: getattr(args, f"{prefix}.{n}") for n in names}
