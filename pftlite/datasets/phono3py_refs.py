"""DFT third-order (fc3) reference calculations of phono3py read into one :class:`Phono3pyReference`.

Sources: a phono3py yaml (``phono3py_params*.yaml``, ``phono3py_disp*.yaml``, ``phono3py.yaml``;
plain, ``.gz``, ``.bz2`` or ``.xz``) with ``FORCES_FC3`` / ``FORCES_FC2`` (plain or compressed) and
``BORN`` beside it when the yaml lacks forces or NAC; a folder holding such files; or a name of
:mod:`pftlite.datasets.registry` (``"phono3py/Si-PBEsol"``, ``"phono3py/NaCl-222"``,
``"phono3py/AlN-LDA-dimfc2"``, ``"phono3py/Si-111-222-fd"``).

The yaml is parsed here (PyYAML), not by phono3py. Only the systematic (type-1) displacement
datasets are supported; random-displacement (type-2) datasets need a least-squares fc3 solver
(symfc) and are refused. Units of the result: Å, eV/Å. Every failure raises
:class:`~pftlite.core.errors.InputError` with a one-line message starting with the offending file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from pftlite.core.errors import InputError
from pftlite.datasets import registry as datasets
from pftlite.datasets.reference import (
    PhononReference,
    primitive_matrix_of,
    resolve_yaml,
    supercell_matrix_of,
)
from pftlite.structures.textio import OPENERS, float_array, get_key, one_line, open_text

_YAML_PATTERNS = ("phono3py_params*.yaml", "phono3py.yaml", "phono3py_disp*.yaml")
_SYMPREC = 1e-5


@dataclass(frozen=True, eq=False)
class Phono3pyReference:
    """A DFT fc3 (and fc2) finite-displacement calculation of phono3py. Units: Å, eV/Å.

    Attributes
    ----------
    name : str
        Folder name (``"Si-PBEsol"``), or the yaml stem when it is not a ``phono3py*`` name.
    source : str
        The yaml read.
    files : tuple of str
        Every file read (the yaml first).
    unitcell : ase.Atoms
        Periodic unit cell, Å, with the masses of the file (phonopy's table where absent).
    supercell_matrix : ndarray, (3, 3) int
        fc3 supercell.
    phonon_supercell_matrix : ndarray, (3, 3) int
        fc2 supercell (= ``supercell_matrix`` when the file has none).
    primitive_matrix : ndarray, (3, 3) float
        Resolved (absent or ``'auto'``: phonopy's guess, symprec 1e-5).
    dataset : dict
        fc3 displacement dataset, phono3py's type-1 layout: ``{'natom', 'first_atoms':
        [{'number', 'displacement' (3,), 'forces' (N3, 3), 'supercell_energy'?, 'second_atoms':
        [{'number', 'displacement' (3,), 'forces' (N3, 3), 'pair_distance'?, 'included'?,
        'supercell_energy'?}]}]}``; 0-based atom numbers in the fc3 supercell (phonopy order).
    phonon_dataset : dict or None
        fc2 type-1 phonopy dataset with forces in the phonon supercell (``{'natom',
        'first_atoms': [{'number', 'displacement', 'forces', 'supercell_energy'?}]}``), or None
        when the file has no separate fc2 displacements.
    nac_params : dict or None
        phonopy's NAC dict (``'born'`` (n_prim, 3, 3), ``'dielectric'`` (3, 3), ``'factor'``).
    """

    name: str
    source: str
    files: tuple[str, ...]
    unitcell: Atoms
    supercell_matrix: np.ndarray
    phonon_supercell_matrix: np.ndarray
    primitive_matrix: np.ndarray
    dataset: dict
    phonon_dataset: dict | None
    nac_params: dict | None

    @property
    def n_supercell(self) -> int:
        """Number of atoms in the fc3 supercell."""
        return round(abs(np.linalg.det(self.supercell_matrix))) * len(self.unitcell)

    @property
    def n_phonon_supercell(self) -> int:
        """Number of atoms in the fc2 supercell."""
        return round(abs(np.linalg.det(self.phonon_supercell_matrix))) * len(self.unitcell)

    @property
    def n_displacements(self) -> tuple[int, int]:
        """(number of single, number of pair) displaced fc3 supercells."""
        first = self.dataset["first_atoms"]
        return len(first), sum(len(d["second_atoms"]) for d in first)


# --------------------------------------------------------------------------------------------
# locating the files
# --------------------------------------------------------------------------------------------


def _yaml_in_dir(folder: Path) -> Path:
    for pattern in _YAML_PATTERNS:
        for ext in ("", *OPENERS):
            found = sorted(folder.glob(pattern + ext))
            if found:
                return found[0]
    raise InputError(
        f"{folder}: no phono3py yaml ({', '.join(_YAML_PATTERNS)}, plain or compressed) in this folder"
    )


def _fetch_dataset(name: str) -> Path | None:
    """Local yaml of dataset ``name`` (a yaml key or a folder), its folder's files fetched."""
    name = name.strip("/")
    if name in datasets.DATASETS:
        folder = name.rsplit("/", 1)[0]
    else:
        folder = name
    keys = [
        k
        for k in datasets.DATASETS
        if k.startswith(folder + "/") and "/" not in k[len(folder) + 1 :]
    ]
    keys = [k for k in keys if not k.endswith(".hdf5")]
    if not keys:
        return None
    paths = {k: datasets.fetch(k) for k in keys}
    if name in paths:
        return paths[name]
    return _yaml_in_dir(next(iter(paths.values())).parent)


def _resolve(path: str | os.PathLike) -> Path:
    return resolve_yaml(path, _yaml_in_dir, _fetch_dataset, "a phono3py dataset name")


def _beside(folder: Path, name: str) -> Path | None:
    for ext in ("", *OPENERS):
        if (folder / (name + ext)).is_file():
            return folder / (name + ext)
    return None


# --------------------------------------------------------------------------------------------
# yaml
# --------------------------------------------------------------------------------------------


def _read_yaml(path: Path) -> dict:
    import yaml

    text = ""
    try:
        with open_text(path) as f:
            text = f.read()
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except Exception as exc:  # noqa: BLE001 - yaml syntax, truncation, decompression, encoding
        hint = "truncated file? (no final newline); " if text and not text.endswith("\n") else ""
        raise InputError(f"{path}: not a readable phono3py yaml ({hint}{one_line(exc)})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: not a phono3py yaml (top level is not a mapping)")
    truncated = "; truncated file? (no final newline)" if text and not text.endswith("\n") else ""
    for key in ("unit_cell", "supercell_matrix"):
        if key not in data:
            raise InputError(f"{path}: missing key '{key}'{truncated}")
    if not any(k in data for k in ("displacement_pairs", "dataset", "displacements")):
        raise InputError(f"{path}: no fc3 displacements ('displacement_pairs'){truncated}")
    return data


def _units(data: dict, where: str) -> tuple[float, float]:
    """(length to Å, force to eV/Å) factors of the file's calculator."""
    from phonopy.physical_units import get_calculator_physical_units

    head = data.get("phono3py")
    calc = head.get("calculator") if isinstance(head, dict) else None
    try:
        units = get_calculator_physical_units(calc)
    except Exception as exc:  # noqa: BLE001 - reported as one line
        raise InputError(f"{where}: unknown calculator {calc!r} ({one_line(exc)})") from None
    return float(units.distance_to_A), float(units.force_to_eVperA)


def _cell(block, key: str, where: str, length: float):
    """PhonopyAtoms from a yaml cell block (``lattice``, ``points``: symbol, coordinates, mass)."""
    from phonopy.structure.atoms import PhonopyAtoms

    if not isinstance(block, dict):
        raise InputError(f"{where}: '{key}' is not a mapping")
    lattice = float_array(get_key(block, "lattice", where), (3, 3), f"{key}.lattice", where)
    points = block.get("points", block.get("atoms"))
    if not isinstance(points, list) or not points or not all(isinstance(p, dict) for p in points):
        raise InputError(f"{where}: '{key}' has no 'points'")
    symbols, coords, masses = [], [], []
    for k, p in enumerate(points):
        if "symbol" not in p or "coordinates" not in p:
            raise InputError(f"{where}: {key}.points[{k}] lacks 'symbol' or 'coordinates'")
        symbols.append(str(p["symbol"]))
        coords.append(float_array(p["coordinates"], (3,), f"{key}.points[{k}].coordinates", where))
        masses.append(p.get("mass"))
    try:
        cell = PhonopyAtoms(
            symbols=symbols, cell=lattice * length, scaled_positions=np.array(coords)
        )
    except Exception as exc:  # noqa: BLE001 - reported as one line
        raise InputError(f"{where}: bad '{key}' ({one_line(exc)})") from None
    if all(m is not None for m in masses):
        cell.masses = float_array(masses, (len(points),), f"{key} masses", where)
    return cell


def _forces(value, n: int, what: str, where: str, scale: float) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"{where}: {what} is not a numeric {n}x3 array (ragged?)") from None
    if arr.shape != (n, 3):
        raise InputError(f"{where}: {what} has shape {arr.shape}, expected ({n}, 3)")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{where}: {what} contains NaN or inf")
    return arr * scale


