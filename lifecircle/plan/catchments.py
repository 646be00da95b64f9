"""Catchments of candidate sites: which residents each can reach within a walk, by a bounded local Dijkstra.

A walk of at most ``L`` metres never leaves the disc of radius ``L`` around its start: every
edge of the network is a straight segment as long as the line between its ends, and every access
leg is as long as the line from the point to its projection. So the search from one point needs
only the part of the network within ``L`` of it: :func:`lifecircle.measure.bounded.local_dijkstra`
(shared with the 2SFCA catchments) groups the starting points by square tiles of ``tile_m`` metres
and searches each tile's subgraph, exact by a border check; its cost grows with the number of
points, not with the size of the city.

:func:`pairs_within` measures point-to-point walks on the plain street network: a point joins
the streets at its projection on its edge, so its walk to anything beyond that edge starts with
``leg + t * length`` to the edge's first end or ``leg + (1 - t) * length`` to the second, and two
points on the same edge can also walk straight along it. The sums match the access graph that
:func:`lifecircle.measure.walking_times.walking_times` builds (which splits edges at every point)
up to the last bits, so callers re-measure pairs within a hair of their threshold the way the
pipeline does (:func:`lifecircle.plan.sites.coverage_matrix`).
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra

from ..measure.bounded import local_dijkstra

log = logging.getLogger("lifecircle")

__all__ = ["Chains", "Searches", "chains", "pairs_within", "pairs_within_thinned", "thin_targets"]

#: Side of the square tiles the starting points are grouped by (metres).
TILE_M = 1000.0


@dataclass(frozen=True, eq=False)
class Chains:
    """The street network with its chains of degree-2 nodes contracted into single edges.

    Junctions are the nodes whose degree is not 2 (plus one node of each ring of degree-2 nodes).
    Every network edge lies on one *chain* between junctions ``a[c]`` and ``b[c]`` (indices into
    ``junction``), ``length_m[c]`` long; the edge starts ``edge_s[e]`` metres from ``a`` and runs
    away from it when ``edge_fwd[e]``. ``matrix`` joins the junctions by their shortest chain.
    Searches on it settle about a third of the nodes of the full network.
    """

    junction: np.ndarray
    matrix: sp.csr_matrix
    a: np.ndarray
    b: np.ndarray
    length_m: np.ndarray
    edge_chain: np.ndarray
    edge_s: np.ndarray
    edge_fwd: np.ndarray

    def locate(self, network, edge, t):
        """Chain and metres from its end ``a`` of points at ``t`` along network edges ``edge``."""
        chain = self.edge_chain[edge]
        along = np.where(self.edge_fwd[edge], t, 1.0 - t) * network.length_m[edge]
        return chain, self.edge_s[edge] + along


_CHAINS: weakref.WeakKeyDictionary[Any, Chains] = weakref.WeakKeyDictionary()


def release_chains(network) -> None:
    """Forget the network's :class:`Chains` (made again by :func:`chains` if asked for)."""
    _CHAINS.pop(network, None)


def chains(network) -> Chains:
    """The :class:`Chains` of a network (computed once per network, vectorised).

    Examples
    --------
    A street 0 — 1 — 2 — 3 (95 m blocks) with a 111 m side street 1 — 4: the junctions are
    0, 1, 3 and 4, and node 2 lies inside the 191 m chain 1 — 2 — 3:

    >>> from lifecircle import WalkNetwork
    >>> net = WalkNetwork.from_lonlat([121.40, 121.401, 121.402, 121.403, 121.401],
    ...                               [31.20, 31.20, 31.20, 31.20, 31.201], [0, 1, 2, 1], [1, 2, 3, 4])
    >>> ch = chains(net)
    >>> ch.junction.tolist(), np.round(ch.length_m).tolist()
    ([0, 1, 3, 4], [191.0, 95.0, 111.0])
    """
    cached = _CHAINS.get(network)
    if cached is not None:
        return cached
    from scipy.sparse.csgraph import connected_components

    n, u, v, w = network.n_nodes, network.u.astype(np.int64), network.v.astype(np.int64), network.length_m
    deg = np.bincount(u, minlength=n) + np.bincount(v, minlength=n)
    is_j = deg != 2
    for _ in range(2):  # the second pass only after promoting one node of each ring
        inner = ~is_j[u] & ~is_j[v]
        g = sp.csr_matrix((np.ones(int(inner.sum())), (u[inner], v[inner])), shape=(n, n))
        _, comp = connected_components(g, directed=False)
        mixed = is_j[u] != is_j[v]
        has_end = np.zeros(n, dtype=bool)
        has_end[comp[np.where(is_j[u[mixed]], v[mixed], u[mixed])]] = True
        ring = ~is_j & ~has_end[comp]
        if not ring.any():
            break
        first = np.full(n, n, dtype=np.int64)
        np.minimum.at(first, comp[ring], np.flatnonzero(ring))
        is_j[first[first < n]] = True
    junction = np.flatnonzero(is_j)
    jpos = np.full(n, -1, dtype=np.int64)
    jpos[junction] = np.arange(len(junction))
    # chain of every edge: the component of its degree-2 end, or its own for junction-junction edges
    direct = is_j[u] & is_j[v]
    inner_comp = np.where(is_j[u], comp[v], comp[u])
    used, chain_of_comp = np.unique(inner_comp[~direct], return_inverse=True)
    n_inner = len(used)
    edge_chain = np.empty(len(u), dtype=np.int64)
    edge_chain[~direct] = chain_of_comp.ravel()
    edge_chain[direct] = n_inner + np.arange(int(direct.sum()))
    n_chains = n_inner + int(direct.sum())
    # the two edges of an inner chain that touch a junction: the lower-numbered one starts it
    boundary = np.flatnonzero(mixed)
    bc = edge_chain[boundary]
    order = np.lexsort((boundary, bc))
    boundary, bc = boundary[order], bc[order]
    is_start = np.r_[True, bc[1:] != bc[:-1]] if len(bc) else np.zeros(0, dtype=bool)
    start_edge, end_edge = boundary[is_start], boundary[~is_start]
    a = np.empty(n_chains, dtype=np.int64)
    b = np.empty(n_chains, dtype=np.int64)
    a[bc[is_start]] = np.where(is_j[u[start_edge]], u[start_edge], v[start_edge])
    b[bc[~is_start]] = np.where(is_j[u[end_edge]], u[end_edge], v[end_edge])
    a[n_inner:], b[n_inner:] = u[direct], v[direct]
    # metres along each inner chain: one search from a private copy of each chain's start
    s_node, e_node = n + np.arange(n_chains), n + n_chains + np.arange(n_chains)
    uu, vv = u.copy(), v.copy()
    for ends, virt in ((start_edge, s_node), (end_edge, e_node)):
        ju = is_j[u[ends]]
        uu[ends] = np.where(ju, virt[edge_chain[ends]], u[ends])
        vv[ends] = np.where(ju, v[ends], virt[edge_chain[ends]])
    keep = ~direct
    size = n + 2 * n_chains
    g = sp.csr_matrix((np.r_[w[keep], w[keep]], (np.r_[uu[keep], vv[keep]], np.r_[vv[keep], uu[keep]])),
                      shape=(size, size))
    starts = s_node[:n_inner]
    off = dijkstra(g, directed=True, indices=starts, min_only=True) if n_inner else np.full(size, np.inf)
    length = np.empty(n_chains)
    length[:n_inner] = off[e_node[:n_inner]]
    length[n_inner:] = w[direct]
    ou, ov = off[uu], off[vv]
    edge_s = np.where(direct, 0.0, np.minimum(ou, ov))
    edge_fwd = np.where(direct, True, ou <= ov)
    # the contracted graph: the shortest chain between two junctions, both ways, rings dropped
    ja, jb = jpos[a], jpos[b]
    loop = ja == jb
    r = np.r_[ja[~loop], jb[~loop]]
    c = np.r_[jb[~loop], ja[~loop]]
    d = np.r_[length[~loop], length[~loop]]
    o = np.lexsort((d, c, r))
    r, c, d = r[o], c[o], d[o]
    first = np.r_[True, (r[1:] != r[:-1]) | (c[1:] != c[:-1])]
    r, c, d = r[first], c[first], d[first]
    nj = len(junction)
    mat = sp.csr_matrix((d, c, np.r_[0, np.cumsum(np.bincount(r, minlength=nj))]), shape=(nj, nj))
    out = Chains(junction, mat, ja, jb, length, edge_chain, edge_s, edge_fwd)
    _CHAINS[network] = out
    return out


