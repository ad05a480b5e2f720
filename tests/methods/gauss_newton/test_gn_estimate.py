"""The Gauss-Newton estimate against independent answers (float64).

The reference values are computed from explicitly expanded nets: a deep copy gets the single
:class:`~growkit.engine.surgery.SplitChannel` (or :class:`PruneChannel`), ``dz`` is read off the copy's
consumer output, and ``g_s`` is the per-sample gradient at the original consumer output taken
from the *sum* of per-sample losses (no 1/S rescaling involved)."""
from __future__ import annotations

import copy

import pytest
import torch

from growkit.methods.gauss_newton import estimate as gn
from growkit.errors import GrowkitError
from growkit.models import create
from growkit.engine.surgery import PruneChannel, SplitChannel


def _randomise_bn(model, gen):
    """Non-trivial eval-mode BatchNorm, so that ReLU(BN(0)) != 0 and the prune case is real: the
    running statistics are measured on random inputs (so a deep net stays alive), then shifted, and
    the affine parameters are random with a mostly positive shift."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in bns:
        m.momentum = None  # cumulative: the running statistics become this batch's
    model.train()
    with torch.no_grad():
        model(torch.randn(32, model.in_channels, model.image_size, model.image_size, generator=gen,
                          dtype=torch.float64))
    model.eval()
    for m in bns:
        n = m.num_features
        m.running_mean.add_(0.2 * torch.randn(n, generator=gen) * m.running_var.sqrt())
        m.running_var.mul_(0.7 + 0.6 * torch.rand(n, generator=gen))
        m.weight.data.copy_(1.0 + 0.3 * torch.randn(n, generator=gen))
        m.bias.data.copy_(0.3 + 0.3 * torch.randn(n, generator=gen))


def _net(name, widths, gen, **kw):
    torch.manual_seed(int(torch.randint(0, 10 ** 6, (1,), generator=gen)))
    model = create(name, widths=widths, **kw).double()
    _randomise_bn(model, gen)
    return model


def _data(model, n, gen, classes=10):
    x = torch.randn(n, model.in_channels, model.image_size, model.image_size, generator=gen, dtype=torch.float64)
    return x, torch.randint(0, classes, (n,), generator=gen)


def _consumer_out(model, consumer, x):
    box = {}
    h = model.get_submodule(consumer).register_forward_hook(lambda m, i, o: box.__setitem__("z", o))
    try:
        out = model(x)
    finally:
        h.remove()
    return out, box["z"]


def expanded_reference(model, group, k, theta, x, t, loss_fn=gn.per_sample_ce, prune=False, loss_ref="sample"):
    """(GN formula from the expanded net's own dz, true dL of the expanded net), per sample mean; the L of the
    Gauss-Newton term is each sample's loss (``"sample"``) or the batch mean (``"batch"``)."""
    consumer = model.channel_groups()[group].consumers[0][0]
    producer = model.channel_groups()[group].producers[0]
    with torch.enable_grad():
        out, z = _consumer_out(model, consumer, x)
        losses = loss_fn(out, t)
        g = torch.autograd.grad(losses.sum(), z)[0]
    big = copy.deepcopy(model).eval()
    plan = PruneChannel(group, k) if prune else SplitChannel(group, k, {producer: theta})
    plan.apply(big)
    with torch.no_grad():
        out1, z1 = _consumer_out(big, consumer, x)
        losses1 = loss_fn(out1, t)
    d = ((z1 - z).detach() * g).reshape(x.shape[0], -1).sum(1)
    ref = losses.detach() if loss_ref == "sample" else losses.detach().mean()
    est = (d + d ** 2 / (4 * ref)).mean()
    return est.item(), (losses1 - losses.detach()).mean().item()


CASES = [  # (model, widths, extra kw, groups to check): conv->conv, last conv->linear, depthwise, flatten
    ("VGG19", [4, 5, 4, 5, 4, 4, 5, 4, 4, 5, 4, 4, 5, 4, 4, 5], {"in_channels": 1, "image_size": 8},
     ["layers.0", "layers.8", "layers.15"]),
    ("MobileNetV1", [5, 6, 5, 6, 6, 5, 6, 6, 6, 6, 5, 6, 6, 5], {"in_channels": 1, "image_size": 8},
     ["stem", "blocks.0.pw", "blocks.12.pw"]),
    ("LeNet5", [3, 4, 6, 5], {"in_channels": 1, "image_size": 8}, ["conv1", "conv2"]),
]


@pytest.mark.parametrize("loss_ref", ["batch", "sample"])
@pytest.mark.parametrize("name,widths,kw,groups", CASES, ids=[c[0] for c in CASES])
def test_all_at_once_matches_expanded_nets(float64, name, widths, kw, groups, loss_ref):
    gen = torch.Generator().manual_seed(1)
    model = _net(name, widths, gen, **kw)
    x, t = _data(model, 8, gen)
    thetas = gn.init_thetas(model, groups, scale=2.0, generator=gen)
    est = gn.estimate(model, x, t, thetas, loss_ref=loss_ref)
    for gname in groups:
        checked = 0
        c = thetas[gname].shape[0]
        assert est.split[gname].shape == (c,)
        for k in range(c):
            ref_split, _ = expanded_reference(model, gname, k, thetas[gname][k].detach(), x, t, loss_ref=loss_ref)
            ref_prune, _ = expanded_reference(model, gname, k, None, x, t, prune=True, loss_ref=loss_ref)
            assert est.split[gname][k].item() == pytest.approx(ref_split, abs=1e-10, rel=1e-10)
            assert est.prune[gname][k].item() == pytest.approx(ref_prune, abs=1e-10, rel=1e-10)
            checked += (abs(ref_split) > 1e-6) + (abs(ref_prune) > 1e-6)
        # a split only moves a ReLU net where a half crosses the kink: on a 1x1 map that is rare
        assert checked >= 3, f"{gname}: the morphisms barely change the loss, the comparison would prove nothing"


def test_theta_zero_preserves_outputs_and_estimate_is_zero(float64):
    gen = torch.Generator().manual_seed(2)
    model = _net("MobileNetV1", 4, gen, in_channels=1, image_size=8)
    x, t = _data(model, 4, gen)
    ref = model(x)
    for gname, site in gn.sites(model).items():
        big = copy.deepcopy(model)
        SplitChannel(gname, 1, {site.producer: torch.zeros_like(model.get_submodule(site.producer).weight[1])}
                     ).apply(big)
        assert torch.allclose(big.eval()(x), ref, atol=1e-12, rtol=0)
    zeros = {g: torch.zeros_like(th).requires_grad_(True) for g, th in gn.init_thetas(model).items()}
    est = gn.estimate(model, x, t, zeros)
    assert all(v.abs().max().item() == 0.0 for v in est.split.values())
    grads = gn.theta_grads(est, zeros)
    assert all(v.abs().max().item() == 0.0 for v in grads.values())  # why theta must start random


def _least_squares(a, b):
    def loss_fn(out, t):
        return 0.5 * ((out @ a.T - b) ** 2).sum(1)
    return loss_fn


@pytest.mark.parametrize("rank,exact", [(1, True), (2, False)])
def test_least_squares_rank1_exact_rank2_not(float64, rank, exact):
    """Appendix Theorem 2 at S = 1: loss = |A z - b|^2 / 2 of the logits z (the consumer of the last
    conv); rank-1 A with a solvable system makes the Gauss-Newton estimate exact, rank 2 does not."""
    gen = torch.Generator().manual_seed(3)
    model = _net("VGG19", 4, gen, in_channels=1, image_size=8)
    a = torch.randn(rank, 10, generator=gen, dtype=torch.float64)
    b = torch.randn(rank, generator=gen, dtype=torch.float64)
    loss_fn = _least_squares(a, b)
    x, t = _data(model, 1, gen)
    thetas = gn.init_thetas(model, ["layers.15"], scale=1.0, generator=gen)
    est = gn.estimate(model, x, t, thetas, loss_fn=loss_fn)
    errs = []
    for k in range(4):
        _, truth = expanded_reference(model, "layers.15", k, thetas["layers.15"][k].detach(), x, t, loss_fn)
        _, truth_p = expanded_reference(model, "layers.15", k, None, x, t, loss_fn, prune=True)
        if abs(truth) > 1e-6:
            errs.append(abs(est.split["layers.15"][k].item() - truth))
        if abs(truth_p) > 1e-6:  # a channel dead on this sample changes nothing when pruned
            errs.append(abs(est.prune["layers.15"][k].item() - truth_p))
    assert len(errs) >= 4
    if exact:
        assert max(errs) < 1e-12
    else:
        assert max(errs) > 1e-4


def test_per_sample_reference_is_exact_on_a_batch_and_batch_reference_is_not(float64):
    """With S > 1 the theorem holds sample by sample only with each sample's own loss."""
    gen = torch.Generator().manual_seed(4)
    model = _net("VGG19", 3, gen, in_channels=1, image_size=8)
    a, b = torch.randn(1, 10, generator=gen, dtype=torch.float64), torch.randn(1, generator=gen, dtype=torch.float64)
    loss_fn = _least_squares(a, b)
    x, t = _data(model, 6, gen)
    thetas = gn.init_thetas(model, ["layers.15"], scale=1.0, generator=gen)
    per = gn.estimate(model, x, t, thetas, loss_fn=loss_fn, loss_ref="sample")
    bat = gn.estimate(model, x, t, thetas, loss_fn=loss_fn, loss_ref="batch")
    for k in range(3):
        _, truth = expanded_reference(model, "layers.15", k, thetas["layers.15"][k].detach(), x, t, loss_fn)
        assert abs(per.split["layers.15"][k].item() - truth) < 1e-12
    assert max(abs(bat.split["layers.15"][k].item() - per.split["layers.15"][k].item()) for k in range(3)) > 1e-6


def test_batch_estimate_is_mean_of_single_sample_estimates(float64):
    gen = torch.Generator().manual_seed(5)
    model = _net("VGG19", 3, gen, in_channels=1, image_size=8)
    x, t = _data(model, 4, gen)
    thetas = gn.init_thetas(model, scale=0.5, generator=gen)
    whole = gn.estimate(model, x, t, thetas, loss_ref="sample")  # (with the batch mean it is not a mean)
    singles = [gn.estimate(model, x[i:i + 1], t[i:i + 1], thetas, loss_ref="sample") for i in range(4)]
    alive = 0
    for g in thetas:
        for field in ("split", "prune"):
            mean = torch.stack([getattr(s, field)[g] for s in singles]).mean(0)
            assert torch.allclose(getattr(whole, field)[g], mean, atol=1e-13, rtol=1e-11)
            alive += getattr(whole, field)[g].abs().max().item() > 1e-6
    assert alive >= len(thetas)  # half the (layer, morphism) pairs move the loss: not a 0 == 0 test


@pytest.mark.parametrize("name,group", [("VGG19", "layers.2"), ("VGG19", "layers.15"),
                                        ("MobileNetV1", "blocks.1.pw")])
def test_theta_gradient_matches_central_differences(float64, name, group):
    gen = torch.Generator().manual_seed(6)
    model = _net(name, 6, gen, in_channels=1, image_size=8)
    x, t = _data(model, 8, gen)
    thetas = gn.init_thetas(model, [group], scale=1.5, generator=gen)
    grad = gn.theta_grads(gn.estimate(model, x, t, thetas), thetas)[group]
    assert grad.abs().max() > 1e-6
    th = thetas[group].detach()
    h = 1e-6
    flat = torch.randperm(th.numel(), generator=gen)[:12]
    for i in flat.tolist():
        k = i // th[0].numel()  # the channel this entry belongs to: only its estimate moves
        vals = []
        for sgn in (1, -1):
            moved = th.clone().reshape(-1)
            moved[i] += sgn * h
            est = gn.estimate(model, x, t, {group: moved.reshape(th.shape)})
            vals.append(est.split[group][k].item())
        fd = (vals[0] - vals[1]) / (2 * h)
        assert grad.reshape(-1)[i].item() == pytest.approx(fd, abs=1e-7, rel=1e-5)


def test_estimate_leaves_model_untouched(float64):
    gen = torch.Generator().manual_seed(7)
    model = _net("VGG19", 3, gen, in_channels=1, image_size=8).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, t = _data(model, 3, gen)
    gn.estimate(model, x, t, gn.init_thetas(model, generator=gen))
    assert model.training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    hooked = [name for name, m in model.named_modules()
              if m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks]
    assert not hooked  # every producer's forward hook and every consumer's pre-hook removed


def test_channel_cost_counts_hand_derived_parameters():
    vgg = create("VGG19", widths=16, in_channels=3, image_size=32)
    # layers.3: 16*3*3 filter + BN(2) + 16*3*3 column of layers.4.conv
    assert gn.channel_cost(vgg, "layers.3") == 16 * 9 + 2 + 16 * 9
    assert gn.channel_cost(vgg, "layers.15") == 16 * 9 + 2 + 10  # consumer: the classifier
    mob = create("MobileNetV1", widths=32, in_channels=3, image_size=32)
    # stem: 3*3*3 filter, BN(2), depthwise 3x3 kernel, its BN(2), a 32-row column of blocks.0.pw.conv
    assert gn.channel_cost(mob, "stem") == 27 + 2 + 9 + 2 + 32
    big = copy.deepcopy(vgg)
    SplitChannel("layers.3", 0).apply(big)
    assert big.num_params() - vgg.num_params() == gn.channel_cost(vgg, "layers.3")


def test_sites_and_bad_input():
    mob = create("MobileNetV1", widths=8, in_channels=1, image_size=8)
    assert list(gn.sites(mob)) == ["stem"] + [f"blocks.{i}.pw" for i in range(13)]
    resnet = create("ResNet20", widths=[4, 4, 4], in_channels=1, image_size=8)
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([0, 1])
    with pytest.raises(GrowkitError):
        gn.estimate(resnet, x, t, {"nope": torch.zeros(1)})
    vgg = create("VGG19", widths=3, in_channels=1, image_size=8)
    with pytest.raises(GrowkitError):
        gn.estimate(vgg, x, t, gn.init_thetas(vgg), loss_ref="median")


def test_ema_and_theta_adam_match_references():
    assert gn.ema_momentum(64, 50000) == pytest.approx(64 / 100000)
    e = gn.ema_update(None, torch.tensor([2.0]), 0.25)
    e = gn.ema_update(e, torch.tensor([6.0]), 0.25)
    assert e.item() == pytest.approx(0.75 * 2 + 0.25 * 6)
    gen = torch.Generator().manual_seed(8)
    p = torch.randn(3, 2, generator=gen)
    ref = p.clone().requires_grad_(True)
    opt = torch.optim.Adam([ref], lr=1e-2)
    mine = gn.ThetaAdam(1e-2)
    th = {"g": p.clone()}
    for _ in range(5):
        d = torch.randn(3, 2, generator=gen)
        ref.grad = d.clone()
        opt.step()
        mine.step(th, {"g": d})
    assert torch.allclose(th["g"], ref.detach(), atol=1e-7)


@pytest.mark.parametrize("loss_ref", ["sample", "batch"])
def test_float32_samples_with_zero_loss_give_finite_estimates(loss_ref):
    """Trained nets are confident: float32 rounds some samples' cross-entropy to exactly 0 (and their
    gradient with it), where d^2 / (4 L_s) would be 0/0. The guarded estimate is finite and matches the
    float64 computation of the same net (where those losses are tiny but not 0) from expanded nets."""
    gen = torch.Generator().manual_seed(11)
    torch.manual_seed(11)
    model = create("LeNet5", widths=[3, 4, 6, 5], in_channels=1, image_size=8).eval()
    x = torch.randn(8, 1, 8, 8, generator=gen)
    with torch.no_grad():
        fc = model.fc3
        scale = 400.0 / model(x).std().item()
        fc.weight.mul_(scale)
        fc.bias.mul_(scale)
        out = model(x)
    t = out.argmax(1)
    t[:3] = out.argmin(1)[:3]  # three samples badly wrong, five confidently right
    losses = gn.per_sample_ce(model(x), t)
    assert int((losses == 0).sum()) >= 2 and losses.max() > 1  # float32: some losses exactly 0
    thetas = gn.init_thetas(model, scale=0.5, generator=gen)
    est = gn.estimate(model, x, t, thetas, loss_ref=loss_ref)
    for field in (est.split, est.prune):
        assert all(bool(torch.isfinite(v).all()) for v in field.values())
    grads = gn.theta_grads(est, thetas)
    assert all(bool(torch.isfinite(v).all()) for v in grads.values())
    big = copy.deepcopy(model).double()
    x64 = x.double()
    assert bool((gn.per_sample_ce(big(x64), t) > 0).all())
    moved = 0
    for g in thetas:
        for k in range(thetas[g].shape[0]):
            ref_s, _ = expanded_reference(big, g, k, thetas[g][k].detach().double(), x64, t, loss_ref=loss_ref)
            ref_p, _ = expanded_reference(big, g, k, None, x64, t, prune=True, loss_ref=loss_ref)
            assert est.split[g][k].item() == pytest.approx(ref_s, rel=1e-3, abs=1e-5)
            assert est.prune[g][k].item() == pytest.approx(ref_p, rel=1e-3, abs=1e-5)
            moved += abs(ref_s) > 1e-3
    assert moved >= 2  # not a 0 == 0 comparison


def test_a_non_finite_estimate_stops_learning_naming_the_layer():
    torch.manual_seed(12)
    model = create("LeNet5", widths=[3, 4, 6, 5], in_channels=1, image_size=8).eval()
    x, t = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])
    with torch.no_grad():
        model.conv2.weight[1, 0, 0, 0] = float("inf")  # conv1's consumer: its channel gradients turn NaN
    thetas = gn.init_thetas(model, generator=torch.Generator().manual_seed(0))
    before = {g: v.detach().clone() for g, v in thetas.items()}
    ema = {"split": {}, "prune": {}}
    with pytest.raises(gn.NonFiniteEstimate, match=r"layer conv\d .* at mini-batch 1"):
        gn.learn_epoch(model, [(x, t)], thetas, gn.ThetaAdam(1e-2), ema, lambda b: 0.5)
    assert not ema["split"] and all(torch.equal(before[g], thetas[g].detach()) for g in thetas)
