"""Numba kernels of the lattice thermal conductivity solver (``pftlite.kappa.conductivity``).

Plain arrays in, plain arrays out; the driver prepares every table (grids, phase vectors,
symmetry maps). Conventions follow phono3py 4.10 (see ``/work/shared/KAPPA_NOTES.md``):

- q-points in reduced coordinates of the primitive reciprocal basis; phase factors
  exp(2πi q·r) with r the shortest vectors (averaged over their multiplicity);
- frequencies in THz, eigenvectors as columns ``e[:, band]`` of the dynamical matrix;
- fc3 compact ``(n_patom, N, N, 27)`` eV/Å³ (Cartesian triple flattened, l*9 + m*3 + n).

Kernels:

- (in :mod:`pftlite.kappa.tetrahedron`) tetrahedron-method delta weights and the weights of
  the three-phonon delta functions of one triplet (g2, g0 - g1);
- Fourier transform of fc3 for one triplet (three-leg r0 average or single leg);
- reciprocal → normal-mode transform and the imaginary self-energy, parallel over triplets;
- isotope (Tamura) scattering on the full grid.

Degenerate bands: the tetrahedron weights of a band come from that band's frequencies at the
neighbouring grid points, where a degeneracy is lifted, so they differ among degenerate bands
and a sum of weight × |eigenvector overlap|² would depend on the (arbitrary, rounding-chosen)
basis inside a degenerate subspace. The weights are therefore averaged over each degenerate
set at q' and q'' (ph-ph, as phono3py's ``average_degenerate_weights``) and at q' (isotopes),
with the sets given as ``deg_ids[gp, band]`` = first band of the set (phonopy's 1e-4 THz rule).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from pftlite.kappa.tetrahedron import (
    TWO_PI,
    average_degenerate_blocks,
    central_indices,
    gaussian,
    grid_index,
    neighbor_bz_points,
    thm_sort,
    thm_weight_sorted,
    triplet_weights,
)

# ---------------------------------------------------------------- fc3 → reciprocal → normal


@njit(cache=True, inline="always")
def _phases(q, svecs, multi, out_re, out_im):
    """Averaged phase exp(2πi q·r) for every (patom, satom) pair: out (n_patom, N)."""
    N, n_p = multi.shape[0], multi.shape[1]
    for p in range(n_p):
        for s in range(N):
            m = multi[s, p, 0]
            a = multi[s, p, 1]
            sr = 0.0
            si = 0.0
            for k in range(m):
                ph = TWO_PI * (q[0] * svecs[a + k, 0] + q[1] * svecs[a + k, 1]
                               + q[2] * svecs[a + k, 2])  # fmt: skip
                sr += np.cos(ph)
                si += np.sin(ph)
            out_re[p, s] = sr / m
            out_im[p, s] = si / m


@njit(parallel=True, cache=True)
def phase_table(qpoints, svecs, multi):
    """exp(2πi q·r) averaged over the shortest-vector images, for every q and (patom, satom):
    ``(re, im)`` each (n_q, n_p, N)."""
    nq = qpoints.shape[0]
    N, n_p = multi.shape[0], multi.shape[1]
    re = np.empty((nq, n_p, N))
    im = np.empty((nq, n_p, N))
    for iq in prange(nq):
        _phases(qpoints[iq], svecs, multi, re[iq], im[iq])
    return re, im


@njit(cache=True)
def fc3_reciprocal(i1, i2, ph_re, ph_im, pre_r, pre_i, fc3_1, y3r, y3i, z2r, z2i, sat_of,
                   r0_average, out_re, out_im):
    """fc3 at a block of T triplets (q0, q1, q2) sharing q0: ``out`` (T, n_p, n_p, n_p, 27),
    element order (i l, j m, k n).

    ``i1``/``i2`` (T,): rows of q1/q2 in the phase tables ``ph_re/ph_im`` (n_bz, n_p, N)
    (:func:`phase_table`); ``pre`` (T, n_p): exp(2πi G·r_p), G = q0 + q1 + q2. ``fc3_1`` =
    fc3 × 3 where the three atoms are all shortest, else fc3 (leg 1 of the r0 average; plain
    fc3 without it); legs 2 and 3 come from the q0 partial sums of :func:`fc3_q0_partials_many`.
    Equals phono3py's real_to_reciprocal (r0 average: sum of the three legs / 3). Each fc3
    element is loaded once per block (the kernel is memory bound).
    """
    T = i1.shape[0]
    n_p, N = fc3_1.shape[0], fc3_1.shape[1]
    nper = sat_of.shape[1]
    out_re[:] = 0.0
    out_im[:] = 0.0
    xr = np.empty((T, 27))
    xi = np.empty((T, 27))
    P1r = np.empty((T, N))
    P1i = np.empty((T, N))
    P2r = np.empty((T, N))
    P2i = np.empty((T, N))
    for p in range(n_p):
        for t in range(T):
            for a in range(N):
                P1r[t, a] = ph_re[i1[t], p, a]
                P1i[t, a] = ph_im[i1[t], p, a]
                P2r[t, a] = ph_re[i2[t], p, a]
                P2i[t, a] = ph_im[i2[t], p, a]
        # leg 1: anchor p = i, a in j (q1), b in k (q2)
        for A in range(n_p):
            for ia in range(nper):
                a = sat_of[A, ia]
                for B in range(n_p):
                    xr[:] = 0.0
                    xi[:] = 0.0
                    for ib in range(nper):
                        b = sat_of[B, ib]
                        f = fc3_1[p, a, b]
                        for t in range(T):
                            wr = P2r[t, b]
                            wi = P2i[t, b]
                            for c in range(27):
                                xr[t, c] += wr * f[c]
                                xi[t, c] += wi * f[c]
                    for t in range(T):
                        ar = P1r[t, a] * pre_r[t, p] - P1i[t, a] * pre_i[t, p]
                        ai = P1r[t, a] * pre_i[t, p] + P1i[t, a] * pre_r[t, p]
                        for c in range(27):
                            out_re[t, p, A, B, c] += ar * xr[t, c] - ai * xi[t, c]
                            out_im[t, p, A, B, c] += ar * xi[t, c] + ai * xr[t, c]
        if not r0_average:
            continue
        for A in range(n_p):
            for B in range(n_p):
                # leg 2: anchor p = j, A = i (q0, summed in z2), B = k (q2); Cartesian (m, l, n)
                xr[:] = 0.0
                xi[:] = 0.0
                for ib in range(nper):
                    b = sat_of[B, ib]
                    zr = z2r[p, b, A]
                    zi = z2i[p, b, A]
                    for t in range(T):
                        wr = P2r[t, b]
                        wi = P2i[t, b]
                        for c in range(27):
                            xr[t, c] += wr * zr[c] - wi * zi[c]
                            xi[t, c] += wr * zi[c] + wi * zr[c]
                for t in range(T):
                    for l in range(3):
                        for m in range(3):
                            for n in range(3):
                                c = m * 9 + l * 3 + n
                                d = l * 9 + m * 3 + n
                                out_re[t, A, p, B, d] += pre_r[t, p] * xr[t, c] - pre_i[t, p] * xi[t, c]
                                out_im[t, A, p, B, d] += pre_r[t, p] * xi[t, c] + pre_i[t, p] * xr[t, c]
                # leg 3: anchor p = k, A = j (q1), B = i (q0, summed in y3); Cartesian (n, m, l)
                xr[:] = 0.0
                xi[:] = 0.0
                for ia in range(nper):
                    a = sat_of[A, ia]
                    yr = y3r[p, a, B]
                    yi = y3i[p, a, B]
                    for t in range(T):
                        wr = P1r[t, a]
                        wi = P1i[t, a]
                        for c in range(27):
                            xr[t, c] += wr * yr[c] - wi * yi[c]
                            xi[t, c] += wr * yi[c] + wi * yr[c]
                for t in range(T):
                    for l in range(3):
                        for m in range(3):
                            for n in range(3):
                                c = n * 9 + m * 3 + l
                                d = l * 9 + m * 3 + n
                                out_re[t, B, A, p, d] += pre_r[t, p] * xr[t, c] - pre_i[t, p] * xi[t, c]
                                out_im[t, B, A, p, d] += pre_r[t, p] * xi[t, c] + pre_i[t, p] * xr[t, c]
    if r0_average:
        for t in range(T):
            for p in range(n_p):
                for A in range(n_p):
                    for B in range(n_p):
                        for c in range(27):
                            out_re[t, p, A, B, c] /= 3.0
                            out_im[t, p, A, B, c] /= 3.0


@njit(cache=True)
def normal_squared(phi_re, phi_im, e0, e1, e2, inv_sqrt_m, out):
    """|Σ e0 e1 e2 Φ / √(m m m)|² for all band triplets, ``out`` (nb, nb, nb).

    ``phi`` (n_p, n_p, n_p, 27); ``e*`` (nb, nb) eigenvectors (columns = bands), no
    conjugation (phono3py's convention, q0 + q1 + q2 = G).
    """
    n_p = phi_re.shape[0]
    nb = 3 * n_p
    # Φ'[(i l), (j m), (k n)] with masses folded in
    P = np.empty((nb, nb, nb), dtype=np.complex128)
    for i in range(n_p):
        for j in range(n_p):
            for k in range(n_p):
                s = inv_sqrt_m[i] * inv_sqrt_m[j] * inv_sqrt_m[k]
                for l in range(3):
                    for m in range(3):
                        for n in range(3):
                            c = l * 9 + m * 3 + n
                            P[i * 3 + l, j * 3 + m, k * 3 + n] = s * complex(
                                phi_re[i, j, k, c], phi_im[i, j, k, c])
    # contract (k n) with e2, then (j m) with e1, then (i l) with e0
    T1 = np.zeros((nb, nb, nb), dtype=np.complex128)  # [il, jm, b2]
    for a in range(nb):
        for b in range(nb):
            for c in range(nb):
                x = P[a, b, c]
                for b2 in range(nb):
                    T1[a, b, b2] += x * e2[c, b2]
    T2 = np.zeros((nb, nb, nb), dtype=np.complex128)  # [il, b1, b2]
    for a in range(nb):
        for b in range(nb):
            for b1 in range(nb):
                y = e1[b, b1]
                for b2 in range(nb):
                    T2[a, b1, b2] += y * T1[a, b, b2]
    V = np.zeros((nb, nb, nb), dtype=np.complex128)
    for a in range(nb):
        for b0 in range(nb):
            y = e0[a, b0]
            for b1 in range(nb):
                for b2 in range(nb):
                    V[b0, b1, b2] += y * T2[a, b1, b2]
    for b0 in range(nb):
        for b1 in range(nb):
            for b2 in range(nb):
                v = V[b0, b1, b2]
                out[b0, b1, b2] = v.real * v.real + v.imag * v.imag


@njit(cache=True)
def _bose(f, t_thz):
    """Bose-Einstein occupation; ``t_thz`` = k_B T / h in THz (0 → T = 0)."""
    if t_thz <= 0:
        return 0.0
    return 1.0 / (np.exp(f / t_thz) - 1.0)


@njit(parallel=True, cache=True)
def fc3_q0_partials_many(g00s, ph_re, ph_im, fc3_23, sat_of):
    """Legs 2 and 3 of the r0 average summed over the atom that carries q0 (fixed for all
    triplets of one q0), for the q0 BZ ids ``g00s``: Y3[p, a, B] = Σ_(b∈B) e0(p, b)
    fc3_23[p, a, b] and Z2[p, b, A] = Σ_(a∈A) e0(p, a) fc3_23[p, a, b], each complex
    (n, n_p, N, n_p, 27) returned as (y3r, y3i, z2r, z2i)."""
    n = g00s.shape[0]
    n_p, N = fc3_23.shape[0], fc3_23.shape[1]
    nper = sat_of.shape[1]
    y3r = np.zeros((n, n_p, N, n_p, 27))
    y3i = np.zeros((n, n_p, N, n_p, 27))
    z2r = np.zeros((n, n_p, N, n_p, 27))
    z2i = np.zeros((n, n_p, N, n_p, 27))
    for ipa in prange(n * n_p * N):
        ig = ipa // (n_p * N)
        p = (ipa // N) % n_p
        a = ipa % N
        g = g00s[ig]
        for B in range(n_p):
            for ib in range(nper):
                b = sat_of[B, ib]
                wr = ph_re[g, p, b]
                wi = ph_im[g, p, b]
                for c in range(27):
                    f = fc3_23[p, a, b, c]
                    y3r[ig, p, a, B, c] += wr * f
                    y3i[ig, p, a, B, c] += wi * f
                # the same element seen from b: Z2[p, b, A(a)] += e0(p, a) fc3_23[p, a, b]
        for A in range(n_p):
            for ia in range(nper):
                b2 = sat_of[A, ia]  # here a runs as the "b" atom of Z2
                wr = ph_re[g, p, b2]
                wi = ph_im[g, p, b2]
                for c in range(27):
                    f = fc3_23[p, b2, a, c]
                    z2r[ig, p, a, A, c] += wr * f
                    z2i[ig, p, a, A, c] += wi * f
    return y3r, y3i, z2r, z2i


@njit(parallel=True, cache=True)
def gamma_groups(grp_gp0, grp_start, triplets, weights, qpoints, ph_re, ph_im, pre_vec, freqs,
                 eigvecs, deg_ids, fc3_1, y3r, y3i, z2r, z2i, sat_of, inv_sqrt_m, r0_average,
                 rel, addresses, gp_map, D, sigma, temps_thz, cutoff, unit, block):
    """Imaginary self-energy Γ (n_groups, nT, nb) of several q0, before degeneracy averaging.

    Group g: the triplets ``grp_start[g]:grp_start[g+1]`` of ``triplets`` (n, 3 BZ ids), all
    with the same q0 image ``triplets[:, 0]`` (its phases, eigenvectors and the q0 partial
    sums ``y3, z2`` [g] of :func:`fc3_q0_partials_many` are used), and ``grp_gp0[g]`` the BZ
    point whose frequencies enter the integration weights. ``weights`` (n,). Tetrahedron
    weights are averaged over the degenerate sets ``deg_ids`` (n_bz, nb) at q' and q''.

    Γ_b0 = unit Σ_t w_t Σ_b1b2 |Φ|²/(f0 f1 f2) [(n1 + n2 + 1) g0 + (n1 - n2) g01], only
    f0, f1, f2 > ``cutoff`` (THz); ``temps_thz`` = k_B T / h (THz), 0 for T = 0. One
    parallel loop over blocks of ``block`` triplets (fc3 is streamed once per block).
    """
    ng = grp_gp0.shape[0]
    nb = freqs.shape[1]
    nT = temps_thz.shape[0]
    n_p = fc3_1.shape[0]
    nt = triplets.shape[0]
    central = central_indices(rel)
    n_blocks = 0
    for g in range(ng):
        n_blocks += (grp_start[g + 1] - grp_start[g] + block - 1) // block
    blk_g = np.empty(n_blocks, dtype=np.int64)
    blk_lo = np.empty(n_blocks, dtype=np.int64)
    k = 0
    for g in range(ng):
        lo = grp_start[g]
        while lo < grp_start[g + 1]:
            blk_g[k] = g
            blk_lo[k] = lo
            lo += block
            k += 1
    contrib = np.zeros((nt, nT, nb))
    for ibl in prange(n_blocks):
        g = blk_g[ibl]
        lo = blk_lo[ibl]
        hi = min(grp_start[g + 1], lo + block)
        g00 = triplets[lo, 0]
        f0s = freqs[grp_gp0[g]]
        keep = np.empty(hi - lo, dtype=np.int64)
        gw0 = np.empty((hi - lo, nb, nb, nb))
        gw1 = np.empty((hi - lo, nb, nb, nb))
        nk = 0
        for it in range(lo, hi):
            g1p = triplets[it, 1]
            g2p = triplets[it, 2]
            if sigma > 0:
                v1 = np.zeros((1, 4), dtype=np.int64)
                v2 = v1
            else:
                v1 = neighbor_bz_points(g1p, rel, addresses, gp_map, D)
                v2 = neighbor_bz_points(g2p, -rel, addresses, gp_map, D)
            if triplet_weights(f0s, freqs, v1, v2, g1p, g2p, central, sigma, gw0[nk], gw1[nk]):
                if sigma <= 0:
                    average_degenerate_blocks(gw0[nk], deg_ids[g1p], deg_ids[g2p])
                    average_degenerate_blocks(gw1[nk], deg_ids[g1p], deg_ids[g2p])
                keep[nk] = it
                nk += 1
        if nk == 0:
            continue
        i1 = np.empty(nk, dtype=np.int64)
        i2 = np.empty(nk, dtype=np.int64)
        pre_r = np.empty((nk, n_p))
        pre_i = np.empty((nk, n_p))
        for k in range(nk):
            it = keep[k]
            i1[k] = triplets[it, 1]
            i2[k] = triplets[it, 2]
            for p in range(n_p):
                ph = 0.0
                for c in range(3):
                    ph += (qpoints[g00, c] + qpoints[i1[k], c] + qpoints[i2[k], c]) * pre_vec[p, c]
                pre_r[k, p] = np.cos(TWO_PI * ph)
                pre_i[k, p] = np.sin(TWO_PI * ph)
        phr = np.empty((nk, n_p, n_p, n_p, 27))
        phi = np.empty((nk, n_p, n_p, n_p, 27))
        gi = g if r0_average else 0
        fc3_reciprocal(i1, i2, ph_re, ph_im, pre_r, pre_i, fc3_1, y3r[gi], y3i[gi], z2r[gi],
                       z2i[gi], sat_of, r0_average, phr, phi)  # fmt: skip
        v2abs = np.empty((nb, nb, nb))
        for k in range(nk):
            it = keep[k]
            g1p = i1[k]
            g2p = i2[k]
            normal_squared(phr[k], phi[k], eigvecs[g00], eigvecs[g1p], eigvecs[g2p], inv_sqrt_m,
                           v2abs)  # fmt: skip
            w = weights[it]
            for iT in range(nT):
                for b1 in range(nb):
                    f1 = freqs[g1p, b1]
                    if f1 <= cutoff:
                        continue
                    n1 = _bose(f1, temps_thz[iT])
                    for b2 in range(nb):
                        f2 = freqs[g2p, b2]
                        if f2 <= cutoff:
                            continue
                        n2 = _bose(f2, temps_thz[iT])
                        for b0 in range(nb):
                            fz = f0s[b0]
                            if fz <= cutoff:
                                continue
                            val = v2abs[b0, b1, b2] / (fz * f1 * f2)
                            contrib[it, iT, b0] += w * val * (
                                (n1 + n2 + 1.0) * gw0[k, b0, b1, b2]
                                + (n1 - n2) * gw1[k, b0, b1, b2])
    out = np.zeros((ng, nT, nb))
    for g in range(ng):
        for it in range(grp_start[g], grp_start[g + 1]):
            for iT in range(nT):
                for b0 in range(nb):
                    out[g, iT, b0] += contrib[it, iT, b0]
    return out * unit


# ---------------------------------------------------------------- isotopes


@njit(parallel=True, cache=True)
def isotope_gamma(gp0, grid_bz, freqs, eigvecs, deg_ids, mass_var, rel, addresses, gp_map, D,
                  sigma, cutoff, n_grid):
    """Tamura isotope Γ (nb,) at BZ point ``gp0`` over the regular grid ``grid_bz`` (BZ ids).

    Γ_b0 = π/4/N f0² Σ_q'j' δ(f0 - f') Σ_k g_k |Σ_c e*_0(k c) e'(k c)|², modes f' ≥ cutoff;
    tetrahedron weights averaged over the degenerate sets ``deg_ids`` at q' (not over b0:
    the caller averages Γ over the degenerate sets at q0).
    """
    nb = freqs.shape[1]
    n_p = nb // 3
    central = central_indices(rel)
    ng = grid_bz.shape[0]
    f0s = freqs[gp0]
    e0 = eigvecs[gp0]
    part = np.zeros((ng, nb))
    n_tetra = rel.shape[0]
    for ig in prange(ng):
        gp = grid_bz[ig]
        verts = neighbor_bz_points(gp, rel, addresses, gp_map, D)
        tom = np.empty((n_tetra, 4))
        vs = np.empty((n_tetra, 4))
        cis = np.empty(n_tetra, dtype=np.int64)
        wgt = np.zeros((nb, nb))  # [j, b0]
        for j in range(nb):
            f = freqs[gp, j]
            if f < cutoff:
                continue
            if sigma > 0:
                for b0 in range(nb):
                    wgt[j, b0] = gaussian(f0s[b0] - f, sigma)
                continue
            lo, hi = 1e300, -1e300
            for t in range(n_tetra):
                for c in range(4):
                    x = freqs[verts[t, c], j]
                    tom[t, c] = x
                    lo = min(lo, x)
                    hi = max(hi, x)
            inside = False
            for b0 in range(nb):
                if lo <= f0s[b0] < hi:
                    inside = True
            if not inside:
                continue
            thm_sort(tom, central, vs, cis)
            for b0 in range(nb):
                if lo <= f0s[b0] < hi:
                    wgt[j, b0] = thm_weight_sorted(f0s[b0], vs, cis)
        if sigma <= 0:  # average over each degenerate set of j (contiguous bands)
            j0 = 0
            while j0 < nb:
                j1 = j0 + 1
                while j1 < nb and deg_ids[gp, j1] == deg_ids[gp, j0]:
                    j1 += 1
                if j1 - j0 > 1:
                    for b0 in range(nb):
                        m = 0.0
                        for j in range(j0, j1):
                            m += wgt[j, b0]
                        m /= j1 - j0
                        for j in range(j0, j1):
                            wgt[j, b0] = m
                j0 = j1
        for j in range(nb):
            for b0 in range(nb):
                if wgt[j, b0] == 0.0:
                    continue
                s = 0.0
                for k in range(n_p):
                    z = 0j
                    for c in range(3):
                        z += np.conj(e0[3 * k + c, b0]) * eigvecs[gp, 3 * k + c, j]
                    s += mass_var[k] * (z.real * z.real + z.imag * z.imag)
                part[ig, b0] += s * wgt[j, b0]
    out = np.zeros(nb)
    for ig in range(ng):
        for b0 in range(nb):
            out[b0] += part[ig, b0]
    for b0 in range(nb):
        out[b0] *= np.pi / 2 / n_grid * f0s[b0] ** 2 / 2
    return out


# ---------------------------------------------------------------- triplets


@njit(cache=True, inline="always")
def _rot_index(R, a0, a1, a2, D):
    b0 = R[0, 0] * a0 + R[0, 1] * a1 + R[0, 2] * a2
    b1 = R[1, 0] * a0 + R[1, 1] * a1 + R[1, 2] * a2
    b2 = R[2, 0] * a0 + R[2, 1] * a1 + R[2, 2] * a2
    return grid_index(b0, b1, b2, D)


@njit(cache=True)
def ir_triplets_map(gp, D, rotations, swappable):
    """phono3py's map of q1 onto irreducible triplets (q0 = grid point ``gp``, GR grid).

    ``rotations`` (n, 3, 3): reciprocal point group in grid coordinates (time reversal
    included). Returns ``map_triplets`` (N,): q1 → representative q1 of its triplet class.
    """
    N = D[0] * D[1] * D[2]
    a0 = np.array([gp % D[0], (gp // D[0]) % D[1], gp // (D[0] * D[1])])
    n_rot = rotations.shape[0]
    keep = np.zeros(n_rot, dtype=np.bool_)
    for r in range(n_rot):
        if _rot_index(rotations[r], a0[0], a0[1], a0[2], D) == gp:
            keep[r] = True
    map_q = np.arange(N)
    for i in range(N):
        a = np.array([i % D[0], (i // D[0]) % D[1], i // (D[0] * D[1])])
        best = i
        for r in range(n_rot):
            if not keep[r]:
                continue
            g = _rot_index(rotations[r], a[0], a[1], a[2], D)
            best = min(best, g)
        map_q[i] = best
    map_t = np.full(N, N, dtype=np.int64)
    for i in range(N):
        if map_q[i] != i:
            continue
        a = np.array([i % D[0], (i // D[0]) % D[1], i // (D[0] * D[1])])
        q2 = grid_index(-a0[0] - a[0], -a0[1] - a[1], -a0[2] - a[2], D)
        if swappable and map_t[map_q[q2]] < N:
            map_t[i] = map_t[map_q[q2]]
        else:
            map_t[i] = i
    for i in range(N):
        map_t[i] = map_t[map_q[i]]
    return map_t


@njit(cache=True)
def bz_triplets(gp0_bz, ir_q1, addresses, gp_map, D, LQD_inv, tolerance):
    """BZ images of the triplets (q0, q1, q2 = -q0 - q1) with the smallest |G| (type 2 map)."""
    n = ir_q1.shape[0]
    out = np.empty((n, 3), dtype=np.int64)
    a0 = addresses[gp0_bz]
    g0 = grid_index(a0[0], a0[1], a0[2], D)
    for i in range(n):
        a1 = addresses[gp_map[ir_q1[i]]]
        g2 = grid_index(-a0[0] - a1[0], -a0[1] - a1[1], -a0[2] - a1[2], D)
        min_d2 = -1.0
        found = False
        for b0 in range(gp_map[g0], gp_map[g0 + 1]):
            if found:
                break
            for b1 in range(gp_map[ir_q1[i]], gp_map[ir_q1[i] + 1]):
                if found:
                    break
                for b2 in range(gp_map[g2], gp_map[g2 + 1]):
                    G0 = addresses[b0, 0] + addresses[b1, 0] + addresses[b2, 0]
                    G1 = addresses[b0, 1] + addresses[b1, 1] + addresses[b2, 1]
                    G2 = addresses[b0, 2] + addresses[b1, 2] + addresses[b2, 2]
                    if G0 == 0 and G1 == 0 and G2 == 0:
                        out[i, 0], out[i, 1], out[i, 2] = b0, b1, b2
                        found = True
                        break
                    d2 = 0.0
                    for j in range(3):
                        d = LQD_inv[j, 0] * G0 + LQD_inv[j, 1] * G1 + LQD_inv[j, 2] * G2
                        d2 += d * d
                    if min_d2 < 0 or d2 < min_d2 - tolerance:
                        min_d2 = d2
                        out[i, 0], out[i, 1], out[i, 2] = b0, b1, b2
    return out


# ---------------------------------------------------------------- harmonic phonons


@njit(parallel=True, cache=True)
def dynamical_matrices(qpoints, fc2c, svecs, multi, s2pi, masses):
    """Mass-weighted dynamical matrices D(q) (n_q, 3 n_p, 3 n_p), hermitianized.

    ``fc2c`` (n_p, N, 3, 3) compact fc2 eV/Å²; ``svecs``/``multi`` phonopy's shortest
    vectors (reduced) and multiplicities (N, n_p, 2); ``s2pi`` (N,) primitive index of each
    supercell atom; ``masses`` (n_p,) amu. Phase exp(2πi q·r), r from the primitive atom
    (phonopy's convention). Units eV/Å²/amu.
    """
    nq = qpoints.shape[0]
    N, n_p = multi.shape[0], multi.shape[1]
    nb = 3 * n_p
    out = np.zeros((nq, nb, nb), dtype=np.complex128)
    for iq in prange(nq):
        q = qpoints[iq]
        D = np.zeros((nb, nb), dtype=np.complex128)
        for i in range(n_p):
            for s in range(N):
                j = s2pi[s]
                m = multi[s, i, 0]
                a = multi[s, i, 1]
                sr = 0.0
                si = 0.0
                for k in range(m):
                    ph = TWO_PI * (q[0] * svecs[a + k, 0] + q[1] * svecs[a + k, 1]
                                   + q[2] * svecs[a + k, 2])  # fmt: skip
                    sr += np.cos(ph)
                    si += np.sin(ph)
                w = complex(sr, si) / m / np.sqrt(masses[i] * masses[j])
                for x in range(3):
                    for y in range(3):
                        D[3 * i + x, 3 * j + y] += fc2c[i, s, x, y] * w
        for x in range(nb):
            for y in range(nb):
                out[iq, x, y] = 0.5 * (D[x, y] + np.conj(D[y, x]))
    return out
