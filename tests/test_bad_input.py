"""Bad input, one row per class: every command answers a user error with ONE line naming the
file or option and the problem, exit status 2, no traceback, and nothing written or changed —
checked before any expensive work starts.

Each row runs the CLI in-process (click's CliRunner) in a fresh folder prepared by the row's
setup; the folder's files (names, sizes, contents) are compared before and after.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from click.testing import CliRunner

from pftlite.cli import main
from pftlite.potentials.base import Potential

SI_TEST = "mlearn/Si_test"


def _model_with_spec(path: Path, **changes):
    """si-mlearn with its header's spec edited (``spec=None`` replaces the whole spec)."""
    from pftlite.potentials.files import builtin_models

    z = dict(np.load(builtin_models()["si-mlearn"]))
    header = json.loads(z["header"].tobytes().decode())
    if changes.get("spec", 0) is None:
        header["spec"] = None
    else:
        header["spec"].update(changes)
    z["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **z)


def _poscar(d: Path):
    bulk("Si", "diamond", 5.43).write(d / "POSCAR", format="vasp")


def _file(name, text="x\n"):
    def setup(d: Path):
        (d / name).write_text(text)

    return setup


def _files(*setups):
    def setup(d: Path):
        for s in setups:
            s(d)

    return setup


def _config(text):
    return _file("pft.toml", text)


# (id, setup(folder) or None, argv, substring of the one-line message)
ROWS = [
    # --- init / info: model files -----------------------------------------------------------
    ("init-hidden-negative", None, ["init", "m.npz", "-s", "Si", "--readout", "mlp", "--hidden", "-5"], "hidden must be >= 1"),
    ("init-exists", _file("m.npz"), ["init", "m.npz", "-s", "Si"], "file exists"),
    ("init-under-a-file", _file("blocker"), ["init", "blocker/m.npz", "-s", "Si"], "is a file, not a folder"),
    ("init-unknown-element", None, ["init", "m.npz", "-s", "Xx"], "Xx"),
    ("init-rcut-tiny", None, ["init", "m.npz", "-s", "Si", "--r-cut", "0.1"], "r_cut"),
    ("init-4b-too-big", None, ["init", "m.npz", "-s", "Si", "--n-radial", "2", "--n-radial-4b", "4"], "4-body"),
    ("info-missing", None, ["info", "nothere.npz"], "model file not found"),
    ("info-not-a-model", _file("m.npz", "hello"), ["info", "m.npz"], "not a pftlite model file"),
    ("info-rcut-text", lambda d: _model_with_spec(d / "m.npz", r_cut="abc"), ["info", "m.npz"], "r_cut must be a number"),
    ("info-spec-null", lambda d: _model_with_spec(d / "m.npz", spec=None), ["info", "m.npz"], "expected a mapping"),
    ("info-no-species", lambda d: _model_with_spec(d / "m.npz", species=None), ["info", "m.npz"], "species must be a list"),
    ("info-empty-species", lambda d: _model_with_spec(d / "m.npz", species=[]), ["info", "m.npz"], "species list is empty"),
    ("info-float-nradial", lambda d: _model_with_spec(d / "m.npz", n_radial=2.5), ["info", "m.npz"], "n_radial must be an integer"),
    ("info-unknown-hyper", lambda d: _model_with_spec(d / "m.npz", colour="red"), ["info", "m.npz"], "unknown hyperparameters"),
    # --- hessian ------------------------------------------------------------------------------
    ("hessian-dim-singular", _poscar, ["hessian", "si-mlearn", "POSCAR", "--dim", "0 1 1"], "singular"),
    ("hessian-dim-two", _poscar, ["hessian", "si-mlearn", "POSCAR", "--dim", "2 2"], "--dim"),
    ("hessian-dim-text", _poscar, ["hessian", "si-mlearn", "POSCAR", "--dim", "a b c"], "--dim: expected numbers"),
    ("hessian-dim-fraction", _poscar, ["hessian", "si-mlearn", "POSCAR", "--dim", "1.5 1 1"], "--dim"),
    ("hessian-dim-unquoted", _poscar, ["hessian", "si-mlearn", "POSCAR", "--dim", "2", "2", "2"], "unexpected extra arguments"),
    ("hessian-replaces-fc", _files(_poscar, _file("FORCE_CONSTANTS", "1 1\n")), ["hessian", "si-mlearn", "POSCAR"], "use --force"),
    ("hessian-under-a-file", _files(_poscar, _file("blocker")), ["hessian", "si-mlearn", "POSCAR", "-o", "blocker/FC"], "not a folder"),
    ("hessian-too-big", _poscar, ["hessian", "si-mlearn", "POSCAR", "--dim", "50 50 50"], "--no-size-check"),
    ("predict-cell-far-too-small", lambda d: __import__("ase").Atoms("Si", cell=[1e-3] * 3, pbc=True).write(d / "t.xyz", format="extxyz"),
     ["predict", "si-mlearn", "t.xyz"], "shortest lattice vector"),
    ("hessian-missing-structure", None, ["hessian", "si-mlearn", "nothere.vasp"], "nothere.vasp"),
    ("hessian-wrong-element", lambda d: bulk("Cu", "fcc", 3.6).write(d / "POSCAR", format="vasp"),
     ["hessian", "si-mlearn", "POSCAR"], "Cu"),
    # --- predict ------------------------------------------------------------------------------
    ("predict-replaces-output", _files(_poscar, _file("out.json", "{}")), ["predict", "si-mlearn", "POSCAR", "-o", "out.json"], "use --force"),
    ("predict-bad-suffix", _poscar, ["predict", "si-mlearn", "POSCAR", "-o", "out.txt"], "must end in"),
    ("predict-under-a-file", _files(_poscar, _file("blocker")), ["predict", "si-mlearn", "POSCAR", "-o", "blocker/o.json"], "not a folder"),
    ("predict-garbage-structure", _file("bad.xyz", "not a structure\n"), ["predict", "si-mlearn", "bad.xyz"], "bad.xyz"),
    ("predict-unknown-dataset", None, ["predict", "si-mlearn", "mdr/mp149"], "mdr/mp149"),
    ("predict-unknown-backend", _poscar, ["predict", "si-mlearn", "POSCAR", "--backend", "torch"], "torch"),
    # --- phonons ------------------------------------------------------------------------------
    ("phonons-temperature-nan", None, ["phonons", "si-mlearn", "mdr/mp-149", "--temperatures", "nan"], "--temperatures"),
    ("phonons-temperature-negative", None, ["phonons", "si-mlearn", "mdr/mp-149", "--temperatures", "-5"], "--temperatures"),
    ("phonons-temperature-text", None, ["phonons", "si-mlearn", "mdr/mp-149", "--temperatures", "warm"], "--temperatures"),
    ("phonons-mesh-text", None, ["phonons", "si-mlearn", "mdr/mp-149", "--mesh", "fine"], "--mesh"),
    ("phonons-mesh-two", None, ["phonons", "si-mlearn", "mdr/mp-149", "--mesh", "4 4"], "--mesh"),
    ("phonons-jobs-zero", None, ["phonons", "si-mlearn", "mdr/mp-149", "-j", "0"], "--jobs"),
    ("phonons-output-is-a-file", _file("out"), ["phonons", "si-mlearn", "mdr/mp-149", "-o", "out"], "is a file"),
    ("phonons-output-under-a-file", _file("blocker"), ["phonons", "si-mlearn", "mdr/mp-149", "-o", "blocker/x"], "not a folder"),
    ("phonons-missing-reference", None, ["phonons", "si-mlearn", "nothere.yaml"], "nothere.yaml"),
    ("phonons-bad-gamma-rule", None, ["phonons", "si-mlearn", "mdr/mp-149", "--gamma-acoustic", "maybe"], "--gamma-acoustic"),
    # --- kappa --------------------------------------------------------------------------------
    ("kappa-exact-on-numba", None, ["kappa", "si-mlearn", "phono3py/Si-PBEsol", "--fc3", "exact", "--backend", "numba"], "--backend jax"),
    ("kappa-temperature-nan", None, ["kappa", "--dft-only", "phono3py/Si-PBEsol", "--temperatures", "nan"], "--temperatures"),
    ("kappa-temperature-zero", None, ["kappa", "--dft-only", "phono3py/Si-PBEsol", "--temperatures", "0"], "--temperatures"),
    ("kappa-mesh-two", None, ["kappa", "--dft-only", "phono3py/Si-PBEsol", "--mesh", "4 4"], "--mesh"),
    ("kappa-mesh-too-big", None, ["kappa", "--dft-only", "phono3py/Si-PBEsol", "--mesh", "500"], "--no-size-check"),
    ("kappa-sigma-negative", None, ["kappa", "--dft-only", "phono3py/Si-PBEsol", "--sigma", "-1"], "--sigma"),
    ("kappa-boundary-negative", None, ["kappa", "--dft-only", "phono3py/Si-PBEsol", "--boundary-mfp", "-1"], "--boundary-mfp"),
    ("kappa-output-is-a-file", _file("out"), ["kappa", "--dft-only", "phono3py/Si-PBEsol", "-o", "out"], "is a file"),
    ("kappa-replaces-results", lambda d: (d / "k").mkdir() or (d / "k" / "Si-PBEsol.json").write_text("{}"),
     ["kappa", "--dft-only", "phono3py/Si-PBEsol", "--mesh", "3", "-o", "k"], "use --overwrite"),
    ("kappa-model-only", None, ["kappa", "si-mlearn"], "at least one REF"),
    ("kappa-benchmark-with-mesh", None, ["kappa", "si-mlearn", "--benchmark", "--mesh", "5"], "--benchmark"),
    ("kappa-unknown-option", None, ["kappa", "--bogus"], "No such option"),
    ("kappa-benchmark-with-nac", None, ["kappa", "si-mlearn", "--benchmark", "--nac"], "without NAC"),
    ("kappa-fc2-file", None, ["kappa", "--dft-only", "mdr/mp-149"], "a phonopy (fc2) file, not a phono3py fc3 dataset"),
    ("kappa-mesh-ref", None, ["kappa", "--dft-only", "phono3py/Si-PBEsol", "--mesh", "ref"], "only with --benchmark"),
    ("kappa-phonopy-folder", None, ["kappa", "--dft-only", "phonopy/NaCl"], "no phono3py yaml"),
    # --- tune ---------------------------------------------------------------------------------
    ("tune-seed-negative", None, ["tune", "--seed", "-1"], "seed must be an integer >= 0"),
    ("tune-steps-negative", None, ["tune", "--steps-per-epoch", "-3"], "steps-per-epoch must be an integer >= 1"),
    ("tune-ema-above-one", None, ["tune", "--ema-decay", "1.5"], "ema-decay must be a number in (0, 1)"),
    ("tune-clip-negative", None, ["tune", "--clip-norm", "-1"], "clip-norm must be"),
    ("tune-lr-zero", None, ["tune", "--lr", "0"], "lr must be a number in (0, 1)"),
    ("tune-epochs-zero", None, ["tune", "--epochs", "0"], "epochs must be an integer >= 1"),
    ("tune-sampler-unknown", None, ["tune", "--sampler", "random"], "--sampler"),
    ("tune-config-epochs-text", _config('epochs = "ten"\n'), ["tune", "--config", "pft.toml"], "pft.toml: epochs must be an integer >= 1"),
    ("tune-config-val-fraction", _config("upstream_val_fraction = 1.5\n"), ["tune", "--config", "pft.toml"], "upstream-val-fraction must be a fraction"),
    ("tune-config-ema", _config("ema_decay = 1.5\n"), ["tune", "--config", "pft.toml"], "pft.toml: ema-decay"),
    ("tune-config-phonons-number", _config("phonons = 5\n"), ["tune", "--config", "pft.toml"], "phonons must be a list"),
    ("tune-config-unknown-key", _config("epoch = 3\n"), ["tune", "--config", "pft.toml"], "unknown setting"),
    ("tune-config-upstream-weights", _config("upstream_weights = [500, 200]\n"), ["tune", "--config", "pft.toml"], "pft.toml: upstream-weights must be three numbers >= 0"),
    ("tune-config-upstream-loss", _config('upstream_loss = "l1"\n'), ["tune", "--config", "pft.toml"], "pft.toml: upstream-loss must be mse, mae or huber"),
    ("tune-config-huber-delta", _config("huber_delta = 0\n"), ["tune", "--config", "pft.toml"], "pft.toml: huber-delta must be a number > 0"),
    ("tune-config-distill-phonons-text", _config('distill_phonons = "no"\n'), ["tune", "--config", "pft.toml"], "pft.toml: distill-phonons must be true or false"),
    ("tune-config-not-toml", _config("epochs = = 3\n"), ["tune", "--config", "pft.toml"], "not a readable config"),
    ("tune-config-missing", None, ["tune", "--config", "nothere.toml"], "nothere.toml"),
    ("tune-output-under-a-file", _file("blocker"), ["tune", "-o", "blocker/run"], "not a folder"),
    ("tune-hessian-loss", None, ["tune", "--hessian-loss", "huber"], "--hessian-loss"),
    ("tune-phonon-pressure-unknown-name", None, ["tune", "si-mlearn", "--phonons", "mdr/mp-149", "--phonon-pressure", "Si=40"], "'Si' is none of the --phonons references"),
    ("tune-phonon-pressure-not-a-number", None, ["tune", "si-mlearn", "--phonons", "mdr/mp-149", "--phonon-pressure", "mp-149=high"], "expected NAME=GPA"),
    ("tune-k-without-upstream", None, ["tune", "si-mlearn", "--phonons", "mdr/mp-149", "--upstream", "nothere.xyz"], "nothere.xyz"),
    # --- fit ----------------------------------------------------------------------------------
    ("fit-builtin-without-output", None, ["fit", "si-mlearn", SI_TEST], "built-in model"),
    ("fit-report-under-a-file", _file("blocker"), ["fit", "si-mlearn", SI_TEST, "-o", "m.npz", "--report", "blocker/r.json"], "--report"),
    ("fit-holdout-above-one", None, ["fit", "si-mlearn", SI_TEST, "-o", "m.npz", "--holdout", "1.5"], "--holdout"),
    ("fit-replaces-output", _file("m.npz"), ["fit", "si-mlearn", SI_TEST, "-o", "m.npz"], "use --force"),
    ("fit-replaces-report", _file("r.json", "{}"), ["fit", "si-mlearn", SI_TEST, "-o", "m.npz", "--report", "r.json"], "use --force"),
    ("fit-missing-data", None, ["fit", "si-mlearn", "nothere.extxyz", "-o", "m.npz"], "nothere.extxyz"),
    # --- the CLI itself -----------------------------------------------------------------------
    ("unknown-command", None, ["nothing"], "No such command"),
    ("missing-argument", None, ["hessian", "si-mlearn"], "Missing argument"),
]


def _snapshot(d: Path) -> dict:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(d.rglob("*"))}  # fmt: skip


