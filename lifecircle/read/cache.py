"""Keep parsed walking networks on disk, keyed by the OSM file's SHA-256 and the walk-filter version.

A second analysis of the same extract loads the network's arrays from one ``.npz`` file (no pickles)
instead of parsing the OSM file again. The key changes when the file's content changes or when
lifecircle's walk filter or parser changes (:data:`lifecircle.read.network.WALK_FILTER_VERSION`), so a
stale network is never used. An unreadable cache file is logged, deleted and ignored: the OSM
file is parsed again. Files live in ``lifecircle.read.osm.cache_dir() / "networks"``; deleting that folder
is always safe.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("lifecircle")

__all__ = ["CACHE_FORMAT", "network_cache_dir", "network_cache_path", "save_network", "load_network",
           "clear_network_cache"]

#: Version of the file layout below; part of every key.
CACHE_FORMAT = 1
_ARRAYS = ("node_id", "lon", "lat", "x", "y", "u", "v", "length_m")
_DTYPES = {"node_id": np.int64, "u": np.int64, "v": np.int64}


def network_cache_dir() -> Path:
    """Folder holding cached networks (created on first use)."""
    from .osm import cache_dir

    d = cache_dir() / "networks"
    d.mkdir(parents=True, exist_ok=True)
    return d


def network_cache_path(sha256: str, *, walk_filter: str) -> Path:
    """Cache file of the network parsed from a file with this SHA-256 by walk filter ``walk_filter``.

    >>> network_cache_path("ab" * 32, walk_filter="w1").name
    'abababababababababababababababababababababababababababababababab-w1-c1.npz'
    """
    return network_cache_dir() / f"{sha256}-{walk_filter}-c{CACHE_FORMAT}.npz"


def save_network(network, path: str | os.PathLike[str]) -> None:
    """Write a :class:`~lifecircle.read.network.WalkNetwork`'s arrays to ``path`` (temp name, then rename).

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
    from .files import atomic_path

    arrays: dict[str, Any] = {name: np.asarray(getattr(network, name)) for name in _ARRAYS}
    if network.highway is not None:
        values = ["" if h is None else str(h) for h in network.highway]
        categories, codes = np.unique(np.asarray(values, dtype=str), return_inverse=True)
        arrays["highway_categories"] = categories
        arrays["highway_codes"] = codes.astype(np.int32)
        arrays["highway_none"] = np.asarray([h is None for h in network.highway], dtype=bool)
    arrays["crs"] = np.asarray(network.crs.srs if network.crs.srs else network.crs.to_wkt())
    arrays["format"] = np.asarray(CACHE_FORMAT)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def load_network(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """Read the arrays written by :func:`save_network`; ``None`` (with a warning) if the file is unusable.

    Returns a dict of the arrays plus ``crs`` and ``highway``, ready for
    :meth:`lifecircle.read.network.WalkNetwork.from_arrays`. A corrupt or incomplete file is
    deleted so that the next run writes a good one.
    """
    import pyproj

    p = Path(path)
    if not p.is_file():
        return None
    try:
        with np.load(p, allow_pickle=False) as z:
            if int(z["format"]) != CACHE_FORMAT:
                raise ValueError(f"cache format {int(z['format'])}, expected {CACHE_FORMAT}")
            arrays = {name: np.array(z[name], dtype=_DTYPES.get(name, np.float64)) for name in _ARRAYS}
            highway = None
            if "highway_codes" in z.files:
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
    except Exception as exc:  # zipfile.BadZipFile, EOFError, KeyError, ValueError, OSError, pyproj errors
        log.warning("ignoring the unreadable network cache file %s (%s: %s); parsing the OSM file again",
                    p, type(exc).__name__, str(exc)[:100])
        try:
            p.unlink()
        except OSError:
            pass
        return None
    return {**arrays, "crs": crs, "highway": highway}


def clear_network_cache() -> int:
    """Delete every cached network; return how many files were removed."""
    n = 0
    for f in network_cache_dir().glob("*.npz"):
        f.unlink(missing_ok=True)
        n += 1
    return n
