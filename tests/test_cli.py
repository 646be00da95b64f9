"""Command line: the README's jobs, exit codes, files written, one-line errors, nothing half-written."""

from __future__ import annotations

import json
import subprocess
import sys

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from lifecircle.cli import main

BBOX = (121.4611262, 31.2196145, 121.4863121, 31.2411914)


@pytest.fixture(scope="module")
def shanghai_csvs(tmp_path_factory, shanghai_facilities):
    """Facilities: the real OSM health and sport points of the sample area, plus made-up elderly-care
    and culture points (the real OSM layer has none); residents: a made-up 60 x 60 grid."""
    d = tmp_path_factory.mktemp("sh")
    real = shanghai_facilities[shanghai_facilities.category.isin(["health", "sport"])]
    fac = pd.DataFrame({"name": real.name, "category": real.category.replace({"sport": "sports"}),
                        "lon": real.geometry.x, "lat": real.geometry.y})
    rng = np.random.default_rng(7)
    made = pd.DataFrame({"name": [f"made-up {i}" for i in range(12)],
                         "category": ["elderly_care"] * 6 + ["culture"] * 6,
                         "lon": rng.uniform(BBOX[0], BBOX[2], 12), "lat": rng.uniform(BBOX[1], BBOX[3], 12)})
    pd.concat([fac, made]).to_csv(d / "F.csv", index=False)
    gx, gy = np.meshgrid(np.linspace(BBOX[0], BBOX[2], 60), np.linspace(BBOX[1], BBOX[3], 60))
    pd.DataFrame({"lng": gx.ravel(), "latitude": gy.ravel(), "population": rng.integers(0, 300, gx.size)}).to_csv(
        d / "P.csv", index=False)
    return d


def run(*args):
    return subprocess.run([sys.executable, "-m", "lifecircle", *map(str, args)], capture_output=True, text=True)


