"""People and facilities per connected part of the network; snapping to the largest part only."""

from __future__ import annotations

import geopandas as gpd
import networkx as nx
import numpy as np
import pyproj
import pytest
import shapely

import lifecircle as lc
from lifecircle import AnalysisConfig, WalkNetwork
from lifecircle.measure.snapping import snap_points

from conftest import lonlat


def _two_parts():
    """Part A: 0 — 1 — 2 — 3, 100 m edges along y = 0; part B: 4 — 5, 100 m, 400 m east of A's end."""
    x = np.array([0, 100, 200, 300, 700, 800], dtype=float)
    lon, lat = lonlat(x, np.zeros(6))
    return WalkNetwork.from_lonlat(lon, lat, [0, 1, 2, 4], [1, 2, 3, 5])


def _points(xy, **cols):
    lon, lat = lonlat(*np.asarray(xy, dtype=float).T)
    return gpd.GeoDataFrame(cols, geometry=gpd.points_from_xy(lon, lat), crs=4326)


def test_two_parts_by_hand():
    net = _two_parts()
    assert net.component_labels().tolist() == [0, 0, 0, 0, 1, 1]
    assert net.largest_component_share() == pytest.approx(4 / 6)
    # 3 residents (60 people) by part A, 2 (300 people) by part B; one health facility by each
    res = _points([(50, 10), (150, 10), (250, 10), (720, 10), (780, 10)], population=[10.0, 20, 30, 100, 200])
    fac = _points([(100, 5), (750, 5)], category=["health"] * 2, name=["A站", "B站"], source="list")
    cfg = AnalysisConfig(categories=("health",))
    a = lc.analyze(network=net, facilities=fac, population=res, config=cfg)
    comp = a.summary["components"]
    assert comp["count"] == 2
    assert comp["largest"]["nodes_share"] == pytest.approx(4 / 6)
    assert comp["largest"]["population_share"] == pytest.approx(60 / 360)
    assert comp["largest"]["facilities"] == 1 and comp["largest"]["facilities_share"] == pytest.approx(0.5)
    assert [(p["part"], p["nodes"], p["population"], p["facilities"]) for p in comp["parts"]] == [
        (0, 4, 60.0, 1), (1, 2, 300.0, 1)]
    warning = [w for w in a.summary["warnings"] if "largest connected part" in w]
    assert len(warning) == 1 and warning[0].startswith("only 17% of residents") and "1 of 2 facilities" in warning[0]
    assert "--snap-to-main-component" in warning[0]

    # joined to part A only: B's residents walk 400+ m to A's east end (x = 300); B's facility too
    main = lc.analyze(network=net, facilities=fac, population=res,
                      config=AnalysisConfig(categories=("health",), snap_main_component=True))
    assert main.summary["components"]["largest"]["population_share"] == 1.0
    assert main.summary["components"]["snap_main_component"] is True
    assert not any("largest connected part" in w for w in main.summary["warnings"])
    d = main.residents["snap_dist_m"].to_numpy()
    np.testing.assert_allclose(d, [10, 10, 10, np.hypot(420, 10), np.hypot(480, 10)], atol=0.05)
    # resident at x=720 walks 420 m (access, ~) to node 3, 200 m along A to x=100, 5 m to the facility
    expected_min = (np.hypot(420, 10) + 200 + 5) / (4000 / 60)
    assert main.residents["minutes_to_health"].iloc[3] == pytest.approx(expected_min, abs=0.01)


