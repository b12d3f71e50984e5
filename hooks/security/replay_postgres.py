"""The jtis seen, in the site's PostgreSQL: one replay store for every replica behind the load balancer.

``PGX_LOOP_REPLAY_STORE=postgresql://USER:PASS@HOST:PORT/DB?schema=SCHEMA`` (schema default
``pgx_loop``). The store creates its two tables in that schema (and the schema if it is missing)
and touches nothing else. A token replayed to any replica sharing the database is refused.

Exactness under concurrency, in one statement per request (autocommit, READ COMMITTED):

- ``jti_held`` keeps one row per issuer with its count of entries. A new jti first takes its
  issuer's row lock (``INSERT .. ON CONFLICT DO UPDATE .. WHERE entries < quota``): the quota
  test is made on the latest committed count, after the lock, so concurrent inserts from any
  number of replicas take exactly the places left.
- The jti row is inserted by the same statement: if a replica inserted the same (iss, jti) at the
  same instant, the primary key refuses the second one and the whole statement (its count
  increment too) rolls back. Exactly one is accepted.
- Expired entries are deleted, and their issuer's count lowered, by one statement (at start and
  when an issuer reaches its quota); an expired jti presented again is renewed in place.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import errors, sql
from psycopg_pool import ConnectionPool, PoolTimeout

from engine.runtime.postgres_url import PostgresUrlError, parse_url, scrubbed
from hooks.security.replay import ReplayQuotaFull, ReplayStoreError, ReplayStoreUnavailable

log = logging.getLogger(__name__)
STARTUP_SECONDS = 1.0  # a replica that cannot reach its store says so at once, rather than serving 503s
REQUEST_SECONDS = 2.0  # a request waits at most this for a connection, and a statement runs at most this long

_TABLES = (
    "CREATE TABLE IF NOT EXISTS {schema}.jti_seen"
    " (iss text NOT NULL, jti text NOT NULL, expires double precision NOT NULL, PRIMARY KEY (iss, jti))",
    "CREATE TABLE IF NOT EXISTS {schema}.jti_held (iss text PRIMARY KEY, entries integer NOT NULL)",
)
# The issuer's row first (locked, quota tested on its latest count), then the jti; plus whether the
# jti was already there, as this statement's snapshot sees it.
_CLAIM = """
WITH slot AS (
    INSERT INTO {schema}.jti_held AS held (iss, entries) VALUES (%(iss)s, 1)
    ON CONFLICT (iss) DO UPDATE SET entries = held.entries + 1
    WHERE held.entries < %(quota)s
      AND NOT EXISTS (SELECT 1 FROM {schema}.jti_seen WHERE iss = %(iss)s AND jti = %(jti)s)
    RETURNING 1
), added AS (
    INSERT INTO {schema}.jti_seen (iss, jti, expires) SELECT %(iss)s, %(jti)s, %(expires)s FROM slot RETURNING 1
)
SELECT (SELECT count(*) FROM added), (SELECT expires FROM {schema}.jti_seen WHERE iss = %(iss)s AND jti = %(jti)s)
"""
# Another replica renewing the same expired jti waits for this row's lock, then finds it unexpired.
_RENEW = (
    "UPDATE {schema}.jti_seen SET expires = %(expires)s WHERE iss = %(iss)s AND jti = %(jti)s AND expires < %(now)s"
)
# Each deleted row lowers its issuer's count once, however many replicas clean at the same time.
_FORGET_EXPIRED = """
WITH gone AS (DELETE FROM {schema}.jti_seen WHERE expires < %(now)s {issuer} RETURNING iss),
     counted AS (SELECT iss, count(*) AS n FROM gone GROUP BY iss)
