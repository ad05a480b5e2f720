"""The lbi optimizer kind in the registry: groups, state carried across a growth round, export/restore."""
import pytest
import torch
import torch.nn.functional as F

from growkit import models as M
from growkit.engine import optim, surgery
from growkit.engine.config import TrainConfig
from growkit.methods.adenel.lbi import group_soft_threshold


def _trained_vgg(steps=3):
    torch.manual_seed(0)
    net = M.create("VGG16", widths=4, in_channels=1, num_classes=10, image_size=8)
    cfg = TrainConfig(model="VGG16", optimizer="lbi", momentum=0.9, weight_decay=0.0,
                      optimizer_kw={"nu": 0.5, "lam": 0.05, "kappa": 1.0, "exclude": ["classifier.0"]})
    opt = optim.build(net, cfg, 0.05)
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(32, 1, 8, 8, generator=gen), torch.randint(0, 10, (32,), generator=gen)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
    return net, opt, cfg, (x, y)


def test_groups_follow_roles_and_the_classifier_is_excluded():
    net, opt, _, _ = _trained_vgg(1)
    lbi = {n for g in opt.param_groups if g["lbi"] for n in g["names"]}
    assert lbi == {f"layers.{i}.conv.weight" for i in range(13)}
    st = opt.state[net.classifier[0].weight]
    assert "z" not in st and "momentum_buffer" in st
    assert optim.kind_of(opt) == "lbi"


def test_widening_three_adjacent_vgg_layers_keeps_old_state_and_zeroes_new_entries():
    net, opt, _, (x, y) = _trained_vgg()
    names = [f"layers.{i}.conv.weight" for i in (3, 4, 5, 6)]
    before = {n: {k: v.clone() for k, v in opt.state[dict(net.named_parameters())[n]].items()} for n in names}
    weights = {n: dict(net.named_parameters())[n].detach().clone() for n in names}
    assert all(before[n]["gamma"].any() and before[n]["momentum_buffer"].any() for n in names)
    old_state = optim.state_by_name(net, opt)
    old_shapes = {n: p.shape for n, p in net.named_parameters()}
    edits = [surgery.Widen(f"layers.{i}", 4, outgoing="he").apply(net) for i in (3, 4, 5)]
    opt = optim.carry(net, opt, edits, old_state, old_shapes)
    params = dict(net.named_parameters())
    # new output filters of 3, 4, 5 (rows 4..7) and new input channels of 4, 5, 6 (columns 4..7)
    out_grown = {"layers.3.conv.weight", "layers.4.conv.weight", "layers.5.conv.weight"}
    in_grown = {"layers.4.conv.weight", "layers.5.conv.weight", "layers.6.conv.weight"}
    for n in names:
        p, st = params[n], opt.state[params[n]]
        rows = 8 if n in out_grown else 4
        cols = 8 if n in in_grown else 4
        assert p.shape[:2] == (rows, cols), n
        assert torch.equal(p[:4, :4], weights[n]), n  # old W kept
        for k in ("z", "gamma", "momentum_buffer"):
            assert st[k].shape == p.shape
            assert torch.equal(st[k][:4, :4], before[n][k]), (n, k)  # old Z, Gamma, momentum kept
            new = torch.ones(p.shape, dtype=torch.bool)
            new[:4, :4] = False
            assert not st[k][new].any(), (n, k)  # new entries 0
        if rows == 8:
            assert p[4:].abs().sum() > 0, n  # new filters He-initialised
        if cols == 8:
            assert p[:4, 4:].abs().sum() > 0, n  # new incoming columns He-initialised (outgoing="he")
        # Gamma = kappa * Prox(Z) still holds after the padding (up to the norm's summation order)
        assert torch.allclose(st["gamma"], group_soft_threshold(st["z"], 0.05), rtol=1e-5, atol=1e-8)
    # training goes on over the new shapes
    opt.zero_grad()
    F.cross_entropy(net(x), y).backward()
    opt.step()
    assert opt.state[params["layers.4.conv.weight"]]["z"][4:].any()


def test_export_restore_rebuilds_lbi_with_its_state():
    net, opt, cfg, _ = _trained_vgg(2)
    ex = optim.export(net, opt)
    again = optim.restore(net, cfg, ex, 0.05)
    assert optim.kind_of(again) == "lbi"
    assert [g["lbi"] for g in again.param_groups] == [g["lbi"] for g in opt.param_groups]
    w = net.layers[2].conv.weight
    for k in ("z", "gamma", "momentum_buffer"):
        assert torch.equal(again.state[w][k], opt.state[w][k])


def test_unknown_lbi_option_is_one_line_error():
    from growkit.errors import GrowkitError
    net = M.create("LeNet5", in_channels=1, image_size=8)
    with pytest.raises(GrowkitError, match="lbi"):
        optim.build(net, TrainConfig(model="LeNet5", optimizer="lbi", optimizer_kw={"mu": 3}), 0.1)


def test_reset_support_zeroes_z_and_gamma_after_a_growth_and_keeps_momentum():
    import dataclasses
    net, opt, cfg, _ = _trained_vgg()
    cfg = dataclasses.replace(cfg, optimizer_kw={**cfg.optimizer_kw, "reset_support": True})
    reset = optim.build(net, cfg, 0.05)
    optim.load_state_by_name(net, reset, optim.state_by_name(net, opt))
    w = net.layers[2].conv.weight
    mom = reset.state[w]["momentum_buffer"].clone()
    assert reset.state[w]["z"].any()
    old_state = optim.state_by_name(net, reset)
    old_shapes = {n: p.shape for n, p in net.named_parameters()}
    edits = [surgery.Widen("layers.7", 4, outgoing="he").apply(net)]
    reset = optim.carry(net, reset, edits, old_state, old_shapes)
    w = net.layers[2].conv.weight  # untouched by the edit, yet restarted
    assert not reset.state[w]["z"].any() and not reset.state[w]["gamma"].any()
    assert torch.equal(reset.state[w]["momentum_buffer"], mom)
