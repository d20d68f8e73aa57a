"""Numba kernels: descriptors and their exact directional derivatives, without autodiff.

Notation (see :mod:`pftlite.potentials.manybody.basis`): per edge e = (i -> j) with vector r (Å) and neighbour
species channel c, the basis is phi_{n,lm}(r) = g_{n,l}(|r|) Z_lm(r), g_{n,l} = R_n / |r|^l.
For a tangent d (a displacement of r), the directional derivatives are

    D phi [d]       = g' (rhat . d) Z + g (grad Z . d)
    D2 phi [u, v]   = (g'' - g'/r)(rhat.u)(rhat.v) Z + (g'/r)(u.v) Z
                      + g' ((rhat.u)(grad Z.v) + (rhat.v)(grad Z.u)) + g u^T (hess Z) v

All position derivatives are forward mode, O(edges). Two kernels cover every need:

- :func:`descriptor_kernel`: per atom B_i, its tangents DB_i[d_t] for m tangents, and
  optionally the second directional derivative D2B_i[d_u, d_v];
- :func:`adjoint_kernel`: given G_i = dE/dB_i (from the readout) it returns dE/dr_e for each
  edge and, for m tangents with readout tangents Gdot_t = d/dt G_i, the tangents
  d/dt (dE/dr_e) — the building block of Hessian-vector products.

Kernels are parallel over centre atoms (prange); every output row belongs to one atom, so
there are no write races. No fastmath: results must match the JAX backend to ~1e-12.
"""

from __future__ import annotations

import numba as nb
import numpy as np

_opts = dict(cache=True, nogil=True, error_model="numpy")


@nb.njit(**_opts)
def _edge_basis(rx, ry, rz, r_cut, p, K, l_max, sh_lm, sh_coef, sh_pow, g, dg, ddg, Z, dZ, hZ):
    """Fill radial g, g', g'' (K, l_max+1) and Z, grad Z (L2, 3), hess Z (L2, 6: xx yy zz xy xz yz)."""
    r = np.sqrt(rx * rx + ry * ry + rz * rz)
    x = r / r_cut
    om = 1.0 - x
    env = om**p
    denv = -p * om ** (p - 1) / r_cut
    ddenv = p * (p - 1) * om ** (p - 2) / (r_cut * r_cut)
    xi = 2.0 * x - 1.0
    dxi = 2.0 / r_cut
    # Chebyshev T, T', T'' in xi by recursion
    t0, t1 = 1.0, xi
    d0, d1 = 0.0, 1.0
    s0, s1 = 0.0, 0.0
    rinv = 1.0 / r
    for n in range(K):
        if n == 0:
            T, dT, ddT = t0, d0, s0
        elif n == 1:
            T, dT, ddT = t1, d1, s1
        else:
            T = 2.0 * xi * t1 - t0
            dT = 2.0 * t1 + 2.0 * xi * d1 - d0
            ddT = 4.0 * d1 + 2.0 * xi * s1 - s0
            t0, t1 = t1, T
            d0, d1 = d1, dT
            s0, s1 = s1, ddT
        R = T * env
        dR = dT * dxi * env + T * denv
        ddR = ddT * dxi * dxi * env + 2.0 * dT * dxi * denv + T * ddenv
        rl = 1.0  # r^-l
        for l in range(l_max + 1):
            g[n, l] = R * rl
            dg[n, l] = dR * rl - l * R * rl * rinv
            ddg[n, l] = ddR * rl - 2.0 * l * dR * rl * rinv + l * (l + 1) * R * rl * rinv * rinv
            rl *= rinv
    # solid harmonics from monomials
    px = np.empty(l_max + 1)
    py = np.empty(l_max + 1)
    pz = np.empty(l_max + 1)
    px[0] = 1.0
    py[0] = 1.0
    pz[0] = 1.0
    for k in range(1, l_max + 1):
        px[k] = px[k - 1] * rx
        py[k] = py[k - 1] * ry
        pz[k] = pz[k - 1] * rz
    Z[:] = 0.0
    dZ[:, :] = 0.0
    hZ[:, :] = 0.0
    for t in range(sh_lm.shape[0]):
        lm = sh_lm[t]
        c = sh_coef[t]
        a = sh_pow[t, 0]
        b = sh_pow[t, 1]
        d = sh_pow[t, 2]
        xa, yb, zd = px[a], py[b], pz[d]
        xa1 = px[a - 1] if a >= 1 else 0.0
        yb1 = py[b - 1] if b >= 1 else 0.0
        zd1 = pz[d - 1] if d >= 1 else 0.0
        Z[lm] += c * xa * yb * zd
        dZ[lm, 0] += c * a * xa1 * yb * zd
        dZ[lm, 1] += c * b * xa * yb1 * zd
        dZ[lm, 2] += c * d * xa * yb * zd1
        if a >= 2:
            hZ[lm, 0] += c * a * (a - 1) * px[a - 2] * yb * zd
        if b >= 2:
            hZ[lm, 1] += c * b * (b - 1) * xa * py[b - 2] * zd
        if d >= 2:
            hZ[lm, 2] += c * d * (d - 1) * xa * yb * pz[d - 2]
        hZ[lm, 3] += c * a * b * xa1 * yb1 * zd
        hZ[lm, 4] += c * a * d * xa1 * yb * zd1
        hZ[lm, 5] += c * b * d * xa * yb1 * zd1
    return r


