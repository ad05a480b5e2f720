"""Every verdict of paper_vs_kit recomputed from its recorded evidence by a separate implementation, and every
value of that evidence traced to a run of ``figures/records``."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from growkit.papers import records, report

from .verdict_check import recompute, word_of

ROOT = Path(__file__).resolve().parents[2]


def _traced(value, rows) -> bool:
    return any(r.get(c) not in (None, "") and float(r[c]) == float(value) for r in rows for c in records.VALUES)


def check(figures_dir) -> tuple[int, list[str]]:
    """(verdicts recomputed, mismatches) over a figures folder's paper_vs_kit records."""
    recs = records.read_records(figures_dir)
    rows = [r for rs in recs.values() for r in rs]
    n, bad = 0, []
    for p in sorted((Path(figures_dir) / report.PAPER_VS_KIT).glob("*.json")):
        for row in json.loads(p.read_text())["rows"]:
            ev = row.get("evidence")
            word = recompute(ev) if ev else None
            if word is None:
                continue
            n += 1
            if word != word_of(row["verdict"]):
                bad.append(f"{p.stem}: {row['quantity']}: recorded {row['verdict']!r}, recomputed {word!r}")
            for arm, values in ev["arms"].items():
                for v in values:
                    if not _traced(v, rows):
                        bad.append(f"{p.stem}: {row['quantity']}: {arm} value {v} is in no run record")
    return n, bad


def _run(d: Path, seed, acc, depths):
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"command": "autogrow", "train": {"seed": seed},
                                               "environment": {"git_commit": "abc", "code": "c0de"}}))
    (d / "result.json").write_text(json.dumps({"epochs": 9, "val_acc": acc - 1, "test_acc": acc, "params": 1000,
                                               "macs": 5e5, "arch": "Net", "depths": depths, "wall_s": 1.5}))


@pytest.fixture
def made(tmp_path):
    runs, figs = tmp_path / "runs", tmp_path / "figs"
    a, b = [97.2, 97.9, 97.5], [96.1, 96.9, 96.4]  # paired differences 1.1, 1.0, 1.1: a is higher
    for s in range(3):
        _run(runs / f"gau-s{s}", s, a[s], [3, 3, 2 + s])
        _run(runs / f"zero-s{s}", s, b[s], [2, 2, 2])
    assert records.write_records(runs, figs, "nb") == figs / "records" / "nb.csv"
    report.judge(figs, "t", [dict(claim="GauInit is best", paper="p", target="gau", groups={"gau": a, "zero": b}),
                             dict(claim="GauInit is deeper", paper="p", target="gau", unit="blocks",
                                  groups={"gau": [8, 9, 10], "zero": [6, 6, 6]}),
                             dict(claim="about the same", paper="p", same={"gau": a, "zero": a})],
                 n_test=360, seeds=[0, 1, 2])
    return figs


def test_records_hold_one_row_per_run_with_full_precision(made):
    rows = records.read_records(made)["nb"]
    assert len(rows) == 6 and {r["run"] for r in rows} == {f"{k}-s{s}" for k in ("gau", "zero") for s in range(3)}
    r = next(r for r in rows if r["run"] == "gau-s1")
    assert (r["seed"], float(r["test_acc"]), r["depth"], r["git_commit"]) == ("1", 97.9, "9", "abc")  # 3 + 3 + 3


def test_every_verdict_recomputes_and_traces(made):
    n, bad = check(made)
    assert n == 3 and not bad, bad


def test_a_changed_record_value_is_caught(made):
    path = made / "records" / "nb.csv"
    rows = list(csv.DictReader(open(path)))
    for r in rows:
        if r["run"] == "zero-s2":
            r["test_acc"] = "99.5"  # the run no longer says what the verdict was computed from
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=records.COLUMNS)
        w.writeheader()
        w.writerows(rows)
    _, bad = check(made)
    assert any("96.4 is in no run record" in b for b in bad)


def test_a_verdict_that_does_not_follow_from_its_evidence_is_caught(made):
    p = made / report.PAPER_VS_KIT / "t.json"
    rec = json.loads(p.read_text())
    rec["rows"][0]["evidence"]["arms"]["zero"] = [98.2, 98.9, 98.5]  # now zero is higher: the verdict must flip
    p.write_text(json.dumps(rec))
    _, bad = check(made)
    assert any("GauInit is best: recorded 'Agrees with the paper', recomputed 'disagrees'" in b for b in bad)


def test_the_committed_figures_recompute():
    figs = ROOT / "figures"
    if not (figs / records.RECORDS).is_dir():
        pytest.skip("the committed figures predate figures/records (the next regeneration writes them)")
    n, bad = check(figs)
    assert n > 0 and not bad, bad[:20]


def test_language_model_verdicts_trace_to_val_loss(tmp_path):
    """A verdict on final validation losses of lm runs (no accuracy) is traced through records' val_loss."""
    runs, figs = tmp_path / "runs", tmp_path / "figs"
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
    report.judge(figs, "t", [dict(claim="grown is lower", paper="p", unit="nats", digits=4, target="grown",
                                  higher=False, groups={"grown": grown, "scratch": scratch})], seeds=[0, 1, 2])
    n, bad = check(figs)
    assert n == 1 and not bad, bad
    (runs / "scratch-s2" / "result.json").write_text(json.dumps({"val_loss": 2.5, "train_macs": 1.5e9}))
    records.write_records(runs, figs, "lm")
    _, bad = check(figs)
    assert any("2.213 is in no run record" in b for b in bad)
