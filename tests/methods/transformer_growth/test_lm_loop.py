"""The language-model loop: loss, schedule, AdamW, counted multiply-adds, kill + resume, records.

Expected values are hand-derived (a cross-entropy written out in float64, the schedule's formula at chosen
steps, AdamW's update written out, the multiply-adds of the stand-in's matrices) or come from a second,
uninterrupted run."""
import json
import math

import numpy as np
import pytest
import torch

from growkit.engine import optim
from growkit.engine.schedule import warmup_decay
from growkit.errors import GrowkitError
from growkit.methods.transformer_growth import LMConfig, LMRun, count_lm_macs, lm_loss
from growkit.runs import lifecycle

from growkit.models import create

from .conftest import TEXT, Killed, start_killed


def small(corpus, **kw):
    base = dict(model="GPT-1L-2H-8", dataset=f"text:{corpus}", context=8,
                batch_size=4, steps=12, eval_every=4, eval_windows=5, lr=3e-3, warmup=2, device="cpu")
    base.update(kw)
    return LMConfig(**base)


def test_loss_is_the_hand_cross_entropy_in_float64(float64):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 5, (2, 3), generator=g)
    hand = 0.0
    for b in range(2):
        for t in range(3):
            row = logits[b, t].tolist()
            hand += math.log(sum(math.exp(v) for v in row)) - row[int(y[b, t])]
    assert abs(lm_loss(logits, y).item() - hand / 6) < 1e-12
    assert lm_loss(logits.to(torch.bfloat16), y).dtype == torch.float32  # bf16 logits are widened


def test_validation_loss_is_the_hand_cross_entropy_over_the_windows(corpus, float64):
    run = LMRun(small(corpus, eval_windows=3))
    # the windows by hand: the text's last ceil(10 %) characters, starts floor(i * (m - 1) / 2)
    n_val = math.ceil(0.1 * len(TEXT))
    val = TEXT[len(TEXT) - n_val:]
    m = n_val - 8
    chars = sorted(set(TEXT))
    hand, count = 0.0, 0
    for i in range(3):
        s = i * (m - 1) // 2
        x = torch.tensor([[chars.index(c) for c in val[s:s + 8]]])
        y = [chars.index(c) for c in val[s + 1:s + 9]]
        with torch.no_grad():
            out = run.model(x)[0].double()
        for t in range(8):
            row = out[t]
            hand += (torch.logsumexp(row, 0) - row[y[t]]).item()
            count += 1
    assert abs(run.evaluate() - hand / count) < 1e-12


def test_schedule_by_hand():
    # 10 steps, warmup 2: steps 0, 1 at 0.5 lr and lr; then p = (s - 2) / 8
    assert warmup_decay(0, 10, 1.0, 2) == 0.5 and warmup_decay(1, 10, 1.0, 2) == 1.0
    assert warmup_decay(2, 10, 1.0, 2) == 1.0
    assert abs(warmup_decay(6, 10, 1.0, 2) - 0.5) < 1e-15  # p = 1/2: cos(pi/2) = 0
    assert abs(warmup_decay(4, 10, 1.0, 2, "cosine") - (1 + math.cos(math.pi / 4)) / 2) < 1e-15
    assert abs(warmup_decay(8, 10, 2.0, 2, "linear") - 2.0 * (1 - 6 / 8)) < 1e-15
    assert warmup_decay(10, 10, 1.0, 2, "linear") == 0.0  # fully decayed when the budget ends
    assert abs(warmup_decay(6, 10, 1.0, 2, "cosine", final=0.2) - 0.6) < 1e-15
    assert warmup_decay(7, 10, 1.0, 2, "constant") == 1.0


