"""Supply–demand accessibility (2SFCA, E2SFCA, G2SFCA): by hand on a straight street, against pysal
``access`` on the same distances, against networkx on the real Shanghai sample, properties, and the CLI."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import lonlat
from lifecircle import AnalysisConfig
from lifecircle.cli import main
from lifecircle.measure.accessibility import (
    accessibility_table, catchment_matrix, decay_weights, facility_ratios, supply_demand, two_step_fca,
)
from lifecircle.measure.walking_times import walking_times
from lifecircle.read.network import WalkNetwork

# ----------------------------------------------------------------------------------------------
# the hand-built street: one straight street 0 — 2000 m along y = 0 (nodes every 100 m)
#
#   r0 (x=0, 100 people, 10 aged 65+)   A (x=200, 2 beds)   r1 (x=600, 200 people, 50 aged 65+)
#   B (x=1400, 1 bed)   r2 (x=1800, 300 people, 30 aged 65+)
#
# Walking metres (on the street, access legs 0): A–r0 200, A–r1 400, A–r2 1600; B–r0 1400,
# B–r1 800, B–r2 400. At 4 km/h 15 minutes = 1000 m; at 3 km/h 750 m.

RES_X = [0.0, 600.0, 1800.0]
POP = [100.0, 200.0, 300.0]
AGE65 = [10.0, 50.0, 30.0]
FAC_X = [200.0, 1400.0]
BEDS = [2.0, 1.0]


@pytest.fixture(scope="module")
def street():
    xs = np.arange(0, 2001, 100.0)
    lo, la = lonlat(xs, np.zeros_like(xs))
    net = WalkNetwork.from_lonlat(lo, la, np.arange(len(xs) - 1), np.arange(1, len(xs)))
    rlo, rla = lonlat(RES_X, [0.0] * 3)
    flo, fla = lonlat(FAC_X, [0.0] * 2)
    residents = gpd.GeoDataFrame({"population": POP, "age65": AGE65}, geometry=gpd.points_from_xy(rlo, rla), crs=4326)
    facilities = gpd.GeoDataFrame({"category": ["elderly_care"] * 2, "capacity": BEDS},
                                  geometry=gpd.points_from_xy(flo, fla), crs=4326)
    cfg = AnalysisConfig(categories=("elderly_care",))
    wt = walking_times(net, residents, facilities, config=cfg)
    residents = residents.assign(minutes_to_elderly_care=wt.minutes["minutes_to_elderly_care"].to_numpy())
    facilities = facilities.assign(snapped=wt.facility_snap.snapped)
    return wt, residents, facilities, cfg


def test_catchments_are_the_walking_metres_within_the_limit(street):
    wt = street[0]
    d = catchment_matrix(wt, [0, 1], limit_m=1000)
    assert sp.issparse(d) and d.shape == (2, 3) and d.nnz == 4  # A–r2 and B–r0 are beyond 1000 m: not stored
    dense = np.full((2, 3), np.nan)
    dense[d.nonzero()] = d.data
    expected = np.array([[200, 400, np.nan], [np.nan, 800, 400]])
    assert np.allclose(dense, expected, atol=0.01, equal_nan=True)


def test_two_step_fca_by_hand(street):
    """Plain 2SFCA at 1000 m: A's catchment holds r0 + r1 = 300 people, B's r1 + r2 = 500, so R_A = 2/300,
    R_B = 1/500; r0 reaches A only (2/300 = 0.006667 beds per person), r1 both (2/300 + 1/500 = 0.008667),
    r2 B only (1/500 = 0.002). Supply is conserved: 100·2/300 + 200·(2/300 + 1/500) + 300/500 = 3 beds.

    E2SFCA, zones 0–333/333–667/667–1000 m weighted 1/0.68/0.22: A–r0 (200 m) 1, A–r1 (400 m) 0.68,
    B–r1 (800 m) 0.22, B–r2 (400 m) 0.68. Weighted demand at A = 100 + 0.68·200 = 236, at B =
    0.22·200 + 0.68·300 = 248; r0: 2/236 = 0.0084746, r1: 0.68·2/236 + 0.22/248 = 0.0066498,
    r2: 0.68/248 = 0.0027419.
    """
    wt = street[0]
    d = catchment_matrix(wt, [0, 1], limit_m=1000)
    a = two_step_fca(d, BEDS, POP, limit_m=1000)
    assert np.allclose(a, [2 / 300, 2 / 300 + 1 / 500, 1 / 500], rtol=1e-9)
    assert np.isclose((a * POP).sum(), 3.0)
    e = two_step_fca(d, BEDS, POP, limit_m=1000, method="e2sfca")
    assert np.allclose(e, [2 / 236, 0.68 * 2 / 236 + 0.22 / 248, 0.68 / 248], rtol=1e-9)
    assert np.allclose(facility_ratios(d, BEDS, POP, limit_m=1000, method="e2sfca"), [2 / 236, 1 / 248])


def test_groups_walk_their_own_speed_on_the_same_distances(street):
    """The elderly at 3 km/h reach 750 m in 15 min: B–r1 (800 m) drops out. With beds loaded by the
    elderly (demand group age65): R_A = 2/(10 + 50), R_B = 1/30, every elderly resident reaches
    1/30 bed each (33.3 per 1,000). With everyone's demand (R_A = 2/300, R_B = 1/500) the elderly at r1
    reach only A: 2/300."""
    wt, residents, facilities, cfg = street
    sd = supply_demand(wt, facilities, residents, config=cfg, groups=["age65"], group_speed_kmh={"age65": 3.0})
    assert np.allclose(sd.residents["access_2sfca_elderly_care"], [2 / 300, 2 / 300 + 1 / 500, 1 / 500], rtol=1e-9)
    assert np.allclose(sd.residents["access_2sfca_elderly_care_age65"], [2 / 300, 2 / 300, 1 / 500], rtol=1e-9)
    # the group's minutes are the same metres at 3 km/h: r2 is 400 m from B = 6 min at 4, 8 min at 3 km/h
    assert np.allclose(sd.residents["minutes_to_elderly_care_age65"], [4.0, 8.0, 8.0], atol=1e-3)
    sd2 = supply_demand(wt, facilities, residents, config=cfg, groups=["age65"], group_speed_kmh={"age65": 3.0},
                        demand_groups={"elderly_care": "age65"})
    assert np.allclose(sd2.residents["access_2sfca_elderly_care_age65"], [1 / 30] * 3, rtol=1e-9)
    assert np.allclose(sd2.facilities["demand"], [60, 30])
    t = accessibility_table(residents, facilities, sd2, config=cfg, unit_column=None, ratios={"elderly_care": (30, "x")})
    row = t[(t.group == "age65")].iloc[0]
    assert row.population == 90 and row.capacity == 3
    assert np.isclose(row.access_2sfca_per_1000, 1000 / 30) and np.isclose(row.capacity_per_1000, 3000 / 90)
    assert row.standard_per_1000 == 30 and row.meets_standard
    assert np.isclose(row.coverage_share, 1.0)  # 8 min at most


def _pysal(d: sp.csr_matrix, supply, demand, *, limit_m, weight_fn=None):
    access = pytest.importorskip("access", reason="pysal access is in the test extra (pip install -e .[test])")
    from access.fca import two_stage_fca

    coo = d.tocoo()
    cost = pd.DataFrame({"origin": coo.col, "dest": coo.row, "cost": coo.data})
    dem = pd.DataFrame({"geoid": np.arange(d.shape[1]), "demand": np.asarray(demand, float)})
    sup = pd.DataFrame({"supply": np.asarray(supply, float)}, index=pd.Index(np.arange(d.shape[0]), name="geoid"))
    out = two_stage_fca(dem, sup, cost, max_cost=limit_m, weight_fn=weight_fn)
    assert access is not None
    return out.reindex(np.arange(d.shape[1])).fillna(0.0).to_numpy()


def _dai(limit_m):
    e = np.exp(-0.5)
    return lambda x: (np.exp(-0.5 * (x / limit_m) ** 2) - e) / (1 - e)


def test_same_figures_as_pysal_access(street):
    """pysal access (BSD-3, Saxon et al.) on the same distance matrix: 2SFCA, E2SFCA (its step_fn with our
    zones) and G2SFCA (Dai's Gaussian as its weight_fn) agree to 1e-9."""
    from access.weights import step_fn

    d = catchment_matrix(street[0], [0, 1], limit_m=1000)
    steps = step_fn({1000 / 3: 1.0, 2000 / 3: 0.68, 1000: 0.22})
    for method, fn in (("2sfca", None), ("e2sfca", steps), ("g2sfca", _dai(1000))):
        ours = two_step_fca(d, BEDS, POP, limit_m=1000, method=method)
        assert np.allclose(ours, _pysal(d, BEDS, POP, limit_m=1000, weight_fn=fn), rtol=0, atol=1e-9), method


def test_same_figures_as_pysal_on_the_shanghai_sample(shanghai_network, shanghai_facilities):
    """Real network, real OSM facilities (health and sport), residents every ~120 m along the streets."""
    net = shanghai_network
    rng = np.random.default_rng(3)
    pick = rng.choice(net.n_nodes, 300, replace=False)
    residents = gpd.GeoDataFrame({"population": rng.integers(20, 400, 300).astype(float)},
                                 geometry=gpd.points_from_xy(net.lon[pick] + 2e-4, net.lat[pick]), crs=4326)
    fac = shanghai_facilities[shanghai_facilities.category.isin(["health", "sport"])].head(40)
    fac = gpd.GeoDataFrame({"category": "health", "capacity": rng.integers(1, 30, len(fac)).astype(float)},
                           geometry=fac.geometry.representative_point().to_numpy(), crs=4326)
    wt = walking_times(net, residents, fac, config=AnalysisConfig(categories=("health",)))
    d = catchment_matrix(wt, np.arange(len(fac)), limit_m=1000)
    assert 0 < d.nnz < d.shape[0] * d.shape[1]  # sparse: only the pairs within 1000 m
    # the stored metres are the access graph's shortest paths (networkx, a different implementation)
    import networkx as nx

    g = wt.graph.to_networkx()
    nr = wt.n_residents
    for j in range(0, len(fac), 9):
        if wt.graph.point_node[nr + j] < 0:
            continue
        lengths = nx.single_source_dijkstra_path_length(g, int(wt.graph.point_node[nr + j]), cutoff=1000,
                                                        weight="length")
        want = {i: lengths[int(n)] for i, n in enumerate(wt.graph.point_node[:nr]) if n >= 0 and int(n) in lengths}
        row = d.getrow(j)
        assert dict(zip(row.indices.tolist(), row.data.tolist())) == pytest.approx(want, abs=1e-6)
    cap, pop = fac["capacity"].to_numpy(), residents["population"].to_numpy()
    for method, fn in (("2sfca", None), ("g2sfca", _dai(1000))):
        ours = two_step_fca(d, cap, pop, limit_m=1000, method=method)
        assert np.allclose(ours, _pysal(d, cap, pop, limit_m=1000, weight_fn=fn), rtol=0, atol=1e-9)


# ----------------------------------------------------------------------------------------------
# properties on random sparse catchments


@st.composite
def catchments(draw):
    nf = draw(st.integers(1, 6))
    nr = draw(st.integers(1, 8))
    dist = np.array(draw(st.lists(st.floats(0, 1500), min_size=nf * nr, max_size=nf * nr))).reshape(nf, nr)
    keep = dist <= 1000
    r, c = np.nonzero(keep)
    d = sp.csr_matrix((dist[r, c], (r, c)), shape=(nf, nr))
    supply = np.array(draw(st.lists(st.floats(0.5, 100), min_size=nf, max_size=nf)))
    demand = np.array(draw(st.lists(st.floats(1, 1000), min_size=nr, max_size=nr)))
    return d, supply, demand


@settings(max_examples=60, deadline=None)
@given(catchments(), st.sampled_from(["2sfca", "e2sfca", "g2sfca"]))
def test_doubling_every_capacity_doubles_every_ratio(case, method):
    d, supply, demand = case
    a = two_step_fca(d, supply, demand, limit_m=1000, method=method)
    assert np.allclose(two_step_fca(d, 2 * supply, demand, limit_m=1000, method=method), 2 * a, rtol=1e-12, atol=0)


@settings(max_examples=60, deadline=None)
@given(catchments(), st.sampled_from(["2sfca", "e2sfca", "g2sfca"]), st.data())
def test_adding_a_resident_never_raises_anyones_ratio(case, method, data):
    d, supply, demand = case
    nf = d.shape[0]
    new = np.array(data.draw(st.lists(st.floats(0, 1500), min_size=nf, max_size=nf)))
    people = data.draw(st.floats(1, 1000))
    rows = np.flatnonzero(new <= 1000)
    extra = sp.csr_matrix((new[rows], (rows, np.zeros(rows.size, int))), shape=(nf, 1))
    before = two_step_fca(d, supply, demand, limit_m=1000, method=method)
    after = two_step_fca(sp.hstack([d, extra]).tocsr(), supply, np.append(demand, people), limit_m=1000,
                         method=method)
    assert (after[:-1] <= before * (1 + 1e-12) + 1e-300).all()


@settings(max_examples=40, deadline=None)
@given(catchments())
def test_supply_is_conserved(case):
    """Σ_i P_i A_i = Σ_j S_j over the facilities someone reaches (with positive weight), for every method."""
    d, supply, demand = case
    for method in ("2sfca", "e2sfca", "g2sfca"):
        w = decay_weights(d, limit_m=1000, method=method)
        reached = np.asarray(w @ demand).ravel() > 0
        a = two_step_fca(d, supply, demand, limit_m=1000, method=method)
        assert np.isclose((a * demand).sum(), supply[reached].sum(), rtol=1e-9)


# ----------------------------------------------------------------------------------------------
# the command line, end to end on the toy town


def _toy_inputs(tmp_path, beds_second="", age_first="30"):
    lo, la = lonlat([100, 300, 700, 700], [100, 300, 100, 300])
    pop = tmp_path / "pop.csv"
    pop.write_text("lon,lat,population,age65\n" + "".join(
        f"{x},{y},{p},{a}\n" for x, y, p, a in zip(lo, la, [100, 200, 300, 400], [age_first, 40, 90, 20])),
        encoding="utf-8")
    lo, la = lonlat([300, 700], [200, 200])
    fac = tmp_path / "fac.csv"
    fac.write_text("lon,lat,category,name,beds\n"
                   f"{lo[0]},{la[0]},elderly_care,西长者照护之家,20\n{lo[1]},{la[1]},elderly_care,东长者照护之家,"
                   f"{beds_second}\n", encoding="utf-8")
    return pop, fac


def test_cli_writes_accessibility_and_equity(tmp_path, capsys):
    """Toy town, two listed care homes (20 and 40 beds) + the OSM nursing home (no beds: it gets the
    median of the others, 30, with a warning); 180 elderly at 3 km/h load the beds. Every care home is
    reached by some elderly resident, so Σ elderly × access = 90 beds: 500 per 1,000 elderly."""
    pop, fac = _toy_inputs(tmp_path, beds_second="40")
    out = tmp_path / "out"
    rc = main(["analyze", "--example", "toy_town", "--population", str(pop), "--facilities", str(fac),
               "--capacity-column", "beds", "--group-columns", "age65", "--group-speed-kmh", "age65=3",
               "--demand-group", "elderly_care=age65", "--admin-level", "8", "--no-map", "--out", str(out)])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    assert "supply–demand: 2SFCA" in printed.out and "elderly_care  age65" in printed.out
    acc = pd.read_csv(out / "accessibility.csv", encoding="utf-8-sig")
    study = acc[(acc.unit == "study_area") & (acc.category == "elderly_care")].set_index("group")
    assert study.loc["age65", "population"] == 180 and study.loc["age65", "capacity"] == 90
    assert np.isclose(study.loc["age65", "access_2sfca_per_1000"], 500.0)
    assert np.isclose(study.loc["age65", "capacity_per_1000"], 500.0)
    assert study.loc["age65", "standard_per_1000"] == 30 and bool(study.loc["age65", "meets_standard"])
    assert np.isnan(study.loc["population", "standard_per_1000"])  # the standard is per 1,000 elderly
    assert set(acc.unit) == {"study_area", "城东街道", "城西街道"}
    eq = pd.read_csv(out / "equity.csv", encoding="utf-8-sig")
    assert {"residents", "units"} == set(eq.level)
    row = eq[(eq.category == "elderly_care") & (eq.group == "age65") & (eq.indicator == "access_2sfca")
             & (eq.level == "units")].iloc[0]
    units = acc[(acc.unit != "study_area") & (acc.category == "elderly_care") & (acc.group == "age65")]
    vals, w = units.access_2sfca_per_1000.to_numpy(), units.population.to_numpy()
    pairwise = (w[:, None] * w[None, :] * np.abs(vals[:, None] - vals[None, :])).sum()
    assert np.isclose(row.gini, pairwise / (2 * w.sum() ** 2 * (w * vals).sum() / w.sum()))
    assert np.isclose(row.best_worst_gap, vals.max() - vals.min())
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["accessibility"]["groups"] == {"population": 4.0, "age65": 3.0}
    assert summary["equity"]["elderly_care"]["age65"]["access_2sfca"]["units"]["gini"] == pytest.approx(row.gini)
    assert any("median of the others (30)" in w for w in summary["warnings"])
    res = gpd.read_file(out / "residents.gpkg")
    assert {"age65", "access_2sfca_elderly_care", "access_2sfca_elderly_care_age65",
            "minutes_to_elderly_care_age65"} <= set(res.columns)
    assert np.isclose((res.age65 * res.access_2sfca_elderly_care_age65).sum(), 90.0)
    fac_out = gpd.read_file(out / "facilities.gpkg")
    assert sorted(fac_out.loc[fac_out.category == "elderly_care", "capacity"]) == [20, 30, 40]


def test_cli_lorenz_figure_with_units(tmp_path):
    assert main(["-q", "analyze", "--example", "toy_town", "--admin-level", "8", "--basemap", "none",
                 "--out", str(tmp_path)]) == 0
    assert (tmp_path / "lorenz.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("args, code, words", [
    (["--capacity-column", "beds"], 1, ["line 3", "'many'"]),
    (["--capacity-column", "betten"], 1, ["no column 'betten'", "--capacity-column"]),
    (["--group-columns", "age80"], 1, ["no group column 'age80'", "--group-columns"]),
    (["--group-columns", "age65", "--group-speed-kmh", "age65=slow"], 2, ["--group-speed-kmh", "positive number"]),
    (["--group-columns", "age65", "--group-speed-kmh", "kids=3"], 1, ["kids", "--group-columns"]),
    (["--demand-group", "elderly_care=age65"], 1, ["not a group column"]),
])
def test_cli_bad_supply_demand_options_say_what_to_fix(tmp_path, capsys, args, code, words):
    pop, fac = _toy_inputs(tmp_path, beds_second="many")
    if "--capacity-column" not in args:
        fac.write_text(fac.read_text(encoding="utf-8").replace(",many", ",5"), encoding="utf-8")
    rc = main(["-q", "analyze", "--example", "toy_town", "--population", str(pop), "--facilities", str(fac),
               "--no-map", "--out", str(tmp_path / "o"), *args])
    err = capsys.readouterr().err.strip()
    assert rc == code and len(err.splitlines()) == 1 and "Traceback" not in err
    for w in words:
        assert w in err, err


