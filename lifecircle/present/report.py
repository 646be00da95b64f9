"""The report a district office receives: one self-contained report.html (and report.pdf, report.docx).

The content is assembled once (:func:`report_content`: sections of paragraphs, tables and figures, in
Chinese or English from :mod:`lifecircle.present.wording`) and rendered twice: to HTML that prints on A4
(print CSS, the Noto Sans CJK subset and every figure embedded as ``data:`` URIs, nothing fetched) and
to a Word document for offices that edit before filing. Headless Chromium, where installed, prints the
HTML to ``report.pdf`` with networking off.

* :func:`write_report_html`, :func:`write_report_pdf`, :func:`write_report_docx` write one file each at a
  given path; :func:`write_report` writes the three side by side;
* :func:`write_report_files` is what ``lifecircle analyze`` calls: ``units_chart.png``, ``results.xlsx``
  and the report into its output run (:mod:`lifecircle.present.outputs`);
* :func:`report_from_folder` rebuilds them from a folder (``lifecircle report DIR``).
"""

from __future__ import annotations

import base64
import html
import io
import logging
import math
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..config import ALL, CATEGORIES
from ..errors import InputDataError, LifecircleError
from ..read.files import atomic_path
from ..read.osm import OSM_CREDIT
from .fonts import FONT_CREDIT, FONT_FAMILY, font_face_css
from .wording import all_fields, category_name, detect_lang, header, text
from .workbook import analysis_tables, coverage_table, fixed_zip, folder_tables, report_date, write_results_xlsx

log = logging.getLogger("lifecircle")

__all__ = ["Report", "report_content", "write_report_html", "write_report_pdf",
           "write_report_docx", "write_report", "write_report_files", "report_from_folder", "chromium_path",
           "FIGURE_ORDER"]

STUDY_AREA = "study_area"
#: The figures of a folder in the order the report shows them (others follow by name).
FIGURE_ORDER = ("coverage_map.png", "units_chart.png", "coverage_curve.png")
#: Rows of the gap and site tables.
TOP_GAPS = 12
TOP_SITES = 10
_ZH_NUMERALS = "一二三四五六七八九十"
_NAME_COLUMNS = ("name", "名称", "小区", "小区名称", "xiaoqu", "estate", "community", "address", "地址")


# --------------------------------------------------------------------------------------------------
# the content: sections of blocks, shared by the HTML and the Word renderers


@dataclass
class Para:
    """A paragraph; ``kind`` is ``""``, ``"big"`` (the headline), ``"good"``/``"bad"`` or ``"note"``."""

    text: str
    kind: str = ""


@dataclass
class Table:
    """A table of formatted cells; ``numeric[j]`` right-aligns column j; ``marked[i]`` flags row i."""

    columns: list[str]
    rows: list[list[str]]
    numeric: list[bool] = field(default_factory=list)
    marked: list[bool] = field(default_factory=list)
    caption: str = ""
    kind: str = ""  # "kv": a two-column parameter table
    wrap: list[bool] = field(default_factory=list)  # columns of long text that may wrap (others never do)


@dataclass
class Figure:
    """A PNG embedded as it is."""

    png: bytes
    caption: str
    name: str = ""
    new_page: bool = False


@dataclass
class Headline:
    """The headline: a big share and the sentence it belongs to; ``good`` when it meets the target."""

    share: str
    text: str
    good: bool


@dataclass
class Items:
    """A bulleted list."""

    items: list[str]


@dataclass
class Section:
    title: str
    blocks: list[Any]


@dataclass
class Report:
    """What the report says, before rendering: title, subtitle and sections, all in ``lang``."""

    lang: str
    title: str
    subtitle: str
    sections: list[Section]
    date: str = "1980-01-01"

    def words(self) -> str:
        """Every character the report shows (for the font subset)."""
        parts = [self.title, self.subtitle]
        for s in self.sections:
            parts.append(s.title)
            for b in s.blocks:
                if isinstance(b, Para):
                    parts.append(b.text)
                elif isinstance(b, Headline):
                    parts += [b.share, b.text]
                elif isinstance(b, Table):
                    parts += [b.caption, *b.columns, *(c for r in b.rows for c in r)]
                elif isinstance(b, Figure):
                    parts.append(b.caption)
                elif isinstance(b, Items):
                    parts += b.items
        return "\n".join(parts)


def _pct(v: Any, digits: int = 1) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "—"
    return "—" if math.isnan(f) else f"{f * 100:.{digits}f}%"


def _num(v: Any) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "—"
    return "—" if math.isnan(f) else f"{f:,.0f}"


def _mins(v: Any) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "—"
    return "—" if not math.isfinite(f) else f"{f:.1f}"


