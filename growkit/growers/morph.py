"""Network Morphism as AutoGrow's section 3.1 studies it (Table 2, Figure 2).

Train a shallower net, then stack sub-modules on top of every sub-network at
once to reach a deeper net, initialise them (ZeroInit or AdamInit: the
shallower net's function is kept), and go on training the deeper net. As a
grower: one decision, ``after`` epochs into a growing phase that lasts exactly
``after`` epochs.
"""
from __future__ import annotations

from ..surgery import AppendBlock
from .base import Decision, Grower
from .initializers import initialize_block


class Morph(Grower):
    name = "morph"

    def __init__(self, target_depths: list[int], after: int, init: str = "zero", init_std: float = 1.0,
                 adam: dict | None = None):
        super().__init__()
        self.target, self.after, self.init, self.std, self.adam = list(target_depths), after, init, init_std, adam
        self.done = False

    def decide(self, epoch: int, row: dict, model) -> Decision:
        if self.done or epoch < self.after:
            return Decision()
        self.done = True
        plans = [AppendBlock(s) for s, (d, t) in enumerate(zip(model.depths, self.target)) for _ in range(t - d)]
        return Decision(plans=plans, done=True, info={"depths": self.target})

    def initialize(self, model, edits, ctx) -> dict:
        out = {"init": self.init}
        for e in edits:
            out.update(initialize_block(self.init, model, model.get_submodule(e.where), ctx, std=self.std,
                                        adam=self.adam))
        return out

    def state_dict(self) -> dict:
        return {"done": self.done}

    def load_state_dict(self, state: dict) -> None:
        self.done = state["done"]
