"""The Gauss-Newton grower: selection, the applied round, the phase schedule, kill + resume."""
from __future__ import annotations

import copy
import json
from types import SimpleNamespace

import pytest
import torch

from growkit.errors import GrowkitError
from growkit.methods.gauss_newton import estimate as gn
from growkit.methods.gauss_newton.grower import GaussNewton, plans_for, select
from growkit.models import create


def test_scripted_score_table_gives_exactly_the_set_applied():
    t = torch.tensor
    split = {"a": t([0.5, -1.0, 0.2, 0.9, 0.1, -0.3, 0.05, 0.0, 0.3, 0.6]),  # width 10: at most 3
             "b": t([-1.0, -2.0, -0.5]),  # width 3: at most max(1, 0) = 1
             "c": t([-1.0, -1.0, -1.0, -1.0])}  # nothing positive
    prune = {"a": t([0.1, 0.8, -0.1, 1.0, 0.0, 0.7, -1.0, 0.0, 0.2, 0.0]),
             "b": t([0.4, 0.3, -0.1]),
             "c": t([-0.1, 0.0, -0.2, -3.0])}
    # a: best per channel = [0.5s, 0.8p, 0.2s, 1.0p, 0.1s, 0.7p, 0.05s, 0.0, 0.3s, 0.6s] -> top 3: 3p, 1p, 5p
    chosen = select(split, prune, 0.3)
    assert chosen == {"a": ([], [1, 3, 5]), "b": ([], [0]), "c": ([], [])}
    split["a"][9] = 2.0  # now channel 9's split is the best of layer a
    assert select(split, prune, 0.3)["a"] == ([9], [1, 3])
    assert select(split, prune, 0.5)["a"] == ([0, 9], [1, 3, 5])  # floor(0.5 * 10) = 5


def _view(model, epoch, global_epoch=None):
    return SimpleNamespace(model=model, epoch=epoch, global_epoch=epoch if global_epoch is None else global_epoch,
                           batches=None)


def test_decide_scores_the_averages_with_the_parameter_penalty():
    model = create("VGG19", widths=4, in_channels=1, image_size=8)
    g = GaussNewton(lambda_p=1e-3, phases=6, n_phase=2)
    sites = list(gn.sites(model))
    g.thetas = gn.init_thetas(model, generator=torch.Generator().manual_seed(0))
    g.ema_split = {s: torch.zeros(4) for s in sites}
    g.ema_prune = {s: torch.full((4,), 1.0) for s in sites}  # every prune costs loss
    cost = gn.channel_cost(model, "layers.5")  # 4*9 + 2 + 4*9 = 74 -> split score -0.074
    g.ema_split["layers.5"] = torch.tensor([-0.1, -0.07, -0.2, 0.0])  # -dL - 0.074: +0.026, -0.004, +0.126, -
    g.ema_prune["layers.7"] = torch.tensor([0.0, -0.5, 0.5, 0.1])  # -dL + 0.074 (cost 74): .074, .574, -, -
    assert gn.channel_cost(model, "layers.7") == cost
    assert not g.decide(_view(model, 3)).plans  # not the end of a morphism phase
    theta5 = g.thetas["layers.5"].detach().clone()
    d = g.decide(_view(model, 4))
    assert [(type(p).__name__, p.group, p.channels) for p in d.plans] == [  # from the output down
        ("PruneChannels", "layers.7", [1]), ("SplitChannels", "layers.5", [2])]  # cap: max(1, floor(1.2)) = 1
    assert torch.equal(d.plans[1].thetas["layers.5.conv"][0], theta5[2])
    assert d.info["gauss_newton"]["splits"] == 1 and d.info["gauss_newton"]["prunes"] == 1
    assert not d.done and g.decide(_view(model, 12)).done


def test_phase_schedule_counts_phases_as_the_paper():
    g = GaussNewton(lambda_p=0.0, phases=4, n_phase=3)  # 4 phases: model, morphism, model, morphism
    assert [g.is_morphism_epoch(e) for e in range(12)] == [False] * 3 + [True] * 3 + [False] * 3 + [True] * 3
    assert [g.phase_of(e) for e in (0, 2, 3, 5, 6, 11)] == [1, 1, 2, 2, 3, 4]
    for bad in (1, 3, 0):
        with pytest.raises(GrowkitError, match="even number of phases"):
            GaussNewton(lambda_p=0.0, phases=bad, n_phase=3)


