"""Sweep of `pftlite tune` settings on Si (issue 5): a base model (default the built-in si-mlearn;
``--model`` for another, e.g. an MLP readout) tuned on mdr/mp-149,
co-trained on mlearn/Si_training, tested on mlearn/Si_test; one markdown row per run.

Each run: ``pftlite.training.tune.tune`` in-process (data read once), then the MDR protocol on the kept
EMA (model relaxed, analytic fc, Γ acoustic excluded, 300 K) and the mlearn Si *test* E/F MAE.
Columns: Δω_max K, ΔS J/K/mol, ΔF kJ/mol, ΔC_V J/K/mol (model − DFT), fc RMSE eV/Å²,
commensurate-frequency MAE THz, test E meV/atom, test F eV/Å and its change vs the base model,
relaxed volume vs the DFT cell (%), best epoch, wall s (tune only). ``beats`` marks runs under the published nequix-mp-1-pft on all
four metrics with the force change within +5 %. With ``--seeds`` every run is repeated per seed
(sampled columns, batch order and the upstream validation split change) and a summary row gives
the mean ± standard deviation over seeds, the worst |Δ| per metric and how many seeds beat nequix.

Usage::

    python bench/pft_si_sweep.py                      # the preset list (PRESETS)
    python bench/pft_si_sweep.py --runs mae-w1000 mse-w3e4
    python bench/pft_si_sweep.py --set "my: hessian_weight=1000 lr=1e-3 schedule=cosine warmup=0.05"
    python bench/pft_si_sweep.py --json sweep.json     # also write every result
    python bench/pft_si_sweep.py --model si-mlp.npz --runs mae-w1000 mse-w3e4   # an MLP base
    python bench/pft_si_sweep.py --model si-mlearn-mlp --runs mse-w3e4 --seeds 0 1 2 3   # seed spread

Keys of ``--set``: any TuneConfig field (epochs, k_upstream, upstream_batch, steps_per_epoch,
sampler, seed, ema_decay, select_force_budget), optimizer fields (lr, weight_decay, clip_norm,
schedule, warmup, lr_floor), hessian_weight, hessian_kind (mae|mse), upstream_forces / upstream_energy (upstream weights),
phonon_forces / phonon_stress (phonon-structure weights).
Run one sweep at a time (each run uses every core; 40-60 s on 2 cores for si-mlearn, ~170 s for si-mlearn-mlp).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

NEQUIX = {"omega_max_K": 19.3, "S": 0.48, "F": 0.07, "C_V": 0.16}  # published nequix-mp-1-pft, this protocol
BUDGET = 0.05  # test force MAE may grow by at most 5 %

COS = {"lr": 1e-3, "schedule": "cosine", "warmup": 0.05, "lr_floor": 0.03}
PRESETS = {  # the README table (30 epochs; seed 0)
    "mae-w1000": {"epochs": 30, "hessian_weight": 1000},
    "mae-w1000-cos1e-3": {"epochs": 30, "hessian_weight": 1000, **COS},
    "mae-w1000-cos1e-3-K8": {"epochs": 30, "hessian_weight": 1000, "k_upstream": 8, **COS},
    "mse-w1e4": {"epochs": 30, "hessian_kind": "mse", "hessian_weight": 1e4},
    "mse-w3e4": {"epochs": 30, "hessian_kind": "mse", "hessian_weight": 3e4},
    "mse-w3e4-seed1": {"epochs": 30, "hessian_kind": "mse", "hessian_weight": 3e4, "seed": 1},
    "mse-w3e4-E100": {"epochs": 30, "hessian_kind": "mse", "hessian_weight": 3e4, "upstream_energy": 100},
    "mse-w3e4-60ep": {"epochs": 60, "hessian_kind": "mse", "hessian_weight": 3e4},
    "mse-w1e5": {"epochs": 30, "hessian_kind": "mse", "hessian_weight": 1e5},
    "mse-w1e5-K0": {"epochs": 30, "hessian_kind": "mse", "hessian_weight": 1e5, "k_upstream": 0},
    "mse-w1e5-sym": {"epochs": 30, "hessian_kind": "mse", "hessian_weight": 1e5, "sampler": "symmetry"},
    "mse-w3e4-cos1e-3": {"epochs": 30, "hessian_kind": "mse", "hessian_weight": 3e4, **COS},
    "mse-w1e5-cos1e-3": {"epochs": 30, "hessian_kind": "mse", "hessian_weight": 1e5, **COS},
}

OPT_KEYS = ("lr", "weight_decay", "clip_norm", "schedule", "warmup", "lr_floor")


def parse_set(text: str) -> tuple[str, dict]:
    name, _, rest = text.partition(":")
    out = {}
    for tok in rest.split():
        k, v = tok.split("=", 1)
        try:
            out[k] = int(v) if v.lstrip("-").isdigit() else float(v)
        except ValueError:
            out[k] = v
    return name.strip(), out


def make_config(overrides: dict):
    from pftlite.training.tune import TuneConfig

    base = TuneConfig()
    o = dict(overrides)
    opt = dataclasses.replace(base.optimizer, **{k: o.pop(k) for k in OPT_KEYS if k in o})
    ph = dataclasses.replace(base.phonon_loss, hessian=float(o.pop("hessian_weight", base.phonon_loss.hessian)),
                             hessian_kind=o.pop("hessian_kind", base.phonon_loss.hessian_kind),
                             forces=float(o.pop("phonon_forces", base.phonon_loss.forces)),
                             stress=float(o.pop("phonon_stress", base.phonon_loss.stress)))  # fmt: skip
    up = dataclasses.replace(base.upstream_loss, forces=float(o.pop("upstream_forces", base.upstream_loss.forces)),
                             energy=float(o.pop("upstream_energy", base.upstream_loss.energy)))  # fmt: skip
    return dataclasses.replace(base, optimizer=opt, phonon_loss=ph, upstream_loss=up, **o)


def force_change(r: dict, f_base: float) -> float:
    """Test force MAE change vs the base model, %."""
    return 100.0 * (r["test"]["forces"]["mae"] / f_base - 1.0)


def beats_nequix(r: dict, f_base: float) -> bool:
    """Under nequix-mp-1-pft on all four metrics with the force change within the budget."""
    return all(abs(r["errors"][k]) < v for k, v in NEQUIX.items()) and force_change(r, f_base) <= 100 * BUDGET


def fmt_row(name: str, r: dict, f_base: float) -> str:
    e, t = r["errors"], r["test"]
    d = force_change(r, f_base)
    beats = beats_nequix(r, f_base)
    return (f"| {name} | {e['omega_max_K']:+.1f} | {e['S']:+.3f} | {e['F']:+.3f} | {e['C_V']:+.3f} | "
            f"{e['fc_rmse']:.4f} | {e['freq_mae_THz']:.3f} | {1e3 * t['energy']['mae']:.2f} | "
            f"{t['forces']['mae']:.4f} ({d:+.1f} %) | {100 * r['volume_change']:+.2f} | {r.get('best_epoch', '–')} | "
            f"{r.get('seconds', 0):.0f} | {'yes' if beats else ''} |")  # fmt: skip


def fmt_summary(name: str, rs: list[dict], f_base: float) -> str:
    """Mean ± std over seeds of each column, the worst seed's |Δ| in brackets, wins count."""
    keys = ("omega_max_K", "S", "F", "C_V")
    e = {k: np.array([r["errors"][k] for r in rs]) for k in keys}
    d = np.array([force_change(r, f_base) for r in rs])
    wins = sum(beats_nequix(r, f_base) for r in rs)
    cell = {k: f"{e[k].mean():+.{1 if k == 'omega_max_K' else 3}f} ± {e[k].std(ddof=1) if len(rs) > 1 else 0:.{1 if k == 'omega_max_K' else 3}f} "
               f"[{np.abs(e[k]).max():.{1 if k == 'omega_max_K' else 3}f}]" for k in keys}  # fmt: skip
    fc = np.array([r["errors"]["fc_rmse"] for r in rs])
    fq = np.array([r["errors"]["freq_mae_THz"] for r in rs])
    te = np.array([1e3 * r["test"]["energy"]["mae"] for r in rs])
    tf = np.array([r["test"]["forces"]["mae"] for r in rs])
    return (f"| **{name}: {len(rs)} seeds** | {cell['omega_max_K']} | {cell['S']} | {cell['F']} | {cell['C_V']} | "
            f"{fc.mean():.4f} | {fq.mean():.3f} | {te.mean():.2f} | {tf.mean():.4f} ({d.mean():+.1f} %, max {d.max():+.1f}) | "
            f"{100 * np.mean([r['volume_change'] for r in rs]):+.2f} | – | "
            f"{sum(r.get('seconds', 0) for r in rs):.0f} | {wins}/{len(rs)} |")  # fmt: skip


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", nargs="*", help=f"Preset names ({', '.join(PRESETS)}); default all.")
    ap.add_argument("--set", action="append", default=[], metavar="NAME: key=value ...", help="An ad-hoc run.")
    ap.add_argument("--backend", default="numba")
    ap.add_argument("--model", default="si-mlearn", help="Base model: built-in name or file (e.g. an MLP-readout "
                    "si-mlp.npz from `pftlite fit`); the force budget is vs this model's test force MAE.")  # fmt: skip
    ap.add_argument("--json", help="Write every result (config, errors, test, val_log) here.")
    ap.add_argument("--trace", type=int, default=0, metavar="N",
                    help="Also measure the EMA every N epochs (run resumed epoch by epoch from its checkpoint, "
                         "which is bitwise the uninterrupted run); one extra row per measurement.")  # fmt: skip
    ap.add_argument("--shells", action="store_true",
                    help="After each row, the fc error by neighbour shell (pftlite.phonons.shells) of that model.")  # fmt: skip
    ap.add_argument("--seeds", nargs="*", type=int, metavar="SEED",
                    help="Repeat every run with each of these seeds (overrides its seed) and add a "
                         "summary row: mean ± std [worst |Δ|], wins over nequix.")  # fmt: skip
    args = ap.parse_args(argv)
    runs = {k: PRESETS[k] for k in (args.runs if args.runs is not None else ([] if args.set else PRESETS))}
    runs.update(parse_set(s) for s in args.set)
    if args.seeds:
        runs = {f"{name} seed {sd}": {**over, "seed": sd, "_group": name} for name, over in runs.items() for sd in args.seeds}

    from pftlite.cli.common import resolve_model
    from pftlite.datasets.phonopy_refs import load_reference
    from pftlite.datasets.registry import fetch
    from pftlite.phonons.mdr import PhononProtocol, evaluate, reference_properties
    from pftlite.phonons.shells import format_shell_table
    from pftlite.potentials.base import Potential
    from pftlite.potentials.files import load_potential
    from pftlite.potentials.registry import manybody_backend as get_backend
    from pftlite.structures.io import read_mlearn
    from pftlite.training.metrics import errors
    from pftlite.training.tune import phonon_items, tune

    _pot = load_potential(resolve_model(args.model))
    spec, params = _pot.spec, _pot.params
    be = get_backend(args.backend)
    ref = load_reference("mdr/mp-149")
    items = phonon_items([ref])
    up = read_mlearn(fetch("mlearn/Si_training"))
    test = read_mlearn(fetch("mlearn/Si_test"))
    protocol = PhononProtocol()
    dft = reference_properties(ref, protocol)

    def measure(prm) -> dict:
        r = evaluate(Potential(spec, prm), args.backend, ref, protocol, dft=dft)
        return {"errors": r["errors"], "test": errors(Potential(spec, prm), test, be.NAME),
                "volume_change": r["model"]["relax"]["volume_change"]}  # fmt: skip

    base = measure(params)
    f_base = base["test"]["forces"]["mae"]
    print(f"Si mp-149: DFT ω_max {dft[0]['omega_max_K']:.1f} K; base test F MAE {f_base:.4f} eV/Å "
          f"(budget {(1 + BUDGET) * f_base:.4f}); nequix-mp-1-pft |errors| {NEQUIX}\n")  # fmt: skip
    print("| run | Δω_max K | ΔS | ΔF | ΔC_V | fc RMSE | freq MAE | test E meV/at | test F eV/Å (Δ) | dV/V % | best ep | wall s | beats |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    print(fmt_row(f"base {Path(args.model).stem}", base, f_base), flush=True)
    if args.shells:
        print("\n" + format_shell_table(base["errors"]["fc_shells"]) + "\n", flush=True)
    results = {"base": base}
    groups: dict[str, list[dict]] = {}
    for name, over in runs.items():
        over = dict(over)
        group = over.pop("_group", None)
        cfg = make_config(over)
        t0 = time.perf_counter()
        if args.trace:
            with tempfile.TemporaryDirectory() as tmp:
                for ep in range(1, cfg.epochs + 1):
                    state = tune(Potential(spec, params), be.NAME, items, up, cfg, run_dir=tmp, stop_after_epoch=ep)
                    if ep % args.trace == 0:
                        v = state["val_log"][-1]
                        tr = measure({**params, **state["ema"]})
                        tr["best_epoch"] = f"val H {v['phonon_loss']:.4f} F {v['val_forces_mae']:.4f}"
                        print(fmt_row(f"{name} EMA@{ep}", tr, f_base), flush=True)
        else:
            state = tune(Potential(spec, params), be.NAME, items, up, cfg)
        dt = time.perf_counter() - t0
        r = measure(state["best"])
        r.update(config=over, best_epoch=state["best_epoch"], seconds=dt, val_log=[
            {k: v for k, v in row.items() if k != "hessian"} for row in state["val_log"]])  # fmt: skip
        results[name] = r
        print(fmt_row(name, r, f_base), flush=True)
        if args.shells:
            print("\n" + format_shell_table(r["errors"]["fc_shells"]) + "\n", flush=True)
        if group is not None:
            groups.setdefault(group, []).append(r)
            if len(groups[group]) == len(args.seeds):
                print(fmt_summary(group, groups[group], f_base), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=lambda x: np.asarray(x).tolist()))


if __name__ == "__main__":
    sys.exit(main())
