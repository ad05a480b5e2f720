"""Surgery: function preservation (float64, train and eval mode) and hand-built expected weights."""
import copy

import pytest
import torch
import torch.nn.functional as F

from growkit import models as M
from growkit.engine import surgery as S
from growkit.models.depth import FAMILIES



pytestmark = pytest.mark.usefixtures("float64")


X = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
SMALL = dict(in_channels=1, num_classes=5, image_size=8)


NARROW = {"Basic4ResNet": [8, 8, 16, 16], "Plain4Net": [8, 8, 16, 16], "Bottleneck4ResNet": [16, 16, 32, 32],
          "ResNet18": 6, "ResNet20": 6, "ResNet32": 6, "VGG16": 6, "VGG19": 6, "MobileNetV1": 6}


def small(name, **kw):
    """A narrow version of a registered net: the edits are the same, the arithmetic far smaller."""
    torch.manual_seed(0)
    if name in NARROW and "widths" not in kw:
        kw["widths"] = NARROW[name]
    if name == "Bottleneck4ResNet":
        kw.setdefault("stem_width", 8)
    m = M.create(name, **SMALL, **kw).double()
    # Non-trivial BN statistics and affine parameters, so preservation is not an accident of defaults.
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.5, 0.5)
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 2.0)
    return m


def outputs(m, train):
    m = copy.deepcopy(m).train(train)  # train-mode forward updates BN buffers: keep the original intact
    return m(X)


def assert_preserved(m, plan):
    for train in (True, False):
        before = outputs(m, train)
        edited = copy.deepcopy(m)
        plan.apply(edited)
        after = outputs(edited, train)
        torch.testing.assert_close(after, before, rtol=0, atol=1e-10, msg=f"{plan} train={train}")


RESIDUAL = [f for f in FAMILIES if FAMILIES[f][0] != "plain"]


@pytest.mark.parametrize("family", RESIDUAL)
@pytest.mark.parametrize("stage", [0, -1])
def test_append_block_with_zero_last_bn_preserves_function(family, stage):
    m = small(family)
    stage = stage % len(m.stages)
    for train in (True, False):
        before = outputs(m, train)
        grown = copy.deepcopy(m)
        edit = S.AppendBlock(stage).apply(grown)
        blk = grown.get_submodule(edit.where)
        with torch.no_grad():
            blk.last_bn.weight.zero_()
            blk.last_bn.bias.zero_()
        assert grown.depths[stage] == m.depths[stage] + 1
        torch.testing.assert_close(outputs(grown, train), before, rtol=0, atol=0)


def test_append_block_edit_lists_exactly_the_new_parameters():
    m = small("Basic3ResNet")
    old = {n for n, _ in m.named_parameters()}
    edit = S.AppendBlock(1).apply(m)
    new = {n for n, _ in m.named_parameters()} - old
    assert set(edit.new) == new and edit.remap == {}
    assert m.arch == "Basic3ResNet-1-2-1" and edit.after == m.arch
    assert M.from_spec(m.spec).spec == m.spec


def every_group():
    for name in M.list_models("image"):
        for g in small(name).channel_groups():
            yield name, g


@pytest.mark.parametrize("name,group", list(every_group()))
def test_split_with_zero_theta_and_widen_with_zero_outgoing_preserve_function(name, group):
    m = small(name)
    assert_preserved(m, S.SplitChannel(group, 0))
    assert_preserved(m, S.Widen(group, 3, outgoing="zero"))


def test_split_weights_match_the_papers_definition():
    """w_in + theta, w_in - theta, w_out / 2 each; then the output equals a hand-built forward."""
    m = small("LeNet5")
    W1, b1 = m.conv1.weight.detach().clone(), m.conv1.bias.detach().clone()
    W2 = m.conv2.weight.detach().clone()
    k = 2
    theta = torch.randn_like(W1[k])
    S.SplitChannel("conv1", k, theta={"conv1": theta}).apply(m)
    exp1 = torch.cat([W1, W1[k:k + 1]])
    exp1[k] += theta
    exp1[-1] -= theta
    exp2 = torch.cat([W2, W2[:, k:k + 1] / 2], dim=1)
    exp2[:, k] /= 2
    torch.testing.assert_close(m.conv1.weight, exp1, rtol=0, atol=0)
    torch.testing.assert_close(m.conv1.bias, torch.cat([b1, b1[k:k + 1]]), rtol=0, atol=0)
    torch.testing.assert_close(m.conv2.weight, exp2, rtol=0, atol=0)
    # independent forward of the first two layers with the expected weights
    h = F.max_pool2d(F.relu(F.conv2d(X, exp1, torch.cat([b1, b1[k:k + 1]]), padding=2)), 2)
    ref = F.conv2d(h, exp2, m.conv2.bias, padding=m.conv2.padding)
    got = m.conv2(F.max_pool2d(F.relu(m.conv1(X)), 2))
    torch.testing.assert_close(got, ref)


