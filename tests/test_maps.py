"""Maps and figures: layers, legend, credit, Chinese text, no CDN, GCJ-02 shift, hexagons, PNGs."""

from __future__ import annotations

import json
import re

import geopandas as gpd
import matplotlib.colors
import numpy as np
import pandas as pd
import pytest
import shapely

from lifecircle import AnalysisConfig, analyze
from lifecircle.measure.coverage import coverage_table
from lifecircle.datasets import toy_town_osm
from lifecircle.errors import InputDataError, InputFileError
from lifecircle.present.maps import (
    base_map,
    coverage_map,
    facilities_map,
    hex_cells,
    minutes_classes,
    overlay_names,
    render_html,
    residents_map,
    save_map,
    service_areas_map,
    units_map,
)
from lifecircle.present.maps import _weighted_median
from lifecircle.present.outputs import maps_from_folder
from lifecircle.read.osm import OSM_CREDIT

from conftest import lonlat

# eviltransform's published test vector (Shanghai): WGS84 -> GCJ-02
WGS = (121.5272106, 31.1774276)
GCJ = (121.531541859215, 31.17530398364597)


def geojson_layers(html: str) -> list[dict]:
    """Every GeoJSON FeatureCollection folium embedded (``<name>_add({...});``)."""
    return [json.loads(s) for s in re.findall(r"_add\((\{\"features\".*?\})\);\n", html, re.S)]


def compact_layers(html: str) -> list[dict]:
    """The data of every resident layer (``var compact_layer_<id>_data = {...};``, set before its script)."""
    return [json.loads(s.replace("<\\/", "</")) for s in re.findall(r"var compact_layer_\w+_data = (\{.*?\});\n", html)]


def toy_units():
    (x0, x4, x8), _ = lonlat([-50, 400, 850], [0, 0, 0])
    _, (y0, y4) = lonlat([0, 0], [-50, 450])
    return gpd.GeoDataFrame({"unit": ["西区", "东区"]}, crs=4326,
                            geometry=[shapely.box(x0, y0, x4, y4), shapely.box(x4, y0, x8, y4)])


def buffered_isochrones(facilities, minutes=(5, 10, 15), metres_per_minute=66.7):
    """Stand-in for lifecircle.present.isochrones: facility buffers in UTM, one row per (category, minutes)."""
    utm = facilities.to_crs(32651)
    rows = []
    for cat, g in utm.groupby("category"):
        for mm in minutes:
            geom = g.buffer(mm * metres_per_minute).union_all()
            rows.append((cat, float(mm), geom.area / 1e6, geom))
    return gpd.GeoDataFrame(rows, columns=["category", "minutes", "area_km2", "geometry"], crs=32651).to_crs(4326)


@pytest.fixture(scope="module")
def toy():
    return analyze(toy_town_osm(), units=toy_units())


@pytest.fixture(scope="module")
def toy_html(toy):
    far = gpd.GeoDataFrame({"unit": ["远区"]}, geometry=[shapely.box(121.6, 31.3, 121.7, 31.4)], crs=4326)
    units = pd.concat([toy_units(), far], ignore_index=True)  # a unit without residents is not drawn
    m = coverage_map(toy, isochrones=buffered_isochrones(toy.facilities), units=units, title="玩具镇 Toy town")
    return m, render_html(m)


def test_layers_legend_title_credit(toy, toy_html):
    m, html = toy_html
    assert overlay_names(m) == [
        "街道 streets",
        "单元 Units · 全部 all within 15 min (target 85 %)",
        "服务范围 Service areas · 卫生 health (5/10/15 min)",
        "服务范围 Service areas · 养老 elderly care (5/10/15 min)",
        "服务范围 Service areas · 文化 culture (5/10/15 min)",
        "服务范围 Service areas · 体育 sports (5/10/15 min)",
        "居民 Walking minutes · 卫生 health",
        "居民 Walking minutes · 养老 elderly care",
        "居民 Walking minutes · 文化 culture",
        "居民 Walking minutes · 体育 sports",
        "居民 Walking minutes · 全部 all",
        "设施 Facilities · 卫生 health (1)",
        "设施 Facilities · 养老 elderly care (1)",
        "设施 Facilities · 文化 culture (1)",
        "设施 Facilities · 体育 sports (2)",
    ]
    assert html.count("L.control.layers(") == 1
    for text in ("图例 Legend", "≤ 5 min", "15–30 min", "&gt; 30 min or not reachable", "≥ 85 % (meets target)",
                 "玩具镇 Toy town", "walking 4 km/h · thresholds 5/10/15 min · target 85 %", OSM_CREDIT,
                 toy.summary["created"][:10]):
        assert text in html, text
    # headline shares in the title box come from the analysis
    assert f"全部 all: {toy.category_share('all'):.1%} within 15 min" in html


def test_no_request_but_tiles(toy_html):
    _, html = toy_html
    assert not re.search(r"<script[^>]+src=[\"']?(https?:)?//", html)
    assert not re.search(r"<link[^>]+href=[\"']?(https?:)?//", html)
    for host in ("cdn.jsdelivr.net", "cdnjs.cloudflare.com", "code.jquery.com", "bootstrapcdn.com", "unpkg.com"):
        assert host not in html, host
    assert "Leaflet 1.9.3" in html and "L.control.layers" in html
    assert "url(images/" not in html  # the layer-control icon is a data: URI
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", html))
    # what remains are the tile template and plain links (attribution, Leaflet's home page)
    assert {u for u in urls if "{z}" in u} == {"https://tile.openstreetmap.org/{z}/{x}/{y}.png"}


