"""Self-contained HTML for folium maps: Leaflet inlined, CDN assets dropped, legend and info boxes, saving."""

# The HTML must open on government intranets that block foreign CDNs, so nothing is loaded from the
# network except background tiles: Leaflet's JS/CSS (from the xstatic-leaflet package) are inlined,
# its images become data: URIs, and folium's jQuery/Bootstrap/awesome-markers/font-awesome links are
# dropped (we draw CircleMarkers and DivIcons; a 15-line `$` shim covers folium's two jQuery calls).

from __future__ import annotations

import base64
import functools
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import folium
from branca.element import Element, MacroElement
from folium.template import Template

from ..errors import LifecircleError
from ..read.files import atomic_path

log = logging.getLogger("lifecircle")

__all__ = ["render_html", "save_map"]

# --------------------------------------------------------------------------------------------
# offline assets


_DROPPED_ASSETS = {"leaflet", "leaflet_css", "jquery", "bootstrap", "bootstrap_css", "glyphicons_css",
                   "awesome_markers", "awesome_markers_css", "awesome_markers_font_css", "awesome_rotate_css"}

_JQUERY_SHIM = """
(function () {
  // folium's Popup calls $(html)[0] and Map calls $(document).ready(fn): nothing else of jQuery.
  if (window.jQuery || window.$) { return; }
  function ready(fn) {
    if (document.readyState !== "loading") { fn(); } else { document.addEventListener("DOMContentLoaded", fn); }
  }
  window.$ = function (arg) {
    if (typeof arg === "function") { ready(arg); return undefined; }
    if (arg === document) { return {ready: ready}; }
    var t = document.createElement("template");
    t.innerHTML = String(arg).trim();
    return Array.prototype.slice.call(t.content.childNodes);
  };
})();
"""

_CSS = """
.lc-box {background: rgba(255,255,255,0.93); padding: 6px 9px; border-radius: 5px;
  box-shadow: 0 1px 5px rgba(0,0,0,0.35); color: #222; max-width: 340px;
  font: 12px/1.4 "Helvetica Neue", Arial, "PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", sans-serif;}
.lc-box h4 {margin: 0 0 3px 0; font-size: 14px;}
.lc-box .lc-sec {margin-top: 5px; font-weight: bold;}
.lc-box .lc-small {color: #555; font-size: 11px;}
.lc-sw {display: inline-block; width: 14px; height: 10px; margin-right: 5px; vertical-align: middle;
  border: 1px solid rgba(0,0,0,0.25);}
.lc-dot {display: inline-block; width: 10px; height: 10px; border-radius: 50%; margin: 0 7px 0 2px;
  vertical-align: middle;}
.lc-fac {width: 18px; height: 18px; border-radius: 50%; border: 1.5px solid #fff; color: #fff;
  box-shadow: 0 0 3px rgba(0,0,0,0.6); text-align: center; font: bold 11px/18px Arial, sans-serif;}
.lc-fac-legend {display: inline-block; width: 16px; height: 16px; border-radius: 50%; color: #fff;
  text-align: center; font: bold 10px/16px Arial, sans-serif; margin-right: 5px; vertical-align: middle;}
.lc-fac-icon {background: none; border: none;}
.leaflet-control-layers-expanded {font-size: 12px; line-height: 1.3; padding: 4px 8px 4px 4px;}
.leaflet-control-layers label {font-size: 12px;}
.leaflet-control-layers-selector {margin-top: 1px; vertical-align: middle;}
"""


@functools.lru_cache(maxsize=1)
def _leaflet_assets() -> tuple[str, str, str]:
    """Leaflet's JS, its CSS with the images as data: URIs, and its version (from xstatic-leaflet)."""
    try:
        from xstatic.pkg import leaflet as xl
    except ImportError:
        raise LifecircleError("offline maps need Leaflet's files from the xstatic-leaflet package: "
                              "pip install xstatic-leaflet") from None
    base = Path(xl.BASE_DIR)
    js = (base / "leaflet.js").read_text(encoding="utf-8")
    js = re.sub(r"//# sourceMappingURL=\S+\s*$", "", js)
    css = (base / "leaflet.css").read_text(encoding="utf-8")

    def data_uri(name: str) -> str:
        return "data:image/png;base64," + base64.b64encode((base / "images" / name).read_bytes()).decode("ascii")

    css = re.sub(r"url\((['\"]?)images/([\w.-]+\.png)\1\)", lambda mo: f"url({data_uri(mo.group(2))})", css)
    icons = ("L.Icon.Default.imagePath = '';\nL.Icon.Default.mergeOptions("
             + json.dumps({"iconUrl": data_uri("marker-icon.png"), "iconRetinaUrl": data_uri("marker-icon-2x.png"),
                           "shadowUrl": data_uri("marker-shadow.png")}) + ");\n")
    return js + "\n" + icons, css, str(xl.VERSION)


class _Raw(Element):
    """Text put into the page as is (never parsed as a Jinja template: Leaflet's code has braces)."""

    _template = Template("{{ this.text }}")

    def __init__(self, text: str):
        super().__init__()
        self.text = text


