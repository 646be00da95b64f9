"""The shortcuts of read_osm's network layer against the plain computations they replace.

``read_osm`` parses the network's tag dicts only when ``way_tags`` is read, takes each way's
``highway`` from a projection of the raw tags and numbers the nodes with an unstable sort: each is
checked here against the straightforward way (``np.unique``, ``dict.get`` on the parsed tags), on the
toy town, Helsinki and a file written here with the odd cases (a way that is not walkable, a way
with one node, nodes missing from the extract, a highway value with an escaped character).
"""

from __future__ import annotations

import numpy as np
import pytest

from lifecircle.datasets import helsinki_osm, toy_town_osm
from lifecircle.read.facilities import load_taxonomy
from lifecircle.read.network import is_walkable, network_from_osm
from lifecircle.read.osm import _unique_ids, read_osm, read_way_segments

TAX = load_taxonomy()

ODD = """<?xml version='1.0' encoding='UTF-8'?>
<osm version="0.6">
  <node id="1" lat="31.2000" lon="121.4000"/>
  <node id="2" lat="31.2010" lon="121.4000"/>
  <node id="3" lat="31.2010" lon="121.4010"/>
  <node id="5" lat="31.2020" lon="121.4010"/>
  <way id="10"><nd ref="1"/><nd ref="2"/><nd ref="3"/><tag k="highway" v="residential"/><tag k="name" v="a"/></way>
  <way id="11"><nd ref="3"/><nd ref="4"/><nd ref="5"/><tag k="highway" v="foot,way"/></way>
  <way id="12"><nd ref="2"/><nd ref="5"/><tag k="highway" v="motorway"/></way>
  <way id="13"><nd ref="5"/><tag k="highway" v="path"/></way>
  <way id="14"><nd ref="5"/><nd ref="1"/><tag k="highway" v="residential"/><tag k="name" v="b"/><tag k="amenity" v="clinic"/></way>
  <way id="15"><nd ref="1"/><nd ref="3"/><tag k="building" v="yes"/></way>
</osm>
"""


@pytest.fixture(params=["toy", "helsinki", "odd"])
def osm_file(request, tmp_path):
    if request.param == "odd":
        p = tmp_path / "odd.osm"
        p.write_text(ODD, encoding="utf-8")
        return p
    return toy_town_osm() if request.param == "toy" else helsinki_osm()


@pytest.mark.parametrize("layers", [("network",), ("network", "facilities"), ("network", "facilities", "buildings")])
def test_network_layer_equals_the_network_only_reader(osm_file, layers):
    got = read_osm(osm_file, layers=layers, taxonomy=TAX, walkable=is_walkable).network
    ref = read_way_segments(osm_file, is_walkable)  # per-way tag dicts, np.unique numbering
    for name in ("node_id", "lon", "lat", "u", "v", "way_index"):
        assert np.array_equal(getattr(got, name), getattr(ref, name)), name
    # highway read before the dicts exist, then the dicts (parsed on first use), in order
    assert got.way_highway.tolist() == [t.get("highway") for t in ref.way_tags]
    assert got.way_tags == ref.way_tags
    assert [list(t.items()) for t in got.way_tags] == [list(t.items()) for t in ref.way_tags]
    assert got.way_tags is got.way_tags  # parsed once
    assert got.ways_missing_nodes == ref.ways_missing_nodes


@pytest.mark.parametrize("scan_bytes", [3, 7, 4096])
def test_line_scan_in_pieces_finds_every_line(osm_file, monkeypatch, scan_bytes):
    """_opl_lines scans the dump a few MB at a time; pieces of 3, 7 or 4,096 bytes (borders inside every
    field) give the network and facilities of the reader that finds the lines in the whole text at once."""
    import lifecircle.read.osm as osm

    whole = read_osm(osm_file, layers=("network", "facilities"), taxonomy=TAX, walkable=is_walkable)
    monkeypatch.setattr(osm, "_LINE_SCAN_BYTES", scan_bytes)
    pieces = read_osm(osm_file, layers=("network", "facilities"), taxonomy=TAX, walkable=is_walkable)
    for name in ("node_id", "lon", "lat", "u", "v", "way_index"):
        assert np.array_equal(getattr(pieces.network, name), getattr(whole.network, name), equal_nan=True), name
    assert pieces.network.way_tags == whole.network.way_tags
    assert len(pieces.facilities) == len(whole.facilities) and len(whole.network.u) > 0


def test_the_odd_file_by_hand(tmp_path):
    p = tmp_path / "odd.osm"
    p.write_text(ODD, encoding="utf-8")
    net = read_osm(p, layers=("network", "facilities"), taxonomy=TAX, walkable=is_walkable).network
    # ways 10, 11 (node 4 is not in the file: only 3 and 5 are left, not joined), 14; 12 is a motorway,
    # 13 has one node
    assert net.way_highway.tolist() == ["residential", "foot,way", "residential"]
    assert net.node_id.tolist() == [1, 2, 3, 5]
    assert sorted(zip(net.node_id[net.u].tolist(), net.node_id[net.v].tolist())) == [(1, 2), (2, 3), (5, 1)]
    assert net.ways_missing_nodes == 1
    walk = network_from_osm(p, cache=False)
    assert sorted(walk.highway.tolist()) == ["residential", "residential", "residential"]


def test_unique_ids_equals_np_unique():
    rng = np.random.default_rng(3)
    for ids in (rng.integers(0, 50, 1000), rng.integers(-2**40, 2**40, 5000), np.array([7]), np.array([5, 5, 5])):
        ids = ids.astype(np.int64)
        uniq, some, inverse = _unique_ids(ids)
        ref_uniq, _, ref_inverse = np.unique(ids, return_index=True, return_inverse=True)
        assert np.array_equal(uniq, ref_uniq) and np.array_equal(inverse, ref_inverse)
        assert np.array_equal(ids[some], uniq)  # an occurrence of each