def test_chinese_round_trip(toy, toy_html, tmp_path):
    m, _ = toy_html
    path = save_map(m, tmp_path / "地图.html")
    raw = path.read_bytes()
    html = raw.decode("utf-8")  # valid UTF-8
    assert b'<meta charset="utf-8">' in raw[:1024]
    assert "15分钟社区生活圈" not in html  # a custom title replaced the default
    assert "玩具镇 Toy town" in html
    names = set()
    for layer in geojson_layers(html):
        names |= {f["properties"].get("name") for f in layer["features"]}
    assert {"城西社区卫生服务中心", "城东养老院", "社区图书馆", "篮球场", "(未命名 unnamed)"} <= names
    units = [f["properties"]["unit"] for layer in geojson_layers(html) for f in layer["features"]
             if "unit" in f["properties"]]
    assert units == ["西区", "东区"]
    assert not list(tmp_path.glob(".*tmp*"))


def test_facility_popups_name_and_source():
    fac = gpd.GeoDataFrame({"category": ["health", "health", "sports"],
                            "name": ["<b>静安寺</b>诊所", None, "体育场"], "source": ["osm", "list", "list"]},
                           geometry=gpd.points_from_xy([121.45, 121.46, 121.47], [31.22, 31.23, 31.24]), crs=4326)
    m = facilities_map(fac, basemap="none")
    assert overlay_names(m) == ["设施 Facilities · 卫生 health (2)", "设施 Facilities · 体育 sports (1)"]
    html = render_html(m)
    props = [f["properties"] for layer in geojson_layers(html) for f in layer["features"]]
    assert [(p["name"], p["source"]) for p in props] == [
        ("&lt;b&gt;静安寺&lt;/b&gt;诊所", "OSM"), ("(未命名 unnamed)", "list 名单"), ("体育场", "list 名单")]
    assert html.count('class=\\"lc-fac\\"') + html.count('class="lc-fac"') >= 2  # DivIcons, no awesome-markers
    assert "AwesomeMarkers" not in html
    dots = render_html(facilities_map(fac, basemap="none", icons=False))  # the default above MAX_ICONS
    assert "new L.CircleMarker(latlng" in dots and "iconRootAlias.DivIcon" not in dots


def test_amap_shifts_overlays_to_gcj02():
    fac = gpd.GeoDataFrame({"category": ["health"], "name": ["参考点"], "source": ["osm"]},
                           geometry=gpd.points_from_xy([WGS[0]], [WGS[1]]), crs=4326)
    res = gpd.GeoDataFrame({"population": [5.0], "minutes_to_health": [3.0]},
                           geometry=gpd.points_from_xy([WGS[0]], [WGS[1]]), crs=4326)
    for basemap, want in (("amap", GCJ), ("gaode", GCJ), ("osm", WGS), ("none", WGS)):
        m = residents_map(res, category="health", m=facilities_map(fac, basemap=basemap))
        html = render_html(m)
        (layer,) = geojson_layers(html)
        got = layer["features"][0]["geometry"]["coordinates"]
        assert got == pytest.approx(want, abs=6e-7), basemap  # rounded to 1e-6 degrees
        (d,) = compact_layers(html)
        assert (d["x0"] + d["x"][0] / 1e6, d["y0"] + d["y"][0] / 1e6) == pytest.approx(want, abs=1.1e-6)
        assert ("autonavi.com" in html) == (basemap in ("amap", "gaode"))
    # the offset is ~ +0.0043 deg lon, -0.0021 deg lat here: far more than the rounding
    assert GCJ[0] - WGS[0] == pytest.approx(0.00433, abs=1e-4)


def test_maps_compose_on_a_plain_folium_map():
    import folium

    fac = gpd.GeoDataFrame({"category": ["culture"], "name": ["图书馆"], "source": ["list"]},
                           geometry=gpd.points_from_xy([121.47], [31.23]), crs=4326)
    res = gpd.GeoDataFrame({"population": [5.0, 6.0], "minutes_to_culture": [3.0, 12.0]},
                           geometry=gpd.points_from_xy([121.47, 121.48], [31.23, 31.24]), crs=4326)
    plain = folium.Map(location=[31.23, 121.47], zoom_start=14)  # folium's defaults: CDN links, OSM tiles
    m = facilities_map(fac, m=residents_map(res, category="culture", m=plain))
    assert m is plain
    assert overlay_names(m) == ["居民 Walking minutes · 文化 culture", "设施 Facilities · 文化 culture (1)"]
    html = render_html(m)
    assert not re.search(r"<(script|link)[^>]+(src|href)=[\"']?(https?:)?//", html)
    assert html.count("L.control.layers(") == 1
    # the layer control names the layers' variables, so it must come after all of them
    control = html.index("L.control.layers(")
    assert all(html.index(f"var {c.get_name()} =") < control for c in m._children.values()
               if getattr(c, "layer_name", None) in overlay_names(m))
    assert "步行时间 Walk to the nearest facility" in html and "设施 Facilities" in html  # both legend parts


def test_basemap_errors(monkeypatch):
    monkeypatch.delenv("TIANDITU_KEY", raising=False)
    with pytest.raises(InputDataError, match="tianditu_key"):
        base_map(basemap="tianditu")
    with pytest.raises(InputDataError, match="choose one of osm, amap"):
        base_map(basemap="google")
    html = render_html(base_map(basemap="tianditu", tianditu_key="abc123"))
    assert "tianditu.gov.cn/vec_w" in html and "tianditu.gov.cn/cva_w" in html and '"tk": "abc123"' in html


