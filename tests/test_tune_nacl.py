"""Second chemistry (NaCl, phono3py displacement data): forces-only base fit, PFT with
forces-only upstream data on both backends, bad phono3py input."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import data_path as data
from conftest import save_model

from pftlite.core.errors import InputError
from pftlite.potentials.base import Potential
from pftlite.potentials.loss import FitWeights
from pftlite.potentials.manybody.linear_fit import fit_linear
from pftlite.potentials.manybody.model import ModelSpec
from pftlite.training.fit import equilibrium_labels, holdout_split
from pftlite.training.metrics import errors

NACL = "phono3py/NaCl-222/phono3py_params_NaCl222.yaml.xz"
SPEC = ModelSpec(species=(11, 17), r_cut=5.0, n_radial=4, l_max=2, n_radial_4b=2, l_max_4b=1)



@pytest.fixture(scope="module")
def nacl():
    """Displaced supercells (forces only), a seeded split, and a forces-only fit on 6 of them."""
    from pftlite.datasets.phono3py_refs import load_fc3_reference, read_phono3py_labelled

    path = data(NACL)
    structures = read_phono3py_labelled(path)
    train_idx, test_idx = holdout_split(len(structures), 0.2, seed=0)
    train = [structures[i] for i in train_idx[:6]]
    test = [structures[i] for i in test_idx[:4]]
    eq = equilibrium_labels(load_fc3_reference(path).unitcell)
    params = fit_linear(SPEC, train + [eq], FitWeights(forces=20.0, stress=500.0, ridge=1e-3))
    return path, structures, train, test, eq, params


def test_phono3py_supercells_are_forces_only(nacl):
    _, structures, *_ = nacl
    assert len(structures) == 146  # 2 single + 144 pair displacements
    assert all("energy" not in a.info and a.arrays["forces"].shape == (64, 3) for a in structures)
    # the split is by whole supercell, seeded, disjoint and complete
    tr, te = holdout_split(len(structures), 0.2, seed=0)
    assert len(te) == 29 and not set(tr) & set(te) and len(tr) + len(te) == 146
    assert np.array_equal(te, holdout_split(146, 0.2, seed=0)[1])
    assert not np.array_equal(te, holdout_split(146, 0.2, seed=1)[1])


def test_forces_only_fit(nacl, numba_backend):
    _, _, train, test, eq, params = nacl
    for k in ("e0", "w", "mean", "scale"):
        assert np.all(np.isfinite(params[k])), k
    assert np.all(params["e0"] == 0.0)  # no energy label: reference energies fixed at 0
    err_train = errors(Potential(SPEC, params), train, "numba")
    err_test = errors(Potential(SPEC, params), test, "numba")
    assert "energy" not in err_test
    # measured: 1.2e-4 eV/Å (train and test) with 6 supercells; DFT forces MAE is 2.5e-3
    f_ref = np.abs(np.concatenate([a.arrays["forces"] for a in test])).mean()
    assert err_train["forces"]["mae"] < 3e-4
    assert err_test["forces"]["mae"] < 3e-4 < 0.2 * f_ref
    # the equilibrium rows: zero stress at the DFT cell (eV/Å³)
    from pftlite.structures.batch import make_batch

    stress = numba_backend.energy_forces_stress(SPEC, params, make_batch([eq], SPEC))["stress"][0]
    assert np.abs(stress).max() < 1e-4


def test_tune_forces_only_upstream_backends_agree(nacl, numba_backend, jax_backend):
    from pftlite.datasets.phonopy_refs import load_reference
    from pftlite.training.optim import AdamWConfig
    from pftlite.training.tune import TuneConfig, phonon_items, tune

    path, _, train, _, _, params = nacl
    items = phonon_items([load_reference(path)])
    cfg = TuneConfig(epochs=1, steps_per_epoch=2, k_upstream=1, upstream_batch=2, upstream_val_fraction=0.2,
                     optimizer=AdamWConfig(lr=1e-6))  # fmt: skip
    runs = {be.__name__: tune(Potential(SPEC, params), be.NAME, items, train[:5], cfg) for be in (numba_backend, jax_backend)}
    a, b = runs.values()
    assert [r["kind"] for r in a["log"]] == ["phonon", "upstream"] * 2
    for ra, rb in zip(a["log"], b["log"], strict=True):
        assert np.isfinite(ra["loss"]) and ra["energy" if ra["kind"] == "upstream" else "hessian"] >= 0
        np.testing.assert_allclose(ra["loss"], rb["loss"], rtol=1e-8)
    assert all(r["energy"] == 0.0 for r in a["log"] if r["kind"] == "upstream")  # no label, no term
    np.testing.assert_allclose(a["best"]["w"], b["best"]["w"], rtol=1e-8, atol=1e-14)
    va, vb = a["val_log"][-1], b["val_log"][-1]
    np.testing.assert_allclose(va["phonon_loss"], vb["phonon_loss"], rtol=1e-8)
    np.testing.assert_allclose(va["val_forces_mae"], vb["val_forces_mae"], rtol=1e-8)
    assert "val_energy_mae" not in va


def test_phono3py_yaml_without_forces_is_one_line_error(tmp_path):
    from pftlite.cli import main
    from pftlite.datasets.phono3py_refs import read_phono3py_labelled
    from pftlite.datasets.phonopy_refs import load_reference

    src = data("phono3py/Si-PBEsol/phono3py_disp.yaml")  # forces live in FORCES_FC3, not copied
    yaml = tmp_path / "phono3py_disp.yaml"
    shutil.copy(src, yaml)
    for read in (read_phono3py_labelled, load_reference):
        with pytest.raises(InputError, match="no fc3 forces") as exc:
            read(yaml)
        assert "\n" not in str(exc.value) and str(yaml) in str(exc.value)
    model = tmp_path / "si.npz"
    from pftlite.potentials.manybody.model import init_params

    spec = ModelSpec(species=(14,), r_cut=4.0, n_radial=2, l_max=1, n_radial_4b=1, l_max_4b=0)
    save_model(model, spec, init_params(spec), {})
    res = CliRunner().invoke(main, ["fit", str(model), str(yaml)])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "no fc3 forces" in lines[0]
