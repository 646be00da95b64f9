"""Service areas (isochrones) on the walking network: every point within a buffer of the reachable streets.

What a service area is
----------------------
Given a distance field ``d`` (metres from the nearest source to every node of an
:class:`~lifecircle.measure.walking_times.AccessGraph`) and a limit ``L = minutes × walk_speed_kmh × 1000 / 60``,
every edge ``(a, b)`` of length ``w`` is reachable

* from ``a`` for its first ``max(0, L − d_a)`` metres and from ``b`` for its last ``max(0, L − d_b)`` metres,
* as a whole when the two overlap (``(L − d_a) + (L − d_b) ≥ w``).

So the cut where the limit falls mid-edge is exact. Edges are straight segments in the
network's UTM CRS, so the cut point is a linear interpolation. The access graph's edges are the
network's edges **split at every snapped point's projection**, which lets the distances at those
projection nodes count. A source's own access leg (from a facility, or from the query point, to
the street) is reachable like any other edge. The legs of other points, such as residents, are
left out, so a service area does not depend on where the residents happen to be.

The service area is every point within ``buffer_m`` (straight line) of a street position reachable
within ``L``, and only those points. A point on a reached street is therefore at most ``L + buffer_m``
away along that street. A point across a river or a divided road can be inside the polygon and much
farther away on foot. ``area_km2`` is measured in the projected CRS, and the polygons are returned in
EPSG:4326.

Why ``buffer_m = 25``: a street line has no area, while the people and doors it serves sit
along it. 25 m on each side is about half the frontage depth of a street block, so the
buffers of two parallel streets one block apart almost meet. The same width is the edge buffer
in OSMnx's isochrone example (``edge_buff=25``) and the default of the R package walkability
(``walk_isochrone(buffer_m = 25, concave_ratio = 0.3)``). DRIGLUCoSE's network isochrones use 30 m.

How it is drawn
---------------
``method="grid"`` (the default; a raster surface as GOAT, R5/r5py and Valhalla draw theirs): a
regular grid of ``cell_m`` cells (:func:`grid_cell_m`: about 4 million cells over the study area,
5 m for a district, 20 m for a city of a million nodes). Every cell centre within ``buffer_m + cell_m``
of a street gets its **exact** distance to the reached parts of the streets near it (the cut mid-edge
included). For each category, every cell-street pair is visited once: a street reached whole from some
threshold on (a closed form of its end distances) writes its distance into that threshold's layer, a street
cut where the time runs out writes its distance to the reached parts at each threshold, and a running
minimum (per cell, then over the layers) gives each threshold's field, so the 5-minute area lies inside the
10-minute one. A compiled loop (numba; each category's while the one before is contoured) does it on
city-sized grids, numpy (``np.minimum.at`` over blocks of pairs) on small ones; both write the same fields,
kept as uint16 steps of about 1 mm. The polygons are the filled contours (contourpy, linear interpolation between cell centres) of
each field at ``buffer_m``, with holes where nothing is reached. A cell is never filled
across unreached space: a river without a bridge stays a hole, as with the exact method. The only error
is the interpolation between cell centres, which cuts the inner corners where two streets' buffers meet
(slightly larger areas) and the round caps at the cuts (slightly smaller): within :data:`GRID_TOLERANCE`
of ``"exact"`` (measured: +0.1 to +0.2 % at 5 m cells on the Shanghai sample and in Helsinki, up to
+1.7 % at 20 m on the tiled million-node city; ``benchmarks/isochrones.py``). One million nodes, 4
categories × 3 thresholds: about 5 CPU seconds and 0.7 GB over the analysis.

``method="exact"``: the reachable lines are buffered by ``buffer_m`` and merged (GEOS ``union_all``)
in the projected CRS. The round caps and joins are 32-gons inscribed in their circles, so a boundary
can fall up to ``buffer_m × (1 − cos(π/32)) ≈ 0.12 m`` short at 25 m. Exact, but minutes and
several GB at a million nodes (the merge).

``method="concave"`` draws instead a :func:`shapely.concave_hull` of the reached street positions
(the nodes and the mid-edge cut points), one hull per source's territory, buffered by ``buffer_m``.
That is smoother and fills the blocks. It can also bridge rivers and rail lines, so use it for display only.
"""

from __future__ import annotations

import logging
import functools
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import scipy.sparse as sp
import shapely
from scipy.sparse.csgraph import dijkstra

from ..config import DEFAULT_WALK_SPEED_KMH
from ..errors import CRSError, EmptyResultError, InputDataError
from ..read.files import atomic_path
from ..read.network import WalkNetwork
from ..measure.snapping import snap_points
from ..measure.walking_times import AccessGraph, WalkingTimes, build_access_graph

log = logging.getLogger("lifecircle")

__all__ = [
    "DEFAULT_BUFFER_M",
    "DEFAULT_CONCAVE_RATIO",
    "GRID_CELL_M",
    "GRID_TOLERANCE",
    "METHODS",
    "grid_cell_m",
    "service_areas",
    "facility_service_areas",
    "point_isochrones",
    "write_isochrones",
]

#: Half a street block's frontage depth (see the module docstring).
DEFAULT_BUFFER_M = 25.0
#: ``ratio`` of :func:`shapely.concave_hull` for ``method="concave"``: 0 is the tightest hull, 1 the
#: convex hull. 0.3 is also the default of R walkability's ``walk_isochrone`` (the same GEOS algorithm).
#: The hulls are 1.3-1.7 times the network area on the central-Shanghai drive sample, 1.1 in Helsinki.
DEFAULT_CONCAVE_RATIO = 0.3
#: The ways of drawing a service area (module docstring); ``"network"`` is the old name of ``"exact"``.
METHODS = ("grid", "exact", "concave")
_METHOD_ALIASES = {"network": "exact"}
#: Memory for one block of per-facility distance rows in :func:`facility_service_areas`.
_CHUNK_BYTES = 64 * 2**20
_QUAD_SEGS = 8


# --------------------------------------------------------------------------------------------
# the access graph as straight segments
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Segments:
    """Every edge of an access graph as a straight segment in the network's metric CRS."""

    a: np.ndarray  # node index of one end (a < b)
    b: np.ndarray
    length_m: np.ndarray
    ax: np.ndarray
    ay: np.ndarray
    bx: np.ndarray
    by: np.ndarray
    leg_node: np.ndarray  # the point node of an access leg, -1 for street edges


def _segments(graph: AccessGraph, network: WalkNetwork, point_x: np.ndarray, point_y: np.ndarray) -> _Segments:
    """Coordinates of every access-graph node, and its edges read from the CSR matrix.

    Node order (see :mod:`lifecircle.measure.walking_times`): network nodes, then one projection node per
    snapped point (on edge ``proj_edge`` at ``proj_t``), then the points' own nodes.
    """
    n = network.n_nodes
    k = len(graph.proj_edge)
    x = np.empty(graph.n_nodes)
    y = np.empty(graph.n_nodes)
    x[:n], y[:n] = network.x, network.y
    e, t = graph.proj_edge, graph.proj_t
    ux, uy = network.x[network.u[e]], network.y[network.u[e]]
    x[n:n + k] = ux + t * (network.x[network.v[e]] - ux)
    y[n:n + k] = uy + t * (network.y[network.v[e]] - uy)
    ok = graph.point_node >= 0
    x[graph.point_node[ok]] = np.asarray(point_x, dtype=float)[ok]
    y[graph.point_node[ok]] = np.asarray(point_y, dtype=float)[ok]
    coo = sp.triu(graph.matrix, k=1, format="coo")  # explicit zeros (zero-length pieces) are kept
    a = coo.row.astype(np.int64)
    b = coo.col.astype(np.int64)
    leg = np.where(b >= n + k, b, -1)  # a < b, and point nodes have the largest indices
    return _Segments(a, b, coo.data.astype(float), x[a], y[a], x[b], y[b], leg)


def _times_segments(times: WalkingTimes, network: WalkNetwork) -> _Segments:
    px = np.concatenate([times.resident_snap.x, times.facility_snap.x])
    py = np.concatenate([times.resident_snap.y, times.facility_snap.y])
    return _segments(times.graph, network, px, py)


@dataclass(frozen=True)
class _Edges:
    """The edges of an access graph (``a < b``) and their lengths: what :func:`_truncated` needs."""

    a: np.ndarray
    b: np.ndarray
    length_m: np.ndarray


def _graph_edges(graph: AccessGraph) -> _Edges:
    coo = sp.triu(graph.matrix, k=1, format="coo")
    return _Edges(coo.row.astype(np.int64), coo.col.astype(np.int64), coo.data.astype(float))


def _truncated(seg: _Segments | _Edges, d: np.ndarray, limit_m: float) -> bool:
    """Whether ``d`` came from a search stopped before ``limit_m``.

    A node is ``inf`` next to a finite node ``a`` although ``d_a + w ≤ limit_m``. This test is exact.
    If the search stopped at ``s < limit_m`` and some node has a true distance in ``(s, limit_m]``,
    the first ``inf`` node on its shortest path has such a neighbour.
    """
    da, db = d[seg.a], d[seg.b]
    slack = 1e-9 * max(limit_m, 1.0)
    fa, fb = np.isfinite(da), np.isfinite(db)
    bad = (fa & ~fb & (da + seg.length_m <= limit_m - slack)) | (fb & ~fa & (db + seg.length_m <= limit_m - slack))
    return bool(bad.any())


# --------------------------------------------------------------------------------------------
# reachable pieces, lines, polygons
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pieces:
    """Reachable parts of edges: straight lines ``(x0, y0) → (x1, y1)`` with a group id each.

    ``src0``/``src1`` label the source territory each end belongs to (for ``method="concave"``).
    """

    x0: np.ndarray
    y0: np.ndarray
    x1: np.ndarray
    y1: np.ndarray
    group: np.ndarray
    src0: np.ndarray
    src1: np.ndarray


def _pieces(seg: _Segments, rows: np.ndarray, da: np.ndarray, db: np.ndarray, limit_m: np.ndarray,
            group: np.ndarray, src_a: np.ndarray | None = None, src_b: np.ndarray | None = None) -> _Pieces:
    """Reachable parts of the edges ``rows`` (distances ``da``/``db`` at their ends, one limit and group per row)."""
    w = seg.length_m[rows]
    ra = np.clip(limit_m - da, 0.0, None)  # inf distance -> -inf -> 0
    rb = np.clip(limit_m - db, 0.0, None)
    reached_a = da <= limit_m
    reached_b = db <= limit_m
    whole = (ra + rb >= w) & (reached_a | reached_b)
    from_a = reached_a & ~whole
    from_b = reached_b & ~whole
    ax, ay, bx, by = seg.ax[rows], seg.ay[rows], seg.bx[rows], seg.by[rows]
    with np.errstate(invalid="ignore", divide="ignore"):
        fa = np.where(w > 0, ra / w, 0.0)
        fb = np.where(w > 0, rb / w, 0.0)
    sa = np.zeros(len(rows), dtype=np.int64) if src_a is None else src_a
    sb = np.zeros(len(rows), dtype=np.int64) if src_b is None else src_b
    x0 = np.concatenate([ax[whole], ax[from_a], bx[from_b]])
    y0 = np.concatenate([ay[whole], ay[from_a], by[from_b]])
    x1 = np.concatenate([bx[whole], (ax + fa * (bx - ax))[from_a], (bx + fb * (ax - bx))[from_b]])
    y1 = np.concatenate([by[whole], (ay + fa * (by - ay))[from_a], (by + fb * (ay - by))[from_b]])
    g = np.concatenate([group[whole], group[from_a], group[from_b]])
    s0 = np.concatenate([sa[whole], sa[from_a], sb[from_b]])
    s1 = np.concatenate([sb[whole], sa[from_a], sb[from_b]])
    return _Pieces(x0, y0, x1, y1, g, s0, s1)


def _concat(parts: list[_Pieces]) -> _Pieces:
    return _Pieces(*(np.concatenate([getattr(q, f) for q in parts]) for f in _Pieces.__dataclass_fields__))


