"""The approaches benchmarked by ``run.py``; each runs alone in a fresh subprocess (``run.py --worker NAME``).

Every approach answers the same question on the same inputs: for each resident and each category,
is a facility within 5, 10 and 15 minutes' walk (4 km/h: 333, 667 and 1000 m)? The shares are
population-weighted. Inputs are loaded before the clock starts (network arrays from lifecircle's
cache, residents and facilities from GeoParquet); what is timed is the approach's own work.

Snapping differs by design and is reported with the shares:

* ``edge``: lifecircle — every point joins the nearest point of the nearest street, and the access
  legs are walked (points > 500 m from a street are not covered);
* ``node``: OSMnx, pandana, networkx, and lifecircle's engine run on node snapping — every point is
  moved to the nearest street node for free (no access leg, no distance limit);
* ``cityseer``: facilities assigned to nearby street nodes by cityseer (with their access
  distance), residents read from their nearest node.

Approaches with the same snapping must agree within 0.1 percentage point; run.py checks it.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

CATEGORIES = ("health", "elderly_care", "culture", "sports")
MINUTES = (5.0, 10.0, 15.0)
WALK_SPEED_KMH = 4.0
M_PER_MIN = WALK_SPEED_KMH * 1000 / 60
RADIUS_M = MINUTES[-1] * M_PER_MIN  # 1000 m: what the node-based approaches search


def rss_mb() -> float:
    """Current resident set size of this process (MB), from /proc."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except OSError:
        return float("nan")


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux ``ru_maxrss`` is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


# ---------------------------------------------------------------------------------------------
# inputs

class Inputs:
    """What every approach starts from (loaded before timing)."""

    def __init__(self, spec: dict):
        import geopandas as gpd
        import pandas as pd
        import pyproj
        import scipy.sparse.csgraph  # noqa: F401  (imports every approach needs: not timed)
        import scipy.spatial  # noqa: F401
        import shapely  # noqa: F401

        from lifecircle.read.network import network_from_osm

        self.spec = spec
        self.network = network_from_osm(spec["osm"])
        res = gpd.read_parquet(spec["residents"])
        fac = pd.read_parquet(spec["facilities"])
        self.residents = res
        self.res_lon, self.res_lat = res.geometry.x.to_numpy(), res.geometry.y.to_numpy()
        self.population = res["population"].to_numpy(dtype=float)
        self.fac_lon, self.fac_lat = fac["lon"].to_numpy(), fac["lat"].to_numpy()
        self.fac_cat = fac["category"].to_numpy()
        self.facilities = gpd.GeoDataFrame(fac[["category"]], geometry=gpd.points_from_xy(self.fac_lon, self.fac_lat),
                                           crs=4326)
        to_m = pyproj.Transformer.from_crs(4326, self.network.crs, always_xy=True)
        self.res_x, self.res_y = (np.asarray(a) for a in to_m.transform(self.res_lon, self.res_lat))
        self.fac_x, self.fac_y = (np.asarray(a) for a in to_m.transform(self.fac_lon, self.fac_lat))


def shares_from_metres(dist_m: dict[str, np.ndarray], population: np.ndarray) -> dict:
    """Population-weighted share within each threshold, per category: {cat: {"5": share, ...}}."""
    total = population.sum()
    return {cat: {f"{m:g}": float(population[d <= m * M_PER_MIN + 1e-9].sum() / total) for m in MINUTES}
            for cat, d in dist_m.items()}


def nearest_node(x, y, qx, qy):
    """Index of the nearest network node of every query point (scipy k-d tree)."""
    from scipy.spatial import cKDTree

    return cKDTree(np.column_stack([x, y])).query(np.column_stack([qx, qy]), workers=-1)[1]


# ---------------------------------------------------------------------------------------------
# lifecircle

#: Outputs added to ``Analysis.write`` after the core files (summary, coverage, residents, facilities,
#: unsnapped): timed separately, and skipped with ``extras=False``.
_EXTRA_OUTPUTS = (("lifecircle.present.isochrones", ("service_areas", "write_isochrones"), "isochrones.gpkg"),
                  ("lifecircle.plan.gaps", ("find_gaps", "write_gaps"), "gaps.gpkg"))


