"""``pgx-loop products``: the RxNorm product index built from the site's OMOP vocabulary."""

from __future__ import annotations

import json
from pathlib import Path

import click

from pgx_loop.analytics_cmds import _settings, db_option
from pgx_loop.options import library_or_exit


@click.group(name="products")
def products() -> None:
    """RxNorm products and brand names of the covered drugs, from the OMOP vocabulary."""


@products.command(name="build")
@db_option
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Where to publish the index (default: PGX_LOOP_PRODUCTS_FILE, else products.json next to the strengths).",
)  # fmt: skip
def build(db: Path | None, out: Path | None) -> None:
    """Index every RxNorm product of the drugs the rules cover and publish it for the service.

    The analytics cycle does the same after each run; this builds it at once, e.g. after
    loading a new vocabulary. The file is replaced atomically; the service picks it up.
    """
    from analytics.data.products import VOCABULARY, build_index, has_vocabulary, publish
    from analytics.data.store import connect

    settings = _settings(db)
    library = library_or_exit(settings.rules_dir)
    path = out or settings.paths().products
    if not settings.database.exists():
        raise click.ClickException(
            f"{settings.database} does not exist: load an OMOP extract first (pgx-loop load-omop)"
        )
    con = connect(settings.database, read_only=True)
    try:
        if not has_vocabulary(con):
            raise click.ClickException(
                f"{settings.database} has no OMOP vocabulary ({', '.join(VOCABULARY)}): "
                "load one with pgx-loop load-omop"
            )
        index = build_index(con, library)
    finally:
        con.close()
    written = publish(index, path)
    summary = {"file": str(path), "version": index.version, "products": len(index.products),
               "brands": len(index.brands), "written": written}  # fmt: skip
    click.echo(json.dumps(summary, indent=2))
