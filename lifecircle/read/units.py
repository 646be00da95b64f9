"""Area units (districts 区, subdistricts 街道/镇): read polygons and assign residents to them."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import EmptyResultError, InputDataError

log = logging.getLogger("lifecircle")

__all__ = ["UNIT_NAME_ALIASES", "ADMIN_LEVELS", "units_from_file", "units_from_osm", "units_from_place",
           "assign_units", "unit_positions"]

UNIT_NAME_ALIASES = ("name", "unit", "名称", "district", "区", "subdistrict", "街道", "NAME", "adcode")
UNIT_CODE_ALIASES = ("adcode", "code", "区划代码", "行政区划代码")
#: Columns naming the district (区) a 街镇 unit belongs to: kept as ``parent`` (equity between/within districts).
UNIT_PARENT_ALIASES = ("parent_name", "parent", "district", "区", "所属区", "区县", "所属区县")
#: OSM ``admin_level`` of China's units: 4 province/municipality, 6 district/county (区/县),
#: 8 subdistrict/town (街道/镇/乡), 10 village/community (村/社区).
ADMIN_LEVELS = {"district": 6, "subdistrict": 8}


def units_from_file(path: str | os.PathLike[str], *, name_column: str | None = None, crs: Any = None,
                    encoding: str | None = None, parent_column: str | None = None):
    """Read unit polygons (GeoJSON, GeoPackage, Shapefile) with a ``unit`` name column, in WGS84.

    ``parent_column`` names the district each unit belongs to (default: the first of
    :data:`UNIT_PARENT_ALIASES` holding plain names, not the name column), kept as ``parent`` for the
    between/within-district equity decomposition.

    ``crs`` names the coordinates' system when the file does not say it (``gcj02`` for DataV
    boundaries, which claim to be WGS84 but are not). Units without a name or sharing a name
    are refused (per-unit results would be ambiguous); features that are not polygons are
    dropped and invalid polygons repaired, each with a warning (``result.attrs["warnings"]``).

    Examples
    --------
    >>> import geopandas as gpd, shapely, tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "u.geojson")
    >>> gpd.GeoDataFrame({"name": ["东", "东"], "code": ["1", "2"]}, geometry=[shapely.box(121.4, 31.2, 121.41, 31.21),
    ...                  shapely.box(121.41, 31.2, 121.42, 31.21)], crs=4326).to_file(f)
    >>> units_from_file(f)
    Traceback (most recent call last):
    ...
    lifecircle.errors.InputDataError: units u.geojson: 2 units share a name in column 'name' ('东' at features 1, 2), so their results cannot be told apart; name another column with --unit-name (columns: code), or give each unit its own name (parts of one unit: merge them, e.g. QGIS Dissolve)
    """
    from .files import add_warning, carry_checks, find_column, read_geo, row_name

    p = Path(path)
    gdf = read_geo(p, what="units", crs=crs, encoding=encoding)
    col = find_column(gdf.columns, name_column, UNIT_NAME_ALIASES, what=f"units {p.name}", option="--unit-name")
    polys = gdf.geometry.geom_type.isin(["Polygon", "MultiPolygon"]).to_numpy()
    if not polys.any():
        raise InputDataError(f"units {p.name} has no polygons (found {', '.join(map(str, gdf.geom_type.unique()))}); "
                             "give district/subdistrict boundaries")
    others = [c for c in gdf.columns if c not in (col, gdf.geometry.name)]
    _check_names(gdf, col, polys, label=f"units {p.name}", others=others)
    code = next((c for c in UNIT_CODE_ALIASES if c in gdf.columns and c != col), None)
    parent = _parent_column(gdf, parent_column, col, p)
    keep = [col] + ([code] if code else []) + ([parent] if parent else []) + [gdf.geometry.name]
    out = gdf.loc[polys, keep].rename(columns={col: "unit", **({code: "adcode"} if code else {}),
                                               **({parent: "parent"} if parent else {})})
    out = carry_checks(gdf, out.reset_index(drop=True))
    out["unit"] = out["unit"].astype(str)
    if parent:
        out["parent"] = out["parent"].astype(str)
    if not polys.all():
        first = int(np.flatnonzero(~polys)[0])
        add_warning(out, f"units {p.name}: {int((~polys).sum()):,} features are not polygons (first: "
                         f"{row_name(gdf, first)}, {gdf.geometry.iloc[first].geom_type if gdf.geometry.iloc[first] is not None else 'no geometry'}) "
                         "and are not used; remove them or give their area as polygons")
    return out


def _parent_column(gdf, wanted: str | None, name_col: str, p: Path) -> str | None:
    """The column of the units' district: the one given, or the first alias holding plain names."""
    if wanted is not None:
        if wanted not in gdf.columns:
            raise InputDataError(f"units {p.name}: no column {wanted!r} (columns: "
                                 f"{', '.join(map(str, list(gdf.columns)[:-1]))}); fix --unit-parent")
        return wanted
    for c in UNIT_PARENT_ALIASES:
        if c in gdf.columns and c != name_col:
            v = gdf[c].dropna()
            # DataV's ``parent`` is {"adcode": 310000}: a code of the city, not a district name
            if len(v) and v.map(lambda x: isinstance(x, str) and not x.lstrip().startswith("{")).all():
                return c
    return None


