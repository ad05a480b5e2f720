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


def caption(title: str, *, dataset: str | list[str], profile: str, note: str = "", width_scale=None) -> str:
    """``width_scale``: a factor, or {model family: factor}, of the nets' stage widths against the paper's
    (named in the caption wherever it is not 1)."""
    names = [dataset] if isinstance(dataset, str) else list(dataset)
    today = dt.date.today().isoformat()
    text = f"{title}. Dataset: {', '.join(names)}; profile: {profile}; {today}."
    if any(n not in PAPER_DATASETS for n in names):
        text += " Digits (8x8 scans, CPU scale): a check of the procedure, not the paper's CIFAR/ImageNet numbers."
    elif profile in ("cpu", "smoke"):
        text += f" Run with the {profile} profile's short schedules and windows, not the paper's setting."
    scales = width_scale if isinstance(width_scale, dict) else ({"all nets": width_scale} if width_scale else {})
    narrow = [f"{net} at {w:g}x" for net, w in scales.items() if w != 1]
    if narrow:
        text += f" Widths against the paper's: {', '.join(narrow)}."
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


# ----------------------------------------------------------------------------- seeds, noise, verdicts

def spread(values) -> dict:
    """Mean, sample standard deviation (0 for one value), min, max and count of ``values`` (None ignored)."""
    import statistics
    v = [float(x) for x in values if x is not None]
    if not v:
        return {"mean": None, "sd": None, "min": None, "max": None, "n": 0}
    return {"mean": statistics.fmean(v), "sd": statistics.stdev(v) if len(v) > 1 else 0.0,
            "min": min(v), "max": max(v), "n": len(v)}


def pm(values, digits: int = 2) -> str:
    """``mean ± sd`` over seeds (``n = 1``: the value alone)."""
    s = spread(values)
    if s["n"] == 0:
        return ""
    mean = round(s["mean"], digits) + 0.0  # + 0.0: a mean that rounds to zero prints 0.00, not -0.00
    if s["n"] == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {s['sd']:.{digits}f}"


def noise_points(n_test: int) -> float:
    """What one test image is worth, in accuracy points (digits: 100 / 360 = 0.28)."""
    return 100.0 / max(int(n_test), 1)


def _diff_se(sa: dict, sb: dict) -> float:
    """The standard error of the difference of two means, from their :func:`spread`."""
    return ((sa["sd"] ** 2) / max(sa["n"], 1) + (sb["sd"] ** 2) / max(sb["n"], 1)) ** 0.5


def within_noise(a, b, floor: float) -> bool:
    """Are two sets of seeded values indistinguishable? Their means differ by less than two standard errors
    of the difference, or by less than ``floor`` (one test image in points, one block for depths)."""
    sa, sb = spread(a), spread(b)
    se = _diff_se(sa, sb)
    return abs(sa["mean"] - sb["mean"]) < max(2 * se, floor)


def best_claim(groups: dict, target: str, floor: float, *, higher: bool = True) -> tuple[bool | None, str]:
    """Is ``target`` the best of ``groups`` (name -> seeded values)? True if it beats every other beyond noise,
    False if another beats it beyond noise, None otherwise (best or not, the difference is within noise);
    and the numbers."""
    means = {k: spread(v)["mean"] for k, v in groups.items()}
    pick = max if higher else min
    best = pick(means, key=means.get)
    if means[target] == means[best]:  # best, or tied with the best: is the runner-up beyond noise?
        others = {k: m for k, m in means.items() if k != target}
        second = pick(others, key=others.get) if others else None
        holds = True if second is None or not within_noise(groups[target], groups[second], floor) else None
        return holds, ", ".join(f"{k} {pm(v)}" for k, v in groups.items())
    detail = f"{target} {pm(groups[target])}; best {best} {pm(groups[best])}"
    return (None if within_noise(groups[target], groups[best], floor) else False), detail


