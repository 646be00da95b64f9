"""Read OpenStreetMap files (.osm.pbf, .osm, .osm.bz2) and download regional extracts."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping

import numpy as np

from ..errors import DownloadError, InputFileError

log = logging.getLogger("lifecircle")

__all__ = [
    "OSM_SUFFIXES",
    "check_osm_path",
    "file_sha256",
    "WaySegments",
    "read_way_segments",
    "OSMFeature",
    "iter_features",
    "cache_dir",
    "fetch_extract",
    "OSM_CREDIT",
]

OSM_SUFFIXES = (".osm.pbf", ".pbf", ".osm", ".osm.bz2", ".osm.gz", ".xml")
OSM_CREDIT = "© OpenStreetMap contributors (ODbL 1.0)"


def check_osm_path(path: str | os.PathLike[str]) -> Path:
    """Return ``path`` as a :class:`~pathlib.Path` after checking it is a readable OSM file."""
    p = Path(path)
    if not p.exists():
        raise InputFileError(
            f"OSM file not found: {p}; give an .osm.pbf/.osm/.osm.bz2 file, or download one "
            "with `lifecircle fetch NAME`"
        )
    if not p.is_file():
        raise InputFileError(f"OSM path {p} is a directory; give the .osm.pbf/.osm file inside it")
    if not any(p.name.lower().endswith(s) for s in OSM_SUFFIXES):
        raise InputFileError(
            f"{p.name} does not look like an OSM file: expected one of {', '.join(OSM_SUFFIXES)}"
        )
    if p.stat().st_size == 0:
        raise InputFileError(f"OSM file {p} is empty; download it again")
    return p


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file, read in 1 MiB blocks (recorded in every output)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _corrupt(path: Path, exc: Exception) -> InputFileError:
    return InputFileError(
        f"cannot read OSM file {path}: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r}; "
        "the file is corrupt or not OSM data — download it again"
    )


# ---------------------------------------------------------------------------------------------
# Bulk reading. pyosmium hands every object to Python as a wrapper whose tags and node lists are
# read one item at a time (``dict(way.tags)`` costs ~20 µs, each ``way.nodes[i]`` ~2 µs), which
# made a 1,000,000-node city take 12 s to parse. Instead, libosmium itself (C++) filters the file
# and writes the matching objects as OPL text (one line per object, node locations inlined) to a
# scratch file; Python then reads one short line per object and parses all coordinates in one
# numpy call. No per-node Python work is left.

# OPL way-node lists "n12x121.4y31.2,n13x...,n14xy" (empty x/y: location missing) -> numbers
_NODE_LIST_TO_NUMBERS = bytes.maketrans(b"nxy,", b"    ")
_MISSING = -999.0  # stands for a missing coordinate while parsing (never a valid lon/lat)
_MISSING_XY = b"x-999y-999"


def _opl_unescape(text: str) -> str:
    """Undo OPL's ``%hex%`` escaping of tag keys and values (``%2c%`` is a comma, ``%4e2d%`` 中).

    >>> _opl_unescape("a%2c%b%20%%4e2d%%6587%")
    'a,b 中文'
    """
    if "%" not in text:
        return text
    parts = text.split("%")  # "%" only delimits escapes, so every odd part is a code point
    parts[1::2] = [chr(int(h, 16)) for h in parts[1::2]]
    return "".join(parts)


def _opl_escape(text: str) -> bytes:
    """OPL's escaping of a string (libosmium ``append_utf8_encoded_string``), to search raw OPL text."""
    out = []
    for ch in text:
        c = ord(ch)
        if (0x21 <= c <= 0x24 or 0x26 <= c <= 0x2B or 0x2D <= c <= 0x3C or 0x3E <= c <= 0x3F
                or 0x41 <= c <= 0x7E or 0xA1 <= c <= 0xAC or 0xAE <= c <= 0x05FF):
            out.append(ch)
        else:
            out.append("%" + (f"{c:02x}" if c <= 0xFF else f"{c:04x}" if c <= 0xFFFF else f"{c:x}") + "%")
    return "".join(out).encode("utf-8")


