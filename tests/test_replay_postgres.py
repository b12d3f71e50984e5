"""The jti store in a real PostgreSQL server, shared by replicas: exactly once, exact quotas, under races."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid

import pytest

from hooks.security.replay import ReplayQuotaFull, ReplayStoreError
from hooks.security.replay_postgres import PostgresReplayStore
from tests.auth_app import BASE, EHR, SERVICE, call
from tests.jwt_keys import claims
from tests.live_server import free_port
from tests.test_replay import Clock


@pytest.fixture
def database(postgres) -> str:
    """A fresh database's URL, storing in schema pgx_replay."""
    name = f"replay_{uuid.uuid4().hex[:10]}"
    postgres.create_database(name)
    return postgres.url(name, schema="pgx_replay")


OPENED: list[PostgresReplayStore] = []


@pytest.fixture(autouse=True)
def _close_stores():
    yield
    while OPENED:
        OPENED.pop().close()


def store_on(url: str, quota: int, clock=time.time) -> PostgresReplayStore:
    """A store, closed after the test (its pool's threads and connections)."""
    OPENED.append(PostgresReplayStore(url, quota, clock=clock))
    return OPENED[-1]


def stores(url: str, count: int, quota: int, clock=time.time) -> list[PostgresReplayStore]:
    """``count`` stores on one database, as ``count`` replicas would each hold one."""
    return [store_on(url, quota, clock) for _ in range(count)]


def test_quota_exact_at_the_boundary_freed_by_expiry_and_per_issuer(database):
    clock = Clock(time.time())
    store = store_on(database, 3, clock)
    assert store.first_use("https://a", "1", clock.now + 10)
    assert store.first_use("https://a", "2", clock.now + 20)
    assert store.first_use("https://a", "3", clock.now + 30)
    with pytest.raises(ReplayQuotaFull):
        store.first_use("https://a", "4", clock.now + 30)
    assert not store.first_use("https://a", "2", clock.now + 20)  # a replay is still a replay when full
    assert store.first_use("https://b", "1", clock.now + 10)  # another issuer has its own quota
    clock.now += 15  # "1" has expired: exactly one place free
    assert store.first_use("https://a", "4", clock.now + 30)
    with pytest.raises(ReplayQuotaFull):
        store.first_use("https://a", "5", clock.now + 30)
    assert store.held("https://a") == 3


def test_seen_by_one_replica_refused_by_another_and_expired_jtis_renewed_once(database):
    clock = Clock(time.time())
    first, second = stores(database, 2, quota=10, clock=clock)
    assert first.first_use("https://a", "j", clock.now + 10)
    assert not second.first_use("https://a", "j", clock.now + 10)
    assert second.first_use("https://b", "j", clock.now + 10)  # the same jti from another issuer is another token
    clock.now += 11
    assert second.first_use("https://a", "j", clock.now + 10)  # expired: a new token, renewed in place
    assert not first.first_use("https://a", "j", clock.now + 10)
    assert first.held("https://a") == 1


def test_a_restart_keeps_entries_and_removes_expired_ones(database, postgres):
    clock = Clock(time.time())
    store = store_on(database, 2, clock)
    assert store.first_use("https://a", "old", clock.now + 5)
    assert store.first_use("https://a", "new", clock.now + 100)
    clock.now += 10
    again = store_on(database, 2, clock)  # start-up forgets "old"
    assert again.held("https://a") == 1
    assert not again.first_use("https://a", "new", clock.now + 100)
    name = database.rsplit("/", 1)[1].split("?")[0]
    assert postgres.psql("SELECT count(*) FROM pgx_replay.jti_seen", name).strip() == "1"


def _race(targets) -> list:
    """Run every target at the same instant (a barrier); their results."""
    barrier = threading.Barrier(len(targets))
    results: list = []
    lock = threading.Lock()

    def run(target):
        barrier.wait()
        outcome = target()
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=run, args=(target,)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_the_same_jti_racing_on_two_replicas_is_accepted_exactly_once(database):
    replicas = stores(database, 2, quota=10_000)
    expires = time.time() + 300
    jtis = iter(range(10**6))
    for round_ in range(40):
        jti = f"race-{next(jtis)}"
        # Four connections per replica, all presenting the same token at once.
        targets = [lambda store=store, jti=jti: store.first_use("https://a", jti, expires) for store in replicas * 4]
        results = _race(targets)
        assert sorted(results) == [False] * 7 + [True], f"round {round_}: {results}"
    assert replicas[0].held("https://a") == 40  # each accepted jti counted once, the refused ones not at all


