"""Checkpoint format 2 (optimizer kind and groups, grower state and extras with tensors) and format-1 reading."""
import json
import shutil
from pathlib import Path

import pytest
import torch

from growkit.engine import checkpoint
from growkit import models as M
from growkit.engine import optim
from growkit.engine.config import TrainConfig
from growkit.errors import GrowkitError

FORMAT1_RUN = Path(__file__).resolve().parents[1] / "data" / "format1_run"


def test_split_tensors_moves_every_tensor_to_a_table_and_merge_puts_it_back():
    a, b, c = torch.arange(3.0), torch.ones(2, 2), torch.tensor(5)
    obj = {"scores": [a, {"deep": b}], "n": 3, "name": "x", "pair": (c, 1.5), "none": None}
    j, table = checkpoint.split_tensors(obj)
    assert len(table) == 3 and json.loads(json.dumps(j)) == j  # JSON-ready
    assert j["scores"][0] == {"__tensor__": "/scores/0"} and j["n"] == 3
    back = checkpoint.merge_tensors(j, table)
    assert torch.equal(back["scores"][0], a) and torch.equal(back["scores"][1]["deep"], b)
    assert torch.equal(back["pair"][0], c) and back["pair"][1] == 1.5 and back["none"] is None


def test_format2_round_trip_of_optimizer_grower_and_extras(tmp_path):
    torch.manual_seed(0)
    m = M.create("LeNet5", in_channels=1, image_size=8, num_classes=5)
    cfg = TrainConfig(optimizer="adam", decay_bn_bias=False, optimizer_kw={"eps": 1e-7})
    opt = optim.build(m, cfg, 1e-3)
    m(torch.randn(3, 1, 8, 8)).sum().backward()
    opt.step()
    grower = {"K": 3, "scores": {"conv1": torch.randn(6)}, "history": [[1, torch.zeros(2)]]}
    extras = {"gamma": torch.randn(4, 4), "note": "lbi"}
    checkpoint.save(tmp_path / "c.pt", config={"x": 1}, model=m, optimizer=optim.export(m, opt),
                    loop={"epoch": 2}, grower=grower, extras=extras)
    raw = torch.load(tmp_path / "c.pt", weights_only=True)  # nothing but tensors and plain containers
    assert raw["format"] == 2 and "scores" in raw["grower_json"]
    s = checkpoint.load(tmp_path / "c.pt")
    assert s["format"] == 2 and s["loop"] == {"epoch": 2} and s["config"] == {"x": 1}
    assert s["grower"]["K"] == 3 and torch.equal(s["grower"]["scores"]["conv1"], grower["scores"]["conv1"])
    assert torch.equal(s["grower"]["history"][0][1], torch.zeros(2))
    assert torch.equal(s["extras"]["gamma"], extras["gamma"]) and s["extras"]["note"] == "lbi"
    o = s["optimizer"]
    assert o["kind"] == "adam" and [g["role"] for g in o["groups"]] == ["weight", "bias"]
    assert o["groups"][1]["weight_decay"] == 0.0 and o["groups"][0]["eps"] == 1e-7
    assert o["groups"][0]["names"] == ["conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight", "fc3.weight"]
    for name, p in m.named_parameters():
        for k, v in opt.state[p].items():
            assert torch.equal(o["state"][name][k], v), (name, k)
    m2 = M.from_spec(s["spec"])
    m2.load_state_dict(s["model"])
    opt2 = optim.restore(m2, TrainConfig(), o, 1e-3)
    assert isinstance(opt2, torch.optim.Adam) and opt2.param_groups[0]["eps"] == 1e-7


def test_a_foreign_file_is_a_one_line_error(tmp_path):
    torch.save({"format": 7}, tmp_path / "x.pt")
    with pytest.raises(GrowkitError, match="not a growkit checkpoint"):
        checkpoint.load(tmp_path / "x.pt")


def test_a_committed_format1_checkpoint_loads_as_sgd_and_resumes_to_the_end(tmp_path):
    """A mid-growth AutoGrow run (2 of 4 epochs) written by the format-1 code."""
    from growkit.runs import lifecycle as runs
    from growkit.engine.trainer import Trainer
    assert (FORMAT1_RUN / "checkpoint.pt").stat().st_size < 200_000
    s = checkpoint.load(FORMAT1_RUN / "checkpoint.pt")
    assert s["format"] == 1 and s["loop"]["epoch"] == 2 and s["spec"]["depths"] == [2, 2, 1]
    assert s["optimizer"]["kind"] == "sgd" and s["optimizer"]["groups"] is None and s["extras"] == {}
    raw = torch.load(FORMAT1_RUN / "checkpoint.pt", weights_only=True)["optimizer"]
    # the restored optimizer is the run's SGD with its momentum, bit for bit
    cfg = TrainConfig.from_dict(s["config"]["train"])
    t = Trainer(cfg, None)
    t.restore(s)
    assert optim.kind_of(t.opt) == "sgd" and all(g["momentum"] == 0.9 for g in t.opt.param_groups)
    got = optim.state_by_name(t.model, t.opt)
    assert got.keys() == raw.keys() and all(torch.equal(got[n]["momentum_buffer"], raw[n]["momentum_buffer"])
                                            for n in raw)
    run = tmp_path / "run"
    shutil.copytree(FORMAT1_RUN, run)
    from growkit.runs.recover import recover
    assert "marked as a growkit run" in recover(run)  # made before run markers: adopted once
    res = runs.resume(run)
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4] and [r["phase"] for r in rows[2:]] == ["finetune"] * 2
    assert res["epochs"] == 4 and res["arch"] == "Basic3ResNet-2-2-1"
    assert checkpoint.load(run / "checkpoint.pt")["format"] == 2
