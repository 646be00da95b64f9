"""The bulk OSM readers (libosmium → OPL → numpy) return exactly what plain per-object pyosmium returns.

The reference readers below are the straightforward loops lifecircle used before (one Python call per
way node and per tag): slow, but obviously right. Every array must match bit for bit, and features
must come out in the same order with the same tags.
"""

from __future__ import annotations

import numpy as np
import pytest

from lifecircle.datasets import helsinki_osm, toy_town_osm
from lifecircle.read.network import is_walkable, network_from_osm
from lifecircle.read.osm import iter_features, read_way_segments


def reference_way_segments(path, keep, key="highway"):
    """Per-way, per-node pyosmium loop: (node_id, lon, lat, u, v, way_index, tags, missing)."""
    import osmium

    refs, lons, lats, tags_list, missing = [], [], [], [], 0
    fp = (osmium.FileProcessor(str(path), osmium.osm.NODE | osmium.osm.WAY).with_locations()
          .with_filter(osmium.filter.EntityFilter(osmium.osm.WAY)).with_filter(osmium.filter.KeyFilter(key)))
    for w in fp:
        tags = dict(w.tags)
        if not keep(tags) or len(w.nodes) < 2:
            continue
        r = [nd.ref for nd in w.nodes]
        lo = [nd.location.lon if nd.location.valid() else np.nan for nd in w.nodes]
        la = [nd.location.lat if nd.location.valid() else np.nan for nd in w.nodes]
        missing += bool(np.isnan(lo).any())
        refs.append(r); lons.append(lo); lats.append(la); tags_list.append(tags)
    # segments between consecutive located nodes; nodes numbered in ascending id order
    ids = sorted({r for rr, lo in zip(refs, lons) for r, x in zip(rr, lo) if x == x})
    index = {r: i for i, r in enumerate(ids)}
    where = {}
    u, v, way_index = [], [], []
    for k, (rr, lo, la) in enumerate(zip(refs, lons, lats)):
        for a in range(len(rr)):
            if lo[a] == lo[a]:
                where.setdefault(rr[a], (lo[a], la[a]))
        for a in range(len(rr) - 1):
            if lo[a] == lo[a] and lo[a + 1] == lo[a + 1]:
                u.append(index[rr[a]]); v.append(index[rr[a + 1]]); way_index.append(k)
    lon = [where[r][0] for r in ids]
    lat = [where[r][1] for r in ids]
    return ids, lon, lat, u, v, way_index, tags_list, missing


def reference_features(path, keep, keys=()):
    """One pass over every object, as lifecircle did before: (type, id, lon, lat, tags)."""
    import osmium
    import shapely

    out = []
    wkb_factory = osmium.geom.WKBFactory()
    fp = osmium.FileProcessor(str(path)).with_locations().with_areas()
    if keys:
        fp = fp.with_filter(osmium.filter.KeyFilter(*keys))
    for o in fp:
        if o.is_relation() or len(o.tags) == 0:
            continue
        tags = dict(o.tags)
        if not keep(tags):
            continue
        if o.is_node():
            if o.location.valid():
                out.append(("node", o.id, o.location.lon, o.location.lat, tags))
        elif o.is_way():
            if o.is_closed() and len(o.nodes) >= 4:
                continue
            coords = [(n.lon, n.lat) for n in o.nodes if n.location.valid()]
            if not coords:
                continue
            line = shapely.LineString(coords) if len(coords) > 1 else shapely.Point(coords[0])
            pt = line.interpolate(0.5, normalized=True) if len(coords) > 1 else line
            out.append(("way", o.id, pt.x, pt.y, tags))
        elif o.is_area():
            try:
                geom = shapely.from_wkb(wkb_factory.create_multipolygon(o))
            except RuntimeError:
                continue
            pt = geom.representative_point()
            out.append(("way" if o.from_way() else "relation", o.orig_id(), pt.x, pt.y, tags))
    return out


def _clipped_copy(src, dst, keep_fraction=0.5):
    """Copy ``src`` dropping the eastern nodes, so that ways reference nodes missing from the file."""
    import osmium

    lons = [n.location.lon for n in osmium.FileProcessor(str(src), osmium.osm.NODE) if n.location.valid()]
    cut = float(np.quantile(lons, keep_fraction))
    with osmium.SimpleWriter(str(dst)) as w:
        for o in osmium.FileProcessor(str(src)):
            if o.is_node():
                if o.location.valid() and o.location.lon <= cut:
                    w.add_node(o)
            elif o.is_way():
                w.add_way(o)
            else:
                w.add_relation(o)
    return dst


