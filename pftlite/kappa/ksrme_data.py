"""The κ_SRME reference set: the 103 PhononDB-PBE materials, their DFT κ, and published scores.

Reference data (k_SRME repository, GPL-3.0, fetched by registered name, never bundled); file
conventions in :mod:`pftlite.kappa.ksrme`. Units: κ W/m-K, frequencies THz, heat capacities eV/K.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pftlite.core.errors import InputError

#: space group number -> prototype suffix used in k_SRME's ``desc`` ("SrO-rs").
PROTOTYPES = {225: "rs", 216: "zb", 186: "wz"}
#: Relative tolerance of the loader's check Σ mode / Σ weights = κ̄ (measured worst: 9.1e-11).
MODE_SUM_RTOL = 1e-6
#: K; the benchmark temperature (the reference file holds only this one).
REFERENCE_TEMPERATURE = 300.0


_STRUCT_KEYS = ("fc2_supercell", "fc3_supercell", "q_mesh", "mp_id", "name", "symm.no")


_KAPPA_KEYS = (
    "mp_id", "name", "symm.no", "q_mesh", "temperatures", "kappa_TOT_ave",
    "mode_kappa_TOT_ave", "qpoints", "weights", "frequencies", "heat_capacity",
)  # fmt: skip


_KAPPA_ALIASES = {
    "kappa_TOT_ave": ("kappa_tot_avg",),
    "mode_kappa_TOT_ave": ("mode_kappa_tot_avg",),
    "qpoints": ("q_points",),
    "q_mesh": ("q_point_mesh",),
}


@dataclass(frozen=True, eq=False)
class KsrmeMaterial:
    """One benchmark material with its DFT reference at 300 K.

    Attributes
    ----------
    mp_id, name : str
        Materials Project id (or ``no-mp-N``) and formula, e.g. ``"mp-2472"``, ``"SrO"``.
    spacegroup : int
        225 (rocksalt), 216 (zincblende) or 186 (wurtzite).
    atoms : ase.Atoms
        Unit cell as given (8 atoms conventional fcc, 4 atoms wurtzite), Å.
    fc2_supercell, fc3_supercell : (3, 3) int
        Supercell matrices of the unit cell.
    primitive_matrix : (3, 3) float
        Unit cell -> primitive cell (identity where the file has none).
    q_mesh : (3,) int
        Γ-centred mesh in the primitive reciprocal basis.
    temperatures : (nT,) float
        K; the temperatures of the reference file (``[300.]``).
    kappa_tot_ave : float
        DFT κ̄ at 300 K, W/m-K.
    mode_kappa_tot_ave : (n_ir, nb)
        Per-mode κ̄ at 300 K, weights included (Σ / Σ weights = κ̄), W/m-K.
    qpoints : (n_ir, 3)
        Irreducible q-points, reduced coordinates of the primitive reciprocal lattice.
    weights : (n_ir,) int
        Multiplicities; Σ = prod(q_mesh).
    frequencies : (n_ir, nb)
        THz.
    heat_capacity : (n_ir, nb)
        Mode heat capacities at 300 K, eV/K.
    """

    mp_id: str
    name: str
    spacegroup: int
    atoms: object
    fc2_supercell: np.ndarray
    fc3_supercell: np.ndarray
    primitive_matrix: np.ndarray
    q_mesh: np.ndarray
    temperatures: np.ndarray
    kappa_tot_ave: float
    mode_kappa_tot_ave: np.ndarray
    qpoints: np.ndarray
    weights: np.ndarray
    frequencies: np.ndarray
    heat_capacity: np.ndarray

    @property
    def prototype(self) -> str:
        """``"rs"``, ``"zb"`` or ``"wz"``."""
        return PROTOTYPES.get(self.spacegroup, str(self.spacegroup))

    @property
    def desc(self) -> str:
        """k_SRME's label, e.g. ``"SrO-rs"``."""
        return f"{self.name}-{self.prototype}"

    @property
    def species(self) -> tuple[str, ...]:
        """Sorted element symbols."""
        return tuple(sorted(set(self.atoms.get_chemical_symbols())))

    def as_result(self) -> dict:
        """The reference as a KappaResult-like dict (for plots and :func:`mode_kappa_tot_ave`)."""
        return {
            "temperatures": np.array([REFERENCE_TEMPERATURE]),
            "mesh": self.q_mesh,
            "qpoints": self.qpoints,
            "weights": self.weights,
            "frequencies": self.frequencies,
            "heat_capacity": self.heat_capacity[None],
            "kappa_tot_ave": np.array([self.kappa_tot_ave]),
            "mode_kappa_tot_ave": self.mode_kappa_tot_ave[None],
        }