def test_paper_phases_and_learning_rate_drops():
    """30 phases of 20 epochs = 600 epochs, the rate 0.1 until epoch 300, 0.01 until 450, then 0.001."""
    from growkit.engine.config import TrainConfig
    from growkit.methods.gauss_newton.method import GaussNewtonConfig, build, scratch_config
    cfg = GaussNewtonConfig()
    assert (cfg.phases, cfg.phase_epochs, cfg.lr_drops, cfg.loss_ref) == (30, 20, [300, 450], "batch")
    grower, [phase], train = build(TrainConfig(model="VGG19", dataset="digits", lr=0.1), cfg)
    assert train.epochs == phase.epochs == 600 and grower.phases == 30
    rates = {e: phase.lr_at(e) for e in (0, 299, 300, 449, 450, 599)}
    assert rates == pytest.approx({0: 0.1, 299: 0.1, 300: 0.01, 449: 0.01, 450: 0.001, 599: 0.001})
    assert scratch_config(train, cfg, {"widths": [16] * 16}).epochs == 300  # the model phases' epochs
    _, [phase], _ = build(TrainConfig(model="VGG19", dataset="digits", lr=0.1),
                          GaussNewtonConfig(phases=4, phase_epochs=7, lr_drops=[13, 28]))
    assert [phase.lr_at(e) for e in (12, 13, 27)] == pytest.approx([0.1, 0.01, 0.01])  # 28 epochs: the drop at 28 never comes
    _, [phase], _ = build(TrainConfig(model="VGG19", dataset="digits", lr=0.1),
                          GaussNewtonConfig(phases=2, phase_epochs=3, lr_drops=[]))
    assert phase.schedule == "constant"


def test_configs_written_when_phases_counted_pairs_read_as_they_ran():
    from growkit.methods.gauss_newton.method import GaussNewtonConfig
    old = {"lambda_p": 1e-5, "phases": 3, "phase_epochs": 2, "top_fraction": 0.3, "theta_lr": 0.01,
           "theta_init": 0.01, "loss_ref": "sample", "scratch": False, "scratch_epochs": None}
    cfg = GaussNewtonConfig.from_dict(old)
    assert (cfg.phases, cfg.lr_drops, cfg.loss_ref) == (6, [], "sample")
    new = GaussNewtonConfig.from_dict(cfg.to_dict())
    assert new == cfg  # today's configs are read as written
    assert GaussNewtonConfig.from_dict({"lambda_p": 1e-4, "phases": 2}).phases == 2  # options, not an old file


def test_plans_carry_the_learned_theta_rows():
    model = create("VGG19", widths=4, in_channels=1, image_size=8)
    thetas = gn.init_thetas(model, generator=torch.Generator().manual_seed(1))
    plans = plans_for(model, {"layers.0": ([1, 3], [2])}, thetas)
    assert plans[0].channels == [1, 3] and torch.equal(plans[0].thetas["layers.0.conv"],
                                                       thetas["layers.0"].detach()[[1, 3]])
    assert plans[1].channels == [2]


def _hand_round(sd: dict, chosen: dict, thetas: dict, groups: dict) -> dict:
    """The state dict after one round, by hand: per layer the kept channels in order (split ones get
    w_in + theta), then the copies in split order (w_in - theta); BN entries follow their channel;
    consumer columns of a split channel are halved on both halves (in every row the consumer has by
    then); pruned channels vanish."""
    sd = {k: v.clone() for k, v in sd.items()}
    for g in reversed(list(groups)):  # from the output down: each theta meets the inputs it was learned on
        if g not in chosen:
            continue
        splits, prunes = chosen[g]
        grp = groups[g]
        c = sd[f"{grp.producers[0]}.weight"].shape[0]
        order = [k for k in range(c) if k not in prunes] + list(splits)
        n_kept = c - len(prunes)
        w = sd[f"{grp.producers[0]}.weight"]
        rows = []
        for pos, k in enumerate(order):
            if k in splits:
                sign = 1.0 if pos < n_kept else -1.0
                rows.append(w[k] + sign * thetas[g][splits.index(k)])
            else:
                rows.append(w[k])
        sd[f"{grp.producers[0]}.weight"] = torch.stack(rows)
        for m in grp.channelwise:
            for key in ("weight", "bias", "running_mean", "running_var"):
                if f"{m}.{key}" in sd:
                    sd[f"{m}.{key}"] = sd[f"{m}.{key}"][order]
        cons, per = grp.consumers[0]
        w = sd[f"{cons}.weight"]
        cols = []
        for k in order:
            col = w[:, k * per:(k + 1) * per]
            cols.append(col / 2 if k in splits else col)
        sd[f"{cons}.weight"] = torch.cat(cols, 1)
    return sd


