"""Numba backend (CPU): exact energies, forces, stress, HVPs, Hessians and loss gradients.

No autodiff: position derivatives are forward-mode directional derivatives of the descriptor
(:mod:`pftlite.potentials.manybody.numba_kernels`), the per-atom readout is differentiated by hand
(:mod:`pftlite.potentials.manybody.readout`). Every public function has the same signature and units as the JAX
backend's; see :mod:`pftlite.backends` for the interface.
"""

from __future__ import annotations

import numpy as np

from pftlite.potentials.loss import LossSpec, Targets, column_vectors, loss_adjoints, loss_value
from pftlite.potentials.manybody import numba_kernels as kn
from pftlite.potentials.manybody import readout as ro
from pftlite.structures.batch import Batch

NAME = "numba"
EXACT_HVP_DERIVATIVE = False  # hvp_derivative: central differences of analytic HVPs


def _table_args(spec):
    T = spec.tables
    return (
        float(spec.r_cut), int(spec.envelope_power), T.n_radial, T.l_max, T.n_moments,
        T.sh_lm, T.sh_coef, T.sh_pow, T.l_of_lm,
        T.lin_f, T.lin_a, T.quad_f, T.quad_a, T.quad_b, T.quad_c,
        T.cub_f, T.cub_a, T.cub_b, T.cub_d, T.cub_c,
    )  # fmt: skip


def _edge_channels(batch: Batch):
    return batch.species[batch.edge_j]


def descriptors(spec, batch: Batch, dr=None, pair=None):
    """Features B (N, F); with edge tangents dr (m, E, 3) also DB (m, N, F); with pair=(u, v)
    also the second directional derivative D2B[dr_u, dr_v] (N, F)."""
    F = spec.n_features
    N = batch.n_atoms
    dr = np.zeros((0, batch.n_edges, 3)) if dr is None else np.ascontiguousarray(dr)
    pu, pv = (-1, -1) if pair is None else pair
    B = np.empty((N, F))
    Bd = np.empty((dr.shape[0], N, F))
    B2 = np.empty((N if pair is not None else 0, F))
    kn.descriptor_kernel(
        np.ascontiguousarray(batch.edge_vectors()), batch.edge_first, _edge_channels(batch),
        *_table_args(spec), dr, pu, pv, B, Bd, B2,
    )  # fmt: skip
    return B, Bd, B2


def _adjoint(spec, batch, G, Gd, dr):
    E = batch.n_edges
    dr = np.zeros((0, E, 3)) if dr is None else np.ascontiguousarray(dr)
    Gd = np.zeros((0, batch.n_atoms, spec.n_features)) if Gd is None else np.ascontiguousarray(Gd)
    grad = np.empty((E, 3))
    tan = np.empty((dr.shape[0], E, 3))
    kn.adjoint_kernel(
        np.ascontiguousarray(batch.edge_vectors()), batch.edge_first, _edge_channels(batch),
        *_table_args(spec), np.ascontiguousarray(G), Gd, dr, grad, tan,
    )  # fmt: skip
    return grad, tan


def _scatter(batch, edge_vals):
    """Sum over edges of edge_vals (..., E, 3) into atoms: +at j, -at i -> (..., N, 3)."""
    m = int(np.prod(edge_vals.shape[:-2], dtype=np.int64))
    vals = np.ascontiguousarray(edge_vals.reshape(m, batch.n_edges, 3))
    out = np.zeros((vals.shape[0], batch.n_atoms, 3))
    kn.scatter_edges(batch.edge_i, batch.edge_j, vals, out)
    return out.reshape(edge_vals.shape[:-2] + (batch.n_atoms, 3))


def _edge_tangents(batch, v):
    """Edge tangents d_e = v_j - v_i for atom vectors v (..., N, 3)."""
    return v[..., batch.edge_j, :] - v[..., batch.edge_i, :]


