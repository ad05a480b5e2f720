"""Every verdict of paper_vs_kit recomputed by a separate implementation from the run records of
``figures/records``, each value read again through the run and column its evidence names."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from growkit.methods.autogrow import study as X
from growkit.papers import records, report
from growkit.runs import measured

from .verdict_check import Check, Records, word_of

ROOT = Path(__file__).resolve().parents[2]


def check(figures_dir) -> tuple[int, list[str], Check]:
    """(verdicts recomputed, problems, the walk with its traced and untraced values) over a figures folder's
    paper_vs_kit records: each verdict recomputed from the values its run records hold."""
    walk = Check(Records(figures_dir))
    n = 0
    for p in sorted((Path(figures_dir) / report.PAPER_VS_KIT).glob("*.json")):
        for row in json.loads(p.read_text())["rows"]:
            ev = row.get("evidence") or {}
            if ev.get("kind") != "test":
                continue
            n += 1
            where = f"{p.stem}: {row['quantity']}"
            word = walk.word(ev["test"], where)
            if word != word_of(row["verdict"]):
                walk.bad.append(f"{where}: recorded {row['verdict']!r}, recomputed {word!r}")
    return n, walk.bad, walk


def _run(d: Path, seed, acc, depths):
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"command": "autogrow", "train": {"seed": seed},
                                               "environment": {"git_commit": "abc", "code": "c0de"}}))
    (d / "result.json").write_text(json.dumps({"epochs": 9, "val_acc": acc - 1, "test_acc": acc, "params": 1000,
                                               "macs": 5e5, "arch": "Net", "depths": depths, "wall_s": 1.5}))


def _read(runs: Path, name: str) -> dict:
    """A run's result as the run cache hands it to a notebook (its values name the run)."""
    return measured.tag(json.loads((runs / name / "result.json").read_text()), runs, name)


@pytest.fixture
def made(tmp_path):
    runs, figs = tmp_path / "nb", tmp_path / "figs"
    a, b = [97.2, 97.9, 97.5], [96.1, 96.9, 96.4]  # paired differences 1.1, 1.0, 1.1: a is higher
    for s in range(3):
        _run(runs / f"gau-s{s}", s, a[s], [3, 3, 2 + s])
        _run(runs / f"zero-s{s}", s, b[s], [2, 2, 2])
    assert records.write_records(runs, figs, "nb") == figs / "records" / "nb.csv"
    gau, zero = ([_read(runs, f"{k}-s{s}") for s in range(3)] for k in ("gau", "zero"))
    acc = {"gau": [r["test_acc"] for r in gau], "zero": [r["test_acc"] for r in zero]}
    report.judge(figs, "t", [
        dict(claim="GauInit is best", paper="p", target="gau", groups=acc),
        dict(claim="GauInit is deeper", paper="p", target="gau", unit="blocks",
             groups={"gau": [X.depth_of(r) for r in gau], "zero": [X.depth_of(r) for r in zero]}),
        dict(claim="about the same", paper="p", same={"gau": acc["gau"], "zero": acc["gau"]}),
        # a difference of two runs' values, and a ratio: arithmetic keeps both runs behind each value
        dict(claim="GauInit's gain exceeds a point", paper="p", target="gain",
             groups={"gain": [g - z for g, z in zip(acc["gau"], acc["zero"])], "one": [1.0, 1.0, 1.0]}),
        dict(claim="error ratio below one", paper="p", unit="ratio", target="ratio", higher=False,
             groups={"ratio": [(100 - g) / (100 - z) for g, z in zip(acc["gau"], acc["zero"])],
                     "one": [measured.constant(1.0)] * 3})],  # a stated threshold
        n_test=360, seeds=[0, 1, 2])
    return figs


def _edit(figs, run, column, value):
    path = figs / "records" / "nb.csv"
    rows = list(csv.DictReader(open(path)))
    for r in rows:
        if r["run"] == run:
            r[column] = value
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=records.COLUMNS)
        w.writeheader()
        w.writerows(rows)


def test_records_hold_one_row_per_run_with_full_precision(made):
    rows = records.read_records(made)["nb"]
    assert len(rows) == 6 and {r["run"] for r in rows} == {f"{k}-s{s}" for k in ("gau", "zero") for s in range(3)}
    r = next(r for r in rows if r["run"] == "gau-s1")
    assert (r["seed"], float(r["test_acc"]), r["depth"], r["git_commit"]) == ("1", 97.9, "9", "abc")  # 3 + 3 + 3


