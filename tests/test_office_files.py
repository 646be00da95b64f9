"""Files that open in QGIS and Excel (issue 16): styled EPSG:4326 layers, shares in units.gpkg, CSVs with a
BOM, each vector extension in its format, the user's names carried through, and one CLI grammar."""

from __future__ import annotations

import csv
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely

from lifecircle.cli import main
from lifecircle.config import share_column
from lifecircle.read.crs import wgs84_to_gcj02

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory) -> Path:
    """The toy town with its two 街道 as units and a site plan: every kind of output."""
    out = tmp_path_factory.mktemp("office") / "toy"
    assert main(["-q", "analyze", "--example", "toy_town", "--admin-level", "8", "--sites", "--facility-isochrones",
                 "--out-crs", "gcj02", "--no-png", "--out", str(out)]) == 0
    return out


def _styles(path: Path) -> dict[str, str]:
    with sqlite3.connect(path) as con:
        return dict(con.execute("SELECT f_table_name, styleQML FROM layer_styles WHERE useAsDefault"))


#: the field each layer's style colours by (the HTML map's classes)
STYLED_BY = {"residents": "minutes_to_all", "facilities": "category", "gaps": "population",
             "isochrones": "category", "facility_isochrones": "category", "units": "share_all_15min",
             "sites": "category"}


def test_every_vector_output_is_epsg4326_with_a_qml_naming_the_fields_it_styles(toy_run):
    gpkgs = sorted(toy_run.glob("*.gpkg"))
    assert {p.name for p in gpkgs} >= {"residents.gpkg", "facilities.gpkg", "gaps.gpkg", "isochrones.gpkg",
                                       "facility_isochrones.gpkg", "units.gpkg", "suggested_sites.gpkg"}
    for p in gpkgs:
        layers = pyogrio.list_layers(p)
        spatial = [name for name, kind in layers if kind is not None]
        assert len(spatial) == 1, (p.name, layers)  # one layer per file, plus the styles table
        assert "layer_styles" in layers[:, 0], p.name
        info = pyogrio.read_info(p, layer=spatial[0])
        assert info["crs"] == "EPSG:4326" and info["driver"] == "GPKG", p.name
        style = _styles(p)[spatial[0]]
        field = STYLED_BY[spatial[0]]
        assert f"&quot;{field}&quot;" in style and field in info["fields"], (p.name, field)
        assert 'type="RuleRenderer"' in style
    # the colours are the map's: health red, the share classes vs 85 %
    assert "214,39,40" in _styles(toy_run / "facilities.gpkg")["facilities"]  # #d62728
    units = _styles(toy_run / "units.gpkg")["units"]
    assert "26,152,80" in units and "253,174,97" in units and "0.849999" in units  # ≥ 85 %, 70–85 %


def test_units_gpkg_carries_the_shares_of_coverage_csv(toy_run):
    units = gpd.read_file(toy_run / "units.gpkg", layer="units")
    cov = pd.read_csv(toy_run / "coverage.csv", encoding="utf-8-sig")
    cov = cov[cov.unit != "study_area"]
    assert len(cov) and set(cov.unit) <= set(units.unit)
    checked = 0
    for r in cov.itertuples():
        row = units[units.unit == r.unit].iloc[0]
        assert row[share_column(r.category, r.minutes)] == pytest.approx(r.share, abs=1e-6)
        checked += 1
        if r.category == "all" and r.minutes == 15:
            assert row["population"] == pytest.approx(r.population, abs=1e-3)
            assert row["population_to_cover"] == pytest.approx(r.population_to_cover, abs=1e-3)
    assert checked == 2 * 5 * 3  # two 街道 × (4 categories + all) × 5/10/15 min


