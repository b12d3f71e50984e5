"""``pgx-loop``: one command line for the service, the engine and the learning loop."""

from __future__ import annotations

import click

from pgx_loop.phenotype import phenotype
from pgx_loop.rules import rules
from pgx_loop.serve import demo, serve


def _analytics_commands() -> dict[str, click.Command]:
    from pgx_loop.analytics_cmds import COMMANDS
    from pgx_loop.products import products

    return {command.name: command for command in (*COMMANDS, products) if command.name}


class _Commands(click.Group):
    """The analytics commands (and `products`) are imported only when one of them runs (or for the help text):
    they bring DuckDB and statsmodels, which `pgx-loop serve` does not need to start."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_analytics_commands()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, cmd_name) or _analytics_commands().get(cmd_name)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Pharmacogenomic clinical decision support over CDS Hooks, with a learning loop."""


for command in (serve, demo, phenotype, rules):
    main.add_command(command)


if __name__ == "__main__":  # pragma: no cover
    main()
