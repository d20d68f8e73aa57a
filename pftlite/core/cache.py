"""Where pftlite keeps what it can recompute: downloads, compiled JAX code, distilled labels."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$PFTLITE_CACHE``, else the per-user cache folder for ``pftlite`` (pooch's choice:
    ``~/.cache/pftlite`` on Linux). Subfolders: ``jax/`` (compiled code), ``distill/``
    (self-distillation labels); downloads sit at the top."""
    env = os.environ.get("PFTLITE_CACHE")
    if env:
        return Path(env).expanduser()
    import pooch

    return Path(pooch.os_cache("pftlite"))
