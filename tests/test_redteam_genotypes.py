"""Red team of the genotype -> phenotype stage: notations and FHIR encodings the team did not write.

Each test is a case where the engine gave a confident answer it should not have (a lab's own
words contradicting it, two codings or components of one result disagreeing, a result that says
nothing about the allele a drug depends on), checked against CPIC's terms. The product rule:
an unknown, ambiguous or self-contradicting result is never read as a confident phenotype.
"""

from __future__ import annotations

import time

import pytest

from engine.genotype.calls import INDETERMINATE
from engine.genotype.phenotyper import _call_cached, call_diplotype
from tests.fhirdata import LOINC, TBD, genotype, hook_request, implication, medication_request

# --- a phenotype written after a single-position genotype ------------------------------------------

# CPIC's SLCO1B1 table: c.521 TC is Decreased Function, CC Poor Function. A lab line whose own
# phenotype contradicts its genotype is Indeterminate, as it is for star-allele diplotypes.
CONTRADICTED = [
    ("SLCO1B1", "rs4149056 C/T Poor Function"),
    ("SLCO1B1", "rs4149056 T/T (Decreased Function)"),
    ("SLCO1B1", "c.521T>C heterozygous Normal Function"),
]


@pytest.mark.parametrize(("gene", "written"), CONTRADICTED)
def test_a_single_position_genotype_contradicted_by_its_own_phenotype_is_indeterminate(library, gene, written):
    call = call_diplotype(library.genes[gene], written)
    assert call.phenotype == INDETERMINATE, call
    assert "stated" in (call.reason or "")


def test_a_single_position_genotype_with_the_phenotype_it_gives_is_read(library):
    call = call_diplotype(library.genes["SLCO1B1"], "rs4149056 C/C Poor Function")
    assert call.phenotype == "Poor Function"


# --- through a hook call ---------------------------------------------------------------------------

CLOPIDOGREL, CODEINE, ABACAVIR, CARBAMAZEPINE = "32968", "2670", "190521", "2002"


def _cards(client, *, genotypes=(), implications=(), drug=CLOPIDOGREL) -> list[tuple[str, str]]:
    body = hook_request(
        genotypes=list(genotypes) or None,
        implications=list(implications) or None,
        orders=[medication_request(code=drug)],
    )
    response = client.post("/cds-services/pgx-order-select", json=body)
    assert response.status_code == 200, response.text
    return [(card["indicator"], card["summary"]) for card in response.json()["cards"]]


def _indeterminate(cards: list[tuple[str, str]]) -> bool:
    return len(cards) == 1 and cards[0][0] == "info" and "Indeterminate" in cards[0][1]


# --- an HLA status for one allele says nothing about the others -------------------------------------


@pytest.mark.parametrize(
    ("stated", "drug", "untested"),
    [
        ("HLA-B*57:01 negative", CARBAMAZEPINE, "HLA-B*15:02"),  # the abacavir screen, then carbamazepine
        ("HLA-B*58:01 not detected", ABACAVIR, "HLA-B*57:01"),  # the allopurinol screen, then abacavir
    ],
)
def test_a_status_for_another_allele_keeps_the_card_that_asks_for_the_test(client, stated, drug, untested):
    """Before: the partial result matched no recommendation, so the pre-test card vanished too (silence)."""
    cards = _cards(client, genotypes=[genotype("HLA-B", stated)], drug=drug)
    assert [indicator for indicator, _ in cards] == ["warning"]
    assert f"No {untested} result on file" in cards[0][1]


def test_a_status_for_the_allele_the_drug_depends_on_is_still_read(client):
    assert _cards(client, genotypes=[genotype("HLA-B", "HLA-B*57:01 negative")], drug=ABACAVIR) == []
    [(indicator, _)] = _cards(client, genotypes=[genotype("HLA-B", "HLA-B*57:01 detected")], drug=ABACAVIR)
    assert indicator == "critical"


# --- one FHIR result whose parts disagree ----------------------------------------------------------


def _phenotype_component(code: tuple[str, str], value: dict) -> dict:
    return {"code": {"coding": [{"system": code[0], "code": code[1]}]}, "valueCodeableConcept": value}


