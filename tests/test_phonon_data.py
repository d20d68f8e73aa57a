"""Tests for pftlite.datasets.phonopy_refs (DFT phonon references: MDR yamls, phonopy example folders).

Real files come from the staged data root ($PFTLITE_DATA or ../shared/data); a missing file
skips the test. Damaged inputs are edited copies of the real files, written to ``tmp_path``.
"""

from __future__ import annotations

import bz2
import shutil
import warnings

import numpy as np
import pytest
from conftest import data_path as data

from pftlite.core.errors import InputError
from pftlite.datasets.phonopy_refs import PhononReference, find_reference_files, load_reference

FCC = np.array([[0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
NACL = ("phonopy_disp.yaml", "FORCE_SETS", "BORN")



@pytest.fixture(scope="module")
def refs() -> dict:
    """Loaded references, shared by the tests (loading is the slow part)."""
    cache: dict = {}

    def get(name: str) -> PhononReference:
        if name not in cache:
            cache[name] = load_reference(data(name))
        return cache[name]

    return get


def raises(path, *fragments: str, load=None) -> str:
    """load_reference(load or path) raises a one-line InputError naming ``path``, ``fragments``."""
    with pytest.raises(InputError) as exc:
        load_reference(path if load is None else load)
    msg = str(exc.value)
    assert "\n" not in msg
    for fragment in (str(path), *fragments):
        assert fragment in msg, (fragment, msg)
    return msg


def nacl_copy(tmp_path, files=NACL):
    """Copy of phonopy/NaCl files into ``tmp_path``; returns the folder."""
    for name in files:
        shutil.copy(data(f"phonopy/NaCl/{name}"), tmp_path / name)
    return tmp_path


def top_block(text: str, key: str, new: str = "") -> str:
    """``text`` with the top-level yaml block ``key:`` replaced by ``new``."""
    lines = text.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{key}:"))
    end = start + 1
    while end < len(lines) and lines[end][:1] in (" ", "-", "\n"):
        end += 1
    return "".join(lines[:start]) + new + "".join(lines[end:])


def same(a: PhononReference, b: PhononReference) -> None:
    assert (a.name, a.source, a.files) == (b.name, b.source, b.files)
    assert a.unitcell == b.unitcell
    np.testing.assert_array_equal(a.supercell_matrix, b.supercell_matrix)
    np.testing.assert_array_equal(a.primitive_matrix, b.primitive_matrix)
    for x, y in zip(a.dataset["first_atoms"], b.dataset["first_atoms"], strict=True):
        np.testing.assert_array_equal(x["forces"], y["forces"])
    assert (a.force_constants is None) == (b.force_constants is None)
    if a.force_constants is not None:
        np.testing.assert_array_equal(a.force_constants, b.force_constants)
    assert (a.nac_params is None) == (b.nac_params is None)
    assert list(a.stored) == list(b.stored)


# --------------------------------------------------------------------------------------------
# real data
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, n_disp", [("mdr/mp-149", 1), ("mdr/mp-1000", 2)])
def test_mdr_yaml_loads(refs, name, n_disp):
    ref = refs(name)
    assert ref.name == name.split("/")[1]
    assert ref.files == (ref.source,) and ref.source == str(data(name))
    assert len(ref.unitcell) == 8 and all(ref.unitcell.pbc)
    assert ref.n_supercell == 64
    np.testing.assert_array_equal(ref.supercell_matrix, 2 * np.eye(3, dtype=int))
    assert ref.supercell_matrix.dtype.kind == "i"
    np.testing.assert_allclose(ref.primitive_matrix, FCC)
    first = ref.dataset["first_atoms"]
    assert ref.dataset["natom"] == 64 and len(first) == n_disp
    assert all(d["forces"].shape == (64, 3) for d in first)
    assert ref.force_constants.shape == (64, 64, 3, 3)
    assert ref.nac_params is None
    stored = ref.stored
    assert stored["temperatures"] == [0.0, 75.0, 150.0, 300.0, 600.0]
    keys = "temperatures free_e entropy heat_capacity phonon_freq energy volume nsites"
    assert set(stored) == set(keys.split())
    assert stored["phonon_freq"].shape == (8, 6) and stored["nsites"] == 8
    np.testing.assert_allclose(stored["volume"], ref.unitcell.get_volume(), rtol=1e-10)
    if name == "mdr/mp-149":
        assert stored["entropy"][3] == 39.32713351669751
        assert ref.unitcell.get_chemical_formula() == "Si8"
        np.testing.assert_allclose(ref.unitcell.get_masses(), 28.0855)
    else:
        assert np.isnan(stored["energy"])  # '.nan' in the hyllios copy of mp-1000


@pytest.mark.parametrize("name", ["mdr/mp-149", "mdr/mp-1000"])
def test_mdr_matches_phonopy_load(refs, name):
    import phonopy

    ref, path = refs(name), data(name)
    ph = phonopy.load(path, produce_fc=False)
    for ours, theirs in zip(ref.dataset["first_atoms"], ph.dataset["first_atoms"], strict=True):
        assert ours["number"] == theirs["number"]
        np.testing.assert_allclose(ours["displacement"], theirs["displacement"], atol=1e-12)
        np.testing.assert_allclose(ours["forces"], theirs["forces"], atol=1e-12)
    fc = phonopy.load(path, is_compact_fc=False).force_constants
    np.testing.assert_allclose(ref.force_constants, fc, atol=1e-12)
    np.testing.assert_allclose(ref.primitive_matrix, ph.primitive_matrix, atol=1e-12)


def test_nacl_folder_with_force_sets_and_born(refs):
    import phonopy

    ref = refs("phonopy/NaCl/phonopy_disp.yaml")
    folder = data("phonopy/NaCl/phonopy_disp.yaml").parent
    assert ref.name == "NaCl"
    assert ref.files == tuple(str(folder / n) for n in NACL)
    assert ref.n_supercell == 64 and len(ref.dataset["first_atoms"]) == 2
    assert ref.force_constants is None
    ph = phonopy.load(
        folder / "phonopy_disp.yaml",
        force_sets_filename=folder / "FORCE_SETS",
        born_filename=folder / "BORN",
        produce_fc=False,
    )
    for ours, theirs in zip(ref.dataset["first_atoms"], ph.dataset["first_atoms"], strict=True):
        assert ours["number"] == theirs["number"]
        np.testing.assert_array_equal(ours["forces"], theirs["forces"])
    for key in ("born", "dielectric", "factor"):
        np.testing.assert_allclose(ref.nac_params[key], ph.nac_params[key], atol=1e-12)
    assert ref.nac_params["born"].shape == (2, 3, 3)
    assert find_reference_files(folder) == {
        "yaml": str(folder / "phonopy_disp.yaml"),
        "force_sets": str(folder / "FORCE_SETS"),
        "force_constants": None,
        "born": str(folder / "BORN"),
    }


def test_fetched_phonopy_example_tio2_anatase():
    """A PBE reference not staged in ../shared/data: fetched from phonopy's repository at the
    pinned commit (or found in the cache), read like the staged ones, equal to phonopy's own
    reading (forces, NAC, force constants)."""
    import phonopy

    from pftlite.datasets import registry as datasets

    try:
        files = find_reference_files("phonopy/TiO2-anatase")
    except datasets.DataUnavailable as exc:
        pytest.skip(f"phonopy/TiO2-anatase not reachable: {exc}")
    ref = load_reference("phonopy/TiO2-anatase")
    assert ref.unitcell.get_chemical_formula() == "O8Ti4" and ref.n_supercell == 192
    np.testing.assert_array_equal(ref.supercell_matrix, np.diag([4, 4, 1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # phonopy's primitive_matrix='auto' notice
        ph = phonopy.load(
            files["yaml"],
            force_sets_filename=files["force_sets"],
            born_filename=files["born"],
            is_compact_fc=False,
        )
    assert len(ref.dataset["first_atoms"]) == len(ph.dataset["first_atoms"]) == 4
    for ours, theirs in zip(ref.dataset["first_atoms"], ph.dataset["first_atoms"], strict=True):
        assert ours["number"] == theirs["number"]
        np.testing.assert_array_equal(ours["forces"], theirs["forces"])
    for key in ("born", "dielectric", "factor"):
        np.testing.assert_allclose(ref.nac_params[key], ph.nac_params[key], atol=1e-12)
    from pftlite.phonons.force_constants import make_phonopy, reference_force_constants

    ours = make_phonopy(ref.unitcell, ref.supercell_matrix, ref.primitive_matrix)
    fc, _ = reference_force_constants(ours, ref.dataset)
    scale = np.abs(fc).max()  # 21.9 eV/Å² (Ti-O on-site)
    np.testing.assert_allclose(fc, ph.force_constants, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(fc.sum(axis=1), 0.0, atol=1e-12 * scale)  # acoustic sum rule
    ours.run_qpoints([[0.0, 0.0, 0.0]])
    freqs = ours.get_qpoints_dict()["frequencies"][0]  # THz, ascending
    np.testing.assert_allclose(freqs[:3], 0.0, atol=1e-4)
    assert 3.0 < freqs[3] and 17.0 < freqs[-1] < 20.0  # anatase Eg(1), top Eg: 144, 639 cm^-1 expt.


def test_folder_yaml_and_dataset_name_forms_agree(refs):
    ref = refs("phonopy/NaCl/phonopy_disp.yaml")
    folder = data("phonopy/NaCl/phonopy_disp.yaml").parent
    for companion in ("FORCE_SETS", "BORN"):
        data(f"phonopy/NaCl/{companion}")
    for form in (folder, str(folder), "phonopy/NaCl", "phonopy/NaCl/phonopy_disp.yaml"):
        same(load_reference(form), ref)
    same(load_reference("mdr/mp-1000"), refs("mdr/mp-1000"))


def test_force_constants_files_beside_the_yaml(tmp_path, refs):
    """Compact FORCE_CONSTANTS and full force_constants.hdf5 give phonopy's full fc."""
    import phonopy
    from phonopy.file_IO import write_FORCE_CONSTANTS, write_force_constants_to_hdf5
    from phonopy.harmonic.force_constants import compact_fc_to_full_fc

    folder = nacl_copy(tmp_path, ("phonopy_disp.yaml",))
    src = data("phonopy/NaCl/phonopy_disp.yaml").parent
    ph = phonopy.load(src / "phonopy_disp.yaml", force_sets_filename=src / "FORCE_SETS")
    full = compact_fc_to_full_fc(ph.primitive, ph.force_constants)
    write_FORCE_CONSTANTS(ph.force_constants, folder / "FORCE_CONSTANTS", ph.primitive.p2s_map)
    ref = load_reference(folder)
    assert ref.dataset is None and ref.nac_params is None
    assert ref.files == (str(folder / "phonopy_disp.yaml"), str(folder / "FORCE_CONSTANTS"))
    np.testing.assert_allclose(ref.force_constants, full, atol=1e-12)
    pytest.importorskip("h5py")
    (folder / "FORCE_CONSTANTS").unlink()
    write_force_constants_to_hdf5(full, folder / "force_constants.hdf5")
    np.testing.assert_allclose(load_reference(folder).force_constants, full, atol=1e-12)


def test_phonopy_params_yaml_forms(tmp_path, refs):
    """phonopy_params.yaml with forces + nac (type 1, type 2 in .xz, calculator units)."""
    import lzma

    import phonopy
    from phonopy.structure.dataset import get_displacements_and_forces

    nacl = refs("phonopy/NaCl/phonopy_disp.yaml")
    src = data("phonopy/NaCl/phonopy_disp.yaml").parent
    ph = phonopy.load(
        src / "phonopy_disp.yaml",
        force_sets_filename=src / "FORCE_SETS",
        born_filename=src / "BORN",
        produce_fc=False,
    )
    folder = tmp_path / "t1"
    folder.mkdir()
    nacl_copy(folder)  # FORCE_SETS and BORN beside: not read, the yaml has forces and nac
    ph.save(folder / "phonopy_params.yaml")
    ref = load_reference(folder)  # phonopy_params.yaml first; forces and nac from it
    assert ref.files == (str(folder / "phonopy_params.yaml"),) and ref.name == "t1"
    for x, y in zip(ref.dataset["first_atoms"], nacl.dataset["first_atoms"], strict=True):
        np.testing.assert_allclose(x["forces"], y["forces"], atol=1e-12)
    np.testing.assert_allclose(ref.nac_params["born"], nacl.nac_params["born"], atol=1e-12)

    u, f = get_displacements_and_forces(ph.dataset)
    ph.dataset = {"displacements": u, "forces": f}
    text = (folder / "phonopy_params.yaml").read_text()
    ph.save(folder / "phonopy_params.yaml")
    path = tmp_path / "type2.yaml.xz"
    path.write_bytes(lzma.compress((folder / "phonopy_params.yaml").read_bytes()))
    ref2 = load_reference(path)
    assert ref2.name == "type2" and ref2.dataset["forces"].shape == (2, 64, 3)
    np.testing.assert_allclose(ref2.dataset["forces"], f, atol=1e-12)

    qe = tmp_path / "phonopy.yaml"  # same numbers declared in QE units (bohr, Ry/bohr)
    header = "phonopy:\n  calculator: qe\n"
    qe.write_text(top_block(text, "physical_unit").replace("phonopy:\n", header, 1))
    ref3 = load_reference(qe)
    bohr, ry_bohr = 0.529177207423948, 25.711045231288377  # phonopy's values
    np.testing.assert_allclose(ref3.unitcell.cell[:], nacl.unitcell.cell[:] * bohr, rtol=1e-12)
    first, first_nacl = ref3.dataset["first_atoms"][0], nacl.dataset["first_atoms"][0]
    np.testing.assert_allclose(first["forces"], first_nacl["forces"] * ry_bohr, rtol=1e-12)
    np.testing.assert_allclose(first["displacement"], first_nacl["displacement"] * bohr)
    assert ref3.nac_params["factor"] == pytest.approx(14.39965, rel=1e-5)


# --------------------------------------------------------------------------------------------
# damaged and inconsistent files
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mp149_text() -> str:
    return data("mdr/mp-149").read_text()


def _drop_force_row(text: str) -> str:
    i = text.index("  forces:\n") + len("  forces:\n")
    lines = text[i:].split("\n")
    return text[:i] + "\n".join(lines[3:])  # the first row is '  - - x', '    - y', '    - z'


def _set(key: str, value: str):
    return lambda text: top_block(text, key, f"{key}: {value}\n")


YAML_CASES = {
    "no unit_cell": (lambda t: top_block(t, "unit_cell"), ["unit_cell"]),
    "no supercell_matrix": (lambda t: top_block(t, "supercell_matrix"), ["supercell_matrix"]),
    "non-integer supercell_matrix": (
        _set("supercell_matrix", "[[2.5,0,0],[0,2,0],[0,0,2]]"),
        ["supercell_matrix", "integers"],
    ),
    "singular supercell_matrix": (
        _set("supercell_matrix", "[[2,0,0],[0,2,0],[2,2,0]]"),
        ["supercell_matrix", "singular"],
    ),
    "supercell block vs supercell_matrix": (
        _set("supercell_matrix", "[[2,0,0],[0,2,0],[0,0,1]]"),
        ["supercell_matrix", "supercell has 64 atoms", "gives 32"],
    ),
    "non-integer primitive atoms": (
        _set("primitive_matrix", "[[0.3,0,0],[0,1,0],[0,0,1]]"),
        ["primitive_matrix", "2.4 atoms"],
    ),
    "atom index out of range": (
        lambda t: t.replace("- atom: 1\n", "- atom: 999\n", 1),
        ["displacements[0].atom", "999", "1..64"],
    ),
    "missing force row": (_drop_force_row, ["displacements[0].forces", "(63, 3)", "64x3"]),
    "ragged force row": (
        lambda t: t.replace("  - - -0.1288791903125\n    - 0.0\n", "  - - -0.1288791903125\n", 1),
        ["displacements[0].forces", "ragged"],
    ),
    "NaN force": (
        lambda t: t.replace("- - -0.1288791903125\n", "- - .nan\n", 1),
        ["displacements[0].forces", "NaN"],
    ),
    "force constants of wrong shape": (
        lambda t: t.replace("  shape:\n  - 64\n  - 64\n", "  shape:\n  - 32\n  - 128\n"),
        ["force_constants", "(32, 128, 3, 3)", "(64, 64, 3, 3)", "(2, 64, 3, 3)"],
    ),
    "force constants elements vs shape": (
        lambda t: t.replace("  shape:\n  - 64\n  - 64\n", "  shape:\n  - 2\n  - 64\n"),
        ["force_constants.elements", "2x64x3x3"],
    ),
    "no forces, no force constants": (
        lambda t: top_block(top_block(t, "force_constants"), "displacements"),
        ["no DFT forces or force constants"],
    ),
    "undecodable bytes": (lambda t: t.replace("Si", "S\udcff", 1), ["not a readable phonopy yaml"]),
    "not a mapping": (lambda t: "- just\n- a list\n", ["not a phonopy yaml"]),
}


@pytest.mark.parametrize("case", list(YAML_CASES))
def test_damaged_yaml(tmp_path, mp149_text, case):
    edit, fragments = YAML_CASES[case]
    text = edit(mp149_text)
    assert text != mp149_text
    if "force constants" not in case and "\nforce_constants:" in text:
        text = top_block(text, "force_constants")  # 37k of its 38k lines: parse faster
    path = tmp_path / "mp-149.yaml"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    raises(path, *fragments)


def test_truncated_and_garbled_files(tmp_path, mp149_text):
    path = tmp_path / "mp-149.yaml"
    path.write_text(mp149_text[: len(mp149_text) // 2])
    raises(path)  # cut inside force_constants: some key is missing or inconsistent
    path.write_text(mp149_text[: mp149_text.index("- atom: 1") + 40])  # cut in a mapping
    raises(path)
    raw = data("mdr/mp-1000").read_bytes()
    bad = tmp_path / "mp-1000.yaml.bz2"
    bad.write_bytes(raw[: len(raw) // 2])
    raises(bad, "not a readable phonopy yaml")
    bad.write_bytes(raw[:2000] + b"\x00garbage\xff" * 50 + raw[2500:])
    raises(bad, "not a readable phonopy yaml")
    good = tmp_path / "x" / "mp-1000.yaml.bz2"
    good.parent.mkdir()
    good.write_bytes(bz2.compress(bz2.decompress(raw)))
    assert load_reference(good).name == "mp-1000"


FORCE_SETS_CASES = {
    "wrong natom": (lambda ls: ["63", *ls[1:]], ["natom = 63", "64 atoms"]),
    "truncated": (lambda ls: ls[: len(ls) // 2], ["truncated"]),
    "one displacement fewer": (lambda ls: [ls[0], "1", *ls[2:69]], ["1 displacements", "has 2"]),
    "other displaced atom": (
        lambda ls: [*ls[:70], "34", *ls[71:]],
        ["displacement 2 (atom 34", "displacements[1] (atom 33"],
    ),
    "non-numeric force": (lambda ls: [*ls[:5], "0.1 abc 0.2", *ls[6:]], ["line 6", "force"]),
}


@pytest.mark.parametrize("case", list(FORCE_SETS_CASES))
def test_damaged_force_sets(tmp_path, case):
    folder = nacl_copy(tmp_path)
    lines = (folder / "FORCE_SETS").read_text().splitlines()
    assert lines[69] == "" and lines[70].strip() == "33"
    edit, fragments = FORCE_SETS_CASES[case]
    (folder / "FORCE_SETS").write_text("\n".join(edit(lines)) + "\n")
    raises(folder / "FORCE_SETS", *fragments, load=folder)


def test_damaged_force_constants_and_born(tmp_path, refs):
    from phonopy.file_IO import write_FORCE_CONSTANTS

    folder = nacl_copy(tmp_path, ("phonopy_disp.yaml", "BORN"))
    fc_path = folder / "FORCE_CONSTANTS"
    fc = np.random.default_rng(0).normal(size=(3, 64, 3, 3))
    write_FORCE_CONSTANTS(fc, fc_path)
    raises(fc_path, "force_constants have shape (3, 64, 3, 3)", "(2, 64, 3, 3)", load=folder)
    write_FORCE_CONSTANTS(fc[:2], fc_path)  # compact shape, but rows 1, 2 instead of 1, 33
    raises(fc_path, "rows are for supercell atoms [1, 2]", "[1, 33]", load=folder)
    text = fc_path.read_text()
    fc_path.write_text(text[: len(text) // 2])
    raises(fc_path, "truncated", load=folder)
    fc_path.unlink()
    raises(folder / "phonopy_disp.yaml", "no DFT forces or force constants")
    shutil.copy(data("phonopy/NaCl/FORCE_SETS"), folder / "FORCE_SETS")
    (folder / "BORN").write_text("14.4\n1 0 0 0 1 0 0 0 1\n1 2 3\n")
    raises(folder / "BORN", "unreadable BORN", load=folder)


def test_bad_locations(tmp_path):
    with pytest.raises(InputError, match="no such file or folder, nor a dataset name"):
        load_reference(tmp_path / "missing.yaml")
    with pytest.raises(InputError, match="no such file or folder, nor a dataset name"):
        load_reference("mdr/mp-0")
    with pytest.raises(InputError, match="no phonopy_params.yaml, phonopy.yaml"):
        load_reference(tmp_path)


def test_phono3py_yaml_is_delegated():
    """phono3py data is read by pftlite.datasets.phono3py_refs: its fc2 part (here the 2x2x2 fc2 dataset)."""
    path = data("phono3py/Si-111-222-fd/phono3py_params_Si-111-222-fd.yaml.xz")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ref = load_reference(path)
    assert ref.n_supercell == 64 and len(ref.dataset["first_atoms"]) == 1
