"""Force constants resolved by neighbour shell: which interaction range carries an fc error.

For an atom i of a periodic supercell the 3×3 blocks Φ_ij (eV/Å²) are grouped by the
minimum-image distance |r_ij| (Å; shells within ``tol``; the on-site block Φ_ii is shell 0).
Per shell: its distance, number of atoms, the rms element of the reference blocks, the rms
element error of the model, that shell's share of the whole supercell's squared fc error, and
the shell sum ``S = Σ_j Φ_ij`` (3×3) through its mean diagonal ``tr(S)/3``. The shell sums of
one atom add up to zero (translational invariance, the acoustic sum rule), and in a crystal
with one atom type per site they are what the Γ frequencies are made of — e.g. in diamond
m ω²(Γ optical) = −2 Σ_{j ∈ other sublattice} Φ_ij^xx — so a model whose short shells are
right and whose error sits in a shell beyond its cutoff is told apart from one that is wrong
everywhere.

Rows are computed for the irreducible atoms (spglib via phonopy) and weighted by orbit
size, so the shares over all rows sum to one for symmetrized force constants.
"""

from __future__ import annotations

import numpy as np


def shells(atoms, atom: int, tol: float = 1e-3) -> list[tuple[float, np.ndarray]]:
    """Neighbour shells of ``atom`` in ``atoms`` (ase.Atoms, periodic): ``[(distance Å,
    indices)]`` by increasing minimum-image distance, ``atom`` itself first (distance 0)."""
    d = atoms.get_distances(atom, np.arange(len(atoms)), mic=True)
    order = np.argsort(d, kind="stable")
    out: list[tuple[float, list[int]]] = []
    for j in order:
        if out and d[j] - out[-1][0] <= tol:
            out[-1][1].append(int(j))
        else:
            out.append((float(d[j]), [int(j)]))
    return [(r, np.asarray(ix, dtype=np.int64)) for r, ix in out]


def shell_table(atoms, fc, fc_ref=None, tol: float = 1e-3, symprec: float = 1e-5) -> list[dict]:
    """Shell rows of supercell force constants ``fc`` (N, N, 3, 3) eV/Å², optionally against
    ``fc_ref`` (same shape, e.g. DFT). ``atoms``: the supercell (ase.Atoms; distances and
    symmetry from it).

    Each row: ``atom`` (irreducible atom index), ``orbit`` (its orbit size), ``shell``
    (0 = on-site), ``distance`` Å, ``n`` atoms, ``rms`` (rms element of ``fc``), ``sum_diag``
    (tr Σ_j Φ_ij / 3). With ``fc_ref`` also ``rms_ref``, ``sum_diag_ref``, ``rmse`` (rms element
    error) and ``share`` (orbit × the shell's squared error / the whole fc's squared error).
    """
    from pftlite.phonons.symmetry import orbits

    fc = np.asarray(fc, dtype=float)
    n = len(atoms)
    if fc.shape != (n, n, 3, 3) or (fc_ref is not None and np.shape(fc_ref) != fc.shape):
        raise ValueError(f"shell_table: fc must be ({n}, {n}, 3, 3) for this supercell, got {fc.shape}"
                         + ("" if fc_ref is None else f" and {np.shape(fc_ref)}"))  # fmt: skip
    orb = orbits(atoms, symprec)
    total = None if fc_ref is None else float(((fc - fc_ref) ** 2).sum())
    rows = []
    for atom, size in zip(orb.irreducible, orb.orbit_size):
        for k, (r, ix) in enumerate(shells(atoms, int(atom), tol)):
            blocks = fc[atom, ix]
            row = {"atom": int(atom), "orbit": int(size), "shell": k, "distance": r, "n": len(ix),
                   "rms": float(np.sqrt((blocks**2).mean())),
                   "sum_diag": float(np.trace(blocks.sum(axis=0)) / 3.0)}  # fmt: skip
            if fc_ref is not None:
                ref = np.asarray(fc_ref[atom, ix], dtype=float)
                err2 = float(((blocks - ref) ** 2).sum())
                row.update(rms_ref=float(np.sqrt((ref**2).mean())), sum_diag_ref=float(np.trace(ref.sum(axis=0)) / 3.0),
                           rmse=float(np.sqrt(err2 / blocks.size)),
                           share=float(size * err2 / total) if total > 0 else 0.0)  # fmt: skip
            rows.append(row)
    return rows


def format_shell_table(rows: list[dict], max_rows: int | None = None) -> str:
    """Markdown table of :func:`shell_table` rows (with a reference)."""
    lines = ["| atom | shell | r Å | n | DFT rms | rmse | share of fc error | Σ diag DFT | Σ diag model |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for row in rows[:max_rows]:
        lines.append(f"| {row['atom']} | {row['shell']} | {row['distance']:.2f} | {row['n']} | {row['rms_ref']:.4f} | "
                     f"{row['rmse']:.4f} | {100 * row['share']:.1f} % | {row['sum_diag_ref']:+.3f} | {row['sum_diag']:+.3f} |")  # fmt: skip
    return "\n".join(lines)
