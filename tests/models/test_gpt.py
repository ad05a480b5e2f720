"""The GPT: forward/backward, spec round trip, parameter and multiply-add counts against hand counts,
one-line errors for bad specs, and a float64 reference forward written from the equations."""
import math

import pytest
import torch

from growkit import models as M
from growkit.errors import GrowkitError
from growkit.models import gpt as G

TINY = dict(vocab_size=11, context=8)


@pytest.mark.parametrize("name", M.list_models("text"))
@pytest.mark.parametrize("tied", [True, False])
def test_forward_backward_every_text_model(name, tied):
    torch.manual_seed(0)
    m = M.create(name, layers=2, heads=2, dim=8, tied=tied, **TINY)
    idx = torch.randint(0, 11, (3, 8))
    y = m(idx)
    assert y.shape == (3, 8, 11) and torch.isfinite(y).all()
    torch.nn.functional.cross_entropy(y.reshape(-1, 11), idx.reshape(-1)).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())
    assert all(p.grad.abs().sum() > 0 for p in m.parameters())


def test_name_is_layers_heads_dim_and_spec_round_trips():
    m = M.create("gpt-3L-2H-12", **TINY)
    assert (m.layers, m.heads, m.dim, m.mlp_hidden) == (3, 2, 12, [48, 48, 48])
    assert m.arch == "GPT-3L-2H-12"
    assert m.spec == {"name": "GPT", "layers": 3, "heads": 2, "dim": 12, "mlp_hidden": 48, "vocab_size": 11,
                      "context": 8, "tied": True, "dropout": 0.0}
    for kw in ({}, {"tied": False, "mlp_hidden": [8, 16, 24], "dropout": 0.1}, {"mlp_ratio": 2}):
        a = M.create("GPT-3L-2H-12", **TINY, **kw)
        b = M.from_spec(a.spec)
        assert b.spec == a.spec
        assert [(n, p.shape) for n, p in a.named_parameters()] == [(n, p.shape) for n, p in b.named_parameters()]
    assert M.create("GPT-3L-2H-12", mlp_hidden=[8, 16, 24], **TINY).arch == "GPT-3L-2H-12-mlp8/16/24"
    assert M.create("GPT-3L-2H-12", mlp_ratio=2, **TINY).arch == "GPT-3L-2H-12-mlp24"
    assert "GPT" in M.list_models("text") and "GPT" not in M.list_models("image")


def test_tied_head_is_the_embedding_matrix():
    m = M.create("GPT-1L-1H-4", **TINY)
    assert m.lm_head is None and "lm_head.weight" not in dict(m.named_parameters())
    u = M.create("GPT-1L-1H-4", tied=False, **TINY)
    assert u.lm_head.weight.shape == (11, 4) and u.lm_head.bias is None


@pytest.mark.parametrize("name,kw,msg", [
    ("GPT-4L-4H", {}, "looks like GPT-4L-4H-128"),
    ("GPT-4L-4H-12x", {}, "looks like GPT-4L-4H-128"),
    ("GPT-4-4-128", {}, "looks like GPT-4L-4H-128"),
    ("GPT", {}, "needs layers, heads and dim"),
    ("GPT-0L-4H-128", {}, "layers must be an integer >= 1"),
    ("GPT-2L-3H-128", {}, "not a multiple of heads"),
    ("GPT-2L-4H-128", {"layers": 3}, "disagrees with layers=3"),
    ("GPT-2L-4H-128", {"vocab_size": 0}, "vocab_size must be"),
    ("GPT-2L-4H-128", {"context": -1}, "context must be"),
    ("GPT-2L-4H-128", {"mlp_hidden": [4]}, "needs 2 entries"),
    ("GPT-2L-4H-128", {"mlp_hidden": 8, "mlp_ratio": 2}, "not both"),
    ("GPT-2L-4H-128", {"tied": "yes"}, "tied must be true or false"),
    ("GPT-2L-4H-128", {"dropout": 1.0}, r"dropout must be a number in \[0, 1\)"),
    ("GPT-2L-4H-128", {"image_size": 8}, "does not take image_size"),
])
def test_bad_specs_are_one_line_errors(name, kw, msg):
    with pytest.raises(GrowkitError, match=msg) as e:
        M.create(name, **kw)
    assert "\n" not in str(e.value)


def test_too_long_a_sequence_is_a_one_line_error():
    m = M.create("GPT-1L-1H-4", **TINY)
    with pytest.raises(GrowkitError, match="longer than the GPT's context 8"):
        m(torch.zeros(1, 9, dtype=torch.long))


def hand_params(L, d, V, T, m, tied):
    emb = V * d + T * d
    block = 2 * (2 * d) + (d * 3 * d + 3 * d) + (d * d + d) + (d * m + m) + (m * d + d)
    return emb + L * block + 2 * d + (0 if tied else V * d)