def test_done_means_command(shanghai_pbf, shanghai_csvs, tmp_path):
    out = tmp_path / "out"
    p = run("analyze", "--osm", shanghai_pbf, "--facilities", shanghai_csvs / "F.csv",
            "--population", shanghai_csvs / "P.csv", "--out", out)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    assert "health" in p.stdout and "OpenStreetMap contributors" in p.stdout
    s = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert set(s["categories"]) == {"health", "elderly_care", "culture", "sports", "all"}
    for c in s["categories"].values():
        assert 0 <= c["share"] <= 1
        assert c["share"] == pytest.approx(c["covered_population"] / c["population"])
        assert set(c["shares_by_minutes"]) == {"5", "10", "15"}
        assert c["shares_by_minutes"]["15"] == c["share"]
    assert s["categories"]["all"]["share"] <= min(s["categories"][k]["share"] for k in
                                                  ("health", "elderly_care", "culture", "sports"))
    assert s["parameters"]["target"] == 0.85 and "沪府发〔2021〕5号" in s["parameters"]["target_source"]
    assert s["parameters"]["speed_kmh"] == 4.0
    assert s["inputs"]["osm"]["sha256"] == "cadc3a24693ee565c18aebb29f38b186947602f225c3547077326c75f6b02705"
    assert len(s["inputs"]["population"]["sha256"]) == 64
    # issue 4's 'done means': isochrone layers in QGIS-ready GeoPackage, the offline map and the PNGs
    import pyogrio

    assert pyogrio.list_layers(out / "isochrones.gpkg").tolist() == [["isochrones", "MultiPolygon"],
                                                                      ["layer_styles", None]]
    areas = gpd.read_file(out / "isochrones.gpkg", layer="isochrones")
    assert {(c, m) for c in ("health", "sports") for m in (5, 10, 15)} <= set(zip(areas.category, areas.minutes))
    iso = areas[(areas.category == "health") & (areas.minutes == 15)]
    assert iso.crs.to_epsg() == 4326 and iso.area_km2.iloc[0] > 0
    html = (out / "map.html").read_text(encoding="utf-8")
    assert "服务范围 Service areas" in html and "OpenStreetMap contributors" in html
    assert "<script src=\"http" not in html and "unpkg.com" not in html
    for png in ("coverage_map.png", "coverage_curve.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert s["residents"]["population_source"] == "points" and not s["residents"]["population_is_estimate"]
    cov = pd.read_csv(out / "coverage.csv", encoding="utf-8-sig")
    assert list(cov.columns[:7]) == ["unit", "category", "minutes", "population", "covered_population", "share", "target"]
    assert len(cov) == 5 * 3

    r = gpd.read_file(out / "residents.gpkg")
    assert {"minutes_to_health", "minutes_to_all", "within_15min_all"} <= set(r.columns)
    assert r.crs.to_epsg() == 4326
    # the summary agrees with the residents file
    within = r["minutes_to_health"].fillna(np.inf) <= 15
    assert r.population[within].sum() / r.population.sum() == pytest.approx(s["categories"]["health"]["share"])
    assert not list(out.glob("*.tmp*"))


def test_units_per_district(shanghai_pbf, shanghai_csvs, shared, tmp_path):
    out = tmp_path / "u"
    code = main(["-q", "analyze", "--osm", str(shanghai_pbf), "--facilities", str(shanghai_csvs / "F.csv"),
                 "--population", str(shanghai_csvs / "P.csv"), "--units",
                 str(shared / "shanghai_districts_datav_v3_gcj02.geojson"), "--units-crs", "gcj02",
                 "--minutes", "10,15", "--speed-kmh", "3", "--out", str(out)])
    assert code == 0
    cov = pd.read_csv(out / "coverage.csv", encoding="utf-8-sig")
    assert {"静安区", "黄浦区"} <= set(cov.unit)
    s = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert s["parameters"]["minutes"] == [10.0, 15.0] and s["parameters"]["speed_kmh"] == 3
    pops = cov[(cov.unit != "study_area") & (cov.category == "health") & (cov.minutes == 15)].population.sum()
    assert pops == pytest.approx(s["residents"]["population"])


def test_example_runs_offline(tmp_path):
    code = main(["-q", "analyze", "--example", "helsinki", "--categories", "health,culture,sports", "--out",
                 str(tmp_path / "h")])
    assert code == 0
    s = json.loads((tmp_path / "h" / "summary.json").read_text(encoding="utf-8"))
    assert s["residents"]["population_is_estimate"] is True
    assert set(s["categories"]) == {"health", "culture", "sports", "all"}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--osm", "{tmp}/missing.osm.pbf"], "not found"),
        (["--osm", "{tmp}/corrupt.osm.pbf"], "corrupt"),
        (["--example", "toy_town", "--population", "{tmp}/utm.csv"], "CRS"),
        (["--example", "toy_town", "--population", "{tmp}/far.csv"], "within 500 m"),
        (["--example", "helsinki"], "elderly_care"),
        (["--example", "toy_town", "--facilities", "{tmp}/nocols.csv"], "category"),
        (["--example", "toy_town", "--facilities", "{tmp}/x.csv", "--facilities-crs", "gcj2"], "unknown CRS"),
        (["--example", "toy_town", "--speed-kmh", "-1"], "--speed-kmh"),
    ],
)
def test_bad_input_one_line_error(tmp_path, args, message):
    (tmp_path / "corrupt.osm.pbf").write_bytes(b"\x00garbage" * 50)
    (tmp_path / "utm.csv").write_text("x,y,population\n351000,3453000,10\n")
    (tmp_path / "far.csv").write_text("lon,lat,population\n121.60,31.30,10\n")
    (tmp_path / "nocols.csv").write_text("lon,lat\n121.4,31.2\n")
    (tmp_path / "x.csv").write_text("lon,lat,category\n121.4,31.2,health\n")
    out = tmp_path / "out"
    p = run("analyze", *[a.format(tmp=tmp_path) for a in args], "--out", out)
    assert p.returncode == 1, p.stderr
    errors = [line for line in p.stderr.splitlines() if line.startswith("lifecircle: error:")]
    assert len(errors) == 1 and message in errors[0], p.stderr
    assert "Traceback" not in p.stderr
    assert not out.exists() or not any(out.iterdir())  # nothing half-written


def test_usage_errors_exit_2(tmp_path):
    assert main(["analyze", "--out", str(tmp_path)]) == 2
    assert main(["analyze", "--example", "toy_town", "--categories", "parks"]) == 2
    assert main(["analyze", "--example", "toy_town", "--minutes", "ten"]) == 2


def test_fetch_offline_is_a_clear_error(tmp_path, monkeypatch):
    import pyrosm

    def offline(*a, **k):
        raise OSError("Name or service not known")

    monkeypatch.setattr(pyrosm, "get_data", offline)
    assert main(["fetch", "shanghai", "--dir", str(tmp_path)]) == 1


