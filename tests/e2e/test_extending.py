"""docs/extending.md's example grower (examples/plateau_grower.py): its policy by hand, and a run of it through
the `growkit` command (registered from $GROWKIT_METHODS), resumable and plotted like a built-in method."""
import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="module")
def plateau():
    sys.path.insert(0, str(EXAMPLES))
    try:
        import plateau_grower
        yield plateau_grower
    finally:
        sys.path.remove(str(EXAMPLES))


def test_the_policy_by_hand(plateau):
    """patience 2, min_gain 0.5, max_growths 2 on accuracies 50 60 60.2 59 | 61 70 70 70 (hand-worked):
    new bests at 1 (50), 2 (60); 3 and 4 are no new best (60.2 < 60.5): grow stage 0 at epoch 4 and forget
    the best; 5 sets it (61), 6 (70), 7 and 8 do not: grow at epoch 8, the shallowest stage is now stage 1,
    and the second growth is the last."""
    from growkit import models as M
    from growkit.growers.view import GrowerView
    g = plateau.Plateau(plateau.PlateauConfig(patience=2, min_gain=0.5, max_growths=2))
    model = M.create("Basic3ResNet-1-1-1", in_channels=1, image_size=8)
    log = []
    for epoch, acc in enumerate([50, 60, 60.2, 59, 61, 70, 70, 70], 1):
        d = g.decide(GrowerView(epoch=epoch, global_epoch=epoch, row={"val_acc": acc}, model=model))
        for p in d.plans:
            p.apply(model)
            log.append((epoch, p.stage))
        if d.done:
            log.append((epoch, "done", d.info["stopped_by"]))
    assert log == [(4, 0), (8, 1), (8, "done", "max_growths")] and model.depths == [2, 2, 1]


def run(cli, *args, plugins="plateau_grower"):
    env = {"GROWKIT_METHODS": plugins,
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(EXAMPLES), os.environ.get("PYTHONPATH", "")])}
    return cli(*args, env=env)


@pytest.mark.slow
def test_the_example_runs_through_growkit_and_plots(cli, tmp_path):
    out = tmp_path / "p1"
    r = run(cli, "plateau", "--patience", "1", "--max-growths", "2", "--grow-epochs", "6", "--finetune", "1",
            "--device", "cpu", "--no-test", "--out", out)
    assert r.returncode == 0, r.stderr
    res = json.loads((out / "result.json").read_text())
    rows = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    grown = [ev for row in rows for ev in row["events"]]
    assert len(grown) == res["growths"] == len(res["growth_events"]) >= 1
    assert sum(res["depths"]) == 3 + len(grown)  # one block per growth on the 1-1-1 seed net
    assert res["stopped_by"] == ("max_growths" if len(grown) == 2 else "max_grow_epochs")
    assert r.stderr.count(" grew ") == len(grown) and "growing stopped" in r.stderr
    assert json.loads((out / "config.json").read_text())["command"] == "plateau"
    r = run(cli, "plot", out, "--out", tmp_path / "p1.png")
    assert r.returncode == 0 and (tmp_path / "p1.png").stat().st_size > 0
    r = run(cli, "resume", out)  # a finished run: its result again
    assert r.returncode == 0 and res["arch"] in r.stdout


@pytest.mark.slow
def test_a_plugin_that_does_not_import_is_one_line_exit_2(cli, tmp_path):
    r = run(cli, "models", plugins="no_such_grower_module")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "cannot import 'no_such_grower_module'" in r.stderr
