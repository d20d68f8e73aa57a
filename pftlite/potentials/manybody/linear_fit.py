"""Least-squares base fit of the built-in model: exact for a linear readout.

For the linear readout every prediction is linear in the trainable parameters
theta = (e0[s], w[s, f]):

    E       = sum_i e0[s_i] + w[s_i] . x_i,               x_i = scale * (B_i - mean)
    F_ka    = -sum_i w[s_i] . scale * DB_i[e_ka]           (one-hot displacement of atom k)
    sigma_ab = (1/V) sum_i w[s_i] . scale * DB_i[sym(E_ab) r]   (homogeneous strain)

so the design rows are descriptor tangents (:func:`pftlite.potentials.manybody.numba_backend.descriptors`)
and the fit is one weighted ridge regression, accumulated structure by structure
(memory O(P^2), P = S (F + 1)). Feature normalisation (mean, scale) comes from the training
set's per-atom features. An MLP readout starts from that solution (:func:`mlp_start`: the MLP
residual switched off, ``w2 = 0``) and is then trained by gradient (:mod:`pftlite.training.fit`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pftlite.potentials.loss import FitWeights
from pftlite.potentials.manybody import numba_backend as nbk
from pftlite.potentials.manybody.model import init_params
from pftlite.structures.batch import make_batch


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


def normal_equations(spec, structures, weights: FitWeights = FitWeights(), progress=None, normalise_on=None):
    """Accumulate the weighted normal equations of the linear-readout fit.

    Parameters
    ----------
    spec : ModelSpec
        readout must be ``"linear"``.
    structures : list of ase.Atoms
        ``info["energy"]`` (eV), ``arrays["forces"]`` (N, 3) eV/Å, ``info["stress"]`` (6,)
        Voigt eV/Å³; any label may be missing (absent or NaN), e.g. forces-only data sets.
    weights : FitWeights
    progress : callable(i, n), optional
    normalise_on : list of ase.Atoms, optional
        Structures whose feature statistics set ``mean`` / ``scale`` (default: ``structures``).
        The least-squares predictions do not depend on it (Jacobi-scaled ridge); the size of
        the weights, and so the step scale of a later gradient fine-tuning, does. Data of tiny
        displacements about one crystal (phono3py) give feature spreads of ~1e-7; use
        :func:`perturbed_copies` of them instead.

    Returns
    -------
    params : dict
        Fresh parameters with the feature normalisation (``mean``, ``scale``) of ``structures``.
    A : ndarray (P, P), y : ndarray (P,)
        Normal equations over theta = [e0 (S), w (S, F)], P = S (F + 1).
    counts : dict
        Number of labelled rows: ``energy``, ``forces``, ``stress``.
    """
    if spec.readout != "linear":
        raise ValueError("fit_linear needs readout='linear'")
    params = init_params(spec)
    params["mean"], params["scale"] = feature_normalisation(spec, normalise_on or structures)
    S, F = len(spec.species), spec.n_features
    P = S + S * F
    A = np.zeros((P, P))
    y = np.zeros(P)
    counts = {"energy": 0, "forces": 0, "stress": 0}
    for k, a in enumerate(structures):
        Xe, Xf, Xs = design_rows(spec, params, a)
        n = len(a)
        if np.isfinite(a.info.get("energy", np.nan)):
            row = Xe / n * weights.energy
            A += np.outer(row, row)
            y += row * a.info["energy"] / n * weights.energy
            counts["energy"] += 1
        if "forces" in a.arrays:
            f = a.arrays["forces"].ravel()
            m = np.isfinite(f)
            Xw = Xf[m] * weights.forces
            A += Xw.T @ Xw
            y += Xw.T @ f[m] * weights.forces
            counts["forces"] += int(m.sum())
        if "stress" in a.info and weights.stress:
            s = np.asarray(a.info["stress"], dtype=float)
            m = np.isfinite(s)
            Xw = Xs[m] * weights.stress
            A += Xw.T @ Xw
            y += Xw.T @ s[m] * weights.stress
            counts["stress"] += int(m.sum())
        if progress:
            progress(k + 1, len(structures))
    return params, A, y, counts


def solve_normal(spec, params, A, y, ridge: float) -> dict:
    """Jacobi-scaled ridge solution of the normal equations -> new params (e0, w set).

    Solves ``(D^-1/2 A D^-1/2 + ridge I) z = D^-1/2 y``, theta = D^-1/2 z, D = diag(A)
    (zero diagonals, e.g. e0 without energy labels, count as 1, so those parameters are 0).
    """
    S, F = len(spec.species), spec.n_features
    d = np.diag(A).copy()
    d[d == 0] = 1.0
    dh = 1.0 / np.sqrt(d)
    M = A * dh[:, None] * dh[None, :] + ridge * np.eye(len(y))
    theta = dh * np.linalg.solve(M, y * dh)
    out = dict(params)
    out["e0"] = theta[:S].copy()
    out["w"] = theta[S:].reshape(S, F).copy()
    return out


def fit_linear(spec, structures, weights: FitWeights = FitWeights(), progress=None, normalise_on=None):
    """Weighted ridge least squares on labelled structures -> params.

    structures: ase.Atoms with ``info["energy"]`` (eV), ``arrays["forces"]`` (eV/Å) and
    optionally ``info["stress"]`` (Voigt, eV/Å³); missing labels are skipped.
    Forces-only data (no energy label anywhere, e.g. phono3py displaced supercells): the
    per-species reference energies e0 are not determined and are set to 0 — energies are
    then defined up to a per-species constant, which no force, stress or Hessian depends on.
    progress: optional callable(i, n) for a progress display. normalise_on: see
    :func:`normal_equations`.
    """
    params, A, y, _ = normal_equations(spec, structures, weights, progress, normalise_on)
    return solve_normal(spec, params, A, y, weights.ridge)


def mlp_start(spec, linear_params: dict, seed: int = 0, w2_scale: float = 0.0) -> dict:
    """Start of a gradient fit from a least-squares linear solution: ``e0``, ``w``, ``mean``,
    ``scale`` from ``linear_params`` (fit with the linear readout); for an MLP readout, ``W1``
    random N(0, 1/F) from ``default_rng(seed)`` (the :func:`pftlite.potentials.manybody.model.init_params` draw),
    ``b1`` 0, ``w2`` N(0, ``w2_scale``²) (0: the start is exactly the least-squares model)."""
    p = init_params(spec, seed=seed)
    for k in ("e0", "w", "mean", "scale"):
        p[k] = np.array(linear_params[k], dtype=np.float64)
    if spec.readout == "mlp":
        p["w2"] = np.random.default_rng([seed, 2]).normal(0.0, 1.0, size=p["w2"].shape) * w2_scale
    return p


def least_squares(spec, structures, weights: FitWeights = FitWeights(), progress=None, normalise_on=None,
                  seed: int = 0) -> dict:  # fmt: skip
    """Parameters of ``spec`` from the least-squares fit of its linear part: the whole fit for
    a linear readout, the start of a gradient fit (:func:`mlp_start`, seeded) for an MLP."""
    ls = fit_linear(dataclasses.replace(spec, readout="linear"), structures, weights, progress, normalise_on)
    return ls if spec.readout == "linear" else mlp_start(spec, ls, seed)
