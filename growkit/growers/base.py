"""The grower protocol.

A grower has two separate parts, never mixed:

* a **policy**, :meth:`Grower.decide`, called after every epoch's validation of
  a growing phase with a read-only :class:`~growkit.growers.view.GrowerView`
  (epoch, the metrics row without test fields, the model, optimizer state by
  name, training batches and a gradient probe): it says *when* and *where* to
  grow by returning surgery plans (and whether growing is finished);
* an **initializer**, :meth:`Grower.initialize`, called after the trainer has
  applied the plans and carried the optimizer state: it sets *what* the new
  weights are, reading data through the view it gets.

Growers never touch the optimizer (the trainer carries its state) and keep
their state in :meth:`Grower.state_dict` (JSON values and tensors), which goes
into every checkpoint.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

from .view import GrowerView


@dataclass
class Decision:
    plans: list = field(default_factory=list)  # surgery plans to apply now
    done: bool = False  # growing is finished: move on to the next phase
    info: dict = field(default_factory=dict)  # what the growth record should say about this decision


class Grower:
    name = "grower"

    def __init__(self):
        self._stop = threading.Event()  # set from another thread (e.g. a notebook button)
        self.stop_by = None  # who asked: recorded with the run (config.json's "stopped", result.json)

    def request_stop(self, by: str = "request") -> None:
        """Finish growing at the next decision (the run moves on to fine-tuning). The trainer records the stop
        in the run's config, so the stopped run is never taken for a finished unstopped one of that config."""
        if not self._stop.is_set():
            self.stop_by = str(by)
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def decide(self, view: GrowerView) -> Decision:
        """``view.epoch``: epochs completed in the growing phase; ``view.row``: that epoch's metrics."""
        raise NotImplementedError

    # Optional: ``replaces_epoch(view) -> (train loss, train acc %) | None``, asked before each epoch of a
    # growing phase; a tuple means the grower spent the epoch on parameters of its own with the net
    # frozen (Gauss-Newton's morphism phases) and the trainer does not train the net that epoch.

    def initialize(self, model, edits, view: GrowerView | None) -> dict | None:
        """Set the new weights of the applied ``edits``; return facts for the growth record."""
        return None

    def state_dict(self) -> dict:
        """JSON-ready values and tensors (checkpoints store both)."""
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        raise NotImplementedError
