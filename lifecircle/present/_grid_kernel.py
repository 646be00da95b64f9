"""The compiled inner loop of ``method="grid"`` service areas (numba).

:func:`group_layers` writes one group's cell–street distances into its layers, pair by pair, with the same
arithmetic as the numpy path of :func:`lifecircle.present.isochrones._grid_layers` (float64 for the cells a
street's box covers, float32 for the distances, uint16 steps): the layers are identical, which
``tests/test_isochrones.py`` checks. Compiled once per machine (``cache=True``), and it releases the GIL,
so that a group's layers are made while the group before is contoured.

:func:`rings_lonlat` measures a contour's rings and turns them into lon/lat by two polynomials fitted to PROJ's
transform over the grid (checked against it there; about 5× faster than PROJ on a city's millions of vertices).
:func:`rings_wkb` writes a contour's rings as the WKB of one MultiPolygon, byte for byte what ``shapely.to_wkb``
makes of it (a city's 126 MB in ~0.1 s instead of 0.8 s, on the thread that made the rings).

Imported only when a grid is large enough to need it; :mod:`lifecircle.present.isochrones` falls back to
numpy when numba is missing.
"""

from __future__ import annotations

import math

import numba
import numpy as np

Q_MAX = 65535


@numba.njit(cache=True, nogil=True)
def group_layers(ax, ay, bx, by, base, cut_row, iv, at, h, R, nx, ny, q_per_m, n_cells, field):  # pragma: no cover
    """Take the minimum of ``field`` (uint16, ``n_lim × n_cells``) with the distances of the cells near each
    segment ``e`` (``ax[e], ay[e]`` → ``bx[e], by[e]``, metres from the grid's corner; cells of ``h`` metres,
    ``nx`` × ``ny``; those whose centre lies in the box of half-width ``R`` around the segment).

    ``base[e] >= 0``: the segment is reached whole from some limit on and writes its distance at
    ``field[base[e] + cell]``. ``cut_row[e] >= 0``: it is cut at some limits, where ``at[cut_row[e], i]``
    is set, and writes its distance to the reached parts ``iv[cut_row[e], i] = (lo1, hi1, lo2, hi2)``
    (metres along it) at ``field[i * n_cells + cell]``.
    """
    n_lim = at.shape[1]
    qpm = np.float32(q_per_m)
    half = np.float32(0.5)
    qmax = np.float32(Q_MAX)
    zero = np.float32(0.0)
    for e in range(ax.size):
        b = base[e]
        c = cut_row[e]
        if b < 0 and c < 0:
            continue
        x0, y0, x1, y1 = ax[e], ay[e], bx[e], by[e]
        length = math.hypot(x1 - x0, y1 - y0)
        if length > 0:
            ux = (x1 - x0) / length
            uy = (y1 - y0) / length
        else:  # a point (a zero-length leg) gets any direction
            ux, uy = 1.0, 0.0
        iux = 1.0 / (1e-12 if abs(ux) < 1e-12 else ux)
        iuy = 1.0 / (1e-12 if abs(uy) < 1e-12 else uy)
        j0 = int(min(max(math.ceil((min(y0, y1) - R) / h - 0.5), 0.0), float(ny)))
        j1 = int(min(max(math.floor((max(y0, y1) + R) / h - 0.5), -1.0), float(ny - 1)))
        length32 = np.float32(length)
        for j in range(j0, j1 + 1):
            dy = (j + 0.5) * h - y0
            across0 = dy * ux
            along0 = dy * uy
            c1 = (across0 - R) * iuy
            c2 = (across0 + R) * iuy
            c3 = (-R - along0) * iux
            c4 = (length + R - along0) * iux
            lo = max(min(c1, c2), min(c3, c4)) + x0
            hi = min(max(c1, c2), max(c3, c4)) + x0
            i_lo = int(math.ceil(min(max(lo / h - 0.5, 0.0), float(nx))))
            i_hi = int(math.floor(min(max(hi / h - 0.5, -1.0), float(nx - 1))))
            if i_hi < i_lo:
                continue
            dx0 = (i_lo + 0.5) * h - x0
            s0 = np.float32(dx0 * ux + along0)
            p0 = np.float32(across0 - dx0 * uy)
            sx = np.float32(h * ux)
            px = np.float32(-h * uy)
            c0 = j * nx + i_lo
            for k in range(i_hi - i_lo + 1):
                kf = np.float32(k)
                s = s0 + kf * sx
                p = p0 + kf * px
                p2 = p * p
                if b >= 0:
                    gap = max(max(-s, s - length32), zero)
                    q = np.uint16(min(np.sqrt(p2 + gap * gap) * qpm + half, qmax))
                    idx = b + c0 + k
                    if q < field[idx]:
                        field[idx] = q
                if c >= 0:
                    for i in range(n_lim):
                        if at[c, i]:
                            g1 = max(max(iv[c, i, 0] - s, s - iv[c, i, 1]), zero)
                            g2 = max(max(iv[c, i, 2] - s, s - iv[c, i, 3]), zero)
                            gap = min(g1, g2)
                            q = np.uint16(min(np.sqrt(p2 + gap * gap) * qpm + half, qmax))
                            idx = i * n_cells + c0 + k
                            if q < field[idx]:
                                field[idx] = q


