"""The fair harness of the ``transformer_growth_*`` notebooks: did growing a GPT save training compute?

Every arm (a grown model, and the final-size model trained from scratch) is run the same way:

* the same **compute budget** in training multiply-adds (``LMConfig.budget_macs``, counted by the run; the
  budget is a whole number of the scratch model's steps, so scratch ends exactly on it and a grown run at the
  first step reaching it), with a schedule fully decayed at that compute;
* its **own learning rate**, the best of a sweep of at least three rates on validation loss at the budget
  (:func:`growkit.papers.compute.pick_lr`; seed 0 of the sweep is the arm's seed-0 run, a best rate at the
  sweep's edge is flagged);
* **several seeds** at that rate (initial weights and training windows; the data split is fixed).

Every run goes through growkit's run cache (:func:`growkit.methods.transformer_growth.own_loop.cached`), so a
re-executed notebook reuses finished runs. The answer (:func:`compare`) is the validation loss at equal FLOPs
and the FLOPs-to-target ratio against scratch, each with its interval (:func:`growkit.papers.compute.compare`,
paired by seed), with the seed-to-seed floor; :func:`claims` states them against G_stack's and No Train No
Gain's claims for :func:`growkit.papers.report.judge`.
"""
from __future__ import annotations

import math
import statistics

from ...engine.records import read_metrics
from ...errors import GrowkitError
from ...papers import compute, stats
from .config import LMConfig

# G_stack (Du et al., 2024): 54.6 % speed-up at 7B parameters, i.e. scratch needs 1.546x the FLOPs to reach
# the loss the stacked model reaches.
GSTACK_SPEEDUP = 1.546


def config(base: dict, *, model: str, lr: float, seed: int, grower: dict | None = None,
           budget_macs: float | None = None) -> LMConfig:
    """An arm's run config: ``base`` (LMConfig fields shared by every arm) with its model, rate, seed, grower."""
    kw = {**base, "model": model, "lr": float(lr), "seed": int(seed), "grower": dict(grower or {})}
    if budget_macs is not None:
        kw.update(budget_macs=float(budget_macs), steps=None, tokens=None)
    return LMConfig(**kw).validate()


def _probe(base: dict, model: str):
    """An unstarted run of ``model`` on ``base``'s data (its model built, its multiply-adds counted)."""
    from .loop import LMRun
    return LMRun(config({**base, "steps": 1, "warmup": 0, "eval_every": None}, model=model, lr=1e-3, seed=0))


def step_macs(base: dict, model: str) -> float:
    """Training multiply-adds of one step of ``model`` (counted; a batch of ``batch_size`` windows of
    ``context`` tokens) on ``base``'s data."""
    run = _probe(base, model)
    return float(run.macs_per_token) * run.cfg.batch_size * run.cfg.context


def compute_note(base: dict, models) -> str:
    """Per model, the multiply-adds per token counted beside the hand formula
    (:func:`growkit.models.gpt.macs_report`, which refuses a mismatch), and the training count per token."""
    from ...models.gpt import macs_report
    parts = []
    for m in dict.fromkeys(models):
        run = _probe(base, m)
        r = macs_report(run.model, run.cfg.context)
        parts.append(f"{m}: {r['params']:,} parameters, {r['forward_macs_per_token']:,} forward multiply-adds per "
                     f"token counted (formula {r['forward_macs_per_token_formula']:,}), {r['train_macs_per_token']:,} "
                     "in training")
    return "Compute per token: " + "; ".join(parts) + "."


def budget(base: dict, model: str, steps: int) -> float:
    """The compute budget of every arm: ``steps`` steps of the final-size ``model`` (multiply-adds)."""
    if int(steps) < 1:
        raise GrowkitError(f"the budget needs at least one step of {model}, got {steps}")
    return int(steps) * step_macs(base, model)


def run_name(arm: str, lr: float, seed: int) -> str:
    return f"{arm}-lr{lr:g}-s{seed}"


