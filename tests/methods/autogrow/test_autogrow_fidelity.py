"""AutoGrow as the paper and the authors' code define it: plain blocks, UniInit's two variants."""
import copy

import pytest
import torch
import torch.nn as nn

from growkit import models as M
from growkit.engine.config import TrainConfig
from growkit.methods.autogrow.config import AutoGrowConfig
from growkit.errors import GrowkitError
from growkit.growers import initializers as I
from growkit.methods.autogrow.grower import AutoGrow, make
from growkit.engine.surgery import AppendBlock
from growkit.growers.view import GrowerView

RESHAPING = ["adam", "uni", "uni01", "gau"]  # every initializer but zero (refused on plain nets) and identity


def assert_default_bn(bn: nn.BatchNorm2d):
    """The state of a freshly built BatchNorm2d (torch's defaults, not growkit's code)."""
    ref = nn.BatchNorm2d(bn.num_features).to(bn.weight)
    for name in ("weight", "bias", "running_mean", "running_var"):
        torch.testing.assert_close(getattr(bn, name), getattr(ref, name), rtol=0, atol=0, msg=name)


def plain_grown():
    torch.manual_seed(0)
    m = M.create("Plain3Net-1-1-1", in_channels=1, image_size=8)
    m.train()(torch.randn(16, 1, 8, 8))
    edit = AppendBlock(1).apply(m)
    return m, edit


@pytest.mark.parametrize("init", RESHAPING)
def test_autogrow_leaves_a_new_plain_block_at_its_default(init):
    m, edit = plain_grown()
    blk = m.get_submodule(edit.where)
    conv = blk.conv1.weight.detach().clone()
    # no growth context at all: an AdamInit that tried to train would fail here
    info = AutoGrow(AutoGrowConfig(init=init), 3).initialize(m, [edit], None)
    assert info["plain_default_init"] is True
    assert_default_bn(blk.bn1)
    assert torch.equal(blk.conv1.weight, conv)  # the conv keeps its He initialisation


def test_identity_stays_available_for_plain_blocks():
    m, edit = plain_grown()
    blk = m.get_submodule(edit.where)

    class View:  # what identity reads from the grower's view: the training split
        def eval_batches(self, split):
            yield torch.randn(32, 1, 8, 8), None

    info = AutoGrow(AutoGrowConfig(init="identity"), 3).initialize(m, [edit], View())
    assert "plain_default_init" not in info
    assert not torch.equal(blk.bn1.weight, torch.ones_like(blk.bn1.weight))


@pytest.mark.parametrize("init", RESHAPING)
def test_after_growth_in_a_run_the_plain_bn_is_at_its_default(init):
    from growkit.engine.trainer import Trainer
    seen = []

    class Watch:
        def on_growth(self, trainer, event):
            blk = trainer.model.get_submodule(event["edits"][0]["where"])
            seen.append(copy.deepcopy(blk.last_bn))

    grower, phases, cfg = make(TrainConfig(model="Plain3Net", epochs=1, progress=False, eval_test=False),
                               AutoGrowConfig(K=1, J=2, init=init, max_grow_epochs=1, finetune_epochs=1))
    res = Trainer(cfg, phases=phases, grower=grower, callbacks=[Watch()]).fit()
    assert len(seen) == 1 and res["arch"] == "Plain3Net-2-1-1"
    assert_default_bn(seen[0])
    assert res["growth_events"][0]["plain_default_init"] is True
    assert "adam_epochs" not in res["growth_events"][0]  # no AdamInit on plain nets (the authors' code)


@pytest.mark.slow
def test_init_zero_on_a_plain_net_is_refused_before_anything_is_written(cli, tmp_path):
    out = tmp_path / "z"
    r = cli("autogrow", "--model", "Plain4Net", "--init", "zero", "--out", out, "--no-progress")
    assert r.returncode == 2 and not out.exists()
    assert r.stderr.count("\n") == 1 and "plain net" in r.stderr
    with pytest.raises(GrowkitError, match="plain net"):
        make(TrainConfig(model="Plain3Net"), AutoGrowConfig(init="zero"))
    make(TrainConfig(model="Basic3ResNet"), AutoGrowConfig(init="zero"))  # residual: the paper's ZeroInit


def test_residual_blocks_still_get_the_initializer():
    torch.manual_seed(0)
    m = M.create("Basic3ResNet-1-1-1", in_channels=1, image_size=8)
    edit = AppendBlock(0).apply(m)
    AutoGrow(AutoGrowConfig(init="gau"), 3).initialize(m, [edit], None)
    bn = m.get_submodule(edit.where).last_bn
    assert (bn.weight < 0).any() and (bn.bias < 0).any()  # N(0, 1) draws, not the default (1, 0)


