"""Least-squares base fit: design rows reproduce the model, and a fit on real DFT data works."""

import numpy as np
import pytest
from ase.stress import full_3x3_to_voigt_6_stress

from pftlite.backends import numba_backend as nbk
from pftlite.batch import make_batch
from pftlite.datasets import fetch
from pftlite.errors import DataUnavailable
from pftlite.fit import FitWeights, design_rows, errors, fit_linear
from pftlite.io import read_mlearn

from conftest import crystals, random_params, small_spec


def test_design_rows_reproduce_predictions():
    """X theta equals the model's energy, forces and stress for arbitrary parameters."""
    spec = small_spec(species=(14, 6))
    params = random_params(spec, seed=3)
    a = crystals()["low_symmetry"]
    Xe, Xf, Xs = design_rows(spec, params, a)
    theta = np.concatenate([params["e0"], params["w"].ravel()])
    out = nbk.energy_forces_stress(spec, params, make_batch([a], spec))
    assert Xe @ theta == pytest.approx(out["energy"][0], rel=1e-12)
    np.testing.assert_allclose(Xf @ theta, out["forces"].ravel(), atol=1e-12)
    np.testing.assert_allclose(Xs @ theta, full_3x3_to_voigt_6_stress(out["stress"][0]), atol=1e-14)


@pytest.fixture(scope="module")
def si_test_set():
    try:
        return read_mlearn(fetch("mlearn/Si_test"))
    except DataUnavailable as exc:
        pytest.skip(str(exc))


def test_fit_mlearn_si(si_test_set):
    """Fit on 20 DFT Si structures, check on the 5 held out: DFT-grade errors, not noise."""
    spec = small_spec(species=(14,), r_cut=5.0)
    train, test = si_test_set[:20], si_test_set[20:]
    params = fit_linear(spec, train, FitWeights())
    err_train = errors(spec, params, train)
    err_test = errors(spec, params, test)
    # an unfitted model (all weights zero, e0 = mean energy) for scale
    base = dict(params, w=np.zeros_like(params["w"]))
    err_base = errors(spec, base, test)
    assert err_train["energy"]["mae"] < 0.01  # eV/atom
    assert err_train["forces"]["mae"] < 0.15  # eV/Å
    assert err_test["forces"]["mae"] < 0.5 * err_base["forces"]["mae"]
    assert np.isfinite(err_test["stress"]["mae"])
