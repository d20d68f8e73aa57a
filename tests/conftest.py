"""Shared fixtures: backends (PFTLITE_TEST_BACKENDS), small crystals, small model specs."""

from __future__ import annotations

import os

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from pftlite.core.errors import BackendUnavailable
from pftlite.potentials.base import Potential
from pftlite.potentials.files import load_potential, save_potential
from pftlite.potentials.manybody.model import ModelSpec, init_params
from pftlite.potentials.registry import manybody_backend as get_backend


def load_model(path):
    """(spec, params, metadata) of a model file (through the public loader)."""
    pot = load_potential(path)
    return pot.spec, pot.params, pot.metadata


def save_model(path, spec, params, metadata=None):
    return save_potential(path, Potential(spec, params, metadata or {}))

ALL_BACKENDS = ("numba", "jax")


def _wanted_backends():
    env = os.environ.get("PFTLITE_TEST_BACKENDS")
    return tuple(env.split(",")) if env else ALL_BACKENDS


@pytest.fixture(params=_wanted_backends(), scope="session")
def backend(request):
    """Each backend module in turn; JAX is skipped (with the reason) when not installed."""
    try:
        return get_backend(request.param)
    except BackendUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def jax_backend():
    try:
        return get_backend("jax")
    except BackendUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def numba_backend():
    return get_backend("numba")


def data_path(name: str):
    """Local path of a registered reference dataset (``pftlite.datasets.registry``), or skip the test
    with the reason (no data root, or the file is not there)."""
    from pftlite.datasets import registry as datasets

    if datasets.data_root() is None:
        pytest.skip("no data root ($PFTLITE_DATA or ../shared/data)")
    path = datasets.local_path(name)
    if path is None:
        pytest.skip(f"reference data not available: {name}")
    return path


def small_spec(species=(14,), readout="linear", r_cut=4.0):
    """A small but complete model (2-, 3- and 4-body terms) for fast tests."""
    return ModelSpec(
        species=species, r_cut=r_cut, n_radial=4, l_max=3, n_radial_4b=2, l_max_4b=2,
        readout=readout, hidden=8,
    )


def random_params(spec, seed=0):
    """Parameters with non-trivial values in every trainable array (seeded)."""
    rng = np.random.default_rng(seed)
    p = init_params(spec, seed=seed, e0=rng.normal(size=len(spec.species)))
    p["w"] = rng.normal(size=p["w"].shape) * 0.02
    p["scale"] = rng.uniform(0.2, 0.5, size=spec.n_features)
    p["mean"] = rng.normal(size=spec.n_features) * 0.1
    if spec.readout == "mlp":
        p["W1"] = rng.normal(size=p["W1"].shape) / np.sqrt(spec.n_features)
        p["b1"] = rng.normal(size=p["b1"].shape) * 0.1
        p["w2"] = rng.normal(size=p["w2"].shape) * 0.3
    return p


def crystals():
    """Named test crystals: one element, two species, a tiny cell with many images, low symmetry."""
    si = bulk("Si", "diamond", 5.43)
    si.rattle(0.05, seed=1)
    sic = bulk("SiC", "zincblende", 4.36) * (1, 1, 2)
    sic.rattle(0.05, seed=2)
    tiny = Atoms("Si", cell=[[2.3, 0, 0], [0.4, 2.4, 0], [0.3, 0.2, 2.6]], pbc=True)
    rng = np.random.default_rng(3)
    low = Atoms(
        "Si3C2",
        cell=[[4.9, 0.3, -0.2], [0.6, 5.3, 0.4], [-0.5, 0.7, 5.1]],
        scaled_positions=rng.uniform(size=(5, 3)),
        pbc=True,
    )
    # push apart anything too close in the random cell
    low.set_scaled_positions([[0.0, 0.0, 0.0], [0.26, 0.24, 0.27], [0.5, 0.52, 0.03],
                              [0.72, 0.27, 0.55], [0.24, 0.74, 0.51]])
    return {"si": si, "sic": sic, "tiny": tiny, "low_symmetry": low}


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Make any download attempt fail fast: no test touches the network."""
    import pooch

    def refuse(*args, **kwargs):
        raise RuntimeError("network disabled in tests")

    monkeypatch.setattr(pooch, "retrieve", refuse)


@pytest.fixture
def record(request):
    """``record(name, value)``: log a tested quantity (float or array) when ``$PFTLITE_RECORD``
    names a file (JSON lines, appended), so that runs of the suite under different
    floating-point paths can be compared quantity by quantity (``bench/fp_paths.py``).
    A no-op otherwise."""
    import json

    path = os.environ.get("PFTLITE_RECORD")

    def _record(name, value):
        if not path:
            return
        arr = np.asarray(value, dtype=float).ravel()
        with open(path, "a") as f:
            f.write(json.dumps({"test": request.node.nodeid, "name": name, "value": arr.tolist()}) + "\n")

    return _record
