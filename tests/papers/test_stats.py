"""The verdict statistics against answers worked out by hand (t quantiles copied from a printed table)."""
import math

import pytest
import scipy.stats

from growkit.errors import GrowkitError
from growkit.papers import stats as S

# Student t quantiles, from a table
T975_2, T975_4, T95_2, T995_2 = 4.302653, 2.776445, 2.919986, 9.924843


def test_paired_interval_by_hand():
    # per-seed differences 2, 3, 4: mean 3, sd 1, se 1/sqrt(3), 2 df
    iv = S.difference([3, 5, 7], [1, 2, 3], seeds=[0, 1, 2])
    assert (iv.method, iv.n, iv.df, iv.sizes) == ("paired", 3, 2, (3, 3))
    assert iv.mean == pytest.approx(3.0)
    assert iv.half == pytest.approx(T975_2 / math.sqrt(3), abs=1e-6)
    assert (iv.low, iv.high) == (pytest.approx(3 - 2.484138, abs=1e-6), pytest.approx(3 + 2.484138, abs=1e-6))
    assert str(iv) == "+3.00 ± 2.48 (95 % CI, paired, n = 3)"


def test_the_confidence_level_is_a_parameter():
    iv = S.difference([3, 5, 7], [1, 2, 3], seeds=[0, 1, 2], level=0.99)
    assert iv.half == pytest.approx(T995_2 / math.sqrt(3), abs=1e-6)
    assert str(iv) == "+3.00 ± 5.73 (99 % CI, paired, n = 3)"
    with pytest.raises(GrowkitError, match="between 0 and 1"):
        S.difference([3, 5, 7], [1, 2, 3], level=95)


def test_mappings_pair_by_seed_whatever_their_order():
    iv = S.difference({0: 3, 1: 5, 2: 7}, {2: 3, 0: 1, 1: 2})
    assert iv.method == "paired"
    assert iv.half == pytest.approx(T975_2 / math.sqrt(3), abs=1e-6)  # differences 2, 3, 4 as above


def test_welch_with_equal_spreads_has_2n_minus_2_df():
    # variances 4 and 4, n = 3 each: se^2 = 8/3, df = (8/3)^2 / (2 (4/3)^2 / 2) = 4
    iv = S.difference([0, 2, 4], [3, 5, 7])
    assert (iv.method, iv.n, iv.sizes) == ("welch", 3, (3, 3))
    assert iv.df == pytest.approx(4.0)
    assert iv.mean == pytest.approx(-3.0)
    assert iv.half == pytest.approx(T975_4 * math.sqrt(8 / 3), abs=1e-6)
    assert str(iv) == "-3.00 ± 4.53 (95 % CI, Welch, n = 3)"


def test_welch_satterthwaite_df_by_hand():
    # a: mean 2, variance 4, n 3 -> 4/3; b: mean 5, variance 10, n 5 -> 2
    # df = (4/3 + 2)^2 / ((4/3)^2 / 2 + 2^2 / 4) = (100/9) / (17/9) = 100/17
    iv = S.difference([0, 2, 4], [1, 3, 5, 7, 9])
    assert iv.df == pytest.approx(100 / 17)
    assert iv.mean == pytest.approx(-3.0)
    assert "Welch, n = 3 and 5" in str(iv)
    # the half-width against scipy's own Welch test (a separate implementation)
    ci = scipy.stats.ttest_ind([0, 2, 4], [1, 3, 5, 7, 9], equal_var=False).confidence_interval(0.95)
    assert (iv.low, iv.high) == (pytest.approx(ci.low), pytest.approx(ci.high))


def test_arms_with_different_seeds_are_not_paired():
    iv = S.difference([3, 5, 7], [1, 2, 3], seeds=[0, 1, 2], seeds_b=[0, 1, 3])
    assert iv.method == "welch"
    assert S.difference([3, 5, 7], [1, 2, 3]).method == "welch"  # seeds unknown: nothing says they pair
    assert S.difference([3, 5, 7], [1, 2, 3], paired=True).method == "paired"  # the caller says they do


