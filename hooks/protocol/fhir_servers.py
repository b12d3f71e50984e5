"""Which FHIR servers the service may contact: the request's ``fhirServer``, checked against a list.

The list is configuration, never the request: each trusted issuer's ``fhir_servers`` (with
``PGX_LOOP_AUTH=jwt``), or ``PGX_LOOP_FHIR_SERVERS`` (with ``PGX_LOOP_AUTH=off``). A ``fhirServer``
is allowed when it is one of the listed base URLs or under one (a path prefix, whole segments).
Comparing scheme too means an ``http`` server is only contacted when an ``http`` URL is listed.
Anything else is never contacted: without the list the service would fetch from any host a
caller names (loopback, internal addresses) and reflect what it read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import httpx

MAX_URL_LENGTH = 2048
# Percent-encoded dots, slashes and backslashes: a server that decodes them could be walked out of its base.
_HIDDEN_PATH = ("%2e", "%2f", "%5c")


class FhirServerConfigError(ValueError):
    """The configured FHIR server list cannot be used; the service refuses to start."""


class UnusableUrl(ValueError):
    """A FHIR base URL the service refuses to use; the message names the problem, never the URL."""


@dataclass(frozen=True, slots=True)
class BaseUrl:
    """A FHIR base URL reduced to what decides where a request goes."""

    scheme: str
    host: bytes
    port: int
    path: str  # raw (still percent-encoded), without a trailing slash

    @classmethod
    def parse(cls, value: str) -> BaseUrl:
        """``value`` as a base URL: http(s), a host, no userinfo, query or fragment; else UnusableUrl."""
        if len(value) > MAX_URL_LENGTH:
            raise UnusableUrl(f"longer than {MAX_URL_LENGTH} characters")
        if not value.isprintable() or any(char.isspace() for char in value):
            raise UnusableUrl("not a valid URL")
        try:
            url = httpx.URL(value)
            host = url.raw_host
            url.host.encode("idna")  # an A-label that does not decode ("xn--"), a label over 63 characters
        except (httpx.InvalidURL, ValueError):  # IDNA and non-ASCII errors are ValueErrors too
            raise UnusableUrl("not a valid URL") from None
        if url.scheme not in ("http", "https"):
            raise UnusableUrl("not an http or https URL")
        if not host:
            raise UnusableUrl("has no valid host")
        if url.userinfo:
            raise UnusableUrl("must not carry a user name or password")
        if url.query or "?" in value:
            raise UnusableUrl("must not carry a query")
        if url.fragment or "#" in value:
            raise UnusableUrl("must not carry a fragment")
        raw_path = url.raw_path.decode("ascii")
        if any(hidden in raw_path.lower() for hidden in _HIDDEN_PATH) or "\\" in value:
            raise UnusableUrl("must not hide dots or slashes in its path")
        if any(segment.partition(";")[0] in (".", "..") for segment in raw_path.split("/") if ";" in segment):
            # "/fhir/..;/admin": Tomcat and Jetty drop the ";..." and walk up, out of the listed base.
            raise UnusableUrl("must not hide dots or slashes in its path")
        port = url.port or (443 if url.scheme == "https" else 80)
        return cls(url.scheme, host.lower(), port, raw_path.rstrip("/"))

    def contains(self, other: BaseUrl) -> bool:
        """Whether ``other`` is this base or under it (whole path segments: /fhir does not contain /fhir2)."""
        return (self.scheme, self.host, self.port) == (other.scheme, other.host, other.port) and (
            other.path == self.path or other.path.startswith(self.path + "/")
        )


def parse_list(values: Iterable[str], where: str) -> tuple[BaseUrl, ...]:
    """Configured base URLs; ValueError naming ``where`` and the entry when one is unusable."""
    bases = []
    for value in values:
        try:
            bases.append(BaseUrl.parse(value.strip()))
        except UnusableUrl as exc:
            raise ValueError(f"{where}: {value!r} {exc}") from None  # configuration, not a request: safe to echo
    return tuple(bases)


@dataclass(frozen=True)
class FhirServerPolicy:
    """The FHIR servers each issuer's calls may name (key None: the list used with authentication off)."""

    allowed: Mapping[str | None, tuple[BaseUrl, ...]]

    def allows(self, fhir_server: str, issuer: str | None) -> bool:
        """Whether a call from ``issuer`` may make the service contact ``fhir_server`` (already parsed as valid)."""
        url = BaseUrl.parse(fhir_server)
        return any(base.contains(url) for base in self.allowed.get(issuer, ()))


def under(url: str, fhir_server: str) -> bool:
    """Whether ``url`` (a next link, which may carry a query) points into ``fhir_server``."""
    try:
        parsed = httpx.URL(url)
        if parsed.userinfo or parsed.fragment:
            return False
        target = BaseUrl.parse(str(parsed.copy_with(query=None)))
    except (httpx.InvalidURL, ValueError):
        return False
    return BaseUrl.parse(fhir_server).contains(target)
