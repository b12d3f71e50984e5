"""Options and helpers shared by the ``pgx-loop`` commands."""

from __future__ import annotations

from pathlib import Path

import click
from pydantic import ValidationError

from engine.decision.strengths import EMPTY, Snapshot, read_snapshot
from engine.documents.yamlsource import SourceError
from engine.rulebook.library import Library, load_library
from hooks.settings import Settings

rules_option = click.option(
    "--rules",
    "rules_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Rules directory (default: PGX_LOOP_RULES_DIR, else the repository's rules/).",
)


def library_or_exit(rules_dir: Path | None) -> Library:
    """The rule library, or every problem as ``file:line: message`` on stderr and exit status 2."""
    directory = rules_dir or Settings().rules_dir
    try:
        return load_library(directory)
    except SourceError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        raise SystemExit(2) from None


strengths_option = click.option(
    "--strengths",
    "strengths_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Published strengths (default: the file the service reads, PGX_LOOP_STRENGTHS_FILE or var/strengths.json).",
)


def served_strengths(strengths_file: Path | None) -> tuple[Path, Snapshot]:
    """The strengths snapshot the service would serve, read as the service reads it.

    A file that cannot be read is reported on stderr and treated as none (the rule files' tiers).
    """
    path = strengths_file or Settings().strengths_path
    try:
        return path, read_snapshot(path)
    except (OSError, ValidationError, ValueError) as exc:
        click.echo(f"{path}: not a strengths snapshot ({type(exc).__name__}); showing the rule files' tiers", err=True)
        return path, EMPTY
