"""Command-line front end (click). A thin shell: parse options, call the library, print.

User errors (bad files, unknown species, missing backend, ...) print one line to stderr and
exit with status 2; no traceback. Every command that computes takes ``--backend numba|jax``.
Each command lives in its own module of this package; this one only assembles the group.
"""

from __future__ import annotations

import click

from pftlite import __version__
from pftlite.cli.common import OneLineGroup
from pftlite.cli.fit import fit
from pftlite.cli.hessian import hessian
from pftlite.cli.info import info
from pftlite.cli.init import init
from pftlite.cli.kappa import kappa
from pftlite.cli.phonons import phonons
from pftlite.cli.predict import predict
from pftlite.cli.tune import tune


@click.group(cls=OneLineGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pftlite")
def main():
    """pftlite: phonon fine-tuning of machine-learned interatomic potentials."""


main.add_command(init)
main.add_command(info)
main.add_command(fit)
main.add_command(predict)
main.add_command(hessian)
main.add_command(phonons)
main.add_command(tune)
main.add_command(kappa)


if __name__ == "__main__":
    main()
