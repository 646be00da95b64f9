"""The bad-input catalogue: every user error of every command is ONE line, the right exit code, no
traceback, and leaves every folder exactly as it was.

Each case runs ``lifecircle.cli.main(argv)`` in-process (a few run ``python -m lifecircle`` in a real
subprocess) from inside a session folder that holds a good analysis (``GOOD``, made once by
``analyze --example toy_town``), prepared bad files and damaged copies of GOOD. Before and after
each case the sha256 of every file under that folder (names included) is taken: a case that wrote,
removed or renamed anything fails. Exit codes: 1 a user error, 2 a usage error (click).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lifecircle.cli import main
from lifecircle.datasets import toy_town_osm

MARS_WKT = ('GEOGCS["GCS_Mars_2000",DATUM["D_Mars_2000",SPHEROID["Mars_2000_IAU_IAG",3396190.0,169.8944472236118]],'
            'PRIMEM["Reference_Meridian",0.0],UNIT["Degree",0.0174532925199433]]')
ENGINEERING_WKT = ('ENGCRS["site grid",EDATUM["P1"],CS[Cartesian,2],AXIS["x",east],AXIS["y",north],'
                   'LENGTHUNIT["metre",1]]')

CONFIGS = {  # --config files: the [analysis] table of a TOML file
    "minutes_text": 'minutes = "15"',
    "minutes_empty": "minutes = []",
    "minutes_mixed": 'minutes = [5, "x"]',
    "minutes_inf": "minutes = [5, inf]",
    "minutes_zero": "minutes = [0, 15]",
    "target_big": "target = 1.5",
    "target_bool": "target = true",
    "target_text": 'target = "85%"',
    "speed_text": 'walk_speed_kmh = "fast"',
    "speed_nan": "walk_speed_kmh = nan",
    "speed_neg": "walk_speed_kmh = -4",
    "snap_zero": "max_snap_m = 0",
    "snap_inf": "max_snap_m = inf",
    "max_minutes_low": "minutes = [15]\nmax_minutes = 10",
    "max_minutes_nan": "max_minutes = nan",
    "unknown_key": "speed = 4",
    "categories_bad": 'categories = ["parks"]',
    "categories_number": "categories = 5",
    "categories_empty": "categories = []",
    "three_problems": 'minutes = "15"\ntarget = 2\nwalk_speed_kmh = -1',
}


def _plan(parameters: str, area_extra: str = "") -> str:
    return (f"[parameters.base]\n{parameters}\n[[area]]\nname = \"toy\"\nosm = \"{toy_town_osm().as_posix()}\"\n"
            f"{area_extra}\n")


PLANS = {
    "ok": _plan("minutes = [15]"),
    "minutes_text": _plan('minutes = "15"'),
    "target_big": _plan("target = 2"),
    "speed_nan": _plan("walk_speed_kmh = nan"),
    "m2_zero": _plan("minutes = [15]", "m2_per_person = 0"),
    "mars_crs": _plan("minutes = [15]", 'facilities_crs = "IAU_2015:49900"'),
}


def _damage(folder: Path, how: str) -> None:
    """Damage a copy of the good folder in one of the ways users (or disks) do."""
    s = folder / "summary.json"
    summary = json.loads(s.read_text(encoding="utf-8"))

    def edit(change) -> None:
        change(summary)
        s.write_text(json.dumps(summary), encoding="utf-8")

    if how == "summary_list":
        s.write_text("[1, 2, 3]")
    elif how == "summary_string":
        s.write_text('"hello"')
    elif how == "summary_invalid":
        s.write_text('{"parameters": {"minutes": [5, 10')
    elif how == "summary_empty":
        s.write_text("")
    elif how == "summary_latin1":
        s.write_bytes(b'{"name": "\xe9\xe0"}')
    elif how == "summary_missing":
        s.unlink()
    elif how == "summary_dir":
        s.unlink()
        s.mkdir()
    elif how == "no_parameters":
        edit(lambda d: d.pop("parameters"))
    elif how == "parameters_list":
        edit(lambda d: d.update(parameters=[1, 2]))
    elif how == "minutes_text":
        edit(lambda d: d["parameters"].update(minutes="abc"))
    elif how == "minutes_inf":
        s.write_text(s.read_text(encoding="utf-8").replace('"minutes": [\n      5.0,', '"minutes": [\n      Infinity,'),
                     encoding="utf-8")
    elif how == "target_big":
        edit(lambda d: d["parameters"].update(target=1.5))
    elif how == "speed_nan":
        s.write_text(s.read_text(encoding="utf-8").replace('"walk_speed_kmh": 4.0', '"walk_speed_kmh": NaN'),
                     encoding="utf-8")
    elif how == "categories_bad":
        edit(lambda d: d["parameters"].update(categories=["parks"]))
    elif how == "inputs_list":
        edit(lambda d: d.update(inputs=["osm"]))
    elif how == "input_record_text":
        edit(lambda d: d["inputs"].update(osm="toy_town.osm"))
    elif how == "input_path_number":
        edit(lambda d: d["inputs"]["osm"].update(path=5))
    elif how == "input_gone":  # in a folder of an older lifecircle (no run_state.npz, no manifest): gaps needs it
        edit(lambda d: d["inputs"]["osm"].update(path=str(folder / "gone.osm")))
        (folder / "run_state.npz").unlink()
        (folder / "lifecircle_manifest.json").unlink()
    elif how == "options_list":
        edit(lambda d: d["parameters"].update(options=[1]))
    elif how == "m2_zero":
        edit(lambda d: d["parameters"]["options"].update(m2_per_person=0))
    elif how == "residents_truncated":
        r = folder / "residents.gpkg"
        r.write_bytes(r.read_bytes()[: r.stat().st_size // 2])
    elif how == "residents_garbage":
        (folder / "residents.gpkg").write_bytes(b"\x00\x01garbage" * 300)
    elif how == "residents_empty":
        (folder / "residents.gpkg").write_bytes(b"")
    elif how == "residents_dir":
        (folder / "residents.gpkg").unlink()
        (folder / "residents.gpkg").mkdir()
    elif how == "facilities_garbage":
        (folder / "facilities.gpkg").write_bytes(b"PK\x03\x04 not a geopackage" * 50)
    elif how == "coverage_missing":
        (folder / "coverage.csv").unlink()
    elif how == "coverage_garbage":
        (folder / "coverage.csv").write_text("hello\nworld\n")
    else:  # pragma: no cover
        raise ValueError(how)


DAMAGES = ["summary_list", "summary_string", "summary_invalid", "summary_empty", "summary_latin1", "summary_missing",
           "summary_dir", "no_parameters", "parameters_list", "minutes_text", "minutes_inf", "target_big", "speed_nan",
           "categories_bad", "inputs_list", "input_record_text", "input_path_number", "input_gone", "options_list",
           "m2_zero", "residents_truncated", "residents_garbage", "residents_empty", "residents_dir",
           "facilities_garbage", "coverage_missing", "coverage_garbage"]


@pytest.fixture(scope="session")
def kit(tmp_path_factory) -> Path:
    """The session folder: GOOD, files/ (bad inputs) and bad/<damage>/ (damaged copies of GOOD)."""
    root = tmp_path_factory.mktemp("catalogue")
    assert main(["-q", "analyze", "--example", "toy_town", "--out", str(root / "GOOD")]) == 0
    f = root / "files"
    (f / "adir").mkdir(parents=True)
    (f / "empty.csv").write_bytes(b"")
    (f / "empty.toml").write_bytes(b"")
    (f / "fac.csv").write_text("lon,lat,category\n121.401,31.201,health\n", encoding="utf-8")
    (f / "sites.csv").write_text("lon,lat,category\n121.401,31.201,health\n", encoding="utf-8")
    (f / "nocat.csv").write_text("lon,lat\n121.401,31.201\n", encoding="utf-8")
    (f / "pop_utm.csv").write_text("x,y,population\n351000,3453000,10\n", encoding="utf-8")
    (f / "garbage.osm.pbf").write_bytes(b"\x00garbage" * 50)
    (f / "garbage.geojson").write_text("{not json at all", encoding="utf-8")
    (f / "census.csv").write_text("name,population\n城西街道,10\n城东街道,20\n", encoding="utf-8")
    (f / "not_toml.toml").write_text("this is = = not toml\n", encoding="utf-8")
    (f / "latin1.toml").write_bytes(b"[analysis]\n# caf\xe9\nminutes = [15]\n")
    (f / "analysis_number.toml").write_text("analysis = 5\n", encoding="utf-8")
    for name, body in CONFIGS.items():
        (f / f"cfg_{name}.toml").write_text(f"[analysis]\n{body}\n", encoding="utf-8")
    for name, body in PLANS.items():
        (f / f"plan_{name}.toml").write_text(body, encoding="utf-8")
    for how in DAMAGES:
        d = root / "bad" / how
        shutil.copytree(root / "GOOD", d)
        _damage(d, how)
    return root


_HASHES: dict[Path, tuple[tuple[int, int, int, int], str]] = {}


def _sha256(p: Path) -> str:
    """sha256 of a file, computed again whenever its inode, size, mtime or ctime changed (any write does)."""
    st = p.stat()
    key = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if p not in _HASHES or _HASHES[p][0] != key:
        _HASHES[p] = (key, hashlib.sha256(p.read_bytes()).hexdigest())
    return _HASHES[p][1]


def _snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file below root (folders as entries too): any write, removal or rename shows."""
    return {p.relative_to(root).as_posix(): _sha256(p) if p.is_file() else "<dir>" for p in sorted(root.rglob("*"))}


