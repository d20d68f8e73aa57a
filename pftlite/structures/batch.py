"""Batches: several periodic structures packed into one disjoint graph.

A :class:`Batch` is built once per geometry (the neighbour list is held fixed while
derivatives are taken) and passed to every backend function as plain contiguous arrays.
Atoms of structure b are ``atom_offsets[b]:atom_offsets[b+1]``; edges are sorted by their
centre atom, with CSR offsets ``edge_first``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pftlite.core.errors import InputError
from pftlite.structures.neighbors import neighbor_list

MIN_DISTANCE = 0.3  # Å; closer atoms are an input error, not a physical structure


@dataclass(frozen=True, eq=False)
class Batch:
    """Packed structures. Units: Å. N atoms, B structures, E edges.

    positions (N, 3); numbers (N,) atomic numbers; species (N,) model channel index;
    cells (B, 3, 3) lattice vectors as rows; volumes (B,) Å³; atom_struct (N,);
    atom_offsets (B + 1,); edge_i, edge_j (E,) global atom indices; edge_shift (E, 3)
    Cartesian image offset (Å) so that r_e = x_j - x_i + edge_shift; edge_first (N + 1,);
    edge_struct (E,); r_cut (Å) the list was built for; pad_to: optional (atoms, edges) a
    padding backend pads to instead of its own bucket (:mod:`pftlite.structures.padding`).
    """

    positions: np.ndarray
    numbers: np.ndarray
    species: np.ndarray
    cells: np.ndarray
    volumes: np.ndarray
    atom_struct: np.ndarray
    atom_offsets: np.ndarray
    edge_i: np.ndarray
    edge_j: np.ndarray
    edge_shift: np.ndarray
    edge_first: np.ndarray
    edge_struct: np.ndarray
    r_cut: float
    pad_to: tuple | None = None

    @property
    def n_atoms(self) -> int:
        return len(self.positions)

    @property
    def n_structures(self) -> int:
        return len(self.cells)

    @property
    def n_edges(self) -> int:
        return len(self.edge_i)

    @property
    def n_atoms_per_structure(self) -> np.ndarray:
        return np.diff(self.atom_offsets)

    def edge_vectors(self, positions=None) -> np.ndarray:
        """r_e = x_j - x_i + shift, (E, 3) Å; optionally for displaced positions (N, 3)."""
        x = self.positions if positions is None else positions
        return x[self.edge_j] - x[self.edge_i] + self.edge_shift

    def with_positions(self, positions) -> Batch:
        """Same graph, new positions (N, 3). The caller guarantees the list is still valid."""
        from dataclasses import replace

        return replace(self, positions=np.ascontiguousarray(positions, dtype=np.float64))


def _as_triplet(s):
    """(positions, numbers, cell) from an ase.Atoms or a tuple."""
    if hasattr(s, "get_positions"):
        return s.get_positions(), s.get_atomic_numbers(), np.asarray(s.cell[:])
    positions, numbers, cell = s
    return np.asarray(positions, float), np.asarray(numbers, int), np.asarray(cell, float)


def species_index(species, numbers, source: str = "structure") -> np.ndarray:
    """Map atomic numbers (N,) to indices (N,) into ``species`` (atomic numbers, a potential's
    channel order); an element not in ``species`` is an InputError naming ``source``."""
    from ase.data import chemical_symbols

    lut = {int(z): i for i, z in enumerate(species)}
    out = np.empty(len(numbers), dtype=np.int64)
    for k, z in enumerate(numbers):
        if int(z) not in lut:
            known = ", ".join(chemical_symbols[s] for s in species)
            raise InputError(
                f"{source}: element {chemical_symbols[int(z)]} is not in the model's species ({known})"
            )
        out[k] = lut[int(z)]
    return out


def make_batch(structures, model, sources=None) -> Batch:
    """Pack structures (ase.Atoms or (positions, numbers, cell) tuples) for ``model``: anything
    with ``species`` (atomic numbers) and ``r_cut`` (Å) — a potential or its spec.

    Raises InputError for empty structures, NaN, singular cells or unknown species;
    ``sources`` (optional list of names) is used in messages.
    """
    if len(structures) == 0:
        raise InputError("batch: no structures given")
    pos_l, num_l, sp_l, cells, vols = [], [], [], [], []
    ei, ej, es, first_l, estruct = [], [], [], [], []
    n_off = 0
    e_off = 0
    offsets = [0]
    for b, s in enumerate(structures):
        src = sources[b] if sources is not None else f"structure {b}"
        x, z, cell = _as_triplet(s)
        x = np.asarray(x, dtype=np.float64).reshape(-1, 3)
        cell = np.asarray(cell, dtype=np.float64).reshape(3, 3)
        if len(x) == 0:
            raise InputError(f"{src}: structure has no atoms")
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(cell))):
            raise InputError(f"{src}: positions or cell contain NaN or inf")
        vol = float(np.linalg.det(cell))
        if abs(vol) < 1e-6:
            raise InputError(f"{src}: cell is singular or missing (pftlite needs a 3D periodic cell)")
        sp = species_index(model.species, z, src)
        try:
            first, j, shift = neighbor_list(x, cell, model.r_cut)
        except InputError as exc:
            raise InputError(f"{src}: {exc}") from None
        if len(j):
            d = np.linalg.norm(x[j] - x[np.repeat(np.arange(len(x)), np.diff(first))] + shift @ cell, axis=1)
            k = int(np.argmin(d))
            if d[k] < MIN_DISTANCE:
                i_k = int(np.searchsorted(first, k, side="right") - 1)
                raise InputError(
                    f"{src}: atoms {i_k} and {int(j[k])} are {d[k]:.3g} Å apart "
                    f"(closer than {MIN_DISTANCE} Å)"
                )
        pos_l.append(x)
        num_l.append(np.asarray(z, dtype=np.int64))
        sp_l.append(sp)
        cells.append(cell)
        vols.append(abs(vol))
        n = len(x)
        ei.append(np.repeat(np.arange(n), np.diff(first)) + n_off)
        ej.append(j + n_off)
        es.append(shift @ cell)
        first_l.append(first[:-1] + e_off)
        estruct.append(np.full(len(j), b, dtype=np.int64))
        n_off += n
        e_off += len(j)
        offsets.append(n_off)
    edge_first = np.concatenate(first_l + [np.array([e_off])]).astype(np.int64)
    atom_offsets = np.array(offsets, dtype=np.int64)
    return Batch(
        positions=np.ascontiguousarray(np.concatenate(pos_l)),
        numbers=np.concatenate(num_l),
        species=np.concatenate(sp_l),
        cells=np.array(cells),
        volumes=np.array(vols),
        atom_struct=np.repeat(np.arange(len(structures)), np.diff(atom_offsets)),
        atom_offsets=atom_offsets,
        edge_i=np.concatenate(ei).astype(np.int64),
        edge_j=np.concatenate(ej).astype(np.int64),
        edge_shift=np.ascontiguousarray(np.concatenate(es)),
        edge_first=edge_first,
        edge_struct=np.concatenate(estruct),
        r_cut=float(model.r_cut),
    )
