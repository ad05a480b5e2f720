"""Seeded statistics and computed verdicts of the tables, against hand-derived values."""
import json

import pytest

from growkit.papers import report as R


def test_spread_and_pm_by_hand():
    s = R.spread([1.0, 2.0, 6.0])  # mean 3, deviations -2 -1 3: sum of squares 14, / (n - 1) = 7
    assert s["mean"] == 3.0 and s["sd"] == pytest.approx(7 ** 0.5) and (s["min"], s["max"], s["n"]) == (1, 6, 3)
    assert R.pm([1.0, 2.0, 6.0]) == "3.00 ± 2.65" and R.pm([4.0]) == "4.00" and R.pm([None]) == ""
    assert R.noise_points(360) == pytest.approx(0.2778, abs=1e-4)  # digits: one test image


def test_within_noise_uses_two_standard_errors_or_the_floor():
    # variance (1 + 0 + 1 + 0) / 3 = 2/3 each, n 4: se of the difference sqrt(2 * (2/3) / 4) = 0.577
    a, b = [9.0, 10.0, 11.0, 10.0], [10.0, 11.0, 12.0, 11.0]
    assert R.spread(a)["sd"] == pytest.approx((2 / 3) ** 0.5)
    assert R.within_noise(a, b, floor=0.1)  # means 10 vs 11: 1 < two se = 1.155
    assert not R.within_noise(a, [x + 1.2 for x in b], floor=0.1)  # 2.2 > 1.155
    assert not R.within_noise([10.0] * 3, [11.0] * 3, floor=0.28)  # no spread: only the floor
    assert R.within_noise([10.0] * 3, [10.2] * 3, floor=0.28)


def test_best_claim_three_outcomes():
    assert R.best_claim({"g": [5.0, 5.0], "z": [4.0, 4.0]}, "g", 0.28)[0] is True
    assert R.best_claim({"g": [5.0, 5.0], "z": [5.0, 5.0]}, "g", 0.28)[0] is None  # a tie is not evidence
    assert R.best_claim({"g": [5.1, 5.1], "z": [5.0, 5.0]}, "g", 0.28)[0] is None  # best, but by under one image
    assert R.best_claim({"g": [5.5, 5.5], "z": [5.0, 5.0], "u": [3.0, 3.0]}, "g", 0.28)[0] is True
    assert R.best_claim({"g": [5.0, 5.0], "z": [5.1, 5.1]}, "g", 0.28)[0] is None
    holds, detail = R.best_claim({"g": [5.0, 5.0], "z": [6.0, 6.0]}, "g", 0.28)
    assert holds is False and "best z 6.00" in detail
    assert R.best_claim({"g": [3.0], "z": [4.0]}, "g", 0.28, higher=False)[0] is True


def test_monotone_and_same_claims():
    assert R.monotone_claim({"K=1": [60.0], "K=3": [30.0], "K=10": [10.0]}, 1.0)[0] is True
    assert R.monotone_claim({"K=1": [60.0], "K=3": [60.5], "K=10": [10.0]}, 1.0)[0] is True  # a flat step is fine
    assert R.monotone_claim({"K=1": [60.0], "K=3": [70.0], "K=10": [10.0]}, 1.0)[0] is False
    assert R.monotone_claim({"a": [5.0], "b": [5.5]}, 1.0)[0] is None
    assert R.same_claim([126.0], [138.0], 1.0, rel=0.10)[0] is True  # the paper's own pair: +9.5 %
    assert R.same_claim([126.0], [160.0], 1.0, rel=0.15)[0] is False
    # accuracies, one test image = 0.28 points, so the tolerance is 0.56 points (hand-computed standard errors)
    assert R.same_claim([99.0, 99.2, 99.4], [99.1, 99.2, 99.3], 0.28)[0] is True  # 0 + 2 * 0.129 <= 0.56
    assert R.same_claim([99.0, 99.0, 99.0], [97.0, 97.0, 97.0], 0.28)[0] is False  # 2 points apart, no spread
    # equal means but a spread of 1 point per seed: 2 * 0.816 > 0.56, sameness is not shown
    assert R.same_claim([98.0, 99.0, 100.0], [98.0, 99.0, 100.0], 0.28)[0] is None
    # one seed collapsed (Table 5's K = 1 on digits): 19.2 points apart, within 2 * 15.0 of noise: not "the same"
    assert R.same_claim([99.0, 99.2, 99.4], [50.0, 95.0, 95.0], 0.28)[0] is None


def test_judge_writes_verdicts_and_paper_vs_kit(tmp_path):
    note = R.judge(tmp_path, "autogrow_table6_initializers",
                   [dict(claim="GauInit is best", paper="94.27", target="gau",
                         groups={"gau": [1.0, 1.1], "zero": [2.0, 2.1]}),
                    dict(claim="same depth", paper="126 vs 138", unit="blocks",
                         same={"a": [3.0, 3.0], "b": [3.5, 3.5]})],
                   n_test=360, seeds=[0, 1])
    assert note.startswith("Disagrees with the paper: GauInit is best") and "Agrees with the paper: same depth" in note
    assert "one test image = 0.28 points" in note
    rec = json.loads((tmp_path / "paper_vs_kit" / "autogrow_table6_initializers.json").read_text())
    assert [r["verdict"] for r in rec["rows"]] == ["Disagrees with the paper", "Agrees with the paper"]
    md = R.write_paper_vs_kit(tmp_path).read_text()
    assert "| GauInit is best | 94.27 |" in md


def test_one_run_gives_no_verdict_only_an_illustration(tmp_path):
    # the same numbers as above, from one seed (a smoke run): neither agreement nor disagreement is shown
    claims = [dict(claim="GauInit is best", paper="94.27", target="gau", groups={"gau": [1.0], "zero": [2.0]}),
              dict(claim="same depth", paper="126 vs 138", unit="blocks", same={"a": [3.0], "b": [3.5]}),
              dict(claim="K falls", paper="-", holds=True, kit="60 > 30")]
    note = R.judge(tmp_path, "t", claims, n_test=360, seeds=[0])
    assert "Agrees" not in note and "Disagrees" not in note
    assert note.count("Illustrative (1 run): ") == 3 and "GauInit is best (gau 1.00; best zero 2.00)." in note
    rec = json.loads((tmp_path / "paper_vs_kit" / "t.json").read_text())
    assert [r["verdict"] for r in rec["rows"]] == ["Illustrative (1 run)"] * 3
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
