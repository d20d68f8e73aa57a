"""DFT harmonic phonon reference calculations read into one :class:`PhononReference`.

Sources: a phonopy-style yaml (``phonopy_params.yaml``, ``phonopy.yaml``, ``phonopy_disp.yaml``,
MDR/Alexandria ``mp-*.yaml[.bz2]``; plain, ``.gz``, ``.bz2`` or ``.xz``), with ``FORCE_SETS``,
``FORCE_CONSTANTS``, ``force_constants.hdf5`` and ``BORN`` beside it; a folder holding such
files; or a name of :mod:`pftlite.datasets.registry` (``"mdr/mp-149"``, ``"phonopy/NaCl"``).

Units of the result: Å, eV/Å, eV/Å², THz. Yamls written for another calculator (``phonopy:
calculator: qe`` ...) are converted from its units. Every failure raises
:class:`~pftlite.core.errors.InputError` with a one-line message starting with the offending file and,
where there is one, naming the yaml key or file line.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
from ase import Atoms

from pftlite.core.errors import InputError
from pftlite.datasets import registry as datasets
from pftlite.datasets.reference import (
    SYMPREC,
    PhononReference,
    primitive_matrix_of,
    resolve_yaml,
    supercell_matrix_of,
)
from pftlite.structures.textio import OPENERS, float_array, get_key, one_line, open_text

_YAML_NAMES = ("phonopy_params.yaml", "phonopy.yaml", "phonopy_disp.yaml")
_COMPANIONS = ("FORCE_SETS", "FORCE_CONSTANTS", "force_constants.hdf5", "BORN")
_STORED_LISTS = ("temperatures", "free_e", "entropy", "heat_capacity")
_DISP_TOL = 1e-5  # Å: FORCE_SETS displacements must match the yaml's to this


# --------------------------------------------------------------------------------------------
# locating the files
# --------------------------------------------------------------------------------------------


def _strip_compression(name: str) -> str:
    for ext in OPENERS:
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


def _yaml_in_dir(folder: Path) -> Path:
    for name in _YAML_NAMES:
        for ext in ("", *OPENERS):
            if (folder / (name + ext)).is_file():
                return folder / (name + ext)
    raise InputError(f"{folder}: no {', '.join(_YAML_NAMES)} (plain or compressed) in this folder")


def _fetch_dataset(name: str) -> Path | None:
    """Local yaml of dataset ``name`` (a yaml file or a folder), companions fetched beside it."""
    name = name.strip("/")
    if name in datasets.DATASETS:
        key, folder = name, name.rsplit("/", 1)[0]
    else:
        key = next((f"{name}/{y}" for y in _YAML_NAMES if f"{name}/{y}" in datasets.DATASETS), None)
        folder = name
    if key is None:
        return None
    for companion in _COMPANIONS:
        if f"{folder}/{companion}" in datasets.DATASETS:
            datasets.fetch(f"{folder}/{companion}")
    return datasets.fetch(key)


def find_reference_files(path: str | os.PathLike) -> dict:
    """Files :func:`load_reference` would use for ``path``.

    Returns
    -------
    dict
        ``{"yaml": str, "force_sets": str | None, "force_constants": str | None,
        "born": str | None}``; ``force_constants`` is ``FORCE_CONSTANTS``, else
        ``force_constants.hdf5``. Companions are candidates: ``force_sets`` is read only when
        the yaml has no forces, ``force_constants`` only when it has no force constants,
        ``born`` only when it has no ``nac`` block.
    """
    yaml_path = resolve_yaml(path, _yaml_in_dir, _fetch_dataset)
    folder = yaml_path.parent

    def beside(*names: str) -> str | None:
        return next((str(folder / n) for n in names if (folder / n).is_file()), None)

    return {
        "yaml": str(yaml_path),
        "force_sets": beside("FORCE_SETS"),
        "force_constants": beside("FORCE_CONSTANTS", "force_constants.hdf5"),
        "born": beside("BORN"),
    }


# --------------------------------------------------------------------------------------------
# yaml validation (before phonopy's parser, so that errors name the key)
# --------------------------------------------------------------------------------------------


def _read_yaml(path: Path) -> dict:
    """The parsed yaml (a dict); a missing ``unit_cell`` in a file without a final newline
    is reported as a probable truncation."""
    import yaml

    try:
        with open_text(path) as f:
            text = f.read()
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except Exception as exc:  # yaml syntax, truncation, decompression, encoding
        raise InputError(f"{path}: not a readable phonopy yaml ({one_line(exc)})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: not a phonopy yaml (top level is not a mapping)")
    if "phono3py" in data:
        raise InputError(f"{path}: phono3py yaml; only phonopy-style (fc2) yamls are supported")
    if "unit_cell" not in data and text and not text.endswith("\n"):
        raise InputError(f"{path}: missing key 'unit_cell'; truncated file? (no final newline)")
    return data


def _n_points(data: dict, where: str) -> int:
    cell = get_key(data, "unit_cell", where)
    points = cell.get("points", cell.get("atoms")) if isinstance(cell, dict) else None
    if not isinstance(points, list) or not points:
        raise InputError(f"{where}: 'unit_cell' has no 'points'")
    return len(points)


def _check_type1_displacements(raw, n_sc: int, where: str) -> None:
    """Index range, displacement and force shapes of ``displacements`` (type-1 form)."""
    if not isinstance(raw, list) or not raw:
        raise InputError(f"{where}: 'displacements' is empty or not a list")
    if not all(isinstance(d, dict) for d in raw):
        return  # legacy type-2 form (list of lists): checked after phonopy has parsed it
    with_forces = ["forces" in d for d in raw]
    for k, d in enumerate(raw):
        key = f"displacements[{k}]"
        atom = d.get("atom")
        if isinstance(atom, bool) or not isinstance(atom, int):
            raise InputError(f"{where}: {key}.atom = {atom!r} is not an integer")
        if not 1 <= atom <= n_sc:
            raise InputError(f"{where}: {key}.atom = {atom} is out of range 1..{n_sc}")
        if "displacement" not in d:
            raise InputError(f"{where}: missing key '{key}.displacement'")
        float_array(d["displacement"], (3,), f"{key}.displacement", where)
        if with_forces[k]:
            _table(d["forces"], (n_sc, 3), f"{key}.forces", where)
    if any(with_forces) and not all(with_forces):
        k = with_forces.index(False)
        raise InputError(f"{where}: displacements[{k}] has no 'forces' while others have")


def _table(value, shape: tuple, what: str, where: str) -> np.ndarray:
    """:func:`float_array` with a clear message for ragged or non-numeric nested lists."""
    try:
        np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        want = "x".join("N" if n == -1 else str(n) for n in shape)
        raise InputError(f"{where}: {what} is not a numeric {want} array (ragged?)") from None
    return float_array(value, shape, what, where)


def _yaml_force_constants(data: dict, where: str) -> np.ndarray:
    """``force_constants`` block as (n1, n2, 3, 3), in the file's units."""
    block = data["force_constants"]
    shape = block.get("shape") if isinstance(block, dict) else None
    if not (isinstance(shape, list) and len(shape) == 2 and all(type(n) is int for n in shape)):
        raise InputError(f"{where}: force_constants.shape must be [n1, n2], got {shape!r}")
    n1, n2 = shape
    try:
        elements = np.asarray(block.get("elements"), dtype=float)
    except (TypeError, ValueError):
        elements = np.empty(0)
    if elements.size != n1 * n2 * 9:
        raise InputError(f"{where}: force_constants.elements do not hold {n1}x{n2}x3x3 numbers")
    return float_array(elements.reshape(n1, n2, 3, 3), (n1, n2, 3, 3), "force_constants", where)