def C(id_, code, mentions, *args):
    """One case: its id, exit code, what the line must mention, and the command line (templates)."""
    return pytest.param(code, (mentions,) if isinstance(mentions, str) else mentions, list(args), id=id_)


A = ("analyze", "--example", "toy_town", "--out", "{root}/GOOD")  # a good analyze command, to spoil
CFG = [C(f"analyze-config-{name}", 1, ("cfg_" + name, key), *A, "--config", "{root}/files/cfg_" + name + ".toml")
       for name, key in [
           ("minutes_text", "'15'"), ("minutes_empty", "minutes"), ("minutes_mixed", "minutes"),
           ("minutes_inf", "minutes"), ("minutes_zero", "minutes"), ("target_big", "target"),
           ("target_bool", "target"), ("target_text", "target"), ("speed_text", "walk_speed_kmh"),
           ("speed_nan", "walk_speed_kmh"), ("speed_neg", "walk_speed_kmh"), ("snap_zero", "max_snap_m"),
           ("snap_inf", "max_snap_m"), ("max_minutes_low", "max_minutes"), ("max_minutes_nan", "max_minutes"),
           ("unknown_key", "'speed'"), ("categories_bad", "parks"), ("categories_number", "categories"),
           ("categories_empty", "categories"), ("three_problems", "3 problems")]]

DAMAGED = []
for _how, _what in [
        ("summary_list", "JSON list"), ("summary_string", "JSON string"), ("summary_invalid", "not valid JSON"),
        ("summary_empty", "is empty"), ("summary_latin1", "not UTF-8"), ("summary_missing", "summary.json"),
        ("summary_dir", "summary.json is a folder"), ("no_parameters", "'parameters'"),
        ("parameters_list", "'parameters' must be an object"), ("minutes_text", "minutes"),
        ("minutes_inf", "minutes"), ("target_big", "target"), ("speed_nan", "walk_speed_kmh"),
        ("categories_bad", "parks"), ("inputs_list", "'inputs' must be an object"),
        ("input_record_text", "inputs.osm"), ("input_path_number", "inputs.osm.path"),
        ("options_list", "parameters.options"), ("residents_truncated", "residents.gpkg is corrupt"),
        ("residents_garbage", "residents.gpkg is corrupt"), ("residents_empty", "residents.gpkg is empty"),
        ("residents_dir", "residents.gpkg is missing"), ("facilities_garbage", "facilities.gpkg is corrupt"),
        ("coverage_missing", "coverage.csv is missing"), ("coverage_garbage", "coverage.csv lacks")]:
    DAMAGED.append(C(f"map-{_how}", 1, _what, "map", "{root}/bad/" + _how))
    if _how in ("summary_list", "summary_invalid", "minutes_inf", "inputs_list", "residents_truncated",
                "residents_garbage", "facilities_garbage", "coverage_garbage", "input_record_text"):
        DAMAGED.append(C(f"gaps-{_how}", 1, _what, "gaps", "{root}/bad/" + _how))
        DAMAGED.append(C(f"scenario-{_how}", 1, _what, "scenario", "{root}/bad/" + _how,
                         "--add", "{root}/files/sites.csv"))
DAMAGED += [
    C("gaps-input_gone", 1, ("gone.osm", "is gone"), "gaps", "{root}/bad/input_gone"),
    C("scenario-input_gone", 1, ("gone.osm", "is gone"), "scenario", "{root}/bad/input_gone", "--add",
      "{root}/files/sites.csv"),
    C("gaps-m2_zero", 1, ("summary.json", "parameters.options: m2_per_person (--m2-per-person)"), "gaps",
      "{root}/bad/m2_zero"),
]

