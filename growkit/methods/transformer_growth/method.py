"""The ``lm`` method's registration: a decoder-only transformer trained on a token stream by its own loop
(:mod:`growkit.methods.transformer_growth.own_loop` starts, resumes and reports its runs)."""
from __future__ import annotations

from ...errors import GrowkitError
from ...runs.registry import Method, register
from . import own_loop
from .config import LMConfig


def _no_build(train, options):
    raise GrowkitError("lm runs its own loop; start it with runs.run('lm', None, LMConfig(...), out) or the CLI")


register(Method("lm", "train a decoder-only transformer on a token stream (next-token cross-entropy, AdamW, a "
                "fully decaying schedule; budgets in steps or tokens)", _no_build, LMConfig, own_loop=own_loop))
