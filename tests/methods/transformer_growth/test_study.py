"""The fair harness of GPT growth: budgets, arms, sweeps through the run cache, verdicts against G_stack.

Expected values are worked out by hand (multiply-adds per step from the GPT's formula, FLOPs ratios of
hand-made curves and their log-scale t-interval) or read back from the runs' own files."""
import json
import math

import pytest

from growkit.engine.gpt_surgery import InsertBlocks, StackAll, WidenGPT
from growkit.errors import GrowkitError
from growkit.methods.transformer_growth import study as X
from growkit.models import create
from growkit.papers import compute, records, report

TEXT = ("It is a truth universally acknowledged, that a single man in possession of a good fortune, "
        "must be in want of a wife.\n") * 12
V = len(set(TEXT))


@pytest.fixture
def base(tmp_path):
    f = tmp_path / "corpus.txt"
    f.write_text(TEXT)
    return dict(dataset=f"text:{f}", context=8, batch_size=4, eval_every=2, eval_windows=4, device="cpu")


def test_the_budget_is_whole_steps_of_the_final_model(base):
    d, L, T = 8, 1, 8
    per_token = 3 * (L * (12 * d * d + 2 * T * d) + d * V)  # training multiply-adds per token, by hand
    assert X.budget(base, "GPT-1L-2H-8", 5) == 5 * 4 * T * per_token
    with pytest.raises(GrowkitError, match="at least one step"):
        X.budget(base, "GPT-1L-2H-8", 0)


def test_the_arms_grow_into_the_final_model():
    arms = X.depth_arms("GPT-2L-4H-16", "GPT-4L-4H-16", fraction=0.3, autogrow=dict(policy="convergent", K=2, tau=0.1))
    assert set(arms) == {"scratch", "G_stack", "zero-residual", "AutoGrow-c"}
    assert arms["AutoGrow-c"]["grower"]["max_layers"] == 4
    for name, plan in [("G_stack", StackAll(2)), ("zero-residual", InsertBlocks(k=2))]:
        (frac, plans), = arms[name]["grower"]["at"]
        assert frac == 0.3
        m = create(arms[name]["model"], vocab_size=7, context=4)
        from growkit.methods.transformer_growth.growers import plan_from
        assert plan_from(plans[0]) == plan
        plan.apply(m)
        assert m.arch == "GPT-4L-4H-16"
    w = X.width_arms("GPT-2L-2H-8", "GPT-2L-4H-16", fractions=[0.25, 0.5])
    assert list(w) == ["scratch", "HyperCloning@0.25", "HyperCloning@0.5"]
    m = create(w["HyperCloning@0.5"]["model"], vocab_size=7, context=4)
    WidenGPT(2).apply(m)
    assert m.arch == "GPT-2L-4H-16"
    with pytest.raises(GrowkitError, match="twice its depth"):
        X.depth_arms("GPT-2L-4H-16", "GPT-3L-4H-16", fraction=0.3)
    with pytest.raises(GrowkitError, match="does not give"):
        X.width_arms("GPT-2L-2H-8", "GPT-2L-2H-16", fractions=[0.5])


def test_an_arm_sweeps_then_seeds_through_the_run_cache(base, tmp_path):
    runs = tmp_path / "runs"
    spec = {"model": "GPT-2L-2H-8", "grower": {"kind": "schedule", "at": [[0.3, [{"op": "widen_gpt", "factor": 2}]]]}}
    budget = X.budget(base, "GPT-2L-4H-16", 6)
    a = X.arm(runs, "w", base, spec, lrs=[0.004, 0.001, 0.002], seeds=[0, 1], budget_macs=budget)
    dirs = sorted(p.name for p in runs.iterdir())
    # three rates at seed 0, then seed 1 at the chosen rate only: seed 0's sweep run is the arm's seed-0 run
    assert dirs == sorted(["w-lr0.001-s0", "w-lr0.002-s0", "w-lr0.004-s0", f"w-lr{a['lr']:g}-s1"])
    finals = {lr: json.loads((runs / f"w-lr{lr:g}-s0" / "result.json").read_text())["val_loss"]
              for lr in (0.001, 0.002, 0.004)}
    assert a["lr"] == min(finals, key=finals.get)
    assert [r["lr"] for r in a["sweep"]] == [0.001, 0.002, 0.004]
    assert a["edge"] == (a["lr"] in (0.001, 0.004))
    for s in (0, 1):
        res = json.loads((runs / f"w-lr{a['lr']:g}-s{s}" / "result.json").read_text())
        assert res["train_macs"] >= budget and res["arch"] == "GPT-2L-4H-16"
        rows = [json.loads(x) for x in (runs / f"w-lr{a['lr']:g}-s{s}" / "metrics.jsonl").read_text().splitlines()]
        assert a["curves"][s] == compute.Curve.of((r["train_macs"], r["val_loss"]) for r in rows)
        assert a["final"][s] == res["val_loss"]
    stamps = {p.name: (p / "result.json").stat().st_mtime_ns for p in runs.iterdir()}
    again = X.arm(runs, "w", base, spec, lrs=[0.001, 0.002, 0.004], seeds=[0, 1], budget_macs=budget)
    assert {p.name: (p / "result.json").stat().st_mtime_ns for p in runs.iterdir()} == stamps  # reused, not rerun
    assert again["final"] == a["final"]
    # the records of these runs carry their final validation loss and compute, so verdicts trace to them
    recs = records.run_rows(runs)
    by = {r["run"]: r for r in recs}
    res0 = json.loads((runs / "w-lr0.001-s0" / "result.json").read_text())
    assert by["w-lr0.001-s0"]["val_loss"] == res0["val_loss"] and by["w-lr0.001-s0"]["train_macs"] == \
        res0["train_macs"] and by["w-lr0.001-s0"]["seed"] == 0


