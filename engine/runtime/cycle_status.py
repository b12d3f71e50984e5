"""The analytics status file: how the last learning cycle went, for the service to report.

The cycle runs in another process, perhaps on another host, and the service never reads the
analytics database; so the cycle publishes this small JSON file next to the strengths snapshot
(replaced atomically, after every cycle, failed ones included) and the service reads it when
scraped. It holds no data values: a status, times, and a message naming what went wrong.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ValidationError

from engine.runtime.published import replace_atomically

CycleOutcome = Literal["ok", "failed", "skipped", "no-data"]
OUTCOMES: tuple[CycleOutcome, ...] = ("ok", "failed", "skipped", "no-data")


class CycleStatus(BaseModel):
    """The last cycle, and when a cycle last succeeded (carried over from earlier files)."""

    cycle_id: str | None
    status: CycleOutcome
    started: datetime
    finished: datetime
    duration_seconds: float
    message: str = ""
    last_success: datetime | None = None


def read_status(path: Path) -> CycleStatus | None:
    """The published status; None when there is none yet or it cannot be read."""
    try:
        return CycleStatus.model_validate_json(path.read_bytes())
    except (OSError, ValidationError):
        return None


def write_status(path: Path, status: CycleStatus) -> None:
    """Replace the file atomically (write a temporary file, fsync, rename), so readers never see half of it."""
    if status.status == "ok":
        status = status.model_copy(update={"last_success": status.finished})
    elif status.last_success is None and (previous := read_status(path)) is not None:
        status = status.model_copy(update={"last_success": previous.last_success})
    replace_atomically(path, status.model_dump_json(indent=2).encode())