@nb.njit(**_opts)
def _hz_dot(hZ, lm, u0, u1, u2, v0, v1, v2):
    """u^T (hess Z_lm) v."""
    return (
        hZ[lm, 0] * u0 * v0
        + hZ[lm, 1] * u1 * v1
        + hZ[lm, 2] * u2 * v2
        + hZ[lm, 3] * (u0 * v1 + u1 * v0)
        + hZ[lm, 4] * (u0 * v2 + u2 * v0)
        + hZ[lm, 5] * (u1 * v2 + u2 * v1)
    )


# ---------------------------------------------------------------------------------------
# polynomial invariants B = P(A) and their derivatives
# ---------------------------------------------------------------------------------------


@nb.njit(**_opts)
def _poly(A, lin_f, lin_a, qf, qa, qb, qc, cf, ca, cb, cd, cc, B):
    B[:] = 0.0
    for t in range(lin_f.shape[0]):
        B[lin_f[t]] += A[lin_a[t]]
    for t in range(qf.shape[0]):
        B[qf[t]] += qc[t] * A[qa[t]] * A[qb[t]]
    for t in range(cf.shape[0]):
        B[cf[t]] += cc[t] * A[ca[t]] * A[cb[t]] * A[cd[t]]


@nb.njit(**_opts)
def _poly_jvp(A, Ad, lin_f, lin_a, qf, qa, qb, qc, cf, ca, cb, cd, cc, Bd):
    """Bd = P'(A)[Ad] (overwrites)."""
    Bd[:] = 0.0
    for t in range(lin_f.shape[0]):
        Bd[lin_f[t]] += Ad[lin_a[t]]
    for t in range(qf.shape[0]):
        a, b = qa[t], qb[t]
        Bd[qf[t]] += qc[t] * (Ad[a] * A[b] + A[a] * Ad[b])
    for t in range(cf.shape[0]):
        a, b, d = ca[t], cb[t], cd[t]
        Bd[cf[t]] += cc[t] * (Ad[a] * A[b] * A[d] + A[a] * Ad[b] * A[d] + A[a] * A[b] * Ad[d])


