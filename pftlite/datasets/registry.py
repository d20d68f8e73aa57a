"""Named reference datasets resolved to local file paths.

Every dataset is a single file, registered in ``DATASETS`` with its path relative to a data
root laid out like ``shared/data`` (one folder per source, each with a ``SOURCE.md``), its
sha256, and the public URL it comes from, pinned to a commit. Where the staged copy was
recompressed (the mlearn JSON are gzipped in ``shared/data``), the entry also holds the sha256
of the original bytes served at the URL, and a download keeps those original bytes.

Lookup order in :func:`fetch`:

1. ``<data_root()>/<relative path>`` (or the served file's name beside it), where
   ``data_root()`` is ``$PFTLITE_DATA`` or else ``shared/data`` beside the repository checkout;
2. a download into ``pooch.os_cache("pftlite")`` (``$PFTLITE_CACHE`` overrides), verified
   against the sha256 of the bytes served;
3. otherwise :class:`~pftlite.core.errors.DataUnavailable`: one line naming the dataset, the URL and
   how to point ``$PFTLITE_DATA`` at a copy.

Nothing here touches the network except step 2 of :func:`fetch`.
"""

from __future__ import annotations

import difflib
import hashlib
import os
from pathlib import Path
from typing import NamedTuple

from pftlite.core.errors import DataUnavailable, InputError

ENV_VAR = "PFTLITE_DATA"

# Phonon references whose DFT cell was relaxed under an external pressure, GPa (their SOURCE.md):
# the equilibrium stress there is -p I, not 0. Stishovite: VASP PSTRESS = 400 kB.
RELAXED_UNDER_PRESSURE_GPA = {"phonopy/SiO2-HP": 40.0}


class DatasetEntry(NamedTuple):
    """One registered file.

    Attributes
    ----------
    path : str
        Path relative to the data root, with ``/`` separators.
    url : str or None
        Public URL at a pinned commit; ``None`` only with ``not_public``.
    sha256 : str
        Hex sha256 of the staged file at ``path``.
    served_sha256 : str or None
        Hex sha256 of the bytes served at ``url`` when they differ from the staged file (a
        recompressed copy); ``None`` = the URL serves exactly the staged bytes.
    not_public : str or None
        Why no public URL is registered (and then no README command or default may use it).
    staged : bool
        Whether ``../shared/data`` holds it; ``False``: only fetched from ``url``.
    """

    path: str
    url: str | None
    sha256: str
    served_sha256: str | None = None
    not_public: str | None = None
    staged: bool = True

    @property
    def served_path(self) -> str:
        """Path, relative to a data root, of the file as served at ``url``: ``path`` itself,
        or without its compression suffix when the staged copy was recompressed."""
        if self.served_sha256 is None:
            return self.path
        return self.path.rsplit(".", 1)[0]

    @property
    def download_sha256(self) -> str:
        """sha256 a download from ``url`` must have."""
        return self.served_sha256 or self.sha256


def _gh(repo: str, commit: str, path: str) -> str:
    """raw.githubusercontent.com URL of ``path`` in ``repo`` at full 40-hex ``commit``."""
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{path}"


# Commits (see the SOURCE.md of each folder). Where SOURCE.md gives only a short hash, the full
# hash is that of the commit that last changed the file, which SOURCE.md names.
_PHONOPY = ("phonopy/phonopy", "3a3e0f099da5de2556e75d72ea89b3bb22c8e97e")
_PHONO3PY = ("phonopy/phono3py", "2dc8200a65dc3a4dd3824d248af50545f03f8ea2")
_KSRME = ("MPA2suite/k_SRME", "0269a946a1e4c53552b060a92b98df94e039fd80")
_NEQUIX = ("atomicarchitects/nequix", "0ffdf881603d2c97f9105c64c3ec2df74dc1c224")
_NEQUIX_EX = ("teddykoker/nequix-examples", "e23173b3c48406f399c55b3763bb9101aecafe7b")
_HYLLIOS = ("hyllios/utils", "f2f0bac4cb09afd838b37330e9cb79e7cc748714")
_MATCALC = ("materialsvirtuallab/matcalc", "27f2d5f44b2bc045ff47446c599a3b6aba298b7f")
_ACEDATA = ("ACEsuit/ACEData", "292aa09542d4bc6bdf67c710169bf486df1dd12a")

