"""Coverage: hand-worked tables and hypothesis properties (shares in [0, 1], monotone)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
from hypothesis import example, given, settings
from hypothesis import strategies as st

from conftest import lonlat
from lifecircle import AnalysisConfig, network_from_osm, walking_times
from lifecircle.measure.coverage import STUDY_AREA, coverage_table
from lifecircle.datasets import toy_town_osm


def test_hand_table_with_units_and_all():
    df = pd.DataFrame({
        "population": [100, 50, 50, 800],
        "minutes_to_health": [3, 12, 30, 14],
        "minutes_to_sports": [14, 2, 1, np.inf],
        "unit": ["A", "A", "B", "B"],
    })
    t = coverage_table(df, categories=["health", "sports"], minutes=[5, 15], target=0.85, unit_column="unit")
    get = lambda u, c, m: t[(t.unit == u) & (t.category == c) & (t.minutes == m)].iloc[0]
    r = get(STUDY_AREA, "health", 15)
    assert (r.population, r.covered_population, r.share) == (1000, 950, 0.95) and r.meets_target
    r = get(STUDY_AREA, "all", 15)  # both within 15: rows 1 and 2 only
    assert r.covered_population == 150 and r.share == 0.15 and not r.meets_target
    assert r.population_to_cover == 850 - 150  # 0.85 * 1000 - 150
    r = get("B", "sports", 5)
    assert r.covered_population == 50 and r.population == 850
    assert set(t.unit) == {STUDY_AREA, "A", "B"} and len(t) == 3 * 3 * 2


def test_zero_population_unit_has_nan_share():
    df = pd.DataFrame({"population": [0.0], "minutes_to_health": [1.0]})
    t = coverage_table(df, categories=["health"], minutes=[15])
    assert np.isnan(t.share[0]) and not t.meets_target[0] and t.population_to_cover[0] == 0


@settings(max_examples=60, deadline=None)
@given(
    pops=st.lists(st.floats(0, 1e4), min_size=1, max_size=30),
    data=st.data(),
)
@example(pops=[1.0], data=None)
def test_shares_bounded_and_monotone_in_minutes(pops, data):
    n = len(pops)
    mins = (data.draw(st.lists(st.one_of(st.floats(0, 60), st.just(np.inf)), min_size=n, max_size=n))
            if data else [np.inf] * n)
    df = pd.DataFrame({"population": pops, "minutes_to_health": mins})
    t = coverage_table(df, categories=["health"], minutes=[1, 5, 10, 15, 30, 60])
    s = t.share.dropna().to_numpy()
    assert ((s >= 0) & (s <= 1)).all()
    assert (np.diff(s) >= -1e-12).all()


@settings(max_examples=25, deadline=None)
@given(fx=st.floats(-50, 850), fy=st.floats(-50, 450))
def test_adding_a_facility_never_lowers_coverage(fx, fy):
    net = _TOY_NET
    rng = np.random.default_rng(0)
    rx, ry = rng.uniform(0, 800, 60), rng.uniform(0, 400, 60)
    lo, la = lonlat(rx, ry)
    res = gpd.GeoDataFrame({"population": rng.integers(1, 100, 60)}, geometry=gpd.points_from_xy(lo, la), crs=4326)
    flo, fla = lonlat([100, fx], [10, fy])
    fac = gpd.GeoDataFrame({"category": ["health", "health"]}, geometry=gpd.points_from_xy(flo, fla), crs=4326)
    cfg = AnalysisConfig(categories=("health",), minutes=(2, 5, 10))
    before = walking_times(net, res, fac.iloc[:1], config=cfg).minutes.assign(population=res.population)
    after = walking_times(net, res, fac, config=cfg).minutes.assign(population=res.population)
    assert (after["minutes_to_health"] <= before["minutes_to_health"] + 1e-9).all()
    tb = coverage_table(before, categories=["health"], minutes=cfg.minutes)
    ta = coverage_table(after, categories=["health"], minutes=cfg.minutes)
    assert (ta.share.to_numpy() >= tb.share.to_numpy() - 1e-12).all()


_TOY_NET = network_from_osm(toy_town_osm())
