"""Run the worked examples that gene and rule files carry, reporting failures at their line."""

from __future__ import annotations

from engine.decision.cards import summary_text, template_key
from engine.decision.orders import Order
from engine.decision.populations import SYSTEMS, PatientFacts
from engine.decision.rules import Rule
from engine.documents.yamlsource import Problem, YamlDocument
from engine.genotype.genes import GeneDefinition
from engine.genotype.phenotyper import call_diplotype
from engine.genotype.results import ReportedResult
from engine.rulebook.knowledge_base import Library


def gene_example_problems(gene: GeneDefinition, document: YamlDocument) -> list[Problem]:
    problems = []
    for field, sex, examples in gene.example_sets():
        for diplotype, expected in examples.items():
            call = call_diplotype(gene, diplotype, sex)
            if call.phenotype != expected:
                problems.append(
                    document.problem(
                        (field, diplotype), f"example {diplotype}: expected {expected!r}, got {call.phenotype!r}"
                    )
                )
    return problems


def rule_example_problems(library: Library, rule: Rule, document: YamlDocument) -> list[Problem]:
    problems = []
    for index, example in enumerate(rule.examples):
        where = ("examples", index)
        reports = (ReportedResult(gene, diplotype=text) for gene, text in example.genotype.items())
        results = library.interpret(reports, example.sex)
        facts = PatientFacts(
            frozenset((SYSTEMS.get(c.system, c.system), c.code) for c in example.conditions), example.age, example.sex
        )
        codes = frozenset({example.order}) if example.order else frozenset()
        order = Order(reference="MedicationRequest/example", rxnorm=codes, display=example.order_text)
        matches = [m for m in library.match([order], results, facts) if m.rule.id == rule.id and m.shows_card]
        got = matches[0].tier if matches else "no card"
        described = ", ".join(f"{gene} {text}" for gene, text in example.genotype.items()) or "no result"
        if got != example.expect:
            problems.append(
                document.problem(
                    (*where, "expect"), f"example {index + 1} ({described}): expected {example.expect}, got {got}"
                )
            )
        elif matches and example.summary:
            summary = summary_text(library.card_templates[template_key(matches[0])], matches[0])
            if summary != example.summary:
                problems.append(
                    document.problem((*where, "summary"), f"example {index + 1} ({described}): summary is {summary!r}")
                )
    return problems
