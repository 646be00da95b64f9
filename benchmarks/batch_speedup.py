"""Speed-up of `lifecircle batch` and of tiled walking times from 1 to 2 (or more) Dask workers.

Run from the repository (the Shanghai sample in ../shared/data is read in place, never copied):

    python benchmarks/batch_speedup.py                 # 1 and 2 workers
    python benchmarks/batch_speedup.py --workers 1 2 4 --copies 6

Two workloads:

* **batch**: the Shanghai street sample × ``--tasks`` parameter sets (random residents, the
  city facility layer), each task a full ``analyze()`` + ``write()``: many independent areas.
* **tiles**: one big area, the sample replicated ``--copies`` × ``--copies`` times (joined at the
  seams), walking times for 60,000 residents in 3 km tiles: one large area split up.

Each is timed on a running cluster (startup is reported separately) and, for ``tiles``, against
the single-process ``walking_times``. A control workload (4 pure-CPU tasks of ~0.5 s) shows the
speed-up the machine itself allows: if it stays near 1.0 with 2 workers, the CPUs are not really
parallel (shared or throttled vCPUs) and no scheduler can do better.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def _residents(lon_range, lat_range, n, seed):
    import geopandas as gpd

    rng = np.random.default_rng(seed)
    lo, la = rng.uniform(*lon_range, n), rng.uniform(*lat_range, n)
    return gpd.GeoDataFrame({"population": rng.integers(1, 300, n).astype(float)},
                            geometry=gpd.points_from_xy(lo, la), crs=4326)


def _spin(k: int) -> float:
    """Control workload: pure CPU, no I/O, no memory traffic (~0.5 s on one core)."""
    s = 0
    for i in range(10_000_000):
        s += i ^ k
    return float(s)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--tasks", type=int, default=8, help="parameter sets in the batch workload")
    ap.add_argument("--copies", type=int, default=5, help="copies per side in the tiles workload")
    args = ap.parse_args()

    import geopandas as gpd

    from lifecircle import AnalysisConfig, network_from_osm, walking_times
    from lifecircle.scale.batch import dask_client, run_batch
    from lifecircle.datasets import shared_data_dir
    from lifecircle.scale.partition import replicate_network, replicate_points, walking_times_tiled

    shared = shared_data_dir()
    if shared is None:
        raise SystemExit("../shared/data not found beside the repository")
    pbf = shared / "shanghai_jingan_huangpu_drive_osmnx.osm.pbf"
    geojson = shared / "shanghai_facilities_osm_20260519.geojson"
    work = Path(tempfile.mkdtemp(prefix="lifecircle-bench-"))
    bbox = (121.4611262, 31.2196145, 121.4863121, 31.2411914)
    res = _residents((bbox[0], bbox[2]), (bbox[1], bbox[3]), 5000, 0)
    pd.DataFrame({"lon": res.geometry.x, "lat": res.geometry.y, "population": res.population}).to_csv(
        work / "residents.csv", index=False)
    sets = "\n".join(f"[parameters.speed_{k}]\nwalk_speed_kmh = {3.0 + 0.25 * k}\ncategories = ['health', 'sports']"
                     for k in range(args.tasks))
    plan = work / "plan.toml"
    plan.write_text(f'{sets}\n[[area]]\nname = "sample"\nosm = "{pbf.as_posix()}"\n'
                    f'facilities = "{geojson.as_posix()}"\npopulation = "residents.csv"\n', encoding="utf-8")

    net = network_from_osm(pbf)
    city = replicate_network(net, nx=args.copies, ny=args.copies)
    fac = gpd.read_file(geojson, bbox=bbox)
    fac["category"] = fac["category"].map({"health": "health", "sport": "sports", "park": "culture",
                                           "education": "elderly_care", "daily_needs": "elderly_care"})
    city_fac = replicate_points(fac, net, nx=args.copies, ny=args.copies)
    city_res = _residents((city.lon.min(), city.lon.max()), (city.lat.min(), city.lat.max()), 60000, 1)
    cfg = AnalysisConfig(minutes=(5, 10, 15))
    t = time.perf_counter()
    single = walking_times(city, city_res, city_fac, config=cfg)
    t_single = time.perf_counter() - t

    print(f"machine: {__import__('os').cpu_count()} CPUs; batch: {args.tasks} analyses of the Shanghai sample "
          f"({net.n_nodes:,} nodes, 5,000 residents); tiles: {args.copies}x{args.copies} city "
          f"({city.n_nodes:,} nodes, {city.n_edges:,} edges, 60,000 residents, 3 km tiles, "
          f"halo {cfg.max_dist_m + cfg.max_snap_m:g} m)")
    print(f"single-process walking_times on the city: {t_single:.2f} s")
    rows = []
    for n in args.workers:
        t = time.perf_counter()
        with dask_client(workers=n) as client:
            startup = time.perf_counter() - t
            client.run(lambda: __import__("lifecircle.pipeline"))  # warm the workers' imports
            t = time.perf_counter()
            client.gather(client.map(_spin, range(4), pure=False))
            t_cpu = time.perf_counter() - t
            t = time.perf_counter()
            table = run_batch(plan, client=client, out_dir=work / f"out_{n}_{time.time_ns()}")
            t_batch = time.perf_counter() - t
            assert (table["status"] == "ok").all(), table[["status", "error"]]
            t = time.perf_counter()
            tiled = walking_times_tiled(city, city_res, city_fac, config=cfg, tile_m=3000, client=client,
                                        scratch_dir=work)
            t_tiles = time.perf_counter() - t
        a, b = single.minutes.to_numpy(), tiled.minutes.to_numpy()
        fin = np.isfinite(a)
        assert (np.isinf(a) == np.isinf(b)).all() and np.abs(a[fin] - b[fin]).max() < 1e-9
        rows.append({"workers": n, "startup_s": startup, "cpu_control_s": t_cpu, "batch_s": t_batch,
                     "tiles_s": t_tiles})
    df = pd.DataFrame(rows)
    df["cpu_control_speedup"] = df["cpu_control_s"].iloc[0] / df["cpu_control_s"]
    df["batch_speedup"] = df["batch_s"].iloc[0] / df["batch_s"]
    df["tiles_speedup"] = df["tiles_s"].iloc[0] / df["tiles_s"]
    print(df.round(2).to_string(index=False))


if __name__ == "__main__":  # the guard matters: Dask starts worker processes by spawning
    main()
