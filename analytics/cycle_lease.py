"""One analytics cycle at a time across N replicas: a lock in the site's PostgreSQL.

Every replica whose scheduler is on tries PostgreSQL's advisory lock before a cycle (a session
lock, held for the whole cycle on its own connection, released if the process dies). The one
that gets it runs the cycle; the others skip theirs. A replica that gets the lock just after
another finished sees that cycle in the shared status file and skips too. Off unless
``PGX_LOOP_REPLAY_STORE`` names the shared PostgreSQL; the cycle's own file lock (next to the
DuckDB file) still keeps two cycles of one host apart.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from engine.runtime.postgres_url import parse_url, scrubbed


class LeaseUnavailable(Exception):
    """The shared database could not be asked; the cycle is skipped rather than run unguarded."""


@contextmanager
def cycle_lease(url: str) -> Iterator[bool]:
    """True while this process holds the site's cycle lock; False if another replica holds it."""
    target = parse_url(url)
    try:
        conn = psycopg.connect(target.conninfo, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        raise LeaseUnavailable(f"{target.shown}: {scrubbed(exc, url)}") from None
    with conn:
        key = f"pgx-loop analytics cycle {target.schema}"  # one lock per deployment (schema)
        held = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", [key]).fetchone()[0]  # type: ignore[index]
        try:
            yield bool(held)
        finally:
            if held:
                conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", [key])
