"""AutoGrow: Algorithm 1 driven by scripted validation accuracies, and the initializers."""
import copy
import json

import pytest
import torch

from growkit import models as M
from growkit.engine.config import TrainConfig
from growkit.methods.autogrow.config import AutoGrowConfig
from growkit.errors import GrowkitError
from growkit.methods.autogrow.grower import AutoGrow, make
from growkit.growers import initializers as I
from growkit.engine.surgery import AppendBlock
from growkit.growers.view import GrowerView


def view(epoch, row, model):
    """What a grower sees after ``epoch`` epochs of its growing phase (no data services)."""
    return GrowerView(epoch=epoch, global_epoch=epoch, row=row, model=model)


def drive(cfg, accs, fraction=1.0):
    """Feed one validation accuracy per epoch; apply the plans to a real net; log what happened."""
    model = M.create("Basic3ResNet-1-1-1", in_channels=1, image_size=8)
    g = AutoGrow(cfg, 3, fraction)
    log = []
    for epoch, acc in enumerate(accs, 1):
        d = g.decide(view(epoch, {"val_acc": acc}, model))
        for plan in d.plans:
            plan.apply(model)
        if "stopped_stage" in d.info:
            log.append((epoch, "stop", d.info["stopped_stage"]))
        if d.plans:
            log.append((epoch, "grow", d.plans[0].stage))
        if d.done:
            log.append((epoch, "done", tuple(model.depths)))
            break
    return log


def test_periodic_growth_and_stopping_by_hand():
    # K=2, J=4, tau=0.05. The dip at epoch 5 is ignored: decisions use the running max
    # M = 50 60 70 75 75 80 80 80 80 80 80 80 80 80.
    accs = [50, 60, 70, 75, 40, 80, 80, 80, 80, 80, 80, 80, 80, 80]
    log = drive(AutoGrowConfig(policy="periodic", K=2, J=4, tau=0.05), accs)
    assert log == [
        (2, "grow", 0),  # M(2)-M(-2:=0) = 60: no stop (nothing grown yet); periodic always grows
        (4, "grow", 1),  # M(4)-M(0) = 75
        (6, "grow", 2),  # M(6)-M(2) = 20
        (8, "grow", 0),  # M(8)-M(4) = 5
        (10, "stop", 0), (10, "grow", 1),  # M(10)-M(6) = 0 < tau: the last grown (stage 0) stops
        (12, "stop", 1), (12, "grow", 2),
        (14, "stop", 2), (14, "done", (3, 3, 3)),
    ]


def test_convergent_growth_and_stopping_by_hand():
    # K=2, tau=0.05; M = 50 60 61 62 62 62 63 63 63 ...
    accs = [50, 60, 61, 62, 62, 62, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63]
    log = drive(AutoGrowConfig(policy="convergent", K=2, tau=0.05), accs)
    assert log == [
        (6, "grow", 0),  # first time M(e)-M(e-2) < tau (62-62); nothing grown yet, so no stop
        # e=8: 63-62 = 1: the growth helped -> neither stop nor grow
        (10, "grow", 1),  # converged again; the last check did not grow, so no stop
        (12, "stop", 1), (12, "grow", 2),  # the growth at 10 brought nothing within K epochs
        (14, "stop", 2), (14, "grow", 0),
        (16, "stop", 0), (16, "done", (3, 2, 2)),
    ]


def test_tau_is_in_percent_points():
    # gains of 0.04 points in J = 2 epochs are below tau = 0.05: stops fire as if the accuracy were flat
    accs = [50 + 0.02 * i for i in range(8)]
    log = drive(AutoGrowConfig(policy="periodic", K=1, J=2, tau=0.05), accs)
    assert log[:4] == [(1, "grow", 0), (2, "grow", 1), (3, "stop", 1), (3, "grow", 2)]


def test_max_depth_removes_a_subnetwork_from_the_ring():
    log = drive(AutoGrowConfig(policy="periodic", K=1, J=100, max_depth=2), [50 + i for i in range(10)])
    assert log == [(1, "grow", 0), (2, "grow", 1), (3, "grow", 2), (3, "done", (2, 2, 2))]


def test_fraction_divides_K_and_J():
    g = AutoGrow(AutoGrowConfig(K=3, J=10), 3, fraction=0.25)
    assert (g.K, g.J) == (12, 40)  # the window keeps its size relative to K (Table 8 at 25 %)
    g = AutoGrow(AutoGrowConfig(K=3, J=30, scale_J_by_fraction=False), 3, fraction=0.5)
    assert (g.K, g.J) == (6, 30)
    with pytest.raises(GrowkitError, match="below 2 K"):
        AutoGrow(AutoGrowConfig(K=3, J=10, scale_J_by_fraction=False), 3, fraction=0.25)


