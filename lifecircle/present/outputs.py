"""The output folder of a run: writing the maps and figures into it, and reading a run back from it."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import AnalysisConfig
from ..errors import InputFileError
from .html import save_map
from .maps import coverage_map

__all__ = ["read_analysis_folder", "write_maps", "maps_from_folder"]


@dataclass
class _FolderAnalysis:
    """What maps and figures need from an analysis, read back from the folder ``Analysis.write`` made."""

    config: AnalysisConfig
    facilities: Any
    residents: Any
    coverage: pd.DataFrame
    summary: dict
    isochrones: Any = None
    units: Any = None
    gaps: Any = None
    sites: Any = None
    network: Any = None


def read_analysis_folder(out_dir: str | os.PathLike[str]) -> _FolderAnalysis:
    """Read summary.json, coverage.csv, residents.gpkg, facilities.gpkg (and isochrones.gpkg,
    units.gpkg, gaps.gpkg, suggested_sites.gpkg when present) written by :meth:`lifecircle.Analysis.write`."""
    import geopandas as gpd

    d = Path(out_dir)
    need = ["summary.json", "coverage.csv", "residents.gpkg", "facilities.gpkg"]
    missing = [n for n in need if not (d / n).is_file()]
    if missing:
        raise InputFileError(f"{d} lacks {', '.join(missing)}: give the folder written by "
                             "`lifecircle analyze --out DIR`")
    try:
        summary = json.loads((d / "summary.json").read_text(encoding="utf-8"))
        p = summary["parameters"]
        cfg = AnalysisConfig.from_dict(p, where=str(d / "summary.json"), strict=False)
    except (ValueError, KeyError, TypeError) as exc:
        raise InputFileError(f"{d / 'summary.json'} is not a lifecircle summary ({exc}); "
                             "run `lifecircle analyze --out DIR` again") from None
    coverage = pd.read_csv(d / "coverage.csv", encoding="utf-8")
    coverage["unit"] = coverage["unit"].astype(str)
    residents = gpd.read_file(d / "residents.gpkg")
    for c in residents.columns:
        if str(c).startswith("minutes_to_"):
            residents[c] = residents[c].astype(float).fillna(np.inf)  # NULL = not reachable
    facilities = gpd.read_file(d / "facilities.gpkg")
    files = {"isochrones": "isochrones", "units": "units", "gaps": "gaps", "sites": "suggested_sites"}
    extra = {name: _read_layers(d / f"{stem}.gpkg") for name, stem in files.items() if (d / f"{stem}.gpkg").is_file()}
    return _FolderAnalysis(cfg, facilities, residents, coverage, summary, **extra)


def _read_layers(path: Path):
    """Every layer of a GeoPackage in one frame (``write_isochrones`` writes one layer per category/minutes)."""
    import geopandas as gpd
    import pyogrio

    frames = [gpd.read_file(path, layer=name) for name in pyogrio.list_layers(path)[:, 0]]
    frames = [f.to_crs(4326) if f.crs is not None else f.set_crs(4326) for f in frames]
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs=4326)


def write_maps(analysis: Any, out_dir: str | os.PathLike[str], *, png: bool = True, basemap: str = "osm",
               html_path: str | os.PathLike[str] | None = None, isochrones: Any = None, units: Any = None,
               gaps: Any = None, sites: Any = None, title: str | None = None,
               tianditu_key: str | None = None) -> dict[str, Path]:
    """Write ``map.html`` (and ``coverage_map.png``, ``coverage_curve.png``) of an analysis into ``out_dir``.

    Parameters
    ----------
    analysis : lifecircle.Analysis
        Or what :func:`read_analysis_folder` returns.
    png : bool
        Also draw the static figures (needs matplotlib).
    basemap : str
        See :func:`base_map`.
    html_path : path, optional
        Where to write the map (default ``out_dir/map.html``).
    isochrones, units, gaps, sites : GeoDataFrame, optional
        Default ``analysis.isochrones`` / ``.units`` / ``.gaps`` / ``.sites`` when present.

    Returns
    -------
    dict
        ``{"map.html": path, "coverage_map.png": path, "coverage_curve.png": path}``.

    Examples
    --------
    >>> import tempfile
    >>> from lifecircle import analyze
    >>> from lifecircle.datasets import toy_town_osm
    >>> sorted(write_maps(analyze(toy_town_osm()), tempfile.mkdtemp(), basemap="none"))
    ['coverage_curve.png', 'coverage_map.png', 'map.html']
    """
    d = Path(out_dir)
    gaps = gaps if gaps is not None else getattr(analysis, "gaps", None)
    sites = sites if sites is not None else getattr(analysis, "sites", None)
    m = coverage_map(analysis, isochrones=isochrones, units=units, gaps=gaps, sites=sites, basemap=basemap,
                     title=title, tianditu_key=tianditu_key)
    paths = {"map.html": save_map(m, html_path or d / "map.html")}
    if png:
        from .figures import coverage_curve, coverage_figure, save_figure

        paths["coverage_map.png"] = save_figure(coverage_figure(analysis, isochrones=isochrones, units=units),
                                                d / "coverage_map.png")
        paths["coverage_curve.png"] = save_figure(coverage_curve(analysis), d / "coverage_curve.png")
    return paths


def maps_from_folder(out_dir: str | os.PathLike[str], *, png: bool = True, basemap: str = "osm",
                     html_path: str | os.PathLike[str] | None = None, title: str | None = None,
                     tianditu_key: str | None = None) -> dict[str, Path]:
    """Make ``map.html`` (and the PNGs) from the folder written by ``lifecircle analyze --out DIR``.

    Reads ``summary.json``, ``coverage.csv``, ``residents.gpkg``, ``facilities.gpkg`` and, when present,
    ``isochrones.gpkg`` and ``units.gpkg`` (see :func:`read_analysis_folder`), then calls
    :func:`write_maps`; the parameters are the same.
    """
    return write_maps(read_analysis_folder(out_dir), out_dir, png=png, basemap=basemap, html_path=html_path,
                      title=title, tianditu_key=tianditu_key)