def noise_note(n_test: int, seeds) -> str:
    seeds = list(seeds)
    return (f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''} ({', '.join(map(str, seeds))}), mean ± sample "
            f"standard deviation; one test image = {noise_points(n_test):.2f} points; differences below two "
            f"standard errors (or one image) are within noise.")


ILLUSTRATIVE = "Illustrative (1 run)"  # the head of a line judged from a single run: no verdict


def verdict(holds: bool | None, claim: str, detail: str = "", *, runs: int = 2) -> str:
    """The computed 'agrees / disagrees with the paper' line of a table or figure; with ``runs`` < 2 (one run
    behind an arm of the claim) no verdict at all: the line is only illustrative."""
    if runs < 2:
        head = ILLUSTRATIVE
    else:
        head = {True: "Agrees with the paper", False: "Disagrees with the paper",
                None: "Within noise, neither agrees nor disagrees with the paper"}[holds]
    return f"{head}: {claim}" + (f" ({detail})." if detail else ".")


def _runs(claim: dict, seeds) -> int:
    """The fewest runs behind any arm of a claim (its groups' values; the seeds for a precomputed one)."""
    arms = claim.get("groups") or claim.get("order") or claim.get("same")
    n = len(set(seeds))
    if arms:
        n = min([n] + [spread(v)["n"] for v in arms.values()])
    return n


PAPER_VS_KIT = "paper_vs_kit"


def record_paper_vs_kit(figures_dir, name: str, rows: list[dict]) -> Path:
    """Keep what one table says against the paper: rows of ``quantity``, ``paper``, ``kit``, ``verdict``.
    One JSON per table (notebooks may run in parallel); :func:`write_paper_vs_kit` renders them all."""
    import json
    d = Path(figures_dir) / PAPER_VS_KIT
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{name}.json"
    path.write_text(json.dumps({"table": name, "rows": rows}, indent=1) + "\n")
    return path


def write_paper_vs_kit(figures_dir, order=None) -> Path | None:
    """figures/paper_vs_kit.md: the paper's value and the kit's side by side, table by table."""
    import json
    d = Path(figures_dir) / PAPER_VS_KIT
    if not d.is_dir():
        return None
    entries = [json.loads(p.read_text()) for p in sorted(d.glob("*.json"))]
    rank = {n: i for i, n in enumerate(order or [])}
    entries.sort(key=lambda e: (rank.get(e["table"], len(rank)), e["table"]))
    lines = ["# The paper's values and the kit's", "",
             "Per table and figure: what the paper reports (CIFAR/ImageNet unless it says otherwise) and what this "
             "kit measured under the profile named in the table's caption (digits on a CPU for the committed "
             "figures). The verdicts are computed by the notebooks from the numbers.", ""]
    for e in entries:
        lines += [f"## {e['table']}", "", "| quantity | paper | kit | verdict |", "|---|---|---|---|"]
        lines += [f"| {r['quantity']} | {r['paper']} | {r['kit']} | {r['verdict']} |" for r in e["rows"]]
        lines.append("")
    out = Path(figures_dir) / f"{PAPER_VS_KIT}.md"
    out.write_text("\n".join(lines))
    return out


def same_claim(a, b, floor: float, rel: float = 0.0, names=("a", "b")) -> tuple[bool | None, str]:
    """Do two seeded sets agree ("about the same")? An equivalence question, not a difference test: seeds that
    scatter too widely to show a difference do not show sameness either.

    The tolerance is ``rel`` of the first's mean (the paper's own 'same depth' pairs differ by up to 10 %) or two
    ``floor`` units (two test images, two blocks), whichever is larger. True when the difference of the means
    plus two standard errors of it stays within the tolerance; False when the means differ beyond noise (see
    :func:`within_noise`) and beyond the tolerance; None otherwise (the spread is too wide to tell)."""
    sa, sb = spread(a), spread(b)
    se = _diff_se(sa, sb)
    diff, tol = abs(sa["mean"] - sb["mean"]), max(rel * abs(sa["mean"]), 2 * floor)
    holds = True if diff + 2 * se <= tol else (False if diff > tol and not within_noise(a, b, floor) else None)
    return holds, f"{names[0]} {pm(a)} vs {names[1]} {pm(b)}"