def _points(network, ch: Chains, edge, t, dist_m):
    """Where points join the contracted graph: chain, metres along it, and (junction, metres) to each end.

    A point at an end of its chain keeps only that end: the other is never shorter.
    """
    chain, s = ch.locate(network, edge, t)
    length = ch.length_m[chain]
    a = np.where(s >= length, -1, ch.a[chain])
    b = np.where(s <= 0.0, -1, ch.b[chain])
    return chain, s, a, dist_m + s, b, dist_m + (length - s)


def _virtual_sources(network, ch: Chains, edge, t, dist_m):
    """The contracted matrix plus one node per source point with edges out to the ends of its chain."""
    A = ch.matrix
    n = A.shape[0]
    m = len(edge)
    chain, s, a, off_a, b, off_b = _points(network, ch, edge, t, dist_m)
    a, b = ch.a[chain], ch.b[chain]
    idx = A.indices.dtype
    indptr = np.concatenate([A.indptr, A.indptr[-1] + 2 * np.arange(1, m + 1, dtype=A.indptr.dtype)])
    indices = np.concatenate([A.indices, np.column_stack([a, b]).ravel().astype(idx)])
    data = np.concatenate([A.data, np.column_stack([off_a, off_b]).ravel()])
    mat = sp.csr_matrix((data, indices, indptr), shape=(n + m, n + m))
    ux, uy = network.x[network.u[edge]], network.y[network.u[edge]]
    vx, vy = network.x[network.v[edge]], network.y[network.v[edge]]
    x = np.concatenate([network.x[ch.junction], ux + t * (vx - ux)])
    y = np.concatenate([network.y[ch.junction], uy + t * (vy - uy)])
    return mat, x, y, n + np.arange(m)


def _same_chain_pairs(src, dst, hi_m: float):
    """Pairs of points on the same chain and their straight walk along it (at most ``hi_m``).

    ``src``/``dst`` are (chain, metres along it, access leg).
    """
    sc, dc = src[0], dst[0]
    so, do = np.argsort(sc, kind="stable"), np.argsort(dc, kind="stable")
    d_sorted = dc[do]
    lo = np.searchsorted(d_sorted, sc[so], side="left")
    hi = np.searchsorted(d_sorted, sc[so], side="right")
    cnt = hi - lo
    total = int(cnt.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0)
    si = np.repeat(so, cnt)
    di = do[np.repeat(lo - (np.cumsum(cnt) - cnt), cnt) + np.arange(total)]
    dist = src[2][si] + np.abs(src[1][si] - dst[1][di]) + dst[2][di]
    ok = dist <= hi_m
    return si[ok], di[ok], dist[ok]


@dataclass(frozen=True, eq=False)
class _Ends:
    """Targets by the junctions they are reached through: each target once per end of its chain."""

    n: int
    node_ptr: np.ndarray
    tgt_of: np.ndarray
    off_of: np.ndarray
    other_of: np.ndarray
    other_off: np.ndarray
    primary: np.ndarray

    @classmethod
    def of(cls, n: int, a, off_a, b, off_b) -> _Ends:
        # every way onto the network by junction: the target, the metres from the junction to it, and
        # the other end (so that a target reached through both ends is reported once, by its first)
        nt = len(a)
        ends = np.concatenate([a, b])
        ok = ends >= 0
        by_node = np.argsort(ends[ok], kind="stable")
        return cls(
            n,
            np.r_[0, np.cumsum(np.bincount(ends[ok], minlength=n))],
            np.concatenate([np.arange(nt), np.arange(nt)]).astype(np.int32)[ok][by_node],
            np.concatenate([off_a, off_b])[ok][by_node],
            np.concatenate([b, a]).astype(np.int32)[ok][by_node],
            np.concatenate([off_b, off_a])[ok][by_node],
            np.concatenate([np.ones(nt, dtype=bool), a < 0])[ok][by_node],  # b is first when a is not there
        )

    def expand(self, pos, nodes, d, hi_m: float, local, sparse=None) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """The (source, target, metres) pairs of one batch of searches (``local``: n + 1 times -1, kept so).

        ``sparse``: the batch's walks up to ``hi_m`` to junctions as (row, column, metres), if known.
        """
        n = self.n
        if sparse is None:
            i, k = np.nonzero(d <= hi_m)
            node = nodes[k]
            pool = node < n
            i, k, node = i[pool], k[pool], node[pool]
            dik = d[i, k]
        else:
            i, k, dik = sparse
            node = nodes[k]
        st = self.node_ptr[node]
        cnt = self.node_ptr[node + 1] - st
        total = int(cnt.sum())
        if total == 0:
            return
        e = np.repeat(st - (np.cumsum(cnt) - cnt), cnt) + np.arange(total)
        src_i = np.repeat(i, cnt)
        walk = np.repeat(dik, cnt) + self.off_of[e]
        hit = np.flatnonzero(walk <= hi_m)
        e, src_i, walk = e[hit], src_i[hit], walk[hit]
        in_pool = nodes < n
        local[nodes[in_pool]] = np.arange(int(in_pool.sum()), dtype=np.int32)
        col = local[self.other_of[e]]  # other_of is -1 for single-end targets: local[-1] is the spare -1
        local[nodes[in_pool]] = -1
        found = col >= 0
        walk_other = np.full(len(e), np.inf)
        walk_other[found] = d[src_i[found], col[found]] + self.other_off[e[found]]
        once = self.primary[e] | ~(walk_other <= hi_m)
        if once.any():
            yield pos[src_i[once]], self.tgt_of[e[once]], np.minimum(walk, walk_other)[once]


