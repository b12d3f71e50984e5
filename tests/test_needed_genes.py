"""The service reads only the results of the genes its candidate rules need: the same cards as
reading every result, on a generated corpus over every rule and on the examples."""

from __future__ import annotations

from random import Random

import pytest

from engine.decision.cards import CardContext
from engine.decision.orders import Order
from engine.rulebook.library import Library
from engine.runtime.identifiers import Identifiers
from hooks.fhir.fhir_pgx import ResultReader
from tests.fhirdata import PATIENT, example, genotype, implication

CONTEXT = CardContext(PATIENT, "Practitioner/prescriber-1", Identifiers(b"k" * 32).stable_uuid)


def cards(library: Library, reader: ResultReader, resources: list, order: Order, genes=None) -> list[dict]:
    results = library.interpret(reader.read(resources, PATIENT, genes))
    return [library.card(match, CONTEXT) for match in library.match([order], results) if match.shows_card]


def patients(library: Library, count: int, seed: int) -> list[list[dict]]:
    """Prefetch values with results for many genes: untested, unknown alleles, disagreeing results,
    implications derived from a genotype or naming only the drug assessed."""
    rng = Random(seed)
    codes = sorted(library.rules_by_code)
    found = []
    for _ in range(count):
        observations = []
        for symbol, gene in sorted(library.genes.items()):
            roll = rng.random()
            if roll < 0.2:
                continue
            diplotypes = [*sorted(gene.examples), "*1/*999"]
            typed = genotype(symbol, rng.choice(diplotypes))
            observations.append(typed)
            if roll > 0.85:
                observations.append(genotype(symbol, rng.choice(diplotypes), date="2024-01-02"))
            if 0.6 < roll < 0.75 and gene.examples:
                phenotype = rng.choice(sorted(set(gene.examples.values())))
                derived = f"Observation/{typed['id']}"
                observations.append(implication({"text": phenotype}, drug_code=rng.choice(codes), derived_from=derived))
        observations.append(implication({"text": "Poor Metabolizer"}, drug_code=rng.choice(codes)))
        found.append([{"resourceType": "Bundle", "entry": [{"resource": o} for o in observations]}])
    return found


def test_reading_only_the_needed_genes_gives_the_same_cards_for_every_rule(library: Library):
    reader = ResultReader(library.genes, library.rules_by_code)
    compared = shown = narrowed = 0
    for resources in patients(library, 30, seed=13):
        everything = reader.read(resources, PATIENT)
        for code in sorted(library.rules_by_code):
            order = Order("MedicationRequest/draft-1", frozenset({code}))
            genes = library.genes_for([order])
            expected = cards(library, reader, resources, order)
            assert cards(library, reader, resources, order, genes) == expected, (code, sorted(genes))
            compared += 1
            shown += bool(expected)
            narrowed += len(reader.read(resources, PATIENT, genes)) < len(everything)
    # The comparison means something: cards were shown, and other genes' results were left out.
    assert shown > compared // 4 and narrowed > compared // 2


@pytest.mark.parametrize(
    "name",
    [
        "order-select-poor-metabolizer.json",
        "order-select-normal-metabolizer.json",
        "order-sign-intermediate-metabolizer.json",
    ],
)
def test_the_examples_give_the_same_cards_reading_only_the_needed_genes(library: Library, name: str):
    reader = ResultReader(library.genes, library.rules_by_code)
    request = example(name)
    draft = request["context"]["draftOrders"]["entry"][0]["resource"]
    codes = frozenset(c["code"] for c in draft["medicationCodeableConcept"]["coding"])
    order = Order(f"MedicationRequest/{draft['id']}", codes)
    resources = list(request["prefetch"].values())
    patient = request["context"]["patientId"]
    context = CardContext(patient, None, Identifiers(b"k" * 32).stable_uuid)
    genes = library.genes_for([order])
    assert genes == {"CYP2C19"}

    def shown(reports):
        results = library.interpret(reports)
        return [library.card(m, context) for m in library.match([order], results) if m.shows_card]

    assert shown(reader.read(resources, patient, genes)) == shown(reader.read(resources, patient))
    assert len(reader.read(resources, patient, genes)) < len(reader.read(resources, patient))


def test_a_triage_found_for_another_observation_is_not_trusted(library: Library):
    """``read`` takes the triages ``unread`` found by the Observation's ``id``: an id the interpreter
    gave again to another object (had the first been freed) must not lend that one's triage."""
    reader = ResultReader(library.genes, library.rules_by_code)
    needed = genotype("CYP2C19", "*2/*2")
    other = genotype("CYP2D6", "*1/*1")
    stale = {id(needed): (other, "genotype", True, "CYP2D6")}  # as if ``other`` had had that id
    read = reader.read([{"resourceType": "Bundle", "entry": [{"resource": needed}]}], PATIENT, {"CYP2C19"}, stale)
    assert [(result.gene, result.diplotype) for result in read] == [("CYP2C19", "CYP2C19 *2/*2")]  # as reported