@nb.njit(**_opts)
def _poly_second(A, Au, Av, lin_f, lin_a, qf, qa, qb, qc, cf, ca, cb, cd, cc, B2):
    """B2 += P''(A)[Au, Av]."""
    for t in range(qf.shape[0]):
        a, b = qa[t], qb[t]
        B2[qf[t]] += qc[t] * (Au[a] * Av[b] + Av[a] * Au[b])
    for t in range(cf.shape[0]):
        a, b, d = ca[t], cb[t], cd[t]
        B2[cf[t]] += cc[t] * (
            (Au[a] * Av[b] + Av[a] * Au[b]) * A[d]
            + (Au[a] * Av[d] + Av[a] * Au[d]) * A[b]
            + (Au[b] * Av[d] + Av[b] * Au[d]) * A[a]
        )


@nb.njit(**_opts)
def _poly_vjp(A, G, lin_f, lin_a, qf, qa, qb, qc, cf, ca, cb, cd, cc, Ab):
    """Ab += P'(A)^T G."""
    for t in range(lin_f.shape[0]):
        Ab[lin_a[t]] += G[lin_f[t]]
    for t in range(qf.shape[0]):
        a, b = qa[t], qb[t]
        w = qc[t] * G[qf[t]]
        Ab[a] += w * A[b]
        Ab[b] += w * A[a]
    for t in range(cf.shape[0]):
        a, b, d = ca[t], cb[t], cd[t]
        w = cc[t] * G[cf[t]]
        Ab[a] += w * A[b] * A[d]
        Ab[b] += w * A[a] * A[d]
        Ab[d] += w * A[a] * A[b]


@nb.njit(**_opts)
def _poly_hvp_t(A, Ad, G, qf, qa, qb, qc, cf, ca, cb, cd, cc, Abd):
    """Abd += (P''(A)[Ad])^T G: the tangent of P'(A)^T G along Ad at fixed G."""
    for t in range(qf.shape[0]):
        a, b = qa[t], qb[t]
        w = qc[t] * G[qf[t]]
        Abd[a] += w * Ad[b]
        Abd[b] += w * Ad[a]
    for t in range(cf.shape[0]):
        a, b, d = ca[t], cb[t], cd[t]
        w = cc[t] * G[cf[t]]
        Abd[a] += w * (Ad[b] * A[d] + A[b] * Ad[d])
        Abd[b] += w * (Ad[a] * A[d] + A[a] * Ad[d])
        Abd[d] += w * (Ad[a] * A[b] + A[a] * Ad[b])


# ---------------------------------------------------------------------------------------
# kernels
# ---------------------------------------------------------------------------------------


