"""The real ``nequix`` package as an oracle for pftlite's Nequix: golden values and round trips.

Runs where ``nequix`` is installed (test-only: ``pip install --no-deps nequix==0.4.5`` plus
its runtime needs equinox, jraph, matscipy, tqdm — in pftlite's ``test`` extra), in a process
without pftlite's JAX settings (nequix's loader fails with x64; this script never enables it):

    python bench/nequix_oracle.py golden tests/data/nequix_golden.json   # regenerate the golden file
    python bench/nequix_oracle.py evaluate model.nqx                     # E/F/S of the golden structures, JSON

``golden``: energy (eV), forces (eV/Å) and stress (eV/Å³, ASE sign: (1/V) dE/dε, negative
under compression) of five structures — Si diamond, BaTe rock salt, NaCl, wurtzite GaN (all
but BaTe rattled, seeded) and a triclinic Si3C2 cell — for the three published models, computed
by nequix's own ASE calculator (JAX, no custom kernel, float32). ``evaluate``: the same for any
``.nqx`` file (pftlite's round-trip test: a model pftlite wrote loads in nequix and predicts what
pftlite predicts).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

MODELS = ("nequix-mp-1", "nequix-mp-1-pft", "nequix-mp-1-pft-nocotrain")


def structures() -> dict:
    """The five golden structures (ase.Atoms), seeded."""
    from ase import Atoms
    from ase.build import bulk

    out = {}
    a = bulk("Si", "diamond", a=5.43)
    a.rattle(stdev=0.03, seed=0)
    out["Si_diamond_rattled"] = a
    out["BaTe_rocksalt"] = bulk("BaTe", "rocksalt", a=7.0)
    a = bulk("NaCl", "rocksalt", a=5.64)
    a.rattle(stdev=0.03, seed=1)
    out["NaCl_rocksalt_rattled"] = a
    a = bulk("GaN", "wurtzite", a=3.19, c=5.19)
    a.rattle(stdev=0.03, seed=2)
    out["GaN_wurtzite_rattled"] = a
    cell = [[4.60, 0.00, 0.00], [0.85, 4.30, 0.00], [0.55, -0.70, 4.90]]
    frac = [[0.00, 0.00, 0.00], [0.27, 0.31, 0.22], [0.52, 0.08, 0.61], [0.13, 0.66, 0.47], [0.71, 0.57, 0.83]]
    out["Si3C2_triclinic"] = Atoms("Si3C2", scaled_positions=frac, cell=cell, pbc=True)
    return out


def evaluate(model_path, atoms_by_name) -> dict:
    """nequix's E, F, S for each structure with the model in ``model_path``."""
    import jax

    assert not jax.config.jax_enable_x64, "nequix's loader needs x64 off"
    from nequix.calculator import NequixCalculator

    calc = NequixCalculator(model_path=str(model_path), backend="jax", use_kernel=False)
    out = {}
    for name, atoms in atoms_by_name.items():
        a = atoms.copy()
        a.calc = calc
        out[name] = {"energy": float(a.get_potential_energy()), "forces": np.asarray(a.get_forces()).tolist(),
                     "stress_3x3": np.asarray(a.get_stress(voigt=False)).tolist()}  # fmt: skip
    return out


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2 or argv[0] not in ("golden", "evaluate"):
        print(__doc__)
        return 2
    structs = structures()
    if argv[0] == "evaluate":
        print(json.dumps(evaluate(argv[1], structs)))
        return 0
    from importlib.metadata import version

    data_dir = Path(argv[2]) if len(argv) > 2 else Path(__file__).resolve().parents[2] / "shared/data/nequix-models"
    result = {
        "generator": "bench/nequix_oracle.py golden (nequix NequixCalculator, backend jax, use_kernel=False, float32)",
        "versions": {p: version(p) for p in ("nequix", "jax", "equinox", "e3nn-jax", "ase", "matscipy")},
        "units": {"energy": "eV", "forces": "eV/Å", "stress_3x3": "eV/Å³ (ASE sign)"},
        "structures": {n: {"numbers": a.numbers.tolist(), "cell": a.cell[:].tolist(), "positions": a.positions.tolist()}
                       for n, a in structs.items()},  # fmt: skip
        "results": {m: evaluate(data_dir / f"{m}.nqx", structs) for m in MODELS},
    }
    out = Path(argv[1])
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
