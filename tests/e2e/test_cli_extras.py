"""`--help` states every default; `growkit rerun` runs a saved config.json again; `growkit plot` draws runs;
`growkit figures` prints whole lines with an ETA."""
import dataclasses
import io
import json
import re

import pytest

from growkit.cli import build_parser, main
from growkit.engine.config import TrainConfig
from growkit.runs import registry


def help_blocks(text: str) -> dict:
    """``--flag`` -> its help text, on one line (argparse wraps it)."""
    blocks, cur = {}, None
    for line in text.splitlines():
        m = re.match(r"  (-{1,2}[\w-]+)", line)
        if m:
            cur = m.group(1)
            blocks[cur] = line[m.end():]
        elif cur is not None and line.startswith("   "):
            blocks[cur] += " " + line.strip()
        else:
            cur = None
    return {k: " ".join(v.split()) for k, v in blocks.items()}


def spelled(value) -> str:
    """A default as one types it on the command line (written out here, not taken from the CLI)."""
    if isinstance(value, list):
        return ("," if all(isinstance(v, float) for v in value) else "-").join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def subparser(name):
    p = build_parser()
    sub = next(a for a in p._actions if a.__class__.__name__ == "_SubParsersAction")
    return sub.choices[name]


def test_autogrow_help_states_K_tau_init_and_epochs():
    h = help_blocks(subparser("autogrow").format_help())
    assert h["--K"].endswith("(default: 3)") and h["--tau"].endswith("(default: 0.05)")
    assert h["--init"].endswith("(default: gau)") and h["--epochs"].endswith("(default: 20)")
    assert h["--milestones"].endswith("(default: 0.5,0.75)") and h["--finetune"].endswith("(default: 20)")


@pytest.mark.parametrize("name", registry.names())
def test_every_flag_with_a_default_shows_it(name):
    """From the config dataclasses' fields: every offered field with a value as its default (not None, not a
    switch) has that value in its help, spelled as typed; a None default is explained in words or not shown."""
    m = registry.get(name)
    h = help_blocks(subparser(name).format_help())
    classes = ([] if m.own_loop is not None else [(TrainConfig, m.train_flags)]) + \
        ([(m.config, {})] if m.config is not None else [])
    checked = 0
    for cls, overrides in classes:
        for f in dataclasses.fields(cls):
            meta = {**f.metadata, **(overrides.get(f.name) or {})}
            if f.name in overrides and overrides[f.name] is None or not meta.get("cli", True):
                continue
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
            if default is None or isinstance(default, bool) or meta.get("required"):
                continue
            flag = meta.get("flag") or "--" + f.name.replace("_", "-")
            text = h[flag]
            assert f"(default: {spelled(default)})" in text or "default" in text, (flag, text)
            checked += 1
    assert checked >= 5


def test_figures_and_plot_help_state_their_defaults():
    h = help_blocks(subparser("figures").format_help())
    assert "(default: cpu)" in h["--profile"]
    assert "(default: growkit_plot.png)" in help_blocks(subparser("plot").format_help())["--out"]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    # grows at epochs 2, 4 and 6: no accuracy gain over K = 2 epochs reaches tau = 100 %, whatever the numerics
    assert main(["autogrow", "--policy", "convergent", "--K", "2", "--tau", "100", "--max-grow-epochs", "8",
                 "--finetune", "1",
                 "--device", "cpu", "--no-test", "--no-progress", "--out", str(root / "grown")]) == 0
    assert main(["train", "--depths", "1-1-1", "--epochs", "3", "--fraction", "0.5", "--device", "cpu",
                 "--no-test", "--no-progress", "--out", str(root / "fixed")]) == 0
    return root


