"""Tests of lifecircle.read.crs: GCJ-02 / BD-09 / EPSG conversion to and from WGS84."""

from __future__ import annotations

import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import MultiPolygon, Point, Polygon

from lifecircle.read.crs import (
    bd09_to_gcj02,
    bd09_to_wgs84,
    from_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    parse_crs,
    to_wgs84,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)
from lifecircle.errors import CRSError

# People's Square, Shanghai, WGS84 (OpenStreetMap).
PEOPLES_SQUARE = (121.47044, 31.23464)
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DISTRICTS = SHARED_DATA / "shanghai_districts_datav_v3_gcj02.geojson"


def _offset_m(lon0: float, lat0: float, lon1: float, lat1: float) -> tuple[float, float]:
    """East and north offset in metres (local equirectangular approximation, fine at 1 km)."""
    east = (lon1 - lon0) * 111_320.0 * math.cos(math.radians(lat0))
    north = (lat1 - lat0) * 110_574.0
    return east, north


def _china_grid() -> tuple[np.ndarray, np.ndarray]:
    lon, lat = np.meshgrid(np.linspace(73.0, 135.0, 125), np.linspace(18.0, 53.0, 71))
    return lon.ravel(), lat.ravel()


# --- control points -------------------------------------------------------------------------


def test_peoples_square_gcj_offset_is_about_500m_east_southeast() -> None:
    lon, lat = wgs84_to_gcj02(*PEOPLES_SQUARE)
    east, north = _offset_m(*PEOPLES_SQUARE, lon, lat)
    assert 400.0 < math.hypot(east, north) < 600.0
    bearing = math.degrees(math.atan2(east, north)) % 360.0  # clockwise from north
    assert 95.0 < bearing < 130.0  # east-southeast (112.5 deg)
    assert 0.0035 < lon - PEOPLES_SQUARE[0] < 0.0055
    assert -0.003 < lat - PEOPLES_SQUARE[1] < -0.001


@pytest.mark.parametrize(
    ("wgs", "gcj", "tol"),
    [
        # README of sshuair/coord-convert (PyPI coord-convert): wgs2gcj(120, 40)
        # "should be: 120.00567568355486 40.0013047896019".
        ((120.0, 40.0), (120.00567568355486, 40.0013047896019), 1e-9),
        # wandergis/coordtransform, test/app.js: wgs84togcj02(116.404, 39.915)
        # -> [116.41024449916938, 39.91640428150164].
        ((116.404, 39.915), (116.41024449916938, 39.91640428150164), 1e-9),
        # R package geoChina (caijun/geoChina) docs of wgs2gcj: Beijing railway station,
        # WGS-84 (39.90105, 116.42079) -> GCJ-02 (39.90245, 116.42703), given to 5 decimals.
        ((116.42079, 39.90105), (116.42703, 39.90245), 2e-5),
    ],
)
def test_published_gcj02_pairs(wgs: tuple, gcj: tuple, tol: float) -> None:
    lon, lat = wgs84_to_gcj02(*wgs)
    assert lon == pytest.approx(gcj[0], abs=tol)
    assert lat == pytest.approx(gcj[1], abs=tol)
    back = gcj02_to_wgs84(lon, lat)
    assert back == pytest.approx(wgs, abs=1e-9)


def test_published_bd09_pairs() -> None:
    # wandergis/coordtransform, test/app.js: gcj02tobd09(116.404, 39.915)
    # -> [116.41036949371029, 39.92133699351021] (exact forward formula).
    bd = gcj02_to_bd09(116.404, 39.915)
    assert bd == pytest.approx((116.41036949371029, 39.92133699351021), abs=1e-9)
    # Same file: bd09togcj02(116.404, 39.915) -> [116.39762729119315, 39.90865673957631]. That is
    # the one-step published inverse; ours is iterated to the exact inverse (differs by < 5e-7 deg).
    gcj = bd09_to_gcj02(116.404, 39.915)
    assert gcj == pytest.approx((116.39762729119315, 39.90865673957631), abs=1e-6)
    assert gcj02_to_bd09(*gcj) == pytest.approx((116.404, 39.915), abs=1e-10)