_MDR = "mdr-phonon-alexandria-pbe"
_ML = "mlearn-zuo2020"
_KAP = "k_srme-phonondb-pbe"
_P2 = "phonopy-examples"
_P3 = "phono3py-examples"
_NQ = "nequix-models"


_PHONOPY_EXAMPLES = {
    # <folder>/<file> under phonopy-examples/ (= example/<folder>/<file> upstream): sha256
    "NaCl/phonopy_disp.yaml": "05553d717297aeef35f8d79bccbb4916a474e7b24ddbafe1b0d9ed148694a602",
    "NaCl/FORCE_SETS": "2485a1ee2c43579e868c65f376c45d81caa0928a4899a8edc292ac6843aaac10",
    "NaCl/BORN": "ee092139922747bce9a7751ec9e0d1874c22653842cc6811bf6a09738052ab66",
    "NaCl/POSCAR-unitcell": "e253251c217904352af3cf6f144485e5967e81a4d9b1e0b10c5b09394388b9f6",
    "MgO/phonopy_disp.yaml": "fc4ae95b377becae740f329e9ab5611a66d34e7a42e1b0c28d05d432708ad008",
    "MgO/FORCE_SETS": "a9c88d502ec38871fefaf4b7be521780a7ea2631c6cd650c814333e45833ffc0",
    "MgO/BORN": "14882c5d4349aaf7e5bf8019721e32d9257e5005e7911fddc101fa1cfbeb8ddf",
    "MgO/POSCAR-unitcell": "8c75dc8762bdb8c7596c49d5d541a730f9b3a44158e2561a387a657a751e3ee5",
    "SnO2/phonopy_disp.yaml": "71ef230c56d70e6d80f667e1cca77de78c21d8b0f0cbd6fc1d41878be950878d",
    "SnO2/FORCE_SETS": "2dd92add3680c790bee8a56a02229c0bcc5597ad2284d598a58b323d678d413d",
    "SnO2/BORN": "fc79e4c7a7a8631d9eb6e1a50a168a984f624fd73f60255f85d16a0e18a033d3",
    "SnO2/POSCAR-unitcell": "7dbe38cc31f6c4ce525494d380a5239ab14f0c873567daa11a6fff9a4023aa8c",
    "SiO2-HP/phonopy_disp.yaml": "1a96c4012829e550c4aea4427bcc18544cbe8d9aa0dba03329a0d5820b3cbcba",
    "SiO2-HP/FORCE_SETS": "95a9fa7cddb598c39bb88a039f6d8f85bdde691c82b8ebf44e9a69abb86567ee",
    "SiO2-HP/BORN": "1ef37c08687480292de3f8819ede8824a8ef7a3f82050ef25d8743777b47df2a",
    "SiO2-HP/POSCAR-unitcell": "32ae50e9a14a3b360ee97eb34ea69b90e656f2f1c8f8e78aa5c0b3dc51608564",
    "ZnO/phonopy_disp.yaml": "93f4adbeafa702a85c30da81f17895c13bf38e1d88fe55433966c9137138b40c",
    "ZnO/FORCE_SETS": "403e821f0017ca396874edcdb7da58366c6dce3cbe1f8ca03cd1346f1bd02dc5",
    "ZnO/BORN": "902118e6b31c9046c0b22eadac279e079563d2386e675a88409443923ee5063e",
    "ZnO/POSCAR-unitcell": "dcca1db53bbb878b655ba842004db3462270b67bb52ed3f71fbffba83d563c1a",
    "MgB2/phonopy_disp.yaml": "780fb6c8455096960eae4f8ab436c30e5d554743fdaf54b3472533fcfa878ce8",
    "MgB2/FORCE_SETS": "5400dd39e2079e078ce4f7728bcfb3689c70e272fdbf1e9936e68cad7ecaf6df",
    "MgB2/POSCAR-unitcell": "e151b70cc0a2b001e2329b57d5a24fd99cad0c2ec24aae0505befa8560d6b174",
    "Cr/phonopy_disp.yaml": "330974ccec905a4e4e160526dda6198180d65d6792fa79050da12e1180eeda6f",
    "Cr/FORCE_SETS": "08e3711418762def57b35c55f758080d45078ad6faf35d3cfba5cb72f1067cf3",
    "Cr/POSCAR-unitcell": "0952725f90d83473563ac09c7eb8af762cb08e9fa032affeb9d3cdc9333ef2bb",
    # Not staged in ../shared/data (fetched from the pinned commit): VASP, PBE PAW (GGA unset),
    # 500 eV, the settings of MgO/ZnO; 4x4x1 supercell of the 12-atom cell (192 atoms; its
    # README says 4x4x2, the yaml 4x4x1).
    "TiO2-anatase/phonopy_disp.yaml": "25de992fb63db8e5a756cf2610207d279a04e803ee7916204b726acfbcd7d34b",
    "TiO2-anatase/FORCE_SETS": "34712dbc2c8858eb63ce9923416dc5e6a2b72c9b8b93075687a5bcb1c505f263",
    "TiO2-anatase/BORN": "67ea91a4421830f4d446c96f3a03e0daeb688f4e1cf85c28baee1970fedd0207",
    "TiO2-anatase/POSCAR-unitcell": "b03849fa1344435df7f56ed7599dd07aa1f8bc122a5b63b2611ae66ccc3c5c32",
}

