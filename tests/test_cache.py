"""The parsed-network cache: same network back, invalidated by a changed file, never a crash."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest

import lifecircle.read.network as network_mod
from lifecircle.read import cache
from lifecircle.datasets import helsinki_osm, toy_town_osm
from lifecircle.read.network import WALK_FILTER_VERSION, WalkNetwork, network_from_osm
from lifecircle.read.osm import file_sha256


@pytest.fixture()
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("LIFECIRCLE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture()
def parse_count(monkeypatch):
    """Count how often the OSM file is really parsed."""
    calls = []
    real = network_mod.read_way_segments

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(network_mod, "read_way_segments", counting)
    return calls


def _cache_file(path):
    return cache.network_cache_path(file_sha256(path), walk_filter=f"w{WALK_FILTER_VERSION}")


def assert_same_network(a, b):
    for name in ("node_id", "lon", "lat", "x", "y", "u", "v", "length_m"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and np.array_equal(x, y), name
    assert a.highway.tolist() == b.highway.tolist()
    assert a.crs == b.crs and a.crs.to_string() == b.crs.to_string()
    assert a.source == b.source
    assert a.describe() == b.describe()


def test_second_read_comes_from_the_cache_and_equals_the_parse(shanghai_pbf, cache_home, parse_count):
    first = network_from_osm(shanghai_pbf)
    assert _cache_file(shanghai_pbf).is_file() and len(parse_count) == 1
    second = network_from_osm(shanghai_pbf)
    assert len(parse_count) == 1  # not parsed again
    assert_same_network(second, first)
    assert_same_network(second, network_from_osm(shanghai_pbf, cache=False))
    assert second.largest_component_share() == first.largest_component_share()


def test_a_changed_file_is_parsed_again(tmp_path, cache_home, parse_count):
    osm = tmp_path / "town.osm"
    shutil.copy(toy_town_osm(), osm)
    before = network_from_osm(osm)
    # move one street node 0.001° north: same file name, new content
    text = osm.read_text(encoding="utf-8")
    i = text.index('lat="') + len('lat="')
    j = text.index('"', i)
    osm.write_text(text[:i] + f"{float(text[i:j]) + 0.001:.7f}" + text[j:], encoding="utf-8")
    after = network_from_osm(osm)
    assert len(parse_count) == 2
    assert not np.array_equal(before.lat, after.lat)
    assert_same_network(after, network_from_osm(osm, cache=False))
    assert after.source["osm_sha256"] == file_sha256(osm) != before.source["osm_sha256"]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong_arrays"])
def test_a_corrupt_cache_file_is_ignored_with_a_warning(shanghai_pbf, cache_home, parse_count, caplog, damage):
    good = network_from_osm(shanghai_pbf)
    f = _cache_file(shanghai_pbf)
    if damage == "garbage":
        f.write_bytes(b"not a numpy file")
    elif damage == "truncated":
        f.write_bytes(f.read_bytes()[:1000])
    else:
        np.savez(f, format=np.asarray(cache.CACHE_FORMAT), node_id=np.arange(3), lon=np.zeros(2))
    with caplog.at_level(logging.WARNING, logger="lifecircle"):
        again = network_from_osm(shanghai_pbf)
    assert len(parse_count) == 2
    assert_same_network(again, good)
    assert any("unreadable network cache" in r.getMessage() for r in caplog.records)
    # the bad file was replaced by a good one
    assert_same_network(WalkNetwork.from_arrays(cache.load_network(f), source=good.source), good)


def test_custom_walk_filter_is_not_cached(cache_home, parse_count):
    def only_footways(tags):
        return tags.get("highway") == "footway"

    a = network_from_osm(toy_town_osm(), walkable=only_footways)
    b = network_from_osm(toy_town_osm(), walkable=only_footways)
    assert len(parse_count) == 2 and a.n_edges == b.n_edges
    assert not any(cache.network_cache_dir().glob("*.npz"))


def test_unusable_cache_folder_still_gives_the_network(tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("LIFECIRCLE_CACHE", str(blocker / "cache"))
    with caplog.at_level(logging.WARNING, logger="lifecircle"):
        net = network_from_osm(toy_town_osm())
    assert net.n_edges > 0
    assert any("cache unavailable" in r.getMessage() for r in caplog.records)


def test_clear_network_cache(shanghai_pbf, cache_home):
    network_from_osm(shanghai_pbf)
    assert cache.clear_network_cache() == 1
    assert not _cache_file(shanghai_pbf).exists()


def _rewrite_with_old_checksum(f, name, change):
    """Rewrite the cache file with one array changed by ``change`` and every other member (the sha256 too) as it was."""
    with np.load(f, allow_pickle=False) as z:
        members = {k: z[k] for k in z.files}
    before = members[name].copy()
    members[name] = change(members[name].copy())
    assert not np.array_equal(members[name], before) and members[name].shape == before.shape
    np.savez(f, **members)
    return members


@pytest.mark.parametrize("name", ["x", "u", "highway_codes"])
def test_an_altered_cache_file_with_intact_structure_is_rebuilt(cache_home, parse_count, caplog, name):
    osm = helsinki_osm()
    fresh = network_from_osm(osm, cache=False)
    network_from_osm(osm)
    assert len(parse_count) == 2
    f = _cache_file(osm)

    def change(a):
        if name == "x":
            a[len(a) // 2] += 25.0  # one node moved 25 m east
        else:  # another valid value: an edge to another node, a footway made a primary road
            a[len(a) // 3] = (a[len(a) // 3] + 1) % (a.max() + 1)
        return a

    members = _rewrite_with_old_checksum(f, name, change)
    # the damage keeps the structure: a plain reader would accept it (every array, right lengths, valid endpoints)
    n, m = len(members["node_id"]), len(members["u"])
    assert len(members["x"]) == n and len(members[name]) == (n if name == "x" else m)
    assert max(members["u"].max(), members["v"].max()) < n and members["highway_codes"].max() < len(
        members["highway_categories"])
    with caplog.at_level(logging.WARNING, logger="lifecircle"):
        again = network_from_osm(osm)
    assert len(parse_count) == 3  # parsed again, the altered file not used
    assert_same_network(again, fresh)
    assert any("network cache" in r.getMessage() and "sha256" in r.getMessage() for r in caplog.records)
    # the altered file was deleted and a good one written in its place
    assert cache.load_arrays(f)["highway_codes"].shape == (fresh.n_edges,)  # its checksum matches
    assert_same_network(WalkNetwork.from_arrays(cache.load_network(f), source=fresh.source), fresh)
    network_from_osm(osm)
    assert len(parse_count) == 3  # and is used next time


def test_arrays_checksum_covers_values_dtypes_shapes_and_names():
    import hashlib
    import json

    a = {"x": np.array([1.5, -2.0]), "crs": np.asarray("EPSG:32651"), "u": np.arange(4, dtype=np.int64)}
    # worked out independently: sha256 over (header length, JSON header, bytes) per array, names sorted
    h = hashlib.sha256()
    for name in ("crs", "u", "x"):
        arr = a[name]
        data = arr.tobytes()
        header = json.dumps([name, arr.dtype.str, list(arr.shape), len(data)]).encode()
        h.update(len(header).to_bytes(8, "little") + header + data)
    assert cache.arrays_sha256(a) == h.hexdigest()
    variants = [
        {**a, "x": np.array([1.5, -2.0000001])},
        {**a, "u": a["u"].astype(np.int32)},
        {**a, "u": a["u"].reshape(2, 2)},
        {"y": a["x"], "crs": a["crs"], "u": a["u"]},
        {"x": a["x"], "u": a["u"]},
        {**a, "crs": np.asarray("EPSG:32650")},
        {**a, "crs": np.asarray(["EPSG:32651"])},  # shape (1,) instead of ()
    ]
    digests = {cache.arrays_sha256(v) for v in variants} | {cache.arrays_sha256(a)}
    assert len(digests) == len(variants) + 1
    m = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert cache.arrays_sha256({"m": np.asfortranarray(m)}) == cache.arrays_sha256({"m": m})  # values, not layout
    with pytest.raises(TypeError, match="Python objects"):
        cache.arrays_sha256({"h": np.array(["a", None], dtype=object)})


def test_cached_highway_values_read_back_exactly_none_empty_and_nan_apart(tmp_path):
    """The highway column is stored as codes: None, "" and a float NaN (a hand-made network) stay three things."""
    hw = np.array(["footway", None, "", float("nan"), "primary", None, "footway"], dtype=object)
    n = len(hw)
    net = WalkNetwork.from_lonlat(np.linspace(121.40, 121.41, n + 1), np.full(n + 1, 31.2), np.arange(n),
                                  np.arange(1, n + 1), highway=hw)
    f = tmp_path / "net.npz"
    cache.save_network(net, f)
    back = WalkNetwork.from_arrays(cache.load_network(f), source=net.source).highway.tolist()
    assert back == ["footway", None, "", "nan", "primary", None, "footway"]  # NaN as its text, as str() wrote it
