"""Parameter snapshots during a run (placeholder for the trajectory module; filled below)."""