_PHONO3PY_FILES = {
    # path under phono3py-examples/: (path in the phono3py repo, sha256)
    "Si-PBEsol/phono3py_disp.yaml": (
        "example/Si-PBEsol/phono3py_disp.yaml",
        "1375e3ae19a2c4138a888af8177a3becfcaa3b127ca50755773c405c3e28a2a7",
    ),
    "Si-PBEsol/FORCES_FC3": (
        "example/Si-PBEsol/FORCES_FC3",
        "d53c5443f028c5d66c70adff20191e00b54af56a81e93d8d20e28f9320c94039",
    ),
    "Si-PBEsol/POSCAR-unitcell": (
        "example/Si-PBEsol/POSCAR-unitcell",
        "0840b7748c1eff72c9237a2d4d074f7a7f38f8c1ed6501fea69cd647d7a5fcb8",
    ),
    "Si-PBEsol/kappa-m111111_si_pbesol.hdf5": (
        "test/kappa-m111111_si_pbesol.hdf5",
        "e6e092820ace5a8f07109b9e7e62c37b742b8a909f8a1ee8f24be14af13599a7",
    ),
    "Si-PBEsol/test-fixture/phono3py_si_pbesol.yaml": (
        "test/phono3py_si_pbesol.yaml",
        "8dcdb72429ebe439455c5f1fc9658c3bcef875dced3521336d3a9da38b45c660",
    ),
    "Si-PBEsol/test-fixture/FORCES_FC3_si_pbesol": (
        "test/FORCES_FC3_si_pbesol",
        "a8d1aba00d8a33e07785182669958218356d6b6c680c70cae02f3f459fb92c1c",
    ),
    "NaCl-222/phono3py_params_NaCl222.yaml.xz": (
        "test/phono3py_params_NaCl222.yaml.xz",
        "c3816b75ab5d9a6ca9fa37a7528ccd5b879f79e64eddc7f37b858699885a8a9c",
    ),
    "AlN-LDA-332/phono3py_params_AlN332.yaml.xz": (
        "test/phono3py_params_AlN332.yaml.xz",
        "d0ea6a6852102c1a1f78757515d585eb853e416ff2e242821c453f26db029d9b",
    ),
    "AlN-LDA-dimfc2/phono3py_disp_dimfc2.yaml": (
        "example/AlN-LDA/phono3py_disp_dimfc2.yaml",
        "89b8f7c2fbeb4fcf78d9858ca96e1807452d1b5f19668c3d2b7a08811cc8cba5",
    ),
    "AlN-LDA-dimfc2/FORCES_FC3.xz": (
        "example/AlN-LDA/FORCES_FC3.xz",
        "26d7452428e52f596c826060aa16dc3f882d4349d0bc3c4ea99d424d4658ab30",
    ),
    "AlN-LDA-dimfc2/FORCES_FC2": (
        "example/AlN-LDA/FORCES_FC2",
        "c155faeeeff4d70fa2ec18fc6ea7df80a23ce497059b5c29c41f92726b630be5",
    ),
    "AlN-LDA-dimfc2/BORN": (
        "example/AlN-LDA/BORN",
        "ac86182aa6012f2972a2b02cae9d6b8eede4fac45b1b20d34b6976ea2f136820",
    ),
    "AlN-LDA-dimfc2/POSCAR-unitcell": (
        "example/AlN-LDA/POSCAR-unitcell",
        "8152987224d707a7c0b78e6981d1284a137c9b1a2ed6a617f2e68a14a459c6f0",
    ),
    "MgO-222rd-444rd/phono3py_params_MgO-222rd-444rd.yaml.xz": (
        "test/phono3py_params_MgO-222rd-444rd.yaml.xz",
        "8b711db9ca0763ac12fbdf6ff343754eafdbc5251e88fdae31f2fc1b28505dcf",
    ),
    "Si-111-222-fd/phono3py_params_Si-111-222-fd.yaml.xz": (
        "test/phono3py_params_Si-111-222-fd.yaml.xz",
        "28ee9457acca7dc1cfce0ba10e3a9f4c7b4846b7003c34efaa389d098aa3b501",
    ),
}

