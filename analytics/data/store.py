"""The analytics database: one DuckDB file holding the site's OMOP data and the loop's own tables.

OMOP CDM tables keep their standard names and columns (only those the loop reads are required,
see analytics.data.omop). The loop's own tables:

- ``pgx_result``: one row per genotype result (person, gene, diplotype, date, where it came from);
- ``cds_event``: the service's event log (cards shown, feedback), ingested exactly once;
- ``event_ingest``: how far each event-log segment has been read;
- ``research_opt_out``: persons excluded from estimation (never from alerts);
- ``analysis_run``: one row per analytics cycle, with its data snapshot;
- ``estimate``: every estimate of every cycle;
- ``cohort_count``, ``cohort_opt_out``, ``coverage_count``: what the report shows of the OMOP data, as
  aggregates per cycle (analytics.study.report_counts), wherever the OMOP tables are; ``quality_count``,
  the result checks, for cycles that queried OMOP where it lives (the store's ``pgx_result`` is not theirs);
- ``strength_audit``: every tier decision, applied or not, append-only;
- ``strength_proposal``: changes waiting for a pharmacist's approval;
- ``strength_snapshot``: every published set of strengths, by version.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

LOOP_TABLES = """
CREATE TABLE IF NOT EXISTS pgx_result (
    person_id BIGINT NOT NULL,
    gene VARCHAR NOT NULL,
    diplotype VARCHAR NOT NULL,
    result_date DATE,
    source VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS cds_event (
    event_id VARCHAR PRIMARY KEY,
    type VARCHAR NOT NULL,
    time TIMESTAMPTZ NOT NULL,
    service VARCHAR,
    patient VARCHAR,
    card VARCHAR,
    rule VARCHAR,
    rule_version VARCHAR,
    gene VARCHAR,
    phenotype VARCHAR,
    drug VARCHAR,
    tier VARCHAR,
    tier_source VARCHAR,
    shadow BOOLEAN,
    outcome VARCHAR,
    override_reason VARCHAR,
    accepted_suggestions INTEGER,
    source_file VARCHAR,
    ingested_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS event_ingest (
    segment VARCHAR PRIMARY KEY,
    offset_bytes BIGINT NOT NULL,
    events BIGINT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS research_opt_out (person_id BIGINT PRIMARY KEY, since DATE);
CREATE TABLE IF NOT EXISTS analysis_run (
    run_id VARCHAR PRIMARY KEY,
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    status VARCHAR NOT NULL,
    library_version VARCHAR,
    data_snapshot JSON,
    events_ingested BIGINT,
    opted_out_excluded BIGINT,
    message VARCHAR
);
CREATE TABLE IF NOT EXISTS estimate (
    run_id VARCHAR NOT NULL,
    rule VARCHAR NOT NULL,
    phenotype VARCHAR NOT NULL,
    contrast VARCHAR NOT NULL,
    n BIGINT,
    events BIGINT,
    reference_n BIGINT,
    reference_events BIGINT,
    person_years DOUBLE,
    hr DOUBLE,
    ci_low DOUBLE,
    ci_high DOUBLE,
    log_hr DOUBLE,
    se DOUBLE,
    prior_hr DOUBLE,
    prior_se DOUBLE,
    posterior_hr DOUBLE,
    posterior_low DOUBLE,
    posterior_high DOUBLE,
    p_harm DOUBLE,
    p_safe DOUBLE,
    cells JSON,
    PRIMARY KEY (run_id, rule, phenotype, contrast)
);
CREATE TABLE IF NOT EXISTS cohort_count (
    run_id VARCHAR NOT NULL,
    rule VARCHAR NOT NULL,
    grp VARCHAR NOT NULL,
    target INTEGER NOT NULL,
    population VARCHAR NOT NULL,
    persons BIGINT NOT NULL,
    events BIGINT NOT NULL,
    person_days BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS cohort_opt_out (run_id VARCHAR NOT NULL, rule VARCHAR NOT NULL, persons BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS coverage_count (
    run_id VARCHAR NOT NULL,
    population VARCHAR NOT NULL,
    determinate BIGINT NOT NULL,
    indeterminate BIGINT NOT NULL,
    untested BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS quality_count (
    run_id VARCHAR NOT NULL,
    unknown_alleles BIGINT NOT NULL,
    unreadable BIGINT NOT NULL,
    disagreeing BIGINT NOT NULL,
    disagreeing_phenotype BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS strength_audit (
    audit_id BIGINT PRIMARY KEY,
    run_id VARCHAR,
    decided_at TIMESTAMPTZ NOT NULL,
    rule VARCHAR NOT NULL,
    phenotype VARCHAR NOT NULL,
    tier_before VARCHAR,
    tier_after VARCHAR,
    action VARCHAR NOT NULL,
    reason VARCHAR NOT NULL,
    approved_by VARCHAR,
    data_snapshot JSON,
    evidence JSON,
    snapshot_version INTEGER
);
CREATE TABLE IF NOT EXISTS strength_proposal (
    proposal_id BIGINT PRIMARY KEY,
    run_id VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    rule VARCHAR NOT NULL,
    phenotype VARCHAR NOT NULL,
    tier_before VARCHAR NOT NULL,
    tier_after VARCHAR NOT NULL,
    reason VARCHAR NOT NULL,
    evidence JSON,
    status VARCHAR NOT NULL,
    decided_at TIMESTAMPTZ,
    decided_by VARCHAR
);
CREATE TABLE IF NOT EXISTS strength_snapshot (
    version INTEGER PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
    run_id VARCHAR,
    body JSON NOT NULL
);
CREATE SEQUENCE IF NOT EXISTS audit_ids;
CREATE SEQUENCE IF NOT EXISTS proposal_ids;
"""


LOCK_WAIT_SECONDS = 30.0


def connect(path: Path, *, read_only: bool = False, lock_wait: float = LOCK_WAIT_SECONDS) -> duckdb.DuckDBPyConnection:
    """Open (creating if needed) the analytics database and make sure the loop's tables exist.

    DuckDB lets one process write a file, or several read it. When another process holds it
    (an analyst's read-only look, a report being built), wait up to ``lock_wait`` seconds for it
    rather than fail the nightly cycle on a moment's overlap.
    """
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + lock_wait
    pause = 0.05
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as error:
            if "lock" not in str(error).lower() or time.monotonic() + pause > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 1.0)
    if not read_only:
        con.execute(LOOP_TABLES)
    return con


def first_row(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> tuple | None:
    """The first row of a query, or None.

    Reads the whole result: DuckDB keeps a partly read result open, and an open result blocks
    ``register`` on the same connection.
    """
    rows = con.execute(sql, params or []).fetchall()
    return rows[0] if rows else None


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None):
    """The single value a query returns."""
    row = first_row(con, sql, params)
    return row[0] if row else None


def table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    sql = "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main' AND lower(table_name) = ?"
    return bool(scalar(con, sql, [name.lower()]))


def count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return int(scalar(con, f'SELECT count(*) FROM "{table}"')) if table_exists(con, table) else 0


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """All the statements inside happen, or none do."""
    con.execute("BEGIN")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
