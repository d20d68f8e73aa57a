"""Neighbour list vs ase.neighborlist (oracle): edge sets, image shifts, CSR layout, order."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.neighborlist import neighbor_list as ase_neighbor_list

from pftlite.structures.neighbors import neighbor_list


def _edges(first, j, shift):
    i = np.repeat(np.arange(len(first) - 1), np.diff(first))
    return [(int(a), int(b), tuple(int(s) for s in S)) for a, b, S in zip(i, j, shift)]


def _check_layout(first, j, shift, n):
    assert first.shape == (n + 1,) and first.dtype == np.int64
    assert j.dtype == np.int64 and shift.dtype == np.int64 and shift.shape == (len(j), 3)
    assert first[0] == 0 and first[-1] == len(j) and np.all(np.diff(first) >= 0)
    assert np.all((j >= 0) & (j < n))
    # within each atom's segment, edges are sorted by (j, S) (deterministic order)
    for a in range(n):
        seg = list(zip(j[first[a] : first[a + 1]].tolist(), map(tuple, shift[first[a] : first[a + 1]].tolist())))
        assert seg == sorted(seg)


def _compare_with_ase(positions, cell, r_cut):
    positions = np.asarray(positions, float)
    cell = np.asarray(cell, float)
    first, j, shift = neighbor_list(positions, cell, r_cut)
    _check_layout(first, j, shift, len(positions))
    ours = _edges(first, j, shift)
    assert len(set(ours)) == len(ours), "duplicate edges"
    atoms = Atoms("X%d" % len(positions), positions=positions, cell=cell, pbc=True)
    ai, aj, aS = ase_neighbor_list("ijS", atoms, r_cut)
    ref = {(int(a), int(b), tuple(int(s) for s in S)) for a, b, S in zip(ai, aj, aS)}
    assert set(ours) == ref
    # the shifts refer to the given (unwrapped) positions
    i = np.repeat(np.arange(len(positions)), np.diff(first))
    d = np.linalg.norm(positions[j] - positions[i] + shift @ cell, axis=1)
    assert np.all(d < r_cut)
    # deterministic
    again = neighbor_list(positions, cell, r_cut)
    assert all(np.array_equal(x, y) for x, y in zip((first, j, shift), again))
    return first, j, shift


def test_si_primitive_many_images():
    at = bulk("Si", "diamond", a=5.43)
    first, j, shift = _compare_with_ase(at.positions, at.cell[:], 5.0)
    assert len(j) > 10 * len(at)  # many images of the same two atoms
    i = np.repeat(np.arange(len(at)), np.diff(first))
    assert np.any((i == j) & np.any(shift != 0, axis=1))  # self-images


@pytest.mark.parametrize("rep", [2, 4])
def test_si_supercells_rattled(rep):
    at = bulk("Si", "diamond", a=5.43, cubic=True).repeat(rep)
    at.rattle(0.1, seed=rep)
    _compare_with_ase(at.positions, at.cell[:], 5.0)


def test_skewed_triclinic():
    rng = np.random.default_rng(0)
    cell = np.array([[9.0, 0.0, 0.0], [7.5, 4.0, 0.0], [-6.0, 5.5, 5.0]])  # strongly skewed
    frac = rng.uniform(0.0, 1.0, size=(60, 3))
    _compare_with_ase(frac @ cell, cell, 4.5)
    # larger: several bins along each axis
    cell3 = cell * 3.0
    frac = rng.uniform(0.0, 1.0, size=(300, 3))
    _compare_with_ase(frac @ cell3, cell3, 4.0)


def test_tiny_one_atom_cell():
    cell = np.eye(3) * 2.3
    first, j, shift = _compare_with_ase([[0.3, 0.1, 0.2]], cell, 4.0)
    assert np.all(j == 0) and len(j) > 0


def test_unwrapped_positions():
    rng = np.random.default_rng(1)
    at = bulk("Si", "diamond", a=5.43, cubic=True).repeat(3)
    at.rattle(0.05, seed=2)
    cell = at.cell[:]
    n_img = rng.integers(-3, 4, size=(len(at), 3))  # includes negative fractional coordinates
    x = at.positions + n_img @ cell
    first, j, shift = _compare_with_ase(x, cell, 5.0)
    # same graph as the wrapped structure: x = x_wrapped + n @ cell gives S = S_wrapped + n_i - n_j
    fw, jw, sw = neighbor_list(at.positions, cell, 5.0)
    i = np.repeat(np.arange(len(at)), np.diff(first))
    iw = np.repeat(np.arange(len(at)), np.diff(fw))
    ours = set(_edges(first, j, shift))
    expect = {(a, b, tuple((s + n_img[a] - n_img[b]).tolist())) for a, b, s in zip(iw, jw, sw)}
    assert ours == expect and len(i) == len(iw)


def test_atoms_on_cell_boundary():
    cell = np.array([[4.0, 0.0, 0.0], [1.0, 4.0, 0.0], [0.5, 0.5, 4.0]])
    frac = np.array([[0.0, 0.0, 0.0], [1.0, 0.5, 0.5], [-1e-17, 0.5, 1.0 - 1e-17], [0.5, -1e-300, 0.25]])
    _compare_with_ase(frac @ cell, cell, 3.9)


def test_long_thin_cell():
    rng = np.random.default_rng(3)
    cell = np.diag([40.0, 3.0, 3.0])
    x = rng.uniform(0.0, 1.0, size=(40, 3)) @ cell
    _compare_with_ase(x, cell, 4.0)
    skew = np.array([[40.0, 0.0, 0.0], [2.0, 3.0, 0.0], [-1.0, 1.0, 3.2]])
    _compare_with_ase(rng.uniform(-1.0, 2.0, size=(40, 3)) @ skew, skew, 5.0)


def test_overlapping_atoms_give_zero_length_edge():
    cell = np.eye(3) * 6.0
    x = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [4.0, 4.0, 4.0]])
    first, j, shift = neighbor_list(x, cell, 3.0)
    _check_layout(first, j, shift, 3)
    edges = set(_edges(first, j, shift))
    assert (0, 1, (0, 0, 0)) in edges and (1, 0, (0, 0, 0)) in edges
    assert (0, 0, (0, 0, 0)) not in edges and (1, 1, (0, 0, 0)) not in edges


def test_csr_offsets_consistent():
    at = bulk("Si", "diamond", a=5.43, cubic=True).repeat(2)
    at.rattle(0.1, seed=5)
    first, j, shift = neighbor_list(at.positions, at.cell[:], 5.0)
    _check_layout(first, j, shift, len(at))
    ai = ase_neighbor_list("i", Atoms("X%d" % len(at), positions=at.positions, cell=at.cell, pbc=True), 5.0)
    np.testing.assert_array_equal(np.diff(first), np.bincount(ai, minlength=len(at)))


def test_empty_and_degenerate_inputs():
    first, j, shift = neighbor_list(np.zeros((0, 3)), np.eye(3) * 5.0, 3.0)
    assert first.tolist() == [0] and j.shape == (0,) and shift.shape == (0, 3)
    first, j, shift = neighbor_list(np.zeros((2, 3)) + [[0, 0, 0], [1, 0, 0]], np.eye(3) * 5.0, 0.0)
    assert first.tolist() == [0, 0, 0] and len(j) == 0


def test_neighbour_list_refuses_what_cannot_fit():
    """A cell far too small for the cutoff (1e-3 Å: ~5e11 pairs) is refused with the estimate
    before any loop starts, instead of running for minutes and filling the memory."""
    import pytest

    from pftlite.core.errors import InputError
    from pftlite.structures.neighbors import estimated_edges, neighbor_list

    with pytest.raises(InputError, match="neighbour pairs"):
        neighbor_list(np.zeros((1, 3)), np.eye(3) * 1e-3, 5.0)
    assert estimated_edges(8, np.eye(3) * 5.43, 5.0) == pytest.approx(8 * 8 * 4 / 3 * np.pi * 125 / 5.43**3)
