"""What the safety measures cost: TLS on the local Dask cluster, and the network cache's checksum.

    python benchmarks/security_costs.py              # 6 cluster starts each way, a 1-million-node network
    python benchmarks/security_costs.py --starts 10 --nodes 2000000

* **cluster**: start-up of ``lifecircle.scale.batch.dask_client(workers=2)`` with TLS (the default:
  ``Security.temporary()``) and without (``tls=False``), alternated, plus the first round trip of a
  task (new TLS connections); and the time to make the temporary certificate alone.
* **cache**: ``arrays_sha256`` over the arrays of a network of ``--nodes`` nodes and 1.15× as many
  edges (the ratio of the real Shanghai sample), and a cached load (``load_network``) with the check.

The machine is shared: medians of several runs, and the spread, are printed.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def cluster(starts: int) -> None:
    import logging

    from distributed.security import Security

    from lifecircle.scale.batch import dask_client

    logging.getLogger("distributed").setLevel(logging.ERROR)
    res: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    for _ in range(starts):
        for tls in (False, True):
            t0 = time.perf_counter()
            with dask_client(workers=2, tls=tls) as c:
                t1 = time.perf_counter()
                c.submit(sum, [1, 2]).result()
                res[tls].append((t1 - t0, time.perf_counter() - t1))
    for tls, runs in res.items():
        s = [r[0] for r in runs]
        print(f"cluster start, tls={tls}: median {statistics.median(s):.2f} s (min {min(s):.2f}, max {max(s):.2f}); "
              f"first task {statistics.median(r[1] for r in runs) * 1000:.0f} ms")
    t = []
    for _ in range(5):
        t0 = time.perf_counter()
        Security.temporary()
        t.append(time.perf_counter() - t0)
    print(f"Security.temporary(): median {statistics.median(t) * 1000:.0f} ms")


def cache(nodes: int) -> None:
    from lifecircle.read import cache as c
    from lifecircle.read.network import WalkNetwork

    rng = np.random.default_rng(0)
    edges = int(nodes * 1.15)
    lon = 121.4 + rng.random(nodes) * 0.5
    lat = 31.1 + rng.random(nodes) * 0.5
    u = rng.integers(0, nodes, edges)
    v = rng.integers(0, nodes, edges)
    highway = rng.choice(np.array(["footway", "residential", "primary", "service"], dtype=object), edges)
    net = WalkNetwork.from_lonlat(lon, lat, u, v, highway=highway)
    f = Path(tempfile.mkdtemp()) / "net.npz"
    c.save_network(net, f)
    arrays = c.load_arrays(f)
    mb = sum(a.nbytes for a in arrays.values()) / 1e6
    t = []
    for _ in range(5):
        t0 = time.perf_counter()
        c.arrays_sha256(arrays)
        t.append(time.perf_counter() - t0)
    load = []
    for _ in range(5):
        t0 = time.perf_counter()
        c.load_network(f)
        load.append(time.perf_counter() - t0)
    print(f"cache of {nodes:,} nodes / {edges:,} edges ({mb:.0f} MB of arrays): sha256 {statistics.median(t):.3f} s, "
          f"whole load_network with the check {statistics.median(load):.3f} s")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--starts", type=int, default=6)
    ap.add_argument("--nodes", type=int, default=1_000_000)
    ap.add_argument("--skip-cluster", action="store_true")
    args = ap.parse_args()
    cache(args.nodes)
    if not args.skip_cluster:
        cluster(args.starts)
