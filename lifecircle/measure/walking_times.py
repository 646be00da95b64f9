"""Walking minutes from every resident to the nearest facility of each category.

The engine follows pandana's life cycle — build once, then one query per category:

1. :func:`build_access_graph` inserts every snapped point into the network: each edge that
   holds points is split at their projections, and each point gets its own node joined to its
   projection by the access leg. The result is one symmetric scipy CSR matrix.
2. :meth:`AccessGraph.distances_from` runs **one** multi-source Dijkstra per category
   (``scipy.sparse.csgraph.dijkstra`` with ``min_only=True`` and a ``limit``) from the
   facilities' own nodes, so a resident's distance includes both access legs.

   When the graph knows which points can be sources (``build_access_graph(..., sources=)``: the
   facilities), the search runs on a smaller graph: the network with only those points inserted
   (a city's residents are most of the access graph's nodes, 0.7M of 1.7M at 1M street nodes).
   Every other point is a leaf on its street, so its distance follows exactly, without a search:
   the nearer end of the piece of street it lies on, plus the way along the piece and its leg.

Invariant: node indices 0..n-1 are the network's nodes (same order as ``WalkNetwork``); the
projection nodes follow, then the point nodes, in the order the points were given.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra

from ..config import AnalysisConfig, minutes_column
from ..errors import EmptyResultError
from ..read.network import WalkNetwork
from .snapping import Snap, snap_points

log = logging.getLogger("lifecircle")

__all__ = ["AccessGraph", "build_access_graph", "check_snaps", "snap_all", "times_from_snaps", "walking_times",
           "WalkingTimes"]


@dataclass(frozen=True, eq=False)
class AccessGraph:
    """The walking network with the snapped points inserted (see module docstring).

    ``point_node[i]`` is the node of point ``i`` (-1 if it did not snap); ``proj_node[i]`` the
    node where its access leg meets the street.
    """

    matrix: sp.csr_matrix
    n_network_nodes: int
    point_node: np.ndarray
    proj_node: np.ndarray
    # for isochrones: the edge (of the network) and position of every projection node
    proj_edge: np.ndarray
    proj_t: np.ndarray
    # for searches from points (``sources`` of build_access_graph): the network, each projection node's
    # access leg, and the points that may be sources; the smaller graph is made on first use
    network: WalkNetwork | None = field(default=None, repr=False)
    leg_m: np.ndarray | None = field(default=None, repr=False)
    source_points: np.ndarray | None = field(default=None, repr=False)
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def n_nodes(self) -> int:
        return self.matrix.shape[0]

    def distances_from(self, sources: np.ndarray, *, limit_m: float = np.inf) -> np.ndarray:
        """Metres from the nearest of ``sources`` (node indices) to every node; ``inf`` beyond ``limit_m``."""
        sources = np.unique(np.asarray(sources, dtype=np.int64))
        sources = sources[sources >= 0]
        if sources.size == 0:
            return np.full(self.n_nodes, np.inf)
        if self.source_points is not None:
            red = self._sources_graph()
            pos = np.searchsorted(red.full_nodes, sources)
            pos = np.minimum(pos, red.full_nodes.size - 1)
            if red.full_nodes.size and (red.full_nodes[pos] == sources).all():
                d = dijkstra(red.graph.matrix, directed=True, indices=red.nodes[pos], min_only=True, limit=limit_m)
                return self._from_network_distances(red, d, limit_m)
        return dijkstra(self.matrix, directed=True, indices=sources, min_only=True, limit=limit_m)

    def _sources_graph(self) -> "_SourcesGraph":
        """The network with only :attr:`source_points` inserted (made once)."""
        red = self._cache.get("sources")
        if red is None:
            red = self._cache["sources"] = _SourcesGraph.make(self)
        return red

    def _from_network_distances(self, red: "_SourcesGraph", d: np.ndarray, limit_m: float) -> np.ndarray:
        """Every node's distance in this graph from ``d``, the distances in ``red`` (see the module docstring)."""
        n, k = self.n_network_nodes, self.proj_edge.size
        out = np.empty(self.n_nodes)
        out[:n] = d[:n]
        # each projection node lies on the piece of its edge between two nodes of ``red``: the edge's ends, or
        # the projections of sources on the same edge (red.a / red.b: node and position, per projection)
        along = self.network.length_m[self.proj_edge]
        t = self.proj_t
        proj = np.minimum(d[red.a] + (t - red.ta) * along, d[red.b] + (red.tb - t) * along)
        proj[proj > limit_m] = np.inf
        out[n:n + k] = proj
        point = proj + self.leg_m
        point[point > limit_m] = np.inf
        out[n + k:] = point
        out[red.full_nodes] = d[red.nodes]  # the sources themselves (0, not their leg back and forth)
        return out

    def positions(self, network: WalkNetwork) -> tuple[np.ndarray, np.ndarray]:
        """Metric ``x``, ``y`` of every node: the network's, and each point's node at its projection.

        No walk of ``d`` metres takes a node farther than ``d`` from its start (the streets are
        straight segments, a point's leg is at least as long as the way to its projection), so
        :func:`lifecircle.measure.bounded.local_dijkstra` may search only nearby nodes.
        """
        u, v = network.u[self.proj_edge], network.v[self.proj_edge]
        t = np.asarray(self.proj_t, dtype=float)
        px = network.x[u] + t * (network.x[v] - network.x[u])
        py = network.y[u] + t * (network.y[v] - network.y[u])
        return np.concatenate([network.x, px, px]), np.concatenate([network.y, py, py])

    def to_networkx(self):
        """The access graph as a networkx Graph with ``length`` weights (for checks and export)."""
        import networkx as nx

        coo = sp.triu(self.matrix, format="coo")
        g = nx.Graph()
        g.add_nodes_from(range(self.n_nodes))
        g.add_weighted_edges_from(zip(coo.row.tolist(), coo.col.tolist(), coo.data.tolist()), weight="length")
        return g


