"""Equity indices: Gini, Theil T (and its decomposition) and Palma by hand and against independent numpy
formulas written here (pairwise Gini, Theil from its definition, Palma over expanded individuals)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lifecircle.measure.equity import equity_table, gini, lorenz, palma, theil, theil_decomposition, weighted_mean


def test_by_hand():
    """Three units with values 1, 2, 4 and populations 2, 1, 1 (mean (2 + 2 + 4)/4 = 2).

    Gini: Σ w_i w_j |x_i − x_j| over ordered pairs = 2·(2·1·1 + 2·1·3 + 1·1·2) = 20; 20 / (2·4²·2) = 0.3125.
    Theil: (2/4)(1/2)ln(1/2) + (1/4)(1)ln 1 + (1/4)(2)ln 2 = 0.25 ln 2 = 0.1732868.
    Lorenz (p, L): (0, 0), (.5, .25), (.75, .5), (1, 1); L(0.4) = 0.2, L(0.9) = 0.8, so Palma = 0.2 / 0.2 = 1.
    """
    x, w = [4.0, 1.0, 2.0], [1, 2, 1]
    assert gini(x, w) == pytest.approx(0.3125, abs=1e-12)
    assert theil(x, w) == pytest.approx(0.25 * math.log(2), abs=1e-12)
    assert palma(x, w) == pytest.approx(1.0, abs=1e-12)
    p, l = lorenz(x, w)
    assert p.tolist() == [0, 0.5, 0.75, 1] and l.tolist() == [0, 0.25, 0.5, 1]
    assert weighted_mean(x, w) == 2.0


def test_extremes():
    assert gini([3, 3, 3], [1, 5, 2]) == pytest.approx(0, abs=1e-12) and theil([3, 3], [1, 2]) == pytest.approx(0)
    assert gini([0, 0, 0, 5]) == pytest.approx(0.75)  # one of four holds everything: 1 − 1/n
    assert theil([0, 0, 0, 5]) == pytest.approx(math.log(4))
    assert palma([0, 0, 0, 0, 1, 1, 1, 1, 1, 1]) == math.inf  # the bottom 40 % hold nothing
    assert math.isnan(gini([0, 0])) and math.isnan(theil([0, 0]))
    assert gini([1.0, np.nan, 3.0], [1, 1, 1]) == pytest.approx(gini([1.0, 3.0]))  # NaN (no residents) ignored


def _gini_pairwise(x, w):
    x, w = np.asarray(x, float), np.asarray(w, float)
    mu = (w * x).sum() / w.sum()
    return (w[:, None] * w[None, :] * np.abs(x[:, None] - x[None, :])).sum() / (2 * w.sum() ** 2 * mu)


def _theil_direct(x, w):
    x, w = np.asarray(x, float), np.asarray(w, float)
    mu = (w * x).sum() / w.sum()
    s = w / w.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(x > 0, s * (x / mu) * np.log(x / mu), 0.0)
    return terms.sum()


def _palma_individuals(x, w):
    """Expand integer weights into individuals, sort, and take the shares of the bottom 40 % and top 10 %
    (a person straddling the boundary counts in part)."""
    people = np.sort(np.repeat(np.asarray(x, float), np.asarray(w, int)))
    n, total = people.size, people.sum()
    cum = np.concatenate([[0.0], np.cumsum(people)])

    def held(k):  # by the first k (fractional) people
        i = int(math.floor(k + 1e-12))
        return cum[i] + (k - i) * (people[i] if i < n else 0.0)
    bottom = held(0.4 * n) / total
    top = 1 - held(0.9 * n) / total
    return top / bottom if bottom > 0 else math.inf


#: values are 0 or at least 1e-6 (subnormal floats break the test's own direct formulas, not the code)
values = st.one_of(st.just(0.0), st.floats(1e-6, 1000))
units = st.lists(st.tuples(values, st.integers(1, 6)), min_size=1, max_size=25)


@settings(max_examples=150, deadline=None)
@given(units)
def test_against_independent_formulas(data):
    x = [v for v, _ in data]
    w = [k for _, k in data]
    assume(sum(a * b for a, b in zip(x, w)) > 1e-6)
    assert gini(x, w) == pytest.approx(_gini_pairwise(x, w), abs=1e-9)
    assert theil(x, w) == pytest.approx(_theil_direct(x, w), abs=1e-9)
    want = _palma_individuals(x, w)
    got = palma(x, w)
    assert got == want if math.isinf(want) else got == pytest.approx(want, rel=1e-9)
    # weights are people: repeating each unit w times gives the same Gini and Theil unweighted
    rep = np.repeat(x, w)
    assert gini(rep) == pytest.approx(gini(x, w), abs=1e-9)
    assert theil(rep) == pytest.approx(theil(x, w), abs=1e-9)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(values, st.floats(0.1, 50), st.sampled_from("abcd")),
                min_size=1, max_size=30))
def test_theil_between_plus_within_is_the_total(data):
    x, w, g = (np.array(v) for v in zip(*data))
    assume((x * w).sum() > 1e-6)
    d = theil_decomposition(x, w, g)
    assert d["between"] + d["within"] == pytest.approx(d["total"], abs=1e-9)
    assert d["total"] == pytest.approx(_theil_direct(x, w), abs=1e-9)
    # between: Σ_g s_g ln(μ_g/μ) and within: Σ_g s_g T_g, each computed here from the definition
    mu = (w * x).sum() / w.sum()
    between = within = 0.0
    for label in set(g):
        m = g == label
        mug = (w[m] * x[m]).sum() / w[m].sum()
        if mug > 0:
            s = w[m].sum() * mug / (w.sum() * mu)
            between += s * math.log(mug / mu)
            within += s * _theil_direct(x[m], w[m])
    assert d["between"] == pytest.approx(between, abs=1e-9) and d["within"] == pytest.approx(within, abs=1e-9)
    assert d["between"] >= -1e-12 and d["within"] >= -1e-12


def test_equity_table_by_district_and_urban_rural():
    """Four 街镇 in two districts: 甲 (A 1, B 1 per person) and 乙 (C 0, D 2); one person per resident point,
    one point per unit except B. Between districts the means are equal (1 and 1): all of Theil's
    0.5·ln 2 lies within 乙. Urban (A, B) vs rural (C, D): means 1 and 1, gap 0."""
    residents = pd.DataFrame({"population": [1.0, 1, 1, 1], "unit": ["A", "B", "C", "D"],
                              "urban": [True, True, False, False], "minutes_to_health": [1.0, 20, 1, 1]})
    access = pd.DataFrame({"access_2sfca_health": [0.001, 0.001, 0.0, 0.002]})
    for m in ("e2sfca", "g2sfca"):
        access[f"access_{m}_health"] = access["access_2sfca_health"]
    table = pd.DataFrame({"unit": ["study_area", "A", "B", "C", "D"], "category": "health", "group": "population",
                          "demand_group": "population", "minutes": 15.0, "population": [4.0, 1, 1, 1, 1],
                          "access_2sfca_per_1000": [1.0, 1, 1, 0, 2], "coverage_share": [0.75, 1, 0, 1, 1]})
    for m in ("e2sfca", "g2sfca"):
        table[f"access_{m}_per_1000"] = table["access_2sfca_per_1000"]
    eq = equity_table(residents, access, table, categories=["health"], groups=["population"], target=0.85,
                      standards={"health": 1.0}, parents={"A": "甲", "B": "甲", "C": "乙", "D": "乙"})
    r = eq[(eq.indicator == "access_2sfca") & (eq.level == "units")].iloc[0]
    assert r.theil == pytest.approx(0.5 * math.log(2)) and r.theil_between_district == pytest.approx(0, abs=1e-12)
    assert r.theil_within_district == pytest.approx(0.5 * math.log(2))
    assert r.worst_unit == "C" and r.best_unit == "D" and r.best_worst_gap == 2
    assert r.units_meeting_target_share == 0.75  # A, B, D reach 1 per 1,000
    res = eq[(eq.indicator == "access_2sfca") & (eq.level == "residents")].iloc[0]
    assert res.urban_mean == 1 and res.rural_mean == 1 and res.urban_rural_gap == 0
    assert res.theil_between_unit == pytest.approx(res.theil)  # one point per unit: all between units
    cov = eq[(eq.indicator == "coverage") & (eq.level == "units")].iloc[0]
    assert cov.units_meeting_target_share == 0.75 and cov.worst_unit == "B" and cov["mean"] == 0.75
    cov_r = eq[(eq.indicator == "coverage") & (eq.level == "residents")].iloc[0]
    assert cov_r.urban_mean == 0.5 and cov_r.rural_mean == 1 and cov_r.urban_rural_gap == -0.5
