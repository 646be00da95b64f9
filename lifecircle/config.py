"""Analysis parameters: one validated, immutable object written into every output."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from .errors import InputDataError, InputFileError
from .validate import file_problem, raise_problems, show, value_problem

__all__ = [
    "share_column",
    "CATEGORIES",
    "ALL",
    "DEFAULT_WALK_SPEED_KMH",
    "DEFAULT_TARGET",
    "TARGET_SOURCE",
    "SPEED_SOURCE",
    "AnalysisConfig",
    "minutes_column",
    "within_column",
]

#: The four facility categories of the Shanghai 15-minute life circle target.
CATEGORIES: tuple[str, ...] = ("health", "elderly_care", "culture", "sports")
#: Key used for "every category within the limit" (the complete life circle).
ALL = "all"

#: 4 km/h = 1000 m in 15 minutes, the upper end of GB 50180-2018's 800-1000 m.
DEFAULT_WALK_SPEED_KMH = 4.0
SPEED_SOURCE = (
    "GB 50180-2018 城市居住区规划设计标准, 2.0.3: the 15-minute life circle is the area within "
    "800-1000 m of walking; 4 km/h walks 1000 m in 15 minutes"
)
DEFAULT_TARGET = 0.85
TARGET_SOURCE = (
    "上海市基本公共服务\"十四五\"规划 (沪府发〔2021〕5号): 卫生、养老、文化、体育等城镇社区公共服务设施"
    "15分钟步行可达覆盖率达到85%左右"
)


#: The facility standards shipped in ``lifecircle/data/standards`` (see :mod:`lifecircle.read.standards`).
STANDARDS = ("shanghai-community", "gb50180-2018", "all")


def minutes_column(category: str) -> str:
    """Name of the column holding walking minutes to the nearest facility of ``category``.

    >>> minutes_column("health")
    'minutes_to_health'
    """
    return f"minutes_to_{category}"


def within_column(category: str, minutes: float) -> str:
    """Name of the boolean column "within ``minutes`` of ``category``".

    >>> within_column("sports", 15)
    'within_15min_sports'
    """
    return f"within_{_fmt_minutes(minutes)}min_{category}"


def share_column(category: str, minutes: float) -> str:
    """Name of a unit's coverage-share column in ``units.gpkg``: "share of ``category`` within ``minutes``".

    >>> share_column("health", 15)
    'share_health_15min'
    """
    return f"share_{category}_{_fmt_minutes(minutes)}min"


def _fmt_minutes(minutes: float) -> str:
    return f"{minutes:g}"


@dataclasses.dataclass(frozen=True)
class AnalysisConfig:
    """Every parameter of a coverage analysis, validated on creation.

    Parameters
    ----------
    minutes : tuple of float
        Walking-time thresholds; coverage is reported at each. The largest is the
        headline threshold (15 for the life circle).
    walk_speed_kmh : float
        Walking speed. Default 4 km/h (see ``SPEED_SOURCE``).
    target : float
        Coverage share a category must reach, 0..1. Default 0.85 (see ``TARGET_SOURCE``).
    max_snap_m : float
        Points farther than this from any walkable street are reported as unsnapped.
    categories : tuple of str
        Categories analysed; ``all`` is computed over exactly these.
    max_minutes : float or None
        Cut-off of the shortest-path search. Walking times above it are reported as
        infinite ("not reachable within max_minutes"). Default: twice the largest threshold.
    standard : str
        Which found facilities count (:mod:`lifecircle.read.standards`): ``shanghai-community``
        (community-level public facilities, the 85 % target's definition), ``gb50180-2018`` (the
        same by 15/10/5-minute tier), ``all`` (every facility the taxonomy finds), a TOML file of
        your own, or ``auto`` (default): shanghai-community in China, all elsewhere.
    snap_main_component : bool
        Residents and facilities join the nearest edge of the network's largest connected part
        only (not a fragment cut off from it, e.g. by a clipped extract). Default False.

    Examples
    --------
    >>> cfg = AnalysisConfig(minutes=(5, 10, 15))
    >>> cfg.headline_minutes, cfg.max_dist_m
    (15.0, 2000.0)
    >>> AnalysisConfig(walk_speed_kmh=0)
    Traceback (most recent call last):
    ...
    lifecircle.errors.InputDataError: walk_speed_kmh (--speed-kmh) must be a positive number of km/h, got 0; e.g. --speed-kmh 4
    """

    minutes: tuple[float, ...] = (5.0, 10.0, 15.0)
    walk_speed_kmh: float = DEFAULT_WALK_SPEED_KMH
    target: float = DEFAULT_TARGET
    max_snap_m: float = 500.0
    categories: tuple[str, ...] = CATEGORIES
    max_minutes: float | None = None
    standard: str = "auto"
    snap_main_component: bool = False

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not isinstance(self.standard, str) or not (
                self.standard in ("auto", *STANDARDS) or self.standard.lower().endswith(".toml")):
            problems.append(f"unknown standard {self.standard!r}: choose auto, {', '.join(STANDARDS)} or give a "
                            "TOML file of your own (--standard FILE.toml)")
        minutes = _minutes(self.minutes, problems)
        object.__setattr__(self, "minutes", tuple(sorted(set(minutes))))
        for name in ("walk_speed_kmh", "target", "max_snap_m"):
            problem = value_problem(name, getattr(self, name))
            if problem:
                problems.append(problem)
            else:
                object.__setattr__(self, name, float(getattr(self, name)))
        raw = self.categories
        cats = (raw,) if isinstance(raw, str) else tuple(raw) if _is_list(raw) else None
        if cats is None:
            problems.append(f"categories (--categories) must be a list of names such as "
                            f"[{', '.join(map(repr, CATEGORIES))}], got {show(raw)}")
            cats = ()
        else:
            unknown = [c for c in cats if c not in CATEGORIES]
            if unknown or not cats:
                problems.append(f"categories (--categories): unknown {show(unknown) if unknown else '(none given)'}; "
                                f"choose from {', '.join(CATEGORIES)}")
        object.__setattr__(self, "categories", tuple(c for c in CATEGORIES if c in cats))
        if self.max_minutes is not None:
            problem = value_problem("max_minutes", self.max_minutes)
            if problem:
                problems.append(problem)
            elif minutes and self.max_minutes < max(minutes):
                problems.append(
                    f"max_minutes (--max-minutes) {show(self.max_minutes)} is below the largest threshold "
                    f"({max(minutes):g}); raise --max-minutes or lower --minutes"
                )
            else:
                object.__setattr__(self, "max_minutes", float(self.max_minutes))
        raise_problems(problems)

    @property
    def headline_minutes(self) -> float:
        """The largest threshold: the one ``share`` and ``meets_target`` refer to."""
        return self.minutes[-1]

    @property
    def cutoff_minutes(self) -> float:
        """Shortest-path search limit in minutes."""
        return self.max_minutes if self.max_minutes is not None else 2 * self.headline_minutes

    @property
    def metres_per_minute(self) -> float:
        """Walking speed in metres per minute."""
        return self.walk_speed_kmh * 1000.0 / 60.0

    @property
    def max_dist_m(self) -> float:
        """Shortest-path search limit in metres."""
        return self.cutoff_minutes * self.walk_speed_kmh * 1000.0 / 60.0

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON view, with the sources of the defaults."""
        d = dataclasses.asdict(self)
        d["minutes"] = list(self.minutes)
        d["categories"] = list(self.categories)
        d["cutoff_minutes"] = self.cutoff_minutes
        d["target_source"] = TARGET_SOURCE
        d["walk_speed_source"] = SPEED_SOURCE
        return d

    @classmethod
    def from_toml(cls, path: str | Path, **overrides: Any) -> "AnalysisConfig":
        """Read parameters from the ``[analysis]`` table of a TOML file; ``overrides`` win."""

        data = read_toml(path, what="config")
        where = f"{path} [analysis]" if "analysis" in data else str(path)
        return cls.from_dict(data.get("analysis", data), where=where, **overrides)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "parameters", strict: bool = True,
                  **overrides: Any) -> "AnalysisConfig":
        """Parameters from a plain mapping (a TOML table, a batch plan, ``summary.json``'s ``parameters``).

        Lists become tuples; ``overrides`` that are not None win. ``strict`` rejects keys that are
        not fields (``summary.json`` also records derived values, so it is read with ``strict=False``).
        Every error names ``where``.

        >>> AnalysisConfig.from_dict({"minutes": [15, 5], "target_source": "x"}, strict=False).minutes
        (5.0, 15.0)
        """
        fields = [f.name for f in dataclasses.fields(cls)]
        if not isinstance(data, Mapping):
            raise InputDataError(f"{where}: the parameters must be a table of {', '.join(fields)} "
                                 f"(got {type(data).__name__} {show(data)[:60]})")
        unknown = sorted(set(data) - set(fields))
        if strict and unknown:
            raise InputDataError(f"{where}: unknown key{'s' if len(unknown) > 1 else ''} "
                                 f"{', '.join(map(repr, unknown))}; valid keys are {', '.join(fields)}")
        values = {k: v for k, v in data.items() if k in fields}
        values.update({k: v for k, v in overrides.items() if v is not None})
        for k in ("minutes", "categories"):
            if isinstance(values.get(k), list):
                values[k] = tuple(values[k])
        try:
            return cls(**values)
        except InputDataError as exc:
            found = getattr(exc, "problems", [str(exc)])
        # a problem with a value given as an override (the command line) is not blamed on ``where``
        given = {k for k, v in overrides.items() if v is not None}
        raise_problems([p if p.split(" ", 1)[0] in given else f"{where}: {p}" for p in found])
        raise AssertionError("unreachable")  # pragma: no cover


