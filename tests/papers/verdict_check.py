"""A second, separate implementation of the verdict rules, for tests: from a paper_vs_kit record's evidence
(the arms' values and seeds) to its verdict word, with t-quantiles from scipy and nothing from growkit."""
from __future__ import annotations

import math

from scipy.stats import t as student_t


def _interval(a, b, paired, level):
    if paired:
        d = [x - y for x, y in zip(a, b)]
        n = len(d)
        m = sum(d) / n
        if n < 2:
            return m, None
        sd = math.sqrt(sum((x - m) ** 2 for x in d) / (n - 1))
        return m, student_t.ppf(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
    na, nb = len(a), len(b)
    ma, mb = sum(a) / na, sum(b) / nb
    if min(na, nb) < 2:
        return ma - mb, None
    va = sum((x - ma) ** 2 for x in a) / (na - 1) / na
    vb = sum((x - mb) ** 2 for x in b) / (nb - 1) / nb
    se = math.sqrt(va + vb)
    if se == 0:
        return ma - mb, 0.0
    df = (va + vb) ** 2 / (va ** 2 / (na - 1) + vb ** 2 / (nb - 1))
    return ma - mb, student_t.ppf(0.5 + level / 2, df) * se


def _word_direction(a, b, up, paired):
    m, h = _interval(a, b, paired, 0.95)
    if h is None:
        return "illustrative"
    lo, hi = m - h, m + h
    if (lo > 0) if up else (hi < 0):
        return "agrees"
    if (hi < 0) if up else (lo > 0):
        return "disagrees"
    return "not resolved"


def _combine(words):
    if "disagrees" in words:
        return "disagrees"
    if all(w == "agrees" for w in words):
        return "agrees"
    if all(w == "illustrative" for w in words):
        return "illustrative"
    return "not resolved"


def recompute(ev: dict) -> str | None:
    """The verdict word of one evidence record (None for a kind without values: a caller's own verdict or a
    count)."""
    seeds, arms = ev.get("seeds") or [], ev.get("arms")
    if arms is None:
        return None
    paired = lambda a, b: len(a) == len(seeds) and len(b) == len(seeds)  # noqa: E731
    if ev["kind"] == "groups":
        tgt = arms[ev["target"]]
        return _combine([_word_direction(tgt, v, ev["higher"], paired(tgt, v))
                         for k, v in arms.items() if k != ev["target"]])
    if ev["kind"] == "order":
        vals = list(arms.values())
        return _combine([_word_direction(b, a, not ev["decreasing"], paired(a, b)) for a, b in zip(vals, vals[1:])])
    if ev["kind"] == "same":
        (a, b), margin = arms.values(), ev["margin"]
        m, h = _interval(a, b, paired(a, b), 0.90)
        if h is None:
            return "illustrative"
        if -margin < m - h and m + h < margin:
            return "agrees"
        if m - h > margin or m + h < -margin:
            return "disagrees"
        return "not resolved"
    raise ValueError(f"unknown evidence kind {ev['kind']!r}")


WORD_OF_HEAD = {"Agrees with the paper": "agrees", "Disagrees with the paper": "disagrees",
                "Holds (the kit's own finding)": "agrees", "Does not hold (the kit's own finding)": "disagrees",
                "Illustrative (1 run)": "illustrative"}


def word_of(head: str) -> str:
    return WORD_OF_HEAD.get(head, "not resolved" if head.startswith("Not resolved") else head)
