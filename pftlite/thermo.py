"""Harmonic phonon properties from force constants (phonopy), as the MDR benchmark defines them.

- Thermal properties on phonopy's mesh (default: length 100 Å, Γ not forced into the mesh,
  mesh symmetry on): Helmholtz free energy F (kJ/mol), entropy S and heat capacity C_V
  (J/K/mol), per mole of primitive cells.
- Frequencies at the q-points commensurate with the supercell, computed in ONE basis: the
  supercell matrix is re-expressed relative to the primitive cell (M = P⁻¹ S, integer) and
  the commensurate points are those of M, in reduced coordinates of the primitive reciprocal
  lattice — what ``phonopy.get_frequencies`` expects. (The published MDR script passes S,
  given relative to the unit cell, which for a conventional unit cell yields a subset only.)
- ω_max = largest of those frequencies, in K (THz × 47.992); the MDR stability flag.

Γ acoustic modes: after symmetrization the three Γ acoustic frequencies are rounding noise
(~1e-7 THz, either sign). phonopy includes those that come out positive in the thermal sums
(its default, and what produced the stored MDR values); each adds ~0.005 J/K/mol to S on a
32³ mesh through -ln ω, so the result depends on the noise (numba and jax runs of the same
model differ by up to 0.005 J/K/mol). pftlite therefore EXCLUDES them by default
(``gamma_acoustic="exclude"``, phonopy's ``exclude_gamma_acoustic``), for model and DFT
alike; "include" reproduces the published numbers. The DFT cross-check against the values
stored in MDR yamls always uses "include", the setting that produced them.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np

from .units import THZ_TO_K

#: MDR stability thresholds (K): Γ acoustic ≥ -35, every other mode ≥ 0.
GAMMA_ACOUSTIC_TOLERANCE_K = 35.0


@dataclass(frozen=True)
class ThermoSettings:
    """temperatures: K; mesh: length (Å, phonopy's rule) or 3 integers;
    gamma_acoustic: "include" | "exclude"; cutoff_frequency: THz (phonopy's; None = its 0)."""

    temperatures: tuple = (0.0, 75.0, 150.0, 300.0, 600.0)
    mesh: float | tuple = 100.0
    gamma_acoustic: str = "exclude"
    is_gamma_center: bool = False
    is_mesh_symmetry: bool = True
    cutoff_frequency: float | None = None
    report_temperature: float = 300.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["temperatures"] = [float(t) for t in self.temperatures]
        d["mesh"] = self.mesh if np.isscalar(self.mesh) else [int(m) for m in self.mesh]
        return d


def thermal_properties(ph, settings: ThermoSettings = ThermoSettings()) -> dict:
    """F (kJ/mol), S, C_V (J/K/mol) per mole of primitive cells at ``settings.temperatures``.

    ``ph`` must carry force constants. Returns lists plus ``mesh`` (3 ints) and ``n_qpoints``
    (irreducible mesh points).
    """
    if settings.gamma_acoustic not in ("include", "exclude"):
        raise ValueError(f"gamma_acoustic must be include|exclude, got {settings.gamma_acoustic!r}")
    mesh = settings.mesh if np.isscalar(settings.mesh) else [int(m) for m in settings.mesh]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GammaAcousticWarning: our choice is recorded
        ph.run_mesh(
            mesh, is_mesh_symmetry=settings.is_mesh_symmetry,
            is_gamma_center=settings.is_gamma_center, with_eigenvectors=False,
        )  # fmt: skip
        ph.run_thermal_properties(
            temperatures=np.asarray(settings.temperatures, dtype=float),
            cutoff_frequency=settings.cutoff_frequency,
            exclude_gamma_acoustic=settings.gamma_acoustic == "exclude",
        )
    tp = ph.thermal_properties
    return {
        "temperatures": [float(t) for t in tp.temperatures],
        "free_energy": [float(x) for x in tp.free_energy],
        "entropy": [float(x) for x in tp.entropy],
        "heat_capacity": [float(x) for x in tp.heat_capacity],
        "mesh": [int(m) for m in ph.mesh.mesh_numbers],
        "n_qpoints": len(ph.mesh.qpoints),
    }


def primitive_supercell_matrix(ph) -> np.ndarray:
    """Supercell matrix relative to the primitive cell, M = P⁻¹ S (3, 3) int."""
    m = np.linalg.inv(np.asarray(ph.primitive_matrix, float)) @ np.asarray(ph.supercell_matrix, float)
    mi = np.rint(m)
    if np.abs(m - mi).max() > 1e-6:
        raise ValueError(f"supercell is not a supercell of the primitive cell: P^-1 S = {m.tolist()}")
    return mi.astype(int)


def commensurate_qpoints(ph) -> np.ndarray:
    """q-points (n, 3) commensurate with the supercell, reduced coordinates of the primitive
    reciprocal lattice, Γ first; n = N_supercell / N_primitive."""
    from phonopy.harmonic.dynmat_to_fc import get_commensurate_points

    q = np.asarray(get_commensurate_points(primitive_supercell_matrix(ph)), float)
    order = np.argsort(np.abs(q).sum(axis=1), kind="stable")  # Γ first
    return q[order]


def frequencies_at(ph, qpoints) -> np.ndarray:
    """Frequencies (n_q, 3 n_prim) THz at ``qpoints`` (primitive reciprocal basis); imaginary
    modes are negative, as phonopy reports them."""
    ph.run_qpoints(np.asarray(qpoints, float))
    return np.array(ph.qpoints.frequencies)


def stability(freqs_thz: np.ndarray) -> dict:
    """MDR stability flag from commensurate frequencies (n_q, n_band) THz, row 0 = Γ.

    Unstable if a Γ acoustic mode < -35 K, a Γ optical mode < 0 K or any other mode < 0 K.
    """
    f = np.asarray(freqs_thz, float) * THZ_TO_K
    g = np.sort(f[0])
    reasons = []
    if np.any(g[:3] < -GAMMA_ACOUSTIC_TOLERANCE_K):
        reasons.append(f"Γ acoustic {g[:3].min():.1f} K < -{GAMMA_ACOUSTIC_TOLERANCE_K:.0f} K")
    if np.any(g[3:] < 0.0):
        reasons.append(f"Γ optical {g[3:].min():.1f} K < 0")
    if len(f) > 1 and np.any(f[1:] < 0.0):
        reasons.append(f"mode {f[1:].min():.1f} K < 0 away from Γ")
    return {"stable": not reasons, "reason": "; ".join(reasons), "min_frequency_K": float(f.min())}


def harmonic_properties(ph, settings: ThermoSettings = ThermoSettings()) -> dict:
    """Everything the MDR benchmark compares, from ``ph`` with force constants.

    Returns ``thermal`` (see :func:`thermal_properties`), ``qpoints`` (commensurate, (n,3)),
    ``frequencies`` (THz, (n, bands)), ``omega_max_K``, ``stability``, and the values at
    ``settings.report_temperature``: ``F`` kJ/mol, ``S`` and ``C_V`` J/K/mol.
    """
    thermal = thermal_properties(ph, settings)
    q = commensurate_qpoints(ph)
    freqs = frequencies_at(ph, q)
    out = {
        "thermal": thermal,
        "qpoints": q.tolist(),
        "frequencies": freqs.tolist(),
        "omega_max_K": float(freqs.max() * THZ_TO_K),
        "stability": stability(freqs),
    }
    temps = np.asarray(thermal["temperatures"])
    hit = np.flatnonzero(np.isclose(temps, settings.report_temperature))
    if len(hit):
        k = int(hit[0])
        out.update(F=thermal["free_energy"][k], S=thermal["entropy"][k], C_V=thermal["heat_capacity"][k])
    return out
