"""The genes added for every CPIC drug: CYP2B6, ABCG2, CFTR, CACNA1S, RYR1, MT-RNR1 and G6PD.

Phenotypes are checked against CPIC's diplotype tables as PharmCAT ships them (a derived table in
tests/data, its source in its header); G6PD's reading by sex and the patient's sex reaching the
engine are checked through the service itself.
"""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import pytest

from engine.genotype.phenotyper import call_diplotype
from engine.genotype.results import ReportedResult
from hooks.fhir.patient_facts import patient_facts
from tests.fhirdata import genotype, hook_request, medication_request

TABLE = Path(__file__).parent / "data" / "cpic_new_gene_diplotypes.csv"
SELECT = "/cds-services/pgx-order-select"
RASBURICASE = "283821"


def _table() -> list[dict[str, str]]:
    with TABLE.open(encoding="utf-8") as handle:
        return list(csv.DictReader(line for line in handle if not line.startswith("#")))


def test_every_diplotype_of_cpic_tables_gets_cpics_phenotype(library):
    rows = _table()
    wrong = [
        (row["gene"], row["diplotype"], row["phenotype"], call.phenotype)
        for row in rows
        if (call := call_diplotype(library.genes[row["gene"]], row["diplotype"])).phenotype != row["phenotype"]
    ]
    assert len(rows) > 1500
    assert {row["gene"] for row in rows} == {"CYP2B6", "ABCG2", "CACNA1S", "CFTR"}
    assert wrong == []


@pytest.mark.parametrize(
    ("gene", "text", "phenotype"),
    [
        # "any listed variant present": one copy is enough, whatever the other allele
        ("RYR1", "Reference/c.7300G>A", "Malignant Hyperthermia Susceptibility"),
        ("RYR1", "c.418G>A/c.14918C>T", "Malignant Hyperthermia Susceptibility"),
        ("RYR1", "Reference/Reference", "Uncertain Susceptibility"),  # never "normal": MHS is not ruled out
        ("RYR1", "c.14364+1G>T/Reference", "Uncertain Susceptibility"),  # "+" inside a name is not a separator
        ("RYR1", "reference/C.7300G>A", "Malignant Hyperthermia Susceptibility"),  # case
        ("RYR1", "Reference/c.1A>G", "Indeterminate"),  # not in CPIC's table: no guess
        ("CACNA1S", "c.3257G>A/Reference", "Malignant Hyperthermia Susceptibility"),
        ("MT-RNR1", "m.1555A>G", "increased risk of aminoglycoside-induced hearing loss"),
        ("MT-RNR1", "1095T>C", "increased risk of aminoglycoside-induced hearing loss"),  # PharmCAT's spelling
        ("MT-RNR1", "m.961T>del+Cn", "uncertain risk of aminoglycoside-induced hearing loss"),
        ("MT-RNR1", "Reference", "normal risk of aminoglycoside-induced hearing loss"),
        ("CFTR", "F508del/F508del", "ivacaftor non-responsive in CF patients"),
        ("CFTR", "3849+10kbC->T/F508del", "ivacaftor responsive in CF patients"),
        ("CFTR", "G542X/F508del", "Indeterminate"),
    ],
)
def test_presence_genes(library, gene, text, phenotype):
    assert call_diplotype(library.genes[gene], text).phenotype == phenotype


# G6PD rows as CPIC's table gives them (PharmCAT phenotype/G6PD.json): a female's pair, a male's one allele.
@pytest.mark.parametrize(
    ("text", "sex", "phenotype"),
    [
        ("A- 202A_376G/B (reference)", "female", "Variable"),
        ("202G>A_376A>G_1264C>G/A", "female", "Variable"),
        ("202G>A_376A>G_1264C>G/202G>A_376A>G_1264C>G", "female", "Deficient with CNSHA"),
        ("202G>A_376A>G_1264C>G/Aachen", "female", "Deficient with CNSHA"),
        ("202G>A_376A>G_1264C>G/Abeno", "female", "Deficient"),
        ("A- 202A_376G/Hammersmith", "female", "Deficient"),
        ("A- 202A_376G/Mira d'Aire", "female", "Variable"),
        ("A/B (reference)", "female", "Normal"),
        ("A/Gidra", "female", "Indeterminate"),
        ("202G>A_376A>G_1264C>G/Dagua", "female", "Indeterminate"),
        ("A- 202A_376G", "male", "Deficient"),
        ("Aachen", "male", "Deficient with CNSHA"),
        ("B (reference)", "male", "Normal"),
        ("Papua", "male", "Indeterminate"),
    ],
)
def test_g6pd_follows_cpics_table_for_each_sex(library, text, sex, phenotype):
    assert call_diplotype(library.genes["G6PD"], text, sex).phenotype == phenotype


