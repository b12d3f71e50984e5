"""What the jti replay check costs per authenticated request: the shared PostgreSQL store against SQLite.

Two levels, each alternating SQLite and PostgreSQL within every round so that machine noise
spreads evenly; per round the PostgreSQL/SQLite ratio is taken, and the median and spread
(min-max) of the rounds are reported:

- ``first_use``: the store call alone, a new jti each time. Wall µs per call, the calling
  process's CPU µs per call, and (PostgreSQL) the server backend's CPU µs per call from /proc.
- ``verify``: the verifier's whole path for an RS384 token (the fastest signature here) and an
  ES384 one (the slowest, checked on a thread either way), as the service runs it: with
  PostgreSQL the signature and the check go to a worker thread together, off the event loop.

PostgreSQL is a real server started in a temporary directory (tests/postgres_server.py), on
loopback: a site's server over the network adds its round trip to the wall time, not to the CPU.

    python bench/replay_store.py [--rounds 5] [--calls 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hooks.security.auth import Issuer, JwtVerifier
from hooks.security.jwks import parse_jwks
from hooks.security.replay import ReplayStore, SqliteReplayStore
from hooks.security.replay_postgres import PostgresReplayStore
from tests.jwt_keys import claims, jwks, new_key
from tests.postgres_server import running_postgres

ISSUER = "https://ehr.bench.example"
BASE = "https://cds.bench.example"
PATH = "/cds-services/pgx-order-select"
TICKS = os.sysconf("SC_CLK_TCK")
QUOTA = 10_000_000


def backend_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) the PostgreSQL backends ``pids`` have used."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def backends(store: PostgresReplayStore) -> list[int]:
    with store._connection() as conn:  # the bench's one pooled connection
        return [conn.execute("SELECT pg_backend_pid()").fetchone()[0]]


def time_first_use(store: ReplayStore, calls: int, pids: list[int]) -> dict[str, float]:
    expires = time.time() + 3600
    jtis = [uuid.uuid4().hex for _ in range(calls)]
    server_before = backend_cpu(pids) if pids else 0.0
    cpu, wall = time.process_time(), time.perf_counter()
    for jti in jtis:
        store.first_use(ISSUER, jti, expires)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    server = backend_cpu(pids) - server_before if pids else 0.0
    return {"wall_us": wall / calls * 1e6, "cpu_us": cpu / calls * 1e6, "server_cpu_us": server / calls * 1e6}


def time_verify(verifier: JwtVerifier, tokens: list[str]) -> dict[str, float]:
    async def run() -> None:
        for token in tokens:
            await verifier.verify(f"Bearer {token}", PATH)

    cpu, wall = time.process_time(), time.perf_counter()
    asyncio.run(run())
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"wall_us": wall / len(tokens) * 1e6, "cpu_us": cpu / len(tokens) * 1e6}


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):8.1f}  ({min(values):.1f}-{max(values):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    keys = {alg: new_key(alg) for alg in ("RS384", "ES384")}
    issuer = Issuer(ISSUER, parse_jwks(jwks(*keys.values())), {})

    def verifier(store: ReplayStore) -> JwtVerifier:
        return JwtVerifier({ISSUER: issuer}, BASE, leeway=60, max_lifetime=3600, replay=store)

    with tempfile.TemporaryDirectory() as tmp, running_postgres() as server:
        server.psql("CREATE DATABASE bench")
        sqlite = SqliteReplayStore(Path(tmp) / "jti.sqlite3", QUOTA)
        postgres = PostgresReplayStore(server.url("bench"), QUOTA, pool_size=1)
        pids = backends(postgres)
        stores: dict[str, tuple[ReplayStore, list[int]]] = {"sqlite": (sqlite, []), "postgres": (postgres, pids)}
        for store, store_pids in stores.values():  # warm up: prepared statements, page cache
            time_first_use(store, 200, store_pids)
        results: dict[str, dict[str, list[float]]] = {name: {} for name in stores}
        verify = {alg: {name: {} for name in stores} for alg in keys}
        for round_ in range(args.rounds):
            order = list(stores) if round_ % 2 == 0 else list(reversed(stores))
            for name in order:
                store, store_pids = stores[name]
                for metric, value in time_first_use(store, args.calls, store_pids).items():
                    results[name].setdefault(metric, []).append(value)
                for alg, key in keys.items():
                    tokens = [key.sign(claims(ISSUER, BASE + PATH)) for _ in range(args.calls // 4)]
                    for metric, value in time_verify(verifier(store), tokens).items():
                        verify[alg][name].setdefault(metric, []).append(value)
        postgres.close()
        sqlite.close()

    load = os.getloadavg()
    print(f"{args.rounds} rounds x {args.calls} calls; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("first_use          median µs/call (min-max)")
    report(results, ["wall_us", "cpu_us", "server_cpu_us"])
    for alg, results_by_store in verify.items():
        print(f"verify ({alg})     median µs/request (min-max), {args.calls // 4} tokens per round")
        report(results_by_store, ["wall_us", "cpu_us"])


def report(results: dict[str, dict[str, list[float]]], metrics: list[str]) -> None:
    ratio: Callable[[str], list[float]] = lambda metric: [  # noqa: E731
        pg / lite for pg, lite in zip(results["postgres"][metric], results["sqlite"][metric], strict=True)
    ]
    for metric in metrics:
        sqlite, postgres = summary(results["sqlite"][metric]), summary(results["postgres"][metric])
        line = f"  {metric:14} sqlite {sqlite}   postgres {postgres}"
        if metric != "server_cpu_us":
            values = ratio(metric)
            line += f"   ratio {statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"
        print(line)


if __name__ == "__main__":
    main()
