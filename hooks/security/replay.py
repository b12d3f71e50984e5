"""The jtis already seen, so that a captured token cannot be sent twice.

Kept in a small SQLite file under the service's state directory, shared by every worker process
on the host and surviving a restart: a token replayed to another worker, or after a crash, is
still refused. Entries are kept until the token's ``exp`` plus the leeway, after which the token
is refused as expired anyway.

Each issuer has its own quota of unexpired jtis, so that one issuer minting tokens as fast as it
can fills only its own share and never locks the others out. The quota is checked on every
insert, in the same statement as the insert, so it holds exactly across the host's workers.
Replicas on other hosts share one store in the site's PostgreSQL instead
(``PGX_LOOP_REPLAY_STORE``, hooks/security/replay_postgres.py; README, Running several replicas).

The verifier sees only the ``ReplayStore`` protocol: ``first_use``, ``close`` and ``network``.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol


class ReplayQuotaFull(Exception):
    """The issuer holds as many unexpired jtis as its quota allows: refuse rather than forget one."""


class ReplayStoreError(Exception):
    """The replay store is misconfigured or unreachable at start: the service refuses to start."""


class ReplayStoreUnavailable(Exception):
    """The replay store could not answer a request: refuse the call (503) rather than skip the check."""


class ReplayStore(Protocol):
    """Where the jtis seen are remembered until they expire."""

    network: bool  # True: each check is a round trip, run off the event loop

    def first_use(self, iss: str, jti: str, expires_at: float) -> bool:
        """Remember (iss, jti) until ``expires_at``: False if already seen; ReplayQuotaFull if ``iss`` is full."""
        ...

    def close(self) -> None: ...


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS jtis"
    " (iss TEXT NOT NULL, jti TEXT NOT NULL, expires REAL NOT NULL, PRIMARY KEY (iss, jti)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS jtis_expiry ON jtis (iss, expires)",
    "CREATE TABLE IF NOT EXISTS held (iss TEXT PRIMARY KEY, entries INTEGER NOT NULL)",
    # Each issuer's count follows its rows, inside the statement that adds or removes them.
    "CREATE TRIGGER IF NOT EXISTS jti_added AFTER INSERT ON jtis BEGIN"
    " INSERT INTO held VALUES (NEW.iss, 1) ON CONFLICT (iss) DO UPDATE SET entries = entries + 1; END",
    "CREATE TRIGGER IF NOT EXISTS jti_removed AFTER DELETE ON jtis BEGIN"
    " UPDATE held SET entries = entries - 1 WHERE iss = OLD.iss; END",
)
# Files written before per-issuer quotas kept "iss\njti" keys in one table: carried over, so an
# upgrade does not make the tokens seen just before it acceptable again.
_OLD_TABLE = (
    "INSERT OR IGNORE INTO jtis SELECT substr(key, 1, instr(key, char(10)) - 1), substr(key, instr(key, char(10)) + 1),"
    " expires FROM seen WHERE instr(key, char(10)) > 0"
)
# Inserted only while the issuer is under its quota: the check and the insert are one statement.
_INSERT_UNDER_QUOTA = "INSERT INTO jtis SELECT ?, ?, ? WHERE coalesce((SELECT entries FROM held WHERE iss = ?), 0) < ?"


class SqliteReplayStore:
    """The jtis seen, in one SQLite file (WAL) shared by the workers of a host; ``quota`` unexpired ones per issuer.

    ``held`` counts each issuer's rows (kept by triggers), so the quota check is one primary-key
    read however full the store is. Expired rows are removed when their issuer reaches its quota
    (and at start), so the common case is one statement.
    """

    network = False

    def __init__(self, path: Path, quota: int, clock: Callable[[], float] = time.time) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.quota = quota
        self._clock = clock
        self._path = path
        self._connection: sqlite3.Connection | None = None
        with self._transaction():
            for statement in _SCHEMA:
                self._db.execute(statement)
            if self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'seen'").fetchone():
                self._db.execute(_OLD_TABLE)
                self._db.execute("DROP TABLE seen")
            self._db.execute("DELETE FROM jtis WHERE expires < ?", (self._clock(),))
            # Recounted at start: cheap, and the count is right whatever wrote the file before.
            self._db.execute("DELETE FROM held")
            self._db.execute("INSERT INTO held SELECT iss, count(*) FROM jtis GROUP BY iss")

    @property
    def _db(self) -> sqlite3.Connection:
        """The connection, opened again after ``close`` (the service may start again in the same process)."""
        if self._connection is None:
            # Autocommit outside explicit transactions; a worker waits briefly for another's write.
            db = sqlite3.connect(self._path, timeout=2.0, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # survives a process crash; that is what matters here
            self._connection = db
        return self._connection

    def first_use(self, iss: str, jti: str, expires_at: float) -> bool:
        """Remember (iss, jti) until ``expires_at``: False if already seen; ReplayQuotaFull if ``iss`` is full."""
        try:
            # One statement: SQLite takes the write lock before it runs, so the quota check and the
            # insert are one step for all the host's workers.
            if self._insert(iss, jti, expires_at):
                return True
        except sqlite3.IntegrityError:  # seen before; a new token only if that entry has expired
            renewed = "UPDATE jtis SET expires = ? WHERE iss = ? AND jti = ? AND expires < ?"
            return self._db.execute(renewed, (expires_at, iss, jti, self._clock())).rowcount == 1
        with self._transaction():  # at the quota: forget the issuer's expired entries, and try once more
            self._db.execute("DELETE FROM jtis WHERE iss = ? AND expires < ?", (iss, self._clock()))
            if self._db.execute("SELECT 1 FROM jtis WHERE iss = ? AND jti = ?", (iss, jti)).fetchone():
                return False  # a replay is a replay, full or not
            if self._insert(iss, jti, expires_at):
                return True
        raise ReplayQuotaFull(f"{self.quota} unexpired jtis, the issuer's quota")

    def _insert(self, iss: str, jti: str, expires_at: float) -> bool:
        return self._db.execute(_INSERT_UNDER_QUOTA, (iss, jti, expires_at, iss, self.quota)).rowcount == 1

    def held(self, iss: str) -> int:
        """How many entries ``iss`` holds (expired ones are removed when it reaches its quota)."""
        row = self._db.execute("SELECT entries FROM held WHERE iss = ?", (iss,)).fetchone()
        return row[0] if row else 0

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """The write lock first (BEGIN IMMEDIATE): the statements inside are one step for all workers."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        """Close the connection (the last one to close folds the write-ahead log into the file); a later
        check opens it again."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None
