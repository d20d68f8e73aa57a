"""Potentials: one interface (:class:`Potential`, :class:`Evaluator`), its families and files.

>>> from pftlite.potentials import load_potential
>>> pot = load_potential("si-mlearn")            # a built-in model, or a model file
>>> ev = pot.on("numba")                          # or "jax"
>>> out = ev.energy_forces_stress(make_batch([atoms], pot))
"""

from pftlite.potentials.base import Evaluator, Family, Potential, evaluator
from pftlite.potentials.files import builtin_models, load_potential, resolve_model, save_potential

__all__ = ["Evaluator", "Family", "Potential", "builtin_models", "evaluator", "load_potential",
           "resolve_model", "save_potential"]  # fmt: skip
