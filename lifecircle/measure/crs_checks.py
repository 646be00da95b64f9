"""Catch Chinese web-map coordinates (GCJ-02, BD-09) read as WGS84, and the reverse, from every signal.

Four signals, each measured and kept in summary.json ``crs_checks``:

* **columns**: coordinate columns named like AMap/Baidu exports (``gcj_lng``, ``bd_lat``, ``高德经度``),
  a source column saying 高德/百度, or DataV.GeoAtlas properties (``adcode`` + ``acroutes``/``center``/
  ``centroid``), which are always GCJ-02 (:func:`lifecircle.read.crs.crs_hints`);
* **streets**: real places (facilities, homes, unit borders) sit near streets. The mean distance to
  the nearest street (capped at ``cap_m``) is compared point by point as given and as converted
  (a paired t over 250 m cells, so that points along one border or in one block count once), and
  the shift that fits the points best to the streets is searched on a 100 m grid: Chinese web-map
  offsets move every point the same way (GCJ-02 in Shanghai ≈ 480 m west-north-west back to WGS84);
* **OSM match**: facilities of a list that match OSM facilities by name sit, as a group, either on
  them or one offset away.

Rules: one strong signal for a hypothesis and none for the data as given -> "likely <crs>" (a
loud warning with the exact fix); a strong signal on both sides, or only weak ones -> "ambiguous"
(a warning saying why); otherwise "ok".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyproj

from ..read.network import WalkNetwork
from .snapping import _segment_index

log = logging.getLogger("lifecircle")

__all__ = ["CRSCheck", "street_fit", "osm_match", "check_input_crs", "check_swapped"]

NAMES = {"wgs84": "WGS84", "gcj02": "GCJ-02 (AMap/Gaode, Tencent, DataV)", "bd09": "BD-09 (Baidu)"}
_COMPASS = ("east", "north-east", "north", "north-west", "west", "south-west", "south", "south-east")


def _bearing(dx: float, dy: float) -> str:
    return _COMPASS[int(np.round(np.degrees(np.arctan2(dy, dx)) / 45.0)) % 8]


#: At most this many points of an input are tried under each CRS reading (evenly spread through the file).
MAX_CHECK_POINTS = 50_000


def _outline_points(x: np.ndarray, y: np.ndarray, bins: int = 4096) -> np.ndarray:
    """Points whose convex hull holds every point and is at most one bin wider: per column of ``bins``
    the corners of its lowest and highest point's row (a city's million nodes become a few thousand,
    so GEOS never holds a million points).

    >>> rng = np.random.default_rng(0); x, y = rng.uniform(0, 1000, (2, 100_000))
    >>> import shapely
    >>> full = shapely.convex_hull(shapely.multipoints(np.column_stack([x, y])))
    >>> few = shapely.convex_hull(shapely.multipoints(_outline_points(x, y, bins=256)))
    >>> len(_outline_points(x, y, bins=256)) <= 4 * 256, few.contains(full), few.area / full.area < 1.01
    (True, True, True)
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) <= 4 * bins:
        return np.column_stack([x, y])
    x0, width = float(x.min()), max(float(x.max() - x.min()), 1e-9) / bins
    k = np.minimum(((x - x0) / width).astype(np.int64), bins - 1)
    lo, hi = np.full(bins, np.inf), np.full(bins, -np.inf)
    np.minimum.at(lo, k, y)
    np.maximum.at(hi, k, y)
    used = np.flatnonzero(np.isfinite(lo))
    left, right = x0 + used * width, x0 + (used + 1) * width
    return np.column_stack([np.concatenate([left, right, left, right]),
                            np.concatenate([lo[used], lo[used], hi[used], hi[used]])])


def _hull(network: WalkNetwork):
    import shapely

    cache = network.__dict__
    if "_hull" not in cache:
        hull = shapely.convex_hull(shapely.multipoints(_outline_points(network.x, network.y)))
        shapely.prepare(hull)
        cache["_hull"] = hull
    return cache["_hull"]


