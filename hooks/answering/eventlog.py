"""The durable, append-only log of cards shown and feedback received.

Two sync modes (``PGX_LOOP_EVENT_SYNC``), named after Redis' ``appendfsync``:

``always`` (the default): every event is on disk (fdatasync) before the response that reports it
is sent. The event loop writes each batch to the page cache (one ``write``) and asks a small child
process (``fdatasyncer.py``) over a pipe to fdatasync the file; its answer, read by
``loop.add_reader``, settles the whole batch in one callback. Requests that append while a sync is
on its way form the next batch (pipelined group commit, no window to tune; an idle service commits
a lone request at once). Why a process and not a writer thread: the thread needed the interpreter
lock to wake, to take the batch and to wake the loop, each a hand-over with the event loop; the
child shares no lock, runs no service code, and under load its batches were twice as large for
half the CPU. If it dies, the requests of its batch fail (503, never 200; their lines may be in
the segment, unacknowledged) and the next batch starts a new one. A write that failed (ENOSPC)
fails its batch before any sync is asked for.

``interval``: events are written (to the operating system's page cache) on the event loop before
the response, and a thread fdatasyncs about once a second; responses never wait for the
disk. A crash of the service process loses nothing acknowledged; a crash of the operating
system or a power cut can lose up to about the last second of events. If a background fdatasync
fails, later requests fail (503) until one succeeds again.

In both modes a failed write or fdatasync fails every request of its batch (503): an event is
never reported as recorded unless it was handed to the disk. A sync slower than ``SLOW_FLUSH`` is
logged.

Each process writes its own segment file (``events-<host>-<pid>-<ns>.jsonl``), so several
workers never interleave writes; analytics ingests all segments, deduplicating on ``event_id``.
A crash can leave a torn last line; readers skip lines that are not complete JSON.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import orjson

from hooks.answering.fdatasyncer import ANSWER
from hooks.metrics import EVENT_LOG_BATCH

log = logging.getLogger(__name__)
SLOW_FLUSH = 0.05  # seconds
INTERVAL = 1.0  # seconds between fdatasyncs in "interval" mode
FDATASYNCER = Path(__file__).with_name("fdatasyncer.py")

SyncMode = Literal["always", "interval"]


class EventLogError(Exception):
    """Events could not be made durable; the request must not report success."""


class EventLog:
    """One process's segment of the event log."""

    def __init__(self, directory: Path, *, sync: SyncMode = "always"):
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"events-{socket.gethostname()}-{os.getpid()}-{time.time_ns()}.jsonl"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        _fsync_directory(directory)  # the new file's name must survive a crash too
        self.sync = sync
        self._closing = False
        self._torn = False
        self.flushes = 0  # fdatasyncs done
        self.requests = 0  # appends made durable
        self.events = 0
        # "always": the batch whose fdatasync was asked for, and the requests that came after it.
        self._syncer: _Syncer | None = _Syncer(self._fd) if sync == "always" else None  # fails at start-up, not later
        self._loop: asyncio.AbstractEventLoop | None = None
        self._in_flight: list[asyncio.Future[None]] | None = None
        self._waiting: list[asyncio.Future[None]] = []
        self._waiting_data: list[bytes] = []
        self._drained: asyncio.Future[None] | None = None  # close() waits for the last answer
        # "interval": a thread fdatasyncs about once a second; the lock guards what it shares.
        self._lock = threading.Lock()
        self._wake = threading.Event()  # ends the thread's wait at close
        self._unsynced = False  # written since the last fdatasync
        self._sync_error: str | None = None  # the last background fdatasync failed
        self._thread: threading.Thread | None = None
        if sync == "interval":
            self._thread = threading.Thread(target=self._interval_loop, name="event-log-sync", daemon=True)
            self._thread.start()

    async def append(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Record ``events``; returns once they are as durable as the sync mode promises."""
        if not events:
            return
        if len(events) == 1:  # the usual hook call: one card
            data = orjson.dumps(events[0], option=orjson.OPT_APPEND_NEWLINE)
        else:
            data = b"".join([orjson.dumps(event, option=orjson.OPT_APPEND_NEWLINE) for event in events])
        if self.sync == "interval":
            self._append_now(data, len(events))
            return
        if self._closing:
            raise EventLogError("the event log is closed")
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        future = self._loop.create_future()
        self._waiting.append(future)
        self._waiting_data.append(data)
        if self._in_flight is None:
            self._commit_waiting()
        await future

    def _commit_waiting(self) -> None:
        """``always`` mode: write the waiting requests' events in one write and ask for their fdatasync."""
        batch, data = self._waiting, b"".join(self._waiting_data)
        self._waiting, self._waiting_data = [], []
        try:
            self._write(data)
        except OSError as exc:
            _resolve(batch, EventLogError(f"event log write failed: {exc.strerror or exc}"))
            return
        try:
            if self._syncer is None:
                self._syncer = _Syncer(self._fd)
            assert self._loop is not None
            self._syncer.ask(self._loop, self._answered)
        except OSError as exc:
            self._syncer_lost()
            _resolve(batch, EventLogError(f"event log fdatasync unavailable: {exc.strerror or exc}"))
            return
        self._in_flight = batch
        self.events += data.count(b"\n")

    def _answered(self, errno: int | None, took_ms: int = 0) -> None:
        """The fdatasync process answered (``errno`` 0: done) or died (None): settle the batch in flight."""
        batch, self._in_flight = self._in_flight or [], None
        if errno == 0:
            if took_ms > SLOW_FLUSH * 1000:
                log.warning("event log flush took %d ms", took_ms)
            self.flushes += 1
            self.requests += len(batch)
            EVENT_LOG_BATCH.observe(len(batch))
            _resolve(batch, None)
        else:
            if errno is None:
                self._syncer_lost()
                reason = "the fdatasync process exited"
            else:
                reason = os.strerror(errno)
            _resolve(batch, EventLogError(f"event log fdatasync failed: {reason}"))
        if self._waiting:
            self._commit_waiting()
        if self._in_flight is None and self._drained is not None and not self._drained.done():
            self._drained.set_result(None)  # nothing more will be asked for (a failed write asks nothing)

    def _syncer_lost(self) -> None:
        if self._syncer is not None:
            log.error("the event log's fdatasync process is gone; starting another for the next batch")
            self._syncer.discard()
            self._syncer = None

    def _append_now(self, data: bytes, count: int) -> None:
        """``interval`` mode: write ``count`` events' ``data`` on the caller's thread (page cache); the sync
        thread syncs."""
        with self._lock:
            if self._sync_error is not None:
                raise EventLogError(f"event log sync failed: {self._sync_error}")
            try:
                self._write(data)
            except OSError as exc:
                raise EventLogError(f"event log write failed: {exc.strerror or exc}") from None
            self._unsynced = True
            self.requests += 1
            self.events += count

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
        # Bytes, not a memoryview: the usual whole write leaves b"" at no cost; a short one (rare) copies the rest.
        while data:
            written = os.write(self._fd, data)
            data = data[written:]
        self._torn = False

    async def close(self) -> None:
        """Commit what is pending, stop the sync process or thread and close the segment."""
        self._closing = True
        if self._in_flight is not None and self._loop is not None:
            self._drained = self._loop.create_future()
            await self._drained
        if self._syncer is not None:
            self._syncer.close()
            await asyncio.to_thread(self._syncer.wait)
            self._syncer = None
        if self._thread is not None:
            self._wake.set()
            await asyncio.to_thread(self._thread.join)
        os.close(self._fd)


class _Syncer:
    """The fdatasync process of one segment: a request pipe to it, an answer pipe read by the event loop."""

    def __init__(self, fd: int):
        self._process = subprocess.Popen(
            [sys.executable, "-I", "-S", str(FDATASYNCER), str(fd)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            pass_fds=(fd,),
        )
        assert self._process.stdin is not None and self._process.stdout is not None
        self._requests = self._process.stdin
        self._answers = self._process.stdout
        os.set_blocking(self._answers.fileno(), False)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._answered: Callable[..., None] = lambda *_: None

    def ask(self, loop: asyncio.AbstractEventLoop, answered: Callable[..., None]) -> None:
        """Ask for one fdatasync; ``answered(errno, took_ms)`` is called on ``loop`` with the answer,
        ``answered(None)`` if the process dies. One byte: it never blocks (one request at a time)."""
        if self._loop is None:
            self._loop, self._answered = loop, answered
            loop.add_reader(self._answers.fileno(), self._read)
        os.write(self._requests.fileno(), b"s")

    def _read(self) -> None:
        try:
            # Each answer arrives whole: written whole (PIPE_BUF) and read in multiples of its size.
            answers = os.read(self._answers.fileno(), ANSWER.size * 64)
        except BlockingIOError:
            return
        except OSError:
            answers = b""
        if not answers:  # the process is gone
            self._stop_reading()
            self._answered(None)
            return
        for errno, took_ms in ANSWER.iter_unpack(answers):
            self._answered(errno, took_ms)

    def _stop_reading(self) -> None:
        if self._loop is not None and not self._answers.closed:
            self._loop.remove_reader(self._answers.fileno())
            self._loop = None

    def close(self) -> None:
        """Stop reading answers and close the request pipe (the process exits at its end)."""
        self._stop_reading()
        self._requests.close()
        self._answers.close()

    def discard(self) -> None:
        """Close the pipes and make sure the process is gone (it failed; nothing it says counts any more)."""
        self.close()
        self._process.kill()
        self._process.wait()

    def wait(self) -> None:
        """Reap the process (it exits as soon as its stdin is closed)."""
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


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
