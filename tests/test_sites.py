"""New-site suggestions: hand-reasoned picks, MILP vs brute force, prediction == a from-scratch analyze."""

from __future__ import annotations

import itertools
import logging

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import shapely
from hypothesis import example, given, settings
from hypothesis import strategies as st

from conftest import lonlat
from lifecircle import AnalysisConfig, WalkNetwork, analyze, network_from_osm, walking_times
from lifecircle.read.crs import wgs84_to_bd09, wgs84_to_gcj02
from lifecircle.datasets import toy_town_osm
from lifecircle.errors import CRSError, InputDataError
from lifecircle.read.facilities import facilities_from_file, facilities_from_osm
from lifecircle.plan.sites import (
    SITE_COLUMNS,
    candidates_from_points,
    coverage_matrix,
    greedy_cover,
    plan_sites,
    sites_as_facilities,
    sites_needed,
    solve_max_cover,
    solve_min_sites,
    suggest_sites,
)
from lifecircle.present.outputs import write_sites

BBOX = (121.4611262, 31.2196145, 121.4863121, 31.2411914)
HEALTH = AnalysisConfig(categories=("health",))



def points(xy_m, **cols):
    lo, la = lonlat([p[0] for p in xy_m], [p[1] for p in xy_m])
    return gpd.GeoDataFrame(cols, geometry=gpd.points_from_xy(lo, la), crs=4326)


def facilities(xy_m, category="health"):
    return points(xy_m, category=[category] * len(xy_m), subcategory="test", name=None, source="list")


def line_network(x0, x1, step=100):
    """A straight street along y = 0 with a node every ``step`` metres."""
    xs = np.arange(x0, x1 + step, step)
    lo, la = lonlat(xs, np.zeros(len(xs)))
    return WalkNetwork.from_lonlat(lo, la, np.arange(len(xs) - 1), np.arange(1, len(xs))), xs


def with_sites(analysis, sites):
    """The analysis' facilities plus the suggested sites, as a facility layer for analyze()."""
    base = analysis.facilities[["category", "subcategory", "name", "source", "geometry"]]
    return gpd.GeoDataFrame(pd.concat([base, sites_as_facilities(sites)], ignore_index=True), crs=4326)


def rerun(analysis, fac, residents, units=None):
    return analyze(network=analysis.network, facilities=fac, replace_osm_facilities=True, population=residents,
                   units=units, config=analysis.config)


# ------------------------------------------------------------------ a plus-shaped town, by hand


@pytest.fixture(scope="module")
def plus_town():
    """Four 1200 m arms from a junction C at (0, 0), a node every 200 m.

    Residents stand 10 m off the streets: 150 people 800 m up the north arm, 150 800 m down
    the south arm, 250 at the far end of the west arm (1200 m) and 100 800 m along the east arm.
    The only clinic is at the east end (1200, 10): the east residents walk 400 + 10 + 10 = 420 m
    (covered); everyone else is more than 2 km away (not covered). 15 min at 4 km/h = 1000 m.
    """
    xy = [(0, 0)]
    edges = []
    for dx, dy in ((0, 1), (1, 0), (0, -1), (-1, 0)):
        prev = 0
        for step in range(1, 7):
            xy.append((dx * 200 * step, dy * 200 * step))
            edges.append((prev, len(xy) - 1))
            prev = len(xy) - 1
    lo, la = lonlat([p[0] for p in xy], [p[1] for p in xy])
    net = WalkNetwork.from_lonlat(lo, la, [e[0] for e in edges], [e[1] for e in edges])
    res = points([(10, 800), (10, -800), (-1200, 10), (800, 10)], population=[150.0, 150.0, 250.0, 100.0])
    fac = facilities([(1200, 10)])
    a = analyze(network=net, facilities=fac, population=res, config=HEALTH)
    return a, res, xy


def test_greedy_picks_the_junction_then_the_west_end(plus_town):
    a, res, xy = plus_town
    s = suggest_sites(a, category="health", k=3)
    # Hand reasoning: the junction C is 810 m from both the north and the south residents, so a
    # site there covers 150 + 150 = 300; no other node reaches both (N200 is 1010 m from the south
    # group). Each west node from W400 on covers the 250 at the west end (W400: 800 + 10 m), and
    # nothing else. So the 250-person cluster, the biggest single group, comes second: 300 > 250.
    assert list(s.columns[:-1]) == SITE_COLUMNS
    assert s.node.iloc[0] == 0 and xy[s.node.iloc[0]] == (0, 0)
    assert s.newly_covered_population.tolist() == [300.0, 250.0]  # everyone covered: stops at 2
    x, y = xy[s.node.iloc[1]]
    assert y == 0 and x <= -400
    # shares of the 650 people: 100 covered today, +300, +250
    assert s.attrs["share_before"] == pytest.approx(100 / 650)
    np.testing.assert_allclose(s.cumulative_covered_population, [400, 650])
    np.testing.assert_allclose(s.cumulative_share, [400 / 650, 1.0])
    assert s.lon.iloc[0] == pytest.approx(a.network.lon[0]) and s.crs.to_epsg() == 4326
    # k = 1 takes the junction only; a 60 % target needs only it too (400/650 = 61.5 %)
    assert suggest_sites(a, category="health", k=1).node.tolist() == [0]
    assert len(suggest_sites(a, category="health", target=0.6)) == 1


def test_plus_town_prediction_equals_a_fresh_analysis(plus_town):
    a, res, _ = plus_town
    s = suggest_sites(a, category="health", k=2)
    b = rerun(a, with_sites(a, s), res)
    assert b.category_share("health") == pytest.approx(1.0, abs=1e-12)
    b1 = rerun(a, with_sites(a, s.iloc[:1]), res)
    assert b1.category_share("health") == pytest.approx(400 / 650, abs=1e-12)


def test_sites_needed_by_hand(plus_town):
    a, _, _ = plus_town
    plan = plan_sites(a, category="health")  # 85 % of 650 = 552.5 people: C (400) is not enough
    t = plan.table
    r = t.iloc[0]
    assert (r.unit, r.sites_needed, r.exact_sites, r.gap, r.reachable) == ("study_area", 2, 2, 0, True)
    assert r.share_after == pytest.approx(1.0)
    assert plan.sites.node.iloc[0] == 0
    pd.testing.assert_frame_equal(sites_needed(a, category="health"), t)
    assert len(pd.concat([t, t])) == 2  # plain tables: they stack (no frames hidden in attrs)


