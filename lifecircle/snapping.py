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

from .errors import InputDataError
from .network import WalkNetwork

log = logging.getLogger("lifecircle")

__all__ = ["Snap", "snap_points"]


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


def _segment_tree(network: WalkNetwork):
    import shapely

    cache = network.__dict__
    if "_segment_tree" not in cache:
        coords = np.stack(
            [np.column_stack([network.x[network.u], network.y[network.u]]),
             np.column_stack([network.x[network.v], network.y[network.v]])], axis=1
        )
        cache["_segment_tree"] = shapely.STRtree(shapely.linestrings(coords))
    return cache["_segment_tree"]


def snap_points(network: WalkNetwork, lon, lat, *, max_snap_m: float = 500.0) -> Snap:
    """Snap WGS84 points to the nearest walkable edge, vectorised.

    Parameters
    ----------
    network : WalkNetwork
    lon, lat : array-like
        Point coordinates in WGS84 degrees.
    max_snap_m : float
        Longest access leg accepted; farther points get ``edge == -1``.

    Examples
    --------
    A point 30 m north of the middle of a 200 m street:

    >>> net = WalkNetwork.from_lonlat([121.40, 121.4021], [31.20, 31.20], [0], [1])
    >>> s = snap_points(net, [121.40105], [31.20027])
    >>> int(s.edge[0]), round(float(s.t[0]), 2), round(float(s.dist_m[0]))
    (0, 0.5, 30)
    """
    import shapely

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
    tree = _segment_tree(network)
    idx = np.flatnonzero(finite)
    pts = shapely.points(x[idx], y[idx])
    # nearest segment for every point (ties: first match), no distance limit, so that unsnapped
    # points still report how far they are
    (qi, ti) = tree.query_nearest(pts, all_matches=False)
    seg = np.full(len(idx), -1, dtype=np.int64)
    seg[qi] = ti
    ax, ay = network.x[network.u[seg]], network.y[network.u[seg]]
    bx, by = network.x[network.v[seg]], network.y[network.v[seg]]
    dx, dy = bx - ax, by - ay
    l2 = dx * dx + dy * dy
    px, py = x[idx], y[idx]
    with np.errstate(invalid="ignore", divide="ignore"):
        tt = np.where(l2 > 0, ((px - ax) * dx + (py - ay) * dy) / l2, 0.0)
    tt = np.clip(tt, 0.0, 1.0)
    d = np.hypot(ax + tt * dx - px, ay + tt * dy - py)
    ok = d <= max_snap_m
    edge[idx[ok]] = seg[ok]
    t[idx] = tt
    dist[idx] = d
    return Snap(edge, t, dist, x, y)


def suggest_crs(network: WalkNetwork, lon, lat, *, min_points: int = 10, ratio: float = 0.8) -> tuple[str, float, float] | None:
    """Guess whether WGS84-declared points are really GCJ-02 or BD-09 (Chinese web-map offsets).

    Points of interest sit near streets; the same points in GCJ-02 (≈ 500 m off in Shanghai) or
    BD-09 sit farther from them. If converting the points from ``gcj02``/``bd09`` to WGS84 brings
    their median distance to the network below ``ratio`` × the median as given, return
    ``(crs_name, median_as_given_m, median_converted_m)``; otherwise None.

    Examples
    --------
    >>> from lifecircle.crs import wgs84_to_gcj02
    >>> lon = 121.40 + 0.0002 * np.arange(50); lat = np.full(50, 31.2002)
    >>> net = WalkNetwork.from_lonlat([121.399, 121.420], [31.20, 31.20], [0], [1])
    >>> suggest_crs(net, lon, lat) is None
    True
    >>> suggest_crs(net, *wgs84_to_gcj02(lon, lat))[0]
    'gcj02'
    """
    from .crs import bd09_to_wgs84, gcj02_to_wgs84

    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    ok = np.isfinite(lon) & np.isfinite(lat)
    if ok.sum() < min_points:
        return None
    lon, lat = lon[ok], lat[ok]
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
