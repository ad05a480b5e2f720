"""Runs on disk: the method registry, starting and resuming runs (lifecycle), the run cache,
run directories that never lose a user's files (rundir, recover), and a run's files read back (records)."""
