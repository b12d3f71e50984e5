"""Writing reports: one folder per report (HTML, a CSV per table, meta.json) and the index of them all.

A report folder is written under a temporary name and renamed into place, and the index is
replaced atomically, so a reader (the service's /reports/) sees a whole report or none.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from analytics.report.data import collect
from analytics.report.view import ReportView, Table, build_view
from analytics.settings import AnalyticsSettings
from engine.rulebook.library import Library
from engine.runtime.identifiers import Identifiers
from engine.runtime.published import replace_atomically

log = logging.getLogger(__name__)
STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{6}Z(-\d+)?$")
REPORT = "report.html"
INDEX = "index.html"


def environment() -> Environment:
    return Environment(
        loader=PackageLoader("analytics.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@dataclass(frozen=True)
class Entry:
    """One report in the index."""

    stamp: str
    run_id: str | None
    headline: str


def stamp_of(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H%M%SZ")


def render_html(view: ReportView, stamp: str) -> str:
    """The report page."""
    return (
        environment()
        .get_template("report.html.j2")
        .render(
            data=view.data,
            rules=view.rules,
            equity=view.equity,
            quality=view.quality,
            summary=view.summary,
            methods=view.methods,
            min_cell=view.min_cell,
            stamp=stamp,
        )
    )


# A spreadsheet runs a cell starting with these as a formula (=HYPERLINK(...), =cmd|...): OWASP's CSV injection.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: object) -> object:
    """A CSV cell that no spreadsheet runs as a formula: text starting like one gets a leading ``'``.

    Only text is touched, so numbers (a negative log hazard ratio) stay numbers.
    """
    if isinstance(cell, str) and cell.startswith(FORMULA_START):
        return "'" + cell
    return cell


def write_csv(table: Table, path: Path) -> None:
    """One table as a CSV export, every cell spreadsheet-safe."""
    columns, rows = table.csv()
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([spreadsheet_safe(cell) for cell in columns])
        writer.writerows([spreadsheet_safe(cell) for cell in row] for row in rows)


def _write_folder(view: ReportView, folder: Path, stamp: str) -> None:
    folder.mkdir(parents=True)
    (folder / REPORT).write_text(render_html(view, stamp), encoding="utf-8")
    for table in view.tables():
        write_csv(table, folder / f"{table.name}.csv")
    run = view.data.run
    meta = {"stamp": stamp, "generated_at": view.data.generated_at.isoformat(), "run_id": run.run_id if run else None,
            "min_cell": view.min_cell, "summary": view.summary}  # fmt: skip
    (folder / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")


def entries(out_dir: Path) -> list[Entry]:
    """The reports in ``out_dir``, newest first."""
    found = []
    for folder in out_dir.iterdir() if out_dir.is_dir() else ():
        if not (STAMP.match(folder.name) and (folder / "meta.json").is_file()):
            continue
        try:
            meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        summary = meta.get("summary") or [""]
        found.append(Entry(folder.name, meta.get("run_id"), summary[0]))
    return sorted(found, key=lambda e: e.stamp, reverse=True)


def write_index(out_dir: Path) -> Path:
    """(Re)write ``index.html`` listing every report in ``out_dir``."""
    html = environment().get_template("index.html.j2").render(reports=entries(out_dir))
    replace_atomically(out_dir / INDEX, html.encode())
    return out_dir / INDEX


def publish(view: ReportView, out_dir: Path) -> Path:
    """Write ``view`` as a new report folder in ``out_dir`` and update the index; returns the folder."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = stamp_of(view.data.generated_at)
    final, number = out_dir / stamp, 1
    while final.exists():  # two reports in one second
        number += 1
        final = out_dir / f"{stamp}-{number}"
    temporary = out_dir / f".{final.name}.{os.getpid()}.tmp"
    shutil.rmtree(temporary, ignore_errors=True)
    try:
        _write_folder(view, temporary, final.name)
        os.rename(temporary, final)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    write_index(out_dir)
    return final


def write_report(
    database: Path, library: Library, out_dir: Path, *, min_cell: int, identifiers: Identifiers | None = None,
    events_dir: Path | Sequence[Path] | None = None,
) -> Path:  # fmt: skip
    """Read the database (read-only), write one report into ``out_dir``; returns its folder."""
    con = duckdb.connect(str(database), read_only=True)
    try:
        data = collect(con, library, identifiers=identifiers, events_dir=events_dir)
    finally:
        con.close()
    return publish(build_view(data, min_cell), out_dir)


def site_identifiers(key_path: Path) -> Identifiers | None:
    """The site's pseudonym key, if there is one (a report never creates it)."""
    if not key_path.is_file():
        return None
    key = key_path.read_bytes().strip()
    return Identifiers(key) if len(key) >= 16 else None


def report_after_cycle(settings: AnalyticsSettings, library: Library) -> Path | None:
    """Write the report for the cycle that just finished; never raises (a report must not fail a cycle)."""
    try:
        folder = write_report(
            settings.database, library, settings.reports_path, min_cell=settings.report_min_cell,
            identifiers=site_identifiers(settings.key_path), events_dir=settings.paths().event_dirs,
        )  # fmt: skip
    except Exception:
        log.exception("the report for this cycle could not be written; the cycle itself is unaffected")
        return None
    log.info("report written to %s", folder)
    return folder
