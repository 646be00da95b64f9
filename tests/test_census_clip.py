"""Census units the network does not cover: an error that lists them, or clipped with the counts scaled."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely

import lifecircle as lc
from lifecircle.errors import InputDataError
from lifecircle.read.census import read_census
from lifecircle.read.units import units_from_file


@pytest.fixture(scope="module")
def inputs(shared):
    districts = shared / "shanghai_districts_datav_v3_gcj02.geojson"
    census = shared / "shanghai_district_population_census2020.csv"
    return districts, census


def test_untouched_districts_are_an_error(shanghai_pbf, shanghai_network, inputs):
    districts, census = inputs
    with pytest.raises(InputDataError) as e:
        lc.analyze(shanghai_pbf, network=shanghai_network, units=districts, units_crs="gcj02", census=census,
                   config=lc.AnalysisConfig(categories=("health", "sports")))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("16 of 16 census units lie less than 50 % inside")
    names = pd.read_csv(census)["district"]
    assert all(n in msg for n in names)  # the 14 untouched districts, and 黄浦区 / 静安区 (27 %, 0.4 %)
    assert "--clip-units-to-network" in msg


def test_clip_scales_by_the_area_kept(shanghai_pbf, shanghai_network, shanghai_facilities, inputs):
    """No buildings or landuse in the sample: the share kept is the area share inside the convex hull of the
    network's nodes, measured here with shapely (as notebooks 02 and 04 do by hand)."""
    districts, census = inputs
    net = shanghai_network
    real = shanghai_facilities[shanghai_facilities.category.isin(["health", "sport"])]
    fac = real.assign(category=real.category.replace({"sport": "sports"}), source="list")[
        ["category", "name", "source", "geometry"]]
    a = lc.analyze(shanghai_pbf, network=net, facilities=fac, units=districts, units_crs="gcj02", census=census,
                   clip_units_to_network=True, config=lc.AnalysisConfig(categories=("health", "sports")))
    d = units_from_file(districts, crs="gcj02").to_crs(net.crs)
    hull = shapely.convex_hull(shapely.multipoints(np.column_stack([net.x, net.y])))
    share = shapely.area(shapely.intersection(d.geometry.to_numpy(), hull)) / shapely.area(d.geometry.to_numpy())
    counts = read_census(census).set_index("name")["population"]
    expected = pd.Series(counts[d["unit"]].to_numpy() * share, index=d["unit"])
    assert (expected > 0).sum() == 2  # 黄浦区 and 静安区
    assert share[d["unit"] == "黄浦区"][0] == pytest.approx(0.27, abs=0.01)
    got = a.residents.groupby("unit")["population"].sum()
    for unit, pop in expected[expected > 0].items():
        assert got[unit] == pytest.approx(pop, rel=1e-6)
    assert a.summary["residents"]["population"] == pytest.approx(expected.sum(), rel=1e-6)
    assert a.summary["census"]["census_total"] == pytest.approx(24_870_895)
    assert a.summary["census"]["clipped_to_network"] is True
    m = a.census_methods.set_index("unit")
    np.testing.assert_allclose(m.loc[d["unit"], "kept_share"].to_numpy(), share, rtol=1e-6, atol=1e-12)
    # the units reported (and drawn) are the parts inside the network
    assert sorted(a.units["unit"]) == ["静安区", "黄浦区"]
    clipped_km2 = a.units.to_crs(net.crs).area.sum() / 1e6
    assert clipped_km2 == pytest.approx(shapely.intersection(shapely.union_all(d.geometry.to_numpy()), hull).area / 1e6,
                                        rel=1e-3)
    assert set(a.coverage["unit"]) == {"study_area", "黄浦区", "静安区"}


def test_clip_scales_by_floor_area(tmp_path):
    """With buildings, the share kept is the share of the unit's residential floor area inside the network's
    extent: the toy town's buildings, a unit twice as wide as the town."""
    import geopandas as gpd

    from lifecircle.datasets import toy_town_osm
    from lifecircle.read.census import residents_from_census
    from lifecircle.read.population import residents_from_buildings

    from conftest import lonlat

    net = lc.network_from_osm(toy_town_osm())
    lo, la = lonlat([-50, 1650, 1650, -50], [-50, -50, 450, 450])
    unit = gpd.GeoDataFrame({"unit": ["大区"]}, crs=4326, geometry=[shapely.Polygon(np.column_stack([lo, la]))])
    census = pd.DataFrame({"name": ["大区"], "code": [None], "population": [10_000.0]})
    r = residents_from_census(unit, census, osm=toy_town_osm(), network=net, clip_to_network=True)
    homes = residents_from_buildings(toy_town_osm()).to_crs(net.crs)
    hull = shapely.convex_hull(shapely.multipoints(np.column_stack([net.x, net.y])))
    inside = shapely.intersects_xy(hull, homes.geometry.x.to_numpy(), homes.geometry.y.to_numpy())
    floor = homes["floor_area_m2"].to_numpy()
    kept = floor[inside].sum() / floor.sum()
    assert 0 < kept <= 1
    assert r["population"].sum() == pytest.approx(10_000 * kept, rel=1e-9)
    assert r.attrs["census_methods"]["kept_share"].iloc[0] == pytest.approx(kept)
