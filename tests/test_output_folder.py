"""The output folder is one transaction: one run's files, whole, after success, error, Ctrl-C, kill -9 or a full disk.

Unit tests of lifecircle.present.outputs (commit, obsolete files, user files, the lock, the
journal, leftovers, manifest checks in readers), regression tests for issue 12 section 1, and
fault tests that kill a real ``lifecircle analyze`` at every step of its commit or fill its disk.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import lonlat
from lifecircle import AnalysisConfig, analyze, reanalyze
from lifecircle.cli import main
from lifecircle.datasets import toy_town_osm
from lifecircle.errors import InputDataError, InputFileError, OutputError
from lifecircle.present import outputs
from lifecircle.present.outputs import (
    ENCODING,
    MANIFEST,
    output_file,
    output_folder,
    read_analysis_folder,
    read_run,
    read_table_back,
    write_table,
)

REPO = Path(__file__).resolve().parents[1]
FIXED_DATE = {"OGR_CURRENT_DATE": "2000-01-01T00:00:00Z"}  # GeoPackages without a write timestamp


# ---------------------------------------------------------------------------- helpers (independent of the module)

def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry below ``folder`` (hidden ones too) -> sha256 of its bytes ('dir' for folders)."""
    return {str(p.relative_to(folder)): ("dir" if p.is_dir() else sha(p)) for p in sorted(folder.rglob("*"))}


