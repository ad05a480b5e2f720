"""Gauss-Newton morphisms (Lawton, Galstyan, Ver Steeg; Algorithm 1) as a grower.

The search alternates two kinds of phases of ``n_phase`` epochs each, ``phases`` of them in all, counted as
the paper counts them (its 30 phases are 15 model phases and 15 morphism phases, 600 epochs; Figure 2 shows
the net after the 15th growth phase):

* **model phase**: the trainer trains the net as usual (SGD, Nesterov 0.9, weight decay 1e-4,
  batch 64, lr 0.1: set by the method's build);
* **morphism phase**: the net is frozen and every epoch learns the split directions theta of
  every channel of every eligible conv layer with Adam (lr 1e-2) on the Gauss-Newton estimate
  (:mod:`growkit.methods.gauss_newton.estimate`), keeping an exponential moving average of each morphism's
  estimated loss change (weight ``B / (2N)`` per mini-batch). The grower runs these epochs
  itself through :meth:`GaussNewton.replaces_epoch` (the trainer then does not train the model
  that epoch, but records, checkpoints and times it like any other), so a kill inside a
  morphism phase resumes exactly: theta, the averages and Adam's moments are grower state.

At the end of a morphism phase every channel has two candidates, split (adds ``cost`` parameters)
and prune (removes them), scored ``-dL - lambda_p * dparams``. Per channel the better candidate
is kept (one morphism per channel); per layer the best ``top_fraction`` of channels whose score
is positive are applied at once, as one :class:`~growkit.engine.surgery.SplitChannels` and one
:class:`~growkit.engine.surgery.PruneChannels` per layer (splits first: their copies go to the end, so
the prune indices stay valid).

Choices the paper leaves open (also in docs/gauss_newton.md):

* ``top_fraction`` of a layer is ``max(1, floor(top_fraction * width))`` channels, so a narrow
  layer can still change;
* theta restarts small and random (``theta_init * rms(w_in) * N(0, 1)``) at every morphism
  phase, with fresh averages and Adam moments: the net changed since the last phase;
* the average starts at the first mini-batch's value (no bias towards 0);
* a prune is the actual removal of the channel (with BatchNorm, theta = w_in is not one), and
  nothing is learned for it;
* the estimate uses the batch-mean loss as the ``L`` of the Gauss-Newton term, as eq. (1) reads
  (``loss_ref="sample"``, each sample's own loss, is the appendix's least-squares argument), guarded
  against a zero loss (:func:`~growkit.methods.gauss_newton.estimate.reference_loss`), per-sample
  cross-entropy whatever the run's objective, and runs in fp32 without autocast;
* a non-finite estimate, theta gradient or score stops the run with a one-line error naming the layer
  and the phase (:class:`~growkit.methods.gauss_newton.estimate.NonFiniteEstimate`, exit 1, the last
  good checkpoint kept), never "no decision";
* the morphism-learning epochs use the same augmented mini-batches as training;
* they read batches through ``view.batches`` and run their own passes instead of ``view.probe``:
  the estimate needs per-sample losses and a pre-hook on each consumer (the probe offers the
  batch-mean objective and forward hooks). Like the probe they leave the net as it was: eval mode
  for the pass and the mode restored, gradients by ``torch.autograd.grad`` (no ``.grad`` touched).
"""
from __future__ import annotations

import math

import torch

from ...engine.surgery import PruneChannels, SplitChannels
from ...errors import GrowkitError
from ...growers.base import Decision, Grower
from . import estimate as gn


def select(split_score: dict[str, torch.Tensor], prune_score: dict[str, torch.Tensor],
           top_fraction: float) -> dict[str, tuple[list[int], list[int]]]:
    """Which channels to split and which to prune, per layer: per channel the better of its two
    scores, only positive ones, the best ``max(1, floor(top_fraction * width))`` of the layer.
    Ties go to the split, then to the lower channel index (deterministic)."""
    out = {}
    for g, s in split_score.items():
        p = prune_score[g]
        width = s.shape[0]
        best = torch.maximum(s, p)
        is_split = s >= p
        cap = max(1, math.floor(top_fraction * width))
        order = sorted(range(width), key=lambda k: (-float(best[k]), k))
        chosen = [k for k in order if float(best[k]) > 0][:cap]
        splits = sorted(k for k in chosen if bool(is_split[k]))
        prunes = sorted(k for k in chosen if not bool(is_split[k]))
        if len(prunes) >= width:  # never empty a layer (cannot happen with top_fraction < 1)
            prunes = prunes[:width - 1]
        out[g] = (splits, prunes)
    return out


