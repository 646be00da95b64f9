"""lifecircle: population-weighted 15-minute walking access to community facilities.

The pipeline, one module per stage::

    network      -> WalkNetwork from an OSM file or Overpass
    facilities   -> facility points of the four categories (OSM tags, Chinese names, lists)
    population   -> resident points with a population weight
    snapping     -> where each point joins the network
    walking_times-> minutes to the nearest facility of each category
    coverage     -> population-weighted shares at 5/10/15 minutes vs the 85 % target
    pipeline     -> analyze(): all of the above, written to a folder
"""

from __future__ import annotations

__version__ = "0.1.0"

from .config import ALL, CATEGORIES, AnalysisConfig, minutes_column, within_column
from .errors import (
    CRSError,
    DownloadError,
    EmptyResultError,
    InputDataError,
    InputFileError,
    LifecircleError,
)
from .facilities import facilities_from_file, facilities_from_osm, load_taxonomy
from .network import (
    WalkNetwork,
    is_walkable,
    network_from_bbox,
    network_from_graph,
    network_from_osm,
    network_from_place,
    network_from_polygon,
)
from .population import (
    residents_from_buildings,
    residents_from_file,
    residents_from_polygons,
    residents_from_raster,
)
from .pipeline import Analysis, analyze
from .snapping import snap_points
from .walking_times import build_access_graph, walking_times

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
    "Analysis",
]
