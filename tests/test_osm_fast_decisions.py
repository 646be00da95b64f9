"""read_osm decides every distinct tag set at once (regexes over the joined OPL fields, the walk rule
once per group of tag sets agreeing on every tag it looked at, tags parsed in bulk). These tests hold
it to the plain per-object rules: objects written by hand with the answers worked out by hand, random
tag sets against ``is_walkable`` called on each, and the former per-tag-set code (kept below) on the
real files.
"""

from __future__ import annotations

import re
from xml.sax.saxutils import quoteattr

import numpy as np
import pytest

from lifecircle.datasets import helsinki_osm, toy_town_osm
from lifecircle.read.facilities import load_taxonomy
from lifecircle.read.network import is_walkable
from lifecircle.read.osm import (URBAN_LANDUSE, _bulk_tags, _decide_all, _decide_by_groups, _facility_patterns,
                                 _opl_blocks, _opl_escape, _opl_tags, read_osm)

TAX = load_taxonomy()
_NET, _FAC, _BLD, _BND, _LND, _AREA_NO = 1, 2, 4, 8, 16, 32


def _write_xml(path, nodes, ways):
    """An .osm file: ``nodes`` {id: (lon, lat) or None, tags}, ``ways`` {id: (refs, tags)}."""
    def tags_xml(tags):
        return "".join(f"<tag k={quoteattr(k)} v={quoteattr(v)}/>" for k, v in tags.items())

    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<osm version="0.6">']
    for i, (loc, tags) in nodes.items():
        at = f' lon="{loc[0]}" lat="{loc[1]}"' if loc else ""
        lines.append(f'<node id="{i}" version="1"{at}>{tags_xml(tags)}</node>')
    for i, (refs, tags) in ways.items():
        lines.append(f'<way id="{i}" version="1">' + "".join(f'<nd ref="{r}"/>' for r in refs) + tags_xml(tags)
                     + "</way>")
    lines.append("</osm>")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


ODD = 'a,b=c d%e%20% 中文 é ✓ 😀 "q" back\\slash tab\there'

NODES = {
    1: ((121.40, 31.20), {"highway": "crossing", "amenity": "clinic"}),   # a crossing that is a facility
    2: ((121.41, 31.20), {"name": "静安%20%卫生站 1,2=3"}),                  # keyword in the name, escapes
    3: ((121.42, 31.20), {"name:zh": "某社区卫生服务中心", "shop": "x"}),      # keyword in name:zh only
    4: ((121.43, 31.20), {"name": "南京西路"}),                              # a name without keyword
    5: ((121.44, 31.20), {"note": "卫生站"}),                                # keyword but no name key
    6: (None, {"amenity": "clinic", "name": "卫生站"}),                     # no location
    7: ((121.45, 31.20), {"leisure": "park", "name": ODD}),
    8: ((121.46, 31.20), {"highway": "crossing"}),
    **{100 + i: ((round(121.40 + 0.001 * i, 3), 31.21), {}) for i in range(30)},  # exact in 1e-7 degrees
}
WAYS = {
    10: ([100, 101], {"highway": "residential", "name": "柳林路 2"}),
    11: ([101, 102], {"highway": "residential", "name": "柳林路 3"}),
    12: ([102, 103], {"highway": "trunk", "bridge": "yes", "name": "延安高架路"}),          # elevated: no
    13: ([103, 104], {"highway": "trunk", "bridge": "yes", "layer": "1", "name": "沪青平公路"}),  # over a creek
    14: ([104, 105], {"highway": "trunk_link", "bridge": "yes", "name": "x"}),            # a ramp: no
    15: ([105, 106], {"highway": "trunk_link", "bridge": "yes", "name": "x", "sidewalk": "both"}),
    16: ([106, 107], {"highway": "footway", "access": "private"}),                       # no
    17: ([107, 108], {"highway": "cycleway", "foot": "yes"}),
    18: ([108, 109], {"highway": "footway", "amenity": "clinic"}),                       # network and facility
    19: ([109, 110], {"highway": "service", "name": ODD}),
    20: ([110, 111], {"highway": "crossing"}),
    21: ([111, 112], {"building": "yes"}),                                              # not a road
    22: ([112, 113], {"highway": "trunk", "bridge": "yes", "name": "柳林路 2"}),  # a residential street's name
    23: ([113, 114], {"highway": "motorway", "name": "柳林路 2"}),                       # no
    24: ([114, 115], {"highway": "primary", "sidewalk": "separate"}),                    # no
}
WALKABLE = [10, 11, 13, 15, 17, 18, 19, 20, 22]  # worked out from the walk rules (network.py docstring)


