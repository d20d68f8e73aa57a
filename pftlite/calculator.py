"""ASE calculator over either backend.

>>> calc = PftliteCalculator.from_file("model.npz", backend="numba")
>>> atoms.calc = calc; atoms.get_forces()

The neighbour list is rebuilt whenever positions, cell or numbers change (ASE asks again).
"""

from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from .batch import make_batch
from .model import load_model
from .registry import get_backend


class PftliteCalculator(Calculator):
    """Energy (eV), free_energy, forces (eV/Å), stress (Voigt, eV/Å³) from a pftlite model."""

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, spec, params, backend: str = "numba", **kwargs):
        super().__init__(**kwargs)
        self.spec = spec
        self.params = params
        self.backend_name = backend
        self.backend = get_backend(backend)

    @classmethod
    def from_file(cls, path, backend: str = "numba", **kwargs):
        spec, params, _ = load_model(path)
        return cls(spec, params, backend=backend, **kwargs)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        batch = make_batch([self.atoms], self.spec, sources=["atoms"])
        out = self.backend.energy_forces_stress(self.spec, self.params, batch)
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
        batch = make_batch([atoms], self.spec, sources=["atoms"])
        return self.backend.hessian(self.spec, self.params, batch)
