"""Figure 3-4 summary numbers against values worked out by hand on tiny arrays."""
from __future__ import annotations

import math

import pytest

from growkit.methods.gauss_newton import study as G


def test_fit_summary_hand_computed():
    # true t = (-2, -1, 0, 1), estimated e = (-1, -0.5, 0, 0.5): exactly half the truth
    s = G.fit_summary([-1.0, -0.5, 0.0, 0.5], [-2.0, -1.0, 0.0, 1.0])
    assert s["slope"] == pytest.approx(0.5) and s["intercept"] == pytest.approx(0.0, abs=1e-12)
    assert s["slope_origin"] == pytest.approx(0.5)  # sum(t e) / sum(t^2) = 3 / 6
    assert s["within_2x"] == 1.0  # ratios 0.5, 0.5, (0 and 0), 0.5: all within a factor of 2
    assert s["pearson"] == pytest.approx(1.0) and s["spearman"] == pytest.approx(1.0)
    assert s["bias"] == pytest.approx(-0.25 - (-0.5))
    # t = (1, 2, 3), e = (1, 1, 4): deviations from the means (-1, 0, 1) and (-1, -1, 2)
    # slope = ((-1)(-1) + 0 + (1)(2)) / 2 = 1.5, intercept = 2 - 1.5 * 2 = -1; origin: (1 + 2 + 12) / 14
    s = G.fit_summary([1.0, 1.0, 4.0], [1.0, 2.0, 3.0])
    assert s["slope"] == pytest.approx(1.5) and s["intercept"] == pytest.approx(-1.0)
    assert s["slope_origin"] == pytest.approx(15 / 14)
    assert s["within_2x"] == 1.0  # ratios 1/1, 1/2, 4/3: all within a factor of 2
    # Pearson: cov 3/2... r = 3 / sqrt(2 * 6) = 0.8660; Spearman: ranks (1.5, 1.5, 3) vs (1, 2, 3) -> 0.8660
    assert s["pearson"] == pytest.approx(3 / math.sqrt(12)) and s["spearman"] == pytest.approx(math.sqrt(3) / 2)


def test_within_a_factor_of_two_counts_sign_and_zero_truth():
    s = G.fit_summary([0.9, -1.0, 0.0, 0.1, 3.0], [1.0, 1.0, 0.0, 0.0, 1.0])
    # 0.9/1 in; -1/1 wrong sign; 0 with truth 0 in; 0.1 with truth 0 out; 3/1 out
    assert s["within_2x"] == pytest.approx(2 / 5)


def test_weighted_wins_and_quality_summary_hand_computed():
    rows = [  # one big channel the baseline wins, two small ones Gauss-Newton wins, one where nobody decreases
        {"channel": 0, "gauss_newton": -0.30, "splitting": -0.40, "steepest_descent": -0.1, "expanded": -0.30},
        {"channel": 1, "gauss_newton": -0.02, "splitting": -0.01, "steepest_descent": 0.0, "expanded": -0.03},
        {"channel": 2, "gauss_newton": -0.05, "splitting": 0.00, "steepest_descent": -0.2, "expanded": -0.04},
        {"channel": 3, "gauss_newton": 0.001, "splitting": 0.002, "steepest_descent": 0.0, "expanded": 0.0},
    ]
    # vs splitting: weights 0.40, 0.02, 0.05, 0 ; GN wins channels 1, 2 (and 3, weight 0) -> 0.07 / 0.47
    assert G.weighted_wins(rows, "splitting") == pytest.approx(0.07 / 0.47)
    # vs steepest descent: weights 0.30, 0.02, 0.20, 0; GN wins 0, 1 -> 0.32 / 0.52
    assert G.weighted_wins(rows, "steepest_descent") == pytest.approx(0.32 / 0.52)
    q = G.quality_summary(rows)
    assert q["gn_beats_splitting"] == pytest.approx(3 / 4)  # unweighted: channels 1, 2, 3
    assert q["gn_beats_splitting_weighted"] == pytest.approx(0.07 / 0.47)
    assert q["gn_beats_expanded_weighted"] == pytest.approx(0.05 / (0.30 + 0.03 + 0.05))  # only channel 2
    assert q["decrease_gauss_newton"] == pytest.approx(0.369)
    assert math.isnan(G.weighted_wins([rows[3]], "splitting"))


