"""Vector outputs in the format their file name asks for (.gpkg, .geojson, .shp, .parquet, .fgb), styled for QGIS.

:func:`write_vector` writes a layer in EPSG:4326 (``inf`` minutes as NULL) in the format of its
extension (:data:`VECTOR_FORMATS`; another extension is a one-line :class:`OutputError`) and
gives it its QGIS style (:mod:`lifecircle.present.qgis`): inside a GeoPackage, elsewhere as a
``.qml`` file beside it. :func:`write_crs_copy` adds a copy in another CRS, e.g. GCJ-02 for AMap
users (``residents_gcj02.gpkg``). Write into an :class:`~lifecircle.present.outputs.OutputRun`
with ``run.vector(...)``, which records every file a format makes (a shapefile's .shx, .dbf...).
"""

from __future__ import annotations

import logging
import os
import weakref
from pathlib import Path
from typing import Any

from ..errors import OutputError

log = logging.getLogger("lifecircle")

__all__ = ["VECTOR_FORMATS", "vector_format_problem", "vector_driver", "write_vector", "crs_tag", "write_crs_copy"]

#: File extension -> GDAL driver (``Parquet``: GeoParquet, written by geopandas).
VECTOR_FORMATS = {".gpkg": "GPKG", ".geojson": "GeoJSON", ".shp": "ESRI Shapefile", ".fgb": "FlatGeobuf",
                  ".parquet": "Parquet"}
#: The files a shapefile is made of (besides ``.shp``).
_SHAPEFILE_PARTS = (".shx", ".dbf", ".prj", ".cpg")


def vector_format_problem(path: str | os.PathLike[str] | None, option: str = "--out") -> str | None:
    """One line when ``path`` does not end in an extension lifecircle writes vectors as, else None.

    >>> vector_format_problem("iso.geojson") is None
    True
    >>> vector_format_problem("iso.kml")
    "--out iso.kml: lifecircle cannot write '.kml' files; end the name in .gpkg (GeoPackage, QGIS), .geojson, .shp, .parquet (GeoParquet) or .fgb (FlatGeobuf), e.g. --out iso.gpkg"
    """
    if path is None:
        return None
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in VECTOR_FORMATS:
        return None
    what = f"{suffix!r} files" if suffix else "files without an extension"
    return (f"{option} {p.name}: lifecircle cannot write {what}; end the name in .gpkg (GeoPackage, QGIS), "
            f".geojson, .shp, .parquet (GeoParquet) or .fgb (FlatGeobuf), e.g. {option} {p.stem or 'out'}.gpkg")


def vector_driver(path: str | os.PathLike[str], option: str = "--out") -> str:
    """The GDAL driver of ``path``'s extension; :class:`OutputError` for an extension not in :data:`VECTOR_FORMATS`."""
    problem = vector_format_problem(path, option)
    if problem:
        raise OutputError(problem)
    return VECTOR_FORMATS[Path(path).suffix.lower()]


def _ready(gdf):
    """EPSG:4326, ``inf`` as NULL, mixed-type text columns as text (every driver takes them)."""
    import numpy as np
    import pandas as pd

    out = gdf.to_crs(4326) if gdf.crs is not None else gdf.set_crs(4326)
    geom = out.geometry.name
    for c in out.columns:
        if c == geom:
            continue
        col = out[c]
        if pd.api.types.is_float_dtype(col):
            if np.isinf(col.to_numpy(dtype=float, na_value=np.nan)).any():
                out[c] = col.replace([np.inf, -np.inf], np.nan)
        elif col.dtype == object:
            values = col.dropna()
            if len(values) and not values.map(lambda v: isinstance(v, str)).all():
                out[c] = col.where(col.isna(), col.astype(str)).astype(object)
    return out


#: A GeoPackage layer of (multi)polygons or lines with more vertices than this is written in blocks of
#: rows holding at most this many (one row at least): each block's WKB and multi-part copies are made
#: and freed in turn, not the whole layer's at once (a city's service areas: 30M vertices, ~1 GB of copies).
BLOCK_VERTICES = 2_000_000