def test_target_not_reachable_with_the_candidates(plus_town):
    a, _, _ = plus_town
    # only the junction and the north-arm end (1200 m from the south group): at most 100 + 300
    # of 650 people, short of 85 %
    only = gpd.GeoDataFrame(geometry=gpd.points_from_xy(*lonlat([0, 0], [0, 1200])), crs=4326)
    t = sites_needed(a, category="health", candidates=only)
    r = t.iloc[0]
    assert not r.reachable and pd.isna(r.sites_needed) and pd.isna(r.exact_sites)
    assert r.share_after == pytest.approx(400 / 650) and "not reachable" in r.note
    s = suggest_sites(a, category="health", candidates=only)
    assert len(s) == 1 and not s.attrs["reached"] and s.attrs["max_share"] == pytest.approx(400 / 650)
    with pytest.raises(InputDataError, match="time_limit_s"):
        sites_needed(a, category="health", time_limit_s=0)


# ------------------------------------------------------------------ greedy is not optimal: MILP


@pytest.fixture(scope="module")
def line_town():
    """A street from -3000 to 4000 m. Residents 10 m off it at 0 (2 people), 1500 (3), 2500 (3), 4000 (2).

    A node at p covers a resident at x when |p - x| + 10 <= 1000, i.e. |p - x| <= 900 on the
    100 m node grid. So the possible catchments are {0, 1500} (p in 600..900), {1500, 2500}
    (1600..2400), {2500, 4000} (3100..3400) and the single groups; no node reaches three.
    The clinic at -3000 is beyond the 2 km search cut-off for all of them.
    """
    net, _ = line_network(-3000, 4000)
    res = points([(0, 10), (1500, 10), (2500, 10), (4000, 10)], population=[2.0, 3.0, 3.0, 2.0])
    a = analyze(network=net, facilities=facilities([(-3000, 10)]), population=res, config=HEALTH)
    return a, res


def test_greedy_gap_against_exact_on_a_line(line_town):
    a, res = line_town
    # Greedy takes the middle pair (3 + 3 = 6) first, then needs two more sites for the ends;
    # the two outer pairs {0, 1500} + {2500, 4000} cover all 10 people with 2 sites.
    plan = plan_sites(a, category="health", target=1.0)
    r = plan.table.iloc[0]
    assert (r.sites_needed, r.exact_sites, r.gap, r.exact_status) == (3, 2, 1, "optimal")
    s = suggest_sites(a, category="health", k=2, exact=True)
    assert s.newly_covered_population.tolist() == [6.0, 2.0]
    assert s.attrs["exact"]["covered_population"] == pytest.approx(10.0)
    assert s.attrs["exact"]["greedy_gap_population"] == pytest.approx(2.0)
    # greedy's three sites, added to the facilities, really cover everyone
    assert rerun(a, with_sites(a, plan.sites), res).category_share("health") == pytest.approx(1.0)


def brute_max_cover(cov, w, k):
    best = 0.0
    for rows in itertools.combinations(range(cov.shape[0]), min(k, cov.shape[0])):
        best = max(best, float(w[cov[list(rows)].any(axis=0)].sum()))
    return best


def brute_min_sites(cov, w, need):
    for k in range(0, cov.shape[0] + 1):
        for rows in itertools.combinations(range(cov.shape[0]), k):
            if w[cov[list(rows)].any(axis=0)].sum() >= need - 1e-9:
                return k
    return None


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), m=st.integers(1, 8), n=st.integers(1, 12), k=st.integers(1, 4),
       density=st.floats(0.05, 0.6))
@example(seed=0, m=3, n=6, k=2, density=0.5)
def test_milp_matches_brute_force_and_greedy_bound(seed, m, n, k, density):
    rng = np.random.default_rng(seed)
    cov = rng.random((m, n)) < density
    w = rng.integers(0, 20, n).astype(float)
    e = solve_max_cover(sp.csr_matrix(cov), w, k=k, time_limit_s=10)
    best = brute_max_cover(cov, w, k)
    assert e.status == "optimal" and len(e.chosen) <= k
    assert e.covered_weight == pytest.approx(best)
    _, gains = greedy_cover(sp.csr_matrix(cov), w, k=k)
    assert gains.sum() >= (1 - 1 / np.e) * best - 1e-9  # the (1 - 1/e) guarantee
    assert gains.sum() <= best + 1e-9
    need = float(rng.uniform(0.1, 1.0) * w.sum())
    exact = solve_min_sites(sp.csr_matrix(cov), w, need=need, time_limit_s=10)
    expect = brute_min_sites(cov, w, need) if need > 0 else 0
    if expect is None:
        assert exact.status == "infeasible"
    else:
        assert exact.status == "optimal" and len(exact.chosen) == expect
        assert exact.covered_weight >= need - 1e-9


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), m=st.integers(1, 30), n=st.integers(1, 40))
def test_greedy_gains_positive_and_non_increasing(seed, m, n):
    rng = np.random.default_rng(seed)
    cov = sp.csr_matrix(rng.random((m, n)) < 0.2)
    w = rng.random(n) * 100
    chosen, gains = greedy_cover(cov, w)
    assert len(set(chosen.tolist())) == len(chosen)
    assert (gains > 0).all() and (np.diff(gains) <= 1e-9).all()
    # without k or need greedy runs until no row adds anything: every coverable point is covered
    coverable = np.asarray(cov.sum(axis=0)).ravel() > 0
    assert gains.sum() == pytest.approx(w[coverable].sum())


# ------------------------------------------------------------------ toy town: predictions and properties


@pytest.fixture(scope="module")
def toy():
    return network_from_osm(toy_town_osm()), facilities_from_osm(toy_town_osm())


