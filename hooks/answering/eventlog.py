"""The durable, append-only log of cards shown and feedback received.

Two sync modes (``PGX_LOOP_EVENT_SYNC``), named after Redis' ``appendfsync``:

``always`` (the default): every event is on disk (written with O_DSYNC, which is write and
fdatasync in one system call) before the response that reports it is sent. The disk is never
touched on the event loop: a writer thread commits everything that arrived while it was busy in
one synchronous write (pipelined group commit), then resolves the futures the requests of that
batch await. Each batch costs the writer three hand-overs of the interpreter lock (woken, written,
event loop woken); on a quiet machine that is tens of µs, on an overloaded one it can be
milliseconds each, because the woken thread must also wait for a CPU. Under load each fsync
therefore carries every request that arrived during the previous one, with no fixed window to
tune; an idle service commits a lone request at once.

``interval``: events are written (to the operating system's page cache) on the event loop before
the response, and the writer thread fdatasyncs about once a second; responses never wait for the
disk. A crash of the service process loses nothing acknowledged; a crash of the operating
system or a power cut can lose up to about the last second of events. If a background fdatasync
fails, later requests fail (503) until one succeeds again.

In both modes a failed write fails every request of its batch (503): an event is never reported
as recorded unless it was handed to the disk. A flush slower than ``SLOW_FLUSH`` is logged.

Each process writes its own segment file (``events-<host>-<pid>-<ns>.jsonl``), so several
workers never interleave writes; analytics ingests all segments, deduplicating on ``event_id``.
A crash can leave a torn last line; readers skip lines that are not complete JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import orjson

from hooks.metrics import EVENT_LOG_BATCH

log = logging.getLogger(__name__)
SLOW_FLUSH = 0.05  # seconds
INTERVAL = 1.0  # seconds between fdatasyncs in "interval" mode

SyncMode = Literal["always", "interval"]


class EventLogError(Exception):
    """Events could not be made durable; the request must not report success."""


class EventLog:
    """One process's segment of the event log, committed by a writer thread."""

    def __init__(self, directory: Path, *, sync: SyncMode = "always"):
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"events-{socket.gethostname()}-{os.getpid()}-{time.time_ns()}.jsonl"
        # "always": O_DSYNC makes each write return only once it is on disk, like write + fdatasync
        # in one system call, so the writer thread waits for the interpreter lock once per batch less.
        durable = os.O_DSYNC if sync == "always" else 0
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | durable, 0o600)
        _fsync_directory(directory)  # the new file's name must survive a crash too
        self.sync = sync
        self._lock = threading.Lock()
        self._wake = threading.Event()  # "interval": ends the writer's wait at close
        # "always": (events, future) for the writer, None to stop it. A SimpleQueue is C code:
        # putting costs no Python-level lock or condition.
        self._queue: queue.SimpleQueue[tuple[bytes, asyncio.Future[None]] | None] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._torn = False
        self._unsynced = False  # "interval": written since the last fdatasync
        self._sync_error: str | None = None  # "interval": the last background fdatasync failed
        self.flushes = 0  # synchronous writes ("always") or fdatasyncs ("interval") done
        self.requests = 0  # appends made durable
        self.events = 0
        target = self._commit_loop if sync == "always" else self._interval_loop
        self._thread = threading.Thread(target=target, name="event-log-writer", daemon=True)
        self._thread.start()

    async def append(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Record ``events``; returns once they are as durable as the sync mode promises."""
        if not events:
            return
        data = b"".join(orjson.dumps(event) + b"\n" for event in events)
        if self.sync == "interval":
            self._append_now(data)
            return
        loop = self._loop or asyncio.get_running_loop()
        self._loop = loop
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:  # nothing may follow the stop marker
            if self._closing:
                raise EventLogError("the event log is closed")
            self._queue.put((data, future))
        await future

    def _append_now(self, data: bytes) -> None:
        """``interval`` mode: write on the caller's thread (page cache); the writer thread syncs."""
        with self._lock:
            if self._sync_error is not None:
                raise EventLogError(f"event log sync failed: {self._sync_error}")
            try:
                self._write(data)
            except OSError as exc:
                raise EventLogError(f"event log write failed: {exc.strerror or exc}") from None
            self._unsynced = True
            self.requests += 1
            self.events += data.count(b"\n")

    def _commit_loop(self) -> None:
        """``always`` mode: commit whatever is pending in one synchronous write per batch."""
        pending = self._queue
        while True:
            batch = [pending.get()]  # sleeps (without the GIL) until there is something to do
            with contextlib.suppress(queue.Empty):
                while True:
                    batch.append(pending.get_nowait())
            closing = batch[-1] is None
            waiters = [future for _, future in filter(None, batch)]
            if waiters:
                error = self._commit(b"".join(data for data, _ in filter(None, batch)))
                if error is None:
                    self.requests += len(waiters)
                    EVENT_LOG_BATCH.observe(len(waiters))
                self._settle(waiters, error)
            if closing:
                return

    def _commit(self, data: bytes) -> EventLogError | None:
        started = time.perf_counter()
        try:
            self._write(data)  # O_DSYNC: on disk when it returns
        except OSError as exc:
            return EventLogError(f"event log write failed: {exc.strerror or exc}")
        elapsed = time.perf_counter() - started
        if elapsed > SLOW_FLUSH:
            log.warning("event log flush took %.1f ms", elapsed * 1000)
        self.flushes += 1
        self.events += data.count(b"\n")
        return None

    def _settle(self, waiters: list[asyncio.Future[None]], error: EventLogError | None) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody is waiting any more
            loop.call_soon_threadsafe(_resolve, waiters, error)  # one wake-up of the event loop per batch

    def _interval_loop(self) -> None:
        """``interval`` mode: fdatasync about once a second when something was written."""
        while not self._closing:
            self._wake.wait(INTERVAL)
            self._sync_written()
        self._sync_written()

    def _sync_written(self) -> None:
        with self._lock:
            if not self._unsynced:
                return
            self._unsynced = False
        try:
            os.fdatasync(self._fd)
        except OSError as exc:
            with self._lock:
                self._sync_error = exc.strerror or str(exc)
                self._unsynced = True  # try again next time
            log.error("event log fdatasync failed: %s; refusing new events until it succeeds", self._sync_error)
            return
        with self._lock:
            self._sync_error = None
        self.flushes += 1

    def _write(self, data: bytes) -> None:
        if self._torn:  # end the line a failed write may have left half-written
            data = b"\n" + data
        self._torn = True
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._torn = False

    async def close(self) -> None:
        """Commit what is pending, stop the writer thread and close the segment."""
        with self._lock:
            self._closing = True
            self._queue.put(None)
        self._wake.set()
        await asyncio.to_thread(self._thread.join)
        os.close(self._fd)


def _resolve(waiters: list[asyncio.Future[None]], error: EventLogError | None) -> None:
    for waiter in waiters:
        if waiter.done():  # a request whose client went away is cancelled; its events are safe
            continue
        if error is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(error)


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
