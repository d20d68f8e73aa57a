"""Numba (hand-written derivatives) against JAX (autodiff), float64, on several crystals."""

import numpy as np
import pytest
from conftest import crystals, random_params, small_spec

from pftlite.potentials.loss import LossSpec, Targets
from pftlite.structures.batch import make_batch

CRYSTALS = crystals()
RTOL = 1e-9


def _close(a, b, what):
    """Relative difference, with values below 1 (eV, eV/Å, ...) compared absolutely."""
    scale = max(np.abs(a).max(), np.abs(b).max(), 1.0)
    err = np.abs(np.asarray(a) - np.asarray(b)).max() / scale
    assert err < RTOL, f"{what}: numba vs jax relative difference {err:.3g}"


@pytest.mark.parametrize("readout", ["linear", "mlp"])
@pytest.mark.parametrize("name", list(CRYSTALS))
def test_efs_hvp_hessian(numba_backend, jax_backend, name, readout):
    spec = small_spec(species=(14, 6), readout=readout)
    params = random_params(spec, seed=11)
    batch = make_batch([CRYSTALS[name]], spec)
    a = numba_backend.energy_forces_stress(spec, params, batch)
    b = jax_backend.energy_forces_stress(spec, params, batch)
    for k in ("energy", "forces", "stress"):
        _close(a[k], b[k], k)
    v = np.random.default_rng(0).normal(size=(batch.n_atoms, 3))
    _close(numba_backend.hvp(spec, params, batch, v), jax_backend.hvp(spec, params, batch, v), "hvp")
    _close(numba_backend.hessian(spec, params, batch), jax_backend.hessian(spec, params, batch), "hessian")


@pytest.mark.parametrize("kinds", [("mse", "mae"), ("mae", "mse")])
@pytest.mark.parametrize("readout", ["linear", "mlp"])
def test_loss_and_grad(numba_backend, jax_backend, readout, kinds):
    spec = small_spec(species=(14, 6), readout=readout)
    params = random_params(spec, seed=12)
    batch = make_batch([CRYSTALS["sic"], CRYSTALS["low_symmetry"], CRYSTALS["tiny"]], spec)
    rng = np.random.default_rng(1)
    N = batch.n_atoms
    stress = rng.normal(size=(3, 3, 3)) * 0.01
    stress[2] = np.nan  # a structure without a stress label
    targets = Targets(
        energy=np.array([-10.0, np.nan, -3.0]),
        forces=rng.normal(size=(N, 3)) * 0.1,
        stress=stress,
        columns=np.array([4, 13, -1]),
        hessian_columns=rng.normal(size=(N, 3)),
    )
    lspec = LossSpec(energy=1.3, forces=2.0, stress=5.0, hessian=0.7, kind=kinds[0], hessian_kind=kinds[1])
    la, ga, ta = numba_backend.loss_and_grad(spec, params, batch, targets, lspec)
    lb, gb, tb = jax_backend.loss_and_grad(spec, params, batch, targets, lspec)
    assert set(ga) == set(gb)
    _close(la, lb, "loss")
    for k in ga:
        _close(ga[k], gb[k], f"grad[{k}]")
    for k in ta:
        _close(ta[k], tb[k], f"term {k}")
