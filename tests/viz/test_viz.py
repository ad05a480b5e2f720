"""Trajectories and loss surfaces against independent answers (float64)."""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from growkit import models as M
from growkit.engine.surgery import AppendBlock, Widen
from growkit.viz import landscape as L
from growkit.engine import snapshots
from growkit.viz import trajectory as T


pytestmark = pytest.mark.usefixtures("float64")


def trained_like(name="Basic3ResNet-1-2-1", seed=0):
    """A net with non-trivial BN statistics, in float64."""
    torch.manual_seed(seed)
    m = M.create(name, in_channels=1, image_size=8).double()
    with torch.no_grad():
        m.train()
        for _ in range(3):
            m(torch.randn(32, 1, 8, 8))
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.3, 0.3)
    return m.eval()


def data(n=60, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


def pointwise_loss(model, center, d1, d2, a, b, x, y, train_bn=False):
    """The reference: write the weights into a copy of the model, run it, average the loss."""
    net = copy.deepcopy(model).train(train_bn)
    with torch.no_grad():
        for n, p in net.named_parameters():
            p.copy_(center[n] + a * d1[n] + (b * d2[n] if d2 is not None else 0))
        out = net(x)
    return F.cross_entropy(out, y).item(), 100.0 * (out.argmax(1) == y).double().mean().item()


def test_filter_normalisation_gives_each_filter_the_weights_filter_norm():
    m = trained_like()
    w = L.params_of(m)
    d = L.random_direction(w, seed=3)
    for n, t in d.items():
        if t.dim() <= 1:
            assert torch.count_nonzero(t) == 0  # biases and BN ignored by default
            continue
        for i in range(t.shape[0]):
            assert t[i].norm().item() == pytest.approx(w[n][i].norm().item(), rel=1e-9)
    d2 = L.random_direction(w, seed=3, ignore_1d=False)
    bn = "stages.0.0.bn1.weight"
    assert torch.equal(d2[bn], w[bn])  # Li et al.: the direction of a 1-D parameter is the weight itself


def test_surface_at_the_origin_is_the_models_loss():
    m = trained_like()
    x, y = data()
    w = L.params_of(m)
    s = L.surface(m, L.random_direction(w, 1), L.random_direction(w, 2), [-0.5, 0.0, 0.5], [-0.5, 0.0, 0.5], x, y)
    expect = F.cross_entropy(m(x), y).item()
    assert s["loss"][1, 1] == pytest.approx(expect, abs=1e-12)
    assert s["loss"].shape == (3, 3)


@pytest.mark.parametrize("points_per_batch", [1, 4])
@pytest.mark.parametrize("bn", ["eval", "batch"])
def test_batched_evaluation_equals_point_by_point(points_per_batch, bn):
    m = trained_like("Basic3ResNet-1-2-1")
    x, y = data()
    w = L.params_of(m)
    d1, d2 = L.random_direction(w, 1), L.random_direction(w, 2)
    xs, ys = np.linspace(-1, 1, 4), np.linspace(-0.5, 1.5, 3)
    s = L.surface(m, d1, d2, xs, ys, x, y, bn=bn, batch_size=len(y), points_per_batch=points_per_batch)
    for j, b in enumerate(ys):
        for i, a in enumerate(xs):
            loss, acc = pointwise_loss(m, w, d1, d2, a, b, x, y, train_bn=(bn == "batch"))
            assert abs(s["loss"][j, i] - loss) < 1e-5 and s["acc"][j, i] == pytest.approx(acc)


def test_batched_evaluation_of_width_nets_and_one_dimensional_lines():
    m = trained_like("MobileNetV1") if False else None  # (kept small: VGG with narrow widths)
    torch.manual_seed(0)
    m = M.create("VGG16", widths=6, in_channels=1, image_size=8).double().eval()
    x, y = data(20)
    w = L.params_of(m)
    d = L.random_direction(w, 5, ignore_1d=False)
    line = L.surface(m, d, None, [-0.3, 0.2], None, x, y, points_per_batch=2)
    for i, a in enumerate([-0.3, 0.2]):
        assert abs(line["loss"][i] - pointwise_loss(m, w, d, None, a, 0, x, y)[0]) < 1e-5


def test_pca_recovers_two_orthogonal_directions():
    m = trained_like()
    final = L.params_of(m)
    names = [n for n in final if final[n].dim() > 1]
    g = torch.Generator().manual_seed(0)
    u = torch.randn(sum(final[n].numel() for n in names), generator=g)
    v = torch.randn(u.shape, generator=g)
    u /= u.norm()
    v -= (v @ u) * u
    v /= v.norm()
    # centred, uncorrelated coefficients with more spread along u: the principal axes are u and v
    a = np.array([3.0, -3.0, 1.0, -1.0, 0.0])
    b = np.array([0.0, 0.0, 1.0, 1.0, -2.0])
    assert a.mean() == b.mean() == (a * b).sum() == 0
    base = T.flatten(final, names)
    snaps = [T.Snapshot(e, "x", {}, T.unflatten(base + ai * u + bi * v, final, names))
             for e, (ai, bi) in enumerate(zip(a, b))]
    tr = T.pca_trajectory(snaps, ignore_1d=True, center=final)
    d1 = T.flatten(tr.directions[0], names)
    d2 = T.flatten(tr.directions[1], names)
    assert abs(abs(d1 @ u).item() - 1) < 1e-9 and abs(abs(d2 @ v).item() - 1) < 1e-9
    assert np.allclose(np.abs(tr.coords[:, 0]), np.abs(a), atol=1e-9)
    assert np.allclose(np.abs(tr.coords[:, 1]), np.abs(b), atol=1e-9)
    assert tr.residual.max() < 1e-9 and tr.explained_variance_ratio.sum() == pytest.approx(1.0)


def test_residual_reports_motion_off_the_plane():
    m = trained_like()
    final = L.params_of(m)
    names = [n for n in final if final[n].dim() > 1]
    base = T.flatten(final, names)
    g = torch.Generator().manual_seed(1)
    snaps = [T.Snapshot(e, "x", {}, T.unflatten(base + torch.randn(base.shape, generator=g) * (e > 0), final,
                                                  names)) for e in range(5)]
    tr = T.pca_trajectory(snaps)
    # 4 random points and the origin: 2 components cannot hold them all
    assert tr.residual.max() > 0.1 and np.allclose(tr.residual ** 2 + (tr.coords ** 2).sum(1),
                                                   tr.distance ** 2)


def test_zero_padded_shallow_snapshot_equals_deeper_net_with_zero_last_bn():
    shallow = trained_like("Basic3ResNet-1-1-1")
    x, _ = data()
    deeper = copy.deepcopy(shallow)
    edit = AppendBlock(1).apply(deeper)
    blk = deeper.get_submodule(edit.where)
    with torch.no_grad():
        blk.last_bn.weight.zero_()
        blk.last_bn.bias.zero_()
    padded = copy.deepcopy(deeper)
    emb = T.embed(L.params_of(shallow), L.params_of(deeper))
    assert all(torch.count_nonzero(emb[n]) == 0 for n in edit.new)
    with torch.no_grad():
        for n, p in padded.named_parameters():
            p.copy_(emb[n])
    for train in (False, True):
        ref = copy.deepcopy(deeper).train(train)(x)
        torch.testing.assert_close(copy.deepcopy(padded).train(train)(x), ref, rtol=0, atol=1e-12)
        torch.testing.assert_close(copy.deepcopy(shallow).train(train)(x), ref, rtol=0, atol=1e-12)


def test_embed_pads_narrower_parameters_in_the_leading_corner():
    m = M.create("LeNet5", in_channels=1, image_size=8)
    small = L.params_of(m)
    Widen("conv1", 2).apply(m)
    big = T.embed(small, L.params_of(m))
    assert big["conv1.weight"].shape[0] == 8
    assert torch.equal(big["conv1.weight"][:6], small["conv1.weight"])
    assert torch.count_nonzero(big["conv1.weight"][6:]) == 0
    assert torch.equal(big["conv2.weight"][:, :6], small["conv2.weight"])


def test_snapshots_follow_a_growing_run_and_are_pruned_on_resume(tmp_path):
    from growkit.engine.config import TrainConfig
    from growkit.methods.autogrow.config import AutoGrowConfig
    from growkit.methods.autogrow.method import autogrow
    torch.set_default_dtype(torch.float32)  # a real run (the fixture restores the default afterwards)
    cfg = TrainConfig(epochs=1, progress=False, eval_test=False, snapshot_every=1)
    res = autogrow(cfg, AutoGrowConfig(K=1, J=100, max_grow_epochs=3, finetune_epochs=1), tmp_path / "r")
    snaps = T.load_snapshots(tmp_path / "r")
    assert [s.epoch for s in snaps] == [0, 1, 2, 3, 4]
    assert snaps[0].arch == "Basic3ResNet-1-1-1" and snaps[-1].arch == res["found"]
    tr = T.pca_trajectory(snaps)
    assert tr.coords.shape == (5, 2) and np.allclose(tr.coords[-1], 0)
    snapshots.prune_snapshots(tmp_path / "r", 2)
    assert [s.epoch for s in T.load_snapshots(tmp_path / "r")] == [0, 1, 2]


def test_off_plane_share_is_the_uncaptured_part_of_the_squared_distances():
    final = {"w": torch.zeros(3, 1)}
    # symmetric about the final net (the origin), so the centred PCA axes are exactly x and y
    pts = [[3.0, 0, 0], [-3.0, 0, 0], [0, 2.0, 0], [0, -2.0, 0], [0, 0, 1.0], [0, 0, -1.0], [0, 0, 0]]
    snaps = [T.Snapshot(e, "x", {}, {"w": torch.tensor(p).view(3, 1)}) for e, p in enumerate(pts)]
    tr = T.pca_trajectory(snaps, ignore_1d=False, center=final)
    # squared distances: 9 + 9 + 4 + 4 + 1 + 1 = 28, of which z holds 1 + 1 = 2
    assert tr.off_plane_share == pytest.approx(2 / 28)


def test_embed_places_entries_after_prunes_and_splits_by_hand(tmp_path):
    """Growth at epoch 1: prune conv1 channels 1 and 3, then split channel 0; growth at epoch 2: split
    channels [2, 0], widen conv2 by 1. Hand placement of the epoch-0 and epoch-1 snapshots."""
    from growkit.errors import GrowkitError
    from growkit.engine.surgery import PruneChannels, SplitChannel, SplitChannels
    torch.manual_seed(0)
    m = M.create("LeNet5", in_channels=1, image_size=8)
    snapshots.save_snapshot(tmp_path, 0, m, dtype=torch.float64)
    p0 = L.params_of(m)
    e = [PruneChannels("conv1", [1, 3]).apply(m), SplitChannel("conv1", 0).apply(m)]
    snapshots.record_growth(tmp_path, 1, e)
    snapshots.save_snapshot(tmp_path, 1, m, dtype=torch.float64)
    p1 = L.params_of(m)
    e = [SplitChannels("conv1", [2, 0]).apply(m), Widen("conv2", 1).apply(m)]
    snapshots.record_growth(tmp_path, 2, e)
    snapshots.save_snapshot(tmp_path, 2, m, dtype=torch.float64)
    snaps = T.load_snapshots(tmp_path)
    final = snaps[-1].params
    per = m.flat
    # conv1 channels: 0..5 -> prune 1,3 -> [0,2,4,5] -> split 0 -> [0,2,4,5,new] -> split [2,0] -> + 2 new
    e0 = T.embed(snaps[0].params, final, T.maps_to(snaps[0]))
    assert torch.equal(e0["conv1.weight"][:4], p0["conv1.weight"][[0, 2, 4, 5]].double())
    assert torch.count_nonzero(e0["conv1.weight"][4:]) == 0 and e0["conv1.weight"].shape[0] == 7
    assert torch.equal(e0["conv1.bias"], torch.cat([p0["conv1.bias"][[0, 2, 4, 5]], torch.zeros(3)]).double())
    assert torch.equal(e0["conv2.weight"][:16, :4], p0["conv2.weight"][:, [0, 2, 4, 5]].double())
    assert torch.count_nonzero(e0["conv2.weight"][16:]) == 0 and torch.count_nonzero(e0["conv2.weight"][:, 4:]) == 0
    assert torch.equal(e0["fc1.weight"][:, :16 * per], p0["fc1.weight"].double())  # conv2 grew at the end
    assert torch.count_nonzero(e0["fc1.weight"][:, 16 * per:]) == 0
    assert torch.equal(e0["fc3.weight"], p0["fc3.weight"].double())
    # the epoch-1 snapshot only goes through the second growth: its 5 conv1 channels keep their places
    e1 = T.embed(snaps[1].params, final, T.maps_to(snaps[1]))
    assert torch.equal(e1["conv1.weight"][:5], p1["conv1.weight"].double())
    assert torch.count_nonzero(e1["conv1.weight"][5:]) == 0
    assert T.maps_to(snaps[2]) is None and torch.equal(T.embed(snaps[2].params, final)["conv1.weight"],
                                                       final["conv1.weight"])
    tr = T.pca_trajectory(snaps, ignore_1d=False)
    w = torch.cat([final[n].reshape(-1) for n in final])
    d0 = torch.cat([e0[n].reshape(-1) for n in final]) - w
    assert tr.distance[0] == pytest.approx(d0.norm().item())
    # a parameter the final net lacks is an error, never dropped
    with pytest.raises(GrowkitError, match="no place in the final net: ghost"):
        T.embed({**p0, "ghost": torch.zeros(2)}, final, T.maps_to(snaps[0]))
    snapshots.prune_snapshots(tmp_path, 1)
    assert [s.epoch for s in T.load_snapshots(tmp_path)] == [0, 1] and T.load_growths(tmp_path)[-1].epoch == 1


def test_a_run_with_snapshots_records_its_growths(tmp_path):
    from growkit.engine.config import TrainConfig
    from growkit.methods.autogrow.config import AutoGrowConfig
    from growkit.methods.autogrow.method import autogrow
    torch.set_default_dtype(torch.float32)  # a real run (the fixture restores the default afterwards)
    cfg = TrainConfig(epochs=1, progress=False, eval_test=False, snapshot_every=2, widths=[4, 4, 8],
                      model_kw={"stem_width": 4})
    autogrow(cfg, AutoGrowConfig(K=1, J=100, max_grow_epochs=2, finetune_epochs=1), tmp_path / "r")
    gs = T.load_growths(tmp_path / "r")
    assert [g.epoch for g in gs] == [1, 2] and all(g.edit.new for g in gs)
    assert [s.epoch for s in T.load_snapshots(tmp_path / "r")] == [0, 2, 3]  # and the final epoch


def test_embed_follows_gpt_blocks_shifted_by_an_insertion(tmp_path):
    """A GPT grows twice: two blocks inserted in front, then x2 width. The epoch-0 snapshot's block b lands
    on block b + 2 (old rows and columns in the leading corner, by hand), the inserted blocks are 0."""
    from growkit.engine.gpt_surgery import InsertBlocks, WidenGPT
    torch.manual_seed(0)
    m = M.create("GPT-2L-2H-8", vocab_size=11, context=8)
    snapshots.save_snapshot(tmp_path, 0, m, dtype=torch.float64)
    p0 = L.params_of(m)
    snapshots.record_growth(tmp_path, 1, [InsertBlocks(2, position=0).apply(m)])
    snapshots.record_growth(tmp_path, 2, [WidenGPT(2).apply(m)])
    snap = T.load_snapshots(tmp_path)[0]
    big = T.embed(snap.params, L.params_of(m), T.maps_to(snap))
    for b in (0, 1):
        w = big[f"blocks.{b + 2}.mlp.fc.weight"]
        assert torch.equal(w[:32, :8], p0[f"blocks.{b}.mlp.fc.weight"].to(w)) and not w[32:].any() and not w[:, 8:].any()
        assert not big[f"blocks.{b}.mlp.fc.weight"].any()
    assert torch.equal(big["wte.weight"][:, :8], p0["wte.weight"].to(big["wte.weight"]))
