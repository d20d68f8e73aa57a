"""Physics every backend must satisfy: derivatives by FD convergence, invariances, smoothness."""

import numpy as np
import pytest
from ase import Atoms
from conftest import crystals, random_params, small_spec
from scipy.spatial.transform import Rotation

from pftlite.potentials.base import Potential
from pftlite.structures.batch import make_batch
from pftlite.testing import check_derivatives

CRYSTALS = crystals()


#: JAX runs the conformance suite on two of the eight (crystal, readout) cases: each new shape
#: is a new compilation (~11 s per case on 2 cores), and test_parity proves JAX equal to Numba
#: (to 1e-10) on all eight, so the other six carry over.
JAX_CONFORMANCE = {("si", "mlp"), ("low_symmetry", "linear")}


@pytest.mark.parametrize("readout", ["linear", "mlp"])
@pytest.mark.parametrize("name", list(CRYSTALS))
def test_conformance(backend, name, readout):
    if backend.NAME == "jax" and (name, readout) not in JAX_CONFORMANCE:
        pytest.skip("JAX: conformance on two cases, parity with Numba on all (test_parity)")
    spec = small_spec(species=(14, 6), readout=readout)
    params = random_params(spec, seed=1)
    batch = make_batch([CRYSTALS[name]], spec)
    check_derivatives(Potential(spec, params).on(backend.NAME), batch, seed=2)


def test_conformance_batched(backend):
    """Two structures in one disjoint graph: per-structure energies and stresses."""
    spec = small_spec(species=(14, 6), readout="mlp")
    params = random_params(spec, seed=4)
    batch = make_batch([CRYSTALS["sic"], CRYSTALS["low_symmetry"]], spec)
    check_derivatives(Potential(spec, params).on(backend.NAME), batch, seed=5, hessian=False)


def _efs(backend, spec, params, atoms):
    return backend.energy_forces_stress(spec, params, make_batch([atoms], spec))


@pytest.mark.parametrize("readout", ["linear", "mlp"])
def test_invariances(backend, readout):
    spec = small_spec(species=(14, 6), readout=readout)
    params = random_params(spec, seed=3)
    a = CRYSTALS["low_symmetry"]
    ref = _efs(backend, spec, params, a)
    e0 = ref["energy"][0]

    t = a.copy()
    t.translate([0.37, -1.2, 2.9])
    assert _efs(backend, spec, params, t)["energy"][0] == pytest.approx(e0, rel=1e-12)

    R = Rotation.from_euler("zyx", [0.3, -1.1, 2.0]).as_matrix()
    r = a.copy()
    r.set_cell(a.cell[:] @ R.T)
    r.set_positions(a.positions @ R.T)
    out = _efs(backend, spec, params, r)
    assert out["energy"][0] == pytest.approx(e0, rel=1e-12)
    np.testing.assert_allclose(out["forces"], ref["forces"] @ R.T, atol=1e-11)
    np.testing.assert_allclose(out["stress"][0], R @ ref["stress"][0] @ R.T, atol=1e-11)

    perm = np.random.default_rng(0).permutation(len(a))
    p = a[perm]
    out = _efs(backend, spec, params, p)
    assert out["energy"][0] == pytest.approx(e0, rel=1e-12)
    np.testing.assert_allclose(out["forces"], ref["forces"][perm], atol=1e-12)

    s = a * (2, 1, 2)
    out = _efs(backend, spec, params, s)
    assert out["energy"][0] / len(s) == pytest.approx(e0 / len(a), rel=1e-12)
    np.testing.assert_allclose(out["stress"][0], ref["stress"][0], atol=1e-12)


def test_smooth_at_cutoff(backend):
    """Energy, forces and Hessian of a pair vanish continuously as r -> r_cut (envelope p=4)."""
    spec = small_spec(species=(14,), readout="mlp")
    params = random_params(spec, seed=7)
    rc = spec.r_cut

    def pair(r):
        return Atoms("Si2", positions=[[0, 0, 0], [r, 0, 0]], cell=np.eye(3) * 12.0, pbc=True)

    far = pair(rc + 0.5)
    e_far = _efs(backend, spec, params, far)["energy"][0]
    vals = []
    for delta in (1e-1, 1e-2):
        a = pair(rc - delta)
        b = make_batch([a], spec)
        out = backend.energy_forces_stress(spec, params, b)
        H = backend.hessian(spec, params, b)
        vals.append((abs(out["energy"][0] - e_far), np.abs(out["forces"]).max(), np.abs(H).max()))
    (e1, f1, h1), (e2, f2, h2) = vals
    # (1 - r/rc)^4 envelope: E ~ d^4, F ~ d^3, H ~ d^2 as d = rc - r -> 0 (10x step)
    assert e2 < e1 * 1e-3
    assert f2 < f1 * 1e-2 * 1.5
    assert h2 < h1 * 1e-1 * 1.5
    assert h1 > 0
