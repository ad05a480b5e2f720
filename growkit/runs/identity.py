"""When two run configs name the same run: equal up to what cannot change results, and run by the same
growkit code. The run cache (:mod:`growkit.runs.cache`) and the shared-run pool (:mod:`growkit.runs.pool`)
both ask this question, so it lives below them both."""
from __future__ import annotations

from ..engine import records
from ..errors import GrowkitError
from . import registry

_IGNORED = {"progress"}  # config keys that do not change results


def essential(rc: dict) -> dict:
    """A run config without what cannot change its results (the environment stamp, progress bars)."""
    return {k: ({kk: vv for kk, vv in v.items() if kk not in _IGNORED} if isinstance(v, dict) else v)
            for k, v in rc.items() if k != "environment"}


def same(stored: dict, wanted: dict) -> bool:
    """Equal up to the environment, progress bars, former command names and option defaults added since, and run by
    the same growkit code (a hash of its source files: a code fix reruns)."""
    if stored.get("environment", {}).get("code") != records.code_hash():
        return False
    try:
        stored = registry.normalize(stored)
    except (GrowkitError, KeyError, TypeError, AttributeError):  # a foreign or older config: not the same run
        return False
    return essential(stored) == essential(registry.normalize(wanted))
