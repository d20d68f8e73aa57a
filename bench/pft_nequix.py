"""Phonon fine-tuning of the foundation model nequix-mp-1 with pftlite (issue 15's demonstration).

Stages (``order`` in :func:`main`); each writes its result under the work folder when it
finishes, and a finished stage is skipped on the next call, so the script can be killed and
run again (a stage killed half-way starts again, or resumes where its command does):

1. ``tune-k4`` / ``tune-k0``: ``pftlite tune nequix-mp-1`` on the training references with the
   published recipe (``data/pft-nequix-recipe.toml``), with K = 4 self-distillation co-training
   (``--distill``: base-model labels on rattled/strained copies of the phonon supercells) and
   without co-training (K = 0). The tune command resumes from its own checkpoint.
2. ``phonons-<model>``: the MDR protocol (``pftlite phonons``: relax, analytic fc, 300 K ω_max,
   S, F, C_V) on the training and held-out references, for base ``nequix-mp-1``, the tuned
   models and the published ``nequix-mp-1-pft``; one JSON per material, so also resumable.
   ``fixed-<model>``: the same at the DFT geometry (``--no-relax``).
3. ``forget-<model>``: energies and forces on the mlearn test sets (Si, Ge, Li, Mo, Cu, Ni):
   force MAE vs DFT and the per-atom energy drift vs the base model.
4. ``kappa-<model>``: ``pftlite kappa MODEL --benchmark`` on a few κ_SRME materials
   (``--kappa-models``).
5. ``tune-wide`` and its evaluations: K = 4 with the distillation over :func:`wide_seeds`
   only (``--no-distill-phonons``): small rattles of the phonon supercells labelled by the base
   model carry the base model's Hessian (F = -H u + O(u^2)), the very quantity the phonon data
   corrects, so K = 4 on them pulls against the phonon term. ``tune-wide2``: the same with the
   mlearn Cu and Ni training structures as seeds instead of perfect fcc cells. ``tune-more``:
   ``tune-wide`` on ``TRAIN_MORE`` (two of the held-out references join the training set), to
   test whether the held-out error is limited by the training data: its own held-out
   materials are ZnO and TiO2-anatase, and the report compares every model on those two.
6. ``report``: markdown tables (``report.md``) and every number (``report.json``).

Wall and CPU time (this process and its children) of each stage that ran to its end go to
``<out>/times.json``; a stage resumed after a kill records only its last part.

Usage::

    python bench/pft_nequix.py -o pft-nequix                 # everything (hours on 2 CPU cores)
    python bench/pft_nequix.py -o pft-nequix --stages tune-k0 phonons-base report
    python bench/pft_nequix.py -o pft-nequix --steps 64 --kappa mp-22922 mp-1000 mp-2172

Training and held-out PBE references are ``TRAIN`` and ``HELDOUT`` below; mp-149 and mp-1000
are also in the published PFT model's training split. phono3py NaCl-222 is the same compound as
the training phonopy NaCl (other DFT settings), so the report averages the held-out errors with
and without it. phonopy TiO2-anatase (PBE, Ti in no training material) is not staged in
../shared/data: it is fetched from phonopy's repository; a phonons folder made before it
joined ``HELDOUT`` gets it (and any other reference it lacks) in ``<folder>/more/``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from pftlite.core.atomic import atomic_path
from pftlite.datasets.registry import DATASETS
from pftlite.phonons.runs import write_json

TRAIN = ["mdr/mp-149", "mdr/mp-1000", "phonopy/NaCl", "phonopy/MgO"]
HELDOUT = ["phonopy/ZnO", "phonopy/MgB2", "phonopy/SiO2-HP", "phonopy/TiO2-anatase",
           "phono3py/NaCl-222"]  # fmt: skip
SAME_AS_TRAIN = {"NaCl-222"}
# tune-more: stishovite (rutile-type SiO2, SiO6 octahedra like TiO2-anatase's TiO6) and MgB2 join
TRAIN_MORE = [*TRAIN, "phonopy/MgB2", "phonopy/SiO2-HP"]
HELD_BY_MORE = [r.split("/")[1] for r in HELDOUT
                if r not in TRAIN_MORE and r.split("/")[1] not in SAME_AS_TRAIN]  # fmt: skip
# references not staged in ../shared/data (the first demonstrations ran without them)
FETCHED = {r.split("/")[1] for r in HELDOUT
           if any(k.startswith(f"{r}/") and not e.staged for k, e in DATASETS.items())}  # fmt: skip
MLEARN = ["Si", "Ge", "Li", "Mo", "Cu", "Ni"]
METRICS = ("omega_max_K", "S", "F", "C_V")
RECIPE = Path(__file__).resolve().parent.parent / "data" / "pft-nequix-recipe.toml"


# Every stage_* function returns True if it ran, False if it found its result already there.


def cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def pftlite(*args, log: Path) -> None:
    """Run one pftlite command; its stdout/stderr are appended to ``log``."""
    cmd = [sys.executable, "-m", "pftlite", *map(str, args)]
    print("$ pftlite " + " ".join(map(str, args)), flush=True)
    with open(log, "a") as fh:
        subprocess.run(cmd, check=True, stdout=fh, stderr=subprocess.STDOUT)


def models(out: Path) -> dict:
    return {"base": "nequix-mp-1", "tuned-k0": out / "tune-k0" / "tuned.nqx",
            "tuned-k4": out / "tune-k4" / "tuned.nqx", "published-pft": "nequix-mp-1-pft",
            "tuned-wide": out / "tune-wide" / "tuned.nqx",
            "tuned-wide2": out / "tune-wide2" / "tuned.nqx",
            "tuned-more": out / "tune-more" / "tuned.nqx"}  # fmt: skip


def train_refs(label: str) -> list[str]:
    """The training references of model (or tune variant) ``label``."""
    return TRAIN_MORE if label in ("tuned-more", "more") else TRAIN


def train_names(label: str) -> list[str]:
    return [r.split("/")[-1] for r in train_refs(label)]


def wide_seeds(out: Path, per_element: int = 8, mlearn_cu_ni: bool = False) -> Path:
    """Seed structures of the ``tune-wide`` distillation:
    ``per_element`` evenly spaced structures of each mlearn training set (Si, Ge, Li, Mo) and fcc
    Cu and Ni 32-atom cells; ``mlearn_cu_ni`` (``tune-wide2``): of the mlearn Cu and Ni training
    sets too (``mlearn/Cu_training-xyz``, 107-108-atom distorted and defective cells, the kind the
    forgetting check tests) instead of the perfect fcc cells. Structures only: no DFT
    label is used. Neither the phonon supercells (their Hessian is what is being corrected) nor
    the held-out references (distilling the base model there would pin the evaluated materials to
    it) are seeds."""
    from ase import Atoms
    from ase.build import bulk
    from ase.io import write

    from pftlite.potentials import load_potential

    path = out / ("wide2-seeds.extxyz" if mlearn_cu_ni else "wide-seeds.extxyz")
    if not path.exists():
        from pftlite.cli.common import read_all

        pot = load_potential("nequix-mp-1")
        cells = []
        sets = [f"mlearn/{el}_training" for el in ("Si", "Ge", "Li", "Mo")]
        if mlearn_cu_ni:
            sets += ["mlearn/Cu_training-xyz", "mlearn/Ni_training-xyz"]
        for name in sets:
            structs = read_all([name], pot)[0]
            cells += [
                structs[i]
                for i in np.linspace(0, len(structs) - 1, per_element).round().astype(int)
            ]
        if not mlearn_cu_ni:
            cells += [
                bulk("Cu", "fcc", a=3.63, cubic=True).repeat(2),
                bulk("Ni", "fcc", a=3.52, cubic=True).repeat(2),
            ]
        cells = [
            Atoms(a.numbers, positions=a.positions, cell=a.cell[:], pbc=True) for a in cells
        ]  # no labels
        with atomic_path(path) as tmp:
            write(tmp, cells, format="extxyz")
    return path


def stage_tune(out: Path, k: int, args, wide: str = "") -> bool:
    """K = k co-training on self-distillation of the phonon supercells; ``wide`` ("wide",
    "wide2" or "more"): of :func:`wide_seeds` instead (mlearn Si/Ge/Li/Mo training structures,
    fcc or mlearn Cu/Ni), 4x the copies — co-training data covering the elements the forgetting
    check tests; "more" trains on ``TRAIN_MORE``."""
    name = f"tune-{wide}" if wide else f"tune-k{k}"
    run = out / name
    if (run / "tuned.nqx").exists() and (run / "log.json").exists():
        return False
    extra = (
        ["--distill", args.distill * (4 if wide else 1), "--upstream-batch", args.upstream_batch]
        if k
        else ["--k-upstream", 0]
    )
    if wide:
        seeds = wide_seeds(out, mlearn_cu_ni=wide == "wide2")
        extra += ["--distill-from", seeds, "--no-distill-phonons"]
    phon = [x for r in train_refs(wide) for x in ("--phonons", r)]
    pftlite("tune", "nequix-mp-1", "--config", RECIPE, *phon, *extra, "--epochs", args.epochs,
            "--steps-per-epoch", args.steps // args.epochs, "--ema-decay", args.ema, "--lr", args.lr,
            "--seed", args.seed, "--no-evaluate", "-o", run, log=out / f"{name}.log")  # fmt: skip
    return True


def stage_phonons(out: Path, label: str, model, relax: bool = True) -> bool:
    """MDR protocol (relax=True) or force constants at the DFT geometry (relax=False: the
    error of the fc alone, without that of the model's equilibrium cell)."""
    name = f"phonons-{label}" if relax else f"fixed-{label}"
    folder = out / name
    flags = [] if relax else ["--no-relax"]
    if not (folder / "summary.json").exists():
        pftlite("phonons", model, *TRAIN, *HELDOUT, *flags, "-o", folder, log=out / f"{name}.log")
        return True
    # a folder from before a reference was added to TRAIN/HELDOUT: the missing ones go to more/
    missing = [r for r in TRAIN + HELDOUT if _phonon_json(folder, r.split("/")[-1]) is None]
    if not missing:
        return False
    pftlite("phonons", model, *missing, *flags, "-o", folder / "more",
            log=out / f"{name}.log")  # fmt: skip
    return True


def _phonon_json(folder: Path, name: str) -> Path | None:
    """The per-material JSON of a phonons folder (or of its more/ part), if there."""
    return next((f for f in (folder / f"{name}.json", folder / "more" / f"{name}.json")
                 if f.exists()), None)  # fmt: skip


def stage_forget(out: Path, label: str, model) -> bool:
    """Per-structure energies (eV/atom) and force MAE on the mlearn test sets -> forget-<label>.json."""
    from pftlite.cli.common import read_labelled
    from pftlite.potentials import load_potential
    from pftlite.structures.batch import make_batch

    path = out / f"forget-{label}.json"
    if path.exists():
        return False
    pot = load_potential(model)
    ev = pot.on("jax")
    res = {}
    for el in MLEARN:
        e_model, e_dft, df = [], [], []
        for a in read_labelled([f"mlearn/{el}_test"], pot, "energy", "forces", "stress"):
            o = ev.energy_forces_stress(make_batch([a], pot))
            e_model.append(float(o["energy"][0]) / len(a))
            e_dft.append(float(a.info["energy"]) / len(a))
            df.append(np.abs(o["forces"] - a.arrays["forces"]).ravel())
        res[el] = {"energy_per_atom": e_model, "energy_dft_per_atom": e_dft,
                   "forces_mae": float(np.concatenate(df).mean()), "n": len(e_model)}  # fmt: skip
        print(
            f"  {label} {el}: {len(e_model)} structures, force MAE {res[el]['forces_mae']:.4f} eV/Å",
            flush=True,
        )
    write_json(path, res)
    return True


def stage_kappa(out: Path, label: str, model, materials) -> bool:
    folder = out / f"kappa-{label}"
    if (folder / "summary.json").exists():
        done = json.loads((folder / "summary.json").read_text())
        if len(done.get("rows", [])) == len(materials):
            return False
    # fc3 from phono3py's displaced pairs (the κ_SRME protocol's own route): ~150 force calls
    # per material; exact third derivatives take a jvp-of-HVP column per Hessian column of one
    # atom per site-symmetry orbit and displacement direction (before that reduction: > 11 min
    # for one zinc-blende material on 2 cores)
    pftlite("kappa", model, "--benchmark", *materials, "--fc3", "displacement", "-o", folder,
            log=out / f"kappa-{label}.log")  # fmt: skip
    return True


def _mae(rows: dict, names) -> dict:
    return {m: float(np.mean([abs(rows[n][m]) for n in names])) for m in METRICS}


def _phonon_tables(out: Path, labels, prefix: str, title: str, lines: list, data: dict) -> None:
    """Per-material errors and per-set MAE (with the change vs the base model) of the
    ``<prefix>-<label>`` phonons folders into ``lines`` (markdown) and ``data[prefix]``."""
    held = [r.split("/")[-1] for r in HELDOUT]
    train = [r.split("/")[-1] for r in TRAIN]
    for label in labels:
        rows = {}
        for name in train + held:
            f = _phonon_json(out / f"{prefix}-{label}", name)
            if f is not None:
                err = json.loads(f.read_text()).get("errors") or {}
                if all(m in err for m in METRICS):
                    rows[name] = {m: err[m] for m in (*METRICS, "fc_rmse", "freq_mae_THz")}
        if rows:
            data[prefix][label] = rows
    if not data[prefix]:
        return
    lines.append(f"## {title}: model − DFT at 300 K (ω_max K, S J/K/mol, F kJ/mol, C_V J/K/mol)\n")
    lines.append(
        "| model | material | set | Δω_max | ΔS | ΔF | ΔC_V | fc RMSE eV/Å² | freq MAE THz |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for label, rows in data[prefix].items():
        for name, r in rows.items():
            kind = (
                "train"
                if name in train_names(label)
                else "held-out (same compound)"
                if name in SAME_AS_TRAIN
                else "held-out"
            )
            cells = " | ".join(f"{r[m]:+.3f}" for m in METRICS)
            lines.append(
                f"| {label} | {name} | {kind} | {cells} | {r['fc_rmse']:.4f} | {r['freq_mae_THz']:.3f} |"
            )
    lines.append(f"\n## {title}: mean absolute errors per set, change vs the base model\n")
    lines.append("| model | set | n | ω_max | S | F | C_V | mean change vs base |")
    lines.append("|---|---|---|---|---|---|---|---|")
    held_sets = {
        "held-out": [n for n in held if n not in SAME_AS_TRAIN | FETCHED],
        "held-out + TiO2-anatase": [n for n in held if n not in SAME_AS_TRAIN],
        "held-out + TiO2-anatase + NaCl-222": held,
        " + ".join(HELD_BY_MORE) + " (held out of tuned-more too)": HELD_BY_MORE,
    }
    base_rows = data[prefix].get("base", {})
    for label, rows in data[prefix].items():
        for sname, names in {"train": train_names(label), **held_sets}.items():
            if sname != "train" and set(names) & set(train_names(label)):
                continue  # a set with this model's training materials is not held out for it
            have = [n for n in names if n in rows and n in base_rows]
            if not have:
                continue
            m, b = _mae(rows, have), _mae(base_rows, have)
            per = {k: 100 * (m[k] / b[k] - 1) for k in METRICS if b[k] > 0}
            change = float(np.mean(list(per.values())))
            data.setdefault(f"{prefix}_mae", {}).setdefault(label, {})[sname] = {
                "n": len(have), **m, "change_pct": change, "change_pct_per_metric": per}  # fmt: skip
            cells = " | ".join(f"{m[k]:.3f} ({per.get(k, 0):+.0f} %)" for k in METRICS)
            lines.append(f"| {label} | {sname} | {len(have)} | {cells} | {change:+.0f} % |")
    lines.append("")


def report(out: Path, labels) -> str:
    """report.md / report.json from whatever stages are finished."""

    lines, data = [], {"phonons": {}, "fixed": {}, "forget": {}, "kappa": {}, "tune": {}}
    titles = {
        "phonons": "MDR protocol (model-relaxed cell)",
        "fixed": "force constants at the DFT geometry (--no-relax)",
    }
    for prefix, title in titles.items():
        _phonon_tables(out, labels, prefix, title, lines, data)
    base_f = out / "forget-base.json"
    if base_f.exists():
        base = json.loads(base_f.read_text())
        lines.append(
            "\n## Forgetting: mlearn test sets (force MAE eV/Å and its change; energy drift vs base, meV/atom)\n"
        )
        lines.append("| model | " + " | ".join(MLEARN) + " |\n|---|" + "---|" * len(MLEARN))
        for label in labels:
            f = out / f"forget-{label}.json"
            if not f.exists():
                continue
            r = json.loads(f.read_text())
            cells, rec = [], {}
            for el in MLEARN:
                fm, fb = r[el]["forces_mae"], base[el]["forces_mae"]
                drift = 1e3 * (
                    np.array(r[el]["energy_per_atom"]) - np.array(base[el]["energy_per_atom"])
                )
                rec[el] = {"forces_mae": fm, "forces_change_pct": 100 * (fm / fb - 1),
                           "drift_mean_meV": float(drift.mean()), "drift_max_abs_meV": float(np.abs(drift).max())}  # fmt: skip
                cells.append(
                    f"{fm:.3f} ({rec[el]['forces_change_pct']:+.1f} %), {rec[el]['drift_mean_meV']:+.1f}"
                )
            data["forget"][label] = rec
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    krows = {}
    for label in labels:
        f = out / f"kappa-{label}" / "summary.json"
        if f.exists():
            s = json.loads(f.read_text())
            krows[label] = s
            data["kappa"][label] = {"mean_srme": s.get("mean_srme"), "rows": s["rows"]}
    if krows:
        lines.append("\n## κ_SRME (300 K) per material: SRME, κ̄ model / DFT W/m-K, time s\n")
        lines.append("| model | material | SRME | κ̄ model | κ̄ DFT | s |\n|---|---|---|---|---|---|")
        for label, sm in krows.items():
            lines.append(
                f"| {label} | mean over {sm['n']} ({sm['n_failed']} failed) | {sm['mean_srme']:.3f} | | | |"
            )
        for label in krows:
            folder = out / f"kappa-{label}"
            for f in sorted(folder.glob("mp-*.json")):
                row = json.loads(f.read_text())
                sc = row["score"]
                pred = (
                    "failed: " + str(sc.get("failure"))
                    if sc.get("kappa_pred") is None
                    else f"{sc['kappa_pred']:.3f}"
                )
                lines.append(f"| {label} | {row['material']} | {sc['srme']:.3f} | {pred} | {sc['kappa_dft']:.3f} | "
                             f"{row['seconds']:.0f} |")  # fmt: skip
    for k in (0, 4):
        f = out / f"tune-k{k}" / "log.json"
        if f.exists():
            log = json.loads(f.read_text())
            data["tune"][f"k{k}"] = {"seconds": log["seconds"], "best_epoch": log["best_epoch"],
                                     "val_log": log["val_log"], "steps_per_epoch": log["steps_per_epoch"]}  # fmt: skip
    times = out / "times.json"
    if times.exists():
        t = json.loads(times.read_text())
        data["times"] = t
        lines.append("\n## Wall and CPU time per stage (s)\n")
        lines.append("| stage | wall | CPU |\n|---|---|---|")
        for k, v in t.items():
            lines.append(f"| {k} | {v['wall']:.0f} | {v['cpu']:.0f} |")
        lines.append(
            f"| total | {sum(v['wall'] for v in t.values()):.0f} | {sum(v['cpu'] for v in t.values()):.0f} |"
        )
    text = "\n".join(lines) + "\n"
    with atomic_path(out / "report.md") as tmp:
        Path(tmp).write_text(text)
    write_json(out / "report.json", data)
    return text


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", default="pft-nequix", help="Work folder.")
    ap.add_argument("--stages", nargs="*", help="Stages to run (default: all, in order).")
    ap.add_argument("--steps", type=int, default=64, help="Phonon steps of each tune run.")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--lr", default="3e-4")
    ap.add_argument(
        "--ema", default="0.99", help="EMA decay (the recipe's 0.999 is for 10^4+ steps)."
    )
    ap.add_argument("--distill", type=int, default=32)
    ap.add_argument(
        "--upstream-batch",
        type=int,
        default=1,
        help="Structures per co-training batch (1: one compiled shape per material).",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--kappa",
        nargs="*",
        default=["mp-22922", "mp-1000", "mp-2172"],
        help="κ_SRME materials (AgCl, BaTe rock salt; AlAs zinc blende).",
    )
    ap.add_argument(
        "--kappa-models",
        nargs="*",
        default=["base", "tuned-k4", "published-pft"],
        choices=list(models(Path())),
    )
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ms = models(out)
    order = ["tune-k4", "phonons-base", "phonons-tuned-k4", "forget-base", "forget-tuned-k4",  # the main result first
             "tune-k0", "phonons-tuned-k0", "forget-tuned-k0", "phonons-published-pft", "forget-published-pft",
             *[f"fixed-{m}" for m in ms if not m.startswith(("tuned-wide", "tuned-more"))],
             "tune-wide", "phonons-tuned-wide", "forget-tuned-wide", "fixed-tuned-wide",
             "tune-wide2", "phonons-tuned-wide2", "forget-tuned-wide2", "fixed-tuned-wide2",
             "tune-more", "phonons-tuned-more", "forget-tuned-more", "fixed-tuned-more",
             *[f"kappa-{m}" for m in args.kappa_models], "report"]  # fmt: skip
    todo = args.stages or order
    unknown = set(todo) - set(order)
    if unknown:
        sys.exit(f"--stages: unknown {', '.join(sorted(unknown))}; choose from {', '.join(order)}")
    times_path = out / "times.json"
    times = json.loads(times_path.read_text()) if times_path.exists() else {}
    for stage in [s for s in order if s in todo]:
        kind, _, label = stage.partition("-")
        if (
            kind in ("phonons", "fixed", "forget", "kappa")
            and isinstance(ms[label], Path)
            and not ms[label].exists()
        ):
            print(f"skip {stage}: {ms[label]} not there yet", flush=True)
            continue
        t0, c0 = time.perf_counter(), cpu_children()
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        print(f"== {stage}", flush=True)
        if kind == "tune":
            wide = label if label.startswith("wide") or label == "more" else ""
            ran = stage_tune(out, 4 if wide else int(label[1:]), args, wide=wide)
        elif kind == "phonons":
            ran = stage_phonons(out, label, ms[label])
        elif kind == "fixed":
            ran = stage_phonons(out, label, ms[label], relax=False)
        elif kind == "forget":
            ran = stage_forget(out, label, ms[label])
        elif kind == "kappa":
            ran = stage_kappa(out, label, ms[label], args.kappa)
        else:
            print(report(out, list(ms)), flush=True)
            continue
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        wall = time.perf_counter() - t0
        cpu = cpu_children() - c0 + (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
        if ran:  # a stage found finished keeps the timing of the run that did it
            key = stage if stage not in times else f"{stage} (added references)"
            times[key] = {
                "wall": wall,
                "cpu": cpu,
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            }
            write_json(times_path, times)
        report(out, list(ms))


if __name__ == "__main__":
    main()
