"""The training loss: parameter gradients by FD convergence, masks, and sampled columns."""

import numpy as np
import pytest
from conftest import crystals, random_params, small_spec

from pftlite.potentials.loss import LossSpec, Targets, column_vectors
from pftlite.potentials.manybody.model import trainable_keys
from pftlite.structures.batch import make_batch
from pftlite.testing import fd_convergence

CRYSTALS = crystals()
PAIR = ("sic", "si")


def _problem(readout):
    spec = small_spec(species=(14, 6), readout=readout)
    params = random_params(spec, seed=21)
    batch = make_batch([CRYSTALS[name] for name in PAIR], spec)
    rng = np.random.default_rng(2)
    N = batch.n_atoms
    targets = Targets(
        energy=np.array([-7.0, -11.0]),
        forces=rng.normal(size=(N, 3)) * 0.1,
        stress=rng.normal(size=(2, 3, 3)) * 0.01,
        columns=np.array([5, 2]),
        hessian_columns=rng.normal(size=(N, 3)),
    )
    return spec, params, batch, targets


@pytest.mark.parametrize("readout,kind", [("linear", "mse"), ("mlp", "mse"), ("mlp", "huber")])
def test_param_gradient_fd(backend, readout, kind):
    """The gradient of the loss by FD convergence; "huber" with delta 0.05 has residuals on both
    sides of the threshold (forces ~0.1 eV/Å off the targets)."""
    spec, params, batch, targets = _problem(readout)
    lspec = LossSpec(energy=1.0, forces=3.0, stress=10.0, hessian=0.5, kind=kind, hessian_kind="mse", delta=0.05)
    loss, grads, _ = backend.loss_and_grad(spec, params, batch, targets, lspec)
    rng = np.random.default_rng(3)
    direction = {k: rng.normal(size=np.shape(params[k])) for k in grads}
    analytic = sum(float(np.sum(grads[k] * direction[k])) for k in grads)

    def f(h):
        p = {k: v + h * direction[k] if k in direction else v for k, v in params.items()}
        return backend.loss_and_grad(spec, p, batch, targets, lspec)[0]

    errs, ok = fd_convergence(f, analytic, hs=(1e-3, 3e-4, 1e-4, 3e-5, 1e-5))
    assert ok, errs
    assert set(grads) == set(trainable_keys(spec))


def test_hessian_term_is_column_error(numba_backend):
    """The Hessian term equals the mean |H e_k - ref| computed from the full Hessian."""
    spec, params, batch, targets = _problem("linear")
    lspec = LossSpec(energy=0.0, forces=0.0, stress=0.0, hessian=1.0)
    _, _, terms = numba_backend.loss_and_grad(spec, params, batch, targets, lspec)
    errs = []
    for b, k in enumerate(targets.columns):
        sl = slice(batch.atom_offsets[b], batch.atom_offsets[b + 1])
        one = make_batch([CRYSTALS[PAIR[b]]], spec)
        H = numba_backend.hessian(spec, params, one, columns=[k])[0]
        errs.append(np.abs(H - targets.hessian_columns[sl]))
    assert terms["hessian"] == pytest.approx(np.concatenate(errs).mean(), rel=1e-12)


def test_column_vectors():
    spec = small_spec(species=(14, 6))
    batch = make_batch([CRYSTALS["sic"], CRYSTALS["si"]], spec)
    v = column_vectors(batch, [5, -1])
    assert v.sum() == 1.0 and v[1, 2] == 1.0


def test_nan_labels_are_masked(numba_backend):
    spec, params, batch, targets = _problem("linear")
    lspec = LossSpec(energy=1.0, forces=0.0, stress=1.0, hessian=0.0)
    full, _, t_full = numba_backend.loss_and_grad(spec, params, batch, targets, lspec)
    masked = Targets(
        energy=np.array([targets.energy[0], np.nan]),
        forces=targets.forces,
        stress=np.concatenate([targets.stress[:1], np.full((1, 3, 3), np.nan)]),
        columns=targets.columns,
        hessian_columns=targets.hessian_columns,
    )
    part, grads, t_part = numba_backend.loss_and_grad(spec, params, batch, masked, lspec)
    assert np.isfinite(part) and all(np.all(np.isfinite(g)) for g in grads.values())
    assert t_part["energy"] != t_full["energy"]


def test_huber_term_and_backends_agree(numba_backend, jax_backend):
    """Huber: 0.5 r² inside delta, delta (|r| - delta / 2) outside (optax's convention); the
    two backends give the same loss and gradient."""
    from pftlite.potentials.loss import loss_value

    r = np.array([[0.01, -0.2, 0.05]])
    t = Targets(energy=np.array([np.nan]), forces=np.zeros((1, 3)), stress=np.full((1, 3, 3), np.nan),
                columns=np.array([-1]), hessian_columns=np.full((1, 3), np.nan))  # fmt: skip
    _, terms = loss_value(LossSpec(energy=0, forces=1, kind="huber", delta=0.1), {"forces": r}, t, np.array([1.0]))
    want = (0.5 * 0.01**2 + 0.1 * (0.2 - 0.05) + 0.5 * 0.05**2) / 3
    assert abs(terms["forces"] - want) < 1e-15
    spec, params, batch, targets = _problem("mlp")
    lspec = LossSpec(energy=500.0, forces=200.0, stress=50.0, kind="huber", delta=0.1)
    la, ga, _ = numba_backend.loss_and_grad(spec, params, batch, targets, lspec)
    lb, gb, _ = jax_backend.loss_and_grad(spec, params, batch, targets, lspec)
    assert abs(la - lb) <= 1e-10 * abs(la)
    for k in ga:
        np.testing.assert_allclose(ga[k], gb[k], rtol=1e-8, atol=1e-10 * np.abs(ga[k]).max())
