"""The knowledge base: every gene and rule file in a rules directory, validated together.

``load_library`` either returns a complete, consistent :class:`Library` or raises
:class:`SourceError` listing every problem as ``file:line: message``. A library is immutable;
the service swaps whole libraries, so a request never sees half of one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from engine.cards import CardContext, CardTemplate, TemplateKey, build_card, card_templates, template_key
from engine.examples import gene_example_problems, rule_example_problems
from engine.genes import GeneDefinition, parse_gene_file
from engine.matching import Match, StrengthTable, match_orders
from engine.orders import Order
from engine.results import GeneResult, ReportedResult, interpret
from engine.rules import SUMMARY_LIMIT, Drug, Rule
from engine.yamlsource import Problem, SourceError, YamlDocument, load_yaml


@dataclass(frozen=True)
class Library:
    """Validated gene definitions and rules, with the indexes the hot path needs."""

    directory: Path
    genes: Mapping[str, GeneDefinition]
    rules: tuple[Rule, ...]
    version: str
    rules_by_code: Mapping[str, tuple[tuple[Rule, Drug], ...]]
    card_templates: Mapping[TemplateKey, CardTemplate]

    def interpret(self, reports: Iterable[ReportedResult]) -> dict[str, GeneResult]:
        return interpret(self.genes, reports)

    def match(
        self, orders: Iterable[Order], results: Mapping[str, GeneResult], strengths: StrengthTable | None = None
    ) -> list[Match]:
        return match_orders(self.rules_by_code, orders, results, strengths)

    def card(self, match: Match, context: CardContext) -> dict[str, Any]:
        """The CDS Hooks card for a match that shows one."""
        return build_card(match, context, self.card_templates[template_key(match)])

    def rule(self, rule_id: str) -> Rule | None:
        return next((rule for rule in self.rules if rule.id == rule_id), None)


def load_library(directory: Path) -> Library:
    """Load and cross-check ``directory/genes/*.yaml`` and ``directory/*.yaml``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise SourceError([Problem(str(directory), 1, "rules directory not found")])
    problems: list[Problem] = []
    digest = hashlib.sha256()

    genes: dict[str, GeneDefinition] = {}
    gene_documents: dict[str, YamlDocument] = {}
    broken: set[str] = set()  # genes whose file failed: rules using them are not reported again
    for path in sorted((directory / "genes").glob("*.yaml")):
        document = _read(path, directory, digest, problems)
        if document is None:
            broken.add(path.stem)
            continue
        try:
            gene = parse_gene_file(document)
        except SourceError as exc:
            problems.extend(exc.problems)
            broken.add(path.stem)
            continue
        if path.stem != gene.symbol:
            problems.append(document.problem(("gene",), f"the file for {gene.symbol} must be named {gene.symbol}.yaml"))
        genes[gene.symbol] = gene
        gene_documents[gene.symbol] = document

    rules: list[tuple[Rule, YamlDocument]] = []
    for path in sorted(directory.glob("*.yaml")):
        document = _read(path, directory, digest, problems)
        if document is None:
            continue
        rule = _parse_rule(document, genes, broken, problems)
        if rule is not None:
            rules.append((rule, document))

    problems.extend(_shared_code_problems(rules))
    if problems:
        raise SourceError(problems)
    loaded = tuple(rule for rule, _ in rules)
    library = Library(directory, genes, loaded, digest.hexdigest()[:16], _index_by_code(rules), card_templates(loaded))
    for symbol, document in gene_documents.items():
        problems.extend(gene_example_problems(genes[symbol], document))
    for rule, document in rules:
        problems.extend(rule_example_problems(library, rule, document))
    if problems:
        raise SourceError(problems)
    return library


def _read(path: Path, root: Path, digest, problems: list[Problem]) -> YamlDocument | None:
    try:
        document = load_yaml(path)
    except SourceError as exc:
        problems.extend(exc.problems)
        return None
    digest.update(str(path.relative_to(root)).encode() + b"\0" + document.text.encode() + b"\0")
    return document


def _parse_rule(
    document: YamlDocument, genes: Mapping[str, GeneDefinition], broken: set[str], problems: list[Problem]
) -> Rule | None:
    try:
        rule = Rule.model_validate(document.data)
    except ValidationError as exc:
        problems.extend(document.validation_problems(exc))
        return None
    if rule.gene in broken:
        return None
    found = _rule_problems(rule, document, genes)
    problems.extend(found)
    if found:
        return None
    version = hashlib.sha256(document.text.encode()).hexdigest()[:12]
    return rule.located(document.name, version)


def _rule_problems(rule: Rule, document: YamlDocument, genes: Mapping[str, GeneDefinition]) -> list[Problem]:
    problems = []
    if document.path.stem != rule.id:
        problems.append(document.problem(("id",), f"rule {rule.id} must be in a file named {rule.id}.yaml"))
    gene = genes.get(rule.gene)
    if gene is None:
        known = ", ".join(sorted(genes)) or "none"
        return [*problems, document.problem(("gene",), f"unknown gene {rule.gene!r} (defined genes: {known})")]
    seen: set[str] = set()
    for index, recommendation in enumerate(rule.recommendations):
        where = ("recommendations", index)
        if recommendation.phenotype not in gene.phenotypes:
            problems.append(
                document.problem(
                    (*where, "phenotype"),
                    f"{recommendation.phenotype!r} is not a {gene.symbol} phenotype "
                    f"(expected one of: {', '.join(gene.phenotypes)})",
                )
            )
        if recommendation.phenotype in seen:
            problems.append(document.problem((*where, "phenotype"), f"{recommendation.phenotype!r} is listed twice"))
        seen.add(recommendation.phenotype)
        for name in recommendation.suggest:
            if rule.alternative(name) is None:
                problems.append(
                    document.problem((*where, "suggest"), f"suggests {name!r}, which is not in alternatives")
                )
        problems.extend(_summary_problems(rule, recommendation.summary, recommendation.phenotype, document, where))
    for phenotype in gene.phenotypes:
        if phenotype not in seen:
            problems.append(
                document.problem(
                    ("recommendations",),
                    f"no recommendation for {gene.symbol} {phenotype!r}; every phenotype the gene defines "
                    "needs one (use tier: none for no card)",
                )
            )
    return problems


def _summary_problems(rule: Rule, summary: str | None, phenotype: str, document: YamlDocument, where) -> list[Problem]:
    if not summary:
        return []
    problems = []
    for drug in rule.drugs:
        text = summary.replace("{drug}", drug.name)
        if len(text) > SUMMARY_LIMIT:
            problems.append(
                document.problem(
                    (*where, "summary"),
                    f"summary for {drug.name} is {len(text)} characters; the limit is {SUMMARY_LIMIT}",
                )
            )
        missing = [name for name in (rule.gene, phenotype, drug.name) if name.casefold() not in text.casefold()]
        if missing:
            problems.append(
                document.problem(
                    (*where, "summary"), f"summary must name the gene, phenotype and drug; missing {', '.join(missing)}"
                )
            )
    return problems


def _shared_code_problems(rules: list[tuple[Rule, YamlDocument]]) -> list[Problem]:
    claimed: dict[tuple[str, str], Rule] = {}
    problems = []
    for rule, document in rules:
        for d, drug in enumerate(rule.drugs):
            for c, code in enumerate(drug.rxnorm):
                other = claimed.setdefault((rule.gene, code), rule)
                if other is not rule:
                    problems.append(
                        document.problem(
                            ("drugs", d, "rxnorm", c),
                            f"RxNorm {code} ({drug.name}) is already claimed for {rule.gene} by rule {other.id}",
                        )
                    )
    return problems


def _index_by_code(rules: list[tuple[Rule, YamlDocument]]) -> dict[str, tuple[tuple[Rule, Drug], ...]]:
    index: dict[str, list[tuple[Rule, Drug]]] = {}
    for rule, _ in rules:
        for drug in rule.drugs:
            for code in dict.fromkeys(drug.rxnorm):
                index.setdefault(code, []).append((rule, drug))
    return {code: tuple(entries) for code, entries in index.items()}
