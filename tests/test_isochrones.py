"""Isochrones: areas and cut points worked out by hand, the toy river, and a networkx reference on real data.

``method="exact"`` is checked to GEOS precision; ``method="grid"`` (the default) against the same hand-made
shapes (drawn with true circles) within the tolerance it states, and against ``"exact"`` on real data.
"""

from __future__ import annotations

import math

import geopandas as gpd
import networkx as nx
import numpy as np
import pyogrio
import pytest
import shapely

from conftest import X0, Y0, lonlat
from lifecircle import AnalysisConfig, InputDataError, LifecircleError, WalkNetwork, analyze, network_from_osm
from lifecircle.datasets import toy_town_osm
from lifecircle.errors import CRSError, EmptyResultError
from lifecircle.datasets import helsinki_osm, shared_data_dir
from lifecircle.present.isochrones import (GRID_TOLERANCE, facility_service_areas, grid_cell_m, point_isochrones,
                                           service_areas, write_isochrones)
from lifecircle.measure.walking_times import walking_times

MPM = 4000 / 60  # metres per minute at 4 km/h
B = 25.0  # buffer_m
# GEOS draws a quarter circle with 8 segments: a 32-gon inscribed in the circle
DISC = 16 * B * B * math.sin(2 * math.pi / 32)
BAND = B * (1 - math.cos(math.pi / 32))  # how far inside the true circle an arc's chords can fall


def net_from_xy(nodes_xy, edges):
    lo, la = lonlat([p[0] for p in nodes_xy], [p[1] for p in nodes_xy])
    return WalkNetwork.from_lonlat(lo, la, [e[0] for e in edges], [e[1] for e in edges])


def iso_local(net, x, y, **kw):
    """Point isochrones from local metres (x, y); geometries back in local metres."""
    lo, la = lonlat(x, y)
    iso = point_isochrones(net, float(lo), float(la), **kw)
    geoms = iso.to_crs(32651).geometry.apply(lambda g: shapely.transform(g, lambda c: c - [X0, Y0]))
    return iso, list(geoms)


def inside(poly, *xy):
    return [bool(poly.covers(shapely.Point(p))) for p in xy]


@pytest.fixture(scope="module")
def toy_net():
    return network_from_osm(toy_town_osm())


# ---------------------------------------------------------------- hand-built graphs


def test_straight_street_area_by_hand():
    # a 1000 m street; from (300, 0) on it, 3 min = 200 m reaches x = 100..500: a 400 m line
    net = net_from_xy([(0, 0), (1000, 0)], [(0, 1)])
    iso, (poly,) = iso_local(net, 300, 0, minutes=3, method="exact")
    expected = 400 * 2 * B + DISC  # rectangle + two half-disc end caps (as GEOS draws them)
    assert iso.area_km2[0] * 1e6 == pytest.approx(expected, rel=1e-6)
    minx, miny, maxx, maxy = poly.bounds
    assert (minx, maxx, miny, maxy) == pytest.approx((100 - B, 500 + B, -B, B), abs=0.01)


@pytest.mark.parametrize("cell_m", [None, 7.5, 15.0])
def test_grid_stadium_from_a_facility_at_the_street_end(cell_m):
    """One straight street, one facility at its end: the service area is a stadium of known area."""
    net = net_from_xy([(0, 0), (1000, 0)], [(0, 1)])
    lo, la = lonlat([0, 500], [0, 0])
    fac = gpd.GeoDataFrame({"category": ["health"]}, geometry=gpd.points_from_xy(lo[:1], la[:1]), crs=4326)
    res = gpd.GeoDataFrame({"population": [1.0]}, geometry=gpd.points_from_xy(lo[1:], la[1:]), crs=4326)
    wt = walking_times(net, res, fac, config=AnalysisConfig(categories=("health",)))
    sa = service_areas(wt, net, minutes=(3, 6), cell_m=cell_m)  # 200 m and 400 m of street
    assert sa.attrs["method"] == "grid" and sa.attrs["cell_m"] == (cell_m or grid_cell_m(net))
    for reach_m, area_km2 in zip((200, 400), sa.area_km2):
        stadium = 2 * B * reach_m + math.pi * B * B  # a 2B-wide band with a half disc at each end
        assert area_km2 * 1e6 == pytest.approx(stadium, rel=GRID_TOLERANCE)
    poly = shapely.transform(sa.to_crs(32651).geometry.iloc[0], lambda c: c - [X0, Y0])
    assert poly.bounds == pytest.approx((-B, -B, 200 + B, B), abs=0.5)
    assert inside(poly, (0, 0), (199, 24), (-20, 0), (215, 0)) == [True] * 4
    assert inside(poly, (0, 27), (227, 0), (200, 26), (-27, 0)) == [False] * 4


def test_grid_default_is_close_at_five_metre_cells():
    """At 5 m cells (a district-sized network) the interpolation error is ~0.1 %, far inside the 2 % claim."""
    net = net_from_xy([(0, 0), (1000, 0)], [(0, 1)])
    iso, _ = iso_local(net, 300, 0, minutes=3)
    assert iso.attrs["cell_m"] == 5.0
    assert iso.area_km2[0] * 1e6 == pytest.approx(400 * 2 * B + math.pi * B * B, rel=2e-3)


def test_t_junction_area_against_hand_written_lines():
    # A(0,0) — B(400,0), and B — C(400,300), B — D(400,-300). From (100, 20): a 20 m access leg to
    # (100, 0); 5 min = 333.33 m leaves 313.33 m: all 100 m west to A (a dead end), 300 m east to B,
    # then 13.33 m up and down the cross street.
    net = net_from_xy([(0, 0), (400, 0), (400, 300), (400, -300)], [(0, 1), (1, 2), (1, 3)])
    iso, (poly,) = iso_local(net, 100, 20, minutes=5, method="exact")
    r = 1000 / 3 - 20 - 300
    hand = shapely.MultiLineString([[(100, 20), (100, 0)], [(0, 0), (400, 0)], [(400, -r), (400, r)]])
    ref = hand.buffer(B, quad_segs=8)  # as lifecircle draws it (the .buffer method defaults to 16)
    assert iso.area_km2[0] * 1e6 == pytest.approx(ref.area, rel=1e-4)
    assert poly.symmetric_difference(ref).area < 5  # m²: only the arcs' vertices differ
    assert iso.snap_dist_m[0] == pytest.approx(20, abs=0.01)
    # the cut on the cross street: reached up to y = 13.33, its cap ends 25 m further
    assert poly.intersection(shapely.box(390, -100, 500, 100)).bounds[3] == pytest.approx(r + B, abs=0.01)
    assert inside(poly, (400, r + B - 0.5)) == [True]
    assert inside(poly, (400, r + B + 0.5), (450, 0)) == [False, False]
    # the grid draws the same shape (true circles) within its tolerance, and within a cell of its boundary
    grid, (gpoly,) = iso_local(net, 100, 20, minutes=5, cell_m=10)
    true = hand.buffer(B, quad_segs=64)
    assert grid.area_km2[0] * 1e6 == pytest.approx(true.area, rel=GRID_TOLERANCE)
    assert gpoly.symmetric_difference(true).area < GRID_TOLERANCE * true.area
    assert gpoly.buffer(10).covers(true) and true.buffer(10).covers(gpoly)