def leftovers(folder: Path) -> list[str]:
    """Anything a writer may leave behind: staging folders, journals, lock files, temp files."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".lifecircle") or ".tmp" in p.name)


def manifest_of(folder: Path, key: str | None = None) -> dict:
    name = MANIFEST if key is None else f"{key}.{MANIFEST}"
    return json.loads((folder / name).read_text(encoding="utf-8"))


def errors_of(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("lifecircle: ")]


def lifecircle(*args, env=None, **kw):
    return subprocess.run([sys.executable, "-m", "lifecircle", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **FIXED_DATE, **(env or {})}, cwd=REPO, **kw)


@pytest.fixture(scope="module")
def toy():
    return analyze(toy_town_osm())


@pytest.fixture(scope="module")
def old_run(tmp_path_factory):
    """A good run of the toy town: default minutes, service areas, site plans (no map: faster, deterministic)."""
    d = tmp_path_factory.mktemp("old") / "out"
    p = lifecircle("-q", "analyze", "--example", "toy_town", "--sites", "--no-map", "--out", d)
    assert p.returncode == 0, p.stderr
    return d


NEW_ARGS = ("-q", "analyze", "--example", "toy_town", "--minutes", "10,15", "--no-isochrones", "--no-map",
            "--no-report")  # the files Analysis.write writes (the fault tests replay its steps)


@pytest.fixture(scope="module")
def new_run(tmp_path_factory, old_run):
    """The rerun the fault tests interrupt, run to its end on a copy of the old run, with its step trace."""
    d = tmp_path_factory.mktemp("new") / "out"
    shutil.copytree(old_run, d)
    p = lifecircle(*NEW_ARGS, "--out", d, env={"LIFECIRCLE_TEST_FAULT_TRACE": "1"})
    assert p.returncode == 0, p.stderr
    steps = [line.split(" ", 1)[1] for line in p.stderr.splitlines() if line.startswith("lifecircle-fault-point ")]
    return d, steps


def which_run(folder: Path, old: Path, new: Path) -> str:
    """'old' when ``folder`` is byte for byte the old run; 'new' when it is the new run, whole; else fail."""
    assert leftovers(folder) == [], leftovers(folder)
    if snapshot(folder) == snapshot(old):
        return "old"
    m, ref = manifest_of(folder), manifest_of(new)
    names = {p.name for p in folder.iterdir()}
    assert names == set(ref["files"]) | {MANIFEST}, (sorted(names), sorted(ref["files"]))
    for name, rec in m["files"].items():  # the folder agrees with its own manifest...
        assert sha(folder / name) == rec["sha256"] and (folder / name).stat().st_size == rec["bytes"], name
        if name != "summary.json":  # ...and with the reference new run (summary.json holds its creation time)
            assert rec["sha256"] == ref["files"][name]["sha256"], name
    s1, s2 = (json.loads((f / "summary.json").read_text(encoding="utf-8")) for f in (folder, new))
    s1.pop("created"), s2.pop("created")
    assert s1 == s2
    return "new"


# ---------------------------------------------------------------------------- the component

def test_commit_records_every_file_with_size_and_sha256(tmp_path):
    d = tmp_path / "out"
    with output_folder(d, command="analyze") as run:
        run.table(pd.DataFrame({"a": [1, 2]}), "coverage.csv")
        run.json({"x": "上海"}, "summary.json")
        run.path("residents.gpkg").write_bytes(b"\x00" * 1000)
        assert not (d / "coverage.csv").exists()  # nothing is in the folder before the commit
        assert run.path("coverage.csv").parent.name.startswith(".lifecircle-staging-")
    m = manifest_of(d)
    assert set(m["files"]) == {"coverage.csv", "summary.json", "residents.gpkg"}
    assert m["files"]["residents.gpkg"] == {"bytes": 1000, "sha256": hashlib.sha256(b"\x00" * 1000).hexdigest(),
                                            "command": "analyze"}
    for name, rec in m["files"].items():
        assert rec["sha256"] == sha(d / name) and rec["bytes"] == (d / name).stat().st_size
    assert (d / "coverage.csv").read_text(encoding=ENCODING) == "a\n1\n2\n"
    assert leftovers(d) == []  # no staging, no journal, and the lock file went with the lock


def test_rerun_removes_the_earlier_runs_other_files_but_never_the_users(tmp_path):
    d = tmp_path / "out"
    with output_folder(d, command="analyze") as run:
        for name in ("coverage.csv", "isochrones.gpkg", "suggested_sites.csv"):
            run.path(name).write_text(name)
    (d / "notes.txt").write_text("my notes")
    (d / "mine").mkdir()
    (d / "mine" / "isochrones.gpkg").write_text("my own file of the same name, in my folder")
    (d / "map.html").write_text("a file the recorded run does not list")
    mine = {k: v for k, v in snapshot(d).items() if k in ("notes.txt", "mine", "mine/isochrones.gpkg", "map.html")}
    with output_folder(d, command="analyze") as run:
        run.path("coverage.csv").write_text("new")
    assert (d / "coverage.csv").read_text() == "new"
    assert not (d / "isochrones.gpkg").exists() and not (d / "suggested_sites.csv").exists()
    assert {k: v for k, v in snapshot(d).items() if k in mine} == mine
    assert set(manifest_of(d)["files"]) == {"coverage.csv"}


def test_adding_to_a_run_keeps_its_files_and_replaces_the_named_ones(tmp_path):
    d = tmp_path / "out"
    with output_folder(d, command="analyze") as run:
        for name in ("summary.json", "coverage.csv", "map.html", "suggested_sites.csv", "coverage_map.png"):
            run.path(name).write_text(name)
    before = snapshot(d)
    with output_folder(d, command="gaps", replace=outputs.GAPS_REPLACES) as run:
        run.path("gaps.gpkg").write_text("gaps")
    m = manifest_of(d)
    assert set(m["files"]) == {"summary.json", "coverage.csv", "coverage_map.png", "gaps.gpkg"}
    for kept in ("summary.json", "coverage.csv", "coverage_map.png"):
        assert snapshot(d)[kept] == before[kept] and m["files"][kept]["command"] == "analyze"
    assert m["files"]["gaps.gpkg"]["command"] == "gaps"
    assert not (d / "map.html").exists() and not (d / "suggested_sites.csv").exists()
    assert [h["command"] for h in m["history"]] == ["analyze", "gaps"]
    # a kept file that was edited since is not carried into the new record: the folder stays as it was
    (d / "coverage.csv").write_text("edited")
    before = snapshot(d)
    with pytest.raises(InputFileError, match=r"coverage.csv was changed .* run `lifecircle analyze"):
        with output_folder(d, command="map", replace=["map.html"]) as run:
            run.path("map.html").write_text("map")
    assert snapshot(d) == before


def test_folder_of_an_older_version_counts_the_known_names_as_ours(tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    for name in ("coverage.csv", "isochrones.gpkg", "notes.txt", ".coverage-ab12cd34.tmp.csv"):
        (d / name).write_text(name)
    with output_folder(d, command="analyze") as run:
        run.path("coverage.csv").write_text("new")
    assert sorted(p.name for p in d.iterdir()) == ["coverage.csv", MANIFEST, "notes.txt"]
    # read as it is, with a warning, when nothing recorded it
    d2 = tmp_path / "old"
    d2.mkdir()
    (d2 / "summary.json").write_text("{}")
    assert read_run(d2).manifest is None and read_run(d2).files == ["summary.json"]


def test_a_damaged_manifest_or_journal_never_reaches_outside_the_folder(tmp_path):
    d, victim = tmp_path / "out", tmp_path / "victim.txt"
    d.mkdir()
    victim.write_text("keep me")
    (d / "coverage.csv").write_text("old")
    (d / MANIFEST).write_text(json.dumps({"files": {"../victim.txt": {"bytes": 7, "sha256": "0"}}}))
    with pytest.raises(InputFileError, match="is not a lifecircle manifest"):
        read_run(d)
    with output_folder(d, command="analyze") as run:  # a writer replaces it (the known names count as ours)
        run.json({}, "summary.json")
    assert sorted(p.name for p in d.iterdir()) == [MANIFEST, "summary.json"]
    (d / ".lifecircle-journal.json").write_text(json.dumps(
        {"staging": ".lifecircle-staging-x", "move": ["../victim.txt"], "delete": ["../victim.txt"]}))
    read_run(d)
    assert victim.read_text() == "keep me" and leftovers(d) == []


HOLDER = textwrap.dedent("""
    import sys, time
    from lifecircle.present.outputs import output_folder
    with output_folder(sys.argv[1], command="analyze") as run:
        run.path("coverage.csv").write_text("theirs")
        print("holding", flush=True)
        time.sleep(60)
