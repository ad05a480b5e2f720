"""AdeNeL's growth policy driven by scripted Gamma supports: exact grow/stop sequences, budgets."""
import random
from types import SimpleNamespace

import pytest
import torch

from growkit import models as M
from growkit.errors import GrowkitError
from growkit.methods.adenel.grower import AdeNeL, AdeNeLConfig, ReplayGrowth
from growkit.methods.adenel.policy import (candidate_groups, capacities, group_capacity, plan_round, planned_stats,
                                           train_cost, widths)


def lenet_params(c1, c2):
    """LeNet-5 on 1x8x8 digits by hand: conv1 5x5 (+bias), conv2 5x5 padded (+bias) on 4x4, pooled to
    2x2 -> fc1 (4*c2 -> 120), fc2 (120 -> 84), fc3 (84 -> 10), all with biases."""
    return (25 * c1 + c1) + (25 * c1 * c2 + c2) + (4 * c2 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)


def gamma_state(model, live: dict[str, int]):
    """An optimizer state whose Gamma has exactly ``live[group]`` non-zero leading filters per producer."""
    state = {}
    for name, p in model.named_parameters():
        state[name] = {"momentum_buffer": torch.zeros_like(p)}
        if p.dim() >= 2:
            state[name]["gamma"] = torch.zeros_like(p)
    for gname, g in model.channel_groups().items():
        for prod in g.producers:
            if gname in live:
                state[f"{prod}.weight"]["gamma"][:live[gname]] = 0.5
    return state


def drive(cfg, model, script, epochs):
    """One entry of ``script`` per check (every J epochs): live filters per group, given as
    'all' or 'all-1'. Applies the plans to the real model; logs (epoch, widths, done, stopped_by)."""
    g = AdeNeL(cfg)
    log, checks = [], iter(script)
    for epoch in range(1, epochs + 1):
        live = {}
        if epoch % cfg.J == 0:
            spec = next(checks)
            w = widths(model, list(spec))
            live = {k: w[k] - (v == "all-1") for k, v in spec.items()}
        view = SimpleNamespace(epoch=epoch, model=model, optimizer_state=gamma_state(model, live))
        d = g.decide(view)
        for plan in d.plans:
            plan.apply(model)
        if d.plans or d.done:
            log.append((epoch, tuple(widths(model, ["conv1", "conv2"]).values()), d.done,
                        d.info.get("stopped_by")))
        if d.done:
            break
    return log, g


def _lenet():
    return M.create("LeNet5", widths=[4, 4, 120, 84], in_channels=1, num_classes=10, image_size=8)


def test_lenet_formula_matches_the_model():
    for c1, c2 in ((4, 4), (6, 4), (10, 6)):
        assert M.create("LeNet5", widths=[c1, c2, 120, 84], in_channels=1, image_size=8).num_params() == \
            lenet_params(c1, c2)


SCRIPT = [{"conv1": "all", "conv2": "all-1"},  # s = 1, 0.75: conv1 grows (tau 0.8)
          {"conv1": "all", "conv2": "all"},  # both grow
          {"conv1": "all-1", "conv2": "all"},  # s = 7/8, 1: both want to grow
          {"conv1": "all", "conv2": "all"}]


def test_scripted_sequence_with_a_budget_stop():
    budget = 16000  # (8, 6) = 15428 fits; the full third round (10, 8) = 17242 does not
    cfg = AdeNeLConfig(J=2, tau=0.8, grow_by=2, budget_params=budget, on_budget="stop")
    log, g = drive(cfg, _lenet(), SCRIPT, 20)
    assert log == [(2, (6, 4), False, None), (4, (8, 6), False, None), (6, (8, 6), True, "budget")]
    assert g.state["stopped_by"] == "budget" and g.state["done_epoch"] == 6
    assert g.state["rounds"][2]["blocked"] == ["conv1", "conv2"]
    assert g.state["rounds"][0]["capacity"] == {"conv1": 1.0, "conv2": 0.75}
    # Figure 4's record: conv1's filters and support at every check
    fl = g.state["first_layer"]
    assert [r["epoch"] for r in fl] == [2, 4, 6] and all(r["name"] == "conv1.weight" for r in fl)
    assert fl[0]["support"] == [True] * 4 and fl[2]["support"] == [True] * 7 + [False]
    assert len(fl[1]["weight"]) == 6 and len(fl[1]["weight"][0][0]) == 5


