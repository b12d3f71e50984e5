"""``pgx-loop phenotype``: diplotype -> phenotype, one at a time or as a CSV batch."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import click

from engine.genotype.calls import INDETERMINATE, PhenotypeCall
from engine.genotype.phenotyper import call_diplotype
from engine.rulebook.library import Library
from pgx_loop.options import library_or_exit, rules_option


def _call_json(call: PhenotypeCall, given: str) -> dict[str, str | None]:
    return {
        "gene": call.gene,
        "diplotype": call.diplotype or given,
        "phenotype": call.phenotype,
        "activity_score": call.activity_score,
    }


@click.command()
@click.argument("gene", required=False)
@click.argument("diplotype", required=False)
@click.option("--batch", is_flag=True, help="Read CSV gene,diplotype lines on stdin; write CSV on stdout.")
@click.option("--sex", type=click.Choice(["female", "male"]), help="The patient's sex (needed to read G6PD)")
@rules_option
def phenotype(gene: str | None, diplotype: str | None, batch: bool, sex: str | None, rules_dir: Path | None) -> None:
    """Phenotype a diplotype: pgx-loop phenotype CYP2C19 '*1/*2'."""
    library = library_or_exit(rules_dir)
    symbols = {symbol.casefold(): symbol for symbol in library.genes}
    if batch:
        if gene or diplotype:
            raise click.UsageError("--batch reads stdin; give no GENE or DIPLOTYPE")
        _phenotype_batch(library, symbols, sex)
        return
    if not gene or not diplotype:
        raise click.UsageError("give GENE and DIPLOTYPE, or --batch")
    symbol = symbols.get(gene.strip().casefold())
    if symbol is None:
        raise click.BadParameter(
            f"unknown gene {gene!r}; defined: {', '.join(sorted(library.genes))}", param_hint="GENE"
        )
    call = call_diplotype(library.genes[symbol], diplotype, sex)
    click.echo(json.dumps(_call_json(call, diplotype), ensure_ascii=False))


def _phenotype_batch(library: Library, symbols: dict[str, str], sex: str | None) -> None:
    reader = csv.reader(sys.stdin)
    writer = csv.writer(sys.stdout, lineterminator="\n")
    unknown_genes: set[str] = set()
    for number, row in enumerate(reader, start=1):
        if not row or not any(cell.strip() for cell in row):
            continue
        if number == 1 and [cell.strip().lower() for cell in row[:2]] == ["gene", "diplotype"]:
            writer.writerow(["gene", "diplotype", "phenotype", "activity_score"])  # a header for a header
            continue
        if len(row) < 2:
            click.echo(f"stdin:{number}: expected gene,diplotype", err=True)
            writer.writerow([row[0].strip(), "", INDETERMINATE, ""])
            continue
        # DPYD names contain commas; an unquoted one arrives split over several fields.
        gene, text = row[0].strip(), ",".join(row[1:]).strip()
        symbol = symbols.get(gene.casefold())
        if symbol is None:
            if gene not in unknown_genes:
                click.echo(f"stdin:{number}: unknown gene {gene!r}; its rows are Indeterminate", err=True)
                unknown_genes.add(gene)
            writer.writerow([gene, text, INDETERMINATE, ""])
            continue
        result = _call_json(call_diplotype(library.genes[symbol], text, sex), text)
        writer.writerow([result["gene"], result["diplotype"], result["phenotype"], result["activity_score"] or ""])
