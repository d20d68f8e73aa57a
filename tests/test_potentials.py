"""The potential interface with a second, very different potential: a Morse pair potential.

Trainer, phonons and kappa run on it without knowing what it is; its Hessian is checked
against a closed form written by hand, its fc2 against phonopy's own finite-displacement
pipeline, its fc3 (exact, autodiff) against phono3py-style displaced forces. The conformance
suite (:mod:`pftlite.testing`) runs on every potential family the package ships.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from conftest import data_path, random_params, small_spec

from pftlite.potentials.base import Potential
from pftlite.potentials.files import save_potential
from pftlite.potentials.pair.model import PairSpec, closed_form, init_params
from pftlite.structures.batch import make_batch
from pftlite.testing import check_potential

pytest.importorskip("jax")

NACL_SPEC = PairSpec(species=(11, 17), r_cut=5.0)
#: Na-Na, Na-Cl, Cl-Cl: a bonding Na-Cl pair at the rock-salt distance, weak like-ion pairs
NACL = Potential(NACL_SPEC, init_params(NACL_SPEC, D=[0.05, 0.6, 0.08], alpha=[1.2, 1.4, 1.1], r0=[4.1, 2.75, 4.0]))


def _rattled(atoms, seed, scale=0.05):
    a = atoms.copy()
    a.positions += np.random.default_rng(seed).normal(scale=scale, size=a.positions.shape)
    return a


def test_families_and_backends():
    assert NACL.kind == "pair" and NACL.backends == ("jax",)
    assert NACL.trainable == ("e0", "D", "alpha", "r0") and all(NACL.trainable_mask.values())
    mb = Potential(small_spec(), random_params(small_spec()))
    assert mb.kind == "manybody" and mb.backends == ("numba", "jax")
    assert mb.trainable_mask == {"e0": True, "mean": False, "scale": False, "w": True}
    assert NACL.fingerprint() != NACL.with_params({"D": NACL.params["D"] * 1.01}).fingerprint()
    assert NACL.fingerprint() == Potential(NACL.spec, {k: v.copy() for k, v in NACL.params.items()}).fingerprint()


def test_unsupported_backend_is_a_clear_error():
    from pftlite.core.errors import BackendUnavailable

    with pytest.raises(BackendUnavailable, match=r"'pair' potential has no numba backend; use --backend jax"):
        NACL.on("numba")


def test_conformance_pair(tmp_path):
    rep = check_potential(NACL, "jax", bulk("NaCl", "rocksalt", a=5.64), tmp_path, seed=1)
    assert set(rep) == {"derivatives", "gradients", "invariances", "supercell", "round_trip"}


def test_conformance_manybody_numba(tmp_path):
    """The whole suite on the built-in model (test_physics covers more crystals per check)."""
    pot = Potential(small_spec(species=(14, 6), readout="mlp"), random_params(small_spec(species=(14, 6), readout="mlp"), seed=3))
    check_potential(pot, "numba", bulk("SiC", "zincblende", a=4.36), tmp_path, seed=4)


def test_pair_against_closed_form():
    """Autodiff (JAX) energy, forces and Hessian of a rattled 8-atom cell = the formulas by hand."""
    a = _rattled(bulk("NaCl", "rocksalt", a=5.64, cubic=True), seed=2)
    b = make_batch([a], NACL)
    cf = closed_form(NACL.spec, NACL.params, b)
    ev = NACL.on("jax")
    out = ev.energy_forces_stress(b)
    H = ev.hessian(b)
    assert abs(out["energy"][0] - cf["energy"][0]) <= 1e-12 * abs(cf["energy"][0])
    np.testing.assert_allclose(out["forces"], cf["forces"], atol=1e-12 * np.abs(cf["forces"]).max())
    np.testing.assert_allclose(H, cf["hessian"], atol=1e-12 * np.abs(cf["hessian"]).max())


def test_pair_fc2_equals_phonopy_pipeline():
    """fc2 from HVPs (model_force_constants) = phonopy's displacement pipeline on ASE forces
    (the MDR script) for the pair potential; and both = the closed-form supercell Hessian."""
    from pftlite.datasets.phonopy_refs import load_reference
    from pftlite.phonons.force_constants import make_phonopy, model_force_constants, supercell_atoms
    from pftlite.testing import phonopy_pipeline

    data_path("phonopy/NaCl/phonopy_disp.yaml")
    ref = load_reference("phonopy/NaCl")
    ph = make_phonopy(ref.unitcell, ref.supercell_matrix, ref.primitive_matrix)
    fc, info = model_force_constants(NACL, "jax", ph, "analytic")
    H = closed_form(NACL.spec, NACL.params, make_batch([supercell_atoms(ph)], NACL))["hessian"]
    np.testing.assert_allclose(fc, H, atol=1e-10 * np.abs(H).max())
    oracle = phonopy_pipeline(NACL, ref.unitcell, ref.supercell_matrix, ref.primitive_matrix, backend="jax")
    # finite displacements of 0.01 Å: O(h²) from the anharmonic terms
    np.testing.assert_allclose(oracle.force_constants, fc, atol=2e-3 * np.abs(fc).max())


def test_pair_phonons_command(tmp_path):
    """`pftlite phonons` on the pair potential: the MDR protocol end to end (no relaxation:
    a pair model of NaCl is not at the DFT volume), and `--backend numba` refused first."""
    import json

    from click.testing import CliRunner

    from pftlite.cli import main

    data_path("phonopy/NaCl/phonopy_disp.yaml")
    model = save_potential(tmp_path / "pair.npz", NACL)
    r = CliRunner().invoke(main, ["phonons", str(model), "phonopy/NaCl", "-o", str(tmp_path / "n"), "--backend", "numba"])
    assert r.exit_code == 2 and "no numba backend" in r.output and len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "n").exists()
    r = CliRunner().invoke(main, ["phonons", str(model), "phonopy/NaCl", "--no-relax", "--backend", "jax",
                                  "-o", str(tmp_path / "ph")])  # fmt: skip
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "ph" / "NaCl.json").read_text())
    assert res["status"] in ("ok", "unstable") and np.isfinite(res["errors"]["fc_rmse"])


def test_pair_tune_lowers_the_hessian_error():
    """PFT on the DFT force constants of NaCl with the pair potential (no co-training):
    the kept EMA's full-Hessian MAE is below the start's."""
    from pftlite.datasets.phonopy_refs import load_reference
    from pftlite.training.optim import AdamWConfig
    from pftlite.training.tune import TuneConfig, phonon_items, tune

    data_path("phonopy/NaCl/phonopy_disp.yaml")
    items = phonon_items([load_reference("phonopy/NaCl")])
    cfg = TuneConfig(epochs=4, steps_per_epoch=8, k_upstream=0, optimizer=AdamWConfig(lr=3e-2, clip_norm=10.0), ema_decay=0.5)
    st = tune(NACL, "jax", items, [], cfg)
    v0, vb = st["val_log"][0]["phonon_loss"], st["best_loss"]
    assert st["best_epoch"] >= 1 and vb < 0.7 * v0, (v0, vb)  # measured 0.0384 -> 0.0230 eV/Å²
    assert set(st["best"]) == set(NACL.params)


def test_pair_fc3_exact_equals_displacements():
    """fc3 of the pair potential in phono3py's NaCl fc3 supercell: exact third derivatives
    (JAX jvp of the HVP) = phono3py's pair-displacement scheme on the potential's forces."""
    from pftlite.datasets.phono3py_refs import load_fc3_reference
    from pftlite.kappa.fc3 import make_fc3_phonopy, model_fc3

    data_path("phono3py/NaCl-222/phono3py_params_NaCl222.yaml.xz")
    ph3 = make_fc3_phonopy(load_fc3_reference("phono3py/NaCl-222"))
    exact, info = model_fc3(NACL, "jax", ph3)
    assert info["method"] == "exact"
    disp, _ = model_fc3(NACL, "jax", ph3, method="displacement", distance=0.01)
    scale = np.abs(exact).max()
    assert scale > 0
    np.testing.assert_allclose(disp, exact, atol=2e-3 * scale)


def test_pair_kappa_command(tmp_path):
    """`pftlite kappa` on the pair potential: fc2 + exact fc3 + RTA/Wigner κ on a 5³ mesh,
    beside the DFT κ of the same phono3py data; `--backend numba` refused first."""
    import json

    from click.testing import CliRunner

    from pftlite.cli import main

    data_path("phono3py/NaCl-222/phono3py_params_NaCl222.yaml.xz")
    model = save_potential(tmp_path / "pair.npz", NACL)
    r = CliRunner().invoke(main, ["kappa", str(model), "phono3py/NaCl-222", "--no-relax", "--mesh", "5",
                                  "--backend", "numba", "-o", str(tmp_path / "k0")])  # fmt: skip
    assert r.exit_code == 2 and "no numba backend" in r.output and not (tmp_path / "k0").exists()
    r = CliRunner().invoke(main, ["kappa", str(model), "phono3py/NaCl-222", "--no-relax", "--mesh", "5",
                                  "-o", str(tmp_path / "k")])  # fmt: skip
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "k" / "NaCl-222.json").read_text())
    k_model = np.asarray(res["model_kappa"]["kappa_ave"])
    assert res["status"] == "ok" and np.all(np.isfinite(k_model)) and np.all(k_model > 0)
    assert res["model"]["fc3"]["method"] == "exact"


def test_self_distillation_and_energy_drift(tmp_path, monkeypatch):
    """`pftlite tune --distill N`: co-training on N rattled/strained copies of the phonon
    supercells labelled by the frozen base model (here the pair potential on phonopy NaCl),
    cached under the base model's fingerprint (a second run reads the cache); the energy drift
    on test data is reported. The labels are the base model's own predictions."""
    import json

    from click.testing import CliRunner

    from pftlite.cli import main
    from pftlite.datasets.phonopy_refs import load_reference
    from pftlite.training.distill import distillation_set
    from pftlite.training.tune import phonon_items

    data_path("phonopy/NaCl/phonopy_disp.yaml")
    monkeypatch.setenv("PFTLITE_CACHE", str(tmp_path / "cache"))
    items = phonon_items([load_reference("phonopy/NaCl")])
    labelled, rec = distillation_set(NACL, "jax", [it.atoms for it in items], n=3, rattle=0.05, strain=0.01)
    assert not rec["from_cache"] and len(labelled) == 3 and rec["base_model"] == NACL.fingerprint()
    again, rec2 = distillation_set(NACL, "jax", [it.atoms for it in items], n=3, rattle=0.05, strain=0.01)
    assert rec2["from_cache"] and rec2["key"] == rec["key"]
    for a, b in zip(labelled, again):
        assert a.info["energy"] == b.info["energy"] and np.array_equal(a.arrays["forces"], b.arrays["forces"])
    o = NACL.on("jax").energy_forces_stress(make_batch([labelled[1]], NACL))
    assert labelled[1].info["energy"] == float(o["energy"][0]) and np.abs(labelled[1].arrays["forces"]).max() > 0.01
    other, rec3 = distillation_set(NACL, "jax", [it.atoms for it in items], n=3, rattle=0.02, strain=0.01)
    assert rec3["key"] != rec["key"] and not rec3["from_cache"]

    model = save_potential(tmp_path / "pair.npz", NACL)
    from ase.io import write

    write(tmp_path / "test.extxyz", labelled[:2])  # labelled test data: the base model's own labels
    args = ["tune", str(model), "--phonons", "phonopy/NaCl", "--distill", "3", "--k-upstream", "1",
            "--upstream-batch", "2", "--epochs", "1", "--steps-per-epoch", "2", "--lr", "3e-3",
            "--upstream-val-fraction", "0", "--test", str(tmp_path / "test.extxyz"), "--no-evaluate",
            "-o", str(tmp_path / "run")]  # fmt: skip
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "self-distillation: 3 copies" in r.output and "(cache:" in r.output and "energy drift" in r.output
    log = json.loads((tmp_path / "run" / "log.json").read_text())
    assert log["distill"]["key"] == rec["key"] and log["energy_drift_meV_per_atom"]["all"]["n"] == 2
    assert log["upstream_shapes"] is None and "upstream padded shapes" not in r.output  # the pair backend does not pad

    # --distill-from: the user's structures are rattled/strained and labelled too, in equal shares with
    # the phonon supercells (equal shares); they are part of the cache key and of the run record
    from ase.build import bulk

    write(tmp_path / "mine.extxyz", bulk("NaCl", "rocksalt", a=5.7, cubic=True))
    mixed, rec4 = distillation_set(NACL, "jax", [it.atoms for it in items] + [bulk("NaCl", "rocksalt", a=5.7, cubic=True)],
                                   n=4, rattle=0.05, strain=0.01)  # fmt: skip
    assert [len(a) for a in mixed] == [64, 64, 8, 8] and rec4["key"] != rec["key"]
    o = NACL.on("jax").energy_forces_stress(make_batch([mixed[2]], NACL))
    assert mixed[2].info["energy"] == float(o["energy"][0])
    r = CliRunner().invoke(main, [*args[:-1], str(tmp_path / "run2"), "--distill", "4",
                                  "--distill-from", str(tmp_path / "mine.extxyz")])  # fmt: skip
    assert r.exit_code == 0, r.output
    log = json.loads((tmp_path / "run2" / "log.json").read_text())
    assert log["distill"]["key"] == rec4["key"] and log["data"]["distill_from"] == [str(tmp_path / "mine.extxyz")]
    bad = CliRunner().invoke(main, ["tune", str(model), "--phonons", "phonopy/NaCl", "--k-upstream", "0",
                                    "--distill-from", str(tmp_path / "mine.extxyz"), "-o", str(tmp_path / "run3")])  # fmt: skip
    assert bad.exit_code == 2 and "--distill-from: needs --distill" in bad.output and not (tmp_path / "run3").exists()

    # --no-distill-phonons: only the user's structures seed the copies (small rattles of the phonon
    # supercells would carry the base model's Hessian); without --distill-from it is refused
    only, rec5 = distillation_set(NACL, "jax", [bulk("NaCl", "rocksalt", a=5.7, cubic=True)], n=4, rattle=0.05,
                                  strain=0.01)  # fmt: skip
    assert [len(a) for a in only] == [8, 8, 8, 8] and rec5["key"] not in (rec["key"], rec4["key"])
    r = CliRunner().invoke(main, [*args[:-1], str(tmp_path / "run4"), "--distill", "4", "--no-distill-phonons",
                                  "--distill-from", str(tmp_path / "mine.extxyz")])  # fmt: skip
    assert r.exit_code == 0, r.output
    log = json.loads((tmp_path / "run4" / "log.json").read_text())
    assert log["distill"]["key"] == rec5["key"] and log["distill"]["phonon_seeds"] is False
    bad = CliRunner().invoke(main, [*args[:-1], str(tmp_path / "run5"), "--no-distill-phonons"])
    assert bad.exit_code == 2 and "--no-distill-phonons: needs --distill-from" in bad.output
    assert not (tmp_path / "run5").exists()


