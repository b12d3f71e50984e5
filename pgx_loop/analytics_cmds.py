"""The learning loop's commands: simulate, load-omop, load-genotypes, analyze, strength."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import click
import duckdb
import yaml

from analytics.data.store import connect, transaction
from analytics.settings import AnalyticsSettings
from analytics.study import strengths as published
from pgx_loop.options import library_or_exit

# The simulator, the study and the models (numpy, pandas, statsmodels) are imported by the
# commands that use them, so that `strength show` and `--help` answer at once.

db_option = click.option(
    "--db", "db", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="The analytics DuckDB file (default: PGX_LOOP_DB, else var/pgx-loop.duckdb).",
)  # fmt: skip


events_option = click.option(
    "--events", "events", multiple=True, metavar="DIR_OR_GLOB",
    help="An event-log directory or glob of one or more replicas (repeatable; default: PGX_LOOP_EVENT_LOG_DIRS, "
    "else PGX_LOOP_EVENT_LOG_DIR, else var/events).",
)  # fmt: skip


def _settings(db: Path | None, events: tuple[str, ...] = ()) -> AnalyticsSettings:
    settings = AnalyticsSettings()
    if events:
        settings = settings.model_copy(update={"event_log_dirs": events})  # as given: a path may hold a comma
    return settings.model_copy(update={"db": db}) if db else settings


def _log_to_stderr() -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")


@click.command(name="simulate")
@click.option("--persons", type=click.IntRange(min=1), required=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--truth", "truth_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--export-postgres", metavar="URL", default=None,
              help="Also copy the OMOP tables into PostgreSQL: postgresql://USER[:PASS]@HOST:PORT/DB?schema=SCHEMA "
                   "(tables replaced; &vocabulary=VOCAB puts the vocabulary tables in schema VOCAB).")  # fmt: skip
@click.option("--export-lake", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also write the OMOP tables as a Parquet lake, DIR/<table>.parquet (for spark://local?lake=DIR).")
@db_option
def simulate_command(
    persons: int, seed: int, truth_file: Path | None, export_postgres: str | None, export_lake: Path | None,
    db: Path | None,
) -> None:  # fmt: skip
    """Write a synthetic OMOP cohort with known true effects into the database (and, if asked, elsewhere)."""
    from analytics.simulation.simulate import Truth, simulate
    from engine.runtime.identifiers import Identifiers, load_or_create_key

    _log_to_stderr()
    settings = _settings(db)
    library = library_or_exit(settings.rules_dir)
    try:
        truth = Truth.from_file(truth_file) if truth_file else Truth()
    except (ValueError, yaml.YAMLError) as exc:
        raise click.BadParameter(str(exc), param_hint="--truth") from None
    if problems := truth.problems(library):
        raise click.BadParameter("; ".join(problems), param_hint="--truth")
    identifiers = Identifiers(load_or_create_key(settings.key_path))
    con = connect(settings.database)
    try:
        counts = simulate(con, library, persons=persons, seed=seed, truth=truth, identifiers=identifiers)
        exported = _export(con, export_postgres, export_lake)
    finally:
        con.close()
    click.echo(json.dumps({"database": str(settings.database), "rows": counts, **exported}, indent=2))


def _export(con: duckdb.DuckDBPyConnection, postgres: str | None, lake: Path | None) -> dict:
    """Copies of the simulated OMOP tables for the in-place study (analytics.sources.export)."""
    from analytics.sources import SourceError
    from analytics.sources.export import export_lake, export_postgres

    exported: dict = {}
    try:
        if postgres:
            export_postgres(con, postgres)
            exported["postgres"] = "exported"
        if lake:
            export_lake(con, lake)
            exported["lake"] = str(lake)
    except SourceError as exc:
        raise click.ClickException(str(exc)) from None
    return exported


@click.command(name="load-omop")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@db_option
def load_omop_command(source: Path, db: Path | None) -> None:
    """Import an OMOP CDM extract: a DuckDB file, or a folder of CSV/Parquet files named after the tables."""
    from analytics.data.omop import OmopError, load_omop

    _log_to_stderr()
    settings = _settings(db)
    library = library_or_exit(settings.rules_dir)
    con = connect(settings.database)
    try:
        report = load_omop(con, source, set(library.genes))
    except OmopError as exc:
        raise click.ClickException(str(exc)) from None
    except duckdb.Error as exc:  # a file DuckDB cannot read, a value of the wrong type: nothing was changed
        raise click.ClickException(f"{source}: {str(exc).splitlines()[0]}") from None
    finally:
        con.close()
    summary = {"tables": report.tables, "skipped": report.skipped, "left_out": report.left_out,
               "genotype_results": report.genotype_results}  # fmt: skip
    click.echo(json.dumps(summary, indent=2))


@click.command(name="load-genotypes")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@db_option
def load_genotypes_command(file: Path, db: Path | None) -> None:
    """Import a lab's genotype CSV: person_id,gene,diplotype[,result_date]."""
    from analytics.data.genotypes import GenotypeFileError, load_genotype_file

    rows = _load_file(db, file, load_genotype_file, GenotypeFileError)
    click.echo(json.dumps({"file": str(file), "results": rows}))


