"""Gap areas: a hand-laid grid, labels checked against scipy.ndimage.label, real-data totals, output file."""

from __future__ import annotations

import logging
import math

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from conftest import X0, Y0, lonlat
from lifecircle import AnalysisConfig, analyze
from lifecircle.measure.coverage import STUDY_AREA
from lifecircle.datasets import toy_town_osm
from lifecircle.errors import InputDataError
from lifecircle.plan.gaps import GAP_COLUMNS, _label_cells, find_gaps, gap_areas, write_gaps

CELL = 100.0
# local metres of a grid corner: grids are aligned to multiples of cell_m in UTM 51N, and a
# multiple of 300 m is a corner of both the 100 m and the 300 m grid
CX = math.ceil(X0 / 300) * 300 - X0
CY = math.ceil(Y0 / 300) * 300 - Y0



def in_cell(i, j, dx=50.0, dy=50.0):
    return CX + i * CELL + dx, CY + j * CELL + dy


@pytest.fixture(scope="module")
def grid():
    """Residents laid on chosen cells (i, j) of the 100 m grid (index labels 100..107)."""
    rows = [  # cell, people, minutes, unit
        ((0, 0), 10, 20.0, "X"),
        ((1, 1), 30, 18.0, "Y"),        # touches (0, 0) at a corner: same gap
        ((2, 1), 25, np.inf, "X"),      # touches (1, 1) at a side; no facility within the cut-off
        ((0, 1), 100, 5.0, "Y"),        # covered: not in any gap
        ((5, 0), 70, 16.0, "Z"),        # alone: the biggest gap
        ((5, 0), 0, 50.0, "Z"),         # nobody lives there: ignored
        ((0, 4), 5, np.nan, None),      # NaN counts as not reachable
        ((9, 9), 40, 15.0, "Z"),        # exactly 15 min: covered
    ]
    xy = [in_cell(*r[0]) for r in rows]
    lo, la = lonlat([p[0] for p in xy], [p[1] for p in xy])
    res = gpd.GeoDataFrame({"population": [float(r[1]) for r in rows], "unit": [r[3] for r in rows]},
                           geometry=gpd.points_from_xy(lo, la), crs=4326, index=np.arange(100, 108))
    return res, np.array([r[2] for r in rows])


def test_hand_laid_gaps(grid):
    res, minutes = grid
    g = gap_areas(res, minutes, minutes=15, cell_m=CELL, crs=32651, category="health")
    assert list(g.columns[:-1]) == GAP_COLUMNS and g.crs.to_epsg() == 4326
    # three gaps, by people: {(5,0)} 70, {(0,0),(1,1),(2,1)} 10+30+25 = 65, {(0,4)} 5
    assert g.gap.tolist() == [1, 2, 3]
    assert g.population.tolist() == [70.0, 65.0, 5.0]
    assert g.residents.tolist() == [1, 3, 1] and g.cells.tolist() == [1, 3, 1]
    np.testing.assert_allclose(g.area_km2, [0.01, 0.03, 0.01])
    np.testing.assert_allclose(g.share_of_uncovered, [70 / 140, 65 / 140, 5 / 140])
    assert g.population_unreachable.tolist() == [0.0, 25.0, 5.0]
    # gap 2: times 18 (30 people), 20 (10), inf (25): half of 65 is 32.5, reached at 20 min
    assert g.median_minutes.tolist() == [16.0, 20.0, np.inf]
    assert g.mean_minutes.tolist() == [16.0, np.inf, np.inf] and g.max_minutes.tolist() == [16.0, np.inf, np.inf]
    # unit X holds 35 of gap 2's people, Y 30; gap 3's resident has no unit
    assert g.unit.tolist()[:2] == ["Z", "X"] and pd.isna(g.unit[2])
    # gap 2's weighted centre is (173, 135) m in its corner cell's frame: nearest is the (1, 1) resident
    assert g.resident_index.tolist() == [104, 101, 106]
    assert g.lon[1] == pytest.approx(res.geometry.x[101]) and g.lat[1] == pytest.approx(res.geometry.y[101])
    # polygons: the union of the cells, holding their residents
    utm = g.to_crs(32651)
    np.testing.assert_allclose(utm.area, [1e4, 3e4, 1e4], rtol=1e-6)
    for gap, members in ((1, [104]), (2, [100, 101, 102]), (3, [106])):
        poly = g.geometry[g.gap == gap].iloc[0]
        assert all(poly.contains(res.geometry[i]) for i in members)
    assert not g.geometry[1].contains(res.geometry[103])  # the covered (0, 1) cell is not part of it