def run(runs_dir, arm: str, base: dict, spec: dict, *, lr: float, seed: int, budget_macs: float) -> dict:
    """One run of an arm through the run cache (reused when finished with the same config and code)."""
    from .own_loop import cached
    cfg = config(base, model=spec["model"], lr=lr, seed=seed, grower=spec.get("grower"), budget_macs=budget_macs)
    return cached(runs_dir, run_name(arm, lr, seed), cfg)


def curve(runs_dir, arm: str, lr: float, seed: int) -> compute.Curve:
    """A run's validation loss over its training multiply-adds, one point per evaluation."""
    from pathlib import Path
    rows = read_metrics(Path(runs_dir) / run_name(arm, lr, seed))
    return compute.Curve.of((r["train_macs"], r["val_loss"]) for r in rows)


def arm(runs_dir, name: str, base: dict, spec: dict, *, lrs, seeds, budget_macs: float) -> dict:
    """An arm, tuned and seeded: the sweep (``lrs`` at ``seeds[0]``, chosen on the final validation loss), then
    ``seeds[1:]`` at the chosen rate. Returns ``lr``, ``sweep`` (table rows), ``results`` and ``curves`` (seed ->
    the chosen rate's result / curve), ``final`` (seed -> final validation loss)."""
    lrs, seeds = sorted(float(x) for x in lrs), [int(s) for s in seeds]  # (a diverged sweep rate: never chosen)
    if len(lrs) < 1 or not seeds:
        raise GrowkitError("an arm needs at least one learning rate and one seed")
    swept = {lr: _swept(runs_dir, name, base, spec, lr=lr, seed=seeds[0], budget_macs=budget_macs) for lr in lrs}
    best, rows = compute.pick_lr({lr: [r["val_loss"]] for lr, r in swept.items()})
    results = {seeds[0]: swept[best]}
    for s in seeds[1:]:
        results[s] = run(runs_dir, name, base, spec, lr=best, seed=s, budget_macs=budget_macs)
    for r in rows:
        r["arm"] = name
    return {"name": name, "spec": spec, "lr": best, "sweep": rows, "results": results,
            "curves": {s: curve(runs_dir, name, best, s) for s in seeds},
            "final": {s: results[s]["val_loss"] for s in seeds}, "edge": any(r["edge"] for r in rows)}


def _swept(runs_dir, name, base, spec, **kw) -> dict:
    """A sweep run; one whose loss became non-finite counts as diverged (never chosen) instead of stopping the
    sweep (its run directory stays, unfinished: a re-executed notebook retries it from its last checkpoint)."""
    from ...errors import NonFiniteLoss
    try:
        return run(runs_dir, name, base, spec, **kw)
    except NonFiniteLoss:
        return {"val_loss": math.nan, "diverged": True}


def overshoot(arms: dict, budget_macs: float) -> float:
    """The largest share by which a run's compute passed the budget (its last step reaches it, not lands on
    it): 0 for runs that end exactly on it."""
    return max(r["train_macs"] / budget_macs - 1 for a in arms.values() for r in a["results"].values())


def target(grown: dict, scratch: dict, budget_macs: float) -> float:
    """The loss both arms' FLOPs are measured to: the highest loss at the budget among the runs of both, so
    every run reaches it by the budget and the ratio exists for every seed (a mean target would leave the
    worse half of the seeds short of it). A grown arm worse than scratch then shows as a ratio above 1."""
    return max(compute.loss_at(c, budget_macs) for arm in (grown, scratch) for c in arm["curves"].values())


def compare(arms: dict, scratch: str, budget_macs: float) -> dict:
    """Each grown arm against ``scratch`` (:func:`growkit.papers.compute.compare` at the budget, paired by
    seed, FLOPs measured to :func:`target`). name -> the comparison."""
    s = arms[scratch]
    return {n: compute.compare(a["curves"], s["curves"], budget=budget_macs, name=n,
                               target=target(a, s, budget_macs))
            for n, a in arms.items() if n != scratch}


def _iv(v) -> str:
    if v is None:
        return "n/a"
    return v.interval.format(4, parens=False)


