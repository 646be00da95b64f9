"""Run many analyses (areas × parameter sets) from a plan file on a Dask cluster, resumably.

A plan is a TOML file (see ``examples/batch_plan.toml``)::

    out_dir = "batch_out"              # relative to the plan file, and inside its folder

    [parameters.life_circle]           # a named parameter set: AnalysisConfig fields
    minutes = [5, 10, 15]

    [parameters.slow_walkers]
    minutes = [15]
    walk_speed_kmh = 3.0

    [[area]]                           # one block per area
    name = "huangpu"
    osm = "huangpu.osm.pbf"
    population = "residents.csv"
    population_crs = "gcj02"
    parameters = ["life_circle"]       # default: every set

Every (area, parameter set) pair is one task: ``lifecircle.analyze(...)`` then
``Analysis.write(out_dir/area/parameters)``. :func:`load_plan` checks the whole plan before
anything runs and reports every problem at once.

Fault tolerance. A task that fails (corrupt file, empty network, ...) becomes a ``failed`` row
of the results table with its error message; the others go on. A task's outputs and its
``manifest.json`` (the sha256 of every output and a fingerprint of the inputs' sha256, the
parameters and the lifecircle version) are committed together, as one run of the task folder
(:mod:`lifecircle.present.outputs`): a failed or killed task leaves the folder's earlier run
whole. A rerun skips a
task whose manifest matches and whose outputs all still hash as recorded; anything else
(missing manifest after a crash, an edited or truncated output, new inputs or parameters) is
computed again.

Memory. Tasks are plain descriptions (paths and parameters); results are small rows. Each
worker process runs one area at a time (a local cluster has one thread per worker; on a
shared cluster a per-process lock enforces it), so a worker never holds two areas' networks.
An area with ``tile_m`` is split into tiles (:mod:`lifecircle.scale.partition`): its network is held
by the process running ``run_batch`` and the tiles travel to the workers as ``.npz`` files in
``scratch_dir``. Inputs, outputs and ``scratch_dir`` must be on a file system every worker sees.

Security. Relative paths in a plan start at the plan's folder; ``out_dir`` and ``scratch_dir``
must stay inside it (after resolving ``..`` and symbolic links) unless the caller allows otherwise
(``--allow-outside-plan-dir``), so running a plan received from someone else cannot write
elsewhere. The local cluster listens on 127.0.0.1 only, speaks TLS with a certificate made for the
run (only this process and its workers can connect, so other users of the computer cannot send it
code) and has no dashboard unless asked (``--dashboard``). An external ``--scheduler`` must be one
you trust: results are unpickled from it, so whoever controls it can run code in this process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import functools
import inspect
import json
import logging
import os
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import pandas as pd

from .._version import __version__
from ..config import ALL, CATEGORIES, AnalysisConfig
from ..errors import InputDataError, LifecircleError
from ..config import read_toml
from ..validate import RULES, scheduler_problem, value_problem
from ..read.osm import file_sha256

log = logging.getLogger("lifecircle")

__all__ = [
    "MANIFEST",
    "RESULTS_FILE",
    "RESULT_COLUMNS",
    "BatchTask",
    "Plan",
    "load_plan",
    "plan_from_dict",
    "run_batch",
    "run_task",
    "outputs_complete",
    "dask_client",
    "check_scheduler_address",
]

#: Written last in every task folder: hashes of the outputs and the task's fingerprint.
MANIFEST = "manifest.json"
#: The batch's results table, in ``out_dir``.
RESULTS_FILE = "batch_results.csv"
#: Columns of the results table (``share_<category>`` is the share within the headline minutes).
RESULT_COLUMNS = [
    "area", "parameters", "status", "error", "seconds", "out_dir", "headline_minutes", "walk_speed_kmh",
    "population", *[f"share_{c}" for c in (*CATEGORIES, ALL)], "below_target", "warnings",
]

_PLAN_KEYS = ("out_dir", "scratch_dir", "parameters", "area")
#: Area keys holding input files (resolved relative to the plan, hashed into the fingerprint).
_FILE_KEYS = ("osm", "facilities", "population", "units", "taxonomy", "census")
#: ``analyze`` keywords a plan may not set (the batch sets them, or they need the internet).
_RESERVED = ("config", "network", "place", "progress", "walking_times_fn")
_NAME = re.compile(r"[\w\-][\w.\-]*")
_AREA_LOCK = threading.Lock()  # one area at a time per worker process


@dataclass(frozen=True, eq=False)
class BatchTask:
    """One analysis of a batch: an area with one parameter set.

    ``files`` maps ``analyze`` keywords to absolute input paths, ``options`` holds the other
    keywords (CRS, column names, ...).
    """

    area: str
    parameters: str
    config: AnalysisConfig
    files: dict[str, str]
    options: dict[str, Any] = field(default_factory=dict)
    tile_m: float | None = None

    @property
    def key(self) -> str:
        """``area/parameters``, also the task's folder below ``out_dir``."""
        return f"{self.area}/{self.parameters}"


