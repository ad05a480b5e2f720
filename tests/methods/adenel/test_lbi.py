"""The LBI optimizer (AdeNeL's DI-ISS) against hand-derived answers, torch.optim.SGD and the
regularisation-path property of inverse scale space on an orthogonal design."""
import copy
import math

import pytest
import torch
import torch.nn as nn

from growkit.methods.adenel.lbi import (LBI, classifier_name, filter_support, group_soft_threshold, param_groups,
                                       soft_threshold)


# ----------------------------------------------------------------------------- proximal maps

def test_group_prox_hand_cases():
    z = torch.tensor([3.0, 4.0], dtype=torch.float64).reshape(1, 2, 1, 1)  # one filter, ||z|| = 5
    out = group_soft_threshold(z, 1.0).flatten().tolist()
    assert out == pytest.approx([2.4, 3.2], abs=1e-15)  # (1 - 1/5) * [3, 4]
    # ||z|| <= lambda (including = and 0): exactly zero
    for vals in ([0.6, 0.8], [0.3, 0.4], [0.0, 0.0]):
        z = torch.tensor(vals, dtype=torch.float64).reshape(1, 2, 1, 1)
        assert torch.equal(group_soft_threshold(z, 1.0), torch.zeros_like(z))
    # filters are independent groups: [3, 4] shrinks, [0.3, 0.4] vanishes, [0, 6] -> [0, 5]
    z = torch.tensor([[3.0, 4.0], [0.3, 0.4], [0.0, 6.0]], dtype=torch.float64).reshape(3, 2, 1, 1)
    assert group_soft_threshold(z, 1.0).flatten().tolist() == pytest.approx(
        [2.4, 3.2, 0.0, 0.0, 0.0, 5.0], abs=1e-15)
    # lambda = 0 is the identity, also on a zero group (no 0/0)
    z = torch.tensor([[0.0, 0.0], [1.0, -2.0]], dtype=torch.float64).reshape(2, 2, 1, 1)
    assert torch.equal(group_soft_threshold(z, 0.0), z)


def test_lasso_prox_hand_case():
    z = torch.tensor([-2.0, 0.5, 1.5], dtype=torch.float64)
    assert soft_threshold(z, 1.0).tolist() == [-1.0, 0.0, 0.5]


def test_filter_support():
    g = torch.zeros(3, 2, 1, 1)
    g[1, 1] = -0.1
    assert filter_support(g).tolist() == [False, True, False]


# ----------------------------------------------------------------------------- one step by hand

def _hand_step(W, Z, G, grad, lr, nu, kappa, lam):
    """Equations (5)-(7) with element-wise soft thresholding, in plain Python floats."""
    rows, cols = len(W), len(W[0])
    W1 = [[W[i][j] - lr * (grad[i][j] + (W[i][j] - G[i][j]) / nu) for j in range(cols)] for i in range(rows)]
    Z1 = [[Z[i][j] + lr / nu * (W[i][j] - G[i][j]) for j in range(cols)] for i in range(rows)]
    G1 = [[kappa * math.copysign(max(abs(z) - lam, 0.0), z) for z in row] for row in Z1]
    return W1, Z1, G1


def _flat(rows):
    return [v for row in rows for v in row]


def _linear_grad(W, x, y):
    """d/dW of 0.5 * ||W x - y||^2 = (W x - y) x^T, by hand."""
    r = [sum(W[i][j] * x[j] for j in range(len(x))) - y[i] for i in range(len(W))]
    return [[r[i] * x[j] for j in range(len(x))] for i in range(len(W))]


@pytest.mark.parametrize("kappa", [1.0, 2.5])
def test_lbi_steps_on_a_2x3_linear_layer_match_the_equations(kappa):
    W0 = [[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]]
    x, y = [1.0, -2.0, 0.5], [0.3, -0.2]
    lr, nu, lam = 0.1, 0.2, 0.3
    layer = nn.Linear(3, 2, bias=False).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(W0, dtype=torch.float64))
    opt = LBI(layer.parameters(), lr=lr, kappa=kappa, nu=nu, lam=lam)
    xt, yt = torch.tensor(x, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)
    W, Z, G = W0, [[0.0] * 3 for _ in range(2)], [[0.0] * 3 for _ in range(2)]
    for _ in range(3):  # step 1 from Z0 = Gamma0 = 0; steps 2-3 use a non-zero Gamma in (5)
        opt.zero_grad()
        (0.5 * ((layer.weight @ xt - yt) ** 2).sum()).backward()
        opt.step()
        W, Z, G = _hand_step(W, Z, G, _linear_grad(W, x, y), lr, nu, kappa, lam)
        st = opt.state[layer.weight]
        assert layer.weight.flatten().tolist() == pytest.approx(_flat(W), abs=1e-14)
        assert st["z"].flatten().tolist() == pytest.approx(_flat(Z), abs=1e-14)
        assert st["gamma"].flatten().tolist() == pytest.approx(_flat(G), abs=1e-14)
    assert any(g != 0.0 for row in G for g in row) and any(g == 0.0 for row in G for g in row)


