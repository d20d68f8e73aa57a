"""Planned padded shapes (pftlite.structures.padding): few shapes that cover every batch, the
least padded work among groupings, and a trainer whose every upstream batch gets one."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from pftlite.structures.padding import QUANTUM, plan_shapes, shape_for


def _cost(shapes, needs, atom_cost=16.0):
    total = 0.0
    for n in needs:
        s = shape_for(shapes, n, atom_cost)
        assert s is not None, f"{n} not covered by {shapes}"
        total += s[1] + atom_cost * s[0]
    return total


def _brute(needs, k, atom_cost=16.0):
    """Least cost over every grouping of the rounded edge values into <= k contiguous runs, each
    need charged its own run's shape (serving a need by a cheaper covering shape only lowers it)."""
    a = -(-needs[:, 0] // QUANTUM[0]) * QUANTUM[0]
    e = -(-needs[:, 1] // QUANTUM[1]) * QUANTUM[1]
    vals = np.unique(e)
    best = np.inf
    for m in range(1, min(k, len(vals)) + 1):
        for cuts in itertools.combinations(range(1, len(vals)), m - 1):
            bounds = [0, *cuts, len(vals)]
            total = 0.0
            for i, j in itertools.pairwise(bounds):
                members = (e >= vals[i]) & (e <= vals[j - 1])
                total += members.sum() * (vals[j - 1] + atom_cost * a[members].max())
            best = min(best, total)
    return best


@pytest.mark.parametrize("seed", range(4))
def test_plan_covers_every_need_with_the_least_padding(seed):
    rng = np.random.default_rng(seed)
    needs = np.stack([rng.integers(3, 130, 40), rng.integers(60, 6000, 40)], axis=1)
    for k in (1, 2, 3, 4):
        shapes = plan_shapes(needs, k)
        assert 1 <= len(shapes) <= k and np.all(shapes % QUANTUM == 0)
        assert _cost(shapes, needs) <= _brute(needs, k)  # optimal among contiguous groupings
        assert np.array_equal(shapes, plan_shapes(needs[rng.permutation(len(needs))], k))  # order-free
    # one shape: the rounded largest atoms and edges
    assert plan_shapes(needs, 1).tolist() == [[-(-needs[:, 0].max() // 8) * 8, -(-needs[:, 1].max() // 64) * 64]]


def test_plan_edge_cases():
    needs = np.array([[17, 600], [17, 600], [33, 1300]])
    assert plan_shapes(needs, 8).tolist() == [[24, 640], [40, 1344]]  # as many shapes as distinct needs
    assert plan_shapes(np.zeros((0, 2)), 4).shape == (0, 2)
    assert shape_for([[24, 640]], (25, 10)) is None
    with pytest.raises(ValueError, match="max_shapes"):
        plan_shapes(needs, 0)


def test_every_upstream_batch_of_a_run_gets_a_planned_shape():
    """tune's plan covers each epoch's upstream batches and each validation structure, mixed
    sizes included, in at most cfg.upstream_shapes shapes, on a padding backend (Nequix on JAX);
    a backend that does not pad (the pair potential) or upstream_shapes = 0 gets no plan."""
    import dataclasses

    from ase.build import bulk

    from pftlite.potentials.base import Potential
    from pftlite.potentials.pair.model import PairSpec, init_params
    from pftlite.structures.batch import make_batch
    from pftlite.structures.padding import with_shape
    from pftlite.training.tune import TuneConfig, upstream_batches, upstream_shapes

    pytest.importorskip("e3nn_jax")
    from conftest import data_path

    from pftlite.potentials.files import load_potential

    data_path("nequix/mp-1")
    pot = load_potential("nequix-mp-1")
    assert pot.on("jax").pads
    cells = [bulk("NaCl", "rocksalt", a=5.64, cubic=True).repeat(r) for r in ((1, 1, 1), (2, 1, 1), (2, 2, 1), (2, 2, 2))]
    rng = np.random.default_rng(0)
    structs = []
    for i in range(12):
        c = cells[i % 4].copy()
        c.positions += rng.normal(0, 0.05, c.positions.shape)
        structs.append(c)
    cfg = TuneConfig(epochs=3, upstream_batch=2, upstream_shapes=3)
    train, val = structs[:9], structs[9:]
    shapes = upstream_shapes(cfg, pot, "jax", train, val)
    assert 1 <= len(shapes) <= 3
    for epoch in range(1, 4):
        for idx in upstream_batches(cfg, len(train), epoch):
            b = with_shape(make_batch([train[i] for i in idx], pot), shapes)
            assert b.pad_to is not None and b.pad_to[0] > b.n_atoms and b.pad_to[1] >= b.n_edges
    for a in val:
        assert with_shape(make_batch([a], pot), shapes).pad_to is not None
    assert upstream_shapes(dataclasses.replace(cfg, upstream_shapes=0), pot, "jax", train, val) is None
    spec = PairSpec(species=(11, 17), r_cut=5.0)
    pair = Potential(spec, init_params(spec))
    assert not pair.on("jax").pads and upstream_shapes(cfg, pair, "jax", train, val) is None