def test_bd09_offset_order_of_magnitude_in_eastern_china() -> None:
    gcj = wgs84_to_gcj02(*PEOPLES_SQUARE)
    bd = gcj02_to_bd09(*gcj)
    d_lon, d_lat = bd[0] - gcj[0], bd[1] - gcj[1]
    assert 0.004 < d_lon < 0.009  # published: about +0.0065
    assert 0.004 < d_lat < 0.009  # published: about +0.006
    assert wgs84_to_bd09(*PEOPLES_SQUARE) == pytest.approx(bd, abs=1e-12)


# --- round trips and shapes -------------------------------------------------------------------


def test_round_trip_on_grid_over_china() -> None:
    lon, lat = _china_grid()
    glon, glat = wgs84_to_gcj02(lon, lat)
    assert np.all(np.hypot(glon - lon, glat - lat) > 1e-4)  # every grid point inside the bbox moves
    rlon, rlat = gcj02_to_wgs84(glon, glat)
    assert np.max(np.abs(rlon - lon)) < 1e-8 and np.max(np.abs(rlat - lat)) < 1e-8
    blon, blat = wgs84_to_bd09(lon, lat)
    rlon, rlat = bd09_to_wgs84(blon, blat)
    assert np.max(np.abs(rlon - lon)) < 1e-8 and np.max(np.abs(rlat - lat)) < 1e-8
    rlon, rlat = bd09_to_gcj02(*gcj02_to_bd09(glon, glat))
    assert np.max(np.abs(rlon - glon)) < 1e-8 and np.max(np.abs(rlat - glat)) < 1e-8


@settings(max_examples=300, deadline=None)
@given(lon=st.floats(73.0, 135.0), lat=st.floats(18.0, 53.0))
def test_round_trip_property(lon: float, lat: float) -> None:
    assert gcj02_to_wgs84(*wgs84_to_gcj02(lon, lat)) == pytest.approx((lon, lat), abs=1e-8)
    assert bd09_to_wgs84(*wgs84_to_bd09(lon, lat)) == pytest.approx((lon, lat), abs=1e-8)
    # the inverse, applied first, is also exact
    assert wgs84_to_gcj02(*gcj02_to_wgs84(lon, lat)) == pytest.approx((lon, lat), abs=1e-8)


def test_outside_china_unchanged() -> None:
    helsinki = (24.94, 60.17)
    funcs = (wgs84_to_gcj02, gcj02_to_wgs84, gcj02_to_bd09, bd09_to_gcj02, wgs84_to_bd09,
             bd09_to_wgs84)
    for func in funcs:
        assert func(*helsinki) == helsinki
    lon, lat = gcj02_to_wgs84(np.array([24.94, 121.47]), np.array([60.17, 31.23]))
    assert (lon[0], lat[0]) == helsinki and lon[1] != 121.47


def test_scalars_give_floats_and_arrays_keep_shape() -> None:
    lon, lat = gcj02_to_wgs84(121.47, 31.23)
    assert type(lon) is float and type(lat) is float
    arr = np.full((2, 3), 121.47)
    lon, lat = wgs84_to_bd09(arr, 31.23)
    assert isinstance(lon, np.ndarray) and lon.shape == (2, 3) and lat.shape == (2, 3)


# --- parse_crs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("crs", ["wgs84", "WGS84", "epsg:4326", "EPSG:4326", 4326])
def test_parse_crs_wgs84(crs: object) -> None:
    assert parse_crs(crs).to_epsg() == 4326


@pytest.mark.parametrize(("crs", "expected"), [
    ("gcj02", "gcj02"), ("gcj-02", "gcj02"), ("GCJ02", "gcj02"),
    ("bd09", "bd09"), ("bd-09", "bd09"), ("BD09", "bd09"),
])
def test_parse_crs_chinese_names(crs: str, expected: str) -> None:
    assert parse_crs(crs) == expected


