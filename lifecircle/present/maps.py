"""Interactive coverage maps: one self-contained Leaflet HTML file per analysis, readable offline."""

# Styling lives in styles.py, the offline HTML assembly in html.py, and writing/reading the output
# folder in outputs.py; this module draws the layers.
# On GCJ-02 basemaps (AutoNavi/Gaode) every overlay is shifted WGS84 -> GCJ-02 so that it lines up.

from __future__ import annotations

import datetime as _dt
import html as _html
import json
import logging
import os
from typing import Any, Callable, Iterable, Sequence

import folium
import numpy as np
import pandas as pd
from folium.map import Layer
from folium.template import Template

from ..config import ALL, CATEGORIES, DEFAULT_TARGET, AnalysisConfig, minutes_column
from ..errors import InputDataError
from ..read.osm import OSM_CREDIT
from .html import _Box, _finish, _legend, _Raw, _state, render_html, save_map
from .styles import (
    _NO_DATA,
    BASEMAPS,
    CATEGORY_STYLES,
    Basemap,
    CategoryStyle,
    _basemap,
    _minutes_class_index,
    _pct,
    _style,
    minutes_classes,
    share_classes,
)

log = logging.getLogger("lifecircle")

__all__ = [
    "BASEMAPS",
    "CATEGORY_STYLES",
    "MAX_POINTS",
    "MAX_ICONS",
    "MAX_LAYER_VERTICES",
    "IMAGE_MAX_PX",
    "Basemap",
    "CategoryStyle",
    "minutes_classes",
    "share_classes",
    "base_map",
    "facilities_map",
    "service_areas_map",
    "residents_map",
    "units_map",
    "coverage_map",
    "hex_cells",
    "hex_size_for",
    "streets_map",
    "scenario_map",
    "point_map",
    "overlay_names",
    "render_html",
    "gaps_map",
    "sites_map",
    "save_map",
]

#: Above this many resident points, :func:`residents_map` draws hexagons instead of points.
MAX_POINTS = 5000
#: Above this many facilities, :func:`facilities_map` draws small dots instead of icons.
MAX_ICONS = 1000

# --------------------------------------------------------------------------------------------
# the map and geometry helpers


def base_map(*, basemap: str = "osm", bounds: Sequence[float] | None = None,
             tianditu_key: str | None = None) -> folium.Map:
    """An empty offline-ready map with a background ``basemap``, fitted to ``bounds``.

    Parameters
    ----------
    basemap : {"osm", "amap", "gaode", "tianditu", "none"}
        Background tiles (see :data:`BASEMAPS`). On ``amap``/``gaode`` the overlays added by the
        other functions are shifted to GCJ-02.
    bounds : (west, south, east, north), optional
        WGS84 extent to show.
    tianditu_key : str, optional
        Key for ``tianditu`` (default: ``$TIANDITU_KEY``).

    Examples
    --------
    >>> m = base_map(basemap="none", bounds=(121.46, 31.22, 121.49, 31.24))
    >>> html = render_html(m)
    >>> "<script src=\\"http" in html, '<meta charset="utf-8">' in html
    (False, True)
    """
    bm = _basemap(basemap)
    m = folium.Map(location=[0, 0], zoom_start=2, tiles=None, control_scale=True, prefer_canvas=True)
    st = _state(m)
    st.datum, st.basemap = bm.datum, bm.name
    if bm.name == "tianditu":
        key = tianditu_key or os.environ.get("TIANDITU_KEY")
        if not key:
            raise InputDataError("basemap 'tianditu' needs a key: get a free one at console.tianditu.gov.cn and "
                                 "pass tianditu_key=... or set TIANDITU_KEY")
        extra = {"tk": key}
    else:
        extra = {}
    for i, url in enumerate(bm.tiles):
        folium.TileLayer(tiles=url, attr=bm.attribution, name=f"{bm.name}{i}", overlay=i > 0, control=False,
                         subdomains=bm.subdomains or "abc", max_zoom=bm.max_zoom, max_native_zoom=bm.max_zoom,
                         **extra).add_to(m)
    if not bm.tiles:
        m.get_root().header.add_child(_Raw("<style>.leaflet-container {background: #f3f3ef;}</style>"),
                                      name="lc_plain_background")
    if bounds is not None:
        _fit(m, bounds)
    return m


def _fit(m: folium.Map, bounds_wgs84: Sequence[float]) -> None:
    w, s, e, n = (float(v) for v in bounds_wgs84)
    if not np.all(np.isfinite([w, s, e, n])):
        return
    if _state(m).datum == "gcj02":
        from ..read.crs import wgs84_to_gcj02

        (w, e), (s, n) = wgs84_to_gcj02(np.array([w, e]), np.array([s, n]))
    m.fit_bounds([[float(s), float(w)], [float(n), float(e)]])


def _map_for(m: folium.Map | None, basemap: str, bounds: Sequence[float] | None,
             tianditu_key: str | None = None) -> folium.Map:
    if m is None:
        return base_map(basemap=basemap, bounds=bounds, tianditu_key=tianditu_key)
    _state(m)
    return m


def _wgs84(gdf: Any, what: str):
    import geopandas as gpd

    if not isinstance(gdf, gpd.GeoDataFrame):
        raise InputDataError(f"{what} must be a GeoDataFrame (got {type(gdf).__name__}); "
                             "read files with geopandas.read_file or lifecircle.read.files.read_geo")
    if gdf.crs is None:
        gdf = gdf.set_crs(4326)
    elif gdf.crs.to_epsg() != 4326:
        gdf = gdf.to_crs(4326)
    keep = (gdf.geometry.notna() & ~gdf.geometry.is_empty).to_numpy()
    return gdf if keep.all() else gdf[keep]  # no copy of a city's residents when nothing is dropped


#: Polygons are simplified by at least 1e-5° (~1 m) before drawing: invisible at street zoom, and buffered
#: service areas shrink about five-fold (60,000 -> 11,000 vertices on the Shanghai sample).
_SIMPLIFY_DEG = 1e-5
#: The size budget of map.html: a polygon layer (a category's service areas, gap areas, units) keeps at most
#: this many vertices as vectors (~2 MB of the file). A layer of service areas above it (a city-wide one:
#: a million-node city has ~30,000 rings per threshold) is drawn instead as one image of
#: :data:`IMAGE_MAX_PX` pixels; its polygons stay in isochrones.gpkg.
MAX_LAYER_VERTICES = 100_000
#: Longest side of a service-area image layer, in pixels (4096 px over 56 km: 14 m pixels).
IMAGE_MAX_PX = 4096
#: Decimals of the drawn polygons' coordinates: 1e-5° is about 1 m.
_POLYGON_DECIMALS = 5
#: Simplification tolerances tried before a layer is over budget (degrees: ~1 m, ~4 m).
_TOLERANCES = (_SIMPLIFY_DEG, 4 * _SIMPLIFY_DEG)


def _display_polygons(geoms: np.ndarray, *, budget: int | None = None) -> tuple[np.ndarray | None, float]:
    """Polygons simplified to the display scale, and the tolerance used (degrees).

    Each ring is simplified on its own (Douglas-Peucker, ``preserve_topology=False``): GEOS's polygon
    simplification repairs every polygon as it goes, which takes minutes on a city-wide service area
    (1.4 million vertices, thousands of holes); the ring-wise pass takes a second or two. The parts left
    invalid are repaired with ``make_valid`` (their polygonal parts). With a vertex ``budget``: the
    tolerances :data:`_TOLERANCES` are tried in turn, and ``None`` is returned when none fits.
    """
    import shapely

    geoms = np.asarray(geoms, dtype=object)
    kinds = shapely.get_type_id(geoms)
    polygonal = bool(len(geoms)) and bool(np.isin(kinds, (-1, 3, 6)).all())  # -1: a missing geometry
    if polygonal and budget is not None and int(shapely.get_num_coordinates(geoms).sum()) > 4 * budget:
        # (counted before any part is copied) simplifying by a few metres halves a grid contour at most
        return None, _TOLERANCES[-1]
    parts, owner = shapely.get_parts(geoms, return_index=True)
    if not polygonal or not len(parts) or not (shapely.get_type_id(parts) == 3).all():  # GEOS's own
        return shapely.simplify(geoms, _SIMPLIFY_DEG, preserve_topology=False), _SIMPLIFY_DEG
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    cur, tol = rings, 0.0
    for tol in _TOLERANCES if budget is not None else _TOLERANCES[:1]:
        cur = shapely.simplify(cur, tol)
        if budget is None or int(shapely.get_num_coordinates(cur).sum()) <= budget:
            break
    else:
        return None, tol
    polys = shapely.polygons(cur, indices=ring_part)
    poly_owner = owner
    bad = np.flatnonzero(~shapely.is_valid(polys))
    if bad.size:
        fixed, fix_owner = shapely.get_parts(shapely.make_valid(polys[bad]), return_index=True)
        polygonal = shapely.get_type_id(fixed) == 3
        good = np.setdiff1d(np.arange(len(polys)), bad)
        polys = np.concatenate([polys[good], fixed[polygonal]])
        poly_owner = np.concatenate([owner[good], owner[bad][fix_owner[polygonal]]])
    out = np.array([shapely.MultiPolygon()] * len(geoms), dtype=object)
    if len(polys):
        order = np.argsort(poly_owner, kind="stable")
        has = np.unique(poly_owner)
        out[has] = shapely.multipolygons(polys[order], indices=np.searchsorted(has, poly_owner[order]))
    return out, tol


