"""The words of the report, the workbook and the per-unit chart, in Chinese and English, from one dictionary."""

from __future__ import annotations

import re
from typing import Any

from ..config import ALL
from ..errors import InputDataError

__all__ = ["LANGS", "TEXT", "HEADERS", "text", "header", "category_name", "all_fields", "detect_lang", "has_cjk"]

#: The report languages: ``zh`` (简体中文) and ``en``.
LANGS = ("zh", "en")

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")

#: Every heading and sentence of the report: ``key -> (Chinese, English)``; ``{name}`` fields are filled
#: by :func:`text`.
TEXT: dict[str, tuple[str, str]] = {
    # title page
    "title": ("15分钟社区生活圈步行可达评估报告", "15-minute community life circle: walking access report"),
    "subtitle": ("{pop} 名居民 · {units} · 步行 {speed} km/h · {date} · lifecircle {version}",
                 "{pop} residents · {units} · walking {speed} km/h · {date} · lifecircle {version}"),
    "n_units": ("{n} 个统计单元", "{n} units"),
    "no_units": ("研究区整体（未分单元）", "study area as a whole (no units)"),
    # sections
    "s_headline": ("一、结论", "1. Headline"),
    "s_categories": ("二、分类覆盖率", "2. Coverage by category"),
    "s_urban": ("三、城镇与乡村", "3. Urban and rural residents"),
    "s_units": ("{n}、分单元排名", "{n}. Units ranked"),
    "s_maps": ("{n}、地图与图表", "{n}. Maps and charts"),
    "s_gaps": ("{n}、主要缺口区域", "{n}. Largest gap areas"),
    "s_sites": ("{n}、建议新增设施选址", "{n}. Suggested new sites"),
    "s_equity": ("{n}、供需与公平", "{n}. Supply, demand and equity"),
    "s_completeness": ("{n}、数据完整性", "{n}. Data completeness"),
    "s_method": ("{n}、方法与参数", "{n}. Method and parameters"),
    "s_sources": ("{n}、数据来源与版权", "{n}. Sources and credits"),
    # headline
    "headline_all": ("{share} 的居民步行 {minutes} 分钟内可到达全部{all}设施（{all_names}）",
                     "{share} of residents can walk to {all} facility categories ({all_names}) within {minutes} minutes"),
    "headline_one": ("{share} 的居民步行 {minutes} 分钟内可到达{category}设施",
                     "{share} of residents can walk to a {category} facility within {minutes} minutes"),
    "target_met": ("已达到 {target} 的目标", "the {target} target is met"),
    "target_not_met": ("未达到 {target} 的目标：还需覆盖 {people} 人",
                       "the {target} target is not met: {people} more residents to cover"),
    "target_source": ("目标依据", "Target source"),
    "per_category_line": ("各类设施", "Per category"),
    "units_below": ("{below} / {total} 个单元低于目标", "{below} of {total} units are below the target"),
    "standard": ("设施口径", "Facilities counted"),
    "standard_line": ("{title}（{name}）：保留 {kept} 处设施，剔除 {dropped} 处（逐条见 standard_decisions.csv）",
                      "{title} ({name}): {kept} facilities kept, {dropped} dropped (each one in "
                      "standard_decisions.csv)"),
    "standard_why": ("选用原因", "Why this definition"),
    "standard_auto_zh": ("自动：研究区位于中国，采用上海85%目标所指的社区级公共服务设施口径"
                         "（--standard all 则计入找到的全部设施）", ""),
    "dropped_reasons": ("剔除原因", "Dropped because"),
    # tables
    "category": ("类别", "Category"),
    "facilities": ("设施数", "Facilities"),
    "within_min": ("≤{m} 分钟", "≤{m} min"),
    "target": ("目标", "Target"),
    "met": ("达标", "met"),
    "not_met": ("未达标", "not met"),
    "to_cover": ("待覆盖人口", "People to cover"),
    "rank": ("排名", "Rank"),
    "unit": ("单元", "Unit"),
    "unit_type": ("类型", "Type"),
    "population": ("人口", "Population"),
    "share_all_at": ("{all}全可达（≤{m} 分钟）", "{All} (≤{m} min)"),
    "sites_needed": ("需新增设施", "Sites needed"),
    "below_mark": ("× 低于目标", "× below target"),
    "urban": ("城镇", "Urban"),
    "rural": ("乡村", "Rural"),
    "gap_pp": ("差距（百分点）", "Gap (pp)"),
    "urban_method": ("城乡划分方法", "How residents were split"),
    "urban_none": ("未划分城乡：全部居民按城镇计（--urban 可划分）",
                   "No urban/rural split: every resident counts as urban (--urban gives one)"),
    "units_note": ("按{all}全可达覆盖率从低到高排列；× 表示低于 {target} 目标；各类设施列为 {m} 分钟覆盖率。",
                   "Ranked from the lowest share of residents reaching {all}; × marks a share below the "
                   "{target} target; the category columns are {m}-minute shares."),
    "units_note_one": ("按覆盖率从低到高排列；× 表示低于 {target} 目标。",
                       "Ranked from the lowest share; × marks a share below the {target} target."),
    "sites_note": ("需新增设施：达到目标所需的最少新增设施数（贪心选址，逐类）；— 表示未做选址（lifecircle gaps DIR）。",
                   "Sites needed: the fewest new facilities that reach the target (greedy, per category); "
                   "— means no site plan was made (lifecircle gaps DIR)."),
    "no_units_text": ("未给出统计单元（--units 或 --admin-level 可分区统计）。",
                      "No units were given (--units or --admin-level report per district)."),
    # maps
    "fig_coverage_map": ("居民步行到最近设施的时间（全部{all}）", "Walking minutes to the nearest facility ({all})"),
    "fig_coverage_curve": ("步行时间与覆盖率", "Share of residents within each walking time"),
    "fig_units_chart": ("各单元覆盖率与 {target} 目标", "Coverage per unit against the {target} target"),
    "fig_other": ("图：{name}", "Figure: {name}"),
    "no_figures": ("本文件夹中没有图（analyze 不加 --no-map / --no-png 时生成）。",
                   "No figures in this folder (analyze writes them unless --no-map / --no-png)."),
    # gaps
    "gap": ("缺口", "Gap"),
    "gaps_note": ("缺口区域：步行 {m} 分钟内到不了该类设施的居民所在的相邻网格（{cells}）；按人口从大到小；"
                  "经纬度为区域内代表点（WGS84）。",
                  "Gap areas: adjacent grid cells ({cells}) of residents who cannot reach the category within "
                  "{m} minutes, largest population first; lon/lat is a point inside the area (WGS84)."),
    "median_minutes": ("步行时间中位数（分钟）", "Median minutes"),
    "unreachable": ("无法到达", "unreachable"),
    "near": ("附近", "Near"),
    "lonlat": ("经度, 纬度", "Lon, lat"),
    "no_gaps": ("没有缺口区域：每类设施都覆盖了全部居民。", "No gap areas: every category reaches every resident."),
    "gaps_missing": ("本次未计算缺口区域（gaps.gpkg 不存在）。", "Gap areas were not computed (no gaps.gpkg)."),
    # sites
    "sites_intro": ("按新增覆盖人口排序的建议选址（研究区整体，每类前 {k} 处）；可作为 lifecircle scenario --add 的输入。",
                    "Suggested sites ordered by the residents each newly covers (study area, the first {k} per "
                    "category); usable as lifecircle scenario --add."),
    "newly_covered": ("新增覆盖人口", "Newly covered"),
    "cumulative_share": ("累计覆盖率", "Cumulative share"),
    "name_address": ("名称/地址", "Name / address"),
    "street_node": ("路网节点 {node}", "street node {node}"),
    "no_sites": ("本次未做选址：运行 lifecircle analyze --sites 或 lifecircle gaps DIR。",
                 "No site plan in this run: use lifecircle analyze --sites or lifecircle gaps DIR."),
    # completeness
    "c_facilities": ("设施数量（按类别与来源）", "Facilities by category and source"),
    "source": ("来源", "Source"),
    "total": ("合计", "Total"),
    "study_area": ("研究区整体", "Study area"),
    "c_official": ("找到的社区卫生服务中心与官方数量", "Community health centres found vs official counts"),
    "found": ("找到", "Found"),
    "official": ("官方", "Official"),
    "found_share": ("找到比例", "Found share"),
    "c_official_none": ("未提供官方数量（lifecircle report DIR --official-counts FILE 可对比）。",
                        "No official counts given (lifecircle report DIR --official-counts FILE compares them)."),
    "c_population": ("人口来源", "Population source"),
    "pop_estimate": ("估算（由 OSM 住宅建筑面积推算，非统计数）", "an ESTIMATE from OSM residential buildings, not counts"),
    "pop_counts": ("给定数据", "given counts"),
    "c_crs": ("坐标系检查与转换", "Coordinate checks and conversions"),
    "input": ("输入", "Input"),
    "declared": ("声明的坐标系", "Declared CRS"),
    "verdict": ("检查结果", "Verdict"),
    "c_crs_none": ("没有需要检查坐标系的文件输入。", "No file input needed a CRS check."),
    "c_unsnapped": ("离路网过远、未参与计算的点", "Points too far from the street network (not used)"),
    "c_unsnapped_line": ("居民点 {res} 个（人口 {pop}），设施 {fac} 个（阈值 {snap} 米；明细见 unsnapped.csv）",
                         "{res} resident points ({pop} people) and {fac} facilities (more than {snap} m away; "
                         "listed in unsnapped.csv)"),
    "c_duplicates": ("合并的重复设施", "Merged duplicate facilities"),
    "c_duplicates_line": ("{n} 处（同类、相距 150 米内、名称一致，来自不同输入，或同一 OSM 设施的点与面；明细见 "
                          "facilities_merged.csv）",
                          "{n} (same category within 150 m, names agree, from different inputs or an OSM node and "
                          "area; listed in facilities_merged.csv)"),
    "c_duplicates_unknown": ("未记录（本文件夹由旧版本生成）", "not recorded (folder written by an older version)"),
    "src_osm": ("OSM", "OSM"),
    "src_list": ("设施清单", "facility list"),
    "pop_points": ("居民点（给定人口）", "resident points with counts"),
    "pop_polygons": ("人口面（按面积分配）", "population polygons"),
    "pop_raster": ("人口栅格", "population raster"),
    "pop_estimate_from_buildings": ("由 OSM 建筑估算", "estimated from OSM buildings"),
    "pop_census_dasymetric": ("人口普查按建筑分配", "census spread onto buildings (dasymetric)"),
    "c_warnings": ("警告", "Warnings"),
    "c_warnings_none": ("无", "none"),
    "c_census": ("人口普查分配", "Census spread"),
    # method
    "m_speed": ("步行速度", "Walking speed"),
    "m_speed_value": ("{speed} km/h（{m} 分钟 {dist} 米）", "{speed} km/h ({m} min = {dist} m)"),
    "m_speed_source": ("速度依据", "Speed source"),
    "m_thresholds": ("时间阈值", "Thresholds"),
    "m_minutes": ("{mins} 分钟（{head} 分钟为主指标）", "{mins} minutes ({head} min is the headline)"),
    "m_target": ("目标覆盖率", "Target share"),
    "m_snapping": ("接入路网", "Snapping"),
    "m_snapping_value": ("就近接入最近的可步行路段（最远 {snap} 米），接入段按步行计时",
                         "each point joins the nearest walkable street (at most {snap} m); the access leg is "
                         "walked"),
    "m_cutoff": ("最短路搜索上限", "Shortest-path cut-off"),
    "m_network": ("步行路网", "Walking network"),
    "m_network_value": ("{nodes} 个节点，{edges} 条路段，{km} 公里", "{nodes} nodes, {edges} edges, {km} km"),
    "m_residents": ("居民点", "Resident points"),
    "m_categories": ("设施类别", "Categories"),
    "m_coverage": ("覆盖率定义", "Coverage"),
    "m_coverage_value": ("人口加权：步行时间不超过阈值的居民人数 ÷ 总人数；“全部{all}”要求{all}设施都在阈值内",
                         "population-weighted: residents within the threshold ÷ all residents; '{all}' "
                         "needs every category within it"),
    "parameter": ("参数", "Parameter"),
    "value": ("取值", "Value"),
    # sources
    "src_file": ("文件", "File"),
    "src_inputs": ("输入数据（SHA-256 前 12 位）", "Inputs (first 12 hex digits of SHA-256)"),
    "src_standard": ("口径依据", "Definition sources"),
    "src_credits": ("版权与致谢", "Credits"),
    "src_reproduce": ("复现：lifecircle report {dir} 由本文件夹重新生成本报告；summary.json 记录全部参数。",
                      "Reproduce: lifecircle report {dir} rebuilds this report from the folder; summary.json "
                      "holds every parameter."),
    # equity
    "group": ("人群", "Group"),
    "everyone": ("全部居民", "everyone"),
    "eq_capacity": ("容量/千人", "Capacity per 1,000"),
    "eq_access": ("可达容量/千人（2SFCA）", "Within reach per 1,000 (2SFCA)"),
    "eq_standard": ("标准/千人", "Standard per 1,000"),
    "eq_worst_unit": ("最低单元", "Lowest unit"),
    "fig_lorenz": ("各单元可达容量的洛伦兹曲线", "Lorenz curves of capacity within reach across units"),
    "equity_note": ("研究区整体：每千人设施容量、步行 15 分钟内可达的容量（两步移动搜索法 2SFCA）及其在居民间的不平等"
                    "（Gini、Theil、Palma）；分单元与分人群明细见 accessibility.csv、equity.csv。",
                    "Study area: facility capacity per 1,000 residents, the capacity within a 15-minute walk (two-step "
                    "floating catchment, 2SFCA) and its inequality between residents (Gini, Theil, Palma); per unit "
                    "and group in accessibility.csv and equity.csv."),
    "indicator": ("指标", "Indicator"),
    # chart
    "chart_target": ("{target} 目标", "{target} target"),
    "chart_meets": ("达到目标", "meets the target"),
    "chart_below": ("低于目标", "below the target"),
    "chart_xlabel": ("{m} 分钟内可达{category}的居民比例（%）", "residents within {m} min of {category} (%)"),
    "chart_title": ("各单元{category} {m} 分钟覆盖率", "{category}: {m}-minute coverage per unit"),
    "chart_xlabel_all": ("{m} 分钟内{all}设施全可达的居民比例（%）", "residents within {m} min of {all} categories (%)"),
    "chart_title_all": ("各单元 {m} 分钟{all}设施全可达覆盖率", "{All} categories within {m} minutes, per unit"),
    # workbook
    "sheet_units": ("分单元", "units"),
    "sheet_categories": ("分类别", "categories"),
    "sheet_gaps": ("缺口", "gaps"),
    "sheet_sites": ("建议选址", "sites"),
    "sheet_needed": ("需新增设施", "sites needed"),
    "sheet_completeness": ("数据完整性", "completeness"),
    "sheet_decisions": ("设施口径", "standard decisions"),
    "sheet_coverage": ("覆盖率明细", "coverage"),
}

