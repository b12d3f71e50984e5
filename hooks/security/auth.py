"""Verifying the JWT a CDS client (the EHR) sends with every call, as CDS Hooks 2.0 §Security asks.

The token's ``iss`` selects a trusted issuer; its header's ``kid`` selects the key, from the
issuer's JWKS (inline, a file, or a ``jku`` URL on the issuer's allowlist, checked before any
fetch). Only ES256/ES384/RS256/RS384 signatures verify. ``aud`` must be the URL being called,
``exp``/``iat`` must hold within a small leeway, and each ``jti`` is accepted once.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import os
import re
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import orjson
import yaml
from jwt.algorithms import Algorithm, get_default_algorithms
from jwt.exceptions import InvalidKeyError
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from hooks.protocol.fhir_servers import BaseUrl, parse_list
from hooks.security.jwks import JwksUnavailable, RemoteJwks, VerificationKey, parse_jwks
from hooks.security.replay import ReplayQuotaFull, ReplayStore, ReplayStoreError, SqliteReplayStore
from hooks.settings import Settings

ALGORITHMS = {"ES256": ("EC", "P-256"), "ES384": ("EC", "P-384"), "RS256": ("RSA", None), "RS384": ("RSA", None)}
REQUIRED_CLAIMS = ["iss", "aud", "exp", "iat", "jti"]
TIME_CLAIMS = ("exp", "iat", "nbf")
LATEST_TIME = 253_402_300_800  # 10000-01-01: a NumericDate past it is no date (and overflows datetime)
MAX_JTI_LENGTH = 256
MAX_TOKEN_LENGTH = 16 * 1024
# PyJWT's signature checks (raw r||s to DER, RSA PKCS#1 v1.5), built once: the token itself is parsed
# once, here, and its claims checked on that same parse (no second parser to disagree with the first).
_SIGNATURE_CHECKS: dict[str, Algorithm] = {alg: get_default_algorithms()[alg] for alg in ALGORITHMS}
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")  # RFC 7515 §2: base64url, no padding, nothing else
log = logging.getLogger(__name__)
# Verified on a thread: ES384 costs ~0.8 ms per signature here (OpenSSL's P-384), against 77 µs for
# ES256 and 32 µs for RS384, which a thread hand-off would cost more than it saves
# (bench/hooks_throughput.py: ES384 0.48 -> 0.60 of no-auth throughput; RS384 0.86 -> 0.67 when threaded).
SLOW_SIGNATURES = frozenset({"ES384"})
_SIGNATURES = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="jwt-verify")
# With a shared (network) replay store: signature and check, as many at once as the store has connections.
_REPLAY_CHECKS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="jwt-verify-replay")


class AuthError(Exception):
    """Why a call was refused. ``reason`` is a short class name safe to log; never the token."""

    def __init__(self, reason: str, iss: str | None = None, kid: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.iss = iss
        self.kid = kid


class AuthConfigError(Exception):
    """Authentication is on but cannot work as configured; the service refuses to start."""


class IssuerConfig(BaseModel):
    """One trusted issuer: its ``iss`` and where its keys are (any of the three)."""

    model_config = ConfigDict(extra="forbid")

    iss: str = Field(min_length=1)
    jwks: dict[str, Any] | None = None
    jwks_file: Path | None = None
    jku: list[str] = Field(default_factory=list, description="Allowlisted JWKS URLs; the first is used by default")
    fhir_servers: list[str] = Field(
        default_factory=list, description="FHIR base URLs this issuer's calls may name as fhirServer"
    )

    @field_validator("jku", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("jku")
    @classmethod
    def _http_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("https://", "http://")):
                raise ValueError(f"jku {url!r} is not an http(s) URL")
        return value

    @field_validator("fhir_servers")
    @classmethod
    def _usable_fhir_servers(cls, value: list[str]) -> list[str]:
        parse_list(value, "fhir_servers")
        return value

    @model_validator(mode="after")
    def _has_keys(self) -> IssuerConfig:
        if self.jwks is None and self.jwks_file is None and not self.jku:
            raise ValueError(f"issuer {self.iss!r} needs jwks, jwks_file or jku")
        if self.jwks is not None and self.jwks_file is not None:
            raise ValueError(f"issuer {self.iss!r} names both jwks and jwks_file; keep one")
        return self


_issuer_list = TypeAdapter(list[IssuerConfig])


def load_issuers(path: Path) -> list[IssuerConfig]:
    """The trusted issuers in a YAML or JSON file; AuthConfigError naming the file and the problem."""
    try:
        data = yaml.safe_load(path.read_text())  # YAML reads JSON too
        issuers = _issuer_list.validate_python(data)
    except OSError as exc:
        raise AuthConfigError(f"cannot read the trusted issuers file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise AuthConfigError(f"{path} is not valid YAML or JSON: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'top level'}: {e['msg']}" for e in exc.errors())
        raise AuthConfigError(f"{path}: {problems} (expected a list of {{iss, jwks | jwks_file | jku}})") from None
    if not issuers:
        raise AuthConfigError(f"{path} lists no trusted issuers")
    seen = [issuer.iss for issuer in issuers]
    if len(set(seen)) != len(seen):
        raise AuthConfigError(f"{path}: an iss is listed twice")
    return issuers


@dataclass
class Issuer:
    """A trusted issuer's keys at run time: static ones, and one cache per allowlisted jku."""

    iss: str
    static: dict[str, VerificationKey]
    remote: dict[str, RemoteJwks]
    fhir_servers: tuple[BaseUrl, ...] = ()

    async def key(self, kid: str, jku: Any, client: httpx.AsyncClient | None) -> VerificationKey:
        """The key named ``kid``: a configured (inline or file) key if it is one, else from an allowlisted jku.

        A configured key is trusted by configuration, whatever ``jku`` the token names: that URL is
        then never fetched (the HL7 sandbox names its own jku, which a site that configured the
        sandbox's key need not allowlist).
        """
        key = self.static.get(kid)
        if key is not None:
            return key
        if jku is None:
            source = next(iter(self.remote.values()), None)
            if source is None:
                raise AuthError("unknown_kid", self.iss, kid)
        else:
            source = self.remote.get(jku) if isinstance(jku, str) else None
            if source is None:  # checked before any fetch: an unlisted jku is never contacted
                raise AuthError("jku_not_allowed", self.iss, kid)
        if client is None:
            raise AuthError("jwks_unavailable", self.iss, kid)
        try:
            key = await source.key(kid, client)
        except JwksUnavailable:
            raise AuthError("jwks_unavailable", self.iss, kid) from None
        if key is None:
            raise AuthError("unknown_kid", self.iss, kid)
        return key