def _atom(value, n: int, what: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= n:
        raise InputError(f"{where}: {what} = {value!r} is not an atom number in 1..{n}")
    return value - 1


def _disp(value, what: str, where: str, length: float) -> np.ndarray:
    return float_array(value, (3,), what, where) * length


def _fc3_dataset(data: dict, natom: int, where: str, length: float, force: float) -> dict:
    """phono3py type-1 dataset from ``displacement_pairs`` (forces where the yaml has them)."""
    raw = data.get("displacement_pairs")
    if raw is None and "dataset" not in data and ("displacements" in data or "force_constants" in data
                                                   or "phonon" in data or "supercell_matrix" in data):  # fmt: skip
        raise InputError(
            f"{where}: a phonopy (fc2) file, not a phono3py fc3 dataset: kappa needs third-order "
            "data (phono3py_disp.yaml + FORCES_FC3, or phono3py_params*.yaml); for fc2 phonons "
            "use `pftlite phonons`"
        )
    if (
        raw is None
        or (isinstance(raw, list) and raw and isinstance(raw[0], list))
        or ("dataset" in data and "displacement_pairs" not in data)
    ):
        raise InputError(
            f"{where}: random-displacement (type-2) fc3 dataset; it needs a least-squares fc3 "
            "solver (symfc), which pftlite does not provide"
        )
    if not isinstance(raw, list) or not raw or not all(isinstance(d, dict) for d in raw):
        raise InputError(f"{where}: 'displacement_pairs' is empty or not a list of mappings")
    first_atoms = []
    for i, d1 in enumerate(raw):
        key = f"displacement_pairs[{i}]"
        if "displacement" not in d1:
            raise InputError(f"{where}: missing key '{key}.displacement'")
        e1 = {
            "number": _atom(d1.get("atom"), natom, f"{key}.atom", where),
            "displacement": _disp(d1["displacement"], f"{key}.displacement", where, length),
            "second_atoms": [],
        }
        if "forces" in d1:
            e1["forces"] = _forces(d1["forces"], natom, f"{key}.forces", where, force)
        if "supercell_energy" in d1:
            e1["supercell_energy"] = float(d1["supercell_energy"])
        pairs = d1.get("paired_with", d1.get("second_atoms", []))
        if not isinstance(pairs, list):
            raise InputError(f"{where}: {key}.paired_with is not a list")
        for j, d2 in enumerate(pairs):
            k2 = f"{key}.paired_with[{j}]"
            if not isinstance(d2, dict):
                raise InputError(f"{where}: {k2} is not a mapping")
            number = _atom(d2.get("atom"), natom, f"{k2}.atom", where)
            extra = {}
            if "pair_distance" in d2:
                extra["pair_distance"] = float(d2["pair_distance"])
            if "included" in d2:
                extra["included"] = bool(d2["included"])
            if "displacements" in d2:  # displacements without forces
                vecs = d2["displacements"]
                if not isinstance(vecs, list):
                    raise InputError(f"{where}: {k2}.displacements is not a list")
                for m, v in enumerate(vecs):
                    disp = _disp(v, f"{k2}.displacements[{m}]", where, length)
                    e1["second_atoms"].append({"number": number, "displacement": disp, **extra})
            else:
                if "displacement" not in d2:
                    raise InputError(f"{where}: missing key '{k2}.displacement'")
                e2 = {
                    "number": number,
                    "displacement": _disp(d2["displacement"], f"{k2}.displacement", where, length),
                    **extra,
                }
                if "forces" in d2:
                    e2["forces"] = _forces(d2["forces"], natom, f"{k2}.forces", where, force)
                if "supercell_energy" in d2:
                    e2["supercell_energy"] = float(d2["supercell_energy"])
                e1["second_atoms"].append(e2)
        first_atoms.append(e1)
    return {"natom": natom, "first_atoms": first_atoms}


def _phonon_dataset(data: dict, natom: int, where: str, length: float, force: float) -> dict | None:
    """fc2 type-1 dataset from ``phonon_displacements`` (or the old ``displacements`` form)."""
    if "phonon_dataset" in data:
        raise InputError(
            f"{where}: random-displacement (type-2) fc2 dataset ('phonon_dataset'); it needs a "
            "least-squares solver, which pftlite does not provide"
        )
    raw = data.get("phonon_displacements")
    key0 = "phonon_displacements"
    if raw is None and "phonon_supercell_matrix" in data and "displacements" in data:
        raw, key0 = data["displacements"], "displacements"
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw or not all(isinstance(d, dict) for d in raw):
        raise InputError(f"{where}: '{key0}' is empty or not a list of mappings")
    first = []
    for i, d in enumerate(raw):
        key = f"{key0}[{i}]"
        if "displacement" not in d:
            raise InputError(f"{where}: missing key '{key}.displacement'")
        e = {
            "number": _atom(d.get("atom"), natom, f"{key}.atom", where),
            "displacement": _disp(d["displacement"], f"{key}.displacement", where, length),
        }
        if "forces" in d:
            e["forces"] = _forces(d["forces"], natom, f"{key}.forces", where, force)
        if "supercell_energy" in d:
            e["supercell_energy"] = float(d["supercell_energy"])
        first.append(e)
    return {"natom": natom, "first_atoms": first}


def _force_blocks(
    path: Path, natom: int, n_disp: int, what: str, yaml_where: str, force: float
) -> np.ndarray:
    """(n_disp, natom, 3) forces of a FORCES_FC3 / FORCES_FC2 file (``#`` comments skipped)."""
    try:
        with open_text(path) as f:
            lines = f.read().splitlines()
    except Exception as exc:  # noqa: BLE001 - reported as one line
        raise InputError(f"{path}: unreadable ({one_line(exc)})") from None
    rows = []
    for n, line in enumerate(lines, 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        tok = s.split()
        try:
            vals = [float(t) for t in tok]
        except ValueError:
            vals = []
        if len(vals) != 3:
            raise InputError(f"{path}: line {n}: expected 3 numbers (a force), got {tok}")
        if not np.all(np.isfinite(vals)):
            raise InputError(f"{path}: line {n}: force contains NaN or inf")
        rows.append(vals)
    if len(rows) != natom * n_disp:
        raise InputError(
            f"{path}: {len(rows)} force lines = {len(rows) / natom:g} blocks of {natom} atoms, but "
            f"{yaml_where} has {n_disp} {what} displacements (truncated or mismatched file)"
        )
    return np.asarray(rows).reshape(n_disp, natom, 3) * force


def _attach_fc3_forces(dataset: dict, forces: np.ndarray) -> None:
    k = 0
    for d1 in dataset["first_atoms"]:
        d1["forces"] = forces[k]
        k += 1
    for d1 in dataset["first_atoms"]:
        for d2 in d1["second_atoms"]:
            d2["forces"] = forces[k]
            k += 1


def _all_fc3_entries(dataset: dict) -> list[dict]:
    first = dataset["first_atoms"]
    return [*first, *(d2 for d1 in first for d2 in d1["second_atoms"])]


def _nac(data: dict, primitive, where: str, folder: Path, files: list) -> dict | None:
    from phonopy.physical_units import get_calculator_physical_units

    n_prim = len(primitive)
    block = data.get("nac") if isinstance(data.get("nac"), dict) else data
    if "born_effective_charge" in block or "dielectric_constant" in block:
        born = float_array(
            block.get("born_effective_charge"), (n_prim, 3, 3), "born_effective_charge", where
        )
        eps = float_array(block.get("dielectric_constant"), (3, 3), "dielectric_constant", where)
        head = data.get("phono3py") if isinstance(data.get("phono3py"), dict) else {}
        factor = block.get("unit_conversion_factor", head.get("nac_unit_conversion_factor"))
        factor = get_calculator_physical_units(None).nac_factor if factor is None else float(factor)
        return {"born": born, "dielectric": eps, "factor": factor}
    born_path = _beside(folder, "BORN")
    if born_path is None:
        return None
    from phonopy.file_IO import parse_BORN

    try:
        nac = parse_BORN(primitive, symprec=_SYMPREC, filename=str(born_path))
    except Exception as exc:  # noqa: BLE001 - reported as one line
        raise InputError(f"{born_path}: unreadable BORN file ({one_line(exc)})") from None
    files.append(str(born_path))
    nac = dict(nac)
    nac["born"] = float_array(nac.get("born"), (n_prim, 3, 3), "Born charges", str(born_path))
    nac["dielectric"] = float_array(
        nac.get("dielectric"), (3, 3), "dielectric tensor", str(born_path)
    )
    if nac.get("factor") is None:
        nac["factor"] = get_calculator_physical_units(None).nac_factor
    return nac


def _label(yaml_path: Path) -> str:
    name = yaml_path.name
    for ext in OPENERS:
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
    stem = re.sub(r"\.ya?ml$", "", name, flags=re.IGNORECASE)
    if re.match(r"phono3py", stem, flags=re.IGNORECASE):
        return yaml_path.resolve().parent.name
    return stem


def _to_ase(cell) -> Atoms:
    return Atoms(
        numbers=cell.numbers, cell=cell.cell, scaled_positions=cell.scaled_positions,
        masses=np.asarray(cell.masses, dtype=float), pbc=True,
    )  # fmt: skip


def load_fc3_reference(path: str | os.PathLike) -> Phono3pyReference:
    """Read a DFT phono3py (fc3) finite-displacement calculation.

    Parameters
    ----------
    path : str or os.PathLike
        A phono3py yaml (plain/.gz/.bz2/.xz), a folder holding one (``phono3py_params*.yaml``,
        ``phono3py.yaml``, ``phono3py_disp*.yaml``, first found), or a name of
        :mod:`pftlite.datasets.registry` (``"phono3py/Si-PBEsol"``). fc3 forces come from the yaml, else
        ``FORCES_FC3`` beside it; fc2 forces from the yaml, else ``FORCES_FC2``; NAC from the
        yaml, else ``BORN``.

    Returns
    -------
    Phono3pyReference

    Raises
    ------
    InputError
        Missing, unreadable or inconsistent input, or a random-displacement dataset.
    pftlite.core.errors.DataUnavailable
        A dataset name whose files are neither local nor downloadable.
    """
    from phonopy.structure.cells import get_primitive, get_supercell

    yaml_path = _resolve(path)
    where, folder = str(yaml_path), yaml_path.parent
    data = _read_yaml(yaml_path)
    length, force = _units(data, where)
    unit = _cell(data["unit_cell"], "unit_cell", where, length)
    n_unit = len(unit)
    smat = supercell_matrix_of(data, where)
    psmat = smat
    if "phonon_supercell_matrix" in data:
        raw = {"supercell_matrix": data["phonon_supercell_matrix"]}
        psmat = supercell_matrix_of(raw, f"{where}: phonon_supercell_matrix")
    pmat = primitive_matrix_of(data, unit, n_unit, where)
    n3 = n_unit * round(abs(np.linalg.det(smat)))
    n2 = n_unit * round(abs(np.linalg.det(psmat)))
    try:
        supercell = get_supercell(unit, smat, is_old_style=True, symprec=_SYMPREC)
        primitive = get_primitive(supercell, np.linalg.inv(smat) @ pmat, _SYMPREC)
    except Exception as exc:  # noqa: BLE001 - reported as one line
        raise InputError(
            f"{where}: phonopy cannot build the cells from supercell_matrix and primitive_matrix "
            f"({one_line(exc)})"
        ) from None
    files = [where]

    dataset = _fc3_dataset(data, n3, where, length, force)
    entries = _all_fc3_entries(dataset)
    has = ["forces" in e for e in entries]
    if not all(has):
        if any(has):
            raise InputError(f"{where}: some fc3 displacements have forces and others not")
        fpath = _beside(folder, "FORCES_FC3")
        if fpath is None:
            raise InputError(f"{where}: no fc3 forces in the yaml and no FORCES_FC3 beside it")
        _attach_fc3_forces(dataset, _force_blocks(fpath, n3, len(entries), "fc3", where, force))
        files.append(str(fpath))

    phonon_dataset = _phonon_dataset(data, n2, where, length, force)
    if phonon_dataset is not None:
        has = ["forces" in e for e in phonon_dataset["first_atoms"]]
        if not all(has):
            if any(has):
                raise InputError(f"{where}: some fc2 displacements have forces and others not")
            fpath = _beside(folder, "FORCES_FC2")
            if fpath is None:
                raise InputError(f"{where}: no fc2 forces in the yaml and no FORCES_FC2 beside it")
            n = len(phonon_dataset["first_atoms"])
            blocks = _force_blocks(fpath, n2, n, "fc2", where, force)
            for e, f in zip(phonon_dataset["first_atoms"], blocks, strict=True):
                e["forces"] = f
            files.append(str(fpath))
    elif not np.array_equal(psmat, smat):
        raise InputError(f"{where}: phonon_supercell_matrix given but no fc2 displacements")

    nac = _nac(data, primitive, where, folder, files)
    return Phono3pyReference(
        name=_label(yaml_path),
        source=where,
        files=tuple(files),
        unitcell=_to_ase(unit),
        supercell_matrix=smat,
        phonon_supercell_matrix=psmat,
        primitive_matrix=np.asarray(pmat, dtype=float),
        dataset=dataset,
        phonon_dataset=phonon_dataset,
        nac_params=nac,
    )


# --------------------------------------------------------------------------------------------
# derived views
# --------------------------------------------------------------------------------------------


def phonon_reference(ref3: Phono3pyReference) -> PhononReference:
    """The fc2 part of ``ref3`` as a :class:`~pftlite.datasets.phonopy_refs.PhononReference`.

    fc2 data: the phonon dataset (in the phonon supercell) when present, else the first
    displacements of the fc3 dataset with their forces (in the fc3 supercell).
    """
    if ref3.phonon_dataset is not None:
        smat = ref3.phonon_supercell_matrix
        first = ref3.phonon_dataset["first_atoms"]
        natom = ref3.phonon_dataset["natom"]
    else:
        smat = ref3.supercell_matrix
        first = ref3.dataset["first_atoms"]
        natom = ref3.dataset["natom"]
    ds = {
        "natom": int(natom),
        "first_atoms": [
            {
                "number": int(d["number"]),
                "displacement": np.array(d["displacement"]),
                "forces": np.array(d["forces"]),
            }
            for d in first
        ],
    }
    return PhononReference(
        name=ref3.name,
        source=ref3.source,
        files=ref3.files,
        unitcell=ref3.unitcell.copy(),
        supercell_matrix=np.array(smat),
        primitive_matrix=np.array(ref3.primitive_matrix),
        dataset=ds,
        force_constants=None,
        nac_params=None if ref3.nac_params is None else dict(ref3.nac_params),
        stored={},
    )


def perfect_supercell(ref3: Phono3pyReference, phonon: bool = False) -> Atoms:
    """The undisplaced fc3 (or, ``phonon=True``, fc2) supercell as ase.Atoms, phonopy order."""
    from phonopy.structure.atoms import PhonopyAtoms
    from phonopy.structure.cells import get_supercell

    u = ref3.unitcell
    unit = PhonopyAtoms(
        numbers=u.numbers, cell=np.asarray(u.cell[:]), scaled_positions=u.get_scaled_positions(wrap=False),
        masses=u.get_masses(),
    )  # fmt: skip
    smat = ref3.phonon_supercell_matrix if phonon else ref3.supercell_matrix
    return _to_ase(get_supercell(unit, smat, is_old_style=True, symprec=_SYMPREC))


def displaced_supercells(ref3: Phono3pyReference) -> list[Atoms]:
    """Every displaced supercell of the fc3 and fc2 datasets with its DFT forces attached.

    Returns ase.Atoms with a ``SinglePointCalculator`` holding ``forces`` (eV/Å) and, where the
    file has ``supercell_energy``, ``energy`` (eV). ``atoms.info`` has ``source`` (yaml),
    ``kind`` ("fc3-single", "fc3-pair" or "fc2") and ``index`` (0-based within its kind). Pairs
    marked ``included: false`` (beyond a pair cutoff) are skipped.
    """
    from ase.calculators.singlepoint import SinglePointCalculator

    out = []

    def make(base, disps, entry, kind, index):
        a = base.copy()
        pos = a.get_positions()
        for number, vec in disps:
            pos[number] += vec
        a.set_positions(pos)
        res = {"forces": np.array(entry["forces"])}
        if "supercell_energy" in entry:
            res["energy"] = float(entry["supercell_energy"])
        a.calc = SinglePointCalculator(a, **res)
        a.info.update({"source": ref3.source, "kind": kind, "index": index})
        out.append(a)

    sc3 = perfect_supercell(ref3)
    first = ref3.dataset["first_atoms"]
    for i, d1 in enumerate(first):
        make(sc3, [(d1["number"], d1["displacement"])], d1, "fc3-single", i)
    k = 0
    for d1 in first:
        for d2 in d1["second_atoms"]:
            if d2.get("included", True):
                make(
                    sc3,
                    [(d1["number"], d1["displacement"]), (d2["number"], d2["displacement"])],
                    d2,
                    "fc3-pair",
                    k,
                )
            k += 1
    if ref3.phonon_dataset is not None:
        sc2 = perfect_supercell(ref3, phonon=True)
        for i, d in enumerate(ref3.phonon_dataset["first_atoms"]):
            make(sc2, [(d["number"], d["displacement"])], d, "fc2", i)
    return out


def read_phono3py_labelled(arg: str | os.PathLike) -> list[Atoms]:
    """Every displaced supercell of a phono3py calculation with its DFT labels.

    ``arg``: anything :func:`pftlite.datasets.phono3py_refs.load_fc3_reference` accepts (yaml, folder,
    dataset name such as ``"phono3py/NaCl-222"``). Returns ase.Atoms without calculator,
    ``arrays["forces"]`` (N, 3) eV/Å, ``info["energy"]`` (eV) only where the file has supercell
    energies (phono3py data usually has none: forces-only), ``info["source"]`` =
    ``"<yaml name>[<k>]"`` (k: order of :func:`~pftlite.datasets.phono3py_refs.displaced_supercells`),
    ``info["kind"]`` ("fc3-single", "fc3-pair", "fc2").
    """
    ref3 = load_fc3_reference(arg)
    name = Path(ref3.source).name
    out = []
    for k, a in enumerate(displaced_supercells(ref3)):
        results = dict(a.calc.results)
        b = a.copy()  # drops the calculator
        b.arrays["forces"] = float_array(results["forces"], (len(b), 3), "forces", f"{ref3.source}: supercell {k}")
        if "energy" in results:
            b.info["energy"] = float(results["energy"])
        b.info["source"] = f"{name}[{k}]"
        out.append(b)
    if not out:
        raise InputError(f"{ref3.source}: no displaced supercells with forces")
    return out
