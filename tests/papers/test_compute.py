"""Compute-matched comparisons against hand-derived answers."""
import math

import pytest
from scipy import stats as sps

from growkit.errors import GrowkitError
from growkit.papers.compute import Curve, compare, flops_to, loss_at, pick_lr

C = Curve.of([(0, 4.0), (10, 3.0), (20, 2.0), (40, 1.5)])


def test_loss_at_interpolates_and_never_extrapolates():
    assert loss_at(C, 10) == 3.0 and loss_at(C, 15) == 2.5 and loss_at(C, 30) == 1.75 and loss_at(C, 40) == 1.5
    with pytest.raises(GrowkitError, match="no extrapolation"):
        loss_at(C, 41)


def test_flops_to_a_target_interpolates_the_first_crossing():
    assert flops_to(C, 2.5) == 15.0  # between (10, 3.0) and (20, 2.0)
    assert flops_to(C, 1.75) == 30.0 and flops_to(C, 4.5) == 0.0
    assert flops_to(C, 1.0) is None  # never reached: no made-up number
    bumpy = Curve.of([(0, 3.0), (10, 1.0), (20, 2.0), (30, 0.5)])
    assert flops_to(bumpy, 1.5) == 7.5  # the first crossing, not a later one


def test_bad_curves_are_one_line_errors():
    with pytest.raises(GrowkitError, match="non-finite"):
        Curve.of([(0, 1.0), (1, float("nan"))])
    with pytest.raises(GrowkitError, match="increase"):
        Curve.of([(0, 1.0), (0, 0.5)])


def test_pick_lr_takes_the_lowest_mean_loss_flags_an_edge_and_skips_divergence():
    best, rows = pick_lr({1e-3: [2.0, 2.2], 3e-3: [1.8, 1.9], 1e-2: [1.9, float("inf")]})
    assert best == 3e-3 and [r["chosen"] for r in rows] == [False, True, False]
    assert rows[2]["mean val loss"] == "diverged" and not any(r["edge"] for r in rows)
    best, rows = pick_lr({1e-3: [2.0], 3e-3: [1.5]})
    assert best == 3e-3 and rows[1]["edge"]  # the best rate is the largest tried: the optimum may lie beyond
    with pytest.raises(GrowkitError, match="diverged"):
        pick_lr({1e-1: [float("nan")]})


def _line(end_loss, slope_end):
    """A curve falling linearly from loss 4 at 0 FLOPs to ``end_loss`` at ``slope_end`` FLOPs, flat to 100."""
    return Curve.of([(0, 4.0), (slope_end, end_loss)] + ([(100, end_loss)] if slope_end < 100 else []))


def test_compare_at_equal_flops_and_to_target_against_hand_numbers():
    grown = {0: _line(1.0, 50), 1: _line(1.1, 40), 2: _line(0.9, 60)}
    scratch = {0: _line(1.2, 100), 1: _line(1.3, 100), 2: _line(1.25, 100)}
    out = compare(grown, scratch, budget=100)
    assert out["loss_grown"] == [1.0, 1.1, 0.9] and out["loss_scratch"] == [1.2, 1.3, 1.25]
    d = [-0.2, -0.2, -0.35]  # paired differences
    half = sps.t.ppf(0.975, 2) * math.sqrt(sum((x - sum(d) / 3) ** 2 for x in d) / 2) / math.sqrt(3)
    iv = out["equal_flops"].interval
    assert iv.method == "paired" and iv.mean == pytest.approx(-0.25) and iv.half == pytest.approx(half)
    assert out["equal_flops"].word == "agrees"  # interval -0.25 ± 0.22 lies below zero
    assert out["target"] == pytest.approx(1.25) and out["floor"] == pytest.approx(0.05)
    # FLOPs to loss 1.25: grown seed 0 falls 4 -> 1.0 over 50, reaching 1.25 at 50 * 2.75 / 3 = 45.83
    tg, ts = out["flops_to_target_grown"], out["flops_to_target_scratch"]
    assert tg[0] == pytest.approx(50 * 2.75 / 3) and tg[1] == pytest.approx(40 * 2.75 / 2.9)
    # scratch seed 0 ends at 1.2 and crosses 1.25 at 100 * 2.75 / 2.8; seed 1 ends at 1.3: never; seed 2 at the end
    assert ts[0] == pytest.approx(100 * 2.75 / 2.8) and ts[1] is None and ts[2] == 100.0
    assert out["not_reached"] == {"grown": [], "scratch": [1]}
    assert out["ratios"] == pytest.approx({0: tg[0] / ts[0], 2: tg[2] / 100})
    assert out["ratio"]["n"] == 2 and out["to_target"].interval.n == 2  # only the seeds where both arms reached it
    one = compare({0: grown[0]}, {0: scratch[0]}, budget=100)
    assert one["to_target"] is None and one["ratio"]["low"] is None  # one pair: no interval, no verdict


def test_flops_ratio_is_a_geometric_mean_with_a_log_scale_interval():
    grown = {s: _line(1.0, e) for s, e in ((0, 50), (1, 40), (2, 60))}
    scratch = {s: _line(1.0, e) for s, e in ((0, 100), (1, 100), (2, 90))}
    out = compare(grown, scratch, budget=100, target=2.5)
    r = [out["ratios"][s] for s in (0, 1, 2)]
    assert r == pytest.approx([0.5, 0.4, 60 / 90])  # each run reaches 2.5 halfway down its slope
    logs = [math.log(x) for x in r]
    m = sum(logs) / 3
    half = sps.t.ppf(0.975, 2) * math.sqrt(sum((x - m) ** 2 for x in logs) / 2) / math.sqrt(3)
    assert out["ratio"]["geometric_mean"] == pytest.approx(math.exp(m))
    assert out["ratio"]["low"] == pytest.approx(math.exp(m - half)) and out["ratio"]["high"] == pytest.approx(math.exp(m + half))
    assert out["to_target"].word == ("agrees" if m + half < 0 else "not resolved")
