"""Wall time of ``pftlite.kappa.conductivity.conductivity`` vs phono3py 4.10 (default Rust backend) on the
same fc2/fc3, mesh and number of threads; κ from both.

fc2/fc3 come from ``phono3py.load()`` of the staged examples (Si-PBEsol, NaCl-222 without
NAC). phono3py is timed as ``init_phph_interaction() + run_thermal_conductivity()`` (RTA,
tetrahedron method, 300 K). pftlite's first call in a fresh process includes loading the
Numba cache (or compiling on the very first run); "warm" is the best of ``--repeat`` calls.
Threads are pinned before any import (NUMBA_NUM_THREADS, RAYON_NUM_THREADS, OMP/BLAS).

    python bench/bench_kappa.py                        # si 11,19; nacl 11; 2 threads
    python bench/bench_kappa.py --cases si:9 --threads 1 --json bench_kappa.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings


def _args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", nargs="*", default=["si:11", "si:19", "nacl:11"],
                    help="material:mesh, material in {si, nacl}")  # fmt: skip
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--wigner", action="store_true", help="add the coherence term (pftlite)")
    ap.add_argument("--json", default=None)
    return ap.parse_args()


def _load(material):
    import phono3py

    from pftlite.datasets import registry as datasets

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if material == "si":
            d = datasets.local_path("phono3py/Si-PBEsol/phono3py_disp.yaml")
            f = datasets.local_path("phono3py/Si-PBEsol/FORCES_FC3")
            return phono3py.load(d, forces_fc3_filename=f, is_compact_fc=True, produce_fc=True,
                                 log_level=0)  # fmt: skip
        if material == "nacl":
            d = datasets.local_path("phono3py/NaCl-222/phono3py_params_NaCl222.yaml.xz")
            return phono3py.load(d, is_compact_fc=True, produce_fc=True, is_nac=False,
                                 log_level=0)  # fmt: skip
    raise SystemExit(f"unknown material {material!r}")


def main():
    a = _args()
    for var in ("NUMBA_NUM_THREADS", "RAYON_NUM_THREADS", "OMP_NUM_THREADS",
                "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # fmt: skip
        os.environ[var] = str(a.threads)
    import numpy as np
    from ase import Atoms

    from pftlite.kappa.conductivity import KappaSettings, conductivity

    rows = []
    for case in a.cases:
        material, m = case.split(":")
        mesh = (int(m),) * 3
        ph3 = _load(material)
        u = ph3.unitcell
        atoms = Atoms(symbols=u.symbols, cell=u.cell, scaled_positions=u.scaled_positions,
                      masses=u.masses, pbc=True)  # fmt: skip
        S2 = ph3.supercell_matrix if ph3.phonon_supercell_matrix is None else ph3.phonon_supercell_matrix
        args = (atoms, ph3.primitive_matrix, S2, ph3.fc2, ph3.supercell_matrix, ph3.fc3,
                KappaSettings(mesh=mesh, wigner=a.wigner))  # fmt: skip
        t0 = time.perf_counter()
        r = conductivity(*args)
        first = time.perf_counter() - t0
        warm = []
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            r = conductivity(*args)
            warm.append(time.perf_counter() - t0)
        ph3.mesh_numbers = list(mesh)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ph3.init_phph_interaction()
            ph3.run_thermal_conductivity(temperatures=[300.0])
        t_p3 = time.perf_counter() - t0
        k_p3 = float(np.asarray(ph3.thermal_conductivity.kappa)[0, 0, 0])
        row = {
            "case": f"{material} {m}^3", "n_ir": len(r.weights),
            "n_triplets": int(r.n_triplets.sum()), "pftlite_first_s": first,
            "pftlite_warm_s": min(warm), "phono3py_s": t_p3,
            "ratio_phono3py_over_pftlite": t_p3 / min(warm),
            "kappa_xx_pftlite": float(r.kappa[0, 0, 0]), "kappa_xx_phono3py": k_p3,
            "kappa_rel_diff": float(r.kappa[0, 0, 0] / k_p3 - 1), "stages_s": r.seconds,
        }  # fmt: skip
        if a.wigner:
            row["kappa_C_xx_pftlite"] = float(r.kappa_C[0, 0, 0])
        rows.append(row)
        print(f"{row['case']:>10}  ir {row['n_ir']:4d}  triplets {row['n_triplets']:7d}  "
              f"pftlite first {first:7.2f} s  warm {min(warm):7.2f} s  phono3py {t_p3:7.2f} s  "
              f"speed-up x{row['ratio_phono3py_over_pftlite']:.2f}  "
              f"kappa_xx {row['kappa_xx_pftlite']:.3f} / {k_p3:.3f} W/m-K "
              f"({row['kappa_rel_diff']:+.1e})", flush=True)  # fmt: skip
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"threads": a.threads, "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
