"""The MDR phonon protocol (pftlite.phonons.mdr): DFT reference path, model force constants,
phonopy as an independent oracle, and the `pftlite phonons` command."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import shutil

import numpy as np
import pytest

from pftlite.core.units import THZ_TO_K
from pftlite.datasets.registry import local_path
from pftlite.phonons.force_constants import make_phonopy, model_force_constants, supercell_atoms
from pftlite.phonons.mdr import PhononProtocol, evaluate, model_properties, reference_properties
from pftlite.phonons.relax import RelaxSettings
from pftlite.phonons.thermo import ThermoSettings, commensurate_qpoints, stability
from pftlite.potentials.base import Potential

BUILTIN = "pftlite/data/si-mlearn.npz"


def _ref(name):
    from pftlite.datasets.phonopy_refs import load_reference

    if local_path(name) is None:
        pytest.skip(f"{name} not available (set PFTLITE_DATA)")
    return load_reference(name)


@pytest.fixture(scope="module")
def si_model():
    from pathlib import Path

    from conftest import load_model

    return load_model(Path(__file__).parents[1] / BUILTIN)[:2]


@pytest.fixture(scope="module")
def mp149():
    return _ref("mdr/mp-149")


# --- DFT reference path -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mdr/mp-149", "mdr/mp-1000"])
def test_reference_path_reproduces_stored_mdr_values(name, record):
    """The stored values come from phonopy's default, which counts the Γ acoustic modes that
    came out positive by rounding on the machine that made them (S and F then depend on the
    noise through -ln ω; phonopy itself warns so). Compared without that noise: n modes from
    C_V, then C_V and U = F + TS to 1e-6, and the frequency the S difference implies is
    noise (< 1e-5 THz), whatever this CPU's rounding does."""
    ref = _ref(name)
    props, fc, _ = reference_properties(ref)
    check = props["stored_check"]
    record("S F C_V omega_max", [props["S"], props["F"], props["C_V"], props["omega_max_K"]])
    record("stored check", [check["max_abs_diff_heat_capacity"], check["max_abs_diff_internal_energy"]])
    assert check["n_gamma_acoustic_included"] in (0, 1, 2, 3)
    assert check["max_abs_diff_heat_capacity"] < 1e-6
    assert check["max_abs_diff_internal_energy"] < 1e-6
    if check["n_gamma_acoustic_included"]:
        assert check["gamma_acoustic_noise_THz"] < 1e-5
    else:
        assert check["max_abs_diff_entropy"] < 1e-5
    assert check["max_abs_diff_phonon_freq_THz"] < 1e-5
    st = ref.stored
    # ω_max over the commensurate points in the primitive basis (fcc: the published subset
    # holds the maximum too)
    assert abs(props["omega_max_K"] - np.max(st["phonon_freq"]) * THZ_TO_K) < 1e-3
    assert props["stability"]["stable"]
    # fc from the displacement forces equals the fc stored in the file (both symmetrized)
    assert np.abs(fc - ref.force_constants).max() < 1e-6


def test_gamma_acoustic_rules_are_noise_free_and_converge(mp149, record):
    """"exclude" drops the three Γ acoustic modes, "include" replaces them by the acoustic
    branches averaged over the Γ cell. Neither looks at their (noise) sign or size, and both
    converge to the same zone integral; "include" converges faster."""
    from pftlite.phonons.thermo import thermal_properties

    props, fc, _ = reference_properties(mp149)
    ph = make_phonopy(mp149.unitcell, mp149.supercell_matrix, mp149.primitive_matrix)
    ph.force_constants = fc

    def S(mesh, rule):
        t = ThermoSettings(mesh=mesh, gamma_acoustic=rule, temperatures=(300.0,), is_gamma_center=True)
        return thermal_properties(ph, t)["entropy"][0]

    limit = S((63, 63, 63), "include")
    for m in (9, 15, 27):
        exc, inc = S((m,) * 3, "exclude"), S((m,) * 3, "include")
        assert exc < inc  # the -ln ω region near Γ adds entropy
        assert abs(inc - limit) < 0.2 * abs(exc - limit)  # measured 0.09-0.11
    # a sign flip of the noise changes nothing: flip the Γ frequencies by hand
    base = thermal_properties(ph, ThermoSettings(gamma_acoustic="include"))
    fc2 = fc.copy()
    fc2[0, 0] += np.eye(3) * 1e-12  # breaks the sum rule at the 1e-12 level: noise changes
    ph.force_constants = fc2
    moved = thermal_properties(ph, ThermoSettings(gamma_acoustic="include"))
    assert abs(moved["entropy"][3] - base["entropy"][3]) < 1e-8
    assert moved["gamma_weight"] == base["gamma_weight"] > 0
    inc, _, _ = reference_properties(mp149, PhononProtocol(thermo=ThermoSettings(gamma_acoustic="include")))
    record("S include, exclude", [inc["S"], props["S"]])
    assert 0.0 < inc["S"] - props["S"] < 0.01  # Γ cell of a 32³ mesh
    assert PhononProtocol().to_dict()["thermo"]["gamma_acoustic"] == "exclude"


