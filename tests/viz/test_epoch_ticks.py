"""Epochs are counted: a short run's epoch axis has whole-number ticks only (matplotlib's default puts
0.5, 1.5, 2.5 between them)."""
import matplotlib

matplotlib.use("Agg")

from growkit.viz.plots import growth_curves  # noqa: E402


def rows(n):
    return [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.2 / e, "train_acc": 50.0 + e, "val_acc": 48.0 + e,
             "phase": "grow" if e < n else "finetune", "events": [{}] if e == 2 else []} for e in range(1, n + 1)]


def test_growth_curves_of_a_three_epoch_run_have_integer_ticks():
    import matplotlib.pyplot as plt
    fig = growth_curves(rows(3))
    fig.canvas.draw()
    for ax in fig.axes:
        lo, hi = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
    plt.close(fig)
    # the default locator would have put half epochs there (what the figure looked like before)
    fig, ax = plt.subplots()
    ax.plot([1, 2, 3], [0, 1, 2])
    fig.canvas.draw()
    assert not all(float(t).is_integer() for t in ax.get_xticks())
    plt.close(fig)

