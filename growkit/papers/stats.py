"""The statistics behind every verdict: a t-interval for a difference, then a claim judged from it.

A difference between two arms (seeded runs of two settings, first − second) is estimated

* **paired** when the arms share seeds: the per-seed differences, their mean, a t-interval with
  n − 1 degrees of freedom;
* by **Welch** otherwise: the difference of the means, its standard error from each arm's sample
  variance, and the Welch-Satterthwaite degrees of freedom.

A claim is then judged from the interval:

* "A is higher (lower) than B" agrees when the interval excludes zero in the claimed direction,
  disagrees when it excludes zero the other way, and is otherwise "not resolved at n = k"; the
  printed half-width says how large a difference the seeds could have shown.
* "A and B are about the same" is an equivalence test (TOST) at level α with a stated margin m: the
  (1 − 2α) interval inside (−m, m) shows equivalence (agrees); wholly beyond ±m it shows a
  difference larger than the margin (disagrees; the one-sided test of that side at level α);
  otherwise not resolved.

One run on either side gives no interval and no verdict, only "illustrative (1 run)". Quantiles come
from :mod:`scipy.stats`. A value that is not a finite number stops with a one-line GrowkitError.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from scipy import stats as _scipy

from growkit.errors import GrowkitError

AGREES, DISAGREES, NOT_RESOLVED, ILLUSTRATIVE = "agrees", "disagrees", "not resolved", "illustrative"


def _signed(x: float, digits: int) -> str:
    return f"{round(x, digits) + 0.0:+.{digits}f}"  # + 0.0: a value that rounds to zero prints +0.00, not -0.00


@dataclass(frozen=True)
class Interval:
    """The difference first − second with its t-interval ``mean ± half``. ``n``: pairs (paired) or the
    smaller arm (Welch); ``sizes``: runs per arm. A single run has no interval (``half`` and ``df`` None)."""
    mean: float
    half: float | None
    n: int
    df: float | None
    method: str  # "paired" or "welch"
    level: float = 0.95
    sizes: tuple[int, int] = (0, 0)

    @property
    def low(self) -> float:
        return -math.inf if self.half is None else self.mean - self.half

    @property
    def high(self) -> float:
        return math.inf if self.half is None else self.mean + self.half

    def format(self, digits: int = 2, parens: bool = True) -> str:
        """``+1.23 ± 0.45 (95 % CI, paired, n = 3)``; without ``parens``: ``+1.23 ± 0.45, 95 % CI, ...``."""
        a, b = self.sizes
        runs = f"n = {self.n}" if self.method == "paired" or a == b else f"n = {a} and {b}"
        if self.half is None:
            value, how = _signed(self.mean, digits), f"{'1 run each' if a == b == 1 else runs}, no interval"
        else:
            method = "paired" if self.method == "paired" else "Welch"
            value = f"{_signed(self.mean, digits)} ± {self.half:.{digits}f}"
            how = f"{100 * self.level:g} % CI, {method}, {runs}"
        return f"{value} ({how})" if parens else f"{value}, {how}"

    def __str__(self) -> str:
        return self.format()


@dataclass(frozen=True)
class Verdict:
    """A claim, its verdict word (agrees / disagrees / not resolved / illustrative) and the interval it was
    judged from; ``margin`` for an equivalence claim; ``parts`` for a claim made of several (:func:`all_of`)."""
    claim: str
    word: str
    interval: Interval
    margin: float | None = None
    parts: tuple[Verdict, ...] = ()
    digits: int = 2
    test: str = "tost"  # what ``margin`` belongs to: "tost" (equivalence) or "non-inferiority"
    # what it was computed from (:func:`inputs`): the test, both arms' values with their seeds and the runs they
    # come from, the pairing and the margin; None for a verdict made from an interval alone
    inputs: dict | None = field(default=None, compare=False)

    def evidence(self) -> dict | None:
        """The values and tests behind this verdict, as JSON-ready data (parts nested), so that it can be
        recomputed elsewhere; None when a part was judged from an interval alone."""
        if self.parts:
            parts = [p.evidence() for p in self.parts]
            return None if None in parts else {"test": "all_of", "word": self.word, "parts": parts}
        return None if self.inputs is None else {**self.inputs, "word": self.word}

    @property
    def holds(self) -> bool | None:
        """True (agrees), False (disagrees), None (no verdict either way)."""
        return {AGREES: True, DISAGREES: False}.get(self.word)

    @property
    def head(self) -> str:
        return {AGREES: "Agrees with the paper", DISAGREES: "Disagrees with the paper",
                NOT_RESOLVED: f"Not resolved at n = {self.interval.n}",
                ILLUSTRATIVE: "Illustrative (1 run)"}[self.word]

    @property
    def kit(self) -> str:
        """What the kit measured, as text (the interval, and the margin of an equivalence claim)."""
        if self.parts:
            return "; ".join(f"{p.claim}: {p.kit}" for p in self.parts)
        text = f"Δ = {self.interval.format(self.digits, parens=False)}"
        if self.margin is not None:
            alpha = (1 - self.interval.level) / 2
            if self.test == "non-inferiority":
                text += f"; non-inferiority margin −{self.margin:.{self.digits}f}, one-sided at α = {alpha:.3g}"
            else:
                text += f"; equivalence margin ±{self.margin:.{self.digits}f}, TOST at α = {alpha:.3g}"
        return text

    @property
    def text(self) -> str:
        """One line for a caption."""
        return f"{self.head}: {self.claim} ({self.kit})."

    def __str__(self) -> str:
        return self.text


def _number(x, what: str) -> float:
    if isinstance(x, (str, bytes)) or x is None:
        raise GrowkitError(f"{what} is {x!r}, not a number")
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise GrowkitError(f"{what} is {x!r}, not a number") from None
    if not math.isfinite(v):
        raise GrowkitError(f"{what} is {v}, not a finite number")
    return v


def _arm(values, seeds, name: str) -> tuple[list[float], list | None]:
    """One arm's values and seeds (None when unknown); ``values`` a sequence or a mapping seed -> value."""
    if isinstance(values, Mapping):
        if seeds is not None:
            raise GrowkitError(f"the {name} arm is a mapping seed -> value; do not pass its seeds again")
        seeds, values = list(values), list(values.values())
    else:
        values = list(values)
        if seeds is not None:
            seeds = list(seeds)
            if len(seeds) != len(values):
                raise GrowkitError(f"the {name} arm has {len(values)} values but {len(seeds)} seeds")
    if not values:
        raise GrowkitError(f"the {name} arm holds no values")
    where = (lambda i: f"seed {seeds[i]}") if seeds is not None else (lambda i: f"value {i + 1}")
    out = [_number(v, f"the {name} arm's {where(i)}") for i, v in enumerate(values)]
    if seeds is not None and len(set(seeds)) != len(seeds):
        twice = sorted({s for s in seeds if seeds.count(s) > 1}, key=str)
        raise GrowkitError(f"the {name} arm has seed {', '.join(map(str, twice))} more than once")
    return out, seeds


