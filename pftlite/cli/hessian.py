"""``pftlite hessian``: exact force constants of a supercell, written for phonopy."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import click
import numpy as np

from pftlite.cli.common import (
    BACKEND_OPTION,
    OneLineCommand,
    load_model_arg,
    parse_floats,
    read_all,
    resolve_structure_file,
    user_errors,
)
from pftlite.core.atomic import check_output
from pftlite.core.errors import InputError


def _dim(values) -> np.ndarray | None:
    """--dim as phonopy's DIM: "2 2 2" (diagonal), 9 integers (a matrix, row by row) or one
    integer n (n n n); repeated --dim options are joined. None when not given."""
    text = " ".join(values)
    if not text.strip():
        return None
    vals = parse_floats(text, "--dim")
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
        from pftlite.structures.io import read_phonopy_supercell_matrix

        m = read_phonopy_supercell_matrix(path)
        if m is not None:
            return m
    return np.eye(3, dtype=int)


@click.command(cls=OneLineCommand)
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

    from pftlite.core.atomic import atomic_path
    from pftlite.structures.batch import make_batch

    pot = load_model_arg(model)
    ev = pot.on(backend)
    backend = ev.backend
    check_output(output, "--output", force=force)
    unit = read_all([structure], pot)[0][0]
    smat = _supercell_matrix_from(resolve_structure_file(structure), supercell)
    n_super = len(unit) * round(abs(np.linalg.det(smat)))
    if not no_size_check:
        from pftlite.core.sizes import check_memory

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
    batch = make_batch([atoms], pot, sources=[str(structure)])
    fc = ev.hessian(batch)
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
