"""The pharmacist's tools (issue 12 section 4): explain shows the tiers the service shows, check warns,
and a broken file gets plain words at its line. Commands run as real processes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.documents.yamlsource import SourceError
from engine.rulebook.library import load_library
from tests.conftest import REPOSITORY, RULES

CLOPIDOGREL = RULES / "cyp2c19-clopidogrel.yaml"


def pgx_loop(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgx_loop.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPOSITORY,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


def snapshot(path: Path, tier: str, phenotype: str = "Intermediate Metabolizer") -> Path:
    strength = {
        "rule": "cyp2c19-clopidogrel",
        "phenotype": phenotype,
        "tier": tier,
        "evidence": "local HR 2.1 (95% CI 1.4-3.2); published 1.5; combined 1.8",
        "run_id": "run-7",
        "decided_at": "2026-11-30T02:00:00+00:00",
    }
    path.write_text(json.dumps({"version": 3, "created": "2026-11-30T02:00:00+00:00", "strengths": [strength]}))
    return path


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(RULES, target)
    return target


def problems(directory: Path) -> list[str]:
    with pytest.raises(SourceError) as caught:
        load_library(directory)
    return [str(problem) for problem in caught.value.problems]


def line_of(path: Path, text: str) -> int:
    content = path.read_text()
    return content[: content.index(text)].count("\n") + 1


# --- explain shows what the service sends ----------------------------------------------------


def test_explain_applies_the_strengths_file_the_service_reads(tmp_path):
    published = snapshot(tmp_path / "strengths.json", "critical")
    # The service's own setting names the file; explain finds it the same way.
    result = pgx_loop("rules", "explain", "-g", "CYP2C19=*1/*2", "-d", "clopidogrel",
                      env={"PGX_LOOP_STRENGTHS_FILE": str(published)})  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "tier: critical (from local evidence: local HR 2.1" in result.stdout
    assert "the rule file says warning" in result.stdout
    assert f"Strengths: version 3 of {published}" in result.stdout


def test_explain_without_published_strengths_shows_the_rule_files_tier(tmp_path):
    result = pgx_loop("rules", "explain", "-g", "CYP2C19=*1/*2", "-d", "clopidogrel",
                      "--strengths", str(tmp_path / "none.json"))  # fmt: skip
    assert "tier: warning (from the rule file;" in result.stdout
    assert "none published" in result.stdout


def test_explain_agrees_with_the_live_service_on_the_tier(tmp_path, library):
    """The same snapshot in the service and in explain gives the same indicator."""
    from fastapi.testclient import TestClient

    from hooks.app import create_app
    from hooks.settings import Settings
    from tests.fhirdata import genotype, hook_request

    settings = Settings(rules_dir=RULES, var_dir=tmp_path / "var", auth="off")
    settings.strengths_path.parent.mkdir(parents=True)
    snapshot(settings.strengths_path, "critical")
    with TestClient(create_app(settings, library)) as client:
        body = hook_request(genotypes=[genotype("CYP2C19", "*1/*2")])
        [card] = client.post("/cds-services/pgx-order-select", json=body).json()["cards"]
    result = pgx_loop("rules", "explain", "-g", "CYP2C19=*1/*2", "-d", "clopidogrel",
                      "--strengths", str(settings.strengths_path))  # fmt: skip
    assert card["indicator"] == "critical" and f"tier: {card['indicator']} (from local evidence" in result.stdout


def test_an_unreadable_strengths_file_is_said_not_silently_ignored(tmp_path):
    broken = tmp_path / "strengths.json"
    broken.write_text("{not json")
    result = pgx_loop("rules", "explain", "-g", "CYP2C19=*1/*2", "-d", "clopidogrel", "--strengths", str(broken))
    assert "not a strengths snapshot" in result.stderr and "tier: warning (from the rule file;" in result.stdout


# --- check warns -------------------------------------------------------------------------------


def test_check_warns_when_a_published_strength_masks_the_files_tier(tmp_path):
    published = snapshot(tmp_path / "strengths.json", "critical")
    result = pgx_loop("rules", "check", "--strengths", str(published))
    assert result.returncode == 0, result.stderr
    [warning] = [line for line in result.stdout.splitlines() if "masked" in line]
    assert warning.startswith(f"{CLOPIDOGREL}:")
    assert "tier warning for Intermediate Metabolizer is masked" in warning and "the service shows critical" in warning
    # It points at the tier of that recommendation (the one the strength replaces).
    line = int(warning.split(":")[1])
    assert "tier: warning" in CLOPIDOGREL.read_text().splitlines()[line - 1]
    assert "1 warning;" in result.stdout


def test_check_does_not_warn_when_the_strength_agrees_with_the_file(tmp_path):
    published = snapshot(tmp_path / "strengths.json", "warning")
    result = pgx_loop("rules", "check", "--strengths", str(published))
    assert "masked" not in result.stdout and "0 warnings" in result.stdout


def test_a_rule_without_examples_gets_a_warning(rules, tmp_path):
    path = rules / "cyp2c19-pantoprazole.yaml"
    text = path.read_text()
    path.write_text(text[: text.index("\nexamples:")] + "\n")
    result = pgx_loop("rules", "check", str(rules), "--strengths", str(tmp_path / "none.json"))
    assert result.returncode == 0, result.stderr
    assert f"{path}:{line_of(path, 'id: cyp2c19-pantoprazole')}: warning: no examples" in result.stdout


# --- plain words for a broken file -------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "words", "parser"),
    [
        # A list item indented one space too far.
        (
            '  - phenotype: "Rapid Metabolizer"',
            '   - phenotype: "Rapid Metabolizer"',
            "this list item is not lined up with the items above it",
            "did not find expected '-' indicator",
        ),
        # A key indented under a plain value.
        ("    tier: warning\n", "    tier: warning\n      floor: none\n", "a ':' where none can be", "mapping values"),
        # A key whose ':' was lost.
        ("title: CYP2C19 genotype and clopidogrel\n", "title CYP2C19\nid2: x\n", "a ':' is missing", "expected ':'"),
        # A tab in the indentation.
        ("    tier: warning\n", "\ttier: warning\n", "a tab character: indent with spaces only", "tab"),
    ],
)
def test_yaml_indentation_mistakes_come_out_in_plain_words_at_their_line(rules, old, new, words, parser):
    path = rules / "cyp2c19-clopidogrel.yaml"
    text = path.read_text()
    assert old in text
    line = line_of(path, old) + (1 if new.startswith("    tier: warning\n      ") else 0)
    path.write_text(text.replace(old, new, 1))
    [found] = problems(rules)
    assert found.startswith(f"{path}:{line}: YAML syntax: "), found
    assert words in found and parser in found


def test_a_misspelled_phenotype_gets_a_suggestion(rules):
    path = rules / "cyp2c19-pantoprazole.yaml"
    path.write_text(path.read_text().replace('phenotype: "Poor Metabolizer"', 'phenotype: "Poor Metaboliser"', 1))
    found = problems(rules)
    assert any("'Poor Metaboliser' is not a CYP2C19 value (did you mean 'Poor Metabolizer'?)" in p for p in found)


def test_a_misspelled_activity_phenotype_and_gene_get_suggestions(rules):
    codeine = rules / "cyp2d6-codeine.yaml"
    text = codeine.read_text()
    codeine.write_text(text.replace("gene: CYP2D6", "gene: CYP2D66", 1))
    found = problems(rules)
    assert any("unknown gene CYP2D66 (did you mean 'CYP2D6'?)" in p for p in found), found


def test_a_misspelled_allele_function_in_a_gene_file_gets_a_suggestion(rules):
    path = rules / "genes" / "CYP2C19.yaml"
    text = path.read_text()
    path.write_text(text.replace("- [Normal function, Normal function]", "- [Normal function, Normal functon]"))
    found = problems(rules)
    assert any("'Normal functon' is not the function of any allele in this file (did you mean 'Normal function'?)" in p
               for p in found)  # fmt: skip


def test_a_duplicate_code_names_the_drug_it_belongs_to(rules):
    path = rules / "cyp2c19-pantoprazole.yaml"
    path.write_text(path.read_text().replace('- "40790"         # pantoprazole', '- "7646"         # pantoprazole', 1))
    found = [p for p in problems(rules) if "already claimed" in p]
    assert found and all(p.startswith(f"{path}:") for p in found)
    assert "RxNorm 7646 is already claimed for CYP2C19 as omeprazole by rule cyp2c19-omeprazole" in found[0]
    assert "(pantoprazole)" not in found[0]