def test_minutes_classes_by_hand():
    res = gpd.GeoDataFrame({"population": [1, 2, 3, 4, 5, 6, 7],
                            "minutes_to_culture": [4, 5, 7, 12, 20, np.inf, np.nan]},
                           geometry=gpd.points_from_xy(np.linspace(121.40, 121.41, 7), [31.2] * 7), crs=4326)
    (d,) = compact_layers(render_html(residents_map(res, category="culture", basemap="none")))
    # a walk of exactly 5 min is within 5 min (as within_5min_*), inf/NaN = not reachable
    assert d["k"] == [0, 0, 1, 2, 3, 4, 4]
    assert d["colours"] == [c for _, _, c in minutes_classes((5, 10, 15))]
    assert d["fields"][0][2] == [40, 50, 70, 120, 200, -1, -1]  # tenths of minutes
    assert d["fields"][1][2] == [1, 2, 3, 4, 5, 6, 7]
    with pytest.raises(InputDataError, match="minutes_to_health"):
        residents_map(res, category="health", basemap="none")


def test_hex_cells_match_nearest_centre():
    """The hexagon holding a point is the one with the nearest centre (brute force over a grid)."""
    rng = np.random.default_rng(3)
    x, y = rng.uniform(-900, 900, 2000), rng.uniform(-900, 900, 2000)
    size = 120.0
    q, r = hex_cells(x, y, size)
    qq, rr = np.meshgrid(np.arange(-12, 13), np.arange(-12, 13))
    qq, rr = qq.ravel(), rr.ravel()
    cx, cy = size * np.sqrt(3) * (qq + rr / 2), size * 1.5 * rr
    nearest = np.argmin((x[:, None] - cx) ** 2 + (y[:, None] - cy) ** 2, axis=1)
    assert np.array_equal(q, qq[nearest]) and np.array_equal(r, rr[nearest])


def test_weighted_median_brute_force():
    rng = np.random.default_rng(5)
    groups = rng.integers(0, 30, 400)
    values = np.where(rng.random(400) < 0.1, np.inf, rng.uniform(0, 40, 400))
    weights = rng.integers(1, 9, 400).astype(float)
    got = _weighted_median(groups, values, weights, 30)
    for g in range(30):
        expanded = np.sort(np.repeat(values[groups == g], weights[groups == g].astype(int)))
        # lower weighted median: first value whose cumulative weight reaches half the total
        assert got[g] == expanded[int(np.ceil(len(expanded) / 2)) - 1]


def test_hexagons_above_max_points():
    rng = np.random.default_rng(11)
    n = 600
    lon, lat = lonlat(rng.uniform(0, 800, n), rng.uniform(0, 400, n))
    mins = rng.uniform(0, 25, n)
    pop = rng.integers(1, 50, n).astype(float)
    res = gpd.GeoDataFrame({"population": pop, "minutes_to_health": mins},
                           geometry=gpd.points_from_xy(lon, lat), crs=4326)
    m = residents_map(res, category="health", basemap="none", max_points=500, hex_size_m=100)
    assert overlay_names(m) == ["居民 Walking minutes · 卫生 health (hexagons 100 m)"]
    (d,) = compact_layers(render_html(m))
    utm = res.to_crs(32651)
    q, r = hex_cells(utm.geometry.x.to_numpy(), utm.geometry.y.to_numpy(), 100.0)
    cells = pd.DataFrame({"q": q, "r": r, "pop": pop, "ok": pop * (mins <= 15)}).groupby(["q", "r"]).sum()
    assert len(d["rings"]) == len(d["k"]) == len(cells)
    assert sorted(d["fields"][0][2]) == sorted(np.rint(cells["pop"]).astype(int).tolist())
    assert sum(d["fields"][0][2]) == pytest.approx(pop.sum(), abs=len(cells))
    # each resident lies inside the hexagon drawn for its cell
    polys = [shapely.Polygon([(d["x0"] + ring[i] / 1e6, d["y0"] + ring[i + 1] / 1e6) for i in range(0, 12, 2)])
             for ring in d["rings"]]
    tree = shapely.STRtree(polys)
    hits = tree.query(res.geometry.to_numpy(), predicate="intersects")
    assert set(hits[0]) == set(range(n))


def test_units_below_target_stand_out():
    units = toy_units()
    cov = pd.DataFrame({"unit": ["西区", "东区", "西区"], "category": ["all", "all", "health"],
                        "minutes": [15.0, 15.0, 15.0], "population": [100.0, 200.0, 100.0],
                        "share": [0.9, 0.5, 0.2], "population_to_cover": [0.0, 70.0, 65.0]})
    m = units_map(units, cov, basemap="none")
    (layer,) = [c for c in m._children.values() if getattr(c, "layer_name", "").startswith("单元")]
    styles = [layer.style_function(f) for f in layer.data["features"]]
    assert [s["fillColor"] for s in styles] == ["#1a9850", "#d73027"]  # 90 % meets 85 %, 50 % is far below
    assert [s["weight"] for s in styles] == [1, 3]
    assert [f["properties"]["share"] for f in layer.data["features"]] == ["90.0%", "50.0%"]
    assert [f["properties"]["to cover"] for f in layer.data["features"]] == ["0", "70"]
    with pytest.raises(InputDataError, match="no rows for these units"):
        units_map(units, cov.assign(unit="x"), basemap="none")


