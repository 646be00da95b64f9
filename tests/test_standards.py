"""Facility standards (which facilities count) and tiered coverage, with numbers worked out by hand."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from lifecircle import AnalysisConfig, InputDataError, WalkNetwork, analyze
from lifecircle.datasets import helsinki_osm, toy_town_osm
from lifecircle.read.standards import apply_standard, decisions_table, load_standard, resolve_standard

from conftest import lonlat

# ---------------------------------------------------------------------------------------------
# tiers on a hand-built street: 0 — 400 — 800 — 1200 — 1333.33 — 1600 m along one straight line


LINE_X = [0.0, 400.0, 800.0, 1200.0, 4000.0 / 3.0, 1600.0]


def _line_network():
    lon, lat = lonlat(LINE_X, [0.0] * len(LINE_X))
    n = len(LINE_X)
    return WalkNetwork.from_lonlat(lon, lat, list(range(n - 1)), list(range(1, n)))


def _points(xs, **cols):
    lon, lat = lonlat(xs, [0.0] * len(xs))
    return gpd.GeoDataFrame(cols, geometry=gpd.points_from_xy(lon, lat), crs=4326)


def test_tiers_by_hand():
    """At 4 km/h (66.67 m/min): stations (5-min tier) at 0 and 1333.33 m, a centre (15-min tier) at
    1333.33 m. A (x=533.33, 100 people): station 8 min -> fails its tier; centre 12 min -> passes.
    B (x=200, 50): station 3 min passes, centre 17 min fails. C (x=1100, 30): station 3.5, centre 3.5.
    Station tier 80/180, centre tier 130/180, complete life circle (both) 30/180."""
    fac = _points([0.0, 4000.0 / 3.0, 4000.0 / 3.0], category="health", source="list",
                  name=["甲社区卫生服务站", "乙社区卫生服务站", "乙街道社区卫生服务中心"])
    res = _points([1600.0 / 3.0, 200.0, 1100.0], population=[100.0, 50.0, 30.0])
    a = analyze(network=_line_network(), facilities=fac, population=res,
                config=AnalysisConfig(categories=("health",), minutes=(5, 10, 15), standard="gb50180-2018"))
    study = a.tiers[a.tiers.unit == "study_area"].set_index("type")
    assert study.loc["health_station", "tier_minutes"] == 5
    assert study.loc["health_service_centre", "tier_minutes"] == 15
    assert study.loc["health_station", "share"] == pytest.approx(80 / 180, abs=1e-9)
    assert study.loc["health_service_centre", "share"] == pytest.approx(130 / 180, abs=1e-9)
    assert study.loc["complete_life_circle", "share"] == pytest.approx(30 / 180, abs=1e-9)
    m = a.residents["minutes_to_type_health_station"].to_numpy()
    assert m == pytest.approx([8.0, 3.0, 3.5], abs=1e-6)
    # the category figure is "any health facility within 15 min": all three residents
    assert a.category_share("health", 15) == pytest.approx(1.0)
    assert a.summary["standard"]["tiers"]["complete_life_circle"]["share"] == pytest.approx(30 / 180)


def test_untiered_standard_writes_no_tier_table():
    a = analyze(toy_town_osm(), config=AnalysisConfig(standard="shanghai-community"))
    assert a.tiers is None and "tiers" not in a.summary["standard"]


# ---------------------------------------------------------------------------------------------
# which standard, and what it keeps


def test_auto_is_the_shanghai_definition_in_china_and_all_elsewhere():
    toy = analyze(toy_town_osm())
    assert toy.summary["standard"]["name"] == "shanghai-community"
    assert "in China" in toy.summary["standard"]["chosen"]
    hel = analyze(helsinki_osm(), config=AnalysisConfig(categories=("health", "culture", "sports")))
    assert hel.summary["standard"]["name"] == "all"
    assert hel.summary["parameters"]["standard"] == "auto"


def test_the_old_behaviour_is_one_option_away():
    """``all`` keeps every facility the taxonomy found: the same as before standards existed."""
    every = analyze(helsinki_osm(), config=AnalysisConfig(categories=("health", "culture", "sports"),
                                                          standard="all"))
    assert every.standard_decisions["kept"].all()
    assert len(every.facilities) == len(every.standard_decisions)


def _fac(rows, source="osm"):
    cols = ["category", "subcategory", "name"]
    df = pd.DataFrame(rows, columns=cols)
    return gpd.GeoDataFrame(df.assign(source=source), geometry=gpd.points_from_xy([121.45] * len(df),
                                                                                   [31.23] * len(df)), crs=4326)


def test_drop_reasons_and_types():
    fac = _fac([
        ("health", "community_health_centre", "静安区江宁路街道社区卫生服务中心"),
        ("health", "community_health_station", "江宁路街道社区卫生服务中心分中心"),
        ("health", "hospital", "上海市第一人民医院"),
        ("health", "hospital", "浦兴社区卫生中心"),  # tagged amenity=hospital in OSM, a community centre by name
        ("health", "clinic", "张氏口腔诊所"),
        ("sports", "fitness", "一兆韦德健身"),
        ("sports", "fitness", None),  # unnamed leisure=fitness_station: public
        ("sports", "pitch", "华东理工大学足球场"),
        ("elderly_care", "nursing_home", "亲和源老年公寓"),
        ("elderly_care", "day_care", "南京西路街道长者照护之家"),
        ("culture", "library", "静安区图书馆"),
        ("culture", "library", "曹家渡街道社区图书馆"),
    ])
    fac["leisure"] = [None, None, None, None, None, "fitness_centre", "fitness_station", "pitch", None, None, None,
                      None]
    kept, dec = apply_standard(fac, load_standard("shanghai-community"))
    assert [t if isinstance(t, str) else None for t in dec.facility_type] == [
        "community_health_centre", "community_health_station", None, "community_health_centre", None, None,
        "fitness_point", None, None, "elderly_day_care", None, "community_library"]
    assert dec.reason[2].startswith("hospital")
    assert dec.reason[4].startswith("private clinic")
    assert dec.reason[5].startswith("commercial gym")
    assert dec.reason[7].startswith("school or campus")
    assert dec.reason[8].startswith("commercial senior housing")
    assert dec.reason[10].startswith("district- or city-level")
    assert len(kept) == 6 and set(kept.tier_minutes) == {15.0}
    table = decisions_table(dec)
    assert table.facilities.sum() == 12


def test_a_list_of_your_own_is_counted_as_given():
    fac = _fac([("health", "list", "某某医院"), ("health", "list", "某某社区卫生服务站")], source="list")
    kept, dec = apply_standard(fac, load_standard("gb50180-2018"))
    assert dec.kept.all()
    assert dec.facility_type.tolist() == ["health_from_list", "health_station"]
    assert kept.tier_minutes.tolist() == [15.0, 5.0]


def test_standard_file_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[[type]]\nkey = "a"\ncategory = "hospitals"\nnames = ["医院"]\n', encoding="utf-8")
    with pytest.raises(InputDataError, match="category 'hospitals'"):
        load_standard(bad)
    bad.write_text('name = "x"\n[[type]]\nkey = "a"\ncategory = "health"\n', encoding="utf-8")
    with pytest.raises(InputDataError, match="give names, subcategories or tags"):
        load_standard(bad)
    with pytest.raises(InputDataError, match="unknown standard"):
        AnalysisConfig(standard="shanghai")
    with pytest.raises(InputDataError, match="unknown standard"):
        resolve_standard("gb50180")


def test_your_own_standard_file_is_recorded(tmp_path):
    mine = tmp_path / "mine.toml"
    mine.write_text('name = "mine"\n[[type]]\nkey = "any_health"\ncategory = "health"\nsubcategories = ["*"]\n'
                    '[[type]]\nkey = "any_sports"\ncategory = "sports"\nsubcategories = ["*"]\n', encoding="utf-8")
    a = analyze(toy_town_osm(), config=AnalysisConfig(categories=("health", "sports"), standard=str(mine)))
    assert a.summary["standard"]["name"] == "mine"
    assert a.summary["inputs"]["standard"]["sha256"]


# ---------------------------------------------------------------------------------------------
# the real city-wide OSM export (11,552 points)

# Hand-checked: real named points of ../shared/data/shanghai_facilities_osm_20260519.geojson and what a
# district office reports for the 85 % target (type key, or None = not a community public facility).
HAND_CHECKED = {
    # health: community health service centres and stations count; hospitals and private clinics not
    "曲阳街道社区卫生服务中心": "community_health_centre",
    "新泾镇社区卫生服务中心": "community_health_centre",
    "上海市崇明区长兴镇社区卫生服务中心": "community_health_centre",
    "西渡街道卫生服务中心": "community_health_centre",
    "北蔡社区卫生服务中心": "community_health_centre",
    "江宁路街道社区卫生服务中心": "community_health_centre",
    "凌云街道社区卫生服务中心": "community_health_centre",
    "天平街道社区卫生服务中心": "community_health_centre",
    "浦兴社区卫生中心": "community_health_centre",
    "长征镇社区医疗服务中心": "community_health_centre",
    "七宝卫生服务中心": "community_health_centre",
    "通河社区卫生服务站": "community_health_station",
    "周家渡卫生服务中心成山服务站": "community_health_station",
    "车墩镇卫生服务中心茶坛分中心": "community_health_station",
    "浦江社区卫生服务中心（浦航分院）": "community_health_station",
    "白鹤镇朱浦村朱家卫生室": "community_health_station",
    "上海文艺医院": None,
    "瑞金医院感染门诊": None,
    "上海交通大学医学院附属同仁医院": None,
    "上海市第五人民医院": None,
    "武警上海总医院": None,
    "宝山区中西医结合医院": None,
    "上海东方医院": None,
    "莱佛士医院": None,
    "东兰路妇产医院": None,
    "上海中医药大学附属曙光医院": None,
    "中山医院": None,
    "嘉会医疗": None,
    "BellaVilla Postpartum Care Center": None,
    "美年体检": None,
    "医务室": None,
    # sports: public grounds, fitness points and citizens' centres count; gyms, clubs, campuses, golf not
    "田径运动场": "public_sports_ground",
    "东网球场": "public_sports_ground",
    "江桥高潮社区公共运动场": "public_sports_ground",
    "中央足球场": "public_sports_ground",
    "东足球场": "public_sports_ground",
    "前滩体育公园": "citizen_fitness_centre",
    "徐家汇体育公园": "citizen_fitness_centre",
    "普陀区体育公园": "citizen_fitness_centre",
    "吴泾镇社区体育活动中心": "citizen_fitness_centre",
    "朱泾镇体育中心": "citizen_fitness_centre",
    "长征全民健身活动中心": "citizen_fitness_centre",
    "瑞竑健身": None,
    "乐刻健身": None,
    "Lefit": None,
    "V+ Fitness": None,
    "PURE": None,
    "一兆韦德健身": None,
    "同济大学四平路校区体育馆": None,
    "华东理工大学奉贤校区足球场": None,
    "瑞趣网球俱乐部万科店": None,
    "杨浦温水游泳馆": None,
    "Hole 18": None,
    "静安工人体育场": None,
    "网球中心": None,
    "上海游泳馆": None,
    # culture and elderly care (few in this export: the query had no library/social_facility tags)
    "航头镇社区文化活动中心": "community_culture_centre",
    "田林文化中心": "community_culture_centre",
    "上海中国福利院幼儿园": None,
}


@pytest.fixture(scope="module")
def city(shared):
    from lifecircle.read.facilities import facilities_from_file

    fac = facilities_from_file(shared / "shanghai_facilities_osm_20260519.geojson")
    kept, dec = apply_standard(fac, load_standard("shanghai-community"))
    return fac, kept, dec


def test_hand_checked_names_on_the_city_export(city):
    _, _, dec = city
    assert len(HAND_CHECKED) >= 50
    named = dec[dec.name.isin(list(HAND_CHECKED))]
    assert set(named.name) == set(HAND_CHECKED)  # every hand-checked name is in the real file
    got = {n: {t if k else None for t, k in zip(g.facility_type, g.kept)} for n, g in named.groupby("name")}
    wrong = {n: (sorted(map(str, types)), HAND_CHECKED[n]) for n, types in got.items() if types != {HAND_CHECKED[n]}}
    assert not wrong, wrong


def test_city_export_counts_kept_and_dropped(city, shared):
    """The kept community health centres equal an independent count of the raw file's names, and
    the hospitals all go."""
    fac, kept, dec = city
    raw = gpd.read_file(shared / "shanghai_facilities_osm_20260519.geojson")
    n = raw["name"].fillna("")
    centre = n.str.contains("卫生服务中心|社区卫生中心|社区医疗服务中心|社区医院|卫生院") & ~n.str.contains(
        "分中心|服务站|分院|门诊部")
    assert int((kept.facility_type == "community_health_centre").sum()) == int(centre.sum())
    hospitals = dec[(dec.subcategory == "hospital")]
    assert not hospitals[~hospitals.name.fillna("").str.contains("社区卫生|卫生服务中心|社区医疗|社区医院|卫生院")].kept.any()
    table = decisions_table(dec)
    assert table.facilities.sum() == len(fac)
    health = table[table.category == "health"]
    assert health[health.kept].facilities.sum() < health[~health.kept].facilities.sum()  # most OSM health is hospitals


def test_community_health_centres_vs_the_official_247(city, shared):
    """Per district: the centres the standard keeps against 上海市卫健委's count (247 in all)."""
    _, kept, _ = city
    from lifecircle.read.inventory import compare_with_official
    from lifecircle.read.units import assign_units, units_from_file

    districts = units_from_file(shared / "shanghai_districts_datav_v3_gcj02.geojson", crs="gcj02")
    chc = kept[kept.facility_type == "community_health_centre"].copy()
    chc["subcategory"] = "community_health_centre"
    chc["unit"] = assign_units(chc, districts).to_numpy()
    table = compare_with_official(chc, shared / "shanghai_community_health_centers_by_district_2024.csv")
    table = table[table.unit != "total"]
    official = pd.read_csv(shared / "shanghai_community_health_centers_by_district_2024.csv")
    assert int(table["official"].sum()) == int(official.loc[official.district == "合计", "count"].iloc[0]) == 247
    found = table.set_index("unit")["found"]
    assert found.sum() == len(chc) and found.sum() < 247  # OSM names under half of the official centres
    assert (found > 0).sum() >= 15


