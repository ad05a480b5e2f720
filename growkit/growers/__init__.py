"""The grower protocol: what a grower decides (:mod:`~growkit.growers.base`), what it may see
(:mod:`~growkit.growers.view`), and the initializers of new weights every depth grower shares. The
growers themselves live with their methods (``growkit/methods/<name>/grower.py``)."""
from .base import Decision, Grower
from .view import GrowerView

__all__ = ["Decision", "Grower", "GrowerView"]