def test_scripted_sequence_subset_grows_what_fits():
    # round 3: conv2 (s = 1) first: (8, 8) = 16790 > 16000; then conv1 (s = 7/8): (10, 6) = 15780 fits.
    # round 4: (12, 8), (12, 6) = 16132 and (10, 8) = 17242 all exceed: stop.
    cfg = AdeNeLConfig(J=2, tau=0.8, grow_by=2, budget_params=16000, on_budget="subset")
    log, g = drive(cfg, _lenet(), SCRIPT, 20)
    assert log == [(2, (6, 4), False, None), (4, (8, 6), False, None), (6, (10, 6), False, None),
                   (8, (10, 6), True, "budget")]
    assert g.state["rounds"][2]["grow"] == {"conv1": 2} and g.state["rounds"][2]["blocked"] == ["conv2"]


def test_scripted_sequence_capacity_stop():
    script = [{"conv1": "all", "conv2": "all"},  # s = 1, 1: both grow -> (6, 6)
              {"conv1": "all", "conv2": "all-1"},  # s = 1, 5/6 < tau 0.9 -> (8, 6)
              {"conv1": "all", "conv2": "all"},  # -> (10, 8)
              {"conv1": "all-1", "conv2": "all-1"}]  # s = 9/10 (not > 0.9), 7/8: nothing grows
    log, g = drive(AdeNeLConfig(J=3, tau=0.9, grow_by=2), _lenet(), script, 30)
    assert log == [(3, (6, 6), False, None), (6, (8, 6), False, None), (9, (10, 8), False, None),
                   (12, (10, 8), True, "capacity")]
    assert g.state["rounds"][3]["wanted"] == []


def test_budgets_are_never_exceeded_random_capacities():
    rng = random.Random(0)
    for on_budget in ("stop", "subset"):
        model = M.create("VGG16", widths=4, in_channels=1, num_classes=10, image_size=8)
        seed = planned_stats(model, {})
        bp, bf = int(seed["params"] * 12), int(seed["macs"] * 10)
        cfg = AdeNeLConfig(J=1, tau=0.5, grow_by=4, budget_params=bp, budget_macs=bf, on_budget=on_budget)
        g, groups = AdeNeL(cfg), candidate_groups(model)
        for epoch in range(1, 200):
            w = widths(model, groups)
            live = {k: rng.randint(0, v) for k, v in w.items()}
            d = g.decide(SimpleNamespace(epoch=epoch, model=model, optimizer_state=gamma_state(model, live)))
            for plan in d.plans:
                plan.apply(model)
            assert model.num_params() <= bp and M.count_macs(model) <= bf
            if d.done:
                break
        assert g.state["stopped_by"] == "budget" and len(g.state["rounds"]) > 2, (on_budget, len(g.state["rounds"]))


def test_plan_round_by_hand():
    caps = {"a": 0.9, "b": 0.5, "c": 1.0}
    assert plan_round(caps, 0.8, 3, lambda p: True).grow == {"a": 3, "c": 3}
    assert plan_round(caps, 0.95, 3, lambda p: True).grow == {"c": 3}
    r = plan_round(caps, 1.0, 3, lambda p: True)  # s > tau is strict
    assert r.grow == {} and r.stopped_by == "capacity"
    r = plan_round(caps, 0.8, 3, lambda p: len(p) < 2, on_budget="subset")
    assert r.grow == {"c": 3} and r.blocked == ["a"] and r.stopped_by is None


def test_resnet_candidates_untied_and_tied_pooled_capacity():
    net = M.create("ResNet20", widths=4, in_channels=1, num_classes=10, image_size=8)
    untied = candidate_groups(net, "untied")
    assert untied == [f"stages.{s}.{b}.conv1" for s in range(3) for b in range(3)]
    tied = candidate_groups(net, "tied")
    assert set(tied) - set(untied) == {"stem", "stages.1.0", "stages.2.0"}
    # stem stream: producers stem.0 and the conv2 of the three stage-0 blocks (4 x 4 rows);
    # 3 + 4 + 0 + 4 live rows of 16 -> 11/16
    g = {n: torch.zeros_like(p) for n, p in net.named_parameters() if p.dim() == 4}
    g["stem.0.weight"][:3] = 1.0
    g["stages.0.0.conv2.weight"][:] = 1.0
    g["stages.0.2.conv2.weight"][:, 0] = -1.0
    assert capacities(net, g, ["stem"]) == {"stem": 11 / 16}
    assert group_capacity([torch.ones(2, 3), torch.zeros(6, 3)]) == 0.25


