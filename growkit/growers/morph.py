"""The former name of :mod:`growkit.growers.network_morphism` (kept so older imports work)."""
from ..methods.autogrow.morphism import NetworkMorphism

Morph = NetworkMorphism

__all__ = ["Morph", "NetworkMorphism"]