def _time_extra_outputs(extras: dict, *, run: bool) -> None:
    """Wrap the functions writing the extra outputs to time them (``run=False``: skip them)."""
    import importlib

    for module, names, label in _EXTRA_OUTPUTS:
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        for fname in names:
            real = getattr(mod, fname, None)
            if real is None:
                continue

            def wrapper(*args, _real=real, _label=label, _fname=fname, **kwargs):
                if not run:  # a stub: find_gaps/service_areas give nothing, writers write nothing
                    return kwargs.get("path", args[1] if len(args) > 1 else None) if _fname.startswith("write") else None
                t = time.perf_counter()
                try:
                    return _real(*args, **kwargs)
                finally:
                    extras[_label] = extras.get(_label, 0.0) + time.perf_counter() - t

            setattr(mod, fname, wrapper)


def lifecircle_e2e(spec: dict, *, extras: bool = True) -> dict:
    """``lifecircle.analyze(osm, population=…)`` + ``Analysis.write``: the whole pipeline.

    The network cache folder is chosen by the caller (``LIFECIRCLE_CACHE``): empty for a cold run,
    filled by a previous run for a warm one. The outputs beyond the five core files (isochrones,
    gaps) are timed apart; with ``extras=False`` they are skipped.
    """
    import tempfile

    import lifecircle
    from lifecircle.config import AnalysisConfig

    marks = []
    extra_s: dict[str, float] = {}
    _time_extra_outputs(extra_s, run=extras)

    def progress(msg):
        marks.append((msg.split(" for ")[0], time.perf_counter()))

    rss0 = rss_mb()
    t0 = time.perf_counter()
    a = lifecircle.analyze(spec["osm"], population=spec["residents"], config=AnalysisConfig(), progress=progress)
    t1 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        a.write(out, isochrones=True)  # the service areas at every size, timed apart (extra outputs)
    t2 = time.perf_counter()
    stages = {}
    for (name, start), (_, end) in zip(marks, marks[1:] + [("end", t1)]):
        stages[name] = end - start
    extra_total = sum(extra_s.values())
    stages["write core outputs"] = t2 - t1 - extra_total
    for label, sec in extra_s.items():
        stages[f"write {label}"] = sec
    cov = a.coverage[a.coverage.unit == "study_area"]
    shares = {cat: {f"{m:g}": float(cov[(cov.category == cat) & (cov.minutes == m)]["share"].iloc[0])
                    for m in MINUTES} for cat in CATEGORIES}
    return {"total_s": t2 - t0 - extra_total, "with_extra_outputs_s": (t2 - t0) if extras else None,
            "extra_outputs": "timed" if extras else "skipped", "stages_s": stages, "snapping": "edge",
            "shares": shares, "nodes": int(a.network.n_nodes), "edges": int(a.network.n_edges),
            "residents": int(len(a.residents)),
            "facilities": {c: int((a.facilities["category"] == c).sum()) for c in CATEGORIES},
            "rss_inputs_mb": rss0}


def lifecircle_walk(inp: Inputs) -> dict:
    """``lifecircle.measure.walking_times``: snapping, access graph, one Dijkstra per category (limit 2000 m)."""
    from lifecircle.measure.walking_times import walking_times

    t0 = time.perf_counter()
    wt = walking_times(inp.network, inp.residents, inp.facilities)
    total = time.perf_counter() - t0
    dist = {cat: wt.minutes[f"minutes_to_{cat}"].to_numpy() * M_PER_MIN for cat in CATEGORIES}
    return {"total_s": total, "snapping": "edge", "shares": shares_from_metres(dist, inp.population)}