def test_service_areas_by_category(toy):
    iso = buffered_isochrones(toy.facilities)
    m = service_areas_map(iso, basemap="none")
    assert len(overlay_names(m)) == 4
    layers = geojson_layers(render_html(m))
    assert sum(len(layer["features"]) for layer in layers) == 12
    # largest first, so that the smaller areas are drawn on top
    assert [f["properties"]["area"] for f in layers[0]["features"]] == [
        "卫生 health ≤ 15 min", "卫生 health ≤ 10 min", "卫生 health ≤ 5 min"]
    with pytest.raises(InputDataError, match="category, minutes"):
        service_areas_map(iso.drop(columns="minutes"), basemap="none")


def test_maps_from_folder(toy, tmp_path):
    toy.write(tmp_path)  # isochrones.gpkg from write_isochrones: one layer per (category, minutes)
    paths = maps_from_folder(tmp_path, basemap="amap")
    assert set(paths) == {"map.html", "coverage_map.png", "coverage_curve.png", "lorenz.png"}  # lorenz: with units
    html = paths["map.html"].read_text(encoding="utf-8")
    assert "autonavi" in html and "城西社区卫生服务中心" in json.dumps(geojson_layers(html), ensure_ascii=False)
    areas = [layer for layer in geojson_layers(html) if "area" in layer["features"][0]["properties"]]
    assert [len(layer["features"]) for layer in areas] == [3, 3, 3, 3]
    for name in ("coverage_map.png", "coverage_curve.png", "lorenz.png"):
        assert paths[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*tmp*"))
    (tmp_path / "coverage.csv").unlink()
    with pytest.raises(InputFileError, match="coverage.csv is missing .* run `lifecircle analyze"):
        maps_from_folder(tmp_path)


def test_analysis_folder_round_trip_keeps_minutes(tmp_path):
    """Not reachable (inf) is written as NULL and read back as inf: the map shows the same classes."""
    a = analyze(toy_town_osm(), config=AnalysisConfig(max_minutes=15))
    assert np.isinf(a.residents["minutes_to_health"]).any()
    a.write(tmp_path)
    from lifecircle.present.outputs import read_analysis_folder

    b = read_analysis_folder(tmp_path)
    for cat in ("health", "all"):
        k1 = compact_layers(render_html(residents_map(a.residents, category=cat, basemap="none")))[0]["k"]
        k2 = compact_layers(render_html(residents_map(b.residents, category=cat, basemap="none")))[0]["k"]
        assert k1 == k2
    assert b.config == a.config


# ------------------------------------------------------------------------------------------------
# figures


def test_coverage_by_minute_agrees_with_coverage_table(toy):
    from lifecircle.present.figures import coverage_by_minute

    cats = ["health", "elderly_care", "culture", "sports", "all"]
    t = coverage_by_minute(toy.residents, categories=cats, max_minutes=30)
    assert list(t.index) == list(range(1, 31))
    grid = coverage_table(toy.residents, categories=cats[:-1], minutes=range(1, 31))
    grid = grid.pivot(index="minutes", columns="category", values="share")
    for cat in cats:
        assert t[cat].to_numpy() == pytest.approx(grid[cat].to_numpy())
    assert (np.diff(t.to_numpy(), axis=0) >= 0).all()  # never falls as minutes grow


def test_coverage_curve_figure(toy):
    from lifecircle.present.figures import coverage_curve

    fig = coverage_curve(toy, lang="en")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "walking time to the nearest facility (minutes)"
    assert ax.get_ylabel() == "residents covered (% of population)"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["health", "elderly care", "culture", "sports", "all four"]
    lines = {line.get_label(): line for line in ax.get_lines()}
    x, y = lines["health"].get_data()
    # by hand from the toy town: the 5 residents' minutes to health and their population
    r = toy.residents
    at15 = r.population[r.minutes_to_health <= 15].sum() / r.population.sum() * 100
    assert y[list(x).index(15)] == pytest.approx(at15)
    target = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert len(target) == 1 and target[0].get_ydata()[0] == pytest.approx(85)
    label = [t for t in ax.texts if "target" in t.get_text()]
    assert [t.get_text() for t in label] == ["85 % target (within 15 min)"] and label[0].get_position()[1] > 85
    assert "OpenStreetMap contributors" in fig._supxlabel.get_text()
    zh = coverage_curve(toy).axes[0]
    assert [t.get_text() for t in zh.get_legend().get_texts()] == ["卫生", "养老", "文化", "体育", "全部四类"]
    assert any(t.get_text() == "85 % 目标（15 分钟内）" for t in zh.texts)
    assert zh.get_xlabel() == "步行到最近设施的时间（分钟）"


def test_coverage_figure(toy):
    from matplotlib.collections import LineCollection, PolyCollection

    from lifecircle.present.figures import coverage_figure

    fig = coverage_figure(toy, isochrones=buffered_isochrones(toy.facilities), units=toy_units(), lang="en")
    ax = fig.axes[0]
    assert f"{toy.category_share('all') * 100:.1f} % of residents within 15 min" in ax.get_title()
    assert ax.get_xticks().size == 0 and ax.get_yticks().size == 0  # no UTM metres
    texts = [t.get_text() for t in ax.texts]
    assert any(t in ("100 m", "200 m", "500 m") for t in texts)  # scale bar
    assert "N" in texts  # north arrow
    assert {"西区", "东区"} <= set(texts)  # toy_units() names, at a point inside each unit
    # hexagons: each filled with the class of its population-weighted median walk, checked resident by resident
    hexes = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(hexes) == 1
    classes = minutes_classes(toy.config.minutes, cutoff_minutes=toy.config.cutoff_minutes)
    crs = toy.network.crs
    pts = toy.residents.geometry.to_crs(crs)
    seen = 0
    for path, face in zip(hexes[0].get_paths(), hexes[0].get_facecolors()):
        ring = shapely.Polygon(path.vertices[:6])
        inside = np.flatnonzero(shapely.contains_xy(ring, pts.x.to_numpy(), pts.y.to_numpy()))
        assert len(inside) >= 1
        seen += len(inside)
        mins = toy.residents.minutes_to_all.to_numpy()[inside]
        pop = toy.residents.population.to_numpy()[inside]
        order = np.argsort(mins)
        cum = np.cumsum(pop[order])
        median = mins[order][np.searchsorted(cum, cum[-1] / 2)]
        want = next(c for upper, _, c in classes if median <= upper)
        assert matplotlib.colors.to_hex(face[:3]) == want
    assert seen == len(toy.residents)
    lines = [c for c in ax.collections if isinstance(c, LineCollection)]
    streets = [c for c in lines if matplotlib.colors.to_hex(c.get_colors()[0]) == "#8c8c8c"]
    assert len(streets) == 1 and 0 < len(streets[0].get_segments()) <= toy.network.n_edges
    # the units' outlines: one collection (not a plot call per ring) with the two unit boxes
    (outlines,) = [c for c in lines if matplotlib.colors.to_hex(c.get_colors()[0]) == "#555555"]
    assert len(outlines.get_segments()) == 2
    # legend beside the map and the title inside the canvas: nothing clipped
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig.set_dpi(150)  # as save_figure writes it
    agg = FigureCanvasAgg(fig)
    agg.draw()
    renderer = agg.get_renderer()
    canvas = fig.bbox
    for artist in (fig.legends[0], ax.title, fig._supxlabel):
        box = artist.get_window_extent(renderer)
        assert canvas.x0 <= box.x0 and box.x1 <= canvas.x1 and canvas.y0 <= box.y0 and box.y1 <= canvas.y1
    assert fig.legends[0].get_window_extent(renderer).x0 >= ax.get_window_extent(renderer).x1  # outside the map
    with pytest.raises(InputDataError, match="minutes_to_parks"):
        coverage_figure(toy, category="parks")


def _layer(m, name):
    return next(c for c in m._children.values() if getattr(c, "layer_name", None) == name)


@pytest.mark.parametrize("basemap, shown", [("none", True), ("osm", False)])
def test_streets_layer(toy, basemap, shown):
    from lifecircle.present.maps import streets_map

    m = coverage_map(toy, basemap=basemap)
    assert overlay_names(m)[0] == "街道 streets"  # drawn first: under every other layer
    layer = _layer(m, "街道 streets")
    assert layer.show is shown  # on by default only without tiles
    coords = np.concatenate([shapely.get_coordinates(shapely.geometry.shape(f["geometry"]))
                             for f in layer.data["features"]])
    assert np.abs(coords * 1e5 - np.round(coords * 1e5)).max() < 1e-6  # rounded to 1e-5 degrees
    # every street of the network is on the layer: each edge's midpoint within ~2 m of a polyline
    net = toy.network
    lines = shapely.MultiLineString([shapely.geometry.shape(f["geometry"]) for f in layer.data["features"]])
    mid = shapely.points((net.lon[net.u] + net.lon[net.v]) / 2, (net.lat[net.u] + net.lat[net.v]) / 2)
    assert shapely.distance(lines, mid).max() < 2e-5
    assert len(layer.data["features"]) < net.n_edges  # merged into polylines
    # a path of three nodes (0 - 1 - 2) is one polyline
    from lifecircle.read.network import WalkNetwork

    path = WalkNetwork.from_lonlat([121.47, 121.471, 121.472], [31.23, 31.23, 31.231], [0, 1], [1, 2])
    one = _layer(streets_map(path, basemap="none"), "街道 streets").data["features"]
    assert len(one) == 1 and len(one[0]["geometry"]["coordinates"]) == 3


def test_hexagons_never_larger_than_a_tiny_area():
    from lifecircle.present.maps import hex_size_for

    # a 200 m x 120 m block of 2,000 residents: hexagons (sqrt(3) r wide) must fit 20 across the 120 m side
    rng = np.random.default_rng(3)
    x_m, y_m = rng.uniform(0, 200, 2000), rng.uniform(0, 120, 2000)
    lon, lat = lonlat(x_m, y_m)
    r = gpd.GeoDataFrame({"population": np.ones(2000), "minutes_to_health": rng.uniform(0, 20, 2000)},
                         geometry=gpd.points_from_xy(lon, lat), crs=4326)
    m = residents_map(r, category="health", basemap="none", max_points=100)
    size = float(re.search(r"hexagons ([0-9.]+) m", overlay_names(m)[0]).group(1))
    assert size * np.sqrt(3) * 20 <= 120 + 1e-9 and size == 2.0  # 120 / 20 / 1.732 = 3.46 m -> the round 2 m
    assert hex_size_for(120, 200) == 2.0
    # a large area keeps the ~1,500-cell rule: 20 km x 20 km -> sqrt(4e8 / 1500 / 2.598) = 320 m -> 400 m
    assert hex_size_for(20_000, 20_000) == 400.0


def test_service_areas_over_budget_become_an_image(monkeypatch):
    """A service-area layer over MAX_LAYER_VERTICES is drawn as one embedded PNG: filled inside, clear in its hole."""
    import base64
    import io
    import re

    from PIL import Image

    from lifecircle.present import maps

    ring = shapely.Point(121.47, 31.23).buffer(0.01, quad_segs=256)  # ~1,000 vertices
    hole = shapely.Point(121.47, 31.23).buffer(0.004, quad_segs=256)
    areas = gpd.GeoDataFrame({"category": ["health"], "minutes": [15.0], "area_km2": [1.0]},
                             geometry=[ring.difference(hole)], crs=4326)
    html = maps.render_html(maps.service_areas_map(areas, basemap="none", show=True))
    assert "L.imageOverlay(" not in html and "(image)" not in html  # within budget: vectors
    monkeypatch.setattr(maps, "MAX_LAYER_VERTICES", 100)
    monkeypatch.setattr(maps, "IMAGE_MAX_PX", 200)
    m = maps.service_areas_map(areas, basemap="none", show=True)
    assert maps.overlay_names(m) == ["服务范围 Service areas · 卫生 health (15 min) (image)"]
    html = maps.render_html(m)
    png = _overlay_png(html)
    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))
    assert max(img.shape[:2]) == 200
    h, w = img.shape[:2]
    assert img[h // 2, w // 2, 3] == 0  # the hole
    assert img[h // 2, int(w * 0.15), 3] > 0 and img[h // 2, int(w * 0.15), 0] == 0xd6  # the ring, health red
    assert img[2, 2, 3] == 0  # outside the disc (corner of its bounding box)


def test_display_polygons_ring_wise_simplification():
    """Simplified ring by ring (no topology-preserving pass), valid, area kept, far fewer vertices."""
    from lifecircle.present.maps import _display_polygons

    disc = shapely.Point(121.47, 31.23).buffer(0.01, quad_segs=2048)
    poly = disc.difference(shapely.box(121.468, 31.228, 121.472, 31.232))
    (out,), tol = _display_polygons(np.array([poly]))
    assert tol == 1e-5 and out.is_valid and len(out.geoms[0].interiors) == 1
    assert out.area == pytest.approx(poly.area, rel=1e-3)
    assert shapely.get_num_coordinates(out) < shapely.get_num_coordinates(poly) / 5


def test_city_streets_become_an_image(toy, monkeypatch):
    """A network over the vertex budget is drawn as one PNG of its streets (a city's polylines: ~40 MB)."""
    import base64
    import io
    import re

    import folium
    from PIL import Image

    from lifecircle.present import maps

    monkeypatch.setattr(maps, "MAX_LAYER_VERTICES", 2)
    monkeypatch.setattr(maps, "IMAGE_MAX_PX", 400)
    m = maps.streets_map(toy.network, basemap="none")
    (layer,) = [c for c in m._children.values() if isinstance(c, maps._ImageOverlay)]
    assert layer.layer_name == "街道 streets"
    html = maps.render_html(m)
    png = _overlay_png(html)
    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))
    assert max(img.shape[:2]) == 400
    drawn = img[..., 3] > 0
    assert 0.01 < drawn.mean() < 0.5 and (img[drawn][:, 0] == 0x9e).all()  # thin grey lines, not a fill
    # the image spans the network: its bounds are the nodes' extent, to a pixel (~2 m here)
    (s, w), (n, e) = layer.bounds
    net = toy.network
    assert (w, e) == pytest.approx((net.lon.min(), net.lon.max()), abs=3e-5)
    assert (s, n) == pytest.approx((net.lat.min(), net.lat.max()), abs=3e-5)


