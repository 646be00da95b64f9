"""Old import paths of the modules that moved into stage packages (kept for one release).

``import lifecircle.network`` still works and gives :mod:`lifecircle.read.network`, with a
``DeprecationWarning`` naming the new path. These aliases go in lifecircle 0.3.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

#: old module name -> new one (see docs/architecture.md)
MOVED = {
    "osm": "read.osm", "network": "read.network", "cache": "read.cache", "facilities": "read.facilities",
    "population": "read.population", "census": "read.census", "units": "read.units", "crs": "read.crs",
    "io": "read.files", "inventory": "read.inventory",
    "snapping": "measure.snapping", "walking_times": "measure.walking_times", "coverage": "measure.coverage",
    "gaps": "plan.gaps", "sites": "plan.sites", "scenario": "plan.scenario",
    "isochrones": "present.isochrones", "maps": "present.maps", "figures": "present.figures",
    "partition": "scale.partition", "batch": "scale.batch",
}


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec):
        return importlib.import_module(self.target)

    def exec_module(self, module) -> None:  # the target module is already executed
        pass


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        head, _, name = fullname.rpartition(".")
        if head != "lifecircle" or name not in MOVED:
            return None
        new = f"lifecircle.{MOVED[name]}"
        warnings.warn(f"{fullname} moved to {new}; the old path goes in lifecircle 0.3", DeprecationWarning,
                      stacklevel=3)
        return importlib.util.spec_from_loader(fullname, _AliasLoader(new))


def install() -> None:
    """Put the finder on :data:`sys.meta_path` (once)."""
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
