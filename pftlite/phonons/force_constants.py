"""Second-order force constants (fc2) of a model in a phonopy supercell, two ways.

- ``analytic``: phonopy's symmetry-irreducible displacements (spglib), and for each the exact
  linear response F = -H u from one Hessian-vector product. phonopy's solver expands these
  to the full fc2 by symmetry. No finite-difference error; the displacement length only
  scales u (the result does not depend on it).
- ``displacement``: the same displacements applied to the supercell, forces from the model,
  the mean force (drift) subtracted — the published MDR protocol (0.01 Å).

Both end with phonopy's ``symmetrize_force_constants`` (translational invariance and index
permutation, level 1). Settings are pinned here, not taken from phonopy's version defaults.
Units: Å, eV/Å, eV/Å², masses in amu.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

FC_METHODS = ("analytic", "displacement")
FC_SETTINGS = {
    "is_diagonal": False,  # as the MDR protocol: fewer, general displacements
    "is_plusminus": "auto",
    "fc_calculator": "traditional",
    "symmetrize_fc": "phonopy symmetrize_force_constants(level=1)",
}


def make_phonopy(atoms, supercell_matrix, primitive_matrix, symprec: float = 1e-5):
    """A ``phonopy.Phonopy`` on unit cell ``atoms`` (ase.Atoms, masses kept), no NAC."""
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    unit = PhonopyAtoms(
        symbols=atoms.get_chemical_symbols(),
        cell=np.asarray(atoms.cell[:]),
        scaled_positions=atoms.get_scaled_positions(wrap=False),
        masses=atoms.get_masses(),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Phonopy(
            unit,
            supercell_matrix=np.asarray(supercell_matrix),
            primitive_matrix=np.asarray(primitive_matrix, dtype=float),
            symprec=symprec,
        )


def supercell_atoms(ph):
    """The phonopy supercell as ase.Atoms (phonopy's atom order)."""
    from ase import Atoms

    sc = ph.supercell
    return Atoms(
        numbers=sc.numbers, cell=sc.cell, scaled_positions=sc.scaled_positions,
        masses=sc.masses, pbc=True,
    )  # fmt: skip


def _displacements(ph, distance: float):
    ph.generate_displacements(
        distance=distance, is_diagonal=FC_SETTINGS["is_diagonal"], is_plusminus="auto"
    )
    return [(int(d["number"]), np.asarray(d["displacement"], float)) for d in ph.dataset["first_atoms"]]


def _solve(ph, forces) -> np.ndarray:
    ph.forces = np.asarray(forces)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ph.produce_force_constants(fc_calculator="traditional", show_drift=False)
        ph.symmetrize_force_constants(level=1, show_drift=False)
    return np.array(ph.force_constants)


def model_force_constants(potential, backend: str, ph, method: str = "analytic", distance: float = 0.01):
    """fc2 (N, N, 3, 3) eV/Å² of ``potential`` (on ``backend``, a name) in ``ph``'s supercell (phonopy atom order).

    ``ph`` (a fresh ``make_phonopy`` object) receives the displacement dataset, the model
    forces and the symmetrized force constants. Returns ``(fc, info)`` with ``info``:
    ``method``, ``distance`` (Å), ``n_displacements``, ``n_evaluations`` (HVPs or force
    calls), ``max_drift`` (eV/Å, largest mean force removed; displacement method),
    ``seconds``.
    """
    from pftlite.structures.batch import make_batch

    if method not in FC_METHODS:
        raise ValueError(f"fc method must be one of {FC_METHODS}, got {method!r}")
    ev = potential.on(backend)
    t0 = time.perf_counter()
    disps = _displacements(ph, distance)
    atoms = supercell_atoms(ph)
    N = len(atoms)
    forces, drift = [], 0.0
    if method == "analytic":
        batch = make_batch([atoms], potential, sources=["supercell"])
        for i, u in disps:
            v = np.zeros((N, 3))
            v[i] = u
            forces.append(-np.asarray(ev.hvp(batch, v)))
    else:
        for i, u in disps:
            a = atoms.copy()
            a.positions[i] += u
            f = np.asarray(ev.energy_forces_stress(make_batch([a], potential, sources=["supercell"]))["forces"])
            mean = f.mean(axis=0)
            drift = max(drift, float(np.abs(mean).max()))
            forces.append(f - mean)
    fc = _solve(ph, forces)
    info = {
        "method": method,
        "distance": float(distance),
        "n_displacements": len(disps),
        "n_evaluations": len(disps),
        "max_drift": drift,
        "seconds": time.perf_counter() - t0,
    }
    return fc, info


def reference_force_constants(ph, dataset=None, force_constants=None) -> tuple[np.ndarray, str]:
    """DFT fc2 (N, N, 3, 3) into ``ph``: from the displacement dataset's forces when present
    (phonopy 'traditional' solver, then symmetrized, as the MDR reference script), else the
    stored force constants (symmetrized). Returns ``(fc, how)``."""
    if dataset is not None:
        ph.dataset = dataset
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ph.produce_force_constants(fc_calculator="traditional", show_drift=False)
            ph.symmetrize_force_constants(level=1, show_drift=False)
        return np.array(ph.force_constants), "displacement dataset (traditional solver, symmetrized)"
    if force_constants is None:
        raise ValueError("neither a displacement dataset nor force constants")
    ph.force_constants = np.asarray(force_constants)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ph.symmetrize_force_constants(level=1, show_drift=False)
    return np.array(ph.force_constants), "stored force constants (symmetrized)"
