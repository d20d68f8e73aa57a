"""``pftlite predict``: energies, forces and stresses of structures."""

from __future__ import annotations

import json
import time

import click
import numpy as np

from pftlite.cli.common import BACKEND_OPTION, OneLineCommand, load_model_arg, read_all, user_errors
from pftlite.core.atomic import check_output
from pftlite.core.errors import InputError


@click.command(cls=OneLineCommand)
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

    from pftlite.core.atomic import atomic_path
    from pftlite.structures.batch import make_batch

    pot = load_model_arg(model)
    ev = pot.on(backend)
    backend = ev.backend
    structs, names = read_all(structures, pot)
    if output and not output.endswith((".json", ".xyz", ".extxyz")):
        raise InputError(f"{output}: output must end in .json, .xyz or .extxyz")
    if output:
        check_output(output, "--output", force=force)
    results = []
    t0 = time.perf_counter()
    for a, name in zip(structs, names):
        out = ev.energy_forces_stress(make_batch([a], pot, sources=[name]))
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
