"""Reciprocal-space grids for ``pftlite.kappa.conductivity``: mesh, irreducible points, triplets, tetrahedra.

A Γ-centred regular mesh in the primitive reciprocal basis, its Brillouin-zone images
(phonopy's ``BZGrid``, dense map: every grid point with all its images of equal length on
the BZ surface), the irreducible points and weights (spglib's point group plus time
reversal), and for one q0 the irreducible triplets (q0, q1, q2), q0 + q1 + q2 = G with the
smallest |G| — the same search as phono3py's ``get_triplets_at_q`` (little group of q0 and
the q1 ↔ q2 swap), written as a Numba kernel. Tetrahedra: the 24 around each grid point,
cut along the shortest main diagonal (phonopy).

Units: reciprocal lattice in 1/Å without 2π (columns); q-points in reduced coordinates.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from pftlite.core.errors import InputError
from pftlite.kappa import kernels as kk


@dataclass(frozen=True)
class BZMesh:
    """A Γ-centred mesh and its BZ images.

    Arrays (n_bz = number of BZ images ≥ N = prod(mesh)):
    ``addresses`` (n_bz, 3) int grid addresses of the images; ``qpoints`` (n_bz, 3) reduced
    q; ``gp_map`` (N + 1,) images of grid point g are ``gp_map[g]:gp_map[g+1]``;
    ``grg2bzg`` (N,) first image of each grid point; ``rotations`` (n_rot, 3, 3) reciprocal
    point group (time reversal added) acting on grid addresses; ``rotations_cartesian``
    (n_rot, 3, 3); ``ir_grid_points`` (n_ir,) grid indices; ``ir_weights`` (n_ir,) int;
    ``ir_bz`` (n_ir,) their BZ images; ``tetrahedra`` (24, 4, 3) relative addresses;
    ``LQD_inv`` (3, 3) grid address → Cartesian q; ``tolerance`` (1/Å²) for BZ reduction.
    """

    mesh: tuple
    reciprocal_lattice: np.ndarray
    addresses: np.ndarray
    qpoints: np.ndarray
    gp_map: np.ndarray
    grg2bzg: np.ndarray
    rotations: np.ndarray
    rotations_cartesian: np.ndarray
    ir_grid_points: np.ndarray
    ir_weights: np.ndarray
    ir_bz: np.ndarray
    tetrahedra: np.ndarray
    LQD_inv: np.ndarray
    tolerance: float

    @property
    def n_grid(self) -> int:
        return int(np.prod(self.mesh))

    @property
    def D(self) -> np.ndarray:
        return np.asarray(self.mesh, dtype=np.int64)


def make_bz_mesh(lattice, symmetry_dataset, mesh, name: str = "mesh") -> BZMesh:
    """BZ mesh of the primitive cell ``lattice`` (rows, Å) with spglib ``symmetry_dataset``.

    Raises ``InputError`` when ``mesh`` is not three positive integers or breaks the
    crystal symmetry (e.g. (4, 4, 5) for a cubic crystal).
    """
    from phonopy.phonon.grid import BZGrid, get_ir_grid_points, get_reduced_bases_and_tmat_inv
    from phonopy.phonon.tetrahedron_method import get_tetrahedra_relative_gr_grid_address

    m = np.asarray(mesh)
    if m.shape != (3,) or not np.all(np.equal(np.mod(m, 1), 0)) or np.any(m < 1):
        raise InputError(f"{name}: mesh must be three positive integers, got {mesh!r}")
    m = m.astype(np.int64)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bzg = BZGrid(m, lattice=np.asarray(lattice, float), symmetry_dataset=symmetry_dataset,
                         is_time_reversal=True, use_grg=False, force_SNF=False,
                         store_dense_gp_map=True)  # fmt: skip
    except RuntimeError as err:
        if "symmetry" in str(err).lower():
            raise InputError(
                f"{name}: mesh {tuple(int(x) for x in m)} breaks the crystal symmetry "
                f"(space group {symmetry_dataset.international}); use a mesh with the "
                "lattice's symmetry, e.g. equal numbers along equivalent axes"
            ) from None
        raise
    if not (np.array_equal(bzg.P, np.eye(3)) and np.array_equal(bzg.Q, np.eye(3))):
        raise InputError(f"{name}: mesh {tuple(m)} needs a generalized regular grid (unsupported)")
    ir_gp, ir_w, _ = get_ir_grid_points(bzg)
    reduced, _ = get_reduced_bases_and_tmat_inv(bzg.reciprocal_lattice)
    lengths = (reduced**2).sum(axis=0) / bzg.D_diag.astype(float) ** 2
    rec = np.asarray(bzg.reciprocal_lattice, float)
    return BZMesh(
        mesh=tuple(int(x) for x in m),
        reciprocal_lattice=rec,
        addresses=np.ascontiguousarray(bzg.addresses, dtype=np.int64),
        qpoints=np.ascontiguousarray(bzg.addresses @ np.asarray(bzg.QDinv).T, dtype=float),
        gp_map=np.ascontiguousarray(bzg.gp_map, dtype=np.int64),
        grg2bzg=np.ascontiguousarray(bzg.grg2bzg, dtype=np.int64),
        rotations=np.ascontiguousarray(bzg.rotations, dtype=np.int64),
        rotations_cartesian=np.ascontiguousarray(bzg.rotations_cartesian, dtype=float),
        ir_grid_points=np.asarray(ir_gp, dtype=np.int64),
        ir_weights=np.asarray(ir_w, dtype=np.int64),
        ir_bz=np.asarray(bzg.grg2bzg[ir_gp], dtype=np.int64),
        tetrahedra=np.ascontiguousarray(get_tetrahedra_relative_gr_grid_address(bzg), dtype=np.int64),
        LQD_inv=np.ascontiguousarray(rec / bzg.D_diag[None, :].astype(float)),
        tolerance=float(0.01 * lengths.max()),
    )


def triplets_at_q(bz: BZMesh, gp_bz: int, swappable: bool = True):
    """Irreducible triplets at BZ point ``gp_bz``: ``(triplets (n, 3) BZ ids, weights (n,))``.

    Weights count the q1 of the full grid mapped onto each triplet (sum = prod(mesh)).
    """
    gp = int(np.ravel_multi_index(tuple(bz.addresses[gp_bz] % bz.D), bz.mesh, order="F"))
    map_t = kk.ir_triplets_map(gp, bz.D, bz.rotations, swappable)
    counts = np.bincount(map_t, minlength=bz.n_grid)
    ir_q1 = np.flatnonzero(counts)
    triplets = kk.bz_triplets(gp_bz, ir_q1, bz.addresses, bz.gp_map, bz.D, bz.LQD_inv, bz.tolerance)
    return triplets, counts[ir_q1].astype(np.int64)
