"""What users get: each command of ``run.py --suite users`` runs in its own fresh Python process from here.

``python benchmarks/users.py KIND SPEC.json OUT.json`` with KIND one of

* ``analyze`` / ``analyze_sites`` / ``scenario``: the ``lifecircle`` command line itself
  (:func:`lifecircle.cli.main`, in this process), with every default output, and the time spent in
  each step: the functions that do a step's work are wrapped by :func:`install_step_timers`
  (exclusive time: a step called inside another counts for itself only, so the steps add up to
  the command's time; the rest is ``other``);
* ``lean``: the lower bound — :func:`lean_pipeline`, the same question answered with nothing but
  pyosmium → numpy → a k-d tree → one scipy Dijkstra per category, no outputs beyond the shares;
* ``osmium``: a bare libosmium pass over the file (locations on ways, the highway ways and tagged
  nodes filtered in C++, nothing built in Python): the floor of any OSM reader.

The result (JSON) holds the wall time inside the process, the peak resident set size
(``ru_maxrss``), the steps, and for ``lean`` its shares (checked against lifecircle's by run.py).
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
M_PER_MIN = 4000.0 / 60.0

#: step -> functions doing its work, as (module, attribute); "Class.method" patches a method.
#: Missing names are skipped (the code moves on main), so unattributed time shows as "other".
STEPS = {
    "read OSM": [("lifecircle.read.osm", "read_way_segments"), ("lifecircle.read.osm", "iter_features"),
                 ("lifecircle.read.osm", "read_osm"), ("lifecircle.read.osm", "read_all"),
                 ("lifecircle.read.osm", "file_sha256")],
    "network": [("lifecircle.read.network", "network_from_osm")],
    "facilities": [("lifecircle.read.facilities", "facilities_from_osm"),
                   ("lifecircle.read.standards", "apply_standard")],
    "residents": [("lifecircle.read.population", "residents_from_file"),
                  ("lifecircle.read.population", "residents_from_buildings")],
    "input checks": [("lifecircle.measure.crs_checks", "check_input_crs"),
                     ("lifecircle.measure.crs_checks", "check_swapped")],
    "snapping": [("lifecircle.measure.snapping", "snap_points")],
    "walking times": [("lifecircle.measure.walking_times", "build_access_graph"),
                      ("lifecircle.measure.walking_times", "AccessGraph.distances_from")],
    "coverage": [("lifecircle.measure.coverage", "coverage_table"),
                 ("lifecircle.measure.tiers", "catchment_population")],
    "supply–demand and equity": [("lifecircle.measure.accessibility", "supply_demand"),
                                 ("lifecircle.measure.accessibility", "accessibility_table"),
                                 ("lifecircle.measure.equity", "equity_table")],
    "service areas": [("lifecircle.present.isochrones", "service_areas"),
                      ("lifecircle.present.isochrones", "_service_areas_begun"),
                      ("lifecircle.present.isochrones", "_grid_service_areas_finish")],
    "gap areas": [("lifecircle.plan.gaps", "find_gaps")],
    "sites": [("lifecircle.plan.sites", "site_plans")],
    "map": [("lifecircle.present.maps", "coverage_map"), ("lifecircle.present.html", "save_map")],
    "waiting for the map": [("lifecircle.cli", "_map_drawn")],
    "returning freed memory": [("lifecircle.cli", "_return_freed_memory")],
    "figures": [("lifecircle.present.figures", "coverage_figure"), ("lifecircle.present.figures", "coverage_curve"),
                ("lifecircle.present.figures", "save_figure")],
    "load stored run": [("lifecircle.pipeline", "load_analysis"), ("lifecircle.measure.stored", "load_run_state")],
    "scenario": [("lifecircle.plan.scenario", "scenario")],
    "writing service areas": [("lifecircle.present.isochrones", "write_isochrones"),
                              ("lifecircle.present.outputs", "write_service_areas")],
    "writing gap areas": [("lifecircle.plan.gaps", "write_gaps"), ("lifecircle.present.outputs", "write_gaps_layer")],
    "waiting for report.pdf": [("lifecircle.present.outputs", "OutputRun._wait_background")],
    "report": [("lifecircle.present.report", "report_content"), ("lifecircle.present.report", "write_report_html"),
               ("lifecircle.present.report", "write_report_docx"), ("lifecircle.present.workbook", "write_results_xlsx"),
               ("lifecircle.present.figures", "units_bar_chart")],
    "report.pdf (Chromium)": [("lifecircle.present.report", "write_report_pdf")],
    "writing layers": [("lifecircle.present.vectors", "write_vector"), ("lifecircle.present.vectors", "write_crs_copy")],
    "summary": [("lifecircle.pipeline", "_summary")],
    "writing": [("lifecircle.present.outputs", "write_table"),
                ("lifecircle.present.outputs", "write_sites"), ("lifecircle.present.outputs", "write_scenario"),
                ("lifecircle.measure.stored", "save_run_state"), ("lifecircle.read.files", "write_json"),
                ("lifecircle.present.outputs", "OutputRun.commit")],
}
#: Steps that are not "core outputs" (tables and layers of the analysis itself).
NOT_CORE = ("service areas", "writing service areas", "gap areas", "writing gap areas", "map", "figures", "sites",
            "report", "report.pdf (Chromium)", "waiting for the map", "waiting for report.pdf")
#: Steps whose own layers are written by the shared layer writer: that time is theirs, not "writing layers".
OWN_LAYER_WRITES = ("writing service areas", "writing gap areas")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


class StepTimer:
    """Exclusive seconds per step: time inside a step's functions minus the steps called from them.

    Steps run on the main thread add up to the command's time; a step run on another thread (Chromium
    printing the PDF while the map is drawn) overlaps them, so it is kept apart, in :attr:`background`.
    """

    def __init__(self):
        import threading

        self.seconds: dict[str, float] = {}
        self.background: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._local = threading.local()
        self._main = threading.main_thread()

    @property
    def _stack(self) -> list[list]:
        if not hasattr(self._local, "stack"):
            self._local.stack = []
        return self._local.stack

    def enter(self, step: str) -> None:
        stack = self._stack
        if step == "writing layers" and stack and stack[-1][0] in OWN_LAYER_WRITES:
            step = stack[-1][0]  # isochrones.gpkg, gaps.gpkg: the service and gap areas' own output
        stack.append([step, time.perf_counter(), 0.0])

    def leave(self) -> None:
        import threading

        stack = self._stack
        step, start, inner = stack.pop()
        took = time.perf_counter() - start
        into = self.seconds if threading.current_thread() is self._main else self.background
        into[step] = into.get(step, 0.0) + took - inner
        self.calls[step] = self.calls.get(step, 0) + 1
        if stack:
            stack[-1][2] += took

    def wrap(self, fn, step: str):
        import functools
        import inspect

        timer = self

        def timed_generator(gen):
            while True:
                timer.enter(step)
                try:
                    item = next(gen)
                except StopIteration:
                    timer.leave()
                    return
                except BaseException:
                    timer.leave()
                    raise
                timer.leave()
                yield item

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            timer.enter(step)
            try:
                out = fn(*args, **kwargs)
            finally:
                timer.leave()
            return timed_generator(out) if inspect.isgenerator(out) else out

        wrapper.__wrapped_step__ = step
        return wrapper


def install_step_timers(timer: StepTimer) -> list[str]:
    """Wrap every function of :data:`STEPS` wherever lifecircle's modules hold it; return the names missing."""
    import importlib
    import pkgutil

    import lifecircle

    modules = [lifecircle]
    for info in pkgutil.walk_packages(lifecircle.__path__, "lifecircle."):
        if info.name.endswith("__main__") or info.name.startswith("lifecircle.scale"):
            continue  # __main__ runs the command line on import; scale (Dask) is not used by these commands
        try:
            modules.append(importlib.import_module(info.name))
        except Exception:  # an optional dependency missing: that module is not timed
            continue
    missing = []
    for step, names in STEPS.items():
        for module, attr in names:
            try:
                mod = importlib.import_module(module)
            except ImportError:
                missing.append(f"{module}.{attr}")
                continue
            if "." in attr:
                cls_name, meth = attr.split(".")
                cls = getattr(mod, cls_name, None)
                if cls is None or not hasattr(cls, meth):
                    missing.append(f"{module}.{attr}")
                    continue
                setattr(cls, meth, timer.wrap(getattr(cls, meth), step))
                continue
            fn = getattr(mod, attr, None)
            if fn is None or hasattr(fn, "__wrapped_step__"):
                if fn is None:
                    missing.append(f"{module}.{attr}")
                continue
            wrapped = timer.wrap(fn, step)
            for m in modules:  # every `from x import fn` binding too
                for k, v in list(vars(m).items()):
                    if v is fn:
                        setattr(m, k, wrapped)
    return missing