def _opl_tags(section: bytes) -> dict[str, str]:
    """Tags of an OPL ``T`` field (without its leading ``T``).

    >>> _opl_tags(b"highway=residential,name=%5357%%4eac%%897f%%8def%,note=a%2c%b")
    {'highway': 'residential', 'name': '南京西路', 'note': 'a,b'}
    """
    if not section:
        return {}
    text = section.decode("utf-8")
    if "%" in text:
        if "%2c%" in text or "%3d%" in text:  # an escaped "," or "=": unescape each key and value
            return {_opl_unescape(k): _opl_unescape(v) for k, v in (kv.split("=", 1) for kv in text.split(","))}
        text = _opl_unescape(text)  # no escaped separator: unescape the whole field at once
    return dict(kv.split("=", 1) for kv in text.split(","))


def _scratch_dir() -> str | None:
    """A RAM-backed folder for the OPL scratch file when there is one (Linux ``/dev/shm``)."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


def _opl_blocks(path: Path, filters: list, *, entities=None, locations: bool = False, block_bytes: int = 1 << 24
                ) -> Iterator[bytes]:
    """Run ``filters`` over the file in libosmium; yield the surviving objects as OPL text, whole lines per block.

    Objects keep file order (nodes, ways, relations). With ``locations`` every way node carries its
    coordinates (``n12x121.4y31.2``; ``n12xy`` when the node is not in the file).
    """
    import osmium

    fd, tmp = tempfile.mkstemp(prefix="lifecircle-", suffix=".opl", dir=_scratch_dir())
    os.close(fd)
    os.unlink(tmp)  # libosmium refuses to overwrite
    try:
        fmt = "opl,add_metadata=false" + (",locations_on_ways=true" if locations else "")
        writer = osmium.SimpleWriter(osmium.io.File(tmp, fmt))
        try:
            fp = osmium.FileProcessor(str(path), entities if entities is not None else osmium.osm.ALL)
            if locations:
                fp = fp.with_locations()
            for f in filters:
                fp = fp.with_filter(f)
            # the writer sees what passed; nothing at all comes back to Python
            fp = fp.with_filter(writer).with_filter(osmium.filter.EntityFilter(osmium.osm.NOTHING))
            for _ in fp:
                pass
        finally:
            writer.close()
        with open(tmp, "rb") as fh:
            rest = b""
            while True:
                block = fh.read(block_bytes)
                if not block:
                    break
                block = rest + block
                cut = block.rfind(b"\n") + 1
                rest = block[cut:]
                if cut:
                    yield block[:cut]
            if rest:
                yield rest + b"\n"
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


_OPL_WAY = re.compile(rb"^w-?\d+ T(\S*) N(\S*)$", re.MULTILINE)
_UNSEEN: dict[str, str] = {}


def _parse_node_lists(node_lists: list[bytes]):
    """Refs, lon, lat of OPL way-node lists (NaN where the node is missing), nodes per way, ways missing nodes."""
    counts = np.fromiter((s.count(b",") + 1 for s in node_lists), dtype=np.int64, count=len(node_lists))
    text = b",".join(node_lists)
    n_missing = 0
    if b"xy" in text:  # a node outside the extract: no coordinates
        n_missing = sum(b"xy" in s for s in node_lists)
        text = text.replace(b"xy", _MISSING_XY)
    numbers = np.fromstring(text.translate(_NODE_LIST_TO_NUMBERS), sep=" ")
    if numbers.size != 3 * counts.sum():
        return None, None, None, None, 0
    numbers = numbers.reshape(-1, 3)
    lon = np.ascontiguousarray(numbers[:, 1])
    lat = np.ascontiguousarray(numbers[:, 2])
    if n_missing:
        lon[lon == _MISSING] = np.nan
        lat[lat == _MISSING] = np.nan
    return numbers[:, 0].astype(np.int64), lon, lat, counts, n_missing


@dataclass(frozen=True)
class WaySegments:
    """Straight segments of the OSM ways kept by a filter, as flat arrays.

    ``node_id``/``lon``/``lat`` describe the distinct nodes used; ``u``/``v`` index into them
    (one row per pair of consecutive way nodes); ``way_index`` points into ``way_tags``.
    """

    node_id: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    u: np.ndarray
    v: np.ndarray
    way_index: np.ndarray
    way_tags: list[dict[str, str]]
    ways_missing_nodes: int


def read_way_segments(
    path: str | os.PathLike[str], keep: Callable[[Mapping[str, str]], bool], *, key: str = "highway"
) -> WaySegments:
    """Read every way having tag ``key`` for which ``keep(tags)`` is true, as segments.

    Nodes outside the extract (clipped files reference them without a location) are
    dropped with the segments that touch them; the count of such ways is reported.
    ``keep`` runs once per distinct tag set (ways sharing all their tags share the decision).

    Examples
    --------
    >>> from lifecircle.datasets import toy_town_osm
    >>> s = read_way_segments(toy_town_osm(), lambda tags: tags.get("highway") == "footway")
    >>> len(s.way_tags), len(s.u) > 0, s.ways_missing_nodes
    (2, True, 0)
    """
    import osmium

    p = check_osm_path(path)
    tags_list: list[dict[str, str]] = []
    refs, lons, lats, lengths_parts = [], [], [], []
    missing = 0
    decided: dict[bytes, dict[str, str] | None] = {}  # raw OPL tag field -> the tags if kept, else None
    try:
        for block in _opl_blocks(
            p, [osmium.filter.EntityFilter(osmium.osm.WAY), osmium.filter.KeyFilter(key)],
            entities=osmium.osm.NODE | osmium.osm.WAY, locations=True,
        ):
            node_lists: list[bytes] = []
            for raw, nodes in _OPL_WAY.findall(block):
                tags = decided.get(raw, _UNSEEN)
                if tags is _UNSEEN:
                    tags = _opl_tags(raw)
                    tags = decided[raw] = tags if keep(tags) else None
                if tags is None or b"," not in nodes:  # dropped, or fewer than 2 nodes
                    continue
                node_lists.append(nodes)
                tags_list.append(tags)
            if not node_lists:
                continue
            ref, lon, lat, counts, n_missing = _parse_node_lists(node_lists)
            if ref is None:
                raise RuntimeError("unexpected way node list in the OPL dump")
            refs.append(ref); lons.append(lon); lats.append(lat); lengths_parts.append(counts)
            missing += n_missing
    except RuntimeError as exc:
        raise _corrupt(p, exc) from None
    if not refs:
        empty_i = np.empty(0, dtype=np.int64)
        return WaySegments(empty_i, np.empty(0), np.empty(0), empty_i, empty_i, empty_i, [], 0)
    all_ref = np.concatenate(refs)
    all_lon = np.concatenate(lons)
    all_lat = np.concatenate(lats)
    lengths = np.concatenate(lengths_parts)
    del refs, lons, lats
    way_of_pos = np.repeat(np.arange(len(lengths)), lengths)
    # consecutive pairs inside one way, both ends located
    start = np.ones(len(all_ref), dtype=bool)
    start[np.cumsum(lengths)[:-1]] = False
    start[0] = False
    pair_ok = start[1:] & ~np.isnan(all_lon[:-1]) & ~np.isnan(all_lon[1:])
    # (position i, i+1) is a segment when pair_ok[i]; positions sharing a ref share a node
    located = ~np.isnan(all_lon)
    node_id, first_pos, inverse = np.unique(all_ref[located], return_index=True, return_inverse=True)
    pos_to_node = np.full(len(all_ref), -1, dtype=np.int64)
    pos_to_node[located] = inverse
    lon_loc = all_lon[located][first_pos]
    lat_loc = all_lat[located][first_pos]
    seg_pos = np.flatnonzero(pair_ok)
    u = pos_to_node[seg_pos]
    v = pos_to_node[seg_pos + 1]
    return WaySegments(
        node_id=node_id,
        lon=lon_loc,
        lat=lat_loc,
        u=u,
        v=v,
        way_index=way_of_pos[seg_pos],
        way_tags=tags_list,
        ways_missing_nodes=missing,
    )


@dataclass(frozen=True)
class OSMFeature:
    """One tagged OSM object reduced to a representative point (WGS84)."""

    osm_type: str
    osm_id: int
    lon: float
    lat: float
    tags: dict[str, str]
    area_m2: float | None = None
    wkb: bytes | None = None


def _area_id(osm_id: int, from_relation: int) -> int:
    """libosmium's id of the area made from a way (``from_relation=0``) or a relation (1)."""
    a = 2 * abs(osm_id) + from_relation
    return -a if osm_id < 0 else a


