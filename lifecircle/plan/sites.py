"""Suggest new facility sites: greedy maximal covering location (CELF), per unit, checked by an exact MILP.

What a candidate is
-------------------
A candidate is a *point* where a new facility could open. It is treated exactly as the pipeline
treats a facility at that point: snapped to the nearest point of the nearest walkable edge (at
most ``max_snap_m`` away) and its access leg is walked. So the coverage predicted here is the
coverage :func:`lifecircle.analyze` finds once the chosen sites are added as facilities.

* Default: every **network node** that covers a currently-uncovered resident within ``minutes``,
  except those whose catchment a neighbour's along the street contains (they are never computed:
  :func:`lifecircle.plan.catchments.pairs_within_thinned`; greedy covers the same people step by
  step without them, only ties between different catchments of equal weight may go another way).
  Its point is the node itself (it snaps onto the node, access leg 0); ``node`` is its index.
  The nodes are snapped once per network and shared by the categories.
* ``candidates=FILE`` (CSV/XLSX with lon/lat, GeoJSON, GeoPackage; polygons become a point
  inside them) or a GeoDataFrame, in ``candidates_crs`` (``wgs84``, ``gcj02``, ``bd09`` or EPSG).
  Points farther than ``max_snap_m`` from every street are dropped (all of them: an error that
  says to check ``--candidates-crs``); ``node`` is the nearer end of the edge a point snaps to.

How catchments are computed
---------------------------
A candidate covers a resident when the walk between them, measured as the pipeline would measure
it with the candidate added as a facility, is at most ``minutes``. The walks are found by a bounded
local Dijkstra (:mod:`lifecircle.plan.catchments`): on the street network with its chains of
degree-2 nodes contracted, one small subgraph per 1 km tile of starting points, holding only the
streets within the walk's reach (a walk of ``L`` metres never leaves the disc of radius ``L``;
a border check re-runs any search that could, on the whole graph). So the cost grows with the
number of residents and candidates, not with the size of the city, and the catchment matrix
(candidates x uncovered residents) is written row by row from the batches. Walks are
symmetric, so the search starts from whichever side is smaller. Pairs within 1e-9 of the
threshold are measured again from the candidate on the access graph with the candidate attached
as the pipeline would attach it (snapped to its edge, access leg walked), so the coverage
predicted here is the coverage :func:`lifecircle.analyze` finds once the sites are added.

How sites are chosen
--------------------
Greedy with a lazy priority queue (CELF, Leskovec et al. 2007): each step adds the candidate that
covers the most still-uncovered people. Coverage is submodular, so greedy's ``k`` sites cover at
least (1 - 1/e) ~ 63 % of what the best ``k`` sites could. :func:`sites_needed` runs it per unit
until the unit's share reaches the target, and asks :func:`scipy.optimize.milp` (HiGHS) for the
exact minimum within ``time_limit_s`` to report greedy's gap. HiGHS does not always keep its own
time limit (with a 10 s limit it was still running after 400 s on a 69,000-node city), so the MILP runs in a
worker process that is killed at the deadline (:mod:`lifecircle.plan.deadline`); the table then
says "not solved within N s". Per-unit plans are independent:
one site may serve two units and then appears in both plans.
"""

from __future__ import annotations

import logging
import os
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._memory import return_freed_memory
from ..config import minutes_column
from ..measure.coverage import STUDY_AREA
from ..errors import CRSError, InputDataError
from .gaps import check_category, check_minutes
from ..measure.snapping import Snap, snap_points
from ..measure.bounded import local_dijkstra
from .catchments import TILE_M, Searches, pairs_within, pairs_within_thinned, thin_targets
from .deadline import TimedOut, call_with_deadline

log = logging.getLogger("lifecircle")

__all__ = [
    "SITE_COLUMNS",
    "NEEDED_COLUMNS",
    "Candidates",
    "Exact",
    "candidates_from_nodes",
    "candidates_from_points",
    "coverage_matrix",
    "greedy_cover",
    "solve_max_cover",
    "solve_min_sites",
    "suggest_sites",
    "site_plans",
    "release_caches",
    "SitePlan",
    "plan_sites",
    "sites_needed",
    "sites_as_facilities",
]

#: Columns of :func:`suggest_sites` (plus ``geometry``; ``name`` too when the candidates
#: have names; from a candidate file also ``lon_input``, ``lat_input``, ``input_crs`` and its own columns).
SITE_COLUMNS = [
    "rank", "category", "unit", "lon", "lat", "node", "osm_node_id", "candidate", "snap_dist_m",
    "newly_covered_population", "cumulative_covered_population", "cumulative_share",
]
#: Columns of :func:`sites_needed`.
NEEDED_COLUMNS = [
    "unit", "category", "minutes", "population", "share_before", "target", "sites_needed", "share_after",
    "reachable", "exact_sites", "gap", "exact_status", "note",
]
_SHARE_TOL = 1e-12  # as coverage.coverage_table: a share within 1e-12 of the target meets it
#: The exact MILP check is skipped above this many (candidate, resident) pairs: a city-wide problem
#: is never solved within seconds, and building it takes ~200 bytes per pair in its worker.
EXACT_MAX_PAIRS = 3_000_000
#: ... and above this many pairs per second of its time limit: on the tiled Shanghai sample HiGHS
#: proved 4 of 4 problems of 27,000-306,000 pairs and 2 of 2 of 341,000-562,000 optimal within 10 s,
#: but neither of 703,000 and 887,000 pairs, nor any of 1.5 million (benchmarks/plan_scale.py 1 2 3 4):
#: trying those only spends the limit (40 of the 50 s of `--sites` on a 30,000-node city).
EXACT_PAIRS_PER_S = 60_000


def exact_max_pairs(time_limit_s: float) -> int:
    """The largest problem (candidate-resident pairs) the exact check is tried on within ``time_limit_s``.

    >>> exact_max_pairs(10), exact_max_pairs(120)
    (600000, 3000000)
    """
    return int(min(EXACT_MAX_PAIRS, EXACT_PAIRS_PER_S * max(float(time_limit_s), 0.0)))


# ---------------------------------------------------------------------------- candidates


@dataclass(frozen=True, eq=False)
class Candidates:
    """Candidate sites, snapped like facilities.

    ``lon``/``lat`` are the points (WGS84) a facility would be placed at, ``node`` the network
    node index (the node itself, or the nearer end of the edge a file point snaps to),
    ``ident`` the candidate's id (node index, or row label of the candidate file), ``snap``
    where each joins the network. Every candidate here is snapped.
    """

    lon: np.ndarray
    lat: np.ndarray
    node: np.ndarray
    ident: np.ndarray
    snap: Snap
    name: np.ndarray | None = None
    source: str = "network nodes"
    #: the candidate file's own columns (parcel name, id, address), one row per candidate
    columns: pd.DataFrame | None = None
    #: the candidates' coordinates in the CRS they were given in, and that CRS
    lon_input: np.ndarray | None = None
    lat_input: np.ndarray | None = None
    input_crs: str | None = None

    def __len__(self) -> int:
        return len(self.lon)


def candidates_from_nodes(network, nodes, *, max_snap_m: float = 500.0) -> Candidates:
    """Network nodes as candidates (a facility placed on the node).

    >>> from lifecircle import WalkNetwork
    >>> net = WalkNetwork.from_lonlat([121.40, 121.4021], [31.20, 31.20], [0], [1])
    >>> c = candidates_from_nodes(net, [1])
    >>> c.node.tolist(), round(float(c.snap.dist_m[0]), 6)
    ([1], 0.0)
    """
    nodes = np.asarray(nodes, dtype=np.int64)
    lon, lat = network.lon[nodes], network.lat[nodes]
    snap = snap_points(network, lon, lat, max_snap_m=max_snap_m)
    ok = snap.snapped
    snap = Snap(*(a[ok] for a in (snap.edge, snap.t, snap.dist_m, snap.x, snap.y)))
    return Candidates(lon[ok], lat[ok], nodes[ok], nodes[ok].astype(object), snap)


_NODE_CANDIDATES: weakref.WeakKeyDictionary[Any, dict] = weakref.WeakKeyDictionary()
_SNAP_SLICE = 100_000


def _all_node_candidates(network, max_snap_m: float) -> Candidates:
    """Every network node as a candidate (:func:`candidates_from_nodes`), snapped once per network."""
    cache = _NODE_CANDIDATES.setdefault(network, {})
    key = float(max_snap_m)
    if key not in cache:  # in slices: the nearest-segment query holds ~500 bytes per point
        parts = [candidates_from_nodes(network, np.arange(lo, min(lo + _SNAP_SLICE, network.n_nodes)),
                                       max_snap_m=max_snap_m) for lo in range(0, network.n_nodes, _SNAP_SLICE)]
        cat = np.concatenate
        node = cat([c.node for c in parts])
        # ids as plain integers here (a million Python ints would take 36 MB); _rows makes objects
        cache[key] = Candidates(cat([c.lon for c in parts]), cat([c.lat for c in parts]), node, node,
                                Snap(*(cat([getattr(c.snap, f) for c in parts]) for f in ("edge", "t", "dist_m", "x", "y"))))
    return cache[key]


