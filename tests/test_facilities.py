"""Facility taxonomy: OSM tags, real Chinese names from Shanghai OSM, user lists."""

from __future__ import annotations

import pandas as pd
import pytest

from lifecircle import EmptyResultError, InputDataError, InputFileError, facilities_from_file, facilities_from_osm, load_taxonomy
from lifecircle.datasets import toy_town_osm

TAX = load_taxonomy()


@pytest.mark.parametrize(
    "tags, expected",
    [
        ({"amenity": "clinic"}, ("health", "clinic")),
        ({"amenity": "doctors"}, ("health", "clinic")),
        ({"healthcare": "physiotherapist"}, ("health", "other_healthcare")),
        ({"healthcare": "pharmacy"}, None),
        ({"amenity": "hospital", "name": "上海市第一人民医院"}, ("health", "hospital")),
        ({"name": "曹杨新村街道社区卫生服务中心"}, ("health", "community_health_centre")),
        ({"amenity": "hospital", "name": "宝山区大场镇社区卫生服务中心"}, ("health", "community_health_centre")),
        ({"amenity": "veterinary", "name": "瑞鹏宠物医院"}, None),
        ({"amenity": "nursing_home"}, ("elderly_care", "nursing_home")),
        ({"amenity": "social_facility", "social_facility": "assisted_living", "social_facility:for": "senior"},
         ("elderly_care", "senior_facility")),
        ({"amenity": "social_facility", "social_facility": "day_care", "social_facility:for": "child"}, None),
        ({"name": "静安区临汾路街道长者照护之家"}, ("elderly_care", "day_care")),
        ({"name": "彭浦镇第三敬老院"}, ("elderly_care", "nursing_home")),
        ({"amenity": "community_centre"}, ("culture", "community_culture_centre")),
        ({"name": "长宁区新华路街道社区文化活动中心"}, ("culture", "community_culture_centre")),
        ({"amenity": "library", "name": "上海图书馆"}, ("culture", "library")),
        ({"leisure": "fitness_station"}, ("sports", "fitness")),
        ({"leisure": "pitch", "sport": "basketball"}, ("sports", "pitch")),
        ({"name": "徐汇区市民健身中心"}, ("sports", "sports_centre")),
        ({"shop": "sports", "name": "迪卡侬体育用品"}, None),
        ({"amenity": "restaurant", "name": "小吃店"}, None),
    ],
)
def test_classify(tags, expected):
    assert TAX.classify(tags) == expected


def test_toy_town_facilities_from_osm():
    fac = facilities_from_osm(toy_town_osm())
    got = sorted(zip(fac.category, fac.subcategory, fac.osm_type))
    assert got == [("culture", "library", "way"), ("elderly_care", "nursing_home", "node"),
                   ("health", "community_health_centre", "node"), ("sports", "fitness", "node"),
                   ("sports", "pitch", "way")]
    assert "小河宠物医院" not in set(fac.name)


def test_real_shanghai_names(shared):
    import geopandas as gpd

    g = gpd.read_file(shared / "shanghai_facilities_osm_20260519.geojson")
    g = g[g.category.isin(["health", "sport"])]
    tags = g[["amenity", "leisure", "healthcare", "sport", "name"]].to_dict("records")
    hits = [TAX.classify({k: v for k, v in t.items() if isinstance(v, str)}) for t in tags]
    cat = pd.Series([h[0] if h else None for h in hits], index=g.index)
    sub = pd.Series([h[1] if h else None for h in hits], index=g.index)
    # the data README: 112 health features have 社区卫生服务 in their name
    chc_names = g.name.fillna("").str.contains("社区卫生服务")
    assert chc_names.sum() == 112
    assert sub[chc_names].isin(["community_health_centre", "community_health_station"]).all()
    centre = g.name.fillna("").str.contains("社区卫生服务中心") & ~g.name.fillna("").str.contains("分中心")
    assert (sub[centre] == "community_health_centre").all()
    # every hospital/clinic-tagged feature is health unless it is a pet hospital
    health = g.category == "health"
    pets = g.name.fillna("").str.contains("宠物|动物")
    assert (cat[health & ~pets] == "health").all()
    assert cat[health & pets].isna().all()
    # every sport feature is classified as sports
    assert (cat[g.category == "sport"] == "sports").mean() > 0.99


