"""Size estimates made before allocating: refuse, with the estimate, what cannot fit.

Every command that allocates in proportion to a user-chosen size (a supercell, a q mesh) calls
:func:`check_memory` first; the user can go ahead anyway with the command's ``--no-size-check``.
"""

from __future__ import annotations

import os

from pftlite.core.errors import InputError

#: share of this machine's memory a single command may plan to use
MEMORY_SHARE = 0.8


def machine_memory() -> int:
    """Physical memory of this machine, bytes (0 if unknown)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0


def check_memory(needed_bytes: float, what: str, option: str = "--no-size-check") -> None:
    """Raise InputError naming ``what`` if ``needed_bytes`` exceeds MEMORY_SHARE of memory."""
    total = machine_memory()
    if total and needed_bytes > MEMORY_SHARE * total:
        raise InputError(
            f"{what} needs about {needed_bytes / 2**30:.3g} GiB, more than {MEMORY_SHARE:.0%} of "
            f"this machine's {total / 2**30:.3g} GiB; use a smaller size, or {option} to try anyway"
        )
