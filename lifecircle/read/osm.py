"""Read OpenStreetMap files (.osm.pbf, .osm, .osm.bz2) and download regional extracts."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Mapping as _AbcMapping
from dataclasses import dataclass, field
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
    "LAYERS",
    "READER_VERSION",
    "OSMFeatures",
    "OSMLayers",
    "BOUNDARY_TAGS",
    "URBAN_LANDUSE",
    "read_osm",
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


@contextlib.contextmanager
def _opl_dump(path: Path, filters: list, *, entities=None, locations: bool = False) -> Iterator[str]:
    """Run ``filters`` over the file in libosmium and write what passes as OPL to a scratch file (its path).

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
            fp = _open_osm(path, entities)
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
        yield tmp
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _map_scratch(path: str):
    """The scratch file's bytes: memory-mapped where the file may be removed while mapped (POSIX), else read."""
    with open(path, "rb") as fh:
        if os.name == "posix" and os.fstat(fh.fileno()).st_size:
            import mmap

            # MAP_POPULATE (Linux): the pages are mapped at once, not one fault per 4 KiB page when first read
            return mmap.mmap(fh.fileno(), 0, prot=mmap.PROT_READ,
                             flags=mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0))
        return fh.read()


def _opl_blocks(path: Path, filters: list, *, entities=None, locations: bool = False, block_bytes: int = 1 << 24
                ) -> Iterator[bytes]:
    """:func:`_opl_dump`'s text, whole lines per block."""
    with _opl_dump(path, filters, entities=entities, locations=locations) as tmp:
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


@dataclass(frozen=True, init=False)
class WaySegments:
    """Straight segments of the OSM ways kept by a filter, as flat arrays.

    ``node_id``/``lon``/``lat`` describe the distinct nodes used; ``u``/``v`` index into them
    (one row per pair of consecutive way nodes); ``way_index`` points into ``way_tags`` (the tags
    of each way, as dicts) and :attr:`way_highway`. :func:`read_osm` makes the dicts only when
    ``way_tags`` is first read (the walking network needs only ``highway``).
    """

    node_id: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    u: np.ndarray
    v: np.ndarray
    way_index: np.ndarray
    _way_tags: "list[dict[str, str]] | _LazyTags" = field(repr=False)
    ways_missing_nodes: int
    _way_highway: np.ndarray | None = field(default=None, repr=False, compare=False)

    def __init__(self, node_id, lon, lat, u, v, way_index, way_tags, ways_missing_nodes, way_highway=None):
        for name, value in (("node_id", node_id), ("lon", lon), ("lat", lat), ("u", u), ("v", v),
                            ("way_index", way_index), ("_way_tags", way_tags),
                            ("ways_missing_nodes", ways_missing_nodes), ("_way_highway", way_highway)):
            object.__setattr__(self, name, value)

    @property
    def way_tags(self) -> list[dict[str, str]]:
        """The tags of every way (``way_index`` points here), one dict each."""
        tags = self._way_tags
        if isinstance(tags, _LazyTags):
            tags = tags()
            object.__setattr__(self, "_way_tags", tags)
        return tags

    @property
    def way_highway(self) -> np.ndarray:
        """The ``highway`` value of every way (object array; ``None`` where it has none)."""
        if self._way_highway is None:
            object.__setattr__(self, "_way_highway", np.array([t.get("highway") for t in self.way_tags], dtype=object))
        return self._way_highway


class _LazyTags:
    """The tag dicts of some ways, parsed when first asked for: ``raws[code]`` is the OPL tag field of
    tag set ``code``, ``known[code]`` its dict if already parsed (else ``None``), ``codes`` each way's."""

    def __init__(self, raws: list[bytes], known: list, codes: np.ndarray):
        self.raws, self.known, self.codes = raws, known, codes

    def __call__(self) -> list[dict[str, str]]:
        used = np.unique(self.codes).tolist()
        todo = [c for c in used if self.known[c] is None]
        dicts = list(self.known)
        for c, tags in zip(todo, _bulk_tags([self.raws[c] for c in todo])):
            dicts[c] = tags
        return list(map(dicts.__getitem__, self.codes.tolist()))


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
        fp = (_open_osm(p).with_locations().with_areas()
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


# ---------------------------------------------------------------------------------------------
# One pass for every layer a run needs (read_osm). libosmium decodes the file ONCE, with node
# locations: it writes the facility-candidate nodes, every way (with its node coordinates inlined)
# and the multipolygon/boundary relations as OPL text. Python then cuts that text into layers with
# regular expressions and numpy. Areas:
#
# * a closed way (not a member of a multipolygon/boundary relation) becomes the polygon libosmium's
#   assembler would make: consecutive repeated locations dropped, the ring starting at its lowest
#   (lon, lat) vertex, counter-clockwise, as a one-part MultiPolygon — built for all ways at once;
# * relations, and the rare closed ways whose ring is not a simple polygon (self-touching, spikes,
#   missing nodes), go to libosmium's own assembler, fed from memory with the member ways' OPL lines
#   (which already carry their coordinates), so the file is not read a second time.
#
# pyosmium's area handler (``FileProcessor.with_areas``) instead decodes the file twice (relations
# first) and hands every area to Python as an object.
#
# Which layer wants an object is decided once per distinct tag set, all at once (:func:`_decide_all`):
# Arrow hashes the ways' raw tag fields in place, each layer's rule is a regular expression over all
# distinct fields joined, the walk rule (Python) runs once per group of tag sets, and the tags of the
# kept sets are parsed in one JSON document. The way node lists become CSV for Arrow's parser.
# Python runs per object only for relations and for the facility nodes kept.

#: Layers :func:`read_osm` can read.
LAYERS = ("network", "facilities", "buildings", "landuse", "boundaries")
#: Version of the OSM layer reader; cached layers of another version are not reused.
READER_VERSION = 1

_MP_TYPES = (("type", "multipolygon"), ("type", "boundary"))
_AREA_NO = re.compile(rb"(?:^|,)area=no(?:,|$)")
_NET, _FAC, _BLD, _BND = 1, 2, 4, 8  # layer flags of one tag set
_LND = 16  # urban landuse (URBAN_LANDUSE)
_AREAS = _FAC | _BLD | _BND | _LND  # the layers made of areas (and lines, points)
_AREA_NO_FLAG = 32  # area=no: a closed way that is not an area
#: ``landuse`` values of the landuse layer (built-up land, ``--urban landuse``).
URBAN_LANDUSE = ("residential", "commercial", "retail", "industrial")


@dataclass(frozen=True)
class OSMFeatures:
    """Tagged OSM objects as points (WGS84), one row each: what :func:`iter_features` yields, as arrays.

    ``geometry`` (shapely, optional) holds the area or line the point was taken from.
    """

    osm_type: np.ndarray
    osm_id: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    tags: list[dict[str, str]]
    geometry: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.osm_id)

    def __iter__(self) -> Iterator[OSMFeature]:
        for t, i, x, y, tags in zip(self.osm_type.tolist(), self.osm_id.tolist(), self.lon.tolist(),
                                    self.lat.tolist(), self.tags):
            yield OSMFeature(t, i, x, y, tags)


