"""Optimizer registry and state carry: every pair of width edits against hand-tracked channel identities."""
import copy
import itertools

import pytest
import torch

from growkit import models as M
from growkit.engine import optim
from growkit.engine import surgery as S
from growkit.engine.config import TrainConfig
from growkit.errors import GrowkitError

SMALL = dict(in_channels=1, num_classes=5, image_size=8)


# ----------------------------------------------------------------------------- hand-tracked channel labels
# Each edit kind as a list operation on channel labels: the label of a surviving channel is its index
# before the growth step; None marks an entry the step created. Written independently of the index maps.

def _widen(g, w):
    return S.Widen(g, 2), lambda lab: lab + [None, None]


def _split(g, w):  # the last channel: after a widen or split it is one the step created
    return S.SplitChannel(g, w - 1), lambda lab: lab + [None]


def _prune(g, w):
    return S.PruneChannel(g, 1), lambda lab: lab[:1] + lab[2:]


def _splits(g, w):
    return S.SplitChannels(g, [w - 1, 0, 2]), lambda lab: lab + [None] * 3


def _prunes(g, w):
    return S.PruneChannels(g, [w - 2, 0]), lambda lab: [c for i, c in enumerate(lab) if i not in (w - 2, 0)]


KINDS = {"widen": _widen, "split": _split, "prune": _prune, "splits": _splits, "prunes": _prunes}
# (first group, second group): the same group, adjacent convs, the last conv and then its classifier
# consumer's neighbour (the hidden linear group reads the last conv group)
PLACES = {"same": ("layers.3", "layers.3"), "adjacent": ("layers.3", "layers.4"),
          "conv_then_classifier": ("layers.12", "classifier.0")}


def _vgg():
    torch.manual_seed(0)
    return M.create("VGG16", widths=6, hidden=[7], **SMALL)


def _dims(model, name):
    """For every dim of parameter ``name``: the channel group it follows (None: a fixed dim)."""
    groups = model.channel_groups()
    module = name.rpartition(".")[0]
    dims = [None] * model.get_parameter(name).dim()
    for g in groups.values():
        if module in g.producers or module in g.channelwise:
            dims[0] = g.name
        if module in (c for c, _ in g.consumers) and len(dims) > 1:  # a consumer's weight columns
            dims[1] = g.name
    return dims


def _expected(old, labels_per_dim, fill):
    """Hand placement: out[i, j, ...] = old[label_i, label_j, ...], ``fill`` where a label is None."""
    sizes = [len(l) for l in labels_per_dim]
    out = torch.full(sizes + list(old.shape[len(sizes):]), fill, dtype=old.dtype)
    for pos in itertools.product(*(range(n) for n in sizes)):
        lab = [labels_per_dim[d][i] for d, i in enumerate(pos)]
        if all(l is not None for l in lab):
            out[pos] = old[tuple(lab)]
    return out


def _fill_state(model, opt, kind):
    g = torch.Generator().manual_seed(3)
    for n, p in model.named_parameters():
        if kind == "sgd":
            opt.state[p] = {"momentum_buffer": torch.randn(p.shape, generator=g)}
        else:
            opt.state[p] = {"step": torch.tensor(7.0), "exp_avg": torch.randn(p.shape, generator=g),
                            "exp_avg_sq": torch.rand(p.shape, generator=g)}


def _check_carry(model, plan_makers, kind):
    """Apply ``plan_makers`` [(group, maker)] in one growth step and compare the carried state with the
    hand-tracked labels of every group."""
    cfg = TrainConfig(optimizer=kind, decay_bn_bias=False)
    opt = optim.build(model, cfg, 0.1)
    _fill_state(model, opt, kind)
    old = {n: {k: v.clone() for k, v in s.items()} for n, s in optim.state_by_name(model, opt).items()}
    shapes = {n: p.shape for n, p in model.named_parameters()}
    dims_before = {n: _dims(model, n) for n in shapes}
    labels = {g: list(range(S.group_width(model, g))) for g in model.channel_groups()}
    edits = []
    for group, maker in plan_makers:
        plan, relabel = maker(group, S.group_width(model, group))
        edits.append(plan.apply(model))
        labels[group] = relabel(labels[group])
    new_opt = optim.carry(model, opt, edits, old, shapes)
    got = optim.state_by_name(model, new_opt)
    keys = ["momentum_buffer"] if kind == "sgd" else ["exp_avg", "exp_avg_sq"]
    for name, p in model.named_parameters():
        dims = dims_before[name]
        per_dim = [labels[g] if g is not None else list(range(shapes[name][d])) for d, g in enumerate(dims)
                   if d < 2]
        for key in keys:
            exp = _expected(old[name][key], per_dim, 0.0)
            torch.testing.assert_close(got[name][key], exp, rtol=0, atol=0, msg=f"{name} {key}")
        if kind == "adam":
            assert got[name]["step"] == 7.0
    # hyper-parameters of every group survive, and the new optimizer steps over the new shapes
    assert [(g["role"], g["weight_decay"]) for g in new_opt.param_groups] == \
        [(g["role"], g["weight_decay"]) for g in opt.param_groups]
    model(torch.randn(2, 1, 8, 8)).sum().backward()
    new_opt.step()


