"""User-facing errors: printed as one line by the command-line entry points."""


class DlforgeError(Exception):
    """An error caused by the user's input (data, config, checkpoint) with a hint how to fix it."""


class DataNotFoundError(DlforgeError):
    """A data set is neither on disk nor downloadable."""


class CheckpointError(DlforgeError):
    """A checkpoint is missing, unreadable or of the wrong model type."""


def first_line(err: BaseException) -> str:
    """An exception's first line of text (its type's name when it has none), for one-line errors."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
