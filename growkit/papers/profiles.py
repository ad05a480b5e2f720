"""Parameter profiles of the notebooks, injected by ``growkit figures --profile NAME``.

* ``cpu``: digits on a 2-core CPU. These are the defaults written in each notebook's parameters cell, so
  the profile only switches off the live widget of the quickstart (headless runs have no front end).
* ``smoke``: the smallest settings that still walk through every cell (tests).
* AdeNeL (``adenel_*``): the cpu profile runs LeNet-5, VGG16, ResNet-20 and ResNet-18 on digits with the
  proximal threshold lambda = 0.05 (digits has 9 steps per epoch where CIFAR has 391, see docs/adenel.md); the
  paper profile uses CIFAR-10 (MNIST for Figure 4, ImageNet for Table 2), lambda = 1 and DessiLBI's 40
  fine-tuning epochs (30 on ImageNet).
* ``paper``: the papers' datasets, nets, epochs and windows (J = T, the epochs at the largest rate of a
  baseline: 100 of 200 on CIFAR-style data, 30 of 90 on ImageNet), for a GPU with the datasets under ./data.
  Weight decay is left to ``TrainConfig``'s default: the authors' 1e-4 on ImageNet, 5e-4 elsewhere.
"""
from __future__ import annotations

# Tiny AutoGrow runs: grow every epoch, at most three growing epochs (J = 4: the smallest window valid for K <= 2).
_TINY = dict(J=4, finetune=1, max_grow_epochs=3)
_CIFAR = dict(device="cuda", J=100, finetune=200)

PROFILES: dict[str, dict[str, dict]] = {
    "00_quickstart": {
        "smoke": dict(K=1, live=False, **_TINY),
        "cpu": dict(live=False),
        "paper": dict(live=False, dataset="cifar10", device="cuda", J=30, finetune=60),
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
    "adenel_01_slimming": {
        "smoke": dict(models=["LeNet5"], seeds=[0], supports=["carry"], J=1, finetune=1, max_grow_epochs=2,
                      baseline_epochs={"LeNet5": 1}, prune_full_epochs=1, prune_finetune=1),
        "cpu": {},
        "paper": dict(dataset="cifar10", device="cuda", models=["VGG16", "ResNet20"], seeds=[0], lam=1.0,
                      finetune=40, max_grow_epochs=500, baseline_epochs=300, prune_full_epochs=300,
                      prune_finetune=40, prune_models=["VGG16", "ResNet20"]),
    },
    "adenel_02_budgets": {
        "smoke": dict(budget_fractions=[0.7, 1.0], J=1, finetune=1, max_grow_epochs=2, baseline_epochs=1,
                      prune_full_epochs=1, prune_finetune=1),
        "cpu": {},
        "paper": dict(dataset="cifar10", device="cuda", model="VGG16", grow_by=4, lam=1.0, finetune=40,
                      max_grow_epochs=500, baseline_epochs=300, prune_full_epochs=300, prune_finetune=40,
                      budget_fractions=[0.02, 0.04, 0.06, 0.08, 0.1]),
    },
    "adenel_03_vs_autogrow": {
        "smoke": dict(autogrow_K=1, autogrow_J=2, autogrow_finetune=1, autogrow_max_grow_epochs=2, J=1, finetune=1,
                      max_grow_epochs=2, ties=["untied"]),
        "cpu": {},
        "paper": dict(dataset="cifar10", device="cuda", autogrow_K=3, autogrow_J=100, autogrow_finetune=200,
                      autogrow_max_grow_epochs=5000, model="ResNet32", lam=1.0, finetune=40, max_grow_epochs=500),
    },
    "adenel_04_filters": {
        "smoke": dict(J=1, finetune=1, max_grow_epochs=2),
        "cpu": {},
        "paper": dict(dataset="mnist", device="cuda", lam=1.0, finetune=40, max_grow_epochs=200),
    },
    "adenel_05_imagenet": {
        "smoke": dict(J=1, finetune=1, max_grow_epochs=2, baseline_epochs=1, prune_full_epochs=1, prune_finetune=1,
                      width_scale=0.125),
        "cpu": {},
        # Table 2: seed width, J, filters per round and tied streams are ours (the paper states none for ImageNet);
        # 60 growing + 30 fine-tuning epochs at most, against the paper's 90-epoch baselines.
        "paper": dict(dataset="imagenet", device="cuda", seed_width=16, grow_by=32, J=5, lam=1.0, finetune=30,
                      max_grow_epochs=60, baseline_epochs=90, prune_full_epochs=90, prune_finetune=30, width_scale=1.0),
    },
    "learn_to_grow_01_split_digits": {
        "smoke": dict(tasks=2, seeds=[0], search_epochs=2, warmup=1, train_epochs=2),
        "cpu": {},
        # Split CIFAR-100 as in the paper (10 tasks of 10 classes), on this kit's plain conv stack.
        "paper": dict(dataset="cifar100", tasks=10, device="cuda", search_epochs=40, warmup=20, train_epochs=60),
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
        "smoke": dict(seeds=[0], inits=["zero", "gau"], policies=["periodic"], K=1, J=2, finetune=1, max_grow_epochs=2,
                      curvature_every=1, curvature_images=64, curvature_probes=4),
        "cpu": {},
        "paper": dict(dataset="cifar10", device="cuda", K=3, J=100, finetune=200, max_grow_epochs=5000,
                      curvature_every=10, curvature_images=2048, curvature_probes=32),
    },
}


def profile_parameters(notebook: str, profile: str) -> dict:
    """The parameters ``growkit figures`` injects into ``notebook`` (its stem) under ``profile``."""
    from ..errors import GrowkitError
    if notebook not in PROFILES:
        raise GrowkitError(f"notebook {notebook!r} has no entry in growkit.papers.profiles.PROFILES")
    return dict(PROFILES[notebook][profile])
