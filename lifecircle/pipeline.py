"""The whole analysis: network, facilities, residents, walking times, coverage, written to a folder."""

from __future__ import annotations

import datetime as _dt
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import pandas as pd

from ._version import __version__
from .config import ALL, AnalysisConfig, minutes_column, within_column
from .measure.coverage import STUDY_AREA, coverage_table
from .errors import InputDataError
from .validate import check_input_files, check_values
from .read.facilities import (
    Taxonomy,
    combine_facilities,
    count_by_category,
    deduplicate,
    facilities_from_file,
    facilities_from_osm,
    load_taxonomy,
)
from .read.network import WalkNetwork, network_from_osm, network_from_place
from .read.osm import OSM_CREDIT, file_sha256
from .read.population import residents_from_buildings, residents_from_file
from .read.census import read_census, residents_from_census
from .read.units import assign_units, units_from_file, units_from_osm, units_from_place
from .measure.walking_times import WalkingTimes, walking_times

if TYPE_CHECKING:
    from .present.outputs import OutputRun

log = logging.getLogger("lifecircle")

__all__ = ["Analysis", "analyze", "run_analysis", "reanalyze", "load_analysis", "Inputs", "NetworkInput", "FacilityInput",
           "PopulationInput", "UnitInput", "CensusInput", "AccessInput", "OUTPUT_FILES"]

#: Files :meth:`Analysis.write` always writes (plus gaps.gpkg, isochrones.gpkg, units.gpkg, census_methods.csv,
#: facilities_rejected.csv, facilities_merged.csv and facility_isochrones.gpkg when they apply). run_state.npz
#: keeps the measured network, snaps and minutes for :func:`load_analysis` (:mod:`lifecircle.measure.stored`).
OUTPUT_FILES = ("summary.json", "coverage.csv", "residents.gpkg", "facilities.gpkg", "unsnapped.csv", "run_state.npz")


#: Why no more areas can be drawn from an analysis whose access graph :meth:`Analysis.areas` released.
_RELEASED = ("the access graph of this analysis was released by areas(release=True): run analyze again, or "
             "lifecircle.load_analysis(folder), to draw facility service areas, service areas or site plans")


