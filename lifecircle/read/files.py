"""Read point and polygon inputs (CSV, XLSX, GeoJSON, GeoPackage) and write outputs atomically."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from ..errors import CRSError, InputDataError, InputFileError

log = logging.getLogger("lifecircle")

__all__ = [
    "LON_ALIASES",
    "LAT_ALIASES",
    "read_table",
    "read_geo",
    "find_column",
    "atomic_path",
    "write_json",
]

LON_ALIASES = ("lon", "lng", "long", "longitude", "x", "经度", "gcj_lng", "wgs_lng")
LAT_ALIASES = ("lat", "latitude", "y", "纬度", "gcj_lat", "wgs_lat")
_TABLE_SUFFIXES = (".csv", ".txt", ".tsv", ".xlsx", ".xls")
_VECTOR_SUFFIXES = (".geojson", ".json", ".gpkg", ".shp", ".parquet", ".fgb")


def _check_file(path: str | os.PathLike[str], what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise InputFileError(f"{what} file not found: {p}")
    if not p.is_file():
        raise InputFileError(f"{what} path {p} is not a file")
    if p.stat().st_size == 0:
        raise InputFileError(f"{what} file {p} is empty")
    return p


def read_table(path: str | os.PathLike[str], *, what: str = "input") -> pd.DataFrame:
    """Read a CSV/TSV (UTF-8 or GBK) or Excel table."""
    p = _check_file(path, what)
    suffix = p.suffix.lower()
    try:
        if suffix in (".xlsx", ".xls"):
            return pd.read_excel(p)
        sep = "\t" if suffix == ".tsv" else None
        for enc in ("utf-8-sig", "gb18030"):
            try:
                return pd.read_csv(p, sep=sep, engine="python", encoding=enc)
            except UnicodeDecodeError:
                continue
        raise InputFileError(f"{what} file {p} is neither UTF-8 nor GBK text; save it as UTF-8 CSV")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise InputFileError(f"cannot read {what} file {p}: {str(exc).splitlines()[0]}") from None


def find_column(columns, wanted: str | None, aliases: tuple[str, ...], *, what: str, option: str) -> str:
    """Find a column by explicit name or by its aliases (case-insensitive)."""
    cols = [str(c) for c in columns]
    if wanted is not None:
        if wanted in cols:
            return wanted
        raise InputDataError(
            f"{what}: no column {wanted!r} (columns: {', '.join(cols)}); fix {option}"
        )
    lower = {c.lower().strip(): c for c in cols}
    for a in aliases:
        if a in lower:
            return lower[a]
    raise InputDataError(
        f"{what}: no column named {' / '.join(aliases[:4])}… (columns: {', '.join(cols)}); "
        f"name it with {option}"
    )


def read_geo(
    path: str | os.PathLike[str],
    *,
    what: str = "input",
    lon_column: str | None = None,
    lat_column: str | None = None,
    crs: Any = None,
    layer: str | None = None,
):
    """Read points or polygons into a WGS84 GeoDataFrame.

    Tables (CSV/XLSX) need longitude/latitude columns (``lon``/``lng``/``longitude``/``x``/
    ``经度`` and ``lat``/``latitude``/``y``/``纬度`` are found automatically). ``crs`` says which
    system the coordinates are in: ``wgs84`` (default for tables), ``gcj02``, ``bd09`` or an
    EPSG code; vector files default to the CRS they declare. Rows without coordinates are
    kept with an empty geometry so that callers can report them.

    Examples
    --------
    >>> import io, tempfile, os
    >>> d = tempfile.mkdtemp(); f = os.path.join(d, "f.csv")
    >>> _ = open(f, "w").write("name,lng,lat\\nA,121.47,31.23\\n")
    >>> g = read_geo(f)
    >>> g.crs.to_epsg(), g.geometry.iloc[0].x
    (4326, 121.47)
    """
    import geopandas as gpd

    from .crs import to_wgs84

    p = _check_file(path, what)
    suffix = p.suffix.lower()
    if suffix in _TABLE_SUFFIXES:
        df = read_table(p, what=what)
        if df.empty:
            raise InputDataError(f"{what} file {p} has no rows (only a header?); give one row per point "
                                 "with its longitude and latitude, or leave the option out")
        lon_c = find_column(df.columns, lon_column, LON_ALIASES, what=f"{what} {p.name}", option="--lon-column")
        lat_c = find_column(df.columns, lat_column, LAT_ALIASES, what=f"{what} {p.name}", option="--lat-column")
        lon = pd.to_numeric(df[lon_c], errors="coerce").to_numpy(dtype=float)
        lat = pd.to_numeric(df[lat_c], errors="coerce").to_numpy(dtype=float)
        ok = np.isfinite(lon) & np.isfinite(lat)
        geom = gpd.points_from_xy(lon, lat)
        geom[~ok] = None
        gdf = gpd.GeoDataFrame(df, geometry=geom, crs=None)
        gdf = to_wgs84(gdf, crs if crs is not None else "wgs84")
    elif suffix in _VECTOR_SUFFIXES:
        try:
            if suffix == ".parquet":
                gdf = gpd.read_parquet(p)
            else:
                gdf = gpd.read_file(p, layer=layer) if layer else gpd.read_file(p)
        except Exception as exc:  # pyogrio raises DataSourceError and friends
            raise InputFileError(
                f"cannot read {what} file {p}: {str(exc).splitlines()[0][:160]}; is it a valid "
                f"{suffix[1:]} file?"
            ) from None
        if gdf.empty:
            raise InputDataError(f"{what} file {p} has no features")
        if "geometry" not in gdf or not isinstance(gdf, gpd.GeoDataFrame):
            raise InputDataError(f"{what} file {p} has no geometry column")
        gdf = to_wgs84(gdf, crs)
    else:
        raise InputFileError(
            f"{what} file {p.name}: unsupported format {suffix!r}; use CSV, XLSX, GeoJSON or GeoPackage"
        )
    _check_lonlat_range(gdf, p, what)
    return gdf


def _check_lonlat_range(gdf, path: Path, what: str) -> None:
    valid = gdf.geometry.notna() & ~gdf.geometry.is_empty
    if not valid.any():
        return
    minx, miny, maxx, maxy = gdf.geometry[valid].total_bounds
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        raise CRSError(
            f"{what} file {path.name}: coordinates ({minx:.0f}..{maxx:.0f}, {miny:.0f}..{maxy:.0f}) are not "
            "longitude/latitude; give their CRS (e.g. --facilities-crs EPSG:32651) or swap lon/lat columns"
        )


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``.

    A crash or error leaves ``path`` untouched (no half-written output).
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.stem}-", suffix=".tmp" + final.suffix, dir=final.parent)
    os.close(fd)
    os.unlink(tmp)  # writers such as GDAL want to create the file themselves
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()




def write_json(obj: Any, path: str | os.PathLike[str]) -> None:
    """Write JSON (UTF-8, Chinese kept readable) atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, ensure_ascii=False, indent=2, default=_json_default), encoding="utf-8")


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return None if not np.isfinite(o) else float(o)
    if isinstance(o, (np.bool_,)):
        return bool(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")
