"""Coverage by facility type at each type's own tier (GB 50180-2018: 15-, 10- and 5-minute life circles).

A tiered standard (:mod:`lifecircle.read.standards`, e.g. ``gb50180-2018``) gives every facility type
its walking time: 社区卫生服务站 at 5 minutes, 卫生服务中心 at 15… The tiers are not inclusive, so a
resident's life circle is **complete** only when every type is within its own tier's time.

The walking minutes per type come from the access graph the category run already built: one more
multi-source Dijkstra per type (``AccessGraph.distances_from``), nothing is snapped twice.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..config import AnalysisConfig

__all__ = ["type_column", "type_minutes", "tier_coverage", "COMPLETE"]

#: The row of :func:`tier_coverage` for "every type within its tier" (the complete life circle).
COMPLETE = "complete_life_circle"


def type_column(key: str) -> str:
    """Column of the walking minutes to the nearest facility of one type.

    >>> type_column("health_station")
    'minutes_to_type_health_station'
    """
    return f"minutes_to_type_{key}"


def type_minutes(times, facility_types, *, config: AnalysisConfig | None = None, types=None) -> pd.DataFrame:
    """Minutes from every resident to the nearest facility of each type.

    Parameters
    ----------
    times : WalkingTimes
        From :func:`lifecircle.measure.walking_times.walking_times` (its access graph is reused).
    facility_types : array-like of str
        The type of each facility, in the order the facilities were given to ``walking_times``
        (``None`` for a facility that is not counted).
    config : AnalysisConfig
        Speed and the search cut-off (the default's when omitted).
    types : iterable of str, optional
        Types to compute (default: every type present).

    Returns
    -------
    DataFrame
        One ``minutes_to_type_<key>`` column per type (``inf`` = not within the cut-off), one row
        per resident.
    """
    cfg = config or AnalysisConfig()
    g = times.graph
    nr = times.n_residents
    kinds = np.asarray(facility_types, dtype=object)
    fac_nodes = g.point_node[nr:nr + len(kinds)]
    res_nodes = g.point_node[:nr]
    ok = res_nodes >= 0
    mpm = cfg.walk_speed_kmh * 1000.0 / 60.0
    keys = list(dict.fromkeys(k for k in kinds if k is not None)) if types is None else list(types)
    out = {}
    for key in keys:
        d = g.distances_from(fac_nodes[(kinds == key) & (fac_nodes >= 0)], limit_m=cfg.max_dist_m)
        m = np.full(nr, np.inf)
        m[ok] = d[res_nodes[ok]] / mpm
        out[type_column(key)] = m
    return pd.DataFrame(out, index=times.minutes.index)


def tier_coverage(population, minutes: pd.DataFrame, tiers: dict[str, tuple[str, float]], *, target: float,
                  units=None) -> pd.DataFrame:
    """Population-weighted share of residents within each type's tier time, and the complete life circle.

    Parameters
    ----------
    population : array-like
        Residents' weights.
    minutes : DataFrame
        From :func:`type_minutes`.
    tiers : dict
        ``{type key: (category, tier minutes)}``.
    target : float
        The coverage target share.
    units : array-like, optional
        Each resident's unit: the rows are repeated per unit too.

    Returns
    -------
    DataFrame
        ``unit, type, category, tier_minutes, population, covered_population, share, meets_target``;
        ``type = complete_life_circle`` is every type within its tier.

    Examples
    --------
    Three residents of 100 people; a 5-minute station reached in 4 and 8 minutes, a 15-minute centre
    in 12, 12 and 20: the station covers 1/3, the centre 2/3, both only the first resident.

    >>> m = pd.DataFrame({"minutes_to_type_station": [4.0, 8.0, 1.0], "minutes_to_type_centre": [12.0, 12.0, 20.0]})
    >>> t = tier_coverage([100, 100, 100], m, {"station": ("health", 5.0), "centre": ("health", 15.0)}, target=0.85)
    >>> t.set_index("type").share.round(4).to_dict()
    {'station': 0.6667, 'centre': 0.6667, 'complete_life_circle': 0.3333}
    """
    w = np.asarray(population, dtype=float)
    within = {key: minutes[type_column(key)].to_numpy() <= limit for key, (_, limit) in tiers.items()}
    complete = np.logical_and.reduce(list(within.values())) if within else np.zeros(len(w), bool)
    groups = [("study_area", np.ones(len(w), dtype=bool))]
    if units is not None:
        u = pd.Series(np.asarray(units, dtype=object))
        groups += [(str(name), (u == name).to_numpy()) for name in pd.unique(u.dropna())]
    rows = []
    for unit, mask in groups:
        pop = float(w[mask].sum())
        for key, (cat, limit) in list(tiers.items()) + [(COMPLETE, ("all", np.nan))]:
            hit = complete if key == COMPLETE else within[key]
            covered = float(w[mask & hit].sum())
            share = covered / pop if pop > 0 else 0.0
            rows.append((unit, key, cat, limit, pop, covered, share, share >= target))
    return pd.DataFrame(rows, columns=["unit", "type", "category", "tier_minutes", "population",
                                       "covered_population", "share", "meets_target"])


def catchment_population(times, facility_index, *, limit_m: float, population, chunk: int = 32) -> np.ndarray:
    """Residents within ``limit_m`` walking metres of each facility (catchments overlap: a resident near
    two facilities counts for both), for the 服务人口 check of a standard.

    One bounded Dijkstra per facility, ``chunk`` at a time (memory ``chunk × nodes`` floats).

    Parameters
    ----------
    times : WalkingTimes
        Its access graph is reused.
    facility_index : array-like of int
        Positions of the facilities (in the order given to ``walking_times``).
    limit_m : float or array-like
        Catchment size in metres, one for all or one per facility.
    population : array-like
        Residents' weights.
    """
    from scipy.sparse.csgraph import dijkstra

    g = times.graph
    nr = times.n_residents
    idx = np.asarray(facility_index, dtype=np.int64)
    limits = np.broadcast_to(np.asarray(limit_m, dtype=float), idx.shape)
    res_nodes = g.point_node[:nr]
    ok = res_nodes >= 0
    w = np.asarray(population, dtype=float)[ok]
    rn = res_nodes[ok]
    nodes = g.point_node[nr + idx]
    out = np.zeros(len(idx))
    for start in range(0, len(idx), chunk):
        sl = slice(start, start + chunk)
        src = nodes[sl]
        good = src >= 0
        if not good.any():
            continue
        lim = float(limits[sl][good].max())
        d = np.atleast_2d(dijkstra(g.matrix, directed=True, indices=src[good], limit=lim))
        within = d[:, rn] <= limits[sl][good][:, None]
        out[np.flatnonzero(good) + start] = within @ w
    return out
