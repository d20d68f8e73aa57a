"""ASE calculator over both backends, and the backend registry."""

import numpy as np
import pytest
from ase.build import bulk
from conftest import random_params, small_spec

from pftlite.core.errors import BackendUnavailable
from pftlite.potentials.base import Potential
from pftlite.potentials.calculator import PftliteCalculator
from pftlite.potentials.registry import INTERFACE, available_backends, get_backend


def test_registry():
    assert "numba" in available_backends()
    with pytest.raises(BackendUnavailable, match="unknown backend"):
        get_backend("torch")
    for name in available_backends():
        be = get_backend(name)
        assert all(callable(getattr(be, f)) for f in INTERFACE)
        assert be.NAME == name


def test_calculator(backend):
    spec = small_spec(species=(14,))
    params = random_params(spec, seed=9)
    a = bulk("Si", "diamond", 5.43) * (1, 1, 2)
    a.rattle(0.05, seed=4)
    a.calc = PftliteCalculator(Potential(spec, params), backend=backend.NAME)
    f = a.get_forces()
    # ASE's own finite differences as an independent check
    from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress

    np.testing.assert_allclose(calculate_numerical_forces(a, eps=1e-4), f, atol=1e-7)
    num_stress = calculate_numerical_stress(a, eps=1e-5)
    np.testing.assert_allclose(a.get_stress(), num_stress, atol=1e-7)
    fc = a.calc.get_hessian()
    assert fc.shape == (len(a), len(a), 3, 3)