def test_prune_bias_table_and_verdict_lines():
    def summ(layer, kind, slope, est, true):
        return {"layer": layer, "kind": kind, "channels": 4, "slope_origin": slope, "mean_estimated": est,
                "mean_true": true, "bias": est - true}
    fig3 = {s: [summ("a", "split", 1.0 + d, -0.1, -0.1), summ("a", "prune", 0.5 + d, -0.02 + d, 0.30 + d)]
            for s, d in ((0, 0.01), (1, -0.01), (2, 0.02))}
    assert G.prune_bias(fig3[0]) == [{"layer": "a", "channels": 4, "mean estimated": pytest.approx(-0.01),
                                      "mean true": pytest.approx(0.31), "bias": pytest.approx(-0.32),
                                      "slope_origin": pytest.approx(0.51)}]
    fig4 = {s: {"gn_beats_splitting_weighted": v, "gn_beats_steepest_descent_weighted": 0.9 + v / 10,
                "gn_beats_expanded_weighted": 0.5 + v / 100} for s, v in ((0, 0.1), (1, 0.2), (2, 0.15))}
    lines = G.verdicts(fig3, fig4)
    assert len(lines) == 6
    assert lines[0].startswith("Agrees with the paper: Figure 3, a splits")  # slopes 1.01, 0.99, 1.02
    assert lines[1].startswith("Disagrees with the paper: Figure 3, a prunes")  # slope ~0.5, margin 0.25
    assert lines[2].startswith("Disagrees with the paper: a: the prune estimate is unbiased")  # -0.32 vs 0.31
    assert lines[3].startswith("Disagrees with the paper: Figure 4: Gauss-Newton beats the splitting direction")
    assert lines[4].startswith("Agrees with the paper: Figure 4: Gauss-Newton beats steepest descent")
    assert lines[5].startswith("Agrees with the paper: Figure 4: Gauss-Newton is on par")
    one = G.verdicts({0: fig3[0]}, {0: fig4[0]})
    assert all(line.startswith("Illustrative (1 run)") for line in one)


def test_plot_scores_outlines_exactly_the_chosen_cells():
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.patches import Rectangle

    from growkit.methods.gauss_newton import plots as GP
    scores = {"split": {"a": [0.5, -1.0, 0.2], "b": [-1.0, -1.0]},
              "prune": {"a": [-0.1, 0.8, -0.3], "b": [0.4, -2.0]},
              "chosen": {"a": [[0], [1]], "b": [[], [0]]}}
    # column a sorted by score: split 0 (+0.5) row 0, split 2 (+0.2) row 1, prune 1 (-0.8) row 2
    # column b: channel 1 scores nothing (0.0) row 0, prune 0 (-0.4) row 1
    ax = GP.plot_scores(scores)
    cells = sorted((round(p.get_x() + 0.5), round(p.get_y() + 0.5)) for p in ax.patches if isinstance(p, Rectangle)
                   and not p.get_fill())
    assert cells == [(0, 0), (0, 2), (1, 1)]


