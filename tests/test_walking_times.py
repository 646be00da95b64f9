"""Walking times: hand-worked answers on tiny graphs, and an independent networkx reference on real data."""

from __future__ import annotations

import geopandas as gpd
import networkx as nx
import numpy as np
import pytest
import shapely

from conftest import lonlat
from lifecircle import AnalysisConfig, EmptyResultError, WalkNetwork, network_from_osm, walking_times
from lifecircle.datasets import toy_town_osm
from lifecircle.read.facilities import facilities_from_osm

MPM = 4000 / 60  # metres per minute at the default 4 km/h


def points(xy_m, **cols):
    lo, la = lonlat([p[0] for p in xy_m], [p[1] for p in xy_m])
    return gpd.GeoDataFrame(cols, geometry=gpd.points_from_xy(lo, la), crs=4326)


@pytest.fixture(scope="module")
def toy():
    return network_from_osm(toy_town_osm()), facilities_from_osm(toy_town_osm())


def test_toy_town_by_hand(toy):
    net, fac = toy
    res = points([(0, 0), (700, 10), (620, 390)], population=[1, 1, 1])
    m = walking_times(net, res, fac).minutes
    # (0,0): health centre at (100,10) snaps at (100,0): 100 m + 10 m access
    # (700,10): the river forces the footbridge: 100+200+200+200+200+100 m + 10+10 access = 1020 m
    # (620,390): 20 to (600,400), 200 down, 200 bridge, 200+200+100 to (100,0), + 10+10 = 940 m
    np.testing.assert_allclose(m["minutes_to_health"], np.array([110, 1020, 940]) / MPM, rtol=1e-4)
    # (700,10) -> pitch at (670,100) snaps at (600,100): 100 + 100 + 10 + 70 access = 280 m
    assert m["minutes_to_sports"][1] == pytest.approx(280 / MPM, rel=1e-4)


def test_river_not_crossed_and_cutoff(toy):
    net, fac = toy
    res = points([(700, 10)], population=[1])
    cfg = AnalysisConfig(minutes=(5, 10, 15), max_minutes=15)
    m = walking_times(net, res, fac, config=cfg).minutes
    # 1020 m = 15.3 min is beyond the 15 min cut-off: reported as unreachable, though the health
    # centre is only 600 m away as the crow flies (across the river)
    assert np.isinf(m["minutes_to_health"][0])


def test_same_edge_points_walk_along_the_edge():
    lo, la = lonlat([0, 1000], [0, 0])
    net = WalkNetwork.from_lonlat(lo, la, [0], [1])
    res = points([(400, 30)], population=[5])
    fac = points([(700, 40), (100, 300)], category=["health", "health"])  # second is > 250 m off
    cfg = AnalysisConfig(max_snap_m=250, categories=("health",))
    wt = walking_times(net, res, fac, config=cfg)
    assert wt.minutes["minutes_to_health"][0] == pytest.approx((30 + 300 + 40) / MPM, rel=1e-5)
    assert wt.facility_snap.snapped.tolist() == [True, False]


def test_unsnapped_resident_is_not_covered_and_far_points_raise():
    lo, la = lonlat([0, 1000], [0, 0])
    net = WalkNetwork.from_lonlat(lo, la, [0], [1])
    fac = points([(500, 0)], category=["health"])
    wt = walking_times(net, points([(0, 10), (0, 900)], population=[1, 1]), fac,
                       config=AnalysisConfig(categories=("health",)))
    assert wt.resident_snap.snapped.tolist() == [True, False]
    assert np.isinf(wt.minutes["minutes_to_health"][1])
    assert wt.resident_snap.dist_m[1] == pytest.approx(900, abs=0.5)
    with pytest.raises(EmptyResultError, match="CRS"):
        walking_times(net, points([(0, 5000)], population=[1]), fac, config=AnalysisConfig(categories=("health",)))


def test_category_without_facilities_is_a_clear_error(toy):
    net, fac = toy
    with pytest.raises(EmptyResultError, match="--categories"):
        walking_times(net, points([(0, 0)], population=[1]), fac[fac.category != "culture"])


def _reference_minutes(net, res, fac):
    """Independent reference: brute-force snapping with shapely, a super-source in networkx."""
    lines = shapely.linestrings(np.stack([np.column_stack([net.x[net.u], net.y[net.u]]),
                                          np.column_stack([net.x[net.v], net.y[net.v]])], axis=1))
    import pyproj

    tr = pyproj.Transformer.from_crs(4326, net.crs, always_xy=True)

    def snap(g):
        x, y = tr.transform(g.geometry.x.to_numpy(), g.geometry.y.to_numpy())
        out = []
        for px, py in zip(x, y):
            p = shapely.Point(px, py)
            d = shapely.distance(lines, p)
            e = int(np.argmin(d))
            out.append((e, lines[e].project(p, normalized=True), float(d[e])))
        return out

    rs, fs = snap(res), snap(fac)
    g = net.to_networkx()
    g.add_node("S")
    for e, t, a in fs:
        u, v, L = int(net.u[e]), int(net.v[e]), float(net.length_m[e])
        for node, w in ((u, a + t * L), (v, a + (1 - t) * L)):
            if not g.has_edge("S", node) or g["S"][node]["length"] > w:
                g.add_edge("S", node, length=w)
    dist = nx.single_source_dijkstra_path_length(g, "S", weight="length")
    out = []
    for e, t, a in rs:
        u, v, L = int(net.u[e]), int(net.v[e]), float(net.length_m[e])
        best = min(dist.get(u, np.inf) + t * L, dist.get(v, np.inf) + (1 - t) * L) + a
        for fe, ft, fa in fs:  # facility on the same edge: walk straight along it
            if fe == e:
                best = min(best, a + abs(t - ft) * L + fa)
        out.append(best / MPM)
    return np.array(out)


