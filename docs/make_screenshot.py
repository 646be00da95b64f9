"""Make docs/img/shanghai_sample_map.png: the Shanghai sample map, opened offline in headless Chromium.

The sample is the real central-Shanghai street extract and the real OSM facility points of its bbox
(../shared/data), 2,000 made-up resident points, the two DataV districts it touches (GCJ-02, converted)
and the service areas of ``lifecircle.present.isochrones``. Networking is off, as on an intranet that blocks
tile servers, so the overlays are drawn on a plain background.

Needs Debian's ``chromium`` and ``chromium-driver``, ``pip install selenium``, and a CJK font
(``apt-get install fonts-wqy-microhei`` or ``fonts-noto-cjk``) for the Chinese labels.

    python docs/make_screenshot.py [--basemap none|osm] [--out docs/img/shanghai_sample_map.png]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np

from lifecircle import AnalysisConfig, analyze
from lifecircle.datasets import shared_data_dir
from lifecircle.read.files import atomic_path
from lifecircle.present.maps import coverage_map, save_map
from lifecircle.read.units import units_from_file

BBOX = (121.4611262, 31.2196145, 121.4863121, 31.2411914)
HERE = Path(__file__).resolve().parent


def build_map(basemap: str, html_path: Path) -> Path:
    data = shared_data_dir()
    if data is None:
        sys.exit("../shared/data not found beside the repository (or set LIFECIRCLE_SHARED_DATA)")
    clip = gpd.read_file(data / "shanghai_facilities_osm_20260519.geojson", bbox=BBOX)
    clip_path = html_path.parent / "facilities.geojson"
    clip.to_file(clip_path, driver="GeoJSON")
    rng = np.random.default_rng(1)
    n = 2000
    residents = gpd.GeoDataFrame(
        {"population": rng.integers(1, 200, n).astype(float)}, crs=4326,
        geometry=gpd.points_from_xy(rng.uniform(BBOX[0], BBOX[2], n), rng.uniform(BBOX[1], BBOX[3], n)))
    units = units_from_file(data / "shanghai_districts_datav_v3_gcj02.geojson", crs="gcj02")
    a = analyze(data / "shanghai_jingan_huangpu_drive_osmnx.osm.pbf", facilities=clip_path, population=residents,
                units=units, config=AnalysisConfig(categories=("health", "sports")))
    units = units[units.unit.isin(set(a.residents.unit.dropna()))]
    try:
        from lifecircle.present.isochrones import service_areas

        iso = service_areas(a)
    except Exception as exc:  # the screenshot does not need them: they start switched off
        logging.warning("no service areas (%s)", exc)
        iso = None
    m = coverage_map(a, isochrones=iso, units=units, basemap=basemap,
                     title="上海静安/黄浦 示例 Shanghai sample (made-up residents)")
    return save_map(m, html_path)


def screenshot(html: Path, png: Path, *, size: tuple[int, int] = (1280, 800)) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        sys.exit("needs chromium and chromium-driver: apt-get install -y chromium chromium-driver")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={size[0]},{size[1]}", "--hide-scrollbars", "--no-first-run",
                "--disable-background-networking", "--proxy-server=127.0.0.1:9",
                "--host-resolver-rules=MAP * ~NOTFOUND"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    try:  # the page itself gets exactly `size` pixels, whatever the headless window's frame takes
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": size[0], "height": size[1], "deviceScaleFactor": 1, "mobile": False})
        driver.get(html.resolve().as_uri())
        time.sleep(1.0)
        with atomic_path(png) as tmp:
            tmp.write_bytes(driver.get_screenshot_as_png())
    finally:
        driver.quit()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--basemap", default="none", help="none (default: what an offline intranet sees) or osm")
    p.add_argument("--out", type=Path, default=HERE / "img" / "shanghai_sample_map.png")
    p.add_argument("--keep-html", type=Path, help="also copy the map's HTML here")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory() as d:
        html = build_map(args.basemap, Path(d) / "shanghai_sample_map.html")
        if args.keep_html:
            shutil.copyfile(html, args.keep_html)
        screenshot(html, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
