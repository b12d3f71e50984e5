"""The jtis already seen, so that a captured token cannot be sent twice.

Kept in a small SQLite file under the service's state directory, shared by every worker process
on the host and surviving a restart: a token replayed to another worker, or after a crash, is
still refused. Entries are kept until the token's ``exp`` plus the leeway, after which the token
is refused as expired anyway.

Each issuer has its own quota of unexpired jtis, so that one issuer minting tokens as fast as it
can fills only its own share and never locks the others out. The quota is checked on every
insert, in the same write transaction as the insert, so it holds exactly across the host's
workers. Replicas on other hosts keep their own files (README, Authentication).

The verifier sees only the ``ReplayStore`` protocol; another store (a shared database for
replicas on several hosts) only has to offer ``first_use`` and ``close``.
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


class ReplayStore(Protocol):
    """Where the jtis seen are remembered until they expire."""

    def first_use(self, iss: str, jti: str, expires_at: float) -> bool:
        """Remember (iss, jti) until ``expires_at``: False if already seen; ReplayQuotaFull if ``iss`` is full."""
        ...

    def close(self) -> None: ...


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS jtis"
    " (iss TEXT NOT NULL, jti TEXT NOT NULL, expires REAL NOT NULL, PRIMARY KEY (iss, jti))",
    "CREATE INDEX IF NOT EXISTS jtis_expiry ON jtis (iss, expires)",
    "CREATE TABLE IF NOT EXISTS held (iss TEXT PRIMARY KEY, entries INTEGER NOT NULL)",
)
# Files written before per-issuer quotas kept "iss\njti" keys in one table: carried over, so an
# upgrade does not make the tokens seen just before it acceptable again.
_OLD_TABLE = (
    "INSERT OR IGNORE INTO jtis SELECT substr(key, 1, instr(key, char(10)) - 1), substr(key, instr(key, char(10)) + 1),"
    " expires FROM seen WHERE instr(key, char(10)) > 0"
)


class SqliteReplayStore:
    """The jtis seen, in one SQLite file (WAL) shared by the workers of a host; ``quota`` unexpired ones per issuer.

    ``held`` counts each issuer's rows, kept in step with ``jtis`` inside every write transaction,
    so the quota check costs one primary-key read however full the store is.
    """

    def __init__(self, path: Path, quota: int, clock: Callable[[], float] = time.time) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.quota = quota
        self._clock = clock
        # Autocommit outside explicit transactions; a worker waits briefly for another's write.
        self._db = sqlite3.connect(path, timeout=2.0, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # survives a process crash; that is what matters here
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

    def first_use(self, iss: str, jti: str, expires_at: float) -> bool:
        """Remember (iss, jti) until ``expires_at``: False if already seen; ReplayQuotaFull if ``iss`` is full."""
        with self._transaction():
            # The issuer's expired entries go first (each row once; the index finds them), so a
            # jti reused after its expiry is new again and the count below is of live entries.
            expired = self._db.execute("DELETE FROM jtis WHERE iss = ? AND expires < ?", (iss, self._clock())).rowcount
            self._add(iss, -expired)
            if self._db.execute("SELECT 1 FROM jtis WHERE iss = ? AND jti = ?", (iss, jti)).fetchone():
                return False
            held = self.held(iss)
            if held < self.quota:
                self._db.execute("INSERT INTO jtis VALUES (?, ?, ?)", (iss, jti, expires_at))
                self._add(iss, 1)
                return True
        raise ReplayQuotaFull(f"{held} unexpired jtis, the issuer's quota")

    def held(self, iss: str) -> int:
        """How many unexpired entries ``iss`` holds (as of its last insert)."""
        row = self._db.execute("SELECT entries FROM held WHERE iss = ?", (iss,)).fetchone()
        return row[0] if row else 0

    def _add(self, iss: str, change: int) -> None:
        if change:
            self._db.execute(
                "INSERT INTO held VALUES (?, ?) ON CONFLICT (iss) DO UPDATE SET entries = entries + excluded.entries",
                (iss, change),
            )

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """The file's write lock first (BEGIN IMMEDIATE), so that check and insert are one step for all workers."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()
