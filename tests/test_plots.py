"""Band path / bands / DOS / plot on the real MDR DFT phonons of Si (mp-149)."""

from __future__ import annotations

import sys
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

from pftlite.core.errors import InputError
from pftlite.datasets.registry import local_path
from pftlite.phonons.plots import band_path, phonon_bands, phonon_dos, plot_bands_dos


@pytest.fixture(scope="module")
def ph():
    path = local_path("mdr/mp-149")
    if path is None:
        pytest.skip("mdr/mp-149 not available locally")
    phonopy = pytest.importorskip("phonopy")
    return phonopy.load(path, log_level=0)


def _freqs(ph, q) -> np.ndarray:
    """phonopy's own frequencies (THz) at reduced q of the primitive reciprocal lattice."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return np.asarray(ph.get_frequencies(np.asarray(q, float)))


def test_band_path_fcc_primitive_basis(ph):
    # conventional 8-atom cell, primitive_matrix [[0,.5,.5],[.5,0,.5],[.5,.5,0]] → fcc primitive
    assert np.allclose(ph.primitive_matrix, [[0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    bp = band_path(ph, npoints=11)
    assert bp["path"] == "GXWKGLUWLK,UX"
    assert len(bp["segments"]) == len(bp["labels"]) == 10  # 9 + 1 after the ',' break
    assert ("K", "U") not in bp["labels"]  # the break is not a segment
    assert all(s.shape == (11, 3) for s in bp["segments"])
    ends = {}
    for (a, b), s in zip(bp["labels"], bp["segments"]):
        ends.setdefault(a, s[0]), ends.setdefault(b, s[-1])
    assert np.allclose(ends["G"], [0, 0, 0])
    assert np.allclose(ends["X"], [0.5, 0.0, 0.5])
    assert np.allclose(ends["L"], [0.5, 0.5, 0.5])
    # the basis check: in Cartesian (1/Å, no 2π) ase's X is (0, 1/a, 0) of the conventional a,
    # and phonopy's frequencies there equal those at its own X = (1/2, 0, 1/2)
    a = ph.unitcell.cell[0, 0]
    x_cart = ends["X"] @ np.linalg.inv(ph.primitive.cell).T
    assert np.allclose(np.sort(np.abs(x_cart)), [0, 0, 1 / a])
    assert np.allclose(_freqs(ph, ends["X"]), _freqs(ph, [0.5, 0, 0.5]), atol=1e-8)


def test_band_path_nonstandard_cell(ph):
    # a skewed (unimodular-transformed) primitive cell: ase's special points come back in ITS
    # reduced basis; mapped to phonopy's basis they give the same X/L/W frequencies
    cell = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 1]]) @ ph.primitive.cell
    bp = band_path(SimpleNamespace(primitive=SimpleNamespace(cell=cell)), npoints=2)
    ref = band_path(ph, npoints=2)
    to_std = np.linalg.inv(cell).T @ ph.primitive.cell.T
    for s, s0 in zip(bp["segments"], ref["segments"]):
        for i in (0, -1):
            assert np.allclose(_freqs(ph, s[i] @ to_std), _freqs(ph, s0[i]), atol=1e-6)


def test_phonon_bands_match_phonopy(ph):
    bp = band_path(ph, npoints=7)
    bands = phonon_bands(ph, bp)
    assert len(bands["distances"]) == len(bands["frequencies"]) == len(bp["segments"])
    assert bands["frequencies"][0].shape == (7, 6)
    d = bands["distances"]
    assert d[0][0] == 0.0
    for k in range(len(d) - 1):  # continuous and increasing, also across the break
        assert d[k + 1][0] == pytest.approx(d[k][-1])
        assert np.all(np.diff(d[k]) > 0)
    assert np.allclose(bands["frequencies"][0][0], _freqs(ph, [0, 0, 0]), atol=1e-6)  # Γ
    for s, f in zip(bp["segments"], bands["frequencies"]):
        assert np.allclose(f[0], _freqs(ph, s[0]), atol=1e-6)
        assert np.allclose(f[-1], _freqs(ph, s[-1]), atol=1e-6)


def test_dos_normalisation(ph):
    f, g = phonon_dos(ph, mesh=(16, 16, 16))
    assert f.shape == g.shape and np.all(np.diff(f) > 0)
    n_modes = 3 * len(ph.primitive)
    assert n_modes == 6
    assert np.trapezoid(g, f) == pytest.approx(n_modes, rel=0.02)


def test_plot_bands_dos_png(ph, tmp_path):
    pytest.importorskip("matplotlib")
    from phonopy import Phonopy

    ph2 = Phonopy(
        ph.unitcell, supercell_matrix=ph.supercell_matrix, primitive_matrix=ph.primitive_matrix
    )
    ph2.force_constants = 0.9 * np.asarray(ph.force_constants)
    out = tmp_path / "sub" / "bands.png"
    plot_bands_dos(
        {"DFT": ph, "scaled": ph2}, out, title="Si mp-149",
        styles={"scaled": {"linestyle": "--"}}, npoints=11, dos_mesh=(12, 12, 12),
    )  # fmt: skip
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["bands.png"]  # no temp file left


def test_missing_matplotlib(ph, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(InputError, match="pip install matplotlib"):
        plot_bands_dos({"DFT": ph}, tmp_path / "x.png")
    assert not any(tmp_path.iterdir())


def _kappa_like(seed: int, nq: int = 30, nb: int = 6, zz: float = 1.0) -> dict:
    """A KappaResult-like dict with random positive modes (tensors diag(1, 1, zz) per mode)."""
    rng = np.random.default_rng(seed)
    weights = rng.integers(1, 9, size=nq)
    freqs = np.sort(rng.uniform(0.0, 12.0, size=(nq, nb)), axis=1)
    mode = rng.uniform(0.0, 5.0, size=(1, nq, nb))
    tens = mode[..., None, None] * np.diag([1.0, 1.0, zz])
    return {
        "temperatures": [300.0], "weights": weights, "frequencies": freqs,
        "mode_kappa_P": 0.8 * tens, "mode_kappa_C": 0.2 * tens,
        "kappa": tens.sum((1, 2)) / weights.sum(),
    }  # fmt: skip


def test_plot_kappa_cumulative_png(tmp_path):
    pytest.importorskip("matplotlib")
    from pftlite.kappa.plots import plot_kappa_cumulative

    reduced = _kappa_like(0)  # the DFT reference form: only the mean of the diagonal per mode
    tens = reduced.pop("mode_kappa_P") + reduced.pop("mode_kappa_C")
    reduced["mode_kappa_tot_ave"] = np.trace(tens, axis1=-2, axis2=-1) / 3
    out = tmp_path / "sub" / "kappa.png"
    plot_kappa_cumulative({"DFT": reduced, "model": _kappa_like(1, zz=0.4)}, out, title="test")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["kappa.png"]  # no temp file left
    with pytest.raises(ValueError):
        plot_kappa_cumulative({}, tmp_path / "empty.png")
    assert not (tmp_path / "empty.png").exists()


def test_plot_kappa_cumulative_needs_matplotlib(tmp_path, monkeypatch):
    from pftlite.kappa.plots import plot_kappa_cumulative

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(InputError, match="pip install matplotlib"):
        plot_kappa_cumulative({"x": _kappa_like(0)}, tmp_path / "x.png")
    assert not any(tmp_path.iterdir())
