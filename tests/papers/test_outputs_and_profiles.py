"""Where notebooks write, and what their ``profile`` parameter does.

``growkit figures`` works on the checkout it is run in (or ``--repo``), never the imported package's; only the cpu
profile writes the committed ``figures/``; every other profile and every notebook run by itself writes
``runs/<profile>/figures``; a notebook's ``profile`` parameter applies that profile's settings to the parameters
left at their defaults."""
import json
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest

from growkit.errors import GrowkitError
from growkit.papers import figures as F
from growkit.papers.profiles import notebook_defaults, notebook_settings

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "notebooks" / "00_quickstart.ipynb"


def _git(cwd, *args):
    return subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def clone(tmp_path):
    """A second checkout: the quickstart, a growkit/ marker (the kernel imports the growkit under test, as an
    editable install from another clone would) and a committed figures/ folder, under git."""
    root = tmp_path / "clone"
    (root / "growkit").mkdir(parents=True)
    (root / "growkit" / "__init__.py").write_text("")
    (root / "notebooks").mkdir()
    shutil.copy(QUICKSTART, root / "notebooks")
    (root / "figures").mkdir()
    shutil.copy(ROOT / "figures" / "quickstart_growth_curves.png", root / "figures")
    (root / "figures" / "README.md").write_text(F.INDEX_MARK + "\n# Figures and tables\n\ncommitted\n")
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "committed figures")
    return root


# ------------------------------------------------------------------ fast: the rules themselves

def test_only_the_cpu_profile_writes_the_committed_figures(tmp_path):
    root = tmp_path / "r"
    assert F.output_dirs("cpu", root) == (root / "figures", root / "runs" / "cpu")
    assert F.output_dirs("smoke", root) == (root / "runs" / "smoke" / "figures", root / "runs" / "smoke")
    assert F.output_dirs("paper", root) == (root / "runs" / "paper" / "figures", root / "runs" / "paper")
    assert F.output_dirs("paper", root, runs_dir=str(tmp_path / "x")) == (tmp_path / "x" / "paper" / "figures",
                                                                          tmp_path / "x" / "paper")
    assert F.output_dirs("smoke", root, out_dir=str(tmp_path / "f"))[0] == tmp_path / "f"


def test_the_checkout_is_the_one_you_stand_in_not_the_packages(clone, monkeypatch, tmp_path):
    monkeypatch.chdir(clone / "notebooks")
    assert F.repo_root() == clone != ROOT
    assert F.list_notebooks() == [clone / "notebooks" / "00_quickstart.ipynb"]
    assert F.repo_root(str(ROOT)) == ROOT  # --repo names another
    monkeypatch.chdir(tmp_path)
    with pytest.raises(GrowkitError, match="no growkit checkout .* --repo"):
        F.repo_root()
    with pytest.raises(GrowkitError, match="no notebooks/"):
        F.repo_root(str(tmp_path))


def test_jobs_default_is_one_per_usable_core_at_most_four():
    import os
    assert F.default_jobs() == max(1, min(len(os.sched_getaffinity(0)), 4))


def _namespace(**changed):
    ns = dict(notebook_defaults("00_quickstart"))
    ns.update(changed)
    return ns


def test_the_defaults_are_read_from_the_notebook_itself(clone, monkeypatch):
    monkeypatch.chdir(clone / "notebooks")
    d = notebook_defaults("00_quickstart")
    assert (d["profile"], d["K"], d["J"], d["finetune"], d["runs_dir"], d["figures_dir"], d["data_root"]) == (
        "cpu", 3, 10, 20, None, None, None)