def _row_blocks(geoms, max_vertices: int = BLOCK_VERTICES) -> list[tuple[int, int]] | None:
    """``[(start, stop), ...]``: row ranges each starting within its own run of ``max_vertices`` vertices
    (so a block holds at most that many plus its last row's), or None when the whole layer has fewer:
    then it is written at once.

    >>> import shapely
    >>> line = shapely.LineString([(0, 0), (1, 1)])
    >>> _row_blocks([line] * 3, 4) is None
    False
    >>> _row_blocks([line] * 3, 6) is None
    True
    >>> _row_blocks([line] * 5, 4), _row_blocks([shapely.LineString([(0, 0)] * 9), line, line], 4)
    ([(0, 2), (2, 4), (4, 5)], [(0, 1), (1, 3)])
    """
    import numpy as np
    import shapely

    n = shapely.get_num_coordinates(np.asarray(geoms, dtype=object)).astype(np.int64)
    if int(n.sum()) <= max_vertices:
        return None
    first = (np.cumsum(n) - n) // max_vertices  # the run each row starts in
    starts = np.flatnonzero(np.r_[True, first[1:] != first[:-1]]).tolist()
    return list(zip(starts, starts[1:] + [len(n)]))


#: WKB made ahead for a geometry (keyed by ``id``: shapely geometries hash by value), taken by the next
#: :func:`write_vector` that writes it to a GeoPackage, and dropped then or when the geometry is freed.
_WKB_AHEAD: dict[int, tuple[weakref.ref, Any]] = {}


def wkb_made_ahead(geom, wkb) -> None:
    """Give :func:`write_vector` the WKB of ``geom`` (a MultiPolygon in EPSG:4326), made elsewhere: byte for byte
    ``shapely.to_wkb(geom)`` (a uint8 array or bytes). A city's service areas make theirs on the thread that
    draws them (:func:`lifecircle.present._grid_kernel.rings_wkb`), so writing them is GDAL's work only.

    >>> import shapely
    >>> square = shapely.MultiPolygon([shapely.box(0, 0, 1, 1)])
    >>> wkb_made_ahead(square, shapely.to_wkb(square))
    >>> _take_wkb([square, shapely.box(0, 0, 2, 2)]) == [shapely.to_wkb(square), None]
    True
    >>> _take_wkb([square])  # taken once
    [None]
    """
    key = id(geom)

    def forget(ref, key=key):
        if _WKB_AHEAD.get(key, (None,))[0] is ref:
            _WKB_AHEAD.pop(key, None)

    _WKB_AHEAD[key] = (weakref.ref(geom, forget), wkb)


def forget_wkb(geoms) -> None:
    """Drop the WKB made ahead for ``geoms`` (a writer that makes its own: the per-category layers)."""
    _take_wkb(geoms)


def _plain_table(out) -> bool:
    """Whether ``out``'s other columns are ones :func:`_write_with_wkb` writes as geopandas would: numbers,
    booleans and text (not all missing), under an unnamed integer index (geopandas writes any other index)."""
    import pandas as pd
    import pyarrow as pa

    idx = out.index
    if idx.name is not None or isinstance(idx, pd.MultiIndex) or not pd.api.types.is_integer_dtype(idx.dtype):
        return False
    for c in out.columns:
        if c == out.geometry.name:
            continue
        col = out[c]
        if pd.api.types.is_bool_dtype(col) or col.dtype.kind in "iuf":
            continue
        if col.dtype == object or pd.api.types.is_string_dtype(col):
            try:
                kind = pa.Schema.from_pandas(pd.DataFrame({"c": col}), preserve_index=False).field("c").type
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                return False
            if pa.types.is_string(kind) or pa.types.is_large_string(kind):
                continue
        return False
    return True


def _take_wkb(geoms) -> list:
    """The WKB made ahead for each of ``geoms`` (None where there is none), taken out of :data:`_WKB_AHEAD`."""
    out = []
    for g in geoms:
        held = _WKB_AHEAD.get(id(g)) if g is not None else None
        if held is not None and held[0]() is g:
            _WKB_AHEAD.pop(id(g), None)
            out.append(held[1])
        else:
            out.append(None)
    return out


