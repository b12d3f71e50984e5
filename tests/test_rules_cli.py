"""`pgx-loop rules check | explain | schema`, run as real processes."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from tests.conftest import RULES
from tests.test_cli import pgx_loop
from tests.test_oracle import ORACLE


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


def test_explain_a_drug_listed_without_codes_by_its_name():
    result = pgx_loop("rules", "explain", "-g", "MT-RNR1=m.1555A>G", "-d", "plazomicin")
    assert result.returncode == 0, result.stderr
    assert "rule mt-rnr1-plazomicin" in result.stdout and "tier: critical" in result.stdout
    assert "recognised by the drug's name" in result.stdout
    unknown = pgx_loop("rules", "explain", "-g", "MT-RNR1=m.1555A>G", "-d", "neomycin")
    assert unknown.returncode != 0 and "no rule watches 'neomycin'" in unknown.stderr


def test_schema_prints_the_json_schema_of_rule_files():
    result = pgx_loop("rules", "schema")
    schema = json.loads(result.stdout)
    assert "recommendations" in schema["properties"] and "version" not in schema["properties"]
    gene_schema = json.loads(pgx_loop("rules", "schema", "--gene").stdout)
    assert "discriminator" in json.dumps(gene_schema)


def _modified_cpic_export(tmp_path):
    """A copy of CPIC's export with one recommendation reworded, one drug gone and one drug added."""
    source = ORACLE / "recommendations_all_cpic.csv"
    if not source.exists():
        pytest.skip(f"{ORACLE} not present: the update check is tried on a copy of CPIC's export")
    with source.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        fields, rows = reader.fieldnames, list(reader)
    kept = []
    for row in rows:
        if row["drug"] == "tramadol":
            continue  # withdrawn
        if row["drug"] == "codeine" and row["lookup_key"] == "CYP2D6=0.0":
            row["recommendation"] = "Avoid codeine use; choose a non-tramadol opioid."
            row["classification"] = "Moderate"
        kept.append(row)
    new = dict(rows[0], drug="exampleprazole", lookup_key="CYP2C19=Poor Metabolizer", recommendation="Reduce dose.")
    path = tmp_path / "cpic-newer.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows([*kept, new])
    return path


def test_check_against_a_newer_cpic_export_lists_changed_new_and_withdrawn(tmp_path):
    result = pgx_loop("rules", "check", "--against", str(_modified_cpic_export(tmp_path)))
    assert result.returncode == 1, result.stderr
    out = result.stdout
    changed = out.index("changed (2):")
    new = out.index("new (1):")  # every drug of the real export has a rule
    withdrawn = out.index("withdrawn (1):")
    assert changed < new < withdrawn
    assert "codeine [general] CYP2D6=0.0" in out[changed:new]
    assert "CPIC:    Moderate: Avoid codeine use; choose a non-tramadol opioid." in out[changed:new]
    assert "library: Strong: Avoid codeine use because of possibility of diminished analgesia." in out[changed:new]
    assert "exampleprazole no rule watches exampleprazole (CYP2C19, 1 CPIC rows)" in out[new:withdrawn]
    assert "tramadol the export has no row for tramadol" in out[withdrawn:]
    assert "cyp2d6-tramadol.yaml" in out[withdrawn:]


def test_check_against_a_file_that_is_not_a_cpic_export_says_so(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("gene,diplotype\nCYP2C19,*1/*2\n")
    result = pgx_loop("rules", "check", "--against", str(path))
    assert result.returncode == 1
    assert "not a CPIC recommendations export: no column drug, lookup_key" in result.stderr


def test_explain_and_phenotype_read_g6pd_by_the_sex_given():
    heterozygous = "G6PD=A- 202A_376G/B (reference)"
    female = pgx_loop("rules", "explain", "-g", heterozygous, "-d", "rasburicase", "--sex", "female")
    assert female.returncode == 0, female.stderr
    assert "->  Variable" in female.stdout and "card: G6PD Variable: measure G6PD enzyme activity" in female.stdout
    unknown = pgx_loop("phenotype", "G6PD", "A- 202A_376G/B (reference)")
    assert json.loads(unknown.stdout)["phenotype"] == "Indeterminate"
    male = pgx_loop("phenotype", "G6PD", "A- 202A_376G", "--sex", "male")
    assert json.loads(male.stdout)["phenotype"] == "Deficient"
