"""The jti store: per-issuer quotas, exact at the boundary, across processes sharing one SQLite file."""

from __future__ import annotations

import contextlib
import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from hooks.security.replay import ReplayQuotaFull, SqliteReplayStore
from tests.auth_app import BASE, EHR, FILED, SERVICE, assert_unauthorized, call
from tests.jwt_keys import claims


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_one_issuer_filling_its_quota_does_not_lock_out_another(tmp_path):
    store = SqliteReplayStore(tmp_path / "jti.sqlite3", quota=5, clock=Clock())
    for n in range(5):
        assert store.first_use("https://a", f"a-{n}", 2_000_000)
    with pytest.raises(ReplayQuotaFull):
        store.first_use("https://a", "a-5", 2_000_000)
    for n in range(5):
        assert store.first_use("https://b", f"b-{n}", 2_000_000)
    assert store.held("https://a") == store.held("https://b") == 5


def test_the_quota_is_exact_at_the_boundary_and_freed_by_expiry(tmp_path):
    clock = Clock()
    store = SqliteReplayStore(tmp_path / "jti.sqlite3", quota=3, clock=clock)
    assert store.first_use("https://a", "1", clock.now + 10)
    assert store.first_use("https://a", "2", clock.now + 20)
    assert store.first_use("https://a", "3", clock.now + 30)  # the third of three: accepted
    with pytest.raises(ReplayQuotaFull):
        store.first_use("https://a", "4", clock.now + 30)  # the fourth: refused, at once, not 1000 inserts later
    assert not store.first_use("https://a", "2", clock.now + 20)  # a replay is still a replay when full
    clock.now += 15  # "1" has expired: exactly one place free
    assert store.first_use("https://a", "4", clock.now + 30)
    with pytest.raises(ReplayQuotaFull):
        store.first_use("https://a", "5", clock.now + 30)


def test_an_expired_jti_may_be_used_again_but_an_unexpired_one_never(tmp_path):
    clock = Clock()
    store = SqliteReplayStore(tmp_path / "jti.sqlite3", quota=10, clock=clock)
    assert store.first_use("https://a", "j", clock.now + 10)
    assert not store.first_use("https://a", "j", clock.now + 10)
    assert store.first_use("https://b", "j", clock.now + 10)  # the same jti from another issuer is another token
    clock.now += 11
    assert store.first_use("https://a", "j", clock.now + 10)


def test_entries_and_counts_survive_a_restart(tmp_path):
    path = tmp_path / "jti.sqlite3"
    clock = Clock()
    store = SqliteReplayStore(path, quota=2, clock=clock)
    assert store.first_use("https://a", "1", clock.now + 10)
    assert store.first_use("https://a", "2", clock.now + 10)
    store.close()
    again = SqliteReplayStore(path, quota=2, clock=clock)
    assert not again.first_use("https://a", "1", clock.now + 10)
    with pytest.raises(ReplayQuotaFull):
        again.first_use("https://a", "3", clock.now + 10)


def test_a_file_of_the_earlier_single_table_layout_is_carried_over(tmp_path):
    path = tmp_path / "jti.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE seen (key TEXT PRIMARY KEY, expires REAL NOT NULL)")
        db.execute("INSERT INTO seen VALUES (?, ?)", ("https://a\nold-jti", 2_000_000))
    store = SqliteReplayStore(path, quota=5, clock=Clock())
    assert not store.first_use("https://a", "old-jti", 2_000_000)
    assert store.held("https://a") == 1


def _insert_many(path: Path, worker: int, tries: int, results) -> None:
    store = SqliteReplayStore(path, quota=50, clock=Clock())
    accepted = 0
    for n in range(tries):
        with contextlib.suppress(ReplayQuotaFull):
            accepted += store.first_use("https://a", f"{worker}-{n}", 2_000_000)
    results.put(accepted)


def test_the_quota_holds_exactly_across_processes_inserting_at_once(tmp_path):
    path = tmp_path / "jti.sqlite3"
    SqliteReplayStore(path, quota=50).close()
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [context.Process(target=_insert_many, args=(path, w, 40, results)) for w in range(4)]
    for worker in workers:
        worker.start()
    accepted = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    assert sum(accepted) == 50  # 160 tries, 50 places: never 51
    assert SqliteReplayStore(path, quota=50, clock=Clock()).held("https://a") == 50


def test_over_http_an_issuer_at_its_quota_gets_401_and_others_are_served(make_client, keys, caplog):
    auth_client = make_client(jti_per_issuer=3)
    for _ in range(3):
        assert call(auth_client, SERVICE, keys["ES384"].sign(claims(EHR, BASE + SERVICE))).status_code == 200
    with caplog.at_level("INFO", logger="hooks.security.auth_middleware"):
        assert_unauthorized(call(auth_client, SERVICE, keys["ES384"].sign(claims(EHR, BASE + SERVICE))))
    assert ": replay_quota_full (" in caplog.text
    for _ in range(3):  # another issuer (same key, different iss) still has all of its own quota
        assert call(auth_client, SERVICE, keys["ES384"].sign(claims(FILED, BASE + SERVICE))).status_code == 200


def test_a_closed_store_folds_its_log_into_the_file_and_opens_again_when_used(tmp_path):
    path = tmp_path / "jti.sqlite3"
    store = SqliteReplayStore(path, quota=5, clock=Clock())
    assert store.first_use("https://a", "a-1", 2_000_000)
    assert path.with_name(path.name + "-wal").exists()  # written ahead, not yet folded in
    store.close()
    assert not path.with_name(path.name + "-wal").exists()  # the last connection closed: all of it in the file
    assert not store.first_use("https://a", "a-1", 2_000_000)  # opened again: still a replay
    assert store.first_use("https://a", "a-2", 2_000_000) and store.held("https://a") == 2


def test_the_service_closes_its_replay_store_when_it_stops_and_a_restart_still_refuses_replays(
    make_client, keys, tmp_path
):
    client = make_client()  # its var directory: tmp_path / "var"
    token = keys["ES384"].sign(claims(EHR, BASE + SERVICE))
    assert call(client, SERVICE, token).status_code == 200
    assert (tmp_path / "var" / "jti.sqlite3-wal").exists()
    client.__exit__(None, None, None)  # the lifespan ends
    assert not (tmp_path / "var" / "jti.sqlite3-wal").exists()
    with client:  # the same app starts again
        assert_unauthorized(call(client, SERVICE, token))