def test_thousands_of_sites_numbered_first_then_dots():
    """A city's site plan: the first NUMBERED_SITES_MAX per category are numbered markers, the rest one layer of
    dots with the same tooltips (20,000 markers made the map take 20 s and tens of MB)."""
    import folium

    from lifecircle.present import maps

    n = maps.NUMBERED_SITES_MAX + 250
    rng = np.random.default_rng(1)
    s = gpd.GeoDataFrame({"rank": np.arange(1, n + 1), "category": ["health"] * n,
                          "newly_covered_population": np.linspace(500, 1, n), "cumulative_share": np.linspace(0.5, 0.9, n)},
                         geometry=gpd.points_from_xy(121.4 + rng.uniform(0, 0.1, n), 31.2 + rng.uniform(0, 0.1, n)),
                         crs=4326)
    m = maps.sites_map(s, basemap="none")
    (fg,) = [c for c in m._children.values() if isinstance(c, folium.FeatureGroup)]
    markers = [c for c in fg._children.values() if isinstance(c, folium.Marker)]
    layers = [c for c in fg._children.values() if isinstance(c, folium.GeoJson)]
    assert len(markers) == maps.NUMBERED_SITES_MAX and len(layers) == 1
    feats = layers[0].data["features"]
    assert len(feats) == 250
    assert feats[0]["properties"]["tip"] == f"卫生 health new site #{maps.NUMBERED_SITES_MAX + 1}: +{s.newly_covered_population[maps.NUMBERED_SITES_MAX]:,.0f} people, {s.cumulative_share[maps.NUMBERED_SITES_MAX]:.1%} covered after it"
    assert feats[-1]["geometry"]["coordinates"] == pytest.approx([s.geometry.x.iloc[-1], s.geometry.y.iloc[-1]], abs=1e-5)
    assert maps.overlay_names(m) == [f"新址 Suggested sites · 卫生 health ({n})"]


