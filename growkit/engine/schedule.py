"""Phases of a run and their learning-rate schedules.

A run is a list of :class:`Phase` objects (``train``; or ``grow`` then
``finetune``), each with its learning-rate schedule. A growing phase consults the
grower after every epoch and ends when the grower is done or its epoch limit is hit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class Phase:
    name: str
    lr: float
    schedule: str = "constant"  # constant | staircase | cosine
    epochs: int | None = None  # a growing phase ends after `epochs` or when the grower is done
    # (with epochs None: when the grower is done, at most max_epochs)
    period: int | None = None  # restart the schedule every `period` epochs (c-AutoGrow's staircase)
    max_epochs: int | None = None
    milestones: tuple[float, ...] = (0.5, 0.75)
    gamma: float = 0.1
    grows: bool = False  # the grower is consulted after each epoch of this phase

    def lr_at(self, t: float) -> float:
        """Learning rate ``t`` epochs (fractional) into the phase."""
        total = self.period or self.epochs or 1
        if self.period:
            t = t % self.period
        if self.schedule == "constant":
            return self.lr
        if self.schedule == "staircase":  # decays at whole epochs int(m * total), as the AutoGrow code does
            e = int(t)
            return self.lr * self.gamma ** sum(e >= max(1, int(m * total)) for m in self.milestones)
        return 0.5 * self.lr * (1.0 + math.cos(math.pi * min(t / total, 1.0)))

    def lr_at_step(self, step: int, steps_per_epoch: int) -> float:
        """Learning rate at optimizer step ``step`` (counted from 0 at the phase's start) of a phase with
        ``steps_per_epoch`` steps an epoch, for a loop that counts steps rather than epochs. The cosine is
        taken of ``step / total steps`` (integers until that one division, so it moves every step, not per
        epoch fraction); the other schedules change at whole epochs and read :meth:`lr_at`."""
        if self.schedule != "cosine":
            return self.lr_at(step / steps_per_epoch)
        total = (self.period or self.epochs or 1) * steps_per_epoch
        if self.period:
            step = step % total
        return 0.5 * self.lr * (1.0 + math.cos(math.pi * min(step, total) / max(total, 1)))


DECAYS = ("cosine", "linear", "constant")


def warmup_decay(step: int, total: int, lr: float, warmup: int = 0, decay: str = "cosine",
                 final: float = 0.0) -> float:
    """The learning rate of optimizer step ``step`` (0-based) of a run of ``total`` steps, counted in steps:
    a linear warmup over the first ``warmup`` steps (``lr * (step + 1) / warmup``), then ``decay`` from
    ``lr`` to ``final`` over the remaining ``total - warmup`` steps, reached when the budget ends:
    with ``p = (step - warmup) / (total - warmup)``, cosine ``final + (lr - final) (1 + cos(pi p)) / 2``,
    linear ``lr + (final - lr) p``, constant ``lr``. ``final = 0`` is the fully decayed schedule a fair
    comparison of training runs needs (a run stopped mid-schedule is judged before its decay has paid off)."""
    if step < warmup:
        return lr * (step + 1) / warmup
    return decayed(max(step - warmup, 0) / max(total - warmup, 1), lr, decay, final)


def decayed(p: float, lr: float, decay: str = "cosine", final: float = 0.0) -> float:
    """The rate after the warmup at progress ``p`` (clipped to [0, 1]) of the decay: cosine
    ``final + (lr - final) (1 + cos(pi p)) / 2``, linear ``lr + (final - lr) p``, constant ``lr``."""
    if decay == "constant":
        return lr
    p = min(max(p, 0.0), 1.0)
    if decay == "linear":
        return lr + (final - lr) * p
    if decay == "cosine":
        return final + (lr - final) * 0.5 * (1.0 + math.cos(math.pi * p))
    raise ValueError(f"unknown decay {decay!r}; valid: {', '.join(DECAYS)}")


def budget_decay(step: int, spent: float, budget: float, lr: float, warmup: int = 0, decay: str = "cosine",
                 final: float = 0.0, warmup_spent: float = 0.0) -> float:
    """The learning rate of optimizer step ``step`` of a run whose budget is compute, not steps: ``spent`` is the
    compute (training multiply-adds) of the steps before it, ``budget`` the run's whole budget. A linear warmup
    over the first ``warmup`` steps as in :func:`warmup_decay`; then the decay's progress is the share of the
    budget left after the warmup that has been spent, ``p = (spent - warmup_spent) / (budget - warmup_spent)``
    (``warmup_spent``: the compute of the warmup steps), so ``final`` is reached exactly when the budget is.

    Why compute and not steps: a growing model's steps are cheaper before it grows, so it takes more of them
    for the same compute; a schedule in steps would end its decay at a different compute than the fixed-size
    model's. With the share of the compute budget, every arm given the same budget is fully decayed at the
    same compute. For a model whose steps all cost the same, ``p`` is the step schedule's progress."""
    if step < warmup:
        return lr * (step + 1) / warmup
    return decayed((spent - warmup_spent) / max(budget - warmup_spent, 1e-300), lr, decay, final)