def test_adamw_step_is_the_hand_update_and_skips_layernorm_and_biases(float64):
    lin, ln = torch.nn.Linear(2, 1), torch.nn.LayerNorm(1)
    model = torch.nn.Sequential(lin, ln)
    cfg = LMConfig(weight_decay=0.5, betas=[0.8, 0.9], device="cpu").optimizer_config()
    opt = optim.build(model, cfg, lr=0.1)
    assert optim.kind_of(opt) == "adamw"
    assert {g["role"]: g["weight_decay"] for g in opt.param_groups} == {"weight": 0.5, "bn": 0.0, "bias": 0.0}
    w0, b0 = lin.weight.detach().clone(), lin.bias.detach().clone()
    gw, gb = torch.tensor([[0.3, -0.2]]), torch.tensor([0.7])
    lin.weight.grad, lin.bias.grad = gw.clone(), gb.clone()
    opt.step()
    # step 1: m = (1 - b1) g, v = (1 - b2) g^2, bias-corrected back to g and g^2: the update is g / (|g| + eps)
    eps = 1e-8
    want_w = w0 * (1 - 0.1 * 0.5) - 0.1 * gw / (gw.abs() + eps)
    want_b = b0 - 0.1 * gb / (gb.abs() + eps)
    assert torch.allclose(lin.weight, want_w, atol=1e-12, rtol=0)
    assert torch.allclose(lin.bias, want_b, atol=1e-12, rtol=0)


@pytest.mark.parametrize("name, d, L, V, T", [("GPT-1L-2H-8", 8, 1, 16, 8), ("GPT-2L-4H-16", 16, 2, 50, 12)])
def test_counted_macs_are_the_hand_count(name, d, L, V, T):
    m = create(name, vocab_size=V, context=T)
    # per block: q, k, v 3 d^2, output d^2, MLP 2 x 4 d^2, attention scores and sum 2 T d; logits d V
    fwd = L * (12 * d * d + 2 * T * d) + d * V
    assert count_lm_macs(m, T, training=False) == fwd
    assert count_lm_macs(m, T, training=True) == 3 * fwd
    assert count_lm_macs(m, 4, training=False) == L * (12 * d * d + 2 * 4 * d) + d * V  # a shorter window