def random_residents(rng, n):
    lo, la = lonlat(rng.uniform(-100, 900, n), rng.uniform(-100, 500, n))
    return gpd.GeoDataFrame({"population": rng.integers(0, 50, n).astype(float)},
                            geometry=gpd.points_from_xy(lo, la), crs=4326)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), use_points=st.booleans())
@example(seed=1, use_points=False)
@example(seed=2, use_points=True)
def test_predicted_coverage_equals_fresh_analysis_and_never_falls(toy, seed, use_points):
    net, fac = toy
    rng = np.random.default_rng(seed)
    res = random_residents(rng, 120)
    cfg = AnalysisConfig(minutes=(2, 4), categories=("health", "sports"))
    a = analyze(network=net, facilities=fac, replace_osm_facilities=True, population=res, config=cfg)
    cands = None
    if use_points:  # arbitrary points: they snap mid-edge, beside residents' own projections
        cl, ca = lonlat(rng.uniform(-50, 850, 40), rng.uniform(-50, 450, 40))
        cands = gpd.GeoDataFrame(geometry=gpd.points_from_xy(np.r_[cl, res.geometry.x[:5]],
                                                             np.r_[ca, res.geometry.y[:5]]), crs=4326)
    s = suggest_sites(a, category="health", k=5, candidates=cands)
    shares = [s.attrs["share_before"], *s.cumulative_share]
    assert (np.diff(shares) >= 0).all() and (s.newly_covered_population > 0).all()
    fresh = [rerun(a, with_sites(a, s.iloc[:r]), res).category_share("health") for r in range(len(s) + 1)]
    np.testing.assert_allclose(fresh, shares, rtol=0, atol=1e-12)
    assert (np.diff(fresh) >= 0).all()


def test_coverage_matrix_equals_one_rebuild_per_candidate(toy):
    """Each row against walking_times() with that candidate as the only facility (a full rebuild)."""
    net, fac = toy
    rng = np.random.default_rng(4)
    res = random_residents(rng, 150)
    cfg = AnalysisConfig(minutes=(3,), categories=("health",))
    a = analyze(network=net, facilities=fac, replace_osm_facilities=True, population=res, config=cfg)
    cl, ca = lonlat(rng.uniform(-50, 850, 12), rng.uniform(-50, 450, 12))
    cands = candidates_from_points(net, gpd.GeoDataFrame(geometry=gpd.points_from_xy(cl, ca), crs=4326))
    everyone = np.arange(len(res))
    by_cand = coverage_matrix(a, cands, everyone, minutes=3, search_from="candidates").toarray()
    by_res = coverage_matrix(a, cands, everyone, minutes=3, search_from="residents").toarray()
    assert np.array_equal(by_cand, by_res)
    for i in range(len(cands)):
        one = gpd.GeoDataFrame({"category": ["health"]}, geometry=gpd.points_from_xy([cands.lon[i]], [cands.lat[i]]),
                               crs=4326)
        mins = walking_times(net, res, one, config=cfg).minutes["minutes_to_health"].to_numpy()
        assert np.array_equal(by_cand[i], mins <= 3), i
    assert 0 < by_cand.sum() < by_cand.size


def test_already_covered_is_an_empty_table(toy, caplog):
    net, fac = toy
    res = points([(0, 10), (200, 10)], population=[5.0, 5.0])  # beside the health centre
    a = analyze(network=net, facilities=fac, replace_osm_facilities=True, population=res, config=HEALTH)
    with caplog.at_level(logging.INFO, logger="lifecircle"):
        s = suggest_sites(a, category="health", k=3)
    assert len(s) == 0 and list(s.columns[:-1]) == SITE_COLUMNS
    assert "already 100 % covered" in caplog.text
    t = sites_needed(a, category="health")
    assert t.sites_needed.tolist() == [0] and t.note.tolist() == ["already meets the target"]


def test_bad_inputs(toy, plus_town):
    a, _, _ = plus_town
    for k in (0, -2, 1.5, True):
        with pytest.raises(InputDataError, match="k must be"):
            suggest_sites(a, category="health", k=k)
    with pytest.raises(InputDataError, match="unknown category 'sport'"):
        suggest_sites(a, category="sport")
    with pytest.raises(InputDataError, match="unknown category"):
        sites_needed(a, category="all")
    with pytest.raises(InputDataError, match="target"):
        suggest_sites(a, category="health", target=1.5)
    with pytest.raises(InputDataError, match="--max-minutes"):
        suggest_sites(a, category="health", minutes=45)
    with pytest.raises(InputDataError, match="no units"):
        suggest_sites(a, category="health", unit="west")


def test_candidates_file_in_the_wrong_crs(tmp_path, plus_town):
    a, _, xy = plus_town
    # WGS84 points at the top of the north arm declared as BD-09: converting them "back" moves
    # them about 1050 m west and 440 m south, more than 500 m from every street
    lo, la = lonlat([0, 0], [1000, 1200])
    pd.DataFrame({"lon": lo, "lat": la}).to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(CRSError, match="--candidates-crs"):
        suggest_sites(a, category="health", candidates=tmp_path / "c.csv", candidates_crs="bd09")
    # points written in BD-09 and declared so are fine: C and W800 are the sites
    blo, bla = wgs84_to_bd09(*lonlat([0, -800], [0, 0]))
    pd.DataFrame({"name": ["C", "W800"], "lng": blo, "lat": bla}).to_csv(tmp_path / "c.csv", index=False)
    s = suggest_sites(a, category="health", candidates=tmp_path / "c.csv", candidates_crs="bd09")
    assert s.name.tolist() == ["C", "W800"] and s.candidate.tolist() == [0, 1]
    assert [xy[n] for n in s.node] == [(0, 0), (-800, 0)]
    np.testing.assert_allclose(s.newly_covered_population, [300, 250])


# ------------------------------------------------------------------ real Shanghai sample