def test_a_profile_sets_what_you_left_and_keeps_what_you_changed(clone, monkeypatch, capsys):
    monkeypatch.chdir(clone / "notebooks")
    got = notebook_settings("00_quickstart", _namespace(profile="paper", J=7))
    # the paper profile of the quickstart: CIFAR-10 on a GPU, J = 30, 60 fine-tuning epochs; J was changed
    assert got == {"dataset": "cifar10", "device": "cuda", "finetune": 60,
                   "runs_dir": str(clone / "runs" / "paper" / "00_quickstart"),
                   "figures_dir": str(clone / "runs" / "paper" / "figures")}
    out = capsys.readouterr().out
    assert "profile paper: dataset='cifar10'" in out and "kept as set: J=7" in out
    got = notebook_settings("00_quickstart", _namespace(profile="smoke"), quiet=True)
    assert {k: got[k] for k in ("K", "J", "finetune", "max_grow_epochs")} == dict(K=1, J=4, finetune=1,
                                                                                  max_grow_epochs=3)
    cpu = notebook_settings("00_quickstart", _namespace(runs_dir="/r", figures_dir="/f"), quiet=True)
    assert cpu == {}  # the cpu profile is the notebook's own defaults; paths given are kept


def test_a_profile_that_cannot_be_applied_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no notebook file to tell the defaults from
    with pytest.raises(GrowkitError, match="cannot be told from its defaults"):
        notebook_settings("00_quickstart", {"profile": "paper", "K": 3})
    with pytest.raises(GrowkitError, match="profile must be"):
        notebook_settings("00_quickstart", {"profile": "gpu"})
    got = notebook_settings("00_quickstart", {"profile": "cpu", "runs_dir": None, "figures_dir": None}, quiet=True)
    assert got == {"runs_dir": str(tmp_path / "runs" / "cpu" / "00_quickstart"),
                   "figures_dir": str(tmp_path / "runs" / "cpu" / "figures")}


# ------------------------------------------------------------------ slow: notebooks executed for real

def _figures_state(root):
    return _git(root, "status", "--porcelain", "--untracked-files=all", "figures/")


@pytest.mark.slow
def test_a_notebook_run_by_plain_papermill_applies_its_profile_and_leaves_figures_alone(clone):
    """As in JupyterLab: only profile = "smoke" set (and live off, headless), no growkit figures injecting."""
    import papermill as pm
    mine = _figures_state(ROOT)
    pm.execute_notebook(str(clone / "notebooks" / "00_quickstart.ipynb"), str(clone / "executed.ipynb"),
                        parameters={"profile": "smoke", "live": False}, cwd=str(clone / "notebooks"),
                        kernel_name="python3", progress_bar=False)
    run = clone / "runs" / "smoke" / "00_quickstart" / "quickstart"
    cfg = json.loads((run / "config.json").read_text())["autogrow"]
    assert (cfg["K"], cfg["J"], cfg["finetune_epochs"], cfg["max_grow_epochs"]) == (1, 4, 1, 3)  # the smoke settings
    res = json.loads((run / "result.json").read_text())
    assert res["grow_epochs"] <= 3 and res["stopped"] is None
    assert (clone / "runs" / "smoke" / "figures" / "quickstart_growth_curves.png").stat().st_size > 0
    assert _figures_state(clone) == "" and _figures_state(ROOT) == mine
    printed = "".join(o.get("text", "") for c in nbformat.read(clone / "executed.ipynb", 4).cells
                      for o in c.get("outputs", []))
    assert "profile smoke: K=1" in printed


@pytest.mark.slow
def test_growkit_figures_smoke_in_a_second_clone_writes_only_there_and_never_figures(clone, monkeypatch):
    mine = _figures_state(ROOT)
    monkeypatch.chdir(clone)
    assert F.run_figures("smoke", only="quickstart", jobs=1) == 0
    assert _figures_state(clone) == "" and _figures_state(ROOT) == mine
    figs = clone / "runs" / "smoke" / "figures"
    assert (figs / "quickstart_growth_curves.png").exists() and (figs / "README.md").exists()
    assert (clone / "runs" / "smoke" / "executed" / "00_quickstart.ipynb").exists()


def test_the_index_names_the_profile_that_made_it(tmp_path):
    (tmp_path / "a.md").write_text("| x |\n|---|\n| 1 |\n")
    F.write_index(tmp_path, "smoke")
    head = (tmp_path / "README.md").read_text().splitlines()[3]
    assert head.startswith("Regenerated by `growkit figures --profile smoke`") and "not the committed set" in head
    F.write_index(tmp_path)
    head = (tmp_path / "README.md").read_text().splitlines()[3]
    assert head.startswith("Regenerated by `growkit figures --profile cpu` (see the top-level README). Each")