def release_caches(network) -> None:
    """Free what planning keeps per network for the next plan: the snapped node candidates and the
    street chains (a million-node city: ~0.1 GB). Each is made again if asked for.

    Examples
    --------
    >>> from lifecircle import WalkNetwork
    >>> net = WalkNetwork.from_lonlat([121.40, 121.4021], [31.20, 31.20], [0], [1])
    >>> _ = _all_node_candidates(net, 500.0)
    >>> release_caches(net)
    >>> net in _NODE_CANDIDATES
    False
    """
    from .catchments import release_chains

    _NODE_CANDIDATES.pop(network, None)
    release_chains(network)


def _rows(c: Candidates, rows: np.ndarray) -> Candidates:
    """Some of the candidates (node candidates: no name, no own columns)."""
    snap = Snap(*(a[rows] for a in (c.snap.edge, c.snap.t, c.snap.dist_m, c.snap.x, c.snap.y)))
    return Candidates(c.lon[rows], c.lat[rows], c.node[rows], c.ident[rows].astype(object), snap, source=c.source)


def candidates_from_points(network, points, *, crs: Any = None, max_snap_m: float = 500.0) -> Candidates:
    """Candidate points from a file or GeoDataFrame, snapped like facilities.

    Parameters
    ----------
    network : WalkNetwork
    points : path or GeoDataFrame
        Candidate locations (CSV/XLSX with lon/lat columns, GeoJSON, GeoPackage…).
    crs : str, int or pyproj.CRS, optional
        The CRS the coordinates are in (``wgs84``, ``gcj02``, ``bd09`` or an EPSG code); default:
        WGS84 for tables, the declared CRS for vector files and GeoDataFrames.
    max_snap_m : float
        Points farther from every walkable street are dropped (with a warning).

    Raises
    ------
    CRSError
        When no point lies within ``max_snap_m`` of a street (a wrong CRS, or another city).
    """
    import geopandas as gpd

    from ..read.crs import to_wgs84
    from ..read.files import read_geo
    from ..measure.snapping import suggest_crs

    if isinstance(points, (str, os.PathLike)):
        gdf = read_geo(points, what="candidates", crs=crs)
        label = Path(points).name
    elif isinstance(points, gpd.GeoDataFrame):
        gdf = to_wgs84(points, crs)
        gdf.attrs["crs_declared"] = {"crs": crs if crs is not None else
                                     (points.crs.to_string() if points.crs is not None else "wgs84")}
        label = "candidates"
    else:
        raise InputDataError(f"candidates must be a file path or a GeoDataFrame (got {type(points).__name__}); "
                             "e.g. --candidates sites.csv")
    geom = gdf.geometry
    valid = (geom.notna() & ~geom.is_empty).to_numpy()
    if not valid.any():
        raise InputDataError(f"{label}: no candidate has coordinates; give lon/lat columns or point geometries")
    gdf = gdf[valid]
    geom = gdf.geometry
    if not (geom.geom_type == "Point").all():
        geom = geom.representative_point()
    lon, lat = geom.x.to_numpy(), geom.y.to_numpy()
    snap = snap_points(network, lon, lat, max_snap_m=max_snap_m)
    ok = snap.snapped
    hint = "check --candidates-crs (points copied from a Chinese web map are gcj02 or bd09)"
    guess = suggest_crs(network, lon, lat)
    if guess:
        hint = (f"they look like {guess[0].upper()} coordinates (median {guess[1]:.0f} m from a street as given, "
                f"{guess[2]:.0f} m as {guess[0]}): check --candidates-crs, e.g. --candidates-crs {guess[0]}")
    if not ok.any():
        raise CRSError(
            f"{label}: none of the {len(lon)} candidate points is within {max_snap_m:g} m of a walkable street "
            f"(nearest {np.nanmin(snap.dist_m):.0f} m); {hint}, and that they lie in the study area")
    if not ok.all():
        log.warning("%s: %d of %d candidate points are more than %g m from any walkable street and are not used; %s",
                    label, int((~ok).sum()), len(lon), max_snap_m, hint)
    elif guess:
        log.warning("%s: %s", label, hint)
    snap = Snap(*(a[ok] for a in (snap.edge, snap.t, snap.dist_m, snap.x, snap.y)))
    node = np.where(snap.t <= 0.5, network.u[snap.edge], network.v[snap.edge])
    names = gdf["name"].to_numpy(dtype=object)[ok] if "name" in gdf.columns else None
    own, lon_in, lat_in, in_crs = _own_columns(gdf[ok], lon[ok], lat[ok], crs)
    return Candidates(lon[ok], lat[ok], node, gdf.index.to_numpy(dtype=object)[ok], snap, names, label,
                      own, lon_in, lat_in, in_crs)


def _own_columns(gdf, lon: np.ndarray, lat: np.ndarray, crs: Any):
    """The candidates' own columns (not the lon/lat ones, not names a site table has: those get ``_input``)
    and their coordinates in the CRS they were given in (``from_wgs84`` inverts the reading exactly)."""
    import geopandas as gpd

    from ..read.crs import from_wgs84, parse_crs

    xy = [c for c in gdf.attrs.get("xy_columns", ()) if c in gdf.columns]
    own = pd.DataFrame(gdf.drop(columns=[*xy, gdf.geometry.name, "name"], errors="ignore")).reset_index(drop=True)
    taken = set(SITE_COLUMNS) | {"geometry", "name", "lon_input", "lat_input", "input_crs", "snap_dist_m"}
    own = own.rename(columns={c: f"{c}_input" for c in own.columns if c in taken})
    declared = crs if crs is not None else (gdf.attrs.get("crs_declared") or {}).get("crs", "wgs84")
    target = parse_crs(declared)
    name = target.upper() if isinstance(target, str) else (f"EPSG:{target.to_epsg()}" if target.to_epsg()
                                                           else target.name)
    pts = gpd.GeoSeries(gpd.points_from_xy(lon, lat), crs=4326)
    moved = from_wgs84(pts, target) if name != "EPSG:4326" else pts
    return own, moved.x.to_numpy(), moved.y.to_numpy(), name


# ---------------------------------------------------------------------------- catchments


def _attach(graph, network, snap: Snap, *, outward: bool) -> tuple[sp.csr_matrix, np.ndarray]:
    """The access graph with every candidate added as a node (see module docstring).

    Candidate edges are one-way, so that no search wanders through other candidates: out of the
    candidates (``outward``, for searches from them) or into them (for searches from residents).
    """
    n = graph.n_network_nodes
    pe = np.asarray(graph.proj_edge, dtype=np.int64)
    pt = np.asarray(graph.proj_t, dtype=float)
    k = len(pe)
    order = np.lexsort((pt, pe))
    pe_s, pt_s, pn_s = pe[order], pt[order], n + order
    ce, ct = snap.edge, snap.t
    m = len(ce)
    # merge candidates after existing projections with equal (edge, t): the pipeline appends new
    # facilities after the points it already had, and its sort is stable
    merged_e = np.concatenate([pe_s, ce])
    merged_t = np.concatenate([pt_s, ct])
    is_cand = np.concatenate([np.zeros(k, dtype=bool), np.ones(m, dtype=bool)])
    mo = np.lexsort((is_cand, merged_t, merged_e))
    before = np.cumsum(~is_cand[mo])  # existing projections up to and including each position
    pos = np.empty(k + m, dtype=np.int64)
    pos[mo] = before
    hi = pos[k:]  # index (in sorted existing) of the first projection after each candidate
    lo = hi - 1
    if k:
        lo_c, hi_c = np.clip(lo, 0, k - 1), np.clip(hi, 0, k - 1)
        lo_ok = (lo >= 0) & (pe_s[lo_c] == ce)
        hi_ok = (hi < k) & (pe_s[hi_c] == ce)
        lo_node, lo_t = np.where(lo_ok, pn_s[lo_c], network.u[ce]), np.where(lo_ok, pt_s[lo_c], 0.0)
        hi_node, hi_t = np.where(hi_ok, pn_s[hi_c], network.v[ce]), np.where(hi_ok, pt_s[hi_c], 1.0)
    else:
        lo_node, lo_t = network.u[ce], np.zeros(m)
        hi_node, hi_t = network.v[ce], np.ones(m)
    seg = network.length_m[ce]
    size = graph.n_nodes
    cand_node = size + np.arange(m)
    # the pipeline's own pieces: access leg, then (t - t_prev) * length along the edge
    w_lo = snap.dist_m + (ct - lo_t) * seg
    w_hi = snap.dist_m + (hi_t - ct) * seg
    coo = graph.matrix.tocoo()
    ends = np.concatenate([lo_node, hi_node])
    twice = np.concatenate([cand_node, cand_node])
    rows = np.concatenate([coo.row, twice if outward else ends])
    cols = np.concatenate([coo.col, ends if outward else twice])
    data = np.concatenate([coo.data, w_lo, w_hi])
    # explicit zeros stay (zero-length pieces are real edges, as in build_access_graph)
    mat = sp.csr_matrix((data, (rows, cols)), shape=(size + m, size + m))
    return mat, cand_node


