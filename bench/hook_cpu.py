"""CPU time per hook call in-process, the service against the FastAPI floor, alternated in one process.

The same in-process calls as bench/hook_instructions.py (the whole ASGI application, no sockets,
event log in ``interval`` mode, the realistic order-select), but timed: each round runs a block of
floor calls and a block of service calls, and the ratio floor/service of their CPU time per call is
taken within the round. No server, no load generator: what is left is the two applications' own
CPU. Noisier than the instruction count, steadier than throughput.

    python bench/hook_cpu.py [--rounds 20] [--calls 500]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.hook_instructions import call  # noqa: E402


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(rounds: int, calls: int) -> None:
    os.environ.update(PGX_LOOP_AUTH="off", PGX_LOOP_EVENT_SYNC="interval", PGX_LOOP_VAR_DIR=tempfile.mkdtemp())
    from bench.baseline_app import app as floor
    from hooks.app import create_app

    service = create_app()
    async with service.router.lifespan_context(service):
        for _ in range(300):  # warm both
            await call(floor)
            await call(service)
        per_call: dict[str, list[float]] = {"floor": [], "service": []}
        for _ in range(rounds):
            for name, app in (("floor", floor), ("service", service)):
                started = cpu_seconds()
                for _ in range(calls):
                    await call(app)
                per_call[name].append((cpu_seconds() - started) / calls * 1e6)
    ratios = [f / s for f, s in zip(per_call["floor"], per_call["service"], strict=True)]
    print(f"in-process hook call, {rounds} rounds x {calls} calls each, CPU time per call (medians)")
    for name, values in per_call.items():
        print(f"  {name:8s} {statistics.median(values):6.1f} us")
    print(
        f"  ratio floor/service per round: median {statistics.median(ratios):.3f} "
        f"(min {min(ratios):.3f}, max {max(ratios):.3f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--calls", type=int, default=500)
    args = parser.parse_args()
    asyncio.run(measure(args.rounds, args.calls))


if __name__ == "__main__":
    main()
