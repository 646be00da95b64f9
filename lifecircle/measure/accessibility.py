"""Supply–demand accessibility: two-step floating catchment ratios (2SFCA, E2SFCA, G2SFCA) on the walking network.

Coverage asks *can* a resident walk to a facility; the plans behind the 85 % target also allocate
facilities "依据服务人口和服务半径" (by service population and service radius), which is a question of
supply against demand. The two-step floating catchment area (2SFCA) family answers it, on the same
network metres the coverage uses.

With :math:`S_j` the capacity of facility *j* (beds 床位, floor area, doctors; 1 when none is given),
:math:`P_k` the residents at point *k*, :math:`d_{kj}` the walking metres and :math:`d_0` the
threshold (the headline minutes at the walking speed):

* step 1, each facility's supply-to-demand ratio: :math:`R_j = S_j / \\sum_{k} P_k\\, w(d_{kj})`;
* step 2, each resident's accessibility: :math:`A_i = \\sum_{j} R_j\\, w(d_{ij})`
  (capacity per resident; ×1000 = capacity per 1,000 residents within reach).

The weight :math:`w` names the method (:data:`METHODS`):

* ``2sfca`` (Luo & Wang 2003): :math:`w = 1` within :math:`d_0`, else 0;
* ``e2sfca`` (Luo & Qi 2009): stepped sub-zones, :math:`w` = 1.00 / 0.68 / 0.22 within the first,
  second and last third of :math:`d_0` (0–5 / 5–10 / 10–15 min at 15 minutes; Luo & Qi's zones
  were 0–10 / 10–20 / 20–30 min by car), :data:`E2SFCA_WEIGHTS`;
* ``g2sfca`` (Dai 2010): the Gaussian decay
  :math:`w = (e^{-\\frac12 (d/d_0)^2} - e^{-\\frac12}) / (1 - e^{-\\frac12})` within :math:`d_0`, else 0.

Wang (2012) reviews the family and its generalised form. Total supply is conserved:
:math:`\\sum_i P_i A_i = \\sum_j S_j` over the facilities that anyone reaches (a property the tests check).
A facility whose catchment holds nobody has :math:`R_j = 0` (its supply serves no one).

Catchments come from one bounded Dijkstra per facility on the existing access graph
(:class:`~lifecircle.measure.walking_times.AccessGraph`), a chunk of facilities at a time, kept as a
sparse facility × resident matrix of metres for the pairs within the cut-off only
(:func:`catchment_matrix`). A population group walking at another speed needs no new search: the
metres are the same, only the threshold in metres changes.

References
----------
* Luo, W. & Wang, F. (2003). Measures of spatial accessibility to health care in a GIS environment:
  synthesis and a case study in the Chicago region. *Environment and Planning B* 30(6), 865–884.
* Luo, W. & Qi, Y. (2009). An enhanced two-step floating catchment area (E2SFCA) method for
  measuring spatial accessibility to primary care physicians. *Health & Place* 15(4), 1100–1107.
* Dai, D. (2010). Black residential segregation, disparities in spatial access to health care
  facilities, and late-stage breast cancer diagnosis in metropolitan Detroit. *Health & Place*
  16(5), 1038–1052.
* Wang, F. (2012). Measurement, optimization, and impact of health care accessibility: a
  methodological review. *Annals of the Association of American Geographers* 102(5), 1104–1112.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..config import AnalysisConfig, minutes_column
from ..errors import InputDataError

log = logging.getLogger("lifecircle")

__all__ = ["METHODS", "E2SFCA_WEIGHTS", "POPULATION", "access_column", "group_minutes_column", "catchment_matrix",
           "decay_weights", "facility_ratios", "accessibility_from_ratios", "two_step_fca", "per_1000", "SupplyDemand",
           "supply_demand", "accessibility_table"]

#: The weightings computed: plain, enhanced (stepped) and Gaussian 2SFCA.
METHODS = ("2sfca", "e2sfca", "g2sfca")

#: E2SFCA sub-zones as (upper bound as a fraction of the threshold, weight), Luo & Qi (2009).
E2SFCA_WEIGHTS = ((1 / 3, 1.0), (2 / 3, 0.68), (1.0, 0.22))

#: Dense Dijkstra rows held at once by :func:`catchment_matrix` (chunk × network nodes floats).
_CHUNK_FLOATS = 8_000_000


def access_column(method: str, category: str, group: str | None = None) -> str:
    """Column of a resident's accessibility (capacity per resident) for one method and category.

    >>> access_column("2sfca", "elderly_care"), access_column("2sfca", "elderly_care", "age65")
    ('access_2sfca_elderly_care', 'access_2sfca_elderly_care_age65')
    """
    return f"access_{method}_{category}" + (f"_{group}" if group else "")


def catchment_matrix(times, facility_index, *, limit_m: float, network: Any = None,
                     chunk: int | None = None) -> sp.csr_matrix:
    """Walking metres from each facility to each resident within ``limit_m``, as a sparse matrix.

    One bounded Dijkstra per facility on the access graph the coverage run built (both access
    legs included, as in the walking minutes). With ``network`` (the run's walking network) each
    search covers only the streets within ``limit_m`` of its facility
    (:func:`lifecircle.measure.bounded.local_dijkstra`: its cost grows with the facilities, not
    with the city); without it, full rows over the graph, ``chunk`` facilities at a time.

    Parameters
    ----------
    times : WalkingTimes
        From :func:`lifecircle.measure.walking_times.walking_times` (its graph is reused).
    facility_index : array-like of int
        Positions of the facilities (in the order given to ``walking_times``): the rows.
    limit_m : float
        The cut-off: only pairs within it are stored.
    network : WalkNetwork, optional
        The network ``times`` was measured on (its node positions bound each search).
    chunk : int, optional
        Facilities per Dijkstra call (default: as many as fit in about 64 MB of rows).

    Returns
    -------
    scipy.sparse.csr_matrix
        Shape (facilities, residents); a stored entry is a pair within ``limit_m`` — a stored
        zero is a distance of 0 m (never dropped), an absent entry is out of reach. Residents or
        facilities that did not snap have no entries.
    """
    from .bounded import sparse_within

    g = times.graph
    if g is None:
        raise InputDataError("supply–demand ratios need the access graph, which a tiled run does not keep; run "
                             "without tiles")
    nr = times.n_residents
    idx = np.asarray(facility_index, dtype=np.int64)
    res_nodes = g.point_node[:nr]
    node_to_res = np.full(g.n_nodes, -1, dtype=np.int64)
    node_to_res[res_nodes[res_nodes >= 0]] = np.flatnonzero(res_nodes >= 0)
    fac_nodes = g.point_node[nr + idx] if idx.size else np.zeros(0, dtype=np.int64)
    todo = np.flatnonzero(fac_nodes >= 0)
    if network is not None:
        # each facility's search on the streets within its reach only (cost ∝ facilities, not city size)
        x, y = g.positions(network)
        pos, node, v = sparse_within(g.matrix, x, y, fac_nodes[todo], limit_m=limit_m, targets=node_to_res >= 0)
        r, c = todo[pos], node_to_res[node]
    else:
        r, c, v = _dense_pairs(g, fac_nodes, todo, node_to_res, limit_m=limit_m, chunk=chunk)
    # built directly in CSR from sorted COO arrays: explicit zeros (0 m) stay stored entries
    return sp.csr_matrix((v, (r, c)), shape=(idx.size, nr))


def _dense_pairs(g, fac_nodes, todo, node_to_res, *, limit_m: float, chunk: int | None):
    """The pairs of :func:`catchment_matrix` from full Dijkstra rows, ``chunk`` facilities at a time (the
    reference the local search is tested against)."""
    from scipy.sparse.csgraph import dijkstra

    step = chunk or max(1, min(256, _CHUNK_FLOATS // max(g.n_nodes, 1)))
    rows, cols, vals = [], [], []
    for start in range(0, todo.size, step):
        pos = todo[start:start + step]
        d = np.atleast_2d(dijkstra(g.matrix, directed=True, indices=fac_nodes[pos], limit=limit_m))
        r, n = np.nonzero(d <= limit_m)
        res = node_to_res[n]
        keep = res >= 0
        rows.append(pos[r[keep]])
        cols.append(res[keep])
        vals.append(d[r[keep], n[keep]])
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0)
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)


def decay_weights(dist_m, *, limit_m: float, method: str = "2sfca"):
    """The 2SFCA weights of walking distances (see the module docstring for each method).

    ``dist_m`` may be an array or a sparse matrix of stored distances; the result has the same
    shape and sparsity (0 beyond ``limit_m``).

    Examples
    --------
    >>> d = np.array([0.0, 300, 400, 700, 900, 1000, 1200])
    >>> decay_weights(d, limit_m=1000, method="2sfca").tolist()
    [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]
    >>> decay_weights(d, limit_m=1000, method="e2sfca").tolist()
    [1.0, 1.0, 0.68, 0.22, 0.22, 0.22, 0.0]
    >>> decay_weights(d, limit_m=1000, method="g2sfca").round(4).tolist()  # 300 m: (e^-0.045 - e^-0.5) / (1 - e^-0.5)
    [1.0, 0.8882, 0.8046, 0.4477, 0.1536, 0.0, 0.0]
    """
    if method not in METHODS:
        raise InputDataError(f"unknown accessibility method {method!r}: choose {', '.join(METHODS)}")
    if not (limit_m > 0):
        raise InputDataError(f"the catchment limit must be a positive number of metres, got {limit_m!r}")
    if sp.issparse(dist_m):
        out = dist_m.tocsr(copy=True).astype(float)
        out.data = decay_weights(out.data, limit_m=limit_m, method=method)
        return out
    d = np.asarray(dist_m, dtype=float)
    inside = d <= limit_m
    if method == "2sfca":
        w = np.ones_like(d)
    elif method == "e2sfca":
        w = np.zeros_like(d)
        for upper, weight in reversed(E2SFCA_WEIGHTS):
            w = np.where(d <= upper * limit_m, weight, w)
    else:
        e = np.exp(-0.5)
        w = (np.exp(-0.5 * (d / limit_m) ** 2) - e) / (1 - e)
    return np.where(inside, w, 0.0)


def facility_ratios(dist_m: sp.spmatrix, supply, demand, *, limit_m: float, method: str = "2sfca") -> np.ndarray:
    """Step 1: each facility's capacity over the (weighted) demand within its catchment, :math:`R_j`.

    Parameters
    ----------
    dist_m : sparse matrix
        Facilities × residents metres (:func:`catchment_matrix`).
    supply : array-like
        Capacity of each facility (row).
    demand : array-like
        People at each resident point (column).
    limit_m : float
        The demand's catchment (threshold in metres at the demand's walking speed).

    Returns
    -------
    ndarray
        One ratio per facility (0 where the catchment holds nobody).
    """
    w = decay_weights(dist_m, limit_m=limit_m, method=method)
    weighted = np.asarray(w @ np.asarray(demand, dtype=float)).ravel()
    s = np.asarray(supply, dtype=float)
    out = np.zeros_like(weighted)
    np.divide(s, weighted, out=out, where=weighted > 0)
    return out


def accessibility_from_ratios(dist_m: sp.spmatrix, ratios, *, limit_m: float, method: str = "2sfca") -> np.ndarray:
    """Step 2: each resident's sum of the ratios of the facilities within reach, :math:`A_i`."""
    w = decay_weights(dist_m, limit_m=limit_m, method=method)
    return np.asarray(w.T @ np.asarray(ratios, dtype=float)).ravel()