def _trace_rss(timer: StepTimer, path: str, every_s: float = 0.2) -> None:
    """``$LIFECIRCLE_BENCH_RSS_TRACE``: a line ``seconds RSS-MB cores step`` every ``every_s`` (where the memory goes)."""
    import threading

    main_stack = timer._stack  # the main thread's
    t0 = time.perf_counter()

    last = [0.0, 0.0]

    def sample() -> None:
        with open(path, "w") as fh:
            while True:
                with open("/proc/self/statm") as st:
                    rss_mb = int(st.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
                top = main_stack[-1:]  # the main thread may pop in between
                step = top[0][0] if top else "-"
                with open("/proc/self/stat") as st:  # user + system CPU seconds: how many cores the step keeps busy
                    cpu_s = sum(int(v) for v in st.read().rsplit(")", 1)[1].split()[11:13]) / os.sysconf("SC_CLK_TCK")
                now = time.perf_counter() - t0
                cores = (cpu_s - last[1]) / max(now - last[0], 1e-9)
                last[:] = [now, cpu_s]
                fh.write(f"{now:.2f} {rss_mb:.0f} {cores:.2f} {step}\n")
                fh.flush()
                time.sleep(every_s)

    threading.Thread(target=sample, daemon=True).start()


def run_cli(args: list[str]) -> dict:
    """One lifecircle command in this process, its steps timed, set up as the ``lifecircle`` command sets
    up its own process (:func:`lifecircle.cli.setup_process`, first: before the RSS sampler's thread)."""
    from lifecircle.cli import setup_process

    setup_process()
    timer = StepTimer()
    if os.environ.get("LIFECIRCLE_BENCH_RSS_TRACE"):
        _trace_rss(timer, os.environ["LIFECIRCLE_BENCH_RSS_TRACE"])
    t = time.perf_counter()
    missing = install_step_timers(timer)  # imports every module the commands use
    from lifecircle.cli import main

    imports = time.perf_counter() - t

    t0 = time.perf_counter()
    rc = main(["-q", *args])
    wall = time.perf_counter() - t0
    steps = dict(sorted(timer.seconds.items(), key=lambda kv: -kv[1]))
    steps["other"] = wall - sum(timer.seconds.values())
    return {"exit_code": rc, "wall_s": wall, "imports_s": imports, "steps_s": steps,
            "background_steps_s": dict(timer.background), "untimed_functions": missing,
            "core_s": wall - sum(steps.get(k, 0.0) for k in NOT_CORE)}


# ---------------------------------------------------------------------------------------------
# the lean lower bound

#: The facility tags of the benchmark inputs (make_tiled._FACILITY_TAGS) plus the common OSM ones.
LEAN_TAGS = {
    ("amenity", "clinic"): "health", ("amenity", "hospital"): "health", ("amenity", "doctors"): "health",
    ("healthcare", "clinic"): "health", ("amenity", "social_facility"): "elderly_care",
    ("amenity", "nursing_home"): "elderly_care", ("amenity", "community_centre"): "culture",
    ("amenity", "library"): "culture", ("amenity", "arts_centre"): "culture", ("amenity", "theatre"): "culture",
    ("leisure", "sports_centre"): "sports", ("leisure", "fitness_centre"): "sports",
    ("leisure", "pitch"): "sports", ("leisure", "stadium"): "sports",
}


def lean_pipeline(osm: str, residents: str, *, limit_m: float = MINUTES[-1] * M_PER_MIN) -> dict:
    """pyosmium (one pass: ways as WKB, facility nodes) → numpy graph → k-d tree → one Dijkstra per category.

    Streets are kept by lifecircle's walk rule (:func:`lifecircle.read.network.is_walkable`, a plain
    function of the tags), so both route on the same streets; everything else is written here.

    The libraries are imported before (as lifecircle's are before its command starts): what is timed is the work.
    """
    import osmium
    import pyarrow.parquet as pq
    import pyproj
    import scipy.sparse as sp
    import shapely
    from scipy.sparse.csgraph import dijkstra
    from scipy.spatial import cKDTree

    from lifecircle.read.network import is_walkable as walkable  # the same rule, so the same streets

    marks = {}
    t = time.perf_counter()
    wkb, fac = [], []
    fab = osmium.geom.WKBFactory()
    fp = (osmium.FileProcessor(osm, osmium.osm.NODE | osmium.osm.WAY).with_locations()
          .with_filter(osmium.filter.EmptyTagFilter()))
    for o in fp:
        tags = o.tags
        if o.is_way():
            if "highway" in tags and walkable(dict(tags)):
                try:
                    wkb.append(fab.create_linestring(o))
                except Exception:  # osmium.InvalidLocationError: a way with nodes outside the extract
                    pass
        elif o.location.valid():
            for (k, v), cat in LEAN_TAGS.items():
                if tags.get(k) == v:
                    fac.append((o.location.lon, o.location.lat, cat))
                    break
    marks["read OSM (pyosmium)"] = time.perf_counter() - t

    t = time.perf_counter()
    lines = shapely.from_wkb(wkb)
    lonlat, way = shapely.get_coordinates(lines, return_index=True)
    seg = np.flatnonzero(way[1:] == way[:-1])  # consecutive points of one way
    keys, node = np.unique(lonlat, axis=0, return_inverse=True)  # a shared node has one location
    node = node.ravel()
    lon0, lat0 = np.median(keys, axis=0)
    utm = pyproj.CRS.from_dict({"proj": "utm", "zone": int((lon0 + 180) // 6) + 1, "south": bool(lat0 < 0)})
    to_m = pyproj.Transformer.from_crs(4326, utm, always_xy=True)
    x, y = to_m.transform(keys[:, 0], keys[:, 1])
    u, v = node[seg], node[seg + 1]
    keep = u != v
    u, v = u[keep], v[keep]
    w = np.hypot(x[u] - x[v], y[u] - y[v])
    n = len(keys)
    m = sp.csr_matrix((np.concatenate([w, w]), (np.concatenate([u, v]), np.concatenate([v, u]))), shape=(n, n))
    marks["network (numpy)"] = time.perf_counter() - t

    t = time.perf_counter()
    table = pq.read_table(residents, columns=["population", "geometry"])
    pts = shapely.from_wkb(table.column("geometry").to_numpy())
    pop = table.column("population").to_numpy().astype(float)
    rx, ry = to_m.transform(shapely.get_x(pts), shapely.get_y(pts))
    tree = cKDTree(np.column_stack([x, y]))
    res_node = tree.query(np.column_stack([rx, ry]), workers=-1)[1]
    flon, flat, fcat = (np.array(c) for c in zip(*fac)) if fac else (np.zeros(0),) * 3
    fx, fy = to_m.transform(flon.astype(float), flat.astype(float))
    fac_node = tree.query(np.column_stack([fx, fy]), workers=-1)[1] if len(fac) else np.zeros(0, dtype=int)
    marks["snapping (k-d tree)"] = time.perf_counter() - t

    t = time.perf_counter()
    shares = {}
    for cat in CATEGORIES:
        src = np.unique(fac_node[fcat == cat])
        d = (dijkstra(m, directed=True, indices=src, min_only=True, limit=limit_m)[res_node] if src.size
             else np.full(len(res_node), np.inf))
        shares[cat] = {f"{mm:g}": float(pop[d <= mm * M_PER_MIN].sum() / pop.sum()) for mm in MINUTES}
    marks["walking times (Dijkstra)"] = time.perf_counter() - t
    return {"steps_s": marks, "shares": shares, "nodes": int(n), "edges": int(len(u)), "facilities": len(fac),
            "residents": int(len(pop))}


def osmium_floor(osm: str) -> dict:
    """libosmium reads the file with node locations and keeps the highway ways and tagged nodes; nothing else."""
    import osmium

    t = time.perf_counter()
    fp = (osmium.FileProcessor(osm, osmium.osm.NODE | osmium.osm.WAY).with_locations()
          .with_filter(osmium.filter.EmptyTagFilter()))
    n = 0
    for o in fp:
        n += 1
    return {"wall_s": time.perf_counter() - t, "objects": n}


def main(kind: str, spec_path: str, out_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    result: dict = {"kind": kind}
    t0 = time.perf_counter()
    try:
        if kind == "lean":
            import osmium, pyarrow.parquet, pyproj, scipy.sparse.csgraph, scipy.spatial, shapely  # noqa: E401,F401
            import lifecircle.read.network  # noqa: F401  (the walk rule)

            result["imports_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            result.update(lean_pipeline(spec["osm"], spec["residents"]))
            result["wall_s"] = time.perf_counter() - t0
        elif kind == "osmium":
            result.update(osmium_floor(spec["osm"]))
        else:
            result.update(run_cli(spec["args"][kind]))
            if result["exit_code"] != 0:
                result["error"] = f"lifecircle exited with {result['exit_code']}"
    except MemoryError:
        result["error"] = "out of memory (address-space limit of the worker)"
    except Exception as exc:  # report, never crash the whole benchmark
        import traceback

        result["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        result["traceback"] = traceback.format_exc()[-2000:]
    result["rss_peak_mb"] = peak_rss_mb()
    Path(out_path).write_text(json.dumps(result))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main(*sys.argv[1:4])
