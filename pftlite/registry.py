"""One place that maps a backend name to its implementation.

Backends are imported lazily: ``--backend numba`` never imports JAX. An unknown name or a
backend whose dependencies are missing raises :class:`~pftlite.errors.BackendUnavailable`;
there is never a silent fallback to another backend. Set ``PFTLITE_TRACE_BACKEND=1`` to log
which backend each call resolves to.
"""

from __future__ import annotations

import importlib
import logging
import os

from .errors import BackendUnavailable

BACKENDS = {
    "numba": ("pftlite.backends.numba_backend", "numba"),
    "jax": ("pftlite.backends.jax_backend", "jax"),
}
DEFAULT_BACKEND = "numba"
INTERFACE = ("energy_forces_stress", "hvp", "hessian", "loss_and_grad")

_log = logging.getLogger("pftlite.registry")


def get_backend(name: str | None = None):
    """The backend module for ``name`` ("numba" or "jax"; None -> default "numba")."""
    name = DEFAULT_BACKEND if name is None else str(name).lower()
    if name not in BACKENDS:
        raise BackendUnavailable(
            f"unknown backend {name!r}; choose one of: {', '.join(sorted(BACKENDS))}"
        )
    module, requirement = BACKENDS[name]
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise BackendUnavailable(
            f"backend {name!r} needs the '{requirement}' package, which is not importable "
            f"({exc}); install it with: pip install 'pftlite[{requirement}]'"
        ) from None
    if os.environ.get("PFTLITE_TRACE_BACKEND"):
        _log.warning("pftlite: using backend %s (%s)", name, module)
    return mod


def available_backends() -> list[str]:
    """Names of the backends importable on this machine."""
    out = []
    for name in BACKENDS:
        try:
            get_backend(name)
            out.append(name)
        except BackendUnavailable:
            pass
    return out
