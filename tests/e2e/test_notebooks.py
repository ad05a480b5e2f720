"""Notebooks: committed clean and parameterised; every one executes under the smoke profile."""
import csv
import json
import math
import os
import re
from pathlib import Path

import nbformat
import pytest

from growkit.papers.figures import list_notebooks, run_figures
from growkit.papers.profiles import PROFILES

NOTEBOOKS = list_notebooks()
ROOT = Path(__file__).resolve().parents[2]


def parameters_cell(nb):
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "exactly one cell tagged 'parameters'"
    return cells[0]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebooks_are_clean_and_parameterised(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for c in nb.cells:
        if c.cell_type == "code":
            assert c.outputs == [] and c.execution_count is None, "commit notebooks with outputs stripped"
    src = parameters_cell(nb).source
    assigned = re.findall(r"^([A-Za-z_]\w*)\s*=", src, flags=re.M)
    assert {"profile", "runs_dir", "figures_dir", "data_root"} <= set(assigned)
    # run in JupyterLab, a notebook writes runs/<profile>/ of its checkout, never the committed figures/, and
    # looks for data by the one rule (None): its first cell after the parameters resolves them and its profile
    defaults = {n: v for n, v in re.findall(r"^(runs_dir|figures_dir|data_root)\s*=\s*(\S+)", src, flags=re.M)}
    assert defaults == {"runs_dir": "None", "figures_dir": "None", "data_root": "None"}, defaults
    following = nb.cells[nb.cells.index(parameters_cell(nb)) + 1]
    assert f"notebook_settings({path.stem!r}, globals())" in following.source
    assert any(re.search(r"\bdata_root\b", c.source) for c in nb.cells[nb.cells.index(following) + 1:]
               if c.cell_type == "code"), "data_root reaches the runs"
    for line in src.splitlines():  # literals only: nothing computed in the parameters cell
        assert not re.search(r"\w\(", line.split("#")[0]), line
    import papermill as pm
    parsed = pm.inspect_notebook(str(path))
    assert set(parsed) == set(assigned), "every parameter line must parse for papermill (no '=' in comments)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_notebook_has_all_three_profiles_naming_real_parameters(path):
    import papermill as pm
    names = set(pm.inspect_notebook(str(path)))
    prof = PROFILES[path.stem]
    assert set(prof) == {"smoke", "cpu", "paper"}
    for p in prof.values():
        assert set(p) <= names, set(p) - names
    assert prof["cpu"] == {}  # the cpu profile is the notebook's own defaults
    from growkit.papers.profiles import HEADLESS
    assert set(HEADLESS.get(path.stem, {})) <= names


# What each notebook must write under the smoke profile: figure/table names -> expected table rows.
EXPECTED = {
    "00_quickstart": {"quickstart_growth_curves.png": None},
    "autogrow_01_morphism": {"autogrow_table2_morphism.csv": 2, "autogrow_fig2_trajectories_morphism_vs_scratch.png": None},
    "autogrow_02_c_autogrow": {"autogrow_table3_c_autogrow.csv": 4},
    "autogrow_03_adaptability": {"autogrow_table4_adaptability.csv": 1, "autogrow_table9_plain_nets.csv": 3},
    "autogrow_04_interval": {"autogrow_table5_interval_K.csv": 2},
    "autogrow_05_initializers": {"autogrow_table6_initializers.csv": 2},
    "extending_01_your_grower": {"extending_your_grower_vs_autogrow.csv": 2},
    "autogrow_06_seed_depth": {"autogrow_table7_seed_depth.csv": 2},
    "autogrow_07_fraction": {"autogrow_table8_dataset_fraction.csv": 2},
    "autogrow_08_manual_search": {"autogrow_fig5_vs_manual_search.png": None, "autogrow_fig5_vs_manual_search.csv": 3},
    "autogrow_09_growth_curves": {"autogrow_fig4_growth_curves.png": None, "autogrow_table11_efficiency.csv": 1},
    "autogrow_10_imagenet": {"autogrow_table10_imagenet.csv": 3, "autogrow_fig7_vs_manual_design.png": None},
    "autogrow_11_trajectories": {"autogrow_fig3_trajectories.png": None},
    "autogrow_12_loss_surfaces": {"autogrow_fig6_loss_surfaces_Basic3ResNet.png": None},
    "adenel_01_slimming": {"adenel_table1_slimming.csv": 3},
    "adenel_02_budgets": {"adenel_fig3_budgets.png": None, "adenel_table4_ablation.csv": 6},
    "adenel_03_vs_autogrow": {"adenel_table3_vs_autogrow.csv": 2},
    "adenel_04_filters": {"adenel_fig4_first_layer_filters.png": None},
    "adenel_05_imagenet": {"adenel_table2_imagenet.csv": 3},
    "learn_to_grow_01_split_digits": {"learn_to_grow_table_summary.csv": 7, "learn_to_grow_accuracy_matrices.png": None,
                                      "learn_to_grow_params_per_task.png": None, "learn_to_grow_choices.png": None},
    "gauss_newton_01_estimates": {"gauss_newton_fig3_estimates.png": None, "gauss_newton_fig3_correlations.csv": 6,
                                  "gauss_newton_fig3_prune_bias.csv": 3, "gauss_newton_fig4_summary.csv": 1,
                                  "gauss_newton_fig4_morphism_quality.png": None,
                                  "gauss_newton_fig4_morphism_quality.csv": 2},
    "gauss_newton_02_search": {"gauss_newton_tables_1_2_runs.csv": 1,
                               "gauss_newton_tables_1_2_accuracy_vs_params.csv": 1,
                               "gauss_newton_tables_1_2_accuracy_vs_params.png": None,
                               "gauss_newton_fig2_scores.png": None},
    "curvature_01_growth_events": {"curvature_01_growth_events.csv": 3, "curvature_01_sharpness_along_runs.png": None},
    "curvature_02_initializers": {"curvature_02_initializers.csv": 2, "curvature_02_initializers.png": None},
    "transformer_growth_01_stacking": {"transformer_growth_01_stacking.csv": 4,
                                       "transformer_growth_01_stacking_lr_sweep.csv": 8,
                                       "transformer_growth_01_stacking.png": None},
    "transformer_growth_02_width": {"transformer_growth_02_width.csv": 2, "transformer_growth_02_width_lr_sweep.csv": 4,
                                    "transformer_growth_02_width.png": None},
}


def test_expected_outputs_cover_every_notebook():
    assert set(EXPECTED) == {p.stem for p in NOTEBOOKS}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """Execute every notebook once under the smoke profile (the slow part of this module)."""
    figs, runs = tmp_path_factory.mktemp("figures"), tmp_path_factory.mktemp("runs")
    code = run_figures("smoke", out_dir=str(figs), runs_dir=str(runs), jobs=1)
    return code, figs, runs / "smoke"


@pytest.mark.slow
def test_figures_smoke_profile_runs_every_notebook(smoke):
    code, figs, runs = smoke
    summary = json.loads((runs / "summary.json").read_text())
    failed = [(r["notebook"], r["cell"], r["error"]) for r in summary["notebooks"] if r["status"] != "ok"]
    assert code == 0 and not failed, failed
    assert {r["notebook"] for r in summary["notebooks"]} == set(EXPECTED)
    assert (figs / "README.md").exists()


@pytest.mark.parametrize("stem", sorted(EXPECTED))
@pytest.mark.slow
def test_each_notebook_writes_its_records_and_outputs(smoke, stem):
    _, figs, runs = smoke
    for name, n_rows in EXPECTED[stem].items():
        f = figs / name
        assert f.exists() and f.stat().st_size > 0, name
        if f.suffix == ".png":
            assert (figs / (f.stem + ".pdf")).exists()
            from growkit.papers.report import read_caption
            cap = read_caption(f)
            assert "profile: smoke" in cap and "not the paper's" in cap
            assert "Dataset: digits" in cap or "Dataset: shakespeare" in cap
        if n_rows is not None:
            rows = list(csv.DictReader(open(f)))
            assert len(rows) == n_rows, name
            md = (figs / (f.stem + ".md")).read_text().splitlines()
            assert "profile: smoke" in md[0] and len(md) == 4 + n_rows
    # every run the notebook made finished and recorded finite accuracies
    results = sorted((runs / stem).rglob("result.json"))
    assert results, "the notebook's runs are recorded under runs_dir"
    for r in results:
        res = json.loads(r.read_text())
        score = res["val_loss"] if res.get("config", {}).get("command") == "lm" else res["test_acc"]
        assert math.isfinite(score) and res["environment"]["torch"]


@pytest.mark.slow
def test_table_values_come_from_the_run_records(smoke):
    _, figs, runs = smoke
    rows = list(csv.DictReader(open(figs / "autogrow_table5_interval_K.csv")))
    res = json.loads((runs / "autogrow_04_interval" / "digits-K1-s0" / "result.json").read_text())
    row = next(r for r in rows if r["K"] == "1")
    assert float(row["accu %"]) == pytest.approx(res["test_acc"], abs=0.005) and row["found nets"] == "-".join(
        map(str, res["depths"]))
    rows = list(csv.DictReader(open(figs / "autogrow_table8_dataset_fraction.csv")))
    assert [r["K, J used"] for r in rows] == ["1, 4", "2, 8"]  # K and J divided by the fraction 0.5


@pytest.mark.slow
def test_tables_carry_computed_verdicts_and_the_paper_vs_kit_page(smoke):
    _, figs, _ = smoke
    for name in ("autogrow_table3_c_autogrow", "autogrow_table4_adaptability", "autogrow_table5_interval_K",
                 "autogrow_table6_initializers", "autogrow_table7_seed_depth", "autogrow_table8_dataset_fraction"):
        first = (figs / f"{name}.md").read_text().splitlines()[0]
        # the smoke profile runs one seed: a verdict needs several, so every claim is only illustrated
        assert "Illustrative (1 run)" in first and "with the paper" not in first, name
        assert "95 % t-interval, paired by seed" in first, name
    page = (figs / "paper_vs_kit.md").read_text()
    assert "## autogrow_table6_initializers" in page and "| quantity | paper | kit | verdict |" in page
    # Table 4's Δ is given against both baselines
    header = next(csv.reader(open(figs / "autogrow_table4_adaptability.csv")))
    assert {"Δ vs matched", "Δ vs converged"} <= set(header)


def _tiny_notebooks(nbdir, bodies: dict):
    nbdir.mkdir()
    for name, body in bodies.items():
        nb = nbformat.v4.new_notebook()
        p = nbformat.v4.new_code_cell("profile = 'x'\nruns_dir = ''\nfigures_dir = ''")
        p.metadata["tags"] = ["parameters"]
        nb.cells = [p, nbformat.v4.new_code_cell("y = 2"), nbformat.v4.new_code_cell(body)]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, nbdir / f"{name}.ipynb")