@pytest.fixture(scope="module")
def shanghai(shanghai_network, shanghai_facilities):
    """Real streets and health points; made-up residents: a 40 x 40 grid with 0..299 people each;
    two made-up units (the west and east halves of the sample)."""
    f = shanghai_facilities[shanghai_facilities.category == "health"]
    fac = gpd.GeoDataFrame({"category": "health", "subcategory": "osm", "name": f.name.to_numpy(),
                            "source": "osm"}, geometry=f.geometry.to_numpy(), crs=4326)
    rng = np.random.default_rng(3)
    gx, gy = np.meshgrid(np.linspace(BBOX[0], BBOX[2], 40), np.linspace(BBOX[1], BBOX[3], 40))
    res = gpd.GeoDataFrame({"population": rng.integers(0, 300, gx.size).astype(float)},
                           geometry=gpd.points_from_xy(gx.ravel(), gy.ravel()), crs=4326)
    mid = (BBOX[0] + BBOX[2]) / 2
    units = gpd.GeoDataFrame({"unit": ["west", "east"]}, geometry=[
        shapely.box(BBOX[0] - 0.01, BBOX[1] - 0.01, mid, BBOX[3] + 0.01),
        shapely.box(mid, BBOX[1] - 0.01, BBOX[2] + 0.01, BBOX[3] + 0.01)], crs=4326)
    a = analyze(network=shanghai_network, facilities=fac, population=res, units=units, config=HEALTH)
    return a, res, units


def test_shanghai_sites_reach_the_target_with_the_reported_number(shanghai):
    a, res, units = shanghai
    assert a.category_share("health") < 0.85
    plan = plan_sites(a, category="health", time_limit_s=20)
    t, sites = plan.table, plan.sites
    assert t.unit.tolist() == ["study_area", "east", "west"] and t.reachable.all()
    for r in t.itertuples():
        assert r.share_before < 0.85 <= r.share_after
        assert r.exact_status == "optimal" and 0 <= r.gap and r.exact_sites <= r.sites_needed
        mine = sites[sites.unit == r.unit]
        assert len(mine) == r.sites_needed and mine.cumulative_share.iloc[-1] == pytest.approx(r.share_after)
        # a from-scratch analysis with those sites reaches the target; one site fewer does not
        full = rerun(a, with_sites(a, mine), res, units)
        short = rerun(a, with_sites(a, mine.iloc[:-1]), res, units)
        assert full.category_share("health", unit=r.unit) == pytest.approx(r.share_after, abs=1e-12)
        assert full.category_share("health", unit=r.unit) >= 0.85
        assert short.category_share("health", unit=r.unit) < 0.85
    # suggest_sites for one unit gives that unit's plan
    west = suggest_sites(a, category="health", unit="west")
    assert west.node.tolist() == sites[sites.unit == "west"].node.tolist()
    assert west.attrs["reached"] and (west.unit == "west").all()
    with pytest.raises(InputDataError, match="unknown unit 'north'"):
        suggest_sites(a, category="health", unit="north")


def test_gcj02_candidates_file_on_shanghai(shanghai, tmp_path):
    a, _, _ = shanghai
    nodes = np.arange(0, a.network.n_nodes, 7)
    glo, gla = wgs84_to_gcj02(a.network.lon[nodes], a.network.lat[nodes])
    pd.DataFrame({"lng": glo, "lat": gla}).to_csv(tmp_path / "cand.csv", index=False)
    as_gcj = suggest_sites(a, category="health", k=4, candidates=tmp_path / "cand.csv", candidates_crs="gcj02")
    as_nodes = suggest_sites(a, category="health", k=4, candidates=gpd.GeoDataFrame(
        geometry=gpd.points_from_xy(a.network.lon[nodes], a.network.lat[nodes]), crs=4326))
    assert as_gcj.node.tolist() == as_nodes.node.tolist()
    np.testing.assert_allclose(as_gcj.cumulative_share, as_nodes.cumulative_share, atol=1e-12)


def test_write_sites_round_trips_as_a_facility_list(shanghai, tmp_path):
    a, res, units = shanghai
    s = suggest_sites(a, category="health", k=3)
    t = sites_needed(a, category="health", exact=False)
    paths = write_sites(s, tmp_path / "out", needed=t)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "lifecircle_manifest.json", "sites_needed.csv", "suggested_sites.csv", "suggested_sites.gpkg"]
    assert set(paths) == {"suggested_sites.csv", "suggested_sites.gpkg", "sites_needed.csv"}
    back = gpd.read_file(paths["suggested_sites.gpkg"], layer="sites")
    assert back.crs.to_epsg() == 4326 and back["rank"].tolist() == [1, 2, 3]
    assert pd.read_csv(paths["sites_needed.csv"], encoding="utf-8-sig").exact_status.eq("not run").all()
    # the CSV is a valid --facilities file: analyzing with it gives the predicted coverage
    listed = facilities_from_file(paths["suggested_sites.csv"])
    assert listed.category.tolist() == ["health"] * 3
    fac = gpd.GeoDataFrame(pd.concat([a.facilities[["category", "subcategory", "name", "source", "geometry"]],
                                      listed], ignore_index=True), crs=4326)
    assert rerun(a, fac, res, units).category_share("health") == pytest.approx(
        s.cumulative_share.iloc[-1], abs=1e-9)


def test_tiled_run_says_it_has_no_access_graph():
    import dataclasses

    a = analyze(toy_town_osm())
    a.times = dataclasses.replace(a.times, graph=None)
    with pytest.raises(InputDataError, match="tiled run"):
        suggest_sites(a, category="health", k=1)


# ------------------------------------------------------------------ catchments: local search vs full rows


def full_row_catchments(a, cands, positions, minutes):
    """Today's method, written out: one unbounded-size scipy Dijkstra row per candidate on the access
    graph with the candidate attached, and the pipeline's test on every resident."""
    from scipy.sparse.csgraph import dijkstra

    from lifecircle.plan.sites import _attach

    mat, nodes = _attach(a.times.graph, a.network, cands.snap, outward=True)
    mpm = a.config.walk_speed_kmh * 1000 / 60
    res_nodes = a.times.graph.point_node[: a.times.n_residents][positions]
    out = np.zeros((len(cands), len(positions)), dtype=bool)
    for start in range(0, len(cands), 200):
        d = dijkstra(mat, directed=True, indices=nodes[start:start + 200], limit=minutes * mpm * 1.01)
        hit = d[:, np.maximum(res_nodes, 0)] / mpm <= minutes
        out[start:start + 200] = hit & (res_nodes >= 0)
    return out