def test_the_quota_holds_exactly_under_concurrent_inserts_from_several_replicas(database):
    replicas = stores(database, 3, quota=3)
    expires = time.time() + 300

    def attempt(store: PostgresReplayStore, iss: str, jti: str) -> str:
        try:
            return "accepted" if store.first_use(iss, jti, expires) else "replayed"
        except ReplayQuotaFull:
            return "full"

    for n in range(25):  # 25 issuers, each with 8 new jtis arriving at once on 3 replicas for 3 places
        iss = f"https://issuer-{n}"
        targets = [lambda w=w, iss=iss: attempt(replicas[w % 3], iss, f"jti-{w}") for w in range(8)]
        results = _race(targets)
        assert sorted(results) == ["accepted"] * 3 + ["full"] * 5, f"{iss}: {results}"
        assert replicas[n % 3].held(iss) == 3


def test_the_tables_go_in_the_named_schema_only(database, postgres):
    PostgresReplayStore(database, quota=5).close()
    name = database.rsplit("/", 1)[1].split("?")[0]
    tables = postgres.psql(
        "SELECT table_schema || '.' || table_name FROM information_schema.tables "
        "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
        name,
    ).split()
    assert tables == ["pgx_replay.jti_held", "pgx_replay.jti_seen"]


def test_an_unreachable_store_is_reported_within_a_second_without_the_password():
    url = f"postgresql://pgx:s3cret-pw@127.0.0.1:{free_port()}/replay"
    started = time.monotonic()
    with pytest.raises(ReplayStoreError) as refused:
        PostgresReplayStore(url, quota=5)
    assert time.monotonic() - started < 1.0
    assert "s3cret-pw" not in str(refused.value)
    assert "postgresql://pgx@127.0.0.1:" in str(refused.value)


def test_a_server_that_never_answers_is_reported_within_a_second():
    with contextlib.closing(__import__("socket").socket()) as silent:  # accepts connections, says nothing
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(ReplayStoreError, match="did not answer within 1 s"):
            PostgresReplayStore(f"postgresql://pgx:pw@127.0.0.1:{port}/replay", quota=5)
        assert time.monotonic() - started < 1.5  # the bound is 1 s; the rest is this loaded machine


def test_a_wrong_password_is_named_as_such_without_echoing_it(postgres):
    url = postgres.url("postgres").replace(postgres.password, "not-the-password")
    with pytest.raises(ReplayStoreError) as refused:
        PostgresReplayStore(url, quota=5)
    assert "password authentication failed" in str(refused.value)
    assert "not-the-password" not in str(refused.value)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("mysql://u:p@h/db", "must be a postgresql:// URL"),
        ("postgresql://u:p@h/db?schema=a;drop", "must be a plain name"),
        ("postgresql://u:p@h:notaport/db", "port must be a number"),
    ],
)
def test_misconfigured_urls_are_refused_with_a_reason(url, problem):
    with pytest.raises(ReplayStoreError, match=problem):
        PostgresReplayStore(url, quota=5)


def _database_name(url: str) -> str:
    return url.rsplit("/", 1)[1].split("?")[0]


def test_a_connection_the_server_closed_is_replaced_without_failing_the_call(database, postgres):
    store = store_on(database, 100)
    assert store.first_use("https://a", "before", time.time() + 60)
    name = _database_name(database)
    postgres.psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")  # a restart
    assert store.first_use("https://a", "after", time.time() + 60)
    assert not store.first_use("https://a", "before", time.time() + 60)


def test_over_http_a_store_that_stops_answering_gives_503_and_service_resumes(make_client, keys, database, postgres):
    client = make_client(replay_store=database)
    token = lambda: keys["RS384"].sign(claims(EHR, BASE + SERVICE))  # noqa: E731
    assert call(client, SERVICE, token()).status_code == 200
    name = _database_name(database)
    postgres.psql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    postgres.psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
    try:
        refused = call(client, SERVICE, token())
        assert refused.status_code == 503  # whether the token was used before cannot be told: not served
        assert refused.headers["retry-after"] == "1"
    finally:
        postgres.psql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    deadline = time.monotonic() + 30
    while (status := call(client, SERVICE, token()).status_code) != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert status == 200
