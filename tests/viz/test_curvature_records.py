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


def test_table_row_gives_mean_and_sd_over_the_runs_that_grew():
    a = V.per_run(RESULT)  # jump 10, sharpness before 15
    b = dict(a, jump=16.0, top_before=19.0, events=4)
    row = V.table_row([a, b], 3, method="AutoGrow", setting="GauInit")
    assert list(row)[:3] == ["method", "setting", "runs that grew"] and row["runs that grew"] == "2 of 3"
    assert row["sharpness jump"] == "13.0 ± 4.2"  # mean 13, sd sqrt(18) = 4.24
    assert row["sharpness before"] == "17.0 ± 2.8" and row["events per run"] == "3.0 ± 1.4"
    assert V.table_row([a], 3)["sharpness jump"] == "10.0"
    assert V.table_row([], 3)["sharpness after"] == "-"


def test_run_records_carry_each_runs_curvature_means(tmp_path):
    import json

    from growkit.papers import records
    for name, res in (("grew", {**RESULT, "epochs": 9, "test_acc": 90.0}), ("plain", {"epochs": 5, "test_acc": 80.0})):
        d = tmp_path / "runs" / name
        d.mkdir(parents=True)
        (d / "config.json").write_text(json.dumps({"command": "autogrow", "train": {"seed": 0}}))
        (d / "result.json").write_text(json.dumps(res))
    records.write_records(tmp_path / "runs", tmp_path / "figs", "nb")
    rows = {r["run"]: r for r in records.read_records(tmp_path / "figs")["nb"]}
    g = rows["grew"]
    assert (float(g["sharpness_before"]), float(g["sharpness_after"]), float(g["sharpness_jump"])) == (15.0, 25.0, 10.0)
    assert rows["plain"]["sharpness_jump"] == ""
