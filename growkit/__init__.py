"""growkit: a study kit for neural networks that grow while they train.

    import growkit
    data = growkit.data.load("digits")
    model = growkit.models.create("Basic3ResNet-1-1-1", in_channels=1, image_size=8)

The command line (``growkit --help``) runs training, AutoGrow and the notebooks.

Importing growkit registers every built-in method (:mod:`growkit.methods`), so a run of any of them
starts and resumes through :mod:`growkit.runs.lifecycle` whatever was imported first.
"""
from .version import __version__

from . import data, models  # noqa: E402
from .engine import surgery  # noqa: E402
from .errors import GrowkitError  # noqa: E402
from . import methods  # noqa: E402,F401  (each method registers itself)

__all__ = ["data", "models", "surgery", "GrowkitError", "__version__"]