def plans_for(model, chosen: dict[str, tuple[list[int], list[int]]], thetas: dict[str, torch.Tensor]) -> list:
    """Surgery plans applying ``chosen``: per layer the splits (with their learned theta), then the prunes.

    Layers go from the output towards the input: a layer's theta was learned against the input
    channels its producer had before the round, so its split is applied before the layer below
    changes those inputs; the lower layer's edit then moves (prune) or halves onto both halves
    (split) the input columns of every filter above, the new ones included, as it does any consumer."""
    plans = []
    sites = gn.sites(model)
    for g in [g for g in reversed(list(sites)) if g in chosen]:
        splits, prunes = chosen[g]
        if splits:
            th = thetas[g].detach()[torch.tensor(splits, device=thetas[g].device)]
            plans.append(SplitChannels(g, list(splits), {sites[g].producer: th.cpu()}))
        if prunes:
            plans.append(PruneChannels(g, list(prunes)))
    return plans


class GaussNewton(Grower):
    name = "gauss-newton"

    def __init__(self, lambda_p: float, phases: int, n_phase: int, *, top_fraction: float = 0.3,
                 theta_lr: float = 1e-2, theta_init: float = 1e-2, loss_ref: str = "batch",
                 momentum: float | None = None, seed: int = 0):
        super().__init__()
        if lambda_p < 0 or phases < 2 or phases % 2 or n_phase <= 0 or not 0 < top_fraction < 1:
            raise GrowkitError("gauss-newton needs lambda_p >= 0, an even number of phases >= 2 (model and "
                               "morphism phases alternate), n_phase > 0, 0 < top_fraction < 1")
        if loss_ref not in gn.LOSS_REFS:
            raise GrowkitError(f"loss_ref must be one of {gn.LOSS_REFS}, got {loss_ref!r}")
        self.lambda_p, self.phases, self.n_phase = lambda_p, phases, n_phase
        self.top_fraction, self.theta_lr, self.theta_init = top_fraction, theta_lr, theta_init
        self.loss_ref, self.momentum, self.seed = loss_ref, momentum, seed
        self.thetas: dict[str, torch.Tensor] = {}
        self.ema_split: dict[str, torch.Tensor] = {}
        self.ema_prune: dict[str, torch.Tensor] = {}
        self.adam = gn.ThetaAdam(theta_lr)
        self.n_train: int | None = None
        self.rounds: list[dict] = []  # one summary per applied morphism phase
        self.last_scores: dict = {}  # the score table of the last morphism phase (Figure 2)

    # ----------------------------------------------------------------- the schedule
    def _cycle(self, epochs_done: int) -> tuple[int, int]:
        """(phase pair index, position in it) of the epoch after ``epochs_done``."""
        return divmod(epochs_done, 2 * self.n_phase)

    def is_morphism_epoch(self, epochs_done: int) -> bool:
        return self._cycle(epochs_done)[1] >= self.n_phase

    def phase_of(self, epochs_done: int) -> int:
        """The phase (1-based, as the paper counts: odd ones train the model, even ones learn morphisms)
        of the epoch after ``epochs_done``."""
        return epochs_done // self.n_phase + 1

    # ----------------------------------------------------------------- morphism epochs
    def _start_phase(self, model, view, pair: int) -> None:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + pair)
        self.thetas = gn.init_thetas(model, scale=self.theta_init, generator=gen)
        self.ema_split, self.ema_prune = {}, {}
        self.adam = gn.ThetaAdam(self.theta_lr)
        if self.n_train is None:
            self.n_train = sum(len(y) for _, y in view.batches(None, "train", augment=False))

    def replaces_epoch(self, view) -> tuple[float, float] | None:
        """Called by the trainer before each epoch of the growing phase: in a morphism phase, learn
        theta for one epoch (the model frozen) and return (mean train loss, train accuracy %) for the
        epoch's record; otherwise None (the trainer trains the model)."""
        done = view.epoch
        if not self.is_morphism_epoch(done):
            return None
        pair, pos = self._cycle(done)
        model = view.model
        if pos == self.n_phase or not self.thetas:
            self._start_phase(model, view, pair)
        self._to(next(model.parameters()).device)
        ema = {"split": self.ema_split, "prune": self.ema_prune}
        try:
            loss_sum, hits, count = gn.learn_epoch(model, view.batches(None, "train", augment=True), self.thetas,
                                                   self.adam, ema, self._momentum, self.loss_ref)
        except gn.NonFiniteEstimate as e:
            raise gn.NonFiniteEstimate(f"{e}, in {self._where(done)}") from None
        return loss_sum / max(count, 1), 100.0 * hits / max(count, 1)

    def _where(self, epochs_done: int) -> str:
        return (f"morphism phase {self.phase_of(epochs_done)} of {self.phases} "
                f"(epoch {epochs_done + 1} of the search)")

    def _momentum(self, batch: int) -> float:
        return self.momentum if self.momentum is not None else gn.ema_momentum(batch, self.n_train)

    def _to(self, device) -> None:
        """Theta, averages and Adam moments on the model's device (a checkpoint restores them on the CPU)."""
        if all(t.device == device for t in self.thetas.values()):
            return
        self.thetas = {g: t.detach().to(device).requires_grad_(True) for g, t in self.thetas.items()}
        self.ema_split = {g: t.to(device) for g, t in self.ema_split.items()}
        self.ema_prune = {g: t.to(device) for g, t in self.ema_prune.items()}
        self.adam.m = {g: t.to(device) for g, t in self.adam.m.items()}
        self.adam.v = {g: t.to(device) for g, t in self.adam.v.items()}

    # ----------------------------------------------------------------- decisions
    def scores(self, model) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """``-dL - lambda_p * dparams`` of every split and prune (from the moving averages)."""
        split, prune = {}, {}
        for g in self.ema_split:
            cost = gn.channel_cost(model, g)
            split[g] = -self.ema_split[g] - self.lambda_p * cost
            prune[g] = -self.ema_prune[g] + self.lambda_p * cost
        return split, prune

    def decide(self, view) -> Decision:
        done = view.epoch
        last = done >= self.n_phase * self.phases or self.stop_requested
        why = {"stopped_by": "request" if self.stop_requested else "schedule"} if last else {}
        if done == 0 or done % (2 * self.n_phase) != 0 or not self.ema_split:
            return Decision(done=last, info=why)
        model = view.model
        split, prune = self.scores(model)
        try:
            gn.check_finite(split, "split score")
            gn.check_finite(prune, "prune score")
        except gn.NonFiniteEstimate as e:
            raise gn.NonFiniteEstimate(f"{e}, at the end of {self._where(done - 1)}") from None
        chosen = select(split, prune, self.top_fraction)
        plans = plans_for(model, chosen, self.thetas)
        n_split = sum(len(s) for s, _ in chosen.values())
        n_prune = sum(len(p) for _, p in chosen.values())
        self.last_scores = {"split": {g: v.detach().cpu() for g, v in split.items()},
                            "prune": {g: v.detach().cpu() for g, v in prune.items()},
                            "chosen": {g: [list(s), list(p)] for g, (s, p) in chosen.items()}}
        info = {"round": len(self.rounds) + 1, "splits": n_split, "prunes": n_prune,
                "est_dL_sum": float(sum(self.ema_split[g][s].sum() for g, (s, _) in chosen.items() if s)
                                    + sum(self.ema_prune[g][p].sum() for g, (_, p) in chosen.items() if p))}
        self.rounds.append({"epoch": view.global_epoch, **info})
        self.thetas, self.ema_split, self.ema_prune = {}, {}, {}
        return Decision(plans=plans, done=last, info={"gauss_newton": info, **why})

    def initialize(self, model, edits, view=None) -> dict | None:
        return None  # a split sets its own weights (w_in +- theta, halved outgoing); a prune has none

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict:
        return {"thetas": {g: t.detach().cpu() for g, t in self.thetas.items()},
                "ema_split": {g: t.cpu() for g, t in self.ema_split.items()},
                "ema_prune": {g: t.cpu() for g, t in self.ema_prune.items()},
                "adam": {"t": self.adam.t, "m": {g: t.cpu() for g, t in self.adam.m.items()},
                         "v": {g: t.cpu() for g, t in self.adam.v.items()}},
                "n_train": self.n_train, "rounds": list(self.rounds), "last_scores": self.last_scores}

    def load_state_dict(self, state: dict) -> None:
        dev = "cpu"  # moved to the model's device by the next morphism epoch
        self.thetas = {g: t.to(dev).requires_grad_(True) for g, t in state["thetas"].items()}
        self.ema_split = {g: t.to(dev) for g, t in state["ema_split"].items()}
        self.ema_prune = {g: t.to(dev) for g, t in state["ema_prune"].items()}
        self.adam = gn.ThetaAdam(self.theta_lr)
        a = state["adam"]
        self.adam.load({"t": a["t"], "m": {g: t.to(dev) for g, t in a["m"].items()},
                        "v": {g: t.to(dev) for g, t in a["v"].items()}})
        self.n_train, self.rounds = state["n_train"], list(state["rounds"])
        self.last_scores = state.get("last_scores") or {}