def test_every_verdict_recomputes_from_the_records(made):
    n, bad, walk = check(made)
    # 5 claims; values from runs: 6 + 6 + 6 + 3 + 3 (a gain or a ratio is one value of two runs); the
    # 1.0s are no run's values: three stated as a constant, three plain numbers (untraced, and listed)
    assert n == 5 and not bad, bad
    assert (walk.traced, walk.constants) == (24, 3) and len(walk.untraced) == 3, walk.untraced
    rec = json.loads((made / report.PAPER_VS_KIT / "t.json").read_text())
    gain = rec["rows"][3]["evidence"]["test"]["parts"][0]["sources_a"][2]
    assert gain == ["-", {"notebook": "nb", "run": "gau-s2", "column": "test_acc"},
                    {"notebook": "nb", "run": "zero-s2", "column": "test_acc"}]


def test_a_changed_record_value_is_caught_and_flips_the_verdict(made):
    _edit(made, "zero-s2", "test_acc", "99.5")  # the run no longer says what the verdict was computed from
    _, bad, _ = check(made)
    assert any("value 96.4 but its run record gives 99.5" in b for b in bad), bad
    # paired differences 1.1, 1.0, -2.0: the interval now holds zero
    assert any("GauInit is best: recorded 'Agrees with the paper', recomputed 'not resolved'" in b for b in bad)


def test_a_value_used_only_inside_a_difference_is_caught(made):
    _edit(made, "gau-s0", "depth", "12")  # depth of gau-s0: 3 + 3 + 2 = 8 in the verdict
    _, bad, _ = check(made)
    assert any("GauInit is deeper: value 8.0 but its run record gives 12.0" in b for b in bad), bad