def _check_names(gdf, col: str, polys: np.ndarray, *, label: str, others: list[str]) -> None:
    """Units need one non-empty name each: refuse missing and duplicated names, with rows and the fix."""
    from .files import row_name

    names = gdf[col].where(polys)
    text = names.astype(object).where(names.notna(), None)
    blank = polys & (text.isna() | text.map(lambda v: str(v).strip() in ("", "nan", "None"))).to_numpy()
    choose = (f"name another column with --unit-name (columns: {', '.join(map(str, others))})" if others
              else "give each unit a name")
    if blank.any():
        rows = ", ".join(row_name(gdf, int(i)).split()[-1] for i in np.flatnonzero(blank)[:5])
        raise InputDataError(f"{label}: {int(blank.sum()):,} units have no name in column {col!r} "
                             f"({row_name(gdf, int(np.flatnonzero(blank)[0])).split()[0]}s {rows}"
                             f"{'…' if blank.sum() > 5 else ''}); fill them in, or {choose}")
    key = text[polys].astype(str).str.strip()
    dup = key[key.duplicated(keep=False)]
    if len(dup):
        first = dup.iloc[0]
        where = [int(gdf.index.get_loc(i)) for i in dup.index[dup == first]]
        kind = row_name(gdf, where[0]).split()[0]
        names_list = ", ".join(repr(n) for n in dict.fromkeys(dup))
        raise InputDataError(
            f"{label}: {len(dup):,} units share a name in column {col!r} ({repr(first)} at {kind}s "
            f"{', '.join(row_name(gdf, w).split()[-1] for w in where[:5])}"
            f"{'; also ' + names_list if dup.nunique() > 1 else ''}), so their results cannot be told apart; "
            f"{choose}, or give each unit its own name (parts of one unit: merge them, e.g. QGIS Dissolve)")


def units_from_osm(path, *, admin_level: int | str = 8):
    """Administrative boundaries of one ``admin_level`` from an OSM file, as units in WGS84.

    In China ``admin_level=6`` holds districts and counties (区/县) and ``8`` subdistricts and
    towns (街道/镇/乡). Names come from ``name:zh``, else ``name``; the OSM ``ref`` (often the
    administrative code) becomes ``adcode`` when present. ``path`` is the OSM file or its
    :class:`~lifecircle.read.osm.OSMLayers` with the boundaries layer (not read again).

    Examples
    --------
    >>> from lifecircle.datasets import toy_town_osm
    >>> u = units_from_osm(toy_town_osm(), admin_level=8)
    >>> sorted(u["unit"])
    ['城东街道', '城西街道']
    >>> units_from_osm(toy_town_osm(), admin_level="district")["unit"].tolist()
    ['小河区']
    """
    import geopandas as gpd

    from .osm import OSMLayers, read_osm

    level = str(ADMIN_LEVELS.get(str(admin_level), admin_level))
    if not level.isdigit():
        raise InputDataError(f"admin level {admin_level!r} is not a number or one of "
                             f"{', '.join(ADMIN_LEVELS)}; e.g. 6 for 区, 8 for 街道/镇")
    layers = path if isinstance(path, OSMLayers) and path.boundaries is not None else None
    if layers is None:
        layers = read_osm(path.path if isinstance(path, OSMLayers) else path, layers=("boundaries",))
    name_of = layers.path.name
    b = layers.boundaries
    b = b[(b["admin_level"] == level).to_numpy()]
    rows = []
    for t, i, zh, name, ref, geom in zip(b["osm_type"], b["osm_id"].tolist(), b["name:zh"], b["name"], b["ref"],
                                         b.geometry):
        # only closed boundaries are in the layer: an unclosed one (clipped extract) cannot hold residents
        rows.append({"unit": zh or name or f"{t}/{i}", "adcode": ref, "osm_id": f"{t}/{i}", "geometry": geom})
    if not rows:
        raise EmptyResultError(
            f"no closed administrative boundary with admin_level={level} in {name_of}; "
            "the extract may clip them (use one that contains the whole units, or --units FILE), "
            "or try another level (6 = 区/县, 8 = 街道/镇)"
        )
    out = gpd.GeoDataFrame(rows, geometry="geometry", crs=4326)
    if out["adcode"].isna().all():
        out = out.drop(columns="adcode")
    log.info("units: %d boundaries with admin_level=%s from %s", len(out), level, name_of)
    return out


