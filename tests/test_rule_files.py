"""Rule and gene files: a broken file is rejected with `file:line: message`, never half-loaded."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.documents.yamlsource import SourceError
from engine.rulebook.library import load_library
from tests.conftest import RULES

RULE = "cyp2c19-clopidogrel.yaml"


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(RULES, target)
    return target


def edit(path: Path, old: str, new: str) -> int:
    """Replace the first ``old`` in ``path``; returns the 1-based line it was on."""
    text = path.read_text()
    assert old in text, old
    line = text[: text.index(old)].count("\n") + 1
    path.write_text(text.replace(old, new, 1))
    return line


def problems(directory: Path) -> list[str]:
    with pytest.raises(SourceError) as caught:
        load_library(directory)
    return [str(problem) for problem in caught.value.problems]


def test_the_repository_rules_load(library):
    ids = [rule.id for rule in library.rules]
    assert "cyp2c19-clopidogrel" in ids and len(ids) >= 30
    assert len(library.version) == 16
    rule = library.rule("cyp2c19-clopidogrel")
    assert rule.source.endswith(RULE) and len(rule.version) == 12


def test_a_yaml_syntax_error_names_file_and_line(rules):
    line = edit(rules / RULE, "title: CYP2C19 genotype and clopidogrel", "title: [unclosed")
    found = problems(rules)
    assert len(found) == 1
    assert found[0].startswith(f"{rules / RULE}:")
    assert "YAML syntax" in found[0]
    assert int(found[0].split(":")[1]) >= line


def test_an_unquoted_star_allele_gets_a_hint(rules):
    line = edit(rules / "genes" / "CYP2C19.yaml", '"*1/*1":   Normal Metabolizer', "*1/*1: Normal Metabolizer")
    [found] = problems(rules)
    assert found.startswith(f"{rules / 'genes' / 'CYP2C19.yaml'}:{line}:")
    assert "write star alleles in quotes" in found


def test_a_schema_error_points_at_the_offending_line(rules):
    line = edit(
        rules / RULE, "classification: Strong\n    tier: critical", "classification: Very strong\n    tier: critical"
    )
    [found] = problems(rules)
    assert found.startswith(f"{rules / RULE}:{line}: recommendations.0.classification:")


def test_a_tier_outside_its_bounds_is_rejected(rules):
    text = (rules / RULE).read_text()
    first_entry = text[: text.index('  - phenotype: "Poor Metabolizer"')].count("\n") + 1
    edit(rules / RULE, "    tier: critical\n    floor: warning\n", "    tier: info\n    floor: warning\n")
    [found] = problems(rules)
    assert found.startswith(f"{rules / RULE}:{first_entry}: recommendations.0:")  # the entry's first line
    assert "tier 'info' must lie between floor 'warning'" in found


def test_an_unknown_phenotype_is_named_with_the_choices(rules):
    line = edit(rules / RULE, '- phenotype: "Rapid Metabolizer"', '- phenotype: "Fast Metabolizer"')
    [found] = problems(rules)
    assert found.startswith(f"{rules / RULE}:{line}:")
    assert "'Fast Metabolizer' is not a CYP2C19 value" in found
    assert "Rapid Metabolizer" in found  # the message lists the values the gene has


def test_a_phenotype_without_a_recommendation_is_named(rules):
    text = (rules / RULE).read_text()
    start = text.index('  - phenotype: "Rapid Metabolizer"')
    end = text.index('  - phenotype: "Ultrarapid Metabolizer"')
    (rules / RULE).write_text(text[:start] + text[end:])
    [found] = problems(rules)
    assert "no recommendation in population 'acs-pci' for 1 possible result(s), e.g. CYP2C19 Rapid Metabolizer" in found


def test_a_summary_over_139_characters_is_rejected(rules):
    edit(
        rules / RULE,
        'summary: "CYP2C19 {phenotype}: avoid {drug};',
        'summary: "CYP2C19 {phenotype}: ' + "x" * 60 + " avoid {drug};",
    )
    found = problems(rules)
    assert any("characters; the limit is 139" in p and "x" * 60 in p for p in found)


def test_a_summary_must_name_gene_phenotype_and_drug(rules):
    edit(rules / RULE, 'summary: "CYP2C19 {phenotype}: avoid {drug};', 'summary: "{phenotype}: avoid it;')
    found = problems(rules)
    assert any("summary must name the gene and the drug" in p for p in found)


def test_a_suggestion_must_be_an_alternative(rules):
    edit(rules / RULE, "suggest: [prasugrel, ticagrelor]", "suggest: [prasugrel, cangrelor]")
    found = problems(rules)
    assert any("suggests 'cangrelor', which is not in alternatives" in p for p in found)


def test_a_failing_example_is_reported_at_its_line(rules):
    text = (rules / RULE).read_text()
    examples = text[text.index("\nexamples:") :]
    number = examples[: examples.index('  - genotype: {CYP2C19: "*1/*1"}')].count("- genotype:") + 1
    start = text.index('  - genotype: {CYP2C19: "*1/*1"}')
    line = text[:start].count("\n") + 3
    (rules / RULE).write_text(text[:start] + text[start:].replace("expect: no card", "expect: warning", 1))
    [found] = problems(rules)
    assert found == f"{rules / RULE}:{line}: example {number} (CYP2C19 *1/*1): expected warning, got no card"


def test_a_gene_file_with_a_missing_function_pair_is_rejected(rules):
    edit(rules / "genes" / "CYP2C19.yaml", "    - [Uncertain function, No function]\n", "")
    found = problems(rules)
    assert any("no phenotype for the function pair [No function, Uncertain function]" in p for p in found)


def test_a_wrong_gene_example_is_rejected(rules):
    line = edit(rules / "genes" / "CYP2C19.yaml", '"*2/*9":   Likely Poor Metabolizer', '"*2/*9":   Poor Metabolizer')
    [found] = problems(rules)
    assert found.startswith(f"{rules / 'genes' / 'CYP2C19.yaml'}:{line}: example *2/*9: expected 'Poor Metabolizer'")


def test_a_drug_code_claimed_twice_for_one_gene_is_rejected(rules):
    text = (rules / RULE).read_text().replace("id: cyp2c19-clopidogrel", "id: cyp2c19-clopidogrel-copy")
    (rules / "cyp2c19-clopidogrel-copy.yaml").write_text(text)
    found = problems(rules)
    assert any(
        "RxNorm 32968 is already claimed for CYP2C19 as clopidogrel by rule cyp2c19-clopidogrel" in p for p in found
    )


def test_yaml_1_1_surprises_do_not_apply(rules):
    # In YAML 1.1 `no` is false and 15:02 is 902; these files are read as YAML 1.2.
    line = edit(rules / RULE, "title: CYP2C19 genotype and clopidogrel", "title: no")
    library = load_library(rules)
    assert library.rule("cyp2c19-clopidogrel").title == "no"
    assert line > 0


def test_a_g6pd_file_without_a_males_phenotype_for_a_function_is_rejected(rules):
    edit(rules / "genes" / "G6PD.yaml", "  II/Deficient: Deficient\n", "")
    found = problems(rules)
    assert any("no phenotype for a male carrying a 'II/Deficient' allele" in p for p in found)


def test_a_wrong_female_g6pd_example_is_rejected_at_its_line(rules):
    example = '"A- 202A_376G/Insuli":                Variable'
    line = edit(rules / "genes" / "G6PD.yaml", example, '"A- 202A_376G/Insuli": Normal')
    [found] = problems(rules)
    assert found.startswith(f"{rules / 'genes' / 'G6PD.yaml'}:{line}: example A- 202A_376G/Insuli: expected 'Normal'")