@pytest.mark.parametrize("method, abs_m", [("exact", 0.01), ("grid", 0.5)])
@pytest.mark.parametrize("speed_kmh, cut_x", [(4.0, 100 + 1000 / 3 - 10), (3.0, 100 + 250 - 10)])
def test_mid_edge_cut_is_at_the_right_place(speed_kmh, cut_x, method, abs_m):
    # from (100, 10): a 10 m leg, then 5 min of walking along a 1000 m street
    net = net_from_xy([(0, 0), (1000, 0)], [(0, 1)])
    _, (poly,) = iso_local(net, 100, 10, minutes=5, walk_speed_kmh=speed_kmh, method=method)
    assert poly.bounds[2] == pytest.approx(cut_x + B, abs=abs_m)  # the round cap's tip
    assert poly.bounds[0] == pytest.approx(-B, abs=abs_m)  # the west end (100 m) is reached whole


@pytest.mark.parametrize("method, rel", [("exact", 1e-3), ("grid", GRID_TOLERANCE)])
def test_cut_from_both_ends_of_a_loop(method, rel):
    # a 400 m square from its corner (0, 0): 700 m goes 400 + 300 each way round, and stops 100 m
    # short of the far corner from both sides. At 850 m both walks meet: the loop is closed.
    net = net_from_xy([(0, 0), (400, 0), (400, 400), (0, 400)], [(0, 1), (1, 2), (2, 3), (3, 0)])
    iso, (p700, p850) = iso_local(net, 0, 0, minutes=(700 / MPM, 850 / MPM), method=method)
    assert inside(p700, (400, 300 + B - 1), (300 + B - 1, 400)) == [True, True]
    assert inside(p700, (400, 300 + B + 1), (300 + B + 1, 400), (400, 400)) == [False, False, False]
    assert inside(p850, (400, 400), (400, 350), (350, 400), (200, 200)) == [True, True, True, False]
    # the closed loop: the outer square (round corners) minus the inner square (sharp corners)
    ring = (450**2 - 350**2) - (B * B - math.pi * B * B / 4) * 4
    assert iso.area_km2[1] * 1e6 == pytest.approx(ring, rel=rel)
    assert len(p850.interiors if p850.geom_type == "Polygon" else p850.geoms[0].interiors) == 1  # the hole


@pytest.mark.parametrize("method", ["exact", "grid"])
def test_nested_and_monotonic(toy_net, method):
    iso, polys = iso_local(toy_net, 300, 100, minutes=(5, 10, 15), method=method)
    assert np.all(np.diff(iso.area_km2) > 0)
    slack = 1e-6 if method == "exact" else 0.01  # m: a grid's contours of nested fields nest to the cm
    assert polys[2].buffer(slack).covers(polys[1]) and polys[1].buffer(slack).covers(polys[0])


def test_concave_method_by_hand(toy_net):
    # from the corner (0, 0), 3 min = 200 m reaches (200, 0) and (0, 200): the hull is that triangle
    iso, _ = iso_local(toy_net, 0, 0, minutes=3, method="concave")
    triangle = 200 * 200 / 2
    expected = triangle + (400 + 200 * math.sqrt(2)) * B + math.pi * B * B  # buffered triangle
    assert iso.area_km2[0] * 1e6 == pytest.approx(expected, rel=1e-3)
    net_iso, _ = iso_local(toy_net, 0, 0, minutes=3, method="exact")
    assert net_iso.area_km2[0] < iso.area_km2[0]


# ---------------------------------------------------------------- the toy town's river


@pytest.mark.parametrize("method, abs_m", [("exact", 0.01), ("grid", 0.5)])
def test_river_is_crossed_only_by_the_footbridge(toy_net, method, abs_m):
    # from (460, 0), 40 m west of the river at x = 500: a 60 m leg to the corner (400, 0)
    _, (p5, p10) = iso_local(toy_net, 460, 0, minutes=(5, 10), method=method)
    river = shapely.LineString([(500, -50), (500, 450)])
    # 5 min = 333.3 m: 60 leg + 200 north + 73.3 onto the bridge, to x = 473.3: not over the river
    assert not p5.intersects(river)
    assert inside(p5, (473, 200), (600, 0), (600, 100), (600, 200), (620, 200), (700, 0)) == [True] + [False] * 5
    # 10 min = 666.7 m: over the bridge to (600, 200) at 460 m, then (600, 0) at 660 m, (800, 200) at 660 m
    assert inside(p10, (600, 200), (600, 100), (600, 0), (700, 200), (800, 200)) == [True] * 5
    # (700, 0) is 240 m from the start across the river but 760 m on foot; (700, 400) too
    assert inside(p10, (700, 0), (700, 400), (560, 0)) == [False] * 3
    # the river is crossed only where the bridge is: its buffer, 200 ± 25 m
    cross = p10.intersection(river)
    assert cross.bounds[1] == pytest.approx(200 - B, abs=abs_m)
    assert cross.bounds[3] == pytest.approx(200 + B, abs=abs_m)
    # the east bank south of the bridge is unreached space: a grid cell there gets no time
    assert not p10.intersects(shapely.box(505, 30, 570, 170))


# ---------------------------------------------------------------- analysis outputs


@pytest.fixture(scope="module")
def toy_analysis():
    return analyze(toy_town_osm(), config=AnalysisConfig(categories=("health", "culture", "sports")))


def test_service_areas_from_analysis_or_times(toy_analysis):
    a = toy_analysis
    sa = service_areas(a)
    assert sa.columns.tolist() == ["category", "minutes", "area_km2", "geometry"]
    assert sa[["category", "minutes"]].values.tolist() == [
        [c, m] for c in ("health", "culture", "sports") for m in (5.0, 10.0, 15.0)]
    assert sa.crs.to_epsg() == 4326
    same = service_areas(a.times, a.network, minutes=(5, 10, 15))
    np.testing.assert_allclose(same.area_km2, sa.area_km2, rtol=1e-12)
    # the health centre's category area equals its own isochrone (a facility is a point too)
    lon, lat = a.facilities.geometry.iloc[0].x, a.facilities.geometry.iloc[0].y
    assert a.facilities.category.iloc[0] == "health"
    iso = point_isochrones(a.network, lon, lat)
    np.testing.assert_allclose(sa.area_km2[:3], iso.area_km2, rtol=1e-6)


