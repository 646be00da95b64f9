"""Which residents are urban (城镇): the 85 % target is for urban residents, and the urban–rural gap is a result.

Four ways to say it, in the order a run tries them:

* an urban-area polygon layer (``--urban FILE``): residents inside are urban;
* a column of the units (``--urban-column COL``): ``yes/no``, ``true/false``, ``1/0``, ``urban/rural``,
  ``城镇/乡村`` (or 城市/农村), or the unit type 街道 / 镇 / 乡;
* the units' names (``--urban names``): a 街道 (subdistrict) is urban; a 镇 (town) or 乡 (township) is
  rural (towns hold both built-up areas and villages: give a polygon layer to separate them);
* OSM landuse (``--urban landuse``): residents inside ``landuse=residential|commercial|retail|industrial``
  (widened by 100 m, so streets between blocks count) are urban.

Without any of them every resident counts as urban, and the output says so.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

import numpy as np
from ..errors import InputDataError

log = logging.getLogger("lifecircle")

__all__ = ["UNIT_TYPES", "unit_type", "urban_from_column", "urban_from_names", "urban_from_polygons",
           "built_up_from_osm", "describe_split"]

#: Unit types recognised from Chinese names, with whether each is urban.
UNIT_TYPES = {"街道": True, "镇": False, "乡": False}

_TRUE = {"yes", "y", "true", "t", "1", "urban", "城镇", "城市", "城区", "街道", "是"}
_FALSE = {"no", "n", "false", "f", "0", "rural", "乡村", "农村", "郊区", "镇", "乡", "否"}


def unit_type(name: Any) -> str | None:
    """The type of a 街镇 unit from its name: ``街道``, ``镇``, ``乡`` (民族乡 too), or None.

    Examples
    --------
    >>> [unit_type(n) for n in ["江宁路街道", "朱家角镇", "横沙乡", "漕河泾新兴技术开发区", "静安区"]]
    ['街道', '镇', '乡', None, None]
    """
    if not isinstance(name, str):
        return None
    text = re.sub(r"[（(].*?[)）]", "", name).strip()
    for suffix in ("街道办事处", "街道"):
        if text.endswith(suffix):
            return "街道"
    if text.endswith("镇"):
        return "镇"
    if text.endswith("乡"):
        return "乡"
    return None


def urban_from_names(names) -> tuple[np.ndarray, list[str]]:
    """Urban flags of units from their names (街道 urban; 镇/乡 rural); and the names not recognised.

    >>> flags, unknown = urban_from_names(["江宁路街道", "朱家角镇", "某某园区"])
    >>> flags.tolist(), unknown
    ([True, False, False], ['某某园区'])
    """
    types = [unit_type(n) for n in names]
    unknown = [str(n) for n, t in zip(names, types) if t is None]
    return np.array([UNIT_TYPES.get(t, False) for t in types], dtype=bool), unknown


def urban_from_column(values, *, column: str) -> np.ndarray:
    """Urban flags from a units column (yes/no, 城镇/乡村, 街道/镇/乡 …); other values are an error."""
    out = np.zeros(len(values), dtype=bool)
    bad = []
    for i, v in enumerate(values):
        key = str(v).strip().lower() if v is not None and v == v else ""
        t = unit_type(str(v)) if isinstance(v, str) else None
        if key in _TRUE or t == "街道":
            out[i] = True
        elif key in _FALSE or t in ("镇", "乡"):
            out[i] = False
        else:
            bad.append(f"row {i + 2}: {v!r}")
    if bad:
        raise InputDataError(f"--urban-column {column}: {len(bad)} value(s) are neither urban nor rural "
                             f"({'; '.join(bad[:3])}); use yes/no, 城镇/乡村 or the unit type 街道/镇/乡")
    return out


def urban_from_polygons(points, polygons) -> np.ndarray:
    """Which points lie inside (or on the edge of) any polygon of an urban-area layer."""
    import shapely

    geoms = shapely.make_valid(polygons.to_crs(4326).geometry.to_numpy())
    if len(geoms) == 0:
        raise InputDataError("the urban-area layer has no polygons; give a layer of built-up areas (城镇开发边界…)")
    tree = shapely.STRtree(geoms)
    idx = tree.query(points.geometry.to_numpy(), predicate="intersects")
    out = np.zeros(len(points), dtype=bool)
    out[idx[0]] = True
    return out


def built_up_from_osm(path, *, widen_m: float = 100.0):
    """Built-up areas of an OSM file: ``landuse=residential|commercial|retail|industrial`` widened by ``widen_m``.

    ``path`` is the OSM file or its :class:`~lifecircle.read.osm.OSMLayers` with the landuse layer.

    Returns a GeoDataFrame of polygons (WGS84), possibly empty.
    """
    import geopandas as gpd
    import shapely

    from .osm import OSMLayers, read_osm

    layers = path if isinstance(path, OSMLayers) and path.landuse is not None else None
    if layers is None:
        layers = read_osm(path.path if isinstance(path, OSMLayers) else path, layers=("landuse",))
    geoms = layers.landuse.geometry.to_numpy()
    polys = gpd.GeoSeries([g for g in geoms if g.geom_type in ("Polygon", "MultiPolygon")], crs=4326)
    if polys.empty:
        return gpd.GeoDataFrame(geometry=polys)
    metric = polys.estimate_utm_crs()
    widened = shapely.union_all(shapely.buffer(polys.to_crs(metric).to_numpy(), widen_m))
    return gpd.GeoDataFrame(geometry=gpd.GeoSeries([widened], crs=metric).to_crs(4326))


def describe_split(urban: np.ndarray, population) -> dict[str, Any]:
    """Counts of the split for summary.json."""
    w = np.asarray(population, dtype=float)
    return {"urban_points": int(urban.sum()), "rural_points": int((~urban).sum()),
            "urban_population": float(w[urban].sum()), "rural_population": float(w[~urban].sum())}
