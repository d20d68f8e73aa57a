"""Supercell symmetry (spglib, through phonopy) and force constants from irreducible columns.

:class:`Orbits` is what the samplers (:mod:`pftlite.training.samplers`), the full-Hessian
validation and the fc error by neighbour shell need to know about a supercell's symmetry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
