"""results.xlsx: the tables of an analysis in one Excel workbook (a sheet per table, headers in Chinese or English)."""

from __future__ import annotations

import io
import math
import os
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..config import ALL, CATEGORIES
from ..read.files import atomic_path
from .wording import category_name, detect_lang, header, text

__all__ = ["analysis_tables", "coverage_table", "folder_tables", "results_sheets", "write_results_xlsx",
           "report_date", "fixed_zip"]

STUDY_AREA = "study_area"
#: Columns shown as percentages.
_SHARE_COLUMNS = {"share", "target", "share_before", "share_after", "cumulative_share", "share_of_uncovered",
                  "found_share"}
#: Columns shown with thousands separators.
_THOUSANDS_COLUMNS = {"population", "covered_population", "population_to_cover", "newly_covered_population",
                      "cumulative_covered_population", "population_unreachable"}




def folder_tables(out_dir: str | os.PathLike[str]) -> dict[str, pd.DataFrame]:
    """The CSV tables of an analysis folder's recorded run that the report and workbook use, those present:
    ``sites_needed``, ``sites``, ``decisions``, ``unsnapped``, ``urban_rural``, ``census_methods``.

    >>> folder_tables("/nonexistent")
    {}
    """
    from .outputs import read_run, read_table_back

    d = Path(out_dir)
    if not d.is_dir():
        return {}
    rec = read_run(d)
    files = {"sites_needed": "sites_needed.csv", "sites": "suggested_sites.csv", "decisions": "standard_decisions.csv",
             "unsnapped": "unsnapped.csv", "urban_rural": "urban_rural.csv", "census_methods": "census_methods.csv"}
    out = {}
    for key, name in files.items():
        if rec.has(name):
            t = read_table_back(d / name)
            if "unit" in t:
                t["unit"] = t["unit"].astype(str)
            out[key] = t
    return out


def analysis_tables(analysis: Any, tables: Mapping[str, Any] | None) -> dict[str, Any]:
    """The optional tables (``sites``, ``sites_needed``, ``decisions``, ``unsnapped``, ``official``,
    ``census_methods``): the given ones first, then what the analysis (or folder view) carries."""
    out: dict[str, Any] = {k: v for k, v in (tables or {}).items() if v is not None}
    if "decisions" not in out:
        if getattr(analysis, "standard_decisions", None) is not None and hasattr(analysis, "standard_decisions_for_csv"):
            out["decisions"] = analysis.standard_decisions_for_csv()
        elif getattr(analysis, "decisions", None) is not None:
            out["decisions"] = analysis.decisions
    if "unsnapped" not in out and callable(getattr(analysis, "unsnapped", None)):
        out["unsnapped"] = analysis.unsnapped()
    for key in ("sites", "sites_needed", "official", "census_methods"):
        if key not in out and getattr(analysis, key, None) is not None:
            out[key] = getattr(analysis, key)
    if "census_methods" not in out and getattr(analysis, "census_methods", None) is not None:
        out["census_methods"] = analysis.census_methods
    return out


def coverage_table(analysis: Any) -> pd.DataFrame:
    """coverage.csv as written (rounded as in the file), ``unit`` as text, ``minutes`` as float."""
    cov = analysis.coverage_for_csv() if hasattr(analysis, "coverage_for_csv") else analysis.coverage
    cov = cov.copy()
    cov["unit"] = cov["unit"].astype(str)
    cov["minutes"] = cov["minutes"].astype(float)
    return cov


def report_date(summary: Mapping[str, Any]) -> str:
    """The analysis date (YYYY-MM-DD): the report's files carry it instead of the time they were written,
    so the same analysis gives the same bytes (stable sha256 in the folder's manifest)."""
    d = str(summary.get("created", ""))[:10]
    return d if re.fullmatch(r"\d{4}-\d{2}-\d{2}", d) else "1980-01-01"


def fixed_zip(data: bytes, date: str) -> bytes:
    """An Office file (zip) with every member dated ``date`` and its core properties' times set to it."""
    import zipfile

    when = tuple(int(x) for x in date.split("-")) + (0, 0, 0)
    iso = f"{date}T00:00:00Z"
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            blob = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                blob = re.sub(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*(</dcterms:)", rb"\g<1>" + iso.encode()
                              + rb"\g<2>", blob)
            z = zipfile.ZipInfo(info.filename, date_time=when)
            # images are compressed already: deflating a city map's PNG again gains nothing and costs time
            z.compress_type = zipfile.ZIP_STORED if info.filename.lower().endswith((".png", ".jpg", ".jpeg")) \
                else zipfile.ZIP_DEFLATED
            z.external_attr = info.external_attr
            dst.writestr(z, blob)
    return out.getvalue()