def _access_positions(graph, network, snap: Snap) -> tuple[np.ndarray, np.ndarray]:
    """Metric position of every node of :func:`_attach`'s graph: a point node sits at its projection."""
    def along(edge, t):
        u, v = network.u[edge], network.v[edge]
        return (network.x[u] + t * (network.x[v] - network.x[u]), network.y[u] + t * (network.y[v] - network.y[u]))

    px, py = along(np.asarray(graph.proj_edge, dtype=np.int64), np.asarray(graph.proj_t, dtype=float))
    cx, cy = along(snap.edge, snap.t)
    return np.concatenate([network.x, px, px, cx]), np.concatenate([network.y, py, py, cy])


def _remeasure(analysis, candidates: Candidates, cand, res_nodes, *, limit_m: float) -> np.ndarray:
    """Metres from candidate ``cand[i]`` to resident node ``res_nodes[i]``, measured as the pipeline does.

    From the candidate, on the access graph with the candidate attached (a local Dijkstra: only
    the nodes within ``limit_m``); ``inf`` beyond ``limit_m``.
    """
    graph = analysis.times.graph
    out = np.full(len(cand), np.inf)
    if len(cand) == 0:
        return out
    which = np.unique(cand)  # only these are attached: a candidate's edges lead out of it, so no walk
    snap = candidates.snap   # from one passes through another, and each attaches as it would with all
    snap = Snap(*(a[which] for a in (snap.edge, snap.t, snap.dist_m, snap.x, snap.y)))
    mat, cand_nodes = _attach(graph, analysis.network, snap, outward=True)
    x, y = _access_positions(graph, analysis.network, snap)
    row_of = np.full(len(candidates), -1, dtype=np.int64)
    for pos, nodes, d in local_dijkstra(mat, x, y, cand_nodes, limit_m=limit_m, tile_m=TILE_M,
                                        n_pool=graph.n_nodes):
        row_of[which[pos]] = np.arange(len(pos))
        sel = np.flatnonzero(row_of[cand] >= 0)
        col = np.searchsorted(nodes, res_nodes[sel])
        found = (col < len(nodes)) & (nodes[np.minimum(col, len(nodes) - 1)] == res_nodes[sel])
        out[sel[found]] = d[row_of[cand[sel[found]]], col[found]]
        row_of[which[pos]] = -1
    return out


class _RowsBuilder:
    """Collects (source, target) pairs in batches and lays them out as CSR rows, one row per source.

    A batch's pairs come grouped by source. Only the targets (int32) and the runs of sources are
    kept until :meth:`finish`, which writes the column indices straight into their rows: about
    5 bytes per pair until then, 4 after, instead of the 16+ of a COO matrix and its conversion.
    """

    def __init__(self, n_rows: int):
        self.n_rows = n_rows
        self.count = np.zeros(n_rows, dtype=np.int64)
        self.batches: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, source: np.ndarray, target: np.ndarray) -> None:
        if len(source) == 0:
            return
        source = np.asarray(source, dtype=np.int64)
        tgt = np.asarray(target, dtype=np.int32)
        start = np.flatnonzero(np.r_[True, source[1:] != source[:-1]])
        if len(np.unique(source[start])) < len(start):  # one run per row, please
            order = np.argsort(source, kind="stable")
            source, tgt = source[order], tgt[order]
            start = np.flatnonzero(np.r_[True, source[1:] != source[:-1]])
        runs = np.diff(np.r_[start, len(source)])
        self.count[source[start]] += runs  # each row once in a batch
        self.batches.append((source[start], runs, tgt))

    def add_runs(self, sources: np.ndarray, runs: np.ndarray, target: np.ndarray) -> None:
        """Pairs grouped by source already: ``runs[i]`` targets of ``sources[i]`` (each source once)."""
        self.count[sources] += runs
        self.batches.append((sources, runs, np.asarray(target, dtype=np.int32)))

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        indptr = np.r_[0, np.cumsum(self.count)]
        indices = np.empty(int(indptr[-1]), dtype=np.int32)
        nxt = indptr[:-1].copy()
        self.batches.reverse()
        while self.batches:  # each run fills the next slots of its row
            run_src, runs, tgt = self.batches.pop()
            pos = np.repeat(nxt[run_src] - (np.cumsum(runs) - runs), runs) + np.arange(len(tgt))
            indices[pos] = tgt
            nxt[run_src] += runs
        return indptr, indices


def _limit_m(analysis, minutes: float) -> float:
    """Longest walk the catchment searches measure: a hair beyond the re-measured band around ``minutes``."""
    mpm = analysis.config.walk_speed_kmh * 1000.0 / 60.0
    return (minutes + 1e-9 * minutes) * mpm * (1 + 1e-12)


#: The searches the categories share are held in memory up to this many megabytes, beyond it on disk (a
#: million-node city's, ~0.3 GB, would be held through every category's matrix and greedy: the plan's peak)
SHARED_SEARCHES_SPILL_MB = 64.0

#: analysis -> {"categories": [...], minutes: _Shared} while site_plans runs
_SHARED_SEARCHES: weakref.WeakKeyDictionary[Any, dict] = weakref.WeakKeyDictionary()


@contextmanager
def _sharing_searches(analysis, categories):
    """Let :func:`_build` search once from the residents uncovered in any of ``categories``."""
    _SHARED_SEARCHES[analysis] = {"categories": list(categories)}
    try:
        yield
    finally:
        _SHARED_SEARCHES.pop(analysis, None)


def _targets(analysis, category: str, minutes: float, area: np.ndarray) -> np.ndarray:
    """Positions of the residents to cover: in ``area``, not covered within ``minutes``, people, snapped."""
    res = analysis.residents
    pop = res["population"].to_numpy(dtype=float)
    mins = res[minutes_column(category)].to_numpy(dtype=float)
    rnode = analysis.times.graph.point_node[: analysis.times.n_residents]
    return np.flatnonzero(area & ~(mins <= minutes) & (pop > 0) & (rnode >= 0))


class _Shared:
    """What the categories of one site_plans call share: the residents uncovered in any of them
    (``positions``), one search from them (``searches``), and each category's residents among them
    (``groups``, positions in ``positions``), whose node candidates are thinned in one pass."""

    def __init__(self, positions: np.ndarray, searches: Searches, groups: list[np.ndarray]):
        self.positions, self.searches, self.groups = positions, searches, groups
        self._keeps: tuple | None = None  # (candidates, thin, cover_m, keep per group)

    def __getitem__(self, i):  # (positions, searches), as before
        return (self.positions, self.searches)[i]

    def keep(self, network, candidates, dst, sources: np.ndarray, *, thin: np.ndarray, cover_m: float):
        """The thinning of ``candidates`` for ``sources`` when they are one of the groups (else None)."""
        g = next((g for g, grp in enumerate(self.groups) if np.array_equal(grp, sources)), None)
        if g is None:
            return None
        cached = self._keeps
        if cached is None or cached[0] is not candidates or cached[2] != cover_m or not np.array_equal(cached[1], thin):
            keeps = thin_targets(network, dst, searches=self.searches, groups=self.groups, cover_m=cover_m, thin=thin)
            self._keeps = cached = (candidates, thin, cover_m, keeps)
        return cached[3][g]


def _shared_searches(analysis, minutes: float):
    """The :class:`_Shared` search of the categories site_plans plans, or None."""
    shared = _SHARED_SEARCHES.get(analysis)
    if shared is None:
        return None
    if minutes not in shared:
        everyone = np.ones(len(analysis.residents), dtype=bool)
        each = [_targets(analysis, c, minutes, everyone) for c in shared["categories"]]
        union = np.unique(np.concatenate(each))
        rs = analysis.times.resident_snap
        searches = Searches.run(analysis.network, (rs.edge[union], rs.t[union], rs.dist_m[union]),
                                limit_m=_limit_m(analysis, minutes), spill_mb=SHARED_SEARCHES_SPILL_MB)
        shared[minutes] = _Shared(union, searches, [np.searchsorted(union, e) for e in each])
    return shared[minutes]


