"""Periodic neighbour list (Numba), for any cell shape, including cells smaller than r_cut.

An edge (i, j, S) means atom j in the periodic image displaced by the integer lattice vector
S is within r_cut of atom i: ``r_ij = x_j - x_i + S @ cell``, ``|r_ij| < r_cut`` (excluding i == j with S == 0;
overlapping atoms give zero-length edges, which :func:`pftlite.structures.batch.make_batch` rejects).
Every neighbour of i appears once per image, so small cells yield many edges to the same j.
Edges come sorted by i (CSR: the edges of atom i are ``first[i]:first[i+1]``), and within
the segment of atom i by (j, S) lexicographically, so the output is fully deterministic.

Algorithm: a cell list in fractional space, O(N) for large cells. Atoms are wrapped into the
cell (fractional coordinates in [0, 1)) and binned into an ``nb[0] x nb[1] x nb[2]`` grid
whose bins are at least ``r_cut / m[a]`` wide along each plane normal (plane spacing
``d_a = V / |b x c|``). Any image of j within r_cut of i then lies at most ``m[a]`` bins away
along axis a in the *unwrapped* (periodically repeated) bin lattice, so atom i visits the
``prod(2 m + 1)`` unwrapped bins around its own; each unwrapped bin is one (wrapped bin,
lattice image) pair, so every (j, S) is visited at most once, whatever the number of bins
(cells thinner than r_cut simply get one bin and ``m[a] = ceil(r_cut / d_a)`` image layers
along that axis). Shifts refer to the original, unwrapped positions:
with ``x = x_wrapped + n @ cell``, ``S = S_wrapped + n_i - n_j``.
Count and fill passes run in parallel over i (each i writes only its own CSR segment);
small structures use the same kernel serially, avoiding thread start-up costs.
"""

from __future__ import annotations

import numba as nb
import numpy as np

# Bins per r_cut along each plane normal: bins of width >= r_cut / _BINS_PER_RCUT, and each atom
# visits (2 * _BINS_PER_RCUT + 1)^3 bins. 2 visits a smaller volume (125 (r/2)^3 vs 27 r^3) but
# was no faster for Si at r_cut = 5 Å (more, emptier bins), so the plain cell list is used.
_BINS_PER_RCUT = 1
# Relative safety margin on r_cut for the bin geometry (covers round-off in binning).
_MARGIN = 1e-8
# At most this many bins per atom (plus a constant): bounds memory for huge sparse cells.
_MAX_BINS_PER_ATOM = 4
# Below this many atoms the kernels run serially (parallel start-up would dominate).
_PARALLEL_MIN_ATOMS = 64
#: refuse a neighbour list whose estimated edges would need more memory than this (bytes):
#: each edge holds j and S (32 bytes) and the backends keep a few arrays per edge
MAX_EDGE_BYTES = 4 * 2**30
_BYTES_PER_EDGE = 32 * 4


def estimated_edges(n_atoms: int, cell, r_cut: float) -> float:
    """Expected number of (i, j, S) pairs within r_cut for n_atoms in the cell: each atom sees
    the sphere's volume times the atom density, n² · (4/3 π r³) / V."""
    vol = abs(float(np.linalg.det(np.asarray(cell, float))))
    return n_atoms * n_atoms * (4.0 / 3.0 * np.pi * r_cut**3) / max(vol, 1e-300)