def lifecircle_node(inp: Inputs) -> dict:
    """lifecircle's engine (scipy multi-source Dijkstra on the network matrix) with node snapping."""
    from scipy.sparse.csgraph import dijkstra

    net = inp.network
    t0 = time.perf_counter()
    m = net.matrix()
    res_node = nearest_node(net.x, net.y, inp.res_x, inp.res_y)
    fac_node = nearest_node(net.x, net.y, inp.fac_x, inp.fac_y)
    t1 = time.perf_counter()
    dist = {}
    for cat in CATEGORIES:
        src = np.unique(fac_node[inp.fac_cat == cat])
        d = dijkstra(m, directed=True, indices=src, min_only=True, limit=RADIUS_M)
        dist[cat] = d[res_node]
    t2 = time.perf_counter()
    return {"build_s": t1 - t0, "query_s": t2 - t1, "total_s": t2 - t0, "snapping": "node",
            "shares": shares_from_metres(dist, inp.population)}


# ---------------------------------------------------------------------------------------------
# peers

def networkx_dijkstra(inp: Inputs) -> dict:
    """Plain networkx: a Graph of the streets, ``multi_source_dijkstra_path_length`` per category."""
    import networkx as nx

    net = inp.network
    t0 = time.perf_counter()
    g = nx.Graph()
    g.add_nodes_from(range(net.n_nodes))
    g.add_weighted_edges_from(zip(net.u.tolist(), net.v.tolist(), net.length_m.tolist()), weight="length")
    res_node = nearest_node(net.x, net.y, inp.res_x, inp.res_y)
    fac_node = nearest_node(net.x, net.y, inp.fac_x, inp.fac_y)
    t1 = time.perf_counter()
    dist = {}
    for cat in CATEGORIES:
        src = set(fac_node[inp.fac_cat == cat].tolist())
        reached = nx.multi_source_dijkstra_path_length(g, src, cutoff=RADIUS_M, weight="length")
        d = np.full(net.n_nodes, np.inf)
        d[np.fromiter(reached.keys(), dtype=np.int64)] = np.fromiter(reached.values(), dtype=float)
        dist[cat] = d[res_node]
    t2 = time.perf_counter()
    return {"build_s": t1 - t0, "query_s": t2 - t1, "total_s": t2 - t0, "snapping": "node",
            "shares": shares_from_metres(dist, inp.population)}


def osmnx_ego(inp: Inputs, *, max_facilities: int | None = None, seed: int = 0) -> dict:
    """The OSMnx isochrone recipe: ``nx.ego_graph(G, node, radius, distance="length")`` per facility
    and threshold, union of the reached nodes per category, residents joined by nearest node.

    With ``max_facilities`` the recipe runs on a random subset of each category's facilities and the
    time is extrapolated linearly to all of them (the recipe's cost is per facility).
    """
    import networkx as nx
    import osmnx as ox

    net = inp.network
    t0 = time.perf_counter()
    g = nx.MultiDiGraph(crs=net.crs.to_string())
    g.add_nodes_from((i, {"x": float(x), "y": float(y)}) for i, (x, y) in enumerate(zip(net.x, net.y)))
    u, v, w = net.u.tolist(), net.v.tolist(), net.length_m.tolist()
    g.add_edges_from((a, b, {"length": d}) for a, b, d in zip(u, v, w))
    g.add_edges_from((b, a, {"length": d}) for a, b, d in zip(u, v, w))
    t1 = time.perf_counter()
    rng = np.random.default_rng(seed)
    picked = np.arange(len(inp.fac_cat))
    if max_facilities is not None and len(picked) > max_facilities:
        picked = np.sort(rng.choice(len(picked), max_facilities, replace=False))
    radii = sorted((m * M_PER_MIN for m in MINUTES), reverse=True)
    t2 = time.perf_counter()
    fac_node = ox.distance.nearest_nodes(g, inp.fac_x[picked], inp.fac_y[picked])
    reached: dict[str, dict[float, set]] = {cat: {r: set() for r in radii} for cat in CATEGORIES}
    for node, cat in zip(np.asarray(fac_node).tolist(), inp.fac_cat[picked].tolist()):
        for r in radii:
            sub = nx.ego_graph(g, node, radius=r, distance="length")
            reached[cat][r].update(sub.nodes)
    res_node = ox.distance.nearest_nodes(g, inp.res_x, inp.res_y)
    covered = {}
    for cat in CATEGORIES:
        d = np.full(len(res_node), np.inf)
        for r in sorted(radii, reverse=True):  # smallest radius last: it wins
            mask = np.fromiter((n in reached[cat][r] for n in res_node.tolist()), dtype=bool, count=len(res_node))
            d[mask] = r
        covered[cat] = d
    t3 = time.perf_counter()
    out = {"build_s": t1 - t0, "query_s": t3 - t2, "snapping": "node", "facilities_used": int(len(picked)),
           "facilities_total": int(len(inp.fac_cat))}
    if len(picked) < len(inp.fac_cat):
        out["query_measured_s"] = t3 - t2
        out["query_s"] = (t3 - t2) * len(inp.fac_cat) / len(picked)
        out["extrapolated"] = True
        out["shares_subset"] = shares_from_metres(covered, inp.population)
        out["check_subset"] = _subset_check(inp, picked, covered)
    else:
        out["shares"] = shares_from_metres(covered, inp.population)
    out["total_s"] = out["build_s"] + out["query_s"]
    return out


