"""Atomic file writes shared by every layer (standard library only, so ``hw`` may import it).

A file is written to a temporary name in its own folder, flushed to disk, given ordinary
permissions (``mkstemp`` makes it private) and renamed over the target: a reader sees the old
file or the new one, never a half-written one, and a failure leaves the old file untouched.
"""

from __future__ import annotations

import os
import pathlib
import tempfile
from collections.abc import Callable

__all__ = ["write_atomic", "write_atomic_bytes", "write_atomic_with"]

# Read once at import: os.umask can only be queried by setting it, which races with threads.
_UMASK = os.umask(0)
os.umask(_UMASK)


def write_atomic_with(path: str | os.PathLike, writer: Callable[[str], None]) -> None:
    """Atomically create ``path`` by calling ``writer(temporary_path)``, then renaming."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        writer(temporary)
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.chmod(temporary, 0o666 & ~_UMASK)
        os.replace(temporary, path)
    except BaseException:
        pathlib.Path(temporary).unlink(missing_ok=True)
        raise


def write_atomic_bytes(path: str | os.PathLike, data: bytes) -> None:
    write_atomic_with(path, lambda temporary: pathlib.Path(temporary).write_bytes(data))


def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    write_atomic_bytes(path, text.encode())