def test_phonon_batch_mixes_sizes_and_species():
    """A phonon batch of structures of different sizes and compositions (the 64-atom NaCl
    supercell and a 16-atom Na-rich cell), one sampled column each: every loss term is the mean
    over all labelled entries, so the batch's term is the entry-weighted mean of the single-
    structure terms, and so is its parameter gradient (through the shared JAX trainer code that
    every padded or unpadded JAX potential uses)."""
    from pftlite.datasets.phonopy_refs import load_reference
    from pftlite.phonons.symmetry import orbits
    from pftlite.potentials.loss import LossSpec
    from pftlite.training.tune import PhononItem, phonon_items, phonon_targets

    data_path("phonopy/NaCl/phonopy_disp.yaml")
    big = phonon_items([load_reference("phonopy/NaCl")])[0]
    small_atoms = _rattled(bulk("NaCl", "rocksalt", a=5.64, cubic=True).repeat((2, 1, 1)), seed=7)
    small_atoms.numbers[[1, 3, 5]] = 11  # Na-rich: another composition
    H = closed_form(NACL.spec, NACL.params, make_batch([small_atoms], NACL))["hessian"]
    small = PhononItem("Na-rich", small_atoms, 1.1 * H, orbits(small_atoms))  # labels: a stiffer model
    ev = NACL.on("jax")
    cols = {"big": 77, "small": 20}
    params = {k: np.asarray(v) * 1.02 for k, v in NACL.params.items()}  # off the labels' model
    for lspec, counts in ((LossSpec(energy=0.0, forces=0.0, stress=0.0, hessian=1.0, kind="mse", hessian_kind="mae"),
                           (3 * len(big.atoms), 3 * len(small_atoms))),
                          (LossSpec(energy=0.0, forces=1.0, stress=0.0, hessian=0.0, kind="mse"),
                           (3 * len(big.atoms), 3 * len(small_atoms))),
                          (LossSpec(energy=0.0, forces=0.0, stress=1.0, hessian=0.0, kind="mse"), (9, 9))):  # fmt: skip
        single = []
        for it, c in ((big, cols["big"]), (small, cols["small"])):
            b = make_batch([it.atoms], NACL)
            single.append(ev.loss_and_grad(b, phonon_targets([it], b, [c]), lspec, params=params))
        b = make_batch([big.atoms, small.atoms], NACL)
        loss, grads, _ = ev.loss_and_grad(b, phonon_targets([big, small], b, [cols["big"], cols["small"]]), lspec,
                                          params=params)  # fmt: skip
        w = np.array(counts, dtype=float) / sum(counts)
        assert single[0][0] > 0 and single[1][0] > 0 and abs(single[0][0] - single[1][0]) > 1e-3 * loss
        np.testing.assert_allclose(loss, w[0] * single[0][0] + w[1] * single[1][0], rtol=1e-12)
        for k in grads:
            np.testing.assert_allclose(grads[k], w[0] * single[0][1][k] + w[1] * single[1][1][k], rtol=1e-10,
                                       atol=1e-14 * np.abs(grads[k]).max())  # fmt: skip