def test_isochrones_are_one_layer_and_the_per_category_form_stays_an_option(toy_run, tmp_path):
    one = gpd.read_file(toy_run / "isochrones.gpkg", layer="isochrones")
    cats = ("health", "elderly_care", "culture", "sports")
    assert sorted(zip(one.category, one.minutes)) == sorted((c, m) for c in cats for m in (5.0, 10.0, 15.0))
    out = tmp_path / "per"
    assert main(["-q", "analyze", "--example", "toy_town", "--isochrone-layers", "per-category", "--no-map",
                 "--out", str(out)]) == 0
    layers = [n for n, kind in pyogrio.list_layers(out / "isochrones.gpkg") if kind is not None]
    assert sorted(layers) == sorted(f"{c}_{m}min" for c in cats for m in (5, 10, 15))
    assert set(_styles(out / "isochrones.gpkg")) == set(layers)
    same = gpd.read_file(out / "isochrones.gpkg", layer="health_15min")
    ref = one[(one.category == "health") & (one.minutes == 15)]
    assert same.area_km2.iloc[0] == pytest.approx(ref.area_km2.iloc[0], rel=1e-12)
    assert main(["-q", "map", str(out), "--no-png"]) == 0  # the map reads both forms
    assert "服务范围 Service areas" in (out / "map.html").read_text(encoding="utf-8")


def test_every_csv_starts_with_a_bom_and_round_trips(toy_run, tmp_path):
    csvs = sorted(toy_run.glob("*.csv"))
    assert len(csvs) >= 6
    for p in csvs:
        raw = p.read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf"), p.name
        with open(p, encoding="utf-8-sig", newline="") as fh:
            header = next(csv.reader(fh))
        assert not header[0].startswith("\ufeff")
        back = pd.read_csv(p, encoding="utf-8-sig")
        assert list(back.columns) == header
    from lifecircle.present.outputs import read_table_back, write_table

    df = pd.DataFrame({"小区名称": ["康乐小区", "=锦绣苑"], "人口": [1200, 80]})
    p = write_table(df, tmp_path / "t.csv")
    assert p.read_bytes()[:3] == b"\xef\xbb\xbf" and "康乐小区" in p.read_bytes()[3:].decode("utf-8")
    back = read_table_back(p)
    assert list(back.columns) == ["小区名称", "人口"] and back.values.tolist() == df.values.tolist()


@pytest.mark.parametrize("ext, driver", [(".gpkg", "GPKG"), (".geojson", "GeoJSON"), (".shp", "ESRI Shapefile"),
                                         (".fgb", "FlatGeobuf"), (".parquet", "Parquet")])
def test_each_vector_extension_is_written_in_its_format(tmp_path, ext, driver):
    out = tmp_path / f"iso{ext}"
    assert main(["-q", "isochrone", "--example", "toy_town", "--lon", "121.4", "--lat", "31.2", "--minutes", "5,10",
                 "--out", str(out)]) == 0
    if driver == "Parquet":
        import pyarrow.parquet as pq

        meta = json.loads(pq.read_schema(out).metadata[b"geo"])  # GeoParquet
        assert meta["primary_column"] == "geometry"
        back = gpd.read_parquet(out)
    else:
        info = pyogrio.read_info(out, layer="iso")
        assert info["driver"] == driver and info["crs"] == "EPSG:4326"
        back = gpd.read_file(out, layer="iso")
    assert back.crs.to_epsg() == 4326 and sorted(back.minutes) == [5.0, 10.0]
    if ext == ".gpkg":
        assert "&quot;minutes&quot;" in _styles(out)["iso"]
    else:  # QGIS loads the style beside the file as its default
        assert "&quot;minutes&quot;" in out.with_suffix(".qml").read_text(encoding="utf-8")
    manifest = json.loads((tmp_path / "iso.lifecircle_manifest.json").read_text(encoding="utf-8"))
    assert set(manifest["files"]) == {p.name for p in tmp_path.iterdir() if p.name != manifest["output"]
                                      and not p.name.endswith("manifest.json")}


def test_facilities_out_geojson_and_an_unknown_extension(tmp_path, capsys):
    from lifecircle.datasets import toy_town_osm

    out = tmp_path / "fac.geojson"
    assert main(["-q", "facilities", "--osm", str(toy_town_osm()), "--out", str(out)]) == 0
    assert pyogrio.read_info(out)["driver"] == "GeoJSON" and (tmp_path / "fac_counts.csv").is_file()
    assert capsys.readouterr().out == ""  # -q: no tables
    for args in (["facilities", "--osm", str(toy_town_osm()), "--out", str(tmp_path / "fac.kml")],
                 ["isochrone", "--example", "toy_town", "--lon", "121.4", "--lat", "31.2", "-o", str(tmp_path / "iso")]):
        assert main(args) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "cannot write" in err[0] and ".geojson" in err[0], err
    assert not (tmp_path / "fac.kml").exists() and not (tmp_path / "iso").exists()


