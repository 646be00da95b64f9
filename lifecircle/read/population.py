"""Resident population as weighted points: from point/polygon files, rasters or OSM buildings.

Every function returns a GeoDataFrame of WGS84 points with a ``population`` column, and sets
``attrs["population_source"]`` (``"points"``, ``"polygons"``, ``"raster"`` or
``"estimate_from_buildings"``) so every output can say where the numbers came from.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import EmptyResultError, InputDataError, InputFileError

log = logging.getLogger("lifecircle")

__all__ = [
    "POPULATION_ALIASES",
    "RESIDENTIAL_BUILDINGS",
    "DEFAULT_M2_PER_PERSON",
    "residents_from_file",
    "residents_from_polygons",
    "residents_from_raster",
    "residents_from_buildings",
    "residents_from_building_polygons",
    "NAME_ALIASES",
    "name_column",
]

POPULATION_ALIASES = ("population", "pop", "residents", "count", "人口", "常住人口", "人数")
#: Columns that name a resident point (a 小区, a building): the first one present is ``attrs["name_column"]``,
#: the name gap areas are called by (:func:`lifecircle.plan.gaps.gap_areas` ``largest_name``).
NAME_ALIASES = ("name", "名称", "小区名称", "小区名", "小区", "居住区", "楼盘名称", "项目名称", "名字", "building_name")
#: Columns lifecircle computes for residents; an input column of the same name is kept as ``<name>_input``.
RESERVED_COLUMNS = ("population", "snapped", "snap_dist_m", "unit", "urban", "geometry")
_RESERVED_PREFIXES = ("minutes_to_", "within_", "share_")
#: ``building=*`` values counted as homes everywhere; ``building=yes`` counts inside
#: ``landuse=residential`` only.
RESIDENTIAL_BUILDINGS = frozenset(
    "residential apartments house detached semidetached_house terrace dormitory bungalow "
    "farm houseboat static_caravan".split()
)
#: Residential floor area per resident. China's urban average was 36.5 m² per person in the
#: 2020 census (国务院第七次全国人口普查: 城市家庭人均住房建筑面积 36.52 m²).
DEFAULT_M2_PER_PERSON = 36.5
_DEFAULT_LEVELS = {"house": 1, "detached": 1, "semidetached_house": 2, "bungalow": 1, "terrace": 2,
                   "farm": 1, "houseboat": 1, "static_caravan": 1}
_DEFAULT_LEVELS_OTHER = 3


def _finish(gdf, source: str):
    gdf = gdf.reset_index(drop=True)
    gdf.attrs["population_source"] = source
    total = float(gdf["population"].sum())
    if len(gdf) == 0 or total <= 0:
        raise EmptyResultError(
            "no residents: the population input has no positive counts in the study area; check the "
            "file and --population-column"
        )
    log.info("residents: %d points, %.0f people (%s)", len(gdf), total, source)
    return gdf


def name_column(frame) -> str | None:
    """The column naming each resident point: ``attrs["name_column"]``, else the first of :data:`NAME_ALIASES`.

    >>> import pandas as pd
    >>> name_column(pd.DataFrame({"小区名称": ["康乐小区"], "population": [10]}))
    '小区名称'
    """
    given = frame.attrs.get("name_column")
    if given in frame.columns:
        return given
    lower = {str(c).lower(): c for c in frame.columns}
    return next((lower[a] for a in NAME_ALIASES if a in lower), None)


def _own_columns(gdf, drop: list[str]) -> tuple[Any, dict[str, str]]:
    """The input's own columns (names, ids, addresses) without ``drop``; clashing names get ``_input``."""
    own = gdf.drop(columns=[c for c in drop if c in gdf.columns] + [gdf.geometry.name])
    renames = {c: f"{c}_input" for c in own.columns
               if str(c) in RESERVED_COLUMNS or str(c).startswith(_RESERVED_PREFIXES)}
    if renames:
        log.info("residents: input columns %s kept as %s (lifecircle computes columns of these names)",
                 ", ".join(map(str, renames)), ", ".join(renames.values()))
    return own.rename(columns=renames), renames