def test_uni01_is_the_authors_uniform_on_0_1():
    torch.manual_seed(0)
    m = M.create("Basic4ResNet-1-1-1-1", in_channels=1, image_size=8)
    edit = AppendBlock(3).apply(m)  # 512 channels: 1024 draws
    I.initialize_block("uni01", m, m.get_submodule(edit.where), std=1.0)
    bn = m.get_submodule(edit.where).last_bn
    v = torch.cat([bn.weight, bn.bias]).detach().double()
    assert v.min() >= 0 and v.max() <= 1
    # U(0, 1): mean 1/2, standard deviation 1/sqrt(12) = 0.2887 (1024 draws: standard errors 0.009, 0.006)
    assert abs(v.mean().item() - 0.5) < 0.04 and abs(v.std().item() - 12 ** -0.5) < 0.03


@pytest.mark.parametrize("dataset, wd", [("imagenet", 1e-4), ("cifar10", 5e-4), ("digits", 5e-4)])
def test_weight_decay_is_the_authors_per_dataset_in_runs_and_scratch_baselines(dataset, wd):
    from growkit.methods.autogrow.grower import scratch_config
    from growkit.papers.profiles import PROFILES
    cfg = TrainConfig(model="Basic4ResNet", dataset=dataset).validate().resolved()
    assert cfg.weight_decay == wd  # authors' code: 1e-4 in imagenet/, 5e-4 in cifar10/
    base = scratch_config(cfg, AutoGrowConfig(finetune_epochs=90), {"name": "Basic4ResNet", "depths": [2, 2, 2, 2]})
    assert base.weight_decay == wd
    assert TrainConfig(dataset=dataset, weight_decay=0.0).resolved().weight_decay == 0.0  # explicit values stay
    # no paper profile overrides it
    assert not any("weight_decay" in p["paper"] for p in PROFILES.values())


class ScriptedView:
    """A grower view whose AdamInit epochs are scripted: records every (params, optimizer) it is given."""

    def __init__(self, accs, train_acc=90.0):
        self.accs, self.calls, self.row = list(accs), [], {"train_acc": train_acc}

    def train_epoch(self, params, opt):
        self.calls.append((list(params), opt))
        with torch.no_grad():  # an Adam-like nudge, so every block's outcome differs from its default
            for p in params:
                p.add_(0.01)
        return 0.0, self.accs.pop(0)


def test_joint_adam_init_trains_all_new_bns_in_one_optimizer():
    from growkit.methods.autogrow.morphism import NetworkMorphism
    torch.manual_seed(0)
    m = M.create("Basic3ResNet-1-1-1", in_channels=1, image_size=8)
    grower = NetworkMorphism([2, 3, 1], after=1, init="adam")
    edits = [p.apply(m) for p in grower.decide(GrowerView(epoch=1, global_epoch=1, row={}, model=m)).plans]
    wheres = [e.where for e in edits]
    assert wheres == ["stages.0.1", "stages.1.1", "stages.1.2"]
    view = ScriptedView([50.0, 95.0])  # reaches the shallower net's 90 % at the second epoch
    info = grower.initialize(m, edits, view)
    # one Adam over the six tensors of the three last BNs, the same optimizer every epoch
    assert len(view.calls) == 2 and view.calls[0][1] is view.calls[1][1]
    assert isinstance(view.calls[0][1], torch.optim.Adam)
    expected = [p for w in wheres for p in (m.get_submodule(w).bn2.weight, m.get_submodule(w).bn2.bias)]
    assert len(view.calls[0][0]) == 6 and all(a is b for a, b in zip(view.calls[0][0], expected))
    assert view.calls[0][1].param_groups[0]["params"] == view.calls[0][0]
    assert info["adam_joint"] == 3 and info["adam_epochs"] == 2 and info["adam_reached"]
    # the record keeps every block's outcome
    assert set(info["blocks"]) == set(wheres)
    for w in wheres:
        assert info["blocks"][w]["gamma_mean"] == pytest.approx(1.02, abs=1e-6)  # default 1, two nudges


def test_network_morphism_refuses_zero_init_on_a_plain_net():
    from growkit.runs import registry
    from growkit.methods.autogrow.config import NetworkMorphismConfig
    with pytest.raises(GrowkitError, match="plain net"):
        registry.get("network-morphism").build(TrainConfig(model="Plain3Net", depths=[1, 1, 1]).resolved(),
                                              NetworkMorphismConfig([2, 2, 2], 1, 1, "zero"))


@pytest.mark.slow
def test_J_below_2K_exits_2_before_anything_is_written(cli, tmp_path):
    out = tmp_path / "j"
    r = cli("autogrow", "--K", "3", "--J", "5", "--out", out, "--no-progress")
    assert r.returncode == 2 and not out.exists() and r.stderr.count("\n") == 1 and "below 2 K" in r.stderr
    r = cli("autogrow", "--K", "3", "--fraction", "0.25", "--J", "20", "--no-scale-J", "--out", out, "--no-progress")
    assert r.returncode == 2 and "J = 20 is below 2 K = 24" in r.stderr  # K = 3 / 0.25 = 12
