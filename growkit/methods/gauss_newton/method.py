"""The ``gauss-newton`` method: options, how they become a grower and phases, its result fields, and its
registration.

``growkit gauss-newton --model VGG19 --seed-width 16 --dataset digits --lambda-p 3e-7 --phases 30
--out DIR`` searches with Algorithm 1 (:mod:`growkit.methods.gauss_newton.grower`), then trains the found
architecture from scratch in ``DIR/scratch`` (a run directory of its own). Without ``--seed-width``
the seed is the paper's: 16 channels per VGG layer, 32 per MobileNetV1 layer. The search uses the
paper's model optimiser whatever the train flags say: SGD with Nesterov momentum 0.9, weight
decay 1e-4, batch 64, the train config's learning rate (0.1), constant during the search (the
paper's decays at epochs 300 and 450 belong to its 1200-epoch CIFAR schedule); the from-scratch
retraining uses the train config's schedule. ``search_wall_s`` (the paper's "GPU time") is the
wall time of every epoch of the search, model and morphism phases alike.
"""
from __future__ import annotations

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


@dataclass
class GaussNewtonConfig(Record):
    """Gauss-Newton morphisms (Algorithm 1). The seed net is ``TrainConfig.model`` / ``widths``."""
    lambda_p: float = opt(3e-7, flag="--lambda-p", help="loss-resource tradeoff: penalty per parameter")
    phases: int = opt(30, help="pairs of (model phase, morphism phase)")
    phase_epochs: int = opt(20, help="epochs per phase, n_phase")
    top_fraction: float = opt(0.3, help="most channels of a layer changed per round, as a share")
    theta_lr: float = opt(1e-2, help="Adam learning rate of the split directions theta")
    theta_init: float = opt(1e-2, help="initial theta: this times rms(w_in) times N(0, 1)")
    loss_ref: str = opt("sample", choices=list(gn.LOSS_REFS),
                        help="L of the Gauss-Newton term: each sample's loss, or the batch mean")
    scratch: bool = opt(True, flag="--no-scratch", help="do not retrain the found net from scratch")
    scratch_epochs: int | None = opt(None, help="epochs of the retraining (default: phases x phase-epochs)")

    def validate(self) -> "GaussNewtonConfig":
        self.check_fields()
        _check(self.lambda_p >= 0, f"lambda_p must be >= 0, got {self.lambda_p}")
        _check(self.phases > 0 and self.phase_epochs > 0,
               f"phases and phase_epochs must be > 0, got {self.phases}, {self.phase_epochs}")
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
    epochs = 2 * cfg.phase_epochs * cfg.phases
    if train.widths is None and train.model.upper().startswith(("VGG", "MOBILENET")):
        train = dataclasses.replace(train, widths=SEED_WIDTH[train.model.upper()[:3]])  # the paper's seeds
    train = dataclasses.replace(train, epochs=epochs, batch_size=64, optimizer="sgd", optimizer_kw={},
                                momentum=0.9, nesterov=True, weight_decay=1e-4)
    grower = GaussNewton(cfg.lambda_p, cfg.phases, cfg.phase_epochs, top_fraction=cfg.top_fraction,
                         theta_lr=cfg.theta_lr, theta_init=cfg.theta_init, loss_ref=cfg.loss_ref, seed=train.seed)
    return grower, [Phase("search", train.lr, "constant", epochs, grows=True)], train


def scratch_config(train: TrainConfig, cfg: GaussNewtonConfig, spec: dict) -> TrainConfig:
    """The found widths trained from scratch with the paper's optimiser and the train config's schedule."""
    return dataclasses.replace(train, widths=list(spec["widths"]),
                               epochs=cfg.scratch_epochs or cfg.phases * cfg.phase_epochs, snapshot_every=0)


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