UPDATE {schema}.jti_held AS held SET entries = held.entries - counted.n FROM counted WHERE held.iss = counted.iss
"""


class _ConnectionLost(Exception):
    """The pooled connection was dead (the server closed it)."""


class PostgresReplayStore:
    """The jtis seen, shared by every replica using the same PostgreSQL database and schema.

    Construction checks the database within ``STARTUP_SECONDS`` (ReplayStoreError naming the
    server, never the password) and creates the tables; the connection pool itself opens on first
    use, in the process that serves (a supervisor that only checks the configuration holds none).
    """

    network = True  # each check is a round trip: the verifier runs it off the event loop

    def __init__(self, url: str, quota: int, clock: Callable[[], float] = time.time, pool_size: int = 4) -> None:
        try:
            self.target = parse_url(url)
        except PostgresUrlError as exc:
            raise ReplayStoreError(str(exc)) from None
        self.quota = quota
        self._clock = clock
        self._url = url
        schema = sql.Identifier(self.target.schema)
        # Rendered once: psycopg caches a plain string's parsing, never a composed query's (~80 µs a call).
        self._claim = sql.SQL(_CLAIM).format(schema=schema).as_string()
        self._renew = sql.SQL(_RENEW).format(schema=schema).as_string()
        self._forget_all = sql.SQL(_FORGET_EXPIRED).format(schema=schema, issuer=sql.SQL("")).as_string()
        self._forget_issuer = (
            sql.SQL(_FORGET_EXPIRED).format(schema=schema, issuer=sql.SQL("AND iss = %(iss)s")).as_string()
        )
        self._prepare_within(STARTUP_SECONDS)
        # Outside the bound above: many expired entries take a while to delete, which is no fault.
        with psycopg.connect(self.target.conninfo, autocommit=True) as conn:
            self._forget(conn, self._forget_all, {"now": self._clock()})
        self._pool_size = pool_size
        self._pool: ConnectionPool | None = None
        self._open_lock = threading.Lock()
        log.info("jti replay store: %s, %d unexpired jtis per issuer", self.target.shown, quota)

    def _prepare_within(self, seconds: float) -> None:
        """Connect and create the tables, or ReplayStoreError within ``seconds``."""
        # libpq's connect_timeout counts whole seconds (2 at least): a daemon thread bounds the wait
        # instead, and is no reason to wait at exit.
        outcome: list[BaseException | None] = []

        def prepare() -> None:
            try:
                self._prepare()
                outcome.append(None)
            except BaseException as exc:
                outcome.append(exc)

        checker = threading.Thread(target=prepare, name="jti-replay-start", daemon=True)
        checker.start()
        checker.join(seconds)
        if not outcome:
            raise ReplayStoreError(f"the jti replay store {self.target.shown} did not answer within {seconds:g} s")
        failure = outcome[0]
        if isinstance(failure, psycopg.Error):
            raise ReplayStoreError(f"the jti replay store {self.target.shown}: {scrubbed(failure, self._url)}")
        if failure is not None:
            raise failure

    def _prepare(self) -> None:
        with psycopg.connect(self.target.conninfo, autocommit=True, connect_timeout=2) as conn:
            schema = sql.Identifier(self.target.schema)
            with conn.transaction():
                # Replicas starting together: one creates, the others wait (CREATE .. IF NOT EXISTS races).
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"pgx-loop jti store {self.target.schema}"])
                exists = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [self.target.schema]).fetchone()
                if not exists:
                    conn.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
                for statement in _TABLES:
                    conn.execute(sql.SQL(statement).format(schema=schema))

    def first_use(self, iss: str, jti: str, expires_at: float) -> bool:
        """Remember (iss, jti) until ``expires_at``: False if already seen; ReplayQuotaFull if ``iss`` is full."""
        params = {"iss": iss, "jti": jti, "expires": expires_at, "quota": self.quota}
        try:
            try:
                first = self._first_use(params)
            except _ConnectionLost:  # closed by the server (a restart, a failover): once more, on a fresh one
                self._open().check()  # and drop the other idle connections that died with it
                first = self._first_use(params)
        except (psycopg.OperationalError, PoolTimeout, _ConnectionLost) as exc:
            raise ReplayStoreUnavailable(type(exc).__name__) from None
        if first is None:
            raise ReplayQuotaFull(f"{self.quota} unexpired jtis, the issuer's quota")
        return first

    def _first_use(self, params: dict[str, Any]) -> bool | None:
        with self._connection() as conn:
            try:
                first = self._claim_once(conn, params)
                if first is None:  # at the quota: forget the issuer's expired entries, and try once more
                    self._forget(conn, self._forget_issuer, {"iss": params["iss"], "now": self._clock()})
                    first = self._claim_once(conn, params)
            except psycopg.OperationalError:
                if conn.broken:  # the pool discards it when it comes back
                    raise _ConnectionLost from None
                raise
        return first

    def _claim_once(self, conn: psycopg.Connection[Any], params: dict[str, Any]) -> bool | None:
        """True: first use; False: seen (and unexpired); None: the issuer is at its quota."""
        try:
            added, seen_until = conn.execute(self._claim, params, prepare=True).fetchone()  # type: ignore[misc]
        except errors.UniqueViolation:
            return False  # another replica inserted the same jti at the same instant, and won
        if added:
            return True
        if seen_until is None:
            return None
        now = self._clock()
        if seen_until >= now:
            return False
        renewed = conn.execute(self._renew, {**params, "now": now}, prepare=True).rowcount
        return renewed == 1  # an expired entry: a new token, unless another replica renewed it first

    def _forget(self, conn: psycopg.Connection[Any], statement: str, params: dict[str, Any]) -> None:
        try:
            conn.execute(statement, params)
        except errors.DeadlockDetected:  # two replicas cleaning at once: the other one did it
            log.info("jti replay store: expired entries already being removed by another replica")

    def _connection(self) -> Any:
        pool = self._pool or self._open()
        return pool.connection()

    def _open(self) -> ConnectionPool:
        with self._open_lock:
            if self._pool is None:
                self._pool = ConnectionPool(
                    self.target.conninfo,
                    min_size=1,
                    max_size=self._pool_size,
                    timeout=REQUEST_SECONDS,
                    kwargs={"autocommit": True, "options": f"-c statement_timeout={int(REQUEST_SECONDS * 1000)}"},
                    open=True,
                    name="jti-replay",
                )
            return self._pool

    def held(self, iss: str) -> int:
        """How many entries ``iss`` holds (expired ones are removed when it reaches its quota)."""
        with self._connection() as conn:
            row = conn.execute(
                sql.SQL("SELECT entries FROM {}.jti_held WHERE iss = %s").format(sql.Identifier(self.target.schema)),
                [iss],
            ).fetchone()
        return row[0] if row else 0

    def close(self) -> None:
        """Close the pool's connections; a later call opens a new pool."""
        with self._open_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
