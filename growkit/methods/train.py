"""The ``train`` method: a fixed architecture, the train config's schedule, no grower."""
from __future__ import annotations

from ..engine.config import TrainConfig
from ..runs.registry import Method, register


def _train(train: TrainConfig, _options):
    return None, None, train


register(Method("train", "train a fixed architecture", _train))