@dataclass(eq=False)
class Analysis:
    """Everything :func:`analyze` computed; :meth:`write` saves it.

    Attributes
    ----------
    network : WalkNetwork
    facilities : GeoDataFrame
        With ``snapped`` and ``snap_dist_m``.
    residents : GeoDataFrame
        With ``population``, ``minutes_to_<category>`` (and ``minutes_to_all``),
        ``within_<N>min_<category>``, ``snapped``, ``snap_dist_m`` and ``unit`` when units were given.
    coverage : DataFrame
        Tidy table (see :func:`lifecircle.measure.coverage.coverage_table`).
    summary : dict
        What ``summary.json`` holds.
    units : GeoDataFrame or None
        The area units (``unit`` name column, WGS84), when given.
    census_methods : DataFrame or None
        With a census: one row per unit with its census count and how it was spread.
    isochrones : GeoDataFrame or None
        Service areas per category and threshold (:func:`lifecircle.present.isochrones.service_areas`),
        made by :meth:`write` (or set it yourself).
    gaps : GeoDataFrame or None
        Gap areas (:func:`lifecircle.plan.gaps.find_gaps`), made by :meth:`write`.
    standard_decisions : DataFrame or None
        Every facility found, with ``kept``, ``facility_type`` and ``reason`` under the standard
        (``summary["standard"]`` has the standard's definition and counts).
    tiers : DataFrame or None
        With a tiered standard (``gb50180-2018``): coverage per facility type at its own tier and
        the complete life circle (:func:`lifecircle.measure.tiers.tier_coverage`).
    urban_rural : DataFrame or None
        With an urban definition: the coverage table of urban and of rural residents (``group``).
    service : DataFrame or None
        Per facility whose type has a service population (服务人口): the residents within its tier
        time, and whether that exceeds the standard's figure.
    accessibility : DataFrame or None
        Supply–demand per unit (and the study area), category and population group: facilities and
        capacity per 1,000, the 2SFCA/E2SFCA/G2SFCA capacity within reach per 1,000, coverage at the
        group's speed, vs a standard ratio (:func:`lifecircle.measure.accessibility.accessibility_table`).
    equity : DataFrame or None
        Gini, Theil (decomposed), Palma, gaps across residents and units
        (:func:`lifecircle.measure.equity.equity_table`).
    isochrone_method : str
        How :meth:`write` draws the service areas: ``"grid"`` (default) or ``"exact"``
        (see :mod:`lifecircle.present.isochrones`).
    """

    config: AnalysisConfig
    network: WalkNetwork
    facilities: Any
    residents: Any
    coverage: pd.DataFrame
    times: WalkingTimes
    summary: dict[str, Any] = field(default_factory=dict)
    units: Any = None
    census_methods: pd.DataFrame | None = None
    isochrones: Any = None
    gaps: Any = None
    standard_decisions: pd.DataFrame | None = None
    tiers: pd.DataFrame | None = None
    urban_rural: pd.DataFrame | None = None
    service: pd.DataFrame | None = None
    accessibility: pd.DataFrame | None = None
    equity: pd.DataFrame | None = None
    isochrone_method: str = "grid"
    _graph_released: bool = field(default=False, repr=False, compare=False)

    def category_share(self, category: str, minutes: float | None = None, unit: str = STUDY_AREA) -> float:
        """Coverage share of a category (or ``all``) at ``minutes`` (default: the headline threshold)."""
        m = self.config.headline_minutes if minutes is None else float(minutes)
        row = self.coverage[(self.coverage.unit == unit) & (self.coverage.category == category)
                            & (self.coverage.minutes == m)]
        if row.empty:
            raise InputDataError(f"no coverage row for unit={unit!r}, category={category!r}, minutes={m:g}")
        return float(row["share"].iloc[0])

    def write(self, out_dir: str | os.PathLike[str] | OutputRun, *, isochrones: bool | str = "auto",
              gaps: bool = True, facility_isochrones: bool = False, isochrone_layers: str = "one",
              out_crs: Any = None) -> dict[str, Path]:
        """Write the outputs into ``out_dir`` as one run, committed at once (see :mod:`lifecircle.present.outputs`).

        The folder then holds this run's files and no file of an earlier run (your own files stay);
        an error or interruption leaves the earlier run as it was. ``out_dir`` may also be an open
        :class:`~lifecircle.present.outputs.OutputRun`, to add more files (maps, sites) to the same commit.

        ``isochrones``: ``True`` / ``False`` write or skip ``isochrones.gpkg``; ``"auto"`` writes it at
        every size (drawn by :attr:`isochrone_method`: the grid takes seconds for a million-node city).
        ``gaps=False`` skips ``gaps.gpkg``.
        ``facility_isochrones=True`` adds ``facility_isochrones.gpkg``: each facility's own service
        areas. Service areas are one layer with ``category`` and ``minutes`` fields;
        ``isochrone_layers="per-category"`` writes one layer per category and threshold instead.
        Every layer carries its QGIS style and units.gpkg the shares (see
        :func:`lifecircle.present.outputs.write_analysis_layers`); ``out_crs="gcj02"`` adds
        ``residents_gcj02.gpkg`` and ``facilities_gcj02.gpkg`` for AMap users.

        Returns ``{file name: final path}``.
        """
        from .present.outputs import output_run

        with output_run(out_dir, command="analyze") as run:
            names = self._write_into(run, isochrones=isochrones, gaps=gaps, facility_isochrones=facility_isochrones,
                                     isochrone_layers=isochrone_layers, out_crs=out_crs)
            paths = {name: run.final(name) for name in names}
        log.info("wrote %s", ", ".join(p.name for p in paths.values()))
        return paths

    def areas(self, *, gaps: bool = True, isochrones: bool | str = "auto", release: bool = False) -> None:
        """Draw the gap areas (:attr:`gaps`) and the service areas (:attr:`isochrones`) that :meth:`write`
        writes, unless they are there already (drawn by :attr:`isochrone_method`).

        :meth:`write` calls it; call it first to draw maps from the areas while the files are written.
        ``release=True`` then drops the access graph and the distance fields (``times.graph`` becomes None,
        ``times.distances_m`` empty: ~0.5 GB for a 4M-node city), before the service areas are contoured:
        the outputs need neither, but no more areas can be drawn from this analysis (facility service
        areas, site planning: analyse again or :func:`load_analysis`). ``lifecircle analyze`` does it.
        A city's service areas (grids of 2M–16M cells: a million-node city's) are drawn with their WKB for
        :meth:`write` (16 bytes a vertex: ~0.13 GB), held until they are written or freed.

        Examples
        --------
        >>> from lifecircle.datasets import toy_town_osm
        >>> a = analyze(toy_town_osm())
        >>> a.areas()
        >>> sorted(set(a.isochrones["minutes"])), a.gaps is not None
        ([5.0, 10.0, 15.0], True)
        """
        from .plan.gaps import find_gaps
        from .present.isochrones import _service_areas_begun, warm_up_compiled

        draw = isochrones and self.isochrones is None and self.times.graph is not None
        if draw and gaps and self.gaps is None and self.isochrone_method == "grid":
            warm_up_compiled(self.network)  # while the gap areas are drawn
        if gaps and self.gaps is None:
            self.gaps = find_gaps(self)
        if draw:  # "auto": at every size
            # service_areas(self, method=...), a city's with the WKB that isochrones.gpkg takes made as drawn
            finish = _service_areas_begun(self, method=self.isochrone_method, wkb=True)
            if release:
                self._release_walking_graph()
            self.isochrones = finish()
        elif isochrones and self.isochrones is None:
            if self._graph_released:
                raise InputDataError(_RELEASED)
            log.info("no isochrones: a tiled run keeps no single access graph")
        if release and not self._graph_released:  # no service areas were drawn here
            self._release_walking_graph()

    def _release_walking_graph(self) -> None:
        from dataclasses import replace

        self.times = replace(self.times, graph=None, distances_m={})
        self._graph_released = True

    def _write_into(self, run: OutputRun, *, isochrones: bool | str, gaps: bool,
                    facility_isochrones: bool, isochrone_layers: str = "one", out_crs: Any = None) -> list[str]:
        """Stage the outputs in ``run``; returns their names (:data:`OUTPUT_FILES` first)."""
        from .present.outputs import write_analysis_layers, write_service_areas

        written = list(OUTPUT_FILES)
        run.table(self.coverage_for_csv(), "coverage.csv")
        run.table(self.unsnapped(), "unsnapped.csv")
        from .measure.stored import save_run_state

        save_run_state(run.path("run_state.npz"), self.network, self.times, config=self.config)
        rejected = self.facilities.attrs.get("rejected")
        if rejected is not None and len(rejected):
            run.table(rejected, "facilities_rejected.csv")
            written.append("facilities_rejected.csv")
        merged = self.facilities.attrs.get("merged")
        if merged is not None and len(merged):
            run.table(merged, "facilities_merged.csv")
            written.append("facilities_merged.csv")
        isochrones = bool(isochrones)  # "auto": at every size
        self.areas(gaps=gaps, isochrones=isochrones)
        layers = write_analysis_layers(run, self, gaps=self.gaps if gaps else None,
                                       isochrones=self.isochrones if isochrones else None,
                                       isochrone_layers=isochrone_layers, out_crs=out_crs)
        written += [n for n in layers if n not in written]
        if facility_isochrones and self._graph_released:
            raise InputDataError(_RELEASED)
        if facility_isochrones and self.times.graph is not None:
            from .present.isochrones import facility_service_areas

            write_service_areas(run, facility_service_areas(self, method=self.isochrone_method),
                                "facility_isochrones.gpkg", layers=isochrone_layers)
            written.append("facility_isochrones.gpkg")
        if self.census_methods is not None:
            run.table(self.census_methods, "census_methods.csv")
            written.append("census_methods.csv")
        if self.standard_decisions is not None:
            run.table(self.standard_decisions_for_csv(), "standard_decisions.csv")
            written.append("standard_decisions.csv")
        units_service = None if self.service is None else self.service.attrs.get("units")
        for name, table in (("urban_rural.csv", self.urban_rural), ("facility_service.csv", self.service),
                            ("units_service.csv", units_service), ("accessibility.csv", self.accessibility),
                            ("equity.csv", self.equity)):
            if table is not None:
                run.table(table, name)
                written.append(name)
        if "unit_ranking" in self.summary:
            run.table(pd.DataFrame(self.summary["unit_ranking"]), "units_ranking.csv")
            written.append("units_ranking.csv")
        if self.tiers is not None:
            run.table(self.tiers.round({"share": 6, "covered_population": 3, "population": 3}), "tiers.csv")
            written.append("tiers.csv")
        run.json(self.summary, "summary.json")
        return written

    def standard_decisions_for_csv(self) -> pd.DataFrame:
        """Every facility found: kept or dropped by the standard, with the type or the reason."""
        d = self.standard_decisions
        cols = [c for c in ("category", "subcategory", "name", "source", "osm_type", "osm_id", "kept", "facility_type",
                            "reason") if c in d.columns]
        out = pd.DataFrame(d[cols])
        out.insert(3, "lon", d.geometry.x.round(7).to_numpy())
        out.insert(4, "lat", d.geometry.y.round(7).to_numpy())
        return out

    def coverage_for_csv(self) -> pd.DataFrame:
        return self.coverage.round({"share": 6, "covered_population": 3, "population": 3})

    def unsnapped(self) -> pd.DataFrame:
        """Residents and facilities farther than ``max_snap_m`` from any walkable street."""
        rows = []
        for kind, gdf in (("resident", self.residents), ("facility", self.facilities)):
            bad = gdf[~gdf["snapped"]]
            if len(bad):
                rows.append(pd.DataFrame({
                    "kind": kind, "index": bad.index, "lon": bad.geometry.x, "lat": bad.geometry.y,
                    "snap_dist_m": bad["snap_dist_m"].round(1),
                    "population": bad["population"] if "population" in bad else np.nan,
                    "category": bad["category"] if "category" in bad else None,
                    "name": bad["name"] if "name" in bad else None,
                }))
        cols = ["kind", "index", "lon", "lat", "snap_dist_m", "population", "category", "name"]
        return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=cols)

    def report(self, *, warnings: bool = True) -> str:
        """A readable summary for the terminal (``warnings=False`` when they were logged already)."""
        s = self.summary
        cfg = self.config
        head = cfg.headline_minutes
        lines = [
            f"lifecircle {s['lifecircle_version']} — {s['network']['nodes']:,} nodes, "
            f"{s['network']['length_km']:,.1f} km of walkable streets; "
            f"{s['residents']['population']:,.0f} residents ({s['residents']['population_source']}"
            f"{', ESTIMATED from buildings' if s['residents']['population_is_estimate'] else ''})",
            f"walking {cfg.walk_speed_kmh:g} km/h, target {cfg.target:.0%} within {head:g} min",
            *self._standard_lines(),
            "",
            f"{'category':<14}{'facilities':>11}" + "".join(f"{f'≤{m:g} min':>10}" for m in cfg.minutes)
            + f"{'target':>9}{'to cover':>12}",
        ]
        for cat, c in s["categories"].items():
            shares = "".join(f"{c['shares_by_minutes'][f'{m:g}']:>10.1%}" for m in cfg.minutes)
            ok = "met" if c["meets_target"] else "NOT met"
            lines.append(f"{cat:<14}{c['facilities']:>11,}{shares}{ok:>9}{c['population_to_cover']:>12,.0f}")
        lines += self._urban_lines()
        merged = s["facilities"].get("merged_duplicates", 0)
        if merged:
            lines.append(f"{merged:,} {'facility was' if merged == 1 else 'facilities were'} the same place as "
                         "another (OSM and list, or an OSM node and its area) and merged: see facilities_merged.csv")
        lines += self._equity_lines()
        if "units" in s:
            lines += ["", self._unit_lines()]
        for w in s.get("warnings", []) if warnings else []:
            lines.append(f"warning: {w}")
        lines.append(OSM_CREDIT)
        return "\n".join(lines)


    def _urban_lines(self) -> list[str]:
        """Urban and rural residents side by side (the target is for urban residents)."""
        ur = self.summary.get("urban_rural", {})
        if "categories" not in ur:
            return [f"urban residents: {ur['method']}"] if ur.get("method") else []
        lines = ["", f"urban vs rural, ≤{self.config.headline_minutes:g} min ({ur['method']}):",
                 f"{'category':<14}{'urban':>9}{'rural':>9}{'gap (pp)':>10}{'85 % check':>12}"]
        for cat, c in ur["categories"].items():
            def pct(v):
                return "-" if v is None else f"{v:.1%}"
            gap = "-" if c["gap_pp"] is None else f"{c['gap_pp']:+.1f}"
            check = "-" if c["urban_meets_target"] is None else ("met" if c["urban_meets_target"] else "NOT met")
            lines.append(f"{cat:<14}{pct(c['urban']):>9}{pct(c['rural']):>9}{gap:>10}{check:>12}")
        return lines

    def _equity_lines(self) -> list[str]:
        """Supply–demand (2SFCA per 1,000) and its inequality, a line per category and group."""
        eq = self.equity
        if eq is None or not len(eq):
            return []
        level = "units" if (eq["level"] == "units").any() else "residents"
        t = eq[(eq.indicator == "access_2sfca") & (eq.level == level)]
        acc = self.accessibility
        study = acc[acc.unit == STUDY_AREA].set_index(["category", "group"]) if acc is not None else None
        lines = ["", f"supply–demand: 2SFCA capacity within {self.config.headline_minutes:g} min per 1,000 people of "
                     f"the category's demand group, and its inequality across {level} (accessibility.csv, equity.csv):",
                 f"{'category':<14}{'group':<12}{'per 1,000':>10}{'standard':>10}{'Gini':>7}{'Theil':>7}{'Palma':>7}"
                 f"{'urban−rural':>13}  lowest unit"]

        def num(v, fmt):
            return "-" if v is None or v != v else ("inf" if v == float("inf") else format(v, fmt))
        for r in t.itertuples():
            std = study.loc[(r.category, r.group), "standard_per_1000"] if study is not None else None
            lines.append(f"{r.category:<14}{_pad(str(r.group), 12)}{num(r.mean, '.3g'):>10}{num(std, 'g'):>10}"
                         f"{num(r.gini, '.2f'):>7}{num(r.theil, '.2f'):>7}{num(r.palma, '.2f'):>7}"
                         f"{num(r.urban_rural_gap, '+.3g'):>13}  "
                         + ("-" if not isinstance(r.worst_unit, str) else f"{r.worst_unit} {num(r.worst_value, '.3g')}"))
        return lines

    def _standard_lines(self) -> list[str]:
        """The facility definition next to the number, and the tiers of a tiered standard."""
        st = self.summary.get("standard")
        if not st:
            return []
        dropped = sum(sum(v.values()) for v in st.get("dropped", {}).values())
        lines = [f"facilities counted: {st['name']} — {st['title']} ({sum(st['kept'].values()):,} kept, "
                 f"{dropped:,} dropped: see standard_decisions.csv)"]
        if st.get("tiers"):
            lines.append("tiers (each type at its own walking time; complete = every type within its tier):")
            for key, t in st["tiers"].items():
                when = "" if t["tier_minutes"] is None else f" ≤{t['tier_minutes']:g} min"
                lines.append(f"  {key:<26}{when:>10}{t['share']:>9.1%}")
        return lines

    def _unit_lines(self) -> str:
        """Per-unit shares at the headline threshold (a unit below the target is marked ✗)."""
        cov = self.coverage[(self.coverage.unit != STUDY_AREA) & (self.coverage.minutes == self.config.headline_minutes)]
        cats = list(dict.fromkeys(cov["category"]))
        wide = cov.pivot(index="unit", columns="category", values="share").reindex(columns=cats)
        pop = cov.groupby("unit")["population"].first()
        methods = (self.census_methods.set_index("unit")["method"] if self.census_methods is not None else None)
        head = f"{'unit':<12}{'residents':>12}" + "".join(f"{c:>14}" for c in cats)
        rows = [f"per unit, ≤{self.config.headline_minutes:g} min (✗ = below the {self.config.target:.0%} target)"
                + (", census spread by: see census_methods.csv" if methods is not None else ""), head]
        for unit in wide.sort_values(cats[-1]).index:
            cells = "".join(f"{(f'{v:.1%}' + (' ' if v >= self.config.target else '✗')):>14}"
                            for v in wide.loc[unit].to_numpy())
            rows.append(f"{_pad(unit, 12)}{pop[unit]:>12,.0f}{cells}")
        return "\n".join(rows)


def _pad(text: str, width: int) -> str:
    """Left-justify counting CJK characters as two columns (for terminal tables)."""
    import unicodedata

    cols = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
    return text + " " * max(1, width - cols)


