"""Check what a user gave (numbers, input files, output paths) before anything is read or written.

One set of rules for every way a value arrives: the command line, a TOML ``--config``, a batch plan
and a hand-edited ``summary.json`` (:class:`lifecircle.config.AnalysisConfig` uses the same
:func:`value_problem`). The checks collect every problem and report them in one
:class:`~lifecircle.errors.LifecircleError` (one line), so a user fixes them all in one go.
"""

from __future__ import annotations

import contextlib
import difflib
import math
import numbers
import os
import re
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from .errors import InputDataError, InputFileError, LifecircleError

__all__ = [
    "OPTIONS",
    "RULES",
    "show",
    "value_problem",
    "check_values",
    "file_problem",
    "check_input_files",
    "output_problem",
    "check_output_dir",
    "check_output_file",
    "scheduler_problem",
    "label",
    "raise_problems",
    "Problems",
]

#: The command-line option of each parameter and keyword (messages name both).
OPTIONS = {
    "minutes": "--minutes", "walk_speed_kmh": "--speed-kmh", "target": "--target", "max_snap_m": "--max-snap-m",
    "max_minutes": "--max-minutes", "categories": "--categories", "m2_per_person": "--m2-per-person",
    "dedup_m": "--dedup-m", "cell_m": "--cell-m", "time_limit_s": "--time-limit-s", "match_m": "--match-m",
    "buffer_m": "--buffer-m", "k": "-k", "workers": "--workers", "lon": "--lon", "lat": "--lat",
    "tile_m": "tile_m",
    "osm": "--osm", "facilities": "--facilities", "population": "--population", "units": "--units",
    "census": "--census", "taxonomy": "--taxonomy", "config": "--config", "candidates": "--candidates",
    "add": "--add", "remove": "--remove", "official_counts": "--official-counts", "list": "--list",
    "urban": "--urban", "standard": "--standard",
    "plan": "PLAN", "out": "--out", "html": "--html", "dir": "--dir",
}

#: name -> (rule, unit/what, example). Rules: positive (finite > 0), non_negative (finite >= 0),
#: share (finite, in (0, 1]), count (whole number >= 1), whole (whole number >= 0), lon, lat.
RULES: dict[str, tuple[str, str, str]] = {
    "minutes": ("positive", "minutes", "5,10,15"),
    "walk_speed_kmh": ("positive", "km/h", "4"),
    "target": ("share", "share", "0.85"),
    "max_snap_m": ("positive", "metres", "500"),
    "max_minutes": ("positive", "minutes", "30"),
    "m2_per_person": ("positive", "m² per person", "36.5"),
    "dedup_m": ("non_negative", "metres", "150"),
    "cell_m": ("positive", "metres", "100"),
    "time_limit_s": ("positive", "seconds", "10"),
    "match_m": ("positive", "metres", "50"),
    "buffer_m": ("positive", "metres", "25"),
    "k": ("count", "sites", "5"),
    "workers": ("whole", "worker processes", "2"),
    "tile_m": ("positive", "metres", "3000"),
    "lon": ("lon", "degrees", "121.47"),
    "lat": ("lat", "degrees", "31.23"),
}

_RULE_TEXT = {
    "positive": "a positive number of {unit}",
    "non_negative": "a number of {unit} (0 or more)",
    "share": "a share in (0, 1] (0.85 means 85 %)",
    "count": "a whole number of {unit}, 1 or more",
    "whole": "a whole number of {unit}, 0 or more",
    "lon": "a longitude in degrees, -180 to 180",
    "lat": "a latitude in degrees, -90 to 90",
}


def show(value: Any) -> str:
    """A value as the user typed it: no numpy reprs, text quoted.

    >>> import numpy as np
    >>> show(np.float64(1.0)), show([np.int64(5), "x"]), show(float("nan")), show(True)
    ('1', "[5, 'x']", 'nan', 'true')
    """
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return f"{float(value):g}"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{show(k)}: {show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple, set, frozenset)) or type(value).__name__ == "ndarray":
        return "[" + ", ".join(show(v) for v in list(value)) + "]"
    if value is None:
        return "nothing"
    return repr(value)


def label(name: str) -> str:
    """``walk_speed_kmh (--speed-kmh)``: the keyword and the option it comes from."""
    option = OPTIONS.get(name)
    return name if option is None or option == name else f"{name} ({option})"