def _second_seeds(b, seeds, seeds_b):
    """The second arm's seeds: its own, else the shared ``seeds`` (none for a mapping, which holds its own)."""
    return seeds_b if seeds_b is not None else (None if isinstance(b, Mapping) else seeds)


def _listed(values, seeds):
    return (list(values.values()), list(values)) if isinstance(values, Mapping) else (list(values), seeds)


def inputs(test: str, a, b, seeds, seeds_b, iv: Interval, **extra) -> dict:
    """What a two-arm test was computed from: each arm's values, their seeds (None: unknown), and their sources
    (:mod:`growkit.runs.measured`: the run record each value comes from, None for a value that names none)."""
    va, sa = _listed(a, seeds)
    vb, sb = _listed(b, _second_seeds(b, seeds, seeds_b))
    src = lambda vs: [getattr(v, "source", None) for v in vs]  # noqa: E731
    return {"test": test, "a": [float(v) for v in va], "b": [float(v) for v in vb],
            "seeds_a": None if sa is None else list(sa), "seeds_b": None if sb is None else list(sb),
            "sources_a": src(va), "sources_b": src(vb), "paired": iv.method == "paired", "level": iv.level, **extra}


def _level(level, what: str = "confidence level") -> float:
    level = _number(level, what)
    if not 0 < level < 1:
        raise GrowkitError(f"{what} {level:g} is not between 0 and 1")
    return level


