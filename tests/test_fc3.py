"""Tests for pftlite.datasets.phono3py_refs (phono3py DFT readers) and pftlite.kappa.fc3 (fc3 solver, model fc3).

phono3py is the independent oracle (test-only dependency). Real files come from the staged data
root; a missing file skips the test. Damaged inputs are edited copies written to ``tmp_path``.
"""

from __future__ import annotations

import lzma
import shutil
import warnings

import numpy as np
import pytest
from ase.build import bulk
from conftest import random_params, small_spec

from pftlite.core.errors import InputError
from pftlite.datasets import registry as datasets
from pftlite.datasets.phono3py_refs import (
    Phono3pyReference,
    displaced_supercells,
    load_fc3_reference,
    perfect_supercell,
    phonon_reference,
)
from pftlite.kappa import fc3 as F
from pftlite.phonons.force_constants import make_phonopy
from pftlite.potentials.base import Potential

phono3py = pytest.importorskip("phono3py")


def ref(name: str) -> Phono3pyReference:
    """A registered phono3py reference, or skip."""
    try:
        key = next(k for k in datasets.DATASETS if k.startswith(f"phono3py/{name}/"))
        if not datasets.available(key):
            pytest.skip(f"dataset phono3py/{name} not staged locally")
    except StopIteration:
        pytest.skip(f"dataset phono3py/{name} not registered")
    return load_fc3_reference(f"phono3py/{name}")


def oracle(r: Phono3pyReference):
    """A phono3py.Phono3py on the same cells holding the same dataset (forces)."""
    ph3 = F.make_fc3_phonopy(r)
    P = phono3py.Phono3py(
        ph3.unitcell, supercell_matrix=r.supercell_matrix, primitive_matrix=r.primitive_matrix,
        log_level=0,
    )  # fmt: skip
    P.dataset = r.dataset
    return ph3, P


# ------------------------------------------------------------------------------------------
# reader
# ------------------------------------------------------------------------------------------


def test_reader_si_and_nacl():
    si = ref("Si-PBEsol")
    assert si.name == "Si-PBEsol" and si.n_displacements == (1, 110) and si.n_supercell == 64
    assert si.phonon_dataset is None and si.nac_params is None
    assert np.array_equal(si.phonon_supercell_matrix, si.supercell_matrix)
    assert len(si.files) == 2 and si.files[1].endswith("FORCES_FC3")
    sc = perfect_supercell(si)
    ph = make_phonopy(si.unitcell, si.supercell_matrix, si.primitive_matrix)
    assert np.allclose(sc.positions, ph.supercell.positions) and np.allclose(
        sc.get_masses(), 28.0855
    )
    cells = displaced_supercells(si)
    assert len(cells) == 111 and [c.info["kind"] for c in cells[:2]] == ["fc3-single", "fc3-pair"]
    d1 = si.dataset["first_atoms"][0]
    d2 = d1["second_atoms"][5]
    expected = sc.positions.copy()
    expected[d1["number"]] += d1["displacement"]
    expected[d2["number"]] += d2["displacement"]
    assert np.allclose(cells[6].positions, expected, atol=1e-12)
    assert np.array_equal(cells[6].get_forces(), d2["forces"])
    pr = phonon_reference(si)
    assert pr.n_supercell == 64 and len(pr.dataset["first_atoms"]) == 1

    nacl = ref("NaCl-222")
    assert nacl.n_displacements == (2, 144) and nacl.nac_params["born"].shape == (2, 3, 3)
    assert abs(nacl.nac_params["factor"] - 14.399652) < 1e-6