def residents_from_file(
    path: str | os.PathLike[str],
    *,
    population_column: str | None = None,
    lon_column: str | None = None,
    lat_column: str | None = None,
    crs: Any = None,
    cell_m: float = 100.0,
    encoding: str | None = None,
    group_columns: tuple[str, ...] | list[str] = (),
):
    """Residents from a point or polygon file with a count column, or a GeoTIFF raster.

    Points (CSV/XLSX with lon/lat, GeoJSON, GeoPackage) are used as they are; polygons are
    spread over a grid of points inside them (:func:`residents_from_polygons`); ``.tif``
    files go to :func:`residents_from_raster`. Rows that repeat another row exactly (same
    point, same count) are kept but warned about (``result.attrs["warnings"]``): they are
    usually a copy-paste or a join gone wrong, and count those people twice.

    ``group_columns`` (points only) are counts of population groups per point (``age65``, 户籍…),
    kept as they are for coverage and accessibility per group; each must be a number >= 0.

    The file's own columns (小区名称, 地址, ids) are kept on every point (a polygon's on each of
    its points), except the count (now ``population``) and the lon/lat columns (now the
    geometry); one named like a column lifecircle computes (``unit``, ``minutes_to_*``...) is
    kept as ``<name>_input``. ``attrs["name_column"]`` names the points' name column
    (:data:`NAME_ALIASES`), if any.

    Examples
    --------
    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "p.csv")
    >>> _ = open(f, "w").write("lng,lat,pop\\n121.47,31.23,120\\n121.48,31.23,80\\n")
    >>> r = residents_from_file(f)
    >>> r["population"].tolist(), r.attrs["population_source"]
    ([120.0, 80.0], 'points')
    >>> _ = open(f, "w").write("小区名称,lng,lat,人口\\n康乐小区,121.47,31.23,120\\n")
    >>> r = residents_from_file(f)
    >>> list(r.columns), r.attrs["name_column"]
    (['population', '小区名称', 'geometry'], '小区名称')
    """
    import geopandas as gpd

    from .files import carry_checks, find_column, read_geo

    p = Path(path)
    if p.suffix.lower() in (".tif", ".tiff", ".vrt", ".asc"):
        return residents_from_raster(p)
    gdf = read_geo(p, what="population", lon_column=lon_column, lat_column=lat_column, crs=crs, encoding=encoding)
    col = find_column(gdf.columns, population_column, POPULATION_ALIASES,
                      what=f"population {p.name}", option="--population-column")
    pop = pd.to_numeric(gdf[col], errors="coerce")
    bad = pop.isna() | (pop < 0)
    if bad.any():
        raise InputDataError(
            f"population {p.name}: {int(bad.sum())} rows have a missing or negative {col!r} "
            f"(first at row {int(np.flatnonzero(bad.to_numpy())[0]) + 1}); fix or remove them"
        )
    no_xy = gdf.geometry.isna() | gdf.geometry.is_empty
    if no_xy.any():
        raise InputDataError(
            f"population {p.name}: {int(no_xy.sum())} rows have no coordinates "
            f"({pop[no_xy].sum():.0f} people); give them coordinates or remove them"
        )
    xy = list(gdf.attrs.get("xy_columns", ()))
    own, _ = _own_columns(gdf, [col, "population", *xy])
    gdf = carry_checks(gdf, gdf.assign(population=pop.astype(float)))
    _warn_duplicates(gdf, label=f"population {p.name}")
    groups = _group_counts(gdf, group_columns, p, col)
    if (gdf.geometry.geom_type == "Point").all():
        own = own.drop(columns=[g for g in groups if g in own.columns])
        keep = gpd.GeoDataFrame(pd.DataFrame(gdf[["population"]]).assign(**groups).join(own),
                                geometry=gdf.geometry.values, crs=gdf.crs)
        out = carry_checks(gdf, _finish(keep, "points"))
    else:
        if groups:
            raise InputDataError(f"population {p.name}: group columns ({', '.join(groups)}) need a file of points "
                                 "(one count per point); give points, or drop --group-columns")
        spread = residents_from_polygons(gdf.assign(_polygon_row=np.arange(len(gdf))), population_column="population",
                                         cell_m=cell_m)
        rows = spread.pop("_polygon_row").to_numpy()
        extra = own.iloc[rows].reset_index(drop=True)
        out = carry_checks(gdf, gpd.GeoDataFrame(pd.DataFrame(spread[["population"]]).join(extra),
                                                 geometry=spread.geometry.values, crs=spread.crs))
        out.attrs["population_source"] = "polygons"
    name = name_column(out)
    if name is not None:
        out.attrs["name_column"] = name
    return out