def test_sites_are_numbered_in_rank_order_whatever_the_row_order(monkeypatch):
    import folium

    from lifecircle.present import maps

    monkeypatch.setattr(maps, "NUMBERED_SITES_MAX", 2)
    s = gpd.GeoDataFrame({"rank": [3, 1, 2], "category": ["health"] * 3},
                         geometry=gpd.points_from_xy([121.41, 121.42, 121.43], [31.2, 31.2, 31.2]), crs=4326)
    (fg,) = [c for c in maps.sites_map(s, basemap="none")._children.values() if isinstance(c, folium.FeatureGroup)]
    marked = sorted(round(c.location[1], 2) for c in fg._children.values() if isinstance(c, folium.Marker))
    assert marked == [121.42, 121.43]  # ranks 1 and 2 numbered, rank 3 a dot


def test_raster_segments_widths_and_bad_ends():
    from lifecircle.present.styles import raster_segments

    img = raster_segments(np.array([0.5, np.nan]), np.array([2.5, 0.0]), np.array([0.5, 1.0]), np.array([2.5, np.inf]),
                          bounds=(0, 0, 5, 5), shape=(5, 5), width_px=3)
    assert img.sum() == 9 and img[2:5, 0:3].all()  # one point, a 3 x 3 brush; the non-finite segment left out


