"""Where the site's OMOP CDM lives, as a URL (``analyze --omop``, ``PGX_LOOP_OMOP``).

The forms, kept stable because other tools call them:

- ``postgresql://USER[:PASS]@HOST:PORT/DB?schema=SCHEMA[&vocabulary=VOCAB]``: the CDM in a PostgreSQL
  schema (default ``public``); ``vocabulary`` names the schema of the vocabulary tables (``concept``,
  ``concept_ancestor``, ... ``analytics.data.omop.VOCABULARY_TABLES``) when a site keeps them apart, as
  OHDSI's ``@vocabularyDatabaseSchema`` (default: ``SCHEMA``, and the vocabulary is optional; named, it is
  required). Both names resolve alike: the schema of that exact name, else its lower-case fold;
- ``spark://local?lake=DIR``: Spark in local mode over a Parquet lake, each CDM table being
  ``DIR/<table>.parquet`` or a folder ``DIR/<table>/`` of Parquet files (names in any case);
- ``sc://HOST:PORT?lake=DIR``: a Spark Connect server reading the same lake layout;
- ``sc://HOST:PORT?database=NAME``: a Spark Connect server's catalog database.

On Spark the vocabulary is read with the CDM, from the same lake or database: a separate one is not supported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

from engine.runtime.postgres_url import SCHEMA_NAME, PostgresTarget, PostgresUrlError, parse_url

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class OmopUrlError(ValueError):
    """The URL is not one of the forms above; the message says which part is wrong (never the password)."""


@dataclass(frozen=True)
class PostgresUrl(PostgresTarget):
    """A PostgreSQL database, the schema of the CDM tables and, if the URL names one, that of the vocabulary."""

    vocabulary: str | None = None


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
    # through; ``schema`` names where the CDM is. ``vocabulary`` is the OMOP URL's alone: taken out before the
    # rest is parsed, or libpq would be handed a parameter it refuses.
    parts = urlsplit(url)
    if not parts.hostname or not parts.username or not parts.path.strip("/"):
        raise OmopUrlError("OMOP URL: PostgreSQL needs postgresql://USER[:PASS]@HOST:PORT/DB?schema=SCHEMA")
    query = parse_qsl(parts.query, keep_blank_values=True)
    named = [value for key, value in query if key == "vocabulary"]
    if len(named) > 1:
        raise OmopUrlError("OMOP URL: vocabulary is given more than once")
    if named and not SCHEMA_NAME.fullmatch(named[0]):
        raise OmopUrlError("OMOP URL: vocabulary must be a schema's plain name (letters, digits and _)")
    rest = urlunsplit(parts._replace(query=urlencode([(key, value) for key, value in query if key != "vocabulary"])))
    try:
        target = parse_url(rest, setting="OMOP URL", default_schema="public")
    except PostgresUrlError as exc:
        raise OmopUrlError(str(exc)) from None
    if not named:
        return PostgresUrl(target.conninfo, target.schema, target.shown)
    shown = target.shown.removesuffix(")") + f", vocabulary {named[0]})"
    return PostgresUrl(target.conninfo, target.schema, shown, named[0])


def _spark(url: str) -> SparkUrl:
    parts = urlsplit(url)
    if any(key.startswith("vocabulary") for key in parse_qs(parts.query, keep_blank_values=True)):
        raise OmopUrlError(
            "OMOP URL: a vocabulary apart from the CDM is supported on PostgreSQL only; on Spark keep the "
            "vocabulary tables in the same lake or database"
        )
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
