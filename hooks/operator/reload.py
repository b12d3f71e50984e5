"""Hot reload of what the service serves: the rules directory, the published strengths and products.

Both are polled (a few stat calls) and, when anything changed, loaded again in a worker thread.
What loads cleanly replaces the old in a single assignment, so each request sees one library
and one set of strengths from start to end. What does not is reported (log and ``GET
/status/rules`` or ``/status/strengths``) and the last good one keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from engine.decision.products import ProductIndex, read_product_index
from engine.decision.strengths import Snapshot, read_snapshot
from engine.documents.yamlsource import SourceError
from engine.rulebook.library import Library, load_library
from hooks.metrics import RELOAD_FAILURES
from hooks.operator.operations import shown

log = logging.getLogger(__name__)

Fingerprint = tuple[tuple[str, int, int], ...]


def fingerprint(directory: Path) -> Fingerprint:
    """What changes when any gene, rule or product file is added, removed or edited, or the directory is switched.

    The resolved directory counts too: a deploy that points a symlink at a copy made with
    preserved times (``cp -p``, rsync) changes no file's name, time or size.
    """
    entries = [(str(directory.resolve()), 0, 0)]
    for path in sorted(
        [*directory.glob("*.yaml"), *directory.glob("genes/*.yaml"), *directory.glob("products/*.yaml")]
    ):
        try:
            stat = path.stat()
        except FileNotFoundError:  # removed between listing and stat: the next poll sees it
            continue
        entries.append((str(path.relative_to(directory)), stat.st_mtime_ns, stat.st_size))
    return tuple(entries)


def file_fingerprint(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_mtime_ns, stat.st_size


@dataclass
class Status:
    """What the service is serving from one source, and what went wrong with the last attempt to change it."""

    source: str
    version: str
    loaded_at: str
    reloads: int = 0
    failures: int = 0
    last_error: list[str] = field(default_factory=list)
    last_error_at: str | None = None
    details: dict = field(default_factory=dict)

    def served(self, version: str, *, reload: bool = True, **details: object) -> None:
        self.version, self.loaded_at, self.details = version, _now(), dict(details)
        self.reloads += int(reload)

    def failed(self, problems: list[str]) -> None:
        self.failures += 1
        self.last_error, self.last_error_at = problems, _now()

    def as_json(self) -> dict:
        body = {"source": self.source, "version": self.version, **self.details, "loaded_at": self.loaded_at,
                "reloads": self.reloads, "failures": self.failures}  # fmt: skip
        if self.last_error:
            body["last_error"] = {"at": self.last_error_at, "problems": self.last_error}
        return body


class Watcher:
    """Polls a source every ``interval`` seconds and calls ``check`` when its fingerprint moved."""

    name = "watcher"

    def __init__(self, interval: float, seen: Hashable):
        self._interval = interval
        self._seen = seen
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._interval > 0:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.check()
            except Exception:  # a bug must not end the polling; the service keeps serving
                log.exception("%s: check failed", self.name)

    def _moved(self, current: Hashable) -> bool:
        if current == self._seen:
            return False
        self._seen = current
        return True

    async def check(self) -> None:
        raise NotImplementedError


class RulesWatcher(Watcher):
    """Hands every cleanly loaded library to ``use``."""

    name = "rules-watcher"

    def __init__(self, directory: Path, library: Library, use: Callable[[Library], None], interval: float):
        super().__init__(interval, fingerprint(directory))
        self.directory = directory
        # Shown without credentials (GET /status/rules): names relative to the rules directory, never absolute paths.
        self.status = Status(directory.name, library.version, _now(), details={"rules": len(library.rules)})
        self._use = use

    async def check(self) -> None:
        """Reload if the directory changed since the last attempt."""
        if not self._moved(fingerprint(self.directory)):
            return
        try:
            # Resolved once, so that a deploy switching a symlink to a new directory is read whole.
            library = await asyncio.to_thread(load_library, self.directory.resolve())
        except SourceError as exc:
            bases = (self.directory.resolve(), self.directory)
            relative = [f"{shown(Path(p.file), *bases)}:{p.line}: {p.message}" for p in exc.problems]
            self._failed([str(problem) for problem in exc.problems], relative)
            return
        except Exception:  # a bug must not stop the service from serving the last good rules
            log.exception("rules reload crashed")
            self._failed([], ["reload failed with an internal error; the service log has the details"])
            return
        self.status.last_error, self.status.last_error_at = [], None
        if library.version == self.status.version:
            return  # an edit undone: nothing to swap
        self._use(library)
        self.status.served(library.version, rules=len(library.rules))
        log.info("rules reloaded: %d rules, library %s", len(library.rules), library.version)

    def _failed(self, problems: list[str], shown_problems: list[str]) -> None:
        self.status.failed(shown_problems)
        RELOAD_FAILURES.labels("rules").inc()
        for problem in problems:
            log.error("rules not reloaded: %s", problem)
        log.error("still serving library %s", self.status.version)


class PublishedWatcher(Watcher):
    """Hands every readable file the learning loop publishes to ``use``.

    A missing file at start means nothing was published yet (the rule files serve alone). A file
    that later disappears or cannot be read leaves the last good one serving: an undo goes
    through a new publication (``pgx-loop strength rollback``), never through deletion.
    """

    kind = "published"  # names the file in logs, metrics and errors
    what = "published file"

    def __init__(self, path: Path, use: Callable, interval: float):
        super().__init__(interval, None)
        self.path = path
        self.status = Status(path.name, "0", _now())  # shown without credentials: the name, not the path
        self._use = use

    def read(self, path: Path):
        raise NotImplementedError

    def version_of(self, item) -> str:
        raise NotImplementedError

    def details(self, item) -> dict:
        return {}

    def load_now(self) -> None:
        """Read the file once, at start (a bad file is reported and nothing is used)."""
        self._moved(file_fingerprint(self.path))
        self._load(reload=False)

    async def check(self) -> None:
        if self._moved(file_fingerprint(self.path)):
            await asyncio.to_thread(self._load)

    def _load(self, reload: bool = True) -> None:
        if not self.path.exists() and self.status.version != "0":
            self._failed("the file is gone")
            return
        try:
            item = self.read(self.path)
        except OSError as exc:
            self._failed(f"cannot be read: {exc.strerror or 'error'}")
            return
        except (ValidationError, ValueError) as exc:
            first = exc.errors(include_input=False)[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
            self._failed(f"not a {self.what}: {first}")
            return
        self.status.last_error, self.status.last_error_at = [], None
        version = self.version_of(item)
        if version != "0" and version == self.status.version:
            return
        self._use(item)
        self.status.served(version, reload=reload, **self.details(item))
        if version != "0":
            log.info("serving %s version %s (%s)", self.kind, version, self.details(item))

    def _failed(self, problem: str) -> None:
        self.status.failed([f"{self.path.name}: {problem}"])  # shown without credentials: the name, not the path
        RELOAD_FAILURES.labels(self.kind).inc()
        log.error(
            "%s not reloaded: %s: %s; still serving version %s", self.kind, self.path, problem, self.status.version
        )


class StrengthsWatcher(PublishedWatcher):
    """The strengths snapshot: the tiers the learning loop has set."""

    name, kind, what = "strengths-watcher", "strengths", "strengths snapshot"

    def read(self, path: Path) -> Snapshot:
        return read_snapshot(path)

    def version_of(self, snapshot: Snapshot) -> str:
        return str(snapshot.version)

    def details(self, snapshot: Snapshot) -> dict:
        return {"strengths": len(snapshot.strengths), "published": snapshot.created or None}


class ProductsWatcher(PublishedWatcher):
    """The RxNorm product index built from the site's OMOP vocabulary."""

    name, kind, what = "products-watcher", "products", "product index"

    def read(self, path: Path) -> ProductIndex:
        return read_product_index(path)

    def version_of(self, index: ProductIndex) -> str:
        return index.version or "0"

    def details(self, index: ProductIndex) -> dict:
        return {"products": len(index.products), "brands": len(index.brands), "published": index.created or None}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
