"""Static PNG figures: the coverage map, coverage share against walking minutes, coverage per unit (matplotlib)."""

# matplotlib is imported inside the functions, and only its object API is used (matplotlib.figure.Figure,
# drawn by the Agg renderer on savefig): pyplot and the user's global backend are never touched.

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from ..config import ALL, CATEGORIES, minutes_column
from ..errors import InputDataError, LifecircleError
from ..read.files import atomic_path
from ..read.osm import OSM_CREDIT
from .styles import CATEGORY_STYLES, _minutes_class_index, _style, minutes_classes

__all__ = ["coverage_by_minute", "coverage_figure", "coverage_curve", "lorenz_curve", "units_bar_chart",
           "save_figure"]

#: Facility markers of the static map (matplotlib marker codes).
_MARKERS = {"health": "P", "elderly_care": "D", "culture": "s", "sports": "o"}
#: Above this many facilities shown, :func:`coverage_figure` draws them as small dots (a city's thousands
#: of markers would bury the map).
MAX_FIGURE_MARKERS = 1000


def _new_axes(ax: Any, figsize: tuple[float, float]):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise LifecircleError("figures need matplotlib: pip install matplotlib") from None
    if ax is not None:
        return ax.figure, ax, False
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot(), True


def _add_source(fig: Any, analysis: Any, own: bool) -> None:
    """The source/credit line under the figure (only on figures we made: not in the user's layout)."""
    if own:
        fig.supxlabel(_source_line(analysis), x=0.005, ha="left", fontsize=6.5, color="#555555")


def _label(category: str, categories: Any = None) -> str:
    if category == ALL:
        from .wording import all_fields

        return all_fields(CATEGORIES if categories is None else categories, "en")["all"]
    return category.replace("_", " ")


def _categories(analysis: Any) -> list[str]:
    cats = [c for c in analysis.config.categories if minutes_column(c) in analysis.residents.columns]
    if len(cats) > 1 and minutes_column(ALL) in analysis.residents.columns:
        cats.append(ALL)
    return cats


def _source_line(analysis: Any) -> str:
    s = getattr(analysis, "summary", None) or {}
    cfg = analysis.config
    created = str(s.get("created", ""))[:10]
    version = s.get("lifecircle_version", "")
    return (f"lifecircle {version} {created} · walking {cfg.walk_speed_kmh:g} km/h on the OSM street network · "
            f"{OSM_CREDIT}").strip()


def coverage_by_minute(residents: pd.DataFrame, *, categories: Iterable[str],
                       max_minutes: float = 30) -> pd.DataFrame:
    """Population share within 1, 2, …, ``max_minutes`` minutes of each category.

    Parameters
    ----------
    residents : DataFrame
        ``population`` and ``minutes_to_<category>`` (inf or NaN = not reachable).
    categories : iterable of str
        Categories (``all`` too, if its column is there).
    max_minutes : float
        Last minute of the table.

    Returns
    -------
    DataFrame
        Index ``minutes`` (1..max), one column of shares (0..1) per category.

    Examples
    --------
    Three residents (10, 30, 60 people) at 4, 12 and 20 minutes from a clinic:

    >>> df = pd.DataFrame({"population": [10, 30, 60], "minutes_to_health": [4, 12, 20.0]})
    >>> t = coverage_by_minute(df, categories=["health"], max_minutes=20)
    >>> t.loc[[3, 4, 12, 19, 20], "health"].tolist()
    [0.0, 0.1, 0.4, 0.4, 1.0]
    """
    grid = np.arange(1, int(math.floor(max_minutes)) + 1, dtype=float)
    pop = residents["population"].to_numpy(dtype=float) if "population" in residents else np.ones(len(residents))
    total = pop.sum()
    out = {}
    for cat in categories:
        col = minutes_column(cat)
        if col not in residents:
            raise InputDataError(f"residents have no {col!r} column: pass analysis.residents and a category "
                                 "that was analysed")
        mins = residents[col].to_numpy(dtype=float)
        mins = np.where(np.isnan(mins), np.inf, mins)
        order = np.argsort(mins, kind="stable")
        cum = np.concatenate([[0.0], np.cumsum(pop[order])])
        covered = cum[np.searchsorted(mins[order], grid, side="right")]
        out[cat] = covered / total if total > 0 else np.full(len(grid), np.nan)
    return pd.DataFrame(out, index=pd.Index(grid, name="minutes"))


