"""Independent oracles: phonopy's own steps, fed a pftlite potential's forces."""

from __future__ import annotations


def phonopy_pipeline(potential, atoms, supercell_matrix, primitive_matrix, distance: float = 0.01,
                     temperatures=(0, 75, 150, 300, 600), exclude_gamma_acoustic: bool = True, backend: str = "numba"):  # fmt: skip
    """Independent oracle: phonopy's own steps (the published MDR script) fed model forces
    through the ASE calculator — displacements, drift-free forces, produce + symmetrize fc,
    mesh 100 Å, thermal properties. ``atoms``: unit cell (ase.Atoms). Returns the Phonopy."""
    import warnings

    import phonopy
    from ase import Atoms
    from phonopy.structure.atoms import PhonopyAtoms

    from pftlite.potentials.calculator import PftliteCalculator

    unit = PhonopyAtoms(symbols=atoms.get_chemical_symbols(), cell=atoms.cell[:],
                        scaled_positions=atoms.get_scaled_positions(), masses=atoms.get_masses())  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ph = phonopy.Phonopy(unit, supercell_matrix=supercell_matrix, primitive_matrix=primitive_matrix)
        ph.generate_displacements(distance=distance, is_diagonal=False)
        calc = PftliteCalculator(potential, backend=backend)
        forces = []
        for sc in ph.supercells_with_displacements:
            a = Atoms(sc.symbols, cell=sc.cell, scaled_positions=sc.scaled_positions, pbc=True)
            a.calc = calc
            f = a.get_forces()
            forces.append(f - f.mean(axis=0))
        ph.forces = forces
        ph.produce_force_constants()
        ph.symmetrize_force_constants()
        ph.run_mesh(100.0)
        ph.run_thermal_properties(temperatures=list(temperatures), exclude_gamma_acoustic=exclude_gamma_acoustic)
    return ph