def _check_swapped_inputs(net, rec: "_Log") -> None:
    """Refuse a facility list or residents file whose points lie on the streets only with lon and lat swapped."""
    from .measure.crs_checks import check_swapped

    fix = "pass --lon-column/--lat-column to name the right columns, or fix the file"
    for key in ("facilities", "population"):
        frame, path = rec.frames.get(key, (None, None))
        if frame is not None and len(frame):
            import shapely

            geoms = frame.geometry.values
            # a point is its own representative point (GEOS would still make a copy of each: 0.3 s per 354k)
            if not (shapely.get_type_id(geoms) == 0).all():
                geoms = shapely.point_on_surface(geoms)
            check_swapped(net, shapely.get_x(geoms), shapely.get_y(geoms), label=f"{key} {Path(path).name}", fix=fix)


def _check_inputs(net, inputs: "Inputs", rec: "_Log") -> dict[str, Any]:
    """What the readers noticed (encodings, duplicates, repairs) and the CRS checks of every file input.

    The readers' warnings go into ``rec.warnings`` (marked as logged already: the readers logged
    them); returns the ``crs_checks`` block of summary.json.
    """
    from .measure.crs_checks import check_input_crs

    options = {"facilities": "--facilities-crs", "population": "--population-crs", "units": "--units-crs"}
    checks: dict[str, Any] = {}
    for key, option in options.items():
        frame, path = rec.frames.get(key, (None, None))
        if frame is None or len(frame) == 0:
            continue
        for w in frame.attrs.get("warnings", []):
            if w not in rec.warnings:
                rec.warnings.append(w)
                rec.logged.append(w)
        if rec.inputs.get(key) and frame.attrs.get("encoding"):
            rec.inputs[key]["encoding"] = frame.attrs["encoding"]
        if frame.attrs.get("crs_declared") is None:
            continue
        osm_layer = rec.frames.get("osm_facilities", (None, None))[0] if key == "facilities" else None
        c = check_input_crs(net, frame, input=key, label=f"{key} {Path(path).name}", option=option, reference=osm_layer)
        checks[key] = c.to_dict()
        if c.warning:
            rec.warnings.append(c.warning)
    return checks


def _input_record(path: str | os.PathLike[str] | None, *, sha256: str | None = None, **extra: Any
                  ) -> dict[str, Any] | None:
    if path is None:
        return None
    p = Path(path)
    return {"path": str(p.resolve()), "sha256": sha256 or file_sha256(p), "bytes": p.stat().st_size, **extra}


# --------------------------------------------------------------------------------------------
# what analyze reads, grouped as the read stage uses it


@dataclass(frozen=True)
class NetworkInput:
    """Where the walking network comes from: an OSM file, an Overpass place, or a ready network."""

    osm: str | os.PathLike[str] | None = None
    place: str | None = None
    network: WalkNetwork | None = None
    cache: bool = True


@dataclass(frozen=True)
class FacilityInput:
    """A facility list (path or GeoDataFrame) added to — or replacing — the OSM facilities."""

    source: Any = None
    replace_osm: bool = False
    crs: Any = None
    category_column: str | None = "category"
    name_column: str | None = None
    lon_column: str | None = None
    lat_column: str | None = None
    encoding: str | None = None
    capacity_column: str | None = None


@dataclass(frozen=True)
class PopulationInput:
    """Residents: a file or GeoDataFrame, else the building estimate (``m2_per_person``)."""

    source: Any = None
    crs: Any = None
    population_column: str | None = None
    lon_column: str | None = None
    lat_column: str | None = None
    m2_per_person: float | None = None
    encoding: str | None = None
    group_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class UnitInput:
    """Area units: a polygon file or GeoDataFrame, or the OSM boundaries of ``admin_level``."""

    source: Any = None
    crs: Any = None
    name_column: str | None = None
    admin_level: int | str | None = None
    encoding: str | None = None
    parent_column: str | None = None


@dataclass(frozen=True)
class CensusInput:
    """Census counts per unit, spread onto homes inside each unit."""

    source: Any = None
    join: str = "auto"
    population_column: str | None = None
    clip_to_network: bool = False


@dataclass(frozen=True)
class UrbanInput:
    """Which residents are urban (城镇): a polygon file or GeoDataFrame, ``"names"`` (街道 urban, 镇/乡
    rural), ``"landuse"`` (OSM built-up landuse), and/or a units column (:mod:`lifecircle.read.urban`)."""

    source: Any = None
    column: str | None = None


@dataclass(frozen=True)
class AccessInput:
    """Supply–demand options (:mod:`lifecircle.measure.accessibility`): a group's walking speed
    (``{"age65": 3.0}``), whose people load each category's facilities (``{"elderly_care": "age65"}``)
    and standard capacities per 1,000 that replace ``data/standards/ratios.toml`` (``{"elderly_care": 30}``)."""

    group_speed_kmh: dict = field(default_factory=dict)
    demand_groups: dict = field(default_factory=dict)
    ratio_per_1000: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Inputs:
    """Everything :func:`analyze` reads; each group goes to one read step.

    Examples
    --------
    >>> from lifecircle.datasets import toy_town_osm
    >>> run_analysis(Inputs(NetworkInput(osm=toy_town_osm()))).summary["residents"]["population_is_estimate"]
    True
    """

    network: NetworkInput
    facilities: FacilityInput = FacilityInput()
    population: PopulationInput = PopulationInput()
    units: UnitInput = UnitInput()
    census: CensusInput = CensusInput()
    urban: UrbanInput = UrbanInput()
    access: AccessInput = AccessInput()


@dataclass
class _Log:
    """What the read steps record for summary.json: input files (with sha256) and warnings."""

    inputs: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    standard_why: str = ""
    urban_method: str = ""
    #: the frames read from files, as (frame, path), for the input checks
    frames: dict[str, Any] = field(default_factory=dict)
    #: warnings the readers logged already
    logged: list[str] = field(default_factory=list)
    crs_checks: dict[str, Any] = field(default_factory=dict)
    components: dict[str, Any] = field(default_factory=dict)


def analyze(
    osm: str | os.PathLike[str] | None = None,
    *,
    place: str | None = None,
    network: WalkNetwork | None = None,
    facilities: str | os.PathLike[str] | Any | None = None,
    replace_osm_facilities: bool = False,
    population: str | os.PathLike[str] | Any | None = None,
    units: str | os.PathLike[str] | Any | None = None,
    config: AnalysisConfig | None = None,
    taxonomy: Taxonomy | str | os.PathLike[str] | None = None,
    facilities_crs: Any = None,
    population_crs: Any = None,
    units_crs: Any = None,
    admin_level: int | str | None = None,
    census: str | os.PathLike[str] | pd.DataFrame | None = None,
    census_join: str = "auto",
    census_population_column: str | None = None,
    clip_units_to_network: bool = False,
    category_column: str | None = "category",
    name_column: str | None = None,
    population_column: str | None = None,
    unit_name: str | None = None,
    lon_column: str | None = None,
    lat_column: str | None = None,
    m2_per_person: float | None = None,
    urban: Any = None,
    urban_column: str | None = None,
    capacity_column: str | None = None,
    group_columns: tuple[str, ...] | list[str] = (),
    group_speed_kmh: dict | None = None,
    demand_groups: dict | None = None,
    ratio_per_1000: dict | None = None,
    unit_parent: str | None = None,
    encoding: str | None = None,
    progress: Callable[[str], None] | None = None,
    walking_times_fn: Callable[..., WalkingTimes] | None = None,
    cache_network: bool = True,
) -> Analysis:
    """Run the whole 15-minute life-circle analysis.

    Parameters
    ----------
    osm : path, optional
        Local OSM file (.osm.pbf/.osm/.osm.bz2): the walking network, and — unless
        ``replace_osm_facilities`` — facilities and (without ``population``) the building-based
        population estimate.
    place : str, optional
        Instead of ``osm``: download the network from Overpass (OSMnx, cached).
    network : WalkNetwork, optional
        A network you already built (skips reading it again).
    facilities : path or GeoDataFrame, optional
        A list of facilities **added to** the OSM ones (or replacing them with
        ``replace_osm_facilities=True``).
    population : path or GeoDataFrame, optional
        Residents (points/polygons with a count, or a raster). Without it the population is
        estimated from OSM residential buildings and flagged as an estimate.
    units : path or GeoDataFrame, optional
        District/subdistrict polygons; coverage is also reported per unit.
    admin_level : int or str, optional
        Instead of ``units``: the OSM file's (or place's) administrative boundaries of this
        level (6 or ``"district"`` = 区/县, 8 or ``"subdistrict"`` = 街道/镇).
    census : path or DataFrame, optional
        Census counts per unit (:func:`lifecircle.read.census.read_census`), spread onto residential
        buildings / landuse / streets / area inside each unit
        (:func:`lifecircle.read.census.residents_from_census`); needs units, replaces ``population``.
    census_join : {"auto", "code", "name"}
        How census rows find their unit (codes when both sides have them, else names).
    urban : path, GeoDataFrame, "names" or "landuse", optional
        Which residents are urban (the 85 % target is for urban residents): residents inside an
        urban-area polygon layer; ``"names"``: units named 街道 are urban, 镇/乡 rural; ``"landuse"``:
        inside OSM built-up landuse. Coverage is then reported for urban and rural residents side by
        side. Without it (and without ``urban_column``) every resident counts as urban.
    urban_column : str, optional
        A column of the units saying urban or rural (yes/no, 城镇/乡村, 街道/镇/乡).
    clip_units_to_network : bool
        With a census: clip the units to the network's extent and scale each count by the
        residential share kept, instead of the error for units the network does not cover.
    capacity_column : str, optional
        A column of the facility list with each facility's capacity (beds, m², doctors) for the
        supply–demand ratios (default: 1 per facility).
    group_columns : list of str, optional
        Columns of the population points counting groups (``age65``…): coverage and accessibility
        are reported per group too.
    group_speed_kmh : dict, optional
        A group's own walking speed, e.g. ``{"age65": 3.0}`` (the distances are reused).
    demand_groups : dict, optional
        Whose people load a category's facilities, e.g. ``{"elderly_care": "age65"}`` (default everyone).
    ratio_per_1000 : dict, optional
        Standard capacity per 1,000 people by category, replacing ``data/standards/ratios.toml``.
    unit_parent : str, optional
        The units' column naming their district (default: found by name), for the Theil decomposition.
    config : AnalysisConfig
        Thresholds, speed, target, snapping distance, categories.
    encoding : str, optional
        Text encoding of the CSV and shapefile inputs (``utf-8``, ``gb18030``…); by default each
        file's is detected (UTF-8 or GB18030, never a mix: see :func:`lifecircle.read.files.read_table`).
        Every file input is also checked for Chinese web-map offsets (summary.json ``crs_checks``,
        see :mod:`lifecircle.measure.crs_checks`).
    cache_network : bool
        Reuse the walking network parsed before from the same OSM file (same SHA-256), kept in
        ``$LIFECIRCLE_CACHE/networks`` (see :mod:`lifecircle.read.cache`).
    walking_times_fn : callable, optional
        Replaces :func:`~lifecircle.measure.walking_times.walking_times` (same signature), e.g.
        ``functools.partial(lifecircle.scale.partition.walking_times_tiled, tile_m=3000, client=client)``
        to split a very large area into tiles with the same result.

    Examples
    --------
    >>> from lifecircle.datasets import toy_town_osm
    >>> a = analyze(toy_town_osm())
    >>> a.summary["residents"]["population_is_estimate"]
    True
    >>> round(a.category_share("health"), 3) >= 0
    True
    """
    inputs = Inputs(
        NetworkInput(osm, place, network, cache_network),
        FacilityInput(facilities, replace_osm_facilities, facilities_crs, category_column, name_column,
                      lon_column, lat_column, encoding, capacity_column),
        PopulationInput(population, population_crs, population_column, lon_column, lat_column, m2_per_person,
                        encoding, tuple(group_columns or ())),
        UnitInput(units, units_crs, unit_name, admin_level, encoding, unit_parent),
        CensusInput(census, census_join, census_population_column, clip_units_to_network),
        UrbanInput(urban, urban_column),
        AccessInput(dict(group_speed_kmh or {}), dict(demand_groups or {}), dict(ratio_per_1000 or {})),
    )
    return run_analysis(inputs, config=config, taxonomy=taxonomy, progress=progress,
                        walking_times_fn=walking_times_fn)


