"""Padded shapes for a known set of batches: few compilations, little padding.

A backend that pads (the JAX Nequix backend) compiles once per padded (atoms, edges) shape. Its
default, :func:`pftlite.potentials.jax_autodiff.bucket`, rounds each batch up on its own
(eighth-octave steps), so a training set of many sizes costs one compile per bucket it touches —
ten or more for mixed upstream data, 30–90 s each on a CPU. When the batches are known in
advance (a training run's upstream and validation data), :func:`plan_shapes` chooses at most
``max_shapes`` shapes covering all of them with the least total padded work, and
:func:`with_shape` attaches the one a batch uses (``Batch.pad_to``). Padding never changes a
result beyond rounding (padding atoms and edges carry exactly zero).

Sizes are "needs": (atoms + 1, edges) — one padding atom at least, as the backend pads.
"""

from __future__ import annotations

import dataclasses

import numpy as np

#: padded shapes are multiples of these (atoms, edges)
QUANTUM = (8, 64)


def batch_need(batch) -> tuple[int, int]:
    """(atoms + 1, edges) a padded evaluation of ``batch`` needs at least."""
    return batch.n_atoms + 1, batch.n_edges


def _round_up(x, q):
    return -(-np.asarray(x, dtype=np.int64) // q) * q


def plan_shapes(needs, max_shapes: int = 4, atom_cost: float = 16.0) -> np.ndarray:
    """At most ``max_shapes`` padded shapes (K, 2) int (atoms, edges; multiples of
    :data:`QUANTUM`) covering every need in ``needs`` ((M, 2): atoms, edges; repeats count as
    often as they occur), minimising the total padded cost ``edges + atom_cost * atoms`` over all
    needs, each served by the cheapest shape that covers it.

    Exact over groups contiguous in edge order (dynamic programming on the distinct rounded
    edge counts; a group's shape is its largest atoms and edges), O(V^2 K) for V distinct
    values. Deterministic: no random choice, ties to the fewer shapes."""
    needs = np.asarray(needs, dtype=np.int64).reshape(-1, 2)
    if len(needs) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if max_shapes < 1:
        raise ValueError(f"plan_shapes: max_shapes must be >= 1, got {max_shapes}")
    a = _round_up(needs[:, 0], QUANTUM[0])
    e = _round_up(needs[:, 1], QUANTUM[1])
    values, inverse = np.unique(e, return_inverse=True)
    V = len(values)
    count = np.bincount(inverse, minlength=V).astype(float)
    amax = np.zeros(V, dtype=np.int64)
    np.maximum.at(amax, inverse, a)
    # cost[i, j]: one shape for values i..j (inclusive)
    cost = np.full((V, V), np.inf)
    for i in range(V):
        n, top = 0.0, 0
        for j in range(i, V):
            n += count[j]
            top = max(top, amax[j])
            cost[i, j] = n * (values[j] + atom_cost * top)
    K = min(max_shapes, V)
    best = np.full((K + 1, V + 1), np.inf)  # best[k, j]: first j values in k groups
    cut = np.zeros((K + 1, V + 1), dtype=np.int64)
    best[0, 0] = 0.0
    for k in range(1, K + 1):
        for j in range(1, V + 1):
            c = best[k - 1, :j] + cost[np.arange(j), j - 1]
            i = int(np.argmin(c))
            best[k, j], cut[k, j] = c[i], i
    k = int(np.argmin(best[1:, V])) + 1  # argmin: the fewest shapes among equal costs
    shapes, j = [], V
    while k > 0:
        i = cut[k, j]
        shapes.append((int(amax[i:j].max()), int(values[j - 1])))
        j, k = i, k - 1
    return np.array(shapes[::-1], dtype=np.int64)


def shape_for(shapes, need, atom_cost: float = 16.0) -> tuple[int, int] | None:
    """The cheapest of ``shapes`` covering ``need`` (atoms, edges), or None if none does."""
    shapes = np.asarray(shapes, dtype=np.int64).reshape(-1, 2)
    ok = (shapes[:, 0] >= need[0]) & (shapes[:, 1] >= need[1])
    if not ok.any():
        return None
    c = np.where(ok, shapes[:, 1] + atom_cost * shapes[:, 0], np.inf)
    s = shapes[int(np.argmin(c))]
    return int(s[0]), int(s[1])


def with_shape(batch, shapes):
    """``batch`` with ``pad_to`` set to its shape in ``shapes`` (unchanged if none covers it,
    or ``shapes`` is None: the backend's own bucket then)."""
    if shapes is None:
        return batch
    s = shape_for(shapes, batch_need(batch))
    return batch if s is None else dataclasses.replace(batch, pad_to=s)