def value_problem(name: str, value: Any) -> str | None:
    """What is wrong with one numeric value under the rule of ``name`` (see :data:`RULES`), or None.

    Text, booleans, nan and inf are refused everywhere; the message names the parameter, its
    option, what was given and an example.

    >>> value_problem("target", 0.85) is None
    True
    >>> value_problem("target", 85)
    'target (--target) must be a share in (0, 1] (0.85 means 85 %), got 85; e.g. --target 0.85'
    >>> value_problem("minutes", "15")
    "minutes (--minutes) must be a positive number of minutes, got the text '15' (write numbers without quotes); e.g. --minutes 5,10,15"
    """
    rule, unit, example = RULES[name]
    want = _RULE_TEXT[rule].format(unit=unit)
    option = OPTIONS.get(name, name)
    fix = f"; e.g. {option} {example}" if option.startswith("-") else f"; e.g. {option} = {example}"
    if isinstance(value, str):
        return f"{label(name)} must be {want}, got the text {value!r} (write numbers without quotes){fix}"
    if isinstance(value, bool) or type(value).__name__ == "bool_" or not isinstance(value, numbers.Real):
        return f"{label(name)} must be {want}, got {show(value)}{fix}"
    x = float(value)
    if math.isnan(x) or math.isinf(x):
        return f"{label(name)} must be {want}, got {show(value)} (not a finite number){fix}"
    ok = {
        "positive": x > 0,
        "non_negative": x >= 0,
        "share": 0 < x <= 1,
        "count": x >= 1 and x == int(x),
        "whole": x >= 0 and x == int(x),
        "lon": -180 <= x <= 180,
        "lat": -90 <= x <= 90,
    }[rule]
    return None if ok else f"{label(name)} must be {want}, got {show(value)}{fix}"


def raise_problems(problems: list[str], *, where: str | None = None, files: bool = False) -> None:
    """Raise one error holding every problem (nothing if the list is empty).

    ``files=True`` raises :class:`InputFileError` (missing/unreadable files), else
    :class:`InputDataError`. The error's ``problems`` attribute lists them (with ``where``), so
    that a caller collecting problems of several kinds (:class:`Problems`) can report them flat.
    """
    if not problems:
        return
    n = len(problems)
    text = problems[0] if n == 1 else f"{n} problems: " + "; ".join(problems)
    cls = InputFileError if files else InputDataError
    err = cls(f"{where}: {text}" if where else text)
    err.problems = [f"{where}: {p}" if where else p for p in problems]  # type: ignore[attr-defined]
    raise err


class Problems:
    """Collect problems of every kind (files, values, output paths, errors raised by parsers), report once.

    >>> p = Problems()
    >>> p.values(cell_m=-1); p.files(candidates="/no/sites.csv")
    >>> with p.collect("--candidates-crs"):
    ...     raise InputDataError("unknown CRS 'x'")
    >>> p.raise_if_any()  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    lifecircle.errors.InputDataError: 3 problems: cell_m (--cell-m) must be ...; --candidates: file not found: ...; --candidates-crs: unknown CRS 'x'
    """

    def __init__(self) -> None:
        self.items: list[str] = []
        self._files_only = True

    def __bool__(self) -> bool:
        return bool(self.items)

    def add(self, problem: str | None, *, file: bool = False) -> None:
        if problem:
            self.items.append(problem)
            self._files_only &= file

    def values(self, **values: Any) -> None:
        for name, v in values.items():
            if v is not None:
                self.add(value_problem(name, v))

    def files(self, **paths: Any) -> None:
        for name, v in paths.items():
            for one in _paths(v):
                self.add(file_problem(one, OPTIONS.get(name, name)), file=True)

    def output(self, path: Any, option: str, *, folder: bool, example: str = "out.gpkg") -> None:
        if path is not None:
            self.add(output_problem(path, option, folder=folder, example=example), file=True)

    @contextlib.contextmanager
    def collect(self, prefix: str | None = None) -> Iterator[None]:
        """Turn a :class:`LifecircleError` raised inside into problems (prefixed with ``prefix``)."""
        try:
            yield
        except LifecircleError as exc:
            for p in getattr(exc, "problems", None) or [str(exc)]:
                self.add(f"{prefix}: {p}" if prefix else p, file=isinstance(exc, InputFileError))

    def raise_if_any(self, where: str | None = None) -> None:
        raise_problems(self.items, where=where, files=self._files_only)


def check_values(*, where: str | None = None, **values: Any) -> None:
    """Check keyword values under :data:`RULES` (None = not given, skipped); report all problems at once.

    >>> check_values(cell_m=100, k=None)
    >>> check_values(cell_m=0, time_limit_s=float("inf"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    lifecircle.errors.InputDataError: 2 problems: cell_m (--cell-m) must be a positive number of metres, got 0; ...
    """
    problems = [p for name, v in values.items() if v is not None for p in [value_problem(name, v)] if p]
    raise_problems(problems, where=where)


# --- paths ----------------------------------------------------------------------------------------


def _near_names(p: Path) -> str:
    """'; did you mean x.csv?' when the folder holds a name close to the one typed."""
    try:
        parent = p.parent if str(p.parent) else Path(".")
        names = [c.name for c in parent.iterdir()] if parent.is_dir() else []
    except OSError:
        return ""
    close = difflib.get_close_matches(p.name, names, n=1, cutoff=0.8)
    return f"; did you mean {parent / close[0]}?" if close else ""


