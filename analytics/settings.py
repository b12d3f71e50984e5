"""Analytics configuration, from ``PGX_LOOP_*`` environment variables (shared names with the service)."""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from engine.rulebook.library import default_rules_dir


@dataclass
class Paths:
    """The files a cycle reads and writes: the database, the service's event log, the strengths it publishes,
    and the status of the last cycle (default: next to the strengths).

    ``event_sources``: the event-log directories (or glob patterns) of several replicas; when given,
    the cycle ingests those instead of ``events``."""

    database: Path
    events: Path
    snapshot: Path
    status_file: Path | None = None
    products_file: Path | None = None
    event_sources: tuple[str, ...] = ()
    omop: str | None = None  # the site's OMOP CDM elsewhere (analytics.sources); None: the tables in ``database``

    @property
    def event_dirs(self) -> list[Path]:
        """Every event-log directory to ingest: ``event_sources`` expanded (in order, each once), else ``events``."""
        if not self.event_sources:
            return [self.events]
        found: dict[Path, None] = {}
        for source in self.event_sources:
            if glob.has_magic(source):
                matches = sorted(Path(match) for match in glob.glob(source))
                found.update((match.resolve(), None) for match in matches if match.is_dir())
            else:  # kept even if missing: ingestion says so (an unmounted replica's directory)
                found[Path(source).resolve()] = None
        return list(found)

    @property
    def status(self) -> Path:
        return self.status_file or self.snapshot.with_name("analytics-status.json")

    @property
    def products(self) -> Path:
        """The product index built from the OMOP vocabulary (default: next to the strengths)."""
        return self.products_file or self.snapshot.with_name("products.json")

    @property
    def lock(self) -> Path:
        return self.database.with_name(self.database.name + ".cycle.lock")


class AnalyticsSettings(BaseSettings):
    """Everything the learning loop reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="PGX_LOOP_", extra="ignore")

    rules_dir: Path = Field(default_factory=default_rules_dir)
    var_dir: Path = Path("var")
    db: Path | None = Field(default=None, description="The analytics DuckDB file (default var/pgx-loop.duckdb)")
    event_log_dir: Path | None = None
    event_log_dirs: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Comma-separated event-log directories or glob patterns of several replicas, ingested by "
        "the cycle instead of event_log_dir (e.g. /srv/pgx/replica-*/events)",
    )
    strengths_file: Path | None = None
    key_file: Path | None = None
    reports_dir: Path | None = Field(
        default=None, description="Where outcome reports are written (default var/reports)"
    )
    report_min_cell: int = Field(
        default=10, ge=0, description="Counts from 1 to this are suppressed in reports (CMS cell-size rule: 10)"
    )
    analytics_status_file: Path | None = Field(
        default=None, description="How the last cycle went, for the service (default: next to the strengths file)"
    )
    products_file: Path | None = Field(
        default=None, description="RxNorm products built from the OMOP vocabulary (default: next to the strengths)"
    )
    omop: str | None = Field(
        default=None,
        description="The site's OMOP CDM, queried in place (postgresql://..., spark://local?lake=DIR, sc://...); "
        "unset: the tables in the analytics DuckDB file",
    )
    analytics_interval_hours: float = Field(
        default=24.0, ge=0, description="Hours between scheduled analytics cycles in `serve` (0: never)"
    )
    replay_store: str | None = Field(
        default=None,
        description="The replicas' shared PostgreSQL (as the service reads it): when set, a scheduled cycle runs "
        "only where the site's cycle lock is free (analytics/cycle_lease.py)",
    )

    @property
    def database(self) -> Path:
        return self.db or self.var_dir / "pgx-loop.duckdb"

    @field_validator("event_log_dirs", mode="before")
    @classmethod
    def _split_on_commas(cls, value: object) -> object:
        """The environment variable is one comma-separated string; a list (``--events``) is kept as given."""
        if isinstance(value, str):
            return tuple(source.strip() for source in value.split(",") if source.strip())
        return value

    @property
    def reports_path(self) -> Path:
        return self.reports_dir or self.var_dir / "reports"

    @property
    def key_path(self) -> Path:
        return self.key_file or self.var_dir / "pgx-loop.key"

    def paths(self, database: Path | None = None) -> Paths:
        return Paths(
            database or self.database,
            self.event_log_dir or self.var_dir / "events",
            self.strengths_file or self.var_dir / "strengths.json",
            self.analytics_status_file,
            self.products_file,
            self.event_log_dirs,
            self.omop or None,
        )