def test_reader_matches_phono3py_forces():
    r = ref("Si-111-222-fd")  # fc3 1x1x1, fc2 2x2x2, energies in the file
    assert r.n_supercell == 8 and r.n_phonon_supercell == 64
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        P = phono3py.load(r.source, produce_fc=False, log_level=0)
    for a, b in zip(P.dataset["first_atoms"], r.dataset["first_atoms"], strict=True):
        assert a["number"] == b["number"] and np.array_equal(a["forces"], b["forces"])
        for x, y in zip(a["second_atoms"], b["second_atoms"], strict=True):
            assert x["number"] == y["number"] and np.array_equal(x["forces"], y["forces"])
            assert np.allclose(x["displacement"], y["displacement"], atol=1e-14)
    for a, b in zip(P.phonon_dataset["first_atoms"], r.phonon_dataset["first_atoms"], strict=True):
        assert np.array_equal(a["forces"], b["forces"])
    pr = phonon_reference(r)
    assert pr.n_supercell == 64
    cells = displaced_supercells(r)
    assert len(cells) == 1 + 15 + 1 and cells[-1].info["kind"] == "fc2"
    assert cells[0].get_potential_energy() == pytest.approx(-43.35097603)


def _copy_si(tmp_path):
    src = ref("Si-PBEsol")
    for f in src.files:
        shutil.copy(f, tmp_path)
    return tmp_path / "phono3py_disp.yaml", tmp_path / "FORCES_FC3"


def _edit_lines(path, fn):
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(fn(lines)))


