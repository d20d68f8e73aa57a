"""Seconds per material of the MDR phonon protocol, step by step, and analytic vs displacement
force constants (time and difference).

For each reference (MDR yamls, phonopy examples):
- DFT path: load, fc2 from the displacement forces (symmetrized), thermodynamics (mesh 100 Å),
  commensurate frequencies;
- model path: relax, fc2 by exact HVPs ("analytic") and by 0.01 Å displacements, and
  thermodynamics; max |fc_analytic - fc_displacement| and the property differences;
- phonopy itself fed the same model forces, as the reference for speed.

The Si references use the built-in Si model (si-mlearn, relaxed). Other chemistries have no
trained pftlite model yet: a model with the same production-size basis and seeded random
weights (N(0, 0.01) eV) is used, at the DFT geometry (no relaxation) — the timings do not
depend on the weights, but its property differences are not physical and are not reported.

    python bench/bench_phonons.py                 # mdr/mp-149, mdr/mp-1000, phonopy/*
    python bench/bench_phonons.py --refs mdr/mp-149 --repeat 5 --json bench_phonons.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_REFS = ["mdr/mp-149", "mdr/mp-1000", "phonopy/NaCl", "phonopy/MgO", "phonopy/SnO2",
                "phonopy/SiO2-HP", "phonopy/ZnO", "phonopy/MgB2", "phonopy/Cr"]  # fmt: skip


def timed(fn, repeat):
    out, ts = None, []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
    return out, statistics.median(ts)


def model_for(ref, backend_name):
    from pftlite.potentials.files import load_potential
    from pftlite.potentials.manybody.model import ModelSpec, init_params

    species = tuple(sorted({int(z) for z in ref.unitcell.numbers}))
    if species == (14,):
        _pot = load_potential(ROOT / "pftlite/data/si-mlearn.npz")
        return _pot.spec, _pot.params, "si-mlearn", True
    spec = ModelSpec(species=species, r_cut=5.0, n_radial=12, l_max=4, n_radial_4b=4, l_max_4b=3)
    params = init_params(spec, seed=0)
    params["w"] = np.random.default_rng(0).normal(0.0, 0.01, size=params["w"].shape)
    return spec, params, "random (timing only)", False


def bench_one(name, backend, repeat):
    from pftlite.datasets.phonopy_refs import load_reference
    from pftlite.phonons.force_constants import (
        make_phonopy,
        model_force_constants,
        reference_force_constants,
    )
    from pftlite.phonons.relax import RelaxSettings, relax
    from pftlite.phonons.thermo import ThermoSettings, harmonic_properties
    from pftlite.potentials.base import Potential
    from pftlite.testing import phonopy_pipeline

    row = {"reference": name}
    ref, row["load_s"] = timed(lambda: load_reference(name), 1)
    row.update(formula=ref.unitcell.get_chemical_formula(), n_supercell=ref.n_supercell)
    spec, params, row["model"], physical = model_for(ref, backend)
    settings = ThermoSettings()

    def dft():
        ph = make_phonopy(ref.unitcell, ref.supercell_matrix, ref.primitive_matrix)
        reference_force_constants(ph, ref.dataset, ref.force_constants)
        return ph

    ph_dft, row["dft_fc2_s"] = timed(dft, repeat)
    _, row["dft_thermo_s"] = timed(lambda: harmonic_properties(ph_dft, settings), repeat)

    atoms = ref.unitcell
    if physical:
        (atoms, info), row["relax_s"] = timed(lambda: relax(Potential(spec, params), backend, ref.unitcell, RelaxSettings()), 1)
        row["relax_steps"] = info["steps"]
    else:
        row["relax_s"] = None

    def fc(method):
        ph = make_phonopy(atoms, ref.supercell_matrix, ref.primitive_matrix)
        f, info = model_force_constants(Potential(spec, params), backend, ph, method, 0.01)
        return ph, f, info

    fc("analytic")  # compile / cache load outside the timing
    (ph_a, fc_a, info_a), row["fc2_analytic_s"] = timed(lambda: fc("analytic"), repeat)
    (ph_d, fc_d, _), row["fc2_displacement_s"] = timed(lambda: fc("displacement"), repeat)
    row["n_displacements"] = info_a["n_displacements"]
    pa, row["thermo_s"] = timed(lambda: harmonic_properties(ph_a, settings), repeat)
    pdisp = harmonic_properties(ph_d, settings)
    _, row["phonopy_pipeline_s"] = timed(lambda: phonopy_pipeline(Potential(spec, params), atoms, ref.supercell_matrix, ref.primitive_matrix, exclude_gamma_acoustic=False), repeat)
    row["max_abs_dfc"] = float(np.abs(fc_a - fc_d).max())
    row["max_abs_fc"] = float(np.abs(fc_a).max())
    if physical:
        row.update({f"d_{k}": pa[k] - pdisp[k] for k in ("omega_max_K", "S", "F", "C_V")})
    row["pftlite_total_s"] = (row["relax_s"] or 0.0) + row["fc2_analytic_s"] + row["thermo_s"]
    row["pftlite_displacement_total_s"] = (row["relax_s"] or 0.0) + row["fc2_displacement_s"] + row["thermo_s"]
    return row


def fmt(x, spec=".3f"):
    return "-" if x is None else format(x, spec)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--refs", nargs="+", default=DEFAULT_REFS)
    ap.add_argument("--backend", default="numba")
    ap.add_argument("--repeat", type=int, default=3, help="median of this many runs per step")
    ap.add_argument("--json", help="also write the rows as JSON")
    args = ap.parse_args(argv)
    rows = []
    for name in args.refs:
        try:
            rows.append(bench_one(name, args.backend, args.repeat))
        except Exception as exc:  # noqa: BLE001 -- a missing dataset must not stop the others
            print(f"{name}: skipped ({type(exc).__name__}: {exc})", file=sys.stderr)
    print(f"\nPhonon protocol, seconds per material ({args.backend}, median of {args.repeat}; "
          "relax timed once)\n")  # fmt: skip
    hdr = ("| reference | formula | atoms | disp | model | DFT fc2 | DFT thermo | relax | fc2 analytic "
           "| fc2 displ. | thermo | pftlite total | phonopy+ASE same forces | phonopy / pftlite |")  # fmt: skip
    print(hdr)
    print("|" + "---|" * (hdr.count("|") - 1))
    for r in rows:
        print(f"| {r['reference']} | {r['formula']} | {r['n_supercell']} | {r['n_displacements']} | {r['model']} "
              f"| {fmt(r['dft_fc2_s'])} | {fmt(r['dft_thermo_s'])} | {fmt(r['relax_s'])} "
              f"| {fmt(r['fc2_analytic_s'], '.4f')} | {fmt(r['fc2_displacement_s'], '.4f')} | {fmt(r['thermo_s'])} "
              f"| {fmt(r['pftlite_displacement_total_s'] - (r['relax_s'] or 0))} "
              f"| {fmt(r['phonopy_pipeline_s'])} "
              f"| {r['phonopy_pipeline_s'] / (r['fc2_displacement_s'] + r['thermo_s']):.2f} |")  # fmt: skip
    print("\nAnalytic vs displacement force constants (0.01 Å)\n")
    print("| reference | max abs fc eV/Å² | max abs Δfc eV/Å² | Δω_max K | ΔS J/K/mol | ΔF kJ/mol | ΔC_V J/K/mol |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['reference']} | {r['max_abs_fc']:.3f} | {r['max_abs_dfc']:.2e} | "
              + " | ".join(fmt(r.get(f"d_{k}"), ".4f") for k in ("omega_max_K", "S", "F", "C_V")) + " |")  # fmt: skip
    print("\npftlite total = fc2 + thermo (excl. relax); phonopy+ASE = generate displacements, ASE "
          "calculator forces, produce + symmetrize fc, mesh thermal properties (no ω_max).")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