@dataclass(frozen=True)
class OSMLayers:
    """Every layer a run needs from one OSM file, read in one pass by :func:`read_osm`.

    ``network`` holds the walkable ways' segments (:class:`WaySegments`); ``facilities`` the objects
    having one of the taxonomy's keys or a name keyword (:class:`OSMFeatures`); ``buildings`` a
    GeoDataFrame of buildings and ``landuse=residential`` areas (columns ``building``,
    ``building:levels``, ``landuse``; polygons and the odd open way), in file order; ``landuse`` the
    ``landuse=residential|commercial|retail|industrial`` polygons (:data:`URBAN_LANDUSE`); ``boundaries``
    the ``boundary=administrative`` polygons (``osm_type``, ``osm_id``, ``admin_level``, ``name``,
    ``name:zh``, ``ref``). A layer not read is ``None``. ``sha256`` is the file's checksum.

    Examples
    --------
    >>> from lifecircle.datasets import toy_town_osm
    >>> osm = read_osm(toy_town_osm(), layers=("buildings", "boundaries"))
    >>> osm.network is None, len(osm.buildings), sorted(osm.boundaries["admin_level"])
    (True, 9, ['6', '8', '8'])
    >>> len(osm.residential_landuse)
    1
    """

    path: Path
    sha256: str
    layers: tuple[str, ...]
    network: WaySegments | None = None
    facilities: OSMFeatures | None = None
    buildings: object | None = None
    landuse: object | None = None
    boundaries: object | None = None
    facility_keys: tuple[str, ...] = ()
    facility_keywords: tuple[str, ...] = ()
    walkable: Callable[[Mapping[str, str]], bool] | None = None
    cached: tuple[str, ...] = ()

    @property
    def residential_landuse(self):
        """The ``landuse=residential`` areas (no ``building`` tag) of the buildings layer."""
        if self.buildings is None:
            return None
        b = self.buildings
        return b[(b["landuse"] == "residential").to_numpy() & b["building"].isna().to_numpy()
                 & b.geometry.geom_type.isin(["Polygon", "MultiPolygon"]).to_numpy()]

    def has(self, layer: str) -> bool:
        """Whether ``layer`` was read."""
        return getattr(self, layer) is not None

    def with_layers(self, **layers) -> "OSMLayers":
        """A copy with some layers replaced (e.g. from the cache)."""
        from dataclasses import replace

        return replace(self, **layers)


def _open_osm(path, entities=None):
    """The one place lifecircle opens an OSM file for decoding (tests count the calls)."""
    import osmium

    return osmium.FileProcessor(str(path), entities if entities is not None else osmium.osm.ALL)


def _canonical_rings(starts: np.ndarray, counts: np.ndarray, lon: np.ndarray, lat: np.ndarray):
    """libosmium's ring for each closed way: no repeated consecutive points, lowest vertex first, CCW.

    ``starts``/``counts`` index the way's nodes (first == last) in ``lon``/``lat``. Returns the
    coordinates of all rings (closed) and their offsets, plus the number of distinct vertices.
    """
    n = counts.size
    ring = np.repeat(np.arange(n), counts - 1)  # drop the closing node
    pos = np.repeat(starts, counts - 1) + (np.arange(ring.size) - np.repeat(np.cumsum(counts - 1) - (counts - 1),
                                                                               counts - 1))
    x, y = lon[pos], lat[pos]
    # consecutive repeats (cyclic): a point equal to the one before it in its ring
    prev = np.empty_like(pos)
    first = np.cumsum(counts - 1) - (counts - 1)
    prev[1:] = np.arange(ring.size - 1)
    prev[first] = first + counts - 2
    keep = (x != x[prev]) | (y != y[prev])
    ring, x, y = ring[keep], x[keep], y[keep]
    k = np.bincount(ring, minlength=n)
    off = np.concatenate([[0], np.cumsum(k)])
    # rotate each ring to start at its lowest (x, then y) vertex
    order = np.lexsort((y, x, ring))
    low = np.full(n, -1, dtype=np.int64)
    nz = k > 0
    low[nz] = order[off[:-1][nz]]  # the first in (ring, x, y) order of each ring
    local = np.arange(ring.size) - off[ring]
    shift = (local + (low[ring] - off[ring])) % np.maximum(k[ring], 1)
    src = off[ring] + shift
    x, y = x[src], y[src]
    # orientation: signed area around the first vertex (avoids cancellation on large coordinates)
    x0, y0 = x[off[ring]], y[off[ring]]
    dx, dy = x - x0, y - y0
    nxt = np.arange(ring.size) + 1
    last = off[1:] - 1
    nxt[last[nz]] = off[:-1][nz]
    cross = dx * dy[nxt] - dx[nxt] * dy
    signed = np.bincount(ring, weights=cross, minlength=n)
    cw = signed < 0
    # reverse clockwise rings, keeping the first vertex: v0, v_{k-1}, ..., v1
    rev = cw[ring] & (local > 0)
    src2 = np.arange(ring.size)
    src2[rev] = off[ring[rev]] + k[ring[rev]] - local[rev]
    x, y = x[src2], y[src2]
    # close the rings
    cx = np.insert(x, off[1:], x[off[:-1]] if nz.all() else np.where(nz, x[np.minimum(off[:-1], max(x.size - 1, 0))], 0))
    cy = np.insert(y, off[1:], y[off[:-1]] if nz.all() else np.where(nz, y[np.minimum(off[:-1], max(y.size - 1, 0))], 0))
    coff = off + np.arange(n + 1)
    return cx, cy, coff, k


def _polygons_from_rings(cx, cy, coff):
    """One-part MultiPolygons from closed rings (coordinate arrays + offsets), all at once."""
    import shapely

    n = coff.size - 1
    coords = np.column_stack([cx, cy])
    ring_off = coff.astype(np.int64)
    poly_off = np.arange(n + 1, dtype=np.int64)
    mp_off = np.arange(n + 1, dtype=np.int64)
    return shapely.from_ragged_array(shapely.GeometryType.MULTIPOLYGON, coords, (ring_off, poly_off, mp_off))


def _libosmium_areas(lines: list[bytes], relations: list[bytes]):
    """Areas of ways and relations built by libosmium's assembler from OPL lines held in memory.

    ``lines`` are OPL way lines (coordinates inlined), in file order; ``relations`` OPL relation
    lines. Returns ``[(from_way, orig_id, geometry)]`` in the order libosmium completes them.
    """
    import osmium
    import shapely

    data = b"\n".join([*lines, *relations]) + b"\n"
    am = osmium.area.AreaManager()
    with osmium.io.Reader(osmium.io.FileBuffer(data, "opl"), osmium.osm.RELATION) as rd:
        osmium.apply(rd, am.first_pass_handler())
    out_it = osmium.BufferIterator()
    handler = am.second_pass_to_buffer(out_it)
    wkb_factory = osmium.geom.WKBFactory()
    out = []

    def drain():
        for a in out_it:
            try:
                geom = shapely.from_wkb(wkb_factory.create_multipolygon(a))
            except RuntimeError:
                continue  # broken ring in a clipped extract
            out.append((a.from_way(), a.orig_id(), geom))

    with osmium.io.Reader(osmium.io.FileBuffer(data, "opl"), osmium.osm.WAY) as rd:
        osmium.apply(rd, handler)
    drain()
    return out


# -- deciding every distinct tag set at once. The pass writes each object's tags as one raw OPL
# "T" field; objects sharing all their tags share every decision. The distinct fields are joined
# into one text and each layer's rule runs over that text as a regular expression (C), or, for the
# walk rule (a Python callable), once per group of tag sets that agree on every tag it looked at.

_HEX_VALUE = np.full(256, 255, dtype=np.uint8)
for _i, _ch in enumerate(b"0123456789abcdef"):
    _HEX_VALUE[_ch] = _i
for _i, _ch in enumerate(b"ABCDEF"):
    _HEX_VALUE[_ch] = 10 + _i
del _i, _ch