def test_a_missing_run_is_caught(made):
    rows = [r for r in csv.DictReader(open(made / "records" / "nb.csv")) if r["run"] != "gau-s1"]
    with open(made / "records" / "nb.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=records.COLUMNS)
        w.writeheader()
        w.writerows(rows)
    _, bad, _ = check(made)
    assert any("no record of nb/gau-s1 column test_acc" in b for b in bad), bad


def test_a_verdict_that_does_not_follow_from_its_values_is_caught(made):
    p = made / report.PAPER_VS_KIT / "t.json"
    rec = json.loads(p.read_text())
    rec["rows"][0]["verdict"] = "Disagrees with the paper"
    p.write_text(json.dumps(rec))
    _, bad, _ = check(made)
    assert bad == ["t: GauInit is best: recorded 'Disagrees with the paper', recomputed 'agrees'"]


# Values no run record column holds, (table, words of the claim) -> why: Gauss-Newton's Figures 2-4 are analyses a
# notebook makes from a run's checkpoints (loss-change estimates against measured changes, decrease-weighted win
# shares of the morphisms, the found widths' bottleneck ratio); the GPT-growth FLOPs to a target loss are read off
# each run's validation curve (metrics.jsonl). Their verdicts are recomputed from the values the verdict recorded.
NOT_IN_RECORDS = {("gauss_newton_fig2_scores", ""): "from the found widths",
                  ("gauss_newton_fig3_estimates", ""): "from a run's checkpoint",
                  ("gauss_newton_fig4_morphism_quality", ""): "from a run's checkpoint",
                  ("transformer_growth_01_stacking", "the FLOPs to reach the same loss"): "from the runs' curves",
                  ("transformer_growth_02_width", "the FLOPs to reach the same loss"): "from the runs' curves"}


def _known(untraced: str) -> bool:
    table, claim = untraced.split(": ", 1)
    return any(table == t and words in claim for t, words in NOT_IN_RECORDS)


def _committed():
    figs = ROOT / "figures"
    if not (figs / records.RECORDS).is_dir():
        pytest.skip("the committed figures predate figures/records (the next regeneration writes them)")
    if not any(r["evidence"].get("kind") == "test" for p in (figs / report.PAPER_VS_KIT).glob("*.json")
               for r in json.loads(p.read_text())["rows"]):
        pytest.skip("the committed verdicts predate run-named evidence (the next regeneration writes it)")
    return figs


def test_the_committed_figures_recompute():
    figs = _committed()
    n, bad, walk = check(figs)
    tests = sum(r["evidence"].get("kind") == "test" for p in (figs / report.PAPER_VS_KIT).glob("*.json")
                for r in json.loads(p.read_text())["rows"])
    assert n == tests > 100 and not bad, bad[:20]
    assert walk.traced > 300
    stray = sorted({u.rsplit(": value", 1)[0] for u in walk.untraced if not _known(u)})
    assert not stray, f"values that name no run, in verdicts not known to have none: {stray}"


def _leaves(node):
    """(arm, index, source) of every value a verdict's tests take straight from one run record cell."""
    if node["test"] == "all_of":
        for p in node["parts"]:
            yield from _leaves(p)
        return
    for arm in ("a", "b"):
        for i, src in enumerate(node.get(f"sources_{arm}") or []):
            if isinstance(src, dict) and "run" in src:
                yield node, arm, i, src


def _copy_with(figs, tmp_path, src, value):
    out = tmp_path / "figs"
    shutil.copytree(figs / records.RECORDS, out / records.RECORDS)
    shutil.copytree(figs / report.PAPER_VS_KIT, out / report.PAPER_VS_KIT)
    path = out / records.RECORDS / f"{src['notebook']}.csv"
    rows = list(csv.DictReader(open(path)))
    for r in rows:
        if r["run"] == src["run"]:
            r[src["column"]] = repr(value)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return out


def test_one_changed_committed_record_value_flips_a_verdict_and_is_caught(tmp_path):
    """On the committed set: one record cell behind a resolved directional verdict moved far against the claim
    (by a million times its size) leaves the verdict unresolved, and the check says which verdict no longer follows."""
    figs = _committed()
    for p in sorted((figs / report.PAPER_VS_KIT).glob("*.json")):
        for row in json.loads(p.read_text())["rows"]:
            ev = row["evidence"]
            if ev.get("kind") != "test" or word_of(row["verdict"]) not in ("agrees", "disagrees"):
                continue
            for node, arm, i, src in _leaves(ev["test"]):
                if node["test"] in ("higher", "lower") and node["word"] == word_of(row["verdict"]) \
                        and len(node[arm]) >= 3:
                    up = (node["test"] == "higher") == (arm == "a")  # this value pushes the claim up
                    far = (abs(node[arm][i]) + 1) * 1e6  # a million times the value: it swamps the other seeds
                    moved = node[arm][i] + (-far if up == (node["word"] == "agrees") else far)
                    _, bad, _ = check(_copy_with(figs, tmp_path, src, moved))
                    assert any(f"{p.stem}: {row['quantity']}: recorded {row['verdict']!r}, recomputed" in b
                               for b in bad), bad
                    return
    pytest.fail("no resolved directional verdict with a run value in the committed set")


def test_every_committed_record_value_a_verdict_uses_is_checked(tmp_path):
    """30 record cells spread over all the committed verdicts, each changed by 0.123 (a millionth of a large
    count) on its own: every change is caught (the check reads each value again from the run its verdict names)."""
    figs = _committed()
    cells = {}
    for p in sorted((figs / report.PAPER_VS_KIT).glob("*.json")):
        for row in json.loads(p.read_text())["rows"]:
            if row["evidence"].get("kind") == "test":
                for node, arm, i, src in _leaves(row["evidence"]["test"]):
                    cells.setdefault((src["notebook"], src["run"], src["column"]), (src, node[arm][i]))
    keys = sorted(cells)
    assert len(keys) >= 30
    for k in keys[:: len(keys) // 30][:30]:
        src, value = cells[k]
        _, bad, _ = check(_copy_with(figs, tmp_path / "-".join(k).replace("/", "_"), src, value + max(0.123, abs(value) * 1e-6)))
        assert any("but its run record gives" in b for b in bad), k


def test_language_model_verdicts_trace_to_val_loss(tmp_path):
    """A verdict on final validation losses of lm runs (no accuracy) is traced through records' val_loss."""
    runs, figs = tmp_path / "lm", tmp_path / "figs"
    grown, scratch = [2.101, 2.112, 2.094], [2.205, 2.198, 2.213]
    for arm, losses in (("grown", grown), ("scratch", scratch)):
        for s, v in enumerate(losses):
            d = runs / f"{arm}-s{s}"
            d.mkdir(parents=True)
            (d / "config.json").write_text(json.dumps({"command": "lm", "lm": {"seed": s}, "environment": {}}))
            (d / "result.json").write_text(json.dumps({"val_loss": v, "train_macs": 1.5e9, "arch": "GPT-4L-4H-64",
                                                       "params": 1000}))
    records.write_records(runs, figs, "lm")
    row = next(r for r in records.read_records(figs)["lm"] if r["run"] == "grown-s1")
    assert (float(row["val_loss"]), float(row["train_macs"]), row["seed"]) == (2.112, 1.5e9, "1")
    arms = {k: [_read(runs, f"{k}-s{s}")["val_loss"] for s in range(3)] for k in ("grown", "scratch")}
    report.judge(figs, "t", [dict(claim="grown is lower", paper="p", unit="nats", digits=4, target="grown",
                                  higher=False, groups=arms)], seeds=[0, 1, 2])
    n, bad, walk = check(figs)
    assert n == 1 and not bad and walk.traced == 6, bad
    (runs / "scratch-s2" / "result.json").write_text(json.dumps({"val_loss": 2.5, "train_macs": 1.5e9}))
    records.write_records(runs, figs, "lm")
    _, bad, _ = check(figs)
    assert any("value 2.213 but its run record gives 2.5" in b for b in bad), bad
