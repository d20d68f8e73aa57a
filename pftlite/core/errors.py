"""Exceptions that carry a one-line, user-facing message.

The CLI prints ``InputError`` messages as a single line (no traceback) and exits non-zero.
Library callers can catch them like any ``ValueError``.
"""


class InputError(ValueError):
    """Bad user input: a malformed file, unknown species, overlapping atoms, NaN, ...

    The message must name the offending file (or object) and the problem in one line.
    """


class BackendUnavailable(RuntimeError):
    """A requested backend is unknown or its dependencies are not installed."""


class DataUnavailable(RuntimeError):
    """A named reference dataset could not be found locally nor downloaded."""
