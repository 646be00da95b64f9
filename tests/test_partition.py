"""Tiled walking times equal the single run: hand-built edge cases, the Shanghai sample, a 3×3 city on Dask."""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from conftest import X0, lonlat
from lifecircle import AnalysisConfig, InputDataError, WalkNetwork, walking_times
from lifecircle.measure.coverage import coverage_table
from lifecircle.scale.partition import (
    _walking_times_tiled,
    clip_network,
    default_halo_m,
    plan_tiles,
    replicate_network,
    replicate_points,
    walking_times_tiled,
)
from lifecircle.measure.snapping import Snap, snap_points

MPM = 4000 / 60  # metres per minute at 4 km/h

# stand-ins so that all four categories have real OSM points: the sample has no elderly-care or
# culture tags, so schools/shops and parks play those roles (only equality matters here)
SAMPLE_CATEGORIES = {"health": "health", "sport": "sports", "park": "culture", "education": "elderly_care",
                     "daily_needs": "elderly_care"}


def points(xy_m, **cols):
    lo, la = lonlat([p[0] for p in xy_m], [p[1] for p in xy_m])
    return gpd.GeoDataFrame(cols, geometry=gpd.points_from_xy(lo, la), crs=4326)


def random_residents(net: WalkNetwork, n: int, seed: int, margin_deg: float = 0.003):
    """Residents spread over the network's bbox and a margin (some are too far to snap)."""
    rng = np.random.default_rng(seed)
    lo = rng.uniform(net.lon.min() - margin_deg, net.lon.max() + margin_deg, n)
    la = rng.uniform(net.lat.min() - margin_deg, net.lat.max() + margin_deg, n)
    return gpd.GeoDataFrame({"population": rng.integers(1, 300, n).astype(float)},
                            geometry=gpd.points_from_xy(lo, la), crs=4326)


def split_snap(snap: Snap, k: int) -> tuple[Snap, Snap]:
    """The first ``k`` points' snap (residents) and the rest (facilities)."""
    fields = (snap.edge, snap.t, snap.dist_m, snap.x, snap.y)
    return Snap(*(a[:k] for a in fields)), Snap(*(a[k:] for a in fields))


