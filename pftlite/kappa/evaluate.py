"""Lattice thermal conductivity of a model and of DFT data, end to end, and their comparison.

Two paths share one protocol (:class:`KappaProtocol`):

1. the DFT path, for a phono3py displacement dataset with forces
   (:class:`~pftlite.datasets.phono3py_refs.Phono3pyReference`): fc2 (phonopy's solver, symmetrized) and
   fc3 (pftlite's own finite-difference solver, symmetrized) from the file's forces, then
   :func:`pftlite.kappa.conductivity.conductivity`;
2. the model path, for any unit cell with fc2/fc3 supercells: relax (fixed symmetry), fc2 by
   one HVP per irreducible displacement, fc3 by derivatives of HVPs (or displaced forces), the
   same conductivity settings.

Failures are results, not exceptions: a relaxation that does not converge or breaks the
space group, or imaginary modes on the mesh, gives ``status = "failed"`` with the reason, and
the κ_SRME scoring gives such a material SRME = SRE = 2 (as Matbench Discovery does).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from pftlite.phonons.force_constants import make_phonopy, model_force_constants
from pftlite.phonons.relax import RelaxSettings, relax


#: the κ settings of a kappa evaluation when none are given — the same as `pftlite kappa`'s
#: defaults (isotopes and the Wigner coherence term on, 11³ mesh, 300 K). The solver itself,
#: :func:`pftlite.kappa.conductivity.conductivity`, defaults to phono3py's RTA settings instead.
def default_kappa_settings():
    from pftlite.kappa.conductivity import KappaSettings

    return KappaSettings(temperatures=(300.0,), mesh=(11, 11, 11), isotope=True, wigner=True)


@dataclass(frozen=True)
class KappaProtocol:
    """Every choice of a kappa evaluation.

    relax: model relaxation (None: the model at the given geometry); fc3: "exact" (JAX,
    derivative of the HVP), "hvp-fd" (central differences of analytic HVPs, step ``h`` Å),
    "displacement" (pair displacements of ``distance`` Å, forces, the DFT solver) or None
    (exact on jax, hvp-fd on numba); kappa: a :class:`pftlite.kappa.conductivity.KappaSettings`. A material with imaginary modes on the mesh (the benchmark's test,
    :func:`pftlite.kappa.ksrme.has_imaginary_modes`) is marked failed.
    """

    relax: RelaxSettings | None = field(default_factory=RelaxSettings)
    fc3: str | None = None
    distance: float = 0.03
    h: float = 1e-3
    kappa: object = None  # pftlite.kappa.conductivity.KappaSettings; None = default_kappa_settings() (the CLI's)
    symprec: float = 1e-5
    nac: bool = False  # NAC on the fc2 phonons with the reference's Born charges (κ_SRME: off)

    def nac_params(self, ref3):
        """The NAC parameters to use for ``ref3`` (DFT and model alike), or None."""
        return dict(ref3.nac_params) if self.nac and ref3.nac_params is not None else None

    def settings(self):
        return self.kappa if self.kappa is not None else default_kappa_settings()

    def to_dict(self, dft_only: bool = False) -> dict:
        """JSON record; ``dft_only``: without the model-only fields (relaxation, model fc2/fc3
        methods and steps)."""
        s = self.settings()
        if dft_only:
            return {"fc2+fc3": "DFT: the file's displacement forces, pftlite's finite-difference solver",
                    "kappa": s.to_dict(), "symprec": self.symprec, "nac": self.nac}  # fmt: skip
        return {
            "relax": None if self.relax is None else self.relax.to_dict(),
            "fc2": "analytic (one HVP per irreducible displacement, phonopy solver, symmetrized)",
            "fc3": self.fc3,
            "distance": self.distance,
            "h": self.h,
            "kappa": s.to_dict(),
            "symprec": self.symprec,
            "nac": self.nac,
        }


def stability(res) -> dict:
    """The benchmark's imaginary-mode test on the irreducible mesh (Γ acoustic modes may go
    to −0.01 THz, every other mode must be >= 0) and the lowest frequency (THz)."""
    from pftlite.kappa.ksrme import has_imaginary_modes

    return {
        "imaginary_modes": has_imaginary_modes(res.frequencies, res.qpoints),
        "min_frequency_THz": float(np.min(res.frequencies)),
        "n_imaginary_grid": int(res.n_imaginary),
    }


def reference_kappa(ref3, protocol: KappaProtocol = KappaProtocol(), progress=None):
    """DFT path for a :class:`~pftlite.datasets.phono3py_refs.Phono3pyReference`. Returns ``(record, result)``."""
    from pftlite.kappa.conductivity import conductivity
    from pftlite.kappa.fc3 import reference_fc3

    t0 = time.perf_counter()
    fc2, fc3, info = reference_fc3(ref3)
    t1 = time.perf_counter()
    nac = protocol.nac_params(ref3)
    res = conductivity(ref3.unitcell, ref3.primitive_matrix, ref3.phonon_supercell_matrix, fc2,
                       ref3.supercell_matrix, fc3, protocol.settings(), progress=progress,
                       nac_params=nac)  # fmt: skip
    rec = {
        "status": "ok",
        "nac_applied": nac is not None,
        "fc": info,
        "stability": stability(res),
        "timings": {"fc2+fc3": t1 - t0, "kappa": time.perf_counter() - t1},
    }
    return rec, res


def model_kappa(potential, backend, unitcell, primitive_matrix, s2, s3,
                protocol: KappaProtocol = KappaProtocol(), progress=None, nac_params=None):  # fmt: skip
    """Model path: relax, fc2 in ``s2``, fc3 in ``s3``, conductivity (with ``nac_params``,
    the reference's Born charges, when given).

    Returns ``(record, result)``; ``record["status"]`` is "ok" or "failed" (relaxation not
    converged, space group changed, imaginary modes) with ``reason``; ``result`` is the
    KappaResult, or None when it could not be computed.
    """
    from pftlite.kappa.conductivity import conductivity
    from pftlite.kappa.fc3 import model_fc3

    rec: dict = {"timings": {}}
    atoms = unitcell.copy()
    if protocol.relax is not None:
        atoms, rinfo = relax(potential, backend, atoms, protocol.relax)
        rec["relax"] = rinfo
        rec["timings"]["relax"] = rinfo["seconds"]
        if not rinfo["converged"]:
            rec.update(status="failed", reason=f"relaxation {rinfo['message']}")
            return rec, None
        if not rinfo["symmetry_kept"]:
            rec.update(status="failed", reason=f"symmetry broken by relaxation: "
                       f"{rinfo['spacegroup_before']} -> {rinfo['spacegroup_after']}")  # fmt: skip
            return rec, None
    rec["cell"] = np.asarray(atoms.cell[:]).tolist()
    rec["scaled_positions"] = atoms.get_scaled_positions().tolist()
    ph2 = make_phonopy(atoms, s2, primitive_matrix, protocol.symprec)
    fc2, info2 = model_force_constants(potential, backend, ph2, "analytic")
    rec["fc2"] = info2
    rec["timings"]["fc2"] = info2["seconds"]
    ph3 = make_phonopy(atoms, s3, primitive_matrix, protocol.symprec)
    fc3, info3 = model_fc3(potential, backend, ph3, method=protocol.fc3,
                           distance=protocol.distance, h=protocol.h)  # fmt: skip
    rec["fc3"] = info3
    rec["timings"]["fc3"] = info3["seconds"]
    t1 = time.perf_counter()
    res = conductivity(atoms, primitive_matrix, s2, fc2, s3, fc3, protocol.settings(), progress=progress,
                       nac_params=nac_params)  # fmt: skip
    rec["nac_applied"] = nac_params is not None
    rec["timings"]["kappa"] = time.perf_counter() - t1
    rec["stability"] = st = stability(res)
    if st["imaginary_modes"]:
        rec.update(status="failed", reason=f"imaginary modes on the q mesh (lowest "
                   f"{st['min_frequency_THz']:.4f} THz)")  # fmt: skip
        return rec, res
    rec["status"] = "ok"
    return rec, res


def kappa_average(res, t_index: int = 0) -> float:
    """κ̄ = mean of the diagonal of the total κ tensor (W/m-K), the benchmark's scalar."""
    return float(np.trace(np.asarray(res.kappa)[t_index]) / 3.0)


def compare(model_res, dft_res, t_index: int = 0) -> dict:
    """Model vs DFT on the same mesh: κ̄ (P, C, total), SRE, SRD and the mode-resolved SRME."""
    from pftlite.kappa import ksrme

    kd, km = kappa_average(dft_res, t_index), kappa_average(model_res, t_index)
    mode_m = ksrme.mode_kappa_tot_ave(model_res, t_index)
    mode_d = ksrme.mode_kappa_tot_ave(dft_res, t_index)
    mode_m = ksrme.align_modes(model_res.qpoints, mode_m, dft_res.qpoints)
    return {
        "kappa_dft": kd,
        "kappa_model": km,
        "SRE": ksrme.sre(km, kd),
        "SRD": ksrme.srd(km, kd),
        "SRME": ksrme.srme(mode_m, mode_d, np.asarray(dft_res.weights), km, kd),
    }


def evaluate(potential, backend, ref3, protocol: KappaProtocol = KappaProtocol(),
             progress=None, dft=None) -> dict:  # fmt: skip
    """Model vs DFT κ for one phono3py reference; JSON-ready (results under ``_results``)."""
    t0 = time.perf_counter()
    rec_d, res_d = dft if dft is not None else reference_kappa(ref3, protocol, progress)
    rec_m, res_m = model_kappa(potential, backend, ref3.unitcell, ref3.primitive_matrix,
                               ref3.phonon_supercell_matrix, ref3.supercell_matrix, protocol,
                               progress, nac_params=protocol.nac_params(ref3))  # fmt: skip
    out = {
        "name": ref3.name,
        "source": ref3.source,
        "formula": ref3.unitcell.get_chemical_formula(),
        "status": rec_m["status"],
        "reason": rec_m.get("reason", ""),
        "protocol": protocol.to_dict(),
        "dft": rec_d,
        "model": rec_m,
    }
    if rec_m["status"] == "ok":
        out["errors"] = compare(res_m, res_d)
    out["seconds"] = time.perf_counter() - t0
    out["_results"] = {"DFT": res_d, **({"model": res_m} if res_m is not None else {})}
    return out


def with_kappa(protocol: KappaProtocol, **changes) -> KappaProtocol:
    """A protocol with some KappaSettings fields changed."""
    return replace(protocol, kappa=replace(protocol.settings(), **changes))