@pytest.mark.parametrize("name,group", [("VGG16", "layers.3"), ("MobileNetV1", "blocks.4.pw"),
                                        ("LeNet5", "conv2"), ("Basic3ResNet", "stages.1.0")])
def test_prune_equals_zeroing_the_channels_outgoing_weights(name, group):
    m = small(name)
    g = m.channel_groups()[group]
    c = 1
    reference = copy.deepcopy(m)
    with torch.no_grad():  # the same channel silenced by hand: every consumer ignores it
        for cons, per in g.consumers:
            reference.get_submodule(cons).weight[:, c * per:(c + 1) * per] = 0
    pruned = copy.deepcopy(m)
    S.PruneChannel(group, c).apply(pruned)
    assert S.group_width(pruned, group) == S.group_width(m, group) - 1
    for train in (True, False):
        torch.testing.assert_close(outputs(pruned, train), outputs(reference, train), rtol=0, atol=1e-10)


def test_widen_records_index_maps_and_he_initialises_new_filters():
    torch.manual_seed(0)
    m = M.create("VGG16", widths=8, **SMALL).double()
    edit = S.Widen("layers.5", 400).apply(m)
    w = m.layers[5].conv.weight
    idx = edit.remap["layers.5.conv.weight"]
    assert idx[0].tolist() == list(range(8)) + [-1] * 400
    assert edit.remap["layers.6.conv.weight"][1].tolist() == list(range(8)) + [-1] * 400
    # He normal, fan-out = out_channels * k * k of the widened conv: std sqrt(2 / (408 * 9))
    assert w[8:].std().item() == pytest.approx((2 / (408 * 9)) ** 0.5, rel=0.05)
    assert torch.count_nonzero(m.layers[6].conv.weight[:, 8:]) == 0


def test_remap_tensor_against_loops():
    old = torch.arange(12.0).view(3, 4)
    index = (torch.tensor([2, -1, 0]), torch.tensor([0, 3, -1, 1, 1]))
    got = S.remap_tensor(old, index, fill=-7.0)
    for i, a in enumerate(index[0].tolist()):
        for j, b in enumerate(index[1].tolist()):
            assert got[i, j] == (old[a, b] if a >= 0 and b >= 0 else -7.0)


def test_flatten_consumer_split_and_prune_keep_feature_blocks():
    m = small("LeNet5")
    per = m.flat
    W = m.fc1.weight.detach().clone()
    S.PruneChannel("conv2", 3).apply(m)
    expect = torch.cat([W[:, :3 * per], W[:, 4 * per:]], dim=1)
    torch.testing.assert_close(m.fc1.weight, expect, rtol=0, atol=0)


def test_bad_plans_raise_one_line_errors():
    from growkit.errors import GrowkitError
    m = small("LeNet5")
    with pytest.raises(GrowkitError, match="no channel group"):
        S.Widen("conv9", 1).apply(m)
    with pytest.raises(GrowkitError, match="out of range"):
        S.SplitChannel("conv1", 99).apply(m)
    with pytest.raises(GrowkitError, match="n > 0"):
        S.Widen("conv1", 0).apply(m)


def test_plans_describe_before_acting():
    m = small("Basic3ResNet")
    assert S.AppendBlock(2).describe(m) == \
        "append a basic block to stage 2: Basic3ResNet-1-1-1 -> Basic3ResNet-1-1-2"
    assert m.depths == [1, 1, 1]
    assert "16 -> 17" in S.SplitChannel("stem", 0).describe(m)


def test_batched_split_matches_hand_built_weights():
    """Channels [4, 1] of LeNet5's conv1: the copies go to 6 and 7, in that order."""
    m = small("LeNet5")
    W1, b1 = m.conv1.weight.detach().clone(), m.conv1.bias.detach().clone()
    W2 = m.conv2.weight.detach().clone()
    th = torch.randn(2, *W1.shape[1:])
    S.SplitChannels("conv1", [4, 1], thetas={"conv1": th}).apply(m)
    exp1 = torch.cat([W1, W1[4:5] - th[0:1], W1[1:2] - th[1:2]])
    exp1[4] = W1[4] + th[0]
    exp1[1] = W1[1] + th[1]
    exp2 = torch.cat([W2, W2[:, 4:5] / 2, W2[:, 1:2] / 2], dim=1)
    exp2[:, 4] = W2[:, 4] / 2
    exp2[:, 1] = W2[:, 1] / 2
    torch.testing.assert_close(m.conv1.weight, exp1, rtol=0, atol=0)
    torch.testing.assert_close(m.conv1.bias, torch.cat([b1, b1[4:5], b1[1:2]]), rtol=0, atol=0)
    torch.testing.assert_close(m.conv2.weight, exp2, rtol=0, atol=0)
    assert m.conv1.out_channels == 8 and m.conv2.in_channels == 8