def _lang(lang: str) -> str:
    key = str(lang).lower()
    if key not in ("zh", "en"):
        raise InputDataError(f"unknown figure language {lang!r}: use lang='zh' (Chinese) or lang='en' (English)")
    try:  # in English too: unit and facility names are often Chinese
        from .fonts import use_cjk_font

        use_cjk_font()
    except LifecircleError as exc:  # the figure still draws; Chinese glyphs show as boxes
        import logging

        logging.getLogger("lifecircle").warning("figures: %s", exc)
    return key


def _cat_name(category: str, lang: str, categories: Any = None) -> str:
    """卫生 / health … from the bilingual style labels; ``all`` is 全部四类 / all four (of ``categories``, the analysed ones)."""
    if category == ALL:
        from .wording import all_fields

        words = all_fields(CATEGORIES if categories is None else categories, lang)["all"]
        return f"全部{words}" if lang == "zh" else words
    label = _style(category).label
    zh, _, en = label.partition(" ")
    if not en:  # a category without a bilingual label
        return label.replace("_", " ")
    return zh if lang == "zh" else en


def _whole_circle(categories: Any, lang: str) -> str:
    """完整生活圈 / complete life circle when all four categories were analysed, else the ones that were."""
    cats = [c for c in categories if c != ALL]
    if set(cats) >= set(CATEGORIES):
        return "完整生活圈" if lang == "zh" else "complete life circle"
    return ("、" if lang == "zh" else ", ").join(_cat_name(c, lang) for c in cats)


def _class_label(label: str, lang: str) -> str:
    if lang != "zh":
        return label
    return label.replace(" or not reachable", " 或不可达").replace("min", "分钟")


def coverage_curve(analysis: Any, *, max_minutes: float | None = None, lang: str = "zh", ax: Any = None):
    """Line chart of the population share within 1..``max_minutes`` minutes, per category, with the target.

    Parameters
    ----------
    analysis : lifecircle.Analysis
        Anything with ``residents`` (``population``, ``minutes_to_*``), ``config`` and ``summary``.
    max_minutes : float, optional
        Default: the search cut-off (twice the largest threshold).
    lang : {"zh", "en"}
        Words of the title, axes and legend (Chinese drawn with the bundled Noto Sans CJK).
    ax : matplotlib Axes, optional
        Draw here; otherwise a new figure is made.

    Returns
    -------
    matplotlib.figure.Figure
        The dashed target line is labelled on the chart (``85 % 目标``).

    Examples
    --------
    >>> from lifecircle import analyze
    >>> from lifecircle.datasets import toy_town_osm
    >>> a = analyze(toy_town_osm())
    >>> coverage_curve(a).axes[0].get_ylabel()
    '覆盖居民（占人口 %）'
    >>> coverage_curve(a, lang="en").axes[0].get_ylabel()
    'residents covered (% of population)'
    """
    lang = _lang(lang)
    zh = lang == "zh"
    cfg = analysis.config
    fig, ax, own = _new_axes(ax, (7.5, 4.8))
    top = cfg.cutoff_minutes if max_minutes is None else float(max_minutes)
    cats = _categories(analysis)
    table = coverage_by_minute(analysis.residents, categories=cats, max_minutes=top)
    x = np.concatenate([[0.0], table.index.to_numpy()])
    for cat in cats:
        y = np.concatenate([[0.0], table[cat].to_numpy()]) * 100
        style = CATEGORY_STYLES.get(cat, _style(cat))
        ax.plot(x, y, color=style.colour, lw=2.6 if cat == ALL else 1.6, marker="o", ms=2.5,
                label=_cat_name(cat, lang, cfg.categories), zorder=3 if cat == ALL else 2)
    target = cfg.target * 100
    ax.axhline(target, color="#444444", ls="--", lw=1.2, zorder=1)
    ax.text(0.01 * top, target + 1.2, f"{target:g} % 目标（{cfg.headline_minutes:g} 分钟内）" if zh
            else f"{target:g} % target (within {cfg.headline_minutes:g} min)", ha="left", va="bottom",
            fontsize=8, color="#444444", zorder=4,
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1.0})
    for m in cfg.minutes:
        ax.axvline(m, color="#bbbbbb", lw=0.8, ls=":", zorder=1)
    ax.set_xlim(0, top)
    ax.set_ylim(0, 100)
    ax.set_xlabel("步行到最近设施的时间（分钟）" if zh else "walking time to the nearest facility (minutes)")
    ax.set_ylabel("覆盖居民（占人口 %）" if zh else "residents covered (% of population)")
    ax.set_title(f"步行时间内可达设施的居民比例（步行 {cfg.walk_speed_kmh:g} km/h）" if zh
                 else f"Population within walking time, {cfg.walk_speed_kmh:g} km/h", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8, title="设施类别" if zh else "facility category", title_fontsize=8)
    _add_source(fig, analysis, own)
    return fig


