"""Hessian-column samplers and the exact full-Hessian loss from irreducible columns.

A column is k = 3 * atom + direction of one structure's Hessian, obtained with one HVP.
Random draws come from ``numpy.random.default_rng([seed, epoch, step, structure])``: the
column a step uses is a function of those four integers, never of hidden generator state,
so a resumed run draws exactly what an uninterrupted one would.

- ``uniform``: k uniform over the 3N columns (the published recipe).
- ``symmetry``: an irreducible atom (spglib orbits of the supercell) with probability
  orbit size / N, a direction uniform among 3. For a column loss that is invariant under the
  crystal's point operations acting on the column (always for MSE; for MAE when the
  operations are signed permutations of x, y, z, as in cubic crystals) its expectation
  equals the uniform sampler's, i.e. the full-Hessian loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLERS = ("uniform", "symmetry")


@dataclass(frozen=True, eq=False)
class Orbits:
    """Symmetry of one supercell. irreducible (n_irr,) atom indices; orbit_size (n_irr,);
    equivalent (N,) index of each atom's irreducible representative; rotations (n_op, 3, 3)
    int (fractional), permutations (n_op, N) int; lattice (3, 3) Å (rows)."""

    irreducible: np.ndarray
    orbit_size: np.ndarray
    equivalent: np.ndarray
    rotations: np.ndarray
    permutations: np.ndarray
    lattice: np.ndarray


def orbits(atoms, symprec: float = 1e-5) -> Orbits:
    """spglib symmetry of ``atoms`` (ase.Atoms, a supercell) via phonopy's Symmetry."""
    from phonopy.structure.atoms import PhonopyAtoms
    from phonopy.structure.symmetry import Symmetry

    cell = PhonopyAtoms(numbers=atoms.numbers, cell=atoms.cell[:], scaled_positions=atoms.get_scaled_positions())
    sym = Symmetry(cell, symprec=symprec)
    eq = np.asarray(sym.get_map_atoms(), dtype=np.int64)
    irr, counts = np.unique(eq, return_counts=True)
    ops = sym.symmetry_operations
    return Orbits(
        irreducible=irr, orbit_size=counts, equivalent=eq,
        rotations=np.asarray(ops["rotations"], dtype=np.int64),
        permutations=np.asarray(sym.atomic_permutations, dtype=np.int64),
        lattice=np.asarray(atoms.cell[:], dtype=float),
    )  # fmt: skip


def sample_columns(kind: str, n_atoms, seed: int, epoch: int, step: int, orbit_list=None) -> np.ndarray:
    """One column per structure: (B,) int, k = 3 * atom + direction.

    n_atoms: (B,) atoms per structure; orbit_list: (B,) :class:`Orbits` (symmetry sampler).
    """
    if kind not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {kind!r}")
    cols = np.empty(len(n_atoms), dtype=np.int64)
    for b, n in enumerate(n_atoms):
        rng = np.random.default_rng([seed, epoch, step, b])
        if kind == "uniform":
            cols[b] = rng.integers(3 * int(n))
        else:
            o = orbit_list[b]
            atom = o.irreducible[rng.choice(len(o.irreducible), p=o.orbit_size / o.orbit_size.sum())]
            cols[b] = 3 * int(atom) + int(rng.integers(3))
    return cols


def hessian_from_irreducible(columns_of, orbit: Orbits, n_atoms: int) -> np.ndarray:
    """Full force constants (N, N, 3, 3) eV/Å² from the 3 columns of each irreducible atom.

    ``columns_of(ks)`` returns H e_k for the column indices ``ks`` as (len(ks), N, 3). Rows of
    the other atoms follow by symmetry (phonopy's ``distribute_force_constants``); exact when
    the Hessian has the crystal's symmetry.
    """
    from phonopy.harmonic.force_constants import distribute_force_constants

    irr = orbit.irreducible
    ks = (3 * irr[:, None] + np.arange(3)[None, :]).ravel()
    cols = np.asarray(columns_of(ks)).reshape(len(irr), 3, n_atoms, 3)
    fc = np.zeros((n_atoms, n_atoms, 3, 3))
    fc[irr] = cols.transpose(0, 2, 1, 3)  # (H e_{i,a})[j, b] = fc[i, j, a, b]
    distribute_force_constants(fc, irr, orbit.lattice.T, orbit.rotations, orbit.permutations)
    return fc
