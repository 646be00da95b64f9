"""Convert Chinese web-map coordinates (GCJ-02, BD-09) and EPSG inputs to WGS84."""

# Written from the published GCJ-02 ("Mars") formula on the Krasovsky ellipsoid and the published
# BD-09 <-> GCJ-02 rotation; PROJ/pyproj define neither. Ports exist (e.g. eviltransform,
# BSD-2-Clause; coord-convert) but are scalar-only, so we vectorise the formulas here instead.

from __future__ import annotations

import re
from typing import Any, Callable, Union

import geopandas
import numpy as np
import pandas as pd
import pyproj
import shapely
from numpy.typing import ArrayLike

from ..errors import CRSError

__all__ = ["wgs84_to_gcj02", "gcj02_to_wgs84", "gcj02_to_bd09", "bd09_to_gcj02", "wgs84_to_bd09",
           "bd09_to_wgs84", "parse_crs", "to_wgs84", "from_wgs84", "crs_hints"]

_A = 6378245.0  # Krasovsky 1940 semi-major axis (m)
_EE = 0.00669342162296594323  # Krasovsky 1940 first eccentricity squared
_X_PI = np.pi * 3000.0 / 180.0
_TOL = 1e-10  # degrees; convergence threshold of the iterative inverses
_MAX_ITER = 20

Coords = tuple[Union[np.ndarray, float], Union[np.ndarray, float]]
#: What users type, after lower-casing and dropping everything but letters, digits and CJK characters.
#: 'mars' / 火星坐标 is Chinese slang for GCJ-02 but is used for BD-09 too, and IAU codes name the
#: real planet: it is refused with a pointer to gcj02/bd09 (see :func:`parse_crs`).
_ALIASES = {"wgs84": "wgs84", "epsg4326": "wgs84", "4326": "wgs84", "wgs1984": "wgs84", "gps": "wgs84",
            "gcj02": "gcj02", "gcj": "gcj02", "amap": "gcj02", "gaode": "gcj02", "autonavi": "gcj02",
            "tencent": "gcj02", "高德": "gcj02", "bd09": "bd09", "bd09ll": "bd09", "bd": "bd09",
            "baidu": "bd09", "百度": "bd09", "cgcs2000": "EPSG:4490", "epsg4490": "EPSG:4490"}
_AMBIGUOUS = {"mars", "火星", "火星坐标", "火星坐标系", "marscoordinates"}
_HINT = "pass wgs84, gcj02, bd09 or an EPSG code of China/your city (e.g. EPSG:4490, EPSG:32651)"
_EARTH_RADIUS_M = (6.35e6, 6.40e6)  # every terrestrial ellipsoid (Everest 6377276 .. Clarke 6378249) and sphere


