"""Time per training step: EFS-only, PFT (one Hessian column per structure) and full-Hessian
supervision, at 64, 216, 512 atoms, both backends, with a built-in Si model (``--model``; default
si-mlearn, 706 features, linear readout; si-mlearn-mlp: MLP readout, 6.5 Å cutoff).

A "step" is one ``loss_and_grad`` call (loss + gradient w.r.t. every trainable parameter) on
one rattled Si diamond supercell; the optimizer update itself is negligible (~0.1 ms).
Full-Hessian supervision needs the gradient of the loss over all 3N columns: it is timed as
3N single-column gradients (exactly what it costs without storing the Hessian), measured on
``--full-columns`` columns and scaled to 3N (the per-column cost is constant).

    python bench/bench_tune.py                    # numba + jax, 64/216/512 atoms
    python bench/bench_tune.py --backends numba --sizes 64 216
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def worker(backend: str, sizes: list[int], repeat: int, full_columns: int, model: str = "si-mlearn") -> list[dict]:
    sys.path.insert(0, str(ROOT))
    import numpy as np
    from ase.build import bulk

    from pftlite.cli.common import resolve_model
    from pftlite.potentials.files import load_potential
    from pftlite.potentials.loss import LossSpec, Targets
    from pftlite.potentials.registry import manybody_backend as get_backend
    from pftlite.structures.batch import make_batch

    be = get_backend(backend)
    _pot = load_potential(resolve_model(model))
    spec, params = _pot.spec, _pot.params
    reps = {64: 2, 216: 3, 512: 4}
    rows = []
    for n in sizes:
        a = bulk("Si", "diamond", 5.43, cubic=True) * reps[n]
        a.positions += np.random.default_rng(0).normal(0, 0.01, a.positions.shape)
        batch = make_batch([a], spec)
        N = len(a)

        def targets(col, N=N):
            return Targets(energy=np.array([-5.4 * N]), forces=np.zeros((N, 3)), stress=np.zeros((1, 3, 3)),
                           columns=np.array([col]), hessian_columns=np.zeros((N, 3)))  # fmt: skip

        efs = LossSpec(energy=500, forces=200, stress=50)
        pft = LossSpec(energy=0, forces=20, stress=5, hessian=100)
        hess_only = LossSpec(energy=0, forces=0, stress=0, hessian=100)

        def t(lspec, col, batch=batch):
            be.loss_and_grad(spec, params, batch, targets(col), lspec)  # warm / compile
            ts = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                be.loss_and_grad(spec, params, batch, targets(col), lspec)
                ts.append(time.perf_counter() - t0)
            return statistics.median(ts)

        t_efs = t(efs, -1)
        t_pft = t(pft, 7)
        cols = list(range(min(full_columns, 3 * N)))
        t_col = t(hess_only, cols[0])
        t0 = time.perf_counter()
        for c in cols:
            be.loss_and_grad(spec, params, batch, targets(c), hess_only)
        per_col = (time.perf_counter() - t0) / len(cols)
        t_full = per_col * 3 * N + t_efs
        rows.append({"backend": backend, "atoms": N, "efs_ms": 1e3 * t_efs, "pft_ms": 1e3 * t_pft,
                     "column_ms": 1e3 * t_col, "full_hessian_s": t_full, "full_columns_timed": len(cols),
                     "pft_over_efs": t_pft / t_efs, "full_over_pft": t_full / t_pft,
                     "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})  # fmt: skip
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", nargs="+", default=["numba", "jax"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[64, 216, 512])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--full-columns", type=int, default=48, help="columns timed for the full-Hessian estimate")
    ap.add_argument("--model", default="si-mlearn", help="built-in model name or .npz file (e.g. si-mlearn-mlp)")
    ap.add_argument("--json")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.sizes, args.repeat, args.full_columns, args.model)))
        return
    rows = []
    for b in args.backends:  # one process per backend: separate memory peaks, no thread clashes
        cmd = [sys.executable, __file__, "--worker", b, "--sizes", *map(str, args.sizes),
               "--repeat", str(args.repeat), "--full-columns", str(args.full_columns), "--model", args.model]  # fmt: skip
        out = subprocess.run(cmd, check=False, capture_output=True, text=True)
        if out.returncode:
            print(f"{b}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
            continue
        rows += json.loads(out.stdout.strip().splitlines()[-1])
    print(f"\nTraining step = loss + gradient on one supercell, model {args.model} (median wall time, this machine)\n")
    print("| backend | atoms | EFS step ms | PFT step ms (1 column) | PFT / EFS | full-Hessian step s | full / PFT | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['backend']} | {r['atoms']} | {r['efs_ms']:.1f} | {r['pft_ms']:.1f} | {r['pft_over_efs']:.2f} "
              f"| {r['full_hessian_s']:.2f} | {r['full_over_pft']:.0f}x | {r['peak_rss_mb']:.0f} |")  # fmt: skip
    for b in args.backends:
        rs = [r for r in rows if r["backend"] == b]
        if len(rs) > 1:
            g = ", ".join(f"{r['pft_ms'] / r['atoms'] / (rs[0]['pft_ms'] / rs[0]['atoms']):.2f}" for r in rs)
            print(f"{b}: PFT step time per atom relative to {rs[0]['atoms']} atoms: {g}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
