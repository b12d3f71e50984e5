"""Interpreting what labs report: diplotypes, phenotypes, both, and disagreements."""

from __future__ import annotations

from engine.genotype.results import ReportedResult


def interpret(library, *reports):
    return library.interpret(reports)["CYP2C19"]


def test_a_reported_phenotype_is_matched_to_the_cpic_term(library):
    for text in ("Poor metabolizer", "poor  METABOLIZER", "CYP2C19 Poor Metabolizer"):
        assert interpret(library, ReportedResult("CYP2C19", phenotype=text)).call.phenotype == "Poor Metabolizer"


def test_an_unknown_phenotype_text_is_indeterminate(library):
    result = interpret(library, ReportedResult("CYP2C19", phenotype="slow-ish"))
    assert result.call.phenotype == "Indeterminate" and "not a CYP2C19 phenotype term" in result.call.reason


def test_a_diplotype_and_a_matching_phenotype_agree(library):
    result = interpret(library, ReportedResult("CYP2C19", diplotype="*2/*2", phenotype="Poor metabolizer"))
    assert result.call.phenotype == "Poor Metabolizer" and not result.conflicting


def test_likely_phenotypes_agree_with_their_confirmed_loinc_answer(library):
    # LOINC has no "Likely" answers; CPIC applies the confirmed phenotype's recommendation.
    result = interpret(library, ReportedResult("CYP2C19", diplotype="*2/*9", phenotype="Poor metabolizer"))
    assert result.call.phenotype == "Likely Poor Metabolizer" and not result.conflicting


def test_a_diplotype_that_contradicts_its_phenotype_trusts_neither(library):
    result = interpret(library, ReportedResult("CYP2C19", diplotype="*2/*2", phenotype="Normal metabolizer"))
    assert result.call.phenotype == "Indeterminate"
    assert {other.call.phenotype for other in result.conflicting} == {"Poor Metabolizer", "Normal Metabolizer"}


def test_repeated_agreeing_results_are_one_result(library):
    result = interpret(
        library,
        ReportedResult("CYP2C19", diplotype="*2/*2", effective="2020-01-01"),
        ReportedResult("CYP2C19", phenotype="Poor metabolizer", effective="2023-01-01"),
    )
    assert result.call.phenotype == "Poor Metabolizer" and result.call.diplotype == "*2/*2"


def test_disagreeing_results_are_indeterminate_and_both_kept(library):
    result = interpret(
        library,
        ReportedResult("CYP2C19", diplotype="*1/*2", effective="2020-01-01"),
        ReportedResult("CYP2C19", diplotype="*2/*2", effective="2023-01-01"),
    )
    assert result.call.phenotype == "Indeterminate"
    assert [other.call.diplotype for other in result.conflicting] == ["*2/*2", "*1/*2"]


def test_an_uninterpretable_result_does_not_hide_a_good_one(library):
    result = interpret(
        library, ReportedResult("CYP2C19", diplotype="*1/*99"), ReportedResult("CYP2C19", diplotype="*1/*2")
    )
    assert result.call.phenotype == "Intermediate Metabolizer"


def test_genes_without_definitions_are_ignored(library):
    assert library.interpret([ReportedResult("ABCB1", diplotype="*1/*2")]) == {}
