"""``growkit figures``: execute the project's notebooks with papermill under a parameter profile.

* ``smoke``: the smallest settings (tests; seconds to a minute per notebook);
* ``cpu``: digits on a CPU, the defaults written in each notebook's parameters
  cell (the committed ``figures/`` come from this profile);
* ``paper``: the papers' datasets, nets and epochs, for a user's GPU machine
  (see :mod:`growkit.papers.profiles`).

It works on the growkit checkout you stand in (found from the working
directory upward) or the one ``--repo`` names, never on the checkout an
installed growkit came from. Executed copies go to ``runs/<profile>/executed/``
(git-ignored), runs to ``runs/<profile>/<notebook>/``; figures and tables of the
``cpu`` profile (the committed set) to ``figures/``, of every other profile to
``runs/<profile>/figures/`` (or ``--figures-dir``). A failing notebook does not
stop the others; the command ends with a summary (the failing cell of each
failure) and exits 1 if anything failed.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from ..engine.records import atomic_write
from ..errors import GrowkitError
from ..runs import pool as run_pool
from .profiles import HEADLESS, PROFILES, profile_parameters
from .records import write_records


def repo_root(repo: str | Path | None = None) -> Path:
    """The checkout ``growkit figures`` works on: ``repo`` (``--repo``) if given, else the growkit checkout
    holding the working directory. Never the checkout the imported package lives in: with growkit installed
    from one clone, a command run in another must execute and write that other clone's notebooks."""
    from ..data.catalog import find_checkout
    if repo is not None:
        root = Path(repo).expanduser().resolve()
        if not (root / "notebooks").is_dir():
            raise GrowkitError(f"--repo {repo}: no notebooks/ folder there; name a growkit checkout")
        return root
    root = find_checkout()
    if root is None:
        raise GrowkitError(f"no growkit checkout (growkit/ and notebooks/) at or above {Path.cwd()}: run "
                           "`growkit figures` inside a clone, or name one with --repo DIR")
    return root


def output_dirs(profile: str, root: Path, out_dir: str | None = None, runs_dir: str | None = None
                ) -> tuple[Path, Path]:
    """(figures folder, runs folder of the profile). Only the cpu profile, whose outputs are the committed
    set, writes into the checkout's ``figures/``; every other profile into ``runs/<profile>/figures/``."""
    runs_root = (Path(runs_dir).resolve() if runs_dir else root / "runs") / profile
    if out_dir:
        return Path(out_dir).resolve(), runs_root
    return (root / "figures" if profile == "cpu" else runs_root / "figures"), runs_root


