"""Why Gauss-Newton stops growing, as its decisions say it (the trainer records it as stopped_by)."""
from growkit import models as M
from growkit.engine.config import TrainConfig
from growkit.growers.view import GrowerView


def test_gauss_newton_stops_by_its_schedule_or_a_request():
    from growkit.methods.gauss_newton.method import GaussNewtonConfig, build
    grower, [phase], _ = build(TrainConfig(model="VGG19", dataset="digits", lr=0.1),
                               GaussNewtonConfig(phases=2, phase_epochs=3, lr_drops=[]))
    model = M.create("VGG19", widths=4, in_channels=1, image_size=8)
    view = lambda e: GrowerView(epoch=e, global_epoch=e, row={"val_acc": 1.0}, model=model)  # noqa: E731
    assert not grower.decide(view(1)).done
    end = grower.decide(view(phase.epochs))
    assert end.done and end.info["stopped_by"] == "schedule"
    grower.request_stop()
    asked = grower.decide(view(1))
    assert asked.done and asked.info["stopped_by"] == "request"