def _subset_check(inp: Inputs, picked: np.ndarray, covered: dict) -> float:
    """Largest share difference (percentage points) between the recipe on a facility subset and
    scipy's Dijkstra from the same facilities (node snapping): the subset run is still checked."""
    from scipy.sparse.csgraph import dijkstra

    net = inp.network
    res_node = nearest_node(net.x, net.y, inp.res_x, inp.res_y)
    fac_node = nearest_node(net.x, net.y, inp.fac_x[picked], inp.fac_y[picked])
    ref = {}
    for cat in CATEGORIES:
        src = np.unique(fac_node[inp.fac_cat[picked] == cat])
        d = (dijkstra(net.matrix(), indices=src, min_only=True, limit=RADIUS_M) if src.size
             else np.full(net.n_nodes, np.inf))
        ref[cat] = d[res_node]
    a = shares_from_metres(covered, inp.population)
    b = shares_from_metres(ref, inp.population)
    return max(abs(a[c][m] - b[c][m]) * 100 for c in CATEGORIES for m in a[c])


def pandana_pois(inp: Inputs) -> dict:
    """pandana: ``Network(...)``, ``precompute(1000)``, ``set_pois`` + ``nearest_pois`` per category."""
    import pandas as pd
    import pandana

    net = inp.network
    t0 = time.perf_counter()
    pnet = pandana.Network(pd.Series(net.x), pd.Series(net.y), pd.Series(net.u), pd.Series(net.v),
                           pd.DataFrame({"length": net.length_m}), twoway=True)
    t1 = time.perf_counter()
    pnet.precompute(RADIUS_M)
    t2 = time.perf_counter()
    res_node = pnet.get_node_ids(pd.Series(inp.res_x), pd.Series(inp.res_y)).to_numpy()
    dist = {}
    for cat in CATEGORIES:
        sel = inp.fac_cat == cat
        pnet.set_pois(cat, RADIUS_M, 1, pd.Series(inp.fac_x[sel]), pd.Series(inp.fac_y[sel]))
        near = pnet.nearest_pois(RADIUS_M, cat, num_pois=1, max_distance=1e12)
        d = np.array(near[1].to_numpy(dtype=float))  # indexed by node id 0..n-1
        d[d >= 1e12] = np.inf
        dist[cat] = d[res_node]
    t3 = time.perf_counter()
    return {"build_s": t1 - t0, "precompute_s": t2 - t1, "query_s": t3 - t1, "total_s": t3 - t0,
            "snapping": "node", "shares": shares_from_metres(dist, inp.population)}


