"""Figures and tables as the notebooks write them into ``figures/``.

Every output is named after the paper's figure or table it reproduces and
carries a caption saying what it is, on which dataset, under which profile and
when. A figure's caption is drawn under the plot and stored in the PNG's and
PDF's metadata; a table's caption is the first line of its Markdown file.
Results on the embedded digits data say plainly that they are not the
paper's numbers.
"""
from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

PAPER_DATASETS = {"cifar10", "cifar100", "svhn", "mnist", "fashionmnist", "imagenet"}


def caption(title: str, *, dataset: str | list[str], profile: str, note: str = "") -> str:
    names = [dataset] if isinstance(dataset, str) else list(dataset)
    today = dt.date.today().isoformat()
    text = f"{title}. Dataset: {', '.join(names)}; profile: {profile}; {today}."
    if any(n not in PAPER_DATASETS for n in names):
        text += " Digits (8x8 scans, CPU scale): a check of the procedure, not the paper's CIFAR/ImageNet numbers."
    return f"{text} {note}".strip()


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.2f}"
    if isinstance(v, int) and abs(v) >= 10000:
        return f"{v:,}"
    return "" if v is None else str(v)


def save_table(rows: list[dict], name: str, caption_text: str, figures_dir, columns: list[str] | None = None
               ) -> list[Path]:
    """``name.csv`` (plain values) and ``name.md`` (caption line, then a Markdown table)."""
    out = Path(figures_dir)
    out.mkdir(parents=True, exist_ok=True)
    if columns is None:
        columns = list(rows[0]) if rows else []
    with open(out / f"{name}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    lines = [f"*{caption_text}*", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |" for r in rows]
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    return [out / f"{name}.csv", out / f"{name}.md"]


def save_figure(fig, name: str, caption_text: str, figures_dir) -> list[Path]:
    """``name.png`` and ``name.pdf`` with the caption under the plot and in the metadata."""
    import textwrap
    out = Path(figures_dir)
    out.mkdir(parents=True, exist_ok=True)
    wrapped = textwrap.fill(caption_text, width=int(fig.get_size_inches()[0] * 15))
    # below the axes, outside the figure box: the tight bounding box takes it in without moving any axes
    fig.text(0.01, -0.01, wrapped, fontsize=7, va="top", ha="left", color="0.25")
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    fig.savefig(paths[0], dpi=130, bbox_inches="tight", metadata={"Description": caption_text})
    fig.savefig(paths[1], bbox_inches="tight", metadata={"Subject": caption_text})
    return paths


def read_caption(path: Path) -> str:
    """The caption stored by :func:`save_figure` / :func:`save_table`."""
    path = Path(path)
    if path.suffix == ".md":
        first = path.read_text().splitlines()[0] if path.read_text() else ""
        return first.strip("*")
    if path.suffix == ".png":
        from PIL import Image
        with Image.open(path) as im:
            return im.info.get("Description", "")
    return ""