def _capped_dist(network: WalkNetwork, x: np.ndarray, y: np.ndarray, cap_m: float) -> np.ndarray:
    index = _segment_index(network)
    shape = x.shape
    x, y = x.ravel(), y.ravel()
    d = index._measure(x, y, index.nearest(x, y))[0]
    return np.minimum(d, cap_m).reshape(shape)


def street_fit(network: WalkNetwork, lon, lat, alt_lon, alt_lat, *, cap_m: float = 150.0,
               max_points: int = 2000, grid_points: int = 200, cell_m: float = 250.0,
               grid_step_m: float = 100.0, either_inside: bool = True) -> dict[str, Any] | None:
    """How well points fit the streets as given (``lon``/``lat``) and as read otherwise (``alt_*``).

    Points with one position inside the network's convex hull count (``either_inside``; the other
    position, outside the streets, counts as ``cap_m`` away: a list of the study area's places does
    not fall off its streets); with ``either_inside=False`` (unit borders, which belong to no study
    area) only points with both positions inside count. Returns None
    when fewer than 5 such points are left, else a dict with ``points``, ``cells``,
    ``mean_dist_given_m``, ``mean_dist_alt_m`` (distances to the nearest street capped at
    ``cap_m``), ``t`` (paired t of given minus alt over ``cell_m`` cells; positive favours alt),
    ``offset_m`` (the median alt - given shift, east/north), ``best_shift_m`` (the grid shift
    (``grid_step_m``, coarser for long offsets) of the given points that brings them closest to the streets) and the verdicts
    ``for_alt`` / ``for_given`` (``strong``, ``weak`` or ``none``).

    Examples
    --------
    Thirty points 10 m north of the east-west streets of a 200 m grid, and the same points read
    480 m off (a periodic grid is the hardest case: a shift of one block fits as well):

    >>> import numpy as np
    >>> from lifecircle.read.network import WalkNetwork
    >>> xs = 121.40 + np.arange(12) * 0.0021; ys = 31.20 + np.arange(12) * 0.0018
    >>> n = np.arange(144).reshape(12, 12)
    >>> u = np.r_[n[:, :-1].ravel(), n[:-1, :].ravel()]; v = np.r_[n[:, 1:].ravel(), n[1:, :].ravel()]
    >>> net = WalkNetwork.from_lonlat(np.tile(xs, 12), np.repeat(ys, 12), u, v)
    >>> rng = np.random.default_rng(0)
    >>> px = 121.404 + rng.uniform(0, 0.014, 30); py = ys[rng.integers(3, 9, 30)] + 0.00009
    >>> f = street_fit(net, px, py, px - 0.0045, py + 0.0011)
    >>> f["mean_dist_given_m"] < 10 < 40 < f["mean_dist_alt_m"], f["t"] < -3, f["for_alt"]
    (True, True, 'none')
    """
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    alt_lon, alt_lat = np.asarray(alt_lon, dtype=float), np.asarray(alt_lat, dtype=float)
    import shapely

    to_m = pyproj.Transformer.from_crs(4326, network.crs, always_xy=True)
    x, y = (np.asarray(a, dtype=float) for a in to_m.transform(lon, lat))
    ax, ay = (np.asarray(a, dtype=float) for a in to_m.transform(alt_lon, alt_lat))
    hull = _hull(network)
    ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(ax) & np.isfinite(ay)
    # a point counts when one of its two positions lies among the streets; a position outside them
    # counts as cap_m away (a list of the study area's places does not fall off its streets)
    in_given, in_alt = shapely.contains_xy(hull, x[ok], y[ok]), shapely.contains_xy(hull, ax[ok], ay[ok])
    ok[ok] = (in_given | in_alt) if either_inside else (in_given & in_alt)
    idx = np.flatnonzero(ok)
    if idx.size > max_points:
        idx = idx[np.linspace(0, idx.size - 1, max_points).round().astype(np.int64)]
    if idx.size < 5:
        return None
    x, y, ax, ay = x[idx], y[idx], ax[idx], ay[idx]
    a = np.where(shapely.contains_xy(hull, x, y), _capped_dist(network, x, y, cap_m), cap_m)
    b = np.where(shapely.contains_xy(hull, ax, ay), _capped_dist(network, ax, ay, cap_m), cap_m)
    cell = np.floor(x / cell_m).astype(np.int64) * 1_000_003 + np.floor(y / cell_m).astype(np.int64)
    _, inv = np.unique(cell, return_inverse=True)
    k = int(inv.max()) + 1
    diff = np.bincount(inv, weights=a - b, minlength=k) / np.bincount(inv, minlength=k)
    sd = float(np.std(diff, ddof=1)) if k > 1 else 0.0
    if k >= 3 and sd > 0:
        t = float(diff.mean() / (sd / np.sqrt(k)))
    elif k >= 3:
        t = float(np.sign(diff.mean()) * 10.0)
    else:
        t = float("nan")
    vx, vy = float(np.median(ax - x)), float(np.median(ay - y))
    r = max(600.0, 1.5 * float(np.hypot(vx, vy)))
    grid_step_m = max(grid_step_m, r / 7.0)  # about 150 shifts, and steps finer than the tolerance below
    g = np.arange(-np.ceil(r / grid_step_m), np.ceil(r / grid_step_m) + 1) * grid_step_m
    gx, gy = (m.ravel() for m in np.meshgrid(g, g))
    inside_r = np.hypot(gx, gy) <= r
    gx, gy = gx[inside_r], gy[inside_r]
    pick = np.linspace(0, x.size - 1, min(grid_points, x.size)).round().astype(np.int64)
    sx, sy = x[pick][None, :] + gx[:, None], y[pick][None, :] + gy[:, None]
    inside = shapely.contains_xy(hull, sx, sy)
    d = _capped_dist(network, sx, sy, cap_m)
    n_in = inside.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        fit = np.where(n_in >= 0.5 * pick.size, (d * inside).sum(axis=1) / n_in, np.inf)
    # ties (a periodic grid fits as well one block further) go to the smallest shift
    ties = np.flatnonzero(fit <= fit.min() + 0.5)
    best = int(ties[np.argmin(np.hypot(gx[ties], gy[ties]))])
    bx, by = float(gx[best]), float(gy[best])
    mean_a, mean_b = float(a.mean()), float(b.mean())
    near_alt = np.hypot(bx - vx, by - vy) <= max(150.0, 0.3 * np.hypot(vx, vy))
    near_0 = np.hypot(bx, by) <= 150.0

    def verdict(tt: float, near: bool, mine: float, other: float) -> str:
        if near and tt >= 1.0 and mine <= 0.8 * other:
            return "strong"
        if (tt >= 1.0 and mine < 0.9 * other) or (near and mine < other):
            return "weak"
        return "none"

    return {
        "points": int(x.size), "cells": k, "cap_m": cap_m,
        "mean_dist_given_m": round(mean_a, 1), "mean_dist_alt_m": round(mean_b, 1),
        "t": None if not np.isfinite(t) else round(t, 2),
        "offset_m": [round(vx), round(vy)], "best_shift_m": [round(bx), round(by)],
        "for_alt": verdict(t, bool(near_alt), mean_b, mean_a) if np.isfinite(t) else "none",
        "for_given": verdict(-t, bool(near_0), mean_a, mean_b) if np.isfinite(t) else "none",
    }


