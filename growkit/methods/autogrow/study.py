"""Named AutoGrow and Network Morphism runs and the rows of their tables, for the ``autogrow_*`` notebooks.

Every run goes through the run cache (:mod:`growkit.runs.cache`): reused when finished with the same
config and code, resumed when interrupted, replaced when either changed.
"""
from __future__ import annotations

import hashlib
import json

from ...papers import study
from ...papers.report import pm
from ...runs import cache, measured
from .config import AutoGrowConfig, NetworkMorphismConfig


def autogrow(runs_dir, name: str, *, train: dict, autogrow: dict, callbacks=(), grower_hook=None) -> dict:
    return cache.named(runs_dir, name, "autogrow", cache.train_cfg(train), AutoGrowConfig(**autogrow),
                  callbacks=callbacks, grower_hook=grower_hook)


def network_morphism(runs_dir, name: str, *, train: dict, target_depths, shallow_epochs: int, deeper_epochs: int,
                     init: str = "zero", init_std: float = 1.0) -> dict:
    nm = NetworkMorphismConfig(list(target_depths), shallow_epochs, deeper_epochs, init, init_std)
    return cache.named(runs_dir, name, "network-morphism", cache.train_cfg(train), nm)



def summary_row(res: dict, **extra) -> dict:
    """The columns the AutoGrow tables share."""
    row = {**extra, "found net": "-".join(map(str, res.get("depths") or res["spec"].get("depths", []))),
           "accu %": res["test_acc"]}
    if res.get("delta") is not None:
        row["Δ"] = res["delta"]
    row.update({"params": res["params"], "val %": res["val_acc"]})
    return row


# ----------------------------------------------------------------------------- seeds and fair baselines

_run_autogrow = autogrow  # (the parameter below is named after it)


def depth_of(res: dict) -> int:
    """Total sub-modules of a run's (found) net (measured: the ``depth`` of the run's record)."""
    return measured.from_run(sum(res.get("depths") or res["spec"].get("depths", [])), res, "depth")


def autogrow_seeds(runs_dir, name: str, seeds, *, train: dict, autogrow: dict, **kw) -> list[dict]:
    """The same AutoGrow run once per seed (``name-s<seed>``); the data split stays fixed (``split_seed``)."""
    return [_run_autogrow(runs_dir, f"{name}-s{s}", train={**train, "seed": s}, autogrow=autogrow, **kw)
            for s in seeds]


def matched_epochs(res: dict) -> int:
    """The epochs a from-scratch baseline gets to match a growing run: all of the run's epochs (growing and
    fine-tuning) plus AdamInit's epochs of training the new layers, which pass the whole net as well."""
    return int(res["epochs"]) + sum(int(e.get("adam_epochs") or 0) for e in res.get("growth_events", []))


def baselines(runs_dir, name: str | None, res: dict, *, train: dict, converged_epochs: int,
              converged_cap: int | None = None) -> dict:
    """The found net of ``res`` trained from scratch with the run's seed (``train``: the data and any other
    settings of the run), staircase schedule (decayed to 1 % of the rate by its end):

    * ``matched``: :func:`matched_epochs` epochs;
    * ``converged``: trained until the validation accuracy plateaus, by the doubling rule of
      :func:`growkit.papers.study.converged`: ``converged_epochs``, then twice as many ... until doubling gains
      at most one validation image, at most ``converged_cap`` epochs (default 4 x ``converged_epochs``; equal
      to it: exactly ``converged_epochs``, the paper's fixed budget). ``converged_epochs`` (epochs used),
      ``plateaued`` (False: the cap stopped it) and ``budgets`` say what happened.

    Each keeps its training curve and ``run`` (its directory name; a converged result names its last budget).
    The directories are named after what they train (net, seed, a digest of the settings, epochs), so runs
    that found the same net share baselines, and a matched budget equal to a converged one is one run;
    ``name`` is unused (kept for callers that name their runs)."""
    spec = res["spec"]
    base = {**train, "seed": res["config"]["train"]["seed"], "model": spec["name"], "depths": list(spec["depths"]),
            "schedule": "staircase", "snapshot_every": 0}
    if spec.get("widths"):
        base["widths"] = list(spec["widths"])
    digest = hashlib.sha256(json.dumps(base, sort_keys=True, default=str).encode()).hexdigest()[:8]
    stem = f"scratch-{spec['name']}-{'-'.join(map(str, spec['depths']))}-s{base['seed']}-{digest}"
    epochs = matched_epochs(res)
    matched = {**study.train(runs_dir, f"{stem}-e{epochs}", **{**base, "epochs": epochs}), "run": f"{stem}-e{epochs}"}
    cap = converged_cap if converged_cap is not None else 4 * converged_epochs
    conv = study.converged(runs_dir, stem, start=converged_epochs, cap=max(cap, converged_epochs), **base)
    return {"matched": matched, "converged": {**conv, "run": f"{stem}-e{conv['converged_epochs']}"}}