def test_compiled_code_stays_under_the_mapping_limit(monkeypatch, capsys):
    """XLA maps each compiled executable's code in many sections and JAX keeps them all: past
    vm.max_map_count a long run dies inside LLVM. Before a new shape compiles, a process above
    the headroom fraction drops JAX's executables (their mappings go) — and gets the same numbers."""
    from pftlite.core import memory

    if memory.map_count() is None:
        pytest.skip("no /proc/self/maps")
    a = _rattled(bulk("NaCl", "rocksalt", a=5.64, cubic=True), seed=1)
    ev = NACL.on("jax")
    before = ev.energy_forces_stress(make_batch([a], NACL))
    m0 = memory.map_count()
    three = ev.energy_forces_stress(make_batch([a.repeat((3, 1, 1))], NACL))  # a second executable
    m1 = memory.map_count()
    assert m1 > m0  # its code is mapped
    monkeypatch.setattr(memory, "max_map_count", lambda: m1 // 2)  # "over the limit" now
    monkeypatch.setitem(memory._cleared, "n", 0)
    two = ev.energy_forces_stress(make_batch([a.repeat((2, 1, 1))], NACL))  # a new shape: checked first
    assert memory._cleared["n"] == 1 and "dropped JAX's in-memory executables" in capsys.readouterr().err
    assert memory.map_count() < m1  # two executables unmapped, one mapped
    monkeypatch.setattr(memory, "max_map_count", lambda: 10**9)
    again = ev.energy_forces_stress(make_batch([a], NACL))
    assert again["energy"][0] == before["energy"][0] and np.array_equal(again["forces"], before["forces"])
    for k, out in ((2, two), (3, three)):
        assert abs(out["energy"][0] - k * before["energy"][0]) < 1e-9 * abs(before["energy"][0])


def test_repeated_executable_drops_are_reported_once_with_the_remedy(monkeypatch, capsys):
    """A run whose functions need more code mappings than the limit drops and reloads them in a
    cycle: the first drop and the third are reported (the third with the remedy), the others
    are only counted (``executable_drops``, which tune writes to log.json)."""
    import jax

    from pftlite.core import memory

    monkeypatch.setattr(memory, "map_count", lambda: 900)
    monkeypatch.setattr(memory, "max_map_count", lambda: 1000)
    monkeypatch.setattr(jax, "clear_caches", lambda: None)
    monkeypatch.setitem(memory._cleared, "n", 0)
    assert not memory.ensure_map_headroom(0.95)  # under the fraction: nothing happens
    assert [memory.ensure_map_headroom() for _ in range(5)] == [True] * 5
    assert memory.executable_drops() == 5
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "dropped JAX's in-memory executables" in err[0]
    assert "dropped 3 times" in err[1] and "sysctl -w vm.max_map_count=" in err[1]