def two_step_fca(dist_m: sp.spmatrix, supply, demand, *, limit_m: float, method: str = "2sfca",
                 access_limit_m: float | None = None) -> np.ndarray:
    """Accessibility of every resident: capacity per resident within reach (2SFCA family).

    ``limit_m`` is the demand's catchment (step 1); ``access_limit_m`` the residents' own reach
    (step 2, default the same), e.g. the elderly at 3 km/h reaching facilities whose crowding was
    measured at everyone's 4 km/h.

    Examples
    --------
    Two facilities (capacities 2 and 1), three resident points of 10, 20 and 30 people; facility 0
    reaches points 0 and 1 (demand 30), facility 1 reaches points 1 and 2 (demand 50):

    >>> d = sp.csr_matrix(([100.0, 500, 800, 300], ([0, 0, 1, 1], [0, 1, 1, 2])), shape=(2, 3))
    >>> two_step_fca(d, [2, 1], [10, 20, 30], limit_m=1000).round(4).tolist()   # 2/30, 2/30 + 1/50, 1/50
    [0.0667, 0.0867, 0.02]
    """
    ratios = facility_ratios(dist_m, supply, demand, limit_m=limit_m, method=method)
    return accessibility_from_ratios(dist_m, ratios, limit_m=limit_m if access_limit_m is None else access_limit_m,
                                     method=method)


