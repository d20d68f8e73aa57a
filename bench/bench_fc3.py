"""fc3 timings: model fc3 by each method/backend, and the DFT fc3 solve against phono3py.

Model part: the built-in Si model (si-mlearn) in the 2x2x2 conventional supercell (64 atoms) of
the Si-PBEsol DFT unit cell (not relaxed; a = 5.4336 Å). Methods: "exact" (JAX third
derivatives), "hvp-fd" (central differences of analytic HVPs, h = 1e-3 Å) on both backends,
"displacement" (phono3py pair scheme at 0.03 Å, model forces) on both backends. Each row:
model evaluations, seconds (second call, i.e. after JIT/Numba compilation; the first call is
shown too) and max |fc3 - fc3_exact| in eV/Å³ (all symmetrized).

DFT part: Si-PBEsol (111 supercells): pftlite's solve_fc3 + symmetrize_fc3 versus phono3py's
produce_fc3(fc_calculator="traditional") + symmetrize_fc3() (traditional, level 3).

    python bench/bench_fc3.py [--repeat 3] [--backends numba,jax]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _best(fn, repeat):
    first = None
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
        first = times[0] if first is None else first
    return out, first, min(times[1:]) if len(times) > 1 else times[0]


def model_table(backends, repeat):
    from pftlite.datasets.phono3py_refs import load_fc3_reference
    from pftlite.kappa import fc3 as F
    from pftlite.potentials.base import Potential
    from pftlite.potentials.files import load_potential
    from pftlite.potentials.registry import manybody_backend as get_backend

    _pot = load_potential(ROOT / "pftlite/data/si-mlearn.npz")
    spec, params = _pot.spec, _pot.params
    ref3 = load_fc3_reference("phono3py/Si-PBEsol")
    ph3 = F.make_fc3_phonopy(ref3)
    rows = []
    cases = [
        ("exact", "jax"),
        ("hvp-fd", "jax"),
        ("hvp-fd", "numba"),
        ("displacement", "numba"),
        ("displacement", "jax"),
    ]
    results = {}
    for method, name in cases:
        if name not in backends:
            continue
        be = get_backend(name)

        def run(be=be, method=method):
            return F.model_fc3(Potential(spec, params), be.NAME, ph3, method=method)

        (fc3, info), first, best = _best(run, repeat)
        results[(method, name)] = fc3
        rows.append((method, name, info["n_evaluations"], info["evaluation"], first, best))
    ref = results.get(("exact", "jax"), results.get(("hvp-fd", "numba")))
    refname = "exact" if ("exact", "jax") in results else "hvp-fd numba"
    print(
        f"model fc3, si-mlearn, Si 2x2x2 conventional (64 atoms); max|fc3| = {np.abs(ref).max():.4g} eV/Å³"
    )
    print(
        f"{'method':<13}{'backend':<8}{'evals':>7}  {'what':<40}{'first s':>9}{'best s':>9}  max|Δ| vs {refname}"
    )
    for (method, name, n, what, first, best), fc3 in zip(rows, results.values(), strict=True):
        print(
            f"{method:<13}{name:<8}{n:>7}  {what:<40}{first:>9.2f}{best:>9.2f}  {np.abs(fc3 - ref).max():.3e}"
        )
    print()


def dft_table(repeat):
    import phono3py

    from pftlite.datasets.phono3py_refs import load_fc3_reference
    from pftlite.kappa import fc3 as F

    ref3 = load_fc3_reference("phono3py/Si-PBEsol")
    ph3 = F.make_fc3_phonopy(ref3)
    mine, _, t_mine = _best(lambda: F.symmetrize_fc3(F.solve_fc3(ph3, ref3.dataset), ph3), repeat)

    def theirs():
        P = phono3py.Phono3py(ph3.unitcell, supercell_matrix=ref3.supercell_matrix,
                              primitive_matrix=ref3.primitive_matrix, log_level=0)  # fmt: skip
        P.dataset = ref3.dataset
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            P.produce_fc3(fc_calculator="traditional")
            raw = P.fc3.copy()
            P.symmetrize_fc3()
        return raw, P.fc3

    (raw, sym), _, t_theirs = _best(theirs, repeat)
    raw_mine = F.solve_fc3(ph3, ref3.dataset)
    print("DFT fc3, Si-PBEsol (1 + 110 supercells, 64 atoms), solve + traditional symmetrization")
    print(
        f"pftlite  {t_mine:8.3f} s   phono3py {t_theirs:8.3f} s   ratio pftlite/phono3py {t_mine / t_theirs:5.2f}"
    )
    print(f"max|Δ| unsymmetrized {np.abs(raw_mine - raw).max():.2e}, symmetrized {np.abs(mine - sym).max():.2e} "
          f"eV/Å³ (max|fc3| {np.abs(sym).max():.3g})")  # fmt: skip


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--backends", default="numba,jax")
    args = ap.parse_args()
    model_table(args.backends.split(","), args.repeat)
    dft_table(args.repeat)


if __name__ == "__main__":
    main()
