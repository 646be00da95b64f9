"""Census counts spread onto residential locations: reading, joining units, totals preserved."""

from __future__ import annotations


import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from conftest import X0, Y0, _utm, lonlat
from lifecircle import InputDataError
from lifecircle.read.census import MAX_POINTS_PER_UNIT, match_units, read_census, residents_from_census
from lifecircle.datasets import shared_data_dir, toy_town_osm

CENSUS_TOTAL = 24_870_895


@pytest.fixture(scope="module")
def shared_dir():
    d = shared_data_dir()
    if d is None:
        pytest.skip("../shared/data not found beside the repository")
    return d


@pytest.fixture(scope="module")
def census(shared_dir):
    return read_census(shared_dir / "shanghai_district_population_census2020.csv")


@pytest.fixture(scope="module")
def districts(shared_dir):
    from lifecircle.read.files import read_geo

    g = read_geo(shared_dir / "shanghai_districts_datav_v3_gcj02.geojson", what="units", crs="gcj02")
    return g[["adcode", "name", "geometry"]].rename(columns={"name": "unit"})


# ---------------------------------------------------------------------------------- read_census

def test_read_real_census(census):
    assert len(census) == 16
    assert list(census.columns) == ["name", "code", "population"]
    assert census["population"].sum() == CENSUS_TOTAL
    assert census["population"].dtype == float
    row = census.set_index("name").loc["浦东新区"]
    assert row["code"] == "310115" and row["population"] == 5_681_512


def test_read_census_drops_summary_rows(tmp_path):
    f = tmp_path / "c.csv"
    f.write_text("区划代码,名称,人口\n310101,黄浦区,\"662,030\"\n310106,静安区,975707\n,合计,1637737\n"
                 ",Total,1637737\n", encoding="utf-8")
    c = read_census(f)
    assert c["name"].tolist() == ["黄浦区", "静安区"]
    assert c["code"].tolist() == ["310101", "310106"]
    assert c["population"].tolist() == [662030.0, 975707.0]


@pytest.mark.parametrize("value", ["", "-5", "n/a"])
def test_read_census_bad_population(tmp_path, value):
    f = tmp_path / "c.csv"
    f.write_text(f"district,population\n黄浦区,662030\n静安区,{value}\n", encoding="utf-8")
    with pytest.raises(InputDataError, match="静安区") as err:
        read_census(f)
    assert "\n" not in str(err.value)


def test_read_census_explicit_columns(tmp_path):
    f = tmp_path / "c.csv"
    f.write_text("area,people\nA,1\nB,2\n", encoding="utf-8")
    with pytest.raises(InputDataError, match="--census-name"):
        read_census(f)
    c = read_census(f, name_column="area", population_column="people")
    assert c["population"].sum() == 3 and c["code"].isna().all()


# ---------------------------------------------------------------------------------- match_units

def test_match_by_name_and_by_code_agree(districts, census):
    by_name = match_units(districts, census, on="name")
    by_code = match_units(districts, census, on="code")
    pd.testing.assert_series_equal(by_name, by_code)
    assert (census.loc[by_name.to_numpy(), "name"].to_numpy() == districts["unit"].to_numpy()).all()
    pd.testing.assert_series_equal(match_units(districts, census), by_code)  # auto: codes on both sides
    with pytest.raises(InputDataError, match="--census-join name"):
        match_units(districts.drop(columns="adcode"), census, on="code")


def test_match_short_official_names(districts, shared_dir):
    # the health commission's table says 黄浦 / 浦东 where DataV says 黄浦区 / 浦东新区
    short = read_census(shared_dir / "shanghai_community_health_centers_by_district_2024.csv",
                        population_column="count")
    assert len(short) == 16 and {"黄浦", "浦东"} <= set(short["name"])
    m = match_units(districts, short)  # no codes: names
    pairs = dict(zip(districts["unit"], short.loc[m.to_numpy(), "name"]))
    assert pairs["黄浦区"] == "黄浦" and pairs["浦东新区"] == "浦东" and pairs["崇明区"] == "崇明"


def test_match_wrong_name_is_listed(districts, census):
    bad = census.copy()
    bad.loc[bad["name"] == "黄浦区", "name"] = "黄埔区"  # a common typo
    with pytest.raises(InputDataError) as err:
        match_units(districts, bad, on="name")
    msg = str(err.value)
    assert "census names not found among the units: 黄埔区" in msg
    assert "units without a census row: 黄浦区" in msg
    assert "--census-join adcode" in msg and "\n" not in msg
    # the same census joins fine on codes
    assert match_units(districts, bad, on="code").tolist() == list(range(16))


