"""Command-line front end (click). A thin shell: parse options, call the library, print.

User errors (bad files, unknown species, missing backend, ...) print one line to stderr and
exit with status 2; no traceback. Every command takes ``--backend numba|jax``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
import time
import warnings
from pathlib import Path

import click
import numpy as np

from . import __version__
from .atomic import check_output
from .errors import BackendUnavailable, DataUnavailable, InputError
from .model import builtin_models, resolve_model  # noqa: F401  (public names of the CLI too)

BACKEND_OPTION = click.option(
    "--backend",
    default="numba",
    show_default=True,
    help="Compute backend: numba (CPU) or jax (CPU/GPU).",
)


def resolve_structure_file(arg) -> Path:
    """A structure file path, or a named reference dataset (e.g. mdr/mp-149)."""
    p = Path(arg)
    if p.exists():
        return p
    from .datasets import DATASETS, fetch

    if str(arg) in DATASETS:
        return fetch(str(arg))
    return p  # the reader reports "no such file"


def _load(model):
    from .model import load_model

    return load_model(resolve_model(model))


def user_errors(fn):
    """Turn user-facing exceptions into a one-line message and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (InputError, BackendUnavailable, DataUnavailable) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)

    return wrapper


def _one_line(exc: click.UsageError) -> click.UsageError:
    """The same usage error without click's usage block: one line, exit status 2."""
    if exc.ctx is None:
        return exc
    where = exc.ctx.command_path
    return click.UsageError(f"{where}: {exc.format_message()} (see {where} --help)")


class OneLineCommand(click.Command):
    """A click command whose usage errors print one line ("Error: ..."), exit status 2."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            raise _one_line(exc) from None


class OneLineGroup(click.Group):
    command_class = OneLineCommand

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            raise _one_line(exc) from None

    def resolve_command(self, ctx, args):
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            raise _one_line(exc) from None


@click.group(cls=OneLineGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pftlite")
def main():
    """pftlite: phonon fine-tuning of machine-learned interatomic potentials."""


# ---------------------------------------------------------------------------------------
# init / info
# ---------------------------------------------------------------------------------------


def _parse_species(values) -> tuple[int, ...]:
    from ase.data import atomic_numbers

    out = []
    for v in values:
        for s in str(v).replace(",", " ").split():
            if s.isdigit():
                out.append(int(s))
            elif s in atomic_numbers:
                out.append(atomic_numbers[s])
            else:
                raise InputError(f"--species: unknown element {s!r}")
    if not out:
        raise InputError("--species: give at least one element, e.g. --species Si")
    return tuple(out)


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--species", "-s", multiple=True, required=True, help="Elements, e.g. -s Si -s C or -s Si,C.")
@click.option("--r-cut", default=5.0, show_default=True, help="Cutoff radius, Å.")
@click.option("--n-radial", default=8, show_default=True, help="Radial functions (2- and 3-body).")
@click.option("--l-max", default=4, show_default=True, help="Max angular momentum (3-body).")
@click.option("--n-radial-4b", default=4, show_default=True, help="Radial functions in 4-body terms.")
@click.option("--l-max-4b", default=2, show_default=True, help="Max angular momentum in 4-body terms.")
@click.option("--envelope-power", default=4, show_default=True, help="p in (1 - r/r_cut)^p.")
@click.option("--readout", type=click.Choice(["linear", "mlp"]), default="linear", show_default=True)
@click.option("--hidden", default=16, show_default=True, help="MLP width (readout=mlp).")
@click.option("--e0", multiple=True, type=float, help="Reference energy per species, eV (in --species order).")
@click.option("--seed", default=0, show_default=True, help="RNG seed for MLP weights.")
@click.option("--force", is_flag=True, help="Overwrite an existing model file.")
@user_errors
def init(model, species, r_cut, n_radial, l_max, n_radial_4b, l_max_4b, envelope_power, readout,
         hidden, e0, seed, force):  # fmt: skip
    """Create a new (untrained) model file MODEL from hyperparameters and a species list."""
    from .model import ModelSpec, init_params, save_model

    if Path(model).exists() and not force:
        raise InputError(f"{model}: file exists (use --force to overwrite)")
    check_output(model, "MODEL")
    spec = ModelSpec(
        species=_parse_species(species), r_cut=r_cut, n_radial=n_radial, l_max=l_max,
        n_radial_4b=n_radial_4b, l_max_4b=l_max_4b, envelope_power=envelope_power,
        readout=readout, hidden=hidden,
    )  # fmt: skip
    if e0 and len(e0) != len(spec.species):
        raise InputError(f"--e0: got {len(e0)} values for {len(spec.species)} species")
    params = init_params(spec, seed=seed, e0=list(e0) if e0 else None)
    meta = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "pftlite_version": __version__,
        "history": [{"command": "init", "seed": seed}],
    }
    save_model(model, spec, params, meta)
    click.echo(f"wrote {model}: {spec.n_features} features, species {list(spec.species)}")


def _describe(spec, params, meta) -> dict:
    from .model import trainable_keys

    body = np.bincount(spec.tables.feature_body, minlength=5)

    return {
        "spec": spec.to_dict(),
        "n_features": int(spec.n_features),
        "features_by_body_order": {"2": int(body[2]), "3": int(body[3]), "4": int(body[4])},
        "n_trainable_parameters": int(sum(np.size(params[k]) for k in trainable_keys(spec))),
        "metadata": meta,
    }


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@user_errors
def info(model, as_json):
    """Show a model's hyperparameters, size and provenance."""
    from ase.data import chemical_symbols

    spec, params, meta = _load(model)
    d = _describe(spec, params, meta)
    if as_json:
        click.echo(json.dumps(d, indent=2))
        return
    click.echo(f"model      {model}")
    click.echo(f"species    {' '.join(chemical_symbols[z] for z in spec.species)}")
    for k, v in d["spec"].items():
        if k != "species":
            click.echo(f"{k:<14} {v}")
    fb = d["features_by_body_order"]
    click.echo(f"features   {d['n_features']} (2-body {fb['2']}, 3-body {fb['3']}, 4-body {fb['4']})")
    click.echo(f"trainable  {d['n_trainable_parameters']} parameters")
    if meta:
        click.echo(f"metadata   {json.dumps(meta)}")


# ---------------------------------------------------------------------------------------
# fit
# ---------------------------------------------------------------------------------------


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


