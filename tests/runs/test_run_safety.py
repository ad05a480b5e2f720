"""Nothing of a user's is lost when runs overlap: two runs on one --out, a user's README beside the figures,
a user's *.tmp files in a run directory."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from growkit.errors import GrowkitError
from growkit.runs import rundir

HERE = Path(__file__).resolve().parents[1]


def _files(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def _staged(out: Path, overwrite=False) -> rundir.Stage:
    """A run as the lifecycle makes one, up to its first checkpoint."""
    st = rundir.prepare(out, "train", overwrite)
    st.create()
    (st.path / "config.json").write_text('{"command": "train"}\n')
    return st


def test_a_second_run_started_on_the_same_out_is_refused_and_the_first_survives(tmp_path):
    """Both pass the checks while --out does not exist yet; the second must not replace the first, which
    is live (its lock held), when it reaches its first checkpoint."""
    out = tmp_path / "R"
    first = rundir.prepare(out, "train", False)
    second = rundir.prepare(out, "train", False)  # --out still missing: nothing to refuse yet
    first.create()
    (first.path / "config.json").write_text('{"seed": 1}\n')
    try:
        with pytest.raises(GrowkitError, match=f"in use by pid {os.getpid()}"):
            second.create()  # the first holds --out from its first write
            (second.path / "config.json").write_text('{"seed": 2}\n')
            first.commit()
            second.commit()
        first.commit()
        assert json.loads((out / "config.json").read_text()) == {"seed": 1}
        assert rundir.read_marker(out)["run_id"] == first.run_id
        assert sorted(p.name for p in tmp_path.iterdir()) == ["R"]  # no staging folder of the second left
    finally:
        first.release()
        second.release()


def test_a_commit_checks_the_overwrite_flag_under_the_lock(tmp_path):
    """A run made in --out after this run's checks (by a process that took no lock) is not replaced
    without --overwrite."""
    out = tmp_path / "R"
    st = rundir.prepare(out, "train", False)
    other = _staged(tmp_path / "other")
    other.commit()
    other.release()
    st.create()
    out.mkdir(exist_ok=True)
    os.rename(tmp_path / "other" / "config.json", out / "config.json")  # someone writes a run's files there
    (out / rundir.MARKER).write_text((tmp_path / "other" / rundir.MARKER).read_text())
    before = _files(out)
    with pytest.raises(GrowkitError, match="pass --overwrite"):
        st.commit()
    st.abort()
    assert {k: v for k, v in _files(out).items() if k != rundir.LOCK} == {
        k: v for k, v in before.items() if k != rundir.LOCK}
    assert not (out / rundir.LOCK).exists()  # the lock file it made went with it


def test_the_lock_is_taken_before_anything_is_written_and_a_failed_start_leaves_nothing(tmp_path):
    out = tmp_path / "a" / "b" / "R"
    st = rundir.prepare(out, "train", False)
    st.create()
    rec = json.loads((out / rundir.LOCK).read_text())  # --out exists, locked, holder recorded
    assert rec["pid"] == os.getpid() and rec["command"] == f"train --out {out}"
    with pytest.raises(GrowkitError, match="in use by pid"):
        rundir.RunLock(out).acquire()
    st.abort()
    assert list(tmp_path.iterdir()) == []  # --out, its parents and the staging folder are gone


def test_a_refused_lock_leaves_the_lock_file_as_it_was(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    lk = rundir.RunLock(run).acquire("resume x")  # created and recorded
    lk.undo()
    assert not (run / rundir.LOCK).exists()
    (run / rundir.LOCK).write_bytes(b"an older holder\n")
    with rundir.RunLock(run) as lk:
        lk.record("resume y")
    assert (run / rundir.LOCK).read_bytes() != b"an older holder\n"  # a run that went ahead keeps its record
    (run / rundir.LOCK).write_bytes(b"an older holder\n")
    with pytest.raises(GrowkitError):
        with rundir.RunLock(run) as lk:
            lk.record("resume z")
            raise GrowkitError("refused")
    assert (run / rundir.LOCK).read_bytes() == b"an older holder\n"


@pytest.mark.slow
def test_two_trains_on_one_out_at_once_lose_nothing(tmp_path):
    """The reproduction: a second `growkit train --out R` while the first is starting is refused; the first
    finishes with every epoch once, in order."""
    out = tmp_path / "R"
    env = dict(os.environ, PYTHONPATH=str(HERE.parent), OMP_NUM_THREADS="1")
    g = [sys.executable, "-m", "growkit.cli", "train", "--depths", "1-1-1", "--epochs", "6", "--batch-size", "16",
         "--no-progress", "--device", "cpu", "--out", str(out)]
    p = subprocess.Popen([*g, "--seed", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        t0 = time.time()
        while not (out / rundir.LOCK).exists() and not list(tmp_path.glob(".R.growkit-staging-*")):
            assert p.poll() is None and time.time() - t0 < 300
            time.sleep(0.02)
        r = subprocess.run([*g, "--seed", "2"], capture_output=True, text=True, env=env, timeout=300)
        assert r.returncode == 2, r.stderr
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        # refused as in use while the first runs (or, had it already finished, as holding a run)
        assert f"in use by pid {p.pid}" in r.stderr or ("pass --overwrite" in r.stderr and p.poll() == 0)
        _, err = p.communicate(timeout=600)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert json.loads((out / "config.json").read_text())["train"]["seed"] == 1
    assert sorted(x.name for x in tmp_path.iterdir()) == ["R"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A finished one-epoch train run, made in this process (tests copy it)."""
    from growkit.engine.config import TrainConfig
    from growkit.runs.lifecycle import train
    out = tmp_path_factory.mktemp("tiny") / "run"
    train(TrainConfig(depths=(1, 1, 1), epochs=1, batch_size=64, progress=False, device="cpu"), out)
    return out


