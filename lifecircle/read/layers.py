"""Read every OSM layer a run needs in one pass over the file, or from the cache when it holds them.

:func:`read_layers` is :func:`lifecircle.read.osm.read_osm` with lifecircle's defaults (the
:func:`~lifecircle.read.network.is_walkable` filter, the built-in taxonomy) and a cache: each layer
read from a file is kept in ``cache_dir() / "layers"`` (one ``.npz`` per layer, no pickles), keyed by
the file's SHA-256, :data:`lifecircle.read.osm.READER_VERSION` and, for facilities, the taxonomy's keys
and keywords; the walking network is kept by :mod:`lifecircle.read.cache` as before. A second run on
the same extract then decodes nothing: the file is only hashed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Any

import numpy as np

from .osm import (BOUNDARY_TAGS, LAYERS, READER_VERSION, OSMFeatures, OSMLayers, _boundaries_frame,
                  _buildings_frame, _landuse_frame, check_osm_path, file_sha256, read_osm)

log = logging.getLogger("lifecircle")

__all__ = ["read_layers", "layers_needed"]


def layers_needed(*, network: bool, facilities: bool, buildings: bool, boundaries: bool,
                  landuse: bool = False) -> tuple[str, ...]:
    """The layer names for these flags, in :data:`lifecircle.read.osm.LAYERS` order.

    >>> layers_needed(network=True, facilities=True, buildings=False, boundaries=True)
    ('network', 'facilities', 'boundaries')
    """
    want = {"network": network, "facilities": facilities, "buildings": buildings, "landuse": landuse,
            "boundaries": boundaries}
    return tuple(x for x in LAYERS if want[x])


def read_layers(path: str | os.PathLike[str], *, layers: tuple[str, ...] = LAYERS, taxonomy=None,
                cache: bool = True) -> OSMLayers:
    """The requested layers of an OSM file: cached ones from the cache, the others in ONE pass.

    Parameters
    ----------
    path : path
        .osm.pbf/.osm/.osm.bz2 file.
    layers : tuple of str
        Any of :data:`lifecircle.read.osm.LAYERS`.
    taxonomy : Taxonomy, optional
        Picks the facility candidates; default the built-in one.
    cache : bool
        Use and fill the layer cache (and tell :func:`~lifecircle.read.network.network_from_osm` to use
        the network cache: a cached network is not read again).

    Examples
    --------
    >>> from lifecircle.datasets import toy_town_osm
    >>> osm = read_layers(toy_town_osm(), layers=("facilities", "boundaries"), cache=False)
    >>> len(osm.facilities), len(osm.boundaries), osm.network is None
    (7, 3, True)
    """
    from . import cache as _cache
    from .facilities import load_taxonomy
    from .network import WALK_FILTER_VERSION, is_walkable

    p = check_osm_path(path)
    tax = taxonomy or load_taxonomy()
    layers = tuple(x for x in LAYERS if x in layers)
    sha = file_sha256(p)
    found: dict[str, Any] = {}
    if cache:
        try:
            if "network" in layers and _cache.network_cache_path(sha, walk_filter=f"w{WALK_FILTER_VERSION}").is_file():
                found["network"] = None  # network_from_osm loads it
            for layer in _CACHED:
                if layer in layers:
                    arrays = _cache.load_layer(_cache.layer_cache_path(sha, layer, key=_key(layer, tax)))
                    if arrays is not None:
                        found[layer] = _from_arrays(layer, arrays)
        except OSError as exc:  # cache folder not writable: work without it
            log.warning("OSM layer cache unavailable (%s); reading %s", exc, p.name)
            cache, found = False, {}
    todo = tuple(x for x in layers if x not in found)
    read = read_osm(p, layers=todo, taxonomy=tax, walkable=is_walkable, sha256=sha) if todo else None
    if read is not None and cache:
        for layer in _CACHED:
            value = getattr(read, layer)
            if value is not None:
                try:
                    _cache.save_layer(_to_arrays(layer, value), _cache.layer_cache_path(sha, layer, key=_key(layer, tax)))
                except OSError as exc:
                    log.warning("could not write the OSM layer cache (%s)", exc)
    if found:
        log.info("OSM layers of %s from the cache: %s", p.name, ", ".join(found))

    def pick(layer):
        if layer in found:
            return found[layer]
        return getattr(read, layer) if read is not None else None

    return OSMLayers(p, sha, layers, network=pick("network"), facilities=pick("facilities"),
                     buildings=pick("buildings"), landuse=pick("landuse"), boundaries=pick("boundaries"),
                     facility_keys=tuple(tax.keys), facility_keywords=tuple(tax.keywords),
                     walkable=is_walkable, cached=tuple(found))


_CACHED = ("facilities", "buildings", "landuse", "boundaries")  # the network has its own cache


def _key(layer: str, tax) -> str:
    """Cache key part of a layer: the reader version, plus a digest of the taxonomy's keys and keywords."""
    if layer != "facilities":
        return f"r{READER_VERSION}"
    digest = hashlib.sha256(json.dumps([list(tax.keys), list(tax.keywords)], ensure_ascii=False).encode()).hexdigest()
    return f"r{READER_VERSION}-t{digest[:16]}"


