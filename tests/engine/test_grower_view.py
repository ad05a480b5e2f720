"""The grower's read-only view: no test metrics, no side effects from probing, data through services."""
import pytest
import torch
import torch.nn.functional as F

from growkit.engine import optim
from growkit.engine.config import TrainConfig
from growkit.errors import GrowkitError
from growkit.growers.base import Decision, Grower
from growkit.growers.view import ReadOnlyRow
from growkit.engine.schedule import Phase
from growkit.engine.trainer import Trainer


def test_row_hides_test_fields_and_refuses_to_read_them():
    row = ReadOnlyRow({"epoch": 3, "val_acc": 71.5, "test_acc": 70.0, "test_loss": 0.9, "test_top5": None})
    assert dict(row) == {"epoch": 3, "val_acc": 71.5} and len(row) == 2
    for key in ("test_acc", "test_loss", "test_top5"):
        with pytest.raises(GrowkitError, match="test metrics"):
            row[key]
        with pytest.raises(GrowkitError):
            row.get(key)
        with pytest.raises(GrowkitError):
            key in row
    with pytest.raises(TypeError):
        row["val_acc"] = 0.0  # read-only


class Reader(Grower):
    """Reads one key of its view's row at the first decision."""
    def __init__(self, key):
        super().__init__()
        self.key, self.seen = key, None

    def decide(self, view):
        self.seen = view.row[self.key]
        return Decision(done=True)

    def state_dict(self):
        return {}

    def load_state_dict(self, s):
        pass


def _trainer(grower=None, **kw):
    cfg = TrainConfig(depths=[1, 1, 1], epochs=2, progress=False, batch_size=64, **kw)
    phases = [Phase("grow", 0.05, grows=True, max_epochs=1), Phase("finetune", 0.05, epochs=1)]
    return Trainer(cfg, None, phases=phases, grower=grower)


def test_a_grower_reading_test_acc_fails_the_run():
    t = _trainer(Reader("test_acc"))
    with pytest.raises(GrowkitError, match="test_acc"):
        t.fit()
    ok, rows = Reader("val_acc"), []

    class Rows:
        def on_epoch(self, trainer, row):
            rows.append(row)

    t = _trainer(ok)
    t.hooks.callbacks.append(Rows())
    t.fit()
    assert ok.seen == rows[0]["val_acc"]  # the validation accuracy is readable


def test_view_offers_train_and_val_batches_but_not_test():
    t = _trainer()
    view = t.view({"epoch": 0})
    with pytest.raises(GrowkitError, match="test"):
        view.batches(1, split="test")
    with pytest.raises(GrowkitError, match="test"):
        view.eval_batches("test")
    # unaugmented train batches are the stored split in order, at the training batch size
    (x, y), = list(view.batches(1, augment=False))
    x0, y0 = next(t.data.eval_batches("train", 64))
    assert torch.equal(x, x0) and torch.equal(y, y0) and len(y) == 64
    # augmented ones are the trainer's own epoch stream for that seed
    (xa, ya), = list(view.batches(1, seed=11))
    xb, yb = next(t.data.train_batches(64, 11))
    assert torch.equal(xa, xb) and torch.equal(ya, yb)