def test_a_genotype_whose_text_and_coding_disagree_is_indeterminate(client):
    """Before: the text was read and the coding ignored, so *1/*1 (no card) hid a coded *2/*2."""
    obs = genotype("CYP2C19", "*2/*2")
    obs["valueCodeableConcept"]["text"] = "CYP2C19 *1/*1"
    assert _indeterminate(_cards(client, genotypes=[obs]))


def test_a_genotype_whose_two_codings_disagree_is_indeterminate(client):
    obs = genotype("CYP2C19", "*2/*2")
    obs["valueCodeableConcept"]["coding"].append({"system": "urn:lab", "code": "CYP2C19 *1/*1"})
    assert _indeterminate(_cards(client, genotypes=[obs]))


def test_a_genotype_whose_text_and_coding_agree_is_read(client):
    """The IG's ClinVar style: an opaque code beside a readable display is not a disagreement."""
    obs = genotype("CYP2C19", "*2/*2", style="clinvar")
    obs["valueCodeableConcept"]["text"] = "CYP2C19 *2|*2"
    [(indicator, summary)] = _cards(client, genotypes=[obs])
    assert indicator == "critical" and "Poor Metabolizer" in summary


@pytest.mark.parametrize(
    ("code", "value"),
    [
        ((LOINC, "53040-2"), {"coding": [{"system": LOINC, "code": "LA9657-3", "display": "Poor metabolizer"}]}),
        ((TBD, "therapeutic-implication"), {"text": "Poor Metabolizer"}),
    ],
)
def test_a_genotype_whose_phenotype_component_contradicts_it_is_indeterminate(client, code, value):
    """Before: *1/*1 with the lab's own "Poor metabolizer" beside it gave no card (normal)."""
    obs = genotype("CYP2C19", "*1/*1")
    obs["component"].append(_phenotype_component(code, value))
    assert _indeterminate(_cards(client, genotypes=[obs]))


def test_a_genotype_whose_phenotype_component_agrees_is_read(client):
    obs = genotype("CYP2C19", "*2/*2")
    obs["component"].append(_phenotype_component((LOINC, "53040-2"), {"text": "Poor metabolizer"}))
    [(indicator, summary)] = _cards(client, genotypes=[obs])
    assert indicator == "critical" and "Poor Metabolizer" in summary


def test_an_implication_whose_code_and_text_disagree_is_indeterminate(client):
    """Before: the LOINC answer (Poor) was taken and the text (Normal) ignored."""
    value = {
        "coding": [{"system": LOINC, "code": "LA9657-3", "display": "Poor metabolizer"}],
        "text": "Normal Metabolizer",
    }
    assert _indeterminate(_cards(client, implications=[implication(value)]))


def test_an_implication_whose_code_and_display_agree_is_read(client):
    value = {
        "coding": [{"system": LOINC, "code": "LA9657-3", "display": "Poor metabolizer"}],
        "text": "Poor Metabolizer",
    }
    [(indicator, _)] = _cards(client, implications=[implication(value)])
    assert indicator == "critical"


# --- unambiguous spellings that were refused (cheap to read, checked both ways) ---------------------


@pytest.mark.parametrize(
    ("gene", "written", "canonical"),
    [
        ("CYP2D6", "*1/*4×2", "*1/*4x2"),  # the multiplication sign some reports print
        ("CYP2D6", "*2×2/*9", "*2x2/*9"),
        ("CYP2C19", "*1/*2 — IM", "*1/*2"),  # an em dash before the phenotype
    ],
)
def test_a_standard_spelling_is_read_as_its_canonical_diplotype(library, gene, written, canonical):
    definitions = library.genes[gene]
    expected, call = call_diplotype(definitions, canonical), call_diplotype(definitions, written)
    assert expected.definite
    assert (call.phenotype, call.activity_score) == (expected.phenotype, expected.activity_score), call.reason


def test_an_em_dash_does_not_hide_a_contradicting_phenotype(library):
    assert call_diplotype(library.genes["CYP2C19"], "*1/*2 — PM").phenotype == INDETERMINATE


# --- two qualifiers that contradict each other ----------------------------------------------------

# Before: only the last word was kept ("*1/*2 PM IM" was a confident Intermediate Metabolizer).