def units_from_place(place: str, *, admin_level: int | str = 8):
    """Administrative boundaries of one ``admin_level`` inside a place, from Overpass (OSMnx, cached)."""
    import osmnx as ox

    from ..errors import DownloadError

    level = str(ADMIN_LEVELS.get(str(admin_level), admin_level))
    try:
        gdf = ox.features_from_place(place, tags={"boundary": "administrative", "admin_level": level})
    except Exception as exc:  # noqa: BLE001 - network, geocoding and empty-result errors of OSMnx
        raise DownloadError(f"could not download the admin_level={level} boundaries of {place!r} ({exc}); "
                            "check the internet connection or give --units FILE") from None
    gdf = gdf[gdf.geometry.geom_type.isin(["Polygon", "MultiPolygon"])
              & (gdf.get("admin_level", pd.Series(index=gdf.index, dtype=object)) == level)]
    if gdf.empty:
        raise EmptyResultError(f"no admin_level={level} boundary inside {place!r}; try another level "
                               "(6 = 区/县, 8 = 街道/镇) or give --units FILE")
    names = gdf["name:zh"] if "name:zh" in gdf else gdf["name"]
    names = names.fillna(gdf["name"]) if "name" in gdf else names
    out = gdf[["geometry"]].to_crs(4326).reset_index(drop=True)
    out.insert(0, "unit", names.astype(str).to_numpy())
    return out


def unit_positions(points, units, *, tree=None) -> np.ndarray:
    """Position (0-based, file order) of the unit holding each point; -1 outside every unit.

    A point inside a unit *or on its boundary* belongs to it (``intersects``, not ``within``),
    so every point of the units' union belongs to exactly one unit: on a border shared by several
    units (an edge, a vertex, or an overlap), the first of them in file order wins.

    Parameters
    ----------
    points : array of shapely Points (or a GeoSeries)
    units : array of shapely (Multi)Polygons in the same CRS
    tree : shapely.STRtree, optional
        An index of ``units`` built before.

    >>> import shapely
    >>> sq = [shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)]
    >>> unit_positions(shapely.points([0.5, 1.0, 1.0, 1.5, 3.0], [0.5, 0.5, 1.0, 0.5, 0.5]), sq).tolist()
    [0, 0, 0, 1, -1]
    """
    import shapely

    pts = np.asarray(points, dtype=object)
    owner = np.full(pts.size, -1, dtype=np.int64)
    if pts.size == 0 or len(units) == 0:
        return owner
    tree = tree if tree is not None else shapely.STRtree(np.asarray(units, dtype=object))
    pi, ui = tree.query(pts, predicate="intersects")
    if pi.size == 0:
        return owner
    order = np.lexsort((ui, pi))  # by point, then unit in file order
    pi, ui = pi[order], ui[order]
    first = np.ones(pi.size, dtype=bool)
    first[1:] = pi[1:] != pi[:-1]
    owner[pi[first]] = ui[first]
    return owner


def assign_units(points, units) -> pd.Series:
    """Name of the unit holding each point (None outside every unit), vectorised.

    A point on a border belongs to one unit: the first in file order of those it touches
    (:func:`unit_positions`).

    >>> import geopandas as gpd, shapely
    >>> u = gpd.GeoDataFrame({"unit": ["A", "B"]}, geometry=[shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)], crs=4326)
    >>> p = gpd.GeoDataFrame(geometry=gpd.points_from_xy([0.5, 1, 2, 3], [0.5, 0.5, 1, 3]), crs=4326)
    >>> assign_units(p, u).tolist()
    ['A', 'A', 'B', None]
    """
    pos = unit_positions(points.geometry.to_numpy(), units.geometry.to_numpy())
    names = np.full(len(points), None, dtype=object)
    names[pos >= 0] = units["unit"].to_numpy()[pos[pos >= 0]]
    out = pd.Series(names, index=points.index, name="unit", dtype=object)
    if out.isna().all():
        raise EmptyResultError(
            "no resident falls inside any area unit: check the units' CRS (DataV/AMap boundaries are "
            "gcj02: --units-crs gcj02) and that they cover the study area"
        )
    return out
