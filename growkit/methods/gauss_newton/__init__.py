"""Gauss-Newton split and prune morphisms: widths found by scoring every channel's split or removal.

``estimate`` (the Gauss-Newton estimates), ``grower`` (Algorithm 1), ``method`` (options, registration),
``study`` (the paper's studies as functions), ``summaries`` (Figures 3-4 in numbers and their verdicts),
``plots`` (its figures)."""