# ---------------------------------------------------------------------------------------------
# urban and rural residents, 街镇 units, service population


def _two_units():
    """West of x = 700 m the subdistrict 甲街道, east of it the town 乙镇."""
    import shapely

    lo, la = lonlat([-100.0, 700.0, 1700.0], [-100.0, 100.0, 100.0])
    return gpd.GeoDataFrame({"unit": ["甲街道", "乙镇"], "kind": ["城镇", "乡村"]},
                            geometry=[shapely.box(lo[0], la[0], lo[1], la[1]), shapely.box(lo[1], la[0], lo[2], la[1])],
                            crs=4326)


def _line_run(**kw):
    """One community health centre at x = 0; residents at 200, 600 (west) and 900, 1400 m (east)."""
    fac = _points([0.0], category="health", source="list", name=["甲街道社区卫生服务中心"])
    res = _points([200.0, 600.0, 900.0, 1400.0], population=[10.0, 30.0, 20.0, 40.0])
    return analyze(network=_line_network(), facilities=fac, population=res, units=_two_units(),
                   config=AnalysisConfig(categories=("health",), minutes=(10, 15)), **kw)


@pytest.mark.parametrize("how", ["names", "column", "file"])
def test_urban_and_rural_side_by_side_by_hand(how, tmp_path):
    """At 66.67 m/min the residents are 3, 9, 13.5 and 21 minutes away. Urban (west, 10 + 30 people):
    100 % at 10 and 15 min. Rural (east, 20 + 40): 0 % at 10 min, 20/60 at 15 min. Gap 66.67 pp."""
    if how == "names":
        a = _line_run(urban="names")
    elif how == "column":
        a = _line_run(urban_column="kind")
    else:
        path = tmp_path / "urban.geojson"
        _two_units().iloc[[0]].to_file(path, driver="GeoJSON")
        a = _line_run(urban=path)
    assert a.residents["urban"].tolist() == [True, True, False, False]
    t = a.urban_rural[a.urban_rural.unit == "study_area"].set_index(["group", "minutes"])["share"]
    assert t[("urban", 10.0)] == pytest.approx(1.0) and t[("urban", 15.0)] == pytest.approx(1.0)
    assert t[("rural", 10.0)] == pytest.approx(0.0) and t[("rural", 15.0)] == pytest.approx(20 / 60)
    c = a.summary["urban_rural"]["categories"]["health"]
    assert c["gap_pp"] == pytest.approx(100 * (1 - 20 / 60), abs=0.01)
    assert c["urban_meets_target"] is True
    assert a.summary["units"]["乙镇"]["health"]["share"] == pytest.approx(20 / 60)


