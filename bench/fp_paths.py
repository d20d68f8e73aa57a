"""Run the test suite under several floating-point paths and compare every recorded quantity.

Each path is a set of environment variables that changes the rounding without changing the
maths: the OpenBLAS kernel (``OPENBLAS_CORETYPE``: Haswell, Sandybridge, Prescott, ... — what
another CPU would pick) and the thread count of the Numba kernels (``NUMBA_NUM_THREADS``, which
changes the order of parallel sums). Tests log their physics outputs through the ``record``
fixture (``tests/conftest.py``) into ``$PFTLITE_RECORD``; this script runs pytest once per
path (resumable: a finished path is not rerun) and prints, per recorded quantity, the largest
change between paths (relative to the quantity's largest magnitude).

    python bench/fp_paths.py                         # whole suite, two paths (~25 min, 2 cores)
    python bench/fp_paths.py --paths haswell-2 sandybridge-1 prescott-2 -- tests/test_kappa.py
    python bench/fp_paths.py --out fp-paths --report  # table only, from finished runs
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

PATHS = {
    "haswell-2": {"OPENBLAS_CORETYPE": "Haswell", "NUMBA_NUM_THREADS": "2"},
    "sandybridge-1": {"OPENBLAS_CORETYPE": "Sandybridge", "NUMBA_NUM_THREADS": "1"},
    "prescott-2": {"OPENBLAS_CORETYPE": "Prescott", "NUMBA_NUM_THREADS": "2"},
    "haswell-1": {"OPENBLAS_CORETYPE": "Haswell", "NUMBA_NUM_THREADS": "1"},
}


def run_path(name: str, out: Path, pytest_args: list[str]) -> dict:
    rec = out / f"{name}.jsonl"
    done = out / f"{name}.done.json"
    if done.exists():
        return json.loads(done.read_text())
    rec.unlink(missing_ok=True)
    env = {**os.environ, **PATHS[name], "PFTLITE_RECORD": str(rec.resolve())}
    t0 = time.perf_counter()
    print(f"[{name}] pytest {' '.join(pytest_args)}  ({PATHS[name]})", flush=True)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *pytest_args],
                          env=env, capture_output=True, text=True)  # fmt: skip
    summary = (proc.stdout.strip().splitlines() or [""])[-1]
    info = {"path": name, "env": PATHS[name], "returncode": proc.returncode, "summary": summary,
            "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
    print(f"[{name}] {summary} ({info['seconds']} s)", flush=True)
    tmp = done.with_suffix(".tmp")
    tmp.write_text(json.dumps(info))
    tmp.replace(done)
    return info


def load(rec: Path) -> dict:
    out = {}
    for line in rec.read_text().splitlines():
        r = json.loads(line)
        out[(r["test"], r["name"])] = r["value"]
    return out


def report(out: Path, names: list[str]) -> list[dict]:
    runs = {n: load(out / f"{n}.jsonl") for n in names if (out / f"{n}.jsonl").exists()}
    if len(runs) < 2:
        print("need at least two finished paths")
        return []
    keys = sorted(set.intersection(*(set(r) for r in runs.values())))
    rows = []
    for key in keys:
        vals = [runs[n][key] for n in runs]
        if len({len(v) for v in vals}) != 1:
            rows.append({"test": key[0], "name": key[1], "rel": float("inf"), "abs": float("inf")})
            continue
        scale = max(max((abs(x) for x in v), default=0.0) for v in vals) or 1.0
        d = max(abs(a - b) for v in vals[1:] for a, b in zip(vals[0], v)) if vals[0] else 0.0
        rows.append({"test": key[0], "name": key[1], "abs": d, "rel": d / scale, "n": len(vals[0])})
    print(f"\n{len(rows)} recorded quantities, paths: {', '.join(runs)}")
    print(f"{'test':<78} {'quantity':<26} {'n':>5} {'max |Δ|':>10} {'rel':>9}")
    for r in sorted(rows, key=lambda r: -r["rel"]):
        print(f"{r['test'][:78]:<78} {r['name'][:26]:<26} {r.get('n', 0):>5} {r['abs']:>10.2e} {r['rel']:>9.2e}")
    (out / "report.json").write_text(json.dumps({"paths": list(runs), "rows": rows}, indent=1))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", nargs="+", default=["haswell-2", "sandybridge-1"], choices=sorted(PATHS))
    ap.add_argument("--out", default="fp-paths", help="folder for the records (resumable)")
    ap.add_argument("--report", action="store_true", help="only print the table of finished runs")
    ap.add_argument("pytest_args", nargs="*", help="after --: arguments for pytest (default: whole suite)")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if not a.report:
        for name in a.paths:
            run_path(name, out, a.pytest_args or ["tests"])
    report(out, a.paths)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
