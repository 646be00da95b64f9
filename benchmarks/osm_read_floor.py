"""The users suite's "read OSM" step against the bare libosmium pass, back to back in one process.

``python benchmarks/osm_read_floor.py FILE.osm.pbf [--repeat 5]`` times, interleaved, ``--repeat``
times each: :func:`users.osmium_floor` (the floor of any OSM reader) and what ``lifecircle analyze``
spends in the step "read OSM" with residents given (the layers network and facilities):
``file_sha256`` + ``read_osm``. Prints each time, the medians and their ratio; ``--json OUT`` keeps the
times (``benchmarks/run.py`` runs it at 1M nodes for the goal "OSM read ≤ 1.5× raw osmium": one pass of
each, minutes apart, varies from 1.4× to 2.0× on a shared machine).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def read_step(path: str, layers=("network", "facilities")) -> float:
    from lifecircle.read.facilities import load_taxonomy
    from lifecircle.read.network import is_walkable
    from lifecircle.read.osm import file_sha256, read_osm

    tax = load_taxonomy()
    t = time.perf_counter()
    sha = file_sha256(path)
    read_osm(path, layers=layers, taxonomy=tax, walkable=is_walkable, sha256=sha)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("osm")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", type=Path, default=None, help="write the times here")
    args = ap.parse_args()
    import osmium  # noqa: F401  (imports outside the clock)
    import pyarrow.csv  # noqa: F401
    import shapely  # noqa: F401

    import lifecircle
    from users import osmium_floor

    print(f"lifecircle from {Path(lifecircle.__file__).parent}")

    read_step(args.osm)  # warm the imports and the page cache
    raw, ours = [], []
    for _ in range(args.repeat):
        raw.append(osmium_floor(args.osm)["wall_s"])
        ours.append(read_step(args.osm))
        print(f"  raw osmium {raw[-1]:.3f} s   read OSM {ours[-1]:.3f} s   ratio {ours[-1] / raw[-1]:.2f}", flush=True)
    mr, mo = statistics.median(raw), statistics.median(ours)
    pair = statistics.median(o / r for o, r in zip(ours, raw))
    print(f"median: raw osmium {mr:.3f} s, read OSM {mo:.3f} s, ratio {mo / mr:.2f} (per-pair ratios: median {pair:.2f})")
    if args.json is not None:
        import json

        args.json.write_text(json.dumps({"raw_osmium_s": raw, "read_osm_s": ours, "median_pair_ratio": pair}))


if __name__ == "__main__":
    main()