def _is_list(x: Any) -> bool:
    return isinstance(x, Iterable) and not isinstance(x, (str, bytes, Mapping))


def _minutes(values: Any, problems: list[str]) -> tuple[float, ...]:
    """The thresholds as floats; every bad one is a problem (text such as "15" too: it is not iterated)."""
    values = tuple(values) if _is_list(values) else (values,)
    if not values:
        problems.append("minutes (--minutes) needs at least one threshold; e.g. --minutes 5,10,15")
        return ()
    bad = [p for p in (value_problem("minutes", v) for v in values) if p]
    if bad:
        problems.append(bad[0] if len(values) == 1 else
                        f"minutes (--minutes) must be positive numbers of minutes, got {show(list(values))}; "
                        "e.g. --minutes 5,10,15")
        return ()
    return tuple(float(v) for v in values)


def read_toml(path: str | os.PathLike[str], *, what: str) -> dict[str, Any]:
    """Read a TOML file; a missing or invalid file is a one-line :class:`InputFileError`."""
    import tomllib

    problem = file_problem(path, f"{what} file")
    if problem:
        raise InputFileError(problem)
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise InputFileError(f"{what} file {path} is not valid TOML: {exc}; fix that line") from None
    except UnicodeDecodeError:
        raise InputFileError(f"{what} file {path} is not UTF-8 text: save it as UTF-8 (TOML files must be)") from None
    except OSError as exc:
        raise InputFileError(f"cannot read the {what} file {path} ({exc.strerror})") from None
