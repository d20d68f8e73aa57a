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


# --- memory mappings of compiled code ---------------------------------------------------------
#
# XLA's CPU runtime maps the code of every compiled executable into the process in many small
# sections (~1.3k mappings for one Nequix MP energy+forces+stress, several thousand for a
# training loss with a Hessian column). JAX keeps every executable it compiled for the life of
# the process, and Linux refuses new mappings past vm.max_map_count (65530 by default): a long
# run that meets many padded shapes then dies inside LLVM ("Unable to allocate section memory",
# SIGABRT), whatever its free RAM. :func:`ensure_map_headroom` drops the in-memory executables
# before that point; the next calls reload them from the persistent compilation cache.

MAP_FRACTION = 0.75
REPEATED_DROPS = 3  # drops after which a run is told it is reloading in a cycle
_cleared = {"n": 0}


def map_count() -> int | None:
    """Memory mappings this process holds (/proc/self/maps lines); None off Linux."""
    try:
        with open("/proc/self/maps", "rb") as fh:
            return sum(1 for _ in fh)
    except OSError:
        return None


def max_map_count() -> int | None:
    """The kernel's per-process limit on memory mappings (vm.max_map_count); None if unknown."""
    try:
        with open("/proc/sys/vm/max_map_count") as fh:
            return int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def ensure_map_headroom(fraction: float = MAP_FRACTION) -> bool:
    """Before a compilation: if this process holds more than ``fraction`` x vm.max_map_count
    mappings, clear JAX's compiled-function caches (``jax.clear_caches()``), which unmaps their
    code, and say so once on stderr. Returns whether it cleared. Speed only, never results."""
    n, limit = map_count(), max_map_count()
    if n is None or limit is None or n <= fraction * limit:
        return False
    import gc

    import jax

    jax.clear_caches()
    gc.collect()
    _cleared["n"] += 1
    if _cleared["n"] == 1:
        print(f"pftlite: {n} memory mappings of compiled code (limit vm.max_map_count = {limit}): "
              "dropped JAX's in-memory executables; they reload from the compilation cache", file=sys.stderr)  # fmt: skip
    elif _cleared["n"] == REPEATED_DROPS:
        print(f"pftlite: JAX's executables dropped {REPEATED_DROPS} times: the functions this run cycles through "
              f"need more code mappings than vm.max_map_count = {limit} allows, and each reload from the cache "
              "costs seconds; raise the limit (as root: sysctl -w vm.max_map_count=262144) or plan fewer "
              "padded shapes (tune --upstream-shapes)", file=sys.stderr)  # fmt: skip
    return True


def executable_drops() -> int:
    """How many times :func:`ensure_map_headroom` has dropped JAX's executables in this process."""
    return _cleared["n"]
