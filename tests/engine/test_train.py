"""The training loop: optimizer state across growth, kill-and-resume, NaN stop, schedules."""
import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from growkit import models as M
from growkit.engine import optim, surgery
from growkit.engine import checkpoint
from growkit.engine.config import TrainConfig
from growkit.errors import NonFiniteLoss
from growkit.growers.base import Decision, Grower
from growkit.engine.schedule import Phase
from growkit.engine.trainer import Trainer


def test_lr_schedules_match_hand_values():
    # c-AutoGrow: reset to lr at the start of every K-epoch interval, 0.1x at K//2, 0.01x at 3K//4
    p = Phase("grow", 0.1, "staircase", period=4)
    assert [round(p.lr_at(t), 6) for t in range(8)] == [0.1, 0.1, 0.01, 0.001, 0.1, 0.1, 0.01, 0.001]
    k3 = Phase("grow", 0.1, "staircase", period=3)
    assert [round(k3.lr_at(t), 6) for t in range(3)] == [0.1, 0.01, 0.001]
    # fine-tuning for 10 epochs: decays at epoch 5 and 7 (= int(0.75 * 10))
    f = Phase("finetune", 0.1, "staircase", epochs=10)
    assert [round(f.lr_at(t), 6) for t in range(10)] == [0.1] * 5 + [0.01] * 2 + [0.001] * 3
    c = Phase("c", 0.2, "cosine", epochs=4)
    assert [round(c.lr_at(t), 6) for t in (0, 1, 2, 4)] == [0.2, round(0.1 * (1 + 2 ** -0.5), 6), 0.1, 0.0]
    assert Phase("x", 0.05).lr_at(123.4) == 0.05


