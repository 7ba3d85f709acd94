"""Atomic file writes: a file is either its old content or its new content, never a part of either.

:func:`write_atomic` writes into a temporary file in the target's folder, flushes it to disk and
renames it over the target (``os.replace``, atomic on POSIX and Windows within one file system).
A process killed at any point (``kill -9`` included) leaves the previous file, or none, and at
most a stray ``.<name>.*.tmp`` beside it, which the next write of any file there does not read.
"""

from __future__ import annotations

import io
import os
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

__all__ = ["write_atomic", "write_npz"]

_UMASK = os.umask(0o022)  # the process's umask, read once (reading it means setting it)
os.umask(_UMASK)


def write_atomic(path: Path | str, content: str | bytes) -> None:
    """Write ``content`` (text as UTF-8, or bytes) to ``path`` atomically, creating its folder.

    The file gets the mode a plain write would give it: the old file's, or ``0o666`` less the umask
    (``mkstemp``'s temporary file is private, ``0o600``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = content.encode() if isinstance(content, str) else content
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o666 & ~_UMASK
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_npz(path: Path | str, arrays: Mapping[str, np.ndarray]) -> None:
    """``numpy.savez(path, **arrays)``, written atomically (:func:`write_atomic`) to ``path`` as given."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]  # numpy's stub takes the first keyword for allow_pickle
    write_atomic(path, buffer.getvalue())