@pytest.mark.parametrize("where", ["toy", "sample", "tiled"])
def test_catchments_equal_full_dijkstra_rows(where, toy, shanghai, shanghai_tiled):
    from lifecircle.plan.sites import candidates_from_nodes

    rng = np.random.default_rng(8)
    if where == "toy":
        net, fac = toy
        a = analyze(network=net, facilities=fac, replace_osm_facilities=True, population=random_residents(rng, 200),
                    config=AnalysisConfig(minutes=(4,), categories=("health",)))
        minutes = 4.0
    else:
        a = shanghai[0] if where == "sample" else shanghai_tiled
        minutes = 15.0 if where == "sample" else 10.0
    net = a.network
    positions = np.arange(len(a.residents))
    if where == "tiled":
        positions = np.sort(rng.choice(positions, 1500, replace=False))
    nodes = np.arange(net.n_nodes) if where != "tiled" else np.sort(rng.choice(net.n_nodes, 1500, replace=False))
    # node candidates, and points anywhere: on edges, beside them, on the residents themselves
    lo, la = net.lon.min(), net.lat.min()
    span_lo, span_la = net.lon.max() - lo, net.lat.max() - la
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(
        np.r_[lo + rng.random(150) * span_lo, a.residents.geometry.x.to_numpy()[positions[:20]]],
        np.r_[la + rng.random(150) * span_la, a.residents.geometry.y.to_numpy()[positions[:20]]]), crs=4326)
    for cands in (candidates_from_nodes(net, nodes), candidates_from_points(net, pts)):
        ref = full_row_catchments(a, cands, positions, minutes)
        for way in ("residents", "candidates"):
            got = coverage_matrix(a, cands, positions, minutes=minutes, search_from=way)
            assert got.shape == ref.shape and got.has_canonical_format
            assert np.array_equal(got.toarray(), ref), (where, way, int((got.toarray() != ref).sum()))
        assert ref.sum() > 10 * len(cands) ** 0.5  # not a trivially empty comparison


def test_chains_keep_every_walk():
    """pairs_within on the contracted network against networkx on the network with the points inserted:
    a grid with streets missing, a dead-end spur, a ring of degree-2 nodes on its own and a lollipop."""
    import networkx as nx

    from lifecircle.measure.snapping import snap_points
    from lifecircle.measure.walking_times import build_access_graph
    from lifecircle.plan.catchments import chains, pairs_within

    rng = np.random.default_rng(2)
    xy, edges = [], []
    for i in range(8):
        for j in range(8):
            xy.append((i * 100.0 + rng.normal(0, 5), j * 100.0 + rng.normal(0, 5)))
    for i in range(8):
        for j in range(8):
            k = i * 8 + j
            if i < 7 and rng.random() < 0.8:
                edges.append((k, k + 8))
            if j < 7 and rng.random() < 0.8:
                edges.append((k, k + 1))
    base = len(xy)
    ring = [(1200 + 150 * np.cos(t), 300 + 150 * np.sin(t)) for t in np.linspace(0, 2 * np.pi, 9)[:-1]]
    xy += ring
    edges += [(base + q, base + (q + 1) % 8) for q in range(8)]
    stick = [(800.0, 350.0), (900.0, 350.0), (950.0, 300.0), (1000.0, 350.0), (950.0, 400.0)]
    xy += stick
    s0 = base + 8
    edges += [(7 * 8 + 3, s0), (s0, s0 + 1), (s0 + 1, s0 + 2), (s0 + 2, s0 + 3), (s0 + 3, s0 + 4), (s0 + 4, s0 + 1)]
    lo, la = lonlat([p[0] for p in xy], [p[1] for p in xy])
    net = WalkNetwork.from_lonlat(lo, la, [e[0] for e in edges], [e[1] for e in edges])
    ch = chains(net)
    assert len(ch.junction) < net.n_nodes and ch.length_m.sum() == pytest.approx(net.length_m.sum())
    plo, pla = lonlat(rng.uniform(-50, 1400, 120), rng.uniform(-50, 750, 120))
    snap = snap_points(net, plo, pla)
    ok = np.flatnonzero(snap.snapped)
    pts = (snap.edge[ok], snap.t[ok], snap.dist_m[ok])
    src, dst = slice(0, 50), slice(50, None)
    got = {}
    for i, j, d in pairs_within(net, tuple(p[src] for p in pts), tuple(p[dst] for p in pts), limit_m=700):
        for a_, b_, w in zip(i.tolist(), j.tolist(), d.tolist()):
            got[a_, b_] = min(w, got.get((a_, b_), np.inf))
    g = build_access_graph(net, snap).to_networkx()
    nodes = build_access_graph(net, snap).point_node[ok]
    want = {}
    for a_, n_a in enumerate(nodes[src]):
        dist = nx.single_source_dijkstra_path_length(g, int(n_a), cutoff=700, weight="length")
        for b_, n_b in enumerate(nodes[dst]):
            if int(n_b) in dist:
                want[a_, b_] = dist[int(n_b)]
    assert set(got) == set(want) and len(want) > 200
    np.testing.assert_allclose([got[k] for k in want], list(want.values()), rtol=1e-12, atol=1e-9)


# ------------------------------------------------------------------ the exact check keeps its time limit


def test_exact_check_stops_at_its_time_limit():
    import time

    rng = np.random.default_rng(0)
    cov = sp.random(400, 2000, density=0.01, random_state=rng, format="csr").astype(bool)
    w = rng.integers(1, 50, 2000).astype(float)
    need = 0.5 * w[np.asarray(cov.sum(axis=0)).ravel() > 0].sum()
    t = time.perf_counter()
    e = solve_min_sites(cov, w, need=need, time_limit_s=1.0)
    assert time.perf_counter() - t < 5.0  # a deadline contract (1 s + the worker's start), not a speed test
    assert e.status == "time limit"  # HiGHS needs far longer for this one
    t = time.perf_counter()
    m = solve_max_cover(cov, w, k=30, time_limit_s=1.0)
    assert time.perf_counter() - t < 5.0 and m.status == "time limit"
    if len(m.chosen):  # the best plan found so far, when the solver had one
        assert len(m.chosen) <= 30 and m.covered_weight > 0


