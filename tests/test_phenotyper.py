"""Diplotype -> phenotype for CYP2C19: notation-forgiving, meaning-exact, never a guess."""

from __future__ import annotations

import itertools

import pytest

from engine.genotype.phenotyper import call_diplotype
from engine.rulebook.library import Library


@pytest.fixture(scope="module")
def cyp2c19(library: Library):
    return library.genes["CYP2C19"]


@pytest.mark.parametrize(
    "text",
    [
        "*1/*2",
        "*2/*1",
        "CYP2C19*1/*2",
        "CYP2C19 *1/*2",
        "CYP2C19*1/CYP2C19*2",
        " *1 / *2 ",
        "cyp2c19*2/*1",
        "*1/*2.001",
    ],
)
def test_every_notation_of_one_diplotype_means_the_same(cyp2c19, text):
    call = call_diplotype(cyp2c19, text)
    assert (call.diplotype, call.phenotype, call.activity_score) == ("*1/*2", "Intermediate Metabolizer", None)


@pytest.mark.parametrize(
    ("diplotype", "phenotype"),
    [
        ("*1/*1", "Normal Metabolizer"),
        ("*38/*38", "Normal Metabolizer"),  # PharmCAT example 1
        ("*1/*17", "Rapid Metabolizer"),
        ("*17/*17", "Ultrarapid Metabolizer"),
        ("*2/*17", "Intermediate Metabolizer"),
        ("*1/*9", "Likely Intermediate Metabolizer"),
        ("*9/*17", "Likely Intermediate Metabolizer"),
        ("*9/*10", "Likely Intermediate Metabolizer"),
        ("*2/*9", "Likely Poor Metabolizer"),
        ("*2/*2", "Poor Metabolizer"),  # PharmCAT example 2, HL7 IG eMERGE example
        ("*3/*36", "Poor Metabolizer"),
        ("*1/*12", "Indeterminate"),  # uncertain function
    ],
)
def test_cpic_phenotypes(cyp2c19, diplotype, phenotype):
    assert call_diplotype(cyp2c19, diplotype).phenotype == phenotype


def test_allele_order_never_changes_the_result(cyp2c19):
    alleles = list(cyp2c19.allele_function)
    for first, second in itertools.combinations_with_replacement(alleles, 2):
        forward = call_diplotype(cyp2c19, f"{first}/{second}")
        backward = call_diplotype(cyp2c19, f"{second}/{first}")
        assert forward == backward


@pytest.mark.parametrize("text", ["*1/*99", "*99/*2", "*2/*2A", "*1/*1x2", "CYP2C9*1/*2"])
def test_an_unknown_allele_is_indeterminate_never_a_guess(cyp2c19, text):
    call = call_diplotype(cyp2c19, text)
    assert call.phenotype == "Indeterminate"
    assert "not in the CYP2C19 definitions" in call.reason


@pytest.mark.parametrize("text", ["", "*1", "*1/*2/*3", "poor metabolizer", "/"])
def test_text_that_is_not_a_diplotype_is_indeterminate(cyp2c19, text):
    call = call_diplotype(cyp2c19, text)
    assert call.phenotype == "Indeterminate"
    assert call.reason


def test_gene_file_examples_are_checked_at_load(library: Library):
    gene = library.genes["CYP2C19"]
    assert gene.examples  # the file documents itself with examples
    for diplotype, expected in gene.examples.items():
        assert call_diplotype(gene, diplotype).phenotype == expected


def test_a_call_names_the_allele_functions_it_used(cyp2c19):
    call = call_diplotype(cyp2c19, "*17/*2")
    assert call.functions == (("*2", "No function"), ("*17", "Increased function"))
