"""Write lifecircle/data/toy_town.osm: a hand-built OSM town for doctests, tests and the tutorial.

The town is drawn in metres on a local grid (origin at lon 121.40, lat 31.20, in Shanghai's
UTM zone 51N) so every walking distance can be worked out by hand:

* streets: east-west at y = 0, 200, 400 m, north-south at x = 0, 200, 400, 600, 800 m;
* a river runs north-south at x = 500 m: only the footbridge at y = 200 crosses it on foot;
  the elevated road (``highway=trunk`` + ``bridge=yes``) at y = 420 m crosses it but is not
  walkable; a private footway (``access=private``) at x = 100 m is not walkable either;
* facilities: a community health centre known only by its Chinese name, a nursing home
  (``social_facility=nursing_home`` for seniors), a library drawn as a building polygon,
  a pitch polygon and a fitness station; a pet hospital (宠物医院) that must not count as health;
* residential buildings with levels, a ``building=yes`` inside ``landuse=residential`` and an
  office building, for the building-based population estimate;
* administrative boundaries: the district 小河区 (``admin_level=6``) over the whole town and
  the subdistricts 城西街道 (x < 500) and 城东街道 (x > 500) (``admin_level=8``), split by the river.

Run ``python data/make_toy_town.py`` to rebuild the file (it is committed; the result is
deterministic).
"""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import quoteattr

import pyproj

ORIGIN = (121.40, 31.20)
_utm = pyproj.Transformer.from_crs(4326, 32651, always_xy=True)
_wgs = pyproj.Transformer.from_crs(32651, 4326, always_xy=True)
X0, Y0 = _utm.transform(*ORIGIN)

nodes: list[tuple[int, float, float, dict[str, str]]] = []
ways: list[tuple[int, list[int], dict[str, str]]] = []
relations: list[tuple[int, list[int], dict[str, str]]] = []
_grid: dict[tuple[float, float], int] = {}


def node(x: float, y: float, tags: dict[str, str] | None = None, *, shared: bool = True) -> int:
    if shared and not tags and (x, y) in _grid:
        return _grid[(x, y)]
    nid = 1000 + len(nodes)
    lon, lat = _wgs.transform(X0 + x, Y0 + y)
    nodes.append((nid, lon, lat, tags or {}))
    if shared and not tags:
        _grid[(x, y)] = nid
    return nid


def way(points: list[tuple[float, float]], tags: dict[str, str], *, shared: bool = True) -> int:
    wid = 5000 + len(ways)
    ways.append((wid, [node(x, y, shared=shared) for x, y in points], tags))
    return wid


