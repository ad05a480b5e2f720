"""CUDA paths (skipped without a CUDA device): the fast training path and batched surfaces."""
import numpy as np
import pytest
import torch

from growkit.engine.config import TrainConfig
from growkit.engine.trainer import Trainer
from growkit.viz import landscape as L

pytestmark = pytest.mark.gpu


def test_cuda_training_uses_bf16_channels_last_and_learns():
    t = Trainer(TrainConfig(depths=[1, 1, 1], epochs=3, device="cuda", progress=False))
    assert t.amp and t.channels_last and t.data.train_x.is_cuda
    res = t.fit()
    assert res["val_acc"] > 80
    assert next(t.model.parameters()).dtype == torch.float32  # parameters and BN stay fp32 under autocast


def test_cuda_growth_and_resume_state_round_trip(tmp_path):
    from growkit.methods.autogrow.method import autogrow
    from growkit.methods.autogrow.config import AutoGrowConfig
    res = autogrow(TrainConfig(epochs=1, device="cuda", progress=False),
                        AutoGrowConfig(K=1, J=100, max_grow_epochs=3, finetune_epochs=1), tmp_path / "g")
    assert res["found"] == "Basic3ResNet-2-2-2"


def test_cuda_batched_surface_equals_cpu():
    torch.manual_seed(0)
    from growkit import models as M
    m = M.create("Basic3ResNet-1-2-1", in_channels=1, image_size=8).double().eval()
    x, y = torch.randn(64, 1, 8, 8, dtype=torch.float64), torch.randint(0, 10, (64,))
    w = L.params_of(m)
    d1, d2 = L.random_direction(w, 1), L.random_direction(w, 2)
    xs = np.linspace(-1, 1, 5)
    cpu = L.surface(m, d1, d2, xs, xs, x, y)
    mc = m.cuda()
    to = lambda d: {k: v.cuda() for k, v in d.items()}  # noqa: E731
    gpu = L.surface(mc, to(d1), to(d2), xs, xs, x.cuda(), y.cuda(), center=to(w), points_per_batch=8)
    assert np.abs(gpu["loss"] - cpu["loss"]).max() < 1e-6


def test_cuda_adam_state_carried_across_width_edits_stays_on_the_device():
    from growkit import models as M
    from growkit.engine import optim, surgery as S
    torch.manual_seed(0)
    m = M.create("VGG16", widths=4, in_channels=1, image_size=8).cuda()
    opt = optim.build(m, TrainConfig(optimizer="adam"), 1e-3)
    x = torch.randn(4, 1, 8, 8, device="cuda")
    m(x).sum().backward()
    opt.step()
    old = {n: {k: v.clone() for k, v in s.items()} for n, s in optim.state_by_name(m, opt).items()}
    shapes = {n: p.shape for n, p in m.named_parameters()}
    edits = [S.Widen("layers.2", 2).apply(m), S.SplitChannels("layers.2", [0, 5]).apply(m),
             S.PruneChannel("layers.3", 1).apply(m)]
    m.cuda()
    new = optim.carry(m, opt, edits, old, shapes)
    s = optim.state_by_name(m, new)["layers.2.conv.weight"]
    assert s["exp_avg"].is_cuda and s["exp_avg"].shape[0] == 8
    assert torch.equal(s["exp_avg"][:4], old["layers.2.conv.weight"]["exp_avg"])
    assert torch.count_nonzero(s["exp_avg"][4:]) == 0
    m.zero_grad()
    m(x).sum().backward()
    new.step()