def test_cell_size_changes_the_grouping(grid):
    res, minutes = grid
    # with 300 m cells, 100 m cells (0..2, 0..1) fall in 300 m cell (0, 0), (5, 0) in (1, 0) and
    # (0, 4) in (0, 1): they touch, so there is one gap of 140 people in 3 cells
    g = gap_areas(res, minutes, minutes=15, cell_m=300, crs=32651)
    assert g.population.tolist() == [140.0] and g.cells.tolist() == [3]
    # a higher threshold covers the 16-20 min residents: only the unreachable ones are left
    g = gap_areas(res, minutes, minutes=25, cell_m=CELL, crs=32651)
    assert g.population.tolist() == [25.0, 5.0] and np.isinf(g.median_minutes).all()


@settings(max_examples=60, deadline=None)
@given(cells=st.lists(st.tuples(st.integers(-6, 6), st.integers(-6, 6)), min_size=1, max_size=60, unique=True))
def test_labels_match_ndimage_label(cells):
    ix = np.array([c[0] for c in cells])
    iy = np.array([c[1] for c in cells])
    mine = _label_cells(ix, iy)
    raster = np.zeros((13, 13), dtype=bool)
    raster[ix + 6, iy + 6] = True
    theirs, _ = ndimage.label(raster, structure=np.ones((3, 3)))
    ref = theirs[ix + 6, iy + 6]
    # the same partition: a one-to-one map between label sets
    pairs = set(zip(mine.tolist(), ref.tolist()))
    assert len(pairs) == len(set(mine.tolist())) == len(set(ref.tolist()))


def test_toy_town_gap(caplog):
    a = analyze(toy_town_osm())
    g = find_gaps(a, category="health")
    # the only resident more than 15 min from the health centre: 438.4 people at 16.35 min
    far = a.residents[a.residents.minutes_to_health > 15]
    assert len(g) == 1 and len(far) == 1
    assert g.population.iloc[0] == pytest.approx(far.population.iloc[0])
    assert g.median_minutes.iloc[0] == g.max_minutes.iloc[0] == pytest.approx(far.minutes_to_health.iloc[0])
    assert g.resident_index.iloc[0] == far.index[0] and pd.isna(g.unit.iloc[0])
    with caplog.at_level(logging.INFO, logger="lifecircle"):
        every = find_gaps(a)
    lacking = [c for c in a.config.categories if (a.residents[f"minutes_to_{c}"] > 15).any()]
    assert sorted(set(every.category)) == sorted(lacking)
    for c in a.config.categories:
        if c not in lacking:
            assert f"{c}: already 100 % covered" in caplog.text
    assert find_gaps(a, category="all").population.sum() == pytest.approx(
        a.residents.population[a.residents.minutes_to_all > 15].sum())


def test_errors(grid, tmp_path):
    res, minutes = grid
    a = analyze(toy_town_osm(), config=AnalysisConfig(categories=("health", "sports")))
    with pytest.raises(InputDataError, match="unknown category 'culture'"):
        find_gaps(a, category="culture")
    with pytest.raises(InputDataError, match="--max-minutes 40"):
        find_gaps(a, category="health", minutes=40)
    with pytest.raises(InputDataError, match="cell_m"):
        find_gaps(a, category="health", cell_m=0)
    with pytest.raises(InputDataError, match="one walking time per resident"):
        gap_areas(res, minutes[:3])
    covered = gap_areas(res, np.zeros(len(res)))
    assert covered.empty and list(covered.columns[:-1]) == GAP_COLUMNS
    assert gpd.read_file(write_gaps(covered, tmp_path / "gaps.gpkg")).empty  # nothing to show is still a file


