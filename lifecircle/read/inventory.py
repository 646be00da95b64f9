"""Count facilities per unit and category, and compare them with official counts."""

from __future__ import annotations

import os

import pandas as pd

from ..config import CATEGORIES
from .census import normalise_unit_name
from ..errors import InputDataError

__all__ = ["count_table", "compare_with_official", "normalise_unit_name"]

def count_table(facilities, *, unit_column: str = "unit", by: str = "category"):
    """Facilities per unit (rows) and ``category`` or ``subcategory`` (columns), with a total row.

    >>> import geopandas as gpd
    >>> f = gpd.GeoDataFrame({"unit": ["A", "A", "B"], "category": ["health", "sports", "health"]}, geometry=[None] * 3)
    >>> int(count_table(f).loc["total", "health"])
    2
    """
    t = pd.crosstab(facilities[unit_column].fillna("(outside units)"), facilities[by])
    if by == "category":
        t = t.reindex(columns=list(CATEGORIES), fill_value=0)
    t.loc["total"] = t.sum()
    t.index.name = unit_column
    return t


def compare_with_official(facilities, official: str | os.PathLike[str] | pd.DataFrame, *,
                          subcategory: str = "community_health_centre", unit_column: str = "unit"):
    """Found vs official counts per unit, e.g. community health centres per district.

    ``official`` is a table with a unit name column (``district``/``name``/``区``…) and a
    ``count`` column; summary rows (合计…) are ignored. Names are joined after
    :func:`normalise_unit_name`. Returns ``unit, found, official, found_share``.
    """
    from .files import find_column, read_table

    df = official if isinstance(official, pd.DataFrame) else read_table(official, what="official counts")
    name_c = find_column(df.columns, None, ("district", "name", "unit", "区", "名称", "街道"), what="official counts",
                         option="a 'district' column")
    count_c = find_column(df.columns, None, ("count", "数量", "official", "n"), what="official counts",
                          option="a 'count' column")
    df = df[~df[name_c].astype(str).str.contains("合计|总计|全市|total", case=False)]
    off = pd.Series(pd.to_numeric(df[count_c], errors="coerce").to_numpy(),
                    index=[normalise_unit_name(n) for n in df[name_c]])
    sel = facilities[facilities["subcategory"] == subcategory]
    found = sel[unit_column].dropna().map(normalise_unit_name).value_counts()
    units = facilities[unit_column].dropna().map(normalise_unit_name).unique()
    missing = sorted(set(off.index) - set(units))
    if len(missing) == len(off):
        raise InputDataError(f"official counts: no unit name matches the facilities' units ({', '.join(missing[:5])}…); "
                             "check the names or the --units file")
    out = pd.DataFrame({"unit": off.index, "found": [int(found.get(u, 0)) for u in off.index], "official": off.to_numpy()})
    out["found_share"] = (out["found"] / out["official"]).round(3)
    total = pd.DataFrame({"unit": ["total"], "found": [out.found.sum()], "official": [out.official.sum()]})
    total["found_share"] = (total["found"] / total["official"]).round(3)
    return pd.concat([out, total], ignore_index=True)