@nb.njit(parallel=True, **_opts)
def descriptor_kernel(
    rvec, edge_first, edge_c, r_cut, p, K, l_max, n_moments,
    sh_lm, sh_coef, sh_pow, l_of_lm,
    lin_f, lin_a, qf, qa, qb, qc, cf, ca, cb, cd, cc,
    dr, pair_u, pair_v, B_out, Bd_out, B2_out,
):  # fmt: skip
    """B_out (N, F) = P(A_i); Bd_out (m, N, F) = DB_i[dr_t]; B2_out (N, F) = D2B_i[dr_u, dr_v].

    rvec (E, 3) Å edge vectors; dr (m, E, 3) edge tangents; pair_u, pair_v tangent indices
    for the second derivative (-1: not wanted).
    """
    N = edge_first.shape[0] - 1
    L1 = l_max + 1
    L2 = L1 * L1
    m = dr.shape[0]
    F = B_out.shape[1]
    want2 = pair_u >= 0
    for i in nb.prange(N):
        A = np.zeros(n_moments)
        Ad = np.zeros((m, n_moments))
        A2 = np.zeros(n_moments)
        g = np.empty((K, L1))
        dg = np.empty((K, L1))
        ddg = np.empty((K, L1))
        Z = np.empty(L2)
        dZ = np.empty((L2, 3))
        hZ = np.empty((L2, 6))
        zd = np.empty((m, L2))
        for e in range(edge_first[i], edge_first[i + 1]):
            rx, ry, rz = rvec[e, 0], rvec[e, 1], rvec[e, 2]
            r = _edge_basis(rx, ry, rz, r_cut, p, K, l_max, sh_lm, sh_coef, sh_pow, g, dg, ddg, Z, dZ, hZ)
            ux, uy, uz = rx / r, ry / r, rz / r
            base = edge_c[e] * K * L2
            for n in range(K):
                for lm in range(L2):
                    A[base + n * L2 + lm] += g[n, l_of_lm[lm]] * Z[lm]
            for t in range(m):
                d0, d1, d2 = dr[t, e, 0], dr[t, e, 1], dr[t, e, 2]
                if d0 == 0.0 and d1 == 0.0 and d2 == 0.0:
                    continue
                s = ux * d0 + uy * d1 + uz * d2
                for lm in range(L2):
                    zd[t, lm] = dZ[lm, 0] * d0 + dZ[lm, 1] * d1 + dZ[lm, 2] * d2
                for n in range(K):
                    for lm in range(L2):
                        l = l_of_lm[lm]
                        Ad[t, base + n * L2 + lm] += dg[n, l] * s * Z[lm] + g[n, l] * zd[t, lm]
            if want2:
                u0, u1, u2 = dr[pair_u, e, 0], dr[pair_u, e, 1], dr[pair_u, e, 2]
                v0, v1, v2 = dr[pair_v, e, 0], dr[pair_v, e, 1], dr[pair_v, e, 2]
                if (u0 == 0.0 and u1 == 0.0 and u2 == 0.0) or (v0 == 0.0 and v1 == 0.0 and v2 == 0.0):
                    continue
                su = ux * u0 + uy * u1 + uz * u2
                sv = ux * v0 + uy * v1 + uz * v2
                uv = u0 * v0 + u1 * v1 + u2 * v2
                for lm in range(L2):
                    zu = dZ[lm, 0] * u0 + dZ[lm, 1] * u1 + dZ[lm, 2] * u2
                    zv = dZ[lm, 0] * v0 + dZ[lm, 1] * v1 + dZ[lm, 2] * v2
                    zuv = _hz_dot(hZ, lm, u0, u1, u2, v0, v1, v2)
                    l = l_of_lm[lm]
                    for n in range(K):
                        A2[base + n * L2 + lm] += (
                            (ddg[n, l] - dg[n, l] / r) * su * sv * Z[lm]
                            + dg[n, l] / r * uv * Z[lm]
                            + dg[n, l] * (su * zv + sv * zu)
                            + g[n, l] * zuv
                        )
        Bi = np.empty(F)
        _poly(A, lin_f, lin_a, qf, qa, qb, qc, cf, ca, cb, cd, cc, Bi)
        B_out[i, :] = Bi
        for t in range(m):
            _poly_jvp(A, Ad[t], lin_f, lin_a, qf, qa, qb, qc, cf, ca, cb, cd, cc, Bi)
            Bd_out[t, i, :] = Bi
        if want2:
            _poly_jvp(A, A2, lin_f, lin_a, qf, qa, qb, qc, cf, ca, cb, cd, cc, Bi)
            _poly_second(A, Ad[pair_u], Ad[pair_v], lin_f, lin_a, qf, qa, qb, qc, cf, ca, cb, cd, cc, Bi)
            B2_out[i, :] = Bi


