"""The output folder: every command writes a whole run into it in one commit, and reads a run back from it.

What you can rely on
--------------------
A *run* is the set of files one command writes into a folder (``analyze``: summary.json,
coverage.csv, ...; ``gaps`` and ``map`` add to the run already there). A run is recorded in
``lifecircle_manifest.json`` (name, size and sha256 of each file, the command that wrote it).
Outputs written next to a file you name (``isochrone --out iso.gpkg``, ``facilities --out
fac.gpkg`` with ``fac_counts.csv`` beside it) are a run of their own, recorded in
``<stem>.lifecircle_manifest.json`` (``iso.lifecircle_manifest.json``), so several of them and an
analysis can share one folder.

1. Whatever happens to a command (success, an error, Ctrl-C, ``kill -9``, a full disk, a power
   cut on a file system that honours fsync), the folder holds exactly one complete run as every
   lifecircle command sees it: the previous one or the new one, never a mix. A run that stops
   before its commit point (the journal's rename, below) leaves the previous run byte-identical;
   one that stops after it becomes the new run. Precisely: a run killed *during* the renames
   leaves the journal and a half-moved run on disk until the next lifecircle command opens the
   folder and finishes the renames first; other programs (QGIS, Excel) opening the folder in
   that window may see the mix, so run any lifecircle command on it (``lifecircle map OUT``).
2. The new run's files replace the previous run's; files of the previous run that the new one
   does not write (``isochrones.gpkg`` after ``--no-isochrones``, ``suggested_sites.*`` after a run
   without ``--sites``) are removed. Files lifecircle did not write (your ``notes.txt``, your
   sub-folders, another run's ``<stem>.lifecircle_manifest.json`` files) are never touched. A folder
   written by an older lifecircle (no manifest) counts the known output names
   (:data:`RUN_FILES`) as lifecircle's.
3. Readers (``lifecircle map``, ``gaps``, ``scenario``, :func:`lifecircle.reanalyze`,
   :func:`read_analysis_folder`) use only the files the manifest lists, and stop with one line
   if one of them is missing or was changed since.
4. Only one lifecircle command writes a folder at a time: a second one stops at once with one
   line saying which folder and what to do (the lock is ``fcntl.flock`` on ``.lifecircle.lock``,
   removed by its holder when done; the operating system releases the lock when a process dies,
   so a killed run never blocks the next). flock is per machine: two machines writing one folder
   on a network share are not kept apart.
5. No temporary files stay behind. The new files are built in ``.lifecircle-staging-*`` inside the
   folder (so the final renames stay on one file system); what a killed run leaves there is
   removed by the next lifecircle command that opens the folder.

How the commit works
--------------------
Several files cannot be replaced by one rename while your own files share the folder, so the
commit is a journal that is rolled forward:

1. every file is written and fsynced in the staging folder, then the new manifest next to them;
2. ``.lifecircle-journal.json`` is written atomically (temp name, fsync, rename): it lists the
   files to move in and the previous run's files to delete. From this instant the new run is the
   folder's run;
3. the files are renamed into the folder (the manifest last), the obsolete files are deleted;
4. the staging folder and the journal are removed.

Any later open of the folder, by a writer or a reader, first rolls an existing journal forward
(steps 3-4 again; each step is idempotent). A reader that finds a live writer in step 3 waits for
it; readers never block writers otherwise, and a reader whose files changed under it (a commit
happened while it read) reads again.

CSV and Excel cells
-------------------
Every CSV is UTF-8 with a byte-order mark (:data:`ENCODING`), so Excel and WPS on a Chinese Windows
read 小区名称 as text; Python readers use ``encoding="utf-8-sig"`` (or :func:`read_table_back`).
Every table goes through :func:`write_table`: text cells beginning with ``=``, ``+``, ``-``, ``@``,
a tab or a carriage return (names from OSM or from your lists) get a leading ``'`` so that Excel
and WPS show them instead of running them as formulas (OWASP "CSV injection"); numbers stay
numbers. :func:`read_table_back` undoes it for lifecircle's own reading.

Layers
------
Vector layers go through :meth:`OutputRun.vector` (:mod:`lifecircle.present.vectors`): EPSG:4326, the
format their extension names, the QGIS style of :mod:`lifecircle.present.qgis` in the GeoPackage's
``layer_styles`` table (written with sqlite3 into the staged file, so it commits with the run);
:func:`write_analysis_layers` stages an analysis' layers (units with their shares, service areas in
one layer), optionally with copies in another CRS (``--out-crs gcj02``).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import errno
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, TypeVar

import numpy as np
import pandas as pd

from ..config import AnalysisConfig
from ..errors import InputFileError, LifecircleError, OutputError
from ..read.files import atomic_path, write_json
from .html import save_map
from .maps import coverage_map

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

log = logging.getLogger("lifecircle")

__all__ = [
    "ENCODING",
    "MANIFEST",
    "RUN_FILES",
    "REPORT_FILES",
    "OutputRun",
    "RunRecord",
    "output_folder",
    "output_file",
    "output_run",
    "read_run",
    "finish_interrupted_commit",
    "write_table",
    "read_table_back",
    "safe_cells",
    "read_analysis_folder",
    "write_maps",
    "write_figures",
    "maps_from_folder",
    "write_sites",
    "write_site_plans",
    "write_scenario",
]

#: Text encoding of every CSV lifecircle writes: UTF-8 with a byte-order mark, so that Excel (and WPS) on a
#: Chinese Windows open 小区名称 as text instead of mojibake; Python readers use ``encoding="utf-8-sig"``.
ENCODING = "utf-8-sig"
#: The record of a folder's run; a run beside a chosen file ``x.gpkg`` uses ``x.lifecircle_manifest.json``.
MANIFEST = "lifecircle_manifest.json"
_LOCK = ".lifecircle.lock"
_JOURNAL = ".lifecircle-journal.json"
_STAGING = ".lifecircle-staging-"

#: What ``analyze`` writes (always or when it applies).
ANALYSIS_FILES = ("summary.json", "coverage.csv", "residents.gpkg", "facilities.gpkg", "unsnapped.csv", "run_state.npz",
                  "facilities_rejected.csv", "facilities_merged.csv", "gaps.gpkg", "isochrones.gpkg",
                  "facility_isochrones.gpkg",
                  "units.gpkg", "census_methods.csv", "standard_decisions.csv", "tiers.csv", "urban_rural.csv",
                  "facility_service.csv", "units_service.csv", "units_ranking.csv", "accessibility.csv", "equity.csv")
#: What site planning writes (``analyze --sites``, ``gaps``).
SITE_FILES = ("suggested_sites.csv", "suggested_sites.gpkg", "sites_needed.csv", "suggested_sites_by_unit.csv")
#: Copies of the sites in another CRS (``--out-crs gcj02``: ``suggested_sites_gcj02.gpkg``); a pattern of ``replace``.
SITE_COPIES = "suggested_sites_*.gpkg"
#: The map and figures (``--map``, ``lifecircle map``).
MAP_FILES = ("map.html", "coverage_map.png", "coverage_curve.png", "lorenz.png")
#: What ``lifecircle scenario`` writes into its folder.
SCENARIO_FILES = ("scenario_change.csv", "scenario_coverage.csv", "scenario_facilities.gpkg", "map.html")
#: The report, the workbook and the per-unit chart (``analyze``, ``lifecircle report``).
REPORT_FILES = ("report.html", "report.pdf", "report.docx", "results.xlsx", "units_chart.png")
#: Every name a run folder may hold: in a folder without a manifest (older lifecircle) these count as ours.
RUN_FILES = (*ANALYSIS_FILES, *SITE_FILES, *MAP_FILES, *REPORT_FILES)
#: What ``lifecircle gaps`` replaces in a run (the map is redrawn with the new gaps, or removed).
GAPS_REPLACES = ("gaps.gpkg", *SITE_FILES, SITE_COPIES, "map.html")

_CMD_HINT = {
    "analyze": "lifecircle analyze ... --out {folder}",
    "batch": "lifecircle batch PLAN",
    "gaps": "lifecircle gaps {folder}",
    "map": "lifecircle map {folder}",
    "report": "lifecircle report {folder}",
    "scenario": "lifecircle scenario ... --out {folder}",
}


# ---------------------------------------------------------------------------- the one table writer

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NEEDS_QUOTE = re.compile(r"^'*[=+\-@\t\r]")


def _text_matching(values: pd.Series, pattern: str) -> np.ndarray:
    """Boolean mask of the text cells matching ``pattern`` (vectorised; non-text cells are False)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(object)
    if not (values.dtype == object or pd.api.types.is_string_dtype(values)):
        return np.zeros(len(values), dtype=bool)
    try:
        return values.str.match(pattern).eq(True).to_numpy(dtype=bool)
    except AttributeError:  # no text at all in the column
        return np.zeros(len(values), dtype=bool)