def test_a_solver_that_ignores_its_limit_is_stopped():
    import time

    from lifecircle.plan.deadline import TimedOut, call_with_deadline

    t = time.perf_counter()
    with pytest.raises(TimedOut, match="within 0.5 s"):
        call_with_deadline(time.sleep, 60, time_limit_s=0.5)
    assert time.perf_counter() - t < 4.0
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        call_with_deadline(divmod, 1, 0, time_limit_s=30)


def test_sites_needed_says_not_solved_within_the_limit(shanghai_tiled, monkeypatch):
    import lifecircle.plan.sites as sites_module

    monkeypatch.setattr(sites_module, "EXACT_PAIRS_PER_S", 10**9)  # tried whatever its size: stopped at 1 s
    t = sites_needed(shanghai_tiled, category="health", time_limit_s=1.0)
    r = t.iloc[0]
    assert r.reachable and r.sites_needed > 20
    assert r.exact_status == "not solved within 1 s" and pd.isna(r.exact_sites) and pd.isna(r.gap)


def test_exact_check_is_not_tried_on_a_city_sized_problem(plus_town, monkeypatch):
    import lifecircle.plan.sites as sites_module

    a, _, _ = plus_town
    monkeypatch.setattr(sites_module, "EXACT_MAX_PAIRS", 3)  # the plus town has more (each west node covers one)
    r = sites_needed(a, category="health").iloc[0]
    assert r.sites_needed == 2 and pd.isna(r.exact_sites)
    assert r.exact_status == "not run: more than 3 candidate-resident pairs for a 10 s limit"


def test_exact_check_tries_what_its_time_limit_can_solve(plus_town, monkeypatch):
    """The pairs the check is tried on grow with --time-limit-s (up to EXACT_MAX_PAIRS)."""
    import lifecircle.plan.sites as sites_module

    a, _, _ = plus_town
    monkeypatch.setattr(sites_module, "EXACT_PAIRS_PER_S", 1)  # 1 pair per second of the limit
    short = sites_needed(a, category="health", time_limit_s=2).iloc[0]
    assert short.exact_status == "not run: more than 2 candidate-resident pairs for a 2 s limit"
    long = sites_needed(a, category="health", time_limit_s=10_000).iloc[0]
    assert long.exact_status == "optimal" and long.exact_sites == long.sites_needed == 2


# ------------------------------------------------------------------ candidates a neighbour's catchment contains


def brute_greedy(cov: np.ndarray, w: np.ndarray, *, column_order: bool = False):
    """Plain greedy on a dense matrix: each step the row covering the most uncovered weight (lowest on ties);
    ``column_order``: each row's weight summed one column after another, as the code under test sums it
    (exact ties stay ties)."""
    free = w.astype(float).copy()
    picks, gains = [], []
    while True:
        g = (np.array([np.add.reduceat(free[row], [0])[0] if row.any() else 0.0 for row in cov]) if column_order
             else cov.astype(float) @ free)
        j = int(np.argmax(g))
        if g[j] <= 0:
            return picks, gains
        picks.append(j)
        gains.append(float(g[j]))
        free[cov[j]] = 0.0


@pytest.mark.parametrize("where", ["line", "sample"])
def test_dropped_candidates_change_nothing(where, shanghai):
    """Kept rows equal full-Dijkstra rows; every dropped row lies inside a kept one; greedy on the kept
    rows covers, step by step, the same people as a brute-force greedy over every node."""
    from lifecircle.plan.sites import candidates_from_nodes

    rng = np.random.default_rng(21)
    if where == "line":  # one long chain of degree-2 nodes, residents scattered beside it
        net, _ = line_network(-3000, 4000)
        res = points(list(zip(rng.uniform(-2500, 4000, 60), rng.uniform(-40, 40, 60))),
                     population=rng.uniform(1, 5, 60))
        a = analyze(network=net, facilities=facilities([(-3000, 10)]), population=res, config=HEALTH)
        minutes = 10.0
    else:
        a = shanghai[0]
        minutes = 10.0
    positions = np.arange(len(a.residents))
    cands = candidates_from_nodes(a.network, np.arange(a.network.n_nodes))
    ref = full_row_catchments(a, cands, positions, minutes)
    got = coverage_matrix(a, cands, positions, minutes=minutes, search_from="residents", drop_dominated=True)
    kept = np.flatnonzero(np.diff(got.indptr) > 0)
    useful = np.flatnonzero(ref.any(axis=1))
    assert np.array_equal(got.toarray()[kept], ref[kept])
    assert 0.1 * len(useful) < len(useful) - len(kept)  # a real share is dropped
    dropped = np.setdiff1d(useful, kept)
    inside = ref[dropped].astype(int) @ ref[kept].T.astype(int)  # shared residents with each kept row
    assert (inside.max(axis=1) == ref[dropped].sum(axis=1)).all()
    w = rng.uniform(0.5, 30.0, len(positions))  # no two different sets weigh the same
    picks, gains = brute_greedy(ref, w)
    chosen, g2 = greedy_cover(got[kept], w)
    np.testing.assert_allclose(g2, gains, rtol=1e-12)
    free = np.ones(len(w), dtype=bool)
    for p, c in zip(picks, kept[chosen]):  # the same people each step (maybe by another node)
        assert np.array_equal(ref[c] & free, ref[p] & free)
        free &= ~ref[p]


@pytest.fixture(scope="module")
def three_categories(shanghai, shanghai_network, shanghai_facilities):
    """The Shanghai sample's real health points, and every 2nd / 3rd of them relabelled culture and sports:
    three categories, three coverages (10 min); ``(analysis, residents)``."""
    _, res, _ = shanghai
    f = shanghai_facilities[shanghai_facilities.category == "health"]
    parts = [(f, "health"), (f.iloc[::2], "culture"), (f.iloc[::3], "sports")]
    fac = gpd.GeoDataFrame(pd.concat([facilities([(0, 0)] * len(p), category=c).set_geometry(p.geometry.to_numpy())
                                      for p, c in parts], ignore_index=True), crs=4326)
    cfg = AnalysisConfig(minutes=(10,), categories=("health", "culture", "sports"))
    return analyze(network=shanghai_network, facilities=fac, replace_osm_facilities=True, population=res,
                   config=cfg), res


