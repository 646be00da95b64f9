"""One pass over the OSM file for every layer (read_osm / read_layers), and one pass per analysis.

The references are the separate readers lifecircle used before (``read_way_segments`` and the
two-pass ``iter_features``, whose areas come from pyosmium's own area handler) and a plain one-pass
pyosmium loop: every layer must come out equal, in the same order, geometries exactly equal.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import shapely

import lifecircle.read.osm as osm_mod
from lifecircle import analyze
from lifecircle.datasets import helsinki_osm, toy_town_osm
from lifecircle.read.facilities import facilities_from_osm, load_taxonomy
from lifecircle.read.layers import read_layers
from lifecircle.read.network import is_walkable, network_from_osm
from lifecircle.read.osm import iter_features, read_osm, read_way_segments
from lifecircle.read.units import units_from_osm

TAX = load_taxonomy()


def _building(tags):
    return (tags.get("building") is not None and tags.get("building") != "no") or tags.get("landuse") == "residential"


def _geom(f):
    return shapely.from_wkb(f.wkb) if f.wkb is not None else None


def assert_layers_match_separate_readers(path):
    got = read_osm(path, taxonomy=TAX, walkable=is_walkable)
    # network: the same arrays as the network-only reader
    ref = read_way_segments(path, is_walkable)
    for name in ("node_id", "lon", "lat", "u", "v", "way_index"):
        assert np.array_equal(getattr(got.network, name), getattr(ref, name)), name
    assert got.network.way_tags == ref.way_tags and got.network.ways_missing_nodes == ref.ways_missing_nodes
    # facility candidates: what iter_features yields with the taxonomy's prefilter, same order
    feats = list(iter_features(path, lambda t: True, keys=TAX.keys, name_keywords=TAX.keywords))
    assert [(f.osm_type, f.osm_id, f.tags) for f in got.facilities] == [(f.osm_type, f.osm_id, f.tags) for f in feats]
    assert np.array_equal(got.facilities.lon, [f.lon for f in feats])
    assert np.array_equal(got.facilities.lat, [f.lat for f in feats])
    # buildings + residential landuse: same rows, same geometry (coordinate order included)
    bld = [f for f in iter_features(path, _building, keys=("building", "landuse"), with_geometry=True)
           if f.wkb is not None]
    assert got.buildings["building"].tolist() == pd.Series([f.tags.get("building") for f in bld], dtype=object
                                                           ).astype(got.buildings["building"].dtype).tolist()
    ref_g = [_geom(f) for f in bld]
    assert len(ref_g) == len(got.buildings)
    assert all(a.geom_type == b.geom_type and a.equals_exact(b, 0) for a, b in zip(ref_g, got.buildings.geometry))
    # urban landuse: the polygons built_up_from_osm took
    lnd = [f for f in iter_features(path, lambda t: t.get("landuse") in ("residential", "commercial", "retail",
                                                                           "industrial"),
                                    keys=("landuse",), with_geometry=True)
           if f.wkb and _geom(f).geom_type.endswith("Polygon")]
    assert got.landuse["landuse"].tolist() == [f.tags["landuse"] for f in lnd]
    assert all(_geom(f).equals_exact(g, 0) for f, g in zip(lnd, got.landuse.geometry))
    # boundaries: the closed ones, as units_from_osm took them
    bnd = [f for f in iter_features(path, lambda t: t.get("boundary") == "administrative", keys=("boundary",),
                                    with_geometry=True) if f.wkb and _geom(f).geom_type.endswith("Polygon")]
    assert got.boundaries["osm_id"].tolist() == [f.osm_id for f in bnd]
    assert all(_geom(f).equals_exact(g, 0) for f, g in zip(bnd, got.boundaries.geometry))
    return got


def test_toy_town_layers_match_the_separate_readers():
    got = assert_layers_match_separate_readers(toy_town_osm())
    # worked out from data/make_toy_town.py: 7 tagged POIs/areas, 8 buildings + 1 residential landuse,
    # 3 boundary relations (one district, two subdistricts)
    assert (len(got.facilities), len(got.buildings), len(got.residential_landuse), len(got.boundaries)) == (7, 9, 1, 3)
    assert sorted(got.boundaries["name"]) == ["城东街道", "城西街道", "小河区"]


def test_helsinki_layers_match_the_separate_readers():
    """Helsinki has open and closed ways, building multipolygons (with tagged closed member ways) and
    relations completed by their last member way."""
    got = assert_layers_match_separate_readers(helsinki_osm())
    assert {"node", "way", "relation"} <= set(got.facilities.osm_type)
    assert len(got.buildings) > 400


def test_shanghai_layers_match_the_separate_readers(shanghai_pbf):
    assert_layers_match_separate_readers(shanghai_pbf)


def _write(path, nodes, ways, rels):
    import osmium
    from osmium.osm.mutable import Node, Relation, Way

    with osmium.SimpleWriter(str(path)) as w:
        for i, (x, y, *tags) in nodes.items():
            w.add_node(Node(id=i, location=(x, y), tags=tags[0] if tags else {}))
        for i, (refs, tags) in ways.items():
            w.add_way(Way(id=i, nodes=refs, tags=tags))
        for i, (members, tags) in rels.items():
            w.add_relation(Relation(id=i, members=members, tags=tags))
    return path


def test_awkward_areas_come_out_as_libosmium_makes_them(tmp_path):
    """Rings shapely calls invalid, repeated nodes, missing nodes, area=no, rings closed by location only,
    too few nodes, an untagged multipolygon outer with a hole, a relation missing a member: each is what
    pyosmium's area handler makes of it (or nothing, as it)."""
    d = 0.001
    grid = {10 * i + j + 1: (121.4 + i * d, 31.2 + j * d) for i in range(6) for j in range(6)}
    nodes = {**grid, 200: (121.4 + 5 * d, 31.2)}  # 200 sits where node 51 is
    b = {"building": "yes"}
    ways = {
        1: ([1, 2, 12, 11, 1], b),                   # a square
        2: ([1, 2, 2, 12, 11, 1], b),                # a repeated node
        3: ([21, 33, 23, 31, 21], b),                # a bow-tie (self-crossing)
        4: ([3, 4, 14, 13, 4, 3], {"building": "house"}),  # a spike back along an edge
        5: ([15, 16, 26, 25, 15], {**b, "area": "no"}),
        6: ([51, 52, 42, 200], b),                   # closed by location, not by id
        7: ([41, 42, 41], b),                        # too few nodes
        8: ([5, 6, 16, 999, 5], b),                  # a node missing from the file
        9: ([23, 26, 56, 53, 23], {}),               # untagged outer ...
        10: ([34, 35, 45, 44, 34], {}),              # ... and inner of relation 100
        11: ([41, 51, 52, 41], {"landuse": "residential"}),
        12: ([1, 2, 3], {"building": "roof"}),       # open way
    }
    rels = {100: ([("w", 9, "outer"), ("w", 10, "inner")], {"type": "multipolygon", "building": "school"}),
            101: ([("w", 9, "outer"), ("w", 777, "outer")], {"type": "multipolygon", "landuse": "residential"}),
            102: ([("w", 11, "outer")], {"type": "multipolygon", "building": "apartments"})}
    path = _write(tmp_path / "awkward.osm.pbf", nodes, ways, rels)
    got = read_osm(path, layers=("buildings",))
    ref = [f for f in iter_features(path, _building, keys=("building", "landuse"), with_geometry=True)
           if f.wkb is not None]
    assert len(ref) == len(got.buildings) and len(ref) >= 6
    for f, g in zip(ref, got.buildings.geometry):
        assert _geom(f).geom_type == g.geom_type and _geom(f).equals_exact(g, 0), (f.osm_type, f.osm_id)
    # the school has its hole; the landuse relation with a member outside the file has no area
    school = got.buildings[got.buildings["building"] == "school"].geometry.iloc[0]
    assert len(school.geoms[0].interiors) == 1
    assert round(school.area / (d * d), 6) == 9 - 1


