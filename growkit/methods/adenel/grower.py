"""AdeNeL: width growing from a thin seed, driven by the support set of an inverse scale space
(Zhong, Liu and Fu; paper 002). The policy lives in :mod:`.adenel_policy`, the
optimizer in :mod:`growkit.methods.adenel.lbi`; this module holds the config, the grower and its replay.

The grower reads Gamma from the optimizer state it is shown (never the optimizer itself): every J
epochs of the growing phase it measures each conv layer's capacity s, widens the layers with
s > tau by ``grow_by`` He-initialised filters (within the budgets, checked on the planned
architecture first) and reports ``done`` when no layer grows or a budget stops it. The trainer then
fine-tunes the found net.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ...engine.config import Record
from ...engine.flags import opt
from ...errors import GrowkitError
from ...growers.base import Decision, Grower
from .lbi import filter_support
from .policy import (GROW_RULES, ON_BUDGET, TIES, budget_check, candidate_groups, capacities, grow_amount,
                     plan_round, train_cost, widen_plans, widths)

PAPER_LAM = 1.0  # DessiLBI's lambda (the paper gives none), for CIFAR/ImageNet-sized epochs
SMALL_DATA_LAM = {"digits": 0.05}  # datasets with few steps per epoch: see AdeNeLConfig.lam


def default_lam(dataset: str) -> float:
    """lambda when none is given: 0.05 on digits (9 steps per epoch at batch 128), else DessiLBI's 1."""
    return SMALL_DATA_LAM.get(dataset, PAPER_LAM)


def _check(ok: bool, msg: str) -> None:
    if not ok:
        raise GrowkitError(msg)


def _count(text: str) -> int:
    """A parameter or multiply-add count from the command line: 250000, 2.5e5 or 1e6."""
    import argparse
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count such as 250000 or 2.5e5, got {text!r}") from None
    if v != v or v in (float("inf"), float("-inf")):  # inf, nan and 1e400 (which float() makes inf)
        raise argparse.ArgumentTypeError(f"expected a finite count such as 250000 or 2.5e5, got {text!r}")
    if v != int(v):
        raise argparse.ArgumentTypeError(f"expected a whole count, got {text!r}")
    return int(v)