def _map_geoms(m: folium.Map, geoms: np.ndarray, *, simplify: bool = False) -> np.ndarray:
    """Shapely geometries (WGS84) as drawn on ``m``: shifted on GCJ-02 basemaps, rounded to 1e-6°.

    ``simplify=True`` (polygons): simplified by ~1 m (:func:`_display_polygons`) and rounded to 1e-5°.
    """
    if simplify:
        geoms, _ = _display_polygons(geoms)
    return _shift_round(m, geoms, _POLYGON_DECIMALS if simplify else 6)


def _shift_round(m: folium.Map, geoms: np.ndarray, digits: int) -> np.ndarray:
    import shapely

    if _state(m).datum == "gcj02":
        from ..read.crs import wgs84_to_gcj02

        def shift(c: np.ndarray) -> np.ndarray:
            x, y = wgs84_to_gcj02(c[:, 0], c[:, 1])
            return np.round(np.column_stack([x, y]), digits)

        return shapely.transform(geoms, shift)
    return shapely.transform(geoms, lambda c: np.round(c, digits))


def _image_frame(x0: float, y0: float, x1: float, y1: float) -> tuple[float, float, float, float, int, int]:
    """The image's Web Mercator frame, grown to whole pixels, and its size (at most :data:`IMAGE_MAX_PX`)."""
    px = max(x1 - x0, y1 - y0, 1.0) / IMAGE_MAX_PX
    width, height = max(int(np.ceil((x1 - x0) / px)), 2), max(int(np.ceil((y1 - y0) / px)), 2)
    return x0, y1 - height * px, x0 + width * px, y1, width, height


def _add_image(m: folium.Map, png: bytes, frame: tuple[float, float, float, float], *, name: str,
               show: bool) -> None:
    """Embed a PNG drawn over the Web Mercator ``frame`` (west, south, east, north) as a map layer."""
    import base64

    import pyproj
    import shapely

    x0, y0, x1, y1 = frame
    url = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    back = pyproj.Transformer.from_crs(3857, 4326, always_xy=True)
    (w, e), (s_, n) = back.transform([x0, x1], [y0, y1])
    (w, e), (s_, n) = shapely.get_coordinates(_shift_round(m, shapely.points([w, e], [s_, n]), 6)).T
    _ImageOverlay(url, bounds=[[s_, w], [n, e]], name=name, show=show).add_to(m)


def _script_data(layer: Any, js: str) -> None:
    """Put the JavaScript value ``js`` (a layer's data) into the page as ``var <layer name>_data``, before
    the layer's script. As is: branca parses the text of every rendered script as a Jinja template
    again, which a city's megabytes of data would make take seconds."""
    layer.get_root().script.add_child(_Raw(f"var {layer.get_name()}_data = {js};\n"), name=layer.get_name() + "_data")


class _ImageOverlay(Layer):
    """An image over the map (an embedded PNG), its data URI put into the page by :func:`_script_data`."""

    _template = Template("""
{% macro script(this, kwargs) %}
var {{ this.get_name() }} = L.imageOverlay({{ this.get_name() }}_data, {{ this.bounds|tojson }}, {});
{% endmacro %}
""")

    def __init__(self, url: str, *, bounds: list, name: str, show: bool = True):
        super().__init__(name=name, overlay=True, control=True, show=show)
        self._name = "ImageOverlay"
        self.url, self.bounds = url, bounds

    def render(self, **kwargs) -> None:
        _script_data(self, json.dumps(self.url))
        super().render(**kwargs)

    def _get_self_bounds(self) -> list:
        return self.bounds