def check_inputs(inputs: Inputs, taxonomy: Any = None, config: AnalysisConfig | None = None) -> None:
    """Every input path exists and is readable, and ``m2_per_person`` is valid (one error listing all)."""
    urban = inputs.urban.source
    standard = config.standard if config is not None else None
    check_input_files(osm=inputs.network.osm, facilities=inputs.facilities.source, population=inputs.population.source,
                      units=inputs.units.source, census=inputs.census.source, taxonomy=taxonomy,
                      urban=None if isinstance(urban, str) and urban in ("names", "landuse") else urban,
                      standard=standard if isinstance(standard, str) and standard.lower().endswith(".toml") else None)
    check_values(m2_per_person=inputs.population.m2_per_person)
    by_units = inputs.urban.column is not None or (isinstance(urban, str) and urban == "names")
    if by_units and inputs.units.source is None and inputs.units.admin_level is None:
        raise InputDataError("--urban names / --urban-column need units: add --units FILE or --admin-level 8")


def run_analysis(inputs: Inputs, *, config: AnalysisConfig | None = None,
                 taxonomy: Taxonomy | str | os.PathLike[str] | None = None,
                 progress: Callable[[str], None] | None = None,
                 walking_times_fn: Callable[..., WalkingTimes] | None = None) -> Analysis:
    """:func:`analyze` on an :class:`Inputs`: read -> measure -> summarise, one stage call each."""
    check_inputs(inputs, taxonomy, config)  # every path and number, before anything is read
    cfg = config or AnalysisConfig()
    _check_access_options(inputs, cfg)
    say = progress or (lambda msg: log.info(msg))
    tax = taxonomy if isinstance(taxonomy, Taxonomy) else load_taxonomy(taxonomy)
    rec = _Log()

    say("reading the walking network")
    osm = _read_osm_layers(inputs, tax)  # one pass over the OSM file for every step below
    net = _read_network(inputs.network, rec, osm)
    say("finding facilities")
    fac = _read_facilities(inputs.facilities, inputs.network, tax, cfg, rec, osm)
    standard, fac, decisions = _apply_standard(fac, cfg, net, rec)
    unit_layer = _read_units(inputs.units, inputs.network, rec, osm)
    say("reading residents")
    res, census_methods = _read_residents(inputs.population, inputs.census, inputs.network, net, unit_layer, rec,
                                          osm)
    unit_layer = res.attrs.get("clipped_units", unit_layer)  # --clip-units-to-network: the parts inside

    _check_swapped_inputs(net, rec)
    say(f"walking times for {len(res):,} residents to {len(fac):,} facilities")
    wt = (walking_times_fn or walking_times)(net, res, fac, config=cfg)
    residents, facilities_out = _attach_times(res, fac, wt, unit_layer if census_methods is None else None, rec)

    say("coverage")
    cov = _coverage(residents, cfg, by_unit=unit_layer is not None)
    urban_rural = _urban_rural(inputs.urban, inputs.network, unit_layer, residents, cfg, rec, osm)
    tiers = _tier_coverage(standard, wt, facilities_out, residents, cfg) if standard.tiered else None
    service = _service_population(standard, wt, facilities_out, residents, unit_layer, cfg, rec)
    say("supply–demand and equity")
    accessibility, equity, access_summary = _supply_demand(inputs, wt, facilities_out, residents, unit_layer, cfg, rec,
                                                           net=net)
    _check_measurement(net, res, fac, wt, inputs, cfg, rec)
    summary = _summary(cfg, tax, inputs, net, residents, facilities_out, cov, census_methods, unit_layer is not None,
                       rec)
    summary["standard"] = _standard_summary(standard, rec, decisions, tiers)
    summary["urban_rural"] = _urban_summary(urban_rural, cfg, rec)
    if unit_layer is not None:
        summary["unit_ranking"] = _unit_ranking(cov, unit_layer, cfg).to_dict("records")
    if service is not None:
        summary["service_population"] = _service_summary(service)
    summary.update(access_summary)
    for w in rec.warnings:
        if w not in rec.logged:
            log.warning(w)
    return Analysis(cfg, net, facilities_out, residents, cov, wt, summary, units=unit_layer,
                    census_methods=census_methods, standard_decisions=decisions, tiers=tiers,
                    urban_rural=urban_rural, service=service, accessibility=accessibility, equity=equity)


# --------------------------------------------------------------------------------------------
# the read steps


def _read_osm_layers(inputs: Inputs, tax: Taxonomy):
    """The OSM file's layers that the run needs, in one pass (or from the cache); ``None`` without a file.

    The network unless one is given; facilities unless the list replaces them; buildings for the
    estimate or a census; boundaries for ``admin_level`` units.
    """
    if inputs.network.osm is None:
        return None
    from .read.layers import layers_needed, read_layers

    needed = layers_needed(
        network=inputs.network.network is None,
        facilities=not (inputs.facilities.replace_osm and inputs.facilities.source is not None),
        buildings=inputs.census.source is not None or inputs.population.source is None,
        boundaries=inputs.units.source is None and inputs.units.admin_level is not None,
        landuse=isinstance(inputs.urban.source, str) and inputs.urban.source == "landuse",
    )
    if not needed:
        return None
    log.info("reading %s from %s", ", ".join(needed), Path(inputs.network.osm).name)
    return read_layers(inputs.network.osm, layers=needed, taxonomy=tax, cache=inputs.network.cache)


def _read_network(src: NetworkInput, rec: _Log, osm=None) -> WalkNetwork:
    if src.network is not None:
        net = src.network
    elif src.osm is not None:
        net = network_from_osm(osm if osm is not None else src.osm, cache=src.cache)
    elif src.place is not None:
        net = network_from_place(src.place)
    else:
        raise InputDataError("no street network: give an OSM file (--osm FILE), a place (--place NAME) or --example")
    if src.osm is not None:
        rec.inputs["osm"] = _input_record(src.osm, sha256=osm.sha256 if osm is not None else None)
    if src.place is not None:
        rec.inputs["place"] = {"name": src.place, "source": "Overpass API via OSMnx"}
    return net


def _read_facilities(src: FacilityInput, where: NetworkInput, tax: Taxonomy, cfg: AnalysisConfig, rec: _Log,
                     osm=None):
    layers = []
    with_osm = not (src.replace_osm and src.source is not None)
    if where.osm is not None and with_osm:
        layers.append(facilities_from_osm(osm if osm is not None else where.osm, taxonomy=tax))
    elif where.place is not None and with_osm:
        from .read.facilities import facilities_from_place

        layers.append(facilities_from_place(where.place, taxonomy=tax))
    if src.source is not None:
        if isinstance(src.source, (str, os.PathLike)):
            rec.inputs["facilities"] = _input_record(src.source, crs=str(src.crs or "wgs84"),
                                                     mode="replace" if src.replace_osm else "add",
                                                     category_column=src.category_column,
                                                     name_column=src.name_column, capacity_column=src.capacity_column)
            layers.append(facilities_from_file(src.source, category_column=src.category_column,
                                               name_column=src.name_column, lon_column=src.lon_column,
                                               lat_column=src.lat_column, crs=src.crs, taxonomy=tax,
                                               encoding=src.encoding, capacity_column=src.capacity_column))
            rec.frames["facilities"] = (layers[-1], src.source)
        else:
            given = src.source.copy()
            given.attrs.pop("rejected", None)  # pandas carries a whole file's attrs into any subset of it
            if src.capacity_column is not None:
                if src.capacity_column not in given:
                    raise InputDataError(f"the facilities have no column {src.capacity_column!r}; fix capacity_column")
                given["capacity"] = pd.to_numeric(given[src.capacity_column], errors="coerce")
            layers.append(given)
    if layers and layers[0] is not rec.frames.get("facilities", (None,))[0]:
        rec.frames["osm_facilities"] = (layers[0], None)  # the names a list is matched against
    fac = _merge_duplicates(layers, cfg, rec)
    rec.inputs["taxonomy"] = (_input_record(tax.source) if tax.source != "builtin" and Path(tax.source).is_file()
                              else None)
    return fac


def _merge_duplicates(layers, cfg: AnalysisConfig, rec: _Log):
    """The layers combined, the same place in two of them merged (never two rows of one list)."""
    fac = combine_facilities(*layers)
    layer = np.repeat(np.arange(len(layers)), [len(l) for l in layers])
    fac = deduplicate(fac, layer=layer)
    merged = fac.attrs.get("merged")
    fac = fac[fac["category"].isin(cfg.categories)].reset_index(drop=True) if len(fac) else fac
    if merged is not None:
        merged = merged[merged["category"].isin(cfg.categories)].reset_index(drop=True)
        fac.attrs["merged"] = merged
    return fac


