"""Matbench-Discovery κ_SRME: metrics and scoring (the reference set: :mod:`pftlite.kappa.ksrme_data`).

Reference data (k_SRME repository, GPL-3.0, fetched by registered name, never bundled):

- ``kappa/phonondb-structures``: extxyz, 103 unit cells; ``info`` keys ``fc2_supercell``,
  ``fc3_supercell``, ``q_mesh``, ``mp_id``, ``name``, ``symm.no`` and, for rocksalt and
  zincblende only, ``primitive_matrix`` (wurtzite: absent, i.e. the unit cell is primitive);
- ``kappa/phonondb-kappas``: pandas ``to_json`` table (column -> {row -> value}), gzipped;
  DFT Wigner-RTA κ at 300 K without NAC.

Conventions, as found in the data and in k_SRME (``k_srme/benchmark.py``,
``k_srme/conductivity.py``) and Matbench Discovery (``matbench_discovery/metrics/phonons.py``,
``phonons/thermal_conductivity.py``):

- κ̄ (``kappa_TOT_ave``) = mean of xx, yy, zz of κ_P,RTA + κ_C (phono3py's 6-vector
  ``[..., :3].mean(-1)``), also for the anisotropic wurtzites (κ̄ = (2 κ_xx + κ_zz) / 3);
- ``mode_kappa_TOT_ave`` (nT, n_ir, nb) = the same mean of the per-mode total, with the q-point
  weight included: Σ mode / Σ weights = κ̄ (worst relative mismatch in the file: 9.1e-11, JSON
  rounding); all 103 × modes are >= 0;
- the coherence part is split per mode as ``calc_mode_kappa_tot`` does:
  κ_C(s') = 2 Σ_s κ_C(s, s') C_s / (C_s + C_s'), NaN (C_s = C_s' = 0) -> 0;
- q-points: the irreducible points of the Γ-centred ``q_mesh`` in the PRIMITIVE reciprocal
  basis, in spglib's order (ascending grid index, x fastest) with spglib's representatives
  and weights (checked for all 103 against ``spglib.get_ir_reciprocal_mesh``), but written as
  phono3py's BZ-shortest vectors (components outside [-1/2, 1/2) occur for fcc): match them by
  grid address modulo reciprocal lattice vectors, not by value.

Scoring (``calc_kappa_metrics_from_dfs`` / ``calc_kappa_srme_dataframes``): a material with
imaginary modes, a space group changed by relaxation, or no (NaN) κ gets SRME = 2 and, since
no κ is computed for it in the benchmark pipeline, SRD = -2 (``fillna(-2)``) and SRE = 2.

Units: κ W/m-K, frequencies THz, heat capacities eV/K.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from pftlite.core.errors import InputError
from pftlite.kappa.ksrme_data import (  # noqa: F401  (the reference set, re-exported)
    MODE_SUM_RTOL,
    PROTOTYPES,
    REFERENCE_TEMPERATURE,
    KsrmeMaterial,
    load_ksrme_reference,
    load_model_metrics,
    mode_sum_mismatch,
    read_kappa_table,
    read_structures,
    select,
)

#: THz; k_srme.utils.FREQUENCY_THRESHOLD: the 3 Γ acoustic modes may go down to this value.
FREQUENCY_THRESHOLD = -1e-2
#: SRME and SRE of a failed material; its SRD is -FAILURE_SCORE.
FAILURE_SCORE = 2.0
#: Failure reasons understood by :func:`score_material`.
FAILURE_REASONS = ("imaginary_modes", "broken_symmetry", "missing", "error")

# Matbench Discovery's snake-case names for the same columns (figshare copy; not verified).


@dataclass(frozen=True)
class Failure:
    """A material the model could not score: ``reason`` in :data:`FAILURE_REASONS`."""

    reason: str
    detail: str = ""

    def __post_init__(self):
        if self.reason not in FAILURE_REASONS:
            raise ValueError(
                f"Failure reason must be one of {FAILURE_REASONS}, got {self.reason!r}"
            )


# --------------------------------------------------------------------------------------------
# reading the reference set
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# metrics (k_SRME k_srme/benchmark.py; Matbench Discovery matbench_discovery/metrics/phonons.py)
# --------------------------------------------------------------------------------------------


def srd(k_pred: float, k_true: float) -> float:
    """Symmetric relative difference 2 (κ_pred − κ_true) / (κ_pred + κ_true).

    As ``calc_kappa_metrics_from_dfs``: a missing (NaN/None) prediction gives −2 (its
    ``fillna(-2)``, i.e. κ_pred = 0).
    """
    if k_pred is None or not np.isfinite(k_pred):
        return -FAILURE_SCORE
    if k_true is None or not np.isfinite(k_true):
        raise ValueError("srd: reference κ is NaN")
    return float(2.0 * (k_pred - k_true) / (k_pred + k_true))


def sre(k_pred: float, k_true: float) -> float:
    """Symmetric relative error |SRD| (2 for a missing prediction)."""
    return abs(srd(k_pred, k_true))


def srme(mode_pred, mode_true, weights, k_pred: float, k_true: float) -> float:
    """Symmetric relative mean error of the mode-resolved κ̄ at one temperature.

    SRME = 2 Σ_{q,s} |κ̄_pred(q,s) − κ̄_true(q,s)| / Σ_q w_q / (κ̄_pred + κ̄_true), following
    Matbench Discovery ``calc_kappa_srme`` (= k_SRME ``calculate_SRME``): mode arrays (n_ir, nb)
    with weights included, aligned to the same q-points (:func:`align_modes`); ``weights``
    those of the prediction. NaN in the prediction (κ̄, modes or weights) gives 2; a NaN
    reference raises ValueError, as there.
    """
    mode_pred = np.asarray(mode_pred, dtype=float)
    mode_true = np.asarray(mode_true, dtype=float)
    weights = np.asarray(weights, dtype=float)
    if k_true is None or not np.isfinite(k_true) or not np.all(np.isfinite(mode_true)):
        raise ValueError("srme: found NaN in the reference")
    if mode_pred.shape != mode_true.shape:
        raise ValueError(f"srme: mode shapes differ: {mode_pred.shape} vs {mode_true.shape}")
    if weights.shape != mode_true.shape[:1]:
        raise ValueError(f"srme: weights shape {weights.shape}, expected ({mode_true.shape[0]},)")
    bad = k_pred is None or not np.isfinite(k_pred)
    if bad or not np.all(np.isfinite(mode_pred)) or not np.all(np.isfinite(weights)):
        return FAILURE_SCORE
    micro = np.abs(mode_pred - mode_true).sum() / weights.sum()
    return float(2.0 * micro / (k_pred + k_true))


def has_imaginary_modes(frequencies, qpoints=None, threshold: float = FREQUENCY_THRESHOLD) -> bool:
    """The benchmark's stability test (k_SRME ``k_srme.utils.check_imaginary_freqs``).

    ``frequencies`` (n_q, nb) THz on the mesh. At Γ (``qpoints`` ≡ 0, or else row 0 as in
    phono3py's grid) the three lowest modes may go down to ``threshold`` (−0.01 THz), the others
    must be >= 0; elsewhere every mode must be >= 0. All NaN counts as imaginary.
    """
    f = np.asarray(frequencies, dtype=float)
    if f.size == 0 or np.all(np.isnan(f)):
        return True
    if qpoints is None:
        gamma = np.zeros(len(f), dtype=bool)
        gamma[0] = True
    else:
        q = np.asarray(qpoints, dtype=float)
        gamma = np.all(np.isclose(q - np.rint(q), 0.0, atol=1e-8), axis=1)
    fg, fo = f[gamma], f[~gamma]
    return bool(np.any(fg[:, 3:] < 0) or np.any(fg[:, :3] < threshold) or np.any(fo < 0))


# --------------------------------------------------------------------------------------------
# per-mode κ̄ of a KappaResult-like object, q-point alignment
# --------------------------------------------------------------------------------------------


def _get(result, key: str, *aliases: str, default=KeyError):
    """Field ``key`` (or an alias) of a mapping, a ``to_dict()`` object or an attribute holder."""
    for k in (key, *aliases):
        if isinstance(result, Mapping):
            if k in result:
                return result[k]
        elif not callable(value := getattr(result, k, _get)):  # skip methods of that name
            return value
    if default is KeyError:
        raise KeyError(f"result has no field {key!r}")
    return default


def _diag_mean(a: np.ndarray) -> np.ndarray:
    """Mean of xx, yy, zz: (..., 3, 3) tensors or phono3py (..., 6) Voigt vectors."""
    if a.shape[-1] == 6:
        return a[..., :3].mean(axis=-1)
    if a.shape[-2:] == (3, 3):
        return np.trace(a, axis1=-2, axis2=-1) / 3.0
    raise ValueError(f"expected (..., 3, 3) or (..., 6) κ arrays, got shape {a.shape}")


def _diagonal(a: np.ndarray) -> np.ndarray:
    """xx, yy, zz of (..., 3, 3) tensors or (..., 6) Voigt vectors -> (..., 3)."""
    if a.shape[-1] == 6:
        return a[..., :3]
    return np.diagonal(a, axis1=-2, axis2=-1)


def split_coherence(mode_kappa_c_pairs, heat_capacity) -> np.ndarray:
    """Per-mode coherence κ from the band-pair resolved one, as the benchmark splits it.

    Matbench Discovery ``calc_mode_kappa_tot`` (= k_SRME ``calculate_mode_kappa_TOT``):
    κ_C(q, s') = 2 Σ_s κ_C(q, s, s') C(q, s) / (C(q, s) + C(q, s')); a NaN sum (a 0/0 term,
    both C = 0) is set to 0.

    ``mode_kappa_c_pairs``: (..., n_ir, nb, nb, 3, 3) or (..., n_ir, nb, nb, 6);
    ``heat_capacity``: (..., n_ir, nb). Returns (..., n_ir, nb, 3, 3) or (..., n_ir, nb, 6).
    """
    kc = np.asarray(mode_kappa_c_pairs, dtype=float)
    cv = np.asarray(heat_capacity, dtype=float)
    extra = kc.ndim - cv.ndim - 1  # tensor axes: 2 for (3, 3), 1 for Voigt
    cs = cv[..., :, None].reshape(cv.shape + (1,) + (1,) * extra)  # C_s   on axis -2-extra-1
    cs2 = cv[..., None, :].reshape(cv.shape[:-1] + (1, cv.shape[-1]) + (1,) * extra)  # C_s'
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 2.0 * (kc * cs / (cs + cs2)).sum(axis=-2 - extra)
    out[np.isnan(out)] = 0.0  # as there: a 0/0 pair (two C = 0 modes) zeroes the whole sum
    return out


def _mode_tensors(result, t_index: int):
    """(mode κ_P + κ_C at ``t_index``, or None when only the reduced quantity is stored)."""
    p = _get(result, "mode_kappa_P", "mode_kappa_P_RTA", default=None)
    if p is None:
        return None
    p = np.asarray(p, dtype=float)[t_index]  # (n_ir, nb, 3, 3) or (n_ir, nb, 6)
    c = _get(result, "mode_kappa_C", default=None)
    if c is None:
        return p
    c = np.asarray(c, dtype=float)[t_index]
    if c.ndim == p.ndim + 1:  # band pairs (n_ir, nb, nb, ...): the benchmark's split
        cv = np.asarray(_get(result, "heat_capacity", "mode_heat_capacities"), dtype=float)
        c = split_coherence(c, cv[t_index])
    if c.shape != p.shape:
        raise ValueError(f"mode_kappa_C shape {c.shape} does not match mode_kappa_P {p.shape}")
    return p + c


def mode_kappa_tot_ave(result, t_index: int = 0) -> np.ndarray:
    """The benchmark's per-mode quantity (n_ir, nb): mean of the diagonal of κ_P + κ_C per mode.

    ``result``: a KappaResult, its ``to_dict()``, a phono3py-style dict or
    :meth:`KsrmeMaterial.as_result`. Uses, in this order, ``mode_kappa_tot_ave``
    (``mode_kappa_TOT_ave``) if present, else ``mode_kappa_P`` (``mode_kappa_P_RTA``) +
    ``mode_kappa_C``; a band-pair ``mode_kappa_C`` (n_ir, nb, nb, ...) is split per mode with
    :func:`split_coherence`. A per-mode ``mode_kappa_C`` is used as given: it must follow the
    same split for the SRME to be comparable with the benchmark's.
    """
    stored = _get(result, "mode_kappa_tot_ave", "mode_kappa_TOT_ave", default=None)
    if stored is not None:
        return np.asarray(stored, dtype=float)[t_index]
    tot = _mode_tensors(result, t_index)
    if tot is None:
        raise KeyError("result has neither mode_kappa_tot_ave nor mode_kappa_P")
    return _diag_mean(tot)


def mode_kappa_diagonal(result, t_index: int = 0) -> np.ndarray | None:
    """xx, yy, zz of the per-mode κ_P + κ_C (n_ir, nb, 3), W/m-K with weights; None when the
    result holds only the reduced ``mode_kappa_tot_ave`` (as the DFT reference does)."""
    tot = _mode_tensors(result, t_index)
    return None if tot is None else _diagonal(tot)


def kappa_tot_ave(result, t_index: int = 0) -> float:
    """κ̄ of a result at ``t_index``: mean of the diagonal of ``kappa`` (P + C), W/m-K."""
    stored = _get(result, "kappa_tot_ave", "kappa_TOT_ave", default=None)
    if stored is not None:
        return float(np.asarray(stored, dtype=float)[t_index])
    k = _get(result, "kappa", "kappa_TOT_RTA", default=None)
    if k is None:
        return float("nan")
    return float(_diag_mean(np.asarray(k, dtype=float)[t_index]))


def cumulative_kappa(result, t_index: int = 0) -> dict:
    """κ accumulated over modes in ascending frequency.

    Returns ``{"frequencies": (n,), "mean": (n,), "diagonal": (n, 3) or None}`` (n = n_ir × nb;
    THz, W/m-K): entry i is the κ of all modes up to and including the i-th lowest; the last
    ``mean`` entry is Σ mode κ̄ / Σ weights (= κ̄).
    """
    freqs = np.asarray(_get(result, "frequencies"), dtype=float)
    wsum = float(np.sum(_get(result, "weights")))
    mean = mode_kappa_tot_ave(result, t_index)
    if mean.shape != freqs.shape:
        raise ValueError(f"mode κ shape {mean.shape} differs from frequencies {freqs.shape}")
    diag = mode_kappa_diagonal(result, t_index)
    order = np.argsort(freqs, axis=None, kind="stable")
    return {
        "frequencies": freqs.ravel()[order],
        "mean": np.cumsum(mean.ravel()[order]) / wsum,
        "diagonal": None if diag is None else np.cumsum(diag.reshape(-1, 3)[order], axis=0) / wsum,
    }


def _denominators(x: np.ndarray, where: str) -> int:
    """Least common denominator of reduced coordinates ``x`` (<= 10000), else InputError."""
    lcm = 1
    for v in np.unique(np.round(np.asarray(x, dtype=float).ravel(), 9)):
        f = Fraction(float(v)).limit_denominator(10000)
        if abs(float(f) - v) > 1e-6:
            raise InputError(f"{where}: coordinate {v!r} is not on a regular q mesh")
        lcm = math.lcm(lcm, f.denominator)
    return lcm


def _addresses(q: np.ndarray, n: int, mesh, where: str) -> np.ndarray:
    """Integer grid addresses of ``q`` on the scalar grid 1/n, reduced modulo n (exact)."""
    if mesh is not None:
        mesh = np.asarray(mesh, dtype=int)
        g = q * mesh
        if not np.allclose(g, np.rint(g), atol=1e-5):
            raise InputError(f"{where}: q-points are not on the {'x'.join(map(str, mesh))} mesh")
    a = q * n
    if not np.allclose(a, np.rint(a), atol=1e-5):
        raise InputError(f"{where}: q-points are not on a common grid with the reference")
    return np.mod(np.rint(a).astype(np.int64), n)


def reciprocal_rotations(
    material_or_atoms, primitive_matrix=None, symprec: float = 1e-5
) -> np.ndarray:
    """Point-group rotations acting on reduced q of the primitive cell, with time reversal.

    Returns (n, 3, 3) integer matrices M = ±Rᵀ (R: spglib's rotations of the primitive cell in
    reduced coordinates), so that M q is equivalent to q. ``material_or_atoms``: a
    :class:`KsrmeMaterial` (its primitive matrix) or an ase.Atoms unit cell.
    """
    import spglib
    from phonopy.structure.atoms import PhonopyAtoms
    from phonopy.structure.cells import get_primitive

    if isinstance(material_or_atoms, KsrmeMaterial):
        atoms = material_or_atoms.atoms
        pmat = material_or_atoms.primitive_matrix if primitive_matrix is None else primitive_matrix
    else:
        atoms, pmat = material_or_atoms, primitive_matrix
    unit = PhonopyAtoms(
        symbols=atoms.get_chemical_symbols(), cell=np.asarray(atoms.cell[:]),
        positions=atoms.get_positions(),
    )  # fmt: skip
    prim = unit if pmat is None else get_primitive(unit, np.asarray(pmat, float), symprec=symprec)
    sym = spglib.get_symmetry((prim.cell, prim.scaled_positions, prim.numbers), symprec=symprec)
    rots = np.unique(np.asarray(sym["rotations"], dtype=np.int64), axis=0)
    rt = np.transpose(rots, (0, 2, 1))
    return np.unique(np.concatenate([rt, -rt]), axis=0)


def qpoint_map(qpoints_pred, qpoints_ref, mesh=None, rotations=None) -> np.ndarray:
    """Index ``idx`` (n_ref,) with ``qpoints_pred[idx[i]]`` equivalent to ``qpoints_ref[i]``.

    Equivalence: equal grid address modulo reciprocal lattice vectors; where the predicted
    list uses other representatives, equal up to one of ``rotations`` ((n, 3, 3) integer, on
    reduced q: :func:`reciprocal_rotations`). ``mesh``: check that both lists lie on it
    (default: the common grid is inferred from the coordinates). Raises InputError (one line)
    when the lists cannot be matched one to one.
    """
    qp = np.atleast_2d(np.asarray(qpoints_pred, dtype=float))
    qr = np.atleast_2d(np.asarray(qpoints_ref, dtype=float))
    if qp.shape[1:] != (3,) or qr.shape[1:] != (3,):
        raise InputError(
            f"align_modes: q-point arrays must be (n, 3), got {qp.shape} and {qr.shape}"
        )
    if len(qp) != len(qr):
        raise InputError(
            f"align_modes: prediction has {len(qp)} irreducible q-points, reference {len(qr)} "
            "(different mesh or symmetry)"
        )
    if mesh is not None:
        n = math.lcm(*(int(m) for m in np.asarray(mesh).ravel()))
    else:
        n = math.lcm(_denominators(qp, "prediction"), _denominators(qr, "reference"))
    ap = _addresses(qp, n, mesh, "prediction")
    ar = _addresses(qr, n, mesh, "reference")
    index = {tuple(a): i for i, a in enumerate(ap.tolist())}
    if len(index) != len(ap):
        raise InputError("align_modes: the predicted q-points repeat a grid point")
    idx = np.array([index.get(tuple(a), -1) for a in ar.tolist()], dtype=np.int64)
    missing = np.flatnonzero(idx < 0)
    if len(missing) and rotations is None:
        q0 = np.round(qr[missing[0]], 6).tolist()
        raise InputError(
            f"align_modes: {len(missing)} of {len(qr)} reference q-points (e.g. {q0}) are not in "
            "the prediction; pass rotations to match symmetry-equivalent points"
        )
    if len(missing):
        rots = np.asarray(rotations, dtype=np.int64)
        for i in missing:
            orbit = np.mod(rots @ ar[i], n)
            hits = {index[k] for k in map(tuple, orbit.tolist()) if k in index}
            if len(hits) != 1:
                q0 = np.round(qr[i], 6).tolist()
                what = "no" if not hits else f"{len(hits)}"
                raise InputError(
                    f"align_modes: reference q-point {q0} has {what} symmetry-equivalent "
                    "points in the prediction"
                )
            idx[i] = hits.pop()
    if len(np.unique(idx)) != len(idx):
        raise InputError("align_modes: two reference q-points map onto one predicted q-point")
    return idx


def align_modes(qpoints_pred, mode_pred, qpoints_ref, mesh=None, rotations=None) -> np.ndarray:
    """``mode_pred`` (n_pred, ...) reordered onto the reference q-point list: (n_ref, ...).

    See :func:`qpoint_map`. Only quantities invariant under the point group (frequencies,
    heat capacities, mean-of-diagonal κ with the star sum in the weight) may be moved between
    symmetry-equivalent points.
    """
    idx = qpoint_map(qpoints_pred, qpoints_ref, mesh=mesh, rotations=rotations)
    return np.asarray(mode_pred)[idx]


# --------------------------------------------------------------------------------------------
# scoring
# --------------------------------------------------------------------------------------------


_IMAG = re.compile(r"imaginary|unstable", re.IGNORECASE)
_SYMM = re.compile(r"symmetry|space ?group", re.IGNORECASE)


def _as_failure(result) -> Failure | None:
    """A Failure for None, Failure, or a failed record {"status": "failed", "reason": ...}."""
    if result is None:
        return Failure("missing", "no result")
    if isinstance(result, Failure):
        return result
    if isinstance(result, Mapping) and result.get("status") == "failed":
        reason = str(result.get("reason", ""))
        kind = (
            "imaginary_modes"
            if _IMAG.search(reason)
            else "broken_symmetry"
            if _SYMM.search(reason)
            else "error"
        )
        return Failure(kind, reason)
    return None


def _flag_failure(material: KsrmeMaterial, result) -> Failure | None:
    """Failures flagged inside a result: imaginary modes, changed space group (as the benchmark)."""
    flag = _get(result, "imaginary_modes", "has_imaginary_modes", "imaginary_freqs", default=None)
    if flag is True or (isinstance(flag, str) and flag.lower() == "true"):
        return Failure("imaginary_modes", "flagged by the result")
    after = _get(result, "relaxed_space_group_number", "spacegroup_after", default=None)
    if after:
        before = _get(result, "initial_space_group_number", "spacegroup_before", default=None)
        before = before if before else material.spacegroup
        if int(after) != int(before):
            return Failure("broken_symmetry", f"space group {before} -> {after}")
    freqs = _get(result, "frequencies", default=None)
    if freqs is not None:
        q = _get(result, "qpoints", default=None)
        if has_imaginary_modes(freqs, q):
            fmin = float(np.nanmin(np.asarray(freqs, dtype=float)))
            return Failure("imaginary_modes", f"lowest frequency {fmin:.4f} THz")
    return None


def _scores(material: KsrmeMaterial, failure: Failure | None, **values) -> dict:
    row = {
        "mp_id": material.mp_id,
        "name": material.name,
        "desc": material.desc,
        "spacegroup": material.spacegroup,
        "kappa_dft": material.kappa_tot_ave,
        "kappa_pred": float("nan"),
        "srd": -FAILURE_SCORE,
        "sre": FAILURE_SCORE,
        "srme": FAILURE_SCORE,
        "failure": None if failure is None else failure.reason,
        "detail": "" if failure is None else failure.detail,
    }
    row.update(values)
    return row


def _temperature_index(material: KsrmeMaterial, result) -> int:
    temps = _get(result, "temperatures", default=None)
    if temps is None:
        return 0
    temps = np.atleast_1d(np.asarray(temps, dtype=float))
    hit = np.flatnonzero(np.isclose(temps, REFERENCE_TEMPERATURE))
    if len(hit) == 0:
        raise InputError(
            f"{material.desc}: result has no {REFERENCE_TEMPERATURE:g} K (temperatures {temps.tolist()})"
        )
    return int(hit[0])


def score_material(material: KsrmeMaterial, result, rotations=None) -> dict:
    """SRD, SRE and SRME of one prediction against the material's DFT reference at 300 K.

    ``result``: a KappaResult-like object or dict (``temperatures``, ``qpoints``, ``weights``,
    ``frequencies``, ``kappa``, ``mode_kappa_P``/``mode_kappa_C``; optional flags
    ``imaginary_modes``, ``relaxed_space_group_number``, ``initial_space_group_number``), a
    :class:`Failure`, a failed record ``{"status": "failed", "reason": ...}``, or None.
    Failures (imaginary modes by :func:`has_imaginary_modes`, a changed space group, missing
    or NaN κ) score SRME = SRE = 2 and SRD = −2. q-points are matched with
    :func:`qpoint_map` (by symmetry if needed: ``rotations``, default from the material).

    Returns a dict: mp_id, name, desc, spacegroup, kappa_dft, kappa_pred, srd, sre, srme,
    failure (None or a reason), detail.
    """
    failure = _as_failure(result) or _flag_failure(material, result)
    if failure is not None:
        return _scores(material, failure)
    t = _temperature_index(material, result)
    k_pred = kappa_tot_ave(result, t)
    if not np.isfinite(k_pred):
        return _scores(material, Failure("missing", "κ is NaN or absent"))
    mesh = _get(result, "mesh", default=None)
    if mesh is not None and not np.array_equal(np.asarray(mesh, int), material.q_mesh):
        raise InputError(
            f"{material.desc}: result mesh {np.asarray(mesh).tolist()} differs from the "
            f"reference q_mesh {material.q_mesh.tolist()}"
        )
    mode = mode_kappa_tot_ave(result, t)
    weights = np.asarray(_get(result, "weights"), dtype=float)
    qp = _get(result, "qpoints")
    try:
        idx = qpoint_map(qp, material.qpoints, mesh=material.q_mesh)
    except InputError:
        rots = reciprocal_rotations(material) if rotations is None else rotations
        idx = qpoint_map(qp, material.qpoints, mesh=material.q_mesh, rotations=rots)
    mode, weights = mode[idx], weights[idx]
    if not np.array_equal(weights, material.weights):
        raise InputError(
            f"{material.desc}: q-point weights differ from the reference's after alignment"
        )
    if not (np.all(np.isfinite(mode)) and np.all(np.isfinite(weights))):
        return _scores(material, Failure("missing", "NaN in mode κ"), kappa_pred=k_pred)
    return _scores(
        material, None,
        kappa_pred=k_pred,
        srd=srd(k_pred, material.kappa_tot_ave),
        sre=sre(k_pred, material.kappa_tot_ave),
        srme=srme(mode, material.mode_kappa_tot_ave, weights, k_pred, material.kappa_tot_ave),
    )  # fmt: skip


def summarize(scores: Sequence[Mapping]) -> dict:
    """Means over materials, as ``get_metrics`` in k_SRME's benchmark.py.

    Returns n, n_failed, failures ({reason: count}), mean_srme, mean_sre, mean_srd,
    std_srme, std_sre (population standard deviation, k_SRME's "rmse" about the mean), and
    per prototype ({"rs": {"n", "mean_srme", "mean_sre"}, ...}).
    """
    if not scores:
        raise ValueError("summarize: no scores")
    arr = {k: np.array([float(s[k]) for s in scores]) for k in ("srme", "sre", "srd")}
    fails = Counter(s["failure"] for s in scores if s.get("failure"))
    protos: dict = {}
    for s in scores:
        p = PROTOTYPES.get(int(s.get("spacegroup", 0)), "other")
        protos.setdefault(p, []).append(s)
    return {
        "n": len(scores),
        "n_failed": sum(fails.values()),
        "failures": dict(fails),
        "mean_srme": float(arr["srme"].mean()),
        "mean_sre": float(arr["sre"].mean()),
        "mean_srd": float(arr["srd"].mean()),
        "std_srme": float(arr["srme"].std()),
        "std_sre": float(arr["sre"].std()),
        "by_prototype": {
            p: {
                "n": len(v),
                "mean_srme": float(np.mean([float(s["srme"]) for s in v])),
                "mean_sre": float(np.mean([float(s["sre"]) for s in v])),
            }
            for p, v in sorted(protos.items())
        },
    }


def format_table(scores: Sequence[Mapping], summary: Mapping | None = None) -> str:
    """A plain-text table: one row per material, then the means (``summary`` or computed)."""
    head = f"{'mp_id':<11} {'material':<10} {'κ DFT':>10} {'κ pred':>10} {'SRD':>7} {'SRE':>6} {'SRME':>6}  failure"
    lines = [head, "-" * len(head)]
    for s in scores:
        lines.append(
            f"{s['mp_id']:<11} {s['desc']:<10} {s['kappa_dft']:>10.4g} {s['kappa_pred']:>10.4g} "
            f"{s['srd']:>7.3f} {s['sre']:>6.3f} {s['srme']:>6.3f}  {s.get('failure') or ''}"
        )
    if scores:
        summ = summary or summarize(scores)
        lines.append("-" * len(head))
        lines.append(
            f"mean over {summ['n']} ({summ['n_failed']} failed): SRME {summ['mean_srme']:.4f}  "
            f"SRE {summ['mean_sre']:.4f}  SRD {summ['mean_srd']:+.4f}"
        )
    return "\n".join(lines)


def print_table(scores: Sequence[Mapping], summary: Mapping | None = None, file=None) -> None:
    """Print :func:`format_table`."""
    print(format_table(scores, summary), file=file)


# --------------------------------------------------------------------------------------------
# published per-model results (k_SRME models/<model>/metrics.txt)
# --------------------------------------------------------------------------------------------