_MLEARN = ("materialsvirtuallab/mlearn", "10c427a5480c6281c15c64efaf869b03be04818f")

# mlearn: staged as ``gzip -9 -n`` copies of the original JSON (sha256 of the .json.gz), served
# upstream as plain JSON at data/<El>/<split>.json (sha256 of the original bytes, checked
# against the staged copies uncompressed). Cu and Ni training sets are not in the snapshot.
_MLEARN_SERVED_SHA = {
    "Si_training": "ae6d4b0a65b00e0fcf7ba0a6fad366716710d2f0d21d70199203089c6866b500",
    "Si_test": "d452b30a89f23bff76f7cc529b7b6c2d159ea81ccd5a4599fb1a18207654fa91",
    "Ge_training": "43dee02009a5167f94c7aafce19051222bcfc328c46181750cc2a2018187ca00",
    "Ge_test": "737ea6159c9dd27ebee7fb8ffae22f15e20466884927771248ca4f5b2cd3f093",
    "Li_training": "1cac01475c5a4fb85771ee1fd23366a6b8abfb9891e0c9e088b6e37228e147b3",
    "Li_test": "554d0ce60b35a07b357be3a80bf04f68eb8fc97b5a88328caf08c860b5e9b260",
    "Mo_training": "b13305fca0d0d2631ab080c8fcf13c743ee79a911712fb65a34ca88fadf09f9a",
    "Mo_test": "68169e2927c2115daa2f504805fcb9548ee65daf2dd015428807ba92f8e13bb8",
    "Cu_test": "1805a315ce8d0ce4a18bb761df4c4f619909ce114d598d426015d0071edc98c2",
    "Ni_test": "dccbfa14ddff5d1d35f658c48b68f6b431f95496a5261ef8b8f4d1d41e36008a",
}

_MLEARN_SHA = {
    "Si_training": "10339b3dbb45ba0e738673c4c4fa43199ee65fe37c4da240d103f10c9800b2dc",
    "Si_test": "997bebfb07ec71e8f03620eea081da395840ac7393b60e1361d54b3a49f5cf29",
    "Ge_training": "6fefce0b409da510e27f0a4f1ac6c21865f5b5bba44c669489f81171ffb3326f",
    "Ge_test": "82652d0a0b30cb7a443ac4777b561add1ec12e101c5350f4d645376ac71948e6",
    "Li_training": "9d3472f59ea350e263b4d8d3a08c48ac74f69e61a94c13abb1e1a7480988b590",
    "Li_test": "cedd3f5475fe77aca22ce71e0f80273bd4f6cac0e748411ebab497a06cac09c2",
    "Mo_training": "d1b31512ce9b41b16a2ff438ce365bd92f445acb9d865582dde4a3be9966a684",
    "Mo_test": "bf14d52046e437c2c22c92a826270efc23b0319212e5e67165260f31bd77320c",
    "Cu_test": "19c59bbef8f02df8603957c3208afd427a5ebd66e888a791af29939f359442d1",
    "Ni_test": "ba3ed293f1ee45d112dab89caf45fb8ab6b90bacf5b12ad581059871705dd593",
}