""")


def test_a_second_writer_stops_at_once_and_a_killed_holder_frees_the_folder(tmp_path, capsys):
    d = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(d)], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "holding"
        t0 = time.perf_counter()
        with pytest.raises(OutputError, match=rf"{re.escape(str(d))} is being written by another lifecircle run "
                                              rf"\(`lifecircle analyze`, process {holder.pid}\): wait until it "
                                              "finishes"):
            with output_folder(d, command="analyze"):
                pass
        assert time.perf_counter() - t0 < 1.0  # at once, not after a wait
        assert main(["-q", "analyze", "--example", "toy_town", "--out", str(d)]) == 1
        err = errors_of(capsys.readouterr().err)
        assert len(err) == 1 and "another lifecircle run" in err[0] and str(d) in err[0] and "--out" in err[0]
        assert not (d / "coverage.csv").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the operating system released the lock with the process; its staging folder is cleaned up
    assert any(n.startswith(".lifecircle-staging-") for n in leftovers(d))
    with output_folder(d, command="analyze") as run:
        run.path("coverage.csv").write_text("mine")
    assert (d / "coverage.csv").read_text() == "mine" and leftovers(d) == []


class Crash(BaseException):
    """Stands for the process dying at a step: with crash_at, none of lifecircle's clean-up runs after it."""


def crash_at(monkeypatch, step: str):
    real = outputs._fault_point

    def point(what):
        if what == step:
            raise Crash(what)
        real(what)

    monkeypatch.setattr(outputs, "_fault_point", point)
    monkeypatch.setattr(outputs.OutputRun, "_discard", lambda self: None)  # a dead process cleans nothing


def _two_runs(d: Path, monkeypatch, step: str) -> dict:
    with output_folder(d, command="analyze") as run:
        for name in ("summary.json", "coverage.csv", "isochrones.gpkg"):
            run.path(name).write_text(f"old {name}")
    crash_at(monkeypatch, step)
    with pytest.raises(Crash):
        with output_folder(d, command="analyze") as run:
            for name in ("summary.json", "coverage.csv"):
                run.path(name).write_text(f"new {name}")
    monkeypatch.undo()
    return {"summary.json": "new summary.json", "coverage.csv": "new coverage.csv"}


@pytest.mark.parametrize("opener", ["reader", "writer"])
def test_journal_is_rolled_forward_after_a_crash_between_journal_and_moves(tmp_path, monkeypatch, opener):
    d = tmp_path / "out"
    new = _two_runs(d, monkeypatch, "move summary.json")
    # the crash left the journal, the staged files and the old ones: a mix if read as it is
    assert (d / ".lifecircle-journal.json").exists()
    assert (d / "summary.json").read_text() == "old summary.json" and (d / "isochrones.gpkg").exists()
    if opener == "reader":
        rec = read_run(d)
        assert set(rec.files) == set(new)
    else:
        with output_folder(d, command="map", replace=["map.html"]) as run:
            run.path("map.html").write_text("map")
        new["map.html"] = "map"
    assert {p.name: p.read_text() for p in d.iterdir() if p.name != MANIFEST} == new
    assert set(manifest_of(d)["files"]) == set(new) and leftovers(d) == []


def test_a_crash_before_the_journal_leaves_the_old_run(tmp_path, monkeypatch):
    d = tmp_path / "out"
    _two_runs(d, monkeypatch, "rename journal")
    left = leftovers(d)  # the journal was written, not yet renamed; the staging is full
    assert ".lifecircle-journal.json.tmp" in left and any(n.startswith(".lifecircle-staging-") for n in left)
    rec = read_run(d)
    assert {p.name: p.read_text() for p in d.iterdir() if p.name != MANIFEST} == {
        n: f"old {n}" for n in ("summary.json", "coverage.csv", "isochrones.gpkg")}
    assert set(rec.files) == {"summary.json", "coverage.csv", "isochrones.gpkg"} and leftovers(d) == []


def test_readers_clean_stale_staging_but_not_a_live_writers(tmp_path, toy):
    d = tmp_path / "out"
    toy.write(d, isochrones=False, gaps=False)
    (d / ".lifecircle-staging-0badf00d").mkdir()
    (d / ".lifecircle-staging-0badf00d" / "coverage.csv").write_text("half")
    (d / ".lifecircle-journal.json.tmp").write_text("{")
    assert len(read_analysis_folder(d).coverage) == len(toy.coverage)
    assert leftovers(d) == []
    with output_folder(d, command="map", replace=["map.html"]) as run:
        read_run(d)  # a reader while this writer stages: its staging must survive
        assert run.staging.is_dir()
        run.path("map.html").write_text("x")
    assert (d / "map.html").read_text() == "x"


