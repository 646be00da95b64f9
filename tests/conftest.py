"""Shared fixtures: the real Shanghai data (through lifecircle.datasets.shared_data_dir) and helpers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyproj
import pytest

from lifecircle.datasets import shared_data_dir

# the toy town's local metric frame (see data/make_toy_town.py)
ORIGIN = (121.40, 31.20)
_utm = pyproj.Transformer.from_crs(4326, 32651, always_xy=True)
_wgs = pyproj.Transformer.from_crs(32651, 4326, always_xy=True)
X0, Y0 = _utm.transform(*ORIGIN)


def lonlat(x, y):
    """WGS84 lon/lat of a point given in metres on the toy town's local grid."""
    lo, la = _wgs.transform(X0 + np.asarray(x, dtype=float), Y0 + np.asarray(y, dtype=float))
    return np.asarray(lo), np.asarray(la)


@pytest.fixture(scope="session")
def shared() -> Path:
    d = shared_data_dir()
    if d is None:
        pytest.skip("../shared/data not found beside the repository")
    return d


@pytest.fixture(scope="session")
def shanghai_pbf(shared) -> Path:
    return shared / "shanghai_jingan_huangpu_drive_osmnx.osm.pbf"


@pytest.fixture(scope="session")
def shanghai_network(shanghai_pbf):
    from lifecircle import network_from_osm

    return network_from_osm(shanghai_pbf)


@pytest.fixture(scope="session")
def shanghai_facilities(shared):
    """Real OSM facility points (WGS84) inside the street sample's bbox."""
    import geopandas as gpd

    g = gpd.read_file(shared / "shanghai_facilities_osm_20260519.geojson",
                      bbox=(121.4611262, 31.2196145, 121.4863121, 31.2411914))
    return g


@pytest.fixture(scope="session")
def shanghai_tiled(shanghai_pbf, tmp_path_factory):
    """The real Shanghai sample tiled 3 x 3 (benchmarks/make_tiled.py: ~17,000 nodes, synthetic
    facilities and residents), analysed with the default settings and every facility counted."""
    import sys

    from lifecircle import analyze

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        from make_tiled import make_tiled
    finally:
        sys.path.pop(0)
    from lifecircle import AnalysisConfig

    b = make_tiled(3, out_dir=tmp_path_factory.mktemp("tiled"), base=shanghai_pbf)
    # standard "all": the synthetic facilities are plain clinics, community centres..., which the
    # default standard in China (shanghai-community) does not count
    return analyze(str(b.osm), population=str(b.residents), config=AnalysisConfig(standard="all"))
