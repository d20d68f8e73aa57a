"""Structure and reference-data readers returning ``ase.Atoms``, and input validation.

Label convention for every reader that returns reference data:

- ``atoms.info["energy"]``: total energy, eV (float);
- ``atoms.arrays["forces"]``: forces, eV/Å, shape (N, 3);
- ``atoms.info["stress"]``: stress, eV/Å³, Voigt order (xx, yy, zz, yz, xz, xy), ASE sign
  (positive = tensile, i.e. the cell wants to shrink), shape (6,);
- ``atoms.info["source"]``: ``"<file name>[<frame index>]"``.

Every failure raises :class:`~pftlite.core.errors.InputError` with a one-line message that starts
with the offending file (or the ``source`` given to :func:`check_structure`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

from pftlite.core.errors import InputError
from pftlite.core.units import kbar_compressive_to_ase_stress
from pftlite.structures.textio import base_name, float_array, get_key, one_line, open_text

# mlearn virial_stress order [xx, yy, zz, xy, yz, xz] -> ASE Voigt [xx, yy, zz, yz, xz, xy]
_MLEARN_TO_ASE_VOIGT = [0, 1, 2, 4, 5, 3]


def _existing_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: not a regular file")
    return path


def _select(items: list, index, path: Path) -> list:
    """``items[index]`` as a list; ``index`` is an int, a slice or an ASE-style string."""
    from ase.io.formats import string2index

    try:
        sel = string2index(index) if isinstance(index, str) else index
        out = items[sel]
    except (ValueError, IndexError, TypeError) as exc:
        raise InputError(f"{path}: bad index {index!r} for {len(items)} frames ({exc})") from None
    return list(out) if isinstance(sel, slice) else [out]


def _sniff(path: Path) -> str:
    """Format from the file name, else from the first bytes: 'phonopy-yaml', 'json' or 'ase'."""
    name = base_name(path)
    if name.endswith((".yaml", ".yml")):
        return "phonopy-yaml"
    if name.endswith(".json"):
        return "json"
    try:
        with open_text(path) as f:
            head = f.read(4096)
    except Exception:  # binary or corrupt: leave it to ase.io.read
        return "ase"
    stripped = head.lstrip()
    if stripped.startswith("["):
        return "json"
    keys = ("unit_cell:", "phonopy:", "displacements:", "primitive_cell:", "supercell:")
    if any(line.startswith(keys) for line in head.splitlines()):
        return "phonopy-yaml"
    return "ase"


def read_structures(path: str | os.PathLike, index=":") -> list[Atoms]:
    """Read structures from any supported file.

    Parameters
    ----------
    path : str or os.PathLike
        - phonopy / phono3py / MDR yaml (``*.yaml``, ``*.yml``, optionally ``.gz``/``.bz2``/
          ``.xz``): the ``unit_cell`` (one structure);
        - mlearn JSON (``*.json``, ``*.json.gz``): all entries, with reference labels
          (see :func:`read_mlearn`);
        - anything ``ase.io.read`` reads (extxyz, POSCAR/vasp, cif, ...), read as-is.
    index : str, int or slice
        Frames to return, ASE-style (``":"``, ``"-1"``, ``"2:5"``, 0, ...).

    Returns
    -------
    list of ase.Atoms
    """
    path = _existing_file(path)
    fmt = _sniff(path)
    if fmt == "phonopy-yaml":
        return _select([read_phonopy_yaml_cell(path)], index, path)
    if fmt == "json":
        data = _load_json(path)
        if isinstance(data, list):
            return _select(_mlearn_from_data(data, path), index, path)
    return _read_ase(path, index)  # e.g. ASE's own JSON database format


def _read_ase(path: Path, index) -> list[Atoms]:
    import ase.io

    try:
        frames = ase.io.read(path, index=index)
    except Exception as exc:  # ASE raises many types for unknown/garbled input
        msg = f"{path}: cannot read structures with ase.io.read ({one_line(exc)})"
        raise InputError(msg) from None
    frames = frames if isinstance(frames, list) else [frames]
    if not frames:
        raise InputError(f"{path}: no structures found")
    return frames


_YAML_HEADER_KEYS = ("unit_cell", "physical_unit", "phonopy", "phono3py")


def _yaml_top_blocks(text: str, keys: tuple[str, ...]) -> str:
    """The top-level blocks ``key: ...`` of a block-style yaml text whose key is in ``keys``.

    Lets us parse a few hundred lines of a phonopy yaml instead of all of it (MDR yamls carry
    ~37k lines of force constants).
    """
    out, keep = [], False
    for line in text.splitlines(keepends=True):
        if line[:1] not in ("", " ", "\t", "-", "#", "\n", "\r"):  # a new top-level key
            keep = line.split(":", 1)[0].strip() in keys
        if keep:
            out.append(line)
    return "".join(out)


def read_phonopy_yaml_cell(path: str | os.PathLike) -> Atoms:
    """Unit cell of a phonopy-style yaml (phonopy.yaml, phonopy_disp.yaml, MDR, phono3py).

    Only the ``unit_cell``, ``physical_unit`` and ``phonopy``/``phono3py`` blocks are parsed;
    force constants and displacements are skipped. Masses stored in the yaml are kept. Lengths
    in calculator units (e.g. bohr for QE) are converted to Å. Plain, ``.gz``, ``.bz2`` and
    ``.xz`` files are accepted.

    Returns
    -------
    ase.Atoms
        Periodic cell (Å), ``info["source"]`` set to the file name.
    """
    import yaml
    from phonopy.interface.phonopy_yaml import parse_cell_dict
    from phonopy.physical_units import get_calculator_physical_units

    path = _existing_file(path)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        with open_text(path) as f:
            head = yaml.load(_yaml_top_blocks(f.read(), _YAML_HEADER_KEYS), Loader=loader)
    except Exception as exc:  # yaml syntax, truncation, decompression, encoding
        raise InputError(f"{path}: not a readable phonopy yaml ({one_line(exc)})") from None
    if not isinstance(head, dict) or not isinstance(head.get("unit_cell"), dict):
        raise InputError(f"{path}: phonopy yaml without a 'unit_cell' block")
    try:
        cell = parse_cell_dict(head["unit_cell"])
    except Exception as exc:
        raise InputError(f"{path}: malformed 'unit_cell' block ({one_line(exc)})") from None
    if cell is None:
        raise InputError(f"{path}: 'unit_cell' block lacks 'lattice' or 'points'")
    n = len(head["unit_cell"].get("points", []))
    where = f"{path}: unit_cell"
    lattice = float_array(cell.cell, (3, 3), "lattice", where)
    frac = float_array(cell.scaled_positions, (n, 3), "points.coordinates", where)
    if len(cell.symbols) != n:
        raise InputError(f"{where}: {n} points but {len(cell.symbols)} symbols")
    command = head.get("phono3py") or head.get("phonopy") or {}
    calculator = command.get("calculator") if isinstance(command, dict) else None
    try:
        to_angstrom = get_calculator_physical_units(calculator).distance_to_A
    except Exception as exc:
        raise InputError(f"{path}: unknown calculator {calculator!r} ({one_line(exc)})") from None
    atoms = Atoms(
        symbols=list(cell.symbols),
        cell=lattice * to_angstrom,
        scaled_positions=frac,
        masses=None if cell.masses is None else np.asarray(cell.masses, dtype=float),
        pbc=True,
    )
    atoms.info["source"] = path.name
    return atoms


def _pymatgen_structure_to_atoms(d: dict, where: str) -> Atoms:
    """ase.Atoms from a pymatgen ``Structure.as_dict()`` without importing pymatgen."""
    matrix = float_array(get_key(d, "lattice.matrix", where), (3, 3), "lattice.matrix", where)
    sites = get_key(d, "sites", where)
    if not isinstance(sites, list) or not sites:
        raise InputError(f"{where}: 'structure.sites' is empty or not a list")
    symbols, frac, cart = [], [], []
    for k, site in enumerate(sites):
        species = site.get("species") if isinstance(site, dict) else None
        if not species or not isinstance(species, list) or "element" not in species[0]:
            raise InputError(f"{where}: site {k} has no species[0].element")
        if len(species) > 1 or float(species[0].get("occu", 1.0)) != 1.0:
            raise InputError(f"{where}: site {k} is partially occupied (disorder unsupported)")
        symbols.append(str(species[0]["element"]))
        if "abc" in site:
            frac.append(site["abc"])
        elif "xyz" in site:
            cart.append(site["xyz"])
        else:
            raise InputError(f"{where}: site {k} has neither 'abc' nor 'xyz'")
    if frac and cart:
        raise InputError(f"{where}: sites mix 'abc' and 'xyz' coordinates")
    unknown = sorted(set(symbols) - set(chemical_symbols[1:]))
    if unknown:
        raise InputError(f"{where}: unknown element symbol(s) {', '.join(unknown)}")
    pbc = d["lattice"].get("pbc", True)
    if frac:
        pos = float_array(frac, (len(sites), 3), "site 'abc'", where)
        return Atoms(symbols=symbols, cell=matrix, scaled_positions=pos, pbc=pbc)
    pos = float_array(cart, (len(sites), 3), "site 'xyz'", where)
    return Atoms(symbols=symbols, cell=matrix, positions=pos, pbc=pbc)


def read_mlearn(path: str | os.PathLike) -> list[Atoms]:
    """Read an mlearn (Zuo et al. 2020) JSON dataset, plain or ``.gz``.

    The file is a list of dicts with ``structure`` (pymatgen dict; parsed here without
    pymatgen), ``outputs.energy`` (eV, total), ``outputs.forces`` (N x 3, eV/Å) and optionally
    ``outputs.virial_stress`` (order xx, yy, zz, xy, yz, xz; kbar, positive = compressive,
    VASP style).

    Returns
    -------
    list of ase.Atoms
        With ``info["energy"]`` (eV), ``arrays["forces"]`` (N, 3; eV/Å), ``info["stress"]``
        (6,; eV/Å³, ASE Voigt order and sign, ``-value * 0.1 / 160.2177``; only if present in
        the file), ``info["group"]``, ``info["description"]`` and ``info["source"]``.
    """
    path = _existing_file(path)
    return _mlearn_from_data(_load_json(path), path)


def _load_json(path: Path):
    """Parsed JSON of a plain or compressed file; InputError if unreadable."""
    try:
        with open_text(path) as f:
            return json.load(f)
    except Exception as exc:  # JSON syntax, truncated gzip, bad encoding
        raise InputError(f"{path}: not readable as JSON ({one_line(exc)})") from None


def _mlearn_from_data(data, path: Path) -> list[Atoms]:
    if not isinstance(data, list) or not data:
        raise InputError(f"{path}: expected a non-empty JSON list of mlearn entries")
    return [_mlearn_entry(entry, path, i) for i, entry in enumerate(data)]


def _mlearn_entry(entry, path: Path, i: int) -> Atoms:
    where = f"{path}: entry {i}"
    if not isinstance(entry, dict):
        raise InputError(f"{where}: expected a dict, got {type(entry).__name__}")
    atoms = _pymatgen_structure_to_atoms(get_key(entry, "structure", where), where)
    n = len(atoms)
    energy = float_array(get_key(entry, "outputs.energy", where), (), "outputs.energy", where)
    forces = float_array(get_key(entry, "outputs.forces", where), (n, 3), "outputs.forces", where)
    atoms.info["energy"] = float(energy)
    atoms.arrays["forces"] = forces
    virial = entry["outputs"].get("virial_stress")
    if virial is not None:
        virial = float_array(virial, (6,), "outputs.virial_stress", where)
        atoms.info["stress"] = kbar_compressive_to_ase_stress(virial[_MLEARN_TO_ASE_VOIGT])
    atoms.info["group"] = str(entry.get("group", ""))
    atoms.info["description"] = str(entry.get("description", ""))
    atoms.info["source"] = f"{path.name}[{i}]"
    return atoms


def _stress_voigt(value, where: str) -> np.ndarray:
    """Stress as ASE Voigt (6,) from Voigt (6,), flat (9,) or (3, 3) input (eV/Å³)."""
    try:
        arr = np.asarray(value, dtype=float).ravel()
    except (TypeError, ValueError):
        raise InputError(f"{where}: stress is not numeric") from None
    if arr.size == 9:
        s = float_array(arr.reshape(3, 3), (3, 3), "stress", where)
        if not np.allclose(s, s.T, rtol=1e-6, atol=1e-10):
            raise InputError(f"{where}: 3x3 stress is not symmetric")
        arr = s[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
    return float_array(arr, (6,), "stress (Voigt 6 or 3x3)", where)


def read_extxyz_labels(
    path: str | os.PathLike,
    energy_key: str = "energy",
    forces_key: str = "forces",
    stress_key: str = "stress",
) -> list[Atoms]:
    """Read an (ext)xyz file and normalise its reference labels.

    Labels are taken from the ``SinglePointCalculator`` that ``ase.io.read`` attaches, else
    from ``info[energy_key]``, ``arrays[forces_key]`` and ``info[stress_key]``. When
    ``forces_key`` is the default ``"forces"`` and absent, a per-atom ``"force"`` array is used
    (ACEData files write ``energy=`` and ``force``).

    Parameters
    ----------
    path : str or os.PathLike
        Extended-XYZ file (plain or compressed).
    energy_key, forces_key, stress_key : str
        Names of the total energy (eV), forces (N x 3, eV/Å) and stress (eV/Å³, ASE sign;
        Voigt 6, flat 9 or 3 x 3) in the file.

    Returns
    -------
    list of ase.Atoms
        No calculator attached; ``info["energy"]`` and ``arrays["forces"]`` always set (missing
        ones raise InputError), ``info["stress"]`` (6,) when present, ``info["source"]``.
    """
    path = _existing_file(path)
    frames = _read_ase(path, ":")
    keys = (energy_key, forces_key, stress_key)
    return [_normalise_labels(a, path, i, *keys) for i, a in enumerate(frames)]


def _normalise_labels(atoms, path, i, energy_key, forces_key, stress_key) -> Atoms:
    """Copy of frame ``i`` without calculator, labels moved to the pftlite convention."""
    where = f"{path}: frame {i}"
    results = dict(atoms.calc.results) if atoms.calc is not None else {}
    out = atoms.copy()  # drops the calculator
    info, arrays = out.info, out.arrays
    energy = info.pop(energy_key, results.get(energy_key))
    if forces_key in arrays:
        forces = arrays.pop(forces_key)
    elif forces_key in results:
        forces = results[forces_key]
    elif forces_key == "forces" and "force" in arrays:
        forces = arrays.pop("force")
    else:
        forces = None
    stress = info.pop(stress_key, results.get(stress_key))
    if energy is None:
        raise InputError(f"{where}: no energy under '{energy_key}' (info keys: {sorted(info)})")
    if forces is None:
        raise InputError(f"{where}: no forces under '{forces_key}' (arrays: {sorted(arrays)})")
    info["energy"] = float(float_array(energy, (), "energy", where))
    arrays["forces"] = float_array(forces, (len(out), 3), "forces", where)
    if stress is not None:
        info["stress"] = _stress_voigt(stress, where)
    info["source"] = f"{path.name}[{i}]"
    return out


def check_structure(atoms: Atoms, source: str, species=None, min_distance: float = 0.1) -> None:
    """Validate a structure for pftlite; raise InputError with a one-line message if bad.

    Checks, in order: non-empty; finite positions and cell; 3D periodic, non-singular cell;
    every element in ``species``; no two atoms (including periodic images) closer than
    ``min_distance``.

    Parameters
    ----------
    atoms : ase.Atoms
    source : str
        Name used at the start of error messages (file name, frame, ...).
    species : sequence of int, optional
        Atomic numbers the model supports; ``None`` skips the check.
    min_distance : float
        Smallest allowed interatomic distance, Å; ``<= 0`` skips the check.
    """
    if len(atoms) == 0:
        raise InputError(f"{source}: empty structure (no atoms)")
    if not np.all(np.isfinite(atoms.positions)):
        bad = int(np.flatnonzero(~np.isfinite(atoms.positions).all(axis=1))[0])
        raise InputError(f"{source}: atom {bad} has NaN or inf position")
    cell = np.asarray(atoms.cell[:], dtype=float)
    if not np.all(np.isfinite(cell)):
        raise InputError(f"{source}: cell contains NaN or inf")
    if not np.all(atoms.pbc):
        raise InputError(
            f"{source}: pbc={[bool(p) for p in atoms.pbc]}; pftlite needs a 3D periodic cell "
            "(pbc=True along all three lattice vectors)"
        )
    volume = abs(float(np.linalg.det(cell)))
    lengths = np.linalg.norm(cell, axis=1)
    if volume <= 1e-6 * max(float(np.prod(lengths)), 1e-30):
        raise InputError(
            f"{source}: cell is singular (volume {volume:.3g} Å³); pftlite needs a 3D periodic "
            "cell with three linearly independent lattice vectors"
        )
    if species is not None:
        allowed = {int(z) for z in species}
        missing = sorted(set(atoms.numbers.tolist()) - allowed)
        if missing:
            bad = ", ".join(f"{chemical_symbols[z]} (Z={z})" for z in missing)
            names = ", ".join(chemical_symbols[z] for z in sorted(allowed)) or "none"
            raise InputError(
                f"{source}: element {bad} not supported by the model (model species: {names})"
            )
    if min_distance > 0:
        from ase.geometry import minkowski_reduce
        from ase.neighborlist import neighbor_list

        shortest = float(np.linalg.norm(minkowski_reduce(cell)[0], axis=1).min())
        if shortest < min_distance:  # each atom overlaps its own image (and ase would loop long)
            raise InputError(
                f"{source}: the shortest lattice vector is {shortest:.4g} Å, so every atom is that "
                f"close to its own periodic image (< min_distance {min_distance} Å): is the cell in Å?"
            )

        i, j, d = neighbor_list("ijd", atoms, float(min_distance))
        if len(d):
            k = int(np.argmin(d))
            a, b = int(i[k]), int(j[k])
            raise InputError(
                f"{source}: atoms {a} ({atoms[a].symbol}) and {b} ({atoms[b].symbol}) are "
                f"{d[k]:.4f} Å apart (< min_distance {min_distance} Å)"
            )


def read_phonopy_supercell_matrix(path: str | os.PathLike):
    """``supercell_matrix`` (3, 3) int of a phonopy-style yaml, or None if it has none."""
    import yaml

    path = _existing_file(path)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        with open_text(path) as f:
            head = yaml.load(_yaml_top_blocks(f.read(), ("supercell_matrix",)), Loader=loader)
    except Exception as exc:
        raise InputError(f"{path}: not a readable phonopy yaml ({one_line(exc)})") from None
    if not isinstance(head, dict) or "supercell_matrix" not in head:
        return None
    m = np.asarray(head["supercell_matrix"])
    if m.shape != (3, 3) or not np.all(np.equal(np.round(m), m)):
        raise InputError(f"{path}: supercell_matrix must be 3x3 integers, got {m.tolist()}")
    return m.astype(int)




