"""QGIS layer styles (QML and SLD) in the map's colours, stored in a GeoPackage's ``layer_styles`` table.

QGIS opens a GeoPackage layer with the style its ``layer_styles`` table marks ``useAsDefault``
(the table QGIS itself writes with "Save as default"); other formats get a ``<name>.qml`` file
beside them, which QGIS loads as the default style of a file layer. The colours are the HTML
map's (:mod:`lifecircle.present.styles`): walking-minute classes for residents, share classes
against the target for units, category colours for facilities, service areas and sites, a red
ramp of people for gaps.

A style is a list of :class:`Rule` (a QGIS rule-based renderer, the same rules as an SLD
``FeatureTypeStyle``), so that NULL (not reachable, no residents) gets its own class. Both draw a
feature with every rule it matches, so the rules of a style exclude each other; the last may be
``ELSE`` (what no other rule took).
"""

from __future__ import annotations

import datetime as _dt
import html
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..config import ALL, CATEGORIES, DEFAULT_TARGET
from .styles import _NO_DATA, _style, minutes_classes, share_classes

__all__ = ["Rule", "LayerStyle", "qml", "sld", "write_layer_styles", "facility_style", "resident_style",
           "unit_style", "service_area_style", "gap_style", "site_style"]


@dataclass(frozen=True)
class Rule:
    """One class of a style: features matching ``where`` (None: every feature no earlier rule took).

    ``where`` is a tiny filter: ``("=", field, value)``, ``("<=", field, v)``, ``(">", field, v)``,
    ``(">=", field, v)``, ``("<", field, v)``, ``("null", field)``, ``("and", f, ...)``, ``("or", f, ...)``.
    """

    label: str
    where: Any
    fill: str
    stroke: str = "#ffffff"
    fill_alpha: float = 1.0
    stroke_width_mm: float = 0.26
    dashed: bool = False
    size_mm: float = 2.0


@dataclass(frozen=True)
class LayerStyle:
    """A layer's style: what geometry it draws (``point``/``polygon``) and its rules (they exclude each other)."""

    name: str
    geometry: str
    rules: tuple[Rule, ...]

    @property
    def fields(self) -> list[str]:
        """The fields the rules look at (each once, in order)."""
        out: list[str] = []

        def walk(f: Any) -> None:
            if f is None:
                return
            if f[0] in ("and", "or"):
                for g in f[1:]:
                    walk(g)
            elif f[1] not in out:
                out.append(f[1])

        for r in self.rules:
            walk(r.where)
        return out


# ---------------------------------------------------------------------------- filters

def _literal(v: Any) -> str:
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    return repr(float(v)) if isinstance(v, float) else str(v)


def _expression(f: Any) -> str:
    """The QGIS expression of a filter."""
    op = f[0]
    if op in ("and", "or"):
        return "(" + f" {op.upper()} ".join(_expression(g) for g in f[1:]) + ")"
    field = '"' + f[1].replace('"', '""') + '"'
    if op == "null":
        return f"{field} IS NULL"
    return f"{field} {op} {_literal(f[2])}"


_OGC = {"=": "PropertyIsEqualTo", "<=": "PropertyIsLessThanOrEqualTo", "<": "PropertyIsLessThan",
        ">": "PropertyIsGreaterThan", ">=": "PropertyIsGreaterThanOrEqualTo"}


def _ogc(f: Any) -> str:
    """The OGC filter XML of a filter."""
    op = f[0]
    if op in ("and", "or"):
        tag = "ogc:And" if op == "and" else "ogc:Or"
        return f"<{tag}>" + "".join(_ogc(g) for g in f[1:]) + f"</{tag}>"
    name = f"<ogc:PropertyName>{html.escape(f[1])}</ogc:PropertyName>"
    if op == "null":
        return f"<ogc:PropertyIsNull>{name}</ogc:PropertyIsNull>"
    value = f[2] if isinstance(f[2], str) else f"{float(f[2]):g}"
    return f"<ogc:{_OGC[op]}>{name}<ogc:Literal>{html.escape(str(value))}</ogc:Literal></ogc:{_OGC[op]}>"


# ---------------------------------------------------------------------------- QML

def _rgba(colour: str, alpha: float = 1.0) -> str:
    c = colour.lstrip("#")
    return f"{int(c[0:2], 16)},{int(c[2:4], 16)},{int(c[4:6], 16)},{round(255 * alpha)}"


