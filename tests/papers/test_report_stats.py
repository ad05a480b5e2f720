"""Seeded statistics and computed verdicts of the tables, against hand-derived values."""
import json

import pytest
import scipy.stats

from growkit.papers import report as R


def test_spread_and_pm_by_hand():
    s = R.spread([1.0, 2.0, 6.0])  # mean 3, deviations -2 -1 3: sum of squares 14, / (n - 1) = 7
    assert s["mean"] == 3.0 and s["sd"] == pytest.approx(7 ** 0.5) and (s["min"], s["max"], s["n"]) == (1, 6, 3)
    assert R.pm([1.0, 2.0, 6.0]) == "3.00 ± 2.65" and R.pm([4.0]) == "4.00" and R.pm([None]) == ""
    assert R.noise_points(360) == pytest.approx(0.2778, abs=1e-4)  # digits: one test image


T975_2 = scipy.stats.t.ppf(0.975, 2)  # 4.303: the 95 % two-sided quantile, 2 degrees of freedom
T95_2 = scipy.stats.t.ppf(0.95, 2)  # 2.920: the 90 % interval of a TOST at alpha 0.05
SEEDS = [0, 1, 2]


def claim(**c):
    return R.claim_verdict(c | {"claim": "c"}, seeds=SEEDS, floor=100 / 360)


def test_a_best_claim_is_the_target_above_every_other_group_paired_by_seed():
    # g - z per seed: 1.0, 1.1, 0.9 (sd 0.1): 1.0 ± 4.303 x 0.1 / sqrt(3) = 1.0 ± 0.248, above zero
    v = claim(target="g", groups={"g": [5.0, 5.2, 5.1], "z": [4.0, 4.1, 4.2], "u": [1.0, 1.0, 1.2]})
    assert v.word == "agrees" and v.parts[0].interval.half == pytest.approx(T975_2 * 0.1 / 3 ** 0.5)
    assert v.parts[0].interval.method == "paired"
    # a tie (every seed equal) is a point interval at zero: not resolved, never agrees
    assert claim(target="g", groups={"g": [5.0, 5.0, 5.0], "z": [5.0, 5.0, 5.0]}).word == "not resolved"
    assert claim(target="g", groups={"g": [5.0, 5.1, 5.2], "z": [6.0, 6.1, 6.2]}).word == "disagrees"
    # lower is better (depth, error): higher=False
    assert claim(target="g", higher=False, groups={"g": [3.0, 3.0, 3.1], "z": [4.0, 4.1, 4.0]}).word == "agrees"


def test_arms_of_other_sizes_than_the_seeds_use_welch():
    v = claim(target="g", groups={"g": [5.0, 5.2, 5.1], "z": [4.0, 4.2]})
    assert v.parts[0].interval.method == "welch"


def test_an_order_claim_needs_every_step():
    order = {"K=1": [60.0, 62.0, 61.0], "K=3": [30.0, 31.0, 32.0], "K=10": [10.0, 11.0, 12.0]}
    assert claim(order=order).word == "agrees"
    assert claim(order={**order, "K=10": [70.0, 71.0, 72.0]}).word == "disagrees"  # the last step rises
    assert claim(order=order, decreasing=False).word == "disagrees"
    # a step within its interval: the claim is not resolved, whatever the other steps show
    flat = {"K=1": [60.0, 62.0, 61.0], "K=3": [61.0, 60.0, 62.0], "K=10": [10.0, 11.0, 12.0]}
    assert claim(order=flat).word == "not resolved"


def test_same_is_a_tost_with_two_units_or_the_relative_margin():
    # per-seed differences -0.1, 0, 0.1: 90 % interval 0 ± 2.920 x 0.1 / sqrt(3) = ± 0.169, inside ± 2 x 0.278
    v = claim(same={"a": [99.0, 99.2, 99.4], "b": [99.1, 99.2, 99.3]})
    assert v.word == "agrees" and v.margin == pytest.approx(2 * 100 / 360)
    assert v.interval.half == pytest.approx(T95_2 * 0.1 / 3 ** 0.5)
    assert claim(same={"a": [99.0] * 3, "b": [97.0] * 3}).word == "disagrees"  # 2 points apart, no spread
    # equal means, a spread of 1 point per seed difference: 0 ± 1.69 does not fit in ± 0.56
    assert claim(same={"a": [98.0, 99.0, 100.0], "b": [99.0, 99.0, 99.0]}).word == "not resolved"
    # depths 10 % apart (the paper's own "same depth" pairs): margin 0.1 x 128 = 12.8 blocks; the differences
    # -12, -10, -11 give -11 ± 1.69, inside -12.8
    v = R.claim_verdict(dict(claim="c", unit="blocks", rel=0.10, same={"a": [126.0, 130.0, 128.0],
                                                                        "b": [138.0, 140.0, 139.0]}),
                        seeds=SEEDS, floor=1.0)
    assert v.word == "agrees" and v.margin == pytest.approx(12.8)