def _unescape_bytes(text: bytes) -> bytes:
    """Replace every OPL ``%hex%`` escape in ``text`` by the character's UTF-8 bytes, in numpy.

    Every ``%`` of OPL text delimits an escape, so the escapes are the pairs of consecutive ``%``.
    A decoded ``"`` or ``\\`` comes out as ``\\"``/``\\\\`` (the text is about to become JSON).

    >>> _unescape_bytes(b"a%2c%b%20%%4e2d%%6587%%1f600%").decode()
    'a,b 中文😀'
    """
    arr = np.frombuffer(text, dtype=np.uint8)
    pct = np.flatnonzero(arr == ord("%"))
    if pct.size == 0:
        return text
    if pct.size % 2:
        raise ValueError("an unpaired % in OPL text")
    op, cl = pct[0::2], pct[1::2]
    n_hex = cl - op - 1
    if ((n_hex < 1) | (n_hex > 6)).any():
        raise ValueError("an OPL escape that is not 1 to 6 hex digits")
    cp = np.zeros(op.size, dtype=np.int64)
    for j in range(6):
        has = n_hex > j
        digit = _HEX_VALUE[arr[np.where(has, op + 1 + j, 0)]].astype(np.int64)
        if (has & (digit == 255)).any():
            raise ValueError("an OPL escape that is not hex")
        cp = np.where(has, cp * 16 + digit, cp)
    if ((cp > 0x10FFFF) | ((cp >= 0xD800) & (cp <= 0xDFFF))).any():
        raise ValueError("an OPL escape that is no character")
    quote = (cp == ord('"')) | (cp == ord("\\"))
    nb = np.where(cp < 0x80, 1, np.where(cp < 0x800, 2, np.where(cp < 0x10000, 3, 4))) + quote
    out = arr.copy()
    lead = np.where(nb == 1, cp, np.where(nb == 2, 0xC0 | (cp >> 6), np.where(nb == 3, 0xE0 | (cp >> 12),
                                                                              0xF0 | (cp >> 18))))
    out[op] = np.where(quote, ord("\\"), lead)
    m = nb >= 2
    out[op[m] + 1] = np.where(quote[m], cp[m], 0x80 | ((cp[m] >> np.where(nb[m] == 2, 0, np.where(nb[m] == 3, 6, 12)))
                                                       & 0x3F))
    m = nb >= 3
    out[op[m] + 2] = 0x80 | ((cp[m] >> np.where(nb[m] == 3, 0, 6)) & 0x3F)
    m = nb == 4
    out[op[m] + 3] = 0x80 | (cp[m] & 0x3F)
    keep = np.ones(arr.size, dtype=bool)
    keep[_ranges(op + nb, cl - op + 1 - nb)] = False  # the rest of each escape
    return out[keep].tobytes()


def _bulk_tags(raws: list[bytes]) -> list[dict[str, str]]:
    """:func:`_opl_tags` of many OPL tag fields at once: turned into one JSON text (C-level
    replacements and numpy) that :func:`json.loads` makes into the dicts.

    >>> _bulk_tags([b"highway=residential,name=%5357%%4eac%%897f%%8def%", b"", b'note=a%2c%b%3d%"\\\\'])
    [{'highway': 'residential', 'name': '南京西路'}, {}, {'note': 'a,b="\\\\'}]
    """
    full = [r for r in raws if r]
    if not full:
        return [{} for _ in raws]
    # raw "," and "=" only separate (OPL escapes them inside keys and values), "\n" never occurs
    doc = (b'[{"' + b"\n".join(full).replace(b"\\", b"\\\\").replace(b'"', b'\\"').replace(b"=", b'":"')
           .replace(b",", b'","').replace(b"\n", b'"},{"') + b'"}]')
    dicts = json.loads(_unescape_bytes(doc), strict=False)  # strict=False: control characters as they are
    if len(full) == len(raws):
        return dicts
    it = iter(dicts)
    return [next(it) if r else {} for r in raws]


def _joined(raws: list[bytes]) -> tuple[bytes, np.ndarray]:
    """OPL tag fields as one text, each as a line ``,k=v,k=v,`` (every tag between commas), and the lines' starts.

    >>> text, start = _joined([b"a=1,b=2", b""])
    >>> text, start.tolist()
    (b',a=1,b=2,\\n,,', [0, 10])
    """
    lengths = np.fromiter(map(len, raws), dtype=np.int64, count=len(raws)) + 3
    return b"," + b",\n,".join(raws) + b",", np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)


def _rows_matching(pattern: bytes, text: bytes, line_start: np.ndarray) -> np.ndarray:
    """Sorted distinct numbers of the lines of ``text`` (starting at ``line_start``) where ``pattern`` matches."""
    pos = np.fromiter((m.start() for m in re.finditer(pattern, text)), dtype=np.int64)
    return np.unique(np.searchsorted(line_start, pos, side="right") - 1)


def _keys_alternative(keys) -> bytes:
    """Regex (bytes) of one of ``keys`` (OPL-escaped) followed by ``=``."""
    return rb"(?:" + b"|".join(re.escape(_opl_escape(k)) for k in sorted(keys)) + rb")="


def _tag_pattern(keys, value: bytes | None = None) -> bytes:
    """Regex (bytes) of a tag with one of ``keys`` (and the value ``value``, a regex) in :func:`_joined` text."""
    return rb"," + _keys_alternative(keys) + (b"" if value is None else rb"(?:" + value + rb")(?=,)")


class _Watched(_AbcMapping):
    """A read-only view of a tag dict that records which keys were looked at, in order (``None``: all)."""

    __slots__ = ("_tags", "seen")

    def __init__(self, tags: dict[str, str]):
        self._tags = tags
        self.seen: dict | None = {}

    def _look(self, key) -> None:
        if self.seen is not None:
            self.seen[key] = None

    def __getitem__(self, key):
        self._look(key)
        return self._tags[key]

    def get(self, key, default=None):
        self._look(key)
        return self._tags.get(key, default)

    def __contains__(self, key) -> bool:
        self._look(key)
        return key in self._tags

    def __iter__(self):
        self.seen = None
        return iter(self._tags)

    def __len__(self) -> int:
        self.seen = None
        return len(self._tags)


def _project(raws: list[bytes], keys) -> list[bytes]:
    """Each OPL tag field reduced to its tags whose key is in ``keys``, as ``,k=v,k=v,`` (``,`` for none).

    In numpy: a tag starts at each comma of :func:`_joined` text; the tags of ``keys`` are found by
    comparing the bytes after the commas with each ``,key=``, and gathered with the lines' ends.

    >>> _project([b"name=x,highway=path,foot=yes", b"name=y", b""], {"highway", "foot"})
    [b',highway=path,foot=yes,', b',', b',']
    """
    if not keys:
        return [b","] * len(raws)
    text = _joined(raws)[0]
    size = len(text)
    arr = np.frombuffer(text + b"\0" * 64, dtype=np.uint8)
    comma = np.flatnonzero(arr[:size] == ord(","))
    last = (arr[comma + 1] == ord("\n")) | (comma + 1 == size)  # each line's closing comma (kept, with its newline)
    keep = last.copy()
    for key in keys:
        needle = b"," + _opl_escape(key) + b"="
        at = np.arange(comma.size)
        for j in range(1, len(needle)):
            if j >= 64:
                at = at[[text[p:p + len(needle)] == needle for p in comma[at].tolist()]]
                break
            at = at[arr[comma[at] + j] == needle[j]]
        keep[at] = True
    seg_end = np.append(comma[1:], size)
    seg_end = np.where(last, np.minimum(comma + 2, size), seg_end)
    return arr[_ranges(comma[keep], (seg_end - comma)[keep])].tobytes().split(b"\n")


def _any_word_pattern(words: list[bytes]) -> bytes:
    """A regex (bytes) matching where any of ``words`` starts, as a trie (one branch per distinct next byte).

    Equivalent to ``b"|".join(map(re.escape, words))`` for finding whether and where a word occurs,
    but far faster for many words sharing a start (OPL-escaped Chinese all start with ``%``).

    >>> p = _any_word_pattern([b"%4e2d%", b"%4e2d%%6587%", b"ab"])
    >>> p
    b'(?:%4e2d%|ab)'
    >>> [bool(re.search(p, s)) for s in (b"x%4e2d%", b"xa", b"xab")]
    [True, False, True]
    """
    root: dict = {}
    for word in words:
        node = root
        for ch in word:
            if None in node:
                break  # a shorter word already ends here
            node = node.setdefault(ch, {})
        else:
            node.clear()
            node[None] = True

    def emit(node) -> bytes:
        if None in node:
            return b""
        alts = [re.escape(bytes([ch])) + emit(sub) for ch, sub in sorted(node.items())]
        return alts[0] if len(alts) == 1 else b"(?:" + b"|".join(alts) + b")"

    return emit(root)


def _group_codes(items: list) -> tuple[np.ndarray, list]:
    """Code of each item (equal items share one, numbered by first appearance) and the distinct items.

    >>> _group_codes([b"a", b"b", b"a"])
    (array([0, 1, 0]), [b'a', b'b'])
    """
    distinct = list(dict.fromkeys(items))
    code = dict(zip(distinct, range(len(distinct))))
    return np.fromiter(map(code.__getitem__, items), dtype=np.int64, count=len(items)), distinct


