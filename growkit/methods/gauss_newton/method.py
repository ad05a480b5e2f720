"""The ``gauss-newton`` method: options, how they become a grower and phases, its result fields, and its
registration.

``growkit gauss-newton --model VGG19 --seed-width 16 --dataset digits --lambda-p 3e-7 --phases 30
--out DIR`` searches with Algorithm 1 (:mod:`growkit.methods.gauss_newton.grower`), then trains the found
architecture from scratch in ``DIR/scratch`` (a run directory of its own). ``--phases`` counts model and
morphism phases together, as the paper does ("a total of 30 training and growing phases": 15 of each,
600 epochs at 20 per phase). Without ``--seed-width`` the seed is the paper's: 16 channels per VGG layer,
32 per MobileNetV1 layer. The search uses the paper's model optimiser whatever the train flags say: SGD
with Nesterov momentum 0.9, weight decay 1e-4, batch 64, the train config's learning rate (0.1),
divided by 10 after each epoch of ``--lr-drops`` (the paper's 300 and 450; a drop at or beyond the end of
a shorter search never happens); the from-scratch retraining uses the train config's schedule.
``search_wall_s`` (the paper's "GPU time") is the wall time of every epoch of the search, model and
morphism phases alike.

Run directories written before ``phases`` counted single phases hold that version's fields and no
``lr_drops``: where such a config is read (:meth:`GaussNewtonConfig.from_dict`) its ``phases`` (then pairs)
is doubled and its drops are none (its learning rate was constant), so it resumes as it ran.
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ...engine.config import Record, TrainConfig, _check
from ...engine.flags import opt
from ...engine.schedule import Phase
from ...errors import GrowkitError
from ...models import create
from ...runs import lifecycle
from ...runs.registry import Method, register
from . import estimate as gn
from .grower import GaussNewton


def _drops(text: str) -> list[int]:
    """'300,450' -> [300, 450]; 'none' or '' -> []."""
    if text.strip().lower() in ("", "none"):
        return []
    try:
        return [int(t) for t in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated epochs or none, got {text!r}") from None


# The fields of a config written when ``phases`` counted (model phase, morphism phase) pairs.
PAIRS_FIELDS = frozenset({"lambda_p", "phases", "phase_epochs", "top_fraction", "theta_lr", "theta_init", "loss_ref",
                          "scratch", "scratch_epochs"})


@dataclass
class GaussNewtonConfig(Record):
    """Gauss-Newton morphisms (Algorithm 1). The seed net is ``TrainConfig.model`` / ``widths``."""
    lambda_p: float = opt(3e-7, flag="--lambda-p", help="loss-resource tradeoff: penalty per parameter")
    phases: int = opt(30, help="model and morphism phases in all, alternating (even; the paper's 30 = 15 + 15)")
    phase_epochs: int = opt(20, help="epochs per phase, n_phase")
    top_fraction: float = opt(0.3, help="most channels of a layer changed per round, as a share")
    theta_lr: float = opt(1e-2, help="Adam learning rate of the split directions theta")
    theta_init: float = opt(1e-2, help="initial theta: this times rms(w_in) times N(0, 1)")
    loss_ref: str = opt("batch", choices=list(gn.LOSS_REFS),
                        help="L of the Gauss-Newton term: the batch-mean loss, as eq. (1) reads (default), or "
                             "each sample's own loss (the appendix's least-squares argument: the L whose "
                             "gradient is g); either is floored where float32 rounds a loss to 0")
    lr_drops: list[int] = opt(default_factory=lambda: [300, 450], parse=lambda t: _drops(t),
                              help="search epochs after which the model learning rate drops 10x, e.g. 300,450 "
                                   "(the paper's), or none")
    scratch: bool = opt(True, flag="--no-scratch", help="do not retrain the found net from scratch")
    scratch_epochs: int | None = opt(None, help="epochs of the retraining (default: the model phases' epochs, "
                                                 "phases / 2 x phase-epochs)")

    @classmethod
    def from_dict(cls, d: dict):
        """Also reads configs written when ``phases`` counted (model, morphism) pairs: such a config holds
        exactly that version's fields (:data:`PAIRS_FIELDS`, every one, as config.json stores them) and no
        ``lr_drops`` (the learning rate was constant), so its ``phases`` is doubled and its drops are none.
        A partial dict of options is read as today's."""
        if isinstance(d, dict) and set(d) == PAIRS_FIELDS and isinstance(d["phases"], int) \
                and not isinstance(d["phases"], bool):
            d = {**d, "phases": 2 * d["phases"], "lr_drops": []}
        return super().from_dict(d)

    def validate(self) -> "GaussNewtonConfig":
        self.check_fields()
        _check(self.lambda_p >= 0, f"lambda_p must be >= 0, got {self.lambda_p}")
        _check(self.phases >= 2 and self.phases % 2 == 0,
               f"phases counts model and morphism phases together and must be even and >= 2, got {self.phases}")
        _check(self.phase_epochs > 0, f"phase_epochs must be > 0, got {self.phase_epochs}")
        _check(all(d > 0 for d in self.lr_drops) and list(self.lr_drops) == sorted(set(self.lr_drops)),
               f"lr_drops must be increasing epochs > 0, got {self.lr_drops}")
        _check(0 < self.top_fraction < 1, f"top_fraction must be in (0, 1), got {self.top_fraction}")
        _check(self.theta_lr > 0 and self.theta_init > 0, "theta_lr and theta_init must be > 0")
        _check(self.loss_ref in gn.LOSS_REFS, f"loss_ref must be one of {gn.LOSS_REFS}, got {self.loss_ref!r}")
        _check(self.scratch_epochs is None or self.scratch_epochs > 0,
               f"scratch_epochs must be > 0, got {self.scratch_epochs}")
        return self


