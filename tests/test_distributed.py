"""Training under torchrun: N CPU processes (gloo) compute what one process computes.

Every N-process result is compared with the one-process answer computed independently (the plain
path, no launcher, no process group, BatchNorm's own kernel), never with the distributed path itself.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ddp_worker

ROOT = Path(__file__).resolve().parents[1]
WORKER = str(Path(ddp_worker.__file__).resolve())


def torchrun(n: int, *args, timeout: int = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1",
               PYTHONPATH=str(ROOT), PYTHONWARNINGS="ignore::FutureWarning")
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}",
                           *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


def close(a, b, what):
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12, msg=lambda m: f"{what}: {m}")


# --------------------------------------------------------------------------- (a) one step, float64

@pytest.mark.parametrize("world,n,batch", [(2, 11, 8), (3, 10, 8)])
def test_float64_steps_with_an_uneven_last_batch_equal_one_process(tmp_path, world, n, batch):
    """11 images in batches of 8: the last batch of 3 splits 2/1 over 2 ranks; 10 images over 3 ranks:
    the last batch of 2 splits 1/1/0, so a rank trains on nothing and must still join every collective."""
    r = torchrun(world, WORKER, "step", tmp_path, n, batch)
    assert r.returncode == 0, r.stderr[-3000:]
    ref = ddp_worker.step(n, batch)  # one process: the whole global batch through BatchNorm's own kernel
    bn_var = [k for k in ref["params"] if k.endswith("running_var")]
    assert bn_var and all(not torch.allclose(ref["params"][k], torch.ones_like(ref["params"][k])) for k in bn_var)
    for rank in range(world):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        assert len(got["grads"]) == len(ref["grads"]) == 2
        for s, (g, h) in enumerate(zip(got["grads"], ref["grads"])):
            for k in h:
                close(g[k], h[k], f"rank {rank} step {s} grad {k}")
        for k in ref["params"]:  # weights after two SGD steps, BN running mean/var (unbiased, global count)
            close(got["params"][k].double(), ref["params"][k].double(), f"rank {rank} {k}")
        for k in ref["momentum"]:
            close(got["momentum"][k], ref["momentum"][k], f"rank {rank} momentum {k}")
        assert got["count"] == ref["count"] == n and got["hits"] == ref["hits"]
        assert got["loss_sum"] == pytest.approx(ref["loss_sum"], rel=1e-6)
        assert got["val"][0] == pytest.approx(ref["val"][0], rel=1e-12) and got["val"][1] == ref["val"][1]
