"""Tests for pftlite.datasets.registry and pftlite.structures.io.

Real reference files are taken from the staged data root ($PFTLITE_DATA or ../shared/data)
through ``datasets.fetch``; downloads are disabled here, so a missing file skips the test.
Bad-input cases use small files written to ``tmp_path``.
"""

from __future__ import annotations

import gzip
import json
import re
import tarfile

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from pftlite.core.errors import DataUnavailable, InputError
from pftlite.core.units import GPA_PER_EV_A3
from pftlite.datasets import registry as datasets
from pftlite.structures.io import (
    check_structure,
    read_extxyz_labels,
    read_mlearn,
    read_phonopy_yaml_cell,
    read_structures,
)


def data(name: str):
    """Local path of a registered dataset, or skip the test with the reason."""
    try:
        return datasets.fetch(name)
    except DataUnavailable as exc:
        pytest.skip(f"reference data not available: {exc}")


def one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg
    return msg


# --------------------------------------------------------------------------------------------
# datasets
# --------------------------------------------------------------------------------------------

REQUIRED = [
    "mdr/mp-149",
    "mdr/mp-1000",
    "mlearn/Si_training",
    "mlearn/Si_test",
    "mlearn/Ge_training",
    "mlearn/Ge_test",
    "phonopy/NaCl/phonopy_disp.yaml",
    "phonopy/NaCl/FORCE_SETS",
    "phonopy/NaCl/BORN",
    "phono3py/Si-PBEsol/phono3py_disp.yaml",
    "phono3py/Si-PBEsol/FORCES_FC3",
    "kappa/phonondb-structures",
    "kappa/phonondb-kappas",
    "nequix/mp-1",
    "nequix/mp-1-pft",
]


def test_registry_is_well_formed():
    assert set(REQUIRED) <= set(datasets.DATASETS)
    url_re = re.compile(r"^https://raw\.githubusercontent\.com/[\w.-]+/[\w.-]+/[0-9a-f]{40}/\S+$")
    for name, entry in datasets.DATASETS.items():
        assert re.fullmatch(r"[0-9a-f]{64}", entry.sha256), name
        assert not entry.path.startswith("/") and ".." not in entry.path, name
        assert entry.url is None or url_re.match(entry.url), (name, entry.url)
        if entry.served_sha256 is not None:
            assert re.fullmatch(r"[0-9a-f]{64}", entry.served_sha256), name
            assert entry.served_path != entry.path, name
    # mlearn JSON were re-compressed locally: the download is the original JSON, its own hash
    e = datasets.DATASETS["mlearn/Si_training"]
    assert e.url.endswith("/data/Si/training.json") and e.served_path.endswith("Si_training.json")
    assert e.download_sha256 == e.served_sha256 != e.sha256


def _readme_datasets() -> set[str]:
    """Dataset names the README's commands and the CLI defaults use."""
    from pathlib import Path

    from pftlite.cli import tune as cli

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    names = {m for m in re.findall(r"\b(?:mdr|mlearn|phonopy|phono3py|kappa|nequix)/[\w.+-]+", text)}
    used = set()
    defaults = {n for v in cli.TUNE_DEFAULTS.values() for n in v}
    for n in names | defaults:
        if n in datasets.DATASETS:
            used.add(n)
        else:  # a folder-like name (phonopy/NaCl) uses every file under it
            used |= {k for k in datasets.DATASETS if k.startswith(n.rstrip("/") + "/")}
    return used


def test_every_dataset_is_public_or_says_why():
    """Every registered dataset has a pinned public URL, or is marked not public with the
    reason, and then no README command or CLI default depends on it."""
    for name, entry in datasets.DATASETS.items():
        if entry.url is None:
            assert entry.not_public, f"{name}: no URL and no reason"
        else:
            assert entry.not_public is None, name
    used = _readme_datasets()
    assert {"mdr/mp-149", "mlearn/Si_training", "mlearn/Si_test"} <= used
    private = sorted(n for n in used if datasets.DATASETS[n].url is None)
    assert not private, f"README/defaults use datasets without a public URL: {private}"


