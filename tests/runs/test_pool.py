"""The notebooks of one profile share finished identical runs (``growkit.runs.pool``): a second notebook
gets a copy of the first one's run instead of training it again, and only when the config and the code
are the same; a folder outside a pool never shares."""
import json

from growkit.runs import cache, pool, rundir

TRAIN = dict(model="Basic3ResNet", dataset="digits", device="cpu", batch_size=256, seed=0, epochs=1)


def _train(runs_dir, name, **over):
    return cache.named(runs_dir, name, "train", cache.train_cfg({**TRAIN, **over}))


def _trained(run) -> bool:
    """Whether ``run`` was trained where it lies (its metrics were written there), not copied."""
    return "copied_from" not in (rundir.read_marker(run) or {})


def test_a_second_notebook_gets_a_copy_of_an_identical_finished_run(tmp_path):
    pool.enable(tmp_path)
    first = _train(tmp_path / "nb_a", "x")
    second = _train(tmp_path / "nb_b", "y-other-name")
    assert second["wall_s"] == first["wall_s"]  # the same run: nothing was trained again
    copy = tmp_path / "nb_b" / "y-other-name"
    marker = rundir.read_marker(copy)
    assert marker["copied_from"] == "nb_a/x" and not _trained(copy)
    assert marker["run_id"] != rundir.read_marker(tmp_path / "nb_a" / "x")["run_id"]
    for f in ("config.json", "result.json", "metrics.jsonl", "checkpoint.pt"):
        assert (copy / f).read_bytes() == (tmp_path / "nb_a" / "x" / f).read_bytes()
    assert not list((tmp_path / "nb_b").glob(".*staging*"))
    # each notebook's numbers name its own copy: the row of its own figures/records file
    assert first["test_acc"].source == {"notebook": "nb_a", "run": "x", "column": "test_acc"}
    assert second["test_acc"].source == {"notebook": "nb_b", "run": "y-other-name", "column": "test_acc"}
    on_disk = json.loads((copy / "result.json").read_text())
    assert on_disk["test_acc"] == second["test_acc"] and "source" not in json.dumps(on_disk)


def test_a_different_config_trains_its_own_run(tmp_path):
    pool.enable(tmp_path)
    first = _train(tmp_path / "nb_a", "x")
    other = _train(tmp_path / "nb_b", "x", seed=1)
    assert _trained(tmp_path / "nb_b" / "x")
    assert other["wall_s"] != first["wall_s"]


def test_no_pool_no_sharing(tmp_path):
    _train(tmp_path / "nb_a", "x")
    _train(tmp_path / "nb_b", "x")
    assert _trained(tmp_path / "nb_b" / "x")
    assert not (tmp_path / pool.POOL).exists()


def test_a_stale_or_foreign_entry_is_a_plain_miss(tmp_path):
    """An index entry whose run changed since (another config now) or that names no run is not trusted."""
    pool.enable(tmp_path)
    _train(tmp_path / "nb_a", "x")
    entry = next((tmp_path / pool.POOL).glob("*.json"))
    cfg = tmp_path / "nb_a" / "x" / "config.json"
    rc = json.loads(cfg.read_text())
    rc["train"]["seed"] = 7  # the run in nb_a/x is no longer the one the entry was made for
    cfg.write_text(json.dumps(rc))
    _train(tmp_path / "nb_b", "x")
    assert _trained(tmp_path / "nb_b" / "x")
    entry.write_text(json.dumps({"run": "../../elsewhere"}))
    _train(tmp_path / "nb_c", "x")
    assert _trained(tmp_path / "nb_c" / "x")


def test_a_run_already_in_the_notebook_folder_is_never_replaced_by_a_copy(tmp_path):
    """``out`` exists (an older run of another config): the cache replaces it by training, as without a pool."""
    pool.enable(tmp_path)
    _train(tmp_path / "nb_a", "x")
    _train(tmp_path / "nb_b", "x", seed=1)
    _train(tmp_path / "nb_b", "x")  # seed 0 again, over nb_b/x of seed 1
    assert _trained(tmp_path / "nb_b" / "x")
