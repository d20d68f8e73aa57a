"""Structure relaxation with a pftlite model: FIRE on a cell filter, symmetry kept.

The MDR phonon protocol (Loew et al.): ASE ``FIRE`` on ``FrechetCellFilter`` (positions and
cell together, zero pressure) with ``FixSymmetry``; converged when the largest generalised
force of the filter (atomic forces in eV/Å and the cell's virial / N in eV) is below
``fmax``. A run that does not converge in ``max_steps`` is reported as not converged — the
caller decides to fail the material, never to keep it silently.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class RelaxSettings:
    """fmax: eV/Å; max_steps: FIRE steps; fix_symmetry_symprec: Å (ASE FixSymmetry's
    tolerance); check_symprec: Å, spglib tolerance of the before/after space-group check."""

    fmax: float = 0.005
    max_steps: int = 1000
    fix_symmetry: bool = True
    relax_cell: bool = True
    fix_symmetry_symprec: float = 0.01
    check_symprec: float = 1e-5
    optimizer: str = "FIRE"
    cell_filter: str = "FrechetCellFilter"

    def to_dict(self) -> dict:
        return asdict(self)


def spacegroup(atoms, symprec: float = 1e-5) -> str:
    """International symbol and number, e.g. ``'Fd-3m (227)'``; ``'?'`` if spglib finds none."""
    import spglib

    cell = (atoms.cell[:], atoms.get_scaled_positions(), atoms.numbers)
    ds = spglib.get_symmetry_dataset(cell, symprec=symprec)
    return "?" if ds is None else f"{ds.international} ({ds.number})"


def relax(potential, backend: str, atoms, settings: RelaxSettings = RelaxSettings()):
    """Relax ``atoms`` (a copy) with ``potential`` on ``backend`` (a name).

    Returns
    -------
    (ase.Atoms, dict)
        The relaxed structure (no calculator, no constraint) and a record: ``converged``,
        ``steps``, ``fmax`` (final generalised force, eV/Å), ``energy`` (eV), ``volume``
        (Å³), ``volume_change`` (relative), ``spacegroup_before`` / ``_after``,
        ``symmetry_kept``, ``seconds``, ``message`` (why it failed, else '').
    """
    from ase.constraints import FixSymmetry
    from ase.filters import FrechetCellFilter, UnitCellFilter
    from ase.optimize import FIRE

    from pftlite.potentials.calculator import PftliteCalculator

    t0 = time.perf_counter()
    work = atoms.copy()
    work.set_constraint()
    work.calc = PftliteCalculator(potential, backend=backend)
    sg0 = spacegroup(work, settings.check_symprec)
    v0 = work.get_volume()
    if settings.fix_symmetry:
        work.set_constraint(FixSymmetry(work, symprec=settings.fix_symmetry_symprec))
    if settings.relax_cell:
        filt = {"FrechetCellFilter": FrechetCellFilter, "UnitCellFilter": UnitCellFilter}
        target = filt[settings.cell_filter](work)
    else:
        target = work
    if settings.optimizer != "FIRE":
        raise ValueError(f"unknown optimizer {settings.optimizer!r}")
    opt = FIRE(target, logfile=None)
    message = ""

    def guard():
        if not np.all(np.isfinite(target.get_forces())) or np.abs(target.get_forces()).max() > 1e4:
            raise FloatingPointError("forces diverged (> 1e4 eV/Å or NaN)")

    opt.attach(guard, interval=1)
    try:
        converged = bool(opt.run(fmax=settings.fmax, steps=settings.max_steps))
    except FloatingPointError as exc:
        converged, message = False, str(exc)
    fmax = float(np.sqrt((target.get_forces() ** 2).sum(axis=1).max()))
    if not converged and not message:
        message = f"not converged: fmax {fmax:.2e} eV/Å after {opt.nsteps} FIRE steps"
    energy = float(work.get_potential_energy())
    out = work.copy()
    out.set_constraint()
    out.calc = None
    sg1 = spacegroup(out, settings.check_symprec)
    info = {
        "converged": converged,
        "steps": int(opt.nsteps),
        "fmax": fmax,
        "energy": energy,
        "volume": float(out.get_volume()),
        "volume_change": float(out.get_volume() / v0 - 1.0),
        "spacegroup_before": sg0,
        "spacegroup_after": sg1,
        "symmetry_kept": sg0 == sg1,
        "seconds": time.perf_counter() - t0,
        "message": message,
    }
    return out, info
