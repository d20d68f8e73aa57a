"""The click CLI in-process (CliRunner): init, info, predict, hessian, and bad input."""

import json

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.io import read, write
from click.testing import CliRunner
from conftest import get_backend, load_model, random_params, save_model

from pftlite.cli import main
from pftlite.core.errors import DataUnavailable, InputError
from pftlite.datasets.registry import fetch
from pftlite.potentials.files import FORMAT_VERSION
from pftlite.structures.batch import make_batch


def run(*args):
    res = CliRunner().invoke(main, [str(a) for a in args])
    return res


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    path = d / "si.npz"
    res = run("init", path, "-s", "Si", "--r-cut", 4.0, "--n-radial", 4, "--l-max", 3,
              "--n-radial-4b", 2, "--l-max-4b", 2)  # fmt: skip
    assert res.exit_code == 0, res.output
    spec, params, meta = load_model(path)
    save_model(path, spec, random_params(spec, seed=5), meta)  # non-trivial weights
    return path


@pytest.fixture(scope="module")
def mp149():
    try:
        return fetch("mdr/mp-149")
    except DataUnavailable as exc:
        pytest.skip(str(exc))


def test_init_info(model_file):
    res = run("info", model_file, "--json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["spec"]["species"] == [14] and d["n_features"] > 0
    assert d["metadata"]["history"][0]["command"] == "init"
    assert run("init", model_file, "-s", "Si").exit_code == 2  # refuses to overwrite


@pytest.mark.parametrize("suffix", [".extxyz", ".json"])
def test_predict(model_file, tmp_path, suffix):
    a = bulk("Si", "diamond", 5.43) * (2, 1, 1)
    a.rattle(0.03, seed=1)
    write(tmp_path / "in.extxyz", a)
    out = tmp_path / f"out{suffix}"
    res = run("predict", model_file, tmp_path / "in.extxyz", "-o", out)
    assert res.exit_code == 0, res.output
    spec, params, _ = load_model(model_file)
    ref = get_backend("numba").energy_forces_stress(spec, params, make_batch([a], spec))
    if suffix == ".json":
        row = json.loads(out.read_text())["results"][0]
        e, f = row["energy_eV"], np.array(row["forces_eV_per_A"])
    else:
        b = read(out)
        e, f = b.get_potential_energy(), b.get_forces()
    assert e == pytest.approx(ref["energy"][0], rel=1e-10)
    np.testing.assert_allclose(f, ref["forces"], atol=1e-8)


@pytest.mark.parametrize("backend", ["numba", "jax"])
def test_hessian_phonopy_readable(model_file, mp149, tmp_path, backend):
    """FORCE_CONSTANTS from the MDR Si file's 2x2x2 supercell, read back by phonopy."""
    from phonopy.file_IO import parse_FORCE_CONSTANTS

    out = tmp_path / "FORCE_CONSTANTS"
    res = run("hessian", model_file, mp149, "-o", out, "--backend", backend)
    if backend == "jax" and res.exit_code == 2 and "jax" in res.output:
        pytest.skip(res.output)
    assert res.exit_code == 0, res.output
    assert "64 atoms" in res.output
    fc = parse_FORCE_CONSTANTS(str(out))
    assert fc.shape == (64, 64, 3, 3)
    np.testing.assert_allclose(fc.sum(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(fc, fc.transpose(1, 0, 3, 2), atol=1e-12)


def test_hessian_hint_runs_with_the_installed_phonopy(tmp_path):
    """The phonopy commands `pftlite hessian` prints work as printed (phonopy 4 moved -c to
    phonopy-init) and phonopy's frequencies from our FORCE_CONSTANTS are ours."""
    import shlex
    import subprocess

    from ase.build import bulk

    bulk("Si", "diamond", 5.43).write(tmp_path / "POSCAR", format="vasp")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        res = run("hessian", "si-mlearn", "POSCAR", "--dim", "2 2 2")
    assert res.exit_code == 0, res.output
    hint = res.output.strip().splitlines()[-1]
    cmds = hint.split(": ", 1)[1].split(" && ")
    assert cmds[0] == "phonopy-init -c POSCAR --dim 2 2 2 -d", hint
    for cmd in cmds:
        proc = subprocess.run(shlex.split(cmd), cwd=tmp_path, capture_output=True, text=True)
        assert proc.returncode == 0, (cmd, proc.stdout[-500:], proc.stderr[-500:])
    assert "Force constants were read from \"FORCE_CONSTANTS\"" in proc.stdout
    assert (tmp_path / "thermal_properties.yaml").is_file()


def test_dim_forms(tmp_path):
    from pftlite.cli.hessian import _dim

    assert _dim(()) is None
    assert _dim(("2 2 2",)).tolist() == np.diag([2, 2, 2]).tolist()
    assert _dim(("2", "2", "2")).tolist() == _dim(("2,2,2",)).tolist() == _dim(("2",)).tolist()
    assert _dim(("0 1 1 1 0 1 1 1 0",)).tolist() == [[0, 1, 1], [1, 0, 1], [1, 1, 0]]
    for bad in (("2 2",), ("a b c",), ("0 1 1",), ("1.5 1 1",)):
        with pytest.raises(InputError, match="--dim"):
            _dim(bad)


def _bad(tmp_path, name, atoms=None, text=None):
    p = tmp_path / name
    if text is not None:
        p.write_text(text)
    else:
        write(p, atoms)
    return p


BAD_STRUCTURES = {
    "unknown_species": lambda t: _bad(t, "o.extxyz", bulk("Cu", "fcc", 3.6)),
    "overlap": lambda t: _bad(t, "ov.extxyz", Atoms("Si2", positions=[[0, 0, 0], [0.05, 0, 0]], cell=np.eye(3) * 5, pbc=True)),
    "empty": lambda t: _bad(t, "empty.extxyz", text='0\nLattice="5 0 0 0 5 0 0 0 5" Properties=species:S:1:pos:R:3 pbc="T T T"\n'),
    "non_periodic": lambda t: _bad(t, "np.xyz", Atoms("Si2", positions=[[0, 0, 0], [2.3, 0, 0]])),
    "nan": lambda t: _bad(t, "nan.extxyz", text='1\nLattice="5 0 0 0 5 0 0 0 5" Properties=species:S:1:pos:R:3 pbc="T T T"\nSi nan 0.0 0.0\n'),
    "garbage": lambda t: _bad(t, "junk.extxyz", text="this is not a structure file\n"),
}


@pytest.mark.parametrize("case", list(BAD_STRUCTURES))
def test_bad_structures(model_file, tmp_path, case):
    path = BAD_STRUCTURES[case](tmp_path)
    out = tmp_path / "never.json"
    res = run("predict", model_file, path, "-o", out)
    assert res.exit_code == 2, res.output
    assert res.output.startswith("error: ") and res.output.count("\n") == 1, res.output
    assert "Traceback" not in res.output
    assert not out.exists() and not list(tmp_path.glob(".never*"))


def test_bad_model_files(model_file, tmp_path):
    a = _bad(tmp_path, "si.extxyz", bulk("Si", "diamond", 5.43))
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(model_file.read_bytes()[:200])
    cases = {corrupt: "not a pftlite model", tmp_path / "missing.npz": "not found"}
    # wrong version
    spec, params, meta = load_model(model_file)
    import pftlite.potentials.files as m

    old = m.FORMAT_VERSION
    try:
        m.FORMAT_VERSION = FORMAT_VERSION + 1
        save_model(tmp_path / "future.npz", spec, params, meta)
    finally:
        m.FORMAT_VERSION = old
    cases[tmp_path / "future.npz"] = "version"
    for path, words in cases.items():
        res = run("predict", path, a)
        assert res.exit_code == 2 and words in res.output and res.output.count("\n") == 1, res.output


def test_unknown_backend(model_file, tmp_path):
    a = _bad(tmp_path, "si.extxyz", bulk("Si", "diamond", 5.43))
    res = run("predict", model_file, a, "--backend", "torch")
    assert res.exit_code == 2 and "unknown backend" in res.output


def test_fit_command(tmp_path):
    try:
        fetch("mlearn/Si_test")
    except DataUnavailable as exc:
        pytest.skip(str(exc))
    model = tmp_path / "si.npz"
    assert run("init", model, "-s", "Si", "--n-radial", 4, "--l-max", 3, "--n-radial-4b", 2).exit_code == 0
    report = tmp_path / "errors.json"
    res = run("fit", model, "mlearn/Si_test", "--test", "mlearn/Si_test", "--report", report)
    assert res.exit_code == 0, res.output
    rows = json.loads(report.read_text())
    assert rows["train"]["forces"]["mae"] < 0.2 and rows["test"] == rows["train"]
    _, _, meta = load_model(model)
    assert meta["history"][-1]["command"] == "fit"
    # an MLP model is fitted by gradient from the least-squares start (one epoch here)
    mlp = tmp_path / "mlp.npz"
    assert run("init", mlp, "-s", "Si", "--readout", "mlp", "--n-radial", 4, "--l-max", 3,
               "--n-radial-4b", 2).exit_code == 0  # fmt: skip
    res = run("fit", mlp, "mlearn/Si_test", "--epochs", 1, "--run-dir", tmp_path / "r")
    assert res.exit_code == 0, res.output
    assert load_model(mlp)[2]["history"][-1]["gradient"]


def test_builtin_model_main_job(mp149, tmp_path):
    """The README's main job: exact force constants of DFT Si with the built-in base model,
    compared with the DFT force constants stored in the MDR file."""
    import phonopy

    out = tmp_path / "FORCE_CONSTANTS"
    res = run("hessian", "si-mlearn", "mdr/mp-149", "-o", out)
    assert res.exit_code == 0, res.output
    from phonopy.file_IO import parse_FORCE_CONSTANTS

    fc = parse_FORCE_CONSTANTS(str(out))
    ph = phonopy.load(mp149, produce_fc=True, symmetrize_fc=True, is_compact_fc=False)
    rmse = np.sqrt(((fc - ph.force_constants) ** 2).mean())
    assert rmse < 0.1, rmse  # eV/Å²; DFT fc rms is ~1.1
    ph.run_qpoints([[0, 0, 0]])
    w_dft = ph.qpoints.frequencies[0][-1]
    ph.force_constants = fc
    ph.run_qpoints([[0, 0, 0]])
    assert abs(ph.qpoints.frequencies[0][-1] - w_dft) < 1.5  # THz, base model before tuning


def test_epoch_bar_advances_every_step_and_resumes(monkeypatch):
    """The tune/fit progress bar counts steps of all epochs; a run resumed at epoch 2 starts at
    epoch 1's last step, and the text names epoch, step and the latest loss."""
    import click

    from pftlite.cli import common

    seen = []

    class Recorder:
        def __init__(self, length, **kw):
            seen.append(("length", length))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            seen.append(("closed", None))

        def update(self, n, text):
            seen.append((n, text))

    monkeypatch.setattr(click, "progressbar", Recorder)
    monkeypatch.setattr(common, "_stderr_is_tty", lambda: True)
    with common.epoch_bar("tuning", 3, lambda row: f"hessian {row['hessian']:.2f}") as progress:
        for epoch in (2, 3):
            for step in range(4):
                progress(epoch, step, 4, {"hessian": 0.5 + epoch})
    assert seen[0] == ("length", 12) and seen[-1] == ("closed", None)
    steps = [n for n, _ in seen[1:-1]]
    assert steps == [5, 1, 1, 1, 1, 1, 1, 1] and sum(steps) == 12
    assert seen[-2][1] == "epoch 3 step 4/4 hessian 3.50"


def test_progress_is_plain_lines_when_stderr_is_not_a_terminal(monkeypatch, capsys):
    """In a log file or a pipe (click draws nothing there until the end) a bar is one line at
    the first update, at the last, and at most every 30 s between; the remaining time comes
    from the updates after the first, which may hold compilation or resumed steps."""
    from pftlite.cli import common

    now = [100.0]
    monkeypatch.setattr(common, "_stderr_is_tty", lambda: False)
    assert isinstance(common.progress_line_or_bar(10, "tuning"), common.LineProgress)
    with common.LineProgress(10, "tuning", clock=lambda: now[0]) as bar:
        now[0] += 50  # first update: compile + resumed steps
        bar.update(3, "epoch 1 step 3/5")
        for k in range(6):
            now[0] += 10
            bar.update(1, f"step {k}")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "tuning: 3/10 epoch 1 step 3/5 (50 s)"
    # 30 s after the first line, 3 steps in 30 s: 4 steps left -> ~40 s
    assert lines[1] == "tuning: 6/10 step 2 (80 s, ~40 s left)"
    assert lines[2:] == ["tuning: 9/10 step 5 (110 s, ~10 s left)"]
    with common.progress_line_or_bar(2, "phonons") as b2:
        b2.update(1)
        b2.update(1, "done")  # the last update always prints, without an estimate
    assert capsys.readouterr().err.splitlines()[-1].startswith("phonons: 2/2 done (")
