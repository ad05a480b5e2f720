"""AdeNeL on digits, 3 seeds: LeNet-5 and VGG-16 (hidden=[512]) grown with the default support (reset)
against the full-width net and the l1-pruning comparator on the full net's schedule (pruned to AdeNeL's
widths after the first third of the full net's epochs, fine-tuned in the other two).

    OMP_NUM_THREADS=1 python bench/adenel_digits.py [--out runs/bench_adenel] [--seeds 0 1 2] > adenel_digits.json

Per arm and seed: widths, parameters, multiply-adds per image (MACs, the paper's "FLOPs"), cumulative
training MACs, epochs, test accuracy, wall time and what stopped the run (AdeNeL: capacity / budget /
max_grow_epochs; the others: their epoch count). Over seeds: mean with a 95 % t-interval and the
paired differences against the full-width net (growkit.papers.stats), and the verdict of the paper's
claim (accuracy equivalent within 1 point, parameters and MACs each below half the full net's).

Epochs are chosen for a 2-core CPU (about 15 minutes at one thread): LeNet-5 arms 80 epochs (AdeNeL:
at most 60 growing + 20 fine-tuning), VGG-16's full-width arms 15 epochs (a full-width digits epoch takes
about 10 s) and its AdeNeL run at most 60 growing + 10 fine-tuning epochs (its nets are small). Every
run goes through the run cache: a rerun reuses finished runs. Prints JSON.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SETTINGS = {
    # growing: J 10 (DessiLBI), tau 0.8, lambda left to the digits default (0.05), support left to the default
    "LeNet5": dict(model_kw={}, grow_by=2, max_grow_epochs=60, finetune=20, full_epochs=80),  # +2: Figure 4
    "VGG16": dict(model_kw={"hidden": [512]}, grow_by=4, max_grow_epochs=60, finetune=10, full_epochs=15),
}
PRUNE_AT = 1 / 3  # pruned after the first third of the full net's epochs, fine-tuned through the other two


def interval(xs: list[float]) -> dict:
    from growkit.papers import stats
    iv = stats.difference(xs, [0.0] * len(xs), paired=True)  # the mean of xs with its 95 % t-interval
    return {"mean": statistics.fmean(xs), "half": iv.half, "values": xs}


def brief(res: dict, arm: str, stopped_by: str) -> dict:
    widths = res.get("widths") or {}
    return {"arm": arm, "arch": res["arch"], "widths": widths, "params": res["params"], "macs": res["macs"],
            "train_macs": res["train_macs"], "epochs": res["epochs"], "test_acc": res["test_acc"],
            "wall_s": res["wall_s"], "stopped_by": stopped_by}


def run_model(model: str, seeds: list[int], out: Path) -> dict:
    from growkit.methods.adenel import study as A
    from growkit.papers import stats
    s = SETTINGS[model]
    train = dict(dataset="digits", device="cpu", model=model, model_kw=s["model_kw"])
    knobs = dict(seed_width=4, J=10, tau=0.8, grow_by=s["grow_by"], max_grow_epochs=s["max_grow_epochs"],
                 finetune_epochs=s["finetune"])
    arms: dict[str, list[dict]] = {"adenel": [], "full": [], "l1-prune": []}
    raw: dict[str, list[dict]] = {"adenel": [], "full": []}
    notes = []
    for seed in seeds:
        t0 = time.perf_counter()
        ours = A.adenel(out, f"{model}-adenel-s{seed}", train=dict(train, seed=seed), adenel=knobs)
        full = A.baseline(out, f"{model}-full-s{seed}", train=dict(train, seed=seed), epochs=s["full_epochs"])
        raw["adenel"].append(ours)
        raw["full"].append(full)
        arms["adenel"].append(brief(ours, "adenel", ours["stopped_by"]))
        arms["full"].append(brief({**full, "widths": _widths(full)}, "full", f"epochs ({full['epochs']})"))
        targets, how = A.prune_targets(ours, full), "AdeNeL's widths"
        if not A.prunes(targets, full):  # AdeNeL at or above the full widths: prune to half instead
            targets, how = {g: max(1, w // 2) for g, w in _widths(full).items() if g in targets}, "half the channels"
            notes.append(f"{model} seed {seed}: AdeNeL's widths {A.grown_widths(ours)} reach the full net's, so "
                         f"l1-pruning to them removes nothing; the comparator prunes to half the channels instead")
        pr = A.l1_prune(out, f"{model}-l1prune-{'half' if how.startswith('half') else 'matched'}-s{seed}",
                        train=dict(train, seed=seed), epochs=s["full_epochs"],
                        prune=dict(prune_at=PRUNE_AT, targets=targets))
        arms["l1-prune"].append({**brief(pr, "l1-prune", f"epochs ({pr['epochs']}, pruned after "
                                                          f"{pr['prune_epoch']})"),
                                 "pruned_to": how, "pruned_channels": pr["pruned_channels"]})
        print(f"{model} seed {seed}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    summary = {}
    full_acc = {r["seed"]: r["test_acc"] for r in _seeded(arms["full"], seeds)}
    for arm, rows in arms.items():
        accs = [r["test_acc"] for r in rows]
        summary[arm] = {
            "test_acc": interval(accs),
            "params": statistics.fmean(r["params"] for r in rows),
            "macs": statistics.fmean(r["macs"] for r in rows),
            "train_macs": statistics.fmean(r["train_macs"] for r in rows),
            "train_cost_vs_full": statistics.fmean(r["train_macs"] / f["train_macs"]
                                                   for r, f in zip(rows, arms["full"])),
            "stopped_by": [r["stopped_by"] for r in rows],
        }
        if arm != "full":
            d = stats.difference(dict(zip(seeds, accs)), full_acc)
            summary[arm]["acc_minus_full"] = {"mean": d.mean, "half": d.half, "paired": d.method}
    verdict = A.verdict(raw["adenel"], raw["full"])
    return {"settings": {**s, "prune_at": PRUNE_AT, **knobs}, "runs": arms, "summary": summary,
            "verdict": {"word": verdict.word, "text": verdict.text}, "notes": notes}


def _widths(res: dict) -> dict:
    import torch

    from growkit.methods.adenel.policy import widths
    from growkit.models import from_spec
    with torch.device("meta"):
        return widths(from_spec(res["spec"]))


def _seeded(rows, seeds):
    return [{**r, "seed": s} for r, s in zip(rows, seeds)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/bench_adenel", help="runs directory (reused by the run cache)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--models", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    a = p.parse_args()
    import torch

    from growkit.engine.records import environment
    t0 = time.perf_counter()
    out = {"models": {m: run_model(m, a.seeds, Path(a.out)) for m in a.models}, "seeds": a.seeds,
           "threads": torch.get_num_threads(), "wall_s": time.perf_counter() - t0,
           "environment": environment(torch.device("cpu"))}
    print(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