#: Column headers of the workbook and the report's tables: ``column -> (Chinese, English)``.
HEADERS: dict[str, tuple[str, str]] = {
    "unit": ("单元", "unit"), "category": ("类别", "category"), "minutes": ("分钟", "minutes"),
    "population": ("人口", "population"), "covered_population": ("已覆盖人口", "covered population"),
    "share": ("覆盖率", "share"), "target": ("目标", "target"), "meets_target": ("达标", "meets target"),
    "population_to_cover": ("待覆盖人口", "people to cover"), "rank": ("排名", "rank"),
    "unit_type": ("单元类型", "unit type"), "facilities": ("设施数", "facilities"),
    "gap": ("缺口编号", "gap"), "residents": ("居民点数", "resident points"),
    "share_of_uncovered": ("占未覆盖人口比例", "share of uncovered"), "mean_minutes": ("平均步行分钟", "mean minutes"),
    "median_minutes": ("步行分钟中位数", "median minutes"), "max_minutes": ("最长步行分钟", "max minutes"),
    "population_unreachable": ("无法到达人口", "population unreachable"), "lon": ("经度", "lon"),
    "lat": ("纬度", "lat"), "resident_index": ("代表居民点", "resident index"), "cells": ("网格数", "cells"),
    "area_km2": ("面积（平方公里）", "area km²"), "near": ("附近", "near"),
    "node": ("路网节点", "node"), "osm_node_id": ("OSM 节点", "OSM node id"), "candidate": ("候选点", "candidate"),
    "newly_covered_population": ("新增覆盖人口", "newly covered population"),
    "cumulative_covered_population": ("累计覆盖人口", "cumulative covered population"),
    "cumulative_share": ("累计覆盖率", "cumulative share"), "share_before": ("现状覆盖率", "share before"),
    "sites_needed": ("需新增设施数", "sites needed"), "share_after": ("新增后覆盖率", "share after"),
    "reachable": ("可达目标", "reachable"), "exact_sites": ("精确解设施数", "exact sites"),
    "exact_status": ("精确解状态", "exact status"), "note": ("说明", "note"),
    "subcategory": ("子类", "subcategory"), "name": ("名称", "name"), "source": ("来源", "source"),
    "osm_type": ("OSM 类型", "OSM type"), "osm_id": ("OSM 编号", "OSM id"), "kept": ("计入", "kept"), "dropped": ("剔除", "dropped"),
    "facility_type": ("设施类型", "facility type"), "reason": ("原因", "reason"),
    "item": ("项目", "item"), "value": ("数值", "value"), "detail": ("说明", "detail"),
    "section": ("部分", "section"), "address": ("地址", "address"),
}