def test_search_stopped_early_is_redone():
    short = analyze(toy_town_osm(), config=AnalysisConfig(categories=("health",), max_minutes=15))
    full = analyze(toy_town_osm(), config=AnalysisConfig(categories=("health",), max_minutes=60))
    assert np.isinf(short.times.distances_m["health"]).any()  # cut at 1000 m: the east bank is farther
    a, b = service_areas(short, minutes=25), service_areas(full, minutes=25)
    assert a.area_km2[0] == pytest.approx(b.area_km2[0], rel=1e-9)


def test_facility_service_areas_toy(toy_analysis):
    a = toy_analysis
    fsa = facility_service_areas(a, minutes=(5, 10), chunk_size=2)
    assert fsa.columns.tolist() == ["facility_index", "category", "name", "minutes", "area_km2", "geometry"]
    assert len(fsa) == 2 * len(a.facilities)
    # each facility's area equals a point isochrone from where it stands (another graph, another search)
    for row in fsa.itertuples():
        pt = a.facilities.geometry.loc[row.facility_index]
        iso = point_isochrones(a.network, pt.x, pt.y, minutes=row.minutes)
        assert row.area_km2 == pytest.approx(iso.area_km2[0], rel=1e-6)
    named = fsa.dropna(subset=["name"])
    assert "社区图书馆" in set(named.name)


# ---------------------------------------------------------------- real Shanghai data


@pytest.fixture(scope="module")
def shanghai(shanghai_network, shanghai_facilities):
    rng = np.random.default_rng(7)
    n = 300
    west, south, east, north = 121.4611, 31.2196, 121.4863, 31.2411
    res = gpd.GeoDataFrame({"population": rng.integers(1, 500, n)},
                           geometry=gpd.points_from_xy(rng.uniform(west, east, n), rng.uniform(south, north, n)), crs=4326)
    fac = shanghai_facilities
    fac = fac[fac.category.isin(["health", "sport"])].assign(
        category=lambda f: f.category.replace({"sport": "sports"}), source="list")
    return analyze(network=shanghai_network, facilities=fac, replace_osm_facilities=True, population=res,
                   config=AnalysisConfig(categories=("health", "sports")))


def _reference_reached_lines(net, fsnap, limit_m):
    """Independent reference: networkx distances, then the reached part of every edge by hand."""
    g = net.to_networkx()
    g.add_node("S")
    for e, t, acc in zip(fsnap.edge, fsnap.t, fsnap.dist_m):
        if e < 0:
            continue
        u, v, le = int(net.u[e]), int(net.v[e]), float(net.length_m[e])
        for node, w in ((u, acc + t * le), (v, acc + (1 - t) * le)):
            if not g.has_edge("S", node) or g["S"][node]["length"] > w:
                g.add_edge("S", node, length=w)
    dist = nx.single_source_dijkstra_path_length(g, "S", weight="length", cutoff=limit_m)

    def part(x0, y0, x1, y1, f0, f1):
        return shapely.LineString([(x0 + f0 * (x1 - x0), y0 + f0 * (y1 - y0)), (x0 + f1 * (x1 - x0), y0 + f1 * (y1 - y0))])

    lines = []
    for i in range(net.n_edges):
        u, v, le = int(net.u[i]), int(net.v[i]), float(net.length_m[i])
        for a, b in ((u, v), (v, u)):
            if a in dist:
                f = min(1, (limit_m - dist[a]) / le) if le > 0 else 1
                lines.append(part(net.x[a], net.y[a], net.x[b], net.y[b], 0, f))
    for e, t, acc, px, py in zip(fsnap.edge, fsnap.t, fsnap.dist_m, fsnap.x, fsnap.y):
        if e < 0:
            continue
        u, v, le = int(net.u[e]), int(net.v[e]), float(net.length_m[e])
        qx, qy = net.x[u] + t * (net.x[v] - net.x[u]), net.y[u] + t * (net.y[v] - net.y[u])
        lines.append(part(px, py, qx, qy, 0, min(1, limit_m / acc) if acc > 0 else 1))  # the access leg
        r = limit_m - acc  # along its own edge, both ways from the projection
        if r > 0:
            lines.append(part(net.x[u], net.y[u], net.x[v], net.y[v], max(0, t - r / le), min(1, t + r / le)))
    return np.array(lines)


def test_shanghai_polygon_matches_reference_and_covers_covered_residents(shanghai):
    """What exactly the 15-minute polygon contains, checked against an independent construction.

    The polygon is every point within ``buffer_m`` (straight line) of a street position reachable in
    L = 1000 m. So the right check is geometric: a point is inside ⇔ its distance to the reference
    reached lines is ≤ 25 m, except in a band of 25 (1 − cos(π/32)) = 0.12 m where the 32-gon arcs
    cut inside the circle. A bound on the walking distance would be wrong: a snap point on the
    parallel carriageway of a reached road is 20 m away in a straight line, but it can be
    hundreds of metres away on foot, or on a disconnected piece of this drive-only sample.
    """
    a = shanghai
    net, L = a.network, 15 * MPM
    sa = service_areas(a, minutes=15, categories="health", method="exact")
    poly = sa.to_crs(net.crs).geometry.iloc[0]
    fac = a.times.facility_snap
    health = a.times.facility_category == "health"
    lines = _reference_reached_lines(net, type(fac)(*(x[health] for x in (fac.edge, fac.t, fac.dist_m, fac.x, fac.y))), L)
    ref_area = shapely.union_all(shapely.buffer(lines, B)).area
    assert sa.area_km2[0] * 1e6 == pytest.approx(ref_area, rel=1e-4)

    rs = a.times.resident_snap
    ok = rs.snapped
    e, t = rs.edge[ok], rs.t[ok]
    sx = net.x[net.u[e]] + t * (net.x[net.v[e]] - net.x[net.u[e]])
    sy = net.y[net.u[e]] + t * (net.y[net.v[e]] - net.y[net.u[e]])
    snap_pts = shapely.points(sx, sy)
    covered = a.residents["minutes_to_health"].to_numpy()[ok] <= 15
    assert 0.3 < covered.mean() < 1  # the test is informative: some are covered, some not
    assert shapely.covers(poly, snap_pts[covered]).all()

    rng = np.random.default_rng(1)
    lo, hi = np.array(poly.bounds[:2]) - 100, np.array(poly.bounds[2:]) + 100
    probes = shapely.points(rng.uniform(lo, hi, (3000, 2)))
    pts = np.concatenate([snap_pts, probes])
    ref_d = shapely.distance(shapely.MultiLineString(list(lines)), pts)
    ins = shapely.covers(poly, pts)
    assert ins.sum() > 300 and (~ins).sum() > 300
    assert ref_d[ins].max() <= B + 1e-6
    assert ref_d[~ins].min() >= B - BAND - 1e-6


