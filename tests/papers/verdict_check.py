"""A second, separate implementation of the verdict rules, for tests: every verdict of paper_vs_kit recomputed
from the run records in ``figures/records``, through the source each value of its evidence names, with
t-quantiles from scipy and no statistics from growkit.

A verdict's evidence (``growkit.papers.report.judge``) is a tree of tests (higher, lower, same, not_lower; all_of
over parts), each with both arms' values, seeds and sources; a source is a run record cell
(notebook, run, column) or arithmetic over such cells. Here each sourced value is read again from the CSV
files, compared with the recorded one, and the verdict recomputed from the values the CSV files hold.
"""
from __future__ import annotations

import csv
import math
import operator
from pathlib import Path

from scipy.stats import t as student_t

_OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}


class Records:
    """``figures/records/*.csv`` read with the csv module: a cell by (notebook, run, column)."""

    def __init__(self, figures_dir):
        self.rows = {}
        for p in sorted((Path(figures_dir) / "records").glob("*.csv")):
            with open(p, newline="") as f:
                self.rows[p.stem] = {r["run"]: r for r in csv.DictReader(f)}

    def cell(self, notebook, run, column) -> float:
        try:
            text = self.rows[notebook][run][column]
        except KeyError:
            raise LookupError(f"no record of {notebook}/{run} column {column}") from None
        if text in ("", None):
            raise LookupError(f"{notebook}/{run} column {column} is empty")
        return float(text)

    def value(self, expr) -> float:
        if isinstance(expr, dict) and "constant" in expr:
            return float(expr["constant"])
        if isinstance(expr, dict):
            return self.cell(expr["notebook"], expr["run"], expr["column"])
        if isinstance(expr, list):
            op, a, b = expr
            return _OPS[op](self.value(a), self.value(b))
        return float(expr)


def _mean(x):
    return sum(x) / len(x)


def _interval(a, b, paired, level):
    """(mean difference a − b, half-width of its t-interval; None for one run)."""
    if paired:
        d = [x - y for x, y in zip(a, b)]
        n, m = len(d), _mean(d)
        if n < 2:
            return m, None
        sd = math.sqrt(sum((x - m) ** 2 for x in d) / (n - 1))
        return m, student_t.ppf(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
    na, nb = len(a), len(b)
    ma, mb = _mean(a), _mean(b)
    if min(na, nb) < 2:
        return ma - mb, None
    va = sum((x - ma) ** 2 for x in a) / (na - 1) / na
    vb = sum((x - mb) ** 2 for x in b) / (nb - 1) / nb
    se = math.sqrt(va + vb)
    if se == 0:
        return ma - mb, 0.0
    df = (va + vb) ** 2 / (va ** 2 / (na - 1) + vb ** 2 / (nb - 1))
    return ma - mb, student_t.ppf(0.5 + level / 2, df) * se


def _combine(words):
    if "disagrees" in words:
        return "disagrees"
    if all(w == "agrees" for w in words):
        return "agrees"
    if all(w == "illustrative" for w in words):
        return "illustrative"
    return "not resolved"


def _word(test, m, h, margin):
    if h is None:
        return "illustrative"
    lo, hi = m - h, m + h
    if test in ("higher", "lower"):
        up = test == "higher"
        if (lo > 0) if up else (hi < 0):
            return "agrees"
        if (hi < 0) if up else (lo > 0):
            return "disagrees"
        return "not resolved"
    if test == "same":
        if -margin < lo and hi < margin:
            return "agrees"
        if lo > margin or hi < -margin:
            return "disagrees"
        return "not resolved"
    if test == "not_lower":
        return "agrees" if lo > -margin else ("disagrees" if hi < -margin else "not resolved")
    raise ValueError(f"unknown test {test!r}")


class Check:
    """Walks evidence trees: recomputes each word from record values, and notes every value it cannot trace."""

    def __init__(self, records: Records):
        self.records = records
        self.traced, self.constants, self.untraced, self.bad = 0, 0, [], []

    def _arm(self, values, sources, where):
        out = []
        for i, v in enumerate(values):
            src = sources[i] if sources else None
            if src is None:
                self.untraced.append(f"{where}: value {v}")
                out.append(v)
                continue
            if isinstance(src, dict) and "constant" in src:  # a threshold the claim states, not a run's value
                self.constants += 1
                out.append(float(src["constant"]))
                continue
            try:
                r = self.records.value(src)
            except LookupError as e:
                self.bad.append(f"{where}: {e}")
                out.append(v)
                continue
            self.traced += 1
            if not math.isclose(r, v, rel_tol=1e-12, abs_tol=0.0):  # repr in the CSV: exact
                self.bad.append(f"{where}: value {v} but its run record gives {r}")
            out.append(r)
        return out

    def word(self, node, where) -> str:
        if node["test"] == "all_of":
            return _combine([self.word(p, where) for p in node["parts"]])
        a = self._arm(node["a"], node.get("sources_a"), where)
        b = self._arm(node["b"], node.get("sources_b"), where)
        if node["paired"] and node.get("seeds_a") is not None and node.get("seeds_b") is not None:
            by_seed = dict(zip(node["seeds_b"], b))
            b = [by_seed[s] for s in node["seeds_a"]]
        m, h = _interval(a, b, node["paired"], node["level"])
        return _word(node["test"], m, h, node.get("margin"))


WORD_OF_HEAD = {"Agrees with the paper": "agrees", "Disagrees with the paper": "disagrees",
                "Holds (the kit's own finding)": "agrees", "Does not hold (the kit's own finding)": "disagrees",
                "Illustrative (1 run)": "illustrative"}


def word_of(head: str) -> str:
    return WORD_OF_HEAD.get(head, "not resolved" if head.startswith("Not resolved") else head)
