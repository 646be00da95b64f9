"""Distribute census counts of area units onto residential locations (dasymetric mapping)."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import EmptyResultError, InputDataError

log = logging.getLogger("lifecircle")

__all__ = [
    "CENSUS_NAME_ALIASES",
    "CENSUS_CODE_ALIASES",
    "CENSUS_POPULATION_ALIASES",
    "CENSUS_METHODS",
    "MAX_POINTS_PER_UNIT",
    "read_census",
    "normalise_unit_name",
    "match_units",
    "residents_from_census",
]

CENSUS_NAME_ALIASES = ("district", "name", "区", "名称", "unit", "街道", "区县", "地区", "subdistrict")
CENSUS_CODE_ALIASES = ("adcode", "code", "区划代码", "行政区划代码")
CENSUS_POPULATION_ALIASES = ("population_2020", "population", "pop", "常住人口", "人口")
#: The ways of spreading a unit's count, in the order they are tried (the first with data wins).
CENSUS_METHODS = ("buildings", "residential_landuse", "streets", "area")
#: Grid points are spread at most this many per unit (the grid gets coarser beyond it).
MAX_POINTS_PER_UNIT = 20_000

_SUMMARY_WORDS = ("合计", "总计", "小计", "全市", "total")
_NAME_SUFFIXES = ("新区", "街道", "区", "县", "镇", "乡")
_SPACE = re.compile(r"\s+")


# --------------------------------------------------------------------------------------------
# reading and matching
# --------------------------------------------------------------------------------------------

def _optional_column(columns, wanted: str | None, aliases: tuple[str, ...], *, what: str, option: str) -> str | None:
    from .files import find_column

    if wanted is not None:
        return find_column(columns, wanted, aliases, what=what, option=option)
    try:
        return find_column(columns, None, aliases, what=what, option=option)
    except InputDataError:
        return None


def _code_key(value: Any) -> str | None:
    """A unit code as text (``310101``, ``310101.0`` and ``"310101 "`` are the same), or None."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)) or value is pd.NA:
        return None
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    text = str(value).strip()
    if re.fullmatch(r"\d+\.0+", text):
        text = text.split(".")[0]
    return text or None


def read_census(
    path: str | os.PathLike[str],
    *,
    name_column: str | None = None,
    code_column: str | None = None,
    population_column: str | None = None,
) -> pd.DataFrame:
    """Read a census table: one row per area unit with its resident count.

    Parameters
    ----------
    path : path
        CSV/TSV (UTF-8 or GBK) or Excel file.
    name_column, code_column, population_column : str, optional
        Column names; found automatically when not given (name: ``district``/``name``/``区``/
        ``名称``/``unit``/``街道``; code: ``adcode``/``code``/``区划代码``, optional; population:
        ``population_2020``/``population``/``pop``/``常住人口``/``人口``).

    Returns
    -------
    pandas.DataFrame
        Columns ``name`` (str), ``code`` (str or None) and ``population`` (float), indexed
        0..n-1. Summary rows (合计, 总计, 全市, total) are dropped.

    Raises
    ------
    InputDataError
        If a column is missing, or a population is missing or negative.

    Examples
    --------
    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "census.csv")
    >>> text = "区,常住人口\\n黄浦区,662030\\n静安区,975707\\n合计,1637737\\n"
    >>> _ = open(f, "w", encoding="utf-8").write(text)
    >>> c = read_census(f)
    >>> c["name"].tolist(), c["population"].tolist(), c["code"].tolist()
    (['黄浦区', '静安区'], [662030.0, 975707.0], [None, None])
    """
    from .files import find_column, read_table

    p = Path(path)
    label = f"census {p.name}"
    df = read_table(p, what="census")
    if df.empty:
        raise InputDataError(f"{label} has no rows; give one row per area unit with its population")
    name_c = find_column(df.columns, name_column, CENSUS_NAME_ALIASES, what=label, option="--census-name")
    code_c = _optional_column(df.columns, code_column, CENSUS_CODE_ALIASES, what=label, option="--census-code")
    pop_c = find_column(df.columns, population_column, CENSUS_POPULATION_ALIASES, what=label,
                        option="--census-population")
    names = df[name_c]
    no_name = names.isna() | (names.astype(str).str.strip() == "")
    if no_name.any():
        raise InputDataError(
            f"{label}: {int(no_name.sum())} rows have no name in {name_c!r} (first at row "
            f"{int(np.flatnonzero(no_name.to_numpy())[0]) + 2} of the file); fill them in or remove them"
        )
    names = names.astype(str).map(lambda s: _SPACE.sub(" ", s).strip())
    summary = names.str.lower().map(lambda s: any(w in s for w in _SUMMARY_WORDS))
    if summary.any():
        log.info("%s: dropped %d summary rows (%s)", label, int(summary.sum()), ", ".join(names[summary]))
    raw = df[pop_c]
    if not pd.api.types.is_numeric_dtype(raw):
        raw = raw.astype(str).str.replace(",", "", regex=False).str.replace("，", "", regex=False).str.strip()
    pop = pd.to_numeric(raw, errors="coerce").astype(float)
    bad = (pop.isna() | (pop < 0) | ~np.isfinite(pop)) & ~summary
    if bad.any():
        first = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputDataError(
            f"{label}: {int(bad.sum())} rows have a missing or negative population in {pop_c!r} (first: "
            f"{names.iloc[first]!r} = {df[pop_c].iloc[first]!r}); give a number of people >= 0 in every row"
        )
    keep = ~summary.to_numpy()
    codes = [_code_key(v) for v in df[code_c]] if code_c is not None else [None] * len(df)
    out = pd.DataFrame({"name": names.to_numpy()[keep], "population": pop.to_numpy()[keep]})
    out.insert(1, "code", pd.Series([c for c, k in zip(codes, keep) if k], dtype=object))
    if out.empty:
        raise InputDataError(f"{label} has only summary rows; give one row per area unit")
    log.info("%s: %d units, %.0f people", label, len(out), out["population"].sum())
    return out


