"""A compute budget for lm runs and the growers: schedule values at stated compute shares, the step a run stops
at, growth at stated fractions, AutoGrow's policy on a loss sequence worked through by hand, kill + resume.

Expected numbers are worked out by hand from the multiply-add counts of the GPT (per token, training:
``3 (L (12 d^2 + 2 T d) + d V)``) and the schedule's formula."""
import json
import math

import pytest
import torch

from growkit.engine.schedule import budget_decay
from growkit.errors import GrowkitError
from growkit.methods.transformer_growth import LMConfig, LMRun
from growkit.methods.transformer_growth.growers import AutoGrowLM, ScheduleGrower, build, plan_from, plan_spec
from growkit.models import create

from .conftest import TEXT, start_killed


V = len(set(TEXT))
T, B = 8, 4


def step_macs(layers, d=8):
    """Training multiply-adds of one step of B windows of T tokens, by hand."""
    return B * T * 3 * (layers * (12 * d * d + 2 * T * d) + d * V)


def small(corpus, **kw):
    base = dict(model="GPT-1L-2H-8", dataset=f"text:{corpus}", context=T, batch_size=B, eval_windows=5, lr=3e-3,
                device="cpu")
    base.update(kw)
    return LMConfig(**base)


def rows_of(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def _strip(rows):
    return [{k: v for k, v in r.items() if k not in ("interval_s", "wall_s", "tokens_per_s")} for r in rows]


def test_schedule_values_at_stated_compute_shares():
    # warmup: steps 0 and 1 of 2 at half and full rate, whatever the compute
    assert budget_decay(0, 0.0, 1000.0, 1.0, warmup=2) == 0.5
    assert budget_decay(1, 100.0, 1000.0, 1.0, warmup=2) == 1.0
    # after a warmup that spent 200 of 1000: 600 spent is half of the remaining 800 -> cosine at 1/2 = lr / 2
    assert abs(budget_decay(5, 600.0, 1000.0, 1.0, 2, "cosine", 0.0, 200.0) - 0.5) < 1e-15
    # 400 spent: a quarter of 800 -> linear 1 - 1/4; cosine (1 + cos(pi/4)) / 2
    assert abs(budget_decay(5, 400.0, 1000.0, 2.0, 2, "linear", 0.0, 200.0) - 1.5) < 1e-15
    assert abs(budget_decay(5, 400.0, 1000.0, 1.0, 2, "cosine", 0.0, 200.0) - (1 + math.sqrt(0.5)) / 2) < 1e-15
    # no warmup, a floor of 0.2: half the budget spent -> 0.2 + 0.8 / 2
    assert abs(budget_decay(3, 500.0, 1000.0, 1.0, 0, "cosine", 0.2) - 0.6) < 1e-15
    # the budget spent: fully decayed (and never below the floor past it)
    assert budget_decay(9, 1000.0, 1000.0, 1.0, 0, "linear") == 0.0
    assert budget_decay(9, 1200.0, 1000.0, 1.0, 0, "cosine", 0.1) == pytest.approx(0.1, abs=1e-15)


@pytest.mark.parametrize("steps_worth, want_steps", [(3.0, 3), (2.5, 3), (2.0001, 3), (1.0, 1)])
def test_a_compute_budget_stops_at_the_first_step_reaching_it(corpus, steps_worth, want_steps):
    a = step_macs(1)
    run = LMRun(small(corpus, budget_macs=steps_worth * a, eval_every=2))
    res = run.fit()
    assert res["steps"] == want_steps and res["train_macs"] == want_steps * a
    assert res["budget_macs"] == steps_worth * a


def test_rows_carry_the_rate_of_the_compute_share(corpus, tmp_path):
    a = step_macs(1)
    budget = 6 * a
    out = tmp_path / "r"
    out.mkdir()
    LMRun(small(corpus, budget_macs=budget, eval_every=2, warmup=1, lr=0.01), out).fit()
    rows = rows_of(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [2, 4, 6]
    # the last step of each row: step s spent s a before it; after the 1-step warmup (a spent), p = (s a - a) / 5 a
    want = [0.01 * 0.5 * (1 + math.cos(math.pi * (s - 1) / 5)) for s in (1, 3, 5)]
    assert [r["lr"] for r in rows] == pytest.approx(want, rel=1e-12)


def test_a_grown_run_takes_more_cheap_steps_for_the_same_compute(corpus, tmp_path):
    a, b = step_macs(1), step_macs(2)
    budget = 10 * a
    spec = {"kind": "schedule", "at": [[0.15, [{"op": "stack_all", "times": 2}]]]}
    out = tmp_path / "g"
    out.mkdir()
    run = LMRun(small(corpus, budget_macs=budget, eval_every=2, grower=spec), out)
    res = run.fit()
    # the first evaluation (step 2, 2 a spent = 20 % >= 15 %) grows; the rest of the budget goes at b a step
    after = math.ceil(8 * a / b)
    assert res["steps"] == 2 + after and res["train_macs"] == 2 * a + after * b
    ev = res["growth_events"]
    assert [(e["step"], e["fraction"], e["share"], e["after"]) for e in ev] == [(2, 0.15, 0.2, "GPT-2L-2H-8")]
    assert ev[0]["train_macs"] == 2 * a
    rows = rows_of(out / "metrics.jsonl")
    # the last step's rate: the cosine at the share spent before it (no warmup)
    spent = 2 * a + (after - 1) * b
    assert rows[-1]["lr"] == pytest.approx(3e-3 * 0.5 * (1 + math.cos(math.pi * spent / budget)), rel=1e-12)


def test_growth_waits_for_the_first_evaluation_at_or_after_its_fraction(corpus):
    a = step_macs(1)
    run = LMRun(small(corpus, budget_macs=10 * a, eval_every=3,
                      grower={"kind": "schedule", "at": [[0.25, [{"op": "insert_blocks", "k": 1}]],
                                                         [0.5, [{"op": "widen_gpt", "factor": 2}]]]}))
    res = run.fit()
    # evaluations at 3 a (30 %: the 0.25 growth), then 3 a + 3 b' ... each step after the insertion costs b
    b = step_macs(2)
    spent2 = 3 * a + 3 * b  # second evaluation: above half of 10 a, so the widening happens there
    assert spent2 >= 5 * a
    assert [(e["step"], e["fraction"]) for e in res["growth_events"]] == [(3, 0.25), (6, 0.5)]
    assert res["growth_events"][1]["share"] == pytest.approx(spent2 / (10 * a), rel=1e-12)
    assert res["arch"] == "GPT-2L-4H-16"



@pytest.mark.parametrize("spec", [
    {"kind": "schedule", "at": [[0.3, [{"op": "stack_all", "times": 2}]]]},
    {"kind": "autogrow", "policy": "periodic", "K": 1, "J": 2, "tau": 0.0, "max_layers": 3}])
def test_kill_and_resume_with_a_grower_is_identical(corpus, tmp_path, spec):
    """A run killed right after a growth event is resumed by `growkit resume` (the grower rebuilt from the run's
    config, its state from the checkpoint) and ends with the records and weights of an uninterrupted run."""
    from growkit.engine import checkpoint
    from growkit.methods.transformer_growth import own_loop
    from growkit.runs import lifecycle
    cfg = small(corpus, budget_macs=12 * step_macs(1), eval_every=2, grower=spec)
    full = own_loop.start(cfg, tmp_path / "full")
    assert full["growth_events"], "the grower grew"
    kill_step = full["growth_events"][0]["step"]
    start_killed(cfg, tmp_path / "killed", lambda run: run.state.step == kill_step)
    resumed = lifecycle.resume(tmp_path / "killed")
    ra, rb = rows_of(tmp_path / "full" / "metrics.jsonl"), rows_of(tmp_path / "killed" / "metrics.jsonl")
    assert _strip(ra) == _strip(rb)
    assert resumed["growth_events"] == full["growth_events"] and resumed["val_loss"] == full["val_loss"]
    wa, wb = (checkpoint.load(tmp_path / d / "checkpoint.pt") for d in ("full", "killed"))
    assert wa["grower"] == wb["grower"]
    for k in wa["model"]:
        assert torch.equal(wa["model"][k], wb["model"][k]), k


class FakeRun:
    """What a grower sees of a run: a real GPT it grows, the step, done()."""

    def __init__(self, layers=1):
        self.model = create(f"GPT-{layers}L-2H-8", vocab_size=5, context=4)
        self.state = type("S", (), {"step": 0})()
        self.grown_at = []

    def done(self):
        return False

    def grow(self, plans, info):
        for p in plans:
            p.apply(self.model)
        self.grown_at.append(info["evaluation"])


LOSSES = [3.0, 2.5, 2.4, 2.35, 2.3, 2.29, 2.28, 2.28, 2.0, 1.9]


def feed(grower, run, losses, start=0):
    for i, v in enumerate(losses):
        run.state.step = 10 * (start + i + 1)
        grower.after_eval(run, {"val_loss": v})


def test_periodic_autogrow_by_hand():
    # K = 2, J = 4, tau = 0.1; m = the losses (they never rise). Checks at 2, 4, 6, 8:
    # 2: grows (first); 4: m(0) - m(4) = inf >= tau, grows; 6: m(2) - m(6) = 2.5 - 2.29 = 0.21, grows;
    # 8: m(4) - m(8) = 2.35 - 2.28 = 0.07 < tau: stops, and evaluation 10 does not grow again
    g, run = AutoGrowLM("periodic", K=2, J=4, tau=0.1), FakeRun()
    feed(g, run, LOSSES)
    assert run.grown_at == [2, 4, 6] and run.model.layers == 4
    assert g.state["stopped"] == "no improvement of tau over J evaluations"
    assert [c["evaluation"] for c in g.state["checks"]] == [2, 4, 6, 8]
    assert g.state["checks"][2]["gain_J"] == pytest.approx(0.21) and g.state["checks"][0]["gain_J"] is None


def test_convergent_autogrow_by_hand():
    # K = 2, tau = 0.1: 2: improvement inf, no growth; 4: m(2) - m(4) = 0.15, none; 6: m(4) - m(6) = 0.06 < tau:
    # converged, grows; 8: m(6) - m(8) = 0.01 < tau right after a growth: the growth did not pay, stops
    g, run = AutoGrowLM("convergent", K=2, tau=0.1), FakeRun()
    feed(g, run, LOSSES)
    assert run.grown_at == [6] and run.model.layers == 2
    assert g.state["stopped"] == "the last growth did not improve by tau within K evaluations"


def test_autogrow_stops_at_max_layers_and_inserts_zero_residual_blocks():
    g, run = AutoGrowLM("periodic", K=2, J=4, tau=0.1, max_layers=3), FakeRun()
    x = torch.randint(0, 5, (2, 4))
    with torch.no_grad():
        before = run.model(x)
        feed(g, run, LOSSES[:4])
        after = run.model(x)
    assert run.grown_at == [2, 4] and run.model.layers == 3 and g.state["stopped"] == "max_layers"
    assert torch.allclose(before, after, atol=1e-6)  # the default plan preserves the function


def test_autogrow_state_resumes_to_the_same_decisions():
    g, run = AutoGrowLM("periodic", K=2, J=4, tau=0.1), FakeRun()
    feed(g, run, LOSSES[:5])
    saved = json.loads(json.dumps(g.state_dict()))
    g2 = AutoGrowLM("periodic", K=2, J=4, tau=0.1)
    g2.load_state_dict(saved)
    feed(g2, run, LOSSES[5:], start=5)
    assert run.grown_at == [2, 4, 6] and g2.state["stopped"] is not None


def test_specs_round_trip_and_bad_specs_are_one_line_errors():
    spec = {"kind": "schedule", "at": [[0.25, [{"op": "widen_gpt", "factor": 2, "heads": "wider", "noise": 0.0,
                                                 "seed": 0, "noise_kind": "zero_sum"}]]]}
    assert build(spec).spec() == spec
    assert plan_spec(plan_from({"op": "insert_blocks", "k": 2})) == {"op": "insert_blocks", "k": 2, "position": None}
    assert isinstance(build({"kind": "autogrow"}), AutoGrowLM) and build({"kind": "autogrow"}).J == 6  # 3 K
    for bad, match in [({"kind": "schedule", "at": [[1.0, [{"op": "stack_all"}]]]}, "below 1"),
                       ({"kind": "schedule", "at": [[0.5, []]]}, "names no plan"),
                       ({"kind": "schedule", "at": [[0.5, [{"op": "stack_all"}]], [0.4, [{"op": "stack_all"}]]]},
                        "must increase"),
                       ({"kind": "schedule", "at": [[0.5, [{"op": "stack_all", "k": 2}]]]}, "has no option k"),
                       ({"kind": "autogrow", "K": 3, "J": 5}, "below 2 K = 6"),
                       ({"kind": "autogrow", "policy": "sometimes"}, "periodic or convergent"),
                       ({"kind": "autogrow", "tau": -1}, "tau must be"),
                       ({"kind": "autogrow", "speed": 2}, "unexpected keyword argument 'speed'")]:
        with pytest.raises(GrowkitError, match=match):
            build(bad)
    assert isinstance(build({"kind": "schedule", "at": [[0.5, [{"op": "stack_all"}]]]}), ScheduleGrower)


def test_a_warmup_longer_than_the_compute_budget_is_refused(corpus):
    with pytest.raises(GrowkitError, match="warmup must be fewer steps than the 3"):
        LMRun(small(corpus, budget_macs=2.5 * step_macs(1), warmup=3))


def test_a_schedule_in_a_step_budget_grows_at_a_share_of_the_steps(corpus):
    # 12 steps, evaluations at 4, 8, 12: 4 / 12 < 0.5 <= 8 / 12, so the growth happens at step 8
    res = LMRun(small(corpus, steps=12, eval_every=4, grower={"kind": "schedule", "at": [
        [0.5, [{"op": "insert_blocks", "k": 1}]]]})).fit()
    assert [(e["step"], e["share"]) for e in res["growth_events"]] == [(8, 8 / 12)]
    assert res["steps"] == 12 and res["train_macs"] == 8 * step_macs(1) + 4 * step_macs(2)