def assert_same_times(single, tiled, cfg):
    a, b = single.minutes.to_numpy(), tiled.minutes.to_numpy()
    assert list(single.minutes.columns) == list(tiled.minutes.columns)
    np.testing.assert_array_equal(np.isinf(a), np.isinf(b))
    finite = np.isfinite(a)
    np.testing.assert_allclose(b[finite], a[finite], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(single.resident_snap.edge, tiled.resident_snap.edge)


def assert_same_coverage(residents, single, tiled, cfg):
    tables = [coverage_table(pd.concat([residents[["population"]], wt.minutes], axis=1),
                             categories=cfg.categories, minutes=cfg.minutes, target=cfg.target)
              for wt in (single, tiled)]
    pd.testing.assert_frame_equal(tables[0], tables[1], check_exact=True)


@pytest.fixture(scope="module")
def client():
    from lifecircle.scale.batch import dask_client

    pytest.importorskip("distributed")
    with dask_client(workers=2) as c:  # a real LocalCluster: 2 worker processes on 127.0.0.1
        yield c


def _first_core_x(tile_m: float) -> float:
    """Local x (conftest grid) of the first tile boundary east of the origin: tiles sit on UTM multiples."""
    return math.ceil(X0 / tile_m) * tile_m - X0


def test_resident_on_a_long_edge_whose_ends_lie_outside_the_halo():
    # one straight 10 km street: its ends are 5 km away, far outside any tile's halo box, yet it
    # is the nearest edge of the resident and of the facility
    lo, la = lonlat([-5000, 5000], [0, 0])
    net = WalkNetwork.from_lonlat(lo, la, [0], [1])
    res = points([(50, 30)], population=[1.0])
    fac = points([(450, 0)], category=["health"])
    cfg = AnalysisConfig(minutes=(15,), max_minutes=15, max_snap_m=100, categories=("health",))
    tiled = walking_times_tiled(net, res, fac, config=cfg, tile_m=200)
    # by hand: 30 m access + 400 m along the street + 0 m access
    assert tiled.minutes["minutes_to_health"][0] == pytest.approx(430 / MPM, abs=1e-6)
    assert_same_times(walking_times(net, res, fac, config=cfg), tiled, cfg)
    (tile,) = plan_tiles(net, *split_snap(snap_points(net, *lonlat([50, 450], [30, 0]), max_snap_m=100), 1),
                         tile_m=200, halo_m=1100)
    assert tile.edges.tolist() == [0]  # kept because it is snapped to, not because its ends are inside


def test_halo_boundary_and_cutoff():
    # a street of 50 m segments along y = 0; D = 1000 m (15 min at 4 km/h); halo = D exactly
    tile_m, d_m = 100.0, 1000.0
    cx = _first_core_x(tile_m)
    xs = cx - 2025 + np.arange(100) * 50.0  # nodes at cx + 25 + 50 k: none on a box boundary
    lo, la = lonlat(xs, np.zeros_like(xs))
    net = WalkNetwork.from_lonlat(lo, la, np.arange(len(xs) - 1), np.arange(1, len(xs)))
    # resident at the east edge of its tile's core [cx, cx + 100)
    res = points([(cx + 99, 0)], population=[1.0])
    fac = points([(cx + 100 + d_m - 5, 0),    # inside the halo box, 996 m away: counts
                  (cx + 100 + d_m + 5, 0),    # just outside the halo box (1006 m): must not matter
                  (cx + 99 - 1003, 0)],        # west, inside the box but 1003 m > D: cut off
                 category=["health", "sports", "culture"])
    cfg = AnalysisConfig(minutes=(15,), max_minutes=15, max_snap_m=50, categories=("health", "sports", "culture"))
    assert cfg.max_dist_m == pytest.approx(d_m)
    tiled = walking_times_tiled(net, res, fac, config=cfg, tile_m=tile_m, halo_m=d_m)
    m = tiled.minutes.iloc[0]
    assert m["minutes_to_health"] == pytest.approx(996 / MPM, abs=1e-6)
    assert np.isinf(m["minutes_to_sports"]) and np.isinf(m["minutes_to_culture"])
    assert_same_times(walking_times(net, res, fac, config=cfg), tiled, cfg)
    snap = snap_points(net, np.r_[res.geometry.x, fac.geometry.x], np.r_[res.geometry.y, fac.geometry.y])
    (tile,) = plan_tiles(net, *split_snap(snap, 1), tile_m=tile_m, halo_m=d_m)
    assert tile.core[0] == pytest.approx(X0 + cx)
    assert tile.facilities.tolist() == [0, 2]  # the one just outside the halo is not sent to the tile
    sub, _ = clip_network(net, tile.edges)
    # 41 edges between the nodes cx - 975 .. cx + 1075 inside the box [cx - 1000, cx + 1100], plus the
    # edge [cx + 1075, cx + 1125] that facility 0 snaps to; nothing else of the 99 edges
    assert sub.n_edges == 42


def test_halo_shorter_than_the_cutoff_is_refused_and_would_be_wrong(shanghai_network, shanghai_facilities):
    cfg = AnalysisConfig(minutes=(5, 10), max_minutes=10, max_snap_m=150)
    fac = shanghai_facilities.assign(category=shanghai_facilities.category.map(SAMPLE_CATEGORIES))
    res = random_residents(shanghai_network, 1500, seed=3)
    with pytest.raises(InputDataError, match="halo_m=300 is shorter than the search cut-off"):
        walking_times_tiled(shanghai_network, res, fac, config=cfg, tile_m=300, halo_m=300)
    single = walking_times(shanghai_network, res, fac, config=cfg)
    short = _walking_times_tiled(shanghai_network, res, fac, cfg=cfg, tile_m=300, halo_m=cfg.max_dist_m / 3,
                                 client=None, scratch_dir=None, progress=None)
    a, b = single.minutes.to_numpy(), short.minutes.to_numpy()
    wrong = ~(np.isclose(a, b, rtol=0, atol=1e-9) | (np.isinf(a) & np.isinf(b)))
    assert wrong.sum() > 50  # too small a halo loses facilities: the equality tests below can fail
    assert (b[wrong] > a[wrong]).all()  # ...and only ever makes walks longer (a subgraph)


def test_tiles_equal_single_run_on_shanghai_sample(shanghai_network, shanghai_facilities, tmp_path):
    net = shanghai_network
    fac = shanghai_facilities.assign(category=shanghai_facilities.category.map(SAMPLE_CATEGORIES))
    res = random_residents(net, 4000, seed=1)
    # D = 667 m, halo = D exactly (the proven minimum), 400 m tiles: each halo box is ~1.7 km wide,
    # smaller than the 2.4 km sample, so the halo really limits what a tile sees
    cfg = AnalysisConfig(minutes=(5, 10), max_minutes=10, max_snap_m=150)
    seen = []
    tiled = walking_times_tiled(net, res, fac, config=cfg, tile_m=400, halo_m=cfg.max_dist_m,
                                scratch_dir=tmp_path, progress=lambda i, n: seen.append((i, n)))
    single = walking_times(net, res, fac, config=cfg)
    assert len(seen) >= 30 and seen[-1][0] == seen[-1][1]
    assert_same_times(single, tiled, cfg)
    assert_same_coverage(res, single, tiled, cfg)
    finite = np.isfinite(single.minutes.to_numpy())
    assert 0.2 < finite.mean() < 0.95  # a mix of reachable and cut-off residents
    assert not single.resident_snap.snapped.all()  # and some too far from any street
    assert list(tmp_path.iterdir()) == []  # tile files are removed afterwards


def test_tiles_on_dask_equal_single_run_on_3x3_city(shanghai_network, shanghai_facilities, client):
    city = replicate_network(shanghai_network, nx=3, ny=3)
    fac = replicate_points(shanghai_facilities.assign(
        category=shanghai_facilities.category.map(SAMPLE_CATEGORIES)), shanghai_network, nx=3, ny=3)
    assert city.n_nodes == 9 * shanghai_network.n_nodes
    assert city.largest_component_share() > 0.85  # the copies are joined at the seams into one city
    res = random_residents(city, 20000, seed=2)
    cfg = AnalysisConfig(minutes=(5, 10, 15), max_minutes=15, max_snap_m=200)
    tile_m = 1200.0
    tiled = walking_times_tiled(city, res, fac, config=cfg, tile_m=tile_m, client=client)
    single = walking_times(city, res, fac, config=cfg)
    assert_same_times(single, tiled, cfg)
    assert_same_coverage(res, single, tiled, cfg)
    # the tiles really are parts of the city: each halo box (1.2 + 2 * 1.2 km) is half the 7.2 km city
    snap = single.resident_snap
    tiles = plan_tiles(city, snap, single.facility_snap, tile_m=tile_m, halo_m=default_halo_m(cfg))
    assert len(tiles) >= 36
    assert max(len(t.edges) for t in tiles) < 0.5 * city.n_edges
    finite = np.isfinite(single.minutes.to_numpy())
    assert 0.2 < finite.mean() < 0.95
