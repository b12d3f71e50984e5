"""Where the site's PostgreSQL is: the one URL form the replay store, the cycle lease and ``--omop`` read.

``postgresql://USER[:PASS]@HOST[:PORT]/DB[?schema=NAME&sslmode=..]``: ``schema`` is ours (where
pgx-loop keeps its tables, or where the CDM is); every other parameter goes to libpq as given.
The password is never part of what is shown or logged. Pure parsing: the driver is the caller's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

DEFAULT_SCHEMA = "pgx_loop"
SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class PostgresUrlError(ValueError):
    """Not a usable postgresql:// URL; the message names the problem, never the password."""


@dataclass(frozen=True)
class PostgresTarget:
    """libpq's connection string, the schema, and a name to show (no password)."""

    conninfo: str
    schema: str
    shown: str


def parse_url(url: str, setting: str = "PGX_LOOP_REPLAY_STORE", default_schema: str = DEFAULT_SCHEMA) -> PostgresTarget:
    """The target ``url`` names; PostgresUrlError (naming ``setting``) if it is not a postgresql:// URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise PostgresUrlError(f"{setting} must be a postgresql:// URL")
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [value for key, value in query if key == "schema"]
    schema = schemas[-1] if schemas else default_schema
    if not SCHEMA_NAME.fullmatch(schema):
        raise PostgresUrlError(f"{setting}: schema must be a plain name (letters, digits and _)")
    rest = urlencode([(key, value) for key, value in query if key != "schema"])
    conninfo = urlunsplit((parts.scheme, parts.netloc, parts.path, rest, ""))
    try:
        port = parts.port or 5432
    except ValueError:
        raise PostgresUrlError(f"{setting}: the port must be a number") from None
    user = f"{unquote(parts.username)}@" if parts.username else ""
    where = f"{parts.hostname or 'localhost'}:{port}/{unquote(parts.path.lstrip('/'))}"
    return PostgresTarget(conninfo, schema, f"postgresql://{user}{where} (schema {schema})")


def scrubbed(exc: Exception, url: str) -> str:
    """The driver's message, first line, with the URL's password removed should it appear."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    password = urlsplit(url).password
    # As written in the URL and as libpq reads it (a percent-encoded character decoded).
    for spelling in {password, unquote(password)} if password else ():
        message = message.replace(spelling, "***")
    return message
