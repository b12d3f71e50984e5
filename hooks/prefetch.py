"""Getting the patient's PGx results: from prefetch, or from the EHR's FHIR server.

CDS Hooks semantics (../shared/reference/cds-hooks.md §2):
- key present with a resource or Bundle: use it (following ``next`` links of a paged Bundle);
- key present as ``null``: the EHR has no such data; nothing to fetch;
- key present as an OperationOutcome (the EHR's own fetch failed) or absent: fetch it from
  ``fhirServer`` with the given bearer token, within a bounded time; if that cannot be done,
  the request cannot be answered safely and gets 412.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from hooks.discovery import PGX_PREFETCH
from hooks.requests import HookRequest


class PrefetchUnavailable(Exception):
    """Required data is neither in prefetch nor obtainable from the FHIR server (-> 412)."""


class PrefetchInvalid(ValueError):
    """A prefetch value that is not FHIR (-> 400)."""


class FetchFailed(Exception):
    """The FHIR server did not answer usefully."""


class FhirFetcher:
    """Bounded FHIR searches on the EHR's server."""

    def __init__(self, client: httpx.AsyncClient, *, timeout: float, max_pages: int, max_bytes: int = 20_000_000):
        self._client = client
        self._timeout = timeout
        self._max_pages = max_pages
        self._max_bytes = max_bytes

    async def search(self, server: str, query: str, token: str | None) -> list[dict[str, Any]]:
        """All pages of ``GET {server}/{query}``, within the time budget."""
        return await self._bounded(self.pages(server, server.rstrip("/") + "/" + query, token))

    async def rest_of(self, server: str, first: dict[str, Any], token: str | None) -> list[dict[str, Any]]:
        """A paged prefetch Bundle with the pages after it, within the time budget."""
        return await self._bounded(self.pages(server, "", token, first=first))

    async def _bounded(self, pages):
        try:
            async with asyncio.timeout(self._timeout):
                return await pages
        except TimeoutError:
            raise FetchFailed(f"FHIR server did not answer within {self._timeout:g} s") from None

    async def pages(
        self, server: str, url: str, token: str | None, first: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Follow a searchset's ``next`` links, starting from ``url`` or from an already-read page."""
        bundles: list[dict[str, Any]] = []
        page = first
        for _ in range(self._max_pages):
            if page is None:
                page = await self._get(url, token)
            bundles.append(page)
            url = _next_link(page)
            if not url:
                break
            if not _same_origin(url, server):
                # The bearer token is for fhirServer only; never send it elsewhere.
                raise FetchFailed("a next link points outside fhirServer")
            page = None
        return bundles

    async def _get(self, url: str, token: str | None) -> dict[str, Any]:
        headers = {"Accept": "application/fhir+json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            async with self._client.stream("GET", url, headers=headers) as response:
                if response.status_code != 200:
                    raise FetchFailed(f"FHIR server answered HTTP {response.status_code}")
                content = await self._read(response)
        except httpx.HTTPError as exc:
            raise FetchFailed(f"FHIR server unreachable ({type(exc).__name__})") from None
        try:
            body = orjson.loads(content)
        except orjson.JSONDecodeError:
            raise FetchFailed("FHIR server answered with something other than JSON") from None
        if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
            raise FetchFailed("FHIR server did not answer with a Bundle")
        return body

    async def _read(self, response: httpx.Response) -> bytes:
        """The body, refused past ``max_bytes``: one patient's results are kilobytes, never gigabytes."""
        content = bytearray()
        async for chunk in response.aiter_bytes():
            content += chunk
            if len(content) > self._max_bytes:
                raise FetchFailed(f"FHIR server answered with more than {self._max_bytes} bytes")
        return bytes(content)


def _next_link(bundle: dict[str, Any]) -> str | None:
    for link in bundle.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return link["url"]
    return None


def _same_origin(url: str, server: str) -> bool:
    a, b = urlsplit(url), urlsplit(server)
    return (a.scheme, a.netloc) == (b.scheme, b.netloc)


def render(template: str, patient_id: str) -> str:
    return template.replace("{{context.patientId}}", patient_id)


async def pgx_resources(request: HookRequest, patient_id: str, fetcher: FhirFetcher) -> list[dict[str, Any]]:
    """The FHIR values holding the patient's PGx results, from prefetch or the FHIR server."""
    prefetch = request.prefetch or {}
    token = request.fhirAuthorization.access_token if request.fhirAuthorization else None
    found: list[dict[str, Any]] = []
    pending = []
    for key in PGX_PREFETCH:
        if key not in prefetch:
            pending.append(key)
            continue
        value = prefetch[key]
        if value is None:
            continue
        if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
            raise PrefetchInvalid(f"prefetch.{key} must be a FHIR resource, a Bundle or null")
        if value["resourceType"] == "OperationOutcome":
            pending.append(key)
        elif value["resourceType"] == "Bundle" and _next_link(value) and request.fhirServer:
            try:
                found.extend(await fetcher.rest_of(request.fhirServer, value, token))
            except FetchFailed as exc:
                raise PrefetchUnavailable(f"could not read the next pages of {key}: {exc}") from None
        else:
            found.append(value)
    if pending:
        if not request.fhirServer:
            raise PrefetchUnavailable(f"prefetch {', '.join(pending)} not provided and no fhirServer to fetch from")
        fetched = await asyncio.gather(
            *(fetcher.search(request.fhirServer, render(PGX_PREFETCH[key], patient_id), token) for key in pending),
            return_exceptions=True,
        )
        for key, outcome in zip(pending, fetched, strict=True):
            if isinstance(outcome, FetchFailed):
                raise PrefetchUnavailable(f"could not fetch {key}: {outcome}")
            if isinstance(outcome, BaseException):
                raise outcome
            found.extend(outcome)
    return found