def _sgd_state_after_steps(model, steps=3):
    torch.manual_seed(1)
    opt = optim.sgd(model, 0.1)
    for _ in range(steps):
        x = torch.randn(8, 1, 8, 8)
        loss = model(x).logsumexp(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return opt


def test_optimizer_state_carried_across_growth_equals_hand_built_state():
    torch.manual_seed(0)
    model = M.create("Basic3ResNet-1-1-1", in_channels=1, image_size=8)
    opt = _sgd_state_after_steps(model)
    old = {n: {k: v.clone() for k, v in s.items()} for n, s in optim.state_by_name(model, opt).items()}
    shapes = {n: p.shape for n, p in model.named_parameters()}
    edits = [surgery.AppendBlock(1).apply(model), surgery.Widen("stages.0.0.conv1", 2).apply(model)]
    new_opt = optim.carry(model, opt, edits, old, shapes)
    got = optim.state_by_name(model, new_opt)
    for name, p in model.named_parameters():
        buf = got[name]["momentum_buffer"]
        assert buf.shape == p.shape
        if name.startswith("stages.1.1."):  # the appended block: fresh, zero momentum
            expect = torch.zeros_like(p)
        elif name == "stages.0.0.conv1.weight":  # 16 -> 18 output filters: old rows kept, new rows zero
            expect = torch.cat([old[name]["momentum_buffer"], torch.zeros(2, 16, 3, 3)])
        elif name in ("stages.0.0.bn1.weight", "stages.0.0.bn1.bias"):
            expect = torch.cat([old[name]["momentum_buffer"], torch.zeros(2)])
        elif name == "stages.0.0.conv2.weight":  # consumer: 16 -> 18 input channels
            expect = torch.cat([old[name]["momentum_buffer"], torch.zeros(16, 2, 3, 3)], dim=1)
        else:
            expect = old[name]["momentum_buffer"]
        torch.testing.assert_close(buf, expect, rtol=0, atol=0, msg=name)
    assert new_opt.param_groups[0]["momentum"] == 0.9 and new_opt.param_groups[0]["weight_decay"] == 5e-4


class GrowOnce(Grower):
    """Grows stage 2 after the second epoch and records the optimizer state it saw just before."""
    def __init__(self):
        super().__init__()
        self.trainer, self.before = None, None

    def decide(self, view):
        if view.epoch == 2:
            self.before = {n: s["momentum_buffer"].clone()
                           for n, s in optim.state_by_name(self.trainer.model, self.trainer.opt).items()}
            return Decision([surgery.AppendBlock(2)], done=True)
        return Decision()

    def state_dict(self):
        return {}

    def load_state_dict(self, s):
        pass


def test_trainer_growth_keeps_momentum_of_old_parameters_in_memory():
    cfg = TrainConfig(depths=[1, 1, 1], epochs=3, progress=False, eval_test=False)
    g = GrowOnce()
    seen = {}

    class Spy:  # called by the trainer right after it applied the growth and carried the optimizer
        def on_growth(self, trainer, event):
            seen.update({n: s["momentum_buffer"].clone()
                         for n, s in optim.state_by_name(trainer.model, trainer.opt).items()})

    t = Trainer(cfg, None, phases=[Phase("grow", 0.1, grows=True), Phase("finetune", 0.1, epochs=1)],
                grower=g, callbacks=[Spy()])
    g.trainer = t
    t.fit()
    assert t.model.arch == "Basic3ResNet-1-1-2" and t.loop.epoch == 3
    assert t.loop.events[0]["edits"][0]["new_params"] == 6  # conv1, bn1 (2), conv2, bn2 (2)
    new = {n for n in seen if n.startswith("stages.2.1.")}
    assert len(new) == 6 and set(seen) == set(g.before) | new
    for name, buf in seen.items():
        expect = torch.zeros_like(buf) if name in new else g.before[name]
        torch.testing.assert_close(buf, expect, rtol=0, atol=0, msg=name)


def _run(args, **kw):
    return subprocess.Popen([sys.executable, "-m", "growkit.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def _rows(out):
    return [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]


def _comparable(rows):
    return [{k: v for k, v in r.items() if k not in ("wall_s", "epoch_s")} for r in rows]


def _kill_after_rows(proc, out, n_rows, timeout=300):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if (out / "metrics.jsonl").exists() and len((out / "metrics.jsonl").read_text().splitlines()) >= n_rows:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return
        if proc.poll() is not None:
            raise AssertionError(f"run ended before it could be killed: {proc.stderr.read()}")
        time.sleep(0.01)
    raise AssertionError("timed out waiting for rows")


def _full_then_killed(script, args, tmp_path, after_rows):
    """``python script DIR *args`` run to its end in ``tmp_path/full``, and in ``tmp_path/cut`` killed (SIGKILL)
    once ``after_rows`` rows are written, then run again there. Returns (full, cut, the full run's stdout, the
    killed process, the rerun's CompletedProcess)."""
    full, cut = tmp_path / "full", tmp_path / "cut"
    for d in (full, cut):
        d.mkdir()
    run = lambda d: subprocess.Popen([sys.executable, script, d, *args], stdout=subprocess.PIPE,  # noqa: E731
                                     stderr=subprocess.PIPE, text=True)
    p = run(full)
    out_full, err = p.communicate()
    assert p.returncode == 0, err
    killed = run(cut)
    _kill_after_rows(killed, cut, after_rows)
    return full, cut, out_full, killed, subprocess.run([sys.executable, script, cut, *args], capture_output=True,
                                                       text=True)


@pytest.mark.parametrize("command", [
    ["train", "--model", "Basic3ResNet", "--depths", "2-2-2", "--epochs", "6"],
    ["autogrow", "--model", "Basic3ResNet", "--K", "1", "--J", "2", "--init", "gau", "--finetune", "2",
     "--max-grow-epochs", "4"],
], ids=["train", "autogrow"])
@pytest.mark.slow
def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path, command):
    args = [*command, "--batch-size", "16", "--no-progress", "--seed", "7"]
    full, cut = tmp_path / "full", tmp_path / "cut"
    p = _run([*args, "--out", full])
    assert p.wait() == 0, p.stderr.read()
    p = _run([*args, "--out", cut])
    _kill_after_rows(p, cut, 3)
    assert p.returncode == -signal.SIGKILL and not (cut / "result.json").exists()
    # killed after row 3 was appended: the checkpoint is epoch 3, or epoch 2 if the kill fell between the
    # row and the checkpoint (then resume drops row 3 and trains epoch 3 again)
    assert checkpoint.load(cut / "checkpoint.pt")["loop"]["epoch"] >= 2
    r = subprocess.run([sys.executable, "-m", "growkit.cli", "resume", cut], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert _comparable(_rows(cut)) == _comparable(_rows(full))
    a = checkpoint.load(full / "checkpoint.pt")["model"]
    b = checkpoint.load(cut / "checkpoint.pt")["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ra, rb = (json.loads((d / "result.json").read_text()) for d in (full, cut))
    assert ra["arch"] == rb["arch"] and ra["test_acc"] == rb["test_acc"]
    assert ra.get("growth_events") == rb.get("growth_events")


def test_nan_loss_stops_and_leaves_the_last_good_checkpoint(tmp_path):
    cfg = TrainConfig(depths=[1, 1, 1], epochs=4, progress=False)
    phases = [Phase("ok", 0.1, epochs=2), Phase("explode", 1e38, epochs=2)]
    t = Trainer(cfg, tmp_path, phases=phases)
    with pytest.raises(NonFiniteLoss, match="epoch 3"):
        t.fit()
    assert checkpoint.load(tmp_path / "checkpoint.pt")["loop"]["epoch"] == 2
    assert len(_rows(tmp_path)) == 2 and not (tmp_path / "result.json").exists()


@pytest.mark.slow
def test_nan_loss_from_the_cli_exits_1_with_one_line(cli, tmp_path):
    # valid settings (an lr of 1e38 is refused up front) that diverge in epoch 1 on digits, seeded
    r = cli("train", "--depths", "1-1-1", "--lr", "10", "--momentum", "0.999", "--weight-decay", "0.9",
            "--batch-size", "16", "--epochs", "2", "--out", tmp_path / "run", "--no-progress")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert "loss became nan at epoch 1" in line and "no epoch finished" in line and "checkpoint" not in line
    assert not (tmp_path / "run").exists() and list(tmp_path.iterdir()) == []  # nothing claimed, nothing left


def test_cpu_training_is_deterministic():
    cfg = TrainConfig(depths=[1, 1, 1], epochs=2, progress=False, seed=3)
    a = Trainer(cfg).fit()
    b = Trainer(cfg).fit()
    assert a["val_acc"] == b["val_acc"] and a["train_loss"] == b["train_loss"]


WIDTH_RUN = '''
import json, sys
from pathlib import Path
from growkit.engine import checkpoint, surgery as S
from growkit.engine.config import TrainConfig
from growkit.growers.base import Decision, Grower
from growkit.engine.schedule import Phase
from growkit.engine.trainer import Trainer


class Widths(Grower):
    """Width edits on adjacent groups at epochs 1-3 of the growing phase, several per step."""
    def decide(self, *a):
        epoch = a[0] if isinstance(a[0], int) else a[0].epoch
        plans = {1: [S.Widen("layers.1", 2), S.Widen("layers.2", 1), S.SplitChannels("layers.1", [0, 5])],
                 2: [S.PruneChannels("layers.1", [1, 6]), S.SplitChannel("layers.2", 0), S.Widen("layers.3", 3)],
                 3: [S.SplitChannels("layers.12", [1, 2]), S.PruneChannel("layers.12", 0)]}.get(epoch, [])
        return Decision(plans, done=epoch >= 3)

    def state_dict(self):
        return {}

    def load_state_dict(self, s):
        pass


out, kind = Path(sys.argv[1]), sys.argv[2]
lr = 0.05 if kind == "sgd" else 2e-3
cfg = TrainConfig(model="VGG16", widths=4, model_kw={"hidden": [6]}, optimizer=kind,
                  decay_bn_bias=kind == "sgd", batch_size=64, epochs=5, seed=7, progress=False, eval_test=False)
t = Trainer(cfg, out, phases=[Phase("grow", lr, grows=True), Phase("finetune", lr, "staircase", epochs=2)],
            grower=Widths())
if (out / "checkpoint.pt").exists():
    t.restore(checkpoint.load(out / "checkpoint.pt"))
print(json.dumps(t.fit()["train_loss"]))
'''


@pytest.mark.parametrize("kind", ["sgd", "adam"])
@pytest.mark.slow
def test_sigkill_mid_width_growth_then_resume_is_bit_for_bit(tmp_path, kind):
    script = tmp_path / "width_run.py"
    script.write_text(WIDTH_RUN)
    # killed after the first growth step, before the second and third
    full, cut, out_full, p, r = _full_then_killed(script, [kind], tmp_path, 2)
    assert p.returncode == -signal.SIGKILL
    assert r.returncode == 0, r.stderr
    assert r.stdout == out_full
    a, b = checkpoint.load(full / "checkpoint.pt"), checkpoint.load(cut / "checkpoint.pt")
    assert a["loop"]["epoch"] == b["loop"]["epoch"] == 5 and a["spec"] == b["spec"]
    assert a["spec"]["widths"][:4] == [4, 6, 6, 7] and a["spec"]["widths"][12] == 5
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    oa, ob = a["optimizer"], b["optimizer"]
    assert oa["kind"] == ob["kind"] == kind and oa["groups"] == ob["groups"]
    assert oa["state"].keys() == ob["state"].keys()
    for n, s in oa["state"].items():
        assert s.keys() == ob["state"][n].keys() and all(torch.equal(v, ob["state"][n][k]) for k, v in s.items())
    assert _comparable(_rows(cut)) == _comparable(_rows(full))
