"""Why AutoGrow stops growing, as its decisions say it (the trainer records it as stopped_by)."""
from growkit import models as M
from growkit.engine.config import TrainConfig
from growkit.growers.view import GrowerView
from growkit.methods.autogrow.config import AutoGrowConfig
from growkit.methods.autogrow.grower import AutoGrow


def last_decision(cfg, accs):
    model = M.create("Basic3ResNet-1-1-1", in_channels=1, image_size=8)
    g = AutoGrow(cfg, 3)
    for epoch, acc in enumerate(accs, 1):
        d = g.decide(GrowerView(epoch=epoch, global_epoch=epoch, row={"val_acc": acc}, model=model))
        for plan in d.plans:
            plan.apply(model)
        if d.done:
            return epoch, d, model.depths
    return None, d, model.depths


def test_periodic_autogrow_stops_converged():
    # the hand-worked sequence of test_autogrow's periodic case: every sub-network stops at epoch 14
    accs = [50, 60, 70, 75, 40, 80, 80, 80, 80, 80, 80, 80, 80, 80]
    epoch, d, depths = last_decision(AutoGrowConfig(policy="periodic", K=2, J=4, tau=0.05), accs)
    assert (epoch, d.info["stopped_by"], list(depths)) == (14, "converged", [3, 3, 3])


def test_autogrow_capped_everywhere_stops_by_max_depth():
    # K=1, periodic, accuracy always rising: growth round-robins until every stage holds 2 blocks (3 growths)
    epoch, d, depths = last_decision(AutoGrowConfig(policy="periodic", K=1, J=2, tau=0.05, max_depth=2),
                                     [10.0 * i for i in range(1, 20)])
    assert (epoch, d.info["stopped_by"], list(depths)) == (3, "max_depth", [2, 2, 2])