def _decide_by_groups(raws: list[bytes], keep: Callable[[Mapping[str, str]], object], *, keys=frozenset(),
                      projected: list[bytes] | None = None) -> np.ndarray:
    """``bool(keep(tags))`` for every OPL tag field in ``raws``, calling ``keep`` once per group.

    A group is the tag sets having the same tags for some keys (at first ``keys``; ``projected``
    may give :func:`_project` of ``raws`` on them). ``keep`` is called on one tag set of each group
    through :class:`_Watched`: when it looked only at those keys, every tag set of the group would
    give the same answers to its look-ups, hence the same result, and the group is decided.
    Otherwise the group is split by the keys it looked at too (by the first of them alone while
    no key is fixed), and so on. ``keep`` must decide from the tags alone, as
    :func:`lifecircle.read.network.is_walkable`; one that lists all the tags is called once per tag set.

    >>> def keep(tags):
    ...     return tags.get("highway") != "motorway" and (tags.get("highway") != "trunk" or "高架" not in tags.get("name", ""))
    >>> _decide_by_groups([b"highway=residential,name=a", b"highway=residential,name=b", b"highway=motorway",
    ...                    b"highway=trunk,name=%9ad8%%67b6%", b"highway=trunk,name=c"], keep).tolist()
    [True, True, False, False, True]
    """
    out = np.zeros(len(raws), dtype=bool)
    pending: dict[frozenset, tuple[np.ndarray, list[bytes] | None]] = {
        frozenset(keys): (np.arange(len(raws)), projected)}
    while pending:
        fixed, (rows, proj) = pending.popitem()
        if proj is None:
            proj = _project([raws[i] for i in rows.tolist()], fixed)
        group, distinct = _group_codes(proj)
        first = np.unique(group, return_index=True)[1]  # first member of each group (groups in order)
        value = np.zeros(len(distinct), dtype=bool)
        split: dict[frozenset, list[int]] = {}
        each = []
        for g, i in enumerate(first.tolist()):
            tags = _Watched(_opl_tags(raws[rows[i]]))
            value[g] = bool(keep(tags))
            if tags.seen is None:
                each.append(g)  # it read every tag: decide each tag set by itself
                continue
            new = [k for k in tags.seen if k not in fixed and isinstance(k, str)]  # a key not str is in no tag set
            if new:
                split.setdefault(fixed | (set(new) if fixed else {new[0]}), []).append(g)
        out[rows] = value[group]
        if each:
            for i in np.flatnonzero(np.isin(group, each)).tolist():
                out[rows[i]] = bool(keep(_opl_tags(raws[rows[i]])))
        for more, groups in split.items():
            sub = rows[np.isin(group, groups)]
            if more in pending:
                sub = np.concatenate([pending[more][0], sub])
            pending[more] = (sub, None)
    return out


def _decide_all(raws: list[bytes], want: int, walkable, fac) -> tuple[np.ndarray, list[dict | None]]:
    """Layer flags of every distinct OPL tag field (without its ``T``), and its tags where a layer wants it.

    ``fac`` holds the facility patterns (:func:`_facility_patterns`). The rules (each as in the
    separate readers), all but the walk rule as regular expressions over all the fields at once:

    * network: a ``highway`` key and ``walkable(tags)`` (:func:`_decide_by_groups`);
    * facilities: one of the taxonomy's keys, or ``name``/``name:zh`` and a keyword anywhere in the
      raw text (as libosmium's KeyFilter, then the name keywords, on the raw text);
    * buildings: ``building`` other than ``no``, or ``landuse=residential``;
    * boundaries: ``boundary=administrative``; landuse: ``landuse`` in :data:`URBAN_LANDUSE`;
    * ``area=no`` marks a closed way that is no area.

    :func:`read_osm` runs the parts itself (:func:`_decide_patterns`, :func:`_decide_network`,
    :func:`_tags_of`), parsing the network's tags only when asked for.
    """
    flags = _decide_patterns(raws, want, fac)
    if want & _NET:
        _decide_network(raws, flags, walkable)
    return flags, _tags_of(raws, flags > 0)


def _decide_patterns(raws: list[bytes], want: int, fac) -> np.ndarray:
    """The flags of :func:`_decide_all` but the network's (the rules that are regular expressions)."""
    n = len(raws)
    flags = np.zeros(n, dtype=np.int64)
    if n == 0:
        return flags
    text, line_start = _joined(raws)

    def rows(pattern: bytes) -> np.ndarray:
        return _rows_matching(pattern, text, line_start)

    if want & _FAC and fac is not None:
        has_key, name_key, words = fac
        sel = rows(has_key) if has_key is not None else np.empty(0, dtype=np.int64)
        if words is not None:
            w = rows(words)
            w = w[np.fromiter((name_key.search(raws[i]) is not None for i in w.tolist()), dtype=bool, count=w.size)]
            sel = np.union1d(sel, w)
        flags[sel] |= _FAC
    if want & _BLD:
        flags[rows(_tag_pattern(["building"]) + rb"(?!no,)|" + _tag_pattern(["landuse"], rb"residential"))] |= _BLD
    if want & _BND:
        flags[rows(_tag_pattern(["boundary"], rb"administrative"))] |= _BND
    if want & _LND:
        flags[rows(_tag_pattern(["landuse"], b"|".join(v.encode() for v in URBAN_LANDUSE)))] |= _LND
    if want & _AREAS:
        no = rows(_tag_pattern(["area"], rb"no"))
        flags[no[(flags[no] & _AREAS) > 0]] |= _AREA_NO_FLAG
    return flags


def _decide_network(raws: list[bytes], flags: np.ndarray, walkable) -> np.ndarray:
    """Add the network flag to ``flags`` (a ``highway`` key and ``walkable(tags)``, :func:`_decide_by_groups`);
    returns the ``highway`` value of every field (object array, ``None`` where it has none)."""
    n = len(raws)
    highway = np.full(n, None, dtype=object)
    if n == 0:
        return highway
    proj = _project(raws, {"highway"})
    cand = np.flatnonzero(np.fromiter(map(len, proj), dtype=np.int64, count=n) > 1)  # "," alone: no highway
    if cand.size:
        cand_proj = [proj[i] for i in cand.tolist()]
        sel = _decide_by_groups([raws[i] for i in cand.tolist()], walkable, keys={"highway"}, projected=cand_proj)
        flags[cand[sel]] |= _NET
        # the highway value of each: parsed once per distinct ",highway=…," (as the whole field would be)
        hw_code, hw_distinct = _group_codes(cand_proj)
        hw_values = [t["highway"] for t in _bulk_tags([x[1:-1] for x in hw_distinct])]
        highway[cand] = np.array(hw_values, dtype=object)[hw_code]
    return highway


def _tags_of(raws: list[bytes], mask: np.ndarray) -> list[dict | None]:
    """The tags of the fields where ``mask`` (:func:`_bulk_tags`), ``None`` elsewhere."""
    tag_list: list[dict | None] = [None] * len(raws)
    kept = np.flatnonzero(mask).tolist()
    for i, tags in zip(kept, _bulk_tags([raws[i] for i in kept])):
        tag_list[i] = tags
    return tag_list


def _facility_patterns(keys: tuple[str, ...], words: tuple[str, ...]):
    """(a facility key, ``name``/``name:zh``, a keyword): regexes (bytes, in :func:`_joined` text; the
    second compiled, on one field) or ``None`` where there is nothing to look for."""
    if not keys and not words:
        return None
    has_key = _tag_pattern(keys) if keys else None
    if not words:
        return has_key, None, None
    return has_key, re.compile(rb"(?:^|,)(?:name|name:zh)="), _any_word_pattern([_opl_escape(w) for w in words])


