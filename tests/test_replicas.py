"""Two real `pgx-loop serve` replicas sharing the site's PostgreSQL replay store and one pseudonym key.

A token replayed to the other replica is refused; a card shown by one replica and the clinician's
feedback received by the other join once the cycle ingests both replicas' event logs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from analytics.data.events import ingest
from analytics.data.store import connect
from analytics.settings import AnalyticsSettings
from tests.auth_app import BASE, EHR, FEEDBACK, SERVICE
from tests.fhirdata import example
from tests.jwt_keys import SigningKey, claims, jwks, new_key
from tests.live_server import LiveServer, free_port

ALGS = ("ES384", "RS384")


@dataclass
class Replicas:
    servers: list[LiveServer]
    keys: dict[str, SigningKey]
    root: Path

    def token(self, alg: str, path: str = SERVICE) -> str:
        return self.keys[alg].sign(claims(EHR, BASE + path))

    def post(self, replica: int, path: str, token: str, body: dict) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.post(self.servers[replica].base + path, json=body, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def replicas(postgres, tmp_path_factory) -> Iterator[Replicas]:
    root = tmp_path_factory.mktemp("replicas")
    name = f"replicas_{uuid.uuid4().hex[:10]}"
    postgres.create_database(name)
    keys = {alg: new_key(alg) for alg in ALGS}
    issuers = root / "issuers.yaml"
    issuers.write_text(yaml.safe_dump([{"iss": EHR, "jwks": jwks(*keys.values())}]))
    shared = {
        "PGX_LOOP_AUTH": "jwt",
        "PGX_LOOP_TRUSTED_ISSUERS": str(issuers),
        "PGX_LOOP_PUBLIC_BASE_URL": BASE,
        "PGX_LOOP_REPLAY_STORE": postgres.url(name, schema="pgx_loop"),
        "PGX_LOOP_KEY_FILE": str(root / "site.key"),  # one pseudonym key for every replica
        "PGX_LOOP_STRENGTHS_FILE": str(root / "published" / "strengths.json"),
    }
    for n in range(2):
        (root / f"replica-{n}").mkdir()
    servers = [LiveServer(root / f"replica-{n}" / "var", env=shared) for n in range(2)]
    try:
        for server in servers:
            server.start()
        yield Replicas(servers, keys, root)
    finally:
        for server in servers:
            server.stop()
    for server in servers:
        assert postgres.url(name).split("@")[0].split(":")[-1] not in server.output()  # the password is never logged


@pytest.mark.parametrize("alg", ALGS)
def test_a_token_sent_to_both_replicas_at_once_is_accepted_exactly_once(replicas, alg):
    body = example("order-select-poor-metabolizer.json")
    for _ in range(5):
        token = replicas.token(alg)
        barrier = threading.Barrier(2)

        def send(replica: int, token: str, barrier: threading.Barrier) -> int:
            barrier.wait()  # both replicas get the token at the same instant
            return replicas.post(replica, SERVICE, token, body).status_code

        with ThreadPoolExecutor(2) as pool:
            statuses = list(pool.map(send, (0, 1), (token, token), (barrier, barrier)))
        assert sorted(statuses) == [200, 401]
        assert [replicas.post(replica, SERVICE, token, body).status_code for replica in (0, 1)] == [401, 401]


def test_a_token_used_at_one_replica_is_refused_at_the_other_and_fresh_ones_are_served_by_both(replicas):
    body = example("order-select-poor-metabolizer.json")
    token = replicas.token("ES384")
    assert replicas.post(0, SERVICE, token, body).status_code == 200
    assert replicas.post(1, SERVICE, token, body).status_code == 401
    assert replicas.post(1, SERVICE, replicas.token("RS384"), body).status_code == 200


def test_a_card_from_one_replica_and_feedback_at_the_other_join_after_ingesting_both_logs(replicas, tmp_path):
    body = example("order-select-poor-metabolizer.json")
    shown = replicas.post(0, SERVICE, replicas.token("ES384"), body)
    assert shown.status_code == 200
    card = shown.json()["cards"][0]["uuid"]
    feedback = example("feedback-overridden.json")
    feedback["feedback"][0]["card"] = card
    sent = replicas.post(1, FEEDBACK, replicas.token("RS384", FEEDBACK), feedback)
    assert sent.status_code == 200
    # The same feedback retried at the first replica: one event, since both derive its id under one key.
    assert replicas.post(0, FEEDBACK, replicas.token("ES384", FEEDBACK), feedback).status_code == 200

    pattern = str(replicas.root / "replica-*" / "var" / "events")
    settings = AnalyticsSettings(event_log_dirs=pattern, var_dir=tmp_path)
    assert len(settings.paths().event_dirs) == 2
    con = connect(tmp_path / "loop.duckdb")
    try:
        assert ingest(con, settings.paths().event_dirs) > 0
        feedback_rows = con.execute(
            "SELECT outcome, override_reason, source_file FROM cds_event WHERE type = 'feedback' AND card = ?", [card]
        ).fetchall()
        assert len(feedback_rows) == 1  # received twice, at two replicas: one event
        assert feedback_rows[0][:2] == ("overridden", "stable-on-drug")
        assert "/replica-1/" in feedback_rows[0][2]  # first received by the second replica
        card_sources = con.execute(
            "SELECT DISTINCT source_file FROM cds_event WHERE type = 'card' AND card = ?", [card]
        ).fetchall()
        assert any("/replica-0/" in source for (source,) in card_sources)  # shown by the first one
        assert ingest(con, settings.paths().event_dirs) == 0  # read again: nothing new
    finally:
        con.close()


def test_serve_refuses_to_start_naming_an_unreachable_store_but_not_its_password(tmp_path):
    issuers = tmp_path / "issuers.yaml"
    issuers.write_text(yaml.safe_dump([{"iss": EHR, "jwks": jwks(new_key("ES384"))}]))
    env = {
        **os.environ,
        "PGX_LOOP_VAR_DIR": str(tmp_path / "var"),
        "PGX_LOOP_AUTH": "jwt",
        "PGX_LOOP_TRUSTED_ISSUERS": str(issuers),
        "PGX_LOOP_PUBLIC_BASE_URL": BASE,
        "PGX_LOOP_REPLAY_STORE": f"postgresql://cds:hunter2-secret@127.0.0.1:{free_port()}/site?schema=pgx",
    }
    done = subprocess.run(
        [sys.executable, "-m", "pgx_loop.cli", "serve", "--port", str(free_port())],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "the jti replay store postgresql://cds@127.0.0.1:" in done.stderr
    assert "(schema pgx)" in done.stderr and "Connection refused" in done.stderr
    assert "hunter2-secret" not in done.stdout + done.stderr
