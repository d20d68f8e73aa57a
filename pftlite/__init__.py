"""pftlite: phonon fine-tuning of machine-learned interatomic potentials.

Layers, bottom up (imports go one way; see docs/architecture.md): ``core`` (errors, units,
atomic writes, size checks) -> ``structures`` (neighbour lists, batches, readers) ->
``datasets`` (named DFT data, phonopy/phono3py references) -> ``potentials`` (the potential
interface, its families and backends) -> ``phonons`` (fc2, relaxation, thermodynamics, MDR) ->
``kappa`` (fc3, BZ, conductivity, κ_SRME) -> ``training`` (samplers, optimiser, fit, tune) ->
``cli``. ``pftlite.testing`` is the conformance suite any potential passes.
"""

__version__ = "0.1.0"


def load_potential(path):
    """A model file or built-in model name -> :class:`pftlite.potentials.Potential`."""
    from pftlite.potentials.files import load_potential as load

    return load(path)


def __getattr__(name):
    if name == "get_backend":
        from pftlite.potentials.registry import get_backend

        return get_backend
    if name == "PftliteCalculator":
        from pftlite.potentials.calculator import PftliteCalculator

        return PftliteCalculator
    if name == "Potential":
        from pftlite.potentials.base import Potential

        return Potential
    raise AttributeError(f"module 'pftlite' has no attribute {name!r}")
