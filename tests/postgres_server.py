"""A real PostgreSQL server for tests, in a temporary directory, as a site would run one.

Debian's server binaries (`/usr/lib/postgresql/<N>/bin`) are started with `initdb` + `pg_ctl` on a free
loopback port with password (SCRAM) authentication. `initdb` refuses to run as root, so as root the
server runs as the `postgres` account the Debian package creates. When no server binaries exist the
caller gets `PostgresUnavailable` with the reason, and tests skip saying so.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PASSWORD = "pgx-loop-test"  # a throwaway cluster on loopback; the password proves the URL carries one


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries here (or no account to run them as)."""


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    password: str

    def url(self, database: str = "postgres", **query: str) -> str:
        """A `postgresql://` URL for `database`, with optional query parameters (e.g. schema)."""
        tail = "&".join(f"{key}={value}" for key, value in query.items())
        base = f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{database}"
        return base + (f"?{tail}" if tail else "")

    def create_database(self, name: str) -> str:
        """Create an empty database and return its URL."""
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL through the psql client; returns its output (unaligned, tuples only)."""
        done = subprocess.run(
            ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", self.url(database), "-c", sql],
            capture_output=True, text=True, timeout=60, check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr.strip()}")
        return done.stdout


def server_binaries() -> Path:
    """The newest installed PostgreSQL server's bin directory."""
    root = Path("/usr/lib/postgresql")
    versions = sorted((p for p in root.glob("*/bin") if (p / "initdb").exists()), key=lambda p: int(p.parent.name))
    if not versions:
        raise PostgresUnavailable("no PostgreSQL server in /usr/lib/postgresql (Debian package postgresql)")
    if shutil.which("psql") is None:
        raise PostgresUnavailable("no psql client on PATH")
    return versions[-1]


PORT_ATTEMPTS = 3


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """Start a fresh PostgreSQL cluster on 127.0.0.1 and stop it (and delete it) afterwards."""
    bin_dir = server_binaries()
    as_root = os.geteuid() == 0
    if as_root and shutil.which("runuser") is None:
        raise PostgresUnavailable("running as root without runuser: cannot start PostgreSQL as another user")
    workdir = Path(tempfile.mkdtemp(prefix="pgx-loop-pg-"))
    data, password_file = workdir / "data", workdir / "password"
    password_file.write_text(PASSWORD + "\n")
    if as_root:
        shutil.chown(workdir, "postgres", "postgres")
        shutil.chown(password_file, "postgres", "postgres")

    def run(*argv: str) -> None:
        command = (["runuser", "-u", "postgres", "--"] if as_root else []) + list(argv)
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise PostgresUnavailable(f"{Path(argv[0]).name} failed: {done.stderr.strip() or done.stdout.strip()}")

    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=scram-sha-256",
            f"--pwfile={password_file}", "-E", "UTF8", "--locale=C.UTF-8")
        # The probed port is free only until the probe closes: another process (a parallel test
        # worker's server, a bench) can take it before PostgreSQL binds, so try a few.
        for attempt in range(PORT_ATTEMPTS):
            port = _free_port()
            options = f"-c listen_addresses=127.0.0.1 -p {port} -k {workdir} -c fsync=off -c full_page_writes=off"
            try:
                run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(workdir / "log"), "-o", options, "-w", "start")
                break
            except PostgresUnavailable:
                if attempt == PORT_ATTEMPTS - 1:
                    raise
        try:
            yield PostgresServer("127.0.0.1", port, "postgres", PASSWORD)
        finally:
            run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
