"""Process memory settings that change speed, never results.

XLA on CPU allocates and frees every large intermediate of every call. With glibc's default
malloc each of those is a fresh ``mmap`` (above the 128 KiB - 32 MiB dynamic threshold) whose
pages fault in on first touch and are returned with ``munmap`` on free: for the built-in
64-atom Si model that was 8.5k minor page faults and ~75 % of the CPU time in the kernel per
energy+forces call (28.7k faults at 216 atoms). :func:`retain_freed_memory` raises the mmap
threshold and the trim threshold and keeps one malloc arena (XLA allocates from its worker
threads, whose own arenas would still map and unmap): freed blocks stay in the heap and are
reused. The same calls then take 1.1k / 2.9k faults and a third to a quarter of the time
(bench/bench_backends.py, table 5b). Peak memory is unchanged; memory freed below the peak is
kept by the process instead of given back.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
ENV_VAR = "PFTLITE_MALLOPT"  # "0": leave malloc as it is
_done: dict = {}


def retain_freed_memory() -> dict:
    """Set glibc's mmap threshold to 1 GiB (32 MiB where glibc refuses more), its trim
    threshold to 2 GiB and its arena count to 1, once per process (before XLA starts threads). No-op (and ``applied`` False) off glibc, or with
    ``$PFTLITE_MALLOPT=0``. Returns what was set."""
    if _done:
        return _done
    info = {"applied": False, "mmap_threshold": None, "trim_threshold": None, "arena_max": None}
    if os.environ.get(ENV_VAR, "1") != "0" and sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6")
            for value in (1 << 30, 32 << 20):
                if libc.mallopt(M_MMAP_THRESHOLD, value) == 1:
                    info["mmap_threshold"] = value
                    break
            if libc.mallopt(M_TRIM_THRESHOLD, 1 << 31) == 1:
                info["trim_threshold"] = 1 << 31
            if libc.mallopt(M_ARENA_MAX, 1) == 1:
                info["arena_max"] = 1
            info["applied"] = info["mmap_threshold"] is not None
        except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
            pass
    _done.update(info)
    return _done