def _metric_crs(analysis: Any, frames: Sequence[Any]):
    net = getattr(analysis, "network", None)
    if net is not None and getattr(net, "crs", None) is not None:
        return net.crs
    from ..read.network import local_utm_crs

    b = np.array([f.total_bounds for f in frames if f is not None and len(f)], dtype=float)
    return local_utm_crs((b[:, 0].min() + b[:, 2].max()) / 2, (b[:, 1].min() + b[:, 3].max()) / 2)


def _projected_xy(gdf: Any, crs: Any) -> tuple[np.ndarray, np.ndarray]:
    """The coordinates of ``gdf``'s points (a polygon's representative point) in ``crs``, projected as
    arrays: no point objects are made (a million residents in a fraction of a second).

    >>> import geopandas as gpd, shapely
    >>> g = gpd.GeoDataFrame(geometry=[shapely.Point(121.5, 31.2), shapely.box(121.4, 31.1, 121.41, 31.11)], crs=4326)
    >>> x, y = _projected_xy(g, "EPSG:32651")
    >>> ref = g.representative_point().to_crs("EPSG:32651")
    >>> bool(np.allclose(x, ref.x) and np.allclose(y, ref.y))
    True
    """
    import pyproj
    import shapely

    geoms = gdf.geometry.to_numpy()
    if not (shapely.get_type_id(geoms) == 0).all():
        geoms = shapely.point_on_surface(geoms)
    x, y = shapely.get_x(geoms), shapely.get_y(geoms)
    if gdf.crs is None:
        raise InputDataError("the points to draw have no CRS: set it (gdf.set_crs(4326) for longitude/latitude)")
    if not pyproj.CRS(crs).equals(gdf.crs):
        x, y = pyproj.Transformer.from_crs(gdf.crs, crs, always_xy=True).transform(x, y)
    return np.asarray(x, dtype=float), np.asarray(y, dtype=float)


def _halo():
    """White outline of text drawn on maps, so names read on any fill."""
    from matplotlib import patheffects

    return [patheffects.withStroke(linewidth=2.6, foreground="white")]


#: Above this many edges in view the streets of a figure are one image (``STREETS_DPI``) instead of lines.
RASTER_STREETS_ABOVE = 100_000
STREETS_DPI = 150


def _streets(ax: Any, net: Any, xlim: tuple[float, float], ylim: tuple[float, float]) -> int:
    """The walking network as light grey lines under everything; only edges touching the view."""
    from matplotlib.collections import LineCollection

    x, y, u, v = (np.asarray(getattr(net, k)) for k in ("x", "y", "u", "v"))
    inside = (x >= xlim[0]) & (x <= xlim[1]) & (y >= ylim[0]) & (y <= ylim[1])
    keep = inside[u] | inside[v]
    if keep.sum() > RASTER_STREETS_ABOVE:  # a city: one image at print resolution, not a million paths
        from .styles import _hex_to_rgb, raster_segments

        box = ax.get_position()  # axes in figure fractions; pixels at the 150 dpi of save_figure
        w_in, h_in = ax.figure.get_size_inches()
        dx, dy = xlim[1] - xlim[0], ylim[1] - ylim[0]
        # the map is drawn at equal aspect: the output pixels of the shrunken box
        scale = min(box.width * w_in * STREETS_DPI / dx, box.height * h_in * STREETS_DPI / dy)
        # drawn at twice that with 2-pixel lines, then filtered down by matplotlib: no broken lines
        cols, rows = max(int(round(2 * dx * scale)), 2), max(int(round(2 * dy * scale)), 2)
        img = raster_segments(x[u[keep]], y[u[keep]], x[v[keep]], y[v[keep]],
                              bounds=(xlim[0], ylim[0], xlim[1], ylim[1]), shape=(rows, cols), width_px=2)
        rgba = np.zeros((rows, cols, 4), dtype=np.uint8)
        rgba[img, :3] = _hex_to_rgb("#8c8c8c").astype(np.uint8)
        rgba[img, 3] = 255
        ax.imshow(rgba, extent=(xlim[0], xlim[1], ylim[0], ylim[1]), origin="upper", interpolation="antialiased",
                  zorder=1, aspect="auto")
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
        return int(keep.sum())
    seg = np.stack([np.column_stack([x[u[keep]], y[u[keep]]]), np.column_stack([x[v[keep]], y[v[keep]]])], axis=1)
    ax.add_collection(LineCollection(seg, colors="#8c8c8c", linewidths=0.6, zorder=1, capstyle="round"))
    return int(keep.sum())


