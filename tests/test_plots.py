"""The paper-style plots: what a reader sees (axis ranges, tick labels, panels, legends), read back from the
figures themselves."""
import matplotlib

matplotlib.use("Agg")

from growkit.viz import plots  # noqa: E402


def _labels(fig, ax, which="x"):
    fig.canvas.draw()
    axis = ax.xaxis if which == "x" else ax.yaxis
    lo, hi = ax.get_xlim() if which == "x" else ax.get_ylim()
    ticks = axis.get_majorticklabels() + axis.get_minorticklabels()
    pos = [t.get_position()[0 if which == "x" else 1] for t in ticks]
    return {t.get_text() for t, p in zip(ticks, pos) if t.get_text() and lo <= p <= hi}


def test_readable_tick_labels():
    assert [plots.readable(v) for v in (20_000, 1_500_000, 0.01, 3, 250)] == ["20k", "1.5M", "0.01", "3", "250"]


def test_a_log_axis_under_one_decade_still_has_readable_labels():
    plt = plots._plt()
    fig, ax = plt.subplots()
    ax.plot([22_000, 31_000, 47_000, 88_000], [1, 2, 3, 4], "o")
    plots.log_axis(ax)
    labels = _labels(fig, ax)
    assert {"50k"} <= labels, labels  # decades alone would label nothing between 22k and 88k
    assert not any("^" in s or "times" in s for s in labels), labels  # no 10^k mathtext
    plt.close(fig)


def test_a_log_axis_over_decades_labels_decades_in_plain_numbers():
    plt = plots._plt()
    fig, ax = plt.subplots()
    ax.plot([5_000, 2_000_000], [1, 2], "o")
    plots.log_axis(ax)
    labels = _labels(fig, ax)
    assert {"10k", "100k", "1M"} <= labels, labels
    plt.close(fig)


def _rows(n=30):
    rows = []
    for e in range(1, n + 1):  # epoch 1 at 12 %, later epochs above 90 %
        acc = 12.0 if e == 1 else 90.0 + 9 * e / n
        rows.append({"epoch": e, "train_loss": 2.0 / e, "val_loss": 2.2 / e, "train_acc": acc + 1, "val_acc": acc,
                     "phase": "grow" if e < 20 else "finetune", "events": [{"kind": "grow"}] if e in (5, 10) else []})
    return rows


def test_growth_curves_show_the_first_epochs_unclipped():
    fig = plots.growth_curves(_rows())
    ax_loss, ax_acc = fig.axes
    assert ax_acc.get_ylim()[0] <= 12.0  # the first epoch's 12 % is inside the plot
    assert ax_loss.get_yscale() == "log" and ax_loss.get_ylim()[1] >= 2.2
    assert not any("^" in s for s in _labels(fig, ax_loss, "y"))
    plots._plt().close(fig)


def test_figure5_has_one_panel_per_net_and_one_legend_entry_per_K():
    nets = ["Basic3ResNet", "Basic4ResNet", "Plain3Net", "Plain4Net"]
    series = {n: [{"params": 10_000 * d * (i + 1), "test_acc": 90 + d, "label": f"{d}-{d}-{d}"} for d in (1, 2, 4, 8)]
              for i, n in enumerate(nets)}
    grown = {n: [(m, {"params": 30_000 + 1000 * s, "test_acc": 95 + s, "label": f"K={k}: 2-2-{s}"})
                 for m, k in (("o", 6), ("*", 3)) for s in range(3)] for n in nets}
    fig = plots.accuracy_vs_params(series, grown)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == nets
    for ax in axes:
        texts = [t.get_text() for t in ax.get_legend().get_texts()]
        assert texts == ["trained from scratch", "AutoGrow K=6", "AutoGrow K=3"], texts
        assert len([ln for ln in ax.get_lines() if ln.get_marker() in ("o", "*")]) == 6  # every seed drawn
    plots._plt().close(fig)
