"""Growers: policies that decide when and where a network grows, and initializers of new weights."""
from .autogrow import AutoGrow
from .base import Decision, Grower
from .gauss_newton import GaussNewton
from .network_morphism import NetworkMorphism
from .view import GrowerView

__all__ = ["AutoGrow", "Decision", "GaussNewton", "Grower", "GrowerView", "NetworkMorphism"]