def _hexagons(ax: Any, x: np.ndarray, y: np.ndarray, mins: np.ndarray, pop: np.ndarray, classes: Sequence,
              size_m: float) -> int:
    """Residents aggregated to hexagons, each filled with the class of its population-weighted median walk."""
    from matplotlib.collections import PolyCollection

    from .maps import _weighted_median, hex_cells

    q, r = hex_cells(x, y, size_m)
    span = int(r.max() - r.min()) + 1
    cell, inv = np.unique((q - q.min()) * span + (r - r.min()), return_inverse=True)
    inv = inv.ravel()
    kq, kr = cell // span + q.min(), cell % span + r.min()
    med = _weighted_median(inv, mins, pop, len(cell))
    k = _minutes_class_index(med, classes)
    cx, cy = size_m * np.sqrt(3) * (kq + kr / 2), size_m * 1.5 * kr
    ang = np.radians(60 * np.arange(6) - 30)
    verts = np.stack([cx[:, None] + size_m * np.cos(ang), cy[:, None] + size_m * np.sin(ang)], axis=-1)
    colours = [classes[i][2] for i in k]
    ax.add_collection(PolyCollection(verts, facecolors=colours, edgecolors="white", linewidths=0.3, alpha=0.6,
                                     zorder=2))
    return len(cell)


def _north_arrow(ax: Any) -> None:
    ax.annotate("N", xy=(0.965, 0.965), xytext=(0.965, 0.885), xycoords="axes fraction", ha="center",
                va="center", fontsize=11, zorder=6,
                arrowprops={"facecolor": "black", "edgecolor": "black", "width": 3, "headwidth": 9,
                            "headlength": 9}, path_effects=_halo())