def test_parse_crs_epsg_and_pyproj() -> None:
    import pyproj

    assert parse_crs("EPSG:32651").to_epsg() == 32651
    assert parse_crs(32651).to_epsg() == 32651
    crs = pyproj.CRS.from_epsg(3857)
    assert parse_crs(crs) is crs


@pytest.mark.parametrize("crs, message", [("gcj2", "unknown CRS"), (True, "unknown CRS"), (2.5, "unknown CRS"),
                                          ("", "empty CRS"), ("mars", "ambiguous.*gcj02 or bd09"),
                                          ("火星坐标", "ambiguous")])
def test_parse_crs_unknown(crs: object, message: str) -> None:
    with pytest.raises(CRSError, match=message):
        parse_crs(crs)


@pytest.mark.parametrize("text, epsg", [("wgs84", 4326), ("WGS-84", 4326), ("WGS 84", 4326), ("epsg:4326", 4326),
                                        ("4326", 4326), (4326, 4326), ("CGCS2000", 4490), ("EPSG:32651", 32651)])
def test_parse_crs_aliases_epsg(text: object, epsg: int) -> None:
    assert parse_crs(text).to_epsg() == epsg


@pytest.mark.parametrize("text, name", [("gcj02", "gcj02"), ("GCJ-02", "gcj02"), ("amap", "gcj02"), ("Gaode", "gcj02"),
                                        ("高德", "gcj02"), ("bd09", "bd09"), ("BD-09", "bd09"), ("baidu", "bd09"),
                                        ("百度", "bd09")])
def test_parse_crs_aliases_chinese_web_maps(text: str, name: str) -> None:
    assert parse_crs(text) == name


_MARS_WKT = ('GEOGCS["GCS_Mars_2000",DATUM["D_Mars_2000",SPHEROID["Mars_2000_IAU_IAG",3396190.0,169.8944472236118]],'
             'PRIMEM["Reference_Meridian",0.0],UNIT["Degree",0.0174532925199433]]')


@pytest.mark.parametrize("crs, message", [
    ("IAU_2015:49900", "'IAU_2015:49900' is a Mars CRS (celestial body Mars), not an Earth CRS: pass wgs84, gcj02, bd09"),
    (_MARS_WKT, "is a Mars CRS (celestial body Mars), not an Earth CRS"),
    ("IAU_2015:30100", "is a Moon CRS (celestial body Moon)"),
    ("+proj=longlat +R=1737400 +no_defs", "a body of radius 1,737 km, not an Earth CRS"),
    ("EPSG:4978", "is a geocentric CRS"),
    ("EPSG:5773", "is a vertical CRS"),
    ("EPSG:5972", "pass its horizontal part EPSG:25832"),
    ('ENGCRS["site",EDATUM["P1"],CS[Cartesian,2],AXIS["x",east],AXIS["y",north],LENGTHUNIT["metre",1]]',
     "is an engineering (local) CRS"),
])
def test_parse_crs_not_an_earth_map_crs(crs: str, message: str) -> None:
    import pyproj

    with pytest.raises(CRSError) as exc:
        parse_crs(crs)
    assert message in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(CRSError):  # a pyproj.CRS object is checked the same way
        parse_crs(pyproj.CRS.from_user_input(crs))


# --- to_wgs84 / from_wgs84 on GeoDataFrames -------------------------------------------------------


def _gcj_frame() -> gpd.GeoDataFrame:
    square = Polygon([(121.46, 31.22), (121.48, 31.22), (121.48, 31.24), (121.46, 31.24)])
    multi = MultiPolygon([square, Polygon([(121.5, 31.3), (121.51, 31.3), (121.51, 31.31)])])
    return gpd.GeoDataFrame(
        {"name": ["a", "b", "c"]}, geometry=[Point(121.475, 31.232), square, multi], crs=4326
    )