def test_paired_and_welch_give_different_verdicts_on_the_same_numbers():
    # every seed's AutoGrow run beats that seed's scratch run by 1-2 points, but the seeds scatter by 9
    grown, scratch, seeds = [90, 96, 99], [88, 95, 97], [0, 1, 2]
    paired = S.higher(grown, scratch, "AutoGrow beats scratch", seeds=seeds)
    # differences 2, 1, 2: mean 5/3, sd sqrt(1/3), se 1/3
    assert paired.word == S.AGREES and paired.holds is True
    assert paired.interval.half == pytest.approx(T975_2 / 3, abs=1e-6)
    assert paired.text == ("Agrees with the paper: AutoGrow beats scratch "
                           "(Δ = +1.67 ± 1.43, 95 % CI, paired, n = 3).")
    welch = S.higher(grown, scratch, "AutoGrow beats scratch", paired=False)
    assert welch.word == S.NOT_RESOLVED and welch.holds is None
    assert welch.interval.low < 0 < welch.interval.high
    assert welch.text.startswith("Not resolved at n = 3: AutoGrow beats scratch (Δ = +1.67 ± ")


def test_a_direction_shown_the_other_way_disagrees():
    v = S.lower([3, 5, 7], [1, 2, 3], "the first is lower", seeds=[0, 1, 2])
    assert v.word == S.DISAGREES and v.holds is False and v.head == "Disagrees with the paper"
    assert S.lower([1, 2, 3], [3, 5, 7], "the first is lower", seeds=[0, 1, 2]).word == S.AGREES
    assert S.higher([1, 2, 3], [3, 5, 7], "the first is higher", seeds=[0, 1, 2]).word == S.DISAGREES


def test_not_resolved_prints_the_half_width():
    # differences 1, -1, 3: mean 1, sd 2, se 2/sqrt(3), half 4.302653 * 1.154701 = 4.968
    v = S.higher([2, 0, 4], [1, 1, 1], "a is higher", seeds=[0, 1, 2])
    assert v.word == S.NOT_RESOLVED
    assert v.head == "Not resolved at n = 3"
    assert "+1.00 ± 4.97" in v.text


# TOST: differences -0.1, 0.2, -0.1 (+ shift): sd sqrt(0.03), se 0.1; the 90 % interval at 2 df is
# shift ± 2.919986 * 0.1 = shift ± 0.292
A, B, SEEDS = [10.0, 10.4, 10.2], [10.1, 10.2, 10.3], [0, 1, 2]


def shifted(x):
    return [v + x for v in A]


def test_tost_equivalence_by_hand():
    v = S.same(A, B, "A and B are about the same", margin=0.5, seeds=SEEDS)
    assert v.word == S.AGREES and v.margin == 0.5
    assert v.interval.level == pytest.approx(0.90)
    assert v.interval.half == pytest.approx(T95_2 * 0.1, abs=1e-6)
    assert v.text == ("Agrees with the paper: A and B are about the same (Δ = +0.00 ± 0.29, 90 % CI, paired, n = 3; "
                      "equivalence margin ±0.50, TOST at α = 0.05).")
    # the same interval, a margin it does not fit in: not shown equivalent, not shown different
    assert S.same(A, B, "same", margin=0.25, seeds=SEEDS).word == S.NOT_RESOLVED


def test_tost_difference_beyond_the_margin_disagrees():
    # shift 1: [0.708, 1.292], wholly above 0.5
    assert S.same(shifted(1.0), B, "same", margin=0.5, seeds=SEEDS).word == S.DISAGREES
    assert S.same(shifted(-1.0), B, "same", margin=0.5, seeds=SEEDS).word == S.DISAGREES
    # shift 0.5: [0.208, 0.792] straddles the margin: not resolved, though the difference is shown nonzero
    v = S.same(shifted(0.5), B, "same", margin=0.5, seeds=SEEDS)
    assert v.word == S.NOT_RESOLVED
    assert S.higher(shifted(0.5), B, "higher", seeds=SEEDS).word == S.AGREES  # 95 %: 0.5 ± 0.430
    # shift 0.7: the mean is beyond the margin but [0.408, 0.992] is not wholly beyond it
    assert S.same(shifted(0.7), B, "same", margin=0.5, seeds=SEEDS).word == S.NOT_RESOLVED


