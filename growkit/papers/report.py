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
import statistics
from pathlib import Path

from ..errors import GrowkitError
from . import stats

PAPER_DATASETS = {"cifar10", "cifar100", "svhn", "mnist", "fashionmnist", "imagenet"}
# token corpora of the language-model papers' kind (a user's token files under tokens:DIR count as theirs)
PAPER_TEXT = {"openwebtext", "tinystories"}


def _is_text(name: str) -> bool:
    """A language-model dataset: the embedded corpus, a user's text file, or token files."""
    n = str(name)
    if n.startswith("tokens:"):
        return False  # a user's token files: judged as they are, no toy-scale note
    return n == "shakespeare" or n.startswith("text:")


def stamp() -> str:
    """The growkit commit that makes a figure (12 hex digits, "-dirty" with uncommitted changes)."""
    from ..engine.records import git_commit
    sha = git_commit()
    return sha if sha == "unknown" else sha[:12] + ("-dirty" if sha.endswith("-dirty") else "")


def caption(title: str, *, dataset: str | list[str], profile: str, note: str = "", width_scale=None,
            seeds=None) -> str:
    """The caption of a figure or table, stamped with the dataset, profile, seeds (``seeds``: the seeds
    behind it), growkit commit and date. ``width_scale``: a factor, or {model family: factor}, of the nets'
    stage widths against the paper's (named in the caption wherever it is not 1)."""
    names = [dataset] if isinstance(dataset, str) else list(dataset)
    today = dt.date.today().isoformat()
    seeds = [seeds] if isinstance(seeds, int) else seeds
    which = f"; seeds: {', '.join(map(str, seeds))}" if seeds else ""
    text = f"{title}. Dataset: {', '.join(names)}; profile: {profile}{which}; growkit {stamp()}; {today}."
    if any(_is_text(n) for n in names):
        text += (" A tiny character-level model of a small text corpus (CPU scale): a check of the procedure at "
                 "toy scale, not the paper's billion-parameter numbers.")
    elif any(n not in PAPER_DATASETS and n not in PAPER_TEXT and not str(n).startswith("tokens:") for n in names):
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
    made = f"growkit {stamp()}"
    fig.savefig(paths[0], dpi=130, bbox_inches="tight", metadata={"Description": caption_text, "Software": made})
    fig.savefig(paths[1], bbox_inches="tight", metadata={"Subject": caption_text, "Creator": made})
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


# Which study a table belongs to, by its name's prefix (the summary of paper_vs_kit.md).
SYSTEMS = [("quickstart", "AutoGrow"), ("autogrow_", "AutoGrow"), ("adenel_", "AdeNeL"),
           ("gauss_newton_", "Gauss-Newton"), ("learn_to_grow_", "Learn to Grow"),
           ("curvature_", "Curvature at growth events (the kit's own)"),
           ("transformer_growth_", "GPT growth against compute-matched scratch")]
VERDICT_KINDS = [("Agrees", "agrees"), ("Holds", "agrees"), ("Disagrees", "disagrees"),
                 ("Does not hold", "disagrees"), ("Not resolved", "not resolved"), ("Within noise", "not resolved"),
                 ("Illustrative", "illustrative (1 run)")]


def system_of(table: str) -> str:
    return next((name for prefix, name in SYSTEMS if table.startswith(prefix)), "other")