@dataclass(frozen=True, eq=False)
class _SourcesGraph:
    """:meth:`AccessGraph._sources_graph`: the network with only the source points inserted.

    ``full_nodes`` (sorted) are the sources' point nodes in the access graph, ``nodes`` theirs in ``graph``;
    ``a``/``ta`` and ``b``/``tb`` are, for each projection node of the access graph, the nodes of ``graph``
    (and their positions along the edge) at the two ends of the piece of street it lies on.
    """

    graph: AccessGraph
    full_nodes: np.ndarray
    nodes: np.ndarray
    a: np.ndarray
    ta: np.ndarray
    b: np.ndarray
    tb: np.ndarray

    @classmethod
    def make(cls, full: AccessGraph) -> "_SourcesGraph":
        net, n, k = full.network, full.n_network_nodes, full.proj_edge.size
        loc = full.point_node[full.source_points]
        loc = np.unique(loc[loc >= 0])
        j = loc - (n + k)  # each source's projection, in the order of the access graph's points
        edge, t = full.proj_edge[j], full.proj_t[j]
        zeros = np.zeros(j.size)
        graph = build_access_graph(net, Snap(edge, t, full.leg_m[j], zeros, zeros))
        # the piece of each projection: by default its whole edge ...
        e = full.proj_edge
        a, b = net.u[e].astype(np.int64), net.v[e].astype(np.int64)
        ta, tb = np.zeros(k), np.ones(k)
        # ... unless a source lies on the same edge: then the nearest sources on either side (a source at the
        # same position comes first, so a source's own projection is its piece's start, at no distance)
        touched = np.zeros(net.n_edges, dtype=bool)
        touched[edge] = True
        sel = np.flatnonzero(touched[e])
        if sel.size:
            m = edge.size
            E = np.concatenate([edge, e[sel]])
            T = np.concatenate([t, full.proj_t[sel]])
            order = np.lexsort((np.arange(E.size) >= m, T, E))
            split = order < m
            q = np.arange(order.size)
            prev = np.maximum.accumulate(np.where(split, q, -1))
            nxt = np.minimum.accumulate(np.where(split, q, order.size)[::-1])[::-1]
            at = np.flatnonzero(~split)
            row = sel[order[at] - m]
            p, x = prev[at], nxt[at]
            ok = p >= 0
            ok[ok] = E[order[p[ok]]] == E[order[at[ok]]]
            a[row[ok]], ta[row[ok]] = n + order[p[ok]], T[order[p[ok]]]
            ok = x < order.size
            ok[ok] = E[order[x[ok]]] == E[order[at[ok]]]
            b[row[ok]], tb[row[ok]] = n + order[x[ok]], T[order[x[ok]]]
        return cls(graph, loc, graph.point_node, a, ta, b, tb)


