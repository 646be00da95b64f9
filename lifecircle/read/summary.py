"""Read and check an analysis folder (summary.json and its outputs) before a command builds on it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from ..config import AnalysisConfig
from ..errors import InputDataError, InputFileError
from ..validate import RULES, raise_problems, show, value_problem

__all__ = ["read_summary", "check_analysis_folder", "CORE_OUTPUTS"]

#: Outputs every analysis folder has and the commands on it read (besides summary.json).
CORE_OUTPUTS = ("coverage.csv", "residents.gpkg", "facilities.gpkg")
_COVERAGE_COLUMNS = ("unit", "category", "minutes", "population", "share")
_RERUN = "run `lifecircle analyze --out {folder}` again to rewrite it"


def _folder(folder: str | os.PathLike[str], option: str) -> Path:
    d = Path(os.path.expanduser(os.fspath(folder)))
    if not d.exists():
        raise InputFileError(f"{option}: no folder {d}; give the folder written by `lifecircle analyze --out DIR`")
    if not d.is_dir():
        raise InputFileError(f"{option}: {d} is a file, not a folder; give the folder written by "
                             "`lifecircle analyze --out DIR`")
    return d


def read_summary(folder: str | os.PathLike[str], *, option: str = "OUT_DIR") -> dict[str, Any]:
    """``folder/summary.json`` as a dict whose structure the commands can rely on.

    Checks that it is a JSON object with a ``parameters`` object (valid :class:`AnalysisConfig`
    fields, the same rules as the command line) and an ``inputs`` object of records (objects with
    a text ``path``, or null). Every problem is one :class:`~lifecircle.errors.LifecircleError`
    line naming the file and saying how to fix it.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "summary.json").write_text("[1, 2]")
    >>> read_summary(d)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    lifecircle.errors.InputDataError: .../summary.json is not a lifecircle summary: it holds a JSON list, not an object; run ...
    """
    d = _folder(folder, option)
    f = d / "summary.json"
    rerun = _RERUN.format(folder=d)
    if not f.is_file():
        what = "is a folder" if f.is_dir() else "is missing"
        raise InputFileError(f"{f} {what}: give the folder written by `lifecircle analyze --out DIR`, or {rerun}")
    try:
        text = f.read_text(encoding="utf-8")
    except PermissionError:
        raise InputFileError(f"cannot read {f} (permission denied): make it readable (chmod +r)") from None
    except UnicodeDecodeError:
        raise InputDataError(f"{f} is not UTF-8 text (corrupt?); {rerun}") from None
    except OSError as exc:
        raise InputFileError(f"cannot read {f} ({exc.strerror}); {rerun}") from None
    if not text.strip():
        raise InputDataError(f"{f} is empty; {rerun}")
    try:
        summary = json.loads(text)
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        at = f" (line {line})" if line else ""
        raise InputDataError(f"{f} is not valid JSON{at}: {getattr(exc, 'msg', exc)}; fix the edit or {rerun}") from None
    if not isinstance(summary, dict):
        raise InputDataError(f"{f} is not a lifecircle summary: it holds a JSON {_json_type(summary)}, not an "
                             f"object; {rerun}")
    problems: list[str] = []
    params, inputs = summary.get("parameters"), summary.get("inputs")
    for key, value in (("parameters", params), ("inputs", inputs)):
        if value is None:
            problems.append(f"no {key!r} entry")
        elif not isinstance(value, dict):
            problems.append(f"{key!r} must be an object, got a JSON {_json_type(value)}")
    if isinstance(inputs, dict):
        for name, rec in inputs.items():
            if rec is None:
                continue
            if not isinstance(rec, dict):
                problems.append(f"inputs.{name} must be an object or null, got {show(rec)[:40]}")
            elif "path" in rec and not isinstance(rec["path"], str):
                problems.append(f"inputs.{name}.path must be a file path in quotes, got {show(rec['path'])[:40]}")
    if isinstance(params, dict):
        if not isinstance(params.get("options", {}), dict):
            problems.append(f"parameters.options must be an object, got {show(params['options'])[:40]}")
        for key, value in (params.get("options") or {}).items() if isinstance(params.get("options"), dict) else ():
            problem = value_problem(key, value) if key in RULES and value is not None else None
            if problem:
                problems.append(f"parameters.options: {problem}")
        tax = params.get("taxonomy")
        if tax is not None and not isinstance(tax, str):
            problems.append(f"parameters.taxonomy must be text, got {show(tax)[:40]}")
    raise_problems(problems, where=f"{f} is not a usable lifecircle summary ({rerun})")
    AnalysisConfig.from_dict(params, where=f"{f} parameters", strict=False)
    return summary


def _json_type(value: Any) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean",
            type(None): "null", dict: "object"}.get(type(value), type(value).__name__)


def check_analysis_folder(folder: str | os.PathLike[str], *, option: str = "OUT_DIR",
                          inputs: bool = False) -> dict[str, Any]:
    """Check an analysis folder before a command reads from it or writes into it; return its summary.

    :func:`read_summary`, then the outputs every command reads (:data:`CORE_OUTPUTS`): present,
    not empty, GeoPackages that open, a coverage table with its columns. ``inputs=True`` (for the
    commands that run the analysis again: ``gaps``, ``scenario``) also checks that the input
    files recorded in ``inputs`` still exist. A damaged folder is refused: writing new outputs
    beside a truncated ``residents.gpkg`` would mix a good run with a broken one.
    """
    import pyogrio

    summary = read_summary(folder, option=option)
    d = _folder(folder, option)
    rerun = _RERUN.format(folder=d)
    problems: list[str] = []
    for name in CORE_OUTPUTS:
        f = d / name
        if not f.is_file():
            problems.append(f"{f} is missing")
        elif f.stat().st_size == 0:
            problems.append(f"{f} is empty")
        elif name.endswith(".gpkg"):
            try:
                pyogrio.read_info(f, layer=Path(name).stem)  # its one layer (beside QGIS's layer_styles)
            except Exception as exc:  # GDAL says "malformed", "not recognized", ... in many types
                text = str(exc)
                why = ("the database is malformed: truncated or overwritten?" if "malformed" in text else
                       "not a GeoPackage file" if "not recognized" in text or "not a database" in text else
                       " ".join(text.split(";")[0].split())[:120])
                problems.append(f"{f} is corrupt ({why})")
        else:
            problems += _coverage_problems(f)
    if inputs:
        for name, rec in summary["inputs"].items():
            if isinstance(rec, Mapping) and isinstance(rec.get("path"), str) and not Path(rec["path"]).is_file():
                problems.append(f"its {name} input {rec['path']} is gone (restore it, or run the analysis again "
                                "with the new path)")
    if problems:
        n = len(problems)
        text = problems[0] if n == 1 else f"{n} problems: " + "; ".join(problems)
        cls = InputFileError if all("gone" in p or "missing" in p for p in problems) else InputDataError
        raise cls(f"analysis folder {d}: {text}; {rerun}")
    return summary


def _coverage_problems(f: Path) -> list[str]:
    try:
        with open(f, encoding="utf-8-sig") as fh:  # lifecircle writes CSVs with a BOM (for Excel)
            header = fh.readline()
    except (UnicodeDecodeError, OSError) as exc:
        return [f"{f} is unreadable ({type(exc).__name__})"]
    cols = [c.strip() for c in header.strip().split(",")]
    missing = [c for c in _COVERAGE_COLUMNS if c not in cols]
    return [f"{f} lacks the columns {', '.join(missing)} (not a lifecircle coverage table)"] if missing else []