def _assert_segments_equal(path, keep=is_walkable):
    got = read_way_segments(path, keep)
    ids, lon, lat, u, v, way_index, tags, missing = reference_way_segments(path, keep)
    assert got.node_id.tolist() == ids
    assert np.array_equal(got.lon, np.asarray(lon)) and np.array_equal(got.lat, np.asarray(lat))
    assert got.u.tolist() == u and got.v.tolist() == v
    assert got.way_index.tolist() == way_index
    assert got.way_tags == tags
    assert got.ways_missing_nodes == missing
    return got


@pytest.mark.parametrize("which", ["toy_town", "helsinki"])
def test_way_segments_match_per_node_loop(which):
    path = toy_town_osm() if which == "toy_town" else helsinki_osm()
    got = _assert_segments_equal(path)
    assert len(got.u) > 0


def test_way_segments_match_on_shanghai_with_chinese_names(shanghai_pbf):
    got = _assert_segments_equal(shanghai_pbf)
    # the elevated expressways (Chinese names, trunk + bridge) are dropped the same way
    assert all("高架" not in t.get("name", "") for t in got.way_tags if t.get("highway") == "trunk")
    assert any("路" in t.get("name", "") for t in got.way_tags)


def test_way_segments_match_when_nodes_are_missing(shanghai_pbf, tmp_path):
    clipped = _clipped_copy(shanghai_pbf, tmp_path / "clipped.osm.pbf")
    got = _assert_segments_equal(clipped)
    assert got.ways_missing_nodes > 0
    assert np.isfinite(got.lon).all()


def test_tags_with_escaped_characters(tmp_path):
    """OPL escapes ',', '=', ' ', '%' and non-Latin text; the tags must come back unchanged."""
    import osmium
    from osmium.osm.mutable import Node, Way

    path = tmp_path / "escapes.osm.pbf"
    odd = {"highway": "footway", "name": "a,b=c d%e 中文 é ✓", "note": "100%", "k y": "x=y"}
    with osmium.SimpleWriter(str(path)) as w:
        w.add_node(Node(id=1, location=(121.40, 31.20), tags={"amenity": "clinic", "name": "卫生站 1,2"}))
        w.add_node(Node(id=2, location=(121.41, 31.20)))
        w.add_way(Way(id=10, nodes=[1, 2], tags=odd))
    segs = read_way_segments(path, lambda t: True)
    assert segs.way_tags == [odd]
    feats = list(iter_features(path, lambda t: "amenity" in t))
    assert [(f.osm_type, f.osm_id, f.tags) for f in feats] == [("node", 1, {"amenity": "clinic", "name": "卫生站 1,2"})]


def _same_features(got, ref):
    assert [(f.osm_type, f.osm_id, f.tags) for f in got] == [(t, i, tags) for t, i, _, _, tags in ref]
    assert np.array_equal([f.lon for f in got], [r[2] for r in ref])
    assert np.array_equal([f.lat for f in got], [r[3] for r in ref])


def test_features_match_single_pass_in_order():
    """Helsinki has nodes, open and closed ways and multipolygon relations."""
    def keep(tags):
        return "amenity" in tags or "leisure" in tags or "name" in tags

    ref = reference_features(helsinki_osm(), keep)
    got = list(iter_features(helsinki_osm(), keep))
    assert {f.osm_type for f in got} == {"node", "way", "relation"}
    _same_features(got, ref)


def test_buildings_match_single_pass_with_keys():
    def keep(tags):
        return tags.get("building", "no") != "no" or tags.get("landuse") == "residential"

    keys = ("building", "landuse")
    ref = reference_features(helsinki_osm(), keep, keys)
    got = list(iter_features(helsinki_osm(), keep, keys=keys, with_geometry=True))
    assert len(got) > 100 and all(f.wkb for f in got if f.osm_type != "node")
    _same_features(got, ref)


def test_network_unchanged_from_per_node_reader(shanghai_pbf):
    """The network built on the bulk reader equals one built from the reference arrays."""
    from lifecircle.read.network import WalkNetwork

    net = network_from_osm(shanghai_pbf, cache=False)
    ids, lon, lat, u, v, way_index, tags, _ = reference_way_segments(shanghai_pbf, is_walkable)
    hw = np.array([t.get("highway") for t in tags], dtype=object)[way_index]
    ref = WalkNetwork.from_lonlat(lon, lat, u, v, node_id=ids, highway=hw)
    assert np.array_equal(net.node_id, ref.node_id)
    for name in ("lon", "lat", "x", "y", "u", "v", "length_m"):
        assert np.array_equal(getattr(net, name), getattr(ref, name)), name
    assert net.highway.tolist() == ref.highway.tolist()


