"""Structured logs: one JSON object per line, carrying the id of the request being handled.

Shared by the service, its uvicorn server and the analytics child process, so every line a
deployment writes parses the same way. The request id lives in a context variable the
service's middleware sets; each asyncio task (and ``asyncio.to_thread``) copies the context,
so every line emitted while handling a request carries its id, whichever module logs it.

Log calls are written not to include patient identifiers or tokens; as a second line of
defence the formatter blanks bearer tokens, JWTs and URL query strings (where FHIR searches
carry patient ids) in messages and tracebacks, for instance from an HTTP client's exception.
"""

from __future__ import annotations

import logging
import re
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

_SECRETS = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[^\s'\",]+"), r"\1 [redacted]"),
    (re.compile(r"\beyJ[\w-]*\.[\w-]*\.[\w-]*"), "[redacted-jwt]"),
    (re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^\s?#'\"]*)\?[^\s#'\"]*"), r"\1?[redacted]"),
)


def redact(text: str) -> str:
    """``text`` with bearer tokens, JWTs and URL query strings blanked."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", "request_id"?, "exception"?}`` on one line, plus the
    record's ``fields`` (``extra={"fields": {...}}``) when it has them."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        fields = getattr(record, "fields", None)  # structured values: log.info(..., extra={"fields": {...}})
        if isinstance(fields, dict):
            entry.update({key: value for key, value in fields.items() if key not in entry})
        current = request_id.get()
        if current is not None:
            entry["request_id"] = current
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(entry).decode()


def log_config(level: str = "INFO") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` (and ``uvicorn.run(log_config=...)``) setup: everything as JSON to stderr."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"json": handler},
        "root": {"handlers": ["json"], "level": level},
        "loggers": {
            # uvicorn's own loggers go through the root handler instead of their default plain-text ones.
            **{name: {"handlers": [], "propagate": True} for name in ("uvicorn", "uvicorn.error", "uvicorn.access")},
            # The HTTP client logs each request's URL at INFO: FHIR searches carry the patient id in the query.
            **{name: {"level": "WARNING"} for name in ("httpx", "httpcore")},
        },
    }


def configure(level: str = "INFO") -> None:
    """JSON logs to stderr for this process (for processes not started by uvicorn)."""
    import logging.config

    logging.config.dictConfig(log_config(level))
