"""Exceptions raised by lifecircle: one family, each message says what to do."""

from __future__ import annotations

__all__ = [
    "LifecircleError",
    "InputFileError",
    "InputDataError",
    "CRSError",
    "EmptyResultError",
    "DownloadError",
    "OutputError",
]


class LifecircleError(Exception):
    """Base class of every error lifecircle raises on purpose.

    The command-line interface turns these into a one-line message and exit code 1;
    anything else is a bug and keeps its traceback.
    """


class InputFileError(LifecircleError, FileNotFoundError):
    """An input file is missing, unreadable or corrupt."""


class InputDataError(LifecircleError, ValueError):
    """An input is readable but its content cannot be used (columns, values, geometry)."""


class CRSError(InputDataError):
    """A coordinate reference system is unknown or does not match the data."""


class EmptyResultError(InputDataError):
    """A step found nothing to work on (no streets, no facilities, no residents)."""


class DownloadError(LifecircleError, OSError):
    """A download (Overpass, Geofabrik/BBBike) failed."""


class OutputError(LifecircleError, OSError):
    """An output folder cannot be written (disk full, no permission, another run writing it) or read back."""