def test_site_plans_share_one_search_and_predict_a_fresh_analysis(three_categories, monkeypatch):
    """site_plans searches once for the four categories (its walks kept on disk, as a city's are): the same
    plans as one plan_sites call each, and a fresh analyze with every study-area site added covers what
    the plans say, per category."""
    from lifecircle.config import minutes_column
    from lifecircle.plan import catchments
    from lifecircle.plan import sites as S
    from lifecircle.plan.sites import site_plans

    a, res = three_categories
    cfg = a.config
    spilled = []
    real_open = catchments._Batches._open

    def spy(self):
        spilled.append(self)
        real_open(self)

    monkeypatch.setattr(S, "SHARED_SEARCHES_SPILL_MB", 0.0)
    monkeypatch.setattr(catchments._Batches, "_open", spy)
    sites, needed, _ = site_plans(a, exact=False, per_unit=False)
    monkeypatch.undo()
    assert len(spilled) == 1 and len(spilled[0].index) > 0 and not spilled[0].held  # one search, on disk
    assert (needed.sites_needed > 0).sum() >= 2  # several categories need sites
    for cat in cfg.categories:
        one = plan_sites(a, category=cat, exact=False)
        mine = sites[sites.category == cat]
        assert one.sites[one.sites.unit == "study_area"]["node"].tolist() == mine["node"].tolist()
    b = rerun(a, with_sites(a, sites), res)
    for cat, share in needed.set_index("category").share_after.items():
        got = b.residents.population[b.residents[minutes_column(cat)] <= 10].sum() / b.residents.population.sum()
        assert got == pytest.approx(share, abs=1e-12), cat


# ------------------------------------------------------------------ the fast paths at city scale (issue 14)


def _searches_setup(shanghai):
    """The sample's residents (snapped: ``ok``) as search sources, every node as a target, 10 minutes."""
    from lifecircle.plan.sites import _all_node_candidates, _limit_m

    a = shanghai[0]
    rs = a.times.resident_snap
    ok = np.flatnonzero(a.times.graph.point_node[: a.times.n_residents] >= 0)
    src = (rs.edge[ok], rs.t[ok], rs.dist_m[ok])
    cands = _all_node_candidates(a.network, a.config.max_snap_m)
    dst = (cands.snap.edge, cands.snap.t, cands.snap.dist_m)
    limit, cover = _limit_m(a, 10.0), 10.0 * a.config.walk_speed_kmh * 1000 / 60
    return a, ok, src, dst, limit, cover