def normalise_unit_name(name: Any) -> str:
    """A unit name reduced for matching: no whitespace, no 新区/区/县/街道/镇/乡 suffix.

    >>> [normalise_unit_name(n) for n in ["浦东新区", " 黄浦区", "浦东", "曹家渡街道", "朱家角镇"]]
    ['浦东', '黄浦', '浦东', '曹家渡', '朱家角']
    """
    text = _SPACE.sub("", str(name)).replace("\u3000", "")
    for suffix in _NAME_SUFFIXES:
        if text.endswith(suffix) and len(text) > len(suffix):
            return text[: -len(suffix)]
    return text


def _has_codes(values) -> bool:
    return len(values) > 0 and all(v is not None for v in values)


def match_units(units, census: pd.DataFrame, *, on: str = "auto") -> pd.Series:
    """Which census row belongs to each unit polygon, joined on codes or on names.

    Parameters
    ----------
    units : geopandas.GeoDataFrame or pandas.DataFrame
        A ``unit`` column (name) and optionally an ``adcode`` column.
    census : pandas.DataFrame
        As returned by :func:`read_census` (``name``, ``code``, ``population``).
    on : {"auto", "code", "name"}
        ``"auto"`` joins on codes when every unit and every census row has one, else on names.
        Names are compared after :func:`normalise_unit_name` (浦东新区 ~ 浦东, 黄浦区 ~ 黄浦).

    Returns
    -------
    pandas.Series
        Indexed like ``units``: the index label of the matching census row.

    Raises
    ------
    InputDataError
        Unless every census row matches exactly one unit and every unit exactly one census row;
        the message lists the names that did not match.

    Examples
    --------
    >>> units = pd.DataFrame({"unit": ["黄浦区", "浦东新区"]})
    >>> census = pd.DataFrame({"name": ["浦东", "黄浦"], "code": [None, None], "population": [5.0, 1.0]})
    >>> match_units(units, census).tolist()
    [1, 0]
    """
    if on not in ("auto", "code", "name"):
        raise InputDataError(f"census join {on!r} is not one of auto, code, name; fix --census-join")
    if "unit" not in units:
        raise InputDataError("the units have no 'unit' name column; read them with lifecircle.read.units.units_from_file")
    unit_names = units["unit"].astype(str).to_numpy()
    unit_codes = [_code_key(v) for v in units["adcode"]] if "adcode" in units else []
    census_codes = [_code_key(v) for v in census["code"]] if "code" in census else []
    both_coded = _has_codes(unit_codes) and _has_codes(census_codes)
    if on == "code" and not both_coded:
        side = "the units (an 'adcode' column)" if not _has_codes(unit_codes) else "the census table (a code column)"
        raise InputDataError(f"cannot join the census on codes: {side} lacks a code for every row; "
                             "add the codes or join on names with --census-join name")
    by_code = on == "code" or (on == "auto" and both_coded)
    if by_code:
        ukeys, ckeys, what = unit_codes, census_codes, "codes"
        hint = "fix the codes or join on names with --census-join name"
    else:
        ukeys = [normalise_unit_name(n) for n in unit_names]
        ckeys = [normalise_unit_name(n) for n in census["name"]]
        what = "names"
        hint = "fix the names or join on adcode with --census-join adcode"
    census_label = census["name"].astype(str).to_numpy()

    def shown(labels, keys, idx):
        return ", ".join(f"{labels[i]} ({keys[i]})" if by_code else str(labels[i]) for i in idx)

    problems = []
    for side, keys, labels in (("census", ckeys, census_label), ("units", ukeys, unit_names)):
        counts = pd.Series(keys).value_counts()
        dup = [i for i, k in enumerate(keys) if counts[k] > 1]
        if dup:
            problems.append(f"{side} {what} that appear more than once: {shown(labels, keys, dup)}")
    uset, cset = set(ukeys), set(ckeys)
    missing_c = [i for i, k in enumerate(ckeys) if k not in uset]
    missing_u = [i for i, k in enumerate(ukeys) if k not in cset]
    if missing_c:
        problems.append(f"census {what} not found among the units: {shown(census_label, ckeys, missing_c)}")
    if missing_u:
        problems.append(f"units without a census row: {shown(unit_names, ukeys, missing_u)}")
    if problems:
        raise InputDataError("; ".join(problems) + f" — {hint}")
    pos = {k: label for k, label in zip(ckeys, census.index)}
    out = pd.Series([pos[k] for k in ukeys], index=units.index, name="census_row")
    log.info("census: %d units matched on %s", len(out), what)
    return out


