"""Writing a file other processes read while it changes: the strengths snapshot, the cycle status, report indexes."""

from __future__ import annotations

import os
from pathlib import Path


def replace_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync it, and rename it over ``path``.

    A reader sees the old file or the new one, never half of either, and after a crash the
    file is one of the two.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