def _read_labelled(paths, spec, energy_key, forces_key, stress_key):
    """Labelled structures of every source: extxyz, mlearn JSON, phono3py displacement data
    (yaml, folder or ``phono3py/...`` name: every displaced supercell, forces only)."""
    from .batch import MIN_DISTANCE
    from .io import (
        check_structure,
        is_phono3py_source,
        read_extxyz_labels,
        read_mlearn,
        read_phono3py_labelled,
    )

    out = []
    for arg in paths:
        if is_phono3py_source(arg):
            frames = read_phono3py_labelled(arg)
        else:
            p = resolve_structure_file(arg)
            if p.name.lower().endswith((".json", ".json.gz")):
                frames = read_mlearn(p)
            else:
                frames = read_extxyz_labels(p, energy_key, forces_key, stress_key)
        for k, a in enumerate(frames):
            check_structure(a, f"{arg}[{k}]", spec.species, min_distance=MIN_DISTANCE)
        out.extend(frames)
    if not out:
        raise InputError("fit: no labelled structures in " + ", ".join(map(str, paths)))
    return out


@main.command()
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
    from .atomic import atomic_path
    from .fit import (
        FitWeights,
        equilibrium_labels,
        errors,
        fit_linear,
        holdout_split,
        mlp_start,
        perturbed_copies,
    )
    from .model import save_model
    from .registry import get_backend

    spec, params, meta = _load(model)
    if output is None and not Path(model).exists():
        raise InputError(f"{model} is a built-in model: give --output/-o for the fitted model")
    gradient = gradient or spec.readout != "linear"
    if gradient:
        cfg = _gradient_fit_config(epochs, lr, batch, lr_schedule, warmup, lr_floor, weight_decay, clip_norm,
                                   ema_decay, loss_weights, val_fraction, seed)  # fmt: skip
    if not 0.0 <= holdout < 1.0:
        raise InputError(f"--holdout: a fraction in [0, 1), got {holdout}")
    out = check_output(output or model, "--output", force=force if output else None)
    if report:
        check_output(report, "--report", force=force)
    be = get_backend(backend)
    train = _read_labelled(data, spec, energy_key, forces_key, stress_key)
    test = _read_labelled(test_data, spec, energy_key, forces_key, stress_key) if test_data else []
    split = None
    if holdout:
        tr, te = holdout_split(len(train), holdout, split_seed)
        split = {"holdout": holdout, "seed": split_seed, "test": te.tolist()}
        train, test = [train[i] for i in tr], [train[i] for i in te] + test
    fitted = train + [equilibrium_labels(a) for a in _read_equilibrium(equilibrium, spec)]
    w = FitWeights(energy=energy_weight, forces=forces_weight, stress=stress_weight, ridge=ridge)
    t0 = time.perf_counter()
    if not gradient or start == "ls":
        import dataclasses

        lin = dataclasses.replace(spec, readout="linear")
        with click.progressbar(length=len(fitted), label="least squares", file=sys.stderr) as bar:
            norm = perturbed_copies(train, norm_rattle, norm_strain, seed=split_seed) if norm_rattle or norm_strain else None
            ls = fit_linear(lin, fitted, w, progress=lambda i, n: bar.update(1), normalise_on=norm)
        params = ls if not gradient else mlp_start(spec, ls, seed)
    grad_record = None
    if gradient:
        run = Path(run_dir) if run_dir else Path(output or model).with_name(f"fit-{Path(output or model).stem}")
        params, grad_record = _fit_by_gradient(spec, params, be, fitted, cfg, run, restart)
    dt = time.perf_counter() - t0
    rows = {"train": errors(spec, params, train, be)}
    if test:
        rows["test"] = errors(spec, params, test, be)
    click.echo(_error_table(rows))
    click.echo(f"fitted {spec.n_features} features x {len(spec.species)} species ({spec.readout} readout, "
               f"{'gradient' if gradient else 'least squares'}) on {len(train)} structures "
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
    save_model(out, spec, params, meta)
    click.echo(f"wrote {out}")


def _gradient_fit_config(epochs, lr, batch, schedule, warmup, lr_floor, weight_decay, clip_norm, ema_decay,
                         loss_weights, val_fraction, seed):  # fmt: skip
    """`pftlite fit` gradient options -> TuneConfig (one-line InputError on bad values)."""
    from .fit import gradient_config
    from .loss import LossSpec

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


@contextlib.contextmanager
def _resume_hint(run_dir: Path):
    """Ctrl-C during training: say what the checkpoint holds and how to resume; exit 130."""
    try:
        yield
    except KeyboardInterrupt:
        done = 0
        ck = run_dir / "checkpoint.npz"
        if ck.exists():
            with contextlib.suppress(Exception):
                from .tune import load_checkpoint

                done = int(load_checkpoint(ck)["epoch"])
        click.echo(f"\ninterrupted: {ck} holds {done} finished epoch(s); rerun the same command to "
                   f"resume from epoch {done + 1}", err=True)  # fmt: skip
        sys.exit(130)


def _fit_by_gradient(spec, params, be, structures, cfg, run_dir, restart):
    """Gradient training with a progress bar, logs in ``run_dir`` -> (best EMA params, record)."""
    from .fit import fit_gradient
    from .phonon_runs import write_json

    _prepare_run_dir(run_dir, restart)
    t0 = time.perf_counter()
    with _resume_hint(run_dir), _epoch_bar("gradient fit", cfg.epochs, lambda ep, row: f"epoch {ep} loss {row.get('loss', float('nan')):.4g}") as progress:
        state = fit_gradient(spec, params, be, structures, cfg, run_dir=run_dir, progress=progress)
    dt = time.perf_counter() - t0
    _write_log_csv(run_dir / "log.csv", state["log"], ["epoch", "step", "update", "loss", "energy", "forces", "stress", "grad_norm", "lr"])
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
    return {**params, **state["best"]}, record


def _read_equilibrium(args, spec):
    """Unit cells of relaxed DFT references (structure files, phono3py data, dataset names)."""
    from .batch import MIN_DISTANCE
    from .io import check_structure, is_phono3py_source, read_structures

    out = []
    for arg in args:
        if is_phono3py_source(arg):
            from .fc3_data import load_fc3_reference

            frames = [load_fc3_reference(arg).unitcell]
        else:
            frames = read_structures(resolve_structure_file(arg))
        for k, a in enumerate(frames):
            check_structure(a, f"{arg}[{k}]", spec.species, min_distance=MIN_DISTANCE)
        out.extend(frames)
    return out


# ---------------------------------------------------------------------------------------
# predict
# ---------------------------------------------------------------------------------------


def _read_all(paths, spec):
    """All structures in ``paths``, validated for ``spec`` (one-line InputError otherwise)."""
    from .batch import MIN_DISTANCE
    from .io import check_structure, read_structures

    structs, names = [], []
    for p in paths:
        p = resolve_structure_file(p)
        for k, a in enumerate(read_structures(p)):
            check_structure(a, f"{p}[{k}]", spec.species, min_distance=MIN_DISTANCE)
            structs.append(a)
            names.append(f"{p}[{k}]")
    if not structs:
        raise InputError("no structures found in " + ", ".join(map(str, paths)))
    return structs, names


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("structures", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Output .extxyz or .json (default: table only).")
@click.option("--force", is_flag=True, help="Replace an existing --output file.")
@BACKEND_OPTION
@user_errors
def predict(model, structures, output, force, backend):
    """Energies, forces and stresses of STRUCTURES (any format ASE reads, phonopy yaml, mlearn json)."""
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.stress import full_3x3_to_voigt_6_stress

    from .atomic import atomic_path
    from .batch import make_batch
    from .registry import get_backend

    spec, params, _ = _load(model)
    be = get_backend(backend)
    structs, names = _read_all(structures, spec)
    if output and not output.endswith((".json", ".xyz", ".extxyz")):
        raise InputError(f"{output}: output must end in .json, .xyz or .extxyz")
    if output:
        check_output(output, "--output", force=force)
    results = []
    t0 = time.perf_counter()
    for a, name in zip(structs, names):
        out = be.energy_forces_stress(spec, params, make_batch([a], spec, sources=[name]))
        results.append((a, name, out))
    dt = time.perf_counter() - t0
    click.echo(f"{'structure':<40} {'atoms':>6} {'E (eV)':>14} {'E/atom':>10} {'max|F|':>9} {'P (GPa)':>9}")
    for a, name, out in results:
        e = out["energy"][0]
        p = -np.trace(out["stress"][0]) / 3 * 160.21766208
        click.echo(f"{name[-40:]:<40} {len(a):>6} {e:>14.6f} {e / len(a):>10.5f} "
                   f"{np.abs(out['forces']).max():>9.4f} {p:>9.3f}")  # fmt: skip
    click.echo(f"{len(results)} structures in {dt:.3f} s ({backend})")
    if not output:
        return
    with atomic_path(output) as tmp:
        if output.endswith(".json"):
            rows = [
                {
                    "source": name,
                    "n_atoms": len(a),
                    "energy_eV": float(out["energy"][0]),
                    "forces_eV_per_A": out["forces"].tolist(),
                    "stress_eV_per_A3": out["stress"][0].tolist(),
                }
                for a, name, out in results
            ]
            tmp.write_text(json.dumps({"model": str(model), "backend": backend, "results": rows}, indent=1))
        else:
            from ase.io import write

            frames = []
            for a, name, out in results:
                b = a.copy()
                # reference labels read from the input are kept, renamed ref_*
                for key in ("energy", "free_energy", "stress"):
                    if key in b.info:
                        b.info[f"ref_{key}"] = b.info.pop(key)
                if "forces" in b.arrays:
                    b.arrays["ref_forces"] = b.arrays.pop("forces")
                b.calc = SinglePointCalculator(
                    b, energy=float(out["energy"][0]), forces=out["forces"],
                    stress=full_3x3_to_voigt_6_stress(out["stress"][0]),
                )  # fmt: skip
                b.info["source"] = name
                frames.append(b)
            write(str(tmp), frames, format="extxyz")
    click.echo(f"wrote {output}")


# ---------------------------------------------------------------------------------------
# hessian
# ---------------------------------------------------------------------------------------


def _dim(values) -> np.ndarray | None:
    """--dim as phonopy's DIM: "2 2 2" (diagonal), 9 integers (a matrix, row by row) or one
    integer n (n n n); repeated --dim options are joined. None when not given."""
    text = " ".join(values)
    if not text.strip():
        return None
    vals = _floats(text, "--dim")
    if len(vals) == 1:
        vals = vals * 3
    if len(vals) not in (3, 9) or any(v != int(v) for v in vals):
        raise InputError(f'--dim: 3 integers (diagonal, e.g. --dim "2 2 2") or 9, got {text!r}')
    m = np.diag(vals).astype(int) if len(vals) == 3 else np.array(vals, dtype=int).reshape(3, 3)
    if round(abs(np.linalg.det(m))) < 1:
        raise InputError(f"--dim: the supercell matrix {m.tolist()} is singular")
    return m


def _supercell_matrix_from(path, supercell):
    """--dim (see :func:`_dim`), else the phonopy yaml's supercell_matrix, else identity."""
    m = _dim(supercell)
    if m is not None:
        return m
    if ".yaml" in str(path).lower():
        from .io import read_phonopy_supercell_matrix

        m = read_phonopy_supercell_matrix(path)
        if m is not None:
            return m
    return np.eye(3, dtype=int)


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("structure", type=click.Path(dir_okay=False))
@click.option("--dim", "supercell", multiple=True,
              help='Supercell as phonopy\'s DIM: "2 2 2" (diagonal) or 9 integers, quoted. '
                   "Default: the phonopy yaml's supercell_matrix, else the cell itself.")  # fmt: skip
@click.option("--output", "-o", default="FORCE_CONSTANTS", show_default=True, type=click.Path(dir_okay=False),
              help="FORCE_CONSTANTS (text) or *.hdf5 (phonopy's force_constants.hdf5).")  # fmt: skip
@click.option("--force", is_flag=True, help="Replace an existing --output file (e.g. a DFT FORCE_CONSTANTS).")
@click.option("--no-size-check", is_flag=True, help="Go ahead even if the estimated memory exceeds this machine's.")
@BACKEND_OPTION
@user_errors
def hessian(model, structure, supercell, output, force, no_size_check, backend):
    """Exact force constants of STRUCTURE's supercell, written for phonopy (FORCE_CONSTANTS or
    force_constants.hdf5, read by phonopy-load beside a phonopy_disp.yaml)."""
    from ase import Atoms
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    from .atomic import atomic_path
    from .batch import make_batch
    from .registry import get_backend

    spec, params, _ = _load(model)
    be = get_backend(backend)
    check_output(output, "--output", force=force)
    unit = _read_all([structure], spec)[0][0]
    smat = _supercell_matrix_from(resolve_structure_file(structure), supercell)
    n_super = len(unit) * round(abs(np.linalg.det(smat)))
    if not no_size_check:
        from .sizes import check_memory

        # fc (N, N, 3, 3) float64, its (3N, 3N) copy for the checks and phonopy's copy
        check_memory(3 * 9 * 8 * float(n_super) ** 2, f"hessian of a {n_super}-atom supercell")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # phonopy's primitive_matrix='auto' notice
        ph = Phonopy(
            PhonopyAtoms(symbols=unit.get_chemical_symbols(), cell=unit.cell[:],
                         scaled_positions=unit.get_scaled_positions(), masses=unit.get_masses()),
            supercell_matrix=smat,
            primitive_matrix="auto",
        )  # fmt: skip
    sc = ph.supercell
    atoms = Atoms(numbers=sc.numbers, cell=sc.cell, scaled_positions=sc.scaled_positions, pbc=True)
    t0 = time.perf_counter()
    batch = make_batch([atoms], spec, sources=[str(structure)])
    fc = be.hessian(spec, params, batch)
    dt = time.perf_counter() - t0
    N = len(atoms)
    Hm = fc.transpose(0, 2, 1, 3).reshape(3 * N, 3 * N)
    ph.force_constants = fc
    ph.run_qpoints([[0.0, 0.0, 0.0]])
    freqs = ph.qpoints.frequencies[0]
    with atomic_path(output) as tmp:
        if output.endswith((".hdf5", ".h5")):
            from phonopy.file_IO import write_force_constants_to_hdf5

            write_force_constants_to_hdf5(fc, filename=str(tmp))
        else:
            from phonopy.file_IO import write_FORCE_CONSTANTS

            write_FORCE_CONSTANTS(fc, filename=str(tmp))
    diagonal = np.all(smat == np.diag(np.diag(smat)))
    dims = " ".join(str(x) for x in (np.diag(smat) if diagonal else smat.ravel()))
    click.echo(f"supercell      {N} atoms (matrix {smat.tolist()}), {batch.n_edges} edges")
    click.echo(f"force consts   {fc.shape} eV/Å², {3 * N} HVP columns in {dt:.3f} s ({backend})")
    click.echo(f"checks         max|H - H^T| = {np.abs(Hm - Hm.T).max():.2e}, "
               f"max|sum_j fc_ij| = {np.abs(fc.sum(1)).max():.2e} eV/Å²")  # fmt: skip
    click.echo(f"Gamma (THz)    {' '.join(f'{f:.3f}' for f in freqs[: min(9, len(freqs))])}"
               + (" ..." if len(freqs) > 9 else ""))  # fmt: skip
    cell_file = _unit_cell_hint(structure)
    click.echo(f"wrote {output}; phonopy (v4) reads it beside a phonopy_disp.yaml made for the "
               f"same supercell: phonopy-init -c {cell_file} --dim {dims} -d && phonopy-load "
               f"phonopy_disp.yaml -t --mesh 20 20 20")  # fmt: skip


def _unit_cell_hint(structure) -> str:
    """The unit-cell file to name in the phonopy hint: the structure file when phonopy reads
    it (a POSCAR), else a placeholder."""
    name = Path(str(structure)).name
    return str(structure) if "POSCAR" in name or "CONTCAR" in name else "POSCAR-unitcell"



# ---------------------------------------------------------------------------------------
# phonons
# ---------------------------------------------------------------------------------------


def _floats(text: str, what: str) -> list[float]:
    try:
        return [float(x) for x in str(text).replace(",", " ").split()]
    except ValueError:
        raise InputError(f"{what}: expected numbers, got {text!r}") from None


def _mesh(text: str):
    vals = _floats(text, "--mesh")
    if len(vals) == 1 and vals[0] > 0:
        return vals[0]
    if len(vals) == 3 and all(v >= 1 and v == int(v) for v in vals):
        return tuple(int(v) for v in vals)
    raise InputError(f"--mesh: a length in Å or 3 positive integers, got {text!r}")


def _load_references(paths, spec):
    """Every reference read and checked before any work starts."""
    from ase.data import chemical_symbols

    from .phonon_data import load_reference

    refs, seen = [], {}
    for p in paths:
        ref = load_reference(p)
        missing = sorted(set(ref.unitcell.numbers) - set(spec.species))
        if missing:
            names = ", ".join(chemical_symbols[z] for z in missing)
            have = ", ".join(chemical_symbols[z] for z in spec.species)
            raise InputError(f"{ref.source}: species {names} not in the model ({have})")
        if ref.name in seen:
            raise InputError(f"{ref.source}: material name {ref.name!r} also used by {seen[ref.name]}")
        seen[ref.name] = ref.source
        refs.append(ref)
    return refs


def _fmt(x, spec=".3f", signed=False):
    if x is None:
        return "-"
    return format(x, ("+" if signed else "") + spec)


def _phonon_table(results, summary) -> str:
    head = (f"{'material':<14}{'formula':<10}{'status':<8}{'ω_max DFT→model (Δ) K':>28}"
            f"{'ΔS J/K/mol':>12}{'ΔF kJ/mol':>11}{'ΔC_V':>9}{'fc RMSE':>9}{'time s':>8}")  # fmt: skip
    lines = [head, "-" * len(head)]
    for r in results:
        ok = r["status"] == "ok"
        e = r.get("errors", {})
        w = (f"{r['dft']['omega_max_K']:.1f}→{r['model']['omega_max_K']:.1f} ({e['omega_max_K']:+.1f})"
             if ok else f"{r['dft']['omega_max_K']:.1f}→-")  # fmt: skip
        lines.append(
            f"{r['name']:<14}{r.get('formula', ''):<10}{r['status']:<8}{w:>28}"
            f"{_fmt(e.get('S'), signed=True):>12}{_fmt(e.get('F'), signed=True):>11}"
            f"{_fmt(e.get('C_V'), signed=True):>9}{_fmt(e.get('fc_rmse'), '.4f'):>9}"
            f"{_fmt(r.get('seconds'), '.1f'):>8}"
        )
        if not ok:
            lines.append(f"{'':<14}failed: {r.get('reason', '')}")
    m = summary["mae"]
    lines.append("-" * len(head))
    lines.append(
        f"{'MAE':<32}{_fmt(m['omega_max_K'], '.1f'):>28}{_fmt(m['S']):>12}{_fmt(m['F']):>11}"
        f"{_fmt(m['C_V']):>9}"
    )
    lines.append(
        f"{summary['n_ok']} of {summary['n_materials']} evaluated, {summary['n_failed']} failed, "
        f"{summary['stability_disagreements']} stability disagreement(s); "
        f"T = {summary['protocol']['thermo']['report_temperature']:g} K"
    )
    return "\n".join(lines)


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("references", nargs=-1, required=True)
@click.option("--output", "-o", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Output folder (default: phonons-<model name>). One <material>.json each, "
                   "summary.json, summary.csv.")  # fmt: skip
@click.option("--fc", "fc_method", type=click.Choice(["analytic", "displacement"]), default="analytic",
              show_default=True, help="Model force constants: exact HVPs for the irreducible "
              "displacements, or finite displacements (drift removed).")  # fmt: skip
@click.option("--displacement", default=0.01, show_default=True, type=float, help="Displacement length, Å.")
@click.option("--relax/--no-relax", default=True, show_default=True,
              help="Relax the unit cell with the model first (FIRE, cell filter, symmetry kept).")  # fmt: skip
@click.option("--fmax", default=0.005, show_default=True, type=float, help="Relaxation threshold, eV/Å.")
@click.option("--max-steps", default=1000, show_default=True, type=int, help="FIRE steps before 'failed'.")
@click.option("--temperatures", default="0,75,150,300,600", show_default=True, help="K, comma-separated.")
@click.option("--mesh", default="100", show_default=True,
              help="phonopy mesh: length in Å (phonopy's rule) or 3 integers.")  # fmt: skip
@click.option("--gamma-acoustic", type=click.Choice(["include", "exclude"]), default="exclude", show_default=True,
              help="The 3 Γ acoustic modes in the thermal sums (model and DFT alike): 'exclude' leaves "
              "them out; 'include' replaces them by the acoustic branches averaged over the Γ cell "
              "of the mesh (converges faster). Neither depends on their rounding-noise sign.")  # fmt: skip
@click.option("--nac/--no-nac", default=False, show_default=True,
              help="Non-analytical term correction (phonopy's) with the reference's Born charges, for "
              "DFT and model alike, where the reference has them; off in the MDR protocol.")  # fmt: skip
@click.option("--plot/--no-plot", default=False, show_default=True,
              help="Band structure + DOS of model and DFT per material (PNG, needs matplotlib).")  # fmt: skip
@click.option("--jobs", "-j", default=1, show_default=True, type=int, help="Worker processes.")
@click.option("--overwrite", is_flag=True, help="Recompute materials already done.")
@BACKEND_OPTION
@user_errors
def phonons(model, references, out_dir, fc_method, displacement, relax, fmax, max_steps,
            temperatures, mesh, gamma_acoustic, nac, plot, jobs, overwrite, backend):  # fmt: skip
    """MDR phonon benchmark: MODEL vs DFT for each REFERENCE (MDR yaml, phonopy folder or
    yaml with FORCE_SETS / force constants, or a dataset name such as mdr/mp-149).

    Per material: relaxation, force constants, ω_max, F, S, C_V (per mole of primitive cells)
    at each temperature, stability, all beside the DFT values; then the MAE table.
    """
    from .phonon_runs import run_set
    from .phonons import PhononProtocol
    from .registry import get_backend
    from .relax import RelaxSettings
    from .thermo import ThermoSettings

    spec, _, _ = _load(model)
    get_backend(backend)  # fail early if unavailable
    temps = tuple(_floats(temperatures, "--temperatures"))
    if not temps or not np.all(np.isfinite(temps)) or min(temps) < 0:
        raise InputError(f"--temperatures: non-negative kelvin values, got {temperatures!r}")
    if displacement <= 0 or fmax <= 0 or max_steps < 1 or jobs < 1:
        raise InputError("--displacement, --fmax, --max-steps and --jobs must be positive")
    protocol = PhononProtocol(
        relax=RelaxSettings(fmax=fmax, max_steps=max_steps) if relax else None,
        fc=fc_method,
        displacement=displacement,
        nac=nac,
        thermo=ThermoSettings(
            temperatures=temps, mesh=_mesh(mesh), gamma_acoustic=gamma_acoustic,
            report_temperature=300.0 if 300.0 in temps else temps[-1],
        ),
    )  # fmt: skip
    if plot:
        from .plots import _require_matplotlib

        _require_matplotlib()  # before any work: one-line error without matplotlib
    model_path = resolve_model(model)
    refs = _load_references(references, spec)  # files, folders or dataset names
    out_dir = check_output(out_dir or f"phonons-{model_path.stem}", "--output", folder=True)
    click.echo(f"{len(refs)} material(s), model {model_path.name}, backend {backend}, "
               f"fc {fc_method}, relax {'on' if relax else 'off'} -> {out_dir}/", err=True)  # fmt: skip
    with click.progressbar(length=len(refs), label="phonons", file=sys.stderr,
                           item_show_func=lambda s: s or "") as bar:  # fmt: skip

        def progress(result, skipped):
            if skipped:
                click.echo(f"{result['name']}: done before (same model and protocol), kept", err=True)
            nac = result.get("nac") or {}
            if nac.get("reference_has_born_charges") and not nac.get("applied"):
                click.echo(f"{result['name']}: the reference carries Born charges ({Path(nac['born_source']).name}); "
                           "NAC is not applied (MDR protocol; --nac to apply it)", err=True)  # fmt: skip
            if nac.get("requested") and not nac.get("reference_has_born_charges"):
                click.echo(f"{result['name']}: --nac, but the reference has no Born charges: NAC not applied", err=True)
            bad = ((result.get("dft") or {}).get("stored_check") or {}).get("stored_non_finite")
            if bad:
                click.echo(f"{result['name']}: stored values not finite, left out of the check: {', '.join(bad)}", err=True)
            bar.update(1, f"{result['name']} {'(done before)' if skipped else result['status']}")

        results, summary = run_set(model_path, refs, protocol, backend, out_dir, jobs=jobs, plot=plot,
                                   overwrite=overwrite, progress=progress)  # fmt: skip
    click.echo(_phonon_table(results, summary))
    click.echo(f"wrote {out_dir}/summary.json, summary.csv and one JSON per material")



# ---------------------------------------------------------------------------------------
# tune
# ---------------------------------------------------------------------------------------

TUNE_DEFAULTS = {"phonons": ("mdr/mp-149",), "upstream": ("mlearn/Si_training",), "test": ("mlearn/Si_test",)}
TUNE_KEYS = ("epochs", "steps_per_epoch", "k_upstream", "upstream_batch", "phonon_batch", "sampler", "seed",
             "lr", "lr_schedule", "warmup", "lr_floor", "weight_decay", "clip_norm", "ema_decay", "hessian_weight",
             "hessian_loss", "upstream_val_fraction", "select_force_budget", "holdout", "split_seed", "phonons", "upstream",
             "test")  # fmt: skip


def _read_config(path) -> dict:
    """A TOML or YAML file of `pftlite tune` settings (keys as the long options, '-' or '_')."""
    p = Path(path)
    try:
        if p.suffix.lower() == ".toml":
            import tomllib

            data = tomllib.loads(p.read_text())
        else:
            import yaml

            data = yaml.safe_load(p.read_text())
    except Exception as exc:  # noqa: BLE001 - any parse failure is the user's file
        raise InputError(f"{path}: not a readable config ({type(exc).__name__}: {exc})".splitlines()[0]) from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: config must be a table/mapping of settings")
    data = {str(k).replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(set(data) - set(TUNE_KEYS))
    if unknown:
        raise InputError(f"{path}: unknown setting(s) {', '.join(unknown)} (known: {', '.join(TUNE_KEYS)})")
    return data


#: tune settings: key -> (type, check, allowed range as told to the user)
_TUNE_RULES = {
    "epochs": (int, lambda v: v >= 1, "an integer >= 1"),
    "steps_per_epoch": (int, lambda v: v >= 1, "an integer >= 1"),
    "k_upstream": (int, lambda v: v >= 0, "an integer >= 0"),
    "upstream_batch": (int, lambda v: v >= 1, "an integer >= 1"),
    "phonon_batch": (int, lambda v: v >= 1, "an integer >= 1"),
    "sampler": (str, lambda v: v in ("uniform", "symmetry"), "uniform or symmetry"),
    "seed": (int, lambda v: v >= 0, "an integer >= 0"),
    "split_seed": (int, lambda v: v >= 0, "an integer >= 0"),
    "lr": (float, lambda v: 0 < v < 1, "a number in (0, 1)"),
    "lr_schedule": (str, lambda v: v in ("constant", "cosine"), "constant or cosine"),
    "warmup": (float, lambda v: 0 <= v < 1, "a fraction in [0, 1)"),
    "lr_floor": (float, lambda v: 0 <= v <= 1, "a fraction in [0, 1]"),
    "weight_decay": (float, lambda v: v >= 0, "a number >= 0"),
    "clip_norm": (float, lambda v: v >= 0, "a number >= 0 (0 = off)"),
    "ema_decay": (float, lambda v: 0 < v < 1, "a number in (0, 1)"),
    "hessian_weight": (float, lambda v: v >= 0, "a number >= 0"),
    "hessian_loss": (str, lambda v: v in ("mae", "mse"), "mae or mse"),
    "upstream_val_fraction": (float, lambda v: 0 <= v < 1, "a fraction in [0, 1)"),
    "select_force_budget": (float, lambda v: v >= 0, "a number >= 0"),
    "holdout": (float, lambda v: 0 <= v < 1, "a fraction in [0, 1)"),
    "phonons": (list, None, "a list of phonon references"),
    "upstream": (list, None, "a list of labelled data sets (names or files)"),
    "test": (list, None, "a list of labelled data sets (names or files)"),
}


def check_tune_settings(settings: dict, origin: dict) -> dict:
    """Type- and range-check every `pftlite tune` setting in one place; returns the settings
    with their proper types. ``origin[key]``: where it came from (``--flag`` or the config file),
    named in the one-line error with the allowed range."""
    import math
    import numbers

    out = {}
    for key, value in settings.items():
        kind, ok, allowed = _TUNE_RULES[key]
        where = origin.get(key, f"--{key.replace('_', '-')}")
        bad = InputError(f"{where}: {key.replace('_', '-')} must be {allowed}, got {value!r}")
        if kind is list:
            value = [value] if isinstance(value, str) else value
            empty_ok = key != "phonons"  # `test = []`: no test set (overrides a default)
            if not isinstance(value, (list, tuple)) or not (value or empty_ok) or not all(isinstance(v, str) for v in value):
                raise bad
            out[key] = [str(v) for v in value]
            continue
        if kind is int:
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise bad
            value = int(value)
        elif kind is float:
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise bad
            value = float(value)
        elif not isinstance(value, str):
            raise bad
        if not ok(value):
            raise bad
        out[key] = value
    return out


def _prepare_run_dir(run_dir: Path, restart: bool) -> None:
    """Create a training run folder; ``restart`` drops its checkpoint (else a rerun resumes)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if restart and (run_dir / "checkpoint.npz").exists():
        (run_dir / "checkpoint.npz").unlink()


def _write_log_csv(path: Path, rows: list[dict], cols: list[str]) -> None:
    """One CSV line per training update (columns ``cols``; missing values empty), atomically."""
    from .atomic import atomic_path

    lines = [",".join(cols)] + [",".join("" if r.get(c) is None else str(r.get(c)) for c in cols) for r in rows]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


@contextlib.contextmanager
def _epoch_bar(label: str, n_epochs: int, describe):
    """A stderr progress bar advanced once per finished epoch; yields the ``progress(epoch,
    step, n_steps, row)`` callback of :func:`pftlite.tune.tune` / ``fit_gradient``;
    ``describe(epoch, row)`` is the text shown beside it."""
    with click.progressbar(length=n_epochs, label=label, file=sys.stderr, item_show_func=lambda s: s or "") as bar:
        last = {"epoch": None}

        def progress(epoch, step, n_steps, row):
            if step == n_steps - 1 and last["epoch"] != epoch:
                last["epoch"] = epoch
                bar.update(1, describe(epoch, row))

        yield progress


def _tune_table(rows: dict) -> str:
    head = (f"{'':<22}{'ω_max K':>10}{'ΔS':>9}{'ΔF':>9}{'ΔC_V':>9}{'fc RMSE':>9}{'freq MAE':>10}"
            f"{'test E meV/at':>15}{'test F eV/Å':>13}")  # fmt: skip
    lines = [head, "-" * len(head)]
    for label, r in rows.items():
        e = r.get("errors") or {}
        t = r.get("test") or {}
        lines.append(
            f"{label:<22}{_fmt(e.get('omega_max_K'), '+.1f'):>10}{_fmt(e.get('S'), '+.3f'):>9}"
            f"{_fmt(e.get('F'), '+.3f'):>9}{_fmt(e.get('C_V'), '+.3f'):>9}{_fmt(e.get('fc_rmse'), '.4f'):>9}"
            f"{_fmt(e.get('freq_mae_THz'), '.3f'):>10}"
            f"{_fmt(t.get('energy', {}).get('mae', None) and 1e3 * t['energy']['mae'], '.2f'):>15}"
            f"{_fmt(t.get('forces', {}).get('mae'), '.3g'):>13}"
        )
    return "\n".join(lines)


@main.command()
@click.argument("model", required=False, default="si-mlearn")
@click.option("--phonons", "phonon_refs", multiple=True,
              help="DFT phonon references (MDR yaml, phonopy folder/yaml, dataset name). "
                   "Default for the built-in si-mlearn: mdr/mp-149.")  # fmt: skip
@click.option("--upstream", multiple=True, help="Upstream E/F/S data for co-training (extxyz, mlearn JSON, dataset "
              "name). Default for si-mlearn: mlearn/Si_training.")  # fmt: skip
@click.option("--test", "test_data", multiple=True, help="Held-out E/F/S data for the before/after table "
              "(default for si-mlearn: mlearn/Si_test).")  # fmt: skip
@click.option("--output", "-o", "run_dir", type=click.Path(file_okay=False),
              help="Run folder (default tune-<model>): checkpoint, logs, loss.png, tuned.npz.")  # fmt: skip
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML or YAML settings file; flags win.")
@click.option("--epochs", type=int, help="Epochs [20].")
@click.option("--steps-per-epoch", type=int, help="Phonon steps per epoch [one pass over the upstream data].")
@click.option("--k-upstream", type=int, help="Upstream batches per phonon batch; 0 = no co-training [4].")
@click.option("--upstream-batch", type=int, help="Structures per upstream batch [8].")
@click.option("--phonon-batch", type=int, help="Phonon structures per step [1].")
@click.option("--sampler", type=click.Choice(["uniform", "symmetry"]), help="Hessian-column sampler [uniform].")
@click.option("--seed", type=int, help="Seed of every random choice [0].")
@click.option("--lr", type=float, help="AdamW step size (peak of a schedule) [3e-4].")
@click.option("--lr-schedule", type=click.Choice(["constant", "cosine"]),
              help="Step size after the warmup: constant, or cosine decay to --lr-floor x lr [constant].")  # fmt: skip
@click.option("--warmup", type=float, help="Share of all updates with a linear warmup to --lr [0].")
@click.option("--lr-floor", type=float, help="Final step size of the cosine schedule, as a share of --lr [0].")
@click.option("--weight-decay", type=float, help="Decoupled weight decay [0].")
@click.option("--clip-norm", type=float, help="Global gradient-norm clip [10].")
@click.option("--ema-decay", type=float, help="EMA decay per update [0.99].")
@click.option("--hessian-weight", type=float, help="Weight of the Hessian-column term on phonon data [100].")
@click.option("--hessian-loss", type=click.Choice(["mae", "mse"]),
              help="Hessian-column error: per-component MAE (published recipe) or MSE, eV/Å² [mae].")  # fmt: skip
@click.option("--upstream-val-fraction", type=float, help="Held-out share of the upstream data [0.1].")
@click.option("--select-force-budget", type=float, help="Keep the best-Hessian EMA among the epochs whose upstream "
              "validation force MAE is at most (1 + this) x the base model's; 0 = best Hessian only [0].")  # fmt: skip
@click.option("--holdout", type=float, help="Seeded share of the upstream structures moved to the test data, as "
              "`pftlite fit --holdout` (same split for the same data and --split-seed) [0].")  # fmt: skip
@click.option("--split-seed", type=int, help="Seed of the --holdout split [0].")
@click.option("--restart", is_flag=True, help="Ignore an existing checkpoint in the run folder.")
@click.option("--evaluate/--no-evaluate", default=True, show_default=True,
              help="Before/after phonon benchmark (MDR protocol) and upstream test errors.")  # fmt: skip
@BACKEND_OPTION
@user_errors
def tune(model, phonon_refs, upstream, test_data, run_dir, config_file, restart, evaluate, backend, **flags):
    """Phonon fine-tuning of MODEL: one sampled DFT Hessian column per phonon structure per step
    (one HVP), co-trained on upstream energies/forces/stresses. Resumes from the run folder's
    checkpoint. With no arguments: the built-in si-mlearn on mdr/mp-149 + mlearn Si."""
    import dataclasses

    from .model import save_model
    from .optim import AdamWConfig
    from .phonon_runs import file_sha256, write_json
    from .phonons import PhononProtocol, reference_properties
    from .phonons import evaluate as evaluate_material
    from .registry import get_backend
    from .tune import TuneConfig, phonon_items
    from .tune import tune as run_tune

    settings = _read_config(config_file) if config_file else {}
    origin = {k: f"{config_file}" for k in settings}
    given = {k: v for k, v in flags.items() if v is not None}
    settings.update(given)
    origin.update({k: f"--{k.replace('_', '-')}" for k in given})
    lists = {"phonons": phonon_refs, "upstream": upstream, "test": test_data}
    for k, v in lists.items():
        if v:
            settings[k] = list(v)
            origin[k] = f"--{k}"
    settings = check_tune_settings(settings, origin)
    model_path = resolve_model(model)
    if model_path.stem in ("si-mlearn", "si-mlearn-mlp"):  # the built-in Si models: their data
        for k, v in TUNE_DEFAULTS.items():
            settings.setdefault(k, list(v))
    if not settings.get("phonons"):
        raise InputError("tune: no phonon data (--phonons)")
    spec, params, meta = _load(model)
    be = get_backend(backend)
    base = TuneConfig()
    opt = AdamWConfig(lr=float(settings.get("lr", 3e-4)), weight_decay=float(settings.get("weight_decay", 0.0)),
                      clip_norm=float(settings.get("clip_norm", 10.0)),
                      schedule=str(settings.get("lr_schedule", "constant")), warmup=float(settings.get("warmup", 0.0)),
                      lr_floor=float(settings.get("lr_floor", 0.0)))  # fmt: skip
    plain = ("epochs", "steps_per_epoch", "k_upstream", "upstream_batch", "phonon_batch", "sampler", "seed",
             "ema_decay", "upstream_val_fraction", "select_force_budget")  # fmt: skip
    cfg = dataclasses.replace(
        base,
        **{k: settings[k] for k in plain if k in settings},
        optimizer=opt,
        phonon_loss=dataclasses.replace(base.phonon_loss, hessian=float(settings.get("hessian_weight", 100.0)),
                                        hessian_kind=str(settings.get("hessian_loss", "mae"))),
    )
    if cfg.epochs < 1 or cfg.k_upstream < 0 or cfg.upstream_batch < 1 or cfg.phonon_batch < 1 or opt.lr <= 0:
        raise InputError("tune: epochs, upstream/phonon batch and lr must be positive, k-upstream >= 0")
    if cfg.phonon_loss.hessian_kind not in ("mae", "mse"):
        raise InputError(f"tune: hessian-loss must be mae or mse, got {cfg.phonon_loss.hessian_kind!r}")
    if opt.schedule not in ("constant", "cosine") or not (0.0 <= opt.warmup < 1.0 and 0.0 <= opt.lr_floor <= 1.0):
        raise InputError(f"tune: lr-schedule must be constant or cosine, warmup in [0, 1), lr-floor in [0, 1] "
                         f"(got {opt.schedule}, {opt.warmup}, {opt.lr_floor})")  # fmt: skip
    refs = _load_references(settings["phonons"], spec)
    up = _read_labelled(settings["upstream"], spec, "energy", "forces", "stress") if settings.get("upstream") else []
    test = _read_labelled(settings["test"], spec, "energy", "forces", "stress") if settings.get("test") else []
    holdout = {"fraction": float(settings.get("holdout", 0.0)), "seed": int(settings.get("split_seed", 0))}
    if holdout["fraction"]:
        from .fit import holdout_split

        if not 0.0 < holdout["fraction"] < 1.0 or not up:
            raise InputError(f"tune: --holdout must be in [0, 1) and needs --upstream data, got {holdout['fraction']}")
        tr, te = holdout_split(len(up), holdout["fraction"], holdout["seed"])
        holdout["test"] = te.tolist()
        up, test = [up[i] for i in tr], [up[i] for i in te] + test
    if cfg.k_upstream and not up:
        raise InputError("tune: --k-upstream > 0 needs --upstream data (or set --k-upstream 0)")
    run_dir = check_output(run_dir or f"tune-{model_path.stem}", "--output", folder=True)
    _prepare_run_dir(run_dir, restart)
    items = phonon_items(refs)
    click.echo(f"tune {model_path.name}: {len(items)} phonon structure(s) "
               f"({', '.join(f'{it.name} {len(it.atoms)} atoms' for it in items)}), {len(up)} upstream, "
               f"sampler {cfg.sampler}, K={cfg.k_upstream}, backend {backend} -> {run_dir}/", err=True)  # fmt: skip
    t0 = time.perf_counter()
    with _resume_hint(run_dir), _epoch_bar("tuning", cfg.epochs, lambda ep, row: f"epoch {ep} hessian {row.get('hessian', float('nan')):.4f}") as progress:
        state = run_tune(spec, params, be, items, up, cfg, run_dir=run_dir, progress=progress)
    dt = time.perf_counter() - t0
    tuned = state["best"]
    # logs
    _write_log_csv(run_dir / "log.csv", state["log"], ["epoch", "step", "update", "kind", "loss", "energy", "forces", "stress", "hessian", "grad_norm"])
    record = {"config": cfg.to_dict(), "data": {k: [str(x) for x in settings.get(k, [])] for k in lists},
              "split": state["split"], "holdout": holdout, "steps_per_epoch": state["steps_per_epoch"],
              "best_epoch": state["best_epoch"],
              "best_phonon_loss": state["best_loss"], "val_log": state["val_log"], "seconds": dt,
              "base_model": {"path": str(model_path), "sha256": file_sha256(model_path)}, "backend": backend}  # fmt: skip
    write_json(run_dir / "log.json", record)
    try:
        from .plots import plot_training

        plot_training(state["log"], state["val_log"], run_dir / "loss.png", title=f"PFT of {model_path.stem}")
    except InputError:
        pass  # no matplotlib: the CSV/JSON logs stay
    meta = dict(meta)
    keep = ("config", "data", "split", "holdout", "best_epoch", "best_phonon_loss", "base_model", "backend")
    provenance = {"command": "tune", **{k: record[k] for k in keep}, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    meta.setdefault("history", []).append(provenance)
    out_model = run_dir / "tuned.npz"
    save_model(out_model, spec, tuned, meta)
    click.echo(f"{cfg.epochs} epochs x {state['steps_per_epoch']} phonon steps in {dt:.1f} s; best EMA at epoch "
               f"{state['best_epoch']} (full-Hessian {cfg.phonon_loss.hessian_kind.upper()} "
               f"{state['val_log'][0]['phonon_loss']:.4f} -> {state['best_loss']:.4f} "
               f"{'eV/Å²' if cfg.phonon_loss.hessian_kind == 'mae' else '(eV/Å²)²'}); wrote {out_model}")  # fmt: skip
    if evaluate:
        from .fit import errors

        rows, curves = {}, {ref.name: {} for ref in refs}
        protocol = PhononProtocol()
        dft = {ref.name: reference_properties(ref, protocol) for ref in refs}  # once per reference
        for label, prm in (("base", params), ("tuned", tuned)):
            for ref in refs:
                r = evaluate_material(spec, prm, backend, ref, protocol, keep=True, dft=dft[ref.name])
                phs = r.pop("_phonopy")
                curves[ref.name].setdefault("DFT", phs["DFT"])
                if "model" in phs:
                    curves[ref.name][label] = phs["model"]
                r["test"] = errors(spec, prm, test, be) if test else {}
                rows[f"{label} {ref.name}"] = r
        click.echo(_tune_table(rows))
        try:
            from .plots import plot_bands_dos

            for name, phs in curves.items():
                plot_bands_dos(phs, run_dir / f"bands-{name}.png", title=f"{name}: DFT, base and tuned {model_path.stem}")
        except InputError:
            pass  # no matplotlib
        click.echo("errors model - DFT at 300 K: ω_max K, S and C_V J/K/mol, F kJ/mol; fc RMSE eV/Å², "
                   "freq MAE THz at commensurate q; test: upstream held-out MAE")  # fmt: skip
        write_json(run_dir / "evaluation.json", rows)


# ---------------------------------------------------------------------------------------
# kappa (own module; registered here so `pftlite.cli:main` holds every command)
# ---------------------------------------------------------------------------------------

from .cli_kappa import kappa as _kappa_command

main.add_command(_kappa_command)


if __name__ == "__main__":
    main()
