"""A deadline for each request to arrive, headers and body, after which its connection is closed.

uvicorn closes idle keep-alive connections but sets no limit on how long a request may take to
arrive: a client sending its headers, or its body, a byte at a time holds a connection (and,
for a body, a request task) for as long as it likes. This is uvicorn's httptools protocol with
a timer armed when a connection opens (or a new request on it begins) and cancelled when the
request's last byte arrives; if it fires first, the connection is closed. The request then sees
a client disconnect (logged as ``client_disconnected``).

Selected with ``uvicorn.Config(http=...)`` by ``pgx-loop serve``; the limit comes from
``PGX_LOOP_CLIENT_TIMEOUT_SECONDS`` (read once per worker process, which reads its own environment).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from hooks.settings import Settings

log = logging.getLogger(__name__)
PROTOCOL = "hooks.http.client_deadline:DeadlineHttpToolsProtocol"


@functools.cache
def client_timeout() -> float:
    """Seconds a request has to arrive, from the environment (once per process)."""
    return Settings().client_timeout_seconds


class DeadlineHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose request does not arrive in time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # a connection that never sends a byte is cut off too

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:  # a new request on a kept-alive connection
            self._arm()

    def on_message_complete(self) -> None:
        super().on_message_complete()
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