def coverage_figure(analysis: Any, *, category: str = ALL, isochrones: Any = None, units: Any = None,
                    lang: str = "zh", hex_size_m: float | None = None, ax: Any = None):
    """Static coverage map: residents aggregated to hexagons coloured by walking minutes, on the streets.

    Parameters
    ----------
    analysis : lifecircle.Analysis
        Anything with ``residents``, ``facilities``, ``config`` and ``summary`` (``network`` gives the
        metric CRS and the streets; otherwise the local UTM zone is used and no streets are drawn).
    category : str
        Whose walking minutes colour the hexagons (default ``all``: the slowest of the four).
    isochrones : GeoDataFrame, optional
        Service areas; for one category its headline (15-minute) area is outlined (a legend entry
        says so). Default ``analysis.isochrones``.
    units : GeoDataFrame, optional
        Unit polygons, drawn as thin outlines with their names (column ``unit`` or ``name``) at a
        representative point. Default ``analysis.units``.
    lang : {"zh", "en"}
        Words of the title and legend.
    hex_size_m : float, optional
        Hexagon circumradius; default :func:`lifecircle.present.maps.hex_size_for` the extent at
        ~600 cells (at least 20 across).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
        No coordinate axes (the metric CRS stays internal): a scale bar, a north arrow, the legend
        outside the map on the right, the OSM credit at the bottom.

    Examples
    --------
    >>> from lifecircle import analyze
    >>> from lifecircle.datasets import toy_town_osm
    >>> fig = coverage_figure(analyze(toy_town_osm()))
    >>> fig.axes[0].get_title().splitlines()[0]
    '步行到最近的各类设施（全部四类：完整生活圈）'
    >>> coverage_figure(analyze(toy_town_osm()), lang="en").legends[0].get_title().get_text()
    'walking minutes (median per hexagon)'
    """
    import shapely
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from .maps import hex_size_for

    lang = _lang(lang)
    zh = lang == "zh"
    cfg = analysis.config
    res = analysis.residents
    col = minutes_column(category)
    if col not in res.columns:
        raise InputDataError(f"residents have no {col!r} column: choose one of "
                             f"{', '.join(_categories(analysis))}")
    fac = analysis.facilities
    isochrones = isochrones if isochrones is not None else getattr(analysis, "isochrones", None)
    units = units if units is not None else getattr(analysis, "units", None)
    crs = _metric_crs(analysis, [res, fac])

    x, y = _projected_xy(res, crs)
    frames_x, frames_y = [x], [y]
    if fac is not None and len(fac):
        fx, fy = _projected_xy(fac, crs)
        frames_x.append(fx)
        frames_y.append(fy)
    ax_x, ax_y = np.concatenate(frames_x), np.concatenate(frames_y)
    if not len(ax_x):
        raise InputDataError("nothing to draw: the analysis has no residents and no facilities")
    pad = 0.04 * max(np.ptp(ax_x), np.ptp(ax_y), 100)
    xlim = (ax_x.min() - pad, ax_x.max() + pad)
    ylim = (ax_y.min() - pad, ax_y.max() + pad)
    # the page follows the area's shape (map 7 in wide, legend beside it), so wide towns leave no blank bands
    tall = (ylim[1] - ylim[0]) / (xlim[1] - xlim[0])
    fig, ax, own = _new_axes(ax, (10, float(np.clip(7 * tall + 1.4, 4.5, 10))))

    net = getattr(analysis, "network", None)
    if net is not None and hasattr(net, "u"):
        _streets(ax, net, xlim, ylim)
    handles: list[Any] = []
    classes = minutes_classes(cfg.minutes, cutoff_minutes=cfg.cutoff_minutes)
    mins = res[col].to_numpy(dtype=float)
    mins = np.where(np.isnan(mins), np.inf, mins)
    pop = res["population"].to_numpy(dtype=float) if "population" in res else np.ones(len(res))
    if len(x):
        size = hex_size_m or hex_size_for(float(np.ptp(x)) or 1.0, float(np.ptp(y)) or 1.0, n_cells=600)
        _hexagons(ax, x, y, mins, pop, classes, size)
    handles += [Patch(facecolor=c, edgecolor="white", alpha=0.6, label=_class_label(lab, lang))
                for _, lab, c in classes]

    span = max(xlim[1] - xlim[0], ylim[1] - ylim[0])
    if units is not None and len(units):
        ug = units.to_crs(crs)
        _outlines(ax, ug.geometry.to_numpy(), span, color="#555555", lw=0.9, zorder=3)
        name_col = next((c for c in ("unit", "name") if c in ug.columns), None)
        if name_col is not None:
            view = shapely.box(xlim[0], ylim[0], xlim[1], ylim[1])
            for name, geom in zip(ug[name_col].astype(str), ug.geometry):
                part = shapely.intersection(geom, view)  # name the part inside the map, not a far centre
                if part.is_empty:
                    continue
                p = shapely.point_on_surface(part)
                ax.text(p.x, p.y, name, ha="center", va="center", fontsize=9, color="#222222", zorder=6,
                        path_effects=_halo(), clip_on=True)
        handles.append(Line2D([], [], color="#555555", lw=0.9, label="统计单元边界" if zh else "unit boundary"))
    if category != ALL and isochrones is not None and len(isochrones):
        iso = isochrones.to_crs(crs)
        iso = iso[(iso["category"] == category) & np.isclose(iso["minutes"].astype(float), cfg.headline_minutes)]
        colour = _style(category).colour
        _outlines(ax, iso.geometry.to_numpy(), span, color=colour, lw=1.1, ls="--", zorder=4)
        if len(iso):
            handles.append(Line2D([], [], color=colour, lw=1.1, ls="--",
                                  label=f"{cfg.headline_minutes:g} 分钟服务范围" if zh
                                  else f"{cfg.headline_minutes:g}-min service area"))
    if net is not None and hasattr(net, "u"):
        handles.append(Line2D([], [], color="#8c8c8c", lw=1.0, label="步行路网" if zh else "walking network"))

    if fac is not None and len(fac):
        fcrs = fac.to_crs(crs)
        shown = fcrs if category == ALL else fcrs[fcrs["category"] == category]
        small = len(shown) > MAX_FIGURE_MARKERS
        for cat in [c for c in CATEGORY_STYLES if c in set(shown["category"])]:
            g = shown[shown["category"] == cat].geometry
            st = _style(cat)
            ax.scatter(g.x, g.y, marker=_MARKERS.get(cat, "^"), s=6 if small else 60, c=st.colour,
                       edgecolors="white", linewidths=0.2 if small else 0.9, zorder=5)
            handles.append(Line2D([], [], ls="", marker=_MARKERS.get(cat, "^"), ms=8, mfc=st.colour, mec="white",
                                  label=(f"{_cat_name(cat, lang)}设施（{len(g)}）" if zh
                                         else f"{_cat_name(cat, lang)} facility ({len(g)})")))
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_color("#888888")
    _scale_bar(ax)
    _north_arrow(ax)
    share = _share(analysis, category)
    if zh:
        title = (f"步行到最近的各类设施（{_cat_name(ALL, lang, cfg.categories)}：{_whole_circle(cfg.categories, lang)}）"
                 if category == ALL else f"步行到最近的{_cat_name(category, lang)}设施")
        if share is not None:
            title += (f"\n{cfg.headline_minutes:g} 分钟内可达的居民 {share * 100:.1f} %"
                      f"（目标 {cfg.target * 100:g} %）")
    else:
        title = (f"Walk to the nearest facility of every category ({_whole_circle(cfg.categories, lang)})"
                 if category == ALL else f"Walk to the nearest {_cat_name(category, lang)} facility")
        if share is not None:
            title += (f"\n{share * 100:.1f} % of residents within {cfg.headline_minutes:g} min "
                      f"(target {cfg.target * 100:g} %)")
    ax.set_title(title, fontsize=11)
    legend = {"handles": handles, "fontsize": 8, "frameon": False, "title_fontsize": 8, "alignment": "left",
              "title": "步行时间（每个六边形的中位数）" if zh else "walking minutes (median per hexagon)"}
    if own:  # beside the map; constrained layout makes room for it, so nothing is clipped
        fig.legend(loc="outside right upper", **legend)
    else:  # the caller's layout: inside the map, in a corner
        ax.legend(loc="upper left", **legend)
    _add_source(fig, analysis, own)
    return fig


