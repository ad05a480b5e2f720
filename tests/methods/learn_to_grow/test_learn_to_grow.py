"""Learn to Grow: the super network, the search and the continual loop, against independent answers."""
import numpy as np
import pytest
import torch

from growkit.methods.learn_to_grow import continual
from growkit.data import DatasetInfo, ResidentData
from growkit.errors import GrowkitError
from growkit.methods.learn_to_grow.search import SearchNet, candidates
from growkit.methods.learn_to_grow.supernet import LayerDef, SuperNet, TaskPath, make_layer
from growkit.methods.learn_to_grow.loop import L2GConfig, learn_task, load_task, run_stream

DEFS = [LayerDef("conv", 1, 4, 3, 1), LayerDef("conv", 4, 8, 3, 2), LayerDef("linear", 8, 6, 1, 1)]


def _randomize(module):
    """Random weights and BN statistics everywhere (so a zero or identity cannot hide behind defaults)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g))
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.randn(m.num_features, generator=g))
                m.bias.copy_(torch.randn(m.num_features, generator=g))


def _net_with_task0():
    torch.manual_seed(0)
    net = SuperNet(DEFS, 1, 4)
    net.add_task(TaskPath(DEFS, [("new", 0)] * 3, 2), {l: make_layer(d) for l, d in enumerate(DEFS)})
    _randomize(net)
    net.freeze()
    return net


def _toy_task(channel, n, seed, channels=1, size=4):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, channels, size, size)).astype(np.uint8)
    m = x[:, channel].reshape(n, -1).mean(1)
    return x, (m > np.median(m)).astype(np.int64)


def _toy_data(channel, seed, channels=1):
    info = DatasetInfo(f"toy{channel}", 2, channels, 4, 0, False, 0.0)
    return ResidentData(info, *(_toy_task(channel, n, seed + i, channels) for i, n in enumerate((400, 200, 200))),
                        augment=False)


def test_parameter_counts_by_hand():
    net = _net_with_task0()
    # Task 0 created every copy: 1*4*9 + 4*8*9 + 8*6 weights, BNs 2*(4+8+6), head 6*2+2.
    assert net.task_params(0) == 36 + 288 + 48 + 36 + 14
    before, copies_before = net.num_params(), sum(p.numel() for p in net.copies.parameters())
    path = TaskPath(DEFS, [("reuse", 0), ("new", 1), ("adapt", 0)], 2)
    net.add_task(path, {1: make_layer(DEFS[1])})
    # "new" adds exactly the layer's weights (4*8*3*3); the linear adapter of rank 4: 4*8 + 6*4; BNs and head
    # as before.
    assert sum(p.numel() for p in net.copies.parameters()) - copies_before == 288
    assert net.num_params() - before == 288 + (32 + 24) + 36 + 14 == net.task_params(1)
    conv_adapter = TaskPath(DEFS, [("reuse", 0), ("adapt", 0), ("reuse", 0)], 2)
    assert conv_adapter.owned_params() == 32 + 36 + 14  # a 1x1 adapter: 4*8
    deeper = TaskPath(DEFS, [("reuse", 0), ("deeper", 0), ("reuse", 0)], 2)
    assert deeper.owned_params() == 2 * (8 * 8 * 9 + 2 * 8) + 36 + 14  # a two-conv residual block


def test_bad_paths_are_one_line_errors():
    net = _net_with_task0()
    with pytest.raises(GrowkitError):
        net.add_task(TaskPath(DEFS, [("reuse", 1)] * 3, 2), {})  # copy 1 does not exist
    with pytest.raises(GrowkitError):
        TaskPath(DEFS, [("grow", 0)] * 3, 2)
    with pytest.raises(GrowkitError):
        SuperNet(DEFS[:2] + [LayerDef("dense", 8, 6)], 1, 4)
    with pytest.raises(GrowkitError):
        SuperNet([LayerDef("conv", 1, 4), LayerDef("conv", 5, 8)], 1, 4)


@pytest.mark.parametrize("op", ["adapt", "deeper"])
def test_zero_adapter_and_zeroinit_block_change_nothing(op):
    net = _net_with_task0()
    x = torch.randn(16, 1, 4, 4)
    reuse = TaskPath(DEFS, [("reuse", 0)] * 3, 2)
    other = TaskPath(DEFS, [("reuse", 0), (op, 0), ("reuse", 0)], 2)
    other.load_state_dict(reuse.state_dict(), strict=False)  # the same BNs and head
    net.add_task(reuse, {})
    net.add_task(other, {})
    _randomize(net.paths[1])
    net.paths[2].load_state_dict(net.paths[1].state_dict(), strict=False)
    if op == "deeper":  # random inner weights; only the last BN is ZeroInit
        with torch.no_grad():
            net.paths[2].blocks["1"].bn1.weight.normal_()
    for train in (False, True):
        net.train(train)
        assert torch.equal(net(x, 1), net(x, 2))


def test_search_candidates_follow_the_paper():
    net = _net_with_task0()
    net.add_task(TaskPath(DEFS, [("reuse", 0), ("new", 1), ("reuse", 0)], 2), {1: make_layer(DEFS[1])})
    # 2|S_l| + 1 choices: reuse and adapt of every copy, one new.
    assert candidates(net, 1) == [("reuse", 0), ("reuse", 1), ("adapt", 0), ("adapt", 1), ("new", 2)]
    assert candidates(net, 0, deeper=True) == [("reuse", 0), ("adapt", 0), ("deeper", 0), ("new", 1)]
    assert ("deeper", 0) not in candidates(net, 2, deeper=True)  # linear layer: no block
    assert len(candidates(net, 2)) == 3


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_reuse_everywhere_leaves_earlier_tasks_bit_for_bit(optimizer):
    data = _toy_data(0, 0)
    net = SuperNet(DEFS, 1, 4)
    cfg = L2GConfig(search_epochs=2, warmup=1, train_epochs=2, optimizer=optimizer, lr=0.01)
    learn_task(net, 0, data, cfg)
    x = next(data.eval_batches("test"))[0]
    net.eval()
    before_out = net(x, 0).clone()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    for method in ("frozen", "l2g"):
        cfg.method = method
        t = learn_task(net, len(net.paths), _toy_data(0, 5), cfg)
        if method == "frozen":
            assert t["choices"] == ["reuse:0"] * 3
    net.eval()
    assert torch.equal(net(x, 0), before_out)
    after = net.state_dict()
    for k, v in before.items():  # every weight, BN statistic and counter that existed is unchanged
        assert torch.equal(after[k], v), k


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_search_picks_new_or_adapt_where_the_shared_layer_is_blind(seed):
    """Task A's first layer ignores input channel 1; task B's label lives only in channel 1."""
    A, B = _toy_data(0, 0, channels=2), _toy_data(1, 10, channels=2)
    defs = [LayerDef("conv", 2, 8, 3, 1), LayerDef("conv", 8, 8, 3, 2), LayerDef("linear", 8, 8, 1, 1)]
    cfg = L2GConfig(seed=seed)
    net = SuperNet(defs, 2, 4)
    learn_task(net, 0, A, cfg)
    with torch.no_grad():
        net.copies[0][0].weight[:, 1] = 0.0
    rec = learn_task(net, 1, B, cfg)
    assert rec["choices"][0] in ("new:1", "adapt:0"), rec["alpha"][0]
    net.eval()
    assert continual.accuracy(lambda x: net(x, 1), B) > 75.0


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_search_reuses_when_the_new_task_is_the_old_one(seed):
    A = _toy_data(0, 0, channels=2)
    defs = [LayerDef("conv", 2, 8, 3, 1), LayerDef("conv", 8, 8, 3, 2), LayerDef("linear", 8, 8, 1, 1)]
    cfg = L2GConfig(seed=seed)
    net = SuperNet(defs, 2, 4)
    learn_task(net, 0, A, cfg)
    rec = learn_task(net, 1, A, cfg)
    assert rec["choices"] == ["reuse:0"] * 3, rec["alpha"]
    assert rec["params"] == 2 * (8 + 8 + 8) + 8 * 2 + 2  # only BNs and head


def test_new_copy_initialisations():
    net = _net_with_task0()
    copy = SearchNet(net, 2, new_init="copy")
    fresh = SearchNet(net, 2, new_init="reinit")
    for l in range(3):
        old = net.copies[l][0].weight
        assert torch.equal(copy.layers[l].new.weight, old) and copy.layers[l].new.weight is not old
        assert copy.layers[l].new.weight.requires_grad and not old.requires_grad
        assert not torch.equal(fresh.layers[l].new.weight, old)
        c = copy.layers[l].cands.index(("new", 1))
        assert torch.equal(copy.layers[l].bns[c].weight, net.paths[0].bns[l].weight)  # the owner's BN comes along


def test_materialize_keeps_the_searched_weights():
    net = _net_with_task0()
    snet = SearchNet(net, 2)
    with torch.no_grad():
        snet.alpha[1].copy_(torch.tensor([0.0, 5.0, 0.0]))  # adapt wins at layer 1
        snet.layers[1].adapters["0"].weight.normal_()
        snet.alpha[2].copy_(torch.tensor([0.0, 0.0, 5.0]))  # new wins at layer 2
    path, new = snet.materialize()
    assert path.choices == [("reuse", 0), ("adapt", 0), ("new", 1)]
    assert torch.equal(path.adapters["1"].weight, snet.layers[1].adapters["0"].weight)
    assert torch.equal(new[2].weight, snet.layers[2].new.weight) and set(new) == {2}
    assert torch.equal(path.bns[0].running_mean, net.paths[0].bns[0].running_mean)  # reuse starts from the owner's BN


# ----------------------------------------------------------------------------- the stream on digits

FAST = dict(search_epochs=4, warmup=2, train_epochs=4)


@pytest.fixture(scope="module")
def digits5():
    return continual.task_stream("digits", 5)


@pytest.mark.slow
def test_finetuning_forgets_and_learn_to_grow_cannot(digits5):
    ft = run_stream(L2GConfig(method="finetune", search_epochs=0, warmup=0, train_epochs=6), digits5)
    assert ft["bwt"] < -5.0 and ft["forgetting"] > 5.0, ft["accuracy_matrix"]
    l2g = run_stream(L2GConfig(**FAST), digits5)
    R = l2g["accuracy_matrix"]
    assert l2g["bwt"] == 0.0 and l2g["forgetting"] == 0.0  # frozen earlier paths: exactly
    assert all(R[i][j] == R[j][j] for i in range(5) for j in range(i + 1))
    assert l2g["avg_acc"] > 85.0
    assert l2g["choices"][0] == ["new:0"] * 5 and len(l2g["alpha"][1]) == 5


@pytest.mark.slow
def test_matrix_recomputed_from_the_per_task_checkpoints(digits5, tmp_path):
    for method in ("l2g", "finetune"):
        cfg = L2GConfig(method=method, deeper=method == "l2g", **FAST)
        res = run_stream(cfg, digits5, tmp_path / method)
        for i in range(len(digits5)):
            net, state = load_task(tmp_path / method / "tasks" / f"task_{i}.pt", cfg, digits5)
            row = [continual.accuracy(lambda x, j=j: net(x, j), digits5.tasks[j]) for j in range(i + 1)]
            assert row == res["accuracy_matrix"][i][:i + 1]
            assert state["rows"][i] == res["accuracy_matrix"][i]
        from growkit.engine import checkpoint
        ck = checkpoint.load(tmp_path / method / "tasks" / "task_4.pt")
        assert ck["format"] == 2 and ck["config"]["method"] == method and ck["loop"]["tasks_done"] == 5


@pytest.mark.slow
def test_interrupted_and_resumed_equals_uninterrupted(digits5, tmp_path):
    cfg = L2GConfig(deeper=True, **FAST)
    full = run_stream(cfg, digits5, tmp_path / "a")
    part = run_stream(cfg, digits5, tmp_path / "b", stop_after=2)
    assert part["tasks_done"] == 2
    resumed = run_stream(cfg, digits5, tmp_path / "b")
    assert resumed["accuracy_matrix"] == full["accuracy_matrix"]
    assert resumed["choices"] == full["choices"] and resumed["alpha"] == full["alpha"]
    a = torch.load(tmp_path / "a" / "tasks" / "task_4.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "b" / "tasks" / "task_4.pt", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
@pytest.mark.gpu
def test_learn_to_grow_runs_on_cuda_and_keeps_earlier_tasks():
    stream = continual.task_stream("digits", 2, device="cuda")
    res = run_stream(L2GConfig(deeper=True, **FAST), stream)
    assert res["bwt"] == 0.0 and res["forgetting"] == 0.0 and res["avg_acc"] > 70.0
