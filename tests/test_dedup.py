"""Duplicate facilities: never within one list; OSM vs list, or an OSM node and its area; real names."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import pytest
import shapely

import lifecircle as lc
from lifecircle.cli import main
from lifecircle.datasets import toy_town_osm
from lifecircle.read.facilities import deduplicate, facilities_from_file, name_similarity


def _metres(a, b):
    return float(pyproj.Geod(ellps="WGS84").inv(a[0], a[1], b[0], b[1])[2])


def test_a_list_is_never_merged_with_itself(tmp_path, shanghai_pbf):
    """Two health rows 40 m apart with agreeing names: the same count whether the (empty) OSM layer is loaded
    or replaced, and both are kept."""
    f = tmp_path / "list.csv"
    pd.DataFrame({"name": ["江宁路社区卫生服务中心", "江宁路街道社区卫生服务中心", "某体育中心"],
                  "category": ["health", "health", "sports"],
                  "lon": [121.4700, 121.47042, 121.4750], "lat": [31.2300, 31.2300, 31.2300]}).to_csv(f, index=False)
    cfg = lc.AnalysisConfig(categories=("health", "sports"))
    pop = gpd.GeoDataFrame({"population": [100.0, 50.0]}, geometry=gpd.points_from_xy([121.47, 121.48], [31.23, 31.23]),
                           crs=4326)
    counts = []
    for replace in (False, True):
        a = lc.analyze(shanghai_pbf, facilities=f, replace_osm_facilities=replace, population=pop, config=cfg)
        counts.append(a.summary["facilities"]["by_category"]["health"])
        assert a.summary["facilities"]["merged_duplicates"] == 0
    assert counts == [2, 2]


def test_osm_and_list_pair_is_merged_and_reported(tmp_path):
    """The toy town's OSM 城西社区卫生服务中心 and a list's 城西街道社区卫生服务中心 20 m east of it are one;
    a list row 20 m from the OSM 篮球场 named 篮球网球场 is another place."""
    osm = lc.facilities_from_osm(toy_town_osm())
    c = osm.loc[osm.name == "城西社区卫生服务中心"].geometry.iloc[0]
    p = osm.loc[osm.name == "篮球场"].geometry.iloc[0]
    east = pyproj.Geod(ellps="WGS84").fwd(c.x, c.y, 90, 20)[:2]
    east_p = pyproj.Geod(ellps="WGS84").fwd(p.x, p.y, 90, 20)[:2]
    f = tmp_path / "list.csv"
    pd.DataFrame({"name": ["城西街道社区卫生服务中心", "篮球网球场"], "category": ["health", "sports"],
                  "lon": [east[0], east_p[0]], "lat": [east[1], east_p[1]]}).to_csv(f, index=False)
    out = tmp_path / "out"
    assert main(["-q", "analyze", "--example", "toy_town", "--facilities", str(f), "--no-map", "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert s["facilities"]["merged_duplicates"] == 1
    assert s["facilities"]["by_category"]["health"] == 1 and s["facilities"]["by_category"]["sports"] == 3
    m = pd.read_csv(out / "facilities_merged.csv", encoding="utf-8-sig")
    assert len(m) == 1
    row = m.iloc[0]
    assert (row.kept_name, row.dropped_name, row.kept_source, row.dropped_source) == (
        "城西街道社区卫生服务中心", "城西社区卫生服务中心", "list", "osm")
    assert row.distance_m == pytest.approx(20, abs=0.2)
    assert row.why == "names agree but for a shared prefix and suffix" and row.dropped_osm == "node/1021"
    fac = gpd.read_file(out / "facilities.gpkg")
    assert "城西社区卫生服务中心" not in set(fac.name) and "篮球网球场" in set(fac.name)


@pytest.fixture(scope="module")
def city(shared):
    """The whole-city OSM export (health and sports), and every same-category pair within 150 m."""
    fac = facilities_from_file(shared / "shanghai_facilities_osm_20260519.geojson")
    xy = fac.geometry.to_crs(32651).to_numpy()
    i, j = shapely.STRtree(xy).query(xy, predicate="dwithin", distance=150)
    keep = (i < j) & (fac.category.to_numpy()[i] == fac.category.to_numpy()[j])
    pairs = pd.DataFrame({"i": i[keep], "j": j[keep], "a": fac.name.to_numpy()[i[keep]],
                          "b": fac.name.to_numpy()[j[keep]], "m": shapely.distance(xy[i[keep]], xy[j[keep]])})
    return fac, pairs, deduplicate(fac)


def test_city_export_distinct_places_stay(city):
    fac, pairs, d = city
    merged = d.attrs["merged"]
    dropped = set(merged.dropped_index)
    # 篮球场 and 篮球网球场 about 99 m apart (found in the file): two places
    hit = pairs[((pairs.a == "篮球场") & (pairs.b == "篮球网球场")) | ((pairs.a == "篮球网球场") & (pairs.b == "篮球场"))]
    assert len(hit) >= 1 and (hit.m.round() == 99).any()
    for r in hit.itertuples():
        assert name_similarity(r.a, r.b) == 0.0
        assert r.i not in dropped and r.j not in dropped
    # two OSM ways are never one (a row of courts mapped one by one: 东篮球场 x 8 in Fengxian)
    assert not ((merged.kept_osm.str.startswith("way/")) & (merged.dropped_osm.str.startswith("way/"))).any()
    courts = fac[fac.name == "东篮球场"]
    assert len(courts) >= 8 and courts.index.isin(d.index).all()
    # a sports centre and its badminton hall, a hospital and its branch campus
    for a, b in (("静安体育中心", "静安体育中心羽毛球场"), ("浦南医院", "浦南医院(东院)"), ("松江体育中心", "松江体育训练中心")):
        assert ((pairs.a == a) & (pairs.b == b) | (pairs.a == b) & (pairs.b == a)).any(), (a, b)  # both in the file
        assert name_similarity(a, b) == 0.0


def test_city_export_node_and_polygon_still_merge(city):
    fac, pairs, d = city
    merged = d.attrs["merged"]
    # 上海市浦东新区周浦社区卫生服务中心: an OSM node and its polygon, same name, ~19 m apart
    same = pairs[(pairs.a == pairs.b) & pairs.a.fillna("").str.contains("社区卫生服务中心")]
    assert len(same) == 1 and same.m.iloc[0] == pytest.approx(19.3, abs=0.1)
    types = {fac.osm_type.iloc[same.i.iloc[0]], fac.osm_type.iloc[same.j.iloc[0]]}
    assert types == {"node", "way"}
    row = merged[merged.dropped_name == same.a.iloc[0]]
    assert len(row) == 1 and row.why.iloc[0] == "same name" and row.distance_m.iloc[0] == pytest.approx(19.3, abs=0.1)
    # every merge on the export is an OSM node (or relation) with a way: the double-mapping pattern
    kinds = merged.kept_osm.str.split("/").str[0] + "+" + merged.dropped_osm.str.split("/").str[0]
    assert set(kinds) <= {"node+way", "way+node", "relation+way", "way+relation", "node+relation", "relation+node"}


def test_list_name_without_jiedao_merges_with_osm(city):
    """A list's "XX社区卫生服务中心" 30 m from OSM's real "XX街道社区卫生服务中心" is the same centre."""
    fac, _, _ = city
    osm = fac[fac.name.fillna("").str.contains("街道社区卫生服务中心")]
    k = len(osm)
    assert k >= 3
    rows = []
    for name, g in zip(osm.name, osm.geometry):
        lon, lat = pyproj.Geod(ellps="WGS84").fwd(g.x, g.y, 0, 30)[:2]
        rows.append({"category": "health", "name": name.replace("街道", ""), "source": "list",
                     "geometry": shapely.Point(lon, lat)})
    lst = gpd.GeoDataFrame(rows, crs=4326)
    both = pd.concat([osm, lst], ignore_index=True)
    d = deduplicate(gpd.GeoDataFrame(both, crs=4326), layer=[0] * k + [1] * k)
    assert sorted(d.name) == sorted(lst.name)  # the list's entries are kept
    assert d.attrs["merged"].distance_m.round().tolist() == [30.0] * k


def test_library_and_childrens_library_are_two():
    """图书馆 vs 少年儿童图书馆 / 少儿图书馆 (no library is in the export, so hand-made: OSM vs a list, 50 m)."""
    f = gpd.GeoDataFrame({"category": ["culture"] * 3, "name": ["静安区图书馆", "静安区少年儿童图书馆", "静安少儿图书馆"],
                          "source": ["osm", "list", "list"]},
                         geometry=gpd.points_from_xy([121.4500, 121.4505, 121.4500], [31.24, 31.24, 31.2404]), crs=4326)
    d = deduplicate(f)
    assert len(d) == 3 and d.attrs["merged"].empty
    # while the same library from a list does merge
    g = pd.concat([f.iloc[:1], f.iloc[:1].assign(source="list", name="上海市静安区图书馆")])
    assert len(deduplicate(gpd.GeoDataFrame(g, crs=4326))) == 1