def test_shanghai_grid_against_the_reference(shanghai):
    """The grid polygon holds the points within 25 m of the reference reached lines, up to a cell's band."""
    a = shanghai
    net, L = a.network, 15 * MPM
    sa = service_areas(a, minutes=15, categories="health")
    h = sa.attrs["cell_m"]
    poly = sa.to_crs(net.crs).geometry.iloc[0]
    fac = a.times.facility_snap
    health = a.times.facility_category == "health"
    lines = _reference_reached_lines(net, type(fac)(*(x[health] for x in (fac.edge, fac.t, fac.dist_m, fac.x, fac.y))), L)
    ref = shapely.union_all(shapely.buffer(lines, B, quad_segs=32))
    assert sa.area_km2[0] * 1e6 == pytest.approx(ref.area, rel=GRID_TOLERANCE)
    assert poly.symmetric_difference(ref).area < GRID_TOLERANCE * ref.area
    rng = np.random.default_rng(2)
    lo, hi = np.array(poly.bounds[:2]) - 100, np.array(poly.bounds[2:]) + 100
    probes = shapely.points(rng.uniform(lo, hi, (4000, 2)))
    ref_d = shapely.distance(shapely.MultiLineString(list(lines)), probes)
    ins = shapely.covers(poly, probes)
    assert ins[ref_d <= B - h].all() and not ins[ref_d >= B + h].any()
    assert (ref_d <= B - h).sum() > 300 and (ref_d >= B + h).sum() > 300


@pytest.mark.parametrize("method, rel", [("exact", 1e-3), ("grid", GRID_TOLERANCE)])
def test_shanghai_facility_union_equals_category_area(shanghai, method, rel):
    a = shanghai
    sa = service_areas(a, minutes=(10, 15), method=method)
    fsa = facility_service_areas(a, minutes=(10, 15), chunk_size=5, method=method)
    assert set(fsa.facility_index) == set(a.facilities.index[a.facilities.snapped])
    utm = fsa.to_crs(a.network.crs)
    for (cat, m), grp in utm.groupby(["category", "minutes"]):
        merged = shapely.union_all(grp.geometry.to_numpy()).area / 1e6
        row = sa[(sa.category == cat) & (sa.minutes == m)]
        assert merged == pytest.approx(float(row.area_km2.iloc[0]), rel=rel)
        assert (grp.area_km2 <= float(row.area_km2.iloc[0]) * (1 + 1e-9)).all()


def _grid_vs_exact(a):
    grid, exact = service_areas(a), service_areas(a, method="exact")
    assert grid[["category", "minutes"]].values.tolist() == exact[["category", "minutes"]].values.tolist()
    return grid, exact, grid.area_km2.to_numpy() / exact.area_km2.to_numpy() - 1


def test_grid_agrees_with_exact_on_the_shanghai_sample(shanghai):
    grid, exact, err = _grid_vs_exact(shanghai)
    assert grid.attrs["cell_m"] == 5.0  # a 2.4 km sample: the smallest cells
    assert np.abs(err).max() < GRID_TOLERANCE
    assert np.abs(err).max() < 0.005  # measured: +0.06 to +0.16 % at 5 m
    utm = shanghai.network.crs
    for g, e in zip(grid.to_crs(utm).geometry, exact.to_crs(utm).geometry):
        assert g.symmetric_difference(e).area < 0.02 * e.area


def test_grid_agrees_with_exact_on_helsinki():
    a = analyze(helsinki_osm(), config=AnalysisConfig(categories=("health", "culture", "sports")))
    grid, exact, err = _grid_vs_exact(a)
    assert len(grid) >= 9 and np.abs(err).max() < GRID_TOLERANCE
    for cell_m in (10.0, 15.0):  # coarser cells (as on a city-sized network) stay within the tolerance
        coarse = service_areas(a, cell_m=cell_m)
        assert np.abs(coarse.area_km2.to_numpy() / exact.area_km2.to_numpy() - 1).max() < GRID_TOLERANCE


def test_grid_blocks_do_not_change_the_polygons(shanghai, monkeypatch):
    """The cell-street pairs are made in blocks and scattered with a running minimum: any blocking gives the
    same fields, so the same polygons to the last bit (here: blocks of ~50 candidate cells instead of ~2 million)."""
    import lifecircle.present.isochrones as iso

    monkeypatch.setattr(iso, "_COMPILED_MIN_CELLS", 10**12)  # the numpy path, which makes the pairs in blocks
    default = service_areas(shanghai)
    monkeypatch.setattr(iso, "_PAIR_BLOCK", 50)
    small = service_areas(shanghai)
    assert small.area_km2.tolist() == default.area_km2.tolist()
    assert all(shapely.equals_exact(a, b, tolerance=0) for a, b in zip(small.geometry, default.geometry))



def _plan(a, cats, cell_m=5.0, minutes=(5, 10, 15)):
    """The grid plan of ``cats`` at ``minutes``, and the segments it was made from."""
    from lifecircle.present.isochrones import _grid_plan, _grid_points

    st, fcat, _ = _grid_points(a.times, a.network)
    d = {c: a.times.distances_m[c] for c in cats}
    if max(minutes) > 15:  # the analysis searched to 15 minutes: search again, without a cut-off
        fac = a.times.graph.point_node[a.times.n_residents:]
        d = {c: a.times.graph.distances_from(np.unique(fac[(a.times.facility_category == c) & (fac >= 0)]),
                                             limit_m=np.inf) for c in cats}
    groups = [(d[c], fcat == c, None) for c in cats]
    return _grid_plan(st, a.network, groups, np.array(minutes, dtype=float) * MPM, B, cell_m), st


@pytest.mark.parametrize("cell_m, minutes, cut", [(5.0, (5, 10, 15), True), (20.0, (5, 10, 15), True),
                                                  (5.0, (15,), True), (5.0, (600,), False)])