def _read_units(src: UnitInput, where: NetworkInput, rec: _Log, osm=None):
    if src.source is not None and src.admin_level is not None:
        raise InputDataError("give either units (--units FILE) or admin_level (--admin-level), not both")
    if src.source is not None:
        if not isinstance(src.source, (str, os.PathLike)):
            return src.source
        rec.inputs["units"] = _input_record(src.source, crs=str(src.crs or "as declared"), name_column=src.name_column,
                                            parent_column=src.parent_column)
        layer = units_from_file(src.source, name_column=src.name_column, crs=src.crs, encoding=src.encoding,
                                parent_column=src.parent_column)
        rec.frames["units"] = (layer, src.source)
        return layer
    if src.admin_level is None:
        return None
    if where.osm is not None:
        layer = units_from_osm(osm if osm is not None else where.osm, admin_level=src.admin_level)
    elif where.place is not None:
        layer = units_from_place(where.place, admin_level=src.admin_level)
    else:
        raise InputDataError("admin_level needs an OSM file or a place to take the boundaries from")
    rec.inputs["units"] = {"source": "OpenStreetMap boundary=administrative", "admin_level": str(src.admin_level),
                           "count": int(len(layer))}
    return layer


def _read_residents(src: PopulationInput, census: CensusInput, where: NetworkInput, net: WalkNetwork,
                    unit_layer, rec: _Log, osm=None):
    """Residents and, with a census, the per-unit spreading methods (else ``None``)."""
    density = {"m2_per_person": src.m2_per_person} if src.m2_per_person is not None else {}
    if src.group_columns and (census.source is not None or src.source is None):
        raise InputDataError(f"group columns ({', '.join(src.group_columns)}) are counts per point of a population "
                             "file: give --population FILE with those columns (not a census or the building estimate)")
    if census.source is not None:
        if src.source is not None:
            raise InputDataError("give either a census table (--census) or a population file (--population), not both")
        if unit_layer is None:
            raise InputDataError("a census table needs the units it counts: add --units FILE (or --admin-level)")
        table = census.source
        if isinstance(table, (str, os.PathLike)):
            rec.inputs["census"] = _input_record(table, join=census.join, population_column=census.population_column,
                                                 clip_to_network=census.clip_to_network)
            table = read_census(table, population_column=census.population_column)
        res = residents_from_census(unit_layer, table, on=census.join, osm=osm if osm is not None else where.osm,
                                    network=net, clip_to_network=census.clip_to_network, **density)
        return res, res.attrs["census_methods"]
    if src.source is None:
        if where.osm is None:
            raise InputDataError("no population: give --population FILE (points, polygons or a GeoTIFF)")
        res = residents_from_buildings(osm if osm is not None else where.osm, **density)
        rec.warnings.append("population is ESTIMATED from OSM residential buildings (footprint × levels ÷ "
                            f"{res.attrs.get('m2_per_person')} m² per person); give --population for real counts")
        return res, None
    if isinstance(src.source, (str, os.PathLike)):
        rec.inputs["population"] = _input_record(src.source, crs=str(src.crs or "wgs84"),
                                                 population_column=src.population_column,
                                                 group_columns=list(src.group_columns))
        res = residents_from_file(src.source, population_column=src.population_column, lon_column=src.lon_column,
                                  lat_column=src.lat_column, crs=src.crs, encoding=src.encoding,
                                  group_columns=src.group_columns)
        rec.frames["population"] = (res, src.source)
        return res, None
    res = src.source
    missing = [g for g in src.group_columns if g not in res]
    if missing:
        raise InputDataError(f"the residents have no group column {', '.join(map(repr, missing))}; fix group_columns")
    res.attrs.setdefault("population_source", "points")
    return res, None


def _apply_standard(fac, cfg: AnalysisConfig, net: WalkNetwork, rec: _Log):
    """The facilities the standard counts (:mod:`lifecircle.read.standards`), and every decision."""
    from .read.standards import apply_standard, resolve_standard

    standard, why = resolve_standard(cfg.standard, lonlat_bounds=(float(np.min(net.lon)), float(np.min(net.lat)),
                                                                  float(np.max(net.lon)), float(np.max(net.lat)))
                                     if net.n_nodes else None)
    if Path(standard.path).is_file() and standard.name not in ("shanghai-community", "gb50180-2018", "all"):
        rec.inputs["standard"] = _input_record(standard.path)
    kept, decisions = apply_standard(fac, standard)
    rec.standard_why = why
    dropped = int((~decisions["kept"]).sum()) if len(decisions) else 0
    if dropped:
        log.info("standard %s: %d of %d facilities kept, %d dropped (see standard_decisions.csv)",
                 standard.name, len(kept), len(decisions), dropped)
    return standard, kept, decisions


# --------------------------------------------------------------------------------------------
# the measure steps


def _tier_coverage(standard, wt: WalkingTimes, facilities_out, residents, cfg: AnalysisConfig) -> pd.DataFrame:
    """Coverage per facility type at its own tier, and the complete life circle (tiered standards)."""
    from .measure.tiers import tier_coverage, type_column, type_minutes

    tiers = {t.key: (t.category, t.minutes) for t in standard.types if t.category in cfg.categories}
    mins = type_minutes(wt, facilities_out["facility_type"].to_numpy(), config=cfg, types=list(tiers))
    for key in tiers:
        residents[type_column(key)] = mins[type_column(key)].to_numpy()
    return tier_coverage(residents["population"].to_numpy(), mins, tiers, target=cfg.target,
                         units=residents["unit"].to_numpy() if "unit" in residents else None)


def _attach_times(res, fac, wt: WalkingTimes, unit_layer, rec: _Log):
    """Residents and facilities with their walking minutes, snapping and (residents) unit."""
    residents = res.copy()
    for col in wt.minutes.columns:
        residents[col] = wt.minutes[col].to_numpy()
    residents["snapped"] = wt.resident_snap.snapped
    residents["snap_dist_m"] = wt.resident_snap.dist_m.round(2)
    if unit_layer is not None:
        residents["unit"] = assign_units(residents, unit_layer).to_numpy()
        outside = residents["unit"].isna()
        if outside.any():
            rec.warnings.append(f"{int(outside.sum()):,} residents ({residents.loc[outside, 'population'].sum():,.0f} "
                                "people) fall outside every unit; they count in the study-area rows only")
    facilities_out = fac.copy()
    facilities_out["snapped"] = wt.facility_snap.snapped
    facilities_out["snap_dist_m"] = wt.facility_snap.dist_m.round(2)
    for key in ("rejected", "merged"):
        if key in fac.attrs:
            facilities_out.attrs[key] = fac.attrs[key]
    return residents, facilities_out


def _coverage(residents, cfg: AnalysisConfig, *, by_unit: bool) -> pd.DataFrame:
    """The coverage table; adds ``minutes_to_all`` and the ``within_<N>min_<category>`` columns to ``residents``."""
    cov = coverage_table(residents, categories=cfg.categories, minutes=cfg.minutes, target=cfg.target,
                         unit_column="unit" if by_unit else None)
    if len(cfg.categories) > 1:
        residents[minutes_column(ALL)] = residents[[minutes_column(c) for c in cfg.categories]].max(axis=1)
    for cat in _reported_categories(cfg):
        for m in cfg.minutes:
            residents[within_column(cat, m)] = residents[minutes_column(cat)] <= m
    return cov


def _reported_categories(cfg: AnalysisConfig) -> list[str]:
    return list(cfg.categories) + ([ALL] if len(cfg.categories) > 1 else [])


def _check_measurement(net, res, fac, wt: WalkingTimes, inputs: Inputs, cfg: AnalysisConfig, rec: _Log) -> None:
    """Warnings about what the measurement could not use (unsnapped points, CRS offsets, rejected rows)."""
    n_unsnapped = int((~wt.resident_snap.snapped).sum())
    if n_unsnapped:
        people = float(res["population"].to_numpy()[~wt.resident_snap.snapped].sum())
        rec.warnings.append(f"{n_unsnapped:,} resident points ({people:,.0f} people) are more than "
                            f"{cfg.max_snap_m:g} m from any walkable street: counted as not covered "
                            "(listed in unsnapped.csv)")
    f_unsnapped = int((~wt.facility_snap.snapped).sum())
    if f_unsnapped:
        rec.warnings.append(f"{f_unsnapped:,} facilities are more than {cfg.max_snap_m:g} m from any walkable street "
                            "and are not used (listed in unsnapped.csv)")
    rec.crs_checks = _check_inputs(net, inputs, rec)
    rejected = fac.attrs.get("rejected")
    if rejected is not None and len(rejected):
        rec.warnings.append(f"{len(rejected):,} rows of the facility list were not used "
                            "(listed in facilities_rejected.csv)")
    rec.components = _components(net, res, wt, cfg, rec)


#: Below this share of the (snapped) residents on the network's largest connected part, analyze warns.
MIN_MAIN_COMPONENT_POPULATION_SHARE = 0.8


def _components(net, res, wt: WalkingTimes, cfg: AnalysisConfig, rec: _Log) -> dict[str, Any]:
    """Residents and facilities per connected part of the network (where their snapped edge is).

    A resident on a fragment cut off from the main network reaches only the facilities on that
    fragment, so the warning counts people, not nodes.
    """
    labels = net.component_labels()
    n_comp = int(labels.max()) + 1 if labels.size else 0
    pop = res["population"].to_numpy(dtype=float)

    def comp_of(snap):
        return np.where(snap.edge >= 0, labels[net.u[np.maximum(snap.edge, 0)]], -1)

    r_comp, f_comp = comp_of(wt.resident_snap), comp_of(wt.facility_snap)
    on_net = r_comp >= 0
    pop_on = float(pop[on_net].sum())
    pop_per = np.bincount(r_comp[on_net], weights=pop[on_net], minlength=n_comp)
    fac_per = np.bincount(f_comp[f_comp >= 0], minlength=n_comp)
    nodes_per = np.bincount(labels, minlength=n_comp)
    n_fac = int((f_comp >= 0).sum())
    pop_share = float(pop_per[0] / pop_on) if pop_on > 0 else 1.0
    fac_share = float(fac_per[0] / n_fac) if n_fac else 1.0
    shown = np.flatnonzero((pop_per > 0) | (fac_per > 0))[:20]
    block = {
        "count": n_comp,
        "largest": {"nodes_share": float(nodes_per[0] / max(net.n_nodes, 1)), "population_share": pop_share,
                    "facilities_share": fac_share, "population": float(pop_per[0]), "facilities": int(fac_per[0])},
        "snap_main_component": bool(cfg.snap_main_component),
        "note": "residents and facilities counted on the connected part of the network their snapped edge is in; "
                "shares of the snapped ones; parts numbered by size (0 = most nodes)",
        "parts": [{"part": int(c), "nodes": int(nodes_per[c]), "population": float(pop_per[c]),
                   "facilities": int(fac_per[c])} for c in shown],
    }
    if pop_share < MIN_MAIN_COMPONENT_POPULATION_SHARE:
        elsewhere = n_fac - int(fac_per[0])
        rec.warnings.append(
            f"only {pop_share:.0%} of residents are on the walking network's largest connected part "
            f"({nodes_per[0] / max(net.n_nodes, 1):.0%} of its nodes; {n_comp:,} parts in all); {elsewhere:,} of "
            f"{n_fac:,} facilities are elsewhere: people on a cut-off part reach only the facilities on it. Is the "
            "extract clipped, or are footways missing? Use a complete extract, or --snap-to-main-component to join "
            "everyone to the largest part")
    return block


