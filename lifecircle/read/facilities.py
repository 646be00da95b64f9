"""Find facilities of the four categories: OSM tags, Chinese names and user lists, via a taxonomy."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from ..config import CATEGORIES
from ..errors import EmptyResultError, InputDataError
from .standards import ATTRIBUTE_TAGS

log = logging.getLogger("lifecircle")

__all__ = [
    "Rule",
    "Taxonomy",
    "load_taxonomy",
    "facilities_from_osm",
    "facilities_from_file",
    "combine_facilities",
    "count_by_category",
    "CATEGORY_ALIASES",
    "facilities_from_place",
    "name_similarity",
    "deduplicate",
    "FACILITY_TYPE_WORDS",
    "MERGED_COLUMNS",
]

#: Values of a user's category column understood besides the four keys.
CATEGORY_ALIASES: dict[str, str] = {
    "health": "health", "healthcare": "health", "medical": "health", "卫生": "health", "医疗": "health",
    "医疗卫生": "health",
    "elderly_care": "elderly_care", "elderly": "elderly_care", "eldercare": "elderly_care",
    "elderly care": "elderly_care", "养老": "elderly_care", "为老服务": "elderly_care",
    "culture": "culture", "cultural": "culture", "文化": "culture",
    "sports": "sports", "sport": "sports", "体育": "sports", "健身": "sports",
}
_NAME_KEYS = ("name", "name:zh", "name:zh-Hans", "official_name")


@dataclass(frozen=True)
class Rule:
    """One taxonomy rule (see ``lifecircle/data/taxonomy.toml`` for the format)."""

    category: str
    subcategory: str
    tags: Mapping[str, tuple[str, ...] | str] = field(default_factory=dict)
    require: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    except_values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    names: tuple[str, ...] = ()
    exclude_names: tuple[str, ...] = ()

    def matches_tags(self, tags: Mapping[str, str]) -> bool:
        hit = False
        for key, values in self.tags.items():
            val = tags.get(key)
            if val is None:
                continue
            if values == "*":
                hit = val not in self.except_values.get(key, ())
            else:
                hit = val in values
            if hit:
                break
        if not hit:
            return False
        return all(tags.get(k) in vals for k, vals in self.require.items())

    def matches_name(self, name: str) -> bool:
        return any(k in name for k in self.names)


@dataclass(frozen=True)
class Taxonomy:
    """Ordered rules mapping OSM tags and names to (category, subcategory).

    Examples
    --------
    >>> tax = load_taxonomy()
    >>> tax.classify({"name": "静安区江宁路街道社区卫生服务中心"})
    ('health', 'community_health_centre')
    >>> tax.classify({"amenity": "social_facility", "social_facility": "assisted_living",
    ...               "social_facility:for": "senior"})
    ('elderly_care', 'senior_facility')
    >>> tax.classify({"amenity": "hospital", "name": "宠物医院"}) is None
    True
    """

    rules: tuple[Rule, ...]
    exclude_names: tuple[str, ...] = ()
    source: str = "builtin"

    @property
    def keys(self) -> tuple[str, ...]:
        """Every OSM key a rule looks at (to pre-filter large files)."""
        ks: list[str] = []
        for r in self.rules:
            ks += [k for k in r.tags if k not in ks]
        return tuple(ks)

    @property
    def keywords(self) -> tuple[str, ...]:
        return tuple(k for r in self.rules for k in r.names)

    def classify(self, tags: Mapping[str, str], name: str | None = None) -> tuple[str, str] | None:
        """Category and subcategory of one object, or None."""
        if name is None:
            name = next((tags[k] for k in _NAME_KEYS if tags.get(k)), "")
        name = name or ""
        if name and any(x in name for x in self.exclude_names):
            return None
        for r in self.rules:
            if name and any(x in name for x in r.exclude_names):
                continue
            if (name and r.matches_name(name)) or (r.tags and r.matches_tags(tags)):
                return r.category, r.subcategory
        return None

    def classify_names(self, names: Iterable[Any]) -> list[tuple[str, str] | None]:
        """Classify free-text names (e.g. an official list's 名称 or 类别 column)."""
        return [self.classify({}, str(n)) if isinstance(n, str) and n.strip() else None for n in names]


def load_taxonomy(path: str | os.PathLike[str] | None = None) -> Taxonomy:
    """Read a taxonomy TOML file; without ``path`` the one shipped with lifecircle."""
    from importlib import resources

    from ..config import read_toml

    src = Path(path) if path else Path(str(resources.files("lifecircle") / "data" / "taxonomy.toml"))
    data = read_toml(src, what="taxonomy")
    rules = []
    problems = []
    for i, r in enumerate(data.get("rule", [])):
        cat = r.get("category")
        if cat not in CATEGORIES:
            problems.append(f"rule {i + 1}: category {cat!r} is not one of {', '.join(CATEGORIES)}")
            continue
        tags = {k: (v if v == "*" else tuple([v] if isinstance(v, str) else v)) for k, v in r.get("tags", {}).items()}
        req = {k: tuple([v] if isinstance(v, str) else v) for k, v in r.get("require", {}).items()}
        exc_ = {k: tuple([v] if isinstance(v, str) else v) for k, v in r.get("except_values", {}).items()}
        if not tags and not r.get("names"):
            problems.append(f"rule {i + 1} ({cat}) has neither tags nor names")
        rules.append(Rule(cat, r.get("subcategory", cat), tags, req, exc_, tuple(r.get("names", ())),
                          tuple(r.get("exclude_names", ()))))
    if problems or not rules:
        raise InputDataError(f"taxonomy {src}: " + ("; ".join(problems) or "no [[rule]] entries"))
    return Taxonomy(tuple(rules), tuple(data.get("exclude", {}).get("names", ())), str(src))


def _empty_facilities():
    import geopandas as gpd

    return gpd.GeoDataFrame(
        {"category": pd.Series(dtype=str), "subcategory": pd.Series(dtype=str),
         "name": pd.Series(dtype=object), "source": pd.Series(dtype=str)},
        geometry=gpd.GeoSeries([], crs=4326),
    )


def facilities_from_osm(
    path, *, taxonomy: Taxonomy | None = None
):
    """Classify the facilities of an OSM file (nodes, ways and relations) into the categories.

    Areas (closed ways, multipolygons) become a point inside them. The result has columns
    ``category``, ``subcategory``, ``name``, ``source`` (``"osm"``), ``osm_type``, ``osm_id``.
    ``path`` is the OSM file or its :class:`~lifecircle.read.osm.OSMLayers` (with the facilities layer
    read for the same taxonomy keys and keywords).

    Examples
    --------
    >>> from lifecircle.datasets import toy_town_osm
    >>> fac = facilities_from_osm(toy_town_osm())
    >>> sorted(fac.category)
    ['culture', 'elderly_care', 'health', 'sports', 'sports']
    """
    import geopandas as gpd

    from .osm import OSMLayers, read_osm

    tax = taxonomy or load_taxonomy()
    keys = set(tax.keys)
    keyword_re = re.compile("|".join(map(re.escape, tax.keywords))) if tax.keywords else None

    def keep(tags: Mapping[str, str]) -> bool:
        if keys.intersection(tags):
            return True
        name = tags.get("name") or tags.get("name:zh")
        return bool(name) and keyword_re is not None and keyword_re.search(name) is not None

    # the reader picks the objects with a taxonomy key or a name keyword; keep() decides exactly
    layers = path if isinstance(path, OSMLayers) else None
    if layers is None or layers.facilities is None or not (
            set(tax.keys) <= set(layers.facility_keys) and set(tax.keywords) <= set(layers.facility_keywords)):
        layers = read_osm(layers.path if layers is not None else path, layers=("facilities",), taxonomy=tax)
    feats = layers.facilities
    rows = []
    for t, i, x, y, tags in zip(feats.osm_type.tolist(), feats.osm_id.tolist(), feats.lon.tolist(),
                                feats.lat.tolist(), feats.tags):
        if not keep(tags):
            continue
        hit = tax.classify(tags)
        if hit is None:
            continue
        rows.append((hit[0], hit[1], tags.get("name"), "osm", t, i, x, y, *(tags.get(k) for k in ATTRIBUTE_TAGS)))
    if not rows:
        return _empty_facilities()
    df = pd.DataFrame(rows, columns=["category", "subcategory", "name", "source", "osm_type", "osm_id", "lon", "lat",
                                     *ATTRIBUTE_TAGS])
    gdf = gpd.GeoDataFrame(df.drop(columns=["lon", "lat"]), geometry=gpd.points_from_xy(df.lon, df.lat), crs=4326)
    log.info("OSM facilities: %s", count_by_category(gdf))
    return gdf


def _normalise_category(values: pd.Series, names: pd.Series | None, tax: Taxonomy) -> tuple[pd.Series, pd.Series]:
    cats = pd.Series([None] * len(values), index=values.index, dtype=object)
    subs = pd.Series([None] * len(values), index=values.index, dtype=object)
    text = values.astype("string").str.strip()
    mapped = text.str.lower().map(CATEGORY_ALIASES)
    cats[mapped.notna()] = mapped[mapped.notna()]
    subs[mapped.notna()] = "list"
    # values such as "社区卫生服务中心" or "养老院": classify the text itself, then the name
    for source in (text, names):
        if source is None:
            continue
        todo = cats.isna()
        if not todo.any():
            break
        hits = tax.classify_names(source[todo].tolist())
        idx = source[todo].index
        for i, h in zip(idx, hits):
            if h is not None:
                cats[i], subs[i] = h
    return cats, subs


def facilities_from_file(
    path: str | os.PathLike[str],
    *,
    category_column: str | None = "category",
    name_column: str | None = None,
    lon_column: str | None = None,
    lat_column: str | None = None,
    crs: Any = None,
    taxonomy: Taxonomy | None = None,
    source: str = "list",
    encoding: str | None = None,
    capacity_column: str | None = None,
):
    """Read facilities from a CSV/XLSX (lon/lat columns), GeoJSON or GeoPackage file.

    The category column may hold the keys (``health``, ``elderly_care``, ``culture``,
    ``sports``), common aliases (``卫生``, ``养老``, ``文化``, ``体育``, ``sport``...) or
    a facility type that the taxonomy knows (``社区卫生服务中心``, ``养老院``...). Without a
    usable category, the name is classified. Rows that stay unclassified, or have no
    coordinates, are logged and listed in ``result.attrs["rejected"]`` (never silently dropped).

    Files that carry OSM tag columns (``amenity``, ``leisure``, ``healthcare``…, e.g. an export
    of OSM features) are classified by tags and names like :func:`facilities_from_osm`.

    Polygons are reduced to a point inside them.

    ``capacity_column`` names a column of capacities (beds 床位, floor area m², doctors…) kept as
    ``capacity`` for the supply–demand ratios (:mod:`lifecircle.measure.accessibility`); an empty
    cell is NaN (filled later, with a warning), text or a negative number is an error naming the row.
    """
    from .files import carry_checks, read_geo

    tax = taxonomy or load_taxonomy()
    gdf = read_geo(path, what="facilities", lon_column=lon_column, lat_column=lat_column, crs=crs, encoding=encoding)
    cols = list(gdf.columns)
    cat_col = category_column if category_column in cols else next(
        (c for c in ("category", "类别", "类型", "type", "设施类型", "分类") if c in cols), None)
    if category_column not in (None, "category") and category_column not in cols:
        raise InputDataError(
            f"facilities {Path(path).name}: no column {category_column!r} (columns: {', '.join(map(str, cols[:-1]))}); "
            "fix --category-column"
        )
    name_col = name_column if name_column else next((c for c in ("name", "名称", "机构名称", "设施名称") if c in cols), None)
    if name_column and name_column not in cols:
        raise InputDataError(f"facilities {Path(path).name}: no column {name_column!r}; fix --name-column")
    if cat_col is None and name_col is None:
        raise InputDataError(
            f"facilities {Path(path).name} has no category column (category/类别/类型) and no name column to "
            "classify; add a 'category' column with health, elderly_care, culture or sports"
        )
    names = gdf[name_col] if name_col else None
    capacity = _capacity(gdf, capacity_column, Path(path)) if capacity_column else None
    tag_cols = [k for k in tax.keys if k in cols]
    if tag_cols:
        # an export of OSM features (tag columns such as amenity, leisure): classify like OSM
        records = gdf[tag_cols + ([name_col] if name_col else [])].to_dict("records")
        hits = [tax.classify({k: v for k, v in r.items() if isinstance(v, str) and k != name_col},
                             r.get(name_col) if name_col and isinstance(r.get(name_col), str) else "")
                for r in records]
        cats = pd.Series([h[0] if h else None for h in hits], index=gdf.index, dtype=object)
        subs = pd.Series([h[1] if h else None for h in hits], index=gdf.index, dtype=object)
        if cat_col is not None and cats.isna().any():
            c2, s2 = _normalise_category(gdf[cat_col], names, tax)
            fill = cats.isna() & c2.notna()
            cats[fill], subs[fill] = c2[fill], s2[fill]
        if "osm_id" in cols and source == "list":
            source = "osm"
    elif cat_col is not None:
        cats, subs = _normalise_category(gdf[cat_col], names, tax)
    else:
        hits = tax.classify_names(names.tolist())
        cats = pd.Series([h[0] if h else None for h in hits], index=gdf.index, dtype=object)
        subs = pd.Series([h[1] if h else None for h in hits], index=gdf.index, dtype=object)
    no_xy = gdf.geometry.isna() | gdf.geometry.is_empty
    rejected = gdf[cats.isna() | no_xy].copy()
    rejected["reason"] = np.where(no_xy[rejected.index], "no coordinates", "category not recognised")
    out = gdf.loc[cats.notna() & ~no_xy].copy()
    if out.empty:
        raise EmptyResultError(
            f"facilities {Path(path).name}: no row has both coordinates and a recognised category "
            f"({len(gdf)} rows); use categories {', '.join(CATEGORIES)} or set --category-column"
        )
    if len(rejected):
        log.warning("facilities %s: %d of %d rows not used (%s); listed in the rejected-rows CSV",
                    Path(path).name, len(rejected), len(gdf),
                    ", ".join(f"{k}: {v}" for k, v in rejected["reason"].value_counts().items()))
    out["category"] = cats[out.index].astype(str)
    out["subcategory"] = subs[out.index].astype(str)
    out["name"] = names[out.index] if names is not None else None
    out["source"] = source
    geom = out.geometry
    if not (geom.geom_type == "Point").all():
        out = out.set_geometry(geom.representative_point())
    if capacity is not None:
        out["capacity"] = capacity[out.index]
    keep = ["category", "subcategory", "name", "source"] + [c for c in ("osm_type", "osm_id", *ATTRIBUTE_TAGS,
                                                                        "capacity") if c in out.columns]
    result = carry_checks(gdf, out[keep + ["geometry"]].reset_index(drop=True))
    result.attrs["rejected"] = rejected.drop(columns="geometry").reset_index(drop=True)
    return result


def _capacity(gdf, column: str, path: Path) -> pd.Series:
    """The capacity column as floats (empty = NaN); text or a negative value is an error naming its row."""
    from .files import row_name

    if column not in gdf.columns:
        raise InputDataError(f"facilities {path.name}: no column {column!r} (columns: "
                             f"{', '.join(map(str, list(gdf.columns)[:-1]))}); fix --capacity-column")
    raw = gdf[column]
    empty = raw.isna() | raw.astype(str).str.strip().isin(["", "nan", "None"])
    values = pd.to_numeric(raw.where(~empty), errors="coerce")
    bad = (values.isna() & ~empty) | (values < 0)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputDataError(f"facilities {path.name}: {int(bad.sum())} value(s) of the capacity column {column!r} are "
                             f"not a number >= 0 (first at {row_name(gdf, i)}: {str(raw.iloc[i])!r}); fix them or "
                             "leave them empty")
    return values.astype(float)


def combine_facilities(*layers, replace: bool = False):
    """Concatenate facility layers (OSM first, then lists). With ``replace`` only the last counts."""
    import geopandas as gpd

    layers = [l for l in layers if l is not None]
    if not layers:
        return _empty_facilities()
    if replace:
        layers = layers[-1:]
    rejected = [l.attrs.get("rejected") for l in layers if l.attrs.get("rejected") is not None]
    out = gpd.GeoDataFrame(pd.concat(layers, ignore_index=True), crs=4326)
    if rejected:
        out.attrs["rejected"] = pd.concat(rejected, ignore_index=True)
    return out


def count_by_category(facilities, categories: Iterable[str] = CATEGORIES) -> dict[str, int]:
    """Number of facilities per category (zero included).

    >>> import geopandas as gpd
    >>> count_by_category(gpd.GeoDataFrame({"category": ["health", "health"]}, geometry=[None, None]))
    {'health': 2, 'elderly_care': 0, 'culture': 0, 'sports': 0}
    """
    vc = facilities["category"].value_counts() if len(facilities) else {}
    return {c: int(vc.get(c, 0)) for c in categories}


def facilities_from_place(place: str, *, taxonomy: Taxonomy | None = None):
    """Download and classify the facilities of a named place from Overpass (OSMnx, cached)."""
    import geopandas as gpd
    import osmnx as ox

    from ..errors import DownloadError
    from .osm import cache_dir

    tax = taxonomy or load_taxonomy()
    ox.settings.use_cache = True
    ox.settings.cache_folder = str(cache_dir() / "osmnx")
    try:
        feats = ox.features_from_place(place, tags={k: True for k in tax.keys})
    except Exception as exc:
        raise DownloadError(f"could not download facilities for {place!r} ({type(exc).__name__}); check the "
                            "internet connection or use a local file with --osm") from None
    feats = feats.reset_index()
    rows = []
    for rec, geom in zip(feats.drop(columns="geometry").to_dict("records"), feats.geometry):
        tags = {k: str(v) for k, v in rec.items() if isinstance(v, str)}
        hit = tax.classify(tags)
        if hit is None or geom is None:
            continue
        pt = geom if geom.geom_type == "Point" else geom.representative_point()
        rows.append((hit[0], hit[1], tags.get("name"), "osm", rec.get("element"), rec.get("id"), pt))
    if not rows:
        return _empty_facilities()
    df = pd.DataFrame(rows, columns=["category", "subcategory", "name", "source", "osm_type", "osm_id", "geometry"])
    return gpd.GeoDataFrame(df, geometry="geometry", crs=4326)


def _norm_name(name: Any) -> str:
    if not isinstance(name, str):
        return ""
    import unicodedata

    out = unicodedata.normalize("NFKC", name).strip().lower()  # full-width digits and brackets too
    for ch in " ()（）-·・_":
        out = out.replace(ch, "")
    return out.replace("上海市", "")


#: Words naming a kind of facility or a part of one. Two names that differ in these are different
#: places even when one contains the other: 篮球场 vs 篮球网球场, 图书馆 vs 少年儿童图书馆,
#: 浦南医院 vs 浦南医院(东院), 静安体育中心 vs 静安体育中心羽毛球场 (see :func:`name_similarity`).
FACILITY_TYPE_WORDS: tuple[str, ...] = (
    # sports: the sport or the kind of ground
    "篮球", "网球", "足球", "排球", "羽毛球", "乒乓", "棒球", "垒球", "槌球", "门球", "手球", "壁球",
    "高尔夫", "游泳", "泳池", "跳水", "攀岩", "滑冰", "溜冰", "轮滑", "滑板", "射击", "射箭", "武术", "拳击",
    "瑜伽", "舞蹈", "健身", "田径", "跑道", "操场", "体育场", "体育馆", "球场", "球馆", "训练", "风雨",
    # who it serves
    "少儿", "少年", "儿童", "老年", "长者", "妇幼", "妇女", "母婴",
    # a part or a branch of a larger place
    "分馆", "分院", "分中心", "分部", "分站", "分所", "分店", "院区", "校区", "东院", "西院", "南院", "北院",
    # other kinds of facility
    "图书馆", "图书室", "文化馆", "博物馆", "美术馆", "纪念馆", "档案馆", "活动中心", "活动室", "服务站",
    "卫生站", "卫生室", "门诊部", "诊所", "药房", "养老院", "敬老院", "护理院", "日间照料", "照护",
)


def _type_words(name: str) -> frozenset[str]:
    """The facility-type words a (normalised) name contains, overlapping matches included."""
    return frozenset(w for w in FACILITY_TYPE_WORDS if w in name)


def _name_rule(a: Any, b: Any) -> tuple[float, str]:
    """:func:`name_similarity` and the reason, for the merge report."""
    import difflib

    x, y = _norm_name(a), _norm_name(b)
    if not x or not y:
        return 0.0, "unnamed"
    digits = (sorted(re.findall(r"\d+", n)) for n in (x, y))
    if next(digits) != next(digits):
        return 0.0, "numbers differ"
    if _type_words(x) != _type_words(y):
        return 0.0, "facility-type words differ"
    if x == y:
        return 1.0, "same name"
    if x in y or y in x:
        return 1.0, "one name contains the other"
    # compare what differs: the shared prefix (district) and suffix (facility type) say nothing
    p = len(os.path.commonprefix([x, y]))
    q = len(os.path.commonprefix([x[p:][::-1], y[p:][::-1]]))
    x, y = x[p:len(x) - q], y[p:len(y) - q]
    if not x or not y:
        return 1.0, "names agree but for a shared prefix and suffix"
    r = difflib.SequenceMatcher(None, x, y).ratio()
    return r, f"names agree but for a shared prefix and suffix (similarity {r:.2f})"


def name_similarity(a: Any, b: Any) -> float:
    """Similarity of two facility names in [0, 1].

    1 when one contains the other, else difflib's ratio of what differs once the shared prefix
    (district, 街道) and suffix (facility type) are removed — but 0 when the names hold different
    numbers or different facility-type words (:data:`FACILITY_TYPE_WORDS`: the sport, who the
    place serves, a branch or campus, another kind of facility).

    >>> name_similarity("江宁路街道社区卫生服务中心", "静安区江宁路街道社区卫生服务中心")
    1.0
    >>> name_similarity("江宁路社区卫生服务中心", "江宁路街道社区卫生服务中心")
    1.0
    >>> name_similarity("曹家渡街道社区卫生服务中心", "江宁路街道社区卫生服务中心") < 0.5
    True

    Names whose numbers or facility-type words differ are different places, even when one
    contains the other:

    >>> name_similarity("健身苑点1", "健身苑点12"), name_similarity("1号健身点", "１号健身点")
    (0.0, 1.0)
    >>> name_similarity("篮球场", "篮球网球场"), name_similarity("图书馆", "少年儿童图书馆")
    (0.0, 0.0)
    >>> name_similarity("浦南医院", "浦南医院(东院)"), name_similarity("周浦医院", "上海市浦东新区周浦医院-门诊楼")
    (0.0, 1.0)
    """
    return _name_rule(a, b)[0]


#: Columns of the merge report (``attrs["merged"]``, written as ``facilities_merged.csv``).
MERGED_COLUMNS = ("category", "kept_name", "dropped_name", "distance_m", "why", "kept_source", "dropped_source",
                  "kept_osm", "dropped_osm", "kept_lon", "kept_lat", "dropped_lon", "dropped_lat",
                  "kept_index", "dropped_index")


def deduplicate(facilities, *, max_dist_m: float = 150.0, min_similarity: float = 0.6, unnamed_dist_m: float = 0.0,
                layer=None):
    """Drop facilities that are the same place counted twice (OSM node + polygon, OSM + official list).

    Two facilities are one when all of these hold:

    * they come from **different input layers** (the OSM data vs a list, or two lists), or from one
      OSM layer as an OSM node and an OSM way/relation (the same place mapped as a point and as the
      polygon around it). Two rows of one list, or two OSM ways, are never merged: each is a place
      the source listed on purpose (a row of basketball courts is several courts);
    * same category, at most ``max_dist_m`` apart;
    * their names agree (:func:`name_similarity` ≥ ``min_similarity``: no different numbers or
      facility-type words), or — if either is unnamed — they are within ``unnamed_dist_m`` (0:
      unnamed points are merged only at the very same position). The same OSM object
      (``osm_type`` + ``osm_id``) in two layers is always one.

    Of each group the entry from a list is kept over OSM (official lists carry the authoritative
    name), then the first. ``attrs["merged"]`` reports every merge (columns :data:`MERGED_COLUMNS`:
    names, distance and why, then source, OSM id, position and index in ``facilities`` of the kept
    and the dropped row);
    ``attrs["duplicates"]`` holds the dropped rows with ``merged_into``.

    Parameters
    ----------
    layer : array-like, optional
        The input layer of each row (any labels, e.g. 0 for the OSM file, 1 for the first list).
        Default: the ``source`` column (``osm`` / ``list``).

    Examples
    --------
    >>> import geopandas as gpd
    >>> f = gpd.GeoDataFrame({"category": ["health"] * 3, "name": ["江宁路街道社区卫生服务中心",
    ...     "静安区江宁路街道社区卫生服务中心", "曹家渡街道社区卫生服务中心"], "source": ["osm", "list", "list"]},
    ...     geometry=gpd.points_from_xy([121.4500, 121.4508, 121.4501], [31.24, 31.24, 31.24]), crs=4326)
    >>> d = deduplicate(f)
    >>> d["name"].tolist()
    ['静安区江宁路街道社区卫生服务中心', '曹家渡街道社区卫生服务中心']
    >>> d.attrs["merged"][["kept_index", "dropped_index", "distance_m", "why"]].values.tolist()
    [[1, 0, 76.2, 'one name contains the other']]

    Two rows of the same list are never merged, whatever their names:

    >>> len(deduplicate(f.assign(source="list")))
    3
    """
    import shapely
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from .network import local_utm_crs

    n = len(facilities)
    empty_report = pd.DataFrame({c: pd.Series(dtype=object) for c in MERGED_COLUMNS})
    if n < 2:
        out = facilities.copy()
        out.attrs = dict(facilities.attrs)
        out.attrs["merged"] = empty_report
        return out
    src = (facilities["source"].astype(str).to_numpy() if "source" in facilities else np.full(n, "osm"))
    lay = src if layer is None else np.asarray(layer)
    if len(lay) != n:
        raise InputDataError(f"deduplicate: layer has {len(lay)} labels for {n} facilities")
    otype = (facilities["osm_type"].to_numpy(dtype=object) if "osm_type" in facilities else np.full(n, None))
    oid = (facilities["osm_id"].to_numpy(dtype=object) if "osm_id" in facilities else np.full(n, None))
    c = facilities.geometry.union_all().centroid
    pts = facilities.geometry.to_crs(local_utm_crs(c.x, c.y)).to_numpy()
    tree = shapely.STRtree(pts)
    i, j = tree.query(pts, predicate="dwithin", distance=max_dist_m)
    keep_pair = i < j
    i, j = i[keep_pair], j[keep_pair]
    cats = facilities["category"].to_numpy()
    has_type = pd.notna(otype)
    # different layers, or one OSM layer's node and way/relation
    eligible = (cats[i] == cats[j]) & ((lay[i] != lay[j]) | (has_type[i] & has_type[j] & (otype[i] != otype[j])))
    i, j = i[eligible], j[eligible]
    names = facilities["name"].to_numpy() if "name" in facilities else np.full(n, None)
    dist = shapely.distance(pts[i], pts[j])
    rules = [_name_rule(names[a], names[b]) for a, b in zip(i, j)]
    sim = np.array([r[0] for r in rules], dtype=float)
    why = np.array([r[1] for r in rules], dtype=object)
    unnamed = why == "unnamed"
    same_obj = (has_type[i] & has_type[j] & (otype[i] == otype[j]) & (oid[i] == oid[j])) if len(i) else np.zeros(0, bool)
    dup = same_obj | np.where(unnamed, dist <= unnamed_dist_m, sim >= min_similarity) if len(i) else np.zeros(0, bool)
    why = np.where(same_obj, "same OSM object", np.where(unnamed, f"unnamed, within {unnamed_dist_m:g} m", why))
    i, j, dist, why = i[dup], j[dup], dist[dup], why[dup]
    _, label = connected_components(coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n)), directed=False)
    rank = np.where(src == "list", 0, 1)
    order = np.lexsort((np.arange(n), rank, label))
    first = np.ones(n, dtype=bool)
    first[1:] = label[order][1:] != label[order][:-1]
    winner_of_label = np.zeros(n, dtype=np.int64)
    winner_of_label[label[order][first]] = order[first]
    kept = np.zeros(n, dtype=bool)
    kept[order[first]] = True
    out = facilities[kept].copy()
    dropped = facilities[~kept].drop(columns="geometry").copy()
    winner = winner_of_label[label[~kept]]
    dropped["merged_into"] = winner
    out.attrs = dict(facilities.attrs)
    out.attrs["duplicates"] = dropped.reset_index()
    # the report: each dropped row with the kept one; why = the rule of their own pair, else of the
    # pair that linked it into the group (a chain A~B~C)
    d_idx = np.flatnonzero(~kept)
    pair_why = {}
    for a, b, w in zip(i.tolist(), j.tolist(), why.tolist()):
        pair_why.setdefault((a, b), w)
        pair_why.setdefault(b, w)
        pair_why.setdefault(a, w)
    whys = [pair_why.get((min(d, k), max(d, k))) or f"linked through another merged entry ({pair_why.get(d)})"
            for d, k in zip(d_idx.tolist(), winner.tolist())]
    index = facilities.index.to_numpy()

    def osm_ref(k):
        if not (pd.notna(otype[k]) and pd.notna(oid[k])):
            return None
        i = oid[k]  # a float once a list without osm ids was concatenated
        return f"{otype[k]}/{int(i) if isinstance(i, (float, np.floating)) and float(i).is_integer() else i}"

    ll = facilities.geometry.to_crs(4326)
    lon, lat = ll.x.to_numpy(), ll.y.to_numpy()
    report = pd.DataFrame({
        "category": cats[d_idx], "kept_name": names[winner], "dropped_name": names[d_idx],
        "distance_m": np.round(shapely.distance(pts[winner], pts[d_idx]), 1) if d_idx.size else np.zeros(0),
        "why": whys, "kept_source": src[winner], "dropped_source": src[d_idx],
        "kept_osm": [osm_ref(k) for k in winner], "dropped_osm": [osm_ref(k) for k in d_idx],
        "kept_lon": lon[winner].round(7), "kept_lat": lat[winner].round(7),
        "dropped_lon": lon[d_idx].round(7), "dropped_lat": lat[d_idx].round(7),
        "kept_index": index[winner], "dropped_index": index[d_idx],
    }, columns=list(MERGED_COLUMNS))
    out.attrs["merged"] = report
    if len(dropped):
        log.info("merged %d duplicate facilities (same category, within %g m, names agree; listed in the merge "
                 "report)", len(dropped), max_dist_m)
    return out