def monotone_claim(groups: dict, floor: float, *, decreasing: bool = True) -> tuple[bool | None, str]:
    """Do the seeded values fall (``decreasing``) or rise along the order of ``groups``? False if any step goes
    the other way beyond noise, True if none does and at least one step goes the right way beyond noise,
    None if every step is within noise."""
    keys = list(groups)
    means = {k: spread(groups[k])["mean"] for k in keys}
    right = wrong = 0
    for a, b in zip(keys, keys[1:]):
        if within_noise(groups[a], groups[b], floor):
            continue
        if (means[b] < means[a]) == decreasing:
            right += 1
        else:
            wrong += 1
    holds = False if wrong else (True if right else None)
    return holds, "; ".join(f"{k}: {pm(groups[k])}" for k in keys)


def judge(figures_dir, name: str, claims: list[dict], *, n_test: int, seeds) -> str:
    """Compute each claim's verdict, record it for paper_vs_kit.md, and return the caption note.

    A claim: ``claim`` (the paper's statement), ``paper`` (its value, as text), and either ``groups``
    (name -> seeded values) with ``target`` (which should be best; ``higher``; ``unit`` "points" or
    "blocks" sets the noise floor), or ``same`` (two seeded sets that should agree; ``rel``: the relative
    tolerance), or ``order`` (seeded sets that should fall along the dict's order, or rise with
    ``decreasing=False``), or a precomputed ``holds`` (True / False / None) with ``kit`` (text). A claim with
    a single run behind any of its arms (one seed) gets no verdict: its line is "Illustrative (1 run)"."""
    lines, rows = [], []
    for c in claims:
        floor = noise_points(n_test) if c.get("unit", "points") == "points" else 1.0
        if "groups" in c:
            holds, kit = best_claim(c["groups"], c["target"], floor, higher=c.get("higher", True))
        elif "order" in c:
            holds, kit = monotone_claim(c["order"], floor, decreasing=c.get("decreasing", True))
        elif "same" in c:
            (na, a), (nb, b) = c["same"].items()
            holds, kit = same_claim(a, b, floor, c.get("rel", 0.0), (na, nb))
        else:
            holds, kit = c["holds"], c["kit"]
        line = verdict(holds, c["claim"], kit, runs=_runs(c, seeds))
        lines.append(line)
        rows.append({"quantity": c["claim"], "paper": c["paper"], "kit": kit, "verdict": line.split(":")[0]})
    record_paper_vs_kit(figures_dir, name, rows)
    return " ".join(lines + [noise_note(n_test, seeds)])


def shared_runs_note(uses: dict, what: str = "from-scratch baseline runs") -> str:
    """Which rows of a table (or tables of a notebook) rest on the same run directories, as one caption sentence
    ("" when none share). ``uses``: row label -> the names of the runs behind it. Baselines are named after what
    they train (net, epochs, seed, settings), so rows whose runs found the same net with the same seed share
    them: those rows are one measurement, not independent evidence, and a reader must be told."""
    by_run: dict[str, list[str]] = {}
    for row, names in uses.items():
        for name in dict.fromkeys(names):
            by_run.setdefault(name, []).append(row)
    groups: dict[tuple, int] = {}
    for rows in by_run.values():
        if len(rows) > 1:
            groups[tuple(rows)] = groups.get(tuple(rows), 0) + 1
    if not groups:
        return ""
    parts = [f"{', '.join(rows[:-1])} and {rows[-1]} share {n} of them" for rows, n in groups.items()]
    return (f"Shared {what} (the same runs, one measurement, not independent evidence): " + "; ".join(parts) + ".")