def test_commensurate_points_in_primitive_basis(mp149):
    ph = make_phonopy(mp149.unitcell, mp149.supercell_matrix, mp149.primitive_matrix)
    q = commensurate_qpoints(ph)
    assert len(q) == 64 // 2  # N_supercell / N_primitive, not det(S) = 8
    assert np.allclose(q[0], 0.0)
    # each is commensurate: exp(2πi q·R) = 1 for the supercell lattice vectors in the
    # primitive basis
    m = np.linalg.inv(ph.primitive_matrix) @ ph.supercell_matrix
    phase = q @ m  # q (primitive reciprocal) . supercell vectors (primitive coords)
    assert np.allclose(phase, np.rint(phase), atol=1e-9)


def test_stability_flags():
    g = np.array([[-0.5, 0.0, 0.1, 10.0, 10.0, 10.0], [1.0] * 6]) / THZ_TO_K
    assert stability(g)["stable"]
    assert not stability(g * 100)["stable"]  # -50 K acoustic
    bad = g.copy()
    bad[1, 0] = -0.01 / THZ_TO_K
    assert "away from Γ" in stability(bad)["reason"]
    # unstable triply degenerate optical modes below the acoustic ones (CaTiO3-like): optical
    ca = np.array([[-100.0, -100.0, -100.0, -1e-5, 0.0, 1e-5, 200.0, 200.0, 200.0]]) / THZ_TO_K
    r = stability(ca)
    assert not r["stable"] and r["reason"] == "Γ optical -100.0 K < 0"


# --- model force constants ----------------------------------------------------------------


def test_analytic_fc_equals_the_exact_hessian(si_model, mp149):
    from conftest import get_backend

    from pftlite.structures.batch import make_batch

    spec, params = si_model
    ph = make_phonopy(mp149.unitcell, mp149.supercell_matrix, mp149.primitive_matrix)
    fc, info = model_force_constants(Potential(spec, params), "numba", ph, "analytic")
    assert info["n_evaluations"] == 1  # one irreducible displacement in diamond Si
    H = get_backend("numba").hessian(spec, params, make_batch([supercell_atoms(ph)], spec))
    assert np.abs(fc - H).max() < 1e-7 * np.abs(H).max()


def test_displacement_fc_converges_to_analytic(si_model, mp149):
    spec, params = si_model
    ph = make_phonopy(mp149.unitcell, mp149.supercell_matrix, mp149.primitive_matrix)
    exact, _ = model_force_constants(Potential(spec, params), "numba", ph, "analytic")
    errs = []
    for h in (0.04, 0.02, 0.01):
        ph = make_phonopy(mp149.unitcell, mp149.supercell_matrix, mp149.primitive_matrix)
        fc, _ = model_force_constants(Potential(spec, params), "numba", ph, "displacement", distance=h)
        errs.append(np.abs(fc - exact).max())
    assert errs[0] > errs[1] > errs[2]
    assert errs[1] / errs[2] > 1.8  # at least first order; symmetric ± pairs give ~4
    assert errs[2] < 2e-2 * np.abs(exact).max()


def test_properties_from_analytic_and_displacement_fc_agree(si_model, mp149):
    spec, params = si_model
    a, _, _ = model_properties(Potential(spec, params), "numba", mp149, PhononProtocol(relax=None, fc="analytic"))
    d, _, _ = model_properties(Potential(spec, params), "numba", mp149, PhononProtocol(relax=None, fc="displacement"))
    assert abs(a["omega_max_K"] - d["omega_max_K"]) < 0.5
    assert abs(a["S"] - d["S"]) < 0.02 and abs(a["F"] - d["F"]) < 0.01 and abs(a["C_V"] - d["C_V"]) < 0.01