def test_snap_main_component_matches_shapely(shanghai_network):
    """On the real sample: every point joins an edge of the largest part, at the distance shapely measures to
    the union of that part's edges (networkx finds the part)."""
    net = shanghai_network
    g = net.to_networkx()
    biggest = max(nx.connected_components(g), key=len)
    in_main = np.isin(net.u, list(biggest))
    assert in_main.sum() == net.largest_component_edges().size
    rng = np.random.default_rng(3)
    lon = rng.uniform(net.lon.min(), net.lon.max(), 400)
    lat = rng.uniform(net.lat.min(), net.lat.max(), 400)
    s = snap_points(net, lon, lat, max_snap_m=5000, main_component=True)
    assert s.snapped.all() and in_main[s.edge].all()
    lines = shapely.linestrings(np.stack([np.column_stack([net.x[net.u], net.y[net.u]]),
                                          np.column_stack([net.x[net.v], net.y[net.v]])], axis=1))
    union = shapely.union_all(lines[in_main])
    x, y = pyproj.Transformer.from_crs(4326, net.crs, always_xy=True).transform(lon, lat)
    np.testing.assert_allclose(s.dist_m, shapely.distance(shapely.points(x, y), union), atol=1e-6)


def test_shanghai_sample_population_per_part(shanghai_network, shanghai_pbf, shanghai_facilities):
    """The warning counts people: a grid of residents over the sample, assigned to the nearest edge by shapely
    and to its part by networkx, gives the per-part population the summary reports."""
    net = shanghai_network
    w, s, e, n = net.lon.min(), net.lat.min(), net.lon.max(), net.lat.max()
    gx, gy = np.meshgrid(np.linspace(w, e, 40), np.linspace(s, n, 40))
    rng = np.random.default_rng(11)
    pop = rng.integers(1, 300, gx.size).astype(float)
    res = gpd.GeoDataFrame({"population": pop}, geometry=gpd.points_from_xy(gx.ravel(), gy.ravel()), crs=4326)
    real = shanghai_facilities[shanghai_facilities.category.isin(["health", "sport"])]
    fac = gpd.GeoDataFrame({"category": real.category.replace({"sport": "sports"}).to_numpy(),
                            "name": real.name.to_numpy(), "source": "list"}, geometry=real.geometry.to_numpy(), crs=4326)
    a = lc.analyze(shanghai_pbf, network=net, facilities=fac, replace_osm_facilities=True, population=res,
                   config=AnalysisConfig(categories=("health", "sports")))

    # independently: networkx parts, shapely nearest edge
    g = net.to_networkx()
    parts = sorted(nx.connected_components(g), key=len, reverse=True)
    part_of = np.empty(net.n_nodes, dtype=int)
    for k, p in enumerate(parts):
        part_of[list(p)] = k
    lines = shapely.linestrings(np.stack([np.column_stack([net.x[net.u], net.y[net.u]]),
                                          np.column_stack([net.x[net.v], net.y[net.v]])], axis=1))
    tree = shapely.STRtree(lines)
    to_m = pyproj.Transformer.from_crs(4326, net.crs, always_xy=True)

    def parts_of(gdf):
        x, y = to_m.transform(gdf.geometry.x.to_numpy(), gdf.geometry.y.to_numpy())
        idx, dist = tree.query_nearest(shapely.points(x, y), return_distance=True, all_matches=False)
        out = part_of[net.u[idx[1]]]
        return np.where(dist <= 500, out, -1)

    r_part, f_part = parts_of(res), parts_of(a.facilities)
    on = r_part >= 0
    expected_share = pop[on & (r_part == 0)].sum() / pop[on].sum()
    comp = a.summary["components"]
    assert comp["count"] == len(parts)
    assert comp["largest"]["nodes_share"] == pytest.approx(len(parts[0]) / net.n_nodes)
    assert comp["largest"]["population_share"] == pytest.approx(expected_share, rel=1e-9)
    assert comp["largest"]["facilities"] == int((f_part == 0).sum())
    for p in comp["parts"]:
        assert p["population"] == pytest.approx(pop[r_part == p["part"]].sum())
        assert p["facilities"] == int((f_part == p["part"]).sum())
    # the sample is a drive network clipped to a block: far from every resident on one part
    assert comp["largest"]["nodes_share"] > 0.85 and expected_share < 0.8
    assert any(w.startswith(f"only {expected_share:.0%} of residents") for w in a.summary["warnings"])
