"""The l1-pruning comparator: the largest-L1 filters survive, their consumers' columns follow."""
import pytest
import torch

from growkit import models as M
from growkit.errors import GrowkitError
from growkit.methods.adenel.prune import l1_prune, l1_scores


def test_l1_prune_keeps_the_largest_filters_by_hand():
    net = M.create("LeNet5", widths=[4, 3, 120, 84], in_channels=1, image_size=8)
    with torch.no_grad():
        for k, scale in enumerate([0.1, 3.0, 0.2, 2.0]):  # L1 of filter k: 25 * scale
            net.conv1.weight[k] = -scale if k % 2 else scale
        for k in range(4):
            net.conv2.weight[:, k] = float(k + 1)  # column k of conv2 marks input channel k
    assert l1_scores(net, "conv1").tolist() == pytest.approx([2.5, 75.0, 5.0, 50.0])
    x = torch.randn(2, 1, 8, 8)
    l1_prune(net, {"conv1": 2})
    assert net.conv1.weight.shape[0] == 2 and net.conv2.weight.shape[1] == 2
    assert net.conv1.weight[:, 0, 0, 0].tolist() == pytest.approx([-3.0, -2.0])  # filters 1 and 3, in order
    assert net.conv2.weight[0, :, 0, 0].tolist() == [2.0, 4.0]
    net(x)  # still runs


def test_l1_prune_rejects_growing():
    net = M.create("LeNet5", in_channels=1, image_size=8)
    with pytest.raises(GrowkitError):
        l1_prune(net, {"conv1": 7})


def test_l1_prune_grower_prunes_once_at_its_epoch_and_never_ends_the_run():
    from types import SimpleNamespace
    from growkit.methods.adenel.prune import L1PruneConfig, L1PruneGrower
    net = M.create("VGG16", widths=8, in_channels=1, num_classes=10, image_size=8)
    with torch.no_grad():
        net.layers[0].conv.weight.copy_(torch.arange(8.0).view(8, 1, 1, 1).expand_as(net.layers[0].conv.weight))
    g = L1PruneGrower(L1PruneConfig(ratio=0.5), at=3)
    for epoch in (1, 2):
        d = g.decide(SimpleNamespace(epoch=epoch, model=net))
        assert not d.plans and not d.done
    d = g.decide(SimpleNamespace(epoch=3, model=net))
    assert not d.done and d.info["pruned_to"] == {f"layers.{i}": 4 for i in range(13)}
    assert d.info["pruned_channels"] == 13 * 4 == g.state["pruned_channels"]
    for plan in d.plans:
        plan.apply(net)
    assert net.structure()["widths"] == [4] * 13
    assert net.layers[0].conv.weight[:, 0, 0, 0].tolist() == [4.0, 5.0, 6.0, 7.0]  # the largest L1, in order
    later = g.decide(SimpleNamespace(epoch=4, model=net))
    assert not later.plans and not later.done  # the run fine-tunes to its last epoch
    with pytest.raises(GrowkitError):
        L1PruneGrower(L1PruneConfig(targets={"nope": 2}), at=1).targets(net)


@pytest.mark.parametrize("epochs, prune_at, expect", [(60, 2 / 3, 40), (3, 2 / 3, 2), (2, 0.1, 1), (2, 0.9, 1),
                                                     (300, 0.5, 150)])
def test_prune_epoch_leaves_training_before_and_fine_tuning_after(epochs, prune_at, expect):
    from growkit.methods.adenel.prune import L1PruneConfig
    assert L1PruneConfig(prune_at=prune_at).prune_epoch(epochs) == expect
    with pytest.raises(GrowkitError):
        L1PruneConfig().prune_epoch(1)
    with pytest.raises(GrowkitError):
        L1PruneConfig(prune_at=1.0).validate()
