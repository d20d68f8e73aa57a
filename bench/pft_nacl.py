"""Phonon fine-tuning of a second chemistry, end to end: NaCl from the phono3py example data.

Reproduces the whole procedure with the command-line tools and prints the before/after table:

1. ``pftlite init``: a Na-Cl model (814 features, linear readout, r_cut 5.5 Å);
2. ``pftlite fit``: forces-only least squares on the DFT displaced supercells of
   ``phono3py/NaCl-222`` (2 single + 144 pair displacements of 0.03 Å, 64 atoms, no energies),
   20 % of the supercells held out (seeded), plus zero-force/zero-stress labels at the DFT cell
   (``--equilibrium``), feature normalisation from rattled/strained copies (``--norm-rattle``);
3. ``pftlite tune``: PFT on the fc2 of the same file (from its 2 single displacements),
   co-trained on the training supercells (K = 4), and the same with K = 0;
4. each tune run evaluates base and tuned model (MDR protocol: relax, own fc, 300 K ω_max,
   S, F, C_V, fc RMSE, commensurate-frequency MAE) and the held-out force MAE; band plots
   ``bands-NaCl-222.png`` in the run folders.

Usage: ``python bench/pft_nacl.py [-o DIR] [--lr 1e-6] [--epochs 20] [--backend numba]``
(about 5 minutes on 2 cores). NAC (Born charges in the file) is ignored, as in the MDR protocol.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

DATA = "phono3py/NaCl-222"
SPEC = ["-s", "Na,Cl", "--r-cut", "5.5", "--n-radial", "6", "--l-max", "3", "--n-radial-4b", "3", "--l-max-4b", "2"]


def pftlite(*args) -> float:
    """Run one pftlite command (output passed through); returns its wall time in s."""
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "pftlite", *map(str, args)]
    print("$ pftlite " + " ".join(map(str, args)), flush=True)
    subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def row(label: str, r: dict, f_base: float, seconds: float | None) -> str:
    e, f = r["errors"], r["test"]["forces"]["mae"]
    d = 100.0 * (f / f_base - 1.0)
    wall = f"{seconds:.0f}" if seconds is not None else "–"
    return (f"| {label} | {e['omega_max_K']:+.2f} | {e['S']:+.3f} | {e['F']:+.3f} | {e['C_V']:+.3f} | "
            f"{e['fc_rmse']:.5f} | {e['freq_mae_THz']:.4f} | {f:.3g} ({d:+.1f} %) | {wall} |")  # fmt: skip


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", default="pft-nacl", help="Work folder.")
    ap.add_argument("--lr", default="1e-6", help="AdamW step size of the tune runs.")
    ap.add_argument("--epochs", default="20")
    ap.add_argument("--ridge", default="1e-3")
    ap.add_argument("--backend", default="numba")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = out / "nacl.npz"
    common = ["--holdout", "0.2", "--split-seed", "0", "--backend", args.backend]
    pftlite("init", model, *SPEC, "--force")
    t_fit = pftlite("fit", model, DATA, "--equilibrium", DATA, "--ridge", args.ridge, "--norm-rattle", "0.1",
                    "--norm-strain", "0.02", "--report", out / "fit.json", *common)  # fmt: skip
    runs = {}
    for k in (4, 0):
        run = out / f"tune-k{k}"
        t = pftlite("tune", model, "--phonons", DATA, "--upstream", DATA, "-o", run, "--restart", "--k-upstream", k,
                    "--lr", args.lr, "--epochs", args.epochs, *common)  # fmt: skip
        runs[k] = (json.loads((run / "evaluation.json").read_text()), t)
    base = runs[4][0]["base NaCl-222"]
    f_base = base["test"]["forces"]["mae"]
    fit = json.loads((out / "fit.json").read_text())
    print(f"\nNaCl (phono3py/NaCl-222), fit {t_fit:.0f} s: train / test force MAE "
          f"{fit['train']['forces']['mae']:.3g} / {fit['test']['forces']['mae']:.3g} eV/Å (no energies in the data)")  # fmt: skip
    print(f"DFT ω_max {base['dft']['omega_max_K']:.1f} K; errors model − DFT at 300 K; test: 29 held-out supercells\n")
    print("| run | Δω_max K | ΔS J/K/mol | ΔF kJ/mol | ΔC_V J/K/mol | fc RMSE eV/Å² | freq MAE THz | test F MAE eV/Å | wall s |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(row("base (forces-only fit)", base, f_base, None))
    for k, (ev, t) in runs.items():
        print(row(f"tuned K = {k}, lr {args.lr}", ev["tuned NaCl-222"], f_base, t))


if __name__ == "__main__":
    main()
