"""Curvature against independent float64 answers: the full Hessian by torch.autograd.functional.hessian,
the GGN as J^T H_out J built by hand, gradients by plain autograd, on nets small enough to hold them."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from growkit import models as M
from growkit.engine import curvature as C
from growkit.engine import surgery as S
from growkit.errors import GrowkitError


def _mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3)).double()


def _resnet(seed=0):
    torch.manual_seed(seed)
    m = M.create("Basic3ResNet-1-1-1", widths=[2, 2, 2], in_channels=1, image_size=8, num_classes=3).double()
    for mod in m.modules():  # running statistics unlike the batch's: eval mode must use these
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
            mod.weight.data.uniform_(0.5, 1.5)
    return m.eval()


def _data(shape, n=12, classes=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *shape, generator=g, dtype=torch.float64)
    y = torch.randint(0, classes, (n,), generator=g)
    return [(x[: n // 2], y[: n // 2]), (x[n // 2:], y[n // 2:])], x, y


def _loss_of_flat(model, x, y):
    names, params = C.trainable(model)
    sizes = [p.numel() for p in params]

    def f(v):
        parts = torch.split(v, sizes)
        ps = {n: t.view_as(p) for n, t, p in zip(names, parts, params)}
        return F.cross_entropy(torch.func.functional_call(model, ps, (x,)), y)
    return f, torch.cat([p.detach().reshape(-1) for p in params])


def _hessian(model, x, y):
    f, flat = _loss_of_flat(model, x, y)
    return torch.autograd.functional.hessian(f, flat)


def _ggn_by_hand(model, x, y):
    names, params = C.trainable(model)
    sizes = [p.numel() for p in params]
    flat = torch.cat([p.detach().reshape(-1) for p in params])

    def logits(v):
        ps = {n: t.view_as(p) for n, t, p in zip(names, torch.split(v, sizes), params)}
        return torch.func.functional_call(model, ps, (x,))
    J = torch.autograd.functional.jacobian(logits, flat)  # (N, C, P)
    p = torch.softmax(logits(flat), 1).detach()
    G = torch.zeros(len(flat), len(flat), dtype=torch.float64)
    for n in range(len(y)):  # the mean cross-entropy's Hessian in the logits: (diag(p) - p p^T) / N
        h = (torch.diag(p[n]) - torch.outer(p[n], p[n])) / len(y)
        G += J[n].T @ h @ J[n]
    return G


@pytest.mark.parametrize("net", ["mlp", "resnet_eval_bn"])
def test_top_eigenvalues_match_the_full_hessian(net):
    model = _mlp().eval() if net == "mlp" else _resnet()
    batches, x, y = _data((4,) if net == "mlp" else (1, 8, 8))
    exact = torch.linalg.eigvalsh(_hessian(model, x, y)).flip(0)[:3].numpy()
    vals, vecs = C.top_eigen(C.operator(model, batches, "hessian"), k=3, tol=1e-12)
    np.testing.assert_allclose(vals, exact, rtol=1e-6)
    H = _hessian(model, x, y).numpy()
    np.testing.assert_allclose(H @ vecs[:, 0], exact[0] * vecs[:, 0], atol=1e-6 * abs(exact[0]))


def test_eval_mode_is_required_and_restored():
    model = _resnet().train()
    batches, x, y = _data((1, 8, 8))
    with pytest.raises(GrowkitError, match="eval mode"):
        C.operator(model, batches)
    model.stages[0].train(False)  # a mixed state comes back as it was
    flags = [m.training for m in model.modules()]
    C.measure(model, batches, probes=4, kinds=("hessian",))
    assert [m.training for m in model.modules()] == flags


def test_trace_within_its_stated_error_over_1000_probes():
    model = _resnet()
    batches, x, y = _data((1, 8, 8))
    H = _hessian(model, x, y)
    est = C.hutchinson(C.operator(model, batches, "hessian"), 1000, seed=3)
    exact = H.trace().item()
    assert abs(est["trace"] - exact) < 4 * est["se"]
    # the stated error is the Rademacher estimator's own: sd = sqrt(2 * sum_{i != j} H_ij^2 / m)
    off = (H ** 2).sum() - (torch.diagonal(H) ** 2).sum()
    assert est["se"] == pytest.approx(math.sqrt(2 * off.item() / 1000), rel=0.15)


def test_hutchpp_and_the_density_agree_with_the_exact_spectrum():
    model = _resnet()
    batches, x, y = _data((1, 8, 8))
    ev = torch.linalg.eigvalsh(_hessian(model, x, y)).numpy()
    op = C.operator(model, batches, "hessian")
    assert C.hutchpp(op, 240, seed=1) == pytest.approx(ev.sum(), rel=0.05)
    grid, dens = C.spectral_density(op, ncv=60, repeats=4, points=512, seed=2)
    dx = grid[1] - grid[0]
    assert dens.sum() * dx == pytest.approx(1.0, abs=0.02)
    assert grid[0] < ev.min() and grid[-1] > ev.max()
    # the density's mean is the mean eigenvalue (trace / dimension), up to the quadrature's noise
    assert (grid * dens).sum() * dx == pytest.approx(ev.mean(), abs=0.1 * np.abs(ev).mean())


def test_ggn_equals_jt_hout_j_built_by_hand():
    for model in (_mlp().eval(), _resnet()):
        shape = (4,) if isinstance(model, torch.nn.Sequential) else (1, 8, 8)
        batches, x, y = _data(shape)
        G = _ggn_by_hand(model, x, y)
        op = C.operator(model, batches, "ggn")
        full = op @ torch.eye(G.shape[0], dtype=torch.float64)
        torch.testing.assert_close(full, G, rtol=1e-9, atol=1e-12)
        vals, _ = C.top_eigen(op, 2, tol=1e-12)
        np.testing.assert_allclose(vals, torch.linalg.eigvalsh(G).flip(0)[:2].numpy(), rtol=1e-6)


def _grown():
    model = _resnet()
    old = {n: p.detach().clone() for n, p in model.named_parameters()}
    edits = [S.AppendBlock(1).apply(model), S.Widen("stages.0.0.conv1", 1).apply(model)]
    torch.manual_seed(5)
    for n, p in model.named_parameters():  # the new entries get nonzero values (no zero-initialized block)
        if n not in old:
            p.data.normal_(0, 0.3)
    for mod in model.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_var.clamp_(min=0.5)
    return model.double().eval(), edits, old


def test_growth_masks_mark_what_the_edits_created():
    model, edits, old = _grown()
    masks = C.growth_masks(model, edits)
    params = dict(model.named_parameters())
    for name, m in masks.items():
        if name not in old:
            assert m.all(), name  # the appended block is new whole
        elif name == "stages.0.0.conv1.weight":  # widened 2 -> 3 filters: filter 2 is new
            assert m[2].all() and not m[:2].any()
        elif name in ("stages.0.0.bn1.weight", "stages.0.0.bn1.bias"):
            assert m.tolist() == [False, False, True]
        elif name == "stages.0.0.conv2.weight":  # its consumer: input column 2 is new
            assert m[:, 2].all() and not m[:, :2].any()
        else:
            assert not m.any() and params[name].shape == old[name].shape, name
    # every old entry kept its value: the mask's complement is exactly the old tensor
    w = params["stages.0.0.conv2.weight"]
    torch.testing.assert_close(w[~masks["stages.0.0.conv2.weight"]].view(2, 2, 3, 3),
                               old["stages.0.0.conv2.weight"])
    units = C.new_units(model, masks)
    assert units["stages.0.0.conv1.weight"] == [2] and "stages.0.0.conv2.weight" not in units
    assert units["stages.1.1.conv1.weight"] == [0, 1]


def test_old_new_split_sums_to_the_whole_and_matches_the_exact_diagonal():
    model, edits, _ = _grown()
    batches, x, y = _data((1, 8, 8))
    new = C.flat_mask(model, C.growth_masks(model, edits))
    H = _hessian(model, x, y)
    op = C.operator(model, batches, "hessian")
    s = C.split_trace(op, new, 1000, seed=4)
    assert s["new"]["trace"] + s["old"]["trace"] == pytest.approx(s["trace"], rel=1e-12)
    exact_new = torch.diagonal(H)[new].sum().item()
    assert abs(s["new"]["trace"] - exact_new) < 4 * s["new"]["se"]
    assert abs(s["old"]["trace"] - (H.trace().item() - exact_new)) < 4 * s["old"]["se"]
    vals, vecs = C.top_eigen(op, 1, tol=1e-12)
    shares = C.mass_split(vecs[:, 0], new)
    assert shares["new"] + shares["old"] == pytest.approx(1.0, abs=1e-12)
    v = torch.linalg.eigh(H).eigenvectors[:, -1]
    assert shares["new"] == pytest.approx((v[new] ** 2).sum().item(), abs=1e-6)
    rec = C.measure(model, batches, probes=50, tol=1e-8, new=new)
    for kind in ("hessian", "ggn"):
        r = rec[kind]
        assert r["trace_new"]["trace"] + r["trace_old"]["trace"] == pytest.approx(r["trace"], rel=1e-12)
        assert r["top_vec"]["new"] + r["top_vec"]["old"] == pytest.approx(1.0, abs=1e-12)
    assert rec["hessian"]["top"] == pytest.approx(torch.linalg.eigvalsh(H)[-1].item(), rel=1e-6)


def test_unit_gradient_norms_match_autograd_rows():
    model, edits, _ = _grown()
    batches, x, y = _data((1, 8, 8))
    units = C.new_units(model, C.growth_masks(model, edits))
    got = C.unit_grad_norms(model, batches, units)
    assert all(p.grad is None for p in model.parameters())
    F.cross_entropy(model(x), y).backward()
    new, old = [], []
    for n, p in model.named_parameters():
        if p.dim() >= 2:
            for r in range(p.shape[0]):
                (new if r in units.get(n, []) else old).append(p.grad[r].norm().item())
    np.testing.assert_allclose(got["new"], new, rtol=1e-10)
    assert got["old_median"] == pytest.approx(float(np.median(old)), rel=1e-10)
    assert got["starved"] == sum(v < C.STARVED * np.median(old) for v in new)
    assert len(new) == 1 + 2 + 2  # the widened filter; the appended block's two convs of 2 filters


def test_a_zero_initialized_block_is_starved_in_its_second_conv():
    # ZeroInit: the last conv of a residual block starts at zero, so the first conv gets no gradient
    model, edits, _ = _grown()
    model.stages[1][1].conv2.weight.data.zero_()
    batches, _, _ = _data((1, 8, 8))
    got = C.unit_grad_norms(model, batches, {"stages.1.1.conv1.weight": [0, 1]})
    assert got["new"] == [0.0, 0.0] and got["starved"] == 2


def test_unknown_kind_and_non_finite_are_one_line_errors():
    model = _mlp().eval()
    batches, _, _ = _data((4,))
    with pytest.raises(GrowkitError, match="unknown curvature kind 'fisher'"):
        C.operator(model, batches, "fisher")
    model[0].weight.data[0, 0] = float("nan")
    with pytest.raises(GrowkitError, match="not finite"):
        C.measure(model, batches, probes=4)