def test_compiled_layers_are_the_numpy_layers(shanghai, cell_m, minutes, cut):
    """The compiled kernel (numba) writes the same uint16 distances as numpy, cell by cell: streets reached
    whole at some limit, streets cut mid-way, access legs (some of zero length) and their junction copies;
    three limits or one; with streets cut, or (10 hours) none."""
    import lifecircle.present.isochrones as iso

    kernel = iso._compiled_kernel()
    assert kernel is not None  # numba is a dependency: the kernel must load
    plan, st = _plan(shanghai, ("health", "sports"), cell_m, minutes)
    assert all((iv.shape[0] > 0) == cut for iv in plan.ivs)  # streets cut at some limit, or none
    by_numpy = iso._grid_layers(plan, st, compiled=False)
    by_kernel = iso._compiled_layers(kernel, plan, st)
    assert sorted(by_kernel) == sorted(by_numpy) == [0, 1]
    for g in by_numpy:
        assert by_kernel[g].dtype == np.uint16
        np.testing.assert_array_equal(by_kernel[g], by_numpy[g])
        assert 0.01 < (by_numpy[g] < iso._Q_MAX).mean() < 0.9  # the layers hold distances, not just the cap


def _same_polygons(a, b, tolerance_deg=1e-9):
    """The same areas (to 1e-12) and polygons: the same vertices, each within ``tolerance_deg`` (1e-9°: 0.1 mm)."""
    np.testing.assert_allclose(a.area_km2.to_numpy(), b.area_km2.to_numpy(), rtol=1e-12, atol=0)
    assert [shapely.get_num_coordinates(g) for g in a.geometry] == [shapely.get_num_coordinates(g) for g in b.geometry]
    assert all(shapely.equals_exact(x, y, tolerance=tolerance_deg) for x, y in zip(a.geometry, b.geometry))


def test_service_areas_without_numba_are_the_same(shanghai, monkeypatch):
    """Where numba cannot be imported or compile, numpy draws the same layers and PROJ turns the rings into
    lon/lat (the compiled path: polynomials within 0.1 mm of it): the same polygons, to 0.1 mm."""
    import sys

    import lifecircle.present.isochrones as iso

    monkeypatch.setattr(iso, "_COMPILED_MIN_CELLS", 0)
    calls, original = [], iso._group_layers_maker
    monkeypatch.setattr(iso, "_group_layers_maker", lambda *a: calls.append(1) or original(*a))
    projected, fit = [], iso._compiled_lonlat
    monkeypatch.setattr(iso, "_compiled_lonlat", lambda *a: projected.append(fit(*a)) or projected[-1])
    import lifecircle.present.vectors as vectors

    vectors._WKB_AHEAD.clear()
    with_kernel = service_areas(shanghai)
    assert calls == [1]
    assert len(projected) == 1 and isinstance(projected[0], iso._PolyLonLat)  # the rings went by the polynomials
    assert not vectors._WKB_AHEAD  # made only for areas that are to be written
    # the pipeline's (to be written): each polygon's WKB made with it, byte for byte shapely's
    written = iso._service_areas_begun(shanghai, wkb=True)()
    assert calls == [1, 1]  # by the kernel too
    calls.pop()
    _same_polygons(written, with_kernel)
    drawn = [g for g in written.geometry if not g.is_empty]
    assert drawn and [bytes(w) for w in vectors._take_wkb(drawn)] == [shapely.to_wkb(g) for g in drawn]
    import numba

    monkeypatch.setitem(sys.modules, "numba", None)  # `import numba` raises ImportError
    monkeypatch.delitem(sys.modules, "lifecircle.present._grid_kernel", raising=False)
    assert iso._compiled_kernel() is None
    without = service_areas(shanghai)
    assert calls == [1]
    _same_polygons(without, with_kernel)
    # numba there, but it cannot compile here (no writable cache): numpy again
    monkeypatch.setitem(sys.modules, "numba", numba)
    import lifecircle.present._grid_kernel as kernel

    def cannot_compile():
        raise RuntimeError("cannot cache function 'group_layers': no locator available")

    monkeypatch.setattr(kernel, "warm_up", cannot_compile)
    assert iso._compiled_kernel() is None
    _same_polygons(service_areas(shanghai), with_kernel)
    assert calls == [1]


def test_compiled_wkb_is_shapelys():
    """The compiled WKB of a contour's rings (MultiPolygons with holes, rings of a few to thousands of points) is
    byte for byte ``shapely.to_wkb``'s, and as long as ``wkb_size`` says."""
    pytest.importorskip("numba")
    from lifecircle.present._grid_kernel import rings_wkb, wkb_size

    rng = np.random.default_rng(7)
    parts = []
    for k in range(40):
        c = rng.uniform(-1e4, 1e4, 2)
        shell = shapely.Point(*c).buffer(rng.uniform(50, 400), quad_segs=int(rng.integers(1, 300)))
        holes = [shapely.Point(*(c + rng.uniform(-20, 20, 2))).buffer(rng.uniform(2, 10)) for _ in range(k % 3)]
        parts.append(shell.difference(shapely.union_all(holes)) if holes else shell)
    for polys in (parts[:1], parts[:7], parts):
        multi = shapely.MultiPolygon(polys)
        _, pts, (off, outer, _) = shapely.to_ragged_array([multi])
        pts = np.ascontiguousarray(pts)
        out = np.zeros(wkb_size(len(pts), len(off) - 1, len(outer) - 1), dtype=np.uint8)
        assert rings_wkb(pts.reshape(-1).view(np.uint8), off.astype(np.int64), outer.astype(np.int64), out) == out.size
        assert out.tobytes() == shapely.to_wkb(multi)


