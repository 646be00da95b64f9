"""lifecircle: population-weighted 15-minute walking access to community facilities."""

from __future__ import annotations

__version__ = "0.1.0"
