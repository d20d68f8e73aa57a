"""Self-distillation: co-training data labelled by the frozen base model itself.

The upstream set a foundation model was trained on (MPtrj for Nequix MP) is not at hand for
most users. Co-training on the base model's own energies, forces and stresses of rattled and
strained copies of the phonon structures (and of any structures the user adds) keeps the tuned
model close to the base away from the phonon data — the job co-training does — without the
original data. The labels are a function of (base model fingerprint, backend, structures,
settings) and are cached under that key in ``distill/`` of
:func:`pftlite.core.cache.cache_root`, written atomically; they mix freely with real DFT E/F/S.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from pftlite.core.atomic import atomic_path
from pftlite.core.cache import cache_root
from pftlite.structures.batch import make_batch
from pftlite.training.fit import perturbed_copies

CACHE_VERSION = 1


def cache_dir() -> Path:
    return cache_root() / "distill"


def distillation_key(potential, backend: str, structures, n: int, rattle: float, strain: float, seed: int) -> str:
    """sha256 (16 hex) of everything the labels depend on."""
    h = hashlib.sha256(json.dumps({"v": CACHE_VERSION, "model": potential.fingerprint(), "backend": backend,
                                   "n": n, "rattle": rattle, "strain": strain, "seed": seed}).encode())  # fmt: skip
    for a in structures:
        for arr in (a.numbers, a.positions, np.asarray(a.cell[:])):
            h.update(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
    return h.hexdigest()[:16]


def label_with(potential, backend: str, structures) -> list:
    """Copies of ``structures`` labelled by ``potential``: ``info["energy"]`` eV,
    ``arrays["forces"]`` eV/Å, ``info["stress"]`` Voigt eV/Å³ (ASE sign), ``info["source"]``."""
    from ase.stress import full_3x3_to_voigt_6_stress

    ev = potential.on(backend)
    out = []
    for k, a in enumerate(structures):
        o = ev.energy_forces_stress(make_batch([a], potential, sources=[f"distill[{k}]"]))
        b = a.copy()
        b.calc = None
        b.info["energy"] = float(o["energy"][0])
        b.arrays["forces"] = np.asarray(o["forces"], dtype=np.float64)
        b.info["stress"] = full_3x3_to_voigt_6_stress(np.asarray(o["stress"][0]))
        b.info["source"] = f"distill[{k}] {a.info.get('source', a.get_chemical_formula())}"
        out.append(b)
    return out


def distillation_set(potential, backend: str, structures, n: int = 16, rattle: float = 0.05, strain: float = 0.01,
                     seed: int = 0, cache=None, progress=None) -> tuple[list, dict]:  # fmt: skip
    """``n`` rattled (std ``rattle`` Å) and strained (std ``strain``) copies of ``structures``
    (taken in turn), labelled by the frozen ``potential``. Returns (labelled ase.Atoms, record:
    key, cache file, whether it was read from the cache, settings)."""
    key = distillation_key(potential, backend, structures, n, rattle, strain, seed)
    path = Path(cache) if cache is not None else cache_dir() / f"{key}.npz"
    record = {"key": key, "file": str(path), "n": n, "rattle": rattle, "strain": strain, "seed": seed,
              "base_model": potential.fingerprint(), "backend": backend, "from_cache": False}  # fmt: skip
    copies = perturbed_copies(list(structures), rattle, strain, n=n, seed=seed)
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["key"]) == key:
                    for k, a in enumerate(copies):
                        a.info["energy"] = float(z["energy"][k])
                        a.arrays["forces"] = np.array(z[f"forces/{k}"])
                        a.info["stress"] = np.array(z["stress"][k])
                        a.info["source"] = f"distill[{k}] {a.get_chemical_formula()}"
                    record["from_cache"] = True
                    return copies, record
        except (OSError, ValueError, KeyError):
            pass  # damaged or foreign: recompute and replace
    labelled = label_with(potential, backend, copies)
    arrays = {"key": np.array(key), "energy": np.array([a.info["energy"] for a in labelled]),
              "stress": np.stack([a.info["stress"] for a in labelled])}  # fmt: skip
    arrays.update({f"forces/{k}": a.arrays["forces"] for k, a in enumerate(labelled)})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    except OSError:
        record["file"] = None  # read-only cache: labels are recomputed next time
    return labelled, record


def energy_drift(base, tuned, backend: str, structures) -> dict:
    """Mean and max per-atom energy change tuned − base (meV/atom) on ``structures``, per element
    of a one-element structure and over all: the drift co-training is meant to prevent."""
    from collections import defaultdict

    eb, et = base.on(backend), tuned.on(backend)
    per = defaultdict(list)
    for a in structures:
        b = make_batch([a], base)
        d = (et.energy_forces_stress(b)["energy"][0] - eb.energy_forces_stress(b)["energy"][0]) / len(a) * 1e3
        elements = sorted(set(a.get_chemical_symbols()))
        per["-".join(elements)].append(float(d))
        per["all"].append(float(d))
    return {k: {"mean": float(np.mean(v)), "max_abs": float(np.max(np.abs(v))), "n": len(v)} for k, v in per.items()}
