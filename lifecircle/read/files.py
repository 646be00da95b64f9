"""Read point and polygon inputs (CSV, XLSX, GeoJSON, GeoPackage) and write outputs atomically."""

from __future__ import annotations

import contextlib
import contextvars
import io
import json
import logging
import os
import tempfile
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import pandas as pd

from ..errors import CRSError, InputDataError, InputFileError, LifecircleError

log = logging.getLogger("lifecircle")

__all__ = [
    "LON_ALIASES",
    "LAT_ALIASES",
    "read_table",
    "read_geo",
    "read_options",
    "current_read_options",
    "add_warning",
    "carry_checks",
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


@dataclass(frozen=True)
class ReadOptions:
    """Defaults that commands set for every user table/vector they read (see :func:`read_options`)."""

    encoding: str | None = None
    lon_column: str | None = None
    lat_column: str | None = None


_OPTIONS: contextvars.ContextVar[ReadOptions] = contextvars.ContextVar("lifecircle_read_options",
                                                                       default=ReadOptions())


@contextlib.contextmanager
def read_options(*, encoding: str | None = None, lon_column: str | None = None,
                 lat_column: str | None = None) -> Iterator[ReadOptions]:
    """Within the block, :func:`read_table`/:func:`read_geo` use these when not given explicitly.

    The CLI wraps ``gaps --candidates`` and ``scenario --add/--remove`` in it, so ``--encoding`` and
    ``--lon-column``/``--lat-column`` reach the files read deep inside site planning.

    >>> with read_options(encoding="gb18030"):
    ...     current_read_options().encoding
    'gb18030'
    >>> current_read_options().encoding is None
    True
    """
    token = _OPTIONS.set(ReadOptions(encoding, lon_column, lat_column))
    try:
        yield _OPTIONS.get()
    finally:
        _OPTIONS.reset(token)


def current_read_options() -> ReadOptions:
    """The :class:`ReadOptions` in force (all None outside :func:`read_options`)."""
    return _OPTIONS.get()


def add_warning(frame: Any, message: str) -> None:
    """Log ``message`` and keep it in ``frame.attrs["warnings"]`` (the analysis puts them in summary.json)."""
    log.warning(message)
    frame.attrs["warnings"] = [*frame.attrs.get("warnings", []), message]


def carry_checks(src: Any, dst: Any) -> Any:
    """Copy what the readers noted (warnings, encoding, CRS hints) from ``src.attrs`` to ``dst.attrs``."""
    for key in ("warnings", "encoding", "crs_hints", "crs_declared"):
        if key in src.attrs:
            dst.attrs[key] = src.attrs[key]
    return dst


def read_table(path: str | os.PathLike[str], *, what: str = "input", encoding: str | None = None) -> pd.DataFrame:
    """Read a CSV/TSV (UTF-8 with or without BOM, or GB18030/GBK) or Excel table.

    The bytes are decoded deliberately (:func:`lifecircle.read.encodings.decode_table_bytes`):
    a file mixing UTF-8 and GBK lines, or one whose decoded column names are mojibake, is an
    error naming the line and the fix. ``encoding`` forces one encoding (``--encoding``).
    ``result.attrs["encoding"]`` says which was used; garbled values are in ``attrs["warnings"]``.

    Examples
    --------
    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "gbk.csv")
    >>> _ = open(f, "wb").write("名称,lon,lat\\n社区卫生服务中心,121.47,31.23\\n".encode("gbk"))
    >>> t = read_table(f)
    >>> list(t.columns), t.attrs["encoding"]
    (['名称', 'lon', 'lat'], 'gb18030')
    """
    from .encodings import check_garbled, decode_table_bytes

    p = _check_file(path, what)
    suffix = p.suffix.lower()
    label = f"{what} file {p.name}"
    encoding = encoding or current_read_options().encoding
    try:
        if suffix in (".xlsx", ".xls"):
            df = pd.read_excel(p)
            used = "xlsx"
        else:
            text, used = decode_table_bytes(p.read_bytes(), label=label, encoding=encoding)
            sep = "\t" if suffix == ".tsv" else None
            df = pd.read_csv(io.StringIO(text), sep=sep, engine="python")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        if isinstance(exc, LifecircleError):
            raise
        raise InputFileError(f"cannot read {what} file {p}: {str(exc).splitlines()[0]}") from None
    warnings = check_garbled(df, label=label)
    df.attrs["encoding"] = used
    for w in warnings:
        add_warning(df, w)
    return df


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
    encoding: str | None = None,
):
    """Read points or polygons into a WGS84 GeoDataFrame.

    Tables (CSV/XLSX) need longitude/latitude columns (``lon``/``lng``/``longitude``/``x``/
    ``经度`` and ``lat``/``latitude``/``y``/``纬度`` are found automatically). ``crs`` says which
    system the coordinates are in: ``wgs84`` (default for tables), ``gcj02``, ``bd09`` or an
    EPSG code; vector files default to the CRS they declare. Rows without coordinates are
    kept with an empty geometry so that callers can report them.

    What is checked on the way (each says the file, the row and the fix): the text encoding
    (``encoding`` forces one; a shapefile without ``.cpg`` whose attributes are GBK is read as
    GB18030), garbled column names (refused) and values (warned), swapped longitude/latitude
    columns (refused), invalid polygons (repaired with ``shapely.make_valid``, warned). The
    result's ``attrs`` keep ``warnings``, ``encoding``, ``crs_declared``, ``xy_columns`` (a table's
    lon/lat columns) and ``crs_hints``
    (column names or properties that say where the coordinates come from, see
    :func:`lifecircle.read.crs.crs_hints`).

    Examples
    --------
    >>> import io, tempfile, os
    >>> d = tempfile.mkdtemp(); f = os.path.join(d, "f.csv")
    >>> _ = open(f, "w").write("name,lng,lat\\nA,121.47,31.23\\n")
    >>> g = read_geo(f)
    >>> g.crs.to_epsg(), g.geometry.iloc[0].x
    (4326, 121.47)
    >>> _ = open(f, "w").write("name,lng,lat\\nA,31.23,121.47\\n")
    >>> read_geo(f)
    Traceback (most recent call last):
    ...
    lifecircle.errors.InputDataError: input file f.csv: longitude and latitude look swapped: column 'lng' holds 31.23 (a latitude) and 'lat' holds 121.47 (a longitude); pass --lon-column lat --lat-column lng, or swap the two column names in the file
    """
    import geopandas as gpd

    from .crs import crs_hints, to_wgs84
    from .encodings import check_garbled, dbf_encoding

    p = _check_file(path, what)
    suffix = p.suffix.lower()
    opts = current_read_options()
    encoding = encoding or opts.encoding
    label = f"{what} file {p.name}"
    if suffix in _TABLE_SUFFIXES:
        df = read_table(p, what=what, encoding=encoding)
        if df.empty:
            raise InputDataError(f"{what} file {p} has no rows (only a header?); give one row per point "
                                 "with its longitude and latitude, or leave the option out")
        lon_column, lat_column = lon_column or opts.lon_column, lat_column or opts.lat_column
        lon_c = find_column(df.columns, lon_column, LON_ALIASES, what=f"{what} {p.name}", option="--lon-column")
        lat_c = find_column(df.columns, lat_column, LAT_ALIASES, what=f"{what} {p.name}", option="--lat-column")
        lon = pd.to_numeric(df[lon_c], errors="coerce").to_numpy(dtype=float)
        lat = pd.to_numeric(df[lat_c], errors="coerce").to_numpy(dtype=float)
        if crs is None or _is_lonlat(crs):
            _check_swapped(lon, lat, label=label, lon_c=lon_c, lat_c=lat_c)
        ok = np.isfinite(lon) & np.isfinite(lat)
        geom = gpd.points_from_xy(lon, lat)
        geom[~ok] = None
        gdf = gpd.GeoDataFrame(df, geometry=geom, crs=None)
        carry_checks(df, gdf)
        gdf.attrs["rows"] = "line"
        gdf.attrs["xy_columns"] = (lon_c, lat_c)
        gdf.attrs["crs_declared"] = {"crs": str(crs) if crs is not None else "wgs84",
                                     "by": "option" if crs is not None else "default (tables are WGS84)"}
        gdf.attrs["crs_hints"] = crs_hints(df, lon_column=lon_c, lat_column=lat_c)
        gdf = carry_checks(gdf, to_wgs84(gdf, crs if crs is not None else "wgs84"))
    elif suffix in _VECTOR_SUFFIXES:
        used = None
        if suffix == ".shp":
            used = encoding or dbf_encoding(p)
        try:
            if suffix == ".parquet":
                gdf = gpd.read_parquet(p)
            else:
                if not layer and suffix == ".gpkg":
                    layer = _only_geometry_layer(p)
                kw = {"layer": layer} if layer else {}
                if used:
                    kw["encoding"] = used
                gdf = gpd.read_file(p, **kw)
        except Exception as exc:  # pyogrio raises DataSourceError and friends
            if used and isinstance(exc, UnicodeError):
                from .encodings import resave_hint

                raise InputFileError(f"{label}: its attributes cannot be read as {used} ({exc.reason}); "
                                     f"{resave_hint()}") from None
            raise InputFileError(
                f"cannot read {what} file {p}: {str(exc).splitlines()[0][:160]}; is it a valid "
                f"{suffix[1:]} file?"
            ) from None
        if gdf.empty:
            raise InputDataError(f"{what} file {p} has no features")
        if "geometry" not in gdf or not isinstance(gdf, gpd.GeoDataFrame):
            raise InputDataError(f"{what} file {p} has no geometry column")
        if used and not encoding:
            log.info("%s: no .cpg file; its attributes are not UTF-8 and were read as %s (GBK)", label, used)
        gdf.attrs["encoding"] = (f"{used} (detected: no .cpg file)" if used and not encoding else used) or "as declared"
        for w in check_garbled(gdf, label=label, option="--encoding"):
            add_warning(gdf, w)
        gdf.attrs["rows"] = "feature"
        declared = crs if crs is not None else (gdf.crs.to_string() if gdf.crs is not None else "wgs84")
        gdf.attrs["crs_declared"] = {"crs": str(declared),
                                     "by": "option" if crs is not None else ("file" if gdf.crs is not None
                                                                              else "default (no CRS in the file)")}
        gdf.attrs["crs_hints"] = crs_hints(gdf)
        if (crs is None and (gdf.crs is None or gdf.crs.is_geographic)) or (crs is not None and _is_lonlat(crs)):
            _check_swapped_geometry(gdf, label=label)
        gdf = carry_checks(gdf, to_wgs84(gdf, crs))
        gdf = _repair_polygons(gdf, label=label)
    else:
        raise InputFileError(
            f"{what} file {p.name}: unsupported format {suffix!r}; use CSV, XLSX, GeoJSON or GeoPackage"
        )
    _check_lonlat_range(gdf, p, what)
    return gdf


