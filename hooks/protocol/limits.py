"""Size and shape limits on what an EHR may send, checked before any parsing into models.

A hook request is small (a few kB to a few hundred kB with prefetched results). Limits keep one
oversized or pathological request from costing the service memory or CPU that other orders need:
- the body's size (413), read incrementally so a huge upload is refused without being buffered;
- the JSON nesting depth (400): FHIR resources nest about ten levels; thousands of levels are an attack.
  The parser (orjson) refuses more than ``PARSER_DEPTH`` levels anywhere by itself. ``max_depth``
  is checked, on the parsed value, where nesting matters: a hook request's ``context`` (the draft
  orders, parts of which are sent back in suggestions) and a whole feedback request. Prefetched
  results are read at fixed paths, never walked or echoed, so they are not walked for it either:
  a walk of the whole body cost about half as much as parsing it;
- the entries of each Bundle in the request (400): draft orders and prefetched searchsets.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.types import Receive

PARSER_DEPTH = 1024  # orjson's own limit: deeper JSON is refused while parsing


class TooLarge(Exception):
    """The body is larger than the service accepts (-> 413)."""


class TooComplex(ValueError):
    """The body is nested too deeply or holds too many entries (-> 400)."""


@dataclass(frozen=True)
class Limits:
    """What one request may hold."""

    max_body_bytes: int
    max_depth: int
    max_entries: int

    async def read_body(self, declared_length: str | None, receive: Receive) -> bytes:
        """The whole body of the request whose ASGI messages ``receive`` gives, refused as soon as it is
        known to exceed ``max_body_bytes``; ClientDisconnect if the client goes away first.

        The messages are read here rather than through Starlette's ``Request.stream()``: its async
        generator cost the hook call about as much again as the reading itself.
        """
        if declared_length is not None and declared_length.isdigit() and int(declared_length) > self.max_body_bytes:
            raise TooLarge(self._too_large())
        parts, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # "http.disconnect"
                raise ClientDisconnect
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise TooLarge(self._too_large())
            parts.append(chunk)
            if not message.get("more_body", False):
                return b"".join(parts)

    def check_depth(self, value: Any) -> None:
        """Refuse ``value`` (parsed JSON) if nested deeper than ``max_depth``.

        Level by level over containers only, so it stops at the limit and costs a few µs for a
        context holding a draft order. A string is depth 0, ``{}`` and ``[]`` depth 1.
        """
        level = [value] if type(value) is dict or type(value) is list else []
        depth = 0
        while level:
            depth += 1
            if depth > self.max_depth:
                raise TooComplex(f"the JSON is nested more than {self.max_depth} levels deep")
            inner = []
            for container in level:
                for item in container.values() if type(container) is dict else container:
                    if type(item) is dict or type(item) is list:
                        inner.append(item)
            level = inner

    def check_bundles(self, bundles: Iterable[tuple[str, Any]]) -> None:
        """Refuse any Bundle (by where it sits in the request) holding more than ``max_entries`` entries."""
        for where, bundle in bundles:
            entries = bundle.get("entry") if type(bundle) is dict else None
            if type(entries) is list and len(entries) > self.max_entries:
                raise TooComplex(f"{where}.entry: {len(entries)} entries, more than the {self.max_entries} allowed")

    def _too_large(self) -> str:
        return f"the body is larger than the {self.max_body_bytes} bytes this service accepts"


def request_bundles(data: Any) -> Iterator[tuple[str, Any]]:
    """The Bundles a hook request carries, with where they sit: draft orders and prefetch values."""
    if type(data) is not dict:
        return
    context = data.get("context")
    if type(context) is dict:
        yield "context.draftOrders", context.get("draftOrders")
    prefetch = data.get("prefetch")
    if type(prefetch) is dict:
        for key, value in prefetch.items():
            yield f"prefetch.{key}", value