@dataclass(frozen=True, eq=False)
class _SplitEnds:
    """:class:`_Ends` of kept targets split for :meth:`Searches.expand`: targets with one end
    (at a junction: at most one per junction when ``one``, then looked up directly) and with two."""

    single_tgt: np.ndarray  # per junction (+1 spare): its single-end target or -1 (when ``one``)
    single_off: np.ndarray  # ... the metres from the junction to it (inf when none)
    single: _Ends  # every single-end target (used when not ``one``)
    one: bool
    cnt: np.ndarray  # per junction: its two-end targets' entries ...
    start: np.ndarray
    tgt: np.ndarray
    off: np.ndarray
    other: np.ndarray
    other_off: np.ndarray
    primary: np.ndarray

    @classmethod
    def of(cls, ends: _Ends, target_ids: np.ndarray) -> _SplitEnds:
        n = ends.n
        node_of = np.repeat(np.arange(n), np.diff(ends.node_ptr))
        single = ends.other_of < 0
        tgt = np.asarray(target_ids).astype(np.int32)[ends.tgt_of]
        parts = []
        for sel in (single, ~single):
            idx = np.flatnonzero(sel)
            ptr = np.r_[0, np.cumsum(np.bincount(node_of[idx], minlength=n))]
            parts.append((idx, ptr))
        (si, sptr), (di, dptr) = parts
        s_cnt = np.diff(sptr)
        one = int(s_cnt.max(initial=0)) <= 1
        single_tgt = np.full(n + 1, -1, dtype=np.int32)
        single_off = np.full(n + 1, np.inf)
        has = np.flatnonzero(s_cnt)
        if one:
            single_tgt[has] = tgt[si[sptr[has]]]
            single_off[has] = ends.off_of[si[sptr[has]]]
        single_ends = _Ends(n, sptr, tgt[si], ends.off_of[si], ends.other_of[si], ends.other_off[si], ends.primary[si])
        idx32 = np.int32 if len(di) < np.iinfo(np.int32).max else np.int64
        return cls(single_tgt, single_off, single_ends, one, np.diff(dptr).astype(idx32), dptr[:-1].astype(idx32),
                   tgt[di], ends.off_of[di], ends.other_of[di], ends.other_off[di], ends.primary[di])


