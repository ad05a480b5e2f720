"""GPT growth surgery: float64 function preservation (tied and untied), the non-preserving stackings
changing the logits and saying so, hand-built expected weights, optimizer state on hand-tracked rows
after width and depth edits, renames through composed edits, and one-line errors."""
import math
import types

import pytest
import torch

from growkit import models as M
from growkit.engine import gpt_surgery as GS
from growkit.engine import optim
from growkit.engine import surgery as S
from growkit.errors import GrowkitError
from growkit.models import gpt as G

pytestmark = pytest.mark.usefixtures("float64")

V, T = 13, 9


def gpt(tied=True, name="GPT-3L-2H-8", **kw):
    """A tiny GPT with every parameter (LayerNorm affine, biases included) moved well away from its
    default, so preservation is not an accident of zeros and ones."""
    torch.manual_seed(0)
    m = M.create(name, vocab_size=V, context=T, tied=tied, **kw).double()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return m


def tokens(t=T, seed=1):
    return torch.randint(0, V, (4, t), generator=torch.Generator().manual_seed(seed))


PRESERVING = {
    "insert_end": lambda: GS.InsertBlocks(2),
    "insert_after_0": lambda: GS.InsertBlocks(1, position=1),
    "insert_front": lambda: GS.InsertBlocks(3, position=0),
    "widen_x2_more_heads": lambda: GS.WidenGPT(2, heads="more"),
    "widen_x3_more_heads": lambda: GS.WidenGPT(3, heads="more"),
    "widen_x2_wider_heads": lambda: GS.WidenGPT(2, heads="wider"),
    "widen_x3_wider_heads": lambda: GS.WidenGPT(3, heads="wider"),
    "widen_x2_noise": lambda: GS.WidenGPT(2, noise=0.5, seed=3),
    "widen_x2_wider_noise": lambda: GS.WidenGPT(2, heads="wider", noise=0.5, seed=3),
    "widen_mlp_all": lambda: GS.WidenMLP(64),
    "widen_mlp_one_uneven": lambda: GS.WidenMLP(45, blocks=[1], noise=0.5),
    "split_mlp_units": lambda: S.SplitChannels("blocks.2.mlp", [0, 5, 31]),
    "widen_mlp_zero_outgoing": lambda: S.Widen("blocks.0.mlp", 4),
}


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
@pytest.mark.parametrize("op", list(PRESERVING))
def test_preserving_edits_leave_the_logits_identical_in_float64(op, tied):
    m = gpt(tied)
    x, short = tokens(), tokens(4, seed=2)
    before, before_short = m(x), m(short)
    plan = PRESERVING[op]()
    assert "not preserving" not in plan.describe(m)
    edit = plan.apply(m)
    if isinstance(plan, (GS.InsertBlocks, GS.WidenGPT, GS.WidenMLP)):
        assert edit.preserving is True and edit.summary()["preserving"] is True
    assert edit.after == m.arch != edit.before
    assert (m(x) - before).abs().max() <= 1e-12
    assert (m(short) - before_short).abs().max() <= 1e-12
    # the grown model rebuilt from its spec has the same parameters, and the same logits once loaded
    # (what a checkpoint resume does)
    rebuilt = M.from_spec(m.spec).double()
    assert rebuilt.spec == m.spec
    assert [(n, p.shape) for n, p in rebuilt.named_parameters()] == [(n, p.shape) for n, p in m.named_parameters()]
    rebuilt.load_state_dict(m.state_dict())
    assert torch.equal(rebuilt(x), m(x))


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
@pytest.mark.parametrize("plan,layers", [(GS.StackAll(), 6), (GS.StackAll(3), 9), (GS.StackMiddle(1), 4),
                                         (GS.StackMiddle(2), 5)])
def test_stacking_changes_the_logits_and_says_so(plan, layers, tied):
    m = gpt(tied)
    x = tokens()
    before = m(x)
    assert "(not preserving)" in plan.describe(m)
    edit = plan.apply(m)
    assert m.layers == layers and edit.after == f"GPT-{layers}L-2H-8"
    assert edit.preserving is False and edit.summary()["preserving"] is False
    assert (m(x) - before).abs().max() > 1e-3


