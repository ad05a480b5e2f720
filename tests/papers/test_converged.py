"""The converged-baseline rule (budget doubling until one validation image of gain), on canned runs."""
from __future__ import annotations

import pytest

from growkit.errors import GrowkitError
from growkit.papers import study


class _Data:
    def size(self, split):
        assert split == "val"
        return 200  # one image = 0.5 points


def _fake(monkeypatch, val_by_epochs):
    calls = []

    def train(runs_dir, name, **settings):
        calls.append((name, settings["epochs"]))
        return {"val_acc": val_by_epochs[settings["epochs"]], "test_acc": 0.0, "epochs": settings["epochs"]}
    monkeypatch.setattr(study, "train", train)
    monkeypatch.setattr(study, "load_data", lambda run_dir: _Data())
    return calls


def test_stops_at_the_first_doubling_that_gains_at_most_one_image(monkeypatch):
    calls = _fake(monkeypatch, {5: 80.0, 10: 90.0, 20: 90.5, 40: 99.0})
    r = study.converged("R", "b", start=5, cap=40, model="M")
    # 5 -> 10 gains 10 points, 10 -> 20 gains 0.5 = one image: plateau at 20; 40 is never trained
    assert calls == [("b-e5", 5), ("b-e10", 10), ("b-e20", 20)]
    assert r["converged_epochs"] == 20 and r["plateaued"] is True
    assert r["budgets"] == [[5, 80.0], [10, 90.0], [20, 90.5]]


def test_the_cap_stops_a_baseline_that_keeps_gaining(monkeypatch):
    calls = _fake(monkeypatch, {3: 50.0, 6: 60.0, 12: 70.0, 24: 80.0})
    r = study.converged("R", "b", start=3, cap=20)
    assert [c[1] for c in calls] == [3, 6, 12] and r["converged_epochs"] == 12 and r["plateaued"] is False


def test_bad_budgets_are_refused(monkeypatch):
    _fake(monkeypatch, {})
    with pytest.raises(GrowkitError):
        study.converged("R", "b", start=10, cap=5)


def test_a_cap_equal_to_the_start_is_a_fixed_budget(monkeypatch):
    calls = _fake(monkeypatch, {200: 93.0})
    r = study.converged("R", "b", start=200, cap=200)
    assert [c[1] for c in calls] == [200] and r["converged_epochs"] == 200 and r["plateaued"] is None
