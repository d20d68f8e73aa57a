"""``pftlite tune``: phonon fine-tuning (PFT) with co-training, resumable."""

from __future__ import annotations

import time
from pathlib import Path

import click

from pftlite.cli.common import (
    BACKEND_OPTION,
    OneLineCommand,
    epoch_bar,
    fmt_value,
    load_model_arg,
    load_references,
    prepare_run_dir,
    read_all,
    read_labelled,
    resume_hint,
    user_errors,
    write_log_csv,
)
from pftlite.core.atomic import check_output
from pftlite.core.errors import InputError
from pftlite.core.memory import executable_drops
from pftlite.potentials.files import resolve_model

TUNE_DEFAULTS = {"phonons": ("mdr/mp-149",), "upstream": ("mlearn/Si_training",), "test": ("mlearn/Si_test",)}
TUNE_KEYS = ("epochs", "steps_per_epoch", "k_upstream", "upstream_batch", "phonon_batch", "sampler", "seed",
             "lr", "lr_schedule", "warmup", "lr_floor", "weight_decay", "clip_norm", "ema_decay", "hessian_weight",
             "hessian_loss", "upstream_val_fraction", "select_force_budget", "holdout", "split_seed", "phonons", "upstream",
             "test", "upstream_loss", "huber_delta", "upstream_weights", "phonon_weights", "distill", "distill_rattle",
             "distill_strain", "distill_from", "distill_phonons", "upstream_shapes")  # fmt: skip


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
    "distill": (int, lambda v: v >= 0, "an integer >= 0"),
    "distill_rattle": (float, lambda v: 0 <= v < 1, "a number in [0, 1) (Å)"),
    "distill_strain": (float, lambda v: 0 <= v < 0.2, "a number in [0, 0.2)"),
    "holdout": (float, lambda v: 0 <= v < 1, "a fraction in [0, 1)"),
    "upstream_loss": (str, lambda v: v in ("mse", "mae", "huber"), "mse, mae or huber"),
    "huber_delta": (float, lambda v: v > 0, "a number > 0 (eV/atom, eV/Å, eV/Å³)"),
    "upstream_weights": ("weights", None, "three numbers >= 0: energy, forces, stress"),
    "phonon_weights": ("weights", None, "three numbers >= 0: energy, forces, stress"),
    "phonons": (list, None, "a list of phonon references"),
    "upstream": (list, None, "a list of labelled data sets (names or files)"),
    "test": (list, None, "a list of labelled data sets (names or files)"),
    "distill_from": (list, None, "a list of structure files"),
    "distill_phonons": (bool, None, "true or false"),
    "upstream_shapes": (int, lambda v: v >= 0, "an integer >= 0"),
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
        if kind == "weights":
            if not isinstance(value, (list, tuple)) or len(value) != 3 or not all(
                isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) and v >= 0 for v in value
            ):
                raise bad
            out[key] = [float(v) for v in value]
            continue
        if kind is bool:
            if not isinstance(value, bool):
                raise bad
            out[key] = value
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


def _weights(w) -> dict:
    """[E, F, S] of a config -> LossSpec fields (none given: keep the defaults)."""
    return {} if w is None else {"energy": w[0], "forces": w[1], "stress": w[2]}


def _tune_table(rows: dict) -> str:
    head = (f"{'':<22}{'ω_max K':>10}{'ΔS':>9}{'ΔF':>9}{'ΔC_V':>9}{'fc RMSE':>9}{'freq MAE':>10}"
            f"{'test E meV/at':>15}{'test F eV/Å':>13}")  # fmt: skip
    lines = [head, "-" * len(head)]
    for label, r in rows.items():
        e = r.get("errors") or {}
        t = r.get("test") or {}
        lines.append(
            f"{label:<22}{fmt_value(e.get('omega_max_K'), '+.1f'):>10}{fmt_value(e.get('S'), '+.3f'):>9}"
            f"{fmt_value(e.get('F'), '+.3f'):>9}{fmt_value(e.get('C_V'), '+.3f'):>9}{fmt_value(e.get('fc_rmse'), '.4f'):>9}"
            f"{fmt_value(e.get('freq_mae_THz'), '.3f'):>10}"
            f"{fmt_value(t.get('energy', {}).get('mae', None) and 1e3 * t['energy']['mae'], '.2f'):>15}"
            f"{fmt_value(t.get('forces', {}).get('mae'), '.3g'):>13}"
        )
    return "\n".join(lines)