def test_raster_polygons_equals_point_in_polygon():
    """The scanline fill counts, at every pixel centre, the polygons that contain it (shapely's own test)."""
    from lifecircle.present.styles import raster_polygons

    rng = np.random.default_rng(7)
    pts = shapely.points(rng.uniform(0, 100, (60, 2)))
    big = shapely.union_all(shapely.buffer(pts, rng.uniform(3, 12, 60)))  # many parts, holes where discs ring
    mid = shapely.intersection(big, shapely.box(10, 5, 80, 90)).difference(shapely.Point(50, 50).buffer(15))
    small = shapely.union_all(shapely.buffer(pts[:20], 4.0))
    geoms = np.array([big, mid, small], dtype=object)
    assert all(shapely.is_valid(geoms)) and shapely.get_num_interior_rings(shapely.get_parts(big)).sum() > 0
    bounds, shape = (-5.0, -7.0, 110.0, 104.0), (97, 123)  # rows and columns of unequal size
    img = raster_polygons(geoms, bounds=bounds, shape=shape)
    cx = bounds[0] + (np.arange(shape[1]) + 0.5) * (bounds[2] - bounds[0]) / shape[1]
    cy = bounds[3] - (np.arange(shape[0]) + 0.5) * (bounds[3] - bounds[1]) / shape[0]
    xx, yy = np.meshgrid(cx, cy)
    expect = sum(shapely.contains_xy(g, xx, yy).astype(int) for g in geoms)
    assert img.dtype == np.uint8 and img.shape == shape
    assert (img == expect).all() and set(np.unique(expect)) == {0, 1, 2, 3}
    # a clockwise shell counts as well (orientation is fixed first); empty input, an empty image
    cw = shapely.Polygon([(0, 0), (0, 50), (50, 50), (50, 0)])
    assert raster_polygons(np.array([cw]), bounds=(0, 0, 100, 100), shape=(4, 4))[2:, :2].tolist() == [[1, 1], [1, 1]]
    assert raster_polygons(np.array([shapely.Polygon()]), bounds=(0, 0, 1, 1), shape=(2, 2)).sum() == 0


def test_web_mercator_formula_equals_pyproj():
    import pyproj

    from lifecircle.present.maps import _to_mercator

    rng = np.random.default_rng(1)
    lon, lat = rng.uniform(-180, 180, 10_000), rng.uniform(-85, 85, 10_000)
    want = pyproj.Transformer.from_crs(4326, 3857, always_xy=True).transform(lon, lat)
    assert np.allclose(_to_mercator(lon, lat), want, rtol=0, atol=1e-6)


def test_raster_polygons_in_blocks_of_edges_is_the_same(monkeypatch):
    """Edges taken a few at a time (the temporaries' bound at city scale) give the very same image."""
    from lifecircle.present import styles

    rng = np.random.default_rng(3)
    geoms = np.array([shapely.union_all(shapely.buffer(shapely.points(rng.uniform(0, 50, (30, 2))), 4.0)),
                      shapely.box(5, 5, 30, 45).difference(shapely.Point(15, 20).buffer(6))], dtype=object)
    whole = styles.raster_polygons(geoms, bounds=(0, 0, 50, 50), shape=(64, 80))
    monkeypatch.setattr(styles, "_EDGES_PER_BLOCK", 7)
    assert (styles.raster_polygons(geoms, bounds=(0, 0, 50, 50), shape=(64, 80)) == whole).all() and whole.max() == 2


def test_raster_segments_in_blocks_is_the_same(monkeypatch):
    from lifecircle.present import styles

    rng = np.random.default_rng(5)
    x0, y0, x1, y1 = (rng.uniform(-5, 105, 300) for _ in range(4))
    whole = styles.raster_segments(x0, y0, x1, y1, bounds=(0, 0, 100, 100), shape=(90, 110), width_px=2)
    monkeypatch.setattr(styles, "_EDGES_PER_BLOCK", 13)
    assert (styles.raster_segments(x0, y0, x1, y1, bounds=(0, 0, 100, 100), shape=(90, 110), width_px=2) == whole).all()
    assert 0 < whole.mean() < 1


def test_raster_polygons_skips_edges_with_non_finite_vertices():
    from lifecircle.present.styles import raster_polygons

    square = shapely.box(0, 0, 2, 2)
    bad = shapely.Polygon([(5, 5), (np.nan, 6), (7, 7), (5, 5)])
    img = raster_polygons(np.array([square, bad], dtype=object), bounds=(0, 0, 8, 8), shape=(8, 8))
    assert img[6:, :2].sum() == 4 and img.sum() >= 4  # the square is there; no IndexError from the NaN


def _overlay_png(html: str) -> bytes:
    """The PNG of the page's one image overlay: its data URI is a variable set before the layer's script."""
    import base64
    import re

    (name,) = re.findall(r"L\.imageOverlay\((\w+)_data,", html)
    data = re.search(rf'var {name}_data = "data:image/png;base64,([A-Za-z0-9+/=]+)";', html)
    assert data is not None and data.start() < html.index(f"L.imageOverlay({name}_data,")
    return base64.b64decode(data.group(1))