def test_batched_split_copies_bn_and_splits_flatten_consumer_blocks():
    m = small("VGG16", hidden=[5])
    bn = m.layers[12].bn
    g, b, rm, rv = (t.detach().clone() for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var))
    fc = m.classifier[0].weight.detach().clone()
    S.SplitChannels("layers.12", [5, 0, 3]).apply(m)
    for new, old in ((bn.weight, g), (bn.bias, b), (bn.running_mean, rm), (bn.running_var, rv)):
        torch.testing.assert_close(new, torch.cat([old, old[[5, 0, 3]]]), rtol=0, atol=0)
    half = fc.clone()
    half[:, [5, 0, 3]] /= 2
    torch.testing.assert_close(m.classifier[0].weight, torch.cat([half, fc[:, [5, 0, 3]] / 2], 1), rtol=0, atol=0)
    lenet = small("LeNet5")
    per, W = lenet.flat, lenet.fc1.weight.detach().clone()
    S.SplitChannels("conv2", [2, 7]).apply(lenet)
    blk = lambda c: slice(c * per, (c + 1) * per)  # noqa: E731
    exp = torch.cat([W, W[:, blk(2)] / 2, W[:, blk(7)] / 2], 1)
    exp[:, blk(2)] /= 2
    exp[:, blk(7)] /= 2
    torch.testing.assert_close(lenet.fc1.weight, exp, rtol=0, atol=0)


@pytest.mark.parametrize("name,group", list(every_group()))
def test_batched_split_with_zero_theta_preserves_function(name, group):
    m = small(name)
    w = S.group_width(m, group)
    assert_preserved(m, S.SplitChannels(group, sorted({w - 1, 0})))


@pytest.mark.parametrize("name,group", [("VGG16", "layers.3"), ("MobileNetV1", "blocks.4.pw"),
                                        ("LeNet5", "conv2"), ("Basic3ResNet", "stages.1.0")])
def test_batched_prune_equals_zeroing_those_channels_outgoing_weights(name, group):
    m = small(name)
    g = m.channel_groups()[group]
    gone = [4, 1]
    reference = copy.deepcopy(m)
    with torch.no_grad():
        for cons, per in g.consumers:
            for c in gone:
                reference.get_submodule(cons).weight[:, c * per:(c + 1) * per] = 0
    pruned = copy.deepcopy(m)
    edit = S.PruneChannels(group, gone).apply(pruned)
    w = S.group_width(m, group)
    assert S.group_width(pruned, group) == w - 2
    assert edit.remap[f"{g.producers[0]}.weight"][0].tolist() == [c for c in range(w) if c not in gone]
    for train in (True, False):
        torch.testing.assert_close(outputs(pruned, train), outputs(reference, train), rtol=0, atol=1e-10)


@pytest.mark.parametrize("plan,msg", [
    (S.SplitChannels("conv1", [1, 2, 1]), r"channels \[1\] of conv1 given more than once"),
    (S.PruneChannels("conv1", [0, 0]), "given more than once"),
    (S.SplitChannels("conv1", [6]), "channel 6 out of range for conv1 \\(6 channels\\)"),
    (S.PruneChannels("conv1", [-1]), "out of range"),
    (S.PruneChannels("conv1", list(range(6))), "cannot prune every channel of conv1"),
    (S.SplitChannels("conv1", []), "at least one channel"),
    (S.SplitChannels("conv1", [0, 1], {"conv1": torch.zeros(1, 1, 5, 5)}), r"must have shape \(2, 1, 5, 5\)"),
    (S.SplitChannels("conv1", [0], {"conv2": torch.zeros(1, 6, 5, 5)}), "not producers of conv1"),
])
def test_bad_batched_plans_raise_one_line_errors_and_leave_the_model_alone(plan, msg):
    from growkit.errors import GrowkitError
    m = small("LeNet5")
    before = {k: v.clone() for k, v in m.state_dict().items()}
    with pytest.raises(GrowkitError, match=msg) as e:
        plan.apply(m)
    assert "\n" not in str(e.value)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


def test_batched_plans_describe_before_acting():
    m = small("LeNet5")
    assert S.SplitChannels("conv1", [4, 1]).describe(m) == "split channels [4, 1] of conv1: 6 -> 8 channels"
    assert S.PruneChannels("conv2", [0, 3, 5]).describe(m) == "prune channels [0, 3, 5] of conv2: 16 -> 13 channels"
    assert m.conv1.out_channels == 6