def _with_pressures(refs, given):
    """``--phonon-pressure NAME=GPA`` values set on the references named (checked: every NAME
    names one of them, GPA is a finite number)."""
    import dataclasses
    import math

    out = {r.name: r for r in refs}
    for text in given:
        name, sep, value = text.partition("=")
        try:
            p = float(value) if sep else math.nan
        except ValueError:
            p = math.nan
        if not math.isfinite(p):
            raise InputError(f"--phonon-pressure: expected NAME=GPA, got {text!r}")
        if name not in out:
            raise InputError(f"--phonon-pressure: {name!r} is none of the --phonons references "
                             f"({', '.join(out)})")  # fmt: skip
        out[name] = dataclasses.replace(out[name], pressure_GPa=p)
    return [out[r.name] for r in refs]


@click.command(cls=OneLineCommand)
@click.argument("model", required=False, default="si-mlearn")
@click.option("--phonons", "phonon_refs", multiple=True,
              help="DFT phonon references (MDR yaml, phonopy folder/yaml, dataset name). "
                   "Default for the built-in si-mlearn: mdr/mp-149.")  # fmt: skip
@click.option("--upstream", multiple=True, help="Upstream E/F/S data for co-training (extxyz, mlearn JSON, dataset "
              "name). Default for si-mlearn: mlearn/Si_training.")  # fmt: skip
@click.option("--test", "test_data", multiple=True, help="Held-out E/F/S data for the before/after table "
              "(default for si-mlearn: mlearn/Si_test).")  # fmt: skip
@click.option("--output", "-o", "run_dir", type=click.Path(file_okay=False),
              help="Run folder (default tune-<model>): checkpoint, logs, loss.png, tuned.npz (tuned.nqx for Nequix).")  # fmt: skip
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
@click.option("--distill", type=int, help="Self-distillation: this many rattled and strained copies of the phonon "
              "supercells, labelled (E/F/S) by the frozen base model, added to the co-training data; cached "
              "under the base model's fingerprint [0].")  # fmt: skip
@click.option("--distill-from", "distill_from", multiple=True, metavar="FILE",
              help="Structures (any file ASE reads) whose rattled/strained copies join the phonon supercells' in "
                   "--distill; repeatable.")  # fmt: skip
@click.option("--distill-phonons/--no-distill-phonons", "distill_phonons", default=None,
              help="Whether the phonon supercells are --distill seeds [yes]. Small rattles of them carry the base "
                   "model's Hessian (F = -H u + O(u^2)), the very thing the phonon data corrects; --no-distill-phonons "
                   "keeps only the --distill-from structures.")  # fmt: skip
@click.option("--distill-rattle", type=float, help="Std of the copies' atomic displacements, Å [0.05].")
@click.option("--distill-strain", type=float, help="Std of the copies' symmetric strain [0.01].")
@click.option("--upstream-shapes", type=int, help="Padding backends (Nequix on JAX): at most this many padded "
              "(atoms, edges) shapes, one compile each, planned for all upstream batches with the least padding; "
              "0 = a size bucket per batch [4].")  # fmt: skip
@click.option("--phonon-pressure", "phonon_pressure", multiple=True, metavar="NAME=GPA",
              help="A --phonons reference whose DFT cell was relaxed under this pressure (GPa): its stress label is "
                   "-p I, not 0; repeatable. Registered datasets carry theirs (phonopy/SiO2-HP: 40).")  # fmt: skip
