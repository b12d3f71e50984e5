"""engine.runtime.postgres_url: the one postgresql:// URL form, and messages that never carry the password."""

from __future__ import annotations

import pytest

from engine.runtime.postgres_url import PostgresUrlError, parse_url, scrubbed


def test_the_schema_is_ours_and_the_other_parameters_go_to_libpq():
    target = parse_url("postgresql://cds:s3cret@db.example.org:6543/site?schema=pgx&sslmode=require")
    assert target.schema == "pgx"
    assert target.conninfo == "postgresql://cds:s3cret@db.example.org:6543/site?sslmode=require"
    assert target.shown == "postgresql://cds@db.example.org:6543/site (schema pgx)"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("mysql://cds:s3cret@db/site", "must be a postgresql:// URL"),
        ("postgresql://cds:s3cret@db:port/site", "the port must be a number"),
        ("postgresql://cds:s3cret@db/site?schema=a;drop", "schema must be a plain name"),
    ],
)
def test_an_unusable_url_is_refused_naming_the_setting_and_not_the_password(url, problem):
    with pytest.raises(PostgresUrlError, match=problem) as refused:
        parse_url(url)
    assert "PGX_LOOP_REPLAY_STORE" in str(refused.value) and "s3cret" not in str(refused.value)


@pytest.mark.parametrize("written", ["s3cret", "p%40ss%2Fword"])
def test_a_driver_message_loses_the_password_however_the_url_spells_it(written):
    url = f"postgresql://cds:{written}@db/site"
    decoded = written.replace("%40", "@").replace("%2F", "/")
    for echoed in {written, decoded}:
        message = scrubbed(RuntimeError(f'password "{echoed}" refused\nDETAIL: more'), url)
        assert message == 'password "***" refused'
