"""Record what the README's commands compute, and compare two recordings number by number.

Used around a refactor that must not change results ("behaviour unchanged"): run it before,
run it after, compare. Each command runs in its own folder under OUT; every number in the JSON
it writes (and in ``pftlite info --json``) is flattened to ``command/file/key.path`` and the
comparison prints the largest relative change per command (0 means bitwise equal). Timing and
provenance fields (seconds, dates, versions, paths, hashes of run folders) are skipped.

    python bench/record_outputs.py OUT              # ~2 min on 2 cores; a finished command is not rerun
    python bench/record_outputs.py --compare BEFORE AFTER
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = {
    "info": ["info", "si-mlearn", "--json"],
    "info-mlp": ["info", "si-mlearn-mlp", "--json"],
    "predict": ["predict", "si-mlearn", "mlearn/Si_test", "-o", "{out}/pred.json"],
    "predict-jax": ["predict", "si-mlearn-mlp", "mlearn/Si_test", "-o", "{out}/pred.json", "--backend", "jax"],
    "phonons": ["phonons", "si-mlearn", "mdr/mp-149", "-o", "{out}/ph"],
    "phonons-mlp-jax": ["phonons", "si-mlearn-mlp", "mdr/mp-149", "-o", "{out}/ph", "--backend", "jax"],
    "phonons-nacl-nac": ["phonons", "{out}/nacl.npz", "phonopy/NaCl", "--nac", "-o", "{out}/ph"],
    "kappa": ["kappa", "si-mlearn", "phono3py/Si-PBEsol", "--mesh", "7", "-o", "{out}/k"],
    "kappa-dft-nacl": ["kappa", "--dft-only", "phono3py/NaCl-222", "--mesh", "7", "-o", "{out}/k"],
    "tune": ["tune", "-o", "{out}/run", "--epochs", "2", "--steps-per-epoch", "3"],
    "tune-jax": ["tune", "si-mlearn-mlp", "-o", "{out}/run", "--epochs", "1", "--steps-per-epoch", "2",
                 "--backend", "jax"],
    "fit": ["fit", "{out}/si.npz", "mlearn/Si_training", "--test", "mlearn/Si_test", "--report", "{out}/fit.json"],
}
SETUP = {"fit": [["init", "{out}/si.npz", "-s", "Si"]],
         "phonons-nacl-nac": [["init", "{out}/nacl.npz", "-s", "Na,Cl", "--r-cut", "5.5", "--n-radial", "4",
                               "--l-max", "2", "--n-radial-4b", "2", "--l-max-4b", "1", "--readout", "mlp"]]}
SKIP_KEYS = ("seconds", "time", "wall", "cpu", "date", "created", "version", "path", "host", "sha",
             "hash", "files_read", "elapsed", "started", "finished", "command", "argv", "run_dir", "timings",
             "key", "fingerprint")


def _run(args, out: Path) -> tuple[int, str]:
    cmd = [sys.executable, "-c", "from pftlite.cli import main; main()", *[a.format(out=out) for a in args]]
    p = subprocess.run(cmd, capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


def record(out: Path, names) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        d = out / name
        done = d / "DONE"
        if done.exists():
            continue
        d.mkdir(exist_ok=True)
        t0 = time.perf_counter()
        for setup in SETUP.get(name, []):
            _run(setup + ["--force"], d)
        rc, text = _run(COMMANDS[name], d)
        (d / "stdout.txt").write_text(text)
        if "--json" in COMMANDS[name]:
            (d / "info.json").write_text(text if rc == 0 else "{}")
        print(f"{name:18s} rc={rc} {time.perf_counter() - t0:6.1f} s", flush=True)
        done.write_text(str(rc))


def _skip(key: str) -> bool:
    k = key.lower()
    return any(s in k for s in SKIP_KEYS)


def flatten(obj, prefix="", out=None) -> dict:
    out = {} if out is None else out
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not _skip(str(k)):
                flatten(v, f"{prefix}/{k}", out)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            flatten(v, f"{prefix}[{i}]", out)
    elif isinstance(obj, bool) or obj is None or isinstance(obj, str):
        out[prefix] = obj
    elif isinstance(obj, (int, float)):
        out[prefix] = float(obj)
    return out


def numbers(d: Path) -> dict:
    out = {}
    for f in sorted(d.rglob("*.json")):
        try:
            flatten(json.loads(f.read_text()), str(f.relative_to(d)), out)
        except (ValueError, UnicodeDecodeError):
            out[str(f.relative_to(d))] = "unreadable"
    return out


def compare(a: Path, b: Path) -> int:
    """Per command: values compared, the largest relative change among values present in both
    recordings (0: bitwise equal), and keys only in one of them (new or dropped outputs)."""
    bad = 0
    print(f"{'command':18s} {'values':>7s} {'max rel change':>15s} {'added':>6s} {'dropped':>8s}  where")
    for name in COMMANDS:
        if not (a / name).exists() or not (b / name).exists():
            print(f"{name:18s} (missing)")
            continue
        x, y = numbers(a / name), numbers(b / name)
        worst, where = 0.0, ""
        for k in sorted(set(x) & set(y)):
            u, v = x[k], y[k]
            if isinstance(u, float) and isinstance(v, float):
                if math.isnan(u) and math.isnan(v):
                    continue
                r = abs(u - v) / max(abs(u), abs(v), 1e-300) if u != v else 0.0
            else:
                r = 0.0 if u == v else math.inf
            if r > worst:
                worst, where = r, k
        added, dropped = sorted(set(y) - set(x)), sorted(set(x) - set(y))
        bad += worst > 0 or bool(dropped)
        note = where or (f"added e.g. {added[0]}" if added else "")
        print(f"{name:18s} {len(set(x) & set(y)):7d} {worst:15.3g} {len(added):6d} {len(dropped):8d}  {note}")
    return 1 if bad else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", type=Path)
    ap.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"))
    ap.add_argument("--only", nargs="*", default=list(COMMANDS))
    a = ap.parse_args()
    if a.compare:
        return compare(*a.compare)
    if a.out is None:
        ap.error("give OUT, or --compare BEFORE AFTER")
    record(a.out, a.only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