def test_model_path_equals_phonopy_own_pipeline(si_model, mp149):
    """Oracle: phonopy fed the same model forces through an ASE calculator (the published
    MDR script's steps) gives the same ω_max, F, S, C_V as pftlite's displacement route."""
    from phonopy.harmonic.dynmat_to_fc import get_commensurate_points

    from pftlite.testing import phonopy_pipeline

    spec, params = si_model
    proto = PhononProtocol(relax=RelaxSettings(fmax=0.005), fc="displacement")
    ours, _, _ = model_properties(Potential(spec, params), "numba", mp149, proto)
    assert ours["status"] == "ok" and ours["relax"]["symmetry_kept"]

    from ase import Atoms

    relaxed = Atoms(mp149.unitcell.get_chemical_symbols(), cell=ours["cell"], scaled_positions=ours["scaled_positions"],
                    masses=mp149.unitcell.get_masses(), pbc=True)  # fmt: skip
    ph = phonopy_pipeline(Potential(spec, params), relaxed, mp149.supercell_matrix, mp149.primitive_matrix)
    tp = ph.thermal_properties
    assert abs(tp.entropy[3] - ours["S"]) < 1e-8
    assert abs(tp.free_energy[3] - ours["F"]) < 1e-8
    assert abs(tp.heat_capacity[3] - ours["C_V"]) < 1e-8
    # published ω_max definition (commensurate points of S read in the primitive basis): for
    # fcc Si a subset of ours that contains the maximum
    ph.run_qpoints(get_commensurate_points(ph.supercell_matrix))
    pub = ph.qpoints.frequencies.max()
    assert abs(pub * THZ_TO_K - ours["omega_max_K"]) < 1e-6


def test_relaxation_that_does_not_converge_is_a_failure(si_model, mp149):
    spec, params = si_model
    strained = mp149.unitcell.copy()
    strained.set_cell(strained.cell[:] * 1.04, scale_atoms=True)
    ref = dataclasses.replace(mp149, unitcell=strained)
    r = evaluate(Potential(spec, params), "numba", ref, PhononProtocol(relax=RelaxSettings(max_steps=2)))
    assert r["status"] == "failed" and "not converged" in r["reason"]
    assert "errors" not in r and r["dft"]["S"] > 0


def test_backends_give_the_same_numbers(si_model, mp149, jax_backend, record):
    spec, params = si_model
    proto = PhononProtocol(relax=RelaxSettings(fmax=0.005))
    a = evaluate(Potential(spec, params), "numba", mp149, proto)
    b = evaluate(Potential(spec, params), "jax", mp149, proto)
    assert a["model"]["relax"]["steps"] == b["model"]["relax"]["steps"]
    record("numba S F C_V omega_max", [a["model"][m] for m in ("S", "F", "C_V", "omega_max_K")])
    record("jax S F C_V omega_max", [b["model"][m] for m in ("S", "F", "C_V", "omega_max_K")])
    for m in ("omega_max_K", "S", "F", "C_V"):
        assert abs(a["model"][m] - b["model"][m]) < 1e-8 * max(1.0, abs(a["model"][m]))


# --- command ------------------------------------------------------------------------------


def test_cli_phonons_writes_results_and_skips_done(tmp_path, mp149):
    from click.testing import CliRunner

    from pftlite.cli import main

    out = tmp_path / "out"
    runner = CliRunner()
    plot = ["--plot"] if importlib.util.find_spec("matplotlib") else []
    res = runner.invoke(main, ["phonons", "si-mlearn", "mdr/mp-149", "-o", str(out), *plot])
    assert res.exit_code == 0, res.output
    if plot:
        assert (out / "mp-149.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "MAE" in res.output and "mp-149" in res.output
    data = json.loads((out / "mp-149.json").read_text())
    assert data["status"] == "ok" and data["protocol"]["fc"] == "analytic"
    assert data["protocol"]["relax"]["fmax"] == 0.005
    assert abs(data["dft"]["S"] - 39.3225) < 1e-3  # Γ acoustic excluded (39.3271 included)
    assert {"omega_max_K", "S", "F", "C_V", "fc_rmse"} <= set(data["errors"])
    csv = (out / "summary.csv").read_text().splitlines()
    assert csv[0].startswith("name,formula,status") and csv[1].startswith("mp-149,Si8,ok")
    mtime = (out / "mp-149.json").stat().st_mtime_ns
    res = runner.invoke(main, ["phonons", "si-mlearn", "mdr/mp-149", "-o", str(out), *plot])
    assert res.exit_code == 0 and (out / "mp-149.json").stat().st_mtime_ns == mtime
    assert "done before" in res.output
    # a different protocol is not "done"
    res = runner.invoke(main, ["phonons", "si-mlearn", "mdr/mp-149", "-o", str(out), "--no-relax"])
    assert res.exit_code == 0 and (out / "mp-149.json").stat().st_mtime_ns != mtime
    assert json.loads((out / "mp-149.json").read_text())["protocol"]["relax"] is None
    assert not list(out.glob(".*.tmp"))


def test_cli_phonons_user_errors(tmp_path, mp149):
    from click.testing import CliRunner

    from pftlite.cli import main

    runner = CliRunner()
    if local_path("mdr/mp-1000") is not None:
        res = runner.invoke(main, ["phonons", "si-mlearn", "mdr/mp-1000", "-o", str(tmp_path)])
        assert res.exit_code == 2 and "not in the model" in res.output and "Traceback" not in res.output
    bad = tmp_path / "broken.yaml"
    bad.write_text("unit_cell: [\n")
    res = runner.invoke(main, ["phonons", "si-mlearn", str(bad), "-o", str(tmp_path / "o")])
    assert res.exit_code == 2 and "broken.yaml" in res.output
    res = runner.invoke(main, ["phonons", "si-mlearn", "mdr/mp-149", "--mesh", "1 2"])
    assert res.exit_code == 2 and "--mesh" in res.output


def test_cli_phonons_parallel(tmp_path, mp149):
    """Two materials over two spawned worker processes give what one process gives."""
    from click.testing import CliRunner

    from pftlite.cli import main

    src = local_path("mdr/mp-149")
    shutil.copy(src, tmp_path / "mp-149.yaml")
    shutil.copy(src, tmp_path / "si-copy.yaml")
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["phonons", "si-mlearn", str(tmp_path / "mp-149.yaml"),
                                    str(tmp_path / "si-copy.yaml"), "-o", str(out), "-j", "2"])  # fmt: skip
    assert res.exit_code == 0, res.output
    a = json.loads((out / "mp-149.json").read_text())
    b = json.loads((out / "si-copy.json").read_text())
    assert a["model"]["S"] == b["model"]["S"]
    assert json.loads((out / "summary.json").read_text())["n_ok"] == 2


