"""A small closed-loop HTTP/1.1 load generator: N keep-alive connections, each sending the same
POST back to back. Raw asyncio streams, so the client costs little next to the server."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    def describe(self) -> str:
        return (
            f"{self.throughput:8.0f} req/s   p50 {self.percentile(50):6.2f} ms   p99 {self.percentile(99):6.2f} ms"
            f"   mean {statistics.fmean(self.latencies_ms):6.2f} ms   ({self.requests} requests, {self.errors} errors)"
        )


async def _connection(
    host: str, port: int, request: bytes, stop: float, out: LoadResult, expect: bytes, headers: Iterator[bytes] | None
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    head, _, payload = request.partition(b"\r\n\r\n")
    try:
        while time.perf_counter() < stop:
            started = time.perf_counter()
            writer.write(request if headers is None else b"%s\r\n%s\r\n\r\n%s" % (head, next(headers), payload))
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            body = await reader.readexactly(length)
            out.latencies_ms.append((time.perf_counter() - started) * 1000)
            out.requests += 1
            if b" 200 " not in status_line or expect not in body:
                out.errors += 1
    finally:
        writer.close()


async def run_load(
    host: str,
    port: int,
    path: str,
    body: bytes,
    *,
    connections: int,
    seconds: float,
    expect: bytes = b"cards",
    headers: Iterator[bytes] | None = None,
) -> LoadResult:
    """Load ``path`` for ``seconds``; ``headers``, if given, supplies one more header line per request."""
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    result = LoadResult(0, 0, seconds, [])
    stop = time.perf_counter() + seconds
    started = time.perf_counter()
    await asyncio.gather(*(_connection(host, port, request, stop, result, expect, headers) for _ in range(connections)))
    result.seconds = time.perf_counter() - started
    return result
