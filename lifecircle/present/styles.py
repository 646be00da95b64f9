"""Shared styling of maps and figures: category colours and labels, walking-minute and share classes, basemaps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, NamedTuple, Sequence

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
    c0, r0 = (np.asarray(x0, float) - w) * sx, (n - np.asarray(y0, float)) * sy
    c1, r1 = (np.asarray(x1, float) - w) * sx, (n - np.asarray(y1, float)) * sy
    ok = np.isfinite(c0) & np.isfinite(r0) & np.isfinite(c1) & np.isfinite(r1)
    if not ok.all():
        c0, r0, c1, r1 = c0[ok], r0[ok], c1[ok], r1[ok]
    steps = np.ceil(2 * np.maximum(np.abs(c1 - c0), np.abs(r1 - r0))).astype(np.int64) + 1
    img = np.zeros(shape, dtype=bool)
    if not len(steps):
        return img
    seg = np.repeat(np.arange(len(steps)), steps)
    k = np.arange(int(steps.sum())) - np.repeat(np.cumsum(steps) - steps, steps)
    f = k / np.maximum(steps[seg] - 1, 1)
    cc = np.floor(c0[seg] + f * (c1 - c0)[seg]).astype(np.int64)
    rr = np.floor(r0[seg] + f * (r1 - r0)[seg]).astype(np.int64)
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
