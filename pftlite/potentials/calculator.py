"""ASE calculator over any potential and backend.

>>> calc = PftliteCalculator.from_file("model.npz", backend="numba")   # or a built-in name
>>> atoms.calc = calc; atoms.get_forces()

The neighbour list is rebuilt whenever positions, cell or numbers change (ASE asks again).
"""

from __future__ import annotations

import warnings

import numpy as np
from ase.calculators.calculator import Calculator, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from pftlite.potentials.base import Potential
from pftlite.potentials.files import load_potential
from pftlite.structures.batch import make_batch


class PftliteCalculator(Calculator):
    """Energy (eV), free_energy, forces (eV/Å), stress (Voigt, eV/Å³) of a pftlite potential.

    ``PftliteCalculator(potential, backend="numba")``; the form of pftlite 0.1,
    ``PftliteCalculator(spec, params, backend=...)``, still works (deprecated).
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, potential, params=None, backend: str = "numba", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(potential, Potential):
            warnings.warn("PftliteCalculator(spec, params) is deprecated; pass a Potential "
                          "(pftlite.potentials.load_potential)", DeprecationWarning, stacklevel=2)  # fmt: skip
            potential = Potential(potential, params).check()
        elif params is not None:
            raise TypeError("PftliteCalculator(potential, backend=...): params come with the potential")
        self.potential = potential
        self.backend_name = backend
        self.evaluator = potential.on(backend)

    @classmethod
    def from_file(cls, path, backend: str = "numba", **kwargs):
        return cls(load_potential(path), backend=backend, **kwargs)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        batch = make_batch([self.atoms], self.potential, sources=["atoms"])
        out = self.evaluator.energy_forces_stress(batch)
        e = float(out["energy"][0])
        self.results = {
            "energy": e,
            "free_energy": e,
            "forces": np.asarray(out["forces"]),
            "stress": full_3x3_to_voigt_6_stress(np.asarray(out["stress"][0])),
        }

    def get_hessian(self, atoms=None):
        """Force constants (N, N, 3, 3) eV/Å² of ``atoms`` (phonopy layout), exact."""
        atoms = self.atoms if atoms is None else atoms
        batch = make_batch([atoms], self.potential, sources=["atoms"])
        return self.evaluator.hessian(batch)
