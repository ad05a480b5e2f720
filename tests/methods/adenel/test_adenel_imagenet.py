"""AdeNeL's Table 2 notebook without ImageNet: it stops before any run with one line naming exactly the missing
parts of the documented layout (<root>/imagenet/{train,val}) and where to get them; nothing is substituted."""
from pathlib import Path

import nbformat
import pytest

from growkit.papers.figures import run_notebook

NB = Path(__file__).resolve().parents[3] / "notebooks" / "adenel_05_imagenet.ipynb"

pytestmark = pytest.mark.slow  # every test here executes a notebook


@pytest.mark.parametrize("present,missing", [((), ["imagenet/train", "imagenet/val"]),
                                              (("imagenet/train",), ["imagenet/val"])])
def test_missing_imagenet_is_named_and_nothing_runs(tmp_path, present, missing):
    data, runs, figs = tmp_path / "data", tmp_path / "runs", tmp_path / "figs"
    data.mkdir()
    for sub in present:
        (data / sub).mkdir(parents=True)
    params = dict(profile="paper", dataset="imagenet", data_root=str(data), device="cpu", runs_dir=str(runs),
                  figures_dir=str(figs))
    status = run_notebook(NB, params, tmp_path / "executed.ipynb", timeout=300)
    assert status["status"] == "failed", status
    cells = nbformat.read(tmp_path / "executed.ipynb", as_version=4).cells
    failed = [c for c in cells if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert len(failed) == 1 and "check_files" in failed[0].source  # the dataset check, before any run
    err = next(o for o in failed[0].outputs if o.get("output_type") == "error")
    msg = err["evalue"]  # the whole line (the run summary keeps 300 characters)
    assert err["ename"] == "MissingData"  # a GrowkitError
    assert msg.startswith("imagenet: missing ") and "\n" not in msg
    assert f"missing {len(missing)} file(s) under {data}: {', '.join(missing)};" in msg
    assert "https://image-net.org" in msg and "/imagenet/{train,val}/<wnid>/*.JPEG" in msg and "--download" not in msg
    assert not runs.exists() and not figs.exists()  # no run directory, no table made from other data
