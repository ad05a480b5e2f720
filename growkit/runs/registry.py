"""The methods growkit runs, registered by name (``train``, ``autogrow``, ``network-morphism``, ...).

A :class:`Method` says everything the rest of the kit needs to know about one way of
running: its options (a config dataclass whose fields also generate its command-line
flags, see :mod:`growkit.flags`), how those options and a :class:`TrainConfig` become
a grower, phases and the final train config (``build``), which fields it adds to
``result.json`` (``summarize``), and how its subcommand shows the train flags
(``train_flags``: hide or respell some). :mod:`growkit.runs.lifecycle` starts and resumes any
method through this registry, and :mod:`growkit.cli` makes one subcommand per method,
so a new method is one :func:`register` call.

This module never imports a method: each method's package (``growkit/methods/<name>/method.py``)
registers itself when it is imported, and :mod:`growkit.methods` imports every built-in one. The
package's ``growkit/__init__.py`` imports :mod:`growkit.methods` (as timm's package imports its model
files), so whoever imports any part of growkit finds every built-in method registered, and nothing
below the methods needs to import them: the import graph keeps its arrows pointing down.

A run's ``config.json`` holds ``{"command": name, "train": {...}, name: {method options}}``.
A run written under a command's former name still resumes: :func:`current` maps it to today's
(:data:`RENAMED`) wherever a config is read.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

from ..engine.config import TrainConfig
from ..errors import GrowkitError


@dataclass(frozen=True)
class Method:
    name: str  # the run command and CLI subcommand
    help: str  # one line for `growkit --help`
    build: Callable  # (train_cfg, method_cfg) -> (grower or None, phases or None, train_cfg); validates
    config: type | None = None  # dataclass of the method's options (from_dict / to_dict / validate)
    summarize: Callable | None = None  # (result, trainer, method_cfg, out dir) -> fields added to result.json
    train_flags: Mapping = field(default_factory=dict)  # TrainConfig field -> None (no flag) or flag metadata
    # A method with its own loop (not the Trainer's): an object with start(options, out, overwrite=...),
    # resume(out), report(result, out) and follow(payload) (a rank > 0 under torchrun: what rank 0 sent
    # through growkit.dist.leader.own). Its subcommand offers only its own flags; build is unused.
    own_loop: object | None = None

    def options(self, rc: dict):
        """The method's options in run config ``rc`` (under its name), or None."""
        if self.config is None:
            return None
        if self.name in rc:
            return self.config.from_dict(rc[self.name]).validate()
        raise GrowkitError(f"run config of {self.name!r} has no {self.name!r} section")

    def run_config(self, train: TrainConfig, options=None) -> dict:
        """The config.json (without the environment stamp) that starting this method writes;
        ``train`` comes back resolved the way the run records it. Validates everything."""
        if self.config is not None and options is None:
            raise GrowkitError(f"{self.name} needs its options ({self.config.__name__})")
        if options is not None:
            options = options.validate()
        _, _, resolved = self.build(train.validate().resolved(), options)
        rc = {"command": self.name, "train": resolved.validate().resolved().to_dict()}
        if options is not None:
            rc[self.name] = options.to_dict()
        return rc


_REGISTRY: dict[str, Method] = {}
RENAMED = {"morph": "network-morphism"}  # former command name -> today's (run directories written under it)


def register(method: Method) -> Method:
    if method.name in _REGISTRY and _REGISTRY[method.name] == method:
        return method  # the same registration again (a module imported under a second name)
    if method.name in _REGISTRY:
        raise ValueError(f"method name {method.name!r} is already registered")
    if method.name in RENAMED:
        raise ValueError(f"method name {method.name!r} is the former name of {RENAMED[method.name]!r}")
    _REGISTRY[method.name] = method
    return method


PLUGINS_ENV = "GROWKIT_METHODS"  # comma-separated modules to import, each registering a method of its own


def load_plugins() -> list[str]:
    """Import the methods that live outside growkit: the modules named in ``$GROWKIT_METHODS`` (importable from
    the working directory or ``PYTHONPATH``, e.g. ``plateau_grower`` with ``PYTHONPATH=examples``). Each
    registers itself when imported, as the built-in methods do. Returns the modules imported; a module that
    fails to import is a one-line error. (Not entry points: scanning every installed package's metadata would
    add a tenth of a second to every command.)"""
    import importlib
    import os
    import sys
    names = [n.strip() for n in os.environ.get(PLUGINS_ENV, "").split(",") if n.strip()]
    if names and "" not in sys.path and os.getcwd() not in sys.path:  # a console script lacks the cwd
        sys.path.append(os.getcwd())
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as e:  # (ImportError, or an error inside the module)
            raise GrowkitError(f"${PLUGINS_ENV}: cannot import {name!r}: {type(e).__name__}: {e}") from None
    return names


def get(name: str) -> Method:
    m = _REGISTRY.get(name)
    if m is None:
        raise GrowkitError(f"unknown run command {name!r}; known: {', '.join(_REGISTRY)}")
    return m


def names() -> list[str]:
    return list(_REGISTRY)


def current(rc: dict) -> dict:
    """Run config ``rc`` as it reads today: written under a former command name (:data:`RENAMED`), its
    command and its options' section take the new name; any other config comes back as it is."""
    old = rc.get("command")
    new = RENAMED.get(old) if isinstance(old, str) else None
    if new is None:
        return rc
    out = {k: v for k, v in rc.items() if k != old}
    out["command"] = new
    if old in rc:
        out[new] = rc[old]
    return out


def normalize(rc: dict) -> dict:
    """``rc`` with today's command and section name and the method options' defaults filled in,
    so configs written under a former name or before an option existed compare equal to today's."""
    rc = current(rc)
    m = get(rc.get("command"))
    out = {k: v for k, v in rc.items() if k != m.name or m.config is None}  # (train's section is "train")
    out["command"] = m.name
    if m.config is not None:
        out[m.name] = m.options(rc).to_dict()
    return out
