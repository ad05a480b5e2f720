"""A live view of a growing run in JupyterLab (ipywidgets).

    from growkit.methods.autogrow import study as X
    view = LiveGrowthView(n_stages=3)
    view.start(lambda cb, hook: X.autogrow(..., callbacks=[cb], grower_hook=hook))
    # next cell
    result = view.result_now()

Training runs in a background thread and the starting cell returns at once, so
the kernel stays idle and handles the front end's messages: the depth of every
sub-network is drawn as a bar, the validation accuracy as a curve with growth
events marked, and a button asks the grower to stop growing (the run then
fine-tunes the net it has). Widget traits are only *set* from the training
thread; ipywidgets sends them as ordinary state updates.

No cell may wait for the run while the user clicks: a kernel busy with a cell
does not handle widget messages until that cell ends (and with ipykernel 7 the
known polling workarounds no longer get them through). So ``result_now()``
returns the result of a finished run, and for a running one stops a "Run All"
with a one-line note instead of blocking; re-run the cells below when the view
says done. Headless (papermill), ``view.run(...)`` runs in the calling thread
and ``result_now()`` simply returns.

A run the cache hands back (same config, same code: nothing trains) is shown
as what it is: "reused", its curves drawn from its ``metrics.jsonl`` (pass
``run_dir``), a stop it had said, and no stop button.
"""
from __future__ import annotations

import io
import threading

from ..engine.callbacks import Callback


class StillRunning(Exception):
    """Raised by ``result_now()`` while the run goes on; IPython shows only the message."""

    def _render_traceback_(self):
        return [str(self)]