@pytest.mark.parametrize("name", ["VGG19", "MobileNetV1"])
def test_one_round_of_many_splits_and_prunes_equals_a_hand_built_net_and_carries_the_optimizer(float64, name):
    from growkit.engine import optim
    from growkit.engine.config import TrainConfig
    torch.manual_seed(0)
    model = create(name, widths=5, in_channels=1, image_size=8).double()
    names = list(gn.sites(model))
    a, b, last = names[2], names[3], names[-1]  # a's consumer is b's producer: the edit maps chain
    chosen = {a: ([0, 3], [1]), b: ([4, 1], [0, 2]), last: ([2], [])}
    thetas = {g: 0.1 * torch.randn(model.get_submodule(gn.sites(model)[g].producer).weight.shape) for g in chosen}
    groups = {g: model.channel_groups()[g] for g in names}  # in the net's order
    opt = optim.build(model, TrainConfig(nesterov=True, weight_decay=1e-4), 0.1)
    x = torch.randn(4, 1, 8, 8)
    torch.nn.functional.cross_entropy(model.train()(x), torch.tensor([0, 1, 2, 3])).backward()
    opt.step()
    old_state, old_shapes = optim.state_by_name(model, opt), {n: p.shape for n, p in model.named_parameters()}
    old_mom = {n: s["momentum_buffer"].clone() for n, s in old_state.items()}
    # the theta rows of the split channels, in the order `chosen` lists them (as plans_for takes them)
    ref_sd = _hand_round(model.state_dict(), chosen, {g: thetas[g][list(chosen[g][0])] for g in chosen}, groups)
    edits = [p.apply(model) for p in plans_for(model, chosen, thetas)]
    hand = create(name, widths=[5 - len(chosen.get(g, ([], []))[1]) + len(chosen.get(g, ([], []))[0])
                                for g in names], in_channels=1, image_size=8).double()
    hand.load_state_dict(ref_sd)
    for k, v in hand.state_dict().items():
        assert torch.allclose(model.state_dict()[k], v, atol=1e-12), k
    model.eval(), hand.eval()
    assert torch.allclose(model(x), hand(x), atol=1e-12)
    opt2 = optim.carry(model, opt, edits, old_state, old_shapes)
    mom = optim.state_by_name(model, opt2)
    # the consumer of `a` (= producer of `b`): rows follow b's order, columns follow a's order
    pb = f"{gn.sites(model)[b].producer}.weight"
    order_a = [k for k in range(5) if k not in chosen[a][1]] + chosen[a][0]
    order_b = [k for k in range(5) if k not in chosen[b][1]] + chosen[b][0]
    n_a, n_b = 5 - len(chosen[a][1]), 5 - len(chosen[b][1])
    for i, kb in enumerate(order_b):
        for j, ka in enumerate(order_a):
            want = old_mom[pb][kb, ka] if i < n_b and j < n_a else torch.zeros_like(old_mom[pb][0, 0])
            assert torch.equal(mom[pb]["momentum_buffer"][i, j], want), (i, j)
    torch.nn.functional.cross_entropy(model.train()(x), torch.tensor([0, 1, 2, 3])).backward()
    opt2.step()  # the carried optimizer steps the edited net