@pytest.mark.parametrize("L,H,d,V,T,tied", [(2, 2, 16, 11, 8, True), (3, 4, 24, 50, 16, False)])
def test_parameter_count_equals_hand_count(L, H, d, V, T, tied):
    m = M.create(f"GPT-{L}L-{H}H-{d}", vocab_size=V, context=T, tied=tied)
    assert m.num_params() == hand_params(L, d, V, T, 4 * d, tied)
    assert G.formula_params(L, d, V, T, tied=tied) == hand_params(L, d, V, T, 4 * d, tied)
    # GPT-2 small (124M with the 50257-token vocabulary, 1024 positions, tied): the published count
    assert hand_params(12, 768, 50257, 1024, 3072, True) == 124_439_808


@pytest.mark.parametrize("L,H,d,V,T,m", [(2, 2, 16, 11, 8, 64), (3, 4, 24, 50, 16, 40)])
def test_macs_per_token_equal_the_hand_formula(L, H, d, V, T, m):
    # per token: q,k,v 3 d^2, attention out d^2, MLP 2 d m, scores T d, weighted values T d; logits d V
    hand = L * (3 * d * d + d * d + 2 * d * m + T * d + T * d) + d * V
    model = M.create(f"GPT-{L}L-{H}H-{d}", vocab_size=V, context=T, mlp_hidden=m)
    assert G.macs_per_token(model) == hand
    assert G.formula_macs_per_token(L, d, V, T, m) == hand
    assert G.model_formula_macs_per_token(model) == hand
    # a shorter context: only attention's share changes
    assert G.macs_per_token(model, context=T // 2) == hand - L * d * T
    # the registry counts one sequence of `context` tokens; training is forward + backward = 3x
    assert M.count_macs(model) == T * hand
    assert G.macs_per_token(model, training=True) == 3 * hand
    stats = M.model_stats(model)
    assert stats["macs_per_token"] == hand and stats["train_macs_per_token"] == 3 * hand
    assert G.train_flops(hand, tokens=1000) == 6 * hand * 1000
    assert G.macs_report(model) == {"arch": model.arch, "context": T, "params": model.num_params(),
                                    "forward_macs_per_token": hand, "forward_macs_per_token_formula": hand,
                                    "train_macs_per_token": 3 * hand, "train_flops_per_token": 6 * hand}


def test_macs_of_gpt2_small_formula_is_12_layer_12_d2_plus_attention():
    # 12 d^2 per layer when m = 4d: 12 * 12 * 768^2 = 84.9M, attention 2*T*d per layer, logits d*V
    d, L, T, V = 768, 12, 1024, 50257
    assert G.formula_macs_per_token(L, d, V, T) == L * 12 * d * d + L * 2 * T * d + d * V


def reference_logits(m: G.GPT, idx: torch.Tensor) -> torch.Tensor:
    """The GPT written out from its equations with explicit softmax and causal mask, float64."""
    def ln(x, mod):
        mu = x.mean(-1, keepdim=True)
        var = ((x - mu) ** 2).mean(-1, keepdim=True)
        return (x - mu) / torch.sqrt(var + mod.eps) * mod.weight + mod.bias

    def lin(x, mod):
        return x @ mod.weight.T + (mod.bias if mod.bias is not None else 0)

    t = idx.shape[1]
    x = m.wte.weight[idx] + m.wpe.weight[:t]
    mask = torch.ones(t, t, dtype=torch.bool).tril()
    for b in m.blocks:
        h = ln(x, b.ln_1)
        d = h.shape[-1]
        qkv = lin(h, b.attn.qkv)
        q, k, v = qkv[..., :d], qkv[..., d:2 * d], qkv[..., 2 * d:]
        hd = d // b.attn.heads
        outs = []
        for j in range(b.attn.heads):
            s = slice(j * hd, (j + 1) * hd)
            sc = q[..., s] @ k[..., s].transpose(-1, -2) / math.sqrt(hd)
            sc = sc.masked_fill(~mask, float("-inf"))
            outs.append(torch.softmax(sc, -1) @ v[..., s])
        x = x + lin(torch.cat(outs, -1), b.attn.proj)
        g = lin(ln(x, b.ln_2), b.mlp.fc)
        g = 0.5 * g * (1 + torch.erf(g / math.sqrt(2)))
        x = x + lin(g, b.mlp.proj)
    x = ln(x, m.ln_f)
    return x @ (m.wte.weight if m.tied else m.lm_head.weight).T


@pytest.mark.parametrize("tied", [True, False])
def test_forward_equals_a_reference_written_from_the_equations(tied):
    torch.manual_seed(3)
    m = M.create("GPT-2L-2H-8", tied=tied, mlp_hidden=[12, 20], **TINY).double()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.3 * torch.randn_like(p))
    idx = torch.randint(0, 11, (2, 7))
    assert torch.allclose(m(idx), reference_logits(m, idx), rtol=0, atol=1e-12)
