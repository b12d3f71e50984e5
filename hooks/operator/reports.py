"""``/reports/``: the analysts' outcome reports, served read-only from the folder analytics writes.

Routes: ``/reports/`` (the index), ``/reports/latest`` (redirect to the newest report),
``/reports/<YYYY-MM-DD>`` (the newest report of that day), ``/reports/<stamp>/`` and the files
beside it. Names are matched against strict patterns and resolved inside the folder, so nothing
else on disk can be reached. Pages get a content security policy that allows nothing external:
a report is self-contained, and the browser refuses anything else. This module reads files only
(no DuckDB, no analytics imports), like the rest of the service.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, RedirectResponse

from hooks.settings import Settings

STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{6}Z(-\d+)?$")
DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\.(html|csv|json)$")
TYPES = {"html": "text/html; charset=utf-8", "csv": "text/csv; charset=utf-8", "json": "application/json"}
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def _stamps(root: Path) -> list[str]:
    """Report folders, newest first."""
    if not root.is_dir():
        return []
    return sorted((p.name for p in root.iterdir() if STAMP.match(p.name) and p.is_dir()), reverse=True)


def _file(root: Path, *parts: str) -> FileResponse:
    path = root.joinpath(*parts).resolve()
    if not path.is_relative_to(root.resolve()) or not path.is_file():
        raise HTTPException(404, "no such report file")
    return FileResponse(path, media_type=TYPES[path.suffix.lstrip(".")], headers=HEADERS)


NOT_FOUND = {404: {"description": "No such report, or none written yet"}}
REDIRECT = {307: {"description": "Redirect to the report's page"}, **NOT_FOUND}


def _documented(*media_types: str) -> dict[int | str, dict]:
    return {200: {"description": "The file", "content": {media: {} for media in media_types}}, **NOT_FOUND}


def reports_router(settings: Settings) -> APIRouter:
    """The routes, serving ``settings.reports_dir`` (default ``var/reports``)."""
    root = settings.reports_dir or settings.var_dir / "reports"
    router = APIRouter(prefix="/reports", tags=["reports"])

    @router.get(
        "/", summary="Outcome reports: the index", response_class=FileResponse, responses=_documented("text/html")
    )
    async def index() -> FileResponse:
        if not (root / "index.html").is_file():
            raise HTTPException(404, "no reports yet: they are written after each analytics cycle")
        return _file(root, "index.html")

    @router.get("/latest", summary="The newest outcome report", responses=REDIRECT)
    async def latest() -> RedirectResponse:
        stamps = _stamps(root)
        if not stamps:
            raise HTTPException(404, "no reports yet")
        return RedirectResponse(f"/reports/{stamps[0]}/", status_code=307)

    @router.get("/{name}", summary="A report (or the newest of a day, YYYY-MM-DD)", responses=REDIRECT)
    async def report(name: str) -> RedirectResponse:
        if DAY.match(name):
            stamps = [s for s in _stamps(root) if s.startswith(name + "T")]
            if not stamps:
                raise HTTPException(404, f"no report on {name}")
            return RedirectResponse(f"/reports/{stamps[0]}/", status_code=307)
        if STAMP.match(name) and (root / name).is_dir():
            return RedirectResponse(f"/reports/{name}/", status_code=307)
        raise HTTPException(404, "no such report")

    @router.get("/{stamp}/", summary="A report's page", response_class=FileResponse, responses=_documented("text/html"))
    async def page(stamp: str) -> FileResponse:
        if not STAMP.match(stamp):
            raise HTTPException(404, "no such report")
        return _file(root, stamp, "report.html")

    @router.get(
        "/{stamp}/{file}",
        summary="A file of a report (its CSV exports)",
        response_class=FileResponse,
        responses=_documented(*sorted({media.split(";")[0] for media in TYPES.values()})),
    )
    async def report_file(stamp: str, file: str) -> FileResponse:
        if not (STAMP.match(stamp) and FILE.match(file)):
            raise HTTPException(404, "no such report file")
        return _file(root, stamp, file)

    return router