def _only_geometry_layer(path: Path) -> str | None:
    """A GeoPackage's one geometry layer when it also holds tables without geometry (QGIS ``layer_styles``)."""
    import pyogrio

    try:
        layers = pyogrio.list_layers(path)
    except Exception:  # unreadable: read_file says why
        return None
    spatial = [name for name, kind in layers if kind is not None]
    return spatial[0] if len(spatial) == 1 and len(layers) > 1 else None


def row_name(frame: Any, i: int) -> str:
    """How a user finds row ``i`` (0-based position) of what :func:`read_geo` read: 'line 5' / 'feature 4'."""
    return f"line {i + 2}" if frame.attrs.get("rows") == "line" else f"feature {i + 1}"


def _is_lonlat(crs: Any) -> bool:
    from .crs import parse_crs

    target = parse_crs(crs)
    return isinstance(target, str) or target.is_geographic


def _swapped(lon: np.ndarray, lat: np.ndarray) -> bool:
    ok = np.isfinite(lon) & np.isfinite(lat)
    if not ok.any():
        return False
    lo, la = lon[ok], lat[ok]
    if (np.abs(lo) <= 90).all() and (np.abs(la) > 90).any() and (np.abs(la) <= 180).all():
        return True
    # China: longitude 73..135, latitude 3..54; the other way round cannot be a place in China
    china_swapped = (lo >= 3.0) & (lo <= 54.0) & (la >= 73.0) & (la <= 136.0)
    return bool(china_swapped.mean() >= 0.9)


