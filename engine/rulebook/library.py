"""Loading the knowledge base: every gene and rule file in a rules directory, validated together.

``load_library`` either returns a complete, consistent :class:`Library` or raises
:class:`SourceError` listing every problem as ``file:line: message``. A library is immutable;
the service swaps whole libraries, so a request never sees half of one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

from pydantic import ValidationError

from engine.decision.cards import card_templates
from engine.decision.learning import Learning
from engine.decision.lookup import RuleLookup, compile_rule, coverage
from engine.decision.products import name_key, parse_curated
from engine.decision.rules import GENERAL, SUMMARY_LIMIT, Drug, Recommendation, Rule
from engine.documents.spelling import did_you_mean
from engine.documents.yamlsource import Problem, SourceError, YamlDocument, load_yaml
from engine.genotype.gene_files import parse_gene_file
from engine.genotype.genes import GeneDefinition
from engine.rulebook.examples import gene_example_problems, rule_example_problems
from engine.rulebook.knowledge_base import Library, with_products

REPOSITORY = Path(__file__).resolve().parent.parent.parent


def default_rules_dir() -> Path:
    """The repository's ``rules/`` when running from a checkout, else ``./rules``."""
    bundled = REPOSITORY / "rules"
    return bundled if bundled.is_dir() else Path("rules")


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

    rules: list[tuple[RuleLookup, YamlDocument]] = []
    for path in sorted(directory.glob("*.yaml")):
        document = _read(path, directory, digest, problems)
        if document is None:
            continue
        lookup = _parse_rule(document, genes, broken, problems)
        if lookup is not None:
            rules.append((lookup, document))

    problems.extend(_shared_code_problems(rules))
    by_code, by_name = _index_by_code(rules), _index_by_name(rules)
    products = []
    # A rule file that failed to load would make its drug's products look uncovered: check then only the rest.
    covered = None if problems else by_code
    for path in sorted((directory / "products").glob("*.yaml")):
        document = _read(path, directory, digest, problems)
        if document is not None:
            index, found = parse_curated(document, covered)
            products.append(index)
            problems.extend(found)
    if problems:
        raise SourceError(problems)
    by_code, by_name = with_products(by_code, by_name, products)
    loaded = tuple(lookup.rule for lookup, _ in rules)
    library = Library(
        directory,
        genes,
        loaded,
        digest.hexdigest()[:16],
        {lookup.rule.id: lookup for lookup, _ in rules},
        by_code,
        by_name,
        card_templates(loaded),
    )
    for symbol, document in gene_documents.items():
        problems.extend(gene_example_problems(genes[symbol], document))
    for lookup, document in rules:
        problems.extend(rule_example_problems(library, lookup.rule, document))
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
) -> RuleLookup | None:
    try:
        rule = Rule.model_validate(document.data)
    except ValidationError as exc:
        problems.extend(document.validation_problems(exc))
        return None
    if broken.intersection(rule.gene_list):
        return None  # its gene file's own problems are already reported
    found = _rule_problems(rule, document, genes)
    if not found:
        lookup, compile_problems = compile_rule(rule, genes)
        found = [document.problem(where, message) for where, message in compile_problems]
        if not found:
            covered = coverage(lookup, genes)
            found = [document.problem(where, message) for where, message in covered.problems]
            for index, recommendation in enumerate(rule.recommendations):
                shown_for = covered.keys.get(index, set())
                found += _summary_problems(rule, recommendation, shown_for, document, ("recommendations", index))
    problems.extend(found)
    if found:
        return None
    version = hashlib.sha256(document.text.encode()).hexdigest()[:12]
    located = rule.located(document.name, version)
    return RuleLookup(located, lookup.recommendations)


def _rule_problems(rule: Rule, document: YamlDocument, genes: Mapping[str, GeneDefinition]) -> list[Problem]:
    problems = []
    if document.path.stem != rule.id:
        problems.append(document.problem(("id",), f"rule {rule.id} must be in a file named {rule.id}.yaml"))
    unknown = [symbol for symbol in rule.gene_list if symbol not in genes]
    if unknown:
        known = ", ".join(sorted(genes)) or "none"
        where = ("gene",) if rule.single_gene else ("genes",)
        hints = "".join(did_you_mean(symbol, genes) for symbol in unknown)
        message = f"unknown gene {', '.join(unknown)}{hints} (defined genes: {known})"
        return [*problems, document.problem(where, message)]
    problems.extend(_population_problems(rule, document))
    for index, recommendation in enumerate(rule.recommendations):
        where = ("recommendations", index)
        for name in recommendation.suggest:
            if rule.alternative(name) is None:
                problems.append(
                    document.problem((*where, "suggest"), f"suggests {name!r}, which is not in alternatives")
                )
    problems.extend(_learning_problems(rule, genes, document))
    if rule.pretest is not None:
        for gene in rule.pretest.genes:
            if gene not in rule.gene_list:
                problems.append(document.problem(("pretest", "genes"), f"{gene} is not one of the rule's genes"))
        for drug in rule.drugs:
            text = rule.pretest.summary.replace("{drug}", drug.name)
            if len(text) > SUMMARY_LIMIT:
                problems.append(
                    document.problem(
                        ("pretest", "summary"),
                        f"summary for {drug.name} is {len(text)} characters; the limit is {SUMMARY_LIMIT}",
                    )
                )
    return problems