def _outlines(ax: Any, geoms: np.ndarray, span: float, **style: Any) -> None:
    """The rings of ``geoms`` as one LineCollection, simplified to a fifth of a 2,000-pixel figure's pixel."""
    import shapely
    from matplotlib.collections import LineCollection

    rings = shapely.get_rings(shapely.get_parts(geoms))
    rings = shapely.simplify(rings, span / 10_000)
    xy, ring = shapely.get_coordinates(rings, return_index=True)
    if not len(xy):
        return
    cuts = np.flatnonzero(np.diff(ring)) + 1
    ls = style.pop("ls", "-")
    ax.add_collection(LineCollection(np.split(xy, cuts), linestyles=ls, **style))


def _share(analysis: Any, category: str) -> float | None:
    cov = getattr(analysis, "coverage", None)
    if cov is None or not len(cov):
        return None
    head = analysis.config.headline_minutes
    rows = cov[(cov["unit"].astype(str) == "study_area") & (cov["category"] == category)
               & np.isclose(cov["minutes"].astype(float), head)]
    return float(rows["share"].iloc[0]) if len(rows) else None


def _scale_bar(ax: Any) -> None:
    """A scale bar of a round length, about a fifth of the axes width, in the lower right."""
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    want = (x1 - x0) / 5
    exp = 10 ** math.floor(math.log10(want))
    length = max(s * exp for s in (1, 2, 5) if s * exp <= want)
    xe = x1 - 0.04 * (x1 - x0)
    ys = y0 + 0.04 * (y1 - y0)
    ax.plot([xe - length, xe], [ys, ys], color="black", lw=3, solid_capstyle="butt", zorder=6,
            path_effects=_halo())
    text = f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m"
    ax.text(xe - length / 2, ys + 0.012 * (y1 - y0), text, ha="center", va="bottom", fontsize=8, zorder=6,
            path_effects=_halo())


