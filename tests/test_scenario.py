"""What-if scenarios: equal to a from-scratch analysis, hand-checked changes, properties, errors."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import lonlat
from lifecircle import AnalysisConfig, analyze
from lifecircle.measure.coverage import STUDY_AREA
from lifecircle.read.crs import wgs84_to_gcj02
from lifecircle.datasets import toy_town_osm
from lifecircle.errors import CRSError, InputDataError
from lifecircle.plan.scenario import CHANGE_COLUMNS, scenario
from lifecircle.plan.sites import suggest_sites
from lifecircle.present.outputs import write_scenario, write_sites

BBOX = (121.4611262, 31.2196145, 121.4863121, 31.2411914)
CORE = ["category", "subcategory", "name", "source", "geometry"]


@pytest.fixture(scope="module")
def toy():
    return analyze(toy_town_osm())


@pytest.fixture(scope="module")
def shanghai(shanghai_network, shanghai_facilities):
    f = shanghai_facilities[shanghai_facilities.category.isin(["health", "sport"])].reset_index(drop=True)
    fac = gpd.GeoDataFrame({"category": f.category.replace({"sport": "sports"}).to_numpy(), "subcategory": "osm",
                            "name": f.name.to_numpy(), "source": "osm"}, geometry=f.geometry.to_numpy(), crs=4326)
    rng = np.random.default_rng(5)
    gx, gy = np.meshgrid(np.linspace(BBOX[0], BBOX[2], 35), np.linspace(BBOX[1], BBOX[3], 35))
    res = gpd.GeoDataFrame({"population": rng.integers(0, 200, gx.size).astype(float)},
                           geometry=gpd.points_from_xy(gx.ravel(), gy.ravel()), crs=4326)
    mid = (BBOX[1] + BBOX[3]) / 2
    units = gpd.GeoDataFrame({"unit": ["south", "north"]}, geometry=[
        shapely.box(BBOX[0] - 0.01, BBOX[1] - 0.01, BBOX[2] + 0.01, mid),
        shapely.box(BBOX[0] - 0.01, mid, BBOX[2] + 0.01, BBOX[3] + 0.01)], crs=4326)
    cfg = AnalysisConfig(minutes=(5, 10), categories=("health", "sports"), standard="all")
    a = analyze(network=shanghai_network, facilities=fac, population=res, units=units, config=cfg)
    return a, fac, res, units


def fresh(a, fac, res, units=None):
    return analyze(network=a.network, facilities=gpd.GeoDataFrame(fac, crs=4326), replace_osm_facilities=True,
                   population=res, units=units, config=a.config)


def test_equals_a_fresh_analysis_on_shanghai(shanghai, tmp_path):
    a, fac, res, units = shanghai
    rng = np.random.default_rng(8)
    lon = rng.uniform(BBOX[0], BBOX[2], 4)
    lat = rng.uniform(BBOX[1], BBOX[3], 4)
    cats = ["health", "health", "sports", "体育"]  # aliases are understood
    glon, glat = wgs84_to_gcj02(lon, lat)
    pd.DataFrame({"category": cats, "lng": glon, "lat": glat}).to_csv(tmp_path / "add.csv", index=False)
    # remove: the first health facility by a point 10 m east of it (and a point with no category
    # 5 m north of sports facility 'si'), given in GCJ-02
    hi = int(np.flatnonzero(fac.category == "health")[0])
    si = int(np.flatnonzero(fac.category == "sports")[1])
    to_m = a.network.crs
    p = gpd.GeoSeries(fac.geometry[[hi, si]].to_numpy(), crs=4326).to_crs(to_m)
    moved = gpd.GeoSeries(shapely.points(p.x.to_numpy() + [10, 0], p.y.to_numpy() + [0, 5]), crs=to_m).to_crs(4326)
    mlon, mlat = wgs84_to_gcj02(moved.x.to_numpy(), moved.y.to_numpy())
    pd.DataFrame({"lon": mlon, "lat": mlat}).to_csv(tmp_path / "closed.csv", index=False)
    s = scenario(a, add=tmp_path / "add.csv", add_crs="gcj02", remove=tmp_path / "closed.csv", remove_crs="gcj02")
    assert sorted(s.removed.index.tolist()) == sorted([hi, si])
    assert s.added.category.tolist() == ["health", "health", "sports", "sports"]
    expect = pd.concat([fac.drop(index=[hi, si]),
                        gpd.GeoDataFrame({"category": s.added.category, "source": "x"},
                                         geometry=gpd.points_from_xy(lon, lat), crs=4326)], ignore_index=True)
    b = fresh(a, expect, res, units)
    pd.testing.assert_frame_equal(s.coverage, b.coverage, check_exact=False, rtol=0, atol=1e-9)
    for c in ("minutes_to_health", "minutes_to_sports", "within_10min_all"):
        np.testing.assert_allclose(s.residents[c].to_numpy(float), b.residents[c].to_numpy(float), atol=1e-9)
    # the change table: before from the analysis, after from the fresh run
    ch = s.change.set_index(["unit", "category", "minutes"])
    for r in b.coverage.itertuples():
        row = ch.loc[(r.unit, r.category, r.minutes)]
        assert row.covered_after == pytest.approx(r.covered_population)
        assert row.share_after == pytest.approx(r.share, nan_ok=True)
        before = a.coverage[(a.coverage.unit == r.unit) & (a.coverage.category == r.category)
                            & (a.coverage.minutes == r.minutes)].iloc[0]
        assert row.covered_after - row.covered_before == pytest.approx(
            row.newly_covered_population - row.no_longer_covered_population)
        assert row.covered_before == pytest.approx(before.covered_population)
    assert list(s.change.columns) == CHANGE_COLUMNS
    assert (s.change.newly_covered_population > 0).any() and (s.change.no_longer_covered_population > 0).any()


def test_closing_the_toy_health_centre_by_hand(toy):
    a = toy
    assert a.facilities.category[0] == "health" and (a.facilities.category == "health").sum() == 1
    osm_id = f"{a.facilities.osm_type[0]}/{int(a.facilities.osm_id[0])}"
    s = scenario(a, remove=[osm_id])
    assert s.removed.index.tolist() == [0] and s.removed.removed_by.tolist() == [osm_id]
    # no health facility is left: nobody is covered, for health or for the complete life circle
    pop = a.residents.population
    for cat in ("health", "all"):
        for m in a.config.minutes:
            r = s.change[(s.change.category == cat) & (s.change.minutes == m)].iloc[0]
            was = pop[a.residents[f"minutes_to_{cat}"] <= m].sum()
            assert (r.share_after, r.covered_after, r.newly_covered_population) == (0.0, 0.0, 0.0)
            assert r.no_longer_covered_population == pytest.approx(was)
    assert np.isinf(s.residents.minutes_to_health).all()
    # other categories are untouched
    other = s.change[s.change.category == "sports"]
    assert (other.covered_before == other.covered_after).all()
    # re-opening it at the same place gives the analysis back
    back = scenario(a, remove=[0], add=a.facilities.iloc[[0]][["category", "geometry"]])
    pd.testing.assert_frame_equal(back.coverage, a.coverage, check_exact=False, atol=1e-12)


def test_adding_the_suggested_sites_gives_the_predicted_share(shanghai, tmp_path):
    a, _, _, _ = shanghai
    sites = suggest_sites(a, category="sports", k=4)
    paths = write_sites(sites, tmp_path)
    s = scenario(a, add=paths["suggested_sites.csv"])
    r = s.change[(s.change.unit == STUDY_AREA) & (s.change.category == "sports") & (s.change.minutes == 10)].iloc[0]
    assert r.share_after == pytest.approx(sites.cumulative_share.iloc[-1], abs=1e-12)
    assert r.newly_covered_population == pytest.approx(sites.newly_covered_population.sum())
    written = write_scenario(s, tmp_path / "scen")
    assert sorted(p.name for p in (tmp_path / "scen").iterdir()) == sorted(
        ["lifecircle_manifest.json", *(written_name.name for written_name in written.values())])
    assert len(gpd.read_file(written["scenario_facilities.gpkg"], layer="facilities")) == len(a.facilities) + 4
    assert "sports" in s.report()


@settings(max_examples=10, deadline=None)
@given(x=st.floats(-50, 850), y=st.floats(-50, 450), cat=st.sampled_from(["health", "sports", "culture"]),
       drop=st.integers(0, 4))
def test_adding_never_lowers_and_removing_never_raises_coverage(toy, x, y, cat, drop):
    a = toy
    lo, la = lonlat([x], [y])
    up = scenario(a, add=gpd.GeoDataFrame({"category": [cat]}, geometry=gpd.points_from_xy(lo, la), crs=4326))
    assert (up.change.covered_after >= up.change.covered_before - 1e-9).all()
    assert (up.change.no_longer_covered_population == 0).all()
    down = scenario(a, remove=[drop])
    assert (down.change.covered_after <= down.change.covered_before + 1e-9).all()
    assert (down.change.newly_covered_population == 0).all()


def test_bad_inputs(toy, tmp_path):
    a = toy
    with pytest.raises(InputDataError, match="no facility has that index"):
        scenario(a, remove=[99])
    with pytest.raises(InputDataError, match="OSM id"):
        scenario(a, remove=["way/1"])
    with pytest.raises(InputDataError, match="needs facilities to add"):
        scenario(a)
    with pytest.raises(InputDataError, match="match_m"):
        scenario(a, remove=[0], match_m=-1)
    lo, la = lonlat([100, 400], [60, 200])  # 50 m from the health centre at (100, 10); nothing at (400, 200)
    pd.DataFrame({"category": ["health", "health"], "lon": lo, "lat": la}).to_csv(tmp_path / "r.csv", index=False)
    with pytest.raises(InputDataError, match="--remove-crs") as err:
        scenario(a, remove=tmp_path / "r.csv", match_m=40)
    assert "2 of 2 points" in str(err.value)
    pd.DataFrame({"category": ["health"], "lon": lo[:1], "lat": la[:1]}).to_csv(tmp_path / "r.csv", index=False)
    assert scenario(a, remove=tmp_path / "r.csv", match_m=60).removed.index.tolist() == [0]
    # added points far from every street (e.g. another CRS): an error, not a silent no-op
    far = gpd.GeoDataFrame({"category": ["health"]}, geometry=gpd.points_from_xy(*lonlat([3000], [3000])), crs=4326)
    with pytest.raises(CRSError, match="--add-crs"):
        scenario(a, add=far)
    near = gpd.GeoDataFrame({"category": ["school"]}, geometry=gpd.points_from_xy(lo, la)[:1], crs=4326)
    with pytest.raises(InputDataError, match="no known category"):
        scenario(a, add=near)
    only = analyze(toy_town_osm(), config=AnalysisConfig(categories=("health",)))
    with pytest.raises(InputDataError, match="was not analysed"):
        scenario(only, add=near.assign(category="culture"))
    with pytest.raises(InputDataError, match="no category column"):
        scenario(a, add=near.drop(columns="category"))
