"""Throughput and latency of the order-select service against a do-nothing FastAPI baseline,
and the cost of JWT authentication.

All run under uvicorn with one worker, one after the other, driven by the same load: 16
keep-alive connections sending a realistic order-select for a CYP2C19 poor metabolizer with
10 PGx Observations in prefetch (examples/order-select-poor-metabolizer.json). Each round
alternates baseline, service without authentication and service with JWT verification on, to
spread machine noise evenly. With JWT, every request carries a fresh token (its own jti,
aud = the called URL, inline JWKS; ES384 unless --alg says otherwise), minted before the timed run.

    python bench/hooks_throughput.py [--seconds 5] [--rounds 3] [--connections 16] [--alg ES384]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # tests.jwt_keys mints the tokens
from loadgen import LoadResult, run_load

from tests.jwt_keys import SigningKey, claims, jwks, new_key

ROOT = Path(__file__).resolve().parent.parent
ISSUER = "https://ehr.bench.example"
BODY = (ROOT / "examples" / "order-select-poor-metabolizer.json").read_bytes()
PATH = "/cds-services/pgx-order-select"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(app: str, port: int, env: dict[str, str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "uvicorn", app, "--port", str(port), "--log-level", "warning", "--no-access-log"]
    if app.endswith("()"):
        command = [*command[:3], app.removesuffix("()"), "--factory", *command[4:]]
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.post(
                f"http://127.0.0.1:{port}{PATH}", content=BODY, headers={"Content-Type": "application/json"}, timeout=2
            )
            return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"{app} did not start")


def jwt_service_env(var: Path, port: int, key: SigningKey) -> dict[str, str]:
    issuers = var / "issuers.json"
    issuers.write_text(json.dumps([{"iss": ISSUER, "jwks": jwks(key)}]))
    return {
        "PGX_LOOP_VAR_DIR": str(var),
        "PGX_LOOP_AUTH": "jwt",
        "PGX_LOOP_TRUSTED_ISSUERS": str(issuers),
        "PGX_LOOP_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
    }


def bearer_headers(key: SigningKey, port: int, count: int) -> Iterator[bytes]:
    """``count`` Authorization header lines, each with a fresh token (minted now, outside the timing)."""
    aud = f"http://127.0.0.1:{port}{PATH}"
    return iter([b"Authorization: Bearer " + key.sign(claims(ISSUER, aud)).encode() for _ in range(count)])


def merge(results: list[LoadResult]) -> LoadResult:
    return LoadResult(
        sum(r.requests for r in results),
        sum(r.errors for r in results),
        sum(r.seconds for r in results),
        [x for r in results for x in r.latencies_ms],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--alg", default="ES384", choices=["ES384", "RS384", "ES256", "RS256"], help="JWT signatures")
    args = parser.parse_args()

    key = new_key(args.alg, "bench-1")
    with tempfile.TemporaryDirectory() as tmp:
        var = Path(tmp)
        (var / "jwt").mkdir()
        ports = {"baseline": free_port(), "pgx-loop": free_port(), "pgx+jwt": free_port()}
        processes = {
            "baseline": start("bench.baseline_app:app", ports["baseline"], {}),
            "pgx-loop": start(
                "hooks.app:create_app()", ports["pgx-loop"], {"PGX_LOOP_VAR_DIR": str(var), "PGX_LOOP_AUTH": "off"}
            ),
            "pgx+jwt": start(
                "hooks.app:create_app()", ports["pgx+jwt"], jwt_service_env(var / "jwt", ports["pgx+jwt"], key)
            ),
        }
        try:
            results: dict[str, list[LoadResult]] = {name: [] for name in ports}
            for _ in range(args.rounds):
                for name, port in ports.items():
                    expect = b'"cards":[]' if name == "baseline" else b"critical"
                    headers = None
                    if name == "pgx+jwt":  # enough tokens for twice the unauthenticated run's requests
                        headers = bearer_headers(key, port, 2 * results["pgx-loop"][-1].requests + 1000)
                    results[name].append(
                        asyncio.run(
                            run_load(
                                "127.0.0.1",
                                port,
                                PATH,
                                BODY,
                                connections=args.connections,
                                seconds=args.seconds,
                                expect=expect,
                                headers=headers,
                            )
                        )
                    )
        finally:
            for process in processes.values():
                process.terminate()
                process.wait(timeout=10)

    print(
        f"order-select, {len(BODY)} byte body, {args.connections} connections, "
        f"{args.rounds} x {args.seconds:g} s each, 1 worker"
    )
    merged = {name: merge(runs) for name, runs in results.items()}
    for name, result in merged.items():
        print(f"  {name:9s} {result.describe()}")
    ratio = merged["pgx-loop"].throughput / merged["baseline"].throughput
    print(
        f"  ratio     {ratio:.3f} of baseline throughput (target >= 0.8); "
        f"pgx-loop p99 {merged['pgx-loop'].percentile(99):.2f} ms (target < 25 ms)"
    )
    jwt_ratio = merged["pgx+jwt"].throughput / merged["pgx-loop"].throughput
    print(
        f"  jwt       {jwt_ratio:.3f} of no-auth throughput with {args.alg} JWT verification (target >= 0.7); "
        f"p50 +{merged['pgx+jwt'].percentile(50) - merged['pgx-loop'].percentile(50):.2f} ms"
    )


if __name__ == "__main__":
    main()