def table(arms: dict, scratch: str, comparisons: dict) -> list[dict]:
    """One row per arm: its model and growth, chosen rate (edge flagged), loss at the budget (mean ± sd over
    seeds), Δ vs scratch at equal FLOPs with its interval, the FLOPs-to-target ratio with its interval, runs
    that did not reach the target, the final architecture."""
    from ...papers.report import pm
    rows = []
    for n, a in arms.items():
        c = comparisons.get(n)
        finals = list(a["final"].values())
        row = {"arm": n, "start": a["spec"]["model"], "grower": describe(a["spec"].get("grower")),
               "lr": f"{a['lr']:g}" + (" (edge)" if a["edge"] else ""), "seeds": len(finals),
               "val loss at budget": pm(c["loss_grown"] if c else finals, 4)}
        if c is None:
            row.update({"Δ vs scratch": "(baseline)", "FLOPs to target / scratch": "1",
                        "not reached": "", "seed-to-seed floor": f"{compute.floor(finals):.4f}"})
        else:
            r = c["ratio"]
            ratio = "n/a" if r is None else (f"{r['geometric_mean']:.3f}" + (
                f" [{r['low']:.3f}, {r['high']:.3f}]" if r["low"] is not None else " (1 pair, no interval)"))
            row.update({"Δ vs scratch": _iv(c["equal_flops"]), "FLOPs to target / scratch": ratio,
                        "not reached": f"{len(c['not_reached']['grown'])} grown, "
                                       f"{len(c['not_reached']['scratch'])} scratch",
                        "seed-to-seed floor": f"{c['floor']:.4f}"})
        row["final arch"] = ", ".join(sorted({r["arch"] for r in a["results"].values()}))
        rows.append(row)
    return rows


def sweep_table(arms: dict) -> list[dict]:
    """Every arm's sweep: rate, validation loss at the budget (seed 0), chosen, at the sweep's edge."""
    return [{"arm": r["arm"], "lr": f"{r['lr']:g}", "val loss (seed 0)": r["mean val loss"] if isinstance(
                r["mean val loss"], str) else f"{r['mean val loss']:.4f}",
             "chosen": "yes" if r["chosen"] else "", "edge": "best at the edge" if r["edge"] else ""}
            for a in arms.values() for r in a["sweep"]]


def describe(grower: dict | None) -> str:
    """A grower spec in a few words."""
    if not grower:
        return "none (from scratch)"
    if grower["kind"] == "schedule":
        parts = []
        for f, plans in grower["at"]:
            ops = ", ".join(_plan_words(p) for p in plans)
            parts.append(f"{ops} at {100 * f:g} %")
        return "; ".join(parts)
    return (f"AutoGrow {grower.get('policy', 'periodic')} K={grower.get('K', 2)}, J={grower.get('J')}, "
            f"tau={grower.get('tau', 0.01)}, max {grower.get('max_layers')} blocks")


def _plan_words(p: dict) -> str:
    op = p["op"]
    if op == "stack_all":
        return f"G_stack x{p.get('times', 2)}"
    if op == "insert_blocks":
        return f"{p.get('k', 1)} zero-residual block(s)"
    if op == "stack_middle":
        return f"MIDAS middle x{p.get('k', 1)}"
    if op == "widen_gpt":
        return f"HyperCloning x{p.get('factor', 2)}"
    return op


