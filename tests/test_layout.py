"""The package's shape: no import circles, arrows pointing down the layers, one folder per method, small files.

Read from the source with ast (tests/import_graph.py), so an import inside a function counts as much as
one at the top of a file; only ``if TYPE_CHECKING:`` blocks are left out."""
import shutil
from pathlib import Path

import import_graph as G
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "growkit"
MAX_LINES = 400


@pytest.fixture(scope="module")
def graph():
    return G.graph(PACKAGE)


def test_the_graph_holds_the_imports_the_source_has(graph):
    """The reader itself, against imports written in these files (top-level, relative, inside a function)."""
    assert "growkit.engine.passes" in graph["growkit.engine.trainer"]  # from .passes import ...
    assert "growkit.runs.lifecycle" in graph["growkit.methods.autogrow.method"]  # from ...runs import lifecycle
    assert "growkit.engine.records" in graph["growkit.runs.cache"]  # from ..engine import records
    assert "growkit.runs.lifecycle" in graph["growkit.cli"]  # inside a function: from .runs import lifecycle
    assert "growkit.methods" in graph["growkit"]  # the package root registers every method
    assert not any(d.startswith("growkit.methods") for d in graph["growkit.runs.registry"])


def test_no_import_circles(graph):
    found = G.circles(graph)
    assert not found, "import circles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_every_arrow_points_down_the_layers(graph):
    """errors < models, data < dist < engine, growers < runs < viz < papers < methods < cli: the engine
    imports nothing from methods/, runs/, papers/ or viz/, the dist layer nothing from the engine."""
    up = G.upward(graph)
    assert not up, "imports of a higher layer:\n" + "\n".join(f"{a} -> {b}" for a, b in up)


def test_a_method_package_imports_no_other_method(graph):
    """A new method is one folder: nothing in it reaches into another method's."""
    crossing = G.crossings(graph)
    assert not crossing, crossing


def test_what_a_run_executes_imports_no_presentation_code(graph):
    """The run cache's code hash leaves out papers/, viz/ and the methods' plots.py (a plot fix re-draws from
    cached runs); that is right only while nothing a run executes imports them."""
    from growkit.engine.records import presentation
    run = G.reach(graph, ["growkit.methods", "growkit.runs.lifecycle"])
    shown = sorted(m for m in run if presentation("/".join(m.split(".")[1:]) + ".py"))
    assert not shown, shown
    assert "growkit.methods.gauss_newton.grower" in run and "growkit.engine.trainer" in run


def test_presentation_code_is_known_by_where_it_lives():
    from growkit.engine.records import presentation
    assert all(map(presentation, ["viz/plots.py", "viz/trajectory.py", "papers/report.py", "papers/study.py",
                                  "methods/adenel/plots.py", "methods/gauss_newton/plots.py"]))
    assert not any(map(presentation, ["engine/trainer.py", "engine/snapshots.py", "methods/gauss_newton/study.py",
                                      "methods/plots.py", "runs/cache.py", "growers/view.py"]))


def test_no_module_over_400_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long


def _copy(tmp_path) -> Path:
    pkg = tmp_path / "growkit"
    shutil.copytree(PACKAGE, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    return pkg


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + "\n" + text + "\n")


def test_a_planted_circle_is_found_even_inside_a_function(tmp_path):
    pkg = _copy(tmp_path)
    _append(pkg / "engine" / "passes.py", "def _late():\n    from ..engine import trainer  # noqa")
    g = G.graph(pkg)
    found = G.circles(g)
    assert any({"growkit.engine.passes", "growkit.engine.trainer"} <= set(c) for c in found), found
    path = next(c for c in found if "growkit.engine.passes" in c)
    assert path[0] == path[-1] and all(b in g[a] for a, b in zip(path, path[1:]))  # a real closed path


def test_a_planted_upward_import_and_a_crossing_between_methods_are_found(tmp_path):
    pkg = _copy(tmp_path)
    _append(pkg / "engine" / "checkpoint.py", "from ..runs import rundir  # noqa")
    _append(pkg / "methods" / "adenel" / "prune.py", "from ..autogrow import config  # noqa")
    g = G.graph(pkg)
    assert ("growkit.engine.checkpoint", "growkit.runs.rundir") in G.upward(g)
    assert G.crossings(g) == [("growkit.methods.adenel.prune", "growkit.methods.autogrow.config")]


def test_imports_under_type_checking_do_not_count(tmp_path):
    pkg = _copy(tmp_path)
    _append(pkg / "engine" / "passes.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..runs import lifecycle  # noqa")
    g = G.graph(pkg)
    assert "growkit.runs.lifecycle" not in g["growkit.engine.passes"]
    assert not G.circles(g) and not G.upward(g)


def test_levels_count_the_longest_chain():
    g = {"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": set(), "p.d": {"p.c"}}
    assert G.levels(g) == 3
    g["p.c"] = {"p.a"}  # a circle counts as one node: d -> {a, b, c}
    assert G.levels(g) == 2 and G.components(g) == [["p.a", "p.b", "p.c"]]
