"""Batch runs: plan validation, a real 2-process Dask cluster, failures in the table, resumable reruns, tiled areas."""

from __future__ import annotations

import hashlib
import inspect
import json
from pathlib import Path

import dask
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

import lifecircle.pipeline as pipeline
from conftest import lonlat
from lifecircle import AnalysisConfig, InputDataError, analyze
from lifecircle.scale.batch import MANIFEST, RESULT_COLUMNS, RESULTS_FILE, dask_client, load_plan, run_batch
from lifecircle.datasets import toy_town_osm

REPO = Path(__file__).resolve().parents[1]
SAMPLE_BBOX = (121.4611262, 31.2196145, 121.4863121, 31.2411914)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def client():
    pytest.importorskip("distributed")
    with dask_client(workers=2) as c:  # a real LocalCluster: 2 worker processes, 1 thread each, on 127.0.0.1
        yield c


def tls_config(client) -> dict:
    """Dask configuration that lets another client connect to ``client``'s TLS cluster."""
    sec = client.security
    return {"distributed.comm.require-encryption": True, "distributed.comm.tls.ca-file": sec.tls_ca_file,
            "distributed.comm.tls.client.cert": sec.tls_client_cert, "distributed.comm.tls.client.key": sec.tls_client_key}


@pytest.fixture()
def inputs(tmp_path, shared):
    """Input files of a mixed batch: a corrupt OSM file, one without streets, and random residents."""
    (tmp_path / "corrupt.osm.pbf").write_bytes(b"this is not a PBF file" * 20)
    (tmp_path / "no_streets.osm").write_text(
        '<?xml version="1.0"?><osm version="0.6"><node id="1" lat="31.2" lon="121.4"/></osm>')
    rng = np.random.default_rng(7)
    n = 1500
    pd.DataFrame({"lon": rng.uniform(SAMPLE_BBOX[0], SAMPLE_BBOX[2], n),
                  "lat": rng.uniform(SAMPLE_BBOX[1], SAMPLE_BBOX[3], n),
                  "population": rng.integers(1, 200, n)}).to_csv(tmp_path / "residents.csv", index=False)
    lo, la = lonlat([50, 300, 700, 650], [20, 390, 10, 220])  # toy-town metres
    pd.DataFrame({"lon": lo, "lat": la, "population": [10, 20, 30, 40]}).to_csv(tmp_path / "toy_residents.csv",
                                                                                 index=False)
    return tmp_path


AREAS = {
    "toy": '[[area]]\nname = "toy"\nosm = "{toy}"\n',
    "toy_people": '[[area]]\nname = "toy_people"\nosm = "{toy}"\npopulation = "toy_residents.csv"\n'
                  'parameters = ["base"]\n',
    "corrupt": '[[area]]\nname = "corrupt"\nosm = "corrupt.osm.pbf"\nparameters = ["base"]\n',
    "no_streets": '[[area]]\nname = "no_streets"\nosm = "no_streets.osm"\nparameters = ["base"]\n',
    "shanghai": '[[area]]\nname = "shanghai"\nosm = "{shared}/shanghai_jingan_huangpu_drive_osmnx.osm.pbf"\n'
                'facilities = "{shared}/shanghai_facilities_osm_20260519.geojson"\npopulation = "residents.csv"\n'
                'parameters = [{{name = "hs", categories = ["health", "sports"], max_snap_m = 300}}]\n{tile}\n',
}


def write_plan(d: Path, shared: Path, *, areas=("toy", "corrupt", "no_streets", "shanghai"), toy_speed: float = 4.0,
               shanghai_tile_m: float | None = None) -> Path:
    head = f"""out_dir = "out"
[parameters.base]
minutes = [5, 10, 15]
walk_speed_kmh = {toy_speed}
[parameters.slow]
minutes = [15]
walk_speed_kmh = 3.0
"""
    tile = f"tile_m = {shanghai_tile_m}" if shanghai_tile_m else ""
    body = "".join(AREAS[a].format(toy=toy_town_osm().as_posix(), shared=shared.as_posix(), tile=tile) for a in areas)
    (d / "plan.toml").write_text(head + body, encoding="utf-8")
    return d / "plan.toml"