def default_jobs() -> int:
    """Notebooks run at a time when ``--jobs`` is not given: one per core this process may use (each gets one
    thread), at most 4 (every kernel holds its own copy of torch and the data, about 0.5-1 GB)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, 4))


def list_notebooks(only: str | None = None, notebooks_dir: Path | None = None, repo: str | Path | None = None
                   ) -> list[Path]:
    nbs = sorted(Path(notebooks_dir or repo_root(repo) / "notebooks").glob("*.ipynb"))
    if only:
        keys = [k.strip() for k in only.split(",") if k.strip()]
        nbs = [nb for nb in nbs if any(k in nb.stem for k in keys)]
        if not nbs:
            raise GrowkitError(f"--only {only!r} matches no notebook")
    return nbs


def _ipc_kernel_manager(cwd: Path, log=None):
    from jupyter_client.manager import AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        """The kernel is local: Unix sockets, no open TCP port. Each kernel's sockets get a unique temporary path:
        jupyter_client's default puts them at ``kernel-ipc-<port>`` in the working directory and picks the ports
        by looking for free names, so two notebooks started together (``--jobs 2``) raced to the same sockets and
        their messages failed signature checks.

        The kernel starts in ``cwd`` (the notebook's folder) by the launcher's own argument. papermill's ``cwd=``
        changes the working directory of this whole process for the duration of a notebook, so with ``--jobs``
        two threads restored each other's directory and a kernel could start in the wrong one."""
        transport = "ipc"

        def __init__(self, **kw):
            super().__init__(**kw)  # jupyter_client removes the socket files <ip>-<port> when the kernel ends
            self.ip = os.path.join(tempfile.gettempdir(), f"growkit-kernel-{uuid.uuid4().hex}")

        async def start_kernel(self, **kw):
            kw["cwd"] = str(cwd)
            if log is not None:
                kw["stdout"] = kw["stderr"] = log
            return await super().start_kernel(**kw)

    return IPCKernelManager


def run_notebook(nb: Path, params: dict, executed: Path, timeout: int | None = None) -> dict:
    """Execute ``nb`` into ``executed``; the kernel's own log (stderr: its shutdown messages, warnings) goes to
    ``<executed>.kernel.log`` beside it, not to the terminal, where it would read as an error of a notebook
    that succeeded."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    t0 = time.perf_counter()
    status = {"notebook": nb.stem, "status": "ok", "cell": None, "error": None}
    log = executed.with_suffix(".kernel.log")
    try:
        with open(log, "wb") as kernel_log:
            pm.execute_notebook(str(nb), str(executed), parameters=params, progress_bar=False,
                                log_output=False, kernel_name="python3", execution_timeout=timeout,
                                kernel_manager_class=_ipc_kernel_manager(nb.resolve().parent, kernel_log))
    except PapermillExecutionError as e:
        status.update(status="failed", cell=e.cell_index, error=f"{e.ename}: {e.evalue}".splitlines()[0][:300])
    except Exception as e:  # kernel died, timeout, unreadable notebook...
        status.update(status="failed", error=f"{type(e).__name__}: {e}".splitlines()[0][:300])
    status["seconds"] = round(time.perf_counter() - t0, 1)
    if log.exists() and not log.stat().st_size:
        log.unlink()  # the kernel said nothing
    elif status["status"] != "ok" and log.exists():
        status["kernel_log"] = str(log)
    return status


class Progress:
    """Per-notebook lines of ``growkit figures``: whole lines (never two run together, whatever thread writes),
    each with the elapsed time and an ETA. A notebook's expected time is its time in the profile's previous
    ``summary.json``, else the mean of those finished in this run; with ``jobs`` at a time the ETA is the
    expected time left divided by ``jobs``."""

    def __init__(self, notebooks: list[str], jobs: int, previous: dict | None = None, write=None):
        import threading
        self.names, self.jobs, self.previous = list(notebooks), jobs, dict(previous or {})
        self.lock, self.t0 = threading.Lock(), time.perf_counter()
        self.started: dict[str, float] = {}
        self.finished: dict[str, float] = {}
        self._write = write or (lambda line: (sys.stdout.write(line + "\n"), sys.stdout.flush()))

    def expected(self, name: str) -> float | None:
        if name in self.previous:
            return float(self.previous[name])
        return sum(self.finished.values()) / len(self.finished) if self.finished else None

    def eta(self) -> str:
        now = time.perf_counter()
        left = 0.0
        for n in self.names:
            if n in self.finished:
                continue
            e = self.expected(n)
            if e is None:
                return "ETA unknown until a notebook finishes"
            left += max(e - (now - self.started[n]), 0.0) if n in self.started else e
        return f"ETA {_clock(left / self.jobs)}"

    def start(self, name: str) -> None:
        with self.lock:
            self.started[name] = time.perf_counter()
            e = self.expected(name)
            guess = f", expected {_clock(e)}" if e is not None else ""
            self._write(f"  start  {name} ({len(self.started)}/{len(self.names)}{guess}); "
                        f"{_clock(time.perf_counter() - self.t0)} elapsed, {self.eta()}")

    def done(self, r: dict) -> None:
        with self.lock:
            self.finished[r["notebook"]] = r["seconds"]
            where = f" at cell {r['cell']}: {r['error']}" if r["cell"] is not None else (
                f": {r['error']}" if r["error"] else "")
            log = f" (kernel log: {r['kernel_log']})" if r.get("kernel_log") else ""
            self._write(f"  [{len(self.finished)}/{len(self.names)}] {r['status']:6s} {r['notebook']} "
                        f"({r['seconds']:.0f} s){where}{log}; {_clock(time.perf_counter() - self.t0)} elapsed"
                        + (f", {self.eta()}" if len(self.finished) < len(self.names) else ""))


def _clock(seconds: float) -> str:
    """``75`` -> ``1 min 15 s``; ``3725`` -> ``1 h 02 min``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


RUN_RECORD = "figures_run.json"  # in <figures>/records/: the timings of the run that made the set


def _previous_times(*summaries: Path) -> dict:
    """Seconds per notebook that finished ok in a previous run of the profile: from the first of ``summaries``
    (the runs folder's ``summary.json``, then the figures set's committed run record) that can be read
    (none: {})."""
    for summary in summaries:
        try:
            return {r["notebook"]: float(r["seconds"]) for r in json.loads(summary.read_text())["notebooks"]
                    if r.get("status") == "ok"}
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return {}


def longest_first(nbs: list[Path], previous: dict) -> list[Path]:
    """Notebooks ordered for a pool of workers: those with no previous time first (they may be long), then
    by previous time, longest first, so a long notebook never starts last and leaves a worker idle."""
    return sorted(nbs, key=lambda nb: (nb.stem in previous, -previous.get(nb.stem, 0.0), nb.stem))


def run_figures(profile: str = "cpu", only: str | None = None, jobs: int | None = None, out_dir: str | None = None,
                timeout: int | None = None, runs_dir: str | None = None, notebooks_dir: str | None = None,
                repo: str | None = None) -> int:
    if profile not in ("smoke", "cpu", "paper"):
        raise GrowkitError(f"profile must be smoke, cpu or paper, got {profile!r}")
    jobs = default_jobs() if jobs is None else jobs
    if jobs < 1:
        raise GrowkitError(f"--jobs must be >= 1, got {jobs}")
    if timeout is not None and not 0 < timeout <= 10 ** 7:
        raise GrowkitError(f"--timeout must be > 0 seconds (at most 10000000; leave it out for no limit), "
                           f"got {timeout}")
    from ..runs.rundir import check_output_path
    for flag, path in (("--figures-dir", out_dir), ("--runs-dir", runs_dir)):
        if path is not None:
            check_output_path(path, flag)  # under a file, /proc, /sys, unwritable: one line, nothing made
    root = repo_root(repo) if notebooks_dir is None or not (out_dir and runs_dir) else None
    figures_dir, runs_root = output_dirs(profile, root, out_dir, runs_dir)
    nbs = list_notebooks(only, notebooks_dir, repo)
    (runs_root / "executed").mkdir(parents=True, exist_ok=True)
    run_pool.enable(runs_root)  # the notebooks share finished identical runs (growkit.runs.pool)
    if jobs > 1:  # share the cores instead of oversubscribing them
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // jobs)))
    print(f"growkit figures: {len(nbs)} notebook(s), profile {profile}, {jobs} at a time -> {figures_dir}",
          flush=True)

    previous = _previous_times(runs_root / "summary.json", figures_dir / "records" / RUN_RECORD)
    nbs = longest_first(nbs, previous)
    progress = Progress([nb.stem for nb in nbs], jobs, previous)

    def one(nb: Path) -> dict:
        params = profile_parameters(nb.stem, profile) if nb.stem in PROFILES else {}
        params.update(HEADLESS.get(nb.stem, {}))
        params.update(profile=profile, runs_dir=str(runs_root / nb.stem), figures_dir=str(figures_dir))
        progress.start(nb.stem)
        r = run_notebook(nb, params, runs_root / "executed" / nb.name, timeout)
        if r["status"] == "ok":
            write_records(runs_root / nb.stem, figures_dir, nb.stem)
        progress.done(r)
        return r

    results, t0 = [], time.perf_counter()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(one, nb) for nb in nbs]
        for fut in as_completed(futures):
            results.append(fut.result())
    total = round(time.perf_counter() - t0, 1)
    results.sort(key=lambda r: r["notebook"])
    summary = {"profile": profile, "total_seconds": total, "notebooks": results}
    (runs_root / "summary.json").write_text(json.dumps(summary, indent=2))
    failed = [r for r in results if r["status"] != "ok"]
    if not failed and only is None:  # a whole set: its timings travel with it (the next fresh clone's order, ETA)
        write_run_record(figures_dir, summary, jobs)
    readme = figures_dir / "README.md"
    if failed:  # an index of a half-made set would drop entries: the last complete one stays
        print(f"{readme} left as it was ({len(failed)} notebook(s) failed)")
    elif not write_index(figures_dir, profile) and figures_dir.is_dir():
        print(f"{readme} left as it is: it is not an index growkit wrote (they start with {INDEX_MARK!r})")
    print(f"\n{len(results) - len(failed)} ok, {len(failed)} failed, {total:.0f} s in all "
          f"(executed notebooks in {runs_root / 'executed'})")
    for r in failed:
        print(f"FAILED {r['notebook']}" + (f" (cell {r['cell']})" if r["cell"] is not None else "") +
              f": {r['error']}" + (f" (kernel log: {r['kernel_log']})" if r.get("kernel_log") else ""),
              file=sys.stderr)
    return 1 if failed else 0


