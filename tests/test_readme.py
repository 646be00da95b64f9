"""Every `lifecircle ...` command of the README's bash blocks runs as written (offline), or fails cleanly.

Commands on the bundled examples and on ../shared/data must exit 0, in README order (later ones use
the folders earlier ones wrote); commands that need the internet (`fetch`, `--place`) must fail with
exit 1 and one DownloadError line when offline. Only the commands listed in PLACEHOLDERS name files
the reader supplies (they are skipped, and the list is checked so that it stays short and true).
"""

from __future__ import annotations

import re
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from lifecircle.datasets import shared_data_dir, toy_town_osm

REPO = Path(__file__).resolve().parents[1]
#: README commands that name the reader's own files (not runnable here).
PLACEHOLDERS = ("parcels.csv", "--scheduler tcp://")


def readme_commands() -> list[str]:
    """The `lifecircle ...` commands of README.md's bash blocks (continuations joined, comments cut)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    cmds = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split("  #")[0].split(" # ")[0].strip()
            for part in line.split("&&"):
                part = part.strip()
                if part.startswith("lifecircle "):
                    cmds.append(part)
    return cmds


def _online() -> bool:
    try:
        socket.create_connection(("download.geofabrik.de", 443), timeout=2).close()
        return True
    except OSError:
        return False


def test_readme_commands_run(tmp_path):
    shared = shared_data_dir()
    if shared is None:
        pytest.skip("../shared/data not found beside the repository")
    cmds = readme_commands()
    assert len(cmds) >= 15
    # the batch plan refers to ../lifecircle/data/toy_town.osm from examples/: the same layout in tmp_path
    (tmp_path / "examples").mkdir()
    shutil.copy(REPO / "examples" / "batch_plan.toml", tmp_path / "examples")
    (tmp_path / "lifecircle" / "data").mkdir(parents=True)
    shutil.copy(toy_town_osm(), tmp_path / "lifecircle" / "data")
    online = _online()
    ran, skipped, offline_failures = [], [], []
    for cmd in cmds:
        if any(p in cmd for p in PLACEHOLDERS):
            skipped.append(cmd)
            continue
        args = [a.replace("../shared/data", str(shared)) for a in shlex.split(cmd)[1:]]
        needs_net = args[0] == "fetch" or "--place" in args
        if needs_net and online:
            continue
        # -P: the copied lifecircle/data folder in the working directory must not shadow the package
        p = subprocess.run([sys.executable, "-P", "-m", "lifecircle", *args], cwd=tmp_path, capture_output=True,
                           text=True, timeout=120)
        assert "Traceback" not in p.stderr, (cmd, p.stderr[-2000:])
        if needs_net:
            lines = [l for l in p.stderr.splitlines() if l.startswith("lifecircle: error:")]
            assert p.returncode == 1 and len(lines) == 1 and "download" in lines[0], (cmd, p.stderr)
            offline_failures.append(cmd)
        else:
            assert p.returncode == 0, (cmd, p.stderr[-2000:])
            ran.append(cmd)
    assert len(skipped) == len(PLACEHOLDERS)  # each placeholder names exactly one README command
    assert len(ran) >= 12
    if not online:
        assert len(offline_failures) == 2  # fetch and --place
    # what the README's Shanghai example produced
    import json

    s = json.loads((tmp_path / "out" / "shanghai" / "summary.json").read_text(encoding="utf-8"))
    assert s["census"]["clipped_to_network"] and 0 < s["census"]["total"] < s["census"]["census_total"]
    assert (tmp_path / "facilities.gpkg").is_file() and (tmp_path / "iso.gpkg").is_file()