def _quote_text(values: pd.Series) -> pd.Series:
    """Prefix ``'`` to text cells a spreadsheet would run as a formula (and to such cells already quoted)."""
    hit = _text_matching(values, _NEEDS_QUOTE.pattern)
    if not hit.any():
        return values
    out = values.astype(object).copy()
    out.iloc[np.flatnonzero(hit)] = ("'" + values[hit].astype(str)).to_numpy(dtype=object)
    return out


def _quote_label(v: Any) -> Any:
    return "'" + v if isinstance(v, str) and _NEEDS_QUOTE.match(v) else v


def safe_cells(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` whose text cells (and labels) cannot start a spreadsheet formula.

    Text beginning with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'``
    (OWASP CSV injection); so does such text already beginning with ``'``, so that
    :func:`read_table_back` gives back exactly the original. Numbers are not touched.

    >>> t = safe_cells(pd.DataFrame({"name": ["=1+1", "-", "ok", "'=x", "'s-Hertogenbosch"], "n": [-1, 2, 3, 4, 5]}))
    >>> t["name"].tolist(), t["n"].tolist()
    (["'=1+1", "'-", 'ok', "''=x", "'s-Hertogenbosch"], [-1, 2, 3, 4, 5])
    """
    out = df.copy()
    for i in range(out.shape[1]):
        col = out.iloc[:, i]
        quoted = _quote_text(col)
        if quoted is not col:
            out.isetitem(i, quoted)
    if not isinstance(out.columns, pd.MultiIndex):
        out.columns = pd.Index([_quote_label(c) for c in out.columns], name=out.columns.name)
    if isinstance(out.index, pd.MultiIndex):
        out.index = out.index.set_levels([_quote_text(pd.Series(lv, dtype=lv.dtype)).to_numpy()
                                          for lv in out.index.levels], verify_integrity=False)
        out.index.names = [_quote_label(n) for n in out.index.names]
    elif out.index.dtype == object or pd.api.types.is_string_dtype(out.index.dtype) \
            or isinstance(out.index.dtype, pd.CategoricalDtype):
        out.index = pd.Index(_quote_text(pd.Series(out.index, dtype=out.index.dtype)).to_numpy(dtype=object),
                             name=_quote_label(out.index.name))
    return out


def write_table(df: pd.DataFrame, path: str | os.PathLike[str], *, index: bool = False) -> Path:
    """Write a table as CSV (:data:`ENCODING`) or, for ``.xlsx``, as Excel, with :func:`safe_cells`.

    The file is written under a temporary name and renamed when complete; inside an
    :class:`OutputRun` give it ``run.path(name)`` (or call ``run.table``).

    Examples
    --------
    >>> import tempfile, os
    >>> p = write_table(pd.DataFrame({"name": ["@SUM(A1)"], "x": [-1.5]}), os.path.join(tempfile.mkdtemp(), "t.csv"))
    >>> p.read_bytes()[:3] == b"\\xef\\xbb\\xbf", p.read_text(encoding=ENCODING)
    (True, "name,x\\n'@SUM(A1),-1.5\\n")
    """
    final = Path(path)
    safe = safe_cells(df)
    with atomic_path(final) as tmp:
        if final.suffix.lower() == ".xlsx":
            with pd.ExcelWriter(tmp, engine="openpyxl") as xl:
                safe.to_excel(xl, index=index)
        else:  # a bare carriage return inside a cell is only kept in its row when the cell is quoted
            cr = any(safe[c].astype(str).str.contains("\r", regex=False).any() for c in safe.columns
                     if safe[c].dtype == object or pd.api.types.is_string_dtype(safe[c]))
            safe.to_csv(tmp, index=index, encoding=ENCODING, quoting=csv.QUOTE_NONNUMERIC if cr else csv.QUOTE_MINIMAL)
    return final


def read_table_back(path: str | os.PathLike[str], **kwargs: Any) -> pd.DataFrame:
    """Read a CSV that :func:`write_table` wrote, removing the ``'`` it put before formula-like text."""
    df = pd.read_csv(path, encoding=ENCODING, **kwargs)
    for c in df.columns:
        hit = _text_matching(df[c], r"^'+[=+\-@\t\r]")
        if hit.any():
            col = df[c].astype(object).copy()
            col.iloc[np.flatnonzero(hit)] = df[c][hit].astype(str).str.slice(1).to_numpy(dtype=object)
            df[c] = col
    df.columns = [c[1:] if isinstance(c, str) and re.match(r"^'+[=+\-@\t\r]", c) else c for c in df.columns]
    return df


# ---------------------------------------------------------------------------- fault points (tests hook in)

_fault_steps = {"pid": 0, "n": 0}


def _fault_point(what: str) -> None:
    """Called before every step that changes the disk (tests patch it, or trace it with env variables).

    With ``LIFECIRCLE_TEST_FAULT_TRACE`` set, writes ``lifecircle-fault-point <what>`` to stderr and
    sleeps ``LIFECIRCLE_TEST_FAULT_DELAY_S`` seconds, at every step or, with
    ``LIFECIRCLE_TEST_FAULT_PAUSE_AT=N``, only before the N-th step of the process: the kill -9
    tests use it to stop a run at each step. Without the variables it does nothing.
    """
    env = os.environ
    if not env.get("LIFECIRCLE_TEST_FAULT_TRACE"):
        return
    import sys

    if _fault_steps["pid"] != os.getpid():
        _fault_steps.update(pid=os.getpid(), n=0)
    _fault_steps["n"] += 1
    sys.stderr.write(f"lifecircle-fault-point {what}\n")
    sys.stderr.flush()
    pause_at = env.get("LIFECIRCLE_TEST_FAULT_PAUSE_AT")
    if pause_at is None or int(pause_at) == _fault_steps["n"]:
        time.sleep(float(env.get("LIFECIRCLE_TEST_FAULT_DELAY_S", "0")))


# ---------------------------------------------------------------------------- the folder lock

class _Lock:
    """``fcntl.flock`` on ``folder/.lifecircle.lock``: exclusive, never waiting; the file goes with the lock.

    The holder removes the lock file when it lets go, so a folder keeps no trace of it; a process
    that locked a file just unlinked by its previous holder sees another inode at the path and
    tries again with the new file.
    """

    def __init__(self, folder: Path) -> None:
        self.path = folder / _LOCK
        self.fd: int | None = None

    def acquire(self, holder: str) -> bool:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                _flock(fd)
            except BlockingIOError:
                os.close(fd)
                return False
            except BaseException:
                os.close(fd)
                raise
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self.fd = fd
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.write(fd, holder.encode("utf-8"))
        return True

    def holder(self) -> str:
        try:
            text = self.path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            text = ""
        return text or "another lifecircle process"

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self.fd)
        self.fd = None


def _flock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    import msvcrt  # pragma: no cover - Windows: a lock on the first byte

    try:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:
        raise BlockingIOError(errno.EAGAIN, "locked") from None


def _busy(folder: Path, holder: str, hint: str) -> OutputError:
    then = "or choose another --out" if "--out" in hint else "then run it again"
    return OutputError(f"{folder} is being written by another lifecircle run ({holder}): wait until it finishes, "
                       f"{then}")


# ---------------------------------------------------------------------------- journal and recovery

def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY if os.name == "posix" else os.O_RDWR)  # Windows flushes writable handles only
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":  # pragma: no cover
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _plain(name: Any) -> bool:
    """A bare file name inside the folder (a manifest or journal never points outside it)."""
    return isinstance(name, str) and bool(name) and name not in (".", "..") and "/" not in name \
        and "\\" not in name and Path(name).name == name and not os.path.isabs(name)


def _manifest_name(key: str | None) -> str:
    return MANIFEST if key is None else f"{key}.{MANIFEST}"


def _roll_forward(folder: Path, journal: dict) -> None:
    """Steps 3-4 of the commit (idempotent): move the staged files in, delete the obsolete ones, tidy up."""
    staging = folder / journal["staging"]
    for name in journal["move"]:
        _fault_point(f"move {name}")
        src = staging / name
        if src.exists():
            os.replace(src, folder / name)
    for name in journal["delete"]:
        _fault_point(f"delete {name}")
        target = folder / name
        if target.is_file() or target.is_symlink():
            target.unlink(missing_ok=True)
    _fsync_dir(folder)
    _fault_point("remove staging")
    shutil.rmtree(staging, ignore_errors=True)
    _fault_point("remove journal")
    (folder / _JOURNAL).unlink(missing_ok=True)
    _fsync_dir(folder)


def _leftovers(folder: Path) -> list[Path]:
    """Staging folders and temp files of runs that were stopped (only meaningful while holding the lock)."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    out = []
    for e in entries:
        if e.name.startswith(_STAGING) or e.name == _JOURNAL + ".tmp" or _OLD_TEMP.match(e.name):
            out.append(Path(e.path))
    return out


#: temp files of lifecircle <= 0.1 (``read.files.atomic_path``) beside the known outputs
_OLD_TEMP = re.compile(r"^\.(%s)-[A-Za-z0-9_]{8}\.tmp(\.\w+)?$" % "|".join(
    re.escape(Path(n).stem) for n in (*RUN_FILES, *SCENARIO_FILES)))


def _recover(folder: Path) -> None:
    """With the lock held: finish an interrupted commit, then remove what stopped runs left behind."""
    jpath = folder / _JOURNAL
    if jpath.exists():
        try:
            journal = json.loads(jpath.read_text(encoding="utf-8"))
            names = [journal["staging"], *journal["move"], *journal["delete"]]
            if not (str(journal["staging"]).startswith(_STAGING) and all(_plain(n) for n in names)):
                raise ValueError("names outside the folder")
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            journal = None  # never written by lifecircle (the journal is renamed into place whole)
        if journal is not None:
            log.warning("%s: finishing the commit of an interrupted `lifecircle %s` run", folder,
                        journal.get("command", "?"))
            _roll_forward(folder, journal)
        else:
            jpath.unlink(missing_ok=True)
    for p in _leftovers(folder):
        log.info("%s: removing %s left by a stopped run", folder, p.name)
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def _other_manifests(folder: Path, own: str) -> Iterator[tuple[str, dict]]:
    for p in folder.glob(f"*{MANIFEST}"):
        if p.name != own and p.is_file():
            try:
                yield p.name, json.loads(p.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue


# ---------------------------------------------------------------------------- writing a run

@dataclass(eq=False)
class OutputRun:
    """One run being written: files go into the staging folder, :meth:`commit` makes them the folder's run.

    Get one from :func:`output_folder` or :func:`output_file` (context managers that commit on
    success and discard on any error). Writers take ``run.path(name)`` (a path in the staging
    folder) or call :meth:`table` / :meth:`json`; :attr:`written` maps each name to its final path.
    """

    folder: Path
    command: str
    key: str | None = None
    replace: frozenset[str] | None = None
    legacy: tuple[str, ...] = ()
    staging: Path = field(init=False)
    previous: dict | None = field(init=False, default=None)
    written: dict[str, Path] = field(init=False, default_factory=dict)
    _decided: bool = field(init=False, default=False)
    _background: list = field(init=False, default_factory=list)

    @property
    def manifest_name(self) -> str:
        return _manifest_name(self.key)

    def path(self, name: str) -> Path:
        """Where to write ``name`` (a plain file name) for this run: a path in the staging folder."""
        if name not in self.written:
            if not name or Path(name).name != name or name in (".", "..") or name.startswith(".lifecircle") \
                    or name.endswith(MANIFEST):
                raise ValueError(f"{name!r} is not a file name an output run can hold")
            if self.key is not None and not name.startswith(self.key):
                raise ValueError(f"{name!r}: the files of the output {self.key!r} start with its name")
            _fault_point(f"write {name}")
            self.written[name] = self.folder / name
        return self.staging / name

    def discard(self, name: str) -> None:
        """Take ``name`` back out of the run (a file that could not be written, such as a PDF whose printer
        failed): nothing of it is committed, and an older run's copy goes as the other replaced files do."""
        self.written.pop(name, None)
        (self.staging / name).unlink(missing_ok=True)

    def final(self, name: str) -> Path:
        """Where ``name`` will be once the run is committed."""
        return self.folder / name

    def in_background(self, name: str, job: Callable[[Path], bool]) -> None:
        """Make ``name`` with ``job(staging path)`` on a second thread while the run goes on — for work done
        outside Python, such as Chromium printing report.pdf while the map is drawn. :meth:`commit` waits
        for it; a job that returns False (having said why) takes ``name`` out of the run, one that raises
        fails the commit with its error."""
        import threading

        target = self.path(name)
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["ok"] = bool(job(target))
            except BaseException as exc:  # noqa: BLE001  (re-raised by the thread that commits)
                box["error"] = exc

        thread = threading.Thread(target=work, name=f"lifecircle {name}", daemon=True)
        self._background.append((name, thread, box))
        thread.start()

    def _wait_background(self) -> None:
        """Wait for every :meth:`in_background` job; the first job's error is raised after all have ended."""
        error = None
        while self._background:
            name, thread, box = self._background[0]
            thread.join()
            self._background.pop(0)  # only once ended: a Ctrl-C during the join leaves it for _discard
            if "error" in box:
                error = error or box["error"]
            elif not box.get("ok"):
                self.discard(name)
        if error is not None:
            raise error

    def table(self, df: pd.DataFrame, name: str, *, index: bool = False) -> Path:
        """Write a table with :func:`write_table`; returns its final path."""
        write_table(df, self.path(name), index=index)
        return self.final(name)

    def vector(self, gdf: Any, name: str, *, layer: str, style: Any = None, crs: Any = None) -> Path:
        """Write a layer with :func:`lifecircle.present.vectors.write_vector` (the format ``name``'s extension
        names, with its QGIS style), recording every file the format makes; returns its final path.

        ``crs`` (e.g. ``"gcj02"``): also a GeoPackage copy ``<stem>_<tag>.gpkg`` in that CRS
        (:func:`lifecircle.present.vectors.write_crs_copy`); nothing for WGS84.
        """
        from .vectors import crs_tag, write_crs_copy, write_vector

        for p in write_vector(gdf, self.path(name), layer=layer, style=style):
            self.path(p.name)
        tag = crs_tag(crs) if crs is not None else None
        if tag is not None:
            copy = f"{Path(name).stem}_{tag}.gpkg"
            write_crs_copy(gdf, self.path(copy), crs, layer=layer, style=style)
        return self.final(name)

    def json(self, obj: Any, name: str) -> Path:
        """Write JSON (UTF-8, Chinese readable); returns its final path."""
        write_json(obj, self.path(name))
        return self.final(name)

    # -- commit -----------------------------------------------------------------------------------

    def _carried(self) -> dict[str, dict]:
        """The previous run's files this run keeps (``replace`` mode), checked against their record."""
        if self.replace is None:
            return {}
        if self.previous is not None:
            keep = {n: r for n, r in self.previous.get("files", {}).items()
                    if not self._replaced(n) and n not in self.written}
            for n, r in keep.items():
                _check_file(self.folder, n, r, self.previous)
            return keep
        out = {}  # an older folder without a manifest: adopt its known files
        for n in self.legacy:
            p = self.folder / n
            if not self._replaced(n) and n not in self.written and p.is_file():
                out[n] = {"bytes": p.stat().st_size, "sha256": _sha256(p), "command": "analyze"}
        return out

    def _replaced(self, name: str) -> bool:
        """``name`` is one of ``replace`` (names, or patterns such as ``suggested_sites_*.gpkg``)."""
        import fnmatch

        return self.replace is not None and (name in self.replace or any(
            "*" in r and fnmatch.fnmatchcase(name, r) for r in self.replace))

    def _obsolete(self, keep: Iterable[str]) -> list[str]:
        keep = set(keep)
        if self.previous is not None:
            names = list(self.previous.get("files", {}))
        else:
            names = [n for n in self.legacy if (self.folder / n).is_file()]
        return [n for n in names if n not in keep]

    def commit(self) -> None:
        """Make the staged files the folder's run (steps 1-4 of the module docstring)."""
        self._wait_background()
        missing = [n for n in self.written if not (self.staging / n).is_file()]
        if missing:
            raise RuntimeError(f"{', '.join(missing)} asked for but not written")  # a bug, not a user error
        for other, m in _other_manifests(self.folder, self.manifest_name):
            clash = sorted(set(m.get("files", {})) & set(self.written))
            if clash:
                raise _owned(self.folder / clash[0], m, self.folder / other)
        carried = self._carried()
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        files = dict(carried)
        for name in self.written:
            p = self.staging / name
            _fsync_file(p)
            files[name] = {"bytes": p.stat().st_size, "sha256": _sha256(p), "command": self.command}
        history = (self.previous or {}).get("history", []) if self.replace is not None else []
        from .._version import __version__

        manifest = {
            "lifecircle_manifest": 1,
            "command": self.command,
            "output": self.key,
            "lifecircle_version": __version__,
            "created": now,
            "run": secrets.token_hex(8),
            "history": [*history, {"command": self.command, "created": now}][-20:],
            "files": dict(sorted(files.items())),
        }
        _fault_point("write manifest")
        mpath = self.staging / self.manifest_name
        mpath.write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
        _fsync_file(mpath)
        _fsync_dir(self.staging)
        journal = {
            "lifecircle_journal": 1,
            "command": self.command,
            "staging": self.staging.name,
            "move": [*self.written, self.manifest_name],
            "delete": self._obsolete(files),
        }
        _fault_point("write journal")
        jtmp = self.folder / (_JOURNAL + ".tmp")  # removed by _discard when anything fails before the rename
        with open(jtmp, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(journal, ensure_ascii=False))
            fh.flush()
            os.fsync(fh.fileno())
        _fault_point("rename journal")
        os.replace(jtmp, self.folder / _JOURNAL)
        self._decided = True  # from here the new run is the folder's run
        _fsync_dir(self.folder)
        try:
            _roll_forward(self.folder, journal)
        except KeyboardInterrupt:
            _roll_forward(self.folder, journal)  # Ctrl-C during the renames: finish them first
            raise
        except OSError as exc:
            raise OutputError(f"could not finish moving the new files into {self.folder} ({exc.strerror or exc}); "
                              f"the next lifecircle command on {self.folder} finishes it") from None
        log.info("%s: committed %s (%d files%s)", self.folder, ", ".join(self.written) or "no new files",
                 len(files), f", {len(journal['delete'])} obsolete removed" if journal["delete"] else "")

    def _discard(self) -> None:
        """After an error before the journal: remove the staging folder (the folder keeps its run)."""
        for _, thread, _ in self._background:  # a job still writing into the staging folder ends first
            thread.join()
        self._background = []
        if not self._decided:
            shutil.rmtree(self.staging, ignore_errors=True)
            with contextlib.suppress(OSError):
                (self.folder / (_JOURNAL + ".tmp")).unlink(missing_ok=True)


def _owned(path: Path, manifest: dict, where: Path) -> OutputError:
    cmd = (manifest.get("files", {}).get(path.name) or {}).get("command") or manifest.get("command", "?")
    return OutputError(f"{path} belongs to another output, the `lifecircle {cmd}` run recorded in {where}: "
                       "choose another --out")


#: Less free space than this after a failed write means the disk was full (GDAL's errors often hide ENOSPC).
_NEARLY_FULL_BYTES = 4 << 20


def _nearly_full(folder: Path) -> bool:
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):  # AttributeError: no statvfs on Windows
        return False
    return st.f_bavail * st.f_frsize < _NEARLY_FULL_BYTES


def _disk_full(exc: BaseException) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            return True
        text = str(exc).lower()
        if "no space left on device" in text or "database or disk is full" in text or "disk quota exceeded" in text:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


@contextlib.contextmanager
def _session(run: OutputRun, *, target: Path, hint: str) -> Iterator[OutputRun]:
    folder = run.folder
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if _disk_full(exc):
            raise OutputError(f"disk full while writing {target}: free space or {hint}") from None
        raise OutputError(f"cannot create output folder {folder}: {exc.strerror or exc}; {hint}") from None
    if not folder.is_dir():
        raise OutputError(f"{folder} is not a folder; {hint}")
    lock = _Lock(folder)
    try:
        got = lock.acquire(f"`lifecircle {run.command}`, process {os.getpid()}")
    except OSError as exc:
        if _disk_full(exc):
            raise OutputError(f"disk full while writing {target}: free space or {hint}") from None
        raise OutputError(f"cannot write into {folder}: {exc.strerror or exc}; {hint}") from None
    if not got:
        raise _busy(folder, lock.holder(), hint)
    try:
        try:
            _recover(folder)
            try:
                run.previous = _load_manifest(folder, run.manifest_name)
            except InputFileError:  # edited or damaged: the known names count as ours, as in an old folder
                log.warning("%s is damaged; the files with lifecircle's output names count as the earlier run",
                            folder / run.manifest_name)
            run.staging = folder / f"{_STAGING}{secrets.token_hex(4)}"
            _fault_point("create staging")
            run.staging.mkdir()
        except OSError as exc:
            if isinstance(exc, LifecircleError):
                raise
            if _disk_full(exc):
                raise OutputError(f"disk full while writing {target}: free space or {hint}") from None
            raise OutputError(f"cannot write into {folder}: {exc.strerror or exc}; {hint}") from None
        try:
            yield run
            run.commit()
        except BaseException as exc:
            full = isinstance(exc, Exception) and not isinstance(exc, LifecircleError) and _nearly_full(folder)
            run._discard()
            if isinstance(exc, LifecircleError) or not isinstance(exc, Exception):
                raise
            if full or _disk_full(exc):
                raise OutputError(f"disk full while writing {target}: free space or {hint}") from None
            if isinstance(exc, PermissionError) and exc.filename and Path(exc.filename).parent in (folder, run.staging):
                raise OutputError(f"cannot write {exc.filename}: permission denied; {hint}") from None
            raise
    finally:
        lock.release()
        if created:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty: a run that failed in a folder it made leaves nothing


def _hint(command: str) -> str:
    return "choose another --out" if command in ("analyze", "scenario", "isochrone", "facilities", "batch") \
        else "then run it again"


@contextlib.contextmanager
def output_folder(folder: str | os.PathLike[str], *, command: str, replace: Iterable[str] | None = None,
                  legacy: Iterable[str] = RUN_FILES) -> Iterator[OutputRun]:
    """Write a run into ``folder``: everything staged in the ``with`` block is committed at its end, at once.

    Parameters
    ----------
    folder : path
        Created when missing.
    command : str
        What writes (``analyze``, ``gaps``, ``map``, ``scenario``, ``batch``): recorded in the
        manifest and named in messages.
    replace : names, optional
        Without it the new run replaces the previous one whole (its other files are removed).
        With it the new run adds to the previous one: of the previous files, those named here are
        removed (unless written again), the others are kept (after checking they are unchanged).
    legacy : names
        In a folder without a manifest (older lifecircle), the names that count as lifecircle's.

    Raises
    ------
    OutputError
        Another lifecircle run is writing ``folder``, the disk is full, no permission.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "notes.txt").write_text("mine")
    >>> with output_folder(d, command="analyze") as run:
    ...     _ = run.table(pd.DataFrame({"a": [1]}), "coverage.csv")
    ...     _ = run.json({"x": 1}, "summary.json")
    >>> sorted(p.name for p in d.iterdir())
    ['coverage.csv', 'lifecircle_manifest.json', 'notes.txt', 'summary.json']
    >>> with output_folder(d, command="analyze") as run:  # the next run writes fewer files
    ...     _ = run.json({"x": 2}, "summary.json")
    >>> sorted(p.name for p in d.iterdir())
    ['lifecircle_manifest.json', 'notes.txt', 'summary.json']
    """
    f = Path(folder)
    run = OutputRun(f, command, None, None if replace is None else frozenset(replace), tuple(legacy))
    with _session(run, target=f, hint=_hint(command)) as r:
        yield r


@contextlib.contextmanager
def output_file(path: str | os.PathLike[str], *, command: str, legacy: Iterable[str] = ()) -> Iterator[OutputRun]:
    """Write ``path`` and files beside it whose names start with its stem, committed at once.

    The run is recorded in ``<stem>.lifecircle_manifest.json`` next to it, so outputs with other
    names (and an analysis) can share the folder; a later run for the same ``path`` replaces this
    one whole. ``legacy``: the names that count as lifecircle's when there is no manifest yet.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> with output_file(d / "fac.gpkg", command="facilities") as run:
    ...     _ = run.table(pd.DataFrame({"n": [1]}), "fac_counts.csv")
    >>> sorted(p.name for p in d.iterdir())
    ['fac.lifecircle_manifest.json', 'fac_counts.csv']
    """
    p = Path(path)
    if not p.name or p.name in (".", ".."):
        raise OutputError(f"{p} is not a file name; choose another --out")
    run = OutputRun(p.parent, command, p.stem, None, tuple(legacy))
    for other, m in _other_manifests(p.parent, run.manifest_name) if p.parent.is_dir() else ():
        if p.name in m.get("files", {}):
            raise _owned(p, m, p.parent / other)
    with _session(run, target=p, hint=_hint(command)) as r:
        yield r


@contextlib.contextmanager
def output_run(out: str | os.PathLike[str] | OutputRun, *, command: str,
               replace: Iterable[str] | None = None) -> Iterator[OutputRun]:
    """``out`` itself when it is an open :class:`OutputRun`, else a new :func:`output_folder` run on it."""
    if isinstance(out, OutputRun):
        yield out
    else:
        with output_folder(out, command=command, replace=replace) as run:
            yield run


# ---------------------------------------------------------------------------- reading a run

def _load_manifest(folder: Path, name: str) -> dict | None:
    p = folder / name
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        return None
    try:
        m = json.loads(raw.decode("utf-8"))
        if not isinstance(m.get("files"), dict) or not all(_plain(n) and isinstance(r, dict)
                                                           for n, r in m["files"].items()):
            raise ValueError("no files")
    except (ValueError, UnicodeDecodeError, AttributeError):
        raise InputFileError(f"{p} is not a lifecircle manifest (damaged?): run the command that wrote "
                             f"{folder} again") from None
    return m


def _rerun(folder: Path, rec: dict, manifest: dict | None) -> str:
    cmd = rec.get("command") or (manifest or {}).get("command") or "analyze"
    return "`" + _CMD_HINT.get(cmd, "lifecircle " + cmd + " ...").format(folder=folder) + "`"


def _check_file(folder: Path, name: str, rec: dict, manifest: dict | None, *, data: bytes | None = None,
                by_hash: bool = True) -> None:
    """One line when ``folder/name`` is missing or differs from its record (size; sha256 unless ``by_hash=False``)."""
    p = folder / name
    try:
        size = len(data) if data is not None else p.stat().st_size
    except (FileNotFoundError, NotADirectoryError):
        raise InputFileError(f"{p} is missing but {_manifest_name(manifest.get('output') if manifest else None)} "
                             f"lists it: run {_rerun(folder, rec, manifest)} again") from None
    if size != rec.get("bytes") or (by_hash and (hashlib.sha256(data).hexdigest() if data is not None
                                               else _sha256(p)) != rec.get("sha256")):
        raise InputFileError(f"{p} was changed after `lifecircle {rec.get('command', '?')}` wrote it (its sha256 "
                             f"differs from the manifest's): run {_rerun(folder, rec, manifest)} again")


@dataclass
class RunRecord:
    """The run recorded in a folder, as :func:`read_run` found it (``manifest`` is None for an older folder)."""

    folder: Path
    manifest: dict | None
    key: str | None = None
    _raw: bytes | None = None

    @property
    def files(self) -> list[str]:
        """The run's files (an older folder without manifest: the known names that exist)."""
        if self.manifest is not None:
            return list(self.manifest["files"])
        return [n for n in RUN_FILES if (self.folder / n).is_file()]

    def has(self, name: str) -> bool:
        return name in self.files

    def path(self, name: str) -> Path:
        return self.folder / name

    def read_bytes(self, name: str) -> bytes:
        """The content of ``name``, checked against the manifest (one read: what is checked is what you get)."""
        if not self.has(name):
            raise InputFileError(f"{self.folder} holds no {name} in its recorded run: give the folder written by "
                                 "`lifecircle analyze --out DIR`")
        try:
            data = (self.folder / name).read_bytes()
        except FileNotFoundError:
            data = None
        if self.manifest is not None:
            _check_file(self.folder, name, self.manifest["files"][name], self.manifest,
                        data=data if data is not None else None)
        if data is None:
            raise InputFileError(f"{self.folder / name} is missing: run `lifecircle analyze --out {self.folder}` again")
        return data

    def unchanged(self) -> bool:
        """True when no commit happened since the run was read (no journal, same manifest)."""
        if (self.folder / _JOURNAL).exists():
            return False
        try:
            raw = (self.folder / _manifest_name(self.key)).read_bytes()
        except FileNotFoundError:
            raw = None
        return raw == self._raw


def _repair_for_reading(folder: Path, *, wait_s: float = 60.0) -> None:
    """Roll a journal forward and remove leftovers when no writer holds the folder; wait for a live commit."""
    deadline = time.monotonic() + wait_s
    while True:
        journal = (folder / _JOURNAL).exists()
        if not journal and not _leftovers(folder) and not (folder / _LOCK).exists():
            return  # the common case: nothing to repair, no lock to ask for
        lock = _Lock(folder)
        try:
            got = lock.acquire(f"`lifecircle` reader repairing, process {os.getpid()}")
        except OSError as exc:  # a read-only folder: it cannot be repaired, but it may be readable
            if journal:
                raise InputFileError(f"{folder} holds an interrupted commit that cannot be finished "
                                     f"({exc.strerror or exc}): copy the folder to a writable place and run "
                                     "`lifecircle map` on the copy") from None
            return
        if got:
            try:
                _recover(folder)
            finally:
                lock.release()
            return
        if not journal:
            return  # a live writer is staging: the recorded run is still whole
        if time.monotonic() > deadline:
            raise _busy(folder, lock.holder(), "then run it again")
        time.sleep(0.05)  # a live writer is moving its files in: that takes moments


def finish_interrupted_commit(folder: str | os.PathLike[str]) -> None:
    """Finish a commit a killed run left in ``folder`` and remove its leftovers (nothing when there are none).

    Commands call it before they check a folder they read, so that the checks see one whole run.
    Silent when ``folder`` is not an existing folder (the checks say so).
    """
    d = Path(os.path.expanduser(os.fspath(folder)))
    if d.is_dir():
        _repair_for_reading(d)


def read_run(folder: str | os.PathLike[str], *, key: str | None = None,
             check: Iterable[str] | None = None) -> RunRecord:
    """The run recorded in ``folder`` (after finishing an interrupted commit), its files checked.

    Every listed file must exist with its recorded size; the files in ``check`` (default: all)
    must also have their recorded sha256. Raises :class:`InputFileError` (one line, saying which
    command to run again) otherwise. A folder written by an older lifecircle (no manifest) is read
    as it is, with a warning.
    """
    d = Path(folder)
    if not d.is_dir():
        raise InputFileError(f"{d} is not a folder: give the folder written by `lifecircle analyze --out DIR`")
    _repair_for_reading(d)
    name = _manifest_name(key)
    raw = None
    with contextlib.suppress(FileNotFoundError):
        raw = (d / name).read_bytes()
    manifest = _load_manifest(d, name) if raw is not None else None
    if manifest is None:
        log.warning("%s has no %s (written by an older lifecircle): its files are used unchecked; run the "
                    "analysis again to record them", d, name)
        return RunRecord(d, None, key, None)
    names = set(manifest["files"] if check is None else check)
    for n, rec in manifest["files"].items():
        _check_file(d, n, rec, manifest, by_hash=n in names)
    return RunRecord(d, manifest, key, raw)


T = TypeVar("T")


def _read_consistently(folder: Path, read: Callable[[RunRecord], T], *, check: Iterable[str] | None = None) -> T:
    """``read(run)`` on a run that did not change while it was read (retried when a commit came between)."""
    check = None if check is None else list(check)
    for _ in range(5):
        rec = read_run(folder, check=check)
        out = read(rec)
        if rec.unchanged():
            return out
        log.info("%s got a new run while it was read: reading again", folder)
        time.sleep(0.05)
    raise OutputError(f"{folder} keeps changing while it is read (another lifecircle run writes it): "
                      "wait until it finishes, then run it again")


@dataclass
class _FolderAnalysis:
    """What maps and figures need from an analysis, read back from the folder ``Analysis.write`` made."""

    config: AnalysisConfig
    facilities: Any
    residents: Any
    coverage: pd.DataFrame
    summary: dict
    isochrones: Any = None
    units: Any = None
    gaps: Any = None
    sites: Any = None
    network: Any = None
    accessibility: Any = None


def read_analysis_folder(out_dir: str | os.PathLike[str], *, network: bool = False) -> _FolderAnalysis:
    """Read back the analysis recorded in ``out_dir`` (by ``lifecircle analyze --out`` / :meth:`Analysis.write`).

    summary.json, coverage.csv, residents.gpkg and facilities.gpkg, and isochrones.gpkg,
    units.gpkg, gaps.gpkg, suggested_sites.gpkg when the recorded run has them; files the
    manifest does not list are ignored, and a listed file that is missing or changed stops
    with one line. ``network=True`` also loads the walking network from run_state.npz (the streets
    under the maps; the report needs none).
    """
    d = Path(out_dir)
    need = ["summary.json", "coverage.csv", "residents.gpkg", "facilities.gpkg"]
    files = {"isochrones": "isochrones", "units": "units", "gaps": "gaps", "sites": "suggested_sites"}
    check = need + [f"{s}.gpkg" for s in files.values()]
    return _read_consistently(d, lambda rec: _read_analysis(rec, need, files, network=network), check=check)


def _read_analysis(rec: RunRecord, need: list[str], files: dict[str, str], *, network: bool = False
                   ) -> _FolderAnalysis:
    import geopandas as gpd

    d = rec.folder
    missing = [n for n in need if not rec.has(n)]
    if missing:
        what = f" (its run was written by `lifecircle {rec.manifest.get('command')}`)" if rec.manifest else ""
        raise InputFileError(f"{d} lacks {', '.join(missing)}{what}: give the folder written by "
                             "`lifecircle analyze --out DIR`")
    try:
        summary = json.loads(rec.read_bytes("summary.json").decode("utf-8"))
        p = summary["parameters"]
        cfg = AnalysisConfig.from_dict(p, where=str(d / "summary.json"), strict=False)
    except (ValueError, KeyError, TypeError) as exc:
        raise InputFileError(f"{d / 'summary.json'} is not a lifecircle summary ({exc}); "
                             "run `lifecircle analyze --out DIR` again") from None
    coverage = read_table_back(d / "coverage.csv")
    coverage["unit"] = coverage["unit"].astype(str)
    residents = _read_layers(d / "residents.gpkg")
    for c in residents.columns:
        if str(c).startswith("minutes_to_"):
            residents[c] = residents[c].astype(float).fillna(np.inf)  # NULL = not reachable
    facilities = _read_layers(d / "facilities.gpkg")
    extra = {name: _read_layers(d / f"{stem}.gpkg") for name, stem in files.items() if rec.has(f"{stem}.gpkg")}
    if rec.has("accessibility.csv"):
        extra["accessibility"] = read_table_back(d / "accessibility.csv")
    from ..measure.stored import RUN_STATE, load_stored_network

    if network and rec.has(RUN_STATE):  # the streets under the map and the figure
        try:
            extra["network"] = load_stored_network(d / RUN_STATE)
        except InputFileError as exc:
            log.warning("the map is drawn without its streets: %s", exc)
    return _FolderAnalysis(cfg, facilities, residents, coverage, summary, **extra)


def _read_layers(path: Path):
    """Every geometry layer of a GeoPackage in one frame (one layer, or one per category/minutes as
    ``--isochrone-layers per-category`` writes them)."""
    import geopandas as gpd
    import pyogrio

    frames = [gpd.read_file(path, layer=name) for name, kind in pyogrio.list_layers(path)
              if kind is not None]  # layer_styles (the QGIS styles) is a table without geometry
    frames = [f.to_crs(4326) if f.crs is not None else f.set_crs(4326) for f in frames]
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs=4326)


# ---------------------------------------------------------------------------- the analysis layers (QGIS-ready)

#: Columns of gaps.gpkg that only wire the computation together.
INTERNAL_GAP_COLUMNS = ("resident_index",)


def units_with_shares(units: Any, coverage: pd.DataFrame, config: AnalysisConfig) -> Any:
    """The units with their coverage as columns, ready for a QGIS choropleth without a pivot or a join.

    One ``share_<category>_<N>min`` column per reported category (and ``all``) and threshold
    (:func:`lifecircle.config.share_column`; NULL for a unit without residents), and ``population``
    and ``population_to_cover`` of the headline share (``all``, or the one category, at the
    headline minutes): the numbers of coverage.csv's unit rows.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> u = gpd.GeoDataFrame({"unit": ["东区", "西区"]}, geometry=[shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)],
    ...                      crs=4326)
    >>> cov = pd.DataFrame({"unit": ["东区", "东区"], "category": "health", "minutes": [5.0, 15.0],
    ...                     "population": 10.0, "share": [0.2, 0.9], "population_to_cover": [6.5, 0.0]})
    >>> t = units_with_shares(u, cov, AnalysisConfig(categories=("health",), minutes=(5, 15)))
    >>> t[["unit", "share_health_5min", "share_health_15min", "population"]].values.tolist()
    [['东区', 0.2, 0.9, 10.0], ['西区', nan, nan, nan]]
    """
    from ..config import ALL, share_column
    from ..measure.coverage import STUDY_AREA

    cats = list(config.categories) + ([ALL] if len(config.categories) > 1 else [])
    rows = coverage[coverage["unit"].astype(str) != STUDY_AREA]
    names = units["unit"].astype(str)
    out = units.copy()
    for cat in cats:
        for m in config.minutes:
            sel = rows[(rows["category"] == cat) & np.isclose(rows["minutes"].astype(float), float(m))]
            sel = sel.drop_duplicates("unit")
            share = pd.Series(sel["share"].to_numpy(dtype=float), index=sel["unit"].astype(str).to_numpy())
            out[share_column(cat, m)] = share.reindex(names).to_numpy(dtype=float)
    head_cat = ALL if len(config.categories) > 1 else config.categories[0]
    head = rows[(rows["category"] == head_cat) & np.isclose(rows["minutes"].astype(float), config.headline_minutes)]
    head = head.drop_duplicates("unit")
    head.index = head["unit"].astype(str)
    for c in ("population", "population_to_cover"):
        out[c] = head[c].reindex(names).to_numpy(dtype=float)
    return out


def _headline_field(config: AnalysisConfig, columns: Iterable[str]) -> str:
    from ..config import ALL, minutes_column

    cols = set(columns)
    return minutes_column(ALL) if minutes_column(ALL) in cols else minutes_column(config.categories[0])


def write_analysis_layers(run: OutputRun, analysis: Any, *, isochrones: Any = None, gaps: Any = None,
                          isochrone_layers: str = "one", out_crs: Any = None) -> list[str]:
    """Stage residents.gpkg, facilities.gpkg (and units.gpkg, gaps.gpkg, isochrones.gpkg when given) in ``run``.

    Every layer in EPSG:4326 with its QGIS style (:mod:`lifecircle.present.qgis`) in the
    GeoPackage's ``layer_styles`` table; units carry their shares (:func:`units_with_shares`);
    service areas are one layer with ``category`` and ``minutes`` (``isochrone_layers="per-category"``:
    one layer per category and threshold, as lifecircle 0.1 wrote them). ``out_crs`` (``gcj02``...)
    adds ``residents_<tag>.gpkg`` and ``facilities_<tag>.gpkg``. Returns the names written.
    """
    from ..config import ALL
    from .qgis import facility_style, resident_style, unit_style

    cfg = analysis.config
    before = set(run.written)
    res = analysis.residents
    run.vector(res, "residents.gpkg", layer="residents", crs=out_crs,
               style=resident_style(_headline_field(cfg, res.columns), minutes=cfg.minutes,
                                    cutoff_minutes=cfg.cutoff_minutes))
    fac = analysis.facilities
    run.vector(fac, "facilities.gpkg", layer="facilities", crs=out_crs,
               style=facility_style(fac["category"].astype(str) if "category" in fac else None))
    if gaps is not None:
        write_gaps_layer(run, gaps)
    if isochrones is not None:
        write_service_areas(run, isochrones, "isochrones.gpkg", layers=isochrone_layers)
    if getattr(analysis, "units", None) is not None:
        from ..config import share_column

        units = units_with_shares(analysis.units, analysis.coverage, cfg)
        head_cat = ALL if len(cfg.categories) > 1 else cfg.categories[0]
        run.vector(units, "units.gpkg", layer="units",
                   style=unit_style(share_column(head_cat, cfg.headline_minutes), target=cfg.target))
    return [n for n in run.written if n not in before]


def write_gaps_layer(run: OutputRun, gaps: Any, name: str = "gaps.gpkg") -> Path:
    """Stage the gap areas (:func:`lifecircle.plan.gaps.find_gaps`) as a styled GeoPackage layer ``gaps``."""
    from .qgis import gap_style

    out = _for_users(gaps, INTERNAL_GAP_COLUMNS)
    if "unit" in out:
        out["unit"] = out["unit"].astype(object).where(out["unit"].notna(), None)
    top = float(out["population"].max()) if len(out) else 1.0
    path = run.vector(out, name, layer="gaps", style=gap_style(top))
    log.info("wrote %s (%d gap areas)", name, len(gaps))
    return path


def write_service_areas(run: OutputRun, areas: Any, name: str, *, layers: str = "one") -> list[str]:
    """Stage service areas (isochrones) as ONE styled layer with ``category`` and ``minutes`` fields.

    ``layers="per-category"``: one GeoPackage layer per category and threshold (``health_15min``;
    ``facilities_health_15min`` for facility service areas; ``isochrone_5min`` for a point's),
    each styled. Returns the layer names.
    """
    from ..errors import InputDataError
    from .qgis import service_area_style

    if layers not in ("one", "per-category"):
        raise InputDataError(f"isochrone layers {layers!r}: choose one or per-category")
    cats = list(dict.fromkeys(areas["category"].astype(str))) if "category" in areas else None
    minutes = areas["minutes"].astype(float).tolist() if "minutes" in areas else []
    layer = Path(name).stem if "facility_index" not in areas else "facility_isochrones"
    if layers == "one":
        run.vector(areas, name, layer=layer, style=service_area_style(cats, minutes, name=layer))
        return [layer]
    from .isochrones import write_isochrones
    from .qgis import write_layer_styles

    if Path(name).suffix.lower() != ".gpkg":
        raise OutputError(f"{name}: one layer per category needs a GeoPackage (.gpkg); choose a .gpkg name or "
                          "one layer (--isochrone-layers one)")
    names = write_isochrones(areas, run.path(name))
    by = ["category", "minutes"] if "category" in areas else ["minutes"]
    groups = areas.groupby(by, sort=False)
    styles = {}
    for layer_name, (key, _) in zip(names, groups):
        key = key if isinstance(key, tuple) else (key,)
        vals = dict(zip(by, key))
        styles[layer_name] = service_area_style([vals["category"]] if "category" in vals else None,
                                                [vals["minutes"]], name=layer_name)
    write_layer_styles(run.path(name), styles)
    return names


# ---------------------------------------------------------------------------- maps, sites, scenario

def write_maps(analysis: Any, out_dir: str | os.PathLike[str] | OutputRun, *, png: bool = True,
               basemap: str = "osm", html_path: str | os.PathLike[str] | None = None, isochrones: Any = None,
               units: Any = None, gaps: Any = None, sites: Any = None, title: str | None = None,
               tianditu_key: str | None = None) -> dict[str, Path]:
    """Write ``map.html`` (and ``coverage_map.png``, ``coverage_curve.png``) of an analysis into ``out_dir``.

    Parameters
    ----------
    analysis : lifecircle.Analysis
        Or what :func:`read_analysis_folder` returns.
    out_dir : path or OutputRun
        A folder: the maps replace the earlier maps of the run there, in one commit (the other
        files stay). An open :class:`OutputRun`: the maps join it.
    png : bool
        Also draw the static figures (needs matplotlib).
    basemap : str
        See :func:`base_map`.
    html_path : path, optional
        Where to write the map (default ``out_dir/map.html``); another name is an output of its
        own (see :func:`output_file`).
    isochrones, units, gaps, sites : GeoDataFrame, optional
        Default ``analysis.isochrones`` / ``.units`` / ``.gaps`` / ``.sites`` when present.

    Returns
    -------
    dict
        ``{"map.html": path, "coverage_map.png": path, "coverage_curve.png": path}``.

    Examples
    --------
    >>> import tempfile
    >>> from lifecircle import analyze
    >>> from lifecircle.datasets import toy_town_osm
    >>> sorted(write_maps(analyze(toy_town_osm()), tempfile.mkdtemp(), basemap="none"))
    ['coverage_curve.png', 'coverage_map.png', 'map.html']
    """
    gaps = gaps if gaps is not None else getattr(analysis, "gaps", None)
    sites = sites if sites is not None else getattr(analysis, "sites", None)
    folder = out_dir.folder if isinstance(out_dir, OutputRun) else Path(out_dir)
    html_name, elsewhere = _html_target(folder, html_path)
    m = coverage_map(analysis, isochrones=isochrones, units=units, gaps=gaps, sites=sites, basemap=basemap,
                     title=title, tianditu_key=tianditu_key)
    paths: dict[str, Path] = {}
    with output_run(out_dir, command="map", replace=_map_replaces(folder, html_path, png)) as run:
        if elsewhere is not None:  # an output of its own, in its own folder
            with output_file(elsewhere, command="map") as single:
                save_map(m, single.path(elsewhere.name))
            paths["map.html"] = elsewhere
        else:
            save_map(m, run.path(html_name))
            paths["map.html"] = run.final(html_name)
        if png:
            from concurrent.futures import Future

            if isinstance(isochrones, Future):
                isochrones = isochrones.result()
            paths.update(write_figures(analysis, run, isochrones=isochrones, units=units))
    return paths


def write_figures(analysis: Any, run: OutputRun, *, isochrones: Any = None, units: Any = None) -> dict[str, Path]:
    """The static figures of :func:`write_maps` into an open run: ``coverage_map.png``, ``coverage_curve.png``
    and, with accessibility per unit, ``lorenz.png``. ``lifecircle analyze`` draws them, then the report that
    embeds them, while the HTML map is drawn on a second thread (and Chromium prints the PDF)."""
    from .figures import coverage_curve, coverage_figure, save_figure

    paths: dict[str, Path] = {}
    save_figure(coverage_figure(analysis, isochrones=isochrones, units=units), run.path("coverage_map.png"))
    save_figure(coverage_curve(analysis), run.path("coverage_curve.png"))
    paths["coverage_map.png"] = run.final("coverage_map.png")
    paths["coverage_curve.png"] = run.final("coverage_curve.png")
    acc = getattr(analysis, "accessibility", None)
    if acc is not None and (acc["unit"].astype(str) != "study_area").any():
        from .figures import lorenz_curve

        save_figure(lorenz_curve(analysis), run.path("lorenz.png"))
        paths["lorenz.png"] = run.final("lorenz.png")
    return paths


def _html_target(folder: Path, html_path: str | os.PathLike[str] | None) -> tuple[str, Path | None]:
    """The map's name in the run, or (when ``html_path`` is in another folder) the path of its own output."""
    if html_path is None:
        return "map.html", None
    h = Path(html_path)
    if h.resolve().parent == folder.resolve():
        return h.name, None
    return h.name, h


def _map_replaces(folder: Path, html_path: str | os.PathLike[str] | None, png: bool) -> tuple[str, ...]:
    name, elsewhere = _html_target(folder, html_path)
    return (() if elsewhere is not None else (name,)) + (("coverage_map.png", "coverage_curve.png", "lorenz.png")
                                                         if png else ())


def maps_from_folder(out_dir: str | os.PathLike[str], *, png: bool = True, basemap: str = "osm",
                     html_path: str | os.PathLike[str] | None = None, title: str | None = None,
                     tianditu_key: str | None = None) -> dict[str, Path]:
    """Make ``map.html`` (and the PNGs) from the folder written by ``lifecircle analyze --out DIR``.

    Reads the recorded run (:func:`read_analysis_folder`), then writes the maps into it as a new
    commit (:func:`write_maps`, same parameters): the other files of the run stay as they are.
    """
    d = Path(out_dir)
    with output_folder(d, command="map", replace=_map_replaces(d, html_path, png)) as run:
        return write_maps(read_analysis_folder(d, network=True), run, png=png, basemap=basemap, html_path=html_path,
                          title=title, tianditu_key=tianditu_key)


#: Columns of the sites that only wire the computation together (network node index, candidate row label).
INTERNAL_SITE_COLUMNS = ("node", "candidate")


def _for_users(frame: Any, internal: Iterable[str] = INTERNAL_SITE_COLUMNS) -> Any:
    """``frame`` without the columns that mean nothing outside lifecircle."""
    return frame.drop(columns=[c for c in internal if c in frame.columns])


def _site_table_rounded(frame: pd.DataFrame) -> pd.DataFrame:
    """A site table as its CSV shows it: people to 0.1 (as in coverage.csv), shares to 1e-6 (Excel shows
    ``3126156.6``, not the float sum ``3126156.5999999996``)."""
    out = frame.copy()
    for c in out.columns:
        name = str(c)
        if pd.api.types.is_float_dtype(out[c]):
            if name == "population" or name.endswith("_population"):
                out[c] = out[c].round(1)
            elif name == "share" or name.endswith("_share") or name.startswith("share_"):
                out[c] = out[c].round(6)
    return out


def write_sites(sites, out_dir: str | os.PathLike[str] | OutputRun, *, needed: pd.DataFrame | None = None,
                stem: str = "suggested_sites", out_crs: Any = None) -> dict[str, Path]:
    """Write ``suggested_sites.csv`` and ``.gpkg`` (and ``sites_needed.csv``) into a run.

    The CSV has ``category``, ``lon`` and ``lat`` columns, so it can be given straight back as
    ``--facilities`` (or ``scenario --add``), and the candidates' own columns (parcel names...)
    and coordinates in their own CRS (``lon_input``, ``lat_input``, ``input_crs``) when they came
    from a file. The GeoPackage is styled for QGIS; ``out_crs`` (``gcj02``...) adds a copy
    ``suggested_sites_gcj02.gpkg``. Given a folder, they replace the site outputs of the run there
    (the analysis files stay).
    """
    from .qgis import site_style

    with output_run(out_dir, command="gaps", replace=(*SITE_FILES, SITE_COPIES)) as run:
        shown = _for_users(sites)
        paths = {f"{stem}.csv": run.table(_site_table_rounded(pd.DataFrame(shown.drop(columns="geometry"))),
                                          f"{stem}.csv")}
        cats = list(dict.fromkeys(shown["category"].astype(str))) if "category" in shown else None
        paths[f"{stem}.gpkg"] = run.vector(shown, f"{stem}.gpkg", layer="sites", style=site_style(cats), crs=out_crs)
        if needed is not None:
            paths["sites_needed.csv"] = run.table(_site_table_rounded(needed), "sites_needed.csv")
    log.info("wrote %s", ", ".join(p.name for p in paths.values()))
    return paths


def write_site_plans(analysis, out_dir: str | os.PathLike[str] | OutputRun, **options: Any
                     ) -> tuple[dict[str, Path], Any, pd.DataFrame | None]:
    """Plan new sites (:func:`lifecircle.plan.sites.site_plans`, same options) and write them into a run.

    ``out_crs=`` (e.g. ``"gcj02"``) also writes ``suggested_sites_<tag>.gpkg`` (see :func:`write_sites`).

    Writes ``suggested_sites.csv``/``.gpkg`` (the study area's sites; the CSV works as
    ``--facilities`` or ``scenario --add``), ``sites_needed.csv`` and, with units,
    ``suggested_sites_by_unit.csv``; given a folder, they replace the site outputs of its run.

    ``plans=`` (the ``(sites, needed, by_unit)`` of :func:`~lifecircle.plan.sites.site_plans`, planned
    already) writes those instead of planning again: ``lifecircle analyze --sites`` plans before it draws
    the areas and the map (planning's peak memory is then not on top of theirs) and writes them here.

    Returns
    -------
    (paths, sites, needed)
        The files written, the study area's sites (GeoDataFrame) and the per-area table (or None).

    Examples
    --------
    >>> import tempfile
    >>> from lifecircle import analyze
    >>> from lifecircle.datasets import toy_town_osm
    >>> paths, sites, needed = write_site_plans(analyze(toy_town_osm()), tempfile.mkdtemp(), exact=False)
    >>> sorted(paths), sites.category.tolist()
    (['sites_needed.csv', 'suggested_sites.csv', 'suggested_sites.gpkg'], ['health'])
    >>> needed[["category", "sites_needed"]].values.tolist()  # the other three meet the target already
    [['health', 1], ['elderly_care', 0], ['culture', 0], ['sports', 0]]
    """
    from ..plan.sites import site_plans

    out_crs = options.pop("out_crs", None)
    plans = options.pop("plans", None)
    if plans is not None and options:
        raise TypeError(f"write_site_plans: plans= are planned already; {', '.join(sorted(options))} would "
                        "be ignored (give them to site_plans)")
    sites, needed, by_unit = site_plans(analysis, **options) if plans is None else plans
    with output_run(out_dir, command="gaps", replace=(*SITE_FILES, SITE_COPIES)) as run:
        paths = write_sites(sites, run, needed=needed, out_crs=out_crs)
        if by_unit is not None:
            paths["suggested_sites_by_unit.csv"] = run.table(
                _site_table_rounded(pd.DataFrame(_for_users(by_unit).drop(columns="geometry"))),
                "suggested_sites_by_unit.csv")
    return paths, sites, needed


def write_scenario(s: Any, out_dir: str | os.PathLike[str] | OutputRun, *, before: Any = None,
                   basemap: str = "osm") -> dict[str, Path]:
    """Write ``scenario_change.csv``, ``scenario_coverage.csv`` and ``scenario_facilities.gpkg`` as one run.

    ``s`` is a :class:`lifecircle.plan.scenario.Scenario`; a folder's earlier scenario is replaced whole.
    With ``before`` (the analysis it changes) also ``map.html``: facilities added/removed, residents
    before and after (:func:`lifecircle.present.maps.scenario_map`).
    """
    with output_run(out_dir, command="scenario") as run:
        paths = {"scenario_change.csv": run.table(s.change, "scenario_change.csv"),
                 "scenario_coverage.csv": run.table(s.coverage, "scenario_coverage.csv")}
        fac = s.facilities.copy()
        for c in fac.columns:
            if c != "geometry" and fac[c].dtype == object:
                fac[c] = fac[c].where(fac[c].isna(), fac[c].astype(str))
        from .qgis import facility_style

        paths["scenario_facilities.gpkg"] = run.vector(
            fac, "scenario_facilities.gpkg", layer="facilities",
            style=facility_style(fac["category"].astype(str) if "category" in fac else None))
        if before is not None:
            from .maps import save_map, scenario_map

            save_map(scenario_map(s, before=before, basemap=basemap), run.path("map.html"))
            paths["map.html"] = run.final("map.html")
    log.info("wrote %s", ", ".join(p.name for p in paths.values()))
    return paths
