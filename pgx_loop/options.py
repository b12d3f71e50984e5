"""Options and helpers shared by the ``pgx-loop`` commands."""

from __future__ import annotations

from pathlib import Path

import click

from engine.library import Library, load_library
from engine.yamlsource import SourceError
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
