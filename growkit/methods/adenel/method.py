"""The ``adenel`` method: a thin seed net grown in width by LBI's support set, under budgets, then
fine-tuned; with ``scratch`` also the paper's two baselines (Table 4):

* "train scratch - base": the found net trained from scratch with the baselines' SGD (rate
  ``scratch_lr``, x0.1 at each third, momentum 0.9, weight decay 5e-4, batch as the run), for
  ``scratch_epochs`` (default: as many epochs as the AdeNeL run took);
* "train scratch - grow": the same growth schedule (which layers gained how many filters, after which
  epoch) replayed with that SGD at a constant ``scratch_lr`` (the ``adenel-replay`` method), then the
  same number of fine-tuning epochs from ``scratch_lr * finetune_lr / lr`` (the ratio AdeNeL uses).

Both land in nested run directories (``scratch_base/``, ``scratch_grow/``) that resume like any run.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ...data.catalog import dataset_info
from ...engine.config import Record, TrainConfig
from ...engine.schedule import Phase
from ...errors import GrowkitError
from ...models import count_macs, create, from_spec
from ...runs import lifecycle
from ...runs.registry import Method, register
from . import prune
from .grower import AdeNeL, AdeNeLConfig, ReplayGrowth, summarize as adenel_summary
from .lbi import classifier_name
from .policy import planned_stats, train_cost, widths, within

FINETUNE_MILESTONES = (1 / 3, 2 / 3)  # DessiLBI's fine-tuning and the paper's baselines decay at thirds


def seed_widths(model: str, width: int):
    """Every conv layer at ``width`` filters; LeNet-5's fully connected layers stay at 120 and 84."""
    base = model.split("-")[0]
    if base == "LeNet5":
        return [width, width, 120, 84]
    if base in ("ResNet18", "ResNet20", "ResNet32") or base.startswith("VGG") or base == "MobileNetV1":
        return width
    raise GrowkitError(f"adenel grows LeNet5, VGG16/19, ResNet18/20/32 or MobileNetV1, not {model!r}")


def seed_model(train: TrainConfig, width: int):
    """The seed net on the meta device (no memory): shapes for budgets and the classifier's name."""
    info = dataset_info(train.dataset)
    with torch.device("meta"):
        return create(train.model, **{**train.model_kw, "widths": seed_widths(train.model, width)},
                      in_channels=info.channels, num_classes=info.num_classes, image_size=info.image_size)


def build(train: TrainConfig, cfg: AdeNeLConfig):
    """Grower, phases and the train config of an AdeNeL run; a budget below the seed is a GrowkitError."""
    cfg = cfg.validate()
    seed = seed_model(train, cfg.seed_width)
    stats = planned_stats(seed, {})
    if not within(stats, cfg.budget_params, cfg.budget_macs):
        raise GrowkitError(f"the budget (params {cfg.budget_params}, MACs {cfg.budget_macs}) is below the seed "
                           f"net {seed.arch} ({stats['params']:,} params, {stats['macs']:,} MACs)")
    kw = {**cfg.optimizer_kw(train.dataset), "exclude": [classifier_name(seed)],
          "reset_support": cfg.support == "reset"}
    if train.optimizer_kw and train.optimizer_kw != kw:  # a resumed run carries exactly the kw set here
        raise GrowkitError("adenel sets its LBI optimizer from its own options (--kappa, --nu, --lam, --momentum, "
                           "--weight-decay); optimizer_kw is not used: leave it out")
    train = dataclasses.replace(train, widths=seed_widths(train.model, cfg.seed_width), optimizer="lbi",
                                optimizer_kw=kw, lr=cfg.lr, momentum=cfg.momentum, nesterov=False,
                                weight_decay=cfg.weight_decay, decay_bn_bias=False,
                                epochs=cfg.max_grow_epochs + max(cfg.finetune_epochs, 1))
    phases = [Phase("grow", cfg.lr, "constant", None, max_epochs=cfg.max_grow_epochs, grows=True),
              Phase("finetune", cfg.finetune_lr, "staircase", cfg.finetune_epochs,
                    milestones=FINETUNE_MILESTONES, gamma=0.1)]
    return AdeNeL(cfg), phases, train