DATASETS: dict[str, DatasetEntry] = {
    # --- MDR phonon benchmark (Alexandria PBE phonopy yamls) ---------------------------------
    "mdr/mp-149": DatasetEntry(
        f"{_MDR}/mp-149.yaml",
        _gh(*_NEQUIX_EX, "phonon/mp-149.yaml"),
        "c0354708ce86c00665dc23342bc6c36338bb81b6078ddf22395864008da52de8",
    ),
    "mdr/mp-1000": DatasetEntry(
        f"{_MDR}/mp-1000.yaml.bz2",
        _gh(*_HYLLIOS, "benchmark_ph/example/mp-1000.yaml.bz2"),
        "3de3718e0ee95f3e0dd0d89c42b8ebbfa6e964bf1b0437f742a3781c93fafa5f",
    ),
    "mdr/nequix-split": DatasetEntry(
        f"{_MDR}/nequix_pbe_mdr_split.json",
        _gh(*_NEQUIX, "data/pbe_mdr_split.json"),
        "86b7f40888a28c75184029e81a0251cab7221cbc32a4d884e21cce342e27b8f9",
    ),
    "mdr/matcalc-binary-cv": DatasetEntry(
        f"{_MDR}/matcalc_alexandria-binary-pbe-phonon-2025.1.json.gz",
        _gh(*_MATCALC, "benchmark_data/alexandria-binary-pbe-phonon-2025.1.json.gz"),
        "4a524330da5173a09bca362f16ed2479a1c6882ee50913a71067444ac8e63a56",
    ),
    # --- mlearn (Zuo et al. 2020) E/F/stress sets ---------------------------------------------
    **{
        f"mlearn/{key}": DatasetEntry(
            f"{_ML}/{key}.json.gz",
            _gh(*_MLEARN, "data/{}/{}.json".format(*key.split("_"))),
            sha,
            served_sha256=_MLEARN_SERVED_SHA[key],
        )
        for key, sha in _MLEARN_SHA.items()
    },
    "mlearn/ACEData-xyz": DatasetEntry(
        f"{_ML}/ACEData_ZuoEtAl2020_xyz.tar.gz",
        _gh(*_ACEDATA, "minibenchmarks/ZuoEtAl2020.tar.gz"),
        "f77a80e2fb00534f42bce2ccf72833dfec316d48f2b756aa333687652dd6c589",
    ),
    # --- k_SRME (PhononDB-PBE structures and DFT kappa, GPL-3.0) ------------------------------
    "kappa/phonondb-structures": DatasetEntry(
        f"{_KAP}/phononDB-PBE-structures.extxyz",
        _gh(*_KSRME, "data/phononDB-PBE-structures.extxyz"),
        "63e012fdafc61702ab22cdbda7e9c0603f57f54c2e464666585a9159e0ce5b38",
    ),
    "kappa/phonondb-kappas": DatasetEntry(
        f"{_KAP}/kappas_phononDB_PBE_noNAC.json.gz",
        _gh(*_KSRME, "data/kappas_phononDB_PBE_noNAC.json.gz"),
        "442f651d3272e8a104baab3e53241220bf66afc90559f593fb3d7697874506ea",
    ),
    "kappa/mp_id-phonondb_id": DatasetEntry(
        f"{_KAP}/mp_id-phonondb_id.txt",
        _gh(*_KSRME, "data/mp_id-phonondb_id.txt"),
        "f4a5a4e464d557760bb37eaea9bd8a687acc12bfd44bd375410cd7a4600515bb",
    ),
    "kappa/metrics-MACE-MPA-0": DatasetEntry(
        f"{_KAP}/metrics_MACE-MPA-0.txt",
        _gh(*_KSRME, "models/MACE-MPA-0/metrics.txt"),
        "8246924f01927dccce7507c3d174af0aa6ec64ea360b4d61233a658e67dd4cff",
    ),
    # --- nequix pretrained weights ------------------------------------------------------------
    "nequix/mp-1": DatasetEntry(
        f"{_NQ}/nequix-mp-1.nqx",
        _gh(*_NEQUIX, "models/nequix-mp-1.nqx"),
        "1647af8e627e1afa11e2bfadeab0797326513a521afd7dd01606a96f56783eee",
    ),
    "nequix/mp-1-pft": DatasetEntry(
        f"{_NQ}/nequix-mp-1-pft.nqx",
        _gh(*_NEQUIX, "models/nequix-mp-1-pft.nqx"),
        "a88aeaed71fd447572dc57af21d469207d7737b85a6dbb66f8c38156f175c5f1",
    ),
    "nequix/mp-1-pft-nocotrain": DatasetEntry(
        f"{_NQ}/nequix-mp-1-pft-nocotrain.nqx",
        _gh(*_NEQUIX, "models/nequix-mp-1-pft-nocotrain.nqx"),
        "c191f7208e15f7caf8cc5c1202444652f301fed2f41d85f9a8080af3843ef308",
    ),
    # --- phonopy examples (FORCE_SETS + phonopy_disp.yaml + BORN + POSCAR-unitcell) ------------
    # phonopy_disp.yaml / FORCE_SETS are stated byte-identical to the pinned commit; BORN and
    # POSCAR-unitcell come from the same example folders (sdist) and are checksum-verified anyway.
    **{
        f"phonopy/{key}": DatasetEntry(
            f"{_P2}/{key}",
            _gh(*_PHONOPY, f"example/{key}"),
            sha,
            staged=not key.startswith("TiO2-anatase/"),
        )
        for key, sha in _PHONOPY_EXAMPLES.items()
    },
    "phonopy/NaCl/BORN_phonopy-test-fixture": DatasetEntry(
        f"{_P2}/NaCl/BORN_phonopy-test-fixture",
        _gh(*_PHONOPY, "test/BORN_NaCl"),
        "2348d9d03249f99a97156f126b7d3355431b3e5d8a652c7f134dd038a489772e",
    ),
    # --- phono3py examples and test fixtures (all byte-identical to the pinned commit) --------
    **{
        f"phono3py/{key}": DatasetEntry(f"{_P3}/{key}", _gh(*_PHONO3PY, upstream), sha)
        for key, (upstream, sha) in _PHONO3PY_FILES.items()
    },
}