def write_run_record(figures_dir: Path, summary: dict, jobs: int) -> Path:
    """``<figures>/records/figures_run.json``: how the set was made (profile, jobs, cores, threads, growkit
    commit, date, seconds per notebook and in all), committed with the cpu set."""
    from datetime import datetime, timezone

    from .report import stamp
    record = {"profile": summary["profile"], "jobs": jobs, "cores": os.cpu_count(),
              "threads_per_notebook": os.environ.get("OMP_NUM_THREADS"), "growkit_commit": stamp(),
              "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "total_seconds": summary["total_seconds"],
              "notebooks": [{"notebook": r["notebook"], "status": r["status"], "seconds": r["seconds"]}
                            for r in summary["notebooks"]]}
    path = figures_dir / "records" / RUN_RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(record, indent=2) + "\n")
    return path


# Where each output first appears in the AutoGrow paper (the index follows it; anything else goes last).
PAPER_ORDER = ["quickstart_growth_curves", "autogrow_table2_morphism", "autogrow_fig2_trajectories_morphism_vs_scratch",
               "autogrow_table3_c_autogrow", "autogrow_fig3_trajectories", "autogrow_fig4_growth_curves",
               "autogrow_table5_interval_K", "autogrow_table6_initializers", "autogrow_table7_seed_depth",
               "autogrow_table4_adaptability", "autogrow_fig5_vs_manual_search", "autogrow_table9_plain_nets",
               "autogrow_fig6_loss_surfaces_Basic3ResNet", "autogrow_fig6_loss_surfaces_Plain3Net",
               "autogrow_table8_dataset_fraction", "autogrow_table10_imagenet", "autogrow_fig7_vs_manual_design",
               "autogrow_table11_efficiency", "autogrow_fig8a_growth_curves", "autogrow_fig8b_growth_curves"]


