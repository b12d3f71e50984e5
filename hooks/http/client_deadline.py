"""A deadline for each request to arrive, headers and body, after which its connection is closed;
and a limit on the size of a request's head.

uvicorn closes idle keep-alive connections but sets no limit on how long a request may take to
arrive: a client sending its headers, or its body, a byte at a time holds a connection (and,
for a body, a request task) for as long as it likes. This is uvicorn's httptools protocol with
a timer armed when a connection opens (or a new request on it begins) and cancelled when the
request's last byte arrives; if it fires first, the connection is closed. The request then sees
a client disconnect (logged as ``client_disconnected``).

The head (request line and headers), and the trailer section of a chunked body, are limited to
``MAX_HEAD_BYTES`` each: httptools and uvicorn gather an unfinished URL or header value by repeated
concatenation, so without a limit a head of 40 MB, sent within the deadline, held the event loop
for 1.5 s (quadratic in its size) and its memory until it ended; trailers, 2 s. A head past the
limit is answered ``431`` (unless an answer has started: then the connection is only closed) and
the connection closed after reading and dropping, for a moment, what the client is still sending,
so that it can read the answer rather than see the connection reset.

Selected with ``uvicorn.Config(http=...)`` by ``pgx-loop serve``; the limit comes from
``PGX_LOOP_CLIENT_TIMEOUT_SECONDS`` (read once per worker process, which reads its own environment).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from hooks.settings import Settings

log = logging.getLogger(__name__)
PROTOCOL = "hooks.http.client_deadline:DeadlineHttpToolsProtocol"
# A request line and headers: a CDS call's are under 20 kB (a JWT is at most 16 KiB, hooks.security.auth).
MAX_HEAD_BYTES = 64 * 1024
LINGER_SECONDS = 1.0  # how long a refused client's remaining bytes are read and dropped before closing
_HEAD_TOO_LARGE = b"request line and headers larger than %d bytes" % MAX_HEAD_BYTES
_REFUSE_HEAD = b"".join(
    [
        STATUS_LINE[431],
        b"content-type: text/plain; charset=utf-8\r\n",
        b"content-length: %d\r\n" % len(_HEAD_TOO_LARGE),
        b"connection: close\r\n\r\n",
        _HEAD_TOO_LARGE,
    ]
)


@functools.cache
def client_timeout() -> float:
    """Seconds a request has to arrive, from the environment (once per process)."""
    return Settings().client_timeout_seconds


class DeadlineHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose request does not arrive in time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        # Bytes of the request's head (or, after a chunk header, of its trailers) received so far;
        # None while its body is arriving.
        self._head_bytes: int | None = 0
        self._in_head = True  # False from the end of a request's head to the start of the next one
        self._refused = False

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # dropped: the connection closes after LINGER_SECONDS
        if self._head_bytes is not None:
            self._head_bytes += len(data)
        super().data_received(data)
        # Checked once the parser has taken the data: a head completed in this read (followed by a body) is
        # not counted further. A head still incomplete has cost at most the limit plus one read. Bytes
        # after a chunk header count until the chunk's data begins: a last chunk's trailers never do.
        if self._head_bytes is not None and self._head_bytes > MAX_HEAD_BYTES and not self.transport.is_closing():
            self._refuse_head()

    def on_headers_complete(self) -> None:
        self._head_bytes, self._in_head = None, False
        super().on_headers_complete()

    def on_chunk_header(self) -> None:
        self._head_bytes = 0  # a chunk's data, or for the last chunk its trailer fields, follows

    def on_body(self, body: bytes) -> None:
        self._head_bytes = None
        super().on_body(body)

    def on_chunk_complete(self) -> None:
        self._head_bytes = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # a connection that never sends a byte is cut off too

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:  # a new request on a kept-alive connection
            self._arm()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head_bytes, self._in_head = 0, True  # the next request's head, on a kept-alive connection
        self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(client_timeout(), self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            log.warning("closed a connection: its request did not arrive within %.1f s", client_timeout())
            self.transport.close()

    def _refuse_head(self) -> None:
        self._disarm()
        self._refused = True
        log.warning("closed a connection: its request head or trailers exceeded %d bytes", MAX_HEAD_BYTES)
        if self._may_answer():
            self.transport.write(_REFUSE_HEAD)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def _may_answer(self) -> bool:
        """Whether no other answer is on its way: none to this request, and none unfinished to an earlier one."""
        if self.cycle is None:
            return True
        if self._in_head:  # the cycle is the previous request's (pipelined: maybe still answering)
            return self.cycle.response_complete
        return not self.cycle.response_started  # trailers: this request may have been answered already
