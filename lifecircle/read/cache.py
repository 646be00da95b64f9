"""Keep parsed walking networks on disk, keyed by the OSM file's SHA-256 and the walk-filter version.

A second analysis of the same extract loads the network's arrays from one ``.npz`` file (no pickles)
instead of parsing the OSM file again. The key changes when the file's content changes or when
lifecircle's walk filter or parser changes (:data:`lifecircle.read.network.WALK_FILTER_VERSION`), so a
stale network is never used. Each file holds the sha256 of its arrays (names, dtypes, shapes and
bytes; :func:`arrays_sha256`), checked on every load: a file that is unreadable, incomplete or
altered (even with its structure intact) is logged as a warning, deleted and ignored, and the OSM
file is parsed again. :func:`save_arrays` and :func:`load_arrays` do this for any dict of arrays. Files live in ``lifecircle.read.osm.cache_dir() / "networks"``; deleting that folder
is always safe.
The other OSM layers (facilities, buildings, landuse, boundaries) are kept the same way, checksum
included, in ``cache_dir() / "layers"`` (:func:`save_layer`, :func:`load_layer`; see
:mod:`lifecircle.read.layers`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

log = logging.getLogger("lifecircle")

__all__ = ["CACHE_FORMAT", "network_cache_dir", "network_cache_path", "save_network", "load_network",
           "clear_network_cache", "arrays_sha256", "save_arrays", "load_arrays", "network_arrays",
           "network_from_arrays", "LAYER_CACHE_FORMAT", "layer_cache_dir", "layer_cache_path", "save_layer",
           "load_layer", "clear_layer_cache"]

#: Version of the file layout below; part of every key. 2: the arrays' sha256 inside the file.
CACHE_FORMAT = 2
#: Name of the member holding :func:`arrays_sha256` of the other members.
CHECKSUM = "sha256"
_ARRAYS = ("node_id", "lon", "lat", "x", "y", "u", "v", "length_m")
_DTYPES = {"node_id": np.int64, "u": np.int64, "v": np.int64}


def arrays_sha256(arrays: Mapping[str, Any]) -> str:
    """sha256 of a dict of arrays: every name, dtype, shape and the bytes, in name order.

    Any change (one value, a dtype, a shape, a renamed or missing array) gives another digest.

    >>> a = {"x": np.array([1.0, 2.0]), "n": np.array(3)}
    >>> arrays_sha256(a) == arrays_sha256({"n": np.array(3), "x": np.array([1.0, 2.0])})
    True
    >>> arrays_sha256(a) == arrays_sha256({**a, "x": np.array([1.0, 2.5])})
    False
    >>> arrays_sha256(a) == arrays_sha256({**a, "x": np.array([1.0, 2.0], dtype=np.float32)})
    False
    >>> arrays_sha256(a) == arrays_sha256({**a, "n": np.array([3])})  # shape () vs (1,)
    False
    """
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.asarray(arrays[name])  # not ascontiguousarray: it makes a 0-d array 1-d
        if a.dtype.hasobject:
            raise TypeError(f"array {name!r} holds Python objects; cache only plain arrays")
        data = a.tobytes(order="C")
        header = json.dumps([name, a.dtype.str, list(a.shape), len(data)]).encode("utf-8")
        h.update(len(header).to_bytes(8, "little"))
        h.update(header)
        h.update(data)
    return h.hexdigest()


def save_arrays(path: str | os.PathLike[str], arrays: Mapping[str, Any]) -> None:
    """Write plain arrays (no pickles) and their :func:`arrays_sha256` to an ``.npz`` file (temp name, then rename)."""
    from .files import atomic_path

    plain = {name: np.asarray(a) for name, a in arrays.items()}
    if CHECKSUM in plain:
        raise ValueError(f"{CHECKSUM!r} is reserved for the checksum")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **plain, **{CHECKSUM: np.asarray(arrays_sha256(plain))})


def load_arrays(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read the arrays written by :func:`save_arrays`; ``ValueError`` if they do not match their checksum.

    Also raises what reading a damaged file raises (``zipfile.BadZipFile``, ``EOFError``, ...).

    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "a.npz"
    >>> save_arrays(f, {"x": np.arange(3.0)})
    >>> load_arrays(f)["x"].tolist()
    [0.0, 1.0, 2.0]
    >>> with np.load(f) as z:
    ...     np.savez(f, x=np.array([0.0, 1.0, 9.0]), sha256=z["sha256"])  # altered, old checksum
    >>> load_arrays(f)
    Traceback (most recent call last):
    ...
    ValueError: the arrays do not match their sha256 (the file was altered or damaged)
    """
    with np.load(path, allow_pickle=False) as z:
        arrays = {name: z[name] for name in z.files}
    stored = arrays.pop(CHECKSUM, None)
    if stored is None or stored.shape != () or stored.dtype.kind != "U":
        raise ValueError("no checksum in the file")
    if str(stored) != arrays_sha256(arrays):
        raise ValueError("the arrays do not match their sha256 (the file was altered or damaged)")
    return arrays


