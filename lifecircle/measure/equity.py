"""Equity between units and residents: population-weighted Gini, Theil T (with its decomposition), Palma, gaps.

The plans behind the 85 % target are about 均等化 (equalisation). An average can meet a target
while some districts, 街镇 or the rural residents are far below it; these indices say how unequal a
measure (coverage share, 2SFCA accessibility) is, each weighted by population:

* Lorenz curve: the cumulative share of the measure held by the cumulative share of people,
  sorted from the lowest value up (:func:`lorenz`);
* Gini: :math:`G = \\sum_i \\sum_j w_i w_j |x_i - x_j| \\,/\\, (2 W^2 \\mu)`, 0 = equal, 1 = one
  holds everything (:func:`gini`);
* Theil T: :math:`T = \\sum_i (w_i/W)(x_i/\\mu)\\ln(x_i/\\mu)` (with :math:`0 \\ln 0 = 0`), which splits
  exactly into between- and within-group parts for any grouping *g* (districts, urban/rural):
  :math:`T = \\sum_g s_g \\ln(\\mu_g/\\mu) + \\sum_g s_g T_g`, :math:`s_g = W_g\\mu_g / (W\\mu)`
  (:func:`theil_decomposition`);
* Palma ratio: the share held by the top 10 % of people over the share held by the bottom 40 %
  (read off the Lorenz curve, so a unit straddling a boundary is split; :func:`palma`).

Every function takes the values and the weights (population) and ignores NaN values.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["lorenz", "gini", "theil", "theil_decomposition", "palma", "weighted_mean", "equity_table", "INDICATORS",
           "EQUITY_COLUMNS"]


def _clean(values, weights=None) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(values, dtype=float)
    w = np.ones_like(x) if weights is None else np.broadcast_to(np.asarray(weights, dtype=float), x.shape)
    keep = np.isfinite(x) & np.isfinite(w) & (w > 0)
    if (x[keep] < 0).any():
        raise ValueError("inequality indices need values >= 0")
    return x[keep], w[keep]


def weighted_mean(values, weights=None) -> float:
    """Population-weighted mean (NaN when nobody is counted).

    >>> weighted_mean([1.0, 4.0], [3, 1])
    1.75
    """
    x, w = _clean(values, weights)
    return float((w * x).sum() / w.sum()) if w.sum() > 0 else float("nan")


def lorenz(values, weights=None) -> tuple[np.ndarray, np.ndarray]:
    """The Lorenz curve: cumulative population share and cumulative share of the total, from (0, 0).

    Examples
    --------
    Two units of 1 and 3 people holding 0 and 6 (say beds):

    >>> p, l = lorenz([0.0, 2.0], [1, 3])
    >>> p.tolist(), l.tolist()
    ([0.0, 0.25, 1.0], [0.0, 0.0, 1.0])
    """
    x, w = _clean(values, weights)
    order = np.argsort(x, kind="stable")
    x, w = x[order], w[order]
    p = np.concatenate([[0.0], np.cumsum(w)]) / w.sum()
    total = (w * x).sum()
    cum = np.concatenate([[0.0], np.cumsum(w * x)])
    l = cum / total if total > 0 else np.full_like(cum, np.nan)
    return p, l


def gini(values, weights=None) -> float:
    """Population-weighted Gini coefficient: 1 − twice the area under the Lorenz curve.

    Examples
    --------
    Four people holding 0, 0, 1 and 3 (mean 1): :math:`|x_i - x_j|` summed over the 16 ordered pairs
    is 2·(1 + 1 + 3 + 3 + 2) = 20, so G = 20 / (2 · 4² · 1) = 0.625.

    >>> gini([0, 0, 1, 3])
    0.625
    >>> gini([5, 5, 5]), gini([1, 0], [1, 3])
    (0.0, 0.75)
    """
    return _gini_of(*lorenz(values, weights))


def _gini_of(p: np.ndarray, l: np.ndarray) -> float:
    """:func:`gini` from the Lorenz curve ``p``, ``l`` (:func:`lorenz`)."""
    if not np.isfinite(l).all():
        return float("nan")
    return float(1.0 - np.sum((p[1:] - p[:-1]) * (l[1:] + l[:-1])))


def theil(values, weights=None) -> float:
    """Population-weighted Theil T index (0 = equal; ln of the population when one holds everything).

    >>> round(theil([0, 0, 1, 3]), 6)   # (1/4)(1/1)·ln(1/1) + (1/4)(3/1)·ln(3) = 0.75·ln 3
    0.823959
    """
    x, w = _clean(values, weights)
    mu = (w * x).sum() / w.sum() if w.sum() > 0 else 0.0
    if mu <= 0:
        return float("nan")
    r = x / mu
    return float(np.sum(w / w.sum() * np.where(r > 0, r * np.log(np.where(r > 0, r, 1.0)), 0.0)))


def theil_decomposition(values, weights, groups) -> dict[str, float]:
    """Theil T split into between- and within-group parts (``total = between + within`` exactly).

    ``groups`` labels each value (a district, ``urban``/``rural``); NaN labels form one group.

    Examples
    --------
    Two districts: A has people with 1 and 1, B with 0 and 2 — all inequality is inside B, and the
    districts' means (1 and 1) are equal, so between = 0:

    >>> d = theil_decomposition([1, 1, 0, 2], [1, 1, 1, 1], ["A", "A", "B", "B"])
    >>> round(d["between"], 9), round(d["within"], 6), round(d["total"], 6)   # 0.5·ln 2
    (0.0, 0.346574, 0.346574)
    """
    x = np.asarray(values, dtype=float)
    w = np.broadcast_to(np.asarray(weights, dtype=float), x.shape)
    g = pd.Series(np.asarray(groups, dtype=object)).fillna("(none)").astype(str).to_numpy()
    keep = np.isfinite(x) & np.isfinite(w) & (w > 0)
    x, w, g = x[keep], w[keep], g[keep]
    total = theil(x, w)
    if not np.isfinite(total):
        return {"total": float("nan"), "between": float("nan"), "within": float("nan")}
    mu = (w * x).sum() / w.sum()
    between = within = 0.0
    for label in pd.unique(g):
        m = g == label
        wg = w[m].sum()
        mug = (w[m] * x[m]).sum() / wg
        if mug <= 0:
            continue
        s = wg * mug / (w.sum() * mu)
        between += s * np.log(mug / mu)
        within += s * theil(x[m], w[m])
    return {"total": float(total), "between": float(between), "within": float(within)}


def palma(values, weights=None) -> float:
    """Palma ratio: share of the total held by the top 10 % of people over that of the bottom 40 %.

    ``inf`` when the bottom 40 % hold nothing, NaN when nobody holds anything.

    Examples
    --------
    Ten people holding 1, 1, …, 1 and 11: the top 10 % hold 11/20, the bottom 40 % hold 4/20.

    >>> palma([1] * 9 + [11])
    2.75
    """
    return _palma_of(*lorenz(values, weights))


def _palma_of(p: np.ndarray, l: np.ndarray) -> float:
    """:func:`palma` from the Lorenz curve ``p``, ``l`` (:func:`lorenz`)."""
    if not np.isfinite(l).all():
        return float("nan")
    bottom = float(np.interp(0.4, p, l))
    top = 1.0 - float(np.interp(0.9, p, l))
    return top / bottom if bottom > 0 else float("inf")


#: The measures :func:`equity_table` compares: the three 2SFCA ratios (per 1,000) and the coverage share.
INDICATORS = ("access_2sfca", "access_e2sfca", "access_g2sfca", "coverage")

EQUITY_COLUMNS = [
    "category", "group", "indicator", "level", "value_unit", "n", "population", "mean", "gini", "theil",
    "theil_between_unit", "theil_within_unit", "theil_between_district", "theil_within_district",
    "theil_between_urban_rural", "theil_within_urban_rural", "palma", "target", "units_meeting_target_share",
    "best_unit", "best_value", "worst_unit", "worst_value", "best_worst_gap", "urban_mean", "rural_mean",
    "urban_rural_gap",
]


def equity_table(residents, access, table, *, categories: Sequence[str], groups: Sequence[str], target: float,
                 standards: Mapping[str, float] | None = None, parents: Mapping[str, str] | None = None,
                 study_area: str = "study_area") -> pd.DataFrame:
    """Inequality of each measure across residents and across units, per category and group.

    Parameters
    ----------
    residents : DataFrame
        ``population``, the group columns, ``minutes_to_<category>``, and ``unit`` / ``urban`` when known.
    access : DataFrame
        Per resident, from :func:`lifecircle.measure.accessibility.supply_demand` (``.residents``).
    table : DataFrame
        Per unit, from :func:`lifecircle.measure.accessibility.accessibility_table`.
    categories, groups : sequence of str
        ``groups`` includes ``population`` (the whole population).
    target : float
        The coverage target share (units meeting it are counted).
    standards : mapping, optional
        ``{category: capacity per 1,000}``: the access target of a category's units.
    parents : mapping, optional
        ``{unit: district}`` for the between/within-district Theil decomposition.

    Returns
    -------
    DataFrame
        One row per (category, group, indicator, level) with :data:`EQUITY_COLUMNS`: ``level`` is
        ``residents`` (every resident point, weighted by its people) or ``units`` (each unit's
        value, weighted by its people); access values are per 1,000 people, coverage a share.
        ``theil_between_*`` + ``theil_within_*`` = ``theil`` for each grouping.
    """
    from .accessibility import POPULATION, access_column, group_minutes_column
    from ..config import minutes_column

    unit = residents["unit"].to_numpy(dtype=object) if "unit" in residents else None
    has_units = unit is not None and pd.notna(unit).any()
    urban = residents["urban"].to_numpy(dtype=bool) if "urban" in residents else None
    district = (np.array([parents.get(u) if u is not None and u == u else None for u in unit], dtype=object)
                if has_units and parents else None)
    units_t = table[table["unit"] != study_area]
    rows = []
    for cat in categories:
        for g in groups:
            w = residents["population" if g == POPULATION else g].to_numpy(dtype=float)
            for ind in INDICATORS:
                if ind == "coverage":
                    mcol = group_minutes_column(cat, g)
                    mins = (access[mcol] if mcol in access else residents[minutes_column(cat)]).to_numpy(float)
                    x = (mins <= float(table["minutes"].iloc[0])).astype(float)
                    col, goal, vunit = "coverage_share", target, "share of people"
                else:
                    method = ind.split("_", 1)[1]
                    x = 1000.0 * access[access_column(method, cat, None if g == POPULATION else g)].to_numpy(float)
                    dg = table.loc[table["category"] == cat, "demand_group"].iloc[0] if "demand_group" in table \
                        else POPULATION
                    col, goal = f"{ind}_per_1000", (standards or {}).get(cat) if dg == g else None
                    vunit = "per 1,000 people" if dg == POPULATION else f"per 1,000 of {dg}"
                rows.append(_row(cat, g, ind, "residents", vunit, x, w, goal,
                                 {"unit": unit if has_units else None, "district": district, "urban_rural":
                                  None if urban is None else np.where(urban, "urban", "rural")}, urban))
                if has_units:
                    t = units_t[(units_t["category"] == cat) & (units_t["group"] == g)]
                    ux, uw = t[col].to_numpy(float), t["population"].to_numpy(float)
                    ud = (np.array([parents.get(u) for u in t["unit"]], dtype=object) if parents else None)
                    r = _row(cat, g, ind, "units", vunit, ux, uw, goal, {"district": ud}, None)
                    ok = (uw > 0) & np.isfinite(ux)
                    if ok.any():
                        names, vals = t["unit"].to_numpy()[ok], ux[ok]
                        b, k = int(np.argmax(vals)), int(np.argmin(vals))
                        r.update(best_unit=names[b], best_value=float(vals[b]), worst_unit=names[k],
                                 worst_value=float(vals[k]), best_worst_gap=float(vals[b] - vals[k]))
                        if goal is not None:
                            r["units_meeting_target_share"] = float(np.mean(vals >= goal - 1e-12))
                    rows.append(r)
    return pd.DataFrame(rows, columns=EQUITY_COLUMNS)


def _row(cat, group, indicator, level, vunit, x, w, goal, groupings, urban) -> dict:
    x = np.asarray(x, dtype=float)
    w = np.asarray(w, dtype=float)
    curve = lorenz(x, w)  # one sort for the Gini and the Palma ratio
    r = {"category": cat, "group": group, "indicator": indicator, "level": level, "value_unit": vunit,
         "n": int(np.sum(w > 0)), "population": float(w.sum()), "mean": weighted_mean(x, w), "gini": _gini_of(*curve),
         "theil": theil(x, w), "palma": _palma_of(*curve), "target": np.nan if goal is None else float(goal)}
    for name, labels in groupings.items():
        if labels is not None:
            d = theil_decomposition(x, w, labels)
            r[f"theil_between_{name}"], r[f"theil_within_{name}"] = d["between"], d["within"]
    if urban is not None:
        u = weighted_mean(x[urban], w[urban]) if urban.any() else float("nan")
        v = weighted_mean(x[~urban], w[~urban]) if (~urban).any() else float("nan")
        r.update(urban_mean=u, rural_mean=v, urban_rural_gap=u - v)
    return r
