"""``pftlite phonons``: the MDR phonon benchmark of a model against DFT references."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from pftlite.cli.common import (
    BACKEND_OPTION,
    OneLineCommand,
    fmt_value,
    load_model_arg,
    load_references,
    parse_floats,
    progress_line_or_bar,
    user_errors,
)
from pftlite.core.atomic import check_output
from pftlite.core.errors import InputError
from pftlite.potentials.files import resolve_model


def _mesh(text: str):
    vals = parse_floats(text, "--mesh")
    if len(vals) == 1 and vals[0] > 0:
        return vals[0]
    if len(vals) == 3 and all(v >= 1 and v == int(v) for v in vals):
        return tuple(int(v) for v in vals)
    raise InputError(f"--mesh: a length in Å or 3 positive integers, got {text!r}")






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
            f"{fmt_value(e.get('S'), signed=True):>12}{fmt_value(e.get('F'), signed=True):>11}"
            f"{fmt_value(e.get('C_V'), signed=True):>9}{fmt_value(e.get('fc_rmse'), '.4f'):>9}"
            f"{fmt_value(r.get('seconds'), '.1f'):>8}"
        )
        if not ok:
            lines.append(f"{'':<14}failed: {r.get('reason', '')}")
    m = summary["mae"]
    lines.append("-" * len(head))
    lines.append(
        f"{'MAE':<32}{fmt_value(m['omega_max_K'], '.1f'):>28}{fmt_value(m['S']):>12}{fmt_value(m['F']):>11}"
        f"{fmt_value(m['C_V']):>9}"
    )
    lines.append(
        f"{summary['n_ok']} of {summary['n_materials']} evaluated, {summary['n_failed']} failed, "
        f"{summary['stability_disagreements']} stability disagreement(s); "
        f"T = {summary['protocol']['thermo']['report_temperature']:g} K"
    )
    return "\n".join(lines)


@click.command(cls=OneLineCommand)
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
    from pftlite.phonons.mdr import PhononProtocol
    from pftlite.phonons.relax import RelaxSettings
    from pftlite.phonons.runs import run_set
    from pftlite.phonons.thermo import ThermoSettings

    pot = load_model_arg(model)
    backend = pot.on(backend).backend  # the model's default if not given; fails early if not offered
    temps = tuple(parse_floats(temperatures, "--temperatures"))
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
        from pftlite.core.plotting import require_matplotlib

        require_matplotlib()  # before any work: one-line error without matplotlib
    model_path = resolve_model(model)
    refs = load_references(references, pot)  # files, folders or dataset names
    out_dir = check_output(out_dir or f"phonons-{model_path.stem}", "--output", folder=True)
    click.echo(f"{len(refs)} material(s), model {model_path.name}, backend {backend}, "
               f"fc {fc_method}, relax {'on' if relax else 'off'} -> {out_dir}/", err=True)  # fmt: skip
    for ref in refs:
        if relax and ref.pressure_GPa:
            click.echo(f"{ref.name}: the DFT cell was relaxed under {ref.pressure_GPa:g} GPa; the MDR protocol "
                       "relaxes at zero pressure, so the cell differs (--no-relax compares at the DFT geometry)",
                       err=True)  # fmt: skip
    with progress_line_or_bar(len(refs), "phonons", item_show_func=lambda s: s or "") as bar:

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
