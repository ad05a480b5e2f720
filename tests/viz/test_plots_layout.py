"""Figure 5's panel layout, read back from the figure: 2x2 for the paper's four nets, one row for fewer."""
import matplotlib

matplotlib.use("Agg")

from growkit.viz import plots  # noqa: E402


def _figure5(nets):
    series = {n: [{"params": 5_000 * d * (i + 1), "test_acc": 90 + d, "label": f"{d}-{d}-{d}"} for d in (1, 2, 4, 6)]
              for i, n in enumerate(nets)}
    grown = {n: [(m, {"params": 20_000 + 500 * s, "test_acc": 96 - s, "label": f"K={k}: 3-3-{s + 1}"})
                 for m, k in (("o", 6), ("*", 3)) for s in range(3)] for n in nets}
    return plots.accuracy_vs_params(series, grown)


def _grid(ax):
    spec = ax.get_subplotspec()
    return spec.rowspan.start, spec.colspan.start, spec.get_gridspec().get_geometry()


def test_four_nets_make_a_2x2_grid_of_log_x_panels():
    nets = ["Basic3ResNet", "Basic4ResNet", "Plain3Net", "Plain4Net"]
    fig = _figure5(nets)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 4
    assert [_grid(ax) for ax in axes] == [(0, 0, (2, 2)), (0, 1, (2, 2)), (1, 0, (2, 2)), (1, 1, (2, 2))]
    assert all(ax.get_xscale() == "log" for ax in axes)
    for ax in axes:  # 3 seeds per K, two K: two AutoGrow legend entries, not six
        assert sum(t.get_text().startswith("AutoGrow") for t in ax.get_legend().get_texts()) == 2
    plots._plt().close(fig)


def test_fewer_nets_make_one_row():
    for nets in (["Plain3Net"], ["Basic3ResNet", "Plain3Net"], ["Basic3ResNet", "Basic4ResNet", "Plain3Net"]):
        fig = _figure5(nets)
        axes = [ax for ax in fig.axes if ax.get_visible()]
        assert [ax.get_title() for ax in axes] == nets
        assert {_grid(ax)[2] for ax in axes} == {(1, len(nets))}
        plots._plt().close(fig)