def file_problem(path: Any, option: str) -> str | None:
    """What is wrong with an input file (missing, a folder, empty, unreadable), or None.

    >>> file_problem("/no/such/file.csv", "--facilities")
    '--facilities: file not found: /no/such/file.csv; check the name and the folder'
    """
    p = Path(os.path.expanduser(os.fspath(path)))
    try:
        if not p.exists():
            where = "" if p.is_absolute() else f" (relative paths start in {Path.cwd()})"
            hint = _near_names(p)
            return f"{option}: file not found: {p}{where}{hint or '; check the name and the folder'}"
        if p.is_dir():
            return f"{option}: {p} is a folder, not a file: give the file inside it"
        if not p.is_file():
            return f"{option}: {p} is not a regular file: give a data file"
        if p.stat().st_size == 0:
            return f"{option}: {p} is empty (0 bytes): export or copy it again"
        with open(p, "rb") as fh:
            fh.read(1)
    except PermissionError:
        return f"{option}: cannot read {p} (permission denied): make it readable (chmod +r) or copy it"
    except OSError as exc:
        return f"{option}: cannot read {p} ({exc.strerror or type(exc).__name__}): check the file"
    return None


def _paths(value: Any) -> Iterable[Any]:
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, (str, os.PathLike))]
    return []  # a GeoDataFrame, a Taxonomy, ...: nothing to check


def check_input_files(*, where: str | None = None, **paths: Any) -> None:
    """Check every given input path (``name=path``; lists allowed; None and in-memory data skipped).

    The option named in a message is ``OPTIONS[name]`` (``facilities`` -> ``--facilities``).

    >>> check_input_files(facilities=None, population="/no/pop.csv")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    lifecircle.errors.InputFileError: --population: file not found: /no/pop.csv; check the name and the folder
    """
    problems = [p for name, v in paths.items() for one in _paths(v)
                for p in [file_problem(one, OPTIONS.get(name, name))] if p]
    raise_problems(problems, where=where, files=True)


def output_problem(path: Any, option: str, *, folder: bool, example: str = "out.gpkg") -> str | None:
    """What stops writing ``path`` (a folder when ``folder``, else a file such as ``example``), or None."""
    p = Path(os.path.expanduser(os.fspath(path)))
    kind = "folder" if folder else "file"
    if p.exists():
        if folder and not p.is_dir():
            return f"{option}: {p} is a file, not a folder: give a folder name (or move the file away)"
        if not folder and p.is_dir():
            return f"{option}: {p} is a folder, not a file: give a file name such as {p / example}"
        target = p if folder else p.parent
    else:
        target = p.parent
        while not target.exists() and target != target.parent:
            target = target.parent
        if not target.is_dir():
            return f"{option}: cannot make the {kind} {p}: {target} is a file, not a folder; choose another path"
    target = target if str(target) else Path(".")
    if not os.access(target, os.W_OK | os.X_OK):
        return f"{option}: cannot write into {target} (permission denied): choose a folder you can write to"
    return None


def check_output_dir(path: Any, option: str = "--out") -> None:
    """Refuse an output folder that is a file, lies below a file or cannot be written."""
    raise_problems([p for p in [output_problem(path, option, folder=True)] if p], files=True)


def check_output_file(path: Any, option: str = "--out") -> None:
    """Refuse an output file that is a folder, lies below a file or cannot be written."""
    raise_problems([p for p in [output_problem(path, option, folder=False)] if p], files=True)


#: The comms a Dask scheduler address may use.
SCHEDULER_SCHEMES = ("tcp", "tls", "inproc", "ucx", "ws", "wss")
_SCHEDULER = re.compile(r"(?:(%s)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.\-]+):(\d{1,5})/?|inproc://\S+)"
                        % "|".join(s for s in SCHEDULER_SCHEMES if s != "inproc"))


def scheduler_problem(address: str) -> str | None:
    """What is wrong with a Dask scheduler address (``tcp://host:port``), or None.

    >>> scheduler_problem("tcp://10.0.0.5:8786") is None
    True
    >>> scheduler_problem("not a url")
    "--scheduler: 'not a url' is not a Dask scheduler address: give tcp://, tls://, inproc://, ucx:// HOST:PORT, e.g. tcp://10.0.0.5:8786"
    """
    m = _SCHEDULER.fullmatch(address.strip())
    if m is None or (m.group(3) is not None and not 0 < int(m.group(3)) < 65536):
        return (f"--scheduler: {address!r} is not a Dask scheduler address: give "
                f"{', '.join(s + '://' for s in SCHEDULER_SCHEMES[:4])} HOST:PORT, e.g. tcp://10.0.0.5:8786")
    return None
