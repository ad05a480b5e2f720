"""The curvature callback in the trainer: off changes nothing, on leaves training as it was and records
curvature at growth events and every N epochs, and a killed run resumes to the same records."""
import json

import pytest
import torch

from growkit.engine import checkpoint, optim
from growkit.engine import surgery as S
from growkit.engine.config import TrainConfig
from growkit.engine.schedule import Phase
from growkit.engine.trainer import Trainer
from growkit.errors import GrowkitError
from growkit.growers.base import Decision, Grower

from .test_train import _comparable, _full_then_killed, _rows

CURVATURE_KEYS = ("curvature", "new_unit_grad")


class WidenTwice(Grower):
    """Widens layers.1 by 2 and layers.2 by 1 after the first epoch, layers.1 by 1 after the second; stops."""
    def decide(self, view):
        plans = {1: [S.Widen("layers.1", 2), S.Widen("layers.2", 1)], 2: [S.Widen("layers.1", 1)]}
        return Decision(plans.get(view.epoch, []), done=view.epoch >= 2)

    def state_dict(self):
        return {}

    def load_state_dict(self, s):
        pass


def _cfg(**kw):
    return TrainConfig(model="VGG16", widths=4, model_kw={"hidden": [6]}, batch_size=64, epochs=4, seed=7,
                       progress=False, eval_test=False, device="cpu", **kw)


def _fit(out, **kw):
    t = Trainer(_cfg(**kw), out, phases=[Phase("grow", 0.05, grows=True), Phase("finetune", 0.05, epochs=2)],
                grower=WidenTwice())
    t.fit()
    return t


def _strip(rows):
    out = []
    for r in _comparable(rows):
        r = {k: v for k, v in r.items() if k not in CURVATURE_KEYS}
        r["events"] = [{k: v for k, v in e.items() if k != "curvature"} for e in r["events"]]
        out.append(r)
    return out


def test_on_leaves_training_bit_for_bit_and_off_records_nothing(tmp_path):
    off = _fit(tmp_path / "off")
    rng_off = torch.get_rng_state()
    on = _fit(tmp_path / "on", curvature_every=2, curvature_images=64, curvature_probes=4)
    assert torch.equal(torch.get_rng_state(), rng_off)  # the measurements drew nothing from the global generator
    assert not any(type(cb).__name__ == "CurvatureProbe" for cb in off.hooks.callbacks)
    a, b = off.model.state_dict(), on.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # incl. BatchNorm statistics
    sa, sb = optim.state_by_name(off.model, off.opt), optim.state_by_name(on.model, on.opt)
    assert all(torch.equal(v, sb[n][k]) for n, s in sa.items() for k, v in s.items())
    rows_off, rows_on = _rows(tmp_path / "off"), _rows(tmp_path / "on")
    assert _strip(rows_on) == _comparable(rows_off)
    assert off.extras == {} and all(k not in r for r in rows_off for k in CURVATURE_KEYS)
    assert all("curvature" not in e for r in rows_off for e in r["events"])
    # on: every 2nd epoch's row; both growth events, before and after; unit gradients after the first growth
    assert [("curvature" in r) for r in rows_on] == [False, True, False, True]
    events = [e for r in rows_on for e in r["events"]]
    assert len(events) == 2
    for e in events:
        c = e["curvature"]
        assert c["before"]["hessian"]["top"] > 0 and c["before"]["images"] == 64
        for kind in ("hessian", "ggn"):
            after = c["after"][kind]
            assert after["trace_new"]["trace"] + after["trace_old"]["trace"] == pytest.approx(after["trace"])
            assert after["top_vec"]["new"] + after["top_vec"]["old"] == pytest.approx(1.0)
    # the first event adds 2 filters to layers.1 and 1 to layers.2 (whole new conv rows), the second 1 more
    assert events[0]["curvature"]["new_units"]["n"] == 3 and events[1]["curvature"]["new_units"]["n"] == 1
    assert [r.get("new_unit_grad", {}).get("since") for r in rows_on] == [1, 2, 2, 2]
    assert rows_on[0]["new_unit_grad"]["new"] == events[0]["curvature"]["new_units"]["new"]
    # the units of the latest growth (layers.1's 7th filter) are kept in the checkpoint for a resume
    ck = checkpoint.load(tmp_path / "on" / "checkpoint.pt")
    assert ck["extras"]["curvature_units"] == {"epoch": 2, "units": {"layers.1.conv.weight": [6]}}


def test_bad_curvature_settings_are_one_line_errors():
    for kw, msg in [({"curvature_every": -1}, "curvature_every"), ({"curvature_probes": 1}, "curvature_probes"),
                    ({"curvature_images": 0}, "curvature_images")]:
        with pytest.raises(GrowkitError, match=msg):
            _cfg(**kw).validate()


RUN = '''
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from growkit.engine import checkpoint
from growkit.engine.schedule import Phase
from growkit.engine.trainer import Trainer
from tests.engine.test_curvature_callback import WidenTwice, _cfg

out = Path(sys.argv[1])
t = Trainer(_cfg(curvature_every=1, curvature_images=128, curvature_probes=4), out,
            phases=[Phase("grow", 0.05, grows=True), Phase("finetune", 0.05, epochs=2)], grower=WidenTwice())
if (out / "checkpoint.pt").exists():
    t.restore(checkpoint.load(out / "checkpoint.pt"))
print(json.dumps(t.fit()["growth_events"]))
'''


@pytest.mark.slow
def test_sigkill_with_curvature_on_then_resume_is_identical(tmp_path):
    import pathlib
    root = str(pathlib.Path(__file__).resolve().parents[2])
    script = tmp_path / "run.py"
    script.write_text(RUN)
    # killed after the first growth, with units being tracked, before the second
    full, cut, out_full, _, r = _full_then_killed(script, [root], tmp_path, 2)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == json.loads(out_full)
    assert _comparable(_rows(cut)) == _comparable(_rows(full))
    assert all("curvature" in row for row in _rows(full))
    a, b = checkpoint.load(full / "checkpoint.pt"), checkpoint.load(cut / "checkpoint.pt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert a["extras"] == b["extras"]
