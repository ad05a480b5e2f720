"""The method registry, flags generated from config fields, callbacks and a pluggable objective."""
import copy
import json
import subprocess
import sys

import pytest
import torch

from growkit.methods.autogrow.method import network_morphism
from growkit.runs import lifecycle as runs, registry
from growkit.engine.callbacks import Callback
from growkit.cli import build_parser
from growkit.engine.config import TrainConfig
from growkit.methods.autogrow.config import AutoGrowConfig, NetworkMorphismConfig
from growkit.errors import GrowkitError
from growkit.engine.flags import values
from growkit.growers.base import Decision, Grower
from growkit.engine.schedule import Phase
from growkit.engine.passes import derive_seed
from growkit.engine.trainer import Trainer


def _parsed(*argv):
    a = build_parser().parse_args([*argv, "--out", "x"])
    train = TrainConfig(**values(a, "train", a.train_fields))
    own = a.method.config(**values(a, "method", a.own_fields)) if a.method.config else None
    return a, train, own


def test_flag_defaults_are_the_dataclass_defaults():
    _, train, _ = _parsed("train")
    assert train == TrainConfig()
    _, train, ag = _parsed("autogrow")
    assert train == TrainConfig() and ag == AutoGrowConfig()
    _, _, nm = _parsed("network-morphism", "--target-depths", "2-2-2")
    assert nm == NetworkMorphismConfig(target_depths=[2, 2, 2])


def test_flags_parse_lists_switches_and_respelled_names():
    _, t, _ = _parsed("train", "--depths", "2-3-4", "--widths", "16", "--milestones", "0.3,0.6", "--no-test",
                      "--no-progress", "--nesterov", "--lr", "0.05", "--no-augment", "--split-seed", "4")
    assert (t.depths, t.widths, t.milestones, t.eval_test, t.progress, t.nesterov, t.lr, t.augment,
            t.split_seed) == ([2, 3, 4], 16, [0.3, 0.6], False, False, True, 0.05, False, 4)
    _, t, ag = _parsed("autogrow", "--seed-depths", "1-2-1", "--finetune", "5", "--no-scale-J", "--K", "4",
                       "--J", "9", "--adam-lr", "0.01")
    assert t.depths == [1, 2, 1] and (ag.finetune_epochs, ag.scale_J_by_fraction, ag.K, ag.J, ag.adam_lr) == \
        (5, False, 4, 9, 0.01)
    _, t, ag = _parsed("autogrow", "--dataset", "imagenet")
    assert ag.scale_J_by_fraction is True and t.weight_decay == 1e-4  # the defaults: J scales; the authors' decay
    a, _, _ = _parsed("train")
    assert "depths" in a.train_fields
    a, _, _ = _parsed("autogrow")  # autogrow has no --depths and no --schedule: seed depths, phases' schedules
    for flag in ("--depths", "--schedule"):
        with pytest.raises(GrowkitError, match="unrecognized"):
            build_parser().parse_args(["autogrow", flag, "1", "--out", "x"])
    with pytest.raises(GrowkitError, match="target-depths"):  # required
        build_parser().parse_args(["network-morphism", "--out", "x"])


def test_registry_names_aliases_and_errors():
    assert registry.names()[:3] == ["train", "autogrow", "network-morphism"]
    with pytest.raises(GrowkitError, match="unknown run command 'grow'"):
        registry.get("grow")
    with pytest.raises(ValueError, match="already registered"):
        registry.register(registry.Method("train", "dup", lambda t, o: (None, None, t)))
    with pytest.raises(ValueError, match="former name of 'network-morphism'"):
        registry.register(registry.Method("morph", "dup", lambda t, o: (None, None, t)))
    old = {"command": "morph", "train": {"epochs": 3}, "morph": {"target_depths": [2, 2, 2], "shallow_epochs": 1,
                                                                "deeper_epochs": 2, "init": "zero"}}
    assert registry.normalize(old) == {"command": "network-morphism", "train": {"epochs": 3},
                                      "network-morphism": {"target_depths": [2, 2, 2], "shallow_epochs": 1,
                                                           "deeper_epochs": 2, "init": "zero", "init_std": 1.0}}


