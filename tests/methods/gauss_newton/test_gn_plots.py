"""The Tables 1-2 picture: nearby searches must stay readable (no labels written over each other)."""
import matplotlib

matplotlib.use("Agg")

from growkit.methods.gauss_newton import plots as GP  # noqa: E402


def _rows():
    # The digits case that printed its lambda labels on top of each other: for each net, three lambda_p whose
    # means sit within a few percent of one another in parameters and accuracy.
    out = []
    for net, base in (("VGG19", 10_000), ("MobileNetV1", 4_500)):
        for k, lam in enumerate(("1e-05", "0.0001", "0.001")):
            for seed in range(3):
                out.append({"dataset": "digits", "net": net, "lambda_p": lam, "params": base - 300 * k + 10 * seed,
                            "scratch test %": 20.0 + k + seed})
    return out


def test_each_lambda_has_its_own_marker_in_the_legend_and_no_label_is_drawn_over_the_points():
    fig = GP.plot_accuracy_vs_params(_rows())
    ax = fig.axes[0]
    assert not ax.texts, "labels beside the points overlap when searches land close together"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"λ_p = 1e-05", "λ_p = 0.0001", "λ_p = 0.001"} <= set(labels)
    assert {"VGG19 (digits)", "MobileNetV1 (digits)"} <= set(labels)
    # the plotted means: one marker per (net, lambda_p), shape by lambda_p, colour by net
    drawn = [(ln.get_marker(), ln.get_color()) for ln in ax.lines
             if len(ln.get_xdata()) == 1 and ln.get_marker() not in ("|", "_")]  # caps are lines too
    assert len(drawn) == 6
    shapes = {m for m, _ in drawn}
    assert len(shapes) == 3
    assert len(set(drawn)) == 6
    legend_shape = {t.get_text(): h.get_marker() for t, h in zip(ax.get_legend().get_texts(),
                                                                   ax.get_legend().legend_handles)}
    assert len({legend_shape[f"λ_p = {lam}"] for lam in ("1e-05", "0.0001", "0.001")}) == 3
    assert legend_shape["λ_p = 1e-05"] in shapes