def _learning_problems(rule: Rule, genes: Mapping[str, GeneDefinition], document: YamlDocument) -> list[Problem]:
    learning = rule.learning
    if learning is None:
        return []
    if not rule.single_gene:
        return [document.problem(("learning",), "learning is supported for single-gene rules only")]
    vocabulary = genes[rule.gene_list[0]].phenotypes
    problems, used = [], set()
    named = [(("learning", "reference"), p) for p in learning.reference] + [
        (("learning", "groups", i, "phenotypes"), p) for i, g in enumerate(learning.groups) for p in g.phenotypes
    ]
    for where, phenotype in named:
        if phenotype not in vocabulary:
            hint = did_you_mean(phenotype, vocabulary)
            problems.append(document.problem(where, f"{phenotype!r} is not a {rule.gene_list[0]} phenotype{hint}"))
        if phenotype in used:
            problems.append(document.problem(where, f"{phenotype!r} is in more than one group"))
        used.add(phenotype)
    return problems + _negative_control_problems(learning, document)


def _negative_control_problems(learning: Learning, document: YamlDocument) -> list[Problem]:
    """A negative control is named once, and none of its codes is the outcome's or another control's."""
    problems, names = [], set()
    owner = {(c.system, c.code): "the outcome" for c in learning.outcome.conditions}
    for i, control in enumerate(learning.negative_controls):
        where = ("learning", "negative_controls", i)
        if control.name in names:
            problems.append(document.problem((*where, "name"), f"negative control {control.name!r} is listed twice"))
        names.add(control.name)
        for j, code in enumerate(control.conditions):
            key = (code.system, code.code)
            if key in owner:
                problems.append(document.problem(
                    (*where, "conditions", j),
                    f"{code.system} {code.code} is already {owner[key]}: a negative control must be an outcome of "
                    "its own, one the genotype cannot affect",
                ))  # fmt: skip
            owner.setdefault(key, f"in negative control {control.name!r}")
    return problems


def _population_problems(rule: Rule, document: YamlDocument) -> list[Problem]:
    ids = [population.id for population in rule.populations]
    problems = []
    if rule.populations:
        defaults = [population.id for population in rule.populations if population.default]
        if len(defaults) != 1:
            problems.append(document.problem(("populations",), "exactly one population must be marked default: true"))
        if len(set(ids)) != len(ids):
            problems.append(document.problem(("populations",), "population ids must be unique"))
    allowed = set(ids) or {GENERAL}
    for index, recommendation in enumerate(rule.recommendations):
        if recommendation.population not in allowed:
            problems.append(
                document.problem(
                    ("recommendations", index, "population"),
                    f"population {recommendation.population!r} is not one of: {', '.join(sorted(allowed))}",
                )
            )
    return problems


def _summary_problems(
    rule: Rule, recommendation: Recommendation, keys: set[str], document: YamlDocument, where
) -> list[Problem]:
    """Within the limit for every drug and every result it can be shown for; names gene and drug."""
    summary = recommendation.summary
    if not summary or not keys:
        return []
    problems = []
    for drug in rule.drugs:
        texts = [summary.replace("{drug}", drug.name).replace("{phenotype}", key) for key in sorted(keys)]
        longest = max(texts, key=len)
        if len(longest) > SUMMARY_LIMIT:
            problems.append(
                document.problem(
                    (*where, "summary"),
                    f"summary for {drug.name} can reach {len(longest)} characters; the limit is {SUMMARY_LIMIT}: "
                    f"{longest!r}",
                )
            )
        for text in texts:
            if drug.name.casefold() not in text.casefold() or not any(
                gene.casefold() in text.casefold() for gene in rule.gene_list
            ):
                problems.append(
                    document.problem((*where, "summary"), f"summary must name the gene and the drug: {text!r}")
                )
                break
        if "{phenotype}" not in summary and rule.single_gene:
            values = recommendation.values_for(rule.gene_list[0], True)
            unnamed = [value for value in values if value.casefold() not in summary.casefold()]
            if unnamed:
                problems.append(
                    document.problem(
                        (*where, "summary"), f"summary must name the result ({', '.join(unnamed)}) or use {{phenotype}}"
                    )
                )
    return problems


def _shared_code_problems(rules: list[tuple[RuleLookup, YamlDocument]]) -> list[Problem]:
    claimed: dict[tuple[str, str], tuple[Rule, Drug]] = {}
    problems = []
    for lookup, document in rules:
        rule = lookup.rule
        for d, drug in enumerate(rule.drugs):
            for c, code in enumerate(drug.rxnorm):
                for gene in rule.gene_list:
                    other, owner = claimed.setdefault((gene, code), (rule, drug))
                    if other is not rule:
                        # Name the drug the code was first claimed for: listing omeprazole's code under
                        # pantoprazole is the usual slip, and "7646 (pantoprazole)" would hide it.
                        problems.append(
                            document.problem(
                                ("drugs", d, "rxnorm", c),
                                f"RxNorm {code} is already claimed for {gene} as {owner.name} by rule {other.id}; "
                                f"listed here under {drug.name}",
                            )
                        )
    return problems


def _index_by_code(rules: list[tuple[RuleLookup, YamlDocument]]) -> dict[str, tuple[tuple[RuleLookup, Drug], ...]]:
    index: dict[str, list[tuple[RuleLookup, Drug]]] = {}
    for lookup, _ in rules:
        for drug in lookup.rule.drugs:
            for code in dict.fromkeys(drug.rxnorm):
                index.setdefault(code, []).append((lookup, drug))
    return {code: tuple(entries) for code, entries in index.items()}


def _index_by_name(rules: list[tuple[RuleLookup, YamlDocument]]) -> dict[str, tuple[tuple[RuleLookup, Drug], ...]]:
    index: dict[str, list[tuple[RuleLookup, Drug]]] = {}
    for lookup, _ in rules:
        for drug in lookup.rule.drugs:
            index.setdefault(name_key(drug.name), []).append((lookup, drug))
    return {name: tuple(entries) for name, entries in index.items()}
