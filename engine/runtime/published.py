"""Files one process publishes and others read while it changes: the strengths snapshot, the product index,
the cycle status, report indexes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

Published = TypeVar("Published", bound=BaseModel)


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


def read_published(path: Path, model: type[Published], empty: Published) -> Published:
    """The ``model`` published in ``path``; ``empty`` when nothing was published there yet.

    Raises ``OSError`` or ``pydantic.ValidationError`` for a file that cannot be read or does not hold a ``model``.
    """
    try:
        body = path.read_bytes()
    except FileNotFoundError:
        return empty
    return model.model_validate_json(body)