def _finite(v: Any) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _str(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return ""
    return str(v)


def _label(prefix: str, value: Any, lang: str) -> str:
    """A coded value (``osm``, ``points``…) in words when the dictionary has it, else as it is."""
    from .wording import TEXT

    key = f"{prefix}{value}"
    return text(key, lang) if key in TEXT else str(value)


def _reported(cov: pd.DataFrame, cfg: Any) -> list[str]:
    cats = [c for c in cfg.categories if c in set(cov.category)]
    return cats + ([ALL] if ALL in set(cov.category) else [])


def _figures_in(folder: Path) -> dict[str, bytes]:
    pngs = sorted(folder.glob("*.png"), key=lambda p: (FIGURE_ORDER.index(p.name) if p.name in FIGURE_ORDER
                                                         else len(FIGURE_ORDER), p.name))
    return {p.name: p.read_bytes() for p in pngs}


def report_content(analysis: Any, *, lang: str | None = None, tables: Mapping[str, Any] | None = None,
                   figures: Mapping[str, bytes] | None = None, folder_name: str = "DIR") -> Report:
    """Assemble what the report says (sections of paragraphs, tables and figures) in ``lang``.

    Parameters
    ----------
    analysis : lifecircle.Analysis
        Or the folder view of :func:`lifecircle.present.outputs.read_analysis_folder`.
    lang : {"zh", "en"}, optional
        Default: ``zh`` when the unit or facility names are Chinese (:func:`detect_lang`).
    tables : mapping, optional
        ``sites_needed``, ``sites``, ``decisions``, ``unsnapped``, ``official`` (found vs official counts
        of :func:`lifecircle.read.inventory.compare_with_official`), ``census_methods``; default what the
        analysis carries (:func:`lifecircle.present.workbook.folder_tables` reads them from a folder).
    figures : mapping of name to PNG bytes, optional
        The figures to embed (``coverage_map.png``…), in order.

    Examples
    --------
    >>> from lifecircle import analyze
    >>> from lifecircle.datasets import toy_town_osm
    >>> r = report_content(analyze(toy_town_osm(), admin_level=8), lang="en")
    >>> [s.title for s in r.sections][:3]
    ['1. Headline', '2. Coverage by category', '3. Units ranked']
    >>> r.sections[0].blocks[0].text
    '44.2% of residents can walk to all four facility categories (health, elderly care, culture, sports) within 15 minutes'
    """
    lang = lang or detect_lang(analysis)
    text("title", lang)  # checks the language
    t = analysis_tables(analysis, tables)
    s = analysis.summary
    cfg = analysis.config
    cov = coverage_table(analysis)
    head = float(cfg.headline_minutes)
    cats = _reported(cov, cfg)
    unit_rows = cov[cov.unit != STUDY_AREA]
    n_units = unit_rows.unit.nunique()
    numbers = iter(range(1, 100))

    def title(key: str) -> str:
        n = next(numbers)
        label = _ZH_NUMERALS[n - 1] if lang == "zh" and n <= 10 else (f"十{_ZH_NUMERALS[n - 11]}" if lang == "zh" else str(n))
        return text(key, lang, n=label) if "{n}" in text(key, "en") else text(key, lang)

    created = str(s.get("created", ""))[:10]
    subtitle = text("subtitle", lang, pop=_num(s["residents"]["population"]),
                    units=text("n_units", lang, n=n_units) if n_units else text("no_units", lang),
                    speed=f"{cfg.walk_speed_kmh:g}", date=created, version=s.get("lifecircle_version", ""))
    sections = [
        Section(title("s_headline"), _headline_blocks(s, cfg, cov, cats, head, lang, t)),
        Section(title("s_categories"), _category_blocks(s, cfg, cov, cats, lang)),
    ]
    ur = s.get("urban_rural") or {}
    if ur.get("categories"):
        sections.append(Section(title("s_urban"), _urban_blocks(ur, cfg, lang)))
    figs = dict(figures or {})
    if n_units:
        blocks = _unit_blocks(s, cfg, cov, cats, head, lang, t)
        if "units_chart.png" in figs:
            blocks.insert(2, Figure(figs.pop("units_chart.png"), text("fig_units_chart", lang,
                                                                        target=f"{cfg.target * 100:g}%"),
                                    "units_chart.png"))
        sections.append(Section(title("s_units"), blocks))
    equity_figs = {"lorenz.png": figs.pop("lorenz.png")} if s.get("equity") and "lorenz.png" in figs else {}
    sections.append(Section(title("s_maps"), _figure_blocks(figs, cfg, lang)))
    sections.append(Section(title("s_gaps"), _gap_blocks(analysis, cfg, head, lang)))
    sections.append(Section(title("s_sites"), _site_blocks(t, lang)))
    if s.get("equity"):
        sections.append(Section(title("s_equity"), _equity_blocks(s, equity_figs, lang)))
    sections.append(Section(title("s_completeness"), _completeness_blocks(analysis, s, cfg, lang, t)))
    sections.append(Section(title("s_method"), _method_blocks(s, cfg, lang)))
    sections.append(Section(title("s_sources"), _source_blocks(s, lang, folder_name)))
    return Report(lang, text("title", lang), subtitle, sections, report_date(s))


def _head_row(cov: pd.DataFrame, category: str, head: float, unit: str = STUDY_AREA):
    r = cov[(cov.unit == unit) & (cov.category == category) & np.isclose(cov.minutes, head)]
    return None if r.empty else r.iloc[0]


def _headline_blocks(s, cfg, cov, cats, head, lang, t) -> list[Any]:
    main = ALL if ALL in cats else cats[0]
    r = _head_row(cov, main, head)
    target = f"{cfg.target * 100:g}%"
    big = (text("headline_all", lang, share=_pct(r.share), minutes=f"{head:g}", **all_fields(cfg.categories, lang)) if main == ALL else
           text("headline_one", lang, share=_pct(r.share), minutes=f"{head:g}", category=category_name(main, lang, categories=cfg.categories)))
    met = bool(r.share >= cfg.target - 1e-12)
    blocks: list[Any] = [Headline(_pct(r.share), big, met),
                         Para(text("target_met", lang, target=target) if met else
                              text("target_not_met", lang, target=target, people=_num(r.population_to_cover)),
                              "good" if met else "bad")]
    per = []
    for c in cats:
        if c == ALL:
            continue
        rc = _head_row(cov, c, head)
        per.append(f"{category_name(c, lang, categories=cfg.categories)} {_pct(rc.share)}{'' if rc.share >= cfg.target - 1e-12 else ' ×'}")
    if per:
        blocks.append(Para(f"{text('per_category_line', lang)}（≤{head:g} 分钟）：" + " · ".join(per) if lang == "zh"
                           else f"{text('per_category_line', lang)} (≤{head:g} min): " + " · ".join(per)))
    ranking = s.get("unit_ranking") or []
    if ranking:
        below = sum(1 for u in ranking if not u["meets_target"])
        blocks.append(Para(text("units_below", lang, below=below, total=len(ranking))))
    colon = "：" if lang == "zh" else ": "
    blocks.append(Para(text("target_source", lang) + colon + _str(s["parameters"].get("target_source")), "note"))
    blocks += _standard_blocks(s.get("standard") or {}, lang, t)
    return blocks


def _standard_blocks(st: Mapping[str, Any], lang: str, t) -> list[Any]:
    if not st:
        return []
    colon = "：" if lang == "zh" else ": "
    kept = sum((st.get("kept") or {}).values())
    dropped_by = st.get("dropped") or {}
    dropped = sum(sum(v.values()) for v in dropped_by.values())
    name_title = st.get("title") if lang == "zh" else (st.get("title_en") or st.get("title"))
    blocks: list[Any] = [Para(text("standard", lang) + colon + text("standard_line", lang, title=_str(name_title),
                                                                     name=_str(st.get("name")), kept=_num(kept),
                                                                     dropped=_num(dropped)))]
    why = _str(st.get("chosen"))
    if lang == "zh" and why.startswith("auto: the study area is in China"):
        why = text("standard_auto_zh", "zh")
    if why:
        blocks.append(Para(text("standard_why", lang) + colon + why, "note"))
    rows = [[category_name(c, lang), reason, _num(n)] for c in CATEGORIES for reason, n in
            (dropped_by.get(c) or {}).items() if n]
    if rows:
        blocks.append(Table([text("category", lang), text("dropped_reasons", lang), text("facilities", lang)], rows,
                            [False, False, True], wrap=[False, True, False]))
    return blocks


def _category_blocks(s, cfg, cov, cats, lang) -> list[Any]:
    study = cov[cov.unit == STUDY_AREA]
    minutes = sorted(study.minutes.unique())
    head = float(cfg.headline_minutes)
    cols = [text("category", lang), text("facilities", lang), *[text("within_min", lang, m=f"{m:g}") for m in minutes],
            text("target", lang), text("to_cover", lang)]
    rows, marked = [], []
    for c in cats:
        g = study[study.category == c].set_index("minutes")
        h = g.loc[head] if head in g.index else g.iloc[-1]
        met = bool(h.share >= cfg.target - 1e-12)
        fac = (s.get("categories") or {}).get(c, {}).get("facilities")
        rows.append([category_name(c, lang, categories=cfg.categories), _num(fac), *[_pct(g.loc[m].share) if m in g.index else "—" for m in minutes],
                     text("met", lang) if met else "× " + text("not_met", lang), _num(h.population_to_cover)])
        marked.append(not met)
    blocks: list[Any] = [Table(cols, rows, [False, True] + [True] * len(minutes) + [False, True], marked)]
    tiers = (s.get("standard") or {}).get("tiers")
    if tiers:
        labels = {ty["key"]: (ty["label"] if lang == "zh" else ty.get("label_en") or ty["label"])
                  for ty in (s.get("standard") or {}).get("types", [])}
        trows = [[labels.get(k, k), category_name(v["category"], lang, categories=cfg.categories), _mins(v.get("tier_minutes")), _pct(v["share"]),
                  text("met", lang) if v["meets_target"] else "× " + text("not_met", lang)] for k, v in tiers.items()]
        blocks.append(Table([header("facility_type", lang), text("category", lang), header("minutes", lang),
                             header("share", lang), text("target", lang)], trows, [False, False, True, True, False],
                            [r[-1].startswith("×") for r in trows]))
    return blocks


def _urban_blocks(ur, cfg, lang) -> list[Any]:
    rows = []
    for c, v in ur["categories"].items():
        rows.append([category_name(c, lang, categories=cfg.categories), _pct(v.get("urban")), _num(v.get("urban_population")), _pct(v.get("rural")),
                     _num(v.get("rural_population")), "—" if v.get("gap_pp") is None else f"{v['gap_pp']:.1f}"])
    cols = [text("category", lang), text("urban", lang), text("population", lang), text("rural", lang),
            text("population", lang), text("gap_pp", lang)]
    colon = "：" if lang == "zh" else ": "
    return [Table(cols, rows, [False, True, True, True, True, True]),
            Para(text("urban_method", lang) + colon + _str(ur.get("method")), "note")]


def _unit_blocks(s, cfg, cov, cats, head, lang, t) -> list[Any]:
    ranking = pd.DataFrame(s.get("unit_ranking") or [])
    units = cov[(cov.unit != STUDY_AREA) & np.isclose(cov.minutes, head)]
    if ranking.empty:  # an older folder: rank here the same way
        main = ALL if ALL in cats else cats[0]
        r = units[units.category == main].sort_values(["share", "population"], ascending=[True, False])
        ranking = pd.DataFrame({"rank": np.arange(1, len(r) + 1), "unit": r.unit.to_numpy(), "unit_type": "",
                                "population": r.population.to_numpy(), "share": r.share.to_numpy(),
                                "meets_target": r.meets_target.to_numpy(),
                                "population_to_cover": r.population_to_cover.to_numpy(), "category": main})
    ranking["unit"] = ranking["unit"].astype(str)
    main = str(ranking["category"].iloc[0])
    share = units.pivot_table(index="unit", columns="category", values="share", aggfunc="first")
    singles = [c for c in cats if c != ALL and c != main]
    target = cfg.target - 1e-12
    cols = [text("rank", lang), text("unit", lang), text("unit_type", lang), text("population", lang),
            *[category_name(c, lang, categories=cfg.categories) for c in singles],
            text("share_all_at", lang, m=f"{head:g}", **all_fields(cfg.categories, lang)) if main == ALL else category_name(main, lang, categories=cfg.categories),
            text("to_cover", lang)]
    rows, marked = [], []
    for r in ranking.itertuples():
        cells = [str(r.rank), r.unit, _str(getattr(r, "unit_type", "")), _num(r.population)]
        for c in singles:
            v = share.at[r.unit, c] if r.unit in share.index and c in share.columns else float("nan")
            cells.append(_pct(v) + ("" if not (v == v) or v >= target else " ×"))
        cells += [_pct(r.share) + ("" if r.meets_target else " ×"), _num(r.population_to_cover)]
        rows.append(cells)
        marked.append(not bool(r.meets_target))
    note = text("units_note", lang, target=f"{cfg.target * 100:g}%", m=f"{head:g}",
                                        **all_fields(cfg.categories, lang)) if main == ALL else \
        text("units_note_one", lang, target=f"{cfg.target * 100:g}%")
    blocks: list[Any] = [Para(note, "note"),
                         Table(cols, rows, [True, False, False, True] + [True] * (len(singles) + 2), marked,
                               wrap=[False, True] + [False] * (len(cols) - 2))]
    needed = t.get("sites_needed")
    if needed is not None and len(needed):
        nd = needed.copy()
        nd["unit"] = nd["unit"].astype(str)
        order = [u for u in ranking.unit if u in set(nd.unit)] + ([STUDY_AREA] if STUDY_AREA in set(nd.unit) else [])
        ncats = [c for c in CATEGORIES if c in set(nd.category)]
        piv = nd.pivot_table(index="unit", columns="category", values="sites_needed", aggfunc="first")
        nrows = []
        for u in order:
            label = (text("study_area", lang) if u == STUDY_AREA else u)
            nrows.append([label, *[_num(piv.at[u, c]) if c in piv.columns and u in piv.index and
                                   piv.at[u, c] == piv.at[u, c] else "—" for c in ncats]])
        blocks.append(Table([text("unit", lang), *[category_name(c, lang, categories=cfg.categories) for c in ncats]], nrows,
                            [False] + [True] * len(ncats), caption=text("sites_needed", lang)))
        blocks.append(Para(text("sites_note", lang), "note"))
    return blocks


def _figure_blocks(figs: Mapping[str, bytes], cfg, lang) -> list[Any]:
    if not figs:
        return [Para(text("no_figures", lang), "note")]
    captions = {"coverage_map.png": text("fig_coverage_map", lang, **all_fields(cfg.categories, lang)),
                "coverage_curve.png": text("fig_coverage_curve", lang),
                "units_chart.png": text("fig_units_chart", lang, target=f"{cfg.target * 100:g}%")}
    blocks = []
    for i, (name, png) in enumerate(figs.items()):
        # the big map fills its page; the charts that follow share the next one
        new_page = i > 0 and list(figs)[0] == "coverage_map.png" and i == 1
        blocks.append(Figure(png, captions.get(name, text("fig_other", lang, name=name)), name, new_page))
    return blocks


def _name_column(frame: Any) -> str | None:
    cols = {str(c).lower(): c for c in getattr(frame, "columns", ())}
    for c in _NAME_COLUMNS:
        if c.lower() in cols:
            return cols[c.lower()]
    return None


def _near_names(gaps: pd.DataFrame, analysis: Any, lang: str) -> list[str]:
    """A nearest named resident (小区) for each gap; else the nearest named facility with its distance."""
    lon = gaps["lon"].to_numpy(dtype=float)
    lat = gaps["lat"].to_numpy(dtype=float)
    k = np.cos(np.radians(np.nanmean(lat) if len(lat) else 0.0))

    def nearest(frame, col):
        named = frame[frame[col].notna() & (frame[col].astype(str).str.strip() != "")]
        if named.empty:
            return None
        pts = named.geometry if (named.geometry.geom_type == "Point").all() else named.geometry.representative_point()
        x, y = pts.x.to_numpy(), pts.y.to_numpy()
        # gaps are few (the table's rows): one row of distances per gap, vectorised over the points
        d2 = ((x[None, :] - lon[:, None]) * k) ** 2 + (y[None, :] - lat[:, None]) ** 2
        j = np.argmin(d2, axis=1)
        dist_m = np.sqrt(d2[np.arange(len(j)), j]) * 111_195.0
        return named[col].astype(str).to_numpy()[j], dist_m

    res = getattr(analysis, "residents", None)
    col = _name_column(res) if res is not None else None
    found = nearest(res, col) if col else None
    if found is None:
        fac = getattr(analysis, "facilities", None)
        col = _name_column(fac) if fac is not None else None
        found = nearest(fac, col) if col else None
    if found is None:
        return [""] * len(gaps)
    names, dist = found
    unit = "米" if lang == "zh" else "m"
    return [f"{n}（{d:,.0f} {unit}）" if lang == "zh" else f"{n} ({d:,.0f} {unit})" for n, d in zip(names, dist)]


def _gap_blocks(analysis, cfg, head, lang) -> list[Any]:
    gaps = getattr(analysis, "gaps", None)
    if gaps is None:
        return [Para(text("gaps_missing", lang), "note")]
    if not len(gaps):
        return [Para(text("no_gaps", lang), "good")]
    g = pd.DataFrame(gaps.drop(columns="geometry", errors="ignore")).sort_values("population", ascending=False)
    g = g.head(TOP_GAPS).reset_index(drop=True)
    near = _near_names(g, analysis, lang)
    if "largest_name" in g:  # the gap's own most populous named resident point (小区) comes first
        near = [_str(n) or fallback for n, fallback in zip(g["largest_name"], near)]
    cols = [text("gap", lang), text("category", lang), text("unit", lang), text("population", lang),
            text("median_minutes", lang), text("near", lang), text("lonlat", lang)]
    rows = []
    for r, n in zip(g.itertuples(), near):
        med = getattr(r, "median_minutes", float("nan"))
        rows.append([str(r.gap), category_name(r.category, lang, categories=cfg.categories), _str(getattr(r, "unit", "")), _num(r.population),
                     _mins(med) if _finite(med) else text("unreachable", lang), n, f"{r.lon:.5f}, {r.lat:.5f}"])
    cells = "100 m" if "cells" in g else ""
    return [Para(text("gaps_note", lang, m=f"{head:g}", cells=cells), "note"),
            Table(cols, rows, [True, False, False, True, True, False, False],
                  wrap=[False, False, False, False, False, True, False])]


def _site_blocks(t, lang) -> list[Any]:
    sites = t.get("sites")
    if sites is None or not len(sites):
        return [Para(text("no_sites", lang), "note")]
    sites = pd.DataFrame(sites.drop(columns="geometry", errors="ignore"))
    name_cols = [c for c in sites.columns if str(c).lower() in ("name", "名称", "address", "地址")]
    shown = sites.sort_values(["category", "rank"]).groupby("category", sort=False).head(TOP_SITES)
    shown = shown.iloc[np.argsort([CATEGORIES.index(c) if c in CATEGORIES else 9 for c in shown.category],
                                  kind="stable")]
    cols = [text("category", lang), text("rank", lang), text("unit", lang), text("name_address", lang),
            text("lonlat", lang), text("newly_covered", lang), text("cumulative_share", lang)]
    rows = []
    for r in shown.itertuples(index=False):
        d = r._asdict()
        label = " · ".join(_str(d[c]) for c in name_cols if _str(d.get(c)))
        if not label and _str(d.get("osm_node_id")):
            label = text("street_node", lang, node=_str(d["osm_node_id"]))
        unit = _str(d.get("unit"))
        rows.append([category_name(d["category"], lang), str(d["rank"]),
                     text("study_area", lang) if unit == STUDY_AREA else unit, label,
                     f"{float(d['lon']):.5f}, {float(d['lat']):.5f}", _num(d.get("newly_covered_population")),
                     _pct(d.get("cumulative_share"))])
    return [Para(text("sites_intro", lang, k=TOP_SITES), "note"),
            Table(cols, rows, [False, True, False, False, False, True, True],
                  wrap=[False, False, True, True, False, False, False])]


def _equity_blocks(s: Mapping[str, Any], figs: dict[str, bytes], lang: str) -> list[Any]:
    """Supply and demand (2SFCA capacity within reach per 1,000) and its inequality, per category and group."""
    eq = s.get("equity") or {}
    acc = (s.get("accessibility") or {}).get("study_area") or {}
    cols = [text("category", lang), text("group", lang), text("eq_capacity", lang), text("eq_access", lang),
            text("eq_standard", lang), "Gini", "Theil", "Palma", text("eq_worst_unit", lang)]
    rows = []
    for cat in [c for c in CATEGORIES if c in eq]:
        for group, by in eq[cat].items():
            r = ((by.get("access_2sfca") or {}).get("residents")) or {}
            u = ((by.get("access_2sfca") or {}).get("units")) or {}
            a = (acc.get(cat) or {}).get(group) or {}

            def num(v, digits=2):
                try:
                    f = float(v)
                except (TypeError, ValueError):
                    return "—"
                return "∞" if f == float("inf") else ("—" if f != f else f"{f:.{digits}f}")

            rows.append([category_name(cat, lang), text("everyone", lang) if group == "population" else str(group),
                         num(a.get("capacity_per_1000")), num(a.get("access_2sfca_per_1000")),
                         num(a.get("standard_per_1000")), num(r.get("gini")), num(r.get("theil")),
                         num(r.get("palma")), _str(u.get("worst_unit"))])
    blocks: list[Any] = [Para(text("equity_note", lang), "note"),
                         Table(cols, rows, [False, False] + [True] * 6 + [False])]
    if "lorenz.png" in figs:
        blocks.append(Figure(figs.pop("lorenz.png"), text("fig_lorenz", lang), "lorenz.png"))
    notes = (s.get("accessibility") or {}).get("notes") or []
    if notes:
        blocks.append(Items([str(n) for n in notes]))
    return blocks


def _completeness_blocks(analysis, s, cfg, lang, t) -> list[Any]:
    colon = "：" if lang == "zh" else ": "
    blocks: list[Any] = []
    fac = getattr(analysis, "facilities", None)
    if fac is not None and len(fac) and {"category", "source"} <= set(fac.columns):
        ct = pd.crosstab(fac["category"], fac["source"].fillna("?"))
        sources = list(ct.columns)
        rows = []
        for c in [c for c in CATEGORIES if c in ct.index]:
            rows.append([category_name(c, lang, categories=cfg.categories), *[_num(ct.at[c, src]) for src in sources], _num(ct.loc[c].sum())])
        rows.append([text("total", lang), *[_num(ct[src].sum()) for src in sources], _num(ct.values.sum())])
        blocks.append(Table([text("category", lang), *[_label("src_", x, lang) for x in sources], text("total", lang)],
                            rows,
                            [False] + [True] * (len(sources) + 1), caption=text("c_facilities", lang)))
    off = t.get("official")
    if off is not None and len(off):
        rows = [[text("total", lang) if str(r.unit) == "total" else str(r.unit), _num(r.found), _num(r.official),
                 _pct(r.found_share)] for r in off.itertuples()]
        blocks.append(Table([text("unit", lang), text("found", lang), text("official", lang), text("found_share", lang)],
                            rows, [False, True, True, True], caption=text("c_official", lang)))
    else:
        blocks.append(Para(text("c_official_none", lang), "note"))
    r = s["residents"]
    src = (text("pop_estimate", lang) if r.get("population_is_estimate")
           else _label("pop_", r["population_source"], lang))
    kv = [[text("c_population", lang), src]]
    census = s.get("census")
    if census:
        kv.append([text("c_census", lang), f"{_num(census.get('total'))} · {census.get('join', '')} · "
                                           f"{census.get('method', '')}"])
    unsn = t.get("unsnapped")
    unsn_pop = float(unsn.loc[unsn["kind"] == "resident", "population"].fillna(0).sum()) if unsn is not None and len(unsn) else 0.0
    kv.append([text("c_unsnapped", lang), text("c_unsnapped_line", lang, res=_num(r.get("unsnapped_points", 0)),
                                               pop=_num(unsn_pop), fac=_num(s["facilities"].get("unsnapped", 0)),
                                               snap=f"{cfg.max_snap_m:g}")])
    fs = s["facilities"]
    dup = fs.get("merged_duplicates")
    kv.append([text("c_duplicates", lang), text("c_duplicates_unknown", lang) if dup is None else
               text("c_duplicates_line", lang, n=_num(dup))])
    blocks.append(Table([text("parameter", lang), text("value", lang)], kv, [False, False], kind="kv"))
    checks = s.get("crs_checks") or {}
    if checks:
        rows = []
        for key, c in checks.items():
            declared = _str(c.get("declared"))
            conv = (" → WGS84" if declared.lower() in ("gcj02", "bd09") else "")
            verdict = _str(c.get("verdict")) + (f" ({c['suspected']})" if c.get("suspected") else "")
            rows.append([_str(c.get("input")) or key, declared + conv, _str(c.get("declared_by")), verdict,
                         _str(c.get("warning") or c.get("fix"))])
        blocks.append(Table([text("input", lang), text("declared", lang), header("source", lang), text("verdict", lang),
                             header("note", lang)], rows, [False] * 5, [bool(c.get("warning")) for c in checks.values()],
                            caption=text("c_crs", lang), wrap=[True, False, True, False, True]))
    else:
        blocks.append(Para(text("c_crs", lang) + colon + text("c_crs_none", lang), "note"))
    warnings = list(s.get("warnings") or [])
    blocks.append(Para(text("c_warnings", lang) + colon + ("" if warnings else text("c_warnings_none", lang)),
                       "bad" if warnings else ""))
    if warnings:
        blocks.append(Items(warnings))
    return blocks


def _method_blocks(s, cfg, lang) -> list[Any]:
    p = s["parameters"]
    n = s["network"]
    head = float(cfg.headline_minutes)
    dist = cfg.walk_speed_kmh * 1000 / 60 * head
    st = s.get("standard") or {}
    kv = [
        [text("m_speed", lang), text("m_speed_value", lang, speed=f"{cfg.walk_speed_kmh:g}", m=f"{head:g}",
                                     dist=f"{dist:,.0f}")],
        [text("m_speed_source", lang), _str(p.get("walk_speed_source"))],
        [text("m_thresholds", lang), text("m_minutes", lang, mins=", ".join(f"{m:g}" for m in cfg.minutes),
                                          head=f"{head:g}")],
        [text("m_target", lang), f"{cfg.target * 100:g}%"],
        [text("m_coverage", lang), text("m_coverage_value", lang, **all_fields(cfg.categories, lang))],
        [text("m_snapping", lang), text("m_snapping_value", lang, snap=f"{cfg.max_snap_m:g}")],
        [text("m_cutoff", lang), f"{cfg.cutoff_minutes:g} min"],
        [text("m_network", lang), text("m_network_value", lang, nodes=_num(n.get("nodes")), edges=_num(n.get("edges")),
                                       km=f"{float(n.get('length_km', 0)):,.1f}") + f" · {n.get('crs', '')}"],
        [text("m_residents", lang), f"{_num(s['residents']['points'])} · {_num(s['residents']['population'])}"],
        [text("m_categories", lang), ", ".join(category_name(c, lang, categories=cfg.categories) for c in cfg.categories)],
        [text("standard", lang), f"{st.get('name', '')} — {st.get('title', '') if lang == 'zh' else st.get('title_en') or st.get('title', '')}"],
        [text("urban_method", lang), _str((s.get("urban_rural") or {}).get("method")) or text("urban_none", lang)],
    ]
    return [Table([text("parameter", lang), text("value", lang)], kv, [False, False], kind="kv")]


def _source_blocks(s, lang, folder_name) -> list[Any]:
    rows = []
    for key, v in (s.get("inputs") or {}).items():
        if not isinstance(v, Mapping):
            continue
        where = Path(v["path"]).name if v.get("path") else _str(v.get("source"))
        extra = ", ".join(f"{k}={v[k]}" for k in ("crs", "admin_level", "count") if v.get(k) is not None)
        rows.append([key, where, _str(v.get("sha256"))[:12], extra])
    blocks: list[Any] = [Table([text("input", lang), text("src_file", lang), "SHA-256", header("detail", lang)], rows,
                               [False] * 4, caption=text("src_inputs", lang), wrap=[False, True, False, True])]
    st_sources = list(((s.get("standard") or {}).get("sources") or {}).values())
    if st_sources:
        blocks.append(Para(text("src_standard", lang), ""))
        blocks.append(Items([str(x) for x in st_sources]))
    blocks.append(Para(text("src_credits", lang), ""))
    blocks.append(Items([f"{s.get('attribution') or OSM_CREDIT} — openstreetmap.org/copyright", FONT_CREDIT,
                         f"lifecircle {s.get('lifecircle_version', '')} (MIT)"]))
    blocks.append(Para(text("src_reproduce", lang, dir=folder_name), "note"))
    return blocks


# --------------------------------------------------------------------------------------------------
# HTML

_CSS = """
@page { size: A4; margin: 16mm 15mm 18mm 15mm;
  @bottom-left { content: "%(footer)s"; font: 7.5pt '%(family)s', sans-serif; color: #666; }
  @bottom-right { content: counter(page) " / " counter(pages); font: 7.5pt '%(family)s', sans-serif; color: #666; } }
html { font-family: '%(family)s', sans-serif; font-size: 10pt; line-height: 1.45; color: #1d1d1d; }
body { margin: 0 auto; max-width: 190mm; padding: 8mm 6mm; background: #fff; }
header.lc-title { border-bottom: 2px solid #1d4e89; margin-bottom: 5mm; padding-bottom: 2mm; }
header.lc-title h1 { font-size: 18pt; margin: 0 0 1mm 0; color: #1d4e89; font-weight: 400; }
header.lc-title p { margin: 0; color: #555; font-size: 9pt; }
section { margin-bottom: 10mm; }
h2 { font-size: 13.5pt; font-weight: 400; color: #1d4e89; border-bottom: 1px solid #c9d6e8; padding-bottom: 1mm;
  margin: 0 0 3mm 0; break-after: avoid; }
p { margin: 0 0 2.2mm 0; }
p.kpi { display: flex; align-items: center; gap: 5mm; margin: 3mm 0 4mm 0; padding: 4mm 5mm;
  background: #f4f7fb; border-left: 4px solid #1d4e89; }
p.kpi .num { font-size: 30pt; line-height: 1; white-space: nowrap; }
p.kpi .num.good { color: #17663a; } p.kpi .num.bad { color: #b3261e; }
p.kpi .says { font-size: 13pt; line-height: 1.4; }
p.good { color: #17663a; font-weight: 700; }
p.bad { color: #b3261e; font-weight: 700; }
p.note { color: #555; font-size: 8.5pt; }
table { border-collapse: collapse; width: 100%%; margin: 1mm 0 4mm 0; font-size: 8.6pt; }
caption { caption-side: top; text-align: left; font-weight: 700; padding: 1mm 0; color: #333; }
th { background: #eef2f8; font-weight: 700; text-align: left; border-bottom: 1.2px solid #1d4e89; }
th, td { padding: 1.1mm 1.6mm; vertical-align: top; white-space: nowrap; }
td.w, th.w { white-space: normal; overflow-wrap: anywhere; }
th { white-space: normal; }
td { border-bottom: 0.5px solid #d5d9e0; }
td.n, th.n { text-align: right; white-space: nowrap; }
tr.marked td { background: #fdeceb; }
table.kv td:first-child { width: 28%%; color: #444; }
thead { display: table-header-group; }
tr, img, figure { break-inside: avoid; page-break-inside: avoid; }
figure { margin: 2mm 0 5mm 0; text-align: center; }
figure img { max-width: 100%%; height: auto; }
figure.map img { max-height: 215mm; }
figure.chart img { max-height: 120mm; }
figcaption { font-size: 8.5pt; color: #444; margin-top: 1mm; }
ul { margin: 0 0 3mm 0; padding-left: 6mm; font-size: 8.8pt; }
li { margin-bottom: 0.8mm; overflow-wrap: anywhere; }
.lc-newpage { break-before: page; page-break-before: always; }
@media print {
  body { max-width: none; padding: 0; }
  section { break-before: page; page-break-before: always; margin: 0; }
  section:first-of-type { break-before: auto; page-break-before: auto; }
}
"""

_CJK_RUN = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uf900-\ufaff\uff00-\uffef]+")


