"""Getting the patient's PGx results: from prefetch, or from the EHR's FHIR server.

CDS Hooks semantics (../shared/reference/cds-hooks.md §2):
- key present with a resource or Bundle: use it (following ``next`` links of a paged Bundle, on
  ``fhirServer``: without one the later pages cannot be read, and the request gets 412);
- key present as ``null``: the EHR has no such data; nothing to fetch;
- key present as an OperationOutcome (the EHR's own fetch failed) or absent: fetch it from
  ``fhirServer`` with the given bearer token, within a bounded time; if that cannot be done,
  the request cannot be answered safely and gets 412.

``fhirServer`` is only used when configuration allows it (hooks.protocol.fhir_servers); the caller passes
None otherwise. A fetch is bounded in time, pages, bytes (all pages of one search together),
entries and nesting; large pages are parsed on a worker thread, never on the event loop. Why a
fetch failed goes to the log; the caller's 412 says only that the server could not be read, so
the service cannot be used to probe what answers where.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import anyio
import httpx
import orjson

from hooks.fhir.fhir_shapes import Unread, read_all, value_problems
from hooks.protocol.discovery import PGX_PREFETCH
from hooks.protocol.fhir_servers import under
from hooks.protocol.limits import Limits, TooComplex

log = logging.getLogger(__name__)

UNREADABLE = "the EHR's FHIR server could not be read"
PATIENT = "{{context.patientId}}"
PARSE_ON_LOOP_BYTES = 64 * 1024  # orjson reads this in well under a millisecond


class PrefetchUnavailable(Exception):
    """Required data is neither in prefetch nor obtainable from the FHIR server (-> 412)."""


class PrefetchInvalid(ValueError):
    """A prefetch value that is not FHIR, or not shaped as R4 says (-> 400, one reason per problem)."""

    def __init__(self, *reasons: str):
        self.reasons = list(reasons)
        super().__init__("; ".join(reasons))


class FetchFailed(Exception):
    """The FHIR server did not answer usefully; the message is for the log, not the caller."""


@dataclass
class _Budget:
    """What is left for one search, all its pages together."""

    bytes: int
    entries: int


def search_params(template: str, patient_id: str) -> tuple[str, list[tuple[str, str]]]:
    """A prefetch template as (resource type, query parameters), the patient id a parameter value.

    The URL is then encoded by httpx: a patient id can never add or cut off a parameter.
    """
    resource_type, _, query = template.partition("?")
    params = [(name, patient_id if value == PATIENT else value) for name, value in parse_qsl(query)]
    return resource_type, params


class FhirFetcher:
    """Bounded FHIR searches on the EHR's server."""

    def __init__(
        self, client: httpx.AsyncClient, limits: Limits, *, timeout: float, max_pages: int, max_bytes: int
    ) -> None:
        self._client = client
        self._limits = limits
        self._timeout = timeout
        self._max_pages = max_pages
        self._max_bytes = max_bytes

    async def search(self, server: str, template: str, patient_id: str, token: str | None) -> list[dict[str, Any]]:
        """All pages of the prefetch ``template``'s search on ``server``, within the time budget."""
        resource_type, params = search_params(template, patient_id)
        url = httpx.URL(server.rstrip("/") + "/" + resource_type, params=params)
        return await self._bounded(self._pages(server, url, token))

    async def rest_of(self, server: str, first: dict[str, Any], token: str | None) -> list[dict[str, Any]]:
        """A paged prefetch Bundle with the pages after it, within the time budget."""
        return await self._bounded(self._pages(server, None, token, first=first))

    async def _bounded(self, pages):
        try:
            async with asyncio.timeout(self._timeout):
                return await pages
        except TimeoutError:
            raise FetchFailed(f"no answer within {self._timeout:g} s") from None

    async def _pages(
        self, server: str, url: httpx.URL | None, token: str | None, first: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Follow a searchset's ``next`` links, starting from ``url`` or from an already-read page."""
        bundles: list[dict[str, Any]] = []
        budget = _Budget(self._max_bytes, self._limits.max_entries)
        page = first
        for _ in range(self._max_pages):
            if page is None:
                page = await self._get(url, token, budget)
            bundles.append(page)
            link = _next_link(page)
            if not link:
                return bundles
            if not under(link, server):
                # The bearer token is for fhirServer only; never send it elsewhere.
                raise FetchFailed("a next link points outside fhirServer")
            url, page = httpx.URL(link), None
        # Results left unread could disagree with those read: never answer from part of a search.
        raise FetchFailed(f"more than {self._max_pages} pages in one search")

    async def _get(self, url: httpx.URL | None, token: str | None, budget: _Budget) -> dict[str, Any]:
        headers = {"Accept": "application/fhir+json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            async with self._client.stream("GET", url, headers=headers) as response:
                if response.status_code != 200:
                    raise FetchFailed(f"HTTP {response.status_code}")
                content = await self._read(response, budget)
        except httpx.HTTPError as exc:
            raise FetchFailed(f"unreachable ({type(exc).__name__})") from None
        if len(content) > PARSE_ON_LOOP_BYTES:
            page = await anyio.to_thread.run_sync(self._parse, content)
        else:
            page = self._parse(content)
        entries = page.get("entry")
        budget.entries -= len(entries) if isinstance(entries, list) else 0
        if budget.entries < 0:
            raise FetchFailed(f"more than {self._limits.max_entries} entries in one search")
        return page

    async def _read(self, response: httpx.Response, budget: _Budget) -> bytes:
        """The body, refused past the search's byte budget: one patient's results are kilobytes."""
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > budget.bytes:
            raise FetchFailed(f"more than {self._max_bytes} bytes in one search")
        content = bytearray()
        async for chunk in response.aiter_bytes():
            content += chunk
            if len(content) > budget.bytes:
                raise FetchFailed(f"more than {self._max_bytes} bytes in one search")
        budget.bytes -= len(content)
        return bytes(content)

    def _parse(self, content: bytes) -> dict[str, Any]:
        try:
            body = orjson.loads(content)
            self._limits.check_depth(content)
        except orjson.JSONDecodeError:
            raise FetchFailed("not JSON") from None
        except TooComplex as exc:
            raise FetchFailed(str(exc)) from None
        if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
            raise FetchFailed("not a Bundle")
        return body


def _next_link(bundle: dict[str, Any]) -> str | None:
    for link in bundle.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return link["url"]
    return None


def _checked(key: str, pages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fetched pages whose Observations have their R4 shapes (else FetchFailed naming the first field)."""
    for page in pages:
        problems = value_problems(page, key)
        if problems:
            raise FetchFailed(f"a result is not shaped as R4 says ({problems[0]})")
    return pages


async def pgx_resources(
    prefetch: dict[str, Any] | None,
    patient_id: str,
    fetcher: FhirFetcher,
    server: str | None,
    token: str | None,
    unread: Unread = read_all,
) -> list[dict[str, Any]]:
    """The FHIR values holding the patient's PGx results, from prefetch or the FHIR server.

    ``server`` is the request's fhirServer when configuration allows contacting it, else None.
    ``unread``: prefetched results the caller certainly will not read, left unchecked (see
    ``ResultReader.unread``); what a FHIR server sends is always checked whole.
    """
    prefetch = prefetch or {}
    found: list[dict[str, Any]] = []
    pending = []
    problems = []
    for key in PGX_PREFETCH:
        if key not in prefetch:
            pending.append(key)
        elif prefetch[key] is not None:
            problems += value_problems(prefetch[key], f"prefetch.{key}", unread)
    if problems:
        raise PrefetchInvalid(*problems)
    for key in PGX_PREFETCH:
        value = prefetch.get(key)
        if value is None:
            continue
        if value["resourceType"] == "OperationOutcome":
            pending.append(key)
        elif value["resourceType"] == "Bundle" and _next_link(value):
            if not server:  # the pages after this one may hold the result that changes the card
                raise PrefetchUnavailable(f"prefetch {key} has more pages and no usable fhirServer to read them")
            found.extend(await _fetched(key, fetcher.rest_of(server, value, token)))
        else:
            found.append(value)
    if pending:
        if not server:
            raise PrefetchUnavailable(
                f"prefetch {', '.join(pending)} not provided (absent, or an OperationOutcome: the EHR could not "
                "fetch it) and no usable fhirServer"
            )
        for pages in await asyncio.gather(
            *(_fetched(key, fetcher.search(server, PGX_PREFETCH[key], patient_id, token)) for key in pending)
        ):
            found.extend(pages)
    return found


async def _fetched(key: str, pages) -> list[dict[str, Any]]:
    """The pages a search returned, checked; a failure is logged with its cause and answered generically."""
    try:
        return _checked(key, await pages)
    except FetchFailed as exc:
        log.warning("412: could not read %s from fhirServer: %s", key, exc)
        raise PrefetchUnavailable(UNREADABLE) from None
