"""Join points to the walking network at the nearest point of the nearest walkable edge.

Every resident and facility is projected onto the nearest edge (not the nearest node): the
straight access leg from the point to the edge counts as walking, and the walk continues
along the edge in both directions. Points farther than ``max_snap_m`` from every edge are
reported as unsnapped (``snapped == False``), never silently dropped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pyproj

from ..errors import InputDataError
from ..read.network import WalkNetwork

log = logging.getLogger("lifecircle")

__all__ = ["Snap", "snap_points", "release_index"]


@dataclass(frozen=True)
class Snap:
    """Where each point joins the network.

    ``edge`` indexes the network's edges (-1 when unsnapped), ``t`` is the position along the
    edge from ``u`` (0) to ``v`` (1), ``dist_m`` the access-leg length (also filled for unsnapped
    points), ``x``/``y`` the point in the network's metric CRS.
    """

    edge: np.ndarray
    t: np.ndarray
    dist_m: np.ndarray
    x: np.ndarray
    y: np.ndarray

    @property
    def snapped(self) -> np.ndarray:
        return self.edge >= 0

    def __len__(self) -> int:
        return len(self.edge)


#: Segments are indexed by points at most this far apart along them (see :func:`_nearest_segments`).
_PIECE_M = 50.0


class _SegmentIndex:
    """Exact nearest segment for many points, with a k-d tree of points spread along the segments.

    Every segment is cut into pieces no longer than :data:`_PIECE_M`, and the k-d tree holds the
    pieces' midpoints. A segment within distance ``d`` of a point has a piece midpoint within
    ``d + half`` of it (``half``: the longest half-piece), so once the k nearest midpoints reach
    beyond ``best + half`` every segment that could be nearer has been measured; points where they
    do not are asked again with 4k. Exact ties go to the lowest edge index.
    """

    def __init__(self, network: WalkNetwork, edges: np.ndarray | None = None):
        from scipy.spatial import cKDTree

        # the index covers ``edges`` (all by default); nearest() returns network edge indices
        self.edges = np.arange(network.n_edges) if edges is None else np.asarray(edges, dtype=np.int64)
        u, v = network.u[self.edges], network.v[self.edges]
        self.ax, self.ay = network.x[u], network.y[u]
        self.dx, self.dy = network.x[v] - self.ax, network.y[v] - self.ay
        self.l2 = self.dx * self.dx + self.dy * self.dy
        length = np.sqrt(self.l2)
        k = np.maximum(1, np.ceil(length / _PIECE_M)).astype(np.int64)
        self.piece_edge = np.repeat(np.arange(self.edges.size), k)
        first = np.cumsum(k) - k
        frac = (np.arange(self.piece_edge.size) - first[self.piece_edge] + 0.5) / k[self.piece_edge]
        mx = self.ax[self.piece_edge] + frac * self.dx[self.piece_edge]
        my = self.ay[self.piece_edge] + frac * self.dy[self.piece_edge]
        self.half = float((length / (2 * k)).max()) if k.size else 0.0
        self.tree = cKDTree(np.column_stack([mx, my]), balanced_tree=False)

    def _measure(self, px, py, edges):
        """Distance and position ``t`` along each candidate (positions in ``self.edges``, any shape)."""
        ax, ay, dx, dy, l2 = (a[edges] for a in (self.ax, self.ay, self.dx, self.dy, self.l2))
        with np.errstate(invalid="ignore", divide="ignore"):
            tt = np.where(l2 > 0, ((px - ax) * dx + (py - ay) * dy) / l2, 0.0)
        tt = np.clip(tt, 0.0, 1.0)
        return np.hypot(ax + tt * dx - px, ay + tt * dy - py), tt

    def nearest(self, px: np.ndarray, py: np.ndarray) -> np.ndarray:
        """Position (in ``self.edges``) of the nearest segment of every point."""
        n_pieces = self.piece_edge.size
        seg = np.full(px.size, -1, dtype=np.int64)
        todo = np.arange(px.size)
        k = min(8, n_pieces)
        while todo.size:
            qx, qy = px[todo], py[todo]
            d_mid, idx = self.tree.query(np.column_stack([qx, qy]), k=k, workers=-1)
            d_mid, idx = d_mid.reshape(todo.size, -1), idx.reshape(todo.size, -1)
            cand = self.piece_edge[idx]
            d, _ = self._measure(qx[:, None], qy[:, None], cand)
            best = d.min(axis=1)
            seg[todo] = np.where(d == best[:, None], cand, np.iinfo(np.int64).max).min(axis=1)
            if k >= n_pieces:
                break
            todo = todo[~(d_mid[:, -1] > best + self.half)]
            k = min(4 * k, n_pieces)
        return seg


def _segment_index(network: WalkNetwork, main_component: bool = False) -> _SegmentIndex:
    cache = network.__dict__
    key = "_segment_index_main" if main_component else "_segment_index"
    if key not in cache:
        cache[key] = _SegmentIndex(network, network.largest_component_edges() if main_component else None)
    return cache[key]


def release_index(network: WalkNetwork) -> None:
    """Free the segment index :func:`snap_points` keeps on ``network`` (it is made again when next needed).

    Its k-d tree and per-edge arrays take about 150 bytes per edge (~0.6 GB for a 4M-node city).

    >>> net = WalkNetwork.from_lonlat([121.40, 121.4021], [31.20, 31.20], [0], [1])
    >>> _ = snap_points(net, [121.401], [31.2002])
    >>> release_index(net); "_segment_index" in net.__dict__
    False
    """
    for key in ("_segment_index", "_segment_index_main"):
        network.__dict__.pop(key, None)


def snap_points(network: WalkNetwork, lon, lat, *, max_snap_m: float = 500.0, main_component: bool = False) -> Snap:
    """Snap WGS84 points to the nearest walkable edge, vectorised.

    Parameters
    ----------
    network : WalkNetwork
    lon, lat : array-like
        Point coordinates in WGS84 degrees.
    max_snap_m : float
        Longest access leg accepted; farther points get ``edge == -1``.
    main_component : bool
        Join only edges of the network's largest connected part
        (:meth:`~lifecircle.read.network.WalkNetwork.largest_component_edges`), so that nobody is
        stranded on a fragment cut off from the rest; the access leg can then be longer.

    Examples
    --------
    A point 30 m north of the middle of a 200 m street:

    >>> net = WalkNetwork.from_lonlat([121.40, 121.4021], [31.20, 31.20], [0], [1])
    >>> s = snap_points(net, [121.40105], [31.20027])
    >>> int(s.edge[0]), round(float(s.t[0]), 2), round(float(s.dist_m[0]))
    (0, 0.5, 30)
    """
    lon = np.asarray(lon, dtype=float).ravel()
    lat = np.asarray(lat, dtype=float).ravel()
    if lon.shape != lat.shape:
        raise InputDataError("lon and lat must have the same length")
    n = len(lon)
    to_m = pyproj.Transformer.from_crs(4326, network.crs, always_xy=True)
    x, y = (np.asarray(a, dtype=float) for a in to_m.transform(lon, lat))
    edge = np.full(n, -1, dtype=np.int64)
    t = np.full(n, np.nan)
    dist = np.full(n, np.inf)
    finite = np.isfinite(x) & np.isfinite(y)
    if n == 0 or not finite.any():
        return Snap(edge, t, dist, x, y)
    index = _segment_index(network, main_component)
    idx = np.flatnonzero(finite)
    px, py = x[idx], y[idx]
    # nearest segment for every point, no distance limit, so that unsnapped points still report
    # how far they are
    seg = index.nearest(px, py)
    d, tt = index._measure(px, py, seg)
    ok = d <= max_snap_m
    edge[idx[ok]] = index.edges[seg[ok]]
    t[idx] = tt
    dist[idx] = d
    return Snap(edge, t, dist, x, y)


#: suggest_crs looks at no more than this many points (an even sample of larger inputs).
SUGGEST_CRS_SAMPLE = 20_000


def suggest_crs(network: WalkNetwork, lon, lat, *, min_points: int = 10, ratio: float = 0.8,
                max_points: int = SUGGEST_CRS_SAMPLE) -> tuple[str, float, float] | None:
    """Guess whether WGS84-declared points are really GCJ-02 or BD-09 (Chinese web-map offsets).

    Points of interest sit near streets; the same points in GCJ-02 (≈ 500 m off in Shanghai) or
    BD-09 sit farther from them. If converting the points from ``gcj02``/``bd09`` to WGS84 brings
    their median distance to the network below ``ratio`` × the median as given, return
    ``(crs_name, median_as_given_m, median_converted_m)``; otherwise None. Of more than
    ``max_points`` points, an evenly spaced sample of ``max_points`` is measured (the medians of
    350,000 residents took 3 s; a sample of 20,000 gives them within a few metres).

    Examples
    --------
    >>> from lifecircle.read.crs import wgs84_to_gcj02
    >>> lon = 121.40 + 0.0002 * np.arange(50); lat = np.full(50, 31.2002)
    >>> net = WalkNetwork.from_lonlat([121.399, 121.420], [31.20, 31.20], [0], [1])
    >>> suggest_crs(net, lon, lat) is None
    True
    >>> suggest_crs(net, *wgs84_to_gcj02(lon, lat))[0]
    'gcj02'
    """
    from ..read.crs import bd09_to_wgs84, gcj02_to_wgs84

    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    ok = np.isfinite(lon) & np.isfinite(lat)
    if ok.sum() < min_points:
        return None
    lon, lat = lon[ok], lat[ok]
    if lon.size > max_points:
        pick = np.linspace(0, lon.size - 1, max_points).round().astype(np.int64)
        lon, lat = lon[pick], lat[pick]
    given = float(np.median(snap_points(network, lon, lat).dist_m))
    best = None
    for name, inverse in (("gcj02", gcj02_to_wgs84), ("bd09", bd09_to_wgs84)):
        lo, la = inverse(lon, lat)
        if np.allclose(lo, lon) and np.allclose(la, lat):
            return None  # outside China: no offset to detect
        med = float(np.median(snap_points(network, lo, la).dist_m))
        if med < ratio * given and (best is None or med < best[2]):
            best = (name, given, med)
    return best
