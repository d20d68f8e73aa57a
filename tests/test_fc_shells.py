"""Force-constant errors by neighbour shell: sum rules, shares, and diamond's Γ optical mode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import data_path

from pftlite.phonons.shells import format_shell_table, shell_table, shells

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def si_fc():
    """DFT supercell (Si mp-149, 64 atoms), its fc, and si-mlearn's exact Hessian there."""
    from conftest import get_backend, load_model

    from pftlite.datasets.phonopy_refs import load_reference
    from pftlite.structures.batch import make_batch
    from pftlite.training.tune import phonon_items

    item = phonon_items([load_reference(data_path("mdr/mp-149"))])[0]
    spec, params, _ = load_model(ROOT / "pftlite/data/si-mlearn.npz")
    fc_model = np.asarray(get_backend("numba").hessian(spec, params, make_batch([item.atoms], spec)))
    return item.atoms, item.fc, fc_model


def test_diamond_shells():
    from ase.build import bulk

    atoms = bulk("Si", "diamond", 5.43, cubic=True).repeat(3)  # 216 atoms, shells unaliased to 8.1 Å
    sh = shells(atoms, 0)
    assert [len(ix) for _, ix in sh[:6]] == [1, 4, 12, 12, 6, 12]
    a = 5.43
    want = a * np.sqrt([0, 3 / 16, 1 / 2, 11 / 16, 1, 19 / 16])
    assert np.allclose([r for r, _ in sh[:6]], want, atol=1e-9)
    assert sum(len(ix) for _, ix in sh) == len(atoms)


def test_shell_sums_obey_the_acoustic_sum_rule_and_shares_add_up(si_fc):
    atoms, fc_dft, fc_model = si_fc
    rows = shell_table(atoms, fc_model, fc_dft)
    assert sum(r["n"] for r in rows) == len(atoms)  # one irreducible atom in diamond
    assert abs(sum(r["sum_diag_ref"] for r in rows)) < 1e-8
    assert abs(sum(r["sum_diag"] for r in rows)) < 1e-8
    assert np.isclose(sum(r["share"] for r in rows), 1.0, atol=1e-8)
    # the shells' squared errors rebuild the whole fc RMSE
    mse = sum(r["orbit"] * r["n"] * 9 * r["rmse"] ** 2 for r in rows) / fc_dft.size
    assert np.isclose(np.sqrt(mse), np.sqrt(((fc_model - fc_dft) ** 2).mean()), rtol=1e-10)
    self_row = rows[0]
    assert self_row["distance"] == 0.0 and self_row["n"] == 1
    assert "| 0 | 1 | 2.37 | 4 |" in format_shell_table(rows)
    own = shell_table(atoms, fc_dft, fc_dft)
    assert all(r["rmse"] == 0.0 for r in own)


def test_gamma_optical_frequency_from_the_other_sublattice_shells(si_fc):
    """Diamond: m ω²(Γ optical) = −2 Σ_{j in the other sublattice} Φ_0j^xx — shells 1, 3, 5, 7
    (2.37, 4.53, 5.96, 7.10 Å); checked against phonopy's Γ frequencies from the same fc."""
    from ase import units

    from pftlite.datasets.phonopy_refs import load_reference
    from pftlite.phonons.force_constants import make_phonopy

    atoms, fc_dft, _ = si_fc
    rows = shell_table(atoms, fc_dft)
    other = [r for r in rows if r["shell"] in (1, 3, 5, 7)]
    assert [r["n"] for r in other] == [4, 12, 12, 4]
    m = atoms.get_masses()[0]
    thz = np.sqrt(units._e / (1e-20 * units._amu)) / (2 * np.pi) / 1e12  # sqrt(eV/Å²/amu) -> THz
    nu = np.sqrt(-2 * sum(r["sum_diag"] for r in other) / m) * thz
    ref = load_reference(data_path("mdr/mp-149"))
    ph = make_phonopy(ref.unitcell, ref.supercell_matrix, ref.primitive_matrix)
    ph.force_constants = fc_dft
    ph.run_qpoints([[0, 0, 0]])
    assert np.isclose(nu, ph.qpoints.frequencies[0].max(), rtol=1e-6)


def test_shape_mismatch_is_an_error(si_fc):
    atoms, fc_dft, _ = si_fc
    with pytest.raises(ValueError, match="shell_table"):
        shell_table(atoms, fc_dft[:10, :10])
