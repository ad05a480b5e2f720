"""Growers of a language-model run: when and how a GPT grows while :class:`~.loop.LMRun` trains it.

A grower is called after every evaluation as ``after_eval(run, row)`` and may call ``run.grow(plans, info)``
with plans of :mod:`growkit.engine.gpt_surgery`; its ``state_dict()`` / ``load_state_dict()`` go into every
checkpoint, so a killed run resumes to the very same growth. A run's grower is part of its config
(``LMConfig.grower``, a JSON spec :func:`build` reads), so ``growkit resume`` and the run cache rebuild it.

:class:`ScheduleGrower`
    the stacking papers' rule: apply stated plans at stated fractions of the training budget (of its
    multiply-adds for a compute budget, else of its steps), e.g. G_stack ``StackAll(2)`` at 25 %.
:class:`AutoGrowLM`
    AutoGrow's policy (Wen et al., Algorithm 1) on the validation loss of a single stack of blocks: checked
    every ``K`` evaluations; periodic growth grows at every check, convergent growth when the loss improved by
    less than ``tau`` nats over the last ``K`` evaluations; growth stops (periodic) when the loss improved by
    less than ``tau`` over the last ``J`` evaluations, (convergent) when the growth at the previous check did
    not improve it by ``tau`` within ``K``, or when the model has ``max_layers`` blocks.

Plans in a spec are ``{"op": NAME, **options}`` with NAME one of :data:`PLANS`.
"""
from __future__ import annotations

import dataclasses
import math

from ...engine.gpt_surgery import InsertBlocks, StackAll, StackMiddle, WidenGPT, WidenMLP
from ...errors import GrowkitError

PLANS = {"insert_blocks": InsertBlocks, "stack_all": StackAll, "stack_middle": StackMiddle, "widen_gpt": WidenGPT,
         "widen_mlp": WidenMLP}


def plan_from(spec) -> object:
    """A surgery plan from ``{"op": NAME, **options}``."""
    if not isinstance(spec, dict) or "op" not in spec:
        raise GrowkitError(f"a plan is {{\"op\": NAME, ...}} with NAME one of {', '.join(PLANS)}; got {spec!r}")
    op = spec["op"]
    if op not in PLANS:
        raise GrowkitError(f"unknown plan op {op!r}; valid: {', '.join(PLANS)}")
    kw = {k: v for k, v in spec.items() if k != "op"}
    fields = {f.name for f in dataclasses.fields(PLANS[op])}
    extra = sorted(set(kw) - fields)
    if extra:
        raise GrowkitError(f"plan {op} has no option {', '.join(extra)}; it takes {', '.join(sorted(fields))}")
    try:
        return PLANS[op](**kw)
    except TypeError as e:
        raise GrowkitError(f"plan {op}: {e}") from None


def plan_spec(plan) -> dict:
    """The spec of a plan (the inverse of :func:`plan_from`)."""
    for op, cls in PLANS.items():
        if type(plan) is cls:
            return {"op": op, **dataclasses.asdict(plan)}
    raise GrowkitError(f"{type(plan).__name__} is not a GPT growth plan")


def _number(name: str, v, lo: float, hi: float, *, low_open=False, integer=False):
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and \
        (lo < v if low_open else lo <= v) and v <= hi and (not integer or float(v).is_integer())
    if not ok:
        rng = f"{'(' if low_open else '['}{lo:g}, {hi:g}]"
        raise GrowkitError(f"{name} must be {'an integer' if integer else 'a number'} in {rng}, got {v!r}")
    return int(v) if integer else float(v)


class ScheduleGrower:
    """Apply ``at = [(fraction, [plan, ...]), ...]`` (fractions in (0, 1), increasing) at those shares of the
    run's budget: growth happens at the first evaluation at or after the fraction (evaluations every
    ``eval_every`` steps, so set it fine enough: a tenth of the budget places a 0.25 growth at 0.3). Several
    fractions passed by one evaluation each grow there, in order. Nothing grows at the run's last evaluation
    (the budget is spent). A growth event's info holds ``fraction`` (asked) and ``share`` (when it happened)."""
    kind = "schedule"

    def __init__(self, at):
        try:
            items = [(f, list(plans)) for f, plans in at]
        except (TypeError, ValueError):
            raise GrowkitError(f"a schedule is a list of [fraction, [plan, ...]] pairs, got {at!r}") from None
        if not items:
            raise GrowkitError("a schedule grower needs at least one [fraction, [plan, ...]]")
        self.at = []
        for f, plans in items:
            f = _number("a growth fraction", f, 0.0, 1.0, low_open=True)
            if f >= 1.0:
                raise GrowkitError(f"a growth fraction must be below 1 (the budget's end), got {f}")
            if not plans:
                raise GrowkitError(f"the growth at fraction {f} names no plan")
            self.at.append((f, [p if not isinstance(p, dict) else plan_from(p) for p in plans]))
        if any(b[0] <= a[0] for a, b in zip(self.at, self.at[1:])):
            raise GrowkitError("growth fractions must increase")
        self.next = 0  # the first growth not yet applied

    def spec(self) -> dict:
        return {"kind": self.kind, "at": [[f, [plan_spec(p) for p in plans]] for f, plans in self.at]}

    def after_eval(self, run, row) -> None:
        if run.done():
            return
        share = run.progress()
        while self.next < len(self.at) and share >= self.at[self.next][0]:
            f, plans = self.at[self.next]
            self.next += 1
            run.grow(plans, {"grower": self.kind, "fraction": f, "share": share})

    def state_dict(self) -> dict:
        return {"next": self.next}

    def load_state_dict(self, state: dict) -> None:
        self.next = int(state["next"])