def coverage_matrix(analysis, candidates: Candidates, resident_positions, *, minutes: float,
                    search_from: str = "auto", tile_m: float = TILE_M,
                    drop_dominated: bool = False, _shared: tuple | None = None, _with_columns: bool = False):
    """Boolean sparse matrix: candidate ``i`` covers resident ``resident_positions[j]`` within ``minutes``.

    Walks are measured on the street network from every resident to every candidate (or the
    other way round, ``search_from``; by default from whichever is fewer) by a bounded local
    Dijkstra that only looks at the streets within the walk's reach
    (:func:`lifecircle.plan.catchments.pairs_within`). A candidate covers a resident when
    ``metres / metres_per_minute <= minutes`` (the pipeline's own test); pairs within 1e-9 of the
    threshold are measured again from the candidate on the access graph, as the pipeline measures
    them, so that the answer is the pipeline's to the last bit. Residents are given by position
    in ``analysis.residents``; unsnapped ones are never covered.

    With ``drop_dominated`` (and the search from the residents), the rows of candidates whose
    catchment a kept neighbour's contains are left empty, and are never computed
    (:func:`lifecircle.plan.catchments.pairs_within_thinned`; candidates off the street, with
    an access leg, are all kept). Greedy never needs them: a dropped candidate never covers
    more of the still-uncovered people than the kept one that contains it, and when it covers
    as many (every weight > 0) it covers the very same people.
    """
    if search_from not in ("auto", "candidates", "residents"):
        raise InputDataError(f"search_from must be auto, candidates or residents (got {search_from!r})")
    graph = analysis.times.graph
    mpm = analysis.config.walk_speed_kmh * 1000.0 / 60.0  # exactly as walking_times
    positions = np.asarray(resident_positions, dtype=np.int64)
    res_nodes = graph.point_node[: analysis.times.n_residents][positions]
    m = len(candidates)
    ok_cols = np.flatnonzero(res_nodes >= 0)
    if m == 0 or ok_cols.size == 0:
        empty = sp.csr_matrix((m, len(res_nodes)), dtype=bool)
        return (empty, None) if _with_columns else empty
    rs = analysis.times.resident_snap
    res_pts = (rs.edge[positions[ok_cols]], rs.t[positions[ok_cols]], rs.dist_m[positions[ok_cols]])
    cs = candidates.snap
    cand_pts = (cs.edge, cs.t, cs.dist_m)
    band = 1e-9 * minutes
    limit = _limit_m(analysis, minutes)
    sure_m = (minutes - band) * mpm * (1 - 1e-12)  # walks this short are covered whichever way they are summed
    from_res = search_from == "residents" or (search_from == "auto" and ok_cols.size < m)
    build = _RowsBuilder(ok_cols.size if from_res else m)  # rows: the sources
    near_r, near_c = [], []
    src, dst = (res_pts, cand_pts) if from_res else (cand_pts, res_pts)
    if drop_dominated and from_res:
        searches, sources = None, None
        if _shared is not None:  # searches made once for the residents of several categories
            at = np.searchsorted(_shared[0], positions[ok_cols])
            if (at < len(_shared[0])).all() and np.array_equal(_shared[0][np.minimum(at, len(_shared[0]) - 1)],
                                                                positions[ok_cols]):
                searches, sources = _shared[1], at
        thin = cs.dist_m == 0
        keep = None
        if sources is not None and isinstance(_shared, _Shared):  # thinned with the other categories, in one pass
            keep = _shared.keep(analysis.network, candidates, dst, sources, thin=thin, cover_m=minutes * mpm)
        keep, found = pairs_within_thinned(analysis.network, src, dst, limit_m=limit, cover_m=minutes * mpm,
                                           thin=thin, tile_m=tile_m, searches=searches, sources=sources, keep=keep,
                                           sure_m=sure_m, rows=build)  # the sure pairs go straight into the rows
        log.debug("coverage_matrix: %d of %d candidates kept (the others' catchments are contained in theirs)",
                  int(keep.sum()), m)
    else:
        found = pairs_within(analysis.network, src, dst, limit_m=limit, tile_m=tile_m)
    for i, j, d in found:
        sure = d <= sure_m
        build.add(i[sure], j[sure])
        c, r = (j, i) if from_res else (i, j)
        near_c.append(c[~sure])
        near_r.append(r[~sure])
    near_c = np.concatenate(near_c) if near_c else np.zeros(0, dtype=np.int64)
    near_r = np.concatenate(near_r) if near_r else np.zeros(0, dtype=np.int64)
    once = drop_dominated and from_res  # the rows hold each pair once: they are the matrix's columns
    extra = None
    if near_c.size:  # the walk measured the other way (or on the unsplit street) may differ in the last bit
        d = _remeasure(analysis, candidates, near_c, res_nodes[ok_cols[near_r]], limit_m=limit)
        hit = d / mpm <= minutes
        if once:
            extra = (near_r[hit], near_c[hit])
        else:
            build.add(*((near_r[hit], near_c[hit]) if from_res else (near_c[hit], near_r[hit])))
        log.debug("coverage_matrix: %d pairs within %g min of the threshold measured again", near_c.size, band)
    indptr, indices = build.finish()
    del build
    return_freed_memory()  # the pairs' temporaries (a city: ~0.3 GB of heap) before the matrix is transposed
    if extra is not None:
        indptr, indices = _add_new_pairs(indptr, indices, *extra)
    by_res = None
    if from_res:  # rows are the residents: the transpose (linear, and its rows come out sorted)
        cov = sp.csr_matrix((np.ones(len(indices), dtype=bool), indices, indptr), shape=(ok_cols.size, m)).T.tocsr()
        if once and _with_columns:
            by_res = (indptr, indices)
        indptr, indices = cov.indptr, cov.indices
        del cov
    if ok_cols.size < len(res_nodes):
        indices = ok_cols.astype(indices.dtype)[indices]
    cov = sp.csr_matrix((np.ones(len(indices), dtype=bool), indices, indptr), shape=(m, len(res_nodes)))
    cov.sort_indices()
    cov.sum_duplicates()
    if not _with_columns:
        return cov
    if by_res is None:
        return cov, None
    ptr, idx = by_res
    if ok_cols.size < len(res_nodes):  # unsnapped residents: empty columns
        cnt = np.zeros(len(res_nodes), dtype=np.int64)
        cnt[ok_cols] = np.diff(ptr)
        ptr = np.r_[0, np.cumsum(cnt)]
    data = cov.data if len(cov.data) == len(idx) else np.ones(len(idx), dtype=bool)  # all True: one array for both
    return cov, sp.csc_matrix((data, idx, ptr), shape=cov.shape)