def test_hand_written_objects_come_out_as_worked_out(tmp_path):
    path = _write_xml(tmp_path / "odd.osm", NODES, WAYS)
    got = read_osm(path, layers=("network", "facilities"), taxonomy=TAX, walkable=is_walkable)
    net = got.network
    assert net.way_tags == [WAYS[w][1] for w in WALKABLE]
    assert [list(t.items()) for t in net.way_tags] == [list(WAYS[w][1].items()) for w in WALKABLE]
    assert len(net.u) == len(WALKABLE)  # one segment each
    pairs = sorted(tuple(sorted(net.node_id[[a, b]].tolist())) for a, b in zip(net.u, net.v))
    assert pairs == sorted(tuple(sorted(WAYS[w][0])) for w in WALKABLE)
    lon = dict(zip(net.node_id.tolist(), net.lon.tolist()))
    assert all(lon[n] == NODES[n][0][0] for n in net.node_id.tolist())
    fac = got.facilities
    # nodes first (1: amenity; 2: name + keyword; 3: name:zh + keyword; 7: leisure; 6 has no location), then way 18
    assert list(zip(fac.osm_type.tolist(), fac.osm_id.tolist())) == [
        ("node", 1), ("node", 2), ("node", 3), ("node", 7), ("way", 18)]
    assert fac.tags == [NODES[1][1], NODES[2][1], NODES[3][1], NODES[7][1], WAYS[18][1]]
    assert fac.lon[:4].tolist() == [NODES[i][0][0] for i in (1, 2, 3, 7)]
    assert fac.lat[:4].tolist() == [NODES[i][0][1] for i in (1, 2, 3, 7)]
    assert (fac.lon[4], fac.lat[4]) == pytest.approx((121.4085, 31.21))  # the footway's midpoint


def test_walk_rule_groups_agree_with_calling_it_on_each(monkeypatch):
    """Random tag sets (the keys the walk rule reads, plus names and noise): one call per group
    gives what a call per tag set gives, with far fewer calls."""
    rng = np.random.default_rng(7)
    values = {
        "highway": ["residential", "trunk", "trunk_link", "footway", "cycleway", "motorway", "service", "busway",
                    "construction", "primary"],
        "name": ["柳林路", "延安高架路", "内环路", "沪青平公路", "a,b=c", "x 1", ""],
        "bridge": ["yes", "no", "viaduct"], "layer": ["1", "2", "-1", "x"], "foot": ["yes", "no", "designated"],
        "sidewalk": ["both", "separate", "no"], "sidewalk:left": ["yes", "separate"], "access": ["private", "yes"],
        "ref": ["S20", "G204", "G15;S1", ""], "tunnel": ["yes", "building_passage"], "expressway": ["yes"],
        "area": ["yes"], "service": ["private", "alley"], "oneway": ["yes", "no"], "lanes": ["1", "2", "3"],
        "bridge:name": ["高架桥"], "motorroad": ["yes"],
    }
    keys = list(values)
    tag_sets = []
    for _ in range(3000):
        picked = rng.choice(keys, size=rng.integers(1, 7), replace=False)
        tags = {k: str(rng.choice(values[k])) for k in picked}
        if rng.random() < 0.9:
            tags["highway"] = str(rng.choice(values["highway"]))
        tags["name"] = tags.get("name", "") + str(rng.integers(0, 200)) if rng.random() < 0.7 else tags.get("name", "")
        tag_sets.append({k: v for k, v in tags.items() if k != "name" or v})
    raws = list(dict.fromkeys(b",".join(_opl_escape(k) + b"=" + _opl_escape(v) for k, v in t.items())
                              for t in tag_sets))
    calls = []

    def counted(tags):
        calls.append(1)
        return is_walkable(tags)

    got = _decide_by_groups(raws, counted)
    assert got.tolist() == [is_walkable(_opl_tags(r)) for r in raws]
    assert 0 < len(calls) < len(raws)
    # rules that look at every tag, through iteration, dict() or len(): called on each tag set
    for keep in (lambda t: len(t) % 2 == 0, lambda t: dict(t).get("lanes") == "2",
                 lambda t: any(v.startswith("柳") for v in t.values()), lambda t: t.get(1) is None and "lanes" in t):
        assert _decide_by_groups(raws, keep).tolist() == [bool(keep(_opl_tags(r))) for r in raws]