def test_gcj02_list_detected_and_converted(shanghai_pbf, shanghai_csvs, tmp_path):
    """The real facility points shifted into GCJ-02: read as WGS84 they trigger a warning with the
    fix; declared as gcj02 they give the same coverage as the original WGS84 points."""
    from lifecircle.read.crs import wgs84_to_gcj02

    f = pd.read_csv(shanghai_csvs / "F.csv")
    f["lon"], f["lat"] = wgs84_to_gcj02(f.lon.to_numpy(), f.lat.to_numpy())
    f.to_csv(tmp_path / "F_gcj.csv", index=False)
    common = ["-q", "analyze", "--osm", str(shanghai_pbf), "--population", str(shanghai_csvs / "P.csv"),
              "--categories", "health,sports"]
    assert main(common + ["--facilities", str(tmp_path / "F_gcj.csv"), "--out", str(tmp_path / "a")]) == 0
    a = json.loads((tmp_path / "a" / "summary.json").read_text(encoding="utf-8"))
    assert any("--facilities-crs gcj02" in w for w in a["warnings"])
    assert main(common + ["--facilities", str(tmp_path / "F_gcj.csv"), "--facilities-crs", "gcj02",
                          "--out", str(tmp_path / "b")]) == 0
    assert main(common + ["--facilities", str(shanghai_csvs / "F.csv"), "--out", str(tmp_path / "c")]) == 0
    b = json.loads((tmp_path / "b" / "summary.json").read_text(encoding="utf-8"))
    c = json.loads((tmp_path / "c" / "summary.json").read_text(encoding="utf-8"))
    assert not any("gcj02" in w for w in b["warnings"] + c["warnings"])
    for cat in ("health", "sports"):
        assert b["categories"][cat]["share"] == pytest.approx(c["categories"][cat]["share"], abs=1e-9)


def test_facilities_command_city_wide(shared, tmp_path):
    """The whole-city OSM export: classified per district, compared with the official centre counts."""
    out = tmp_path / "fac.gpkg"
    code = main(["-q", "facilities", "--list", str(shared / "shanghai_facilities_osm_20260519.geojson"),
                 "--units", str(shared / "shanghai_districts_datav_v3_gcj02.geojson"), "--units-crs", "gcj02",
                 "--official-counts", str(shared / "shanghai_community_health_centers_by_district_2024.csv"),
                 "--out", str(out)])
    assert code == 0
    counts = pd.read_csv(tmp_path / "fac_counts.csv", index_col=0, encoding="utf-8-sig")
    assert len(counts) == 17  # 16 districts + total
    # every district has health and sports points (data README: Chongming health 9, sport 89)
    assert (counts.drop("total")[["health", "sports"]] > 0).all().all()
    assert counts.loc["崇明区", "health"] == 9
    off = pd.read_csv(tmp_path / "fac_official.csv", encoding="utf-8-sig")
    assert off.official.iloc[-1] == 247 and len(off) == 17
    subs = pd.read_csv(tmp_path / "fac_subcategories.csv", index_col=0, encoding="utf-8-sig")
    assert {"community_health_centre", "hospital"} <= set(subs.columns)
    assert off.found.iloc[-1] == subs.loc["total", "community_health_centre"]


