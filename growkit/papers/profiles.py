"""Parameter profiles of the notebooks: injected by ``growkit figures --profile NAME``, and applied by the
notebook itself (:func:`notebook_settings`, its first cell after the parameters) when only its ``profile``
parameter is set, in JupyterLab or through plain papermill, so ``profile = "paper"`` runs the paper's settings.

* ``cpu``: digits on a 2-core CPU. These are the defaults written in each notebook's parameters cell
  (the profile is empty); ``growkit figures`` also switches off the live widget of the quickstart
  (:data:`HEADLESS`: a headless run has no front end).
* ``smoke``: the smallest settings that still walk through every cell (tests).
* AdeNeL (``adenel_*``): the cpu profile runs LeNet-5, VGG16, ResNet-20 and ResNet-18 on digits with the
  proximal threshold lambda = 0.05 (digits has 9 steps per epoch where CIFAR has 391, see docs/adenel.md); the
  paper profile uses CIFAR-10 (MNIST for Figure 4, ImageNet for Table 2), lambda = 1, the tables' budgets in
  multiply-adds, and DessiLBI's 40 fine-tuning epochs (30 on ImageNet); each value's source is named below.
* ``paper``: the papers' datasets, nets, epochs and windows (J = T, the epochs at the largest rate of a
  baseline: 100 of 200 on CIFAR-style data, 30 of 90 on ImageNet), for a GPU with the datasets under ./data.
  Weight decay is left to ``TrainConfig``'s default: the authors' 1e-4 on ImageNet, 5e-4 elsewhere.
"""
from __future__ import annotations

# Tiny AutoGrow runs: grow every epoch, at most three growing epochs (J = 4: the smallest window valid for K <= 2).
_TINY = dict(J=4, finetune=1, max_grow_epochs=3)
_CIFAR = dict(device="cuda", J=100, finetune=200)

# What ``growkit figures`` sets besides a profile: it executes headless, where a live view's stop button has no
# front end (a notebook run by plain papermill should set these too).
HEADLESS: dict[str, dict] = {"00_quickstart": {"live": False}}