def test_judge_writes_verdicts_and_paper_vs_kit(tmp_path):
    note = R.judge(tmp_path, "autogrow_table6_initializers",
                   [dict(claim="GauInit is best", paper="94.27", target="gau",
                         groups={"gau": [1.0, 1.1, 1.2], "zero": [2.0, 2.2, 2.1]}),
                    dict(claim="same depth", paper="126 vs 138", unit="blocks",
                         same={"a": [3.0, 3.0, 3.1], "b": [3.5, 3.4, 3.5]}),
                    dict(claim="recovers", paper="always", holds=True, kit="9 of 9")],
                   n_test=360, seeds=SEEDS)
    assert note.startswith("Disagrees with the paper: GauInit is best")
    assert "Agrees with the paper: same depth (a vs b)" in note and "Agrees with the paper: recovers (9 of 9)" in note
    assert "paired by seed" in note
    rec = json.loads((tmp_path / "paper_vs_kit" / "autogrow_table6_initializers.json").read_text())
    assert [r["verdict"] for r in rec["rows"]] == ["Disagrees with the paper", "Agrees with the paper",
                                                   "Agrees with the paper"]
    md = R.write_paper_vs_kit(tmp_path).read_text()
    assert "| GauInit is best | 94.27 |" in md


def test_one_seed_gives_no_verdict(tmp_path):
    note = R.judge(tmp_path, "t", [dict(claim="best", paper="p", target="g", groups={"g": [9.0], "z": [1.0]}),
                                   dict(claim="count", paper="p", holds=True, kit="1 of 1")],
                   n_test=360, seeds=[0])
    assert note.count("Illustrative (1 run)") == 2 and "Agrees" not in note
    # three seeds, but one arm ran once (a single baseline run): that claim is illustrative too
    note = R.judge(tmp_path, "t", [dict(claim="c", paper="-", target="gau",
                                        groups={"gau": [5.0, 5.0, 5.0], "zero": [4.0]})], n_test=360, seeds=[0, 1, 2])
    assert note.startswith("Illustrative (1 run): c")


def test_caption_names_the_width_scale_and_cpu_settings_on_paper_datasets():
    c = R.caption("T", dataset="cifar10", profile="cpu", width_scale={"Basic4ResNet": 0.25, "Basic3ResNet": 1.0})
    assert "cpu profile's short schedules" in c and "Basic4ResNet at 0.25x" in c and "Basic3ResNet" not in c
    assert "Widths" not in R.caption("T", dataset="cifar10", profile="paper", width_scale=1.0)


def test_the_run_cache_is_keyed_on_growkit_code(tmp_path, monkeypatch):
    from growkit.engine import records
    from growkit.papers import study as X
    kw = dict(model="Basic3ResNet", depths=[1, 1, 1], epochs=1, eval_test=False)
    first = X.train(tmp_path, "r", **kw)
    assert X.train(tmp_path, "r", **kw)["wall_s"] == first["wall_s"]  # same code: reused
    monkeypatch.setattr(records, "code_hash", lambda: "another")
    again = X.train(tmp_path, "r", **kw)  # a code change: run again
    assert json.loads((tmp_path / "r" / "config.json").read_text())["environment"]["code"] == "another"
    assert again["wall_s"] != first["wall_s"]


