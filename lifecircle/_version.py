"""The version of lifecircle (one place: the package, summary.json and the CLI read it here)."""

__version__ = "0.2.0"
