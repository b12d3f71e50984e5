"""``pgx-loop serve`` and ``pgx-loop demo``: run the CDS Hooks service."""

from __future__ import annotations

from pathlib import Path

import click

from hooks.settings import Settings
from pgx_loop.options import library_or_exit, rules_option


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@rules_option
def serve(host: str, port: int, rules_dir: Path | None) -> None:
    """Run the CDS Hooks service."""
    settings = Settings(rules_dir=rules_dir) if rules_dir else Settings()
    library_or_exit(settings.rules_dir)  # refuse to start on a broken rule set, with file:line messages
    _serve(settings, host, port)


def _serve(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    from hooks.app import create_app

    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", access_log=False)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
def demo(host: str, port: int) -> None:
    """Serve the repository's rules with the sample requests in examples/, showing what to try."""
    library = library_or_exit(None)
    examples = Settings().rules_dir.parent / "examples"
    base = f"http://{host}:{port}"
    click.echo(
        f"""
pgx-loop demo: {len(library.rules)} rule(s), {len(library.genes)} gene definition(s), library {library.version}

  Discovery:
    curl -s {base}/cds-services

  A clopidogrel order for a CYP2C19 poor metabolizer (order-select), expecting a critical card:
    curl -s -X POST {base}/cds-services/pgx-order-select \\
         -H 'Content-Type: application/json' -d @{examples}/order-select-poor-metabolizer.json

  The same drug for a normal metabolizer, expecting no card:
    curl -s -X POST {base}/cds-services/pgx-order-select \\
         -H 'Content-Type: application/json' -d @{examples}/order-select-normal-metabolizer.json

  Every card and feedback lands in var/events/*.jsonl. API docs: {base}/docs
  Ctrl-C stops the service.
"""
    )
    _serve(Settings(), host, port)