def test_tost_level_is_alpha():
    # alpha 0.025 uses the 95 % interval: ± 0.430 at shift 0 fits 0.45, and alpha 0.05's 0.292 fits too
    v = S.same(A, B, "same", margin=0.45, alpha=0.025, seeds=SEEDS)
    assert v.interval.half == pytest.approx(T975_2 * 0.1, abs=1e-6) and v.word == S.AGREES
    assert S.same(A, B, "same", margin=0.40, alpha=0.025, seeds=SEEDS).word == S.NOT_RESOLVED
    assert S.same(A, B, "same", margin=0.40, alpha=0.05, seeds=SEEDS).word == S.AGREES


def test_relative_margin_against_the_second_arms_mean():
    # mean of B = 10.2: 5 % is 0.51 (the 0.292 interval fits), 2 % is 0.204 (it does not)
    v = S.same(A, B, "same", relative=0.05, seeds=SEEDS)
    assert v.margin == pytest.approx(0.51) and v.word == S.AGREES and "margin ±0.51" in v.text
    assert S.same(A, B, "same", relative=0.02, seeds=SEEDS).word == S.NOT_RESOLVED
    assert S.same(A, B, "same", relative=0.02, reference=20.0, seeds=SEEDS).margin == pytest.approx(0.4)
    assert S.same(shifted(1.0), B, "same", relative=0.05, seeds=SEEDS).margin == pytest.approx(0.51)  # not 0.56
    # with both, the larger
    assert S.same(A, B, "same", margin=0.1, relative=0.05, seeds=SEEDS).margin == pytest.approx(0.51)
    with pytest.raises(GrowkitError, match="margin"):
        S.same(A, B, "same", seeds=SEEDS)
    with pytest.raises(GrowkitError, match="positive"):
        S.same(A, B, "same", margin=0.0, seeds=SEEDS)


def test_a_single_run_is_illustrative():
    for v in (S.higher([97.0], [90.0], "c"), S.lower([97.0], [90.0], "c"), S.same([97.0], [90.0], "c", margin=1),
              S.higher([97.0], [90.0, 91.0, 92.0], "c"), S.higher({5: 97.0}, {5: 90.0}, "c")):
        assert v.word == S.ILLUSTRATIVE and v.holds is None
        assert v.head == "Illustrative (1 run)"
        assert v.interval.half is None and v.interval.df is None
    assert S.higher([97.0], [90.0], "c").text == "Illustrative (1 run): c (Δ = +7.00, 1 run each, no interval)."
    assert "n = 1 and 3, no interval" in S.higher([97.0], [90.0, 91.0, 92.0], "c").text


@pytest.mark.parametrize("a, b", [([1.0, float("nan"), 2.0], [1.0, 2.0, 3.0]),
                                  ([1.0, 2.0, 3.0], [1.0, float("inf"), 3.0]),
                                  ([1.0, None, 3.0], [1.0, 2.0, 3.0]),
                                  ([1.0, "2", 3.0], [1.0, 2.0, 3.0])])
def test_non_finite_or_missing_values_stop_with_one_line(a, b):
    with pytest.raises(GrowkitError) as e:
        S.difference(a, b, seeds=[0, 1, 2])
    assert "\n" not in str(e.value) and "seed 1" in str(e.value)


def test_non_finite_margin_or_level_stops():
    with pytest.raises(GrowkitError, match="finite"):
        S.same(A, B, "same", margin=float("nan"), seeds=SEEDS)
    with pytest.raises(GrowkitError, match="finite"):
        S.difference(A, B, level=float("nan"))


