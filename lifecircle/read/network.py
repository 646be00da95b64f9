"""Build the walking network: OSM ways a pedestrian can use, as arrays and a sparse matrix.

Which ways are walkable (:func:`is_walkable`)
--------------------------------------------
We start from OSMnx's ``walk`` network type and add rules for Chinese cities. In order:

1. **Never walkable**, whatever else the way says: no ``highway`` tag; ``area=yes``; a ``highway``
   that is not (yet, or any longer) a road — ``construction proposed planned abandoned razed no``,
   also with ``foot=*``; ``motorroad=yes``; ``foot=no``; a carriageway whose sidewalks are mapped
   as their own ways (``sidewalk=separate``, also ``sidewalk:both|left|right=separate``, as
   OSMnx). A ``construction=*`` / ``proposed=*`` key on an in-use highway value (road works,
   a planned upgrade) does not remove the way: OSMnx looks only at the ``highway`` value, and so
   do we.
2. An explicit ``foot=yes|designated|permissive|official`` makes any other way walkable (a
   cycleway or a private service road with ``foot=yes``).
3. **Elevated expressways and road tunnels**: ``highway=trunk|trunk_link`` is dropped when it is
   an expressway — ``expressway=yes``; a name (``name``, ``bridge:name``) with 高架, 快速路, 高速,
   隧道 or 越江; a ``ref`` of a national or provincial expressway (G/S with 1–2 or 4 digits:
   S20, G15, G1501; not the ordinary national roads G204, G318) —, a ``tunnel``, or a bridge of
   an elevated road: ``bridge=viaduct``, ``layer`` ≥ 2, an **unnamed** trunk bridge (an ordinary
   road bridge carries the road's name), a ring road's bridge (内环/中环/外环/郊环: 中环路 is
   elevated without 高架 in its name), and every ``trunk_link`` bridge (the ramps up to an
   elevated road) unless it has a sidewalk. An ordinary **named trunk bridge** (layer 1 or none,
   no expressway sign: 沪青平公路 over a 河/浜/港 in Qingpu) is walkable — in the suburbs it is often
   the only crossing. In Shanghai the elevated roads (延安高架路, 南北高架路) and river tunnels
   (延安东路隧道) are all caught by their names; the at-grade street under an elevated road is
   mapped as its own way and kept. A tag-only rule cannot see a bridge's length or a parallel
   street of the same name, so these are not used.
4. A sidewalk (``sidewalk=yes|both|left|right``) makes a cycleway, busway or guided busway
   walkable, never a motorway or an expressway.
5. Otherwise OSMnx ``walk``: ``highway`` ``bus_guideway busway cycleway motorway motorway_link
   platform raceway rest_area services`` and ``access=private|no`` or ``service=private`` are
   not walkable; everything else is.

Edges are undirected (one-way streets are two-way on foot). Every OSM node of a kept way is a
graph node, so edges are straight segments; lengths are in metres, measured in the local UTM
zone (scale error < 0.1 %).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pyproj
import scipy.sparse as sp

from ..errors import EmptyResultError, InputDataError
from .osm import file_sha256, read_way_segments

log = logging.getLogger("lifecircle")

__all__ = [
    "WalkNetwork",
    "is_walkable",
    "local_utm_crs",
    "WALK_FILTER_VERSION",
    "network_from_osm",
    "network_from_graph",
    "network_from_place",
    "network_from_bbox",
    "network_from_polygon",
]

#: Version of the walk filter and OSM parsing; cached networks of another version are not reused.
#: Bump it whenever :func:`is_walkable` or :func:`network_from_osm` would give a different network.
WALK_FILTER_VERSION = 2

#: ``highway`` values of ways that are not (yet, or any longer) roads: never walkable.
_NOT_A_ROAD = frozenset("abandoned construction no planned proposed razed".split())
_EXCLUDED_HIGHWAY = frozenset(
    "bus_guideway busway cycleway motorway motorway_link platform raceway rest_area services".split()
)
_SIDEWALK_MAKES_WALKABLE = frozenset({"bus_guideway", "busway", "cycleway"})
_EXPRESSWAY_WORDS = ("高架", "隧道", "快速路", "越江", "高速")
#: Shanghai's ring roads are elevated where they bridge (中环路 carries no 高架 in its name); the
#: at-grade road beside them is not a trunk bridge and stays.
_RING_WORDS = ("内环", "中环", "外环", "郊环")
_EXPRESSWAY_REF = re.compile(r"^[GS](\d{1,2}|\d{4})$")  # S20, G15, G1501 (G204, G318 are ordinary roads)
_FOOT_OK = frozenset({"yes", "designated", "permissive", "official"})
_SIDEWALK_OK = frozenset({"yes", "both", "left", "right"})
_SIDEWALK_KEYS = ("sidewalk", "sidewalk:both", "sidewalk:left", "sidewalk:right")


def _is_expressway(tags: Mapping[str, str]) -> bool:
    """A trunk road that is an expressway, elevated or in a tunnel (rule 3 of the module docstring)."""
    names = tags.get("name", "") + " " + tags.get("bridge:name", "")
    if tags.get("expressway") == "yes" or any(w in names for w in _EXPRESSWAY_WORDS):
        return True
    refs = [r.strip() for r in tags.get("ref", "").replace(",", ";").split(";")]
    if any(_EXPRESSWAY_REF.match(r) for r in refs):
        return True
    if tags.get("tunnel", "no") not in ("no", "building_passage"):
        return True
    bridge = tags.get("bridge", "no")
    if bridge == "no":
        return False
    try:
        layer = float(tags.get("layer", "0").split(";")[0])
    except ValueError:
        layer = 0.0
    if bridge == "viaduct" or layer >= 2 or not (tags.get("name") or tags.get("ref")):
        return True
    if any(w in names for w in _RING_WORDS):
        return True
    if tags.get("highway") == "trunk_link":  # a ramp up to an elevated road, unless it has a sidewalk
        return not any(tags.get(k) in _SIDEWALK_OK for k in _SIDEWALK_KEYS)
    return False


def is_walkable(tags: Mapping[str, str]) -> bool:
    """Whether a pedestrian can use an OSM way with these tags (rules in the module docstring).

    >>> is_walkable({"highway": "residential"})
    True
    >>> is_walkable({"highway": "trunk", "bridge": "yes", "name": "延安高架路"})
    False
    >>> is_walkable({"highway": "trunk", "bridge": "yes", "layer": "1", "name": "沪青平公路"})  # over a creek
    True
    >>> is_walkable({"highway": "cycleway", "foot": "yes"})
    True
    >>> is_walkable({"highway": "construction", "foot": "yes"})
    False
    >>> is_walkable({"highway": "motorway", "sidewalk": "both"}), is_walkable({"highway": "primary", "sidewalk": "separate"})
    (False, False)
    >>> is_walkable({"highway": "footway", "access": "private"})
    False
    """
    hw = tags.get("highway")
    if not hw or hw in _NOT_A_ROAD or tags.get("area") == "yes" or tags.get("motorroad") == "yes":
        return False
    foot = tags.get("foot")
    if foot == "no" or any(tags.get(k) == "separate" for k in _SIDEWALK_KEYS):
        return False
    if foot in _FOOT_OK:
        return True
    if hw in ("trunk", "trunk_link") and _is_expressway(tags):
        return False
    if hw in _SIDEWALK_MAKES_WALKABLE and any(tags.get(k) in _SIDEWALK_OK for k in _SIDEWALK_KEYS):
        return True
    if hw in _EXCLUDED_HIGHWAY:
        return False
    if tags.get("access") in ("private", "no") or tags.get("service") == "private":
        return False
    return True


def local_utm_crs(lon: float, lat: float) -> pyproj.CRS:
    """The WGS84 UTM zone containing a point, for metric work.

    >>> local_utm_crs(121.47, 31.23).to_epsg()
    32651
    """
    zone = int((lon + 180) // 6) % 60 + 1
    return pyproj.CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


@dataclass(frozen=True, eq=False)
class WalkNetwork:
    """An undirected walking network held as arrays.

    Nodes are indexed 0..n-1 (``node_id`` keeps the OSM id, or a negative number for nodes we
    made); every edge ``(u[i], v[i])`` is a straight segment of ``length_m[i]`` metres. ``x``/``y``
    are coordinates in ``crs`` (a metric UTM zone), ``lon``/``lat`` in WGS84.

    Examples
    --------
    A 3-node path 0 — 1 — 2 with 100 m segments:

    >>> net = WalkNetwork.from_lonlat([0, 0.0009, 0.0018], [0, 0, 0], [0, 1], [1, 2])
    >>> net.n_nodes, net.n_edges, [round(x) for x in net.length_m]
    (3, 2, [100, 100])
    >>> net.matrix().shape
    (3, 3)
    """

    node_id: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    x: np.ndarray
    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    length_m: np.ndarray
    crs: pyproj.CRS
    highway: np.ndarray | None = None
    source: dict[str, Any] = field(default_factory=dict)

    @property
    def n_nodes(self) -> int:
        return len(self.node_id)

    @property
    def n_edges(self) -> int:
        return len(self.u)

    @classmethod
    def from_arrays(cls, arrays: dict[str, Any], *, source: dict[str, Any] | None = None) -> "WalkNetwork":
        """A network from the arrays of :func:`lifecircle.read.cache.load_network` (the cache file)."""
        return cls(arrays["node_id"], arrays["lon"], arrays["lat"], arrays["x"], arrays["y"], arrays["u"],
                   arrays["v"], arrays["length_m"], arrays["crs"], arrays["highway"], dict(source or {}))

    @classmethod
    def from_lonlat(
        cls,
        lon: Any,
        lat: Any,
        u: Any,
        v: Any,
        *,
        node_id: Any = None,
        highway: Any = None,
        crs: pyproj.CRS | None = None,
        source: dict[str, Any] | None = None,
    ) -> "WalkNetwork":
        """Build a network from node coordinates (WGS84) and edge index pairs.

        Self-loops and duplicate edges are removed; edge lengths are straight-line metres in
        the local UTM zone (or ``crs``).
        """
        lon = np.asarray(lon, dtype=float)
        lat = np.asarray(lat, dtype=float)
        u = np.asarray(u, dtype=np.int64)
        v = np.asarray(v, dtype=np.int64)
        if len(lon) == 0 or len(u) == 0:
            raise EmptyResultError(
                "the walking network is empty: no walkable street in the input; check that the OSM "
                "file covers your study area (or use a larger --place/bbox)"
            )
        if u.size and (min(u.min(), v.min()) < 0 or max(u.max(), v.max()) >= len(lon)):
            raise InputDataError("edge endpoints must index the node arrays (0..n-1)")
        crs = crs or local_utm_crs(float(np.nanmedian(lon)), float(np.nanmedian(lat)))
        to_m = pyproj.Transformer.from_crs(4326, crs, always_xy=True)
        x, y = to_m.transform(lon, lat)
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        # canonical undirected edges: a < b, no loops, no duplicates
        a = np.minimum(u, v)
        b = np.maximum(u, v)
        keep = a != b
        hw = None if highway is None else np.asarray(highway, dtype=object)
        a, b = a[keep], b[keep]
        if hw is not None:
            hw = hw[keep]
        pair = a * len(lon) + b
        _, first = np.unique(pair, return_index=True)
        a, b = a[first], b[first]
        if hw is not None:
            hw = hw[first]
        length = np.hypot(x[a] - x[b], y[a] - y[b])
        ids = np.arange(len(lon), dtype=np.int64) if node_id is None else np.asarray(node_id, dtype=np.int64)
        return cls(ids, lon, lat, x, y, a, b, length, crs, hw, dict(source or {}))

    def matrix(self) -> sp.csr_matrix:
        """Symmetric CSR adjacency matrix of edge lengths in metres (for scipy.sparse.csgraph)."""
        return self._matrix

    def release_matrix(self) -> None:
        """Free the adjacency matrix :meth:`matrix` keeps (made again when next asked for)."""
        self.__dict__.pop("_matrix", None)

    @cached_property
    def _matrix(self) -> sp.csr_matrix:
        n = self.n_nodes
        rows = np.concatenate([self.u, self.v])
        cols = np.concatenate([self.v, self.u])
        data = np.concatenate([self.length_m, self.length_m])
        return sp.csr_matrix((data, (rows, cols)), shape=(n, n))

    def to_networkx(self):
        """The same network as a :class:`networkx.Graph` (attributes ``x``, ``y``, ``length``)."""
        import networkx as nx

        g = nx.Graph(crs=self.crs.to_string())
        g.add_nodes_from(
            (i, {"x": float(lo), "y": float(la), "osmid": int(o)})
            for i, (lo, la, o) in enumerate(zip(self.lon, self.lat, self.node_id))
        )
        g.add_weighted_edges_from(
            zip(self.u.tolist(), self.v.tolist(), self.length_m.tolist()), weight="length"
        )
        return g

    def edges_gdf(self):
        """Edges as a GeoDataFrame of LineStrings in WGS84 (for maps and GIS export)."""
        import geopandas as gpd
        import shapely

        coords = np.stack(
            [np.column_stack([self.lon[self.u], self.lat[self.u]]),
             np.column_stack([self.lon[self.v], self.lat[self.v]])], axis=1
        )
        data = {"u": self.u, "v": self.v, "length_m": self.length_m}
        if self.highway is not None:
            data["highway"] = self.highway
        return gpd.GeoDataFrame(data, geometry=shapely.linestrings(coords), crs=4326)

    def component_labels(self) -> np.ndarray:
        """Connected component of every node, numbered by size: 0 is the largest (most nodes).

        >>> net = WalkNetwork.from_lonlat([0, 0.001, 0.002, 0.01, 0.011], [0] * 5, [0, 1, 3], [1, 2, 4])
        >>> net.component_labels().tolist()
        [0, 0, 0, 1, 1]
        """
        return self._component_labels

    @cached_property
    def _component_labels(self) -> np.ndarray:
        from scipy.sparse.csgraph import connected_components

        _, labels = connected_components(self._matrix, directed=False)
        sizes = np.bincount(labels)
        rank = np.empty(sizes.size, dtype=np.int64)
        rank[np.lexsort((np.arange(sizes.size), -sizes))] = np.arange(sizes.size)  # ties: lowest label first
        return rank[labels]

    def largest_component_edges(self) -> np.ndarray:
        """Indices of the edges in the largest connected component (see :meth:`component_labels`)."""
        return np.flatnonzero(self.component_labels()[self.u] == 0)

    def largest_component_share(self) -> float:
        """Share of nodes in the largest connected component (a data-quality signal)."""
        return float(np.mean(self.component_labels() == 0))

    def describe(self) -> dict[str, Any]:
        """Counts and total length, for reports."""
        return {
            "nodes": int(self.n_nodes),
            "edges": int(self.n_edges),
            "length_km": round(float(self.length_m.sum()) / 1000, 3),
            "crs": self.crs.to_string(),
            **self.source,
        }


def network_from_osm(path, *, walkable=is_walkable, cache: bool = True) -> WalkNetwork:
    """Read the walking network from a local OSM file (.osm.pbf, .osm, .osm.bz2).

    Parameters
    ----------
    path : path or OSMLayers
        The OSM file, or its layers read by :func:`lifecircle.read.layers.read_layers` (the network
        layer, or nothing when the network is cached; the file is not read again).
    walkable : callable
        ``walkable(tags) -> bool`` deciding which ``highway`` ways are kept; default
        :func:`is_walkable`.
    cache : bool
        Reuse the network parsed before from a file with the same content (SHA-256) and keep this
        one for next time (see :mod:`lifecircle.read.cache`). Only the default ``walkable`` is cached.

    Examples
    --------
    >>> from lifecircle.datasets import toy_town_osm
    >>> net = network_from_osm(toy_town_osm())
    >>> net.n_edges > 0 and net.crs.to_epsg() == 32651
    True
    """
    from .osm import OSMLayers, check_osm_path

    layers = path if isinstance(path, OSMLayers) else None
    p = layers.path if layers is not None else Path(path)
    check_osm_path(p)
    sha = layers.sha256 if layers is not None else file_sha256(p)
    source = {"osm_file": str(p), "osm_sha256": sha}
    cache_file = None
    if cache and walkable is is_walkable:
        from . import cache as _cache

        try:
            cache_file = _cache.network_cache_path(sha, walk_filter=f"w{WALK_FILTER_VERSION}")
            arrays = _cache.load_network(cache_file)
            net = None if arrays is None else WalkNetwork.from_arrays(arrays, source=source)
        except OSError as exc:  # cache folder not writable: work without it
            log.warning("network cache unavailable (%s); parsing %s", exc, p.name)
            cache_file, net = None, None
        if net is not None:
            log.info("walking network of %s from the cache (%d nodes, %d edges)", p.name, net.n_nodes, net.n_edges)
            return net
    if layers is not None and layers.network is not None and layers.walkable is walkable:
        segs = layers.network
    else:
        segs = read_way_segments(p, walkable)
    if segs.ways_missing_nodes:
        log.info("%d ways reference nodes outside the extract; their outside parts are dropped",
                 segs.ways_missing_nodes)
    if len(segs.u) == 0:
        raise EmptyResultError(
            f"no walkable street in {p.name}: the file has no highway ways a pedestrian can use; "
            "use an extract that covers the study area (e.g. from `lifecircle fetch`)"
        )
    highway = segs.way_highway[segs.way_index]
    # keep only nodes used by kept segments
    used_mask = np.zeros(len(segs.node_id), dtype=bool)
    used_mask[segs.u] = True
    used_mask[segs.v] = True
    used = np.flatnonzero(used_mask)  # = np.unique(u ∪ v), in linear time
    remap = np.full(len(segs.node_id), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    net = WalkNetwork.from_lonlat(
        segs.lon[used], segs.lat[used], remap[segs.u], remap[segs.v],
        node_id=segs.node_id[used], highway=highway, source=source,
    )
    log.info("walking network: %d nodes, %d edges, %.1f km", net.n_nodes, net.n_edges,
             net.length_m.sum() / 1000)
    if cache_file is not None:
        try:
            _cache.save_network(net, cache_file)
        except OSError as exc:
            log.warning("could not write the network cache %s (%s)", cache_file, exc)
    return net


def network_from_graph(graph, *, source: dict[str, Any] | None = None) -> WalkNetwork:
    """Convert an OSMnx/networkx graph (nodes with ``x``=lon, ``y``=lat) to a :class:`WalkNetwork`.

    Curved edges (OSMnx ``geometry``) are split at their vertices so every edge stays straight.

    Examples
    --------
    >>> import networkx as nx
    >>> g = nx.MultiDiGraph(crs="epsg:4326")
    >>> g.add_node(1, x=121.40, y=31.20); g.add_node(2, x=121.4021, y=31.20)
    >>> _ = g.add_edge(1, 2, highway="footway")
    >>> net = network_from_graph(g)
    >>> net.n_edges, round(float(net.length_m[0])), net.node_id.tolist()
    (1, 200, [1, 2])
    """
    crs = str(graph.graph.get("crs", "epsg:4326"))
    if pyproj.CRS.from_user_input(crs).to_epsg() != 4326:
        raise InputDataError(
            f"graph is projected ({crs}); pass the unprojected OSMnx graph (before ox.project_graph)"
        )
    nodes = list(graph.nodes)
    index = {n: i for i, n in enumerate(nodes)}
    lon = [graph.nodes[n]["x"] for n in nodes]
    lat = [graph.nodes[n]["y"] for n in nodes]
    node_id = [n if isinstance(n, (int, np.integer)) else -1 - i for i, n in enumerate(nodes)]
    us: list[int] = []
    vs: list[int] = []
    hws: list[Any] = []
    for a, b, data in graph.edges(data=True):
        hw = data.get("highway")
        hw = hw[0] if isinstance(hw, list) else hw
        geom = data.get("geometry")
        if geom is None or len(geom.coords) <= 2:
            us.append(index[a]); vs.append(index[b]); hws.append(hw)
            continue
        inner = list(geom.coords)[1:-1]
        chain = [index[a]]
        for xy in inner:
            lon.append(xy[0]); lat.append(xy[1]); node_id.append(-1 - len(node_id))
            chain.append(len(lon) - 1)
        chain.append(index[b])
        us.extend(chain[:-1]); vs.extend(chain[1:]); hws.extend([hw] * (len(chain) - 1))
    return WalkNetwork.from_lonlat(lon, lat, us, vs, node_id=node_id, highway=hws,
                                   source=source or {"graph": graph.graph.get("created_with", "networkx")})


def _osmnx_walk(download, query: Any, label: str) -> WalkNetwork:
    import osmnx as ox

    from .osm import cache_dir

    ox.settings.use_cache = True
    ox.settings.cache_folder = str(cache_dir() / "osmnx")
    try:
        g = download(query, network_type="walk", simplify=False, retain_all=True)
    except Exception as exc:  # requests errors, osmnx InsufficientResponseError, geocoder errors
        from ..errors import DownloadError

        raise DownloadError(
            f"could not download the walking network for {label} ({type(exc).__name__}: "
            f"{str(exc)[:120]}); check the internet connection or use a local file with --osm"
        ) from None
    return network_from_graph(g, source={"overpass": label})


def network_from_place(place: str) -> WalkNetwork:
    """Download the walking network of a named place from Overpass (OSMnx, cached)."""
    import osmnx as ox

    return _osmnx_walk(ox.graph_from_place, place, f"place {place!r}")


def network_from_bbox(bbox: tuple[float, float, float, float]) -> WalkNetwork:
    """Download the walking network inside ``(west, south, east, north)`` from Overpass."""
    import osmnx as ox

    return _osmnx_walk(ox.graph_from_bbox, tuple(bbox), f"bbox {tuple(bbox)}")


def network_from_polygon(polygon) -> WalkNetwork:
    """Download the walking network inside a WGS84 shapely polygon from Overpass."""
    import osmnx as ox

    return _osmnx_walk(ox.graph_from_polygon, polygon, "polygon")
