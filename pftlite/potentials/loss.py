"""The training objective: energy, forces, stress and sampled Hessian columns.

Written once with ``xp`` array operations (NumPy or jax.numpy); the Numba backend also needs
the adjoints (d loss / d prediction), given in closed form by :func:`loss_adjoints`.

Targets use NaN for "no label" (e.g. a dataset without stresses): those entries are masked.

Terms (each a weighted mean over the labelled entries of the batch):

- energy:   ((E - E_ref) / N_atoms)^2 per structure            (eV/atom)^2   [or |.|]
- forces:   (F - F_ref)^2 per Cartesian component               (eV/Å)^2     [or |.|]
- stress:   (sigma - sigma_ref)^2 per component of the 3x3 tensor (eV/Å³)^2   [or |.|]
- hessian:  |H v - h_ref| per component of the sampled column   eV/Å²        [or ^2]

``kind`` "huber" (energy, forces, stress; the PFT recipe's co-training loss): per component
0.5 r² for |r| <= delta, delta (|r| - 0.5 delta) beyond (optax's ``huber_loss``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LossSpec:
    """Weights and kinds ("mse", "mae" or "huber") of the loss terms; ``delta``: the Huber
    threshold, in each term's unit (used only by kind "huber")."""

    energy: float = 1.0
    forces: float = 1.0
    stress: float = 0.0
    hessian: float = 0.0
    kind: str = "mse"
    hessian_kind: str = "mae"
    delta: float = 0.1

    def to_dict(self) -> dict:
        """The fields; ``delta`` only when a term is Huber (run keys of older runs unchanged)."""
        d = {f: getattr(self, f) for f in ("energy", "forces", "stress", "hessian", "kind", "hessian_kind")}
        if "huber" in (self.kind, self.hessian_kind):
            d["delta"] = self.delta
        return d


@dataclass(frozen=True, eq=False)
class Targets:
    """Reference labels for a batch; NaN marks a missing label.

    energy (B,) eV; forces (N, 3) eV/Å; stress (B, 3, 3) eV/Å³ (ASE sign);
    columns (B,) int, sampled Hessian column k = 3 * local_atom + direction (-1: none);
    hessian_columns (N, 3) eV/Å², the reference column of each structure (rows of its atoms).
    """

    energy: np.ndarray
    forces: np.ndarray
    stress: np.ndarray
    columns: np.ndarray
    hessian_columns: np.ndarray


def column_vectors(batch, columns) -> np.ndarray:
    """One-hot probe vectors v (N, 3): structure b gets e_k, k = columns[b] (-1: zero)."""
    v = np.zeros((batch.n_atoms, 3))
    for b, k in enumerate(np.asarray(columns)):
        if k >= 0:
            v[batch.atom_offsets[b] + k // 3, k % 3] = 1.0
    return v


def _mask_of(t, xp):
    return xp.isfinite(t)


def _term(res, mask, kind, xp, delta=0.1):
    n = xp.maximum(mask.sum(), 1)
    r = xp.where(mask, res, 0.0)
    if kind == "mae":
        return xp.abs(r).sum() / n
    if kind == "huber":
        a = xp.abs(r)
        return xp.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta)).sum() / n
    return (r * r).sum() / n


def loss_value(lspec: LossSpec, pred: dict, targets: Targets, n_atoms, xp=np):
    """Total loss and per-term values. pred: energy (B,), forces (N,3), stress (B,3,3), hv (N,3)."""
    terms = {}
    total = 0.0
    if lspec.energy:
        t = targets.energy
        m = _mask_of(t, xp)
        res = (pred["energy"] - xp.where(m, t, 0.0)) / n_atoms
        terms["energy"] = _term(res, m, lspec.kind, xp, lspec.delta)
        total = total + lspec.energy * terms["energy"]
    if lspec.forces:
        t = targets.forces
        m = _mask_of(t, xp)
        terms["forces"] = _term(pred["forces"] - xp.where(m, t, 0.0), m, lspec.kind, xp, lspec.delta)
        total = total + lspec.forces * terms["forces"]
    if lspec.stress:
        t = targets.stress
        m = _mask_of(t, xp)
        terms["stress"] = _term(pred["stress"] - xp.where(m, t, 0.0), m, lspec.kind, xp, lspec.delta)
        total = total + lspec.stress * terms["stress"]
    if lspec.hessian:
        t = targets.hessian_columns
        m = _mask_of(t, xp)
        terms["hessian"] = _term(pred["hv"] - xp.where(m, t, 0.0), m, lspec.hessian_kind, xp, lspec.delta)
        total = total + lspec.hessian * terms["hessian"]
    return total, terms


def _adj(res, mask, kind, weight, delta=0.1):
    n = max(int(mask.sum()), 1)
    r = np.where(mask, res, 0.0)
    if kind == "mae":
        d = np.sign(r)
    elif kind == "huber":
        d = np.clip(r, -delta, delta)
    else:
        d = 2.0 * r
    return weight * np.where(mask, d, 0.0) / n


def loss_adjoints(lspec: LossSpec, pred: dict, targets: Targets, n_atoms) -> dict:
    """d loss / d prediction for each predicted quantity (same shapes as pred), NumPy."""
    out = {}
    if lspec.energy:
        m = np.isfinite(targets.energy)
        res = (pred["energy"] - np.where(m, targets.energy, 0.0)) / n_atoms
        out["energy"] = _adj(res, m, lspec.kind, lspec.energy, lspec.delta) / n_atoms
    if lspec.forces:
        m = np.isfinite(targets.forces)
        out["forces"] = _adj(pred["forces"] - np.where(m, targets.forces, 0.0), m, lspec.kind, lspec.forces,
                             lspec.delta)  # fmt: skip
    if lspec.stress:
        m = np.isfinite(targets.stress)
        out["stress"] = _adj(pred["stress"] - np.where(m, targets.stress, 0.0), m, lspec.kind, lspec.stress,
                             lspec.delta)  # fmt: skip
    if lspec.hessian:
        m = np.isfinite(targets.hessian_columns)
        out["hv"] = _adj(
            pred["hv"] - np.where(m, targets.hessian_columns, 0.0), m, lspec.hessian_kind, lspec.hessian, lspec.delta
        )
    return out


@dataclass(frozen=True)
class FitWeights:
    """Row weights of a least-squares base fit: 1 / (expected error) per quantity, and the ridge.

    energy: per eV/atom; forces: per eV/Å; stress: per eV/Å³; ridge: added to the diagonal
    of the normal equations (in units of the weighted row scale).
    """

    energy: float = 1.0 / 0.002
    forces: float = 1.0 / 0.05
    stress: float = 1.0 / 0.002
    ridge: float = 1e-8
