"""A real headless Chromium opens the Shanghai sample map with networking off: no JS error, layers, pixels."""

from __future__ import annotations

import io
import json
import shutil
from urllib.parse import urlparse

import folium
import geopandas as gpd
import numpy as np
import pytest

from lifecircle import AnalysisConfig, analyze
from lifecircle.present.maps import coverage_map, overlay_names, save_map
from lifecircle.read.units import units_from_file

BBOX = (121.4611262, 31.2196145, 121.4863121, 31.2411914)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
TILE_HOST = "tile.openstreetmap.org"
N_RESIDENTS = 2000

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="needs Debian's chromium and chromium-driver: apt-get install -y chromium chromium-driver",
)


@pytest.fixture(scope="module")
def sample(tmp_path_factory, shanghai_pbf, shanghai_facilities, shared):
    """The real street sample, the real OSM facilities of its bbox (a GeoJSON clip in a temp folder),
    made-up residents, the two DataV districts it touches and buffered stand-in service areas."""
    d = tmp_path_factory.mktemp("browser")
    shanghai_facilities.to_file(d / "facilities.geojson", driver="GeoJSON")
    rng = np.random.default_rng(1)
    residents = gpd.GeoDataFrame(
        {"population": rng.integers(1, 200, N_RESIDENTS).astype(float)}, crs=4326,
        geometry=gpd.points_from_xy(rng.uniform(BBOX[0], BBOX[2], N_RESIDENTS),
                                    rng.uniform(BBOX[1], BBOX[3], N_RESIDENTS)))
    units = units_from_file(shared / "shanghai_districts_datav_v3_gcj02.geojson", crs="gcj02")
    a = analyze(shanghai_pbf, facilities=d / "facilities.geojson", population=residents, units=units,
                config=AnalysisConfig(categories=("health", "sports"), standard="all"))
    units = units[units.unit.isin(set(a.residents.unit.dropna()))].reset_index(drop=True)
    utm = a.facilities.to_crs(32651)
    rows = [(cat, float(mm), g.buffer(mm * 66.7).union_all()) for cat, g in utm.groupby("category")
            for mm in (5, 10, 15)]
    iso = gpd.GeoDataFrame(rows, columns=["category", "minutes", "geometry"], crs=32651).to_crs(4326)
    m = coverage_map(a, isochrones=iso, units=units, title="上海静安/黄浦 示例 Shanghai sample")
    # maps compose with plain folium: a default-icon Marker whose Popup goes through folium's jQuery call
    folium.Marker([31.23193, 121.47154], popup=folium.Popup("人民广场 People's Square")).add_to(m)
    path = save_map(m, d / "map.html")
    return a, units, m, path


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,800", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                # networking off: every http(s) request goes to a closed local port and fails
                "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    yield driver
    driver.quit()


COUNT_LAYERS = """
var map = window[arguments[0]];
if (!(map instanceof L.Map)) { return null; }
var n = {total: 0, circle: 0, marker: 0, polygon: 0, tile: 0, group: 0, renderer: 0};
map.eachLayer(function (l) {
    n.total++;
    if (l instanceof L.CircleMarker) { n.circle++; }
    else if (l instanceof L.Marker) { n.marker++; }
    else if (l instanceof L.Polygon) { n.polygon++; }
    else if (l instanceof L.TileLayer) { n.tile++; }
    else if (l instanceof L.FeatureGroup) { n.group++; }
    else if (l instanceof L.Renderer) { n.renderer++; }
});
return n;
"""


