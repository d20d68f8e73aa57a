"""Deprecated location of the ASE calculator: use :mod:`pftlite.potentials.calculator`."""

from pftlite.potentials.calculator import PftliteCalculator

__all__ = ["PftliteCalculator"]