def _units_sheet(cov: pd.DataFrame, cfg: Any, summary: Mapping[str, Any], lang: str) -> pd.DataFrame | None:
    head = float(cfg.headline_minutes)
    rows = cov[(cov.unit != STUDY_AREA) & np.isclose(cov.minutes, head)]
    if rows.empty:
        return None
    share = rows.pivot_table(index="unit", columns="category", values="share", aggfunc="first")
    cats = [c for c in [*CATEGORIES, ALL] if c in share.columns]
    main = ALL if ALL in cats else cats[0]
    m = rows[rows.category == main].set_index("unit")
    ranking = pd.DataFrame(summary.get("unit_ranking") or [])
    order = list(ranking["unit"].astype(str)) if len(ranking) else list(
        m.sort_values(["share", "population"], ascending=[True, False]).index)
    out = pd.DataFrame({"rank": np.arange(1, len(order) + 1), "unit": order})
    if len(ranking) and "unit_type" in ranking:
        out["unit_type"] = ranking["unit_type"].to_numpy()
    out["population"] = m.loc[order, "population"].to_numpy()
    for c in cats:
        out[f"share:{c}"] = share.loc[order, c].to_numpy()
    out["meets_target"] = m.loc[order, "meets_target"].to_numpy()
    out["population_to_cover"] = m.loc[order, "population_to_cover"].to_numpy()
    return out


def results_sheets(analysis: Any, *, lang: str | None = None,
                   tables: Mapping[str, Any] | None = None) -> dict[str, pd.DataFrame]:
    """The workbook's sheets as frames, keyed by sheet name (columns still the CSV column names;
    ``share:<category>`` for the per-unit shares).

    Examples
    --------
    >>> from lifecircle import analyze
    >>> from lifecircle.datasets import toy_town_osm
    >>> sorted(results_sheets(analyze(toy_town_osm(), admin_level=8), lang="en"))
    ['categories', 'completeness', 'coverage', 'standard decisions', 'units']
    """
    lang = lang or detect_lang(analysis)
    t = analysis_tables(analysis, tables)
    cfg = analysis.config
    s = analysis.summary
    cov = coverage_table(analysis)
    sheets: dict[str, pd.DataFrame] = {}
    units = _units_sheet(cov, cfg, s, lang)
    if units is not None:
        sheets[text("sheet_units", lang)] = units
    sheets[text("sheet_categories", lang)] = cov[cov.unit == STUDY_AREA].drop(columns="unit").reset_index(drop=True)
    sheets[text("sheet_coverage", lang)] = cov.reset_index(drop=True)
    gaps = getattr(analysis, "gaps", None)
    if gaps is not None:
        sheets[text("sheet_gaps", lang)] = pd.DataFrame(gaps.drop(columns="geometry", errors="ignore")).reset_index(
            drop=True)
    from .outputs import INTERNAL_SITE_COLUMNS

    for key, sheet in (("sites", "sheet_sites"), ("sites_needed", "sheet_needed")):
        v = t.get(key)
        if v is not None and len(v):  # as suggested_sites.csv: without lifecircle's own node and candidate numbers
            v = v.drop(columns=["geometry", *INTERNAL_SITE_COLUMNS], errors="ignore")
            sheets[text(sheet, lang)] = pd.DataFrame(v).reset_index(drop=True)
    sheets[text("sheet_completeness", lang)] = _completeness(analysis, s, t, lang)
    if t.get("decisions") is not None:
        sheets[text("sheet_decisions", lang)] = pd.DataFrame(t["decisions"]).reset_index(drop=True)
    return sheets