def difference(a, b, *, seeds=None, seeds_b=None, paired: bool | None = None, level: float = 0.95) -> Interval:
    """The difference ``a − b`` with its ``level`` t-interval.

    ``a``, ``b``: the arms' values, sequences or mappings seed -> value. ``seeds``: the seeds of a sequence
    arm (of both arms unless ``seeds_b`` is given). ``paired``: None pairs the arms when both have the same
    seeds and uses Welch otherwise; True insists on pairing (an error naming the seeds when they differ;
    by position when seeds are unknown); False uses Welch."""
    level = _level(level)
    va, sa = _arm(a, seeds, "first")
    vb, sb = _arm(b, _second_seeds(b, seeds, seeds_b), "second")
    known = sa is not None and sb is not None
    share = known and set(sa) == set(sb)
    if paired is None:
        paired = share
    if paired and known and not share:
        only_a, only_b = [s for s in sa if s not in sb], [s for s in sb if s not in sa]
        raise GrowkitError(f"cannot pair the arms by seed: seeds {only_a} only in the first, {only_b} only in "
                           f"the second")
    if paired and len(va) != len(vb):
        raise GrowkitError(f"cannot pair {len(va)} runs with {len(vb)}")
    if paired:
        if known:
            by_seed = dict(zip(sb, vb))
            vb = [by_seed[s] for s in sa]
        d = [x - y for x, y in zip(va, vb)]
        n = len(d)
        mean = statistics.fmean(d)
        if n == 1:
            return Interval(mean, None, 1, None, "paired", level, (1, 1))
        se, df = statistics.stdev(d) / math.sqrt(n), n - 1
    else:
        na, nb = len(va), len(vb)
        mean, n = statistics.fmean(va) - statistics.fmean(vb), min(na, nb)
        if n == 1:
            return Interval(mean, None, 1, None, "welch", level, (na, nb))
        qa, qb = statistics.variance(va) / na, statistics.variance(vb) / nb
        se = math.sqrt(qa + qb)
        # Welch-Satterthwaite; both arms without spread: the interval is a point whatever the df
        df = (qa + qb) ** 2 / (qa ** 2 / (na - 1) + qb ** 2 / (nb - 1)) if se > 0 else na + nb - 2
    q = float(_scipy.t.ppf((1 + level) / 2, df))
    return Interval(mean, se * q, n, df, "paired" if paired else "welch", level, (len(va), len(vb)))


def directional(interval: Interval, claim: str, *, higher: bool = True, digits: int = 2) -> Verdict:
    """The claim "first is higher (``higher``) or lower than second", judged from ``interval``."""
    if interval.half is None:
        word = ILLUSTRATIVE
    elif (interval.low > 0) if higher else (interval.high < 0):
        word = AGREES
    elif (interval.high < 0) if higher else (interval.low > 0):
        word = DISAGREES
    else:
        word = NOT_RESOLVED
    return Verdict(claim, word, interval, digits=digits)


def higher(a, b, claim: str, *, seeds=None, seeds_b=None, paired=None, level=0.95, digits=2) -> Verdict:
    """The claim "``a`` is higher than ``b``" (arms and pairing as in :func:`difference`)."""
    iv = difference(a, b, seeds=seeds, seeds_b=seeds_b, paired=paired, level=level)
    v = directional(iv, claim, higher=True, digits=digits)
    return replace(v, inputs=inputs("higher", a, b, seeds, seeds_b, iv))


def lower(a, b, claim: str, *, seeds=None, seeds_b=None, paired=None, level=0.95, digits=2) -> Verdict:
    """The claim "``a`` is lower than ``b``"."""
    iv = difference(a, b, seeds=seeds, seeds_b=seeds_b, paired=paired, level=level)
    v = directional(iv, claim, higher=False, digits=digits)
    return replace(v, inputs=inputs("lower", a, b, seeds, seeds_b, iv))


def equivalent(interval: Interval, claim: str, margin: float, *, digits: int = 2) -> Verdict:
    """The claim "about the same within ±``margin``", judged from a (1 − 2α) ``interval`` (TOST at level α)."""
    margin = _number(margin, "the equivalence margin")
    if margin <= 0:
        raise GrowkitError(f"the equivalence margin must be positive, not {margin:g}")
    if interval.half is None:
        word = ILLUSTRATIVE
    elif -margin < interval.low and interval.high < margin:
        word = AGREES
    elif interval.low > margin or interval.high < -margin:
        word = DISAGREES
    else:
        word = NOT_RESOLVED
    return Verdict(claim, word, interval, margin=margin, digits=digits)