def test_staged_mlearn_copies_are_the_served_bytes_compressed():
    """The sha256 registered for the served mlearn JSON is that of the staged .json.gz
    uncompressed: a download verified against it holds the same data."""
    import hashlib

    for name, entry in datasets.DATASETS.items():
        if entry.served_sha256 is None:
            continue
        path = data(name)
        if not str(path).endswith(".gz"):
            continue
        with gzip.open(path, "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == entry.served_sha256, name


def test_local_files_match_registered_checksums():
    if datasets.data_root() is None:
        pytest.skip("no data root ($PFTLITE_DATA or ../shared/data)")
    present = [n for n in datasets.DATASETS if datasets.available(n)]
    for name in present:
        assert datasets.fetch(name, verify=True).is_file()
    staged = {n for n, e in datasets.DATASETS.items() if e.staged}
    missing = sorted(staged - set(present))
    if missing:
        root = datasets.data_root()
        pytest.skip(f"{len(missing)} registered files absent under {root}, e.g. {missing[:3]}")


def test_unknown_name_lists_close_names():
    with pytest.raises(InputError) as exc:
        datasets.fetch("mdr/mp149")
    assert "mdr/mp-149" in one_line(exc)
    with pytest.raises(InputError) as exc:  # a folder-like prefix lists its files
        datasets.fetch("phonopy/NaCl")
    assert "phonopy/NaCl/FORCE_SETS" in one_line(exc)


def test_fetch_uses_env_root_and_verifies(tmp_path, monkeypatch):
    name = "phonopy/NaCl/BORN"
    target = tmp_path / datasets.DATASETS[name].path
    target.parent.mkdir(parents=True)
    target.write_text("not the real BORN\n")
    monkeypatch.setenv("PFTLITE_DATA", str(tmp_path))
    assert datasets.data_root() == tmp_path.resolve()
    assert datasets.available(name)
    assert datasets.fetch(name) == target.resolve()
    with pytest.raises(DataUnavailable) as exc:
        datasets.fetch(name, verify=True)
    assert "sha256" in one_line(exc)
    assert not datasets.available("mdr/mp-149")


def test_fetch_reports_failed_download(tmp_path, monkeypatch):
    monkeypatch.setenv("PFTLITE_DATA", str(tmp_path))  # empty root: nothing local
    with pytest.raises(DataUnavailable) as exc:
        datasets.fetch("mdr/mp-149")
    msg = one_line(exc)
    assert msg.startswith(f"dataset 'mdr/mp-149': not under $PFTLITE_DATA ({tmp_path})")
    assert f"download of {datasets.DATASETS['mdr/mp-149'].url} failed" in msg
    assert "RuntimeError: network disabled in tests" in msg
    assert "set $PFTLITE_DATA to a folder holding it as mdr-phonon-alexandria-pbe/mp-149.yaml" in msg
    with pytest.raises(DataUnavailable) as exc:  # mlearn: the original JSON is downloaded
        datasets.fetch("mlearn/Si_test")
    msg = one_line(exc)
    assert "materialsvirtuallab/mlearn/10c427a5480c6281c15c64efaf869b03be04818f/data/Si/test.json" in msg
    assert "holding it as mlearn-zuo2020/Si_test.json;" not in msg and msg.endswith("Si_test.json")


def test_served_copy_is_found_under_the_data_root(tmp_path, monkeypatch):
    """A user who downloads the original mlearn JSON by hand drops it under $PFTLITE_DATA
    with its served name; it is found and verified against the served checksum."""
    entry = datasets.DATASETS["mlearn/Si_test"]
    target = tmp_path / entry.served_path
    target.parent.mkdir(parents=True)
    target.write_text("[]")
    monkeypatch.setenv("PFTLITE_DATA", str(tmp_path))
    assert datasets.fetch("mlearn/Si_test") == target.resolve()
    with pytest.raises(DataUnavailable) as exc:
        datasets.fetch("mlearn/Si_test", verify=True)
    assert entry.served_sha256 in one_line(exc)


def test_fetch_downloads_with_pinned_hash(tmp_path, monkeypatch):
    import pooch

    calls = {}

    def fake_retrieve(url, known_hash, fname, path, progressbar):
        calls.update(url=url, known_hash=known_hash, fname=fname, path=path)
        return str(tmp_path / fname)

    monkeypatch.setenv("PFTLITE_DATA", str(tmp_path))
    monkeypatch.setattr(pooch, "retrieve", fake_retrieve)
    entry = datasets.DATASETS["mdr/mp-1000"]
    assert datasets.fetch("mdr/mp-1000") == tmp_path / "mp-1000.yaml.bz2"
    assert calls["url"] == entry.url
    assert calls["known_hash"] == f"sha256:{entry.sha256}"
    assert calls["fname"] == "mp-1000.yaml.bz2"
    ml = datasets.DATASETS["mlearn/Si_training"]
    assert datasets.fetch("mlearn/Si_training") == tmp_path / "Si_training.json"
    assert calls["url"] == ml.url and calls["known_hash"] == f"sha256:{ml.served_sha256}"


# --------------------------------------------------------------------------------------------
# io: real data
# --------------------------------------------------------------------------------------------


def test_read_mdr_yaml_unit_cells():
    (si,) = read_structures(data("mdr/mp-149"))
    assert si.get_chemical_formula() == "Si8" and all(si.pbc)
    assert np.allclose(si.cell.cellpar(), [5.46722, 5.46722, 5.46722, 90, 90, 90], atol=1e-4)
    assert np.allclose(si.get_masses(), 28.0855)
    check_structure(si, "mp-149", species=[14])
    (bate,) = read_structures(data("mdr/mp-1000"))  # .yaml.bz2
    assert bate.get_chemical_formula() == "Ba4Te4"


def test_phonopy_yaml_matches_poscar():
    (from_yaml,) = read_structures(data("phonopy/NaCl/phonopy_disp.yaml"))
    (from_poscar,) = read_structures(data("phonopy/NaCl/POSCAR-unitcell"))
    assert list(from_yaml.symbols) == list(from_poscar.symbols)
    assert np.allclose(from_yaml.cell[:], from_poscar.cell[:], atol=1e-8)
    assert np.allclose(from_yaml.positions, from_poscar.positions, atol=1e-8)
    (si,) = read_structures(data("phono3py/Si-111-222-fd/phono3py_params_Si-111-222-fd.yaml.xz"))
    assert si.get_chemical_formula() == "Si8"


def test_read_kappa_structures_extxyz():
    frames = read_structures(data("kappa/phonondb-structures"))
    assert len(frames) == 103
    assert {a.info["mp_id"] for a in frames} >= {"mp-1265", "mp-22862", "mp-804"}
    for a in frames:
        check_structure(a, a.info["name"], min_distance=1.0)
    assert len(read_structures(data("kappa/phonondb-structures"), index="-1")) == 1


def test_read_mlearn_labels_and_shapes():
    frames = read_mlearn(data("mlearn/Si_training"))
    assert len(frames) == 214
    groups = [a.info["group"] for a in frames]
    assert {g: groups.count(g) for g in set(groups)} == {
        "AIMD-NVT": 90, "Vacancy": 57, "Elastic": 55, "Surface": 12
    }
    assert sum(len(a) for a in frames) == 13233
    for a in frames:
        assert a.arrays["forces"].shape == (len(a), 3)
        assert a.info["stress"].shape == (6,)
        check_structure(a, a.info["source"], species=[14], min_distance=1.5)
    emin = min(a.info["energy"] / len(a) for a in frames)
    assert emin == pytest.approx(-5.4253, abs=1e-4)  # PBE ground state, per SOURCE.md
    assert read_structures(data("mlearn/Ge_test"))[0].get_chemical_symbols()[0] == "Ge"


def test_mlearn_shear_stress_component_order():
    """mlearn order is [xx, yy, zz, xy, yz, xz]; ASE Voigt is [xx, yy, zz, yz, xz, xy].

    In the Si "Elastic" shear modes, lattice vector b gains an x component (mode 3, xy shear)
    and c gains an x (mode 4, xz) or a y component (mode 5, yz). The dominant ASE component
    must be the matching one.
    """
    frames = read_mlearn(data("mlearn/Si_training"))
    expected = {3: 5, 4: 4, 5: 3}  # mode -> ASE Voigt index (xy, xz, yz)
    for a in frames:
        m = re.search(r"mode (\d), strain (-?[\d.]+)", a.info["description"])
        if m and int(m.group(1)) in expected:
            assert np.argmax(np.abs(a.info["stress"])) == expected[int(m.group(1))]


def test_mlearn_stress_unit_and_sign_give_physical_c11():
    """Check that virial_stress is kbar, positive = compressive (VASP), via Si C11.

    The Si "Elastic" entries (64-atom 2x2x2 conventional cells) scale one lattice vector by
    (1 + e), e = L_ii / L0_ii - 1, against the "Ground state crystal" (a0 = 10.9375 / 2 =
    5.4687 Å, PBE). With the stress converted to ASE convention (tensile positive, eV/Å³):

    - C11 = (s_ii(+2%) - s_ii(-2%)) / (e(+2%) - e(-2%)), averaged over modes 0, 1, 2;
    - C12 from the two transverse components s_jj of the same cells;
    - independently, C11 from the energy curvature: E(e) = E0 + V0 (s0 e + C11 e^2 / 2),
      fitted as a parabola through e = -2 %, 0, +2 %.

    Observed: C11 = 152.8 GPa from stress, 151.1 GPa from energy, C12 = 56.6 GPa (PBE Si
    literature: C11 ~ 153, C12 ~ 57; experiment 166 / 64). Reading the numbers as a total
    virial in eV (stress = value / V) would give C11 ~ 187 GPa and break the agreement with the
    energy curvature; the opposite sign would give a negative C11.
    """
    frames = read_mlearn(data("mlearn/Si_training"))
    elastic = [a for a in frames if a.info["group"] == "Elastic"]
    (ground,) = [a for a in elastic if "Ground state" in a.info["description"]]
    L0 = np.diag(ground.cell[:])
    assert L0 / 2 == pytest.approx(5.469, abs=2e-3)
    voigt = {}
    for a in elastic:
        m = re.search(r"mode (\d), strain (-?[\d.]+)", a.info["description"])
        if m and int(m.group(1)) < 3 and abs(float(m.group(2))) == 0.02:
            voigt[int(m.group(1)), float(m.group(2))] = a
    c11, c12, c11_energy = [], [], []
    for i in range(3):
        plus, minus = voigt[i, 0.02], voigt[i, -0.02]
        e_p, e_m = (np.diag(x.cell[:])[i] / L0[i] - 1 for x in (plus, minus))
        s_p, s_m = plus.info["stress"], minus.info["stress"]
        assert s_p[i] > 0 > s_m[i]  # stretched cell: tensile (positive) ASE stress
        c11.append((s_p[i] - s_m[i]) / (e_p - e_m))
        j = [k for k in range(3) if k != i]
        c12.append(np.mean((s_p[j] - s_m[j]) / (e_p - e_m)))
        strains = [e_m, 0.0, e_p]
        energies = [minus.info["energy"], ground.info["energy"], plus.info["energy"]]
        curvature = np.polyfit(strains, energies, 2)[0]
        c11_energy.append(2 * curvature / ground.get_volume())
    c11_gpa = np.mean(c11) * GPA_PER_EV_A3
    c12_gpa = np.mean(c12) * GPA_PER_EV_A3
    c11_energy_gpa = np.mean(c11_energy) * GPA_PER_EV_A3
    assert 140 < c11_gpa < 180, c11_gpa
    assert 40 < c12_gpa < 75, c12_gpa
    assert c11_energy_gpa == pytest.approx(c11_gpa, rel=0.05)


def test_extxyz_labels_match_mlearn_json(tmp_path):
    """ACEData's xyz (energy=, per-atom 'force') carries the same Si_test labels as the JSON."""
    with tarfile.open(data("mlearn/ACEData-xyz")) as tar:
        member = tar.getmember("ZuoEtAl2020/Si_test.xyz")
        (tmp_path / "Si_test.xyz").write_bytes(tar.extractfile(member).read())
    xyz = read_extxyz_labels(tmp_path / "Si_test.xyz")
    ref = read_mlearn(data("mlearn/Si_test"))
    assert len(xyz) == len(ref) == 25
    for a, b in zip(xyz, ref):
        assert a.calc is None and "force" not in a.arrays and "stress" not in a.info
        assert a.info["energy"] == pytest.approx(b.info["energy"], abs=1e-8)
        assert np.allclose(a.arrays["forces"], b.arrays["forces"], atol=1e-8)
        assert np.allclose(a.positions, b.positions, atol=1e-6)


# --------------------------------------------------------------------------------------------
# io: self-made files and structures
# --------------------------------------------------------------------------------------------


def _si_atoms() -> Atoms:
    return bulk("Si", "diamond", a=5.43, cubic=True)


def test_read_extxyz_labels_conventions(tmp_path):
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    a = _si_atoms()
    forces = np.arange(3 * len(a), dtype=float).reshape(-1, 3) * 0.01
    stress = np.array([0.01, 0.02, 0.03, 0.04, 0.05, 0.06])
    a.calc = SinglePointCalculator(a, energy=-40.0, forces=forces, stress=stress)
    write(tmp_path / "calc.extxyz", a)
    (got,) = read_extxyz_labels(tmp_path / "calc.extxyz")
    assert got.info["energy"] == -40.0 and got.calc is None
    assert np.allclose(got.arrays["forces"], forces) and np.allclose(got.info["stress"], stress)

    b = _si_atoms()  # custom keys and a 3x3 stress
    s33 = np.array([[1.0, 6.0, 5.0], [6.0, 2.0, 4.0], [5.0, 4.0, 3.0]]) * 0.01
    b.info["REF_energy"], b.info["REF_stress"] = -41.0, s33
    b.arrays["REF_forces"] = -forces
    write(tmp_path / "ref.extxyz", b)
    (got,) = read_extxyz_labels(
        tmp_path / "ref.extxyz", "REF_energy", "REF_forces", "REF_stress"
    )
    assert got.info["energy"] == -41.0 and np.allclose(got.arrays["forces"], -forces)
    assert np.allclose(got.info["stress"], np.arange(1, 7) * 0.01)
    assert "REF_forces" not in got.arrays and "REF_energy" not in got.info

    with pytest.raises(InputError) as exc:
        read_extxyz_labels(tmp_path / "ref.extxyz")  # default keys are absent
    assert "ref.extxyz: frame 0: no energy under 'energy'" in one_line(exc)


_YAML = """\
phonopy:
  version: 2.20.0
  calculator: {calculator}
unit_cell:
  lattice:
  - [ {a}, 0.0, 0.0 ]
  - [ 0.0, {a}, 0.0 ]
  - [ 0.0, 0.0, {a} ]
  points:
  - symbol: Na
    coordinates: [ 0.0, 0.0, 0.0 ]
    mass: 22.99
  - symbol: Cl
    coordinates: [ 0.5, 0.5, 0.5 ]
    mass: 35.453
displacements:
- atom: 1
  displacement: [ 0.01, 0.0, 0.0 ]
"""


def test_phonopy_yaml_self_made(tmp_path):
    plain = tmp_path / "phonopy.yaml"
    plain.write_text(_YAML.format(calculator="vasp", a=4.0))
    (atoms,) = read_structures(plain)
    assert np.allclose(atoms.cell.lengths(), 4.0) and atoms.get_chemical_formula() == "ClNa"
    assert np.allclose(atoms.get_masses(), [22.99, 35.453])
    gz = tmp_path / "phonopy.yaml.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    assert np.allclose(read_structures(gz)[0].positions, atoms.positions)
    qe = tmp_path / "qe.yaml"  # lengths in bohr for QE
    qe.write_text(_YAML.format(calculator="qe", a=10.0))
    assert np.allclose(read_phonopy_yaml_cell(qe).cell.lengths(), 10.0 * 0.529177, atol=1e-5)


@pytest.mark.parametrize(
    "text, expected",
    [
        (_YAML.format(calculator="vasp", a=4.0)[:200], "not a readable phonopy yaml"),
        ("phonopy:\n  version: 2.20.0\nsupercell_matrix: [2, 2, 2]\n", "without a 'unit_cell'"),
        ("unit_cell:\n  lattice:\n  - [1.0, 0.0]\n  points: []\n", "lacks 'lattice' or 'points'"),
    ],
    ids=["truncated", "no-unit-cell", "bad-cell"],
)
def test_bad_phonopy_yaml(tmp_path, text, expected):
    path = tmp_path / "phonopy_disp.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as exc:
        read_structures(path)
    msg = one_line(exc)
    assert msg.startswith(str(path)) and expected in msg


def _mlearn_entry(n=2) -> dict:
    return {
        "structure": {
            "lattice": {"matrix": [[5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0]]},
            "sites": [
                {"species": [{"element": "Si", "occu": 1}], "abc": [0.25 * k, 0.0, 0.0]}
                for k in range(n)
            ],
        },
        "outputs": {
            "energy": -10.0,
            "forces": [[0.1, 0.0, 0.0]] * n,
            "virial_stress": [10.0, 20.0, 30.0, 40.0, 50.0, 60.0],
        },
        "group": "Test",
    }


def test_read_mlearn_self_made_conversion(tmp_path):
    path = tmp_path / "train.json"
    path.write_text(json.dumps([_mlearn_entry()]))
    (a,) = read_structures(path)
    assert a.info["energy"] == -10.0 and a.info["group"] == "Test"
    assert a.info["source"] == "train.json[0]"
    assert np.allclose(a.positions[1], [1.25, 0.0, 0.0])
    # [xx, yy, zz, xy, yz, xz] kbar compressive -> [xx, yy, zz, yz, xz, xy] eV/Å³ tensile
    kbar = np.array([10.0, 20.0, 30.0, 50.0, 60.0, 40.0])
    assert np.allclose(a.info["stress"], -kbar * 0.1 / GPA_PER_EV_A3)


def _broken(kind: str):
    entry = _mlearn_entry()
    if kind == "no-forces":
        del entry["outputs"]["forces"]
    elif kind == "no-structure":
        del entry["structure"]
    elif kind == "forces-shape":
        entry["outputs"]["forces"] = [[0.0, 0.0, 0.0]] * 3
    elif kind == "stress-shape":
        entry["outputs"]["virial_stress"] = [1.0, 2.0, 3.0]
    elif kind == "no-coords":
        del entry["structure"]["sites"][1]["abc"]
    elif kind == "nan-energy":
        entry["outputs"]["energy"] = float("nan")
    return [entry]


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("no-forces", "entry 0: missing key 'outputs.forces'"),
        ("no-structure", "entry 0: missing key 'structure'"),
        ("forces-shape", "outputs.forces has shape (3, 3), expected 2x3"),
        ("stress-shape", "outputs.virial_stress has shape (3,), expected 6"),
        ("no-coords", "site 1 has neither 'abc' nor 'xyz'"),
        ("nan-energy", "outputs.energy contains NaN or inf"),
    ],
)
def test_bad_mlearn_json(tmp_path, kind, expected):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_broken(kind)))
    with pytest.raises(InputError) as exc:
        read_structures(path)
    msg = one_line(exc)
    assert msg.startswith(str(path)) and expected in msg


