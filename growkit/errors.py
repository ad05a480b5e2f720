"""The one exception type that means "the user asked for something that cannot be done".

The CLI prints a :class:`GrowkitError` as a single line and exits with code 2;
every other exception is a bug and keeps its traceback.
"""


class GrowkitError(Exception):
    """Bad input or missing files, explained in one line."""


class NonFiniteLoss(RuntimeError):
    """Training produced a NaN or infinite loss; the last good checkpoint is untouched."""