def test_name_keywords_prefilter_keeps_the_same_facilities(shanghai_pbf, tmp_path):
    """``keys`` + ``name_keywords`` must find what a scan of every tagged object finds."""
    from lifecircle.read.facilities import load_taxonomy

    tax = load_taxonomy()
    keys = set(tax.keys)

    def keep(tags):
        name = tags.get("name") or tags.get("name:zh")
        return bool(keys.intersection(tags)) or (bool(name) and any(k in name for k in tax.keywords))

    ref = reference_features(helsinki_osm(), keep)
    got = list(iter_features(helsinki_osm(), keep, keys=tax.keys, name_keywords=tax.keywords))
    _same_features(got, ref)
    # Chinese names: a clinic known only by its name, a street, and a tagged library
    import osmium
    from osmium.osm.mutable import Node

    path = tmp_path / "names.osm.pbf"
    with osmium.SimpleWriter(str(path)) as w:
        w.add_node(Node(id=1, location=(121.40, 31.20), tags={"name": "静安区江宁路街道社区卫生服务中心"}))
        w.add_node(Node(id=2, location=(121.41, 31.20), tags={"name": "南京西路", "highway": "crossing"}))
        w.add_node(Node(id=3, location=(121.42, 31.20), tags={"amenity": "library"}))
    got = list(iter_features(path, keep, keys=tax.keys, name_keywords=tax.keywords))
    assert [f.osm_id for f in got] == [1, 3] == [r[1] for r in reference_features(path, keep)]


def test_snapping_index_finds_the_nearest_segment_like_brute_force(shanghai_network):
    """The k-d tree search equals measuring every segment (ties: lowest edge index)."""
    from lifecircle.measure.snapping import snap_points

    net = shanghai_network
    rng = np.random.default_rng(7)
    lon0, lon1, lat0, lat1 = net.lon.min(), net.lon.max(), net.lat.min(), net.lat.max()
    # points inside, around and far outside the network, plus points exactly on nodes (ties)
    lon = np.concatenate([rng.uniform(lon0 - 0.02, lon1 + 0.02, 400), [lon1 + 0.3, lon0 - 1.0], net.lon[:50]])
    lat = np.concatenate([rng.uniform(lat0 - 0.02, lat1 + 0.02, 400), [lat1 + 0.2, lat0], net.lat[:50]])
    s = snap_points(net, lon, lat, max_snap_m=1e9)
    ax, ay = net.x[net.u], net.y[net.u]
    dx, dy = net.x[net.v] - ax, net.y[net.v] - ay
    l2 = dx * dx + dy * dy
    px, py = s.x[:, None], s.y[:, None]
    t = np.clip(np.where(l2 > 0, ((px - ax) * dx + (py - ay) * dy) / np.where(l2 > 0, l2, 1), 0.0), 0, 1)
    d = np.hypot(ax + t * dx - px, ay + t * dy - py)  # every point to every segment
    best = d.min(axis=1)
    assert np.array_equal(s.dist_m, best)
    assert np.array_equal(s.edge, np.argmax(d == best[:, None], axis=1))  # first minimum = lowest index
    assert np.array_equal(s.t, t[np.arange(len(lon)), s.edge])
    assert (s.dist_m[-50:] == 0).all()


def test_opl_escaping_matches_libosmium(tmp_path):
    """The keyword prefilter searches raw OPL text, so our escaping must equal libosmium's."""
    import osmium
    from osmium.osm.mutable import Node

    from lifecircle.read.osm import _opl_blocks, _opl_escape, _opl_tags

    chars = [chr(c) for c in [*range(0x20, 0x700, 3), 0x3000, 0x4E2D, 0x793E, 0xFEFF, 0xFF0C, 0x1F600, 0x20000]]
    path = tmp_path / "chars.osm.pbf"
    with osmium.SimpleWriter(str(path)) as w:
        for i, ch in enumerate(chars):
            w.add_node(Node(id=i + 1, location=(121.4, 31.2), tags={"name": f"a{ch}b"}))
    lines = b"".join(_opl_blocks(path, [osmium.filter.EmptyTagFilter()])).splitlines()
    assert len(lines) == len(chars)
    for ch, line in zip(chars, lines):
        raw = line.split(b" ")[1][1:]
        assert raw == b"name=" + _opl_escape(f"a{ch}b"), hex(ord(ch))
        assert _opl_tags(raw) == {"name": f"a{ch}b"}
