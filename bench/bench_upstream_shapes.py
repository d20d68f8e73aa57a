"""Compile cost of mixed-size co-training data on the Nequix JAX backend: a size bucket per
batch (``--upstream-shapes 0``) against at most K planned shapes (pftlite.structures.padding).

Takes ``--per-element`` evenly spaced structures of each mlearn training set (Si, Ge, Li, Mo;
20–96 atoms, the kind of data ``pftlite tune --distill-from`` co-trains on), and for each
variant makes one co-training update's ``loss_and_grad`` (E/F/S Huber loss, upstream batch 1)
per structure, in a fresh JAX process without the persistent compilation cache, so every
new shape is a real compile. Prints one table: shapes used, first pass (compiles
included), a second pass (compiled: the steady-state step), padded edges per real edge, the
memory mappings the process holds at the end (XLA maps compiled code in many sections;
pftlite drops JAX's executables near vm.max_map_count) and the ratios planned / bucketed
measured in the same run.

Usage::

    python bench/bench_upstream_shapes.py                   # 8 per element, K = 4 (~15 min on 2 cores)
    python bench/bench_upstream_shapes.py --per-element 4 --shapes 2 4 --json shapes.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

WORKER = r"""
import json, sys, time
import numpy as np
from pftlite.cli.common import read_all
from pftlite.potentials import load_potential
from pftlite.potentials.jax_autodiff import bucket
from pftlite.potentials.loss import LossSpec
from pftlite.structures.batch import make_batch
from pftlite.structures.padding import batch_need, plan_shapes, with_shape
from pftlite.training.tune import upstream_targets
from pftlite.core import memory

per, k = int(sys.argv[1]), int(sys.argv[2])
pot = load_potential("nequix-mp-1")
ev = pot.on("jax")
structs = []
for el in ("Si", "Ge", "Li", "Mo"):
    s = read_all([f"mlearn/{el}_training"], pot)[0]
    structs += [s[i] for i in np.linspace(0, len(s) - 1, per).round().astype(int)]
for a in structs:  # labels: E/F/S as read
    a.info.setdefault("stress", np.zeros(6))
batches = [make_batch([a], pot) for a in structs]
shapes = plan_shapes([batch_need(b) for b in batches], k) if k else None
batches = [with_shape(b, shapes) for b in batches]
used = [b.pad_to or (bucket(b.n_atoms + 1, 16), bucket(b.n_edges, 512)) for b in batches]
spec = LossSpec(energy=500.0, forces=200.0, stress=50.0, kind="huber", delta=0.1)
times = []
for rep in range(2):
    t0 = time.perf_counter()
    for a, b in zip(structs, batches):
        loss, grads, _ = ev.loss_and_grad(b, upstream_targets([a], b), spec)
        float(loss)
    times.append(time.perf_counter() - t0)
real = sum(b.n_edges for b in batches)
print(json.dumps({"k": k, "n": len(structs), "shapes": sorted(set(map(tuple, used))), "first_s": times[0],
                  "maps": memory.map_count(), "max_map_count": memory.max_map_count(), "cache_clears": memory._cleared.get("n", 0),
                  "second_s": times[1], "padded_edges_per_edge": sum(e for _, e in used) / real,
                  "atoms": sorted({len(a) for a in structs})}))
"""


def run_variant(per: int, k: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env["PFTLITE_JAX_CACHE"] = "0"  # no persistent cache: every shape a process meets is compiled
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", WORKER, str(per), str(k)], env=env, check=True,
                         capture_output=True, text=True)  # fmt: skip
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["process_s"] = time.perf_counter() - t0
    return res


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-element", type=int, default=8)
    ap.add_argument("--shapes", type=int, nargs="*", default=[4], help="planned shape counts K to compare with buckets")
    ap.add_argument("--json", help="write every number here")
    args = ap.parse_args(argv)
    rows = []
    for k in [0, *args.shapes]:
        print(f"variant {'buckets' if k == 0 else f'K = {k}'} ...", file=sys.stderr, flush=True)
        rows.append(run_variant(args.per_element, k))
    base = rows[0]
    print(f"\n{base['n']} mlearn structures ({min(base['atoms'])}-{max(base['atoms'])} atoms), one upstream "
          "loss_and_grad each, nequix-mp-1 float32, no persistent compile cache (every shape compiles)\n")  # fmt: skip
    print("| padding | shapes | first pass s (compiles) | second pass s | padded edges / edge | first / buckets | "
          "second / buckets | memory mappings held (cache clears) |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        name = "bucket per batch" if r["k"] == 0 else f"planned, K = {r['k']}"
        print(f"| {name} | {len(r['shapes'])} | {r['first_s']:.1f} | {r['second_s']:.1f} | "
              f"{r['padded_edges_per_edge']:.3f} | {r['first_s'] / base['first_s']:.2f} | "
              f"{r['second_s'] / base['second_s']:.2f} | {r['maps']} of {r['max_map_count']} ({r['cache_clears']}) |")  # fmt: skip
    if args.json:
        from pftlite.phonons.runs import write_json

        write_json(args.json, {"rows": rows})


if __name__ == "__main__":
    main()
