"""A Morse pair potential: the second potential family, small and with a closed-form Hessian.

    E = sum_i e0[s_i] + 1/2 sum_{i != j, r_ij < r_cut} phi_{s_i s_j}(r_ij)
    phi(r) = D [(1 - exp(-alpha (r - r0)))^2 - 1] * (1 - (r / r_cut)^2)^4

One (D eV, alpha 1/Å, r0 Å) per unordered species pair; the switch makes phi and its first
three derivatives vanish at r_cut (smooth Hessians and fc3). It is here to show and test that
trainer, phonons and kappa work with any potential; its JAX backend is autodiff of the energy
(:mod:`pftlite.potentials.pair.jax_backend`), and :func:`closed_form` gives energy, forces and
the Hessian in NumPy by hand — an oracle independent of autodiff.

params (float64): ``e0`` (S,) eV, ``D`` (P,) eV, ``alpha`` (P,) 1/Å, ``r0`` (P,) Å,
P = S (S + 1) / 2 pairs in the order of :func:`pair_table`. All of them train.
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass

import numpy as np

from pftlite.core.errors import InputError
from pftlite.potentials.base import check_param_shapes

TRAINABLE = ("e0", "D", "alpha", "r0")


@dataclass(frozen=True)
class PairSpec:
    """species: atomic numbers (channel order); r_cut: cutoff radius, Å."""

    species: tuple[int, ...]
    r_cut: float = 5.0

    def __post_init__(self):
        if isinstance(self.species, list):
            object.__setattr__(self, "species", tuple(self.species))
        if not isinstance(self.species, tuple) or not self.species or not all(
            isinstance(z, numbers.Integral) and 1 <= z <= 118 for z in self.species
        ):
            raise InputError(f"pair spec: species must be atomic numbers 1-118, got {self.species!r}")
        if len(set(self.species)) != len(self.species):
            raise InputError(f"pair spec: duplicate species in {self.species}")
        if isinstance(self.r_cut, bool) or not isinstance(self.r_cut, numbers.Real) or not self.r_cut > 0.5:
            raise InputError(f"pair spec: r_cut must be a number above 0.5 Å, got {self.r_cut!r}")

    @property
    def n_pairs(self) -> int:
        S = len(self.species)
        return S * (S + 1) // 2

    def to_dict(self) -> dict:
        return {"species": list(self.species), "r_cut": float(self.r_cut)}

    @classmethod
    def from_dict(cls, d) -> PairSpec:
        if not isinstance(d, dict) or set(d) - {f.name for f in dataclasses.fields(cls)}:
            raise InputError(f"pair spec: expected {{species, r_cut}}, got {d!r}")
        return cls(species=tuple(d.get("species") or ()), r_cut=d.get("r_cut", 5.0))


def pair_table(n_species: int) -> np.ndarray:
    """(S, S) int: the pair index of species channels (a, b), symmetric, row-major over a <= b."""
    t = np.zeros((n_species, n_species), dtype=np.int64)
    k = 0
    for a in range(n_species):
        for b in range(a, n_species):
            t[a, b] = t[b, a] = k
            k += 1
    return t


def trainable_keys(spec) -> tuple[str, ...]:
    return TRAINABLE


def init_params(spec: PairSpec, D=1.0, alpha=1.5, r0=2.5, e0=0.0) -> dict:
    """Parameters with the same (D eV, alpha 1/Å, r0 Å) for every pair (scalars or (P,))."""
    P, S = spec.n_pairs, len(spec.species)
    return {
        "e0": np.broadcast_to(np.asarray(e0, dtype=np.float64), (S,)).copy(),
        "D": np.broadcast_to(np.asarray(D, dtype=np.float64), (P,)).copy(),
        "alpha": np.broadcast_to(np.asarray(alpha, dtype=np.float64), (P,)).copy(),
        "r0": np.broadcast_to(np.asarray(r0, dtype=np.float64), (P,)).copy(),
    }


def check_params(spec: PairSpec, params: dict, source: str = "params") -> None:
    """Raise InputError on a missing, misshapen, extra or non-finite parameter."""
    want = {"e0": (len(spec.species),), "D": (spec.n_pairs,), "alpha": (spec.n_pairs,), "r0": (spec.n_pairs,)}
    check_param_shapes(params, want, source)


def phi(r, D, alpha, r0, r_cut, xp=np):
    """Pair energy phi(r), eV, elementwise (r Å; D, alpha, r0 per pair, broadcast)."""
    u = xp.exp(-alpha * (r - r0))
    q = 1.0 - (r / r_cut) ** 2
    return D * (u * u - 2.0 * u) * q**4


def phi_derivatives(r, D, alpha, r0, r_cut):
    """(phi, phi', phi'') at r (NumPy), by hand: eV, eV/Å, eV/Å²."""
    u = np.exp(-alpha * (r - r0))
    m, m1, m2 = D * (u * u - 2 * u), 2 * alpha * D * (u - u * u), 2 * alpha**2 * D * (2 * u * u - u)
    q = 1.0 - (r / r_cut) ** 2
    s, s1 = q**4, -8.0 * r / r_cut**2 * q**3
    s2 = -8.0 / r_cut**2 * q**3 + 48.0 * r**2 / r_cut**4 * q**2
    return m * s, m1 * s + m * s1, m2 * s + 2 * m1 * s1 + m * s2


def closed_form(spec: PairSpec, params: dict, batch) -> dict:
    """Energy (B,) eV, forces (N, 3) eV/Å and, for a one-structure batch, the Hessian
    (N, N, 3, 3) eV/Å² (phonopy layout) by hand: per bond, K = phi'' r̂r̂ᵀ + phi'/r (1 - r̂r̂ᵀ)."""
    r_vec = batch.edge_vectors()
    r = np.linalg.norm(r_vec, axis=1)
    k = pair_table(len(spec.species))[batch.species[batch.edge_i], batch.species[batch.edge_j]]
    f0, f1, f2 = phi_derivatives(r, params["D"][k], params["alpha"][k], params["r0"][k], spec.r_cut)
    e = np.asarray(params["e0"])[batch.species]
    energy = np.bincount(batch.atom_struct, weights=e, minlength=batch.n_structures)
    energy += 0.5 * np.bincount(batch.edge_struct, weights=f0, minlength=batch.n_structures)
    rhat = r_vec / r[:, None]
    g = 0.5 * f1[:, None] * rhat  # dE/dr_e of each directed edge (r_e = x_j - x_i + shift)
    forces = np.zeros((batch.n_atoms, 3))
    np.add.at(forces, batch.edge_i, g)
    np.add.at(forces, batch.edge_j, -g)
    out = {"energy": energy, "forces": forces}
    if batch.n_structures == 1:
        N = batch.n_atoms
        P = np.einsum("ea,eb->eab", rhat, rhat)
        K = 0.5 * (f2[:, None, None] * P + (f1 / r)[:, None, None] * (np.eye(3) - P))
        H = np.zeros((N, N, 3, 3))
        i, j = batch.edge_i, batch.edge_j
        np.add.at(H, (i, i), K)
        np.add.at(H, (j, j), K)
        np.add.at(H, (i, j), -K)
        np.add.at(H, (j, i), -K)
        out["hessian"] = H
    return out