_CATEGORIES = {"health": ("卫生", "health"), "elderly_care": ("养老", "elderly care"),
               "culture": ("文化", "culture"), "sports": ("体育", "sports"), ALL: ("四类全部", "all four")}


def _pick(pair: tuple[str, str], lang: str) -> str:
    if lang not in LANGS:
        raise InputDataError(f"language {lang!r} is not one of {', '.join(LANGS)}; use --lang zh or --lang en")
    return pair[0] if lang == "zh" else pair[1]


def text(key: str, lang: str, **fields: Any) -> str:
    """The sentence ``key`` in ``lang`` with its fields filled in.

    >>> text("target_met", "zh", target="85%")
    '已达到 85% 的目标'
    >>> text("target_met", "en", target="85%")
    'the 85% target is met'
    """
    s = _pick(TEXT[key], lang)
    return s.format(**fields) if fields else s


def header(column: str, lang: str) -> str:
    """A table column's header in ``lang`` (the column name itself when the dictionary lacks it).

    >>> header("population_to_cover", "zh"), header("population_to_cover", "en"), header("xyz", "zh")
    ('待覆盖人口', 'people to cover', 'xyz')
    """
    pair = HEADERS.get(column)
    return column if pair is None else _pick(pair, lang)


def category_name(category: str, lang: str, *, categories: Any = None) -> str:
    """``卫生`` / ``health`` …; ``all`` is ``四类全部`` / ``all four`` (``categories``: the analysed ones, so
    that two analysed categories make ``两类全部`` / ``both``).

    >>> category_name("elderly_care", "zh"), category_name("all", "en")
    ('养老', 'all four')
    >>> category_name("all", "zh", categories=("health", "culture")), category_name("all", "en", categories=("health", "culture"))
    ('两类全部', 'both')
    """
    if category == ALL and categories is not None:
        words = all_fields(categories, lang)["all"]
        return f"{words}全部" if lang == "zh" else words
    pair = _CATEGORIES.get(category)
    return str(category) if pair is None else _pick(pair, lang)