@pytest.mark.filterwarnings("ignore:Non-conformant content")  # (GDAL reading the time-zone column back)
def test_service_areas_written_with_their_wkb_made_ahead_are_the_same_file(tmp_path):
    """A GeoPackage written from WKB made ahead (a city's service areas) holds what the plain write makes: the same
    fields, types, values and geometries (an empty row too); each WKB is taken once, and forgotten when its
    geometry is freed."""
    import gc

    import geopandas as gpd
    import pyogrio

    import pandas as pd
    import shapely.affinity

    import lifecircle.present.vectors as vectors
    from lifecircle.present.isochrones import write_isochrones
    from lifecircle.present.vectors import wkb_made_ahead, write_vector

    vectors._WKB_AHEAD.clear()
    polys = [shapely.MultiPolygon([shapely.Point(121.4 + 0.01 * i, 31.2).buffer(0.004 * (i + 1), quad_segs=64)
                                   .difference(shapely.Point(121.4 + 0.01 * i, 31.2).buffer(0.001))]) for i in range(3)]
    gdf = gpd.GeoDataFrame({"category": ["health", "health", "sports", "sports"], "minutes": [5.0, 10.0, 5.0, np.inf],
                            "area_km2": [0.1, 0.2, 0.3, 0.0]}, geometry=polys + [shapely.Polygon()], crs=4326)
    plain = write_vector(gdf, tmp_path / "plain.gpkg", layer="isochrones")[0]
    for g in polys:
        wkb_made_ahead(g, np.frombuffer(shapely.to_wkb(g), dtype=np.uint8).copy())
    ahead = write_vector(gdf, tmp_path / "ahead.gpkg", layer="isochrones")[0]
    assert not vectors._WKB_AHEAD  # taken
    a, b = pyogrio.read_info(ahead), pyogrio.read_info(plain)
    assert (a["fields"].tolist(), a["dtypes"].tolist(), a["geometry_type"], a["crs"], a["features"]) == \
        (b["fields"].tolist(), b["dtypes"].tolist(), b["geometry_type"], b["crs"], b["features"])
    A, B = pyogrio.read_dataframe(ahead), pyogrio.read_dataframe(plain)
    pd.testing.assert_frame_equal(A.drop(columns="geometry"), B.drop(columns="geometry"))
    assert A.minutes.isna().tolist() == [False, False, False, True]  # inf as NULL, as before
    assert [shapely.to_wkb(g) for g in A.geometry] == [shapely.to_wkb(g) for g in B.geometry]
    assert A.geometry.iloc[3].is_empty and A.geometry.iloc[0].equals_exact(polys[0], 0)
    # the buffers given are what is written (here another polygon's, to tell them apart from shapely's)
    moved = [shapely.affinity.translate(g, 0.5, 0.0) for g in polys]
    for g, m in zip(polys, moved):
        wkb_made_ahead(g, np.frombuffer(shapely.to_wkb(m), dtype=np.uint8).copy())
    told = pyogrio.read_dataframe(write_vector(gdf, tmp_path / "told.gpkg", layer="isochrones")[0])
    assert [shapely.to_wkb(g) for g in told.geometry[:3]] == [shapely.to_wkb(m) for m in moved]
    # a table geopandas writes otherwise (a named index, a column of nothing but None, a time zone): as before
    for odd in (gdf.rename_axis("k"), gdf.assign(note=None),
                gdf.assign(at=pd.Timestamp("2026-12-01 08:00", tz="Asia/Shanghai"))):
        for g, m in zip(polys, moved):
            wkb_made_ahead(g, np.frombuffer(shapely.to_wkb(m), dtype=np.uint8).copy())
        back = pyogrio.read_dataframe(write_vector(odd, tmp_path / "odd.gpkg", layer="isochrones")[0])
        assert [shapely.to_wkb(g) for g in back.geometry[:3]] == [shapely.to_wkb(g) for g in polys]
        assert list(back.columns) == list(gpd.read_file(plain_of(odd, tmp_path)).columns)
    # the per-category layers make their own WKB, and drop what was made ahead
    for g in polys:
        wkb_made_ahead(g, shapely.to_wkb(g))
    write_isochrones(gdf, tmp_path / "layers.gpkg")
    assert not vectors._WKB_AHEAD
    extra = shapely.MultiPolygon([shapely.box(0, 0, 1, 1)])
    wkb_made_ahead(extra, shapely.to_wkb(extra))
    assert len(vectors._WKB_AHEAD) == 1
    del extra
    gc.collect()
    assert not vectors._WKB_AHEAD  # its geometry is gone: so is its WKB


def plain_of(gdf, folder):
    """``gdf`` written by write_vector with no WKB made ahead (its path)."""
    from lifecircle.present.vectors import write_vector

    return write_vector(gdf, folder / "plain_of.gpkg", layer="isochrones")[0]


@pytest.mark.parametrize("two_contours", [True, False])
def test_grid_drawn_on_two_threads_is_drawn_as_on_one(shanghai, monkeypatch, two_contours):
    """A city-sized grid measures its categories' reach and makes its pairs on two threads (numpy), and draws two
    contours at a time, each made a polygon on its thread (a district), or one at a time, each made a polygon on a
    second thread while the next is drawn (a city): the same polygons as a small grid's, drawn on one thread."""
    import lifecircle.present.isochrones as iso

    if not two_contours:
        monkeypatch.setattr(iso, "_TWO_CONTOURS_MAX_CELLS", 0)
    monkeypatch.setattr(iso, "_COMPILED_MIN_CELLS", 10**12)
    monkeypatch.setattr(iso, "_PAIR_BLOCK", 5_000)  # many blocks: the two threads run ahead of their use
    monkeypatch.setattr(iso, "_THREADS_MIN_CELLS", 0)
    monkeypatch.setattr(iso, "_THREADS_MIN_SEGMENTS", 0)  # each category's reach on a thread
    threads = service_areas(shanghai)
    monkeypatch.setattr(iso, "_THREADS_MIN_CELLS", 10**12)
    monkeypatch.setattr(iso, "_THREADS_MIN_SEGMENTS", 10**12)
    in_turn = service_areas(shanghai)
    assert threads.area_km2.tolist() == in_turn.area_km2.tolist()
    assert [shapely.to_wkb(g) for g in threads.geometry] == [shapely.to_wkb(g) for g in in_turn.geometry]


def test_the_compiled_kernel_is_loaded_ahead_only_for_a_city_sized_grid(toy_net):
    """Above 2M grid cells (a 56 km square at 20 m: a million-node city) numba is loaded on a thread while the
    gap areas are drawn; for a town it is not loaded at all."""
    from lifecircle.present.isochrones import warm_up_compiled

    assert warm_up_compiled(toy_net) is None
    lo, la = lonlat([0.0, 30_000.0, 30_000.0], [0.0, 0.0, 30_000.0])
    city = WalkNetwork.from_lonlat(lo, la, [0, 1], [1, 2])  # 30 × 30 km: 20 m cells, 2.25M of them
    thread = warm_up_compiled(city)
    assert thread is not None
    thread.join(60)
    assert not thread.is_alive()


def test_rings_go_to_lon_lat_within_a_millimetre():
    """The rings' UTM -> lon/lat projection uses PROJ's faster transverse Mercator only where it agrees with
    the exact one to 1 mm (checked at the box's corners, edge midpoints and centre): inside the zone, not 10°
    beyond it."""
    from pyproj import Transformer

    from lifecircle.present.isochrones import _to_lonlat

    exact, to_utm = Transformer.from_crs(32651, 4326, always_xy=True), Transformer.from_crs(4326, 32651, always_xy=True)
    x, y = to_utm.transform(np.linspace(120.0, 126.0, 200), np.linspace(20.0, 45.0, 200))  # zone 51: 120-126°E
    fast = _to_lonlat("EPSG:32651", (x.min(), x.max()), (y.min(), y.max()))
    assert "approx" in fast.__self__.definition
    (lon, lat), (lon0, lat0) = fast(x, y), exact.transform(x, y)
    assert np.hypot((lon - lon0) * np.cos(np.radians(lat0)), lat - lat0).max() * 111_320 < 1e-3
    far = to_utm.transform([133.0, 134.0], [30.0, 31.0])
    assert "approx" not in _to_lonlat("EPSG:32651", (min(far[0]), max(far[0])), (min(far[1]), max(far[1]))).__self__.definition
    assert "approx" not in _to_lonlat("EPSG:4547", (3.4e5, 3.5e5), (3.4e6, 3.5e6)).__self__.definition  # not UTM