def test_momentum_and_weight_decay_act_on_grad_L_only():
    """d = momentum buffer of (grad + wd W); the coupling (W - Gamma)/nu is added after, never buffered."""
    w0, lr, nu, mom, wd = 2.0, 0.1, 0.5, 0.9, 0.01
    p = nn.Parameter(torch.tensor([[w0]], dtype=torch.float64))  # a 1x1 linear weight: LBI path
    opt = LBI([p], lr=lr, nu=nu, kappa=1.0, lam=10.0, momentum=mom, weight_decay=wd)  # lam large: Gamma = 0
    w, buf, z = w0, None, 0.0
    for _ in range(3):
        opt.zero_grad()
        (p ** 3).sum().backward()  # grad L = 3 w^2
        opt.step()
        d = 3 * w * w + wd * w
        buf = d if buf is None else mom * buf + d
        w, z = w - lr * (buf + w / nu), z + lr / nu * w
        assert p.item() == pytest.approx(w, abs=1e-13)
        assert opt.state[p]["momentum_buffer"].item() == pytest.approx(buf, abs=1e-13)
        assert opt.state[p]["z"].item() == pytest.approx(z, abs=1e-13)
        assert opt.state[p]["gamma"].item() == 0.0


# ----------------------------------------------------------------------------- 1/nu = 0 is SGD

class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 5 * 5, 6)
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x)))
        return self.head(torch.relu(self.fc(x.flatten(1))))


@pytest.mark.parametrize("nesterov", [False, True])
def test_inverse_nu_zero_is_sgd_bit_for_bit(nesterov):
    torch.manual_seed(0)
    a = _Net()
    b = copy.deepcopy(a)
    hyper = dict(lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=nesterov)
    opt_a = LBI(param_groups(a), nu=math.inf, kappa=1.0, lam=1.0, **hyper)
    opt_b = torch.optim.SGD(b.parameters(), foreach=False, **hyper)
    gen = torch.Generator().manual_seed(1)
    for _ in range(5):
        x, y = torch.randn(8, 2, 5, 5, generator=gen), torch.randint(0, 3, (8,), generator=gen)
        for net, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad()
            nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
    for (n, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(pa, pb), n
    assert torch.equal(opt_a.state[a.conv.weight]["z"], torch.zeros_like(a.conv.weight))


def test_param_groups_and_state():
    net = _Net()
    assert classifier_name(net) == "head"
    groups = param_groups(net, exclude=("head",))
    assert groups[0]["lbi"] and groups[0]["names"] == ["conv.weight", "fc.weight"]
    assert set(groups[1]["names"]) == {"conv.bias", "bn.weight", "bn.bias", "fc.bias", "head.weight", "head.bias"}
    opt = LBI(groups, lr=0.1, nu=1.0, lam=0.0)
    nn.functional.cross_entropy(net(torch.randn(4, 2, 5, 5)), torch.tensor([0, 1, 2, 0])).backward()
    opt.step()
    assert set(opt.state[net.conv.weight]) == {"z", "gamma"}  # momentum 0: no buffer
    assert "z" not in opt.state[net.head.weight] and "z" not in opt.state[net.bn.weight]
    # lam = 0: Gamma = kappa Z, non-zero after one step
    assert torch.equal(opt.state[net.fc.weight]["gamma"], opt.state[net.fc.weight]["z"])
    opt.reset_support()
    assert not opt.state[net.fc.weight]["z"].any() and not opt.state[net.fc.weight]["gamma"].any()


def test_bad_hyper_parameters():
    p = [nn.Parameter(torch.zeros(2, 2))]
    for kw in ({"nu": 0.0}, {"kappa": 0.0}, {"lam": -1.0}, {"lr": -1.0}, {"momentum": 1.0}):
        with pytest.raises(ValueError):
            LBI(p, **kw)


# ----------------------------------------------------------------------------- the regularisation path

def test_true_groups_enter_the_support_before_null_groups():
    """Sparse group regression with an orthogonal design (X^T X / n = I): along the LBI path every
    group carrying signal becomes non-zero in Gamma before any null group does."""
    torch.manual_seed(0)
    n, n_groups, k = 64, 10, 3
    q, _ = torch.linalg.qr(torch.randn(n, n_groups * k, dtype=torch.float64))
    X = q * math.sqrt(n)
    beta = torch.zeros(n_groups, k, dtype=torch.float64)
    true = [0, 3, 7]
    beta[0] = torch.tensor([2.0, -1.0, 0.5])
    beta[3] = torch.tensor([0.0, 1.0, 1.0])
    beta[7] = torch.tensor([-0.6, 0.4, 0.3])
    y = X @ beta.flatten() + 0.1 * torch.randn(n, dtype=torch.float64)
    W = nn.Parameter(torch.zeros(n_groups, k, 1, 1, dtype=torch.float64))  # one "filter" per group
    opt = LBI([W], lr=0.1, nu=2.0, kappa=1.0, lam=1.0)
    entered = {}
    for t in range(1, 3001):
        opt.zero_grad()
        (0.5 / n * ((X @ W.flatten() - y) ** 2).sum()).backward()
        opt.step()
        for g in filter_support(opt.state[W]["gamma"]).nonzero().flatten().tolist():
            entered.setdefault(g, t)
        if len(entered) == n_groups:
            break
    assert set(true) <= set(entered), entered
    last_true = max(entered[g] for g in true)
    first_null = min((entered[g] for g in entered if g not in true), default=math.inf)
    assert last_true < first_null < math.inf, entered  # null groups do enter later (fitting the noise)
    # the strongest group enters first
    assert min(entered, key=entered.get) == 0
