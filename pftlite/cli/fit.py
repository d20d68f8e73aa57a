"""``pftlite fit``: base fit of a model to energies, forces and stresses."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from pftlite.cli.common import (
    BACKEND_OPTION,
    OneLineCommand,
    epoch_bar,
    load_model_arg,
    prepare_run_dir,
    progress_line_or_bar,
    read_labelled,
    resolve_structure_file,
    resume_hint,
    user_errors,
    write_log_csv,
)
from pftlite.core.atomic import check_output
from pftlite.core.errors import InputError


def _metric(r: dict, quantity: str, stat: str, factor: float = 1.0) -> float:
    return r[quantity][stat] * factor if quantity in r else float("nan")


def _error_table(rows: dict) -> str:
    lines = [f"{'set':<10} {'E MAE':>10} {'E RMSE':>10} {'F MAE':>9} {'F RMSE':>9} {'S MAE':>8} {'S RMSE':>8}",
             f"{'':<10} {'meV/atom':>10} {'meV/atom':>10} {'eV/Å':>9} {'eV/Å':>9} {'GPa':>8} {'GPa':>8}"]  # fmt: skip
    for name, r in rows.items():
        lines.append(f"{name:<10} {_metric(r, 'energy', 'mae', 1e3):>10.2f} {_metric(r, 'energy', 'rmse', 1e3):>10.2f} "
                     f"{_metric(r, 'forces', 'mae'):>9.3g} {_metric(r, 'forces', 'rmse'):>9.3g} "
                     f"{_metric(r, 'stress', 'mae'):>8.3f} {_metric(r, 'stress', 'rmse'):>8.3f}")  # fmt: skip
    return "\n".join(lines)




@click.command(cls=OneLineCommand)
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("data", nargs=-1, required=True)
@click.option("--test", "test_data", multiple=True, help="Held-out data (files or dataset names) for the error table.")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write the fitted model here (default: overwrite MODEL).")
@click.option("--energy-weight", default=500.0, show_default=True, help="Row weight per eV/atom.")
@click.option("--forces-weight", default=20.0, show_default=True, help="Row weight per eV/Å.")
@click.option("--stress-weight", default=500.0, show_default=True, help="Row weight per eV/Å³ (0: ignore stresses).")
@click.option("--ridge", default=1e-8, show_default=True, help="Ridge regularisation (Jacobi-scaled).")
@click.option("--energy-key", default="energy", show_default=True, help="extxyz energy key.")
@click.option("--forces-key", default="forces", show_default=True, help="extxyz forces key.")
@click.option("--stress-key", default="stress", show_default=True, help="extxyz stress key.")
@click.option("--report", type=click.Path(dir_okay=False), help="Write the error table as JSON.")
@click.option("--holdout", default=0.0, show_default=True, type=float,
              help="Seeded share of DATA's structures held out as test set (whole structures).")  # fmt: skip
@click.option("--split-seed", default=0, show_default=True, type=int, help="Seed of the --holdout split.")
@click.option("--norm-rattle", default=0.0, show_default=True, type=float,
              help="Feature normalisation from copies of DATA rattled by this std (Å) and strained by --norm-strain "
                   "(0: from DATA itself). Same fit; sets the weights' scale for `pftlite tune`.")  # fmt: skip
@click.option("--norm-strain", default=0.0, show_default=True, type=float, help="Strain std of those copies.")
@click.option("--equilibrium", multiple=True,
              help="Relaxed DFT structure (file or dataset name, e.g. phono3py/NaCl-222): force 0 and stress 0 "
                   "labels added. For forces-only DATA, whose equilibrium volume is otherwise free.")  # fmt: skip
@click.option("--gradient", is_flag=True, help="Train every parameter by gradient after the least-squares start "
              "(implied for an MLP readout).")  # fmt: skip
@click.option("--start", type=click.Choice(["ls", "model"]), default="ls", show_default=True,
              help="Gradient start: least-squares linear part, MLP residual off (ls), or MODEL's parameters.")  # fmt: skip
@click.option("--epochs", default=30, show_default=True, type=int, help="Gradient: passes over the training split.")
@click.option("--lr", default=3e-4, show_default=True, type=float, help="Gradient: AdamW step size (peak).")
@click.option("--batch", default=8, show_default=True, type=int, help="Gradient: structures per update.")
@click.option("--lr-schedule", type=click.Choice(["constant", "cosine"]), default="cosine", show_default=True,
              help="Gradient: step size after the warmup (cosine: decay to --lr-floor x lr).")  # fmt: skip
@click.option("--warmup", default=0.02, show_default=True, type=float, help="Gradient: share of updates in warmup.")
@click.option("--lr-floor", default=0.01, show_default=True, type=float, help="Gradient: final cosine step, x lr.")
@click.option("--weight-decay", default=0.0, show_default=True, type=float, help="Gradient: decoupled weight decay.")
@click.option("--clip-norm", default=10.0, show_default=True, type=float, help="Gradient: global-norm clip (0 = off).")
@click.option("--ema-decay", default=0.99, show_default=True, type=float, help="Gradient: EMA decay per update.")
@click.option("--loss-weights", default="500,200,50", show_default=True,
              help="Gradient: MSE weights of energy (eV/atom)², forces (eV/Å)², stress (eV/Å³)².")  # fmt: skip
@click.option("--val-fraction", default=0.1, show_default=True, type=float,
              help="Gradient: seeded validation share of the training structures (picks the kept EMA).")  # fmt: skip
@click.option("--seed", default=0, show_default=True, type=int, help="Gradient: seed of the MLP start, split, order.")
@click.option("--run-dir", type=click.Path(file_okay=False),
              help="Gradient: folder of checkpoint.npz and logs (default fit-<stem> beside the output model); a rerun resumes.")  # fmt: skip
@click.option("--restart", is_flag=True, help="Gradient: ignore an existing checkpoint in the run folder.")
@click.option("--force", is_flag=True, help="Replace an existing --output / --report file (MODEL itself is updated in place without -o).")
@BACKEND_OPTION
@user_errors
def fit(model, data, test_data, output, energy_weight, forces_weight, stress_weight, ridge,
        energy_key, forces_key, stress_key, report, holdout, split_seed, norm_rattle, norm_strain, equilibrium,
        gradient, start, epochs, lr, batch, lr_schedule, warmup, lr_floor, weight_decay, clip_norm, ema_decay,
        loss_weights, val_fraction, seed, run_dir, restart, force, backend):  # fmt: skip
    """Fit MODEL to energies, forces and stresses in DATA: least squares for a linear readout;
    for an MLP readout (or --gradient) least squares of the linear part, then every parameter
    by gradient (AdamW + EMA, best EMA on a validation split, checkpoints; a rerun resumes).

    DATA: extxyz files with labels, mlearn JSON files, phono3py displacement data (forces only),
    or dataset names (e.g. mlearn/Si_training, phono3py/NaCl-222). Labels missing from a
    structure are skipped; without any energy label the reference energies e0 are 0.
    """
    from pftlite.core.atomic import atomic_path
    from pftlite.potentials.base import Potential
    from pftlite.potentials.files import save_potential
    from pftlite.potentials.loss import FitWeights
    from pftlite.training.fit import equilibrium_labels, holdout_split, perturbed_copies
    from pftlite.training.metrics import errors

    pot = load_model_arg(model)
    meta = pot.metadata
    if output is None and not Path(model).exists():
        raise InputError(f"{model} is a built-in model: give --output/-o for the fitted model")
    fam = pot.family
    gradient = gradient or not fam.is_linear(pot.spec)
    if fam.least_squares is None and (not gradient or start == "ls"):
        raise InputError(f"{model}: a {pot.kind!r} potential has no least-squares fit; use --gradient --start model")
    if gradient:
        cfg = _gradient_fit_config(epochs, lr, batch, lr_schedule, warmup, lr_floor, weight_decay, clip_norm,
                                   ema_decay, loss_weights, val_fraction, seed)  # fmt: skip
    if not 0.0 <= holdout < 1.0:
        raise InputError(f"--holdout: a fraction in [0, 1), got {holdout}")
    out = check_output(output or model, "--output", force=force if output else None)
    if report:
        check_output(report, "--report", force=force)
    backend = pot.on(backend).backend  # the model's default if not given; fails early if not offered
    train = read_labelled(data, pot, energy_key, forces_key, stress_key)
    test = read_labelled(test_data, pot, energy_key, forces_key, stress_key) if test_data else []
    split = None
    if holdout:
        tr, te = holdout_split(len(train), holdout, split_seed)
        split = {"holdout": holdout, "seed": split_seed, "test": te.tolist()}
        train, test = [train[i] for i in tr], [train[i] for i in te] + test
    fitted = train + [equilibrium_labels(a) for a in _read_equilibrium(equilibrium, pot)]
    w = FitWeights(energy=energy_weight, forces=forces_weight, stress=stress_weight, ridge=ridge)
    t0 = time.perf_counter()
    if not gradient or start == "ls":
        with progress_line_or_bar(len(fitted), "least squares") as bar:
            norm = perturbed_copies(train, norm_rattle, norm_strain, seed=split_seed) if norm_rattle or norm_strain else None
            pot = pot.with_params(fam.least_squares(pot.spec, fitted, w, progress=lambda i, n: bar.update(1),
                                                    normalise_on=norm, seed=seed))  # fmt: skip
    grad_record = None
    if gradient:
        run = Path(run_dir) if run_dir else Path(output or model).with_name(f"fit-{Path(output or model).stem}")
        pot, grad_record = _fit_by_gradient(pot, backend, fitted, cfg, run, restart)
    dt = time.perf_counter() - t0
    rows = {"train": errors(pot, train, backend)}
    if test:
        rows["test"] = errors(pot, test, backend)
    click.echo(_error_table(rows))
    click.echo(f"fitted {pot.describe()['summary']} by {'gradient' if gradient else 'least squares'} "
               f"on {len(train)} structures "
               f"({sum(len(a) for a in train)} atoms) in {dt:.1f} s")  # fmt: skip
    meta = dict(meta)
    meta.setdefault("history", []).append({
        "command": "fit", "data": [str(d) for d in data], "test": [str(d) for d in test_data],
        "split": split, "equilibrium": [str(e) for e in equilibrium],
        "normalisation": {"rattle": norm_rattle, "strain": norm_strain},
        "weights": {"energy": energy_weight, "forces": forces_weight, "stress": stress_weight, "ridge": ridge},
        "gradient": grad_record, "errors": rows, "seconds": dt, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })  # fmt: skip
    if report:  # before the model: a failure here leaves the input model as it was
        with atomic_path(report) as tmp:
            tmp.write_text(json.dumps(rows, indent=2))
    save_potential(out, Potential(pot.spec, pot.params, meta))
    click.echo(f"wrote {out}")


def _gradient_fit_config(epochs, lr, batch, schedule, warmup, lr_floor, weight_decay, clip_norm, ema_decay,
                         loss_weights, val_fraction, seed):  # fmt: skip
    """`pftlite fit` gradient options -> TuneConfig (one-line InputError on bad values)."""
    from pftlite.potentials.loss import LossSpec
    from pftlite.training.fit import gradient_config

    try:
        we, wf, ws = (float(x) for x in str(loss_weights).replace(",", " ").split())
    except ValueError:
        raise InputError(f"--loss-weights: three numbers E,F,S, got {loss_weights!r}") from None
    if epochs < 1 or batch < 1 or lr <= 0 or min(we, wf, ws) < 0 or not (we or wf or ws):
        raise InputError("fit: --epochs, --batch and --lr must be positive, --loss-weights >= 0 and not all 0")
    if not (0.0 <= warmup < 1.0 and 0.0 <= lr_floor <= 1.0 and 0.0 <= val_fraction < 1.0 and 0.0 <= ema_decay < 1.0):
        raise InputError("fit: --warmup and --val-fraction in [0, 1), --lr-floor in [0, 1], --ema-decay in [0, 1)")
    return gradient_config(epochs=epochs, lr=lr, batch=batch, seed=seed, val_fraction=val_fraction,
                           loss=LossSpec(energy=we, forces=wf, stress=ws, kind="mse"), schedule=schedule,
                           warmup=warmup, lr_floor=lr_floor, weight_decay=weight_decay, clip_norm=clip_norm,
                           ema_decay=ema_decay)  # fmt: skip




def _fit_by_gradient(pot, backend, structures, cfg, run_dir, restart):
    """Gradient training with a progress bar, logs in ``run_dir`` -> (potential with the best EMA, record)."""
    from pftlite.phonons.runs import write_json
    from pftlite.training.fit import fit_gradient

    prepare_run_dir(run_dir, restart)
    t0 = time.perf_counter()
    with resume_hint(run_dir), epoch_bar("gradient fit", cfg.epochs, lambda row: f"loss {row.get('loss', float('nan')):.4g}") as progress:
        state = fit_gradient(pot, backend, structures, cfg, run_dir=run_dir, progress=progress)
    dt = time.perf_counter() - t0
    write_log_csv(run_dir / "log.csv", state["log"], ["epoch", "step", "update", "loss", "energy", "forces", "stress", "grad_norm", "lr"])
    val_log = [{k: v for k, v in r.items() if k not in ("hessian", "phonon_loss")} for r in state["val_log"]]
    record = {"config": cfg.to_dict(), "steps_per_epoch": state["steps_per_epoch"], "best_epoch": state["best_epoch"],
              "best_val_loss": state["best_loss"], "split": {k: v for k, v in state["split"].items() if k != "phonon"},
              "seconds": dt, "run_dir": str(run_dir)}  # fmt: skip
    write_json(run_dir / "log.json", {**record, "val_log": val_log})
    v0, vb = val_log[0], next((r for r in val_log if r["epoch"] == state["best_epoch"]), val_log[-1])
    if "val_loss" in v0:
        click.echo(f"gradient fit: {cfg.epochs} epochs x {state['steps_per_epoch']} updates in {dt:.1f} s; best EMA at "
                   f"epoch {state['best_epoch']}: validation loss {v0['val_loss']:.4g} -> {vb['val_loss']:.4g}, "
                   f"F MAE {v0.get('val_forces_mae', float('nan')):.4f} -> {vb.get('val_forces_mae', float('nan')):.4f} eV/Å")  # fmt: skip
    record.pop("split")
    return pot.with_params(state["best"]), record


def _read_equilibrium(args, pot):
    """Unit cells of relaxed DFT references (structure files, phono3py data, dataset names)."""
    from pftlite.datasets.reference import is_phono3py_source
    from pftlite.structures.batch import MIN_DISTANCE
    from pftlite.structures.io import check_structure, read_structures

    out = []
    for arg in args:
        if is_phono3py_source(arg):
            from pftlite.datasets.phono3py_refs import load_fc3_reference

            frames = [load_fc3_reference(arg).unitcell]
        else:
            frames = read_structures(resolve_structure_file(arg))
        for k, a in enumerate(frames):
            check_structure(a, f"{arg}[{k}]", pot.species, min_distance=MIN_DISTANCE)
        out.extend(frames)
    return out
