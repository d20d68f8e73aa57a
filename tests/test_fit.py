"""Least-squares base fit: design rows reproduce the model, and a fit on real DFT data works."""

import numpy as np
import pytest
from ase.stress import full_3x3_to_voigt_6_stress
from conftest import crystals, random_params, small_spec

from pftlite.core.errors import DataUnavailable
from pftlite.datasets.registry import fetch
from pftlite.potentials.base import Potential
from pftlite.potentials.loss import FitWeights
from pftlite.potentials.manybody import numba_backend as nbk
from pftlite.potentials.manybody.linear_fit import design_rows, fit_linear
from pftlite.structures.batch import make_batch
from pftlite.structures.io import read_mlearn
from pftlite.training.metrics import errors


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
    err_train = errors(Potential(spec, params), train)
    err_test = errors(Potential(spec, params), test)
    # an unfitted model (all weights zero, e0 = mean energy) for scale
    base = dict(params, w=np.zeros_like(params["w"]))
    err_base = errors(Potential(spec, base), test)
    assert err_train["energy"]["mae"] < 0.01  # eV/atom
    assert err_train["forces"]["mae"] < 0.15  # eV/Å
    assert err_test["forces"]["mae"] < 0.5 * err_base["forces"]["mae"]
    assert np.isfinite(err_test["stress"]["mae"])


# --- gradient fit (MLP readout from the least-squares start) ------------------------------


def _teacher_data(n=8, seed=0):
    """Rattled, strained 8-atom Si cells labelled (E, F, stress) by a random MLP-readout model
    whose features are normalised on these cells (tanh in its curved range: not linear)."""
    from ase.build import bulk

    from pftlite.potentials.manybody.linear_fit import feature_normalisation

    spec = small_spec(species=(14,), readout="mlp")
    teacher = random_params(spec, seed=5)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        a = bulk("Si", "diamond", 5.43, cubic=True)
        e = rng.normal(scale=0.02, size=(3, 3))
        a.set_cell(a.cell[:] @ (np.eye(3) + 0.5 * (e + e.T)), scale_atoms=True)
        a.positions += rng.normal(scale=0.1, size=a.positions.shape)
        out.append(a)
    teacher["mean"], teacher["scale"] = feature_normalisation(spec, out)
    for a in out:
        r = nbk.energy_forces_stress(spec, teacher, make_batch([a], spec))
        a.info["energy"] = float(r["energy"][0])
        a.arrays["forces"] = r["forces"]
        a.info["stress"] = full_3x3_to_voigt_6_stress(r["stress"][0])
    return spec, out


def _gradient_problem(**kw):
    import dataclasses

    from pftlite.potentials.manybody.linear_fit import mlp_start
    from pftlite.training.fit import gradient_config

    spec, data = _teacher_data()
    ls = fit_linear(dataclasses.replace(spec, readout="linear"), data, FitWeights())
    start = mlp_start(spec, ls, seed=1)
    cfg = gradient_config(**{"epochs": 3, "lr": 3e-3, "batch": 2, "val_fraction": 0.25, "ema_decay": 0.9, **kw})
    return spec, data, start, cfg


def test_mlp_start_is_the_least_squares_model():
    spec, data, start, _ = _gradient_problem()
    lin = dict(start)
    for k in ("W1", "b1", "w2"):
        lin.pop(k)
    import dataclasses

    e_lin = errors(Potential(dataclasses.replace(spec, readout="linear"), lin), data)
    e_mlp = errors(Potential(spec, start), data)
    assert e_mlp["forces"]["mae"] == pytest.approx(e_lin["forces"]["mae"], rel=1e-12)
    assert np.all(start["w2"] == 0) and np.any(start["W1"] != 0)


def test_gradient_fit_lowers_the_training_loss(numba_backend):
    from pftlite.training.fit import fit_gradient

    spec, data, start, cfg = _gradient_problem(epochs=30, val_fraction=0.0)
    st = fit_gradient(Potential(spec, start), "numba", data, cfg)
    before = errors(Potential(spec, start), data, loss=cfg.upstream_loss)
    after = errors(Potential(spec, st["best"]), data, loss=cfg.upstream_loss)
    assert after["loss"] < 0.6 * before["loss"]
    assert st["best_epoch"] == 30 and len(st["log"]) == 30 * 4  # no validation split: the last EMA
    assert all(r["kind"] == "upstream" for r in st["log"])


