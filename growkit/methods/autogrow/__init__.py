"""AutoGrow (Wen et al., KDD 2020): depth grown by stacking sub-modules, and the Network Morphism study.

``config`` (options), ``grower`` (Algorithm 1), ``morphism`` (Network Morphism), ``method``
(registrations), ``study`` (the notebooks' runs and table rows)."""