def build_access_graph(network: WalkNetwork, snap: Snap, *, sources: np.ndarray | None = None) -> AccessGraph:
    """Insert snapped points into the network (vectorised; no per-point Python loop).

    Examples
    --------
    A 200 m street 0 — 1 with one point 30 m off its middle: the point's node is 130 m from
    both ends.

    >>> net = WalkNetwork.from_lonlat([121.40, 121.4021], [31.20, 31.20], [0], [1])
    >>> s = snap_points(net, [121.40105], [31.20027])
    >>> g = build_access_graph(net, s)
    >>> d = g.distances_from(g.point_node)
    >>> [round(float(d[0])), round(float(d[1]))]
    [130, 130]
    """
    n = network.n_nodes
    ok = np.flatnonzero(snap.edge >= 0)
    k = ok.size
    e = snap.edge[ok]
    t = snap.t[ok]
    acc = snap.dist_m[ok]
    proj = n + np.arange(k)
    loc = n + k + np.arange(k)

    order = np.lexsort((t, e))
    e_s, t_s, proj_s = e[order], t[order], proj[order]
    first = np.ones(k, dtype=bool)
    first[1:] = e_s[1:] != e_s[:-1]
    last = np.ones(k, dtype=bool)
    last[:-1] = e_s[1:] != e_s[:-1]
    prev_node = np.where(first, network.u[e_s], np.roll(proj_s, 1))
    prev_t = np.where(first, 0.0, np.roll(t_s, 1))
    seg_len = network.length_m[e_s]

    touched = np.zeros(network.n_edges, dtype=bool)
    touched[e] = True
    keep = ~touched
    rows = [network.u[keep], prev_node, proj_s[last], proj, ]
    cols = [network.v[keep], proj_s, network.v[e_s[last]], loc]
    data = [network.length_m[keep], (t_s - prev_t) * seg_len, (1.0 - t_s[last]) * seg_len[last], acc]
    r = np.concatenate(rows)
    c = np.concatenate(cols)
    w = np.concatenate(data)
    size = n + 2 * k
    # symmetric, explicit zeros kept (zero-length pieces are real edges)
    m = sp.csr_matrix((np.concatenate([w, w]), (np.concatenate([r, c]), np.concatenate([c, r]))), shape=(size, size))
    point_node = np.full(len(snap), -1, dtype=np.int64)
    point_node[ok] = loc
    proj_node = np.full(len(snap), -1, dtype=np.int64)
    proj_node[ok] = proj
    if sources is None:
        return AccessGraph(m, n, point_node, proj_node, e, t)
    return AccessGraph(m, n, point_node, proj_node, e, t, network, acc, np.asarray(sources, dtype=np.int64))


@dataclass(frozen=True, eq=False)
class WalkingTimes:
    """Result of :func:`walking_times`: minutes per resident and how every point snapped."""

    minutes: pd.DataFrame  # one column minutes_to_<category> per category, one row per resident
    resident_snap: Snap
    facility_snap: Snap
    graph: AccessGraph
    n_residents: int
    facility_category: np.ndarray
    distances_m: dict[str, np.ndarray]  # per category, metres from the nearest facility to every node


def check_snaps(res_snap: Snap, fac_snap: Snap, categories: np.ndarray, config: AnalysisConfig) -> None:
    """Stop with the fix when no resident, or no facility of an analysed category, reaches a street."""
    if len(res_snap) and not res_snap.snapped.any():
        raise EmptyResultError(
            f"no resident is within {config.max_snap_m:g} m of a walkable street (nearest: "
            f"{np.nanmin(res_snap.dist_m):.0f} m); the population and the network do not overlap — check "
            "their CRS (e.g. --population-crs gcj02) and that the OSM file covers the area"
        )
    for cat in config.categories:
        if not ((categories == cat) & fac_snap.snapped).any():
            n_all = int((categories == cat).sum())
            why = (f"none of its {n_all} facilities is within {config.max_snap_m:g} m of a walkable street"
                   if n_all else "no facility was found")
            others = ",".join(c for c in config.categories if c != cat)
            raise EmptyResultError(
                f"category {cat!r}: {why}; add facilities with --facilities FILE, or analyse the other "
                f"categories with --categories (e.g. --categories {others})"
            )


