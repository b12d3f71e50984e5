"""Throughput, latency and CPU per request of the order-select service against a do-nothing
FastAPI baseline, and the cost of JWT authentication.

All run under uvicorn with the same number of workers, driven by the same load: 16 keep-alive
connections sending a realistic order-select for a CYP2C19 poor metabolizer with 10 PGx
Observations in prefetch (examples/order-select-poor-metabolizer.json). Each round runs
baseline, service without authentication and service with JWT verification on, one after the
other, so machine noise spreads evenly; ratios are taken within a round and their median and
spread reported. With JWT, every request carries a fresh token (its own jti, aud = the called
URL, inline JWKS; ES384 unless --alg says otherwise), minted before the timed run.

With JWT, the bench also times the signature alone (``cryptography``'s verify of the same kind of
token, in this process, after each round's JWT run), so that the CPU authentication adds per
request can be read in signatures: what is above 1 is not the signature.

Besides requests per second, each server's CPU time per request is measured from /proc (user +
system time of the server process and its workers over the run), and broken down into the
processes' main threads (the event loop) and the rest (the event log's fdatasync process, threads), each in
user and system time. On a shared machine the throughput ratio moves with whatever else runs;
the CPU ratio moves much less.

    python bench/hooks_throughput.py [--seconds 5] [--rounds 5] [--connections 16] [--workers 1]
                                     [--sync always|interval] [--alg ES384] [--no-jwt]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # tests.jwt_keys mints the tokens
from jwt_verify import raw_check
from loadgen import LoadResult, run_load

from tests.jwt_keys import SigningKey, claims, jwks, new_key

ROOT = Path(__file__).resolve().parent.parent
ISSUER = "https://ehr.bench.example"
BODY = (ROOT / "examples" / "order-select-poor-metabolizer.json").read_bytes()
PATH = "/cds-services/pgx-order-select"
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(app: str, port: int, env: dict[str, str], workers: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "uvicorn", app, "--port", str(port), "--log-level", "warning", "--no-access-log"]
    if app.endswith("()"):
        command = [*command[:3], app.removesuffix("()"), "--factory", *command[4:]]
    if workers > 1:
        command += ["--workers", str(workers)]
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.post(
                f"http://127.0.0.1:{port}{PATH}", content=BODY, headers={"Content-Type": "application/json"}, timeout=2
            )
            if workers == 1 or len(process_tree(process.pid)) > workers:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    raise SystemExit(f"{app} did not start")


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (uvicorn's workers, and multiprocessing's helper)."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                queue += [int(child) for child in Path(f"/proc/{current}/task/{task}/children").read_text().split()]
        except OSError:
            continue
    return found


@dataclass(frozen=True)
class Cpu:
    """CPU seconds of a server's process tree: its processes' main threads and the rest (threads:
    watchers, worker pools; the event log's fdatasync process), each split into user and system time."""

    main_user: float = 0.0
    main_system: float = 0.0
    other_user: float = 0.0
    other_system: float = 0.0

    @property
    def total(self) -> float:
        return self.main_user + self.main_system + self.other_user + self.other_system

    def __sub__(self, other: Cpu) -> Cpu:
        return Cpu(*(a - b for a, b in zip(self.parts(), other.parts(), strict=True)))

    def parts(self) -> tuple[float, float, float, float]:
        return (self.main_user, self.main_system, self.other_user, self.other_system)


def cpu_seconds(pid: int) -> Cpu:
    """CPU time of the process tree rooted at ``pid``, by thread kind and user/system."""
    parts = [0, 0, 0, 0]
    for member in process_tree(pid):
        try:
            tasks = os.listdir(f"/proc/{member}/task")
            # The event log's fdatasync process (one per worker) is disk work, not an event loop.
            helper = b"fdatasyncer" in Path(f"/proc/{member}/cmdline").read_bytes()
        except OSError:
            continue
        for task in tasks:
            try:
                fields = Path(f"/proc/{member}/task/{task}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            offset = 0 if int(task) == member and not helper else 2  # the main thread's id is the process id
            parts[offset] += int(fields[11])  # utime, stime: fields 14 and 15 of stat
            parts[offset + 1] += int(fields[12])
    return Cpu(*(ticks / TICKS for ticks in parts))


@dataclass
class Run:
    load: LoadResult
    cpu: Cpu  # server CPU over the run

    @property
    def cpu_per_request_us(self) -> float:
        return self.per_request_us(self.cpu.total)

    def per_request_us(self, seconds: float) -> float:
        return seconds / max(self.load.requests, 1) * 1e6

    def breakdown(self) -> tuple[float, float, float, float]:
        """(main user, main system, the rest user, the rest system) in µs per request."""
        return tuple(self.per_request_us(part) for part in self.cpu.parts())  # type: ignore[return-value]


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


def signature_cpu_us(key: SigningKey, aud: str, count: int = 100) -> float:
    """CPU time of one raw signature check in this process (fresh tokens, minted outside the timing)."""
    tokens, check = [key.sign(claims(ISSUER, aud)) for _ in range(count)], raw_check(key)
    started = time.process_time()
    for token in tokens:
        check(token)
    return (time.process_time() - started) / count * 1e6


def merge(runs: list[Run]) -> LoadResult:
    results = [run.load for run in runs]
    return LoadResult(
        sum(r.requests for r in results),
        sum(r.errors for r in results),
        sum(r.seconds for r in results),
        [x for r in results for x in r.latencies_ms],
    )


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.3f} (min {min(values):.3f}, max {max(values):.3f})"


def batch_sizes(port: int) -> str:
    """Mean requests per event-log commit, from the service's /metrics (one worker's view)."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.TransportError:
        return "unavailable"
    found = dict(re.findall(r"^pgx_loop_event_log_batch_requests_(sum|count) (\S+)$", text, re.M))
    if not found:
        return "batch sizes not reported"
    if float(found["count"]) == 0:
        return "no synchronous batches (sync mode interval)"
    count, total = float(found["count"]), float(found["sum"])
    return f"{total / count:.1f} requests per fdatasync on average ({count:.0f} fdatasyncs)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--sync", default="always", choices=["always", "interval"], help="PGX_LOOP_EVENT_SYNC")
    parser.add_argument("--alg", default="ES384", choices=["ES384", "RS384", "ES256", "RS256"], help="JWT signatures")
    parser.add_argument("--no-jwt", action="store_true", help="leave out the service with authentication")
    args = parser.parse_args()

    key = new_key(args.alg, "bench-1")
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        var = Path(tmp)
        (var / "jwt").mkdir()
        sync = {"PGX_LOOP_EVENT_SYNC": args.sync}
        ports = {"baseline": free_port(), "pgx-loop": free_port()}
        if not args.no_jwt:
            ports["pgx+jwt"] = free_port()
        envs = {
            "baseline": {},
            "pgx-loop": {"PGX_LOOP_VAR_DIR": str(var), "PGX_LOOP_AUTH": "off", **sync},
            "pgx+jwt": {**jwt_service_env(var / "jwt", ports.get("pgx+jwt", 0), key), **sync},
        }
        apps = {"baseline": "bench.baseline_app:app", "pgx-loop": "hooks.app:create_app()"}
        apps["pgx+jwt"] = apps["pgx-loop"]
        processes = {name: start(apps[name], port, envs[name], args.workers) for name, port in ports.items()}
        try:
            runs: dict[str, list[Run]] = {name: [] for name in ports}
            signatures: list[float] = []  # us of CPU per raw signature, once per round
            for _ in range(args.rounds):
                for name, port in ports.items():
                    expect = b'"cards":[]' if name == "baseline" else b"critical"
                    headers = None
                    if name == "pgx+jwt":  # enough tokens for twice the unauthenticated run's requests
                        headers = bearer_headers(key, port, 2 * runs["pgx-loop"][-1].load.requests + 1000)
                    pid = processes[name].pid
                    cpu_before = cpu_seconds(pid)
                    load = asyncio.run(
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
                    runs[name].append(Run(load, cpu_seconds(pid) - cpu_before))
                    if name == "pgx+jwt":
                        signatures.append(signature_cpu_us(key, f"http://127.0.0.1:{port}{PATH}"))
            batches = batch_sizes(ports["pgx-loop"])
        finally:
            for process in processes.values():
                process.terminate()
                process.wait(timeout=10)
    load_after = os.getloadavg()

    print(
        f"order-select, {len(BODY)} byte body, {args.connections} connections, {args.rounds} rounds x "
        f"{args.seconds:g} s, {args.workers} worker(s), event log sync {args.sync}"
    )
    print(f"  machine load average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    for name, server_runs in runs.items():
        cpu = statistics.median(run.cpu_per_request_us for run in server_runs)
        print(f"  {name:9s} {merge(server_runs).describe()}   CPU {cpu:6.0f} us/request (median)")
    print("  CPU per request, medians in us: main thread user + system | the rest (threads, fdatasync) user + system")
    for name, server_runs in runs.items():
        main_user, main_system, other_user, other_system = (
            statistics.median(parts) for parts in zip(*(run.breakdown() for run in server_runs), strict=True)
        )
        print(f"  {name:9s} {main_user:6.0f} + {main_system:4.0f} | {other_user:4.0f} + {other_system:4.0f}")
    base, pgx = runs["baseline"], runs["pgx-loop"]
    ratios = [p.load.throughput / b.load.throughput for p, b in zip(pgx, base, strict=True)]
    cpu_ratios = [b.cpu_per_request_us / p.cpu_per_request_us for p, b in zip(pgx, base, strict=True)]
    print(f"  throughput ratio pgx-loop/baseline per round: {spread(ratios)}")
    print(f"  CPU ratio baseline/pgx-loop per request per round: {spread(cpu_ratios)}")
    print(f"  pgx-loop p99 {merge(pgx).percentile(99):.2f} ms; event log: {batches}")
    if "pgx+jwt" in runs:
        jwt = runs["pgx+jwt"]
        jwt_ratios = [j.load.throughput / p.load.throughput for j, p in zip(jwt, pgx, strict=True)]
        jwt_cpu = [p.cpu_per_request_us / j.cpu_per_request_us for j, p in zip(jwt, pgx, strict=True)]
        print(f"  {args.alg} JWT/no-auth throughput per round: {spread(jwt_ratios)}")
        print(f"  {args.alg} JWT/no-auth CPU per request (no-auth/JWT) per round: {spread(jwt_cpu)}")
        extra = [j.cpu_per_request_us - p.cpu_per_request_us for j, p in zip(jwt, pgx, strict=True)]
        in_signatures = [e / s for e, s in zip(extra, signatures, strict=True)]
        print(
            f"  CPU JWT adds per request: median {statistics.median(extra):.0f} us; one raw {args.alg} signature "
            f"in this process: median {statistics.median(signatures):.0f} us; added/signature per round: "
            f"{spread(in_signatures)}"
        )


if __name__ == "__main__":
    main()