def _prepare(lon: ArrayLike, lat: ArrayLike) -> tuple[np.ndarray, np.ndarray, bool]:
    x, y = np.broadcast_arrays(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
    return x, y, x.ndim == 0


def _finish(x: np.ndarray, y: np.ndarray, scalar: bool) -> Coords:
    return (float(x), float(y)) if scalar else (x, y)


def _outside_china(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    return (lon < 72.004) | (lon > 137.8347) | (lat < 0.8293) | (lat > 55.8271)


def _gcj_forward(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = lon - 105.0, lat - 35.0
    wave = (20.0 * np.sin(6.0 * np.pi * x) + 20.0 * np.sin(2.0 * np.pi * x)) * 2.0 / 3.0
    d_lat = (-100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + wave
             + 0.2 * np.sqrt(np.abs(x))
             + (20.0 * np.sin(np.pi * y) + 40.0 * np.sin(np.pi * y / 3.0)) * 2.0 / 3.0
             + (160.0 * np.sin(np.pi * y / 12.0) + 320.0 * np.sin(np.pi * y / 30.0)) * 2.0 / 3.0)
    d_lon = (300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x)) + wave
             + (20.0 * np.sin(np.pi * x) + 40.0 * np.sin(np.pi * x / 3.0)) * 2.0 / 3.0
             + (150.0 * np.sin(np.pi * x / 12.0) + 300.0 * np.sin(np.pi * x / 30.0)) * 2.0 / 3.0)
    phi = np.radians(lat)
    magic = 1.0 - _EE * np.sin(phi) ** 2
    d_lat = d_lat * 180.0 / ((_A * (1.0 - _EE)) / (magic * np.sqrt(magic)) * np.pi)
    d_lon = d_lon * 180.0 / (_A / np.sqrt(magic) * np.cos(phi) * np.pi)
    out = _outside_china(lon, lat)
    return np.where(out, lon, lon + d_lon), np.where(out, lat, lat + d_lat)


def _bd_forward(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = np.hypot(lon, lat) + 0.00002 * np.sin(lat * _X_PI)
    theta = np.arctan2(lat, lon) + 0.000003 * np.cos(lon * _X_PI)
    out = _outside_china(lon, lat)
    return (np.where(out, lon, z * np.cos(theta) + 0.0065),
            np.where(out, lat, z * np.sin(theta) + 0.006))


def _bd_inverse_estimate(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = lon - 0.0065, lat - 0.006
    z = np.hypot(x, y) - 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
    out = _outside_china(lon, lat)
    return np.where(out, lon, z * np.cos(theta)), np.where(out, lat, z * np.sin(theta))


def _invert(forward: Callable[..., tuple[np.ndarray, np.ndarray]], lon: np.ndarray,
            lat: np.ndarray, start: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-point iteration g <- g + (target - forward(g)); it contracts (offsets vary slowly)."""
    gx, gy = np.array(start[0], dtype=float), np.array(start[1], dtype=float)
    for _ in range(_MAX_ITER):
        fx, fy = forward(gx, gy)
        ex, ey = lon - fx, lat - fy
        gx, gy = gx + ex, gy + ey
        err = np.maximum(np.abs(ex), np.abs(ey))
        if err.size == 0 or not np.any(err >= _TOL):  # NaN input never blocks convergence
            break
    out = _outside_china(lon, lat)
    return np.where(out, lon, gx), np.where(out, lat, gy)


def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> Coords:
    """Convert WGS84 lon/lat (degrees) to GCJ-02; points outside China are returned unchanged."""
    x, y, scalar = _prepare(lon, lat)
    return _finish(*_gcj_forward(x, y), scalar)


def gcj02_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> Coords:
    """Convert GCJ-02 lon/lat (degrees) to WGS84 by iterating the forward transform.

    Parameters
    ----------
    lon, lat : array_like
        GCJ-02 longitude and latitude in degrees (scalars or arrays of the same shape).

    Returns
    -------
    tuple
        ``(lon, lat)`` in WGS84, arrays (floats for scalar input). The residual of the forward
        transform is below 1e-10 degrees (about 0.01 mm). Points outside China are unchanged.

    Examples
    --------
    >>> lon, lat = wgs84_to_gcj02(121.47044, 31.23464)
    >>> back = gcj02_to_wgs84(lon, lat)
    >>> bool(abs(back[0] - 121.47044) < 1e-9 and abs(back[1] - 31.23464) < 1e-9)
    True
    """
    x, y, scalar = _prepare(lon, lat)
    return _finish(*_invert(_gcj_forward, x, y, (x, y)), scalar)


def gcj02_to_bd09(lon: ArrayLike, lat: ArrayLike) -> Coords:
    """Convert GCJ-02 lon/lat (degrees) to Baidu BD-09 lon/lat; outside China unchanged."""
    x, y, scalar = _prepare(lon, lat)
    return _finish(*_bd_forward(x, y), scalar)


def bd09_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> Coords:
    """Convert BD-09 lon/lat to GCJ-02: the published inverse, refined by iteration to 1e-10 deg."""
    x, y, scalar = _prepare(lon, lat)
    return _finish(*_invert(_bd_forward, x, y, _bd_inverse_estimate(x, y)), scalar)


def wgs84_to_bd09(lon: ArrayLike, lat: ArrayLike) -> Coords:
    """Convert WGS84 lon/lat (degrees) to BD-09 (via GCJ-02)."""
    x, y, scalar = _prepare(lon, lat)
    return _finish(*_bd_forward(*_gcj_forward(x, y)), scalar)


def bd09_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> Coords:
    """Convert BD-09 lon/lat (degrees) to WGS84 (via GCJ-02, both steps iterative)."""
    gx, gy = bd09_to_gcj02(lon, lat)
    return gcj02_to_wgs84(gx, gy)


def parse_crs(crs: Any) -> Union[str, pyproj.CRS]:
    """Interpret a CRS given by a user: a lon/lat or projected CRS of the Earth.

    Parameters
    ----------
    crs : str, int or pyproj.CRS
        ``'wgs84'`` (also ``WGS-84``, ``epsg:4326``, ``4326``), ``'gcj02'`` (``gcj-02``, ``amap``,
        ``gaode``, ``tencent``, 高德), ``'bd09'`` (``bd-09``, ``baidu``, 百度), ``'cgcs2000'``
        (EPSG:4490), an EPSG code such as ``32651`` or ``'EPSG:32651'``, anything else pyproj
        understands (WKT, PROJ strings), or a pyproj.CRS. Case, spaces, ``-`` and ``_`` do not matter.
        ``'mars'`` (火星坐标) is refused: the slang means GCJ-02 to some and BD-09 to others.

    Returns
    -------
    str or pyproj.CRS
        ``'gcj02'`` or ``'bd09'`` for the Chinese web-map systems, otherwise a ``pyproj.CRS``.

    Raises
    ------
    CRSError
        If the CRS is not recognised, or is not a 2D/3D lon/lat or projected CRS of the Earth
        (another celestial body, geocentric, vertical, engineering, compound): one line naming why.

    Examples
    --------
    >>> parse_crs('GCJ-02'), parse_crs('Baidu')
    ('gcj02', 'bd09')
    >>> parse_crs('wgs84').to_epsg(), parse_crs('WGS-84').to_epsg(), parse_crs(4326).to_epsg()
    (4326, 4326, 4326)
    >>> parse_crs('cgcs2000').to_epsg()
    4490
    >>> parse_crs('IAU_2015:49900')  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    lifecircle.errors.CRSError: 'IAU_2015:49900' is a Mars CRS (celestial body Mars), not an Earth CRS: pass wgs84, ...
    """
    if isinstance(crs, pyproj.CRS):
        return _earth_only(crs, crs.name)
    if isinstance(crs, str):
        key = "".join(c for c in crs.lower() if c.isalnum())
        if key in _AMBIGUOUS:
            raise CRSError(f"{crs!r} is ambiguous: Chinese 'Mars coordinates' (火星坐标) mean GCJ-02 (AMap/Gaode, "
                           "Tencent) to most and BD-09 (Baidu) to some; pass gcj02 or bd09")
        name = _ALIASES.get(key)
        if name is not None:
            if name.startswith("EPSG:"):
                return pyproj.CRS.from_user_input(name)
            return pyproj.CRS.from_epsg(4326) if name == "wgs84" else name
        if not crs.strip():
            raise CRSError(f"empty CRS: {_HINT}")
    if isinstance(crs, (str, int, np.integer)) and not isinstance(crs, (bool, np.bool_)):
        try:
            parsed = pyproj.CRS.from_user_input(int(crs) if isinstance(crs, np.integer) else crs)
        except pyproj.exceptions.CRSError:
            pass
        else:
            return _earth_only(parsed, crs)
    shown = crs if isinstance(crs, (str, int)) else type(crs).__name__
    raise CRSError(f"unknown CRS {shown!r}: use wgs84, gcj02, bd09 "
                   "or an EPSG code such as EPSG:4326")


def _celestial_body(crs: pyproj.CRS) -> str | None:
    """The body a CRS's ellipsoid belongs to when it is not the Earth ('Mars'), else None."""
    ell = crs.ellipsoid
    if ell is None or _EARTH_RADIUS_M[0] < ell.semi_major_metre < _EARTH_RADIUS_M[1]:
        return None
    datum = crs.datum.name if crs.datum is not None else ell.name
    skip = ("d", "gcs", "datum", "iau", "unknown", "based", "on", "ellipsoid", "sphere", "unnamed")
    words = [w for w in re.findall(r"[A-Za-z]+", f"{datum} {ell.name}") if w.lower() not in skip]
    return words[0] if words else f"radius {ell.semi_major_metre / 1000:,.0f} km"


def _earth_only(crs: pyproj.CRS, given: Any) -> pyproj.CRS:
    """``crs`` if it is a lon/lat or projected CRS of the Earth, else a :class:`CRSError` saying what it is."""
    shown = given if isinstance(given, (str, int)) else crs.name
    shown = shown if not isinstance(shown, str) or len(shown) <= 60 else f"{crs.name} (the WKT given)"
    body = _celestial_body(crs)
    if body is not None:
        what = f"a CRS of a body of {body}" if body.startswith("radius") else f"a {body} CRS (celestial body {body})"
        raise CRSError(f"{shown!r} is {what}, not an Earth CRS: {_HINT}")
    if crs.is_compound:
        horiz = next((c for c in crs.sub_crs_list if c.is_geographic or c.is_projected), None)
        code = horiz.to_epsg() if horiz is not None else None
        use = f"its horizontal part EPSG:{code}" if code else "its horizontal (lon/lat or projected) part"
        raise CRSError(f"{shown!r} is a compound CRS ({crs.name}), with heights: pass {use}")
    kind = ("geocentric" if crs.is_geocentric else "vertical" if crs.is_vertical else
            "engineering (local)" if crs.is_engineering else None)
    if kind is None and not (crs.is_geographic or crs.is_projected):
        kind = crs.type_name
    if kind is not None:
        article = "an" if kind[0] in "aeiou" else "a"
        raise CRSError(f"{shown!r} is {article} {kind} CRS ({crs.name}), not lon/lat or projected map coordinates: "
                       f"{_HINT}")
    return crs


def _map_coords(data: Any, func: Callable[..., Coords]) -> Any:
    """Apply a (lon, lat) -> (lon, lat) function to every vertex; keep Z; label EPSG:4326."""
    geoms = np.asarray(data.geometry.array, dtype=object)

    def xy(coords: np.ndarray) -> np.ndarray:
        out = coords.copy()
        out[:, 0], out[:, 1] = func(coords[:, 0], coords[:, 1])
        return out

    has_z = shapely.has_z(geoms)
    new = shapely.transform(geoms, xy)
    if has_z.any():
        new[has_z] = shapely.transform(geoms[has_z], xy, include_z=True)
    series = geopandas.GeoSeries(new, index=data.index, crs=4326, name=data.geometry.name)
    if isinstance(data, geopandas.GeoSeries):
        return series
    return data.assign(**{data.geometry.name: series}).set_crs(4326, allow_override=True)


def to_wgs84(data: Any, crs: Any = None) -> Any:
    """Return a copy of a GeoDataFrame/GeoSeries in WGS84 (EPSG:4326).

    Parameters
    ----------
    data : geopandas.GeoDataFrame or geopandas.GeoSeries
        Any geometries (multi-parts too); only the active geometry column is converted.
        It is not modified.
    crs : str, int, pyproj.CRS or None
        The CRS the coordinates are really in (see :func:`parse_crs`); it overrides ``data.crs``.
        ``None`` means ``data.crs``, or EPSG:4326 if the data have none.

    Returns
    -------
    geopandas.GeoDataFrame or geopandas.GeoSeries
        A new object of the same type with crs EPSG:4326.

    Raises
    ------
    CRSError
        If the CRS is unknown, is lon/lat while ``data.crs`` is projected, or gives coordinates
        outside [-180, 180] x [-90, 90].
    """
    if not isinstance(data, (geopandas.GeoDataFrame, geopandas.GeoSeries)):
        raise TypeError(f"expected a GeoDataFrame or GeoSeries, got {type(data).__name__}")
    declared = data.crs
    if crs is not None:
        target = parse_crs(crs)
    else:
        target = declared if declared is not None else pyproj.CRS.from_epsg(4326)
    label = crs if crs is not None else target.to_string()
    lonlat = isinstance(target, str) or target.is_geographic
    if declared is not None and declared.is_projected and lonlat:
        raise CRSError(f"the data declare the projected CRS {declared.to_string()} but "
                       f"crs={label!r} is lon/lat degrees: pass crs=None to use the declared CRS, "
                       "or fix the data with set_crs(..., allow_override=True)")
    if isinstance(target, str):
        result = _map_coords(data, gcj02_to_wgs84 if target == "gcj02" else bd09_to_wgs84)
    else:
        result = data.set_crs(target, allow_override=True).to_crs(4326)
    bounds = np.asarray(result.total_bounds, dtype=float)
    x0, y0, x1, y1 = bounds
    inside = np.isfinite(bounds).all() and -180 <= x0 and x1 <= 180 and -90 <= y0 and y1 <= 90
    if not inside and not np.isnan(bounds).all():
        raise CRSError(f"coordinates are outside [-180, 180] x [-90, 90] after conversion from "
                       f"crs={label!r} (bounds {x0:.6g}, {y0:.6g}, {x1:.6g}, {y1:.6g}): the wrong "
                       "CRS was probably given; check where the data come from")
    return result


def from_wgs84(data: Any, crs: Any) -> Any:
    """Convert WGS84 data to ``crs``: 'gcj02'/'bd09' (to draw on Chinese basemaps) or a pyproj CRS.

    ``data`` is first brought to WGS84 with ``to_wgs84(data, None)``. GCJ-02/BD-09 results keep
    the EPSG:4326 label, since pyproj has no definition for them: do not reproject them afterwards.
    """
    wgs = to_wgs84(data, None)
    target = parse_crs(crs)
    if isinstance(target, str):
        return _map_coords(wgs, wgs84_to_gcj02 if target == "gcj02" else wgs84_to_bd09)
    return wgs.to_crs(target)


_GCJ_WORDS = ("gcj", "gcj02", "gcj_02", "mars", "amap", "gaode", "autonavi", "tencent", "qq")
_BD_WORDS = ("bd", "bd09", "bd_09", "bd09ll", "baidu")
_WGS_WORDS = ("wgs", "wgs84", "wgs_84", "gps", "osm")
_SOURCE_COLUMNS = ("source", "src", "来源", "数据来源", "坐标系", "坐标系统", "crs", "coord_sys", "coordsys",
                   "coordinate_system", "platform", "平台", "地图")
_GCJ_VALUES = re.compile(r"高德|腾讯|火星|gcj|amap|gaode|autonavi|tencent", re.IGNORECASE)
_BD_VALUES = re.compile(r"百度|baidu|bd-?09", re.IGNORECASE)
_WGS_VALUES = re.compile(r"wgs|gps|openstreetmap|\bosm\b", re.IGNORECASE)
_DATAV = ("acroutes", "center", "centroid")


def _tokens(name: str) -> set[str]:
    return {t for t in re.split(r"[^0-9a-z]+", name.lower()) if t}


def crs_hints(frame: Any, *, lon_column: str | None = None, lat_column: str | None = None) -> list[dict[str, str]]:
    """What a table's or layer's own columns say about the CRS of its coordinates.

    Returns a list of ``{"crs": "gcj02" | "bd09" | "wgs84", "reason": ...}``: coordinate columns
    named like AMap/Baidu exports (``gcj_lng``, ``bd_lat``, ``高德经度``, ``lng_baidu``), a source
    column whose values name the platform (``高德``, ``百度``, ``AMap``…), or the properties of
    Aliyun DataV.GeoAtlas boundaries (``adcode`` with ``acroutes``/``center``/``centroid``),
    which are always GCJ-02.

    Examples
    --------
    >>> import pandas as pd
    >>> crs_hints(pd.DataFrame({"gcj_lng": [121.5], "gcj_lat": [31.2]}), lon_column="gcj_lng", lat_column="gcj_lat")
    [{'crs': 'gcj02', 'reason': "coordinate columns 'gcj_lng'/'gcj_lat' are named as GCJ-02 (AMap/Tencent)"}]
    >>> crs_hints(pd.DataFrame({"adcode": [310101], "acroutes": [[100000]], "center": [[121.49, 31.22]]}))[0]["crs"]
    'gcj02'
    >>> crs_hints(pd.DataFrame({"lng": [121.5], "lat": [31.2]}), lon_column="lng", lat_column="lat")
    []
    """
    hints: list[dict[str, str]] = []
    cols = [str(c) for c in frame.columns]
    coord_cols = [c for c in (lon_column, lat_column) if c] or [
        c for c in cols if _tokens(c) & {"lon", "lng", "long", "longitude", "lat", "latitude", "x", "y"}
        or any(k in c for k in ("经度", "纬度", "坐标"))]
    named = " / ".join(repr(c) for c in coord_cols)
    for crs, words, zh in (("gcj02", _GCJ_WORDS, ("高德", "腾讯", "火星")), ("bd09", _BD_WORDS, ("百度",)),
                           ("wgs84", _WGS_WORDS, ())):
        if any(_tokens(c) & set(words) or any(z in c for z in zh) for c in coord_cols):
            who = {"gcj02": "GCJ-02 (AMap/Tencent)", "bd09": "BD-09 (Baidu)", "wgs84": "WGS84"}[crs]
            hints.append({"crs": crs, "reason": f"coordinate columns {named.replace(' / ', '/')} are named as {who}"})
    for c in cols:
        if c.lower().strip() not in _SOURCE_COLUMNS or c in coord_cols:
            continue
        try:
            vals = pd.Series(frame[c].dropna().unique())
        except TypeError:
            continue
        vals = vals[vals.map(lambda v: isinstance(v, str))].astype(str)
        if vals.empty:
            continue
        for crs, pattern, who in (("gcj02", _GCJ_VALUES, "AMap/Tencent (GCJ-02)"), ("bd09", _BD_VALUES, "Baidu (BD-09)"),
                                  ("wgs84", _WGS_VALUES, "WGS84/GPS")):
            hit = vals.str.contains(pattern)
            if hit.mean() >= 0.5:
                hints.append({"crs": crs, "reason": f"column {c!r} says {vals[hit].iloc[0]!r} for {hit.mean():.0%} "
                                                    f"of its values: {who}"})
    lower = {c.lower() for c in cols}
    if "adcode" in lower and lower & set(_DATAV):
        found = "/".join(k for k in ("adcode", *_DATAV, "parent", "level") if k in lower)
        hints.append({"crs": "gcj02", "reason": f"its properties ({found}) are those of Aliyun DataV.GeoAtlas "
                                                "boundaries, which are always GCJ-02"})
    return hints