def test_enough_rows():
    assert len(ROWS) >= 60 and len({r[0] for r in ROWS}) == len(ROWS)


@pytest.mark.parametrize("case", ROWS, ids=[r[0] for r in ROWS])
def test_bad_input_is_one_line_exit_2_nothing_written(case, tmp_path, monkeypatch):
    from pftlite.datasets import registry as datasets

    name, setup, argv, needle = case
    if any(a.startswith(("mdr/", "phono3py/", "phonopy/", "mlearn/")) for a in argv) and datasets.data_root() is None:
        pytest.skip("reference data not available")
    if setup:
        setup(tmp_path)
    before = _snapshot(tmp_path)
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, argv)
    out = res.output.strip()
    assert res.exit_code == 2, f"{name}: exit {res.exit_code}: {out[-600:]}"
    assert not isinstance(res.exception, Exception) or isinstance(res.exception, SystemExit), name
    assert "Traceback" not in out, out
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 1, f"{name}: {len(lines)} lines: {out[-600:]}"
    assert needle in lines[0], f"{name}: {lines[0]!r} lacks {needle!r}"
    assert _snapshot(tmp_path) == before, f"{name}: files changed"


def test_ctrl_c_says_how_to_resume(tmp_path, monkeypatch):
    """Ctrl-C in `tune`: exit 130 and a line telling the epoch the checkpoint holds and how to
    resume (the resume itself is tested bitwise in test_tune)."""
    import pftlite.training.tune as tune_mod
    from pftlite.datasets import registry as datasets

    if datasets.data_root() is None:
        pytest.skip("reference data not available")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tune_mod, "tune", interrupted)
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, ["tune", "-o", "run", "--upstream", SI_TEST, "--test", SI_TEST])
    assert res.exit_code == 130, res.output
    assert "rerun the same command to resume from epoch 1" in res.output


def test_an_all_zero_model_is_flagged_not_scored(tmp_path):
    """`pftlite init` with a linear readout gives all-zero weights: ω = 0 everywhere, which
    must be reported as a failure, not scored as a stable result."""
    from conftest import load_model

    from pftlite.datasets import registry as datasets
    from pftlite.datasets.phonopy_refs import load_reference
    from pftlite.phonons.mdr import PhononProtocol, model_properties

    if datasets.data_root() is None:
        pytest.skip("reference data not available")
    res = CliRunner().invoke(main, ["init", str(tmp_path / "zero.npz"), "-s", "Si", "--r-cut", "4",
                                    "--n-radial", "3", "--l-max", "2", "--n-radial-4b", "2", "--l-max-4b", "1"])  # fmt: skip
    assert res.exit_code == 0, res.output
    spec, params, _ = load_model(tmp_path / "zero.npz")
    props, fc, _ = model_properties(Potential(spec, params), "numba", load_reference("mdr/mp-149"), PhononProtocol(relax=None))
    assert props["status"] == "failed" and "all zero" in props["reason"] and fc is None