def _forces_lines(lines):
    return [i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")]


BAD = {
    "truncated yaml": ("yaml", lambda s: s[: len(s) // 3], "truncated"),
    "no supercell_matrix": (
        "yaml",
        lambda s: s.replace("supercell_matrix:", "supercel_matrix:"),
        "supercell_matrix",
    ),
    "short FORCES_FC3": ("forces", lambda lines: lines[:-64], "110 blocks"),
    "NaN force": ("forces", lambda lines: [*lines[:5], "  nan 0.0 0.0\n", *lines[6:]], "NaN"),
    "2-column force": (
        "forces",
        lambda lines: [*lines[:5], "  0.1 0.2\n", *lines[6:]],
        "expected 3 numbers",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_reader_bad_inputs(tmp_path, case):
    yaml_path, forces_path = _copy_si(tmp_path)
    which, edit, needle = BAD[case]
    if which == "yaml":
        yaml_path.write_text(edit(yaml_path.read_text()))
        named = yaml_path
    else:
        _edit_lines(forces_path, edit)
        named = forces_path
    with pytest.raises(InputError) as exc:
        load_fc3_reference(tmp_path)
    msg = str(exc.value)
    assert "\n" not in msg and str(named) in msg and needle in msg, msg


def test_reader_bad_yaml_forces_and_type2(tmp_path):
    r = ref("Si-111-222-fd")
    with lzma.open(r.source, "rt") as f:
        text = f.read()
    i = text.index("  forces:\n", text.index("displacement_pairs:"))
    j = text.index("\n", text.index("  - [", i))
    bad = tmp_path / "phono3py_params.yaml"
    bad.write_text(text[:j] + "\n  - [ 0.1, 0.2, 0.3 ]" + text[j:])  # 9 force rows for 8 atoms
    with pytest.raises(InputError, match=r"displacement_pairs\[0\]\.forces has shape \(9, 3\)"):
        load_fc3_reference(bad)
    if datasets.available("phono3py/MgO-222rd-444rd/phono3py_params_MgO-222rd-444rd.yaml.xz"):
        with pytest.raises(InputError, match="random-displacement"):
            load_fc3_reference("phono3py/MgO-222rd-444rd")


# ------------------------------------------------------------------------------------------
# displacements and the finite-difference solver vs phono3py
# ------------------------------------------------------------------------------------------


def _same_dataset(a, b) -> bool:
    for x, y in zip(a["first_atoms"], b["first_atoms"], strict=True):
        if x["number"] != y["number"] or not np.allclose(x["displacement"], y["displacement"]):
            return False
        pairs = zip(x["second_atoms"], y["second_atoms"], strict=True)
        if not all(
            p["number"] == q["number"] and np.allclose(p["displacement"], q["displacement"])
            for p, q in pairs
        ):
            return False
    return True


@pytest.mark.parametrize(
    ("name", "count"), [("Si-PBEsol", 111), ("NaCl-222", 146), ("AlN-LDA-dimfc2", 1254)]
)
def test_displacements_equal_phono3py(name, count):
    r = ref(name)  # AlN-LDA-dimfc2 has the 3x3x2 fc3 supercell of AlN-LDA-332
    ph3, P = oracle(r)
    mine = F.third_order_displacements(ph3, 0.03)
    P.generate_displacements(distance=0.03)
    assert F.count_supercells(mine) == F.count_supercells(P.dataset) == count
    assert _same_dataset(mine, P.dataset) and _same_dataset(mine, r.dataset)


@pytest.mark.parametrize("name", ["Si-PBEsol", "NaCl-222"])
def test_dft_fc3_equals_phono3py_traditional(name):
    r = ref(name)
    ph3, P = oracle(r)
    mine = F.solve_fc3(ph3, r.dataset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        P.produce_fc3(fc_calculator="traditional")  # no symfc projector
    assert mine.shape == P.fc3.shape == (2, 64, 64, 3, 3, 3)
    assert np.abs(mine - P.fc3).max() < 1e-10
    sym = F.symmetrize_fc3(mine, ph3)
    P.symmetrize_fc3()  # traditional iteration, level 3
    assert np.abs(sym - P.fc3).max() < 1e-6 * np.abs(P.fc3).max()
    inv0, inv = F.fc3_invariance(mine, ph3), F.fc3_invariance(sym, ph3)
    assert inv0["translation_j"] > 1e-3 and inv0["permutation"] > 1e-3  # raw fc3 is not invariant
    assert (
        inv["translation"] < 1e-10 and inv["translation_j"] < 1e-10 and inv["permutation"] < 1e-10
    )


def test_compact_full_conversions():
    from phono3py.phonon3.fc3 import compact_fc3_to_full_fc3

    r = ref("Si-111-222-fd")
    ph3, P = oracle(r)
    fc3 = F.solve_fc3(ph3, r.dataset)
    full = F.compact_to_full(fc3, ph3)
    assert np.abs(full - compact_fc3_to_full_fc3(P.primitive, fc3)).max() < 1e-12
    assert np.array_equal(F.full_to_compact(full, ph3), fc3)


def test_reference_fc3_tiny():
    r = ref("Si-111-222-fd")
    fc2, fc3, info = F.reference_fc3(r)
    assert fc2.shape == (64, 64, 3, 3) and fc3.shape == (2, 8, 8, 3, 3, 3)
    assert info["fc2_supercell_matrix"] == [[2, 0, 0], [0, 2, 0], [0, 0, 2]]
    assert info["n_fc3_supercells"] == 16 and info["invariance"]["translation"] < 1e-10
    assert np.abs(fc2.sum(axis=1)).max() < 1e-10  # symmetrized fc2: acoustic sum rule
    assert 10 < np.abs(fc3).max() < 100  # eV/Å³, Si


# ------------------------------------------------------------------------------------------
# model third derivatives
# ------------------------------------------------------------------------------------------


def _si_cell(n=1, rattle=True):
    a = bulk("Si", "diamond", 5.43, cubic=True) * (n, n, n)
    if rattle:
        a.rattle(0.03, seed=4)
    return a


def test_hvp_derivative_backends_and_forces(numba_backend, jax_backend):
    from pftlite.structures.batch import make_batch

    spec = small_spec()
    p = random_params(spec)
    a = _si_cell(1)
    b = make_batch([a], spec)
    N = len(a)
    rng = np.random.default_rng(7)
    u = np.zeros((N, 3))
    u[3] = rng.normal(size=3)
    u /= np.linalg.norm(u)
    V = rng.normal(size=(4, N, 3))
    exact = jax_backend.hvp_derivative(spec, p, b, u, V)
    fd = numba_backend.hvp_derivative(spec, p, b, u, V, h=1e-3)
    scale = np.abs(exact).max()
    assert scale > 1e-4
    assert np.abs(fd - exact).max() < 1e-5 * scale
    assert (
        np.abs(jax_backend.hvp_derivative(spec, p, b, u, V, h=0.5) - exact).max() == 0.0
    )  # h ignored

    def forces(x):
        return numba_backend.energy_forces_stress(
            spec, p, make_batch([(x, a.numbers, a.cell[:])], spec)
        )["forces"]

    h, x, v = 1e-3, a.positions, V[1]
    d2f = -(
        forces(x + h * u + h * v)
        - forces(x + h * u - h * v)
        - forces(x - h * u + h * v)
        + forces(x - h * u - h * v)
    )
    assert np.abs(d2f / (4 * h * h) - exact[1]).max() < 1e-4 * scale


@pytest.fixture(scope="module")
def si16():
    spec = small_spec()
    p = random_params(spec)
    ph3 = make_phonopy(bulk("Si", "diamond", 5.43), np.eye(3, dtype=int) * 2, np.eye(3))
    return spec, p, ph3


def test_model_fc3_methods_agree(si16, numba_backend, jax_backend):
    spec, p, ph3 = si16
    exact, info = F.model_fc3(Potential(spec, p), "jax", ph3, method="exact")
    assert info["method"] == "exact" and "exact" in info["derivative"] and info["column_symmetry"]
    scale = np.abs(exact).max()
    assert scale > 1e-4
    # site symmetry of the displaced atom that keeps the direction: one atom's columns per orbit,
    # rotated onto the rest = all 3N = 48 columns, to rounding
    every, info_all = F.model_fc3(Potential(spec, p), "jax", ph3, method="exact", column_symmetry=False)
    assert info_all["n_evaluations"] == 48 and info["n_evaluations"] < 48
    assert np.abs(every - exact).max() < 1e-12 * scale
    for be in (numba_backend, jax_backend):
        fd, info = F.model_fc3(Potential(spec, p), be.NAME, ph3, method="hvp-fd", h=1e-3)
        assert info["h"] == 1e-3 and "finite difference" in info["derivative"]
        assert np.abs(fd - exact).max() < 1e-5 * scale
    assert F.model_fc3(Potential(spec, p), "numba", ph3)[1]["method"] == "hvp-fd"  # numba default
    errs = []
    for d in (0.03, 0.015):
        disp, info = F.model_fc3(Potential(spec, p), "numba", ph3, method="displacement", distance=d)
        errs.append(np.abs(disp - exact).max() / scale)
    assert info["n_evaluations"] == F.count_supercells(F.third_order_displacements(ph3))
    assert errs[0] < 2e-2 and 3.0 < errs[0] / errs[1] < 5.0  # O(distance^2)
    inv = F.fc3_invariance(exact, ph3)
    assert inv["translation"] < 1e-9 * scale and inv["permutation"] < 1e-9 * scale
    with pytest.raises(ValueError, match="jax"):
        F.model_fc3(Potential(spec, p), "numba", ph3, method="exact")


@pytest.mark.parametrize(
    ("formula", "structure", "a0"), [("Si", "diamond", 5.43), ("SiC", "zincblende", 4.36)]
)
def test_model_fc3_symmetry_distribution_is_exact(jax_backend, formula, structure, a0):
    """fc3 from irreducible atoms + site/space-group symmetry equals the brute-force third
    derivatives of other supercell atoms (unsymmetrized)."""
    from pftlite.phonons.force_constants import supercell_atoms
    from pftlite.structures.batch import make_batch

    spec = small_spec(species=(14,) if formula == "Si" else (6, 14))
    p = random_params(spec, seed=3)
    ph3 = make_phonopy(bulk(formula, structure, a0), np.diag([2, 2, 1]), np.eye(3))
    fc3, _ = F.model_fc3(Potential(spec, p), "jax", ph3, method="exact", symmetrize=False)
    full = F.compact_to_full(fc3, ph3)
    atoms = supercell_atoms(ph3)
    N = len(atoms)
    b = make_batch([atoms], spec)
    V = np.eye(3 * N).reshape(3 * N, N, 3)
    for i, a in [(1, 0), (5, 2), (N - 1, 1)]:
        u = np.zeros((N, 3))
        u[i, a] = 1.0
        dH = jax_backend.hvp_derivative(spec, p, b, u, V).reshape(N, 3, N, 3)  # [k, c, j, b]
        assert np.abs(full[i, :, :, a] - dH.transpose(2, 0, 3, 1)).max() < 1e-8 * np.abs(dH).max()
