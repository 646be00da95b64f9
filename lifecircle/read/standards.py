"""Facility standards: which found facilities count for an indicator, as which type and at which tier.

The taxonomy (``data/taxonomy.toml``) finds everything that *is* a health, elderly-care, culture or
sports facility. A standard (``data/standards/*.toml``) then decides what the indicator counts:

* ``shanghai-community`` — the facilities the 85 % target is about: community-level public ones
  (社区卫生服务中心 and its stations, not hospitals, private clinics or dentists; 长者照护之家 and
  日间照料中心; 社区文化活动中心 and libraries; 市民健身中心, public pitches and fitness points, not
  commercial gyms), each rule with its source;
* ``gb50180-2018`` — the same facilities by GB 50180-2018 tier: each type at its own walking time
  (15, 10 or 5 minutes), non-inclusive, so a complete life circle needs every tier;
* ``all`` — every facility the taxonomy finds (the behaviour before standards existed).

``auto`` (the default of :func:`lifecircle.analyze`) is ``shanghai-community`` for a study area in
China and ``all`` elsewhere, and the choice is written into summary.json.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..config import CATEGORIES, STANDARDS, read_toml
from ..errors import InputDataError

log = logging.getLogger("lifecircle")

__all__ = ["ATTRIBUTE_TAGS", "STANDARDS", "FacilityRule", "Standard", "load_standard", "resolve_standard",
           "apply_standard", "decisions_table", "ProvisionRatio", "load_ratios"]

#: OSM tags kept as facility columns so that a standard can judge a facility (public/private, fee, access).
ATTRIBUTE_TAGS = ("amenity", "leisure", "healthcare", "social_facility", "sport", "access", "fee", "operator:type")

#: Lon/lat box of China used by ``auto`` (a study area whose centre lies inside uses shanghai-community).
_CHINA_BOX = (73.5, 18.0, 135.1, 53.6)


@dataclass(frozen=True)
class FacilityRule:
    """A ``[[drop]]`` or ``[[type]]`` rule of a standard file (format: ``shanghai-community.toml``)."""

    key: str
    category: str | None = None
    names: tuple[str, ...] = ()
    exclude_names: tuple[str, ...] = ()
    subcategories: tuple[str, ...] = ()
    tags: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    minutes: float | None = None
    label: str = ""
    label_en: str = ""
    service_population: tuple[float, float] | None = None
    source: str = ""
    named: bool | None = None  # True: only facilities with a name; False: only unnamed ones

    def matches(self, facilities) -> np.ndarray:
        """Which rows of a facility frame this rule matches (vectorised, one regex per rule)."""
        n = len(facilities)
        cat = facilities["category"].astype(str).to_numpy() if "category" in facilities else np.full(n, "")
        names = (facilities["name"] if "name" in facilities else pd.Series([None] * n, index=facilities.index))
        names = names.where(names.notna(), "").astype(str)
        hit = np.zeros(n, dtype=bool)
        if self.names:
            hit |= names.str.contains("|".join(map(re.escape, self.names)), regex=True).to_numpy()
        if self.subcategories:
            sub = facilities["subcategory"].astype(str).to_numpy() if "subcategory" in facilities else np.full(n, "")
            hit |= np.ones(n, bool) if "*" in self.subcategories else np.isin(sub, self.subcategories)
        for key, values in self.tags.items():
            if key in facilities:
                hit |= facilities[key].astype(object).isin(values).to_numpy()
        if self.category is not None:
            hit &= cat == self.category
        if self.named is not None:
            hit &= (names.str.strip() != "").to_numpy() == self.named
        if self.exclude_names:
            hit &= ~names.str.contains("|".join(map(re.escape, self.exclude_names)), regex=True).to_numpy()
        return hit


@dataclass(frozen=True)
class Standard:
    """A facility standard: drop rules, then type rules (first match wins), and their sources.

    Examples
    --------
    >>> s = load_standard("gb50180-2018")
    >>> s.tiered, sorted({t.minutes for t in s.types})
    (True, [5.0, 10.0, 15.0])
    >>> [t.key for t in s.types if t.category == "health"]
    ['health_service_centre', 'health_station']
    """

    name: str
    title: str
    title_en: str
    tiered: bool
    sources: Mapping[str, str]
    drops: tuple[FacilityRule, ...]
    types: tuple[FacilityRule, ...]
    path: str

    def type_rule(self, key: str) -> FacilityRule:
        return next(t for t in self.types if t.key == key)

    def describe(self) -> dict[str, Any]:
        """What summary.json records about the standard (its definition, written next to the number)."""
        return {
            "name": self.name, "title": self.title, "title_en": self.title_en, "tiered": self.tiered,
            "file": self.path, "sources": dict(self.sources),
            "types": [{"key": t.key, "category": t.category, "label": t.label, "label_en": t.label_en,
                       "minutes": t.minutes, "service_population": list(t.service_population)
                       if t.service_population else None, "source": t.source} for t in self.types],
        }


def _tuple(v: Any) -> tuple[str, ...]:
    return tuple([v] if isinstance(v, str) else (v or ()))


def _rule(r: Mapping[str, Any], where: str, *, is_type: bool) -> FacilityRule:
    cat = r.get("category")
    if cat is not None and cat not in CATEGORIES:
        raise InputDataError(f"{where}: category {cat!r} is not one of {', '.join(CATEGORIES)}")
    if is_type and cat is None:
        raise InputDataError(f"{where}: a [[type]] needs a category ({', '.join(CATEGORIES)})")
    key = r.get("key") if is_type else r.get("reason")
    if not key:
        raise InputDataError(f"{where}: a [[{'type' if is_type else 'drop'}]] needs a "
                             f"{'key' if is_type else 'reason'}")
    if not (r.get("names") or r.get("subcategories") or r.get("tags")):
        raise InputDataError(f"{where} ({key}): give names, subcategories or tags to match")
    minutes = r.get("minutes")
    if minutes is not None and not (isinstance(minutes, (int, float)) and not isinstance(minutes, bool)
                                    and 0 < minutes < 1e4):
        raise InputDataError(f"{where} ({key}): minutes must be a positive number, not {minutes!r}")
    pop = r.get("service_population")
    return FacilityRule(
        key=str(key), category=cat, names=_tuple(r.get("names")), exclude_names=_tuple(r.get("exclude_names")),
        subcategories=_tuple(r.get("subcategories")), tags={k: _tuple(v) for k, v in (r.get("tags") or {}).items()},
        minutes=None if minutes is None else float(minutes), label=str(r.get("label", key)),
        label_en=str(r.get("label_en", "")), source=str(r.get("source", "")),
        service_population=(float(pop[0]), float(pop[-1])) if pop else None,
        named=None if r.get("named") is None else bool(r["named"]),
    )


def _standard_path(name: str | os.PathLike[str]) -> Path:
    from importlib import resources

    p = Path(name)
    if p.suffix.lower() == ".toml" or p.is_file():
        return p
    if str(name) in STANDARDS:
        return Path(str(resources.files("lifecircle") / "data" / "standards" / f"{name}.toml"))
    raise InputDataError(f"unknown standard {str(name)!r}: choose {', '.join(STANDARDS)} or auto, or give your own "
                         "TOML file (copy lifecircle/data/standards/shanghai-community.toml)")


def load_standard(name: str | os.PathLike[str] = "shanghai-community") -> Standard:
    """A shipped standard by name (:data:`STANDARDS`) or your own TOML file.

    Examples
    --------
    >>> s = load_standard()
    >>> s.name, [t.key for t in s.types if t.category == "health"]
    ('shanghai-community', ['community_health_centre', 'community_health_station'])
    """
    src = _standard_path(name)
    data = read_toml(src, what="standard")
    where = f"standard {src.name}"
    drops = [_rule(r, f"{where} [[drop]] {i + 1}", is_type=False) for i, r in enumerate(data.get("drop", []))]
    sources = dict(data.get("sources", {}))
    if data.get("extends"):
        parent = load_standard(data["extends"])
        drops = list(parent.drops) + drops
        sources = {**parent.sources, **sources}
    types = [_rule(r, f"{where} [[type]] {i + 1}", is_type=True) for i, r in enumerate(data.get("type", []))]
    if not types:
        raise InputDataError(f"{where}: no [[type]] rules; every kept facility needs a type")
    keys = [t.key for t in types]
    if len(set(keys)) != len(keys):
        raise InputDataError(f"{where}: type keys must be unique ({', '.join(k for k in keys if keys.count(k) > 1)})")
    return Standard(str(data.get("name", src.stem)), str(data.get("title", src.stem)), str(data.get("title_en", "")),
                    bool(data.get("tiered", False)), sources, tuple(drops), tuple(types), str(src))


def resolve_standard(name: str | os.PathLike[str] | Standard | None, *, lonlat_bounds=None) -> tuple[Standard, str]:
    """The standard to use and why: ``auto``/``None`` picks by where the study area lies.

    >>> resolve_standard("auto", lonlat_bounds=(121.4, 31.2, 121.5, 31.3))[0].name
    'shanghai-community'
    >>> resolve_standard("auto", lonlat_bounds=(24.9, 60.1, 25.0, 60.2))[0].name
    'all'
    """
    if isinstance(name, Standard):
        return name, "given"
    if name in (None, "auto"):
        inside = False
        if lonlat_bounds is not None:
            x = (lonlat_bounds[0] + lonlat_bounds[2]) / 2
            y = (lonlat_bounds[1] + lonlat_bounds[3]) / 2
            inside = _CHINA_BOX[0] <= x <= _CHINA_BOX[2] and _CHINA_BOX[1] <= y <= _CHINA_BOX[3]
        if inside:
            return load_standard("shanghai-community"), ("auto: the study area is in China, so the community-level "
                                                         "public facilities of the 85 % target count "
                                                         "(--standard all counts every facility found)")
        return load_standard("all"), ("auto: the study area is outside China, so every facility the taxonomy "
                                      "finds counts (--standard shanghai-community for the Shanghai definition)")
    return load_standard(name), "given"


def apply_standard(facilities, standard: Standard):
    """Decide every facility: kept as a type of the standard, or dropped with a reason.

    Returns ``(kept, decisions)``: the kept facilities with ``facility_type``, ``facility_type_label``
    and ``tier_minutes`` columns, and every input facility with ``kept`` and ``reason``.

    The drop rules judge what OSM found (``source == "osm"``). A list of your own (any other source) is
    counted as you gave it: its rows get the first type whose rule matches, else ``<category>_from_list``
    at the 15-minute tier.

    Examples
    --------
    >>> import geopandas as gpd
    >>> from shapely.geometry import Point
    >>> fac = gpd.GeoDataFrame({"category": ["health", "health", "health", "sports"], "source": "osm",
    ...                         "subcategory": ["community_health_centre", "hospital", "clinic", "fitness"],
    ...                         "name": ["江宁路街道社区卫生服务中心", "静安区中心医院", "张氏口腔诊所", "一兆韦德健身"]},
    ...                        geometry=[Point(121.45, 31.23)] * 4, crs=4326)
    >>> kept, dec = apply_standard(fac, load_standard("shanghai-community"))
    >>> kept.facility_type.tolist()
    ['community_health_centre']
    >>> dec.reason.tolist()[1:]
    ['hospital, not a community health service (医院)', 'private clinic, dentist or outpatient department (诊所/门诊部/口腔)', 'commercial gym, studio or club (健身房/俱乐部)']
    """
    n = len(facilities)
    ftype = np.full(n, None, dtype=object)
    reason = np.full(n, None, dtype=object)
    src = facilities["source"].astype(str).to_numpy() if "source" in facilities else np.full(n, "list")
    from_list = src != "osm"
    todo = ~from_list  # the drop rules judge what OSM found; a list of your own is taken as you gave it
    if n:
        for rule in standard.drops:
            hit = todo & rule.matches(facilities)
            reason[hit] = rule.key
            todo &= ~hit
        for rule in standard.types:
            hit = todo & rule.matches(facilities)
            ftype[hit] = rule.key
            reason[hit] = f"kept: {rule.label}"
            todo &= ~hit
        reason[todo] = "not a community-level public facility of this standard"
        todo = from_list.copy()
        for rule in standard.types:
            hit = todo & rule.matches(facilities)
            ftype[hit] = rule.key
            reason[hit] = f"kept: {rule.label} (from your list)"
            todo &= ~hit
        cats = facilities["category"].astype(str).to_numpy()
        ftype[todo] = np.char.add(cats[todo].astype(str), "_from_list") if todo.any() else ftype[todo]
        reason[todo] = "kept: from your list (a list is counted as given; its rows match no type of the standard)"
    decisions = facilities.copy()
    decisions.attrs = {}  # the rejected rows of a file stay with the kept facilities, not the decisions
    decisions["kept"] = ftype != None  # noqa: E711  (elementwise on an object array)
    decisions["facility_type"] = ftype
    decisions["reason"] = reason
    kept = decisions[decisions["kept"]].drop(columns=["kept", "reason"])
    labels = {t.key: t.label for t in standard.types}
    minutes = {t.key: t.minutes for t in standard.types}
    for cat in CATEGORIES:  # list rows outside the standard's types: the 15-minute life circle
        labels[f"{cat}_from_list"] = f"{cat} (your list)"
        minutes[f"{cat}_from_list"] = 15.0
    kept["facility_type_label"] = kept["facility_type"].map(labels)
    kept["tier_minutes"] = kept["facility_type"].map(minutes).astype(float)
    for k, v in facilities.attrs.items():
        kept.attrs[k] = v
    return kept.reset_index(drop=True), decisions


def decisions_table(decisions) -> pd.DataFrame:
    """Per category and subcategory: how many facilities the standard keeps and drops, and why.

    One row per (category, subcategory, kept, reason), with ``facilities`` counts.
    """
    if len(decisions) == 0:
        return pd.DataFrame(columns=["category", "subcategory", "kept", "reason", "facilities"])
    if "subcategory" not in decisions:
        decisions = decisions.assign(subcategory=decisions["category"])
    t = (decisions.groupby(["category", "subcategory", "kept", "reason"], dropna=False).size()
         .rename("facilities").reset_index())
    return t.sort_values(["category", "kept", "facilities"], ascending=[True, False, False]).reset_index(drop=True)


@dataclass(frozen=True)
class ProvisionRatio:
    """A standard capacity per 1,000 people (``data/standards/ratios.toml``)."""

    category: str
    per_1000: float
    counts: str  # "capacity" (needs a capacity column) or "facilities"
    per: str  # "group" (the category's demand group) or "population"
    source: str
    status: str = ""


def load_ratios(path: str | os.PathLike[str] | None = None) -> dict[str, ProvisionRatio]:
    """Provision ratios by category, from ``ratios.toml`` (shipped) or your own file in its format.

    >>> r = load_ratios()["elderly_care"]
    >>> r.per_1000, r.counts, r.per, r.status
    (30.0, 'capacity', 'group', 'example value')
    """
    from importlib import resources

    src = Path(path) if path else Path(str(resources.files("lifecircle") / "data" / "standards" / "ratios.toml"))
    out = {}
    for i, r in enumerate(read_toml(src, what="ratios").get("ratio", [])):
        where = f"ratios {src.name} [[ratio]] {i + 1}"
        cat, value = r.get("category"), r.get("per_1000")
        if cat not in CATEGORIES:
            raise InputDataError(f"{where}: category {cat!r} is not one of {', '.join(CATEGORIES)}")
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
            raise InputDataError(f"{where}: per_1000 must be a positive number, not {value!r}")
        counts, per = r.get("counts", "capacity"), r.get("per", "population")
        if counts not in ("capacity", "facilities") or per not in ("group", "population"):
            raise InputDataError(f"{where}: counts must be capacity or facilities and per group or population")
        out[cat] = ProvisionRatio(cat, float(value), counts, per, " ".join(str(r.get("source", "")).split()),
                                  str(r.get("status", "")))
    return out
