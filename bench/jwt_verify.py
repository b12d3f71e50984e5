"""Where the CPU of JWT authentication goes: the ES384 signature itself against everything around it.

In one process, alternating in each round, on fresh tokens of the same key (each its own jti):

- ``raw``: the signature alone, as ``cryptography`` checks it (base64 + DER + ECDSA verify);
- ``pyjwt``: PyJWT's ``decode`` of the token (parsing, signature, claim checks), for comparison;
- ``replay``: one ``first_use`` of the jti replay store (SQLite WAL, one commit);
- ``verifier``: ``JwtVerifier.verify`` as the service runs it (thread hand-off, replay store);
- with ``--app``, the whole service through ASGI (16 calls at once, no sockets): auth off, ES384
  JWT, and JWT with the signature check skipped (``ECAlgorithm.verify`` replaced, in this
  process only), so ``jwt - nosig`` is the signature in context and ``nosig - off`` is the rest.

CPU is process time (all threads) per call; each figure is the median over rounds with its
spread, and ratios to ``raw`` are taken within a round. On a shared machine the ratios are the
figures to quote.

    python bench/jwt_verify.py [--calls 200] [--rounds 7] [--alg ES384] [--app]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.jwt_keys mints the tokens
import jwt
from jwt.algorithms import ECAlgorithm

from hooks.app import create_app
from hooks.security.auth import REQUIRED_CLAIMS, Issuer, JwtVerifier
from hooks.security.jwks import parse_jwks
from hooks.security.replay import SqliteReplayStore
from hooks.settings import Settings
from tests.jwt_keys import SigningKey, claims, jwks, new_key

ROOT = Path(__file__).resolve().parent.parent
ISSUER = "https://ehr.bench.example"
BASE = "http://testserver"
PATH = "/cds-services/pgx-order-select"
BODY = (ROOT / "examples" / "order-select-poor-metabolizer.json").read_bytes()
CONCURRENT = 16
HASHES = {"ES256": hashes.SHA256, "ES384": hashes.SHA384}


def raw_check(key: SigningKey) -> Callable[[str], None]:
    """The signature alone: what any ES* verifier must do, whatever wraps it."""
    public = key.private.public_key()
    half = public.curve.key_size // 8 + (public.curve.key_size % 8 > 0)
    algorithm = ec.ECDSA(HASHES[key.alg]())

    def check(token: str) -> None:
        signed, _, signature = token.rpartition(".")
        raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
        der = encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))
        public.verify(der, signed.encode(), algorithm)

    return check


async def call_app(app: Callable, token: str | None) -> None:
    headers = [(b"host", b"testserver"), (b"content-type", b"application/json")]
    headers.append((b"content-length", str(len(BODY)).encode()))
    if token:
        headers.append((b"authorization", b"Bearer " + token.encode()))
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": PATH, "raw_path": PATH.encode(), "query_string": b"", "root_path": "", "headers": headers,
        "client": ("127.0.0.1", 1), "server": ("testserver", 80),
    }  # fmt: skip
    body = [{"type": "http.request", "body": BODY, "more_body": False}]
    status: list[int] = []

    async def receive() -> dict:
        if body:
            return body.pop()
        await asyncio.Event().wait()  # the client stays connected
        raise AssertionError

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    if status != [200]:
        raise SystemExit(f"the service answered {status}")


async def drive(app: Callable, tokens: list[str | None]) -> None:
    pending = iter(tokens)

    async def connection() -> None:
        for token in pending:
            await call_app(app, token)

    await asyncio.gather(*(connection() for _ in range(CONCURRENT)))


def report(results: dict[str, list[float]], reference: str) -> None:
    for name, values in results.items():
        ratios = [value / ref for value, ref in zip(values, results[reference], strict=True)]
        print(
            f"  {name:22s} {statistics.median(values):7.0f} us/call (min {min(values):.0f}, max {max(values):.0f})"
            f"   x {reference}: {statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
        )


async def parts(key: SigningKey, calls: int, rounds: int, var: Path) -> dict[str, list[float]]:
    public = parse_jwks(jwks(key))[key.kid]
    store = SqliteReplayStore(var / "jti.sqlite3", 10**7)
    issuers = {ISSUER: Issuer(ISSUER, {key.kid: public}, {})}
    verifier = JwtVerifier(issuers, BASE, leeway=60, max_lifetime=3600, replay=store)
    audience = BASE + PATH
    raw = raw_check(key)

    decoder = jwt.PyJWT()

    def pyjwt(token: str) -> None:
        decoder.decode(token, public.key, algorithms=[key.alg], audience=audience, issuer=ISSUER,
                        options={"require": REQUIRED_CLAIMS})  # fmt: skip

    def replay(token: str) -> None:
        store.first_use(ISSUER, token[-40:], time.time() + 300)

    async def verify(token: str) -> None:
        await verifier.verify("Bearer " + token, PATH)

    steps: dict[str, Callable[[str], Awaitable[None] | None]] = {
        "raw": raw, "pyjwt": pyjwt, "replay": replay, "verifier": verify,
    }  # fmt: skip
    results: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            tokens = [key.sign(claims(ISSUER, audience)) for _ in range(calls)]
            started = time.process_time()
            for token in tokens:
                done = step(token)
                if done is not None:
                    await done
            results[name].append((time.process_time() - started) / calls * 1e6)
    store.close()
    return results


async def in_app(key: SigningKey, calls: int, rounds: int, var: Path) -> dict[str, list[float]]:
    issuers = var / "issuers.json"
    issuers.write_text(json.dumps([{"iss": ISSUER, "jwks": jwks(key)}]))
    off = create_app(Settings(var_dir=var / "off", auth="off"))
    on = create_app(Settings(var_dir=var / "on", auth="jwt", trusted_issuers=issuers, public_base_url=BASE))
    raw, real_verify = raw_check(key), ECAlgorithm.verify
    results: dict[str, list[float]] = {"raw": [], "off": [], "jwt": [], "jwt, signature skipped": []}
    async with off.router.lifespan_context(off), on.router.lifespan_context(on):
        await drive(off, [None] * 50)
        await drive(on, [key.sign(claims(ISSUER, BASE + PATH)) for _ in range(50)])
        for _ in range(rounds):
            for name in results:
                tokens = [key.sign(claims(ISSUER, BASE + PATH)) for _ in range(calls)]
                ECAlgorithm.verify = (lambda *_: True) if name.endswith("skipped") else real_verify  # type: ignore[method-assign]
                started = time.process_time()
                if name == "raw":
                    for token in tokens:
                        raw(token)
                else:
                    await drive(off if name == "off" else on, [None] * calls if name == "off" else tokens)
                results[name].append((time.process_time() - started) / calls * 1e6)
        ECAlgorithm.verify = real_verify  # type: ignore[method-assign]
    off_cpu = results["off"]
    results["jwt - off"] = [jwt - o for jwt, o in zip(results["jwt"], off_cpu, strict=True)]
    skipped = results["jwt, signature skipped"]
    results["jwt - skipped"] = [jwt - s for jwt, s in zip(results["jwt"], skipped, strict=True)]
    results["skipped - off"] = [s - o for s, o in zip(skipped, off_cpu, strict=True)]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--alg", default="ES384", choices=sorted(HASHES))
    parser.add_argument("--app", action="store_true", help="also the whole service through ASGI")
    args = parser.parse_args()
    key = new_key(args.alg, "bench-1")
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{args.alg}, {args.calls} calls x {args.rounds} rounds, CPU per call (process time, all threads)")
        report(asyncio.run(parts(key, args.calls, args.rounds, Path(tmp))), "raw")
        if args.app:
            print(f"the service through ASGI, {CONCURRENT} calls at once, CPU per request")
            report(asyncio.run(in_app(key, args.calls, args.rounds, Path(tmp))), "raw")
    print(f"  machine load average (1 min) {load:.1f} before, {os.getloadavg()[0]:.1f} after")


if __name__ == "__main__":
    main()