CASES = [
    # --- analyze: numbers (not a number: usage, 2; a number out of range: 1) --------------------
    C("analyze-minutes-inf", 1, ("--minutes", "inf"), *A, "--minutes", "inf"),
    C("analyze-minutes-1e999", 1, "--minutes", *A, "--minutes", "1e999"),
    C("analyze-minutes-nan", 1, ("--minutes", "nan"), *A, "--minutes", "nan"),
    C("analyze-minutes-zero", 1, "--minutes", *A, "--minutes", "0"),
    C("analyze-minutes-negative", 1, "--minutes", *A, "--minutes", "-5,15"),
    C("analyze-minutes-empty", 1, "--minutes", *A, "--minutes", ""),
    C("analyze-minutes-abc", 2, ("--minutes", "'abc' is not a number of minutes"), *A, "--minutes", "abc"),
    C("analyze-minutes-mixed", 2, "--minutes", *A, "--minutes", "5,ten,15"),
    C("analyze-speed-zero", 1, "--speed-kmh", *A, "--speed-kmh", "0"),
    C("analyze-speed-negative", 1, "--speed-kmh", *A, "--speed-kmh", "-1"),
    C("analyze-speed-nan", 1, ("--speed-kmh", "nan"), *A, "--speed-kmh", "nan"),
    C("analyze-speed-inf", 1, "--speed-kmh", *A, "--speed-kmh", "inf"),
    C("analyze-speed-abc", 2, "--speed-kmh", *A, "--speed-kmh", "fast"),
    C("analyze-target-zero", 1, "--target", *A, "--target", "0"),
    C("analyze-target-above-1", 1, "--target", *A, "--target", "1.5"),
    C("analyze-target-percent", 1, ("--target", "0.85 means 85 %"), *A, "--target", "85"),
    C("analyze-target-negative", 1, "--target", *A, "--target", "-0.1"),
    C("analyze-target-nan", 1, "--target", *A, "--target", "nan"),
    C("analyze-target-abc", 2, "--target", *A, "--target", "85%"),
    C("analyze-max-snap-zero", 1, "--max-snap-m", *A, "--max-snap-m", "0"),
    C("analyze-max-snap-negative", 1, "--max-snap-m", *A, "--max-snap-m", "-10"),
    C("analyze-max-snap-inf", 1, "--max-snap-m", *A, "--max-snap-m", "inf"),
    C("analyze-max-minutes-below", 1, ("--max-minutes", "below the largest threshold"), *A, "--max-minutes", "10"),
    C("analyze-max-minutes-zero", 1, "--max-minutes", *A, "--max-minutes", "0"),
    C("analyze-max-minutes-nan", 1, "--max-minutes", *A, "--max-minutes", "nan"),
    C("analyze-max-minutes-inf", 1, "--max-minutes", *A, "--max-minutes", "inf"),
    C("analyze-m2-zero", 1, "--m2-per-person", *A, "--m2-per-person", "0"),
    C("analyze-m2-negative", 1, "--m2-per-person", *A, "--m2-per-person", "-36.5"),
    C("analyze-m2-nan", 1, "--m2-per-person", *A, "--m2-per-person", "nan"),
    C("analyze-m2-inf", 1, "--m2-per-person", *A, "--m2-per-person", "inf"),
    C("analyze-m2-abc", 2, "--m2-per-person", *A, "--m2-per-person", "big"),
    C("analyze-categories-unknown", 2, ("--categories", "parks"), *A, "--categories", "parks"),
    C("analyze-categories-one-unknown", 2, "--categories", *A, "--categories", "health,park"),
    C("analyze-three-problems", 1, ("3 problems", "--minutes", "--target", "--speed-kmh"), *A, "--minutes", "0",
      "--target", "2", "--speed-kmh", "nan"),
    # --- analyze: input paths ---------------------------------------------------------------------
    C("analyze-osm-missing", 1, ("--osm", "missing.osm.pbf"), "analyze", "--osm", "{root}/files/missing.osm.pbf",
      "--out", "{root}/GOOD"),
    C("analyze-osm-folder", 1, ("--osm", "is a folder"), "analyze", "--osm", "{root}/files/adir", "--out",
      "{root}/GOOD"),
    C("analyze-osm-empty", 1, ("--osm", "is empty"), "analyze", "--osm", "{root}/files/empty.csv", "--out",
      "{root}/GOOD"),
    C("analyze-osm-relative-typo", 1, ("--osm", "did you mean"), "analyze", "--osm", "files/garbage.osm.pfb",
      "--out", "{root}/GOOD"),
    C("analyze-facilities-missing", 1, ("--facilities", "nope.csv"), *A, "--facilities", "{root}/files/nope.csv"),
    C("analyze-facilities-typo", 1, ("--facilities", "did you mean", "fac.csv"), *A, "--facilities",
      "{root}/files/fac.cvs"),
    C("analyze-facilities-folder", 1, ("--facilities", "is a folder"), *A, "--facilities", "{root}/files/adir"),
    C("analyze-facilities-empty", 1, ("--facilities", "empty.csv"), *A, "--facilities", "{root}/files/empty.csv"),
    C("analyze-population-missing", 1, ("--population", "pop.csv"), *A, "--population", "{root}/files/pop.csv"),
    C("analyze-population-folder", 1, "--population", *A, "--population", "{root}/files/adir"),
    C("analyze-population-empty", 1, "--population", *A, "--population", "{root}/files/empty.csv"),
    C("analyze-units-missing", 1, ("--units", "units.geojson"), *A, "--units", "{root}/files/units.geojson"),
    C("analyze-units-folder", 1, "--units", *A, "--units", "{root}/files/adir"),
    C("analyze-census-missing", 1, ("--census", "census2020.csv"), *A, "--admin-level", "8", "--census",
      "{root}/files/census2020.csv"),
    C("analyze-census-folder", 1, "--census", *A, "--admin-level", "8", "--census", "{root}/files/adir"),
    C("analyze-taxonomy-missing", 1, ("--taxonomy", "tax.toml"), *A, "--taxonomy", "{root}/files/tax.toml"),
    C("analyze-taxonomy-folder", 1, "--taxonomy", *A, "--taxonomy", "{root}/files/adir"),
    C("analyze-config-missing", 1, ("--config", "cfg.toml"), *A, "--config", "{root}/files/cfg.toml"),
    C("analyze-config-folder", 1, ("--config", "is a folder"), *A, "--config", "{root}/files/adir"),
    C("analyze-config-empty", 1, ("--config", "is empty"), *A, "--config", "{root}/files/empty.toml"),
    C("analyze-two-files-missing", 1, ("2 problems", "--facilities", "--population"), *A, "--facilities",
      "{root}/files/a.csv", "--population", "{root}/files/b.csv"),
    C("analyze-config-not-toml", 1, ("not_toml.toml", "not valid TOML"), *A, "--config",
      "{root}/files/not_toml.toml"),
    C("analyze-config-latin1", 1, ("latin1.toml", "UTF-8"), *A, "--config", "{root}/files/latin1.toml"),
    C("analyze-config-analysis-number", 1, ("analysis_number.toml", "table"), *A, "--config",
      "{root}/files/analysis_number.toml"),
    *CFG,
    C("analyze-config-and-cli-problems", 1, ("2 problems: walk_speed_kmh (--speed-kmh)",
                                            "; R/files/cfg_target_big.toml [analysis]: target"), *A, "--config",
      "{root}/files/cfg_target_big.toml", "--speed-kmh", "0"),
    # --- analyze: CRSs --------------------------------------------------------------------------------
    C("analyze-facilities-crs-mars-iau", 1, ("--facilities-crs", "Mars CRS", "not an Earth CRS"), *A,
      "--facilities", "{root}/files/fac.csv", "--facilities-crs", "IAU_2015:49900"),
    C("analyze-facilities-crs-mars-esri-wkt", 1, ("--facilities-crs", "Mars CRS"), *A, "--facilities",
      "{root}/files/fac.csv", "--facilities-crs", MARS_WKT),
    C("analyze-facilities-crs-moon", 1, ("--facilities-crs", "Moon"), *A, "--facilities", "{root}/files/fac.csv",
      "--facilities-crs", "IAU_2015:30100"),
    C("analyze-facilities-crs-geocentric", 1, ("--facilities-crs", "geocentric"), *A, "--facilities",
      "{root}/files/fac.csv", "--facilities-crs", "EPSG:4978"),
    C("analyze-facilities-crs-vertical", 1, ("--facilities-crs", "vertical"), *A, "--facilities",
      "{root}/files/fac.csv", "--facilities-crs", "EPSG:5773"),
    C("analyze-facilities-crs-engineering", 1, ("--facilities-crs", "engineering"), *A, "--facilities",
      "{root}/files/fac.csv", "--facilities-crs", ENGINEERING_WKT),
    C("analyze-facilities-crs-compound", 1, ("--facilities-crs", "horizontal part"), *A, "--facilities",
      "{root}/files/fac.csv", "--facilities-crs", "EPSG:5972"),
    C("analyze-facilities-crs-typo", 1, ("--facilities-crs", "unknown CRS 'gcj2'"), *A, "--facilities",
      "{root}/files/fac.csv", "--facilities-crs", "gcj2"),
    C("analyze-facilities-crs-mars-slang", 1, ("--facilities-crs", "ambiguous", "gcj02 or bd09"), *A,
      "--facilities", "{root}/files/fac.csv", "--facilities-crs", "mars"),
    C("analyze-facilities-crs-empty", 1, ("--facilities-crs", "empty CRS"), *A, "--facilities",
      "{root}/files/fac.csv", "--facilities-crs", " "),
    C("analyze-population-crs-mars", 1, ("--population-crs", "Mars"), *A, "--population", "{root}/files/fac.csv",
      "--population-crs", "IAU_2015:49900"),
    C("analyze-population-crs-geocentric", 1, ("--population-crs", "geocentric"), *A, "--population",
      "{root}/files/fac.csv", "--population-crs", "EPSG:4978"),
    C("analyze-units-crs-vertical", 1, ("--units-crs", "vertical"), *A, "--units", "{root}/files/fac.csv",
      "--units-crs", "EPSG:5773"),
    C("analyze-units-crs-unknown", 1, ("--units-crs", "unknown CRS"), *A, "--units", "{root}/files/fac.csv",
      "--units-crs", "EPSG:0"),
    # --- analyze: usage, output, late errors (-q: the progress lines are not errors) ------------------
    C("analyze-no-source", 2, "--osm", "analyze", "--out", "{root}/GOOD"),
    C("analyze-two-sources", 2, "exactly one", "analyze", "--example", "toy_town", "--place", "Huangpu", "--out",
      "{root}/GOOD"),
    C("analyze-example-unknown", 2, ("--example", "nope"), "analyze", "--example", "nope", "--out", "{root}/GOOD"),
    C("analyze-option-typo", 2, ("--mintues", "--minutes"), *A, "--mintues", "15"),
    C("analyze-replace-without-facilities", 2, "--replace-osm-facilities", *A, "--replace-osm-facilities"),
    C("analyze-units-and-admin-level", 2, "--admin-level", *A, "--units", "{root}/files/fac.csv", "--admin-level",
      "8"),
    C("analyze-census-without-units", 2, "--census", *A, "--census", "{root}/files/census.csv"),
    C("analyze-census-and-population", 2, "--census", *A, "--admin-level", "8", "--census",
      "{root}/files/census.csv", "--population", "{root}/files/fac.csv"),
    C("analyze-admin-level-word", 1, ("--admin-level", "'ward'"), *A, "--admin-level", "ward"),
    C("analyze-basemap-unknown", 2, "--basemap", *A, "--basemap", "google"),
    C("analyze-basemap-tianditu-no-key", 1, ("--basemap tianditu", "TIANDITU_KEY"), *A, "--basemap", "tianditu"),
    C("analyze-census-join-unknown", 2, "--census-join", *A, "--census-join", "fuzzy"),
    C("analyze-out-is-a-file", 1, ("--out", "summary.json", "is a file"), "analyze", "--example", "toy_town",
      "--out", "{root}/GOOD/summary.json"),
    C("analyze-out-below-a-file", 1, ("--out", "is a file"), "analyze", "--example", "toy_town", "--out",
      "{root}/GOOD/summary.json/sub"),
    C("analyze-osm-corrupt", 1, ("garbage.osm.pbf",), "-q", "analyze", "--osm", "{root}/files/garbage.osm.pbf",
      "--out", "{root}/GOOD"),
    C("analyze-facilities-no-category", 1, "category", "-q", *A, "--facilities", "{root}/files/nocat.csv"),
    C("analyze-population-projected-as-wgs84", 1, "CRS", "-q", *A, "--population", "{root}/files/pop_utm.csv"),
    C("analyze-units-not-json", 1, "garbage.geojson", "-q", *A, "--units", "{root}/files/garbage.geojson"),
    C("analyze-facilities-garbage-geojson", 1, "garbage.geojson", "-q", *A, "--facilities",
      "{root}/files/garbage.geojson"),
    # --- facilities ------------------------------------------------------------------------------------
    C("facilities-nothing", 2, "--list", "facilities", "--out", "{root}/GOOD/f.gpkg"),
    C("facilities-list-missing", 1, ("--list", "list.csv"), "facilities", "--list", "{root}/files/list.csv",
      "--out", "{root}/out.gpkg"),
    C("facilities-list-folder", 1, ("--list", "is a folder"), "facilities", "--list", "{root}/files/adir",
      "--out", "{root}/out.gpkg"),
    C("facilities-list-empty", 1, ("--list", "is empty"), "facilities", "--list", "{root}/files/empty.csv",
      "--out", "{root}/out.gpkg"),
    C("facilities-second-list-missing", 1, ("--list", "two.csv"), "facilities", "--list", "{root}/files/fac.csv",
      "--list", "{root}/files/two.csv", "--out", "{root}/out.gpkg"),
    C("facilities-osm-missing", 1, ("--osm", "x.osm.pbf"), "facilities", "--osm", "{root}/files/x.osm.pbf",
      "--out", "{root}/out.gpkg"),
    C("facilities-units-missing", 1, ("--units", "d.geojson"), "facilities", "--list", "{root}/files/fac.csv",
      "--units", "{root}/files/d.geojson", "--out", "{root}/out.gpkg"),
    C("facilities-official-missing", 1, ("--official-counts", "counts.csv"), "facilities", "--list",
      "{root}/files/fac.csv", "--units", "{root}/files/fac.csv", "--official-counts", "{root}/files/counts.csv",
      "--out", "{root}/out.gpkg"),
    C("facilities-official-without-units", 2, "--official-counts", "facilities", "--list", "{root}/files/fac.csv",
      "--official-counts", "{root}/files/fac.csv", "--out", "{root}/out.gpkg"),
    C("facilities-taxonomy-missing", 1, ("--taxonomy", "t.toml"), "facilities", "--list", "{root}/files/fac.csv",
      "--taxonomy", "{root}/files/t.toml", "--out", "{root}/out.gpkg"),
    C("facilities-dedup-negative", 1, "--dedup-m", "facilities", "--list", "{root}/files/fac.csv", "--dedup-m", "-1",
      "--out", "{root}/out.gpkg"),
    C("facilities-dedup-nan", 1, "--dedup-m", "facilities", "--list", "{root}/files/fac.csv", "--dedup-m", "nan",
      "--out", "{root}/out.gpkg"),
    C("facilities-dedup-inf", 1, "--dedup-m", "facilities", "--list", "{root}/files/fac.csv", "--dedup-m", "inf",
      "--out", "{root}/out.gpkg"),
    C("facilities-dedup-abc", 2, "--dedup-m", "facilities", "--list", "{root}/files/fac.csv", "--dedup-m", "far",
      "--out", "{root}/out.gpkg"),
    C("facilities-list-crs-mars", 1, ("--list-crs", "Mars"), "facilities", "--list", "{root}/files/fac.csv",
      "--list-crs", "IAU_2015:49900", "--out", "{root}/out.gpkg"),
    C("facilities-list-crs-unknown", 1, ("--list-crs", "unknown CRS"), "facilities", "--list",
      "{root}/files/fac.csv", "--list-crs", "wgs85", "--out", "{root}/out.gpkg"),
    C("facilities-units-crs-geocentric", 1, ("--units-crs", "geocentric"), "facilities", "--list",
      "{root}/files/fac.csv", "--units", "{root}/files/fac.csv", "--units-crs", "EPSG:4978", "--out",
      "{root}/out.gpkg"),
    C("facilities-out-is-a-folder", 1, ("--out", "is a folder"), "facilities", "--list", "{root}/files/fac.csv",
      "--out", "{root}/GOOD"),
    C("facilities-out-below-a-file", 1, ("--out", "is a file"), "facilities", "--list", "{root}/files/fac.csv",
      "--out", "{root}/GOOD/summary.json/f.gpkg"),
    C("facilities-list-no-category", 1, "category", "facilities", "--list", "{root}/files/nocat.csv", "--out",
      "{root}/out.gpkg"),
    # --- fetch -------------------------------------------------------------------------------------------
    C("fetch-no-name", 2, "NAME", "fetch"),
    C("fetch-unknown-name", 1, ("no OSM extract named 'atlantis'",), "fetch", "atlantis", "--dir", "{root}/dl"),
    C("fetch-dir-is-a-file", 1, ("--dir", "is a file"), "fetch", "shanghai", "--dir", "{root}/GOOD/summary.json"),
    C("fetch-dir-below-a-file", 1, ("--dir", "is a file"), "fetch", "shanghai", "--dir",
      "{root}/GOOD/summary.json/x"),
    # --- gaps ---------------------------------------------------------------------------------------------
    C("gaps-no-folder", 2, "OUT_DIR", "gaps"),
    C("gaps-folder-missing", 1, ("OUT_DIR", "nofolder"), "gaps", "{root}/nofolder"),
    C("gaps-folder-is-a-file", 1, ("OUT_DIR", "is a file"), "gaps", "{root}/GOOD/summary.json"),
    C("gaps-folder-not-an-analysis", 1, ("summary.json", "analyze --out"), "gaps", "{root}/files/adir"),
    C("gaps-category-unknown", 2, ("--category", "parks"), "gaps", "{root}/GOOD", "--category", "parks"),
    C("gaps-k-zero", 1, "-k", "gaps", "{root}/GOOD", "-k", "0"),
    C("gaps-k-negative", 1, "-k", "gaps", "{root}/GOOD", "-k", "-3"),
    C("gaps-k-abc", 2, "-k", "gaps", "{root}/GOOD", "-k", "five"),
    C("gaps-k-fraction", 2, "-k", "gaps", "{root}/GOOD", "-k", "2.5"),
    C("gaps-candidates-missing", 1, ("--candidates", "parcels.csv"), "gaps", "{root}/GOOD", "--candidates",
      "{root}/files/parcels.csv"),
    C("gaps-candidates-folder", 1, ("--candidates", "is a folder"), "gaps", "{root}/GOOD", "--candidates",
      "{root}/files/adir"),
    C("gaps-candidates-empty", 1, ("--candidates", "is empty"), "gaps", "{root}/GOOD", "--candidates",
      "{root}/files/empty.csv"),
    C("gaps-candidates-crs-mars", 1, ("--candidates-crs", "Mars"), "gaps", "{root}/GOOD", "--candidates",
      "{root}/files/sites.csv", "--candidates-crs", MARS_WKT),
    C("gaps-candidates-crs-engineering", 1, ("--candidates-crs", "engineering"), "gaps", "{root}/GOOD",
      "--candidates", "{root}/files/sites.csv", "--candidates-crs", ENGINEERING_WKT),
    C("gaps-cell-zero", 1, "--cell-m", "gaps", "{root}/GOOD", "--cell-m", "0"),
    C("gaps-cell-negative", 1, "--cell-m", "gaps", "{root}/GOOD", "--cell-m", "-100"),
    C("gaps-cell-nan", 1, "--cell-m", "gaps", "{root}/GOOD", "--cell-m", "nan"),
    C("gaps-cell-inf", 1, "--cell-m", "gaps", "{root}/GOOD", "--cell-m", "inf"),
    C("gaps-time-limit-zero", 1, "--time-limit-s", "gaps", "{root}/GOOD", "--time-limit-s", "0"),
    C("gaps-time-limit-nan", 1, "--time-limit-s", "gaps", "{root}/GOOD", "--time-limit-s", "nan"),
    C("gaps-time-limit-negative", 1, "--time-limit-s", "gaps", "{root}/GOOD", "--time-limit-s", "-1"),
    C("gaps-two-problems", 1, ("2 problems", "--cell-m", "--candidates"), "gaps", "{root}/GOOD", "--cell-m", "0",
      "--candidates", "{root}/files/nope.csv"),
    # --- scenario -------------------------------------------------------------------------------------------
    C("scenario-nothing-to-do", 2, "--add", "scenario", "{root}/GOOD"),
    C("scenario-folder-missing", 1, ("OUT_DIR", "nofolder"), "scenario", "{root}/nofolder", "--add",
      "{root}/files/sites.csv"),
    C("scenario-folder-is-a-file", 1, ("OUT_DIR", "is a file"), "scenario", "{root}/GOOD/coverage.csv", "--add",
      "{root}/files/sites.csv"),
    C("scenario-add-missing", 1, ("--add", "new.csv"), "scenario", "{root}/GOOD", "--add", "{root}/files/new.csv"),
    C("scenario-add-folder", 1, ("--add", "is a folder"), "scenario", "{root}/GOOD", "--add", "{root}/files/adir"),
    C("scenario-add-empty", 1, ("--add", "is empty"), "scenario", "{root}/GOOD", "--add", "{root}/files/empty.csv"),
    C("scenario-add-typo", 1, ("--add", "did you mean"), "scenario", "{root}/GOOD", "--add",
      "{root}/files/site.csv"),
    C("scenario-remove-missing", 1, ("--remove", "closed.csv"), "scenario", "{root}/GOOD", "--remove",
      "{root}/files/closed.csv"),
    C("scenario-remove-and-index", 2, "--remove-index", "scenario", "{root}/GOOD", "--remove",
      "{root}/files/sites.csv", "--remove-index", "0"),
    C("scenario-add-crs-mars", 1, ("--add-crs", "Mars"), "scenario", "{root}/GOOD", "--add",
      "{root}/files/sites.csv", "--add-crs", "IAU_2015:49900"),
    C("scenario-add-crs-vertical", 1, ("--add-crs", "vertical"), "scenario", "{root}/GOOD", "--add",
      "{root}/files/sites.csv", "--add-crs", "EPSG:5773"),
    C("scenario-remove-crs-geocentric", 1, ("--remove-crs", "geocentric"), "scenario", "{root}/GOOD", "--remove",
      "{root}/files/sites.csv", "--remove-crs", "EPSG:4978"),
    C("scenario-match-negative", 1, "--match-m", "scenario", "{root}/GOOD", "--add", "{root}/files/sites.csv",
      "--match-m", "-5"),
    C("scenario-match-nan", 1, "--match-m", "scenario", "{root}/GOOD", "--add", "{root}/files/sites.csv",
      "--match-m", "nan"),
    C("scenario-match-abc", 2, "--match-m", "scenario", "{root}/GOOD", "--add", "{root}/files/sites.csv",
      "--match-m", "near"),
    C("scenario-out-is-a-file", 1, ("--out", "is a file"), "scenario", "{root}/GOOD", "--add",
      "{root}/files/sites.csv", "--out", "{root}/GOOD/coverage.csv"),
    C("scenario-remove-index-unknown", 1, "99999", "-q", "scenario", "{root}/GOOD", "--remove-index", "99999",
      "--out", "{root}/scen"),
    C("scenario-remove-index-bad-osm-id", 1, "way/1", "-q", "scenario", "{root}/GOOD", "--remove-index", "way/1",
      "--out", "{root}/scen"),
    # --- isochrone --------------------------------------------------------------------------------------------
    C("isochrone-no-lon", 2, "--lon", "isochrone", "--example", "toy_town", "--lat", "31.2"),
    C("isochrone-lon-abc", 2, "--lon", "isochrone", "--example", "toy_town", "--lon", "east", "--lat", "31.2"),
    C("isochrone-lon-out-of-range", 1, "--lon", "isochrone", "--example", "toy_town", "--lon", "500", "--lat", "31.2",
      "--out", "{root}/i.gpkg"),
    C("isochrone-lat-out-of-range", 1, "--lat", "isochrone", "--example", "toy_town", "--lon", "121.4", "--lat",
      "95", "--out", "{root}/i.gpkg"),
    C("isochrone-lat-nan", 1, "--lat", "isochrone", "--example", "toy_town", "--lon", "121.4", "--lat", "nan",
      "--out", "{root}/i.gpkg"),
    C("isochrone-lon-inf", 1, "--lon", "isochrone", "--example", "toy_town", "--lon", "inf", "--lat", "31.2",
      "--out", "{root}/i.gpkg"),
    C("isochrone-minutes-inf", 1, "--minutes", "isochrone", "--example", "toy_town", "--lon", "121.4", "--lat",
      "31.2", "--minutes", "5,inf", "--out", "{root}/i.gpkg"),
    C("isochrone-minutes-zero", 1, "--minutes", "isochrone", "--example", "toy_town", "--lon", "121.4", "--lat",
      "31.2", "--minutes", "0", "--out", "{root}/i.gpkg"),
    C("isochrone-minutes-abc", 2, "--minutes", "isochrone", "--example", "toy_town", "--lon", "121.4", "--lat",
      "31.2", "--minutes", "x", "--out", "{root}/i.gpkg"),
    C("isochrone-speed-zero", 1, "--speed-kmh", "isochrone", "--example", "toy_town", "--lon", "121.4", "--lat",
      "31.2", "--speed-kmh", "0", "--out", "{root}/i.gpkg"),
    C("isochrone-speed-nan", 1, "--speed-kmh", "isochrone", "--example", "toy_town", "--lon", "121.4", "--lat",
      "31.2", "--speed-kmh", "nan", "--out", "{root}/i.gpkg"),
    C("isochrone-buffer-negative", 1, "--buffer-m", "isochrone", "--example", "toy_town", "--lon", "121.4",
      "--lat", "31.2", "--buffer-m", "-1", "--out", "{root}/i.gpkg"),
    C("isochrone-buffer-inf", 1, "--buffer-m", "isochrone", "--example", "toy_town", "--lon", "121.4", "--lat",
      "31.2", "--buffer-m", "inf", "--out", "{root}/i.gpkg"),
    C("isochrone-max-snap-zero", 1, "--max-snap-m", "isochrone", "--example", "toy_town", "--lon", "121.4",
      "--lat", "31.2", "--max-snap-m", "0", "--out", "{root}/i.gpkg"),
    C("isochrone-osm-missing", 1, ("--osm", "city.osm.pbf"), "isochrone", "--osm", "{root}/files/city.osm.pbf",
      "--lon", "121.4", "--lat", "31.2", "--out", "{root}/i.gpkg"),
    C("isochrone-osm-folder", 1, ("--osm", "is a folder"), "isochrone", "--osm", "{root}/files/adir", "--lon",
      "121.4", "--lat", "31.2", "--out", "{root}/i.gpkg"),
    C("isochrone-no-source", 2, "--osm", "isochrone", "--lon", "121.4", "--lat", "31.2"),
    C("isochrone-crs-unknown", 1, ("--crs", "ambiguous"), "isochrone", "--example", "toy_town", "--lon", "121.4", "--lat", "31.2",
      "--crs", "mars"),
    C("isochrone-method-unknown", 2, "--method", "isochrone", "--example", "toy_town", "--lon", "121.4", "--lat",
      "31.2", "--method", "circle"),
    C("isochrone-out-is-a-folder", 1, ("--out", "is a folder"), "isochrone", "--example", "toy_town", "--lon",
      "121.4", "--lat", "31.2", "--out", "{root}/GOOD"),
    C("isochrone-point-far-away", 1, ("max_snap_m=500", "nearest walkable street"), "isochrone", "--example", "toy_town", "--lon", "0",
      "--lat", "0", "--out", "{root}/i.gpkg"),
    # --- map ------------------------------------------------------------------------------------------------------
    C("map-no-folder", 2, "OUT_DIR", "map"),
    C("map-folder-missing", 1, ("OUT_DIR", "nofolder"), "map", "{root}/nofolder"),
    C("map-folder-is-a-file", 1, ("OUT_DIR", "is a file"), "map", "{root}/GOOD/map.html"),
    C("map-empty-folder", 1, "summary.json", "map", "{root}/files/adir"),
    C("map-html-is-a-folder", 1, ("--html", "is a folder"), "map", "{root}/GOOD", "--html", "{root}/files/adir"),
    C("map-html-below-a-file", 1, ("--html", "is a file"), "map", "{root}/GOOD", "--html",
      "{root}/GOOD/summary.json/map.html"),
    C("map-basemap-unknown", 2, "--basemap", "map", "{root}/GOOD", "--basemap", "bing"),
    C("map-basemap-tianditu-no-key", 1, ("--basemap tianditu", "TIANDITU_KEY"), "map", "{root}/GOOD", "--basemap",
      "tianditu"),
    *DAMAGED,
    # --- batch ----------------------------------------------------------------------------------------------------
    C("batch-no-plan", 2, "PLAN", "batch"),
    C("batch-plan-missing", 1, ("PLAN", "plan.toml"), "batch", "{root}/files/plan.toml"),
    C("batch-plan-typo", 1, ("PLAN", "did you mean"), "batch", "{root}/files/plan_okk.toml"),
    C("batch-plan-folder", 1, ("PLAN", "is a folder"), "batch", "{root}/files/adir"),
    C("batch-plan-empty", 1, ("PLAN", "is empty"), "batch", "{root}/files/empty.toml"),
    C("batch-plan-not-toml", 1, ("not_toml.toml", "not valid TOML"), "batch", "{root}/files/not_toml.toml",
      "--workers", "0"),
    C("batch-plan-minutes-text", 1, ("plan_minutes_text.toml", "'15'"), "batch", "{root}/files/plan_minutes_text.toml"),
    C("batch-plan-target-big", 1, ("plan_target_big.toml", "target"), "batch", "{root}/files/plan_target_big.toml"),
    C("batch-plan-speed-nan", 1, ("plan_speed_nan.toml", "walk_speed_kmh"), "batch",
      "{root}/files/plan_speed_nan.toml"),
    C("batch-plan-m2-zero", 1, ("plan_m2_zero.toml", "m2_per_person"), "batch", "{root}/files/plan_m2_zero.toml"),
    C("batch-plan-mars-crs", 1, ("plan_mars_crs.toml", "Mars"), "batch", "{root}/files/plan_mars_crs.toml"),
    C("batch-scheduler-not-a-url", 1, ("--scheduler", "'not a url'"), "batch", "{root}/files/plan_ok.toml",
      "--scheduler", "not a url"),
    C("batch-scheduler-no-port", 1, "--scheduler", "batch", "{root}/files/plan_ok.toml", "--scheduler",
      "tcp://scheduler-host"),
    C("batch-scheduler-port-too-big", 1, "--scheduler", "batch", "{root}/files/plan_ok.toml", "--scheduler",
      "tcp://10.0.0.5:99999"),
    C("batch-scheduler-http", 1, "--scheduler", "batch", "{root}/files/plan_ok.toml", "--scheduler",
      "http://10.0.0.5:8786/status"),
    C("batch-workers-negative", 1, "--workers", "batch", "{root}/files/plan_ok.toml", "--workers", "-1"),
    C("batch-workers-abc", 2, "--workers", "batch", "{root}/files/plan_ok.toml", "--workers", "many"),
    C("batch-workers-and-scheduler", 2, "--scheduler", "batch", "{root}/files/plan_ok.toml", "--workers", "2",
      "--scheduler", "tcp://10.0.0.5:8786"),
    C("batch-out-is-a-file", 1, ("--out", "is a file"), "batch", "{root}/files/plan_ok.toml", "--out",
      "{root}/GOOD/summary.json"),
    # --- cache, the group ---------------------------------------------------------------------------------------------
    C("cache-no-action", 2, "info", "cache"),
    C("cache-unknown-action", 2, "purge", "cache", "purge"),
    C("unknown-command", 2, "analyse", "analyse", "--example", "toy_town"),
    C("unknown-group-option", 2, "--colour", "--colour", "analyze"),
    C("unknown-group-short-option", 2, "-x", "-x", "analyze"),
]