def test_gradient_fit_keeps_the_best_validation_ema(numba_backend):
    from pftlite.training.fit import fit_gradient

    spec, data, start, cfg = _gradient_problem(epochs=4)
    st = fit_gradient(Potential(spec, start), "numba", data, cfg)
    vals = [r["val_loss"] for r in st["val_log"]]  # epoch 0: the start
    assert len(vals) == 5 and st["best_loss"] == min(vals) and vals[max(st["best_epoch"], 0)] == min(vals)
    if st["best_epoch"] == -1:  # the start is kept when no epoch beats it
        assert all(np.array_equal(st["best"][k], start[k]) for k in start)
    assert len(st["split"]["upstream_val"]) == 2


def test_gradient_fit_resume_is_bitwise(numba_backend, tmp_path):
    from pftlite.training.fit import fit_gradient
    from pftlite.training.tune import load_checkpoint

    spec, data, start, cfg = _gradient_problem()
    full = fit_gradient(Potential(spec, start), "numba", data, cfg, run_dir=tmp_path / "a")
    fit_gradient(Potential(spec, start), "numba", data, cfg, run_dir=tmp_path / "b", stop_after_epoch=1)
    assert load_checkpoint(tmp_path / "b" / "checkpoint.npz")["epoch"] == 1
    resumed = fit_gradient(Potential(spec, start), "numba", data, cfg, run_dir=tmp_path / "b")
    assert [r["loss"] for r in resumed["log"]] == [r["loss"] for r in full["log"]]
    for k in ("e0", "w", "W1", "b1", "w2"):
        assert np.array_equal(resumed["best"][k], full["best"][k])
        assert np.array_equal(resumed["params"][k], full["params"][k])


def test_gradient_fit_numba_and_jax_follow_the_same_loss_curve(numba_backend, jax_backend):
    """(The MLP loss gradient itself is checked against finite differences in test_loss.py.)"""
    from pftlite.training.fit import fit_gradient

    spec, data, start, cfg = _gradient_problem(epochs=2)
    a = fit_gradient(Potential(spec, start), "numba", data, cfg)
    b = fit_gradient(Potential(spec, start), "jax", data, cfg)
    la, lb = np.array([r["loss"] for r in a["log"]]), np.array([r["loss"] for r in b["log"]])
    assert np.allclose(la, lb, rtol=1e-8, atol=0)
    assert np.allclose([r["val_loss"] for r in a["val_log"]], [r["val_loss"] for r in b["val_log"]], rtol=1e-8, atol=0)
    for k in ("w", "W1", "w2"):
        assert np.allclose(a["best"][k], b["best"][k], rtol=1e-8, atol=1e-12)


def test_cli_fit_mlp_by_gradient(tmp_path):
    from ase.io import write
    from click.testing import CliRunner
    from conftest import load_model

    from pftlite.cli import main

    _, data = _teacher_data()
    path = tmp_path / "train.extxyz"
    for a in data:
        a.calc = None
    write(path, data, format="extxyz")
    model = tmp_path / "m.npz"
    run = CliRunner().invoke
    assert run(main, ["init", str(model), "-s", "Si", "--readout", "mlp", "--hidden", "4", "--n-radial", "4",
                      "--l-max", "2", "--n-radial-4b", "2", "--l-max-4b", "1", "--r-cut", "4.0"]).exit_code == 0  # fmt: skip
    args = ["fit", str(model), str(path), "--epochs", "2", "--batch", "3", "--holdout", "0.25",
            "--run-dir", str(tmp_path / "run"), "--report", str(tmp_path / "r.json")]  # fmt: skip
    res = run(main, args)
    assert res.exit_code == 0, res.output
    assert "gradient fit" in res.output and "test" in res.output
    spec, _, meta = load_model(model)
    h = meta["history"][-1]
    assert spec.readout == "mlp" and h["gradient"]["config"]["epochs"] == 2 and "forces" in h["errors"]["test"]
    assert (tmp_path / "run" / "checkpoint.npz").exists() and (tmp_path / "run" / "log.csv").exists()
    res = run(main, [*args, "--loss-weights", "1,2"])
    assert res.exit_code == 2 and "loss-weights" in res.output