def test_census_districts_gcj02_list(shanghai_pbf, shanghai_csvs, shared, tmp_path):
    """Issue 3's 'done means': DataV districts (GCJ-02) + the 2020 census + a GCJ-02 facility list with
    Chinese columns (one row has no coordinates) on the WGS84 street sample."""
    from lifecircle.read.crs import wgs84_to_gcj02

    f = pd.read_csv(shanghai_csvs / "F.csv")
    f = f[f.category.isin(["health", "sports"])]
    lon, lat = wgs84_to_gcj02(f.lon.to_numpy(), f.lat.to_numpy())
    gcj = pd.DataFrame({"名称": f.name.fillna("无名"), "类别": f.category, "经度": lon, "纬度": lat})
    gcj.loc[len(gcj)] = {"名称": "地址待补社区卫生服务站", "类别": "health", "经度": None, "纬度": None}
    gcj.to_csv(tmp_path / "list_gcj.csv", index=False, encoding="utf-8")
    out = tmp_path / "out"
    p = run("analyze", "--osm", shanghai_pbf, "--units", shared / "shanghai_districts_datav_v3_gcj02.geojson",
            "--units-crs", "gcj02", "--census", shared / "shanghai_district_population_census2020.csv",
            "--facilities", tmp_path / "list_gcj.csv", "--facilities-crs", "gcj02", "--replace-osm-facilities",
            "--categories", "health,sports", "--no-map", "--clip-units-to-network", "--out", out)
    assert p.returncode == 0, p.stderr
    assert "黄浦区" in p.stdout and "静安区" in p.stdout
    s = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    census = pd.read_csv(shared / "shanghai_district_population_census2020.csv")
    methods = pd.read_csv(out / "census_methods.csv", encoding="utf-8-sig").set_index("unit")
    kept = methods["kept_share"]
    assert s["census"]["census_total"] == pytest.approx(24_870_895)
    assert s["residents"]["population"] == pytest.approx((census.set_index("district").population_2020 * kept).sum())
    assert s["residents"]["population_source"] == "census_dasymetric"
    cov = pd.read_csv(out / "coverage.csv", encoding="utf-8-sig")
    rows = cov[(cov.unit != "study_area") & (cov.category == "health") & (cov.minutes == 15)].set_index("unit")
    assert set(rows.index) == {"黄浦区", "静安区"} == set(kept[kept > 0].index)  # the sample clips two districts
    for name, pop in zip(census.district, census.population_2020):
        if kept[name] > 0:
            assert rows.loc[name, "population"] == pytest.approx(pop * kept[name], abs=0.01)  # csv: 3 decimals
    # the converted list sits on the WGS84 streets: every point snaps within a few metres of where the
    # WGS84 original snaps (no ~500 m GCJ offset), and no offset warning is raised
    fac = gpd.read_file(out / "facilities.gpkg")
    orig = np.column_stack([f.lon, f.lat])
    back = np.column_stack([fac.geometry.x, fac.geometry.y])
    assert len(fac) == len(f)
    nearest = np.sqrt(((back[:, None, :] - orig[None, :, :]) ** 2).sum(-1)).min(1)
    assert nearest.max() < 1e-5  # degrees, ~1 m
    assert not any("gcj02" in w for w in s["warnings"])
    # districts outside the 2.4 km sample have nobody within reach; the covered people live in 黄浦/静安 (and just across the creek)
    covered = rows[rows.covered_population > 0].index
    assert "黄浦区" in set(covered)
    # the row without coordinates is reported, not dropped silently
    rejected = pd.read_csv(out / "facilities_rejected.csv", encoding="utf-8-sig")
    assert "地址待补社区卫生服务站" in rejected.to_string()
    assert any("not used" in w for w in s["warnings"])
    assert len(methods) == 16 and methods.census_population.sum() == pytest.approx(24_870_895)


def test_admin_boundaries_from_osm(tmp_path):
    out = tmp_path / "tt"
    assert main(["-q", "analyze", "--example", "toy_town", "--admin-level", "subdistrict", "--out", str(out)]) == 0
    cov = pd.read_csv(out / "coverage.csv", encoding="utf-8-sig")
    assert set(cov.unit) == {"study_area", "城西街道", "城东街道"}
    units = gpd.read_file(out / "units.gpkg")
    assert units.crs.to_epsg() == 4326 and sorted(units.unit) == ["城东街道", "城西街道"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--census", "{census}"], "needs the units"),
        (["--admin-level", "8", "--census", "{bad}"], "units without a census row: 城东街道"),
        (["--admin-level", "4"], "no closed administrative boundary with admin_level=4"),
        (["--admin-level", "ward"], "admin level 'ward'"),
    ],
)
def test_census_errors(tmp_path, args, message):
    (tmp_path / "census.csv").write_text("name,population\n城西街道,10\n城东街道,20\n", encoding="utf-8")
    (tmp_path / "bad.csv").write_text("name,population\n城西街道,10\n城北街道,20\n", encoding="utf-8")
    out = tmp_path / "out"
    p = run("analyze", "--example", "toy_town", *[a.format(census=tmp_path / "census.csv", bad=tmp_path / "bad.csv")
                                                  for a in args], "--out", out)
    assert p.returncode in (1, 2), p.stderr
    assert message in p.stderr and "Traceback" not in p.stderr
    assert not out.exists() or not any(out.iterdir())


