"""Service configuration, from ``PGX_LOOP_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from engine.rulebook.library import default_rules_dir


class Settings(BaseSettings):
    """Everything the service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="PGX_LOOP_", env_file=".env", extra="ignore")

    rules_dir: Path = Field(default_factory=default_rules_dir, description="Gene and rule files")
    var_dir: Path = Field(default=Path("var"), description="Where the service keeps its state")
    event_log_dir: Path | None = Field(default=None, description="Card and feedback event log (default var/events)")
    key_file: Path | None = Field(
        default=None, description="Secret for pseudonymising patient ids in the event log (default var/pgx-loop.key)"
    )
    rules_poll_seconds: float = Field(
        default=2.0, ge=0, description="How often to look for edited rule files and new strengths (0: never reload)"
    )
    event_sync: Literal["always", "interval"] = Field(
        default="always",
        description="always: each event fdatasync'ed before its response; interval: fdatasync about every second",
    )
    strengths_file: Path | None = Field(
        default=None, description="Rule strengths published by the learning loop (default var/strengths.json)"
    )
    products_file: Path | None = Field(
        default=None, description="RxNorm products built from the OMOP vocabulary (default: next to the strengths)"
    )
    reports_dir: Path | None = Field(
        default=None, description="Outcome reports served at /reports/ (default var/reports)"
    )
    analytics_status_file: Path | None = Field(
        default=None, description="How the last analytics cycle went (default: next to the strengths file)"
    )
    fhir_timeout: float = Field(default=3.0, gt=0, le=30, description="Seconds allowed for each FHIR fallback fetch")
    max_body_bytes: int = Field(default=4_000_000, ge=1024, description="Largest request body accepted (else 413)")
    max_json_depth: int = Field(default=40, ge=8, le=1000, description="Deepest JSON nesting accepted (else 400)")
    max_bundle_entries: int = Field(
        default=1000, ge=1, description="Most entries in one Bundle of a request (draft orders, prefetch; else 400)"
    )
    fhir_max_bytes: int = Field(
        default=2_000_000, ge=1024, description="Most bytes read for one FHIR search, all its pages together (else 412)"
    )
    fhir_servers: str = Field(
        default="",
        description="With auth off: comma-separated FHIR base URLs a request's fhirServer may name (others: never)",
    )
    fhir_max_pages: int = Field(default=10, ge=1, le=100, description="Pages of a searchset followed at most")

    # Authentication of CDS clients (hooks/security/auth.py) and CORS for browser-based clients.
    auth: Literal["jwt", "off"] = Field(default="jwt", description="Require an EHR-signed JWT on /cds-services calls")
    trusted_issuers: Path | None = Field(
        default=None, description="YAML or JSON list of trusted JWT issuers: {iss, jwks | jwks_file | jku}"
    )
    public_base_url: str | None = Field(
        default=None, description="The service's public URL (before /cds-services); JWT audiences are built from it"
    )
    jwt_leeway_seconds: float = Field(default=60, ge=0, le=300, description="Clock skew allowed on exp and iat")
    jwt_max_lifetime_seconds: float = Field(default=3600, gt=0, description="Longest exp - iat accepted")
    jwks_min_refresh_seconds: float = Field(
        default=30, ge=0, description="Least time between two fetches of one jku (unknown kids cannot force more)"
    )
    jwks_max_age_seconds: float = Field(default=3600, gt=0, description="Age at which a jku JWKS is re-fetched")
    jwks_timeout: float = Field(default=2.0, gt=0, le=10, description="Seconds allowed for a jku fetch")
    jti_cache_size: int = Field(
        default=1_000_000, ge=1000, description="Most unexpired jtis remembered (shared by the host's workers)"
    )
    jti_per_issuer: int | None = Field(
        default=None, ge=1, description="Most unexpired jtis of one issuer (default: the cache size / the issuers)"
    )
    jti_file: Path | None = Field(default=None, description="The jtis seen, shared by workers (var/jti.sqlite3)")
    replay_store: str | None = Field(
        default=None,
        description="postgresql://USER:PASS@HOST:PORT/DB?schema=NAME: the jtis seen, shared by all replicas "
        "(default: the host's jti_file)",
    )
    client_timeout_seconds: float = Field(
        default=10, gt=0, le=300, description="Seconds a request's headers and body have to arrive (else closed)"
    )
    admin_port: int | None = Field(
        default=None, ge=1, le=65535, description="Port of the operator endpoints (default: the service's own)"
    )
    access_log: bool = Field(default=False, description="Log one PHI-free line per request (on/off)")
    cors_origins: str = Field(default="*", description="Comma-separated origins allowed by CORS, or *")

    @property
    def cors_origin_list(self) -> list[str]:
        return [origin.strip() for origin in self.cors_origins.split(",") if origin.strip()]

    @property
    def fhir_server_list(self) -> list[str]:
        return [url.strip() for url in self.fhir_servers.split(",") if url.strip()]

    @property
    def events_path(self) -> Path:
        return self.event_log_dir or self.var_dir / "events"

    @property
    def strengths_path(self) -> Path:
        return self.strengths_file or self.var_dir / "strengths.json"

    @property
    def products_path(self) -> Path:
        return self.products_file or self.strengths_path.with_name("products.json")

    @property
    def analytics_status_path(self) -> Path:
        return self.analytics_status_file or self.strengths_path.with_name("analytics-status.json")

    @property
    def jti_path(self) -> Path:
        return self.jti_file or self.var_dir / "jti.sqlite3"

    @property
    def key_path(self) -> Path:
        return self.key_file or self.var_dir / "pgx-loop.key"
