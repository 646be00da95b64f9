"""The report a district office receives: report.html in offline Chromium, report.pdf, report.docx, results.xlsx,
units_chart.png — each checked against the CSVs of the same folder."""

from __future__ import annotations

import json
import re
import shutil
import warnings
from urllib.parse import urlparse

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from conftest import lonlat
from lifecircle.cli import main
from lifecircle.present.outputs import read_analysis_folder

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium: apt-get install -y chromium")
needs_driver = pytest.mark.skipif(CHROMIUM is None or DRIVER is None,
                                  reason="needs Debian's chromium and chromium-driver: "
                                         "apt-get install -y chromium chromium-driver")
FORMULA = '=HYPERLINK("http://example.invalid/x","点我")'
CATS_ZH = {"health": "卫生", "elderly_care": "养老", "culture": "文化", "sports": "体育", "all": "四类全部"}


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """The toy town by 街道 with site planning, plus one listed culture point whose name looks like a formula
    (east of the river, on the y = 200 m street)."""
    d = tmp_path_factory.mktemp("report")
    lo, la = lonlat([700], [200])
    pd.DataFrame({"name": [FORMULA], "category": ["culture"], "lon": lo, "lat": la}).to_csv(d / "F.csv", index=False)
    out = d / "out"
    assert main(["-q", "analyze", "--example", "toy_town", "--admin-level", "8", "--sites", "--facilities",
                 str(d / "F.csv"), "--out", str(out)]) == 0
    return out


def _cov(out):
    cov = pd.read_csv(out / "coverage.csv")
    cov["unit"] = cov["unit"].astype(str)
    return cov


def _pct(v):
    return f"{v * 100:.1f}%"


def test_default_run_writes_the_report_files(toy):
    names = {p.name for p in toy.iterdir()}
    assert {"report.html", "report.docx", "results.xlsx", "units_chart.png"} <= names
    assert ("report.pdf" in names) == (CHROMIUM is not None)
    html = (toy / "report.html").read_text(encoding="utf-8")
    assert '<html lang="zh-CN">' in html  # the unit names are Chinese: the default language is zh
    # self-contained: no http(s) address in any src/href/url(), no script at all, the font and figures embedded
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", html, re.I)
    assert "<script" not in html.lower()
    assert "@font-face" in html and "data:font/otf;base64," in html
    pngs = sorted(p.name for p in toy.glob("*.png"))
    assert {"coverage_map.png", "units_chart.png", "coverage_curve.png"} <= set(pngs)
    assert html.count("data:image/png;base64,") == len(pngs)  # every figure of the run, embedded
    assert "© OpenStreetMap contributors (ODbL 1.0)" in html and "SIL Open Font License" in html
    assert "沪府发〔2021〕5号" in html
    s = json.loads((toy / "summary.json").read_text(encoding="utf-8"))
    merged = s["facilities"]["merged_duplicates"]
    assert f"{merged} 处（同类、相距 150 米内" in html


def _sections(html: str) -> list[str]:
    return re.findall(r"<section><h2>(.*?)</h2>", html)