def test_gaps_sites_scenario_commands(tmp_path):
    """analyze --sites, then gaps -k and scenario --add on the toy town: the health centre at x=100 m
    leaves the east bank (城东街道) beyond 15 minutes; one new site there covers everybody."""
    out = tmp_path / "t"
    assert main(["-q", "analyze", "--example", "toy_town", "--admin-level", "8", "--sites", "--facility-isochrones",
                 "--out", str(out)]) == 0
    import pyogrio

    # the toy town's one health centre: its own service areas are the health layers
    assert pyogrio.list_layers(out / "facility_isochrones.gpkg")[:, 0].tolist() == ["facility_isochrones",
                                                                                    "layer_styles"]
    own = gpd.read_file(out / "facility_isochrones.gpkg", layer="facility_isochrones")
    own = own[(own.category == "health") & (own.minutes == 15)]
    merged = gpd.read_file(out / "isochrones.gpkg", layer="isochrones")
    merged = merged[(merged.category == "health") & (merged.minutes == 15)]
    assert len(own) == 1 and own.area_km2.iloc[0] == pytest.approx(merged.area_km2.iloc[0], rel=1e-9)
    needed = pd.read_csv(out / "sites_needed.csv", encoding="utf-8-sig")
    health = needed[needed.category == "health"].set_index("unit")
    assert health.loc["study_area", "sites_needed"] == 1 and health.loc["城西街道", "sites_needed"] == 0
    gaps = gpd.read_file(out / "gaps.gpkg", layer="gaps")
    assert set(gaps.category) == {"health"} and set(gaps.unit) == {"城东街道"}
    assert "缺口 Gaps" in (out / "map.html").read_text(encoding="utf-8")
    assert main(["-q", "gaps", str(out), "--category", "health", "-k", "1", "--no-map"]) == 0
    sites = pd.read_csv(out / "suggested_sites.csv", encoding="utf-8-sig")
    assert len(sites) == 1 and sites.cumulative_share.iloc[0] == pytest.approx(1.0)
    assert main(["-q", "scenario", str(out), "--add", str(out / "suggested_sites.csv")]) == 0
    change = pd.read_csv(out / "scenario" / "scenario_change.csv", encoding="utf-8-sig")
    row = change[(change.unit == "study_area") & (change.category == "health") & (change.minutes == 15)].iloc[0]
    assert row.share_after == pytest.approx(1.0) and row.share_before < 0.85
    # the scenario's own map: the added site, residents before (off) and after, the streets
    html = (out / "scenario" / "map.html").read_text(encoding="utf-8")
    for layer in ("街道 streets", "居民 之前 Before · 全部 all", "居民 之后 After · 全部 all", "新增设施 Added (1)"):
        assert json.dumps(layer) in html, layer
    assert json.dumps("关闭设施")[1:-1] not in html  # nothing removed
    site = pd.read_csv(out / "suggested_sites.csv").iloc[0]
    assert f"[{round(site.lat, 6)}, {round(site.lon, 6)}]" in html  # the added site's marker
    assert "map.html" in json.loads((out / "scenario" / "lifecircle_manifest.json").read_text())["files"]
    assert main(["gaps", str(out), "-k", "0"]) == 1  # a number out of range: user error (not a number: 2)
    assert main(["gaps", str(tmp_path / "missing")]) == 1  # checked by lifecircle, with the fix
    assert main(["scenario", str(out)]) == 2