def box(x: float, y: float, w: float, h: float, tags: dict[str, str]) -> int:
    pts = [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
    wid = 5000 + len(ways)
    ids = [node(px, py, shared=False) for px, py in pts]
    ways.append((wid, ids + [ids[0]], tags))
    return wid


def build() -> None:
    res = {"highway": "residential"}
    # east-west streets, broken by the river between x=400 and x=600 (except the footbridge)
    for y, name in ((0, "南街"), (400, "北街")):
        way([(0, y), (200, y), (400, y)], {**res, "name": name})
        way([(600, y), (800, y)], {**res, "name": name})
    way([(0, 200), (200, 200), (400, 200)], {"highway": "tertiary", "name": "中路"})
    way([(400, 200), (600, 200)], {"highway": "footway", "bridge": "yes", "name": "步行桥"})
    way([(600, 200), (800, 200)], {"highway": "tertiary", "name": "中路"})
    for x in (0, 200, 400, 600, 800):
        way([(x, 0), (x, 200), (x, 400)], {**res, "name": f"{x}弄"})
    # elevated expressway over everything: not walkable, shares no node with the streets
    way([(-100, 420), (900, 420)], {"highway": "trunk", "bridge": "yes", "layer": "1",
                                     "oneway": "yes", "name": "高架路"}, shared=False)
    # private footway through the west block: not walkable
    way([(100, 0), (100, 200)], {"highway": "footway", "access": "private"})
    # river
    way([(500, -50), (500, 450)], {"waterway": "river", "name": "小河"}, shared=False)

    # facilities
    node(100, 10, {"name": "城西社区卫生服务中心"})
    node(300, 390, {"name": "小河宠物医院"})
    node(700, 210, {"amenity": "social_facility", "social_facility": "nursing_home",
                    "social_facility:for": "senior", "name": "城东养老院"})
    box(280, 260, 40, 40, {"building": "yes", "amenity": "library", "name": "社区图书馆"})
    box(640, 80, 60, 40, {"leisure": "pitch", "sport": "basketball", "name": "篮球场"})
    node(20, 390, {"leisure": "fitness_station"})
    node(250, 180, {"amenity": "restaurant", "name": "小吃店"})

    # residential buildings (population estimate)
    box(30, 30, 40, 20, {"building": "apartments", "building:levels": "6"})
    box(230, 230, 30, 30, {"building": "residential", "building:levels": "3"})
    box(720, 300, 40, 40, {"building": "apartments", "building:levels": "10"})
    box(630, 330, 20, 20, {"building": "house"})
    box(220, 20, 40, 30, {"building": "yes", "building:levels": "4"})  # inside residential landuse
    box(420, 20, 40, 30, {"building": "yes"})  # outside any residential landuse: not counted
    box(330, 120, 50, 50, {"building": "office", "building:levels": "12"})
    box(205, 5, 190, 190, {"landuse": "residential"})

    # administrative boundaries (units): one district (admin_level 6) split by the river into two
    # subdistricts (admin_level 8), as boundary relations of closed outer ways
    def ring(x0: float, y0: float, x1: float, y1: float) -> int:
        return box(x0, y0, x1 - x0, y1 - y0, {})

    boundary = {"type": "boundary", "boundary": "administrative"}
    relation([ring(-60, -60, 860, 460)], {**boundary, "admin_level": "6", "name": "小河区", "name:en": "Xiaohe"})
    relation([ring(-60, -60, 500, 460)], {**boundary, "admin_level": "8", "name": "城西街道"})
    relation([ring(500, -60, 860, 460)], {**boundary, "admin_level": "8", "name": "城东街道"})


def relation(outer_ways: list[int], tags: dict[str, str]) -> int:
    rid = 9000 + len(relations)
    relations.append((rid, outer_ways, tags))
    return rid


def write(path: Path) -> None:
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             '<osm version="0.6" generator="lifecircle data/make_toy_town.py">']
    for nid, lon, lat, tags in nodes:
        if tags:
            lines.append(f'  <node id="{nid}" version="1" lat="{lat:.8f}" lon="{lon:.8f}">')
            lines += [f"    <tag k={quoteattr(k)} v={quoteattr(v)}/>" for k, v in tags.items()]
            lines.append("  </node>")
        else:
            lines.append(f'  <node id="{nid}" version="1" lat="{lat:.8f}" lon="{lon:.8f}"/>')
    for wid, ids, tags in ways:
        lines.append(f'  <way id="{wid}" version="1">')
        lines += [f'    <nd ref="{i}"/>' for i in ids]
        lines += [f"    <tag k={quoteattr(k)} v={quoteattr(v)}/>" for k, v in tags.items()]
        lines.append("  </way>")
    for rid, members, tags in relations:
        lines.append(f'  <relation id="{rid}" version="1">')
        lines += [f'    <member type="way" ref="{m}" role="outer"/>' for m in members]
        lines += [f"    <tag k={quoteattr(k)} v={quoteattr(v)}/>" for k, v in tags.items()]
        lines.append("  </relation>")
    lines.append("</osm>")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    build()
    out = Path(__file__).resolve().parents[1] / "lifecircle" / "data" / "toy_town.osm"
    write(out)
    print(f"wrote {out} ({len(nodes)} nodes, {len(ways)} ways, {len(relations)} relations)")
