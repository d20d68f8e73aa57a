"""Reading text inputs: compressed files, one-line messages, checked keys and arrays.

Shared by every reader (:mod:`pftlite.structures.io`, :mod:`pftlite.datasets`): a failure is an
:class:`~pftlite.core.errors.InputError` whose one-line message names the file and the key.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
from pathlib import Path

import numpy as np

from pftlite.core.errors import InputError

OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open, ".lzma": lzma.open}


def one_line(exc: BaseException) -> str:
    """``'<Type>: <message>'`` squeezed onto one line."""
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def base_name(path: Path) -> str:
    """Lower-case file name without a compression suffix (``a.json.gz`` -> ``a.json``)."""
    name = path.name.lower()
    for ext in OPENERS:
        if name.endswith(ext):
            return name[: -len(ext)]
    return name


def open_text(path: Path):
    """Open a plain or gz/bz2/xz-compressed file for reading text."""
    opener = OPENERS.get(path.suffix.lower(), open)
    return opener(path, "rt", encoding="utf-8")


def get_key(d, keys: str, where: str):
    """``d[k1][k2]...`` for dotted ``keys``; InputError naming the missing key."""
    for key in keys.split("."):
        if not isinstance(d, dict) or key not in d:
            raise InputError(f"{where}: missing key '{keys}'")
        d = d[key]
    return d


def float_array(value, shape: tuple, what: str, where: str) -> np.ndarray:
    """``value`` as a finite float array of ``shape`` (-1 = any length)."""
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"{where}: {what} is not numeric") from None
    ok = arr.ndim == len(shape) and all(s in (-1, n) for s, n in zip(shape, arr.shape))
    if not ok:
        want = "x".join("N" if s == -1 else str(s) for s in shape) or "a scalar"
        raise InputError(f"{where}: {what} has shape {arr.shape}, expected {want}")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{where}: {what} contains NaN or inf")
    return arr
