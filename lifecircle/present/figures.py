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

from ..config import ALL, minutes_column
from ..errors import InputDataError, LifecircleError
from ..read.files import atomic_path
from ..read.osm import OSM_CREDIT
from .styles import CATEGORY_STYLES, _minutes_class_index, _style, minutes_classes

__all__ = ["coverage_by_minute", "coverage_figure", "coverage_curve", "lorenz_curve", "units_bar_chart",
           "save_figure"]

#: Facility markers of the static map (matplotlib marker codes).
_MARKERS = {"health": "P", "elderly_care": "D", "culture": "s", "sports": "o"}


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


def _label(category: str) -> str:
    return "all four" if category == ALL else category.replace("_", " ")


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


def coverage_curve(analysis: Any, *, max_minutes: float | None = None, ax: Any = None):
    """Line chart of the population share within 1..``max_minutes`` minutes, per category, with the target.

    Parameters
    ----------
    analysis : lifecircle.Analysis
        Anything with ``residents`` (``population``, ``minutes_to_*``), ``config`` and ``summary``.
    max_minutes : float, optional
        Default: the search cut-off (twice the largest threshold).
    ax : matplotlib Axes, optional
        Draw here; otherwise a new figure is made.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from lifecircle import analyze
    >>> from lifecircle.datasets import toy_town_osm
    >>> fig = coverage_curve(analyze(toy_town_osm()))
    >>> fig.axes[0].get_ylabel()
    'residents covered (% of population)'
    """
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
                ls="-" if cat == ALL else "-", label=_label(cat), zorder=3 if cat == ALL else 2)
    ax.axhline(cfg.target * 100, color="#444444", ls="--", lw=1.2,
               label=f"target {cfg.target * 100:g} % within {cfg.headline_minutes:g} min")
    for m in cfg.minutes:
        ax.axvline(m, color="#bbbbbb", lw=0.8, ls=":", zorder=1)
    ax.set_xlim(0, top)
    ax.set_ylim(0, 100)
    ax.set_xlabel("walking time to the nearest facility (minutes)")
    ax.set_ylabel("residents covered (% of population)")
    ax.set_title(f"Population within walking time, {analysis.config.walk_speed_kmh:g} km/h", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    _add_source(fig, analysis, own)
    return fig


def _metric_crs(analysis: Any, frames: Sequence[Any]):
    net = getattr(analysis, "network", None)
    if net is not None and getattr(net, "crs", None) is not None:
        return net.crs
    from ..read.network import local_utm_crs

    b = np.array([f.total_bounds for f in frames if f is not None and len(f)], dtype=float)
    return local_utm_crs((b[:, 0].min() + b[:, 2].max()) / 2, (b[:, 1].min() + b[:, 3].max()) / 2)


def coverage_figure(analysis: Any, *, category: str = ALL, isochrones: Any = None, units: Any = None,
                    ax: Any = None):
    """Static coverage map: residents coloured by walking minutes, service areas, facilities, units.

    Parameters
    ----------
    analysis : lifecircle.Analysis
        Anything with ``residents``, ``facilities``, ``config`` and ``summary`` (``network`` gives the
        metric CRS; otherwise the local UTM zone is used).
    category : str
        Whose walking minutes colour the residents (default ``all``).
    isochrones, units : GeoDataFrame, optional
        Service areas (outlined) and unit polygons (outlined); default ``analysis.isochrones`` /
        ``analysis.units`` if present.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
        Axes in metres of the metric CRS, with a scale bar and the OSM credit.

    Examples
    --------
    >>> from lifecircle import analyze
    >>> from lifecircle.datasets import toy_town_osm
    >>> fig = coverage_figure(analyze(toy_town_osm()))
    >>> fig.axes[0].get_xlabel()
    'easting (m, WGS 84 / UTM zone 51N)'
    """
    import shapely
    from matplotlib.lines import Line2D

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
    fig, ax, own = _new_axes(ax, (10, 8))

    pts = res.geometry.to_crs(crs)
    if not (pts.geom_type == "Point").all():
        pts = pts.representative_point()
    x, y = pts.x.to_numpy(), pts.y.to_numpy()
    frames_x = [x]
    frames_y = [y]
    if fac is not None and len(fac):
        f = fac.geometry.to_crs(crs)
        frames_x.append(f.x.to_numpy())
        frames_y.append(f.y.to_numpy())
    ax_x = np.concatenate(frames_x)
    ax_y = np.concatenate(frames_y)
    pad = 0.04 * max(np.ptp(ax_x) if len(ax_x) else 1, np.ptp(ax_y) if len(ax_y) else 1, 100)
    xlim = (ax_x.min() - pad, ax_x.max() + pad) if len(ax_x) else None
    ylim = (ax_y.min() - pad, ax_y.max() + pad) if len(ax_y) else None

    if units is not None and len(units):
        for geom in units.geometry.to_crs(crs):
            for ring in shapely.get_parts(shapely.boundary(geom)):
                c = shapely.get_coordinates(ring)
                ax.plot(c[:, 0], c[:, 1], color="#333333", lw=1.0, zorder=1)
    if isochrones is not None and len(isochrones):
        iso = isochrones.to_crs(crs)
        if category == ALL:
            iso = iso[np.isclose(iso["minutes"].astype(float), cfg.headline_minutes)]
        else:
            iso = iso[iso["category"] == category]
        for cat, mins, geom in zip(iso["category"], iso["minutes"], iso.geometry):
            colour = _style(str(cat)).colour
            for ring in shapely.get_parts(shapely.boundary(geom)):
                c = shapely.get_coordinates(ring)
                ax.plot(c[:, 0], c[:, 1], color=colour, lw=1.0, alpha=0.9, zorder=2,
                        ls="-" if float(mins) == cfg.headline_minutes else "--")

    classes = minutes_classes(cfg.minutes, cutoff_minutes=cfg.cutoff_minutes)
    mins = res[col].to_numpy(dtype=float)
    k = _minutes_class_index(mins, classes)
    colours = np.array([c[2] for c in classes], dtype=object)[k]
    order = np.argsort(-k, kind="stable")  # reachable (green) residents on top
    ax.scatter(x[order], y[order], c=list(colours[order]), s=9, linewidths=0.2, edgecolors="#555555", zorder=3)

    handles = [Line2D([], [], ls="", marker="o", ms=6, mfc=c, mec="#555555", label=lab) for _, lab, c in classes]
    if fac is not None and len(fac):
        fcrs = fac.to_crs(crs)
        shown = fcrs if category == ALL else fcrs[fcrs["category"] == category]
        for cat in [c for c in CATEGORY_STYLES if c in set(shown["category"])]:
            g = shown[shown["category"] == cat].geometry
            st = _style(cat)
            ax.scatter(g.x, g.y, marker=_MARKERS.get(cat, "^"), s=70, c=st.colour, edgecolors="white",
                       linewidths=0.9, zorder=4)
            handles.append(Line2D([], [], ls="", marker=_MARKERS.get(cat, "^"), ms=8, mfc=st.colour, mec="white",
                                  label=f"{_label(cat)} facility ({len(g)})"))
    if xlim is not None:
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    ax.ticklabel_format(style="plain", useOffset=False)
    ax.tick_params(labelsize=7)
    ax.set_xlabel(f"easting (m, {crs.name})", fontsize=8)
    ax.set_ylabel("northing (m)", fontsize=8)
    _scale_bar(ax)
    share = _share(analysis, category)
    title = ("Walk to the nearest facility of every category (complete life circle)" if category == ALL
             else f"Walk to the nearest {_label(category)} facility")
    if share is not None:
        title += (f"\n{share * 100:.1f} % of residents within {cfg.headline_minutes:g} min "
                  f"(target {cfg.target * 100:g} %)")
    ax.set_title(title, fontsize=11)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False,
              title="walking minutes", title_fontsize=8, alignment="left")
    _add_source(fig, analysis, own)
    return fig


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
    ax.plot([xe - length, xe], [ys, ys], color="black", lw=3, solid_capstyle="butt", zorder=5)
    text = f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m"
    ax.text(xe - length / 2, ys + 0.012 * (y1 - y0), text, ha="center", va="bottom", fontsize=8, zorder=5,
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.75, "pad": 1.5})


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
                label=f"{_label(cat)} (Gini {gini(x, w):.2f})")
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
    from .wording import category_name, text

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
    ax.set_xlabel(text("chart_xlabel" + suffix, lang, m=f"{m:g}", category=cat), fontsize=9)
    title = text("chart_title" + suffix, lang, category=cat, m=f"{m:g}")
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