@pytest.mark.parametrize(
    ("gene", "written"),
    [
        ("CYP2C19", "*1/*2 PM IM"),
        ("CYP2C19", "*1/*2 (Poor Metabolizer) (Intermediate Metabolizer)"),
        ("CYP2C19", "*1/*2 PM - Intermediate Metabolizer"),
        ("CYP2C19", "*2/*2 het hom"),
        ("CYP2C19", "*2/*2 (heterozygous) homozygous"),
        ("SLCO1B1", "rs4149056 C/C Decreased Function Poor Function"),
    ],
)
def test_two_qualifiers_that_contradict_each_other_are_indeterminate(library, gene, written):
    call = call_diplotype(library.genes[gene], written)
    assert call.phenotype == INDETERMINATE, call
    assert "stated both" in (call.reason or "")


def test_two_qualifiers_that_agree_are_read(library):
    call = call_diplotype(library.genes["CYP2C19"], "*1/*2 - Intermediate Metabolizer (IM)")
    assert call.phenotype == "Intermediate Metabolizer"
    assert call_diplotype(library.genes["CYP2C19"], "*2/*2 homozygous PM").phenotype == "Poor Metabolizer"


# --- a genotype without a gene-studied component ----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "drug", "untested"),
    [("B (reference)/B (reference)", ABACAVIR, "HLA-B*57:01"), ("A / B", CARBAMAZEPINE, "HLA-B*15:02")],
)
def test_a_g6pd_genotype_without_its_gene_is_not_read_as_an_hla_locus(client, value, drug, untested):
    """Before: the leading "B" (or "A") of a G6PD value named HLA-B (HLA-A), and the unreadable HLA
    result replaced the "test before starting" card with an Indeterminate one (or added one)."""
    obs = genotype("G6PD", value)
    del obs["component"]
    obs["valueCodeableConcept"] = {"text": value}
    cards = _cards(client, genotypes=[obs], drug=drug)
    assert [indicator for indicator, _ in cards] == ["warning"], cards
    assert f"No {untested} result on file" in cards[0][1]


def test_an_hla_typing_with_its_locus_letter_still_names_its_gene(client):
    obs = genotype("HLA-B", "*57:01/*07:02")
    del obs["component"]
    obs["valueCodeableConcept"] = {"text": "B*57:01/B*07:02"}
    assert [indicator for indicator, _ in _cards(client, genotypes=[obs], drug=ABACAVIR)] == ["critical"]


def test_a_result_that_disagrees_with_itself_is_not_settled_by_another(client):
    """Before: the self-contradicting result was Indeterminate and dropped when merged, so the other
    result on file (or the lab's phenotype beside it) decided alone: a confident Poor Metabolizer."""
    conflicting = genotype("CYP2C19", "*2/*2")
    conflicting["valueCodeableConcept"]["text"] = "CYP2C19 *1/*1"
    assert _indeterminate(_cards(client, genotypes=[conflicting, genotype("CYP2C19", "*2/*2", date="2019-01-01")]))
    conflicting["component"].append(_phenotype_component((LOINC, "53040-2"), {"text": "Poor metabolizer"}))
    assert _indeterminate(_cards(client, genotypes=[conflicting]))


# --- HLA statuses reported one allele at a time ------------------------------------------------------


def test_statuses_for_different_alleles_are_read_together(client):
    """Before: an abacavir screen (*57:01) and a carbamazepine screen (*15:02) on file "disagreed",
    so both drugs got an Indeterminate card although neither result contradicts the other."""
    screens = [genotype("HLA-B", "HLA-B*57:01 negative"), genotype("HLA-B", "HLA-B*15:02 negative", date="2024-02-01")]
    assert _cards(client, genotypes=screens, drug=ABACAVIR) == []
    screens[0] = genotype("HLA-B", "HLA-B*57:01 positive")
    assert [indicator for indicator, _ in _cards(client, genotypes=screens, drug=ABACAVIR)] == ["critical"]


def test_statuses_for_one_allele_that_contradict_each_other_stay_indeterminate(client):
    screens = [genotype("HLA-B", "HLA-B*57:01 negative"), genotype("HLA-B", "HLA-B*57:01 detected", date="2024-02-01")]
    [(indicator, summary)] = _cards(client, genotypes=screens, drug=ABACAVIR)
    assert indicator == "info" and "Indeterminate" in summary


# --- G6PD "A-": the hyphen is part of the allele's name ----------------------------------------------