def test_match_duplicates_rejected():
    units = pd.DataFrame({"unit": ["浦东新区", "浦东"]})
    census = pd.DataFrame({"name": ["浦东新区", "黄浦区"], "code": [None, None], "population": [1.0, 2.0]})
    with pytest.raises(InputDataError, match="more than once: 浦东新区, 浦东.*黄浦区"):
        match_units(units, census)


# ---------------------------------------------------------------------------------- whole city

def test_whole_city_keeps_district_totals(districts, census):
    r = residents_from_census(districts, census)  # no network: nothing to check the districts against
    assert r.crs.to_epsg() == 4326
    assert r.attrs["population_source"] == "census_dasymetric"
    assert r["population"].sum() == pytest.approx(CENSUS_TOTAL, rel=1e-9)
    by_unit = r.groupby("unit")["population"].sum()
    expected = census.set_index("name")["population"]
    for name, pop in expected.items():
        assert by_unit[name] == pytest.approx(pop, rel=1e-9)
    methods = r.attrs["census_methods"].set_index("unit")
    # no buildings, no landuse, no streets: every district is spread over its area
    assert set(methods["method"]) == {"area"}
    assert (methods["census_population"] == expected[methods.index]).all()
    assert methods["points"].sum() == len(r)
    assert methods["points"].max() <= 1.5 * MAX_POINTS_PER_UNIT
    assert (r.groupby("unit")["method"].first().reindex(methods.index) == methods["method"]).all()
    # every point lies inside its own district (WGS84)
    _inside_own_unit(r, districts)


def test_streets_only_where_the_network_covers_the_unit(districts, census, shanghai_network):
    # the 2.4 km street sample covers 27 % of 黄浦区 and 0.4 % of 静安区: 黄浦区 passes a 20 % bar, not the rest
    with pytest.raises(InputDataError, match=r"^15 of 16 census units lie less than 20 % inside .*\(静安区 0.4 %, ") as e:
        residents_from_census(districts, census, network=shanghai_network, min_network_share=0.2)
    assert "黄浦区" not in str(e.value) and "--clip-units-to-network" in str(e.value)
    with pytest.raises(InputDataError, match="min_network_share"):
        residents_from_census(districts, census, min_network_share=1.5)


def _inside_own_unit(r, districts):
    for unit, geom in zip(districts["unit"], districts.geometry):
        pts = r[r["unit"] == unit]
        assert shapely.contains_xy(geom, pts.geometry.x.to_numpy(), pts.geometry.y.to_numpy()).all(), unit


# ---------------------------------------------------------------------------------- toy town

def _local_box(x0, y0, x1, y1):
    lo, la = lonlat([x0, x1, x1, x0], [y0, y0, y1, y1])
    return shapely.Polygon(np.column_stack([lo, la]))


def _local_xy(points):
    x, y = _utm.transform(points.geometry.x.to_numpy(), points.geometry.y.to_numpy())
    return np.asarray(x) - X0, np.asarray(y) - Y0


def test_toy_town_split_follows_floor_area():
    units = gpd.GeoDataFrame({"unit": ["西区", "东区"]}, crs=4326,
                             geometry=[_local_box(-100, -100, 500, 500), _local_box(500, -100, 1000, 500)])
    census = pd.DataFrame({"name": ["西", "东"], "code": [None, None], "population": [1000.0, 500.0]})
    r = residents_from_census(units, census, osm=toy_town_osm())
    assert set(r["method"]) == {"buildings"}
    x, y = _local_xy(r)
    # west: apartments 40x20x6 = 4800 at (30, 30), residential 30x30x3 = 2700 at (230, 230),
    # building=yes 40x30x4 = 4800 at (220, 20) inside landuse=residential (12300 m² in all);
    # east: apartments 40x40x10 = 16000 at (720, 300), house 20x20x1 = 400 at (630, 330)
    boxes = {(30, 30, 40, 20): 1000 * 4800 / 12300, (230, 230, 30, 30): 1000 * 2700 / 12300,
             (220, 20, 40, 30): 1000 * 4800 / 12300, (720, 300, 40, 40): 500 * 16000 / 16400,
             (630, 330, 20, 20): 500 * 400 / 16400}
    assert len(r) == len(boxes)
    for (bx, by, w, h), pop in boxes.items():
        hit = (x > bx) & (x < bx + w) & (y > by) & (y < by + h)
        assert hit.sum() == 1, (bx, by)
        assert r["population"][hit].iloc[0] == pytest.approx(pop, rel=1e-3)
    totals = r.groupby("unit")["population"].sum()
    assert totals["西区"] == pytest.approx(1000, rel=1e-12) and totals["东区"] == pytest.approx(500, rel=1e-12)
    m = r.attrs["census_methods"].set_index("unit")
    assert m.loc["西区", "points"] == 3 and m.loc["东区", "points"] == 2
    assert m.loc["西区", "building_estimate"] == pytest.approx(12300 / 36.5, rel=1e-3)