def baseline_note(converged_epochs: int, converged_cap: int | None = None) -> str:
    """The caption sentence that says how :func:`baselines` trained the two baselines."""
    cap = converged_cap if converged_cap is not None else 4 * converged_epochs
    conv = (f"{converged_epochs} epochs" if cap <= converged_epochs else
            f"{converged_epochs} epochs doubled until doubling gains at most one validation image, at most {cap}")
    return (f"Baselines, the found net from scratch: matched (as many epochs as the growing run, AdamInit's "
            f"included) and converged ({conv}; the epochs used are in the table); each verdict is judged against "
            f"the stronger of the two (\"judged against\").")


def stronger(bases: list[dict]) -> str:
    """Which baseline ("matched" or "converged") is stronger over the seeds (higher mean test accuracy; a tie
    goes to converged): every verdict is judged against it, the other shown beside it."""
    mean = {k: sum(b[k]["test_acc"] for b in bases) / len(bases) for k in ("matched", "converged")}
    return "matched" if mean["matched"] > mean["converged"] else "converged"


def seeded_row(results: list[dict], bases: list[dict] | None = None, **extra) -> dict:
    """One table row over seeds: found nets, mean ± sd of accuracy and depth, and Delta against both
    baselines (per seed: AutoGrow − the same seed's baseline) with their epochs, which of them is stronger,
    and the per-seed values kept for verdicts (``_acc``, ``_depth``, ``_best``: the stronger baseline's)."""
    accs = [r["test_acc"] for r in results]
    depths = [depth_of(r) for r in results]
    row = {**extra, "found nets": ", ".join("-".join(map(str, r.get("depths") or r["spec"]["depths"]))
                                            for r in results),
           "accu %": pm(accs), "depth (blocks)": pm(depths, 1)}
    if bases:
        for kind in ("matched", "converged"):
            d = [r["test_acc"] - b[kind]["test_acc"] for r, b in zip(results, bases)]
            row[f"Δ vs {kind}"] = pm(d)
            row[f"scratch {kind} %"] = pm([b[kind]["test_acc"] for b in bases])
            eps = [b[kind]["epochs"] for b in bases]
            row[f"{kind} epochs"] = ", ".join(map(str, sorted(set(eps)))) + (
                " (cap)" if kind == "converged" and any(b[kind].get("plateaued") is False for b in bases) else "")
        best = stronger(bases)
        row["judged against"] = best
        row["_best"] = [b[best]["test_acc"] for b in bases]
    row["params"] = pm([r["params"] for r in results], 0)
    row["_acc"], row["_depth"] = accs, depths
    return row


def recovery_after_growth(rows: list[dict], growth_epochs, within: int, floor: float) -> tuple[int, int]:
    """(growths after which the validation accuracy got back to its value just before the growth, minus
    ``floor``, within ``within`` epochs; all growths). The paper: "the loss and accuracy rapidly recover"."""
    acc = {r["epoch"]: r["val_acc"] for r in rows}
    ok = 0
    for g in growth_epochs:
        after = [acc[e] for e in range(g + 1, g + within + 1) if e in acc]
        ok += bool(after) and max(after) >= acc[g] - floor
    return ok, len(list(growth_epochs))
