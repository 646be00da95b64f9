"""Find the gaps: uncovered residents grouped into contiguous areas, ranked by the people affected.

A resident is *uncovered* for a category when its walk to the nearest facility takes longer than
``minutes`` (``inf``: no facility within the search cut-off, or the resident is farther than
``max_snap_m`` from any street). Uncovered residents with people are put on a square grid of
``cell_m`` metres (aligned to multiples of ``cell_m`` in the network's UTM zone); occupied cells
that touch — sides or corners (8-connectivity, as ``scipy.ndimage.label`` with a 3 x 3 structure)
— form one gap area. The grid is never materialised: neighbouring cells are looked up among the
occupied ones and joined with ``scipy.sparse.csgraph.connected_components``, so a city-wide
study costs no more than its number of occupied cells.

Each gap reports its population, the walking time its residents face today (population-weighted
mean, median and maximum; ``inf`` means at least part of it has no facility within the cut-off,
and ``population_unreachable`` says how many people), its unit (the ``unit`` holding most of its
people, when residents have units), its name (``largest_name``: the name of its named resident
point with the most people, e.g. the 小区 most affected, when the residents have names), a representative location (the resident nearest to the
population-weighted centre, so it always lies in the gap) and its polygon (the union of its cells:
cells are joined into runs along each grid row and the runs of all gaps merged in a few vectorised
``shapely.coverage_union_all`` calls, never one call per gap; a city-wide gap is traced on a raster of
its cells by GDAL's polygonize instead).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import pyproj

from ..config import ALL, minutes_column
from ..errors import InputDataError

log = logging.getLogger("lifecircle")

__all__ = ["GAP_COLUMNS", "gap_areas", "find_gaps", "write_gaps", "check_category", "check_minutes"]

#: Columns of the tables returned by :func:`gap_areas` / :func:`find_gaps` (plus ``geometry``).
GAP_COLUMNS = [
    "gap", "category", "minutes", "population", "residents", "share_of_uncovered",
    "mean_minutes", "median_minutes", "max_minutes", "population_unreachable", "unit", "largest_name",
    "lon", "lat", "resident_index", "cells", "area_km2",
]
# forward half of the 8-neighbourhood: every touching pair of cells is found exactly once
_NEIGHBOURS = ((1, -1), (1, 0), (1, 1), (0, 1))


def _empty_gaps(crs: Any = 4326):
    import geopandas as gpd

    cols: dict[str, Any] = {c: pd.Series(dtype=float) for c in GAP_COLUMNS}
    for c in ("gap", "residents", "cells", "resident_index"):
        cols[c] = pd.Series(dtype="int64")
    for c in ("category", "unit", "largest_name"):
        cols[c] = pd.Series(dtype=object)
    return gpd.GeoDataFrame(cols, geometry=gpd.GeoSeries([], crs=crs))


def _label_cells(ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
    """Connected-component label (8-connectivity) of each cell; cells given once each."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(ix)
    # shift so that every neighbour index stays >= 0, and leave a spare column on each side
    x = ix - ix.min() + 1
    y = iy - iy.min() + 1
    width = int(y.max()) + 2
    key = x * width + y
    order = np.argsort(key)
    sorted_key = key[order]
    rows, cols = [], []
    for dx, dy in _NEIGHBOURS:
        nb = (x + dx) * width + (y + dy)
        pos = np.searchsorted(sorted_key, nb)
        hit = pos < n
        hit[hit] = sorted_key[pos[hit]] == nb[hit]
        rows.append(np.flatnonzero(hit))
        cols.append(order[pos[hit]])
    r = np.concatenate(rows)
    c = np.concatenate(cols)
    graph = coo_matrix((np.ones(len(r), dtype=np.int8), (r, c)), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    return label


def _unique_cells(ix: np.ndarray, iy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique`` of the (ix, iy) rows (same lexicographic order) and each row's cell, via one int64 key."""
    x0, y0 = int(ix.min()), int(iy.min())
    width = int(iy.max()) - y0 + 1
    key = (ix - x0) * width + (iy - y0)
    uk, cell_of = np.unique(key, return_inverse=True)
    cells = np.column_stack([uk // width + x0, uk % width + y0])
    return cells, cell_of.ravel()


def _cell_polygons(cells: np.ndarray, label: np.ndarray, n_labels: int, cell_m: float) -> np.ndarray:
    """The union of the cells of each label 0..n_labels-1 (shapely polygons in grid metres).

    Cells are first joined into runs along each grid row (a run is one rectangle whose long sides
    keep a vertex at every cell corner, so that runs of neighbouring rows share their vertices
    exactly, as a coverage must); the runs of each label are then merged with
    ``shapely.coverage_union_all(..., axis=1)`` on a padded 2-D array, one call per bucket of
    labels with a similar number of runs (never one call per label). A label of more than
    :data:`RASTER_RUNS_ABOVE` runs (a city-wide gap) is traced on a raster instead
    (:func:`_raster_polygons`).
    """
    import shapely

    order = np.lexsort((cells[:, 0], label, cells[:, 1]))
    cx, cy, lab = cells[order, 0], cells[order, 1], label[order]
    start = np.ones(len(cx), dtype=bool)
    start[1:] = (cy[1:] != cy[:-1]) | (lab[1:] != lab[:-1]) | (cx[1:] != cx[:-1] + 1)
    s = np.flatnonzero(start)
    length = np.diff(np.append(s, len(cx)))  # cells per run
    # ring of a run of L cells from (x, y): bottom x..x+L, top x+L..x, back to the start (2L + 3 points)
    n_pts = 2 * length + 3
    ring = np.repeat(np.arange(len(s)), n_pts)
    k = np.arange(int(n_pts.sum())) - np.repeat(np.cumsum(n_pts) - n_pts, n_pts)
    L = length[ring]
    x0, y0 = cx[s][ring], cy[s][ring]
    bottom = k <= L
    top = ~bottom & (k <= 2 * L + 1)
    px = np.where(bottom, x0 + k, np.where(top, x0 + 2 * L + 1 - k, x0))
    py = np.where(top, y0 + 1, y0)
    runs = shapely.polygons(shapely.linearrings(np.column_stack([px * cell_m, py * cell_m]), indices=ring))
    run_lab = lab[s]
    by = np.argsort(run_lab, kind="stable")
    runs, run_lab = runs[by], run_lab[by]
    count = np.bincount(run_lab, minlength=n_labels)
    first = np.cumsum(count) - count
    slot = np.arange(len(runs)) - first[run_lab]
    bucket = np.ceil(np.log2(np.maximum(count, 1))).astype(np.int64)  # widths within 2x: padding < half
    out = np.empty(n_labels, dtype=object)
    big = count > RASTER_RUNS_ABOVE
    if big.any():  # a city-wide gap: traced on a raster of its cells (GEOS unions of 10^5 runs take minutes)
        mine = big[label]
        out[big] = _raster_polygons(cells[mine], label[mine], np.flatnonzero(big), cell_m)
    for b in np.unique(bucket[(count > 0) & ~big]):
        labs = np.flatnonzero((bucket == b) & (count > 0) & ~big)
        row = np.full(n_labels, -1, dtype=np.int64)
        row[labs] = np.arange(len(labs))
        mine = row[run_lab] >= 0
        grid = np.full((len(labs), int(count[labs].max())), None, dtype=object)
        grid[row[run_lab[mine]], slot[mine]] = runs[mine]
        out[labs] = shapely.coverage_union_all(grid, axis=1)
    return out


#: Labels with more runs than this are traced on a raster (:func:`_raster_polygons`), the others merged by GEOS.
RASTER_RUNS_ABOVE = 5_000


def _raster_polygons(cells: np.ndarray, label: np.ndarray, labels: np.ndarray, cell_m: float) -> np.ndarray:
    """The union of the cells of each of ``labels`` (in that order), traced by GDAL's polygonize on a
    raster of the cells (``rasterio.features.shapes``, 4-connected parts; parts of one label touching
    at a corner make a MultiPolygon, as their union does).

    >>> cells = np.array([[0, 0], [1, 0], [2, 1], [5, 5]]); lab = np.array([0, 0, 0, 1])
    >>> [g.wkt for g in _raster_polygons(cells, lab, np.array([0, 1]), 100.0)]  # doctest: +NORMALIZE_WHITESPACE
    ['MULTIPOLYGON (((200 100, 200 200, 300 200, 300 100, 200 100)), ((0 0, 0 100, 200 100, 200 0, 0 0)))',
     'POLYGON ((500 500, 500 600, 600 600, 600 500, 500 500))']
    """
    import shapely
    from rasterio import features
    from rasterio.transform import Affine  # (a declared dependency's own name for it)

    cx, cy = cells[:, 0], cells[:, 1]
    x0, y0 = int(cx.min()), int(cy.min())
    w, h = int(cx.max()) - x0 + 1, int(cy.max()) - y0 + 1
    slot = np.full(int(label.max()) + 1, -1, dtype=np.int64)
    slot[labels] = np.arange(len(labels))
    grid = np.zeros((h, w), dtype=np.int32)
    grid[(h - 1) - (cy - y0), cx - x0] = slot[label] + 1  # row 0 at the top
    transform = Affine(cell_m, 0.0, x0 * cell_m, 0.0, -cell_m, (y0 + h) * cell_m)
    parts: list[list] = [[] for _ in labels]
    for geom, value in features.shapes(grid, mask=grid > 0, connectivity=4, transform=transform):
        parts[int(value) - 1].append(shapely.geometry.shape(geom))
    out = np.empty(len(labels), dtype=object)
    for i, p in enumerate(parts):
        out[i] = shapely.normalize(p[0] if len(p) == 1 else shapely.MultiPolygon(p))
    return out


def _first_per_group(group: np.ndarray, sort_key: np.ndarray) -> np.ndarray:
    """Position (in the original arrays) of the smallest ``sort_key`` of each group 0..g-1."""
    order = np.lexsort((sort_key, group))
    g = group[order]
    first = np.ones(len(g), dtype=bool)
    first[1:] = g[1:] != g[:-1]
    return order[first]


def gap_areas(
    residents,
    minutes_to: Any,
    *,
    minutes: float = 15.0,
    cell_m: float = 100.0,
    crs: Any = None,
    category: str | None = None,
    unit_column: str = "unit",
    name_column: str | None = None,
):
    """Group residents farther than ``minutes`` from a facility into contiguous gap areas.

    Parameters
    ----------
    residents : GeoDataFrame
        WGS84 points with a ``population`` column (and optionally ``unit_column``).
    minutes_to : array-like
        Walking minutes from each resident to the nearest facility, in the order of
        ``residents``; ``inf`` (or NaN) means none within the search cut-off.
    minutes : float
        Threshold: residents with ``minutes_to > minutes`` are uncovered.
    cell_m : float
        Grid cell size in metres; cells touching at a side or a corner join one gap.
    crs : CRS, optional
        Metric CRS of the grid; default the UTM zone of the residents.
    category : str, optional
        Written into the ``category`` column.
    unit_column : str
        Column naming each resident's unit; ignored when absent.
    name_column : str, optional
        Column naming each resident point (a 小区, a building): ``largest_name`` is the name of the
        gap's named point with the most people (None when none of its points has a name).

    Returns
    -------
    GeoDataFrame
        One row per gap (:data:`GAP_COLUMNS`), EPSG:4326 polygons, ranked by ``population``
        (``gap`` = rank, 1 = most people). Empty when every resident is covered.

    Examples
    --------
    Three uncovered residents: two in neighbouring 100 m cells (one gap of 30 people, one of
    them 20 min away and one with no facility at all) and one 1 km east (a gap of 5):

    >>> import geopandas as gpd
    >>> res = gpd.GeoDataFrame({"population": [10, 20, 5, 99]},
    ...     geometry=gpd.points_from_xy([121.4005, 121.4015, 121.4110, 121.40], [31.2005] * 3 + [31.21]),
    ...     crs=4326)
    >>> g = gap_areas(res, [20.0, np.inf, 16.0, 3.0], minutes=15, category="health")
    >>> g.population.tolist(), g.residents.tolist(), g.population_unreachable.tolist()
    ([30.0, 5.0], [2, 1], [20.0, 0.0])
    >>> g["max_minutes"].tolist(), g["median_minutes"].tolist()
    ([inf, 16.0], [inf, 16.0])

    With names, each gap is called by its named point with the most people:

    >>> res["小区名称"] = ["康乐小区", "锦绣苑", None, "绿地"]
    >>> gap_areas(res, [20.0, np.inf, 16.0, 3.0], minutes=15, name_column="小区名称")["largest_name"].tolist()
    ['锦绣苑', None]
    """
    import geopandas as gpd
    import shapely

    from ..read.network import local_utm_crs

    if not (isinstance(cell_m, (int, float)) and cell_m > 0):
        raise InputDataError(f"cell_m must be a positive number of metres (got {cell_m!r}); e.g. --cell-m 100")
    mins = np.asarray(minutes_to, dtype=float).ravel()
    if len(mins) != len(residents):
        raise InputDataError(f"minutes_to has {len(mins)} values for {len(residents)} residents; "
                             "pass one walking time per resident, in the same order")
    pop = residents["population"].to_numpy(dtype=float)
    # shapely's array functions, not GeoSeries properties (geom_type makes 354k strings: 0.2 s a category)
    geom = np.asarray(residents.geometry.values, dtype=object)
    kind = shapely.get_type_id(geom)
    if len(geom) and not (kind == 0).all():
        geom = np.where(kind > 0, shapely.point_on_surface(geom), geom)
    has_xy = ~(shapely.is_missing(geom) | shapely.is_empty(geom))
    mins = np.where(np.isnan(mins), np.inf, mins)
    pick = np.flatnonzero(~(mins <= minutes) & (pop > 0) & has_xy)
    if pick.size == 0:
        return _empty_gaps()
    lon = shapely.get_x(geom[pick])
    lat = shapely.get_y(geom[pick])
    if crs is None:
        crs = local_utm_crs(float(np.median(lon)), float(np.median(lat)))
    x, y = pyproj.Transformer.from_crs(4326, crs, always_xy=True).transform(lon, lat)
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    w = pop[pick]
    m = mins[pick]

    cx_all = np.floor(x / cell_m).astype(np.int64)
    cy_all = np.floor(y / cell_m).astype(np.int64)
    cells, cell_of = _unique_cells(cx_all, cy_all)
    cell_label = _label_cells(cells[:, 0], cells[:, 1])
    raw = cell_label[cell_of]

    # rank gaps: most people first, then most people with no facility in reach, then position
    n_raw = int(cell_label.max()) + 1
    gpop = np.bincount(raw, weights=w, minlength=n_raw)
    finite = np.isfinite(m)
    unreachable = np.bincount(raw, weights=np.where(finite, 0.0, w), minlength=n_raw)
    order = np.lexsort((np.arange(n_raw), -unreachable, -gpop))
    rank = np.empty(n_raw, dtype=np.int64)
    rank[order] = np.arange(n_raw)
    lab = rank[raw]
    cell_lab = rank[cell_label]
    pop_g = gpop[order]
    unreach_g = unreachable[order]

    n_res = np.bincount(lab, minlength=n_raw)
    wm = np.bincount(lab, weights=w * np.where(finite, m, 0.0), minlength=n_raw)
    mean = np.where(unreach_g > 0, np.inf, wm / pop_g)
    # one sort by (gap, minutes) gives the maximum (each gap's last) and the median
    srt = np.lexsort((m, lab))
    last = np.ones(len(srt), dtype=bool)
    last[:-1] = lab[srt][1:] != lab[srt][:-1]
    max_m = np.empty(n_raw)
    max_m[lab[srt][last]] = m[srt][last]
    # population-weighted median: smallest time at which half of the gap's people are reached
    within = pd.Series(w[srt]).groupby(lab[srt]).cumsum().to_numpy()  # restarts at each gap
    sel = np.flatnonzero(within >= 0.5 * pop_g[lab[srt]] * (1 - 1e-12))
    g_sel = lab[srt][sel]
    first = np.ones(len(sel), dtype=bool)
    first[1:] = g_sel[1:] != g_sel[:-1]
    median = np.empty(n_raw)
    median[g_sel[first]] = m[srt][sel[first]]

    # representative location: the resident nearest to the population-weighted centre
    cx = np.bincount(lab, weights=w * x, minlength=n_raw) / pop_g
    cy = np.bincount(lab, weights=w * y, minlength=n_raw) / pop_g
    d2 = (x - cx[lab]) ** 2 + (y - cy[lab]) ** 2
    rep = _first_per_group(lab, d2)  # sorted by gap: rep[g] is gap g's resident

    units = np.full(n_raw, None, dtype=object)
    if unit_column in residents.columns:
        u = residents[unit_column].to_numpy(dtype=object)[pick]
        known = pd.notna(u)
        if known.any():
            t = pd.DataFrame({"g": lab[known], "u": u[known], "w": w[known]})
            s = t.groupby(["g", "u"], sort=True)["w"].sum().reset_index()
            s = s.sort_values(["g", "w"], ascending=[True, False], kind="stable").drop_duplicates("g")
            units[s["g"].to_numpy()] = s["u"].to_numpy()

    largest = np.full(n_raw, None, dtype=object)
    if name_column is not None and name_column in residents.columns:
        names = residents[name_column].to_numpy(dtype=object)[pick]
        named = np.flatnonzero(pd.notna(names) & (pd.Series(names, dtype=object).astype(str).str.strip() != ""))
        if named.size:
            top = named[_first_per_group(lab[named], -w[named])]  # most people first; ties: the first row
            largest[lab[top]] = names[top]

    n_cells = np.bincount(cell_lab, minlength=n_raw)
    polys = gpd.GeoSeries(_cell_polygons(cells, cell_lab, n_raw, cell_m), crs=crs).to_crs(4326)

    out = gpd.GeoDataFrame({
        "gap": np.arange(1, n_raw + 1, dtype=np.int64),
        "category": category,
        "minutes": float(minutes),
        "population": pop_g,
        "residents": n_res.astype(np.int64),
        "share_of_uncovered": pop_g / pop_g.sum(),
        "mean_minutes": mean,
        "median_minutes": median,
        "max_minutes": max_m,
        "population_unreachable": unreach_g,
        "unit": units,
        "largest_name": pd.Series(largest, dtype=object),
        "lon": lon[rep],
        "lat": lat[rep],
        "resident_index": residents.index.to_numpy()[pick][rep],
        "cells": n_cells.astype(np.int64),
        "area_km2": n_cells * cell_m * cell_m / 1e6,
    }, geometry=polys.to_numpy(), crs=4326)
    log.info("%s: %d gap areas, %.0f people beyond %g min (largest gap %.0f people)",
             category or "gaps", n_raw, pop_g.sum(), minutes, pop_g[0])
    return out


def check_category(analysis, category: str, *, allow_all: bool = True) -> str:
    """Return ``category`` if the analysis computed it, else raise a one-line error."""
    cats = list(analysis.config.categories)
    if allow_all and len(cats) > 1:
        cats.append(ALL)
    if category not in cats:
        raise InputDataError(f"unknown category {category!r}: this analysis has {', '.join(cats)}; "
                             "pick one of them (or rerun the analysis with --categories)")
    return category


def check_minutes(analysis, minutes: float | None) -> float:
    """The threshold to use: ``minutes`` or the headline one; it must lie within the search cut-off."""
    cfg = analysis.config
    m = cfg.headline_minutes if minutes is None else minutes
    if isinstance(m, bool) or not isinstance(m, (int, float, np.integer, np.floating)) or not m > 0:
        raise InputDataError(f"minutes must be a positive number (got {minutes!r}); e.g. --minutes 15")
    if m > cfg.cutoff_minutes:
        raise InputDataError(
            f"minutes={m:g} is beyond the analysis' search cut-off ({cfg.cutoff_minutes:g} min), so longer walks "
            f"were not measured; rerun the analysis with --max-minutes {m:g} or use a smaller threshold")
    return float(m)


def find_gaps(analysis, *, category: str | Iterable[str] | None = None, minutes: float | None = None,
              cell_m: float = 100.0):
    """Gap areas of an :class:`~lifecircle.pipeline.Analysis`, ranked by the people affected.

    Parameters
    ----------
    analysis : Analysis
        The result of :func:`lifecircle.analyze`.
    category : str or list of str, optional
        A category of the analysis (or ``all``: residents missing at least one category);
        default every analysed category, one after the other.
    minutes : float, optional
        Threshold; default the analysis' headline threshold (15).
    cell_m : float
        Grid cell size in metres (see :func:`gap_areas`).

    Returns
    -------
    GeoDataFrame
        See :func:`gap_areas`; EPSG:4326. Categories nobody lacks add no rows (logged as
        "already 100 % covered").

    Examples
    --------
    >>> from lifecircle import analyze
    >>> from lifecircle.datasets import toy_town_osm
    >>> a = analyze(toy_town_osm())
    >>> g = find_gaps(a, category="health")
    >>> g[["gap", "category", "residents"]].values.tolist(), round(float(g.population.sum()), 1)
    ([[1, 'health', 1]], 438.4)
    """
    if category is None:
        cats = list(analysis.config.categories)
    elif isinstance(category, str):
        cats = [category]
    else:
        cats = list(category)
    from ..read.population import name_column

    m = check_minutes(analysis, minutes)
    names = name_column(analysis.residents)
    tables = []
    for cat in cats:
        check_category(analysis, cat)
        col = minutes_column(cat)
        res = analysis.residents
        table = gap_areas(res, res[col].to_numpy(dtype=float), minutes=m, cell_m=cell_m,
                          crs=analysis.network.crs, category=cat, name_column=names)
        if table.empty:
            log.info("%s: already 100 %% covered within %g min: no gaps", cat, m)
        tables.append(table)
    if len(tables) == 1:
        return tables[0]
    import geopandas as gpd

    nonempty = [t for t in tables if len(t)]
    if not nonempty:
        return _empty_gaps()
    return gpd.GeoDataFrame(pd.concat(nonempty, ignore_index=True), crs=4326)


def write_gaps(gaps, path: str | os.PathLike[str]) -> Path:
    """Write gap areas to a GeoPackage (layer ``gaps``) atomically; ``inf`` minutes become NULL.

    ``population_unreachable`` keeps the number of people with no facility within the cut-off.
    """
    from ..read.files import atomic_path

    out = gaps.copy()
    for c in ("mean_minutes", "median_minutes", "max_minutes"):
        out[c] = out[c].replace([np.inf, -np.inf], np.nan)
    out["unit"] = out["unit"].astype(object).where(out["unit"].notna(), None)
    p = Path(path)
    with atomic_path(p) as tmp:
        out.to_file(tmp, layer="gaps", driver="GPKG", engine="pyogrio")
    log.info("wrote %s (%d gap areas)", p.name, len(gaps))
    return p