def test_readers_use_only_the_recorded_files_and_say_when_one_changed(tmp_path, toy, capsys):
    d = tmp_path / "out"
    toy.write(d, isochrones=False)
    shutil.copy(d / "gaps.gpkg", d / "isochrones.gpkg")  # not in the run: ignored, not drawn as service areas
    b = read_analysis_folder(d)
    assert b.isochrones is None and b.gaps is not None and len(b.gaps) == len(toy.gaps)
    good = {n: (d / n).read_bytes() for n in ("coverage.csv", "summary.json")}
    with (d / "coverage.csv").open("a", encoding="utf-8") as fh:
        fh.write("x\n")
    with pytest.raises(InputFileError, match=rf"{re.escape(str(d / 'coverage.csv'))} was changed after `lifecircle "
                                             rf"analyze` wrote it .*: run `lifecircle analyze \.\.\. --out "
                                             rf"{re.escape(str(d))}` again"):
        read_analysis_folder(d)
    assert main(["map", str(d), "--basemap", "none", "--no-png"]) == 1
    err = errors_of(capsys.readouterr().err)
    assert len(err) == 1 and "coverage.csv was changed" in err[0] and not (d / "map.html").exists()
    (d / "coverage.csv").write_bytes(good["coverage.csv"])
    (d / "summary.json").write_text((d / "summary.json").read_text(encoding="utf-8").replace("0", "1"),
                                    encoding="utf-8")
    with pytest.raises(InputFileError, match="summary.json was changed"):
        reanalyze(d)
    (d / "summary.json").write_bytes(good["summary.json"])
    (d / "gaps.gpkg").unlink()
    with pytest.raises(InputFileError, match=rf"{re.escape(str(d / 'gaps.gpkg'))} is missing but {MANIFEST} lists it"):
        reanalyze(d)  # missing is found even for a file the reader does not need


def test_a_reader_reads_again_when_a_commit_came_while_it_read(tmp_path):
    d = tmp_path / "out"
    with output_folder(d, command="analyze") as run:
        run.path("summary.json").write_text("1")
    calls = []

    def read(rec):
        calls.append(rec.read_bytes("summary.json"))
        if len(calls) == 1:  # another process commits meanwhile
            with output_folder(d, command="analyze") as run:
                run.path("summary.json").write_text("2")
        return calls[-1]

    assert outputs._read_consistently(d, read) == b"2" and calls == [b"1", b"2"]


def test_outputs_beside_a_chosen_file_are_runs_of_their_own(tmp_path, toy):
    d = tmp_path / "out"
    toy.write(d, isochrones=False)
    with output_file(d / "fac.gpkg", command="facilities") as run:
        run.path("fac.gpkg").write_text("g")
        run.table(pd.DataFrame({"n": [1]}), "fac_counts.csv")
        run.table(pd.DataFrame({"n": [1]}), "fac_rejected.csv")
        with pytest.raises(ValueError, match="start with its name"):
            run.path("coverage.csv")
    with output_file(d / "iso.gpkg", command="isochrone") as run:
        run.path("iso.gpkg").write_text("i")
    with output_file(d / "fac.gpkg", command="facilities") as run:  # rerun without rejects
        run.path("fac.gpkg").write_text("g2")
        run.table(pd.DataFrame({"n": [2]}), "fac_counts.csv")
    assert not (d / "fac_rejected.csv").exists() and (d / "iso.gpkg").read_text() == "i"
    assert set(manifest_of(d, "fac")["files"]) == {"fac.gpkg", "fac_counts.csv"}
    assert set(manifest_of(d, "iso")["files"]) == {"iso.gpkg"}
    read_analysis_folder(d)  # the analysis in the same folder is untouched
    with output_folder(d, command="analyze") as run:  # and its rerun leaves them alone
        run.json({}, "summary.json")
    assert (d / "fac.gpkg").exists() and (d / "iso.gpkg").exists() and not (d / "coverage.csv").exists()
    with pytest.raises(OutputError, match=r"summary.json belongs to another output, the `lifecircle analyze` run"):
        with output_file(d / "summary.json", command="isochrone"):
            pass


# ---------------------------------------------------------------------------- issue 12.1 regressions

def test_a_rerun_that_fails_late_leaves_the_old_run_byte_identical(tmp_path, monkeypatch, capsys, toy):
    d = tmp_path / "out"
    assert main(["-q", "analyze", "--example", "toy_town", "--sites", "--out", str(d)]) == 0
    before = snapshot(d)
    import lifecircle.present.figures as figures

    def full_disk(*a, **k):  # the very last file of the run
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(figures, "save_figure", full_disk)
    assert main(["-q", "analyze", "--example", "toy_town", "--minutes", "10", "--out", str(d)]) == 1
    assert errors_of(capsys.readouterr().err) == [
        f"lifecircle: error: disk full while writing {d}: free space or choose another --out"]
    assert snapshot(d) == before
    # the library too: a writer failing half way (a bug) leaves the folder as it was
    import lifecircle.present.qgis as qgis

    monkeypatch.setattr(qgis, "write_layer_styles", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("late")))
    with pytest.raises(RuntimeError, match="late"):
        toy.write(d)
    assert snapshot(d) == before