def test_code_hash_ignores_presentation_modules_only(tmp_path):
    """A plot or caption fix re-draws from cached runs; a change to anything that trains reruns them."""
    import shutil
    from pathlib import Path

    import growkit
    from growkit.engine import records
    pkg = tmp_path / "growkit"
    shutil.copytree(Path(growkit.__file__).parent, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    base = records.tree_hash(pkg)
    assert base == records.code_hash()  # the copy hashes as the installed package
    for rel in ("viz/plots.py", "viz/trajectory.py", "papers/report.py", "papers/figures.py", "papers/profiles.py",
                "papers/study.py", "methods/gauss_newton/plots.py"):
        (pkg / rel).write_text((pkg / rel).read_text() + "\n# a presentation edit\n")
    assert records.tree_hash(pkg) == base
    for rel in ("engine/trainer.py", "engine/snapshots.py", "growers/initializers.py", "methods/gauss_newton/study.py"):
        edited = records.tree_hash(pkg)
        (pkg / rel).write_text((pkg / rel).read_text() + "\n# a change that may alter results\n")
        assert records.tree_hash(pkg) != edited, rel


def test_pm_never_prints_negative_zero():
    assert R.pm([-0.28, 0.28, -0.001]) == "0.00 ± 0.28"
    assert R.pm([-0.004]) == "0.00" and R.pm([-0.006]) == "-0.01"


def test_shared_runs_note_names_the_rows_that_rest_on_the_same_runs():
    uses = {"ZeroInit": ["scratch-a-s0", "scratch-a-s1", "scratch-b-s2"],
            "AdamInit": ["scratch-a-s0", "scratch-a-s1", "scratch-c-s2"],
            "GauInit": ["scratch-d-s0", "scratch-c-s2", "scratch-c-s2"]}  # a run listed twice counts once
    note = R.shared_runs_note(uses)
    assert note.startswith("Shared from-scratch baseline runs (the same runs")
    assert "ZeroInit and AdamInit share 2 of them" in note and "AdamInit and GauInit share 1 of them" in note
    assert "ZeroInit and GauInit" not in note
    assert R.shared_runs_note({"a": ["x", "y"], "b": ["z"]}) == ""  # nothing shared: nothing said
    three = R.shared_runs_note({"a": ["x"], "b": ["x"], "c": ["x"]}, what="runs")
    assert "a, b and c share 1 of them" in three and three.startswith("Shared runs (")


def test_captions_and_figure_metadata_carry_commit_profile_seeds_and_date(tmp_path, monkeypatch):
    import datetime
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from growkit.engine import records
    monkeypatch.setattr(records, "git_commit", lambda: "0123456789abcdef0123-dirty")
    cap = R.caption("T", dataset="digits", profile="cpu", seeds=[0, 1, 2])
    assert "profile: cpu; seeds: 0, 1, 2; growkit 0123456789ab-dirty; " + datetime.date.today().isoformat() in cap
    fig, _ = plt.subplots()
    png, pdf = R.save_figure(fig, "f", cap, tmp_path)
    from PIL import Image
    with Image.open(png) as im:
        assert im.info["Software"] == "growkit 0123456789ab-dirty" and "seeds: 0, 1, 2" in im.info["Description"]
    assert b"growkit 0123456789ab-dirty" in pdf.read_bytes()


def test_the_kits_own_question_holds_or_not_without_a_paper(tmp_path):
    note = R.judge(tmp_path, "own", [dict(claim="g jumps more", paper="no paper number", target="g", own=True,
                                          unit="eigenvalue", groups={"g": [9.0, 8.0, 9.5], "z": [1.0, 1.2, 0.9]}),
                                     dict(claim="z jumps more", paper="no paper number", target="z", own=True,
                                          unit="eigenvalue", groups={"z": [1.0, 1.2, 0.9], "g": [9.0, 8.0, 9.5]})],
                   seeds=SEEDS)
    assert note.startswith("Holds (the kit's own finding): g jumps more")
    assert "Does not hold (the kit's own finding): z jumps more" in note and "paper" not in note.split(".")[0]
    rec = json.loads((tmp_path / "paper_vs_kit" / "own.json").read_text())
    assert [r["verdict"] for r in rec["rows"]] == ["Holds (the kit's own finding)",
                                                   "Does not hold (the kit's own finding)"]


def test_paper_vs_kit_opens_with_verdict_counts_per_study(tmp_path):
    import json
    d = tmp_path / R.PAPER_VS_KIT
    d.mkdir()
    rows = lambda *vs: [{"quantity": f"q{i}", "paper": "p", "kit": "k", "verdict": v} for i, v in enumerate(vs)]
    for name, verdicts in {"autogrow_table5_interval_K": ("Agrees with the paper", "Not resolved at n = 3"),
                           "quickstart_x": ("Disagrees with the paper",),
                           "adenel_table1_slimming": ("Illustrative (1 run)", "Agrees with the paper"),
                           "curvature_02_initializers": ("Holds (the kit's own finding)",
                                                         "Does not hold (the kit's own finding)")}.items():
        (d / f"{name}.json").write_text(json.dumps({"table": name, "rows": rows(*verdicts)}))
    md = R.write_paper_vs_kit(tmp_path).read_text()
    assert "| study | agrees | disagrees | not resolved | illustrative (1 run) |" in md  # no "other" column
    assert "| AutoGrow | 1 | 1 | 1 | 0 |" in md and "| AdeNeL | 1 | 0 | 0 | 1 |" in md
    assert "| Curvature at growth events (the kit's own) | 1 | 1 | 0 | 0 |" in md
    assert md.index("| AutoGrow |") < md.index("| AdeNeL |") < md.index("## adenel_table1_slimming")


def test_paper_vs_kit_lists_the_resolved_claims_per_study(tmp_path):
    import json
    d = tmp_path / R.PAPER_VS_KIT
    d.mkdir()
    rows = [{"quantity": "deeper with K", "paper": "p", "kit": "Δ = -3.0", "verdict": "Agrees with the paper"},
            {"quantity": "as accurate", "paper": "p", "kit": "Δ = -24", "verdict": "Disagrees with the paper"},
            {"quantity": "open", "paper": "p", "kit": "Δ = 0.1", "verdict": "Not resolved at n = 3"}]
    (d / "autogrow_table5_interval_K.json").write_text(json.dumps({"table": "autogrow_table5_interval_K", "rows": rows}))
    md = R.write_paper_vs_kit(tmp_path).read_text()
    block = md[md.index("**AutoGrow**"):md.index("## autogrow_table5_interval_K")]
    assert "* Agrees / holds:\n  * deeper with K (autogrow_table5_interval_K; Δ = -3.0)" in block
    assert "* Disagrees / does not hold:\n  * as accurate (autogrow_table5_interval_K; Δ = -24)" in block
    assert "open" not in block  # unresolved claims are counted, not listed