def unfinished_copy(tiny_run, tmp_path) -> Path:
    """A copy of the finished tiny run without its result.json: a run ``recover`` may look at."""
    import shutil
    d = tmp_path / "run"
    shutil.copytree(tiny_run, d)
    (d / "result.json").unlink()
    return d


def test_recover_deletes_only_the_temporary_files_growkit_wrote(tmp_path, tiny_run):
    from growkit.runs.recover import recover
    d = unfinished_copy(tiny_run, tmp_path)
    (d / "notes.tmp").write_text("mine\n")
    (d / "draft.json.tmp").write_text("{}\n")
    (d / "checkpoint.pt.growkit-tmp").write_bytes(b"half a checkpoint")  # what a kill mid-save leaves
    msg = recover(d)
    assert "removed checkpoint.pt.growkit-tmp" in msg and "notes.tmp" not in msg
    assert (d / "notes.tmp").read_text() == "mine\n" and (d / "draft.json.tmp").read_text() == "{}\n"
    assert not (d / "checkpoint.pt.growkit-tmp").exists()


def test_recover_keeps_a_run_folder_that_holds_a_users_tmp_file(tmp_path):
    """A growkit folder killed before its config was written, holding a file of the user's named *.tmp:
    not "only growkit's leftovers", so it is refused and left as it was."""
    from growkit.runs.recover import recover
    d = tmp_path / "run"
    d.mkdir()
    (d / rundir.MARKER).write_text(json.dumps(rundir.new_marker("train")))
    (d / "notes.tmp").write_text("mine\n")
    before = _files(d)
    with pytest.raises(GrowkitError, match="move your files out"):
        recover(d)
    assert _files(d) == before


def test_a_refused_recover_deletes_nothing(tmp_path, tiny_run):
    """Damage recover will not cut (an edited metrics line) is found before any temporary file goes."""
    from growkit.runs.recover import recover
    d = unfinished_copy(tiny_run, tmp_path)
    (d / "config.json.growkit-tmp").write_text('{"comm')
    (d / "config.json.tmp").write_text('{"comm')
    log = d / "metrics.jsonl"
    log.write_text("#edited by hand\n" + log.read_text())
    before = _files(d)
    with pytest.raises(GrowkitError, match="metrics.jsonl line 1"):
        recover(d)
    assert _files(d) == before


