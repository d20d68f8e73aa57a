"""What a DFT harmonic phonon reference is (:class:`PhononReference`), and the parts every
reader of phonopy/phono3py files shares: which file a path or dataset name designates, the
supercell and primitive matrices of a yaml, whether a source is phono3py data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from pftlite.core.errors import InputError
from pftlite.structures.textio import base_name, float_array, get_key, one_line, open_text

SYMPREC = 1e-5


@dataclass(frozen=True, eq=False)
class PhononReference:
    """A DFT harmonic phonon calculation. Units: Å, eV/Å, eV/Å², THz.

    Attributes
    ----------
    name : str
        Material label: the file stem for MDR-like names (``"mp-149"`` for ``mp-149.yaml.bz2``),
        else the folder name (``"NaCl"``) for ``phonopy*.yaml`` files.
    source : str
        The yaml read.
    files : tuple of str
        Every file read (the yaml first).
    unitcell : ase.Atoms
        Periodic unit cell, Å, masses from the file when given.
    supercell_matrix : ndarray, (3, 3) int
    primitive_matrix : ndarray, (3, 3) float
        Resolved (``'auto'``/absent: phonopy's guess on the unit cell, symprec 1e-5).
    dataset : dict or None
        phonopy displacement dataset with forces (eV/Å, displacements Å): type 1
        ``{'natom', 'first_atoms': [{'number', 'displacement' (3,), 'forces' (N_sc, 3)}]}``
        or type 2 ``{'displacements' (n, N_sc, 3), 'forces' (n, N_sc, 3)}``; None without forces.
    force_constants : ndarray or None
        Full force constants (N_sc, N_sc, 3, 3), eV/Å²; None if none were given.
    nac_params : dict or None
        phonopy's NAC dict (``'born'`` (n_prim, 3, 3), ``'dielectric'`` (3, 3), ``'factor'``).
    stored : dict
        MDR extras, only keys present: ``'temperatures'`` (K), ``'free_e'`` (kJ/mol),
        ``'entropy'``, ``'heat_capacity'`` (J/K/mol) as lists of float (per mole of primitive
        cells); ``'phonon_freq'`` ndarray (n_q, n_band), THz; ``'energy'`` (eV, may be nan);
        ``'volume'`` (Å³); ``'nsites'`` int.
    pressure_GPa : float
        External pressure the DFT cell was relaxed under, GPa (its equilibrium stress is
        −p·I); 0 unless known (a registry dataset, :data:`pftlite.datasets.registry.RELAXED_UNDER_PRESSURE_GPA`).
    """

    name: str
    source: str
    files: tuple[str, ...]
    unitcell: Atoms
    supercell_matrix: np.ndarray
    primitive_matrix: np.ndarray
    dataset: dict | None
    force_constants: np.ndarray | None
    nac_params: dict | None
    stored: dict
    pressure_GPa: float = 0.0

    @property
    def n_supercell(self) -> int:
        """Number of atoms in the supercell, ``|det S| * len(unitcell)``."""
        return round(abs(np.linalg.det(self.supercell_matrix))) * len(self.unitcell)


def supercell_matrix_of(data: dict, where: str) -> np.ndarray:
    raw = get_key(data, "supercell_matrix", where)
    try:
        m = np.asarray(raw, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"{where}: supercell_matrix is not numeric: {raw!r}") from None
    if m.shape != (3, 3) or not np.all(np.isfinite(m)) or not np.array_equal(m, np.round(m)):
        raise InputError(f"{where}: supercell_matrix must be 3x3 integers, got {raw!r}")
    if round(abs(np.linalg.det(m))) == 0:
        raise InputError(f"{where}: supercell_matrix {m.astype(int).tolist()} is singular")
    return m.astype(int)


def primitive_matrix_of(data: dict, unitcell, n_unit: int, where: str) -> np.ndarray:
    from phonopy.structure.cells import get_primitive_matrix, guess_primitive_matrix

    raw = data.get("primitive_matrix", "auto")
    try:
        if raw is None or raw == "auto":
            pmat = guess_primitive_matrix(unitcell, symprec=SYMPREC)
        elif isinstance(raw, str):
            pmat = get_primitive_matrix(raw.upper(), symprec=SYMPREC)
        else:
            pmat = raw
    except Exception as exc:
        raise InputError(f"{where}: bad primitive_matrix {raw!r} ({one_line(exc)})") from None
    pmat = float_array(pmat, (3, 3), "primitive_matrix", where)
    n_prim = n_unit * abs(np.linalg.det(pmat))
    if n_prim < 0.5 or abs(n_prim - round(n_prim)) > 1e-4:
        raise InputError(
            f"{where}: primitive_matrix gives {n_prim:.4g} atoms in the primitive cell "
            f"({n_unit} atoms x |det P| = {abs(np.linalg.det(pmat)):.4g}); not an integer"
        )
    cell = data.get("primitive_cell")  # cross-check only against an explicit matrix
    explicit = not (raw is None or isinstance(raw, str))
    if explicit and isinstance(cell, dict) and isinstance(cell.get("points"), list):
        if len(cell["points"]) != round(n_prim):
            raise InputError(
                f"{where}: primitive_cell has {len(cell['points'])} atoms but primitive_matrix "
                f"gives {round(n_prim)}"
            )
    return pmat


def resolve_yaml(path: str | os.PathLike, yaml_in_dir, fetch_dataset,
                 what: str = "a dataset name") -> Path:  # fmt: skip
    """The yaml that ``path`` (file, folder or dataset name) designates; ``yaml_in_dir`` and
    ``fetch_dataset`` find it in a folder / among the datasets (each reader passes its own)."""
    p = Path(path)
    if p.is_dir():
        return yaml_in_dir(p)
    if p.is_file():
        return p
    if isinstance(path, str) and not p.exists():
        found = fetch_dataset(path)
        if found is not None:
            return found
    raise InputError(f"{path}: no such file or folder, nor {what} of pftlite.datasets.registry")


def _is_phono3py_yaml(path: Path) -> bool:
    """A yaml file whose first top-level key is ``phono3py:`` (phono3py writes it first)."""
    if not base_name(path).endswith((".yaml", ".yml")):
        return False
    try:
        with open_text(path) as f:
            head = f.read(512)
    except Exception:  # noqa: BLE001 - unreadable: not ours to judge here
        return False
    return any(line.startswith("phono3py:") for line in head.splitlines())


def is_phono3py_source(arg: str | os.PathLike) -> bool:
    """True when ``arg`` designates phono3py displacement data: a phono3py yaml, a folder
    holding one, or a ``phono3py/...`` name of :mod:`pftlite.datasets.registry`."""
    p = Path(arg)
    if p.is_file():
        return _is_phono3py_yaml(p)
    if p.is_dir():
        return any(_is_phono3py_yaml(q) for q in sorted(p.glob("phono3py*.y*ml*")))
    return isinstance(arg, str) and arg.strip("/").startswith("phono3py/")
