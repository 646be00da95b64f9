"""What-if scenarios: coverage with facilities added or removed, compared with the analysis as it is.

:func:`scenario` reuses the analysis' walking network, residents and snapped points and recomputes
the walking times of the categories that changed only: the added facilities are snapped, the access
graph is rebuilt with the changed categories' facilities and one Dijkstra runs per changed category
(:func:`lifecircle.measure.walking_times.times_from_snaps`), then
:func:`lifecircle.measure.coverage.coverage_table`. The minutes are those
:func:`~lifecircle.measure.walking_times.walking_times` gives from scratch for the modified facility
list (same network, residents, units and config), to the last bit. An analysis loaded from its folder
(:func:`lifecircle.load_analysis`) carries the stored snaps, so a what-if costs one Dijkstra per
changed category, not a whole analysis.

Added facilities (a GeoDataFrame, or a CSV/XLSX/GeoJSON/GeoPackage file read like
``--facilities``) need a category. Each must lie within ``max_snap_m`` of a walkable street:
one that does not would silently change nothing, so it is an error that points at ``--add-crs``.

Removed facilities are given either by their index in ``analysis.facilities`` (the row number
of ``facilities.gpkg``), or ``"node/123"``/``"way/123"`` OSM ids, or by a file/GeoDataFrame of
points: each point removes the **nearest existing facility of the same category** (any analysed
category when the points have none) within ``match_m`` metres (default 50). A point with no
such facility is an error, as is an index or id that does not exist.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from ..config import ALL, minutes_column, within_column
from ..measure.coverage import STUDY_AREA, coverage_table
from ..errors import CRSError, InputDataError
from ..read.facilities import CATEGORY_ALIASES
from ..measure.snapping import snap_points

log = logging.getLogger("lifecircle")

__all__ = ["CHANGE_COLUMNS", "Scenario", "scenario"]

#: Columns of :attr:`Scenario.change`.
CHANGE_COLUMNS = [
    "unit", "category", "minutes", "population", "covered_before", "covered_after",
    "newly_covered_population", "no_longer_covered_population", "share_before", "share_after",
    "meets_target_before", "meets_target_after",
]
_FACILITY_COLUMNS = ["category", "subcategory", "name", "source"]
_FILE_SUFFIXES = (".csv", ".txt", ".tsv", ".xlsx", ".xls", ".geojson", ".json", ".gpkg", ".shp", ".parquet", ".fgb")


@dataclass(frozen=True, eq=False)
class Scenario:
    """The result of :func:`scenario` (write it with :func:`lifecircle.present.outputs.write_scenario`).

    Attributes
    ----------
    facilities : GeoDataFrame
        The modified facility list (kept, then added), with ``snapped`` and ``snap_dist_m``.
    added, removed : GeoDataFrame
        What was added, and the rows of ``analysis.facilities`` that were removed
        (``removed_by`` says which index/id/point asked for it).
    residents : GeoDataFrame
        The residents with their walking minutes and ``within_*`` flags in the scenario.
    coverage : DataFrame
        The scenario's coverage table (as :attr:`Analysis.coverage`).
    change : DataFrame
        Per unit, category and threshold (:data:`CHANGE_COLUMNS`): people newly covered, people
        no longer covered, share before → after.
    """

    facilities: Any
    added: Any
    removed: Any
    residents: Any
    coverage: pd.DataFrame
    change: pd.DataFrame
    headline_minutes: float = 15.0

    def report(self) -> str:
        """One line per category (study area, headline threshold): share before → after."""
        rows = self.change[(self.change.unit == STUDY_AREA) & (self.change.minutes == self.headline_minutes)]
        lines = [f"scenario: {len(self.added):,} facilities added, {len(self.removed):,} removed; "
                 f"within {self.headline_minutes:g} min:"]
        for r in rows.itertuples():
            target = "met" if r.meets_target_after else "NOT met"
            lines.append(f"  {r.category:<13}{r.share_before:>7.1%} -> {r.share_after:>6.1%}  "
                         f"(+{r.newly_covered_population:,.0f} / -{r.no_longer_covered_population:,.0f} people; "
                         f"target {target})")
        return "\n".join(lines)


def _normalise_categories(values: pd.Series, what: str, categories: Iterable[str]) -> np.ndarray:
    cats = list(categories)
    text = values.astype("string").str.strip().str.lower()
    mapped = text.map(lambda v: CATEGORY_ALIASES.get(v) if isinstance(v, str) else None)
    bad = mapped.isna()
    if bad.any():
        first = values[bad].iloc[0]
        raise InputDataError(f"{what}: {int(bad.sum())} rows have no known category (e.g. {first!r}); use one of "
                             f"{', '.join(cats)}")
    mapped = mapped.astype(object).to_numpy()
    other = sorted(set(mapped) - set(cats))
    if other:
        raise InputDataError(f"{what}: category {', '.join(other)} was not analysed (this analysis has "
                             f"{', '.join(cats)}); rerun the analysis with --categories including it")
    return mapped


def _read_points(data: Any, *, what: str, crs: Any):
    import geopandas as gpd

    from ..read.crs import to_wgs84
    from ..read.files import read_geo

    if isinstance(data, (str, os.PathLike)):
        gdf = read_geo(data, what=what, crs=crs)
        label = f"{what} {Path(data).name}"
    elif isinstance(data, gpd.GeoDataFrame):
        gdf = to_wgs84(data, crs)
        label = what
    else:
        raise InputDataError(f"{what}: give a file path or a GeoDataFrame (got {type(data).__name__})")
    geom = gdf.geometry
    empty = (geom.isna() | geom.is_empty).to_numpy()
    if empty.any():
        raise InputDataError(f"{label}: {int(empty.sum())} rows have no coordinates (first: row "
                             f"{gdf.index[empty][0]}); fix or delete them")
    if not (geom.geom_type == "Point").all():
        gdf = gdf.set_geometry(geom.representative_point())
    return gdf.reset_index(drop=True), label


def _added(add: Any, analysis, crs: Any):
    """The facilities to add, validated and snapped (every one must reach a street), and their snaps."""
    import geopandas as gpd

    cfg = analysis.config
    if add is None:
        return gpd.GeoDataFrame({c: pd.Series(dtype=object) for c in _FACILITY_COLUMNS},
                                geometry=gpd.GeoSeries([], crs=4326)), snap_points(analysis.network, [], [])
    gdf, label = _read_points(add, what="added facilities", crs=crs)
    col = next((c for c in ("category", "类别", "类型", "type") if c in gdf.columns), None)
    if col is None:
        raise InputDataError(f"{label}: no category column; add a 'category' column with "
                             f"{', '.join(cfg.categories)}")
    cats = _normalise_categories(gdf[col], label, cfg.categories)
    name = gdf["name"].to_numpy(dtype=object) if "name" in gdf.columns else None
    out = gpd.GeoDataFrame({
        "category": cats,
        "subcategory": gdf["subcategory"].to_numpy(dtype=object) if "subcategory" in gdf.columns else "scenario",
        "name": name,
        "source": "scenario",
    }, geometry=gdf.geometry.to_numpy(), crs=4326)
    snap = snap_points(analysis.network, out.geometry.x.to_numpy(), out.geometry.y.to_numpy(),
                       max_snap_m=cfg.max_snap_m, main_component=cfg.snap_main_component)
    far = ~snap.snapped
    if far.any():
        i = int(np.flatnonzero(far)[0])
        raise CRSError(f"{label}: {int(far.sum())} of {len(out)} facilities are more than {cfg.max_snap_m:g} m from "
                       f"any walkable street (row {i}: {snap.dist_m[i]:,.0f} m), so they would change nothing; "
                       "check --add-crs (points from a Chinese web map are gcj02 or bd09) and that they lie in "
                       "the study area")
    out["snapped"] = True
    out["snap_dist_m"] = snap.dist_m.round(2)
    return out, snap


def _by_ids(facilities, ids: Iterable[Any]) -> tuple[np.ndarray, list[str]]:
    labels, asked = [], []
    index = facilities.index
    osm = None
    if "osm_type" in facilities.columns and "osm_id" in facilities.columns:
        osm = {f"{t}/{int(i)}": lab for lab, t, i in zip(index, facilities["osm_type"], facilities["osm_id"])
               if isinstance(t, str) and pd.notna(i)}
    for item in ids:
        key = item.strip() if isinstance(item, str) else item
        if isinstance(key, str) and "/" in key:
            if osm is None or key not in osm:
                raise InputDataError(f"cannot remove {key!r}: no facility of the analysis has that OSM id; "
                                     "see facilities.gpkg (osm_type, osm_id) for the ids")
            labels.append(osm[key])
        else:
            try:
                lab = int(key)
            except (TypeError, ValueError):
                raise InputDataError(f"cannot remove {item!r}: give facility indexes (rows of facilities.gpkg), "
                                     "OSM ids such as 'way/123', or a file of points") from None
            if lab not in index:
                raise InputDataError(f"cannot remove facility {lab}: no facility has that index (they run "
                                     f"{index.min()}..{index.max()}; see facilities.gpkg)")
            labels.append(lab)
        asked.append(str(item))
    return np.asarray(labels, dtype=object), asked


def _by_points(facilities, remove: Any, *, crs: Any, match_m: float, analysis) -> tuple[np.ndarray, list[str]]:
    import shapely

    pts, label = _read_points(remove, what="facilities to remove", crs=crs)
    cfg = analysis.config
    col = next((c for c in ("category", "类别", "类型", "type") if c in pts.columns), None)
    pcat = _normalise_categories(pts[col], label, cfg.categories) if col else np.full(len(pts), None, dtype=object)
    metric = analysis.network.crs
    fxy = facilities.geometry.to_crs(metric).to_numpy()
    pxy = pts.geometry.to_crs(metric).to_numpy()
    fcat = facilities["category"].to_numpy(dtype=object)
    match = np.full(len(pts), -1, dtype=np.int64)
    dist = np.full(len(pts), np.inf)
    for cat in set(pcat.tolist()):
        sel_p = np.flatnonzero(pcat == cat) if cat is not None else np.flatnonzero(pd.isna(pcat))
        sel_f = np.arange(len(facilities)) if cat is None else np.flatnonzero(fcat == cat)
        if sel_f.size == 0:
            continue
        tree = shapely.STRtree(fxy[sel_f])
        (qi, ti), d = tree.query_nearest(pxy[sel_p], return_distance=True, all_matches=False)
        match[sel_p[qi]] = sel_f[ti]
        dist[sel_p[qi]] = d
    bad = ~(dist <= match_m)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        what = f"{pcat[i]} facility" if pcat[i] is not None else "facility"
        nearest = f"nearest {dist[i]:,.0f} m" if np.isfinite(dist[i]) else f"there is no {what}"
        raise InputDataError(f"{label}: {int(bad.sum())} of {len(pts)} points match no existing {what.split()[-1]} "
                             f"within {match_m:g} m (row {i}: {nearest}); check --remove-crs (e.g. gcj02) or "
                             "raise --match-m")
    labels = facilities.index.to_numpy()[match]
    asked = [f"point {i} ({dist[i]:.1f} m)" for i in range(len(pts))]
    return labels, asked


def _removed(remove: Any, analysis, *, crs: Any, match_m: float):
    fac = analysis.facilities
    if remove is None:
        return fac.iloc[0:0].assign(removed_by=pd.Series(dtype=object))
    import geopandas as gpd

    is_file = isinstance(remove, os.PathLike) or (
        isinstance(remove, str) and (Path(remove).suffix.lower() in _FILE_SUFFIXES or Path(remove).is_file()))
    if is_file or isinstance(remove, gpd.GeoDataFrame):
        labels, asked = _by_points(fac, remove, crs=crs, match_m=match_m, analysis=analysis)
    else:
        items = [remove] if isinstance(remove, (int, np.integer, str)) else list(remove)
        labels, asked = _by_ids(fac, items)
    seen: dict[Any, str] = {}
    for lab, why in zip(labels.tolist(), asked):
        if lab in seen:
            log.warning("facility %s is asked to be removed twice (%s and %s); removed once", lab, seen[lab], why)
            continue
        seen[lab] = why
    out = fac.loc[list(seen)].copy()
    out["removed_by"] = list(seen.values())
    return out


def _stored_snaps(analysis, kept, new):
    """``(resident_snap, facility_snap)`` of the scenario's facilities (kept, then added) from the analysis'
    own snaps, or None when the analysis has none that fit (then every point is snapped again)."""
    from ..measure.snapping import Snap

    times = getattr(analysis, "times", None)
    res, fac = getattr(times, "resident_snap", None), getattr(times, "facility_snap", None)
    if res is None or fac is None or len(res) != len(analysis.residents) or len(fac) != len(analysis.facilities):
        return None
    pos = analysis.facilities.index.get_indexer(kept.index)
    keys = ("edge", "t", "dist_m", "x", "y")
    return res, Snap(*(np.concatenate([getattr(fac, k)[pos], getattr(new, k)]) for k in keys))


def _set_within(residents, categories, minutes) -> None:
    """``minutes_to_all`` and the ``within_*`` flags, exactly as :func:`lifecircle.analyze` sets them."""
    cats_all = list(categories) + ([ALL] if len(categories) > 1 else [])
    if len(categories) > 1:
        residents[minutes_column(ALL)] = residents[[minutes_column(c) for c in categories]].max(axis=1)
    for cat in cats_all:
        for m in minutes:
            residents[within_column(cat, m)] = residents[minutes_column(cat)] <= m


def _change_table(before: pd.DataFrame, after: pd.DataFrame, res_before, res_after, cats_all, minutes,
                  unit_column: str | None) -> pd.DataFrame:
    pop = res_after["population"].to_numpy(dtype=float)
    groups: list[tuple[str, np.ndarray]] = [(STUDY_AREA, np.ones(len(pop), dtype=bool))]
    if unit_column is not None:
        units = res_after[unit_column]
        for name in sorted(units.dropna().unique(), key=str):
            groups.append((str(name), (units == name).to_numpy()))
    key = ["unit", "category", "minutes"]
    merged = before.merge(after, on=key, suffixes=("_before", "_after"))
    rows = []
    for unit, mask in groups:
        for cat in cats_all:
            b = res_before[minutes_column(cat)].to_numpy(dtype=float)[mask]
            a = res_after[minutes_column(cat)].to_numpy(dtype=float)[mask]
            p = pop[mask]
            for m in minutes:
                rows.append((unit, cat, float(m), float(p[(a <= m) & ~(b <= m)].sum()),
                             float(p[(b <= m) & ~(a <= m)].sum())))
    flows = pd.DataFrame(rows, columns=key + ["newly_covered_population", "no_longer_covered_population"])
    out = merged.merge(flows, on=key)
    out = out.rename(columns={"population_before": "population",
                              "covered_population_before": "covered_before",
                              "covered_population_after": "covered_after"})
    return out[CHANGE_COLUMNS].reset_index(drop=True)


def scenario(
    analysis,
    *,
    add: Any = None,
    remove: Any = None,
    add_crs: Any = None,
    remove_crs: Any = None,
    match_m: float = 50.0,
) -> Scenario:
    """Coverage with facilities added and/or removed, and the change per category and unit.

    Parameters
    ----------
    analysis : Analysis
        The result of :func:`lifecircle.analyze`.
    add : path or GeoDataFrame, optional
        Facilities to add, with a ``category`` column (``health``, ``sports``, ``卫生``…), e.g.
        the ``suggested_sites.csv`` of :func:`lifecircle.present.outputs.write_sites`.
    remove : path, GeoDataFrame or list, optional
        Facilities to remove: indexes of ``analysis.facilities``, OSM ids (``"way/123"``), or
        points matched to the nearest facility of the same category within ``match_m``.
    add_crs, remove_crs : str, int or pyproj.CRS, optional
        CRS of the files' coordinates (``wgs84``, ``gcj02``, ``bd09``, EPSG).
    match_m : float
        Largest distance between a removal point and the facility it removes.

    Returns
    -------
    Scenario

    Examples
    --------
    Move the toy town's only health centre (west) to the middle of town, beside the nursing home:

    >>> import geopandas as gpd
    >>> from lifecircle import analyze
    >>> from lifecircle.datasets import toy_town_osm
    >>> a = analyze(toy_town_osm())
    >>> new = gpd.GeoDataFrame({"category": ["health"]}, geometry=gpd.points_from_xy([121.4073], [31.2015]),
    ...                        crs=4326)
    >>> s = scenario(a, add=new, remove=[0])
    >>> row = s.change[(s.change.category == "health") & (s.change.minutes == 15)].iloc[0]
    >>> round(float(row.share_before), 3), round(float(row.share_after), 3)
    (0.442, 1.0)
    >>> print(s.report().splitlines()[0])
    scenario: 1 facilities added, 1 removed; within 15 min:
    """
    from ..measure.snapping import Snap
    from ..measure.walking_times import times_from_snaps, walking_times

    if not (isinstance(match_m, (int, float)) and match_m >= 0):
        raise InputDataError(f"match_m must be a distance in metres >= 0 (got {match_m!r}); e.g. --match-m 50")
    if add is None and remove is None:
        raise InputDataError("a scenario needs facilities to add and/or remove: give --add FILE and/or --remove FILE")
    cfg = analysis.config
    added, added_snap = _added(add, analysis, add_crs)
    removed = _removed(remove, analysis, crs=remove_crs, match_m=match_m)
    kept = analysis.facilities.drop(index=removed.index)
    import geopandas as gpd

    facilities = gpd.GeoDataFrame(pd.concat([kept, added], ignore_index=True), crs=4326)
    changed = [c for c in cfg.categories if c in set(added["category"]) | set(removed["category"])]
    has = facilities[facilities["snapped"].astype(bool)]["category"]
    computable = [c for c in changed if (has == c).any()]
    residents = analysis.residents.copy()
    for cat in changed:
        if cat not in computable:
            log.warning("scenario: no %s facility is left: nobody is covered for %s", cat, cat)
            residents[minutes_column(cat)] = np.inf
    if computable:
        sub_cfg = dataclasses.replace(cfg, categories=tuple(computable))
        in_sub = facilities["category"].isin(computable).to_numpy()
        fac_sub = facilities[in_sub].reset_index(drop=True)
        stored = _stored_snaps(analysis, kept, added_snap)
        if stored is None:
            wt = walking_times(analysis.network, analysis.residents[["population", "geometry"]], fac_sub,
                               config=sub_cfg)
        else:  # the analysis' own snaps: no resident is snapped again (same minutes, see times_from_snaps)
            res_snap, fac_snap = stored
            fac_snap = Snap(*(getattr(fac_snap, k)[in_sub] for k in ("edge", "t", "dist_m", "x", "y")))
            wt = times_from_snaps(analysis.network, res_snap, fac_snap, fac_sub["category"].to_numpy(),
                                  config=sub_cfg, index=analysis.residents.index)
        for cat in computable:
            residents[minutes_column(cat)] = wt.minutes[minutes_column(cat)].to_numpy()
    _set_within(residents, cfg.categories, cfg.minutes)
    unit_column = "unit" if "unit" in residents.columns else None
    cov = coverage_table(residents, categories=cfg.categories, minutes=cfg.minutes, target=cfg.target,
                         unit_column=unit_column)
    cats_all = list(cfg.categories) + ([ALL] if len(cfg.categories) > 1 else [])
    change = _change_table(analysis.coverage, cov, analysis.residents, residents, cats_all, cfg.minutes, unit_column)
    result = Scenario(facilities, added, removed, residents, cov, change, cfg.headline_minutes)
    for line in result.report().splitlines():
        log.info(line)
    return result
