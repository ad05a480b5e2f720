"""AdeNeL: widths grown from a thin seed by the support set of an inverse scale space (LBI).

``lbi`` (the optimizer), ``policy`` (candidates, budgets, rounds), ``grower``, ``prune`` (the L1-pruning
comparator), ``method`` (registrations), ``study`` (the notebooks' runs and rows), ``plots``."""