def _group_counts(gdf, columns, p: Path, population_column: str) -> dict[str, np.ndarray]:
    """Each group column as float counts; a missing column or a bad value is one error naming the row."""
    from .files import row_name

    out: dict[str, np.ndarray] = {}
    for g in columns:
        if g not in gdf.columns:
            raise InputDataError(f"population {p.name}: no group column {g!r} (columns: "
                                 f"{', '.join(map(str, list(gdf.columns)[:-1]))}); fix --group-columns")
        if g in ("population", population_column, "geometry"):
            raise InputDataError(f"population {p.name}: {g!r} is the population itself, not a group; "
                                 "fix --group-columns")
        v = pd.to_numeric(gdf[g], errors="coerce")
        bad = v.isna() | (v < 0)
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputDataError(f"population {p.name}: {int(bad.sum())} value(s) of the group column {g!r} are "
                                 f"missing or not a number >= 0 (first at {row_name(gdf, i)}: {str(gdf[g].iloc[i])!r}); "
                                 "fix them (0 for none)")
        out[g] = v.to_numpy(dtype=float)
    return out


def _warn_duplicates(gdf, *, label: str) -> None:
    """Warn (with counts and the first row) about rows with the same geometry and the same count."""
    import shapely

    from .files import add_warning, row_name

    geoms = gdf.geometry.to_numpy()
    if len(geoms) and (shapely.get_type_id(geoms) == 0).all():  # points: their coordinates are the key
        key = pd.DataFrame({"g": shapely.get_x(geoms), "y": shapely.get_y(geoms), "p": gdf["population"].to_numpy()})
    else:
        key = pd.DataFrame({"g": shapely.to_wkb(geoms, output_dimension=2), "p": gdf["population"].to_numpy()})
    dup = key.duplicated(keep="first").to_numpy()
    if not dup.any():
        return
    i = int(np.flatnonzero(dup)[0])
    same = int(np.flatnonzero((key == key.iloc[i]).all(axis=1).to_numpy())[0])
    add_warning(gdf, f"{label}: {int(dup.sum()):,} rows repeat another row exactly (same place, same count; "
                     f"{float(gdf['population'].to_numpy()[dup].sum()):,.0f} people counted twice if they are copies; "
                     f"first: {row_name(gdf, i)} = {row_name(gdf, same)}); remove the copies if they are not "
                     "separate households")


