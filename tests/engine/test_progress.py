"""What a run says while it trains: a bar per phase with its total, whose text is the epoch it counts; one line
per growth event (what grew, the initializer, val accuracy before and one epoch after) and one when growing
stops; ``stopped_by`` in every growing run's result, for every way growing can end. Checked against the run's
own metrics.jsonl (what the lines must repeat) and against hand-built growers."""
import json
import re

import pytest

from growkit.engine.config import TrainConfig
from growkit.engine.schedule import Phase
from growkit.engine.trainer import Trainer
from growkit.growers.base import Decision, Grower
from growkit.methods.autogrow.config import AutoGrowConfig
from growkit.runs import lifecycle


def rows_of(out):
    return [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def grown(tmp_path_factory):
    """A c-AutoGrow run on digits that grows at epochs 2, 4 and 6 and stops at epoch 8. tau = 100 %: no gain over
    K epochs reaches it, so the grower's decisions do not hang on the numerics (with the default tau this run
    grew once on one thread and never on two)."""
    import contextlib
    import io
    out = tmp_path_factory.mktemp("p") / "grown_run"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        res = lifecycle.run("autogrow", TrainConfig(dataset="digits", device="cpu", eval_test=False),
                            AutoGrowConfig(policy="convergent", K=2, tau=100.0, max_grow_epochs=8,
                                           finetune_epochs=2), out)
    return out, res, err.getvalue()


def test_one_line_per_growth_event_with_accuracy_before_and_after(grown):
    out, res, err = grown
    rows = rows_of(out)
    by_epoch = {r["epoch"]: r for r in rows}
    lines = [ln for ln in err.replace("\r", "\n").splitlines() if " grew " in ln]
    events = [(r["epoch"], ev) for r in rows for ev in r["events"]]
    assert len(events) == 3 and len(lines) == len(events) == len(res["growth_events"])
    for line, (epoch, ev) in zip(lines, events):
        before, after = by_epoch[epoch]["val_acc"], by_epoch[epoch + 1]["val_acc"]
        assert line == (f"epoch {epoch}: grew {ev['before']} -> {ev['after']} (1 append_block, init gau); "
                        f"val {before:.2f}% before, {after:.2f}% after one more epoch")


def test_a_line_says_when_and_why_growing_stopped(grown):
    out, res, err = grown
    rows = rows_of(out)
    last_grow = [r for r in rows if r["phase"] == "grow"][-1]
    assert last_grow["epoch"] == 8 and res["stopped_by"] == "converged"  # every sub-network stopped
    stops = [ln for ln in err.replace("\r", "\n").splitlines() if "growing stopped" in ln]
    assert stops == [f"epoch 8: growing stopped (converged) at {last_grow['arch']}, "
                     f"{last_grow['params']:,} params, val {last_grow['val_acc']:.2f}%"]


def test_each_phase_has_a_bar_with_its_total_whose_text_is_the_epoch_it_counts(grown):
    out, _, err = grown
    rows = rows_of(out)
    states = re.findall(r"(grow \(1/2\)|finetune \(2/2\)): +\d+%\|[^|]*\| (\d+)/(\d+) \[[^\]]*?, (\S+) val ([\d.]+)%\]",
                        err)
    assert states
    seen = set()
    for phase, n, total, arch, val in states:
        n, total = int(n), int(total)
        assert total == (8 if phase.startswith("grow") else 2)
        row = rows[n - 1] if phase.startswith("grow") else rows[8 + n - 1]
        assert (arch, float(val)) == (row["arch"], round(row["val_acc"], 2))  # the epoch the count says
        seen.add(phase)
    assert seen == {"grow (1/2)", "finetune (2/2)"}
    assert "grown_run: grow (1/2)" in err  # labelled with its run


class Scripted(Grower):
    """Never grows; says done at epoch ``done_at`` (with ``reason``), or never."""

    def __init__(self, done_at=None, reason=None):
        super().__init__()
        self.done_at, self.reason = done_at, reason

    def decide(self, view):
        done = self.done_at is not None and view.epoch >= self.done_at
        return Decision(done=done, info={"stopped_by": self.reason} if done and self.reason else {})

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def run_scripted(grower, request_at=None):
    cfg = TrainConfig(depths=[1, 1, 1], device="cpu", progress=False, eval_test=False, fraction=0.2)
    phases = [Phase("grow", 0.1, epochs=None, max_epochs=3, grows=True), Phase("finetune", 0.1, epochs=1)]

    class Stop:
        def on_epoch(self, trainer, row):
            if request_at is not None and row["epoch"] == request_at:
                grower.request_stop()

    t = Trainer(cfg, phases=phases, grower=grower, callbacks=[Stop()])
    res = t.fit()
    return res["stopped_by"], res["epochs"]


@pytest.mark.parametrize("grower,request_at,why,epochs", [
    (Scripted(), None, "max_grow_epochs", 3 + 1),  # the phase's bound
    (Scripted(done_at=2), None, "grower", 2 + 1),  # done, no reason given
    (Scripted(done_at=2, reason="converged"), None, "converged", 2 + 1),  # the grower's own reason
], ids=["bound", "done", "reason"])
def test_stopped_by_for_every_way_growing_ends(grower, request_at, why, epochs):
    stopped_by, n = run_scripted(grower, request_at)
    assert (stopped_by, n) == (why, epochs)


def test_a_requested_stop_is_recorded_as_such():
    class AskedToStop(Scripted):
        def decide(self, view):
            return Decision(done=self.stop_requested)
    # asked after epoch 1's decision: the next decision (epoch 2) ends growing, then one fine-tuning epoch
    stopped_by, n = run_scripted(AskedToStop(), request_at=1)
    assert (stopped_by, n) == ("request", 2 + 1)


def test_a_run_without_a_grower_has_no_stopped_by():
    res = Trainer(TrainConfig(depths=[1, 1, 1], epochs=1, device="cpu", progress=False, eval_test=False,
                              fraction=0.2)).fit()
    assert "stopped_by" not in res