@pytest.mark.slow
def test_kill_in_a_morphism_phase_and_resume_is_identical(tmp_path):
    from growkit.engine import checkpoint
    from growkit.runs import lifecycle as runs
    from growkit.engine.config import TrainConfig
    from growkit.methods.gauss_newton.method import GaussNewtonConfig

    class Kill(Exception):
        pass

    class KillAfter:
        def __init__(self, epoch):
            self.epoch = epoch

        def on_checkpoint(self, trainer, path):
            if trainer.loop.epoch == self.epoch:
                raise Kill()

    train = TrainConfig(model="VGG19", widths=4, dataset="digits", device="cpu", progress=False, seed=3)
    cfg = GaussNewtonConfig(lambda_p=1e-5, phases=4, phase_epochs=2, scratch=False)
    full = runs.run("gauss-newton", train, cfg, tmp_path / "full")
    with pytest.raises(Kill):  # epochs 3-4 learn theta: killed after epoch 3, inside the morphism phase
        runs.run("gauss-newton", train, cfg, tmp_path / "killed", callbacks=[KillAfter(3)])
    mid = checkpoint.load(tmp_path / "killed" / "checkpoint.pt")
    assert mid["loop"]["epoch"] == 3 and mid["grower"]["thetas"]  # theta is saved mid-phase
    resumed = runs.resume(tmp_path / "killed")
    assert resumed["arch"] == full["arch"] and resumed["params"] == full["params"]
    assert full["rounds"] and resumed["rounds"] == full["rounds"]
    a = checkpoint.load(tmp_path / "full" / "checkpoint.pt")["model"]
    b = checkpoint.load(tmp_path / "killed" / "checkpoint.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = [json.loads(s) for s in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    rows2 = [json.loads(s) for s in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert [r["train_loss"] for r in rows] == [r["train_loss"] for r in rows2]


def test_morphism_epochs_leave_the_model_frozen_and_average_with_weight_b_over_2n():
    torch.manual_seed(0)
    model = create("VGG19", widths=4, in_channels=1, image_size=8).train()
    gen = torch.Generator().manual_seed(0)
    xs, ys = torch.randn(10, 1, 8, 8, generator=gen), torch.randint(0, 10, (10,), generator=gen)
    batches = [(xs[:4], ys[:4]), (xs[4:8], ys[4:8]), (xs[8:], ys[8:])]  # N = 10

    def view_batches(n=None, split="train", augment=True, seed=None):
        return iter(batches)

    g = GaussNewton(lambda_p=0.0, phases=2, n_phase=1, seed=5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert g.replaces_epoch(SimpleNamespace(model=model, epoch=0, batches=view_batches)) is None  # a model epoch
    loss, acc = g.replaces_epoch(SimpleNamespace(model=model, epoch=1, batches=view_batches))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()) and model.training
    # the same epoch by hand, from the same theta: EMA weights 4/20, 4/20, 2/20 after the first value
    thetas = gn.init_thetas(model, scale=1e-2, generator=torch.Generator().manual_seed(5 * 1_000_003 + 0))
    adam, ema, losses = gn.ThetaAdam(1e-2), {}, []
    for i, (x, y) in enumerate(batches):
        est = gn.estimate(model, x, y, thetas, loss_ref="batch")  # the default, as eq. (1) reads
        m = len(y) / 20
        ema = {k: (est.split[k].detach() if i == 0 else (1 - m) * ema[k] + m * est.split[k].detach()) for k in thetas}
        adam.step(thetas, gn.theta_grads(est, thetas))
        losses.append(est.loss * len(y))
    for k in thetas:
        assert torch.allclose(g.ema_split[k], ema[k], atol=1e-7) and torch.allclose(g.thetas[k], thetas[k])
    assert loss == pytest.approx(sum(losses) / 10)


@pytest.mark.slow
def test_cli_runs_a_search_and_refuses_bad_input_before_writing(cli, tmp_path):
    out = tmp_path / "gn"
    bad = cli("gauss-newton", "--model", "NoSuchNet", "--dataset", "digits", "--out", out)
    assert bad.returncode == 2 and "NoSuchNet" in bad.stderr and "Traceback" not in bad.stderr
    assert not out.exists()
    bad = cli("gauss-newton", "--model", "VGG19", "--lambda-p", "-1", "--out", out)
    assert bad.returncode == 2 and "lambda_p" in bad.stderr and not out.exists()
    ok = cli("gauss-newton", "--model", "VGG19", "--seed-width", "4", "--dataset", "digits", "--lambda-p", "1e-5",
             "--phases", "2", "--phase-epochs", "1", "--no-scratch", "--device", "cpu", "--no-progress", "--out", out)
    assert ok.returncode == 0, ok.stderr
    res = json.loads((out / "result.json").read_text())
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["train"]["batch_size"] == 64 and cfg["train"]["nesterov"] and cfg["train"]["weight_decay"] == 1e-4
    assert res["epochs"] == 2 and len(res["rounds"]) == 1 and res["search_wall_s"] > 0
    assert res["arch"].startswith("VGG19[") and res["found_widths"] == res["spec"]["widths"]


def test_a_non_finite_estimate_stops_the_cli_with_one_line_and_keeps_the_last_checkpoint(tmp_path, monkeypatch,
                                                                                       capsys):
    """The unguarded rule (L = 0 for every sample) makes every term 0/0 or x/0: the morphism phase stops with
    exit 1 and a line naming the layer and the phase; the checkpoint of the last model epoch stays."""
    import torch

    from growkit import cli
    from growkit.engine import checkpoint
    monkeypatch.setattr(gn, "reference_loss", lambda losses, loss_ref: torch.zeros_like(losses.detach()))
    out = tmp_path / "gn"
    rc = cli.main(["gauss-newton", "--model", "LeNet5", "--dataset", "digits", "--lambda-p", "1e-4",
                   "--phases", "2", "--phase-epochs", "1", "--no-scratch", "--device", "cpu", "--no-progress",
                   "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and len(err.splitlines()) == 1, err
    assert "layer conv1" in err and "morphism phase 2 of 2 (epoch 2 of the search)" in err and "not finite" in err
    assert checkpoint.load(out / "checkpoint.pt")["loop"]["epoch"] == 1 and not (out / "result.json").exists()