@needs_driver
def test_report_html_in_offline_chromium(toy):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,900",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    try:
        driver.get((toy / "report.html").resolve().as_uri())
        driver.execute_script("return document.fonts.ready.then(function () { return true; });")
        assert [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []
        urls = set()
        for e in driver.get_log("performance"):
            msg = json.loads(e["message"])["message"]
            if msg["method"] == "Network.requestWillBeSent":
                urls.add(msg["params"]["request"]["url"])
        assert {urlparse(u).scheme for u in urls} <= {"file", "data"}, urls
        # the embedded font is the one drawing the Chinese text, and every figure decoded
        assert driver.execute_script("return document.fonts.check(\"12px 'Noto Sans CJK TC'\", '卫生养老文化体育');")
        loaded = driver.execute_script("return Array.from(document.fonts).filter(function (f) "
                                       "{ return f.status === 'loaded'; }).length;")
        assert loaded >= 1
        imgs = driver.execute_script("return Array.from(document.images).map(function (i) "
                                     "{ return [i.complete, i.naturalWidth]; });")
        assert len(imgs) == len(list(toy.glob("*.png"))) and all(ok and w > 100 for ok, w in imgs)
        headings = driver.execute_script("return Array.from(document.querySelectorAll('section > h2'))"
                                         ".map(function (h) { return h.textContent; });")
        assert headings[0] == "一、结论" and headings[-1].endswith("、数据来源与版权") and len(headings) >= 9
        # nothing wider than the page: no table overflows its column on screen
        over = driver.execute_script("return Array.from(document.querySelectorAll('table')).filter(function (t) "
                                     "{ return t.scrollWidth > t.parentElement.clientWidth + 1; }).length;")
        assert over == 0
    finally:
        driver.quit()


@needs_chromium
def test_pdf_pages_font_and_chinese_text(toy):
    pypdf = pytest.importorskip("pypdf")
    html = (toy / "report.html").read_text(encoding="utf-8")
    titles = _sections(html)
    # each section starts a page and fits on one (the toy town's tables are short); the map's page is
    # followed by the charts' page (one forced break inside the maps section)
    expected = len(titles) + len(re.findall(r'class="[^"]*\blc-newpage\b', html))
    reader = pypdf.PdfReader(toy / "report.pdf")
    assert len(reader.pages) == expected
    for page in reader.pages:  # A4 portrait, in points
        assert float(page.mediabox.width) == pytest.approx(595.3, abs=1) and \
            float(page.mediabox.height) == pytest.approx(841.9, abs=1)
    texts = [p.extract_text() for p in reader.pages]
    where = [next(i for i, t in enumerate(texts) if title in t) for title in titles]
    assert where == sorted(where) and len(set(where)) == len(where) and where[0] == 0
    cov = _cov(toy)
    share = cov[(cov.unit == "study_area") & (cov.category == "all") & (cov.minutes == 15)].share.iloc[0]
    first = texts[0]
    assert "15分钟" in first and _pct(share) in first
    for word in ("卫生", "养老", "文化", "体育"):
        assert word in first
    assert re.search(rf"1\s*/\s*{expected}", first)  # the page footer
    # every glyph of every page comes from the embedded Noto Sans CJK subset: no fallback font at all
    fonts = set()
    for page in reader.pages:
        for f in page["/Resources"]["/Font"].values():
            f = f.get_object()
            desc = f.get("/DescendantFonts")
            fd = (desc[0].get_object() if desc else f).get("/FontDescriptor")
            fonts.add(str(fd.get_object().get("/FontName")) if fd is not None else str(f.get("/BaseFont")))
    assert fonts and all("NotoSansCJK" in name for name in fonts), fonts


def _docx_table(doc, first_header):
    for t in doc.tables:
        if t.rows and t.rows[0].cells[0].text == first_header:
            return [[c.text for c in r.cells] for r in t.rows]
    raise AssertionError(f"no table starting with {first_header!r}")


def test_docx_headline_and_unit_table(toy):
    docx = pytest.importorskip("docx")
    doc = docx.Document(toy / "report.docx")
    cov = _cov(toy)
    head = cov[(cov.minutes == 15)]
    share_all = head[(head.unit == "study_area") & (head.category == "all")].share.iloc[0]
    paras = [p.text for p in doc.paragraphs]
    assert paras[0] == "15分钟社区生活圈步行可达评估报告"
    assert f"{_pct(share_all)} 的居民步行 15 分钟内可到达全部四类设施（卫生、养老、文化、体育）" in paras
    rows = _docx_table(doc, "排名")
    cols = rows[0]
    assert cols[:4] == ["排名", "单元", "类型", "人口"] and cols[-1] == "待覆盖人口"
    units = head[(head.unit != "study_area")]
    # ranked by the share of residents reaching all four, lowest first
    order = units[units.category == "all"].sort_values(["share", "population"], ascending=[True, False])
    assert [r[1] for r in rows[1:]] == order.unit.tolist()
    for r in rows[1:]:
        u = units[units.unit == r[1]].set_index("category")
        assert r[3] == f"{u.loc['all', 'population']:,.0f}"
        for cat in ("health", "elderly_care", "culture", "sports"):
            cell = r[cols.index(CATS_ZH[cat])]
            assert cell.split()[0] == _pct(u.loc[cat, "share"])
            assert cell.endswith("×") == (u.loc[cat, "share"] < 0.85)
        assert r[-2].split()[0] == _pct(u.loc["all", "share"])
        assert r[-1] == f"{u.loc['all', 'population_to_cover']:,.0f}"
    # the per-category table: the study area at 5/10/15 minutes
    cat_rows = _docx_table(doc, "类别")
    study = cov[cov.unit == "study_area"]
    for r in cat_rows[1:]:
        cat = {v: k for k, v in CATS_ZH.items()}[r[0]]
        for j, m in enumerate((5, 10, 15)):
            assert r[2 + j] == _pct(study[(study.category == cat) & (study.minutes == m)].share.iloc[0])


def _sheet(ws):
    rows = list(ws.iter_rows(values_only=True))
    return pd.DataFrame(rows[1:], columns=rows[0])


def test_xlsx_sheets_match_the_csvs(toy):
    import openpyxl

    wb = openpyxl.load_workbook(toy / "results.xlsx")
    assert wb.sheetnames == ["分单元", "分类别", "覆盖率明细", "缺口", "建议选址", "需新增设施", "数据完整性", "设施口径"]
    cov = _cov(toy)
    head = cov[cov.minutes == 15]
    # per unit: coverage.csv pivoted (unit × category at 15 min), population and people to cover
    units = _sheet(wb["分单元"])
    assert list(units.columns) == ["排名", "单元", "单元类型", "人口", "卫生", "养老", "文化", "体育", "四类全部",
                                   "达标", "待覆盖人口"]
    assert len(units) == head[head.unit != "study_area"].unit.nunique()
    for r in units.itertuples(index=False):
        u = head[head.unit == r[1]].set_index("category")
        assert r[3] == pytest.approx(u.loc["all", "population"], abs=1e-9)
        for j, cat in enumerate(("health", "elderly_care", "culture", "sports", "all")):
            assert r[4 + j] == pytest.approx(u.loc[cat, "share"], abs=1e-12)
        assert r[9] == bool(u.loc["all", "meets_target"])
        assert r[10] == pytest.approx(u.loc["all", "population_to_cover"])
    ws = wb["分单元"]
    assert ws.freeze_panes == "C2" and ws["E2"].number_format == "0.0%"
    assert all(ws.column_dimensions[c].width and ws.column_dimensions[c].width >= 6 for c in "ABCDEFGHIJK")
    # per category: the study-area rows of coverage.csv
    cats = _sheet(wb["分类别"])
    study = cov[cov.unit == "study_area"].reset_index(drop=True)
    assert cats["类别"].tolist() == [CATS_ZH[c] for c in study.category]
    for col, zh in (("minutes", "分钟"), ("population", "人口"), ("covered_population", "已覆盖人口"),
                    ("share", "覆盖率"), ("population_to_cover", "待覆盖人口")):
        np.testing.assert_allclose(cats[zh].astype(float), study[col].astype(float), rtol=0, atol=1e-9)
    assert wb["分类别"]["E2"].number_format == "0.0%" and wb["分类别"]["D2"].number_format == "#,##0"
    # the whole coverage.csv, gaps, sites needed
    full = _sheet(wb["覆盖率明细"])
    np.testing.assert_allclose(full["覆盖率"].astype(float), cov.share, atol=1e-12)
    gaps = gpd.read_file(toy / "gaps.gpkg")
    g = _sheet(wb["缺口"])
    np.testing.assert_allclose(g["人口"].astype(float), gaps.population, atol=1e-9)
    assert g["单元"].tolist() == gaps.unit.tolist()
    needed = pd.read_csv(toy / "sites_needed.csv")
    n = _sheet(wb["需新增设施"])
    assert n["需新增设施数"].tolist() == needed.sites_needed.tolist()
    assert n["单元"].tolist() == [("研究区整体" if u == "study_area" else u) for u in needed.unit]
    # the formula-looking facility name is text, in both the decisions and nowhere a formula
    dec = wb["设施口径"]
    names = [c for c in dec["C"] if c.value and "HYPERLINK" in str(c.value)]
    assert len(names) == 1 and names[0].value == "'" + FORMULA and names[0].data_type == "s"
    assert not [c.coordinate for ws in wb for row in ws.iter_rows() for c in row if c.data_type == "f"]


def test_report_command_english_and_official_counts(toy, tmp_path):
    import openpyxl

    out = tmp_path / "copy"
    shutil.copytree(toy, out)
    off = tmp_path / "official.csv"
    pd.DataFrame({"district": ["城西街道", "城东街道", "合计"], "count": [2, 3, 5]}).to_csv(off, index=False)
    assert main(["-q", "report", str(out), "--lang", "en", "--no-pdf", "--official-counts", str(off)]) == 0
    html = (out / "report.html").read_text(encoding="utf-8")
    assert '<html lang="en">' in html and _sections(html)[0] == "1. Headline"
    assert '<span lang="zh-CN">城东街道</span>' in html  # Chinese names keep the simplified glyph forms
    fac = gpd.read_file(out / "facilities.gpkg")
    units = gpd.read_file(out / "units.gpkg")
    # found community health centres per 街道, counted here with a plain spatial join
    j = gpd.sjoin(fac[fac.subcategory == "community_health_centre"], units, predicate="within")
    found = j.groupby("unit").size()
    official_table = html[html.index("Community health centres found vs official counts"):]
    for name, official in (("城西街道", 2), ("城东街道", 3)):
        row = re.search(rf'<tr><td>(?:<span lang="zh-CN">)?{name}(?:</span>)?</td><td class="n">(\d+)</td>'
                        rf'<td class="n">(\d+)</td>', official_table)
        assert row, name
        assert int(row.group(1)) == int(found.get(name, 0)) and int(row.group(2)) == official
    wb = openpyxl.load_workbook(out / "results.xlsx")
    assert wb.sheetnames[:2] == ["units", "categories"]
    assert [c.value for c in wb["units"][1]][:4] == ["rank", "unit", "unit type", "population"]


def test_no_units_no_report_flags(tmp_path):
    out = tmp_path / "plain"
    assert main(["-q", "analyze", "--example", "toy_town", "--no-report", "--out", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    assert "coverage.csv" in names and not names & {"report.html", "report.pdf", "report.docx", "results.xlsx",
                                                     "units_chart.png"}
    assert main(["-q", "report", str(out), "--no-pdf"]) == 0
    import openpyxl

    assert "分单元" not in openpyxl.load_workbook(out / "results.xlsx").sheetnames
    html = (out / "report.html").read_text(encoding="utf-8")
    s = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert "分单元排名" not in html
    # headline, categories, maps, gaps, sites, completeness, method, sources (+ equity when computed)
    assert len(_sections(html)) == 8 + ("equity" in s)


def test_same_analysis_same_bytes(toy, tmp_path):
    """Rebuilding the report of a folder gives byte-identical files (dated by the analysis, not the clock),
    so the folder's manifest keeps the same sha256."""
    import hashlib
    import time

    out = tmp_path / "again"
    shutil.copytree(toy, out)
    names = ["report.html", "report.docx", "results.xlsx"] + (["report.pdf"] if CHROMIUM else [])
    assert main(["-q", "report", str(out)]) == 0
    first = {n: hashlib.sha256((out / n).read_bytes()).hexdigest() for n in names}
    time.sleep(1.1)  # a second later: zip members and PDF dates would differ if they took the clock
    assert main(["-q", "report", str(out)]) == 0
    assert {n: hashlib.sha256((out / n).read_bytes()).hexdigest() for n in names} == first
    manifest = json.loads((out / "lifecircle_manifest.json").read_text(encoding="utf-8"))
    assert {n: manifest["files"][n]["sha256"] for n in names} == first


def _boxes_inside(fig):
    from matplotlib.text import Text

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas_agg = FigureCanvasAgg(fig)  # the renderer savefig uses
    canvas_agg.draw()
    r = canvas_agg.get_renderer()
    canvas = fig.bbox
    boxes = {}
    for t in fig.findobj(Text):
        if t.get_visible() and t.get_text().strip():
            boxes[f"text {t.get_text()!r}"] = t.get_window_extent(r)
    for leg in fig.legends + [a.get_legend() for a in fig.axes if a.get_legend()]:
        boxes["legend"] = leg.get_window_extent(r)
    for name, b in boxes.items():
        assert b.x0 >= canvas.x0 - 0.5 and b.y0 >= canvas.y0 - 0.5 and b.x1 <= canvas.x1 + 0.5 and \
            b.y1 <= canvas.y1 + 0.5, f"{name} is outside the figure: {b} vs {canvas}"
    return boxes


def test_units_chart_sorted_coloured_and_inside_the_canvas(toy):
    from matplotlib.colors import to_hex

    from lifecircle.present.figures import UNIT_BAR_COLOURS, units_bar_chart

    view = read_analysis_folder(toy)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a missing glyph (tofu) warns: fail on it
        fig = units_bar_chart(view, lang="zh")
        boxes = _boxes_inside(fig)
    ax = fig.axes[0]
    cov = _cov(toy)
    rows = cov[(cov.unit != "study_area") & (cov.category == "all") & (cov.minutes == 15)].sort_values("share")
    assert [t.get_text() for t in ax.get_yticklabels()] == rows.unit.tolist()
    bars = ax.patches
    assert [b.get_width() for b in bars] == pytest.approx((rows.share * 100).tolist())
    assert [to_hex(b.get_facecolor()) for b in bars] == [UNIT_BAR_COLOURS[0] if s >= 0.85 else UNIT_BAR_COLOURS[1]
                                                         for s in rows.share]
    dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert len(dashed) == 1 and dashed[0].get_xdata()[0] == pytest.approx(85)
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == ["达到目标", "低于目标", "85 % 目标"]
    # the legend overlaps neither the title nor the axis label
    for name, b in boxes.items():
        if name != "legend" and ("各单元" in name or "居民比例" in name):
            assert not b.overlaps(boxes["legend"]), name


def test_units_chart_many_long_names_stays_inside():
    from types import SimpleNamespace

    from lifecircle import AnalysisConfig
    from lifecircle.present.figures import units_bar_chart

    rng = np.random.default_rng(3)
    names = [f"浦东新区第{i}号社区生活圈统计单元街道" for i in range(60)]
    cov = pd.DataFrame({"unit": names, "category": "all", "minutes": 15.0, "share": rng.uniform(0, 1, 60),
                        "population": 1000.0})
    a = SimpleNamespace(config=AnalysisConfig(), coverage=cov, summary={})
    fig = units_bar_chart(a, lang="en")
    _boxes_inside(fig)
    ax = fig.axes[0]
    assert len(ax.patches) == 40 and "lowest 40 of 60" in ax.get_title()
    assert ax.patches[0].get_width() == pytest.approx(cov.share.min() * 100)


@pytest.fixture(scope="module")
def shanghai_run(tmp_path_factory, shanghai_pbf, shanghai_facilities, shared):
    """The real street sample, its real OSM health and sport points, made-up residents, DataV districts."""
    d = tmp_path_factory.mktemp("sh_report")
    bbox = (121.4611262, 31.2196145, 121.4863121, 31.2411914)
    real = shanghai_facilities[shanghai_facilities.category.isin(["health", "sport"])]
    pd.DataFrame({"name": real.name, "category": real.category.replace({"sport": "sports"}),
                  "lon": real.geometry.x, "lat": real.geometry.y}).to_csv(d / "F.csv", index=False)
    rng = np.random.default_rng(7)
    gx, gy = np.meshgrid(np.linspace(bbox[0], bbox[2], 40), np.linspace(bbox[1], bbox[3], 40))
    pd.DataFrame({"lon": gx.ravel(), "lat": gy.ravel(), "population": rng.integers(0, 300, gx.size)}).to_csv(
        d / "P.csv", index=False)
    out = d / "out"
    assert main(["-q", "analyze", "--osm", str(shanghai_pbf), "--facilities", str(d / "F.csv"), "--population",
                 str(d / "P.csv"), "--units", str(shared / "shanghai_districts_datav_v3_gcj02.geojson"),
                 "--units-crs", "gcj02", "--categories", "health,sports", "--no-pdf", "--basemap", "none",
                 "--out", str(out)]) == 0
    return out


def test_shanghai_districts_report(shanghai_run):
    docx = pytest.importorskip("docx")
    out = shanghai_run
    cov = _cov(out)
    head = cov[(cov.minutes == 15) & (cov.unit != "study_area")]
    ranked = head[head.category == "all"].sort_values(["share", "population"], ascending=[True, False])
    assert {"黄浦区", "静安区"} <= set(ranked.unit)
    rows = _docx_table(docx.Document(out / "report.docx"), "排名")
    assert [r[1] for r in rows[1:]] == ranked.unit.tolist()
    for r in rows[1:]:
        u = head[head.unit == r[1]].set_index("category")
        assert r[rows[0].index("卫生")].split()[0] == _pct(u.loc["health", "share"])
        assert r[rows[0].index("体育")].split()[0] == _pct(u.loc["sports", "share"])
    html = (out / "report.html").read_text(encoding="utf-8")
    # the DataV districts were GCJ-02: the conversion is reported with the check that confirmed it
    assert "gcj02 → WGS84" in html
    s = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert s["crs_checks"]["units"]["declared"] == "gcj02"
    assert (out / "units_chart.png").read_bytes()[:4] == b"\x89PNG"


def test_fewer_categories_are_named_not_called_all_four(tmp_path):
    """A run of two categories never says "all four" (四类) in its report, figures or workbook."""
    from lifecircle import analyze
    from lifecircle.config import AnalysisConfig
    from lifecircle.datasets import toy_town_osm
    from lifecircle.present.figures import coverage_curve, coverage_figure, units_bar_chart
    from lifecircle.present.report import report_content

    a = analyze(toy_town_osm(), admin_level=8, config=AnalysisConfig(categories=("health", "sports")))
    for lang, bad, good in (("zh", "四类", "全部两类设施（卫生、体育）"), ("en", "all four", "both facility categories (health, sports)")):
        r = report_content(a, lang=lang)
        words = " ".join(b.text for sec in r.sections for b in sec.blocks if hasattr(b, "text"))
        cells = " ".join(str(c) for sec in r.sections for b in sec.blocks if hasattr(b, "rows")
                         for row in [b.columns, *b.rows] for c in row)
        assert good in r.sections[0].blocks[0].text
        assert bad not in words + cells
        titles = [coverage_figure(a, lang=lang).axes[0].get_title(),
                  *[t.get_text() for t in coverage_curve(a, lang=lang).axes[0].get_legend().get_texts()],
                  units_bar_chart(a, lang=lang).axes[0].get_title()]
        assert not any(bad in t for t in titles), titles
    # all four analysed: the words stay
    r4 = report_content(analyze(toy_town_osm(), admin_level=8), lang="zh")
    assert "全部四类设施（卫生、养老、文化、体育）" in r4.sections[0].blocks[0].text


def test_a_chromium_that_crashes_costs_only_the_pdf(tmp_path, monkeypatch, caplog):
    """Chromium installed but failing (a crash, a sandbox) warns and skips report.pdf; the rest is written."""
    import logging

    import lifecircle.present.report as report_module
    from lifecircle import analyze
    from lifecircle.datasets import toy_town_osm
    from lifecircle.present.report import write_report_files

    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\necho 'Trace/breakpoint trap' >&2\nexit 5\n")
    fake.chmod(0o755)
    monkeypatch.setattr(report_module, "chromium_path", lambda: str(fake))
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="lifecircle"):
        paths = write_report_files(analyze(toy_town_osm(), admin_level=8), out, pdf=True)
    assert "report.pdf" not in paths and not (out / "report.pdf").exists()
    assert {"report.html", "report.docx", "results.xlsx"} <= set(paths)
    assert all((out / n).is_file() for n in ("report.html", "report.docx", "results.xlsx"))
    assert any("report.pdf not written" in r.getMessage() and "exit 5" in r.getMessage() for r in caplog.records)


def test_no_chromium_no_pdf_and_the_old_one_goes(tmp_path, monkeypatch):
    """Without Chromium the run has no report.pdf, and a PDF of an earlier run in the folder is removed
    (it would describe another run)."""
    import lifecircle.present.report as report_module
    from lifecircle import analyze
    from lifecircle.datasets import toy_town_osm
    from lifecircle.present.report import write_report_files

    fake = tmp_path / "chromium"  # "prints" by writing a small PDF where it is told to
    fake.write_text('#!/bin/sh\nfor a in "$@"; do case "$a" in --print-to-pdf=*) '
                    'printf "%%PDF-1.4 fake" > "${a#--print-to-pdf=}";; esac; done\n')
    fake.chmod(0o755)
    out = tmp_path / "out"
    a = analyze(toy_town_osm(), admin_level=8)
    monkeypatch.setattr(report_module, "chromium_path", lambda: str(fake))
    assert "report.pdf" in write_report_files(a, out, pdf=True)
    assert (out / "report.pdf").read_bytes().startswith(b"%PDF-1.4 fake")
    monkeypatch.setattr(report_module, "chromium_path", lambda: None)
    paths = write_report_files(a, out, pdf=True)
    assert "report.pdf" not in paths and (out / "report.html").is_file()
    assert not (out / "report.pdf").exists()


def test_a_chromium_that_cannot_start_costs_only_the_pdf(tmp_path, monkeypatch, caplog):
    """A Chromium that is found but cannot be started (not executable) warns and skips report.pdf."""
    import logging

    import lifecircle.present.report as report_module
    from lifecircle import analyze
    from lifecircle.datasets import toy_town_osm
    from lifecircle.present.report import write_report_files

    fake = tmp_path / "chromium"
    fake.write_text("not a program\n")  # not executable: subprocess raises PermissionError
    monkeypatch.setattr(report_module, "chromium_path", lambda: str(fake))
    with caplog.at_level(logging.WARNING, logger="lifecircle"):
        paths = write_report_files(analyze(toy_town_osm()), tmp_path / "out", pdf=True)
    assert "report.pdf" not in paths and "report.html" in paths
    assert any("could not be started" in r.getMessage() for r in caplog.records)


def test_analyze_prints_the_pdf_beside_the_map_and_a_failed_one_is_not_listed(tmp_path, monkeypatch, capsys):
    """`analyze` lets Chromium print report.pdf while it draws the map: a slow printer's PDF is in the run
    (the commit waits for it); a failing one is neither in the folder, nor its manifest, nor the printed list."""
    import lifecircle.present.report as report_module

    slow = tmp_path / "chromium-slow"  # prints after 1 s, by which time the map is being drawn
    slow.write_text('#!/bin/sh\nsleep 1\nfor a in "$@"; do case "$a" in --print-to-pdf=*) '
                    'printf "%%PDF-1.4 slow" > "${a#--print-to-pdf=}";; esac; done\n')
    slow.chmod(0o755)
    monkeypatch.setattr(report_module, "chromium_path", lambda: str(slow))
    out = tmp_path / "out"
    assert main(["analyze", "--example", "toy_town", "--basemap", "none", "--out", str(out)]) == 0
    assert (out / "report.pdf").read_bytes() == b"%PDF-1.4 slow" and (out / "map.html").is_file()
    manifest = json.loads((out / "lifecircle_manifest.json").read_text(encoding="utf-8"))
    assert "report.pdf" in manifest["files"] and "report.pdf" in capsys.readouterr().out

    broken = tmp_path / "chromium-broken"
    broken.write_text("#!/bin/sh\nexit 5\n")
    broken.chmod(0o755)
    monkeypatch.setattr(report_module, "chromium_path", lambda: str(broken))
    assert main(["analyze", "--example", "toy_town", "--basemap", "none", "--out", str(out)]) == 0
    printed = capsys.readouterr()
    wrote = [line for line in printed.out.splitlines() if line.startswith("wrote ")][0]
    assert "report.pdf" not in wrote and "report.html" in wrote and "map.html" in wrote
    manifest = json.loads((out / "lifecircle_manifest.json").read_text(encoding="utf-8"))
    assert "report.pdf" not in manifest["files"] and not (out / "report.pdf").exists()  # the old PDF went too
    assert "report.pdf not written" in printed.err


def _first_run(out, capsys) -> dict[str, bytes]:
    """A whole run of the toy town in ``out``; its files' bytes."""
    assert main(["-q", "analyze", "--example", "toy_town", "--basemap", "none", "--no-pdf", "--out", str(out)]) == 0
    capsys.readouterr()
    return {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}


def _failing_run(out, capsys) -> str:
    """Another run into ``out`` that must fail (exit 1); what it printed on stderr."""
    assert main(["analyze", "--example", "toy_town", "--basemap", "none", "--no-pdf", "--minutes", "7",
                 "--out", str(out)]) == 1
    return capsys.readouterr().err


def _assert_kept(out, before: dict[str, bytes]) -> None:
    """``out`` holds the earlier run as it was, with nothing staged left behind."""
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert not [p for p in out.iterdir() if p.name.startswith(".lifecircle")]


def test_a_map_that_fails_while_the_report_is_written_keeps_the_old_run(tmp_path, monkeypatch, capsys):
    """The map is drawn on a second thread: its error still ends `analyze` with one line and exit 1, after
    the report, and the folder keeps its earlier run with nothing staged left behind."""
    import lifecircle.present.outputs as outputs_module
    from lifecircle.errors import InputDataError

    out = tmp_path / "out"
    before = _first_run(out, capsys)

    def broken(*args, **kwargs):
        raise InputDataError("the map could not be drawn (a test): fix the test")

    monkeypatch.setattr(outputs_module, "write_maps", broken)
    err = _failing_run(out, capsys)
    assert "the map could not be drawn" in err and "Traceback" not in err
    _assert_kept(out, before)


def test_an_error_while_the_map_is_drawn_waits_for_it_and_keeps_the_old_run(tmp_path, monkeypatch, capsys):
    """The map starts as soon as the service areas are drawn, while the layers are written: an error in the
    layers ends `analyze` with one line and exit 1 once the map's thread has ended (said), and the folder
    keeps its earlier run with nothing staged left behind."""
    import threading
    import time

    import lifecircle.present.outputs as outputs_module
    from lifecircle.errors import InputDataError

    out = tmp_path / "out"
    before = _first_run(out, capsys)
    real_maps, drawing, failing = outputs_module.write_maps, threading.Event(), threading.Event()

    def slow_maps(*args, **kwargs):
        drawing.set()
        failing.wait(30)
        time.sleep(0.5)  # still drawing when the layers fail
        return real_maps(*args, **kwargs)

    def broken_layers(*args, **kwargs):
        assert drawing.wait(5), "the map was not started before the layers were written"
        failing.set()
        raise InputDataError("the layers could not be written (a test): fix the test")

    monkeypatch.setattr(outputs_module, "write_maps", slow_maps)
    monkeypatch.setattr(outputs_module, "write_analysis_layers", broken_layers)
    err = _failing_run(out, capsys)
    assert "the layers could not be written" in err and "Traceback" not in err
    assert "waiting for the map's thread" in err
    assert not [t for t in threading.enumerate() if t.name.startswith("lifecircle-map")]
    _assert_kept(out, before)


def test_service_areas_that_fail_while_the_map_waits_for_them_keep_the_old_run(tmp_path, monkeypatch, capsys):
    """The map starts once the gap areas are drawn and waits for the service areas: an error while they are
    contoured ends `analyze` with that error's one line and exit 1, the map's thread ends too (no hang), and
    the folder keeps its earlier run."""
    import threading

    import lifecircle.present.isochrones as iso_module
    import lifecircle.present.outputs as outputs_module
    from lifecircle.errors import InputDataError

    out = tmp_path / "out"
    before = _first_run(out, capsys)
    real_maps, started = outputs_module.write_maps, threading.Event()

    def watched_maps(*args, **kwargs):
        started.set()
        return real_maps(*args, **kwargs)

    def broken_areas(*args, **kwargs):
        assert started.wait(5), "the map was not started before the service areas"
        raise InputDataError("the service areas could not be drawn (a test): fix the test")

    monkeypatch.setattr(outputs_module, "write_maps", watched_maps)
    monkeypatch.setattr(iso_module, "_service_areas_begun", broken_areas)
    err = _failing_run(out, capsys)
    assert "the service areas could not be drawn" in err and "Traceback" not in err
    assert not [t for t in threading.enumerate() if t.name.startswith("lifecircle-map")]
    _assert_kept(out, before)


@pytest.mark.parametrize("beside", [True, False])
def test_the_map_is_drawn_beside_the_areas_up_to_a_size(tmp_path, monkeypatch, beside):
    """Up to MAP_BESIDE_AREAS_MAX_NODES street nodes the map starts before the gap and service areas are drawn
    (it is handed Futures of them); above, once they are (a 4M-node city's peak memory), with the same page."""
    from concurrent.futures import Future

    import lifecircle.cli as cli_module
    import lifecircle.present.outputs as outputs_module

    if not beside:
        monkeypatch.setattr(cli_module, "MAP_BESIDE_AREAS_MAX_NODES", 0)
    real_maps, given = outputs_module.write_maps, {}

    def watched_maps(*args, **kwargs):
        given.update(kwargs)
        return real_maps(*args, **kwargs)

    monkeypatch.setattr(outputs_module, "write_maps", watched_maps)
    out = tmp_path / "out"
    assert main(["-q", "analyze", "--example", "toy_town", "--basemap", "none", "--no-pdf", "--out", str(out)]) == 0
    assert isinstance(given["isochrones"], Future) is beside and isinstance(given["gaps"], Future) is beside
    page = (out / "map.html").read_text(encoding="utf-8")
    assert "服务范围 Service areas" in page and "缺口 Gaps" in page
