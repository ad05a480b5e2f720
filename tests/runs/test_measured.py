"""Measured numbers: plain numbers in every use, with the run record they come from kept through arithmetic."""
import copy
import json
import pickle

import pytest

from growkit.papers import stats
from growkit.runs import measured


def _value(expr, cells):
    """An independent reading of a source expression (the tests' own evaluator)."""
    if isinstance(expr, dict):
        return expr["constant"] if "constant" in expr else cells[expr["run"], expr["column"]]
    if isinstance(expr, list):
        op, a, b = expr
        a, b = _value(a, cells), _value(b, cells)
        return {"+": a + b, "-": a - b, "*": a * b, "/": a / b}[op]
    return expr


@pytest.fixture
def runs(tmp_path):
    nb = tmp_path / "nb"
    a = measured.tag({"test_acc": 97.5, "params": 1200, "arch": "Net", "depths": [1, 2]}, nb, "a-s0")
    b = measured.tag({"test_acc": 96.25, "params": 800}, nb, "b-s0")
    return a, b


def test_a_tagged_result_names_its_run_and_column_and_keeps_the_rest(runs):
    a, _ = runs
    assert a["test_acc"] == 97.5 and type(a["test_acc"]) is measured.MeasuredFloat
    assert a["params"] == 1200 and isinstance(a["params"], int) and type(a["params"]) is measured.MeasuredInt
    assert a["test_acc"].source == {"notebook": "nb", "run": "a-s0", "column": "test_acc"}
    assert a["arch"] == "Net" and a["depths"] == [1, 2] and not hasattr(a["depths"], "source")
    assert measured.source_of(a) == ("nb", "a-s0") and measured.source_of({"x": 1.0}) is None


def test_arithmetic_keeps_both_runs_and_gives_the_plain_answer(runs):
    a, b = runs
    cells = {("a-s0", "test_acc"): 97.5, ("b-s0", "test_acc"): 96.25, ("a-s0", "params"): 1200,
             ("b-s0", "params"): 800}
    exprs = {"diff": a["test_acc"] - b["test_acc"], "ratio": (100 - a["test_acc"]) / (100 - b["test_acc"]),
             "share": a["params"] / b["params"], "sum": sum([a["test_acc"], b["test_acc"]]) / 2,
             "neg": -a["test_acc"], "scaled": 2 * a["params"] + 1}
    want = {"diff": 1.25, "ratio": 2.5 / 3.75, "share": 1.5, "sum": 96.875, "neg": -97.5, "scaled": 2401}
    for k, v in exprs.items():
        assert v == pytest.approx(want[k], rel=1e-15) and _value(v.source, cells) == pytest.approx(want[k]), k
    assert isinstance(exprs["scaled"], int) and isinstance(exprs["share"], float)
    assert exprs["diff"].source == ["-", a["test_acc"].source, b["test_acc"].source]


def test_what_leaves_the_number_type_has_no_source(runs):
    a, _ = runs
    assert type(round(a["test_acc"], 1)) is float and type(float(a["test_acc"])) is float
    assert not hasattr(round(a["test_acc"], 1), "source")


def test_measured_numbers_print_serialise_copy_and_pickle_as_plain_ones(runs):
    a, _ = runs
    plain = {"test_acc": 97.5, "params": 1200}
    tagged = {k: a[k] for k in plain}
    assert json.dumps(tagged) == json.dumps(plain) and f"{a['test_acc']:.2f}" == "97.50" and str(a["params"]) == "1200"
    for c in (copy.deepcopy(tagged), pickle.loads(pickle.dumps(tagged))):
        assert c == plain and c["test_acc"].source == a["test_acc"].source


def test_a_constant_is_its_own_source_and_bools_stay_bools():
    c = measured.constant(0.5)
    assert c == 0.5 and c.source == {"constant": 0.5}
    assert measured.tag({"test_acc": True}, "nb", "r")["test_acc"] is True


def test_a_verdict_keeps_the_sources_of_both_arms(runs):
    a, b = runs
    v = stats.higher({0: a["test_acc"], 1: a["test_acc"] + 1}, {0: b["test_acc"], 1: measured.constant(96.0)},
                     "a is higher")
    ev = v.evidence()
    assert ev["test"] == "higher" and ev["a"] == [97.5, 98.5] and ev["seeds_a"] == [0, 1] and ev["paired"]
    assert ev["sources_a"][0] == {"notebook": "nb", "run": "a-s0", "column": "test_acc"}
    assert ev["sources_a"][1] == ["+", ev["sources_a"][0], 1]
    assert ev["sources_b"] == [{"notebook": "nb", "run": "b-s0", "column": "test_acc"}, {"constant": 96.0}]
    assert ev["word"] == v.word
    whole = stats.all_of("both", [v, stats.lower([1.0, 2.0], [3.0, 4.0], "plain")])
    assert [p["test"] for p in whole.evidence()["parts"]] == ["higher", "lower"]
    assert whole.evidence()["parts"][1]["sources_a"] == [None, None]
    assert stats.all_of("from an interval", [stats.directional(v.interval, "x")]).evidence() is None