def _network_polygons(p: _Pieces, n_groups: int, buffer_m: float) -> np.ndarray:
    """One buffered, merged polygon per group (empty where nothing was reached).

    The pieces of a group are first joined into longer lines (``line_merge``), and each line is buffered on its own.
    The buffers are then merged with ``union_all``. On Helsinki this is about 50 times faster than
    buffering the whole MultiLineString at once, because GEOS then has to node thousands of
    overlapping end caps together.
    """
    out = np.array([shapely.Polygon()] * n_groups, dtype=object)
    if not len(p.group):
        return out
    order = np.argsort(p.group, kind="stable")
    coords = np.stack([np.column_stack([p.x0, p.y0]), np.column_stack([p.x1, p.y1])], axis=1)[order]
    groups = np.unique(p.group)
    multi = shapely.multilinestrings(shapely.linestrings(coords), indices=np.searchsorted(groups, p.group[order]))
    parts, owner = shapely.get_parts(shapely.line_merge(multi), return_index=True)
    buffers = shapely.buffer(parts, buffer_m, quad_segs=_QUAD_SEGS)
    cuts = np.flatnonzero(np.diff(owner)) + 1
    for g, chunk in zip(groups[owner[np.r_[0, cuts]]], np.split(buffers, cuts)):  # one merge per group
        out[g] = shapely.union_all(chunk)
    return out


def _concave_polygons(p: _Pieces, n_groups: int, buffer_m: float, ratio: float) -> np.ndarray:
    """Per group: the union over source territories of the buffered concave hulls of the reached positions."""
    gx = np.concatenate([p.x0, p.x1])
    gy = np.concatenate([p.y0, p.y1])
    grp = np.concatenate([p.group, p.group])
    src = np.concatenate([p.src0, p.src1])
    out = np.array([shapely.Polygon()] * n_groups, dtype=object)
    if not len(grp):
        return out
    keys, inv = np.unique(np.column_stack([grp, src]), axis=0, return_inverse=True)
    inv = inv.ravel()
    order = np.argsort(inv, kind="stable")
    mp = shapely.multipoints(shapely.points(gx[order], gy[order]), indices=inv[order])
    hulls = shapely.buffer(shapely.concave_hull(mp, ratio=ratio), buffer_m, quad_segs=_QUAD_SEGS)
    for g in np.unique(keys[:, 0]):
        out[g] = shapely.union_all(hulls[keys[:, 0] == g])
    return out


def _polygons(p: _Pieces, n_groups: int, *, buffer_m: float, method: str, ratio: float) -> np.ndarray:
    if method == "exact":
        return _network_polygons(p, n_groups, buffer_m)
    return _concave_polygons(p, n_groups, buffer_m, ratio)


# --------------------------------------------------------------------------------------------
# method="grid": the exact distance to the reached streets at cell centres, contoured at buffer_m
# --------------------------------------------------------------------------------------------

#: Smallest and largest cell of ``method="grid"`` (metres): see :func:`grid_cell_m`.
GRID_CELL_M = (5.0, 20.0)
#: ``method="grid"`` areas are within this fraction of ``method="exact"`` with the cell size :func:`grid_cell_m`
#: chooses (measured: module docstring). Forcing coarse cells on a small area can exceed it: the round ends of a
#: lone 200 m street lose 2.4 % at 20 m cells.
GRID_TOLERANCE = 0.02
#: ``method="grid"`` chooses its cell size to split the network's extent into about this many cells.
GRID_TARGET_CELLS = 4_000_000
_NICE_CELL_M = (5.0, 7.5, 10.0, 12.5, 15.0, 20.0, 25.0)
#: Candidate cells per block when the cell-street pairs are made (bounds their memory).
_PAIR_BLOCK = 1 << 20
#: The grid's distance fields are uint16: this many steps up to ``buffer_m + 2 cell_m`` (about 1 mm each).
_Q_MAX = 65535


def grid_cell_m(network: WalkNetwork, *, buffer_m: float = DEFAULT_BUFFER_M) -> float:
    """The cell size ``method="grid"`` uses on ``network``, in metres.

    About :data:`GRID_TARGET_CELLS` cells over the network's extent, rounded up to 5, 7.5, 10, 12.5, 15 or
    20 m (:data:`GRID_CELL_M`), and never more than ``buffer_m / 1.25``, so a buffer is always more than a
    cell wide.

    Examples
    --------
    >>> from lifecircle import network_from_osm
    >>> from lifecircle.datasets import toy_town_osm
    >>> grid_cell_m(network_from_osm(toy_town_osm()))  # 0.8 × 0.4 km: the smallest cells
    5.0
    """
    lo, hi = GRID_CELL_M
    area = float(np.ptp(network.x)) * float(np.ptp(network.y)) if network.n_nodes else 0.0
    want = math.sqrt(max(area, 1.0) / GRID_TARGET_CELLS)
    nice = next((c for c in _NICE_CELL_M if c >= want), _NICE_CELL_M[-1])
    return float(min(max(nice, lo), hi, buffer_m / 1.25))


@dataclass(frozen=True)
class _GridStreets:
    """The straight segments whose reached parts ``method="grid"`` measures distances to.

    First the network's edges (ends: nodes ``u``, ``v``), then for each source point (a facility, or the
    query point) its access leg (from the point to the street) and a copy of the edge it joins, which is
    reached around the junction. ``w`` is the walking length, ``scale`` turns walking metres along a
    segment into metres of its drawn line.
    """

    ax: np.ndarray
    ay: np.ndarray
    bx: np.ndarray
    by: np.ndarray
    w: np.ndarray
    scale: np.ndarray
    n_edges: int
    point_node: np.ndarray  # per source point: its node, its street junction node, and the junction's
    proj_node: np.ndarray  # metres from the copied edge's first end
    proj_s: np.ndarray

    @property
    def n_points(self) -> int:
        return len(self.point_node)


def _grid_streets(network: WalkNetwork, graph: AccessGraph, point_x: np.ndarray, point_y: np.ndarray,
                  points: np.ndarray) -> _GridStreets:
    """The segments of ``network`` and of the snapped points ``points`` (indices into ``graph.point_node``)."""
    n = network.n_nodes
    points = points[graph.point_node[points] >= 0]
    pn, qn = graph.point_node[points], graph.proj_node[points]
    e, t = graph.proj_edge[qn - n], graph.proj_t[qn - n]
    u, v = network.u, network.v
    qx = network.x[u[e]] + t * (network.x[v[e]] - network.x[u[e]])
    qy = network.y[u[e]] + t * (network.y[v[e]] - network.y[u[e]])
    leg = np.asarray(graph.matrix[pn, qn]).ravel() if len(pn) else np.zeros(0)
    ax = np.concatenate([network.x[u], np.asarray(point_x, float)[points], network.x[u[e]]])
    ay = np.concatenate([network.y[u], np.asarray(point_y, float)[points], network.y[u[e]]])
    bx = np.concatenate([network.x[v], qx, network.x[v[e]]])
    by = np.concatenate([network.y[v], qy, network.y[v[e]]])
    w = np.concatenate([network.length_m, leg, network.length_m[e]]).astype(float)
    drawn = np.hypot(bx - ax, by - ay)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(w > 0, drawn / w, 1.0)
    return _GridStreets(ax, ay, bx, by, w, scale, network.n_edges, pn, qn, t * network.length_m[e])


def _grid_reach(st: _GridStreets, network: WalkNetwork, d: np.ndarray, lim: float, source: np.ndarray,
                segs: np.ndarray | None = None):
    """The segments reached within ``lim`` metres of the distance field ``d`` (over the access graph's nodes).

    Looks at ``segs`` (sorted segment indices; default all). Returns the reached ones ``k``, whether each is
    reached ``whole``, and its reached parts as two intervals ``[lo1, hi1] ∪ [lo2, hi2]`` in metres along its
    drawn line (empty: ``lo = inf``). ``source`` marks the source points: their legs and junction copies
    count, other points' do not (as in ``method="exact"``).
    """
    E, m = st.n_edges, st.n_points
    segs = np.arange(len(st.w)) if segs is None else segs
    w = st.w[segs]
    lo1 = np.full(len(segs), np.inf)
    hi1 = np.full(len(segs), -np.inf)
    lo2, hi2 = lo1.copy(), hi1.copy()
    edge = np.flatnonzero(segs < E)
    ra, rb = lim - d[network.u[segs[edge]]], lim - d[network.v[segs[edge]]]
    ok = ra >= 0
    lo1[edge[ok]], hi1[edge[ok]] = 0.0, np.minimum(ra[ok], w[edge[ok]])
    ok = rb >= 0
    lo2[edge[ok]], hi2[edge[ok]] = np.maximum(w[edge[ok]] - rb[ok], 0.0), w[edge[ok]]
    if m:
        leg = np.flatnonzero((segs >= E) & (segs < E + m))
        p = segs[leg] - E
        r = lim - d[st.point_node[p]]
        ok = source[p] & (r >= 0)
        lo1[leg[ok]], hi1[leg[ok]] = 0.0, np.minimum(r[ok], w[leg[ok]])
        copy = np.flatnonzero(segs >= E + m)
        p = segs[copy] - E - m
        r = lim - d[st.proj_node[p]]
        ok = source[p] & (r >= 0)
        lo1[copy[ok]] = np.maximum(st.proj_s[p[ok]] - r[ok], 0.0)
        hi1[copy[ok]] = np.minimum(st.proj_s[p[ok]] + r[ok], w[copy[ok]])
    hit = (lo1 <= hi1) | (lo2 <= hi2)
    whole = (lo1 <= 0) & (hi1 >= w) | (lo2 <= 0) & (hi2 >= w) | (lo1 <= 0) & (lo2 <= hi1) & (hi2 >= w)
    sc = st.scale[segs[hit]]
    return segs[hit], whole[hit], lo1[hit] * sc, hi1[hit] * sc, lo2[hit] * sc, hi2[hit] * sc


@dataclass(frozen=True)
class _Reach:
    """What one set of sources reaches at each limit, on the segments ``k`` (sorted) reached at the largest.

    ``t_whole[p]``: the first limit at which segment ``k[p]`` is reached whole (the number of limits if
    never). ``cut``: the positions in ``k`` of the segments reached only in part at some limit, and
    ``iv[c, i] = (lo1, hi1, lo2, hi2)``: the reached parts of segment ``k[cut[c]]`` at limit ``i``, in metres
    along its drawn line (:func:`_grid_reach`), left empty (``lo = inf``) where it is whole or not reached.
    """

    k: np.ndarray
    t_whole: np.ndarray
    cut: np.ndarray
    iv: np.ndarray


def _reach_layers(st: _GridStreets, network: WalkNetwork, d: np.ndarray, limits: np.ndarray, source: np.ndarray,
                  segs: np.ndarray | None = None) -> _Reach:
    """What the distance field ``d`` reaches at each of ``limits`` (ascending), as in :func:`_grid_reach`.

    In closed form, each segment is first reached at ``L_first`` and reached whole from ``L_whole`` on: a
    street edge of length ``w`` with its ends at ``d_u``, ``d_v`` when ``L ≥ d_u + w``, ``L ≥ d_v + w``, or
    when the parts from both ends meet (``L ≥ max(d_u, d_v, (d_u + d_v + w) / 2)``); an access leg at
    ``d_point + w``; a junction copy when the part around the junction covers both its ends. Only
    the segments cut at some limit get their reached parts, from :func:`_grid_reach`.
    """
    E, m, n_lim = st.n_edges, st.n_points, len(limits)
    segs = np.arange(len(st.w)) if segs is None else segs  # sorted
    w = st.w[segs]
    first = np.full(segs.size, np.inf)
    whole = np.full(segs.size, np.inf)
    edge = np.flatnonzero(segs < E)
    du, dv = d[network.u[segs[edge]]], d[network.v[segs[edge]]]
    near = np.minimum(du, dv)
    first[edge] = near
    whole[edge] = np.minimum(near + w[edge], np.maximum(np.maximum(du, dv), (du + dv + w[edge]) / 2))
    if m:
        leg = np.flatnonzero((segs >= E) & (segs < E + m))
        p = segs[leg] - E
        dl = np.where(source[p], d[st.point_node[p]], np.inf)
        first[leg], whole[leg] = dl, dl + w[leg]
        cp = np.flatnonzero(segs >= E + m)
        p = segs[cp] - E - m
        dc = np.where(source[p], d[st.proj_node[p]], np.inf)
        first[cp], whole[cp] = dc, dc + np.maximum(st.proj_s[p], w[cp] - st.proj_s[p])
    t_first = np.searchsorted(limits, first)  # the first limit >= L_first; n_lim if none
    t_whole = np.searchsorted(limits, whole)
    keep = np.flatnonzero(t_first < n_lim)
    k, t_first, t_whole = segs[keep], t_first[keep], t_whole[keep].astype(np.uint8)
    cut = np.flatnonzero(t_first < t_whole)
    iv = np.empty((cut.size, n_lim, 4), dtype=np.float32)
    iv[:] = np.array([np.inf, -np.inf, np.inf, -np.inf], dtype=np.float32)
    for i in range(n_lim):
        at = np.flatnonzero((t_first[cut] <= i) & (t_whole[cut] > i))  # cut at limit i
        if at.size:
            ki, _, lo1, hi1, lo2, hi2 = _grid_reach(st, network, d, limits[i], source, k[cut[at]])
            iv[at[np.searchsorted(k[cut[at]], ki)], i] = np.column_stack([lo1, hi1, lo2, hi2])
    return _Reach(k, t_whole, cut, iv)