def _virial(batch, dEdr):
    """W_b = sum_{e in b} dE/dr_e (x) r_e, symmetrised, (B, 3, 3) eV."""
    r = batch.edge_vectors()
    w = np.zeros((batch.n_structures, 3, 3))
    np.add.at(w, batch.edge_struct, dEdr[:, :, None] * r[:, None, :])
    return 0.5 * (w + w.transpose(0, 2, 1))


def energy_forces_stress(spec, params, batch: Batch) -> dict:
    """Energies (B,) eV, forces (N, 3) eV/Å, stress (B, 3, 3) eV/Å³ (ASE sign, (1/V) dE/dε)."""
    B, _, _ = descriptors(spec, batch)
    eps, G = ro.value_and_grad(params, B, batch.species, spec.readout)
    dEdr, _ = _adjoint(spec, batch, G, None, None)
    return _efs_from(batch, eps, dEdr)


def _efs_from(batch, eps, dEdr) -> dict:
    """Energies, forces, stress from site energies (N,) and edge gradients dE/dr (E, 3)."""
    return {
        "energy": np.bincount(batch.atom_struct, weights=eps, minlength=batch.n_structures),
        "forces": -_scatter(batch, dEdr),
        "stress": _virial(batch, dEdr) / batch.volumes[:, None, None],
    }


def _hvp_many(spec, params, batch, V, want_energy=False):
    """H V for atom vectors V (m, N, 3) -> (m, N, 3) eV/Å², plus dE/dr and site energies.

    For the linear readout G = dE/dB does not depend on B, so the descriptor pass is skipped
    unless site energies are wanted (eps is then None).
    """
    dr = _edge_tangents(batch, V)
    if spec.readout == "linear" and not want_energy:
        eps, Gd = None, None
        G = params["scale"] * params["w"][batch.species]
    else:
        B, Bd, _ = descriptors(spec, batch, dr if spec.readout == "mlp" else None)
        eps, G = ro.value_and_grad(params, B, batch.species, spec.readout)
        Gd = ro.grad_tangent(params, B, batch.species, spec.readout, Bd)
    dEdr, tan = _adjoint(spec, batch, G, Gd, dr)
    return _scatter(batch, tan), dEdr, eps


def hvp(spec, params, batch: Batch, v) -> np.ndarray:
    """Hessian-vector product H v, (N, 3) eV/Å², one vector per structure (v: (N, 3) Å)."""
    v = np.asarray(v, dtype=np.float64).reshape(batch.n_atoms, 3)
    hv, _, _ = _hvp_many(spec, params, batch, v[None])
    return hv[0]