def test_unreadable_inputs(tmp_path):
    with pytest.raises(InputError) as exc:
        read_structures(tmp_path / "missing.xyz")
    assert "missing.xyz: no such file" in one_line(exc)

    truncated = tmp_path / "train.json.gz"
    truncated.write_bytes(gzip.compress(json.dumps([_mlearn_entry()]).encode())[:40])
    with pytest.raises(InputError) as exc:
        read_mlearn(truncated)
    assert "not readable as JSON" in one_line(exc)

    garbage = tmp_path / "structure.unknownext"
    garbage.write_bytes(b"\x00\x01 this is not a structure file\n")
    with pytest.raises(InputError) as exc:
        read_structures(garbage)
    assert one_line(exc).startswith(f"{garbage}: cannot read structures")


def test_check_structure_accepts_good_cell():
    check_structure(_si_atoms(), "si", species=[14], min_distance=2.0)


def _overlapping():
    a = _si_atoms()
    a.positions[3] = a.positions[0] + [0.03, 0.0, 0.04]
    return a


def _nan_position():
    a = _si_atoms()
    a.positions[2, 1] = np.nan
    return a


def _molecule():
    a = _si_atoms()
    a.pbc = [True, True, False]
    return a


def _flat_cell():
    a = _si_atoms()
    a.set_cell([[5.43, 0, 0], [0, 5.43, 0], [5.43, 5.43, 0]])
    return a


