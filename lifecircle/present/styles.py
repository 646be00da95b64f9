"""Shared styling of maps and figures: category colours and labels, walking-minute and share classes, basemaps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, NamedTuple, Sequence

import numpy as np

from ..config import ALL, DEFAULT_TARGET
from ..errors import InputDataError

__all__ = ["BASEMAPS", "CATEGORY_STYLES", "Basemap", "CategoryStyle", "minutes_classes", "share_classes"]


class CategoryStyle(NamedTuple):
    """How a facility category is drawn: colour, a one-character icon, a bilingual label."""

    colour: str
    glyph: str
    label: str


CATEGORY_STYLES: dict[str, CategoryStyle] = {
    "health": CategoryStyle("#d62728", "✚", "卫生 health"),
    "elderly_care": CategoryStyle("#9467bd", "♥", "养老 elderly care"),
    "culture": CategoryStyle("#1f77b4", "♫", "文化 culture"),
    "sports": CategoryStyle("#ff7f0e", "◎", "体育 sports"),
    ALL: CategoryStyle("#333333", "★", "全部 all"),
}
_OTHER_STYLE = CategoryStyle("#7f7f7f", "●", "other")


def _style(category: str) -> CategoryStyle:
    return CATEGORY_STYLES.get(category, _OTHER_STYLE._replace(label=str(category)))


@dataclass(frozen=True)
class Basemap:
    """A background tile service: URL templates, attribution and the datum its tiles are drawn in."""

    name: str
    tiles: tuple[str, ...]
    attribution: str
    datum: str = "wgs84"  # "gcj02": overlays are shifted to line up
    subdomains: str = "abc"
    max_zoom: int = 19


_TDT = ("https://t{s}.tianditu.gov.cn/%s_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&LAYER=%s"
        "&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={z}&TILEROW={y}&TILECOL={x}&tk={tk}")

#: Background maps. ``amap`` (alias ``gaode``) is AutoNavi/Gaode's road map, drawn in GCJ-02, so the
#: overlays are shifted WGS84 -> GCJ-02; ``tianditu`` (天地图, CGCS2000 ≈ WGS84 to < 1 m) needs a free
#: key from console.tianditu.gov.cn; ``none`` draws the overlays on a plain background.
BASEMAPS: dict[str, Basemap] = {
    "osm": Basemap("osm", ("https://tile.openstreetmap.org/{z}/{x}/{y}.png",),
                   '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors',
                   subdomains="", max_zoom=19),
    "amap": Basemap("amap", ("https://webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1"
                             "&style=8&x={x}&y={y}&z={z}",),
                    "&copy; 高德地图 AutoNavi (GCJ-02)", datum="gcj02", subdomains="1234", max_zoom=18),
    "tianditu": Basemap("tianditu", (_TDT % ("vec", "vec"), _TDT % ("cva", "cva")),
                        "&copy; 天地图 Tianditu", subdomains="01234567", max_zoom=18),
    "none": Basemap("none", (), ""),
}
_BASEMAP_ALIASES = {"gaode": "amap", "autonavi": "amap", "openstreetmap": "osm", "tdt": "tianditu"}


def _basemap(name: str) -> Basemap:
    key = _BASEMAP_ALIASES.get(str(name).lower(), str(name).lower())
    if key not in BASEMAPS:
        raise InputDataError(f"unknown basemap {name!r}: choose one of osm, amap (gaode), tianditu, none")
    return BASEMAPS[key]


# --------------------------------------------------------------------------------------------
# colour classes (shared with lifecircle.present.figures)


def _hex_to_rgb(c: str) -> np.ndarray:
    return np.array([int(c[i:i + 2], 16) for i in (1, 3, 5)], dtype=float)


def _ramp(a: str, b: str, n: int) -> list[str]:
    if n == 1:
        return [a]
    ca, cb = _hex_to_rgb(a), _hex_to_rgb(b)
    return ["#%02x%02x%02x" % tuple(np.rint(ca + (cb - ca) * i / (n - 1)).astype(int)) for i in range(n)]


def minutes_classes(minutes: Iterable[float] = (5, 10, 15), *,
                    cutoff_minutes: float | None = None) -> list[tuple[float, str, str]]:
    """Colour classes of walking minutes: ``(upper bound, label, colour)``; a walk of exactly
    a bound falls in that class (as ``within_<N>min`` does).

    Greens up to each threshold, orange up to ``cutoff_minutes`` (default twice the largest
    threshold), red beyond it or not reachable.

    Examples
    --------
    >>> [label for _, label, _ in minutes_classes((5, 10, 15))]
    ['≤ 5 min', '5–10 min', '10–15 min', '15–30 min', '> 30 min or not reachable']
    """
    th = sorted({float(m) for m in minutes})
    if not th:
        raise InputDataError("minutes_classes needs at least one threshold, e.g. (5, 10, 15)")
    cut = 2 * th[-1] if cutoff_minutes is None else float(cutoff_minutes)
    greens = _ramp("#1a9850", "#d9ef8b", len(th))
    out = [(th[0], f"≤ {th[0]:g} min", greens[0])]
    out += [(hi, f"{lo:g}–{hi:g} min", g) for lo, hi, g in zip(th[:-1], th[1:], greens[1:])]
    if cut > th[-1]:
        out.append((cut, f"{th[-1]:g}–{cut:g} min", "#fc8d59"))
    out.append((np.inf, f"> {max(cut, th[-1]):g} min or not reachable", "#d73027"))
    return out


def _minutes_class_index(values: np.ndarray, classes: Sequence[tuple[float, str, str]]) -> np.ndarray:
    bounds = np.array([c[0] for c in classes[:-1]], dtype=float)
    v = np.where(np.isnan(values), np.inf, values)
    return np.searchsorted(bounds, v, side="left")


def share_classes(target: float = DEFAULT_TARGET) -> list[tuple[float, str, str]]:
    """Colour classes of a unit's coverage share: ``(lower bound, label, colour)``, best first.

    Units below the target are orange, and red when more than 15 points below it.

    >>> [label for _, label, _ in share_classes(0.85)]
    ['≥ 85 % (meets target)', '70–85 %', '< 70 %']
    """
    low = max(0.0, target - 0.15)
    t, lo = _pct(target), _pct(low)
    return [(target, f"≥ {t} % (meets target)", "#1a9850"),
            (low, f"{lo}–{t} %", "#fdae61"),
            (-np.inf, f"< {lo} %", "#d73027")]


def _pct(share: float) -> str:
    return f"{round(share * 100, 1):g}"


_NO_DATA = "#bdbdbd"


#: :func:`raster_segments` and :func:`raster_polygons` take this many segments or ring edges at a time
#: (their temporaries: some 50 bytes for each).
_EDGES_PER_BLOCK = 1 << 20


def raster_segments(x0: np.ndarray, y0: np.ndarray, x1: np.ndarray, y1: np.ndarray, *,
                    bounds: tuple[float, float, float, float], shape: tuple[int, int],
                    width_px: int = 1) -> np.ndarray:
    """Straight segments burnt into a boolean image (row 0 at the top), vectorised: a city's streets
    in well under a second, where a matplotlib collection of a million paths takes ten.

    Each segment is sampled every half pixel; ``width_px`` > 1 widens the lines to that many pixels
    (a square brush, growing down and to the right). ``bounds`` is ``(west, south, east, north)`` in the
    segments' units, ``shape`` ``(rows, columns)``; segments with a non-finite end are left out.

    >>> img = raster_segments(np.array([0.0]), np.array([0.5]), np.array([4.0]), np.array([0.5]),
    ...                       bounds=(0, 0, 4, 2), shape=(2, 4))
    >>> img.astype(int).tolist()  # the line y = 0.5 runs along the lower row
    [[0, 0, 0, 0], [1, 1, 1, 1]]
    """
    w, s, e, n = (float(b) for b in bounds)
    rows, cols = shape
    sx, sy = cols / max(e - w, 1e-12), rows / max(n - s, 1e-12)
    x0, y0, x1, y1 = (np.asarray(a, float) for a in (x0, y0, x1, y1))
    img = np.zeros(shape, dtype=bool)
    for first in range(0, len(x0), _EDGES_PER_BLOCK):  # blocks of segments: bounded temporaries
        block = slice(first, first + _EDGES_PER_BLOCK)
        a0, b0 = (x0[block] - w) * sx, (n - y0[block]) * sy
        a1, b1 = (x1[block] - w) * sx, (n - y1[block]) * sy
        ok = np.isfinite(a0) & np.isfinite(b0) & np.isfinite(a1) & np.isfinite(b1)
        if not ok.all():
            a0, b0, a1, b1 = a0[ok], b0[ok], a1[ok], b1[ok]
        steps = np.ceil(2 * np.maximum(np.abs(a1 - a0), np.abs(b1 - b0))).astype(np.int64) + 1
        seg = np.repeat(np.arange(len(steps)), steps)
        k = np.arange(int(steps.sum())) - np.repeat(np.cumsum(steps) - steps, steps)
        f = k / np.maximum(steps[seg] - 1, 1)
        del k
        cc = np.floor(a0[seg] + f * (a1 - a0)[seg]).astype(np.int64)
        rr = np.floor(b0[seg] + f * (b1 - b0)[seg]).astype(np.int64)
        del f, seg
        ok = (cc >= 0) & (cc < cols) & (rr >= 0) & (rr < rows)
        img[rr[ok], cc[ok]] = True
    if width_px > 1:
        grown = img.copy()
        for dr in range(int(width_px)):
            for dc in range(int(width_px)):
                if dr or dc:
                    grown[dr:, dc:] |= img[:rows - dr, :cols - dc]
        img = grown
    return img


def _add_crossings(out: np.ndarray, c: np.ndarray, r: np.ndarray, edges: np.ndarray, rows: int, cols: int) -> None:
    """:func:`raster_polygons`' scanline step: each ring edge ``edges[i] -> edges[i] + 1`` (pixel columns ``c``,
    rows ``r`` of its ends) adds its direction at the first pixel right of where it crosses a row's centre line."""
    for first in range(0, len(edges), _EDGES_PER_BLOCK):  # blocks of edges: bounded temporaries
        edge = edges[first:first + _EDGES_PER_BLOCK]
        ra, rb = r[edge], r[edge + 1]
        lo = np.clip(np.ceil(np.minimum(ra, rb) - 0.5), 0, rows)  # rows k with ra <= k + 0.5 < rb (or rb..ra)
        hi = np.clip(np.ceil(np.maximum(ra, rb) - 0.5), 0, rows)
        count = (hi - lo).astype(np.int64)
        hit = np.flatnonzero(count > 0)
        if not len(hit):
            continue
        count, lo, edge, ra, rb = count[hit], lo[hit], edge[hit], ra[hit], rb[hit]
        which = np.repeat(np.arange(len(hit)), count)
        k = (np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)) + lo[which].astype(np.int64)
        ca, cb = c[edge][which], c[edge + 1][which]
        t = (k + 0.5 - ra[which]) / (rb - ra)[which]
        col = np.clip(np.ceil(ca + t * (cb - ca) - 0.5), 0, cols).astype(np.int64)  # first centre to the right
        np.add.at(out.reshape(-1), k * (cols + 1) + col, np.where(rb > ra, 1, -1).astype(np.int16)[which])