def residents_from_polygons(polygons, *, population_column: str = "population", cell_m: float = 100.0):
    """Spread each polygon's count evenly over grid points ``cell_m`` apart inside it.

    A polygon too small to hold a grid point gets one point (its representative point).
    Totals are preserved exactly.
    """
    import geopandas as gpd
    import shapely

    from .network import local_utm_crs

    if polygons.crs is None:
        raise InputDataError("population polygons have no CRS; set one (e.g. --population-crs wgs84)")
    poly = polygons.to_crs(4326)
    c = poly.geometry.union_all().centroid if len(poly) else None
    utm = local_utm_crs(c.x, c.y)
    pm = poly.to_crs(utm)
    xs, ys, ws, rows = [], [], [], []
    row_ids = pm["_polygon_row"].to_numpy() if "_polygon_row" in pm else np.arange(len(pm))
    for row, geom, pop in zip(row_ids, pm.geometry, pm[population_column].to_numpy(dtype=float)):
        if geom is None or geom.is_empty or pop <= 0:
            continue
        minx, miny, maxx, maxy = geom.bounds
        gx, gy = np.meshgrid(np.arange(minx + cell_m / 2, maxx, cell_m), np.arange(miny + cell_m / 2, maxy, cell_m))
        gx, gy = gx.ravel(), gy.ravel()
        inside = shapely.contains_xy(geom, gx, gy) if gx.size else np.zeros(0, bool)
        if inside.sum() == 0:
            rp = geom.representative_point()
            gx, gy = np.array([rp.x]), np.array([rp.y])
        else:
            gx, gy = gx[inside], gy[inside]
        xs.append(gx); ys.append(gy); ws.append(np.full(gx.size, pop / gx.size)); rows.append(np.full(gx.size, row))
    if not xs:
        raise EmptyResultError("population polygons hold no people (all counts are zero or geometries empty)")
    columns = {"population": np.concatenate(ws)}
    if "_polygon_row" in pm:  # residents_from_file carries each polygon's own columns onto its points
        columns["_polygon_row"] = np.concatenate(rows)
    pts = gpd.GeoDataFrame(columns,
                           geometry=gpd.points_from_xy(np.concatenate(xs), np.concatenate(ys)), crs=utm)
    return _finish(pts.to_crs(4326), "polygons")


def residents_from_raster(path: str | os.PathLike[str], *, band: int = 1):
    """One resident point per populated raster cell (cell centre, value = people), e.g. WorldPop."""
    import geopandas as gpd
    import rasterio
    from rasterio.errors import RasterioIOError

    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"population raster not found: {p}")
    try:
        with rasterio.open(p) as src:
            arr = src.read(band, masked=True)
            transform, crs = src.transform, src.crs
    except (RasterioIOError, IndexError) as exc:
        raise InputFileError(f"cannot read population raster {p}: {exc}; is it a GeoTIFF?") from None
    if crs is None:
        raise InputDataError(f"population raster {p.name} has no CRS; set it with gdal_edit.py -a_srs EPSG:4326")
    values = np.ma.filled(arr.astype(float), 0.0)
    values[~np.isfinite(values)] = 0.0
    rows, cols = np.nonzero(values > 0)
    xs, ys = rasterio.transform.xy(transform, rows, cols, offset="center")
    pts = gpd.GeoDataFrame({"population": values[rows, cols]},
                           geometry=gpd.points_from_xy(np.asarray(xs), np.asarray(ys)), crs=crs.to_wkt())
    return _finish(pts.to_crs(4326), "raster")


def residents_from_buildings(
    path, *, m2_per_person: float = DEFAULT_M2_PER_PERSON,
    default_levels: int = _DEFAULT_LEVELS_OTHER,
):
    """Estimate residents from OSM residential buildings: footprint × levels ÷ m² per person.

    ``path`` is the OSM file or its :class:`~lifecircle.read.osm.OSMLayers` with the buildings layer.

    Homes are ``building=residential|apartments|house|…`` (:data:`RESIDENTIAL_BUILDINGS`), plus
    ``building=yes`` inside ``landuse=residential``. Levels come from ``building:levels``, else
    1–2 for houses and ``default_levels`` (3) for other homes. This is an **estimate**: outputs
    say so (``population_source = "estimate_from_buildings"``).

    Examples
    --------
    >>> from lifecircle.datasets import toy_town_osm
    >>> r = residents_from_buildings(toy_town_osm(), m2_per_person=40)
    >>> len(r), round(float(r["population"].sum()))   # (4800+2700+16000+400+4800) m² / 40 = 717.5
    (5, 718)
    """
    gdf = read_building_polygons(path)
    return residents_from_building_polygons(gdf, m2_per_person=m2_per_person, default_levels=default_levels,
                                            label=_osm_name(path))