class MemberEntry(NamedTuple):
    """One file inside a registered archive (a tarball dataset): extracted on first use into
    ``members/`` of :func:`cache_dir`, checked against ``sha256``."""

    archive: str
    member: str
    sha256: str


#: files inside registered archives, by dataset name (the mlearn Cu/Ni training sets exist only
#: as ACEData's xyz conversion: energy and forces, no stress)
MEMBERS: dict[str, MemberEntry] = {
    "mlearn/Cu_training-xyz": MemberEntry("mlearn/ACEData-xyz", "ZuoEtAl2020/Cu_train.xyz",
                                          "ca3d2960ee3c2351c9d57c5d5a475eda35cedc2b87c3e64c414c68d7c4a89e0a"),
    "mlearn/Ni_training-xyz": MemberEntry("mlearn/ACEData-xyz", "ZuoEtAl2020/Ni_train.xyz",
                                          "7d97eed9d083ed0b25f89b52a43a3c0876669c9889f309b857dfb5313ee38cb2"),
}  # fmt: skip


def data_root() -> Path | None:
    """Directory holding the staged reference data, or ``None``.

    Returns ``$PFTLITE_DATA`` if it names an existing directory, else ``shared/data`` beside the
    repository checkout (``<repo>/../shared/data``) if that exists.
    """
    env = os.environ.get(ENV_VAR)
    if env and Path(env).expanduser().is_dir():
        return Path(env).expanduser().resolve()
    default = Path(__file__).resolve().parents[3] / "shared" / "data"  # <repo>/pftlite/datasets/registry.py
    return default if default.is_dir() else None


def _entry(name: str) -> DatasetEntry:
    """Registry entry for ``name``; unknown names raise InputError with close names."""
    try:
        return DATASETS[name]
    except KeyError:
        pass
    close = sorted(n for n in DATASETS if n.startswith(name.rstrip("/") + "/"))
    close = close or difflib.get_close_matches(name, list(DATASETS), n=5, cutoff=0.5)
    hint = f"close names: {', '.join(close)}" if close else "see pftlite.datasets.registry.DATASETS"
    raise InputError(f"unknown dataset {name!r}; {hint}")


