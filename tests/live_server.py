"""`pgx-loop serve` as a real process on a free port, for tests that need TCP, signals or several workers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import REPOSITORY


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """One `pgx-loop serve` process (and its workers); its output goes to ``log_path``."""

    def __init__(self, var_dir: Path, *, workers: int = 1, env: dict[str, str] | None = None, args: tuple = ()):
        self.var_dir = var_dir
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = var_dir.parent / f"server-{self.port}.log"
        self.env = {
            **os.environ,
            "PGX_LOOP_VAR_DIR": str(var_dir),
            "PGX_LOOP_AUTH": "off",
            "PGX_LOOP_ANALYTICS_INTERVAL_HOURS": "0",
            **(env or {}),
        }
        self._command = [sys.executable, "-m", "pgx_loop.cli", "serve", "--port", str(self.port), *args]
        if workers != 1:
            self._command += ["--workers", str(workers)]
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> LiveServer:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self._command, cwd=REPOSITORY, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"server did not start:\n{self.output()}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (workers too), and wait for the main process to go."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, sig)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.kill(signal.SIGTERM)
        if self.process is not None and self.process.poll() is None:
            self.kill()