# --------------------------------------------------------------------------------------------
# dasymetric spreading
# --------------------------------------------------------------------------------------------

def _grid_in(geom, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Lattice points ``step`` apart (global origin, cell centres) strictly inside ``geom``.

    Works part by part of a multi-polygon, vectorised over all candidate points.
    """
    import shapely

    parts = shapely.get_parts(np.asarray([geom], dtype=object))
    parts = parts[shapely.area(parts) > 0]
    if parts.size == 0:
        return np.empty(0), np.empty(0)
    b = shapely.bounds(parts)
    i0 = np.ceil(b[:, 0] / step - 0.5).astype(np.int64)
    i1 = np.floor(b[:, 2] / step - 0.5).astype(np.int64)
    j0 = np.ceil(b[:, 1] / step - 0.5).astype(np.int64)
    j1 = np.floor(b[:, 3] / step - 0.5).astype(np.int64)
    nx = np.maximum(i1 - i0 + 1, 0)
    ny = np.maximum(j1 - j0 + 1, 0)
    counts = nx * ny
    total = int(counts.sum())
    if total == 0:
        return np.empty(0), np.empty(0)
    part = np.repeat(np.arange(parts.size), counts)
    k = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    x = (i0[part] + k % nx[part] + 0.5) * step
    y = (j0[part] + k // nx[part] + 0.5) * step
    shapely.prepare(parts)
    inside = shapely.contains_xy(parts[part], x, y)
    return x[inside], y[inside]


def _spread_grid(geom, cell_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Grid points ``cell_m`` apart inside ``geom`` (coarser past MAX_POINTS_PER_UNIT); a point if tiny."""
    step = max(cell_m, float(np.sqrt(geom.area / MAX_POINTS_PER_UNIT)))
    x, y = _grid_in(geom, step)
    while x.size > 1.5 * MAX_POINTS_PER_UNIT:  # thin shapes can beat the area estimate
        step *= float(np.sqrt(x.size / MAX_POINTS_PER_UNIT))
        x, y = _grid_in(geom, step)
    if x.size == 0 and not geom.is_empty:
        rp = geom.representative_point()
        x, y = np.array([rp.x]), np.array([rp.y])
    return x, y


def _read_osm_homes(path, *, m2_per_person: float, crs):
    """Residential buildings (points + floor area) and residential landuse polygons, in ``crs``.

    One pass over the OSM file; buildings follow
    :func:`lifecircle.read.population.residents_from_building_polygons`.
    """
    import shapely

    from .population import _osm_name, read_building_polygons, residents_from_building_polygons

    gdf = read_building_polygons(path)
    polys = gdf[gdf.geometry.geom_type.isin(["Polygon", "MultiPolygon"])]
    land = polys.geometry[(polys["landuse"] == "residential").to_numpy() & polys["building"].isna().to_numpy()]
    try:
        homes = residents_from_building_polygons(polys, m2_per_person=m2_per_person, label=_osm_name(path))
        hx, hy = _xy(homes.geometry.to_crs(crs))
        area = homes["floor_area_m2"].to_numpy(dtype=float)
    except EmptyResultError:
        hx, hy, area = np.empty(0), np.empty(0), np.empty(0)
    land_m = shapely.make_valid(land.to_crs(crs).to_numpy()) if len(land) else np.empty(0, dtype=object)
    log.info("census: %s has %d residential buildings and %d residential landuse areas",
             _osm_name(path), area.size, len(land_m))
    return hx, hy, area, land_m


def _xy(geoms) -> tuple[np.ndarray, np.ndarray]:
    import shapely

    c = shapely.get_coordinates(np.asarray(geoms, dtype=object))
    return c[:, 0].copy(), c[:, 1].copy()


def _assign(tree, x: np.ndarray, y: np.ndarray, n_units: int) -> np.ndarray:
    """Index of the unit holding each point (-1 outside all; on a border the first in file order wins)."""
    import shapely

    from .units import unit_positions

    if x.size == 0 or n_units == 0:
        return np.full(x.size, -1, dtype=np.int64)
    return unit_positions(shapely.points(x, y), tree.geometries, tree=tree)


def residents_from_census(
    units,
    census: pd.DataFrame | str | os.PathLike[str],
    *,
    on: str = "auto",
    osm=None,
    network=None,
    m2_per_person: float = 36.5,
    cell_m: float = 100.0,
    min_network_share: float = 0.5,
    clip_to_network: bool = False,
):
    """Spread each unit's census count over weighted points inside it (dasymetric mapping).

    For each unit the first method with data inside the unit is used:

    ``"buildings"``
        OSM residential buildings from ``osm`` (as in
        :func:`lifecircle.read.population.residents_from_building_polygons`: residential building
        types, plus ``building=yes`` inside ``landuse=residential``); one point per building
        (its representative point), weight = floor area (footprint × levels).
    ``"residential_landuse"``
        ``landuse=residential`` polygons from ``osm`` clipped to the unit; grid points
        ``cell_m`` apart inside them, equal weights (so people follow residential area).
    ``"streets"``
        edges of ``network`` whose midpoint lies in the unit; one point per midpoint,
        weight = edge length (the unit is at least ``min_network_share`` inside the network's
        extent, or clipped to it; see below).
    ``"area"``
        grid points ``cell_m`` apart over the whole unit (coarser when a unit would get more
        than :data:`MAX_POINTS_PER_UNIT` points; its representative point when it is tiny).

    **Units the network does not cover.** With a ``network``, a unit less than
    ``min_network_share`` inside the network's extent (the convex hull of its nodes) is an
    error that lists such units: its residents far from every street would count as not covered
    and pull the shares down. ``clip_to_network=True`` instead keeps the part of each unit inside
    the extent and scales its census count by the **residential share kept**: the share of the
    unit's OSM residential buildings (floor area) inside the clip, else of its residential
    landuse area, else of its area. Units entirely outside get no residents; the clipped units
    are in ``attrs["clipped_units"]``.

    Each point gets ``unit total × weight / sum of the unit's weights``, so every unit keeps
    its census total (times the share kept when clipped) (a unit counted as 0 gets no points; its method is ``"none"``). This places
    people, it does not estimate them: a unit where OSM maps only a few homes, or that the
    network only clips, puts its whole count there (both are logged as warnings).

    Parameters
    ----------
    units : geopandas.GeoDataFrame
        Unit polygons with a ``unit`` name column (and optionally ``adcode``), any CRS.
    census : pandas.DataFrame or path
        :func:`read_census` output, or a file for it.
    on : {"auto", "code", "name"}
        How to join units to census rows (:func:`match_units`).
    osm : path or OSMLayers, optional
        OSM file with buildings / landuse (read once), or its
        :class:`~lifecircle.read.osm.OSMLayers` with the buildings layer (not read again).
    network : WalkNetwork, optional
        Walking network for the ``"streets"`` method.
    m2_per_person : float
        Floor area per resident, only used to report ``building_estimate``.
    cell_m : float
        Grid spacing in metres of the landuse and area methods.
    min_network_share : float
        Least share of a unit's area inside the network's extent (else an error, see above).
    clip_to_network : bool
        Clip the units to the network's extent and scale their counts by the residential share
        kept, instead of the error.

    Returns
    -------
    geopandas.GeoDataFrame
        WGS84 points with ``population``, ``unit`` and ``method``;
        ``attrs["population_source"] = "census_dasymetric"`` and ``attrs["census_methods"]``:
        one row per unit with ``unit``, ``census_population``, ``kept_share`` (1 unless clipped),
        ``population`` (people placed: census × kept share), ``method``, ``points`` and
        ``building_estimate`` (OSM floor area ÷ ``m2_per_person`` for the buildings method:
        far below the census figure means OSM maps few of the unit's homes).

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> units = gpd.GeoDataFrame({"unit": ["甲区", "乙区"]}, crs=4326, geometry=[
    ...     shapely.box(121.40, 31.20, 121.41, 31.21), shapely.box(121.41, 31.20, 121.42, 31.21)])
    >>> census = pd.DataFrame({"name": ["甲", "乙"], "code": [None, None], "population": [1000.0, 7.0]})
    >>> r = residents_from_census(units, census)
    >>> r.groupby("unit")["population"].sum().round(6).to_dict()
    {'乙区': 7.0, '甲区': 1000.0}
    >>> r.attrs["census_methods"][["unit", "method"]].values.tolist()
    [['甲区', 'area'], ['乙区', 'area']]
    """
    import geopandas as gpd
    import pyproj
    import shapely

    from .network import local_utm_crs
    from .population import _finish

    if not (m2_per_person > 0):
        raise InputDataError(f"m2_per_person must be positive (got {m2_per_person}); e.g. 36.5")
    if not (cell_m > 0):
        raise InputDataError(f"cell_m must be positive (got {cell_m}); e.g. 100")
    if not (0 <= min_network_share <= 1):
        raise InputDataError(f"min_network_share must be between 0 and 1 (got {min_network_share}); e.g. 0.5")
    if not isinstance(census, pd.DataFrame):
        census = read_census(census)
    if not {"name", "population"} <= set(census.columns):
        cols = ", ".join(map(str, census.columns))
        raise InputDataError(f"the census table needs columns name and population (has {cols}); "
                             "read it with lifecircle.read.census.read_census")
    if getattr(units, "crs", None) is None:
        raise InputDataError("the units have no CRS; set one (DataV/AMap boundaries: --units-crs gcj02)")
    row_of = match_units(units, census, on=on)
    empty = units.geometry.isna() | units.geometry.is_empty
    if empty.any():
        raise InputDataError(f"units without a geometry: {', '.join(units.loc[empty, 'unit'].astype(str))}; "
                             "give every census unit a polygon")
    u4326 = units.to_crs(4326)
    c = u4326.geometry.union_all().centroid
    crs = local_utm_crs(c.x, c.y)
    geoms = shapely.make_valid(u4326.geometry.to_crs(crs).to_numpy())
    names = units["unit"].astype(str).to_numpy()
    totals = census.loc[row_of.to_numpy(), "population"].to_numpy(dtype=float)
    census_counts = totals.copy()
    n = len(geoms)
    tree = shapely.STRtree(geoms)

    # candidate data, read once and assigned to units in one query each
    bx = by = barea = np.empty(0)
    land = np.empty(0, dtype=object)
    if osm is not None:
        bx, by, barea, land = _read_osm_homes(osm, m2_per_person=m2_per_person, crs=crs)
    sx = sy = slen = np.empty(0)
    hull = None
    kept_share = np.ones(n)
    if network is not None:
        nx_, ny_, mx, my = (network.x, network.y, (network.x[network.u] + network.x[network.v]) / 2,
                            (network.y[network.u] + network.y[network.v]) / 2)
        if not pyproj.CRS(network.crs).equals(crs):
            to = pyproj.Transformer.from_crs(network.crs, crs, always_xy=True)
            nx_, ny_ = to.transform(nx_, ny_)
            mx, my = to.transform(mx, my)
        sx, sy, slen = np.asarray(mx, float), np.asarray(my, float), np.asarray(network.length_m, float)
        hull = shapely.convex_hull(shapely.multipoints(np.column_stack([nx_, ny_])))
        if clip_to_network:
            geoms, kept_share = _clip_to(hull, geoms, tree, bx, by, barea, land, names)
            totals = totals * kept_share
            tree = shapely.STRtree(geoms)
        else:
            _check_inside(hull, geoms, names, min_network_share)
    b_owner = _assign(tree, bx, by, n)
    land_pairs = tree.query(land, predicate="intersects") if len(land) else np.empty((2, 0), dtype=np.int64)
    s_owner = _assign(tree, sx, sy, n)
    b_by_unit = _group(b_owner, n)
    s_by_unit = _group(s_owner, n)
    land_by_unit = _group(land_pairs[1], n, values=land_pairs[0])

    xs, ys, pops, owners, methods, table = [], [], [], [], [], []
    for i in range(n):
        total = totals[i]
        x = y = w = None
        method, estimate = "none", np.nan
        if total > 0:
            bi = b_by_unit[i]
            if bi.size and barea[bi].sum() > 0:
                method, x, y, w = "buildings", bx[bi], by[bi], barea[bi]
                estimate = float(w.sum()) / m2_per_person
            if method == "none" and land_by_unit[i].size:
                clip = shapely.intersection(land[land_by_unit[i]], geoms[i])
                clip = shapely.union_all(clip[shapely.area(clip) > 0])
                if not clip.is_empty and clip.area > 0:
                    x, y = _spread_grid(clip, cell_m)
                    method, w = "residential_landuse", np.ones(x.size)
            si = s_by_unit[i]
            if method == "none" and si.size and slen[si].sum() > 0:
                # the unit is at least min_network_share inside the network's extent (checked above)
                method, x, y, w = "streets", sx[si], sy[si], slen[si]
            if method == "none":
                x, y = _spread_grid(geoms[i], cell_m)
                method, w = "area", np.ones(x.size)
            keep = w > 0
            x, y, w = x[keep], y[keep], w[keep]
            pop = total * (w / w.sum())
            xs.append(x); ys.append(y); pops.append(pop)
            owners.append(np.full(x.size, i)); methods.append(np.full(x.size, method, dtype=object))
        npts = 0 if x is None else int(x.size)
        if method == "buildings" and estimate < 0.25 * total:
            log.warning("census: OSM buildings in %s hold homes for %.0f people at %.1f m²/person, %.0f%% of its "
                        "census %.0f; its residents all go to those %d buildings",
                        names[i], estimate, m2_per_person, 100 * estimate / total, total, npts)
        table.append((names[i], census_counts[i], kept_share[i], total, method, npts, estimate))

    methods_df = pd.DataFrame(table, columns=["unit", "census_population", "kept_share", "population", "method",
                                              "points", "building_estimate"])
    if not xs:
        raise EmptyResultError("no residents: every census unit has a population of 0; check the census table "
                               "and --census-population")
    owner = np.concatenate(owners)
    pts = gpd.GeoDataFrame(
        {"population": np.concatenate(pops), "unit": names[owner], "method": np.concatenate(methods)},
        geometry=gpd.points_from_xy(np.concatenate(xs), np.concatenate(ys)), crs=crs,
    ).to_crs(4326)
    counts = methods_df.groupby("method")["unit"].count().to_dict()
    log.info("census: %d units spread by %s", n, ", ".join(f"{m} {counts[m]}" for m in CENSUS_METHODS + ("none",)
                                                            if m in counts))
    out = _finish(pts, "census_dasymetric")
    out.attrs["census_methods"] = methods_df
    if clip_to_network and network is not None:
        keep = kept_share > 0
        clipped = units.loc[keep].drop(columns=units.geometry.name).copy()
        out.attrs["clipped_units"] = gpd.GeoDataFrame(
            clipped, geometry=gpd.GeoSeries(geoms[keep], crs=crs).to_crs(4326).to_numpy(), crs=4326
        ).reset_index(drop=True)
    return out


def _share_text(share: float) -> str:
    return f"{100 * share:.1f} %" if 0 < share < 0.01 else f"{100 * share:.0f} %"


def _check_inside(hull, geoms, names, min_share: float) -> None:
    """Error listing the units less than ``min_share`` inside the network's extent."""
    import shapely

    area = shapely.area(geoms)
    inside = np.where(area > 0, shapely.area(shapely.intersection(geoms, hull)) / np.where(area > 0, area, 1), 1.0)
    bad = np.flatnonzero(inside < min_share)
    if bad.size == 0:
        return
    order = bad[np.argsort(-inside[bad], kind="stable")]
    shown = ", ".join(f"{names[i]} {_share_text(inside[i])}" for i in order[:20])
    more = f" and {order.size - 20} more" if order.size > 20 else ""
    raise InputDataError(
        f"{order.size} of {len(geoms)} census units lie less than {_share_text(min_share)} inside the walking "
        f"network's extent ({shown}{more}): their residents far from every street would count as not covered; "
        "pass --clip-units-to-network to keep the part of each unit inside the network (its census count scaled "
        "by the residential share kept), or give an OSM extract (--osm) that covers every unit"
    )


def _clip_to(hull, geoms, tree, bx, by, barea, land, names):
    """Units clipped to ``hull`` and the residential share of each that is kept.

    The share is that of the unit's residential buildings' floor area inside the hull, else of
    its residential landuse area, else of its area (0 for a unit entirely outside).
    """
    import shapely

    n = len(geoms)
    clipped = shapely.make_valid(shapely.intersection(geoms, hull))
    clipped = np.where(shapely.area(clipped) > 0, clipped, shapely.Polygon())
    area = shapely.area(geoms)
    share = np.where(area > 0, shapely.area(clipped) / np.where(area > 0, area, 1), 0.0)
    how = np.full(n, "area", dtype=object)
    owner = _assign(tree, bx, by, n)
    if owner.size:
        in_hull = shapely.intersects_xy(hull, bx, by)
        ok = owner >= 0
        floor = np.bincount(owner[ok], weights=barea[ok], minlength=n)
        floor_in = np.bincount(owner[ok & in_hull], weights=barea[ok & in_hull], minlength=n)
        has = floor > 0
        share[has] = floor_in[has] / floor[has]
        how[has] = "buildings"
    if len(land):
        li, ui = tree.query(land, predicate="intersects")
        for i in np.unique(ui):
            if how[i] != "area":
                continue
            piece = shapely.union_all(shapely.intersection(land[li[ui == i]], geoms[i]))
            if piece.area > 0:
                share[i] = shapely.intersection(piece, hull).area / piece.area
                how[i] = "residential_landuse"
    share = np.where(shapely.is_empty(clipped), 0.0, share)
    for i in range(n):
        if share[i] < 1:
            log.info("census: %s clipped to the network's extent: %.1f%% of its %s kept", names[i], 100 * share[i],
                     {"buildings": "residential floor area", "residential_landuse": "residential landuse",
                      "area": "area"}[how[i]])
    if not (share > 0).any():
        raise EmptyResultError("the walking network covers none of the census units; check the units' CRS "
                               "(DataV/AMap boundaries: --units-crs gcj02) and that the OSM file is of the same area")
    return clipped, share


def _group(owner: np.ndarray, n: int, *, values: np.ndarray | None = None) -> list[np.ndarray]:
    """For each unit 0..n-1 the positions (or ``values``) whose owner is that unit."""
    vals = np.arange(owner.size) if values is None else np.asarray(values)
    ok = owner >= 0
    owner, vals = owner[ok], vals[ok]
    order = np.argsort(owner, kind="stable")
    owner, vals = owner[order], vals[order]
    bounds = np.searchsorted(owner, np.arange(n + 1))
    return [vals[bounds[i]:bounds[i + 1]] for i in range(n)]