def osm_match(points, reference, alt_lon, alt_lat, *, max_dist_m: float = 1500.0,
              min_similarity: float = 0.8) -> dict[str, Any] | None:
    """Where list facilities sit relative to the OSM facilities they match by name and category.

    Under the hypothesis the list is really at ``alt_*``, each list point sits one offset
    (given - alt) away from its OSM twin; as given, on it. Returns None without name matches,
    else ``pairs``, ``median_shift_m`` (list - OSM, east/north), ``offset_m`` (given - alt) and
    ``for_alt`` / ``for_given`` (``strong`` with 3+ pairs mostly at that place, ``weak`` with fewer).
    """
    from scipy.spatial import cKDTree

    from ..read.facilities import name_similarity
    from ..read.network import local_utm_crs

    if reference is None or len(reference) == 0 or "name" not in points or "name" not in reference:
        return None
    names = points["name"].to_numpy(dtype=object)
    rnames = reference["name"].to_numpy(dtype=object)
    has = np.array([isinstance(n, str) and n.strip() != "" for n in names])
    rhas = np.array([isinstance(n, str) and n.strip() != "" for n in rnames])
    if not has.any() or not rhas.any():
        return None
    lon, lat = points.geometry.x.to_numpy(), points.geometry.y.to_numpy()
    crs = local_utm_crs(float(np.nanmedian(lon)), float(np.nanmedian(lat)))
    to_m = pyproj.Transformer.from_crs(4326, crs, always_xy=True)
    x, y = (np.asarray(v, dtype=float) for v in to_m.transform(lon, lat))
    ax, ay = (np.asarray(v, dtype=float) for v in to_m.transform(alt_lon, alt_lat))
    rx, ry = (np.asarray(v, dtype=float) for v in to_m.transform(reference.geometry.x.to_numpy(),
                                                                 reference.geometry.y.to_numpy()))
    ridx = np.flatnonzero(rhas & np.isfinite(rx))
    tree = cKDTree(np.column_stack([rx[ridx], ry[ridx]]))
    cats = points["category"].to_numpy(dtype=object) if "category" in points else None
    rcats = reference["category"].to_numpy(dtype=object) if "category" in reference else None
    shifts, offsets = [], []
    for i in np.flatnonzero(has & np.isfinite(x)):
        best, score = None, min_similarity
        for j in (ridx[c] for c in tree.query_ball_point([x[i], y[i]], max_dist_m)):
            if cats is not None and rcats is not None and cats[i] != rcats[j]:
                continue
            s = name_similarity(names[i], rnames[j])
            if s >= score:
                best, score = j, s
        if best is not None:
            shifts.append((x[i] - rx[best], y[i] - ry[best]))
            offsets.append((x[i] - ax[i], y[i] - ay[i]))
    if not shifts:
        return None
    sh, off = np.array(shifts), np.array(offsets)
    m = np.median(sh, axis=0)
    v = np.median(off, axis=0)
    at_alt = float(np.mean(np.hypot(*(sh - off).T) <= 200.0))
    at_0 = float(np.mean(np.hypot(*sh.T) <= 200.0))
    n = len(sh)

    def verdict(share: float, centre_ok: bool) -> str:
        if n >= 3 and share >= 0.5 and centre_ok:
            return "strong"
        return "weak" if share >= 0.5 and centre_ok else "none"

    return {"pairs": n, "median_shift_m": [round(float(m[0])), round(float(m[1]))],
            "offset_m": [round(float(v[0])), round(float(v[1]))],
            "share_at_offset": round(at_alt, 2), "share_on_osm": round(at_0, 2),
            "for_alt": verdict(at_alt, bool(np.hypot(*(m - v)) <= 150.0)),
            "for_given": verdict(at_0, bool(np.hypot(*m) <= 150.0))}


