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


def _log_x_labels(xs):
    """A log x axis over ``xs`` and the labels it shows."""
    plt = plots._plt()
    fig, ax = plt.subplots()
    ax.plot(xs, range(len(xs)), "o")
    plots.log_axis(ax)
    return plt, fig, ax, _labels(fig, ax)


def test_readable_tick_labels():
    assert [plots.readable(v) for v in (20_000, 1_500_000, 0.01, 3, 250)] == ["20k", "1.5M", "0.01", "3", "250"]


def test_a_log_axis_under_one_decade_still_has_readable_labels():
    plt, fig, ax, labels = _log_x_labels([22_000, 31_000, 47_000, 88_000])
    assert {"50k"} <= labels, labels  # decades alone would label nothing between 22k and 88k
    assert not any("^" in s or "times" in s for s in labels), labels  # no 10^k mathtext
    plt.close(fig)


def test_a_log_axis_over_decades_labels_decades_in_plain_numbers():
    plt, fig, ax, labels = _log_x_labels([5_000, 2_000_000])
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
        assert ax.get_legend().get_bbox_to_anchor().y0 < ax.bbox.y0  # below the axes, not over the points
    plots._plt().close(fig)
    # with the seeds' values the manual curve gets its spread
    for n in nets:
        for p in series[n]:
            p["_acc"] = [p["test_acc"] - 1, p["test_acc"] + 1]
    fig = plots.accuracy_vs_params(series, grown)
    ax = fig.axes[0]
    assert ax.get_legend().get_texts()[0].get_text() == "trained from scratch (mean ± sd over seeds)"
    assert len(ax.collections) >= 1  # the error bars (sd = sqrt(2) points each)
    plots._plt().close(fig)


def test_a_log_axis_over_less_than_two_fold_gets_a_few_plain_ticks():
    """31k to 47k holds no mantissa 1, 2, 3 or 5: the 2-and-5 minor ticks alone would leave the axis bare (or,
    with matplotlib's fallback, label every 2k, nine labels overlapping on a small panel)."""
    plt, fig, ax, labels = _log_x_labels([31_000, 47_000])
    assert 2 <= len(labels) <= 6, labels
    values = sorted(float(s.rstrip("k")) * 1000 for s in labels)
    lo, hi = ax.get_xlim()
    assert all(lo <= v <= hi for v in values)
    plt.close(fig)


def test_figure6_colorbar_labels_the_loss_not_its_log10():
    """The contour levels are log10(loss); the colour bar's labels must read as losses (0.01, 0.1, 1)."""
    import numpy as np
    g = np.linspace(-1, 1, 9)
    X, Y = np.meshgrid(g, g)
    loss = 0.01 * 10 ** (2.5 * (X ** 2 + Y ** 2))  # 0.01 at the centre, about 3 at the corners' 95th percentile
    surf = {"x": g, "y": g, "loss": loss}
    fig = plots.surface_panels({"a": surf, "b": surf})
    fig.canvas.draw()
    cbar_ax = fig.axes[-1]
    ticks = [t for t in cbar_ax.yaxis.get_majorticklabels() if t.get_text()]
    texts = [t.get_text() for t in ticks]
    assert "0.01" in texts and "0.1" in texts and "1" in texts, texts
    for t in ticks:  # each label is 10 ** (its position on the log10 scale)
        assert float(t.get_text()) == __import__("pytest").approx(10 ** t.get_position()[1], rel=1e-6)
    assert "log scale" in cbar_ax.get_ylabel()
    plots._plt().close(fig)


def test_trajectory_contour_labels_are_plain_numbers():
    import types

    import numpy as np
    g = np.linspace(-3, 3, 15)
    X, Y = np.meshgrid(g, g)
    surf = {"x": g, "y": g, "loss": 0.005 * 10 ** (0.8 * (X ** 2 + Y ** 2))}  # 0.005 up to about 10^12
    traj = types.SimpleNamespace(coords=np.array([[-2.0, 1.0], [-1.0, 0.5], [0.0, 0.0]]), epochs=[0, 1, 2],
                                 explained_variance_ratio=[0.9, 0.1], off_plane_share=0.0)
    plt = plots._plt()
    fig, ax = plt.subplots()
    plots.trajectory_on_surface(ax, surf, traj)
    labels = [t.get_text() for t in ax.texts if t.get_text() and "\n" not in t.get_text()]
    assert labels and not any("e+" in s or "e-" in s for s in labels), labels
    assert any(s[-1] in "kMG" for s in labels), labels  # the high levels as 32k, 1.3M, not 3.2e+04
    plt.close(fig)


def test_a_log_axis_over_a_few_fold_gets_at_least_three_labels():
    """1.1M to 4M FLOPs (Figure 7 on digits): the 2-and-5 ticks give 2M alone; 2, 3 and 5 give 2M and 3M too."""
    plt, fig, ax, labels = _log_x_labels([1_100_000, 4_000_000])
    assert {"2M", "3M"} <= labels and len(labels) >= 3, labels
    plt.close(fig)


def test_a_log_axis_holding_one_decade_labels_the_mantissas_around_it():
    """Figure 7's range, 2M to 60M, holds one decade (10M): four of six points lay beyond the last label."""
    plt = plots._plt()
    fig, ax = plt.subplots()
    ax.plot([2e6, 4e6, 1.5e7, 2.5e7, 4e7, 6e7], [1, 2, 3, 4, 5, 6], "o")
    plots.log_axis(ax)
    labels = _labels(fig, ax)
    assert "10M" in labels and {"20M", "50M"} <= labels and ("2M" in labels or "5M" in labels), labels
    plt.close(fig)