def _to_mercator(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """WGS84 degrees to Web Mercator metres (EPSG:3857, the sphere's formula; pyproj's to 1e-7 m)."""
    r = 6378137.0
    lat = np.clip(np.asarray(lat, dtype=float), -85.05112878, 85.05112878)
    return r * np.radians(np.asarray(lon, dtype=float)), r * np.log(np.tan(np.pi / 4 + np.radians(lat) / 2))


def _image_layer(m: folium.Map, geoms: np.ndarray, colour: str, *, name: str, show: bool,
                 alpha: float = 0.2) -> None:
    """Polygons (WGS84) drawn as one transparent PNG embedded in the map, each with ``alpha`` (overlaps
    look darker: a pixel under k of them has 1 - (1 - alpha)^k).

    Filled by :func:`lifecircle.present.styles.raster_polygons` straight from the vertex arrays, in
    Web Mercator as Leaflet stretches an image overlay, at most :data:`IMAGE_MAX_PX` pixels on a side;
    a palette PNG of as many colours as overlaps (2 bits a pixel for three thresholds).
    """
    import io

    import shapely
    from PIL import Image

    from .styles import _hex_to_rgb, raster_polygons

    geoms = np.asarray(geoms, dtype=object)
    w, s, e, n = shapely.total_bounds(geoms)
    (x0, x1), (y0, y1) = _to_mercator(np.array([w, e]), np.array([s, n]))  # each axis on its own: monotonic
    frame = _image_frame(x0, y0, x1, y1)
    x0, y0, x1, y1, width, height = frame
    counts = raster_polygons(geoms, bounds=(x0, y0, x1, y1), shape=(height, width), transform=_to_mercator)
    levels = max(int(counts.max()), 1)
    rgb = _hex_to_rgb(colour).astype(int).tolist()
    pal = Image.fromarray(counts, "P")
    pal.putpalette([0, 0, 0] + rgb * levels)
    alphas = [0] + [int(round((1 - (1 - alpha) ** k) * 255)) for k in range(1, levels + 1)]
    buf = io.BytesIO()
    pal.save(buf, format="PNG", transparency=bytes(alphas), compress_level=2)  # 1M nodes: 0.07 s, 3 % over level 3's 0.14 s
    _add_image(m, buf.getvalue(), frame[:4], name=name, show=show)


def _segments_image_layer(m: folium.Map, lon: np.ndarray, lat: np.ndarray, u: np.ndarray, v: np.ndarray,
                          colour: str, *, name: str, show: bool, alpha: float = 0.8) -> None:
    """Straight segments (a network's edges ``u``–``v`` over its nodes) burnt one pixel wide into a
    two-colour PNG embedded in the map (:func:`lifecircle.present.styles.raster_segments`): a
    million-edge city in about a second."""
    import io

    from PIL import Image

    from .styles import _hex_to_rgb, raster_segments

    mx, my = _to_mercator(lon, lat)
    used = np.zeros(len(mx), dtype=bool)
    used[u] = used[v] = True
    frame = _image_frame(mx[used].min(), my[used].min(), mx[used].max(), my[used].max())
    x0, y0, x1, y1, width, height = frame
    img = raster_segments(mx[u], my[u], mx[v], my[v], bounds=(x0, y0, x1, y1), shape=(height, width))
    pal = Image.fromarray(img.astype(np.uint8), "P")
    pal.putpalette([0, 0, 0, *_hex_to_rgb(colour).astype(int).tolist()])
    buf = io.BytesIO()
    pal.save(buf, format="PNG", transparency=bytes([0, int(round(alpha * 255))]), compress_level=2)  # 1M: 0.6 -> 0.2 s, +11 %
    _add_image(m, buf.getvalue(), frame[:4], name=name, show=show)


def _feature_collection(geoms: np.ndarray, props: pd.DataFrame) -> dict:
    """A GeoJSON FeatureCollection (as geopandas' ``to_geo_dict(drop_id=True)`` makes it: missing values are
    null); points are made from their coordinate arrays (a city's facilities: 8,000 in 0.05 s, not 0.4 s)."""
    import geopandas as gpd
    import shapely

    geoms = np.asarray(geoms, dtype=object)
    if len(geoms) and (shapely.get_type_id(geoms) == 0).all() and not shapely.is_empty(geoms).any():
        xy = shapely.get_coordinates(geoms).tolist()
        cols = [(str(c), props[c].astype(object).where(props[c].notna(), None).tolist()) for c in props.columns]
        features = [{"type": "Feature", "properties": {c: v[i] for c, v in cols},
                     "geometry": {"type": "Point", "coordinates": tuple(xy[i])}} for i in range(len(xy))]
        return {"type": "FeatureCollection", "features": features}
    gdf = gpd.GeoDataFrame(props.reset_index(drop=True), geometry=gpd.GeoSeries(geoms))
    return gdf.to_geo_dict(drop_id=True)


def _text(values: Any, empty: str = "") -> list[str]:
    """HTML-escaped strings (popups are put into the page with innerHTML)."""
    out = []
    for v in values:
        if v is None or (isinstance(v, float) and np.isnan(v)) or str(v) in ("", "nan", "None"):
            out.append(empty)
        else:
            out.append(_html.escape(str(v)))
    return out


def _bounds(*frames: Any) -> tuple[float, float, float, float] | None:
    boxes = [f.total_bounds for f in frames if f is not None and len(f)]
    if not boxes:
        return None
    b = np.array(boxes, dtype=float)
    return float(np.nanmin(b[:, 0])), float(np.nanmin(b[:, 1])), float(np.nanmax(b[:, 2])), float(np.nanmax(b[:, 3]))


def overlay_names(m: folium.Map) -> list[str]:
    """Names of the layers listed in the map's layer control, in drawing order.

    >>> import geopandas as gpd
    >>> fac = gpd.GeoDataFrame({"category": ["health"], "name": ["社区卫生服务中心"], "source": ["osm"]},
    ...                        geometry=gpd.points_from_xy([121.47], [31.23]), crs=4326)
    >>> overlay_names(facilities_map(fac, basemap="none"))
    ['设施 Facilities · 卫生 health (1)']
    """
    return [c.layer_name for c in m._children.values()
            if isinstance(c, Layer) and c.control and c.overlay]


# --------------------------------------------------------------------------------------------
# layers


def facilities_map(facilities: Any, *, m: folium.Map | None = None, basemap: str = "osm",
                   show: bool = True, icons: bool | None = None, tianditu_key: str | None = None) -> folium.Map:
    """Facilities as coloured icons, one layer per category, with name and source in a popup.

    Parameters
    ----------
    facilities : GeoDataFrame
        Points with ``category``; ``name``, ``source`` (``osm``/``list``), ``subcategory`` and
        ``snapped``/``snap_dist_m`` are shown when present (``analysis.facilities``).
    m : folium.Map, optional
        Add to this map; otherwise a new one with ``basemap`` is made.
    show : bool
        Whether the layers are switched on when the page opens.
    icons : bool, optional
        Icons with the category's symbol, or small coloured dots (default: icons up to
        :data:`MAX_ICONS` facilities, where a city-wide layer would bury the map).

    Returns
    -------
    folium.Map

    Examples
    --------
    >>> from lifecircle import analyze
    >>> from lifecircle.datasets import toy_town_osm
    >>> a = analyze(toy_town_osm())
    >>> m = facilities_map(a.facilities, basemap="none")
    >>> len(overlay_names(m))
    4
    """
    gdf = _wgs84(facilities, "facilities")
    if "category" not in gdf.columns:
        raise InputDataError("facilities have no 'category' column: use lifecircle.facilities_from_file "
                             "or name the column 'category'")
    m = _map_for(m, basemap, _bounds(gdf), tianditu_key)
    if icons is None:
        icons = len(gdf) <= MAX_ICONS
    cats = [c for c in CATEGORIES if c in set(gdf["category"])]
    cats += sorted(set(map(str, gdf["category"])) - set(cats))
    legend_rows = []
    for cat in cats:
        sub = gdf[gdf["category"].astype(str) == cat]
        st = _style(cat)
        n = len(sub)
        src = sub["source"] if "source" in sub else pd.Series("", index=sub.index)
        props = pd.DataFrame({
            "name": _text(sub["name"] if "name" in sub else [None] * n, "(未命名 unnamed)"),
            "category": st.label,
            "type": _text(sub["subcategory"] if "subcategory" in sub else [None] * n),
            "source": [{"osm": "OSM", "list": "list 名单"}.get(str(s).lower(), _html.escape(str(s))) for s in src],
        })
        if "snapped" in sub:
            dist = sub["snap_dist_m"].to_numpy(dtype=float) if "snap_dist_m" in sub else np.full(n, np.nan)
            props["used"] = ["yes" if ok else f"no: {d:.0f} m from a walkable street" for ok, d in
                             zip(sub["snapped"].to_numpy(dtype=bool), dist)]
        fc = _feature_collection(_map_geoms(m, sub.geometry.to_numpy()), props)
        fields = list(props.columns)
        aliases = {"name": "名称 name", "category": "类别 category", "type": "type", "source": "来源 source",
                   "used": "used"}
        if icons:
            icon = folium.DivIcon(html=f'<div class="lc-fac" style="background:{st.colour}">{st.glyph}</div>',
                                  icon_size=(20, 20), icon_anchor=(10, 10), class_name="lc-fac-icon")
            marker = folium.Marker(icon=icon)
        else:
            marker = folium.CircleMarker(radius=3.5, color="#ffffff", weight=1, fill=True, fill_color=st.colour,
                                         fill_opacity=0.95)
        folium.GeoJson(fc, name=f"设施 Facilities · {st.label} ({n:,})", show=show, marker=marker,
                       popup=folium.GeoJsonPopup(fields=fields, aliases=[aliases[f] for f in fields]),
                       ).add_to(m)
        legend_rows.append(f'<div><span class="lc-fac-legend" style="background:{st.colour}">'
                           f'{st.glyph if icons else ""}</span>{_html.escape(st.label)} ({n:,})</div>')
    if legend_rows:
        _legend(m).sections["facilities"] = '<div class="lc-sec">设施 Facilities</div>' + "".join(legend_rows)
    return _finish(m)


def service_areas_map(areas: Any, *, m: folium.Map | None = None, basemap: str = "osm", show: bool = False,
                      tianditu_key: str | None = None) -> folium.Map:
    """Service areas (isochrones) of each category, one layer per category with every threshold.

    Parameters
    ----------
    areas : GeoDataFrame
        Columns ``category``, ``minutes``, ``geometry`` (and ``area_km2``), one row per
        (category, minutes), as made by ``lifecircle.present.isochrones``.
    show : bool
        Whether the layers are switched on when the page opens (default off: they overlap).

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> areas = gpd.GeoDataFrame({"category": ["health", "health"], "minutes": [5, 15], "area_km2": [0.2, 1.8]},
    ...     geometry=[shapely.Point(121.47, 31.23).buffer(0.003), shapely.Point(121.47, 31.23).buffer(0.008)],
    ...     crs=4326)
    >>> overlay_names(service_areas_map(areas, basemap="none"))
    ['服务范围 Service areas · 卫生 health (5/15 min)']
    """
    gdf = _wgs84(areas, "service areas")
    missing = {"category", "minutes"} - set(gdf.columns)
    if missing:
        raise InputDataError(f"service areas lack columns {sorted(missing)}: expected category, minutes, "
                             "area_km2, geometry (lifecircle.present.isochrones output)")
    m = _map_for(m, basemap, _bounds(gdf), tianditu_key)
    cats = [c for c in CATEGORIES + (ALL,) if c in set(gdf["category"])]
    cats += sorted(set(map(str, gdf["category"])) - set(cats))
    for cat in cats:
        sub = gdf[gdf["category"].astype(str) == cat].sort_values("minutes", ascending=False)
        st = _style(cat)
        mins = sub["minutes"].to_numpy(dtype=float)
        area = sub["area_km2"].to_numpy(dtype=float) if "area_km2" in sub else np.full(len(sub), np.nan)
        props = pd.DataFrame({
            "area": [f"{st.label} ≤ {mm:g} min" for mm in mins],
            "size": [f"{a:,.2f} km²" if np.isfinite(a) else "" for a in area],
            "rank": np.arange(len(sub))[::-1],  # 0 = smallest threshold
        })
        label = "/".join(f"{mm:g}" for mm in sorted(mins))
        name = f"服务范围 Service areas · {st.label} ({label} min)"
        drawn, _ = _display_polygons(sub.geometry.to_numpy(), budget=MAX_LAYER_VERTICES)
        if drawn is None:  # city scale: one image, the smaller thresholds darker
            log.info("map: the %s service areas are drawn as an image (over %s vertices)", cat,
                     f"{MAX_LAYER_VERTICES:,}")
            _image_layer(m, sub.geometry.to_numpy(), st.colour, name=name + " (image)", show=show)
            continue
        fc = _feature_collection(_shift_round(m, drawn, _POLYGON_DECIMALS), props)
        colour = st.colour

        def style(feature: dict, colour: str = colour) -> dict:
            r = feature["properties"]["rank"]
            return {"color": colour, "weight": 2.0 if r == 0 else 1.2, "fillColor": colour,
                    "fillOpacity": 0.12, "dashArray": None if r == 0 else "5 4"}

        folium.GeoJson(fc, name=name, show=show,
                       style_function=style,
                       tooltip=folium.GeoJsonTooltip(fields=["area", "size"], labels=False)).add_to(m)
    _legend(m).sections["areas"] = ('<div class="lc-sec">服务范围 Service areas</div><div class="lc-small">'
                                    "walkable area within each threshold; the smallest solid, larger dashed; "
                                    "overlaps look darker</div>")
    return _finish(m)


def gaps_map(gaps: Any, *, m: folium.Map | None = None, basemap: str = "osm", show: bool = True,
             tianditu_key: str | None = None) -> folium.Map:
    """Gap areas (uncovered residents, :func:`lifecircle.plan.gaps.find_gaps`), one layer per category.

    Darker red = more people; the tooltip gives the people, their walk today and the unit.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> g = gpd.GeoDataFrame({"gap": [1], "category": ["health"], "minutes": [15.0], "population": [420.0],
    ...     "median_minutes": [21.5], "unit": ["黄浦区"]}, geometry=[shapely.box(121.47, 31.23, 121.472, 31.232)], crs=4326)
    >>> overlay_names(gaps_map(g, basemap="none"))
    ['缺口 Gaps · 卫生 health (420 people)']
    """
    gdf = _wgs84(gaps, "gap areas")
    missing = {"category", "population"} - set(gdf.columns)
    if missing:
        raise InputDataError(f"gap areas lack columns {sorted(missing)}: pass lifecircle.plan.gaps.find_gaps output")
    m = _map_for(m, basemap, _bounds(gdf), tianditu_key)
    if gdf.empty:
        return _finish(m)
    top = float(gdf["population"].max()) or 1.0
    for cat in [c for c in CATEGORIES + (ALL,) if c in set(gdf["category"])]:
        sub = gdf[gdf["category"] == cat]
        st = _style(cat)
        med = sub["median_minutes"].to_numpy(dtype=float) if "median_minutes" in sub else np.full(len(sub), np.nan)
        what = [_html.escape(f"{st.label}: gap {int(g) if 'gap' in sub else i + 1}") for i, g in
                enumerate(sub["gap"] if "gap" in sub else range(len(sub)))]
        walk = [("no facility within the search limit" if not np.isfinite(v) else f"median walk {v:.1f} min")
                for v in med]
        weight = sub["population"].to_numpy(dtype=float) / top
        # one compact layer (flat integer arrays; a city's gaps: about half the bytes of GeoJSON), darker = more people
        data = {"kind": "areas", **_area_arrays(_map_geoms(m, sub.geometry.to_numpy(), simplify=True)),
                "colours": ["#cb181d"], "k": [0] * len(sub), "stroke": "#67000d", "weight": 0.8, "opacity": 0.5,
                "alpha": np.round(0.15 + 0.55 * weight, 3).tolist(),
                "fields": [["", "text", what], ["", "text", [f"{p:,.0f} people" for p in sub["population"]]],
                           ["", "text", walk],
                           ["", "text", _text(sub["unit"]) if "unit" in sub else [""] * len(sub)]]}
        _CompactLayer(data, name=f"缺口 Gaps · {st.label} ({sub['population'].sum():,.0f} people)", show=show).add_to(m)
        show = False  # only the first category's gaps are on when the page opens
    _legend(m).sections["gaps"] = ('<div class="lc-sec">缺口 Gaps</div><div class="lc-small">residents beyond the '
                                   "walk, grouped into areas; darker = more people</div>")
    return _finish(m)


#: Sites drawn as numbered markers per category; those ranked after them are dots (with the same tooltip).
NUMBERED_SITES_MAX = 200
#: Up to this many suggested sites in all, :func:`coverage_map` shows their layers when it opens; beyond (a
#: city's plan: thousands), the layers are listed but off, as their markers would cover everything else.
SITES_SHOWN_MAX = 200


def sites_map(sites: Any, *, m: folium.Map | None = None, basemap: str = "osm", show: bool = True,
              tianditu_key: str | None = None) -> folium.Map:
    """Suggested new sites (:func:`lifecircle.plan.sites.suggest_sites`), numbered by rank, per category
    (the first :data:`NUMBERED_SITES_MAX`; a city's later ones are one layer of dots).

    Examples
    --------
    >>> import geopandas as gpd
    >>> s = gpd.GeoDataFrame({"rank": [1, 2], "category": ["health"] * 2, "newly_covered_population": [300.0, 120.0],
    ...     "cumulative_share": [0.8, 0.86]}, geometry=gpd.points_from_xy([121.47, 121.48], [31.23, 31.23]), crs=4326)
    >>> overlay_names(sites_map(s, basemap="none"))
    ['新址 Suggested sites · 卫生 health (2)']
    """
    gdf = _wgs84(sites, "suggested sites")
    if "category" not in gdf.columns:
        raise InputDataError("suggested sites lack a category column: pass lifecircle.plan.sites.suggest_sites output")
    m = _map_for(m, basemap, _bounds(gdf), tianditu_key)
    for cat in [c for c in CATEGORIES if c in set(gdf["category"])]:
        sub = gdf[gdf["category"] == cat]
        if "rank" in sub:  # numbered in rank order, whatever order the table came in
            sub = sub.sort_values("rank", kind="stable")
        st = _style(cat)
        fg = folium.FeatureGroup(name=f"新址 Suggested sites · {st.label} ({len(sub)})", show=show)
        pts = _map_geoms(m, sub.geometry.to_numpy())
        ranks = sub["rank"].to_numpy() if "rank" in sub else np.arange(1, len(sub) + 1)
        gain = sub["newly_covered_population"].to_numpy(dtype=float) if "newly_covered_population" in sub else None
        share = sub["cumulative_share"].to_numpy(dtype=float) if "cumulative_share" in sub else None
        tips = [f"{st.label} new site #{int(r)}" for r in ranks]
        if gain is not None:
            tips = [f"{t}: +{g:,.0f} people" for t, g in zip(tips, gain)]
        if share is not None:
            tips = [f"{t}, {c:.1%} covered after it" for t, c in zip(tips, share)]
        if len(pts) > NUMBERED_SITES_MAX:  # a city's thousands of sites: the rest as one layer of dots
            rest = slice(NUMBERED_SITES_MAX, None)
            fc = _feature_collection(pts[rest], pd.DataFrame({"tip": [_html.escape(t) for t in tips[rest]]}))
            folium.GeoJson(fc, marker=folium.CircleMarker(radius=4, color="#ffffff", weight=1, fill=True,
                                                          fill_color=st.colour, fill_opacity=0.9),
                           tooltip=folium.GeoJsonTooltip(fields=["tip"], labels=False)).add_to(fg)
        for i, (pt, r) in enumerate(zip(pts[:NUMBERED_SITES_MAX], ranks)):
            tip = tips[i]
            icon = folium.DivIcon(html=(f'<div style="background:{st.colour};color:#fff;border:2px solid #fff;'
                                        "border-radius:50%;width:22px;height:22px;line-height:18px;"
                                        f'text-align:center;font:bold 11px sans-serif;box-shadow:0 0 3px #000">{int(r)}</div>'),
                                  icon_size=(22, 22), icon_anchor=(11, 11))
            folium.Marker([pt.y, pt.x], icon=icon, tooltip=_html.escape(tip)).add_to(fg)
        fg.add_to(m)
    _legend(m).sections["sites"] = ('<div class="lc-sec">新址 Suggested sites</div><div class="lc-small">numbered in '
                                    "the order chosen: each covers the most people still uncovered</div>")
    return _finish(m)


def _metric_crs(gdf: Any):
    from ..read.network import local_utm_crs

    b = gdf.total_bounds
    return local_utm_crs((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)


def _nice_size_m(raw: float) -> float:
    steps = np.array([25, 50, 75, 100, 150, 200, 250, 300, 400, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000])
    i = int(np.searchsorted(steps, raw))
    return float(steps[min(i, len(steps) - 1)])


def hex_size_for(width_m: float, height_m: float, *, n_cells: int = 1500, min_across: int = 20) -> float:
    """Hexagon circumradius (m) for an extent: about ``n_cells`` hexagons, a round size, but never so
    large that the extent spans fewer than ``min_across`` hexagons along its shorter side.

    >>> hex_size_for(10_000, 10_000)  # a 10 km square: ~1,500 cells of 160 m, rounded to 200 m
    200.0
    >>> hex_size_for(300, 200)  # a tiny area: 200 m / 20 hexagons across (width 2 * 0.866 * r) -> r <= 5.8 m
    5.0
    """
    side = max(min(width_m, height_m), 1.0)
    cap = side / min_across / np.sqrt(3)  # a pointy-top hexagon is sqrt(3) * r wide, 1.5 * r tall per row
    area = max(width_m * height_m, 1.0)
    size = _nice_size_m(np.sqrt(area / n_cells / (1.5 * np.sqrt(3))))
    if size <= cap:
        return size
    steps = np.array([1, 2, 5, 10, 20, 25, 50, 75, 100, 150, 200, 250, 300, 400, 500, 750, 1000, 1500, 2000,
                      3000, 5000])
    fit = steps[steps <= cap]
    return float(fit[-1]) if len(fit) else float(cap)


def hex_cells(x: np.ndarray, y: np.ndarray, size_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Axial coordinates (q, r) of the pointy-top hexagon (circumradius ``size_m``) holding each point.

    >>> q, r = hex_cells(np.array([0.0, 100.0, 0.0]), np.array([0.0, 0.0, 160.0]), 100.0)
    >>> q.tolist(), r.tolist()
    ([0, 1, -1], [0, 0, 1])
    """
    qf = (np.sqrt(3) / 3 * x - y / 3) / size_m
    rf = (2 / 3 * y) / size_m
    sf = -qf - rf
    q, r, s = np.rint(qf), np.rint(rf), np.rint(sf)
    dq, dr, ds = np.abs(q - qf), np.abs(r - rf), np.abs(s - sf)
    fix_q = (dq > dr) & (dq > ds)
    fix_r = ~fix_q & (dr > ds)
    q = np.where(fix_q, -r - s, q)
    r = np.where(fix_r, -q - s, r)
    return q.astype(np.int64), r.astype(np.int64)


def _hex_polygons(q: np.ndarray, r: np.ndarray, size_m: float) -> np.ndarray:
    import shapely

    cx = size_m * np.sqrt(3) * (q + r / 2)
    cy = size_m * 1.5 * r
    ang = np.radians(60 * np.arange(6) - 30)
    ring = np.stack([cx[:, None] + size_m * np.cos(ang), cy[:, None] + size_m * np.sin(ang)], axis=-1)
    ring = np.concatenate([ring, ring[:, :1]], axis=1)
    return shapely.polygons(ring)


def _weighted_median(groups: np.ndarray, values: np.ndarray, weights: np.ndarray, n_groups: int) -> np.ndarray:
    """Weighted median of ``values`` in each group 0..n_groups-1 (inf allowed); vectorised."""
    w = np.where(weights > 0, weights, 0.0)
    w = np.where(np.bincount(groups, weights=w, minlength=n_groups)[groups] > 0, w, 1.0)  # no people: plain median
    order = np.lexsort((values, groups))
    g, v, ws = groups[order], values[order], w[order]
    cum = np.cumsum(ws)
    start = np.searchsorted(g, np.arange(n_groups), side="left")
    before = np.concatenate([[0.0], cum])[start]
    total = np.bincount(g, weights=ws, minlength=n_groups)
    within = cum - before[g]
    hit = within >= total[g] / 2 * (1 - 1e-12)
    first = np.full(n_groups, -1)
    idx = np.flatnonzero(hit)
    gi = g[idx]
    keep = np.unique(gi, return_index=True)[1]
    first[gi[keep]] = idx[keep]
    return v[first]


class _CompactLayer(Layer):
    """Many small features (resident points or hexagons) sent as integer arrays, drawn on the canvas.

    A GeoJSON feature costs ~190 bytes; here a point costs ~25, so five layers of 5,000 points stay
    under 1 MB. Coordinates are micro-degrees from an origin; tooltips are formatted in the browser.
    """

    _template = Template("""
{% macro script(this, kwargs) %}
var {{ this.get_name() }} = L.featureGroup();
(function (group) {
    var d = {{ this.get_name() }}_data;
    function fmt(kind, v) {
        if (kind === "minutes") { return v < 0 ? d.unreachable : (v / 10).toFixed(1) + " min"; }
        if (kind === "pct") { return v < 0 ? "" : v + " %"; }
        if (kind === "text") { return v; }
        return Number(v).toLocaleString("en-US");
    }
    for (var i = 0; i < d.k.length; i++) {
        var style = {color: d.stroke, weight: d.weight, fillColor: d.colours[d.k[i]],
                     fillOpacity: d.alpha ? d.alpha[i] : d.opacity};
        var f;
        if (d.kind === "points") {
            style.radius = d.radius;
            f = L.circleMarker([d.y0 + d.y[i] / 1e6, d.x0 + d.x[i] / 1e6], style);
        } else if (d.kind === "areas") {  // polygons with holes, several a feature: flat arrays with offsets
            var polys = [];
            for (var p = d.feat[i]; p < d.feat[i + 1]; p++) {
                var rings = [];
                for (var q = d.poly[p]; q < d.poly[p + 1]; q++) {
                    var pts = [];
                    for (var j = d.ring[q]; j < d.ring[q + 1]; j++) { pts.push([d.y0 + d.xy[2 * j + 1] / 1e6, d.x0 + d.xy[2 * j] / 1e6]); }
                    rings.push(pts);
                }
                polys.push(rings);
            }
            f = L.polygon(polys, style);
        } else {
            var r = d.rings[i], ll = [];
            for (var j = 0; j < r.length; j += 2) { ll.push([d.y0 + r[j + 1] / 1e6, d.x0 + r[j] / 1e6]); }
            f = L.polygon(ll, style);
        }
        var tip = [];
        for (var c = 0; c < d.fields.length; c++) {
            var v = fmt(d.fields[c][1], d.fields[c][2][i]);
            if (v !== "") { tip.push(d.fields[c][0] ? "<b>" + d.fields[c][0] + "</b> " + v : v); }
        }
        f.bindTooltip(tip.join("<br>"));
        group.addLayer(f);
    }
})({{ this.get_name() }});
{% endmacro %}
""")

    def __init__(self, data: dict, *, name: str, show: bool = True):
        super().__init__(name=name, overlay=True, control=True, show=show)
        self._name = "CompactLayer"
        self.data = data

    def payload(self) -> str:
        return json.dumps(self.data, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")

    def render(self, **kwargs) -> None:
        _script_data(self, self.payload())
        super().render(**kwargs)

    def _get_self_bounds(self) -> list:
        xy = self.data.get("xy") or []
        xs = np.asarray(self.data.get("x") or xy[0::2] or [c for r in self.data.get("rings", []) for c in r[0::2]],
                        dtype=float)
        ys = np.asarray(self.data.get("y") or xy[1::2] or [c for r in self.data.get("rings", []) for c in r[1::2]],
                        dtype=float)
        if not len(xs):
            return [[None, None], [None, None]]
        x0, y0 = self.data["x0"], self.data["y0"]
        return [[y0 + ys.min() / 1e6, x0 + xs.min() / 1e6], [y0 + ys.max() / 1e6, x0 + xs.max() / 1e6]]


def _area_arrays(geoms: np.ndarray) -> dict[str, Any]:
    """(Multi)polygons (lon/lat, as drawn) as the flat arrays of a ``kind="areas"`` :class:`_CompactLayer`:
    ``xy`` micro-degrees from ``x0``, ``y0`` (each ring without its closing point), and the first point of
    each ring (``ring``), the first ring of each polygon (``poly``, its outer ring then its holes) and the
    first polygon of each feature (``feat``), each with one more entry closing the last.

    >>> import shapely
    >>> sq = shapely.box(0, 0, 1e-5, 1e-5).difference(shapely.box(2e-6, 2e-6, 4e-6, 4e-6))
    >>> a = _area_arrays(np.array([shapely.MultiPolygon([sq, shapely.box(2e-5, 0, 3e-5, 1e-5)])]))
    >>> a["feat"], a["poly"], a["ring"], len(a["xy"]) // 2
    ([0, 2], [0, 2, 3], [0, 4, 8, 12], 12)
    """
    import shapely

    parts, feat_of = shapely.get_parts(geoms, return_index=True)
    rings, poly_of = shapely.get_rings(parts, return_index=True)
    xy, ring_of = shapely.get_coordinates(rings, return_index=True)
    n_pts = np.bincount(ring_of, minlength=len(rings))
    keep = np.ones(len(xy), dtype=bool)
    keep[np.cumsum(n_pts)[n_pts > 0] - 1] = False  # the closing point repeats the first
    xy = xy[keep]
    x0, y0 = (float(xy[:, 0].min()), float(xy[:, 1].min())) if len(xy) else (0.0, 0.0)

    def starts(counts: np.ndarray) -> list[int]:
        return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64).tolist()

    return {"x0": x0, "y0": y0,
            "xy": np.rint((xy - (x0, y0)) * 1e6).astype(np.int64).ravel().tolist(),
            "ring": starts(np.maximum(n_pts - 1, 0)), "poly": starts(np.bincount(poly_of, minlength=len(parts))),
            "feat": starts(np.bincount(feat_of, minlength=len(geoms)))}


def _micro(values: np.ndarray, origin: float) -> list[int]:
    return np.rint((np.asarray(values, dtype=float) - origin) * 1e6).astype(np.int64).tolist()


def _tenths(minutes: np.ndarray) -> list[int]:
    """Minutes as integer tenths; -1 = not reachable."""
    return np.where(np.isfinite(minutes), np.rint(np.where(np.isfinite(minutes), minutes, 0) * 10), -1) \
        .astype(np.int64).tolist()


def residents_map(residents: Any, *, category: str, m: folium.Map | None = None, basemap: str = "osm",
                  minutes: Iterable[float] = (5, 10, 15), cutoff_minutes: float | None = None,
                  max_points: int = MAX_POINTS, hex_size_m: float | None = None, show: bool = True,
                  name: str | None = None, tianditu_key: str | None = None) -> folium.Map:
    """Residents coloured by walking minutes to the nearest facility of ``category`` (or ``all``).

    With more than ``max_points`` points they are aggregated into hexagons coloured by the
    population-weighted median walk, with their population and share within the largest threshold.

    Parameters
    ----------
    residents : GeoDataFrame
        Points with ``minutes_to_<category>`` (inf or missing = not reachable) and ``population``.
    category : str
        One of the four categories or ``all``.
    minutes : iterable of float
        Thresholds of the colour classes (see :func:`minutes_classes`).
    cutoff_minutes : float, optional
        Walks above it are "not reachable" (default: twice the largest threshold).
    hex_size_m : float, optional
        Hexagon circumradius; default: :func:`hex_size_for` the extent (about 1,500 hexagons, at least 20 across).
    name : str, optional
        Layer name; default "居民 Walking minutes · <category label>".

    Examples
    --------
    >>> import geopandas as gpd
    >>> r = gpd.GeoDataFrame({"population": [10, 30], "minutes_to_health": [4.0, float("inf")]},
    ...                      geometry=gpd.points_from_xy([121.470, 121.480], [31.230, 31.231]), crs=4326)
    >>> overlay_names(residents_map(r, category="health", basemap="none"))
    ['居民 Walking minutes · 卫生 health']
    """
    import shapely

    col = minutes_column(category)
    gdf = _wgs84(residents, "residents")
    if col not in gdf.columns:
        have = [c for c in gdf.columns if str(c).startswith("minutes_to_")]
        raise InputDataError(f"residents have no {col!r} column (found {have or 'none'}): pass residents "
                             "from lifecircle.analyze() and a category it analysed")
    if not (gdf.geometry.geom_type == "Point").all():
        gdf = gdf.set_geometry(gdf.geometry.representative_point())
    th = sorted({float(x) for x in minutes})
    classes = minutes_classes(th, cutoff_minutes=cutoff_minutes)
    cutoff = classes[-2][0] if len(classes) > 1 else th[-1]
    mins = gdf[col].to_numpy(dtype=float)
    mins = np.where(np.isnan(mins), np.inf, mins)
    pop = gdf["population"].to_numpy(dtype=float) if "population" in gdf else np.ones(len(gdf))
    m = _map_for(m, basemap, _bounds(gdf), tianditu_key)
    name = name or f"居民 Walking minutes · {_style(category).label}"
    data: dict[str, Any] = {"colours": [c[2] for c in classes], "unreachable": f"> {cutoff:g} min (not reachable)"}
    if len(gdf) > max_points:
        hexes = _hexagons_of(m, gdf, hex_size_m)
        n, inv, hex_size_m = hexes["n"], hexes["inv"], hexes["size_m"]
        med = _weighted_median(inv, mins, pop, n)
        hex_pop = np.bincount(inv, weights=pop, minlength=n)
        covered = np.bincount(inv, weights=pop * (mins <= th[-1]), minlength=n)
        share = np.divide(covered, hex_pop, out=np.full(n, np.nan), where=hex_pop > 0)
        data.update(kind="polygons", x0=hexes["x0"], y0=hexes["y0"], rings=hexes["rings"],
                    k=_minutes_class_index(med, classes).tolist(), stroke="#ffffff", weight=0.5, opacity=0.75,
                    fields=[["residents", "int", np.rint(hex_pop).astype(np.int64).tolist()],
                            ["median walk", "minutes", _tenths(med)],
                            [f"within {th[-1]:g} min", "pct",
                             np.where(np.isfinite(share), np.rint(np.nan_to_num(share) * 100), -1)
                             .astype(np.int64).tolist()]])
        name += f" (hexagons {hex_size_m:g} m)"
        note = (f"hexagons of {hex_size_m:g} m: population-weighted median walk of the "
                f"{len(gdf):,} resident points inside")
    else:
        xy = shapely.get_coordinates(_map_geoms(m, gdf.geometry.to_numpy()))
        x0, y0 = (float(xy[:, 0].min()), float(xy[:, 1].min())) if len(xy) else (0.0, 0.0)
        data.update(kind="points", x0=x0, y0=y0, x=_micro(xy[:, 0], x0), y=_micro(xy[:, 1], y0),
                    k=_minutes_class_index(mins, classes).tolist(), stroke="#555555", weight=0.6, opacity=0.85,
                    radius=4, fields=[["walk", "minutes", _tenths(mins)],
                                      ["residents", "int", np.rint(pop).astype(np.int64).tolist()]])
        note = "each dot is a resident point"
    _CompactLayer(data, name=name, show=show).add_to(m)
    rows = "".join(f'<div><span class="lc-dot" style="background:{c}"></span>{_html.escape(lab)}</div>'
                   for _, lab, c in classes)
    _legend(m).sections["minutes"] = (f'<div class="lc-sec">步行时间 Walk to the nearest facility</div>{rows}'
                                      f'<div class="lc-small">{_html.escape(note)}; one layer per category</div>')
    return _finish(m)


def _hexagons_of(m: folium.Map, gdf: Any, hex_size_m: float | None) -> dict[str, Any]:
    """The hexagons holding ``gdf``'s points (WGS84): each point's hexagon ``inv``, their number ``n``, size
    and rings (micro-degrees from ``x0``, ``y0``, in the map's datum). Made once per map for the same
    residents: each category's layer shows the same hexagons."""
    import geopandas as gpd
    import pyproj
    import shapely

    key = ("hexagons", id(gdf), hex_size_m)
    hit = _state(m).shared.get(key)
    if hit is not None and hit[0] is gdf:  # the frame itself is kept with it: its id is not reused
        return hit[1]
    crs = _metric_crs(gdf)
    lonlat = shapely.get_coordinates(gdf.geometry.to_numpy())
    x, y = pyproj.Transformer.from_crs(4326, crs, always_xy=True).transform(lonlat[:, 0], lonlat[:, 1])
    size_m = hex_size_m if hex_size_m is not None else hex_size_for(float(np.ptp(x)), float(np.ptp(y)))
    q, r = hex_cells(x, y, size_m)
    span = int(r.max() - r.min()) + 1
    cell, inv = np.unique((q - q.min()) * span + (r - r.min()), return_inverse=True)  # one int per cell
    keys = np.column_stack([cell // span + q.min(), cell % span + r.min()])
    n = len(keys)
    polys = gpd.GeoSeries(_hex_polygons(keys[:, 0], keys[:, 1], size_m), crs=crs).to_crs(4326)
    coords = shapely.get_coordinates(_map_geoms(m, polys.to_numpy())).reshape(n, 7, 2)[:, :6, :]
    x0, y0 = float(coords[..., 0].min()), float(coords[..., 1].min())
    rings = np.stack([np.rint((coords[..., 0] - x0) * 1e6), np.rint((coords[..., 1] - y0) * 1e6)], axis=-1)
    out = {"n": n, "inv": inv, "size_m": size_m, "x0": x0, "y0": y0,
           "rings": rings.reshape(n, 12).astype(np.int64).tolist()}
    _state(m).shared[key] = (gdf, out)
    return out


def units_map(units: Any, coverage: pd.DataFrame, *, category: str = ALL, minutes: float = 15,
              target: float = DEFAULT_TARGET, m: folium.Map | None = None, basemap: str = "osm",
              show: bool = True, tianditu_key: str | None = None) -> folium.Map:
    """Area units (districts, subdistricts) coloured by coverage share against the target.

    Parameters
    ----------
    units : GeoDataFrame
        Polygons with a ``unit`` name column (WGS84), as read by ``lifecircle.read.units.units_from_file``.
    coverage : DataFrame
        ``analysis.coverage``: rows per (unit, category, minutes) with ``share``, ``population``,
        ``population_to_cover``.
    category, minutes : str, float
        Which share to show.
    target : float
        Units below it are orange/red with a thick outline.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> boxes = [shapely.box(121.44, 31.22, 121.47, 31.25), shapely.box(121.47, 31.22, 121.50, 31.25)]
    >>> u = gpd.GeoDataFrame({"unit": ["静安区", "黄浦区"]}, geometry=boxes, crs=4326)
    >>> cov = pd.DataFrame({"unit": ["静安区", "黄浦区"], "category": "all", "minutes": 15.0,
    ...                     "population": [100.0, 200.0], "share": [0.9, 0.5], "population_to_cover": [0.0, 70.0]})
    >>> m = units_map(u, cov, basemap="none")
    >>> overlay_names(m)
    ['单元 Units · 全部 all within 15 min (target 85 %)']
    """
    gdf = _wgs84(units, "units")
    if "unit" not in gdf.columns:
        raise InputDataError("units have no 'unit' name column: read them with lifecircle.read.units.units_from_file "
                             "or rename the name column to 'unit'")
    need = {"unit", "category", "minutes", "share"}
    if not need <= set(coverage.columns):
        raise InputDataError(f"coverage lacks columns {sorted(need - set(coverage.columns))}: pass analysis.coverage")
    rows = coverage[(coverage["category"] == category) & np.isclose(coverage["minutes"].astype(float), minutes)]
    rows = rows.drop_duplicates("unit").set_index("unit")
    names = gdf["unit"].astype(str)
    if not names.isin(rows.index).any():
        raise InputDataError(f"coverage has no rows for these units at category={category!r}, minutes={minutes:g}: "
                             "run lifecircle.analyze(..., units=...) with the same units")
    share = rows["share"].reindex(names).to_numpy(dtype=float)
    pop = rows["population"].reindex(names).to_numpy(dtype=float) if "population" in rows else np.full(len(gdf), np.nan)
    need_pop = (rows["population_to_cover"].reindex(names).to_numpy(dtype=float)
                if "population_to_cover" in rows else np.full(len(gdf), np.nan))
    classes = share_classes(target)
    idx = np.select([share >= target - 1e-12, share >= classes[1][0]], [0, 1], default=2)
    colour = np.where(np.isnan(share), _NO_DATA, np.array([c[2] for c in classes], dtype=object)[idx])
    m = _map_for(m, basemap, _bounds(gdf), tianditu_key)
    st = _style(category)
    props = pd.DataFrame({
        "unit": _text(names),
        "share": [f"{s:.1%}" if np.isfinite(s) else "no residents" for s in share],
        "residents": [f"{p:,.0f}" if np.isfinite(p) else "" for p in pop],
        "to cover": [f"{p:,.0f}" if np.isfinite(p) else "" for p in need_pop],
        "colour": colour,
        "below": (share < target - 1e-12).astype(int),
    })
    fc = _feature_collection(_map_geoms(m, gdf.geometry.to_numpy(), simplify=True), props)
    label = f"{st.label} within {minutes:g} min (target {_pct(target)} %)"
    folium.GeoJson(fc, name=f"单元 Units · {label}", show=show,
                   style_function=lambda f: {
                       "fillColor": f["properties"]["colour"], "fillOpacity": 0.25,
                       "color": "#7f0000" if f["properties"]["below"] else "#2b2b2b",
                       "weight": 3 if f["properties"]["below"] else 1},
                   tooltip=folium.GeoJsonTooltip(fields=["unit", "share", "residents", "to cover"],
                                                 aliases=["单元 unit", f"share ≤ {minutes:g} min", "residents",
                                                          f"to reach {_pct(target)} %"])).add_to(m)
    legend_rows = "".join(f'<div><span class="lc-sw" style="background:{c}"></span>{_html.escape(lab)}</div>'
                          for _, lab, c in classes)
    _legend(m).sections["units"] = (f'<div class="lc-sec">单元 Units: {_html.escape(label)}</div>{legend_rows}'
                                    '<div class="lc-small">below target: thick dark-red outline</div>')
    return _finish(m)


def _info_html(title: str, summary: dict, config: AnalysisConfig | None, basemap: Basemap | None) -> str:
    created = str(summary.get("created") or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))[:10]
    lines = [f"<h4>{_html.escape(title)}</h4>", f'<div class="lc-small">{_html.escape(created)} · lifecircle '
             f'{_html.escape(str(summary.get("lifecircle_version", "")))}</div>']
    if config is not None:
        lines.append(f"<div>walking {config.walk_speed_kmh:g} km/h · thresholds "
                     f"{'/'.join(f'{x:g}' for x in config.minutes)} min · target {_pct(config.target)} %</div>")
    res = summary.get("residents") or {}
    if res:
        est = " (estimated from buildings)" if res.get("population_is_estimate") else ""
        lines.append(f"<div>{res.get('population', 0):,.0f} residents at {res.get('points', 0):,} points{est}</div>")
    cats = summary.get("categories") or {}
    if cats and config is not None:
        cells = []
        for cat, c in cats.items():
            mark = "✓" if c.get("meets_target") else "✗"
            colour = "#1a9850" if c.get("meets_target") else "#d73027"
            cells.append(f'<div><span style="color:{colour};font-weight:bold">{mark}</span> '
                         f"{_html.escape(_style(cat).label)}: {c.get('share', float('nan')):.1%} within "
                         f"{config.headline_minutes:g} min</div>")
        lines.append("".join(cells))
    credit = OSM_CREDIT
    if basemap is not None and basemap.name not in ("osm", "none"):
        credit += " · tiles " + basemap.attribution
    lines.append(f'<div class="lc-small">{credit}</div>')
    return "".join(lines)


def streets_map(network: Any, *, m: folium.Map | None = None, basemap: str = "osm", show: bool | None = None,
                bounds: Sequence[float] | None = None, tianditu_key: str | None = None) -> folium.Map:
    """The walking network as one light grey polyline layer "街道 streets", for maps without tiles.

    Edges are merged into polylines, simplified and rounded to 1e-5° (about 1 m), so a district's
    streets stay a few hundred KB; overlays then sit on streets rather than float on grey. Above
    200,000 edges (2 × :data:`MAX_LAYER_VERTICES` ends) the streets are one image instead
    (:data:`IMAGE_MAX_PX` pixels; a million-node city's polylines would be ~40 MB).

    Parameters
    ----------
    network : lifecircle.WalkNetwork
        ``lon``, ``lat`` of the nodes and edges ``u``, ``v``.
    show : bool, optional
        Whether the layer is on when the page opens; default: only on a map without tiles
        (``basemap="none"``), where it is the only geography.
    bounds : (west, south, east, north), optional
        Only edges with an end inside (WGS84); default every edge.

    Examples
    --------
    A 3-node path (0 — 1 — 2) is one polyline of 3 points:

    >>> from lifecircle.read.network import WalkNetwork
    >>> net = WalkNetwork.from_lonlat([121.47, 121.471, 121.472], [31.23, 31.23, 31.231], [0, 1], [1, 2])
    >>> m = streets_map(net, basemap="none")
    >>> overlay_names(m)
    ['街道 streets']
    """
    import shapely

    lon, lat = np.asarray(network.lon, dtype=float), np.asarray(network.lat, dtype=float)
    u, v = np.asarray(network.u), np.asarray(network.v)
    if bounds is not None:
        w, s, e, n = bounds
        inside = (lon >= w) & (lon <= e) & (lat >= s) & (lat <= n)
        keep = inside[u] | inside[v]
        u, v = u[keep], v[keep]
    if m is None:
        b = bounds if bounds is not None else (lon.min(), lat.min(), lon.max(), lat.max())
        m = base_map(basemap=basemap, bounds=b, tianditu_key=tianditu_key)
    st = _state(m)
    if show is None:
        show = st.basemap == "none"
    if 2 * len(u) > 4 * MAX_LAYER_VERTICES:  # a city's streets: one image (merged polylines would be tens of MB)
        _segments_image_layer(m, lon, lat, u, v, "#9e9e9e", name="街道 streets", show=bool(show), alpha=0.8)
        log.debug("streets layer: %d edges drawn as an image", len(u))
        return _finish(m)
    seg = np.stack([np.column_stack([lon[u], lat[u]]), np.column_stack([lon[v], lat[v]])], axis=1)
    lines = shapely.get_parts(shapely.line_merge(shapely.multilinestrings(shapely.linestrings(seg))))
    lines = _map_geoms(m, shapely.simplify(lines, _SIMPLIFY_DEG))
    lines = shapely.transform(lines, lambda c: np.round(c, 5))
    fc = _feature_collection(lines, pd.DataFrame(index=range(len(lines))))
    folium.GeoJson(fc, name="街道 streets", show=bool(show), interactive=False, smooth_factor=1.0,
                   style_function=lambda feature: {"color": "#9e9e9e", "weight": 1.0, "opacity": 0.7}).add_to(m)
    log.debug("streets layer: %d edges in %d polylines", len(u), len(lines))
    return _finish(m)


def _add_streets(m: folium.Map, network: Any, *frames: Any) -> None:
    """The streets layer of the study area (its extent plus ~500 m), when the analysis has its network."""
    if network is None or not hasattr(network, "u"):
        return
    b = _bounds(*[_wgs84(f, "layer") for f in frames if f is not None and len(f)])
    pad = 0.005
    streets_map(network, m=m, bounds=None if b is None else (b[0] - pad, b[1] - pad, b[2] + pad, b[3] + pad))


def coverage_map(analysis: Any, *, isochrones: Any = None, units: Any = None, gaps: Any = None, sites: Any = None,
                 basemap: str = "osm", m: folium.Map | None = None, title: str | None = None, max_points: int = MAX_POINTS,
                 tianditu_key: str | None = None) -> folium.Map:
    """The map of an analysis: units, service areas, residents by walking minutes, facilities.

    Parameters
    ----------
    analysis : lifecircle.Analysis
        Anything with ``facilities``, ``residents``, ``coverage``, ``config`` and ``summary``.
    isochrones : GeoDataFrame, optional
        Service areas (``category, minutes, area_km2, geometry``); default ``analysis.isochrones``
        if it has them.
    units : GeoDataFrame, optional
        Unit polygons with a ``unit`` column; default ``analysis.units`` if present.
    gaps, sites : GeoDataFrame, optional
        Gap areas (:func:`gaps_map`) and suggested new sites (:func:`sites_map`).

        ``isochrones`` and ``gaps`` may be :class:`concurrent.futures.Future` objects: the other layers are made
        first, then each is waited for and its layers go where they would have been (``lifecircle analyze``
        starts the map on a second thread before it draws the areas).
    basemap : str
        See :func:`base_map`.
    title : str, optional
        Default "15分钟社区生活圈 15-minute life circle".

    Returns
    -------
    folium.Map
        Save it with :func:`save_map`.

    Examples
    --------
    >>> from lifecircle import analyze
    >>> from lifecircle.datasets import toy_town_osm
    >>> m = coverage_map(analyze(toy_town_osm()), basemap="none")
    >>> overlay_names(m)[:2]
    ['街道 streets', '居民 Walking minutes · 卫生 health']
    """
    cfg: AnalysisConfig = analysis.config
    summary = getattr(analysis, "summary", None) or {}
    residents = analysis.residents
    facilities = analysis.facilities
    isochrones = isochrones if isochrones is not None else getattr(analysis, "isochrones", None)
    units = units if units is not None else getattr(analysis, "units", None)
    cats = [c for c in cfg.categories if minutes_column(c) in residents.columns]
    if not cats:
        raise InputDataError("the residents have no minutes_to_<category> columns: pass the result of "
                             "lifecircle.analyze()")
    if minutes_column(ALL) in residents.columns and len(cats) > 1:
        cats.append(ALL)
    if units is not None and len(units) and "unit" in units.columns:
        # only units with residents: the district layer of a small study area may hold the whole city
        units = units[units["unit"].astype(str).isin(set(analysis.coverage["unit"].astype(str)))]
    if m is None:  # fit the study area (units such as whole districts may reach far beyond it)
        frames = [_wgs84(f, w) for f, w in ((residents, "residents"), (facilities, "facilities"))
                  if f is not None and len(f)]
        if not frames and units is not None:
            frames = [_wgs84(units, "units")]
        m = base_map(basemap=basemap, bounds=_bounds(*frames), tianditu_key=tianditu_key)
    st = _state(m)
    head = cfg.headline_minutes
    _add_streets(m, getattr(analysis, "network", None), residents, facilities)
    if units is not None and len(units):
        cat = ALL if ALL in cats else cats[0]
        units_map(units, analysis.coverage, category=cat, minutes=head, target=cfg.target, m=m)
    later: list = []  # (a Future of a layer's data, how to draw it, what the map held when it was due)

    def due(data: Any, draw: Callable[[Any], Any]) -> None:
        """Draw ``data`` now, or note where it goes when it is a Future (drawn once the rest is made)."""
        from concurrent.futures import Future

        if isinstance(data, Future):
            later.append((data, draw, set(m._children), list(st.legend.sections) if st.legend is not None else []))
        elif data is not None and len(data):
            draw(data)

    due(isochrones, lambda g: service_areas_map(g, m=m))
    for cat in cats:
        residents_map(residents, category=cat, m=m, minutes=cfg.minutes, cutoff_minutes=cfg.cutoff_minutes,
                      max_points=max_points, show=cat == cats[-1])
    due(gaps, lambda g: gaps_map(g, m=m, show=False))
    if facilities is not None and len(facilities):
        facilities_map(facilities, m=m)
    if sites is not None and len(sites):  # a city's thousands: listed, ticked by the user (they would hide all)
        sites_map(sites, m=m, show=len(sites) <= SITES_SHOWN_MAX)
    for data, draw, held, sections in sorted(later, key=lambda x: not x[0].done()):  # the ready ones first
        data = data.result()  # (an error in making them ends the map too)
        if data is None or not len(data):
            continue
        before = set(m._children), set(_legend(m).sections)
        draw(data)
        controls = {c.get_name() for c in (st.legend, st.info, st.layer_control) if c is not None}
        _move_new(m._children, before[0], after=held - controls)  # (_finish puts the controls last again)
        _move_new(_legend(m).sections, before[1], after=set(sections))
    _title(m, title or "15分钟社区生活圈 15-minute life circle", summary, cfg, replace=True)
    return _finish(m)


def _move_new(d: dict, old: set, *, after: set) -> None:
    """Move the items of ``d`` whose keys are not in ``old`` (in their order) to just after the last of the others
    whose key is in ``after`` (first if none is), in place."""
    items = list(d.items())
    new = [kv for kv in items if kv[0] not in old]
    rest = [kv for kv in items if kv[0] in old]
    pos = max((i + 1 for i, (k, _) in enumerate(rest) if k in after), default=0)
    d.clear()
    d.update(rest[:pos] + new + rest[pos:])


def _points_layer(m: folium.Map, points: Any, *, name: str, colour: str, what: str) -> None:
    """Facilities as circle markers in one layer, the category and name in the tooltip."""
    gdf = _wgs84(points, what)
    group = folium.FeatureGroup(name=name, show=True)
    import shapely

    shapely_coords = shapely.get_coordinates(_map_geoms(m, gdf.geometry.to_numpy()))
    cats = gdf["category"].astype(str).tolist() if "category" in gdf else [""] * len(gdf)
    names = _text(gdf["name"], "(未命名 unnamed)") if "name" in gdf else [""] * len(gdf)
    for (x, y), cat, nm in zip(shapely_coords, cats, names):
        folium.CircleMarker([y, x], radius=7, color=colour, weight=3, fill=True, fill_color=_style(cat).colour,
                            fill_opacity=0.9, tooltip=f"{_html.escape(_style(cat).label)} · {nm}").add_to(group)
    group.add_to(m)


def scenario_map(scenario: Any, *, before: Any = None, basemap: str = "osm", m: folium.Map | None = None,
                 max_points: int = MAX_POINTS, tianditu_key: str | None = None) -> folium.Map:
    """The map of a what-if scenario: facilities added and removed, residents before and after.

    Parameters
    ----------
    scenario : lifecircle.plan.scenario.Scenario
        ``added``, ``removed``, ``residents`` (after), ``headline_minutes``.
    before : lifecircle.Analysis, optional
        The analysis the scenario changes: its residents are the "before" layer (off when the page
        opens) and its network the streets layer.

    Examples
    --------
    >>> from lifecircle import analyze
    >>> from lifecircle.datasets import toy_town_osm
    >>> from lifecircle.plan.scenario import scenario
    >>> a = analyze(toy_town_osm())
    >>> s = scenario(a, remove=[0])
    >>> overlay_names(scenario_map(s, before=a, basemap="none"))  # doctest: +NORMALIZE_WHITESPACE
    ['街道 streets', '居民 之前 Before · 全部 all', '居民 之后 After · 全部 all', '关闭设施 Removed (1)']
    """
    res = scenario.residents
    cfg = getattr(before, "config", None)
    minutes = cfg.minutes if cfg is not None else (5, 10, 15)
    cutoff = cfg.cutoff_minutes if cfg is not None else None
    cols = [c for c in res.columns if str(c).startswith("minutes_to_")]
    cat = ALL if minutes_column(ALL) in cols else (cols[0][len("minutes_to_"):] if cols else None)
    if cat is None:
        raise InputDataError("the scenario residents have no minutes_to_<category> column: pass the result of "
                             "lifecircle.plan.scenario.scenario()")
    frames = [_wgs84(f, "layer") for f in (res, scenario.added, scenario.removed) if f is not None and len(f)]
    m = m if m is not None else base_map(basemap=basemap, bounds=_bounds(*frames), tianditu_key=tianditu_key)
    if before is not None:
        _add_streets(m, getattr(before, "network", None), res)
    label = _style(cat).label
    if before is not None and minutes_column(cat) in before.residents.columns:
        residents_map(before.residents, category=cat, m=m, minutes=minutes, cutoff_minutes=cutoff,
                      max_points=max_points, show=False, name=f"居民 之前 Before · {label}")
    residents_map(res, category=cat, m=m, minutes=minutes, cutoff_minutes=cutoff, max_points=max_points,
                  name=f"居民 之后 After · {label}")
    if scenario.added is not None and len(scenario.added):
        _points_layer(m, scenario.added, name=f"新增设施 Added ({len(scenario.added)})", colour="#1a9850",
                      what="added facilities")
    if scenario.removed is not None and len(scenario.removed):
        _points_layer(m, scenario.removed, name=f"关闭设施 Removed ({len(scenario.removed)})", colour="#000000",
                      what="removed facilities")
    _title(m, "情景 Scenario: 之前 before → 之后 after", {}, cfg)
    return _finish(m)


def _title(m: folium.Map, title: str, summary: Any, cfg: Any, *, replace: bool = False) -> None:
    """The page's ``<title>`` and the info box in the top-left corner (kept if the map has one, unless ``replace``)."""
    m.get_root().header.add_child(_Raw(f"<title>{_html.escape(title)}</title>"), name="lc_title")
    st = _state(m)
    info = _info_html(title, summary, cfg, BASEMAPS.get(st.basemap))
    if st.info is None:
        st.info = _Box(info, position="topleft", css_class="lc-title")
        m.add_child(st.info)
    elif replace:
        st.info.html = info


def point_map(isochrones: Any, lon: float, lat: float, *, network: Any = None, basemap: str = "osm",
              m: folium.Map | None = None, tianditu_key: str | None = None) -> folium.Map:
    """The map of ``lifecircle isochrone``: the walkable areas from one point, and the point.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> iso = gpd.GeoDataFrame({"minutes": [5.0, 15.0], "area_km2": [0.2, 1.8]},
    ...     geometry=[shapely.Point(121.47, 31.23).buffer(0.003), shapely.Point(121.47, 31.23).buffer(0.008)],
    ...     crs=4326)
    >>> overlay_names(point_map(iso, 121.47, 31.23, basemap="none"))
    ['服务范围 Service areas · 步行 walk from the point (5/15 min)', '起点 Start point']
    """
    gdf = _wgs84(isochrones, "isochrones").copy()
    gdf["category"] = "步行 walk from the point"
    m = m if m is not None else base_map(basemap=basemap, bounds=_bounds(gdf), tianditu_key=tianditu_key)
    if network is not None:
        _add_streets(m, network, gdf)
    service_areas_map(gdf, m=m, show=True)
    import shapely

    (x, y), = shapely.get_coordinates(_map_geoms(m, np.array([shapely.Point(lon, lat)])))
    group = folium.FeatureGroup(name="起点 Start point", show=True)
    folium.CircleMarker([y, x], radius=7, color="#000000", weight=2, fill=True, fill_color="#ffffff",
                        fill_opacity=1.0, tooltip=f"{lon:.6f}, {lat:.6f}").add_to(group)
    group.add_to(m)
    _title(m, "步行可达范围 Walkable from here", {}, None)
    return _finish(m)