def lorenz_curve(analysis: Any, *, column: str = "access_2sfca_per_1000", group: str = "population",
                 categories: Iterable[str] | None = None, ax: Any = None):
    """Lorenz curves of a per-unit measure across units, one per category, with each Gini in the legend.

    Parameters
    ----------
    analysis : lifecircle.Analysis
        With ``accessibility`` per unit (a run with units), ``config`` and ``summary``.
    column : str
        A column of ``analysis.accessibility``: ``access_2sfca_per_1000`` (default),
        ``access_e2sfca_per_1000``, ``access_g2sfca_per_1000``, ``capacity_per_1000``, ``coverage_share``…
    group : str
        The population group whose units are drawn (``population`` = everyone).
    categories : iterable of str, optional
        Default: every analysed category.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
        x: cumulative share of people (units sorted from the lowest value), y: cumulative share of
        the measure; the diagonal is equality.

    Examples
    --------
    >>> from lifecircle import analyze
    >>> from lifecircle.datasets import toy_town_osm
    >>> fig = lorenz_curve(analyze(toy_town_osm(), admin_level=8))
    >>> fig.axes[0].get_xlabel()
    'cumulative share of residents (units from the lowest value up)'
    """
    from ..measure.equity import gini, lorenz

    table = getattr(analysis, "accessibility", None)
    if table is None or not (table["unit"].astype(str) != "study_area").any():
        raise InputDataError("a Lorenz curve across units needs a run with units (--units FILE or --admin-level 8)")
    if column not in table.columns:
        raise InputDataError(f"accessibility has no column {column!r}; choose one of "
                             f"{', '.join(c for c in table.columns if c.endswith(('_per_1000', '_share')))}")
    units = table[(table["unit"].astype(str) != "study_area") & (table["group"] == group)]
    if units.empty:
        raise InputDataError(f"no group {group!r}; choose one of {', '.join(map(str, table['group'].unique()))}")
    cats = list(categories) if categories is not None else list(dict.fromkeys(units["category"]))
    fig, ax, own = _new_axes(ax, (6.4, 6.0))
    ax.plot([0, 100], [0, 100], color="#888888", ls="--", lw=1, label="equality")
    for cat in cats:
        t = units[units["category"] == cat]
        x, w = t[column].to_numpy(float), t["population"].to_numpy(float)
        p, l = lorenz(x, w)
        if not np.isfinite(l).all():
            continue
        st = CATEGORY_STYLES.get(cat, _style(cat))
        ax.plot(p * 100, l * 100, color=st.colour, lw=1.8, marker="o", ms=3,
                label=f"{_label(cat, analysis.config.categories)} (Gini {gini(x, w):.2f})")
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.set_aspect("equal")
    ax.set_xlabel("cumulative share of residents (units from the lowest value up)")
    what = {"access_2sfca_per_1000": "2SFCA capacity within reach", "access_e2sfca_per_1000": "E2SFCA capacity within "
            "reach", "access_g2sfca_per_1000": "G2SFCA capacity within reach", "capacity_per_1000": "capacity located",
            "coverage_share": "people covered"}.get(column, column.replace("_", " "))
    ax.set_ylabel(f"cumulative share of {what} (%)")
    who = "everyone" if group == "population" else group
    ax.set_title(f"Inequality between units: {what} ({who}, {analysis.config.headline_minutes:g} min)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    _add_source(fig, analysis, own)
    return fig


#: Bar colours of the per-unit chart: meets the target / below it.
UNIT_BAR_COLOURS = ("#1a9850", "#d73027")


def units_bar_chart(analysis: Any, *, category: str = ALL, minutes: float | None = None, lang: str = "zh",
                    max_units: int = 40, ax: Any = None):
    """Horizontal bars of each unit's coverage share, lowest first, against the target (a dashed line).

    Parameters
    ----------
    analysis : lifecircle.Analysis
        Or the folder view (:func:`lifecircle.present.outputs.read_analysis_folder`): anything with a
        ``coverage`` table that has unit rows, ``config`` and ``summary``.
    category : str
        ``all`` (every category within the minutes) or one category.
    minutes : float, optional
        Default: the headline threshold (15).
    lang : {"zh", "en"}
        Words of the labels; unit names are drawn as given (Chinese with the bundled Noto Sans CJK).
    max_units : int
        Above this many units only the lowest ``max_units`` are drawn (the title says so), so the
        names stay readable on an A4 page.
    ax : matplotlib Axes, optional
        Draw here; otherwise a new figure (constrained layout) is made.

    Returns
    -------
    matplotlib.figure.Figure
        Bars green when the unit meets the target, red below it; the dashed target line is labelled
        ``85 % 目标`` (``85 % target``).

    Examples
    --------
    >>> from lifecircle import analyze
    >>> from lifecircle.datasets import toy_town_osm
    >>> a = analyze(toy_town_osm(), admin_level=8)
    >>> fig = units_bar_chart(a)
    >>> [t.get_text() for t in fig.axes[0].get_yticklabels()]
    ['城东街道', '城西街道']
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from .fonts import use_cjk_font
    from .wording import all_fields, category_name, text

    cfg = analysis.config
    m = cfg.headline_minutes if minutes is None else float(minutes)
    cov = analysis.coverage
    rows = cov[(cov["unit"].astype(str) != "study_area") & (cov["category"] == category)
               & np.isclose(cov["minutes"].astype(float), m)]
    if rows.empty:
        raise InputDataError(f"no per-unit coverage of {category!r} at {m:g} min: analyse with --units FILE or "
                             "--admin-level 6|8 (and a category and minutes that were analysed)")
    use_cjk_font()
    rows = rows.sort_values(["share", "population"], ascending=[True, False])
    n_all = len(rows)
    rows = rows.head(max_units)
    n = len(rows)
    target = float(cfg.target)
    fig, ax, own = _new_axes(ax, (7.5, 1.9 + 0.27 * n))
    share = rows["share"].to_numpy(dtype=float) * 100
    meets = share >= target * 100 - 1e-9
    y = np.arange(n)
    ax.barh(y, share, color=np.where(meets, UNIT_BAR_COLOURS[0], UNIT_BAR_COLOURS[1]), height=0.7, zorder=2)
    for yi, v in zip(y, share):
        ax.text(v + 1.0, yi, f"{v:.1f}%", va="center", ha="left", fontsize=7.5, color="#333333", zorder=3)
    ax.set_yticks(y, [str(u) for u in rows["unit"]], fontsize=8 if n <= 25 else 7)
    ax.invert_yaxis()  # the lowest share on top
    ax.set_xlim(0, 112)
    ax.set_xticks(np.arange(0, 101, 20))
    ax.set_ylim(n - 0.5, -0.5)
    target_label = text("chart_target", lang, target=f"{target * 100:g} %")
    ax.axvline(target * 100, color="#222222", ls="--", lw=1.3, zorder=4)
    suffix = "_all" if category == ALL else ""
    cat = category_name(category, lang)
    words = all_fields(cfg.categories, lang)
    ax.set_xlabel(text("chart_xlabel" + suffix, lang, m=f"{m:g}", category=cat, **words), fontsize=9)
    title = text("chart_title" + suffix, lang, category=cat, m=f"{m:g}", **words)
    if n < n_all:
        title += (f"（最低 {n} 个，共 {n_all} 个）" if lang == "zh" else f" (lowest {n} of {n_all})")
    ax.grid(axis="x", alpha=0.3, zorder=0)
    handles = [Patch(color=UNIT_BAR_COLOURS[0], label=text("chart_meets", lang)),
               Patch(color=UNIT_BAR_COLOURS[1], label=text("chart_below", lang)),
               Line2D([], [], color="#222222", ls="--", lw=1.3, label=target_label)]
    if own:
        ax.set_title(title, fontsize=11)
        fig.legend(handles=handles, loc="outside upper center", ncols=3, fontsize=8, frameon=False)
        line = _source_line(analysis)
        if lang == "zh":
            s = getattr(analysis, "summary", None) or {}
            line = (f"lifecircle {s.get('lifecircle_version', '')} {str(s.get('created', ''))[:10]} · "
                    f"OSM 路网步行 {cfg.walk_speed_kmh:g} km/h · {OSM_CREDIT}")
        fig.supxlabel(line, x=0.005, ha="left", fontsize=6.5, color="#555555")
    else:
        ax.set_title(title, fontsize=11)
        ax.legend(handles=handles, loc="lower right", fontsize=8)
    return fig


def save_figure(fig: Any, path: str | os.PathLike[str], *, dpi: int = 150) -> Path:
    """Save a figure (format from the suffix, e.g. .png/.svg/.pdf), written to a temp name then renamed.

    >>> import tempfile, os
    >>> from matplotlib.figure import Figure
    >>> p = save_figure(Figure(), os.path.join(tempfile.mkdtemp(), "f.png"))
    >>> p.read_bytes()[:4] == b"\\x89PNG"
    True
    """
    final = Path(path)
    fmt = final.suffix.lstrip(".").lower() or "png"
    with atomic_path(final) as tmp:
        fig.savefig(tmp, dpi=dpi, format=fmt)
    return final
