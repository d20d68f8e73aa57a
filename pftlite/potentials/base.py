"""The potential interface: what a potential is, and what a backend computes for it.

A **potential** is a value, :class:`Potential`: the hyperparameters of its kind (``spec``, a
frozen hashable dataclass with at least ``species`` — atomic numbers — and ``r_cut``, Å), its
parameters (``params``: name -> float64 ndarray, a pytree) and free ``metadata``
(provenance). Training returns a new value (:meth:`Potential.with_params`); nothing mutates.

A **family** (:class:`Family`) says what a kind of potential is: how its parameters are
checked, which of them train, and which backend modules compute it. Every backend module
exports the same five functions, with the same units (eV, Å; float64 unless said otherwise):

=============================================================  ===================================
``energy_forces_stress(spec, params, batch)``                  dict: energy (B,) eV, forces (N, 3)
                                                               eV/Å, stress (B, 3, 3) eV/Å³ (ASE
                                                               sign, (1/V) dE/dε)
``hvp(spec, params, batch, v)``                                H v (N, 3) eV/Å², v (N, 3) Å
``hessian(spec, params, batch, columns=None, chunk=None)``     (N, N, 3, 3) eV/Å² (phonopy
                                                               layout) or columns (n, N, 3)
``hvp_derivative(spec, params, batch, u, V, h=1e-3, chunk)``   d/de [H(x + e u) V_i] (n, N, 3)
                                                               eV/Å³ (fc3)
``loss_and_grad(spec, params, batch, targets, lspec)``         (loss, grads over the trainable
                                                               keys, per-term values)
=============================================================  ===================================

and ``NAME`` (its backend name), ``EXACT_HVP_DERIVATIVE`` (True when ``hvp_derivative`` is
exact rather than a finite difference of HVPs) and, for a backend that pads batches to shared
compiled shapes, ``PAD`` (its minimum padded (atoms, edges); ``Batch.pad_to`` then applies). Callers never use a backend module directly:
:meth:`Potential.on` binds a potential to a backend and returns an :class:`Evaluator`, the one
object trainer, phonons, kappa, relaxation and the ASE calculator compute with.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import Any

import numpy as np

from pftlite.core.errors import BackendUnavailable

BACKEND_REQUIREMENTS = {"numba": "numba", "jax": "jax"}
_log = logging.getLogger("pftlite.potentials")


@dataclass(frozen=True)
class Family:
    """A kind of potential.

    kind: its name in model files (``"manybody"``, ``"pair"``). spec_type: its hyperparameter
    class (with ``to_dict`` / ``from_dict``). backends: backend name -> module path, imported
    lazily. trainable(spec) -> the parameter keys a training gradient covers.
    check_params(spec, params, source) raises InputError on a wrong shape or a NaN.
    describe(spec, params) -> dict for ``pftlite info`` (with a one-line ``summary``).
    least_squares: optional ``(spec, structures, weights, progress, normalise_on, seed) ->
    params``, a least-squares fit of the parameters that enter linearly (a base fit, or the
    start of a gradient fit); None when the potential has none. is_linear(spec): whether that
    least-squares fit is already the whole fit.
    """

    kind: str
    spec_type: type
    backends: dict
    trainable: Callable
    check_params: Callable
    describe: Callable
    least_squares: Callable | None = None
    is_linear: Callable = lambda spec: False


#: kind -> "module:attribute" of its Family; imported on first use (no import cycle, and a
#: family's numerics load only when a potential of that kind is used)
FAMILY_MODULES = {
    "manybody": "pftlite.potentials.manybody.family:MANYBODY",
    "pair": "pftlite.potentials.pair.family:PAIR",
    "nequix": "pftlite.potentials.nequix.family:NEQUIX",
}
_FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Make a family known (a potential outside pftlite registers itself on import)."""
    _FAMILIES[family.kind] = family
    return family


def _load_families() -> None:
    for kind, target in FAMILY_MODULES.items():
        if kind not in _FAMILIES:
            module, attr = target.split(":")
            register_family(getattr(importlib.import_module(module), attr))


def family_of(spec) -> Family:
    """The family whose ``spec_type`` ``spec`` is."""
    _load_families()
    for fam in _FAMILIES.values():
        if isinstance(spec, fam.spec_type):
            return fam
    raise TypeError(f"no potential family for {type(spec).__name__}")


def family_named(kind: str) -> Family | None:
    """The family of ``kind`` ("manybody", "pair", ...), or None."""
    _load_families()
    return _FAMILIES.get(kind)


def families() -> dict[str, Family]:
    _load_families()
    return dict(_FAMILIES)


