"""Error and warning types shared by the dataset loaders.

Loaders raise :class:`DatasetError` for files that cannot be used at all (missing, bad header, bad
values) and emit one :class:`DatasetWarning` per load for recoverable defects (an empty image, a
malformed file name), so a single bad file never crashes a run but is never silently ignored.
"""

from __future__ import annotations

from collections.abc import Sequence

from perface.face.io import PerFaceError

__all__ = ["DatasetError", "DatasetWarning"]


class DatasetError(PerFaceError, ValueError):
    """A dataset file is missing or malformed; the message names the file and the problem (a PerFaceError, so the
    CLI reports it as bad input, exit 2)."""


class DatasetWarning(UserWarning):
    """Some records of a dataset were skipped; the message says how many and why."""


def summarise(items: Sequence[str], limit: int = 10) -> str:
    """Join the first `limit` items for a warning message, noting how many were left out."""
    shown = ", ".join(items[:limit])
    more = len(items) - limit
    return f"{shown}, ... ({more} more)" if more > 0 else shown