def test_rows_count_tokens_and_macs(corpus, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    run = LMRun(small(corpus), out)
    res = run.fit()
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [4, 8, 12] and [r["epoch"] for r in rows] == [1, 2, 3]
    assert [r["tokens"] for r in rows] == [4 * 32, 8 * 32, 12 * 32]
    per_token = 3 * (12 * 64 + 2 * 8 * 8 + 8 * run.data.info.vocab_size)
    assert [r["train_macs"] for r in rows] == [4 * 32 * per_token, 8 * 32 * per_token, 12 * 32 * per_token]
    assert all(np.isfinite(r["val_loss"]) and np.isfinite(r["train_loss"]) for r in rows)
    assert rows[-1]["lr"] == pytest.approx(warmup_decay(11, 12, 3e-3, 2))
    assert res["val_loss"] == rows[-1]["val_loss"] and res["train_macs"] == rows[-1]["train_macs"]
    assert rows[0]["val_loss"] > rows[-1]["val_loss"]  # it learns something in 12 steps


def test_budget_in_tokens_rounds_up_to_whole_steps(corpus):
    cfg = small(corpus, steps=None, tokens=100)  # 100 / (4 * 8) -> 4 steps
    assert cfg.total_steps() == 4
    with pytest.raises(GrowkitError, match="one budget .*, not steps and tokens"):
        small(corpus, tokens=100).validate()



def _weights(run):
    return {k: v.clone() for k, v in run.model.state_dict().items()}


def _strip(rows):
    return [{k: v for k, v in r.items() if k not in ("interval_s", "wall_s", "tokens_per_s")} for r in rows]


def test_kill_and_resume_is_identical(corpus, tmp_path):
    from growkit.methods.transformer_growth import own_loop
    cfg = small(corpus)
    full = own_loop.start(cfg, tmp_path / "full")
    calls = []

    def kill_after_second(run):
        calls.append(run.state.step)
        return len(calls) == 2

    start_killed(cfg, tmp_path / "killed", kill_after_second)
    assert calls == [4, 8] and not (tmp_path / "killed" / "result.json").exists()
    resumed = lifecycle.resume(tmp_path / "killed")
    a = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert _strip(a) == _strip(b) and len(a) == 3
    assert resumed["val_loss"] == full["val_loss"] and resumed["train_macs"] == full["train_macs"]
    from growkit.engine import checkpoint
    wa = checkpoint.load(tmp_path / "full" / "checkpoint.pt")
    wb = checkpoint.load(tmp_path / "killed" / "checkpoint.pt")
    for k in wa["model"]:
        assert torch.equal(wa["model"][k], wb["model"][k]), k
    for n in wa["optimizer"]["state"]:
        for key, v in wa["optimizer"]["state"][n].items():
            assert torch.equal(v, wb["optimizer"]["state"][n][key]), (n, key)


def test_bad_config_values_are_one_line_errors(corpus):
    for kw, match in [(dict(warmup=12), "warmup must be"), (dict(final_lr=1.0), "final_lr"),
                      (dict(decay="step"), "decay must be"), (dict(optimizer="nope"), "unknown optimizer"),
                      (dict(context=0), "context must be"), (dict(eval_windows=0), "eval_windows"),
                      (dict(model="Basic3ResNet"), "not a language model; valid: GPT"),
                      (dict(model="GPT-2L-3H-8"), "not a multiple of heads")]:
        with pytest.raises(GrowkitError, match=match):
            LMRun(small(corpus, **kw))


def test_counted_macs_of_a_model_other_than_gpt():
    V, d = 11, 5
    m = torch.nn.Sequential(torch.nn.Embedding(V, d), torch.nn.Linear(d, V, bias=False))
    assert count_lm_macs(m, 4, training=False) == d * V
    assert count_lm_macs(m, 4, training=True) == 3 * d * V  # weight and input gradients of the one matmul


class GrowOnce:
    """Widens the model (function-preserving) after the first evaluation, then inserts a block after the
    second: two growth events inside a run."""

    def __init__(self):
        self.done = []

    def after_eval(self, run, row):
        from growkit.engine.gpt_surgery import InsertBlocks, WidenGPT
        if row["epoch"] == 1 and "widen" not in self.done:
            run.grow([WidenGPT(factor=2, noise=0.01, seed=3)], {"by": "test"})
            self.done.append("widen")
        elif row["epoch"] == 2 and "insert" not in self.done:
            run.grow([InsertBlocks(k=1)])
            self.done.append("insert")

    def state_dict(self):
        return {"done": list(self.done)}

    def load_state_dict(self, state):
        self.done = list(state["done"])


@pytest.mark.parametrize("kill_at", [4, 8])
def test_growth_events_carry_state_count_macs_and_resume_identically(corpus, tmp_path, kill_at):
    from growkit.engine import checkpoint
    from growkit.methods.transformer_growth.own_loop import load_last
    cfg = small(corpus)
    (tmp_path / "full").mkdir()
    full = LMRun(cfg, tmp_path / "full", grower=GrowOnce())
    res = full.fit()
    assert [e["after"] for e in res["growth_events"]] == ["GPT-1L-4H-16", "GPT-2L-4H-16"]
    assert [e["step"] for e in res["growth_events"]] == [4, 8]
    rows = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert [r["arch"] for r in rows] == ["GPT-1L-2H-8", "GPT-1L-4H-16", "GPT-2L-4H-16"]
    assert [len(r["events"]) for r in rows] == [1, 1, 0]
    V, T = full.data.info.vocab_size, 8

    def per_token(L, d):  # training multiply-adds per token, by hand
        return 3 * (L * (12 * d * d + 2 * T * d) + d * V)
    assert [r["macs_per_token"] for r in rows] == [per_token(1, 8), per_token(1, 16), per_token(2, 16)]
    assert [r["macs_per_token_formula"] for r in rows] == [r["macs_per_token"] for r in rows]
    want = 4 * 32 * (per_token(1, 8) + per_token(1, 16) + per_token(2, 16))
    assert res["train_macs"] == want and rows[-1]["train_macs"] == want
    # killed after a checkpoint (one or both growth events behind it), rebuilt and resumed
    (tmp_path / "killed").mkdir()

    def kill(run):
        if run.state.step == kill_at:
            raise Killed()
    with pytest.raises(Killed):
        LMRun(cfg, tmp_path / "killed", grower=GrowOnce()).fit(on_checkpoint=kill)
    again = LMRun(cfg, tmp_path / "killed", grower=GrowOnce())
    assert load_last(again, tmp_path / "killed")
    assert again.model.arch == {4: "GPT-1L-4H-16", 8: "GPT-2L-4H-16"}[kill_at]
    assert again.grower.done == {4: ["widen"], 8: ["widen", "insert"]}[kill_at]
    res2 = again.fit()
    rows2 = [json.loads(x) for x in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert _strip(rows2) == _strip(rows)
    assert res2["val_loss"] == res["val_loss"]
    a, b = (checkpoint.load(tmp_path / d / "checkpoint.pt") for d in ("full", "killed"))
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k


def test_named_runs_are_reused_when_the_config_is_the_same(corpus, tmp_path):
    from growkit.methods.transformer_growth.own_loop import cached
    cfg = small(corpus, steps=4)
    first = cached(tmp_path, "a", cfg)
    stamp = (tmp_path / "a" / "result.json").stat().st_mtime_ns
    again = cached(tmp_path, "a", small(corpus, steps=4))
    assert again == json.loads((tmp_path / "a" / "result.json").read_text())
    assert (tmp_path / "a" / "result.json").stat().st_mtime_ns == stamp  # not trained again
    assert again["val_loss"] == first["val_loss"]
    other = cached(tmp_path, "a", small(corpus, steps=4, lr=1e-2))  # another lr: a new run replaces it
    assert other["config"]["lm"]["lr"] == 1e-2 and other["val_loss"] != first["val_loss"]


@pytest.mark.gpu
def test_cuda_run_uses_bf16_and_fused_adamw_and_resumes(corpus, tmp_path):
    """On CUDA: bf16 autocast, the fused AdamW kernel, and a checkpoint that restores onto it (the fused
    kernel wants its step counts on the device)."""
    from growkit.methods.transformer_growth.own_loop import load_last
    cfg = small(corpus, device="cuda")
    (tmp_path / "full").mkdir()
    full = LMRun(cfg, tmp_path / "full")
    assert full.amp and full.opt.defaults.get("fused")
    res = full.fit()
    (tmp_path / "killed").mkdir()

    def kill(run):
        if run.state.step == 4:
            raise Killed()
    with pytest.raises(Killed):
        LMRun(cfg, tmp_path / "killed").fit(on_checkpoint=kill)
    again = LMRun(cfg, tmp_path / "killed")
    assert load_last(again, tmp_path / "killed")
    assert all(v.device.type == "cuda" for s in again.opt.state.values() for v in s.values() if torch.is_tensor(v))
    res2 = again.fit()
    assert res2["steps"] == res["steps"] and res2["train_macs"] == res["train_macs"]
    assert res2["val_loss"] == pytest.approx(res["val_loss"], rel=1e-3)  # (GPU kernels need not be bitwise)


def test_window_positions_drawn_in_chunks_give_the_same_run(corpus, monkeypatch):
    import growkit.methods.transformer_growth.loop as loop
    a = LMRun(small(corpus))
    a.fit()
    monkeypatch.setattr(loop, "STARTS_CHUNK", 3)  # intervals of 4 steps: chunks of 3 and 1
    b = LMRun(small(corpus))
    b.fit()
    assert _strip([a.state.last_row]) == _strip([b.state.last_row])
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))