def _options(props: dict[str, str]) -> str:
    items = "".join(f'<Option name="{k}" type="QString" value="{html.escape(v)}"/>' for k, v in props.items())
    legacy = "".join(f'<prop k="{k}" v="{html.escape(v)}"/>' for k, v in props.items())  # QGIS < 3.26 reads these
    return f'<Option type="Map">{items}</Option>{legacy}'


def _symbol(i: int, r: Rule, geometry: str) -> str:
    if geometry == "point":
        props = {"name": "circle", "color": _rgba(r.fill, r.fill_alpha), "outline_color": _rgba(r.stroke),
                 "outline_width": f"{r.stroke_width_mm:g}", "outline_width_unit": "MM", "size": f"{r.size_mm:g}",
                 "size_unit": "MM", "outline_style": "solid"}
        return (f'<symbol type="marker" name="{i}" alpha="1" clip_to_extent="1" force_rhr="0">'
                f'<layer class="SimpleMarker" pass="0" locked="0" enabled="1">{_options(props)}</layer></symbol>')
    props = {"color": _rgba(r.fill, r.fill_alpha), "style": "solid", "outline_color": _rgba(r.stroke),
             "outline_style": "dash" if r.dashed else "solid", "outline_width": f"{r.stroke_width_mm:g}",
             "outline_width_unit": "MM", "joinstyle": "round"}
    return (f'<symbol type="fill" name="{i}" alpha="1" clip_to_extent="1" force_rhr="0">'
            f'<layer class="SimpleFill" pass="0" locked="0" enabled="1">{_options(props)}</layer></symbol>')


def qml(style: LayerStyle) -> str:
    """The QGIS style document (``.qml``) of ``style``: a rule-based renderer.

    >>> s = LayerStyle("t", "point", (Rule("health", ("=", "category", "health"), "#d62728"),))
    >>> '"category" = \\'health\\'' in qml(s).replace("&quot;", '"').replace("&#x27;", "'")
    True
    """
    rules = []
    for i, r in enumerate(style.rules):
        where = "ELSE" if r.where is None else _expression(r.where)
        rules.append(f'<rule key="r{i}" symbol="{i}" label="{html.escape(r.label)}" filter="{html.escape(where)}"/>')
    symbols = "".join(_symbol(i, r, style.geometry) for i, r in enumerate(style.rules))
    return ("<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
            '<qgis version="3.28.0" styleCategories="Symbology">'
            '<renderer-v2 type="RuleRenderer" symbollevels="0" enableorderby="0" forceraster="0">'
            f'<rules key="root">{"".join(rules)}</rules><symbols>{symbols}</symbols></renderer-v2>'
            "<blendMode>0</blendMode><featureBlendMode>0</featureBlendMode><layerOpacity>1</layerOpacity>"
            "</qgis>\n")


def sld(style: LayerStyle) -> str:
    """The same style as an OGC Styled Layer Descriptor 1.1 (GeoServer, ArcGIS Pro, QGIS import)."""
    rules = []
    for r in style.rules:
        if r.where is None:
            filt = "<se:ElseFilter/>"
        else:
            filt = f"<ogc:Filter>{_ogc(r.where)}</ogc:Filter>"
        fill = (f'<se:Fill><se:SvgParameter name="fill">{r.fill}</se:SvgParameter>'
                f'<se:SvgParameter name="fill-opacity">{r.fill_alpha:g}</se:SvgParameter></se:Fill>')
        stroke = (f'<se:Stroke><se:SvgParameter name="stroke">{r.stroke}</se:SvgParameter>'
                  f'<se:SvgParameter name="stroke-width">{r.stroke_width_mm * 3.78:.2f}</se:SvgParameter>'
                  + ('<se:SvgParameter name="stroke-dasharray">5 4</se:SvgParameter>' if r.dashed else "")
                  + "</se:Stroke>")
        if style.geometry == "point":
            sym = (f"<se:PointSymbolizer><se:Graphic><se:Mark><se:WellKnownName>circle</se:WellKnownName>{fill}"
                   f"{stroke}</se:Mark><se:Size>{r.size_mm * 3.78:.1f}</se:Size></se:Graphic></se:PointSymbolizer>")
        else:
            sym = f"<se:PolygonSymbolizer>{fill}{stroke}</se:PolygonSymbolizer>"
        rules.append(f"<se:Rule><se:Name>{html.escape(r.label)}</se:Name>{filt}{sym}</se:Rule>")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<StyledLayerDescriptor version="1.1.0" xmlns="http://www.opengis.net/sld" '
            'xmlns:se="http://www.opengis.net/se" xmlns:ogc="http://www.opengis.net/ogc" '
            'xmlns:xlink="http://www.w3.org/1999/xlink" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            f"<NamedLayer><se:Name>{html.escape(style.name)}</se:Name><UserStyle><se:Name>{html.escape(style.name)}"
            f"</se:Name><se:FeatureTypeStyle>{''.join(rules)}</se:FeatureTypeStyle></UserStyle></NamedLayer>"
            "</StyledLayerDescriptor>\n")


