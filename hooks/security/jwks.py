"""Where an issuer's signing keys come from: a JWKS given inline or in a file, or fetched from a jku URL.

Fetched sets are cached and fetched again when they grow old or a token names an unknown ``kid``
(key rotation), but never more often than ``min_refresh_seconds`` per URL: random kids from an
attacker must not turn into a stream of requests to the issuer's JWKS server.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from jwt import PyJWKSet
from jwt.exceptions import PyJWKSetError, PyJWTError

log = logging.getLogger(__name__)

MAX_JWKS_BYTES = 256 * 1024


class JwksUnavailable(Exception):
    """A jku could not be fetched or held no usable key."""


@dataclass(frozen=True)
class VerificationKey:
    """A public key from a JWKS, and what the JWK says about the algorithms it may verify."""

    kid: str
    key: Any  # a cryptography public key
    kty: str  # "EC" or "RSA"
    crv: str | None
    alg: str | None  # the JWK's own "alg", when it names one


def parse_jwks(data: Any) -> dict[str, VerificationKey]:
    """The EC and RSA signature keys of a JWKS document, by ``kid``; raises ValueError if there are none."""
    try:
        jwk_set = PyJWKSet.from_dict(data) if isinstance(data, dict) else None
    except (PyJWKSetError, PyJWTError) as exc:
        raise ValueError(f"not a usable JWKS: {exc}") from None
    if jwk_set is None:
        raise ValueError("a JWKS must be an object with a 'keys' array")
    keys = {}
    for jwk in jwk_set.keys:
        raw = jwk._jwk_data  # PyJWK exposes no crv, and no alg other than its guess
        if jwk.key_type not in ("EC", "RSA") or not jwk.key_id or (jwk.public_key_use or "sig") != "sig":
            continue  # symmetric, encryption-only and anonymous keys never verify a CDS client's token
        keys[jwk.key_id] = VerificationKey(jwk.key_id, jwk.key, jwk.key_type, raw.get("crv"), raw.get("alg"))
    if not keys:
        raise ValueError("the JWKS holds no EC or RSA signature key with a kid")
    return keys


class RemoteJwks:
    """The JWKS at one allowlisted jku URL: fetched on first use, cached, refreshed at a bounded rate."""

    def __init__(
        self,
        url: str,
        *,
        min_refresh_seconds: float,
        max_age_seconds: float,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.min_refresh_seconds = min_refresh_seconds
        self.max_age_seconds = max_age_seconds
        self.timeout = timeout
        self.fetches = 0
        self._clock = clock
        self._keys: dict[str, VerificationKey] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = asyncio.Lock()

    async def key(self, kid: str, client: httpx.AsyncClient) -> VerificationKey | None:
        """The key named ``kid``, fetching the set first if it is unknown or the cache is old (and allowed)."""
        key = self._keys.get(kid)
        if (key is not None and not self._stale()) or not self._may_fetch():
            return key
        async with self._lock:  # concurrent requests for the same new kid share one fetch
            key = self._keys.get(kid)
            if (key is None or self._stale()) and self._may_fetch():
                await self._fetch(client)
        return self._keys.get(kid)

    def _stale(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at > self.max_age_seconds

    def _may_fetch(self) -> bool:
        return self._attempted_at is None or self._clock() - self._attempted_at >= self.min_refresh_seconds

    async def _fetch(self, client: httpx.AsyncClient) -> None:
        self._attempted_at = self._clock()
        self.fetches += 1
        try:
            response = await client.get(self.url, timeout=self.timeout, headers={"Accept": "application/json"})
            if response.status_code != 200:
                raise JwksUnavailable(f"HTTP {response.status_code}")
            if len(response.content) > MAX_JWKS_BYTES:
                raise JwksUnavailable(f"larger than {MAX_JWKS_BYTES} bytes")
            self._keys = parse_jwks(response.json())
        except (httpx.HTTPError, ValueError, JwksUnavailable) as exc:
            # Keep serving the keys we had: an issuer's JWKS server hiccup should not reject every call.
            log.warning("could not refresh the JWKS at %s: %s", self.url, exc)
            if not self._keys:
                raise JwksUnavailable(str(exc)) from None
            return
        self._fetched_at = self._clock()
        log.info("fetched the JWKS at %s: %d key(s)", self.url, len(self._keys))
