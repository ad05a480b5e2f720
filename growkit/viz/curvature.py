"""Curvature records read back and drawn: sharpness and trace along a run with its growth events marked, and
the per-event numbers (before/after surgery) that tables and verdicts use.

The numbers come from :class:`growkit.engine.curvature.CurvatureProbe` (``TrainConfig.curvature_every``): each
metrics row may hold ``curvature`` (Hessian and GGN top eigenvalue and trace on the fixed probe subset, eval
mode), each growth record ``curvature`` with ``before`` / ``after`` / ``new_units``.
"""
from __future__ import annotations

import numpy as np

from ..errors import GrowkitError
from ..runs import measured

# per-run means kept in figures/records (growkit.papers.records.CURVATURE): measured numbers of that column
RECORDED = {"top_before": "sharpness_before", "top_after": "sharpness_after", "jump": "sharpness_jump"}


def events(result: dict) -> list[dict]:
    """A run's growth events that carry curvature, flattened: epoch, Hessian top eigenvalue (sharpness) and
    trace before and after, their jumps, the trace's and the top eigenvector's share on the new parameters, and
    the new units (count, starved count)."""
    out = []
    for e in result.get("growth_events", []):
        c = e.get("curvature")
        if not c:
            continue
        b, a = c["before"]["hessian"], c["after"]["hessian"]
        units = c["new_units"]
        out.append({"epoch": e["epoch"], "top_before": b["top"], "top_after": a["top"], "jump": a["top"] - b["top"],
                    "trace_before": b["trace"], "trace_after": a["trace"], "trace_jump": a["trace"] - b["trace"],
                    "ggn_top_before": c["before"]["ggn"]["top"], "ggn_top_after": c["after"]["ggn"]["top"],
                    "trace_new_share": a["trace_new_share"], "top_vec_new": a["top_vec"]["new"],
                    "new_units": units["n"], "starved": units["starved"]})
    return out


def per_run(result: dict) -> dict:
    """One run's growth events averaged (each quantity's mean over the run's events); raises when the run
    recorded no curvature at a growth event (trained without ``curvature_every``, or it never grew). From a
    result of the run cache, the sharpness means are measured numbers naming the run's record columns."""
    ev = events(result)
    if not ev:
        raise GrowkitError("the run has no growth event with curvature (train it with curvature_every > 0)")
    out = {k: float(np.mean([e[k] for e in ev])) for k in ev[0] if k != "epoch"}
    out.update({k: measured.from_run(out[k], result, col) for k, col in RECORDED.items()})
    out["events"] = len(ev)
    out["starved_share"] = sum(e["starved"] for e in ev) / max(sum(e["new_units"] for e in ev), 1)
    return out


def along(rows: list[dict], kind: str = "hessian") -> tuple[list[int], list[float], list[float]]:
    """(epochs, top eigenvalues, traces) of the rows that carry curvature."""
    pts = [(r["epoch"], r["curvature"][kind]["top"], r["curvature"][kind]["trace"]) for r in rows if "curvature" in r]
    return [p[0] for p in pts], [p[1] for p in pts], [p[2] for p in pts]


def plot_run(ax_top, ax_trace, rows: list[dict], result: dict, label: str, color=None):
    """Sharpness (Hessian top eigenvalue) and trace along one run on two axes; each growth event drawn as a
    vertical segment from its value just before the surgery to just after."""
    ep, top, tr = along(rows)
    line, = ax_top.plot(ep, top, "-", color=color, label=label, lw=1.2)
    ax_trace.plot(ep, tr, "-", color=line.get_color(), lw=1.2)
    for e in events(result):
        ax_top.plot([e["epoch"]] * 2, [e["top_before"], e["top_after"]], "-", color=line.get_color(), lw=2.5)
        ax_top.plot([e["epoch"]], [e["top_after"]], "o", color=line.get_color(), ms=3)
        ax_trace.plot([e["epoch"]] * 2, [e["trace_before"], e["trace_after"]], "-", color=line.get_color(), lw=2.5)
    ax_top.set_ylabel("Hessian top eigenvalue")
    ax_trace.set_ylabel("Hessian trace")
    ax_trace.set_xlabel("epoch")
    return line


# (key of per_run, column label, decimals) of the curvature tables
TABLE_COLUMNS = [("top_before", "sharpness before", 1), ("top_after", "sharpness after", 1),
                 ("jump", "sharpness jump", 1), ("trace_before", "trace before", 1), ("trace_after", "trace after", 1),
                 ("trace_new_share", "trace share on new", 2), ("top_vec_new", "top eigvec mass on new", 2),
                 ("starved_share", "starved new units", 2), ("events", "events per run", 1)]


def table_row(runs: list[dict], n_seeds: int, **labels) -> dict:
    """One table row from the :func:`per_run` summaries of the seeds whose run grew: ``labels`` first, then how
    many runs grew, then each quantity as mean ± sd over those runs ("-" where none grew)."""
    row = {**labels, "runs that grew": f"{len(runs)} of {n_seeds}"}
    for key, label, nd in TABLE_COLUMNS:
        v = [p[key] for p in runs]
        row[label] = ("-" if not v else f"{v[0]:.{nd}f}" if len(v) == 1 else
                      f"{np.mean(v):.{nd}f} ± {np.std(v, ddof=1):.{nd}f}")
    return row