@dataclass
class CRSCheck:
    """The CRS check of one input: what was declared, what each signal measured, the verdict."""

    input: str
    label: str
    declared: str
    declared_by: str
    option: str
    verdict: str = "ok"
    suspected: str | None = None
    signals: dict[str, Any] = field(default_factory=dict)
    warning: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"input": self.label, "declared": self.declared, "declared_by": self.declared_by,
                "verdict": self.verdict, "suspected": self.suspected,
                "fix": f"{self.option} {self.suspected}" if self.suspected and self.verdict.startswith("likely")
                else None, "signals": self.signals, "warning": self.warning}


def _declared_name(declared: str) -> str | None:
    from ..read.crs import parse_crs
    from ..errors import CRSError

    try:
        c = parse_crs(declared)
    except CRSError:
        return None
    if isinstance(c, str):
        return c
    return "wgs84" if c.to_epsg() == 4326 else None


def _sample_lonlat(frame, network: WalkNetwork | None, *, step_m: float = 25.0) -> tuple[np.ndarray, np.ndarray]:
    """Points to test: the points themselves, or unit borders (near the network) every ``step_m``."""
    import geopandas as gpd
    import shapely

    geoms = frame.geometry.to_numpy()
    kind = shapely.get_type_id(geoms)
    if (kind == 0).all() or network is None:
        pts = frame.geometry.representative_point() if not (kind == 0).all() else frame.geometry
        return pts.x.to_numpy(), pts.y.to_numpy()
    metric = gpd.GeoSeries(geoms, crs=4326).to_crs(network.crs).to_numpy()
    lines = shapely.boundary(metric[np.isin(kind, (3, 6))])
    area = shapely.buffer(_hull(network), 1500.0)
    near = shapely.intersection(lines, area)
    near = shapely.segmentize(near[~shapely.is_empty(near)], step_m)
    xy = shapely.get_coordinates(near)
    if not len(xy):
        return np.zeros(0), np.zeros(0)
    back = pyproj.Transformer.from_crs(network.crs, 4326, always_xy=True)
    lo, la = back.transform(xy[:, 0], xy[:, 1])
    return np.asarray(lo), np.asarray(la)


