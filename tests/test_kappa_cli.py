"""`pftlite kappa` end to end on real DFT data (phono3py's tiny Si-111-222-fd set: fc3 in the
8-atom cell, fc2 in 2×2×2), the model path's failures as results, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import data_path

from pftlite.cli import main

SI_FD = "phono3py/Si-111-222-fd"


@pytest.fixture(scope="module")
def si_fd():
    data_path(f"{SI_FD}/phono3py_params_Si-111-222-fd.yaml.xz")
    from pftlite.datasets.phono3py_refs import load_fc3_reference

    return load_fc3_reference(SI_FD)


def _run(args):
    res = CliRunner().invoke(main, args)
    return res.exit_code, res.output


def test_dft_only_scattering_terms_act_as_physics_says(si_fd, tmp_path):
    """Isotope scattering lowers κ_P; the coherence term is positive and leaves κ_P alone."""
    out = {}
    for tag, flags in {"bare": ["--no-isotope", "--no-wigner"], "iso": ["--isotope", "--no-wigner"],
                       "wig": ["--no-isotope", "--wigner"]}.items():  # fmt: skip
        code, text = _run(["kappa", "--dft-only", SI_FD, "--mesh", "5", "-o", str(tmp_path / tag), *flags])
        assert code == 0, text
        out[tag] = json.loads((tmp_path / tag / "Si-111-222-fd.json").read_text())["dft_kappa"]
        modes = json.loads((tmp_path / tag / "Si-111-222-fd-dft.json").read_text())
        assert np.shape(modes["mode_kappa_P"])[1:3] == (len(modes["weights"]), 6)
    kb, ki, kw = (np.array(out[t]["kappa_P"])[0] for t in ("bare", "iso", "wig"))
    assert np.allclose(kb, np.diag([kb[0, 0]] * 3), atol=1e-8 * kb[0, 0])  # cubic
    assert 0.5 * kb[0, 0] < ki[0, 0] < 0.995 * kb[0, 0]
    assert np.allclose(kw, kb, rtol=1e-12)
    assert np.array(out["wig"]["kappa_C"])[0, 0, 0] > 0
    assert np.array(out["bare"]["kappa_C"])[0, 0, 0] == 0
    proto = json.loads((tmp_path / "bare" / "Si-111-222-fd.json").read_text())["protocol"]
    assert not {"relax", "fc3", "distance", "h", "fc2"} & set(proto)  # no model-only fields


def test_model_vs_dft_cli_and_scores(si_fd, tmp_path):
    """The model path relaxes, builds fc2 and fc3, and scores SRE/SRME consistently."""
    code, text = _run(["kappa", "si-mlearn", SI_FD, "--mesh", "5", "-o", str(tmp_path), "--plot"])
    assert code == 0, text
    r = json.loads((tmp_path / "Si-111-222-fd.json").read_text())
    assert r["status"] == "ok" and r["model"]["relax"]["converged"] and r["model"]["relax"]["symmetry_kept"]
    assert r["model"]["fc3"]["method"] == "hvp-fd"
    assert not r["model"]["stability"]["imaginary_modes"]
    kd, km = r["dft_kappa"]["kappa_ave"][0], r["model_kappa"]["kappa_ave"][0]
    e = r["errors"]
    assert e["kappa_dft"] == pytest.approx(kd) and e["kappa_model"] == pytest.approx(km)
    assert e["SRE"] == pytest.approx(2 * abs(km - kd) / (km + kd))
    assert e["SRE"] - 1e-12 <= e["SRME"] <= 2  # mode errors cannot cancel
    assert (tmp_path / "Si-111-222-fd.png").stat().st_size > 1000
    assert "SRME" in text


def test_model_failures_are_results_scored_two(si_fd):
    """A relaxation that does not converge is a failed record, and the benchmark scores it 2."""
    from pftlite.cli.common import load_model_arg as _load
    from pftlite.kappa import ksrme
    from pftlite.kappa.evaluate import KappaProtocol, model_kappa
    from pftlite.phonons.relax import RelaxSettings

    pot = _load("si-mlearn")
    cell = si_fd.unitcell.copy()
    cell.set_cell(cell.cell[:] * 1.04, scale_atoms=True)
    rec, res = model_kappa(pot, "numba", cell, si_fd.primitive_matrix, si_fd.phonon_supercell_matrix,
                           si_fd.supercell_matrix, KappaProtocol(relax=RelaxSettings(max_steps=2)))  # fmt: skip
    assert rec["status"] == "failed" and "relaxation" in rec["reason"] and res is None
    material = ksrme.load_ksrme_reference()[0]
    score = ksrme.score_material(material, rec)
    assert score["srme"] == 2 and score["sre"] == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["kappa", "si-mlearn", "phono3py/NaCl-222"], "species Na, Cl not in the model"),
        (["kappa", "si-mlearn", "--benchmark"], "no k_SRME material is covered"),
        (["kappa", "si-mlearn", "--benchmark", "--mesh", "5"], "reference q mesh"),
        (["kappa", "si-mlearn", SI_FD, "--mesh", "4,4"], "--mesh"),
        (["kappa", "si-mlearn"], "give MODEL and at least one REF"),
        (["kappa", "--dft-only", "no/such/file.yaml"], "no/such/file.yaml"),
        (["kappa", "--dft-only", SI_FD, "--temperatures", "-5"], "--temperatures"),
    ],
)
def test_bad_input_one_line(si_fd, args, message):
    code, text = _run(args)
    assert code == 2, text
    assert message in text and "Traceback" not in text and len(text.strip().splitlines()) == 1


def test_python_api_and_cli_share_the_kappa_defaults():
    """KappaProtocol() (the Python API of a kappa evaluation) uses the CLI's defaults:
    isotopes and the coherence term on, 11³, 300 K, r0 average on."""
    from pftlite.cli.kappa import kappa
    from pftlite.kappa.evaluate import KappaProtocol

    opts = {p.name: p.default for p in kappa.params}
    s = KappaProtocol().settings()
    assert s.isotope is opts["isotope"] is True and s.wigner is opts["wigner"] is True
    assert s.r0_average is opts["r0_average"] is True
    assert s.mesh == (11, 11, 11) and opts["mesh"] is None  # None = the default mesh
    assert s.temperatures == (float(opts["temperatures"]),)
