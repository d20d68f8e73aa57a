"""Atomic file output: write to a temporary file in the target directory, then rename.

An interrupted run never leaves a half-written result behind: a kill leaves at most a hidden
``.<name>.*.tmp`` beside it, which the next write of that file removes.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success rename it to ``path``, else delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a killed earlier writer
        with contextlib.suppress(OSError):
            stale.unlink()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give a normal file's mode
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def check_output(path, what: str, *, folder: bool = False, force: bool | None = None) -> Path:
    """Check before any work that ``path`` can be written; raise InputError naming ``what``.

    ``folder``: ``path`` is an output folder (created later) rather than a file. The nearest
    existing ancestor must be a writable directory (a regular file in the way, or a read-only
    folder, is refused now, not after minutes of work). ``force``: for a file, ``False`` refuses
    an existing one (the caller's ``--force`` / ``--overwrite`` says otherwise); ``None`` skips
    that check.
    """
    from pftlite.core.errors import InputError

    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise InputError(f"{what}: {path} exists and is not a folder")
    if not folder and path.is_dir():
        raise InputError(f"{what}: {path} is a folder, expected a file name")
    if not folder and force is False and path.exists():
        raise InputError(f"{what}: {path} exists (use --force to replace it)")
    probe = path if folder else path.parent
    probe = Path(os.path.abspath(probe))
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise InputError(f"{what}: cannot write {path}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(f"{what}: cannot write {path}: folder {probe} is not writable")
    return path
