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
    path: str | os.PathLike[str], *, taxonomy: Taxonomy | None = None
):
    """Classify the facilities of an OSM file (nodes, ways and relations) into the categories.

    Areas (closed ways, multipolygons) become a point inside them. The result has columns
    ``category``, ``subcategory``, ``name``, ``source`` (``"osm"``), ``osm_type``, ``osm_id``.

    Examples
    --------
    >>> from lifecircle.datasets import toy_town_osm
    >>> fac = facilities_from_osm(toy_town_osm())
    >>> sorted(fac.category)
    ['culture', 'elderly_care', 'health', 'sports', 'sports']
    """
    import geopandas as gpd

    from .osm import iter_features

    tax = taxonomy or load_taxonomy()
    keys = set(tax.keys)
    keyword_re = re.compile("|".join(map(re.escape, tax.keywords))) if tax.keywords else None

    def keep(tags: Mapping[str, str]) -> bool:
        if keys.intersection(tags):
            return True
        name = tags.get("name") or tags.get("name:zh")
        return bool(name) and keyword_re is not None and keyword_re.search(name) is not None

    rows = []
    # libosmium pre-filters on the tag keys and the name keywords; keep() decides exactly
    for f in iter_features(path, keep, keys=tax.keys, name_keywords=tax.keywords):
        hit = tax.classify(f.tags)
        if hit is None:
            continue
        rows.append((hit[0], hit[1], f.tags.get("name"), "osm", f.osm_type, f.osm_id, f.lon, f.lat,
                     *(f.tags.get(k) for k in ATTRIBUTE_TAGS)))
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
    keep = ["category", "subcategory", "name", "source"] + [c for c in ("osm_type", "osm_id", *ATTRIBUTE_TAGS)
                                                            if c in out.columns]
    result = carry_checks(gdf, out[keep + ["geometry"]].reset_index(drop=True))
    result.attrs["rejected"] = rejected.drop(columns="geometry").reset_index(drop=True)
    return result


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


def name_similarity(a: Any, b: Any) -> float:
    """Similarity of two facility names in [0, 1]: 1 when one contains the other, else difflib's ratio.

    >>> name_similarity("江宁路街道社区卫生服务中心", "静安区江宁路街道社区卫生服务中心")
    1.0
    >>> name_similarity("江宁路社区卫生服务中心", "江宁路街道社区卫生服务中心")
    1.0
    >>> name_similarity("曹家渡街道社区卫生服务中心", "江宁路街道社区卫生服务中心") < 0.5
    True

    Names whose numbers differ are different places, even when one contains the other:

    >>> name_similarity("健身苑点1", "健身苑点12"), name_similarity("1号健身点", "１号健身点")
    (0.0, 1.0)
    """
    import difflib

    x, y = _norm_name(a), _norm_name(b)
    if not x or not y:
        return 0.0
    digits = (sorted(re.findall(r"\d+", n)) for n in (x, y))
    if next(digits) != next(digits):
        return 0.0
    if x in y or y in x:
        return 1.0
    # compare what differs: the shared prefix (district) and suffix (facility type) say nothing
    p = len(os.path.commonprefix([x, y]))
    q = len(os.path.commonprefix([x[p:][::-1], y[p:][::-1]]))
    x, y = x[p:len(x) - q], y[p:len(y) - q]
    if not x or not y:
        return 1.0
    return difflib.SequenceMatcher(None, x, y).ratio()


def deduplicate(facilities, *, max_dist_m: float = 150.0, min_similarity: float = 0.6, unnamed_dist_m: float = 0.0):
    """Drop facilities that are the same place counted twice (OSM node + polygon, OSM + official list).

    Two facilities of the same category are one when they are within ``max_dist_m`` and their
    names are similar (:func:`name_similarity` ≥ ``min_similarity``), or — if either is unnamed —
    within ``unnamed_dist_m`` (0: unnamed points are never merged). Of each group the entry from
    a list is kept over OSM (official lists carry the authoritative name), then the first.
    ``attrs["duplicates"]`` lists what was dropped and what it was merged into.

    Examples
    --------
    >>> import geopandas as gpd
    >>> f = gpd.GeoDataFrame({"category": ["health"] * 3, "name": ["江宁路街道社区卫生服务中心",
    ...     "静安区江宁路街道社区卫生服务中心", "曹家渡街道社区卫生服务中心"], "source": ["osm", "list", "list"]},
    ...     geometry=gpd.points_from_xy([121.4500, 121.4508, 121.4501], [31.24, 31.24, 31.24]), crs=4326)
    >>> deduplicate(f)["name"].tolist()
    ['静安区江宁路街道社区卫生服务中心', '曹家渡街道社区卫生服务中心']
    """
    import shapely
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from .network import local_utm_crs

    n = len(facilities)
    if n < 2:
        return facilities
    c = facilities.geometry.union_all().centroid
    pts = facilities.geometry.to_crs(local_utm_crs(c.x, c.y)).to_numpy()
    tree = shapely.STRtree(pts)
    i, j = tree.query(pts, predicate="dwithin", distance=max_dist_m)
    keep_pair = i < j
    i, j = i[keep_pair], j[keep_pair]
    cats = facilities["category"].to_numpy()
    same = cats[i] == cats[j]
    i, j = i[same], j[same]
    names = facilities["name"].to_numpy() if "name" in facilities else np.full(n, None)
    dist = shapely.distance(pts[i], pts[j])
    sim = np.array([name_similarity(names[a], names[b]) for a, b in zip(i, j)])
    unnamed = np.array([not _norm_name(names[a]) or not _norm_name(names[b]) for a, b in zip(i, j)], dtype=bool)
    dup = np.where(unnamed, dist <= unnamed_dist_m, sim >= min_similarity) if len(i) else np.zeros(0, bool)
    i, j = i[dup], j[dup]
    _, label = connected_components(coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n)), directed=False)
    src = facilities["source"].to_numpy() if "source" in facilities else np.full(n, "osm")
    rank = np.where(src == "list", 0, 1)
    order = np.lexsort((np.arange(n), rank, label))
    first = np.ones(n, dtype=bool)
    first[1:] = label[order][1:] != label[order][:-1]
    winner_of_label = dict(zip(label[order][first], order[first]))
    kept = np.zeros(n, dtype=bool)
    kept[order[first]] = True
    out = facilities[kept].copy()
    dropped = facilities[~kept].drop(columns="geometry").copy()
    dropped["merged_into"] = [winner_of_label[l] for l in label[~kept]]
    out.attrs = dict(facilities.attrs)
    out.attrs["duplicates"] = dropped.reset_index()
    if len(dropped):
        log.info("deduplicated %d facilities (same category, within %g m, similar names)", len(dropped), max_dist_m)
    return out