def per_1000(amount, people) -> np.ndarray:
    """``amount`` per 1,000 ``people`` (NaN where there is nobody).

    >>> per_1000([3.0, 1.0], [1500, 0]).tolist()
    [2.0, nan]
    """
    a = np.asarray(amount, dtype=float)
    p = np.asarray(people, dtype=float)
    out = np.full(np.broadcast(a, p).shape, np.nan)
    np.divide(1000.0 * a, p, out=out, where=p > 0)
    return out


#: Name of the whole-population group (weights = ``population``).
POPULATION = "population"


def group_minutes_column(category: str, group: str) -> str:
    """Walking minutes of a group that walks at its own speed.

    >>> group_minutes_column("health", "age65")
    'minutes_to_health_age65'
    """
    return f"minutes_to_{category}_{group}"


@dataclass(frozen=True, eq=False)
class SupplyDemand:
    """What :func:`supply_demand` computed.

    Attributes
    ----------
    residents : DataFrame
        Per resident: ``access_<method>_<category>`` (capacity per resident of the whole
        population), ``access_<method>_<category>_<group>`` per group, and
        ``minutes_to_<category>_<group>`` for a group walking at its own speed.
    facilities : DataFrame
        Per facility of an analysed category: ``capacity``, ``demand_group``, ``demand`` (people
        within its catchment) and ``ratio_<method>`` (:math:`R_j`).
    groups : dict
        ``{group: walking speed km/h}``, the whole population first.
    demand_groups : dict
        ``{category: group}`` whose people are each category's demand in step 1.
    """

    residents: pd.DataFrame
    facilities: pd.DataFrame
    groups: dict
    demand_groups: dict


