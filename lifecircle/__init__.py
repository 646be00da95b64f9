"""lifecircle: population-weighted 15-minute walking access to community facilities.

The pipeline, one module per stage::

    network      -> WalkNetwork from an OSM file or Overpass
    facilities   -> facility points of the four categories (OSM tags, Chinese names, lists)
    population   -> resident points with a population weight
    snapping     -> where each point joins the network
    walking_times-> minutes to the nearest facility of each category
    coverage     -> population-weighted shares at 5/10/15 minutes vs the 85 % target
    isochrones   -> service areas: the streets reachable within N minutes, buffered
    units, census-> districts/subdistricts, and census counts spread onto homes
    gaps         -> uncovered residents as ranked gap areas
    sites        -> where new facilities cover the most people, and how many each unit needs
    scenario     -> coverage with facilities added or removed
    maps, figures-> offline folium maps and PNG figures
    pipeline     -> analyze(): all of the above, written to a folder
    batch, partition -> many areas on Dask; one large area in tiles
"""

from __future__ import annotations

from ._version import __version__

from . import _moved

_moved.install()

from .config import ALL, CATEGORIES, AnalysisConfig, minutes_column, within_column
from .errors import (
    CRSError,
    DownloadError,
    EmptyResultError,
    InputDataError,
    InputFileError,
    LifecircleError,
)

#: Public names imported on first use (PEP 562), so that ``lifecircle --help`` and ``import lifecircle``
#: stay fast: the heavy libraries (geopandas, shapely, scipy, pandas) load only when a name needs them.
_LAZY = {
    **dict.fromkeys(("facilities_from_file", "facilities_from_osm", "load_taxonomy"), "read.facilities"),
    **dict.fromkeys(("WalkNetwork", "is_walkable", "network_from_bbox", "network_from_graph", "network_from_osm",
                     "network_from_place", "network_from_polygon"), "read.network"),
    **dict.fromkeys(("residents_from_buildings", "residents_from_file", "residents_from_polygons",
                     "residents_from_raster"), "read.population"),
    **dict.fromkeys(("find_gaps", "gap_areas"), "plan.gaps"),
    **dict.fromkeys(("facility_service_areas", "point_isochrones", "service_areas", "write_isochrones"),
                    "present.isochrones"),
    **dict.fromkeys(("Analysis", "analyze", "load_analysis", "reanalyze"), "pipeline"),
    **dict.fromkeys(("Scenario", "scenario"), "plan.scenario"),
    **dict.fromkeys(("SitePlan", "plan_sites", "sites_needed", "suggest_sites"), "plan.sites"),
    "snap_points": "measure.snapping",
    **dict.fromkeys(("build_access_graph", "walking_times"), "measure.walking_times"),
}


def __getattr__(name: str):
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'lifecircle' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{target}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "__version__",
    "ALL",
    "CATEGORIES",
    "AnalysisConfig",
    "minutes_column",
    "within_column",
    "LifecircleError",
    "InputFileError",
    "InputDataError",
    "CRSError",
    "EmptyResultError",
    "DownloadError",
    "WalkNetwork",
    "is_walkable",
    "network_from_osm",
    "network_from_graph",
    "network_from_place",
    "network_from_bbox",
    "network_from_polygon",
    "facilities_from_osm",
    "facilities_from_file",
    "load_taxonomy",
    "residents_from_file",
    "residents_from_polygons",
    "residents_from_raster",
    "residents_from_buildings",
    "snap_points",
    "build_access_graph",
    "walking_times",
    "analyze",
    "reanalyze",
    "load_analysis",
    "Analysis",
    "find_gaps",
    "gap_areas",
    "service_areas",
    "facility_service_areas",
    "point_isochrones",
    "write_isochrones",
    "suggest_sites",
    "plan_sites",
    "sites_needed",
    "SitePlan",
    "scenario",
    "Scenario",
]