# ---------------------------------------------------------------------------- the styles of our layers

def _categories(present: Iterable[str] | None) -> list[str]:
    seen = list(dict.fromkeys(str(c) for c in present)) if present is not None else list(CATEGORIES)
    order = [c for c in (*CATEGORIES, ALL) if c in seen]
    return order + [c for c in seen if c not in order]


def facility_style(categories: Iterable[str] | None = None, *, name: str = "facilities") -> LayerStyle:
    """Facilities (and suggested sites) as dots in their category's colour."""
    rules = [Rule(_style(c).label, ("=", "category", c), _style(c).colour, size_mm=2.4)
             for c in _categories(categories)]
    return LayerStyle(name, "point", (*rules, Rule("other", None, "#7f7f7f", size_mm=2.0)))


def site_style(categories: Iterable[str] | None = None) -> LayerStyle:
    """Suggested sites: larger dots in their category's colour with a thick white ring."""
    rules = [Rule(f"{_style(c).label} new site", ("=", "category", c), _style(c).colour, stroke_width_mm=0.6,
                  size_mm=4.0) for c in _categories(categories)]
    return LayerStyle("suggested_sites", "point", tuple(rules))


def resident_style(field: str, *, minutes: Sequence[float] = (5, 10, 15), cutoff_minutes: float | None = None,
                   name: str = "residents") -> LayerStyle:
    """Residents coloured by walking minutes (``field``, e.g. ``minutes_to_all``); NULL = not reachable."""
    classes = minutes_classes(minutes, cutoff_minutes=cutoff_minutes)
    rules, lower = [], None
    for upper, label, colour in classes[:-1]:
        cond = ("<=", field, float(upper)) if lower is None else ("and", (">", field, float(lower)),
                                                                   ("<=", field, float(upper)))
        rules.append(Rule(label, cond, colour, stroke="#ffffff", stroke_width_mm=0.1, size_mm=1.6))
        lower = upper
    rules.append(Rule(classes[-1][1], None, classes[-1][2], stroke="#ffffff", stroke_width_mm=0.1, size_mm=1.6))
    return LayerStyle(name, "point", tuple(rules))


def unit_style(field: str, *, target: float = DEFAULT_TARGET) -> LayerStyle:
    """Units coloured by their share (``field``, e.g. ``share_all_15min``) against the target; below it a
    thick dark-red outline, as on the HTML map."""
    classes = share_classes(target)
    rules = [Rule("no residents", ("null", field), _NO_DATA, stroke="#2b2b2b", fill_alpha=0.5)]
    upper = None
    for i, (lower, label, colour) in enumerate(classes):
        if i == len(classes) - 1:
            cond = None
        elif upper is None:
            cond = (">=", field, float(lower) - 1e-12)
        else:
            cond = ("and", (">=", field, float(lower) - 1e-12), ("<", field, upper))
        upper = float(lower) - 1e-12
        below = i > 0
        rules.append(Rule(label, cond, colour, stroke="#7f0000" if below else "#2b2b2b", fill_alpha=0.6,
                          stroke_width_mm=0.8 if below else 0.26))
    return LayerStyle("units", "polygon", tuple(rules))


def service_area_style(categories: Iterable[str] | None, minutes: Iterable[float], *,
                       name: str = "isochrones") -> LayerStyle:
    """Service areas per category (its colour, light fill) and threshold (smallest solid, larger dashed).

    Without categories (``lifecircle isochrone``), the thresholds get the walking-minute greens.
    """
    mins = sorted({float(m) for m in minutes})
    rules = []
    if categories is None:
        colours = {upper: colour for upper, _, colour in minutes_classes(mins)}
        for i, m in enumerate(mins):
            rules.append(Rule(f"≤ {m:g} min", ("=", "minutes", m), colours[m], stroke=colours[m], fill_alpha=0.25,
                              stroke_width_mm=0.6, dashed=i > 0))
        return LayerStyle(name, "polygon", tuple(rules))
    for c in _categories(categories):
        st = _style(c)
        for i, m in enumerate(mins):
            rules.append(Rule(f"{st.label} ≤ {m:g} min", ("and", ("=", "category", c), ("=", "minutes", m)),
                              st.colour, stroke=st.colour, fill_alpha=0.12, stroke_width_mm=0.5 if i == 0 else 0.3,
                              dashed=i > 0))
    return LayerStyle(name, "polygon", tuple(rules))