def snap_all(network: WalkNetwork, residents, facilities, config: AnalysisConfig):
    """Snap residents and facilities in one vectorised pass and check them (:func:`check_snaps`).

    Returns ``(snap, resident_snap, facility_snap, categories)``: ``snap`` holds the residents
    first, then the facilities.
    """
    rx, ry = residents.geometry.x.to_numpy(), residents.geometry.y.to_numpy()
    fx, fy = facilities.geometry.x.to_numpy(), facilities.geometry.y.to_numpy()
    snap = snap_points(network, np.concatenate([rx, fx]), np.concatenate([ry, fy]), max_snap_m=config.max_snap_m,
                       main_component=config.snap_main_component)
    nr = len(rx)
    res_snap = Snap(*(a[:nr] for a in (snap.edge, snap.t, snap.dist_m, snap.x, snap.y)))
    fac_snap = Snap(*(a[nr:] for a in (snap.edge, snap.t, snap.dist_m, snap.x, snap.y)))
    cats = facilities["category"].to_numpy()
    check_snaps(res_snap, fac_snap, cats, config)
    return snap, res_snap, fac_snap, cats


def walking_times(network: WalkNetwork, residents, facilities, *, config: AnalysisConfig | None = None) -> WalkingTimes:
    """Minutes from each resident to the nearest facility of each category, on the network.

    Parameters
    ----------
    network : WalkNetwork
    residents : GeoDataFrame
        WGS84 points.
    facilities : GeoDataFrame
        WGS84 points with a ``category`` column.
    config : AnalysisConfig
        ``walk_speed_kmh``, ``max_snap_m``, ``categories`` and the search cut-off.

    Returns
    -------
    WalkingTimes
        ``minutes`` holds ``inf`` where no facility is reachable within
        ``config.cutoff_minutes`` (or the resident is more than ``max_snap_m`` from a street).

    Examples
    --------
    >>> import geopandas as gpd
    >>> from lifecircle import network_from_osm, facilities_from_osm
    >>> from lifecircle.datasets import toy_town_osm
    >>> net = network_from_osm(toy_town_osm())
    >>> fac = facilities_from_osm(toy_town_osm())
    >>> res = gpd.GeoDataFrame({"population": [10]}, geometry=gpd.points_from_xy([121.40], [31.20]), crs=4326)
    >>> wt = walking_times(net, res, fac)
    >>> round(float(wt.minutes["minutes_to_health"][0]), 2)  # 100 m along the street + 10 m access at 4 km/h
    1.65
    """
    cfg = config or AnalysisConfig()
    _, res_snap, fac_snap, cats = snap_all(network, residents, facilities, cfg)
    return times_from_snaps(network, res_snap, fac_snap, cats, config=cfg, index=residents.index)


def times_from_snaps(network: WalkNetwork, resident_snap: Snap, facility_snap: Snap, facility_category: np.ndarray,
                     *, config: AnalysisConfig, index: pd.Index | None = None) -> WalkingTimes:
    """:func:`walking_times` from points snapped already (the access graph, then one Dijkstra per category).

    ``walking_times(net, res, fac)`` is ``times_from_snaps`` of its own snaps: given the same snaps
    (e.g. those stored with a run, :mod:`lifecircle.measure.stored`) the minutes are the same to
    the last bit. ``index`` labels the rows of ``minutes`` (default 0..n-1).
    """
    cfg = config
    res_snap, fac_snap, cats = resident_snap, facility_snap, np.asarray(facility_category)
    snap = Snap(*(np.concatenate([getattr(res_snap, k), getattr(fac_snap, k)]) for k in ("edge", "t", "dist_m", "x", "y")))
    nr = len(res_snap)
    graph = build_access_graph(network, snap, sources=nr + np.arange(len(fac_snap)))
    fac_nodes = graph.point_node[nr:]
    out = {}
    dists = {}
    mpm = cfg.walk_speed_kmh * 1000.0 / 60.0
    res_nodes = graph.point_node[:nr]
    for cat in cfg.categories:
        src = fac_nodes[(cats == cat) & (fac_nodes >= 0)]
        d = graph.distances_from(src, limit_m=cfg.max_dist_m)
        dists[cat] = d
        m = np.full(nr, np.inf)
        m[res_nodes >= 0] = d[res_nodes[res_nodes >= 0]] / mpm
        out[minutes_column(cat)] = m
    minutes = pd.DataFrame(out, index=index if index is not None else pd.RangeIndex(nr))
    return WalkingTimes(minutes, res_snap, fac_snap, graph, nr, cats, dists)