def test_a_rerun_with_fewer_outputs_removes_the_stale_ones_and_map_does_not_draw_them(tmp_path):
    d = tmp_path / "out"
    assert main(["-q", "analyze", "--example", "toy_town", "--sites", "--out", str(d)]) == 0
    html = (d / "map.html").read_text(encoding="utf-8")
    assert "服务范围 Service areas" in html and "新址 Suggested sites" in html  # what a stale map would show
    assert main(["-q", "analyze", "--example", "toy_town", "--no-isochrones", "--no-map", "--out", str(d)]) == 0
    for stale in ("isochrones.gpkg", "suggested_sites.csv", "suggested_sites.gpkg", "sites_needed.csv", "map.html",
                  "coverage_map.png"):
        assert not (d / stale).exists(), stale
    assert main(["-q", "map", str(d), "--basemap", "none", "--no-png"]) == 0
    html = (d / "map.html").read_text(encoding="utf-8")
    assert "服务范围 Service areas" not in html and "新址 Suggested sites" not in html
    assert "缺口 Gaps" in html  # gaps.gpkg is still part of the run


def test_gaps_and_map_add_to_the_run_and_scenario_writes_its_own(tmp_path):
    d = tmp_path / "out"
    assert main(["-q", "analyze", "--example", "toy_town", "--sites", "--no-png", "--out", str(d)]) == 0
    analysis = {n: sha(d / n) for n in ("summary.json", "coverage.csv", "residents.gpkg", "isochrones.gpkg")}
    (d / "notes.txt").write_text("mine")
    assert main(["-q", "gaps", str(d), "--category", "health", "-k", "1", "--no-per-unit", "--no-map"]) == 0
    m = manifest_of(d)
    assert {n: m["files"][n]["sha256"] for n in analysis} == analysis  # carried over unchanged
    assert m["files"]["suggested_sites.csv"]["command"] == "gaps" and "map.html" not in m["files"]
    assert not (d / "map.html").exists()  # it showed the earlier gaps
    assert len(pd.read_csv(d / "suggested_sites.csv", encoding="utf-8-sig")) == 1
    assert main(["-q", "map", str(d), "--basemap", "none"]) == 0
    assert {"map.html", "coverage_map.png", "coverage_curve.png"} <= set(manifest_of(d)["files"])
    assert main(["-q", "scenario", str(d), "--add", str(d / "suggested_sites.csv")]) == 0
    assert set(manifest_of(d / "scenario")["files"]) == set(outputs.SCENARIO_FILES)
    assert "scenario" not in manifest_of(d)["files"] and (d / "notes.txt").read_text() == "mine"
    assert leftovers(d) == [] and leftovers(d / "scenario") == []


def test_isochrone_and_facilities_commands_commit_their_files(tmp_path):
    lo, la = lonlat(0, 10)
    iso = tmp_path / "iso.gpkg"
    args = ["-q", "isochrone", "--example", "toy_town", "--lon", str(float(lo)), "--lat", str(float(la))]
    assert main([*args, "--out", str(iso)]) == 0
    assert set(manifest_of(tmp_path, "iso")["files"]) == {"iso.gpkg", "iso.html"}  # the map beside it
    before = snapshot(tmp_path)
    assert main(["-q", "isochrone", "--example", "toy_town", "--lon", "121.6", "--lat", "31.3", "--out",
                 str(iso)]) == 1  # too far from the streets: the earlier iso.gpkg stays
    assert snapshot(tmp_path) == before
    x, y = lonlat(100, 100)
    (tmp_path / "list.csv").write_text(f"name,category,lon,lat\n=1+1,health,{x},{y}\n@SUM(A1),bakery,{x},{y}\n",
                                       encoding="utf-8")
    assert main(["facilities", "--list", str(tmp_path / "list.csv"), "--out", str(tmp_path / "fac.gpkg")]) == 0
    assert set(manifest_of(tmp_path, "fac")["files"]) == {"fac.gpkg", "fac_counts.csv", "fac_rejected.csv"}
    assert "'@SUM(A1)" in (tmp_path / "fac_rejected.csv").read_text(encoding=ENCODING)
    (tmp_path / "list.csv").write_text(f"name,category,lon,lat\nok,health,{x},{y}\n", encoding="utf-8")
    assert main(["-q", "facilities", "--list", str(tmp_path / "list.csv"), "--out", str(tmp_path / "fac.gpkg")]) == 0
    assert not (tmp_path / "fac_rejected.csv").exists() and (tmp_path / "iso.gpkg").exists()
    assert leftovers(tmp_path) == []


