"""Keep what a run measured — walking network, snapped points, minutes — as checksummed arrays (run_state.npz).

``lifecircle analyze`` writes ``run_state.npz`` into its output folder (through
:mod:`lifecircle.present.outputs`, listed in the manifest like every output), so that ``gaps``,
``scenario`` and the Python API (:func:`lifecircle.load_analysis`) build on the run without reading
the OSM file again. The file holds plain arrays (no pickles) and their sha256
(:func:`lifecircle.read.cache.save_arrays`), checked on every load:

* ``net_*``: the walking network, exactly as the network cache keeps it
  (:func:`lifecircle.read.cache.network_arrays`);
* ``res_*`` / ``fac_*``: where every resident and facility joined the network (:class:`Snap`:
  edge index, position ``t`` along it, access-leg length, metric x/y), residents and facilities in
  the order of ``residents.gpkg`` and ``facilities.gpkg``;
* ``minutes_<category>``: every resident's walking minutes (``inf``: none within the cut-off);
* ``categories``, ``walk_speed_kmh``, ``max_dist_m``: what the minutes were measured with.

The access graph is not stored: :func:`~lifecircle.measure.walking_times.build_access_graph` makes
it again from the network and the snaps in vectorised time, node for node and metre for metre the
graph the run used (the same inputs in the same order). The distance fields of the categories
(``WalkingTimes.distances_m``, used by the service areas) are searched again on first use.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from ..config import AnalysisConfig, minutes_column
from ..errors import InputFileError
from ..read.cache import load_arrays, network_arrays, network_from_arrays, save_arrays
from ..read.network import WalkNetwork
from .snapping import Snap
from .walking_times import AccessGraph, WalkingTimes, build_access_graph

log = logging.getLogger("lifecircle")

__all__ = ["RUN_STATE", "RUN_STATE_FORMAT", "save_run_state", "load_run_state", "load_stored_network"]

#: File name of the stored state in an output folder.
RUN_STATE = "run_state.npz"
#: Layout version of the file; a file of another version is refused (run the analysis again).
RUN_STATE_FORMAT = 1
_SNAP = ("edge", "t", "dist_m", "x", "y")


def _index_dtype(n: int):
    return np.int32 if n < 2**31 - 1 else np.int64


def save_run_state(path: str | os.PathLike[str], network: WalkNetwork, times: WalkingTimes, *,
                   config: AnalysisConfig) -> None:
    """Write the network, the snaps and the residents' minutes of a run to ``path`` (with their sha256).

    Examples
    --------
    >>> import tempfile
    >>> from lifecircle import analyze
    >>> from lifecircle.datasets import toy_town_osm
    >>> a = analyze(toy_town_osm())
    >>> f = Path(tempfile.mkdtemp()) / RUN_STATE
    >>> save_run_state(f, a.network, a.times, config=a.config)
    >>> net, wt = load_run_state(f, a.facilities["category"].to_numpy(), config=a.config)
    >>> bool((wt.minutes.to_numpy() == a.times.minutes.to_numpy()).all()), net.n_nodes == a.network.n_nodes
    (True, True)
    """
    arrays: dict[str, Any] = {f"net_{k}": v for k, v in network_arrays(network).items()}
    for name in ("u", "v"):  # indexes below 2**31 fit in half the bytes (read back as int64)
        arrays[f"net_{name}"] = arrays[f"net_{name}"].astype(_index_dtype(network.n_nodes))
    for prefix, snap in (("res", times.resident_snap), ("fac", times.facility_snap)):
        for name in _SNAP:
            a = np.asarray(getattr(snap, name))
            arrays[f"{prefix}_{name}"] = a.astype(_index_dtype(network.n_edges)) if name == "edge" else a
    cats = [c for c in config.categories if minutes_column(c) in times.minutes.columns]
    for cat in cats:
        arrays[f"minutes_{cat}"] = times.minutes[minutes_column(cat)].to_numpy(dtype=np.float64)
    arrays["categories"] = np.asarray(cats, dtype=str)
    arrays["walk_speed_kmh"] = np.asarray(float(config.walk_speed_kmh))
    arrays["max_dist_m"] = np.asarray(float(config.max_dist_m))
    arrays["format"] = np.asarray(RUN_STATE_FORMAT)
    save_arrays(path, arrays)


class _Distances(Mapping):
    """``WalkingTimes.distances_m`` of a stored run: each category's field searched again on first use."""

    def __init__(self, graph: AccessGraph, fac_nodes: np.ndarray, categories: np.ndarray, cats: list[str],
                 limit_m: float):
        self._graph, self._fac_nodes, self._cat, self._cats, self._limit = graph, fac_nodes, categories, cats, limit_m
        self._done: dict[str, np.ndarray] = {}

    def __getitem__(self, cat: str) -> np.ndarray:
        if cat not in self._cats:
            raise KeyError(cat)
        if cat not in self._done:  # exactly the search of walking_times
            src = self._fac_nodes[(self._cat == cat) & (self._fac_nodes >= 0)]
            self._done[cat] = self._graph.distances_from(src, limit_m=self._limit)
        return self._done[cat]

    def __iter__(self) -> Iterator[str]:
        return iter(self._cats)

    def __len__(self) -> int:
        return len(self._cats)