def _completeness(analysis: Any, s: Mapping[str, Any], t: Mapping[str, Any], lang: str) -> pd.DataFrame:
    """One row per fact: facilities by category and source, unsnapped points, duplicates, warnings."""
    rows = []
    sec_fac = text("c_facilities", lang)
    fac = getattr(analysis, "facilities", None)
    if fac is not None and len(fac) and {"category", "source"} <= set(fac.columns):
        ct = pd.crosstab(fac["category"], fac["source"].fillna("?"))
        for c in [c for c in CATEGORIES if c in ct.index]:
            for src in ct.columns:
                rows.append((sec_fac, f"{category_name(c, lang)} · {src}", int(ct.at[c, src]), ""))
    kept = (s.get("standard") or {}).get("kept") or {}
    for c, n in kept.items():
        rows.append((text("standard", lang), f"{category_name(c, lang)} · {header('kept', lang)}",
                     int(n), (s.get("standard") or {}).get("name", "")))
    for c, reasons in ((s.get("standard") or {}).get("dropped") or {}).items():
        for reason, n in reasons.items():
            rows.append((text("standard", lang), f"{category_name(c, lang)} · {header('dropped', lang)}", int(n), reason))
    r = s["residents"]
    rows.append((text("c_population", lang), r.get("population_source", ""), float(r.get("population", 0)),
                 text("pop_estimate", lang) if r.get("population_is_estimate") else text("pop_counts", lang)))
    sec_un = text("c_unsnapped", lang)
    rows.append((sec_un, header("residents", lang), int(r.get("unsnapped_points", 0)), "unsnapped.csv"))
    rows.append((sec_un, header("facilities", lang), int(s["facilities"].get("unsnapped", 0)), "unsnapped.csv"))
    dup = s["facilities"].get("merged_duplicates")
    if dup is not None:
        rows.append((text("c_duplicates", lang), header("facilities", lang), int(dup), ""))
    for key, c in (s.get("crs_checks") or {}).items():
        rows.append((text("c_crs", lang), c.get("input") or key, c.get("declared") or "",
                     f"{c.get('verdict', '')} {c.get('warning') or ''}".strip()))
    for w in s.get("warnings") or []:
        rows.append((text("c_warnings", lang), "", "", w))
    return pd.DataFrame(rows, columns=["section", "item", "value", "detail"])


def _width(value: Any) -> int:
    s = str(value)
    return sum(2 if ord(ch) > 0x2E7F else 1 for ch in s)


def write_results_xlsx(analysis: Any, path: str | os.PathLike[str], *, lang: str | None = None,
                       tables: Mapping[str, Any] | None = None) -> Path:
    """Write ``results.xlsx``: one sheet per table, frozen header row, column widths, shares as percentages,
    category names and headers in ``lang``, formula-looking text neutralised
    (:func:`lifecircle.present.outputs.safe_cells`: a leading ``'``).

    Examples
    --------
    >>> import tempfile, os, openpyxl
    >>> from lifecircle import analyze
    >>> from lifecircle.datasets import toy_town_osm
    >>> p = write_results_xlsx(analyze(toy_town_osm(), admin_level=8), os.path.join(tempfile.mkdtemp(), "r.xlsx"), lang="zh")
    >>> ws = openpyxl.load_workbook(p)["分单元"]
    >>> [c.value for c in ws[1]][:5], ws.freeze_panes
    (['排名', '单元', '单元类型', '人口', '卫生'], 'C2')
    """
    from .outputs import safe_cells
    from .xlsx import Sheet, xlsx_bytes

    lang = lang or detect_lang(analysis)
    sheets = results_sheets(analysis, lang=lang, tables=tables)
    out = []
    for name, df in sheets.items():
        cols = list(df.columns)
        heads = [category_name(c.split(":", 1)[1], lang, categories=analysis.config.categories) if c.startswith("share:") else header(c, lang) for c in cols]
        values = []
        for col in cols:
            v = df[col]
            if col == "category":
                v = v.map(lambda x: category_name(x, lang, categories=analysis.config.categories) if isinstance(x, str) else x)
            elif col == "unit":
                study = text("study_area", lang)
                v = v.map(lambda x: study if x == STUDY_AREA else x)
            values.append([_cell(x) for x in safe_cells(v.to_frame()).iloc[:, 0].tolist()])  # the folder's one quoting rule
        widths = [_width(h) for h in heads]
        for j in range(len(cols)):
            sample = values[j][:2000]
            if sample:
                widths[j] = max(widths[j], max(_width(_display(v)) for v in sample))
        formats = ["0.0%" if col in _SHARE_COLUMNS or col.startswith("share:") else
                   "#,##0" if col in _THOUSANDS_COLUMNS else None for col in cols]
        widths = [max(w, 6) if f == "0.0%" else w for w, f in zip(widths, formats)]  # "100.0%", not "###"
        out.append(Sheet(name[:31], heads, values, formats=formats, widths=[min(max(w + 2, 6), 60) for w in widths],
                         freeze="C2" if name == text("sheet_units", lang) else "A2"))
    data = xlsx_bytes(out, date=report_date(analysis.summary))  # dated by the analysis: the same bytes
    with atomic_path(Path(path)) as tmp:
        Path(tmp).write_bytes(data)
    return Path(path)


def _display(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.4g}"
    return "" if v is None else str(v)


def _cell(v: Any) -> Any:
    """A value the xlsx writer takes as it is: numbers, booleans, text (neutralised); NaN/NA as empty."""
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return None if math.isnan(f) else (f if math.isfinite(f) else str(f))
    if isinstance(v, (int,)):
        return v
    return str(v)