@pytest.mark.parametrize("finetune, milestone, J", [(200, 0.5, 100), (90, 1 / 3, 30), (20, 0.5, 10)])
def test_default_J_is_the_epochs_at_the_largest_rate_of_the_baseline(finetune, milestone, J):
    # the paper: J = T = 100 on CIFAR (200 epochs, decay at 100), 30 on ImageNet (90 epochs, decay at 30)
    g = AutoGrow(AutoGrowConfig(K=3, finetune_epochs=finetune), 3, first_milestone=milestone)
    assert g.J == J


def test_default_J_follows_the_training_milestones_through_make():
    g, _, _ = make(TrainConfig(model="Basic3ResNet", milestones=[1 / 3, 2 / 3]), AutoGrowConfig(finetune_epochs=90))
    assert g.J == 30


@pytest.mark.parametrize("K, J, policy, ok", [(3, 6, "periodic", True), (3, 5, "periodic", False),
                                              (10, 10, "periodic", False), (10, None, "convergent", True)])
def test_J_below_2K_is_refused_for_periodic_growth(K, J, policy, ok):
    cfg = AutoGrowConfig(K=K, J=J, policy=policy)
    if ok:
        AutoGrow(cfg, 3)
    else:
        with pytest.raises(GrowkitError, match="below 2 K"):
            AutoGrow(cfg, 3)


@pytest.mark.parametrize("cap, seed, expected", [(1, [1, 1, 1], (1, 1, 1)), (2, [1, 1, 1], (2, 2, 2)),
                                                 (3, [3, 1, 5], (3, 3, 5))])
def test_max_depth_is_a_cap_the_found_net_never_exceeds(cap, seed, expected):
    model = M.create("Basic3ResNet-" + "-".join(map(str, seed)), in_channels=1, image_size=8)
    g = AutoGrow(AutoGrowConfig(policy="periodic", K=1, J=100, max_depth=cap), 3)
    for epoch in range(1, 30):  # accuracy always rising: only the cap can stop growth
        d = g.decide(view(epoch, {"val_acc": 10.0 + epoch}, model))
        for plan in d.plans:
            plan.apply(model)
        if d.done:
            break
    assert d.done and tuple(model.depths) == expected


def test_request_stop_ends_growing():
    g = AutoGrow(AutoGrowConfig(K=1), 3)
    g.request_stop()
    d = g.decide(view(1, {"val_acc": 10.0}, M.create("Basic3ResNet-1-1-1")))
    assert d.done and not d.plans


# ----------------------------------------------------------------------------- initializers

def grown(name, **kw):
    torch.manual_seed(0)
    m = M.create(name, in_channels=1, image_size=8, **kw).double()
    for _ in range(2):  # non-trivial BN statistics
        m.train()(torch.randn(16, 1, 8, 8, dtype=torch.float64))
    g = copy.deepcopy(m)
    edit = AppendBlock(len(g.stages) - 1).apply(g)
    return m, g, g.get_submodule(edit.where)


@pytest.mark.parametrize("family", ["Basic3ResNet", "Basic4ResNet", "Bottleneck4ResNet"])
def test_zero_init_preserves_outputs(family):
    m, g, blk = grown(family)
    I.initialize_block("zero", g, blk)
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    for train in (False, True):
        torch.testing.assert_close(copy.deepcopy(g).train(train)(x), copy.deepcopy(m).train(train)(x),
                                   rtol=0, atol=0)


@pytest.mark.parametrize("kind", ["gau", "uni"])
def test_random_inits_draw_the_last_bn_with_std_one(kind):
    torch.manual_seed(0)
    _, g, blk = grown("Basic4ResNet")  # the last stage is 512 wide: 1024 draws of gamma and beta
    before = {n: p.clone() for n, p in blk.named_parameters()}
    I.initialize_block(kind, g, blk, std=1.0)
    vals = torch.cat([blk.last_bn.weight, blk.last_bn.bias])
    assert vals.numel() == 1024
    assert abs(vals.std().item() - 1.0) < 0.1 and abs(vals.mean().item()) < 0.1
    if kind == "uni":
        assert vals.abs().max().item() <= 3 ** 0.5
    for n, p in blk.named_parameters():  # only the last BN is touched
        if not n.startswith("bn2."):
            assert torch.equal(p, before[n])


class FakeData:
    def __init__(self, x):
        self.x = x

    def eval_batches(self, split):
        yield self.x, None


