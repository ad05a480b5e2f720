"""Curvature of the loss around a network, and where a growth event puts it.

What is measured: the mean cross-entropy of a fixed probe subset, with the model in **eval mode**
(BatchNorm normalises with its running statistics, so the loss is a fixed function of the parameters
and the probe; dropout, if any, is off). Its Hessian ``H`` and generalized Gauss-Newton matrix
``G = J^T H_out J`` (``J``: the Jacobian of the logits, ``H_out``: the Hessian of the cross-entropy in
the logits) are linear operators from ``curvlinops`` (matrix-free products through ``torch.func``); on
them:

- :func:`top_eigen`: the top-k eigenvalues (Lanczos, ``scipy.sparse.linalg.eigsh`` with a seeded start
  vector, so a measurement repeats exactly);
- :func:`hutchinson`: the trace (Girard-Hutchinson, Rademacher probes from a seeded generator) with its
  standard error over the probes, split exactly into parameter groups (the per-probe diagonal products
  ``z_i (A z)_i`` of a group sum to the probe's ``z^T A z``); :func:`hutchpp` is Hutch++ (``curvlinops``);
- :func:`spectral_density`: stochastic Lanczos quadrature (``curvlinops``, Papyan 2020).

What a growth event adds: :func:`growth_masks` marks every parameter entry the growth created (a new
block's parameters, the new rows/columns of a widened layer) across the composed edits' index maps;
:func:`split_trace` and :func:`mass_split` give the share of the trace and of the top eigenvector's mass
on new vs old entries (they sum to the whole); :func:`unit_grad_norms` is the gradient norm per new unit
(a row of a weight the growth added whole: a conv filter or a linear unit) against the old units', for
spotting "backward-starved" units.

Randomness never touches the global generators: a measurement neither perturbs training nor depends on
when it is taken. Costs: a Hessian- or GGN-vector product over the probe costs about two to three
forward-backward passes over it.
"""
from __future__ import annotations

import contextlib
import math

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import GrowkitError
from .callbacks import Callback
from .surgery import compose_remaps

