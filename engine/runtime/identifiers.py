"""Keyed pseudonyms and stable identifiers.

The event log must let analytics link a card to a patient without holding the patient's id, so
ids are replaced by a keyed hash (BLAKE2b MAC) under a site secret. Card uuids are derived the same way, which
makes them stable (the same card for the same order and result) without revealing their parts.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from pathlib import Path


class Identifiers:
    """Pseudonyms and stable uuids under one secret key."""

    def __init__(self, key: bytes):
        if len(key) < 16:
            raise ValueError("the pseudonym key must be at least 16 bytes")
        # BLAKE2b keys are at most 64 bytes. The keyed state is set up once and copied per MAC,
        # which saves hashing the key block on every call (several per card).
        self._keyed = hashlib.blake2b(key=hashlib.sha256(key).digest(), digest_size=16)

    def _mac(self, parts: tuple[str, ...]) -> bytes:
        mac = self._keyed.copy()
        mac.update("\x1f".join(parts).encode())
        return mac.digest()

    def pseudonym(self, value: str) -> str:
        """A keyed, irreversible stand-in for an identifier (same input, same output)."""
        return self._mac((value,)).hex()

    def stable_uuid(self, *parts: str) -> str:
        """A uuid determined by ``parts`` (RFC 9562 version 8); unguessable without the key."""
        digest = bytearray(self._mac(("uuid", *parts)))
        digest[6] = (digest[6] & 0x0F) | 0x80  # version 8: application-defined
        digest[8] = (digest[8] & 0x3F) | 0x80  # RFC variant
        h = digest.hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def random_uuid() -> str:
    """A random (version 4) uuid string, as ``str(uuid.uuid4())`` at half the cost (one per event)."""
    digest = bytearray(os.urandom(16))
    digest[6] = (digest[6] & 0x0F) | 0x40
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def load_or_create_key(path: Path) -> bytes:
    """Read the site key, creating it (readable by this user only) on first use."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_hex(32).encode())
            handle.flush()
            os.fsync(handle.fileno())
        # link() fails if the key exists: when several workers start at once, exactly one key wins.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
        temporary.unlink()
    key = path.read_bytes().strip()
    if not key:
        raise ValueError(f"{path} is empty; delete it to create a new key")
    return key
