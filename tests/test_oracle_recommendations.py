"""Every rule gives CPIC's own recommendation, word for word, for every CPIC lookup key.

Runs against ../shared/pgx-oracle/recommendations_all_cpic.csv when that folder exists. Rows
for a gene a rule does not interpret are checked only where CPIC keys it "No Result";
warfarin's flowchart has no lookup keys and is checked elsewhere.
"""

from __future__ import annotations

import csv
from collections import defaultdict

import pytest

from engine.activity_score import ActivityScoreGene
from engine.calls import NO_RESULT, indeterminate
from engine.library import Library, load_library
from engine.results import GeneResult
from engine.rules import GENERAL
from tests.conftest import RULES
from tests.test_oracle import ORACLE


def _rows() -> dict[str, list[dict[str, str]]]:
    path = ORACLE / "recommendations_all_cpic.csv"
    if not path.exists():
        return {}
    by_drug: dict[str, list[dict[str, str]]] = defaultdict(list)
    with path.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["classification"] and not row["lookup_key"].startswith("flowchart"):
                by_drug[row["drug"]].append(row)
    return by_drug


ROWS = _rows()


def _drugs_with_rules() -> list[str]:
    try:
        library = load_library(RULES)
    except Exception:  # a broken rule set fails test_rule_files
        return []
    return sorted({drug.name for rule in library.rules for drug in rule.drugs} & set(ROWS))


def _text(value: str) -> str:
    return " ".join(value.split())


def _result(library: Library, gene: str, value: str) -> GeneResult | None:
    definition = library.genes[gene]
    if value == NO_RESULT:
        return None
    if value in ("n/a", "Indeterminate"):
        return GeneResult(indeterminate(gene, None, "CPIC key"))
    scored = isinstance(definition, ActivityScoreGene)
    call = definition.reported_score(value) if scored else definition.reported(value)
    assert call is not None, f"{gene} value {value!r} is not understood"
    return GeneResult(call)


REQUESTED = {  # the drugs the rule-library issue names (warfarin is a flowchart, checked in its own tests)
    "clopidogrel",
    "voriconazole",
    "citalopram",
    "escitalopram",
    "sertraline",
    "omeprazole",
    "lansoprazole",
    "pantoprazole",
    "dexlansoprazole",
    "phenytoin",
    "fosphenytoin",
    "azathioprine",
    "mercaptopurine",
    "thioguanine",
    "fluorouracil",
    "capecitabine",
    "abacavir",
    "carbamazepine",
    "oxcarbazepine",
    "allopurinol",
    "simvastatin",
    "codeine",
    "tramadol",
    "ondansetron",
    "tropisetron",
    "tacrolimus",
    "atazanavir",
    "amitriptyline",
    "nortriptyline",
}


def test_every_requested_drug_has_a_rule_checked_against_cpic(library: Library):
    if not ROWS:
        pytest.skip(f"{ORACLE} not present: the CPIC comparison runs only beside ../shared/pgx-oracle")
    watched = {drug.name for rule in library.rules for drug in rule.drugs}
    assert watched >= REQUESTED
    assert set(_drugs_with_rules()) >= REQUESTED


# CPIC rows that cannot all be given at once, each with why. For atomoxetine in children CPIC words the
# key "≥3.5" ("0.5 mg/kg and increase", "If < 200") differently from the keys around it ("0.5 mg/kg/day",
# "If <200"); a score of ≥3.5 also matches those keys' range, so the rule gives their wording.
CPIC_WORDING_VARIANTS = {("atomoxetine", "pediatrics", "CYP2D6=≥3.5")}


def _all_drugs() -> set[str]:
    path = ORACLE / "recommendations_all_cpic.csv"
    with path.open(encoding="utf-8") as handle:
        return {row["drug"] for row in csv.DictReader(handle)}


def test_every_cpic_drug_coverage_per_gene(library: Library):
    """Which CPIC drugs have a rule, per gene group; the report is printed for the closing note."""
    if not ROWS:
        pytest.skip(f"{ORACLE} not present: the CPIC comparison runs only beside ../shared/pgx-oracle")
    watched = {drug.name for rule in library.rules for drug in rule.drugs}
    groups: dict[str, set[str]] = defaultdict(set)
    for drug, rows in ROWS.items():
        genes = sorted({part.split("=", 1)[0] for row in rows for part in row["lookup_key"].split(";")})
        groups["+".join(genes)].add(drug)
    lines = []
    for genes, drugs in sorted(groups.items()):
        missing = sorted(drugs - watched)
        gap = f" (missing {', '.join(missing)})" if missing else ""
        lines.append(f"{genes}: {len(drugs) - len(missing)}/{len(drugs)}{gap}")
    print("\n" + "\n".join(lines))
    assert watched >= REQUESTED
    assert _all_drugs() - watched == KNOWN_MISSING


# CPIC drugs without a rule yet: no RxNorm ingredient code from a public source was at hand for them
# (they are not in CPIC's drug table in the oracle). Remove a drug from here when its rule lands.
KNOWN_MISSING = {"paromomycin", "plazomicin", "toluidine blue"}


@pytest.mark.parametrize("drug", _drugs_with_rules())
def test_cpic_recommendations_word_for_word(library: Library, drug: str):
    [rule] = [rule for rule in library.rules if any(entry.name == drug for entry in rule.drugs)]
    lookup = library.lookups[rule.id]
    populations = {population.cpic: population.id for population in rule.populations}
    checked, wrong = 0, []
    for row in ROWS[drug]:
        if (drug, row["population"], row["lookup_key"]) in CPIC_WORDING_VARIANTS:
            continue
        keys = dict(part.split("=", 1) for part in row["lookup_key"].split(";"))
        if any(gene not in rule.gene_list and value != NO_RESULT for gene, value in keys.items()):
            continue  # a gene this rule does not interpret
        results = {gene: _result(library, gene, keys.get(gene, NO_RESULT)) for gene in rule.gene_list}
        if all(result is None for result in results.values()):
            continue
        population = populations.get(row["population"], GENERAL) if rule.populations else GENERAL
        if rule.populations:
            assert row["population"] in populations, f"CPIC population {row['population']!r} has no rule population"
        found = lookup.find(results, population)
        checked += 1
        got = (found.spec.classification, _text(found.spec.recommendation)) if found else None
        # CPIC writes "N/A"/"n/a" where a combination has no advice; the schema calls it "No recommendation".
        classification = "No recommendation" if row["classification"] == "N/A" else row["classification"]
        text = "No recommendation" if row["recommendation"].strip() == "n/a" else row["recommendation"]
        expected = (classification, _text(text))
        if got != expected:
            wrong.append((row["population"], row["lookup_key"], expected, got))
    assert checked > 0
    assert wrong == [], f"{len(wrong)} of {checked} differ, e.g. {wrong[:2]}"
