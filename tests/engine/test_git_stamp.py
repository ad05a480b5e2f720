"""The commit stamp of runs and figures: '-dirty' for changed code, not for regenerated figures."""
import shutil
import subprocess
from pathlib import Path

import pytest

import growkit.engine.records as records_mod

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def _git(cwd, *args):
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True).stdout.strip()


def test_dirty_means_changed_code_not_rewritten_figures(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    pkg = repo / "growkit" / "engine"
    pkg.mkdir(parents=True)
    (pkg / "records.py").write_text("x = 1\n")
    (repo / "figures").mkdir()
    (repo / "figures" / "table.md").write_text("old\n")
    _git(repo, "init", "-q")
    _git(repo, "-c", "user.email=a@b", "-c", "user.name=a", "add", ".")
    _git(repo, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "start")
    sha = _git(repo, "rev-parse", "HEAD")
    monkeypatch.setattr(records_mod, "__file__", str(pkg / "records.py"))  # git_commit asks the checkout it lives in
    assert records_mod.git_commit() == sha
    (repo / "figures" / "table.md").write_text("regenerated\n")  # a regeneration overwrites a committed figure
    (repo / "figures" / "new.png").write_text("new\n")
    assert records_mod.git_commit() == sha
    (pkg / "records.py").write_text("x = 2\n")  # a code change
    assert records_mod.git_commit() == sha + "-dirty"
