"""The methods growkit runs, one package each; importing this package registers every one of them with
:mod:`growkit.runs.registry` (each package's ``method.py`` registers itself when imported).

* :mod:`~growkit.methods.train`: ``train``, a fixed architecture;
* :mod:`~growkit.methods.autogrow`: ``autogrow``, ``network-morphism`` (depth, AutoGrow);
* :mod:`~growkit.methods.learn_to_grow`: ``learn-to-grow`` (continual learning);
* :mod:`~growkit.methods.gauss_newton`: ``gauss-newton`` (width by split and prune morphisms);
* :mod:`~growkit.methods.adenel`: ``adenel``, ``adenel-replay``, ``l1-prune`` (width by LBI's support set);
* :mod:`~growkit.methods.transformer_growth`: ``lm`` (a decoder-only transformer on a token stream).

A method package holds its options (``config``), its grower or loop, its registration (``method``), the
helpers its notebooks call (``study``) and its figures (``plots``). A new method is one more package
and one more line here.
"""
from . import train  # noqa: F401
from .autogrow import method as _autogrow  # noqa: F401
from .learn_to_grow import method as _learn_to_grow  # noqa: F401
from .gauss_newton import method as _gauss_newton  # noqa: F401
from .adenel import method as _adenel  # noqa: F401
from .transformer_growth import method as _transformer_growth  # noqa: F401