def _urban_rural(src: UrbanInput, where: NetworkInput, unit_layer, residents, cfg: AnalysisConfig,
                 rec: _Log, osm=None) -> pd.DataFrame | None:
    """Flag urban residents (``residents["urban"]``) and measure urban and rural coverage side by side."""
    from .read import urban as _urban

    if src.source is None and src.column is None:
        rec.urban_method = "none given: every resident counts as urban (--urban FILE|names|landuse for a split)"
        return None
    keyword = src.source if isinstance(src.source, str) and src.source in ("names", "landuse") else None
    if keyword is not None or src.source is None:
        rec.inputs["urban"] = {"keyword": keyword, "column": src.column}
    if src.column is not None or (isinstance(src.source, str) and src.source == "names"):
        if unit_layer is None or "unit" not in residents:
            raise InputDataError("--urban names / --urban-column need units (--units FILE or --admin-level 8)")
        if src.column is not None:
            if src.column not in unit_layer:
                raise InputDataError(f"--urban-column {src.column!r} is not a column of the units "
                                     f"({', '.join(map(str, unit_layer.columns[:8]))}); fix --urban-column")
            flags = _urban.urban_from_column(unit_layer[src.column].tolist(), column=src.column)
            rec.urban_method = f"units column {src.column!r}"
        else:
            flags, unknown = _urban.urban_from_names(unit_layer["unit"].tolist())
            rec.urban_method = "unit names: 街道 urban, 镇/乡 rural"
            if unknown:
                rec.warnings.append(f"{len(unknown)} unit name(s) are neither 街道, 镇 nor 乡 and count as rural: "
                                    f"{', '.join(unknown[:5])}; give --urban-column or --urban FILE to decide")
        by_unit = dict(zip(unit_layer["unit"], flags))
        residents["urban"] = residents["unit"].map(by_unit).fillna(False).astype(bool).to_numpy()
    elif isinstance(src.source, str) and src.source == "landuse":
        if where.osm is None:
            raise InputDataError("--urban landuse needs an OSM file (--osm) to read the landuse from")
        built = _urban.built_up_from_osm(osm if osm is not None else where.osm)
        if built.empty:
            raise InputDataError("--urban landuse: the OSM file has no residential/commercial/retail/industrial "
                                 "landuse; give an urban-area layer (--urban FILE)")
        residents["urban"] = _urban.urban_from_polygons(residents, built)
        rec.urban_method = "OSM landuse residential/commercial/retail/industrial, widened 100 m"
    else:
        layer = src.source
        if isinstance(layer, (str, os.PathLike)):
            from .read.files import read_geo

            rec.inputs["urban"] = _input_record(layer, column=src.column)
            layer = read_geo(layer, what="urban areas")
        residents["urban"] = _urban.urban_from_polygons(residents, layer)
        rec.urban_method = "urban-area polygons" + (f" ({Path(src.source).name})"
                                                    if isinstance(src.source, (str, os.PathLike)) else "")
    frames = []
    for group, mask in (("urban", residents["urban"].to_numpy()), ("rural", ~residents["urban"].to_numpy())):
        if mask.any():
            t = coverage_table(residents[mask], categories=cfg.categories, minutes=cfg.minutes, target=cfg.target,
                               unit_column="unit" if "unit" in residents and residents["unit"].notna().any()
                               else None)
            frames.append(t.assign(group=group))
    if not residents["urban"].any():
        rec.warnings.append(f"no resident is urban by {rec.urban_method}: the 85 % check has nobody to count")
    return pd.concat(frames, ignore_index=True) if frames else None


def _service_population(standard, wt: WalkingTimes, facilities_out, residents, unit_layer, cfg: AnalysisConfig,
                        rec: _Log) -> pd.DataFrame | None:
    """Residents within each facility's tier time vs its type's service population (服务人口)."""
    from .measure.tiers import catchment_population

    with_pop = {t.key: t for t in standard.types if t.service_population and t.category in cfg.categories}
    if not with_pop or wt.graph is None:
        return None
    sel = np.flatnonzero(facilities_out["facility_type"].isin(list(with_pop)).to_numpy()
                         & facilities_out["snapped"].to_numpy())
    if sel.size == 0:
        return None
    f = facilities_out.iloc[sel]
    limit_m = f["facility_type"].map(lambda k: with_pop[k].minutes).to_numpy(float) * cfg.metres_per_minute
    pop = catchment_population(wt, sel, limit_m=limit_m, population=residents["population"].to_numpy())
    out = pd.DataFrame({
        "facility": sel, "name": f["name"].to_numpy() if "name" in f else None,
        "category": f["category"].to_numpy(), "facility_type": f["facility_type"].to_numpy(),
        "tier_minutes": limit_m / cfg.metres_per_minute, "catchment_population": pop.round(1),
        "service_population_min": f["facility_type"].map(lambda k: with_pop[k].service_population[0]).to_numpy(),
        "service_population_max": f["facility_type"].map(lambda k: with_pop[k].service_population[1]).to_numpy(),
        "lon": f.geometry.x.round(7).to_numpy(), "lat": f.geometry.y.round(7).to_numpy(),
    })
    out["over_service_population"] = out["catchment_population"] > out["service_population_max"]
    if "unit" in residents and unit_layer is not None:
        from .read.units import assign_units

        out["unit"] = assign_units(f, unit_layer).to_numpy()
    over = int(out["over_service_population"].sum())
    if over:
        rec.warnings.append(f"{over} facilities serve more residents within their walking time than the standard's "
                            "service population (see facility_service.csv)")
    if "unit" in out:
        out.attrs["units"] = _units_below_ratio(out, residents, with_pop)
    return out


def _units_below_ratio(service: pd.DataFrame, residents, with_pop) -> pd.DataFrame:
    """Per unit and type: facilities vs the number its population needs at the standard's service population
    (``ceil(population / upper service population)``, e.g. one 社区卫生服务中心 per 5万 residents)."""
    pop = residents.groupby("unit")["population"].sum()
    rows = []
    for key, rule in with_pop.items():
        have = service[service.facility_type == key].groupby("unit").size()
        for unit, p in pop.items():
            need = int(np.ceil(p / rule.service_population[1])) if p > 0 else 0
            rows.append((unit, key, float(p), int(have.get(unit, 0)), need, int(have.get(unit, 0)) < need))
    return pd.DataFrame(rows, columns=["unit", "facility_type", "population", "facilities", "needed",
                                       "below_ratio"])


def _supply_demand(inputs: Inputs, wt: WalkingTimes, facilities_out, residents, unit_layer, cfg: AnalysisConfig,
                   rec: _Log, *, net: WalkNetwork | None = None):
    """2SFCA family per resident and unit, per group, and the equity indices; adds their columns to
    ``residents`` (``access_<method>_<category>``) and ``facilities_out`` (``capacity``, ``ratio_<method>``).

    Returns ``(accessibility table, equity table, summary blocks)`` (``None, None, {}`` for a tiled run).
    """
    from .measure import accessibility as acc
    from .measure.equity import equity_table

    opts, groups = inputs.access, tuple(inputs.population.group_columns)
    rec.inputs["access"] = {"capacity_column": inputs.facilities.capacity_column, "group_columns": list(groups),
                            "group_speed_kmh": dict(opts.group_speed_kmh), "demand_groups": dict(opts.demand_groups),
                            "ratio_per_1000": dict(opts.ratio_per_1000)}
    if wt.graph is None:
        rec.warnings.append("no supply–demand ratios or equity: a tiled run keeps no single access graph")
        return None, None, {}
    notes = _fill_capacity(facilities_out, inputs.facilities.capacity_column, cfg, rec)
    sd = acc.supply_demand(wt, facilities_out, residents, config=cfg, groups=groups,
                           group_speed_kmh=opts.group_speed_kmh, demand_groups=opts.demand_groups, network=net)
    for col in sd.residents.columns:
        residents[col] = sd.residents[col].to_numpy()
    for col in ["demand"] + [f"ratio_{m}" for m in acc.METHODS]:
        values = np.full(len(facilities_out), np.nan)
        values[sd.facilities["facility"].to_numpy(int)] = sd.facilities[col].to_numpy(float)
        facilities_out["catchment_demand" if col == "demand" else col] = values
    ratios, ratio_notes = _provision_ratios(opts, inputs.facilities.capacity_column, sd, cfg)
    by_unit = "unit" in residents and unit_layer is not None
    fac_units = None
    if by_unit:
        from .read.units import assign_units

        fac_units = assign_units(facilities_out, unit_layer).to_numpy() if len(facilities_out) else None
    table = acc.accessibility_table(residents, facilities_out, sd, config=cfg, unit_column="unit" if by_unit else None,
                                    facility_units=fac_units, ratios=ratios)
    parents = (dict(zip(unit_layer["unit"], unit_layer["parent"])) if by_unit and "parent" in unit_layer
               and unit_layer["parent"].nunique() > 1 else None)
    eq = equity_table(residents, sd.residents, table, categories=cfg.categories, groups=list(sd.groups),
                      target=cfg.target, standards={c: v[0] for c, v in ratios.items()}, parents=parents)
    study = table[table.unit == STUDY_AREA]
    summary = {
        "accessibility": {
            "methods": {"2sfca": "Luo & Wang 2003", "e2sfca": "Luo & Qi 2009, weights 1.00/0.68/0.22 by thirds of "
                        "the threshold", "g2sfca": "Dai 2010, Gaussian decay to 0 at the threshold"},
            "minutes": cfg.headline_minutes, "groups": sd.groups, "demand_groups": sd.demand_groups,
            "capacity": inputs.facilities.capacity_column or "1 per facility", "notes": notes + ratio_notes,
            "study_area": {c: {g: {k: _json_number(r[k]) for k in ("population", "facilities", "capacity",
                                                                   "capacity_per_1000", "access_2sfca_per_1000",
                                                                   "coverage_share", "standard_per_1000")}
                               | {"meets_standard": r["meets_standard"]}
                               for g, r in gt.set_index("group").iterrows()}
                           for c, gt in study.groupby("category", sort=False)},
        },
        "equity": {c: {g: {ind: {lv: {k: _json_number(r[k]) for k in (
            "mean", "gini", "theil", "palma", "units_meeting_target_share", "best_worst_gap", "urban_rural_gap",
            "theil_between_district", "theil_between_urban_rural", "theil_between_unit")}
            | {"worst_unit": r["worst_unit"] if isinstance(r["worst_unit"], str) else None}
            for lv, r in it.set_index("level").iterrows()}
            for ind, it in gt.groupby("indicator", sort=False)} for g, gt in ct.groupby("group", sort=False)}
            for c, ct in eq.groupby("category", sort=False)},
    }
    summary["equity"]["decomposition"] = ("by district (units' parent column)" if parents else
                                          "no district column on the units: by unit and urban/rural only")
    return table, eq, summary