PROFILES: dict[str, dict[str, dict]] = {
    "00_quickstart": {
        "smoke": dict(K=1, **_TINY),
        "cpu": {},
        "paper": dict(dataset="cifar10", device="cuda", J=30, finetune=60),
    },
    "autogrow_01_morphism": {
        "smoke": dict(pairs=[["Basic3ResNet", [1, 1, 1], [2, 2, 1]]], inits=["zero", "adam"], seeds=[0],
                      shallow_epochs=1, deeper_epochs=1, converged_epochs=2, converged_cap=2, surface_grid=3, surface_images=32),
        "cpu": {},
        "paper": dict(dataset="cifar10", device="cuda", shallow_epochs=200, deeper_epochs=200, width_scale={},
                      seeds=[0], converged_epochs=200, converged_cap=200, snapshot_every=4, surface_grid=31, surface_images=5000),
    },
    "autogrow_02_c_autogrow": {
        "smoke": dict(schedules=["staircase", "constant"], inits=["zero", "gau"], seeds=[0], K=1, finetune=1,
                      converged_epochs=2, converged_cap=2, max_grow_epochs=3),
        "cpu": {},
        "paper": dict(datasets=["cifar10", "cifar100"], device="cuda", K=100, finetune=200, seeds=[0],
                      converged_epochs=200, converged_cap=200, max_grow_epochs=5000),
    },
    "autogrow_03_adaptability": {
        "smoke": dict(nets=["Basic3ResNet"], K=1, table9_K={"Plain3Net": 1}, seeds=[0], converged_epochs=2, converged_cap=2, **_TINY),
        "cpu": {},
        "paper": dict(datasets=["cifar10", "cifar100", "svhn", "fashionmnist", "mnist"], width_scale={},
                      table9_K={"Plain4Net": 30, "Plain3Net": 50}, table9_dataset="cifar10", seeds=[0],
                      converged_epochs=200, converged_cap=200, **_CIFAR),
    },
    "autogrow_04_interval": {
        "smoke": dict(Ks=[1, 2], seeds=[0], **_TINY),
        "cpu": {},
        "paper": dict(Ks=[50, 20, 10, 5, 3, 1], datasets=["cifar10", "cifar100"], seeds=[0], **_CIFAR),
    },
    "extending_01_your_grower": {
        "smoke": dict(seeds=[0], grow_epochs=3, finetune=1, K=1, J=2, patience=1, max_growths=1),
        "cpu": {},
        "paper": dict(dataset="cifar10", device="cuda", seeds=[0, 1, 2], grow_epochs=100, finetune=100, K=3, J=30),
    },
    "autogrow_05_initializers": {
        "smoke": dict(inits=["adam", "gau"], seeds=[0], K=1, **_TINY),
        "cpu": {},
        "paper": dict(datasets=["cifar10", "cifar100"], seeds=[0], **_CIFAR),
    },
    "autogrow_06_seed_depth": {
        "smoke": dict(seed_nets=[["Basic3ResNet", [1, 1, 1]], ["Basic3ResNet", [2, 2, 2]]], seeds=[0], K=1, **_TINY),
        "cpu": {},
        "paper": dict(dataset="cifar10", width_scale={}, seeds=[0], **_CIFAR),
    },
    "autogrow_07_fraction": {
        "smoke": dict(combos=[["Basic3ResNet", "digits"]], fractions=[1.0, 0.5], seeds=[0], K=1, **_TINY),
        "cpu": {},
        "paper": dict(combos=[["Basic3ResNet", "cifar10"], ["Basic4ResNet", "cifar100"], ["Plain3Net", "mnist"],
                              ["Plain4Net", "svhn"]], width_scale={}, seeds=[0], **_CIFAR),
    },
    "autogrow_08_manual_search": {
        "smoke": dict(nets=["Basic3ResNet"], seeds=[0], depths=[1], epochs=1, K_small=1, K_large=2, J=4,
                      max_grow_epochs=3),
        "cpu": {},
        "paper": dict(dataset="cifar10", device="cuda", depths=[1, 3, 5, 9, 18, 27, 36, 45], epochs=200, K_large=50,
                      J=100, seeds=[0], width_scale={}),
    },
    "autogrow_09_growth_curves": {
        "smoke": dict(curves=[{"name": "fig4", "model": "Basic3ResNet", "dataset": "digits", "K": 1}], seeds=[0],
                      **_TINY),
        "cpu": {},
        "paper": dict(device="cuda", width_scale={}, seeds=[0], curves=[
            {"name": "fig4", "model": "Basic3ResNet", "dataset": "cifar10", "K": 3, "J": 100, "finetune": 200},
            {"name": "fig8a", "model": "Basic4ResNet", "dataset": "imagenet", "K": 5, "J": 30, "finetune": 90,
             "milestones": [1 / 3, 2 / 3]},
            {"name": "fig8b", "model": "Plain4Net", "dataset": "imagenet", "K": 2, "J": 30, "finetune": 90,
             "milestones": [1 / 3, 2 / 3]}]),
    },
    "autogrow_10_imagenet": {
        "smoke": dict(Ks=[2], manual=[["Basic4ResNet", [1, 1, 1, 1]]], J=4, finetune=1, max_grow_epochs=3,
                      converged_epochs=2, converged_cap=2),
        "cpu": {},
        "paper": dict(dataset="imagenet", device="cuda", nets=["Basic4ResNet", "Bottleneck4ResNet", "Plain4Net"],
                      manual=[["Basic4ResNet", [2, 2, 2, 2]], ["Basic4ResNet", [3, 4, 6, 3]],
                              ["Bottleneck4ResNet", [3, 4, 6, 3]], ["Bottleneck4ResNet", [3, 4, 23, 3]]],
                      J=30, finetune=90, converged_epochs=90, converged_cap=90, milestones=[1 / 3, 2 / 3], batch_size=256,
                      width_scale=1.0),
    },
    "autogrow_11_trajectories": {
        "smoke": dict(K_convergent=1, K_large=2, surface_grid=3, surface_images=32, J=6, finetune=1,
                      max_grow_epochs=3),  # J = 6: panel (d) always uses K = 3
        "cpu": {},
        "paper": dict(dataset="cifar10", K_convergent=100, K_large=50, snapshot_every=4, surface_grid=31,
                      surface_images=5000, **_CIFAR),
    },
    "autogrow_12_loss_surfaces": {
        "smoke": dict(nets=["Basic3ResNet"], K=1, J=2, finetune=1, surface_grid=3, surface_images=32),
        "cpu": {},
        "paper": dict(dataset="cifar10", surface_grid=51, surface_images=10000, **_CIFAR),
    },
    # AdeNeL (paper 002). Sources: "T1" Table 1, "T2" Table 2, "T3" Table 3, "T4" Table 4, "S3.2" section 3.2
    # (seed "e.g. 4" for VGG16), "S4" section 4 (baselines: SGD 0.1, x0.1 at thirds, wd 5e-4, batch 128, 300
    # epochs on CIFAR, 90 on ImageNet; seeds 4/8/16), "F4" Figure 4 (LeNet-5 seed 4, +2 per round). The paper
    # gives no lambda, nu, J, tau, rates or fine-tuning epochs: DessiLBI's grow-network example's (lambda 1, nu 100,
    # J 10, tau 0.8, lr 0.05, 40 fine-tuning epochs) are the kit's defaults. Budgets are in multiply-adds, the unit
    # of the paper's "FLOPs"; growing + fine-tuning are bounded by the baseline's epochs (ours: the paper reports
    # train-costs below 100 %). One seed: the paper reports single numbers.
    "adenel_01_slimming": {
        "smoke": dict(models=["LeNet5"], seeds=[0], supports=["reset"], J=1, finetune=1, max_grow_epochs=2,
                      baseline_epochs={"LeNet5": 2}, prune_models=["LeNet5"]),
        "cpu": {},
        "paper": dict(dataset="cifar10", device="cuda", models=["VGG16", "ResNet20"], seeds=[0], supports=["reset"],
                      model_kw={"VGG16": {"hidden": [512]}},  # T1: VGG-16 of 14.99M parameters, 313M MACs
                      seed_width=4,  # S3.2 (1): "e.g., 4" for VGG16; S4: 4/8/16
                      grow_by={"VGG16": 4, "ResNet20": 4},  # S3.2.2: a fixed number per round (4: ours)
                      ties={"ResNet20": "tied"},  # T1's 0.12M needs the residual streams grown (untied: 43K)
                      budget_params={"VGG16": 589_000, "ResNet20": 120_000},  # T1/T4 "Ours": 0.58-0.589M, 0.12M
                      budget_macs={"VGG16": 43_000_000, "ResNet20": 21_000_000},  # T1 "Ours": 43M (abstract), 0.021G
                      lam=1.0, nu=100.0, finetune=40, max_grow_epochs=260,  # 260 + 40 = S4's 300 baseline epochs
                      baseline_epochs=300, prune_models=["VGG16", "ResNet20"], prune_at=0.333),  # S4; T1 l1-pruning
    },
    "adenel_02_budgets": {
        "smoke": dict(budget_fractions=[0.7, 1.0], J=1, finetune=1, max_grow_epochs=2, baseline_epochs=2),
        "cpu": {},
        "paper": dict(dataset="cifar10", device="cuda", model="VGG16", model_kw={"hidden": [512]},  # F3: VGG16, T1
                      seed_width=4, grow_by=4, lam=1.0, nu=100.0, finetune=40, max_grow_epochs=260,
                      baseline_epochs=300, prune_at=0.333,  # S4
                      budget_fractions=[0.02, 0.04, 0.06, 0.08, 0.1]),  # F3: 0.3M-1.5M of 14.99M parameters
    },
    "adenel_03_vs_autogrow": {
        "smoke": dict(autogrow_K=1, autogrow_J=2, autogrow_finetune=1, autogrow_max_grow_epochs=2, J=1, finetune=1,
                      max_grow_epochs=2, ties=["untied"]),
        "cpu": {},
        # T3 "Depth": AdeNeL under the parameters and multiply-adds of the net AutoGrow grew (budget = AutoGrow's
        # found net, as the notebook does); ResNet-32 backbone (T3/T4), tied streams (T3's 2.49M needs them).
        "paper": dict(dataset="cifar10", device="cuda", autogrow_K=3, autogrow_J=100, autogrow_finetune=200,
                      autogrow_max_grow_epochs=5000, model="ResNet32", ties=["tied"], seed_width=16,  # S4: 4/8/16
                      lam=1.0, nu=100.0, finetune=40, max_grow_epochs=260),
    },
    "adenel_04_filters": {
        "smoke": dict(J=1, finetune=1, max_grow_epochs=2),
        "cpu": {},
        # F4: LeNet-5 on MNIST from 4 filters per conv layer, +2 per round (S4: LeNet-5 for MNIST)
        "paper": dict(dataset="mnist", device="cuda", seed_width=4, grow_by=2, lam=1.0, nu=100.0, finetune=40,
                      max_grow_epochs=200),
    },
    "adenel_05_imagenet": {
        "smoke": dict(J=1, finetune=1, max_grow_epochs=2, baseline_epochs=2, width_scale=0.125),
        "cpu": {},
        # T2: ImageNet ResNet-18 (11.69M parameters, 1.81G MACs here; the paper: 11.80M, 1.80G), "Ours" at 10.44M
        # parameters and 1.57G MACs: the budgets. Seed width, J, filters per round and tied streams are ours (the
        # paper states none for ImageNet); 60 growing + 30 fine-tuning epochs = S4's 90-epoch baselines.
        "paper": dict(dataset="imagenet", device="cuda", seed_width=16, grow_by=32, J=5, ties="tied", lam=1.0,
                      nu=100.0, finetune=30, max_grow_epochs=60, baseline_epochs=90, prune_at=0.333, width_scale=1.0,
                      budget_params=10_440_000, budget_macs=1_570_000_000),
    },
    "learn_to_grow_01_split_digits": {
        "smoke": dict(tasks=2, seeds=[0], search_epochs=2, warmup=1, train_epochs=2),
        "cpu": {},
        # Split CIFAR-100 as in the paper (10 tasks of 10 classes), on Plain4Net 1-1-1-1 (ResNet-18's stage widths,
        # plain convs: see docs/learn_to_grow.md for why not ResNet-18 itself).
        "paper": dict(dataset="cifar100", tasks=10, model="Plain4Net", depths=[1, 1, 1, 1], hidden=[256],
                      device="cuda", search_epochs=40, warmup=20, train_epochs=60),
    },
    "gauss_newton_01_estimates": {
        "smoke": dict(seeds=[0], seed_width=4, train_epochs=1, morph_epochs=1, quality_channels=[0, 1]),
        "cpu": {},
        "paper": dict(dataset="cifar10", device="cuda", seed_width=[64, 64, 128, 128, 256, 256, 256, 256, 512, 512,
                                                                    512, 512, 512, 512, 512, 512],
                      train_epochs=20, morph_epochs=20),
    },
    "gauss_newton_02_search": {
        "smoke": dict(seeds=[0], nets=[["VGG19", 4]], lambdas={"VGG19": [0.0001]}, phases=2, phase_epochs=1,
                      scratch_epochs=1, baseline_cap=1),
        "cpu": {},
        "paper": dict(datasets=["cifar10", "cifar100"], device="cuda", seeds=[0],
                      lambdas={"VGG19": [3e-7, 6e-7, 1e-6], "MobileNetV1": [3e-8, 3e-7, 6e-7, 1e-6]},
                      phases=30, phase_epochs=20, lr_drops=[300, 450]),
    },
    "curvature_01_growth_events": {
        "smoke": dict(seeds=[0], inits=["gau"], policies=["periodic"], K=1, J=2, finetune=1, max_grow_epochs=2,
                      periodic_max_grow_epochs=2, adenel_J=1, adenel_max_grow_epochs=2, gn_model=["VGG19", 4], gn_phases=2, gn_phase_epochs=1,
                      curvature_every=1, curvature_images=64, curvature_probes=4),
        "cpu": {},
        "paper": dict(dataset="cifar10", device="cuda", K=3, J=100, finetune=200, max_grow_epochs=5000,
                      periodic_max_grow_epochs=300, adenel_model="VGG16", adenel_max_grow_epochs=260, gn_model=["VGG19", 16], gn_lambda=1e-6,
                      gn_phases=30, gn_phase_epochs=20, curvature_every=10, curvature_images=2048,
                      curvature_probes=32),
    },
    "curvature_02_initializers": {
        "smoke": dict(seeds=[0], inits=["zero", "gau"], K=1, J=2, finetune=1, max_grow_epochs=2, curvature_every=1,
                      curvature_images=64, curvature_probes=4),
        "cpu": {},
        "paper": dict(dataset="cifar10", device="cuda", K=3, J=100, finetune=200, max_grow_epochs=300,
                      curvature_every=10, curvature_images=2048, curvature_probes=32),
    },
    # GPT growth: smoke walks every cell with one seed and two rates; cpu (the notebooks' defaults) is a tiny
    # character-level GPT on the embedded corpus; paper: GPT-2-small-sized models on OpenWebText token files
    # (nanoGPT's prepare.py layout under the data root) on a GPU in bf16, budgets of 20k steps of the final model.
    "transformer_growth_01_stacking": {
        "smoke": dict(seeds=[0], lrs=[0.002, 0.004], steps=8, warmup=1, eval_every=2, eval_windows=4,
                      batch_size=4, context=32, K=1, J=2),
        "cpu": {},
        "paper": dict(dataset="openwebtext", device="cuda", precision="bf16", final_model="GPT-12L-12H-768",
                      small_model="GPT-6L-12H-768", context=1024, batch_size=32, steps=20000, warmup=500,
                      eval_every=250, eval_windows=256, lrs=[0.0003, 0.0006, 0.0012], K=4, J=12, tau=0.005),
    },
    "transformer_growth_02_width": {
        "smoke": dict(seeds=[0], lrs=[0.002, 0.004], steps=8, warmup=1, eval_every=2, eval_windows=4,
                      batch_size=4, context=32, fractions=[0.25]),
        "cpu": {},
        "paper": dict(dataset="openwebtext", device="cuda", precision="bf16", final_model="GPT-12L-12H-768",
                      small_model="GPT-12L-6H-384", context=1024, batch_size=32, steps=20000, warmup=500,
                      eval_every=250, eval_windows=256, lrs=[0.0003, 0.0006, 0.0012]),
    },
}