# Before: the hyphen was taken for a separator before a trailing word, so "A- homozygous" was read as
# A/A, Normal, for a woman homozygous for the class III A- allele (CPIC: Deficient), and "B/A-
# heterozygous" as B/A, Normal, where CPIC gives a heterozygous woman Variable.


@pytest.mark.parametrize(
    ("written", "sex", "phenotype"),
    [
        ("A- homozygous", "female", "Deficient"),
        ("B/A- heterozygous", "female", "Variable"),
        ("B/A- (heterozygous)", "female", "Variable"),
        ("B/A- heterozygous", None, INDETERMINATE),  # a woman's Variable, a man cannot carry two alleles
        ("A/A- Normal", "female", INDETERMINATE),  # the lab's own phenotype does not fit A/A-
        ("A\u2013 homozygous", "female", INDETERMINATE),  # "A-" with an en dash: not the allele "A"
        ("B/A\u2013 heterozygous", "female", INDETERMINATE),
    ],
)
def test_g6pd_a_minus_keeps_its_hyphen_before_a_trailing_word(library, written, sex, phenotype):
    call = call_diplotype(library.genes["G6PD"], written, sex)
    assert call.phenotype == phenotype, call


def test_a_hyphen_glued_to_a_star_allele_is_not_dropped_by_guesswork(library):
    assert call_diplotype(library.genes["CYP2C19"], "*1/*2-IM").phenotype == INDETERMINATE
    assert call_diplotype(library.genes["CYP2C19"], "*1/*2 - IM").phenotype == "Intermediate Metabolizer"


# --- a single-position change written from the other base ---------------------------------------------

# -1639G>A (rs9923231 C>T) and c.521T>C change from the reference base. Before, "-1639 A>G homozygous"
# (and, while either strand was read, "rs9923231 A>G homozygous") were -1639 GG, "rs4149056 C>T
# homozygous" c.521 TT: the normal genotype, for a text that may as well mean the variant one.


@pytest.mark.parametrize(
    ("gene", "written"),
    [
        ("VKORC1", "-1639 A>G homozygous"),
        ("VKORC1", "rs9923231 T>C homozygous"),
        ("SLCO1B1", "rs4149056 C>T homozygous"),
    ],
)
def test_a_change_written_from_a_base_that_is_not_the_reference_is_indeterminate(library, gene, written):
    call = call_diplotype(library.genes[gene], written)
    assert call.phenotype == INDETERMINATE, call
    assert "not the reference base" in (call.reason or "")


def test_a_change_from_the_reference_base_is_read_on_its_names_strand(library):
    vkorc1 = library.genes["VKORC1"]
    assert call_diplotype(vkorc1, "rs9923231 C>T homozygous").phenotype == "-1639 AA"
    assert call_diplotype(vkorc1, "-1639 G>A heterozygous").phenotype == "-1639 AG"
    assert call_diplotype(vkorc1, "rs9923231 G>A heterozygous").phenotype == INDETERMINATE  # the other strand
    assert call_diplotype(library.genes["SLCO1B1"], "c.521T>C homozygous").phenotype == "Poor Function"


# --- an HLA allele of interest with a letter after its two fields ------------------------------------

# Before: "B*57:01P" (the P group of alleles sharing *57:01's binding-site protein) was compared at two
# fields as "*57:01P", another allele, so the abacavir result was "*57:01 negative". IMGT/HLA never
# puts a suffix on *57:01 itself, so such a name is neither *57:01 for certain nor another allele.


@pytest.mark.parametrize(
    ("gene", "written"),
    [
        ("HLA-B", "B*57:01P/B*07:02"),
        ("HLA-B", "HLA-B*58:01P positive"),
        ("HLA-B", "*5701N"),  # the pre-2010 spelling with an expression suffix
        ("HLA-A", "A*31:01P/A*02:01"),
    ],
)
def test_an_allele_of_interest_with_a_suffix_letter_is_indeterminate(library, gene, written):
    assert call_diplotype(library.genes[gene], written).phenotype == INDETERMINATE


def test_a_g_group_and_other_alleles_with_suffixes_are_still_read(library):
    hla_b = library.genes["HLA-B"]
    assert "*57:01 positive" in call_diplotype(hla_b, "B*57:01:01G/B*07:02").phenotype
    assert "*57:01 negative" in call_diplotype(hla_b, "B*15:11N/B*07:02P").phenotype