@pytest.mark.parametrize(
    "make, species, expected",
    [
        (lambda: Atoms(cell=np.eye(3), pbc=True), None, "empty structure"),
        (_nan_position, None, "atom 2 has NaN or inf position"),
        (_molecule, None, "pftlite needs a 3D periodic cell"),
        (_flat_cell, None, "cell is singular"),
        (_overlapping, None, "atoms 0 (Si) and 3 (Si) are 0.0500 Å apart"),
        (_si_atoms, [6, 8], "element Si (Z=14) not supported by the model (model species: C, O)"),
    ],
    ids=["empty", "nan", "non-periodic", "singular", "overlap", "species"],
)
def test_check_structure_rejects(make, species, expected):
    with pytest.raises(InputError) as exc:
        check_structure(make(), "POSCAR-bad", species=species)
    msg = one_line(exc)
    assert msg.startswith("POSCAR-bad: ") and expected in msg


def test_archive_members_are_datasets(tmp_path, monkeypatch):
    """mlearn Cu/Ni training sets exist only inside ACEData's tarball: their names extract the
    member into the cache (sha256-checked), read as labelled E/F data, and a damaged extract is
    replaced."""
    from pftlite.cli.common import read_all, resolve_structure_file
    from pftlite.datasets.registry import MEMBERS, available, fetch, sha256sum

    if not available("mlearn/ACEData-xyz"):
        pytest.skip("ACEData tarball not staged")
    monkeypatch.setenv("PFTLITE_CACHE", str(tmp_path / "cache"))
    for name, count in (("mlearn/Cu_training-xyz", 262), ("mlearn/Ni_training-xyz", 263)):
        p = fetch(name)
        assert p.is_relative_to(tmp_path / "cache") and sha256sum(p) == MEMBERS[name].sha256
        frames = read_extxyz_labels(p)
        assert len(frames) == count and all("forces" in a.arrays and np.isfinite(a.info["energy"]) for a in frames)
        assert set(frames[0].get_chemical_symbols()) == {name.split("/")[1][:2]}
    p = fetch("mlearn/Cu_training-xyz")
    p.write_text("damaged")
    assert sha256sum(fetch("mlearn/Cu_training-xyz")) == MEMBERS["mlearn/Cu_training-xyz"].sha256
    assert resolve_structure_file("mlearn/Ni_training-xyz") == fetch("mlearn/Ni_training-xyz")

    class Cu:
        species = (29,)

    structs, _ = read_all(["mlearn/Cu_training-xyz"], Cu)
    assert len(structs) == 262