def test_growkit_plot_draws_lm_runs_over_training_macs(corpus, tmp_path):
    from growkit.viz.compare import plot_runs
    (tmp_path / "g").mkdir()
    LMRun(small(corpus), tmp_path / "g", grower=GrowOnce()).fit()
    rows = [json.loads(x) for x in (tmp_path / "g" / "metrics.jsonl").read_text().splitlines()]
    fig = plot_runs([tmp_path / "g"])
    loss, params, macs = fig.axes
    assert list(loss.lines[0].get_xdata()) == [r["train_macs"] for r in rows]
    assert list(loss.lines[0].get_ydata()) == [r["val_loss"] for r in rows]
    assert list(params.lines[1].get_xdata()) == [r["train_macs"] for r in rows if r["events"]]
    assert list(macs.lines[0].get_ydata()) == [r["macs_per_token"] for r in rows]
    assert "training multiply-adds" in macs.get_xlabel()
    import matplotlib.pyplot as plt
    plt.close(fig)
    from growkit.cli import main
    (tmp_path / "img").mkdir()
    assert main(["train", "--depths", "1-1-1", "--epochs", "1", "--device", "cpu", "--no-progress",
                 "--out", str(tmp_path / "img" / "r")]) == 0
    with pytest.raises(GrowkitError, match="cannot share a figure"):
        plot_runs([tmp_path / "g", tmp_path / "img" / "r"])