@click.command(name="load-opt-outs")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@db_option
def load_opt_outs_command(file: Path, db: Path | None) -> None:
    """Replace the research opt-out list with a CSV: person_id[,since]. Never affects alerts."""
    from analytics.data.opt_outs import OptOutFileError, load_opt_outs

    persons = _load_file(db, file, load_opt_outs, OptOutFileError)
    click.echo(json.dumps({"file": str(file), "opted_out": persons}))


def _load_file(
    db: Path | None, file: Path, load: Callable[[duckdb.DuckDBPyConnection, Path], int], refused: type[Exception]
) -> int:
    """``load(con, file)`` in one transaction of the store; ``refused`` (the file's fault) is a one-line error."""
    con = connect(_settings(db).database)
    try:
        with transaction(con):
            return load(con, file)
    except refused as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        con.close()


@click.command(name="analyze")
@db_option
@click.option("--omop", metavar="URL", default=None,
              help="Study the site's OMOP CDM in place: postgresql://USER[:PASS]@HOST:PORT/DB?schema=SCHEMA "
                   "(&vocabulary=VOCAB: the vocabulary tables in schema VOCAB), "
                   "spark://local?lake=DIR, sc://HOST:PORT?lake=DIR or sc://HOST:PORT?database=NAME "
                   "(default: PGX_LOOP_OMOP, else the tables in the DuckDB file).")  # fmt: skip
@events_option
def analyze_command(db: Path | None, omop: str | None, events: tuple[str, ...]) -> None:
    """Run one analytics cycle; prints its result as one JSON object (logs go to stderr)."""
    from analytics.cycle import BadData, CycleBusy, NoData, run_cycle
    from analytics.sources import SourceError

    _log_to_stderr()
    settings = _settings(db, events)
    if omop:
        settings = settings.model_copy(update={"omop": omop})
    library = library_or_exit(settings.rules_dir)
    try:
        result = run_cycle(library, settings.paths())
    except (BadData, CycleBusy, NoData, SourceError) as exc:
        raise click.ClickException(str(exc)) from None
    except duckdb.Error as exc:  # the cycle rolled back and recorded the failure in analysis_run
        raise click.ClickException(f"{settings.database}: the cycle failed: {str(exc).splitlines()[0]}") from None
    from analytics.report.render import report_after_cycle

    report_after_cycle(settings, library)  # logs where it went, or why it failed; the cycle stands either way
    click.echo(json.dumps(result.as_json(), indent=2))


@click.command(name="report")
@db_option
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Reports folder (default: PGX_LOOP_REPORTS_DIR, else var/reports).",
)
@click.option(
    "--min-cell",
    type=click.IntRange(min=0),
    default=None,
    help="Suppress counts from 1 to this (default: PGX_LOOP_REPORT_MIN_CELL, else 10).",
)
@events_option
def report_command(db: Path | None, out_dir: Path | None, min_cell: int | None, events: tuple[str, ...]) -> None:
    """Write an outcome report now (HTML and CSVs) and update the reports index; prints its folder."""
    from analytics.report.data import NoReportData
    from analytics.report.render import site_identifiers, write_report

    settings = _settings(db, events)
    library = library_or_exit(settings.rules_dir)
    if not settings.database.is_file():
        raise click.ClickException(f"{settings.database}: no such database (pgx-loop simulate or load-omop first)")
    try:
        folder = write_report(
            settings.database, library, out_dir or settings.reports_path,
            min_cell=settings.report_min_cell if min_cell is None else min_cell,
            identifiers=site_identifiers(settings.key_path), events_dir=settings.paths().event_dirs,
        )  # fmt: skip
    except NoReportData as exc:
        raise click.ClickException(f"{settings.database}: {exc}") from None
    except duckdb.Error as exc:
        raise click.ClickException(f"{settings.database}: {str(exc).splitlines()[0]}") from None
    click.echo(str(folder / "report.html"))