def test_isochrone_command(tmp_path):
    """From the toy town's corner (0, 0) at 4 km/h: 5 min = 333 m reaches along both streets; the
    polygon holds the street corner and not the far side of the river."""
    from conftest import lonlat

    import shapely

    lo, la = lonlat(0, 10)
    out = tmp_path / "iso.gpkg"
    assert main(["-q", "isochrone", "--example", "toy_town", "--lon", str(float(lo)), "--lat", str(float(la)),
                 "--minutes", "5,15", "--out", str(out)]) == 0
    iso = gpd.read_file(out, layer="iso")
    five = iso[iso.minutes == 5]
    assert five.crs.to_epsg() == 4326 and five.area_km2.iloc[0] > 0
    poly = five.geometry.iloc[0]
    x, y = lonlat(200, 0)   # 200 m along the street: inside
    assert poly.contains(shapely.Point(float(x), float(y)))
    x, y = lonlat(0, 380)   # 380 m > 333 m: outside
    assert not poly.contains(shapely.Point(float(x), float(y)))
    # the map beside it, <stem>.html, recorded in the same manifest
    html = (tmp_path / "iso.html").read_text(encoding="utf-8")
    for layer in ("服务范围 Service areas · 步行 walk from the point (5/15 min)", "起点 Start point", "街道 streets"):
        assert json.dumps(layer) in html, layer
    assert f"[{round(float(la), 6)}, {round(float(lo), 6)}]" in html  # the start point
    manifest = json.loads((tmp_path / "iso.lifecircle_manifest.json").read_text())
    assert set(manifest["files"]) == {"iso.gpkg", "iso.html"}
    assert main(["isochrone", "--lon", "121.4", "--lat", "31.2"]) == 2  # no network source
    assert main(["-q", "isochrone", "--example", "toy_town", "--lon", "121.6", "--lat", "31.3",
                 "--out", str(tmp_path / "far.gpkg")]) == 1
    assert not (tmp_path / "far.gpkg").exists()


def test_policy_indicator_command(tmp_path):
    """The README's standards example: tiers, urban vs rural and the ranked 街镇 are written."""
    out = tmp_path / "tiers"
    rc = main(["analyze", "--example", "toy_town", "--admin-level", "8", "--urban", "names",
               "--standard", "gb50180-2018", "--no-map", "--out", str(out)])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["standard"]["name"] == "gb50180-2018" and summary["parameters"]["standard"] == "gb50180-2018"
    tiers = pd.read_csv(out / "tiers.csv", encoding="utf-8-sig")
    assert set(tiers.tier_minutes.dropna()) == {5.0, 10.0, 15.0}
    assert "complete_life_circle" in set(tiers.type)
    ranking = pd.read_csv(out / "units_ranking.csv", encoding="utf-8-sig")
    assert ranking.unit.tolist() == ["城东街道", "城西街道"] and set(ranking.unit_type) == {"街道"}
    assert (out / "urban_rural.csv").is_file() and (out / "standard_decisions.csv").is_file()


def test_isochrone_method_option(tmp_path):
    """--isochrone-method exact|grid: the same service areas, the grid within its stated tolerance; by default
    (no --isochrones) they are written at every network size."""
    from lifecircle.present.isochrones import GRID_TOLERANCE

    areas = {}
    for method in ("grid", "exact"):
        out = tmp_path / method
        args = ["-q", "analyze", "--example", "toy_town", "--no-map", "--out", str(out)]
        assert main(args + (["--isochrone-method", method] if method == "exact" else [])) == 0
        iso = gpd.read_file(out / "isochrones.gpkg", layer="isochrones")
        areas[method] = float(iso[(iso.category == "culture") & (iso.minutes == 10)].area_km2.iloc[0])
    assert areas["grid"] == pytest.approx(areas["exact"], rel=GRID_TOLERANCE)
    assert areas["grid"] != areas["exact"]  # two methods indeed
    p = subprocess.run([sys.executable, "-m", "lifecircle", "analyze", "--example", "toy_town", "--isochrone-method",
                        "fast", "--out", str(tmp_path / "x")], capture_output=True, text=True)
    assert p.returncode == 2 and "'fast' is not one of 'grid', 'exact'" in p.stderr


@pytest.mark.parametrize("user_setting", [None, "4"])
def test_the_command_limits_malloc_arenas_unless_the_user_set_it(monkeypatch, user_setting):
    """The ``lifecircle`` command runs with one malloc heap (lifecircle._memory.limit_malloc_arenas), but the
    user's MALLOC_ARENA_MAX wins (glibc read it at start-up); main() from Python leaves malloc alone."""
    import lifecircle._memory as memory
    from lifecircle import cli

    calls = []
    monkeypatch.setattr(memory, "limit_malloc_arenas", lambda arenas=1: calls.append(arenas) or True)
    if user_setting is None:
        monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    else:
        monkeypatch.setenv("MALLOC_ARENA_MAX", user_setting)
    assert main(["--version"]) == 0
    assert calls == []
    monkeypatch.setattr(sys, "argv", ["lifecircle", "--version"])
    with pytest.raises(SystemExit) as done:
        cli.run()
    assert done.value.code == 0
    assert calls == ([1] if user_setting is None else [])