@pytest.mark.parametrize("kind", ["sgd", "adam"])
@pytest.mark.parametrize("place", list(PLACES))
@pytest.mark.parametrize("first,second", list(itertools.product(KINDS, KINDS)))
def test_every_pair_of_edits_carries_state_to_the_hand_tracked_rows(first, second, place, kind):
    g1, g2 = PLACES[place]
    _check_carry(_vgg(), [(g1, KINDS[first]), (g2, KINDS[second])], kind)


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_widens_of_three_adjacent_vgg16_layers_in_one_step(kind):
    _check_carry(_vgg(), [("layers.4", _widen), ("layers.5", _widen), ("layers.6", _widen)], kind)


def test_compose_remaps_chains_and_keeps_new_parameters_new():
    m = M.create("Basic3ResNet-1-1-1", **SMALL)
    e1 = S.AppendBlock(0).apply(m)
    e2 = S.Widen("stages.0.1.conv1", 1).apply(m)  # widens a conv the first edit created
    e3 = S.PruneChannel("stages.0.0.conv1", 2).apply(m)
    e4 = S.SplitChannel("stages.0.0.conv1", 0).apply(m)
    c = S.compose_remaps([e1, e2, e3, e4])
    assert "stages.0.1.conv1.weight" in c.new and "stages.0.1.conv1.weight" not in c.remap
    # 16 channels: drop 2, then copy 0 to the end (a new entry)
    assert c.remap["stages.0.0.conv1.weight"][0].tolist() == [0, 1] + list(range(3, 16)) + [-1]
    assert c.remap["stages.0.0.conv2.weight"][1].tolist() == [0, 1] + list(range(3, 16)) + [-1]
    assert c.remap["stages.0.0.conv2.weight"][0].tolist() == list(range(16))


class PerFilter(optim.OptimizerKind):
    """A test kind with state shaped like the weight ("z", new entries -3) and per-filter state ("u",
    one entry per output filter, new entries 1), as the Linearized Bregman Iteration keeps."""
    name = "test_perfilter"
    options = {"momentum": None}
    fills = {"z": -3.0, "u": 1.0}

    def make(self, groups):
        return torch.optim.SGD(groups, lr=groups[0]["lr"])

    def new_state(self, param, group):
        return {"z": torch.full_like(param, -3.0), "u": torch.ones(param.shape[0])}

    def remap_other(self, key, value, name, index, param):
        if key == "u":
            return S.remap_tensor(value, index[:1], self.fill(key))
        return super().remap_other(key, value, name, index, param)


def test_a_registered_kind_carries_per_filter_state_through_its_hook_with_its_fill_values():
    optim.register(PerFilter)
    try:
        m = M.create("LeNet5", **SMALL)
        opt = optim.build(m, TrainConfig(optimizer="test_perfilter"), 0.1)
        for n, p in m.named_parameters():
            opt.state[p] = {"z": torch.randn_like(p), "u": torch.rand(p.shape[0]) + 2}
        old = {n: dict(s) for n, s in optim.state_by_name(m, opt).items()}
        shapes = {n: p.shape for n, p in m.named_parameters()}
        edits = [S.PruneChannels("conv2", [0, 5]).apply(m), S.Widen("conv2", 2).apply(m)]
        new = optim.carry(m, opt, edits, old, shapes)
        assert optim.kind_of(new) == "test_perfilter"
        got = optim.state_by_name(m, new)
        keep = [i for i in range(16) if i not in (0, 5)]
        u = got["conv2.weight"]["u"]
        assert torch.equal(u, torch.cat([old["conv2.weight"]["u"][keep], torch.ones(2)]))
        z = got["conv2.weight"]["z"]
        assert torch.equal(z, torch.cat([old["conv2.weight"]["z"][keep], torch.full((2, 6, 5, 5), -3.0)]))
        per = m.flat  # fc1 reads conv2's channels in blocks of `per` features
        cols = torch.tensor([c * per + k for c in keep for k in range(per)])
        fz = got["fc1.weight"]["z"]
        assert torch.equal(fz[:, :len(cols)], old["fc1.weight"]["z"][:, cols])
        assert torch.all(fz[:, len(cols):] == -3.0)
        assert torch.equal(got["fc1.weight"]["u"], old["fc1.weight"]["u"])  # rows of fc1 did not move
    finally:
        optim._KINDS.pop("test_perfilter")