@pytest.mark.parametrize(("crs", "func"), [("gcj02", gcj02_to_wgs84), ("bd09", bd09_to_wgs84)])
def test_to_wgs84_transforms_every_vertex(crs: str, func) -> None:
    gdf = _gcj_frame()
    before = gdf.copy()
    out = to_wgs84(gdf, crs)
    assert out.crs.to_epsg() == 4326
    assert list(out["name"]) == ["a", "b", "c"]
    assert list(out.geom_type) == list(gdf.geom_type)
    src = shapely.get_coordinates(gdf.geometry.values)
    exp = np.column_stack(func(src[:, 0], src[:, 1]))
    got = shapely.get_coordinates(out.geometry.values)
    np.testing.assert_allclose(got, exp, rtol=0, atol=1e-12)
    # the input is untouched
    assert gdf.crs == before.crs and gdf.geometry.geom_equals_exact(before.geometry, 0).all()
    # back to the Chinese system
    again = from_wgs84(out, crs)
    back = shapely.get_coordinates(again.geometry.values)
    np.testing.assert_allclose(back, src, rtol=0, atol=1e-8)


def test_to_wgs84_geoseries_without_crs() -> None:
    s = gpd.GeoSeries([Point(121.475, 31.232), None])
    out = to_wgs84(s, "gcj02")
    assert out.crs.to_epsg() == 4326 and out.iloc[1] is None
    assert (out.iloc[0].x, out.iloc[0].y) == pytest.approx(gcj02_to_wgs84(121.475, 31.232))
    assert s.crs is None


def test_to_wgs84_projected_via_pyproj() -> None:
    utm = gpd.GeoDataFrame(geometry=[Point(PEOPLES_SQUARE)], crs=4326).to_crs(32651)
    out = to_wgs84(utm, None)
    assert out.crs.to_epsg() == 4326
    pt = out.geometry.iloc[0]
    assert (pt.x, pt.y) == pytest.approx(PEOPLES_SQUARE, abs=1e-9)
    assert utm.crs.to_epsg() == 32651
    # no declared CRS: the given one is set first
    bare = utm.set_crs(None, allow_override=True)
    out = to_wgs84(bare, "EPSG:32651")
    pt = out.geometry.iloc[0]
    assert (pt.x, pt.y) == pytest.approx(PEOPLES_SQUARE, abs=1e-9)
    # no CRS at all: EPSG:4326 is assumed
    assert to_wgs84(gpd.GeoSeries([Point(PEOPLES_SQUARE)]), None).crs.to_epsg() == 4326


def test_to_wgs84_errors() -> None:
    gdf = _gcj_frame()
    with pytest.raises(CRSError, match="unknown CRS 'gcj2'"):
        to_wgs84(gdf, "gcj2")
    utm = gdf.to_crs(32651)
    with pytest.raises(CRSError, match="projected"):
        to_wgs84(utm, "gcj02")
    # metres read as lon/lat degrees: caught by the range check
    metres = utm.set_crs(None, allow_override=True)
    with pytest.raises(CRSError, match="wrong CRS"):
        to_wgs84(metres, "wgs84")


def test_from_wgs84_to_projected() -> None:
    gdf = gpd.GeoDataFrame(geometry=[Point(PEOPLES_SQUARE)], crs=4326)
    assert from_wgs84(gdf, 32651).crs.to_epsg() == 32651


# --- real data ------------------------------------------------------------------------------------


def test_datav_huangpu_contains_peoples_square_after_conversion() -> None:
    if not DISTRICTS.exists():
        pytest.skip(f"{DISTRICTS} not available")
    gcj = gpd.read_file(DISTRICTS)
    wgs = to_wgs84(gcj, "gcj02")
    assert wgs.crs.to_epsg() == 4326
    huangpu = wgs.loc[wgs["name"] == "黄浦区"].geometry
    assert len(huangpu) == 1
    assert huangpu.iloc[0].contains(Point(PEOPLES_SQUARE))
    assert list(wgs.loc[wgs.contains(Point(PEOPLES_SQUARE)), "name"]) == ["黄浦区"]
    # the whole district moved back west-northwest by ~0.5 km
    c0 = gcj.loc[gcj["name"] == "黄浦区"].geometry.iloc[0].centroid
    c1 = huangpu.iloc[0].centroid
    east, north = _offset_m(c0.x, c0.y, c1.x, c1.y)
    assert 400.0 < math.hypot(east, north) < 600.0 and east < 0 < north