def test_compiled_lon_lat_is_proj_within_a_tenth_of_a_millimetre():
    """A city's rings go to lon/lat by polynomials fitted to PROJ over the grid's box: within 0.1 mm of PROJ at
    20,000 random points of a 56 km box (not only where they were checked), the rings' area as numpy measures
    it; no polynomial where none is close enough (a box of 2,000 km)."""
    from pyproj import Transformer

    import lifecircle.present.isochrones as iso
    from lifecircle.present._grid_kernel import rings_lonlat

    exact = Transformer.from_crs(32651, 4326, always_xy=True)
    xs, ys = (322_000.0, 378_000.0), (3_425_000.0, 3_481_000.0)  # Shanghai, 56 km
    poly = iso._lonlat_poly("EPSG:32651", xs, ys, rings_lonlat)
    assert poly is not None and poly.degree == 4 and poly.err_m < 1e-4
    rng = np.random.default_rng(1)
    x, y = rng.uniform(*xs, 20_000), rng.uniform(*ys, 20_000)
    (lon, lat), (lon0, lat0) = poly(x, y), exact.transform(x, y)
    assert np.hypot((lon - lon0) * np.cos(np.radians(lat0)), lat - lat0).max() * 111_320 < 1e-4
    # rings: a 100 m square with a 20 m square hole, and a 10 m triangle, at coordinates that are not whole metres
    # (measured after the shift, their area would lose ~1e-9 of itself); area before the shift, then lon/lat
    ring = lambda pts: np.array(pts + pts[:1], dtype=float) * 1.0123 + 0.3217
    points = np.concatenate([ring([(0, 0), (100, 0), (100, 100), (0, 100)]), ring([(40, 40), (40, 60), (60, 60), (60, 40)]),
                             ring([(200, 0), (210, 0), (200, 10)])])
    offsets, outer = np.array([0, 5, 10, 14], dtype=np.uint32), np.array([0, 2, 3], dtype=np.uint32)
    area = iso._rings_area(points, offsets, outer)
    assert area == pytest.approx((100 * 100 - 20 * 20 + 50) * 1.0123 ** 2, rel=1e-12)
    shifted = points + (340_000.0, 3_450_000.0)
    assert poly.rings(points, offsets, outer, 340_000.0, 3_450_000.0) == pytest.approx(area, rel=1e-12)
    lon0, lat0 = exact.transform(shifted[:, 0], shifted[:, 1])
    np.testing.assert_allclose(points, np.column_stack([lon0, lat0]), rtol=0, atol=1e-9)
    assert iso._lonlat_poly("EPSG:32651", (-500_000.0, 1_500_000.0), (2_000_000.0, 4_000_000.0), rings_lonlat) is None


def test_grid_polygons_made_after_the_contours_are_the_same(shanghai, monkeypatch):
    """A city-sized grid keeps its rings as arrays until the last contour, then makes them polygons: the same
    polygons and areas to the last bit as made beside the contours."""
    import lifecircle.present.isochrones as iso

    beside = service_areas(shanghai)
    monkeypatch.setattr(iso, "_DEFER_POLYGONS_CELLS", 0)
    monkeypatch.setattr(iso, "_TWO_CONTOURS_MAX_CELLS", 0)  # as on a city's grid: one contour at a time
    shifted, original = [], iso._rings_shifted
    monkeypatch.setattr(iso, "_rings_shifted", lambda *a, **k: shifted.append(1) or original(*a, **k))
    monkeypatch.setattr(iso, "_rings_polygon", None)  # not called when the polygons are made after the contours
    after = service_areas(shanghai)
    assert len(shifted) == len(after) == 6  # health and sports at 5, 10, 15 min, each shifted on its own
    assert after.area_km2.tolist() == beside.area_km2.tolist()
    assert [shapely.to_wkb(g) for g in after.geometry] == [shapely.to_wkb(g) for g in beside.geometry]
    assert 0 < after.area_km2.iloc[0] < after.area_km2.iloc[2]  # health: 5 min inside 15 min, not empty


def test_grid_thresholds_nest_and_areas_match_the_polygons(shanghai):
    """5-min ⊆ 10-min ⊆ 15-min area of each category (the fields are nested by construction: a running minimum
    over the limits), and area_km2 (summed from the contour rings) is the polygon's area in UTM."""
    sa = service_areas(shanghai)
    utm = sa.to_crs(shanghai.network.crs)
    assert utm.area.to_numpy() / 1e6 == pytest.approx(sa.area_km2.to_numpy(), rel=1e-6)
    for _, grp in utm.groupby("category"):
        polys = grp.sort_values("minutes").geometry.to_numpy()
        assert len(polys) == 3
        for small, big in zip(polys[:-1], polys[1:]):
            assert shapely.difference(small, big).area < 1e-6 * small.area
            assert big.area > small.area


def test_closed_form_reach_agrees_with_the_intervals(shanghai):
    """Each segment's first limit reached whole (closed form) against :func:`_grid_reach`'s intervals, limit by limit."""
    from lifecircle.present.isochrones import _grid_points, _grid_reach, _reach_layers

    a = shanghai
    st, fcat, _ = _grid_points(a.times, a.network)
    limits = np.array([5.0, 10.0, 15.0]) * MPM
    for cat in ("health", "sports"):
        d, source = a.times.distances_m[cat], fcat == cat
        r = _reach_layers(st, a.network, d, limits, source)
        for i, lim in enumerate(limits):
            k, whole, lo1, hi1, lo2, hi2 = _grid_reach(st, a.network, d, lim, source)
            assert set(k) <= set(r.k)
            got_whole = set(r.k[r.t_whole <= i])
            assert got_whole == set(k[whole])
            cut_here = {int(r.k[c]): r.iv[j, i] for j, c in enumerate(r.cut) if not np.isinf(r.iv[j, i, 0])
                        or not np.isinf(r.iv[j, i, 2])}
            assert set(cut_here) == set(k[~whole])
            for kk, a1, b1, a2, b2 in zip(k[~whole], lo1[~whole], hi1[~whole], lo2[~whole], hi2[~whole]):
                assert cut_here[int(kk)] == pytest.approx([a1, b1, a2, b2], abs=1e-3)


# ---------------------------------------------------------------- GeoPackage