def _issuer(config: IssuerConfig, base: Path, settings: Settings, origin: str) -> Issuer:
    static: dict[str, VerificationKey] = {}
    try:
        if config.jwks is not None:
            static.update(parse_jwks(config.jwks))
        if config.jwks_file is not None:
            path = config.jwks_file if config.jwks_file.is_absolute() else base / config.jwks_file
            try:
                static.update(parse_jwks(json.loads(path.read_text())))
            except (OSError, json.JSONDecodeError) as exc:
                raise ValueError(f"cannot read {path}: {exc}") from None
    except ValueError as exc:
        raise AuthConfigError(f"{origin}: issuer {config.iss!r}: {exc}") from None
    remote = {
        url: RemoteJwks(
            url,
            min_refresh_seconds=settings.jwks_min_refresh_seconds,
            max_age_seconds=settings.jwks_max_age_seconds,
            timeout=settings.jwks_timeout,
        )
        for url in config.jku
    }
    return Issuer(config.iss, static, remote, parse_list(config.fhir_servers, "fhir_servers"))


class JwtVerifier:
    """Checks a request's bearer token against the trusted issuers; returns its claims or raises AuthError."""

    def __init__(
        self,
        issuers: Mapping[str, Issuer],
        public_base_url: str,
        *,
        leeway: float,
        max_lifetime: float,
        replay: ReplayStore,
    ) -> None:
        self.issuers = issuers
        self.public_base_url = public_base_url.rstrip("/")
        self.leeway = leeway
        self.max_lifetime = max_lifetime
        self.replay = replay
        self.client: httpx.AsyncClient | None = None  # the service's client, set when it starts

    async def verify(self, authorization: str | None, path: str) -> dict[str, Any]:
        """The verified claims of the ``Authorization`` header's token for a call to ``path``."""
        token = _unverified(_bearer_token(authorization))
        header, payload = token.header, token.payload
        iss, kid, alg = payload.get("iss"), header.get("kid"), header.get("alg")
        iss = iss if isinstance(iss, str) else None
        kid = kid if isinstance(kid, str) else None
        if alg not in ALGORITHMS:  # none, HS*, and anything not recommended
            raise AuthError("algorithm_not_allowed", iss, kid)
        if str(header.get("typ", "")).upper() != "JWT":  # RFC 7519 §5.1: compared case-insensitively
            raise AuthError("typ_not_jwt", iss, kid)
        if not kid:
            raise AuthError("missing_kid", iss)
        if "crit" in header or "b64" in header:  # RFC 7515 §4.1.11: extensions we do not implement
            raise AuthError("unsupported_header", iss, kid)
        _check_time_claims(payload, iss, kid)
        issuer = self.issuers.get(iss) if iss else None
        if issuer is None:
            raise AuthError("unknown_issuer", iss, kid)
        key = await issuer.key(kid, header.get("jku"), self.client)
        _check_key_fits(key, alg, iss)
        if self.replay.network:
            # The shared store is a round trip away: the signature and the check go to one thread
            # together (one hand-off, not two), and the event loop serves others meanwhile.
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(_REPLAY_CHECKS, self._verified_once, token, key, alg, iss, path)
        if alg in SLOW_SIGNATURES:
            # OpenSSL checks the signature without holding the GIL: on a thread, the event loop
            # serves other requests meanwhile, on another core.
            loop = asyncio.get_running_loop()
            claims = await loop.run_in_executor(_SIGNATURES, self._verified_claims, token, key, alg, iss, path)
        else:
            claims = self._verified_claims(token, key, alg, iss, path)
        self._check_once(claims, iss, kid)
        return claims

    def _verified_once(self, token: Token, key: VerificationKey, alg: str, iss: str, path: str) -> dict[str, Any]:
        claims = self._verified_claims(token, key, alg, iss, path)
        self._check_once(claims, iss, key.kid)
        return claims

    def _verified_claims(self, token: Token, key: VerificationKey, alg: str, iss: str, path: str) -> dict[str, Any]:
        """The claims, once the signature holds and they say the token is for this call, now, from ``iss``."""
        check = _SIGNATURE_CHECKS[alg]
        try:
            public_key = check.prepare_key(key.key)  # an EC key on the alg's curve, or an RSA key
        except (InvalidKeyError, TypeError):
            raise AuthError("algorithm_key_mismatch", iss, key.kid) from None
        if not check.verify(token.signing_input, public_key, token.signature):
            raise AuthError("bad_signature", iss, key.kid)
        claims = token.payload
        _check_claims(claims, self.public_base_url + path, iss, self.leeway, key.kid)
        if claims["exp"] - claims["iat"] > self.max_lifetime:
            raise AuthError("lifetime_too_long", iss, key.kid)
        return claims

    def _check_once(self, claims: dict[str, Any], iss: str, kid: str) -> None:
        jti = claims["jti"]
        if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_LENGTH:
            raise AuthError("bad_jti", iss, kid)
        try:
            first = self.replay.first_use(iss, jti, float(claims["exp"]) + self.leeway)
        except ReplayQuotaFull:
            raise AuthError("replay_quota_full", iss, kid) from None
        if not first:
            raise AuthError("replayed_jti", iss, kid)


