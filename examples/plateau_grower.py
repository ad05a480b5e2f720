"""An example grower that lives outside growkit: deepen the shallowest stage whenever validation accuracy
plateaus. docs/extending.md walks through it.

    GROWKIT_METHODS=plateau_grower PYTHONPATH=examples growkit plateau --patience 2 --out runs/p1
    growkit plot runs/p1

Importing this module registers the method ``plateau`` (its options become the subcommand's flags, its runs
resume, rerun, plot and cache like any built-in method's). The three concerns stay apart, as in every growkit
grower: the *policy* (:meth:`Plateau.decide`: when and where), the *surgery* (growkit's ``AppendBlock``: how
the net changes) and the *initializer* (:meth:`Plateau.initialize`: what the new weights are).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from growkit.engine.config import Record, TrainConfig, _check_fields
from growkit.engine.flags import opt
from growkit.engine.schedule import Phase
from growkit.engine.surgery import AppendBlock
from growkit.errors import GrowkitError
from growkit.growers.base import Decision, Grower
from growkit.growers.initializers import initialize_block, names
from growkit.models.depth import FAMILIES
from growkit.runs.registry import Method, register


@dataclass
class PlateauConfig(Record):
    """The method's options: the fields are its command-line flags (with their help and defaults)."""
    patience: int = opt(2, help="epochs without a new best validation accuracy before growing")
    min_gain: float = opt(0.5, help="what counts as a new best: a gain of at least this, in percentage points")
    max_growths: int = opt(3, help="stop growing after this many blocks")
    grow_epochs: int = opt(12, help="length of the growing phase, in epochs")
    finetune_epochs: int = opt(6, flag="--finetune", help="staircase fine-tuning epochs of the grown net")
    init: str = opt("zero", help="initializer of a new block (growkit's: zero keeps the function, gau, ...)")

    def validate(self) -> "PlateauConfig":
        _check_fields(self)  # types, finite numbers
        for name in ("patience", "max_growths", "grow_epochs"):
            if getattr(self, name) < 1:
                raise GrowkitError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.finetune_epochs < 0 or self.min_gain < 0:
            raise GrowkitError("finetune_epochs and min_gain must be >= 0")
        if self.init not in names():
            raise GrowkitError(f"init must be one of {', '.join(names())}, got {self.init!r}")
        return self


class Plateau(Grower):
    name = "plateau"

    def __init__(self, cfg: PlateauConfig):
        super().__init__()
        self.cfg = cfg
        self.state = {"best": None, "since": 0, "growths": 0}  # JSON values: they go into every checkpoint

    def decide(self, view) -> Decision:
        """After every epoch of the growing phase: ``view.row`` is that epoch's metrics (no test fields)."""
        st, acc = self.state, view.row["val_acc"]
        if self.stop_requested:  # the notebook's stop button, or growkit's request_stop()
            return Decision(done=True, info={"stopped_by": "request"})
        if st["best"] is None or acc >= st["best"] + self.cfg.min_gain:
            st["best"], st["since"] = acc, 0
            return Decision()
        st["since"] += 1
        if st["since"] < self.cfg.patience:
            return Decision()
        depths = list(view.model.depths)
        stage = depths.index(min(depths))  # the shallowest stage (the first of equals)
        st["since"], st["growths"], st["best"] = 0, st["growths"] + 1, None  # the grown net sets a new best
        done = st["growths"] >= self.cfg.max_growths
        info = {"stage": stage, "plateau_at": acc, **({"stopped_by": "max_growths"} if done else {})}
        return Decision(plans=[AppendBlock(stage)], done=done, info=info)

    def initialize(self, model, edits, view) -> dict:
        """The trainer applied the plans and carried the optimizer state; now set the new block's weights."""
        out = {"init": self.cfg.init}
        for e in edits:
            out.update(initialize_block(self.cfg.init, model, model.get_submodule(e.where), view))
        return out

    def state_dict(self) -> dict:
        return dict(self.state)

    def load_state_dict(self, state: dict) -> None:
        self.state = dict(state)


def build(train: TrainConfig, cfg: PlateauConfig):
    """(grower, phases, train config as the run records it): grow, then fine-tune the grown net."""
    family = train.model.split("-")[0]
    if family not in FAMILIES:
        raise GrowkitError(f"plateau grows depth nets ({', '.join(FAMILIES)}), not {train.model!r}")
    if train.depths is None and "-" not in train.model:
        train = dataclasses.replace(train, depths=[1] * FAMILIES[family][1])
    train = dataclasses.replace(train, epochs=cfg.grow_epochs + cfg.finetune_epochs)
    ms, g = tuple(train.milestones), train.gamma
    phases = [Phase("grow", train.lr, "constant", cfg.grow_epochs, grows=True),
              Phase("finetune", train.lr, "staircase", cfg.finetune_epochs, milestones=ms, gamma=g)]
    return Plateau(cfg), phases, train


def summarize(result: dict, trainer, cfg: PlateauConfig, out) -> dict:
    """Fields added to result.json: the found net and its growth events (without the edits' index maps)."""
    return {"found": result["arch"], "depths": result["spec"]["depths"],
            "growths": trainer.grower.state["growths"],
            "growth_events": [{k: v for k, v in ev.items() if k != "edits"} for ev in result["growth_events"]]}


METHOD = register(Method("plateau", "deepen the shallowest stage whenever validation accuracy plateaus "
                         "(an example grower from examples/)", build, PlateauConfig, summarize=summarize,
                         train_flags={"epochs": None, "schedule": None}))