def _pair_blocks(st: _GridStreets, U: np.ndarray, ox: float, oy: float, *, h: float, radius_m: float,
                 nx: int, ny: int):
    """The (cell, segment) pairs of the segments ``U`` of ``st``, in grid coordinates (metres from the grid's
    corner ``ox``, ``oy``), in blocks.

    Each segment's cells are those whose centre lies in its box of half-width ``radius_m`` around it (the
    capsule of that radius and the four corners next to its end caps), found row by row in closed form.
    Yields one function per block, which makes its pairs: ``(first, cell, seg, s, p)``. ``seg`` numbers the
    segments from 0 (``first`` is the block's first segment), ``s`` and ``p`` are the cell centre's coordinates
    along and across the segment from its first end (float32). Along a row, they change by ``h ux`` and
    ``-h uy`` per cell. The blocks can be made in any order, on any thread.
    """
    R = float(radius_m)
    cum = np.hypot(st.bx[U] - st.ax[U], st.by[U] - st.ay[U])
    cum += 2 * R + h  # upper bound of the cells in a segment's box: (length + 2R + h)(2R + h) / h² + 1
    cum *= (2 * R + h) / (h * h)
    cum += 1
    np.cumsum(cum, out=cum)
    cuts = np.searchsorted(cum, np.arange(1, int(cum[-1] // _PAIR_BLOCK) + 1) * _PAIR_BLOCK) if cum.size else []
    del cum
    bounds = np.unique(np.concatenate([[0], cuts, [U.size]])).astype(np.int64)

    def block(b0: int, b1: int):
        k = U[b0:b1]
        ax, ay, bx, by = st.ax[k] - ox, st.ay[k] - oy, st.bx[k] - ox, st.by[k] - oy
        return (b0, *_block_pairs(ax, ay, bx, by, np.hypot(bx - ax, by - ay), h, R, nx, ny))

    for b0, b1 in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        yield lambda b0=b0, b1=b1: block(b0, b1)


def _block_pairs(ax, ay, bx, by, length, h, R, nx, ny):
    with np.errstate(invalid="ignore", divide="ignore"):
        ux = np.where(length > 0, (bx - ax) / length, 1.0)  # a point (zero-length leg) gets any direction
        uy = np.where(length > 0, (by - ay) / length, 0.0)
    # 1/u for the closed forms below; an axis-parallel segment gets a huge but finite factor (no 0 × inf)
    iux = 1.0 / np.where(np.abs(ux) < 1e-12, 1e-12, ux)
    iuy = 1.0 / np.where(np.abs(uy) < 1e-12, 1e-12, uy)
    j0 = np.clip(np.ceil((np.minimum(ay, by) - R) / h - 0.5), 0, ny).astype(np.int64)
    j1 = np.clip(np.floor((np.maximum(ay, by) + R) / h - 0.5), -1, ny - 1).astype(np.int64)
    n_rows = np.maximum(j1 - j0 + 1, 0)
    re = np.repeat(np.arange(ax.size, dtype=np.int32), n_rows)
    j = np.arange(re.size, dtype=np.int64) + np.repeat(j0 - (np.cumsum(n_rows) - n_rows), n_rows)
    rax, rux, ruy = ax[re], ux[re], uy[re]
    dy = (j + 0.5) * h - ay[re]
    across0 = dy * rux  # across = dy ux - dx uy must be in [-R, R]: dx uy in [across0 - R, across0 + R]
    along0 = dy * ruy  # along = dx ux + dy uy must be in [-R, length + R]
    c1, c2 = (across0 - R) * iuy[re], (across0 + R) * iuy[re]
    c3, c4 = (-R - along0) * iux[re], (length[re] + R - along0) * iux[re]
    lo = np.maximum(np.minimum(c1, c2), np.minimum(c3, c4)) + rax
    hi = np.minimum(np.maximum(c1, c2), np.maximum(c3, c4)) + rax
    del c1, c2, c3, c4
    i_lo = np.ceil(np.clip(lo / h - 0.5, 0, nx)).astype(np.int64)
    i_hi = np.floor(np.clip(hi / h - 0.5, -1, nx - 1)).astype(np.int64)
    n_cells = np.maximum(i_hi - i_lo + 1, 0)
    keep = n_cells > 0
    re, j, i_lo, n_cells, rax, rux, ruy, dy, across0, along0 = (
        x[keep] for x in (re, j, i_lo, n_cells, rax, rux, ruy, dy, across0, along0))
    dx0 = (i_lo + 0.5) * h - rax
    s0 = (dx0 * rux + along0).astype(np.float32)
    p0 = (across0 - dx0 * ruy).astype(np.float32)
    sx, px = (h * rux).astype(np.float32), (-h * ruy).astype(np.float32)
    c0 = j * nx + i_lo
    rp = np.repeat(np.arange(re.size, dtype=np.int32), n_cells)
    k = np.arange(rp.size, dtype=np.int64) - np.repeat(np.cumsum(n_cells) - n_cells, n_cells)
    cell = c0[rp] + k
    kf = k.astype(np.float32)
    s = s0[rp] + kf * sx[rp]
    p = p0[rp] + kf * px[rp]
    return cell, re[rp], s, p


def _grid_frame(st: _GridStreets, k: np.ndarray, h: float, R: float):
    """A grid of ``h`` cells over the segments ``k`` with a margin of ``R`` and two cells: corner, nx, ny."""
    xs = np.concatenate([st.ax[k], st.bx[k]])
    ys = np.concatenate([st.ay[k], st.by[k]])
    ox = math.floor((xs.min() - R) / h - 1) * h
    oy = math.floor((ys.min() - R) / h - 1) * h
    nx = int(math.ceil((xs.max() + R - ox) / h)) + 2
    ny = int(math.ceil((ys.max() + R - oy) / h)) + 2
    if nx * ny >= 2**31:
        raise InputDataError(f"the study area is too large for service areas on a {h:g} m grid "
                             f"({nx:,} × {ny:,} cells); pass a larger cell_m or method='exact'")
    return ox, oy, nx, ny


#: Grids of up to this many cells (and over :data:`_THREADS_MIN_CELLS`) are contoured two layers at a time:
#: ~20 bytes a cell more while they are drawn. A million-node city's (8M cells: 0.5 s faster, 0.17 GB more,
#: which would be the run's peak) is contoured one layer at a time.
_TWO_CONTOURS_MAX_CELLS = 4_000_000
#: Contours of grids over this many cells keep their rings as arrays until the last one is drawn, and
#: only then make them polygons (a 4M-node city, 32M cells: ~0.3 GB less beside its last contour).
_DEFER_POLYGONS_CELLS = 16_000_000


def _grid_polygons(st: _GridStreets, network: WalkNetwork, groups: list[tuple], limits: np.ndarray,
                   buffer_m: float, cell_m: float, *, lonlat: bool = True) -> list[tuple[float, Any]]:
    """The ``method="grid"`` polygon of each ``(distance field, source mask, segments or None)`` in ``groups``
    at each of ``limits`` (group-major, then limits).

    Every cell centre within ``buffer_m + cell_m`` of a reached segment gets its exact distance to the
    reached parts of the segments near it (:func:`_grid_layers`); the filled contour at ``buffer_m`` of each
    limit's layer is its polygon (:func:`_grid_contours`).
    """
    plan = _grid_plan(st, network, groups, limits, buffer_m, cell_m)
    return _plan_polygons(plan, [st], network.crs, lonlat=lonlat)


def _plan_polygons(plan: "_GridPlan", streets: list, crs: Any, *, lonlat: bool = True, wkb: bool = False
                   ) -> list[tuple[float, Any]]:
    """The polygons of :func:`_grid_plan`'s groups. ``streets`` is ``[the segments]``, handed over: emptied
    here, so that the segments and the plan's per-segment arrays are freed before the contours (each of
    which takes 28 bytes a cell: a float64 copy of its layer and contourpy's 2-D coordinates). With the
    compiled kernel, each group's layers are made while the group before is contoured (:class:`_LayersAhead`)."""
    st = streets.pop()
    kernel = _kernel_for(plan.nx * plan.ny)
    layers = _LayersAhead(kernel, plan, st) if kernel is not None else _grid_layers(plan, st, compiled=False)
    del st
    plan.layer_of = plan.never = plan.cut_of = plan.U = None
    plan.ivs = [None] * len(plan.ivs)
    try:
        return _grid_contours(plan, layers, crs, lonlat=lonlat, wkb=wkb)
    finally:
        if isinstance(layers, _LayersAhead):
            layers.close()


@dataclass
class _GridPlan:
    """:func:`_grid_plan`: the grid frame over every group's reached segments ``U``, and per group what its
    pairs write: the layer of each segment of ``U`` (the first limit at which it is whole), ``never`` (the
    cap for a segment never reached whole), the cut segments' row in ``ivs[g]`` (their reached parts)."""

    U: np.ndarray
    layer_of: np.ndarray
    never: np.ndarray
    cut_of: np.ndarray
    ivs: list
    n_lim: int
    nx: int
    ny: int
    h: float
    R: float
    ox: float
    oy: float
    q_per_m: float
    level: float


def _grid_plan(st: _GridStreets, network: WalkNetwork, groups: list[tuple], limits: np.ndarray,
               buffer_m: float, cell_m: float) -> _GridPlan:
    """What each group reaches at each limit (:func:`_reach_layers`) and the grid frame over all of it.

    Per segment, a few bytes per group (``layer_of``: uint8, ``never``: uint16, ``cut_of``: int32).
    """
    n_lim, h, B = len(limits), float(cell_m), float(buffer_m)
    R = B + h
    # per group, on two threads for a city (numpy's loops do not hold the GIL), one for a town, and one for a
    # whole-city network (each group's reach makes ~80 bytes a segment of temporaries: 0.5 GB at 4M nodes)
    workers = 2 if _THREADS_MIN_SEGMENTS < len(st.w) <= _THREADS_MAX_SEGMENTS and len(groups) > 1 else 0
    reach = list(_in_order(lambda grp: _reach_layers(st, network, grp[0], limits, grp[1], grp[2]), iter(groups),
                           workers=workers))
    if len(reach) == 1:
        U = reach[0].k
    else:
        used = np.zeros(len(st.w), dtype=bool)
        for r in reach:
            used[r.k] = True
        U = np.flatnonzero(used)
        del used
    G = len(groups)
    q_per_m = _Q_MAX / (B + 2 * h)  # beyond B + 2h (the cap) is as good as unreached for the contour at B
    if not U.size:
        return _GridPlan(U, np.zeros((G, 0), np.uint8), np.zeros((G, 0), np.uint16), np.zeros((G, 0), np.int32),
                         [r.iv for r in reach], n_lim, 0, 0, h, R, 0.0, 0.0, q_per_m, B * q_per_m)
    ox, oy, nx, ny = _grid_frame(st, U, h, R)
    # per group, the layer a segment's pairs go to: the first limit at which it is whole; a segment never
    # reached whole writes the cap (no change) into the last layer
    layer_of = np.full((G, U.size), n_lim - 1, dtype=np.uint8)
    never = np.full((G, U.size), _Q_MAX, dtype=np.uint16)
    cut_of = np.full((G, U.size), -1, dtype=np.int32)
    ivs = []
    for g, r in enumerate(reach):
        pos = np.searchsorted(U, r.k)
        whole = r.t_whole < n_lim
        layer_of[g, pos[whole]] = r.t_whole[whole]
        never[g, pos[whole]] = 0
        cut_of[g, pos[r.cut]] = np.arange(r.cut.size, dtype=np.int32)
        ivs.append(r.iv)  # the reached parts of the cut segments: all that is kept of the reach
        reach[g] = None
    return _GridPlan(U, layer_of, never, cut_of, ivs, n_lim, nx, ny, h, R, ox, oy, q_per_m, B * q_per_m)


#: Networks of more segments than the first (and at most the second) have their groups' reach measured on two
#: threads (a million-node city: 0.7 s instead of 1.0 s, ~0.17 GB more beside the analysis, under the peak of
#: its contours).
_THREADS_MIN_SEGMENTS, _THREADS_MAX_SEGMENTS = 50_000, 3_000_000
#: Grids over this many cells are drawn on two threads (smaller ones: the threads would cost more than they save).
_THREADS_MIN_CELLS = 100_000
#: Grids over this many cells have their layers written by the compiled kernel (:mod:`._grid_kernel`) when
#: numba is installed; smaller ones by numpy, which takes less than importing numba and loading the kernel
#: (about a second; a district's grid: ~0.3 s of numpy).
_COMPILED_MIN_CELLS = 2_000_000


def _compiled_kernel():
    """:func:`._grid_kernel.group_layers`, compiled (or loaded from numba's cache) and called once on an empty
    cell; None when numba cannot be imported or compile it here (no writable cache, an unsupported platform):
    then numpy draws the same layers."""
    try:
        from ._grid_kernel import group_layers, warm_up

        warm_up()
    except Exception as exc:  # numba missing or broken on this platform: the numpy path gives the same layers
        log.debug("service areas: numba unavailable (%s); the grid's layers are drawn with numpy", exc)
        return None
    return group_layers


def warm_up_compiled(network: WalkNetwork, *, buffer_m: float = DEFAULT_BUFFER_M) -> Any:
    """Import and load the compiled kernel on a background thread when ``network``'s service-area grid will be
    drawn with it (more than :data:`_COMPILED_MIN_CELLS` cells): about a second of imports, then spent while
    something else runs. Returns the thread (or None)."""
    if not network.n_nodes:
        return None
    h = grid_cell_m(network, buffer_m=buffer_m)
    cells = (float(np.ptp(network.x)) / h + 2) * (float(np.ptp(network.y)) / h + 2)
    if cells <= _COMPILED_MIN_CELLS:
        return None

    import threading

    t = threading.Thread(target=_compiled_kernel, name="lifecircle-grid-kernel", daemon=True)
    t.start()
    return t


def _kernel_for(n_cells: int, compiled: bool | None = None):
    """The compiled kernel for a grid of ``n_cells`` (``compiled=None``: above :data:`_COMPILED_MIN_CELLS`), or
    None: numpy draws the layers."""
    return _compiled_kernel() if (n_cells > _COMPILED_MIN_CELLS if compiled is None else compiled) else None


def _grid_layers(plan: _GridPlan, st: _GridStreets, *, compiled: bool | None = None) -> dict[int, np.ndarray]:
    """The distance layers of the plan's groups: ``{group: uint16 array of n_lim × ny × nx}``.

    The pairs of cells and segments are made once, in blocks, for all groups and limits: a segment reached
    whole from limit ``i`` on writes its distance into layer ``i`` (a running minimum, ``np.minimum.at``); a
    segment cut where the time runs out writes, at each limit, the distance to its reached parts.
    :func:`_grid_contours` then takes the minimum over the layers (what a smaller limit reaches, a larger one
    reaches too). Distances are uint16 steps of about 1 mm. Memory: 2 bytes a cell per group and limit
    (~0.75 GB for four categories and three limits of a 4M-node city); what is made per pair, for one block.

    ``compiled``: write them with the compiled kernel (the same layers, about 5× faster: one pass over each
    group's pairs, the groups on two threads); default when numba is installed and the grid has more than
    :data:`_COMPILED_MIN_CELLS` cells.
    """
    groups = range(len(plan.ivs))
    n_lim, nx, ny, h, R, q_per_m = plan.n_lim, plan.nx, plan.ny, plan.h, plan.R, plan.q_per_m
    n_cells = nx * ny
    if not n_cells:
        return {g: None for g in groups}
    kernel = _kernel_for(n_cells, compiled)
    if kernel is not None:
        return _compiled_layers(kernel, plan, st)
    U, cut_of = plan.U, plan.cut_of
    any_cut = (cut_of >= 0).any(axis=0)
    # per group and segment: where in the group's layers its pairs write (-1: never reached whole, no write)
    base = np.where(plan.never == 0, plan.layer_of.astype(np.intp) * n_cells, -1)
    # per group and limit: the reached parts of the segments cut at that limit, and which are (the others
    # write nothing there: reached whole, or not at all)
    cut_iv = [[np.ascontiguousarray(iv[:, i]) for i in range(n_lim)] for iv in plan.ivs]
    cut_at = [[(v[:, 0] <= v[:, 1]) | (v[:, 2] <= v[:, 3]) for v in per] for per in cut_iv]
    fields = {g: np.full(n_lim * n_cells, _Q_MAX, dtype=np.uint16) for g in groups}
    # from the ends shifted to the grid's corner, as _block_pairs and the compiled kernel take them
    seg_len = np.hypot((st.bx[U] - plan.ox) - (st.ax[U] - plan.ox),
                       (st.by[U] - plan.oy) - (st.ay[U] - plan.oy)).astype(np.float32)

    def writes(make):  # per group, the (index, distance) pairs of one block that its layers take the minimum with
        first, cell, seg, s, p = make()
        seg += first
        p2 = p * p
        gap = np.maximum(np.maximum(-s, s - seg_len[seg]), 0)
        q = _quantise(p2 + gap * gap, q_per_m)
        del gap
        cut = np.flatnonzero(any_cut[seg])
        c_cell, c_seg, c_s, c_p2 = cell[cut], seg[cut], s[cut], p2[cut]
        del s, p, p2, cut
        block = []
        for g in groups:
            idx = base[g][seg]
            m = np.flatnonzero(idx >= 0)
            idx = idx[m]
            idx += cell[m]
            out = [(idx, q[m])]
            c = cut_of[g][c_seg]
            m = np.flatnonzero(c >= 0)
            c, cs, cp2, cc = c[m], c_s[m], c_p2[m], c_cell[m]
            for i in range(n_lim):
                k = np.flatnonzero(cut_at[g][i][c])
                if not k.size:
                    continue
                iv, x = cut_iv[g][i][c[k]], cs[k]
                gap = np.minimum(np.maximum(np.maximum(iv[:, 0] - x, x - iv[:, 1]), 0),
                                 np.maximum(np.maximum(iv[:, 2] - x, x - iv[:, 3]), 0))
                out.append((cc[k] + i * n_cells, _quantise(cp2[k] + gap * gap, q_per_m)))
            block.append(out)
        return block

    blocks = _pair_blocks(st, U, plan.ox, plan.oy, h=h, radius_m=R, nx=nx, ny=ny)
    for block in _in_order(writes, blocks, workers=2 if n_cells > _THREADS_MIN_CELLS else 0):
        _take_minimum(fields, block)
        del block
    return fields


def _group_layers_maker(kernel, plan: _GridPlan, st: _GridStreets):
    """``make(g)``: the layers of group ``g`` by the compiled ``kernel`` (it keeps what it needs of ``plan`` and
    ``st``: the reached segments' ends and the groups' per-segment arrays, not the whole segments)."""
    n_lim, n_cells, U, h, R, q_per_m = plan.n_lim, plan.nx * plan.ny, plan.U, plan.h, plan.R, plan.q_per_m
    nx, ny, layer_of, never, cut_of, ivs = plan.nx, plan.ny, plan.layer_of, plan.never, plan.cut_of, list(plan.ivs)
    ax, ay = st.ax[U] - plan.ox, st.ay[U] - plan.oy
    bx, by = st.bx[U] - plan.ox, st.by[U] - plan.oy

    def make(g: int) -> np.ndarray:
        field = np.full(n_lim * n_cells, _Q_MAX, dtype=np.uint16)
        base = np.where(never[g] == 0, layer_of[g].astype(np.int64) * n_cells, -1)
        iv = np.ascontiguousarray(ivs[g], dtype=np.float32)
        at = np.ascontiguousarray((iv[:, :, 0] <= iv[:, :, 1]) | (iv[:, :, 2] <= iv[:, :, 3]))
        kernel(ax, ay, bx, by, base, cut_of[g].astype(np.int32), iv, at, float(h), float(R), int(nx), int(ny),
               float(q_per_m), int(n_cells), field)
        ivs[g] = None  # its cut segments' parts are written
        return field

    return make


def _compiled_layers(kernel, plan: _GridPlan, st: _GridStreets) -> dict[int, np.ndarray]:
    """:func:`_grid_layers` by the compiled ``kernel``: each group in one call, two groups at a time."""
    from concurrent.futures import ThreadPoolExecutor

    make, groups = _group_layers_maker(kernel, plan, st), range(len(plan.ivs))
    with ThreadPoolExecutor(2) as pool:
        return dict(zip(groups, pool.map(make, groups)))


class _LayersAhead:
    """The groups' layers for :func:`_grid_contours`, each made by the compiled kernel on a thread while the group
    before it is contoured: ``pop(g)`` hands over group ``g``'s (waiting for it if need be) and starts ``g + 1``'s.
    At most two groups' layers are alive, not all of them (a 4M-node city: 192 MB a group; a grid contoured two
    layers at a time, of up to 4M cells: three for a moment, while one group's last contour is drawn on a thread).
    :meth:`close` ends the thread."""

    def __init__(self, kernel, plan: _GridPlan, st: _GridStreets):
        from concurrent.futures import ThreadPoolExecutor

        self._make = _group_layers_maker(kernel, plan, st)
        self._groups = list(range(len(plan.ivs)))
        self._ahead: dict[int, Any] = {}
        self._pool = ThreadPoolExecutor(1)
        self._start(0)

    def _start(self, g: int) -> None:
        if g in self._groups and g not in self._ahead and self._make is not None:
            self._ahead[g] = self._pool.submit(self._make, g)
            if g == self._groups[-1]:
                self._make = None  # the segments' ends and per-segment arrays go once the last group is made

    def __len__(self) -> int:
        return len(self._groups)

    def __iter__(self):
        return iter(list(self._groups))

    def pop(self, g: int) -> np.ndarray:
        self._start(g)
        layers = self._ahead.pop(g).result()
        self._start(g + 1)  # made while group g is contoured
        self._groups.remove(g)
        return layers

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)
        self._make, self._ahead = None, {}


def _take_minimum(fields: dict[int, np.ndarray], block: list) -> None:
    """``fields[g][idx] = min(fields[g][idx], q)`` for each ``(idx, q)`` of each group ``g`` in ``block``."""
    for g, out in zip(fields, block):
        for idx, q in out:
            np.minimum.at(fields[g], idx, q)


def _grid_contours(plan: _GridPlan, layers: dict[int, np.ndarray], crs: Any, *, lonlat: bool = True,
                   wkb: bool = False) -> list[tuple[float, Any]]:
    """The (area, polygon) of each group's layers (group-major, then limits), dropping each group's layers
    from ``layers`` once drawn. ``wkb=True`` (they are to be written): a city's polygons (lon/lat by the
    compiled polynomials, made a polygon as drawn) get their WKB made too (:func:`_rings_to_polygon`)."""
    n_lim, nx, ny, h = plan.n_lim, plan.nx, plan.ny, plan.h
    n_cells = nx * ny
    if not n_cells:
        return [(0.0, shapely.Polygon())] * (len(layers) * n_lim)
    x0, y0 = plan.ox + 0.5 * h, plan.oy + 0.5 * h
    to_lonlat = None
    if lonlat:  # a city's grid: compiled polynomials (its layers are compiled too); else PROJ
        box = (x0, x0 + (nx - 1) * h), (y0, y0 + (ny - 1) * h)
        to_lonlat = (_compiled_lonlat(crs, *box) if n_cells > _COMPILED_MIN_CELLS else None) or _to_lonlat(crs, *box)
    contour = _Contourer(ny, nx, h)
    if isinstance(layers, _LayersAhead):  # a city's: while its first group's layers are made
        contour.prepare()
    # a city's contours: the rings wait as arrays (16 bytes a vertex, GEOS takes ~27) until the last contour,
    # then become polygons one at a time
    defer = n_cells > _DEFER_POLYGONS_CELLS
    wkb = wkb and isinstance(to_lonlat, _PolyLonLat)
    # (a grid whose rings wait makes its polygons last, on this thread, and no WKB: it would save nothing there)
    job = _rings_shifted if defer else functools.partial(_rings_polygon, wkb=wkb)
    # each contour holds a float64 copy of its layer (8 bytes a cell) while contourpy draws it (without the GIL).
    # A town: one thread. A district: two contours at a time, each made a polygon (lon/lat, area) on its thread.
    # A city (over _TWO_CONTOURS_MAX_CELLS): one contour at a time, its rings made a polygon on a second thread
    # while the next is contoured (the compiled kernel makes the next group's layers on a third).
    from concurrent.futures import Future, ThreadPoolExecutor

    threads = n_cells > _THREADS_MIN_CELLS
    wide = 2 if threads and n_cells <= _TWO_CONTOURS_MAX_CELLS else 1
    pool = ThreadPoolExecutor(wide) if threads else None
    done: list[Future] = []

    def draw(z):
        return job(contour.rings(z, plan.level), x0, y0, to_lonlat)

    try:
        for g in sorted(layers):
            field = layers.pop(g).reshape(n_lim, ny, nx)
            for i in range(1, n_lim):
                np.minimum(field[i], field[i - 1], out=field[i])
            for i in range(n_lim):
                if pool is None:
                    done.append(Future())
                    done[-1].set_result(draw(field[i]))
                    continue
                if len(done) >= 2:
                    done[-2].result()  # at most two contours (or two layers' rings) in the works
                if wide == 2:
                    done.append(pool.submit(draw, field[i]))
                else:
                    rings = contour.rings(field[i], plan.level)
                    done.append(pool.submit(job, rings, x0, y0, to_lonlat))
                    del rings
            del field  # this group's layers are drawn (or in the threads' hands)
        if wide == 1:  # every contour is drawn (their last polygons are being made): its coordinates go first
            contour.release()
        if not defer:
            out = [f.result() for f in done]
            del contour  # its buffers
            return out
        from concurrent.futures import wait

        wait(done)  # every contour is drawn (its rings wait): the buffers go before the polygons are made
        del contour
        out = []
        for k, f in enumerate(done):
            area, rings = f.result()
            done[k] = None  # its rings are freed once they are a polygon
            out.append((area, _rings_to_polygon(rings)))
            del f, rings
        return out
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def _in_order(fn, items, *, workers: int = 2):
    """``fn(item)`` for each of ``items`` (an iterator), in order, made by ``workers`` threads while the results
    are used (numpy releases the GIL in its loops); at most ``workers + 1`` results alive at a time. ``workers=0``:
    on this thread."""
    if not workers:
        for item in items:
            yield fn(item)
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers) as pool:
        ahead: deque = deque()
        try:
            for item in items:
                ahead.append(pool.submit(fn, item))
                if len(ahead) > workers:
                    yield ahead.popleft().result()
            while ahead:
                yield ahead.popleft().result()
        finally:
            for f in ahead:
                f.cancel()


def _to_lonlat(crs, xs: tuple[float, float] | None = None, ys: tuple[float, float] | None = None):
    """``f(x, y) -> (lon, lat)`` from ``crs`` to EPSG:4326 (a pyproj Transformer: thread-safe, no GIL).

    For a WGS 84 / UTM ``crs`` and the box ``xs`` × ``ys`` (metres), PROJ's faster Evenden/Snyder transverse
    Mercator (``+approx``, about 1.5× faster) when it agrees with the exact one to 1 mm at the box's corners,
    centre and edge midpoints (measured: 0.01 mm within the zone, 3° of its central meridian; 0.5 mm at 6°):
    the rings of a city's service areas have millions of vertices.
    """
    from pyproj import CRS, Transformer

    exact = Transformer.from_crs(crs, 4326, always_xy=True)
    epsg = CRS.from_user_input(crs).to_epsg() if xs is not None and ys is not None else None
    if epsg is None or not (32601 <= epsg <= 32660 or 32701 <= epsg <= 32760):
        return exact.transform
    zone, south = epsg % 100, " +south" if epsg > 32700 else ""
    approx = Transformer.from_pipeline(f"+proj=pipeline +step +inv +proj=utm +zone={zone}{south} +ellps=WGS84 +approx "
                                       "+step +proj=unitconvert +xy_in=rad +xy_out=deg")
    gx, gy = np.meshgrid(np.linspace(*xs, 3), np.linspace(*ys, 3))
    (lon, lat), (lon2, lat2) = exact.transform(gx.ravel(), gy.ravel()), approx.transform(gx.ravel(), gy.ravel())
    err_m = np.hypot((lon2 - lon) * np.cos(np.radians(lat)), lat2 - lat) * 111_320.0
    return approx.transform if np.isfinite(err_m).all() and float(err_m.max()) < 1e-3 else exact.transform


#: The compiled lon/lat of :class:`_PolyLonLat` is used where it agrees with PROJ to this many metres.
_POLY_MAX_ERR_M = 1e-4


class _PolyLonLat:
    """Lon/lat of the points of a projected grid's box by two polynomials (:func:`_lonlat_poly`), evaluated by the
    compiled :func:`._grid_kernel.rings_lonlat`: ``lon = lon0 + sum(coef[0, i, j] u^i v^j)`` with ``u``, ``v`` the
    box's coordinates scaled to [-1, 1] (``frame``); ``err_m``: the largest error against PROJ where checked."""

    def __init__(self, kernel, frame: np.ndarray, coef: np.ndarray):
        self._kernel, self.frame, self.coef, self.err_m = kernel, frame, coef, math.inf

    @property
    def degree(self) -> int:
        return self.coef.shape[1] - 1

    def rings(self, points: np.ndarray, offsets: np.ndarray, outer: np.ndarray, x0: float, y0: float) -> float:
        """:func:`_rings_area` of :meth:`_Contourer.rings`' rings, then their points shifted by ``(x0, y0)`` and
        turned into lon/lat in place, in one pass."""
        shell = np.zeros(offsets.size - 1, dtype=bool)
        shell[outer[:-1]] = True
        return float(self._kernel(points, offsets.astype(np.int64), shell, float(x0), float(y0), self.frame, self.coef))

    def __call__(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        pts = np.column_stack([np.asarray(x, float).ravel(), np.asarray(y, float).ravel()])
        self._kernel(pts, np.array([0, len(pts)], dtype=np.int64), np.zeros(1, dtype=bool), 0.0, 0.0, self.frame,
                     self.coef)
        return pts[:, 0], pts[:, 1]


def _lonlat_poly(crs, xs: tuple[float, float], ys: tuple[float, float], kernel) -> _PolyLonLat | None:
    """Polynomials of degree 4, 5 or 6 (the lowest that is close enough) for ``crs`` → EPSG:4326 over the box
    ``xs`` × ``ys`` (metres), or None where none is.

    Fitted by least squares to PROJ's transform at the Chebyshev nodes of the box (and its edges), then checked
    against PROJ on a 33 × 33 lattice over it: used only where it agrees to :data:`_POLY_MAX_ERR_M` everywhere
    there (a map projection is smooth over a city: at 56 km, degree 4 is within 0.003 mm). Its error is the
    interpolation's, smallest inside the box and largest at its edges, which the lattice holds.
    """
    from pyproj import Transformer

    exact = Transformer.from_crs(crs, 4326, always_xy=True)
    (xa, xb), (ya, yb) = map(float, xs), map(float, ys)
    cx, cy, sx, sy = (xa + xb) / 2, (ya + yb) / 2, max((xb - xa) / 2, 1.0), max((yb - ya) / 2, 1.0)
    lon0, lat0 = exact.transform(cx, cy)
    cu, cv = np.meshgrid(np.linspace(-1.0, 1.0, 33), np.linspace(-1.0, 1.0, 33))
    check_x, check_y = cx + sx * cu.ravel(), cy + sy * cv.ravel()
    lon_c, lat_c = exact.transform(check_x, check_y)
    if not (np.isfinite(lon_c).all() and np.isfinite(lat_c).all() and math.isfinite(lon0 + lat0)):
        return None
    frame = np.array([cx, cy, 1.0 / sx, 1.0 / sy, lon0, lat0])
    for degree in (4, 5, 6):
        n = 2 * degree + 2
        k = np.r_[-1.0, np.cos(np.pi * (np.arange(n) + 0.5) / n), 1.0]
        u, v = (a.ravel() for a in np.meshgrid(k, k))
        lon, lat = exact.transform(cx + sx * u, cy + sy * v)
        ij = [(i, j) for i in range(degree + 1) for j in range(degree + 1 - i)]
        design = np.column_stack([u ** i * v ** j for i, j in ij])
        coef = np.zeros((2, degree + 1, degree + 1))
        for o, target in enumerate((np.asarray(lon) - lon0, np.asarray(lat) - lat0)):
            c = np.linalg.lstsq(design, target, rcond=None)[0]
            for (i, j), value in zip(ij, c):
                coef[o, i, j] = value
        poly = _PolyLonLat(kernel, frame, coef)
        lon, lat = poly(check_x, check_y)
        err_m = np.hypot((lon - lon_c) * np.cos(np.radians(lat_c)), lat - lat_c) * 111_320.0
        if np.isfinite(err_m).all() and float(err_m.max()) < _POLY_MAX_ERR_M:
            poly.err_m = float(err_m.max())
            return poly
    return None


def _compiled_lonlat(crs, xs: tuple[float, float], ys: tuple[float, float]) -> _PolyLonLat | None:
    """:func:`_lonlat_poly` with the compiled kernel, or None (no numba, or no polynomial close enough)."""
    if _compiled_kernel() is None:
        return None
    from ._grid_kernel import rings_lonlat

    poly = _lonlat_poly(crs, xs, ys, rings_lonlat)
    if poly is not None:
        log.debug("service areas: rings to lon/lat by degree-%d polynomials (within %.2g mm of PROJ)",
                  poly.degree, poly.err_m * 1e3)
    return poly


def _object_array(polys: list) -> np.ndarray:
    out = np.empty(len(polys), dtype=object)
    out[:] = polys
    return out


def _quantise(d2: np.ndarray, q_per_m: float) -> np.ndarray:
    """Squared distances (float32) as uint16 steps of ``1 / q_per_m`` metres, capped at :data:`_Q_MAX`."""
    return np.minimum(np.sqrt(d2) * np.float32(q_per_m) + np.float32(0.5), np.float32(_Q_MAX)).astype(np.uint16)


class _Contourer:
    """Filled contours ``z <= level`` of the layers of one ``ny`` × ``nx`` grid of spacing ``h``, one at a time.

    Each contour is made by contourpy from a float64 copy of the layer (or of the rows and columns around its
    cells at or below ``level``) and the 2-D coordinates of its cells: both are made once and reused (a
    million-node city's grid has 8M cells: 0.2 s and 192 MB a contour, made afresh); one float64 buffer per
    contour drawn at a time (:meth:`rings` may be called from two threads at once).
    """

    def __init__(self, ny: int, nx: int, h: float):
        import threading

        self.ny, self.nx, self.h = ny, nx, float(h)
        self._free: list[np.ndarray] = []  # float64 buffers not in use (one per contour drawn at a time)
        self._ij: tuple[np.ndarray, np.ndarray] | None = None
        self._lock = threading.Lock()
        self._released = False  # (then a buffer given back is dropped)

    def prepare(self) -> None:
        """Make the shared coordinates and one buffer now (its pages written), not in the first contour: a city's
        grid does it while the first group's layers are made (8M cells: ~0.2 s)."""
        with self._lock:
            if self._ij is None:
                self._ij = np.meshgrid(np.arange(self.nx, dtype=np.float64), np.arange(self.ny, dtype=np.float64))
            if not self._free:
                self._free.append(np.zeros(self.ny * self.nx))

    def release(self) -> None:
        """Drop the shared coordinates and the buffers (a contour being drawn keeps its own until it is done):
        once the last contour is begun, before the last polygons are made (a city: ~0.2 GB less at the end)."""
        with self._lock:
            self._ij, self._free, self._released = None, [], True

    def rings(self, z: np.ndarray, level: float):
        """The contour of ``z`` as closed rings ``(points, offsets, outer)``, in metres from the first cell
        centre (ring ``r`` is ``points[offsets[r]:offsets[r + 1]]``; polygon ``p`` has the rings
        ``outer[p]:outer[p + 1]``, its outer ring first, then its holes), or None where no cell is at or below
        ``level``. Only the rows and columns around those cells are contoured."""
        import contourpy

        inside = z <= level
        rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
        del inside
        if not rows.size:
            return None
        r0, r1 = max(int(rows[0]) - 1, 0), min(int(rows[-1]) + 2, z.shape[0])
        c0, c1 = max(int(cols[0]) - 1, 0), min(int(cols[-1]) + 2, z.shape[1])
        if c1 - c0 > 0.75 * z.shape[1]:  # whole rows: the shared coordinates are a view, not a copy
            c0, c1 = 0, z.shape[1]
        n_r, n_c = r1 - r0, c1 - c0
        with self._lock:  # a buffer of its own, and the shared coordinates made once
            buf = self._free.pop() if self._free else np.empty(self.ny * self.nx)
            if n_c == self.nx and self._ij is None:
                self._ij = np.meshgrid(np.arange(self.nx, dtype=np.float64), np.arange(self.ny, dtype=np.float64))
            ij = self._ij if n_c == self.nx else None  # (release() may drop the shared ones meanwhile)
        try:
            zz = buf[:n_r * n_c].reshape(n_r, n_c)
            np.copyto(zz, z[r0:r1, c0:c1], casting="unsafe")
            if ij is not None:  # whole rows: a view of the shared coordinates
                i, j = (a[:n_r] for a in ij)
            else:  # a narrower window: its own (contourpy would copy a view of the shared ones)
                i, j = np.meshgrid(np.arange(n_c, dtype=np.float64), np.arange(n_r, dtype=np.float64))
            del ij
            # "threaded" with one thread and one chunk: serial's algorithm and output, without holding the GIL
            gen = contourpy.contour_generator(i, j, zz, name="threaded", thread_count=1, chunk_count=1,
                                              fill_type=contourpy.FillType.ChunkCombinedOffsetOffset)
            (points,), (offsets,), (outer,) = gen.filled(-1.0, level)
            del gen, zz, i, j
        finally:
            with self._lock:
                if not self._released:
                    self._free.append(buf)
            del buf
        if points is None or not len(points):
            return None
        points += (c0, r0)
        points *= self.h
        return points, offsets, outer


def _rings_polygon(rings, x0: float, y0: float, to_lonlat=None, *, wkb: bool = False) -> tuple[float, Any]:
    """The area (m²) and MultiPolygon of :meth:`_Contourer.rings`' rings shifted by ``(x0, y0)``, in lon/lat when
    ``to_lonlat`` is given; ``(0, empty)`` for None."""
    area, rings = _rings_shifted(rings, x0, y0, to_lonlat)
    return area, _rings_to_polygon(rings, wkb=wkb)


def _rings_shifted(rings, x0: float, y0: float, to_lonlat=None) -> tuple[float, Any]:
    """The area (m²) of :meth:`_Contourer.rings`' rings and the rings shifted by ``(x0, y0)`` (in lon/lat when
    ``to_lonlat`` is given: ``f(x, y) -> (lon, lat)`` or a :class:`_PolyLonLat`), for :func:`_rings_to_polygon`;
    ``(0, None)`` for None."""
    if rings is None:
        return 0.0, None
    points, offsets, outer = rings
    if isinstance(to_lonlat, _PolyLonLat):  # area, shift and lon/lat in one compiled pass
        return to_lonlat.rings(points, offsets, outer, x0, y0), rings
    area = _rings_area(points, offsets, outer)  # before the shift: no cancellation
    points += (x0, y0)
    if to_lonlat is not None:
        points[:, 0], points[:, 1] = to_lonlat(points[:, 0], points[:, 1])
    return area, rings


def _rings_to_polygon(rings, *, wkb: bool = False) -> Any:
    """The MultiPolygon of :func:`_rings_shifted`' rings (an empty Polygon for None). ``wkb=True``: its WKB is
    made too, by the compiled :func:`._grid_kernel.rings_wkb` (without the GIL, on the thread that drew it), and
    handed to :func:`lifecircle.present.vectors.write_vector` (:func:`~lifecircle.present.vectors.wkb_made_ahead`):
    a city's 126 MB of WKB cost shapely 0.8 s at the write, this ~0.1 s beside the next contour."""
    if rings is None:
        return shapely.Polygon()
    points, offsets, outer = rings
    offsets, outer = offsets.astype(np.int64), outer.astype(np.int64)
    poly = shapely.from_ragged_array(shapely.GeometryType.MULTIPOLYGON, points,
                                     (offsets, outer, np.array([0, outer.size - 1])))[0]
    if wkb and sys.byteorder == "little":
        from ._grid_kernel import rings_wkb, wkb_size
        from .vectors import wkb_made_ahead

        points = np.ascontiguousarray(points, dtype=np.float64)
        buf = np.empty(wkb_size(len(points), offsets.size - 1, outer.size - 1), dtype=np.uint8)
        rings_wkb(points.reshape(-1).view(np.uint8), offsets, outer, buf)
        wkb_made_ahead(poly, buf)
    return poly


def _rings_area(points: np.ndarray, offsets: np.ndarray, outer: np.ndarray) -> float:
    """The area of polygons given as closed rings (as :meth:`_Contourer.rings` returns them): outer rings minus
    holes, as GEOS measures it."""
    x, y = points[:, 0], points[:, 1]
    cross = np.zeros(len(points))
    cross[:-1] = x[:-1] * y[1:] - x[1:] * y[:-1]
    cross[offsets[1:] - 1] = 0.0  # the last point of a ring closes it (equals its first)
    ring = np.abs(np.add.reduceat(cross, offsets[:-1])) / 2
    shell = np.zeros(ring.size, dtype=bool)
    shell[outer[:-1]] = True
    return float(ring[shell].sum() - ring[~shell].sum())


def _grid_gdf(columns: dict[str, Any], results: list[tuple[float, Any]], params: dict[str, Any]):
    """The table of :func:`_grid_polygons`' results (area in m², polygon in lon/lat)."""
    import geopandas as gpd

    area_km2 = np.array([a for a, _ in results], dtype=float) / 1e6
    geoms = gpd.GeoSeries(_object_array([p for _, p in results]), crs=4326)
    gdf = gpd.GeoDataFrame({**columns, "area_km2": area_km2}, geometry=geoms)
    gdf.attrs.update(params)
    return gdf


def _to_gdf(columns: dict[str, Any], polys: np.ndarray, network: WalkNetwork, params: dict[str, Any]):
    import geopandas as gpd

    area_km2 = shapely.area(polys) / 1e6
    data = {**columns, "area_km2": area_km2}
    gdf = gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(polys, crs=network.crs)).to_crs(4326)
    gdf.attrs.update(params)
    return gdf


# --------------------------------------------------------------------------------------------
# parameters
# --------------------------------------------------------------------------------------------


def _prepare(times: WalkingTimes, network: WalkNetwork, what: str, minutes: Any, walk_speed_kmh: Any, buffer_m: Any,
             method: str, ratio: float, categories: Any, cell_m: Any = None):
    """Checked parameters and the split edges shared by :func:`service_areas` and :func:`facility_service_areas`."""
    mins = _check_params(minutes, walk_speed_kmh, buffer_m, method, ratio, cell_m)
    cats = _categories(times, categories)
    mpm = walk_speed_kmh * 1000.0 / 60.0
    h = _cell_size(network, buffer_m, cell_m) if method == "grid" else None
    _log_limits(what, mins, mpm, buffer_m, method, h)
    seg = _graph_edges(times.graph) if method == "grid" else _times_segments(times, network)
    return mins, cats, mpm, mins * mpm, seg, times.graph.point_node[times.n_residents:], h


def _method(method: Any) -> Any:
    return _METHOD_ALIASES.get(method, method) if isinstance(method, str) else method


def _cell_size(network: WalkNetwork, buffer_m: float, cell_m: Any) -> float:
    return grid_cell_m(network, buffer_m=buffer_m) if cell_m is None else float(cell_m)


def _check_params(minutes: Any, walk_speed_kmh: Any, buffer_m: Any, method: str, ratio: float,
                  cell_m: Any = None) -> np.ndarray:
    problems: list[str] = []
    if isinstance(minutes, (int, float)):
        minutes = (minutes,)
    try:
        mins = np.array(sorted({float(m) for m in minutes}), dtype=float)
    except (TypeError, ValueError):
        mins = None
        problems.append(f"minutes must be numbers (got {minutes!r}); e.g. minutes=(5, 10, 15)")
    if mins is not None and (mins.size == 0 or not np.all(np.isfinite(mins)) or (mins <= 0).any()):
        problems.append(f"minutes must be one or more positive numbers (got {list(mins)}); e.g. minutes=(5, 10, 15)")
    if not _positive(walk_speed_kmh):
        problems.append(f"walk_speed_kmh must be a positive number (got {walk_speed_kmh}); e.g. walk_speed_kmh=4")
    if not _positive(buffer_m):
        problems.append(f"buffer_m must be a positive number of metres (got {buffer_m}); e.g. buffer_m=25 "
                        "(half a street block's depth)")
    if method not in METHODS:
        problems.append(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    if not (isinstance(ratio, (int, float)) and 0 <= ratio <= 1):
        problems.append(f"concave_ratio must be in [0, 1] (got {ratio}); e.g. concave_ratio=0.3")
    if cell_m is not None and not (_positive(cell_m) and (not _positive(buffer_m) or cell_m <= buffer_m)):
        problems.append(f"cell_m must be a positive number of metres no larger than buffer_m (got {cell_m}); "
                        "e.g. cell_m=10, or leave it out to let the study area choose")
    if problems:
        raise InputDataError("; ".join(problems))
    return mins


def _positive(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def _unpack(times: Any, network: WalkNetwork | None, minutes: Any, walk_speed_kmh: float | None):
    """Accept an :class:`~lifecircle.pipeline.Analysis` (anything with ``times``, ``network`` and
    ``config``) or a :class:`WalkingTimes` + network."""
    if isinstance(getattr(times, "times", None), WalkingTimes) and hasattr(times, "config"):
        cfg = times.config
        _check_graph(times.times)
        return (times.times, network if network is not None else times.network,
                cfg.minutes if minutes is None else minutes,
                cfg.walk_speed_kmh if walk_speed_kmh is None else walk_speed_kmh, times.facilities)
    if not isinstance(times, WalkingTimes):
        raise InputDataError(f"expected an Analysis (from analyze) or WalkingTimes (from walking_times), "
                             f"got {type(times).__name__}")
    _check_graph(times)
    if network is None:
        raise InputDataError("service areas from WalkingTimes need the network they were computed on: "
                             "pass network=... (or pass the Analysis instead)")
    if times.graph.n_network_nodes != network.n_nodes:
        raise InputDataError(f"the walking times were computed on a network of {times.graph.n_network_nodes:,} nodes, "
                             f"not this one ({network.n_nodes:,}); pass the network given to walking_times")
    return (times, network, (5.0, 10.0, 15.0) if minutes is None else minutes,
            DEFAULT_WALK_SPEED_KMH if walk_speed_kmh is None else walk_speed_kmh, None)


def _check_graph(times: WalkingTimes) -> None:
    if times.graph is None:
        raise InputDataError("service areas need the access graph, which a tiled run (lifecircle.scale.partition) does not "
                             "keep and Analysis.areas(release=True) drops; run lifecircle.measure.walking_times (or "
                             "analyze without walking_times_fn, or lifecircle.load_analysis(folder)) for them")


def _categories(times: WalkingTimes, categories: Iterable[str] | str | None) -> list[str]:
    have = list(times.distances_m)
    if categories is None:
        return have
    cats = [categories] if isinstance(categories, str) else list(categories)
    unknown = [c for c in cats if c not in have]
    if unknown or not cats:
        raise InputDataError(f"no walking times for categories {unknown or '(none given)'}: the analysis has "
                             f"{', '.join(have)}; choose among those or re-run with --categories")
    return cats


def _log_limits(what: str, mins: np.ndarray, mpm: float, buffer_m: float, method: str,
                cell_m: float | None = None) -> None:
    how = f"grid of {cell_m:g} m cells" if cell_m is not None else method
    log.info("%s (%s): %s, buffer %g m", what, how, ", ".join(f"{m:g} min = {m * mpm:.0f} m" for m in mins), buffer_m)


def _grid_points(times: WalkingTimes, network: WalkNetwork):
    """The grid segments of an analysis (with every snapped facility's leg) and the snapped facilities' categories."""
    fac = times.n_residents + np.arange(len(times.facility_snap))
    px = np.concatenate([times.resident_snap.x, times.facility_snap.x])
    py = np.concatenate([times.resident_snap.y, times.facility_snap.y])
    st = _grid_streets(network, times.graph, px, py, fac)
    snapped = times.graph.point_node[fac] >= 0
    return st, np.asarray(times.facility_category)[snapped], np.flatnonzero(snapped)


def _category_fields(times: WalkingTimes, seg: _Segments | _Edges, cats: list[str], fac_nodes: np.ndarray,
                     limit_m: float) -> dict[str, np.ndarray]:
    """Each category's distance field, searched again when its search stopped before ``limit_m``."""
    out = {}
    for cat in cats:
        d = times.distances_m[cat]
        if _truncated(seg, d, limit_m):
            log.info("the %s walking-time search stopped before %.0f m; searching again", cat, limit_m)
            src = np.unique(fac_nodes[(times.facility_category == cat) & (fac_nodes >= 0)])
            d = times.graph.distances_from(src, limit_m=limit_m)
        out[cat] = d
    return out


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------


def service_areas(
    times: Any,
    network: WalkNetwork | None = None,
    *,
    minutes: Iterable[float] | float | None = None,
    walk_speed_kmh: float | None = None,
    buffer_m: float = DEFAULT_BUFFER_M,
    categories: Iterable[str] | str | None = None,
    method: str = "grid",
    concave_ratio: float = DEFAULT_CONCAVE_RATIO,
    cell_m: float | None = None,
):
    """Where on the network each category's nearest facility is within ``minutes`` of walking.

    Parameters
    ----------
    times : Analysis or WalkingTimes
        An :class:`~lifecircle.pipeline.Analysis` (then ``network``, ``minutes`` and
        ``walk_speed_kmh`` default to its own), or the result of
        :func:`~lifecircle.measure.walking_times.walking_times` together with ``network``.
        The distance field of each category (``times.distances_m``) is reused. It is recomputed
        only when its search stopped short of the largest ``minutes``.
    network : WalkNetwork
        The network ``times`` was computed on.
    minutes : float or sequence of float
        Thresholds. Default: the analysis's, else ``(5, 10, 15)``.
    walk_speed_kmh : float
        Default: the analysis's, else 4 km/h.
    buffer_m : float
        Walkable width on each side of a reachable street (module docstring: why 25 m).
    categories : sequence of str, optional
        Default: every category of ``times``.
    method : {"grid", "exact", "concave"}
        ``"grid"`` (default): every point within ``buffer_m`` of a reached street position, contoured from
        a grid of ``cell_m`` cells; the areas are within :data:`GRID_TOLERANCE` of ``"exact"``, about 5 CPU
        seconds for all categories and thresholds of a million-node city. ``"exact"``: the same set, as the union of the buffered reached street lines
        (minutes and GBs at a million nodes). ``"concave"``: buffered concave hulls (display only).
        See the module docstring.
    concave_ratio : float
        ``ratio`` of :func:`shapely.concave_hull` for ``method="concave"``.
    cell_m : float, optional
        Cell size of ``method="grid"`` in metres; default :func:`grid_cell_m` (5-20 m from the study area).

    Returns
    -------
    GeoDataFrame
        One row per (category, minutes), with the columns ``category, minutes, area_km2, geometry``, in EPSG:4326.
        ``area_km2`` is measured in the network's UTM CRS. ``attrs`` records ``method``, ``buffer_m``,
        ``walk_speed_kmh`` and (grid) ``cell_m``.

    Examples
    --------
    The toy town's health centre, at (100, 10) m, joins the street at y = 0 m, 10 m from the centre.
    Within 1.5 minutes (100 m) it reaches 10 m of access leg and 90 m of street each way. With
    ``buffer_m=25``, that gives 180 × 50 m, plus the two end caps π 25², plus the part of the leg's cap
    beyond the street's buffer (a circular segment of 280 m²), so 11,243 m² (the polygon's 32-gon
    circles make it 16 m² less):

    >>> from lifecircle import analyze, AnalysisConfig
    >>> from lifecircle.datasets import toy_town_osm
    >>> a = analyze(toy_town_osm(), config=AnalysisConfig(categories=("health", "sports")))
    >>> sa = service_areas(a, minutes=[1.5, 15], categories="health", method="exact")
    >>> sa[["category", "minutes"]].values.tolist()
    [['health', 1.5], ['health', 15.0]]
    >>> round(float(sa.area_km2[0]) * 1e6)
    11227
    >>> sa.crs.to_epsg()
    4326

    The grid (5 m cells on the toy town) finds the same area to 0.2 %:

    >>> grid = service_areas(a, minutes=1.5, categories="health")
    >>> grid.attrs["cell_m"], abs(float(grid.area_km2[0]) * 1e6 / 11243 - 1) < 0.002
    (5.0, True)
    """
    return _service_areas_begun(times, network, minutes=minutes, walk_speed_kmh=walk_speed_kmh, buffer_m=buffer_m,
                                categories=categories, method=method, concave_ratio=concave_ratio, cell_m=cell_m)()


def _service_areas_begun(times: Any, network: WalkNetwork | None = None, *, minutes: Any = None,
                         walk_speed_kmh: float | None = None, buffer_m: float = DEFAULT_BUFFER_M, categories: Any = None,
                         method: str = "grid", concave_ratio: float = DEFAULT_CONCAVE_RATIO, cell_m: float | None = None,
                         wkb: bool = False):
    """:func:`service_areas` in two steps: what needs the walking times (their access graph and distance
    fields) is done here; the returned ``finish()`` makes the result from what it keeps, which refers to
    neither. ``method="grid"``: finish() contours the layers; the other methods are done here. ``wkb=True``
    (the areas are to be written: ``Analysis.areas``): a city's polygons come with their WKB made as they are
    drawn, which :func:`lifecircle.present.vectors.write_vector` takes (16 bytes a vertex until then)."""
    method = _method(method)
    times, network, minutes, walk_speed_kmh, _ = _unpack(times, network, minutes, walk_speed_kmh)
    mins, cats, mpm, limits, seg, fac_nodes, h = _prepare(times, network, "service areas", minutes, walk_speed_kmh,
                                                           buffer_m, method, concave_ratio, categories, cell_m)
    columns = {"category": np.repeat(cats, len(limits)), "minutes": np.tile(mins, len(cats))}
    params = {"walk_speed_kmh": walk_speed_kmh, "buffer_m": buffer_m, "method": method}
    if method == "grid":
        fields = _category_fields(times, seg, cats, fac_nodes, limits[-1])
        del seg  # the access graph's edges: only the check for truncated searches needs them
        st, fcat, _ = _grid_points(times, network)
        plan = _grid_plan(st, network, [(fields[cat], fcat == cat, None) for cat in cats], limits, buffer_m, h)
        streets, crs = [st], network.crs
        del fields, st  # the searches made again (if any) are in the plan; the segments are handed over

        return lambda: _grid_service_areas_finish(columns, plan, streets, crs, {**params, "cell_m": h}, wkb=wkb)
    parts: list[_Pieces] = []
    for ci, cat in enumerate(cats):
        src = np.unique(fac_nodes[(times.facility_category == cat) & (fac_nodes >= 0)])
        src_a = src_b = None
        if method == "concave":  # the territory of each source is needed: search again
            d, _, owner = dijkstra(times.graph.matrix, directed=True, indices=src, min_only=True,
                                   limit=limits[-1], return_predecessors=True)
        else:
            d = _category_fields(times, seg, [cat], fac_nodes, limits[-1])[cat]
        keep = (seg.leg_node < 0) | (d[np.maximum(seg.leg_node, 0)] == 0)  # a source's own access leg
        da, db = d[seg.a], d[seg.b]
        near = np.minimum(da, db)
        for li, lim in enumerate(limits):
            rows = np.flatnonzero(keep & (near <= lim))
            if method == "concave":
                src_a, src_b = owner[seg.a[rows]], owner[seg.b[rows]]
            parts.append(_pieces(seg, rows, da[rows], db[rows], np.full(rows.size, lim),
                                 np.full(rows.size, ci * len(limits) + li), src_a, src_b))
    polys = _polygons(_concat(parts), len(cats) * len(limits), buffer_m=buffer_m, method=method, ratio=concave_ratio)
    gdf = _to_gdf(columns, polys, network, params)
    return lambda: gdf


def _grid_service_areas_finish(columns: dict[str, Any], plan: _GridPlan, streets: list, crs: Any,
                               params: dict[str, Any], *, wkb: bool = False):
    """:func:`service_areas`' second step for ``method="grid"``: the layers, contours and table."""
    return _grid_gdf(columns, _plan_polygons(plan, streets, crs, wkb=wkb), params)


def facility_service_areas(
    times: Any,
    network: WalkNetwork | None = None,
    facilities: Any = None,
    *,
    minutes: Iterable[float] | float | None = None,
    walk_speed_kmh: float | None = None,
    buffer_m: float = DEFAULT_BUFFER_M,
    categories: Iterable[str] | str | None = None,
    method: str = "grid",
    concave_ratio: float = DEFAULT_CONCAVE_RATIO,
    chunk_size: int | None = None,
    cell_m: float | None = None,
):
    """The service area of every single facility: what it serves within ``minutes``.

    The per-facility distance fields come from one bounded scipy ``dijkstra`` call over all
    facility nodes, in chunks of ``chunk_size`` rows (default: as many as fit in 64 MB). No
    Python loop runs a graph search per facility.

    Parameters
    ----------
    times : Analysis or WalkingTimes
        As in :func:`service_areas`.
    network : WalkNetwork
        Needed with ``WalkingTimes``.
    facilities : GeoDataFrame
        Needed with ``WalkingTimes``: the facilities given to ``walking_times``, in the same order.
        ``name`` is taken from its ``name`` column when there is one.
    minutes, walk_speed_kmh, buffer_m, categories, method, concave_ratio, cell_m
        As in :func:`service_areas`.
    chunk_size : int, optional
        Facilities per ``dijkstra`` call.

    Returns
    -------
    GeoDataFrame
        One row per (snapped facility, minutes), with the columns ``facility_index`` (the facility's index label),
        ``category, name, minutes, area_km2, geometry``, in EPSG:4326. Facilities that did not
        snap have no row.

    Examples
    --------
    >>> from lifecircle import analyze
    >>> from lifecircle.datasets import toy_town_osm
    >>> a = analyze(toy_town_osm())
    >>> fsa = facility_service_areas(a, minutes=[5, 15])
    >>> len(fsa), fsa.columns.tolist()
    (10, ['facility_index', 'category', 'name', 'minutes', 'area_km2', 'geometry'])
    >>> fsa[fsa.category == "health"][["name", "minutes"]].values.tolist()
    [['城西社区卫生服务中心', 5.0], ['城西社区卫生服务中心', 15.0]]
    """
    method = _method(method)
    times, network, minutes, walk_speed_kmh, fac_default = _unpack(times, network, minutes, walk_speed_kmh)
    facilities = fac_default if facilities is None else facilities
    if facilities is None:
        raise InputDataError("facility_service_areas from WalkingTimes needs the facilities given to "
                             "walking_times: pass facilities=... (or pass the Analysis instead)")
    n_fac = len(times.facility_snap)
    if len(facilities) != n_fac:
        raise InputDataError(f"facilities has {len(facilities)} rows but the walking times were computed for "
                             f"{n_fac}; pass the same facilities given to walking_times")
    mins, cats, mpm, limits, seg, fac_nodes, h = _prepare(times, network, "facility service areas", minutes,
                                                           walk_speed_kmh, buffer_m, method, concave_ratio, categories,
                                                           cell_m)
    chosen = np.flatnonzero(np.isin(times.facility_category, cats) & (fac_nodes >= 0))
    skipped = int((np.isin(times.facility_category, cats) & (fac_nodes < 0)).sum())
    if skipped:
        log.info("%d facilities did not snap to the network and have no service area", skipped)
    if chosen.size == 0:
        raise EmptyResultError(f"no snapped facility in categories {', '.join(cats)}: nothing to draw; "
                               "check the facilities and --max-snap-m")
    n_nodes = times.graph.n_nodes
    if chunk_size is None:
        chunk_size = max(1, _CHUNK_BYTES // (8 * n_nodes))
    elif not (isinstance(chunk_size, (int, np.integer)) and chunk_size > 0):
        raise InputDataError(f"chunk_size must be a positive integer (got {chunk_size!r})")
    n_lim = len(limits)
    log.info("service areas of %d facilities (%d dijkstra calls of up to %d sources)", chosen.size,
             -(-chosen.size // chunk_size), chunk_size)
    if method == "grid":
        results = _facility_grid(times, network, seg, cats, fac_nodes, chosen, limits, buffer_m, h, chunk_size)
    else:
        polys = _facility_pieces(times, seg, fac_nodes, chosen, limits, buffer_m, method, concave_ratio, chunk_size)
    names = (facilities["name"].to_numpy(dtype=object)[chosen] if "name" in facilities.columns
             else np.full(chosen.size, None, dtype=object))
    names = np.where(pd.isna(names), None, names)
    columns = {
        "facility_index": np.repeat(np.asarray(facilities.index)[chosen], n_lim),
        "category": np.repeat(times.facility_category[chosen], n_lim),
        "name": np.repeat(names, n_lim),
        "minutes": np.tile(mins, chosen.size),
    }
    params = {"walk_speed_kmh": walk_speed_kmh, "buffer_m": buffer_m, "method": method}
    if method == "grid":
        return _grid_gdf(columns, results, {**params, "cell_m": h})
    return _to_gdf(columns, polys, network, params)


def _facility_grid(times: WalkingTimes, network: WalkNetwork, seg: _Edges, cats: list[str], fac_nodes: np.ndarray,
                   chosen: np.ndarray, limits: np.ndarray, buffer_m: float, h: float, chunk_size: int) -> list:
    """``method="grid"`` (area, polygon) of each chosen facility (rows: facility-major, then limits)."""
    fields = _category_fields(times, seg, cats, fac_nodes, limits[-1])
    st, fcat, snapped = _grid_points(times, network)
    n, E, m = network.n_nodes, st.n_edges, st.n_points
    point_of = np.full(len(times.facility_snap), -1, dtype=np.int64)
    point_of[snapped] = np.arange(m)
    incidence = sp.csr_matrix((np.ones(2 * E), (np.concatenate([network.u, network.v]), np.tile(np.arange(E), 2))),
                              shape=(n, E))
    polys = []
    for start in range(0, chosen.size, chunk_size):  # chunks bound memory; one dijkstra per chunk
        block = chosen[start:start + chunk_size]
        d = np.atleast_2d(dijkstra(times.graph.matrix, directed=True, indices=fac_nodes[block], limit=limits[-1]))
        f, e = (sp.csr_matrix(np.isfinite(d[:, :n]).astype(np.float64)) @ incidence).nonzero()
        cuts = np.searchsorted(f, np.arange(block.size + 1))
        for r, fi in enumerate(block):  # one small grid per facility, around what it reaches
            p = point_of[fi]
            segs = np.concatenate([np.sort(e[cuts[r]:cuts[r + 1]]), [E + p, E + m + p]])
            source = np.zeros(m, dtype=bool)
            source[p] = True
            polys.extend(_grid_polygons(st, network, [(d[r], source, segs)], limits, buffer_m, h))
    return polys


def _facility_pieces(times: WalkingTimes, seg: _Segments, fac_nodes: np.ndarray, chosen: np.ndarray,
                     limits: np.ndarray, buffer_m: float, method: str, concave_ratio: float,
                     chunk_size: int) -> np.ndarray:
    """``method="exact"``/``"concave"`` polygons of each chosen facility (rows: facility-major, then limits)."""
    n_nodes = times.graph.n_nodes
    # node -> incident edges, to find the edges a facility reaches without a dense facility × edge array
    n_seg = len(seg.a)
    incidence = sp.csr_matrix(
        (np.ones(2 * n_seg), (np.concatenate([seg.a, seg.b]), np.tile(np.arange(n_seg), 2))), shape=(n_nodes, n_seg)
    )
    n_lim = len(limits)
    polys = []
    for start in range(0, chosen.size, chunk_size):  # chunks bound memory; one dijkstra per chunk
        block = chosen[start:start + chunk_size]
        d = np.atleast_2d(dijkstra(times.graph.matrix, directed=True, indices=fac_nodes[block], limit=limits[-1]))
        reached = sp.csr_matrix(np.isfinite(d).astype(np.float64))
        f, e = (reached @ incidence).nonzero()
        da, db = d[f, seg.a[e]], d[f, seg.b[e]]
        own = (seg.leg_node[e] < 0) | (seg.leg_node[e] == fac_nodes[block][f])  # only the facility's own leg
        f, e, da, db = f[own], e[own], da[own], db[own]
        near = np.minimum(da, db)
        parts = []
        for li, lim in enumerate(limits):
            sel = near <= lim
            parts.append(_pieces(seg, e[sel], da[sel], db[sel], np.full(sel.sum(), lim), f[sel] * n_lim + li))
        polys.append(_polygons(_concat(parts), block.size * n_lim, buffer_m=buffer_m, method=method, ratio=concave_ratio))
    return np.concatenate(polys)


def point_isochrones(
    network: WalkNetwork,
    lon: float,
    lat: float,
    *,
    minutes: Iterable[float] | float = (5, 10, 15),
    walk_speed_kmh: float = DEFAULT_WALK_SPEED_KMH,
    buffer_m: float = DEFAULT_BUFFER_M,
    max_snap_m: float = 500.0,
    method: str = "grid",
    concave_ratio: float = DEFAULT_CONCAVE_RATIO,
    cell_m: float | None = None,
):
    """What a resident at ``(lon, lat)`` can reach on foot within each of ``minutes``.

    The point joins the nearest street like a resident does (its access leg counts as walking).

    Parameters
    ----------
    network : WalkNetwork
    lon, lat : float
        WGS84 degrees (not GCJ-02/BD-09: convert web-map coordinates first, see
        :mod:`lifecircle.read.crs`).
    minutes, walk_speed_kmh, buffer_m, method, concave_ratio, cell_m
        As in :func:`service_areas`.
    max_snap_m : float
        A point farther than this from every walkable street is an error.

    Returns
    -------
    GeoDataFrame
        One row per minutes, with the columns ``minutes, area_km2, snap_dist_m, geometry``, in EPSG:4326.

    Examples
    --------
    From the toy town's south-west corner (0, 0) m, 3 minutes at 4 km/h is 200 m. That reaches exactly
    200 m of street north and 200 m east (the private footway at x = 100 m is not walkable).
    With ``buffer_m=25``, the area is 2 × 200 × 50 m minus their 25 × 25 m overlap, plus a quarter disc at
    the corner and two half discs at the ends, so 21,829 m²:

    >>> from lifecircle import network_from_osm
    >>> from lifecircle.datasets import toy_town_osm
    >>> net = network_from_osm(toy_town_osm())
    >>> iso = point_isochrones(net, 121.40, 31.20, minutes=3, method="exact")
    >>> round(float(iso.area_km2[0]) * 1e6)  # m²: 20000 − 625 + (1/4 + 1/2 + 1/2) π 625, less 15 for the 32-gons
    21814
    >>> grid = point_isochrones(net, 121.40, 31.20, minutes=3)  # 5 m cells: within 0.1 % of 21,829 m²
    >>> abs(float(grid.area_km2[0]) * 1e6 / 21829 - 1) < 0.001
    True
    >>> point_isochrones(net, 31.20, 121.40)
    Traceback (most recent call last):
    ...
    lifecircle.errors.CRSError: latitude 121.4 is outside [-90, 90]: the point looks like (lat, lon); pass lon first, then lat
    """
    method = _method(method)
    mins = _check_params(minutes, walk_speed_kmh, buffer_m, method, concave_ratio, cell_m)
    lon_f, lat_f = float(lon), float(lat)
    if not (math.isfinite(lon_f) and math.isfinite(lat_f)):
        raise InputDataError(f"the point ({lon}, {lat}) has no valid coordinates; give WGS84 lon and lat in degrees")
    if abs(lat_f) > 90:
        raise CRSError(f"latitude {lat_f:g} is outside [-90, 90]: the point looks like (lat, lon); "
                       "pass lon first, then lat")
    snap = snap_points(network, [lon_f], [lat_f], max_snap_m=max_snap_m)
    if not snap.snapped[0]:
        raise InputDataError(
            f"the point ({lon_f:.6f}, {lat_f:.6f}) is {snap.dist_m[0]:,.0f} m from the nearest walkable street "
            f"(max_snap_m={max_snap_m:g}); check the lon/lat order and that it is WGS84 (not GCJ-02 from a "
            "Chinese web map: convert with lifecircle.read.crs), or that the network covers it"
        )
    mpm = walk_speed_kmh * 1000.0 / 60.0
    limits = mins * mpm
    h = _cell_size(network, buffer_m, cell_m) if method == "grid" else None
    _log_limits("isochrone", mins, mpm, buffer_m, method, h)
    graph = build_access_graph(network, snap)
    d = graph.distances_from(graph.point_node, limit_m=limits[-1])
    columns = {"minutes": mins, "snap_dist_m": np.full(len(mins), round(float(snap.dist_m[0]), 2))}
    params = {"walk_speed_kmh": walk_speed_kmh, "buffer_m": buffer_m, "method": method, "lon": lon_f, "lat": lat_f}
    if method == "grid":
        st = _grid_streets(network, graph, snap.x, snap.y, np.array([0]))
        source = np.ones(1, dtype=bool)
        return _grid_gdf(columns, _grid_polygons(st, network, [(d, source, None)], limits, buffer_m, h),
                         {**params, "cell_m": h})
    seg = _segments(graph, network, snap.x, snap.y)
    da, db = d[seg.a], d[seg.b]
    near = np.minimum(da, db)
    parts = []
    for li, lim in enumerate(limits):
        rows = np.flatnonzero(near <= lim)
        parts.append(_pieces(seg, rows, da[rows], db[rows], np.full(rows.size, lim), np.full(rows.size, li)))
    polys = _polygons(_concat(parts), len(limits), buffer_m=buffer_m, method=method, ratio=concave_ratio)
    return _to_gdf(columns, polys, network, params)


def write_isochrones(gdf, path: str | os.PathLike[str], *, by: Iterable[str] = ("category", "minutes")) -> list[str]:
    """Write service areas to a GeoPackage, one layer per group (e.g. ``health_15min``).

    Parameters
    ----------
    gdf : GeoDataFrame
        The output of :func:`service_areas`, :func:`facility_service_areas` (whose layers are named
        ``facilities_<category>_<N>min``) or :func:`point_isochrones` (``isochrone_<N>min``).
    path : path
        The ``.gpkg`` to write. It is written to a temporary file and then renamed, so a failure leaves
        no half-written file. An existing file is replaced.
    by : sequence of str
        Columns that split rows into layers. Columns that ``gdf`` lacks are skipped.

    Returns
    -------
    list of str
        The layer names, in the order written.

    Examples
    --------
    >>> import os, tempfile, pyogrio
    >>> from lifecircle import network_from_osm
    >>> from lifecircle.datasets import toy_town_osm
    >>> iso = point_isochrones(network_from_osm(toy_town_osm()), 121.40, 31.20, minutes=(5, 10))
    >>> f = os.path.join(tempfile.mkdtemp(), "iso.gpkg")
    >>> write_isochrones(iso, f)
    ['isochrone_5min', 'isochrone_10min']
    >>> pyogrio.read_info(f, layer="isochrone_10min")["crs"]
    'EPSG:4326'
    """
    import geopandas as gpd

    if not isinstance(gdf, gpd.GeoDataFrame) or gdf.crs is None:
        raise InputDataError("write_isochrones needs a GeoDataFrame with a CRS (the output of service_areas, "
                             "facility_service_areas or point_isochrones)")
    if len(gdf) == 0:
        raise EmptyResultError("no isochrones to write: the table is empty")
    keys = [c for c in by if c in gdf.columns]
    if not keys:
        raise InputDataError(f"none of the columns {list(by)} is in the table (columns: {', '.join(map(str, gdf.columns))}); "
                             "pass by=... with the columns that split it into layers")
    out = gdf.to_crs(4326)
    for c in out.columns:
        if c != out.geometry.name and pd.api.types.is_float_dtype(out[c]):
            out[c] = out[c].replace([np.inf, -np.inf], np.nan)
    prefix = "facilities" if "facility_index" in out.columns else ("" if "category" in keys else "isochrone")
    groups = out.groupby(keys, sort=False)
    names = [_layer_name(prefix, keys, key if isinstance(key, tuple) else (key,)) for key, _ in groups]
    if len(set(names)) != len(names):
        raise InputDataError(f"the groups of {keys} give clashing layer names ({', '.join(names)}); "
                             "choose other by= columns")
    with atomic_path(path) as tmp:
        for name, (_, rows) in zip(names, groups):
            rows.to_file(tmp, layer=name, driver="GPKG", engine="pyogrio", promote_to_multi=True)
    from .vectors import forget_wkb

    forget_wkb(out.geometry.values)  # (a city's WKB made for one layer: these layers made their own)
    log.info("wrote %d isochrone layers to %s", len(names), Path(path).name)
    return names


def _layer_name(prefix: str, keys: list[str], values: tuple) -> str:
    parts = [prefix] if prefix else []
    for k, v in zip(keys, values):
        parts.append(f"{float(v):g}min" if k == "minutes" else str(v))
    return re.sub(r"[^0-9A-Za-z_]+", "_", "_".join(parts))