def test_state_of_another_shape_without_a_hook_is_an_error_not_a_guess():
    m = M.create("LeNet5", **SMALL)
    opt = optim.build(m, TrainConfig(), 0.1)
    opt.state[m.conv1.weight] = {"momentum_buffer": torch.zeros_like(m.conv1.weight), "odd": torch.ones(6)}
    old = optim.state_by_name(m, opt)
    shapes = {n: p.shape for n, p in m.named_parameters()}
    edits = [S.Widen("conv1", 1).apply(m)]
    with pytest.raises(GrowkitError, match="cannot carry state 'odd'"):
        optim.carry(m, opt, edits, old, shapes)


def test_parameter_groups_by_role_and_no_decay_on_bn_and_bias():
    m = M.create("VGG16", widths=4, hidden=[6], **SMALL)
    opt = optim.build(m, TrainConfig(decay_bn_bias=False, weight_decay=1e-3,
                                     optimizer_kw={"lr_scale": {"bias": 0.5}}), 0.2)
    groups = {g["role"]: g for g in opt.param_groups}
    assert set(groups["weight"]["names"]) == {f"layers.{i}.conv.weight" for i in range(13)} | \
        {"classifier.0.weight", "classifier.1.weight"}
    assert set(groups["bn"]["names"]) == {f"layers.{i}.bn.{a}" for i in range(13) for a in ("weight", "bias")}
    assert set(groups["bias"]["names"]) == {"classifier.0.bias", "classifier.1.bias"}
    assert groups["weight"]["weight_decay"] == 1e-3 and groups["bn"]["weight_decay"] == 0.0
    assert groups["bias"]["weight_decay"] == 0.0
    assert groups["bias"]["lr"] == pytest.approx(0.1) and groups["weight"]["lr"] == 0.2
    on = optim.build(m, TrainConfig(weight_decay=1e-3), 0.2)
    assert all(g["weight_decay"] == 1e-3 for g in on.param_groups)


def test_trainer_scales_each_groups_lr_by_its_lr_scale():
    from growkit.engine.trainer import Trainer
    cfg = TrainConfig(depths=[1, 1, 1], epochs=1, progress=False, eval_test=False, weight_decay=0.0,
                      optimizer_kw={"lr_scale": {"bn": 0.0}})
    t = Trainer(cfg)
    bns = [m for m in t.model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    convs = [m for m in t.model.modules() if isinstance(m, torch.nn.Conv2d)]
    bn_before = [(m.weight.detach().clone(), m.bias.detach().clone()) for m in bns]
    conv_before = [m.weight.detach().clone() for m in convs]
    t.fit()
    assert len(bns) > 3 and all(torch.equal(m.weight, w) and torch.equal(m.bias, b)
                                for m, (w, b) in zip(bns, bn_before))  # lr 0 on every BN step
    assert all(not torch.equal(m.weight, w) for m, w in zip(convs, conv_before))
    assert {g["role"]: g["lr"] for g in t.opt.param_groups}["bn"] == 0.0


def test_adam_export_restore_rebuilds_the_same_optimizer():
    torch.manual_seed(0)
    m = M.create("LeNet5", **SMALL)
    cfg = TrainConfig(optimizer="adam", optimizer_kw={"betas": [0.8, 0.99], "eps": 1e-6}, decay_bn_bias=False)
    opt = optim.build(m, cfg, 1e-3)
    x = torch.randn(4, 1, 8, 8)
    for _ in range(2):
        opt.zero_grad()
        m(x).square().mean().backward()
        opt.step()
    exported = optim.export(m, opt)
    assert exported["kind"] == "adam" and exported["groups"][0]["betas"] == [0.8, 0.99]
    m2 = copy.deepcopy(m)
    # restore from a config that names another optimizer: the checkpoint decides
    opt2 = optim.restore(m2, TrainConfig(), exported, 1e-3)
    assert isinstance(opt2, torch.optim.Adam) and opt2.param_groups[0]["betas"] == (0.8, 0.99)
    assert [g["weight_decay"] for g in opt2.param_groups] == [g["weight_decay"] for g in opt.param_groups]
    for o, mm in ((opt, m), (opt2, m2)):
        o.zero_grad()
        mm(x).square().mean().backward()
        o.step()
    assert all(torch.equal(a, b) for a, b in zip(m.parameters(), m2.parameters()))


@pytest.mark.parametrize("kw,msg", [
    (dict(optimizer="rmsprop"), "unknown optimizer 'rmsprop'; valid: .*adam.*sgd"),
    (dict(optimizer="adam", optimizer_kw={"beta": 0.9}), "'adam' does not take beta; it takes amsgrad, betas"),
    (dict(optimizer_kw={"momentum": 0.5, "nesterovv": True}), "does not take nesterovv"),
    (dict(optimizer_kw={"lr_scale": {"conv": 2.0}}), "lr_scale must map roles"),
    (dict(optimizer_kw=[1]), "optimizer_kw must be a dict"),
])
def test_bad_optimizer_configs_are_one_line_errors(kw, msg):
    with pytest.raises(GrowkitError, match=msg) as e:
        TrainConfig(**kw).validate()
    assert "\n" not in str(e.value)
