"""``pftlite init``: a new, untrained model file from hyperparameters and species."""

from __future__ import annotations

import time
from pathlib import Path

import click

from pftlite import __version__
from pftlite.cli.common import OneLineCommand, parse_floats, user_errors
from pftlite.core.atomic import check_output
from pftlite.core.errors import InputError

#: refuse descriptor tables estimated to take longer than this to build (s; --no-size-check)
MAX_BUILD_SECONDS = 300.0


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


@click.command(cls=OneLineCommand)
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
@click.option("--kind", type=click.Choice(["manybody", "pair"]), default="manybody", show_default=True,
              help="Potential family: the built-in many-body model, or a Morse pair potential (jax backend; "
                   "uses --species, --r-cut, --e0 and --morse only).")  # fmt: skip
@click.option("--morse", default="1.0,1.5,2.5", show_default=True,
              help="kind=pair: D (eV), alpha (1/Å), r0 (Å) of every species pair.")
@click.option("--force", is_flag=True, help="Overwrite an existing model file.")
@click.option("--no-size-check", is_flag=True, help="Go ahead even if the descriptor tables are estimated too big or slow.")
@user_errors
def init(model, species, r_cut, n_radial, l_max, n_radial_4b, l_max_4b, envelope_power, readout,
         hidden, e0, seed, kind, morse, force, no_size_check):  # fmt: skip
    """Create a new (untrained) model file MODEL from hyperparameters and a species list."""
    from pftlite.potentials.base import Potential
    from pftlite.potentials.files import save_potential

    if Path(model).exists() and not force:
        raise InputError(f"{model}: file exists (use --force to overwrite)")
    check_output(model, "MODEL")
    zs = _parse_species(species)
    if e0 and len(e0) != len(zs):
        raise InputError(f"--e0: got {len(e0)} values for {len(zs)} species")
    if kind == "pair":
        from pftlite.potentials.pair.model import PairSpec, init_params

        vals = parse_floats(morse, "--morse")
        if len(vals) != 3 or vals[0] < 0 or vals[1] <= 0 or vals[2] <= 0:
            raise InputError(f"--morse: three numbers D >= 0, alpha > 0, r0 > 0, got {morse!r}")
        spec = PairSpec(species=zs, r_cut=r_cut)
        params = init_params(spec, *vals, e0=list(e0) if e0 else 0.0)
    else:
        from pftlite.core.sizes import check_memory
        from pftlite.potentials.manybody.basis import table_size
        from pftlite.potentials.manybody.model import ModelSpec, init_params

        spec = ModelSpec(
            species=zs, r_cut=r_cut, n_radial=n_radial, l_max=l_max,
            n_radial_4b=n_radial_4b, l_max_4b=l_max_4b, envelope_power=envelope_power,
            readout=readout, hidden=hidden,
        )  # fmt: skip
        size = table_size(spec)
        if not no_size_check:
            what = f"the descriptor tables ({size['terms']:.3g} terms, {size['features']:.3g} features)"
            check_memory(size["bytes"], what)
            if size["seconds"] > MAX_BUILD_SECONDS:
                raise InputError(f"{what} take about {size['seconds'] / 60:.3g} min to build each time the model "
                                 f"loads; use smaller --n-radial/--l-max/--n-radial-4b/--l-max-4b, or "
                                 f"--no-size-check to go ahead")  # fmt: skip
        params = init_params(spec, seed=seed, e0=list(e0) if e0 else None)
    meta = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "pftlite_version": __version__,
        "history": [{"command": "init", "seed": seed}],
    }
    pot = Potential(spec, params, meta)
    save_potential(model, pot)
    click.echo(f"wrote {model}: {pot.describe()['summary']}, species {list(pot.species)}")
