"""ASE calculator over both backends, and the backend registry."""

import numpy as np
import pytest
from ase.build import bulk
from conftest import random_params, small_spec

from pftlite.core.errors import BackendUnavailable
from pftlite.potentials.base import Potential
from pftlite.potentials.calculator import PftliteCalculator
from pftlite.potentials.registry import INTERFACE, available_backends, manybody_backend


def test_registry():
    assert "numba" in available_backends()
    with pytest.raises(BackendUnavailable, match="unknown backend"):
        manybody_backend("torch")
    for kind in ("manybody", "pair"):
        for name in available_backends(kind):
            from pftlite.potentials.base import backend_module, family_named

            be = backend_module(family_named(kind), name)
            assert all(callable(getattr(be, f)) for f in INTERFACE)
            assert be.NAME == name and isinstance(be.EXACT_HVP_DERIVATIVE, bool)


def test_names_of_pftlite_0_1_still_work():
    """pftlite.get_backend(name) with (spec, params, batch), PftliteCalculator(spec, params) and
    pftlite.calculator: the same numbers as the potential interface, with a DeprecationWarning."""
    import pftlite
    from pftlite.calculator import PftliteCalculator as OldCalculator
    from pftlite.structures.batch import make_batch

    spec = small_spec(species=(14,))
    params = random_params(spec, seed=2)
    a = bulk("Si", "diamond", 5.43)
    a.rattle(0.05, seed=1)
    with pytest.warns(DeprecationWarning, match="potential.on"):
        be = pftlite.get_backend("numba")
    old = be.energy_forces_stress(spec, params, make_batch([a], spec))
    new = Potential(spec, params).on("numba").energy_forces_stress(make_batch([a], Potential(spec, params)))
    assert all(np.array_equal(old[k], new[k]) for k in old)
    with pytest.warns(DeprecationWarning, match="pass a Potential"):
        a.calc = OldCalculator(spec, params, backend="numba")
    assert a.get_potential_energy() == float(new["energy"][0])
    assert pftlite.load_potential("si-mlearn").kind == "manybody"


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
