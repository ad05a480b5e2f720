"""Pictures of growth: optimization trajectories, loss surfaces, plots, live notebook views."""
