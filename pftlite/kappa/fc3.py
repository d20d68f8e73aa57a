"""Third-order force constants (fc3): displacements, finite-difference solver, symmetrization,
and fc3 of a model (exact third derivatives, finite differences of HVPs, or displaced forces).

Conventions (shared with :mod:`pftlite.kappa.conductivity`):

- ``ph3`` is a ``phonopy.Phonopy`` whose supercell is the fc3 supercell, built by
  :func:`pftlite.phonons.force_constants.make_phonopy` (``make_phonopy(unitcell, S3, P)``); its atom
  order is phonopy's ``get_supercell`` order, which is also phono3py's.
- fc3 is **compact**: ``(n_patom, N, N, 3, 3, 3)`` eV/Å³, first index over the primitive atoms
  in the order of ``ph3.primitive.p2s_map``:
  ``fc3[p, j, k, a, b, c] = d3E / du_{p2s[p] a} du_{j b} du_{k c}``.
- fc2 is full: ``(N, N, 3, 3)`` eV/Å².

The finite-difference solver is phono3py's "traditional" one, re-implemented with NumPy on top of
phonopy's fc2 helpers (phono3py itself is only a test oracle): per first displacement the
delta-forces of the second displacements give the fc2 of the displaced cell (solved with the
bond symmetry, distributed with the reduced site symmetry); the change of fc2 over the first
displacements gives fc3 of the first atom through its site symmetry (pseudo-inverse); the other
primitive atoms follow by the space group. :func:`symmetrize_fc3` is phono3py's traditional
iteration (translational invariance over each index, then index-permutation averaging, repeated
``level`` times), done on the compact array.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

FC3_METHODS = ("exact", "hvp-fd", "displacement")


# --------------------------------------------------------------------------------------------
# cells, symmetry, compact <-> full
# --------------------------------------------------------------------------------------------


def make_fc3_phonopy(ref3, symprec: float = 1e-5):
    """``phonopy.Phonopy`` on the fc3 supercell of a :class:`~pftlite.datasets.phono3py_refs.Phono3pyReference`."""
    from pftlite.phonons.force_constants import make_phonopy

    return make_phonopy(ref3.unitcell, ref3.supercell_matrix, ref3.primitive_matrix, symprec)


def _symprec(ph3) -> float:
    return float(ph3.symmetry.tolerance)


def _translation_table(ph3) -> np.ndarray:
    """``shift[x, y]`` (N, N): atom y moved by the lattice translation taking atom x to its
    primitive representative ``p2s[s2p[x]]``."""
    sc = ph3.supercell
    pos = sc.scaled_positions
    lattice = sc.cell
    s2p = np.asarray(ph3.primitive.s2p_map)
    N = len(pos)
    tol = _symprec(ph3)
    cache: dict[tuple, np.ndarray] = {}
    shift = np.empty((N, N), dtype=np.int64)
    for x in range(N):
        tau = pos[s2p[x]] - pos[x]
        key = tuple(np.round(tau - np.rint(tau), 6))
        if key not in cache:
            d = pos[None, :, :] - (pos[:, None, :] + tau)  # (y, z)
            d -= np.rint(d)
            dist = np.linalg.norm(d @ lattice, axis=-1)
            z = np.argmin(dist, axis=1)
            if not np.all(dist[np.arange(N), z] < tol):
                raise ValueError("supercell is not invariant under its lattice translations")
            cache[key] = z
        shift[x] = cache[key]
    return shift


def _s2compact(ph3) -> np.ndarray:
    prim = ph3.primitive
    p2p = prim.p2p_map
    return np.array([p2p[i] for i in prim.s2p_map], dtype=np.int64)


def compact_to_full(fc3, ph3) -> np.ndarray:
    """Full fc3 (N, N, N, 3, 3, 3) eV/Å³ from compact (n_patom, N, N, 3, 3, 3) by translations."""
    fc3 = np.asarray(fc3)
    shift = _translation_table(ph3)
    sp = _s2compact(ph3)
    N = fc3.shape[1]
    full = np.empty((N, N, N, 3, 3, 3))
    for x in range(N):
        t = shift[x]
        full[x] = fc3[sp[x]][np.ix_(t, t)]
    return full


def full_to_compact(fc3, ph3) -> np.ndarray:
    """Compact fc3 (n_patom, N, N, 3, 3, 3): the rows ``p2s_map`` of a full fc3."""
    return np.ascontiguousarray(np.asarray(fc3)[ph3.primitive.p2s_map])


def _transpose01(fc3, ph3, shift=None) -> np.ndarray:
    """Compact fc3 of the full array with atom and Cartesian indices 0 and 1 swapped."""
    shift = _translation_table(ph3) if shift is None else shift
    sp = _s2compact(ph3)
    p2s = ph3.primitive.p2s_map
    out = np.empty_like(fc3)
    N = fc3.shape[1]
    j = np.arange(N)
    for p, P in enumerate(p2s):
        # full[j, P, k, b, a, c] = compact[sp[j], shift[j, P], shift[j, k], b, a, c]
        g = fc3[sp[j][:, None], shift[j, P][:, None], shift[j]]  # (j, k, 3, 3, 3)
        out[p] = g.transpose(0, 1, 3, 2, 4)
    return out


def _permutation_average(fc3, ph3, shift=None) -> np.ndarray:
    """Average of the six index permutations of the (implied full) fc3, compact."""

    def swap12(a):  # [p, j, k, a, b, c] -> [p, k, j, a, c, b]
        return a.transpose(0, 2, 1, 3, 5, 4)

    shift = _translation_table(ph3) if shift is None else shift
    t01 = _transpose01(fc3, ph3, shift)  # full[j, P, k] (b a c)
    t02 = _transpose01(swap12(fc3), ph3, shift)  # full[j, k, P] (b c a)
    a, b = fc3, swap12(fc3)  # full[P, j, k], full[P, k, j]
    c, e = t01, swap12(t01)  # full[j, P, k], full[k, P, j]
    d, f = t02, swap12(t02)  # full[j, k, P], full[k, j, P]
    return (a + b + c + d + e + f) / 6.0


def _translational_invariance(fc3, ph3, shift=None) -> np.ndarray:
    """phono3py's compact translational step: zero sums over index 0 (via a transpose), then
    over index 1, then over index 2, by subtracting the mean."""
    shift = _translation_table(ph3) if shift is None else shift
    out = _transpose01(fc3, ph3, shift)
    out = out - out.mean(axis=1, keepdims=True)
    out = _transpose01(out, ph3, shift)
    out = out - out.mean(axis=1, keepdims=True)
    out = out - out.mean(axis=2, keepdims=True)
    return out


def symmetrize_fc3(fc3, ph3, level: int = 3) -> np.ndarray:
    """phono3py's traditional fc3 symmetrization on a compact fc3 (returns a new array).

    ``level`` times: translational invariance (subtract the mean over atom index 0, then 1,
    then 2) then index-permutation symmetry (average of the six permutations), as
    ``Phono3py.symmetrize_fc3()`` without the symfc projector (default level 3). Done here
    exactly on the implied full array, so after one pass all three index sums vanish and the
    permutation average keeps them at zero (residuals ~1e-15). phono3py's compact kernels leave
    a residual (~5e-5 eV/Å³ on Si-111), so results differ from phono3py's by up to ~1e-6 of
    max|fc3| (measured: Si-PBEsol 1.3e-8, NaCl-222 2.7e-7, AlN 3x3x2 9.5e-9, Si 1x1x1
    1.8e-5 eV/Å³). Not the symfc projector that ``phono3py.load`` applies by default.
    """
    shift = _translation_table(ph3)
    out = np.array(fc3, dtype=np.float64)
    for _ in range(level):
        out = _translational_invariance(out, ph3, shift)
        out = _permutation_average(out, ph3, shift)
    return out


def fc3_invariance(fc3, ph3) -> dict:
    """Residuals of a compact fc3 (eV/Å³).

    Returns ``{"translation": max over indices of |sum_k fc3[i, j, k]|, "translation_j": same
    summed over j, "permutation": max |fc3 - its permutation average|, "max_abs": max |fc3|}``.
    """
    fc3 = np.asarray(fc3)
    return {
        "translation": float(np.abs(fc3.sum(axis=2)).max()),
        "translation_j": float(np.abs(fc3.sum(axis=1)).max()),
        "permutation": float(np.abs(fc3 - _permutation_average(fc3, ph3)).max()),
        "max_abs": float(np.abs(fc3).max()),
    }


# --------------------------------------------------------------------------------------------
# displacements (phono3py's systematic scheme)
# --------------------------------------------------------------------------------------------


def _reduced_site_symmetry(site_sym, direction, symprec):
    keep = [r for r in site_sym if (np.abs(direction - direction @ r.T) < symprec).all()]
    return np.array(keep, dtype=np.int64)


def _bond_symmetry(site_sym, lattice, pos, a1, a2, symprec):
    d = pos[a2] - pos[a1]
    rp = np.einsum("sij,j->si", site_sym, d) + pos[a1]
    diff = pos[a2] - rp
    diff -= np.rint(diff)
    ok = np.linalg.norm(diff @ lattice.T, axis=1) < symprec
    return np.asarray(site_sym)[ok]


def _match(pos, target, lattice, symprec) -> int:
    diff = pos - target
    diff -= np.rint(diff)
    hit = np.where(np.linalg.norm(diff @ lattice.T, axis=1) < symprec)[0]
    if len(hit) == 0:
        raise ValueError("site symmetry is broken (no image atom found)")
    return int(hit[0])


def _least_orbits(a1, pos, lattice, site_sym, symprec) -> np.ndarray:
    """Orbit representatives of the supercell atoms around atom ``a1`` under ``site_sym``
    (the same search as phono3py's ``get_least_orbits``, including its running position)."""
    center = pos[a1]
    N = len(pos)
    orbits = []
    for p0 in pos:
        p, mapping = p0, []
        for rot in site_sym:
            rp = (p - center) @ rot.T + center
            i = _match(pos, rp, lattice, symprec)
            mapping.append(i)
            p = pos[i]  # phono3py reuses the matched position for the next operation
        orbits.append(mapping)
    mapping = np.arange(N)
    for i, orb in enumerate(orbits):
        for num in np.unique(orb):
            mapping[num] = min(mapping[num], mapping[i])
    return np.unique(mapping)


def _smallest_distance(a1, a2, sc, symprec) -> float:
    from phonopy.structure.cells import get_smallest_vectors

    spos = sc.scaled_positions
    svecs, _ = get_smallest_vectors(
        sc.cell, spos[[a2]], spos[[a1]], store_dense_svecs=True, symprec=symprec
    )
    return float(np.linalg.norm(sc.cell.T @ svecs[0]))


def third_order_displacements(
    ph3, distance: float = 0.03, cutoff_pair_distance: float | None = None, is_diagonal: bool = True
) -> dict:
    """Symmetry-irreducible fc3 displacement pairs of ``ph3``'s supercell (phono3py's scheme).

    First atoms and directions: phonopy's ``get_least_displacements`` (plus/minus 'auto', not
    diagonal). Second atoms: orbit representatives under the site symmetry reduced by the first
    displacement; their directions: phonopy's candidate directions (with diagonals when
    ``is_diagonal``, phono3py's default; else the lattice axes) reduced by the bond symmetry,
    with the minus direction where symmetry does not supply it.

    Parameters
    ----------
    ph3 : phonopy.Phonopy
        On the fc3 supercell.
    distance : float
        Displacement length, Å.
    cutoff_pair_distance : float, optional
        Pairs farther apart (Å, shortest image) are kept but marked ``included: False``.
    is_diagonal : bool
        Allow diagonal second displacements (phono3py's default, True).

    Returns
    -------
    dict
        phono3py type-1 dataset without forces: ``{"natom", "first_atoms": [{"number",
        "displacement" (3,) Å, "second_atoms": [{"number", "displacement", "pair_distance",
        "included"?}]}]}`` (plus ``"cutoff_distance"`` when given).
    """
    from phonopy.harmonic.displacement import (
        directions_axis,
        get_displacement,
        get_least_displacements,
        is_minus_displacement,
    )

    sc = ph3.supercell
    sym = ph3.symmetry
    symprec = _symprec(ph3)
    pos = sc.scaled_positions
    lattice = sc.cell.T  # columns
    first_atoms = []
    for disp in get_least_displacements(sym, is_plusminus="auto", is_diagonal=False):
        a1, dir1 = int(disp[0]), np.asarray(disp[1:4])
        reduced = _reduced_site_symmetry(sym.get_site_symmetry(a1), dir1, symprec)
        u1 = lattice @ dir1
        u1 = u1 * distance / np.linalg.norm(u1)
        seconds = []
        for a2 in _least_orbits(a1, pos, lattice, reduced, symprec):
            bond = _bond_symmetry(reduced, lattice, pos, a1, int(a2), symprec)
            dirs = []
            cands = (
                get_displacement(bond) if is_diagonal else get_displacement(bond, directions_axis)
            )
            for d2 in cands:
                dirs.append(np.asarray(d2))
                if is_minus_displacement(d2, bond):
                    dirs.append(-np.asarray(d2))
            dist = _smallest_distance(a1, int(a2), sc, symprec)
            for d2 in dirs:
                u2 = lattice @ d2
                entry = {
                    "number": int(a2),
                    "displacement": u2 * distance / np.linalg.norm(u2),
                    "pair_distance": dist,
                }
                if cutoff_pair_distance is not None:
                    entry["included"] = bool(dist < cutoff_pair_distance)
                seconds.append(entry)
        first_atoms.append({"number": a1, "displacement": u1, "second_atoms": seconds})
    out = {"natom": len(sc), "first_atoms": first_atoms}
    if cutoff_pair_distance is not None:
        out["cutoff_distance"] = float(cutoff_pair_distance)
    return out


def count_supercells(dataset) -> int:
    """Number of displaced supercells of a type-1 fc3 dataset (singles + pairs)."""
    first = dataset["first_atoms"]
    return len(first) + sum(len(d["second_atoms"]) for d in first)


# --------------------------------------------------------------------------------------------
# finite-difference solver
# --------------------------------------------------------------------------------------------


def _cart(lattice_cols, rots) -> np.ndarray:
    """Cartesian rotations L R L^-1 (n, 3, 3) of fractional rotations (n, 3, 3)."""
    inv = np.linalg.inv(lattice_cols)
    return np.einsum("ij,njk,kl->nil", lattice_cols, np.asarray(rots, dtype=float), inv)


def fc2_from_first_displacements(ph3, dataset) -> np.ndarray:
    """Full fc2 (N, N, 3, 3) eV/Å² from the single displacements of an fc3 dataset (phonopy's
    traditional solver, not symmetrized; as phono3py's ``get_fc3`` uses it)."""
    from phonopy.interface.fc_calculator import get_fc2

    ds = {
        "natom": int(dataset["natom"]),
        "first_atoms": [
            {
                "number": int(d["number"]),
                "displacement": np.asarray(d["displacement"], float),
                "forces": np.asarray(d["forces"], float),
            }
            for d in dataset["first_atoms"]
        ],
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(
            get_fc2(ph3.supercell, ds, primitive=ph3.primitive, fc_calculator="traditional",
                    is_compact_fc=False, symmetry=ph3.symmetry)
        )  # fmt: skip


def _constrained_fc2(ph3, second_atoms, a1, forces1, reduced_site_sym) -> np.ndarray:
    """fc2 (N, N, 3, 3) of the supercell with atom ``a1`` displaced, from the second
    displacements (delta forces), solved with bond symmetry and distributed with the reduced
    site symmetry (phonopy's fc2 solver and distributor)."""
    from phonopy.harmonic.force_constants import distribute_force_constants, solve_force_constants
    from phonopy.structure.cells import compute_all_sg_permutations

    sc = ph3.supercell
    symprec = _symprec(ph3)
    lattice = sc.cell.T
    pos = sc.scaled_positions
    N = len(sc)
    fc2 = np.zeros((N, N, 3, 3))
    atoms2 = np.unique([int(d["number"]) for d in second_atoms])
    for a2 in atoms2:
        group = [d for d in second_atoms if int(d["number"]) == a2]
        bond = _bond_symmetry(reduced_site_sym, lattice, pos, a1, int(a2), symprec)
        disps = [np.asarray(d["displacement"], float) for d in group]
        forces = [np.asarray(d["forces"], float) - forces1 for d in group]
        solve_force_constants(fc2, int(a2), disps, forces, sc, bond, symprec)
    rotations = np.array(reduced_site_sym, dtype=np.int64, order="C")
    perms = compute_all_sg_permutations(
        pos - pos[a1], rotations, np.zeros((len(rotations), 3)), lattice, symprec,
        sc.permutation_types,
    )  # fmt: skip
    distribute_force_constants(fc2, atoms2, lattice, rotations, perms)
    return fc2


def _site_permutations(ph3, a1, rotations) -> tuple[np.ndarray, np.ndarray]:
    """Atom permutations (s, N) and Cartesian rotations (s, 3, 3) of fractional ``rotations``
    about supercell atom ``a1``: maps[s, i] is the atom with R_s pos[maps[s, i]] = pos[i]."""
    from phonopy.harmonic.force_constants import compute_permutation_for_rotation

    sc = ph3.supercell
    symprec = _symprec(ph3)
    lattice = sc.cell.T
    pos = sc.scaled_positions - sc.scaled_positions[a1]
    maps = np.array([compute_permutation_for_rotation(pos @ r.T, pos, lattice, symprec, sc.permutation_types)
                     for r in rotations])  # fmt: skip
    return maps, _cart(lattice, rotations)


def _fc3_of_first_atom(ph3, a1, disps_first, delta_fc2s) -> np.ndarray:
    """fc3[a1] (N, N, 3, 3, 3) from the fc2 changes over the first displacements of ``a1``,
    using its site symmetry: rows (S u) against (S dfc2[S^-1 i, S^-1 j] S^T), pseudo-inverse."""
    site_sym = ph3.symmetry.get_site_symmetry(a1)
    maps, S = _site_permutations(ph3, a1, site_sym)
    U = np.einsum("sab,db->dsa", S, np.asarray(disps_first, float)).reshape(-1, 3)
    inv_U = np.linalg.pinv(U)  # (3, d*s)
    rows = np.stack([
        np.einsum("ab,ijbc,dc->ijad", S[s], dfc2[np.ix_(maps[s], maps[s])], S[s])
        for dfc2 in delta_fc2s for s in range(len(site_sym))
    ])  # fmt: skip  # (d * s, N, N, 3, 3)
    fc3 = np.einsum("ax,xijbc->ijabc", inv_U, rows, optimize=True)
    return fc3


def distribute_fc3(fc3, ph3, done) -> np.ndarray:
    """Fill the rows of compact ``fc3`` of the primitive atoms not in ``done`` (supercell atom
    indices with rows already computed) by space-group operations, preferring pure translations
    (phono3py's ``distribute_fc3``): fc3[t, j, k] = R^-1 (x) R^-1 (x) R^-1 . fc3[d, g(j), g(k)]."""
    sym = ph3.symmetry
    rotations = sym.symmetry_operations["rotations"]
    perms = sym.atomic_permutations
    lattice = ph3.supercell.cell.T
    sp = _s2compact(ph3)
    ident = np.eye(3, dtype=int)
    pure = {i for i, r in enumerate(rotations) if (r == ident).all()}
    out = np.array(fc3)
    done = sorted(int(d) for d in done)
    for target in ph3.primitive.p2s_map:
        if target in done:
            continue
        for d in done:
            hits = np.where(perms[:, target] == d)[0]
            if len(hits):
                op = next((h for h in hits if h in pure), hits[0])
                break
        else:
            raise ValueError(
                f"no symmetry operation maps supercell atom {target} to a computed one"
            )
        g = perms[op]
        Rinv = _cart(lattice, rotations[op][None])[0].T
        out[sp[target]] = np.einsum(
            "al,bm,cn,jklmn->jkabc", Rinv, Rinv, Rinv, out[sp[d]][np.ix_(g, g)], optimize=True
        )
    return out


def solve_fc3(ph3, dataset, fc2=None) -> np.ndarray:
    """Compact fc3 (n_patom, N, N, 3, 3, 3) eV/Å³ from a type-1 fc3 dataset with forces
    (phono3py's traditional finite-difference solver, not symmetrized).

    Parameters
    ----------
    ph3 : phonopy.Phonopy
        On the fc3 supercell (dataset atom numbers refer to its order).
    dataset : dict
        phono3py type-1 dataset with ``forces`` (N, 3) eV/Å on every single and pair entry.
        First atoms must be primitive-cell representatives (``p2s_map``), as phono3py makes them.
    fc2 : ndarray (N, N, 3, 3), optional
        fc2 of the perfect supercell; default: from the single displacements
        (:func:`fc2_from_first_displacements`), as phono3py does.
    """
    sc = ph3.supercell
    symprec = _symprec(ph3)
    N = len(sc)
    if int(dataset["natom"]) != N:
        raise ValueError(f"dataset natom {dataset['natom']} != supercell atoms {N}")
    if any(
        not d.get("included", True) for d1 in dataset["first_atoms"] for d in d1["second_atoms"]
    ):
        raise ValueError(
            "pair-cutoff datasets (included: False pairs) are not supported by solve_fc3"
        )
    if fc2 is None:
        fc2 = fc2_from_first_displacements(ph3, dataset)
    p2s = list(ph3.primitive.p2s_map)
    sp = _s2compact(ph3)
    inv_cell = np.linalg.inv(sc.cell)
    firsts = np.unique([int(d["number"]) for d in dataset["first_atoms"]])
    fc3 = np.zeros((len(p2s), N, N, 3, 3, 3))
    for a1 in firsts:
        if a1 not in p2s:
            raise ValueError(f"first displaced atom {a1} is not a primitive representative {p2s}")
        site_sym = ph3.symmetry.get_site_symmetry(a1)
        disps, dfc2s = [], []
        for d1 in dataset["first_atoms"]:
            if int(d1["number"]) != a1:
                continue
            u1 = np.asarray(d1["displacement"], float)
            reduced = _reduced_site_symmetry(site_sym, u1 @ inv_cell, symprec)
            cfc2 = _constrained_fc2(
                ph3, d1["second_atoms"], a1, np.asarray(d1["forces"], float), reduced
            )
            disps.append(u1)
            dfc2s.append(cfc2 - fc2)
        fc3[sp[a1]] = _fc3_of_first_atom(ph3, a1, disps, dfc2s)
    return distribute_fc3(fc3, ph3, {int(a) for a in firsts})


# --------------------------------------------------------------------------------------------
# DFT reference and model fc3
# --------------------------------------------------------------------------------------------


def reference_fc3(ref3, symmetrize: bool = True):
    """DFT fc2 and fc3 of a :class:`~pftlite.datasets.phono3py_refs.Phono3pyReference`.

    fc2: :func:`pftlite.phonons.force_constants.reference_force_constants` (phonopy traditional solver,
    symmetrized) on the phonon dataset in the phonon supercell, or on the single displacements of
    the fc3 dataset when the file has no separate fc2 set. fc3: :func:`solve_fc3` (fc2 of the
    fc3 supercell from the single displacements, as phono3py), then :func:`symmetrize_fc3`.

    Returns
    -------
    fc2 : ndarray (N2, N2, 3, 3) eV/Å², full, in ``phonon_reference(ref3)``'s supercell
    fc3 : ndarray (n_patom, N3, N3, 3, 3, 3) eV/Å³, compact, in the fc3 supercell
    info : dict
        ``fc2_supercell_matrix``, ``fc3_supercell_matrix``, ``fc2_how``, ``fc3_solver``,
        ``symmetrize``, ``n_fc3_supercells``, ``invariance`` (:func:`fc3_invariance`), ``seconds``.
    """
    from pftlite.datasets.phono3py_refs import phonon_reference
    from pftlite.phonons.force_constants import make_phonopy, reference_force_constants

    t0 = time.perf_counter()
    pr = phonon_reference(ref3)
    ph2 = make_phonopy(pr.unitcell, pr.supercell_matrix, pr.primitive_matrix)
    fc2, how = reference_force_constants(ph2, dataset=pr.dataset)
    ph3 = make_fc3_phonopy(ref3)
    fc3 = solve_fc3(ph3, ref3.dataset)
    if symmetrize:
        fc3 = symmetrize_fc3(fc3, ph3)
    info = {
        "fc2_supercell_matrix": np.asarray(pr.supercell_matrix).tolist(),
        "fc3_supercell_matrix": np.asarray(ref3.supercell_matrix).tolist(),
        "fc2_how": how,
        "fc3_solver": "pftlite traditional finite differences (phono3py's scheme)",
        "symmetrize": SYMMETRIZE_NOTE if symmetrize else "none",
        "n_fc3_supercells": count_supercells(ref3.dataset),
        "invariance": fc3_invariance(fc3, ph3),
        "seconds": time.perf_counter() - t0,
    }
    return fc2, fc3, info


SYMMETRIZE_NOTE = "traditional: translational invariance (3 indices) + permutation average, level 3"


def _column_plan(ph3, a1, direction):
    """Which Hessian-derivative columns a displacement of atom ``a1`` along ``direction``
    (fractional) needs: the site symmetry of ``a1`` that keeps ``direction`` also keeps
    dH = d/du H, so dH[i, k] = S dH[m(i), m(k)] S^T (pos[i] = R pos[m(i)] about ``a1``) and
    only one atom per orbit needs its three columns. Returns (representative atoms (r,),
    rep_of (N,) the representative's index in that list, op (N,) the operation with
    m_op(k) = rep, maps (s, N), S (s, 3, 3) Cartesian)."""
    red = _reduced_site_symmetry(ph3.symmetry.get_site_symmetry(a1), np.asarray(direction, float), _symprec(ph3))
    maps, S = _site_permutations(ph3, a1, red)
    rep = maps.min(axis=0)  # the lowest-numbered atom of each orbit
    reps = np.unique(rep)
    op = np.array([int(np.flatnonzero(maps[:, k] == rep[k])[0]) for k in range(maps.shape[1])])
    return reps, np.searchsorted(reps, rep), op, maps, S


def _dH_rows(ev, batch, u, method, h, plan=None, chunk=None) -> tuple[np.ndarray, int]:
    """d/de H(x + e u) as fc2 layout (N, N, 3, 3) eV/Å³ (u: (N, 3), unit length), and the
    number of columns evaluated. plan: :func:`_column_plan` (columns of one atom per orbit,
    the rest by site symmetry); None: all 3N columns."""
    N = batch.n_atoms
    atoms = np.arange(N) if plan is None else plan[0]
    cols = (3 * atoms[:, None] + np.arange(3)).ravel()
    V = np.eye(3 * N)[cols].reshape(len(cols), N, 3)
    if method == "exact" or not ev.exact_hvp_derivative:  # numba: FD of analytic HVPs already
        out = ev.hvp_derivative(batch, u, V, h=h, chunk=chunk)
    else:  # finite differences of the backend's HVPs (Hessian columns) at x +- h u
        from pftlite.structures.batch import make_batch

        def hess(sign):
            x = batch.positions + sign * h * u
            b = make_batch([(x, batch.numbers, batch.cells[0])], ev.potential)
            return np.asarray(ev.hessian(b, columns=cols))

        out = (hess(1.0) - hess(-1.0)) / (2 * h)
    # block[r, j, b, c] = dH[j b, atoms[r] c]
    block = np.asarray(out).reshape(len(atoms), 3, N, 3).transpose(0, 2, 3, 1)
    if plan is None:
        return block.transpose(1, 0, 2, 3), len(cols)
    _, rep_of, op, maps, S = plan
    full = np.empty((N, N, 3, 3))
    for k in range(N):
        s = op[k]
        full[:, k] = np.einsum("ab,jbc,dc->jad", S[s], block[rep_of[k]][maps[s]], S[s])
    return full, len(cols)


def model_fc3(potential, backend, ph3, method: str | None = None, distance: float = 0.03,
              h: float = 1e-3, symmetrize: bool = True, column_symmetry: bool = True):  # fmt: skip
    """fc3 of a model in the fc3 supercell of ``ph3`` (compact, eV/Å³).

    Parameters
    ----------
    potential : pftlite.potentials.Potential
    backend : str
    ph3 : phonopy.Phonopy
        On the fc3 supercell of the (relaxed) unit cell (:func:`make_fc3_phonopy` or
        :func:`pftlite.phonons.force_constants.make_phonopy`).
    method : {"exact", "hvp-fd", "displacement"}, optional
        ``"exact"``: third derivatives by autodiff (a backend with an exact ``hvp_derivative``: JAX). ``"hvp-fd"``: the same
        rows by central finite differences of analytic HVPs with step ``h`` (Å). Both take, for
        each symmetry-irreducible primitive atom, the derivative of the Hessian along phonopy's
        least displacement directions (one ``hvp_derivative`` per Hessian column), solve fc3 of
        that atom through its site symmetry and distribute it by the space group.
        ``"displacement"``: phono3py's pair displacements at ``distance`` (Å), model forces, and
        :func:`solve_fc3`. Default: "exact" where the backend has it (JAX), "hvp-fd" otherwise.
    distance, h : float
        Displacement length (Å) of "displacement"; finite-difference step (Å) of "hvp-fd".
    symmetrize : bool
        Apply :func:`symmetrize_fc3` (default).
    column_symmetry : bool
        "exact"/"hvp-fd": evaluate the Hessian-derivative columns of one atom per orbit of the
        displaced atom's site symmetry that keeps the direction, and rotate them onto the rest
        (:func:`_column_plan`; the same numbers to rounding, several times fewer columns in a
        cubic cell); False: all 3N columns per direction.

    Returns
    -------
    fc3 : ndarray (n_patom, N, N, 3, 3, 3)
    info : dict
        ``method``, ``backend``, ``derivative`` (how third derivatives were obtained),
        ``distance`` or ``h``, ``n_evaluations`` and ``evaluation`` (what was counted),
        ``n_directions``, ``symmetrize``, ``seconds``.
    """
    from phonopy.harmonic.displacement import get_least_displacements

    from pftlite.phonons.force_constants import supercell_atoms
    from pftlite.structures.batch import make_batch

    ev = potential.on(backend)
    name = ev.backend
    if method is None:
        method = "exact" if ev.exact_hvp_derivative else "hvp-fd"
    if method not in FC3_METHODS:
        raise ValueError(f"fc3 method must be one of {FC3_METHODS}, got {method!r}")
    if method == "exact" and not ev.exact_hvp_derivative:
        raise ValueError(f"fc3 method 'exact' needs the jax backend ({name}: use 'hvp-fd')")
    t0 = time.perf_counter()
    atoms = supercell_atoms(ph3)
    N = len(atoms)
    info = {"method": method, "backend": name}
    if method == "displacement":
        ds = third_order_displacements(ph3, distance)

        def forces(moves):
            a = atoms.copy()
            pos = a.get_positions()
            for number, vec in moves:
                pos[number] += vec
            a.set_positions(pos)
            return np.asarray(
                ev.energy_forces_stress(make_batch([a], potential))["forces"]
            )

        for d1 in ds["first_atoms"]:
            m1 = (d1["number"], d1["displacement"])
            d1["forces"] = forces([m1])
            for d2 in d1["second_atoms"]:
                d2["forces"] = forces([m1, (d2["number"], d2["displacement"])])
        fc3 = solve_fc3(ph3, ds)
        info.update(
            derivative="finite displacements (phono3py pair scheme), model forces",
            distance=float(distance), n_evaluations=count_supercells(ds),
            evaluation="force calls", n_directions=len(ds["first_atoms"]),
        )  # fmt: skip
    else:
        batch = make_batch([atoms], potential, sources=["fc3 supercell"])
        lattice = ph3.supercell.cell.T
        firsts = get_least_displacements(ph3.symmetry, is_plusminus=False, is_diagonal=False)
        sp = _s2compact(ph3)
        fc3 = np.zeros((len(ph3.primitive.p2s_map), N, N, 3, 3, 3))
        done, n_columns = [], 0
        for a1 in sorted({int(d[0]) for d in firsts}):
            fracs = [np.asarray(d[1:4], float) for d in firsts if int(d[0]) == a1]
            dirs = [lattice @ f / np.linalg.norm(lattice @ f) for f in fracs]
            dHs = []
            for f, v in zip(fracs, dirs):
                u = np.zeros((N, 3))
                u[a1] = v
                plan = _column_plan(ph3, a1, f) if column_symmetry else None
                dH, n = _dH_rows(ev, batch, u, method, h, plan)
                dHs.append(dH)
                n_columns += n
            fc3[sp[a1]] = _fc3_of_first_atom(ph3, a1, dirs, dHs)
            done.append(a1)
        fc3 = distribute_fc3(fc3, ph3, done)
        info.update(
            derivative=(
                "exact (JAX jvp of the HVP)" if method == "exact"
                else f"central finite difference of analytic HVPs ({name} backend)"
            ),
            n_evaluations=n_columns, column_symmetry=bool(column_symmetry),
            evaluation="hvp_derivative columns" + ("" if method == "exact" else " (2 HVPs each)"),
            n_directions=len(firsts),
        )  # fmt: skip
        if method == "hvp-fd":
            info["h"] = float(h)
    if symmetrize:
        fc3 = symmetrize_fc3(fc3, ph3)
    info["symmetrize"] = SYMMETRIZE_NOTE if symmetrize else "none"
    info["seconds"] = time.perf_counter() - t0
    return fc3, info