def _js_string(text: str) -> str:
    """A JavaScript string literal that keeps Chinese readable and cannot close its <script>."""
    return json.dumps(text, ensure_ascii=False).replace("</", "<\\/")


class _Box(MacroElement):
    """A Leaflet control showing fixed HTML (title box, legend)."""

    _template = Template("""
{% macro script(this, kwargs) %}
var {{ this.get_name() }} = L.control({position: {{ this.position|tojson }}});
{{ this.get_name() }}.onAdd = function () {
    var div = L.DomUtil.create("div", "lc-box {{ this.css_class }}");
    div.innerHTML = {{ this.js_html() }};
    L.DomEvent.disableClickPropagation(div);
    L.DomEvent.disableScrollPropagation(div);
    return div;
};
{{ this.get_name() }}.addTo({{ this._parent.get_name() }});
{% endmacro %}
""")

    def __init__(self, html: str = "", *, position: str = "bottomright", css_class: str = "lc-info"):
        super().__init__()
        self._name = "LifecircleBox"
        self.html = html
        self.position = position
        self.css_class = css_class

    def js_html(self) -> str:
        return _js_string(self.html)


class _Legend(_Box):
    """The legend: one section per kind of layer, filled in by the map functions."""

    def __init__(self) -> None:
        super().__init__(position="bottomright", css_class="lc-legend")
        self._name = "LifecircleLegend"
        self.sections: dict[str, str] = {}

    def js_html(self) -> str:
        return _js_string("<h4>图例 Legend</h4>" + "".join(self.sections.values()))


@dataclass
class _MapState:
    datum: str = "wgs84"
    basemap: str = "custom"
    legend: _Legend | None = None
    info: _Box | None = None
    layer_control: Any = None
    #: what layers of one map share (the residents' hexagons of each category's layer), by the object it is of
    shared: dict = field(default_factory=dict)


def _state(m: folium.Map) -> _MapState:
    """Our bookkeeping on a map; a plain folium.Map given by the user is made offline-ready first."""
    st = getattr(m, "_lifecircle_state", None)
    if st is None:
        st = _MapState()
        m._lifecircle_state = st
        _make_offline(m)
    return st


def _make_offline(m: folium.Map) -> None:
    m.default_js = [a for a in m.default_js if a[0] not in _DROPPED_ASSETS]
    m.default_css = [a for a in m.default_css if a[0] not in _DROPPED_ASSETS]
    js, css, version = _leaflet_assets()
    header = m.get_root().header
    header.add_child(_Raw('<meta charset="utf-8">'), name="lc_meta_charset", index=0)
    header.add_child(_Raw(f"<!-- Leaflet {version} (BSD-2-Clause, (c) Vladimir Agafonkin, CloudMade), "
                          "inlined by lifecircle so that the map opens offline -->\n"
                          f"<style>\n{css}\n{_CSS}</style>\n<script>\n{js}\n{_JQUERY_SHIM}</script>"),
                     name="lc_leaflet")


def _legend(m: folium.Map) -> _Legend:
    st = _state(m)
    if st.legend is None:
        st.legend = _Legend()
        m.add_child(st.legend)
    return st.legend


def _finish(m: folium.Map) -> folium.Map:
    """Keep one layer control, rendered after every layer it lists (it names their variables)."""
    st = _state(m)
    if st.layer_control is None:
        st.layer_control = folium.LayerControl(collapsed=False, position="topright")
        m.add_child(st.layer_control)
    for child in (st.legend, st.info, st.layer_control):
        if child is not None:
            m._children.move_to_end(child.get_name())
    return m

# --------------------------------------------------------------------------------------------
# output

_EXTERNAL = re.compile(r"<(?:script|link)\b[^>]*\b(?:src|href)\s*=\s*[\"']?((?:https?:)?//[^\"'\s>]+)", re.I)


def render_html(m: folium.Map) -> str:
    """The map as one HTML page with Leaflet inlined (no request but background tiles)."""
    _finish(m)
    html = m.get_root().render()
    external = _EXTERNAL.findall(html)
    if external:
        log.warning("the map loads %d file(s) from the internet and will not work offline: %s "
                    "(added by a folium plugin or folium.Icon; use CircleMarker or DivIcon instead)",
                    len(external), ", ".join(external[:3]))
    return html


def save_map(m: folium.Map, path: str | os.PathLike[str]) -> Path:
    """Write the map as a self-contained UTF-8 HTML file (temp name, then renamed).

    Examples
    --------
    >>> import tempfile, os
    >>> from lifecircle.present.maps import base_map
    >>> p = save_map(base_map(basemap="none"), os.path.join(tempfile.mkdtemp(), "map.html"))
    >>> p.stat().st_size > 100_000  # Leaflet is inside
    True
    """
    html = render_html(m)
    final = Path(path)
    with atomic_path(final) as tmp:
        tmp.write_text(html, encoding="utf-8")
    log.info("wrote %s (%.1f MB)", final, final.stat().st_size / 1e6)
    return final
