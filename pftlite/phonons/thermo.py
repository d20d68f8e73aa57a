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
(~1e-7 THz, either sign, and which sign depends on the CPU and BLAS kernel). phonopy's default
includes those that come out positive; each adds ~0.005 J/K/mol to S on a 32³ mesh through
-ln ω, so its result depends on the noise (that is how the values stored in the MDR yamls were
made: one of the three came out positive there). pftlite never uses their sign or size:

- ``gamma_acoustic="exclude"`` (default): the three modes (phonopy's pick: smallest |ω| at Γ)
  are left out of the sums, as phonopy's ``exclude_gamma_acoustic``;
- ``"include"``: they are replaced by the acoustic branches averaged over the Γ cell of the
  mesh (the 1/N of the zone the Γ point stands for), sampled on a 6×6×6 midpoint sub-grid
  where the acoustic frequencies are far above the noise — the same zone integral, with its
  integrable -ln ω singularity integrated rather than sampled at ω = 0. Both rules converge to
  the same limit as the mesh grows; "include" converges faster (tested).

Neither reproduces a noise-dependent published number exactly; :func:`gamma_acoustic_terms`
gives the noise-free parts of such a comparison (C_V and U = F + TS of n near-zero modes are
n·k_B and n·k_B T per Γ weight, whatever their frequency).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np

from pftlite.core.units import THZ_TO_K

#: MDR stability thresholds (K): Γ acoustic ≥ -35, every other mode ≥ 0.
GAMMA_ACOUSTIC_TOLERANCE_K = 35.0
#: sub-grid points per axis of the Γ cell average ("include")
GAMMA_CELL_SUBGRID = 6


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


def mode_thermo(freqs_thz, temperatures) -> np.ndarray:
    """Per-mode F (kJ/mol), S and C_V (J/K/mol), phonopy's quantum formulas (zero-point energy
    in F): array (3, nT, n_modes) for frequencies (n_modes,) THz; modes with f <= 0 give 0."""
    from phonopy.physical_units import get_physical_units

    u = get_physical_units()
    f = np.asarray(freqs_thz, float) * u.THzToEv
    ok = f > 0
    f = np.where(ok, f, 1.0)[None, :]
    T = np.asarray(temperatures, float)[:, None]
    out = np.zeros((3, T.shape[0], f.shape[1]))
    out[0] = np.where(ok, f / 2, 0.0)
    hot = T[:, 0] > 0
    if hot.any():
        x = f / (u.KB * T[hot])
        em, om = np.exp(-x), -np.expm1(-x)
        out[0, hot] = u.KB * T[hot] * np.log(om) + f / 2
        out[1, hot] = u.KB * (x * em / om - np.log(om))
        out[2, hot] = u.KB * x**2 * em / om**2
    out[:, :, ~ok] = 0.0
    return out * np.array([u.EvTokJmol, u.EvTokJmol * 1000, u.EvTokJmol * 1000])[:, None, None]


def gamma_cell_acoustic(ph, mesh_numbers, temperatures, n_sub: int = GAMMA_CELL_SUBGRID) -> np.ndarray:
    """F, S, C_V (3, nT) of the three acoustic branches averaged over the Γ cell of the mesh
    (reduced |q_i| <= 1/(2 m_i)), per mode set at one mesh point: midpoints of an n_sub³
    sub-grid (n_sub even: Γ itself is never sampled), the three lowest frequencies at each."""
    m = np.asarray(mesh_numbers, float)
    k = (np.arange(n_sub) + 0.5) / n_sub - 0.5
    sub = np.stack(np.meshgrid(k, k, k, indexing="ij"), -1).reshape(-1, 3) / m
    ph.run_qpoints(sub)
    acoustic = np.sort(np.asarray(ph.qpoints.frequencies), axis=1)[:, :3].ravel()
    return mode_thermo(acoustic, temperatures).sum(axis=2) / len(sub)


def gamma_acoustic_terms(n_modes: int, gamma_weight: float, temperatures) -> dict:
    """Noise-free contributions of ``n_modes`` near-zero (|ω| << k_B T / h) modes at a mesh
    point of weight ``gamma_weight`` (= 1/N): C_V = n k_B and U = F + TS = n k_B T, in
    J/K/mol and kJ/mol, whatever the frequency (S and F alone diverge as -ln ω)."""
    from phonopy.physical_units import get_physical_units

    u = get_physical_units()
    T = np.asarray(temperatures, float)
    cv = n_modes * gamma_weight * u.KB * u.EvTokJmol * 1000 * (T > 0)
    return {"C_V": cv, "U": cv * T / 1000}


def thermal_properties(ph, settings: ThermoSettings = ThermoSettings()) -> dict:
    """F (kJ/mol), S, C_V (J/K/mol) per mole of primitive cells at ``settings.temperatures``.

    ``ph`` must carry force constants. The Γ acoustic modes follow ``settings.gamma_acoustic``
    (module docstring). Returns lists plus ``mesh`` (3 ints), ``n_qpoints`` (irreducible mesh
    points) and ``gamma_weight`` (weight of Γ in the mesh, 0 if the mesh misses it).
    """
    if settings.gamma_acoustic not in ("include", "exclude"):
        raise ValueError(f"gamma_acoustic must be include|exclude, got {settings.gamma_acoustic!r}")
    mesh = settings.mesh if np.isscalar(settings.mesh) else [int(m) for m in settings.mesh]
    temps = np.asarray(settings.temperatures, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GammaAcousticWarning: our choice is recorded
        ph.run_mesh(
            mesh, is_mesh_symmetry=settings.is_mesh_symmetry,
            is_gamma_center=settings.is_gamma_center, with_eigenvectors=False,
        )  # fmt: skip
        ph.run_thermal_properties(
            temperatures=temps, cutoff_frequency=settings.cutoff_frequency,
            exclude_gamma_acoustic=True,
        )  # fmt: skip
    tp = ph.thermal_properties
    fe, s, cv = (np.array(x, float) for x in (tp.free_energy, tp.entropy, tp.heat_capacity))
    weights = np.asarray(ph.mesh.weights, float)
    gamma = ph.mesh.gamma_index
    gamma_weight = 0.0 if gamma is None else float(weights[gamma] / weights.sum())
    mesh_numbers = [int(m) for m in ph.mesh.mesh_numbers]
    n_q = len(ph.mesh.qpoints)
    if settings.gamma_acoustic == "include" and gamma_weight > 0:
        add = gamma_cell_acoustic(ph, mesh_numbers, temps) * gamma_weight
        fe, s, cv = fe + add[0], s + add[1], cv + add[2]
    return {
        "temperatures": [float(t) for t in temps],
        "free_energy": [float(x) for x in fe],
        "entropy": [float(x) for x in s],
        "heat_capacity": [float(x) for x in cv],
        "mesh": mesh_numbers,
        "n_qpoints": n_q,
        "gamma_weight": gamma_weight,
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
    The Γ acoustic modes are the three of smallest |ω| (phonopy's rule), so unstable optical
    modes below them are called optical, not acoustic.
    """
    f = np.asarray(freqs_thz, float) * THZ_TO_K
    g = f[0]
    acoustic = np.zeros(len(g), dtype=bool)  # phonopy's pick: the three smallest |ω| at Γ
    acoustic[np.argsort(np.abs(g), kind="stable")[:3]] = True
    ga, go = g[acoustic], g[~acoustic]
    reasons = []
    if np.any(ga < -GAMMA_ACOUSTIC_TOLERANCE_K):
        reasons.append(f"Γ acoustic {ga.min():.1f} K < -{GAMMA_ACOUSTIC_TOLERANCE_K:.0f} K")
    if np.any(go < 0.0):
        reasons.append(f"Γ optical {go.min():.1f} K < 0")
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