def _argv(args: list[str], root: Path) -> list[str]:
    return [a.replace("{root}", str(root)) for a in args]


def test_the_catalogue_is_large():
    assert len(CASES) >= 150
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("code, mentions, args", CASES)
def test_bad_input(kit, code, mentions, args, capsys, monkeypatch):
    monkeypatch.chdir(kit)  # stray relative outputs (facilities.gpkg, out/) would land here and show
    monkeypatch.delenv("TIANDITU_KEY", raising=False)
    monkeypatch.setenv("LIFECIRCLE_LOG_DIR", str(kit.parent))  # an internal error's traceback: outside kit
    before = _snapshot(kit)
    rc = main(_argv(args, kit))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    lines = err.splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert rc == code, line
    assert line.startswith("lifecircle"), line
    assert "internal error" not in line
    for m in mentions:
        assert m.replace("R/", f"{kit}/") in line, (m, line)
    assert "np.float" not in line and "np.int" not in line
    assert out == ""
    assert _snapshot(kit) == before  # nothing written, removed or renamed anywhere


SUBPROCESS_CASES = [
    pytest.param(1, "--minutes", [*A, "--minutes", "inf"], id="analyze-minutes-inf"),
    pytest.param(2, "--minutes", [*A, "--minutes", "abc"], id="analyze-minutes-abc"),
    pytest.param(1, "--facilities", [*A, "--facilities", "{root}/files/fac.cvs"], id="analyze-facilities-typo"),
    pytest.param(1, "JSON list", ["map", "{root}/bad/summary_list"], id="map-summary-list"),
    pytest.param(1, "residents.gpkg", ["gaps", "{root}/bad/residents_truncated"], id="gaps-residents-truncated"),
    pytest.param(1, "--scheduler", ["batch", "{root}/files/plan_ok.toml", "--scheduler", "not a url"],
                 id="batch-scheduler-not-a-url"),
]


