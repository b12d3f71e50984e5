"""Comparing the rule library with a CPIC recommendations export, row by row.

The export has one row per CPIC recommendation: ``drug``, ``lookup_key`` (``CYP2C9=1.0;HLA-B=*15:02
negative``), ``population``, ``classification`` and ``recommendation``, as in CPIC's own data
(and ``recommendations_all_cpic.csv`` of the reference data). Each row is looked up in the rule
that watches its drug, exactly as a patient with that result would be, and the advice found is
compared with the row's, word for word (spacing aside). The outcome lists what a pharmacist has
to review after a CPIC update:

- changed: the library gives other words or another classification for a row's result;
- new: a row the library cannot give (a drug without a rule, a gene or result value the gene
  files do not know, a population the rule does not have);
- withdrawn: a drug or population the library advises on and the export no longer has.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from engine.decision.rules import GENERAL, Rule
from engine.genotype.activity_score import ActivityScoreGene
from engine.genotype.calls import NO_RESULT, indeterminate
from engine.genotype.results import GeneResult
from engine.rulebook.library import Library

REQUIRED = ("drug", "lookup_key", "population", "classification", "recommendation")
NO_ADVICE = "No recommendation"  # CPIC writes "N/A" / "n/a" where a combination has no advice


class ExportError(ValueError):
    """The file is not a CPIC recommendations export of the expected shape."""


@dataclass(frozen=True)
class CpicRow:
    drug: str
    lookup_key: str
    population: str
    classification: str
    recommendation: str

    @property
    def keys(self) -> dict[str, str]:
        return dict(part.split("=", 1) for part in self.lookup_key.split(";") if "=" in part)

    @property
    def advice(self) -> tuple[str, str]:
        classification = NO_ADVICE if self.classification == "N/A" else self.classification
        text = NO_ADVICE if self.recommendation.strip() == "n/a" else self.recommendation
        return classification, words(text)


@dataclass(frozen=True)
class Difference:
    kind: str  # "changed", "new" or "withdrawn"
    drug: str
    what: str  # the row or rule concerned, in words
    library: tuple[str, str] | None = None  # (classification, text) the library gives
    cpic: tuple[str, str] | None = None  # (classification, text) the export gives
    rule: str | None = None


@dataclass
class UpdateReport:
    rows: int = 0
    checked: int = 0
    differences: list[Difference] = field(default_factory=list)

    def of(self, kind: str) -> list[Difference]:
        return [difference for difference in self.differences if difference.kind == kind]


def words(text: str) -> str:
    return " ".join(text.split())


@dataclass(frozen=True)
class CpicExport:
    rows: tuple[CpicRow, ...]  # rows with a lookup key
    drugs: frozenset[str]  # every drug named, flowchart-only ones (warfarin) included


def read_export(path: Path) -> CpicExport:
    """The recommendation rows of an export (flowchart rows, e.g. warfarin's, have no lookup key)."""
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [column for column in REQUIRED if column not in (reader.fieldnames or [])]
        if missing:
            raise ExportError(f"{path}: not a CPIC recommendations export: no column {', '.join(missing)}")
        all_rows = [CpicRow(*(row[column] or "" for column in REQUIRED)) for row in reader]
    rows = tuple(
        row for row in all_rows if row.classification and row.lookup_key and not row.lookup_key.startswith("flowchart")
    )
    return CpicExport(rows, frozenset(row.drug for row in all_rows))


def compare(library: Library, export: CpicExport) -> UpdateReport:
    """Every row looked up in the library; what differs, what is new, what was withdrawn."""
    rows = export.rows
    report = UpdateReport(rows=len(rows))
    rules = {drug.name: rule for rule in library.rules for drug in rule.drugs}
    by_drug: dict[str, list[CpicRow]] = {}
    for row in rows:
        by_drug.setdefault(row.drug, []).append(row)
    for drug, drug_rows in sorted(by_drug.items()):
        rule = rules.get(drug)
        if rule is None:
            genes = sorted({gene for row in drug_rows for gene in row.keys})
            what = f"no rule watches {drug} ({'+'.join(genes)}, {len(drug_rows)} CPIC rows)"
            report.differences.append(Difference("new", drug, what))
            continue
        for row in drug_rows:
            _compare_row(library, rule, row, report)
        report.differences += _withdrawn_populations(rule, drug, drug_rows)
    for drug, rule in sorted(rules.items()):
        if drug not in export.drugs:
            what = f"the export has no row for {drug}"
            report.differences.append(Difference("withdrawn", drug, what, rule=rule.id))
    return report


def _compare_row(library: Library, rule: Rule, row: CpicRow, report: UpdateReport) -> None:
    described = f"[{row.population}] {row.lookup_key}"
    keys = row.keys
    foreign = [gene for gene, value in keys.items() if gene not in rule.gene_list and value != NO_RESULT]
    if foreign:
        what = f"{described}: the rule does not read {', '.join(foreign)}"
        report.differences.append(Difference("new", row.drug, what, cpic=row.advice, rule=rule.id))
        return
    results: dict[str, GeneResult | None] = {}
    for gene in rule.gene_list:
        value = keys.get(gene, NO_RESULT)
        result = _result(library, gene, value)
        if result is False:
            what = f"{described}: {gene} result {value!r} is not in the gene file"
            report.differences.append(Difference("new", row.drug, what, cpic=row.advice, rule=rule.id))
            return
        results[gene] = result  # type: ignore[assignment]
    if all(result is None for result in results.values()):
        return
    populations = {population.cpic: population.id for population in rule.populations}
    if rule.populations and row.population not in populations:
        what = f"{described}: population {row.population!r} is not in the rule"
        report.differences.append(Difference("new", row.drug, what, cpic=row.advice, rule=rule.id))
        return
    population = populations.get(row.population, GENERAL) if rule.populations else GENERAL
    found = library.lookups[rule.id].find(results, population)
    report.checked += 1
    given = (found.spec.classification, words(found.spec.recommendation)) if found else None
    if given != row.advice:
        report.differences.append(Difference("changed", row.drug, described, given, row.advice, rule.id))


def _result(library: Library, gene: str, value: str) -> GeneResult | bool | None:
    """The result a CPIC key stands for; None for "No Result"; False if the library cannot read it."""
    if value == NO_RESULT:
        return None
    definition = library.genes.get(gene)
    if definition is None:
        return False
    if value in ("n/a", "Indeterminate"):
        return GeneResult(indeterminate(gene, None, "CPIC key"))
    scored = isinstance(definition, ActivityScoreGene)
    call = definition.reported_score(value) if scored else definition.reported(value)
    return GeneResult(call) if call is not None else False


def _withdrawn_populations(rule: Rule, drug: str, rows: list[CpicRow]) -> list[Difference]:
    present = {row.population for row in rows}
    return [
        Difference("withdrawn", drug, f"population {population.cpic!r} has no row in the export", rule=rule.id)
        for population in rule.populations
        if population.cpic and population.cpic not in present
    ]


def summary_lines(report: UpdateReport, rule_files: Mapping[str, str]) -> list[str]:
    """The report in words, one difference per line, grouped by kind."""
    lines = [f"{report.rows} CPIC recommendation rows, {report.checked} looked up in the library"]
    for kind in ("changed", "new", "withdrawn"):
        found = report.of(kind)
        if not found:
            continue
        lines.append(f"{kind} ({len(found)}):")
        for difference in found:
            where = f" ({rule_files.get(difference.rule, difference.rule)})" if difference.rule else ""
            lines.append(f"  {difference.drug} {difference.what}{where}")
            if kind == "changed":
                lines.append(f"    library: {_advice(difference.library)}")
                lines.append(f"    CPIC:    {_advice(difference.cpic)}")
    if not report.differences:
        lines.append("no differences: the library gives CPIC's advice for every row")
    return lines


def _advice(advice: tuple[str, str] | None) -> str:
    return "(no recommendation found)" if advice is None else f"{advice[0]}: {advice[1]}"
