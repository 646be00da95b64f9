"""Residents: points, polygons, rasters (totals preserved) and the building estimate."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely

from lifecircle import CRSError, EmptyResultError, InputDataError, residents_from_buildings, residents_from_file
from lifecircle.datasets import toy_town_osm


def test_building_estimate_by_hand():
    r = residents_from_buildings(toy_town_osm(), m2_per_person=40)
    # apartments 40x20x6, residential 30x30x3, apartments 40x40x10, house 20x20x1 (1 level by
    # default), building=yes 40x30x4 inside landuse=residential; the other building=yes and the
    # office are not homes
    assert sorted(r.floor_area_m2.round(-1)) == [400, 2700, 4800, 4800, 16000]
    assert r.population.sum() == pytest.approx(28700 / 40, rel=1e-3)
    assert r.attrs["population_source"] == "estimate_from_buildings"


def test_polygons_spread_keeps_totals(tmp_path):
    polys = gpd.GeoDataFrame({"人口": [1000, 7]},
                             geometry=[shapely.box(121.40, 31.20, 121.41, 31.21), shapely.box(121.42, 31.20, 121.4201, 31.2001)],
                             crs=4326)
    f = tmp_path / "p.geojson"
    polys.to_file(f)
    r = residents_from_file(f)
    assert r.attrs["population_source"] == "polygons"
    assert r.population.sum() == pytest.approx(1007)
    assert len(r) > 50  # ~950 m x 1100 m at 100 m spacing
    assert shapely.contains_xy(polys.geometry[0], r.geometry.x, r.geometry.y).sum() == len(r) - 1


def test_raster_keeps_totals(tmp_path):
    import rasterio
    from rasterio.transform import from_origin

    arr = np.array([[0, 5, 10], [2.5, 0, -9999]], dtype="float32")
    f = tmp_path / "pop.tif"
    with rasterio.open(f, "w", driver="GTiff", height=2, width=3, count=1, dtype="float32", crs="EPSG:4326",
                       transform=from_origin(121.40, 31.21, 0.001, 0.001), nodata=-9999) as dst:
        dst.write(arr, 1)
    r = residents_from_file(f)
    assert r.attrs["population_source"] == "raster"
    assert sorted(r.population) == [2.5, 5, 10]
    assert r.geometry.x.min() == pytest.approx(121.4005)


def test_population_errors(tmp_path):
    f = tmp_path / "neg.csv"
    f.write_text("lon,lat,population\n121.4,31.2,-3\n")
    with pytest.raises(InputDataError, match="negative"):
        residents_from_file(f)
    g = tmp_path / "utm.csv"
    g.write_text("x,y,population\n350000,3450000,10\n")  # metres given as if degrees
    with pytest.raises(CRSError, match="CRS"):
        residents_from_file(g)
    z = tmp_path / "zero.csv"
    z.write_text("lon,lat,population\n121.4,31.2,0\n")
    with pytest.raises(EmptyResultError):
        residents_from_file(z)
    n = tmp_path / "nocol.csv"
    n.write_text("lon,lat,people_total\n121.4,31.2,4\n")
    with pytest.raises(InputDataError, match="--population-column"):
        residents_from_file(n)
    assert residents_from_file(n, population_column="people_total").population.sum() == 4


def test_gcj02_population_is_converted(tmp_path):
    f = tmp_path / "gcj.csv"
    f.write_text("lng,lat,pop\n121.47494,31.23262,10\n")  # People's Square, GCJ-02
    r = residents_from_file(f, crs="gcj02")
    assert r.geometry.x[0] == pytest.approx(121.4705, abs=0.0003)