def read_osm(
    path: str | os.PathLike[str],
    *,
    layers: tuple[str, ...] = LAYERS,
    taxonomy=None,
    walkable: Callable[[Mapping[str, str]], bool] | None = None,
    sha256: str | None = None,
) -> OSMLayers:
    """Read every requested layer of an OSM file in ONE decoding pass (see the comment above).

    Parameters
    ----------
    path : path
        .osm.pbf/.osm/.osm.bz2 file.
    layers : tuple of str
        Any of :data:`LAYERS`.
    taxonomy : Taxonomy
        Its ``keys`` and ``keywords`` pick the facility candidates (needed for ``"facilities"``).
    walkable : callable
        ``walkable(tags)`` deciding the network layer's ways (needed for ``"network"``), e.g.
        :func:`lifecircle.read.network.is_walkable`. It gets a read-only mapping and must decide
        from the tags alone: it is called once per group of tag sets that agree on every tag it
        looked at (:func:`_decide_by_groups`), not once per way. :func:`lifecircle.read.layers.read_layers`
        fills both in and adds the cache.
    sha256 : str, optional
        The file's SHA-256 if already known (else computed once here).

    Examples
    --------
    >>> from lifecircle.datasets import toy_town_osm
    >>> from lifecircle.read.facilities import load_taxonomy
    >>> from lifecircle.read.network import is_walkable
    >>> osm = read_osm(toy_town_osm(), taxonomy=load_taxonomy(), walkable=is_walkable)
    >>> len(osm.network.u) > 0, len(osm.facilities), len(osm.buildings), len(osm.boundaries)
    (True, 7, 9, 3)
    """
    import osmium
    import shapely

    p = check_osm_path(path)
    unknown = [x for x in layers if x not in LAYERS]
    if unknown:
        raise ValueError(f"unknown OSM layer {unknown[0]!r}; choose from {', '.join(LAYERS)}")
    layers = tuple(x for x in LAYERS if x in layers)
    sha = sha256 or file_sha256(p)
    want = ((_NET if "network" in layers else 0) | (_FAC if "facilities" in layers else 0)
            | (_BLD if "buildings" in layers else 0) | (_BND if "boundaries" in layers else 0)
            | (_LND if "landuse" in layers else 0))
    if not want:
        return OSMLayers(p, sha, ())
    if want & _NET and walkable is None:
        raise ValueError("the network layer needs walkable= (e.g. lifecircle.read.network.is_walkable)")
    fac_keys_t: tuple[str, ...] = ()
    fac_words_t: tuple[str, ...] = ()
    if want & _FAC:
        if taxonomy is None:
            raise ValueError("the facilities layer needs taxonomy= (lifecircle.read.facilities.load_taxonomy())")
        fac_keys_t, fac_words_t = tuple(taxonomy.keys), tuple(taxonomy.keywords)
    fac_prefilter = set((*fac_keys_t, *(("name", "name:zh") if fac_words_t else ())))
    areas_needed = bool(want & _AREAS)

    # -- the one pass: filters run in libosmium, objects come back as OPL text
    chain = []
    if want & _FAC and fac_prefilter:
        chain.append(osmium.filter.KeyFilter(*sorted(fac_prefilter)).enable_for(osmium.osm.NODE))
    else:
        chain.append(osmium.filter.EntityFilter(osmium.osm.WAY | osmium.osm.RELATION))
    if not areas_needed:  # the network alone: highway ways only, no relations
        chain.append(osmium.filter.KeyFilter("highway").enable_for(osmium.osm.WAY))
        chain.append(osmium.filter.EntityFilter(osmium.osm.NODE | osmium.osm.WAY))
    else:
        chain.append(osmium.filter.TagFilter(*_MP_TYPES).enable_for(osmium.osm.RELATION))

    try:
        with _opl_dump(p, chain, locations=True) as tmp:
            text = _map_scratch(tmp)
    except RuntimeError as exc:
        raise _corrupt(p, exc) from None
    try:
        kinds, starts_l, ends_l, sp1, sp2, sp3 = _opl_lines(text)
        is_n, is_w, is_r = kinds == ord("n"), kinds == ord("w"), kinds == ord("r")

        def fields(sel, first, end) -> list[bytes]:
            return [text[a:z] for a, z in zip(first[sel].tolist(), end[sel].tolist())]

        # every object's raw OPL tag field (without its "T"); objects sharing it share every decision
        rel_lines = fields(is_r, starts_l, ends_l)
        rel_split = [line.split(b" ") for line in rel_lines]
        raw_n = fields(is_n, sp1 + 2, sp2)
        codes_all, distinct = _group_codes([r[1][1:] for r in rel_split] + raw_n)
        w_codes, w_distinct = _distinct_slices(text, sp1[is_w] + 2, sp2[is_w])
        if w_distinct:  # the ways' tag sets after the others' (one numbering, as _group_codes(distinct + w_distinct))
            index = dict(zip(distinct, range(len(distinct))))
            found = np.fromiter((-1 if c is None else c for c in map(index.get, w_distinct)), dtype=np.int64,
                                count=len(w_distinct))
            is_new = found < 0
            found[is_new] = len(distinct) + np.arange(int(is_new.sum()))
            distinct = distinct + [w_distinct[j] for j in np.flatnonzero(is_new).tolist()] if distinct else w_distinct
            codes_all = np.concatenate([codes_all, found[w_codes]])
        flag_arr = _decide_patterns(distinct, want, _facility_patterns(fac_keys_t, fac_words_t)
                                    if want & _FAC else None)
        highway_of = (_decide_network(distinct, flag_arr, walkable) if want & _NET
                      else np.full(len(distinct), None, dtype=object))
        flag_list = flag_arr.tolist()
        tag_list = _tags_of(distinct, (flag_arr & _AREAS) > 0)  # the network's: when asked for (_LazyTags)
        n_r, n_n = len(rel_split), len(raw_n)
        # relations first (they close the file): their member ways are kept whatever their tags
        rel_rows = []
        members: set[int] = set()
        for (rid, _raw, mem), line, c in zip(rel_split, rel_lines, codes_all[:n_r].tolist()):
            rel_rows.append((int(rid[1:]), c, mem[1:], line))
            if flag_list[c] & _AREAS:
                members.update(int(m[1:].split(b"@", 1)[0]) for m in mem[1:].split(b",") if m.startswith(b"w"))
        member_ids = np.fromiter(members, dtype=np.int64, count=len(members))
        # nodes: only the located facility candidates are read further
        n_codes = codes_all[n_r:n_r + n_n]
        n_start, n_sp2, n_sp3, n_end = starts_l[is_n], sp2[is_n], sp3[is_n], ends_l[is_n]
        fac_node = np.flatnonzero(((flag_arr[n_codes] & _FAC) > 0) & (n_sp3 - n_sp2 > 2) & (n_end - n_sp3 > 2))
        node_rows = list(zip(
            map(int, fields(fac_node, n_start + 1, sp1[is_n])), map(float, fields(fac_node, n_sp2 + 2, n_sp3)),
            map(float, fields(fac_node, n_sp3 + 2, n_end)), map(tag_list.__getitem__, n_codes[fac_node].tolist())))
        w_start, w_end, w_sp1, w_sp2 = starts_l[is_w], ends_l[is_w], sp1[is_w], sp2[is_w]
        codes = codes_all[n_r + n_n:]
        flags0 = flag_arr[codes]
        w_ids = None
        if member_ids.size or not (flags0 > 0).all():  # ways no layer wants are not parsed
            w_ids = _way_ids(text, w_start, w_sp1)
            keep = (flags0 > 0) | np.isin(w_ids, member_ids)
            w_start, w_end, w_sp1, w_sp2, codes = w_start[keep], w_end[keep], w_sp1[keep], w_sp2[keep], codes[keep]
            w_ids = w_ids[keep]
        way_id, ref, lon, lat, counts, missing = _parse_ways(text, w_start, w_sp1, w_sp2, w_end, ids=w_ids)
    except (ValueError, RuntimeError) as exc:  # a line not of the expected form
        raise _corrupt(p, RuntimeError(f"unexpected OPL text in the dump ({exc})")) from None
    w_code = codes
    flags = flag_arr[w_code]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64) if counts.size else counts

    out: dict[str, object] = {}
    if want & _NET:
        out["network"] = _segments_of((flags & _NET).astype(bool) & (counts >= 2), w_code, _LazyTags(distinct, tag_list, None),
                                      highway_of, ref, lon, lat, counts, starts, missing)
    if areas_needed:
        way_lines = (text, w_start, w_end)
        out.update(_feature_layers(want, way_id, flags, w_code, tag_list, way_lines, flag_list, ref, lon, lat,
                                   counts, starts, missing, node_rows, rel_rows))
    del text
    return OSMLayers(p, sha, layers, network=out.get("network"), facilities=out.get("facilities"),
                     buildings=out.get("buildings"), landuse=out.get("landuse"), boundaries=out.get("boundaries"),
                     facility_keys=fac_keys_t, facility_keywords=fac_words_t,
                     walkable=walkable if want & _NET else None)