def test_train_cost_by_hand():
    tc = train_cost(3.0e9, 1.0e6, 1000, 10, "full-size net")
    assert tc["relative"] == pytest.approx(0.3) and tc["reference_macs"] == 1.0e10
    assert tc["reference"] == "full-size net" and tc["train_macs"] == 3.0e9


def test_replay_repeats_the_schedule():
    rounds = [{"epoch": 2, "grow": {"conv1": 2}}, {"epoch": 4, "grow": {"conv1": 2, "conv2": 2}},
              {"epoch": 6, "grow": {}}]
    r, model = ReplayGrowth(rounds, 6), _lenet()
    for epoch in range(1, 7):
        d = r.decide(SimpleNamespace(epoch=epoch, model=model))
        for plan in d.plans:
            plan.apply(model)
        assert d.done == (epoch == 6)
    assert widths(model, ["conv1", "conv2"]) == {"conv1": 8, "conv2": 6}


def test_config_validation():
    for kw in ({"tau": 1.5}, {"J": 0}, {"grow_by": 0}, {"nu": 0.0}, {"on_budget": "x"}, {"ties": "x"},
               {"support": "x"}, {"budget_params": 0}):
        with pytest.raises(GrowkitError):
            AdeNeLConfig(**kw).validate()
    with pytest.raises(GrowkitError):
        AdeNeLConfig.from_dict({"bogus": 1})


def test_needs_gamma():
    view = SimpleNamespace(epoch=10, model=_lenet(), optimizer_state={})
    with pytest.raises(GrowkitError, match="lbi"):
        AdeNeL(AdeNeLConfig()).decide(view)


@pytest.mark.parametrize("ties,grown", [("untied", 9), ("tied", 12)])
def test_resnet_rounds_untied_and_tied_apply_and_run(ties, grown):
    net = M.create("ResNet20", widths=4, in_channels=1, num_classes=10, image_size=8)
    groups = candidate_groups(net, ties)
    view = SimpleNamespace(epoch=1, model=net, optimizer_state=gamma_state(net, {g: 4 for g in groups}))
    d = AdeNeL(AdeNeLConfig(J=1, grow_by=2, ties=ties)).decide(view)
    assert len(d.plans) == grown
    for plan in d.plans:
        plan.apply(net)
    w = widths(net)
    assert all(w[g] == 6 for g in groups)
    assert all(w[g] == 4 for g in w if g not in groups)
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 10)


@pytest.mark.parametrize("name,group", [("ResNet20", "stages.1.0"), ("ResNet18", "stages.3.0"), ("VGG16", "layers.3"),
                                        ("LeNet5", "conv2")])
def test_found_net_config_rebuilds_a_grown_net(name, group):
    """The scratch baselines rebuild the found net from its spec through TrainConfig fields."""
    from growkit.methods.adenel.method import found_net, seed_widths
    from growkit.engine.surgery import Widen
    net = M.create(name, widths=seed_widths(name, 4), in_channels=1, num_classes=10, image_size=8)
    Widen(group, 3, outgoing="he").apply(net)
    f = found_net(net.spec)
    spec = {k: v for k, v in {"depths": f["depths"], "widths": f["widths"], **f["model_kw"]}.items() if v is not None}
    again = M.create(f["model"], **spec, in_channels=1, num_classes=10, image_size=8)
    assert again.spec == net.spec and again.num_params() == net.num_params()


def test_dessilbi_vgg_rule_from_16_filters_grows_8_then_by_a_tenth():
    """DessiLBI's VGG rule (seed 16, w -> max(w + 8, int(1.1 w))): widths 16 -> 24 -> 32 -> ... -> 88 -> 96 ->
    105 (int(1.1 * 96) = 105 > 104) when every filter stays in the support."""
    net = M.create("VGG16", widths=16, hidden=[512], in_channels=1, num_classes=10, image_size=8)
    g = AdeNeL(AdeNeLConfig(J=1, seed_width=16, grow_rule="ratio", grow_by=8))
    seen = []
    for epoch in range(1, 12):
        groups = candidate_groups(net)
        w = widths(net, groups)
        view = SimpleNamespace(epoch=epoch, model=net, optimizer_state=gamma_state(net, dict(w)))
        for plan in g.decide(view).plans:
            plan.apply(net)
        seen.append(widths(net)["layers.0"])
    assert seen == [24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 105]
    assert widths(net)["classifier.0"] == 512  # the hidden layer is not grown
