"""Conformance checks any backend must pass (shipped with the interface, not only in tests/).

``check_backend(be, spec, params, batch)`` verifies, on the given batch:
forces = -dE/dx, stress = (1/V) dE/dε, HVP = d(-F)/dx along random directions (all by
finite-difference *convergence* sweeps, not one magic step), a symmetric Hessian obeying the
acoustic sum rule, and hessian() columns equal hvp() with one-hot vectors.
"""

from __future__ import annotations

import numpy as np


def fd_convergence(f, df_dir, hs=(1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5), atol=1e-12):
    """Central differences (f(h) - f(-h)) / 2h against the analytic directional derivative.

    f: callable of the step h returning a scalar or array; df_dir: analytic value at h=0.
    Returns (errors per h, passed). Passes when the error falls by >= 1e3 from the largest
    step to the best one, or the best error is at rounding level (1e-9 relative, or below
    ``atol`` absolute: a derivative that vanishes by symmetry has nothing to converge).
    """
    df_dir = np.asarray(df_dir, dtype=np.float64)
    scale = max(float(np.max(np.abs(df_dir))), 1e-12)
    errs = []
    for h in hs:
        fd = (np.asarray(f(h)) - np.asarray(f(-h))) / (2 * h)
        errs.append(float(np.max(np.abs(fd - df_dir))))
    best = min(errs)
    passed = best <= 1e-3 * errs[0] or best <= 1e-9 * scale or best <= atol
    return errs, passed


def _strained(batch, eps):
    """Batch with positions and image shifts deformed by (1 + eps) (same neighbour graph)."""
    from dataclasses import replace

    D = np.eye(3) + eps
    return replace(
        batch,
        positions=batch.positions @ D.T,
        edge_shift=batch.edge_shift @ D.T,
        cells=batch.cells @ D.T,
        volumes=batch.volumes * np.linalg.det(D),
    )


def check_backend(be, spec, params, batch, seed: int = 0, hessian: bool = True) -> dict:
    """Run the conformance checks; raise AssertionError naming the first failure.

    be: a backend module (``pftlite.registry.get_backend(name)``). Returns the FD error
    sweeps for reporting.
    """
    rng = np.random.default_rng(seed)
    report = {}
    out = be.energy_forces_stress(spec, params, batch)
    x0 = batch.positions
    d = rng.normal(size=x0.shape)

    def energy(h):
        return be.energy_forces_stress(spec, params, batch.with_positions(x0 + h * d))["energy"]

    fd_dir = np.einsum("ia,ia->i", out["forces"], d)
    errs, ok = fd_convergence(
        energy, -np.bincount(batch.atom_struct, fd_dir, minlength=batch.n_structures)
    )
    report["forces"] = errs
    assert ok, f"forces are not -dE/dx: FD errors {errs}"

    sym = rng.normal(size=(3, 3))
    sym = 0.5 * (sym + sym.T)

    def strained_energy(h):
        return be.energy_forces_stress(spec, params, _strained(batch, h * sym))["energy"]

    want = np.einsum("bij,ij->b", out["stress"], sym) * batch.volumes
    errs, ok = fd_convergence(strained_energy, want)
    report["stress"] = errs
    assert ok, f"stress is not (1/V) dE/deps: FD errors {errs}"

    v = rng.normal(size=x0.shape)
    hv = be.hvp(spec, params, batch, v)

    def minus_forces(h):
        return -be.energy_forces_stress(spec, params, batch.with_positions(x0 + h * v))["forces"]

    errs, ok = fd_convergence(minus_forces, hv)
    report["hvp"] = errs
    assert ok, f"HVP is not the derivative of -forces: FD errors {errs}"

    if hessian and batch.n_structures == 1:
        H = be.hessian(spec, params, batch)
        N = batch.n_atoms
        Hm = H.transpose(0, 2, 1, 3).reshape(3 * N, 3 * N)
        scale = np.abs(Hm).max()
        asym = np.abs(Hm - Hm.T).max()
        asr = np.abs(H.sum(axis=1)).max()
        report["hessian_asym"] = asym
        report["hessian_asr"] = asr
        assert asym <= 1e-10 * scale, f"Hessian not symmetric: {asym:.3g} (scale {scale:.3g})"
        assert asr <= 1e-10 * scale, f"acoustic sum rule violated: {asr:.3g} (scale {scale:.3g})"
        assert np.allclose(Hm @ v.ravel(), hv.ravel(), rtol=1e-10, atol=1e-12 * scale), (
            "hessian() disagrees with hvp()"
        )
        cols = rng.choice(3 * N, size=min(3, 3 * N), replace=False)
        Hc = be.hessian(spec, params, batch, columns=cols)
        assert np.allclose(Hc.reshape(len(cols), -1), Hm[:, cols].T, rtol=1e-12, atol=1e-12 * scale)
    return report


def phonopy_pipeline(spec, params, atoms, supercell_matrix, primitive_matrix, distance: float = 0.01,
                     temperatures=(0, 75, 150, 300, 600), exclude_gamma_acoustic: bool = True, backend: str = "numba"):  # fmt: skip
    """Independent oracle: phonopy's own steps (the published MDR script) fed model forces
    through the ASE calculator — displacements, drift-free forces, produce + symmetrize fc,
    mesh 100 Å, thermal properties. ``atoms``: unit cell (ase.Atoms). Returns the Phonopy."""
    import warnings

    import phonopy
    from ase import Atoms
    from phonopy.structure.atoms import PhonopyAtoms

    from .calculator import PftliteCalculator

    unit = PhonopyAtoms(symbols=atoms.get_chemical_symbols(), cell=atoms.cell[:],
                        scaled_positions=atoms.get_scaled_positions(), masses=atoms.get_masses())  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ph = phonopy.Phonopy(unit, supercell_matrix=supercell_matrix, primitive_matrix=primitive_matrix)
        ph.generate_displacements(distance=distance, is_diagonal=False)
        calc = PftliteCalculator(spec, params, backend=backend)
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