#: OPL way nodes to CSV: "Nn1x121.4y31.2,n2x121.5y31.3" -> "1,1,121.4,31.2\n,2,121.5,31.3" (a 1 marks a way's first node)
_WAY_NODES_TO_CSV = bytes.maketrans(b"Nnxy,", b"1,,,\n")


#: Bytes of the OPL dump scanned at a time for its line breaks and spaces (:func:`_opl_lines`).
_LINE_SCAN_BYTES = 1 << 22


def _opl_lines(text: bytes):
    """Kind (first byte), start, end and the first three space positions of every OPL line, vectorised.

    OPL escapes spaces inside values, so a way or relation line has exactly two spaces (before its
    ``T`` and ``N``/``M`` fields) and a node line three (its ``x`` and ``y`` fields).
    """
    arr = np.frombuffer(text, dtype=np.uint8)
    # newlines and spaces (OPL escapes every other control character), found a few MB at a time: one mask of
    # a city's ~100 MB dump is as many fresh pages (1M nodes: 0.07 s cold, 0.03 s warm; so 0.03, 0.02 s)
    breaks = np.concatenate([np.flatnonzero(arr[lo:lo + _LINE_SCAN_BYTES] <= 32) + lo
                             for lo in range(0, arr.size, _LINE_SCAN_BYTES)] or [np.empty(0, dtype=np.int64)])
    newline = arr[breaks] == 10
    ends, spaces = breaks[newline], breaks[~newline]
    del breaks, newline
    if arr.size and arr[-1] != 10:
        ends = np.append(ends, arr.size)
    starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64) if ends.size else ends
    keep = ends > starts  # no empty lines
    starts, ends = starts[keep], ends[keep]
    kinds = arr[starts] if starts.size else np.empty(0, dtype=np.uint8)
    k = np.searchsorted(spaces, starts)
    spaces = np.append(spaces, [arr.size + 1, arr.size + 2, arr.size + 3, arr.size + 4])
    sp1, sp2, sp3, sp4 = spaces[k], spaces[k + 1], spaces[k + 2], spaces[k + 3]
    node = kinds == ord("n")
    if (not np.isin(kinds, (ord("n"), ord("w"), ord("r"))).all() or (sp2 >= ends).any()
            or (np.where(node, sp4, sp3) < ends).any() or (node & (sp3 >= ends)).any()
            or (starts.size and (arr[sp1 + 1] != ord("T")).any())):
        raise RuntimeError("a line without its fields")
    return kinds, starts, ends, sp1, sp2, sp3


def _byte_views(text, start: np.ndarray, end: np.ndarray):
    """``text[start:end]`` for every pair as one Arrow ``binary_view`` array over ``text`` (no copy),
    or ``None`` when the text is too long for Arrow's 32-bit view offsets."""
    import pyarrow as pa

    size = len(text)
    if size >= 2**31 - 1:
        return None
    n = start.size
    length = (end - start).astype(np.int32)
    views = np.zeros((n, 16), dtype=np.uint8)  # length, then 12 bytes inline, or a 4-byte prefix, buffer 0, offset
    views[:, 0:4] = length.view(np.uint8).reshape(n, 4)
    arr = np.frombuffer(text, dtype=np.uint8)
    if size:
        views[:, 4:8] = arr[np.minimum(start[:, None] + np.arange(4), size - 1)]  # inline start, or prefix
        short = np.flatnonzero(length <= 12)
        if short.size:
            views[short, 8:16] = arr[np.minimum(start[short, None] + np.arange(4, 12), size - 1)]
        views[:, 4:16][np.arange(12)[None, :] >= length[:, None]] = 0  # inline bytes past the end
    long = np.flatnonzero(length > 12)
    views[long, 8:12] = 0
    views[long, 12:16] = start[long].astype(np.int32).view(np.uint8).reshape(-1, 4)
    return pa.Array.from_buffers(pa.binary_view(), n, [None, pa.py_buffer(views), pa.py_buffer(text)])


def _distinct_slices(text, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, list[bytes]]:
    """:func:`_group_codes` of ``[text[a:z] for a, z in zip(start, end)]``, hashed in Arrow (C++).

    >>> codes, distinct = _distinct_slices(b"ab ab cd", np.array([0, 3, 6]), np.array([2, 5, 8]))
    >>> codes.tolist(), distinct
    ([0, 0, 1], [b'ab', b'cd'])
    """
    import pyarrow.compute as pc

    views = _byte_views(text, start, end) if start.size else None
    if views is None:
        return _group_codes([text[a:z] for a, z in zip(start.tolist(), end.tolist())])
    enc = pc.dictionary_encode(views)  # codes by first appearance, as _group_codes
    return enc.indices.to_numpy().astype(np.int64), enc.dictionary.to_pylist()


def _joined_slices(text, start: np.ndarray, end: np.ndarray, *, table: bytes | None = None) -> bytes:
    """``b"\\n".join(text[a:z] for a, z in zip(start, end))``, copied by Arrow when every slice is followed by a
    newline (then the result ends with that newline too), translated by ``table`` if given (:meth:`bytes.translate`)."""
    import pyarrow as pa

    if start.size and end[-1] < len(text):
        views = _byte_views(text, start, end + 1)  # each slice with its line's newline
        if views is not None:
            joined = views.cast(pa.large_binary())
            data = joined.buffers()[2].slice(0, int((end + 1 - start).sum())).to_pybytes()
            return data if table is None else data.translate(table)
    data = b"\n".join([text[a:z] for a, z in zip(start.tolist(), end.tolist())])
    return data if table is None else data.translate(table)


def _way_ids(text, start: np.ndarray, sp1: np.ndarray) -> np.ndarray:
    """The ids of OPL lines (``w<id> …``) starting at ``start``, their first space at ``sp1``."""
    if not start.size:
        return np.empty(0, dtype=np.int64)
    ids = np.fromstring(np.frombuffer(text, dtype=np.uint8)[_ranges(start + 1, sp1 - start)].tobytes(),
                        dtype=np.int64, sep=" ")
    if ids.size != start.size:
        raise RuntimeError("a way line without its id")
    return ids


def _parse_ways(text: bytes, start, sp1, sp2, end, *, ids=None):
    """Ids, node refs/lon/lat, nodes per way and "a node is missing" per way of OPL way lines
    (``w<id> T<tags> N<nodes>``, given by their start, space and end offsets in ``text``; ``ids`` if
    already known).

    The node lists are joined into one text, made into CSV (``Nn12x121.4y31.2,n13x…`` becomes the
    lines ``1,12,121.4,31.2`` and ``,13,…``, the 1 marking a way's first node) and parsed by Arrow's
    CSV reader (C++, correctly rounded like ``float()``); a node without location (``n12xy``) gets
    NaN coordinates.

    >>> t = b"w7 Thighway=path Nn1x121.5y31.25,n2xy\\nw8 T Nn3x-0.5y0.0000001\\n"
    >>> _, st, en, s1, s2, _ = _opl_lines(t)
    >>> [a.tolist() for a in _parse_ways(t, st, s1, s2, en)]
    [[7, 8], [1, 2, 3], [121.5, nan, -0.5], [31.25, nan, 1e-07], [2, 1], [True, False]]
    """
    if start.size == 0:
        e = np.empty(0, dtype=np.int64)
        return e, e, np.empty(0), np.empty(0), e, np.empty(0, dtype=bool)
    arr = np.frombuffer(text, dtype=np.uint8)
    ids = _way_ids(text, start, sp1) if ids is None else ids
    if ids.size != start.size or (arr[sp2 + 1] != ord("N")).any():
        raise RuntimeError("a way line without its id or node list")
    full = np.flatnonzero(end - sp2 > 2)  # ways with at least one node ("N" alone: none)
    counts = np.zeros(start.size, dtype=np.int64)
    missing = np.zeros(start.size, dtype=bool)
    if not full.size:
        return ids, np.empty(0, dtype=np.int64), np.empty(0), np.empty(0), counts, missing
    mark, ref, lon, lat = _read_node_csv(_joined_slices(text, sp2[full] + 1, end[full], table=_WAY_NODES_TO_CSV))
    first = np.flatnonzero(mark)
    if first.size != full.size or (first.size and first[0] != 0):
        raise RuntimeError("unexpected way node list in the OPL dump")
    counts[full] = np.diff(np.append(first, ref.size))
    no_location = np.isnan(lon)
    if no_location.any():  # nodes outside the extract ("n12xy"): no coordinates
        missing[full[np.searchsorted(first, np.flatnonzero(no_location), side="right") - 1]] = True
    return ids, ref, lon, lat, counts, missing