def test_rerun_reproduces_the_saved_config_and_refuses_an_existing_out(two_runs, capsys):
    src, new = two_runs / "grown", two_runs / "again"
    assert main(["rerun", str(src), "--out", str(new), "--no-progress"]) == 0
    a, b = (json.loads((d / "config.json").read_text()) for d in (src, new))
    assert {k: v for k, v in a.items() if k != "environment"} == {k: v for k, v in b.items() if k != "environment"}
    ra, rb = (json.loads((d / "result.json").read_text()) for d in (src, new))
    assert (rb["arch"], rb["val_acc"], rb["epochs"]) == (ra["arch"], ra["val_acc"], ra["epochs"])  # seeded: the same
    before = (new / "result.json").read_bytes()
    capsys.readouterr()
    assert main(["rerun", str(src), "--out", str(new)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "exists; pass --overwrite" in err[0]
    assert (new / "result.json").read_bytes() == before
    assert main(["rerun", str(two_runs / "nowhere"), "--out", str(two_runs / "x")]) == 2
    assert main(["rerun", str(src), "--out", str(src), "--overwrite"]) == 2
    assert not (two_runs / "x").exists()


def test_plot_writes_a_png_of_two_runs(two_runs, tmp_path):
    import matplotlib.image as mpimg
    out = tmp_path / "both.png"
    assert main(["plot", str(two_runs / "grown"), str(two_runs / "fixed"), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = mpimg.imread(out)
    assert img.shape[0] > 500 and img.shape[1] > 500


def test_the_plot_shows_each_runs_curves_and_its_growth_events(two_runs):
    from growkit.viz.compare import plot_runs
    rows = [json.loads(s) for s in (two_runs / "grown" / "metrics.jsonl").read_text().splitlines()]
    fig = plot_runs([two_runs / "grown", two_runs / "fixed"])
    acc, params, macs = fig.axes
    grown_line = acc.lines[0]
    assert list(grown_line.get_xdata()) == [r["epoch"] for r in rows]
    assert list(grown_line.get_ydata()) == [r["val_acc"] for r in rows]
    dots = params.lines[1]  # the grown run's growth events on its parameter curve
    assert list(dots.get_xdata()) == [r["epoch"] for r in rows if r["events"]] and len(dots.get_xdata()) >= 1
    assert list(macs.lines[0].get_ydata()) == [r["macs"] for r in rows]
    assert all(float(t).is_integer() for t in acc.get_xticks())  # epochs are counted
    labels = [t.get_text() for t in acc.get_legend().get_texts()]
    assert labels[0].startswith("grown: ") and labels[1] == f"fixed: Basic3ResNet-1-1-1"


@pytest.mark.parametrize("case", ["missing", "not a run", "no rows", "bad suffix", "no folder"])
def test_plot_bad_input_exits_2_with_one_line(two_runs, tmp_path, capsys, case):
    out = tmp_path / "p.png"
    if case == "missing":
        args = [str(tmp_path / "nope")]
    elif case == "not a run":
        args = [str(tmp_path)]
    elif case == "no rows":
        (tmp_path / "empty").mkdir()
        (tmp_path / "empty" / "metrics.jsonl").write_text("")
        args = [str(tmp_path / "empty")]
    elif case == "bad suffix":
        args, out = [str(two_runs / "fixed")], tmp_path / "p.txt"
    else:
        args, out = [str(two_runs / "fixed")], tmp_path / "no" / "p.png"
    assert main(["plot", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("growkit: error: ") and not out.exists()


def test_figures_progress_lines_are_whole_and_carry_an_eta():
    import threading

    from growkit.papers.figures import Progress
    lines = []
    p = Progress(["a", "b", "c"], jobs=1, previous={"a": 10.0, "b": 20.0}, write=lines.append)
    p.start("a")  # expected: 10 + 20 + c unknown
    assert lines[-1].startswith("  start  a (1/3, expected 10 s); 0 s elapsed, ETA unknown")
    p.done({"notebook": "a", "status": "ok", "cell": None, "error": None, "seconds": 12.0})
    # ETA: b's 20 s (its time last run) and c's 12 s (the mean of this run so far)
    assert re.match(r"  \[1/3\] ok     a \(12 s\); \d+ s elapsed, ETA 32 s$", lines[-1])
    threads = [threading.Thread(target=p.start, args=(n,)) for n in ("b", "c")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(lines) == 4 and all(ln.startswith("  start  ") and "\n" not in ln for ln in lines[2:])


def test_figures_start_unknown_then_longest_notebooks_first_from_the_previous_times(tmp_path):
    import json
    from pathlib import Path

    from growkit.papers.figures import _previous_times, longest_first
    nbs = [Path(f"{n}.ipynb") for n in ("a", "b", "c", "d")]
    assert [p.stem for p in longest_first(nbs, {"a": 5.0, "b": 50.0, "d": 20.0})] == ["c", "b", "d", "a"]
    assert [p.stem for p in longest_first(nbs, {})] == ["a", "b", "c", "d"]
    # the runs folder's summary first; else the figures set's run record; failed notebooks give no time
    record = tmp_path / "figures_run.json"
    record.write_text(json.dumps({"notebooks": [{"notebook": "a", "status": "ok", "seconds": 7},
                                                {"notebook": "b", "status": "failed", "seconds": 1}]}))
    assert _previous_times(tmp_path / "missing.json", record) == {"a": 7.0}
    summary = tmp_path / "summary.json"
    summary.write_text("not json")
    assert _previous_times(summary, record) == {"a": 7.0}
    summary.write_text(json.dumps({"notebooks": [{"notebook": "c", "status": "ok", "seconds": 3}]}))
    assert _previous_times(summary, record) == {"c": 3.0}
