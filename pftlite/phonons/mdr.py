"""The MDR phonon benchmark for one material: a model against a DFT phonon calculation.

``evaluate(potential, backend, ref, protocol)`` runs, for one
:class:`~pftlite.datasets.phonopy_refs.PhononReference`:

1. the DFT reference path: fc2 from the file's displacement forces (or stored fc2),
   symmetrized, then :func:`pftlite.phonons.thermo.harmonic_properties`, cross-checked against the
   values the MDR yaml stores (``stored_check``);
2. the model path: relax the unit cell (:mod:`pftlite.phonons.relax`), fc2 in the reference
   supercell with the reference primitive cell (:mod:`pftlite.phonons.force_constants`), the same
   properties;
3. errors model − DFT: ω_max (K), F (kJ/mol), S and C_V (J/K/mol) at every temperature, the
   stability flags, force-constant RMSE (eV/Å²) and commensurate-frequency MAE/RMSE (THz),
   and the fc error by neighbour shell (:mod:`pftlite.phonons.shells`).

Everything returned is JSON-ready; the protocol record states every choice made.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from pftlite.core.units import THZ_TO_K
from pftlite.phonons.force_constants import (
    FC_SETTINGS,
    make_phonopy,
    model_force_constants,
    reference_force_constants,
    supercell_atoms,
)
from pftlite.phonons.relax import RelaxSettings, relax
from pftlite.phonons.thermo import (
    ThermoSettings,
    frequencies_at,
    harmonic_properties,
    thermal_properties,
)

METRICS = ("omega_max_K", "S", "F", "C_V")
METRIC_UNITS = {"omega_max_K": "K", "S": "J/K/mol", "F": "kJ/mol", "C_V": "J/K/mol"}


@dataclass(frozen=True)
class PhononProtocol:
    """Every choice of the benchmark. relax=None evaluates the model at the DFT geometry.
    fc: "analytic" | "displacement"; displacement: Å; symprec: Å (phonopy/spglib).
    nac: apply the non-analytical term correction (phonopy's, with the reference's Born
    charges and dielectric tensor, for DFT and model alike) where the reference has them; off
    in the MDR protocol as published."""

    relax: RelaxSettings | None = field(default_factory=RelaxSettings)
    fc: str = "analytic"
    displacement: float = 0.01
    thermo: ThermoSettings = field(default_factory=ThermoSettings)
    symprec: float = 1e-5
    nac: bool = False

    def to_dict(self) -> dict:
        return {
            "relax": None if self.relax is None else self.relax.to_dict(),
            "fc": self.fc,
            "displacement": self.displacement,
            "fc_settings": dict(FC_SETTINGS, drift_removed=self.fc == "displacement"),
            "thermo": self.thermo.to_dict(),
            "symprec": self.symprec,
            "nac": self.nac,
            "omega_max": "max frequency at the q-points commensurate with the supercell "
            f"(computed in the primitive basis), THz x {THZ_TO_K:.6f} K",
            "units": {"F": "kJ/mol", "S": "J/K/mol", "C_V": "J/K/mol", "per": "mole of primitive cells"},
        }


def _phonopy_for(ref, atoms, symprec):
    return make_phonopy(atoms, ref.supercell_matrix, ref.primitive_matrix, symprec=symprec)


def stored_check(ref, ph, settings: ThermoSettings) -> dict | None:
    """Compare the DFT path with the values the MDR yaml stores (None if it stores none).

    The stored thermal values were made with phonopy's default, which lets the Γ acoustic
    modes that came out positive by rounding into the sums: they hold n ∈ {0..3} extra modes
    at an unknown noise-level frequency. The comparison uses only what does not depend on
    that noise: n from the heat capacity (each such mode adds exactly k_B per Γ weight), then
    C_V and U = F + TS against ours with Γ acoustic modes excluded plus n·k_B and n·k_B T
    (``max_abs_diff_heat_capacity``, ``max_abs_diff_internal_energy``), and the frequency the
    remaining S difference implies for those modes (``gamma_acoustic_noise_THz``: rounding
    noise if far below 1e-3 THz). The stored ``phonon_freq`` were computed by the published
    script at ``get_commensurate_points(S)`` read in the primitive basis, so we recompute at
    those points.
    """
    from phonopy.physical_units import get_physical_units

    from pftlite.phonons.thermo import gamma_acoustic_terms

    st = getattr(ref, "stored", None) or {}
    out = {}
    keys = ("temperatures", "free_e", "entropy", "heat_capacity")
    if all(k in st for k in keys):
        thermal = thermal_properties(ph, replace(settings, gamma_acoustic="exclude"))
        out["gamma_acoustic"] = "exclude, plus n noise-level modes inferred from C_V"
        temps = np.asarray(thermal["temperatures"])
        w = thermal["gamma_weight"]
        rows = []  # (T, dF, dS, dCV) stored - ours
        bad = [f"{k} at {float(t):g} K" for i, t in enumerate(st["temperatures"]) for k in keys[1:]
               if st[k][i] is None or not np.isfinite(st[k][i])]  # fmt: skip
        if bad:
            out["stored_non_finite"] = bad
        for i, t in enumerate(st["temperatures"]):
            hit = np.flatnonzero(np.isclose(temps, float(t)))
            vals = [st[k][i] for k in keys[1:]]
            if len(hit) and float(t) > 0 and all(v is not None and np.isfinite(v) for v in vals):
                j = hit[0]
                rows.append((float(t), vals[0] - thermal["free_energy"][j],
                             vals[1] - thermal["entropy"][j], vals[2] - thermal["heat_capacity"][j]))  # fmt: skip
        if rows and w > 0:
            T, dF, dS, dC = (np.array(c) for c in zip(*rows))
            per = gamma_acoustic_terms(1, w, T)
            n = int(np.clip(np.rint(np.median(dC / per["C_V"])), 0, 3))
            add = gamma_acoustic_terms(n, w, T)
            u = get_physical_units()
            out["n_gamma_acoustic_included"] = n
            out["max_abs_diff_heat_capacity"] = float(np.abs(dC - add["C_V"]).max())
            out["max_abs_diff_internal_energy"] = float(np.abs(dF + T * dS / 1000 - add["U"]).max())
            if n:  # S of a mode with x = hν/kT << 1 is k_B (1 - ln x) per Γ weight
                kb = u.KB * u.EvTokJmol * 1000 * w
                x = np.exp(1.0 - dS / (n * kb))
                out["gamma_acoustic_noise_THz"] = float((x * u.KB * T / u.THzToEv).max())
            else:
                out["max_abs_diff_entropy"] = float(np.abs(dS).max())
        k300 = [i for i, t in enumerate(st["temperatures"]) if np.isclose(float(t), 300.0)]
        if k300:
            k = k300[0]
            out["stored_300K"] = {"F": float(st["free_e"][k]), "S": float(st["entropy"][k]),
                                  "C_V": float(st["heat_capacity"][k])}  # fmt: skip
    if "phonon_freq" in st:
        from phonopy.harmonic.dynmat_to_fc import get_commensurate_points

        stored = np.asarray(st["phonon_freq"], float)
        q_pub = np.asarray(get_commensurate_points(np.asarray(ref.supercell_matrix)), float)
        if len(q_pub) == len(stored):
            ours = frequencies_at(ph, q_pub)
            out["max_abs_diff_phonon_freq_THz"] = float(np.abs(ours - stored).max())
        out["stored_omega_max_K"] = float(stored.max() * THZ_TO_K)
    return out or None


def reference_properties(ref, protocol: PhononProtocol = PhononProtocol()):
    """DFT path. Returns ``(props, fc, ph)``: properties dict (JSON-ready), fc2 (N, N, 3, 3)
    eV/Å² and the phonopy object (for plots)."""
    t0 = time.perf_counter()
    ph = _phonopy_for(ref, ref.unitcell, protocol.symprec)
    fc, how = reference_force_constants(ph, ref.dataset, ref.force_constants)
    t1 = time.perf_counter()
    check = stored_check(ref, ph, protocol.thermo)  # stored values were made without NAC
    nac = apply_nac(ph, ref, protocol)
    props = harmonic_properties(ph, protocol.thermo)
    props["fc_source"] = how
    props["nac_applied"] = nac
    props["stored_check"] = check
    props["timings"] = {"fc2": t1 - t0, "thermo": time.perf_counter() - t1}
    return props, fc, ph


def model_properties(potential, backend, ref, protocol: PhononProtocol = PhononProtocol()):
    """Model path. Returns ``(props, fc, ph)``; ``props["status"]`` is "ok" or "failed"
    (relaxation not converged, or force constants that are all zero: a model that predicts
    nothing), in which case fc and ph are None."""
    props: dict = {"timings": {}}
    atoms = ref.unitcell.copy()
    if protocol.relax is not None:
        atoms, rinfo = relax(potential, backend, atoms, protocol.relax)
        props["relax"] = rinfo
        props["timings"]["relax"] = rinfo["seconds"]
        if not rinfo["converged"]:
            props.update(status="failed", reason=f"relaxation {rinfo['message']}")
            return props, None, None
    props["cell"] = np.asarray(atoms.cell[:]).tolist()
    props["scaled_positions"] = atoms.get_scaled_positions().tolist()
    ph = _phonopy_for(ref, atoms, protocol.symprec)
    fc, finfo = model_force_constants(potential, backend, ph, protocol.fc, protocol.displacement)
    props["fc2"] = finfo
    props["timings"]["fc2"] = finfo["seconds"]
    props["nac_applied"] = apply_nac(ph, ref, protocol)
    if not np.abs(fc).max() > 1e-8:  # eV/Å²: no curvature at all (e.g. an untrained model)
        props.update(status="failed", reason="the model's force constants are all zero "
                     "(untrained or all-zero weights?): no phonons to score")  # fmt: skip
        return props, None, None
    t1 = time.perf_counter()
    props.update(harmonic_properties(ph, protocol.thermo))
    props["timings"]["thermo"] = time.perf_counter() - t1
    props["status"] = "ok"
    return props, fc, ph


def compare(model: dict, dft: dict, fc_model=None, fc_dft=None, supercell=None) -> dict:
    """Errors model − DFT (signed) for every metric and temperature; fc RMSE (eV/Å²) and
    commensurate-frequency errors (THz, bands sorted at each q); with ``supercell`` (the DFT
    supercell, ase.Atoms) also ``fc_shells``, the fc error by neighbour shell
    (:func:`pftlite.phonons.shells.shell_table`)."""
    err = {m: model[m] - dft[m] for m in METRICS if m in model and m in dft}
    for key in ("free_energy", "entropy", "heat_capacity"):
        err[f"{key}_vs_T"] = (np.asarray(model["thermal"][key]) - np.asarray(dft["thermal"][key])).tolist()
    fm = np.sort(np.asarray(model["frequencies"]), axis=1)
    fd = np.sort(np.asarray(dft["frequencies"]), axis=1)
    err["freq_mae_THz"] = float(np.abs(fm - fd).mean())
    err["freq_rmse_THz"] = float(np.sqrt(((fm - fd) ** 2).mean()))
    err["stability_agrees"] = model["stability"]["stable"] == dft["stability"]["stable"]
    if fc_model is not None and fc_dft is not None:
        err["fc_rmse"] = float(np.sqrt(((fc_model - fc_dft) ** 2).mean()))
        err["fc_rms_dft"] = float(np.sqrt((fc_dft**2).mean()))
        if supercell is not None:
            from pftlite.phonons.shells import shell_table

            err["fc_shells"] = shell_table(supercell, fc_model, fc_dft)
    return err


def apply_nac(ph, ref, protocol: PhononProtocol) -> bool:
    """Give ``ph`` (force constants set) the reference's NAC parameters when the protocol asks
    for NAC and the reference has Born charges; returns whether NAC is applied."""
    if protocol.nac and ref.nac_params is not None:
        ph.nac_params = dict(ref.nac_params)
        return True
    return False


def _nac_record(ref, protocol: PhononProtocol) -> dict:
    """NAC as recorded in every result: applied or not, whether and where the reference
    carries Born charges."""
    born = ref.nac_params is not None
    files = [f for f in (getattr(ref, "files", ()) or ()) if Path(f).name.startswith("BORN")]
    return {"applied": bool(protocol.nac and born), "requested": bool(protocol.nac),
            "reference_has_born_charges": born,
            "born_source": (files[0] if files else ref.source) if born else None}  # fmt: skip


def _formula(symbols) -> str:
    """Hill-ordered formula of a list of element symbols (ase's rule)."""
    from ase import Atoms

    return Atoms(symbols=list(symbols)).get_chemical_formula()


def evaluate(potential, backend, ref, protocol: PhononProtocol = PhononProtocol(), keep=False,
             dft=None) -> dict:  # fmt: skip
    """Model vs DFT for one material, JSON-ready (see module doc). With ``keep=True`` the
    phonopy objects are returned under ``"_phonopy"`` (``{"DFT": ph, "model": ph}``).
    ``dft``: the :func:`reference_properties` triple of ``ref`` under ``protocol``, when
    already computed (e.g. to evaluate several models against one reference)."""
    t0 = time.perf_counter()
    dft, fc_d, ph_d = dft if dft is not None else reference_properties(ref, protocol)
    model, fc_m, ph_m = model_properties(potential, backend, ref, protocol)
    result = {
        "name": ref.name,
        "source": ref.source,
        "formula": ref.unitcell.get_chemical_formula(),
        "n_unit": len(ref.unitcell),
        "primitive_formula": _formula(ph_d.primitive.symbols),
        "n_primitive": len(ph_d.primitive),
        "n_supercell": ref.n_supercell,
        "files_read": list(getattr(ref, "files", ()) or ()),
        "nac": _nac_record(ref, protocol),
        "status": model["status"],
        "reason": model.get("reason", ""),
        "protocol": protocol.to_dict(),
        "dft": dft,
        "model": model,
    }
    if model["status"] == "ok":
        result["errors"] = compare(model, dft, fc_m, fc_d, supercell_atoms(ph_d))
    result["seconds"] = time.perf_counter() - t0
    if keep:
        result["_phonopy"] = {"DFT": ph_d, **({"model": ph_m} if ph_m is not None else {})}
    return result


def summarize(results: list[dict]) -> dict:
    """MAE over the materials evaluated successfully, per metric at the report temperature;
    counts of failures and stability disagreements."""
    ok = [r for r in results if r.get("status") == "ok"]
    mae = {m: (float(np.mean([abs(r["errors"][m]) for r in ok])) if ok else None) for m in METRICS}
    return {
        "n_materials": len(results),
        "n_ok": len(ok),
        "n_failed": len(results) - len(ok),
        "failed": [r["name"] for r in results if r.get("status") != "ok"],
        "stability_disagreements": int(sum(not r["errors"]["stability_agrees"] for r in ok)),
        "mae": mae,
        "units": METRIC_UNITS,
    }