def test_out_crs_gcj02_copies_are_the_converted_points(toy_run):
    for stem, layer in (("residents", "residents"), ("facilities", "facilities"), ("suggested_sites", "sites")):
        wgs = gpd.read_file(toy_run / f"{stem}.gpkg", layer=layer)
        gcj = gpd.read_file(toy_run / f"{stem}_gcj02.gpkg", layer=layer)
        lon, lat = wgs84_to_gcj02(wgs.geometry.x.to_numpy(), wgs.geometry.y.to_numpy())
        assert np.allclose(gcj.geometry.x, lon, atol=1e-9) and np.allclose(gcj.geometry.y, lat, atol=1e-9)
        assert np.allclose(gcj.lon_gcj02, lon, atol=1e-7)
        # Shanghai's offset is about +0.0045° lon, -0.002° lat: the copy really moved
        assert 0.003 < float(np.median(gcj.geometry.x - wgs.geometry.x)) < 0.006
    manifest = json.loads((toy_run / "lifecircle_manifest.json").read_text(encoding="utf-8"))
    assert {"residents_gcj02.gpkg", "facilities_gcj02.gpkg", "suggested_sites_gcj02.gpkg"} <= set(manifest["files"])


def test_scenario_facilities_are_styled_too(toy_run, tmp_path):
    out = tmp_path / "scen"
    assert main(["-q", "scenario", str(toy_run), "--add", str(toy_run / "suggested_sites.csv"), "-o", str(out)]) == 0
    info = pyogrio.read_info(out / "scenario_facilities.gpkg", layer="facilities")
    assert info["crs"] == "EPSG:4326" and "&quot;category&quot;" in _styles(out / "scenario_facilities.gpkg")["facilities"]


def test_a_gaps_run_without_out_crs_removes_the_stale_site_copy(toy_run, tmp_path):
    d = tmp_path / "copy"
    shutil.copytree(toy_run, d)  # summary.json's inputs are absolute paths: the copy reruns the same analysis
    assert main(["-q", "gaps", str(d), "--categories", "卫生", "-k", "1", "--no-map"]) == 0
    assert not (d / "suggested_sites_gcj02.gpkg").exists()
    assert (d / "residents_gcj02.gpkg").exists()  # the analysis' copies stay


# ---------------------------------------------------------------------------- names carried through

@pytest.fixture(scope="module")
def named_run(tmp_path_factory, toy_run):
    """Residents with 小区名称/地址 (the toy town's own homes), candidates with 地块名称 in GCJ-02."""
    d = tmp_path_factory.mktemp("named")
    homes = gpd.read_file(toy_run / "residents.gpkg", layer="residents")
    pop = pd.DataFrame({"小区名称": [f"小区{i}" for i in range(len(homes))], "地址": [f"路{i}号" for i in range(len(homes))],
                        "lng": homes.geometry.x.round(7), "lat": homes.geometry.y.round(7),
                        "人口": homes.population.round(1)})
    pop.to_csv(d / "pop.csv", index=False, encoding="utf-8")
    glon, glat = wgs84_to_gcj02(homes.geometry.x.to_numpy(), homes.geometry.y.to_numpy())
    cand = pd.DataFrame({"地块名称": [f"地块{chr(65 + i)}" for i in range(len(homes))], "编号": range(101, 101 + len(homes)),
                         "lng": np.round(glon, 7), "lat": np.round(glat, 7)})
    cand.to_csv(d / "cand.csv", index=False, encoding="utf-8")
    out = d / "out"
    assert main(["-q", "analyze", "--example", "toy_town", "--population", str(d / "pop.csv"), "--no-map",
                 "--out", str(out)]) == 0
    assert main(["-q", "gaps", str(out), "--categories", "health", "-k", "1", "--candidates", str(d / "cand.csv"),
                 "--candidates-crs", "amap", "--no-map"]) == 0
    return out, pop, cand


def test_residents_keep_their_own_columns(named_run):
    out, pop, _ = named_run
    res = gpd.read_file(out / "residents.gpkg", layer="residents")
    assert res["小区名称"].tolist() == pop["小区名称"].tolist() and res["地址"].tolist() == pop["地址"].tolist()
    assert "人口" not in res and "lng" not in res  # now population and the geometry