def _arms(ratios):
    """Scratch reaches loss 2.0 exactly at the budget (10) for every seed; the grown arm at 10 x ratio."""
    scratch = {s: compute.Curve.of([(1, 3.0), (5.5, 2.5 + 0.01 * s), (10, 2.0)]) for s in range(3)}
    grown = {s: compute.Curve.of([(1, 3.0), (10 * r, 2.0), (10, 1.9 - 0.01 * s)]) for s, r in enumerate(ratios)}
    return {"scratch": {"spec": {"model": "GPT-4L-4H-64"}, "curves": scratch, "final": {s: 2.0 for s in range(3)},
                        "results": {}},
            "G": {"spec": {"model": "GPT-2L-4H-64",
                           "grower": {"kind": "schedule", "at": [[0.25, [{"op": "stack_all"}]]]}},
                  "curves": grown, "final": {s: 1.9 - 0.01 * s for s in range(3)}, "results": {}}}


@pytest.mark.parametrize("ratios, head", [((0.3, 0.31, 0.29), "Agrees with the paper"),
                                          ((0.9, 0.91, 0.89), "Disagrees with the paper"),
                                          ((0.5, 0.6, 0.4), "Not resolved")])
def test_the_gstack_claim_is_a_log_scale_interval_against_1_546(ratios, head):
    arms = _arms(ratios)
    comps = X.compare(arms, "scratch", 10.0)
    c = comps["G"]
    assert c["target"] == 2.0 and c["ratios"] == pytest.approx({s: r for s, r in enumerate(ratios)})
    cl = {k["claim"].split(":")[-1].strip() if "1.546" in k["claim"] else k["claim"]: k
          for k in X.claims(arms, "scratch", comps, same_margin=0.02)}
    v = next(k for k in cl.values() if "verdict" in k)["verdict"]
    # by hand: d_s = log(ratio_s x 1.546), mean and t-interval with 2 degrees of freedom (t = 4.303)
    d = [math.log(r * 1.546) for r in ratios]
    m = sum(d) / 3
    sd = math.sqrt(sum((x - m) ** 2 for x in d) / 2)
    assert v.interval.mean == pytest.approx(m, abs=1e-12)
    assert v.interval.high == pytest.approx(m + 4.302653 * sd / math.sqrt(3), abs=1e-5)
    assert v.head.startswith(head)
    lower = next(k for k in cl.values() if "groups" in k)
    assert lower["groups"] == {"G": [1.9, 1.89, 1.88], "scratch": [2.0, 2.0, 2.0]} and lower["higher"] is False
    same = next(k for k in cl.values() if "same" in k)
    assert same["margin"] == 0.02


def test_a_grown_arm_worse_than_scratch_reads_as_a_ratio_above_one():
    arms = _arms((0.3, 0.31, 0.29))
    arms["G"]["curves"] = {s: compute.Curve.of([(1, 3.0), (10, 2.2)]) for s in range(3)}
    arms["G"]["final"] = {s: 2.2 for s in range(3)}
    comps = X.compare(arms, "scratch", 10.0)
    c = comps["G"]
    assert c["target"] == 2.2  # the grown runs' loss at the budget, the highest
    # scratch reaches 2.2 on its middle segment: 5.5 + 4.5 (0.3 + 0.01 s) / (0.5 + 0.01 s); grown at 10
    want = {s: 10 / (5.5 + 4.5 * (0.3 + 0.01 * s) / (0.5 + 0.01 * s)) for s in range(3)}
    assert c["ratios"] == pytest.approx(want, rel=1e-12) and all(r > 1 for r in want.values())
    v = next(k for k in X.claims(arms, "scratch", comps, same_margin=0.02) if "verdict" in k)["verdict"]
    assert v.head.startswith("Disagrees")