def test_non_finite_stored_values_are_reported_not_ignored(tmp_path):
    """A NaN among an MDR yaml's stored entropies is named in the check's record (and the CLI
    says so in one line), the other temperatures are still compared."""
    from conftest import data_path

    from pftlite.datasets.phonopy_refs import load_reference

    text = data_path("mdr/mp-149").read_text()
    head, tail = text.split("entropy:\n", 1)
    lines = tail.split("\n")
    lines[1] = "- .nan"  # the second stored temperature
    bad = tmp_path / "mp-149.yaml"
    bad.write_text(head + "entropy:\n" + "\n".join(lines))
    ref = load_reference(bad)
    check = reference_properties(ref)[0]["stored_check"]
    assert len(check["stored_non_finite"]) == 1 and check["stored_non_finite"][0].startswith("entropy at")
    assert check["max_abs_diff_heat_capacity"] < 1e-6


@pytest.mark.parametrize("name", ["NaCl", "MgO", "ZnO"])
def test_nac_equals_phonopy_with_born_charges(name):
    """--nac: the DFT path with the reference's BORN equals phonopy's own pipeline with NAC
    (phonopy.load with the same FORCE_SETS and BORN): thermal properties at 300 K, and the
    LO-TO splitting at Γ approached along [100]; without NAC there is no splitting."""
    import warnings

    import phonopy
    from conftest import data_path

    yaml = data_path(f"phonopy/{name}/phonopy_disp.yaml")
    data_path(f"phonopy/{name}/FORCE_SETS")
    data_path(f"phonopy/{name}/BORN")
    from pftlite.datasets.phonopy_refs import load_reference

    ref = load_reference(yaml)
    assert ref.nac_params is not None
    settings = ThermoSettings(gamma_acoustic="exclude")
    on, _, ph_on = reference_properties(ref, PhononProtocol(nac=True, thermo=settings))
    off, _, ph_off = reference_properties(ref, PhononProtocol(nac=False, thermo=settings))
    assert on["nac_applied"] and not off["nac_applied"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        oracle = phonopy.load(yaml, force_sets_filename=yaml.parent / "FORCE_SETS",
                              born_filename=yaml.parent / "BORN", is_nac=True, log_level=0)  # fmt: skip
        oracle.run_mesh(100.0)
        oracle.run_thermal_properties(temperatures=[300.0], exclude_gamma_acoustic=True)
    tp = oracle.thermal_properties
    assert abs(tp.entropy[0] - on["S"]) < 1e-6 and abs(tp.free_energy[0] - on["F"]) < 1e-6
    assert abs(tp.heat_capacity[0] - on["C_V"]) < 1e-6
    assert abs(on["S"] - off["S"]) > 1e-3  # NAC matters for these ionic crystals
    gamma, direction = [[0.0, 0.0, 0.0]], [1.0, 0.0, 0.0]
    freqs = {}
    for label, ph in (("on", ph_on), ("off", ph_off), ("oracle", oracle)):
        ph.run_qpoints(gamma, nac_q_direction=direction)
        freqs[label] = np.sort(ph.qpoints.frequencies[0])
    np.testing.assert_allclose(freqs["on"], freqs["oracle"], atol=1e-6)
    assert np.abs(freqs["on"] - freqs["off"]).max() > 0.5  # THz: an LO mode is pushed up
    if name != "ZnO":  # rock salt: one triply degenerate optical mode without NAC, split with
        assert freqs["on"][-1] - freqs["on"][-2] > 1.0
        assert abs(freqs["off"][-1] - freqs["off"][-3]) < 1e-6