# --------------------------------------------------------------------------------------------
# layers as plain arrays (strings as numpy unicode with a None mask, geometries as WKB bytes)

def _strings(values) -> dict[str, np.ndarray]:
    none = [v is None or (isinstance(v, float) and v != v) for v in values]  # pandas shows a missing text as NaN
    return {"text": np.array(["" if n else str(v) for v, n in zip(values, none)], dtype=str),
            "none": np.array(none, dtype=bool)}


def _unstrings(arrays, name: str) -> list:
    text, none = arrays[f"{name}.text"], arrays[f"{name}.none"]
    return [None if n else str(t) for t, n in zip(text.tolist(), none.tolist())]


def _wkb(geoms) -> dict[str, np.ndarray]:
    import shapely

    blobs = shapely.to_wkb(np.asarray(geoms, dtype=object)).tolist() if len(geoms) else []
    sizes = np.array([len(b) for b in blobs], dtype=np.int64)
    return {"wkb": np.frombuffer(b"".join(blobs), dtype=np.uint8), "wkb_offsets": np.concatenate([[0], np.cumsum(sizes)])}


def _unwkb(arrays) -> np.ndarray:
    import shapely

    data, off = arrays["wkb"].tobytes(), arrays["wkb_offsets"].tolist()
    return shapely.from_wkb([data[a:b] for a, b in zip(off[:-1], off[1:])]) if len(off) > 1 else np.empty(0, object)


def _flat(prefix: str, d: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {f"{prefix}.{k}": v for k, v in d.items()}


def _to_arrays(layer: str, value) -> dict[str, np.ndarray]:
    if layer == "facilities":
        return {"osm_type": np.array(value.osm_type.tolist(), dtype=str), "osm_id": value.osm_id,
                "lon": value.lon, "lat": value.lat,
                "tags": np.array([json.dumps(t, ensure_ascii=False) for t in value.tags], dtype=str)}
    if layer == "buildings":
        return {**_flat("building", _strings(value["building"].tolist())),
                **_flat("levels", _strings(value["building:levels"].tolist())),
                **_flat("landuse", _strings(value["landuse"].tolist())),
                **_wkb(value.geometry.to_numpy())}
    if layer == "landuse":
        return {**_flat("landuse", _strings(value["landuse"].tolist())), **_wkb(value.geometry.to_numpy())}
    out = {"osm_type": np.array(value["osm_type"].tolist(), dtype=str), "osm_id": value["osm_id"].to_numpy()}
    for k in BOUNDARY_TAGS:
        out.update(_flat(k, _strings(value[k].tolist())))
    return {**out, **_wkb(value.geometry.to_numpy())}


def _from_arrays(layer: str, a: dict[str, np.ndarray]):
    if layer == "facilities":
        return OSMFeatures(osm_type=np.array(a["osm_type"].tolist(), dtype=object), osm_id=a["osm_id"].astype(np.int64),
                           lon=a["lon"].astype(float), lat=a["lat"].astype(float),
                           tags=[json.loads(t) for t in a["tags"].tolist()])
    geoms = _unwkb(a)
    if layer == "landuse":
        return _landuse_frame(_unstrings(a, "landuse"), geoms)
    if layer == "buildings":
        return _buildings_frame(_unstrings(a, "building"), _unstrings(a, "levels"), _unstrings(a, "landuse"), geoms)
    return _boundaries_frame(a["osm_type"].tolist(), a["osm_id"], {k: _unstrings(a, k) for k in BOUNDARY_TAGS}, geoms)