@dataclass(frozen=True, eq=False)
class Potential:
    """A potential: ``spec`` (hyperparameters), ``params`` (name -> ndarray), ``metadata``."""

    spec: Any
    params: dict
    metadata: dict = field(default_factory=dict)

    @property
    def family(self) -> Family:
        return family_of(self.spec)

    @property
    def kind(self) -> str:
        return self.family.kind

    @property
    def species(self) -> tuple[int, ...]:
        """Atomic numbers the potential knows, in its channel order."""
        return tuple(self.spec.species)

    @property
    def r_cut(self) -> float:
        """Cutoff radius, Å (the neighbour list of a batch)."""
        return float(self.spec.r_cut)

    @property
    def dtype(self) -> str:
        return str(np.result_type(*self.params.values())) if self.params else "float64"

    @property
    def backends(self) -> tuple[str, ...]:
        """Backend names this potential can be computed with."""
        return tuple(self.family.backends)

    @property
    def trainable(self) -> tuple[str, ...]:
        """Parameter keys a training gradient covers (the others are fixed)."""
        return tuple(self.family.trainable(self.spec))

    @property
    def trainable_mask(self) -> dict[str, bool]:
        """name -> whether it trains, for every parameter."""
        keys = set(self.trainable)
        return {k: k in keys for k in self.params}

    @property
    def n_parameters(self) -> int:
        return int(sum(np.size(v) for v in self.params.values()))

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", self.kind))

    def fingerprint(self) -> str:
        """sha256 (16 hex digits) of kind, spec and every parameter's bytes: identifies the
        numbers a cache or checkpoint was made with."""
        h = hashlib.sha256(self.kind.encode())
        h.update(json.dumps(self.spec.to_dict(), sort_keys=True).encode())
        for k in sorted(self.params):
            h.update(k.encode())
            h.update(np.ascontiguousarray(self.params[k]).tobytes())
        return h.hexdigest()[:16]

    def with_params(self, params: dict, **metadata) -> Potential:
        """A new potential with ``params`` replacing (some of) the parameters."""
        new = {**self.params, **{k: np.asarray(v) for k, v in params.items()}}
        return replace(self, params=new, metadata={**self.metadata, **metadata})

    def check(self, source: str = "params") -> Potential:
        """Raise InputError if the parameters do not fit the spec; returns self."""
        self.family.check_params(self.spec, self.params, source)
        return self

    def describe(self) -> dict:
        return {"kind": self.kind, **self.family.describe(self.spec, self.params)}

    def on(self, backend: str | None = None) -> Evaluator:
        """This potential bound to a backend ("numba", "jax"; None: the family's first)."""
        return evaluator(self, backend)


def check_param_shapes(params: dict, want: dict, source: str = "params") -> None:
    """Raise InputError (naming ``source``) unless ``params`` has exactly the keys of ``want``
    (key -> shape), with those shapes and finite values. For a family's ``check_params``."""
    from pftlite.core.errors import InputError

    for k, shape in want.items():
        if k not in params:
            raise InputError(f"{source}: missing parameter '{k}'")
        if tuple(np.shape(params[k])) != tuple(shape):
            raise InputError(f"{source}: parameter '{k}' has shape {tuple(np.shape(params[k]))}, expected {tuple(shape)}")
        if not np.all(np.isfinite(params[k])):
            raise InputError(f"{source}: parameter '{k}' holds NaN or inf")
    extra = set(params) - set(want)
    if extra:
        raise InputError(f"{source}: unexpected parameters {sorted(extra)[:5]}")


def backend_module(family: Family, name: str) -> ModuleType:
    """The module computing ``family`` on backend ``name``; one-line errors otherwise."""
    name = str(name).lower()
    if name not in BACKEND_REQUIREMENTS:
        raise BackendUnavailable(
            f"unknown backend {name!r}; choose one of: {', '.join(sorted(BACKEND_REQUIREMENTS))}"
        )
    if name not in family.backends:
        raise BackendUnavailable(
            f"a {family.kind!r} potential has no {name} backend; use --backend "
            f"{' or '.join(family.backends)}"
        )
    try:
        mod = importlib.import_module(family.backends[name])
    except ImportError as exc:
        req = BACKEND_REQUIREMENTS[name]
        raise BackendUnavailable(
            f"backend {name!r} needs the '{req}' package, which is not importable "
            f"({exc}); install it with: pip install 'pftlite[{req}]'"
        ) from None
    if os.environ.get("PFTLITE_TRACE_BACKEND"):
        _log.warning("pftlite: %s potential on backend %s (%s)", family.kind, name, family.backends[name])
    return mod


def evaluator(potential: Potential, backend: str | None = None) -> Evaluator:
    """``potential`` bound to ``backend`` (see :meth:`Potential.on`)."""
    fam = potential.family
    name = next(iter(fam.backends)) if backend is None else str(backend).lower()
    return Evaluator(potential, name, backend_module(fam, name))


@dataclass(frozen=True, eq=False)
class Evaluator:
    """A potential on one backend. Every method takes a :class:`~pftlite.structures.batch.Batch`
    and returns NumPy arrays; ``params`` (optional) overrides the potential's parameters, so
    a trainer evaluates new parameters without building a new value each step."""

    potential: Potential
    backend: str
    module: ModuleType

    @property
    def exact_hvp_derivative(self) -> bool:
        return bool(getattr(self.module, "EXACT_HVP_DERIVATIVE", False))

    @property
    def pads(self) -> bool:
        """Whether the backend pads batches to compiled shapes (and honours ``Batch.pad_to``)."""
        return getattr(self.module, "PAD", None) is not None

    def _p(self, params):
        return self.potential.params if params is None else params

    def energy_forces_stress(self, batch, params=None) -> dict:
        return self.module.energy_forces_stress(self.potential.spec, self._p(params), batch)

    def hvp(self, batch, v, params=None) -> np.ndarray:
        return self.module.hvp(self.potential.spec, self._p(params), batch, v)

    def hessian(self, batch, columns=None, chunk: int | None = None, params=None) -> np.ndarray:
        return self.module.hessian(self.potential.spec, self._p(params), batch, columns=columns, chunk=chunk)

    def hvp_derivative(self, batch, u, V, h: float = 1e-3, chunk: int | None = None, params=None) -> np.ndarray:
        return self.module.hvp_derivative(self.potential.spec, self._p(params), batch, u, V, h=h, chunk=chunk)

    def loss_and_grad(self, batch, targets, lspec, params=None):
        return self.module.loss_and_grad(self.potential.spec, self._p(params), batch, targets, lspec)