@pytest.mark.parametrize("code, mention, args", SUBPROCESS_CASES)
def test_bad_input_subprocess(kit, code, mention, args):
    """End to end: the real interpreter prints one line, no traceback, and writes nothing."""
    before = _snapshot(kit)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("TIANDITU_KEY", None)
    p = subprocess.run([sys.executable, "-m", "lifecircle", *_argv(args, kit)], capture_output=True, text=True,
                       cwd=kit, env=env, timeout=120)
    assert "Traceback" not in p.stdout + p.stderr
    assert p.returncode == code, p.stderr
    assert len(p.stderr.splitlines()) == 1 and mention in p.stderr, p.stderr
    assert _snapshot(kit) == before


# --- the same bad value is refused identically from every source ------------------------------------


SAME_RULES = [  # (CLI args, TOML/plan line, summary.json edit, the problem every source must report)
    pytest.param(["--minutes", "inf"], "minutes = [inf]", ("minutes", [float("inf")]),
                 "minutes (--minutes) must be a positive number of minutes, got inf (not a finite number); "
                 "e.g. --minutes 5,10,15", id="minutes-inf"),
    pytest.param(["--target", "1.5"], "target = 1.5", ("target", 1.5),
                 "target (--target) must be a share in (0, 1] (0.85 means 85 %), got 1.5; e.g. --target 0.85",
                 id="target-1.5"),
    pytest.param(["--speed-kmh", "nan"], "walk_speed_kmh = nan", ("walk_speed_kmh", float("nan")),
                 "walk_speed_kmh (--speed-kmh) must be a positive number of km/h, got nan (not a finite number); "
                 "e.g. --speed-kmh 4", id="speed-nan"),
    pytest.param(["--max-snap-m", "0"], "max_snap_m = 0", ("max_snap_m", 0),
                 "max_snap_m (--max-snap-m) must be a positive number of metres, got 0; e.g. --max-snap-m 500",
                 id="max-snap-0"),
    pytest.param(["--minutes", "15", "--max-minutes", "10"], "minutes = [15]\nmax_minutes = 10",
                 ("max_minutes", 10),
                 "max_minutes (--max-minutes) 10 is below the largest threshold (15); raise --max-minutes or "
                 "lower --minutes", id="max-minutes-below"),
]


