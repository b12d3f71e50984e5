"""``pgx-loop``: one command line for the service, the engine and the learning loop."""

from __future__ import annotations

import click

from pgx_loop.analytics_cmds import COMMANDS as ANALYTICS_COMMANDS
from pgx_loop.phenotype import phenotype
from pgx_loop.products import products
from pgx_loop.rules import rules
from pgx_loop.serve import demo, serve


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Pharmacogenomic clinical decision support over CDS Hooks, with a learning loop."""


for command in (serve, demo, phenotype, rules, *ANALYTICS_COMMANDS, products):
    main.add_command(command)


if __name__ == "__main__":  # pragma: no cover
    main()
