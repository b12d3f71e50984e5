"""Curated cases for each kind of gene: activity scores, copy numbers, variant names, HLA status."""

from __future__ import annotations

import pytest

from engine.genotype.phenotyper import call_diplotype
from engine.genotype.results import ReportedResult


def call(library, gene, text):
    return call_diplotype(library.genes[gene], text)


@pytest.mark.parametrize(
    ("diplotype", "score", "phenotype"),
    [
        ("*1/*1", "2.0", "Normal Metabolizer"),
        ("*1/*2", "1.5", "Intermediate Metabolizer"),  # both IM, but CPIC keys phenytoin on the score
        ("*1/*3", "1.0", "Intermediate Metabolizer"),
        ("*2/*3", "0.5", "Poor Metabolizer"),
        ("*3/*3", "0.0", "Poor Metabolizer"),
    ],
)
def test_cyp2c9_activity_scores(library, diplotype, score, phenotype):
    result = call(library, "CYP2C9", diplotype)
    assert (result.activity_score, result.phenotype) == (score, phenotype)


@pytest.mark.parametrize(
    ("diplotype", "score", "phenotype"),
    [
        ("*1/*4", "1.0", "Intermediate Metabolizer"),
        ("*1/*1x2", "3.0", "Ultrarapid Metabolizer"),
        ("*1/*1x3", "≥4.0", "Ultrarapid Metabolizer"),  # three copies: CPIC's ≥3 bin
        ("*1/*1x≥3", "≥4.0", "Ultrarapid Metabolizer"),
        ("*4/*4x2", "0.0", "Poor Metabolizer"),
        ("*10/*17", "0.75", "Intermediate Metabolizer"),
        ("*1/*13 + *1", "2.0", "Normal Metabolizer"),  # a hybrid in tandem with a functional copy
    ],
)
def test_cyp2d6_copy_numbers_and_structures(library, diplotype, score, phenotype):
    result = call(library, "CYP2D6", diplotype)
    assert (result.activity_score, result.phenotype) == (score, phenotype)


def test_cyp2d6_unknown_copy_number_is_indeterminate_where_it_matters(library):
    assert call(library, "CYP2D6", "*1/*2xN").phenotype == "Ultrarapid Metabolizer"  # 3.0 or ≥4.0
    assert call(library, "CYP2D6", "*2xN/*4").phenotype == "Indeterminate"  # 2.0 (normal) or ≥3.0


@pytest.mark.parametrize(
    ("diplotype", "score", "phenotype"),
    [
        ("Reference/Reference", "2.0", "Normal Metabolizer"),
        ("c.1905+1G>A (*2A)/Reference", "1.0", "Intermediate Metabolizer"),
        ("c.1129-5923C>G, c.1236G>A (HapB3)/Reference", "1.5", "Intermediate Metabolizer"),  # commas inside a name
        ("c.1905+1G>A (*2A)/c.1679T>G (*13)", "0.0", "Poor Metabolizer"),
    ],
)
def test_dpyd_variant_names(library, diplotype, score, phenotype):
    result = call(library, "DPYD", diplotype)
    assert (result.activity_score, result.phenotype) == (score, phenotype)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("*15:02/*57:01", "*15:02 positive; *57:01 positive; *58:01 negative"),
        ("HLA-B*57:01:01/HLA-B*44:02", "*15:02 negative; *57:01 positive; *58:01 negative"),
        ("hla#3.33.0#HLA-B*08:01/HLA-B*40:01", "*15:02 negative; *57:01 negative; *58:01 negative"),
        ("*58:01+*07:02", "*15:02 negative; *57:01 negative; *58:01 positive"),
        ("*15:11/*15:11", "*15:02 negative; *57:01 negative; *58:01 negative"),
    ],
)
def test_hla_b_status_of_every_allele_of_interest(library, text, expected):
    assert call(library, "HLA-B", text).phenotype == expected


@pytest.mark.parametrize("text", ["*57/*07:02", "B57/B07", "positive"])
def test_hla_names_that_are_not_alleles_are_indeterminate(library, text):
    assert call(library, "HLA-B", text).phenotype == "Indeterminate"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rs9923231 reference (C)/rs9923231 variant (T)", "-1639 AG"),
        ("-1639 GA", "-1639 AG"),
        ("-1639 AA", "-1639 AA"),
        ("VKORC1 rs9923231 C/T", "-1639 AG"),  # the HL7 IG's own example
    ],
)
def test_vkorc1_notations(library, text, expected):
    assert call(library, "VKORC1", text).phenotype == expected


def test_cyp4f2_alleles_not_known_to_lack_the_variant_are_indeterminate(library):
    assert call(library, "CYP4F2", "*1/*3").phenotype == "*3 positive"
    assert call(library, "CYP4F2", "*1/*2").phenotype == "*3 negative"
    assert call(library, "CYP4F2", "*1/*4").phenotype == "Indeterminate"  # *4 carries the *3 variant too


def test_a_reported_activity_score_without_diplotype(library):
    result = library.interpret([ReportedResult("CYP2D6", activity_score="1.5")])["CYP2D6"]
    assert (result.call.phenotype, result.call.activity_score) == ("Normal Metabolizer", "1.5")


def test_a_reported_hla_status_without_diplotype(library):
    result = library.interpret([ReportedResult("HLA-B", phenotype="HLA-B*57:01 positive")])["HLA-B"]
    assert result.call.keys == ("*57:01 positive",)


def test_a_diplotype_and_a_contradicting_score_trust_neither(library):
    result = library.interpret([ReportedResult("CYP2D6", diplotype="*1/*4", activity_score="2.0")])["CYP2D6"]
    assert result.call.phenotype == "Indeterminate" and len(result.conflicting) == 2