def _frozen(a, dtype=float) -> np.ndarray:
    out = np.array(a, dtype=dtype)
    out.setflags(write=False)
    return out


def _array(path, row: str, key: str, value, shape: tuple, dtype=float) -> np.ndarray:
    """``value`` as an array of ``shape`` (None entries are free), else a one-line InputError."""
    try:
        arr = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError):
        raise InputError(f"{path}: {row} key {key!r} is not a numeric array") from None
    ok = arr.ndim == len(shape) and all(s is None or s == n for s, n in zip(shape, arr.shape))
    if not ok:
        want = str(tuple("n" if s is None else s for s in shape)).replace("'", "")
        raise InputError(f"{path}: {row} key {key!r} has shape {arr.shape}, expected {want}")
    if dtype is float and not np.all(np.isfinite(arr)):
        raise InputError(f"{path}: {row} key {key!r} contains NaN or inf")
    return arr


def read_kappa_table(path) -> dict[str, dict]:
    """Rows of a pandas ``to_json`` table (gzipped or plain JSON), keyed by ``mp_id``.

    Returns ``{mp_id: {column: value}}`` in the file's row order (numeric row labels sorted).
    Snake-case Matbench names (``kappa_tot_avg``, ...) are renamed to k_SRME's.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        text = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
        table = json.loads(text)
    except (OSError, EOFError, ValueError) as exc:
        msg = " ".join(str(exc).split())
        raise InputError(f"{path}: not a (gzipped) pandas JSON table: {msg}") from None
    if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
        raise InputError(f"{path}: not a pandas to_json table (column -> {{row -> value}})")
    for key, aliases in _KAPPA_ALIASES.items():
        for alias in aliases:
            if key not in table and alias in table:
                table[key] = table.pop(alias)
    for key in _KAPPA_KEYS:
        if key not in table:
            raise InputError(f"{path}: missing key {key!r}")
    rows = list(table["mp_id"])
    for key in _KAPPA_KEYS:
        if set(table[key]) != set(rows):
            raise InputError(f"{path}: key {key!r} has other rows than 'mp_id'")
    rows.sort(key=lambda r: (0, int(r)) if str(r).isdigit() else (1, str(r)))
    out: dict[str, dict] = {}
    for r in rows:
        mp_id = table["mp_id"][r]
        if not isinstance(mp_id, str) or not mp_id:
            raise InputError(f"{path}: row {r} has no valid 'mp_id'")
        if mp_id in out:
            raise InputError(f"{path}: duplicate mp_id {mp_id!r}")
        out[mp_id] = {key: table[key][r] for key in table}
    return out


def read_structures(path) -> dict[str, object]:
    """Unit cells of the extxyz file keyed by ``info["mp_id"]`` (file order), info checked."""
    from ase.io import read

    path = Path(path)
    try:
        frames = read(path, index=":", format="extxyz")
    except Exception as exc:  # noqa: BLE001 (ase raises many types for a damaged file)
        msg = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise InputError(f"{path}: cannot read as extxyz: {msg}") from None
    out = {}
    for i, atoms in enumerate(frames):
        where = f"structure {i} ({atoms.get_chemical_formula()})"
        for key in _STRUCT_KEYS:
            if key not in atoms.info:
                raise InputError(f"{path}: {where} lacks info key {key!r}")
        mp_id = str(atoms.info["mp_id"])
        if mp_id in out:
            raise InputError(f"{path}: duplicate mp_id {mp_id!r}")
        for key in ("fc2_supercell", "fc3_supercell"):
            m = _array(path, where, key, atoms.info[key], (3, 3))
            if not np.allclose(m, np.rint(m)) or abs(np.linalg.det(m)) < 0.5:
                raise InputError(
                    f"{path}: {where} key {key!r} is not a non-singular integer matrix"
                )
        if "primitive_matrix" in atoms.info:
            p = _array(path, where, "primitive_matrix", atoms.info["primitive_matrix"], (3, 3))
            if abs(np.linalg.det(p)) < 1e-6:
                raise InputError(f"{path}: {where} key 'primitive_matrix' is singular")
        _array(path, where, "q_mesh", atoms.info["q_mesh"], (3,), dtype=int)
        out[mp_id] = atoms
    return out


def _material(mp_id: str, atoms, row: dict, s_path, k_path) -> KsrmeMaterial:
    info = atoms.info
    where = f"mp_id {mp_id}"
    for key, theirs in (("name", info["name"]), ("symm.no", info["symm.no"])):
        if str(row[key]) != str(theirs):
            raise InputError(
                f"{k_path}: {where} key {key!r} = {row[key]!r}, but {s_path} says {theirs!r}"
            )
    mesh = _array(k_path, where, "q_mesh", row["q_mesh"], (3,), dtype=int)
    if not np.array_equal(mesh, np.asarray(info["q_mesh"])):
        raise InputError(f"{k_path}: {where} q_mesh {mesh.tolist()} differs from {s_path}")
    temps = _array(k_path, where, "temperatures", row["temperatures"], (None,))
    nt = len(temps)
    hit = np.flatnonzero(np.isclose(temps, REFERENCE_TEMPERATURE))
    if len(hit) != 1:
        raise InputError(f"{k_path}: {where} key 'temperatures' {temps.tolist()} lacks 300 K")
    t = int(hit[0])
    q = _array(k_path, where, "qpoints", row["qpoints"], (None, 3))
    n_ir = len(q)
    w = _array(k_path, where, "weights", row["weights"], (n_ir,))
    if not np.allclose(w, np.rint(w)) or np.any(w < 1):
        raise InputError(f"{k_path}: {where} key 'weights' is not a list of positive integers")
    w = np.rint(w).astype(np.int64)
    freqs = _array(k_path, where, "frequencies", row["frequencies"], (n_ir, None))
    nb = freqs.shape[1]
    cv = _array(k_path, where, "heat_capacity", row["heat_capacity"], (nt, n_ir, nb))
    mode = _array(k_path, where, "mode_kappa_TOT_ave", row["mode_kappa_TOT_ave"], (nt, n_ir, nb))
    kappa = _array(k_path, where, "kappa_TOT_ave", row["kappa_TOT_ave"], (nt,))

    pmat = np.asarray(info.get("primitive_matrix", np.eye(3)), dtype=float)
    n_prim = len(atoms) * abs(np.linalg.det(pmat))
    if not math.isclose(n_prim, round(n_prim), abs_tol=1e-6) or nb != 3 * round(n_prim):
        raise InputError(
            f"{k_path}: {where} has {nb} bands, but {s_path} gives {n_prim:g} atoms per primitive cell"
        )
    if w.sum() != np.prod(mesh):
        raise InputError(
            f"{k_path}: {where} key 'weights' sums to {w.sum()}, not prod(q_mesh) = {np.prod(mesh)}"
        )
    on_mesh = q * mesh
    if not np.allclose(on_mesh, np.rint(on_mesh), atol=1e-5):
        raise InputError(f"{k_path}: {where} key 'qpoints' not on the {mesh.tolist()} mesh")
    total = mode[t].sum() / w.sum()
    if not math.isclose(total, kappa[t], rel_tol=MODE_SUM_RTOL):
        raise InputError(
            f"{k_path}: {where} sum of 'mode_kappa_TOT_ave' / sum of weights = {total:.6g} "
            f"differs from 'kappa_TOT_ave' = {kappa[t]:.6g}"
        )
    return KsrmeMaterial(
        mp_id=mp_id,
        name=str(info["name"]),
        spacegroup=int(info["symm.no"]),
        atoms=atoms,
        fc2_supercell=_frozen(np.rint(info["fc2_supercell"]), int),
        fc3_supercell=_frozen(np.rint(info["fc3_supercell"]), int),
        primitive_matrix=_frozen(pmat),
        q_mesh=_frozen(mesh, int),
        temperatures=_frozen(temps),
        kappa_tot_ave=float(kappa[t]),
        mode_kappa_tot_ave=_frozen(mode[t]),
        qpoints=_frozen(q),
        weights=_frozen(w, np.int64),
        frequencies=_frozen(freqs),
        heat_capacity=_frozen(cv[t]),
    )


def load_ksrme_reference(structures=None, kappas=None) -> list[KsrmeMaterial]:
    """The 103 κ_SRME materials with their DFT reference, in the kappa file's order.

    Parameters
    ----------
    structures, kappas : path, optional
        extxyz structures and the (gzipped) JSON κ table; default: the registered datasets
        ``kappa/phonondb-structures`` and ``kappa/phonondb-kappas`` (:func:`pftlite.datasets.registry.fetch`).

    Raises
    ------
    InputError
        A malformed file (the message names the file, the material and the key), the two files
        disagreeing on materials, names, space groups or meshes, or Σ mode / Σ weights ≠ κ̄.
    """
    from pftlite.datasets.registry import fetch

    s_path = Path(structures) if structures is not None else fetch("kappa/phonondb-structures")
    k_path = Path(kappas) if kappas is not None else fetch("kappa/phonondb-kappas")
    cells = read_structures(s_path)
    rows = read_kappa_table(k_path)
    if missing := [m for m in rows if m not in cells]:
        raise InputError(
            f"{s_path}: no structure for {len(missing)} mp_id(s) of {k_path}, e.g. {missing[0]}"
        )
    if extra := [m for m in cells if m not in rows]:
        raise InputError(f"{k_path}: no κ for {len(extra)} mp_id(s) of {s_path}, e.g. {extra[0]}")
    return [_material(m, cells[m], rows[m], s_path, k_path) for m in rows]


def mode_sum_mismatch(material: KsrmeMaterial) -> float:
    """|Σ mode κ̄ / Σ weights − κ̄| / κ̄ of a reference material (the file's consistency)."""
    total = material.mode_kappa_tot_ave.sum() / material.weights.sum()
    return abs(total - material.kappa_tot_ave) / abs(material.kappa_tot_ave)


def select(materials: Sequence[KsrmeMaterial], species: Iterable) -> list[KsrmeMaterial]:
    """The materials all of whose elements are in ``species`` (symbols or atomic numbers).

    Raises InputError (one line) when none is covered.
    """
    from ase.data import chemical_symbols

    wanted = {chemical_symbols[int(s)] if not isinstance(s, str) else s for s in species}
    out = [m for m in materials if set(m.species) <= wanted]
    if not out:
        have = sorted({e for m in materials for e in m.species})
        near = [m.desc for m in materials if set(m.species) & wanted][:5]
        hint = f"; partly covered: {', '.join(near)}" if near else ""
        raise InputError(
            f"no k_SRME material is covered by the model's species {sorted(wanted)} "
            f"(the {len(materials)} materials use {', '.join(have)}){hint}"
        )
    return out


def _cell(value: str):
    if value in ("True", "False"):
        return value == "True"
    try:
        return float(value)
    except ValueError:
        return value


def load_model_metrics(path=None) -> dict:
    """Parse a k_SRME ``metrics.txt`` (default: ``kappa/metrics-MACE-MPA-0``).

    The file is a header (``MODEL:``, ``mean SRME:``, ``mean SRE:``) and a pandas
    ``DataFrame.to_string`` print, wrapped into column blocks. Returns ``{"model",
    "mean_srme", "mean_sre", "columns", "rows"}``, rows a list of dicts with ``mp_id`` and
    every column (floats, booleans or text), in file order. InputError if malformed.
    """
    from pftlite.datasets.registry import fetch

    path = Path(path) if path is not None else fetch("kappa/metrics-MACE-MPA-0")
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
    head: dict = {}
    i = 0
    while i < len(lines) and (m := re.match(r"\s*(MODEL|mean SRME|mean SRE):\s*(\S+)", lines[i])):
        head[m.group(1)] = m.group(2)
        i += 1
    for key in ("MODEL", "mean SRME", "mean SRE"):
        if key not in head:
            raise InputError(f"{path}: missing header line {key!r}")
    rows: dict[str, dict] = {}
    columns: list[str] = []
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        cols = lines[i].replace("\\", " ").split()
        if i + 1 >= len(lines) or lines[i + 1].split() != ["mp_id"]:
            raise InputError(f"{path}: line {i + 1}: expected a column header followed by 'mp_id'")
        columns += cols
        i += 2
        while i < len(lines) and lines[i].strip():
            tok = lines[i].split()
            if len(tok) > len(cols) + 1 and "errors" in cols:  # free text in the errors column
                j = cols.index("errors") + 1
                extra = len(tok) - len(cols) - 1
                tok = tok[:j] + [" ".join(tok[j : j + extra + 1])] + tok[j + extra + 1 :]
            if len(tok) != len(cols) + 1:
                raise InputError(
                    f"{path}: line {i + 1}: {len(tok) - 1} values for {len(cols)} columns"
                )
            row = rows.setdefault(tok[0], {"mp_id": tok[0]})
            row.update({c: _cell(v) for c, v in zip(cols, tok[1:])})
            i += 1
    if not rows:
        raise InputError(f"{path}: no table rows")
    for c in ("SRME", "SRE"):
        if c not in columns:
            raise InputError(f"{path}: missing column {c!r}")
    for r in rows.values():
        if any(c not in r for c in columns):
            raise InputError(f"{path}: row {r['mp_id']} lacks some columns")
    return {
        "model": head["MODEL"],
        "mean_srme": float(head["mean SRME"]),
        "mean_sre": float(head["mean SRE"]),
        "columns": columns,
        "rows": list(rows.values()),
    }