def test_gaps_are_named_by_their_largest_named_resident(named_run):
    out, pop, _ = named_run
    res = gpd.read_file(out / "residents.gpkg", layer="residents")
    gaps = gpd.read_file(out / "gaps.gpkg", layer="gaps")
    assert len(gaps) and "resident_index" not in gaps
    for g in gaps.itertuples():  # independently: the uncovered homes inside the gap's cells, most people first
        inside = res[(res[f"minutes_to_{g.category}"].fillna(np.inf) > g.minutes)
                     & shapely.contains_xy(g.geometry, res.geometry.x, res.geometry.y)]
        assert len(inside) == g.residents
        assert g.largest_name == inside.sort_values("population", ascending=False, kind="stable")["小区名称"].iloc[0]


def test_suggested_sites_carry_the_candidates_columns_and_input_coordinates(named_run):
    out, _, cand = named_run
    sites = pd.read_csv(out / "suggested_sites.csv", encoding="utf-8-sig")
    assert len(sites) == 1 and "node" not in sites and "candidate" not in sites and "snap_dist_m" in sites
    row = cand[cand["地块名称"] == sites["地块名称"].iloc[0]].iloc[0]
    assert sites["编号"].iloc[0] == row["编号"] and sites["input_crs"].iloc[0] == "GCJ02"
    assert sites["lon_input"].iloc[0] == pytest.approx(row["lng"], abs=1e-8)
    assert sites["lat_input"].iloc[0] == pytest.approx(row["lat"], abs=1e-8)
    gpkg = gpd.read_file(out / "suggested_sites.gpkg", layer="sites")
    assert gpkg["地块名称"].iloc[0] == row["地块名称"] and "node" not in gpkg
    # and the WGS84 lon/lat are the candidate converted back (the home it was made from)
    assert abs(sites["lon"].iloc[0] - row["lng"]) > 0.003


# ---------------------------------------------------------------------------- one CLI grammar

def test_quiet_and_verbose_after_the_command(tmp_path, capsys):
    assert main(["analyze", "-q", "--example", "toy_town", "--no-map", "--out", str(tmp_path / "a")]) == 0
    cap = capsys.readouterr()
    assert cap.out == "" and cap.err == ""
    assert main(["analyze", "--example", "toy_town", "--no-map", "--out", str(tmp_path / "b")]) == 0
    err = capsys.readouterr().err.splitlines()
    steps = [line.split()[0] for line in err if line.startswith("[")]
    total = int(steps[0].split("/")[1])
    assert total >= 6 and steps == [f"[{i}/{total}" for i in range(1, total + 1)]  # the count reaches its end
    assert main(["isochrone", "-v", "--example", "toy_town", "--lon", "121.4", "--lat", "31.2",
                 "-o", str(tmp_path / "i.gpkg")]) == 0
    assert "lifecircle: INFO:" in capsys.readouterr().err