def test_shanghai_gaps_hold_every_uncovered_person(shanghai_network, shanghai_facilities, tmp_path):
    f = shanghai_facilities[shanghai_facilities.category.isin(["health", "sport"])]
    fac = gpd.GeoDataFrame({"category": f.category.replace({"sport": "sports"}).to_numpy(), "source": "osm",
                            "name": f.name.to_numpy()}, geometry=f.geometry.to_numpy(), crs=4326)
    rng = np.random.default_rng(11)
    lon = rng.uniform(121.4611, 121.4863, 3000)
    lat = rng.uniform(31.2196, 31.2412, 3000)
    res = gpd.GeoDataFrame({"population": rng.integers(0, 100, 3000).astype(float)},
                           geometry=gpd.points_from_xy(lon, lat), crs=4326)
    a = analyze(network=shanghai_network, facilities=fac, population=res,
                config=AnalysisConfig(minutes=(10,), categories=("health", "sports"), standard="all"))
    g = find_gaps(a, cell_m=150)
    cov = a.coverage[a.coverage.unit == STUDY_AREA].set_index("category")
    for cat in ("health", "sports"):
        mine = g[g.category == cat]
        assert mine.population.sum() == pytest.approx(cov.population[cat] - cov.covered_population[cat])
        assert (np.diff(mine.population) <= 0).all() and mine.gap.tolist() == list(range(1, len(mine) + 1))
        # different gaps never touch, not even at a corner (else they would be one)
        polys = mine.to_crs(a.network.crs).geometry.to_numpy()
        i, j = shapely.STRtree(polys).query(polys, predicate="intersects")
        assert (i == j).all()
    path = write_gaps(g, tmp_path / "gaps.gpkg")
    assert [p.name for p in tmp_path.iterdir()] == ["gaps.gpkg"]
    back = gpd.read_file(path)
    assert len(back) == len(g) and back.crs.to_epsg() == 4326
    unreachable = np.isinf(g.max_minutes.to_numpy())
    assert back.max_minutes.isna().to_numpy().tolist() == unreachable.tolist()
    assert back.population_unreachable.tolist() == pytest.approx(g.population_unreachable.tolist())


def reference_gaps(res, minutes, *, threshold, cell_m, crs):
    """Gap areas the plain way: a dict of cells, networkx components, pandas per gap, shapely union."""
    import networkx as nx
    import pyproj

    mins = np.where(np.isnan(minutes), np.inf, minutes)
    pop = res.population.to_numpy(dtype=float)
    pick = np.flatnonzero(~(mins <= threshold) & (pop > 0))
    lon, lat = res.geometry.x.to_numpy()[pick], res.geometry.y.to_numpy()[pick]
    x, y = pyproj.Transformer.from_crs(4326, crs, always_xy=True).transform(lon, lat)
    cell = [(int(i), int(j)) for i, j in zip(np.floor(np.asarray(x) / cell_m), np.floor(np.asarray(y) / cell_m))]
    g = nx.Graph()
    g.add_nodes_from(set(cell))
    for i, j in set(cell):
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                if (i + di, j + dj) in g and (di, dj) != (0, 0):
                    g.add_edge((i, j), (i + di, j + dj))
    comp = {c: min(part) for part in nx.connected_components(g) for c in part}  # a gap is named by its first cell
    t = pd.DataFrame({"key": [comp[c] for c in cell], "w": pop[pick], "m": mins[pick], "lon": lon, "lat": lat,
                      "x": np.asarray(x), "y": np.asarray(y), "index": res.index.to_numpy()[pick]})
    rows = []
    for key, p in t.groupby("key"):
        p = p.sort_values("m", kind="stable")
        half = np.flatnonzero(p.w.cumsum().to_numpy() >= 0.5 * p.w.sum() * (1 - 1e-12))[0]
        cx, cy = (p.w * p.x).sum() / p.w.sum(), (p.w * p.y).sum() / p.w.sum()
        near = p.iloc[np.argmin((p.x - cx) ** 2 + (p.y - cy) ** 2)]
        cells = sorted(c for c in g.nodes if comp[c] == key)
        boxes = [shapely.box(i * cell_m, j * cell_m, (i + 1) * cell_m, (j + 1) * cell_m) for i, j in cells]
        unreach = p.w[~np.isfinite(p.m)].sum()
        rows.append({"key": key, "population": p.w.sum(), "residents": len(p), "population_unreachable": unreach,
                     "mean_minutes": np.inf if unreach > 0 else (p.w * p.m).sum() / p.w.sum(),
                     "median_minutes": p.m.iloc[half], "max_minutes": p.m.max(), "cells": len(cells),
                     "resident_index": near["index"], "lon": near.lon, "lat": near.lat,
                     "geometry": shapely.union_all(boxes)})
    out = pd.DataFrame(rows).sort_values(["population", "population_unreachable", "key"],
                                         ascending=[False, False, True], kind="stable", ignore_index=True)
    return out


