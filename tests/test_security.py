"""Security of batch runs: plan paths stay in the plan's folder, the dashboard only on request, scheduler addresses."""

from __future__ import annotations

import json
import logging
import os
import shutil
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from lifecircle import InputDataError
from lifecircle.cli import main
from lifecircle.datasets import toy_town_osm
from lifecircle.scale.batch import RESULTS_FILE, check_scheduler_address, dask_client, load_plan, run_batch

TOY_AREA = '[[area]]\nname = "toy"\nosm = "data/town.osm"\n'


@pytest.fixture()
def plan_dir(tmp_path):
    """A plan folder with its own input file, given by a relative path, and an unrelated current folder."""
    d = tmp_path / "plans"
    (d / "data").mkdir(parents=True)
    shutil.copy(toy_town_osm(), d / "data" / "town.osm")
    (tmp_path / "elsewhere").mkdir()
    return d


def write(d: Path, head: str = "", name: str = "plan.toml") -> Path:
    (d / name).write_text(head + "\n[parameters.base]\nminutes = [5, 15]\n" + TOY_AREA, encoding="utf-8")
    return d / name


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


# --- paths -------------------------------------------------------------------------------------


def test_relative_paths_start_at_the_plan_folder_not_the_current_folder(plan_dir, monkeypatch, capsys):
    plan = write(plan_dir, 'out_dir = "results"\nscratch_dir = "tmp/scratch"')
    cwd = plan_dir.parent / "elsewhere"
    monkeypatch.chdir(cwd)
    p = load_plan(Path("..") / "plans" / "plan.toml")
    assert p.out_dir == plan_dir.resolve() / "results" and p.out_dir.is_absolute()
    assert p.scratch_dir == plan_dir.resolve() / "tmp" / "scratch"
    assert p.tasks[0].files == {"osm": str(plan_dir.resolve() / "data" / "town.osm")}

    assert main(["-q", "batch", "../plans/plan.toml", "--workers", "0"]) == 0
    summary = json.loads((plan_dir / "results" / "toy" / "base" / "summary.json").read_text(encoding="utf-8"))
    assert summary["parameters"]["minutes"] == [5.0, 15.0]
    assert (plan_dir / "results" / RESULTS_FILE).is_file()
    assert not any(cwd.iterdir())  # nothing written in the current folder
    manifest = json.loads((plan_dir / "results" / "toy" / "base" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["inputs"]["osm"]["path"] == str(plan_dir.resolve() / "data" / "town.osm")


@pytest.mark.parametrize("key, value", [
    ("out_dir", "../elsewhere/out"),
    ("out_dir", "results/../../elsewhere"),
    ("out_dir", "ABS"),
    ("out_dir", "~/batch"),
    ("scratch_dir", "../elsewhere/scratch"),
    ("out_dir", "link/out"),  # a symbolic link inside the plan folder pointing outside
])
def test_folders_outside_the_plan_folder_are_refused(plan_dir, monkeypatch, capsys, key, value):
    outside = (plan_dir.parent / "elsewhere").resolve()
    monkeypatch.setenv("HOME", str(outside))
    if value == "ABS":
        value = (outside / "out").as_posix()
    if value.startswith("link"):
        (plan_dir / "link").symlink_to(outside, target_is_directory=True)
    plan = write(plan_dir, f'{key} = "{value}"')
    expected = {"../elsewhere/out": outside / "out", "results/../../elsewhere": outside, "~/batch": outside / "batch",
                "../elsewhere/scratch": outside / "scratch", "link/out": outside / "out"}.get(value, outside / "out")

    assert main(["batch", str(plan), "--workers", "0"]) == 1
    line = error_line(capsys)
    assert f"{key} {value!r} is {expected}, outside the plan's folder {plan_dir.resolve()}" in line
    assert "--allow-outside-plan-dir" in line
    assert not any(outside.iterdir()) and not (plan_dir / "plan_out").exists()  # nothing written anywhere
    with pytest.raises(InputDataError, match="allow_outside_plan_dir=True"):
        load_plan(plan)

    # the explicit option lets it through, and the batch writes there
    assert main(["-q", "batch", str(plan), "--workers", "0", "--allow-outside-plan-dir"]) == 0
    out = expected if key == "out_dir" else plan_dir / "plan_out"
    assert (out / "toy" / "base" / "summary.json").is_file()
    assert getattr(load_plan(plan, allow_outside_plan_dir=True), key) == expected


def test_folders_inside_the_plan_folder_are_accepted(plan_dir):
    (plan_dir / "inner").mkdir()
    (plan_dir / "to_inner").symlink_to(plan_dir / "inner", target_is_directory=True)
    p = load_plan(write(plan_dir, 'out_dir = "results/../out"\nscratch_dir = "to_inner/scratch"'))
    assert p.out_dir == plan_dir.resolve() / "out"
    assert p.scratch_dir == plan_dir.resolve() / "inner" / "scratch"
    assert load_plan(write(plan_dir, 'out_dir = "."')).out_dir == plan_dir.resolve()
    assert load_plan(write(plan_dir)).out_dir == plan_dir.resolve() / "plan_out"  # the default
    with pytest.raises(InputDataError, match=r"out_dir must be a folder path in quotes"):
        load_plan(write(plan_dir, "out_dir = 5"))


def test_out_option_may_be_anywhere_and_replaces_the_plans_out_dir(plan_dir, monkeypatch, capsys):
    outside = plan_dir.parent / "elsewhere"
    plan = write(plan_dir, 'out_dir = "/somewhere/not/allowed"')
    monkeypatch.chdir(outside)
    assert main(["-q", "batch", str(plan), "--workers", "0", "--out", "chosen"]) == 0  # relative to the current folder
    assert (outside / "chosen" / "toy" / "base" / "summary.json").is_file()
    assert pd.read_csv(outside / "chosen" / RESULTS_FILE, encoding="utf-8-sig")["status"].tolist() == ["ok"]
    assert not Path("/somewhere").exists()


def test_two_problems_are_reported_together(plan_dir, capsys):
    plan = write(plan_dir, 'out_dir = "/tmp/x"\nscratch_dir = "../s"')
    assert main(["batch", str(plan), "--workers", "0"]) == 1
    line = error_line(capsys)
    assert "has 2 problems" in line and "out_dir '/tmp/x'" in line and "scratch_dir '../s'" in line


# --- scheduler addresses -----------------------------------------------------------------------


@pytest.mark.parametrize("address", ["tcp://10.0.0.5:8786", "tls://scheduler.example:8786", "inproc://10.0.0.5/1/2",
                                     "ucx://10.0.0.5:13337"])
def test_dask_addresses_are_accepted(address):
    assert check_scheduler_address(address) == address


@pytest.mark.parametrize("address", ["10.0.0.5:8786", "http://10.0.0.5:8787", "tcp://", "scheduler", "", "tcp:/x:1"])
def test_other_scheduler_addresses_get_one_line(plan_dir, capsys, address):
    plan = write(plan_dir)
    assert main(["batch", str(plan), "--scheduler", address]) == 1
    line = error_line(capsys)
    assert line.startswith(f"lifecircle: error: --scheduler: {address!r} is not a Dask scheduler address")
    assert "tcp://, tls://, inproc://, ucx://" in line and line.endswith("e.g. tcp://10.0.0.5:8786")
    assert not (plan_dir / "plan_out").exists()
    with pytest.raises(InputDataError, match="is not a Dask scheduler address"):
        run_batch(plan, scheduler=address)


def test_dashboard_needs_the_local_cluster(plan_dir, capsys):
    plan = write(plan_dir)
    assert main(["batch", str(plan), "--workers", "0", "--dashboard"]) == 2
    assert "--dashboard is for the local cluster" in capsys.readouterr().err
    assert main(["batch", str(plan), "--scheduler", "tcp://127.0.0.1:1", "--dashboard"]) == 2


# --- the dashboard on request ------------------------------------------------------------------


def test_dashboard_on_request_is_on_loopback_and_its_address_logged(plan_dir, caplog):
    pytest.importorskip("distributed")
    import psutil

    with caplog.at_level(logging.WARNING, logger="lifecircle"), dask_client(workers=1, dashboard=True) as client:
        link = client.dashboard_link
        assert link.startswith("http://127.0.0.1:") and link.endswith("/status")
        with urllib.request.urlopen(link, timeout=10) as page:  # the dashboard (or Dask's "install bokeh" page)
            assert page.status == 200 and ("bokeh" in page.read().decode("utf-8", "replace").lower())
        port = int(link.split(":")[2].split("/")[0])
        mine = [c.laddr for c in psutil.Process(os.getpid()).net_connections("tcp") if c.status == psutil.CONN_LISTEN]
        assert (("127.0.0.1", port) in [(a.ip, a.port) for a in mine]) and {a.ip for a in mine} == {"127.0.0.1"}
        # an external client of this TLS cluster without its certificate gets one clear line
        with pytest.raises(InputDataError, match="needs TLS certificates: set distributed.comm.tls.ca-file"):
            run_batch(write(plan_dir), scheduler=client.scheduler.address)
    assert [r.getMessage() for r in caplog.records if "Dask dashboard" in r.getMessage()] == [
        next(r.getMessage() for r in caplog.records if link in r.getMessage())]
    assert "anyone logged in on this computer can open it" in caplog.text


def test_cli_dashboard_prints_its_address(plan_dir, capsys):
    pytest.importorskip("distributed")
    plan = write(plan_dir)
    assert main(["batch", str(plan), "--workers", "1", "--dashboard"]) == 0
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "Dask dashboard: http://127.0.0.1:" in ln]
    assert len(lines) == 1 and lines[0].startswith("lifecircle: WARNING: Dask dashboard: http://127.0.0.1:")
    assert pd.read_csv(plan_dir / "plan_out" / RESULTS_FILE)["status"].tolist() == ["ok"]
    # without --dashboard, nothing is said about one
    assert main(["batch", str(plan), "--workers", "1"]) == 0
    assert "dashboard" not in capsys.readouterr().err.lower()
