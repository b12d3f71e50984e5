"""The jtis already seen, so that a captured token cannot be sent twice.

In memory, per process: with several workers or replicas each keeps its own, so a token replayed
to another process is not caught (README, Authentication). Entries are kept until the token's
``exp`` plus the leeway, after which the token is refused as expired anyway.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable


class ReplayCacheFull(Exception):
    """More unexpired jtis than the cache may hold: refuse rather than forget one."""


class ReplayCache:
    """Remembers each (issuer, jti) until it expires; at most ``max_entries`` at once."""

    def __init__(self, max_entries: int, clock: Callable[[], float] = time.time) -> None:
        self.max_entries = max_entries
        self._clock = clock
        self._expiry: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._expiry)

    def first_use(self, key: str, expires_at: float) -> bool:
        """Record ``key`` until ``expires_at`` (epoch seconds); False if it was already recorded."""
        self._forget_expired()
        if key in self._expiry:
            return False
        if len(self._expiry) >= self.max_entries:
            raise ReplayCacheFull(f"{len(self._expiry)} unexpired jtis")
        self._expiry[key] = expires_at
        heapq.heappush(self._heap, (expires_at, key))
        return True

    def _forget_expired(self) -> None:
        now = self._clock()
        while self._heap and self._heap[0][0] < now:
            _, key = heapq.heappop(self._heap)
            del self._expiry[key]