def test_judge_takes_a_margin_and_digits_and_records_them(tmp_path):
    a, b = [1.90, 1.91, 1.92], [1.905, 1.912, 1.918]  # paired differences -0.005, -0.002, +0.002
    note = report.judge(tmp_path, "t", [dict(claim="about the same", paper="p", unit="nats", digits=4, margin=0.02,
                                             same={"a": a, "b": b})], seeds=[0, 1, 2])
    rec = json.loads((tmp_path / report.PAPER_VS_KIT / "t.json").read_text())["rows"][0]
    assert rec["evidence"]["test"]["margin"] == 0.02 and rec["verdict"] == "Agrees with the paper"
    assert "±0.0200" in note  # four decimals
    from tests.papers.verdict_check import Check, Records
    walk = Check(Records(tmp_path))  # no run records: recomputed from the recorded values, each listed untraced
    assert walk.word(rec["evidence"]["test"], "t") == "agrees" and len(walk.untraced) == 6


def test_captions_of_a_text_corpus_say_toy_scale():
    cap = report.caption("x", dataset="shakespeare", profile="cpu")
    assert "toy scale" in cap and "Digits" not in cap
    assert "Digits" not in report.caption("x", dataset="openwebtext", profile="paper")
    assert "Digits" in report.caption("x", dataset="digits", profile="cpu")


def test_the_target_is_the_highest_loss_at_the_budget_so_every_run_reaches_it():
    arms = _arms((0.3, 0.31, 0.29))
    arms["scratch"]["curves"][2] = compute.Curve.of([(1, 3.0), (5, 2.2), (10, 2.1)])  # the worst run: 2.1
    comps = X.compare(arms, "scratch", 10.0)
    c = comps["G"]
    assert c["target"] == 2.1 and c["not_reached"] == {"grown": [], "scratch": []}
    # scratch seeds 0 and 1 reach 2.1 on their second segment, 5.5 + 4.5 (2.5 + 0.01 s - 2.1) / (0.5 + 0.01 s);
    # seed 2 at its last point, 10; grown seed s on its first segment at 1 + (10 r - 1) 0.9 / 1.0
    want_s = {0: 5.5 + 4.5 * 0.4 / 0.5, 1: 5.5 + 4.5 * 0.41 / 0.51, 2: 10.0}
    want_g = {s: 1 + (10 * r - 1) * 0.9 for s, r in enumerate((0.3, 0.31, 0.29))}
    assert c["ratios"] == pytest.approx({s: want_g[s] / want_s[s] for s in range(3)}, rel=1e-12)


def test_the_compute_note_puts_the_formula_beside_the_count(base):
    note = X.compute_note(base, ["GPT-1L-2H-8", "GPT-2L-2H-8", "GPT-1L-2H-8"])
    d, T = 8, 8
    for L in (1, 2):
        fwd = L * (12 * d * d + 2 * T * d) + d * V  # by hand
        assert f"GPT-{L}L-2H-8: " in note and f"{fwd:,} forward multiply-adds per token counted (formula {fwd:,}), " \
            f"{3 * fwd:,} in training" in note
    assert note.count("GPT-1L-2H-8") == 1


def test_a_diverged_sweep_rate_is_never_chosen_and_the_sweep_goes_on(base, tmp_path, monkeypatch):
    from growkit.errors import NonFiniteLoss
    real = X.run

    def run(runs_dir, arm, base_, spec, *, lr, seed, budget_macs):
        if lr == 0.004:
            raise NonFiniteLoss("the training loss became nan by step 3")
        return real(runs_dir, arm, base_, spec, lr=lr, seed=seed, budget_macs=budget_macs)
    monkeypatch.setattr(X, "run", run)
    a = X.arm(tmp_path / "runs", "s", base, {"model": "GPT-1L-2H-8"}, lrs=[0.001, 0.002, 0.004], seeds=[0],
              budget_macs=X.budget(base, "GPT-1L-2H-8", 4))
    assert a["lr"] in (0.001, 0.002)
    assert next(r for r in a["sweep"] if r["lr"] == 0.004)["mean val loss"] == "diverged"