def test_a_layer_is_read_for_its_stage_alone(tmp_path):
    """The stages take a path (their own layer, one pass) or the layers (no pass)."""
    assert len(facilities_from_osm(toy_town_osm())) == 5  # as the facilities tests work out
    got = read_osm(toy_town_osm(), layers=("facilities", "boundaries"), taxonomy=TAX)
    calls = []
    real = osm_mod._open_osm
    try:
        osm_mod._open_osm = lambda *a, **k: calls.append(a) or real(*a, **k)
        fac = facilities_from_osm(got, taxonomy=TAX)
        units = units_from_osm(got, admin_level=8)
    finally:
        osm_mod._open_osm = real
    assert calls == []
    pd.testing.assert_frame_equal(pd.DataFrame(fac), pd.DataFrame(facilities_from_osm(toy_town_osm(), taxonomy=TAX)))
    assert sorted(units["unit"]) == ["城东街道", "城西街道"]


def test_facilities_of_another_taxonomy_are_read_again(tmp_path):
    """Layers read for a taxonomy do not silently stand in for one with other keys or keywords."""
    from lifecircle.read.facilities import Rule, Taxonomy

    small = Taxonomy((Rule("health", "clinic", {"amenity": ("clinic",)}),))
    layers = read_osm(helsinki_osm(), layers=("facilities",), taxonomy=small)
    full = facilities_from_osm(layers, taxonomy=TAX)
    pd.testing.assert_frame_equal(pd.DataFrame(full), pd.DataFrame(facilities_from_osm(helsinki_osm(), taxonomy=TAX)))


# --------------------------------------------------------------------------------------------
# passes per analysis