def supply_demand(times, facilities, residents, *, config: AnalysisConfig | None = None,
                  groups: Sequence[str] = (), group_speed_kmh: Mapping[str, float] | None = None,
                  demand_groups: Mapping[str, str] | None = None, network: Any = None) -> SupplyDemand:
    """2SFCA, E2SFCA and G2SFCA accessibility of every resident, per category and population group.

    Parameters
    ----------
    times : WalkingTimes
        The coverage run's walking times (its access graph is reused; no point is snapped again).
    facilities : DataFrame
        The facilities given to ``walking_times``, in that order, with ``category``, ``snapped``
        and ``capacity`` (optional: 1 each without it; NaN = 1).
    residents : DataFrame
        The residents, with ``population``, ``minutes_to_<category>`` and one count column per group.
    config : AnalysisConfig
        The threshold (``headline_minutes``), walking speed and categories.
    groups : sequence of str
        Group columns of ``residents`` (``age65``…), reported besides the whole population.
    group_speed_kmh : mapping, optional
        A group's own walking speed (``{"age65": 3.0}``); the threshold in metres follows it.
    demand_groups : mapping, optional
        ``{category: group}``: whose people load a facility in step 1 (e.g. ``elderly_care`` →
        ``age65``: beds per elderly resident). Default: the whole population.
    network : WalkNetwork, optional
        The network ``times`` was measured on: the catchments are then searched locally
        (:func:`catchment_matrix`), which a city-scale run needs.

    Examples
    --------
    >>> import lifecircle as lc
    >>> from lifecircle.datasets import toy_town_osm
    >>> a = lc.analyze(toy_town_osm(), config=lc.AnalysisConfig(categories=("health",)))
    >>> sd = supply_demand(a.times, a.facilities, a.residents, config=a.config)
    >>> people = a.residents["population"].to_numpy()
    >>> reached = sd.facilities["demand"].to_numpy() > 0
    >>> bool(np.isclose((people * sd.residents["access_2sfca_health"]).sum(), reached.sum()))  # supply conserved
    True
    """
    cfg = config or AnalysisConfig()
    speeds = {POPULATION: cfg.walk_speed_kmh}
    for g in groups:
        if g == POPULATION:
            raise InputDataError(f"{POPULATION!r} is the whole population, not a group column; fix --group-columns")
        if g not in residents:
            raise InputDataError(f"the residents have no group column {g!r}; fix --group-columns")
        speeds[g] = float((group_speed_kmh or {}).get(g, cfg.walk_speed_kmh))
    unknown = sorted(set(group_speed_kmh or {}) - set(speeds))
    if unknown:
        raise InputDataError(f"--group-speed-kmh names {', '.join(unknown)}, which is not a group column; "
                             f"add it to --group-columns ({', '.join(speeds)} are known)")
    demand = {c: POPULATION for c in cfg.categories}
    for cat, g in (demand_groups or {}).items():
        if cat not in cfg.categories:
            raise InputDataError(f"--demand-group {cat}={g}: {cat!r} is not an analysed category "
                                 f"({', '.join(cfg.categories)})")
        if g not in speeds:
            raise InputDataError(f"--demand-group {cat}={g}: {g!r} is not a group column; add it to --group-columns")
        demand[cat] = g
    limit = {g: cfg.headline_minutes * s * 1000.0 / 60.0 for g, s in speeds.items()}
    top = max(limit.values())
    if top > cfg.max_dist_m + 1e-9:
        raise InputDataError(f"a group walks {top:,.0f} m in {cfg.headline_minutes:g} min, beyond the search cut-off "
                             f"({cfg.max_dist_m:,.0f} m); raise --max-minutes")
    weights = {g: residents["population" if g == POPULATION else g].to_numpy(dtype=float) for g in speeds}
    cats = facilities["category"].to_numpy()
    snapped = facilities["snapped"].to_numpy(bool) if "snapped" in facilities else np.ones(len(facilities), bool)
    cap = (pd.to_numeric(facilities["capacity"], errors="coerce").fillna(1.0).to_numpy(float)
           if "capacity" in facilities else np.ones(len(facilities)))
    sel = np.flatnonzero(np.isin(cats, cfg.categories) & snapped)
    dist = catchment_matrix(times, sel, limit_m=top, network=network)
    out: dict[str, np.ndarray] = {}
    fac_rows = []
    for cat in cfg.categories:
        rows = np.flatnonzero(cats[sel] == cat)
        d = dist[rows]
        dg = demand[cat]
        people = np.asarray(decay_weights(d, limit_m=limit[dg], method="2sfca") @ weights[dg]).ravel()
        frame = {"facility": sel[rows], "category": cat, "capacity": cap[sel[rows]], "demand_group": dg,
                 "demand": people}
        for method in METHODS:
            r = facility_ratios(d, cap[sel[rows]], weights[dg], limit_m=limit[dg], method=method)
            frame[f"ratio_{method}"] = r
            for g in speeds:
                out[access_column(method, cat, None if g == POPULATION else g)] = accessibility_from_ratios(
                    d, r, limit_m=limit[g], method=method)
        fac_rows.append(pd.DataFrame(frame))
        for g, s in speeds.items():
            if g != POPULATION and s != cfg.walk_speed_kmh:
                out[group_minutes_column(cat, g)] = residents[minutes_column(cat)].to_numpy(float) * (
                    cfg.walk_speed_kmh / s)
    log.info("supply–demand: %d facilities, %d facility–resident pairs within %.0f m", sel.size, dist.nnz, top)
    return SupplyDemand(pd.DataFrame(out, index=residents.index),
                        pd.concat(fac_rows, ignore_index=True) if fac_rows else pd.DataFrame(), speeds, demand)