KINDS = ("hessian", "ggn")
STARVED = 0.01  # a new unit is "backward-starved" when its gradient norm is below 1% of the old units' median


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module):
    """The model in eval mode inside the block; every module's own training flag restored after."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, t in modes:
            m.train(t)


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device):
    """The global torch generators (CPU, and ``device``'s if CUDA) seeded inside the block, restored after."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def trainable(model: torch.nn.Module) -> tuple[list[str], list[torch.nn.Parameter]]:
    """Names and parameters the curvature is taken over (those with ``requires_grad``), in model order."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [n for n, _ in named], [p for _, p in named]


def operator(model: torch.nn.Module, batches, kind: str = "hessian"):
    """The Hessian or GGN of the mean cross-entropy over ``batches`` (a list of ``(x, y)``) as a ``curvlinops``
    linear operator (``@`` a flat vector or a matrix of columns; ``.to_scipy()``). Call it with the model in
    eval mode (see :func:`eval_mode`)."""
    from curvlinops import GGNLinearOperator, HessianLinearOperator
    if kind not in KINDS:
        raise GrowkitError(f"unknown curvature kind {kind!r}; valid: {', '.join(KINDS)}")
    if model.training:
        raise GrowkitError("curvature is measured in eval mode (BatchNorm running statistics): use eval_mode(model)")
    cls = HessianLinearOperator if kind == "hessian" else GGNLinearOperator
    _, params = trainable(model)
    return cls(model, torch.nn.CrossEntropyLoss(reduction="mean"), params, list(batches),
               check_deterministic=False)


def _finite(x: float, what: str) -> float:
    if not math.isfinite(x):
        raise GrowkitError(f"the {what} is {x}: the loss or the model is not finite")
    return x


def top_eigen(op, k: int = 1, tol: float = 1e-6, seed: int = 0, which: str = "LA"):
    """The ``k`` largest (``which="LA"``; ``"SA"``: smallest) eigenvalues, descending, and their unit
    eigenvectors (columns, numpy float64), by Lanczos (``eigsh``) to relative tolerance ``tol``."""
    from scipy.sparse.linalg import eigsh
    from scipy.sparse.linalg import ArpackError, ArpackNoConvergence
    a = op.to_scipy(dtype=np.float64)
    v0 = np.random.RandomState(seed % 2 ** 32).standard_normal(a.shape[0])
    try:
        vals, vecs = eigsh(a, k=k, which=which, tol=tol, v0=v0)
    except (ArpackError, ArpackNoConvergence) as e:  # e.g. a non-finite product
        raise GrowkitError(f"Lanczos (eigsh) failed: {str(e).splitlines()[0][:120]}; is the loss finite?") from None
    order = np.argsort(vals)[::-1]
    for v in vals:
        _finite(float(v), "top eigenvalue")
    return vals[order], vecs[:, order]


def _rademacher(n: int, m: int, seed: int, dtype, device) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    z = torch.randint(0, 2, (n, m), generator=g, dtype=torch.int8).to(dtype) * 2 - 1
    return z.to(device)


def hutchinson(op, probes: int, seed: int = 0, groups: dict[str, torch.Tensor] | None = None,
               chunk: int = 16) -> dict:
    """Girard-Hutchinson trace estimate of ``op`` from ``probes`` Rademacher vectors (seeded): ``{"trace",
    "se"}`` (the standard error over the probes: the estimate is within about 2 se of the trace 95% of the
    time). ``groups``: flat boolean masks over the operator's dimension; each group gets ``{"trace", "se"}``
    from the same probes (``sum_{i in group} z_i (A z)_i``: unbiased for the group's diagonal sum, and the
    groups of a partition sum exactly to the whole, probe by probe)."""
    if probes < 2:
        raise GrowkitError(f"a trace estimate with a standard error needs at least 2 probes, got {probes}")
    n = op.shape[0]
    z = _rademacher(n, probes, seed, op.dtype, op.device)
    prods = []
    for s in range(0, probes, chunk):
        zs = z[:, s:s + chunk]
        prods.append(zs * (op @ zs))  # elementwise: column j holds z_i (A z)_i of probe j
    d = torch.cat(prods, dim=1).double()
    out = _estimate(d.sum(0), "trace")
    for name, mask in (groups or {}).items():
        out[name] = _estimate(d[mask.to(d.device)].sum(0), f"trace of the {name} parameters")
    return out


def _estimate(per_probe: torch.Tensor, what: str) -> dict:
    m = per_probe.numel()
    return {"trace": _finite(per_probe.mean().item(), what),
            "se": _finite(per_probe.std(unbiased=True).item() / math.sqrt(m), what + " (its standard error)")}


def hutchpp(op, matvecs: int, seed: int = 0) -> float:
    """Hutch++ trace estimate (``curvlinops.hutchpp_trace``: a third of the products find a low-rank part whose
    trace is exact, the rest estimate the remainder) with ``matvecs`` products (a multiple of 3), seeded."""
    from curvlinops import hutchpp_trace
    with _seeded(seed, op.device):
        return _finite(float(hutchpp_trace(op, matvecs)), "Hutch++ trace")


def spectral_density(op, ncv: int = 64, repeats: int = 1, points: int = 256, seed: int = 0, tol: float = 1e-2):
    """Stochastic Lanczos quadrature (``curvlinops.lanczos_approximate_spectrum``, Papyan 2020): grid and
    density of the eigenvalues (the density integrates to about 1 over the grid). ``ncv`` Lanczos vectors
    per repeat; the spectrum's ends come from seeded ``eigsh`` runs to relative tolerance ``tol``."""
    from curvlinops import lanczos_approximate_spectrum
    hi = float(top_eigen(op, 1, tol, seed, "LA")[0][0])
    lo = float(top_eigen(op, 1, tol, seed + 1, "SA")[0][0])
    with _seeded(seed, op.device):
        grid, density = lanczos_approximate_spectrum(op, ncv, num_points=points, num_repeats=repeats,
                                                     boundaries=(lo, hi))
    return grid.detach().double().cpu().numpy(), density.detach().double().cpu().numpy()


# ----------------------------------------------------------------------------- growth events

def growth_masks(model: torch.nn.Module, edits) -> dict[str, torch.Tensor]:
    """For every trainable parameter of the grown ``model``: a boolean tensor of its shape, True on entries the
    ``edits`` (one growth step, applied in order) created. An entry is old when each of its coordinates maps to
    an old position (a widened layer's new row or new column is new); a parameter created by any edit is new
    whole; a parameter no edit touched is old whole."""
    e = compose_remaps(list(edits))
    masks = {}
    for name, p in zip(*trainable(model)):
        if name in e.new:
            masks[name] = torch.ones(p.shape, dtype=torch.bool)
            continue
        m = torch.zeros(p.shape, dtype=torch.bool)
        for d, idx in enumerate(e.remap.get(name, ())):
            shape = [1] * p.dim()
            shape[d] = -1
            m = m | (idx.cpu() < 0).view(shape)
        masks[name] = m
    return masks


def flat_mask(model: torch.nn.Module, masks: dict[str, torch.Tensor]) -> torch.Tensor:
    """The masks concatenated in the operator's parameter order (one flat boolean vector)."""
    names, _ = trainable(model)
    return torch.cat([masks[n].reshape(-1) for n in names])


def split_trace(op, new: torch.Tensor, probes: int, seed: int = 0) -> dict:
    """The trace of ``op`` and its parts on the ``new`` entries (flat mask) and the others: ``{"trace", "se",
    "new": {...}, "old": {...}, "new_share"}`` (new_share: the new part's share of the estimate)."""
    out = hutchinson(op, probes, seed, {"new": new, "old": ~new})
    out["new_share"] = out["new"]["trace"] / out["trace"] if out["trace"] != 0 else float("nan")
    return out


def mass_split(vec, new: torch.Tensor) -> dict:
    """A vector's squared mass on the ``new`` entries and on the old ones, as shares of the whole (sum 1)."""
    v = torch.as_tensor(np.asarray(vec), dtype=torch.float64)
    total = float((v * v).sum())
    if total == 0:
        raise GrowkitError("the eigenvector is zero")
    new_mass = float((v[new] ** 2).sum()) / total
    return {"new": new_mass, "old": float((v[~new] ** 2).sum()) / total}


def new_units(model: torch.nn.Module, masks: dict[str, torch.Tensor]) -> dict[str, list[int]]:
    """The units a growth added: for every weight of 2 or more dims, the rows (dim 0: conv filters, linear
    units) that are new whole."""
    out = {}
    for name, m in masks.items():
        if m.dim() >= 2:
            rows = torch.nonzero(m.reshape(m.shape[0], -1).all(1)).squeeze(1).tolist()
            if rows:
                out[name] = rows
    return out


def unit_grad_norms(model: torch.nn.Module, batches, units: dict[str, list[int]]) -> dict:
    """The gradient norm of the mean cross-entropy over ``batches`` (eval mode) per unit: every row of every
    weight of 2 or more dims; the rows in ``units`` are the new units, the others the old ones. Returns
    ``{"new": [...], "old_median", "starved"}``: starved counts the new units whose norm is below
    :data:`STARVED` times the old units' median. The parameters' ``.grad`` are left untouched."""
    names, params = trainable(model)
    with eval_mode(model):
        n = sum(len(y) for _, y in batches)
        grads = [torch.zeros_like(p) for p in params]
        for x, y in batches:
            loss = F.cross_entropy(model(x), y, reduction="sum") / n
            for g, d in zip(grads, torch.autograd.grad(loss, params, allow_unused=True)):
                if d is not None:
                    g += d
    new, old = [], []
    for name, g in zip(names, grads):
        if g.dim() < 2:
            continue
        norms = g.detach().reshape(g.shape[0], -1).double().norm(dim=1).cpu()
        is_new = torch.zeros(len(norms), dtype=torch.bool)
        is_new[units.get(name, [])] = True
        new += norms[is_new].tolist()
        old += norms[~is_new].tolist()
    for v in new + old:
        _finite(v, "gradient norm of a unit")
    med = float(np.median(old)) if old else float("nan")
    return {"new": new, "old_median": med, "starved": sum(v < STARVED * med for v in new)}


def measure(model: torch.nn.Module, batches, probes: int = 16, tol: float = 1e-3, seed: int = 0,
            new: torch.Tensor | None = None, kinds=KINDS) -> dict:
    """One curvature record of ``model`` on ``batches`` (eval mode, mean cross-entropy): per kind (hessian,
    ggn) the top eigenvalue (Lanczos to relative ``tol``) and the trace (``probes`` Hutchinson probes, with
    its standard error); with ``new`` (a flat mask, see :func:`flat_mask`) also the trace's and the top
    eigenvector's shares on the new entries vs the old."""
    out = {"images": sum(len(y) for _, y in batches), "probes": probes, "tol": tol, "mode": "eval"}
    with eval_mode(model):
        with torch.no_grad():
            loss = sum(F.cross_entropy(model(x), y, reduction="sum").item() for x, y in batches) / out["images"]
        out["loss"] = _finite(loss, "probe loss")
        for i, kind in enumerate(kinds):
            op = operator(model, batches, kind)
            vals, vecs = top_eigen(op, 1, tol, seed + i)
            rec = {"top": float(vals[0])}
            if new is None:
                tr = hutchinson(op, probes, seed + i)
            else:
                tr = split_trace(op, new, probes, seed + i)
                rec["top_vec"] = mass_split(vecs[:, 0], new)
                rec["trace_new"], rec["trace_old"] = tr["new"], tr["old"]
                rec["trace_new_share"] = tr["new_share"]
            rec["trace"], rec["trace_se"] = tr["trace"], tr["se"]
            out[kind] = rec
    return out


# ----------------------------------------------------------------------------- the trainer's callback

def _summary(g: dict) -> dict:
    new = g["new"]
    return {"n": len(new), "new": new, "median": float(np.median(new)) if new else None,
            "old_median": g["old_median"], "starved": g["starved"], "starved_below": STARVED}


class CurvatureProbe(Callback):
    """Curvature along a run (``TrainConfig.curvature_every = N``; the trainer installs it, ahead of the
    recorder). On a fixed probe subset (the first ``images`` of a seeded choice of training images,
    unaugmented), in eval mode, with seeds derived from the run's seed and epoch (a resumed run measures the
    same numbers):

    - every N epochs, the row's ``curvature``: Hessian and GGN top eigenvalue and trace (see :func:`measure`);
    - at every growth event, just before the surgery and just after the surgery and the initializer, the
      growth record's ``curvature``: ``before``, ``after`` (with the trace's and the top eigenvector's shares
      on the new entries) and ``new_units`` (the gradient norm per new unit);
    - every epoch after a growth event until the next, the row's ``new_unit_grad`` (gradient norm per unit
      the latest growth added; kept in the checkpoint's extras so a resume goes on tracking them).

    Neither the global random generators, the parameters' ``.grad``, the BatchNorm statistics nor the
    training flags are changed: training is what it would be without it.
    """

    KEY = "curvature_units"  # in trainer.extras
    BATCH = 256
    TOL = 1e-3  # Lanczos relative tolerance of the top eigenvalues

    def __init__(self, every: int, images: int = 256, probes: int = 16):
        self.every, self.images, self.probes = every, images, probes
        self.batches, self.before = None, None

    def on_fit_start(self, trainer) -> None:
        x, y = trainer.data.subset("train", self.images, seed=0)
        self.batches = [(x[s:s + self.BATCH], y[s:s + self.BATCH]) for s in range(0, len(y), self.BATCH)]

    def _seed(self, trainer, what: str) -> int:
        from .passes import derive_seed
        return derive_seed(trainer.cfg.seed, trainer.loop.epoch, "curvature", what)

    def on_growth_start(self, trainer, decision) -> None:
        self.before = measure(trainer.model, self.batches, self.probes, self.TOL, self._seed(trainer, "before"))

    def on_growth(self, trainer, event: dict) -> None:
        model = trainer.model
        masks = growth_masks(model, trainer.growth_edits)
        after = measure(model, self.batches, self.probes, self.TOL, self._seed(trainer, "after"),
                        new=flat_mask(model, masks))
        units = new_units(model, masks)
        grads = _summary(unit_grad_norms(model, self.batches, units))
        event["curvature"] = {"before": self.before, "after": after, "new_units": grads}
        self.before = None
        trainer.extras[self.KEY] = {"epoch": trainer.loop.epoch, "units": units}

    def on_epoch(self, trainer, row: dict) -> None:
        if trainer.loop.epoch % self.every == 0:
            row["curvature"] = measure(trainer.model, self.batches, self.probes, self.TOL,
                                       self._seed(trainer, "epoch"))
        track = trainer.extras.get(self.KEY)
        if track and track["units"]:
            g = _summary(unit_grad_norms(trainer.model, self.batches, track["units"]))
            row["new_unit_grad"] = {"since": track["epoch"], **g}