def _esc(value: str, lang: str) -> str:
    """Escape for HTML; in an English page, mark Chinese runs ``lang="zh-CN"`` (simplified glyph forms)."""
    s = html.escape(str(value), quote=True)
    if lang == "zh":
        return s
    return _CJK_RUN.sub(lambda m: f'<span lang="zh-CN">{m.group(0)}</span>', s)


def _td_class(numeric: bool, wrap: bool) -> str:
    classes = [c for c, on in (("n", numeric), ("w", wrap)) if on]
    return f' class="{" ".join(classes)}"' if classes else ""


def _html_table(tb: Table, lang: str) -> str:
    num = tb.numeric or [False] * len(tb.columns)
    # by default only the last column wraps (notes, names); a kv table's value column wraps
    wrap = tb.wrap or [tb.kind == "kv" or j == len(tb.columns) - 1 for j in range(len(tb.columns))]
    cls = f' class="{tb.kind}"' if tb.kind else ""
    out = [f"<table{cls}>"]
    if tb.caption:
        out.append(f"<caption>{_esc(tb.caption, lang)}</caption>")
    if tb.kind != "kv":
        out.append("<thead><tr>" + "".join(f'<th{" class=n" if n else ""}>{_esc(c, lang)}</th>'
                                           for c, n in zip(tb.columns, num)) + "</tr></thead>")
    out.append("<tbody>")
    for i, row in enumerate(tb.rows):
        mark = ' class="marked"' if tb.marked and tb.marked[i] else ""
        out.append(f"<tr{mark}>" + "".join(f'<td{_td_class(n, w)}>{_esc(c, lang)}</td>'
                                           for c, n, w in zip(row, num, wrap)) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _html_block(b: Any, lang: str) -> str:
    if isinstance(b, Para):
        cls = f' class="{b.kind}"' if b.kind else ""
        return f"<p{cls}>{_esc(b.text, lang)}</p>"
    if isinstance(b, Headline):
        cls = "good" if b.good else "bad"
        rest = b.text[len(b.share):] if b.text.startswith(b.share) else b.text
        return (f'<p class="kpi"><span class="num {cls}">{_esc(b.share, lang)}</span>'
                f'<span class="says">{_esc(rest.strip(), lang)}</span></p>')
    if isinstance(b, Table):
        return _html_table(b, lang)
    if isinstance(b, Items):
        return "<ul>" + "".join(f"<li>{_esc(i, lang)}</li>" for i in b.items) + "</ul>"
    if isinstance(b, Figure):
        kind = "map" if b.name == "coverage_map.png" else "chart"
        page = " lc-newpage" if b.new_page else ""
        data = base64.b64encode(b.png).decode("ascii")
        return (f'<figure class="{kind}{page}"><img alt="{html.escape(b.caption)}" '
                f'src="data:image/png;base64,{data}"><figcaption>{_esc(b.caption, lang)}</figcaption></figure>')
    raise TypeError(f"unknown report block {type(b).__name__}")


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page (fonts and figures embedded, no script, nothing fetched).

    >>> r = Report("en", "Title", "sub", [Section("1. A", [Para("x < y"), Table(["a"], [["1"]], [True])])])
    >>> page = render_html(r)
    >>> "x &lt; y" in page and "@font-face" in page and "http" not in page.replace("http-equiv", "")
    True
    """
    lang = report.lang
    body = [f'<header class="lc-title"><h1>{_esc(report.title, lang)}</h1><p>{_esc(report.subtitle, lang)}</p></header>']
    sections = []
    for i, s in enumerate(report.sections):
        inner = "".join(_html_block(b, lang) for b in s.blocks)
        sections.append(f"<section><h2>{_esc(s.title, lang)}</h2>{inner}</section>")
    body_html = "".join(sections)
    footer = "lifecircle · " + ("15分钟社区生活圈" if lang == "zh" else "15-minute life circle")
    css = _CSS % {"family": FONT_FAMILY, "footer": footer}
    font_css = font_face_css(report.words() + footer + "0123456789/ ")
    html_lang = "zh-CN" if lang == "zh" else "en"
    return (f'<!DOCTYPE html>\n<html lang="{html_lang}">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
            f'font-src data:; style-src \'unsafe-inline\'">\n'
            f"<title>{html.escape(report.title)}</title>\n<style>{font_css}\n{css}</style>\n</head>\n<body>\n"
            f"<main>{''.join(body[:1])}{body_html}</main>\n</body>\n</html>\n")


def write_report_html(analysis: Any, path: str | os.PathLike[str], *, lang: str | None = None,
                      tables: Mapping[str, Any] | None = None, figures: Mapping[str, bytes] | None = None,
                      report: Report | None = None) -> Path:
    """Write ``report.html`` (one self-contained file; see :func:`report_content` for the parameters).

    ``figures`` defaults to the PNGs in the file's folder (``coverage_map.png``, ``units_chart.png``…).
    """
    path = Path(path)
    if report is None:
        figs = _figures_in(path.parent) if figures is None else figures
        report = report_content(analysis, lang=lang, tables=tables, figures=figs, folder_name=str(path.parent))
    page = render_html(report)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(page, encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------------
# PDF (headless Chromium)


def _fixed_pdf_dates(data: bytes, date: str) -> bytes:
    """Chromium's /CreationDate and /ModDate set to ``date`` at 00:00 (same length: the xref stays valid)."""
    stamp = "D:" + date.replace("-", "") + "000000"

    def sub(m: re.Match) -> bytes:
        old = m.group(2)
        new = (stamp + old[len(stamp):].decode("latin-1")).encode("latin-1") if len(old) >= len(stamp) else old
        return m.group(1) + new + b")"

    return re.sub(rb"(/(?:CreationDate|ModDate) \()(D:\d{14}[^)]*)\)", sub, data)


def chromium_path() -> str | None:
    """Debian's ``chromium`` (or ``chromium-browser``, ``google-chrome``) if installed, else None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def write_report_pdf(html_path: str | os.PathLike[str], pdf_path: str | os.PathLike[str], *,
                     date: str | None = None, timeout_s: float = 120.0) -> Path | None:
    """Print ``report.html`` to A4 PDF with headless Chromium, networking off; None when Chromium is absent.

    The page's embedded font goes into the PDF, so its text layer holds the Chinese text. ``date``
    (YYYY-MM-DD, the analysis date) replaces the print time in the PDF's metadata.
    """
    exe = chromium_path()
    if exe is None:
        log.info("report.pdf skipped: headless Chromium not found (apt-get install chromium); "
                 "print report.html from a browser instead")
        return None
    html_path = Path(html_path).resolve()
    pdf_path = Path(pdf_path)
    with tempfile.TemporaryDirectory(prefix="lifecircle-chromium-") as profile, atomic_path(pdf_path) as tmp:
        args = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",
                f"--user-data-dir={profile}", "--no-pdf-header-footer", "--run-all-compositor-stages-before-draw",
                f"--print-to-pdf={Path(tmp).resolve()}", html_path.as_uri()]
        try:
            p = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s,
                               env={**os.environ, "HOME": profile})
        except subprocess.TimeoutExpired:
            raise LifecircleError(f"Chromium did not print {html_path.name} within {timeout_s:g} s; open it in a "
                                  "browser and print it, or use --no-pdf") from None
        if p.returncode != 0 or not Path(tmp).is_file() or Path(tmp).stat().st_size == 0:
            tail = " ".join(p.stderr.split()[-30:])
            raise LifecircleError(f"Chromium could not print {html_path.name} (exit {p.returncode}: {tail[:300]}); "
                                  "use --no-pdf, or print report.html from a browser")
        if date is not None:
            Path(tmp).write_bytes(_fixed_pdf_dates(Path(tmp).read_bytes(), date))
    return pdf_path


# --------------------------------------------------------------------------------------------------
# Word


def _docx_fonts(doc: Any) -> None:
    from docx.oxml.ns import qn
    from docx.shared import Pt

    for name, east, size in (("Normal", "宋体", 10.5), ("Heading 1", "黑体", 15), ("Title", "黑体", 20)):
        st = doc.styles[name]
        st.font.name = "Arial"
        if size:
            st.font.size = Pt(size)
        rpr = st.element.get_or_add_rPr()
        fonts = rpr.find(qn("w:rFonts"))
        if fonts is None:
            fonts = rpr.makeelement(qn("w:rFonts"), {})
            rpr.append(fonts)
        fonts.set(qn("w:eastAsia"), east)


def render_docx(report: Report) -> bytes:
    """The report as a Word document (A4; one section a page; tables with a repeated header row).

    >>> r = Report("en", "Title", "sub", [Section("1. A", [Para("x"), Table(["a", "b"], [["1", "2"]], [True, True])])])
    >>> import docx, io
    >>> d = docx.Document(io.BytesIO(render_docx(r)))
    >>> [p.text for p in d.paragraphs][:3], d.tables[0].cell(1, 1).text
    (['Title', 'sub', '1. A'], '2')
    """
    try:
        import docx
        from docx.enum.table import WD_TABLE_ALIGNMENT
        from docx.enum.text import WD_ALIGN_PARAGRAPH
        from docx.oxml import OxmlElement
        from docx.oxml.ns import qn
        from docx.shared import Cm, Pt, RGBColor
    except ImportError:
        raise LifecircleError("report.docx needs python-docx: pip install python-docx") from None

    doc = docx.Document()
    sec = doc.sections[0]
    sec.page_width, sec.page_height = Cm(21.0), Cm(29.7)
    sec.left_margin = sec.right_margin = Cm(1.8)
    sec.top_margin, sec.bottom_margin = Cm(1.8), Cm(1.8)
    _docx_fonts(doc)
    doc.core_properties.title = report.title
    doc.core_properties.language = "zh-CN" if report.lang == "zh" else "en"
    doc.add_heading(report.title, level=0)
    doc.add_paragraph(report.subtitle)
    colours = {"good": RGBColor(0x17, 0x66, 0x3A), "bad": RGBColor(0xB3, 0x26, 0x1E), "note": RGBColor(0x55, 0x55, 0x55)}
    for i, s in enumerate(report.sections):
        h = doc.add_heading(s.title, level=1)
        if i:
            h.paragraph_format.page_break_before = True
        for b in s.blocks:
            if isinstance(b, Headline):
                p = doc.add_paragraph()
                run = p.add_run(b.text)
                run.font.size = Pt(14)
                run.bold = True
                run.font.color.rgb = colours["good" if b.good else "bad"]
            elif isinstance(b, Para):
                p = doc.add_paragraph()
                run = p.add_run(b.text)
                if b.kind in ("good", "bad"):
                    run.bold = True
                if b.kind in colours:
                    run.font.color.rgb = colours[b.kind]
                if b.kind == "note":
                    run.font.size = Pt(8.5)
            elif isinstance(b, Items):
                for item in b.items:
                    doc.add_paragraph(item, style="List Bullet")
            elif isinstance(b, Figure):
                doc.add_picture(io.BytesIO(b.png), width=Cm(17.0) if b.name == "coverage_map.png" else Cm(16.0))
                doc.paragraphs[-1].alignment = WD_ALIGN_PARAGRAPH.CENTER
                cap = doc.add_paragraph(b.caption)
                cap.alignment = WD_ALIGN_PARAGRAPH.CENTER
            elif isinstance(b, Table):
                if b.caption:
                    doc.add_paragraph().add_run(b.caption).bold = True
                kv = b.kind == "kv"
                t = doc.add_table(rows=(0 if kv else 1) + len(b.rows), cols=len(b.columns))
                t.style = "Table Grid"
                t.alignment = WD_TABLE_ALIGNMENT.CENTER
                num = b.numeric or [False] * len(b.columns)
                if not kv:
                    for j, c in enumerate(b.columns):
                        cell = t.rows[0].cells[j]
                        cell.text = c
                        cell.paragraphs[0].runs[0].bold = True
                    trpr = t.rows[0]._tr.get_or_add_trPr()
                    rep = OxmlElement("w:tblHeader")
                    rep.set(qn("w:val"), "true")
                    trpr.append(rep)
                for r_i, row in enumerate(b.rows):
                    cells = t.rows[r_i + (0 if kv else 1)].cells
                    for j, v in enumerate(row):
                        cells[j].text = v
                        if num[j]:
                            cells[j].paragraphs[0].alignment = WD_ALIGN_PARAGRAPH.RIGHT
                for row in t.rows:
                    for cell in row.cells:
                        for p in cell.paragraphs:
                            for run in p.runs:
                                run.font.size = Pt(8.5)
                doc.add_paragraph()
    buf = io.BytesIO()
    doc.save(buf)
    return fixed_zip(buf.getvalue(), report.date)


def write_report_docx(analysis: Any, path: str | os.PathLike[str], *, lang: str | None = None,
                      tables: Mapping[str, Any] | None = None, figures: Mapping[str, bytes] | None = None,
                      report: Report | None = None) -> Path:
    """Write ``report.docx``: the same content as report.html, editable in Word/WPS/LibreOffice."""
    path = Path(path)
    if report is None:
        figs = _figures_in(path.parent) if figures is None else figures
        report = report_content(analysis, lang=lang, tables=tables, figures=figs, folder_name=str(path.parent))
    data = render_docx(report)
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)
    return path


# --------------------------------------------------------------------------------------------------
# all of it


def write_report(analysis: Any, path_html: str | os.PathLike[str], *, lang: str | None = None, pdf: bool = True,
                 docx: bool = True, tables: Mapping[str, Any] | None = None,
                 figures: Mapping[str, bytes] | None = None) -> dict[str, Path]:
    """Write ``report.html`` at ``path_html`` and, beside it, ``report.pdf`` (when Chromium is installed and
    ``pdf``) and ``report.docx`` (when ``docx``); returns ``{file name: path}``.

    Examples
    --------
    >>> import tempfile, os
    >>> from lifecircle import analyze
    >>> from lifecircle.datasets import toy_town_osm
    >>> d = tempfile.mkdtemp()
    >>> sorted(write_report(analyze(toy_town_osm()), os.path.join(d, "report.html"), lang="en", pdf=False))
    ['report.docx', 'report.html']
    """
    path_html = Path(path_html)
    figs = _figures_in(path_html.parent) if figures is None else figures
    report = report_content(analysis, lang=lang, tables=tables, figures=figs, folder_name=str(path_html.parent))
    out = {path_html.name: write_report_html(analysis, path_html, report=report)}
    if pdf:
        p = write_report_pdf(path_html, path_html.with_suffix(".pdf"), date=report.date)
        if p is not None:
            out[p.name] = p
    if docx:
        d = write_report_docx(analysis, path_html.with_suffix(".docx"), report=report)
        out[d.name] = d
    return out


def _run_figures(run: Any) -> dict[str, bytes]:
    """The PNGs of an output run in report order: those it wrote (staged), and in a run that adds to the
    previous one, the previous run's figures it keeps."""
    names = {n: run.path(n) for n in list(run.written) if n.endswith(".png")}  # a copy: the map's thread adds
    if run.replace is not None:
        previous = (run.previous or {}).get("files")
        for p in run.folder.glob("*.png"):
            if p.name not in names and p.name not in run.replace and (previous is None or p.name in previous):
                names[p.name] = p
    order = sorted(names, key=lambda n: (FIGURE_ORDER.index(n) if n in FIGURE_ORDER else len(FIGURE_ORDER), n))
    return {n: Path(names[n]).read_bytes() for n in order}


def write_report_files(analysis: Any, out_dir: str | os.PathLike[str] | Any, *, lang: str | None = None,
                       report: bool = True, pdf: bool = True, chart: bool = True,
                       tables: Mapping[str, Any] | None = None) -> dict[str, Path]:
    """What ``lifecircle analyze`` adds to its folder: ``units_chart.png`` (with units and ``chart``) and,
    with ``report``, ``results.xlsx`` and ``report.html``/``.pdf`` (with ``pdf``)/``.docx``.

    ``out_dir`` is a folder (the files replace the earlier report of the run there, in one commit) or an
    open :class:`lifecircle.present.outputs.OutputRun` (they join it). The report embeds the run's figures.

    Examples
    --------
    >>> import tempfile
    >>> from lifecircle import analyze
    >>> from lifecircle.datasets import toy_town_osm
    >>> sorted(write_report_files(analyze(toy_town_osm(), admin_level=8), tempfile.mkdtemp(), pdf=False))
    ['report.docx', 'report.html', 'results.xlsx', 'units_chart.png']
    """
    from .figures import save_figure, units_bar_chart
    from .outputs import REPORT_FILES, output_run

    lang = lang or detect_lang(analysis)
    tables = analysis_tables(analysis, tables)
    paths: dict[str, Path] = {}
    cov = analysis.coverage
    with output_run(out_dir, command="report", replace=REPORT_FILES) as run:
        if chart and (cov["unit"].astype(str) != STUDY_AREA).any():
            cat = ALL if ALL in set(cov.category) else analysis.config.categories[0]
            save_figure(units_bar_chart(analysis, category=cat, lang=lang), run.path("units_chart.png"))
            paths["units_chart.png"] = run.final("units_chart.png")
        if report:
            write_results_xlsx(analysis, run.path("results.xlsx"), lang=lang, tables=tables)
            paths["results.xlsx"] = run.final("results.xlsx")
            content = report_content(analysis, lang=lang, tables=tables, figures=_run_figures(run),
                                     folder_name=str(run.folder))
            html_path = write_report_html(analysis, run.path("report.html"), report=content)
            paths["report.html"] = run.final("report.html")
            if pdf:  # Chromium prints while the run goes on (the docx here, the map in `analyze`)
                def print_pdf(target: Path, html_path: Path = html_path, date: str | None = content.date) -> bool:
                    return _pdf_or_warn(html_path, target, date=date) is not None

                run.in_background("report.pdf", print_pdf)
                paths["report.pdf"] = run.final("report.pdf")
            write_report_docx(analysis, run.path("report.docx"), report=content)
            paths["report.docx"] = run.final("report.docx")
    # a report.pdf Chromium could not print is out of the run once it is committed (here, or by the caller)
    return {n: p for n, p in paths.items() if n in run.written}


def _pdf_or_warn(html_path: Path, pdf_path: Path, *, date: str | None) -> Path | None:
    """:func:`write_report_pdf`, but a Chromium that fails costs the PDF only, with a warning: the run's
    other files (report.html among them, which prints from any browser) are still written."""
    try:
        return write_report_pdf(html_path, pdf_path, date=date)
    except LifecircleError as exc:
        log.warning("report.pdf not written: %s", exc)
    except OSError as exc:  # the Chromium found cannot be started (not executable, wrong architecture)
        log.warning("report.pdf not written: Chromium could not be started (%s); print report.html from a "
                    "browser, or use --no-pdf", exc)
    return None


def report_from_folder(out_dir: str | os.PathLike[str], *, lang: str | None = None, pdf: bool = True,
                       official_counts: str | os.PathLike[str] | pd.DataFrame | None = None) -> dict[str, Path]:
    """Rebuild ``units_chart.png``, ``results.xlsx`` and the report from a folder written by
    ``lifecircle analyze --out DIR`` (``lifecircle report DIR``), as one commit: the run's other files stay.

    ``official_counts``: a table of official counts of community health centres per unit (see
    :func:`lifecircle.read.inventory.compare_with_official`), shown beside the centres found.
    """
    from .outputs import REPORT_FILES, output_folder, read_analysis_folder

    view = read_analysis_folder(out_dir)
    tables: dict[str, Any] = folder_tables(out_dir)
    if official_counts is not None:
        tables["official"] = _official(view, official_counts)
    with output_folder(out_dir, command="report", replace=REPORT_FILES) as run:
        paths = write_report_files(view, run, lang=lang, pdf=pdf, tables=tables)
    return {n: p for n, p in paths.items() if n in run.written}  # committed: without a PDF Chromium failed on


def _official(view: Any, official: Any) -> pd.DataFrame:
    from ..read.inventory import compare_with_official, normalise_unit_name
    from ..read.units import assign_units

    fac = view.facilities
    if "unit" not in fac.columns:
        if view.units is None:
            raise InputDataError("--official-counts needs units: the folder has no units.gpkg (analyse with --units "
                                 "FILE or --admin-level 6|8)")
        fac = fac.copy()
        fac["unit"] = assign_units(fac, view.units).to_numpy()
    table = compare_with_official(fac, official)
    # the comparison joins on normalised names (城西街道 -> 城西): show the units' own names, and only the
    # units of this analysis (an official table of the whole city lists districts the study area lacks)
    analysed = [u for u in view.coverage["unit"].astype(str).unique() if u != STUDY_AREA]
    names = {normalise_unit_name(u): u for u in analysed}
    rows = table[table["unit"].isin(list(names))].copy()
    rows["unit"] = rows["unit"].map(names)
    total = pd.DataFrame({"unit": ["total"], "found": [rows["found"].sum()], "official": [rows["official"].sum()]})
    total["found_share"] = (total["found"] / total["official"]).round(3)
    return pd.concat([rows, total], ignore_index=True)