def _write_with_wkb(out, path: Path, wkb: list, layer: str) -> None:
    """``out`` (EPSG:4326, (Multi)Polygons) written to the GeoPackage layer ``layer`` as ``to_file`` writes it,
    with the WKB made ahead where given (``wkb[i]``, else shapely's of row ``i`` as a MultiPolygon): one Arrow
    table whose geometry column points at those buffers (one chunk a row, no copy), by ``pyogrio.write_arrow``."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyogrio
    import shapely

    geom = out.geometry.name
    chunks = []
    for w, g in zip(wkb, out.geometry.values):
        if w is None:
            chunks.append(pa.array([None if g is None else shapely.to_wkb(
                g if shapely.get_type_id(g) == 6 else shapely.multipolygons([g]))], pa.large_binary()))
            continue
        data = pa.py_buffer(w)
        chunks.append(pa.Array.from_buffers(pa.large_binary(), 1, [None, pa.py_buffer(np.array([0, data.size],
                                                                                              dtype=np.int64)), data]))
    attrs = pd.DataFrame(out.drop(columns=geom), copy=False)
    table = pa.Table.from_pandas(attrs, preserve_index=False)
    table = table.append_column(geom, pa.chunked_array(chunks, pa.large_binary()))
    pyogrio.write_arrow(table, path, layer=layer, driver="GPKG", geometry_name=geom,
                        geometry_type="MultiPolygon", crs="EPSG:4326")


def _write_blocks(out, path: Path, blocks: list[tuple[int, int]], kw: dict[str, Any]) -> None:
    """``out`` written as :func:`write_vector` writes it, one block of rows at a time (appended to the layer
    the first block made, whose geometry type ``kw`` fixes): the same features, fields and order."""
    for k, (start, stop) in enumerate(blocks):
        out.iloc[start:stop].to_file(path, **kw, **({"mode": "a"} if k else {}))


def write_vector(gdf, path: str | os.PathLike[str], *, layer: str, style: Any = None,
                 extra_styles: dict[str, Any] | None = None) -> list[Path]:
    """Write ``gdf`` to ``path`` in the format its extension names, with its QGIS style.

    Parameters
    ----------
    gdf : GeoDataFrame
        Reprojected to EPSG:4326; ``inf`` becomes NULL.
    path : path
        ``.gpkg``, ``.geojson``, ``.shp``, ``.parquet`` or ``.fgb`` (see :data:`VECTOR_FORMATS`).
    layer : str
        The layer name (GeoPackage; the other formats hold one layer named after the file).
    style : lifecircle.present.qgis.LayerStyle, optional
        Stored in the GeoPackage's ``layer_styles`` table, or written as ``<stem>.qml`` beside the file.

    Returns
    -------
    list of Path
        Every file written, ``path`` first (a shapefile's parts, the ``.qml``).

    Examples
    --------
    >>> import tempfile, geopandas as gpd, shapely, pyogrio
    >>> g = gpd.GeoDataFrame({"minutes": [5.0]}, geometry=[shapely.Point(121.4, 31.2).buffer(0.01)], crs=4326)
    >>> d = tempfile.mkdtemp()
    >>> [p.name for p in write_vector(g, os.path.join(d, "iso.geojson"), layer="isochrones")]
    ['iso.geojson']
    >>> pyogrio.read_info(os.path.join(d, "iso.geojson"))["driver"]
    'GeoJSON'
    """
    from .qgis import write_layer_styles, write_qml_beside

    p = Path(path)
    driver = vector_driver(p)
    out = _ready(gdf)
    if driver == "Parquet":
        out.to_parquet(p, index=False)
    else:
        kw: dict[str, Any] = {"driver": driver, "engine": "pyogrio"}
        if driver == "GPKG":
            kw.update(layer=layer, use_arrow=True)
        elif driver == "ESRI Shapefile":
            kw["encoding"] = "UTF-8"
        blocks, ahead = None, False
        if driver in ("GPKG", "FlatGeobuf", "ESRI Shapefile") and len(out):
            import numpy as np
            import shapely

            kinds = set(np.unique(shapely.get_type_id(out.geometry.values)).tolist()) - {-1}  # -1: missing
            if kinds and (kinds <= {3, 6} or kinds <= {1, 5}):  # (Multi)Polygon, (Multi)LineString
                kw["promote_to_multi"] = True
                if driver == "GPKG" and kinds <= {3, 6} and _WKB_AHEAD:  # service areas with their WKB made
                    wkb = _take_wkb(out.geometry.values)
                    ahead = (any(w is not None for w in wkb) and not shapely.has_z(out.geometry.values).any()
                             and _plain_table(out))
                if driver == "GPKG" and not ahead:
                    blocks = _row_blocks(out.geometry.values)
                if blocks is not None:  # each block must declare the layer's type (the first might be all None)
                    has_z = bool(shapely.has_z(out.geometry.values).any())
                    kw["geometry_type"] = ("MultiPolygon" if kinds <= {3, 6} else "MultiLineString") + (" Z" if has_z else "")
        if ahead:
            _write_with_wkb(out, p, wkb, layer)
        elif blocks is not None:
            _write_blocks(out, p, blocks, kw)
        elif driver == "ESRI Shapefile":
            import warnings

            cut = [str(c) for c in out.columns if c != out.geometry.name and len(str(c).encode("utf-8")) > 10]
            if cut:
                log.warning("%s: a shapefile keeps 10 characters of a field name (%s...); write .gpkg to keep them",
                            p.name, ", ".join(cut[:4]))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # said once above, in one line
                out.to_file(p, **kw)
        else:
            out.to_file(p, **kw)
    written = [p]
    if driver == "ESRI Shapefile":
        written += [q for q in (p.with_suffix(s) for s in _SHAPEFILE_PARTS) if q.exists()]
    styles = dict(extra_styles or {})
    if style is not None:
        styles[layer] = style
    if styles:
        if driver == "GPKG":
            write_layer_styles(p, styles)
        elif style is not None:
            written.append(write_qml_beside(p, style))
    return written


def crs_tag(crs: Any) -> str | None:
    """The file-name tag of a CRS copy (``gcj02``, ``bd09``, ``epsg4547``), None for WGS84 (no copy needed).

    >>> crs_tag("amap"), crs_tag("baidu"), crs_tag("wgs84"), crs_tag("EPSG:4547")
    ('gcj02', 'bd09', None, 'epsg4547')
    """
    from ..read.crs import parse_crs

    target = parse_crs(crs)
    if isinstance(target, str):
        return target
    code = target.to_epsg()
    if code == 4326:
        return None
    if code is None:
        raise OutputError(f"--out-crs {crs!r} has no EPSG code to name the copies with; give an EPSG code "
                          "(e.g. --out-crs 4547) or gcj02/bd09")
    return f"epsg{code}"


def write_crs_copy(gdf, path: str | os.PathLike[str], crs: Any, *, layer: str, style: Any = None) -> list[Path]:
    """A GeoPackage copy of ``gdf`` in ``crs`` (GCJ-02/BD-09 keep the EPSG:4326 label: do not reproject them).

    Point layers get their converted coordinates as ``lon_<tag>``/``lat_<tag>`` columns too, to copy
    into AMap/Baidu tools.
    """
    import geopandas as gpd

    from ..read.crs import from_wgs84, parse_crs

    tag = crs_tag(crs)
    src = _ready(gdf)
    moved = from_wgs84(src, crs)
    if len(moved) and (moved.geometry.geom_type == "Point").all():
        moved[f"lon_{tag}"] = moved.geometry.x.round(7 if moved.crs is None or moved.crs.is_geographic else 3)
        moved[f"lat_{tag}"] = moved.geometry.y.round(7 if moved.crs is None or moved.crs.is_geographic else 3)
    p = Path(path)
    kw: dict[str, Any] = {"layer": layer, "driver": "GPKG", "engine": "pyogrio"}
    gpd.GeoDataFrame(moved, geometry=moved.geometry.name, crs=moved.crs).to_file(p, **kw)
    if style is not None:
        from .qgis import write_layer_styles

        target = parse_crs(crs)
        note = (f"lifecircle: coordinates in {target.upper()} (labelled EPSG:4326, as AMap/Baidu tools expect)"
                if isinstance(target, str) else f"lifecircle: coordinates in EPSG:{target.to_epsg()}")
        write_layer_styles(p, {layer: style}, description=note)
    return [p]
