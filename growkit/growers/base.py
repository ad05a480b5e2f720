"""The grower protocol.

A grower has two separate parts, never mixed:

* a **policy**, :meth:`Grower.decide`, called after every epoch's validation of
  a growing phase: it says *when* and *where* to grow by returning surgery
  plans (and whether growing is finished);
* an **initializer**, :meth:`Grower.initialize`, called after the trainer has
  applied the plans: it sets *what* the new weights are.

Growers never touch the optimizer (the trainer carries its state) and keep
their state JSON-ready so it goes into every checkpoint.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class Decision:
    plans: list = field(default_factory=list)  # surgery plans to apply now
    done: bool = False  # growing is finished: move on to the next phase
    info: dict = field(default_factory=dict)  # what the growth record should say about this decision


class Grower:
    name = "grower"

    def __init__(self):
        self._stop = threading.Event()  # set from another thread (e.g. a notebook button)

    def request_stop(self) -> None:
        """Finish growing at the next decision (the run moves on to fine-tuning)."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def decide(self, epoch: int, row: dict, model) -> Decision:
        """``epoch``: epochs completed in the growing phase; ``row``: that epoch's metrics."""
        raise NotImplementedError

    def initialize(self, model, edits, ctx) -> dict | None:
        """Set the new weights of the applied ``edits``; return facts for the growth record."""
        return None

    def state_dict(self) -> dict:
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        raise NotImplementedError