def test_pairing_mismatched_seeds_is_an_error_naming_them():
    with pytest.raises(GrowkitError, match=r"seeds \[2\] only in the first, \[3\] only in the second"):
        S.difference([3, 5, 7], [1, 2, 3], seeds=[0, 1, 2], seeds_b=[0, 1, 3], paired=True)
    with pytest.raises(GrowkitError, match="cannot pair 3 runs with 2"):
        S.difference([3, 5, 7], [1, 2], paired=True)
    with pytest.raises(GrowkitError, match="seed 1 more than once"):
        S.difference([3, 5, 7], [1, 2, 3], seeds=[0, 1, 1])
    with pytest.raises(GrowkitError, match="3 values but 2 seeds"):
        S.difference([3, 5, 7], [1, 2, 3], seeds=[0, 1])


def test_all_of_a_best_claim():
    seeds = [0, 1, 2]
    beats_b = S.higher([3, 5, 7], [1, 2, 3], "A > B", seeds=seeds)        # agrees
    unclear = S.higher([2, 0, 4], [1, 1, 1], "A > C", seeds=seeds)         # not resolved
    beaten = S.higher([1, 2, 3], [3, 5, 7], "A > D", seeds=seeds)          # disagrees
    assert S.all_of("A is best", [beats_b, beats_b]).word == S.AGREES
    v = S.all_of("A is best", [beats_b, unclear])
    assert v.word == S.NOT_RESOLVED and v.interval is unclear.interval
    assert v.text.startswith("Not resolved at n = 3: A is best "
                             "(A > B: Δ = +3.00 ± 2.48, 95 % CI, paired, n = 3; A > C:")
    v = S.all_of("A is best", [beats_b, unclear, beaten])
    assert v.word == S.DISAGREES and v.interval is beaten.interval


def test_arms_without_spread_give_a_point_interval():
    # no scatter in either arm: the standard error is 0, the interval the difference itself (no NaN df)
    iv = S.difference([1.0, 1.0, 1.0], [0.0, 0.0, 0.0])
    assert (iv.mean, iv.half, iv.df) == (1.0, 0.0, 4)
    assert S.higher([1.0, 1.0, 1.0], [0.0, 0.0, 0.0], "c").word == S.AGREES
    tie = S.difference([97.5, 98.0], [97.5, 98.0], seeds=[0, 1])
    assert (tie.mean, tie.half, tie.df) == (0.0, 0.0, 1)
    assert S.higher([97.5, 98.0], [97.5, 98.0], "c", seeds=[0, 1]).word == S.NOT_RESOLVED


def test_non_inferiority_by_hand():
    # the 90 % paired interval of A − B is 0 ± 0.292 (T95_2 x 0.1 at level 0.90): its low end −0.292 > −0.5
    v = S.not_lower(A, B, "A is as accurate as B", margin=0.5, seeds=SEEDS)
    assert v.word == S.AGREES and v.interval.level == pytest.approx(0.90)
    assert v.text == ("Agrees with the paper: A is as accurate as B (Δ = +0.00 ± 0.29, 90 % CI, paired, n = 3; "
                      "non-inferiority margin −0.50, one-sided at α = 0.05).")
    # much better is still "not lower" (where an equivalence test would disagree)
    assert S.not_lower(shifted(1.0), B, "c", margin=0.5, seeds=SEEDS).word == S.AGREES
    assert S.same(shifted(1.0), B, "c", margin=0.5, seeds=SEEDS).word == S.DISAGREES
    # [−1.292, −0.708] lies wholly below −0.5: shown worse than the margin
    assert S.not_lower(shifted(-1.0), B, "c", margin=0.5, seeds=SEEDS).word == S.DISAGREES
    # [−0.792, −0.208] straddles −0.5
    assert S.not_lower(shifted(-0.5), B, "c", margin=0.5, seeds=SEEDS).word == S.NOT_RESOLVED
    assert S.not_lower([1.0], [2.0], "c", margin=0.5).word == S.ILLUSTRATIVE
    with pytest.raises(GrowkitError):
        S.not_lower(A, B, "c", margin=0.0, seeds=SEEDS)