def claims(arms: dict, scratch: str, comparisons: dict, *, same_margin: float) -> list[dict]:
    """The verdict claims of every grown arm for :func:`growkit.papers.report.judge`:

    * lower validation loss than scratch at equal compute (the arms' final losses, paired by seed);
    * G_stack's size of saving: scratch needs at least 1.546x the grown model's FLOPs to reach the target loss
      (log FLOPs, paired; needs every run to reach the target);
    * No Train No Gain: about the same loss as the tuned, fully decayed baseline (TOST, margin ``same_margin``
      nats)."""
    out = []
    s = arms[scratch]
    seeds = sorted(s["final"])
    for n, a in arms.items():
        if n == scratch:
            continue
        if sorted(a["final"]) != seeds:
            raise GrowkitError(f"arm {n} ran seeds {sorted(a['final'])}, scratch ran {seeds}: arms pair by seed")
        g_loss = [a["final"][k] for k in seeds]
        s_loss = [s["final"][k] for k in seeds]
        what = f"{n} ({describe(a['spec'].get('grower'))} from {a['spec']['model']})"
        out.append(dict(claim=f"{what} reaches a lower validation loss than {s['spec']['model']} from scratch at "
                              "equal training compute", target=n, higher=False, unit="nats", digits=4,
                        paper=_paper(a["spec"].get("grower")),
                        groups={n: g_loss, "scratch": s_loss}))
        c = comparisons[n]
        if c["to_target"] is not None and not c["not_reached"]["grown"] and not c["not_reached"]["scratch"]:
            both = sorted(c["ratios"])
            log_g = [math.log(c["flops_to_target_grown"][k]) for k in both]
            log_s = [math.log(c["flops_to_target_scratch"][k]) - math.log(GSTACK_SPEEDUP) for k in both]
            v = stats.lower(log_g, log_s, f"{n} saves at least G_stack's share: scratch needs at least "
                                          f"{GSTACK_SPEEDUP}x its FLOPs to reach loss {c['target']:.4f} "
                                          "(log FLOPs, paired)", seeds=both, seeds_b=both, digits=3)
            out.append(dict(claim=f"{what}: scratch needs >= {GSTACK_SPEEDUP}x the FLOPs to reach the same loss",
                            unit="log FLOPs", verdict=v,
                            paper="G_stack: 54.6 % speed-up at 7B (1.546x)"))
        out.append(dict(claim=f"{what} and the tuned, fully decayed scratch model reach about the same loss at "
                              "equal compute", unit="nats", digits=4, margin=same_margin,
                        paper="No Train No Gain: gains vanish against a fully decayed, tuned baseline",
                        same={n: g_loss, "scratch": s_loss}))
    return out


def _paper(grower: dict | None) -> str:
    """What the literature claims for an arm's kind of growth."""
    ops = {p["op"] for _, plans in (grower or {}).get("at", []) for p in plans}
    if "widen_gpt" in ops or "widen_mlp" in ops:
        return "HyperCloning: the final accuracy 2.2-4x faster than random initialisation"
    if "stack_middle" in ops:
        return "MIDAS: up to 40 % faster"
    if (grower or {}).get("kind") == "autogrow":
        return "AutoGrow (CNNs): periodic growth matches or beats the found net from scratch; G_stack: 54.6 % at 7B"
    return "G_stack: 54.6 % speed-up at 7B (scratch needs 1.546x the FLOPs)"


def grid(curves: dict, budget_macs: float, points: int = 60) -> tuple[list[float], list[list[float]]]:
    """Curves on a common grid of multiply-adds, from the latest first evaluation to the budget."""
    lo = max(c.flops[0] for c in curves.values())
    xs = [lo + (budget_macs - lo) * i / (points - 1) for i in range(points)]
    return xs, [[compute.loss_at(c, x) for x in xs] for c in curves.values()]


def plot(ax, arms: dict, budget_macs: float, *, log: bool = False) -> None:
    """Validation loss vs training multiply-adds per arm: the mean over seeds (line), min to max (band), the
    first seed's growth events (markers on its line)."""
    for i, (n, a) in enumerate(arms.items()):
        color = f"C{i}"
        xs, ys = grid(a["curves"], budget_macs)
        mean = [statistics.fmean(col) for col in zip(*ys)]
        ax.plot(xs, mean, color=color, label=f"{n} (lr {a['lr']:g}, {len(ys)} seed{'s' * (len(ys) > 1)})")
        ax.fill_between(xs, [min(col) for col in zip(*ys)], [max(col) for col in zip(*ys)], color=color,
                        alpha=0.2, lw=0)
        first = min(a["results"])
        for ev in a["results"][first].get("growth_events", []):
            x = ev.get("train_macs")
            c0 = a["curves"][first]
            if x is not None and c0.flops[0] <= x <= c0.flops[-1]:
                ax.plot([x], [compute.loss_at(c0, x)], marker="v", color=color, ms=8, mec="k")
    ax.axvline(budget_macs, color="0.5", ls=":", lw=1)
    ax.set_xlabel("training multiply-adds (counted)")
    ax.set_ylabel("validation loss (nats / token)")
    if log:
        ax.set_xscale("log")
    ax.legend(fontsize=8)


