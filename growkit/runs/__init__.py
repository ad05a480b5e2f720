"""Runs on disk: the method registry, starting and resuming runs (lifecycle), the run cache,
run directories that never lose a user's files (rundir, recover), and a run's files read back (records)."""

from .lifecycle import resume, run  # noqa: E402,F401  (the two calls most users need: growkit.runs.run / resume)