def raster_polygons(geoms: np.ndarray, *, bounds: tuple[float, float, float, float],
                    shape: tuple[int, int], transform: Any = None) -> np.ndarray:
    """How many of ``geoms`` (polygons) cover each pixel's centre, as a ``uint8`` image (row 0 at the top).

    A scanline fill without sorting: every ring edge adds its direction (+1 down, -1 up, on shells
    turned counter-clockwise and holes clockwise) at the first pixel right of where it crosses each
    pixel row's centre line; a running sum along the row is then each centre's winding number. So a
    hole stays open, and nested service areas (5 ⊆ 10 ⊆ 15 min) give 3, 2, 1 — one vectorised pass
    over the vertices, for millions of them. The polygons must be valid (the parts of a MultiPolygon
    apart) and in ``bounds``' units, ``(west, south, east, north)``, or ``transform(x, y) -> (x, y)``
    takes their vertices there (e.g. degrees to Web Mercator, without building new geometries).

    >>> import shapely
    >>> square = shapely.box(1, 1, 3, 3).difference(shapely.box(1.9, 1.9, 2.1, 2.1))  # a pin-hole: no centre in it
    >>> ring = shapely.box(0, 0, 4, 4).difference(shapely.box(1, 1, 3, 3))
    >>> raster_polygons(np.array([square, ring, shapely.box(0, 0, 2, 4)]), bounds=(0, 0, 4, 4), shape=(4, 4)).tolist()
    [[2, 2, 1, 1], [2, 2, 1, 1], [2, 2, 1, 1], [2, 2, 1, 1]]
    """
    import shapely

    w, s, e, n = (float(b) for b in bounds)
    rows, cols = shape
    out = np.zeros((rows, cols + 1), dtype=np.int16)
    parts = shapely.get_parts(np.asarray(geoms, dtype=object))
    parts = parts[~shapely.is_empty(parts)]
    # blocks of parts of about _EDGES_PER_BLOCK vertices: their oriented copies, rings and coordinates are
    # made and freed in turn (a city's service areas of one category: ~8M vertices, ~1.5 GB at once)
    n_xy = shapely.get_num_coordinates(parts).astype(np.int64)
    block = (np.cumsum(n_xy) - n_xy) // _EDGES_PER_BLOCK
    starts = np.flatnonzero(np.r_[True, block[1:] != block[:-1]]) if len(parts) else np.zeros(0, dtype=np.int64)
    for p0, p1 in zip(starts.tolist(), starts[1:].tolist() + [len(parts)]):
        rings = shapely.get_rings(shapely.orient_polygons(parts[p0:p1]))
        xy, ring = shapely.get_coordinates(rings, return_index=True)
        del rings
        if transform is not None:
            xy = np.column_stack(transform(xy[:, 0], xy[:, 1]))
        c = (xy[:, 0] - w) * (cols / max(e - w, 1e-12))
        r = (n - xy[:, 1]) * (rows / max(n - s, 1e-12))
        del xy
        good = np.isfinite(c) & np.isfinite(r)
        edges = np.flatnonzero((ring[1:] == ring[:-1]) & good[1:] & good[:-1])  # i to i + 1 within one ring
        del ring, good
        _add_crossings(out, c, r, edges, rows, cols)
    wind = np.cumsum(out[:, :cols], axis=1, dtype=np.int16)
    del out
    return np.clip(wind, 0, 255, out=wind).astype(np.uint8)
