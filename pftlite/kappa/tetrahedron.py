"""Numba kernels of the linear tetrahedron method and the three-phonon δ weights.

Part of the κ solver's kernels (:mod:`pftlite.kappa.kernels`): tetrahedron-method delta
weights (phonopy's "I" function), grid neighbours of a q-point, and the weights of the
three-phonon delta functions of one triplet (g2, g0 - g1), averaged over degenerate sets at q'
and q'' (see :mod:`pftlite.kappa.kernels` on degenerate bands). Frequencies in THz.
"""

from __future__ import annotations

import numpy as np
from numba import njit

THM_EPSILON = 1e-10
#: |ω - vertex value| below which ω counts as *at* that vertex (THz), and the offset of the
#: two one-sided evaluations then averaged (see :func:`thm_weight_sorted`)
THM_SNAP = 1e-9
THM_SIDE = 2e-9
TWO_PI = 2.0 * np.pi


# ---------------------------------------------------------------- tetrahedron method


@njit(cache=True, inline="always")
def _f(v, omega, n, m):
    delta = v[n] - v[m]
    if abs(delta) < THM_EPSILON:
        return 0.0
    return (omega - v[m]) / delta


@njit(cache=True)
def _thm_I(v, omega, i, ci):
    """Integration weight factor I_i,ci of the sorted vertex values ``v`` (phonopy's _I)."""
    if i == 1:
        if ci == 0:
            return (_f(v, omega, 0, 1) + _f(v, omega, 0, 2) + _f(v, omega, 0, 3)) / 3
        if ci == 1:
            return _f(v, omega, 1, 0) / 3
        if ci == 2:
            return _f(v, omega, 2, 0) / 3
        return _f(v, omega, 3, 0) / 3
    if i == 2:
        g = _f(v, omega, 1, 2) * _f(v, omega, 2, 0) + _f(v, omega, 2, 1) * _f(v, omega, 1, 3)
        if g < THM_EPSILON:
            return 0.0
        if ci == 0:
            return (_f(v, omega, 0, 3) + _f(v, omega, 0, 2) * _f(v, omega, 2, 0)
                    * _f(v, omega, 1, 2) / g) / 3  # fmt: skip
        if ci == 1:
            return (_f(v, omega, 1, 2) + _f(v, omega, 1, 3) ** 2 * _f(v, omega, 2, 1) / g) / 3
        if ci == 2:
            return (_f(v, omega, 2, 1) + _f(v, omega, 2, 0) ** 2 * _f(v, omega, 1, 2) / g) / 3
        return (_f(v, omega, 3, 0) + _f(v, omega, 3, 1) * _f(v, omega, 1, 3)
                * _f(v, omega, 2, 1) / g) / 3  # fmt: skip
    if i == 3:
        if ci == 0:
            return _f(v, omega, 0, 3) / 3
        if ci == 1:
            return _f(v, omega, 1, 3) / 3
        if ci == 2:
            return _f(v, omega, 2, 3) / 3
        return (_f(v, omega, 3, 0) + _f(v, omega, 3, 1) + _f(v, omega, 3, 2)) / 3
    return 0.0


@njit(cache=True)
def _thm_g(v, omega, i):
    """Density factor g_i of the sorted vertex values ``v`` (phonopy's _g)."""
    if i == 1:
        return 3 * _f(v, omega, 1, 0) * _f(v, omega, 2, 0) / (v[3] - v[0])
    if i == 2:
        return 3 / (v[3] - v[0]) * (_f(v, omega, 1, 2) * _f(v, omega, 2, 0)
                                   + _f(v, omega, 2, 1) * _f(v, omega, 1, 3))  # fmt: skip
    if i == 3:
        return 3 * _f(v, omega, 1, 3) * _f(v, omega, 2, 3) / (v[3] - v[0])
    return 0.0


@njit(cache=True)
def thm_sort(tomegas, central, vs, cis):
    """Sort the vertex values of each tetrahedron: ``vs`` (n_tetra, 4) ascending, ``cis``
    (n_tetra,) the sorted position of the central vertex (ties keep the vertex order)."""
    n_tetra = tomegas.shape[0]
    idx = np.empty(4, dtype=np.int64)
    for t in range(n_tetra):
        for c in range(4):
            idx[c] = c
        for c in range(1, 4):  # stable insertion sort of 4 values
            k = idx[c]
            x = tomegas[t, k]
            d = c - 1
            while d >= 0 and tomegas[t, idx[d]] > x:
                idx[d + 1] = idx[d]
                d -= 1
            idx[d + 1] = k
        for c in range(4):
            vs[t, c] = tomegas[t, idx[c]]
            if idx[c] == central[t]:
                cis[t] = c