def test_user_csv_aliases_and_rejects(tmp_path):
    f = tmp_path / "list.csv"
    f.write_text("名称,类别,经度,纬度\n"
                 "江宁路街道社区卫生服务中心,社区卫生服务中心,121.45,31.24\n"
                 "某养老院,养老,121.46,31.23\n"
                 "文化站,culture,121.47,31.22\n"
                 "无坐标健身点,体育,,\n"
                 "奇怪的设施,unknown,121.47,31.22\n", encoding="utf-8")
    fac = facilities_from_file(f)
    assert fac.category.tolist() == ["health", "elderly_care", "culture"]
    rej = fac.attrs["rejected"]
    assert sorted(rej.reason) == ["category not recognised", "no coordinates"]


def test_user_file_errors(tmp_path):
    f = tmp_path / "nocat.csv"
    f.write_text("lon,lat\n121.4,31.2\n")
    with pytest.raises(InputDataError, match="category"):
        facilities_from_file(f)
    g = tmp_path / "nolon.csv"
    g.write_text("a,b,category\n1,2,health\n")
    with pytest.raises(InputDataError, match="--lon-column"):
        facilities_from_file(g)
    h = tmp_path / "bad.csv"
    h.write_text("lon,lat,category\n121.4,31.2,spaceport\n")
    with pytest.raises(EmptyResultError, match="recognised"):
        facilities_from_file(h)
    with pytest.raises(InputFileError, match="not found"):
        facilities_from_file(tmp_path / "missing.csv")
    e = tmp_path / "empty.csv"
    e.write_text("名称,经度,纬度,类别\n", encoding="utf-8")
    with pytest.raises(InputDataError, match="has no rows .*give one row per point"):
        facilities_from_file(e)


def test_custom_taxonomy(tmp_path):
    t = tmp_path / "tax.toml"
    t.write_text('[[rule]]\ncategory = "culture"\nsubcategory = "cinema"\ntags = { amenity = ["cinema"] }\n')
    tax = load_taxonomy(t)
    assert tax.classify({"amenity": "cinema"}) == ("culture", "cinema")
    assert tax.classify({"amenity": "library"}) is None
    bad = tmp_path / "bad.toml"
    bad.write_text('[[rule]]\ncategory = "parks"\nnames = ["公园"]\n')
    with pytest.raises(InputDataError, match="parks"):
        load_taxonomy(bad)


def test_deduplicate_osm_and_list():
    import geopandas as gpd

    from lifecircle.read.facilities import deduplicate

    f = gpd.GeoDataFrame(
        {"category": ["health", "health", "health", "sports", "sports"],
         "name": ["江宁路街道社区卫生服务中心", "静安区江宁路街道社区卫生服务中心", "曹家渡街道社区卫生服务中心", None, None],
         "source": ["osm", "list", "list", "osm", "osm"], "osm_type": ["node", None, None, "node", "way"]},
        # ~76 m apart (0.0008° lon at 31.24°N), the third ~10 m from the first; two unnamed pitches 10 m apart
        # (an OSM node and an OSM way: the same pitch mapped twice)
        geometry=gpd.points_from_xy([121.4500, 121.4508, 121.4501, 121.46, 121.4601], [31.24] * 5), crs=4326)
    d = deduplicate(f)
    assert d.name.fillna("").tolist() == ["静安区江宁路街道社区卫生服务中心", "曹家渡街道社区卫生服务中心", "", ""]
    assert d.source.tolist()[0] == "list"  # the official entry is kept
    assert len(deduplicate(f, max_dist_m=50)) == 5  # the pair is 76 m apart
    assert len(deduplicate(f, unnamed_dist_m=20)) == 3
    # two OSM ways are two pitches mapped on purpose, never one
    assert len(deduplicate(f.assign(osm_type=["node", None, None, "way", "way"]), unnamed_dist_m=20)) == 4