def _paper_rank(stem: str) -> tuple:
    """A stem's place in the paper. A variant not listed (Figure 6 for a net a user added to ``nets``) goes right
    after the listed outputs of the same figure or table, not to the end of the index."""
    import re
    if stem in PAPER_ORDER:
        return (PAPER_ORDER.index(stem), stem)
    m = re.match(r"(autogrow_(?:fig|table)\d+[a-z]?)_", stem)
    same = [i for i, n in enumerate(PAPER_ORDER) if m and n.startswith(m.group(1) + "_")]
    return (max(same) + 0.5 if same else len(PAPER_ORDER), stem)


FINDINGS = "FINDINGS.md"  # hand-written, committed: what the figures show; the index leads with it


# The first line of every index growkit writes: only a README.md that starts with it (or with the header growkit
# wrote before this line existed) is growkit's to replace; any other README.md is the user's and stays.
INDEX_MARK = "<!-- index written by `growkit figures`; it is rewritten on every run (hand-written text: FINDINGS.md) -->"
_OLD_HEAD = ("# Figures and tables", "", "Regenerated by `growkit figures --profile cpu` (see the top-level README).")


def index_is_growkits(readme: Path) -> bool:
    """``readme`` is absent or an index growkit wrote (so it may be replaced)."""
    if not readme.exists() and not readme.is_symlink():
        return True
    if readme.is_symlink() or not readme.is_file():
        return False
    try:
        with open(readme, encoding="utf-8") as f:
            head = [f.readline().rstrip("\n") for _ in range(3)]
    except (OSError, UnicodeDecodeError):
        return False
    return head[0] == INDEX_MARK or (head[:2] == list(_OLD_HEAD[:2]) and head[2].startswith(_OLD_HEAD[2]))


def write_index(figures_dir: Path, profile: str = "cpu") -> bool:
    """figures/README.md: the hand-written FINDINGS.md if there is one, then every figure and table with its
    caption, in the paper's order; and figures/paper_vs_kit.md from the tables' records. A README.md that
    growkit did not write is left as it is (returns False; True when the index was written). ``profile``: the
    profile that made the set, named in the header (only cpu's is the committed set)."""
    from .report import read_caption, write_paper_vs_kit
    figures_dir = Path(figures_dir)
    if not figures_dir.is_dir():
        return False
    if not index_is_growkits(figures_dir / "README.md"):
        return False
    write_paper_vs_kit(figures_dir, PAPER_ORDER)
    lines = [INDEX_MARK, "# Figures and tables", "",
             f"Regenerated by `growkit figures --profile {profile}` (see the top-level README)"
             + ("" if profile == "cpu" else "; not the committed set (that is figures/, made by the cpu profile)")
             + ". Each entry is named after the paper's figure or table it reproduces; its caption says the "
             "dataset, profile and date.", ""]
    items = [p for p in figures_dir.glob("*.png")]
    items += [p for p in figures_dir.glob("*.md") if p.name not in ("README.md", "paper_vs_kit.md", FINDINGS)]
    if (figures_dir / "paper_vs_kit.md").exists():
        lines += ["The paper's value and the kit's for every table: [paper_vs_kit.md](paper_vs_kit.md).", ""]
    if (figures_dir / FINDINGS).exists():
        lines += [(figures_dir / FINDINGS).read_text().rstrip("\n"), ""]
    for item in sorted(items, key=lambda p: _paper_rank(p.stem)):
        if item.suffix == ".png":
            lines += [f"## {item.stem}", "", read_caption(item), "", f"![{item.stem}]({item.name})", ""]
        else:
            lines += [f"## {item.stem}", "", item.read_text(), f"([CSV]({item.stem}.csv))", ""]
    atomic_write(figures_dir / "README.md", "\n".join(lines))
    return True


__all__ = ["run_figures", "list_notebooks", "write_index", "PROFILES"]
