"""The from-scratch baselines of the AutoGrow tables: matched epochs, the converged rule, the stronger one."""
from __future__ import annotations

from growkit.methods.autogrow import study as X
from growkit.papers import study


def _res(epochs=30, adam=(), seed=1):
    return {"epochs": epochs, "spec": {"name": "Basic3ResNet", "depths": [2, 1, 1]},
            "config": {"train": {"seed": seed}},
            "growth_events": [{"epoch": 3 * i + 3, **({"adam_epochs": a} if a is not None else {})}
                              for i, a in enumerate(adam)]}


def test_matched_epochs_count_adaminit_epochs():
    assert X.matched_epochs(_res(30)) == 30
    assert X.matched_epochs(_res(30, adam=(2, None, 3))) == 35  # 30 + 2 + 3


def test_baselines_train_matched_then_the_converged_rule(monkeypatch):
    trained = {}

    def train(runs_dir, name, **s):
        trained[name] = s["epochs"]
        acc = {10: 80.0, 20: 90.0, 35: 92.0, 40: 95.0, 80: 95.2}[s["epochs"]]
        return {"val_acc": acc, "test_acc": acc, "epochs": s["epochs"]}
    monkeypatch.setattr(study, "train", train)
    monkeypatch.setattr(study, "load_data", lambda d: type("D", (), {"size": lambda self, split: 100})())
    b = X.baselines("R", None, _res(30, adam=(5,)), train={"dataset": "digits"}, converged_epochs=20,
                    converged_cap=80)
    # matched: 30 + 5 AdamInit epochs; converged: 20 -> 40 (+5 points) -> 80 (+0.2 <= one image of 1 point)
    assert sorted(trained.values()) == [20, 35, 40, 80]
    assert b["matched"]["epochs"] == 35 and b["converged"]["converged_epochs"] == 80
    assert b["converged"]["plateaued"] is True and b["converged"]["run"].endswith("-e80")
    assert b["matched"]["run"].rsplit("-e", 1)[0] == b["converged"]["run"].rsplit("-e", 1)[0]  # one stem: shared


def test_the_stronger_baseline_judges_the_row():
    bases = [{"matched": {"test_acc": m, "epochs": 35}, "converged": {"test_acc": c, "epochs": 80, "plateaued": True}}
             for m, c in ((97.0, 96.0), (98.0, 96.5), (97.5, 96.2))]
    assert X.stronger(bases) == "matched"
    results = [{"test_acc": a, "depths": [2, 1, 1], "params": 100} for a in (97.2, 98.1, 97.4)]
    row = X.seeded_row(results, bases)
    assert row["judged against"] == "matched" and row["_best"] == [97.0, 98.0, 97.5]
    assert row["matched epochs"] == "35" and row["converged epochs"] == "80"
    bases[0]["converged"]["plateaued"] = False
    assert X.seeded_row(results, bases)["converged epochs"] == "80 (cap)"