@pytest.mark.parametrize("cli_args, toml_line, summary_edit, problem", SAME_RULES)
def test_same_value_refused_identically_everywhere(kit, tmp_path, capsys, cli_args, toml_line, summary_edit,
                                                   problem):
    from lifecircle.errors import InputDataError
    from lifecircle.scale.batch import load_plan

    def error_line(argv) -> str:
        assert main(argv) == 1
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1
        return err[0]

    # command line
    cli = error_line(["analyze", "--example", "toy_town", *cli_args, "--out", str(tmp_path / "o")])
    assert cli == f"lifecircle: error: {problem}"
    # TOML --config
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(f"[analysis]\n{toml_line}\n", encoding="utf-8")
    toml = error_line(["analyze", "--example", "toy_town", "--config", str(cfg), "--out", str(tmp_path / "o")])
    assert toml == f"lifecircle: error: {cfg} [analysis]: {problem}"
    # batch plan
    plan = tmp_path / "plan.toml"
    plan.write_text(_plan(toml_line), encoding="utf-8")
    with pytest.raises(InputDataError) as exc:
        load_plan(plan)
    assert str(exc.value) == f"plan {plan} has 1 problem: parameters.base: {problem}"
    # a hand-edited summary.json, read by map (read_analysis_folder) and by gaps (reanalyze)
    folder = tmp_path / "edited"
    shutil.copytree(kit / "GOOD", folder)
    s = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    key, value = summary_edit
    s["parameters"][key] = value
    if key == "max_minutes":
        s["parameters"]["minutes"] = [15]
    (folder / "summary.json").write_text(json.dumps(s), encoding="utf-8")
    for command in ("map", "gaps"):
        line = error_line([command, str(folder)])
        assert line == f"lifecircle: error: {folder / 'summary.json'} parameters: {problem}"
    assert not (tmp_path / "o").exists()
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in (kit / "GOOD").iterdir())