def _check_access_options(inputs: Inputs, cfg: AnalysisConfig) -> None:
    """The supply–demand options agree with each other and the categories (one error listing all, up front)."""
    from .validate import raise_problems

    groups = set(inputs.population.group_columns)
    opts = inputs.access
    problems = []
    for g, v in opts.group_speed_kmh.items():
        if g not in groups:
            problems.append(f"--group-speed-kmh {g}={v:g}: {g!r} is not one of --group-columns "
                            f"({', '.join(sorted(groups)) or 'none given'}); add it there")
        elif not (isinstance(v, (int, float)) and 0 < v < 1e6):
            problems.append(f"--group-speed-kmh {g}: {v!r} is not a positive number of km/h; e.g. {g}=3")
        elif cfg.headline_minutes * v * 1000 / 60 > cfg.max_dist_m + 1e-9:
            problems.append(f"--group-speed-kmh {g}={v:g} walks beyond the search cut-off ({cfg.cutoff_minutes:g} min "
                            f"at {cfg.walk_speed_kmh:g} km/h); raise --max-minutes")
    for cat, g in opts.demand_groups.items():
        if cat not in cfg.categories:
            problems.append(f"--demand-group {cat}={g}: {cat!r} is not an analysed category "
                            f"({', '.join(cfg.categories)})")
        elif g != "population" and g not in groups:
            problems.append(f"--demand-group {cat}={g}: {g!r} is not a group column; add it to --group-columns")
    for cat, v in opts.ratio_per_1000.items():
        if cat not in cfg.categories:
            problems.append(f"--ratio-per-1000 {cat}={v:g}: {cat!r} is not an analysed category "
                            f"({', '.join(cfg.categories)})")
    raise_problems(problems)


def _json_number(v):
    """A float for summary.json: None for NaN, "inf" for an unbounded Palma."""
    if v is None or (isinstance(v, float) and v != v):
        return None
    if isinstance(v, (float, np.floating)) and np.isinf(v):
        return "inf"
    return float(v) if isinstance(v, (int, float, np.integer, np.floating)) else v


def _fill_capacity(facilities_out, column: str | None, cfg: AnalysisConfig, rec: _Log) -> list[str]:
    """``capacity`` of every facility: the column's value, else the median of its category's given values
    (warned), else 1 (a category with no capacity at all counts facilities)."""
    if column is None or "capacity" not in facilities_out:
        facilities_out["capacity"] = 1.0
        return []
    cap = pd.to_numeric(facilities_out["capacity"], errors="coerce")
    notes = []
    for cat in cfg.categories:
        m = (facilities_out["category"] == cat).to_numpy()
        given = cap[m].dropna()
        missing = int(cap[m].isna().sum())
        if given.empty:
            cap[m] = 1.0
            if m.any():
                notes.append(f"{cat}: no facility has a {column!r} value; each counts 1 (facilities, not capacity)")
        elif missing:
            med = float(given.median())
            cap[m & cap.isna().to_numpy()] = med
            rec.warnings.append(f"{missing} {cat} facilities (e.g. found in OSM) have no {column!r}: each is given the "
                                f"median of the others ({med:g}); give them a value, or use only your list "
                                "(--replace-osm-facilities)")
    facilities_out["capacity"] = cap.astype(float).to_numpy()
    return notes


def _provision_ratios(opts: AccessInput, capacity_column: str | None, sd, cfg: AnalysisConfig):
    """``{category: (standard per 1,000, source)}`` that apply to this run, and why others do not."""
    from .read.standards import load_ratios

    out, notes = {}, []
    for cat, r in load_ratios().items():
        if cat not in cfg.categories or cat in opts.ratio_per_1000:
            continue
        if r.counts == "capacity" and capacity_column is None:
            notes.append(f"{cat}: the standard of {r.per_1000:g} per 1,000 counts capacity; give --capacity-column "
                         "to compare with it")
        elif r.per == "group" and sd.demand_groups.get(cat) == "population":
            notes.append(f"{cat}: the standard of {r.per_1000:g} per 1,000 is per 1,000 of a group (e.g. the elderly); "
                         f"give --group-columns and --demand-group {cat}=COLUMN to compare with it")
        else:
            out[cat] = (r.per_1000, f"{r.status + ': ' if r.status else ''}{r.source}")
    for cat, v in opts.ratio_per_1000.items():
        if cat not in cfg.categories:
            raise InputDataError(f"--ratio-per-1000 {cat}={v}: {cat!r} is not an analysed category "
                                 f"({', '.join(cfg.categories)})")
        out[cat] = (float(v), "given on the command line (--ratio-per-1000)")
    return out, notes


# --------------------------------------------------------------------------------------------
# summary.json


def _urban_summary(table: pd.DataFrame | None, cfg: AnalysisConfig, rec: _Log) -> dict[str, Any]:
    """Urban and rural shares side by side, and the urban–rural gap in percentage points."""
    out: dict[str, Any] = {"method": rec.urban_method}
    if table is None:
        return out
    head = table[(table.unit == STUDY_AREA) & (table.minutes == cfg.headline_minutes)]
    cats = {}
    for cat, g in head.groupby("category", sort=False):
        s = dict(zip(g.group, g.share))
        p = dict(zip(g.group, g.population))
        cats[cat] = {"urban": s.get("urban"), "rural": s.get("rural"), "urban_population": p.get("urban", 0.0),
                     "rural_population": p.get("rural", 0.0),
                     "gap_pp": None if s.get("urban") is None or s.get("rural") is None
                     else round(100 * (s["urban"] - s["rural"]), 2),
                     "urban_meets_target": None if s.get("urban") is None else bool(s["urban"] >= cfg.target)}
    out["categories"] = cats
    return out


def _unit_ranking(cov: pd.DataFrame, unit_layer, cfg: AnalysisConfig) -> pd.DataFrame:
    """Units ranked by the headline share of ``all`` (or the one category), worst first, with their type."""
    from .read.urban import unit_type

    cat = ALL if len(cfg.categories) > 1 else cfg.categories[0]
    rows = cov[(cov.unit != STUDY_AREA) & (cov.minutes == cfg.headline_minutes) & (cov.category == cat)]
    t = rows[["unit", "population", "share", "meets_target", "population_to_cover"]].sort_values(
        ["share", "population"], ascending=[True, False]).reset_index(drop=True)
    t.insert(1, "unit_type", [unit_type(u) for u in t.unit])
    t.insert(0, "rank", np.arange(1, len(t) + 1))
    t["category"] = cat
    return t.astype({"population": float, "share": float, "population_to_cover": float})


def _service_summary(service: pd.DataFrame) -> dict[str, Any]:
    units = service.attrs.get("units")
    below = {} if units is None else {t: sorted(g.loc[g.below_ratio, "unit"].astype(str))
                                      for t, g in units.groupby("facility_type")}
    return {t: {"units_below_ratio": below.get(t, []),"facilities": int(len(g)), "over_service_population": int(g.over_service_population.sum()),
                "median_catchment_population": float(g.catchment_population.median()),
                "service_population": [float(g.service_population_min.iloc[0]), float(g.service_population_max.iloc[0])]}
            for t, g in service.groupby("facility_type")}


def _standard_summary(standard, rec: _Log, decisions: pd.DataFrame, tiers: pd.DataFrame | None) -> dict[str, Any]:
    """The facility definition written next to the number: the standard, why it was chosen, what it kept."""
    from .read.standards import decisions_table

    out = {**standard.describe(), "chosen": rec.standard_why}
    table = decisions_table(decisions)
    out["kept"] = {c: int(g.loc[g.kept, "facilities"].sum()) for c, g in table.groupby("category")}
    out["dropped"] = {c: {r.reason: int(r.facilities) for r in g[~g.kept].groupby("reason", as_index=False)
                          ["facilities"].sum().itertuples()} for c, g in table.groupby("category")}
    if tiers is not None:
        study = tiers[tiers.unit == STUDY_AREA]
        out["tiers"] = {r.type: {"category": r.category, "tier_minutes": None if r.tier_minutes != r.tier_minutes
                                 else float(r.tier_minutes), "share": float(r.share),
                                 "covered_population": float(r.covered_population),
                                 "meets_target": bool(r.meets_target)} for r in study.itertuples()}
    return out


def _categories_summary(cfg: AnalysisConfig, cov: pd.DataFrame, counts: dict[str, int]) -> dict[str, Any]:
    """summary.json ``categories``: per category (and ``all``) the headline share and the shares by threshold."""
    study = cov[cov.unit == STUDY_AREA]
    categories: dict[str, Any] = {}
    for cat in _reported_categories(cfg):
        rows = study[study.category == cat]
        h = rows[rows.minutes == cfg.headline_minutes].iloc[0]
        categories[cat] = {
            "share": float(h.share),
            "covered_population": float(h.covered_population),
            "population": float(h.population),
            "meets_target": bool(h.meets_target),
            "population_to_cover": float(h.population_to_cover),
            "facilities": int(sum(counts.values())) if cat == ALL else counts[cat],
            "shares_by_minutes": {f"{m:g}": float(s) for m, s in zip(rows.minutes, rows.share)},
        }
    return categories


