"""``pgx-loop``: one command line for the service, the engine and (later) the learning loop."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import click

from engine.genes import INDETERMINATE
from engine.library import Library, load_library
from engine.phenotyper import PhenotypeCall, call_diplotype
from engine.yamlsource import SourceError
from hooks.settings import Settings

rules_option = click.option(
    "--rules",
    "rules_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Rules directory (default: PGX_LOOP_RULES_DIR, else the repository's rules/).",
)


def _library(rules_dir: Path | None) -> Library:
    directory = rules_dir or Settings().rules_dir
    try:
        return load_library(directory)
    except SourceError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        raise SystemExit(2) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Pharmacogenomic clinical decision support over CDS Hooks, with a learning loop."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@rules_option
def serve(host: str, port: int, rules_dir: Path | None) -> None:
    """Run the CDS Hooks service."""
    settings = Settings(rules_dir=rules_dir) if rules_dir else Settings()
    _library(settings.rules_dir)  # refuse to start on a broken rule set, with file:line messages
    _serve(settings, host, port)


def _serve(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    from hooks.app import create_app

    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", access_log=False)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
def demo(host: str, port: int) -> None:
    """Serve the repository's rules with the sample requests in examples/, showing what to try."""
    library = _library(None)
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


def _call_json(call: PhenotypeCall, given: str) -> dict[str, str | None]:
    return {
        "gene": call.gene,
        "diplotype": call.diplotype or given,
        "phenotype": call.phenotype,
        "activity_score": call.activity_score,
    }


@main.command()
@click.argument("gene", required=False)
@click.argument("diplotype", required=False)
@click.option("--batch", is_flag=True, help="Read CSV gene,diplotype lines on stdin; write CSV on stdout.")
@rules_option
def phenotype(gene: str | None, diplotype: str | None, batch: bool, rules_dir: Path | None) -> None:
    """Phenotype a diplotype: pgx-loop phenotype CYP2C19 '*1/*2'."""
    library = _library(rules_dir)
    symbols = {symbol.casefold(): symbol for symbol in library.genes}
    if batch:
        if gene or diplotype:
            raise click.UsageError("--batch reads stdin; give no GENE or DIPLOTYPE")
        _phenotype_batch(library, symbols)
        return
    if not gene or not diplotype:
        raise click.UsageError("give GENE and DIPLOTYPE, or --batch")
    symbol = symbols.get(gene.strip().casefold())
    if symbol is None:
        raise click.BadParameter(
            f"unknown gene {gene!r}; defined: {', '.join(sorted(library.genes))}", param_hint="GENE"
        )
    click.echo(json.dumps(_call_json(call_diplotype(library.genes[symbol], diplotype), diplotype), ensure_ascii=False))


def _phenotype_batch(library: Library, symbols: dict[str, str]) -> None:
    reader = csv.reader(sys.stdin)
    writer = csv.writer(sys.stdout, lineterminator="\n")
    unknown_genes: set[str] = set()
    for number, row in enumerate(reader, start=1):
        if not row or not any(cell.strip() for cell in row):
            continue
        if number == 1 and [cell.strip().lower() for cell in row[:2]] == ["gene", "diplotype"]:
            writer.writerow(["gene", "diplotype", "phenotype", "activity_score"])  # a header for a header
            continue
        if len(row) != 2:
            click.echo(f"stdin:{number}: expected 2 fields gene,diplotype; got {len(row)}", err=True)
            writer.writerow([row[0].strip(), ",".join(row[1:]).strip(), INDETERMINATE, ""])
            continue
        gene, text = row[0].strip(), row[1].strip()
        symbol = symbols.get(gene.casefold())
        if symbol is None:
            if gene not in unknown_genes:
                click.echo(f"stdin:{number}: unknown gene {gene!r}; its rows are Indeterminate", err=True)
                unknown_genes.add(gene)
            writer.writerow([gene, text, INDETERMINATE, ""])
            continue
        result = _call_json(call_diplotype(library.genes[symbol], text), text)
        writer.writerow([result["gene"], result["diplotype"], result["phenotype"], result["activity_score"] or ""])


if __name__ == "__main__":  # pragma: no cover
    main()