def test_plan_problems_are_all_reported_at_once(tmp_path):
    (tmp_path / "a.osm").write_text("x")
    (tmp_path / "plan.toml").write_text('''
colour = "red"
[parameters.ok]
minutes = [15]
[parameters.neg]
walk_speed_kmh = -1
[parameters.typo]
speed = 4
[[area]]
name = "a"
osm = "a.osm"
facilities = "missing.csv"
facilities_crs = "gcj2"
parameters = ["ok", "nope"]
tile_m = -5
[[area]]
name = "a"
osm = "a.osm"
[[area]]
name = "b/c"
population = "a.osm"
place = "Huangpu"
''')
    with pytest.raises(InputDataError) as err:
        load_plan(tmp_path / "plan.toml")
    msg = str(err.value)
    assert "\n" not in msg
    for part in ["has 11 problems",
                 "unknown top-level key 'colour'",
                 "parameters.neg: walk_speed_kmh (--speed-kmh) must be a positive number of km/h, got -1",
                 "parameters.typo: unknown key 'speed'; valid keys are minutes, walk_speed_kmh",
                 f"area 'a': facilities file not found: {tmp_path / 'missing.csv'}",
                 "area 'a': facilities_crs: unknown CRS 'gcj2'",
                 "area 'a': unknown parameter set 'nope'; defined sets are ok",
                 "area 'a': tile_m must be a positive number of metres (got -5)",
                 "area 'a' appears twice",
                 "area 'b/c': give it a name of letters",
                 "area 'b/c': unknown key 'place' (download it first: `lifecircle fetch`",
                 "area 'b/c': no osm file: add osm ="]:
        assert part in msg


def test_example_plan_is_valid_and_runs(tmp_path):
    plan = load_plan(REPO / "examples" / "batch_plan.toml")
    assert [t.key for t in plan.tasks] == ["toy_town/life_circle", "toy_town/seniors",
                                           "toy_town_fast/life_circle", "toy_town_fast/fast"]
    seniors = plan.tasks[1].config
    assert (seniors.walk_speed_kmh, seniors.minutes, seniors.categories) == (3.0, (10.0, 15.0),
                                                                          ("health", "elderly_care"))
    table = run_batch(plan, workers=0, out_dir=tmp_path)  # in this process, no Dask
    assert table["status"].tolist() == ["ok"] * 4
    # the same numbers as a plain analyze() with that set's parameters
    direct = analyze(toy_town_osm(), config=seniors)
    row = table.iloc[1]
    assert row["share_health"] == pytest.approx(direct.category_share("health"), abs=1e-12)
    assert row["share_all"] == pytest.approx(direct.category_share("all"), abs=1e-12)
    assert np.isnan(row["share_culture"])  # not analysed in that set


def test_batch_on_local_cluster_reports_failures_and_one_table(inputs, shared, client):
    plan = write_plan(inputs, shared)
    seen = []
    # through the scheduler's address, as `lifecircle batch --scheduler tls://...` would, with the local
    # cluster's certificate in Dask's configuration (what a user of a TLS scheduler sets up)
    with dask.config.set(tls_config(client)):
        table = run_batch(plan, scheduler=client.scheduler.address, progress=lambda i, n, row: seen.append((i, n, row)))
    assert [i for i, _, _ in seen] == [1, 2, 3, 4, 5] and {n for _, n, _ in seen} == {5}
    assert list(table.columns) == RESULT_COLUMNS
    assert table[["area", "parameters"]].to_numpy().tolist() == [
        ["toy", "base"], ["toy", "slow"], ["corrupt", "base"], ["no_streets", "base"], ["shanghai", "hs"]]
    assert table["status"].tolist() == ["ok", "ok", "failed", "failed", "ok"]
    assert "corrupt.osm.pbf: 'PBF error" in table.loc[2, "error"] and "download it again" in table.loc[2, "error"]
    assert table.loc[3, "error"].startswith("no walkable street in no_streets.osm")
    saved = pd.read_csv(inputs / "out" / RESULTS_FILE)
    assert saved["status"].tolist() == table["status"].tolist()
    assert saved["share_health"].to_numpy() == pytest.approx(table["share_health"].to_numpy(), nan_ok=True)

    # independent check: the same analyses run here, without Dask
    toy_slow = analyze(toy_town_osm(), config=AnalysisConfig(minutes=(15,), walk_speed_kmh=3.0))
    assert table.loc[1, "share_all"] == pytest.approx(toy_slow.category_share("all"), abs=1e-12)
    sh = analyze(shared / "shanghai_jingan_huangpu_drive_osmnx.osm.pbf",
                 facilities=shared / "shanghai_facilities_osm_20260519.geojson", population=inputs / "residents.csv",
                 config=AnalysisConfig(categories=("health", "sports"), max_snap_m=300))
    assert table.loc[4, "share_sports"] == pytest.approx(sh.category_share("sports"), abs=1e-12)
    assert table.loc[4, "population"] == pytest.approx(sh.summary["residents"]["population"])
    assert 0.05 < table.loc[4, "share_health"] < 0.95
    written = pd.read_csv(inputs / "out" / "shanghai" / "hs" / "coverage.csv")
    pd.testing.assert_frame_equal(written, sh.coverage_for_csv(), check_dtype=False)

    manifest = json.loads((inputs / "out" / "toy" / "base" / MANIFEST).read_text())
    assert set(manifest["outputs"]) >= {"summary.json", "coverage.csv", "residents.gpkg", "facilities.gpkg"}
    assert manifest["outputs"]["coverage.csv"]["sha256"] == sha(inputs / "out" / "toy" / "base" / "coverage.csv")
    assert not (inputs / "out" / "corrupt" / "base" / MANIFEST).exists()