def _stored(data: dict, where: str) -> dict:
    """MDR extras (see :class:`PhononReference`), validated; NaN allowed."""
    out: dict = {}
    for key in (*_STORED_LISTS, "phonon_freq", "energy", "volume"):
        if key not in data:
            continue
        ndim = {"phonon_freq": 2, "energy": 0, "volume": 0}.get(key, 1)
        try:
            arr = np.asarray(data[key], dtype=float)
        except (TypeError, ValueError):
            raise InputError(f"{where}: {key} is not numeric") from None
        if arr.ndim != ndim:
            want = ("a number", "a list of numbers", "an (n_q, n_band) table")[ndim]
            raise InputError(f"{where}: {key} has shape {arr.shape}, expected {want}")
        out[key] = float(arr) if ndim == 0 else arr.tolist() if ndim == 1 else arr
    for key in _STORED_LISTS[1:]:
        if key in out and "temperatures" in out and len(out[key]) != len(out["temperatures"]):
            n, m = len(out[key]), len(out["temperatures"])
            raise InputError(f"{where}: {key} has {n} values for {m} temperatures")
    if "nsites" in data:
        if isinstance(data["nsites"], bool) or not isinstance(data["nsites"], int):
            raise InputError(f"{where}: nsites = {data['nsites']!r} is not an integer")
        out["nsites"] = data["nsites"]
    return out