def test_thinning_several_groups_in_one_pass_equals_one_call_each(shanghai):
    """thin_targets for three overlapping groups of residents keeps, for each, what its own
    pairs_within_thinned call keeps, and the pairs of a group are those of its own call."""
    from lifecircle.plan.catchments import Searches, pairs_within_thinned, thin_targets

    a, ok, src, dst, limit, cover = _searches_setup(shanghai)
    searches = Searches.run(a.network, src, limit_m=limit)
    rng = np.random.default_rng(5)
    groups = [np.sort(rng.choice(len(ok), size, replace=False)) for size in (len(ok) // 2, len(ok) // 3)]
    groups.append(np.union1d(groups[0], groups[1]))
    keeps = thin_targets(a.network, dst, searches=searches, groups=groups, cover_m=cover)
    for g, keep in zip(groups, keeps):
        own = Searches.run(a.network, tuple(p[g] for p in src), limit_m=limit)
        alone, pairs = pairs_within_thinned(a.network, None, dst, limit_m=limit, cover_m=cover, searches=own)
        assert np.array_equal(keep, alone)
        assert 0 < keep.sum() < len(keep)
        shared, shared_pairs = pairs_within_thinned(a.network, None, dst, limit_m=limit, cover_m=cover,
                                                    searches=searches, sources=g, keep=keep)
        got = {(int(i), int(j)) for i, j, _ in shared_pairs for i, j in zip(i, j)}
        want = {(int(i), int(j)) for i, j, _ in pairs for i, j in zip(i, j)}
        assert got == want and len(got) > 1000


def test_searches_kept_on_disk_are_the_searches(shanghai):
    """Searches past their spill_mb are written to a temporary file and read back batch by batch: the same
    arrays (values, dtypes, shapes) as the searches held in memory, and the same thinning and pairs."""
    from lifecircle.plan.catchments import Searches, pairs_within_thinned

    a, ok, src, dst, limit, cover = _searches_setup(shanghai)
    held = Searches.run(a.network, src, limit_m=limit)
    first = sum(x.nbytes for x in next(iter(held.stored))) / 1e6
    on_disk = Searches.run(a.network, src, limit_m=limit, spill_mb=first * 1.5)  # the first batch held, then all out
    assert held.stored.file is None and on_disk.stored.file is not None and not on_disk.stored.held
    spilled = on_disk.stored.file
    assert len(on_disk.stored) == len(held.stored) > 2
    for x, y in zip(held.stored, on_disk.stored, strict=True):
        for u, v in zip(x, y, strict=True):
            assert u.dtype == v.dtype and u.shape == v.shape and np.array_equal(u, v)
    for _ in range(2):  # read back again: each call reads the whole file
        k1, p1 = pairs_within_thinned(a.network, None, dst, limit_m=limit, cover_m=cover, searches=held)
        k2, p2 = pairs_within_thinned(a.network, None, dst, limit_m=limit, cover_m=cover, searches=on_disk)
        assert np.array_equal(k1, k2)
        got = [tuple(map(np.ndarray.tolist, b)) for b in p2]
        assert got == [tuple(map(np.ndarray.tolist, b)) for b in p1] and sum(len(b[0]) for b in got) > 100
    del on_disk, k2, p2
    import gc

    gc.collect()
    assert spilled.closed  # the temporary file goes with the searches (no unclosed-file warning)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("update_pairs", [None, 3])
def test_greedy_by_blocks_equals_a_plain_greedy_with_ties(seed, update_pairs, monkeypatch):
    """1,300 rows (six blocks of the running maxima) and whole-number weights, so that many rows tie:
    the same picks (the lowest row of a tie) and gains as a plain greedy; the same again when the
    columns are handed over with their rows in another order, and when each pick's update is made
    in slices of 3 pairs (as a city's, in slices of 2M)."""
    from lifecircle.plan import sites as S
    from lifecircle.plan.sites import _BLOCK

    if update_pairs is not None:
        monkeypatch.setattr(S, "_UPDATE_PAIRS", update_pairs)
    rng = np.random.default_rng(seed)
    m, n = 1300, 400
    assert m > 5 * _BLOCK
    dense = rng.random((m, n)) < 0.02
    dense[rng.choice(m, 300, replace=False)] = dense[rng.choice(m, 300)]  # identical rows: exact ties
    w = rng.integers(1, 4, n).astype(float)
    picks, gains = brute_greedy(dense, w, column_order=True)
    cov = sp.csr_matrix(dense)
    chosen, g = greedy_cover(cov, w)
    assert chosen.tolist() == picks and g.tolist() == gains
    csc = cov.tocsc()
    for c in range(n):  # each column's rows reversed
        lo, hi = csc.indptr[c], csc.indptr[c + 1]
        csc.indices[lo:hi] = csc.indices[lo:hi][::-1].copy()
    chosen2, g2 = greedy_cover(cov, w, _columns=csc)
    assert chosen2.tolist() == picks and g2.tolist() == gains


def test_new_pairs_are_added_once():
    """Worked by hand: rows {0: [3, 1], 1: [], 2: [2]} plus (0, 1) (held), (1, 4) twice and (2, 0)."""
    from lifecircle.plan.sites import _add_new_pairs

    ptr, idx = _add_new_pairs(np.array([0, 2, 2, 3]), np.array([3, 1, 2], dtype=np.int32),
                              np.array([0, 1, 1, 2]), np.array([1, 4, 4, 0]))
    assert ptr.tolist() == [0, 2, 3, 5] and idx.tolist() == [3, 1, 4, 2, 0]


def test_site_plans_fast_path_equals_brute_force_greedy(three_categories, monkeypatch):
    """site_plans (one search and one thinning pass for three categories, catchments by column, greedy by
    blocks) against a plain greedy over full-Dijkstra catchments of every node, per category: the same
    gains each step, the same people covered each step, and the columns it hands greedy hold each pair
    once and equal its rows."""
    from lifecircle.config import minutes_column
    from lifecircle.plan import sites as S

    a, res = three_categories
    cfg = a.config
    built = {}
    real_build = S._build

    def spy(*args, **kwargs):
        p = real_build(*args, **kwargs)
        built[p.category] = p
        return p

    monkeypatch.setattr(S, "_build", spy)
    sites, needed, _ = S.site_plans(a, exact=False, per_unit=False)
    monkeypatch.undo()
    nodes = S.candidates_from_nodes(a.network, np.arange(a.network.n_nodes))
    pop = a.residents["population"].to_numpy(float)
    n_checked = 0
    for cat in cfg.categories:
        need = needed.set_index("category").loc[cat]
        mine = sites[sites.category == cat]
        if need.sites_needed == 0:
            continue
        p = built[cat]
        assert p.columns is not None and p.columns.nnz == p.coverage.nnz
        assert (p.columns.toarray() == p.coverage.toarray()).all()
        uncovered = np.flatnonzero(~(a.residents[minutes_column(cat)].to_numpy(float) <= 10) & (pop > 0))
        assert np.array_equal(uncovered, p.target_pos)
        ref = full_row_catchments(a, nodes, uncovered, 10.0)
        picks, gains = brute_greedy(ref, pop[uncovered])
        k = len(mine)
        np.testing.assert_allclose(mine.newly_covered_population.to_numpy(), gains[:k], rtol=1e-12)
        free = np.ones(len(uncovered), dtype=bool)
        for pick, node in zip(picks[:k], mine["node"].to_numpy()):
            assert np.array_equal(ref[node] & free, ref[pick] & free)  # the same people (maybe by another node)
            free &= ~ref[pick]
        n_checked += 1
    assert n_checked >= 2


def test_site_csvs_show_people_to_a_tenth_and_shares_to_a_millionth(tmp_path):
    """A float sum of fractional residents (3126156.5999999996) is written as Excel users read it; the
    GeoPackage keeps the full values."""
    sites = gpd.GeoDataFrame({"rank": [1, 2], "category": ["health"] * 2,
                              "newly_covered_population": [0.1 + 0.2, 8094.5],
                              "cumulative_covered_population": [3126156.5999999996, 3134251.0999999996],
                              "cumulative_share": [0.2563816729911419, 0.2570368815183989]},
                             geometry=gpd.points_from_xy([121.47, 121.48], [31.23, 31.23]), crs=4326)
    needed = pd.DataFrame({"category": ["health"], "population": [12193370.000000002],
                           "share_before": [0.25571782862326], "sites_needed": [2], "share_after": [0.8500117768918682]})
    paths = write_sites(sites, tmp_path / "out", needed=needed)
    text = paths["suggested_sites.csv"].read_text(encoding="utf-8-sig")
    assert "3126156.6," in text and "0.3," in text and "0.256382" in text and "99999" not in text
    back = pd.read_csv(paths["sites_needed.csv"], encoding="utf-8-sig")
    assert back.population.tolist() == [12193370.0] and back.share_after.tolist() == [0.850012]
    assert back.sites_needed.tolist() == [2]
    full = gpd.read_file(paths["suggested_sites.gpkg"], layer="sites")
    assert full.cumulative_covered_population.tolist() == sites.cumulative_covered_population.tolist()


def test_write_site_plans_refuses_planning_options_beside_plans(tmp_path):
    """plans= are planned already: planning options beside them would be ignored, so they are refused."""
    from lifecircle.present.outputs import write_site_plans

    a = analyze(toy_town_osm())
    with pytest.raises(TypeError, match="categories would be ignored"):
        write_site_plans(a, tmp_path / "out", plans=(None, None, None), categories=["health"])
    assert not (tmp_path / "out").exists()
