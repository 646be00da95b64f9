"""Walking network: the walk filter, real OSM files in every format, the sparse matrix."""

from __future__ import annotations

import bz2

import numpy as np
import pytest

from lifecircle import EmptyResultError, InputFileError, is_walkable, network_from_graph, network_from_osm
from lifecircle.datasets import helsinki_osm, toy_town_osm


@pytest.mark.parametrize(
    "tags, ok",
    [
        ({"highway": "footway"}, True),
        ({"highway": "residential", "oneway": "yes"}, True),
        ({"highway": "trunk"}, True),  # at-grade trunk road with sidewalks
        ({"highway": "trunk", "bridge": "yes"}, False),  # 延安高架路
        ({"highway": "trunk_link", "bridge": "yes"}, False),
        ({"highway": "trunk", "tunnel": "yes"}, False),  # 延安东路隧道
        ({"highway": "trunk", "oneway": "yes", "name": "延安东路隧道"}, False),  # its untagged ramp
        ({"highway": "primary", "name": "延安东路"}, True),
        ({"highway": "primary", "motorroad": "yes"}, False),
        ({"highway": "motorway"}, False),
        ({"highway": "cycleway"}, False),
        ({"highway": "cycleway", "foot": "yes"}, True),
        ({"highway": "footway", "foot": "no"}, False),
        ({"highway": "service", "access": "private"}, False),
        ({"highway": "service", "access": "private", "foot": "yes"}, True),
        ({"highway": "pedestrian", "area": "yes"}, False),
        ({"highway": "construction"}, False),
        ({"building": "yes"}, False),
    ],
)
def test_walk_filter(tags, ok):
    assert is_walkable(tags) is ok


def test_toy_town_network_by_hand():
    net = network_from_osm(toy_town_osm())
    # 3 east-west streets x 5 north-south streets = 15 crossings; the river cuts y=0 and y=400
    # between x=400 and x=600; the footbridge joins y=200; the private footway and the elevated
    # road are left out: 3+3+4 horizontal + 10 vertical 200 m edges
    assert net.n_nodes == 15
    assert net.n_edges == 20
    np.testing.assert_allclose(net.length_m, 200.0, atol=0.01)
    assert set(net.highway) == {"residential", "tertiary", "footway"}
    m = net.matrix()
    assert (m != m.T).nnz == 0 and m.nnz == 40


def test_xml_bz2_and_pbf_give_the_same_network(tmp_path):
    src = toy_town_osm()
    bz = tmp_path / "toy.osm.bz2"
    bz.write_bytes(bz2.compress(src.read_bytes()))
    a, b = network_from_osm(src), network_from_osm(bz)
    np.testing.assert_array_equal(a.node_id, b.node_id)
    np.testing.assert_allclose(a.length_m, b.length_m)


def test_shanghai_sample_drops_elevated_roads(shanghai_network, shanghai_pbf):
    net = shanghai_network
    assert "trunk" not in set(net.highway)  # every trunk way in the sample is 高架 or 隧道
    assert net.n_nodes > 1500 and 60 < net.length_m.sum() / 1000 < 80
    assert net.crs.to_epsg() == 32651
    assert net.source["osm_sha256"] == "cadc3a24693ee565c18aebb29f38b186947602f225c3547077326c75f6b02705"
    # lengths agree with great-circle lengths (OSMnx's definition) within UTM scale error
    from pyproj import Geod

    _, _, gc = Geod(ellps="WGS84").inv(net.lon[net.u], net.lat[net.u], net.lon[net.v], net.lat[net.v])
    np.testing.assert_allclose(net.length_m, gc, rtol=1e-3)


def test_helsinki_real_extract_clipped_ways():
    net = network_from_osm(helsinki_osm())
    assert net.n_edges > 5000
    assert np.isfinite(net.x).all() and (net.length_m > 0).all()


def test_network_from_osmnx_graph_matches_file():
    import osmnx as ox

    g = ox.graph_from_xml(toy_town_osm(), simplify=False, retain_all=True)
    keep = [(u, v, k) for u, v, k, d in g.edges(keys=True, data=True)
            if not is_walkable({kk: vv for kk, vv in d.items() if isinstance(vv, str)} | {"highway": d.get("highway")})]
    g.remove_edges_from(keep)
    g.remove_nodes_from([n for n in list(g.nodes) if g.degree(n) == 0])
    net = network_from_graph(g)
    ref = network_from_osm(toy_town_osm())
    assert net.n_edges == ref.n_edges
    assert abs(net.length_m.sum() - ref.length_m.sum()) < 0.1


def test_corrupt_and_missing_files(tmp_path):
    bad = tmp_path / "broken.osm.pbf"
    bad.write_bytes(b"this is not a protobuf file at all" * 10)
    with pytest.raises(InputFileError, match="corrupt"):
        network_from_osm(bad)
    with pytest.raises(InputFileError, match="not found"):
        network_from_osm(tmp_path / "missing.osm.pbf")
    empty = tmp_path / "empty.osm"
    empty.write_text("")
    with pytest.raises(InputFileError, match="empty"):
        network_from_osm(empty)


def test_no_walkable_street(tmp_path):
    f = tmp_path / "nostreet.osm"
    f.write_text('<?xml version="1.0"?><osm version="0.6"><node id="1" lat="31.2" lon="121.4"/>'
                 '<node id="2" lat="31.21" lon="121.4"/><way id="3"><nd ref="1"/><nd ref="2"/>'
                 '<tag k="highway" v="motorway"/></way></osm>')
    with pytest.raises(EmptyResultError, match="no walkable street"):
        network_from_osm(f)