@dataclass(frozen=True, eq=False)
class Plan:
    """A validated plan: the tasks in plan order and where their outputs go."""

    tasks: tuple[BatchTask, ...]
    out_dir: Path
    scratch_dir: Path | None = None
    source: Path | None = None

    def __len__(self) -> int:
        return len(self.tasks)


def load_plan(path: str | os.PathLike[str], *, out_dir: str | os.PathLike[str] | None = None,
              allow_outside_plan_dir: bool = False) -> Plan:
    """Read and validate a plan TOML file (format in the module docstring).

    Relative paths are taken from the plan's folder, never from the current folder. The plan's
    ``out_dir`` and ``scratch_dir`` must lie inside the plan's folder once ``..`` and symbolic
    links are resolved (a plan from someone else cannot make the batch write elsewhere), unless
    ``allow_outside_plan_dir``. Input files may be anywhere. ``out_dir`` given here (the CLI's
    ``--out``) replaces the plan's and may be anywhere. Every problem (unknown keys, missing
    files, invalid parameters, unknown parameter-set names, duplicate areas, folders outside the
    plan's folder) is collected and reported in one :class:`~lifecircle.errors.InputDataError`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from lifecircle.datasets import toy_town_osm
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "plan.toml").write_text(f'''
    ... [parameters.base]
    ... minutes = [5, 15]
    ... [parameters.slow]
    ... walk_speed_kmh = 3.0
    ... [[area]]
    ... name = "toy"
    ... osm = "{toy_town_osm().as_posix()}"
    ... ''')
    >>> [t.key for t in load_plan(d / "plan.toml").tasks]
    ['toy/base', 'toy/slow']
    >>> _ = (d / "bad.toml").write_text('[parameters.x]\\nwalk_speed = 4\\n[[area]]\\nname = "a"\\n')
    >>> load_plan(d / "bad.toml")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    lifecircle.errors.InputDataError: plan ...bad.toml has 2 problems: parameters.x: unknown key 'walk_speed'; ...; area 'a': no osm file: ...
    >>> _ = (d / "up.toml").write_text(f'out_dir = "../elsewhere"\\n[[area]]\\nname = "toy"\\nosm = "{toy_town_osm().as_posix()}"\\n')
    >>> load_plan(d / "up.toml")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    lifecircle.errors.InputDataError: plan ...up.toml has 1 problem: out_dir '../elsewhere' is .../elsewhere, outside the plan's folder ...; ... or pass --allow-outside-plan-dir ...
    >>> load_plan(d / "up.toml", allow_outside_plan_dir=True).out_dir == d.resolve().parent / "elsewhere"
    True
    """
    p = Path(path)
    data = read_toml(p, what="plan")
    return plan_from_dict(data, base_dir=p.resolve().parent, source=p, out_dir=out_dir,
                          allow_outside_plan_dir=allow_outside_plan_dir)