# --------------------------------------------------------------------------------------------
# companion files
# --------------------------------------------------------------------------------------------


def _numeric_lines(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, tokens) of the non-blank lines of a text file, ``#`` comments removed."""
    try:
        with open_text(path) as f:
            lines = f.read().splitlines()
    except Exception as exc:
        raise InputError(f"{path}: unreadable ({one_line(exc)})") from None
    out = [(i + 1, line.split("#", 1)[0].split()) for i, line in enumerate(lines)]
    return [(i, t) for i, t in out if t]


def _floats(tokens: list[str], n: int, path: Path, line: int, what: str) -> list[float]:
    try:
        vals = [float(t) for t in tokens]
    except ValueError:
        vals = []
    if len(vals) != n or not np.all(np.isfinite(vals)):
        raise InputError(f"{path}: line {line}: expected {n} finite numbers ({what}), got {tokens}")
    return vals


def _int(tokens: list[str], path: Path, line: int, what: str) -> int:
    if len(tokens) != 1 or not re.fullmatch(r"[+-]?\d+", tokens[0]):
        raise InputError(f"{path}: line {line}: expected one integer ({what}), got {tokens}")
    return int(tokens[0])


def _read_force_sets(path: Path, n_sc: int) -> dict:
    """FORCE_SETS (type 1 or 2) as a phonopy dataset, in the file's units."""
    lines = _numeric_lines(path)
    if not lines:
        raise InputError(f"{path}: empty file")
    if len(lines[0][1]) == 6:  # type 2: 'dx dy dz fx fy fz' per atom and supercell
        rows = np.array([_floats(t, 6, path, i, "displacement and force") for i, t in lines])
        if len(rows) % n_sc:
            raise InputError(f"{path}: {len(rows)} lines is not a multiple of {n_sc} atoms")
        rows = rows.reshape(-1, n_sc, 6)
        return {"displacements": rows[..., :3].copy(), "forces": rows[..., 3:].copy()}
    natom = _int(lines[0][1], path, lines[0][0], "natom")
    if natom != n_sc:
        raise InputError(f"{path}: natom = {natom}, but the supercell has {n_sc} atoms")
    if len(lines) < 2:
        raise InputError(f"{path}: truncated after natom")
    n_disp = _int(lines[1][1], path, lines[1][0], "number of displacements")
    block = 2 + natom
    if len(lines) != 2 + n_disp * block:
        raise InputError(
            f"{path}: {len(lines) - 2} data lines, expected {n_disp} displacements x {block} "
            "(truncated or wrong count)"
        )
    first_atoms = []
    for k in range(n_disp):
        b = lines[2 + k * block : 2 + (k + 1) * block]
        atom = _int(b[0][1], path, b[0][0], f"displaced atom of displacement {k + 1}")
        if not 1 <= atom <= natom:
            raise InputError(f"{path}: line {b[0][0]}: atom {atom} is out of range 1..{natom}")
        disp = _floats(b[1][1], 3, path, b[1][0], "displacement")
        forces = [_floats(t, 3, path, i, "force") for i, t in b[2:]]
        first_atoms.append(
            {"number": atom - 1, "displacement": np.array(disp), "forces": np.array(forces)}
        )
    return {"natom": natom, "first_atoms": first_atoms}


