"""gaps / scenario / map build on the run stored in the folder (run_state.npz), not on the OSM file.

The stored run must give the numbers a full re-run gives (``reanalyze``: OSM parsed again, every
point snapped again, every Dijkstra again) to 1e-12, on the toy town and on the real Shanghai
sample; the OSM file must not be needed (it is moved away before the commands run); a damaged
run_state.npz is refused with one line.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

import lifecircle.pipeline as pipeline
from lifecircle import load_analysis, reanalyze
from lifecircle.cli import main
from lifecircle.datasets import toy_town_osm
from lifecircle.errors import InputFileError
from lifecircle.measure.walking_times import walking_times
from lifecircle.plan.gaps import find_gaps
from lifecircle.plan.scenario import scenario
from lifecircle.present.outputs import INTERNAL_GAP_COLUMNS, read_table_back

BBOX = (121.4611262, 31.2196145, 121.4863121, 31.2411914)
ATOL = 1e-12


def _analyze(args: list[str]) -> None:
    assert main(["-q", "analyze", *args, "--no-map"]) == 0


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("toy")
    osm = d / "town.osm"
    shutil.copy(toy_town_osm(), osm)
    _analyze(["--osm", str(osm), "--out", str(d / "out")])
    add = d / "add.csv"
    add.write_text("category,lon,lat\nhealth,121.4073,31.2015\n", encoding="utf-8")
    return {"osm": osm, "out": d / "out", "add": add, "remove": ["0"]}


@pytest.fixture(scope="module")
def shanghai_run(tmp_path_factory, shanghai_pbf, shanghai_facilities):
    """The real Shanghai drive sample with its real OSM facility points, a resident grid and two units."""
    d = tmp_path_factory.mktemp("sh")
    osm = d / "sample.osm.pbf"
    shutil.copy(shanghai_pbf, osm)
    f = shanghai_facilities[shanghai_facilities.category.isin(["health", "sport"])]
    pd.DataFrame({"category": f.category.replace({"sport": "sports"}).to_numpy(), "name": f.name.to_numpy(),
                  "lon": f.geometry.x.to_numpy(), "lat": f.geometry.y.to_numpy()}).to_csv(d / "fac.csv", index=False)
    rng = np.random.default_rng(3)
    gx, gy = np.meshgrid(np.linspace(BBOX[0], BBOX[2], 30), np.linspace(BBOX[1], BBOX[3], 30))
    pd.DataFrame({"lon": gx.ravel(), "lat": gy.ravel(),
                  "population": rng.integers(0, 300, gx.size)}).to_csv(d / "res.csv", index=False)
    mid = (BBOX[1] + BBOX[3]) / 2
    gpd.GeoDataFrame({"name": ["south", "north"]}, geometry=[
        shapely.box(BBOX[0] - 0.01, BBOX[1] - 0.01, BBOX[2] + 0.01, mid),
        shapely.box(BBOX[0] - 0.01, mid, BBOX[2] + 0.01, BBOX[3] + 0.01)], crs=4326).to_file(d / "units.geojson")
    _analyze(["--osm", str(osm), "--facilities", str(d / "fac.csv"), "--replace-osm-facilities",
              "--population", str(d / "res.csv"), "--units", str(d / "units.geojson"),
              "--categories", "health,sports", "--standard", "all", "--out", str(d / "out")])
    lon = rng.uniform(BBOX[0], BBOX[2], 2)
    lat = rng.uniform(BBOX[1], BBOX[3], 2)
    add = d / "add.csv"
    pd.DataFrame({"category": ["health", "sports"], "lon": lon, "lat": lat}).to_csv(add, index=False)
    return {"osm": osm, "out": d / "out", "add": add, "remove": ["1", "4"]}


RUNS = ["toy_run", "shanghai_run"]


def _frame(g):
    return pd.DataFrame(g.drop(columns="geometry"))


def _assert_gaps_equal(a, b):
    pd.testing.assert_frame_equal(_frame(a), _frame(b), check_exact=False, rtol=0, atol=ATOL)
    assert a.geometry.normalize().equals(b.geometry.normalize())


@pytest.mark.parametrize("run", RUNS)
def test_stored_run_equals_a_full_rerun(run, request):
    r = request.getfixturevalue(run)
    stored, fresh = load_analysis(r["out"]), reanalyze(r["out"])
    assert stored.network.n_nodes == fresh.network.n_nodes and (stored.network.u == fresh.network.u).all()
    assert (stored.times.graph.matrix != fresh.times.graph.matrix).nnz == 0  # the access graph, rebuilt
    for col in fresh.times.minutes:  # inf (beyond the cut-off) included
        assert np.array_equal(stored.residents[col].to_numpy(float), fresh.residents[col].to_numpy(float))
    pd.testing.assert_frame_equal(stored.coverage, fresh.coverage, check_exact=False, rtol=0, atol=ATOL)
    for cat in fresh.config.categories:  # the distance fields searched again on first use
        assert np.array_equal(stored.times.distances_m[cat], fresh.times.distances_m[cat])
    _assert_gaps_equal(find_gaps(stored), find_gaps(fresh))
    _assert_gaps_equal(find_gaps(stored, cell_m=250), find_gaps(fresh, cell_m=250))

    s1 = scenario(stored, add=r["add"], remove=r["remove"])
    s2 = scenario(fresh, add=r["add"], remove=r["remove"])
    pd.testing.assert_frame_equal(s1.change, s2.change, check_exact=False, rtol=0, atol=ATOL)
    pd.testing.assert_frame_equal(s1.coverage, s2.coverage, check_exact=False, rtol=0, atol=ATOL)
    # independently: walking_times from scratch (every point snapped again) on the scenario's facilities
    cats = sorted(set(s1.added.category) | set(s1.removed.category))
    sub = s1.facilities[s1.facilities.category.isin(cats)].reset_index(drop=True)
    cfg = dataclasses.replace(fresh.config, categories=tuple(c for c in fresh.config.categories if c in cats))
    wt = walking_times(fresh.network, fresh.residents[["population", "geometry"]], sub, config=cfg)
    for c in wt.minutes:
        np.testing.assert_allclose(s1.residents[c].to_numpy(float), wt.minutes[c].to_numpy(), rtol=0, atol=ATOL)
    assert (s1.change.newly_covered_population > 0).any()


@pytest.mark.parametrize("run", RUNS)
def test_commands_work_without_the_osm_file(run, request, tmp_path, monkeypatch, capsys):
    r = request.getfixturevalue(run)
    out = tmp_path / "out"
    shutil.copytree(r["out"], out)
    fresh = reanalyze(out)
    expect_gaps = find_gaps(fresh, cell_m=150)
    expect_change = scenario(fresh, add=r["add"]).change
    moved = r["osm"].with_name(r["osm"].name + ".away")
    r["osm"].rename(moved)
    try:
        import lifecircle.read.osm as osm_module

        def no_osm(*args, **kwargs):
            raise AssertionError("the OSM file was opened")

        monkeypatch.setattr(osm_module, "_opl_blocks", no_osm)  # what reads an OSM file
        monkeypatch.setattr(pipeline, "reanalyze", no_osm)
        assert main(["-q", "gaps", str(out), "--cell-m", "150", "--no-exact", "--no-map"]) == 0
        got = gpd.read_file(out / "gaps.gpkg", layer="gaps")
        exp = expect_gaps.drop(columns=[c for c in INTERNAL_GAP_COLUMNS if c in expect_gaps])  # not written
        for c in ("mean_minutes", "median_minutes", "max_minutes"):
            exp[c] = exp[c].replace([np.inf, -np.inf], np.nan)
        pd.testing.assert_frame_equal(_frame(got).drop(columns="unit"), _frame(exp).drop(columns="unit"),
                                      check_exact=False, rtol=0, atol=ATOL, check_dtype=False)
        assert main(["-q", "scenario", str(out), "--add", str(r["add"])]) == 0
        change = read_table_back(out / "scenario" / "scenario_change.csv")
        num = [c for c in expect_change.columns if c not in ("unit", "category") and expect_change[c].dtype != bool]
        np.testing.assert_allclose(change[num].to_numpy(float), expect_change[num].to_numpy(float),
                                   rtol=0, atol=ATOL)
        assert main(["-q", "map", str(out), "--no-png", "--basemap", "none"]) == 0
        assert (out / "map.html").stat().st_size > 0
    finally:
        moved.rename(r["osm"])
    assert capsys.readouterr().err == ""


def _alter_one_value(path: Path) -> None:
    """Change one minute in the file, keep its old checksum (same size, intact zip structure)."""
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    key = next(k for k in arrays if k.startswith("minutes_"))
    arrays[key] = arrays[key].copy()
    arrays[key][0] += 1.0
    size = path.stat().st_size
    np.savez(path, **arrays)
    assert path.stat().st_size == size


def test_a_damaged_run_state_is_refused_with_one_line(toy_run, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(toy_run["out"], out)
    _alter_one_value(out / "run_state.npz")
    for args in (["gaps", str(out)], ["scenario", str(out), "--add", str(toy_run["add"])]):
        assert main(args) == 1
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "Traceback" not in err
        assert "run_state.npz is damaged" in err and "sha256" in err and "checksum" in err
        assert "lifecircle analyze" in err  # the fix
    with pytest.raises(InputFileError, match="checksum"):
        load_analysis(out)
    (out / "run_state.npz").write_bytes((out / "run_state.npz").read_bytes()[:500])  # truncated
    assert main(["gaps", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "run_state.npz" in err


def test_load_analysis_reruns_only_when_the_measurement_changes(toy_run, monkeypatch):
    out = toy_run["out"]
    calls = []
    real = pipeline.reanalyze
    monkeypatch.setattr(pipeline, "reanalyze", lambda *a, **k: calls.append(k) or real(*a, **k))
    # thresholds and target: counted on the stored minutes (the cut-off kept at 30 min)
    a = load_analysis(out, minutes=(5, 12), max_minutes=30, target=0.5)
    assert calls == []
    b = real(out, minutes=(5, 12), max_minutes=30, target=0.5)
    pd.testing.assert_frame_equal(a.coverage, b.coverage, check_exact=False, rtol=0, atol=ATOL)
    assert a.summary["categories"]["health"]["shares_by_minutes"] == b.summary["categories"]["health"][
        "shares_by_minutes"]
    assert "within_12min_health" in a.residents and "within_15min_health" not in a.residents
    # another walking speed, or a cut-off that changes with the thresholds: measured again
    load_analysis(out, walk_speed_kmh=3.0)
    load_analysis(out, minutes=(10,))
    assert [sorted(set(k) - {"progress"}) for k in calls] == [["walk_speed_kmh"], ["minutes"]]


def test_an_older_folder_without_run_state_is_analysed_again(toy_run, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(toy_run["out"], out)
    (out / "run_state.npz").unlink()
    m = json.loads((out / "lifecircle_manifest.json").read_text(encoding="utf-8"))
    del m["files"]["run_state.npz"]
    (out / "lifecircle_manifest.json").write_text(json.dumps(m), encoding="utf-8")
    assert main(["-q", "gaps", str(out), "--no-exact", "--no-map"]) == 0  # from the OSM file it records
    got, expect = gpd.read_file(out / "gaps.gpkg", layer="gaps"), find_gaps(load_analysis(toy_run["out"]))
    np.testing.assert_allclose(got.population.to_numpy(), expect.population.to_numpy(), rtol=0, atol=ATOL)
    assert len(got) == len(expect) > 0


def test_map_command_draws_the_streets_of_the_stored_run(tmp_path):
    """`lifecircle map DIR` redraws map.html with the same streets layer analyze drew (from run_state.npz)."""
    import re

    out = tmp_path / "out"
    assert main(["-q", "analyze", "--osm", str(toy_town_osm()), "--out", str(out), "--no-png", "--no-report"]) == 0
    first = (out / "map.html").read_text(encoding="utf-8")
    assert "streets" in first  # (the layer name, 街道 in \\u escapes)
    assert main(["-q", "map", str(out), "--no-png"]) == 0
    again = (out / "map.html").read_text(encoding="utf-8")
    assert "streets" in again
    coords = lambda html: sorted(re.findall(r"\[121\.\d+, 31\.\d+\]", html))  # noqa: E731
    assert coords(again) == coords(first)