SEED_WIDTH = {"VGG": 16, "MOB": 32}  # the paper's uniform seeds: VGG-19 with 16 channels, MobileNetV1 with 32


def _check_seed(train: TrainConfig) -> None:
    """The seed must have splittable conv layers (VGG, MobileNetV1, LeNet5): said before any file is written."""
    spec = dict(train.model_kw)
    if train.widths is not None:
        spec["widths"] = train.widths
    if train.depths is not None:
        spec["depths"] = train.depths
    if not gn.sites(create(train.model, **spec)):
        raise GrowkitError(f"{train.model} has no conv layer whose channels can be split or pruned one by one "
                           "(a single conv producer and consumer per channel group, as in VGG, MobileNetV1, LeNet5)")


def build(train: TrainConfig, cfg: GaussNewtonConfig):
    cfg.validate()
    _check_seed(train)
    epochs = cfg.phase_epochs * cfg.phases
    if train.widths is None and train.model.upper().startswith(("VGG", "MOBILENET")):
        train = dataclasses.replace(train, widths=SEED_WIDTH[train.model.upper()[:3]])  # the paper's seeds
    train = dataclasses.replace(train, epochs=epochs, batch_size=64, optimizer="sgd", optimizer_kw={},
                                momentum=0.9, nesterov=True, weight_decay=1e-4)
    grower = GaussNewton(cfg.lambda_p, cfg.phases, cfg.phase_epochs, top_fraction=cfg.top_fraction,
                         theta_lr=cfg.theta_lr, theta_init=cfg.theta_init, loss_ref=cfg.loss_ref, seed=train.seed)
    drops = [d for d in cfg.lr_drops if d < epochs]
    # staircase: the rate at whole epoch e is lr * 0.1^#{d : e >= int(m * epochs)}; m = (d + 0.5) / epochs
    # makes int(m * epochs) exactly d whatever the rounding
    phase = (Phase("search", train.lr, "staircase", epochs, milestones=tuple((d + 0.5) / epochs for d in drops),
                   gamma=0.1, grows=True) if drops else Phase("search", train.lr, "constant", epochs, grows=True))
    return grower, [phase], train


def scratch_config(train: TrainConfig, cfg: GaussNewtonConfig, spec: dict) -> TrainConfig:
    """The found widths trained from scratch with the paper's optimiser and the train config's schedule."""
    return dataclasses.replace(train, widths=list(spec["widths"]),
                               epochs=cfg.scratch_epochs or cfg.phases // 2 * cfg.phase_epochs, snapshot_every=0)


def summarize(result: dict, trainer, cfg: GaussNewtonConfig, out: Path) -> dict:
    g = trainer.grower
    scores = g.last_scores or {}
    extra = {"search_wall_s": result["wall_s"], "rounds": list(g.rounds),
             "found_widths": result["spec"].get("widths"),
             "gauss_newton_scores": {k: ({n: [float(x) for x in v] for n, v in scores[k].items()} if k != "chosen"
                                         else scores[k]) for k in scores}}
    if cfg.scratch:
        sdir = Path(out) / "scratch"
        s = lifecycle.nested(sdir, lambda: lifecycle.train(scratch_config(trainer.cfg, cfg, result["spec"]), sdir,
                                                 data=trainer.data, callbacks=trainer.callbacks), trainer.callbacks)
        extra.update(scratch_test_acc=s["test_acc"], scratch_val_acc=s["val_acc"], scratch_params=s["params"],
                     scratch_epochs=s["epochs"], scratch_wall_s=s["wall_s"])
    return extra


register(Method("gauss-newton", "grow the width of a VGG / MobileNet seed with Gauss-Newton split and prune "
                "morphisms (Algorithm 1), then retrain the found net from scratch", build,
                GaussNewtonConfig, summarize=summarize,
                train_flags={"widths": {"flag": "--seed-width",
                                        "help": "seed width: N (uniform) or N-N-... (default: VGG 16, MobileNetV1 32)"},
                             "epochs": None, "batch_size": None, "optimizer": None, "optimizer_kw": None,
                             "momentum": None, "nesterov": None, "weight_decay": None}))