def _float_or_nan(text: bytes) -> float:
    return float(text) if text else float("nan")


def iter_features(
    path: str | os.PathLike[str],
    keep: Callable[[Mapping[str, str]], bool],
    *,
    keys: tuple[str, ...] = (),
    name_keywords: tuple[str, ...] = (),
    with_geometry: bool = False,
) -> Iterator[OSMFeature]:
    """Yield nodes, ways and (multipolygon) relations for which ``keep(tags)`` holds.

    Nodes keep their position; closed ways and multipolygon relations become areas
    reduced to a point inside them (``shapely.Polygon.representative_point``); open ways
    use the midpoint of their vertices' bounding box snapped onto the line. ``keys``
    limits the objects considered to those having one of the keys (faster on large files);
    with ``name_keywords`` too, objects whose ``name``/``name:zh`` contains one of the keywords are
    considered as well (e.g. ``keys=taxonomy.keys, name_keywords=taxonomy.keywords``).

    Two passes: libosmium lists the tagged objects (``keys`` filter applied in C++) and ``keep``
    picks among them, then only the kept ways and areas are read again with geometry.
    """
    import osmium
    import shapely

    p = check_osm_path(path)
    name_keys = ("name", "name:zh") if name_keywords else ()
    wanted = (*keys, *name_keys)
    prefilter = osmium.filter.KeyFilter(*wanted) if wanted else osmium.filter.EmptyTagFilter()
    # objects that passed only for their name must hold a keyword (checked on the raw OPL text;
    # a superset test, ``keep`` decides)
    has_key = re.compile(rb"(?:^T|,)(?:" + b"|".join(re.escape(_opl_escape(k)) for k in keys) + rb")=") if (
        keys and name_keywords) else None
    has_word = re.compile(b"|".join(re.escape(_opl_escape(w)) for w in name_keywords)) if name_keywords else None
    way_tags: dict[int, dict[str, str]] = {}
    rel_tags: dict[int, dict[str, str]] = {}
    member_ways: set[int] = set()
    try:
        for block in _opl_blocks(p, [prefilter]):
            for line in block.split(b"\n"):
                parts = line.split(b" ")
                if len(parts) < 3 or len(parts[1]) < 2:
                    continue  # blank line or no tags
                kind = parts[0][:1]
                if has_word is not None and not has_word.search(parts[1]) and (
                        has_key is None or not has_key.search(parts[1])):
                    continue
                tags = _opl_tags(parts[1][1:])
                if kind == b"r":
                    # an area made from a relation carries the relation's tags except "type"
                    tags.pop("type", None)
                    if tags and keep(tags):
                        rid = int(parts[0][1:])
                        rel_tags[rid] = tags
                        member_ways.update(int(m[1:].split(b"@", 1)[0]) for m in parts[2][1:].split(b",")
                                           if m.startswith(b"w"))
                elif keep(tags):
                    if kind == b"n":
                        lon, lat = _float_or_nan(parts[2][1:]), _float_or_nan(parts[3][1:])
                        if lon == lon and lat == lat:
                            yield OSMFeature("node", int(parts[0][1:]), lon, lat, tags)
                    elif kind == b"w":
                        way_tags[int(parts[0][1:])] = tags
        if not way_tags and not rel_tags:
            return
        wkb_factory = osmium.geom.WKBFactory()
        # the kept ways, and the member ways of kept relations so that each relation's area comes out
        # right after the way completing it (file order, as a single pass would give)
        ways_filter = osmium.filter.IdFilter(set(way_tags) | member_ways)
        ways_filter.enable_for(osmium.osm.WAY)
        areas_filter = osmium.filter.IdFilter([_area_id(w, 0) for w in way_tags] + [_area_id(r, 1) for r in rel_tags])
        areas_filter.enable_for(osmium.osm.AREA)
        fp = (osmium.FileProcessor(str(p)).with_locations().with_areas()
              .with_filter(osmium.filter.EntityFilter(osmium.osm.WAY | osmium.osm.AREA))
              .with_filter(ways_filter).with_filter(areas_filter))
        for o in fp:
            if o.is_way():
                tags = way_tags.get(o.id)
                if tags is None:
                    continue  # member of a kept relation, not kept itself
                if o.is_closed() and len(o.nodes) >= 4:
                    continue  # handled as an area (unless assembly failed, see below)
                coords = [(n.lon, n.lat) for n in o.nodes if n.location.valid()]
                if not coords:
                    continue
                line = shapely.LineString(coords) if len(coords) > 1 else shapely.Point(coords[0])
                pt = line.interpolate(0.5, normalized=True) if len(coords) > 1 else line
                yield OSMFeature("way", o.id, pt.x, pt.y, tags,
                                 wkb=shapely.to_wkb(line) if with_geometry else None)
            elif o.is_area():
                from_way = o.from_way()
                tags = (way_tags if from_way else rel_tags).get(o.orig_id())
                if tags is None:
                    continue
                try:
                    geom = shapely.from_wkb(wkb_factory.create_multipolygon(o))
                except RuntimeError:
                    continue  # broken ring in a clipped extract
                pt = geom.representative_point()
                yield OSMFeature("way" if from_way else "relation", o.orig_id(), pt.x, pt.y, tags,
                                 wkb=shapely.to_wkb(geom) if with_geometry else None)
    except RuntimeError as exc:
        raise _corrupt(p, exc) from None


def cache_dir() -> Path:
    """Folder where downloads are cached: ``$LIFECIRCLE_CACHE`` or ``~/.cache/lifecircle``."""
    root = os.environ.get("LIFECIRCLE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "lifecircle"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def fetch_extract(name: str, *, directory: str | os.PathLike[str] | None = None, update: bool = False) -> Path:
    """Download (once, then from cache) a regional OSM extract by name, e.g. ``"shanghai"``.

    Uses pyrosm's index of Geofabrik and BBBike extracts; the file is cached in
    :func:`cache_dir` and reused until ``update=True``.
    """
    import pyrosm

    target = Path(directory) if directory else cache_dir() / "extracts"
    try:
        path = pyrosm.get_data(name, directory=str(target), update=update)
    except ValueError as exc:
        raise DownloadError(
            f"no OSM extract named {name!r}: {exc}. See pyrosm.data.sources for the names"
        ) from None
    except Exception as exc:  # network errors come in many types
        raise DownloadError(
            f"could not download the OSM extract {name!r} ({type(exc).__name__}); check the internet "
            "connection, or download the .osm.pbf yourself and pass it with --osm"
        ) from None
    return Path(path)