def test_rerun_skips_complete_tasks_and_recomputes_the_rest(inputs, shared, client):
    areas = ("toy", "corrupt", "toy_people")
    plan = write_plan(inputs, shared, areas=areas)
    first = run_batch(plan, client=client)
    out = inputs / "out"
    original = sha(out / "toy" / "base" / "coverage.csv")
    assert first["status"].tolist() == ["ok", "ok", "failed", "ok"]

    assert run_batch(plan, client=client)["status"].tolist() == ["skipped", "skipped", "failed", "skipped"]

    with open(out / "toy" / "base" / "coverage.csv", "a") as fh:  # an output edited by hand
        fh.write("tampered\n")
    (out / "toy" / "slow" / MANIFEST).unlink()  # a crash after writing the outputs, before the manifest
    (out / "toy_people" / "base" / "residents.gpkg").unlink()  # an output lost
    again = run_batch(plan, client=client)
    assert again["status"].tolist() == ["ok", "ok", "failed", "ok"]
    assert sha(out / "toy" / "base" / "coverage.csv") == original  # recomputed to the same content

    # new parameters or new input content: computed again; the rest skipped
    plan = write_plan(inputs, shared, areas=areas, toy_speed=5.0)
    with open(inputs / "toy_residents.csv", "a") as fh:
        fh.write(f"{lonlat(100, 100)[0]},{lonlat(100, 100)[1]},5\n")
    changed = run_batch(plan, client=client)
    assert changed["status"].tolist() == ["ok", "skipped", "failed", "ok"]
    assert changed.loc[0, "walk_speed_kmh"] == 5.0
    assert changed.loc[3, "population"] == first.loc[3, "population"] + 5 == 105


def _analyze_with_hook(real):
    """``analyze(..., walking_times_fn=)`` as proposed for pipeline.py, for when it is not integrated yet."""
    def analyze_hooked(*args, walking_times_fn=None, **kwargs):
        if walking_times_fn is None:
            return real(*args, **kwargs)
        saved = pipeline.walking_times
        pipeline.walking_times = walking_times_fn
        try:
            return real(*args, **kwargs)
        finally:
            pipeline.walking_times = saved

    sig = inspect.signature(real)
    hook = inspect.Parameter("walking_times_fn", inspect.Parameter.KEYWORD_ONLY, default=None)
    analyze_hooked.__signature__ = sig.replace(parameters=[*sig.parameters.values(), hook])
    return analyze_hooked