@njit(cache=True, inline="always")
def _thm_tetra(v, omega, ci):
    """One tetrahedron's I·g at ``omega`` (sorted vertex values ``v``, central vertex ``ci``)."""
    if omega < v[0]:
        return 0.0
    elif omega < v[1]:
        i = 1
    elif omega < v[2]:
        i = 2
    elif omega < v[3]:
        i = 3
    else:
        return 0.0
    return _thm_I(v, omega, i, ci) * _thm_g(v, omega, i)


@njit(cache=True)
def thm_weight_sorted(omega, vs, cis):
    """Linear-tetrahedron weight of δ(omega - ε(q)) at the central grid point (1/THz per
    grid point), from :func:`thm_sort` output (phonopy's "I" function).

    Where ``omega`` is within ``THM_SNAP`` of a vertex value — which symmetry makes exact:
    ω = f(q0) and a vertex is a star image of q0 — rounding noise would pick the branch, and
    with two equal vertex values one branch has zero width (phonopy's regularisation gives 0
    there instead of the limit) or the tetrahedron DOS has a step. The weight there is the mean
    of the one-sided values at ω ± ``THM_SIDE``: the limit where the weight is continuous, the
    midpoint of a step, and in either case independent of the noise.
    """
    n_tetra = vs.shape[0]
    total = 0.0
    for t in range(n_tetra):
        v = vs[t]
        at_vertex = False
        for c in range(4):
            if abs(omega - v[c]) < THM_SNAP:
                at_vertex = True
        if at_vertex:
            total += 0.5 * (_thm_tetra(v, omega - THM_SIDE, cis[t])
                            + _thm_tetra(v, omega + THM_SIDE, cis[t]))  # fmt: skip
        else:
            total += _thm_tetra(v, omega, cis[t])
    return total / (n_tetra / 4)


@njit(cache=True)
def thm_delta_weight(omega, tomegas, central):
    """Weight of δ(omega - ε(q)) from unsorted vertex values ``tomegas`` (n_tetra, 4)."""
    vs = np.empty(tomegas.shape)
    cis = np.empty(tomegas.shape[0], dtype=np.int64)
    thm_sort(tomegas, central, vs, cis)
    return thm_weight_sorted(omega, vs, cis)


@njit(cache=True, inline="always")
def grid_index(a0, a1, a2, D):
    r0 = a0 % D[0]
    r1 = a1 % D[1]
    r2 = a2 % D[2]
    return r0 + r1 * D[0] + r2 * D[0] * D[1]


@njit(cache=True)
def neighbor_bz_points(gp, rel, addresses, gp_map, D):
    """BZ-grid points at ``addresses[gp] + rel`` (rel (n, 4, 3)), phonopy's rule for images."""
    n0, n1 = rel.shape[0], rel.shape[1]
    out = np.empty((n0, n1), dtype=np.int64)
    for i in range(n0):
        for j in range(n1):
            a0 = addresses[gp, 0] + rel[i, j, 0]
            a1 = addresses[gp, 1] + rel[i, j, 1]
            a2 = addresses[gp, 2] + rel[i, j, 2]
            g = grid_index(a0, a1, a2, D)
            best = gp_map[g]
            for k in range(gp_map[g], gp_map[g + 1]):
                if addresses[k, 0] == a0 and addresses[k, 1] == a1 and addresses[k, 2] == a2:
                    best = k
                    break
            out[i, j] = best
    return out


@njit(cache=True)
def central_indices(rel):
    n = rel.shape[0]
    out = np.zeros(n, dtype=np.int64)
    for t in range(n):
        for c in range(4):
            if rel[t, c, 0] == 0 and rel[t, c, 1] == 0 and rel[t, c, 2] == 0:
                out[t] = c
                break
    return out


@njit(cache=True)
def gaussian(x, sigma):
    return np.exp(-(x * x) / (2 * sigma * sigma)) / (np.sqrt(2 * np.pi) * sigma)


