"""growkit: a study kit for neural networks that grow while they train.

    import growkit
    data = growkit.data.load("digits")
    model = growkit.models.create("Basic3ResNet-1-1-1", in_channels=1, image_size=8)

The command line (``growkit --help``) runs training, AutoGrow and the notebooks.
"""
__version__ = "0.1.0"

from . import data, models, surgery  # noqa: E402  (light modules; the rest import on use)
from .errors import GrowkitError  # noqa: E402

__all__ = ["data", "models", "surgery", "GrowkitError", "__version__"]
