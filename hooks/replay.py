"""The jtis already seen, so that a captured token cannot be sent twice.

Kept in a small SQLite file under the service's state directory, shared by every worker process
on the host and surviving a restart: a token replayed to another worker, or after a crash, is
still refused. Each check is one INSERT on the primary key (about 30 µs with WAL). Entries are
kept until the token's ``exp`` plus the leeway, after which the token is refused as expired anyway.
Replicas on other hosts keep their own files (README, Authentication).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

PURGE_EVERY = 1000  # inserts between deletions of expired entries


class ReplayCacheFull(Exception):
    """More unexpired jtis than the cache may hold: refuse rather than forget one."""


class ReplayCache:
    """Remembers each (issuer, jti) until it expires; at most ``max_entries`` at once."""

    def __init__(self, path: Path, max_entries: int, clock: Callable[[], float] = time.time) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.max_entries = max_entries
        self._clock = clock
        # Autocommit; a worker waits briefly for another's write rather than failing the request.
        self._db = sqlite3.connect(path, timeout=2.0, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # survives a process crash; that is what matters here
        self._db.execute("CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, expires REAL NOT NULL)")
        self._inserts = 0
        self._full = False
        self._purge()

    def __len__(self) -> int:
        return self._db.execute("SELECT count(*) FROM seen WHERE expires >= ?", (self._clock(),)).fetchone()[0]

    def first_use(self, key: str, expires_at: float) -> bool:
        """Record ``key`` until ``expires_at`` (epoch seconds); False if it was already recorded."""
        self._inserts += 1
        if self._inserts % PURGE_EVERY == 0:
            self._purge()
        if self._full:
            raise ReplayCacheFull(f"{self.max_entries} or more unexpired jtis")
        try:
            self._db.execute("INSERT INTO seen VALUES (?, ?)", (key, expires_at))
        except sqlite3.IntegrityError:
            expired = self._db.execute("SELECT expires < ? FROM seen WHERE key = ?", (self._clock(), key)).fetchone()
            if not expired or not expired[0]:
                return False
            self._db.execute("UPDATE seen SET expires = ? WHERE key = ?", (expires_at, key))
        return True

    def _purge(self) -> None:
        """Forget expired entries; refuse new tokens while the unexpired ones fill the cache."""
        self._db.execute("DELETE FROM seen WHERE expires < ?", (self._clock(),))
        self._full = len(self) >= self.max_entries

    def close(self) -> None:
        self._db.close()