def _osm_name(path) -> str:
    """The file name of an OSM path or :class:`~lifecircle.read.osm.OSMLayers` (for messages)."""
    from .osm import OSMLayers

    return (path.path if isinstance(path, OSMLayers) else Path(path)).name


def read_building_polygons(path):
    """OSM buildings and ``landuse=residential`` areas of a file (or of its
    :class:`~lifecircle.read.osm.OSMLayers`): ``building``, ``building:levels``, ``landuse`` and the
    geometry (WGS84), in one pass, in file order.

    Examples
    --------
    >>> from lifecircle.datasets import toy_town_osm
    >>> b = read_building_polygons(toy_town_osm())
    >>> len(b), b.geometry.geom_type.unique().tolist(), int((b["landuse"] == "residential").sum())
    (9, ['MultiPolygon'], 1)
    """
    from .osm import OSMLayers, read_osm

    layers = path if isinstance(path, OSMLayers) and path.buildings is not None else None
    if layers is None:
        layers = read_osm(path.path if isinstance(path, OSMLayers) else path, layers=("buildings",))
    return layers.buildings.copy()


def residents_from_building_polygons(
    buildings, *, m2_per_person: float = DEFAULT_M2_PER_PERSON, default_levels: int = _DEFAULT_LEVELS_OTHER,
    label: str = "the buildings layer",
):
    """Same estimate as :func:`residents_from_buildings`, from a GeoDataFrame of OSM polygons.

    ``buildings`` has columns ``building``, ``building:levels`` (optional) and ``landuse``
    (optional), as OSMnx ``features_from_*`` returns them.
    """
    import geopandas as gpd
    import shapely

    from .network import local_utm_crs

    if not (m2_per_person > 0):
        raise InputDataError(f"m2_per_person must be positive (got {m2_per_person}); e.g. 36.5")
    df = buildings[buildings.geometry.geom_type.isin(["Polygon", "MultiPolygon"])]
    b = df["building"] if "building" in df else pd.Series(None, index=df.index, dtype=object)
    lu = df["landuse"] if "landuse" in df else pd.Series(None, index=df.index, dtype=object)
    homes_mask = b.isin(RESIDENTIAL_BUILDINGS).to_numpy().copy()
    yes_mask = (b == "yes").to_numpy()
    land = df.geometry[(lu == "residential").to_numpy() & b.isna().to_numpy()]
    if yes_mask.any() and len(land):
        tree = shapely.STRtree(land.to_numpy())
        pts = shapely.point_on_surface(df.geometry[yes_mask].to_numpy())
        inside = np.zeros(int(yes_mask.sum()), dtype=bool)
        inside[tree.query(pts, predicate="within")[0]] = True
        idx = np.flatnonzero(yes_mask)
        homes_mask[idx[inside]] = True
    homes = df[homes_mask]
    if homes.empty:
        raise EmptyResultError(
            f"no residential buildings in {label} to estimate population from; give resident "
            "counts with --population FILE (points, polygons or a raster)"
        )
    c = homes.geometry.union_all().centroid
    area = homes.geometry.to_crs(local_utm_crs(c.x, c.y)).area.to_numpy()
    lv_col = homes["building:levels"] if "building:levels" in homes else pd.Series(None, index=homes.index)
    levels = pd.to_numeric(lv_col, errors="coerce").to_numpy(dtype=float)
    fallback = homes["building"].map(lambda v: _DEFAULT_LEVELS.get(v, default_levels)).to_numpy(dtype=float)
    levels = np.where(np.isfinite(levels) & (levels > 0), levels, fallback)
    pop = area * levels / m2_per_person
    out = gpd.GeoDataFrame(
        {"population": pop, "building": homes["building"].to_numpy(), "levels": levels, "floor_area_m2": area * levels},
        geometry=homes.geometry.representative_point().to_numpy(), crs=4326,
    )
    out.attrs["m2_per_person"] = m2_per_person
    return _finish(out, "estimate_from_buildings")
