"""figures/README.md lists the AutoGrow outputs in the paper's order: every name a notebook writes has a place."""
import json
import re
from pathlib import Path

import pytest

from growkit.papers.figures import INDEX_MARK, PAPER_ORDER, write_index
from growkit.papers.profiles import PROFILES

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
# The order of the captions in the AutoGrow paper's text (000_*, read by hand): Table 9 and Figure 6 come before
# Table 8, Table 4's caption after Table 7's.
PAPER_CAPTIONS = ["table2", "fig2", "table3", "fig3", "fig4", "table5", "table6", "table7", "table4", "fig5", "table9",
                  "fig6", "table8", "table10", "fig7", "table11", "fig8"]


def _cells(nb: Path):
    cells = json.loads(nb.read_text())["cells"]
    params = next(c for c in cells if "parameters" in c["metadata"].get("tags", []))
    values = {}
    exec("".join(params["source"]), {}, values)  # literal defaults only (the notebooks' convention)
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code" and c is not params)
    return values, code


def _written_names(nb: Path) -> set[str]:
    """The output names a notebook passes to save_table / save_figure / judge, f-strings expanded from the
    parameters cell under every profile."""
    values, code = _cells(nb)
    names = set(re.findall(r'(?<![{\w])"((?:autogrow|quickstart)_[A-Za-z0-9_]+)"', code))
    profiles = [values] + [{**values, **p} for p in PROFILES.get(nb.stem, {}).values()]
    for f in re.findall(r'f"((?:autogrow|quickstart)_[^"]*\{[^"]*)"', code):
        if f == "autogrow_fig6_loss_surfaces_{net}":
            names |= {f"autogrow_fig6_loss_surfaces_{net}" for v in profiles for net in v["nets"]}
        elif f == "autogrow_{c['name']}_growth_curves":
            names |= {f"autogrow_{c['name']}_growth_curves" for v in profiles for c in v["curves"]}
        else:
            raise AssertionError(f"{nb.name}: output name f\"{f}\" is new to this test; expand it here")
    return names


def test_every_autogrow_output_has_a_place_in_the_paper_order():
    notebooks = sorted(NOTEBOOKS.glob("autogrow_*.ipynb")) + [NOTEBOOKS / "00_quickstart.ipynb"]
    written = set().union(*(_written_names(nb) for nb in notebooks))
    assert {"autogrow_table10_imagenet", "autogrow_fig8b_growth_curves", "autogrow_fig6_loss_surfaces_Plain3Net",
            "quickstart_growth_curves"} <= written  # the scan finds literals and both f-string kinds
    assert sorted(written - set(PAPER_ORDER)) == []
    assert len(PAPER_ORDER) == len(set(PAPER_ORDER))


def test_paper_order_follows_the_papers_captions():
    def key(name):
        m = re.match(r"autogrow_(table\d+|fig\d+)", name)
        return PAPER_CAPTIONS.index(m.group(1)) if m else -1  # the quickstart leads
    ranks = [key(n) for n in PAPER_ORDER]
    assert ranks == sorted(ranks)
    assert {r for r in ranks if r >= 0} == set(range(len(PAPER_CAPTIONS)))


def test_index_lists_outputs_in_paper_order(tmp_path):
    for name in ("autogrow_table8_dataset_fraction", "autogrow_table10_imagenet", "autogrow_table2_morphism",
                 "autogrow_table9_plain_nets", "zz_other_table"):
        (tmp_path / f"{name}.md").write_text(f"*{name} caption*\n\n| a |\n|---|\n| 1 |\n")
    write_index(tmp_path)
    heads = [line[3:] for line in (tmp_path / "README.md").read_text().splitlines() if line.startswith("## ")]
    assert heads == ["autogrow_table2_morphism", "autogrow_table9_plain_nets", "autogrow_table8_dataset_fraction",
                     "autogrow_table10_imagenet", "zz_other_table"]