def same(a, b, claim: str, *, margin: float | None = None, relative: float | None = None, reference=None,
         alpha: float = 0.05, seeds=None, seeds_b=None, paired=None, digits=2) -> Verdict:
    """The claim "``a`` and ``b`` are about the same": TOST at level ``alpha``. The margin: ``margin`` (absolute),
    or ``relative`` × |``reference``| (the second arm's mean unless given); with both, the larger."""
    alpha = _level(alpha, "alpha")
    if alpha >= 0.5:
        raise GrowkitError(f"alpha {alpha:g} must be below 0.5 (the interval is at 1 − 2 alpha)")
    if margin is None and relative is None:
        raise GrowkitError("an equivalence claim needs a margin (margin= or relative=)")
    iv = difference(a, b, seeds=seeds, seeds_b=seeds_b, paired=paired, level=1 - 2 * alpha)
    m = 0.0 if margin is None else _number(margin, "the equivalence margin")
    if relative is not None:
        if reference is None:
            reference = statistics.fmean(_arm(b, _second_seeds(b, seeds, seeds_b), "second")[0])
        m = max(m, abs(_number(relative, "the relative margin") * _number(reference, "the margin's reference")))
    v = equivalent(iv, claim, m, digits=digits)
    return replace(v, inputs=inputs("same", a, b, seeds, seeds_b, iv, margin=m))


def not_lower(a, b, claim: str, *, margin: float, alpha: float = 0.05, seeds=None, seeds_b=None, paired=None,
              digits=2) -> Verdict:
    """The claim "``a`` is as high as ``b`` or higher", with a stated margin: a non-inferiority test at level
    ``alpha``. Agrees when the (1 − 2 alpha) interval's lower end is above −``margin`` (``a`` is at most
    ``margin`` below ``b``, the one-sided test at level alpha); disagrees when its upper end is below
    −``margin`` (``a`` is more than ``margin`` lower); otherwise not resolved."""
    alpha = _level(alpha, "alpha")
    if alpha >= 0.5:
        raise GrowkitError(f"alpha {alpha:g} must be below 0.5 (the interval is at 1 − 2 alpha)")
    margin = _number(margin, "the non-inferiority margin")
    if margin <= 0:
        raise GrowkitError(f"the non-inferiority margin must be positive, not {margin:g}")
    iv = difference(a, b, seeds=seeds, seeds_b=seeds_b, paired=paired, level=1 - 2 * alpha)
    if iv.half is None:
        word = ILLUSTRATIVE
    elif iv.low > -margin:
        word = AGREES
    elif iv.high < -margin:
        word = DISAGREES
    else:
        word = NOT_RESOLVED
    return Verdict(claim, word, iv, margin=margin, digits=digits, test="non-inferiority",
                   inputs=inputs("not_lower", a, b, seeds, seeds_b, iv, margin=margin))


def all_of(claim: str, parts: list[Verdict]) -> Verdict:
    """A claim made of several, e.g. "A is the best" = A higher than each other arm: disagrees when a part
    disagrees, agrees when every part agrees, illustrative when every part is, not resolved otherwise.
    Its interval is the deciding part's (the first disagreeing, else the first not agreeing)."""
    parts = tuple(parts)
    if not parts:
        raise GrowkitError(f"the claim {claim!r} has no parts to judge")
    words = [p.word for p in parts]
    if DISAGREES in words:
        word = DISAGREES
    elif all(w == AGREES for w in words):
        word = AGREES
    elif all(w == ILLUSTRATIVE for w in words):
        word = ILLUSTRATIVE
    else:
        word = NOT_RESOLVED
    key = next((p for p in parts if p.word == word), None) or next(p for p in parts if p.word != AGREES)
    return Verdict(claim, word, key.interval, parts=parts, digits=key.digits)


def method_note(seeds, *, level: float = 0.95, alpha: float = 0.05) -> str:
    """The caption sentence that says how the verdicts were computed."""
    seeds = list(seeds)
    return (f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''} ({', '.join(map(str, seeds))}); Δ with its "
            f"{100 * level:g} % t-interval, paired by seed where the arms share seeds, Welch otherwise; a "
            f"direction agrees or disagrees only when the interval excludes zero; \"about the same\" is an "
            f"equivalence test (TOST, α = {alpha:g}) within the stated margin; a single run is illustrative.")