def test_without_an_urban_definition_everyone_is_urban_and_it_is_said():
    a = _line_run()
    assert a.urban_rural is None
    assert "every resident counts as urban" in a.summary["urban_rural"]["method"]
    assert "every resident counts as urban" in a.report()


def test_units_ranked_worst_first_with_their_type():
    a = _line_run()
    rank = pd.DataFrame(a.summary["unit_ranking"])
    assert rank.unit.tolist() == ["乙镇", "甲街道"] and rank.unit_type.tolist() == ["镇", "街道"]
    # 乙镇: 60 people, 20 covered; 85 % of 60 = 51 -> 31 people still to cover
    assert rank.population_to_cover.tolist()[0] == pytest.approx(31.0)
    assert rank["rank"].tolist() == [1, 2]


def test_unknown_urban_values_are_refused():
    units = _two_units()
    units["kind"] = ["城镇", "maybe"]
    fac = _points([0.0], category="health", source="list", name=["甲街道社区卫生服务中心"])
    res = _points([200.0, 900.0], population=[1.0, 1.0])
    with pytest.raises(InputDataError, match="row 3: 'maybe'"):
        analyze(network=_line_network(), facilities=fac, population=res, units=units, urban_column="kind",
                config=AnalysisConfig(categories=("health",)))


