"""The walk filter on hand-written OSM files: lifecycle tags, sidewalks, ordinary vs elevated trunk bridges."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse.csgraph import connected_components

from lifecircle import is_walkable, network_from_osm
from lifecircle.read.network import WALK_FILTER_VERSION

from conftest import lonlat


def _osm(path, ways):
    """An OSM XML file: ``ways`` = list of (list of (x, y) metres on the toy grid, tags)."""
    nodes, lines, ids = {}, [], iter(range(1, 10_000))
    body = []
    for pts, tags in ways:
        refs = []
        for xy in pts:
            if xy not in nodes:
                nodes[xy] = next(ids)
                lo, la = lonlat(*xy)
                lines.append(f'  <node id="{nodes[xy]}" lat="{float(la):.9f}" lon="{float(lo):.9f}" version="1"/>')
            refs.append(nodes[xy])
        w = [f'  <way id="{next(ids) + 100_000}" version="1">'] + [f'    <nd ref="{r}"/>' for r in refs]
        w += [f'    <tag k="{k}" v="{v}"/>' for k, v in tags.items()] + ["  </way>"]
        body += w
    path.write_text('<?xml version="1.0" encoding="UTF-8"?>\n<osm version="0.6" generator="test">\n'
                    + "\n".join(lines + body) + "\n</osm>\n", encoding="utf-8")
    return path


# two streets on either side of a 30 m creek (x = 100..130), joined only by the way under test
_WEST = ([(0, 0), (100, 0)], {"highway": "residential", "name": "西街"})
_EAST = ([(130, 0), (230, 0)], {"highway": "residential", "name": "东街"})


@pytest.mark.parametrize("bridge_tags, crosses", [
    # ordinary ground-level bridges over a creek: walkable (the suburbs' only crossing)
    ({"highway": "trunk", "bridge": "yes", "layer": "1", "name": "沪青平公路"}, True),
    ({"highway": "trunk", "bridge": "yes", "name": "沪青平公路", "ref": "G318"}, True),  # a national road, not an expressway
    ({"highway": "trunk", "bridge": "yes", "ref": "G318"}, True),
    ({"highway": "trunk_link", "bridge": "yes", "name": "嘉松中路", "sidewalk": "both"}, True),
    # elevated expressways and their ramps: not walkable
    ({"highway": "trunk", "bridge": "yes", "layer": "1", "name": "延安高架路"}, False),
    ({"highway": "trunk", "bridge": "yes", "layer": "1", "name": "中环路"}, False),  # elevated without 高架
    ({"highway": "trunk", "bridge": "yes", "name": "沪青平公路", "layer": "2"}, False),
    ({"highway": "trunk", "bridge": "viaduct", "name": "沪青平公路"}, False),
    ({"highway": "trunk", "bridge": "yes", "name": "沪青平公路", "expressway": "yes"}, False),
    ({"highway": "trunk", "bridge": "yes", "name": "外环线", "ref": "S20"}, False),
    ({"highway": "trunk", "ref": "G15;G1501"}, False),  # an expressway at grade
    ({"highway": "trunk", "bridge": "yes", "name": "沪青平公路", "motorroad": "yes"}, False),
    ({"highway": "trunk", "bridge": "yes"}, False),  # unnamed: part of an elevated road
    ({"highway": "trunk_link", "bridge": "yes", "name": "嘉松中路"}, False),  # a ramp
    ({"highway": "trunk", "bridge": "yes", "name": "南北高架路", "sidewalk": "both"}, False),
    ({"highway": "trunk", "tunnel": "yes", "name": "沪青平公路"}, False),
    # sidewalks never make a motorway walkable; separate sidewalks take the carriageway out (OSMnx)
    ({"highway": "motorway", "sidewalk": "both"}, False),
    ({"highway": "motorway_link", "sidewalk": "separate"}, False),
    ({"highway": "primary", "sidewalk": "separate"}, False),
    ({"highway": "primary", "sidewalk:left": "separate", "sidewalk:right": "no"}, False),
    ({"highway": "cycleway", "sidewalk": "right"}, True),
    ({"highway": "primary", "sidewalk": "both"}, True),
    # not (yet, or any longer) a road: never walkable, whatever foot says (Helsinki has two)
    ({"highway": "construction", "construction": "cycleway", "foot": "designated"}, False),
    ({"highway": "proposed", "proposed": "footway", "foot": "yes"}, False),
    ({"highway": "abandoned", "foot": "yes"}, False),
    # road works on a road in use: kept, as in OSMnx
    ({"highway": "residential", "construction": "minor"}, True),
    ({"highway": "trunk", "proposed": "motorway", "name": "沪青平公路"}, True),
])
def test_creek_crossing(tmp_path, bridge_tags, crosses):
    path = _osm(tmp_path / "creek.osm", [_WEST, ([(100, 0), (130, 0)], bridge_tags), _EAST])
    assert is_walkable(bridge_tags) is crosses
    net = network_from_osm(path, cache=False)
    n_comp, _ = connected_components(net.matrix(), directed=False)
    assert n_comp == (1 if crosses else 2)
    assert net.length_m.sum() == pytest.approx(230.0 if crosses else 200.0, abs=0.05)


def test_filter_version_bumped():
    """Cached networks made with version 1 (trunk bridges all dropped, sidewalk=separate walkable) are rebuilt."""
    assert WALK_FILTER_VERSION >= 2


def test_shanghai_sample_unchanged_by_the_bridge_rule(shanghai_network):
    """Every trunk bridge of the central sample is 延安高架路/南北高架路 or an unnamed ramp: all still dropped,
    so the sample's walking network is unchanged (2,019 edges, 72.19 km, as before the rule changed)."""
    import osmium

    class Trunks(osmium.SimpleHandler):
        def __init__(self):
            super().__init__()
            self.tags = []

        def way(self, w):
            t = dict(w.tags)
            if t.get("highway") in ("trunk", "trunk_link") and t.get("bridge", "no") != "no":
                self.tags.append(t)

    h = Trunks()
    h.apply_file(str(shanghai_network.source["osm_file"]))
    assert len(h.tags) == 76  # the 76 ways with a bridge tag are all trunk / trunk_link
    named = {t.get("name") for t in h.tags if t.get("name")}
    assert named == {"延安高架路", "南北高架路"}
    assert not any(is_walkable(t) for t in h.tags)
    assert shanghai_network.n_edges == 2019
    assert shanghai_network.length_m.sum() / 1000 == pytest.approx(72.186, abs=0.001)
    assert "trunk" not in set(shanghai_network.highway)
