"""The methods growkit runs, registered by name: ``train``, ``autogrow``, ``network-morphism``.

A :class:`Method` says everything the rest of the kit needs to know about one way of
running: its options (a config dataclass whose fields also generate its command-line
flags, see :mod:`growkit.flags`), how those options and a :class:`TrainConfig` become
a grower, phases and the final train config (``build``), which fields it adds to
``result.json`` (``summarize``), and how its subcommand shows the train flags
(``train_flags``: hide or respell some). :mod:`growkit.runs` starts and resumes any
method through this registry, and :mod:`growkit.cli` makes one subcommand per method,
so a new method is one :func:`register` call.

A run's ``config.json`` holds ``{"command": name, "train": {...}, name: {method options}}``.
Old names stay readable as aliases (``morph`` is ``network-morphism``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from .config import AutoGrowConfig, NetworkMorphismConfig, TrainConfig
from .errors import GrowkitError


@dataclass(frozen=True)
class Method:
    name: str  # the run command and CLI subcommand
    help: str  # one line for `growkit --help`
    build: Callable  # (train_cfg, method_cfg) -> (grower or None, phases or None, train_cfg); validates
    config: type | None = None  # dataclass of the method's options (from_dict / to_dict / validate)
    summarize: Callable | None = None  # (result, trainer, method_cfg, out dir) -> fields added to result.json
    train_flags: Mapping = field(default_factory=dict)  # TrainConfig field -> None (no flag) or flag metadata
    aliases: tuple[str, ...] = ()  # older command names that still resume
    # A method with its own loop (not the Trainer's): an object with start(options, out, overwrite=...),
    # resume(out), report(result, out) and follow(payload) (a rank > 0 under torchrun: what rank 0 sent
    # through growkit.dist_runs.own). Its subcommand offers only its own flags; build is unused.
    own_loop: object | None = None

    def options(self, rc: dict):
        """The method's options in run config ``rc`` (under its name, or an alias), or None."""
        if self.config is None:
            return None
        for key in (self.name, *self.aliases):
            if key in rc:
                return self.config.from_dict(rc[key]).validate()
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
_ALIASES: dict[str, str] = {}


def register(method: Method) -> Method:
    for name in (method.name, *method.aliases):
        if name in _REGISTRY or name in _ALIASES:
            raise ValueError(f"method name {name!r} is already registered")
    _REGISTRY[method.name] = method
    _ALIASES.update({a: method.name for a in method.aliases})
    return method


def get(name: str) -> Method:
    m = _REGISTRY.get(_ALIASES.get(name, name))
    if m is None:
        raise GrowkitError(f"unknown run command {name!r}; known: {', '.join(_REGISTRY)}")
    return m


def names() -> list[str]:
    return list(_REGISTRY)


def normalize(rc: dict) -> dict:
    """``rc`` with its canonical command and section name and the method options' defaults filled in,
    so configs written under an alias or before an option existed compare equal to today's."""
    m = get(rc.get("command"))
    sections = (rc.get("command"), *m.aliases) if m.config is not None else ()  # (train's section is "train")
    out = {k: v for k, v in rc.items() if k not in sections}
    out["command"] = m.name
    if m.config is not None:
        out[m.name] = m.options(rc).to_dict()
    return out


# ----------------------------------------------------------------------------- built-in methods

def _train(train: TrainConfig, _options):
    return None, None, train


def _autogrow(train: TrainConfig, ag: AutoGrowConfig):
    from .growers.autogrow import make
    return make(train, ag)


def _autogrow_summary(result: dict, trainer, ag: AutoGrowConfig, out: Path) -> dict:
    from .growers.autogrow import summarize
    extra = summarize(result, trainer.grower)
    if ag.scratch:
        extra.update(_scratch(trainer, ag, {**result, **extra}, out / "scratch"))
    return extra