def test_identity_init_makes_a_new_plain_block_an_exact_identity_in_eval_mode():
    torch.manual_seed(0)
    m = M.create("Plain3Net-1-1-1", in_channels=1, image_size=8).double()
    x = torch.randn(64, 1, 8, 8, dtype=torch.float64)
    m.train()(x)
    g = copy.deepcopy(m)
    edit = AppendBlock(1).apply(g)
    blk = g.get_submodule(edit.where)
    I.identity_(g, blk, FakeData(x))
    torch.testing.assert_close(copy.deepcopy(g).eval()(x), copy.deepcopy(m).eval()(x), rtol=1e-9, atol=1e-9)
    # the 3x3 conv is a Dirac kernel: it passes its input through unchanged
    h = torch.rand(2, blk.conv1.in_channels, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(blk.conv1(h), h, rtol=0, atol=1e-12)
    # (in train mode the BN uses batch statistics, so the block is an identity only approximately)


class ScriptedCtx:
    def __init__(self, accs):
        self.accs, self.calls = list(accs), []

    def train_epoch(self, params, opt):
        self.calls.append((list(params), opt))
        return 0.0, self.accs.pop(0)


def test_adam_init_stops_when_training_accuracy_recovers():
    _, g, blk = grown("Basic3ResNet")
    ctx = ScriptedCtx([50, 80, 91, 99])
    info = I.adam_(blk.last_bn, ctx, target_acc=90.0, lr=1e-3, max_epochs=10)
    assert info["adam_epochs"] == 3 and info["adam_reached"]
    params, opt = ctx.calls[0]
    assert params == [blk.last_bn.weight, blk.last_bn.bias] and isinstance(opt, torch.optim.Adam)
    ctx = ScriptedCtx([10] * 20)
    info = I.adam_(blk.last_bn, ctx, target_acc=90.0, max_epochs=10)
    assert info["adam_epochs"] == 10 and not info["adam_reached"] and len(ctx.calls) == 10


def test_adam_init_trains_only_the_last_bn():
    from growkit.engine.trainer import Trainer
    t = Trainer(TrainConfig(depths=[1, 1, 1], epochs=1, progress=False))
    edit = AppendBlock(0).apply(t.model)
    blk = t.model.get_submodule(edit.where)
    before = {n: p.detach().clone() for n, p in t.model.named_parameters()}
    info = I.adam_(blk.last_bn, t.view({"train_acc": 100.0}), target_acc=100.0, max_epochs=2)
    assert info["adam_epochs"] == 2
    for n, p in t.model.named_parameters():
        changed = not torch.equal(p, before[n])
        assert changed == n.startswith(edit.where + ".bn2."), n
    assert all(p.requires_grad for p in t.model.parameters())  # unfrozen afterwards


@pytest.mark.slow
def test_p_autogrow_on_digits_runs_to_a_stop_and_fine_tunes(cli, tmp_path):
    out = tmp_path / "g"
    r = cli("autogrow", "--model", "Basic3ResNet", "--dataset", "digits", "--K", "3", "--J", "6",
            "--init", "gau", "--finetune", "3", "--scratch", "--out", out, "--no-progress")
    assert r.returncode == 0, r.stderr
    res = json.loads((out / "result.json").read_text())
    for key in ("found", "depths", "val_acc", "test_acc", "params", "macs", "growth_events", "grow_wall_s",
                "finetune_wall_s", "scratch_test_acc", "delta"):
        assert key in res, key
    assert res["found"] == "Basic3ResNet-" + "-".join(map(str, res["depths"]))
    assert sum(res["depths"]) - 3 == len(res["growth_events"]) > 0
    assert all(res["checks"][-1].get("stopped") is not None for _ in [0])  # the last check stopped a stage
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["phase"] for r in rows].count("finetune") == 3 and rows[-1]["arch"] == res["found"]
    assert res["delta"] == pytest.approx(res["test_acc"] - res["scratch_test_acc"])
    assert (out / "scratch" / "result.json").exists()


def test_morph_run_grows_every_stage_once_and_keeps_the_function(tmp_path):
    from growkit.methods.autogrow.method import network_morphism
    from growkit.methods.autogrow.morphism import NetworkMorphism
    cfg = TrainConfig(depths=[1, 1, 1], progress=False, eval_test=False)
    res = network_morphism(cfg, [2, 3, 1], tmp_path / "m", shallow_epochs=2, deeper_epochs=1, init="zero")
    assert res["arch"] == "Basic3ResNet-2-3-1" and res["epochs"] == 3
    [event] = res["growth_events"]
    assert event["epoch"] == 2 and [e["where"] for e in event["edits"]] == ["stages.0.1", "stages.1.1", "stages.1.2"]
    # the morph itself preserves the function: apply it to a fresh net and compare
    m = M.create("Basic3ResNet-1-1-1", in_channels=1, image_size=8).eval()
    g = copy.deepcopy(m)
    d = NetworkMorphism([2, 3, 1], after=1).decide(view(1, {}, g))
    ed = [p.apply(g) for p in d.plans]
    NetworkMorphism([2, 3, 1], after=1).initialize(g, ed, None)
    x = torch.randn(4, 1, 8, 8)
    torch.testing.assert_close(g.eval()(x), m(x), rtol=0, atol=0)
    with pytest.raises(Exception, match="must extend"):
        network_morphism(cfg, [1, 1], tmp_path / "bad", shallow_epochs=1, deeper_epochs=1)