def _baseline_train(trainer_cfg: TrainConfig, cfg: AdeNeLConfig, **kw) -> TrainConfig:
    """The paper's baseline SGD (momentum 0.9, weight decay 5e-4 on everything, staircase at thirds)."""
    return dataclasses.replace(trainer_cfg, optimizer="sgd", optimizer_kw={}, lr=cfg.scratch_lr, momentum=0.9,
                               nesterov=False, weight_decay=5e-4, decay_bn_bias=True, schedule="staircase",
                               milestones=list(FINETUNE_MILESTONES), gamma=0.1, **kw)


def found_net(spec: dict) -> dict:
    """TrainConfig fields that rebuild the net of ``spec`` (a ResNet20 is a Basic3ResNet-3-3-3 spec)."""
    rest = {k: v for k, v in spec.items() if k not in ("name", "depths", "widths", "in_channels", "num_classes",
                                                       "image_size")}
    return {"model": spec["name"], "depths": spec.get("depths"), "widths": spec.get("widths"), "model_kw": rest}


def _brief(res: dict, n_train: int, ref_per_image: float, epochs: int) -> dict:
    return {"test_acc": res["test_acc"], "val_acc": res["val_acc"], "params": res["params"], "macs": res["macs"],
            "epochs": res["epochs"], "train_macs": res["train_macs"],
            "train_cost": train_cost(res["train_macs"], ref_per_image, n_train, epochs,
                                     f"the found net trained from scratch {epochs} epochs")}


def summarize(res: dict, trainer, cfg: AdeNeLConfig, out: Path) -> dict:
    model_name = trainer.cfg.model
    n_train = trainer.data.size("train")
    epochs = cfg.scratch_epochs or res["epochs"]
    extra = adenel_summary(res, trainer.grower, model_name, n_train, epochs)
    if not cfg.scratch:
        return extra
    with torch.device("meta"):
        found_per_image = count_macs(from_spec(res["spec"]), training=True)
    base_cfg = _baseline_train(trainer.cfg, cfg, epochs=epochs, **found_net(res["spec"]))
    base = lifecycle.nested(out / "scratch_base",
                            lambda: lifecycle.run("train", base_cfg, None, out / "scratch_base", data=trainer.data,
                                                  callbacks=trainer.callbacks), trainer.callbacks)
    st = trainer.grower.state
    rep = ReplayConfig(rounds=[{"epoch": r["epoch"], "grow": r["grow"]} for r in st["rounds"]],
                       done_epoch=st["done_epoch"] or res["epochs"], seed_width=cfg.seed_width,
                       finetune_epochs=cfg.finetune_epochs,
                       finetune_lr=cfg.scratch_lr * cfg.finetune_lr / cfg.lr)
    grow_cfg = _baseline_train(trainer.cfg, cfg)
    grow = lifecycle.nested(out / "scratch_grow",
                            lambda: lifecycle.run("adenel-replay", grow_cfg, rep, out / "scratch_grow",
                                                  data=trainer.data, callbacks=trainer.callbacks), trainer.callbacks)
    extra["baselines"] = {"scratch_base": _brief(base, n_train, found_per_image, epochs),
                          "scratch_grow": _brief(grow, n_train, found_per_image, epochs)}
    return extra


@dataclass
class ReplayConfig(Record):
    """``adenel-replay``: an AdeNeL growth schedule replayed with the run's (SGD) optimizer."""
    rounds: list = field(default_factory=list, metadata={"cli": False})
    done_epoch: int = field(default=0, metadata={"cli": False})
    seed_width: int = field(default=4, metadata={"help": "filters per conv layer of the seed net"})
    finetune_epochs: int = field(default=40, metadata={"help": "fine-tuning epochs after the replay",
                                                       "flag": "--finetune"})
    finetune_lr: float = field(default=0.01, metadata={"help": "fine-tuning rate, x0.1 at 1/3 and 2/3"})

    def validate(self) -> "ReplayConfig":
        self.check_fields()
        if self.done_epoch <= 0 or not isinstance(self.rounds, list):
            raise GrowkitError("adenel-replay needs the growth rounds and the epoch growth stopped at "
                               "(from an adenel run's result.json); it is started by `adenel --scratch`")
        if self.finetune_epochs < 0 or self.finetune_lr <= 0 or self.seed_width <= 0:
            raise GrowkitError("adenel-replay needs finetune_epochs >= 0, finetune_lr > 0, seed_width > 0")
        seen = set()
        for i, r in enumerate(self.rounds):  # as an adenel run records them: {"epoch": e, "grow": {group: n}}
            where = f"adenel-replay rounds[{i}]"
            if not isinstance(r, dict) or set(r) != {"epoch", "grow"}:
                raise GrowkitError(f"{where} must be an object with 'epoch' and 'grow', got {str(r)[:80]}")
            e, grow = r["epoch"], r["grow"]
            if isinstance(e, bool) or not isinstance(e, int) or not 1 <= e <= self.done_epoch or e in seen:
                raise GrowkitError(f"{where}: epoch must be an integer in 1..{self.done_epoch} (done_epoch), once "
                                   f"each, got {e!r}")
            seen.add(e)
            if not isinstance(grow, dict) or not all(
                    isinstance(g, str) and isinstance(n, int) and not isinstance(n, bool) and n > 0
                    for g, n in grow.items()):
                raise GrowkitError(f"{where}: grow must map channel groups to positive filter counts, got "
                                   f"{str(grow)[:80]}")
        return self


