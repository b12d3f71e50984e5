"""Where the site's OMOP CDM lives, as a URL (``analyze --omop``, ``PGX_LOOP_OMOP``).

The forms, kept stable because other tools call them:

- ``postgresql://USER[:PASS]@HOST:PORT/DB?schema=SCHEMA``: the CDM in a PostgreSQL schema
  (default ``public``);
- ``spark://local?lake=DIR``: Spark in local mode over a Parquet lake, each CDM table being
  ``DIR/<table>.parquet`` or a folder ``DIR/<table>/`` of Parquet files (names in any case);
- ``sc://HOST:PORT?lake=DIR``: a Spark Connect server reading the same lake layout;
- ``sc://HOST:PORT?database=NAME``: a Spark Connect server's catalog database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from engine.runtime.postgres_url import PostgresTarget, PostgresUrlError, parse_url

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class OmopUrlError(ValueError):
    """The URL is not one of the forms above; the message says which part is wrong (never the password)."""


PostgresUrl = PostgresTarget  # a PostgreSQL database and the schema holding the CDM tables


@dataclass(frozen=True)
class SparkUrl:
    """A Spark session: local mode (``remote`` None) or Spark Connect; tables from a lake or a catalog database."""

    remote: str | None
    lake: Path | None
    database: str | None
    shown: str


OmopUrl = PostgresUrl | SparkUrl


def _query(url: str, allowed: set[str]) -> dict[str, str]:
    params = parse_qs(urlsplit(url).query, keep_blank_values=True)
    unknown = sorted(set(params) - allowed)
    if unknown:
        allowed_names = ", ".join(sorted(allowed))
        raise OmopUrlError(f"OMOP URL: unknown parameter(s) {', '.join(unknown)} (allowed: {allowed_names})")
    if any(len(values) > 1 for values in params.values()):
        raise OmopUrlError("OMOP URL: a parameter is given more than once")
    return {key: values[0] for key, values in params.items()}


def _identifier(value: str, what: str) -> str:
    if not IDENTIFIER.match(value):
        raise OmopUrlError(f"OMOP URL: {what} must be a plain name (letters, digits and _)")
    return value


def _postgres(url: str) -> PostgresUrl:
    # The same form as the replay store's (engine/runtime/postgres_url.py): libpq parameters such as sslmode pass
    # through; ``schema`` names where the CDM is.
    parts = urlsplit(url)
    if not parts.hostname or not parts.username or not parts.path.strip("/"):
        raise OmopUrlError("OMOP URL: PostgreSQL needs postgresql://USER[:PASS]@HOST:PORT/DB?schema=SCHEMA")
    try:
        return parse_url(url, setting="OMOP URL", default_schema="public")
    except PostgresUrlError as exc:
        raise OmopUrlError(str(exc)) from None


def _spark(url: str) -> SparkUrl:
    parts = urlsplit(url)
    params = _query(url, {"lake", "database"})
    if parts.scheme == "spark":
        if parts.netloc != "local" or parts.path not in ("", "/"):
            raise OmopUrlError("OMOP URL: Spark local mode is spark://local?lake=DIR")
        remote = None
        if "lake" not in params:
            raise OmopUrlError("OMOP URL: spark://local needs ?lake=DIR (a folder of Parquet CDM tables)")
    else:
        try:
            port = parts.port
        except ValueError:
            raise OmopUrlError("OMOP URL: the port must be a number") from None
        if not parts.hostname or not port:
            raise OmopUrlError("OMOP URL: Spark Connect is sc://HOST:PORT?lake=DIR or sc://HOST:PORT?database=NAME")
        remote = f"sc://{parts.hostname}:{port}"
        if len(params) != 1:
            raise OmopUrlError("OMOP URL: Spark Connect needs exactly one of ?lake=DIR or ?database=NAME")
    lake = Path(params["lake"]) if "lake" in params else None
    if lake is not None and not str(lake):
        raise OmopUrlError("OMOP URL: lake must name a folder")
    database = _identifier(params["database"], "database") if "database" in params else None
    shown = (remote or "spark://local") + (f"?lake={lake}" if lake else f"?database={database}")
    return SparkUrl(remote, lake, database, shown)


def parse_omop_url(url: str) -> OmopUrl:
    """The source a URL names; ``OmopUrlError`` for anything else."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("postgresql", "postgres"):
        return _postgres(url)
    if scheme in ("spark", "sc"):
        return _spark(url)
    raise OmopUrlError(
        "OMOP URL: expected postgresql://USER[:PASS]@HOST:PORT/DB?schema=SCHEMA, spark://local?lake=DIR, "
        "sc://HOST:PORT?lake=DIR or sc://HOST:PORT?database=NAME"
    )