def _summary(cfg: AnalysisConfig, tax: Taxonomy, inputs: Inputs, net: WalkNetwork, residents, facilities_out,
             cov: pd.DataFrame, census_methods, by_unit: bool, rec: _Log) -> dict[str, Any]:
    counts = count_by_category(facilities_out[facilities_out["snapped"]], cfg.categories)
    head = cfg.headline_minutes
    categories = _categories_summary(cfg, cov, counts)
    pop_source = residents.attrs.get("population_source", "points")
    fac_src = facilities_out["source"].value_counts() if len(facilities_out) else {}
    summary = {
        "lifecircle_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "parameters": {**cfg.to_dict(), "speed_kmh": cfg.walk_speed_kmh,
                       "snapping": "nearest point of the nearest walkable edge; access leg walked",
                       "taxonomy": tax.source,
                       "options": {"lon_column": inputs.facilities.lon_column,
                                   "lat_column": inputs.facilities.lat_column,
                                   "m2_per_person": inputs.population.m2_per_person,
                                   "encoding": inputs.facilities.encoding}},
        "inputs": {k: v for k, v in rec.inputs.items() if v is not None},
        "network": net.describe(),
        "residents": {
            "points": int(len(residents)),
            "population": float(residents["population"].sum()),
            "population_source": pop_source,
            "population_is_estimate": pop_source == "estimate_from_buildings",
            "unsnapped_points": int((~residents["snapped"]).sum()),
        },
        "facilities": {"by_category": counts, "unsnapped": int((~facilities_out["snapped"]).sum()),
                       "by_source": {str(k): int(v) for k, v in dict(fac_src).items()},
                       "merged_duplicates": int(len(facilities_out.attrs.get("merged", ()))),
                       "merge_rule": "same category within 150 m, names agree, from different inputs "
                                     "(or an OSM node and an OSM area); listed in facilities_merged.csv"},
        "categories": categories,
        "components": rec.components,
        "warnings": rec.warnings,
        "crs_checks": rec.crs_checks,
        "attribution": OSM_CREDIT,
    }
    if census_methods is not None:
        summary["census"] = {
            "total": float(census_methods["population"].sum()),
            "census_total": float(census_methods["census_population"].sum()),
            "clipped_to_network": bool(inputs.census.clip_to_network),
            "join": inputs.census.join,
            "method": "dasymetric: buildings by floor area, else residential landuse, else streets, else area",
            "units": {r.unit: {"census_population": float(r.census_population), "method": r.method,
                               "points": int(r.points)} for r in census_methods.itertuples()},
        }
    if by_unit:
        by_unit_rows = cov[(cov.unit != STUDY_AREA) & (cov.minutes == head)]
        summary["units"] = {
            u: {r.category: {"share": float(r.share), "meets_target": bool(r.meets_target),
                             "population": float(r.population)} for r in g.itertuples()}
            for u, g in by_unit_rows.groupby("unit", sort=False)
        }
    return summary


def reanalyze(out_dir: str | os.PathLike[str], *, progress: Callable[[str], None] | None = None,
              **overrides: Any) -> Analysis:
    """Run again the analysis recorded in ``out_dir/summary.json`` (same inputs and parameters).

    ``overrides`` replace :class:`~lifecircle.config.AnalysisConfig` fields (``minutes``,
    ``categories``, ``target``…). An input file that changed since (another sha256) is used
    with a warning; a missing one is an error.

    Examples
    --------
    >>> import tempfile
    >>> from lifecircle.datasets import toy_town_osm
    >>> d = tempfile.mkdtemp(); _ = analyze(toy_town_osm()).write(d)
    >>> a = reanalyze(d, minutes=(10,))
    >>> a.config.minutes, round(a.category_share("culture"), 3) == round(analyze(toy_town_osm()).category_share("culture", 10), 3)
    ((10.0,), True)
    """
    from .errors import InputFileError
    from .present.outputs import read_run
    from .read.summary import read_summary

    folder = Path(out_dir)
    read_run(folder, check=["summary.json"])  # finishes an interrupted commit; summary.json must be the run's
    summary = read_summary(folder)
    params, inputs = summary["parameters"], summary["inputs"]
    cfg = AnalysisConfig.from_dict(params, where=str(folder / "summary.json"), strict=False, **overrides)

    def path(key: str) -> str | None:
        rec = inputs.get(key)
        if not rec or "path" not in rec:
            return None
        p = Path(rec["path"])
        if not p.is_file():
            raise InputFileError(f"the {key} input of {folder} is gone: {p} (restore it, or run the analysis again)")
        if rec.get("sha256") and file_sha256(p) != rec["sha256"]:
            log.warning("the %s input %s changed since %s was written; using the file as it is now", key, p, folder)
        return str(p)

    fac, pop, units, census, access = (inputs.get(k) or {} for k in ("facilities", "population", "units", "census",
                                                                      "access"))
    opts = params.get("options", {})
    tax = params.get("taxonomy")
    return run_analysis(
        Inputs(
            NetworkInput(path("osm"), (inputs.get("place") or {}).get("name")),
            FacilityInput(path("facilities"), fac.get("mode") == "replace", fac.get("crs"),
                          fac.get("category_column", "category"), fac.get("name_column"),
                          opts.get("lon_column"), opts.get("lat_column"), opts.get("encoding"),
                          access.get("capacity_column")),
            PopulationInput(path("population"), pop.get("crs"), pop.get("population_column"),
                            opts.get("lon_column"), opts.get("lat_column"), opts.get("m2_per_person"),
                            opts.get("encoding"), tuple(access.get("group_columns") or ())),
            UnitInput(path("units"), None if units.get("crs") in (None, "as declared") else units["crs"],
                      units.get("name_column"), units.get("admin_level"), opts.get("encoding"),
                      units.get("parent_column")),
            CensusInput(path("census"), census.get("join", "auto"), census.get("population_column"),
                        bool(census.get("clip_to_network", False))),
            UrbanInput(path("urban") or (inputs.get("urban") or {}).get("keyword"),
                       (inputs.get("urban") or {}).get("column")),
            AccessInput(dict(access.get("group_speed_kmh") or {}), dict(access.get("demand_groups") or {}),
                        dict(access.get("ratio_per_1000") or {})),
        ),
        config=cfg, taxonomy=path("taxonomy") or (tax if tax and tax != "builtin" else None), progress=progress,
    )


#: Parameters whose change needs new walking times (the stored run cannot answer them).
_MEASURED = ("walk_speed_kmh", "max_snap_m", "snap_main_component", "categories", "standard")


def has_stored_run(out_dir: str | os.PathLike[str]) -> bool:
    """True when ``out_dir`` holds the run state that :func:`load_analysis` reads (run_state.npz)."""
    from .measure.stored import RUN_STATE

    return (Path(out_dir) / RUN_STATE).is_file()


def load_analysis(out_dir: str | os.PathLike[str], *, progress: Callable[[str], None] | None = None,
                  **overrides: Any) -> Analysis:
    """The :class:`Analysis` stored in ``out_dir`` by :meth:`Analysis.write`, rebuilt without the OSM file.

    Reads summary.json (configuration), residents.gpkg, facilities.gpkg, units.gpkg and
    run_state.npz (walking network, snapped points, every resident's minutes:
    :mod:`lifecircle.measure.stored`); rebuilds the access graph from the network and the snaps, and
    the coverage table from the minutes. The result is what :func:`reanalyze` gives (same numbers,
    to the last bit), at the cost of reading the files: no OSM parsing, no snapping, no Dijkstra.
    ``isochrones``, ``gaps``, ``tiers``, ``urban_rural``, ``service``, ``census_methods`` and
    ``standard_decisions`` are not read back (they stay ``None``; their files are in the folder).

    ``overrides`` (:class:`~lifecircle.config.AnalysisConfig` fields) that only change how the stored
    minutes are counted — ``minutes`` and ``target``, as long as the search cut-off stays the same
    (give ``max_minutes`` to keep it) — are applied to the stored run. Any other change (walking
    speed, snapping distance, categories, standard, cut-off), and a folder written before
    run_state.npz existed, runs the analysis again from its inputs (:func:`reanalyze`, logged).

    A damaged run_state.npz (its arrays do not match their sha256), or files that do not belong to
    one run, raise :class:`~lifecircle.errors.InputFileError`.

    Examples
    --------
    >>> import tempfile
    >>> from lifecircle.datasets import toy_town_osm
    >>> d = tempfile.mkdtemp(); a = analyze(toy_town_osm()); _ = a.write(d)
    >>> b = load_analysis(d)
    >>> b.category_share("health") == a.category_share("health"), b.network.n_nodes == a.network.n_nodes
    (True, True)
    >>> load_analysis(d, target=0.5).config.target
    0.5
    """
    import geopandas as gpd

    from .measure.stored import RUN_STATE, load_run_state
    from .present.outputs import read_run, read_table_back  # noqa: F401  (read_run finishes an interrupted commit)
    from .read.summary import read_summary

    folder = Path(out_dir)
    read_run(folder, check=["summary.json"])
    summary = read_summary(folder)
    stored = AnalysisConfig.from_dict(summary["parameters"], where=str(folder / "summary.json"), strict=False)
    cfg = AnalysisConfig.from_dict(summary["parameters"], where=str(folder / "summary.json"), strict=False,
                                   **overrides) if overrides else stored
    changed = [k for k in _MEASURED if getattr(cfg, k) != getattr(stored, k)]
    if cfg.max_dist_m != stored.max_dist_m:
        changed.append("the search cut-off (max_minutes)")
    if changed or not has_stored_run(folder):
        why = (f"{', '.join(changed)} changed" if changed else
               f"{folder} has no {RUN_STATE} (written by an older lifecircle)")
        log.info("%s: running the analysis again from its inputs", why)
        return reanalyze(folder, progress=progress, **overrides)
    say = progress or (lambda msg: log.info(msg))
    say(f"reading the stored run in {folder}")
    for _ in range(5):  # a commit by another command between the reads: read again
        rec = read_run(folder, check=["summary.json", "residents.gpkg", "facilities.gpkg", "units.gpkg"])
        residents = gpd.read_file(folder / "residents.gpkg", layer="residents", engine="pyogrio", use_arrow=True)
        facilities = gpd.read_file(folder / "facilities.gpkg", layer="facilities", engine="pyogrio", use_arrow=True)
        units = (gpd.read_file(folder / "units.gpkg", layer="units", engine="pyogrio", use_arrow=True)
                 if rec.has("units.gpkg") else None)
        network, times = load_run_state(folder / RUN_STATE, facilities["category"].to_numpy(), config=stored,
                                        index=residents.index, source=summary.get("network", {}).get("source"))
        if rec.unchanged() and read_summary(folder) == summary:
            break
    else:
        from .errors import OutputError

        raise OutputError(f"{folder} keeps changing while it is read (another lifecircle run writes it): "
                          "wait until it finishes, then run it again")
    residents = residents.drop(columns=[c for c in residents.columns if str(c).startswith("within_")])
    for col in times.minutes.columns:  # the stored minutes (inf kept), not the rounded-through-NULL copy
        residents[col] = times.minutes[col].to_numpy()
    residents.attrs["population_source"] = summary.get("residents", {}).get("population_source", "points")
    cov = _coverage(residents, cfg, by_unit="units" in summary)
    if overrides:
        summary = {**summary, "parameters": {**summary["parameters"], **cfg.to_dict()},
                   "categories": _categories_summary(
                       cfg, cov, count_by_category(facilities[facilities["snapped"]], cfg.categories))}
    return Analysis(cfg, network, facilities, residents, cov, times, summary, units=units)
