"""Learn to Grow's registration: ``learn-to-grow``, a method with its own continual loop
(:mod:`growkit.methods.learn_to_grow.own_loop` starts, resumes and reports its runs)."""
from __future__ import annotations

from ...errors import GrowkitError
from ...runs.registry import Method, register
from . import own_loop
from .loop import L2GConfig


def _no_build(train, options):
    raise GrowkitError("learn-to-grow runs its own continual loop; start it with runs.run or the CLI")


register(Method("learn-to-grow", "continual learning: per layer and task, reuse, adapt or add new parameters "
                "(Li et al., ICML 2019)", _no_build, L2GConfig, own_loop=own_loop))