def _bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise AuthError("missing_token")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("not_bearer")
    if len(token) > MAX_TOKEN_LENGTH:  # bound the work done before the signature is checked
        raise AuthError("too_long")
    return token.strip()


class Token(NamedTuple):
    """A compact JWS taken apart: nothing in it is trusted until the signature over ``signing_input`` holds."""

    header: dict[str, Any]
    payload: dict[str, Any]
    signing_input: bytes
    signature: bytes


def _unverified(token: str) -> Token:
    """The token's parts, parsed once and strictly: canonical base64url, header and payload JSON objects.

    Header and payload are read first only to choose the issuer and key; the claims checked after
    the signature are this same parse.
    """
    try:
        header, payload, signature = token.split(".")
        return Token(
            _json_object(header), _json_object(payload), f"{header}.{payload}".encode("ascii"), _segment(signature)
        )
    except (ValueError, binascii.Error):  # orjson.JSONDecodeError and UnicodeEncodeError are ValueErrors
        raise AuthError("malformed") from None


def _segment(segment: str) -> bytes:
    """A base64url segment's bytes; ValueError unless it is the one canonical encoding of them.

    Correct ``=`` padding is tolerated, as PyJWT does (some issuers pad), and nothing else.
    """
    if segment.endswith("="):
        unpadded = segment.rstrip("=")
        if len(segment) % 4 or len(segment) - len(unpadded) > 2:
            raise ValueError("bad base64url padding")
        segment = unpadded
    if not _BASE64URL.fullmatch(segment) or len(segment) % 4 == 1:
        raise ValueError("not base64url")
    value = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    if base64.urlsafe_b64encode(value).rstrip(b"=") != segment.encode("ascii"):  # no stray trailing bits
        raise ValueError("not canonical base64url")
    return value