def test_categories_in_chinese_and_aliases(tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["-q", "analyze", "--example", "toy_town", "--categories", "卫生，文化", "--no-map",
                 "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["parameters"]["categories"] == ["health", "culture"]
    assert main(["-q", "gaps", str(out), "--categories", "医疗", "-k", "1", "--no-map"]) == 0
    assert set(pd.read_csv(out / "suggested_sites.csv", encoding="utf-8-sig").category) == {"health"}
    assert main(["-q", "analyze", "--example", "toy_town", "--categories", "卫生,schools", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown schools" in err[0] and "卫生" in err[0]


def test_isochrone_crs_takes_gcj02_and_epsg_codes(tmp_path):
    import pyproj

    lon, lat = 121.4, 31.2
    assert main(["-q", "isochrone", "--example", "toy_town", "--lon", str(lon), "--lat", str(lat),
                 "-o", str(tmp_path / "w.gpkg")]) == 0
    ref = gpd.read_file(tmp_path / "w.gpkg", layer="w").sort_values("minutes").area_km2.to_numpy()
    glon, glat = wgs84_to_gcj02(lon, lat)
    x, y = pyproj.Transformer.from_crs(4326, 32651, always_xy=True).transform(lon, lat)
    for i, (crs, a, b) in enumerate((("gcj02", glon, glat), ("gaode", glon, glat), ("32651", x, y),
                                     ("EPSG:32651", x, y))):
        out = tmp_path / f"p{i}.gpkg"
        assert main(["-q", "isochrone", "--example", "toy_town", "--lon", repr(float(a)), "--lat", repr(float(b)),
                     "--crs", crs, "-o", str(out)]) == 0, crs
        got = gpd.read_file(out, layer=out.stem).sort_values("minutes").area_km2.to_numpy()
        assert np.allclose(got, ref, rtol=1e-6), crs


def test_help_is_fast_and_imports_no_heavy_library():
    code = ("import sys\nfrom lifecircle.cli import main\nrc = main(['--help'])\n"
            "for c in ('analyze', 'gaps', 'isochrone', 'facilities', 'map', 'scenario', 'batch'):\n"
            "    rc += main([c, '--help'])\n"
            "heavy = ('geopandas', 'shapely', 'scipy', 'pandas', 'numpy', 'folium', 'matplotlib', 'osmium', 'pyproj')\n"
            "print(rc, sorted(m for m in heavy if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "0 []"


def _qgis_python() -> str | None:
    """A Python that imports QGIS (Debian's python3-qgis lives in the system Python), or None."""
    for exe in ("/usr/bin/python3", shutil.which("python3")):
        if exe and Path(exe).is_file() and subprocess.run(
                [exe, "-c", "import qgis.core"], capture_output=True,
                env={**os.environ, "QT_QPA_PLATFORM": "offscreen"}).returncode == 0:
            return exe
    return None


QGIS_PYTHON = _qgis_python()


@pytest.mark.skipif(QGIS_PYTHON is None, reason="QGIS (python3-qgis) is not installed")
def test_qgis_opens_every_layer_with_its_colours(toy_run):
    """Real QGIS reads the layer_styles table: every layer opens with the rule-based renderer and its colours."""
    script = (
        "import sys, sqlite3\n"
        "from qgis.core import QgsApplication, QgsVectorLayer\n"
        "app = QgsApplication([], False); app.initQgis()\n"
        "for f in sys.argv[1:]:\n"
        "    for (l,) in sqlite3.connect(f).execute(\"SELECT table_name FROM gpkg_contents WHERE data_type='features'\"):\n"
        "        vl = QgsVectorLayer(f + '|layername=' + l, l, 'ogr')\n"
        "        r = vl.renderer()\n"
        "        rules = [c.symbol().color().name() for c in r.rootRule().children()] if r.type() == 'RuleRenderer' else []\n"
        "        print(l, vl.isValid(), vl.crs().authid(), r.type(), ','.join(rules))\n"
    )
    files = [str(p) for p in sorted(toy_run.glob("*.gpkg")) if "_gcj02" not in p.name]
    r = subprocess.run([QGIS_PYTHON, "-c", script, *files], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    rows = {line.split()[0]: line.split() for line in r.stdout.splitlines() if line.strip()}
    assert set(rows) == set(STYLED_BY), r.stdout + r.stderr
    for layer, (name, valid, crs, renderer, *colours) in rows.items():
        assert valid == "True" and crs == "EPSG:4326" and renderer == "RuleRenderer", rows[layer]
    assert "#d62728" in rows["facilities"][4] and "#1a9850" in rows["units"][4]  # health red; meets the target


def _stderr_on_a_terminal(args: list[str]) -> str:
    """Run the CLI with stderr on a pseudo-terminal (120 columns); what it wrote there."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    p = subprocess.Popen([sys.executable, "-m", "lifecircle", *args], stdout=subprocess.DEVNULL, stderr=slave,
                         cwd=REPO)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    assert p.wait(timeout=120) == 0
    os.close(master)
    return b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_progress_bar_on_a_terminal_reaches_its_end_and_q_silences_it(tmp_path):
    text = _stderr_on_a_terminal(["analyze", "--example", "toy_town", "--no-png", "--out", str(tmp_path / "a")])
    frames = [f for f in text.split("\r") if "] " in f]
    first = next(f for f in frames if f.startswith("reading the walking network [1/"))
    total = int(first.split("[1/")[1].split("]")[0])
    # the map starts before the gap and service areas are drawn (they come last in it), and the files are written
    assert any(f.startswith(f"drawing the map [{total - 2}/{total}]") for f in frames), frames
    assert any(f.startswith(f"writing {tmp_path / 'a'} [{total - 1}/{total}]") for f in frames), frames
    assert any(f.startswith(f"writing results.xlsx and the report [{total}/{total}]") for f in frames), frames
    assert f"[1/{total} " not in text  # a bar, not the log lines written off a terminal
    quiet = _stderr_on_a_terminal(["analyze", "-q", "--example", "toy_town", "--no-map", "--out", str(tmp_path / "b")])
    assert quiet.strip() == ""


def test_xlsx_writer_cells_formats_panes_and_filters():
    """lifecircle.present.xlsx: every kind of value comes back as written (openpyxl reads it), text that
    looks like a formula stays text, characters XML cannot hold are dropped, and the same sheets give the
    same bytes."""
    import io

    import openpyxl

    from lifecircle.present.xlsx import Sheet, column_letter, xlsx_bytes

    cols = [["a", "=SUM(A1)", "bell\x07 & <tag>", None], [0.5, 1e-12, None, 123456789.0], [True, False, None, True],
            [1, -2, 3, 2**40], ["inf", "nan", "x", "y"]]
    sheets = [Sheet("单元 'one'", ["名称", "覆盖率", "达标", "人口", "t"], cols, formats=[None, "0.0%", None, "#,##0"],
                    widths=[10, 8, 6, 9, 4], freeze="C2"),
              Sheet("empty", ["only"], [[]], freeze=None, autofilter=False)]
    data = xlsx_bytes(sheets, date="2026-11-30")
    assert data == xlsx_bytes(sheets, date="2026-11-30")
    wb = openpyxl.load_workbook(io.BytesIO(data))
    ws = wb["单元 'one'"]
    got = [[c.value for c in row] for row in ws.iter_rows(min_row=2)]
    assert got == [["a", 0.5, True, 1, "inf"], ["=SUM(A1)", 1e-12, False, -2, "nan"],
                   ["bell & <tag>", None, None, 3, "x"], [None, 123456789.0, True, 2**40, "y"]]
    assert ws["A3"].data_type == "s" and ws["B2"].number_format == "0.0%" and ws["D2"].number_format == "#,##0"
    assert ws["A1"].font.b and ws["A1"].fill.fgColor.rgb == "FFEEF2F8" and ws["A1"].alignment.wrap_text
    assert ws.freeze_panes == "C2" and ws.auto_filter.ref == "A1:E5" and ws.column_dimensions["B"].width == 8
    assert [c.value for c in wb["empty"][1]] == ["only"] and wb["empty"].freeze_panes is None
    assert wb.properties.created.isoformat().startswith("2026-11-30")
    assert [column_letter(j) for j in (0, 1, 25, 26, 27, 701, 702)] == ["A", "B", "Z", "AA", "AB", "ZZ", "AAA"]
    with pytest.raises(ValueError, match="same number of rows"):
        Sheet("bad", ["a", "b"], [[1], [1, 2]])
    with pytest.raises(ValueError, match="unique"):
        xlsx_bytes([Sheet("s", ["a"], [[1]]), Sheet("s", ["a"], [[2]])])


def test_xlsx_writer_cuts_what_excel_cannot_hold():
    """Text over Excel's 32,767 characters is cut with an ellipsis; lone surrogates are dropped (not an
    encoding error)."""
    import io

    import openpyxl

    from lifecircle.present.xlsx import MAX_CELL_CHARS, Sheet, xlsx_bytes

    long = "长" * 40_000
    data = xlsx_bytes([Sheet("s", ["a"], [[long, "ok\ud800"]])])
    ws = openpyxl.load_workbook(io.BytesIO(data))["s"]
    assert len(ws["A2"].value) == MAX_CELL_CHARS and ws["A2"].value.endswith("…") and ws["A3"].value == "ok"


def test_workbook_sites_sheet_has_the_csvs_columns(toy_run):
    """results.xlsx's sites sheet, written by analyze from the plan in memory, shows what suggested_sites.csv
    shows: not lifecircle's own node and candidate numbers (393589 at a city: meaningless in Excel)."""
    import openpyxl

    from lifecircle.present.wording import header, text

    csv = pd.read_csv(toy_run / "suggested_sites.csv", encoding="utf-8-sig")
    wb = openpyxl.load_workbook(toy_run / "results.xlsx")
    lang = next(g for g in ("zh", "en") if text("sheet_sites", g) in wb.sheetnames)
    ws = wb[text("sheet_sites", lang)]
    got = [c.value for c in ws[1]]
    assert got == [header(c, lang) for c in csv.columns]
    assert header("node", lang) not in got and header("candidate", lang) not in got
    assert ws.max_row - 1 == len(csv) > 0