def accessibility_table(residents, facilities, sd: SupplyDemand, *, config: AnalysisConfig | None = None,
                        unit_column: str | None = "unit", facility_units=None,
                        ratios: Mapping[str, tuple[float, str]] | None = None) -> pd.DataFrame:
    """Per unit (and the study area), category and group: supply, capacity and access per 1,000.

    Parameters
    ----------
    residents : DataFrame
        With the group columns and ``unit`` (optional).
    facilities : DataFrame
        The facilities given to :func:`supply_demand`.
    sd : SupplyDemand
    facility_units : array-like, optional
        The unit each facility lies in (for facilities and capacity per 1,000 by location).
    ratios : mapping, optional
        ``{category: (standard capacity per 1,000 of its demand group, source)}``.

    Returns
    -------
    DataFrame
        ``unit, category, group, demand_group, walk_speed_kmh, minutes, population, facilities,
        capacity, facilities_per_1000, capacity_per_1000, access_<method>_per_1000 …, coverage_share,
        standard_per_1000, meets_standard, standard_source``. ``access_*_per_1000`` is the group's
        mean 2SFCA ratio ×1000: capacity within reach per 1,000 people of the category's
        ``demand_group`` (everyone by default);
        ``capacity_per_1000`` counts the capacity located in the unit (a plan's provision ratio),
        compared with the standard for the category's demand group only.
    """
    from .coverage import STUDY_AREA

    cfg = config or AnalysisConfig()
    n = len(residents)
    units = (residents[unit_column].to_numpy(dtype=object) if unit_column and unit_column in residents
             else np.full(n, None, dtype=object))
    names = [STUDY_AREA] + sorted({str(u) for u in units if u is not None and u == u}, key=str)
    fu = np.asarray(facility_units, dtype=object) if facility_units is not None else np.full(len(facilities), None)
    cats = facilities["category"].to_numpy()
    snapped = facilities["snapped"].to_numpy(bool) if "snapped" in facilities else np.ones(len(facilities), bool)
    cap = (pd.to_numeric(facilities["capacity"], errors="coerce").fillna(1.0).to_numpy(float)
           if "capacity" in facilities else np.ones(len(facilities)))
    rows = []
    for unit in names:
        in_unit = np.ones(n, bool) if unit == STUDY_AREA else (units == unit)
        f_in = snapped & (np.ones(len(facilities), bool) if unit == STUDY_AREA else (fu == unit))
        for cat in cfg.categories:
            fc = f_in & (cats == cat)
            n_fac, capacity = int(fc.sum()), float(cap[fc].sum())
            standard = (ratios or {}).get(cat)
            for g, speed in sd.groups.items():
                w = residents["population" if g == POPULATION else g].to_numpy(dtype=float)[in_unit]
                people = float(w.sum())
                row = {"unit": unit, "category": cat, "group": g, "demand_group": sd.demand_groups[cat],
                       "walk_speed_kmh": speed,
                       "minutes": cfg.headline_minutes, "population": people, "facilities": n_fac,
                       "capacity": capacity, "facilities_per_1000": float(per_1000(n_fac, people)),
                       "capacity_per_1000": float(per_1000(capacity, people))}
                for method in METHODS:
                    a = sd.residents[access_column(method, cat, None if g == POPULATION else g)].to_numpy()[in_unit]
                    row[f"access_{method}_per_1000"] = float(1000 * (w * a).sum() / people) if people > 0 else np.nan
                mcol = group_minutes_column(cat, g)
                mins = (sd.residents[mcol] if mcol in sd.residents else residents[minutes_column(cat)]).to_numpy(float)
                row["coverage_share"] = float(w[mins[in_unit] <= cfg.headline_minutes].sum() / people) if people > 0 \
                    else np.nan
                compare = standard is not None and sd.demand_groups.get(cat) == g
                row["standard_per_1000"] = standard[0] if compare else np.nan
                row["meets_standard"] = (bool(row["capacity_per_1000"] >= standard[0]) if compare and people > 0
                                         else None)
                row["standard_source"] = standard[1] if compare else None
                rows.append(row)
    return pd.DataFrame(rows)