def _block(m, i):
    return {n: p.detach().clone() for n, p in m.blocks[i].named_parameters()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_g_stack_block_i_plus_L_is_a_copy_of_block_i():
    m = gpt()
    old = [_block(m, i) for i in range(3)]
    edit = GS.StackAll().apply(m)
    for i in range(6):
        assert _same(_block(m, i), old[i % 3])
    assert m.blocks[3] is not m.blocks[0]  # copies, not shared modules
    assert sorted(edit.new) == sorted(f"blocks.{i}.{n}" for i in (3, 4, 5) for n in old[0])
    assert edit.moved == {} and edit.remap == {}


def test_midas_copies_the_middle_blocks_after_themselves():
    m = gpt(name="GPT-5L-2H-8")
    old = [_block(m, i) for i in range(5)]
    edit = GS.StackMiddle(2).apply(m)  # middle two of five: blocks 1, 2 (s = (5 - 2) // 2)
    assert [_same(_block(m, i), old[j]) for i, j in enumerate([0, 1, 2, 1, 2, 3, 4])] == [True] * 7
    assert {n.split(".")[1] for n in edit.new} == {"3", "4"}
    assert edit.moved == {f"blocks.{i + 2}.{n}": f"blocks.{i}.{n}" for i in (3, 4) for n in old[0]}


def test_inserted_blocks_have_zero_residual_branches_and_the_others_shift():
    m = gpt()
    old = [_block(m, i) for i in range(3)]
    edit = GS.InsertBlocks(2, position=1).apply(m)
    assert _same(_block(m, 0), old[0]) and _same(_block(m, 3), old[1]) and _same(_block(m, 4), old[2])
    for i in (1, 2):
        b = m.blocks[i]
        for t in (b.attn.proj.weight, b.attn.proj.bias, b.mlp.proj.weight, b.mlp.proj.bias):
            assert not t.any()
        assert b.attn.qkv.weight.std() > 0.01 and b.mlp.fc.weight.std() > 0.01  # drawn, not zero
    assert {n.split(".")[1] for n in edit.new} == {"1", "2"}
    assert edit.moved == {f"blocks.{i + 2}.{n}": f"blocks.{i}.{n}" for i in (1, 2) for n in old[0]}
    assert GS.InsertBlocks(1).apply(m).moved == {}  # appending shifts nothing


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
def test_widen_x2_more_heads_weights_by_hand(tied):
    m = gpt(tied)
    o = {n: p.detach().clone() for n, p in m.named_parameters()}
    GS.WidenGPT(2, heads="more").apply(m)
    p = dict(m.named_parameters())
    cat = lambda a, dim=0: torch.cat([a, a], dim)  # noqa: E731
    assert torch.equal(p["wte.weight"], cat(o["wte.weight"], 1))
    assert torch.equal(p["wpe.weight"], cat(o["wpe.weight"], 1))
    assert torch.equal(p["blocks.0.ln_1.weight"], cat(o["blocks.0.ln_1.weight"]))
    q, k, v = o["blocks.0.attn.qkv.weight"].split(8)
    assert torch.equal(p["blocks.0.attn.qkv.weight"], torch.cat([cat(cat(z, 1) / 2) for z in (q, k, v)]))
    assert torch.equal(p["blocks.0.mlp.proj.weight"], cat(cat(o["blocks.0.mlp.proj.weight"], 1) / 2))
    assert torch.equal(p["blocks.0.mlp.fc.bias"], cat(o["blocks.0.mlp.fc.bias"]))
    assert m.heads == 4 and m.blocks[0].attn.heads == 4 and m.mlp_hidden == [64] * 3 and m.arch == "GPT-3L-4H-16"
    if tied:  # the final LayerNorm carries the 1/2 the tied head cannot
        assert torch.equal(p["ln_f.weight"], cat(o["ln_f.weight"]) / 2)
        assert torch.equal(p["ln_f.bias"], cat(o["ln_f.bias"]) / 2)
    else:
        assert torch.equal(p["ln_f.weight"], cat(o["ln_f.weight"]))
        assert torch.equal(p["lm_head.weight"], cat(o["lm_head.weight"], 1) / 2)


def test_widen_wider_heads_copies_features_inside_each_head_and_scales_the_query():
    m = gpt()
    W = m.blocks[0].attn.qkv.weight.detach().clone()  # rows: q heads 0,1 (4 each), k, v
    GS.WidenGPT(2, heads="wider").apply(m)
    assert m.heads == 2 and m.arch == "GPT-3L-2H-16"
    new = m.blocks[0].attn.qkv.weight.detach()
    # new q rows: head 0 = old rows 0-3 twice, head 1 = old rows 4-7 twice; k and v likewise, unscaled
    q_rows = [0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 6, 7, 4, 5, 6, 7]
    rows = q_rows + [r + 8 for r in q_rows] + [r + 16 for r in q_rows]
    scale = torch.tensor([1 / math.sqrt(2)] * 16 + [1.0] * 32)[:, None]
    assert torch.allclose(new, torch.cat([W, W], 1)[rows] / 2 * scale, rtol=0, atol=1e-15)


@pytest.mark.parametrize("plan", [GS.WidenGPT(2, noise=0.3, noise_kind="iid"),
                                  GS.WidenGPT(2, heads="wider", noise=0.3, noise_kind="iid"),
                                  GS.WidenMLP(40, noise=0.3, noise_kind="iid")])
def test_iid_noise_changes_the_logits_and_says_so(plan):
    m = gpt()
    x = tokens()
    before = m(x)
    assert "not preserving: iid noise)" in plan.describe(m)
    edit = plan.apply(m)
    assert edit.preserving is False and S.compose_remaps([edit]).preserving is False
    assert (m(x) - before).abs().max() > 1e-4


def test_noise_breaks_the_symmetry_between_copies():
    x = tokens()
    grads = {}
    for noise in (0.0, 0.5):
        m = gpt()
        GS.WidenGPT(2, noise=noise, seed=1).apply(m)
        F = torch.nn.functional
        F.cross_entropy(m(x).reshape(-1, V), x.reshape(-1)).backward()
        w, g = m.blocks[1].mlp.fc.weight, m.blocks[1].mlp.fc.weight.grad
        grads[noise] = (w[:, :8] - w[:, 8:]).abs().max(), (g[:32] - g[32:]).abs().max()
    # plain copies: equal weights, equal gradients (to rounding), so they would stay equal
    assert grads[0.0][0] == 0 and grads[0.0][1] < 1e-14
    assert grads[0.5][0] > 0.01 and grads[0.5][1] > 1e-6


# ----------------------------------------------------------------------------- optimizer state

def _adam(m, steps=3):
    cfg = types.SimpleNamespace(optimizer="adam", optimizer_kw={}, decay_bn_bias=True, weight_decay=0.0)
    opt = optim.build(m, cfg, lr=1e-2)
    x = tokens()
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(m(x).reshape(-1, V), x.reshape(-1)).backward()
        opt.step()
    return opt


def _carry(m, opt, plans):
    state = {n: {k: (v.clone() if torch.is_tensor(v) else v) for k, v in s.items()}
             for n, s in optim.state_by_name(m, opt).items()}
    shapes = {n: p.shape for n, p in m.named_parameters()}
    edits = [p.apply(m) for p in plans]
    return state, optim.carry(m, opt, edits, state, shapes), edits


@pytest.mark.parametrize("heads", ["more", "wider"])
def test_adam_state_lands_on_hand_tracked_rows_after_widening(heads):
    m = gpt(tied=False)
    opt = _adam(m)
    old, new_opt, _ = _carry(m, opt, [GS.WidenGPT(2, heads=heads, noise=0.1)])
    new = optim.state_by_name(m, new_opt)
    assert set(new) == {n for n, _ in m.named_parameters()}
    # the embedding: old columns 0-7 keep their moments, the copies 8-15 start at zero
    for key in ("exp_avg", "exp_avg_sq"):
        o, n = old["wte.weight"][key], new["wte.weight"][key]
        assert torch.equal(n[:, :8], o) and not n[:, 8:].any()
        assert new["wte.weight"]["step"] == old["wte.weight"]["step"] == 3
    # qkv rows: the first copy of each old row keeps it, by hand for both head layouts
    if heads == "more":  # new heads 2, 3 copy heads 0, 1: within each of q, k, v, rows 0-7 old, 8-15 new
        first = {s + r: s // 2 + r for s in (0, 16, 32) for r in range(8)}
    else:  # head h's 8 rows are its 4 old rows then their copies
        first = {s + 8 * h + r: s // 2 + 4 * h + r for s in (0, 16, 32) for h in (0, 1) for r in range(4)}
    for key in ("exp_avg", "exp_avg_sq"):
        o, n = old["blocks.1.attn.qkv.weight"][key], new["blocks.1.attn.qkv.weight"][key]
        for r in range(48):
            if r in first:
                assert torch.equal(n[r, :8], o[first[r]]) and not n[r, 8:].any()
            else:
                assert not n[r].any()
    # MLP: hidden units 0-31 and stream features 0-7 old
    n, o = new["blocks.2.mlp.proj.weight"]["exp_avg"], old["blocks.2.mlp.proj.weight"]["exp_avg"]
    assert torch.equal(n[:8, :32], o) and not n[8:].any() and not n[:, 32:].any()
    # the carried optimizer steps the grown model
    x = tokens()
    new_opt.zero_grad()
    torch.nn.functional.cross_entropy(m(x).reshape(-1, V), x.reshape(-1)).backward()
    new_opt.step()
    assert all(new_opt.state[p]["step"] == (4 if n in old else 1) for n, p in m.named_parameters())


def test_adam_state_follows_shifted_blocks_through_composed_edits():
    m = gpt()
    opt = _adam(m)
    # insert two blocks in front, widen everything, then append one: old block b ends at index b + 2
    old, new_opt, edits = _carry(m, opt, [GS.InsertBlocks(2, position=0), GS.WidenGPT(2), GS.InsertBlocks(1)])
    comp = S.compose_remaps(edits)
    assert comp.moved["blocks.4.mlp.fc.weight"] == "blocks.2.mlp.fc.weight"
    assert comp.remap["blocks.4.mlp.fc.weight"][0].tolist() == list(range(32)) + [-1] * 32
    assert "blocks.0.mlp.fc.weight" in comp.new and "blocks.5.ln_1.bias" in comp.new
    assert "blocks.0.mlp.fc.weight" not in comp.remap  # widened after its creation: still new whole
    assert comp.preserving is True
    new = optim.state_by_name(m, new_opt)
    for b in range(3):
        o = old[f"blocks.{b}.mlp.fc.weight"]["exp_avg"]
        n = new[f"blocks.{b + 2}.mlp.fc.weight"]["exp_avg"]
        assert torch.equal(n[:32, :8], o) and not n[32:].any() and not n[:, 8:].any()
    for b in (0, 1, 5):
        assert f"blocks.{b}.mlp.fc.weight" not in new  # Adam fills a fresh parameter's state lazily


def test_renames_chain_when_a_later_insertion_shifts_an_earlier_new_block():
    m = gpt()
    e1 = GS.InsertBlocks(1, position=3).apply(m)  # new block 3
    e2 = GS.InsertBlocks(1, position=0).apply(m)  # shifts everything: the new block is now 4
    comp = S.compose_remaps([e1, e2])
    assert {n.split(".")[1] for n in comp.new} == {"0", "4"}
    assert {k.split(".")[1]: v.split(".")[1] for k, v in comp.moved.items()} == {"1": "0", "2": "1", "3": "2"}


# ----------------------------------------------------------------------------- counts after growth

def test_counts_follow_the_grown_model():
    m = gpt()
    GS.WidenGPT(2).apply(m)
    GS.InsertBlocks(1).apply(m)
    GS.WidenMLP(80, blocks=[0]).apply(m)
    hidden = [80, 64, 64, 64]
    assert m.mlp_hidden == hidden
    assert G.macs_per_token(m) == G.formula_macs_per_token(4, 16, V, T, hidden)
    assert m.num_params() == G.formula_params(4, 16, V, T, hidden, tied=True)


# ----------------------------------------------------------------------------- errors

@pytest.mark.parametrize("plan,msg", [
    (GS.InsertBlocks(0), "k must be an integer >= 1"),
    (GS.InsertBlocks(1, position=4), r"position must be in 0..3"),
    (GS.StackAll(1), "times >= 2"),
    (GS.StackMiddle(4), "cannot copy 4 middle blocks"),
    (GS.WidenGPT(1), "factor >= 2"),
    (GS.WidenGPT(2, heads="many"), "heads must be 'more' or 'wider'"),
    (GS.WidenGPT(2, noise=-1.0), "noise must be a finite number >= 0"),
    (GS.WidenGPT(2, noise=0.1, noise_kind="uniform"), "noise_kind must be 'zero_sum' or 'iid'"),
    (GS.WidenMLP(32), "needs hidden > 32"),
    (GS.WidenMLP(40, blocks=[3]), "block 3 does not exist"),
    (GS.WidenMLP(40, blocks=[1, 1]), "distinct blocks"),
])
def test_bad_plans_are_one_line_errors_and_change_nothing(plan, msg):
    m = gpt()
    spec = m.spec
    with pytest.raises(GrowkitError, match=msg) as e:
        plan.apply(m)
    assert "\n" not in str(e.value) and m.spec == spec


def test_gpt_surgery_refuses_other_models():
    with pytest.raises(GrowkitError, match="needs a GPT, got DepthNet"):
        GS.StackAll().apply(M.create("Basic3ResNet-1-1-1"))


# ----------------------------------------------------------------------------- every pair of edits
# Each edit as an operation on labels, written independently of the index maps: ``blocks`` holds the old
# index of each block (None: a block the step created), ``stream`` the old feature of each residual-stream
# position that keeps its state (None: a copy or new), ``hidden[i]`` the same for block i's MLP units.

def _lab_insert_front(lab, m):
    k = 2
    lab["blocks"][:0] = [None] * k
    lab["hidden"][:0] = [[None] * m.mlp_hidden[0]] * k
    return GS.InsertBlocks(k, position=0)


def _lab_stack_all(lab, m):
    lab["blocks"] += [None] * m.layers
    lab["hidden"] += [[None] * h for h in m.mlp_hidden]
    return GS.StackAll()


def _lab_stack_middle(lab, m):
    k = 2
    s = (m.layers - k) // 2
    lab["blocks"][s + k:s + k] = [None] * k
    lab["hidden"][s + k:s + k] = [[None] * h for h in m.mlp_hidden[s:s + k]]
    return GS.StackMiddle(k)


def _lab_widen(lab, m):
    lab["stream"] += [None] * len(lab["stream"])
    lab["hidden"] = [h + [None] * len(h) for h in lab["hidden"]]
    return GS.WidenGPT(2, noise=0.1)


def _lab_widen_mlp(lab, m):
    width = max(m.mlp_hidden) + 5
    lab["hidden"] = [h + [None] * (width - len(h)) for h in lab["hidden"]]
    return GS.WidenMLP(width)


LABEL_OPS = {"insert_front": _lab_insert_front, "stack_all": _lab_stack_all, "stack_middle": _lab_stack_middle,
             "widen": _lab_widen, "widen_mlp": _lab_widen_mlp}
PRESERVES = {"insert_front", "widen", "widen_mlp"}


@pytest.mark.parametrize("first,second", [(a, b) for a in LABEL_OPS for b in LABEL_OPS])
def test_every_pair_of_gpt_edits_carries_adam_state_to_hand_tracked_entries(first, second):
    m = gpt(tied=False, name="GPT-4L-2H-8")
    opt = _adam(m)
    x = tokens()
    before = m(x).detach()
    old = {n: {k: (v.clone() if torch.is_tensor(v) else v) for k, v in s.items()}
           for n, s in optim.state_by_name(m, opt).items()}
    shapes = {n: p.shape for n, p in m.named_parameters()}
    lab = {"blocks": list(range(4)), "stream": list(range(8)), "hidden": [list(range(32)) for _ in range(4)]}
    edits = []
    for op in (first, second):
        plan = LABEL_OPS[op](lab, m)
        edits.append(plan.apply(m))
    new_opt = optim.carry(m, opt, edits, old, shapes)
    new = optim.state_by_name(m, new_opt)
    assert S.compose_remaps(edits).preserving is ({first, second} <= PRESERVES)
    if {first, second} <= PRESERVES:
        assert (m(x) - before).abs().max() <= 1e-12
    assert m.layers == len(lab["blocks"]) and m.dim == len(lab["stream"])
    assert m.mlp_hidden == [len(h) for h in lab["hidden"]]
    for i, b in enumerate(lab["blocks"]):
        for key in ("exp_avg", "exp_avg_sq"):
            got = new.get(f"blocks.{i}.mlp.fc.weight", {}).get(key)
            want = torch.zeros(len(lab["hidden"][i]), len(lab["stream"]))
            if b is not None:
                src = old[f"blocks.{b}.mlp.fc.weight"][key]
                for r, hr in enumerate(lab["hidden"][i]):
                    for c, sc in enumerate(lab["stream"]):
                        if hr is not None and sc is not None:
                            want[r, c] = src[hr, sc]
            assert torch.equal(want, torch.zeros_like(want) if got is None else got), (i, b, key)
    e = new["wte.weight"]["exp_avg"]
    keep = [c for c, s in enumerate(lab["stream"]) if s is not None]
    copies = [c for c, s in enumerate(lab["stream"]) if s is None]
    assert torch.equal(e[:, keep], old["wte.weight"]["exp_avg"][:, [lab["stream"][c] for c in keep]])
    assert not e[:, copies].any()