def _add_new_pairs(indptr: np.ndarray, indices: np.ndarray, r: np.ndarray, c: np.ndarray):
    """CSR rows plus the pairs (row ``r``, column ``c``) they do not hold yet (each once)."""
    if len(r) == 0:
        return indptr, indices
    width = int(max(indices.max(initial=0), c.max(initial=0))) + 1
    key = np.unique(r.astype(np.int64) * width + c)
    rows = np.unique(key // width)
    st, ln = indptr[rows], indptr[rows + 1] - indptr[rows]
    at = np.repeat(st - (np.cumsum(ln) - ln), ln) + np.arange(int(ln.sum()))
    held = np.repeat(rows, ln) * width + indices[at]
    key = key[~np.isin(key, held)]
    if key.size == 0:
        return indptr, indices
    nr, nc = key // width, (key % width).astype(indices.dtype)
    add = np.bincount(nr, minlength=len(indptr) - 1)
    new_ptr = indptr + np.r_[0, np.cumsum(add)]
    out = np.empty(len(indices) + len(key), dtype=indices.dtype)
    ln = np.diff(indptr)
    out[np.repeat(new_ptr[:-1] - indptr[:-1], ln) + np.arange(len(indices))] = indices  # each row's old pairs first
    first_new = new_ptr[1:][nr] - add[nr]  # then its new ones
    out[first_new + (np.arange(len(key)) - np.searchsorted(nr, nr))] = nc
    return new_ptr, out


# ---------------------------------------------------------------------------- optimisation


def _row_sums(cov: sp.csr_matrix, values: np.ndarray, *, chunk: int = 4_000_000) -> np.ndarray:
    """``cov @ values`` for a boolean CSR matrix, summed in row order, without a float copy of the matrix."""
    out = np.zeros(cov.shape[0])
    indptr, indices = cov.indptr, cov.indices
    rows = np.flatnonzero(np.diff(indptr) > 0)
    start = 0
    while start < len(rows):
        stop = int(np.searchsorted(indptr[rows + 1], indptr[rows[start]] + chunk, side="right"))
        stop = max(stop, start + 1)
        sel = rows[start:stop]
        lo, hi = indptr[sel[0]], indptr[sel[-1] + 1]
        out[sel] = np.add.reduceat(values[indices[lo:hi]], indptr[sel] - lo)
        start = stop
    return out


def _reached(cov: sp.csr_matrix) -> np.ndarray:
    """Columns covered by at least one row (no float copy of the matrix)."""
    out = np.zeros(cov.shape[1], dtype=bool)
    out[cov.indices] = True  # (a bincount would copy the int32 indices to int64 first)
    return out


#: Rows per block of :func:`greedy_cover`'s running maxima.
_BLOCK = 256
#: Pairs per slice of :func:`greedy_cover`'s update (a city's first pick takes ~10M pairs off: ~0.3 GB at once)
_UPDATE_PAIRS = 1 << 21


def greedy_cover(coverage, weights, *, k: int | None = None, need: float | None = None,
                 covered: np.ndarray | None = None, _columns: sp.csc_matrix | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Greedy maximal covering: each step the candidate that covers the most still-uncovered weight.

    Every candidate's gain is kept up to date: when a site is chosen, the people it newly covers
    are taken off the gain of every row that covers them (the matrix's columns, vectorised). The
    rows within a hair (1e-9 of the largest first gain) of the largest kept gain are summed
    afresh, and the first of them with the largest fresh sum is chosen, so rounding in the
    running sums never changes a choice and the gains reported are plain sums. (A row loses the
    people of a pick in their column order, whatever order each column lists its rows in, so its
    running sum is the same bit for bit with ``_columns``, the matrix by columns when at hand.)

    Parameters
    ----------
    coverage : sparse matrix
        Rows: candidates, columns: demand points; nonzero = the candidate covers the point.
    weights : array-like
        People at each demand point (>= 0).
    k : int, optional
        Most candidates to choose.
    need : float, optional
        Stop as soon as the chosen candidates cover this much weight.
    covered : bool array, optional
        Demand points covered already (they add nothing).

    Returns
    -------
    chosen, gains : ndarray
        Row indices in the order chosen, and the weight each newly covered (positive, never
        increasing). It stops early when no candidate adds anything. Ties go to the lower row.

    Examples
    --------
    Row 0 covers points {0, 1}, row 1 covers {1, 2, 3}, row 2 covers {3}; weights 5, 1, 1, 1:

    >>> cov = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 1, 1, 1], [0, 0, 0, 1]], dtype=bool))
    >>> greedy_cover(cov, [5, 1, 1, 1])
    (array([0, 1]), array([6., 2.]))
    """
    if sp.issparse(coverage) and coverage.format == "csr" and coverage.dtype == bool and coverage.has_sorted_indices:
        cov = coverage  # (a city's matrix: no copy of its data)
    else:
        cov = sp.csr_matrix(coverage, dtype=bool)
        cov.sort_indices()
    w = np.asarray(weights, dtype=float)
    done = np.zeros(cov.shape[1], dtype=bool) if covered is None else np.array(covered, dtype=bool)
    free = np.where(done, 0.0, w)
    gain = _row_sums(cov, free)  # running: exact up to rounding
    chosen: list[int] = []
    gains: list[float] = []
    if cov.shape[0] == 0 or not (gain > 0).any():
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    indptr, indices = cov.indptr, cov.indices
    csc = cov.tocsc() if _columns is None else _columns  # (its rows need not be sorted: see below)
    col_ptr, col_rows = csc.indptr, csc.indices
    del csc
    tol = 1e-9 * float(gain.max())
    total = 0.0
    k_max = cov.shape[0] if k is None else int(k)
    # the largest gain of each block of rows, kept up to date for the blocks whose rows change: a step
    # looks at the blocks within a hair of the top only (the same rows, in the same order, as a scan)
    n_rows = cov.shape[0]
    n_blocks = -(-n_rows // _BLOCK)
    padded = np.full(n_blocks * _BLOCK, -np.inf)
    padded[:n_rows] = gain
    gain = padded[:n_rows]  # a view: the running gains
    blocks = padded.reshape(n_blocks, _BLOCK)
    bmax = blocks.max(axis=1)
    touched = np.zeros(n_blocks, dtype=bool)
    while len(chosen) < k_max and (need is None or total < need):
        top = float(bmax.max())
        if top <= 0:
            break
        nb = np.flatnonzero(bmax >= top - tol)
        rel = np.flatnonzero(blocks[nb] >= top - tol)
        near = nb[rel // _BLOCK] * _BLOCK + rel % _BLOCK
        near = near[indptr[near + 1] > indptr[near]]  # (an empty row's gain is 0 already)
        st, ln = indptr[near], indptr[near + 1] - indptr[near]
        at = np.repeat(st - (np.cumsum(ln) - ln), ln) + np.arange(int(ln.sum()))
        fresh = np.add.reduceat(free[indices[at]], np.cumsum(ln) - ln)
        gain[near] = fresh
        best = int(np.argmax(fresh))
        if not fresh[best] > 0:
            bmax[nb] = blocks[nb].max(axis=1)
            continue  # those were rounding leftovers: their gains are 0 now
        j = int(near[best])
        cols = indices[indptr[j]:indptr[j + 1]]
        new = cols[free[cols] > 0]
        ends = np.cumsum(col_ptr[new + 1] - col_ptr[new])
        lo = 0
        while lo < len(new):  # the rows of the newly covered, in their order, a bounded slice at a time
            hi = max(lo + 1, int(np.searchsorted(ends, (ends[lo - 1] if lo else 0) + _UPDATE_PAIRS, side="right")))
            part = new[lo:hi]
            cst, cln = col_ptr[part], col_ptr[part + 1] - col_ptr[part]
            cat = np.repeat(cst - (np.cumsum(cln) - cln), cln) + np.arange(int(cln.sum()))
            hit = col_rows[cat]
            np.subtract.at(gain, hit, np.repeat(free[part], cln))
            touched[hit // _BLOCK] = True
            lo = hi
        free[new] = 0.0
        gain[j] = 0.0
        touched[nb] = True
        changed = np.flatnonzero(touched)
        touched[changed] = False
        bmax[changed] = blocks[changed].max(axis=1)
        chosen.append(j)
        gains.append(float(fresh[best]))
        total += float(fresh[best])
    return np.asarray(chosen, dtype=np.int64), np.asarray(gains, dtype=float)


@dataclass(frozen=True)
class Exact:
    """An exact (MILP) answer: the chosen rows, the weight they cover, and the solver's status.

    ``status`` is ``"optimal"``, ``"time limit"`` (not solved within the time limit: ``chosen``
    is the best plan found, not proven, or empty when the solver was stopped before it had one),
    ``"too large"`` (not tried: more pairs than :func:`exact_max_pairs` allows), ``"infeasible"`` or
    ``"failed"``.
    """

    chosen: np.ndarray
    covered_weight: float
    status: str

    @property
    def optimal(self) -> bool:
        return self.status == "optimal"


def _reduce(coverage, weights):
    """Drop empty points, merge points covered by the same rows, merge identical rows."""
    cov = sp.csr_matrix(coverage, dtype=bool)
    w = np.asarray(weights, dtype=float)
    keep_cols = np.flatnonzero((w > 0) & (np.asarray(cov.sum(axis=0)).ravel() > 0))
    cov = cov[:, keep_cols].tocsr()
    w = w[keep_cols]
    rng = np.random.default_rng(12345)
    f = cov.astype(float)
    # random-projection fingerprints of columns and rows (two each: collisions are negligible)
    col_key = np.column_stack([f.T @ rng.random(cov.shape[0]), f.T @ rng.random(cov.shape[0])])
    _, col_group = np.unique(col_key, axis=0, return_inverse=True)
    col_group = col_group.ravel()
    n_groups = int(col_group.max()) + 1 if len(col_group) else 0
    gw = np.bincount(col_group, weights=w, minlength=n_groups)
    merge = sp.csr_matrix((np.ones(len(col_group)), (np.arange(len(col_group)), col_group)),
                          shape=(len(col_group), n_groups))
    cov_g = (f @ merge) > 0
    row_nonempty = np.flatnonzero(np.asarray(cov_g.sum(axis=1)).ravel() > 0)
    fr = cov_g[row_nonempty].astype(float)
    row_key = np.column_stack([fr @ rng.random(n_groups), fr @ rng.random(n_groups)]) if n_groups else np.zeros((0, 2))
    _, first_rows = np.unique(row_key, axis=0, return_index=True)
    rows = row_nonempty[np.sort(first_rows)]
    return sp.csr_matrix(cov_g[rows], dtype=float), gw, rows


def _milp(c, A_rows, lb, ub, n_x, n_y, deadline: float):
    from scipy.optimize import Bounds, LinearConstraint, milp

    integrality = np.concatenate([np.ones(n_x), np.zeros(n_y)])
    left = max(0.01, deadline - time.monotonic() - 0.05)
    res = milp(c, constraints=[LinearConstraint(A_rows, lb, ub)], integrality=integrality,
               bounds=Bounds(0, 1), options={"time_limit": left, "mip_rel_gap": 1e-9})
    status = {0: "optimal", 1: "time limit", 2: "infeasible"}.get(res.status, "failed")
    x = None if res.x is None else np.round(res.x[:n_x]).astype(bool)
    return status, x


def _covered_weight(coverage, weights, rows) -> float:
    cov = sp.csr_matrix(coverage, dtype=bool)
    if len(rows) == 0:
        return 0.0
    hit = np.asarray(cov[np.asarray(rows)].sum(axis=0)).ravel() > 0
    return float(np.asarray(weights, dtype=float)[hit].sum())


def _max_cover_rows(coverage, weights, k: int, deadline: float):
    """(status, chosen rows or None) of the MCLP MILP; runs in the deadline worker."""
    red, gw, rows = _reduce(coverage, weights)
    n_x, n_y = red.shape
    if n_x == 0:
        return "optimal", np.zeros(0, dtype=np.int64)
    scale = gw.sum()
    # variables [x (rows), y (point groups)]: max sum w y  s.t.  y_g <= sum_{rows covering g} x,  sum x <= k
    a1 = sp.hstack([-red.T, sp.identity(n_y)])
    a2 = sp.hstack([sp.csr_matrix(np.ones((1, n_x))), sp.csr_matrix((1, n_y))])
    A = sp.vstack([a1, a2]).tocsr()
    lb = np.full(n_y + 1, -np.inf)
    ub = np.concatenate([np.zeros(n_y), [min(int(k), n_x)]])
    c = np.concatenate([np.zeros(n_x), -gw / scale])
    status, x = _milp(c, A, lb, ub, n_x, n_y, deadline)
    return status, None if x is None else rows[x]


def _min_sites_rows(coverage, weights, need: float, max_sites: int | None, deadline: float):
    """(status, chosen rows or None) of the fewest-sites MILP; runs in the deadline worker."""
    red, gw, rows = _reduce(coverage, weights)
    n_x, n_y = red.shape
    if gw.sum() < need * (1 - 1e-12) or n_x == 0:
        return "infeasible", None
    scale = gw.sum()
    a1 = sp.hstack([-red.T, sp.identity(n_y)])
    a2 = sp.hstack([sp.csr_matrix((1, n_x)), sp.csr_matrix(gw[None, :] / scale)])
    blocks = [a1, a2]
    lb = [np.full(n_y, -np.inf), [need / scale * (1 - 1e-12)]]
    ub = [np.zeros(n_y), [np.inf]]
    if max_sites is not None:
        blocks.append(sp.hstack([sp.csr_matrix(np.ones((1, n_x))), sp.csr_matrix((1, n_y))]))
        lb.append([-np.inf])
        ub.append([float(max_sites)])
    A = sp.vstack(blocks).tocsr()
    c = np.concatenate([np.ones(n_x), np.zeros(n_y)])
    status, x = _milp(c, A, np.concatenate(lb), np.concatenate(ub), n_x, n_y, deadline)
    return status, None if x is None else rows[x]


def _exact(fn, *args, time_limit_s: float):
    """Run an exact solver in the deadline worker: (status, rows); ``time limit`` when it was stopped."""
    import scipy.optimize  # noqa: F401  (imported here once, so that forked workers start with it)

    nnz = sp.csr_matrix(args[0]).nnz
    if nnz > exact_max_pairs(time_limit_s):
        log.info("exact check not run: %d candidate-resident pairs, more than %d (it would not finish in %g s; "
                 "a longer --time-limit-s tries larger problems, up to %d pairs)", nnz, exact_max_pairs(time_limit_s),
                 time_limit_s, EXACT_MAX_PAIRS)
        return "too large", None
    try:
        return call_with_deadline(fn, *args, time.monotonic() + time_limit_s, time_limit_s=time_limit_s)
    except TimedOut:
        log.info("the exact check was stopped at its %g s time limit", time_limit_s)
        return "time limit", None


def solve_max_cover(coverage, weights, *, k: int, time_limit_s: float = 10.0) -> Exact:
    """The exact maximal covering location problem: the ``k`` rows covering the most weight (MILP).

    The MILP (HiGHS) runs in a worker process that is stopped at ``time_limit_s`` whatever the
    solver does (:func:`lifecircle.plan.deadline.call_with_deadline`): the call returns within
    the limit plus half a second, with status ``"time limit"`` when it was not solved.

    Examples
    --------
    Greedy takes the middle row first (4 people), then only 1 more; the two outer rows
    together cover all 6:

    >>> cov = sp.csr_matrix(np.array([[0, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1]], dtype=bool))
    >>> greedy_cover(cov, np.ones(6), k=2)[1].tolist()
    [4.0, 1.0]
    >>> e = solve_max_cover(cov, np.ones(6), k=2)
    >>> e.status, sorted(e.chosen.tolist()), e.covered_weight
    ('optimal', [1, 2], 6.0)
    """
    if k is None or int(k) < 1:
        raise InputDataError(f"k must be at least 1 (got {k!r})")
    status, chosen = _exact(_max_cover_rows, coverage, weights, int(k), time_limit_s=time_limit_s)
    if chosen is None:
        return Exact(np.zeros(0, dtype=np.int64), 0.0, status)
    return Exact(chosen, _covered_weight(coverage, weights, chosen), status)


def solve_min_sites(coverage, weights, *, need: float, time_limit_s: float = 10.0,
                    max_sites: int | None = None) -> Exact:
    """The fewest rows that together cover at least ``need`` weight (MILP); ``infeasible`` if none can.

    Runs, like :func:`solve_max_cover`, in a worker stopped at ``time_limit_s``.

    Examples
    --------
    >>> cov = sp.csr_matrix(np.array([[0, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1]], dtype=bool))
    >>> e = solve_min_sites(cov, np.ones(6), need=6)
    >>> e.status, sorted(e.chosen.tolist())
    ('optimal', [1, 2])
    >>> solve_min_sites(cov, np.ones(6), need=7).status
    'infeasible'
    """
    if need <= 0:
        return Exact(np.zeros(0, dtype=np.int64), 0.0, "optimal")
    status, chosen = _exact(_min_sites_rows, coverage, weights, float(need), max_sites, time_limit_s=time_limit_s)
    if chosen is None:
        return Exact(np.zeros(0, dtype=np.int64), 0.0, status)
    covered = _covered_weight(coverage, weights, chosen)
    if covered < need * (1 - 1e-9):  # the solver's feasibility tolerance let a short plan through
        return Exact(chosen, covered, "failed")
    return Exact(chosen, covered, status)


# ---------------------------------------------------------------------------- the problem


@dataclass(frozen=True, eq=False)
class _Problem:
    category: str
    minutes: float
    target_pos: np.ndarray  # positions (in analysis.residents) of the residents to cover
    weights: np.ndarray
    candidates: Candidates
    coverage: sp.csr_matrix  # candidates x target residents
    columns: sp.csc_matrix | None = None  # the same matrix by columns (for greedy_cover), when at hand


def _empty_problem(category: str, minutes: float) -> _Problem:
    none = np.zeros(0)
    snap = Snap(np.zeros(0, dtype=np.int64), none, none, none, none)
    cands = Candidates(none, none, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=object), snap)
    return _Problem(category, minutes, np.zeros(0, dtype=np.int64), none, cands, sp.csr_matrix((0, 0), dtype=bool))


def _check_k(k: Any) -> int | None:
    if k is None:
        return None
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InputDataError(f"k must be a whole number of sites, at least 1 (got {k!r}); e.g. -k 5")
    return int(k)


def _check_time_limit(time_limit_s: Any) -> float:
    if isinstance(time_limit_s, bool) or not isinstance(time_limit_s, (int, float)) or not time_limit_s > 0:
        raise InputDataError(f"time_limit_s must be a positive number of seconds (got {time_limit_s!r}); "
                             "e.g. --time-limit-s 10")
    return float(time_limit_s)


def _check_target(target: Any, default: float) -> float:
    t = default if target is None else target
    if isinstance(t, bool) or not isinstance(t, (int, float, np.floating)) or not 0 < t <= 1:
        raise InputDataError(f"target must be a share in (0, 1] (got {target!r}); e.g. --target 0.85")
    return float(t)


def _units(analysis) -> pd.Series | None:
    res = analysis.residents
    return res["unit"] if "unit" in res.columns else None


def _area_mask(analysis, unit: str | None) -> np.ndarray:
    n = len(analysis.residents)
    if unit is None or unit == STUDY_AREA:
        return np.ones(n, dtype=bool)
    units = _units(analysis)
    if units is None:
        raise InputDataError(f"unit {unit!r}: this analysis has no units; rerun it with --units FILE")
    mask = (units == unit).to_numpy()
    if not mask.any():
        names = sorted(units.dropna().astype(str).unique())
        raise InputDataError(f"unknown unit {unit!r}: the units are {', '.join(names[:12])}"
                             f"{'…' if len(names) > 12 else ''}")
    return mask


def _build(analysis, category: str, minutes: float, area: np.ndarray, candidates, candidates_crs) -> _Problem:
    cfg = analysis.config
    res = analysis.residents
    pop = res["population"].to_numpy(dtype=float)
    graph = analysis.times.graph
    if graph is None:
        raise InputDataError("site planning needs the access graph, which a tiled run (lifecircle.scale.partition) does "
                             "not keep and Analysis.areas(release=True) drops; plan on an analysis made without "
                             "walking_times_fn, or on lifecircle.load_analysis(folder)")
    target = _targets(analysis, category, minutes, area)
    mpm = cfg.walk_speed_kmh * 1000.0 / 60.0
    if candidates is None:
        nodes = _all_node_candidates(analysis.network, cfg.max_snap_m) if target.size else \
            candidates_from_nodes(analysis.network, [], max_snap_m=cfg.max_snap_m)
        cov, columns = coverage_matrix(analysis, nodes, target, minutes=minutes, drop_dominated=True,
                                       _shared=_shared_searches(analysis, minutes) if target.size else None,
                                       _with_columns=True)
        return_freed_memory()
        # only the nodes that cover someone, and of those the ones whose catchment no neighbour's contains
        rows = np.flatnonzero(np.diff(cov.indptr) > 0)
        cands = _rows(nodes, rows)
        cov = sp.csr_matrix((cov.data[: cov.indptr[-1]], cov.indices, np.r_[0, cov.indptr[rows + 1]]),
                            shape=(len(rows), cov.shape[1]))  # empty rows out: the same arrays, no copy
        if columns is not None:  # renumber its rows the same way, in place, a slice at a time
            new_row = np.full(len(nodes), -1, dtype=columns.indices.dtype)
            new_row[rows] = np.arange(len(rows), dtype=new_row.dtype)
            idx = columns.indices
            for lo in range(0, len(idx), 1 << 22):
                idx[lo:lo + (1 << 22)] = new_row[idx[lo:lo + (1 << 22)]]
            columns = sp.csc_matrix((columns.data, idx, columns.indptr), shape=cov.shape)
        log.info("%s: %d of %d network nodes can cover an uncovered resident and are not contained in a neighbour",
                 category, len(rows), len(nodes))
    else:
        cands = candidates_from_points(analysis.network, candidates, crs=candidates_crs, max_snap_m=cfg.max_snap_m)
        cov, columns = coverage_matrix(analysis, cands, target, minutes=minutes), None
    log.info("%s: %d candidate sites (%s) for %d uncovered resident points; %g min = %.0f m at %g km/h",
             category, len(cands), cands.source, len(target), minutes, minutes * mpm, cfg.walk_speed_kmh)
    return _Problem(category, minutes, target, pop[target], cands, cov, columns)


def _sites_table(problem: _Problem, analysis, chosen, gains, *, unit_label: str, population: float,
                 covered_before: float):
    import geopandas as gpd

    c = problem.candidates
    cum = covered_before + np.cumsum(gains)
    data = {
        "rank": np.arange(1, len(chosen) + 1, dtype=np.int64),
        "category": problem.category,
        "unit": unit_label,
        "lon": c.lon[chosen],
        "lat": c.lat[chosen],
        "node": c.node[chosen].astype(np.int64),
        "osm_node_id": analysis.network.node_id[c.node[chosen]].astype(np.int64),
        "candidate": c.ident[chosen],
        "snap_dist_m": np.round(c.snap.dist_m[chosen], 2),
        "newly_covered_population": gains,
        "cumulative_covered_population": cum,
        "cumulative_share": cum / population if population > 0 else np.full(len(chosen), np.nan),
    }
    if c.name is not None:
        data["name"] = c.name[chosen]
    if c.lon_input is not None:
        data.update(lon_input=c.lon_input[chosen], lat_input=c.lat_input[chosen], input_crs=c.input_crs)
    if c.columns is not None:
        for col in c.columns.columns:
            data[col] = c.columns[col].to_numpy()[chosen]
    return gpd.GeoDataFrame(data, geometry=gpd.points_from_xy(c.lon[chosen], c.lat[chosen]), crs=4326)


def suggest_sites(
    analysis,
    *,
    category: str,
    k: int | None = None,
    target: float | None = None,
    candidates: Any = None,
    candidates_crs: Any = None,
    minutes: float | None = None,
    unit: str | None = None,
    exact: bool = False,
    time_limit_s: float = 10.0,
):
    """Choose new sites that cover the most currently-uncovered residents (greedy MCLP, CELF).

    Parameters
    ----------
    analysis : Analysis
        The result of :func:`lifecircle.analyze`.
    category : str
        One of the analysed categories.
    k : int, optional
        Most sites to choose. Without ``k`` (and without ``target``) it chooses sites until the
        area reaches ``analysis.config.target``.
    target : float, optional
        Stop once the area's share reaches this (0..1].
    candidates : path or GeoDataFrame, optional
        Candidate points; default every network node within ``minutes`` of an uncovered
        resident (see the module docstring).
    candidates_crs : str, int or pyproj.CRS, optional
        CRS of the candidate points (``wgs84``, ``gcj02``, ``bd09``, EPSG).
    minutes : float, optional
        Walking-time threshold; default the analysis' headline one.
    unit : str, optional
        Plan for this unit's residents only (shares are of the unit's population).
    exact : bool
        Also solve the exact MCLP for the same number of sites (MILP, ``time_limit_s``) and put
        it in ``attrs["exact"]``.

    Returns
    -------
    GeoDataFrame
        One row per site in the order chosen (:data:`SITE_COLUMNS`), EPSG:4326 points.
        ``cumulative_covered_population`` is the area's covered population after adding
        sites 1..rank (today's coverage included), ``cumulative_share`` the same as a share of the
        area's population. ``attrs`` holds ``population``, ``covered_before``, ``share_before``,
        ``share_after``, ``target``, ``reached``, ``max_share`` (all coverable people covered) and
        ``candidates``. Empty (with a log message) when nobody is uncovered, or when the target
        is met already and no ``k`` was given.

    Examples
    --------
    >>> from lifecircle import analyze
    >>> from lifecircle.datasets import toy_town_osm
    >>> a = analyze(toy_town_osm())
    >>> s = suggest_sites(a, category="health", k=1)
    >>> s[["rank", "newly_covered_population"]].round(1).values.tolist(), round(s.attrs["share_before"], 3)
    ([[1.0, 438.4]], 0.442)
    >>> float(s.cumulative_share.iloc[0])
    1.0
    """
    cfg = analysis.config
    check_category(analysis, category, allow_all=False)
    m = check_minutes(analysis, minutes)
    k = _check_k(k)
    _check_time_limit(time_limit_s)
    goal = None if (k is not None and target is None) else _check_target(target, cfg.target)
    area = _area_mask(analysis, unit)
    unit_label = STUDY_AREA if unit is None else str(unit)
    res = analysis.residents
    pop = res["population"].to_numpy(dtype=float)
    covered_now = res[minutes_column(category)].to_numpy(dtype=float) <= m
    population = float(pop[area].sum())
    before = float(pop[area & covered_now].sum())
    share_before = before / population if population > 0 else float("nan")
    need = None if goal is None else goal * population * (1 - _SHARE_TOL) - before
    if need is not None and need <= 0:
        log.info("%s in %s: %.1f %% covered already meets the target %.0f %%: no site needed",
                 category, unit_label, 100 * share_before, 100 * goal)
        if not (area & ~covered_now & (pop > 0)).any():
            log.info("%s in %s: already 100 %% covered within %g min: no site to suggest", category, unit_label, m)
        out = _sites_table(_empty_problem(category, m), analysis, np.zeros(0, dtype=np.int64), np.zeros(0),
                           unit_label=unit_label, population=population, covered_before=before)
        out.attrs.update({"category": category, "unit": unit_label, "minutes": m, "population": population,
                          "covered_before": before, "share_before": share_before, "share_after": share_before,
                          "target": goal, "reached": True, "max_share": float("nan"), "candidates": 0})
        return out
    problem = _build(analysis, category, m, area, candidates, candidates_crs)
    coverable = _reached(problem.coverage)
    max_share = (before + float(problem.weights[coverable].sum())) / population if population > 0 else float("nan")
    if problem.target_pos.size == 0:
        uncovered = area & ~covered_now & (pop > 0)
        if not uncovered.any():
            log.info("%s in %s: already 100 %% covered within %g min: no site to suggest", category, unit_label, m)
        else:
            log.info("%s in %s: the %.0f uncovered people are farther than max_snap_m from every street; "
                     "no site can cover them", category, unit_label, float(pop[uncovered].sum()))
    chosen, gains = greedy_cover(problem.coverage, problem.weights, k=k, need=need, _columns=problem.columns)
    out = _sites_table(problem, analysis, chosen, gains, unit_label=unit_label, population=population,
                       covered_before=before)
    share_after = (before + float(gains.sum())) / population if population > 0 else float("nan")
    reached = goal is not None and share_after >= goal - _SHARE_TOL
    if goal is not None and not reached and k is None:
        log.warning("%s in %s: the target %.0f %% is not reachable with these candidates: at most %.1f %% "
                    "(%d sites)", category, unit_label, 100 * goal, 100 * share_after, len(chosen))
    out.attrs.update({
        "category": category, "unit": unit_label, "minutes": m, "population": population,
        "covered_before": before, "share_before": share_before, "share_after": share_after,
        "target": goal, "reached": bool(reached), "max_share": max_share, "candidates": len(problem.candidates),
    })
    if exact and len(chosen):
        e = solve_max_cover(problem.coverage, problem.weights, k=len(chosen), time_limit_s=time_limit_s)
        out.attrs["exact"] = {
            "sites": int(len(e.chosen)), "status": e.status,
            "covered_population": before + e.covered_weight,
            "share": (before + e.covered_weight) / population if population > 0 else float("nan"),
            "greedy_gap_population": e.covered_weight - float(gains.sum()) if e.optimal else None,
        }
    log.info("%s in %s: %d sites lift coverage within %g min from %.1f %% to %.1f %%", category, unit_label,
             len(chosen), m, 100 * share_before, 100 * share_after)
    return out


@dataclass(frozen=True, eq=False)
class SitePlan:
    """The result of :func:`plan_sites`: how many sites each area needs (``table``) and where (``sites``)."""

    table: pd.DataFrame
    sites: Any


def plan_sites(
    analysis,
    *,
    category: str,
    target: float | None = None,
    candidates: Any = None,
    candidates_crs: Any = None,
    minutes: float | None = None,
    exact: bool = True,
    time_limit_s: float = 10.0,
) -> SitePlan:
    """How many new sites the study area and each unit need to reach the target, and where.

    Greedy (as :func:`suggest_sites`) runs on each area's own residents until its share reaches
    ``target``; with ``exact`` the MILP finds the true minimum within ``time_limit_s`` per area.

    Returns
    -------
    SitePlan
        ``table``: :data:`NEEDED_COLUMNS`, the study area first, then each unit.
        ``sites_needed`` is <NA> when the target is not reachable with the candidates
        (``reachable`` False; ``share_after`` then gives the best share the candidates reach, with
        every useful site). ``exact_sites`` and ``gap`` (greedy minus exact) are filled when the
        MILP was solved to optimality; ``exact_status`` says ``optimal``, ``not solved within
        N s`` (the MILP is stopped at ``time_limit_s``, whatever the solver does), ``not run: more
        than 600,000 candidate-resident pairs for a 10 s limit`` (:func:`exact_max_pairs`), ``infeasible``,
        ``failed`` or ``not run``. ``sites``: every area's sites (:data:`SITE_COLUMNS`,
        ``unit`` = the area whose plan it belongs to; a site may appear in several plans).

    Examples
    --------
    >>> from lifecircle import analyze
    >>> from lifecircle.datasets import toy_town_osm
    >>> plan = plan_sites(analyze(toy_town_osm()), category="health")
    >>> plan.table[["unit", "sites_needed", "exact_sites", "reachable"]].values.tolist()
    [['study_area', 1, 1, True]]
    >>> plan.sites[["rank", "unit"]].values.tolist()
    [[1, 'study_area']]
    """
    import geopandas as gpd

    cfg = analysis.config
    check_category(analysis, category, allow_all=False)
    m = check_minutes(analysis, minutes)
    goal = _check_target(target, cfg.target)
    _check_time_limit(time_limit_s)
    res = analysis.residents
    pop = res["population"].to_numpy(dtype=float)
    covered_now = res[minutes_column(category)].to_numpy(dtype=float) <= m
    units = _units(analysis)
    areas: list[tuple[str, np.ndarray]] = [(STUDY_AREA, np.ones(len(res), dtype=bool))]
    if units is not None:
        for name in sorted(units.dropna().unique(), key=str):
            areas.append((str(name), (units == name).to_numpy()))
    if any(goal * pop[a].sum() * (1 - _SHARE_TOL) > pop[a & covered_now].sum() for _, a in areas):
        problem = _build(analysis, category, m, np.ones(len(res), dtype=bool), candidates, candidates_crs)
    else:
        problem = _empty_problem(category, m)
    rows, site_tables = [], []
    for name, area in areas:
        population = float(pop[area].sum())
        before = float(pop[area & covered_now].sum())
        share_before = before / population if population > 0 else float("nan")
        cols = np.flatnonzero(area[problem.target_pos])
        whole = len(cols) == problem.coverage.shape[1]
        sub = problem.coverage if whole else problem.coverage[:, cols]  # no copy
        sub_columns = None if problem.columns is None else (problem.columns if whole else problem.columns[:, cols])
        w = problem.weights[cols]
        need = goal * population * (1 - _SHARE_TOL) - before
        coverable = float(w[_reached(sub)].sum())
        reachable = need <= 0 or coverable >= need
        note = ""
        exact_sites, status = pd.NA, "not run"
        if need <= 0:
            chosen, gains = np.zeros(0, dtype=np.int64), np.zeros(0)
            note = "already meets the target" if population > 0 else "nobody lives here"
            exact_sites, status = 0, "optimal"
        else:
            chosen, gains = greedy_cover(sub, w, need=need if reachable else None, _columns=sub_columns)
            if not reachable:
                best = (before + float(gains.sum())) / population
                note = (f"not reachable with the candidates: at most {best:.1%} with {len(chosen)} sites")
            elif exact:
                e = solve_min_sites(sub, w, need=need, time_limit_s=time_limit_s, max_sites=len(chosen))
                status = {"time limit": f"not solved within {time_limit_s:g} s",
                          "too large": f"not run: more than {exact_max_pairs(time_limit_s):,} candidate-resident "
                                       f"pairs for a {time_limit_s:g} s limit"
                          }.get(e.status, e.status)
                if e.optimal:
                    exact_sites = int(len(e.chosen))
        share_after = (before + float(gains.sum())) / population if population > 0 else float("nan")
        n_sites = int(len(chosen)) if reachable else pd.NA
        gap = (n_sites - exact_sites) if (reachable and exact_sites is not pd.NA) else pd.NA
        rows.append((name, category, m, population, share_before, goal, n_sites, share_after, bool(reachable),
                     exact_sites, gap, status, note))
        sub_problem = _Problem(category, m, problem.target_pos[cols], w, problem.candidates, sub)
        site_tables.append(_sites_table(sub_problem, analysis, chosen, gains, unit_label=name,
                                        population=population, covered_before=before))
        log.info("%s in %s: %s sites to reach %.0f %% (from %.1f %%)%s", category, name,
                 n_sites if reachable else "no number of", 100 * goal, 100 * share_before,
                 f"; {note}" if note else "")
    table = pd.DataFrame(rows, columns=NEEDED_COLUMNS)
    for c in ("sites_needed", "exact_sites", "gap"):
        table[c] = table[c].astype("Int64")
    return SitePlan(table, gpd.GeoDataFrame(pd.concat(site_tables, ignore_index=True), crs=4326))


def sites_needed(
    analysis,
    *,
    category: str,
    target: float | None = None,
    candidates: Any = None,
    candidates_crs: Any = None,
    minutes: float | None = None,
    exact: bool = True,
    time_limit_s: float = 10.0,
) -> pd.DataFrame:
    """The per-area table of :func:`plan_sites`: unit, share_before, sites_needed, share_after, …

    >>> from lifecircle import analyze
    >>> from lifecircle.datasets import toy_town_osm
    >>> sites_needed(analyze(toy_town_osm()), category="health", exact=False).sites_needed.tolist()
    [1]
    """
    return plan_sites(analysis, category=category, target=target, candidates=candidates,
                      candidates_crs=candidates_crs, minutes=minutes, exact=exact, time_limit_s=time_limit_s).table


# ---------------------------------------------------------------------------- outputs


def sites_as_facilities(sites):
    """Suggested sites as a facility layer for :func:`lifecircle.analyze` / :func:`lifecircle.plan.scenario.scenario`.

    Sites stay unnamed, so the facility deduplication never merges two of them.
    """
    import geopandas as gpd

    return gpd.GeoDataFrame({
        "category": sites["category"].to_numpy(dtype=object),
        "subcategory": "suggested",
        "name": None,
        "source": "suggested",
    }, geometry=gpd.points_from_xy(sites["lon"], sites["lat"]), crs=4326)


def site_plans(
    analysis,
    *,
    categories: Iterable[str] | None = None,
    k: int | None = None,
    candidates: Any = None,
    candidates_crs: Any = None,
    per_unit: bool = True,
    exact: bool = True,
    time_limit_s: float = 10.0,
) -> tuple[Any, pd.DataFrame | None, Any]:
    """Plan new sites for several categories (what ``lifecircle gaps`` does; it writes them with
    :func:`lifecircle.present.outputs.write_site_plans`).

    With ``k``: the ``k`` best sites per category for the study area (:func:`suggest_sites`).
    Without: the sites each category needs to reach the target, for the study area and, with
    ``per_unit``, for each unit (:func:`plan_sites`).

    Returns
    -------
    (sites, needed, by_unit)
        The study area's sites (GeoDataFrame), the per-area table (or None) and the units' own
        sites (GeoDataFrame, or None when there are none).

    Examples
    --------
    >>> from lifecircle import analyze
    >>> from lifecircle.datasets import toy_town_osm
    >>> sites, needed, by_unit = site_plans(analyze(toy_town_osm()), exact=False)
    >>> sites.category.tolist(), by_unit
    (['health'], None)
    >>> needed[["category", "sites_needed"]].values.tolist()  # the other three meet the target already
    [['health', 1], ['elderly_care', 0], ['culture', 0], ['sports', 0]]
    """
    import geopandas as gpd

    cats = list(categories) if categories else list(analysis.config.categories)
    study, by_unit, tables = [], [], []
    with _sharing_searches(analysis, cats if candidates is None else ()):
        _plan_each(analysis, cats, study, by_unit, tables, k=k, candidates=candidates, candidates_crs=candidates_crs,
                   per_unit=per_unit, exact=exact, time_limit_s=time_limit_s)
    sites = gpd.GeoDataFrame(pd.concat(study, ignore_index=True), geometry="geometry", crs=4326)
    needed = pd.concat(tables, ignore_index=True) if tables else None
    units = [u for u in by_unit if len(u)]
    unit_sites = gpd.GeoDataFrame(pd.concat(units, ignore_index=True), geometry="geometry", crs=4326) if units else None
    return sites, needed, unit_sites


def _plan_each(analysis, cats, study, by_unit, tables, *, k, candidates, candidates_crs, per_unit, exact, time_limit_s):
    """site_plans' loop over the categories (appends to ``study``, ``by_unit`` and ``tables``)."""
    for cat in cats:
        if k is not None:
            study.append(suggest_sites(analysis, category=cat, k=k, candidates=candidates,
                                       candidates_crs=candidates_crs, exact=exact, time_limit_s=time_limit_s))
            continue
        plan = plan_sites(analysis, category=cat, candidates=candidates, candidates_crs=candidates_crs,
                          exact=exact, time_limit_s=time_limit_s)
        table = plan.table if per_unit else plan.table[plan.table.unit == STUDY_AREA]
        tables.append(table)
        study.append(plan.sites[plan.sites.unit == STUDY_AREA])
        if per_unit:
            by_unit.append(plan.sites[plan.sites.unit != STUDY_AREA])
