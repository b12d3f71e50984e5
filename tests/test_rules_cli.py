"""`pgx-loop rules check | explain | schema`, run as real processes."""

from __future__ import annotations

import json
import shutil

from tests.conftest import RULES
from tests.test_cli import pgx_loop


def test_check_passes_on_the_repository_rules():
    result = pgx_loop("rules", "check")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: 20 genes, ") and "examples hold" in result.stdout


def test_check_reports_every_problem_as_file_line_message_and_fails(tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    (rules / "cyp2d6-codeine.yaml").write_text(
        (rules / "cyp2d6-codeine.yaml").read_text().replace("tier: critical", "tier: severe", 1)
    )
    (rules / "genes" / "DPYD.yaml").write_text("gene: DPYD\nkind: activity score\n")
    result = pgx_loop("rules", "check", str(rules))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert any(line.startswith(f"{rules / 'cyp2d6-codeine.yaml'}:") and "tier" in line for line in lines)
    assert any(line.startswith(f"{rules / 'genes' / 'DPYD.yaml'}:") for line in lines)
    assert all(":" in line.split(" ")[0] for line in lines)


def test_explain_walks_through_a_genotype_and_a_drug():
    result = pgx_loop("rules", "explain", "-g", "CYP2D6=*1/*1x2", "-d", "codeine")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "CYP2D6" in text and "activity score 3.0" in text and "Ultrarapid Metabolizer" in text
    assert "rule cyp2d6-codeine" in text and "recommendation" in text and "tier: critical" in text
    assert "cyp2d6-codeine.yaml:" in text  # points at the line of the recommendation used


def test_explain_a_hook_request_file():
    result = pgx_loop("rules", "explain", "--request", "examples/order-select-poor-metabolizer.json")
    assert result.returncode == 0, result.stderr
    assert "rule cyp2c19-clopidogrel" in result.stdout and "Poor Metabolizer" in result.stdout


def test_explain_a_multi_gene_rule_with_an_indication():
    result = pgx_loop("rules", "explain", "-g", "CYP2C19=*2/*2", "-d", "clopidogrel", "-c", "icd10|I63.9")
    assert "population: Neurovascular indication" in result.stdout and "tier: warning" in result.stdout


def test_schema_prints_the_json_schema_of_rule_files():
    result = pgx_loop("rules", "schema")
    schema = json.loads(result.stdout)
    assert "recommendations" in schema["properties"] and "version" not in schema["properties"]
    gene_schema = json.loads(pgx_loop("rules", "schema", "--gene").stdout)
    assert "discriminator" in json.dumps(gene_schema)