def verdict_counts(entries: list[dict]) -> list[str]:
    """A Markdown table: per study, how many of its verdicts agree (or hold), disagree (or do not hold), are not
    resolved, or rest on one run; counted from the same records the page shows."""
    cols = ["agrees", "disagrees", "not resolved", "illustrative (1 run)", "other"]
    counts: dict[str, dict[str, int]] = {}
    for e in entries:
        for r in e["rows"]:
            kind = next((k for head, k in VERDICT_KINDS if r["verdict"].startswith(head)), "other")
            row = counts.setdefault(system_of(e["table"]), dict.fromkeys(cols, 0))
            row[kind] += 1
    if not counts:
        return []
    if not any(c["other"] for c in counts.values()):
        cols.pop()
    order = list(dict.fromkeys(name for _, name in SYSTEMS)) + ["other"]
    out = ["| study | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    out += [f"| {s} | " + " | ".join(str(counts[s][c]) for c in cols) + " |" for s in order if s in counts]
    return ["Verdicts per study (agrees: the interval excludes zero in the paper's direction, or a kit's own "
            "claim holds):", ""] + out


def resolved_claims(entries: list[dict]) -> list[str]:
    """Per study, every claim whose interval resolved it: those that agree (or hold) and those that disagree (or
    do not hold), each with its table and the kit's value; the unresolved ones are only counted above."""
    out: dict[str, dict[str, list[str]]] = {}
    for e in entries:
        for r in e["rows"]:
            kind = next((k for head, k in VERDICT_KINDS if r["verdict"].startswith(head)), "other")
            if kind in ("agrees", "disagrees"):
                out.setdefault(system_of(e["table"]), {"agrees": [], "disagrees": []})[kind].append(
                    f"  * {r['quantity']} ({e['table']}; {r['kit']})")
    lines = []
    for study in [s for s in dict.fromkeys(name for _, name in SYSTEMS) if s in out] + (["other"] if "other" in out else []):
        lines += [f"**{study}**", ""]
        for kind, head in (("agrees", "Agrees / holds"), ("disagrees", "Disagrees / does not hold")):
            if out[study][kind]:
                lines += [f"* {head}:"] + out[study][kind]
        lines.append("")
    return lines


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
    lines += verdict_counts(entries) + [""] + resolved_claims(entries)
    for e in entries:
        lines += [f"## {e['table']}", "", "| quantity | paper | kit | verdict |", "|---|---|---|---|"]
        lines += [f"| {r['quantity']} | {r['paper']} | {r['kit']} | {r['verdict']} |" for r in e["rows"]]
        lines.append("")
    out = Path(figures_dir) / f"{PAPER_VS_KIT}.md"
    out.write_text("\n".join(lines))
    return out


def _arm_seeds(values, seeds):
    """The seeds of a list arm when it holds one value per seed (so arms pair by seed), else None (Welch)."""
    return list(seeds) if seeds is not None and len(list(values)) == len(list(seeds)) else None


def _pairing(a, b, seeds) -> dict:
    """Pair two list arms by seed when both hold one value per seed; else Welch on unseeded values."""
    sa, sb = _arm_seeds(a, seeds), _arm_seeds(b, seeds)
    return dict(seeds=sa, paired=None) if sa is not None and sb is not None else dict(seeds=None, paired=False)


def _pairwise(fn, a, b, claim, seeds, digits):
    return fn(a, b, claim, digits=digits, **_pairing(a, b, seeds))


def claim_verdict(c: dict, *, seeds, floor: float) -> stats.Verdict | None:
    """One claim of :func:`judge` through :mod:`growkit.papers.stats` (None for a precomputed ``holds``)."""
    digits = c.get("digits", 2 if c.get("unit", "points") == "points" else 1)
    if "verdict" in c:
        return c["verdict"]
    if "groups" in c:
        groups, target, up = c["groups"], c["target"], c.get("higher", True)
        fn = stats.higher if up else stats.lower
        parts = [_pairwise(fn, groups[target], v, f"{target} vs {k}", seeds, digits)
                 for k, v in groups.items() if k != target]
        return stats.all_of(c["claim"], parts)
    if "order" in c:
        keys, order = list(c["order"]), c["order"]
        fn = stats.lower if c.get("decreasing", True) else stats.higher
        parts = [_pairwise(fn, order[b], order[a], f"{b} vs {a}", seeds, digits) for a, b in zip(keys, keys[1:])]
        return stats.all_of(c["claim"], parts)
    if "same" in c:
        (na, a), (nb, b) = c["same"].items()
        ref = abs(statistics.fmean(float(x) for x in a))
        return stats.same(a, b, f"{c['claim']} ({na} vs {nb})", margin=c.get("margin", 2 * floor),
                          relative=c.get("rel") or None,
                          reference=ref if c.get("rel") else None, digits=digits, **_pairing(a, b, seeds))
    return None


def _evidence(v, seeds) -> dict:
    """What a verdict was computed from, kept beside it in paper_vs_kit's records: the tests with both arms'
    values, seeds and sources (the run record behind each value, :mod:`growkit.runs.measured`), so that a test
    can recompute every verdict from ``figures/records`` with a separate implementation. A count (``holds``)
    and a verdict judged from an interval alone keep no values."""
    tree = v.evidence() if v is not None else None
    if tree is None:
        return {"kind": "verdict" if v is not None else "count", "seeds": seeds}
    return {"kind": "test", "test": tree, "seeds": seeds}


def judge(figures_dir, name: str, claims: list[dict], *, seeds, n_test: int | None = None) -> str:
    """Compute each claim's verdict (:mod:`growkit.papers.stats`), record it for paper_vs_kit.md, and return
    the caption note.

    A claim: ``claim`` (the paper's statement), ``paper`` (its value, as text), and one of

    * ``groups`` (name -> seeded values) with ``target``: the target is higher (``higher=False``: lower) than
      every other group, each difference with its 95 % t-interval (paired by seed where both arms hold one
      value per seed, Welch otherwise);
    * ``order``: seeded values that fall along the dict's order (``decreasing=False``: rise), every step;
    * ``same``: two seeded sets "about the same", a TOST whose margin is two units (two test images, in
      points, or two blocks with ``unit="blocks"``), or ``margin`` when given, or ``rel`` times the first's
      mean, whichever is larger;
    * ``verdict``: a :class:`growkit.papers.stats.Verdict` computed by the caller;
    * a precomputed ``holds`` (True / False / None) with ``kit`` (text), for counts that need no interval.

    ``digits``: decimals of the verdict's numbers (default 2 for points, else 1). ``own=True``: a question the kit asks itself (no paper states it): the verdict reads "Holds" / "Does not
    hold (the kit's own finding)" instead of agreeing with a paper.

    One seed gives no verdict: "Illustrative (1 run)".

    The record of each verdict keeps the values it was computed from and, for each, the run record cell it
    comes from: the numbers of a run cache result name their run (:mod:`growkit.runs.measured`), arithmetic
    on them included; a threshold the claim states is best passed as ``measured.constant``."""
    lines, rows = [], []
    seeds = list(seeds)
    for c in claims:
        if c.get("unit", "points") == "points":
            if n_test is None and "same" in c:
                raise GrowkitError(f"judge: the claim {c['claim']!r} needs n_test (its margin is two test images)")
            floor = noise_points(n_test) if n_test else 0.0
        else:
            floor = 1.0
        v = claim_verdict(c, seeds=seeds, floor=floor)
        evidence = _evidence(v, seeds)
        if v is not None:
            line, kit, head = v.text, v.kit, v.head
            if c.get("own"):  # the kit's own question: no paper to agree with
                own = {"Agrees with the paper": "Holds (the kit's own finding)",
                       "Disagrees with the paper": "Does not hold (the kit's own finding)"}.get(head, head)
                line, head = line.replace(head, own, 1), own
        else:
            head = ("Illustrative (1 run)" if len(seeds) < 2 else
                    {True: "Agrees with the paper", False: "Disagrees with the paper",
                     None: f"Not resolved at n = {len(seeds)}"}[c["holds"]])
            kit = c["kit"]
            line = f"{head}: {c['claim']} ({kit})."
        lines.append(line)
        rows.append({"quantity": c["claim"], "paper": c["paper"], "kit": kit, "verdict": head, "evidence": evidence})
    record_paper_vs_kit(figures_dir, name, rows)
    return " ".join(lines + [stats.method_note(seeds)])


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
