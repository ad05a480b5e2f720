"""Small decoder-only transformers trained on a token stream, the ground growth of transformers is studied on.

``config`` (:class:`LMConfig`, the run's options), ``loop`` (:class:`LMRun`: windows, AdamW, schedule,
evaluation, counted multiply-adds, checkpoints, growth hook), ``own_loop`` (run directories), ``method``
(the ``lm`` registration).
"""
from .config import LMConfig  # noqa: F401
from .loop import LMRun, count_lm_macs, lm_loss  # noqa: F401
