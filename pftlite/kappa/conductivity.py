"""Lattice thermal conductivity from fc2 and fc3: relaxation-time approximation (RTA) plus the
optional Wigner coherence term, matching phono3py 4.10 (``run_thermal_conductivity``).

Pipeline (``conductivity``):

1. Γ-centred mesh in the primitive reciprocal basis, its BZ images, irreducible points and
   weights (``pftlite.kappa.bz``, phonopy's BZGrid and spglib symmetry, time reversal added).
2. Harmonic phonons at every BZ grid point from fc2 (dynamical matrix with phonopy's
   shortest vectors and multiplicities, Numba), frequencies in THz.
3. Group velocities at the irreducible points (phonopy's ``GroupVelocity``: analytic dD/dq,
   degenerate subspaces |Δf| < 1e-4 THz), ``v ⊗ v`` summed over the k-star rotations.
4. Mode heat capacity C = k_B x² eˣ/(eˣ - 1)², x = h f / k_B T (eV/K).
5. Γ_ph-ph (imaginary self-energy, half width, THz): irreducible triplets (q, q', q'') of
   each irreducible q (little group + q' ↔ q'' swap), fc3 Fourier transformed per triplet
   (three-leg r0 average, phono3py's default), |Φ|² in normal modes, tetrahedron weights of
   δ(f - f' - f'') and δ(f + f' - f'') - δ(f - f' + f'') (or Gaussians of width ``sigma``),
   averaged over degenerate bands. Numba kernels parallel over triplets
   (``pftlite.kappa.kernels``); memory per triplet is O(n_band³).
6. Γ_iso (Tamura, tetrahedron weights over the full grid, mass variance per atom from
   phonopy's isotope table), Γ_boundary = |v| / (4π L) (phono3py's definition).
7. κ_P = Σ_qs C v⊗v / (2 Γ) · conv / N (W/m-K), τ = 1/(2Γ) in ps/(2π), modes with
   f < ``cutoff_frequency`` dropped.
8. Optional coherence term κ_C (``wigner=True``), see :func:`coherence_kappa`.

Units: Å, eV, amu, THz; κ in W m⁻¹ K⁻¹. Optional non-analytical term correction of the fc2
phonons (``nac_params``: phonopy's Gonze-Lee dynamical matrix, as phono3py applies it).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np

from pftlite.core.errors import InputError
from pftlite.kappa import kernels as kk
from pftlite.kappa.bz import BZMesh, make_bz_mesh, triplets_at_q

__all__ = ["KappaResult", "KappaSettings", "conductivity", "mass_variances"]

#: triplets per Fourier-transform block (fc3 is streamed once per block)
TRIPLET_BLOCK = 16
#: irreducible q-points per parallel kernel call
Q_CHUNK = 8


@dataclass(frozen=True)
class KappaSettings:
    """Settings of :func:`conductivity` (defaults: phono3py's RTA defaults, 19³ mesh; a kappa
    *evaluation* — ``pftlite.kappa.evaluate.KappaProtocol`` and ``pftlite kappa`` — defaults to
    isotopes and the coherence term on, 11³, see ``kappa_eval.default_kappa_settings``).

    temperatures (K); mesh: Γ-centred, primitive reciprocal basis; isotope: natural-abundance
    mass variance (phonopy's table); mass_variances: per primitive atom, overrides the table;
    boundary_mfp (µm): Casimir-like v/L scattering as phono3py; wigner: add the coherence
    term; sigma (THz): Gaussian smearing, None = tetrahedron method; cutoff_frequency (THz):
    modes below are dropped; r0_average: phono3py's make_r0_average; symprec (Å).
    """

    temperatures: tuple[float, ...] = (300.0,)
    mesh: tuple[int, int, int] = (19, 19, 19)
    isotope: bool = False
    mass_variances: tuple[float, ...] | None = None
    boundary_mfp: float | None = None
    wigner: bool = False
    sigma: float | None = None
    cutoff_frequency: float = 1e-4
    r0_average: bool = True
    symprec: float = 1e-5

    def to_dict(self) -> dict:
        d = asdict(self)
        d["temperatures"] = [float(t) for t in self.temperatures]
        d["mesh"] = [int(m) for m in self.mesh]
        if self.mass_variances is not None:
            d["mass_variances"] = [float(g) for g in self.mass_variances]
        return d


@dataclass(frozen=True)
class KappaResult:
    """Output of :func:`conductivity`; arrays are numpy, shapes below.

    temperatures (nT,) K; mesh; qpoints (n_ir, 3) reduced; weights (n_ir,) int (sum = N);
    frequencies (n_ir, nb) THz; group_velocities (n_ir, nb, 3) THz·Å; heat_capacity
    (nT, n_ir, nb) eV/K; gamma (nT, n_ir, nb) THz (ph-ph half width); gamma_isotope
    (n_ir, nb) THz or None; kappa_P, kappa_C, kappa (nT, 3, 3) W/m-K; mode_kappa_P,
    mode_kappa_C (nT, n_ir, nb, 3, 3) W/m-K with weights included (band pairs split per mode
        as the κ_SRME benchmark does, see :func:`coherence_mode_kappa`)
    (kappa = mode_kappa.sum((1, 2)) / weights.sum()); n_triplets (n_ir,);
    n_imaginary: modes on the full grid below -cutoff_frequency (their κ is dropped);
    min_frequency (THz) on the grid; settings; seconds (stage timings).
    """

    temperatures: np.ndarray
    mesh: tuple
    qpoints: np.ndarray
    weights: np.ndarray
    frequencies: np.ndarray
    group_velocities: np.ndarray
    heat_capacity: np.ndarray
    gamma: np.ndarray
    gamma_isotope: np.ndarray | None
    kappa_P: np.ndarray
    kappa_C: np.ndarray
    kappa: np.ndarray
    mode_kappa_P: np.ndarray
    mode_kappa_C: np.ndarray
    n_triplets: np.ndarray
    n_imaginary: int
    min_frequency: float
    settings: KappaSettings
    seconds: dict = field(default_factory=dict)

    def to_dict(self, modes: bool = False) -> dict:
        """JSON-ready dict (lists); per-mode arrays only when ``modes``."""
        d = {
            "units": {"temperature": "K", "frequency": "THz", "group_velocity": "THz*Angstrom",
                      "heat_capacity": "eV/K", "gamma": "THz", "kappa": "W/m-K",
                      "seconds": "s"},
            "temperatures": self.temperatures.tolist(),
            "mesh": [int(m) for m in self.mesh],
            "n_qpoints_irreducible": len(self.weights),
            "n_triplets": int(self.n_triplets.sum()),
            "kappa_P": self.kappa_P.tolist(),
            "kappa_C": self.kappa_C.tolist(),
            "kappa": self.kappa.tolist(),
            "n_imaginary": int(self.n_imaginary),
            "min_frequency": float(self.min_frequency),
            "settings": self.settings.to_dict(),
            "seconds": {k: float(v) for k, v in self.seconds.items()},
        }
        if modes:
            for k in ("qpoints", "weights", "frequencies", "group_velocities", "heat_capacity",
                      "gamma"):  # fmt: skip
                d[k] = getattr(self, k).tolist()
            if self.gamma_isotope is not None:
                d["gamma_isotope"] = self.gamma_isotope.tolist()
            d["mode_kappa_P"] = self.mode_kappa_P.tolist()
            d["mode_kappa_C"] = self.mode_kappa_C.tolist()
            d["lifetime"] = self.lifetimes().tolist()
            d["units"]["lifetime"] = "ps"
        return d

    def lifetimes(self) -> np.ndarray:
        """Phonon lifetimes τ = 1 / (2 · 2π Γ) (nT, n_ir, nb) in ps, from the ph-ph and isotope
        half widths (boundary scattering, which depends on the direction, not included);
        inf where Γ = 0 (dropped modes)."""
        g = np.asarray(self.gamma, float) + (0.0 if self.gamma_isotope is None else self.gamma_isotope)
        with np.errstate(divide="ignore"):
            return np.where(g > 0, 1.0 / (4 * np.pi * np.where(g > 0, g, 1.0)), np.inf)


# ---------------------------------------------------------------- units (phonopy's constants)


def _units():
    from phonopy.physical_units import get_physical_units

    u = get_physical_units()
    # |Φ|² (phono3py Interaction) × imaginary self-energy factor, without 1/N
    pp = ((u.Hbar * u.EV) ** 3 / 36 / 8 * u.EV**2 / u.Angstrom**6 / (2 * np.pi * u.THz) ** 3
          / u.AMU**3 / u.EV**2)  # fmt: skip
    ise = 18 * np.pi / (u.Hbar * u.EV) ** 2 / (2 * np.pi * u.THz) ** 2 * u.EV**2
    wmk = (u.THz * u.Angstrom) ** 2 / u.Angstrom**3 * u.EV / u.THz / (2 * np.pi)
    return u, pp * ise, wmk


def mass_variances(symbols) -> np.ndarray:
    """Natural-abundance mass variance g = Σ f_i (1 - m_i/m̄)² per symbol (phonopy's table)."""
    from phonopy.structure.atomic_data import get_atomic_data

    table = get_atomic_data().isotope_data
    out = []
    for s in symbols:
        if s not in table or not table[s]:
            raise InputError(f"isotope: no natural isotope data for element {s!r}")
        m = np.array([x[1] for x in table[s]], float)
        f = np.array([x[2] for x in table[s]], float)
        mbar = m @ f
        out.append(float(f @ (1 - m / mbar) ** 2))
    return np.asarray(out)


# ---------------------------------------------------------------- inputs


def _compact(fc, ph, order: int, name: str) -> np.ndarray:
    """Compact force constants (n_p, N, [N,] 3, ...) from compact or full input."""
    fc = np.asarray(fc, dtype=float)
    N = len(ph.supercell)
    n_p = len(ph.primitive)
    tail = (N,) * (order - 1) + (3,) * order
    if fc.shape == (N,) + tail:
        fc = fc[np.asarray(ph.primitive.p2s_map)]
    elif fc.shape != (n_p,) + tail:
        raise InputError(
            f"{name}: shape {fc.shape} does not match its supercell ({N} atoms, {n_p} in the "
            f"primitive cell): expected {(N,) + tail} or compact {(n_p,) + tail}"
        )
    if not np.all(np.isfinite(fc)):
        raise InputError(f"{name}: contains NaN or infinite values")
    return np.ascontiguousarray(fc)


def _all_shortest(prim, symprec: float) -> np.ndarray:
    """phono3py's all_shortest[i_patom, j, k]: the three atoms have unique shortest vectors."""
    svecs, multi = prim.get_smallest_vectors()
    n_s, n_p, _ = multi.shape
    perms = prim.atomic_permutations
    p2s = prim.p2s_map
    s2pp = [prim.p2p_map[i] for i in prim.s2p_map]
    lattice = prim.cell
    out = np.zeros((n_p, n_s, n_s), dtype=np.uint8)
    for i, j in np.ndindex(n_p, n_s):
        if multi[j, i, 0] > 1:
            continue
        jp = s2pp[j]
        i_perm = np.where(perms[:, j] == p2s[jp])[0][0]
        for k in range(n_s):
            if multi[k, i, 0] > 1:
                continue
            km = perms[i_perm, k]
            if multi[km, jp, 0] > 1:
                continue
            d_jk = np.linalg.norm((svecs[multi[k, i, 1]] - svecs[multi[j, i, 1]]) @ lattice)
            d_m = np.linalg.norm(svecs[multi[km, jp, 1]] @ lattice)
            if abs(d_m - d_jk) < symprec:
                out[i, j, k] = 1
    return out


def _fc3_tables(ph3, fc3c, r0_average: bool, symprec: float) -> dict:
    prim = ph3.primitive
    svecs, multi = prim.get_smallest_vectors()
    n_p = len(prim)
    N = len(ph3.supercell)
    s2p = np.asarray(prim.s2p_map)
    p2s = np.asarray(prim.p2s_map)
    sat_of = np.array([np.flatnonzero(s2p == p2s[p]) for p in range(n_p)], dtype=np.int64)
    f = fc3c.reshape(n_p, N, N, 27)
    if r0_average:
        sh = _all_shortest(prim, symprec)[..., None]
        fc3_1 = np.ascontiguousarray(f * np.where(sh, 3.0, 1.0))
        fc3_23 = np.ascontiguousarray(f * (1 - sh))
    else:
        fc3_1 = np.ascontiguousarray(f)
        fc3_23 = np.zeros((1, 1, 1, 27))
    return {
        "fc3_1": fc3_1, "fc3_23": fc3_23, "sat_of": sat_of,
        "svecs": np.ascontiguousarray(svecs, float), "multi": np.ascontiguousarray(multi, np.int64),
        "pre_vec": np.ascontiguousarray(svecs[multi[p2s, 0, 1]], float),
        "r0_average": bool(r0_average),
    }  # fmt: skip


def _harmonic(ph2, fc2c, qpoints, factor, nac_params=None):
    """Frequencies (n_q, nb) THz and eigenvectors (n_q, nb, nb) at reduced ``qpoints``. With
    ``nac_params`` the dynamical matrices carry phonopy's non-analytical term (Gonze-Lee, as
    phono3py's phonon solver; Γ without a q direction gets none)."""
    prim = ph2.primitive
    svecs, multi = prim.get_smallest_vectors()
    s2p = np.asarray(prim.s2p_map)
    p2s = list(prim.p2s_map)
    s2pi = np.array([p2s.index(s) for s in s2p], dtype=np.int64)
    if nac_params is None:
        dm = kk.dynamical_matrices(np.ascontiguousarray(qpoints), fc2c, np.ascontiguousarray(svecs),
                                   np.ascontiguousarray(multi, np.int64), s2pi,
                                   np.asarray(prim.masses, float))  # fmt: skip
    else:
        dmo = _phonopy_dm(ph2, fc2c, nac_params)
        nb = 3 * len(prim)
        dm = np.empty((len(qpoints), nb, nb), dtype=complex)
        for i, q in enumerate(np.asarray(qpoints, float)):
            dmo.run(q)
            dm[i] = dmo.dynamical_matrix
    w, v = np.linalg.eigh(dm)
    freqs = np.sqrt(np.abs(w)) * np.sign(w) * factor
    dd = {"svecs": np.ascontiguousarray(svecs), "multi": np.ascontiguousarray(multi, np.int64),
          "s2pi": s2pi, "masses": np.asarray(prim.masses, float)}  # fmt: skip
    return np.ascontiguousarray(freqs), np.ascontiguousarray(v), dd


def _phonopy_dm(ph2, fc2c, nac_params=None):
    """phonopy's DynamicalMatrix (with NAC when ``nac_params``) of compact fc2."""
    from phonopy.harmonic.dynamical_matrix import get_dynamical_matrix

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return get_dynamical_matrix(fc2c, ph2.supercell, ph2.primitive, nac_params=nac_params)


def degenerate_ids(freqs, tol=1e-4) -> np.ndarray:
    """First band of each band's degenerate set (n_q, nb) int64, phonopy's rule: ascending
    frequencies, a band joins the previous band's set when they differ by < ``tol`` THz."""
    f = np.asarray(freqs, float)
    out = np.empty(f.shape, dtype=np.int64)
    out[..., 0] = 0
    for b in range(1, f.shape[-1]):
        out[..., b] = np.where(f[..., b] - f[..., b - 1] < tol, out[..., b - 1], b)
    return out


def degenerate_mean(freqs, deg_ids) -> np.ndarray:
    """Frequencies (n_q, nb) with every degenerate set replaced by its mean, so that bands of
    one set are bitwise equal and get identical integration weights (their computed values
    differ by rounding, and the tetrahedron weights are not smooth in f where a vertex of a
    tetrahedron is a symmetry image of the same point)."""
    f = np.asarray(freqs, float)
    out = f.copy()
    nb = f.shape[-1]
    for b0 in range(nb):
        sel = deg_ids == b0  # (n_q, nb): the bands of the set that starts at b0
        n = sel.sum(axis=1)
        multi = n > 1
        if multi.any():
            mean = (f * sel).sum(axis=1)[multi] / n[multi]
            rows = np.flatnonzero(multi)
            out[rows] = np.where(sel[rows], mean[:, None], out[rows])
    return out


def zero_gamma_acoustic(freqs, addresses) -> np.ndarray:
    """Frequencies (n_q, nb) with the three modes of smallest |f| at Γ (grid address 0 0 0)
    set to exactly 0 (phonopy's pick of the acoustic modes). At Γ they are rounding noise of
    either sign; zero makes every later step independent of that noise."""
    out = np.array(freqs, dtype=float, copy=True)
    for gp in np.flatnonzero(~np.any(np.asarray(addresses), axis=1)):
        out[gp, np.sort(np.argsort(np.abs(out[gp]), kind="stable")[:3])] = 0.0
    return out


def _degenerate_sets(f, tol=1e-4):
    """Index sets of degenerate bands of one q-point (the sets of :func:`degenerate_ids`)."""
    ids = degenerate_ids(np.asarray(f, float)[None, :], tol)[0]
    return [np.flatnonzero(ids == b).tolist() for b in np.unique(ids)]


def _average_degenerate(values, f):
    out = np.array(values, dtype=float, copy=True)
    for s in _degenerate_sets(f):
        if len(s) > 1:
            out[..., s] = out[..., s].mean(axis=-1, keepdims=True)
    return out


def _heat_capacity(freqs, temps, u, cutoff):
    """C (nT, n, nb) eV/K; zero for f <= cutoff or T <= 0."""
    f_ev = freqs * u.THzToEv
    out = np.zeros((len(temps),) + freqs.shape)
    for i, T in enumerate(temps):
        if T <= 0:
            continue
        ok = freqs > cutoff
        x = np.where(ok, f_ev / (u.KB * T), 1.0)
        ex = np.exp(-x)  # overflow-safe form of x² eˣ/(eˣ - 1)²
        out[i] = np.where(ok, u.KB * x**2 * ex / (1 - ex) ** 2, 0.0)
    return out


# ---------------------------------------------------------------- driver


def conductivity(unitcell, primitive_matrix, fc2_supercell_matrix, fc2, fc3_supercell_matrix, fc3,
                 settings: KappaSettings = KappaSettings(), progress=None, nac_params=None) -> KappaResult:
    """Lattice thermal conductivity (RTA, + coherence term when ``settings.wigner``).

    ``unitcell``: ase.Atoms (masses used); ``primitive_matrix``, supercell matrices: 3×3 as
    phonopy's; ``fc2`` (N2, N2, 3, 3) or compact (n_p, N2, 3, 3) eV/Å² in the atom order of
    ``make_phonopy(unitcell, S2, P).supercell``; ``fc3`` compact (n_p, N3, N3, 3, 3, 3) or full
    (N3, N3, N3, 3, 3, 3) eV/Å³ in the order of ``make_phonopy(unitcell, S3, P).supercell``.
    ``progress``: optional callable ``(done, total)`` over irreducible q-points.
    ``nac_params``: phonopy's NAC dict (``born`` (n_p, 3, 3), ``dielectric``, ``factor``) to
    apply the non-analytical term to the fc2 phonons as phono3py does (harmonic phonons, group
    velocities, velocity operator); None = no NAC.
    Raises ``InputError`` on shapes that do not match the supercells, non-finite values, a
    mesh that breaks the symmetry, or bad settings.
    """
    from pftlite.phonons.force_constants import make_phonopy

    t_start = time.perf_counter()
    seconds = {}
    s = settings
    temps = np.asarray(s.temperatures, dtype=float).reshape(-1)
    if len(temps) == 0 or np.any(temps < 0) or not np.all(np.isfinite(temps)):
        raise InputError(f"temperatures: must be finite and >= 0 K, got {s.temperatures!r}")
    if s.sigma is not None and not s.sigma > 0:
        raise InputError(f"sigma: must be a positive smearing width (THz), got {s.sigma!r}")
    if s.boundary_mfp is not None and not s.boundary_mfp > 0:
        raise InputError(f"boundary_mfp: must be positive (µm), got {s.boundary_mfp!r}")
    ph2 = make_phonopy(unitcell, fc2_supercell_matrix, primitive_matrix, s.symprec)
    ph3 = make_phonopy(unitcell, fc3_supercell_matrix, primitive_matrix, s.symprec)
    fc2c = _compact(fc2, ph2, 2, "fc2")
    fc3c = _compact(fc3, ph3, 3, "fc3")
    prim = ph2.primitive
    if not np.allclose(ph3.primitive.scaled_positions, prim.scaled_positions, atol=1e-8):
        raise InputError("fc3: the fc2 and fc3 supercells give different primitive cells")
    n_p = len(prim)
    nb = 3 * n_p
    u, unit_gamma, wmk = _units()

    t0 = time.perf_counter()
    bz = make_bz_mesh(prim.cell, ph2.primitive_symmetry.dataset, s.mesh)
    seconds["grid"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    freqs, eigvecs, _ = _harmonic(ph2, fc2c, bz.qpoints, u.DefaultToTHz, nac_params)
    freqs = zero_gamma_acoustic(freqs, bz.addresses)
    deg_ids = degenerate_ids(freqs)
    freqs = degenerate_mean(freqs, deg_ids)
    grid_f = freqs[bz.grg2bzg]
    n_imag = int((grid_f < -s.cutoff_frequency).sum())
    ir = bz.ir_bz
    n_ir = len(ir)
    f_ir = freqs[ir]
    gv = _group_velocities(ph2, fc2c, bz, u.DefaultToTHz, s.cutoff_frequency, nac_params)
    gvgv = _gv_by_gv(gv, bz)
    cv = _heat_capacity(f_ir, temps, u, s.cutoff_frequency)
    seconds["harmonic"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    tabs = _fc3_tables(ph3, fc3c, s.r0_average, s.symprec)
    inv_sqrt_m = 1.0 / np.sqrt(np.asarray(prim.masses, float))
    temps_thz = np.where(temps > 0, u.KB * temps / u.THzToEv, 0.0)
    sigma = -1.0 if s.sigma is None else float(s.sigma)
    gamma = np.zeros((len(temps), n_ir, nb))
    n_trip = np.zeros(n_ir, dtype=np.int64)
    ph_re, ph_im = kk.phase_table(bz.qpoints, tabs["svecs"], tabs["multi"])
    for c0 in range(0, n_ir, Q_CHUNK):  # a few q0 per parallel call
        idx = range(c0, min(n_ir, c0 + Q_CHUNK))
        trips, wts, grp_gp0, grp_of, starts = [], [], [], [], [0]
        for i in idx:
            trip, w = triplets_at_q(bz, int(ir[i]))
            n_trip[i] = len(trip)
            for g00 in np.unique(trip[:, 0]):  # one group per BZ image of q0
                sel = trip[:, 0] == g00
                trips.append(trip[sel])
                wts.append(w[sel])
                grp_gp0.append(ir[i])
                grp_of.append(i)
                starts.append(starts[-1] + int(sel.sum()))
        trips = np.ascontiguousarray(np.concatenate(trips))
        g00s = trips[np.asarray(starts[:-1])]
        g00s = np.ascontiguousarray(g00s[:, 0])
        if tabs["r0_average"]:
            parts = kk.fc3_q0_partials_many(g00s, ph_re, ph_im, tabs["fc3_23"], tabs["sat_of"])
        else:
            parts = (np.zeros((1, 1, 1, 1, 27)),) * 4
        gg = kk.gamma_groups(np.asarray(grp_gp0, np.int64), np.asarray(starts, np.int64), trips,
                             np.concatenate(wts), bz.qpoints, ph_re, ph_im, tabs["pre_vec"], freqs,
                             eigvecs, deg_ids, tabs["fc3_1"], *parts, tabs["sat_of"], inv_sqrt_m,
                             tabs["r0_average"], bz.tetrahedra, bz.addresses, bz.gp_map, bz.D,
                             sigma, temps_thz, float(s.cutoff_frequency),
                             unit_gamma / bz.n_grid, TRIPLET_BLOCK)  # fmt: skip
        for j, i in enumerate(grp_of):
            gamma[:, i] += gg[j]
        for i in idx:
            gamma[:, i] = _average_degenerate(gamma[:, i], f_ir[i])
        if progress is not None:
            progress(idx[-1] + 1, n_ir)
    seconds["gamma_phph"] = time.perf_counter() - t0

    gamma_iso = None
    if s.isotope or s.mass_variances is not None:
        t0 = time.perf_counter()
        if s.mass_variances is not None:
            mv = np.asarray(s.mass_variances, float)
            if mv.shape != (n_p,) or np.any(mv < 0) or not np.all(np.isfinite(mv)):
                raise InputError(f"mass_variances: need {n_p} values >= 0 (one per primitive "
                                 f"atom), got {s.mass_variances!r}")  # fmt: skip
        else:
            mv = mass_variances(prim.symbols)
        gamma_iso = np.array([
            _average_degenerate(
                kk.isotope_gamma(int(gp), bz.grg2bzg, freqs, eigvecs, deg_ids, mv, bz.tetrahedra,
                                 bz.addresses, bz.gp_map, bz.D, sigma, float(s.cutoff_frequency),
                                 bz.n_grid), freqs[gp])
            for gp in ir])  # fmt: skip
        seconds["gamma_isotope"] = time.perf_counter() - t0

    gamma_tot = gamma.copy()
    if gamma_iso is not None:
        gamma_tot += gamma_iso[None]
    if s.boundary_mfp is not None:
        gamma_tot += (np.linalg.norm(gv, axis=-1) * u.Angstrom * 1e6 / (4 * np.pi * s.boundary_mfp))[None]

    conv = wmk / prim.volume
    valid = (f_ir >= s.cutoff_frequency)[None, :, :, None, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        mk = gvgv[None] * cv[..., None, None] / (2 * gamma_tot[..., None, None]) * conv
    mode_kappa_P = np.where(valid, np.nan_to_num(mk), 0.0)
    kappa_P = mode_kappa_P.sum(axis=(1, 2)) / bz.n_grid

    mode_kappa_C = np.zeros_like(mode_kappa_P)
    if s.wigner:
        t0 = time.perf_counter()
        mode_kappa_C = coherence_mode_kappa(ph2, fc2c, bz, gamma_tot, cv, temps, u, conv,
                                            s.cutoff_frequency, nac_params)
        seconds["coherence"] = time.perf_counter() - t0
    kappa_C = mode_kappa_C.sum(axis=(1, 2)) / bz.n_grid
    seconds["total"] = time.perf_counter() - t_start
    return KappaResult(
        temperatures=temps, mesh=bz.mesh, qpoints=bz.qpoints[ir], weights=bz.ir_weights,
        frequencies=f_ir, group_velocities=gv, heat_capacity=cv, gamma=gamma,
        gamma_isotope=gamma_iso, kappa_P=kappa_P, kappa_C=kappa_C, kappa=kappa_P + kappa_C,
        mode_kappa_P=mode_kappa_P, mode_kappa_C=mode_kappa_C, n_triplets=n_trip,
        n_imaginary=n_imag, min_frequency=float(grid_f.min()), settings=s, seconds=seconds,
    )  # fmt: skip


def _group_velocities(ph2, fc2c, bz: BZMesh, factor, cutoff, nac_params=None):
    """Group velocities (n_ir, nb, 3) THz·Å with phonopy's GroupVelocity (analytic dD/dq)."""
    from phonopy.phonon.group_velocity import GroupVelocity

    dm = _phonopy_dm(ph2, fc2c, nac_params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gvo = GroupVelocity(dm, symmetry=ph2.primitive_symmetry, frequency_factor_to_THz=factor,
                            cutoff_frequency=cutoff)  # fmt: skip
        gvo.run(bz.qpoints[bz.ir_bz])
    return np.asarray(gvo.group_velocities, float)


def _gv_by_gv(gv, bz: BZMesh):
    """Σ over the k-star rotations of (R v)(R v)ᵀ / |little group| (n_ir, nb, 3, 3)."""
    n_rot = len(bz.rotations_cartesian)
    out = np.zeros(gv.shape + (3,))
    for i in range(len(gv)):
        rv = np.einsum("rab,nb->rna", bz.rotations_cartesian, gv[i])
        out[i] = np.einsum("rna,rnb->nab", rv, rv) / (n_rot // bz.ir_weights[i])
    return out


def velocity_operator(dm, ddm, q, factor, cutoff, direction=(1.0, 2.0, 3.0)):
    """Velocity operator V^α_ss' (3, nb, nb) THz·Å at reduced ``q`` (phono3py's convention).

    V^α = ẽ† (∂D/∂q_α) ẽ · factor² with ẽ_s = e_s / √(2 f_s) (0 for f_s <= cutoff),
    hermitianized; degenerate sets (|Δf| < 1e-4 THz) rotated to diagonalize ∂D/∂q along the
    Cartesian ``direction``. Diagonal = group velocities. ``dm``/``ddm``: phonopy's
    DynamicalMatrix and DerivativeOfDynamicalMatrix.
    """
    dm.run(q)
    w, e = np.linalg.eigh(dm.dynamical_matrix)
    f = np.sqrt(np.abs(w)) * np.sign(w) * factor
    ddm.run(q)
    dD = np.asarray(ddm.d_dynamical_matrix)
    d = np.asarray(direction, float) / np.linalg.norm(direction)
    dD0 = np.einsum("a,aij->ij", d, dD)
    rot = np.zeros_like(e)
    for deg in _degenerate_sets(f):
        es = e[:, deg]
        _, v = np.linalg.eigh(es.conj().T @ dD0 @ es)
        rot[:, deg] = es @ v
    scale = np.where(f > cutoff, 1 / np.sqrt(2 * np.where(f > cutoff, f, 1.0)), 0.0)
    rot = rot * scale
    vm = np.einsum("is,aij,jt->ast", rot.conj(), dD, rot)
    return (vm + vm.transpose(0, 2, 1).conj()) / 2 * factor**2, f


def coherence_mode_kappa(ph2, fc2c, bz: BZMesh, gamma_tot, cv, temps, u, conv, cutoff, nac_params=None):
    """Coherence (Wigner, off-diagonal) mode κ_C (nT, n_ir, nb, 3, 3) W/m-K, weights included.

    Simoncelli-Marzari-Mauri "SMM19" form as phono3py 4.10 ``transport_type="SMM19"``
    (κ_inter), for each irreducible q and band pair s ≠ s':

        κ_ss'^ab = C_ss' Re Σ_R (R V)^a_ss' (R V)^b*_ss' / |little group|
                   · (Γ_s + Γ_s') / ((f_s - f_s')² + (Γ_s + Γ_s')²) · conv,
        C_ss' = (f_s + f_s')/4 (C_s/f_s + C_s'/f_s'),

    with V the velocity operator (:func:`velocity_operator`), Γ the total half widths and
    f in THz. Per mode, the pair terms are split as Matbench Discovery / k_SRME do
    (``calc_mode_kappa_tot``): mode_kappa_C[s'] = 2 Σ_(s≠s') κ_ss' C_s / (C_s + C_s'), so the
    per-mode total P + C (and hence the SRME) is the benchmark's; Σ over modes is κ_C either
    way. The s = s' terms are κ_P exactly.
    """
    from phonopy.harmonic.derivative_dynmat import DerivativeOfDynamicalMatrix

    dm = _phonopy_dm(ph2, fc2c, nac_params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ddm = DerivativeOfDynamicalMatrix(dm)
    n_rot = len(bz.rotations_cartesian)
    nT, n_ir, nb = gamma_tot.shape
    out = np.zeros((nT, n_ir, nb, 3, 3))
    off = ~np.eye(nb, dtype=bool)
    for i, gp in enumerate(bz.ir_bz):
        vm, f = velocity_operator(dm, ddm, bz.qpoints[gp], u.DefaultToTHz, cutoff)
        rv = np.einsum("rab,bst->rast", bz.rotations_cartesian, vm)
        vv = np.einsum("rast,rbst->stab", rv, rv.conj()).real / (n_rot // bz.ir_weights[i])
        ok = f > cutoff
        for t in range(nT):
            c_f = np.where(ok, cv[t, i] / np.where(ok, f, 1.0), 0.0)
            cmat = (f[:, None] + f[None, :]) / 4 * (c_f[:, None] + c_f[None, :])
            g = gamma_tot[t, i][:, None] + gamma_tot[t, i][None, :]
            with np.errstate(divide="ignore", invalid="ignore"):
                lor = g / ((f[:, None] - f[None, :]) ** 2 + g**2)
            km = cmat[..., None, None] * vv * lor[..., None, None] * conv
            km = np.where(np.isfinite(km), km, 0.0)
            c = cv[t, i]
            den = c[:, None] + c[None, :]
            share = np.divide(2 * c[:, None], den, out=np.zeros_like(den), where=den > 0)
            out[t, i] = (km * (off * share)[..., None, None]).sum(axis=0)
    return out
