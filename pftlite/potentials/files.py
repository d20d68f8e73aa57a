"""Model files: one format for every potential, and the built-in models by name.

A model file is an ``.npz`` container (no pickle) holding ``header`` (JSON: ``format``
"pftlite-model", ``version`` 1, ``kind`` — the potential family, "manybody" when absent, as in
files written before families existed — and ``spec``, the hyperparameters), ``metadata`` (JSON,
free: training provenance) and ``param/<name>`` arrays (float64). Written atomically.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from pftlite.core.atomic import atomic_path
from pftlite.core.errors import InputError
from pftlite.potentials.base import Potential, families, family_named

FORMAT_NAME = "pftlite-model"
FORMAT_VERSION = 1
DEFAULT_KIND = "manybody"
BUILTIN_DIR = Path(__file__).resolve().parents[1] / "data"
#: pretrained models fetched like any dataset (pftlite.datasets), by model name
PRETRAINED = {
    "nequix-mp-1": "nequix/mp-1",
    "nequix-mp-1-pft": "nequix/mp-1-pft",
    "nequix-mp-1-pft-nocotrain": "nequix/mp-1-pft-nocotrain",
}


def save_potential(path, potential: Potential) -> Path:
    """Write ``potential`` (spec, params, metadata) to ``path`` atomically; returns the path.
    A ``.nqx`` path writes nequix's format (Nequix potentials only); anything else the npz."""
    path = Path(path)
    if path.suffix == ".nqx":
        if potential.kind != "nequix":
            raise InputError(f"{path}: .nqx holds Nequix models; a {potential.kind!r} potential is saved as .npz")
        from pftlite.potentials.nequix.nqx import write_nqx

        return write_nqx(path, potential)
    potential.check(str(path))
    header = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "kind": potential.kind,
              "spec": potential.spec.to_dict()}  # fmt: skip
    arrays = {f"param/{k}": np.asarray(v, dtype=np.float64) for k, v in potential.params.items()}
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    arrays["metadata"] = np.frombuffer(json.dumps(potential.metadata or {}).encode(), dtype=np.uint8)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def builtin_models() -> dict[str, Path]:
    """Built-in model names (``si-mlearn``, ...) -> the model files shipped in pftlite/data."""
    return {p.stem: p for p in sorted(BUILTIN_DIR.glob("*.npz"))}


def model_names() -> list[str]:
    """Every name a MODEL argument accepts besides a path: built-in and pretrained models."""
    return [*builtin_models(), *PRETRAINED]


def resolve_model(arg) -> Path:
    """A model file path, the name of a built-in model, or of a pretrained model (fetched like a
    dataset: local data root, cache, or its public URL). An existing file wins."""
    p = Path(arg)
    if p.exists():
        return p
    if str(arg) in PRETRAINED:
        from pftlite.datasets.registry import fetch

        return fetch(PRETRAINED[str(arg)])
    return builtin_models().get(str(arg), p)  # load_potential reports "not found"


def load_potential(path, dtype: str | None = None) -> Potential:
    """Read a model file, or a model by name (``"si-mlearn"``, ``"nequix-mp-1"``). ``dtype``:
    for a ``.nqx`` model, "float32" (default, as published) or "float64". Errors name the file
    and the problem (one line)."""
    path = resolve_model(path)
    if not path.is_file():
        raise InputError(f"{path}: model file not found (model names: {', '.join(model_names())})")
    if path.suffix == ".nqx":
        from pftlite.potentials.nequix.nqx import read_nqx

        return read_nqx(path, dtype or "float32")
    try:
        raw = path.read_bytes()
        with np.load(io.BytesIO(raw), allow_pickle=False) as z:
            files = dict(z)
    except Exception as exc:  # noqa: BLE001 - any decode failure is a corrupt file
        raise InputError(f"{path}: not a pftlite model file ({type(exc).__name__})") from None
    if "header" not in files:
        raise InputError(f"{path}: not a pftlite model file (no header)")
    try:
        header = json.loads(files["header"].tobytes().decode())
        metadata = json.loads(files.get("metadata", np.zeros(0, np.uint8)).tobytes().decode() or "{}")
    except Exception:  # noqa: BLE001
        raise InputError(f"{path}: corrupt model header") from None
    if not isinstance(header, dict) or not isinstance(metadata, dict):
        raise InputError(f"{path}: corrupt model header")
    if header.get("format") != FORMAT_NAME:
        raise InputError(f"{path}: not a pftlite model file (format {header.get('format')!r})")
    version = header.get("version")
    if version != FORMAT_VERSION:
        raise InputError(
            f"{path}: model format version {version} is not supported "
            f"(this pftlite reads version {FORMAT_VERSION})"
        )
    kind = header.get("kind", DEFAULT_KIND)
    fam = family_named(kind) if isinstance(kind, str) else None
    if fam is None:
        raise InputError(f"{path}: unknown potential kind {kind!r} (known: {', '.join(families())})")
    try:
        spec = fam.spec_type.from_dict(header.get("spec"))
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    params = {k[len("param/"):]: np.array(v) for k, v in files.items() if k.startswith("param/")}
    return Potential(spec, params, metadata).check(str(path))