def check_input_crs(network: WalkNetwork | None, frame, *, input: str, label: str, option: str,
                    reference=None) -> CRSCheck:
    """Check that an input read by :func:`lifecircle.read.files.read_geo` is in the CRS it was read as.

    ``frame`` is in WGS84 (already converted from what was declared) and keeps
    ``attrs["crs_declared"]`` and ``attrs["crs_hints"]``. ``network`` may be None (then only the
    columns count). ``reference`` is an OSM facility layer to match names against.
    """
    from ..read.crs import bd09_to_wgs84, gcj02_to_wgs84, wgs84_to_bd09, wgs84_to_gcj02

    decl = frame.attrs.get("crs_declared") or {"crs": "wgs84", "by": "default"}
    check = CRSCheck(input, label, str(decl["crs"]), str(decl["by"]), option)
    name = _declared_name(check.declared)
    hints = list(frame.attrs.get("crs_hints") or [])
    check.signals["columns"] = [f"{h['crs']}: {h['reason']}" for h in hints]
    if name is None:
        check.verdict = "not checked (projected CRS)"
        return check
    lon, lat = _sample_lonlat(frame, network)
    ok = np.isfinite(lon) & np.isfinite(lat)
    lon, lat = lon[ok], lat[ok]
    sampled = lon.size > 2000  # street_fit tries at most 2,000 of them
    if lon.size > MAX_CHECK_POINTS:  # shift a spread sample, not every home of a city
        pick = np.linspace(0, lon.size - 1, MAX_CHECK_POINTS).round().astype(np.int64)
        lon, lat = lon[pick], lat[pick]
    if name == "wgs84":
        funcs = {"gcj02": gcj02_to_wgs84, "bd09": bd09_to_wgs84}
    else:
        funcs = {"wgs84": wgs84_to_gcj02 if name == "gcj02" else wgs84_to_bd09}
    hyps = {h: f(lon, lat) for h, f in funcs.items()}
    if lon.size and all(np.allclose(h[0], lon) and np.allclose(h[1], lat) for h in hyps.values()):
        check.verdict = "not checked (outside China: no web-map offset)"
        return check
    results = {}
    for h, (alt_lon, alt_lat) in hyps.items():
        strong, weak, against = [], [], []
        for hint in hints:
            if hint["crs"] == h:
                strong.append(hint["reason"])
            elif hint["crs"] == name:
                against.append(hint["reason"])
        points = bool((np.asarray(frame.geometry.geom_type) == "Point").all())
        fit = (street_fit(network, lon, lat, alt_lon, alt_lat, either_inside=points)
               if network is not None and lon.size else None)
        if fit is not None:
            check.signals.setdefault("streets", {})[h] = fit
            off = float(np.hypot(*fit["offset_m"]))
            text = (f"{fit['points']:,} points (a spread sample) sit {fit['mean_dist_given_m']:.0f} m from the nearest street on average "
                    if sampled else
                    f"{fit['points']:,} points sit {fit['mean_dist_given_m']:.0f} m from the nearest street on average "
                    f"as given, {fit['mean_dist_alt_m']:.0f} m read as {h} (paired t = {fit['t']}); they fit the "
                    f"streets best moved {np.hypot(*fit['best_shift_m']):.0f} m "
                    f"{_bearing(*fit['best_shift_m'])}, and reading them as {h} moves them {off:.0f} m "
                    f"{_bearing(*fit['offset_m'])}")
            {"strong": strong, "weak": weak}.get(fit["for_alt"], []).append(text)
            if fit["for_given"] == "strong":
                against.append(text)
        match = None
        if reference is not None and lon.size and (np.asarray(frame.geometry.geom_type) == "Point").all():
            match = osm_match(frame, reference, *funcs[h](frame.geometry.x.to_numpy(), frame.geometry.y.to_numpy()))
        if match is not None:
            check.signals.setdefault("osm_match", {})[h] = match
            text = (f"{match['pairs']} of them match OSM facilities by name and sit {np.hypot(*match['median_shift_m']):.0f} m "
                    f"{_bearing(*match['median_shift_m'])} of them (the {h} offset: "
                    f"{np.hypot(*match['offset_m']):.0f} m {_bearing(*match['offset_m'])})")
            {"strong": strong, "weak": weak}.get(match["for_alt"], []).append(text)
            if match["for_given"] == "strong":
                against.append(f"{match['pairs']} of them sit on the OSM facilities they match by name")
        results[h] = (strong, weak, against)
    def rank(item):
        h, (strong, weak, against) = item
        fit = check.signals.get("streets", {}).get(h)
        return (len(strong) > 0 and not against, len(strong), len(weak),
                -(fit["mean_dist_alt_m"] if fit else np.inf))

    h, (strong, weak, against) = max(results.items(), key=rank)
    read_as = NAMES.get(name, name)
    if strong and not against:
        check.verdict, check.suspected = f"likely {h}", h
        shift = check.signals.get("streets", {}).get(h, {}).get("offset_m")
        off = f" by about {np.hypot(*shift):.0f} m" if shift else ""
        check.warning = (f"LIKELY WRONG CRS: {label} is read as {read_as} ({check.declared_by}) but looks like "
                         f"{NAMES[h]}: {'; '.join(strong + weak)}. Every distance from these places is off{off}. "
                         f"Fix: {option} {h}")
    elif strong or weak:
        check.verdict, check.suspected = "ambiguous", h
        why = ("the signals disagree: " + "; ".join(against)) if against else (
            "the evidence is weak (few points inside the network, or a street grid dense enough that any shift "
            "fits about as well)")
        check.warning = (f"CRS ambiguous: {label} is read as {read_as} ({check.declared_by}), but "
                         f"{'; '.join(strong + weak)}; {why}. If the data come from "
                         f"{'Baidu' if h == 'bd09' else 'AMap/Gaode, Tencent or DataV' if h == 'gcj02' else 'GPS/OSM'}, "
                         f"pass {option} {h}; otherwise keep it")
    return check


def check_swapped(network: WalkNetwork, lon, lat, *, label: str, fix: str) -> None:
    """Refuse points that lie away from the network but would lie on it with longitude and latitude swapped."""
    from ..errors import InputDataError

    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    ok = np.isfinite(lon) & np.isfinite(lat)
    if not ok.any():
        return
    lo0, lo1, la0, la1 = network.lon.min(), network.lon.max(), network.lat.min(), network.lat.max()
    pad = 0.05  # about 5 km

    def inside(a, b):
        return (a >= lo0 - pad) & (a <= lo1 + pad) & (b >= la0 - pad) & (b <= la1 + pad)

    if inside(lon[ok], lat[ok]).mean() < 0.2 and inside(lat[ok], lon[ok]).mean() >= 0.8:
        i = int(np.flatnonzero(ok)[0])
        raise InputDataError(f"{label}: longitude and latitude look swapped: ({lon[i]:g}, {lat[i]:g}) is far from the "
                             f"streets, ({lat[i]:g}, {lon[i]:g}) lies among them; {fix}")
