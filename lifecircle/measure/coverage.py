"""Population-weighted coverage: share of residents within N minutes, per category and unit, vs the target."""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np
import pandas as pd

from ..config import ALL, DEFAULT_TARGET, minutes_column

__all__ = ["STUDY_AREA", "add_all_column", "coverage_table", "COVERAGE_COLUMNS"]

#: ``unit`` value of the rows covering the whole study area.
STUDY_AREA = "study_area"
COVERAGE_COLUMNS = [
    "unit", "category", "minutes", "population", "covered_population", "share", "target",
    "meets_target", "population_to_cover",
]


def add_all_column(minutes: pd.DataFrame, categories: Iterable[str]) -> pd.DataFrame:
    """Add ``minutes_to_all``: the walk to the farthest of the nearest facilities (complete life circle).

    >>> df = pd.DataFrame({"minutes_to_health": [3.0, 20.0], "minutes_to_sports": [9.0, 1.0]})
    >>> add_all_column(df, ["health", "sports"])["minutes_to_all"].tolist()
    [9.0, 20.0]
    """
    cols = [minutes_column(c) for c in categories]
    out = minutes.copy()
    out[minutes_column(ALL)] = out[cols].max(axis=1, skipna=False)
    return out


def coverage_table(
    residents: pd.DataFrame,
    *,
    categories: Iterable[str],
    minutes: Iterable[float] = (5, 10, 15),
    target: float = DEFAULT_TARGET,
    unit_column: str | None = None,
) -> pd.DataFrame:
    """Tidy coverage table: one row per (unit, category, minutes).

    Parameters
    ----------
    residents : DataFrame
        ``population`` and ``minutes_to_<category>`` columns (``inf`` = not reachable).
    categories : iterable of str
        Categories to report; ``all`` (every category within the limit) is added.
    minutes : iterable of float
        Thresholds.
    target : float
        Share to reach; ``population_to_cover`` is how many more residents must be covered
        (rounded up to whole people) to reach it.
    unit_column : str, optional
        Column naming each resident's area unit; rows for each unit follow the study-area rows.

    Examples
    --------
    Three residents (10, 30, 60 people) at 4, 12 and 20 minutes from a clinic:

    >>> df = pd.DataFrame({"population": [10, 30, 60], "minutes_to_health": [4, 12, 20.0]})
    >>> t = coverage_table(df, categories=["health"], minutes=[5, 15])
    >>> t[t.category == "health"][["minutes", "covered_population", "share", "population_to_cover"]].to_numpy().tolist()
    [[5.0, 10.0, 0.1, 75.0], [15.0, 40.0, 0.4, 45.0]]
    """
    cats = list(categories)
    thresholds = sorted(float(m) for m in minutes)
    df = add_all_column(residents, cats) if len(cats) > 1 or ALL not in cats else residents
    cats_all = cats + [ALL] if len(cats) > 1 else cats
    pop = residents["population"].to_numpy(dtype=float)
    groups: list[tuple[str, np.ndarray]] = [(STUDY_AREA, np.ones(len(df), dtype=bool))]
    if unit_column is not None:
        units = df[unit_column]
        for name in sorted(units.dropna().unique(), key=str):
            groups.append((str(name), (units == name).to_numpy()))
    rows = []
    for unit, mask in groups:
        p = pop[mask]
        total = float(p.sum())
        for cat in cats_all:
            mins = df[minutes_column(cat)].to_numpy(dtype=float)[mask]
            for m in thresholds:
                covered = float(p[mins <= m].sum())
                share = min(covered / total, 1.0) if total > 0 else float("nan")  # summation order can give 1 + 1e-16
                need = max(0.0, math.ceil(target * total - covered - 1e-9)) if total > 0 else 0.0
                rows.append((unit, cat, m, total, covered, share, target,
                             bool(total > 0 and share >= target - 1e-12), float(need)))
    return pd.DataFrame(rows, columns=COVERAGE_COLUMNS)