# ----------------------------------------------------------------------------------------------
# the local search (each facility's streets within reach only) against full Dijkstra rows


def _same_catchments(a):
    fac = np.flatnonzero(a.facilities["snapped"].to_numpy(bool))
    limit = a.config.headline_minutes * a.config.walk_speed_kmh * 1000 / 60
    local = catchment_matrix(a.times, fac, limit_m=limit, network=a.network)
    full = catchment_matrix(a.times, fac, limit_m=limit)  # no network: full rows
    assert local.nnz == full.nnz > 0
    assert np.array_equal(local.indptr, full.indptr) and np.array_equal(local.indices, full.indices)
    np.testing.assert_array_equal(local.data, full.data)  # the same sums of the same edges
    return local


def test_local_catchments_equal_full_rows_on_the_tiled_city(shanghai_tiled):
    d = _same_catchments(shanghai_tiled)
    assert d.shape[0] > 100  # many facilities, over a network of ~17,000 nodes


def test_local_catchments_equal_full_rows_on_helsinki():
    from lifecircle import analyze
    from lifecircle.datasets import helsinki_osm

    _same_catchments(analyze(helsinki_osm(), config=AnalysisConfig(standard="all", categories=("health", "culture", "sports"))))


def test_local_dijkstra_falls_back_when_the_geometry_lies():
    """Node positions that break the straight-line bound (an edge shorter than its chord) cannot
    make the local search wrong: the border check sends the search to the whole graph."""
    import networkx as nx

    from lifecircle.measure.bounded import sparse_within

    # a path 0-1-2-3 whose edge 1-2 is 10 m long although node 2 is drawn 5 km away
    m = sp.csr_matrix((np.array([100.0, 100, 10, 10, 100, 100]), ([0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2])),
                      shape=(4, 4))
    x = np.array([0.0, 100, 5100, 5200])
    r, c, v = sparse_within(m, x, 0 * x, np.array([0]), limit_m=500, tile_m=100)
    g = nx.from_scipy_sparse_array(m)
    want = nx.single_source_dijkstra_path_length(g, 0, cutoff=500, weight="weight")
    assert dict(zip(c.tolist(), v.tolist())) == {k: float(w) for k, w in want.items()} == {0: 0.0, 1: 100.0, 2: 110.0, 3: 210.0}


def test_local_dijkstra_is_exact_with_a_node_without_position():
    """A node at a NaN position only makes the searches slower (the border check), never wrong."""
    from lifecircle.measure.bounded import sparse_within

    m = sp.csr_matrix((np.full(6, 300.0), ([0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2])), shape=(4, 4))
    x = np.array([0.0, 300, np.nan, 900])
    r, c, v = sparse_within(m, x, 0 * np.nan_to_num(x), np.array([1]), limit_m=700)
    assert dict(zip(c.tolist(), v.tolist())) == {0: 300.0, 1: 0.0, 2: 300.0, 3: 600.0}
