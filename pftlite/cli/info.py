"""``pftlite info``: what a model file holds (kind, hyperparameters, size, provenance)."""

from __future__ import annotations

import json

import click

from pftlite.cli.common import OneLineCommand, load_model_arg, user_errors


@click.command(cls=OneLineCommand)
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@user_errors
def info(model, as_json):
    """Show a model's kind, hyperparameters, size and provenance."""
    from ase.data import chemical_symbols

    pot = load_model_arg(model)
    d = {**pot.describe(), "backends": list(pot.backends), "fingerprint": pot.fingerprint(),
         "metadata": pot.metadata}  # fmt: skip
    if as_json:
        click.echo(json.dumps(d, indent=2))
        return
    click.echo(f"model      {model}")
    click.echo(f"kind       {pot.kind} ({d['summary']}); backends {', '.join(pot.backends)}")
    click.echo(f"species    {' '.join(chemical_symbols[z] for z in pot.species)}")
    for k, v in d["spec"].items():
        if k != "species":
            click.echo(f"{k:<14} {v}")
    if "features_by_body_order" in d:
        fb = d["features_by_body_order"]
        click.echo(f"features   {d['n_features']} (2-body {fb['2']}, 3-body {fb['3']}, 4-body {fb['4']})")
    click.echo(f"trainable  {d['n_trainable_parameters']} parameters")
    if pot.metadata:
        click.echo(f"metadata   {json.dumps(pot.metadata)}")