def _local(entry: DatasetEntry) -> tuple[Path, str] | None:
    """(path, expected sha256) of the staged or served copy under :func:`data_root`."""
    root = data_root()
    if root is None:
        return None
    for rel, sha in ((entry.path, entry.sha256), (entry.served_path, entry.download_sha256)):
        if (root / rel).is_file():
            return root / rel, sha
    return None


def local_path(name: str) -> Path | None:
    """Path of dataset ``name`` under :func:`data_root`, or ``None`` if it is not there."""
    hit = _local(_entry(name))
    return None if hit is None else hit[0]


def cache_dir() -> Path:
    """Download cache: ``$PFTLITE_CACHE``, else pooch's per-user cache for ``pftlite``."""
    from pftlite.core.cache import cache_root

    return cache_root()


def available(name: str) -> bool:
    """Whether dataset ``name`` is present locally (no network access)."""
    if name in MEMBERS:
        return available(MEMBERS[name].archive)
    return local_path(name) is not None


def sha256sum(path: str | os.PathLike) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(name: str, verify: bool = False) -> Path:
    """Local path of dataset ``name``, downloading it if needed.

    Parameters
    ----------
    name : str
        Key of ``DATASETS``, e.g. ``"mdr/mp-149"`` or ``"phonopy/NaCl/FORCE_SETS"``.
    verify : bool
        Also check the sha256 of a local file (downloads are always checked).

    Returns
    -------
    pathlib.Path
        Existing file.

    Raises
    ------
    InputError
        Unknown name (the message lists close names).
    DataUnavailable
        Not found locally and not downloadable, or a local checksum mismatch with ``verify``.
    """
    if name in MEMBERS:
        return _fetch_member(name, verify)
    entry = _entry(name)
    hit = _local(entry)
    if hit is not None:
        path, expected = hit
        if verify and (digest := sha256sum(path)) != expected:
            raise DataUnavailable(
                f"dataset {name!r}: {path} has sha256 {digest}, expected {expected}"
            )
        return path
    where = f"${ENV_VAR} ({os.environ[ENV_VAR]})" if os.environ.get(ENV_VAR) else f"${ENV_VAR}"
    if entry.url is None:
        raise DataUnavailable(
            f"dataset {name!r}: not under {where} or ../shared/data, and it has no public URL "
            f"({entry.not_public}); set ${ENV_VAR} to a folder holding {entry.path}"
        )
    rel = Path(entry.served_path)
    cached = cache_dir() / rel
    if cached.is_file() and sha256sum(cached) == entry.download_sha256:
        return cached  # an earlier download (what pooch would return without the network)
    try:
        import pooch

        pooch.get_logger().setLevel("WARNING")  # the outcome is reported here, in one line
        return Path(
            pooch.retrieve(
                entry.url,
                known_hash=f"sha256:{entry.download_sha256}",
                fname=rel.name,
                path=cache_dir() / rel.parent,
                progressbar=False,
            )
        )
    except Exception as exc:  # network, HTTP, checksum: all reported the same way
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())
    raise DataUnavailable(
        f"dataset {name!r}: not under {where} or ../shared/data, and the download of "
        f"{entry.url} failed ({reason}); download that file and set ${ENV_VAR} to a folder "
        f"holding it as {entry.served_path}"
    )


def _fetch_member(name: str, verify: bool = False) -> Path:
    """A :data:`MEMBERS` file: the cached extract if its sha256 matches, else extracted anew
    from its archive (fetched like any dataset) and written atomically."""
    import tarfile

    from pftlite.core.atomic import atomic_path

    m = MEMBERS[name]
    path = cache_dir() / "members" / name
    if path.is_file() and sha256sum(path) == m.sha256:
        return path
    archive = fetch(m.archive, verify=verify)
    try:
        with tarfile.open(archive) as tar:
            data = tar.extractfile(m.member).read()
    except (OSError, KeyError, tarfile.TarError, AttributeError) as exc:
        raise DataUnavailable(f"dataset {name!r}: cannot read {m.member} from {archive} ({type(exc).__name__})") from None
    if hashlib.sha256(data).hexdigest() != m.sha256:
        raise DataUnavailable(f"dataset {name!r}: {m.member} in {archive} has the wrong sha256")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path
