"""Numbers that remember the run they were measured in.

A result the run cache hands a notebook (:func:`growkit.runs.cache.named`) holds its record values (test and
validation accuracy, parameters, multiply-adds, epochs, ...) as :class:`Measured` numbers: plain ``float`` or
``int`` in every use, that also carry *where* they come from, a small expression over run records. A value
read from a run is a leaf ``{"notebook", "run", "column"}`` (the notebook's runs folder, the run directory in
it, the column of ``figures/records/<notebook>.csv`` that holds it); arithmetic on measured numbers keeps the
expression (``["-", leaf, leaf]``), so a difference, a ratio or a mean of run values stays traceable. Anything
else (``round``, ``math.log``, numpy) returns a plain number: it has no source, and the verdict records say so.

:func:`growkit.papers.report.judge` stores these expressions beside every value a verdict was computed from,
and the verdict test recomputes each verdict from the committed records through them.
"""
from __future__ import annotations

import operator
from pathlib import Path

# result.json keys kept as measured numbers: the columns of figures/records that hold them unchanged
TAGGED = ("test_acc", "val_acc", "params", "macs", "epochs", "grow_epochs", "grow_wall_s", "finetune_wall_s",
          "val_loss", "train_macs", "wall_s", "scratch_test_acc", "avg_acc", "bwt", "forgetting", "total_params")

OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}


def _src(x):
    """The expression of a number: its source when measured, the number itself when not."""
    return x.source if isinstance(x, Measured) else x


def _make(value, source):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    cls = MeasuredInt if isinstance(value, int) else MeasuredFloat
    out = cls(value)
    out.source = source
    return out


class Measured:
    """Mixin of :class:`MeasuredFloat` and :class:`MeasuredInt`: ``source`` and arithmetic that keeps it."""
    source: object = None

    def _op(self, sym, other, reverse=False):
        if not isinstance(other, (int, float)) or isinstance(other, bool):
            return NotImplemented
        raw = (self._raw(), other._raw() if isinstance(other, Measured) else other)
        a, b = (raw[1], raw[0]) if reverse else raw
        pair = [_src(other), self.source] if reverse else [self.source, _src(other)]
        return _make(OPS[sym](a, b), [sym, *pair])

    def __add__(self, o): return self._op("+", o)
    def __radd__(self, o): return self._op("+", o, True)
    def __sub__(self, o): return self._op("-", o)
    def __rsub__(self, o): return self._op("-", o, True)
    def __mul__(self, o): return self._op("*", o)
    def __rmul__(self, o): return self._op("*", o, True)
    def __truediv__(self, o): return self._op("/", o)
    def __rtruediv__(self, o): return self._op("/", o, True)

    def __neg__(self):
        return _make(-self._raw(), ["*", -1, self.source])

    def __reduce__(self):  # pickles and copies as the plain number with its source
        return _make, (self._raw(), self.source)


class MeasuredFloat(Measured, float):
    def _raw(self) -> float:
        return float(self)


class MeasuredInt(Measured, int):
    def _raw(self) -> int:
        return int(self)


def constant(value):
    """A number the caller states (a threshold, a reference such as "a slope of 1"), kept as a source of its own
    so that a verdict's record tells it apart from a value that lost its run."""
    return _make(value, {"constant": value})


def leaf(value, notebook: str, run: str, column: str):
    """``value`` as a measured number read from ``column`` of ``run`` in ``notebook``'s records."""
    return _make(value, {"notebook": notebook, "run": run, "column": column})


def tag(result: dict, runs_dir, name: str) -> dict:
    """A run's result with its record values as measured numbers (a new dict; the run's files are untouched).
    ``runs_dir``: the notebook's runs folder (its name is the notebook's), ``name``: the run directory in it."""
    notebook, run = Path(runs_dir).resolve().name, Path(name).as_posix()
    return {k: leaf(v, notebook, run, k) if k in TAGGED else v for k, v in result.items()}


def source_of(result: dict) -> tuple[str, str] | None:
    """(notebook, run) of a tagged result, from any of its measured values; None for a plain dict."""
    for v in result.values():
        s = getattr(v, "source", None)
        if isinstance(s, dict):
            return s["notebook"], s["run"]
    return None


def from_run(value, result: dict, column: str):
    """``value``, computed from a tagged ``result``, as a leaf of that run's ``column`` (plain when untagged)."""
    where = source_of(result)
    return value if where is None else leaf(value, *where, column)

