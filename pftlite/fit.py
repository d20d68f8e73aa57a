"""Least-squares fit of a linear-readout model to energies, forces and stresses.

For the linear readout every prediction is linear in the trainable parameters
theta = (e0[s], w[s, f]):

    E       = sum_i e0[s_i] + w[s_i] . x_i,               x_i = scale * (B_i - mean)
    F_ka    = -sum_i w[s_i] . scale * DB_i[e_ka]           (one-hot displacement of atom k)
    sigma_ab = (1/V) sum_i w[s_i] . scale * DB_i[sym(E_ab) r]   (homogeneous strain)

so the design rows are descriptor tangents (:func:`pftlite.backends.numba_backend.descriptors`)
and the fit is one weighted ridge regression, accumulated structure by structure
(memory O(P^2), P = S (F + 1)). Feature normalisation (mean, scale) comes from the training
set's per-atom features. This gives the base model that phonon fine-tuning starts from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .backends import numba_backend as nbk
from .batch import make_batch
from .model import init_params


@dataclass(frozen=True)
class FitWeights:
    """Row weights: 1 / (expected error) per quantity, and the ridge strength.

    energy: per eV/atom; forces: per eV/Å; stress: per eV/Å³; ridge: added to the diagonal
    of the normal equations (in units of the weighted row scale).
    """

    energy: float = 1.0 / 0.002
    forces: float = 1.0 / 0.05
    stress: float = 1.0 / 0.002
    ridge: float = 1e-8


def feature_normalisation(spec, structures):
    """Per-feature mean and 1/std of the per-atom features B over ``structures`` -> (mean, scale)."""
    s1 = np.zeros(spec.n_features)
    s2 = np.zeros(spec.n_features)
    n = 0
    for a in structures:
        B, _, _ = nbk.descriptors(spec, make_batch([a], spec))
        s1 += B.sum(0)
        s2 += (B * B).sum(0)
        n += len(B)
    mean = s1 / n
    std = np.sqrt(np.maximum(s2 / n - mean**2, 0.0))
    scale = np.where(std > 1e-12 * max(std.max(), 1e-300), 1.0 / np.where(std > 0, std, 1.0), 1.0)
    return mean, scale


def design_rows(spec, params, atoms, chunk: int = 96):
    """Design matrix rows of one structure for the linear readout.

    Returns (Xe (P,), Xf (3N, P), Xs (6, P)) with P = S * (F + 1) columns ordered as
    [e0 (S), w (S, F) flattened]; energy row is total energy (eV), forces eV/Å, stress
    (Voigt xx yy zz yz xz xy) eV/Å³.
    """
    S, F = len(spec.species), spec.n_features
    batch = make_batch([atoms], spec)
    N = batch.n_atoms
    sp = batch.species
    scale, mean = params["scale"], params["mean"]

    def per_species(rowsNF):
        """(m, N, F) per-atom contributions -> (m, S*F) summed per species."""
        out = np.zeros((rowsNF.shape[0], S, F))
        for s in range(S):
            out[:, s] = rowsNF[:, sp == s].sum(1)
        return out.reshape(len(rowsNF), S * F)

    B, _, _ = nbk.descriptors(spec, batch)
    Xe = np.concatenate([np.bincount(sp, minlength=S).astype(float), per_species((scale * (B - mean))[None])[0]])
    Xf = np.zeros((3 * N, S + S * F))
    cols = np.arange(3 * N)
    for start in range(0, 3 * N, chunk):
        c = cols[start : start + chunk]
        V = np.zeros((len(c), N, 3))
        V[np.arange(len(c)), c // 3, c % 3] = 1.0
        dr = V[:, batch.edge_j] - V[:, batch.edge_i]
        _, Bd, _ = nbk.descriptors(spec, batch, dr)
        Xf[c, S:] = -per_species(scale * Bd)
    r = batch.edge_vectors()
    voigt = [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]
    dr = np.zeros((6, batch.n_edges, 3))
    for t, (a, b) in enumerate(voigt):
        E = np.zeros((3, 3))
        E[a, b] += 0.5
        E[b, a] += 0.5
        dr[t] = r @ E.T
    _, Bd, _ = nbk.descriptors(spec, batch, dr)
    Xs = np.zeros((6, S + S * F))
    Xs[:, S:] = per_species(scale * Bd) / batch.volumes[0]
    return Xe, Xf, Xs


def fit_linear(spec, structures, weights: FitWeights = FitWeights(), progress=None):
    """Weighted ridge least squares on labelled structures -> params.

    structures: ase.Atoms with ``info["energy"]`` (eV), ``arrays["forces"]`` (eV/Å) and
    optionally ``info["stress"]`` (Voigt, eV/Å³); missing labels are skipped.
    progress: optional callable(i, n) for a progress display.
    """
    if spec.readout != "linear":
        raise ValueError("fit_linear needs readout='linear'")
    params = init_params(spec)
    params["mean"], params["scale"] = feature_normalisation(spec, structures)
    S, F = len(spec.species), spec.n_features
    P = S + S * F
    A = np.zeros((P, P))
    y = np.zeros(P)
    for k, a in enumerate(structures):
        Xe, Xf, Xs = design_rows(spec, params, a)
        n = len(a)
        if "energy" in a.info and np.isfinite(a.info["energy"]):
            row = Xe / n * weights.energy
            A += np.outer(row, row)
            y += row * a.info["energy"] / n * weights.energy
        if "forces" in a.arrays:
            f = a.arrays["forces"].ravel()
            m = np.isfinite(f)
            Xw = Xf[m] * weights.forces
            A += Xw.T @ Xw
            y += Xw.T @ f[m] * weights.forces
        if "stress" in a.info and weights.stress:
            s = np.asarray(a.info["stress"], dtype=float)
            m = np.isfinite(s)
            Xw = Xs[m] * weights.stress
            A += Xw.T @ Xw
            y += Xw.T @ s[m] * weights.stress
        if progress:
            progress(k + 1, len(structures))
    d = np.diag(A).copy()
    d[d == 0] = 1.0
    # Jacobi-scaled ridge: solve (D^-1/2 A D^-1/2 + ridge) z = D^-1/2 y
    dh = 1.0 / np.sqrt(d)
    M = A * dh[:, None] * dh[None, :] + weights.ridge * np.eye(P)
    theta = dh * np.linalg.solve(M, y * dh)
    params["e0"] = theta[:S].copy()
    params["w"] = theta[S:].reshape(S, F).copy()
    return params


def errors(spec, params, structures, backend=None) -> dict:
    """MAE and RMSE of energy (eV/atom), forces (eV/Å) and stress (GPa) on labelled structures."""
    be = backend or nbk
    de, df, ds = [], [], []
    for a in structures:
        out = be.energy_forces_stress(spec, params, make_batch([a], spec))
        if "energy" in a.info:
            de.append((out["energy"][0] - a.info["energy"]) / len(a))
        if "forces" in a.arrays:
            df.append((out["forces"] - a.arrays["forces"]).ravel())
        if "stress" in a.info:
            from ase.stress import full_3x3_to_voigt_6_stress

            ds.append((full_3x3_to_voigt_6_stress(out["stress"][0]) - a.info["stress"]) * 160.21766208)
    res = {}
    for name, vals in (("energy", de), ("forces", df), ("stress", ds)):
        if vals:
            v = np.concatenate([np.atleast_1d(x) for x in vals])
            res[name] = {"mae": float(np.abs(v).mean()), "rmse": float(np.sqrt((v * v).mean()))}
    return res