def _after_some_steps(t):
    """Non-trivial optimizer state, BN statistics and leftover .grad, as after an epoch."""
    t.train_epoch(t.opt, None, seed=1)
    return t


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_probe_changes_nothing_and_its_hooks_see_the_right_tensors(mode):
    t = _after_some_steps(_trainer())
    m = t.model
    m.train()  # the mode the probe must restore
    weights = {n: p.detach().clone() for n, p in m.named_parameters()}
    grads = {n: p.grad for n, p in m.named_parameters()}
    assert all(g is not None for g in grads.values())
    grad_values = {n: g.clone() for n, g in grads.items()}
    buffers = {n: b.clone() for n, b in m.named_buffers()}
    state = {n: {k: v.clone() for k, v in s.items()} for n, s in optim.state_by_name(m, t.opt).items()}

    seen = []
    hook = lambda mod, inp, out: seen.append((inp[0].detach().clone(), out.detach().clone()))  # noqa: E731
    res = t.view({"epoch": 1}).probe(2, hooks={"head": hook}, mode=mode, grads=True)

    assert res["samples"] == 128 and len(seen) == 2
    for n, p in m.named_parameters():
        assert torch.equal(p, weights[n]), n
        assert p.grad is grads[n] and torch.equal(p.grad, grad_values[n]), n  # the very same .grad tensors
    for n, b in m.named_buffers():
        assert torch.equal(b, buffers[n]), n  # BN running statistics untouched (restored in train mode)
    after = optim.state_by_name(m, t.opt)
    assert set(after) == set(state) and all(torch.equal(after[n][k], v) for n, s in state.items()
                                            for k, v in s.items())
    assert m.training  # restored

    # Hand-derived answers: the head is linear, logits = f W^T + b; d(mean CE)/db = mean(softmax - onehot).
    W, b = m.head.weight.detach(), m.head.bias.detach()
    batches = list(t.data.eval_batches("train", 64))[:2]
    gb, losses = torch.zeros_like(b, dtype=torch.float64), []
    for (feat, logits), (_, y) in zip(seen, batches):
        torch.testing.assert_close(logits, feat @ W.T + b, rtol=1e-5, atol=1e-5)
        p = torch.softmax(logits.double(), 1)
        onehot = F.one_hot(y, p.shape[1]).double()
        gb += (p - onehot).mean(0) / len(batches)
        losses.append(-(onehot * p.log()).sum(1).mean().item())
    torch.testing.assert_close(res["grads"]["head.bias"].double(), gb, rtol=1e-4, atol=1e-6)
    assert res["loss"] == pytest.approx(sum(losses) / 2, rel=1e-5)


def test_probe_without_backward_and_a_bad_hook_name():
    t = _trainer()
    res = t.view({}).probe(1, backward=False, grads=True)
    assert res["grads"] == {} and res["samples"] == 64
    with pytest.raises(GrowkitError, match="no module"):
        t.view({}).probe(1, hooks={"nonexistent": lambda *a: None})


def test_optimizer_state_in_the_view_is_a_read_only_copy():
    t = _after_some_steps(_trainer())
    view = t.view({})
    st = view.optimizer_state
    name = "head.weight"
    live = optim.state_by_name(t.model, t.opt)[name]["momentum_buffer"]
    got = st[name]["momentum_buffer"]
    assert torch.equal(got, live) and got.data_ptr() != live.data_ptr()
    with pytest.raises(TypeError):
        st[name]["momentum_buffer"] = None
    with pytest.raises(TypeError):
        st["x"] = {}


def test_adam_init_epochs_count_in_training_macs_with_their_own_seeds():
    t = _trainer()
    macs0 = t.loop.train_macs
    bn = t.model.head  # any parameters: only they change
    before = {n: p.detach().clone() for n, p in t.model.named_parameters()}
    view = t.view({"train_acc": 0.0})
    view.train_epoch(list(bn.parameters()), torch.optim.Adam(bn.parameters(), lr=1e-3))
    assert t.loop.train_macs - macs0 == t.stats["train_macs_per_image"] * t.data.size("train")
    changed = {n for n, p in t.model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == {"head.weight", "head.bias"}


def test_a_grower_probe_inside_a_run_leaves_the_run_unchanged():
    """A grower that probes (with gradients) must not change a single number of the run."""
    class Idle(Reader):
        def decide(self, view):
            return Decision()

    class Prober(Reader):
        def decide(self, view):
            view.probe(2, hooks={"stages.0.0.conv1": lambda *a: None}, mode="train", grads=True)
            return Decision()

    def run(grower):
        return Trainer(TrainConfig(depths=[1, 1, 1], epochs=2, progress=False, batch_size=64), None,
                       phases=[Phase("grow", 0.05, grows=True, max_epochs=2)], grower=grower).fit()

    a, b = run(Idle("val_acc")), run(Prober("val_acc"))
    assert a["train_loss"] == b["train_loss"] and a["val_acc"] == b["val_acc"] and a["test_acc"] == b["test_acc"]


def test_view_without_trainer_has_no_data():
    from growkit.growers.view import GrowerView
    v = GrowerView(epoch=1, global_epoch=1, row={"val_acc": 1.0}, model=None)
    with pytest.raises(GrowkitError, match="no data"):
        v.probe(1)
    assert v.row["val_acc"] == 1.0 and v.epoch == 1