class LiveGrowthView(Callback):
    def __init__(self, n_stages: int, max_depth_bar: int = 20, title: str = "AutoGrow"):
        import ipywidgets as W
        self.rows, self.growth = [], []
        self.grower = None
        self.result = self.error = None
        self._thread = None
        self.bars = [W.IntProgress(value=1, min=0, max=max_depth_bar, description=f"stage {i}",
                                   bar_style="info", layout=W.Layout(width="95%")) for i in range(n_stages)]
        self.depth_labels = [W.Label("1") for _ in range(n_stages)]
        self.plot = W.Image(format="png", layout=W.Layout(width="560px"))
        self.status = W.HTML(f"<b>{title}</b>: starting (loading the data, or reading a finished run)")
        self.stop_button = W.Button(description="Stop growing, fine-tune now", button_style="warning",
                                    icon="stop", layout=W.Layout(width="260px"), disabled=True)
        self.stop_button.on_click(self._on_stop)
        depth_box = W.VBox([W.HTML("<b>blocks per sub-network</b>")] +
                           [W.HBox([b, l]) for b, l in zip(self.bars, self.depth_labels)],
                           layout=W.Layout(width="330px"))
        self.widget = W.VBox([self.status, W.HBox([depth_box, self.plot]), self.stop_button])
        self.title = title

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)

    # -- callbacks the trainer calls
    def attach(self, grower) -> None:
        self.grower = grower
        self.stop_button.disabled = False

    def on_fit_start(self, trainer) -> None:
        """A resumed run: draw the epochs it had before the interruption (the run directory's recorder has just
        cut its metrics to the checkpoint) and the growth events among them."""
        if trainer.loop.epoch > 0 and trainer.out is not None and (trainer.out / "metrics.jsonl").exists():
            from ..engine.records import read_metrics
            self.rows = read_metrics(trainer.out)[:trainer.loop.epoch]
            self.growth = [e["epoch"] for e in trainer.loop.events]
            self.plot.value = self._render()

    def _on_stop(self, _button) -> None:
        if self.grower is not None:
            self.grower.request_stop("stop button")
            self.stop_button.disabled = True
            self.stop_button.description = "stop requested"

    def on_epoch(self, trainer, row: dict) -> None:
        self.rows.append(row)
        depths = getattr(trainer.model, "depths", None)
        if depths:
            for bar, lab, d in zip(self.bars, self.depth_labels, depths):
                bar.max = max(bar.max, d + 2)
                bar.value = d
                lab.value = str(d)
        growing = row["phase"] == "grow"
        if not growing:
            self.stop_button.disabled = True
        self.status.value = (f"<b>{self.title}</b>: epoch {row['epoch']} ({row['phase']}), {row['arch']}, "
                             f"val {row['val_acc']:.2f}%")
        self.plot.value = self._render()

    def on_growth(self, trainer, event: dict) -> None:
        self.growth.append(event["epoch"])

    def _render(self) -> bytes:
        from matplotlib.figure import Figure

        from .plots import epoch_axis
        fig = Figure(figsize=(5.6, 2.8), dpi=90)
        ax = fig.add_subplot()
        ep = [r["epoch"] for r in self.rows]
        ax.plot(ep, [r["val_acc"] for r in self.rows], "-", color="tab:green", label="val acc")
        ax.plot(ep, [r["train_acc"] for r in self.rows], "--", color="tab:green", alpha=0.6, label="train acc")
        for g in self.growth:
            ax.axvline(g, color="0.6", lw=0.6)
        fine = [r["epoch"] for r in self.rows if r["phase"] == "finetune"]
        if fine:
            ax.axvspan(min(fine) - 1, max(fine), color="tab:blue", alpha=0.08)
        ax.set_xlabel("epoch")
        epoch_axis(ax)
        ax.set_ylabel("accuracy (%)")
        ax.legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return buf.getvalue()

    def _done(self, result: dict, run_dir=None) -> None:
        """The run has its result: no stop button any more; a run that trained nothing here (the cache returned
        a finished run) is drawn from its records and labelled reused."""
        self.stop_button.disabled = True
        self.stop_button.layout.display = "none"
        stop = result.get("stopped") if isinstance(result, dict) else None
        said = f"; growing stopped by {stop['by']} at epoch {stop['epoch']}" if stop else ""
        if self.rows:
            self.status.value += said + " — <b>done</b>: run the cells below"
            return
        from pathlib import Path
        if run_dir is not None and (Path(run_dir) / "metrics.jsonl").exists():
            from ..engine.records import read_metrics
            self.rows = read_metrics(run_dir)
        self.growth = [e["epoch"] for e in result.get("growth_events", [])]
        for bar, lab, d in zip(self.bars, self.depth_labels, result.get("depths") or []):
            bar.max = max(bar.max, d + 2)
            bar.value = d
            lab.value = str(d)
        if self.rows:
            self.plot.value = self._render()
        else:
            self.plot.layout.display = "none"  # nothing to draw (no run_dir given): no empty image
        where = f" from {run_dir}" if run_dir is not None else ""
        test = f", test {result['test_acc']:.2f}%" if result.get("test_acc") is not None else ""
        self.status.value = (f"<b>{self.title}</b>: finished run reused{where} (same config, same code; nothing "
                             f"trained now): {result.get('found', result.get('arch'))}{test}{said} — <b>done</b>")

    # -- running
    def run(self, fn, run_dir=None):
        """Run ``fn(callback, grower_hook)`` here and now (headless). ``run_dir``: the run's folder, to draw a
        finished run the cache returns."""
        self.result = fn(self, self.attach)
        self._done(self.result, run_dir)
        return self.result

    def start(self, fn, run_dir=None) -> None:
        """Run ``fn(callback, grower_hook)`` in a background thread; the notebook stays live."""
        def target():
            try:
                self.result = fn(self, self.attach)
                self._done(self.result, run_dir)
            except BaseException as e:  # shown in the view and re-raised by wait()
                self.error = e
                self.status.value = f"<b>{self.title}</b>: failed: {e!r}"
        self._thread = threading.Thread(target=target, daemon=True)
        self._thread.start()

    def result_now(self):
        """The finished run's result; while it runs, a one-line StillRunning (stops "Run All" quietly)."""
        if self.error is not None:
            raise self.error
        if self._thread is not None and self._thread.is_alive():
            raise StillRunning("The run is still going (see the live view above). "
                               "When it says done, run this cell and the ones below again.")
        return self.result

    def wait(self):
        """Block until the run ends (scripts; in a notebook this also blocks the stop button)."""
        if self._thread is not None:
            self._thread.join()
        if self.error is not None:
            raise self.error
        return self.result
