import os
import subprocess
import sys

import pytest
import torch

# Small thread count: tests run on 2-core CI machines next to other work.
torch.set_num_threads(min(2, torch.get_num_threads()))


def run_cli(*args, cwd=None, timeout=600, env=None):
    """Run `growkit ...` in a fresh interpreter; returns CompletedProcess with text output."""
    e = dict(os.environ, PYTHONUNBUFFERED="1")
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "growkit.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=timeout, env=e)


@pytest.fixture
def float64():
    """Run a test with float64 as the default dtype (restored afterwards)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@pytest.fixture
def cli():
    return run_cli


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
