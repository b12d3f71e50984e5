"""The `pgx-loop phenotype` command, run as a real process."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest

from tests.conftest import REPOSITORY


def pgx_loop(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgx_loop.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPOSITORY,
        timeout=60,
        check=False,
    )


def test_phenotype_prints_one_json_object():
    result = pgx_loop("phenotype", "CYP2C19", "CYP2C19 *17/*2")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "gene": "CYP2C19",
        "diplotype": "*2/*17",
        "phenotype": "Intermediate Metabolizer",
        "activity_score": None,
    }


def test_phenotype_of_an_unknown_allele_is_indeterminate():
    result = pgx_loop("phenotype", "cyp2c19", "*1/*99")
    assert json.loads(result.stdout)["phenotype"] == "Indeterminate"


def test_an_unknown_gene_is_a_usage_error():
    result = pgx_loop("phenotype", "CYP9Z9", "*1/*1")
    assert result.returncode == 2 and "unknown gene 'CYP9Z9'" in result.stderr


@pytest.mark.parametrize("header", [True, False])
def test_batch_writes_one_line_per_input_line_in_order(header):
    rows = [
        ("CYP2C19", "*2/*1"),
        ("CYP2C19", "*1/*99"),
        ("NOT-A-GENE", "*1/*1"),
        ("CYP2C19", "*17/*17"),
        ("CYP2C19", "CYP2C19 *2/*3"),
    ]
    text = ("gene,diplotype\n" if header else "") + "".join(f"{g},{d}\n" for g, d in rows)
    result = pgx_loop("phenotype", "--batch", stdin=text)
    assert result.returncode == 0
    out = list(csv.reader(io.StringIO(result.stdout)))
    if header:
        assert out.pop(0) == ["gene", "diplotype", "phenotype", "activity_score"]
    assert out == [
        ["CYP2C19", "*1/*2", "Intermediate Metabolizer", ""],
        ["CYP2C19", "*1/*99", "Indeterminate", ""],
        ["NOT-A-GENE", "*1/*1", "Indeterminate", ""],
        ["CYP2C19", "*17/*17", "Ultrarapid Metabolizer", ""],
        ["CYP2C19", "*2/*3", "Poor Metabolizer", ""],
    ]
    assert "unknown gene 'NOT-A-GENE'" in result.stderr


def test_a_broken_rules_directory_is_reported_with_file_and_line(tmp_path):
    (tmp_path / "genes").mkdir()
    (tmp_path / "broken.yaml").write_text("id: broken\ntitle: [\n")
    result = pgx_loop("phenotype", "--rules", str(tmp_path), "CYP2C19", "*1/*1")
    assert result.returncode == 2
    assert result.stderr.startswith(f"{tmp_path / 'broken.yaml'}:")
