"""A stop (the live view's button, ``request_stop``) is part of the run's record and of its cache key: the stopped
run says so in config.json and result.json, and a later request for the same config without a stop trains anew
instead of getting the stopped run back."""
import json

import pytest

from growkit.engine.callbacks import Callback
from growkit.methods.autogrow.config import AutoGrowConfig
from growkit.runs import cache

TRAIN = dict(model="Basic3ResNet", dataset="digits", device="cpu", batch_size=256, seed=0)
# grow every epoch for at most 4 epochs (J = 2 >= 2 K), then one fine-tuning epoch
AG = dict(policy="periodic", K=1, J=2, tau=0.0, init="zero", finetune_epochs=1, max_grow_epochs=4)


class StopAt(Callback):
    """Presses "stop" after epoch ``n``, as the button does from another thread."""

    def __init__(self, n):
        self.n = n

    def on_epoch(self, trainer, row):
        if row["epoch"] == self.n:
            trainer.grower.request_stop("stop button")


def _run(runs_dir, **kw):
    return cache.named(runs_dir, "g", "autogrow", cache.train_cfg(TRAIN), AutoGrowConfig(**AG), **kw)


def _rows(path):
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


def test_a_stopped_run_is_recorded_and_never_returned_for_an_unstopped_request(tmp_path):
    stopped = _run(tmp_path, callbacks=[StopAt(1)])
    # tau = 0: a gain (of a running maximum) is never below it, so only the bound (4 growing epochs) or the stop ends growing;
    # the stop asked after epoch 1 is seen at the decision of epoch 2
    assert stopped["stopped"] == {"by": "stop button", "epoch": 2} and stopped["stopped_by"] == "stop button"
    assert stopped["grow_epochs"] == 2
    on_disk = json.loads((tmp_path / "g" / "config.json").read_text())
    assert on_disk["stopped"] == {"by": "stop button", "epoch": 2}
    assert json.loads((tmp_path / "g" / "result.json").read_text())["stopped"]["epoch"] == 2
    assert [r["phase"] for r in _rows(tmp_path / "g")] == ["grow", "grow", "finetune"]

    again = _run(tmp_path)  # the same config, no stop: trains anew (4 growing epochs + 1 fine-tuning)
    assert again["stopped"] is None and again["stopped_by"] == "max_grow_epochs"  # the bound, not a stop
    assert again["grow_epochs"] == 4 and len(again["growth_events"]) == 4
    assert "stopped" not in json.loads((tmp_path / "g" / "config.json").read_text())
    assert [r["phase"] for r in _rows(tmp_path / "g")] == ["grow"] * 4 + ["finetune"]
    assert _run(tmp_path)["wall_s"] == again["wall_s"]  # and that unstopped run is what the cache returns now


def test_a_stop_asked_before_training_is_recorded_at_the_first_decision(tmp_path):
    r = _run(tmp_path, grower_hook=lambda g: g.request_stop())
    assert r["stopped"] == {"by": "request", "epoch": 1} and r["grow_epochs"] == 1


class CrashAt(Callback):
    """Interrupts the run after epoch ``n`` was recorded, before that epoch's checkpoint."""

    def __init__(self, n):
        self.n = n

    def on_epoch(self, trainer, row):
        if row["epoch"] == self.n:
            raise KeyboardInterrupt


def test_a_stop_whose_epoch_never_reached_a_checkpoint_survives_a_resume(tmp_path):
    """The stop goes to config.json at its decision; a crash before that epoch's checkpoint leaves the last
    checkpoint without it. The resume accepts that checkpoint, asks the grower to stop again and finishes a run
    marked stopped (at the first stop's epoch), never an unstopped one."""
    from growkit.engine import checkpoint
    from growkit.runs import lifecycle
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, callbacks=[StopAt(1), CrashAt(2)])
    d = tmp_path / "g"
    assert json.loads((d / "config.json").read_text())["stopped"] == {"by": "stop button", "epoch": 2}
    state = checkpoint.load(d / "checkpoint.pt")
    assert state["loop"]["epoch"] == 1 and "stopped" not in state["config"]
    res = lifecycle.resume(d)
    assert res["stopped"] == {"by": "stop button", "epoch": 2} and res["grow_epochs"] == 2
    assert [r["phase"] for r in _rows(d)] == ["grow", "grow", "finetune"]


def test_an_interrupted_run_resumed_through_the_cache_gets_the_callbacks_and_the_stop_hook(tmp_path):
    """Run All after an interrupted run resumes it: the live view's callback sees the resumed epochs and its stop
    button reaches the resumed run's grower."""
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, callbacks=[CrashAt(2)])  # epoch 1 is checkpointed, epoch 2 is not
    seen = []

    class Rows(Callback):
        def on_epoch(self, trainer, row):
            seen.append(row["epoch"])

    r = _run(tmp_path, callbacks=[Rows()], grower_hook=lambda g: g.request_stop("stop button"))
    assert seen == [2, 3]  # epoch 2 again (its decision sees the stop), then one fine-tuning epoch
    assert r["stopped"] == {"by": "stop button", "epoch": 2} and r["grow_epochs"] == 2


def test_the_live_view_of_a_resumed_run_draws_its_earlier_epochs(tmp_path):
    pytest.importorskip("ipywidgets")
    from growkit.viz.widgets import LiveGrowthView
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, callbacks=[CrashAt(3)])  # epochs 1-2 checkpointed, each with a growth
    view = LiveGrowthView(n_stages=3)
    r = view.run(lambda cb, hook: _run(tmp_path, callbacks=[cb], grower_hook=hook), run_dir=tmp_path / "g")
    assert [row["epoch"] for row in view.rows] == [1, 2, 3, 4, 5] and view.growth == [1, 2, 3, 4]
    assert "done" in view.status.value and "reused" not in view.status.value and r["stopped"] is None


def test_the_live_view_shows_a_reused_run_as_finished(tmp_path):
    """Restart & Run All after a finished run: the cache returns it, nothing trains, and the view says so
    (no "waiting to start", no stop button to press, its curves drawn from metrics.jsonl)."""
    pytest.importorskip("ipywidgets")
    from growkit.viz.widgets import LiveGrowthView
    first = _run(tmp_path)
    view = LiveGrowthView(n_stages=3)
    got = view.run(lambda cb, hook: _run(tmp_path, callbacks=[cb], grower_hook=hook), run_dir=tmp_path / "g")
    assert got["wall_s"] == first["wall_s"]  # the cache returned the finished run
    status = view.status.value
    assert "reused" in status and "done" in status and "waiting" not in status and "stopped" not in status
    assert view.stop_button.disabled and view.stop_button.layout.display == "none"
    assert view.plot.value[:8] == b"\x89PNG\r\n\x1a\n" and len(view.rows) == 5
    assert [b.value for b in view.bars] == first["depths"] and view.growth == [1, 2, 3, 4]
