"""Command-line front end: ``pftlite`` (click group in :mod:`pftlite.cli.app`, one module per command)."""

from pftlite.cli.app import main

__all__ = ["main"]