def _open(p: Path) -> tuple[Any, str]:
    """The arrays of a run state (checksums and format checked) and the fix its errors name."""
    fix = f"run `lifecircle analyze ... --out {p.parent}` again to rewrite it"
    try:
        z = load_arrays(p)
    except ValueError as exc:
        raise InputFileError(f"{p} is damaged ({exc}: checksum mismatch); {fix}") from None
    except Exception as exc:  # zipfile.BadZipFile, EOFError, OSError: truncated or not an npz
        raise InputFileError(f"{p} is damaged or not a lifecircle run state ({type(exc).__name__}); {fix}") from None
    try:
        version = int(z["format"])
    except (KeyError, ValueError, TypeError):
        version = None
    if version != RUN_STATE_FORMAT:
        raise InputFileError(f"{p} is not a run state this lifecircle reads (format {version}, this lifecircle reads "
                             f"{RUN_STATE_FORMAT}); {fix}")
    return z, fix


def load_stored_network(path: str | os.PathLike[str], *, source: dict[str, Any] | None = None) -> WalkNetwork:
    """Only the walking network of a stored run (what ``lifecircle map`` draws the streets from).

    A damaged file raises :class:`~lifecircle.errors.InputFileError` (one line), as in :func:`load_run_state`.
    """
    p = Path(path)
    z, fix = _open(p)
    try:
        return WalkNetwork.from_arrays(network_from_arrays({k[4:]: v for k, v in z.items() if k.startswith("net_")}),
                                       source=source)
    except (KeyError, ValueError, TypeError) as exc:
        raise InputFileError(f"{p} is not a run state this lifecircle reads ({str(exc)[:120]}); {fix}") from None


def load_run_state(path: str | os.PathLike[str], facility_category: np.ndarray, *, config: AnalysisConfig,
                   index: pd.Index | None = None, source: dict[str, Any] | None = None
                   ) -> tuple[WalkNetwork, WalkingTimes]:
    """The network and walking times stored by :func:`save_run_state`, with the access graph rebuilt.

    ``facility_category`` is the ``category`` of each facility (facilities.gpkg, same order);
    ``index`` the residents' index for ``WalkingTimes.minutes``. A file that is damaged (its arrays
    do not match their sha256), of another format, or that does not fit the facilities or the
    configuration raises :class:`~lifecircle.errors.InputFileError` (one line).
    """
    p = Path(path)
    z, fix = _open(p)
    try:
        net = WalkNetwork.from_arrays(network_from_arrays({k[4:]: v for k, v in z.items() if k.startswith("net_")}),
                                      source=source)
        res = Snap(*(np.asarray(z[f"res_{k}"], dtype=np.int64 if k == "edge" else np.float64) for k in _SNAP))
        fac = Snap(*(np.asarray(z[f"fac_{k}"], dtype=np.int64 if k == "edge" else np.float64) for k in _SNAP))
        cats = [str(c) for c in z["categories"]]
        minutes = {minutes_column(c): z[f"minutes_{c}"] for c in cats}
        if any(len(getattr(s, k)) != len(s.edge) for s in (res, fac) for k in _SNAP) or any(
                len(m) != len(res) for m in minutes.values()):
            raise ValueError("array lengths do not match")
        if max(int(res.edge.max(initial=-1)), int(fac.edge.max(initial=-1))) >= net.n_edges:
            raise ValueError("snapped to edges outside the network")
    except (KeyError, ValueError, TypeError) as exc:
        raise InputFileError(f"{p} is not a run state this lifecircle reads ({str(exc)[:120]}); {fix}") from None
    problem = None
    if len(fac) != len(facility_category):
        problem = f"it holds {len(fac):,} facilities, facilities.gpkg {len(facility_category):,}"
    elif index is not None and len(index) != len(res):
        problem = f"it holds {len(res):,} residents, residents.gpkg {len(index):,}"
    elif cats != list(config.categories):
        problem = f"it measured {', '.join(cats)}, summary.json says {', '.join(config.categories)}"
    elif (float(z["walk_speed_kmh"]), float(z["max_dist_m"])) != (float(config.walk_speed_kmh), config.max_dist_m):
        problem = "it was measured at another walking speed or cut-off than summary.json says"
    if problem:
        raise InputFileError(f"{p} does not belong to the run of {p.parent} ({problem}); {fix}")
    snap = Snap(*(np.concatenate([getattr(res, k), getattr(fac, k)]) for k in _SNAP))
    graph = build_access_graph(net, snap, sources=len(res) + np.arange(len(fac)))
    fac_cat = np.asarray(facility_category)
    dists = _Distances(graph, graph.point_node[len(res):], fac_cat, cats, config.max_dist_m)
    table = pd.DataFrame(minutes, index=index if index is not None else pd.RangeIndex(len(res)))
    return net, WalkingTimes(table, res, fac, graph, len(res), fac_cat, dists)