@click.option("--restart", is_flag=True, help="Ignore an existing checkpoint in the run folder.")
@click.option("--evaluate/--no-evaluate", default=True, show_default=True,
              help="Before/after phonon benchmark (MDR protocol) and upstream test errors.")  # fmt: skip
@BACKEND_OPTION
@user_errors
def tune(model, phonon_refs, upstream, test_data, distill_from, run_dir, config_file, restart, evaluate, backend,
         phonon_pressure=(), **flags):  # fmt: skip
    """Phonon fine-tuning of MODEL: one sampled DFT Hessian column per phonon structure per step
    (one HVP), co-trained on upstream energies/forces/stresses. Resumes from the run folder's
    checkpoint. With no arguments: the built-in si-mlearn on mdr/mp-149 + mlearn Si."""
    import dataclasses

    from pftlite.phonons.mdr import PhononProtocol, reference_properties
    from pftlite.phonons.mdr import evaluate as evaluate_material
    from pftlite.phonons.runs import file_sha256, write_json
    from pftlite.potentials.base import Potential
    from pftlite.potentials.files import save_potential
    from pftlite.training.optim import AdamWConfig
    from pftlite.training.tune import TuneConfig, phonon_items
    from pftlite.training.tune import tune as run_tune

    settings = _read_config(config_file) if config_file else {}
    origin = {k: f"{config_file}" for k in settings}
    given = {k: v for k, v in flags.items() if v is not None}
    settings.update(given)
    origin.update({k: f"--{k.replace('_', '-')}" for k in given})
    lists = {"phonons": phonon_refs, "upstream": upstream, "test": test_data, "distill_from": distill_from}
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
    pot = load_model_arg(model)
    meta = pot.metadata
    backend = pot.on(backend).backend  # the model's default if not given; fails early if not offered
    base = TuneConfig()
    opt = AdamWConfig(lr=float(settings.get("lr", 3e-4)), weight_decay=float(settings.get("weight_decay", 0.0)),
                      clip_norm=float(settings.get("clip_norm", 10.0)),
                      schedule=str(settings.get("lr_schedule", "constant")), warmup=float(settings.get("warmup", 0.0)),
                      lr_floor=float(settings.get("lr_floor", 0.0)))  # fmt: skip
    plain = ("epochs", "steps_per_epoch", "k_upstream", "upstream_batch", "phonon_batch", "sampler", "seed",
             "ema_decay", "upstream_val_fraction", "select_force_budget", "upstream_shapes")  # fmt: skip
    cfg = dataclasses.replace(
        base,
        **{k: settings[k] for k in plain if k in settings},
        optimizer=opt,
        phonon_loss=dataclasses.replace(base.phonon_loss, hessian=float(settings.get("hessian_weight", 100.0)),
                                        hessian_kind=str(settings.get("hessian_loss", "mae")),
                                        **_weights(settings.get("phonon_weights"))),  # fmt: skip
        upstream_loss=dataclasses.replace(base.upstream_loss, kind=str(settings.get("upstream_loss", "mse")),
                                          delta=float(settings.get("huber_delta", base.upstream_loss.delta)),
                                          **_weights(settings.get("upstream_weights"))),  # fmt: skip
    )
    if cfg.epochs < 1 or cfg.k_upstream < 0 or cfg.upstream_batch < 1 or cfg.phonon_batch < 1 or opt.lr <= 0:
        raise InputError("tune: epochs, upstream/phonon batch and lr must be positive, k-upstream >= 0")
    if cfg.phonon_loss.hessian_kind not in ("mae", "mse"):
        raise InputError(f"tune: hessian-loss must be mae or mse, got {cfg.phonon_loss.hessian_kind!r}")
    if opt.schedule not in ("constant", "cosine") or not (0.0 <= opt.warmup < 1.0 and 0.0 <= opt.lr_floor <= 1.0):
        raise InputError(f"tune: lr-schedule must be constant or cosine, warmup in [0, 1), lr-floor in [0, 1] "
                         f"(got {opt.schedule}, {opt.warmup}, {opt.lr_floor})")  # fmt: skip
    refs = _with_pressures(load_references(settings["phonons"], pot), phonon_pressure)
    up = read_labelled(settings["upstream"], pot, "energy", "forces", "stress") if settings.get("upstream") else []
    test = read_labelled(settings["test"], pot, "energy", "forces", "stress") if settings.get("test") else []
    holdout = {"fraction": float(settings.get("holdout", 0.0)), "seed": int(settings.get("split_seed", 0))}
    if holdout["fraction"]:
        from pftlite.training.fit import holdout_split

        if not 0.0 < holdout["fraction"] < 1.0 or not up:
            raise InputError(f"tune: --holdout must be in [0, 1) and needs --upstream data, got {holdout['fraction']}")
        tr, te = holdout_split(len(up), holdout["fraction"], holdout["seed"])
        holdout["test"] = te.tolist()
        up, test = [up[i] for i in tr], [up[i] for i in te] + test
    n_distill = int(settings.get("distill", 0))
    if cfg.k_upstream and not up and not n_distill:
        raise InputError("tune: --k-upstream > 0 needs --upstream data or --distill N (or set --k-upstream 0)")
    if settings.get("distill_from") and not n_distill:
        raise InputError("--distill-from: needs --distill N > 0 (the number of labelled copies)")
    if settings.get("distill_phonons") is False and not settings.get("distill_from"):
        raise InputError("--no-distill-phonons: needs --distill-from FILE (the seeds of the --distill copies)")
    extra = read_all(settings["distill_from"], pot)[0] if settings.get("distill_from") else []
    run_dir = check_output(run_dir or f"tune-{model_path.stem}", "--output", folder=True)
    prepare_run_dir(run_dir, restart)
    items = phonon_items(refs)
    for it in items:
        if it.pressure_GPa:
            click.echo(f"{it.name}: DFT cell relaxed under {it.pressure_GPa:g} GPa: stress label -p I", err=True)
    distill = None
    if n_distill:
        from pftlite.training.distill import distillation_set

        seeds = [it.atoms for it in items] if settings.get("distill_phonons", True) else []
        labelled, distill = distillation_set(pot, backend, seeds + extra, n=n_distill,
                                             rattle=float(settings.get("distill_rattle", 0.05)),
                                             strain=float(settings.get("distill_strain", 0.01)),
                                             seed=int(settings.get("seed", 0)))  # fmt: skip
        distill["phonon_seeds"] = bool(seeds)
        up = up + labelled
        click.echo(f"self-distillation: {len(labelled)} copies labelled by the base model "
                   f"({'cache' if distill['from_cache'] else 'computed'}: {distill['file']})", err=True)  # fmt: skip
    click.echo(f"tune {model_path.name}: {len(items)} phonon structure(s) "
               f"({', '.join(f'{it.name} {len(it.atoms)} atoms' for it in items)}), {len(up)} upstream, "
               f"sampler {cfg.sampler}, K={cfg.k_upstream}, backend {backend} -> {run_dir}/", err=True)  # fmt: skip
    t0 = time.perf_counter()
    with resume_hint(run_dir), epoch_bar("tuning", cfg.epochs, lambda row: f"hessian {row.get('hessian', float('nan')):.4f}") as progress:
        state = run_tune(pot, backend, items, up, cfg, run_dir=run_dir, progress=progress,
                         data_key=distill["key"] if distill else None)  # fmt: skip
    dt = time.perf_counter() - t0
    tuned = pot.with_params(state["best"])
    # logs
    write_log_csv(run_dir / "log.csv", state["log"], ["epoch", "step", "update", "kind", "loss", "energy", "forces", "stress", "hessian", "grad_norm"])
    record = {"config": cfg.to_dict(), "data": {k: [str(x) for x in settings.get(k, [])] for k in lists},
              "split": state["split"], "holdout": holdout, "steps_per_epoch": state["steps_per_epoch"],
              "best_epoch": state["best_epoch"],
              "best_phonon_loss": state["best_loss"], "val_log": state["val_log"], "seconds": dt,
              "base_model": {"path": str(model_path), "sha256": file_sha256(model_path)}, "backend": backend,
              "distill": distill, "upstream_shapes": state.get("upstream_shapes"),
              "executable_drops": executable_drops()}  # fmt: skip
    if test:
        from pftlite.training.distill import energy_drift

        record["energy_drift_meV_per_atom"] = energy_drift(pot, tuned, backend, test)
        d = record["energy_drift_meV_per_atom"]["all"]
        click.echo(f"energy drift tuned - base on the test data: mean {d['mean']:+.2f} meV/atom, "
                   f"max |{d['max_abs']:.2f}| over {d['n']} structures", err=True)  # fmt: skip
    write_json(run_dir / "log.json", record)
    try:
        from pftlite.training.plots import plot_training

        plot_training(state["log"], state["val_log"], run_dir / "loss.png", title=f"PFT of {model_path.stem}")
    except InputError:
        pass  # no matplotlib: the CSV/JSON logs stay
    meta = dict(meta)
    keep = ("config", "data", "split", "holdout", "best_epoch", "best_phonon_loss", "base_model", "backend", "distill")
    provenance = {"command": "tune", **{k: record[k] for k in keep}, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    meta.setdefault("history", []).append(provenance)
    out_model = run_dir / ("tuned.nqx" if pot.kind == "nequix" else "tuned.npz")  # nequix reads .nqx back
    save_potential(out_model, Potential(tuned.spec, tuned.params, meta))
    click.echo(f"{cfg.epochs} epochs x {state['steps_per_epoch']} phonon steps in {dt:.1f} s; best EMA at epoch "
               f"{state['best_epoch']} (full-Hessian {cfg.phonon_loss.hessian_kind.upper()} "
               f"{state['val_log'][0]['phonon_loss']:.4f} -> {state['best_loss']:.4f} "
               f"{'eV/Å²' if cfg.phonon_loss.hessian_kind == 'mae' else '(eV/Å²)²'}); wrote {out_model}")  # fmt: skip
    if state.get("upstream_shapes"):
        click.echo("upstream padded shapes (atoms, edges): " + ", ".join(f"{a}x{e}" for a, e in state["upstream_shapes"]),
                   err=True)  # fmt: skip
    if evaluate:
        from pftlite.training.metrics import errors

        rows, curves = {}, {ref.name: {} for ref in refs}
        protocol = PhononProtocol()
        dft = {ref.name: reference_properties(ref, protocol) for ref in refs}  # once per reference
        for label, prm in (("base", pot), ("tuned", tuned)):
            for ref in refs:
                r = evaluate_material(prm, backend, ref, protocol, keep=True, dft=dft[ref.name])
                phs = r.pop("_phonopy")
                curves[ref.name].setdefault("DFT", phs["DFT"])
                if "model" in phs:
                    curves[ref.name][label] = phs["model"]
                r["test"] = errors(prm, test, backend) if test else {}
                rows[f"{label} {ref.name}"] = r
        click.echo(_tune_table(rows))
        try:
            from pftlite.phonons.plots import plot_bands_dos

            for name, phs in curves.items():
                plot_bands_dos(phs, run_dir / f"bands-{name}.png", title=f"{name}: DFT, base and tuned {model_path.stem}")
        except InputError:
            pass  # no matplotlib
        click.echo("errors model - DFT at 300 K: ω_max K, S and C_V J/K/mol, F kJ/mol; fc RMSE eV/Å², "
                   "freq MAE THz at commensurate q; test: upstream held-out MAE")  # fmt: skip
        write_json(run_dir / "evaluation.json", rows)
