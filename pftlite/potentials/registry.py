"""Backend names, and the deprecated ``get_backend``.

Potential families are listed in :data:`pftlite.potentials.base.FAMILY_MODULES` (the built-in
many-body model: numba + jax; the Morse pair potential: jax) and loaded on first use. Backend
modules are imported lazily (``--backend numba`` never imports JAX);
an unknown backend, one a potential does not support, or one whose package is missing raises
:class:`~pftlite.core.errors.BackendUnavailable` with a one-line message — there is never a
silent fallback. ``PFTLITE_TRACE_BACKEND=1`` logs every binding.
"""

from __future__ import annotations

import warnings

from pftlite.core.errors import BackendUnavailable
from pftlite.potentials.base import BACKEND_REQUIREMENTS, backend_module, evaluator, family_named

BACKENDS = tuple(BACKEND_REQUIREMENTS)
DEFAULT_BACKEND = "numba"
INTERFACE = ("energy_forces_stress", "hvp", "hessian", "hvp_derivative", "loss_and_grad")

__all__ = ["BACKENDS", "DEFAULT_BACKEND", "INTERFACE", "available_backends", "check_backend_name", "evaluator",
           "get_backend", "manybody_backend"]


def check_backend_name(name: str | None) -> str:
    """``name`` lower-cased if it is a known backend; BackendUnavailable otherwise."""
    name = DEFAULT_BACKEND if name is None else str(name).lower()
    if name not in BACKENDS:
        raise BackendUnavailable(f"unknown backend {name!r}; choose one of: {', '.join(sorted(BACKENDS))}")
    return name


def manybody_backend(name: str | None = None):
    """The built-in many-body model's backend module for ``name`` (implementation-level code:
    benchmarks and tests of the kernels themselves). Everything else uses ``potential.on``."""
    return backend_module(family_named("manybody"), check_backend_name(name))


def get_backend(name: str | None = None):
    """Deprecated: the built-in many-body model's backend module for ``name``.

    Use ``potential.on(name)`` (:class:`~pftlite.potentials.base.Evaluator`), which works for
    every potential. Kept so that ``get_backend(name).energy_forces_stress(spec, params,
    batch)`` written against pftlite 0.1 still runs.
    """
    warnings.warn("pftlite.get_backend(name) is deprecated; use potential.on(name)", DeprecationWarning,
                  stacklevel=2)  # fmt: skip
    return manybody_backend(name)


def available_backends(kind: str = "manybody") -> list[str]:
    """Names of the backends importable on this machine for potentials of ``kind``."""
    fam = family_named(kind)
    out = []
    for name in fam.backends:
        try:
            backend_module(fam, name)
            out.append(name)
        except BackendUnavailable:
            pass
    return out