def test_tiled_area_gives_the_untiled_result(inputs, shared, client, monkeypatch):
    if "walking_times_fn" not in inspect.signature(pipeline.analyze).parameters:
        with pytest.raises(InputDataError, match="tile_m needs lifecircle.analyze"):
            load_plan(write_plan(inputs, shared, areas=("shanghai",), shanghai_tile_m=700))
        monkeypatch.setattr(pipeline, "analyze", _analyze_with_hook(pipeline.analyze))
    untiled = run_batch(write_plan(inputs, shared, areas=("shanghai",)), client=client, out_dir=inputs / "untiled")
    tiled = run_batch(write_plan(inputs, shared, areas=("shanghai",), shanghai_tile_m=700), client=client,
                      out_dir=inputs / "tiled")
    assert tiled["status"].tolist() == ["ok"]
    for f in ("coverage.csv",):
        assert sha(inputs / "tiled" / "shanghai" / "hs" / f) == sha(inputs / "untiled" / "shanghai" / "hs" / f)
    a = gpd.read_file(inputs / "untiled" / "shanghai" / "hs" / "residents.gpkg")
    b = gpd.read_file(inputs / "tiled" / "shanghai" / "hs" / "residents.gpkg")
    for col in ("minutes_to_health", "minutes_to_sports"):
        np.testing.assert_array_equal(a[col].isna(), b[col].isna())
        np.testing.assert_allclose(b[col].dropna(), a[col].dropna(), rtol=0, atol=1e-9)
    assert a["minutes_to_health"].notna().mean() > 0.2
    assert tiled.loc[0, "share_all"] == untiled.loc[0, "share_all"]
    assert json.loads((inputs / "tiled" / "shanghai" / "hs" / MANIFEST).read_text())["tile_m"] == 700
    assert (inputs / "tiled" / ".scratch").is_dir()  # the tiles went through the scratch folder...
    assert not any((inputs / "tiled" / ".scratch").rglob("*.np*"))  # ...and were cleaned up


def test_cli_batch_command(tmp_path):
    from lifecircle import cli

    if "batch" not in cli.cli.commands:
        pytest.skip("`lifecircle batch` is not integrated into cli.py yet (proposed code in the batch report)")
    plan = tmp_path / "plan.toml"
    bad = tmp_path / "bad.osm.pbf"
    bad.write_bytes(b"garbage" * 10)
    plan.write_text(f'[[area]]\nname = "toy"\nosm = "{toy_town_osm().as_posix()}"\n'
                    f'[[area]]\nname = "bad"\nosm = "{bad.as_posix()}"\n')
    assert cli.main(["batch", str(plan), "--workers", "0", "--out", str(tmp_path / "out")]) == 1  # one failed
    table = pd.read_csv(tmp_path / "out" / RESULTS_FILE, encoding="utf-8-sig")
    assert table["status"].tolist() == ["ok", "failed"]
    assert cli.main(["batch", str(plan), "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"]) == 2  # usage
    (tmp_path / "typo.toml").write_text('[[area]]\nname = "x"\n')
    assert cli.main(["batch", str(tmp_path / "typo.toml")]) == 1  # plan problems: one line, exit 1


def _http_status(url: str) -> int:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_local_cluster_is_private_loopback_tls_and_has_no_dashboard(client):
    import gc
    import os

    from distributed import Client
    from distributed.security import Security

    import psutil

    info = client.scheduler_info()
    addresses = [client.scheduler.address, *info["workers"]]
    assert len(addresses) == 3 and all(a.startswith("tls://127.0.0.1:") for a in addresses)
    # every socket listening in this process (the scheduler's) and in the workers: loopback, not the dashboard port
    pids = [os.getpid(), *client.run(os.getpid).values()]
    listening = [c.laddr for pid in pids for c in psutil.Process(pid).net_connections("tcp")
                 if c.status == psutil.CONN_LISTEN]
    assert len(listening) >= 6  # scheduler + 2 workers: each a comm server and an HTTP server
    assert {a.ip for a in listening} == {"127.0.0.1"} and 8787 not in {a.port for a in listening}
    port = client.cluster.scheduler.http_server.port  # Dask's HTTP server exists (it always does)...
    for path in ("status", "info/main/workers.html", "json/identity.json", "metrics", "health"):
        assert _http_status(f"http://127.0.0.1:{port}/{path}") == 404, path  # ...and serves no page
    for w in info["workers"].values():
        assert _http_status(f"http://127.0.0.1:{w['services']['dashboard']}/metrics") == 404
    # only holders of this run's certificate can talk to the cluster (and so send it code)
    tcp = client.scheduler.address.replace("tls://", "tcp://")
    for address, kwargs in ((client.scheduler.address, {}), (client.scheduler.address, {"security": Security.temporary()}),
                            (tcp, {})):
        with pytest.raises(Exception):
            Client(address, timeout="5s", **kwargs).close()
        # finalise the refused client here, not from inside the next Client's start (distributed then deadlocks)
        gc.collect()
    assert client.submit(sum, [1, 2]).result() == 3  # the batch's own client works
