"""Conformance suite any (potential, backend) passes, shipped with the interface.

>>> from pftlite.testing import check_potential
>>> report = check_potential(potential, "jax", atoms)   # AssertionError names the first failure

:func:`phonopy_pipeline` is an independent oracle: phonopy's own finite-displacement steps
fed the potential's forces through the ASE calculator.
"""

from pftlite.testing.conformance import (
    check_derivatives,
    check_invariances,
    check_parameter_gradients,
    check_potential,
    check_round_trip,
    check_supercell,
    fd_convergence,
)
from pftlite.testing.oracles import phonopy_pipeline

__all__ = ["check_derivatives", "check_invariances", "check_parameter_gradients", "check_potential",
           "check_round_trip", "check_supercell", "fd_convergence", "phonopy_pipeline"]  # fmt: skip