def test_m2_per_person_zero_refused_everywhere(kit, tmp_path, capsys):
    """--m2-per-person 0 was silently replaced by 36.5; now the CLI, a plan area, summary.json and the
    library refuse it with the same words."""
    from lifecircle import analyze
    from lifecircle.errors import InputDataError
    from lifecircle.scale.batch import load_plan

    problem = ("m2_per_person (--m2-per-person) must be a positive number of m² per person, got 0; "
               "e.g. --m2-per-person 36.5")
    assert main(["analyze", "--example", "toy_town", "--m2-per-person", "0", "--out", str(tmp_path / "o")]) == 1
    assert capsys.readouterr().err == f"lifecircle: error: {problem}\n"
    with pytest.raises(InputDataError, match="m2_per_person") as exc:
        analyze(toy_town_osm(), m2_per_person=0)
    assert str(exc.value) == problem
    plan = tmp_path / "plan.toml"
    plan.write_text(_plan("minutes = [15]", "m2_per_person = 0"), encoding="utf-8")
    with pytest.raises(InputDataError) as exc:
        load_plan(plan)
    assert str(exc.value) == f"plan {plan} has 1 problem: area 'toy': {problem}"
    folder = kit / "bad" / "m2_zero"
    assert main(["gaps", str(folder)]) == 1
    assert capsys.readouterr().err == (f"lifecircle: error: {folder / 'summary.json'} is not a usable lifecircle "
                                       f"summary (run `lifecircle analyze --out {folder}` again to rewrite it): "
                                       f"parameters.options: {problem}\n")