def pairs_within(
    network,
    src: tuple[np.ndarray, np.ndarray, np.ndarray],
    dst: tuple[np.ndarray, np.ndarray, np.ndarray],
    *,
    limit_m: float,
    tile_m: float = TILE_M,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Every (source, target) pair of snapped points at most ``limit_m`` apart on foot.

    Parameters
    ----------
    network : WalkNetwork
    src, dst : (edge, t, dist_m)
        Where each point joins the network (as :class:`~lifecircle.measure.snapping.Snap`):
        its edge, the position ``t`` along it and its access leg. Every point must be snapped.
    limit_m : float
        Longest walk reported.

    Yields
    ------
    (source, target, metres)
        Indices into ``src`` and ``dst`` and the walk, in batches. A pair of points on the
        same chain comes twice: around (through the chain's ends) and straight along it; the
        shorter is the pair's walk.

    Examples
    --------
    A 1 km street with a point 10 m off it at 100 m and two at 400 m and 900 m on it:

    >>> from lifecircle import WalkNetwork
    >>> net = WalkNetwork.from_lonlat([121.40, 121.4105], [31.20, 31.20], [0], [1])
    >>> L = float(net.length_m[0])
    >>> src = (np.array([0]), np.array([100 / L]), np.array([10.0]))
    >>> dst = (np.array([0, 0]), np.array([400 / L, 900 / L]), np.array([0.0, 0.0]))
    >>> [(s.tolist(), t.tolist(), np.round(d).tolist()) for s, t, d in pairs_within(net, src, dst, limit_m=500)]
    [([0], [0], [310.0])]
    """
    s_edge, s_t, s_leg = (np.asarray(a) for a in src)
    d_edge, d_t, d_leg = (np.asarray(a) for a in dst)
    s_edge = s_edge.astype(np.int64)
    d_edge = d_edge.astype(np.int64)
    s_t, s_leg, d_t, d_leg = (np.asarray(a, dtype=float) for a in (s_t, s_leg, d_t, d_leg))
    if len(s_edge) == 0 or len(d_edge) == 0:
        return
    hi_m = float(limit_m)
    ch = chains(network)
    n = len(ch.junction)
    mat, x, y, src_nodes = _virtual_sources(network, ch, s_edge, s_t, s_leg)
    d_chain, d_s, a, off_a, b, off_b = _points(network, ch, d_edge, d_t, d_leg)
    ends = _Ends.of(n, a, off_a, b, off_b)
    local = np.full(n + 1, -1, dtype=np.int32)  # junction -> column of a batch; the last stays -1
    for pos, nodes, d in local_dijkstra(mat, x, y, src_nodes, limit_m=hi_m, tile_m=tile_m, n_pool=n):
        yield from ends.expand(pos, nodes, d, hi_m, local)
    s_chain, s_s = ch.locate(network, s_edge, s_t)
    si, di, dist = _same_chain_pairs((s_chain, s_s, s_leg), (d_chain, d_s, d_leg), hi_m)
    if si.size:
        yield si, di, dist


#: Positions closer than this (metres) count as equal when :func:`pairs_within_thinned` compares a
#: catchment's edge with a candidate: it keeps a candidate rather than trust the last bits of a sum.
EVENT_TOL_M = 1e-3


def _sequences(ch: Chains, chain, s, idx, n: int):
    """Each chain's thinnable targets in order along it, with its end junctions' targets at 0 and L.

    Returns the entries (target index, kind: 0 junction at ``a``, 1 inside, 2 junction at ``b``),
    their keys (one sorted number line: chain ``c`` spans ``base[c] .. base[c] + length_m[c]``), the
    chains' bases, and per junction the chains with inside targets that it ends.
    """
    length = ch.length_m[chain]
    at_a, at_b = s <= 1e-6, s >= length - 1e-6
    inside = ~at_a & ~at_b
    # one target per junction (the first); the other targets at that junction are its copies
    j_of = np.where(at_a, ch.a[chain], ch.b[chain])
    jt = np.flatnonzero(~inside)
    rep = np.full(n, -1, dtype=np.int64)
    order = jt[np.argsort(idx[jt], kind="stable")][::-1]
    rep[j_of[order]] = idx[order]  # the last write wins: the lowest index
    copies = idx[jt][rep[j_of[jt]] != idx[jt]]
    ic = chain[inside]
    used = np.unique(ic)
    base = np.zeros(len(ch.length_m) + 1)
    base[1:] = np.cumsum(ch.length_m + 10.0)  # 10 m between chains: far beyond EVENT_TOL_M
    ra, rb = rep[ch.a[used]], rep[ch.b[used]]
    ha, hb = ra >= 0, rb >= 0
    e_idx = np.concatenate([idx[inside], ra[ha], rb[hb]])
    e_kind = np.concatenate([np.ones(int(inside.sum()), np.int8), np.zeros(int(ha.sum()), np.int8),
                             np.full(int(hb.sum()), 2, np.int8)])
    e_chain = np.concatenate([ic, used[ha], used[hb]])
    e_pos = np.concatenate([s[inside], np.zeros(int(ha.sum())), ch.length_m[used[hb]]])
    o = np.lexsort((e_kind, e_pos, e_chain))
    e_idx, e_kind, e_chain = e_idx[o], e_kind[o], e_chain[o]
    key = base[e_chain] + e_pos[o]
    # per junction, the chains with inside targets it ends (as a, as b)
    j = np.concatenate([ch.a[used], ch.b[used]])
    side = np.concatenate([np.zeros(len(used), np.int8), np.ones(len(used), np.int8)])
    c2 = np.concatenate([used, used])
    oj = np.argsort(j, kind="stable")
    inc_ptr = np.r_[0, np.cumsum(np.bincount(j, minlength=n))]
    inc_len = np.zeros(n)
    np.maximum.at(inc_len, j, ch.length_m[c2])
    return (e_idx, e_kind, e_chain, key), base, (inc_ptr, c2[oj], side[oj], inc_len), copies


def _mark_groups(flags: list[np.ndarray], key: np.ndarray, x: np.ndarray, who: np.ndarray,
                 member: list[np.ndarray]) -> None:
    """Flag, in each group's ``flags``, every gap ``g`` (between entries ``g`` and ``g + 1``) that holds a
    point of ``x`` (give or take :data:`EVENT_TOL_M`) of a source in that group.

    ``who`` is each point's row and ``member[g]`` says which rows are in group ``g``.
    """
    if x.size == 0:
        return
    lo = np.searchsorted(key, x - EVENT_TOL_M, side="right") - 1
    hi = np.searchsorted(key, x + EVENT_TOL_M, side="right") - 1
    lo = np.maximum(lo, 0)
    hi = np.maximum(np.minimum(hi, len(flags[0]) - 1), 0)
    gaps, ev = np.concatenate([lo, hi]), np.tile(np.arange(len(x)), 2)
    wide = np.flatnonzero(hi - lo > 1)  # several entries within the tolerance (rare): every gap between
    if wide.size:
        cnt = hi[wide] - lo[wide] - 1
        gaps = np.concatenate([gaps, np.repeat(lo[wide] + 1 - (np.cumsum(cnt) - cnt), cnt) + np.arange(int(cnt.sum()))])
        ev = np.concatenate([ev, np.repeat(wide, cnt)])
    rows = who[ev]
    for f, mk in zip(flags, member):
        f[gaps[mk[rows]]] = True


class _Batches:
    """The batches of :class:`Searches` (tuples of arrays), in memory, or, past ``spill_mb``, in a temporary
    file: an unnamed file in :func:`lifecircle.read.osm.cache_dir` (on disk, not in a RAM-backed /tmp), gone
    when the searches are. Each batch is read back whole when iterated (a city's are ~1-10 MB each), so
    searches shared by several calls cost the memory of one batch, not of all (1M nodes: ~0.3 GB), and
    a read from the page cache per call (~0.1 s)."""

    def __init__(self, spill_mb: float | None = None):
        self.spill_bytes = None if spill_mb is None else float(spill_mb) * 1e6
        self.held: list[tuple] = []
        self.nbytes = 0
        self.file = None
        self.index: list[list[tuple[int, np.dtype, tuple]]] = []  # per spilled batch: (offset, dtype, shape)

    def append(self, batch: tuple) -> None:
        self.nbytes += sum(a.nbytes for a in batch)
        if self.file is None and self.spill_bytes is not None and self.nbytes > self.spill_bytes:
            self._open()
            for b in self.held:
                self._write(b)
            self.held = []
        if self.file is None:
            self.held.append(batch)
        else:
            self._write(batch)

    def _open(self) -> None:
        import tempfile

        from ..read.osm import cache_dir

        try:
            self.file = tempfile.TemporaryFile(prefix="lifecircle-searches-", dir=cache_dir())
        except OSError:  # a read-only cache folder: the system's temporary folder
            self.file = tempfile.TemporaryFile(prefix="lifecircle-searches-")
        weakref.finalize(self, self.file.close)  # closed (and so gone) with the searches
        log.debug("catchment searches past %.0f MB: kept in a temporary file", self.spill_bytes / 1e6)

    def _write(self, batch: tuple) -> None:
        f = self.file
        entry = []
        for a in batch:
            a = np.ascontiguousarray(a)
            entry.append((f.seek(0, 2), a.dtype, a.shape))
            f.write(memoryview(a).cast("B") if a.size else b"")
        self.index.append(entry)

    def __len__(self) -> int:
        return len(self.held) + len(self.index)

    def __iter__(self):
        yield from self.held
        for entry in self.index:
            out = []
            for offset, dtype, shape in entry:
                a = np.empty(shape, dtype=dtype)
                if a.size:
                    self.file.seek(offset)
                    self.file.readinto(memoryview(a).cast("B"))
                out.append(a)
            yield tuple(out)


@dataclass(frozen=True, eq=False)
class Searches:
    """Bounded searches from snapped points on the contracted network, kept sparse (10 bytes a walk)
    so that several :func:`pairs_within_thinned` calls can share them; ``spill_mb=`` keeps the walks
    beyond that many megabytes in a temporary file on disk (:class:`_Batches`)."""

    s_edge: np.ndarray
    s_t: np.ndarray
    s_leg: np.ndarray
    limit_m: float
    stored: _Batches
    #: each source's walk to the ends ``a`` and ``b`` of its own chain (inf beyond ``limit_m``)
    own_a: np.ndarray | None = None
    own_b: np.ndarray | None = None

    @classmethod
    def run(cls, network, src, *, limit_m: float, tile_m: float = TILE_M, spill_mb: float | None = None) -> Searches:
        s_edge, s_t, s_leg = (np.asarray(a) for a in src)
        s_edge = s_edge.astype(np.int64)
        s_t, s_leg = np.asarray(s_t, dtype=float), np.asarray(s_leg, dtype=float)
        hi_m = float(limit_m)
        stored = _Batches(spill_mb)
        own = np.full((2, len(s_edge)), np.inf)
        if len(s_edge):
            ch = chains(network)
            n = len(ch.junction)
            mat, x, y, src_nodes = _virtual_sources(network, ch, s_edge, s_t, s_leg)
            own_ends = ch.a[ch.edge_chain[s_edge]], ch.b[ch.edge_chain[s_edge]]
            for pos, nodes, d in local_dijkstra(mat, x, y, src_nodes, limit_m=hi_m, tile_m=tile_m, n_pool=n):
                cols = np.flatnonzero((nodes < n) & (d <= hi_m).any(axis=0))
                d = d[:, cols]
                nodes = nodes[cols]
                rows = np.arange(len(pos))
                for side, end in enumerate(own_ends):
                    at = np.minimum(np.searchsorted(nodes, end[pos]), max(len(nodes) - 1, 0))
                    if len(nodes):
                        walk = np.where(nodes[at] == end[pos], d[rows, at], np.inf)
                        own[side, pos] = np.where(walk <= hi_m, walk, np.inf)
                i, k = np.nonzero(d <= hi_m)
                kind = np.uint16 if len(cols) <= np.iinfo(np.uint16).max else np.int32
                stored.append((pos, nodes, np.r_[0, np.cumsum(np.bincount(i, minlength=len(pos)))],
                               k.astype(kind), d[i, k]))
        return cls(s_edge, s_t, s_leg, hi_m, stored, own[0], own[1])

    def batches(self, col_of: np.ndarray):
        """(positions, junctions, dense walks, (row, column, metres)) of each batch, only the sources
        with ``col_of >= 0``."""
        for pos, nodes, ptr, k, walk in self.stored:
            rows = np.flatnonzero(col_of[pos] >= 0)
            if rows.size == 0:
                continue
            if rows.size == len(pos):
                i, kk, w = np.repeat(np.arange(len(pos)), np.diff(ptr)), k, walk
            else:
                ln = ptr[rows + 1] - ptr[rows]
                at = np.repeat(ptr[rows] - (np.cumsum(ln) - ln), ln) + np.arange(int(ln.sum()))
                i, kk, w = np.repeat(np.arange(len(rows)), ln), k[at], walk[at]
            d = np.full((len(rows), len(nodes)), np.inf)
            d[i, kk] = w
            yield pos[rows], nodes, d, (i, kk, w)


    def rows(self, col_of: np.ndarray):
        """(source, junctions, row pointers, columns, metres) of each batch's sources with ``col_of >= 0``
        (``source``: their ``col_of``), sparse."""
        for pos, nodes, ptr, k, walk in self.stored:
            sel = col_of[pos]
            rows = np.flatnonzero(sel >= 0)
            if rows.size == 0:
                continue
            if rows.size < len(pos):
                ln = ptr[rows + 1] - ptr[rows]
                at = np.repeat(ptr[rows] - (np.cumsum(ln) - ln), ln) + np.arange(int(ln.sum()))
                ptr, k, walk = np.r_[0, np.cumsum(ln)], k[at], walk[at]
            yield sel[rows], nodes, ptr, k, walk

    def expand(self, col_of: np.ndarray, ends: _SplitEnds, *, limit_m: float, sure_m: float, rows=None):
        """The (source, target) pairs of the sources with ``col_of >= 0`` within ``limit_m``, through junctions.

        Pairs within ``sure_m`` go to ``rows.add_runs(sources, runs, targets)`` (each batch's pairs
        grouped by source; ``rows`` may be None when ``sure_m`` is ``-inf``); the others are yielded
        as (source, target, metres). A target reached through both ends of its chain comes once,
        with the shorter walk (as :meth:`_Ends.expand`).
        """
        hi_m = float(limit_m)
        local = np.full(ends.single_tgt.shape[0], -1, dtype=np.int32)  # junction -> column; the last stays -1
        for src, nodes, ptr, k, walk in self.rows(col_of):
            nr, width = len(src), len(nodes) + 1  # a padded row: its last column is inf (not reached)
            big = nr * width >= np.iinfo(np.int32).max
            per_row = np.diff(ptr)
            rbase = np.repeat(np.arange(0, nr * width, width, dtype=np.int64 if big else np.int32), per_row)
            node = nodes[k]
            if ends.one:  # the junctions' own targets: one lookup per walk
                w1 = ends.single_off[node] + walk
                ok = w1 <= hi_m
                sure = ok & (w1 <= sure_m)
                if rows is not None:
                    runs = np.diff(np.r_[0, np.cumsum(sure, dtype=np.int64)][ptr])
                    nz = np.flatnonzero(runs)
                    if nz.size:
                        rows.add_runs(src[nz], runs[nz], ends.single_tgt[node[sure]])
                band = np.flatnonzero(ok & ~sure)
                if band.size:
                    yield src[np.searchsorted(ptr, band, side="right") - 1], ends.single_tgt[node[band]], w1[band]
            else:
                d = np.full((nr, width), np.inf)
                d.ravel()[rbase + k] = walk
                for si, ti, w in ends.single.expand(src, nodes, d[:, :-1], hi_m, local, (rbase // width, k, walk)):
                    sure = w <= sure_m
                    if rows is not None and sure.any():
                        rows.add_runs(*_runs(si[sure], ti[sure]))
                    if not sure.all():
                        yield si[~sure], ti[~sure], w[~sure]
            c = ends.cnt[node]
            tot = int(c.sum())
            if tot == 0:
                continue
            dflat = np.full(nr * width, np.inf)
            dflat[rbase + k] = walk
            local[nodes] = np.arange(len(nodes), dtype=np.int32)
            cs = np.cumsum(c)
            e = np.repeat(ends.start[node] - (cs - c), c)
            e += np.arange(tot, dtype=e.dtype)
            w = ends.off[e]
            w += np.repeat(walk, c)
            col = local[ends.other[e]]  # -1 (the previous row's pad) when the other end is not reached
            local[nodes] = -1
            col = col + np.repeat(rbase, c)
            wo = dflat[col]
            wo += ends.other_off[e]
            ok = (w <= hi_m) & (ends.primary[e] | ~(wo <= hi_m))
            np.minimum(w, wo, out=w)
            sure = ok & (w <= sure_m)
            if rows is not None:
                runs = np.diff(np.r_[0, np.cumsum(sure, dtype=np.int64)][np.r_[0, cs][ptr]])
                nz = np.flatnonzero(runs)
                if nz.size:
                    rows.add_runs(src[nz], runs[nz], ends.tgt[e[sure]])
            band = np.flatnonzero(ok & ~sure)
            if band.size:
                at = np.searchsorted(cs, band, side="right")  # the walk (entry) each comes from
                yield src[np.searchsorted(ptr, at, side="right") - 1], ends.tgt[e[band]], w[band]


def _runs(source: np.ndarray, target: np.ndarray):
    """(sources, runs, targets) of pairs, grouped by source (stable)."""
    order = np.argsort(source, kind="stable")
    source, target = source[order], target[order]
    start = np.flatnonzero(np.r_[True, source[1:] != source[:-1]])
    return source[start], np.diff(np.r_[start, len(source)]), target


def pairs_within_thinned(
    network,
    src: tuple[np.ndarray, np.ndarray, np.ndarray],
    dst: tuple[np.ndarray, np.ndarray, np.ndarray],
    *,
    limit_m: float,
    cover_m: float,
    thin: np.ndarray | None = None,
    tile_m: float = TILE_M,
    searches: Searches | None = None,
    sources: np.ndarray | None = None,
    keep: np.ndarray | None = None,
    sure_m: float | None = None,
    rows: Any = None,
) -> tuple[np.ndarray, Iterator]:
    """:func:`pairs_within` for the targets whose catchment no neighbour's contains, and which those are.

    A target ``j`` at ``s`` metres along its chain (access leg 0) covers a source ``r`` when
    ``min(d(r, a) + s, d(r, b) + L - s, the walk along the chain) <= cover_m``: the union of an
    interval ``[0, cover_m - d(r, a)]`` from the chain's end ``a``, one ``[L - cover_m + d(r, b), L]``
    to its end ``b``, and, for a source on the chain, one around the source. So between two
    neighbouring targets on a chain (the end junctions included) the catchment only loses sources
    where an interval ends and only gains them where one starts. When no interval ends between
    a target and the next one along the chain, every source the first covers the second covers
    too, and the first is dropped (its catchment is contained in a kept one's); likewise toward
    the previous target when no interval starts between them. So that every run of drops ends at
    a kept target, a junction's target is only dropped into a chain whose other end has a higher
    junction number, and of two equal neighbours only one gives way (inside a chain, the earlier). The intervals' edges come from the same searches (from the sources, on the
    contracted network) that give the pairs, which are then written only for the kept targets.

    Parameters
    ----------
    limit_m : float
        Longest walk reported (a hair above ``cover_m``, as :func:`pairs_within`).
    cover_m : float
        The walk that covers; interval edges within :data:`EVENT_TOL_M` of a target count as at
        it (so a target is kept rather than dropped on the last bits of a sum).
    thin : bool array, optional
        The targets that may be dropped (default: those with access leg 0; others are kept).
    searches, sources : Searches and int array, optional
        Searches made before (:meth:`Searches.run`, same ``limit_m``) from a set of points that
        holds the sources, and the sources' positions in it; ``src`` is then not used. So several
        calls with overlapping sources (one per facility category) search only once.
    keep : bool array, optional
        The targets kept, found before for these sources (:func:`thin_targets`, which thins for
        several groups of sources in one pass); only their pairs are written.
    sure_m, rows : float and rows builder, optional
        Pairs within ``sure_m`` are not yielded but handed, grouped by source, to
        ``rows.add_runs(sources, runs, targets)`` (fewer passes over the pairs, no metres kept),
        each pair once.

    Returns
    -------
    (keep, pairs)
        ``keep``: bool per target. ``pairs``: batches ``(source, target, metres)`` as
        :func:`pairs_within`, only for kept targets (indices into ``dst``), and only those farther
        than ``sure_m`` when it is given.

    Examples
    --------
    A 1 km street (two junctions) with a target every tenth of it and one source 50 m from its
    west end: walks of 320 m cover the targets 0 … 3 (at 0 … 300 m), which all cover the same
    source. The only edge of its interval is at 370 m, so 0 (the west junction, numbered lower
    than the east one), 1 and 2 are dropped toward 3; the empty ones 4 … 9 toward the east
    junction's target 10:

    >>> from lifecircle import WalkNetwork
    >>> net = WalkNetwork.from_lonlat([121.40, 121.4105], [31.20, 31.20], [0], [1])
    >>> L = float(net.length_m[0])
    >>> dst = (np.zeros(11, int), np.arange(11) / 10, np.zeros(11))
    >>> src = (np.array([0]), np.array([50 / L]), np.array([0.0]))
    >>> keep, pairs = pairs_within_thinned(net, src, dst, limit_m=320, cover_m=320)
    >>> np.flatnonzero(keep).tolist(), [(s.tolist(), t.tolist()) for s, t, _ in pairs]  # around, and along
    ([3, 10], [([0], [3])])
    """
    d_edge, d_t, d_leg = (np.asarray(a) for a in dst)
    d_edge = d_edge.astype(np.int64)
    d_t, d_leg = np.asarray(d_t, dtype=float), np.asarray(d_leg, dtype=float)
    nt = len(d_edge)
    if searches is None:
        searches = Searches.run(network, src, limit_m=limit_m, tile_m=tile_m)
        sources = None
    if searches.limit_m != float(limit_m):
        raise ValueError("the searches were made for another limit_m")
    n_all = len(searches.s_edge)
    use = np.arange(n_all) if sources is None else np.asarray(sources, dtype=np.int64)
    if len(use) == 0 or nt == 0:
        return np.ones(nt, dtype=bool), iter(())
    if keep is None:
        keep = thin_targets(network, dst, searches=searches, groups=[use], cover_m=cover_m, thin=thin)[0]
    elif len(keep) != nt:
        raise ValueError("keep must hold one flag per target")
    col_of = np.full(n_all, -1, dtype=np.int64)  # a search's source -> its index in this call
    col_of[use] = np.arange(len(use))
    hi_m = float(limit_m)
    ch = chains(network)
    n = len(ch.junction)
    d_chain, d_s = ch.locate(network, d_edge, d_t)
    s_chain, s_s = ch.locate(network, searches.s_edge, searches.s_t)
    s_leg = searches.s_leg
    kept = np.flatnonzero(keep)
    log.debug("pairs_within_thinned: %d of %d targets kept", len(kept), nt)
    _, _, a, off_a, b, off_b = _points(network, ch, d_edge[kept], d_t[kept], d_leg[kept])
    ends = _Ends.of(n, a, off_a, b, off_b)

    split = _SplitEnds.of(ends, kept)
    sure = -np.inf if sure_m is None else float(sure_m)

    def pairs():
        yield from searches.expand(col_of, split, limit_m=hi_m, sure_m=sure, rows=rows)
        si, di, dist = _same_chain_pairs((s_chain[use], s_s[use], s_leg[use]),
                                         (d_chain[kept], d_s[kept], d_leg[kept]), hi_m)
        ok = dist <= sure
        if rows is not None and ok.any():
            # a pair whose walk around (through an end of the chain) is sure is in the rows already
            q, t = use[si], kept[di]
            length = ch.length_m[d_chain[t]]
            wa = np.where(d_s[t] >= length, np.inf, (d_leg[t] + d_s[t]) + searches.own_a[q])
            wb = np.where(d_s[t] <= 0.0, np.inf, (d_leg[t] + (length - d_s[t])) + searches.own_b[q])
            new = ok & ~(np.minimum(wa, wb) <= sure)
            if new.any():
                rows.add_runs(*_runs(si[new], t[new].astype(np.int32)))
        if not ok.all():
            yield si[~ok], kept[di[~ok]], dist[~ok]

    return keep, pairs()


def thin_targets(
    network,
    dst: tuple[np.ndarray, np.ndarray, np.ndarray],
    *,
    searches: Searches,
    groups: list[np.ndarray],
    cover_m: float,
    thin: np.ndarray | None = None,
) -> list[np.ndarray]:
    """The ``keep`` flags of :func:`pairs_within_thinned` for several groups of sources at once.

    Each group is an array of positions in ``searches`` (e.g. the residents one facility category
    leaves uncovered). The interval edges of a source do not depend on the group it is in, so
    they are found once per source (one pass over the searches) and flagged for each of its
    groups: the flags, and so the targets kept, are those of one :func:`pairs_within_thinned`
    call per group.

    Examples
    --------
    The street of :func:`pairs_within_thinned` with a second source 50 m from its east end. The
    west source alone keeps 3 (the last target before its interval ends at 370 m) and the east
    junction's 10; for the east source alone the east junction's target covers everyone any
    other target covers, so only 10 is kept; both together keep 3 and 10:

    >>> from lifecircle import WalkNetwork
    >>> net = WalkNetwork.from_lonlat([121.40, 121.4105], [31.20, 31.20], [0], [1])
    >>> L = float(net.length_m[0])
    >>> dst = (np.zeros(11, int), np.arange(11) / 10, np.zeros(11))
    >>> s = Searches.run(net, (np.array([0, 0]), np.array([50 / L, 1 - 50 / L]), np.zeros(2)), limit_m=320)
    >>> [np.flatnonzero(k).tolist() for k in thin_targets(net, dst, searches=s, groups=[[0], [1], [0, 1]],
    ...                                                   cover_m=320)]
    [[3, 10], [10], [3, 10]]
    """
    d_edge, d_t, d_leg = (np.asarray(a) for a in dst)
    d_edge = d_edge.astype(np.int64)
    d_t, d_leg = np.asarray(d_t, dtype=float), np.asarray(d_leg, dtype=float)
    nt = len(d_edge)
    n_all = len(searches.s_edge)
    groups = [np.asarray(g, dtype=np.int64) for g in groups]
    member = []  # per group: is each search's source in it
    for g in groups:
        mk = np.zeros(n_all, dtype=bool)
        mk[g] = True
        member.append(mk)
    union = np.zeros(n_all, dtype=bool)
    for mk in member:
        union |= mk
    col_of = np.where(union, 0, -1)  # the batches' rows: the sources in any group
    s_edge, s_t, s_leg = searches.s_edge, searches.s_t, searches.s_leg
    R = float(cover_m)
    ch = chains(network)
    n = len(ch.junction)
    thin = (d_leg == 0) if thin is None else np.asarray(thin, dtype=bool)
    d_chain, d_s = ch.locate(network, d_edge, d_t)
    tidx = np.flatnonzero(thin)
    (e_idx, e_kind, e_chain, key), base, (inc_ptr, inc_chain, inc_side, inc_len), copies = _sequences(
        ch, d_chain[tidx], d_s[tidx], tidx, n)
    ends_flag = [np.zeros(max(len(key), 1), dtype=bool) for _ in groups]  # per group: gap g holds an interval's end
    starts_flag = [np.zeros(max(len(key), 1), dtype=bool) for _ in groups]  # ... an interval's start
    s_chain, s_s = ch.locate(network, s_edge, s_t)
    has_entries = np.zeros(len(ch.length_m), dtype=bool)
    has_entries[e_chain] = True
    local = np.full(n + 1, -1, dtype=np.int64)  # junction -> column of a batch; the last stays -1
    for pos, nodes, d, (i, k, walk) in searches.batches(col_of):
        mem = [g[pos] for g in member]  # each batch row's groups
        local[nodes] = np.arange(len(nodes))
        t = R - walk
        dpad = np.concatenate([d, np.full((len(d), 1), np.inf)], axis=1)  # column -1: not reached
        del d
        # (source, chain) for the chains the source reaches through a junction, not its own chain:
        # the union of [0, R - d(r, a)] and [L - R + d(r, b), L]; each side gives its own edge
        jn = nodes[k]
        near = (t >= -EVENT_TOL_M) & (t <= inc_len[jn] + EVENT_TOL_M)
        i, jn, t = i[near], jn[near], t[near]
        st = inc_ptr[jn]
        cnt = inc_ptr[jn + 1] - st
        tot = int(cnt.sum())
        if tot:
            e = np.repeat(st - (np.cumsum(cnt) - cnt), cnt) + np.arange(tot)
            t, i = np.repeat(t, cnt), np.repeat(i, cnt)
            c = inc_chain[e]
            own = c == s_chain[pos[i]]
            e, t, i, c = e[~own], t[~own], i[~own], c[~own]
            length = ch.length_m[c]
            from_a = inc_side[e] == 0
            t_other = R - dpad[i, local[np.where(from_a, ch.b[c], ch.a[c])]]  # -inf when not reached
            p = np.where(from_a, t, length - t)  # where this side's interval ends (from a) or starts
            whole = t + t_other >= length + EVENT_TOL_M  # the two intervals overlap: the chain is covered
            inside = ~whole & (p >= -EVENT_TOL_M) & (p <= length + EVENT_TOL_M)
            x_ev = base[c] + p
            sel = inside & from_a
            _mark_groups(ends_flag, key, x_ev[sel], i[sel], mem)
            sel = inside & ~from_a
            _mark_groups(starts_flag, key, x_ev[sel], i[sel], mem)
        # each source on its own chain: the union of those two and the walk along the chain
        on = has_entries[s_chain[pos]]
        if on.any():
            rows = np.flatnonzero(on)
            q = pos[rows]
            c = s_chain[q]
            length = ch.length_m[c]
            ta = R - dpad[rows, local[ch.a[c]]]
            tb = R - dpad[rows, local[ch.b[c]]]
            h = R - s_leg[q]
            lo = np.column_stack([np.where(ta >= -EVENT_TOL_M, 0.0, np.inf),
                                  np.where(h >= -EVENT_TOL_M, np.maximum(s_s[q] - h, 0.0), np.inf),
                                  np.where(tb >= -EVENT_TOL_M, np.maximum(length - tb, 0.0), np.inf)])
            hi = np.column_stack([np.where(ta >= -EVENT_TOL_M, np.minimum(ta, length), -np.inf),
                                  np.where(h >= -EVENT_TOL_M, np.minimum(s_s[q] + h, length), -np.inf),
                                  np.where(tb >= -EVENT_TOL_M, length, -np.inf)])
            o = np.argsort(lo, axis=1, kind="stable")
            lo, hi = np.take_along_axis(lo, o, axis=1), np.take_along_axis(hi, o, axis=1)
            starts, ends = [lo[:, 0]], []
            top = hi[:, 0]
            for j in (1, 2):
                gap = np.isfinite(lo[:, j]) & (lo[:, j] > top - EVENT_TOL_M)
                ends.append(np.where(gap, top, np.nan))
                starts.append(np.where(gap, lo[:, j], np.nan))
                top = np.maximum(top, hi[:, j])
            ends.append(top)
            for flags, xs in ((starts_flag, starts), (ends_flag, ends)):
                xv = np.concatenate(xs)
                cv = np.tile(c, len(xs))
                rv = np.tile(rows, len(xs))
                lv = ch.length_m[cv]
                ok = np.isfinite(xv) & (xv > 0) & (xv < lv)
                _mark_groups(flags, key, base[cv[ok]] + xv[ok], rv[ok], mem)
        local[nodes] = -1
    # the drops (see above): along the chain to the next entry, or back to the previous one
    m = len(key)
    same_next = np.zeros(m, dtype=bool)
    same_next[:-1] = e_chain[1:] == e_chain[:-1]
    nxt_inside = np.zeros(m, dtype=bool)
    nxt_inside[:-1] = e_kind[1:] == 1
    prv_inside = np.zeros(m, dtype=bool)
    prv_inside[1:] = e_kind[:-1] == 1
    same_prev = np.r_[False, same_next[:-1]]
    # a junction's target may go into a chain only toward the end with the higher junction number, so
    # no run of drops comes back to where it started; between two equal neighbours only one way
    up = (ch.b > ch.a)[e_chain]  # into the chain from a
    down = (ch.a > ch.b)[e_chain]  # into the chain from b
    nxt_down = np.r_[down[1:], False] if m else np.zeros(0, bool)
    prv_up = np.r_[False, up[:-1]] if m else np.zeros(0, bool)
    inside = e_kind == 1
    keeps = []
    for ends_g, starts_g in zip(ends_flag, starts_flag):
        ends_prev = np.r_[False, ends_g[: m - 1]] if m else np.zeros(0, bool)
        starts_prev = np.r_[False, starts_g[: m - 1]] if m else np.zeros(0, bool)
        ends_here, starts_here = ends_g[:m], starts_g[:m]
        to_next = same_next & ~ends_here & (
            (inside & (nxt_inside | starts_here | ~nxt_down)) | ((e_kind == 0) & nxt_inside & up))
        to_prev = same_prev & ~starts_prev & (
            (inside & (ends_prev | (~prv_inside & ~prv_up))) | ((e_kind == 2) & prv_inside & down))
        keep = np.ones(nt, dtype=bool)
        keep[e_idx[to_next | to_prev]] = False
        keep[copies] = False
        keeps.append(keep)
    return keeps