@pytest.fixture()
def passes(monkeypatch, tmp_path):
    """Count how often lifecircle opens an OSM file for decoding; a fresh cache folder."""
    monkeypatch.setenv("LIFECIRCLE_CACHE", str(tmp_path / "cache"))
    calls = []
    real = osm_mod._open_osm

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(osm_mod, "_open_osm", counting)
    return calls


def _census(tmp_path):
    f = tmp_path / "census.csv"
    f.write_text("name,population\n城西街道,1200\n城东街道,800\n", encoding="utf-8")
    return f


@pytest.mark.parametrize("run", ["default", "admin_level", "census", "urban_landuse"])
def test_an_analysis_reads_the_osm_file_once_then_not_at_all(passes, tmp_path, run):
    kwargs = {"default": {}, "admin_level": {"admin_level": 8},
              "census": {"admin_level": 8, "census": _census(tmp_path)},
              "urban_landuse": {"admin_level": 8, "urban": "landuse"}}[run]
    first = analyze(toy_town_osm(), **kwargs)
    assert len(passes) == 1
    second = analyze(toy_town_osm(), **kwargs)
    assert len(passes) == 1  # everything from the cache: no pass at all
    pd.testing.assert_frame_equal(first.coverage, second.coverage)
    pd.testing.assert_frame_equal(pd.DataFrame(first.residents), pd.DataFrame(second.residents))
    pd.testing.assert_frame_equal(pd.DataFrame(first.facilities), pd.DataFrame(second.facilities))
    if run == "census":  # the census is spread on the buildings of each unit: 1200 + 800 people
        assert round(float(first.residents["population"].sum()), 6) == 2000


def test_without_the_cache_every_analysis_reads_once(passes):
    analyze(toy_town_osm(), admin_level=8, cache_network=False)
    analyze(toy_town_osm(), admin_level=8, cache_network=False)
    assert len(passes) == 2


def test_a_population_file_skips_the_buildings(passes, tmp_path, monkeypatch):
    """Only the layers the run needs are read: no buildings with a population file."""
    asked = []
    real = osm_mod.read_osm

    def spy(path, *, layers, **kw):
        asked.append(tuple(layers))
        return real(path, layers=layers, **kw)

    monkeypatch.setattr(osm_mod, "read_osm", spy)
    import lifecircle.read.layers as layers_mod

    monkeypatch.setattr(layers_mod, "read_osm", spy)
    pop = tmp_path / "pop.csv"
    pop.write_text("lon,lat,population\n121.401,31.2005,100\n121.405,31.2030,50\n", encoding="utf-8")
    analyze(toy_town_osm(), population=pop)
    assert asked == [("network", "facilities")] and len(passes) == 1


def test_a_damaged_layer_cache_is_read_again(passes, caplog):
    from lifecircle.read import cache

    analyze(toy_town_osm(), admin_level=8)
    files = sorted(cache.layer_cache_dir().glob("*.npz"))
    assert len(files) == 3  # facilities, buildings, boundaries
    files[0].write_bytes(b"not a zip file")
    with caplog.at_level(logging.WARNING, logger="lifecircle"):
        a = analyze(toy_town_osm(), admin_level=8)
    assert len(passes) == 2 and "unreadable OSM layer cache" in caplog.text
    assert a.summary["residents"]["population_is_estimate"]


def test_cached_layers_equal_the_read_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("LIFECIRCLE_CACHE", str(tmp_path / "cache"))
    a = read_layers(helsinki_osm())
    b = read_layers(helsinki_osm())
    assert a.cached == () and b.cached == ("facilities", "buildings", "landuse", "boundaries")
    pd.testing.assert_frame_equal(a.landuse, b.landuse)
    pd.testing.assert_frame_equal(a.buildings, b.buildings)
    pd.testing.assert_frame_equal(a.boundaries, b.boundaries)
    assert [(f.osm_type, f.osm_id, f.lon, f.lat, f.tags) for f in a.facilities] == [
        (f.osm_type, f.osm_id, f.lon, f.lat, f.tags) for f in b.facilities]
    assert network_from_osm(a).n_edges == network_from_osm(helsinki_osm(), cache=False).n_edges


def test_an_altered_layer_cache_is_not_used(passes, caplog):
    """A layer file whose arrays were changed (structure intact) fails its checksum and is read again."""
    import numpy as np_

    from lifecircle.read import cache

    first = analyze(toy_town_osm(), admin_level=8)
    f = next(p for p in cache.layer_cache_dir().glob("*-boundaries-*.npz"))
    with np_.load(f) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["osm_id"] = arrays["osm_id"] + 1  # a quiet change, the old checksum kept
    with open(f, "wb") as fh:
        np_.savez(fh, **arrays)
    with caplog.at_level(logging.WARNING, logger="lifecircle"):
        again = analyze(toy_town_osm(), admin_level=8)
    assert len(passes) == 2 and "sha256" in caplog.text
    assert again.units["osm_id"].tolist() == first.units["osm_id"].tolist()
