"""Real signing keys and real signed tokens, as an EHR would send them (tests and bench/hooks_throughput.py)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

CURVES = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1}


@dataclass
class SigningKey:
    """A private key, the JWS alg it signs with and the kid it is published under."""

    alg: str
    kid: str
    private: Any

    def public_jwk(self) -> dict[str, Any]:
        family = ECAlgorithm if self.alg.startswith("ES") else RSAAlgorithm
        return {**family.to_jwk(self.private.public_key(), as_dict=True), "kid": self.kid, "use": "sig"}

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        """A compact JWS of ``claims``; ``header`` adds to (or, with None, removes from) kid and typ JWT."""
        headers = {"kid": self.kid, "typ": "JWT", **header}  # PyJWT drops a typ of None
        headers = {key: value for key, value in headers.items() if value is not None or key == "typ"}
        return jwt.encode(claims, self.private, algorithm=self.alg, headers=headers)


def new_key(alg: str, kid: str | None = None) -> SigningKey:
    """A fresh key: EC P-256/P-384 for ES256/ES384, RSA 2048 for RS256/RS384."""
    curve = CURVES.get(alg)
    private = ec.generate_private_key(curve()) if curve else rsa.generate_private_key(65537, 2048)
    return SigningKey(alg, kid or f"{alg.lower()}-{uuid.uuid4().hex[:8]}", private)


def jwks(*keys: SigningKey) -> dict[str, Any]:
    return {"keys": [key.public_jwk() for key in keys]}


def claims(iss: str, aud: str | list[str] | None, lifetime: float = 300, **extra: Any) -> dict[str, Any]:
    """The claims CDS Hooks 2.0 requires, issued now; ``extra`` adds or (with None) removes claims."""
    now = int(time.time())
    base = {"iss": iss, "aud": aud, "iat": now, "exp": now + int(lifetime), "jti": uuid.uuid4().hex}
    return {key: value for key, value in {**base, **extra}.items() if value is not None}
