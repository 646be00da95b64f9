"""Area units (districts 区, subdistricts 街道/镇): read polygons and assign residents to them."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import EmptyResultError, InputDataError

log = logging.getLogger("lifecircle")

__all__ = ["UNIT_NAME_ALIASES", "units_from_file", "assign_units"]

UNIT_NAME_ALIASES = ("name", "unit", "名称", "district", "区", "subdistrict", "街道", "NAME", "adcode")


def units_from_file(path: str | os.PathLike[str], *, name_column: str | None = None, crs: Any = None):
    """Read unit polygons (GeoJSON, GeoPackage, Shapefile) with a ``unit`` name column, in WGS84.

    ``crs`` names the coordinates' system when the file does not say it (``gcj02`` for DataV
    boundaries, which claim to be WGS84 but are not).
    """
    from .io import find_column, read_geo

    p = Path(path)
    gdf = read_geo(p, what="units", crs=crs)
    col = find_column(gdf.columns, name_column, UNIT_NAME_ALIASES, what=f"units {p.name}", option="--unit-name")
    polys = gdf.geometry.geom_type.isin(["Polygon", "MultiPolygon"])
    if not polys.any():
        raise InputDataError(f"units {p.name} has no polygons (found {', '.join(gdf.geom_type.unique())}); "
                             "give district/subdistrict boundaries")
    out = gdf.loc[polys, [col, "geometry"]].rename(columns={col: "unit"}).reset_index(drop=True)
    out["unit"] = out["unit"].astype(str)
    return out


def assign_units(points, units) -> pd.Series:
    """Name of the unit containing each point (None outside every unit), vectorised.

    >>> import geopandas as gpd, shapely
    >>> u = gpd.GeoDataFrame({"unit": ["A"]}, geometry=[shapely.box(0, 0, 1, 1)], crs=4326)
    >>> p = gpd.GeoDataFrame(geometry=gpd.points_from_xy([0.5, 2], [0.5, 2]), crs=4326)
    >>> assign_units(p, u).tolist()
    ['A', None]
    """
    import shapely

    tree = shapely.STRtree(units.geometry.to_numpy())
    pi, ui = tree.query(points.geometry.to_numpy(), predicate="within")
    names = np.full(len(points), None, dtype=object)
    # a point on a shared border: first unit wins
    first = np.unique(pi, return_index=True)[1]
    names[pi[first]] = units["unit"].to_numpy()[ui[first]]
    out = pd.Series(names, index=points.index, name="unit", dtype=object)
    if out.isna().all():
        raise EmptyResultError(
            "no resident falls inside any area unit: check the units' CRS (DataV/AMap boundaries are "
            "gcj02: --units-crs gcj02) and that they cover the study area"
        )
    return out