def _read_force_constants_text(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """FORCE_CONSTANTS text file: (fc (n1, n2, 3, 3), 0-based supercell atom of each row)."""
    lines = _numeric_lines(path)
    header = lines[0][1] if lines else []
    if not 1 <= len(header) <= 2 or not all(re.fullmatch(r"\d+", t) for t in header):
        raise InputError(f"{path}: line 1: expected 'n1 n2' (force constants shape), got {header}")
    n1, n2 = int(header[0]), int(header[-1])
    if len(lines) != 1 + 4 * n1 * n2:
        n = (len(lines) - 1) / 4
        raise InputError(f"{path}: {n:g} blocks for shape ({n1}, {n2}) (truncated or wrong header)")
    fc = np.empty((n1 * n2, 3, 3))
    rows = np.empty(n1, dtype=int)
    for k in range(n1 * n2):
        line, ij = lines[1 + 4 * k]
        if len(ij) != 2 or not all(re.fullmatch(r"\d+", t) for t in ij) or int(ij[1]) != k % n2 + 1:
            raise InputError(f"{path}: line {line}: expected atom pair 'i {k % n2 + 1}', got {ij}")
        rows[k // n2] = int(ij[0]) - 1
        block = lines[2 + 4 * k : 5 + 4 * k]
        fc[k] = [_floats(t, 3, path, n, "force constants row") for n, t in block]
    return fc.reshape(n1, n2, 3, 3), rows


def _read_force_constants(path: Path, primitive, units) -> np.ndarray:
    """FORCE_CONSTANTS or force_constants.hdf5, converted to eV/Å², full or compact."""
    if path.suffix == ".hdf5":
        from phonopy.file_IO import read_force_constants_hdf5
        from phonopy.interface.calculator import get_force_constant_conversion_factor

        try:
            p2s = primitive.p2s_map  # checked against the p2s_map stored with compact fc
            fc, unit = read_force_constants_hdf5(path, p2s, return_physical_unit=True)
            factor = 1.0 if unit is None else get_force_constant_conversion_factor(unit, None)
        except Exception as exc:
            raise InputError(f"{path}: unreadable force constants ({one_line(exc)})") from None
        fc = np.asarray(fc, dtype=float) * factor
        if unit is not None:
            return fc
    else:
        fc, rows = _read_force_constants_text(path)
        full = fc.shape[0] == fc.shape[1]
        expected = np.arange(len(rows)) if full else np.asarray(primitive.p2s_map)
        if len(rows) == len(expected) and not np.array_equal(rows, expected):
            raise InputError(
                f"{path}: rows are for supercell atoms {(rows + 1).tolist()[:6]}..., expected "
                f"{(expected + 1).tolist()[:6]}... ({'full' if full else 'compact'} form)"
            )
    return fc * units.force_to_eVperA / units.distance_to_A


# --------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------


def _label(yaml_path: Path) -> str:
    stem = re.sub(r"\.ya?ml$", "", _strip_compression(yaml_path.name), flags=re.IGNORECASE)
    if re.match(r"phono3?py", stem, flags=re.IGNORECASE):
        return yaml_path.resolve().parent.name
    return stem


def _check_dataset(dataset: dict, n_sc: int, where: str) -> bool:
    """Shapes of a parsed dataset; True when it has forces."""
    if "first_atoms" in dataset:
        return all("forces" in d for d in dataset["first_atoms"])
    disps = float_array(
        dataset.get("displacements"), (-1, n_sc, 3), "dataset displacements", where
    )
    if "forces" not in dataset:
        return False
    float_array(dataset["forces"], disps.shape, "dataset forces", where)
    return True


def _count(dataset: dict | None) -> int:
    if dataset is None:
        return 0
    return len(dataset["first_atoms"] if "first_atoms" in dataset else dataset["displacements"])


def _match_force_sets(fs: dict, yaml_ds: dict | None, fs_path: Path, where: str) -> None:
    """FORCE_SETS displacements must be those of the yaml (count, atoms, vectors)."""
    if yaml_ds is None:
        return
    n_fs, n_yaml = _count(fs), _count(yaml_ds)
    if n_fs != n_yaml:
        raise InputError(f"{fs_path}: {n_fs} displacements, but {where} has {n_yaml}")
    if "first_atoms" in fs and "first_atoms" in yaml_ds:
        pairs = zip(fs["first_atoms"], yaml_ds["first_atoms"], strict=True)
        for k, (a, b) in enumerate(pairs):
            same = np.allclose(a["displacement"], b["displacement"], atol=_DISP_TOL)
            if a["number"] != b["number"] or not same:
                raise InputError(
                    f"{fs_path}: displacement {k + 1} (atom {a['number'] + 1}, "
                    f"{np.round(a['displacement'], 6).tolist()}) differs from {where} "
                    f"displacements[{k}] (atom {b['number'] + 1}, "
                    f"{np.round(b['displacement'], 6).tolist()})"
                )


def _scaled_dataset(dataset: dict, length: float, force: float) -> dict:
    """Copy of ``dataset`` with displacements × ``length`` and forces × ``force``."""
    if "first_atoms" in dataset:
        first = [
            {
                **d,
                "number": int(d["number"]),
                "displacement": np.asarray(d["displacement"], dtype=float) * length,
                "forces": np.asarray(d["forces"], dtype=float) * force,
            }
            for d in dataset["first_atoms"]
        ]
        return {**dataset, "natom": int(dataset["natom"]), "first_atoms": first}
    return {
        **dataset,
        "displacements": np.asarray(dataset["displacements"], dtype=float) * length,
        "forces": np.asarray(dataset["forces"], dtype=float) * force,
    }


def _to_ase(cell) -> Atoms:
    atoms = Atoms(
        numbers=cell.numbers,
        cell=cell.cell,
        scaled_positions=cell.scaled_positions,
        masses=None if cell.masses is None else np.asarray(cell.masses, dtype=float),
        pbc=True,
    )
    if cell.magnetic_moments is not None:
        atoms.set_initial_magnetic_moments(np.asarray(cell.magnetic_moments, dtype=float))
    return atoms


def _check_nac(nac: dict, n_prim: int, where: str) -> dict:
    out = dict(nac)
    out["born"] = float_array(nac.get("born"), (n_prim, 3, 3), "Born charges", where)
    out["dielectric"] = float_array(nac.get("dielectric"), (3, 3), "dielectric tensor", where)
    return out


def load_reference(path: str | os.PathLike) -> PhononReference:
    """Read a DFT phonon reference calculation.

    Parameters
    ----------
    path : str or os.PathLike
        A phonopy-style yaml (plain/.gz/.bz2/.xz), a folder holding ``phonopy_params.yaml``,
        ``phonopy.yaml`` or ``phonopy_disp.yaml`` (first found), or a name of
        :mod:`pftlite.datasets.registry` (a yaml file such as ``"mdr/mp-149"``, or a folder such as
        ``"phonopy/NaCl"``). Forces come from the yaml, else ``FORCE_SETS`` beside it; force
        constants from the yaml, else ``FORCE_CONSTANTS``, else ``force_constants.hdf5``; NAC
        from the yaml's ``nac`` block, else ``BORN``. phono3py data (a yaml whose first key is
        ``phono3py:``, a folder holding one, or a ``"phono3py/..."`` dataset name) is read by
        :func:`pftlite.datasets.phono3py_refs.load_fc3_reference`; its fc2 part is returned
        (:func:`pftlite.datasets.phono3py_refs.phonon_reference`).

    Returns
    -------
    PhononReference

    Raises
    ------
    InputError
        Missing, unreadable or inconsistent input (one line naming the file and key).
    pftlite.core.errors.DataUnavailable
        A dataset name whose files are neither local nor downloadable.
    """
    from phonopy.harmonic.force_constants import compact_fc_to_full_fc
    from phonopy.interface.phonopy_yaml import load_phonopy_yaml
    from phonopy.physical_units import get_calculator_physical_units
    from phonopy.structure.cells import get_primitive, get_supercell

    from pftlite.datasets.reference import is_phono3py_source
    from pftlite.datasets.registry import RELAXED_UNDER_PRESSURE_GPA

    if is_phono3py_source(path):  # phono3py data: its fc2 part, read by pftlite.datasets.phono3py_refs
        from pftlite.datasets.phono3py_refs import load_fc3_reference, phonon_reference

        return phonon_reference(load_fc3_reference(path))
    found = find_reference_files(path)
    yaml_path = Path(found["yaml"])
    where = str(yaml_path)
    data = _read_yaml(yaml_path)

    # raw checks first: phonopy's parser would fail on these with untraceable messages
    n_unit = _n_points(data, where)
    smat = supercell_matrix_of(data, where)
    n_sc = n_unit * round(abs(np.linalg.det(smat)))
    sc_block = data.get("supercell")
    if isinstance(sc_block, dict) and isinstance(sc_block.get("points"), list):
        if len(sc_block["points"]) != n_sc:
            raise InputError(
                f"{where}: supercell has {len(sc_block['points'])} atoms but supercell_matrix "
                f"{smat.tolist()} x {n_unit} unit-cell atoms gives {n_sc}"
            )
    if "displacements" in data:
        _check_type1_displacements(data["displacements"], n_sc, where)
    yaml_fc = _yaml_force_constants(data, where) if "force_constants" in data else None

    skip = ("supercell_matrix", "primitive_matrix", "force_constants")
    try:
        kept = {k: v for k, v in data.items() if k not in skip}
        parsed = load_phonopy_yaml({**kept, "natom": n_sc})  # natom: if no supercell block
        units = get_calculator_physical_units(parsed.calculator)
    except Exception as exc:
        raise InputError(f"{where}: phonopy cannot parse this yaml ({one_line(exc)})") from None
    if parsed.unitcell is None or len(parsed.unitcell) != n_unit:
        raise InputError(f"{where}: 'unit_cell' lacks 'lattice', or points lack coordinates/symbol")
    converted = (units.distance_to_A, units.force_to_eVperA) != (1.0, 1.0)
    unitcell = parsed.unitcell.copy()
    lattice = float_array(unitcell.cell, (3, 3), "unit_cell.lattice", where)
    unitcell.cell = lattice * units.distance_to_A
    float_array(unitcell.scaled_positions, (n_unit, 3), "unit_cell coordinates", where)
    pmat = primitive_matrix_of(data, unitcell, n_unit, where)
    try:  # as phonopy.Phonopy builds them, without its symmetry search
        supercell = get_supercell(unitcell, smat, is_old_style=True, symprec=SYMPREC)
        primitive = get_primitive(supercell, np.linalg.inv(smat) @ pmat, SYMPREC)
    except Exception as exc:
        raise InputError(
            f"{where}: phonopy cannot build the cells from supercell_matrix and primitive_matrix "
            f"({one_line(exc)})"
        ) from None
    n_prim = len(primitive)

    files = [where]
    dataset = parsed.dataset
    has_forces = dataset is not None and _check_dataset(dataset, n_sc, where)
    if not has_forces and found["force_sets"]:
        fs_path = Path(found["force_sets"])
        force_sets = _read_force_sets(fs_path, n_sc)
        _check_dataset(force_sets, n_sc, str(fs_path))
        _match_force_sets(force_sets, dataset, fs_path, where)
        dataset, has_forces = force_sets, True
        files.append(str(fs_path))
    if has_forces:
        dataset = _scaled_dataset(dataset, units.distance_to_A, units.force_to_eVperA)
    else:
        dataset = None

    fc_where = where
    if yaml_fc is not None:
        fc = yaml_fc * units.force_to_eVperA / units.distance_to_A
    elif found["force_constants"]:
        fc_where = found["force_constants"]
        fc = _read_force_constants(Path(fc_where), primitive, units)
        files.append(fc_where)
    else:
        fc = None
    if fc is not None:
        if fc.shape not in ((n_sc, n_sc, 3, 3), (n_prim, n_sc, 3, 3)):
            raise InputError(
                f"{fc_where}: force_constants have shape {fc.shape}, expected full "
                f"({n_sc}, {n_sc}, 3, 3) or compact ({n_prim}, {n_sc}, 3, 3)"
            )
        if fc.shape[0] != fc.shape[1]:
            fc = np.ascontiguousarray(compact_fc_to_full_fc(primitive, fc))
    if dataset is None and fc is None:
        raise InputError(
            f"{where}: no DFT forces or force constants (yaml without forces and no FORCE_SETS, "
            "FORCE_CONSTANTS or force_constants.hdf5 beside it)"
        )

    nac, nac_where = parsed.nac_params, f"{where}: nac"
    if nac is None and found["born"]:
        from phonopy.file_IO import parse_BORN

        nac_where = found["born"]
        try:
            nac = parse_BORN(primitive, symprec=SYMPREC, filename=nac_where)
        except Exception as exc:
            raise InputError(f"{nac_where}: unreadable BORN file ({one_line(exc)})") from None
        files.append(nac_where)
    if nac is not None:
        nac = _check_nac(nac, n_prim, nac_where)
        if nac.get("factor") is None or converted:  # the factor for Å and eV/Å
            nac["factor"] = get_calculator_physical_units(None).nac_factor

    return PhononReference(
        name=_label(yaml_path),
        source=where,
        files=tuple(files),
        unitcell=_to_ase(unitcell),
        supercell_matrix=smat,
        primitive_matrix=np.asarray(pmat, dtype=float),
        dataset=dataset,
        force_constants=fc,
        nac_params=nac,
        stored=_stored(data, where),
        pressure_GPa=RELAXED_UNDER_PRESSURE_GPA.get(str(path).rstrip("/"), 0.0),
    )