@njit(cache=True)
def average_degenerate_blocks(g, d1, d2):
    """Replace ``g[i, J, K]`` (n0, nb, nb) by its mean over each block J × K of degenerate
    sets (``d1``/``d2``: first band of each band's set at q'/q'', sets contiguous)."""
    n0, nb, _ = g.shape
    j0 = 0
    while j0 < nb:
        j1 = j0 + 1
        while j1 < nb and d1[j1] == d1[j0]:
            j1 += 1
        k0 = 0
        while k0 < nb:
            k1 = k0 + 1
            while k1 < nb and d2[k1] == d2[k0]:
                k1 += 1
            if (j1 - j0) * (k1 - k0) > 1:
                inv = 1.0 / ((j1 - j0) * (k1 - k0))
                for i in range(n0):
                    m = 0.0
                    for j in range(j0, j1):
                        for k in range(k0, k1):
                            m += g[i, j, k]
                    m *= inv
                    for j in range(j0, j1):
                        for k in range(k0, k1):
                            g[i, j, k] = m
            k0 = k1
        j0 = j1


@njit(cache=True)
def triplet_weights(f0s, freqs, v1, v2, gp1, gp2, central, sigma, g0, g01):
    """Integration weights of one triplet into ``g0``/``g01`` (n0, nb, nb).

    g0 = δ(f0 - f1 - f2); g01 = δ(f0 + f1 - f2) - δ(f0 - f1 + f2). Tetrahedron method over
    the tetrahedra ``v1`` around q1 and ``v2`` (negated addresses) around q2 (negative
    frequencies clamped to 0) when ``sigma <= 0``; Gaussians of width ``sigma`` otherwise.
    Returns True when any weight is nonzero.
    """
    n0 = f0s.shape[0]
    nb = freqs.shape[1]
    nt = v1.shape[0]
    any_nz = False
    if sigma > 0:
        for j in range(nb):
            for k in range(nb):
                f1 = freqs[gp1, j]
                f2 = freqs[gp2, k]
                for i in range(n0):
                    a = gaussian(f0s[i] - f1 - f2, sigma)
                    b = gaussian(f0s[i] + f1 - f2, sigma) - gaussian(f0s[i] - f1 + f2, sigma)
                    g0[i, j, k] = a
                    g01[i, j, k] = b
                    if a != 0.0 or b != 0.0:
                        any_nz = True
        return any_nz
    sp = np.empty((nt, 4))
    sm = np.empty((nt, 4))
    dm = np.empty((nt, 4))
    vsp = np.empty((nt, 4))
    vsm = np.empty((nt, 4))
    vdm = np.empty((nt, 4))
    csp = np.empty(nt, dtype=np.int64)
    csm = np.empty(nt, dtype=np.int64)
    cdm = np.empty(nt, dtype=np.int64)
    fmin = f0s.min()
    fmax = f0s.max()
    for j in range(nb):
        for k in range(nb):
            lo_p, hi_p = 1e300, -1e300
            lo_m, hi_m = 1e300, -1e300
            for t in range(nt):
                for c in range(4):
                    a = max(freqs[v1[t, c], j], 0.0)
                    b = max(freqs[v2[t, c], k], 0.0)
                    sp[t, c] = a + b
                    sm[t, c] = b - a
                    dm[t, c] = a - b
                    lo_p = min(lo_p, a + b)
                    hi_p = max(hi_p, a + b)
                    lo_m = min(lo_m, min(b - a, a - b))
                    hi_m = max(hi_m, max(b - a, a - b))
            lo_p -= THM_SIDE  # ω within THM_SIDE of the range still gets its one-sided half
            lo_m -= THM_SIDE
            hi_p += THM_SIDE
            hi_m += THM_SIDE
            need_p = fmax >= lo_p and fmin < hi_p
            need_m = fmax >= lo_m and fmin < hi_m
            if need_p:
                thm_sort(sp, central, vsp, csp)
            if need_m:
                thm_sort(sm, central, vsm, csm)
                thm_sort(dm, central, vdm, cdm)
            for i in range(n0):
                f0 = f0s[i]
                a = 0.0
                if need_p and lo_p <= f0 < hi_p:
                    a = thm_weight_sorted(f0, vsp, csp)
                b = 0.0
                if need_m and lo_m <= f0 < hi_m:
                    b = thm_weight_sorted(f0, vsm, csm) - thm_weight_sorted(f0, vdm, cdm)
                g0[i, j, k] = a
                g01[i, j, k] = b
                if a != 0.0 or b != 0.0:
                    any_nz = True
    return any_nz