def _json_object(segment: str) -> dict[str, Any]:
    value = orjson.loads(_segment(segment))
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _check_time_claims(claims: dict[str, Any], iss: str | None, kid: str | None) -> None:
    """``exp``, ``iat`` and ``nbf``, where present, are NumericDates (RFC 7519 §2): JSON numbers, finite, in range.

    PyJWT converts them with ``int()``, so ``"1700000000"`` or ``true`` would pass its checks and
    then break arithmetic on them; such a token is refused, however well signed.
    """
    for name in TIME_CLAIMS:
        value = claims.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < LATEST_TIME:
            raise AuthError("bad_time_claim", iss, kid)  # NaN fails the range check too


def _check_key_fits(key: VerificationKey, alg: str, iss: str) -> None:
    kty, crv = ALGORITHMS[alg]
    if key.kty != kty or (crv and key.crv != crv) or (key.alg and key.alg != alg):
        raise AuthError("algorithm_key_mismatch", iss, key.kid)


def _check_claims(claims: dict[str, Any], audience: str, iss: str, leeway: float, kid: str) -> None:
    """RFC 7519 §4.1 on a verified token's claims: all required ones, this issuer and URL, valid now.

    The checks PyJWT's ``decode`` made (same rules, same leeway), on the claims already parsed;
    the time claims are known to be numbers (``_check_time_claims``).
    """
    if any(claims.get(name) is None for name in REQUIRED_CLAIMS):
        raise AuthError("missing_claim", iss, kid)
    if claims["iss"] != iss:
        raise AuthError("wrong_issuer", iss, kid)
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if audience not in audiences or not all(isinstance(aud, str) for aud in audiences):
        raise AuthError("wrong_audience", iss, kid)
    now = time.time()
    if claims["exp"] <= now - leeway:
        raise AuthError("expired", iss, kid)
    nbf = claims.get("nbf")
    if claims["iat"] > now + leeway or (nbf is not None and nbf > now + leeway):
        raise AuthError("not_yet_valid", iss, kid)
    if not isinstance(claims.get("sub", ""), str):
        raise AuthError("invalid_token", iss, kid)


def build_verifier(settings: Settings) -> JwtVerifier:
    """The verifier ``settings`` describe; AuthConfigError if authentication cannot work as configured."""
    if settings.trusted_issuers is None:
        raise AuthConfigError(
            "authentication is on (PGX_LOOP_AUTH=jwt) but no trusted issuers are configured: set "
            "PGX_LOOP_TRUSTED_ISSUERS to a YAML or JSON file listing {iss, jwks | jwks_file | jku}, "
            "or PGX_LOOP_AUTH=off to serve without authentication (never with patient data)"
        )
    if not settings.public_base_url or not settings.public_base_url.startswith(("https://", "http://")):
        raise AuthConfigError(
            "authentication is on but PGX_LOOP_PUBLIC_BASE_URL is not set to the URL clients call "
            "(e.g. https://cds.example.org): every token's aud is checked against it"
        )
    path = settings.trusted_issuers
    issuers = {config.iss: _issuer(config, path.parent, settings, str(path)) for config in load_issuers(path)}
    for issuer in issuers.values():
        log.info(
            "trusted issuer %s: key ids %s; %d allowlisted jku URL(s)",
            issuer.iss, sorted(issuer.static) or "none configured", len(issuer.remote),
        )  # fmt: skip
    return JwtVerifier(
        issuers,
        settings.public_base_url,
        leeway=settings.jwt_leeway_seconds,
        max_lifetime=settings.jwt_max_lifetime_seconds,
        replay=replay_store(settings, jti_quota(settings, len(issuers))),
    )


def replay_store(settings: Settings, quota: int) -> ReplayStore:
    """The shared PostgreSQL store when ``PGX_LOOP_REPLAY_STORE`` names one, else the host's SQLite file."""
    if not settings.replay_store:
        return SqliteReplayStore(settings.jti_path, quota)
    from hooks.security.replay_postgres import PostgresReplayStore  # psycopg only where it is used

    try:
        return PostgresReplayStore(settings.replay_store, quota)
    except ReplayStoreError as exc:
        raise AuthConfigError(str(exc)) from None


def jti_quota(settings: Settings, issuers: int) -> int:
    """Unexpired jtis each issuer may hold: ``PGX_LOOP_JTI_PER_ISSUER``, else an equal share of the cache size."""
    return settings.jti_per_issuer or max(1, settings.jti_cache_size // issuers)
