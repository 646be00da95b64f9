"""Read OpenStreetMap files (.osm.pbf, .osm, .osm.bz2) and download regional extracts."""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping

import numpy as np

from .errors import DownloadError, InputFileError

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
    """
    import osmium

    p = check_osm_path(path)
    refs: list[np.ndarray] = []
    lons: list[np.ndarray] = []
    lats: list[np.ndarray] = []
    tags_list: list[dict[str, str]] = []
    missing = 0
    try:
        fp = (
            osmium.FileProcessor(str(p), osmium.osm.NODE | osmium.osm.WAY)
            .with_locations()
            .with_filter(osmium.filter.EntityFilter(osmium.osm.WAY))
            .with_filter(osmium.filter.KeyFilter(key))
        )
        for w in fp:
            tags = dict(w.tags)
            if not keep(tags):
                continue
            nodes = w.nodes
            n = len(nodes)
            if n < 2:
                continue
            r = np.empty(n, dtype=np.int64)
            lo = np.empty(n)
            la = np.empty(n)
            for i, nd in enumerate(nodes):
                r[i] = nd.ref
                loc = nd.location
                if loc.valid():
                    lo[i] = loc.lon
                    la[i] = loc.lat
                else:
                    lo[i] = np.nan
                    la[i] = np.nan
            if np.isnan(lo).any():
                missing += 1
            refs.append(r)
            lons.append(lo)
            lats.append(la)
            tags_list.append(tags)
    except RuntimeError as exc:
        raise _corrupt(p, exc) from None
    if not refs:
        empty_i = np.empty(0, dtype=np.int64)
        return WaySegments(empty_i, np.empty(0), np.empty(0), empty_i, empty_i, empty_i, [], missing)
    lengths = np.fromiter((len(r) for r in refs), dtype=np.int64, count=len(refs))
    all_ref = np.concatenate(refs)
    all_lon = np.concatenate(lons)
    all_lat = np.concatenate(lats)
    way_of_pos = np.repeat(np.arange(len(refs)), lengths)
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


def iter_features(
    path: str | os.PathLike[str],
    keep: Callable[[Mapping[str, str]], bool],
    *,
    keys: tuple[str, ...] = (),
    with_geometry: bool = False,
) -> Iterator[OSMFeature]:
    """Yield nodes, ways and (multipolygon) relations for which ``keep(tags)`` holds.

    Nodes keep their position; closed ways and multipolygon relations become areas
    reduced to a point inside them (``shapely.Polygon.representative_point``); open ways
    use the midpoint of their vertices' bounding box snapped onto the line. ``keys``
    limits the objects considered to those having one of the keys (faster on large files).
    """
    import osmium
    import shapely

    p = check_osm_path(path)
    wkb_factory = osmium.geom.WKBFactory()
    try:
        fp = osmium.FileProcessor(str(p)).with_locations().with_areas()
        if keys:
            fp = fp.with_filter(osmium.filter.KeyFilter(*keys))
        for o in fp:
            if o.is_relation() or len(o.tags) == 0:
                continue  # relations come back as areas
            tags = dict(o.tags)
            if not keep(tags):
                continue
            if o.is_node():
                if o.location.valid():
                    yield OSMFeature("node", o.id, o.location.lon, o.location.lat, tags)
            elif o.is_way():
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
                try:
                    geom = shapely.from_wkb(wkb_factory.create_multipolygon(o))
                except RuntimeError:
                    continue  # broken ring in a clipped extract
                pt = geom.representative_point()
                kind = "way" if o.from_way() else "relation"
                yield OSMFeature(kind, o.orig_id(), pt.x, pt.y, tags,
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
    target.mkdir(parents=True, exist_ok=True)
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
