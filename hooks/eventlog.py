"""The durable, append-only log of cards shown and feedback received.

Every event is on disk (written and fdatasync'ed) before the response that reports it is sent.
Concurrent requests share flushes (group commit): events appended within ``window`` seconds of
the first pending one go out together in one write and one fdatasync, so durability costs one
fsync per batch, not per request. The window trades a little latency (2 ms by default) for
larger batches; a full batch (``MAX_BATCH`` appends) is flushed at once.

The flush runs on the event loop itself, as Redis does for ``appendfsync always``: handing the
fsync to a thread or to a writer process was measured (bench/hooks_throughput.py) to cost as much
or more, through GIL hand-offs and pipe traffic, as the fdatasync blocks the loop (0.1-0.5 ms on
this machine's disk). A flush slower than ``SLOW_FLUSH`` is logged.

Each process writes its own segment file (``events-<host>-<pid>-<ns>.jsonl``), so several
workers never interleave writes; analytics ingests all segments, deduplicating on ``event_id``.
A crash can leave a torn last line; readers skip lines that are not complete JSON.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger(__name__)
SLOW_FLUSH = 0.05  # seconds
MAX_BATCH = 64  # appends


class EventLogError(Exception):
    """Events could not be made durable; the request must not report success."""


class EventLog:
    """One process's segment of the event log, with group commit."""

    def __init__(self, directory: Path, *, window: float = 0.002):
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"events-{socket.gethostname()}-{os.getpid()}-{time.time_ns()}.jsonl"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        _fsync_directory(directory)  # the new file's name must survive a crash too
        self._pending: list[bytes] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._window = window
        self._timer: asyncio.TimerHandle | None = None
        self._torn = False
        self.flushes = 0
        self.events = 0

    async def append(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Write ``events`` durably; returns once they are on disk."""
        if not events:
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append(b"".join(orjson.dumps(event) + b"\n" for event in events))
        self._waiters.append(future)
        if len(self._waiters) >= MAX_BATCH:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self._window, self._flush)
        await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._waiters:
            return
        data, waiters = b"".join(self._pending), self._waiters
        self._pending, self._waiters = [], []
        started = time.perf_counter()
        try:
            self._write(data)
        except OSError as exc:
            error = EventLogError(f"event log write failed: {exc.strerror or exc}")
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(error)
            return
        elapsed = time.perf_counter() - started
        if elapsed > SLOW_FLUSH:
            log.warning("event log flush took %.1f ms", elapsed * 1000)
        self.flushes += 1
        self.events += data.count(b"\n")
        for waiter in waiters:
            if not waiter.done():  # a request whose client went away is cancelled; its events are safe
                waiter.set_result(None)

    def _write(self, data: bytes) -> None:
        if self._torn:  # end the line a failed write may have left half-written
            data = b"\n" + data
        self._torn = True
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        os.fdatasync(self._fd)
        self._torn = False

    async def close(self) -> None:
        if self._pending:
            self._flush()
        os.close(self._fd)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_events(path: Path) -> list[dict[str, Any]]:
    """The complete events in one segment; a torn line (from a crash) is skipped."""
    events = []
    for line in path.read_bytes().splitlines():
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events
