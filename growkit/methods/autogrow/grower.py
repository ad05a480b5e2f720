"""AutoGrow: automatic depth growing (Wen et al., KDD 2020, Algorithm 1).

Policy, checked every K epochs of the growing phase, on the running maximum
M(e) of the validation accuracy (M is 0 before the first epoch, as in the
authors' code):

* stopping policy (first): the sub-network grown last (``grownSub``) is removed
  from the circular list of growing sub-networks when
  - Periodic Growth: M(e) - M(e - J) < tau  (J >> K);
  - Convergent Growth: the growth at the previous check did not raise M by
    tau within the K epochs since: M(e) - M(e - K) < tau.
* growing policy (then, if the list is not empty): stack one sub-module on the
  current sub-network ``growingSub``, remember it as ``grownSub`` and move
  ``growingSub`` round-robin to the next sub-network still in the list;
  - Periodic Growth: always;
  - Convergent Growth: when M(e) - M(e - K) < tau (the net has converged).
* growing ends when the list is empty; the found net is then fine-tuned.

J defaults to the paper's rule: T, the epochs at the largest learning rate of
a baseline (100 of 200 on CIFAR, 30 of 90 on ImageNet); growkit's baseline
schedule is the fine-tuning one, so T = int(first milestone * N). A J below
2 K is refused: the window must span more than the last growth interval
(the paper asks for J >> K; its own largest K, 50 with J = 100, is exactly 2 K).

An optional ``max_depth`` removes a sub-network from the list once it has
that many sub-modules (a seed already that deep never grows). With
``fraction < 1`` the interval K is divided by the fraction so the number of
mini-batches between growths stays the same (Table 8), and so is J, so the
stopping window keeps its size relative to K.

Where the authors' code differs from the paper's text we follow the text: their
script grows every K epochs whatever the accuracy did under the convergent
policy (the check only stops sub-networks), where the paper grows "when the
improvement of validation accuracy is less than tau in the last K epochs".
"""
from __future__ import annotations

import dataclasses

from ...engine.config import TrainConfig
from ...engine.schedule import Phase
from ...engine.surgery import AppendBlock
from ...errors import GrowkitError
from ...growers.base import Decision, Grower
from ...growers.initializers import check_family, initialize_block
from .config import AutoGrowConfig


def default_J(ag: AutoGrowConfig, first_milestone: float = 0.5) -> int:
    """The paper's J = T: epochs at the largest rate of the baseline (fine-tuning) schedule."""
    if not ag.finetune_epochs:
        raise GrowkitError("J defaults to the epochs at the largest rate of the fine-tuning schedule; "
                           "with no fine-tuning epochs give J explicitly")
    return max(1, int(first_milestone * ag.finetune_epochs))


class AutoGrow(Grower):
    name = "autogrow"

    def __init__(self, cfg: AutoGrowConfig, n_stages: int, fraction: float = 1.0, first_milestone: float = 0.5):
        super().__init__()
        self.cfg = cfg.validate()
        self.K = max(1, round(cfg.K / fraction))
        j = cfg.J if cfg.J is not None else default_J(cfg, first_milestone)
        self.J = max(1, round(j / fraction)) if cfg.scale_J_by_fraction else j
        if cfg.policy == "periodic" and self.J < 2 * self.K:
            raise GrowkitError(f"J = {self.J} is below 2 K = {2 * self.K} (epochs, after division by the data "
                               f"fraction): the stopping window must span several growth intervals (J >> K)")
        self.state = {
            "growing": list(range(n_stages)),  # the circular list, in stage order
            "current": 0,  # growingSub
            "grown": None,  # grownSub
            "grew_at_last_check": False,
            "running_max": [],  # M(1), M(2), ...
            "checks": [],  # one record per policy check
        }

    # -- the running maximum and its gain over a window
    def gain(self, window: int) -> float:
        m = self.state["running_max"]
        e = len(m)
        return m[-1] - (m[e - window - 1] if e - window >= 1 else 0.0)

    def _drop_capped(self, depths) -> None:
        """Take every sub-network already ``max_depth`` deep out of the ring (seeds included)."""
        cap = self.cfg.max_depth
        if cap is not None:
            self.state["growing"] = [s for s in self.state["growing"] if depths[s] < cap]

    def _next(self, stage: int) -> int:
        ring = self.state["growing"]
        later = [s for s in ring if s > stage]
        return later[0] if later else ring[0]

    def decide(self, view) -> Decision:
        epoch, model = view.epoch, view.model
        st, cfg = self.state, self.cfg
        acc = view.row["val_acc"]
        st["running_max"].append(max(st["running_max"][-1], acc) if st["running_max"] else acc)
        if self.stop_requested:
            st["growing"] = []
            return Decision(done=True, info={"stopped_by": "request"})
        if epoch % self.K:
            return Decision()
        check = {"epoch": epoch, "gain_K": self.gain(self.K)}
        converged = check["gain_K"] < cfg.tau
        if cfg.policy == "periodic":
            check["gain_J"] = self.gain(self.J)
            stop = st["grown"] is not None and check["gain_J"] < cfg.tau
            grow = True
        else:
            stop = st["grown"] is not None and st["grew_at_last_check"] and converged
            grow = converged
        info = {}
        if stop and st["grown"] in st["growing"]:
            st["growing"].remove(st["grown"])
            info["stopped_stage"] = check["stopped"] = st["grown"]
        self._drop_capped(model.depths)
        plans = []
        if grow and st["growing"]:
            s = st["current"] if st["current"] in st["growing"] else self._next(st["current"])
            plans = [AppendBlock(s)]
            depths = list(model.depths)
            depths[s] += 1
            info.update(stage=s, depths=depths)
            check["grew"] = s
            st["grown"] = s
            if cfg.max_depth is not None and depths[s] >= cfg.max_depth:
                st["growing"].remove(s)
                info["max_depth_stage"] = s
            if st["growing"]:
                st["current"] = self._next(s)
        st["grew_at_last_check"] = bool(plans)
        st["checks"].append(check)
        if not st["growing"]:  # every sub-network stopped: by its accuracy gain, or all at max_depth
            capped = cfg.max_depth is not None and all(d >= cfg.max_depth for d in info.get("depths", model.depths))
            info["stopped_by"] = "max_depth" if capped else "converged"
        return Decision(plans=plans, done=not st["growing"], info=info)

    def initialize(self, model, edits, view) -> dict:
        out = {"init": self.cfg.init}
        adam = {"lr": self.cfg.adam_lr, "max_epochs": self.cfg.adam_max_epochs,
                "tolerance": self.cfg.adam_tolerance}
        for e in edits:
            out.update(initialize_block(self.cfg.init, model, model.get_submodule(e.where), view,
                                        std=self.cfg.init_std, adam=adam))
        return out

    def state_dict(self) -> dict:
        return {"state": self.state, "K": self.K, "J": self.J}

    def load_state_dict(self, state: dict) -> None:
        self.state, self.K, self.J = state["state"], state["K"], state["J"]


