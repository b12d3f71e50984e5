"""Hot reload of the rules directory.

The service polls the rules directory (file names, sizes and modification times; a few stat
calls) and, when anything changed, loads the whole library again in a worker thread. A library
that loads cleanly replaces the old one in a single assignment, so each request sees one
library from start to end. One that does not is reported (log and ``GET /status/rules``) and
the last good library keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from engine.library import Library, load_library
from engine.yamlsource import SourceError

log = logging.getLogger(__name__)

Fingerprint = tuple[tuple[str, int, int], ...]


def fingerprint(directory: Path) -> Fingerprint:
    """What changes when any gene or rule file is added, removed or edited."""
    entries = []
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("genes/*.yaml")]):
        try:
            stat = path.stat()
        except FileNotFoundError:  # removed between listing and stat: the next poll sees it
            continue
        entries.append((str(path.relative_to(directory)), stat.st_mtime_ns, stat.st_size))
    return tuple(entries)


@dataclass
class RulesStatus:
    """What the service is serving, and what went wrong with the last attempt to change it."""

    directory: str
    version: str
    rules: int
    loaded_at: str
    reloads: int = 0
    failures: int = 0
    last_error: list[str] = field(default_factory=list)
    last_error_at: str | None = None

    def as_json(self) -> dict:
        body = {
            "directory": self.directory,
            "version": self.version,
            "rules": self.rules,
            "loaded_at": self.loaded_at,
            "reloads": self.reloads,
            "failures": self.failures,
        }
        if self.last_error:
            body["last_error"] = {"at": self.last_error_at, "problems": self.last_error}
        return body


class RulesWatcher:
    """Polls ``directory`` and hands every cleanly loaded library to ``use``."""

    def __init__(self, directory: Path, library: Library, use: Callable[[Library], None], interval: float):
        self.directory = directory
        self.status = RulesStatus(str(directory), library.version, len(library.rules), _now())
        self._use = use
        self._interval = interval
        self._seen = fingerprint(directory)
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="rules-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.check()

    async def check(self) -> None:
        """Reload if the directory changed since the last attempt."""
        current = fingerprint(self.directory)
        if current == self._seen:
            return
        self._seen = current
        try:
            library = await asyncio.to_thread(load_library, self.directory)
        except SourceError as exc:
            self._failed([str(problem) for problem in exc.problems])
            return
        except Exception as exc:  # a bug must not stop the service from serving the last good rules
            log.exception("rules reload crashed")
            self._failed([f"{self.directory}: reload failed: {type(exc).__name__}: {exc}"])
            return
        self.status.last_error, self.status.last_error_at = [], None
        if library.version == self.status.version:
            return  # an edit undone: nothing to swap
        self._use(library)
        self.status.version, self.status.rules, self.status.loaded_at = library.version, len(library.rules), _now()
        self.status.reloads += 1
        log.info("rules reloaded: %d rules, library %s", len(library.rules), library.version)

    def _failed(self, problems: list[str]) -> None:
        self.status.failures += 1
        self.status.last_error, self.status.last_error_at = problems, _now()
        for problem in problems:
            log.error("rules not reloaded: %s", problem)
        log.error("still serving library %s", self.status.version)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
