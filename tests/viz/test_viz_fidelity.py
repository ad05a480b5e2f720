"""Trajectory plots and surfaces describe the same weights; PCA is deterministic; shared convs are not folded."""
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from growkit.errors import GrowkitError
from growkit.viz import landscape as L
from growkit.viz import trajectory as T


def test_pca_plane_does_not_depend_on_the_global_random_state():
    g = torch.Generator().manual_seed(0)
    final = {"w": torch.zeros(3000, 1, dtype=torch.float64)}
    snaps = [T.Snapshot(e, "x", {}, {"w": torch.randn(3000, 1, generator=g, dtype=torch.float64)})
             for e in range(9)]
    runs = []
    for seed in (1, 2):  # scikit-learn's randomized solver would draw from here (and differ by ~1e-13)
        np.random.seed(seed)
        runs.append(T.pca_trajectory(snaps, ignore_1d=False, center=final).coords)
    assert np.array_equal(runs[0], runs[1])
    # and it is the exact plane: the top two right singular vectors of the centred differences
    X = torch.cat([s.params["w"].T for s in snaps]).numpy()
    _, _, vt = np.linalg.svd(X - X.mean(0), full_matrices=False)
    assert np.allclose(np.abs(runs[0]), np.abs(X @ vt[:2].T), rtol=0, atol=1e-10)


class SharedConv(nn.Module):
    """One conv applied twice (weight sharing), each time followed by its own BN."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
        self.bn1, self.bn2 = nn.BatchNorm2d(1), nn.BatchNorm2d(1)
        self.head = nn.Linear(1, 10)

    def forward(self, x):
        x = self.bn2(self.conv(torch.relu(self.bn1(self.conv(x)))))
        return self.head(x.mean((2, 3)))


def test_a_conv_called_twice_is_not_folded():
    m = SharedConv().eval()
    with pytest.raises(GrowkitError, match="called 2 times") as e:
        L.fold_conv_bn(m)
    assert "\n" not in str(e.value)
    x = torch.randn(8, 1, 8, 8)
    y = torch.randint(0, 10, (8,))
    w = L.params_of(m)
    d = {n: torch.zeros_like(t) for n, t in w.items()}
    s = L.surface(m, d, None, [0.0], None, x, y, bn="batch")  # the other BN mode needs no folding
    assert s["loss"][0] == pytest.approx(F.cross_entropy(L._replace_bn(m)(x), y).item(), rel=1e-6)


def test_trajectory_end_and_surface_centre_are_the_final_checkpoint(tmp_path):
    from growkit.papers import study as X
    from growkit.methods.autogrow.method import autogrow
    from growkit.engine.config import TrainConfig
    from growkit.methods.autogrow.config import AutoGrowConfig
    cfg = TrainConfig(epochs=1, progress=False, eval_test=False, snapshot_every=3)
    # growth at epochs 1-4 (the last one after the last multiple of 3), one fine-tuning epoch: 5 epochs in all
    res = autogrow(cfg, AutoGrowConfig(K=1, J=100, max_grow_epochs=4, finetune_epochs=1), tmp_path / "r")
    assert res["epochs"] == 5 and [e["epoch"] for e in res["growth_events"]][-1] == 4
    snaps = T.load_snapshots(tmp_path / "r")
    assert [sn.epoch for sn in snaps] == [0, 3, 5]  # every 3 epochs, and always the final one
    traj, surf = X.trajectory_surface(tmp_path / "r", grid=3, images=32)
    assert traj.epochs[-1] == 5 and traj.archs[-1] == res["found"]
    assert np.array_equal(traj.coords[-1], [0.0, 0.0])
    model = X.load_model(tmp_path / "r")
    for n, p in model.named_parameters():
        assert torch.equal(traj.center[n], p.detach()), n
    x, y = X.load_data(tmp_path / "r").subset("train", 32)
    assert surf["x"][1] == 0 and surf["y"][1] == 0
    with torch.no_grad():
        expect = F.cross_entropy(model(x), y).item()  # the checkpoint's own loss, no folding
    assert surf["loss"][1, 1] == pytest.approx(expect, rel=1e-5)


def test_the_post_growth_plane_holds_only_the_path_after_the_growth(tmp_path):
    """Figure 2a's middle panel: snapshots from the growth epoch on, one architecture, the final checkpoint as
    origin and the surface centred on it; no snapshot before the final one is a clear error."""
    from growkit.papers import study as X
    from growkit.methods.autogrow.method import autogrow
    from growkit.engine.config import TrainConfig
    from growkit.methods.autogrow.config import AutoGrowConfig
    cfg = TrainConfig(epochs=1, progress=False, eval_test=False, snapshot_every=1)
    res = autogrow(cfg, AutoGrowConfig(K=2, J=100, max_grow_epochs=2, finetune_epochs=3), tmp_path / "r")
    g = [e["epoch"] for e in res["growth_events"]][-1]
    traj, surf = X.trajectory_surface_after(tmp_path / "r", g, grid=3, images=32)
    assert traj.epochs == list(range(g, res["epochs"] + 1))
    assert np.array_equal(traj.coords[-1], [0.0, 0.0])
    whole, _ = X.trajectory_surface(tmp_path / "r", grid=3, images=32)
    assert len(whole.epochs) > len(traj.epochs)  # the whole run's plane holds the epochs before it too
    model = X.load_model(tmp_path / "r")
    x, y = X.load_data(tmp_path / "r").subset("train", 32)
    with torch.no_grad():
        assert surf["loss"][1, 1] == pytest.approx(F.cross_entropy(model(x), y).item(), rel=1e-5)
    with pytest.raises(GrowkitError, match="no snapshot from epoch"):
        X.trajectory_surface_after(tmp_path / "r", res["epochs"], grid=3, images=32)