def hessian(spec, params, batch: Batch, columns=None, chunk: int | None = None) -> np.ndarray:
    """Force constants of one structure from stacked HVPs, in memory-bounded chunks.

    columns: None (all 3N) or a sequence of column indices k = 3 * atom + direction.
    Returns phonopy's layout: (N, N, 3, 3) for all columns, fc[i, j, a, b] = d2E/dx_ia dx_jb
    (eV/Å²); for selected columns, (len(columns), N, 3) with row c = H e_{columns[c]}.
    chunk: columns per kernel call (default keeps the edge-tangent buffer under ~64 MB).
    """
    if batch.n_structures != 1:
        raise ValueError("hessian() takes a batch holding one structure")
    N = batch.n_atoms
    cols = np.arange(3 * N) if columns is None else np.asarray(columns, dtype=np.int64)
    if chunk is None:
        chunk = max(1, min(len(cols), int(64e6 // (8 * 3 * max(batch.n_edges, 1) * 3))))
    out = np.empty((len(cols), N, 3))
    for s in range(0, len(cols), chunk):
        c = cols[s : s + chunk]
        V = np.zeros((len(c), N, 3))
        V[np.arange(len(c)), c // 3, c % 3] = 1.0
        out[s : s + chunk] = _hvp_many(spec, params, batch, V)[0]
    if columns is not None:
        return out
    # out[(j, b), i, a] -> fc[i, j, a, b]
    return out.reshape(N, 3, N, 3).transpose(2, 0, 3, 1).copy()


def predict_all(spec, params, batch: Batch, v=None) -> dict:
    """energy, forces, stress and (if v given, (N, 3)) hv = H v, sharing the descriptor pass."""
    if v is None:
        return energy_forces_stress(spec, params, batch)
    hv, dEdr, eps = _hvp_many(spec, params, batch, np.asarray(v, dtype=np.float64)[None], want_energy=True)
    return {**_efs_from(batch, eps, dEdr), "hv": hv[0]}


def loss_and_grad(spec, params, batch: Batch, targets: Targets, lspec: LossSpec):
    """Training loss, its gradient w.r.t. the trainable params, and per-term metrics.

    Returns (loss: float, grads: dict of arrays shaped like params' trainable keys,
    terms: dict of per-term loss values).
    """
    v = column_vectors(batch, targets.columns) if lspec.hessian else None
    pred = predict_all(spec, params, batch, v)
    n_atoms = batch.n_atoms_per_structure.astype(np.float64)
    loss, terms = loss_value(lspec, pred, targets, n_atoms)
    adj = loss_adjoints(lspec, pred, targets, n_atoms)
    # first-order tangent combining force and stress adjoints:
    # u_F . F + U : sigma = D E [ -(u_j - u_i) + sym(U) r_e / V ]
    r = batch.edge_vectors()
    dr_w = np.zeros((batch.n_edges, 3))
    if "forces" in adj:
        dr_w -= _edge_tangents(batch, adj["forces"])
    if "stress" in adj:
        U = adj["stress"]
        U = 0.5 * (U + U.transpose(0, 2, 1)) / batch.volumes[:, None, None]
        dr_w += np.einsum("eab,eb->ea", U[batch.edge_struct], r)
    tangents = [dr_w]
    pair = None
    if "hv" in adj:
        tangents += [_edge_tangents(batch, adj["hv"]), _edge_tangents(batch, v)]
        pair = (1, 2)
    B, Bd, B2 = descriptors(spec, batch, np.stack(tangents), pair)
    cE = adj["energy"][batch.atom_struct] if "energy" in adj else np.zeros(batch.n_atoms)
    grads = ro.param_grad(
        params, B, batch.species, spec.readout, cE,
        Bw=Bd[0],
        Bu=Bd[1] if pair else None,
        Bv=Bd[2] if pair else None,
        Buv=B2 if pair else None,
    )  # fmt: skip
    return float(loss), grads, {k: float(x) for k, x in terms.items()}


def hvp_derivative(spec, params, batch: Batch, u, V, h: float = 1e-3, chunk: int | None = None) -> np.ndarray:
    """d/de [H(x + e u) V_i] at e = 0 for each V_i: (n, N, 3) eV/Å³ (third derivatives).

    **Central finite difference of analytic HVPs** (not exact): (H(x + h u) V - H(x - h u) V)
    / (2 h), with the neighbour list rebuilt at x ± h u; error O(h²) (h in Å, u dimensionless
    or Å-normalised as given). u: (N, 3); V: (n, N, 3). chunk: vectors per kernel call.
    """
    from pftlite.structures.batch import make_batch

    u = np.asarray(u, dtype=np.float64).reshape(batch.n_atoms, 3)
    V = np.asarray(V, dtype=np.float64).reshape(-1, batch.n_atoms, 3)
    off = batch.atom_offsets

    def shifted(sign):
        x = batch.positions + sign * h * u
        structs = [(x[off[b] : off[b + 1]], batch.numbers[off[b] : off[b + 1]], batch.cells[b]) for b in range(batch.n_structures)]
        return make_batch(structs, spec)

    if chunk is None:
        chunk = max(1, min(len(V), int(64e6 // (8 * 3 * max(batch.n_edges, 1) * 3))))
    out = np.empty_like(V)
    bp, bm = shifted(1.0), shifted(-1.0)
    for s in range(0, len(V), chunk):
        c = V[s : s + chunk]
        out[s : s + chunk] = (_hvp_many(spec, params, bp, c)[0] - _hvp_many(spec, params, bm, c)[0]) / (2 * h)
    return out