def phases(train: TrainConfig, ag: AutoGrowConfig, K: int) -> list[Phase]:
    """Growing at the base rate (constant, or c-AutoGrow's staircase restarting every K epochs),
    then N epochs of staircase fine-tuning from the same rate."""
    grow = Phase("grow", train.lr, ag.grow_schedule, None, period=K if ag.grow_schedule == "staircase" else None,
                 max_epochs=ag.max_grow_epochs, milestones=tuple(train.milestones), gamma=train.gamma, grows=True)
    fine = Phase("finetune", train.lr, "staircase", ag.finetune_epochs, milestones=tuple(train.milestones),
                 gamma=train.gamma)
    return [grow, fine]


def summarize(result: dict, grower: AutoGrow) -> dict:
    """The AutoGrow fields of result.json, read from a finished trainer's result."""
    spec = result["spec"]
    events = [{k: v for k, v in ev.items() if k != "edits"} for ev in result["growth_events"]]
    return {"found": result["arch"], "depths": spec["depths"], "val_acc": result["val_acc"],
            "test_acc": result["test_acc"], "params": result["params"], "macs": result["macs"],
            "growth_events": events, "checks": grower.state["checks"], "K_effective": grower.K,
            "J_effective": grower.J, "grow_epochs": len(grower.state["running_max"]),
            "grow_wall_s": result["phase_wall_s"].get("grow", 0.0),
            "finetune_wall_s": result["phase_wall_s"].get("finetune", 0.0)}


def make(train: TrainConfig, ag: AutoGrowConfig):
    """Validate the pair and build (grower, phases, resolved train config)."""
    train = train.validate().resolved()
    ag = ag.validate()
    family = train.model.split("-")[0]
    from ...models.depth import FAMILIES
    if family not in FAMILIES:
        raise GrowkitError(f"AutoGrow grows depth nets ({', '.join(FAMILIES)}), not {train.model!r}")
    n_stages = FAMILIES[family][1]
    check_family(ag.init, plain=FAMILIES[family][0] == "plain")
    if train.depths is None and "-" not in train.model:
        train = dataclasses.replace(train, depths=[1] * n_stages)
    grower = AutoGrow(ag, n_stages, train.fraction, first_milestone=min(train.milestones, default=0.5))
    return grower, phases(train, ag, grower.K), train


def scratch_config(train: TrainConfig, ag: AutoGrowConfig, found_spec: dict) -> TrainConfig:
    """The found net trained from scratch with the fine-tuning budget and schedule (the Delta baseline)."""
    return dataclasses.replace(train, model=found_spec["name"], depths=list(found_spec["depths"]),
                               epochs=ag.scratch_epochs or ag.finetune_epochs or train.epochs,
                               schedule="staircase", snapshot_every=0)


__all__ = ["AutoGrow", "default_J", "make", "phases", "summarize", "scratch_config"]