def _check_swapped(lon: np.ndarray, lat: np.ndarray, *, label: str, lon_c: str, lat_c: str) -> None:
    if _swapped(lon, lat):
        i = int(np.flatnonzero(np.isfinite(lon) & np.isfinite(lat))[0])
        raise InputDataError(
            f"{label}: longitude and latitude look swapped: column {lon_c!r} holds {lon[i]:g} (a latitude) and "
            f"{lat_c!r} holds {lat[i]:g} (a longitude); pass --lon-column {lat_c} --lat-column {lon_c}, "
            "or swap the two column names in the file")


def _check_swapped_geometry(gdf, *, label: str) -> None:
    import shapely

    geoms = gdf.geometry.to_numpy()
    geoms = geoms[~(shapely.is_missing(geoms) | shapely.is_empty(geoms))]
    if not len(geoms):
        return
    xy = shapely.get_coordinates(geoms[:: max(1, len(geoms) // 2000)])
    if _swapped(xy[:, 0], xy[:, 1]):
        raise InputDataError(
            f"{label}: the coordinates are stored as (latitude, longitude), e.g. ({xy[0, 0]:g}, {xy[0, 1]:g}), "
            "where lon/lat data need (longitude, latitude); export the file again with x = longitude, "
            "y = latitude")


def _repair_polygons(gdf, *, label: str):
    """Repair invalid polygons with shapely.make_valid (polygonal parts kept) and say how many."""
    import shapely

    geoms = gdf.geometry.to_numpy()
    poly = np.isin(shapely.get_type_id(geoms), (3, 6))
    bad = poly & ~shapely.is_valid(geoms)
    if not bad.any():
        return gdf
    fixed = shapely.make_valid(geoms[bad], method="structure", keep_collapsed=False)
    out = gdf.copy()
    out.loc[out.index[bad], out.geometry.name] = fixed
    carry_checks(gdf, out)
    first = int(np.flatnonzero(bad)[0])
    reason = shapely.is_valid_reason(geoms[first])
    add_warning(out, f"{label}: {int(bad.sum()):,} invalid polygons (first: {row_name(gdf, first)}, {reason}) were "
                     "repaired with shapely.make_valid; fix them at the source (QGIS: Fix geometries) if areas or "
                     "per-unit numbers look wrong")
    return out


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