def test_g6pd_never_guesses_the_sex(library):
    gene = library.genes["G6PD"]
    # A heterozygous result means Variable for a female; a male cannot carry two different alleles.
    unknown = call_diplotype(gene, "A- 202A_376G/B (reference)")
    assert unknown.phenotype == "Indeterminate"
    assert "sex is needed" in unknown.reason
    male = call_diplotype(gene, "A- 202A_376G/B (reference)", "male")
    assert (male.phenotype, male.reason) == ("Indeterminate", "two different alleles reported for a male patient")
    assert call_diplotype(gene, "A- 202A_376G", "female").phenotype == "Indeterminate"
    # Where every reading agrees, the sex is not needed.
    assert call_diplotype(gene, "A- 202A_376G").phenotype == "Deficient"
    assert call_diplotype(gene, "A- 202A_376G/A- 202A_376G").phenotype == "Deficient"
    assert call_diplotype(gene, "A/B (reference)").phenotype == "Normal"
    # Other genes ignore the sex: one cache entry per diplotype.
    assert call_diplotype(library.genes["CYP2C19"], "*1/*2", "female") is call_diplotype(
        library.genes["CYP2C19"], "*1/*2"
    )


def test_the_patients_sex_comes_from_patient_gender():
    def sex(patient):
        return patient_facts({"patient": patient}, [], date(2026, 1, 1)).sex

    assert sex({"resourceType": "Patient", "gender": "female"}) == "female"
    assert sex({"resourceType": "Patient", "gender": "male"}) == "male"
    assert sex({"resourceType": "Patient", "gender": "unknown"}) is None
    assert sex({"resourceType": "Patient", "gender": "other"}) is None
    assert sex({"resourceType": "Patient"}) is None
    assert sex(None) is None


def test_interpret_passes_the_sex_to_g6pd_only(library):
    reports = [ReportedResult("G6PD", diplotype="A- 202A_376G/B (reference)"), ReportedResult("CYP2C19", "*1/*2")]
    assert library.interpret(reports, "female")["G6PD"].call.phenotype == "Variable"
    assert library.interpret(reports)["G6PD"].call.phenotype == "Indeterminate"
    assert library.interpret(reports, "female")["CYP2C19"].call.phenotype == "Intermediate Metabolizer"


def _rasburicase(client, g6pd: str | None, gender: str | None):
    genotypes = [genotype("G6PD", g6pd)] if g6pd else None
    body = hook_request(genotypes=genotypes, orders=[medication_request(code=RASBURICASE)])
    if not genotypes:
        empty = {"resourceType": "Bundle", "type": "searchset", "entry": []}
        body["prefetch"] = {"pgxGenotypes": empty, "pgxImplications": empty}
    if gender:
        body["prefetch"]["patient"] = {"resourceType": "Patient", "id": "example-patient-1", "gender": gender}
    response = client.post(SELECT, json=body)
    assert response.status_code == 200, response.text
    return response.json()["cards"]


def test_a_hook_call_reads_g6pd_by_the_patients_gender(client):
    [female] = _rasburicase(client, "A- 202A_376G/B (reference)", "female")
    assert female["indicator"] == "warning"
    assert female["summary"].startswith("G6PD Variable: measure G6PD enzyme activity")
    [unknown] = _rasburicase(client, "A- 202A_376G/B (reference)", None)
    assert unknown["summary"].startswith("G6PD Indeterminate: measure G6PD enzyme activity")
    assert "sex is needed" in unknown["detail"]
    [male] = _rasburicase(client, "A- 202A_376G", "male")
    assert male["indicator"] == "critical"
    assert male["summary"].startswith("G6PD Deficient: avoid rasburicase")
    assert _rasburicase(client, "B (reference)", "male") == []


def test_rasburicase_without_a_g6pd_result_gets_a_pretest_card(client):
    [card] = _rasburicase(client, None, "female")
    assert card["indicator"] == "warning"
    assert card["summary"].startswith("No G6PD result on file: test G6PD status before starting rasburicase")