@pytest.mark.slow
def test_a_failing_notebook_is_reported_with_its_cell_and_the_others_still_run(tmp_path):
    nbdir = tmp_path / "nbs"
    _tiny_notebooks(nbdir, {"a_bad": "raise ValueError('boom')", "b_good": "x = 1"})
    code = run_figures("smoke", out_dir=str(tmp_path / "f"), runs_dir=str(tmp_path / "r"), notebooks_dir=str(nbdir))
    assert code == 1
    summary = json.loads((tmp_path / "r" / "smoke" / "summary.json").read_text())
    by = {r["notebook"]: r for r in summary["notebooks"]}
    assert by["b_good"]["status"] == "ok"
    assert by["a_bad"]["status"] == "failed" and by["a_bad"]["cell"] == 3 and "boom" in by["a_bad"]["error"]


@pytest.mark.slow
def test_notebooks_run_in_parallel_each_with_its_own_kernel(tmp_path):
    """--jobs 4: four kernels start at once; each answers its own notebook (their sockets used to collide in the
    shared working directory) and no socket file is left behind there. Each kernel starts in the notebook's folder
    and this process keeps its own working directory (papermill's process-wide chdir raced under --jobs)."""
    nbdir = tmp_path / "nbs"
    _tiny_notebooks(nbdir, {f"n{i}": f"import os\nassert os.getcwd() == {str(nbdir)!r}\nz = {i} * y" for i in range(4)})
    here = os.getcwd()
    code = run_figures("smoke", out_dir=str(tmp_path / "f"), runs_dir=str(tmp_path / "r"), notebooks_dir=str(nbdir),
                       jobs=4)
    assert os.getcwd() == here
    summary = json.loads((tmp_path / "r" / "smoke" / "summary.json").read_text())
    assert code == 0 and [r["status"] for r in summary["notebooks"]] == ["ok"] * 4, summary
    for i in range(4):  # each executed notebook holds its own cells' results
        cells = nbformat.read(tmp_path / "r" / "smoke" / "executed" / f"n{i}.ipynb", as_version=4).cells
        assert f"z = {i} * y" in cells[-1].source and not any(o.get("ename") for o in cells[-1].outputs)
    assert sorted(p.name for p in nbdir.iterdir()) == [f"n{i}.ipynb" for i in range(4)]
