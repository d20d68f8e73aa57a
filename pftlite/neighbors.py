"""Periodic neighbour list (Numba), for any cell shape, including cells smaller than r_cut.

An edge (i, j, S) means atom j in the periodic image displaced by the integer lattice vector
S is within r_cut of atom i: ``r_ij = x_j - x_i + S @ cell``, ``|r_ij| < r_cut`` (excluding i == j with S == 0;
overlapping atoms give zero-length edges, which :func:`pftlite.batch.make_batch` rejects).
Every neighbour of i appears once per image, so small cells yield many edges to the same j.
Edges come sorted by i (CSR: the edges of atom i are ``first[i]:first[i+1]``).
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True)
def _count_or_fill(frac, cell, r_cut, fill, first, out_j, out_shift):
    n = frac.shape[0]
    rc2 = r_cut * r_cut
    # plane spacings d_a = V / |b x c| etc: image range along a is |df_a + S_a| * d_a <= r_cut
    vol = abs(np.linalg.det(cell))
    d = np.empty(3)
    for a in range(3):
        b = cell[(a + 1) % 3]
        c = cell[(a + 2) % 3]
        cr = np.array([b[1] * c[2] - b[2] * c[1], b[2] * c[0] - b[0] * c[2], b[0] * c[1] - b[1] * c[0]])
        d[a] = vol / np.sqrt(cr[0] ** 2 + cr[1] ** 2 + cr[2] ** 2)
    counts = np.zeros(n, dtype=np.int64)
    for i in range(n):
        k = first[i] if fill else 0
        for j in range(n):
            lo = np.empty(3, dtype=np.int64)
            hi = np.empty(3, dtype=np.int64)
            df = frac[j] - frac[i]
            for a in range(3):
                lo[a] = int(np.ceil(-r_cut / d[a] - df[a]))
                hi[a] = int(np.floor(r_cut / d[a] - df[a]))
            for s0 in range(lo[0], hi[0] + 1):
                for s1 in range(lo[1], hi[1] + 1):
                    for s2 in range(lo[2], hi[2] + 1):
                        f0 = df[0] + s0
                        f1 = df[1] + s1
                        f2 = df[2] + s2
                        rx = f0 * cell[0, 0] + f1 * cell[1, 0] + f2 * cell[2, 0]
                        ry = f0 * cell[0, 1] + f1 * cell[1, 1] + f2 * cell[2, 1]
                        rz = f0 * cell[0, 2] + f1 * cell[1, 2] + f2 * cell[2, 2]
                        r2 = rx * rx + ry * ry + rz * rz
                        if r2 < rc2 and not (i == j and s0 == 0 and s1 == 0 and s2 == 0):
                            if fill:
                                out_j[k] = j
                                out_shift[k, 0] = s0
                                out_shift[k, 1] = s1
                                out_shift[k, 2] = s2
                                k += 1
                            else:
                                counts[i] += 1
    return counts


def neighbor_list(positions, cell, r_cut):
    """Periodic neighbour list of one structure.

    Parameters
    ----------
    positions : (N, 3) float, Å (Cartesian, need not be wrapped into the cell)
    cell : (3, 3) float, Å, lattice vectors as rows
    r_cut : float, Å

    Returns
    -------
    first : (N + 1,) int64, CSR offsets (edges of atom i are first[i]:first[i+1])
    j : (E,) int64, neighbour index
    shift : (E, 3) int64, lattice image S so that r_ij = x_j - x_i + S @ cell
    """
    positions = np.ascontiguousarray(positions, dtype=np.float64)
    cell = np.ascontiguousarray(cell, dtype=np.float64)
    frac = positions @ np.linalg.inv(cell)
    frac = np.ascontiguousarray(frac)
    n = len(positions)
    dummy_first = np.zeros(n + 1, dtype=np.int64)
    counts = _count_or_fill(
        frac, cell, float(r_cut), False, dummy_first, np.zeros(0, np.int64), np.zeros((0, 3), np.int64)
    )
    first = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=first[1:])
    j = np.empty(first[-1], dtype=np.int64)
    shift = np.empty((first[-1], 3), dtype=np.int64)
    _count_or_fill(frac, cell, float(r_cut), True, first, j, shift)
    return first, j, shift
