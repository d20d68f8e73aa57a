"""The κ_SRME benchmark run (Matbench Discovery protocol) for one model.

For every PhononDB-PBE material whose elements the model covers: relax the unit cell (fixed
symmetry), fc2 in the benchmark's fc2 supercell, fc3 in its fc3 supercell, Wigner RTA κ at
300 K with isotope scattering and a 1e6 µm boundary on the benchmark's q mesh, then SRD, SRE
and the mode-resolved SRME against the DFT reference (:mod:`pftlite.kappa.ksrme`); materials that
fail (relaxation, broken symmetry, imaginary modes) score 2. One JSON per material (written
atomically; a rerun with the same model and protocol skips it), ``summary.json`` at the end.
"""

from __future__ import annotations

from dataclasses import replace

BENCHMARK_SETTINGS = {"temperatures": (300.0,), "isotope": True, "wigner": True, "boundary_mfp": 1e6}


def benchmark_protocol(protocol, material):
    """``protocol`` with the benchmark's conductivity settings and q mesh for ``material``."""
    s = replace(protocol.settings(), **BENCHMARK_SETTINGS, mesh=tuple(int(x) for x in material.q_mesh))
    return replace(protocol, kappa=s)


def score_one(potential, backend, material, protocol, progress=None) -> tuple[dict, dict, object]:
    """``(score row, record, KappaResult or None)`` for one material."""
    from pftlite.kappa import ksrme
    from pftlite.kappa.evaluate import model_kappa

    rec, res = model_kappa(potential, backend, material.atoms, material.primitive_matrix,
                           material.fc2_supercell, material.fc3_supercell, protocol, progress)  # fmt: skip
    score = ksrme.score_material(material, rec if rec["status"] != "ok" else res)
    return score, rec, res