def test_a_lock_refusal_names_no_process_that_is_gone(tmp_path):
    """A record left by a dead holder (or naming a pid a later process reuses) is not shown as the holder."""
    run = tmp_path / "run"
    run.mkdir()
    lk = rundir.RunLock(run).acquire()  # held by this process, record not rewritten
    try:
        stale = {"pid": os.getpid(), "host": __import__("socket").gethostname(), "since": "2000-01-01T00:00:00+00:00",
                 "command": "resume old"}  # this pid, but this process started long after that record
        (run / rundir.LOCK).write_text(json.dumps(stale))
        with pytest.raises(GrowkitError, match="in use by another process"):
            rundir.RunLock(run).acquire()
        lk.record("resume new")
        with pytest.raises(GrowkitError, match=f"in use by pid {os.getpid()} .*resume new"):
            rundir.RunLock(run).acquire()
    finally:
        lk.release()


def test_ctrl_c_during_start_up_points_to_no_checkpoint(tmp_path, monkeypatch, capsys):
    from growkit import cli
    from growkit.runs import lifecycle

    def interrupted(*a, **kw):
        raise KeyboardInterrupt
    monkeypatch.setattr(lifecycle, "_build", interrupted)  # as if Ctrl-C came while the data loaded
    rc = cli.main(["train", "--depths", "1-1-1", "--epochs", "1", "--no-progress", "--out", str(tmp_path / "R")])
    err = capsys.readouterr().err.strip()
    assert rc == 130 and "nothing was kept" in err and "checkpoint is in" not in err, err
    assert list(tmp_path.iterdir()) == []


def _rows(out: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in ("wall_s", "epoch_s")}
            for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("full_at", [1, 2], ids=["first-checkpoint", "second-checkpoint"])
def test_a_full_disk_while_a_checkpoint_is_written_keeps_the_last_good_one_and_says_so_in_one_line(
        tmp_path, monkeypatch, capsys, full_at):
    """The disk fills in the middle of writing a checkpoint (the write raises ENOSPC after half a file): one
    line, exit 1; the checkpoint before it is intact and no temporary file is left to hold the space; after
    the first, `growkit resume` (with room again) finishes as an uninterrupted run does; at the first, nothing
    was kept."""
    import errno
    import torch
    from growkit import cli
    from growkit.engine import checkpoint
    args = ["train", "--depths", "1-1-1", "--epochs", "2", "--batch-size", "64", "--no-progress", "--device", "cpu"]
    ref = tmp_path / "ref"
    assert cli.main([*args, "--out", str(ref)]) == 0
    capsys.readouterr()
    out = tmp_path / "cut" / "run"
    real, calls = torch.save, []

    def save_on_a_full_disk(obj, f, *a, **kw):
        calls.append(1)
        if len(calls) != full_at:
            return real(obj, f, *a, **kw)
        f.write(b"\x80\x02half a checkpoint")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(checkpoint.torch, "save", save_on_a_full_disk)
    rc = cli.main([*args, "--out", str(out)])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == 1 and len(lines) == 1 and "Traceback" not in err, err
    assert "No space left on device" in lines[0], lines[0]
    monkeypatch.undo()
    if full_at == 1:
        assert "nothing was kept" in lines[0]
        assert sorted(p.name for p in tmp_path.iterdir()) == ["ref"]  # no run, staging folder or parent made
        return
    assert f"the last good checkpoint is in {out}" in lines[0], lines[0]
    assert not list(out.rglob("*.growkit-tmp")), sorted(out.rglob("*"))  # the half file does not hold the space
    assert checkpoint.load(out / "checkpoint.pt")["loop"]["epoch"] == 1  # epoch 1's, whole
    assert cli.main(["resume", str(out)]) == 0
    assert _rows(out) == _rows(ref)
    a, b = (json.loads((d / "result.json").read_text()) for d in (ref, out))
    assert (a["val_acc"], a["test_acc"], a["arch"]) == (b["val_acc"], b["test_acc"], b["arch"])
