"""Giving freed memory back to the system between the big steps of a city-scale run."""

from __future__ import annotations

from typing import Any

_TRIM: Any = None


def return_freed_memory() -> None:
    """glibc keeps freed heap pages for reuse, so a city-scale run's resident memory only grows: give them
    back (``malloc_trim``; a no-op off glibc). Called between the command's steps, and inside the steps
    that free many mid-sized temporaries before they make their largest arrays (site planning's catchments).

    >>> return_freed_memory()
    """
    global _TRIM
    if _TRIM is None:
        try:
            import ctypes

            _TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _TRIM = False
    if _TRIM:
        _TRIM(0)