def test_bulk_tags_equal_the_per_field_parser():
    chars = [chr(c) for c in [*range(0x01, 0x700, 5), 0x22, 0x25, 0x2C, 0x3D, 0x5C, 0x3000, 0x4E2D, 0xFEFF,
                              0x1F600, 0x20000, 0x10FFFF]]
    raws = [b"", b"a=", b"=b"]
    for i, ch in enumerate(chars):
        raws.append(b"k" + str(i).encode() + b"=" + _opl_escape(f"x{ch}y{ch}") + b"," + _opl_escape(f"{ch}key") + b"=v")
    assert _bulk_tags(raws) == [_opl_tags(r) for r in raws]
    assert _bulk_tags([b"name=%4e2d%%6587%,note=100%25%"]) == [{"name": "中文", "note": "100%"}]


# -- the per-tag-set rules read_osm used before (one call per distinct tag set), as the reference

def _old_decide(raw, want, net_keep, fac_keys, fac_words, fac_has_key):
    if not raw:
        return 0, None
    flags, tags = 0, None
    if want & _NET and (raw.startswith(b"highway=") or b",highway=" in raw):
        tags = _opl_tags(raw)
        if net_keep(tags):
            flags |= _NET
    if want & _FAC and fac_keys.search(raw) and (
            fac_words is None or fac_words.search(raw) or (fac_has_key is not None and fac_has_key.search(raw))):
        flags |= _FAC
    if want & _BLD and (b"building=" in raw or b"landuse=" in raw):
        tags = tags or _opl_tags(raw)
        b = tags.get("building")
        if (b is not None and b != "no") or tags.get("landuse") == "residential":
            flags |= _BLD
    if want & _BND and b"boundary=" in raw:
        tags = tags or _opl_tags(raw)
        if tags.get("boundary") == "administrative":
            flags |= _BND
    if want & _LND and b"landuse=" in raw:
        tags = tags or _opl_tags(raw)
        if tags.get("landuse") in URBAN_LANDUSE:
            flags |= _LND
    if flags & (_FAC | _BLD | _BND | _LND) and re.search(rb"(?:^|,)area=no(?:,|$)", raw):
        flags |= _AREA_NO
    return flags, (_opl_tags(raw) if flags else None)


def _old_patterns(keys, words):
    esc = lambda xs: b"|".join(re.escape(_opl_escape(x)) for x in sorted(xs))  # noqa: E731
    fac_words = re.compile(b"|".join(re.escape(_opl_escape(w)) for w in words)) if words else None
    fac_has_key = re.compile(rb"(?:^|,)(?:" + esc(keys) + rb")=") if words and keys else None
    pre = set((*keys, *(("name", "name:zh") if words else ())))
    return re.compile(rb"(?:^|,)(?:" + esc(pre) + rb")=") if pre else re.compile(rb"(?!)"), fac_words, fac_has_key


def _distinct_tag_fields(path):
    import osmium

    lines = b"".join(_opl_blocks(path, [osmium.filter.EmptyTagFilter()])).splitlines()
    raws = [line.split(b" ")[1][1:] for line in lines]
    raws += [b"building=no", b"building=,name=a", b"landuse=retail,area=no", b"boundary=administrative,area=no",
             b"amenity=clinic,area=no", b"boundary=administrativex", b"xbuilding=yes", b"name=%536b%%751f%%7ad9%",
             b"note=%536b%%751f%%7ad9%", b"highway=x,abuilding=yes,landuse=residential"]
    return list(dict.fromkeys(raws))


@pytest.mark.parametrize("which", ["toy", "helsinki", "shanghai", "odd"])
def test_decisions_equal_the_per_tag_set_rules(which, request, tmp_path):
    if which == "shanghai":
        path = request.getfixturevalue("shanghai_pbf")
    elif which == "odd":
        path = _write_xml(tmp_path / "odd.osm", NODES, WAYS)
    else:
        path = toy_town_osm() if which == "toy" else helsinki_osm()
    raws = _distinct_tag_fields(path)
    for keys, words in ((tuple(TAX.keys), tuple(TAX.keywords)), (tuple(TAX.keys), ()), ((), ("卫生", "park")),
                        ((), ())):
        want = _NET | _FAC | _BLD | _BND | _LND
        flags, tags = _decide_all(raws, want, is_walkable, _facility_patterns(keys, words))
        ref = [_old_decide(r, want, is_walkable, *_old_patterns(keys, words)) for r in raws]
        assert flags.tolist() == [f for f, _ in ref], (which, keys, words)
        assert tags == [t for _, t in ref]
        for one in (_NET, _FAC, _BLD | _BND):  # each layer alone
            flags, _ = _decide_all(raws, one, is_walkable, _facility_patterns(keys, words))
            assert flags.tolist() == [_old_decide(r, one, is_walkable, *_old_patterns(keys, words))[0] for r in raws]