@click.group(name="strength")
def strength() -> None:
    """Show, approve and roll back the tiers the learning loop publishes."""


@strength.command(name="show")
@db_option
def show(db: Path | None) -> None:
    """The published strengths and the proposals waiting for approval."""
    con = connect(_settings(db).database)
    try:
        snapshot = published.latest(con)
        pending = con.execute(
            "SELECT proposal_id, rule, phenotype, tier_before, tier_after, reason, created_at FROM strength_proposal "
            "WHERE status = 'pending' ORDER BY proposal_id"
        ).fetchall()
    finally:
        con.close()
    click.echo(f"snapshot version {snapshot.version} ({snapshot.created or 'never published'})")
    for s in snapshot.strengths:
        click.echo(f"  {s.rule}  {s.phenotype}: {s.tier}  ({s.evidence})")
    click.echo(f"pending proposals: {len(pending)}")
    for proposal_id, rule, phenotype, before, after, reason, created in pending:
        click.echo(f"  #{proposal_id} {rule} {phenotype}: {before} -> {after}  ({reason}; {created:%Y-%m-%d})")


@strength.command(name="history")
@db_option
def history(db: Path | None) -> None:
    """Every tier decision, newest first (the append-only audit)."""
    con = connect(_settings(db).database)
    try:
        rows = con.execute(
            "SELECT decided_at, run_id, rule, phenotype, tier_before, tier_after, action, reason, approved_by, "
            "snapshot_version FROM strength_audit ORDER BY audit_id DESC"
        ).fetchall()
    finally:
        con.close()
    for at, run_id, rule, phenotype, before, after, action, reason, by, version in rows:
        who = f" by {by}" if by else ""
        published_as = f" -> snapshot v{version}" if version else ""
        what = f"{rule} {phenotype}: {before or 'rule file'} -> {after or 'rule file'} [{action}{who}{published_as}]"
        click.echo(f"{at:%Y-%m-%d %H:%M} {run_id or '-':12} {what} {reason}")


@strength.command(name="approve")
@click.argument("proposal_id", type=int)
@click.option("--by", required=True, help="Who approves (recorded in the audit)")
@db_option
def approve(proposal_id: int, by: str, db: Path | None) -> None:
    """Apply a pending proposal."""
    settings = _settings(db)
    library = library_or_exit(settings.rules_dir)
    con = connect(settings.database)
    try:
        snapshot = published.approve(con, proposal_id, by, {rule.id: rule for rule in library.rules})
        published.write_file(con, settings.paths().snapshot)
    except published.StrengthError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        con.close()
    _report_after_change(settings, library)
    click.echo(f"approved #{proposal_id}; published snapshot version {snapshot.version}")


@strength.command(name="rollback")
@click.option("--to", "to_version", type=int, default=None, help="Snapshot version to restore (default: the previous)")
@click.option("--by", required=True, help="Who rolls back (recorded in the audit)")
@db_option
def rollback(to_version: int | None, by: str, db: Path | None) -> None:
    """Publish an earlier snapshot's tiers again."""
    settings = _settings(db)
    library = library_or_exit(settings.rules_dir)
    con = connect(settings.database)
    try:
        snapshot = published.rollback(con, to_version, by)
        published.write_file(con, settings.paths().snapshot)
    except published.StrengthError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        con.close()
    _report_after_change(settings, library)
    click.echo(f"rolled back; published snapshot version {snapshot.version}")


def _report_after_change(settings, library) -> None:
    """A new report, so that /reports/latest shows the tiers and proposals as they are now; the cycle's are kept."""
    from analytics.report.render import report_after_cycle

    report_after_cycle(settings, library)


COMMANDS = (simulate_command, load_omop_command, load_genotypes_command, load_opt_outs_command, analyze_command,
            report_command, strength)  # fmt: skip