@numba.njit(cache=True, nogil=True)
def rings_lonlat(points, offsets, shell, x0, y0, frame, coef):  # pragma: no cover
    """The area of closed rings (m²: shells minus holes, measured before the shift), then the rings' points
    shifted by ``(x0, y0)`` and turned into lon/lat in place by two polynomials.

    ``points``: float64 ``n × 2``; ring ``r`` is ``points[offsets[r]:offsets[r + 1]]``, its last point its first;
    ``shell[r]``: ring ``r`` is a polygon's outer ring. ``frame = (cx, cy, 1 / sx, 1 / sy, lon0, lat0)``:
    ``u = (x - cx) / sx``, ``v = (y - cy) / sy``; ``lon = lon0 + sum(coef[0, i, j] u^i v^j)``, ``lat`` likewise
    with ``coef[1]`` (``i + j <= degree``, evaluated by Horner's rule).
    """
    area = 0.0
    for r in range(offsets.size - 1):
        a = 0.0
        for k in range(offsets[r], offsets[r + 1] - 1):
            a += points[k, 0] * points[k + 1, 1] - points[k + 1, 0] * points[k, 1]
        a = abs(a) / 2
        area += a if shell[r] else -a
    cx, cy, isx, isy, lon0, lat0 = frame[0], frame[1], frame[2], frame[3], frame[4], frame[5]
    deg = coef.shape[1] - 1
    for k in range(points.shape[0]):
        u = (points[k, 0] + x0 - cx) * isx
        v = (points[k, 1] + y0 - cy) * isy
        lon = 0.0
        lat = 0.0
        for i in range(deg, -1, -1):
            b0 = 0.0
            b1 = 0.0
            for j in range(deg - i, -1, -1):
                b0 = b0 * v + coef[0, i, j]
                b1 = b1 * v + coef[1, i, j]
            lon = lon * u + b0
            lat = lat * u + b1
        points[k, 0] = lon0 + lon
        points[k, 1] = lat0 + lat
    return area


def wkb_size(n_points: int, n_rings: int, n_polygons: int) -> int:
    """Bytes of :func:`rings_wkb`'s MultiPolygon: its header, each polygon's and ring's, two doubles a point."""
    return 9 + 9 * n_polygons + 4 * n_rings + 16 * n_points


@numba.njit(cache=True, nogil=True)
def rings_wkb(point_bytes, offsets, outer, out):  # pragma: no cover
    """Write closed rings as the little-endian 2-D WKB of one MultiPolygon into ``out`` (uint8, of
    :func:`wkb_size` bytes): polygon ``p`` has the rings ``outer[p]:outer[p + 1]``, its outer ring first; ring
    ``r`` the points ``offsets[r]:offsets[r + 1]``, given as their float64 bytes (``point_bytes``: 16 a point,
    x then y, as a C-ordered ``n × 2`` array holds them)."""
    n_poly = outer.size - 1
    pos = 0
    out[pos] = 1
    _u32(out, pos + 1, 6)
    _u32(out, pos + 5, n_poly)
    pos += 9
    for p in range(n_poly):
        out[pos] = 1
        _u32(out, pos + 1, 3)
        _u32(out, pos + 5, outer[p + 1] - outer[p])
        pos += 9
        for r in range(outer[p], outer[p + 1]):
            a, b = offsets[r], offsets[r + 1]
            _u32(out, pos, b - a)
            pos += 4
            n = 16 * (b - a)
            out[pos:pos + n] = point_bytes[16 * a:16 * b]
            pos += n
    return pos


@numba.njit(cache=True, nogil=True, inline="always")
def _u32(out, at, value):  # pragma: no cover
    v = np.uint32(value)
    out[at] = v & 0xFF
    out[at + 1] = (v >> 8) & 0xFF
    out[at + 2] = (v >> 16) & 0xFF
    out[at + 3] = (v >> 24) & 0xFF


def warm_up() -> None:
    """Load (or, the first time on a machine, compile) :func:`group_layers`, :func:`rings_lonlat` and
    :func:`rings_wkb` for the argument types that :mod:`lifecircle.present.isochrones` passes, by calling them
    on one empty cell and one empty ring."""
    one = np.zeros(1)
    group_layers(one, one, one, one, np.full(1, -1, dtype=np.int64), np.full(1, -1, dtype=np.int32),
                 np.zeros((0, 1, 4), dtype=np.float32), np.zeros((0, 1), dtype=bool), 1.0, 1.0, 1, 1, 1.0, 1,
                 np.full(1, Q_MAX, dtype=np.uint16))
    rings_lonlat(np.zeros((2, 2)), np.array([0, 2], dtype=np.int64), np.ones(1, dtype=bool), 0.0, 0.0,
                 np.array([0.0, 0.0, 1.0, 1.0, 0.0, 0.0]), np.zeros((2, 1, 1)))
    rings_wkb(np.zeros(32, dtype=np.uint8), np.array([0, 2], dtype=np.int64), np.array([0, 1], dtype=np.int64),
              np.zeros(wkb_size(2, 1, 1), dtype=np.uint8))