def _write_osm(path, rings):
    """A tiny OSM XML file: one closed way per (ring in local metres, tags)."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<osm version="0.6" generator="test">']
    ways, nid = [], 1
    for k, (ring, tags) in enumerate(rings):
        lo, la = lonlat([p[0] for p in ring], [p[1] for p in ring])
        ids = []
        for a, b in zip(lo, la):
            lines.append(f'  <node id="{nid}" version="1" lat="{b:.8f}" lon="{a:.8f}"/>')
            ids.append(nid)
            nid += 1
        ways.append(f'  <way id="{100 + k}" version="1">' + "".join(f'<nd ref="{i}"/>' for i in ids + ids[:1])
                    + "".join(f'<tag k="{t}" v="{v}"/>' for t, v in tags.items()) + "</way>")
    path.write_text("\n".join(lines + ways + ["</osm>"]) + "\n", encoding="utf-8")
    return path


def test_residential_landuse_without_buildings(tmp_path):
    land = [(100, 100), (400, 100), (400, 300), (100, 300)]
    osm = _write_osm(tmp_path / "land.osm", [(land, {"landuse": "residential"})])
    units = gpd.GeoDataFrame({"unit": ["甲镇", "乙镇"], "adcode": [1, 2]}, crs=4326,
                             geometry=[_local_box(0, 0, 1000, 1000), _local_box(1000, 0, 1600, 1000)])
    census = pd.DataFrame({"name": ["x", "y"], "code": ["1", "2"], "population": [600.0, 60.0]})
    r = residents_from_census(units, census, osm=osm, cell_m=50.0)
    m = r.attrs["census_methods"].set_index("unit")
    assert m.loc["甲镇", "method"] == "residential_landuse"
    assert m.loc["乙镇", "method"] == "area"  # nothing mapped there: the whole unit
    a = r[r["unit"] == "甲镇"]
    x, y = _local_xy(a)
    assert len(a) == 6 * 4  # 300 m x 200 m at 50 m spacing
    assert ((x > 100) & (x < 400) & (y > 100) & (y < 300)).all()
    assert a["population"].sum() == pytest.approx(600, rel=1e-12)
    assert np.allclose(a["population"], 600 / 24)
    b = r[r["unit"] == "乙镇"]
    assert b["population"].sum() == pytest.approx(60, rel=1e-12) and len(b) == 12 * 20  # 600 m x 1000 m


def test_streets_then_area_and_census_file(tmp_path):
    from lifecircle import network_from_osm

    net = network_from_osm(toy_town_osm())
    units = gpd.GeoDataFrame({"unit": ["城区", "郊区"]}, crs=4326,
                             geometry=[_local_box(-50, -50, 850, 450), _local_box(2000, 0, 2010, 10)])
    f = tmp_path / "census.csv"
    f.write_text("name,population\n城区,900\n郊区,9\n全市,909\n", encoding="utf-8")
    r = residents_from_census(units, f, network=net, min_network_share=0.0)  # 郊区 lies outside the network
    m = r.attrs["census_methods"].set_index("unit")
    assert m.loc["城区", "method"] == "streets"
    assert m.loc["郊区", "method"] == "area" and m.loc["郊区", "points"] == 1  # smaller than a cell
    s = r[r["unit"] == "城区"]
    assert len(s) == net.n_edges
    assert s["population"].sum() == pytest.approx(900, rel=1e-12)
    # one point per edge midpoint, people in proportion to edge length
    assert np.allclose(np.sort(s["population"]), np.sort(900 * net.length_m / net.length_m.sum()), rtol=1e-12)