def plan_from_dict(data: Mapping[str, Any], *, base_dir: str | os.PathLike[str] = ".",
                   source: str | os.PathLike[str] | None = None, out_dir: str | os.PathLike[str] | None = None,
                   allow_outside_plan_dir: bool = False) -> Plan:
    """Validate a plan given as a dict (the parsed TOML); see :func:`load_plan` (``base_dir`` is the plan's folder)."""
    base = Path(base_dir).resolve()
    where = f"plan {source}" if source is not None else "plan"
    problems: list[str] = []
    for key in sorted(set(data) - set(_PLAN_KEYS)):
        problems.append(f"unknown top-level key {key!r}: valid keys are {', '.join(_PLAN_KEYS)}")

    sets: dict[str, AnalysisConfig] = {}
    raw_sets = data.get("parameters", {})
    if not isinstance(raw_sets, Mapping):
        problems.append("[parameters] must be tables such as [parameters.base] with AnalysisConfig fields")
        raw_sets = {}
    for name, table in raw_sets.items():
        cfg = _parameter_set(name, table, f"parameters.{name}", problems)
        if cfg is not None:
            sets[name] = cfg
    if not raw_sets:
        sets["default"] = AnalysisConfig()

    areas = data.get("area", [])
    if isinstance(areas, Mapping) or not isinstance(areas, list) or not areas:
        problems.append("no area: add one [[area]] block per area with name and osm")
        areas = []
    tasks: list[BatchTask] = []
    seen: set[str] = set()
    analyze_keys = _analyze_keywords()
    for i, area in enumerate(areas):
        tasks += _area_tasks(i, area, sets, raw_sets, base, analyze_keys, seen, problems)

    if out_dir is not None:  # the user's explicit choice (--out): anywhere
        out = Path(os.path.expanduser(str(out_dir))).absolute()
    else:
        out = _plan_folder("out_dir", data.get("out_dir", f"{Path(source).stem}_out" if source else "batch_out"),
                           base, allow_outside_plan_dir, problems)
    scratch = data.get("scratch_dir")
    if scratch is not None:
        scratch = _plan_folder("scratch_dir", scratch, base, allow_outside_plan_dir, problems)
    if problems:
        n = len(problems)
        raise InputDataError(f"{where} has {n} problem{'s' if n > 1 else ''}: " + "; ".join(problems))
    return Plan(tuple(tasks), out, scratch, None if source is None else Path(source))


def _plan_folder(key: str, value: Any, base: Path, allow_outside: bool, problems: list[str]) -> Path:
    """A folder the batch writes to, resolved (``..``, symbolic links); a problem if outside ``base``."""
    if not isinstance(value, str) or not value.strip():
        problems.append(f'{key} must be a folder path in quotes, e.g. {key} = "batch_out"')
        return base
    path = _resolve(value, base).resolve()
    if not allow_outside and not path.is_relative_to(base):
        problems.append(f"{key} {value!r} is {path}, outside the plan's folder {base}; use a folder inside it, "
                        "or pass --allow-outside-plan-dir (allow_outside_plan_dir=True) if you trust this plan")
    return path


def _parameter_set(name: Any, table: Any, label: str, problems: list[str]) -> AnalysisConfig | None:
    fields = [f.name for f in dataclasses.fields(AnalysisConfig)]
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        problems.append(f"{label}: the name must be letters, digits, '_', '-' or '.' (it names a folder)")
        return None
    if not isinstance(table, Mapping):
        problems.append(f"{label} must be a table of AnalysisConfig fields ({', '.join(fields)})")
        return None
    try:
        return AnalysisConfig.from_dict({k: v for k, v in table.items() if k != "name"}, where=label)
    except InputDataError as exc:
        problems.extend(getattr(exc, "problems", [str(exc)]))
    except TypeError as exc:
        problems.append(f"{label}: {exc}")
    return None