def test_batch_task_folders_are_committed_runs(tmp_path):
    from lifecircle.scale.batch import MANIFEST as BATCH_MANIFEST, RESULTS_FILE, run_batch

    (tmp_path / "plan.toml").write_text(f'out_dir = "out"\n[[area]]\nname = "toy"\nosm = "{toy_town_osm().as_posix()}"\n')
    table = run_batch(tmp_path / "plan.toml", workers=0)
    assert table.status.tolist() == ["ok"]
    task = tmp_path / "out" / "toy" / "default"
    m = manifest_of(task)
    assert BATCH_MANIFEST in m["files"] and "summary.json" in m["files"] and m["command"] == "batch"
    assert set(manifest_of(tmp_path / "out", Path(RESULTS_FILE).stem)["files"]) == {RESULTS_FILE}
    assert leftovers(task) == [] and leftovers(tmp_path / "out") == []


# ---------------------------------------------------------------------------- CSV/XLSX cells (issue 12.5)

def test_formula_like_text_is_quoted_numbers_stay_numbers(tmp_path):
    df = pd.DataFrame({"name": ["=HYPERLINK(\"http://x\")", "+86 21", "-", "@SUM(A1)", "\tx", "ok", "'=q", "it's", None],
                       "value": [-1.5, 2.0, -3.0, 4.0, 5.0, 7.0, 8.0, 9.0, -10.0],
                       "n": [-1, 2, 3, 4, 5, 7, 8, 9, 10]})
    text = write_table(df, tmp_path / "t.csv").read_bytes().decode(ENCODING)
    assert not text.startswith("\ufeff")
    assert text.split("\n") == [
        "name,value,n",
        "\"'=HYPERLINK(\"\"http://x\"\")\",-1.5,-1",
        "'+86 21,2.0,2", "'-,-3.0,3", "'@SUM(A1),4.0,4", "'\tx,5.0,5",
        "ok,7.0,7", "''=q,8.0,8", "it's,9.0,9", ",-10.0,10", ""]
    back = read_table_back(tmp_path / "t.csv")
    assert back["name"].tolist()[:8] == df["name"].tolist()[:8] and pd.isna(back["name"].iloc[8])
    assert back["value"].tolist() == df["value"].tolist() and back["n"].tolist() == df["n"].tolist()
    # a carriage return: quoted, so that the cell stays in its row
    cr = pd.DataFrame({"name": ["\rx", "a\rb"], "n": [1, -2]})
    write_table(cr, tmp_path / "cr.csv")
    assert (tmp_path / "cr.csv").read_bytes().decode(ENCODING) == '"name","n"\n"\'\rx",1\n"a\rb",-2\n'
    back = read_table_back(tmp_path / "cr.csv")
    assert back["name"].tolist() == ["\rx", "a\rb"] and back["n"].tolist() == [1, -2]
    # labels too: the index (unit names in the count tables) and the header
    t = pd.DataFrame({"=x": [1]}, index=pd.Index(["-东区"], name="unit"))
    assert write_table(t, tmp_path / "i.csv", index=True).read_text(encoding=ENCODING) == "unit,'=x\n'-东区,1\n"


def test_excel_cells_are_text_not_formulas(tmp_path):
    import openpyxl

    write_table(pd.DataFrame({"name": ["=1+1", "ok"], "x": [-2.5, 3]}), tmp_path / "t.xlsx")
    ws = openpyxl.load_workbook(tmp_path / "t.xlsx").active
    assert (ws["A2"].value, ws["A2"].data_type) == ("'=1+1", "s")
    assert (ws["B2"].value, ws["B2"].data_type) == (-2.5, "n")


def test_analysis_csvs_quote_names_from_lists(tmp_path):
    x, y = lonlat(100, 100)
    (tmp_path / "list.csv").write_text(f"name,category,lon,lat\nok,health,{x},{y}\n=cmd|' /C calc'!A0,bakery,{x},{y}\n",
                                       encoding="utf-8")
    d = tmp_path / "out"
    assert main(["-q", "analyze", "--example", "toy_town", "--facilities", str(tmp_path / "list.csv"), "--no-map",
                 "--out", str(d)]) == 0
    text = (d / "facilities_rejected.csv").read_text(encoding=ENCODING)
    assert "'=cmd|' /C calc'!A0" in text and "\n=cmd" not in text and ",=cmd" not in text


def test_every_csv_goes_through_the_one_table_writer():
    hits = [f"{p.relative_to(REPO)}:{i}" for p in (REPO / "lifecircle").rglob("*.py")
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
            if ".to_csv(" in line or ".to_excel(" in line]
    assert [h.split(":")[0] for h in hits] == ["lifecircle/present/outputs.py"] * 2, hits


# ---------------------------------------------------------------------------- Ctrl-C