def test_toml_minutes_text_is_not_read_as_1_and_5(tmp_path):
    """minutes = "15" used to iterate the text and run at 1 and 5 minutes."""
    from lifecircle.config import AnalysisConfig
    from lifecircle.errors import InputDataError

    cfg = tmp_path / "c.toml"
    cfg.write_text('[analysis]\nminutes = "15"\n', encoding="utf-8")
    with pytest.raises(InputDataError, match="got the text '15'"):
        AnalysisConfig.from_toml(cfg)
    cfg.write_text("[analysis]\nminutes = [15, 5]\n", encoding="utf-8")
    assert AnalysisConfig.from_toml(cfg).minutes == (5.0, 15.0)


# --- internal errors: one line, exit 3, the traceback saved ----------------------------------------------


def test_internal_error_is_one_line_exit_3_and_saves_the_traceback(tmp_path, capsys, monkeypatch):
    import lifecircle.pipeline

    def broken(*args, **kwargs):
        raise TypeError("unsupported operand type(s) for +: 'int' and 'str'")

    monkeypatch.setattr(lifecircle.pipeline, "analyze", broken)
    monkeypatch.setenv("LIFECIRCLE_LOG_DIR", str(tmp_path))
    rc = main(["analyze", "--example", "toy_town", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 3
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    line = err.strip()
    assert line.startswith("lifecircle: internal error (TypeError: unsupported operand type(s) for +: 'int' and "
                           "'str') — this is a bug; please report it at https://github.com/lifecircle/lifecircle/issues "
                           "with the command line; details in ")
    saved = Path(line.rsplit("details in ", 1)[1])
    assert saved.parent == tmp_path and saved.is_file()
    text = saved.read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in text and "TypeError: unsupported operand" in text
    assert "command: lifecircle analyze --example toy_town" in text
    assert not (tmp_path / "o").exists()


def test_unreadable_input_file_is_named(tmp_path, monkeypatch):
    """Permission denied (simulated: the tests run as root, who can read anything)."""
    from lifecircle import validate

    f = tmp_path / "secret.csv"
    f.write_text("lon,lat\n1,2\n")
    real_open = open

    def no_read(path, *a, **k):
        if Path(path) == f:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr(validate, "open", no_read, raising=False)
    assert validate.file_problem(f, "--population") == (
        f"--population: cannot read {f} (permission denied): make it readable (chmod +r) or copy it")


def test_unwritable_output_folder_is_named(tmp_path, monkeypatch):
    from lifecircle import validate

    monkeypatch.setattr(validate.os, "access", lambda path, mode: False)
    assert validate.output_problem(tmp_path / "out", "--out", folder=True) == (
        f"--out: cannot write into {tmp_path} (permission denied): choose a folder you can write to")