def _read_node_csv(csv: bytes):
    """Columns of ``mark,ref,lon,lat`` CSV lines: ``mark`` (a way's first node: the mark is not
    empty), refs (int64), lon, lat (float64, NaN when empty)."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    table = pcsv.read_csv(
        pa.py_buffer(csv),
        read_options=pcsv.ReadOptions(column_names=["mark", "ref", "lon", "lat"], block_size=1 << 22),
        parse_options=pcsv.ParseOptions(quote_char=False),
        convert_options=pcsv.ConvertOptions(
            column_types={"mark": pa.int8(), "ref": pa.int64(), "lon": pa.float64(), "lat": pa.float64()},
            null_values=[""], true_values=[], false_values=[]),
    )
    if table.column("ref").null_count:
        raise RuntimeError("a way node without its id")
    mark = table.column("mark").is_valid().to_numpy(zero_copy_only=False)
    return (mark, *(np.require(table.column(c).to_numpy(), requirements="W") for c in ("ref", "lon", "lat")))


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(s, s + c)`` for every (s, c), without a Python loop."""
    total = int(counts.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    ends = np.cumsum(counts)
    return np.repeat(starts - (ends - counts), counts) + np.arange(total)


def _segments_of(keep, w_code, tags: _LazyTags, highway_of, ref, lon, lat, counts, starts, missing) -> WaySegments:
    """:class:`WaySegments` of the ways where ``keep`` (a mask over the pass's way arrays), whose
    nodes ``starts[w]:starts[w] + counts[w]`` follow each other in ``ref``/``lon``/``lat``."""
    sel = np.flatnonzero(keep)
    if sel.size == 0:
        empty_i = np.empty(0, dtype=np.int64)
        return WaySegments(empty_i, np.empty(0), np.empty(0), empty_i, empty_i, empty_i, [], 0)
    lengths = counts[sel]
    if sel.size == counts.size:  # every way: its nodes are the arrays as they are
        all_ref, all_lon, all_lat = ref, lon, lat
    else:
        at = np.repeat(keep, counts)
        all_ref, all_lon, all_lat = ref[at], lon[at], lat[at]
    ends = np.cumsum(lengths)
    way_of_pos = np.repeat(np.arange(len(lengths)), lengths)
    start = np.ones(len(all_ref), dtype=bool)
    start[ends[:-1]] = False
    start[0] = False
    no_loc = np.isnan(all_lon)
    pair_ok = start[1:] & ~no_loc[:-1] & ~no_loc[1:]
    if no_loc.any():
        located = ~no_loc
        node_id, first_pos, inverse = _unique_ids(all_ref[located])
        pos_to_node = np.full(len(all_ref), -1, dtype=np.int64)
        pos_to_node[located] = inverse
        node_lon, node_lat = all_lon[located][first_pos], all_lat[located][first_pos]
    else:
        node_id, first_pos, pos_to_node = _unique_ids(all_ref)
        node_lon, node_lat = all_lon[first_pos], all_lat[first_pos]
    seg_pos = np.flatnonzero(pair_ok)
    codes = w_code[sel]
    return WaySegments(
        node_id=node_id, lon=node_lon, lat=node_lat,
        u=pos_to_node[seg_pos], v=pos_to_node[seg_pos + 1], way_index=way_of_pos[seg_pos],
        way_tags=_LazyTags(tags.raws, tags.known, codes), ways_missing_nodes=int(missing[sel].sum()),
        way_highway=highway_of[codes],
    )


def _unique_ids(ids: np.ndarray):
    """``np.unique(ids, return_index=True, return_inverse=True)``, but the index is of *some* occurrence
    of each id, not necessarily the first (an unstable sort: several times faster)."""
    perm = np.argsort(ids, kind="quicksort")
    s = ids[perm]
    new = np.empty(s.size, dtype=bool)
    new[:1] = True
    np.not_equal(s[1:], s[:-1], out=new[1:])
    inverse = np.empty(ids.size, dtype=np.int64)
    inverse[perm] = np.cumsum(new) - 1
    return s[new], perm[new], inverse


def _feature_layers(want, way_id, flags, w_code, tag_list, way_lines, flag_list, ref, lon, lat, counts, starts,
                    missing, node_rows, rel_rows):
    """The facility, building and boundary layers from the pass's arrays (areas as in libosmium)."""
    import shapely

    n_ways = way_id.size
    feat_flags = flags & _AREAS
    # relations: the pass wrote the type=multipolygon|boundary ones, the only ones libosmium assembles
    rels = []  # (relation id, flags, tags without "type", member way ids, OPL line)
    for rid, c, members, line in rel_rows:
        f, tags = flag_list[c] & _AREAS, tag_list[c]
        if f and tags:
            tags = {k: v for k, v in tags.items() if k != "type"}
            if tags:
                ways_m = [int(m[1:].split(b"@", 1)[0]) for m in members.split(b",") if m.startswith(b"w")]
                rels.append((rid, f, tags, ways_m, line))
    order_ids = np.argsort(way_id, kind="stable")
    sorted_ids = way_id[order_ids]

    def positions(ids) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        k = np.searchsorted(sorted_ids, ids)
        k = np.minimum(k, max(n_ways - 1, 0))
        ok = (sorted_ids[k] == ids) if n_ways else np.zeros(ids.size, dtype=bool)
        return np.where(ok, order_ids[k] if n_ways else -1, -1)

    last = starts + counts - 1
    first_ref = np.where(counts > 0, ref[np.minimum(starts, max(ref.size - 1, 0))], 0) if ref.size else counts
    last_ref = np.where(counts > 0, ref[np.maximum(last, 0)], 0) if ref.size else counts
    closed_id = (counts >= 4) & (first_ref == last_ref)
    is_line = (feat_flags > 0) & ~closed_id
    # closed ways that libosmium turns into areas (the assembler decides the doubtful ones)
    fl, ll = np.where(counts > 0, starts, 0), np.where(counts > 0, last, 0)
    ends_same = (counts >= 4) & ~np.isnan(lon[fl] if ref.size else np.zeros(n_ways)) & (
        (lon[fl] == lon[ll]) & (lat[fl] == lat[ll]) if ref.size else np.zeros(n_ways, dtype=bool))
    area_no = (flags & _AREA_NO_FLAG) > 0
    cand = (feat_flags > 0) & ends_same & ~area_no
    simple = cand & closed_id & ~missing
    doubtful = cand & ~simple
    cw = np.flatnonzero(simple)
    way_geom = np.empty(n_ways, dtype=object)
    if cw.size:
        cx, cy, coff, k = _canonical_rings(starts[cw], counts[cw], lon, lat)
        polys = _polygons_from_rings(cx, cy, coff)
        ok = (k >= 3) & shapely.is_valid(polys)
        way_geom[cw[ok]] = polys[ok]
        doubtful[cw[~ok]] = True
    # libosmium's assembler for relations and doubtful rings, from memory
    rel_geom: dict[int, object] = {}
    fallback = np.flatnonzero(doubtful)
    wanted_members = np.unique(positions([w for r in rels for w in r[3]])) if rels else np.empty(0, np.int64)
    wanted_members = wanted_members[wanted_members >= 0]
    rel_done = np.full(len(rels), -1, dtype=np.int64)
    if rels or fallback.size:
        need = np.union1d(fallback, wanted_members).astype(np.int64)
        text, line_start, line_end = way_lines  # the dump's own lines carry the coordinates
        lines = [text[a:z] for a, z in zip(line_start[need].tolist(), line_end[need].tolist())]
        # libosmium writes a node without location as "n12xy" but reads it only as "n12"
        lines = [x if b"xy" not in x else b"%s N%s" % (x.rsplit(b" N", 1)[0], x.rsplit(b" N", 1)[1].replace(b"xy", b""))
                 for x in lines]
        for from_way, oid, geom in _libosmium_areas(lines, [r[4] for r in rels]):
            if from_way:
                pos = positions([oid])[0]
                if pos >= 0 and doubtful[pos]:
                    way_geom[pos] = geom
            else:
                rel_geom[oid] = geom
        for j, r in enumerate(rels):
            if r[0] in rel_geom:
                mp = positions(r[3])
                rel_done[j] = mp.max() if mp.size else -1
    has_area = np.not_equal(way_geom, None).astype(bool) if n_ways else np.zeros(0, dtype=bool)

    # areas in completion order: way areas at their way, relation areas at their last member way
    area_pos = np.concatenate([np.flatnonzero(has_area), rel_done[rel_done >= 0]])
    area_kind = np.concatenate([np.zeros(int(has_area.sum()), dtype=np.int64),
                                np.ones(int((rel_done >= 0).sum()), dtype=np.int64)])
    area_ref = np.concatenate([np.flatnonzero(has_area), np.flatnonzero(rel_done >= 0)])
    order = np.lexsort((-area_kind, area_pos))  # a relation completed by a way comes before the way's own area
    area_kind, area_ref = area_kind[order], area_ref[order]

    rel_flags = np.array([r[1] for r in rels], dtype=np.int64)
    area_flags = np.where(area_kind == 0, feat_flags[np.where(area_kind == 0, area_ref, 0)] if n_ways else 0,
                          rel_flags[np.where(area_kind == 1, area_ref, 0)] if rels else 0)

    def areas_for(flag):
        """(osm_type, osm_id, tags, geometry) arrays of the areas of one layer, in order."""
        keep = (area_flags & flag) > 0
        kind, idx = area_kind[keep], area_ref[keep]
        is_way = kind == 0
        types = np.where(is_way, "way", "relation").astype(object)
        ids = np.where(is_way, way_id[np.where(is_way, idx, 0)] if n_ways else 0,
                       np.array([r[0] for r in rels], dtype=np.int64)[np.where(is_way, 0, idx)] if rels else 0)
        codes = w_code[np.where(is_way, idx, 0)] if n_ways else np.zeros(idx.size, dtype=np.int64)
        tags = [tag_list[c] if w else rels[i][2] for w, c, i in zip(is_way.tolist(), codes.tolist(), idx.tolist())]
        geoms = np.empty(idx.size, dtype=object)
        geoms[is_way] = way_geom[idx[is_way]]
        geoms[~is_way] = [rel_geom[rels[i][0]] for i in idx[~is_way].tolist()]
        return types, ids.astype(np.int64), tags, geoms

    def lines_for(flag):
        """Open ways of one layer: ids, tags and their line (or point) through the located nodes."""
        sel = np.flatnonzero(is_line & ((feat_flags & flag) > 0))
        pos = _ranges(starts[sel], counts[sel])
        way_of = np.repeat(np.arange(sel.size), counts[sel])
        okp = ~np.isnan(lon[pos])
        pos, way_of = pos[okp], way_of[okp]
        n_ok = np.bincount(way_of, minlength=sel.size)
        has = n_ok > 0
        geoms = np.empty(sel.size, dtype=object)
        multi = n_ok >= 2
        if multi.any():
            m = multi[way_of]
            geoms[multi] = _lines(lon[pos[m]], lat[pos[m]], way_of[m], np.flatnonzero(multi))
        single = n_ok == 1
        if single.any():
            s = single[way_of]
            geoms[single] = shapely.points(lon[pos[s]], lat[pos[s]])
        sel, geoms = sel[has], geoms[has]
        return sel, geoms

    out: dict[str, object] = {}
    if want & _FAC:
        nodes = node_rows
        sel, lgeoms = lines_for(_FAC)
        lpts = np.empty(sel.size, dtype=object)
        if sel.size:
            is_ls = shapely.get_type_id(lgeoms) == 1
            lpts[is_ls] = shapely.line_interpolate_point(lgeoms[is_ls], 0.5, normalized=True)
            lpts[~is_ls] = lgeoms[~is_ls]
        a_types, a_ids, a_tags, a_geoms = areas_for(_FAC)
        a_pts = shapely.point_on_surface(a_geoms) if a_geoms.size else np.empty(0, dtype=object)
        pts_xy = shapely.get_coordinates(np.concatenate([lpts, a_pts])) if (sel.size + a_geoms.size) else \
            np.empty((0, 2))
        out["facilities"] = OSMFeatures(
            osm_type=np.array(["node"] * len(nodes) + ["way"] * sel.size + a_types.tolist(), dtype=object),
            osm_id=np.array([r[0] for r in nodes] + way_id[sel].tolist() + a_ids.tolist(), dtype=np.int64),
            lon=np.concatenate([np.array([r[1] for r in nodes], dtype=float), pts_xy[:, 0]]),
            lat=np.concatenate([np.array([r[2] for r in nodes], dtype=float), pts_xy[:, 1]]),
            tags=[r[3] for r in nodes] + [tag_list[c] for c in w_code[sel].tolist()] + a_tags,
        )
    if want & _BLD:
        sel, lgeoms = lines_for(_BLD)
        a_types, a_ids, a_tags, a_geoms = areas_for(_BLD)
        tags = [tag_list[c] for c in w_code[sel].tolist()] + a_tags
        out["buildings"] = _buildings_frame([t.get("building") for t in tags], [t.get("building:levels") for t in tags],
                                            [t.get("landuse") for t in tags], np.concatenate([lgeoms, a_geoms]))
    if want & _LND:
        a_types, a_ids, a_tags, a_geoms = areas_for(_LND)
        out["landuse"] = _landuse_frame([t.get("landuse") for t in a_tags], a_geoms)
    if want & _BND:
        a_types, a_ids, a_tags, a_geoms = areas_for(_BND)
        out["boundaries"] = _boundaries_frame(a_types, a_ids, {k: [t.get(k) for t in a_tags] for k in BOUNDARY_TAGS},
                                              a_geoms)
    return out


#: Tags kept for each administrative boundary.
BOUNDARY_TAGS = ("admin_level", "name", "name:zh", "ref")


def _buildings_frame(building, levels, landuse, geoms):
    """The buildings layer: ``building``, ``building:levels``, ``landuse`` and the geometry (WGS84)."""
    import geopandas as gpd
    import pandas as pd

    rows = list(zip(building, levels, landuse, list(geoms)))
    return gpd.GeoDataFrame(pd.DataFrame(rows, columns=["building", "building:levels", "landuse", "geometry"]),
                            geometry="geometry", crs=4326)


def _landuse_frame(landuse, geoms):
    """The landuse layer: ``landuse`` and the polygon (WGS84)."""
    import geopandas as gpd
    import pandas as pd

    return gpd.GeoDataFrame({"landuse": pd.Series(list(landuse), dtype=object)},
                            geometry=gpd.GeoSeries(list(geoms), crs=4326), crs=4326)


def _boundaries_frame(osm_type, osm_id, tags: dict[str, list], geoms):
    """The boundaries layer: ``osm_type``, ``osm_id``, :data:`BOUNDARY_TAGS` and the polygon (WGS84)."""
    import geopandas as gpd
    import pandas as pd

    return gpd.GeoDataFrame(
        {"osm_type": pd.Series(list(osm_type), dtype=object), "osm_id": np.asarray(osm_id, dtype=np.int64),
         **{k: pd.Series(tags[k], dtype=object) for k in BOUNDARY_TAGS}},
        geometry=gpd.GeoSeries(list(geoms), crs=4326), crs=4326)


def _lines(x, y, which, targets):
    """LineStrings through the points of each way (``which`` = its number among ``targets``)."""
    import shapely

    idx = np.searchsorted(targets, which)
    return shapely.linestrings(x, y, indices=idx)


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