def network_cache_dir() -> Path:
    """Folder holding cached networks (created on first use)."""
    from .osm import cache_dir

    d = cache_dir() / "networks"
    d.mkdir(parents=True, exist_ok=True)
    return d


def network_cache_path(sha256: str, *, walk_filter: str) -> Path:
    """Cache file of the network parsed from a file with this SHA-256 by walk filter ``walk_filter``.

    >>> network_cache_path("ab" * 32, walk_filter="w1").name
    'abababababababababababababababababababababababababababababababab-w1-c2.npz'
    """
    return network_cache_dir() / f"{sha256}-{walk_filter}-c{CACHE_FORMAT}.npz"


def save_network(network, path: str | os.PathLike[str]) -> None:
    """Write a :class:`~lifecircle.read.network.WalkNetwork`'s arrays and their checksum to ``path``.

    Examples
    --------
    >>> import tempfile
    >>> from lifecircle.read.network import WalkNetwork
    >>> net = WalkNetwork.from_lonlat([121.40, 121.401], [31.20, 31.20], [0], [1], highway=["footway"])
    >>> f = Path(tempfile.mkdtemp()) / "net.npz"
    >>> save_network(net, f)
    >>> back = WalkNetwork.from_arrays(load_network(f), source=net.source)
    >>> back.length_m.tolist() == net.length_m.tolist(), back.highway.tolist(), back.crs == net.crs
    (True, ['footway'], True)
    """
    save_arrays(path, network_arrays(network))


def network_arrays(network) -> dict[str, np.ndarray]:
    """A :class:`~lifecircle.read.network.WalkNetwork` as plain arrays (what :func:`save_network` writes).

    :func:`network_from_arrays` turns them back into the parts of a network.
    """
    arrays: dict[str, Any] = {name: np.asarray(getattr(network, name)) for name in _ARRAYS}
    if network.highway is not None:  # hashed, not sorted: a few distinct values over millions of edges
        import pandas as pd

        hw = np.asarray(network.highway, dtype=object)
        codes, values = pd.factorize(hw, use_na_sentinel=True)  # None and NaN -> -1
        none = np.asarray(hw == None, dtype=bool)  # noqa: E711 - elementwise: which are None (NaN is "nan")
        codes = np.where(codes >= 0, codes, np.where(none, len(values), len(values) + 1))
        categories, remap = np.unique(np.asarray([str(v) for v in values] + ["", "nan"], dtype=str),
                                      return_inverse=True)
        arrays["highway_categories"] = categories
        arrays["highway_codes"] = remap.astype(np.int32)[codes]
        arrays["highway_none"] = none
    arrays["crs"] = np.asarray(network.crs.srs if network.crs.srs else network.crs.to_wkt())
    arrays["format"] = np.asarray(CACHE_FORMAT)
    return arrays


