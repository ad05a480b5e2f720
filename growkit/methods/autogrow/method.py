"""AutoGrow's registrations: ``autogrow`` (Algorithm 1, with the found net optionally trained from scratch)
and ``network-morphism`` (the shallower net deepened at once, Table 2), and their Python shorthands."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from ...engine.config import TrainConfig
from ...engine.schedule import Phase
from ...errors import GrowkitError
from ...growers.initializers import check_family
from ...models.depth import FAMILIES
from ...runs import lifecycle
from ...runs.registry import Method, register
from .config import AutoGrowConfig, NetworkMorphismConfig
from .grower import make, scratch_config, summarize
from .morphism import NetworkMorphism


def _autogrow_summary(result: dict, trainer, ag: AutoGrowConfig, out: Path) -> dict:
    extra = summarize(result, trainer.grower)
    if ag.scratch:
        extra.update(_scratch(trainer, ag, {**result, **extra}, out / "scratch"))
    return extra


def _scratch(trainer, ag: AutoGrowConfig, res: dict, sdir: Path) -> dict:
    """The found net trained from scratch with the fine-tuning budget (the Delta columns)."""
    s = lifecycle.nested(sdir, lambda: lifecycle.train(scratch_config(trainer.cfg, ag, res["spec"]), sdir,
                                                       data=trainer.data, callbacks=trainer.callbacks),
                         trainer.callbacks)
    return {"scratch_test_acc": s["test_acc"], "scratch_val_acc": s["val_acc"], "scratch_epochs": s["epochs"],
            "scratch_wall_s": s["wall_s"],
            "delta": None if s["test_acc"] is None else res["test_acc"] - s["test_acc"]}


def _network_morphism(train: TrainConfig, nm: NetworkMorphismConfig):
    shallow, target = train.depths or [], nm.target_depths
    if len(target) != len(shallow) or any(t < d for t, d in zip(target, shallow)):
        raise GrowkitError(f"target depths {target} must extend the shallower depths {shallow}")
    if list(target) == list(shallow):
        raise GrowkitError(f"target depths {target} equal the shallower depths: the morphism would add nothing")
    family = FAMILIES.get(train.model.split("-")[0])
    check_family(nm.init, plain=family is not None and family[0] == "plain")
    train = dataclasses.replace(train, epochs=nm.shallow_epochs + nm.deeper_epochs)
    grower = NetworkMorphism(target, nm.shallow_epochs, nm.init, nm.init_std)
    ms, g = tuple(train.milestones), train.gamma
    phases = [Phase("shallow", train.lr, "staircase", nm.shallow_epochs, milestones=ms, gamma=g, grows=True),
              Phase("deeper", train.lr, "staircase", nm.deeper_epochs, milestones=ms, gamma=g)]
    return grower, phases, train


register(Method("autogrow", "grow the depth of a net with AutoGrow", make, AutoGrowConfig,
                summarize=_autogrow_summary,
                train_flags={"depths": {"flag": "--seed-depths", "help": "seed net depths (default 1-1-1)"},
                             "schedule": None}))
register(Method("network-morphism", "train a shallower net, stack blocks on every stage at once, train on "
                "(AutoGrow's Network Morphism study)", _network_morphism, NetworkMorphismConfig,
                train_flags={"depths": {"help": "depths of the shallower net, e.g. 1-1-1"},
                             "epochs": None, "schedule": None}))


def autogrow(train_cfg: TrainConfig, ag_cfg: AutoGrowConfig, out: str | Path, *, overwrite: bool = False,
             callbacks=(), data=None, grower_hook=None) -> dict:
    """Grow (Algorithm 1), fine-tune, and optionally train the found net from scratch (``ag_cfg.scratch``).
    ``grower_hook(grower)`` receives the grower before training starts (e.g. for a stop button)."""
    return lifecycle.run("autogrow", train_cfg, ag_cfg, out, overwrite=overwrite, callbacks=callbacks, data=data,
                         grower_hook=grower_hook)


def network_morphism(train_cfg: TrainConfig, target_depths: list[int], out: str | Path, *, shallow_epochs: int,
                     deeper_epochs: int, init: str = "zero", init_std: float = 1.0, overwrite: bool = False,
                     callbacks=(), data=None) -> dict:
    """Network Morphism (AutoGrow Table 2): train ``train_cfg``'s net for ``shallow_epochs``, stack blocks up
    to ``target_depths`` with ``init`` (zero or adam keep the function), train ``deeper_epochs`` more."""
    nm = NetworkMorphismConfig(list(target_depths), shallow_epochs, deeper_epochs, init, init_std)
    return lifecycle.run("network-morphism", train_cfg, nm, out, overwrite=overwrite, callbacks=callbacks,
                         data=data)

