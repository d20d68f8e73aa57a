"""Hessian-column samplers: which column of each structure's Hessian a training step uses.

A column is k = 3 * atom + direction of one structure's Hessian, obtained with one HVP.
Random draws come from ``numpy.random.default_rng([seed, epoch, step, structure])``: the
column a step uses is a function of those four integers, never of hidden generator state,
so a resumed run draws exactly what an uninterrupted one would.

- ``uniform``: k uniform over the 3N columns (the published recipe).
- ``symmetry``: an irreducible atom (spglib orbits of the supercell) with probability
  orbit size / N, a direction uniform among 3. For a column loss that is invariant under the
  crystal's point operations acting on the column (always for MSE; for MAE when the
  operations are signed permutations of x, y, z, as in cubic crystals) its expectation
  equals the uniform sampler's, i.e. the full-Hessian loss.
"""

from __future__ import annotations

import numpy as np

SAMPLERS = ("uniform", "symmetry")



def sample_columns(kind: str, n_atoms, seed: int, epoch: int, step: int, orbit_list=None) -> np.ndarray:
    """One column per structure: (B,) int, k = 3 * atom + direction.

    n_atoms: (B,) atoms per structure; orbit_list: (B,) :class:`pftlite.phonons.symmetry.Orbits` (symmetry sampler).
    """
    if kind not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {kind!r}")
    cols = np.empty(len(n_atoms), dtype=np.int64)
    for b, n in enumerate(n_atoms):
        rng = np.random.default_rng([seed, epoch, step, b])
        if kind == "uniform":
            cols[b] = rng.integers(3 * int(n))
        else:
            o = orbit_list[b]
            atom = o.irreducible[rng.choice(len(o.irreducible), p=o.orbit_size / o.orbit_size.sum())]
            cols[b] = 3 * int(atom) + int(rng.integers(3))
    return cols
