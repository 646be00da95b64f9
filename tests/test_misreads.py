"""No silent misreads: encodings, Chinese web-map offsets, swapped lon/lat, duplicates (issue 12, section 3)."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import pytest
import shapely

from lifecircle.cli import main
from lifecircle.config import AnalysisConfig
from lifecircle.datasets import toy_town_osm
from lifecircle.errors import InputDataError, InputFileError
from lifecircle.pipeline import analyze
from lifecircle.read.crs import to_wgs84, wgs84_to_bd09, wgs84_to_gcj02
from lifecircle.read.files import read_geo, read_table
from lifecircle.read.population import residents_from_file
from lifecircle.read.units import units_from_file

BBOX = (121.4611262, 31.2196145, 121.4863121, 31.2411914)
HEALTH = AnalysisConfig(categories=("health", "sports"))


@pytest.fixture(scope="module")
def pop(tmp_path_factory):
    """Made-up residents on a 20 x 20 grid over the street sample (it has no buildings)."""
    gx, gy = np.meshgrid(np.linspace(BBOX[0], BBOX[2], 20), np.linspace(BBOX[1], BBOX[3], 20))
    f = tmp_path_factory.mktemp("pop") / "grid.csv"
    pd.DataFrame({"lon": gx.ravel(), "lat": gy.ravel(), "population": 100}).to_csv(f, index=False)
    return f


# ---------------------------------------------------------------- encodings


def test_utf8_with_gbk_rows_appended_is_an_error_naming_the_line(tmp_path):
    f = tmp_path / "list.csv"
    f.write_bytes("名称,category,lon,lat\n甲医院,health,121.47,31.23\n乙医院,health,121.48,31.23\n".encode("utf-8")
                  + "丙体育馆,sports,121.475,31.232\n".encode("gbk"))
    with pytest.raises(InputFileError) as e:
        read_table(f, what="facilities")
    msg = str(e.value)
    assert "list.csv" in msg and "line 4 is not" in msg and "UTF-8" in msg and msg.endswith("--encoding")
    # the same through the CLI: one line, exit 1
    assert main(["-q", "facilities", "--list", str(f), "--out", str(tmp_path / "f.gpkg")]) == 1


def test_gbk_with_utf8_rows_appended_is_an_error_naming_the_first_utf8_line(tmp_path):
    f = tmp_path / "gbk.csv"
    f.write_bytes("名称,lon,lat\n甲医院,121.47,31.23\n".encode("gbk") + "社区卫生服务中心,121.48,31.23\n".encode("utf-8"))
    with pytest.raises(InputFileError, match=r"gbk.csv mixes text encodings: line 1 is GBK but line 3 is UTF-8"):
        read_table(f)
    # a BOM promises UTF-8: a GBK line after it is the mix
    g = tmp_path / "bom.csv"
    g.write_bytes(b"\xef\xbb\xbfname,lon,lat\nA,1,2\n" + "乙,1,2\n".encode("gbk"))
    with pytest.raises(InputFileError, match=r"starts with a UTF-8 BOM but line 3 is not"):
        read_table(g)


def test_pure_gbk_and_utf8_bom_read_right(tmp_path):
    rows = "名称,类别,lon,lat\n城西社区卫生服务中心,卫生,121.47,31.23\n"
    (tmp_path / "gbk.csv").write_bytes(rows.encode("gbk"))
    (tmp_path / "bom.csv").write_bytes(rows.encode("utf-8-sig"))
    for name, enc in (("gbk.csv", "gb18030"), ("bom.csv", "utf-8-sig")):
        t = read_table(tmp_path / name)
        assert list(t.columns) == ["名称", "类别", "lon", "lat"] and t.attrs["encoding"] == enc
        assert t["名称"].iloc[0] == "城西社区卫生服务中心"


def test_mojibake_column_names_are_refused_and_values_warned(tmp_path):
    # UTF-8 bytes once decoded as GBK, then saved as UTF-8: '名称' becomes '鍚嶇О'
    (tmp_path / "a.csv").write_text("名称".encode().decode("gbk") + ",lon,lat\nx,121.47,31.23\n", encoding="utf-8")
    with pytest.raises(InputDataError, match="column name '鍚嶇О' is garbled .*it reads '名称'"):
        read_geo(tmp_path / "a.csv", what="facilities")
    # UTF-8 read as cp1252 and saved again: '中文' becomes 'ä¸\xadæ–‡'
    (tmp_path / "b.csv").write_text("中文".encode().decode("cp1252") + ",lon,lat\nx,121.47,31.23\n", encoding="utf-8")
    with pytest.raises(InputDataError, match="it reads '中文'"):
        read_table(tmp_path / "b.csv")
    # garbled values: warned (with the count), not refused
    bad = "黄浦区".encode("gbk").decode("latin-1")
    (tmp_path / "c.csv").write_text(f"name,lon,lat\n{bad},121.47,31.23\n{bad},121.48,31.23\nok,121.47,31.24\n",
                                    encoding="utf-8")
    g = read_geo(tmp_path / "c.csv")
    assert len(g.attrs["warnings"]) == 1 and "1 text values look garbled" in g.attrs["warnings"][0]
    assert "it reads '黄浦区'" in g.attrs["warnings"][0]


def test_latin1_file_is_not_read_as_chinese(tmp_path):
    f = tmp_path / "eu.csv"
    f.write_bytes("name,category,lon,lat\nMüller Klinik,health,121.47,31.23\n".encode("cp1252"))
    with pytest.raises(InputFileError, match="probably Latin-1/Windows-1252.*--encoding cp1252"):
        read_table(f)
    assert read_table(f, encoding="cp1252")["name"].iloc[0] == "Müller Klinik"


def _gbk_shapefile(path, names):
    """A shapefile written with GBK attributes, then stripped of its .cpg (as government data often come)."""
    polys = [shapely.box(121.462 + 0.006 * i, 31.222, 121.468 + 0.006 * i, 31.238) for i in range(len(names))]
    g = gpd.GeoDataFrame({"名称": names, "人口": [1000 * (i + 1) for i in range(len(names))]}, geometry=polys, crs=4326)
    g.to_file(path, engine="pyogrio", encoding="gbk")
    path.with_suffix(".cpg").unlink()
    assert open(path.with_suffix(".dbf"), "rb").read()[29] == 0  # no code page in the .dbf either


def test_gbk_shapefile_without_cpg_is_detected(tmp_path, caplog):
    shp = tmp_path / "units.shp"
    _gbk_shapefile(shp, ["黄浦区", "静安区"])
    # what GDAL alone makes of it: Latin-1 mojibake
    raw = gpd.read_file(shp, engine="pyogrio")
    assert "名称" not in raw.columns and raw.iloc[0, 0] == "黄浦区".encode("gbk").decode("latin-1")
    with caplog.at_level("INFO", logger="lifecircle"):
        u = units_from_file(shp)
    assert u["unit"].tolist() == ["黄浦区", "静安区"]
    assert u.attrs["encoding"] == "gb18030 (detected: no .cpg file)"
    assert any("read as gb18030" in r.getMessage() for r in caplog.records)
    # forcing the wrong encoding never gives garbled names silently
    from lifecircle.errors import LifecircleError

    with pytest.raises(LifecircleError, match="garbled|cannot be read as latin-1"):
        units_from_file(shp, encoding="latin-1")


def test_encoding_option_reaches_analyze(tmp_path, shanghai_pbf, pop):
    shp = tmp_path / "units.shp"
    _gbk_shapefile(shp, ["黄浦区", "静安区"])
    fac = tmp_path / "f.csv"
    fac.write_bytes("名称,category,lon,lat\n医院,health,121.4705,31.2301\n球场,sports,121.48,31.235\n".encode("gbk"))
    a = analyze(shanghai_pbf, population=pop, facilities=fac, units=shp, config=HEALTH, encoding="gb18030")
    assert sorted(a.units["unit"]) == ["静安区", "黄浦区"]
    assert a.summary["parameters"]["options"]["encoding"] == "gb18030"
    assert main(["-q", "analyze", "--osm", str(shanghai_pbf), "--facilities", str(fac), "--units", str(shp),
                 "--population", str(pop),
                 "--categories", "health,sports", "--encoding", "utf-8", "--out", str(tmp_path / "o")]) == 1


# ---------------------------------------------------------------- Chinese web-map coordinates


@pytest.fixture(scope="module")
def real_list(shanghai_facilities):
    """The real OSM health and sport points of the sample area (20), as a facility list."""
    f = shanghai_facilities[shanghai_facilities.category.isin(["health", "sport"])]
    return pd.DataFrame({"name": f["name"].to_numpy(), "category": f.category.replace({"sport": "sports"}).to_numpy(),
                         "lon": f.geometry.x.to_numpy(), "lat": f.geometry.y.to_numpy()})


def _capped_mean_dist(network, lon, lat, keep, cap_m=150.0):
    """Mean distance to the nearest street (shapely, not lifecircle's index), outside the network = cap."""
    to_m = pyproj.Transformer.from_crs(4326, network.crs, always_xy=True)
    x, y = to_m.transform(lon, lat)
    streets = shapely.multilinestrings([shapely.linestrings([[network.x[u], network.y[u]], [network.x[v], network.y[v]]])
                                        for u, v in zip(network.u, network.v)])
    hull = shapely.convex_hull(shapely.multipoints(np.column_stack([network.x, network.y])))
    pts = shapely.points(x, y)
    d = np.where(shapely.contains(hull, pts), np.minimum(shapely.distance(pts, streets), cap_m), cap_m)
    return float(d[keep].mean())


def test_gcj02_list_declared_wgs84_warns_loudly_with_numbers(tmp_path, shanghai_pbf, pop, shanghai_network, real_list):
    gcj = real_list.copy()
    gcj["lon"], gcj["lat"] = wgs84_to_gcj02(real_list.lon.to_numpy(), real_list.lat.to_numpy())
    gcj.to_csv(tmp_path / "gcj.csv", index=False)
    real_list.to_csv(tmp_path / "wgs.csv", index=False)
    a = analyze(shanghai_pbf, population=pop, facilities=tmp_path / "gcj.csv", config=HEALTH)
    check = a.summary["crs_checks"]["facilities"]
    assert check["verdict"] == "likely gcj02" and check["fix"] == "--facilities-crs gcj02"
    loud = [w for w in a.summary["warnings"] if w.startswith("LIKELY WRONG CRS")]
    assert len(loud) == 1 and loud[0].endswith("Fix: --facilities-crs gcj02")
    fit = check["signals"]["streets"]["gcj02"]
    # the numbers, again with shapely: the points counted are those with a position inside the network hull
    net = shanghai_network
    lon, lat = gcj.lon.to_numpy(), gcj.lat.to_numpy()
    hull = shapely.convex_hull(shapely.multipoints(np.column_stack([net.lon, net.lat])))
    keep = shapely.contains_xy(hull, lon, lat) | shapely.contains_xy(hull, real_list.lon.to_numpy(), real_list.lat.to_numpy())
    assert fit["points"] == int(keep.sum())
    assert fit["mean_dist_given_m"] == pytest.approx(_capped_mean_dist(net, lon, lat, keep), abs=0.6)
    assert fit["mean_dist_alt_m"] == pytest.approx(
        _capped_mean_dist(net, real_list.lon.to_numpy(), real_list.lat.to_numpy(), keep), abs=0.6)
    # the GCJ-02 offset in Shanghai: about +0.0045° lon / -0.002° lat, i.e. ~430 m east, ~215 m south
    assert fit["offset_m"][0] == pytest.approx(-0.00453 * 111320 * np.cos(np.radians(31.23)), abs=15)
    assert fit["offset_m"][1] == pytest.approx(0.00193 * 110900, abs=15)
    assert np.hypot(fit["best_shift_m"][0] - fit["offset_m"][0], fit["best_shift_m"][1] - fit["offset_m"][1]) <= 150
    # false-positive check: the true WGS84 list on the same network says nothing
    b = analyze(shanghai_pbf, population=pop, facilities=tmp_path / "wgs.csv", config=HEALTH)
    assert b.summary["crs_checks"]["facilities"]["verdict"] == "ok"
    assert not any("CRS" in w for w in b.summary["warnings"])
    # declared right, the GCJ list gives the WGS84 shares and no warning
    c = analyze(shanghai_pbf, population=pop, facilities=tmp_path / "gcj.csv", facilities_crs="gcj02", config=HEALTH)
    assert c.summary["crs_checks"]["facilities"]["verdict"] == "ok"
    for cat in ("health", "sports"):
        assert c.category_share(cat) == pytest.approx(b.category_share(cat), abs=1e-9)


def test_datav_districts_declared_wgs84_warn_declared_gcj02_do_not(shared, shanghai_pbf, pop, tmp_path, real_list):
    datav = shared / "shanghai_districts_datav_v3_gcj02.geojson"
    real_list.to_csv(tmp_path / "f.csv", index=False)
    a = analyze(shanghai_pbf, population=pop, units=datav, config=HEALTH, facilities=tmp_path / "f.csv")
    check = a.summary["crs_checks"]["units"]
    assert check["verdict"] == "likely gcj02" and check["fix"] == "--units-crs gcj02"
    assert any("DataV.GeoAtlas" in s for s in check["signals"]["columns"])
    # the borders near the streets: closer to them after gcj -> wgs
    fit = check["signals"]["streets"]["gcj02"]
    assert fit["mean_dist_alt_m"] < 0.5 * fit["mean_dist_given_m"]
    b = analyze(shanghai_pbf, population=pop, units=datav, units_crs="gcj02", config=HEALTH,
                facilities=tmp_path / "f.csv")
    assert b.summary["crs_checks"]["units"]["verdict"] == "ok"
    assert not any("CRS" in w for w in b.summary["warnings"])
    # the CLI prints it and keeps it in summary.json
    assert main(["-q", "analyze", "--osm", str(shanghai_pbf), "--units", str(datav), "--categories", "health,sports",
                 "--population", str(pop), "--facilities", str(tmp_path / "f.csv"),
                 "--no-map", "--out", str(tmp_path / "o")]) == 0
    s = json.loads((tmp_path / "o" / "summary.json").read_text(encoding="utf-8"))
    assert s["crs_checks"]["units"]["fix"] == "--units-crs gcj02"
    assert any(w.startswith("LIKELY WRONG CRS: units shanghai_districts") for w in s["warnings"])


def test_column_names_from_amap_exports_are_strong_evidence(tmp_path, shanghai_pbf, pop, real_list):
    few = real_list.groupby("category").head(2).copy()  # too few points for the streets to tell
    few["gcj_lng"], few["gcj_lat"] = wgs84_to_gcj02(few.lon.to_numpy(), few.lat.to_numpy())
    few.drop(columns=["lon", "lat"]).to_csv(tmp_path / "amap.csv", index=False)
    a = analyze(shanghai_pbf, population=pop, facilities=tmp_path / "amap.csv", config=HEALTH)
    check = a.summary["crs_checks"]["facilities"]
    assert check["verdict"] == "likely gcj02"
    assert "'gcj_lng'/'gcj_lat' are named as GCJ-02" in check["signals"]["columns"][0]
    # a Baidu source column
    bd = real_list.groupby("category").head(2).copy()
    bd["lon"], bd["lat"] = wgs84_to_bd09(bd.lon.to_numpy(), bd.lat.to_numpy())
    bd["来源"] = "百度地图"
    bd.to_csv(tmp_path / "bd.csv", index=False)
    b = analyze(shanghai_pbf, population=pop, facilities=tmp_path / "bd.csv", config=HEALTH)
    assert b.summary["crs_checks"]["facilities"]["fix"] == "--facilities-crs bd09"


def test_list_offset_from_the_osm_facilities_it_names(tmp_path):
    """Toy town: its own OSM facilities, listed again by name but in GCJ-02, sit one offset away."""
    from lifecircle.read.facilities import facilities_from_osm

    osm = facilities_from_osm(toy_town_osm())
    named = osm[osm["name"].notna()]
    lon, lat = wgs84_to_gcj02(named.geometry.x.to_numpy(), named.geometry.y.to_numpy())
    pd.DataFrame({"name": named["name"].to_numpy(), "category": named["category"].to_numpy(), "lon": lon,
                  "lat": lat}).to_csv(tmp_path / "gcj.csv", index=False)
    a = analyze(toy_town_osm(), facilities=tmp_path / "gcj.csv")
    m = a.summary["crs_checks"]["facilities"]["signals"]["osm_match"]["gcj02"]
    assert m["pairs"] == len(named) and m["for_alt"] == "strong"
    utm = pyproj.Transformer.from_crs(4326, 32651, always_xy=True)
    x0, y0 = utm.transform(named.geometry.x.to_numpy(), named.geometry.y.to_numpy())
    x1, y1 = utm.transform(lon, lat)
    assert m["median_shift_m"][0] == pytest.approx(np.median(x1 - x0), abs=2)
    assert m["median_shift_m"][1] == pytest.approx(np.median(y1 - y0), abs=2)
    assert a.summary["crs_checks"]["facilities"]["verdict"] == "likely gcj02"


# ---------------------------------------------------------------- swapped lon/lat


def test_swapped_columns_are_reported_in_every_command(tmp_path, shanghai_pbf, pop, real_list):
    sw = real_list.groupby("category").head(3).rename(columns={"lon": "lat", "lat": "lon"})
    sw.to_csv(tmp_path / "sw.csv", index=False)
    ppl = pd.DataFrame({"lng": real_list.lat.head(5), "lat": real_list.lon.head(5), "population": 100})
    ppl.to_csv(tmp_path / "pop.csv", index=False)
    out = tmp_path / "o"
    base = ["-q", "analyze", "--osm", str(shanghai_pbf), "--categories", "health,sports", "--population", str(pop)]
    for args, name in ((base + ["--facilities", str(tmp_path / "sw.csv")], "sw.csv"),
                       (base[:-2] + ["--population", str(tmp_path / "pop.csv")], "pop.csv"),
                       (["-q", "facilities", "--list", str(tmp_path / "sw.csv"), "--out", str(tmp_path / "f.gpkg")], "sw.csv")):
        with pytest.raises(InputDataError, match=rf"{name}: longitude and latitude look swapped.*--lon-column"):
            main_raising(args + ["--out", str(out)] if args[1] == "analyze" else args)
    # the fix the message gives works (--lon-column/--lat-column name the columns of every CSV input)
    pd.read_csv(pop).rename(columns={"lon": "lat", "lat": "lon"}).to_csv(tmp_path / "pop_sw.csv", index=False)
    assert main(base[:-2] + ["--population", str(tmp_path / "pop_sw.csv"), "--facilities", str(tmp_path / "sw.csv"),
                             "--lon-column", "lat", "--lat-column", "lon", "--no-map", "--out", str(out)]) == 0
    # gaps --candidates, scenario --add/--remove on the finished folder
    for args in (["gaps", str(out), "--candidates", str(tmp_path / "sw.csv"), "--no-map"],
                 ["scenario", str(out), "--add", str(tmp_path / "sw.csv")],
                 ["scenario", str(out), "--remove", str(tmp_path / "sw.csv")]):
        with pytest.raises(InputDataError, match="sw.csv: longitude and latitude look swapped"):
            main_raising(["-q", *args])
    assert main(["-q", "scenario", str(out), "--add", str(tmp_path / "sw.csv"), "--lon-column", "lat",
                 "--lat-column", "lon", "--out", str(tmp_path / "s")]) == 0
    # isochrone --lon/--lat given swapped
    assert main(["-q", "isochrone", "--osm", str(shanghai_pbf), "--lon", "31.23", "--lat", "121.47",
                 "--out", str(tmp_path / "i.gpkg")]) == 2
    assert not (tmp_path / "i.gpkg").exists()


def main_raising(argv):
    """Run the CLI and re-raise the LifecircleError it turned into one line (to read its message)."""
    import logging

    from lifecircle.cli import cli

    log = logging.getLogger("lifecircle")
    saved = (log.handlers[:], log.level, log.propagate)
    try:
        cli.main(args=argv, prog_name="lifecircle", standalone_mode=False)
    finally:  # as cli.main() does: leave the logger as it was
        log.handlers[:], log.level, log.propagate = saved


def test_swapped_outside_china_caught_against_the_network(tmp_path):
    """Helsinki (lon 24.9, lat 60.2): swapped values are valid lon/lat, only the streets tell."""
    from lifecircle.datasets import helsinki_osm

    pd.DataFrame({"lon": [60.1699, 60.1710], "lat": [24.9384, 24.9410], "population": [100, 50]}).to_csv(
        tmp_path / "p.csv", index=False)
    with pytest.raises(InputDataError, match=r"p.csv: longitude and latitude look swapped: \(60.1699, 24.9384\) is far"):
        analyze(helsinki_osm(), population=tmp_path / "p.csv", config=AnalysisConfig(categories=("health",)))
    with pytest.raises(InputDataError, match="use --lon 24.94 --lat 60.17"):
        main_raising(["-q", "isochrone", "--example", "helsinki", "--lon", "60.17", "--lat", "24.94",
                      "--out", str(tmp_path / "i.gpkg")])


# ---------------------------------------------------------------- duplicates, names, invalid polygons


def test_duplicated_resident_rows_are_warned_with_counts(tmp_path, shanghai_pbf):
    rng = np.random.default_rng(3)
    p = pd.DataFrame({"lon": rng.uniform(BBOX[0], BBOX[2], 50), "lat": rng.uniform(BBOX[1], BBOX[3], 50),
                      "population": rng.integers(10, 200, 50)})
    dup = pd.concat([p, p.iloc[[4, 4, 9]]], ignore_index=True)  # rows 51, 52 copy row 5; row 53 copies row 10
    dup.loc[len(dup)] = [p.lon[0], p.lat[0], p.population[0] + 1]  # same place, other count: not a copy
    dup.to_csv(tmp_path / "p.csv", index=False)
    r = residents_from_file(tmp_path / "p.csv")
    people = int(2 * p.population[4] + p.population[9])
    (w,) = r.attrs["warnings"]
    assert "3 rows repeat another row exactly" in w and f"{people:,} people" in w and "line 52 = line 6" in w
    pd.DataFrame({"category": ["health", "sports"], "lon": [121.4705, 121.48], "lat": [31.2301, 31.235]}).to_csv(
        tmp_path / "f.csv", index=False)
    a = analyze(shanghai_pbf, population=tmp_path / "p.csv", config=HEALTH, facilities=tmp_path / "f.csv")
    assert w in a.summary["warnings"] and a.summary["warnings"].count(w) == 1


def test_unit_names_duplicated_or_missing_are_refused(tmp_path):
    boxes = [shapely.box(121.46 + 0.01 * i, 31.22, 121.47 + 0.01 * i, 31.23) for i in range(4)]
    f = tmp_path / "u.geojson"
    gpd.GeoDataFrame({"name": ["甲", "乙", "甲", "丙"], "code": ["1", "2", "3", "4"]}, geometry=boxes, crs=4326).to_file(f)
    with pytest.raises(InputDataError, match=r"2 units share a name in column 'name' \('甲' at features 1, 3\).*"
                                             r"--unit-name \(columns: code\)"):
        units_from_file(f)
    assert units_from_file(f, name_column="code")["unit"].tolist() == ["1", "2", "3", "4"]
    g = tmp_path / "v.geojson"
    gpd.GeoDataFrame({"name": ["甲", None, "丙", ""]}, geometry=boxes, crs=4326).to_file(g)
    with pytest.raises(InputDataError, match=r"2 units have no name in column 'name' \(features 2, 4\)"):
        units_from_file(g)


def test_invalid_polygons_are_repaired_and_counted(tmp_path):
    bowtie = shapely.Polygon([(121.46, 31.22), (121.48, 31.24), (121.48, 31.22), (121.46, 31.24)])
    ok = shapely.box(121.50, 31.22, 121.51, 31.23)
    f = tmp_path / "u.geojson"
    gpd.GeoDataFrame({"name": ["bow", "box"]}, geometry=[bowtie, ok], crs=4326).to_file(f)
    u = units_from_file(f)
    assert u.geometry.is_valid.all()
    (w,) = u.attrs["warnings"]
    assert "1 invalid polygons (first: feature 1, Self-intersection" in w
    # the two triangles of the bow-tie: 2 x (0.02 x 0.01 / 2) square degrees
    assert u.geometry.iloc[0].area == pytest.approx(2 * 0.02 * 0.01 / 2, rel=1e-9)
