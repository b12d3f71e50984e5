"""``pgx-loop rules``: the pharmacist's tools (check, explain, schema)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import click
from pydantic import TypeAdapter

from engine.decision.matching import StrengthTable
from engine.decision.orders import Order
from engine.decision.populations import SYSTEMS, PatientFacts
from engine.decision.rules import Rule
from engine.decision.strengths import Snapshot
from engine.documents.yamlsource import load_yaml
from engine.genotype.genes import GeneFile
from engine.genotype.results import ReportedResult
from engine.rulebook.cpic_update import ExportError, compare, read_export, summary_lines
from engine.rulebook.explain import Explanation, explain, find_drug_codes
from engine.rulebook.library import Library
from engine.rulebook.rule_warnings import rule_warnings
from pgx_loop.options import library_or_exit, rules_option, served_strengths, strengths_option


@click.group()
def rules() -> None:
    """Check, explain and describe the rule files."""


@rules.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--against",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A CPIC recommendations export (CSV): list what changed, is new or was withdrawn",
)
@strengths_option
def check(directory: Path | None, against: Path | None, strengths_file: Path | None) -> None:
    """Validate every gene and rule file and run their examples; problems as file:line: message.

    Also warns (without failing) about rules without examples and tiers a published strength masks.
    With --against, also look every row of a (newer) CPIC recommendations export up in the
    library and list the differences to review; the exit status is 1 if there are any.
    """
    library = library_or_exit(directory)
    _, snapshot = served_strengths(strengths_file)
    warnings = rule_warnings(library, snapshot)
    for warning in warnings:
        click.echo(str(warning))
    examples = sum(len(rule.examples) for rule in library.rules)
    gene_examples = sum(len(examples) for gene in library.genes.values() for _, _, examples in gene.example_sets())
    shadow = [rule.id for rule in library.rules if rule.status == "shadow"]
    warned = f"{len(warnings)} warning{'' if len(warnings) == 1 else 's'}"
    click.echo(
        f"ok: {len(library.genes)} genes, {len(library.rules)} rules "
        f"({len(shadow)} in shadow mode), {gene_examples + examples} examples hold, {warned}; library {library.version}"
    )
    if against is not None:
        _check_against(library, against)


def _check_against(library: Library, path: Path) -> None:
    try:
        export = read_export(path)
    except (ExportError, UnicodeDecodeError, csv.Error) as exc:
        raise click.ClickException(str(exc)) from None
    report = compare(library, export)
    click.echo(f"CPIC update check against {path}:")
    for line in summary_lines(report, {rule.id: rule.source for rule in library.rules}):
        click.echo(f"  {line}")
    if report.differences:
        raise SystemExit(1)


def _pairs(values: tuple[str, ...], option: str) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        gene, sep, text = value.partition("=")
        if not sep or not gene.strip() or not text.strip():
            raise click.BadParameter(f"expected GENE=VALUE, got {value!r}", param_hint=option)
        pairs.append((gene.strip(), text.strip()))
    return pairs


@rules.command(name="explain")
@click.option("--genotype", "-g", multiple=True, help="GENE=DIPLOTYPE, e.g. -g 'CYP2C19=*1/*2'")
@click.option("--phenotype", "-p", multiple=True, help="GENE=PHENOTYPE as a lab states it")
@click.option("--drug", "-d", help="The drug ordered: RxNorm code or name")
@click.option("--condition", "-c", multiple=True, help="A diagnosis as system|code, e.g. icd10|I21.4")
@click.option("--age", type=int, help="The patient's age in years")
@click.option("--sex", type=click.Choice(["female", "male"]), help="The patient's sex (needed to read G6PD)")
@click.option("--request", "request_file", type=click.Path(dir_okay=False, path_type=Path), help="A CDS Hooks request")
@strengths_option
@rules_option
def explain_command(
    genotype: tuple[str, ...],
    phenotype: tuple[str, ...],
    drug: str | None,
    condition: tuple[str, ...],
    age: int | None,
    sex: str | None,
    request_file: Path | None,
    strengths_file: Path | None,
    rules_dir: Path | None,
) -> None:
    """Show, step by step, which rules match a genotype and a drug, and why.

    Tiers are the ones the service shows: the published strengths apply, as in the service.
    """
    library = library_or_exit(rules_dir)
    path, snapshot = served_strengths(strengths_file)
    strengths = snapshot.table()
    if request_file is not None:
        explanations = _explain_request(library, request_file, strengths)
    else:
        if not drug:
            raise click.UsageError("give --drug (or --request FILE)")
        codes = find_drug_codes(library, drug)
        display = None if drug.isdigit() else drug  # a drug listed without codes is matched by name
        if not library.watches(Order("MedicationRequest/explained", codes, display)):
            raise click.BadParameter(f"no rule watches {drug!r}", param_hint="--drug")
        reports = [ReportedResult(gene, diplotype=text) for gene, text in _pairs(genotype, "--genotype")]
        reports += [ReportedResult(gene, phenotype=text) for gene, text in _pairs(phenotype, "--phenotype")]
        codes_given = frozenset(
            (SYSTEMS.get(system, system), code) for system, _, code in (c.partition("|") for c in condition)
        )
        facts = PatientFacts(codes_given, age, sex)
        explanations = [explain(library, reports, codes, facts, strengths, display)]
    click.echo(_strengths_line(path, snapshot))
    for explanation in explanations:
        click.echo(_format(library, explanation))


def _strengths_line(path: Path, snapshot: Snapshot) -> str:
    if not snapshot.strengths:
        return f"Strengths: none published ({path}); every tier is the rule file's"
    return f"Strengths: version {snapshot.version} of {path} ({len(snapshot.strengths)} published, {snapshot.created})"


def _explain_request(library: Library, path: Path, strengths: StrengthTable) -> list[Explanation]:
    from hooks.answering.orders import orders_to_check
    from hooks.fhir.fhir_pgx import ResultReader
    from hooks.fhir.patient_facts import patient_facts
    from hooks.protocol.order_contexts import order_context
    from hooks.protocol.requests import HookRequest

    request = HookRequest.model_validate_json(path.read_bytes())
    context = order_context(request.hook, request.context)
    orders = orders_to_check(context)
    reader = ResultReader(library.genes, library.rules_by_code)
    reports = reader.read((request.prefetch or {}).values(), context.patientId, fhir_server=request.fhirServer)
    facts = patient_facts(request.prefetch, orders)  # prefetch as given: explain never calls the EHR
    return [explain(library, reports, order.rxnorm, facts, strengths, order.display) for order in orders]


def _recommendation_line(rule_source: str, index: int) -> int:
    return load_yaml(Path(rule_source)).line_of(("recommendations", index))


def _format(library: Library, explanation: Explanation) -> str:
    lines = ["Results"]
    if not explanation.results:
        lines.append("  (none on file for the genes pgx-loop defines)")
    for gene, result in explanation.results.items():
        call = result.call
        steps = []
        if call.diplotype:
            steps.append(call.diplotype)
        if call.functions:
            steps.append(" + ".join(f"{allele} {function.lower()}" for allele, function in call.functions))
        if call.activity_score:
            steps.append(f"activity score {call.activity_score}")
        steps.append(call.phenotype)
        lines.append(f"  {gene:8s} " + "  ->  ".join(steps))
        if call.reason:
            lines.append(f"           ({call.reason})")
        for other in result.conflicting:
            stated = other.call.diplotype or other.reported_phenotype
            lines.append(f"           conflicting: {stated} -> {other.call.phenotype}")
    order = explanation.order
    named = f" ({order.display!r})" if order.display else ""
    lines.append(f"Order: RxNorm {', '.join(sorted(order.rxnorm)) or 'none'}{named}")
    if not explanation.steps:
        lines.append("  no rule watches this drug")
    elif any(step.match and step.match.matched_by_name for step in explanation.steps):
        lines.append("  (no RxNorm code a rule knows: recognised by the drug's name, as the card says)")
    for step in explanation.steps:
        lines.append(f"  rule {step.rule_id} ({step.source}), drug {step.drug}: {step.outcome}")
        match = step.match
        if match is None:
            lines.append(f"    {step.why}")
            continue
        population = match.population
        if population.population is not None:
            lines.append(f"    population: {population.population.label} ({population.why})")
        if match.kind == "pretest":
            untested = match.rule.pretest.genes or match.rule.gene_list if match.rule.pretest else ()
            lines.append(f"    no result for {', '.join(untested)}: pre-test card")
        else:
            recommendation = match.recommendation
            where = f"{match.rule.source}:{_recommendation_line(match.rule.source, match.index)}"
            lines.append(f"    result: {match.key} -> recommendation {match.index + 1} ({where})")
            lines.append(f"    CPIC ({recommendation.classification}): {recommendation.recommendation}")
            floor, ceiling = recommendation.bounds
            if match.strength is not None:
                source = f"from local evidence: {match.strength.evidence}; the rule file says {recommendation.tier}"
            else:
                source = "from the rule file"
            lines.append(f"    tier: {match.tier} ({source}; bounds {floor} to {ceiling})")
        if step.card_summary:
            lines.append(f"    card: {step.card_summary}")
    return "\n".join(lines)


@rules.command()
@click.option("--gene", "gene_file", is_flag=True, help="The schema of gene files instead of rule files.")
def schema(gene_file: bool) -> None:
    """Print the JSON Schema of rule files (or gene files), for editors."""
    model = TypeAdapter(GeneFile).json_schema() if gene_file else Rule.model_json_schema()
    click.echo(json.dumps(model, indent=2, ensure_ascii=False))