@nb.njit(parallel=True, **_opts)
def adjoint_kernel(
    rvec, edge_first, edge_c, r_cut, p, K, l_max, n_moments,
    sh_lm, sh_coef, sh_pow, l_of_lm,
    lin_f, lin_a, qf, qa, qb, qc, cf, ca, cb, cd, cc,
    G, Gd, dr, grad_out, tan_out,
):  # fmt: skip
    """grad_out (E, 3) = dE/dr_e; tan_out (m, E, 3) = d/dt dE/dr_e along edge tangents dr_t.

    G (N, F) = dE/dB_i; Gd (m, N, F) its tangents (shape (0, N, F) for a linear readout,
    where they vanish); dr (m, E, 3) edge tangents.
    """
    N = edge_first.shape[0] - 1
    L1 = l_max + 1
    L2 = L1 * L1
    m = dr.shape[0]
    has_gd = Gd.shape[0] > 0
    for i in nb.prange(N):
        e0 = edge_first[i]
        ne = edge_first[i + 1] - e0
        g = np.empty((ne, K, L1))
        dg = np.empty((ne, K, L1))
        ddg = np.empty((ne, K, L1))
        Z = np.empty((ne, L2))
        dZ = np.empty((ne, L2, 3))
        hZ = np.empty((ne, L2, 6))
        rr = np.empty(ne)
        A = np.zeros(n_moments)
        for k in range(ne):
            e = e0 + k
            rr[k] = _edge_basis(
                rvec[e, 0], rvec[e, 1], rvec[e, 2], r_cut, p, K, l_max,
                sh_lm, sh_coef, sh_pow, g[k], dg[k], ddg[k], Z[k], dZ[k], hZ[k],
            )  # fmt: skip
            base = edge_c[e] * K * L2
            for n in range(K):
                for lm in range(L2):
                    A[base + n * L2 + lm] += g[k, n, l_of_lm[lm]] * Z[k, lm]
        Ab = np.zeros(n_moments)
        _poly_vjp(A, G[i], lin_f, lin_a, qf, qa, qb, qc, cf, ca, cb, cd, cc, Ab)
        # per edge: gradient and the fixed-adjoint second-derivative matrix M_e
        M = np.zeros((ne, 3, 3))
        gam = np.empty(L2)
        dlt = np.empty(L2)
        zet = np.empty(L2)
        for k in range(ne):
            e = e0 + k
            base = edge_c[e] * K * L2
            r = rr[k]
            ux, uy, uz = rvec[e, 0] / r, rvec[e, 1] / r, rvec[e, 2] / r
            for lm in range(L2):
                l = l_of_lm[lm]
                s1 = 0.0
                s2 = 0.0
                s3 = 0.0
                for n in range(K):
                    a = Ab[base + n * L2 + lm]
                    s1 += a * dg[k, n, l]
                    s2 += a * g[k, n, l]
                    s3 += a * ddg[k, n, l]
                gam[lm] = s1
                dlt[lm] = s2
                zet[lm] = s3
            fx = 0.0
            fy = 0.0
            fz = 0.0
            crr = 0.0  # coefficient of rhat rhat^T
            cid = 0.0  # coefficient of identity
            wx = 0.0  # sum gam grad Z
            wy = 0.0
            wz = 0.0
            h = np.zeros(6)
            for lm in range(L2):
                gz = gam[lm] * Z[k, lm]
                fx += gz * ux + dlt[lm] * dZ[k, lm, 0]
                fy += gz * uy + dlt[lm] * dZ[k, lm, 1]
                fz += gz * uz + dlt[lm] * dZ[k, lm, 2]
                crr += (zet[lm] - gam[lm] / r) * Z[k, lm]
                cid += gam[lm] / r * Z[k, lm]
                wx += gam[lm] * dZ[k, lm, 0]
                wy += gam[lm] * dZ[k, lm, 1]
                wz += gam[lm] * dZ[k, lm, 2]
                for q in range(6):
                    h[q] += dlt[lm] * hZ[k, lm, q]
            grad_out[e, 0] = fx
            grad_out[e, 1] = fy
            grad_out[e, 2] = fz
            u = (ux, uy, uz)
            w = (wx, wy, wz)
            for a in range(3):
                for b in range(3):
                    M[k, a, b] = crr * u[a] * u[b] + u[a] * w[b] + w[a] * u[b]
                M[k, a, a] += cid
            M[k, 0, 0] += h[0]
            M[k, 1, 1] += h[1]
            M[k, 2, 2] += h[2]
            M[k, 0, 1] += h[3]
            M[k, 1, 0] += h[3]
            M[k, 0, 2] += h[4]
            M[k, 2, 0] += h[4]
            M[k, 1, 2] += h[5]
            M[k, 2, 1] += h[5]
        # tangents
        Ad = np.empty(n_moments)
        Abd = np.empty(n_moments)
        zd = np.empty(L2)
        for t in range(m):
            active = False
            for k in range(ne):
                e = e0 + k
                if dr[t, e, 0] != 0.0 or dr[t, e, 1] != 0.0 or dr[t, e, 2] != 0.0:
                    active = True
                    break
            if not active:
                for k in range(ne):
                    tan_out[t, e0 + k, 0] = 0.0
                    tan_out[t, e0 + k, 1] = 0.0
                    tan_out[t, e0 + k, 2] = 0.0
                continue
            Ad[:] = 0.0
            for k in range(ne):
                e = e0 + k
                d0, d1, d2 = dr[t, e, 0], dr[t, e, 1], dr[t, e, 2]
                if d0 == 0.0 and d1 == 0.0 and d2 == 0.0:
                    continue
                r = rr[k]
                s = (rvec[e, 0] * d0 + rvec[e, 1] * d1 + rvec[e, 2] * d2) / r
                base = edge_c[e] * K * L2
                for lm in range(L2):
                    zd[lm] = dZ[k, lm, 0] * d0 + dZ[k, lm, 1] * d1 + dZ[k, lm, 2] * d2
                for n in range(K):
                    for lm in range(L2):
                        l = l_of_lm[lm]
                        Ad[base + n * L2 + lm] += dg[k, n, l] * s * Z[k, lm] + g[k, n, l] * zd[lm]
            Abd[:] = 0.0
            _poly_hvp_t(A, Ad, G[i], qf, qa, qb, qc, cf, ca, cb, cd, cc, Abd)
            if has_gd:
                _poly_vjp(A, Gd[t, i], lin_f, lin_a, qf, qa, qb, qc, cf, ca, cb, cd, cc, Abd)
            for k in range(ne):
                e = e0 + k
                base = edge_c[e] * K * L2
                r = rr[k]
                ux, uy, uz = rvec[e, 0] / r, rvec[e, 1] / r, rvec[e, 2] / r
                fx = 0.0
                fy = 0.0
                fz = 0.0
                for lm in range(L2):
                    l = l_of_lm[lm]
                    s1 = 0.0
                    s2 = 0.0
                    for n in range(K):
                        a = Abd[base + n * L2 + lm]
                        s1 += a * dg[k, n, l]
                        s2 += a * g[k, n, l]
                    gz = s1 * Z[k, lm]
                    fx += gz * ux + s2 * dZ[k, lm, 0]
                    fy += gz * uy + s2 * dZ[k, lm, 1]
                    fz += gz * uz + s2 * dZ[k, lm, 2]
                d0, d1, d2 = dr[t, e, 0], dr[t, e, 1], dr[t, e, 2]
                tan_out[t, e, 0] = fx + M[k, 0, 0] * d0 + M[k, 0, 1] * d1 + M[k, 0, 2] * d2
                tan_out[t, e, 1] = fy + M[k, 1, 0] * d0 + M[k, 1, 1] * d1 + M[k, 1, 2] * d2
                tan_out[t, e, 2] = fz + M[k, 2, 0] * d0 + M[k, 2, 1] * d1 + M[k, 2, 2] * d2


@nb.njit(parallel=True, **_opts)
def scatter_edges(edge_i, edge_j, vals, out):
    """out[t, j_e] += vals[t, e]; out[t, i_e] -= vals[t, e] for vals (m, E, 3) -> out (m, N, 3).

    Parallel over t when m > 1; for m == 1 a serial loop (the edge loop has write races).
    """
    m = vals.shape[0]
    for t in nb.prange(m):
        for e in range(vals.shape[1]):
            for a in range(3):
                out[t, edge_j[e], a] += vals[t, e, a]
                out[t, edge_i[e], a] -= vals[t, e, a]
