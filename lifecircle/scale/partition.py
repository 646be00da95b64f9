"""Split one large area into tiles with a halo, compute walking times per tile in parallel, merge.

:func:`walking_times_tiled` gives the same minutes per resident as
:func:`lifecircle.measure.walking_times.walking_times` (equal to ~1e-12 min, see below), so the coverage
table is the same too, while each tile job only holds its tile's part of the network.

How a tile is built
-------------------
1. Every resident and facility is snapped **once, on the whole network** (one vectorised
   :func:`~lifecircle.measure.snapping.snap_points` call, as in the single run), so every point joins
   the same edge at the same position whichever tile it lands in.
2. Snapped residents are grouped by a square grid of ``tile_m`` metres in the network's UTM
   CRS: the tile's *core*. The core is grown by ``halo_m`` on every side: the *halo box*.
3. The tile keeps the facilities whose point lies in the halo box, every edge with **both
   ends** in the halo box, and the edges its residents and facilities snap to (a point's
   nearest edge can be a long street whose ends lie far outside the box).

Why a halo of ``max_dist_m`` is enough
--------------------------------------
Let ``D = config.max_dist_m`` (the search cut-off). A resident at point ``p`` gets a finite time
only through a path of length ``<= D`` in the access graph: the access leg from ``p`` to its
projection, street edges, and the facility's access leg. Every piece of that path is weighted
by the straight-line length between its ends in the same metric CRS (edge lengths are
``hypot`` of UTM coordinates; access legs are straight), and **a network distance is never
shorter than the straight-line distance**: by the triangle inequality every point of the path,
every node on it and the facility itself lie within ``D`` of ``p``, hence inside the core grown
by ``D``. So every such path exists in the tile's graph: its inner edges have both ends inside
the box, and its first and last, partly walked edges are the snapped edges the tile keeps
explicitly. Conversely the tile's graph is a subgraph of the full one, so it never finds a
shorter path. Distances ``<= D`` are therefore equal, and longer ones are ``inf`` in both runs
(the cut-off). A facility outside the halo box is more than ``D`` away in a straight line, so it
cannot matter. The default halo, ``D + max_snap_m``, adds the snapping distance as a margin;
any ``halo_m >= D`` is exact.

Floating point: the single run splits an edge at the projections of *all* points, a tile only
at its own, so a distance is summed from different pieces and may differ in the last bits
(~1e-12 minutes). A time within that of a threshold or of the cut-off could round across it.

Memory: the caller holds the parent network; each tile is written to a scratch folder as one
``.npz`` of arrays, and a tile job (possibly on another machine of a Dask cluster) reads it,
runs one Dijkstra per category and writes its residents' minutes as ``.npy``. No graph is
pickled between processes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd
import pyproj

from ..config import AnalysisConfig, minutes_column
from ..errors import EmptyResultError, InputDataError
from ..read.files import atomic_path
from ..read.network import WalkNetwork
from ..measure.snapping import Snap
from ..measure.walking_times import WalkingTimes, build_access_graph, snap_all

log = logging.getLogger("lifecircle")

__all__ = [
    "Tile",
    "default_halo_m",
    "plan_tiles",
    "edges_within",
    "clip_network",
    "walking_times_tiled",
    "run_tile",
    "replicate_network",
    "replicate_points",
]


def default_halo_m(config: AnalysisConfig) -> float:
    """Halo around each tile: the search cut-off plus the snapping distance (``>= max_dist_m`` is exact).

    >>> default_halo_m(AnalysisConfig(minutes=(15,), max_snap_m=200))
    2200.0
    """
    return float(config.max_dist_m + config.max_snap_m)


@dataclass(frozen=True, eq=False)
class Tile:
    """One tile: its grid cell, boxes, and which residents, facilities and edges it holds.

    ``residents``, ``facilities`` and ``edges`` index the caller's residents, facilities and the
    parent network's edges. Boxes are ``(xmin, ymin, xmax, ymax)`` in the network's CRS.
    """

    col: int
    row: int
    core: tuple[float, float, float, float]
    halo_box: tuple[float, float, float, float]
    residents: np.ndarray
    facilities: np.ndarray
    edges: np.ndarray

    @property
    def name(self) -> str:
        return f"tile_{self.col}_{self.row}"


def edges_within(network: WalkNetwork, box: tuple[float, float, float, float]) -> np.ndarray:
    """Indices of the edges whose both ends lie inside ``box`` (network CRS, bounds inclusive).

    >>> net = WalkNetwork.from_lonlat([121.40, 121.401, 121.402], [31.2, 31.2, 31.2], [0, 1], [1, 2])
    >>> x0 = float(net.x[0])
    >>> edges_within(net, (x0 - 1, -1e9, x0 + 150, 1e9)).tolist()
    [0]
    """
    xmin, ymin, xmax, ymax = box
    inside = (network.x >= xmin) & (network.x <= xmax) & (network.y >= ymin) & (network.y <= ymax)
    return np.flatnonzero(inside[network.u] & inside[network.v])


def clip_network(network: WalkNetwork, edges: np.ndarray) -> tuple[WalkNetwork, np.ndarray]:
    """Sub-network made of some of the parent's edges, with their lengths copied unchanged.

    Parameters
    ----------
    network : WalkNetwork
        The parent.
    edges : array of int
        Parent edge indices to keep (sorted and de-duplicated here).

    Returns
    -------
    (WalkNetwork, ndarray)
        The sub-network, and for each of its edges the parent edge index. Nodes keep their
        ids, coordinates and relative order.

    Examples
    --------
    >>> net = WalkNetwork.from_lonlat([121.40, 121.401, 121.402], [31.2, 31.2, 31.2], [0, 1], [1, 2])
    >>> sub, parent_edge = clip_network(net, [1])
    >>> sub.n_nodes, sub.n_edges, parent_edge.tolist(), bool(sub.length_m[0] == net.length_m[1])
    (2, 1, [1], True)
    """
    edges = np.unique(np.asarray(edges, dtype=np.int64))
    if edges.size == 0:
        raise EmptyResultError("the tile holds no street; use larger tiles (tile_m) or check the network")
    u, v = network.u[edges], network.v[edges]
    nodes, inverse = np.unique(np.concatenate([u, v]), return_inverse=True)
    k = edges.size
    sub = WalkNetwork(
        network.node_id[nodes], network.lon[nodes], network.lat[nodes], network.x[nodes], network.y[nodes],
        inverse[:k].astype(np.int64), inverse[k:].astype(np.int64), network.length_m[edges], network.crs,
        None if network.highway is None else network.highway[edges], dict(network.source),
    )
    return sub, edges


def plan_tiles(
    network: WalkNetwork,
    resident_snap: Snap,
    facility_snap: Snap,
    *,
    tile_m: float,
    halo_m: float,
    facility_mask: np.ndarray | None = None,
) -> list[Tile]:
    """Group snapped residents into ``tile_m`` grid cells and give each its halo (module docstring).

    Parameters
    ----------
    network : WalkNetwork
        The parent network the points were snapped to.
    resident_snap, facility_snap : Snap
        From :func:`~lifecircle.measure.snapping.snap_points` on ``network``.
    tile_m : float
        Side of the square tiles, metres (grid anchored at 0, 0 of the network's CRS).
    halo_m : float
        How far beyond its core a tile reaches, metres.
    facility_mask : array of bool, optional
        Facilities that may be used (e.g. of an analysed category); default all snapped ones.

    Returns
    -------
    list of Tile
        Only tiles holding at least one snapped resident, in (row, col) order.
    """
    if not (tile_m > 0 and halo_m >= 0):
        raise InputDataError(f"tile_m must be > 0 and halo_m >= 0 (got {tile_m}, {halo_m}); e.g. tile_m=3000")
    res = np.flatnonzero(resident_snap.snapped)
    fac_ok = facility_snap.snapped if facility_mask is None else facility_snap.snapped & facility_mask
    fac = np.flatnonzero(fac_ok)
    fx, fy = facility_snap.x[fac], facility_snap.y[fac]
    col = np.floor(resident_snap.x[res] / tile_m).astype(np.int64)
    row = np.floor(resident_snap.y[res] / tile_m).astype(np.int64)
    cells, inverse = np.unique(np.column_stack([row, col]), axis=0, return_inverse=True)
    inverse = inverse.ravel()
    order = np.argsort(inverse, kind="stable")
    starts = np.searchsorted(inverse[order], np.arange(len(cells) + 1))
    tiles = []
    for i, (r, c) in enumerate(cells):  # one iteration per tile, vectorised inside
        members = res[order[starts[i]:starts[i + 1]]]
        core = (c * tile_m, r * tile_m, (c + 1) * tile_m, (r + 1) * tile_m)
        box = (core[0] - halo_m, core[1] - halo_m, core[2] + halo_m, core[3] + halo_m)
        in_box = (fx >= box[0]) & (fx <= box[2]) & (fy >= box[1]) & (fy <= box[3])
        facilities = fac[in_box]
        edges = np.unique(np.concatenate([
            edges_within(network, box), resident_snap.edge[members], facility_snap.edge[facilities],
        ]))
        tiles.append(Tile(int(c), int(r), tuple(map(float, core)), tuple(map(float, box)),
                          members, facilities, edges))
    return tiles


def _write_tile(path: Path, network: WalkNetwork, tile: Tile, res_snap: Snap, fac_snap: Snap,
                fac_code: np.ndarray, cfg: AnalysisConfig) -> None:
    """Write everything a tile job needs as plain arrays (no pickled objects)."""
    sub, parent_edge = clip_network(network, tile.edges)
    to_sub = np.full(network.n_edges, -1, dtype=np.int64)
    to_sub[parent_edge] = np.arange(len(parent_edge))
    r, f = tile.residents, tile.facilities
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh, x=sub.x, y=sub.y, u=sub.u, v=sub.v, length_m=sub.length_m,
            res_edge=to_sub[res_snap.edge[r]], res_t=res_snap.t[r], res_dist_m=res_snap.dist_m[r],
            fac_edge=to_sub[fac_snap.edge[f]], fac_t=fac_snap.t[f], fac_dist_m=fac_snap.dist_m[f],
            fac_code=fac_code[f], n_categories=np.int64(len(cfg.categories)),
            max_dist_m=np.float64(cfg.max_dist_m), walk_speed_kmh=np.float64(cfg.walk_speed_kmh),
        )


def run_tile(tile_file: str | os.PathLike[str], out_file: str | os.PathLike[str]) -> dict[str, Any]:
    """One tile job: read the tile's arrays, one Dijkstra per category, write minutes (``.npy``).

    This is what a Dask worker runs; it only ever holds one tile. The output holds one row per
    resident of the tile and one column per category, in ``config.categories`` order.

    Returns
    -------
    dict
        ``out_file`` and the tile's sizes (for logs and benchmarks).
    """
    with np.load(tile_file) as z:
        a = {k: z[k] for k in z.files}
    n = len(a["x"])
    sub = WalkNetwork(np.arange(n), a["x"], a["y"], a["x"], a["y"], a["u"], a["v"], a["length_m"],
                      pyproj.CRS.from_epsg(4326))  # CRS unused here: only the arrays are walked
    nr = len(a["res_edge"])
    edge = np.concatenate([a["res_edge"], a["fac_edge"]])
    empty = np.zeros(len(edge))
    snap = Snap(edge, np.concatenate([a["res_t"], a["fac_t"]]),
                np.concatenate([a["res_dist_m"], a["fac_dist_m"]]), empty, empty)
    graph = build_access_graph(sub, snap, sources=nr + np.arange(len(a["fac_edge"])))
    res_nodes = graph.point_node[:nr]
    fac_nodes = graph.point_node[nr:]
    mpm = float(a["walk_speed_kmh"]) * 1000.0 / 60.0  # the same expression as walking_times
    minutes = np.full((nr, int(a["n_categories"])), np.inf)
    for k in range(minutes.shape[1]):
        src = fac_nodes[a["fac_code"] == k]
        if src.size:
            d = graph.distances_from(src, limit_m=float(a["max_dist_m"]))
            minutes[:, k] = d[res_nodes] / mpm
    with atomic_path(out_file) as tmp, open(tmp, "wb") as fh:
        np.save(fh, minutes)
    return {"out_file": str(out_file), "nodes": n, "edges": len(a["u"]), "residents": nr,
            "facilities": len(a["fac_edge"])}


@contextlib.contextmanager
def _scratch(scratch_dir: str | os.PathLike[str] | None) -> Iterator[Path]:
    if scratch_dir is None:
        with tempfile.TemporaryDirectory(prefix="lifecircle-tiles-") as d:
            yield Path(d)
    else:
        Path(scratch_dir).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="lifecircle-tiles-", dir=scratch_dir) as d:
            yield Path(d)


def walking_times_tiled(
    network: WalkNetwork,
    residents,
    facilities,
    *,
    config: AnalysisConfig | None = None,
    tile_m: float = 3000.0,
    halo_m: float | None = None,
    client: Any = None,
    scratch_dir: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> WalkingTimes:
    """:func:`~lifecircle.measure.walking_times.walking_times`, computed tile by tile (module docstring).

    Parameters
    ----------
    network, residents, facilities, config
        As for :func:`~lifecircle.measure.walking_times.walking_times`.
    tile_m : float
        Side of the square tiles in metres. Smaller tiles mean more, smaller jobs, but each
        tile repeats the work of its halo.
    halo_m : float, optional
        Default :func:`default_halo_m`; must be at least ``config.max_dist_m``.
    client : dask.distributed.Client, optional
        Run the tiles on this cluster (``scratch_dir`` must then be visible to every worker);
        without it the tiles run one after the other in this process.
    scratch_dir : path, optional
        Where the tile files go (a temporary folder inside it, removed afterwards); default the
        system's temporary folder.
    progress : callable, optional
        ``progress(tiles_done, tiles_total)`` after each tile.

    Returns
    -------
    WalkingTimes
        ``minutes``, ``resident_snap``, ``facility_snap``, ``n_residents`` and
        ``facility_category`` as from ``walking_times``; ``graph`` is None and
        ``distances_m`` empty, because no single access graph exists.

    Examples
    --------
    >>> import geopandas as gpd
    >>> from lifecircle import network_from_osm, facilities_from_osm, walking_times
    >>> from lifecircle.datasets import toy_town_osm
    >>> net = network_from_osm(toy_town_osm()); fac = facilities_from_osm(toy_town_osm())
    >>> res = gpd.GeoDataFrame({"population": [10, 5]}, crs=4326,
    ...                        geometry=gpd.points_from_xy([121.40, 121.406], [31.20, 31.202]))
    >>> tiled = walking_times_tiled(net, res, fac, tile_m=300)
    >>> single = walking_times(net, res, fac)
    >>> bool(np.allclose(tiled.minutes, single.minutes, rtol=0, atol=1e-9))
    True
    """
    cfg = config or AnalysisConfig()
    halo = default_halo_m(cfg) if halo_m is None else float(halo_m)
    if halo < cfg.max_dist_m:
        raise InputDataError(
            f"halo_m={halo:g} is shorter than the search cut-off ({cfg.max_dist_m:g} m): tiles would miss "
            f"facilities; use halo_m >= {cfg.max_dist_m:g} (or leave it unset)"
        )
    return _walking_times_tiled(network, residents, facilities, cfg=cfg, tile_m=float(tile_m), halo_m=halo,
                                client=client, scratch_dir=scratch_dir, progress=progress)


def _walking_times_tiled(network, residents, facilities, *, cfg, tile_m, halo_m, client, scratch_dir,
                         progress) -> WalkingTimes:
    """Unchecked core of :func:`walking_times_tiled` (tests use it with too small a halo)."""
    snap, res_snap, fac_snap, cats = snap_all(network, residents, facilities, cfg)
    nr = len(res_snap)
    fac_code = np.full(len(cats), -1, dtype=np.int64)
    for k, cat in enumerate(cfg.categories):
        fac_code[cats == cat] = k
    tiles = plan_tiles(network, res_snap, fac_snap, tile_m=tile_m, halo_m=halo_m, facility_mask=fac_code >= 0)
    log.info("%d tiles of %g m with a %g m halo for %d residents (%d nodes, %d edges)",
             len(tiles), tile_m, halo_m, nr, network.n_nodes, network.n_edges)
    minutes = np.full((nr, len(cfg.categories)), np.inf)
    with _scratch(scratch_dir) as scratch:
        ins = [scratch / f"{t.name}.npz" for t in tiles]
        outs = [scratch / f"{t.name}.minutes.npy" for t in tiles]
        for t, path in zip(tiles, ins):
            _write_tile(path, network, t, res_snap, fac_snap, fac_code, cfg)
        by_out = {str(o): t for o, t in zip(outs, tiles)}
        for done, stats in enumerate(_run_all(ins, outs, client), start=1):
            tile = by_out[stats["out_file"]]
            minutes[tile.residents] = np.load(stats["out_file"])
            log.debug("%s: %s", tile.name, stats)
            if progress is not None:
                progress(done, len(tiles))
    frame = pd.DataFrame({minutes_column(c): minutes[:, k] for k, c in enumerate(cfg.categories)},
                         index=residents.index)
    return WalkingTimes(frame, res_snap, fac_snap, None, nr, cats, {})


def _run_all(ins: list[Path], outs: list[Path], client: Any) -> Iterator[dict[str, Any]]:
    """Run the tile jobs here or on a Dask cluster, yielding each one's stats as it finishes."""
    if client is None:
        for i, o in zip(ins, outs):
            yield run_tile(i, o)
        return
    from distributed import as_completed

    futures = client.map(run_tile, [str(i) for i in ins], [str(o) for o in outs], pure=False)
    try:
        for fut in as_completed(futures):
            yield fut.result()
    finally:
        client.cancel(futures)


# --- synthetic city-scale networks for tests and benchmarks -------------------------------------


def _grid_offsets(network: WalkNetwork, nx: int, ny: int) -> tuple[np.ndarray, np.ndarray, float, float]:
    width = float(network.x.max() - network.x.min())
    height = float(network.y.max() - network.y.min())
    i, j = np.meshgrid(np.arange(nx), np.arange(ny))
    return i.ravel() * width, j.ravel() * height, width, height


def replicate_network(network: WalkNetwork, *, nx: int = 3, ny: int = 3, seam_m: float = 80.0) -> WalkNetwork:
    """A bigger network: ``nx`` × ``ny`` copies of ``network`` side by side, joined at the seams.

    Copy ``(i, j)`` is shifted by ``i`` widths east and ``j`` heights north (of the network's
    bounding box, in its metric CRS). At every seam, each node within ``seam_m`` of the seam is
    linked by a straight edge to the nearest node of the neighbouring copy within ``2 * seam_m``,
    so the copies form one city. Node ids are made up (negative). Used to build city-scale
    test and benchmark networks from a small real extract.

    Examples
    --------
    >>> net = WalkNetwork.from_lonlat([121.40, 121.401], [31.2, 31.2], [0], [1])
    >>> big = replicate_network(net, nx=3, ny=1)
    >>> big.n_nodes, big.n_edges, big.largest_component_share()  # 3 streets + 2 seam links
    (6, 5, 1.0)
    """
    from scipy.spatial import cKDTree

    n = network.n_nodes
    dx, dy, width, height = _grid_offsets(network, nx, ny)
    x = np.concatenate([network.x + ox for ox in dx])
    y = np.concatenate([network.y + oy for oy in dy])
    us = [network.u + k * n for k in range(len(dx))]
    vs = [network.v + k * n for k in range(len(dx))]
    x0, y0 = network.x - network.x.min(), network.y - network.y.min()
    seams = [(x0 > width - seam_m, x0 < seam_m, 1, 0), (y0 > height - seam_m, y0 < seam_m, 0, 1)]
    for near_end, near_start, di, dj in seams:
        a_nodes, b_nodes = np.flatnonzero(near_end), np.flatnonzero(near_start)
        if a_nodes.size == 0 or b_nodes.size == 0:
            continue
        for j in range(ny - dj):
            for i in range(nx - di):  # one iteration per seam, vectorised inside
                ka, kb = j * nx + i, (j + dj) * nx + i + di
                tree = cKDTree(np.column_stack([x[b_nodes + kb * n], y[b_nodes + kb * n]]))
                dist, nearest = tree.query(np.column_stack([x[a_nodes + ka * n], y[a_nodes + ka * n]]))
                ok = dist <= 2 * seam_m
                us.append(a_nodes[ok] + ka * n)
                vs.append(b_nodes[nearest[ok]] + kb * n)
    to_wgs = pyproj.Transformer.from_crs(network.crs, 4326, always_xy=True)
    lon, lat = (np.asarray(c, dtype=float) for c in to_wgs.transform(x, y))
    u, v = np.concatenate(us), np.concatenate(vs)
    a, b = np.minimum(u, v), np.maximum(u, v)
    keep = a != b
    _, first = np.unique(a[keep] * len(x) + b[keep], return_index=True)
    a, b = a[keep][first], b[keep][first]
    return WalkNetwork(-1 - np.arange(len(x), dtype=np.int64), lon, lat, x, y, a, b,
                       np.hypot(x[a] - x[b], y[a] - y[b]), network.crs, None,
                       {"replicated": f"{nx}x{ny} copies", **network.source})


def replicate_points(points, network: WalkNetwork, *, nx: int = 3, ny: int = 3):
    """Copies of WGS84 points shifted like the copies of :func:`replicate_network` (attributes kept).

    Examples
    --------
    >>> import geopandas as gpd
    >>> net = WalkNetwork.from_lonlat([121.40, 121.401], [31.2, 31.2], [0], [1])
    >>> pts = gpd.GeoDataFrame({"category": ["health"]}, geometry=gpd.points_from_xy([121.40], [31.2]), crs=4326)
    >>> out = replicate_points(pts, net, nx=2, ny=1)
    >>> len(out), out.category.tolist()
    (2, ['health', 'health'])
    """
    import geopandas as gpd

    dx, dy, _, _ = _grid_offsets(network, nx, ny)
    to_m = pyproj.Transformer.from_crs(4326, network.crs, always_xy=True)
    to_wgs = pyproj.Transformer.from_crs(network.crs, 4326, always_xy=True)
    px, py = to_m.transform(points.geometry.x.to_numpy(), points.geometry.y.to_numpy())
    copies = []
    for ox, oy in zip(dx, dy):
        lon, lat = to_wgs.transform(np.asarray(px) + ox, np.asarray(py) + oy)
        copies.append(gpd.GeoDataFrame(points.drop(columns="geometry"), geometry=gpd.points_from_xy(lon, lat),
                                       crs=4326))
    return gpd.GeoDataFrame(pd.concat(copies, ignore_index=True), crs=4326)
