"""The passes' hooks for loops with more than one optimizer or a schedule counted in steps, against hand-derived
answers: Phase.lr_at_step, Passes.step with a penalty, before_step and lr_step in Passes.train_epoch."""
import math

import pytest
import torch

from growkit.engine.passes import Passes
from growkit.engine.schedule import Phase


def test_lr_at_step_cosine_moves_every_step_to_zero():
    p = Phase("x", 0.2, "cosine", epochs=2)
    # 2 epochs of 2 steps: the cosine of step/4
    assert [p.lr_at_step(s, 2) for s in range(5)] == pytest.approx(
        [0.2, 0.1 * (1 + 2 ** -0.5), 0.1, 0.1 * (1 - 2 ** -0.5), 0.0], abs=1e-15)
    assert p.lr_at_step(9, 2) == 0.0  # past the end: stays at 0
    restart = Phase("x", 0.2, "cosine", epochs=6, period=2)
    assert restart.lr_at_step(4, 2) == 0.2 and restart.lr_at_step(5, 2) == pytest.approx(0.1 * (1 + 2 ** -0.5))


def test_lr_at_step_other_schedules_change_at_whole_epochs():
    p = Phase("x", 0.1, "staircase", epochs=4)  # milestones 0.5, 0.75: decays after epochs 2 and 3
    assert [round(p.lr_at_step(s, 3), 12) for s in range(12)] == [0.1] * 6 + [0.01] * 3 + [0.001] * 3
    assert Phase("x", 0.05).lr_at_step(17, 3) == 0.05


class Images:
    """Six float64 images of 3 values in fixed batches of 4 and 2."""

    class info:
        num_classes = 2

    def __init__(self):
        g = torch.Generator().manual_seed(3)
        self.x = torch.randn(6, 3, generator=g, dtype=torch.float64)
        self.y = torch.tensor([0, 1, 1, 0, 1, 0])

    def size(self, split):
        return len(self.y)

    def train_batches(self, batch_size, seed):
        for s in range(0, len(self.y), batch_size):
            yield self.x[s:s + batch_size], self.y[s:s + batch_size]


def linear(w):
    m = torch.nn.Linear(3, 2, bias=False).double()
    with torch.no_grad():
        m.weight.copy_(w)
    return m


def ce_grad(w, x, y):
    """The gradient of the mean cross-entropy of softmax(x w^T), by hand: (softmax - onehot)^T x / batch."""
    z = x @ w.T
    p = torch.exp(z - z.max(1, keepdim=True).values)
    p = p / p.sum(1, keepdim=True)
    p[torch.arange(len(y)), y] -= 1
    return p.T @ x / len(y)


def test_step_adds_the_penalty_to_the_objective():
    data = Images()
    w0 = torch.tensor([[0.3, -0.2, 0.5], [0.1, 0.4, -0.6]], dtype=torch.float64)
    m = linear(w0)
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    passes = Passes(data, torch.device("cpu"), False, 4)
    x, y = data.x[:4], data.y[:4]
    loss, n = passes.step(m, opt, x, y, penalty=lambda: 0.5 * 0.3 * (m.weight ** 2).sum())
    z = x @ w0.T
    want_loss = (torch.logsumexp(z, 1) - z[torch.arange(4), y]).mean()
    assert n == 4 and float(loss) == pytest.approx(float(want_loss), rel=1e-12)  # the objective alone
    want = w0 - 0.5 * (ce_grad(w0, x, y) + 0.3 * w0)
    torch.testing.assert_close(m.weight.detach(), want, rtol=0, atol=1e-14)


def test_before_step_runs_before_each_weight_step_and_lr_step_sets_each_lr():
    """An epoch of two batches; before each weight step another optimizer takes a step on the same model (as
    Learn to Grow's architecture step does); lr_step's values reach the optimizer, times each group's lr_scale."""
    data = Images()
    w = torch.tensor([[0.2, 0.1, -0.3], [-0.4, 0.3, 0.2]], dtype=torch.float64)
    m = linear(w)
    opt = torch.optim.SGD([{"params": m.parameters(), "lr_scale": 2.0}], lr=1.0)
    other = torch.optim.SGD(m.parameters(), lr=0.1)
    passes = Passes(data, torch.device("cpu"), False, 4)
    calls, lrs = [], []

    def before(step, x, y):
        calls.append((step, len(y)))
        passes.step(m, other, data.x[4:], data.y[4:])

    passes.train_epoch(m, opt, None, 0, lr_step=lambda s, n: [0.3, 0.1][s] if n == 2 else math.nan,
                       before_step=before, on_batch=lambda s, loss: lrs.append(opt.param_groups[0]["lr"]))
    assert calls == [(0, 4), (1, 2)] and lrs == [0.6, 0.2]
    xv, yv = data.x[4:], data.y[4:]
    for (s, e), lr in zip([(0, 4), (4, 6)], [0.6, 0.2]):  # the same steps by hand
        w = w - 0.1 * ce_grad(w, xv, yv)
        w = w - lr * ce_grad(w, data.x[s:e], data.y[s:e])
    torch.testing.assert_close(m.weight.detach(), w, rtol=0, atol=1e-14)
