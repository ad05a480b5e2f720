"""Network Morphism as AutoGrow's section 3.1 studies it (Table 2, Figure 2).

Train a shallower net, then stack sub-modules on top of every sub-network at
once to reach a deeper net, initialise them (ZeroInit or AdamInit: the
shallower net's function is kept; AdamInit trains all the new last BNs in one
joint Adam run), and go on training the deeper net. As a
grower: one decision, ``after`` epochs into a growing phase that lasts exactly
``after`` epochs.

(Named ``network-morphism`` so it is not confused with the Gauss-Newton
split/prune morphisms; run directories written as ``morph`` still resume, see
:data:`growkit.runs.registry.RENAMED`.)
"""
from __future__ import annotations

from ...engine.surgery import AppendBlock
from ...growers.base import Decision, Grower
from ...growers.initializers import initialize_blocks


class NetworkMorphism(Grower):
    name = "network-morphism"

    def __init__(self, target_depths: list[int], after: int, init: str = "zero", init_std: float = 1.0,
                 adam: dict | None = None):
        super().__init__()
        self.target, self.after, self.init, self.std, self.adam = list(target_depths), after, init, init_std, adam
        self.done = False

    def decide(self, view) -> Decision:
        if self.done or view.epoch < self.after:
            return Decision()
        self.done = True
        plans = [AppendBlock(s) for s, (d, t) in enumerate(zip(view.model.depths, self.target))
                 for _ in range(t - d)]
        return Decision(plans=plans, done=True, info={"depths": self.target})

    def initialize(self, model, edits, view) -> dict:
        """Every new block at once: AdamInit trains all their last BNs in one joint Adam run (everything else
        frozen), as the paper describes; the record keeps every block's outcome under ``blocks``."""
        return initialize_blocks(self.init, model, [e.where for e in edits], view, std=self.std, adam=self.adam)

    def state_dict(self) -> dict:
        return {"done": self.done}

    def load_state_dict(self, state: dict) -> None:
        self.done = state["done"]