def _scratch(trainer, ag: AutoGrowConfig, res: dict, sdir: Path) -> dict:
    """The found net trained from scratch with the fine-tuning budget (the Delta columns)."""
    from . import runs
    from .growers.autogrow import scratch_config
    s = runs.nested(sdir, lambda: runs.train(scratch_config(trainer.cfg, ag, res["spec"]), sdir, data=trainer.data,
                                             callbacks=trainer.callbacks), trainer.callbacks)
    return {"scratch_test_acc": s["test_acc"], "scratch_val_acc": s["val_acc"], "scratch_epochs": s["epochs"],
            "scratch_wall_s": s["wall_s"],
            "delta": None if s["test_acc"] is None else res["test_acc"] - s["test_acc"]}


def _network_morphism(train: TrainConfig, nm: NetworkMorphismConfig):
    from .growers.network_morphism import NetworkMorphism
    from .schedule import Phase
    shallow, target = train.depths or [], nm.target_depths
    if len(target) != len(shallow) or any(t < d for t, d in zip(target, shallow)):
        raise GrowkitError(f"target depths {target} must extend the shallower depths {shallow}")
    from .growers.initializers import check_family
    from .models.depth import FAMILIES
    family = FAMILIES.get(train.model.split("-")[0])
    check_family(nm.init, plain=family is not None and family[0] == "plain")
    train = dataclasses.replace(train, epochs=nm.shallow_epochs + nm.deeper_epochs)
    grower = NetworkMorphism(target, nm.shallow_epochs, nm.init, nm.init_std)
    ms, g = tuple(train.milestones), train.gamma
    phases = [Phase("shallow", train.lr, "staircase", nm.shallow_epochs, milestones=ms, gamma=g, grows=True),
              Phase("deeper", train.lr, "staircase", nm.deeper_epochs, milestones=ms, gamma=g)]
    return grower, phases, train


register(Method("train", "train a fixed architecture", _train))
register(Method("autogrow", "grow the depth of a net with AutoGrow", _autogrow, AutoGrowConfig,
                summarize=_autogrow_summary,
                train_flags={"depths": {"flag": "--seed-depths", "help": "seed net depths (default 1-1-1)"},
                             "schedule": None}))
register(Method("network-morphism", "train a shallower net, stack blocks on every stage at once, train on "
                "(AutoGrow's Network Morphism study)", _network_morphism, NetworkMorphismConfig,
                train_flags={"depths": {"help": "depths of the shallower net, e.g. 1-1-1"},
                             "epochs": None, "schedule": None},
                aliases=("morph",)))


def _no_build(train, options):
    raise GrowkitError("learn-to-grow runs its own continual loop; start it with runs.run or the CLI")


from . import l2g_runs  # noqa: E402  (its own loop: start / resume / report)
from .growers.learn_to_grow import L2GConfig  # noqa: E402

register(Method("learn-to-grow", "continual learning: per layer and task, reuse, adapt or add new parameters "
                "(Li et al., ICML 2019)", _no_build, L2GConfig, own_loop=l2g_runs))


def _gauss_newton(train: TrainConfig, options):
    from .gn_method import build
    return build(train, options)


def _gauss_newton_summary(result: dict, trainer, options, out: Path) -> dict:
    from .gn_method import summarize
    return summarize(result, trainer, options, out)


def _gauss_newton_config():
    from .gn_method import GaussNewtonConfig
    return GaussNewtonConfig


register(Method("gauss-newton", "grow the width of a VGG / MobileNet seed with Gauss-Newton split and prune "
                "morphisms (Algorithm 1), then retrain the found net from scratch", _gauss_newton,
                _gauss_newton_config(), summarize=_gauss_newton_summary,
                train_flags={"widths": {"flag": "--seed-width",
                                        "help": "seed width: N (uniform) or N-N-... (default: VGG 16, MobileNetV1 32)"},
                             "epochs": None, "batch_size": None, "optimizer": None, "optimizer_kw": None,
                             "momentum": None, "nesterov": None, "weight_decay": None}))


from . import adenel_method as _adenel  # noqa: E402,F401  registers adenel, adenel-replay and l1-prune