def _area_tasks(i: int, area: Any, sets: dict[str, AnalysisConfig], raw_sets: Mapping[str, Any], base: Path,
                analyze_keys: set[str], seen: set[str], problems: list[str]) -> list[BatchTask]:
    if not isinstance(area, Mapping):
        problems.append(f"area #{i + 1} must be an [[area]] table")
        return []
    name = area.get("name")
    label = f"area {name!r}" if isinstance(name, str) else f"area #{i + 1}"
    n_before = len(problems)
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        problems.append(f"{label}: give it a name of letters, digits, '_', '-' or '.' (it names a folder), "
                        'e.g. name = "huangpu"')
    elif name in seen:
        problems.append(f"{label} appears twice: area names must be unique")
    else:
        seen.add(name)
    allowed = (analyze_keys - set(_RESERVED)) | {"name", "parameters", "tile_m"}
    for key in sorted(set(area) - allowed):
        hint = " (download it first: `lifecircle fetch`, then osm = FILE)" if key == "place" else ""
        problems.append(f"{label}: unknown key {key!r}{hint}; valid keys are {', '.join(sorted(allowed))}")
    if "osm" not in area:
        problems.append(f'{label}: no osm file: add osm = "path/to/area.osm.pbf"')
    files: dict[str, str] = {}
    options: dict[str, Any] = {}
    for key, value in area.items():
        if key in ("name", "parameters", "tile_m") or key not in allowed:
            continue
        if key in _FILE_KEYS:
            if not isinstance(value, str):
                problems.append(f'{label}: {key} must be a file path in quotes, e.g. {key} = "data/file"')
                continue
            path = _resolve(value, base)
            if not path.is_file():
                problems.append(f"{label}: {key} file not found: {path}; fix the path (relative paths start at "
                                "the plan's folder)")
            files[key] = str(path)
        elif key.endswith("_crs"):
            from ..read.crs import parse_crs

            try:
                parse_crs(value)
            except LifecircleError as exc:
                problems.append(f"{label}: {key}: {exc}")
            options[key] = value
        else:
            if key in RULES:  # m2_per_person...: the same rules as on the command line
                problem = value_problem(key, value)
                if problem:
                    problems.append(f"{label}: {problem}")
            options[key] = value
    if options.get("replace_osm_facilities") and "facilities" not in files:
        problems.append(f"{label}: replace_osm_facilities needs a facilities file")
    tile_m = area.get("tile_m")
    if tile_m is not None:
        if isinstance(tile_m, bool) or not isinstance(tile_m, (int, float)) or not tile_m > 0:
            problems.append(f"{label}: tile_m must be a positive number of metres (got {tile_m!r}), e.g. tile_m = 3000")
        elif "walking_times_fn" not in analyze_keys:
            problems.append(f"{label}: tile_m needs lifecircle.analyze(walking_times_fn=...), which this version "
                            "lacks; remove tile_m to analyse the area in one piece")
    chosen: list[tuple[str, AnalysisConfig]] = []
    wanted = area.get("parameters", list(sets) if sets else [])
    for j, entry in enumerate([wanted] if isinstance(wanted, (str, Mapping)) else wanted):
        if isinstance(entry, str):
            if entry in sets:
                chosen.append((entry, sets[entry]))
            elif entry not in raw_sets:  # a set with problems of its own was reported already
                problems.append(f"{label}: unknown parameter set {entry!r}; defined sets are "
                                f"{', '.join(sets) or '(none)'}")
        elif isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
            if entry["name"] in raw_sets:
                problems.append(f"{label}: parameter set {entry['name']!r} is already defined in [parameters]; "
                                "give the inline set another name")
                continue
            cfg = _parameter_set(entry["name"], entry, f"{label} parameters {entry['name']!r}", problems)
            if cfg is not None:
                chosen.append((entry["name"], cfg))
        else:
            problems.append(f"{label}: parameters entry #{j + 1} must be a set name or an inline table with a name")
    names = [n for n, _ in chosen]
    if len(set(names)) != len(names):
        problems.append(f"{label}: a parameter set is listed twice in {names}")
    if len(problems) > n_before:
        return []
    return [BatchTask(name, pname, cfg, files, options, None if tile_m is None else float(tile_m))
            for pname, cfg in chosen]


def _resolve(value: Any, base: Path) -> Path:
    p = Path(os.path.expanduser(str(value)))
    return p if p.is_absolute() else (base / p)


