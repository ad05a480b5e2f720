"""Permuted streams, the small linear adapter and its cost, EWC and joint training, against hand-made answers."""
import numpy as np
import pytest
import torch

from growkit.data import DatasetInfo, ResidentData
from growkit.errors import GrowkitError
from growkit.methods.learn_to_grow import continual
from growkit.methods.learn_to_grow.loop import (JointData, JointForward, L2GConfig, SharedNet, ewc_objective,
                                                ewc_penalty, fisher_diagonal, joint_objective, run_stream)
from growkit.methods.learn_to_grow.search import SearchNet, choice_cost
from growkit.methods.learn_to_grow.supernet import (LayerDef, SuperNet, TaskPath, defs_from_registry, make_adapter,
                                                    make_layer)


def _images(n, seed, size=4, channels=2, classes=3):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, size=(n, channels, size, size)).astype(np.uint8),
            rng.integers(0, classes, size=n).astype(np.int64))


def _toy(augment=False, classes=3):
    info = DatasetInfo("toy", classes, 2, 4, 1, True, 0.0)
    return ResidentData(info, _images(30, 0, classes=classes), _images(10, 1, classes=classes),
                        _images(12, 2, classes=classes), augment=augment)


# ----------------------------------------------------------------------------- permuted streams

def test_permuted_tasks_share_labels_and_differ_only_by_a_hand_permutation():
    data = _toy()
    stream = continual.permuted_tasks(data, 3, seed=7)
    rng = np.random.default_rng(7)
    perms = [rng.permutation(16) for _ in range(3)]  # the documented draw: t-th permutation of H*W pixels
    assert stream.classes == ((0, 1, 2),) * 3 and stream.num_classes == [3, 3, 3]
    for t, task in enumerate(stream.tasks):
        for split, (x, y) in (("train", _images(30, 0)), ("val", _images(10, 1)), ("test", _images(12, 2))):
            tx, ty = (task.train_x, task.train_y) if split == "train" else task.splits[split]
            assert torch.equal(ty, torch.as_tensor(y))  # the labels are the dataset's, unchanged
            want = np.empty_like(x)  # pixel (i, j) of task t's image is the original's pixel perms[t][4 i + j]
            for i in range(4):
                for j in range(4):
                    src = perms[t][4 * i + j]
                    want[:, :, i, j] = x[:, :, src // 4, src % 4]
            assert np.array_equal(tx.numpy(), want)
        assert task.augment is False  # no crops or flips of permuted pixels
    assert not np.array_equal(perms[0], perms[1])
    with pytest.raises(GrowkitError):
        continual.permuted_tasks(data, 1)


def test_permuted_digits_stream_keeps_every_class_and_image():
    split = continual.task_stream("digits", 5)
    perm = continual.task_stream("digits", 3, kind="permuted", seed=1)
    assert len(perm) == 3 and perm.num_classes == [10, 10, 10]
    total = sum(t.size("test") for t in split.tasks)
    assert all(t.size("test") == total for t in perm.tasks)
    a, b = perm.tasks[0].splits["test"][0], perm.tasks[1].splits["test"][0]
    # the same images, pixels moved: every image's sorted pixel values are equal
    assert torch.equal(a.flatten(1).sort(1).values, b.flatten(1).sort(1).values) and not torch.equal(a, b)
    with pytest.raises(GrowkitError, match="stream"):
        continual.task_stream("digits", 3, kind="rotated")


@pytest.mark.parametrize("name, files, where", [
    ("mnist", ["MNIST/raw/train-images-idx3-ubyte", "MNIST/raw/t10k-labels-idx1-ubyte"], "yann.lecun.com"),
    ("cifar100", ["cifar-100-python/train", "cifar-100-python/test"], "cifar-100-python.tar.gz")])
@pytest.mark.parametrize("kind", ["split", "permuted"])
def test_missing_files_are_named_with_where_to_get_them(tmp_path, name, files, where, kind):
    with pytest.raises(GrowkitError) as e:
        continual.task_stream(name, 10 if kind == "split" else 3, root=tmp_path, kind=kind)
    msg = str(e.value)
    assert "\n" not in msg and where in msg and "--download" in msg
    for f in files:
        assert f in msg


def test_val_fraction_reaches_the_tasks():
    a = continual.task_stream("digits", 2, val_fraction=0.1)
    b = continual.task_stream("digits", 2, val_fraction=0.4)
    n = 1797 - sum(t.size("test") for t in a.tasks)  # the official training set
    assert sum(t.size("val") for t in a.tasks) == pytest.approx(0.1 * n, abs=10)
    assert sum(t.size("val") for t in b.tasks) == pytest.approx(0.4 * n, abs=10)
    with pytest.raises(GrowkitError, match="val_fraction"):
        L2GConfig(device="cpu", val_fraction=0.0).validate()


# ----------------------------------------------------------------------------- the adapter and the cost

def test_linear_adapter_parameter_count_and_charged_cost_by_hand():
    d = LayerDef("linear", 10, 6, adapter_rank=3)
    a = make_adapter(d)
    assert sum(p.numel() for p in a.parameters()) == 3 * 10 + 6 * 3  # V: 3x10, U: 6x3
    x = torch.randn(5, 10)
    assert torch.equal(a(x), torch.zeros(5, 6))  # U starts at zero: adapt starts as reuse
    full = LayerDef("linear", 10, 6, adapter_rank=0)
    assert sum(p.numel() for p in make_adapter(full).parameters()) == 60
    # cost: (the task's BN 2*6 + the adapter's 48) / (a new copy's 60 weights)
    assert choice_cost(d, "adapt") == pytest.approx((12 + 48) / 60)
    assert choice_cost(d, "reuse") == pytest.approx(12 / 60)  # the per-task BN is charged to reuse too
    assert choice_cost(d, "new") == pytest.approx((12 + 60) / 60)
    assert choice_cost(full, "adapt") == pytest.approx((12 + 60) / 60)
    conv = LayerDef("conv", 4, 8, 3, 1)
    assert choice_cost(conv, "adapt") == pytest.approx((16 + 32) / 288)  # a 1x1 conv: 4*8
    assert choice_cost(conv, "deeper") == pytest.approx((16 + 2 * (8 * 8 * 9 + 16)) / 288)


def test_the_search_charges_the_adapter_by_its_real_count():
    defs = [LayerDef("linear", 16, 12, adapter_rank=2), LayerDef("linear", 12, 8, adapter_rank=2)]
    net = SuperNet(defs, 1, 4)
    net.add_task(TaskPath(defs, [("new", 0)] * 2, 3), {l: make_layer(d) for l, d in enumerate(defs)})
    net.freeze()
    snet = SearchNet(net, 3)
    layer = snet.layers[0]
    assert layer.cands == [("reuse", 0), ("adapt", 0), ("new", 1)]
    want = [24 / 192, (24 + 2 * 16 + 12 * 2) / 192, (24 + 192) / 192]
    assert layer.cost.tolist() == pytest.approx(want)
    path = TaskPath(defs, [("adapt", 0), ("reuse", 0)], 3)
    # owned: BNs 2*(12+8), the adapter 2*(16+12), the head 8*3+3
    assert path.owned_params() == 40 + 56 + 27


def test_mlp_backbone_flattens_the_image():
    defs = defs_from_registry("MLP", hidden=(20, 10), in_channels=2, image_size=4, adapter_rank=2)
    assert [(d.kind, d.cin, d.cout) for d in defs] == [("linear", 32, 20), ("linear", 20, 10)]
    net = SuperNet(defs, 2, 4)
    net.add_task(TaskPath(defs, [("new", 0)] * 2, 3), {l: make_layer(d) for l, d in enumerate(defs)})
    net.eval()
    x = torch.randn(5, 2, 4, 4)
    h = torch.relu(net.paths[0].bns[0](x.reshape(5, 32) @ net.copies[0][0].weight.T))
    h = torch.relu(net.paths[0].bns[1](h @ net.copies[1][0].weight.T))
    assert torch.allclose(net(x, 0), net.paths[0].head(h), atol=1e-6)
    with pytest.raises(GrowkitError):
        defs_from_registry("MLP", hidden=())


def test_old_structures_rebuild_with_full_linear_adapters():
    defs = [LayerDef("linear", 6, 4, adapter_rank=0)]
    net = SuperNet(defs, 1, 2)
    net.add_task(TaskPath(defs, [("new", 0)], 2), {0: make_layer(defs[0])})
    net.add_task(TaskPath(defs, [("adapt", 0)], 2), {})
    s = net.structure()
    for d in s["defs"]:
        del d["adapter_rank"]  # a record written before the rank existed
    again = SuperNet.from_structure(s)
    again.load_state_dict(net.state_dict())  # the same shapes: a 6x4 adapter
    assert again.task_params(1) == 24 + 8 + 10


# ----------------------------------------------------------------------------- EWC

def test_ewc_penalty_on_two_parameters_by_hand():
    theta = torch.tensor([1.0, 2.0])
    anchors = torch.tensor([[0.0, 1.0], [2.0, 2.0]])
    fishers = torch.tensor([[0.5, 2.0], [1.0, 3.0]])
    # lam/2 * (0.5*(1-0)^2 + 2*(2-1)^2 + 1*(1-2)^2 + 3*(2-2)^2) = 2 * 3.5
    assert float(ewc_penalty(theta, anchors, fishers, 4.0)) == pytest.approx(7.0)
    assert float(ewc_penalty(theta, anchors, torch.zeros(2, 2), 4.0)) == 0.0


def _two_parameter_net():
    """A SharedNet whose shared parameters are two: one 1x1 linear weight and its BN's gamma and beta, with
    the beta frozen out of the count by a BN without affine parameters."""
    defs = [LayerDef("linear", 1, 1, adapter_rank=0)]
    net = SharedNet(defs, 1, 1, [2], ewc_tasks=2)
    net.bns[0] = torch.nn.BatchNorm1d(1, affine=False)
    net.register_buffer("ewc_fisher", torch.zeros(2, 1))
    net.register_buffer("ewc_anchor", torch.zeros(2, 1))
    return net


def test_ewc_objective_adds_the_hand_penalty_and_fisher_matches_finite_differences():
    torch.manual_seed(0)
    net = _two_parameter_net().double()
    with torch.no_grad():
        net.layers[0].weight.fill_(1.5)
        net.bns[0].running_mean.fill_(0.2)
        net.bns[0].running_var.fill_(2.0)
        net.heads[0].weight.copy_(torch.tensor([[0.7], [-0.4]]))
        net.heads[0].bias.copy_(torch.tensor([0.1, -0.2]))
        net.ewc_anchor[0] = torch.tensor([0.5])
        net.ewc_fisher[0] = torch.tensor([2.0])
    net.eval()
    x, y = torch.tensor([[0.3], [1.0], [-0.5]], dtype=torch.float64), torch.tensor([0, 1, 1])
    obj = ewc_objective(net, lam=3.0)(lambda v: net(v, 0), x, y)
    ce = torch.nn.functional.cross_entropy(net(x, 0), y)
    assert float((obj - ce).detach()) == pytest.approx(0.5 * 3.0 * 2.0 * (1.5 - 0.5) ** 2)

    # the Fisher diagonal: mean over images of (d/dw log p(y|x))^2, by central differences in float64
    class Data:
        def subset(self, split, n, seed=0):
            return x, y

    def logp(w, i):
        with torch.no_grad():
            old = net.layers[0].weight.clone()
            net.layers[0].weight.fill_(w)
            out = torch.log_softmax(net(x[i:i + 1], 0), 1)[0, y[i]]
            net.layers[0].weight.copy_(old)
        return float(out)
    eps = 1e-6
    want = np.mean([((logp(1.5 + eps, i) - logp(1.5 - eps, i)) / (2 * eps)) ** 2 for i in range(3)])
    got = fisher_diagonal(net, 0, Data(), 3)
    assert got.shape == (1,) and float(got[0]) == pytest.approx(want, rel=1e-6)
    assert want > 0


def test_ewc_run_keeps_fisher_and_anchor_of_every_task_in_its_checkpoints(tmp_path):
    from growkit.methods.learn_to_grow.loop import load_task
    stream = continual.task_stream("digits", 2)
    cfg = L2GConfig(device="cpu", tasks=2, method="ewc", search_epochs=1, warmup=0, train_epochs=1,
                    ewc_samples=8, hidden=[16], widths=[4, 4, 4])
    res = run_stream(cfg, stream, tmp_path)
    assert len(res["accuracy_matrix"]) == 2 and res["params_per_task"][1] == 16 * 5 + 5  # a head only
    first, _ = load_task(tmp_path / "tasks" / "task_0.pt", cfg, stream)
    last, _ = load_task(tmp_path / "tasks" / "task_1.pt", cfg, stream)
    theta = lambda n: torch.cat([p.flatten() for p in n.shared_parameters()])  # noqa: E731
    assert torch.equal(last.ewc_anchor[0], theta(first)) and torch.equal(last.ewc_anchor[1], theta(last))
    assert bool((last.ewc_fisher > 0).any(1).all()) and bool((first.ewc_fisher[1] == 0).all())
    assert not torch.equal(theta(first), theta(last))  # task 1 moved the shared weights despite the penalty


# ----------------------------------------------------------------------------- joint training

def test_joint_epoch_holds_every_task_image_with_its_task_offset():
    tasks = [_toy(classes=3), _toy(classes=3), _toy(classes=3)]
    for k, t in enumerate(tasks):  # tell the tasks apart: task k's images shifted by k
        t.train_x = (t.train_x.long() * 0 + k * 50 + torch.arange(30).view(30, 1, 1, 1)).to(torch.uint8)
    pool = JointData(tasks)
    assert pool.offsets == [0, 3, 6] and pool.size("train") == 90
    xs, ys = zip(*pool.train_batches(7, seed=3))
    x, y = torch.cat(xs), torch.cat(ys)
    assert len(y) == 90  # every image of every task (90 = 12 batches of 7 and one of 6)
    raw = torch.round(x[:, 0, 0, 0] * 255 * torch.tensor(tasks[0].std[0]) + 255 * torch.tensor(tasks[0].mean[0]))
    task_of = torch.div(raw, 50, rounding_mode="floor").long()
    assert sorted(raw.long().tolist()) == sorted(k * 50 + i for k in range(3) for i in range(30))
    for k in range(3):
        labels = y[task_of == k] - 3 * k
        assert sorted(labels.tolist()) == sorted(tasks[k].train_y.tolist())


def test_joint_objective_is_each_image_within_its_own_head():
    torch.manual_seed(0)
    out = torch.randn(4, 5)
    y = torch.tensor([1, 3, 4, 0])  # tasks 0 (2 classes) and 1 (3 classes): offsets 0, 2
    loss = joint_objective([0, 2], [2, 3])(lambda v: out, None, y)
    want = np.mean([-torch.log_softmax(out[0, :2], 0)[1], -torch.log_softmax(out[1, 2:], 0)[1],
                    -torch.log_softmax(out[2, 2:], 0)[2], -torch.log_softmax(out[3, :2], 0)[0]])
    assert float(loss) == pytest.approx(float(want), rel=1e-6)


def test_joint_trains_on_every_task_seen_so_far(monkeypatch):
    from growkit.methods.learn_to_grow import loop
    seen = []
    real = loop.fit

    def spy(model, task, trainable, data, cfg, seed, epochs, objective=None, forward=None):
        seen.append([t.info.name for t in data.tasks] if isinstance(data, JointData) else [data.info.name])
        return real(model, task, trainable, data, cfg, seed, epochs, objective, forward)
    monkeypatch.setattr(loop, "fit", spy)
    stream = continual.task_stream("digits", 5)
    cfg = L2GConfig(device="cpu", tasks=5, method="joint", search_epochs=0, warmup=0, train_epochs=1,
                    hidden=[16], widths=[4, 4, 4])
    res = run_stream(cfg, stream)
    assert seen == [[f"digits:task{k}" for k in range(t + 1)] for t in range(5)]
    assert all(v is not None for v in res["accuracy_matrix"][-1])


def test_joint_forward_concatenates_the_heads():
    defs = [LayerDef("linear", 4, 3)]
    net = SharedNet(defs, 1, 2, [2, 3, 2]).eval()
    x = torch.randn(5, 1, 2, 2)
    out = JointForward(net, 1)(x)
    assert torch.allclose(out, torch.cat([net(x, 0), net(x, 1)], 1))


# ----------------------------------------------------------------------------- tuned reuse and the options

def test_tuned_reuse_changes_the_reused_copy_and_plain_reuse_does_not():
    stream = continual.task_stream("digits", 2)
    common = dict(device="cpu", tasks=2, method="frozen", search_epochs=0, warmup=0, train_epochs=1, hidden=[16],
                  widths=[4, 4, 4])
    frozen = run_stream(L2GConfig(**common), stream)
    assert frozen["bwt"] == 0.0
    common.update(method="l2g", search_epochs=1, cost=100.0)  # the cost makes reuse the argmax everywhere
    plain = run_stream(L2GConfig(**common), stream)
    tuned = run_stream(L2GConfig(**common, tune_reuse=True), stream)
    assert plain["choices"][1] == tuned["choices"][1] == ["reuse:0"] * 5
    assert plain["bwt"] == 0.0 and tuned["bwt"] != 0.0  # tuning the reused copies moves task 0
    assert tuned["tune_reuse"] is True


@pytest.mark.parametrize("bad", [dict(adapter_rank=-1), dict(method="ewc", tune_reuse=True),
                                 dict(ewc_lambda=float("nan")), dict(ewc_samples=0), dict(stream="rotated"),
                                 dict(model="ResNet18"), dict(val_fraction=1.0)])
def test_bad_options_are_one_line_errors(bad):
    with pytest.raises(GrowkitError) as e:
        L2GConfig(device="cpu", **bad).validate()
    assert "\n" not in str(e.value)


# ----------------------------------------------------------------------------- the table and the verdicts

def _results():
    """Three seeds of three arms, hand-made: l2g beats finetune by 2, 2.1, 1.9 (resolved), EWC by 1, 2, 3 (not)."""
    base = {"bwt": 0.0, "forgetting": 0.0, "total_params": 100, "params_per_task": [60, 20, 20]}
    acc = {"l2g": [90.0, 91.0, 92.0], "finetune": [88.0, 88.9, 90.1], "ewc": [89.0, 89.0, 89.0]}
    return {(m, s): {**base, "avg_acc": v[s], "params_per_task": [60 + s, 20, 20]}
            for m, v in acc.items() for s in range(3)}


def test_table_columns_say_what_they_hold():
    from growkit.methods.learn_to_grow import study
    rows = study.table(_results(), ["l2g", "finetune"], [0, 1, 2])
    assert rows[0]["avg acc % (mean ± sd, 3 seeds)"] == "91.00 ± 1.00"  # sample sd of 90, 91, 92
    assert rows[0]["parameters added per task (seed 0)"] == "60 / 20 / 20"
    assert rows[0]["parameters in all (mean ± sd, 3 seeds)"] == "100 ± 0"
    one = study.table(_results(), ["l2g"], [2])
    assert one[0]["avg acc % (1 seed)"] == "92.00" and one[0]["parameters added per task (seed 2)"] == "62 / 20 / 20"


def test_verdicts_are_paired_t_intervals():
    from growkit.methods.learn_to_grow import study
    v = {x.claim: x for x in study.verdicts(_results(), ["l2g", "finetune", "ewc"], [0, 1, 2])}
    t = 4.302652729911275  # t(0.975, 2 degrees of freedom)
    a = v["average accuracy: Learn to Grow higher than fine-tuning"]
    assert a.word == "agrees" and a.interval.method == "paired"
    assert a.interval.half == pytest.approx(t * 0.1 / np.sqrt(3))  # differences 2, 2.1, 1.9: sd 0.1
    b = v["average accuracy: Learn to Grow higher than EWC"]
    assert b.word == "not resolved" and b.interval.half == pytest.approx(t * 1.0 / np.sqrt(3))  # 1, 2, 3
    assert study.line(b).startswith("Not resolved at n = 3: average accuracy: Learn to Grow higher than EWC")
    assert study.line(a).startswith("Resolved, as expected")
    # only the paper's own claims go to paper_vs_kit (L2G above fine-tuning and above EWC here; not frozen trunk)
    recorded = study.paper_claims(list(v.values()))
    assert [c["claim"] for c in recorded] == ["average accuracy: Learn to Grow higher than fine-tuning",
                                              "average accuracy: Learn to Grow higher than EWC"]
    assert all("no number" in c["paper"] and c["verdict"] is v[c["claim"]] for c in recorded)


def test_split_cifar100_backbone_runs_on_cifar_shaped_inputs():
    """The backbone the docs name for split CIFAR-100: Plain4Net 1-1-1-1 (ResNet-18's widths) + a hidden 256."""
    defs = defs_from_registry("Plain4Net", (1, 1, 1, 1), None, (256,), in_channels=3, image_size=32)
    assert [(d.kind, d.cout, d.stride) for d in defs] == [("conv", 64, 1), ("conv", 64, 1), ("conv", 128, 2),
                                                          ("conv", 256, 2), ("conv", 512, 2), ("linear", 256, 1)]
    net = SuperNet(defs, 3, 32)
    net.add_task(TaskPath(defs, [("new", 0)] * 6, 10), {l: make_layer(d) for l, d in enumerate(defs)})
    net.eval()
    assert net(torch.randn(2, 3, 32, 32), 0).shape == (2, 10)


def test_parameters_per_task_are_markers_at_their_values_not_log_bars():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from growkit.methods.learn_to_grow import plots as cp
    fig, ax = plt.subplots()
    cp.params_per_task(ax, {"a": [30_000, 0, 130], "b": [30_000, 4_096, 4_096]})
    assert not ax.patches  # no bars: a bar on a log axis has no meaningful length
    filled = [ln for ln in ax.get_lines() if ln.get_label() in ("a", "b")]
    assert sorted(y for ln in filled for y in ln.get_ydata()) == [130, 4_096, 4_096, 30_000, 30_000]
    # the task where "a" added nothing is an open marker, not a value
    assert [list(ln.get_ydata()) for ln in ax.get_lines() if ln.get_mfc() == "none"] == [[1.0]]
    plt.close(fig)