def _check_replay_fits(train: TrainConfig, cfg: ReplayConfig) -> None:
    """The groups the rounds grow exist in the seed net, and the net they grow to fits the device (a bound
    from the producers' fan-in first, so an absurd count is refused before any shape is made)."""
    from ...engine.config import BYTES_PER_PARAM, _memory_bytes
    net = seed_model(train, cfg.seed_width)
    groups = net.channel_groups()
    total: dict[str, int] = {}
    for r in cfg.rounds:
        for g, n in r["grow"].items():
            if g not in groups:
                raise GrowkitError(f"adenel-replay: the round of epoch {r['epoch']} grows {g!r}, not a channel group "
                                   f"of {net.arch} ({', '.join(groups)})")
            total[g] = total.get(g, 0) + n
    mem, where = _memory_bytes(train.device)
    fan_in = {g: sum(net.get_submodule(m).weight[0].numel() for m in groups[g].producers) for g in total}
    low = sum(n * fan_in[g] for g, n in total.items())  # parameters the new filters hold at least
    if low * BYTES_PER_PARAM <= mem:
        low = planned_stats(net, total)["params"]  # the grown net, on the meta device
    if low * BYTES_PER_PARAM > mem:
        raise GrowkitError(f"adenel-replay's rounds grow {net.arch} to at least {low:,} parameters: about "
                           f"{low * BYTES_PER_PARAM / 1e9:,.1f} GB to train, more than the {mem / 1e9:,.1f} GB of "
                           f"{where}")


def build_replay(train: TrainConfig, cfg: ReplayConfig):
    cfg = cfg.validate()
    _check_replay_fits(train, cfg)
    train = dataclasses.replace(train, widths=seed_widths(train.model, cfg.seed_width),
                                epochs=cfg.done_epoch + max(cfg.finetune_epochs, 1))
    phases = [Phase("grow", train.lr, "constant", cfg.done_epoch, grows=True),
              Phase("finetune", cfg.finetune_lr, "staircase", cfg.finetune_epochs,
                    milestones=FINETUNE_MILESTONES, gamma=0.1)]
    return ReplayGrowth(cfg.rounds, cfg.done_epoch), phases, train


def _prune_summary(res: dict, trainer, cfg, out: Path) -> dict:
    with torch.device("meta"):
        net = from_spec(res["spec"])
    st = trainer.grower.state
    return {"widths": widths(net), "pruned_to": st["pruned_to"], "pruned_channels": st["pruned_channels"],
            "widths_before": st["widths_before"], "prune_epoch": trainer.grower.at}


# AdeNeL sets the optimizer, rates and widths itself: those train flags would only conflict
_OWN = {k: None for k in ("widths", "lr", "momentum", "nesterov", "weight_decay", "optimizer", "optimizer_kw",
                          "epochs", "schedule", "milestones", "gamma")}
register(Method("adenel", "grow conv widths from a thin seed by the support set of an inverse scale space, "
                "under budgets (AdeNeL)", build, AdeNeLConfig, summarize=summarize, train_flags=_OWN))
register(Method("adenel-replay", "replay an AdeNeL growth schedule with SGD (started by adenel --scratch)",
                build_replay, ReplayConfig,
                train_flags={k: None for k in ("widths", "epochs", "schedule", "milestones", "gamma")}))
register(Method("l1-prune", "train a full-size net, prune its conv channels by filter L1 norm, fine-tune, "
                "on the schedule `train` runs with the same flags", prune.build, prune.L1PruneConfig,
                summarize=_prune_summary))