def test_an_unlisted_variant_of_a_paper_figure_sits_beside_it(tmp_path):
    """Figure 6 for a net a user adds to `nets` belongs with the other Figure 6 panels, not after every table."""
    for name in ("autogrow_fig6_loss_surfaces_Basic4ResNet", "autogrow_table8_dataset_fraction",
                 "autogrow_table9_plain_nets", "zz_other_table"):
        (tmp_path / f"{name}.md").write_text(f"*{name} caption*\n\n| a |\n|---|\n| 1 |\n")
    write_index(tmp_path)
    heads = [line[3:] for line in (tmp_path / "README.md").read_text().splitlines() if line.startswith("## ")]
    assert heads == ["autogrow_table9_plain_nets", "autogrow_fig6_loss_surfaces_Basic4ResNet",
                     "autogrow_table8_dataset_fraction", "zz_other_table"]


def test_the_hand_written_findings_lead_the_index_and_are_not_a_table(tmp_path):
    """figures/FINDINGS.md (committed by hand) survives regeneration: copied once, before the entries, never
    listed as a table of its own."""
    (tmp_path / "autogrow_table2_morphism.md").write_text("*autogrow_table2_morphism caption*\n\n| a |\n|---|\n| 1 |\n")
    findings = "## What the committed figures show\n\nWritten by hand: Table 2 is within noise.\n"
    (tmp_path / "FINDINGS.md").write_text(findings)
    write_index(tmp_path)
    text = (tmp_path / "README.md").read_text()
    assert text.count("Written by hand") == 1 and findings.strip() in text
    assert text.index("Written by hand") < text.index("## autogrow_table2_morphism")
    assert "## FINDINGS" not in text and "FINDINGS.csv" not in text
    write_index(tmp_path)
    assert (tmp_path / "README.md").read_text() == text


def test_a_users_readme_in_the_figures_folder_is_never_overwritten(tmp_path):
    (tmp_path / "autogrow_table2_morphism.md").write_text("*autogrow_table2_morphism caption*\n\n| a |\n|---|\n| 1 |\n")
    mine = "# My figures\n\nNotes I wrote by hand.\n"
    (tmp_path / "README.md").write_text(mine)
    assert write_index(tmp_path) is False
    assert (tmp_path / "README.md").read_text() == mine
    (tmp_path / "README.md").unlink()
    assert write_index(tmp_path) is True  # absent: written, with the mark that makes it growkit's
    first = (tmp_path / "README.md").read_text()
    assert first.splitlines()[0] == INDEX_MARK and "## autogrow_table2_morphism" in first
    (tmp_path / "autogrow_table9_plain_nets.md").write_text("*t9*\n\n| a |\n|---|\n| 1 |\n")
    assert write_index(tmp_path) is True  # growkit's own index is replaced
    assert "## autogrow_table9_plain_nets" in (tmp_path / "README.md").read_text()
    old = ("# Figures and tables\n\nRegenerated by `growkit figures --profile cpu` (see the top-level README). Each "
           "entry is named after the paper's figure or table it reproduces.\n\n## autogrow_table2_morphism\n")
    (tmp_path / "README.md").write_text(old)  # an index growkit wrote before the mark existed
    assert write_index(tmp_path) is True and (tmp_path / "README.md").read_text().startswith(INDEX_MARK)
    (tmp_path / "README.md").write_text(INDEX_MARK[:-5] + "\n# edited\n")  # almost the mark: not growkit's
    assert write_index(tmp_path) is False


@pytest.mark.slow
def test_figures_leave_the_readme_as_it_was_when_a_notebook_fails(tmp_path):
    """A failed notebook: the index is not rewritten (neither a user's README nor growkit's last one)."""
    from growkit.papers.figures import run_figures
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    nb = {"cells": [{"cell_type": "code", "id": "p", "execution_count": None, "metadata": {"tags": ["parameters"]},
                     "outputs": [], "source": ["profile = 'smoke'\n"]},
                    {"cell_type": "code", "id": "b", "execution_count": None, "metadata": {}, "outputs": [],
                     "source": ["raise ValueError('broken on purpose')\n"]}],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    (nbs / "broken.ipynb").write_text(json.dumps(nb))
    figs = tmp_path / "F"
    figs.mkdir()
    (figs / "autogrow_table2_morphism.md").write_text("*t2*\n\n| a |\n|---|\n| 1 |\n")
    for text in ("# Mine\n", INDEX_MARK + "\n# the last complete index\n"):
        (figs / "README.md").write_text(text)
        rc = run_figures(profile="smoke", out_dir=str(figs), runs_dir=str(tmp_path / "runs"), notebooks_dir=str(nbs),
                         timeout=120)
        assert rc == 1
        assert (figs / "README.md").read_text() == text