def test_map_in_offline_chromium(sample, browser):
    from PIL import Image

    a, units, m, path = sample
    browser.get(path.resolve().as_uri())
    browser.execute_script("return new Promise(function (done) { setTimeout(done, 300); });")

    # 1. no JavaScript error; the only failures are the background tiles (networking is off)
    logs = browser.get_log("browser")
    severe = [e["message"] for e in logs if e["level"] == "SEVERE" and TILE_HOST not in e["message"]]
    assert severe == []
    requested = set()
    for e in browser.get_log("performance"):
        msg = json.loads(e["message"])["message"]
        if msg["method"] == "Network.requestWillBeSent":
            requested.add(msg["params"]["request"]["url"])
    hosts = {urlparse(u).scheme + "://" + urlparse(u).netloc for u in requested}
    assert hosts <= {"file://", "data://", f"https://{TILE_HOST}"}, hosts
    assert f"https://{TILE_HOST}" in hosts  # it did try the tiles, and drew the overlays without them

    # 2. the Leaflet map and its layers, counted by type
    n = browser.execute_script(COUNT_LAYERS, m.get_name())
    assert n is not None, "the folium map variable is not a Leaflet map"
    facilities = len(a.facilities)
    assert n["circle"] == N_RESIDENTS  # only the "all" residents layer is on at first
    assert n["marker"] == facilities + 1  # and the plain folium Marker
    assert n["polygon"] == len(units)  # service areas start switched off
    assert n["tile"] == 1
    # groups switched on: units, residents "all", one facilities layer per category (health, sports)
    assert n["group"] == 1 + 1 + a.facilities["category"].nunique()
    assert n["total"] == sum(n[k] for k in ("circle", "marker", "polygon", "tile", "group", "renderer"))

    # 3. the layer control lists every overlay, Chinese intact; switching one on adds its points
    labels = browser.execute_script(
        "return Array.from(document.querySelectorAll('.leaflet-control-layers-overlays label'))"
        ".map(function (l) { return l.textContent.trim(); });")
    assert labels == overlay_names(m)
    browser.execute_script(
        "var want = arguments[0];"
        "Array.from(document.querySelectorAll('.leaflet-control-layers-overlays label')).filter("
        "function (l) { return l.textContent.trim() === want; })[0].querySelector('input').click();",
        "居民 Walking minutes · 卫生 health")
    assert browser.execute_script(COUNT_LAYERS, m.get_name())["circle"] == 2 * N_RESIDENTS

    # 4. a facility popup shows its Chinese name and source
    name = "瑞金医院卢湾分院"
    text = browser.execute_script("""
        var map = window[arguments[0]], want = arguments[1], hit = null;
        map.eachLayer(function (l) {
            if (l instanceof L.Marker && l.feature && l.feature.properties.name === want) { hit = l; }
        });
        if (!hit) { return "no such marker"; }
        hit.getElement().dispatchEvent(new MouseEvent("click", {bubbles: true, cancelable: true}));
        var popup = document.querySelector(".leaflet-popup-content");
        return popup ? popup.textContent : "no popup";""", m.get_name(), name)
    assert name in text and "OSM" in text, text
    text = browser.execute_script("""
        var hit = null;
        window[arguments[0]].eachLayer(function (l) { if (l instanceof L.Marker && !l.feature) { hit = l; } });
        hit.getElement().dispatchEvent(new MouseEvent("click", {bubbles: true, cancelable: true}));
        return Array.from(document.querySelectorAll(".leaflet-popup-content"))
            .map(function (p) { return p.textContent; }).join(" | ");""", m.get_name())
    assert "人民广场 People's Square" in text  # folium's $(...) popup code ran on our shim
    legend = browser.execute_script("return document.querySelector('.lc-legend').textContent;")
    assert "图例 Legend" in legend and "卫生 health" in legend
    title = browser.execute_script("return document.querySelector('.lc-title').textContent;")
    assert "上海静安/黄浦 示例" in title and "OpenStreetMap contributors" in title
    assert browser.execute_script("return document.characterSet;") == "UTF-8"

    # 5. the screenshot is not blank: many colours, and resident dots in their class colours
    png = np.asarray(Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB")).astype(int)
    assert png.std() > 20
    assert len(np.unique(png.reshape(-1, 3), axis=0)) > 200
    for colour in ("#d73027", "#fc8d59"):  # "> 30 min" and "15–30 min" residents of this sample
        rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
        assert (np.abs(png - rgb).sum(axis=-1) < 40).sum() > 200, colour
    # and no error while switching layers or opening the popup
    assert [e["message"] for e in browser.get_log("browser")
            if e["level"] == "SEVERE" and TILE_HOST not in e["message"]] == []


def test_gap_areas_in_offline_chromium(tmp_path, browser):
    """The compact gap layer draws one Leaflet polygon per gap, its hole and its parts kept, with its tooltip."""
    import shapely

    from lifecircle.present.maps import gaps_map

    ring = shapely.box(121.470, 31.230, 121.480, 31.240).difference(shapely.box(121.474, 31.234, 121.476, 31.236))
    two = shapely.MultiPolygon([shapely.box(121.49, 31.23, 121.495, 31.235), shapely.box(121.50, 31.23, 121.505, 31.235)])
    gaps = gpd.GeoDataFrame({"gap": [1, 2, 1], "category": ["health", "health", "sports"],
                             "population": [400.0, 100.0, 50.0], "median_minutes": [21.5, 30.0, 18.0],
                             "unit": ["黄浦区", "静安区", "静安区"]},
                            geometry=[ring, two, shapely.box(121.47, 31.25, 121.48, 31.26)], crs=4326)
    m = gaps_map(gaps, basemap="none")
    path = save_map(m, tmp_path / "gaps.html")
    browser.get(path.resolve().as_uri())
    got = browser.execute_script("""
        var out = [];
        window[arguments[0]].eachLayer(function (l) {
            if (l instanceof L.Polygon) {
                var ll = l.getLatLngs();  // a polygon with holes: [outer, hole]; several parts: [[outer], [outer]]
                out.push({depth: Array.isArray(ll[0][0]) ? 3 : 2, parts: ll.length, rings: ll[0].length,
                          tip: l.getTooltip().getContent(), fill: l.options.fillOpacity});
            }
        });
        return out;""", m.get_name())
    severe = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []
    assert len(got) == 2  # the health layer is on, the sports one off
    assert got[0]["depth"] == 3 and got[0]["parts"] == 1 and got[0]["rings"] == 2  # outer ring and its hole
    assert got[1]["depth"] == 3 and got[1]["parts"] == 2
    assert "400 people" in got[0]["tip"] and "黄浦区" in got[0]["tip"] and got[0]["fill"] == pytest.approx(0.7)