@nb.njit(cache=True)
def _grid(cell, r_cut, n_atoms):
    """Bins per axis nb (>= 1) and reach m (bins to visit either side of an atom's own bin).

    Uses the plane spacings d_a = V / |b x c| (distance between the lattice planes spanned by
    the other two vectors); bins are >= r_cut / m_a wide along each plane normal.
    """
    vol = abs(np.linalg.det(cell))
    rc = r_cut * (1.0 + _MARGIN)
    d = np.empty(3)
    nbins = np.empty(3, dtype=np.int64)
    for a in range(3):
        b = cell[(a + 1) % 3]
        c = cell[(a + 2) % 3]
        cx = b[1] * c[2] - b[2] * c[1]
        cy = b[2] * c[0] - b[0] * c[2]
        cz = b[0] * c[1] - b[1] * c[0]
        d[a] = vol / np.sqrt(cx * cx + cy * cy + cz * cz)
        nbins[a] = int(min(np.floor(_BINS_PER_RCUT * d[a] / rc), 1048576.0))  # no int64 overflow below
        nbins[a] = max(nbins[a], 1)
    cap = _MAX_BINS_PER_ATOM * n_atoms + 125
    while nbins[0] * nbins[1] * nbins[2] > cap:  # coarser bins stay correct (reach follows)
        a = int(np.argmax(nbins))
        nbins[a] = max(1, nbins[a] // 2)
    reach = np.empty(3, dtype=np.int64)
    for a in range(3):
        reach[a] = int(np.ceil(rc * nbins[a] / d[a]))
    return nbins, reach


@nb.njit(cache=True)
def _bin_atoms(frac, nbins):
    """Wrap and bin atoms. Returns (image n (N,3), bin index (N,), bin_start (B+1,), bin_atoms (N,)).

    Atoms in a bin are listed in increasing index order.
    """
    n = frac.shape[0]
    img = np.empty((n, 3), dtype=np.int64)
    abin = np.empty(n, dtype=np.int64)
    n_bins = nbins[0] * nbins[1] * nbins[2]
    counts = np.zeros(n_bins + 1, dtype=np.int64)
    for i in range(n):
        b = 0
        for a in range(3):
            fl = np.floor(frac[i, a])
            img[i, a] = int(fl)
            ba = int((frac[i, a] - fl) * nbins[a])
            if ba >= nbins[a]:  # frac - floor(frac) can round up to 1.0
                ba = nbins[a] - 1
            elif ba < 0:
                ba = 0
            b = b * nbins[a] + ba
        abin[i] = b
        counts[b + 1] += 1
    bin_start = np.cumsum(counts)
    pos = bin_start[:-1].copy()
    bin_atoms = np.empty(n, dtype=np.int64)
    for i in range(n):
        b = abin[i]
        bin_atoms[pos[b]] = i
        pos[b] += 1
    return img, abin, bin_start, bin_atoms


@nb.njit(cache=True)
def _atom_edges(i, frac, cell, rc2, img, abin, bin_start, bin_atoms, nbins, reach, fill, k0, out_j, out_shift):
    """Edges of atom i: returns their count; with fill, writes them to out_*[k0:] sorted by (j, S)."""
    nb0 = nbins[0]
    nb1 = nbins[1]
    nb2 = nbins[2]
    b = abin[i]
    bi2 = b % nb2
    bi1 = (b // nb2) % nb1
    bi0 = b // (nb2 * nb1)
    k = k0
    for o0 in range(-reach[0], reach[0] + 1):
        c0 = bi0 + o0
        w0 = c0 % nb0
        t0 = (c0 - w0) // nb0
        for o1 in range(-reach[1], reach[1] + 1):
            c1 = bi1 + o1
            w1 = c1 % nb1
            t1 = (c1 - w1) // nb1
            for o2 in range(-reach[2], reach[2] + 1):
                c2 = bi2 + o2
                w2 = c2 % nb2
                t2 = (c2 - w2) // nb2
                wb = (w0 * nb1 + w1) * nb2 + w2
                for p in range(bin_start[wb], bin_start[wb + 1]):
                    j = bin_atoms[p]
                    # image of j relative to the original (unwrapped) positions
                    s0 = t0 + img[i, 0] - img[j, 0]
                    s1 = t1 + img[i, 1] - img[j, 1]
                    s2 = t2 + img[i, 2] - img[j, 2]
                    f0 = (frac[j, 0] - frac[i, 0]) + s0
                    f1 = (frac[j, 1] - frac[i, 1]) + s1
                    f2 = (frac[j, 2] - frac[i, 2]) + s2
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
    if fill:  # insertion sort of the segment by (j, S0, S1, S2): deterministic, ~tens of edges
        for q in range(k0 + 1, k):
            jq = out_j[q]
            q0 = out_shift[q, 0]
            q1 = out_shift[q, 1]
            q2 = out_shift[q, 2]
            r = q - 1
            while r >= k0:
                jr = out_j[r]
                if jr < jq:
                    break
                if jr == jq:
                    r0 = out_shift[r, 0]
                    if r0 < q0:
                        break
                    if r0 == q0:
                        r1 = out_shift[r, 1]
                        if r1 < q1 or (r1 == q1 and out_shift[r, 2] < q2):
                            break
                out_j[r + 1] = jr
                out_shift[r + 1, 0] = out_shift[r, 0]
                out_shift[r + 1, 1] = out_shift[r, 1]
                out_shift[r + 1, 2] = out_shift[r, 2]
                r -= 1
            out_j[r + 1] = jq
            out_shift[r + 1, 0] = q0
            out_shift[r + 1, 1] = q1
            out_shift[r + 1, 2] = q2
    return k - k0


@nb.njit(cache=True, parallel=True)
def _edges_parallel(frac, cell, rc2, img, abin, bin_start, bin_atoms, nbins, reach, fill, first, out_j, out_shift):
    n = frac.shape[0]
    counts = np.zeros(n, dtype=np.int64)
    for i in nb.prange(n):
        k0 = first[i] if fill else 0
        counts[i] = _atom_edges(
            i, frac, cell, rc2, img, abin, bin_start, bin_atoms, nbins, reach, fill, k0, out_j, out_shift
        )
    return counts


@nb.njit(cache=True)
def _edges_serial(frac, cell, rc2, img, abin, bin_start, bin_atoms, nbins, reach, fill, first, out_j, out_shift):
    n = frac.shape[0]
    counts = np.zeros(n, dtype=np.int64)
    for i in range(n):
        k0 = first[i] if fill else 0
        counts[i] = _atom_edges(
            i, frac, cell, rc2, img, abin, bin_start, bin_atoms, nbins, reach, fill, k0, out_j, out_shift
        )
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
    positions = np.ascontiguousarray(positions, dtype=np.float64).reshape(-1, 3)
    cell = np.ascontiguousarray(cell, dtype=np.float64).reshape(3, 3)
    r_cut = float(r_cut)
    if not np.isfinite(r_cut):
        raise ValueError(f"neighbor_list: r_cut must be finite, got {r_cut}")
    n = len(positions)
    if n == 0 or r_cut <= 0.0:
        return np.zeros(n + 1, dtype=np.int64), np.zeros(0, np.int64), np.zeros((0, 3), np.int64)
    est = estimated_edges(n, cell, r_cut)
    if est * _BYTES_PER_EDGE > MAX_EDGE_BYTES:
        from pftlite.core.errors import InputError

        vol = abs(float(np.linalg.det(cell)))
        raise InputError(
            f"neighbour list: {n} atom(s) in a {vol:.3g} Å³ cell with r_cut {r_cut:g} Å means "
            f"about {est:.3g} neighbour pairs ({est * _BYTES_PER_EDGE / 2**30:.3g} GiB), more than "
            f"the {MAX_EDGE_BYTES / 2**30:.0f} GiB allowed: is the cell (in Å) far too small?"
        )
    frac = np.ascontiguousarray(positions @ np.linalg.inv(cell))
    nbins, reach = _grid(cell, r_cut, n)
    img, abin, bin_start, bin_atoms = _bin_atoms(frac, nbins)
    kernel = _edges_parallel if n >= _PARALLEL_MIN_ATOMS else _edges_serial
    rc2 = r_cut * r_cut
    args = (frac, cell, rc2, img, abin, bin_start, bin_atoms, nbins, reach)
    first = np.zeros(n + 1, dtype=np.int64)
    counts = kernel(*args, False, first, np.zeros(0, np.int64), np.zeros((0, 3), np.int64))
    np.cumsum(counts, out=first[1:])
    j = np.empty(first[-1], dtype=np.int64)
    shift = np.empty((first[-1], 3), dtype=np.int64)
    kernel(*args, True, first, j, shift)
    return first, j, shift