def test_service_population_by_hand():
    """A community health centre (service population 3–5万) with 30,000 + 25,000 people within its 15
    minutes (1000 m) and 20,000 beyond serves 55,000: over the standard's 50,000."""
    fac = _points([0.0], category="health", source="list", name=["甲街道社区卫生服务中心"])
    res = _points([200.0, 900.0, 1400.0], population=[30000.0, 25000.0, 20000.0])
    a = analyze(network=_line_network(), facilities=fac, population=res,
                config=AnalysisConfig(categories=("health",), standard="shanghai-community"))
    s = a.service.iloc[0]
    assert s.catchment_population == pytest.approx(55000.0)
    assert s.service_population_max == 50000 and bool(s.over_service_population)
    assert any("service population" in w for w in a.summary["warnings"])


def test_units_below_the_service_population_ratio():
    """甲街道 holds 10 + 30 = 40 people and its centre; 乙镇 holds 120,000 people and no centre. At one
    community health centre per 50,000 residents (the standard's upper figure) 甲街道 needs 1 (has 1),
    乙镇 needs ceil(120000 / 50000) = 3 (has 0)."""
    fac = _points([0.0], category="health", source="list", name=["甲街道社区卫生服务中心"])
    res = _points([200.0, 600.0, 900.0, 1400.0], population=[10.0, 30.0, 60000.0, 60000.0])
    a = analyze(network=_line_network(), facilities=fac, population=res, units=_two_units(),
                config=AnalysisConfig(categories=("health",), standard="shanghai-community"))
    units = a.service.attrs["units"].set_index("unit")
    assert units.loc["甲街道", ["facilities", "needed"]].tolist() == [1, 1]
    assert units.loc["乙镇", ["facilities", "needed"]].tolist() == [0, 3]
    assert a.summary["service_population"]["community_health_centre"]["units_below_ratio"] == ["乙镇"]