def test_ctrl_c_removes_the_staging_and_exits_130(tmp_path, monkeypatch, capsys):
    d = tmp_path / "out"
    assert main(["-q", "analyze", "--example", "toy_town", "--no-map", "--out", str(d)]) == 0
    before = snapshot(d)
    import lifecircle.plan.gaps as gaps

    def ctrl_c(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(gaps, "find_gaps", ctrl_c)
    assert main(["-q", "analyze", "--example", "toy_town", "--minutes", "10", "--out", str(d)]) == 130
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("lifecircle: interrupted")
    assert snapshot(d) == before


def test_sigint_to_a_running_analyze(old_run, tmp_path):
    d = tmp_path / "out"
    shutil.copytree(old_run, d)
    p = subprocess.Popen([sys.executable, "-m", "lifecircle", *NEW_ARGS, "--out", str(d)], stderr=subprocess.PIPE,
                         text=True, cwd=REPO, env={**os.environ, **FIXED_DATE, "LIFECIRCLE_TEST_FAULT_TRACE": "1",
                                                   "LIFECIRCLE_TEST_FAULT_PAUSE_AT": "3",
                                                   "LIFECIRCLE_TEST_FAULT_DELAY_S": "30"})
    for line in p.stderr:
        if line.startswith("lifecircle-fault-point write residents.gpkg"):
            p.send_signal(signal.SIGINT)
            break
    rest = p.stderr.read()
    assert p.wait(timeout=30) == 130
    err = [line for line in rest.splitlines() if line.strip() and not line.startswith("lifecircle-fault-point")]
    assert len(err) == 1 and err[0].startswith("lifecircle: interrupted"), rest
    assert snapshot(d) == snapshot(old_run)


# ---------------------------------------------------------------------------- faults: kill -9, full disk

FORK_SERVER = textwrap.dedent("""
    # Imports lifecircle once, then forks one `lifecircle analyze` per request: a kill -9 test costs the run, not
    # the interpreter start-up. Request: [fifo, pause_at, args]; reply: the child's pid.
    import json, os, signal, sys
    from lifecircle.cli import main
    main(["-q", "analyze", "--example", "toy_town", "--no-map", "--out", sys.argv[1]])  # warm up
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the children reap themselves
    for line in sys.stdin:
        fifo, pause_at, args = json.loads(line)
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            os.environ.update(LIFECIRCLE_TEST_FAULT_TRACE="1", LIFECIRCLE_TEST_FAULT_PAUSE_AT=str(pause_at),
                              LIFECIRCLE_TEST_FAULT_DELAY_S="30")
            os.dup2(os.open(fifo, os.O_WRONLY), 2)
            code = 1
            try:
                code = main(args)
            finally:
                sys.stderr.write(f"lifecircle-test-exit {code}\\n")
                sys.stderr.flush()
                os._exit(code)
        print(pid, flush=True)
""")


class ForkServer:
    def __init__(self, scratch: Path) -> None:
        self.p = subprocess.Popen([sys.executable, "-c", FORK_SERVER, str(scratch)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, cwd=REPO,
                                  env={**os.environ, **FIXED_DATE, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})
        self.lock = threading.Lock()

    def kill_at(self, step_index: int, extra_s: float, old: Path, work: Path) -> None:
        """Run the new analysis on a copy of ``old`` in ``work`` and kill -9 it at its ``step_index``-th step.

        ``extra_s == 0``: the run waits before that step until it is killed (the step is not done);
        otherwise it goes on and is killed ``extra_s`` seconds after the step began.
        """
        shutil.copytree(old, work)
        fifo = work.parent / f"{work.name}.fifo"
        os.mkfifo(fifo)
        with self.lock:
            pause_at = step_index if extra_s == 0 else 0
            self.p.stdin.write(json.dumps([str(fifo), pause_at, [*NEW_ARGS, "--out", str(work)]]) + "\n")
            self.p.stdin.flush()
            pid = int(self.p.stdout.readline())
        seen, killed = 0, False
        with open(fifo, encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("lifecircle-fault-point "):
                    seen += 1
                    if seen == step_index:
                        time.sleep(extra_s)
                        try:
                            os.kill(pid, signal.SIGKILL)
                            killed = True
                        except ProcessLookupError:  # it finished during extra_s: the folder must hold the new run
                            pass
                        break
            rest = fh.read()
        if extra_s == 0:  # it waited at the step: it must have died there
            assert killed and "lifecircle-test-exit" not in rest, f"finished before step {step_index}: {rest}"

    def close(self) -> None:
        self.p.stdin.close()
        self.p.wait(timeout=30)


def test_kill_9_at_any_moment_leaves_the_old_or_the_new_run_whole(old_run, new_run, tmp_path):
    new_dir, steps = new_run
    n = len(steps)
    journal = steps.index("rename journal") + 1  # 1-based: the kill comes just before this step
    assert steps[journal].startswith("move ")
    assert any(s.startswith("delete ") for s in steps)  # the new run removes files of the old one
    cases = [(journal, 0.0), (journal + 1, 0.0), (n, 0.0)]  # just before the journal, just after, the last step
    for seed in range(10):
        rng = random.Random(seed)
        cases.append((rng.randint(1, n), rng.choice([0.0, rng.uniform(0.0005, 0.01)])))  # before or during a step
    results: dict[int, str] = {}
    errors: list[BaseException] = []
    server = ForkServer(tmp_path / "warm")

    def one(i, step, extra):
        try:
            server.kill_at(step, extra, old_run, tmp_path / f"k{i}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    try:
        for batch in range(0, len(cases), 3):
            threads = [threading.Thread(target=one, args=(i, *cases[i]))
                       for i in range(batch, min(batch + 3, len(cases)))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    finally:
        server.close()
    assert not errors, errors
    for i, (step, extra) in enumerate(cases):
        work = tmp_path / f"k{i}"
        read_run(work)  # one lifecircle read: rolls a journal forward, removes the staging of the killed run
        results[i] = which_run(work, old_run, new_dir)
    assert results[0] == "old" and results[1] == "new" and results[2] == "new", results
    for i, (step, extra) in enumerate(cases):
        if extra == 0.0:  # killed while it waited before ``step``: decided by whether the journal was in place
            assert results[i] == ("old" if step <= journal else "new"), (steps[step - 1], results[i])


def _enospc_at(monkeypatch, n: int):
    calls = []
    real = outputs._fault_point

    def point(what):
        calls.append(what)
        if len(calls) == n:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(what)

    monkeypatch.setattr(outputs, "_fault_point", point)
    return calls


def test_a_full_disk_at_any_write_leaves_the_old_or_the_new_run(old_run, new_run, tmp_path, monkeypatch):
    for k, v in FIXED_DATE.items():
        monkeypatch.setenv(k, v)
    new_dir, steps = new_run
    new = analyze(toy_town_osm(), config=AnalysisConfig(minutes=(10, 15)))
    journal = steps.index("rename journal") + 1
    seen = set()
    for n in range(1, len(steps) + 1):
        work = tmp_path / f"f{n}"
        shutil.copytree(old_run, work)
        with monkeypatch.context() as mp:
            calls = _enospc_at(mp, n)
            with pytest.raises(OutputError) as info:
                new.write(work, isochrones=False)
        assert calls[n - 1] == steps[n - 1]
        if n <= journal:
            assert str(info.value) == f"disk full while writing {work}: free space or choose another --out"
        else:
            assert "the next lifecircle command on" in str(info.value)
        read_run(work)
        seen.add(which_run(work, old_run, new_dir))
    assert seen == {"old", "new"}


def test_a_real_full_disk(old_run, tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    used = sum(p.stat().st_size for p in old_run.iterdir())
    size_kb = used // 1024 + 200  # the old run fits, a second copy beside it does not
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(mnt)], capture_output=True,
                       text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({(p.stderr or p.stdout).strip()}); the simulated full disk "
                    "test covers the same steps")
    try:
        d = mnt / "out"
        shutil.copytree(old_run, d)
        before = snapshot(d)
        r = lifecircle("-q", "analyze", "--example", "toy_town", "--minutes", "10", "--sites", "--no-map", "--out", d)
        assert r.returncode == 1, r.stderr
        assert errors_of(r.stderr) == [f"lifecircle: error: disk full while writing {d}: free space or choose "
                                       "another --out"], r.stderr
        assert "Traceback" not in r.stderr
        assert snapshot(d) == before
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_a_background_job_is_waited_for_and_its_failure_keeps_the_old_run(tmp_path):
    """OutputRun.in_background: the commit waits for the job's file; a job returning False takes its file
    out of the run; a job that raises fails the commit and the folder keeps its earlier run."""
    from lifecircle.present.outputs import output_folder

    out = tmp_path / "out"
    started = threading.Event()

    def slow(target: Path) -> bool:
        started.set()
        time.sleep(0.3)
        target.write_text("late")
        return True

    with output_folder(out, command="t") as run:
        run.in_background("late.txt", slow)
        assert started.wait(5)
        run.path("now.txt").write_text("now")
    assert (out / "late.txt").read_text() == "late" and (out / "now.txt").read_text() == "now"

    with output_folder(out, command="t") as run:
        run.path("now.txt").write_text("second")
        run.in_background("late.txt", lambda target: False)  # failed, having said why
    assert not (out / "late.txt").exists() and (out / "now.txt").read_text() == "second"
    assert "late.txt" not in json.loads((out / "lifecircle_manifest.json").read_text())["files"]

    def boom(target: Path) -> bool:
        target.write_text("half")
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        with output_folder(out, command="t") as run:
            run.path("now.txt").write_text("third")
            run.in_background("late.txt", boom)
    assert (out / "now.txt").read_text() == "second" and not (out / "late.txt").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".lifecircle")]  # no staging left behind
