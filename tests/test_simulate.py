"""The simulator: the truth file, reproducibility, and a cohort shaped like a real site's."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner, Result

from analytics.cycle import data_snapshot
from engine.rulebook.library import Library
from pgx_loop.cli import main
from tests.learning_data import CLOPIDOGREL, simulated, truth

TRUTH = """\
rules:
  cyp2c19-clopidogrel:
    baseline_rate: 0.06
    hazard_ratio:
      Intermediate Metabolizer: 1.55
      Poor Metabolizer: 1.76
"""


def simulate_cli(database: Path, *args: str) -> Result:
    """``pgx-loop simulate --db DATABASE ARGS`` in this process (its logging set-up is a no-op under pytest's
    log capture), sparing an interpreter start-up per call."""
    env = {"PGX_LOOP_VAR_DIR": str(database.parent / "var")}
    return CliRunner().invoke(main, ["simulate", "--db", str(database), *args], env=env)


def test_the_truth_file_of_the_documented_shape_is_used_and_stored(tmp_path: Path):
    (tmp_path / "truth.yaml").write_text(TRUTH.replace("1.55", "2.05"))
    done = simulate_cli(
        tmp_path / "s.duckdb", "--persons", "5000", "--seed", "3", "--truth", str(tmp_path / "truth.yaml")
    )
    assert done.exit_code == 0, done.output
    con = duckdb.connect(str(tmp_path / "s.duckdb"), read_only=True)
    stored = dict(
        con.execute(
            "SELECT phenotype, hazard_ratio FROM sim_truth WHERE rule = ? AND baseline_rate = 0.06", [CLOPIDOGREL]
        ).fetchall()
    )
    assert stored["Intermediate Metabolizer"] == 2.05 and stored["Poor Metabolizer"] == 1.76
    assert stored["Normal Metabolizer"] == 1.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules:\n  cyp2c19-warfarin:\n    hazard_ratio: {Poor Metabolizer: 2}\n", "no rule with a learning section"),
        (TRUTH.replace("Poor Metabolizer: 1.76", "Slow Metabolizer: 1.76"), "'Slow Metabolizer' is not one of"),
        ("- just a list\n", "expected a mapping"),
        (TRUTH.replace("0.06", "6"), "baseline_rate must be between 0 and 1"),
    ],
)
def test_a_wrong_truth_file_is_refused_with_the_reason(tmp_path: Path, text: str, message: str):
    (tmp_path / "truth.yaml").write_text(text)
    done = simulate_cli(tmp_path / "s.duckdb", "--persons", "100", "--truth", str(tmp_path / "truth.yaml"))
    assert done.exit_code == 2 and message in done.stderr
    assert not (tmp_path / "s.duckdb").exists()


def test_the_same_seed_gives_the_same_data(library: Library):
    first, again, other = (simulated(library, 5_000, seed=s, effects=truth()) for s in (9, 9, 10))

    def content(con: duckdb.DuckDBPyConnection) -> dict:
        return {table: digest for table, digest in data_snapshot(con).items() if table != "cds_event"}  # ingested_at

    assert content(first) == content(again) != content(other)


def test_the_cohort_looks_like_a_site(library: Library):
    con = simulated(library, 60_000, seed=1, effects=truth())
    tested = con.execute("SELECT count(DISTINCT person_id) FROM pgx_result").fetchall()[0][0] / 60_000
    assert 0.5 < tested < 0.7
    # CYP2C19 *2 carriers by ancestry, via the OMOP race concept: more in Asian than in White patients.
    share = dict(
        con.execute(
            """SELECT p.race_concept_id, avg(CAST(r.diplotype LIKE '%*2%' AS DOUBLE))
               FROM pgx_result r JOIN person p USING (person_id) WHERE r.gene = 'CYP2C19' GROUP BY 1"""
        ).fetchall()
    )
    assert share[8515] > share[8527] + 0.15  # Asian vs White
    # After the alert went live, known poor/intermediate metabolizers got clopidogrel less often.
    switched = con.execute(
        """
        WITH users AS (
            SELECT d.person_id, d.drug_exposure_start_date >= DATE '2022-01-01' AS after,
                   c.concept_code = '32968' OR c.concept_name LIKE 'clopidogrel%' AS clopidogrel
            FROM drug_exposure d JOIN concept c ON c.concept_id = d.drug_concept_id
            WHERE c.concept_name IN ('clopidogrel', 'clopidogrel product', 'prasugrel', 'ticagrelor'))
        SELECT after, avg(CAST(clopidogrel AS DOUBLE)) FROM users
        WHERE person_id IN (SELECT person_id FROM pgx_result WHERE gene = 'CYP2C19' AND diplotype IN ('*2/*2', '*1/*2'))
        GROUP BY after ORDER BY after
        """
    ).fetchall()
    (_, before), (_, after) = switched
    assert after < before - 0.2
    con.close()