def test_identical_to_networkx_on_shanghai_sample(shanghai_network, shanghai_facilities):
    net = shanghai_network
    rng = np.random.default_rng(42)
    west, south, east, north = 121.4611, 31.2196, 121.4863, 31.2411
    res = gpd.GeoDataFrame({"population": rng.integers(1, 500, 400)},
                           geometry=gpd.points_from_xy(rng.uniform(west, east, 400), rng.uniform(south, north, 400)),
                           crs=4326)
    for cat, mask in (("health", shanghai_facilities.category == "health"),
                      ("sports", shanghai_facilities.category == "sport")):
        fac = shanghai_facilities[mask].assign(category=cat)
        assert len(fac) > 3
        cfg = AnalysisConfig(categories=(cat,), max_minutes=1e6, max_snap_m=1e6)
        ours = walking_times(net, res, fac, config=cfg).minutes[f"minutes_to_{cat}"].to_numpy()
        ref = _reference_minutes(net, res, fac)
        finite = np.isfinite(ref)
        assert finite.mean() > 0.5  # the drive-only sample has several disconnected pieces
        np.testing.assert_array_equal(np.isfinite(ours), finite)
        np.testing.assert_allclose(ours[finite], ref[finite], rtol=1e-9, atol=1e-6)


def test_search_without_the_residents_equals_the_whole_access_graph():
    """The category search runs on the network with only the facilities inserted; every other node's distance is
    derived (walking_times module docstring). On a street grid with residents and facilities sharing edges, at
    the same position and beside each other, every node's distance equals a networkx Dijkstra on the whole
    access graph (residents inserted), with and without a cut-off."""
    from dataclasses import replace

    from lifecircle.measure.snapping import snap_points
    from lifecircle.measure.walking_times import build_access_graph

    xs = np.arange(4) * 200.0  # a 4 x 4 grid of 200 m blocks
    gx, gy = np.meshgrid(xs, xs)
    lo, la = lonlat(gx.ravel(), gy.ravel())
    idx = np.arange(16).reshape(4, 4)
    u = np.r_[idx[:, :-1].ravel(), idx[:-1, :].ravel()]
    v = np.r_[idx[:, 1:].ravel(), idx[1:, :].ravel()]
    net = WalkNetwork.from_lonlat(lo, la, u, v)
    rng = np.random.default_rng(7)
    # residents: random, plus two on the street between (0,0) and (200,0), where facilities also are
    res_xy = np.c_[rng.uniform(0, 600, 40), rng.uniform(0, 600, 40)]
    res_xy = np.r_[res_xy, [[50, 5], [150, 5], [120, -4]]]
    # facilities: two on that street (one at the same place as a resident's projection), one elsewhere
    fac_xy = np.array([[120.0, 8.0], [80, -3], [410, 390]])
    x, y = lonlat(np.r_[res_xy[:, 0], fac_xy[:, 0]], np.r_[res_xy[:, 1], fac_xy[:, 1]])
    snap = snap_points(net, x, y)
    nr = len(res_xy)
    graph = build_access_graph(net, snap, sources=nr + np.arange(len(fac_xy)))
    whole = replace(graph, source_points=None, _cache={})  # the same graph, searched as a whole
    ref = whole.to_networkx()
    for src_pts in ([nr], [nr, nr + 1], [nr + 2], [nr, nr + 1, nr + 2]):
        src = graph.point_node[src_pts]
        want = nx.multi_source_dijkstra_path_length(ref, set(src.tolist()), weight="length")
        exact = np.array([want.get(i, np.inf) for i in range(graph.n_nodes)])
        for limit in (np.inf, 350.0):
            got = graph.distances_from(src, limit_m=limit)
            expect = np.where(exact <= limit, exact, np.inf)
            np.testing.assert_allclose(got, expect, rtol=0, atol=1e-9)
            np.testing.assert_allclose(whole.distances_from(src, limit_m=limit), expect, rtol=0, atol=1e-9)
    assert "sources" in graph._cache  # the smaller graph was searched
    # sources that are not among the declared ones: the whole graph is searched
    other = graph.point_node[[0, 1]]
    want = nx.multi_source_dijkstra_path_length(ref, set(other.tolist()), weight="length")
    np.testing.assert_allclose(graph.distances_from(other),
                               [want.get(i, np.inf) for i in range(graph.n_nodes)], rtol=0, atol=1e-9)
