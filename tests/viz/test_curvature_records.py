"""Curvature records read back: per-event numbers and per-run means against hand-computed values."""
import matplotlib
import pytest

from growkit.errors import GrowkitError
from growkit.viz import curvature as V

matplotlib.use("Agg")


def _kind(top, trace, share=None, mass=None):
    out = {"top": top, "trace": trace}
    if share is not None:
        out.update(trace_new_share=share, top_vec={"new": mass, "old": 1 - mass})
    return out


def _event(epoch, before, after, n, starved):
    return {"epoch": epoch, "curvature": {
        "before": {"hessian": _kind(*before), "ggn": _kind(before[0] / 2, before[1] / 2)},
        "after": {"hessian": _kind(*after), "ggn": _kind(after[0] / 2, after[1] / 2, after[2], after[3])},
        "new_units": {"n": n, "starved": starved, "new": [0.0] * n}}}


RESULT = {"growth_events": [_event(2, (10.0, 100.0), (30.0, 90.0, 0.25, 0.5), 4, 4),
                            {"epoch": 3, "before": "x"},  # recorded without curvature: skipped
                            _event(4, (20.0, 200.0), (20.0, 260.0, 0.75, 0.1), 6, 0)]}


def test_events_and_per_run_means_match_hand_values():
    ev = V.events(RESULT)
    assert [e["epoch"] for e in ev] == [2, 4]
    assert [e["jump"] for e in ev] == [20.0, 0.0] and [e["trace_jump"] for e in ev] == [-10.0, 60.0]
    assert ev[0]["ggn_top_after"] == 15.0
    run = V.per_run(RESULT)
    assert run["jump"] == 10.0 and run["top_before"] == 15.0 and run["trace_after"] == 175.0
    assert run["trace_new_share"] == 0.5 and run["top_vec_new"] == pytest.approx(0.3)
    assert run["events"] == 2 and run["starved_share"] == 0.4  # 4 of 10 new units


def test_a_run_without_curvature_is_a_one_line_error():
    with pytest.raises(GrowkitError, match="curvature_every"):
        V.per_run({"growth_events": [{"epoch": 1}]})


def test_plot_draws_the_rows_and_one_segment_per_event():
    import matplotlib.pyplot as plt
    rows = [{"epoch": 1}, {"epoch": 2, "curvature": {"hessian": {"top": 5.0, "trace": 50.0}}},
            {"epoch": 4, "curvature": {"hessian": {"top": 7.0, "trace": 70.0}}}]
    assert V.along(rows) == ([2, 4], [5.0, 7.0], [50.0, 70.0])
    fig, (a, b) = plt.subplots(2)
    V.plot_run(a, b, rows, RESULT, "run")
    segs = [tuple(l.get_ydata()) for l in a.lines if len(l.get_xdata()) == 2 and l.get_xdata()[0] == l.get_xdata()[1]]
    assert segs == [(10.0, 30.0), (20.0, 20.0)]
    plt.close(fig)