class AutoGrowLM:
    """AutoGrow's growing and stopping policies on the validation loss (nats) of a GPT's single stack.

    ``m(e)``: the lowest validation loss of evaluations 1..e (``m(0) = +inf``, so a window reaching before the
    first evaluation counts as improving); the improvement over a window of ``w`` evaluations is
    ``m(e - w) - m(e)``. At every ``K``-th evaluation (a check):

    * periodic: stop when the model has grown before and the improvement over the last ``J`` evaluations is
      below ``tau``; else grow (every check);
    * convergent: stop when the previous check grew and the improvement over the last ``K`` evaluations is
      below ``tau`` (that growth did not pay); else grow when that improvement is below ``tau`` (converged);
    * a model with ``max_layers`` blocks stops growing (before growing past it).

    ``plan``: what one growth applies (default: one zero-residual block appended, preserving the function, as
    AutoGrow's ZeroInit). ``J`` must be at least ``2 K`` for periodic growth (the paper's J >> K). Nothing grows
    at the run's last evaluation. Every check is recorded in ``checks``."""
    kind = "autogrow"

    def __init__(self, policy: str = "periodic", K: int = 2, J: int | None = None, tau: float = 0.01,
                 max_layers: int | None = None, plan=None):
        if policy not in ("periodic", "convergent"):
            raise GrowkitError(f"policy must be periodic or convergent, got {policy!r}")
        self.policy = policy
        self.K = _number("K", K, 1, 1e9, integer=True)
        if J is None:
            J = 3 * self.K
        self.J = _number("J", J, 1, 1e9, integer=True)
        if policy == "periodic" and self.J < 2 * self.K:
            raise GrowkitError(f"J = {self.J} is below 2 K = {2 * self.K} (evaluations): the stopping window must "
                               f"span several growth intervals (J >> K)")
        self.tau = _number("tau", tau, 0.0, 1e6)
        self.max_layers = None if max_layers is None else _number("max_layers", max_layers, 1, 1e6, integer=True)
        plan = {"op": "insert_blocks", "k": 1} if plan is None else plan
        self.plan = plan_from(plan) if isinstance(plan, dict) else plan
        self.state = {"best": [], "grew_at_last_check": False, "grown": 0, "stopped": None, "checks": []}

    def spec(self) -> dict:
        return {"kind": self.kind, "policy": self.policy, "K": self.K, "J": self.J, "tau": self.tau,
                "max_layers": self.max_layers, "plan": plan_spec(self.plan)}

    def improvement(self, window: int) -> float:
        """``m(e - window) - m(e)`` (+inf when the window reaches before the first evaluation)."""
        m = self.state["best"]
        e = len(m)
        return math.inf if e - window < 1 else m[e - window - 1] - m[-1]

    def after_eval(self, run, row) -> None:
        st = self.state
        loss = float(row["val_loss"])
        st["best"].append(min(st["best"][-1], loss) if st["best"] else loss)
        e = len(st["best"])
        if st["stopped"] is not None or e % self.K or run.done():
            return
        gain_K = self.improvement(self.K)
        check = {"evaluation": e, "step": run.state.step, "gain_K": gain_K}
        if self.policy == "periodic":
            check["gain_J"] = gain_J = self.improvement(self.J)
            stop, grow = st["grown"] > 0 and gain_J < self.tau, True
            why = "no improvement of tau over J evaluations"
        else:
            stop = st["grew_at_last_check"] and gain_K < self.tau
            grow = gain_K < self.tau
            why = "the last growth did not improve by tau within K evaluations"
        layers = run.model.layers
        if not stop and self.max_layers is not None and layers >= self.max_layers:
            stop, why = True, "max_layers"
        grew = False
        if stop:
            st["stopped"] = check["stopped"] = why
        elif grow:
            run.grow([self.plan], {"grower": self.kind, "policy": self.policy, "evaluation": e,
                                   "gain_K": gain_K, **({"gain_J": check["gain_J"]} if "gain_J" in check else {})})
            st["grown"] += 1
            grew = check["grew"] = True
            if self.max_layers is not None and run.model.layers >= self.max_layers:
                st["stopped"] = check["stopped"] = "max_layers"
        st["grew_at_last_check"] = grew
        st["checks"].append({k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in check.items()})

    def state_dict(self) -> dict:
        return {"state": self.state}

    def load_state_dict(self, state: dict) -> None:
        self.state = state["state"]


KINDS = {"schedule": ScheduleGrower, "autogrow": AutoGrowLM}


def build(spec: dict):
    """A grower from its spec: ``{"kind": "schedule", "at": [[fraction, [plan, ...]], ...]}`` or
    ``{"kind": "autogrow", "policy": ..., "K": ..., "J": ..., "tau": ..., "max_layers": ..., "plan": {...}}``."""
    if not isinstance(spec, dict) or spec.get("kind") not in KINDS:
        raise GrowkitError(f"a grower spec is {{\"kind\": ...}} with kind one of {', '.join(KINDS)}; got {spec!r}")
    kw = {k: v for k, v in spec.items() if k != "kind"}
    cls = KINDS[spec["kind"]]
    try:
        return cls(**kw)
    except TypeError as e:
        raise GrowkitError(f"grower {spec['kind']}: {str(e).replace('__init__() ', '')}") from None