def gap_style(max_population: float) -> LayerStyle:
    """Gap areas in reds: darker = more people (four equal classes of the largest gap's people)."""
    top = max(float(max_population), 1.0)
    rules = []
    for i in range(4):
        lo, hi = top * i / 4, top * (i + 1) / 4
        cond = ("<=", "population", hi) if i == 0 else (("and", (">", "population", lo), ("<=", "population", hi))
                                                        if i < 3 else None)
        rules.append(Rule(f"{lo:,.0f}–{hi:,.0f} people", cond, "#cb181d", stroke="#67000d",
                          fill_alpha=0.15 + 0.55 * (i + 0.5) / 4, stroke_width_mm=0.2))
    return LayerStyle("gaps", "polygon", tuple(rules))


# ---------------------------------------------------------------------------- the layer_styles table

_CREATE = """CREATE TABLE IF NOT EXISTS layer_styles (
    id INTEGER PRIMARY KEY AUTOINCREMENT, f_table_catalog TEXT(256), f_table_schema TEXT(256),
    f_table_name TEXT(256), f_geometry_column TEXT(256), styleName TEXT(30), styleQML TEXT, styleSLD TEXT,
    useAsDefault BOOLEAN, description TEXT, owner TEXT(30), ui TEXT(30), update_time DATETIME
    DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))"""


def write_layer_styles(path: str | os.PathLike[str], styles: dict[str, LayerStyle], *,
                       description: str = "lifecircle: the colours of the HTML map") -> None:
    """Store ``styles`` (layer name -> style) in the GeoPackage's ``layer_styles`` table, as QGIS does.

    Each becomes the layer's default style (``useAsDefault``), so QGIS opens the layer coloured. The
    table is registered in ``gpkg_contents`` as an attribute table, as QGIS and GDAL register it.

    Examples
    --------
    >>> import tempfile, geopandas as gpd, shapely, pyogrio
    >>> f = os.path.join(tempfile.mkdtemp(), "f.gpkg")
    >>> gpd.GeoDataFrame({"category": ["health"]}, geometry=[shapely.Point(121.4, 31.2)], crs=4326).to_file(f)
    >>> write_layer_styles(f, {"f": facility_style(["health"])})
    >>> with sqlite3.connect(f) as con:
    ...     con.execute("SELECT f_table_name, f_geometry_column, useAsDefault FROM layer_styles").fetchall()
    [('f', 'geom', 1)]
    """
    # GDAL's OGR_CURRENT_DATE fixes the time stamps, for files that are byte-identical from run to run
    now = os.environ.get("OGR_CURRENT_DATE") or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    con = sqlite3.connect(os.fspath(path))
    try:
        with con:
            con.execute(_CREATE)
            geometry_columns = dict(con.execute("SELECT table_name, column_name FROM gpkg_geometry_columns"))
            for layer, style in styles.items():
                con.execute("DELETE FROM layer_styles WHERE f_table_name = ? AND styleName = ?", (layer, style.name))
                con.execute("INSERT INTO layer_styles (f_table_catalog, f_table_schema, f_table_name, "
                            "f_geometry_column, styleName, styleQML, styleSLD, useAsDefault, description, owner, ui, "
                            "update_time) VALUES ('', '', ?, ?, ?, ?, ?, 1, ?, 'lifecircle', NULL, ?)",
                            (layer, geometry_columns.get(layer, "geom"), style.name, qml(style), sld(style),
                             description, now))
            con.execute("INSERT OR IGNORE INTO gpkg_contents (table_name, data_type, identifier, description, "
                        "last_change) VALUES ('layer_styles', 'attributes', 'layer_styles', 'QGIS layer styles', ?)",
                        (now,))
    finally:
        con.close()


def write_qml_beside(path: str | os.PathLike[str], style: LayerStyle) -> Path:
    """Write ``<path stem>.qml`` next to a non-GeoPackage file: QGIS loads it as the layer's default style."""
    q = Path(path).with_suffix(".qml")
    q.write_text(qml(style), encoding="utf-8")
    return q
