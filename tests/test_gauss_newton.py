"""The Gauss-Newton grower: selection, the applied round, the phase schedule, kill + resume."""
from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch

from growkit import gn_estimate as gn
from growkit.growers.gauss_newton import GaussNewton, plans_for, select
from growkit.models import create


def test_scripted_score_table_gives_exactly_the_set_applied():
    t = torch.tensor
    split = {"a": t([0.5, -1.0, 0.2, 0.9, 0.1, -0.3, 0.05, 0.0, 0.3, 0.6]),  # width 10: at most 3
             "b": t([-1.0, -2.0, -0.5]),  # width 3: at most max(1, 0) = 1
             "c": t([-1.0, -1.0, -1.0, -1.0])}  # nothing positive
    prune = {"a": t([0.1, 0.8, -0.1, 1.0, 0.0, 0.7, -1.0, 0.0, 0.2, 0.0]),
             "b": t([0.4, 0.3, -0.1]),
             "c": t([-0.1, 0.0, -0.2, -3.0])}
    # a: best per channel = [0.5s, 0.8p, 0.2s, 1.0p, 0.1s, 0.7p, 0.05s, 0.0, 0.3s, 0.6s] -> top 3: 3p, 1p, 5p
    chosen = select(split, prune, 0.3)
    assert chosen == {"a": ([], [1, 3, 5]), "b": ([], [0]), "c": ([], [])}
    split["a"][9] = 2.0  # now channel 9's split is the best of layer a
    assert select(split, prune, 0.3)["a"] == ([9], [1, 3])
    assert select(split, prune, 0.5)["a"] == ([0, 9], [1, 3, 5])  # floor(0.5 * 10) = 5


def _view(model, epoch, global_epoch=None):
    return SimpleNamespace(model=model, epoch=epoch, global_epoch=epoch if global_epoch is None else global_epoch,
                           batches=None)


def test_decide_scores_the_averages_with_the_parameter_penalty():
    model = create("VGG19", widths=4, in_channels=1, image_size=8)
    g = GaussNewton(lambda_p=1e-3, phases=3, n_phase=2)
    sites = list(gn.sites(model))
    g.thetas = gn.init_thetas(model, generator=torch.Generator().manual_seed(0))
    g.ema_split = {s: torch.zeros(4) for s in sites}
    g.ema_prune = {s: torch.full((4,), 1.0) for s in sites}  # every prune costs loss
    cost = gn.channel_cost(model, "layers.5")  # 4*9 + 2 + 4*9 = 74 -> split score -0.074
    g.ema_split["layers.5"] = torch.tensor([-0.1, -0.07, -0.2, 0.0])  # -dL - 0.074: +0.026, -0.004, +0.126, -
    g.ema_prune["layers.7"] = torch.tensor([0.0, -0.5, 0.5, 0.1])  # -dL + 0.074 (cost 74): .074, .574, -, -
    assert gn.channel_cost(model, "layers.7") == cost
    assert not g.decide(_view(model, 3)).plans  # not the end of a morphism phase
    theta5 = g.thetas["layers.5"].detach().clone()
    d = g.decide(_view(model, 4))
    assert [(type(p).__name__, p.group, p.channels) for p in d.plans] == [
        ("SplitChannels", "layers.5", [2]), ("PruneChannels", "layers.7", [1])]  # cap: max(1, floor(1.2)) = 1
    assert torch.equal(d.plans[0].thetas["layers.5.conv"][0], theta5[2])
    assert d.info["gauss_newton"]["splits"] == 1 and d.info["gauss_newton"]["prunes"] == 1
    assert not d.done and g.decide(_view(model, 12)).done


def test_phase_schedule():
    g = GaussNewton(lambda_p=0.0, phases=2, n_phase=3)
    assert [g.is_morphism_epoch(e) for e in range(12)] == [False] * 3 + [True] * 3 + [False] * 3 + [True] * 3


def test_plans_carry_the_learned_theta_rows():
    model = create("VGG19", widths=4, in_channels=1, image_size=8)
    thetas = gn.init_thetas(model, generator=torch.Generator().manual_seed(1))
    plans = plans_for(model, {"layers.0": ([1, 3], [2])}, thetas)
    assert plans[0].channels == [1, 3] and torch.equal(plans[0].thetas["layers.0.conv"],
                                                       thetas["layers.0"].detach()[[1, 3]])
    assert plans[1].channels == [2]