def cityseer_access(inp: Inputs, *, max_residents: int | None = None, seed: int = 0) -> dict:
    """cityseer: ``network_structure_from_nx`` then ``layers.compute_accessibilities`` (nearest
    distance per category within 1000 m) from the street nodes that residents use.

    With ``max_residents`` only the nodes of a random subset of residents are computed ("live")
    and the query time is extrapolated by the number of live nodes.
    """
    import geopandas as gpd
    import networkx as nx
    import shapely
    from cityseer.metrics import layers
    from cityseer.tools import io

    net = inp.network
    t0 = time.perf_counter()
    res_node = nearest_node(net.x, net.y, inp.res_x, inp.res_y)
    rng = np.random.default_rng(seed)
    keep = np.arange(len(res_node))
    if max_residents is not None and len(keep) > max_residents:
        keep = np.sort(rng.choice(len(keep), max_residents, replace=False))
    live_all = np.unique(res_node)
    live = np.zeros(net.n_nodes, dtype=bool)
    live[res_node[keep]] = True
    t1 = time.perf_counter()
    g = nx.MultiGraph()
    g.add_nodes_from((str(i), {"x": float(x), "y": float(y), "live": bool(lv)})
                     for i, (x, y, lv) in enumerate(zip(net.x, net.y, live)))
    geoms = shapely.linestrings(np.stack([np.column_stack([net.x[net.u], net.y[net.u]]),
                                          np.column_stack([net.x[net.v], net.y[net.v]])], axis=1))
    g.add_edges_from((str(a), str(b), {"geom": geom}) for a, b, geom in zip(net.u.tolist(), net.v.tolist(), geoms))
    g.graph["crs"] = net.crs
    nodes_gdf, _, structure = io.network_structure_from_nx(g)
    data = gpd.GeoDataFrame({"category": inp.fac_cat}, geometry=gpd.points_from_xy(inp.fac_x, inp.fac_y),
                            crs=net.crs)
    t2 = time.perf_counter()
    out_gdf = layers.compute_accessibilities(data, "category", list(CATEGORIES), nodes_gdf, structure,
                                             max_netw_assign_dist=500, distances=[int(round(RADIUS_M))],
                                             decay_fn="1")
    t3 = time.perf_counter()
    dist = {}
    for cat in CATEGORIES:
        col = f"cc_{cat}_nearest_max_{int(round(RADIUS_M))}"
        d = out_gdf[col].reindex([str(i) for i in range(net.n_nodes)]).to_numpy(dtype=float)
        dist[cat] = np.where(np.isfinite(d), d, np.inf)[res_node[keep]]
    n_live = int(live.sum())
    out = {"build_s": t2 - t1, "query_s": (t3 - t2) + (t1 - t0), "snapping": "cityseer", "live_nodes": n_live,
           "live_nodes_all": int(len(live_all))}
    shares = shares_from_metres(dist, inp.population[keep])
    if n_live < len(live_all):
        out["query_measured_s"] = t3 - t2
        out["query_s"] = (t3 - t2) * len(live_all) / n_live + (t1 - t0)
        out["extrapolated"] = True
        out["shares_subset"] = shares
    else:
        out["shares"] = shares
    out["total_s"] = out["build_s"] + out["query_s"]
    return out


APPROACHES = {
    "lifecircle_walk": lifecircle_walk,
    "lifecircle_node": lifecircle_node,
    "networkx": networkx_dijkstra,
    "osmnx_ego": osmnx_ego,
    "pandana": pandana_pois,
    "cityseer": cityseer_access,
}


def run_worker(name: str, spec_path: str, out_path: str) -> None:
    """Entry of a worker subprocess: load inputs, run one approach, write JSON with time and memory."""
    spec = json.loads(Path(spec_path).read_text())
    options = spec.get("options", {}).get(name, {})
    result: dict = {"approach": name}
    try:
        if name.startswith("lifecircle_e2e"):
            result["rss_start_mb"] = rss_mb()
            result.update(lifecircle_e2e(spec, **options))
        else:
            t = time.perf_counter()
            inp = Inputs(spec)
            result["load_inputs_s"] = time.perf_counter() - t
            result["rss_inputs_mb"] = rss_mb()
            result.update(APPROACHES[name](inp, **options))
    except MemoryError:
        result["error"] = "out of memory (address-space limit of the worker)"
    except Exception as exc:  # report, never crash the whole benchmark
        import traceback

        result["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        result["traceback"] = traceback.format_exc()[-2000:]
    result["rss_peak_mb"] = peak_rss_mb()
    Path(out_path).write_text(json.dumps(result))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    run_worker(*sys.argv[1:4])