@pytest.mark.slow
def test_python_dash_m_growkit_runs_network_morphism(tmp_path):
    out = tmp_path / "nm"
    r = subprocess.run([sys.executable, "-m", "growkit", "network-morphism", "--depths", "1-1-1", "--target-depths",
                        "2-1-1", "--shallow-epochs", "1", "--deeper-epochs", "1", "--batch-size", "64", "--no-test",
                        "--no-progress", "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    cfg = json.loads((out / "config.json").read_text())
    res = json.loads((out / "result.json").read_text())
    assert cfg["command"] == "network-morphism" and cfg["network-morphism"]["target_depths"] == [2, 1, 1]
    assert cfg["train"]["epochs"] == 2 and res["arch"] == "Basic3ResNet-2-1-1" and res["epochs"] == 2
    r = subprocess.run([sys.executable, "-m", "growkit", "network-morphism", "--target-depths", "1-1",
                        "--out", str(tmp_path / "bad")], capture_output=True, text=True, timeout=600)
    assert r.returncode == 2 and "must extend" in r.stderr and not (tmp_path / "bad").exists()


class StopAfter(Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_checkpoint(self, trainer, path):
        if trainer.loop.epoch == self.epoch:
            raise KeyboardInterrupt


def _rows(out):
    return [{k: v for k, v in json.loads(line).items() if k not in ("wall_s", "epoch_s")}
            for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_a_run_written_as_morph_still_resumes(tmp_path):
    cfg = TrainConfig(depths=[1, 1, 1], batch_size=64, progress=False, eval_test=False)
    kw = dict(shallow_epochs=2, deeper_epochs=1, init="zero")
    full = network_morphism(cfg, [1, 2, 1], tmp_path / "full", **kw)
    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        network_morphism(cfg, [1, 2, 1], cut, callbacks=[StopAfter(1)], **kw)
    rc = json.loads((cut / "config.json").read_text())  # rewrite it the way older versions did
    opts = rc.pop("network-morphism")
    del opts["init_std"]
    rc.update(command="morph", morph=opts)
    (cut / "config.json").write_text(json.dumps(rc))
    res = runs.resume(cut)
    assert res["arch"] == full["arch"] == "Basic3ResNet-1-2-1" and res["val_acc"] == full["val_acc"]
    assert _rows(cut) == _rows(tmp_path / "full")


def test_callbacks_see_every_hook_in_order(tmp_path):
    calls = []

    class Spy(Callback):
        def on_fit_start(self, trainer):
            calls.append("fit_start")

        def on_epoch_start(self, trainer):
            calls.append(("epoch_start", trainer.loop.epoch))

        def on_batch(self, trainer, step, loss):
            assert loss.dim() == 0 and not loss.requires_grad
            calls.append("batch")

        def on_epoch(self, trainer, row):
            rows = (tmp_path / "metrics.jsonl").read_text().splitlines()
            calls.append(("epoch", row["epoch"], len(rows)))  # the recorder appended the row already

        def on_checkpoint(self, trainer, path):
            calls.append(("checkpoint", torch.load(path, weights_only=True)["format"] > 0))

        def on_fit_end(self, trainer):
            calls.append("fit_end")

    cfg = TrainConfig(depths=[1, 1, 1], epochs=2, batch_size=64, progress=False, eval_test=False)
    t = Trainer(cfg, tmp_path, callbacks=[Spy()])
    t.fit()
    n = t.data.size("train")
    steps = n // 64 + (1 if n % 64 >= 2 else 0)  # a last batch of one image is skipped (BatchNorm)
    epoch = [("epoch_start", 0)] + ["batch"] * steps + [("epoch", 1, 1), ("checkpoint", True)]
    epoch2 = [("epoch_start", 1)] + ["batch"] * steps + [("epoch", 2, 2), ("checkpoint", True)]
    assert calls == ["fit_start", *epoch, *epoch2, "fit_end"]


@pytest.mark.slow
def test_the_training_core_does_not_import_viz():
    code = ("import sys, growkit.engine.trainer, growkit.runs.lifecycle, growkit.methods; "
            "print(sorted(m for m in sys.modules if m.startswith('growkit.viz')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


def test_a_pluggable_objective_is_what_the_loop_minimises_and_reports():
    def mean_square_logits(model, x, y):
        return model(x).pow(2).mean()

    cfg = TrainConfig(depths=[1, 1, 1], epochs=1, batch_size=64, progress=False, lr=0.0, weight_decay=0.0)
    t = Trainer(cfg, None, objective=mean_square_logits)
    start = copy.deepcopy(t.model)
    row_loss = t.fit()["train_loss"]
    # with lr 0 the weights never move: the reported loss is the image-weighted mean of the objective over the
    # epoch's batches, each in train mode (batch statistics), recomputed here by hand in float64
    start.double().train()
    total, count = 0.0, 0
    with torch.no_grad():
        for x, y in t.data.train_batches(64, derive_seed(cfg.seed, 0)):
            total += start(x.double()).pow(2).mean().item() * len(y)
            count += len(y)
    assert row_loss == pytest.approx(total / count, rel=1e-5)
    # the probe differentiates the same objective (eval mode: running statistics)
    x0, _ = next(t.data.eval_batches("train", 64))
    with torch.no_grad():
        expect = copy.deepcopy(t.model).double().eval()(x0.double()).pow(2).mean().item()
    assert t.view({}).probe(1)["loss"] == pytest.approx(expect, rel=1e-5)


class TensorState(Grower):
    """Keeps a tensor in its state: the sum of the validation accuracies it has seen (float64)."""
    def __init__(self):
        super().__init__()
        self.total = torch.zeros((), dtype=torch.float64)

    def decide(self, view):
        self.total = self.total + view.row["val_acc"]
        return Decision()

    def state_dict(self):
        return {"total": self.total, "note": "json too"}

    def load_state_dict(self, s):
        assert s["note"] == "json too"
        self.total = s["total"]


def test_grower_tensor_state_and_extras_survive_an_interrupted_run(tmp_path):
    from growkit.engine import checkpoint

    class Extras(Callback):
        def on_epoch(self, trainer, row):
            trainer.extras["val_history"] = torch.tensor([r for r in trainer.extras.get("val_history", [])]
                                                         + [row["val_acc"]], dtype=torch.float64)

    def trainer(out, callbacks=()):
        cfg = TrainConfig(depths=[1, 1, 1], epochs=3, batch_size=64, progress=False, eval_test=False)
        return Trainer(cfg, out, phases=[Phase("grow", 0.05, grows=True, max_epochs=3)], grower=TensorState(),
                       callbacks=[Extras(), *callbacks])

    full = trainer(tmp_path / "full")
    full.fit()
    cut = trainer(tmp_path / "cut", [StopAfter(2)])
    with pytest.raises(KeyboardInterrupt):
        cut.fit()
    again = trainer(tmp_path / "cut")
    again.restore(checkpoint.load(tmp_path / "cut" / "checkpoint.pt"))
    assert again.extras["val_history"].shape == (2,)
    again.fit()
    rows = _rows(tmp_path / "full")
    assert _rows(tmp_path / "cut") == rows
    expect = sum(torch.tensor(r["val_acc"], dtype=torch.float64) for r in rows)  # summed by hand
    assert again.grower.total.dtype == torch.float64 and torch.equal(again.grower.total, full.grower.total)
    assert again.grower.total.item() == pytest.approx(expect.item(), rel=1e-12)
    torch.testing.assert_close(again.extras["val_history"], torch.tensor([r["val_acc"] for r in rows],
                                                                         dtype=torch.float64))