@dataclass
class AdeNeLConfig(Record):
    """AdeNeL's choices. Defaults follow the DessiLBI project's public grow-network example where
    the paper gives no value (kappa, nu, lambda, lr, J, tau, 40 fine-tuning epochs, Z and Gamma reset at
    every growth); the paper gives the seed widths (4/8/16), a fixed number of filters per round and
    the baselines' SGD settings. ``grow_by = 4`` is ours: DessiLBI's example grows by max(+8, x1.1)
    (VGG, from 16 filters) or max(+4, x1.1) (ResNets), available as ``grow_rule="ratio"``."""
    seed_width: int = opt(4, help="filters per conv layer of the seed net")
    tau: float = opt(0.8, help="a conv layer grows when its share of non-zero Gamma filters exceeds tau (eq. 9)")
    J: int = opt(10, flag="--J", help="epochs between capacity checks")
    grow_by: int = opt(4, help="filters added to a growing layer per round (with --grow-rule ratio: at least)")
    grow_rule: str = opt("fixed", choices=list(GROW_RULES),
                         help="fixed: +grow_by per round (the paper's fixed number); ratio: width w -> "
                              "max(w + grow_by, int(grow_ratio * w)) (DessiLBI's example: VGG +8 or x1.1 from "
                              "16 filters)")
    grow_ratio: float = opt(1.1, help="with --grow-rule ratio: the factor (DessiLBI: 1.1)")
    kappa: float = opt(1.0, help="LBI: Gamma = kappa * Prox(Z)")
    nu: float = opt(100.0, help="LBI: coupling (1/2nu)||W - Gamma||^2")
    lam: float | None = opt(None, help="LBI: proximal threshold lambda (default: 1, DessiLBI's value and the "
                                       "paper profile's, except 0.05 on digits: its 9 steps per epoch let no filter "
                                       "reach lambda = 1 within J epochs, so nothing would grow; docs/adenel.md)")
    lr: float = opt(0.05, help="LBI learning rate while growing")
    momentum: float = opt(0.9, help="momentum on grad L (never on the coupling term)")
    weight_decay: float = opt(0.0, help="weight decay on grad L of conv and linear weights")
    finetune_epochs: int = opt(40, flag="--finetune", help="epochs of fine-tuning after growth stops")
    finetune_lr: float = opt(0.005, help="fine-tuning rate, x0.1 at 1/3 and 2/3")
    budget_params: int | None = opt(None, parse=_count, help="parameter budget (never exceeded)")
    budget_macs: int | None = opt(None, parse=_count,
                                   help="budget of forward multiply-adds per image (MACs, the unit of the "
                                        "paper's 'FLOPs': VGG-16 on CIFAR-10 is 313e6), never exceeded")
    on_budget: str = opt("stop", choices=list(ON_BUDGET), help="stop: a round that does not fit ends growth; "
                                                              "subset: grow the layers that still fit")
    ties: str = opt("untied", choices=list(TIES), help="ResNets: untied (block-inner widths only) or tied "
                                                        "(residual streams grown too)")
    support: str = opt("reset", choices=["carry", "reset"],
                       help="Z and Gamma across growth: reset to 0 (default; DessiLBI rebuilds its optimizer at "
                            "every growth, and only so s measures the new width) or carry (new entries 0; a wide "
                            "layer's s then stays above tau and it grows until a budget stops it)")
    max_grow_epochs: int = opt(500, help="safety bound on the growing phase")
    scratch: bool = opt(False, help="also train the baselines scratch-base and scratch-grow")
    scratch_lr: float = opt(0.1, help="baselines: SGD rate, x0.1 at 1/3 and 2/3")
    scratch_epochs: int | None = opt(None, help="baselines' epochs (default: the AdeNeL run's total)")

    def validate(self) -> "AdeNeLConfig":
        self.check_fields()
        _check(self.seed_width > 0, f"seed_width must be > 0, got {self.seed_width}")
        _check(0 <= self.tau < 1, f"tau must be in [0, 1), got {self.tau}")
        _check(self.J > 0, f"J must be > 0, got {self.J}")
        _check(self.grow_by > 0, f"grow_by must be > 0, got {self.grow_by}")
        _check(self.grow_rule in GROW_RULES, f"grow_rule must be one of {', '.join(GROW_RULES)}, got {self.grow_rule!r}")
        _check(self.grow_ratio >= 1, f"grow_ratio must be >= 1, got {self.grow_ratio}")
        _check(self.kappa > 0 and self.nu > 0 and (self.lam is None or self.lam >= 0),
               f"need kappa > 0, nu > 0, lam >= 0; got {self.kappa}, {self.nu}, {self.lam}")
        _check(self.lr > 0 and self.finetune_lr > 0 and self.scratch_lr > 0, "learning rates must be > 0")
        _check(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        _check(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        _check(self.finetune_epochs >= 0, f"finetune_epochs must be >= 0, got {self.finetune_epochs}")
        _check(self.budget_params is None or self.budget_params > 0,
               f"budget_params must be > 0, got {self.budget_params}")
        _check(self.budget_macs is None or self.budget_macs > 0,
               f"budget_macs must be > 0, got {self.budget_macs}")
        _check(self.on_budget in ON_BUDGET, f"on_budget must be one of {', '.join(ON_BUDGET)}, got {self.on_budget!r}")
        _check(self.ties in TIES, f"ties must be one of {', '.join(TIES)}, got {self.ties!r}")
        _check(self.support in ("carry", "reset"), f"support must be carry or reset, got {self.support!r}")
        _check(self.max_grow_epochs > 0, f"max_grow_epochs must be > 0, got {self.max_grow_epochs}")
        _check(self.scratch_epochs is None or self.scratch_epochs > 0,
               f"scratch_epochs must be > 0, got {self.scratch_epochs}")
        return self

    def optimizer_kw(self, dataset: str) -> dict:
        lam = self.lam if self.lam is not None else default_lam(dataset)
        return {"kappa": self.kappa, "nu": self.nu, "lam": lam, "momentum": self.momentum,
                "weight_decay": self.weight_decay}


class AdeNeL(Grower):
    """The policy on the read-only view: ``view.epoch``, ``view.model``, ``view.optimizer_state``."""
    name = "adenel"

    def __init__(self, cfg: AdeNeLConfig):
        super().__init__()
        self.cfg = cfg.validate()
        self.state = {"rounds": [], "stopped_by": None, "done_epoch": None}

    def decide(self, view) -> Decision:
        cfg, st = self.cfg, self.state
        if self.stop_requested:
            return self._finish(view.epoch, "request")
        if view.epoch % cfg.J:
            return Decision(done=self._limit(view.epoch))
        model = view.model
        groups = candidate_groups(model, cfg.ties)
        gamma = {n: s["gamma"] for n, s in view.optimizer_state.items() if "gamma" in s}
        if not gamma:
            raise GrowkitError("AdeNeL needs the lbi optimizer (no Gamma in the optimizer state)")
        caps = capacities(model, gamma, groups)
        before = widths(model, groups)
        amounts = {g: grow_amount(w, cfg.grow_rule, cfg.grow_by, cfg.grow_ratio) for g, w in before.items()}
        plan = plan_round(caps, cfg.tau, amounts, budget_check(model, cfg.budget_params, cfg.budget_macs),
                          cfg.on_budget)
        if not st["rounds"] and caps and not any(caps.values()):
            st["note"] = (f"no filter entered Gamma's support in the first {cfg.J} epochs, so nothing grew: lambda "
                          f"is too large for this dataset's steps per epoch (try a smaller --lam or a larger --J)")
        after = {g: w + plan.grow.get(g, 0) for g, w in before.items()}
        record = {"epoch": view.epoch, "capacity": caps, "grow": plan.grow, "wanted": plan.wanted,
                  "blocked": plan.blocked, "widths_before": before, "widths_after": after,
                  "stopped_by": plan.stopped_by}
        st["rounds"].append(record)
        self._record_first_layer(model, groups, gamma, view.epoch)
        info = {"capacity": caps, "grow": plan.grow, "widths_after": after}
        if plan.stopped_by is not None:
            st["stopped_by"], st["done_epoch"] = plan.stopped_by, view.epoch
            return Decision(plans=widen_plans(plan.grow), done=True, info={**info, "stopped_by": plan.stopped_by})
        if self._limit(view.epoch):
            return self._finish(view.epoch, "max_grow_epochs", widen_plans(plan.grow), info)
        return Decision(plans=widen_plans(plan.grow), info=info)

    def _record_first_layer(self, model, groups: list[str], gamma: dict, epoch: int) -> None:
        """The first conv layer's filters and their support at this check (the paper's Figure 4), kept
        only while small (at most 4096 weights) so the record stays readable JSON."""
        if not groups:
            return
        name = model.channel_groups()[groups[0]].producers[0] + ".weight"
        w = model.get_parameter(name).detach()
        if w.numel() > 4096 or name not in gamma:
            return
        self.state.setdefault("first_layer", []).append(
            {"epoch": epoch, "name": name, "weight": w.cpu().tolist(),
             "support": filter_support(gamma[name]).cpu().tolist()})

    def _limit(self, epoch: int) -> bool:
        if epoch >= self.cfg.max_grow_epochs and self.state["stopped_by"] is None:
            self.state["stopped_by"], self.state["done_epoch"] = "max_grow_epochs", epoch
            return True
        return False

    def _finish(self, epoch: int, why: str, plans=(), info=None) -> Decision:
        self.state["stopped_by"], self.state["done_epoch"] = why, epoch
        return Decision(plans=list(plans), done=True, info={**(info or {}), "stopped_by": why})

    def state_dict(self) -> dict:
        return {"state": self.state}

    def load_state_dict(self, state: dict) -> None:
        self.state = state["state"]


class ReplayGrowth(Grower):
    """"Train scratch - grow" (the paper's Table 4): the same growth schedule (which groups gained
    how many filters, after which epoch) replayed with plain SGD, then the same fine-tuning."""
    name = "adenel-replay"

    def __init__(self, rounds: list[dict], done_epoch: int):
        super().__init__()
        self.rounds = {int(r["epoch"]): dict(r["grow"]) for r in rounds if r["grow"]}
        self.done_epoch = int(done_epoch)
        _check(self.done_epoch > 0, f"replay needs the epoch growth stopped at, got {done_epoch}")

    def decide(self, view) -> Decision:
        grow = self.rounds.get(view.epoch, {})
        return Decision(plans=widen_plans(grow), done=view.epoch >= self.done_epoch, info={"grow": grow})

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


# ----------------------------------------------------------------------------- the result summary

def full_size_net(model_name: str, spec: dict):
    """The backbone at its standard widths (the paper's "Baseline" row), on the meta device; the spec's other
    keys (e.g. VGG's ``hidden``, a ResNet's depths) are kept."""
    from ...models import create
    rest = {k: v for k, v in spec.items() if k not in ("name", "widths", "stem_width", "depths")}
    with torch.device("meta"):
        return create(model_name, **rest)


def summarize(res: dict, grower: AdeNeL, model_name: str, n_train: int, ref_epochs: int | None = None) -> dict:
    """AdeNeL's result fields from the trainer's result ``res``: widths per channel group, growth events
    (capacity s per layer and widths after each round), why growing stopped, and the training cost
    relative to two references trained for ``ref_epochs`` (default: this run's epochs) on the same
    ``n_train`` images per epoch: the full-size net (Table 1) and the found net from scratch (Table 4)."""
    from ...models import count_macs, from_spec
    with torch.device("meta"):
        found = from_spec(res["spec"])
    full = full_size_net(model_name, res["spec"])
    epochs = ref_epochs or res["epochs"]
    cost = {
        "vs_full": train_cost(res["train_macs"], count_macs(full, training=True), n_train, epochs,
                              f"full-size {model_name} ({full.arch}) trained {epochs} epochs"),
        "vs_found_scratch": train_cost(res["train_macs"], count_macs(found, training=True), n_train, epochs,
                                       f"the found net trained from scratch {epochs} epochs"),
    }
    st = grower.state
    measured = {e["epoch"]: e["curvature"] for e in res.get("growth_events", []) if "curvature" in e}
    events = [{"epoch": r["epoch"], "capacity": r["capacity"], "grow": r["grow"], "widths_after": r["widths_after"],
               **({"curvature": measured[r["epoch"]]} if r["epoch"] in measured else {})}  # curvature_every > 0
              for r in st["rounds"]]
    return {"widths": widths(found), "candidates": candidate_groups(found, grower.cfg.ties),
            "params": res["params"], "macs": res["macs"], "train_macs": res["train_macs"],
            "train_cost": cost, "full_params": sum(p.numel() for p in full.parameters()),
            "full_macs": count_macs(full), "growth_events": events, "stopped_by": st["stopped_by"],
            "grow_epochs": st["done_epoch"], "test_acc": res["test_acc"], "val_acc": res["val_acc"],
            "first_layer": st.get("first_layer", []), **({"note": st["note"]} if st.get("note") else {})}