def load_network(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """Read the arrays written by :func:`save_network`; ``None`` (with a warning) if the file is unusable.

    Returns a dict of the arrays plus ``crs`` and ``highway``, ready for
    :meth:`lifecircle.read.network.WalkNetwork.from_arrays`. A corrupt, incomplete or altered
    file (checksum mismatch) is deleted so that the next run writes a good one.
    """
    p = Path(path)
    if not p.is_file():
        return None
    try:
        return network_from_arrays(load_arrays(p))
    except Exception as exc:  # zipfile.BadZipFile, EOFError, KeyError, ValueError, OSError, pyproj errors
        log.warning("ignoring the unreadable network cache file %s (%s: %s); deleted, parsing the OSM file again",
                    p, type(exc).__name__, str(exc)[:100])
        try:
            p.unlink()
        except OSError:
            pass
        return None


def network_from_arrays(z: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The parts of a network (for :meth:`WalkNetwork.from_arrays`) from :func:`network_arrays`' arrays.

    Raises ``ValueError`` (or ``KeyError``) when they do not make a network: another format,
    lengths that differ, edges pointing outside the nodes.
    """
    import pyproj

    if int(z["format"]) != CACHE_FORMAT:
        raise ValueError(f"cache format {int(z['format'])}, expected {CACHE_FORMAT}")
    arrays = {name: np.asarray(z[name], dtype=_DTYPES.get(name, np.float64)) for name in _ARRAYS}
    highway = None
    if "highway_codes" in z:
        cats = z["highway_categories"].astype(object)
        highway = cats[z["highway_codes"]]
        highway[z["highway_none"]] = None
    crs = pyproj.CRS.from_user_input(str(z["crs"]))
    n = len(arrays["node_id"])
    m = len(arrays["u"])
    if any(len(arrays[k]) != n for k in ("lon", "lat", "x", "y")) or any(
            len(arrays[k]) != m for k in ("v", "length_m")) or (highway is not None and len(highway) != m):
        raise ValueError("array lengths do not match")
    if m and (min(arrays["u"].min(), arrays["v"].min()) < 0 or max(arrays["u"].max(), arrays["v"].max()) >= n):
        raise ValueError("edge endpoints outside the node arrays")
    return {**arrays, "crs": crs, "highway": highway}


def clear_network_cache() -> int:
    """Delete every cached network; return how many files were removed."""
    n = 0
    for f in network_cache_dir().glob("*.npz"):
        f.unlink(missing_ok=True)
        n += 1
    return n


# --------------------------------------------------------------------------------------------
# the other OSM layers (facilities, buildings, boundaries; lifecircle.read.layers)

#: Version of the layer files' layout; part of every key.
LAYER_CACHE_FORMAT = 2  # 2: with the arrays' sha256 (save_arrays)


def layer_cache_dir() -> Path:
    """Folder holding cached OSM layers (created on first use)."""
    from .osm import cache_dir

    d = cache_dir() / "layers"
    d.mkdir(parents=True, exist_ok=True)
    return d


def layer_cache_path(sha256: str, layer: str, *, key: str) -> Path:
    """Cache file of one OSM layer of the file with this SHA-256; ``key`` names the reader version and options.

    >>> layer_cache_path("ab" * 32, "buildings", key="r1").name
    'abababababababababababababababababababababababababababababababab-buildings-r1-l2.npz'
    """
    return layer_cache_dir() / f"{sha256}-{layer}-{key}-l{LAYER_CACHE_FORMAT}.npz"


def save_layer(arrays: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Write one layer's plain arrays (no pickles) and their checksum to ``path`` (:func:`save_arrays`).

    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "layer.npz"
    >>> save_layer({"osm_id": np.array([3, 4])}, f)
    >>> load_layer(f)["osm_id"].tolist()
    [3, 4]
    """
    save_arrays(path, {**arrays, "layer_format": np.asarray(LAYER_CACHE_FORMAT)})


def load_layer(path: str | os.PathLike[str]) -> dict[str, np.ndarray] | None:
    """The arrays written by :func:`save_layer`; ``None`` when there is no such file, or (logged, and the
    file deleted) when it cannot be read or does not match its checksum."""
    p = Path(path)
    if not p.is_file():
        return None
    try:
        arrays = load_arrays(p)
        if int(arrays.pop("layer_format", -1)) != LAYER_CACHE_FORMAT:
            raise ValueError("another layer cache format")
    except Exception as exc:  # zipfile.BadZipFile, EOFError, KeyError, ValueError (checksum), OSError
        log.warning("ignoring the unreadable OSM layer cache file %s (%s: %s); deleted, reading the OSM file again",
                    p, type(exc).__name__, str(exc)[:100])
        try:
            p.unlink()
        except OSError:
            pass
        return None
    return arrays


def clear_layer_cache() -> int:
    """Delete every cached OSM layer; return how many files were removed."""
    n = 0
    for f in layer_cache_dir().glob("*.npz"):
        f.unlink(missing_ok=True)
        n += 1
    return n