def profile_parameters(notebook: str, profile: str) -> dict:
    """The parameters ``growkit figures`` injects into ``notebook`` (its stem) under ``profile``."""
    from ..errors import GrowkitError
    if notebook not in PROFILES:
        raise GrowkitError(f"notebook {notebook!r} has no entry in growkit.papers.profiles.PROFILES")
    return dict(PROFILES[notebook][profile])


def notebook_defaults(notebook: str) -> dict | None:
    """The literal defaults of ``notebook``'s parameters cell, read from ``<notebook>.ipynb`` in the working
    directory (a kernel runs in the notebook's folder) or in ``notebooks/`` of the checkout holding it; None
    where neither exists."""
    import ast
    import json
    from pathlib import Path

    from ..data.catalog import find_checkout
    checkout = find_checkout()
    for path in (Path.cwd() / f"{notebook}.ipynb",
                 *([checkout / "notebooks" / f"{notebook}.ipynb"] if checkout is not None else [])):
        if path.is_file():
            break
    else:
        return None
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    cell = next(c for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))
    src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
    out = {}
    for node in ast.parse(src).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            out[node.targets[0].id] = ast.literal_eval(node.value)
    return out


def notebook_settings(notebook: str, namespace: dict, *, quiet: bool = False) -> dict:
    """What a notebook's first cell applies after its parameters (``globals().update(...)`` of the result):

    * the settings of the profile its ``profile`` parameter names, for every parameter still at the
      notebook's default (a parameter you changed, or ``growkit figures`` injected, is kept, and said so);
    * ``runs_dir`` and ``figures_dir`` when they are None: ``runs/<profile>/<notebook>`` and
      ``runs/<profile>/figures`` of the checkout holding the working directory, never the committed
      ``figures/`` (only ``growkit figures --profile cpu`` writes there).

    A profile that cannot be applied (unknown, or the notebook's defaults cannot be read to tell what you
    changed) is refused with a one-line error rather than run under a wrong label."""
    from pathlib import Path

    from ..data.catalog import find_checkout
    from ..errors import GrowkitError
    from ..runs import pool
    profile = namespace.get("profile")
    if profile not in ("smoke", "cpu", "paper"):
        raise GrowkitError(f"profile must be 'smoke', 'cpu' or 'paper', got {profile!r}")
    settings = PROFILES.get(notebook, {}).get(profile, {})
    updates, kept = {}, []
    if settings:
        defaults = notebook_defaults(notebook)
        if defaults is None:
            raise GrowkitError(f"profile {profile!r}: {notebook}.ipynb is not in the working directory or a "
                               "growkit checkout's notebooks/, so the parameters you changed cannot be told from "
                               "its defaults; run it from a checkout, or set profile='cpu' and the parameters "
                               "by hand")
        unknown = sorted(set(settings) - set(defaults))
        if unknown:
            raise GrowkitError(f"profile {profile!r} of {notebook} sets {', '.join(unknown)}, which the "
                               "notebook's parameters cell does not have")
        for k, v in settings.items():
            if namespace.get(k) == defaults[k]:
                updates[k] = v
            elif namespace.get(k) != v:
                kept.append(k)
    base = find_checkout() or Path.cwd()
    if namespace.get("runs_dir") is None:
        updates["runs_dir"] = str(base / "runs" / profile / notebook)
        pool.enable(base / "runs" / profile)  # this profile's notebooks share finished identical runs
    if namespace.get("figures_dir") is None:
        updates["figures_dir"] = str(base / "runs" / profile / "figures")
    if not quiet:
        shown = {k: v for k, v in settings.items() if k not in kept}  # in effect (set here or injected)
        print(f"profile {profile}" + (f": {', '.join(f'{k}={v!r}' for k, v in shown.items())}" if shown else "")
              + (f"; kept as set: {', '.join(f'{k}={namespace[k]!r}' for k in kept)}" if kept else "")
              + f"\nruns -> {updates.get('runs_dir', namespace.get('runs_dir'))}, "
                f"figures -> {updates.get('figures_dir', namespace.get('figures_dir'))}")
    return updates
