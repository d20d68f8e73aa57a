"""Phonon fine-tuning: estimators, optimizer, resume, backend agreement, the command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pftlite.datasets.registry import fetch, local_path
from pftlite.phonons.symmetry import hessian_from_irreducible
from pftlite.potentials.base import Potential
from pftlite.potentials.loss import LossSpec
from pftlite.structures.batch import make_batch
from pftlite.training.optim import AdamWConfig, adamw_init, adamw_step, ema_update
from pftlite.training.samplers import sample_columns
from pftlite.training.tune import (
    TuneConfig,
    full_hessian_errors,
    load_checkpoint,
    phonon_items,
    phonon_targets,
    tune,
)

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def si():
    from conftest import load_model

    from pftlite.datasets.phonopy_refs import load_reference
    from pftlite.structures.io import read_mlearn

    for name in ("mdr/mp-149", "mlearn/Si_training"):
        if local_path(name) is None:
            pytest.skip(f"{name} not available")
    spec, params, _ = load_model(ROOT / "pftlite/data/si-mlearn.npz")
    items = phonon_items([load_reference("mdr/mp-149")])
    up = read_mlearn(fetch("mlearn/Si_training"))
    small = [a for a in up if len(a) <= 16][:12]
    return spec, params, items, small


def _column_maes(spec, params, be, item):
    batch = make_batch([item.atoms], spec)
    H = be.hessian(spec, params, batch)  # (N, N, 3, 3)
    N = len(item.atoms)
    return np.array([np.abs(H[:, j, :, d] - item.fc[:, j, :, d]).mean() for j in range(N) for d in range(3)]), H


def test_column_loss_averages_to_full_hessian_loss(si, numba_backend):
    spec, params, items, _ = si
    maes, H = _column_maes(spec, params, numba_backend, items[0])
    full = np.abs(H - items[0].fc).mean()
    assert abs(maes.mean() - full) < 1e-12
    # the loss term the trainer uses is exactly that column's MAE
    batch = make_batch([items[0].atoms], spec)
    for k in (0, 7, 100):
        t = phonon_targets(items, batch, [k])
        lspec = LossSpec(energy=0, forces=0, stress=0, hessian=1.0)
        _, _, terms = numba_backend.loss_and_grad(spec, params, batch, t, lspec)
        assert abs(terms["hessian"] - maes[k]) < 1e-12


def test_symmetry_sampler_has_the_same_mean(si, numba_backend):
    spec, params, items, _ = si
    maes, _ = _column_maes(spec, params, numba_backend, items[0])
    o = items[0].orbit
    p = o.orbit_size / o.orbit_size.sum()
    expect = sum(pi * maes[3 * a : 3 * a + 3].mean() for pi, a in zip(p, o.irreducible))
    assert abs(expect - maes.mean()) < 1e-12  # cubic: point operations permute x, y, z
    draws = [sample_columns("symmetry", [64], 0, 0, s, [o])[0] for s in range(300)]
    assert {k // 3 for k in draws} <= set(o.irreducible.tolist()) and len({k % 3 for k in draws}) == 3


def test_irreducible_columns_give_the_exact_hessian(si, numba_backend):
    spec, params, items, _ = si
    it = items[0]
    batch = make_batch([it.atoms], spec)
    fc = hessian_from_irreducible(lambda ks: numba_backend.hessian(spec, params, batch, columns=ks), it.orbit, 64)
    H = numba_backend.hessian(spec, params, batch)
    assert np.abs(fc - H).max() < 1e-10
    err = full_hessian_errors(Potential(spec, params), "numba", it)
    assert err["n_hvp"] == 3 and abs(err["mae"] - np.abs(H - it.fc).mean()) < 1e-12


def test_columns_are_a_function_of_seed_epoch_step():
    a = sample_columns("uniform", [64, 8], 3, 2, 1)
    assert np.array_equal(a, sample_columns("uniform", [64, 8], 3, 2, 1))
    assert not np.array_equal(a, sample_columns("uniform", [64, 8], 3, 2, 2))
    ks = np.concatenate([sample_columns("uniform", [8], 0, 0, s) for s in range(2000)])
    assert ks.min() == 0 and ks.max() == 23 and abs(np.bincount(ks).std() / np.bincount(ks).mean()) < 0.25


def test_adamw_clipping_and_decoupled_decay():
    p = {"e0": np.array([1.0]), "w": np.array([2.0, -2.0])}
    g = {"e0": np.array([30.0]), "w": np.array([40.0, 0.0])}
    cfg = AdamWConfig(lr=0.1, weight_decay=0.5, clip_norm=5.0)
    new, _, info = adamw_step(cfg, p, g, adamw_init(p, ("e0", "w")))
    assert info["clipped"] and info["grad_norm"] == 50.0
    # first Adam step moves each nonzero-gradient entry by lr (sign of g); decay only on w
    assert np.isclose(new["e0"][0], 1.0 - 0.1)
    assert np.isclose(new["w"][0], 2.0 * (1 - 0.05) - 0.1)
    assert np.isclose(new["w"][1], -2.0 * (1 - 0.05))
    ema = ema_update({"w": p["w"]}, new, 0.9)
    assert np.allclose(ema["w"], 0.9 * p["w"] + 0.1 * new["w"])


def _cfg(**kw):
    base = {"epochs": 3, "steps_per_epoch": 2, "k_upstream": 1, "upstream_batch": 4,
            "upstream_val_fraction": 0.25, "optimizer": AdamWConfig(lr=3e-4)}  # fmt: skip
    return TuneConfig(**{**base, **kw})


def test_tuning_lowers_the_hessian_error(si, numba_backend):
    spec, params, items, up = si
    st = tune(Potential(spec, params), "numba", items, up, _cfg(epochs=4, steps_per_epoch=4, k_upstream=0))
    assert st["best_loss"] < 0.95 * st["val_log"][0]["phonon_loss"]
    assert st["best_epoch"] >= 1


def test_resume_reproduces_the_uninterrupted_run(si, numba_backend, tmp_path):
    spec, params, items, up = si
    cfg = _cfg()
    full = tune(Potential(spec, params), "numba", items, up, cfg, run_dir=tmp_path / "a")
    part = tune(Potential(spec, params), "numba", items, up, cfg, run_dir=tmp_path / "b", stop_after_epoch=1)
    assert load_checkpoint(tmp_path / "b" / "checkpoint.npz")["epoch"] == 1 and part["val_log"][-1]["epoch"] == 1
    resumed = tune(Potential(spec, params), "numba", items, up, cfg, run_dir=tmp_path / "b")
    assert [r["loss"] for r in resumed["log"]] == [r["loss"] for r in full["log"]]
    for k in ("e0", "w"):
        assert np.array_equal(resumed["best"][k], full["best"][k])
        assert np.array_equal(resumed["params"][k], full["params"][k])
    # a checkpoint of another run is refused
    from pftlite.core.errors import InputError

    with pytest.raises(InputError, match="different run"):
        tune(Potential(spec, params), "numba", items, up, _cfg(seed=1), run_dir=tmp_path / "b")


def test_numba_and_jax_follow_the_same_loss_curve(si, numba_backend, jax_backend, record):
    spec, params, items, up = si
    cfg = _cfg(epochs=1)
    a = tune(Potential(spec, params), "numba", items, up, cfg)
    b = tune(Potential(spec, params), "jax", items, up, cfg)
    la = np.array([r["loss"] for r in a["log"]])
    lb = np.array([r["loss"] for r in b["log"]])
    record("numba loss curve", la)
    record("jax loss curve", lb)
    assert np.allclose(la, lb, rtol=1e-8, atol=0)
    assert np.allclose(a["best"]["w"], b["best"]["w"], rtol=1e-8, atol=1e-12)


def test_cli_tune_with_config_writes_a_tuned_model(si, tmp_path):
    from click.testing import CliRunner
    from conftest import load_model

    from pftlite.cli import main

    cfg = tmp_path / "pft.toml"
    cfg.write_text('epochs = 2\nsteps-per-epoch = 2\nk_upstream = 1\nupstream_batch = 4\nlr = 3e-4\n'
                   'upstream = ["mlearn/Si_test"]\ntest = []\n')  # fmt: skip
    out = tmp_path / "run"
    args = ["tune", "si-mlearn", "--config", str(cfg), "--epochs", "2", "-o", str(out)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "base mp-149" in res.output and "tuned mp-149" in res.output
    _, params, meta = load_model(out / "tuned.npz")
    prov = meta["history"][-1]
    assert prov["command"] == "tune" and prov["config"]["epochs"] == 2 and prov["data"]["phonons"] == ["mdr/mp-149"]
    log = json.loads((out / "log.json").read_text())
    assert len(log["val_log"]) == 3 and log["steps_per_epoch"] == 2
    assert (out / "log.csv").read_text().startswith("epoch,step,update,kind,loss")
    if (out / "loss.png").exists():
        assert (out / "loss.png").read_bytes()[:4] == b"\x89PNG"
        assert (out / "bands-mp-149.png").read_bytes()[:4] == b"\x89PNG"
    # a rerun resumes from the final checkpoint: same model
    res = CliRunner().invoke(main, [*args, "--no-evaluate"])
    assert res.exit_code == 0, res.output
    _, params2, _ = load_model(out / "tuned.npz")
    assert np.array_equal(params["w"], params2["w"])
    bad = tmp_path / "bad.toml"
    bad.write_text("epochz = 3\n")
    res = CliRunner().invoke(main, ["tune", "si-mlearn", "--config", str(bad), "-o", str(out)])
    assert res.exit_code == 2 and "epochz" in res.output


def test_lr_schedule_arithmetic():
    from pftlite.training.optim import learning_rate

    const = AdamWConfig(lr=2e-3)
    assert learning_rate(const, 1) == 2e-3 and learning_rate(const, 10**6, 5) == 2e-3  # exactly lr, no total needed
    warm = AdamWConfig(lr=2e-3, warmup=0.1)
    assert [learning_rate(warm, t, 100) for t in (1, 5, 10, 11, 100)] == [2e-4, 1e-3, 2e-3, 2e-3, 2e-3]
    cos = AdamWConfig(lr=1e-3, schedule="cosine", warmup=0.1, lr_floor=0.05)
    lrs = np.array([learning_rate(cos, t, 100) for t in range(1, 101)])
    assert np.allclose(lrs[:10], 1e-3 * np.arange(1, 11) / 10)  # linear warmup over 10 updates
    assert lrs[10] == 1e-3 and np.isclose(lrs[-1], 5e-5)  # decay starts at lr, ends at the floor
    assert np.isclose(lrs[10 + 89 // 2], 1e-3 * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * 44 / 89))))
    assert np.all(np.diff(lrs[10:]) < 0)
    assert learning_rate(AdamWConfig(lr=1e-3, schedule="cosine"), 1, 50) == 1e-3  # no warmup
    with pytest.raises(ValueError, match="total"):
        learning_rate(cos, 3)
    with pytest.raises(ValueError, match="unknown"):
        learning_rate(AdamWConfig(schedule="step"), 1, 10)
    # the step uses the scheduled size: first Adam step moves by lr(t)
    p, g = {"w": np.array([1.0])}, {"w": np.array([0.5])}
    new, st, info = adamw_step(cos, p, g, adamw_init(p, ("w",)), 100)
    assert info["lr"] == 1e-4 and np.isclose(new["w"][0], 1.0 - 1e-4) and st["t"] == 1


def test_resume_with_a_cosine_schedule_and_force_budget_rule(si, numba_backend, tmp_path):
    from pftlite.training.tune import eligible

    spec, params, items, up = si
    opt = AdamWConfig(lr=1e-3, schedule="cosine", warmup=0.2, lr_floor=0.1)
    cfg = _cfg(optimizer=opt, select_force_budget=0.5)
    full = tune(Potential(spec, params), "numba", items, up, cfg, run_dir=tmp_path / "a")
    lrs = [r["lr"] for r in full["log"]]
    assert len(lrs) == 12 and lrs[0] < lrs[2] == 1e-3 and np.isclose(lrs[-1], 1e-4)
    tune(Potential(spec, params), "numba", items, up, cfg, run_dir=tmp_path / "b", stop_after_epoch=2)
    resumed = tune(Potential(spec, params), "numba", items, up, cfg, run_dir=tmp_path / "b")
    assert [r["loss"] for r in resumed["log"]] == [r["loss"] for r in full["log"]]
    assert [r["lr"] for r in resumed["log"]] == lrs
    assert np.array_equal(resumed["best"]["w"], full["best"]["w"]) and resumed["best_epoch"] == full["best_epoch"]
    # the kept EMA is the best-Hessian one among the epochs within the validation force budget
    v0, vals = full["val_log"][0], full["val_log"][1:]
    ok = [v for v in vals if v["val_forces_mae"] <= 1.5 * v0["val_forces_mae"] and v["phonon_loss"] < v0["phonon_loss"]]
    assert full["best_epoch"] == (min(ok, key=lambda v: v["phonon_loss"])["epoch"] if ok else 0)
    assert eligible(cfg, {"val_forces_mae": 1.4}, {"val_forces_mae": 1.0})
    assert not eligible(cfg, {"val_forces_mae": 1.6}, {"val_forces_mae": 1.0})
    assert eligible(_cfg(), {"val_forces_mae": 9.0}, {"val_forces_mae": 1.0})  # rule off


def test_cli_tune_rejects_a_bad_schedule_or_hessian_loss(si, tmp_path):
    from click.testing import CliRunner

    from pftlite.cli import main

    for text, word in (('lr_schedule = "step"\n', "lr-schedule"), ("warmup = 1.5\n", "warmup"),
                       ('hessian-loss = "huber"\n', "hessian-loss")):  # fmt: skip
        cfg = tmp_path / "pft.toml"
        cfg.write_text(text)
        res = CliRunner().invoke(main, ["tune", "si-mlearn", "--config", str(cfg), "-o", str(tmp_path / "run")])
        assert res.exit_code == 2 and word in res.output, res.output


def test_published_recipe_config():
    """data/pft-nequix-recipe.toml (the nequix-mp-1-pft recipe) passes the settings checks and
    says what the .nqx header of the published model says."""
    import json
    from pathlib import Path

    from pftlite.cli.tune import _read_config, check_tune_settings

    root = Path(__file__).resolve().parents[1]
    s = check_tune_settings(_read_config(root / "data" / "pft-nequix-recipe.toml"), {})
    assert s["upstream_loss"] == "huber" and s["huber_delta"] == 0.1 and s["k_upstream"] == 4
    assert s["upstream_weights"] == [500.0, 200.0, 50.0] and s["phonon_weights"] == [0.0, 20.0, 5.0]
    assert (s["lr"], s["weight_decay"], s["clip_norm"], s["ema_decay"]) == (3e-4, 1e-3, 100.0, 0.999)
    nqx = root.parent / "shared" / "data" / "nequix-models" / "nequix-mp-1-pft.nqx"
    if nqx.exists():
        h = json.loads(nqx.open("rb").readline())
        assert (h["hessian_weight"], h["force_weight"], h["stress_weight"]) == (s["hessian_weight"], 20.0, 5.0)
        assert (h["extra_energy_weight"], h["extra_force_weight"], h["extra_stress_weight"]) == (500.0, 200.0, 50.0)
        assert (h["learning_rate"], h["weight_decay"], h["grad_clip_norm"], h["ema_decay"]) == (3e-4, 1e-3, 100.0, 0.999)
        assert h["loss_type"] == "mae" and h["extra_train_steps"] == s["k_upstream"]


def test_a_reference_relaxed_under_pressure_has_that_stress_label():
    """Stishovite (phonopy/SiO2-HP) was relaxed at VASP PSTRESS = 400 kB: its equilibrium stress
    label is -40 GPa I (ASE sign, eV/Å³), the others' 0; --phonon-pressure sets it on a file."""
    from types import SimpleNamespace

    from ase.units import GPa

    from pftlite.cli.tune import _with_pressures
    from pftlite.datasets.phonopy_refs import load_reference
    from pftlite.structures.batch import make_batch
    from pftlite.training.tune import phonon_items, phonon_targets

    refs = [load_reference("phonopy/SiO2-HP"), load_reference("phonopy/ZnO")]
    assert [r.pressure_GPa for r in refs] == [40.0, 0.0]
    items = phonon_items(_with_pressures(refs, ["ZnO=2.5"]))
    batch = make_batch([it.atoms for it in items], SimpleNamespace(species=(8, 14, 30), r_cut=2.0))
    t = phonon_targets(items, batch, [0, 0])
    np.testing.assert_allclose(t.stress[0], -40 * GPa * np.eye(3), rtol=1e-15)
    assert abs(t.stress[0][0, 0] + 0.2496604) < 1e-6  # 40 GPa = 40 / 160.2177 eV/Å³
    np.testing.assert_allclose(t.stress[1], -2.5 * GPa * np.eye(3), rtol=1e-15)
    assert np.all(t.forces == 0)
