"""Points exactly on a unit border belong to exactly one unit (the first in file order)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from lifecircle.read.census import _assign, residents_from_census
from lifecircle.read.units import assign_units, unit_positions


def _squares():
    """Two unit squares side by side: A = [0,1]x[0,1], B = [1,2]x[0,1] (shared edge x = 1)."""
    return gpd.GeoDataFrame({"unit": ["A", "B"]}, geometry=[shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)],
                            crs=4326)


def test_shared_edge_and_vertex_by_hand():
    u = _squares()
    xy = [(1.0, 0.5),   # on the shared edge: A (first in file order)
          (1.0, 1.0),   # shared vertex (top)
          (1.0, 0.0),   # shared vertex (bottom)
          (2.0, 0.5),   # B's outer edge: B
          (0.0, 0.0),   # A's outer corner
          (1.5, 1.0),   # B's top edge
          (0.5, 0.5), (1.5, 0.5), (2.5, 0.5)]
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(*zip(*xy)), crs=4326)
    assert assign_units(pts, u).tolist() == ["A", "A", "A", "B", "A", "B", "A", "B", None]
    # file order decides, not the name
    assert assign_units(pts, u.iloc[::-1].reset_index(drop=True)).tolist() == [
        "B", "B", "B", "B", "A", "B", "A", "B", None]
    # the census spreader's assignment follows the same rule
    tree = shapely.STRtree(u.geometry.to_numpy())
    x, y = np.array(xy).T
    assert _assign(tree, x, y, 2).tolist() == [0, 0, 0, 1, 0, 1, 0, 1, -1]


def test_four_squares_share_a_vertex():
    boxes = [shapely.box(i, j, i + 1, j + 1) for j in (0, 1) for i in (0, 1)]  # SW, SE, NW, NE
    assert unit_positions(shapely.points([1.0], [1.0]), boxes).tolist() == [0]
    assert unit_positions(shapely.points([1.0], [1.0]), boxes[::-1]).tolist() == [0]  # NE first now
    assert unit_positions(shapely.points([1.5, 1.0], [1.0, 1.5]), boxes).tolist() == [1, 2]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.integers(0, 12)), min_size=1, max_size=50))
def test_every_point_of_the_union_has_exactly_one_unit(cells):
    """A 3 x 3 grid of squares (file order shuffled by a fixed permutation); points on a quarter-unit lattice,
    many exactly on borders and vertices: each gets the first unit (in file order) that covers it."""
    order = [4, 0, 8, 2, 6, 1, 7, 3, 5]
    boxes = [shapely.box(k % 3, k // 3, k % 3 + 1, k // 3 + 1) for k in order]
    x = np.array([c[0] for c in cells]) * 0.25
    y = np.array([c[1] for c in cells]) * 0.25
    pts = shapely.points(x, y)
    got = unit_positions(pts, boxes)
    expected = [next((i for i, b in enumerate(boxes) if b.covers(p)), -1) for p in pts]
    assert got.tolist() == expected
    inside = (x <= 3) & (y <= 3)
    assert (got[inside] >= 0).all() and (got[~inside] == -1).all()


def test_census_totals_with_streets_on_the_border():
    """Streets along and across a shared border: every street midpoint is spread once, totals kept."""
    from lifecircle import WalkNetwork

    # two districts 1 km wide; a street runs along the shared border lon = 121.41 and others cross it
    units = gpd.GeoDataFrame({"unit": ["甲区", "乙区"]}, crs=4326, geometry=[
        shapely.box(121.40, 31.20, 121.41, 31.21), shapely.box(121.41, 31.20, 121.42, 31.21)])
    lat = np.linspace(31.2002, 31.2098, 9)
    lon = np.concatenate([np.full(9, 121.41), np.full(9, 121.4002), np.full(9, 121.4198)])
    lats = np.tile(lat, 3)
    u = np.concatenate([np.arange(8), np.arange(9), np.arange(9)])
    v = np.concatenate([np.arange(1, 9), np.arange(9) + 9, np.arange(9) + 18])
    u2 = np.concatenate([np.arange(9, 17), np.arange(18, 26)])
    v2 = u2 + 1
    net = WalkNetwork.from_lonlat(lon, lats, np.concatenate([u, u2]), np.concatenate([v, v2]))
    census = pd.DataFrame({"name": ["甲", "乙"], "code": [None, None], "population": [1000.0, 3000.0]})
    r = residents_from_census(units, census, network=net)
    assert r.groupby("unit")["population"].sum().to_dict() == pytest.approx({"甲区": 1000.0, "乙区": 3000.0})
    m = r.attrs["census_methods"]
    assert m["method"].tolist() == ["streets", "streets"]
    # each edge midpoint inside the two districts is used exactly once (none lost on the border)
    assert m["points"].sum() == net.n_edges
