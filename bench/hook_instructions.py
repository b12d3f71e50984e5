"""Instructions per hook call, counted by valgrind's callgrind: repeatable on a loaded machine.

Throughput and CPU time move with whatever else runs on the machine; instruction counts do not.
This drives the real ASGI application in-process (no sockets: the hook path from the outermost
middleware to the response, event log in ``interval`` mode) with the realistic order-select of
bench/hooks_throughput.py. Start-up and a warm-up run uninstrumented; then callgrind counts
``--requests`` calls, and the total is divided by their number. Needs valgrind (``apt-get install
valgrind``); takes a minute or two.

    python bench/hook_instructions.py [--requests 200] [--baseline]

``--baseline`` counts bench/baseline_app.py (FastAPI parsing the same body, answering no cards)
instead, for the instruction ratio against the floor of bench/hooks_throughput.py.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BODY = (ROOT / "examples" / "order-select-poor-metabolizer.json").read_bytes()
PATH = "/cds-services/pgx-order-select"
SCOPE = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "POST",
    "scheme": "http",
    "path": PATH,
    "raw_path": PATH.encode(),
    "query_string": b"",
    "root_path": "",
    "headers": [(b"host", b"bench"), (b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY))],
    "client": ("127.0.0.1", 1),
    "server": ("127.0.0.1", 8000),
}


async def call(app: Any) -> list[dict[str, Any]]:
    """One hook call through the whole ASGI application; the messages it sent."""
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": BODY, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await asyncio.sleep(3600)  # the client stays connected
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({**SCOPE, "state": {}}, receive, send)
    return sent


async def serve(requests: int, control: Path, baseline: bool) -> None:
    """Warm up, tell the parent, wait for its go, make ``requests`` calls, tell the parent."""
    sys.path.insert(0, str(ROOT))
    os.environ.update(PGX_LOOP_AUTH="off", PGX_LOOP_EVENT_SYNC="interval", PGX_LOOP_VAR_DIR=str(control / "var"))
    if baseline:
        from bench.baseline_app import app
    else:
        from hooks.app import create_app

        app = create_app()
    async with app.router.lifespan_context(app):
        for _ in range(50):
            sent = await call(app)
        assert sent[0]["status"] == 200 and (b"cards" if baseline else b"critical") in sent[1]["body"], sent
        (control / "ready").touch()
        while not (control / "go").exists():
            time.sleep(0.05)
        for _ in range(requests):
            await call(app)
        (control / "done").touch()
        while not (control / "end").exists():
            time.sleep(0.05)


def wait_for(path: Path, process: subprocess.Popen) -> None:
    while not path.exists():
        if process.poll() is not None:
            raise SystemExit(f"the instrumented process ended early (exit {process.returncode})")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--baseline", action="store_true", help="count the do-nothing FastAPI floor instead")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # the instrumented child
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.requests, args.serve, args.baseline))
        return
    with tempfile.TemporaryDirectory() as tmp:
        control = Path(tmp)
        out = control / "callgrind.out"
        command = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
        command += [sys.executable, __file__, "--requests", str(args.requests), "--serve", str(control)]
        command += ["--baseline"] if args.baseline else []
        child = subprocess.Popen(command, env={**os.environ, "PYTHONHASHSEED": "0"}, stderr=subprocess.DEVNULL)
        try:
            wait_for(control / "ready", child)
            subprocess.run(["callgrind_control", "-i", "on", str(child.pid)], check=True, capture_output=True)
            (control / "go").touch()
            wait_for(control / "done", child)
            subprocess.run(["callgrind_control", "-d", str(child.pid)], check=True, capture_output=True)
            (control / "end").touch()
            child.wait(timeout=120)
        finally:
            if child.poll() is None:
                child.kill()
        dump = next(control.glob("callgrind.out.1"), None) or next(control.glob("callgrind.out*.1"))
        totals = re.search(rb"^(?:summary|totals): (\d+)", dump.read_bytes(), re.M)
        what = "baseline FastAPI app" if args.baseline else "hook call"
        print(f"{what} (order-select, {len(BODY)} byte body), in-process ASGI, event log sync interval")
        print(f"  {int(totals.group(1)) / args.requests:,.0f} instructions per request ({args.requests} requests)")


if __name__ == "__main__":
    main()