def _decode_areas(d: dict) -> list:
    """The (multi)polygons of a ``kind="areas"`` layer, rebuilt from its flat arrays as the page's JavaScript does."""
    xy = np.asarray(d["xy"], dtype=float).reshape(-1, 2) / 1e6 + (d["x0"], d["y0"])
    out = []
    for i in range(len(d["feat"]) - 1):
        polys = []
        for p in range(d["feat"][i], d["feat"][i + 1]):
            rings = [xy[d["ring"][q]:d["ring"][q + 1]] for q in range(d["poly"][p], d["poly"][p + 1])]
            polys.append(shapely.Polygon(rings[0], rings[1:]))
        out.append(shapely.MultiPolygon(polys))
    return out


def test_gap_areas_are_one_compact_layer_per_category_with_holes_and_parts():
    """Gap areas go into the page as flat integer arrays: rebuilt, they are the gap polygons (holes and
    several parts kept, to the 1e-5 degree the map rounds to), darker the more people, with their tooltips."""
    from lifecircle.present.maps import gaps_map

    ring = shapely.box(121.470, 31.230, 121.480, 31.240).difference(shapely.box(121.474, 31.234, 121.476, 31.236))
    two = shapely.MultiPolygon([shapely.box(121.49, 31.23, 121.495, 31.235), shapely.box(121.50, 31.23, 121.505, 31.235)])
    gaps = gpd.GeoDataFrame({"gap": [1, 2, 1], "category": ["health", "health", "sports"],
                             "population": [400.0, 100.0, 50.0], "median_minutes": [21.5, np.inf, 18.0],
                             "unit": ["黄浦区", "<b>x</b>", "静安区"]},
                            geometry=[ring, two, shapely.box(121.47, 31.25, 121.48, 31.26)], crs=4326)
    html = render_html(gaps_map(gaps, basemap="none"))
    assert "Gaps" in html and not geojson_layers(html)
    health, sports = compact_layers(html)
    assert health["kind"] == "areas" and len(health["feat"]) == 3 and len(sports["feat"]) == 2
    back = _decode_areas(health)
    for got, want in zip(back, [ring, two]):
        assert got.is_valid and got.symmetric_difference(want).area < 1e-4 * want.area
    assert len(back[0].geoms[0].interiors) == 1 and len(back[1].geoms) == 2
    assert health["alpha"] == [0.7, pytest.approx(0.15 + 0.55 * 100 / 400, abs=1e-3)]  # share of the largest gap
    what, people, walk, unit = (f[2] for f in health["fields"])
    assert people == ["400 people", "100 people"] and walk[1] == "no facility within the search limit"
    assert unit == ["黄浦区", "&lt;b&gt;x&lt;/b&gt;"]  # escaped: tooltips are put in with innerHTML


def test_service_areas_given_later_go_where_they_belong():
    """coverage_map with Futures of the service areas and gap areas (lifecircle analyze starts the map before
    they are drawn) makes every other layer first, then puts their layers and legend sections where they
    would have been: the same page as with the areas given at once."""
    import re
    import threading
    from concurrent.futures import Future

    from lifecircle import analyze
    from lifecircle.datasets import toy_town_osm
    from lifecircle.present.html import _state, render_html
    from lifecircle.present.maps import coverage_map

    a = analyze(toy_town_osm())
    a.areas()
    direct = coverage_map(a, isochrones=a.isochrones, gaps=a.gaps, basemap="none")
    assert any("Gaps" in n for n in overlay_names(direct))
    pending: Future = Future()
    gaps: Future = Future()
    threading.Timer(0.2, pending.set_result, [a.isochrones]).start()
    threading.Timer(0.4, gaps.set_result, [a.gaps]).start()  # ready after the service areas, though due before
    later = coverage_map(a, isochrones=pending, gaps=gaps, basemap="none")
    assert overlay_names(later) == overlay_names(direct)
    assert any("Service areas" in n for n in overlay_names(later))
    assert list(_state(later).legend.sections) == list(_state(direct).legend.sections)
    assert _state(later).legend.sections == _state(direct).legend.sections

    def without_ids(html: str) -> str:  # folium names elements by random ids
        return re.sub(r"[0-9a-f]{32}", "ID", html)

    assert without_ids(render_html(later)) == without_ids(render_html(direct))


@pytest.mark.parametrize("n_sites, shown", [(3, True), (201, False)])
def test_a_citys_thousands_of_sites_are_listed_but_off(toy, n_sites, shown):
    """A plan of a few sites is on the map when it opens; a city's (thousands, numbered markers covering
    everything) is listed in the layer control, unticked, with every site still on its layer."""
    lon = np.linspace(121.40, 121.41, n_sites)
    sites = gpd.GeoDataFrame({"rank": np.arange(1, n_sites + 1), "category": ["health"] * n_sites},
                             geometry=gpd.points_from_xy(lon, np.full(n_sites, 31.2)), crs=4326)
    m = coverage_map(toy, sites=sites, basemap="none")
    name = f"新址 Suggested sites · 卫生 health ({n_sites})"
    layer = _layer(m, name)
    assert layer.show is shown
    markers = [c for c in layer._children.values() if type(c).__name__ == "Marker"]
    dots = [c for c in layer._children.values() if type(c).__name__ == "GeoJson"]
    assert len(markers) == min(n_sites, 200)
    assert sum(len(d.data["features"]) for d in dots) == n_sites - len(markers)