def _analyze_keywords() -> set[str]:
    from ..pipeline import analyze

    return {n for n, p in inspect.signature(analyze).parameters.items()
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


# --- one task ---------------------------------------------------------------------------------


def _fingerprint(task: BatchTask, input_hashes: Mapping[str, str]) -> str:
    """sha256 of everything a task's result depends on: inputs' content, parameters, options, version."""
    import hashlib

    blob = json.dumps({
        "lifecircle": __version__,
        "inputs": dict(sorted(input_hashes.items())),
        "config": task.config.to_dict(),
        "options": task.options,
        "tile_m": task.tile_m,
    }, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def outputs_complete(task_dir: str | os.PathLike[str], fingerprint: str | None = None) -> tuple[bool, str]:
    """Whether a task folder holds a complete, unaltered result (and, if given, for ``fingerprint``).

    Returns ``(True, "")`` or ``(False, why)``. Complete means: ``manifest.json`` is readable,
    its fingerprint matches, and every output it lists exists with the recorded sha256.
    """
    d = Path(task_dir)
    try:
        manifest = json.loads((d / MANIFEST).read_text(encoding="utf-8"))
        outputs = manifest["outputs"]
    except FileNotFoundError:
        return False, "no manifest (never run, or stopped before finishing)"
    except (ValueError, KeyError, TypeError):
        return False, "unreadable manifest"
    if fingerprint is not None and manifest.get("fingerprint") != fingerprint:
        return False, "inputs, parameters or lifecircle version changed"
    if "summary.json" not in outputs:
        return False, "manifest lists no summary.json"
    for name, rec in outputs.items():
        f = d / name
        if not f.is_file() or f.stat().st_size != rec.get("bytes"):
            return False, f"{name} is missing or has another size"
        if file_sha256(f) != rec.get("sha256"):
            return False, f"{name} was changed (sha256 differs)"
    return True, ""


def _summary_columns(summary: Mapping[str, Any]) -> dict[str, Any]:
    cats = summary.get("categories", {})
    params = summary.get("parameters", {})
    minutes = params.get("minutes") or [float("nan")]
    return {
        "headline_minutes": float(max(minutes)),
        "walk_speed_kmh": params.get("walk_speed_kmh"),
        "population": summary.get("residents", {}).get("population"),
        **{f"share_{c}": cats[c]["share"] for c in (*CATEGORIES, ALL) if c in cats},
        "below_target": ",".join(c for c, v in cats.items() if not v.get("meets_target")),
    }


class _Capture(logging.Handler):
    """Collect this thread's lifecircle warnings during a task (sent back in the results row)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.messages.append(record.getMessage())


@contextlib.contextmanager
def _captured_warnings() -> Iterator[list[str]]:
    handler = _Capture()
    log.addHandler(handler)
    try:
        yield handler.messages
    finally:
        log.removeHandler(handler)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or repr(exc)
    return text if isinstance(exc, LifecircleError) else f"{type(exc).__name__}: {text}"


def run_task(task: BatchTask, *, out_dir: str | os.PathLike[str], client: Any = None,
             scratch_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Run one task (or skip it when its outputs are complete); never raises for a bad area.

    This is the function Dask workers run. It writes ``out_dir/<area>/<parameters>/`` and returns
    the task's row of the results table: ``status`` is ``ok``, ``skipped`` or ``failed`` (with
    ``error``, one line).
    """
    t0 = time.perf_counter()
    task_dir = Path(out_dir) / task.area / task.parameters
    row: dict[str, Any] = {"area": task.area, "parameters": task.parameters, "status": "failed", "error": "",
                           "out_dir": str(task_dir)}
    with _AREA_LOCK, _captured_warnings() as warnings:
        try:
            hashes = {k: file_sha256(p) for k, p in task.files.items()}
            fingerprint = _fingerprint(task, hashes)
            done, why = outputs_complete(task_dir, fingerprint)
            if done:
                summary = json.loads((task_dir / "summary.json").read_text(encoding="utf-8"))
                row.update(status="skipped", **_summary_columns(summary))
                warnings.extend(summary.get("warnings", []))
            else:
                log.info("%s: computing (%s)", task.key, why)
                summary = _analyze_and_write(task, task_dir, fingerprint, hashes, client, scratch_dir)
                row.update(status="ok", **_summary_columns(summary))
        except Exception as exc:  # a bad area must not stop the batch; the row carries the message
            log.debug("%s failed", task.key, exc_info=True)
            row["error"] = _one_line(exc)
        row["seconds"] = round(time.perf_counter() - t0, 3)
        row["warnings"] = " | ".join(dict.fromkeys(warnings))
    return row


def _analyze_and_write(task: BatchTask, task_dir: Path, fingerprint: str, hashes: Mapping[str, str],
                       client: Any, scratch_dir: str | os.PathLike[str] | None) -> dict[str, Any]:
    from ..pipeline import analyze

    kwargs: dict[str, Any] = {**task.files, **task.options}
    if task.tile_m is not None:
        from .partition import walking_times_tiled

        kwargs["walking_times_fn"] = functools.partial(walking_times_tiled, tile_m=task.tile_m, client=client,
                                                       scratch_dir=scratch_dir)
    from ..present.outputs import output_folder

    t0 = time.perf_counter()
    with output_folder(task_dir, command="batch") as run:  # outputs and manifest.json in one commit
        result = analyze(config=task.config, **kwargs)
        paths = result.write(run)
        outputs = {n: {"sha256": file_sha256(run.path(n)), "bytes": run.path(n).stat().st_size} for n in paths}
        run.json({
            "task": task.key,
            "fingerprint": fingerprint,
            "lifecircle_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(time.perf_counter() - t0, 3),
            "inputs": {k: {"path": task.files[k], "sha256": h} for k, h in hashes.items()},
            "parameters": task.config.to_dict(),
            "options": task.options,
            "tile_m": task.tile_m,
            "outputs": outputs,
        }, MANIFEST)
    return result.summary


# --- the batch --------------------------------------------------------------------------------


#: Address schemes of a Dask scheduler (``--scheduler``).
def check_scheduler_address(address: str) -> str:
    """Return ``address`` if it is a Dask scheduler address (:func:`lifecircle.validate.scheduler_problem`),
    else raise a one-line error.

    >>> check_scheduler_address("tcp://10.0.0.5:8786")
    'tcp://10.0.0.5:8786'
    >>> check_scheduler_address("10.0.0.5:8786")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    lifecircle.errors.InputDataError: --scheduler: '10.0.0.5:8786' is not a Dask scheduler address: ...
    """
    problem = scheduler_problem(address) if isinstance(address, str) else f"--scheduler: {address!r} is not text"
    if problem:
        raise InputDataError(problem)
    return address.strip()


def _local_security() -> tuple[Any, str]:
    """TLS with a certificate made for this run only (``Security.temporary()``), or plain TCP without cryptography.

    With TLS every connection to the scheduler and the workers must present this certificate, which
    exists only in this process and its workers: another user of the computer cannot submit code to
    the cluster. The certificate costs about 0.1 s to make.
    """
    from distributed.security import Security

    try:
        return Security.temporary(), "tls://"
    except ImportError:
        log.warning("the Python package cryptography is missing, so the local Dask cluster runs without TLS: while "
                    "the batch runs, any user of this computer could send it code; pip install cryptography")
        return None, "tcp://"


@contextlib.contextmanager
def dask_client(*, workers: int | None = None, scheduler: str | None = None, dashboard: bool = False,
                tls: bool = True) -> Iterator[Any]:
    """A Dask client: on ``scheduler`` (e.g. ``tcp://host:port``) or on a new, private local cluster.

    The local cluster has ``workers`` processes (default: one per CPU) with one thread each and is
    shut down on exit. It listens on 127.0.0.1 only and, with ``tls`` (the default), speaks TLS with
    a temporary certificate (``distributed.security.Security.temporary()``) so that only this
    process and its workers can connect. Without ``dashboard`` there is no dashboard: Dask's HTTP
    servers (which Dask always starts) get a random loopback port and serve no pages. With
    ``dashboard`` the dashboard is served on ``127.0.0.1:8787`` (or a free port) and its address is
    logged; anyone logged in on this computer can view it while the batch runs (it needs bokeh).

    An external ``scheduler`` must be trusted: the results are unpickled from it (pickles can run
    code), and its workers run with the rights of whoever started them.
    """
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError:
        raise LifecircleError("batch runs need Dask: pip install 'dask[distributed]'") from None
    if scheduler is not None:
        scheduler = check_scheduler_address(scheduler)
        try:
            client = Client(scheduler, timeout="10s")
        except TypeError as exc:  # tls:// without certificates in the Dask configuration
            if "TLS" not in str(exc):
                raise
            raise InputDataError(f"the Dask scheduler at {scheduler} needs TLS certificates: set "
                                 "distributed.comm.tls.ca-file, .client.cert and .client.key in the Dask "
                                 "configuration (https://distributed.dask.org/en/stable/tls.html)") from None
        except (OSError, TimeoutError) as exc:
            raise InputDataError(f"cannot reach the Dask scheduler at {scheduler} ({type(exc).__name__}); start "
                                 "it (`dask scheduler`, `dask worker ADDRESS --nthreads 1`) or drop --scheduler "
                                 "to use a local cluster") from None
        with client:
            yield client
        return
    n = workers or os.cpu_count() or 1
    security, protocol = _local_security() if tls else (None, "tcp://")
    if dashboard:
        options: dict[str, Any] = {"dashboard_address": "127.0.0.1:8787"}
        quiet_http: dict[str, Any] = {}
    else:  # Dask starts an HTTP server anyway: a random loopback port, no pages on it
        options = {"dashboard_address": None, "scheduler_kwargs": {"dashboard_address": "127.0.0.1:0"}}
        quiet_http = {"distributed.scheduler.http.routes": [], "distributed.worker.http.routes": []}
    with dask.config.set(quiet_http):  # read while the scheduler and the workers start
        # silence_logs: the workers' own Dask log lines stay off the terminal (a worker closing with the cluster
        # can log its last heartbeat's failure as an error with a traceback); a task's errors still come back
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                               protocol=protocol, security=security, silence_logs=logging.CRITICAL, **options)
    with cluster, Client(cluster, security=security) as client:
        if dashboard:
            try:
                import bokeh  # noqa: F401
                need = ""
            except ImportError:
                need = " (the page only says to install bokeh: pip install bokeh)"
            log.warning("Dask dashboard: %s%s; anyone logged in on this computer can open it while the batch runs",
                        client.dashboard_link, need)
        yield client


def run_batch(
    plan: Plan | str | os.PathLike[str],
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int, dict[str, Any]], None] | None = None,
    client: Any = None,
    dashboard: bool = False,
) -> pd.DataFrame:
    """Run every task of a plan in parallel and write one results table.

    Parameters
    ----------
    plan : Plan or path
        A :class:`Plan` or a plan TOML file (read with :func:`load_plan`).
    workers : int, optional
        Worker processes of the local Dask cluster (default: one per CPU). ``0`` runs the
        tasks one after the other in this process, without Dask.
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://``, ``tls://``, ``inproc://`` or ``ucx://``) to
        use instead. Use only a scheduler you trust: the results are unpickled from it.
    out_dir : path, optional
        Overrides the plan's ``out_dir``.
    progress : callable, optional
        ``progress(tasks_done, tasks_total, row)`` after each task, ``row`` being its results row.
    client : dask.distributed.Client, optional
        An existing client (e.g. in a notebook); ``workers`` and ``scheduler`` are then unused.
    dashboard : bool
        Serve the local cluster's Dask dashboard on 127.0.0.1 and log its address (default: none);
        see :func:`dask_client`.

    Returns
    -------
    DataFrame
        One row per task in plan order (columns :data:`RESULT_COLUMNS`), also written to
        ``out_dir/batch_results.csv``. Failed tasks are rows with ``status == "failed"``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from lifecircle.datasets import toy_town_osm
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "plan.toml").write_text(f'[[area]]\\nname = "toy"\\nosm = "{toy_town_osm().as_posix()}"\\n')
    >>> table = run_batch(d / "plan.toml", workers=0)
    >>> table[["area", "parameters", "status"]].to_numpy().tolist()
    [['toy', 'default', 'ok']]
    >>> run_batch(d / "plan.toml", workers=0)["status"].tolist()  # outputs complete: skipped
    ['skipped']
    """
    if scheduler is not None and client is None:
        check_scheduler_address(scheduler)
    p = plan if isinstance(plan, Plan) else load_plan(plan, out_dir=out_dir)
    out = Path(out_dir).absolute() if out_dir is not None else p.out_dir
    scratch = p.scratch_dir or out / ".scratch"
    tasks = list(p.tasks)
    rows: list[dict[str, Any] | None] = [None] * len(tasks)
    t0 = time.perf_counter()
    log.info("batch: %d tasks → %s", len(tasks), out)

    done = 0

    def finished(i: int, row: dict[str, Any]) -> None:
        nonlocal done
        rows[i] = row
        done += 1
        if row["status"] == "ok":  # a skipped task's warnings were logged when it ran (and stay in the table)
            for w in filter(None, row.get("warnings", "").split(" | ")):
                log.warning("%s/%s: %s", row["area"], row["parameters"], w)
        if row["status"] == "failed":
            log.error("%s/%s failed: %s", row["area"], row["parameters"], row["error"])
        if progress is not None:
            progress(done, len(tasks), row)

    if workers == 0 and client is None and scheduler is None:
        for i, task in enumerate(tasks):
            finished(i, run_task(task, out_dir=out, scratch_dir=scratch))
    else:
        with contextlib.ExitStack() as stack:
            if client is None:
                client = stack.enter_context(dask_client(workers=_n_workers(workers, tasks), scheduler=scheduler,
                                                         dashboard=dashboard))
            for i, row in _run_on_cluster(tasks, client, out, scratch):
                finished(i, row)

    table = pd.DataFrame([r for r in rows if r is not None]).reindex(columns=RESULT_COLUMNS)
    from ..present.outputs import output_file

    with output_file(out / RESULTS_FILE, command="batch") as run:
        run.table(table, RESULTS_FILE)
    counts = table["status"].value_counts().to_dict()
    log.info("batch done in %.1f s: %s; table %s", time.perf_counter() - t0,
             ", ".join(f"{v} {k}" for k, v in counts.items()), out / RESULTS_FILE)
    table.attrs["path"] = str(out / RESULTS_FILE)
    return table


