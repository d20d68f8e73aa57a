"""Kill tests: SIGKILL each writer (hessian, phonons, kappa, fit, tune) at a seeded random
moment, then every file it left is complete (JSON parses, npz loads, FORCE_CONSTANTS reads,
PNG is whole; at most hidden ``.*.tmp`` leftovers), and a rerun of the same command completes
and leaves no temporary file behind.

Each writer runs as a real subprocess (the CLI as a user starts it), so these tests cost a few
seconds each; the commands are the smallest real ones (DFT Si/mp-149 data, small meshes).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from pftlite.datasets import registry as datasets

TUNE_CFG = 'epochs = 3\nsteps-per-epoch = 2\nk_upstream = 1\nupstream = ["mlearn/Si_test"]\ntest = []\n'

WRITERS = {
    "hessian": (["hessian", "si-mlearn", "mdr/mp-149", "-o", "FORCE_CONSTANTS", "--force"], None),
    "phonons": (["phonons", "si-mlearn", "mdr/mp-149", "-o", "ph"], None),  # json + summary files
    "kappa": (["kappa", "--dft-only", "phono3py/Si-PBEsol", "--mesh", "5", "--no-isotope", "--no-wigner",
               "-o", "k", "--overwrite"], None),  # fmt: skip
    "fit": (["fit", "small.npz", "mlearn/Si_test", "-o", "m.npz", "--report", "r.json", "--force"], None),
    "tune": (["tune", "--config", "cfg.toml", "-o", "run", "--no-evaluate"], TUNE_CFG),
}


def _complete(path: Path) -> None:
    """Raise if ``path`` is not a complete file of its kind."""
    name = path.name
    if name.endswith(".json"):
        json.loads(path.read_text())
    elif name.endswith(".npz"):
        with np.load(path, allow_pickle=False) as z:
            for k in z.files:
                z[k]
    elif name == "FORCE_CONSTANTS":
        from phonopy.file_IO import parse_FORCE_CONSTANTS

        parse_FORCE_CONSTANTS(str(path))
    elif name.endswith(".png"):
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[-8:-4] == b"IEND", name
    elif name.endswith(".csv"):
        lines = path.read_text().splitlines()
        assert lines and all(ln.count(",") == lines[0].count(",") for ln in lines), name


def _check_folder(d: Path, allow_tmp: bool) -> list[str]:
    tmps = []
    for p in sorted(d.rglob("*")):
        if not p.is_file() or p.name in ("cfg.toml", "small.npz"):
            continue
        if p.name.startswith(".") and p.name.endswith(".tmp"):
            tmps.append(str(p.relative_to(d)))
            continue
        _complete(p)
    assert allow_tmp or not tmps, f"temporary files left after a completed run: {tmps}"
    return tmps


def _pftlite() -> list[str]:
    """The console script a user runs (beside this Python), else the module's entry point."""
    script = Path(sys.executable).parent / "pftlite"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from pftlite.cli import main; main()"]


def _run(args, cwd, timeout=300):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([*_pftlite(), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_sigkill_leaves_no_partial_file_and_a_rerun_completes(writer, tmp_path):
    if datasets.data_root() is None:
        pytest.skip("reference data not available")
    args, cfg = WRITERS[writer]
    if cfg:
        (tmp_path / "cfg.toml").write_text(cfg)
    if writer == "fit":  # a small model: the test is about the writer, not the fit
        from click.testing import CliRunner

        from pftlite.cli import main

        res = CliRunner().invoke(main, ["init", str(tmp_path / "small.npz"), "-s", "Si", "--r-cut", "4",
                                        "--n-radial", "3", "--l-max", "2", "--n-radial-4b", "2", "--l-max-4b", "1"])  # fmt: skip
        assert res.exit_code == 0, res.output
    rng = np.random.default_rng(zlib.crc32(writer.encode()))
    delay = float(rng.uniform(0.0, 0.3))  # seconds after its first file appears: while writing
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen([*_pftlite(), *args], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip

    def outputs():
        return [p for p in tmp_path.rglob("*") if p.is_file() and p.name not in ("cfg.toml", "small.npz")]

    t0 = time.monotonic()
    while proc.poll() is None and not outputs() and time.monotonic() - t0 < 240:
        time.sleep(0.005)
    time.sleep(delay)
    killed = proc.poll() is None  # a very fast machine may finish first: then the files must be whole too
    if killed:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not killed or proc.returncode == -signal.SIGKILL
    assert outputs() or not killed, f"{writer}: killed before it wrote anything"
    left = _check_folder(tmp_path, allow_tmp=True)
    files = sorted(str(p.relative_to(tmp_path)) for p in outputs())
    print(f"{writer}: {'killed' if killed else 'finished'} {delay:.2f} s after its first file; left {files} "
          f"(temporary: {left})")  # fmt: skip
    res = _run(args, tmp_path)
    assert res.returncode == 0, f"{writer} rerun failed: {res.stderr[-800:]}"
    _check_folder(tmp_path, allow_tmp=False)