HOSTILE_TEXTS = {
    "a run of commas": "*1/*2" + "," * 20_000 + "x",
    "a run of semicolons": "*1/*2" + ";" * 20_000,
    "a run of dashes": "*1/*2" + "-" * 20_000 + "x",
    "separators before a score": "*1/*2" + ", " * 10_000 + "AS x",
    "open brackets": "*1/*2" + " (" * 10_000,
    "thousands of alternatives": " or ".join(["*1/*2"] * 5_000),
    "an HGVS strand of thousands": "c.[" + "1;" * 10_000 + "];[=]",
}


@pytest.mark.parametrize("gene", ["CYP2D6", "DPYD", "G6PD", "HLA-B"])
def test_hostile_genotype_texts_are_refused_in_linear_time(library, gene):
    """A 20 kB value must not cost seconds: a quadratic pattern once took 16 s of CPU per such text."""
    definitions = library.genes[gene]
    started = time.process_time()
    for text in HOSTILE_TEXTS.values():
        assert definitions.call(text).phenotype == INDETERMINATE
    assert time.process_time() - started < 2.0


# --- runs of whitespace, absurd lengths and digits int() refuses -----------------------------------


@pytest.mark.parametrize("gene", ["CYP2D6", "CYP2C19", "DPYD"])
def test_runs_of_whitespace_are_read_in_linear_time(library, gene):
    """Under the length bound too: "\\s*;\\s*|\\s+or\\s+" (alternatives), "(.+?)\\s*x\\s*(\\d+)" (copy
    numbers) and "\\s*\\+\\s*" backtracked quadratically on a run of spaces (1 to 5 s of CPU for these 100)."""
    definitions = library.genes[gene]
    started = time.process_time()
    for extra in range(100):
        assert definitions.call("*1 x" + " " * (900 + extra) + "q/*2").phenotype == INDETERMINATE
    assert time.process_time() - started < 0.5
    assert definitions.call("*1" + " " * 500 + "/\t\n*2") == definitions.call("*1/*2")  # spacing does not matter


def test_a_value_too_long_for_a_genotype_is_neither_read_nor_cached(library):
    """Each cached call holds its text: 65,536 values of a few hundred kB would have held gigabytes."""
    cached = _call_cached.cache_info().currsize
    call = call_diplotype(library.genes["CYP2C19"], "*1/*2 " + "x" * 100_000)
    assert call.phenotype == INDETERMINATE and call.diplotype is None
    assert len(call.reason or "") < 100  # the card and event log do not carry the value either
    assert _call_cached.cache_info().currsize == cached


HOSTILE_HOOK_VALUES = {
    "spaces after a diplotype": ("CYP2C19", CLOPIDOGREL, "*1/*2" + " " * 20_000 + "x"),  # 3.4 s of CPU before
    "spaces in a copy number": ("CYP2D6", CODEINE, "*1 x" + " " * 20_000 + "q/*2"),  # 19 s before
    "a 200 kB allele number": ("CYP2C19", CLOPIDOGREL, "*" + "1" * 200_000 + "/*2"),  # int(): a 500 before
    "a digit int() refuses": ("CYP2C19", CLOPIDOGREL, "*\u00b2/*1"),  # "²".isdigit(): a 500 before
    "a 200 kB activity score": ("CYP2D6", CODEINE, "*1/*2 " + "AS " * 70_000 + "1"),
}


@pytest.mark.parametrize("case", HOSTILE_HOOK_VALUES)
def test_a_hostile_genotype_value_is_indeterminate_at_the_cost_of_reading_the_body(client, case):
    """Through the app: an answer (not a 500), the gene Indeterminate, and CPU in milliseconds."""
    gene, drug, text = HOSTILE_HOOK_VALUES[case]
    started = time.process_time()
    cards = _cards(client, genotypes=[genotype(gene, text)], drug=drug)
    assert time.process_time() - started < 1.0
    assert _indeterminate(cards), cards


def test_a_reported_result_too_long_for_one_is_not_read(client):
    """A 3 MB HLA status list was read statement by statement: linear, but 1.4 s of CPU per call."""
    statuses = {"text": "HLA-B*57:01 positive; " * 136_000}
    started = time.process_time()
    cards = _cards(client, implications=[implication(statuses, drug_code=ABACAVIR)], drug=ABACAVIR)
    assert time.process_time() - started < 0.6
    assert _indeterminate(cards), cards
