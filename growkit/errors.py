"""The one exception type that means "the user asked for something that cannot be done".

The CLI prints a :class:`GrowkitError` as a single line and exits with code 2;
every other exception is a bug and keeps its traceback.
"""


class GrowkitError(Exception):
    """Bad input or missing files, explained in one line."""


class MissingData(GrowkitError):
    """A dataset's files are not under the data root. ``str(e)`` advises what works in Python and in a notebook
    (the download call, or where to get the files); ``e.cli`` what works on the command line (``--download``)."""

    def __init__(self, message: str, cli: str | None = None):
        super().__init__(message)
        self.cli = cli or message


class NonFiniteLoss(RuntimeError):
    """Training produced a NaN or infinite loss; the last good checkpoint is untouched."""
