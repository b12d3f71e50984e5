"""Genotypes as labs and PharmCAT print them (issue 12 section 1): read by the engine, the CLI and the service alike.

Each notation is checked against the call its canonical diplotype gets, and against the phenotype
CPIC's tables give; whatever is ambiguous stays Indeterminate.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.genotype.calls import INDETERMINATE
from engine.genotype.phenotyper import call_diplotype
from pgx_loop.cli import main
from tests.fhirdata import genotype, hook_request, implication, medication_request
from tests.test_cli import pgx_loop
from tests.test_oracle import GENES, oracle_rows

# (gene, as written, the canonical diplotype it stands for, CPIC phenotype)
READ = [
    ("DPYD", "*1/*2A", "Reference/c.1905+1G>A (*2A)", "Intermediate Metabolizer"),
    ("DPYD", "*2A/*2A", "c.1905+1G>A (*2A)/c.1905+1G>A (*2A)", "Poor Metabolizer"),
    ("DPYD", "*1/*13", "Reference/c.1679T>G (*13)", "Intermediate Metabolizer"),
    ("DPYD", "c.1905+1G>A/c.1905+1G>A", "c.1905+1G>A (*2A)/c.1905+1G>A (*2A)", "Poor Metabolizer"),
    ("DPYD", "c.1905+1G>A heterozygous", "Reference/c.1905+1G>A (*2A)", "Intermediate Metabolizer"),
    ("DPYD", "c.2846A>T (heterozygous)", "Reference/c.2846A>T", "Intermediate Metabolizer"),
    ("DPYD", "c.2846A>T homozygous", "c.2846A>T/c.2846A>T", "Intermediate Metabolizer"),
    ("DPYD", "Reference/HapB3", "Reference/c.1129-5923C>G, c.1236G>A (HapB3)", "Intermediate Metabolizer"),
    ("DPYD", "No variants detected", "Reference/Reference", "Normal Metabolizer"),
    ("DPYD", "reference/c.1905+1g>a", "Reference/c.1905+1G>A (*2A)", "Intermediate Metabolizer"),
    ("DPYD", "*1/*2a", "Reference/c.1905+1G>A (*2A)", "Intermediate Metabolizer"),
    # HGVS's genotype notation: one bracket per strand, "=" the reference.
    ("DPYD", "c.[1905+1G>A];[=]", "Reference/c.1905+1G>A (*2A)", "Intermediate Metabolizer"),
    ("DPYD", "c.[2846A>T];[1905+1G>A]", "c.1905+1G>A (*2A)/c.2846A>T", "Poor Metabolizer"),
    ("DPYD", "c.[=];[=]", "Reference/Reference", "Normal Metabolizer"),
    ("DPYD", "c.[498G>A;2933A>G];[=]", "Reference/c.2933A>G", "Intermediate Metabolizer"),
    # Phased multi-variant strands: the lowest-activity variant of each (0.5 and 0.0 -> 1.0 + 0.0).
    ("DPYD", "[c.498G>A + c.2582A>G]/[c.2846A>T + c.2933A>G]", "c.498G>A/c.2933A>G", "Intermediate Metabolizer"),
    ("DPYD", "Reference/[c.85T>C (*9A) + c.3067C>A]", "Reference/c.85T>C (*9A)", "Normal Metabolizer"),
    ("DPYD", "[c.2846A>T + c.1905+1G>A]/Reference", "Reference/c.1905+1G>A (*2A)", "Intermediate Metabolizer"),
    ("UGT1A1", "(TA)6/(TA)7", "*1/*28", "Intermediate Metabolizer"),
    ("UGT1A1", "(TA)7/(TA)7", "*28/*28", "Poor Metabolizer"),
    ("UGT1A1", "TA6/TA7", "*1/*28", "Intermediate Metabolizer"),
    ("UGT1A1", "(TA)5/(TA)6", "*1/*36", "Normal Metabolizer"),
    ("UGT1A1", "(TA)7/(TA)8", "*28/*37", "Poor Metabolizer"),
    ("SLCO1B1", "rs4149056 T/C", "rs4149056 C/rs4149056 T", "Decreased Function"),
    ("SLCO1B1", "rs4149056 TT", "rs4149056 T/rs4149056 T", "Normal Function"),
    ("SLCO1B1", "rs4149056 C/C", "rs4149056 C/rs4149056 C", "Poor Function"),
    ("SLCO1B1", "c.521T>C heterozygous", "rs4149056 C/rs4149056 T", "Decreased Function"),
    ("SLCO1B1", "c.521T>C homozygous", "rs4149056 C/rs4149056 C", "Poor Function"),
    ("SLCO1B1", "rs4149056 C/rs4149056 T", "rs4149056 C/rs4149056 T", "Decreased Function"),
    ("SLCO1B1", "*1A/*1B", "*1/*37", "Normal Function"),
    ("SLCO1B1", "*1B/*15", "*15/*37", "Decreased Function"),
    ("SLCO1B1", "*1A/*17", "*1/*15", "Decreased Function"),
    ("CYP2D6", "*1/*36+*10", "*1/*36 + *10", "Normal Metabolizer"),
    ("CYP2D6", "*4+*68/*1", "*1/*68 + *4", "Intermediate Metabolizer"),
    ("CYP2D6", "*1/*1xN", "*1/*1x2", "Ultrarapid Metabolizer"),
    ("CYP2D6", "*4/*4xN", "*4/*4x2", "Poor Metabolizer"),
    ("CYP2D6", "*1/*4xN", "*1/*4x2", "Intermediate Metabolizer"),
    ("CYP2D6", "*1/*4XN", "*1/*4x2", "Intermediate Metabolizer"),
    ("HLA-B", "B*57:01/B*07:02", "*57:01/*07:02", "*15:02 negative; *57:01 positive; *58:01 negative"),
    # An activity score written after the genotype must be the one the alleles give.
    ("CYP2D6", "*1/*2 (AS 2.0)", "*1/*2", "Normal Metabolizer"),
    ("CYP2D6", "*1/*4, activity score 1.0", "*1/*4", "Intermediate Metabolizer"),
    ("CYP2D6", "*1/*4 Intermediate Metabolizer (AS 1)", "*1/*4", "Intermediate Metabolizer"),
    ("CYP2C9", "*1/*3 AS=1.0", "*1/*3", "Intermediate Metabolizer"),
    ("DPYD", "c.[1905+1G>A];[=] (AS 1.0)", "Reference/c.1905+1G>A (*2A)", "Intermediate Metabolizer"),
    # The zygosity in front.
    ("CYP2C19", "Homozygous for *2", "*2/*2", "Poor Metabolizer"),
    ("DPYD", "Heterozygous for c.1905+1G>A", "Reference/c.1905+1G>A (*2A)", "Intermediate Metabolizer"),
    ("DPYD", "No variants identified", "Reference/Reference", "Normal Metabolizer"),
    # Pre-2010 HLA names, without colons.
    ("HLA-B", "HLA-B*5701", "*57:01", "*15:02 negative; *57:01 positive; *58:01 negative"),
    ("HLA-B", "B*5801/B*0702", "*58:01/*07:02", "*15:02 negative; *57:01 negative; *58:01 positive"),
    ("HLA-B", "B*570101/B*1502", "*57:01/*15:02", "*15:02 positive; *57:01 positive; *58:01 negative"),
    # PharmCAT's own outside-call test files (src/test/resources/.../outside_CYP2D6_G6PD.tsv, ...Suballeles.tsv).
    ("G6PD", "B (wildtype)/B (wildtype)", "B (reference)/B (reference)", "Normal"),
    ("CYP2D6", "*1.001/*2.034", "*1/*2", "Normal Metabolizer"),
    ("HLA-B", "*02:01/B*04:05", "*02:01/*04:05", "*15:02 negative; *57:01 negative; *58:01 negative"),
    # A name IMGT/HLA withdrew as identical to an allele of interest.
    ("HLA-B", "B*58:30/B*07:02", "*58:01/*07:02", "*15:02 negative; *57:01 negative; *58:01 positive"),
    # Aldy and other callers print PharmVar sub-alleles, inside a tandem too.
    ("CYP2D6", "*36.001+*10.001/*1.001", "*1/*36 + *10", "Normal Metabolizer"),
    ("CYP2D6", "*1/*2dup", "*1/*2x2", "Ultrarapid Metabolizer"),
    ("CYP2D6", "*4DUP/*4", "*4/*4x2", "Poor Metabolizer"),
    # VKORC1 -1639G>A written with the variant's name and the genotype's bases.
    ("VKORC1", "-1639G>A AG", "rs9923231 reference (C)/rs9923231 variant (T)", "-1639 AG"),
    ("VKORC1", "-1639G>A AA", "rs9923231 variant (T)/rs9923231 variant (T)", "-1639 AA"),
    ("VKORC1", "c.-1639G>A: GG", "rs9923231 reference (C)/rs9923231 reference (C)", "-1639 GG"),
    ("HLA-A", "A*02:01/A*24:02", "*02:01/*24:02", "*31:01 negative"),
    ("HLA-A", "A*31:01/A*02:01", "*31:01/*02:01", "*31:01 positive"),
    ("VKORC1", "-1639 G/A", "rs9923231 reference (C)/rs9923231 variant (T)", "-1639 AG"),
    ("VKORC1", "-1639 A/A", "rs9923231 variant (T)/rs9923231 variant (T)", "-1639 AA"),
    ("VKORC1", "-1639 G>A heterozygous", "rs9923231 reference (C)/rs9923231 variant (T)", "-1639 AG"),
    ("VKORC1", "c.-1639G>A homozygous", "rs9923231 variant (T)/rs9923231 variant (T)", "-1639 AA"),
    ("VKORC1", "c.-1639G>A/c.-1639G>A", "rs9923231 variant (T)/rs9923231 variant (T)", "-1639 AA"),
    ("VKORC1", "rs9923231 C/T", "rs9923231 reference (C)/rs9923231 variant (T)", "-1639 AG"),
    ("CYP2C19", "*1|*2", "*1/*2", "Intermediate Metabolizer"),
    ("CYP2C19", "*1/*2 (heterozygous)", "*1/*2", "Intermediate Metabolizer"),
    ("CYP2C19", "*2/*2 homozygous", "*2/*2", "Poor Metabolizer"),
    ("CYP2C19", "*1/*2 Intermediate Metabolizer", "*1/*2", "Intermediate Metabolizer"),
    ("CYP2C19", "*1/*2 (intermediate metabolizer)", "*1/*2", "Intermediate Metabolizer"),
    ("CYP2C19", "*2|*2 PM", "*2/*2", "Poor Metabolizer"),
    ("CYP2C19", "*2/*9 Poor Metabolizer", "*2/*9", "Likely Poor Metabolizer"),  # LOINC has no "Likely"
]

# Ambiguous or self-contradicting: never a call.
AMBIGUOUS = [
    ("DPYD", "c.2846A>T"),  # zygosity not stated
    ("DPYD", "c.1236G>A/Reference"),  # a HapB3 proxy, not a CPIC allele by itself
    ("DPYD", "c.498G>A/c.2582A>G/c.2846A>T"),  # unphased: which strand carries what is unknown
    ("DPYD", "[c.2846A>T + c.9999A>G]/Reference"),  # an unknown variant on a strand
    ("CYP2D6", "*1xN/*4"),  # two copies: normal; three or more: ultrarapid
    ("CYP2D6", "*1/*10xN"),  # no CPIC value for three or more copies of *10
    ("CYP2D6", "*1+*4/*1"),  # not a defined tandem, and CYP2D6 copies are not per-strand variants
    ("CYP2C19", "*2/*2 (heterozygous)"),
    ("CYP2C19", "*1/*2 homozygous"),
    ("CYP2C19", "*1/*2 Poor Metabolizer"),
    ("CYP2C19", "*2 heterozygous"),  # CYP2C19 names no reference for a lone allele
    ("SLCO1B1", "rs4149056 C/*1"),  # a single position mixed with a star allele
    ("SLCO1B1", "c.521T>C"),
    ("SLCO1B1", "*1C/*1A"),  # *1C became *38, since withdrawn
    ("VKORC1", "c.-1639G>A"),
    ("VKORC1", "-1639 G/C"),  # one base of each strand
    ("CYP2C19", "Heterozygous for *2"),  # and what else? CYP2C19 names no reference allele
    ("CYP2C19", "Homozygous for *2 (heterozygous)"),
    ("CYP2C19", "hom *1/*2"),
    ("CYP2D6", "*1/*4 (AS 2.0)"),  # the score stated is not the alleles' (1.0)
    ("CYP2D6", "*1/*1xN (AS 2.0)"),  # two copies or more: 3.0 or more
    ("CYP2C19", "*1/*2 (AS 1.0)"),  # CYP2C19 has no activity score
    ("CYP2D6", "*1/*2 (AS 2.0) AS 1.0"),
    ("DPYD", "c.[=;1905+1G>A];[=]"),  # "=" (no change) and a variant on one strand
    ("CYP2C19", "c.[681G>A];[=]"),  # CYP2C19 names no reference allele that "=" would be
    ("DPYD", "c.[1905+1G>A];[=] homozygous"),
    ("VKORC1", "rs9923231 A/T"),
    ("VKORC1", "rs9923231 AG"),  # coding-strand bases under the forward-strand name: or rare C>A, C>G alleles?
    ("VKORC1", "-1639 CT"),
    ("VKORC1", "1173C>T CT"),  # another position (rs9934438), not the one CPIC's table is written for
    ("CYP2D6", "*1/*4 DUP"),  # written apart: which allele is duplicated?
    ("HLA-B", "*57011"),  # a pre-2010 name with a 3-digit field: not split by guesswork
    ("HLA-B", "*57:01 positive, negative"),
    ("HLA-B", "B*07:02 detected"),  # says nothing about the alleles of interest
    ("HLA-B", "*57:01 positive; *57:01 negative"),
    ("HLA-A", "B*57:01/B*07:02"),  # an HLA-B typing given as HLA-A
]


@pytest.mark.parametrize(("gene", "written", "canonical", "phenotype"), READ)
def test_a_lab_notation_gets_the_call_of_its_canonical_diplotype(library, gene, written, canonical, phenotype):
    definitions = library.genes[gene]
    expected = call_diplotype(definitions, canonical)
    call = call_diplotype(definitions, written)
    assert call.phenotype == phenotype, (written, call.reason)
    if "xN" not in written and "dup" not in written.lower() and "[" not in written:
        assert (call.phenotype, call.activity_score, call.keys) == (
            expected.phenotype,
            expected.activity_score,
            expected.keys,
        )


@pytest.mark.parametrize(("gene", "written"), AMBIGUOUS)
def test_an_ambiguous_notation_stays_indeterminate_with_a_reason(library, gene, written):
    call = call_diplotype(library.genes[gene], written)
    assert call.phenotype == INDETERMINATE and call.reason, call


# Ambiguous calls as genotype callers (Cyrius: "*1/*46;*43/*45") and labs ("... or ...") print them.
AGREEING = [
    ("CYP2D6", "*1/*2 or *1/*35", "Normal Metabolizer", "2.0"),
    ("CYP2D6", "*1/*2x2;*1/*35x2", "Ultrarapid Metabolizer", "3.0"),
    ("CYP2C19", "*2/*2;*2/*3", "Poor Metabolizer", None),
]
DIFFERING = [
    ("CYP2D6", "*1/*4;*1/*10", "the possible diplotypes differ"),  # activity 1.0 against 1.25
    ("CYP2C19", "*2/*2 or *1/*1", "the possible diplotypes differ"),
    ("CYP2C19", "*2/*2;*2/*99", "allele not in the CYP2C19 definitions: *99"),
    ("CYP2D6", "*1/*46;*43/*45", "no CPIC activity value for *43"),
]


@pytest.mark.parametrize(("gene", "written", "phenotype", "score"), AGREEING)
def test_an_ambiguous_call_whose_diplotypes_agree_gets_their_phenotype(library, gene, written, phenotype, score):
    call = call_diplotype(library.genes[gene], written)
    assert (call.phenotype, call.activity_score) == (phenotype, score), call
    assert " or " in call.diplotype  # the card shows that the caller could not choose


@pytest.mark.parametrize(("gene", "written", "reason"), DIFFERING)
def test_an_ambiguous_call_whose_diplotypes_differ_is_indeterminate(library, gene, written, reason):
    call = call_diplotype(library.genes[gene], written)
    assert call.phenotype == INDETERMINATE and reason in call.reason, call


def test_an_unknown_copy_number_scores_as_at_least_its_lowest(library):
    call = call_diplotype(library.genes["CYP2D6"], "*1/*1xN")
    assert (call.activity_score, call.diplotype) == ("≥3.0", "*1/*1xN")
    assert call_diplotype(library.genes["CYP2D6"], "*1/*4xN").activity_score == "1.0"


def test_hla_status_words_in_a_genotype_and_a_phenotype_value(library):
    hla_b = library.genes["HLA-B"]
    for text, key in [
        ("HLA-B*57:01 detected", "*57:01 positive"),
        ("B*57:01 present", "*57:01 positive"),
        ("HLA-B*57:01 not detected", "*57:01 negative"),
        ("*57:01 absent", "*57:01 negative"),
        ("negative for HLA-B*57:01", "*57:01 negative"),
        ("HLA-B*58:01 POSITIVE", "*58:01 positive"),
        ("HLA-B*57:01, positive", "*57:01 positive"),
        ("B*58:01 heterozygous", "*58:01 positive"),
        ("*57:01 carrier", "*57:01 positive"),
        ("*57:01 non-carrier", "*57:01 negative"),
        ("HLA-B*5701 not detected", "*57:01 negative"),
    ]:
        assert call_diplotype(hla_b, text).keys == (key,), text
        reported = hla_b.reported(text)
        assert reported is not None and reported.keys == (key,), text


def test_the_gene_file_refuses_another_name_for_an_allele_it_does_not_define(tmp_path):
    import shutil

    from engine.documents.yamlsource import SourceError
    from engine.rulebook.library import load_library
    from tests.conftest import RULES

    shutil.copytree(RULES, tmp_path / "rules")
    path = tmp_path / "rules" / "genes" / "UGT1A1.yaml"
    path.write_text(path.read_text().replace('"(TA)8": "*37"', '"(TA)8": "*99"'))
    with pytest.raises(SourceError) as error:
        load_library(tmp_path / "rules")
    assert any("UGT1A1.yaml" in p.file and "'*99'" in p.message for p in error.value.problems)


# --- the normaliser never changes a call the engine already made ----------------------------------

ORACLE = [(gene, row["diplotype"], row["phenotype"]) for gene in GENES for row in oracle_rows(gene)]


def test_the_notation_reader_agrees_with_every_strict_call_cpic_tables_make(library):
    """Bypassing the strict reading: the reader alone gives every oracle diplotype the same call."""
    changed = []
    for gene, diplotype, _ in ORACLE:
        definitions = library.genes[gene]
        strict = definitions.call_as_written(diplotype)
        read = definitions.call_normalised(diplotype)
        if strict.definite and (read.phenotype, read.activity_score, read.keys) != (
            strict.phenotype,
            strict.activity_score,
            strict.keys,
        ):
            changed.append((gene, diplotype, strict.phenotype, read.phenotype))
    assert changed == []


@st.composite
def lab_spellings(draw, first: str, second: str, phenotype: str) -> str:
    """One correctly called diplotype as labs vary it: case, phased bar, spacing, a consistent qualifier."""
    if draw(st.booleans()):
        first, second = second, first
    case = draw(st.sampled_from([str, str.lower, str.upper]))
    separator = draw(st.sampled_from(["/", "|", " / ", " | "]))
    qualifier = draw(
        st.sampled_from(
            ["", f" ({phenotype})", f" {phenotype}", " (heterozygous)" if first != second else " (homozygous)"]
        )
    )
    return case(first) + separator + case(second) + qualifier


@settings(max_examples=300, deadline=None)
@given(data=st.data(), case=st.sampled_from(ORACLE))
def test_the_reader_never_changes_a_correct_call_however_it_is_spelled(library, data, case):
    gene, diplotype, phenotype = case
    definitions = library.genes[gene]
    strict = definitions.call_as_written(diplotype)
    if not strict.definite or definitions.kind == "allele presence":
        return
    first, second = diplotype.split("/")
    written = data.draw(lab_spellings(first, second, phenotype))
    call = definitions.call_normalised(written)
    # Another spelling is read as the same call, or not at all (upper-cased HGVS is not guessed at).
    assert call.phenotype in (strict.phenotype, INDETERMINATE), (written, call)
    if call.definite:
        assert call.activity_score == strict.activity_score, written


# --- through the CLI and through a hook call ----------------------------------------------------


@pytest.mark.parametrize(("gene", "written", "canonical", "phenotype"), READ[::3])
def test_the_cli_reads_the_same_notations(gene, written, canonical, phenotype):
    # In-process (the command sets up no logging): the same parsing and output, without a start-up per case;
    # the batch test below goes through a real process.
    result = CliRunner().invoke(main, ["phenotype", "--", gene, written])  # "--": "-1639 G/A" is not an option
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["phenotype"] == phenotype


def test_the_cli_batch_reads_them_too():
    rows = [("DPYD", '"*1/*2A"'), ("UGT1A1", "(TA)7/(TA)7"), ("CYP2D6", "*1/*1xN"), ("CYP2D6", "*1xN/*4")]
    result = pgx_loop("phenotype", "--batch", stdin="".join(f"{g},{d}\n" for g, d in rows))
    phenotypes = [line.split(",")[-2] for line in result.stdout.splitlines()]
    assert phenotypes == ["Intermediate Metabolizer", "Poor Metabolizer", "Ultrarapid Metabolizer", INDETERMINATE]


# (gene, as written, its canonical diplotype, drug RxNorm): the card must be the canonical one's.
HOOK_CASES = [
    ("DPYD", "*1/*2A", "Reference/c.1905+1G>A (*2A)", "4492"),
    ("DPYD", "[c.498G>A + c.2582A>G]/[c.2846A>T + c.2933A>G]", "c.498G>A/c.2933A>G", "4492"),
    ("UGT1A1", "(TA)7/(TA)7", "*28/*28", "343047"),
    ("SLCO1B1", "rs4149056 C/C", "*5/*5", "36567"),
    ("CYP2D6", "*1/*1xN", "*1/*1x2", "2670"),
    ("CYP2D6", "*4/*4xN", "*4/*4", "2670"),
    ("HLA-B", "B*57:01/B*07:02", "*57:01/*07:02", "190521"),
    ("HLA-B", "HLA-B*57:01 detected", "*57:01/*07:02", "190521"),
    ("HLA-B", "HLA-B*5701", "*57:01/*07:02", "190521"),
    ("G6PD", "Mediterranean", "Mediterranean, Dallas, Panama, Sassari, Cagliari, Birmingham", "283821"),
    ("CYP2C19", "*2|*2", "*2/*2", "32968"),
    ("CYP2C19", "*1/*2 (heterozygous)", "*1/*2", "32968"),
    ("CYP2C19", "*2/*2;*2/*3", "*2/*2", "32968"),
]


def _cards(client, gene: str, written: str, drug: str) -> list[dict]:
    body = hook_request(genotypes=[genotype(gene, written)], orders=[medication_request(code=drug)])
    response = client.post("/cds-services/pgx-order-select", json=body)
    assert response.status_code == 200, response.text
    return response.json()["cards"]


@pytest.mark.parametrize(("gene", "written", "canonical", "drug"), HOOK_CASES)
def test_a_hook_call_reads_the_notation_as_the_cli_does(client, gene, written, canonical, drug):
    cards = _cards(client, gene, written, drug)
    expected = _cards(client, gene, canonical, drug)
    assert expected and expected[0]["indicator"] in ("warning", "critical")  # a risk result, so a card
    assert [(c["indicator"], c["summary"]) for c in cards] == [(c["indicator"], c["summary"]) for c in expected]


def test_a_hook_call_keeps_an_ambiguous_notation_indeterminate(client):
    [card] = _cards(client, "CYP2D6", "*1xN/*4", "2670")
    assert card["indicator"] == "info" and "Indeterminate" in card["detail"]
    assert "copy number not stated" in card["detail"]


def test_an_hla_status_word_in_a_phenotype_value_is_read(client):
    obs = implication({"text": "HLA-B*57:01 not detected"}, drug_code="190521")
    obs["component"].append(
        {
            "code": {"coding": [{"system": "http://loinc.org", "code": "48018-6"}]},
            "valueCodeableConcept": {"coding": [{"system": "http://www.genenames.org", "code": "HLA-B"}]},
        }
    )
    body = hook_request(implications=[obs], orders=[medication_request(code="190521")])
    negative = client.post("/cds-services/pgx-order-select", json=body).json()["cards"]
    obs["component"][1]["valueCodeableConcept"] = {"text": "HLA-B*57:01 detected"}
    positive = client.post("/cds-services/pgx-order-select", json=body).json()["cards"]
    assert [card["indicator"] for card in positive] == ["critical"]
    assert [card["indicator"] for card in negative] != ["critical"]


def test_an_hla_typing_with_only_its_locus_letter_finds_its_gene(client):
    """No gene-studied component: the locus letter of "B*57:01/B*07:02" names HLA-B."""
    obs = genotype("HLA-B", "*57:01/*07:02")
    del obs["component"]
    obs["valueCodeableConcept"] = {"text": "B*57:01/B*07:02"}
    body = hook_request(genotypes=[obs], orders=[medication_request(code="190521")])
    cards = client.post("/cds-services/pgx-order-select", json=body).json()["cards"]
    assert [card["indicator"] for card in cards] == ["critical"]