def test_splitting_matrix_and_direction_on_a_known_quadratic(monkeypatch):
    """With an expanded loss that is exactly theta^T A theta / 2 per batch, the fitted splitting matrix is
    A times the number of probe batches, and the direction is A's eigenvector of the smallest eigenvalue
    (scaled to |w_in|, the line search then taking the best step of the grid)."""
    from types import SimpleNamespace

    import torch

    from growkit.models import create
    torch.manual_seed(0)
    model = create("VGG19", widths=4, in_channels=1, image_size=8).double()
    w = model.get_submodule("layers.0.conv").weight[1].detach()
    d = w.numel()
    gen = torch.Generator().manual_seed(3)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    eig = torch.linspace(-2.0, 3.0, d, dtype=torch.float64)
    a = q @ torch.diag(eig) @ q.T

    def loss(theta, x, y):
        t = theta.reshape(-1)
        return 0.5 * t @ a @ t + 0.1 * (t @ a @ t) ** 2  # quartic term: the line search has a finite best step

    monkeypatch.setattr(G, "_expanded_loss_fn", lambda model, group, channel: (None, loss))
    data = SimpleNamespace(train_batches=lambda b, seed: iter([(None, None)] * 5))
    s = G.splitting_matrix(model, data, "layers.0", 1, probe_batches=3, probe_scale=1e-4)
    assert torch.allclose(s, 3 * a, atol=1e-6 * float(a.abs().max()), rtol=1e-4)
    theta = G.splitting_direction(model, data, "layers.0", 1, probe_batches=3, probe_scale=1e-4)
    v = theta.reshape(-1) / theta.norm()
    assert abs(float(v @ q[:, 0])) == pytest.approx(1.0, abs=1e-6)  # the eigenvector of eigenvalue -2
    # along v: f(t) = -t^2 r^2 + 0.4 t^4 r^4 (r = |w_in|) is smallest at t^2 r^2 = 1.25; the grid's best:
    r2 = float(w.norm()) ** 2
    grid = [0.0] + [2.0 ** -k for k in range(11, -1, -1)]
    best = min(grid, key=lambda t: -t * t * r2 + 0.4 * (t * t * r2) ** 2)
    assert float(theta.norm()) == pytest.approx(best * float(w.norm()), rel=1e-9)


def test_bottleneck_ratio_by_hand():
    assert G.bottleneck_ratio([1, 2, 3, 4, 5, 6, 7]) == pytest.approx(4 / 4)  # middle 3,4,5; outer 1,2,6,7
    assert G.bottleneck_ratio([10, 10, 4, 4, 10, 10]) == pytest.approx(0.4)
    with pytest.raises(ValueError):
        G.bottleneck_ratio([4, 4])


def test_tables_1_2_verdicts_judge_against_the_stronger_baseline():
    def row(lam, seed, acc, params, widths="10-10-4-4-10-10"):
        return {"dataset": "digits", "net": "VGG19", "lambda_p": lam, "seed": seed, "scratch test %": acc,
                "params": params, "found widths": widths}
    rows = ([row("1e-05", s, a, p) for s, a, p in zip((0, 1, 2), (97.4, 97.6, 97.5), (400, 420, 410))]
            + [row("0.001", s, a, p) for s, a, p in zip((0, 1, 2), (90.0, 90.5, 91.0), (200, 210, 190))])
    base = {("digits", "VGG19"): {"params": 1000,
                                  "matched": {"test": {0: 90.0, 1: 91.0, 2: 92.0}, "epochs": 6},
                                  "converged": {"test": {0: 97.5, 1: 97.5, 2: 97.5}, "epochs": "24"}}}
    assert G.stronger(base[("digits", "VGG19")]) == ("converged", "matched")
    lines = G.table_verdicts(rows, base, acc_margin=1.0, figure2=("digits", "VGG19", "1e-05"))
    acc = [l for l in lines if "as accurate" in l]
    # lambda 1e-5: paired differences -0.1, 0.1, 0 (sd 0.1): the 90 % interval 0 ± 0.17 lies above -1
    assert acc[0].startswith("Agrees") and "converged, 24 epochs" in acc[0] and "matched, 6 epochs: 91.00 %" in acc[0]
    assert "± 0.17" in acc[0]
    # against the weaker, matched baseline the same net would look 6.5 points better: it is not the judge
    # lambda 1e-3: differences -7.5, -7, -6.5 (sd 0.5): 90 % interval -7 ± 0.84 lies below -1
    assert acc[1].startswith("Disagrees")
    fewer = [l for l in lines if "fewer parameters" in l]
    assert len(fewer) == 2 and all(l.startswith("Agrees") for l in fewer)
    mono = [l for l in lines if "larger lambda_p" in l]
    assert len(mono) == 1 and mono[0].startswith("Agrees")
    fig2 = [l for l in lines if "bottleneck" in l]
    assert len(fig2) == 1 and fig2[0].startswith("Agrees")
    # one seed: illustrative, never a verdict
    one = G.table_verdicts([r for r in rows if r["seed"] == 0], base)
    assert all(l.startswith("Illustrative") for l in one)