def test_geopackage_round_trip(toy_analysis, tmp_path):
    a = toy_analysis
    sa = service_areas(a, minutes=(5, 15))
    path = tmp_path / "isochrones.gpkg"
    path.write_text("old")  # replaced, not appended to
    names = write_isochrones(sa, path)
    assert names == [f"{c}_{m}min" for c in ("health", "culture", "sports") for m in (5, 15)]
    assert sorted(pyogrio.list_layers(path)[:, 0]) == sorted(names)
    back = gpd.read_file(path, layer="culture_15min")
    assert back.crs.to_epsg() == 4326
    assert back.area_km2[0] == pytest.approx(float(sa.area_km2[3]), rel=1e-12)
    # the stored polygon still measures area_km2 (within the float precision of the file)
    assert back.to_crs(32651).area[0] / 1e6 == pytest.approx(back.area_km2[0], rel=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == ["isochrones.gpkg"]  # no temp file left

    fsa = facility_service_areas(a, minutes=15)
    fnames = write_isochrones(fsa, tmp_path / "fac.gpkg")
    assert fnames == ["facilities_health_15min", "facilities_sports_15min", "facilities_culture_15min"]
    sports = gpd.read_file(tmp_path / "fac.gpkg", layer="facilities_sports_15min")
    assert len(sports) == 2 and set(sports.columns) >= {"facility_index", "name", "area_km2"}

    iso = point_isochrones(a.network, 121.40, 31.20, minutes=(7.5,))
    assert write_isochrones(iso, tmp_path / "p.gpkg") == ["isochrone_7_5min"]


# ---------------------------------------------------------------- bad input


def test_bad_input_gives_clear_errors(toy_net, toy_analysis, tmp_path):
    with pytest.raises(InputDataError, match="minutes must be one or more positive"):
        point_isochrones(toy_net, 121.40, 31.20, minutes=[])
    with pytest.raises(InputDataError, match="minutes must be one or more positive"):
        service_areas(toy_analysis, minutes=(-5, 10))
    with pytest.raises(InputDataError, match="buffer_m must be a positive number of metres.*buffer_m=25"):
        point_isochrones(toy_net, 121.40, 31.20, buffer_m=-1)
    with pytest.raises(InputDataError, match="unknown method 'hull'"):
        service_areas(toy_analysis, method="hull")
    with pytest.raises(InputDataError, match="cell_m must be a positive number of metres no larger than buffer_m"):
        service_areas(toy_analysis, cell_m=30)
    with pytest.raises(InputDataError, match="cell_m must be"):
        point_isochrones(toy_net, 121.40, 31.20, cell_m=0)
    with pytest.raises(InputDataError, match="no walking times for categories \\['elderly_care'\\]"):
        service_areas(toy_analysis, categories=["elderly_care"])
    lo, la = lonlat(400, 3400)  # 3 km north of the northern street
    with pytest.raises(InputDataError, match=r"3,000 m from the nearest walkable street.*GCJ-02"):
        point_isochrones(toy_net, float(lo), float(la))
    with pytest.raises(CRSError, match="lon first"):
        point_isochrones(toy_net, 31.20, 121.40)
    with pytest.raises(InputDataError, match="pass network="):
        service_areas(toy_analysis.times)
    with pytest.raises(InputDataError, match="pass facilities="):
        facility_service_areas(toy_analysis.times, toy_analysis.network)
    with pytest.raises(EmptyResultError):
        write_isochrones(service_areas(toy_analysis).iloc[:0], tmp_path / "x.gpkg")
    with pytest.raises(LifecircleError, match="none of the columns"):
        write_isochrones(service_areas(toy_analysis), tmp_path / "x.gpkg", by=("district",))
    assert not (tmp_path / "x.gpkg").exists()


def test_resident_snap_points_and_the_buffer_allowance(toy_net):
    """A snap point on a reached street is inside until it is buffer_m past the cut, even when the resident's
    walking time (which adds the access leg) is over the limit."""
    from lifecircle.read.facilities import facilities_from_osm

    fac = facilities_from_osm(toy_town_osm())
    lo, la = lonlat([700, 620], [10, 390])
    res = gpd.GeoDataFrame({"population": [1, 1]}, geometry=gpd.points_from_xy(lo, la), crs=4326)
    wt = walking_times(toy_net, res, fac, config=AnalysisConfig(categories=("health",)))
    # 1020 m and 940 m on foot (see test_walking_times); their snap points (700, 0) and (620, 400) are
    # 1010 m and 930 m from the health centre
    np.testing.assert_allclose(wt.minutes["minutes_to_health"], np.array([1020, 940]) / MPM, rtol=1e-4)
    sa = service_areas(wt, toy_net, minutes=(880 / MPM, 14, 15), categories="health", method="exact")
    p880, p933, p1000 = sa.to_crs(32651).geometry.apply(lambda g: shapely.transform(g, lambda c: c - [X0, Y0]))
    # 880 m: x = 600 is reached up to y = 370, 36 m from (620, 400); y = 0 east of the river not at all
    assert inside(p880, (700, 0), (620, 400)) == [False, False]
    # 933 m: (620, 400) at 930 m is reached, though its resident (940 m = 14.1 min) is not covered at 14 min;
    # on y = 0 the walk stops at x = 623, 52 m before (700, 0) (farther than the buffer)
    assert inside(p933, (700, 0), (620, 400)) == [False, True]
    # 1000 m: y = 0 is reached up to x = 690, and (700, 0) is 10 m past the cut, inside the 25 m buffer,
    # while its resident is 15.3 min away
    assert inside(p1000, (700, 0), (620, 400), (716, 0)) == [True, True, False]


def test_tiled_run_says_it_has_no_access_graph():
    """A tiled run (lifecircle.scale.partition) keeps no single access graph: a clear error, not an AttributeError."""
    import dataclasses

    a = analyze(toy_town_osm())
    tiled = dataclasses.replace(a.times, graph=None)
    for fn in (service_areas, facility_service_areas):
        with pytest.raises(InputDataError, match="tiled run"):
            fn(tiled, a.network, facilities=a.facilities) if fn is facility_service_areas else fn(tiled, a.network)


def test_areas_after_the_graph_is_released_say_so(tmp_path):
    """analyze's default run releases the access graph once the areas are drawn; asking the same analysis for
    more areas then says why it cannot (not 'a tiled run'), and the areas drawn before are the same."""
    from lifecircle import analyze
    from lifecircle.datasets import toy_town_osm
    from lifecircle.errors import InputDataError
    from lifecircle.present.isochrones import service_areas

    a = analyze(toy_town_osm())
    want = service_areas(a)
    a.areas(release=True)
    assert a.times.graph is None
    assert a.isochrones["area_km2"].tolist() == want["area_km2"].tolist()
    with pytest.raises(InputDataError, match="released by areas"):
        a.write(tmp_path / "out", facility_isochrones=True)
    a.isochrones = None
    with pytest.raises(InputDataError, match="released by areas"):
        a.areas()
