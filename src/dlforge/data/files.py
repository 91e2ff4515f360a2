"""Reading the files data sets come in, shared by the data modules: text in UTF-8 or Latin-1, its
lines, and labels read as text put in class order."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from dlforge.errors import DlforgeError


def read_text(path: Path, encoding: str = "auto") -> str:
    """A file's text; ``auto`` reads UTF-8 and falls back to Latin-1 (the MR/Subj originals)."""
    data = path.read_bytes()
    if encoding != "auto":
        try:
            return data.decode(encoding)
        except UnicodeDecodeError as error:
            raise DlforgeError(
                f"{path} is not {encoding} text (byte {error.start}); set data.encoding=auto "
                "(UTF-8, else Latin-1) or the file's encoding"
            ) from None
        except LookupError:
            raise DlforgeError(f"unknown data.encoding={encoding!r}; use auto, utf-8 or latin-1") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_lines(path: Path, encoding: str = "auto") -> list[str]:
    """Non-empty lines of a one-text-per-line file."""
    return [line.strip() for line in read_text(path, encoding).splitlines() if line.strip()]


def is_number(value: str) -> bool:
    """Whether a label read as text is a number (``7``, ``-1``, ``0.5``)."""
    try:
        float(value)
    except ValueError:
        return False
    return True


def label_order(labels: Iterable[str]) -> list[str]:
    """Labels read as text in class order: the numbers by value (``2`` before ``10``), then the rest
    in alphabetical order."""
    return sorted(labels, key=lambda v: (not is_number(v), float(v) if is_number(v) else 0.0, v))