_COUNT_ZH = dict(enumerate("零一两三四五六七八九十"))
_COUNT_EN = dict(enumerate(("none", "one", "both", "three", "four", "five", "six", "seven", "eight", "nine", "ten")))


def all_fields(categories: Any, lang: str) -> dict[str, str]:
    """The words for "every analysed category" that fill ``{all}``, ``{All}`` and ``{all_names}`` in :data:`TEXT`.

    The headline's ``all`` is every category the run analysed, which is not always four.

    >>> all_fields(("health", "elderly_care", "culture", "sports"), "zh")["all"]
    '四类'
    >>> f = all_fields(("health", "culture", "sports"), "en"); f["all"], f["All"], f["all_names"]
    ('all three', 'All three', 'health, culture, sports')
    >>> text("headline_all", "zh", share="60%", minutes="15", **all_fields(("health", "sports"), "zh"))
    '60% 的居民步行 15 分钟内可到达全部两类设施（卫生、体育）'
    """
    cats = [c for c in categories if c != ALL]
    n = len(cats)
    if lang == "zh":
        words, names = f"{_COUNT_ZH.get(n, str(n))}类", "、".join(category_name(c, lang) for c in cats)
    else:
        words = "both" if n == 2 else f"all {_COUNT_EN.get(n, str(n))}"
        names = ", ".join(category_name(c, "en") for c in cats)
    _pick(("", ""), lang)  # an unknown language is refused here too
    return {"all": words, "All": words[:1].upper() + words[1:], "all_names": names}


def has_cjk(value: Any) -> bool:
    """Whether a string holds Chinese characters.

    >>> has_cjk("城东街道"), has_cjk("Kallio")
    (True, False)
    """
    return bool(_CJK.search(str(value)))


def detect_lang(analysis: Any) -> str:
    """``zh`` when the unit or facility names are Chinese, else ``en``.

    >>> import pandas as pd
    >>> class A: coverage = pd.DataFrame({"unit": ["study_area", "黄浦区"]}); facilities = None
    >>> detect_lang(A())
    'zh'
    """
    cov = getattr(analysis, "coverage", None)
    names: list[Any] = []
    if cov is not None and "unit" in cov:
        names += list(cov["unit"].astype(str).unique()[:200])
    fac = getattr(analysis, "facilities", None)
    if fac is not None and "name" in getattr(fac, "columns", ()):
        names += list(fac["name"].dropna().astype(str).head(500))
    return "zh" if any(has_cjk(n) for n in names) else "en"