def _n_workers(workers: int | None, tasks: list[BatchTask]) -> int:
    n = workers or os.cpu_count() or 1
    untiled = sum(t.tile_m is None for t in tasks)
    return max(1, min(n, untiled)) if untiled == len(tasks) else n


def _run_on_cluster(tasks: list[BatchTask], client: Any, out: Path, scratch: Path) -> Iterator[tuple[int, dict]]:
    """Submit every task; yield ``(index, row)`` as they finish, in completion order.

    Untiled tasks run on the workers. Tiled tasks run one after another in a thread of this
    process, which holds the area's network and sends its tiles to the workers.
    """
    from distributed import as_completed

    results: queue.Queue = queue.Queue()
    untiled = [i for i, t in enumerate(tasks) if t.tile_m is None]
    tiled = [i for i, t in enumerate(tasks) if t.tile_m is not None]
    futures = {}
    for i in untiled:
        fut = client.submit(run_task, tasks[i], out_dir=str(out), scratch_dir=str(scratch), pure=False,
                            key=f"lifecircle-batch-{tasks[i].key}-{os.getpid()}-{time.monotonic_ns()}")
        futures[fut] = i

    def lost(i: int, exc: BaseException) -> dict[str, Any]:
        return {"area": tasks[i].area, "parameters": tasks[i].parameters, "status": "failed",
                "error": f"task lost: {_one_line(exc)}", "out_dir": str(out / tasks[i].key)}

    def collect() -> None:
        reported: set[int] = set()
        try:
            for fut in as_completed(list(futures)):
                i = futures[fut]
                try:
                    row = fut.result()
                except Exception as exc:  # the worker died (e.g. out of memory) or the task was lost
                    row = lost(i, exc)
                reported.add(i)
                results.put((i, row))
        except Exception as exc:  # the cluster went away: report what is left, never hang
            for i in set(untiled) - reported:
                results.put((i, lost(i, exc)))

    def drive_tiled() -> None:
        for i in tiled:
            results.put((i, run_task(tasks[i], out_dir=out, client=client, scratch_dir=scratch)))

    threads = [threading.Thread(target=f, daemon=True, name=f"lifecircle-{f.__name__}") for f in (collect, drive_tiled)]
    for th in threads:
        th.start()
    try:
        for _ in range(len(tasks)):
            yield results.get()
    finally:
        for fut in futures:
            fut.cancel()
        for th in threads:
            th.join(timeout=30)
