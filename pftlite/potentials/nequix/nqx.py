"""The ``.nqx`` model file of nequix, read and written without nequix (and without pickle).

Layout: one line of JSON (nequix's config: architecture, training settings, per-species
energies), then one NPY v1.0 record per parameter leaf, in the order of
:func:`pftlite.potentials.nequix.model.leaf_layout` (equinox's ``tree_serialise_leaves``).
Exactly that many records are read: ``nequix-mp-1.nqx`` as published ends in one stray newline.
A file written here loads in nequix itself (float32 leaves, the same header keys; pftlite's
provenance goes in an extra ``pftlite`` header key that nequix ignores).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from pftlite.core.atomic import atomic_path
from pftlite.core.errors import InputError
from pftlite.potentials.base import Potential
from pftlite.potentials.nequix.model import NequixSpec, leaf_layout


def read_nqx(path, dtype: str = "float32") -> Potential:
    """A Nequix potential from a ``.nqx`` file. ``dtype``: the parameters' and the arithmetic's
    float type ("float32" as published, or "float64"). metadata: ``nqx_header`` (the whole
    header, training settings included) and ``source``."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    f = io.BytesIO(raw)
    try:
        header = json.loads(f.readline().decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InputError(f"{path}: not a .nqx model (the first line is not a JSON header)") from None
    if not isinstance(header, dict):
        raise InputError(f"{path}: not a .nqx model (the header is not a JSON object)")
    spec = NequixSpec.from_header(header, dtype, where=str(path))
    params = {}
    for key, shape in leaf_layout(spec):
        try:
            version = npy_format.read_magic(f)
            read_header = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
            shape_f, fortran, dt = read_header(f)
        except Exception as exc:  # noqa: BLE001 - truncated or not NPY: one message
            raise InputError(f"{path}: parameter '{key}' is missing or damaged ({type(exc).__name__})") from None
        if tuple(shape_f) != shape or fortran or dt.kind != "f" or dt.hasobject:
            raise InputError(f"{path}: parameter '{key}' is {dt}{list(shape_f)}, expected float{list(shape)}")
        n = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        buf = f.read(n)
        if len(buf) != n:
            raise InputError(f"{path}: truncated at parameter '{key}'")
        params[key] = np.frombuffer(buf, dtype=dt).reshape(shape).astype(dtype)
    rest = f.read()
    if rest.strip():
        raise InputError(f"{path}: {len(rest)} bytes after the last parameter (another architecture?)")
    return Potential(spec, params, {"nqx_header": header, "source": str(path)}).check(str(path))


def nqx_bytes(potential: Potential) -> bytes:
    """The ``.nqx`` bytes of a Nequix potential: its header (the loaded file's, with the
    architecture and atom energies of this spec, and pftlite's history under ``pftlite``), then
    the float32 leaves."""
    spec = potential.spec
    header = dict(potential.metadata.get("nqx_header") or {})
    header.update(spec.to_header())
    header.setdefault("mlp_init_scale", 4.0)  # read by nequix's loader (initialisation only)
    e0 = np.asarray(potential.params["atom_energies"], dtype=np.float32)
    old = header.get("atom_energies") or {}
    # nequix evaluates with the leaf; its header copy of the published files differs from the
    # leaf by up to 1 float32 ulp: keep the header's numbers unless the energies really changed
    if not (set(old) == {str(z) for z in spec.species}
            and np.all(np.abs(np.float32([old[str(z)] for z in spec.species]) - e0) <= 2 * np.spacing(np.abs(e0)))):  # fmt: skip
        header["atom_energies"] = {str(z): float(e) for z, e in zip(spec.species, e0)}
    extra = {k: v for k, v in potential.metadata.items() if k not in ("nqx_header", "source")}
    if extra:
        header["pftlite"] = extra
    out = io.BytesIO()
    out.write((json.dumps(header) + "\n").encode())
    for key, _ in leaf_layout(spec):
        npy_format.write_array(out, np.ascontiguousarray(potential.params[key], dtype="<f4"), version=(1, 0))
    return out.getvalue()


def write_nqx(path, potential: Potential) -> Path:
    """Write ``potential`` as a ``.nqx`` file atomically."""
    path = Path(path)
    potential.check(str(path))
    data = nqx_bytes(potential)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path
