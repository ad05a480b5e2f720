"""Learn to Grow (Li et al., ICML 2019): continual learning where each layer of each task reuses,
adapts or adds parameters, chosen by a differentiable architecture search.

``continual`` (task streams and metrics), ``supernet``, ``search``, ``steps`` (its steps on the shared
passes), ``ddp`` (those steps under a process group), ``loop`` (options and the per-task loop), ``baselines``
(fine-tuning, EWC and joint training on one shared network), ``own_loop`` (its run directories: staged,
resumed, cached), ``method`` (registration), ``study`` (tables and verdicts), ``plots``."""