@pytest.mark.parametrize("where", ["sample", "tiled"])
def test_gap_areas_equal_a_plain_reference(where, shanghai_network, shanghai_facilities, shanghai_tiled):
    if where == "sample":
        f = shanghai_facilities[shanghai_facilities.category == "health"]
        fac = gpd.GeoDataFrame({"category": "health", "source": "osm", "name": f.name.to_numpy()},
                               geometry=f.geometry.to_numpy(), crs=4326)
        rng = np.random.default_rng(5)
        res = gpd.GeoDataFrame({"population": rng.integers(0, 60, 2500).astype(float)},
                               geometry=gpd.points_from_xy(rng.uniform(121.4611, 121.4863, 2500),
                                                           rng.uniform(31.2196, 31.2412, 2500)), crs=4326)
        a = analyze(network=shanghai_network, facilities=fac, population=res,
                    config=AnalysisConfig(minutes=(5,), categories=("health",)))
        cases = [("health", 5.0, 40.0)]
    else:
        a = shanghai_tiled
        cases = [("health", 15.0, CELL), ("sports", 10.0, CELL)]
    for cat, threshold, cell in cases:
        mins = a.residents[f"minutes_to_{cat}"].to_numpy()
        got = gap_areas(a.residents, mins, minutes=threshold, cell_m=cell, crs=a.network.crs)
        ref = reference_gaps(a.residents, mins, threshold=threshold, cell_m=cell, crs=a.network.crs)
        assert len(got) == len(ref) > 3
        for col in ("population", "population_unreachable", "mean_minutes", "median_minutes", "max_minutes",
                    "lon", "lat"):
            np.testing.assert_allclose(got[col].to_numpy(), ref[col].to_numpy(), rtol=1e-12, atol=0, err_msg=col)
        for col in ("residents", "cells", "resident_index"):
            assert got[col].tolist() == ref[col].tolist(), col
        assert got.gap.tolist() == list(range(1, len(got) + 1))
        mine = got.to_crs(a.network.crs).geometry.to_numpy()
        # the same shapes: no area in one and not the other (to the float precision of the reprojection)
        sym = shapely.area(shapely.symmetric_difference(mine, ref.geometry.to_numpy()))
        assert (sym < 1e-3).all() and np.allclose(shapely.area(mine), got.cells * cell * cell, rtol=1e-9)


def test_a_city_wide_gap_is_traced_on_a_raster_as_geos_would_merge_it(monkeypatch):
    """Labels with many runs go through GDAL's polygonize: the same polygons (topologically) as the GEOS union
    of their cells, holes and corner-touching parts included."""
    import shapely
    from scipy import ndimage

    import lifecircle.plan.gaps as gaps

    rng = np.random.default_rng(7)
    g = rng.random((120, 140)) < 0.68  # one giant 8-connected blob with holes, and small islands
    ys, xs = np.nonzero(g)
    cells = np.column_stack([xs, ys]) + [50, 80]
    lab, k = ndimage.label(g, structure=np.ones((3, 3)))
    label = lab[ys, xs] - 1
    # the reference: each label's unit squares merged by a plain unary union
    squares = shapely.box(cells[:, 0] * 100.0, cells[:, 1] * 100.0, cells[:, 0] * 100.0 + 100, cells[:, 1] * 100.0 + 100)
    ref = [shapely.union_all(squares[label == i]) for i in range(k)]
    monkeypatch.setattr(gaps, "RASTER_RUNS_ABOVE", 50)
    got = gaps._cell_polygons(cells, label, k, 100.0)
    size = np.bincount(label, minlength=k)
    assert (size > 1000).sum() == 1 and (size <= 50).sum() >= 1  # both paths are used
    assert all(shapely.equals(a, b) for a, b in zip(got, ref))
    assert all(shapely.is_valid(got))
    assert max(len(shapely.get_rings(shapely.get_parts(p))) for p in got) > 10  # the big one has holes