def verdict_note(comparisons: dict, arms: dict, scratch: str, budget_macs: float) -> str:
    """A sentence per grown arm: Δ at equal FLOPs and the ratio with their intervals; the floor and the
    budget's overshoot."""
    parts = []
    for n, c in comparisons.items():
        r = c["ratio"]
        ratio = "no FLOPs-to-target ratio (target not reached)" if r is None else (
            f"FLOPs to reach loss {c['target']:.4f} (the highest at the budget): {r['geometric_mean']:.3f}x "
            "scratch's" +
            (f" [{r['low']:.3f}, {r['high']:.3f}]" if r["low"] is not None else ""))
        parts.append(f"{n}: Δ loss at equal FLOPs (nats) {_iv(c['equal_flops'])}; {ratio}.")
    floor = compute.floor(list(arms[scratch]["final"].values()))
    return (" ".join(parts) + f" Seed-to-seed floor (sd of scratch's final loss): {floor:.4f} nats. Every run got "
            f"{budget_macs:.4g} training multiply-adds (a grown run's last step passes it by at most "
            f"{100 * overshoot(arms, budget_macs):.2f} %).")


def depth_arms(small: str, final: str, *, fraction: float, autogrow: dict | None = None) -> dict:
    """The depth study's arms: ``final`` from scratch; from ``small`` (half as deep), G_stack (the whole stack
    copied on top, :class:`~growkit.engine.gpt_surgery.StackAll`) and the same depth added as zero-residual
    blocks (:class:`~growkit.engine.gpt_surgery.InsertBlocks`, preserving) at ``fraction`` of the budget; and,
    with ``autogrow`` (AutoGrowLM options), AutoGrow's policy adding one zero-residual block at a time up to
    ``final``'s depth."""
    from ...models.gpt import parse_name
    s, f = parse_name(small.split("-", 1)[1]), parse_name(final.split("-", 1)[1])
    if (s["heads"], s["dim"]) != (f["heads"], f["dim"]) or f["layers"] != 2 * s["layers"]:
        raise GrowkitError(f"depth arms grow {small} to twice its depth at the same width; {final} is not that")
    arms = {"scratch": {"model": final},
            "G_stack": {"model": small, "grower": {"kind": "schedule", "at": [
                [fraction, [{"op": "stack_all", "times": 2}]]]}},
            "zero-residual": {"model": small, "grower": {"kind": "schedule", "at": [
                [fraction, [{"op": "insert_blocks", "k": s["layers"]}]]]}}}
    if autogrow is not None:
        arms[f"AutoGrow-{autogrow.get('policy', 'periodic')[0]}"] = {
            "model": small, "grower": {"kind": "autogrow", **autogrow, "max_layers": f["layers"]}}
    return arms


def width_arms(small: str, final: str, *, fractions, noise: float = 0.01, heads: str = "more") -> dict:
    """The width study's arms: ``final`` from scratch; ``small`` (half as wide: half the model dimension and,
    with ``heads="more"``, half the heads) widened x2 by HyperCloning
    (:class:`~growkit.engine.gpt_surgery.WidenGPT`, preserving; ``noise`` breaks the copies' symmetry without
    changing the function) at each of ``fractions`` of the budget, one arm per fraction."""
    from ...models.gpt import parse_name
    s, f = parse_name(small.split("-", 1)[1]), parse_name(final.split("-", 1)[1])
    want_heads = 2 * s["heads"] if heads == "more" else s["heads"]
    if (s["layers"], want_heads, 2 * s["dim"]) != (f["layers"], f["heads"], f["dim"]):
        raise GrowkitError(f"width arms widen {small} x2 (heads {heads}); that does not give {final}")
    arms = {"scratch": {"model": final}}
    for fr in fractions:
        arms[f"HyperCloning@{fr:g}"] = {"model": small, "grower": {"kind": "schedule", "at": [
            [fr, [{"op": "widen_gpt", "factor": 2, "heads": heads, "noise": noise}]]]}}
    return arms
